#!/usr/bin/python3
"""Re-identification escrow (PS3.15 E.1.2): `deid --escrow-cert` keeps the
original values of what it changed in an Encrypted Attributes Sequence,
enveloped in CMS to the escrow certificate (RSA and EC keys made here with
openssl). Checked independently: `openssl cms -decrypt` opens the Encrypted
Content, and pydicom finds in it a Modified Attributes Sequence holding the
original Patient's Name, Patient ID and UIDs. `dicomvault reidentify` with
the private key gives back every attribute of the original (pydicom compares
them), refuses a wrong key, a tampered escrow, a file without escrow, a
missing reason or a missing vault, and leaves one audit record per attempt
in the vault's verified chain. Runs over several pydicom samples.
Prints "ok - NAME" / "not ok - NAME"."""
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

import pydicom
from pydicom.filereader import read_dataset

warnings.simplefilter("ignore")
os.umask(0o022)   # as on most systems: the re-identified file must be 0600 all the same
DV = os.path.abspath(sys.argv[1])
TF = "/usr/lib/python3/dist-packages/pydicom/data/test_files"
SAMPLES = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "SC_rgb.dcm", "nested_priv_SQ.dcm",
           "MR_small_bigendian.dcm"]
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok - escrow: {name}")
    else:
        failed += 1
        print(f"not ok - escrow: {name}" + (f": {str(detail)[:300]}" if detail else ""))


def sh(*args, **kw):
    return subprocess.run(list(args), capture_output=True, **kw)


def norm(v):
    """A value for comparison: odd-length byte values get their padding
    byte when written (PS3.5 7.1.1), so trailing NUL/space is ignored."""
    if isinstance(v, bytes):
        return v.rstrip(b"\x00 ")
    if isinstance(v, pydicom.sequence.Sequence):
        return [[(e.tag, norm(e.value)) for e in item] for item in v]
    return v


def same(a, b):
    """Attributes of a (pixel data aside) missing from b or different."""
    out = []
    for e in a:
        if e.tag in (0x7FE00010,) or e.tag.group == 0x0002:
            continue
        if e.tag not in b or norm(b[e.tag].value) != norm(e.value):
            out.append(e.keyword or str(e.tag))
    return out


if shutil.which("openssl") is None or not os.path.isdir(TF):
    print("# SKIP escrow: no openssl or pydicom test files")
    sys.exit(0)
T = tempfile.mkdtemp(prefix="dv_escrow.")
try:
    os.chdir(T)
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "rsa.key", "-out", "rsa.crt", "-days",
       "2", "-subj", "/CN=escrow-rsa")
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
       "ec.key", "-out", "ec.crt", "-days", "2", "-subj", "/CN=escrow-ec")
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other.crt",
       "-days", "2", "-subj", "/CN=other")
    for k in ("rsa.key", "ec.key", "other.key"):
        os.chmod(k, 0o600)
    with open(os.open("proj.key", os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
        f.write(os.urandom(32))
    pw = "pw"
    with open(os.open(pw, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write("correct horse battery staple\n")
    p = sh(DV, "init", "--vault", "v", "--password-file", pw, text=True)
    check("a vault for the audit trail", p.returncode == 0, p.stderr)

    for kind in ("rsa", "ec"):
        for s in SAMPLES:
            src = os.path.join(TF, s)
            if not os.path.exists(src):
                continue
            name = f"{kind} {s}"
            out = f"{kind}_{s}"
            p = sh(DV, "deid", "--profile", "basic", "--key-file", "proj.key", "--escrow-cert", f"{kind}.crt",
                   "--quiet", "--json", src, out, text=True)
            summ = json.loads(p.stdout) if p.stdout.startswith("{") else {}
            if p.returncode != 0:
                check(f"{name}: de-identified with escrow", False, p.stdout + p.stderr)
                continue
            check(f"{name}: escrow counted", summ.get("escrowed", 0) > 0, summ)
            orig = pydicom.dcmread(src)
            d = pydicom.dcmread(out)
            check(f"{name}: de-identified (name gone)",
                  "PatientName" not in orig or str(d.get("PatientName", "")) != str(orig.PatientName) or
                  str(orig.PatientName) == "")
            eas = d.get("EncryptedAttributesSequence")
            ok = eas is not None and len(eas) == 1 and eas[0].EncryptedContentTransferSyntaxUID == "1.2.840.10008.1.2.1"
            check(f"{name}: Encrypted Attributes Sequence with explicit VR LE content", ok)
            if not ok:
                continue
            open("content.der", "wb").write(eas[0].EncryptedContent)
            p = sh("openssl", "cms", "-decrypt", "-inform", "DER", "-in", "content.der", "-recip", f"{kind}.crt",
                   "-inkey", f"{kind}.key", "-binary")
            check(f"{name}: openssl cms opens the escrow", p.returncode == 0, p.stderr)
            if p.returncode == 0:
                inner = read_dataset(io.BytesIO(p.stdout), is_implicit_VR=False, is_little_endian=True)
                mas = inner.get("ModifiedAttributesSequence")
                check(f"{name}: one Modified Attributes Sequence item", mas is not None and len(mas) == 1)
                if mas:
                    it = mas[0]
                    for kw in ("PatientName", "PatientID", "SOPInstanceUID", "StudyInstanceUID"):
                        if kw in orig and orig.data_element(kw).value not in ("", None):
                            check(f"{name}: escrow holds the original {kw}",
                                  kw in it and it.data_element(kw).value == orig.data_element(kw).value)
            p = sh(DV, "reidentify", "--key", f"{kind}.key", "--cert", f"{kind}.crt", "--reason",
                   "second opinion, ticket 42", "--vault", "v", "--json", out, "back_" + out, text=True)
            check(f"{name}: reidentify exits 0", p.returncode == 0, p.stderr)
            if p.returncode == 0:
                mode = os.stat("back_" + out).st_mode & 0o777
                check(f"{name}: the re-identified file (patient data) is private: mode 0600 under umask 022",
                      mode == 0o600, oct(mode))
            if p.returncode == 0:
                try:
                    res = json.loads(p.stdout)
                except ValueError:
                    res = {}
                check(f"{name}: reidentify --json: the count, the output and the restored UIDs",
                      res.get("restored", 0) > 0 and res.get("out") == "back_" + out
                      and res.get("study") == str(orig.get("StudyInstanceUID", ""))
                      and res.get("sop_instance") == str(orig.get("SOPInstanceUID", "")), p.stdout[:300])
                b = pydicom.dcmread("back_" + out)
                diff = same(orig, b)
                check(f"{name}: every original attribute is back", not diff, diff)
                extra = [e.keyword for e in b if e.tag not in orig and e.tag.group != 0x0002]
                check(f"{name}: nothing left over from de-identification", not extra, extra)
                if "SOPInstanceUID" in b:
                    check(f"{name}: media storage UID follows the SOP Instance UID",
                          b.file_meta.MediaStorageSOPInstanceUID == b.SOPInstanceUID)

    # refusals
    out = "rsa_CT_small.dcm"
    p = sh(DV, "reidentify", "--key", "other.key", "--reason", "wrong key test", "--vault", "v", out, "x.dcm", text=True)
    check("a key that is not a recipient: exit 1, said so, nothing written",
          p.returncode == 1 and "decrypt" in p.stderr and not os.path.exists("x.dcm"), p.stderr)
    p = sh(DV, "reidentify", "--key", "ec.key", "--reason", "wrong key type", "--vault", "v", out, "x.dcm", text=True)
    check("an EC key for an RSA escrow: exit 1", p.returncode == 1 and not os.path.exists("x.dcm"), p.stderr)
    ds = pydicom.dcmread(out)
    c = bytearray(ds.EncryptedAttributesSequence[0].EncryptedContent)
    c[len(c) - 20] ^= 0x55
    ds.EncryptedAttributesSequence[0].EncryptedContent = bytes(c)
    ds.save_as("tampered.dcm")
    p = sh(DV, "reidentify", "--key", "rsa.key", "--reason", "tamper test", "--vault", "v", "tampered.dcm", "x.dcm",
           text=True)
    check("a tampered escrow: exit 1, nothing written", p.returncode == 1 and not os.path.exists("x.dcm"), p.stderr)
    p = sh(DV, "reidentify", "--key", "rsa.key", "--reason", "no escrow here", "--vault", "v",
           os.path.join(TF, "CT_small.dcm"), "x.dcm", text=True)
    check("a file without escrow: exit 1, said so", p.returncode == 1 and "nothing escrowed" in p.stderr, p.stderr)
    p = sh(DV, "reidentify", "--key", "rsa.key", "--vault", "v", out, "x.dcm", text=True)
    check("no --reason: usage error", p.returncode == 2, p.stderr)
    p = sh(DV, "reidentify", "--key", "rsa.key", "--reason", "ab", "--vault", "v", out, "x.dcm", text=True)
    check("a reason too short: usage error", p.returncode == 2, p.stderr)
    p = sh(DV, "reidentify", "--key", "rsa.key", "--reason", "no audit trail", "--vault", "nowhere", out, "x.dcm",
           text=True)
    check("no vault to audit in: refused", p.returncode == 1 and "audited" in p.stderr and not os.path.exists("x.dcm"),
          p.stderr)
    # a folder that only looks like a vault (an audit/ with a log in it):
    # the record would land where no auditor looks
    os.makedirs("fake/audit", mode=0o700)
    shutil.copy("v/audit/audit.log", "fake/audit/audit.log")
    os.chmod("fake", 0o700)
    before = open("fake/audit/audit.log", "rb").read()
    p = sh(DV, "reidentify", "--key", "rsa.key", "--reason", "into a fake vault", "--vault", "fake", out, "x.dcm",
           text=True)
    check("a folder with audit/ but no vault: refused, nothing written, its log unchanged",
          p.returncode == 1 and "not a usable vault" in p.stderr and not os.path.exists("x.dcm")
          and open("fake/audit/audit.log", "rb").read() == before, p.stderr)
    # the vault's log deleted: refused, and no new log is started
    os.rename("v/audit/audit.log", "v/audit/kept.log")
    p = sh(DV, "reidentify", "--key", "rsa.key", "--reason", "log deleted test", "--vault", "v", out, "x.dcm",
           text=True)
    check("the vault's log deleted: refused before re-identifying anything, no new log",
          p.returncode == 1 and "cannot open the audit log" in p.stderr and not os.path.exists("x.dcm")
          and not os.path.exists("v/audit/audit.log"), p.stderr)
    os.rename("v/audit/kept.log", "v/audit/audit.log")
    os.chmod("rsa.key", 0o644)
    p = sh(DV, "reidentify", "--key", "rsa.key", "--reason", "loose key mode", "--vault", "v", out, "x.dcm", text=True)
    check("a private key readable by others: refused", p.returncode == 1 and "chmod 600" in p.stderr, p.stderr)
    os.chmod("rsa.key", 0o600)
    open("garbage.crt", "w").write("not a certificate\n")
    p = sh(DV, "deid", "--profile", "basic", "--escrow-cert", "garbage.crt", os.path.join(TF, "CT_small.dcm"),
           "y.dcm", text=True)
    check("deid with a bad escrow certificate: exit 1 before writing",
          p.returncode == 1 and "no PEM certificate" in p.stderr and not os.path.exists("y.dcm"), p.stderr)
    # audit
    p = sh(DV, "audit", "export", "--vault", "v", text=True)
    recs = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
    re_ = [r for r in recs if r.get("action") == "re-identify"]
    ok_ = [r for r in re_ if r.get("outcome") == "success"]
    # wrong key, EC key, tampered, no escrow, loose key mode (usage errors are not attempts)
    check("every re-identification attempt with a vault is audited", len(re_) == len(ok_) + 5,
          (len(re_), len(ok_)))
    check("the audit record carries the reason", any("second opinion" in json.dumps(r) for r in ok_))
    p = sh(DV, "audit", "verify", "--vault", "v", text=True)
    check("audit chain verifies", p.returncode == 0, p.stdout + p.stderr)
finally:
    shutil.rmtree(T, ignore_errors=True)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
