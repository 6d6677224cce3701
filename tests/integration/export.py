#!/usr/bin/python3
"""`dicomvault export`: studies stored over STOW-RS into a real vault are
written out as Part 10 files, byte-identical to what was stored (original),
or de-identified under the vault's project key: the output obeys the basic
profile (patient name and ID gone, UIDs replaced), one project gives the same
pseudonyms and UIDs on every export, another project different ones; a
flagged burned-in image is masked by the rules in dicomvault.conf or refused;
an object tampered with on disk makes the export fail for that instance;
usage errors exit 2, an unknown study 1; every export leaves an audit
record and the chain verifies. Prints "ok - NAME" / "not ok - NAME"."""
import glob
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from dvserver import Vault  # noqa: E402

warnings.simplefilter("ignore")
DV = os.path.abspath(sys.argv[1])
TF = "/usr/lib/python3/dist-packages/pydicom/data/test_files"
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok - export: {name}")
    else:
        failed += 1
        print(f"not ok - export: {name}" + (f": {str(detail)[:300]}" if detail else ""))


def run(*args):
    p = subprocess.run([DV, "export"] + list(args), capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def burned_us(study):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Export^Burned"
    ds.PatientID = "EXP-BURN-7"
    ds.Modality = "US"
    ds.Manufacturer = "ACME"
    ds.BurnedInAnnotation = "YES"
    ds.Rows, ds.Columns = 16, 16
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes((i % 255) + 1 for i in range(256))
    b = io.BytesIO()
    ds.save_as(b, write_like_original=False)
    return b.getvalue()


def small_ct(study, series, n):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.PatientName = "Export^Many"
    ds.PatientID = "EXP-MANY-3"
    ds.Modality = "CT"
    ds.InstanceNumber = n
    ds.Rows, ds.Columns = 2, 2
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(4)
    b = io.BytesIO()
    ds.save_as(b, write_like_original=False)
    return b.getvalue()


if not os.path.isdir(TF) or shutil.which("oathtool") is None:
    print("# SKIP export: no pydicom test files or oathtool")
    sys.exit(0)
T = tempfile.mkdtemp(prefix="dv_export.")
try:
    v = Vault(DV, T)
    with open(os.path.join(v.dir, "dicomvault.conf"), "a") as f:
        f.write('\n[deid "mask acme-us"]\nmodality = US\nmanufacturer = ACME\nrect = 0,0,16,4\n')
    v.serve()
    v.login()
    ct = os.path.join(TF, "CT_small.dcm")
    mr = os.path.join(TF, "MR_small.dcm")
    ct_ds = pydicom.dcmread(ct)
    st, ans = v.stow([ct, mr])
    check("STOW of the sample files", st == 200, (st, ans))
    us_study = generate_uid()
    us = burned_us(us_study)
    st, ans = v.stow([us])
    check("STOW of a burned-in ultrasound image", st == 200, (st, ans))
    first_objs = {p for p in glob.glob(os.path.join(v.dir, "objects", "**", "*"), recursive=True)
                  if os.path.isfile(p)}
    many_study, many_series, MANY = generate_uid(), generate_uid(), 700
    st, ans = v.stow([small_ct(many_study, many_series, i + 1) for i in range(MANY)])
    check(f"STOW of a study of {MANY} small instances", st == 200, (st, str(ans)[:200]))
    v.stop()

    # original
    out = os.path.join(T, "orig")
    rc, so, se = run("--vault", v.dir, "--study", ct_ds.StudyInstanceUID, "--out", out, "--json")
    summ = json.loads(so) if so.startswith("{") else {}
    check("export of a stored study exits 0", rc == 0 and summ.get("written") == 1, (rc, so, se))
    want = os.path.join(out, ct_ds.SeriesInstanceUID, ct_ds.SOPInstanceUID + ".dcm")
    check("written as OUT/SERIES/SOP.dcm", os.path.exists(want), glob.glob(out + "/**", recursive=True))
    check("byte-identical to the stored file",
          os.path.exists(want) and open(want, "rb").read() == open(ct, "rb").read())
    check("no temporary file left", not glob.glob(os.path.join(out, ".export.*")))

    # a folder beside the vault whose name begins with the vault's is not in it
    o = v.dir + "-out"
    rc, so, se = run("--vault", v.dir, "--study", ct_ds.StudyInstanceUID, "--out", o, "--quiet")
    check("--out beside the vault, its name prefixed by the vault's: exported",
          rc == 0 and len(glob.glob(os.path.join(o, "*", "*.dcm"))) == 1, (rc, se))

    # SIGKILL while the file is being written (the fault shim holds its
    # fsync): the plaintext has no name until it is complete, so nothing but
    # complete outputs is left. On a file system without O_TMPFILE (the
    # shim refuses it) a named temporary file is left; the next export into
    # that series folder removes it, and only names of that exact pattern
    shim = os.path.join(os.path.dirname(DV), "shim", "fault_sync.so")
    killed_runs = 0
    if os.path.exists(shim):
        fd = os.path.join(T, "fault")
        os.makedirs(fd)
        o = os.path.join(T, "killed")
        sdir = os.path.join(o, ct_ds.SeriesInstanceUID)
        ct_bytes = open(ct, "rb").read()
        env = dict(os.environ, LD_PRELOAD=shim, FAULT_DIR=fd,
                   ASAN_OPTIONS=(os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":"))

        def hits():
            p = os.path.join(fd, "hits")
            return open(p).read() if os.path.exists(p) else ""

        def killed_export(tmpfile_rule):
            for fn in ("fsync", "tmpfile", "hits"):
                if os.path.exists(os.path.join(fd, fn)):
                    os.unlink(os.path.join(fd, fn))
            with open(os.path.join(fd, "fsync"), "w") as f:
                f.write("*/killed/* 0 1 wait:30000\n")
            if tmpfile_rule:
                with open(os.path.join(fd, "tmpfile"), "w") as f:
                    f.write("*/killed/* 0 1 EOPNOTSUPP\n")
            pk = subprocess.Popen([DV, "export", "--vault", v.dir, "--study", ct_ds.StudyInstanceUID, "--out", o,
                                   "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(300):
                if "fsync" in hits() or pk.poll() is not None:
                    break
                time.sleep(0.1)
            held = pk.poll() is None and "fsync" in hits()
            pk.kill()
            pk.wait()
            return held, [os.path.join(dp, n) for dp, _, ns in os.walk(o) for n in ns]

        held, left = killed_export(False)
        killed_runs = 4   # these two and the two below
        check("SIGKILL while writing: no file but complete outputs left",
              held and all(p.endswith(".dcm") and open(p, "rb").read() == ct_bytes for p in left),
              (held, left))
        held, left = killed_export(True)
        stale = [p for p in left if os.path.basename(p).startswith(".export.")]
        check("...without O_TMPFILE: a named temporary file left (the fallback)",
              held and "tmpfile" in hits() and len(stale) == 1, (held, left))
        other = os.path.join(sdir, ".export.notours")
        open(other, "wb").write(b"not an export's")
        rc, so, se = run("--vault", v.dir, "--study", ct_ds.StudyInstanceUID, "--out", o)
        check("the export again: complete, the stale .export.* file removed and said so, other names kept",
              rc == 0 and open(os.path.join(sdir, ct_ds.SOPInstanceUID + ".dcm"), "rb").read() == ct_bytes
              and stale and not os.path.exists(stale[0]) and os.path.exists(other)
              and "removed 1 unfinished file" in se, (rc, se, os.listdir(sdir)))
        # the output replaced by a symbolic link: replaced in turn, not followed
        dst, target = os.path.join(sdir, ct_ds.SOPInstanceUID + ".dcm"), os.path.join(T, "link-target")
        open(target, "wb").write(b"target")
        os.unlink(dst)
        os.symlink(target, dst)
        rc, so, se = run("--vault", v.dir, "--study", ct_ds.StudyInstanceUID, "--out", o, "--quiet")
        check("...and once more over a symbolic link: replaced by the file, the link not followed, no .export.* made",
              rc == 0 and not os.path.islink(dst) and open(dst, "rb").read() == ct_bytes
              and open(target, "rb").read() == b"target"
              and sorted(os.listdir(sdir)) == sorted([ct_ds.SOPInstanceUID + ".dcm", ".export.notours"]),
              (rc, se, os.listdir(sdir)))
    else:
        print("# SKIP export: no %s, the kill test not run" % shim)

    # de-identified, twice with one project, once with another
    def deid_export(name, *extra):
        o = os.path.join(T, name)
        r = run("--vault", v.dir, "--study", ct_ds.StudyInstanceUID, "--out", o, "--deidentify", "basic",
                "--quiet", *extra)
        files = glob.glob(os.path.join(o, "*", "*.dcm"))
        return r, [pydicom.dcmread(p) for p in files], files

    (rc, so, se), d1, f1 = deid_export("d1")
    check("de-identified export exits 0 with one file", rc == 0 and len(d1) == 1, (rc, so, se))
    if d1:
        d = d1[0]
        check("patient name removed", str(d.get("PatientName", "")) != str(ct_ds.PatientName))
        check("patient ID replaced", d.get("PatientID", "") != ct_ds.PatientID)
        check("SOP Instance UID replaced", d.SOPInstanceUID != ct_ds.SOPInstanceUID)
        check("Study Instance UID replaced", d.StudyInstanceUID != ct_ds.StudyInstanceUID)
        check("Patient Identity Removed = YES", d.get("PatientIdentityRemoved") == "YES")
        check("file named by its new UIDs",
              f1[0].endswith(os.path.join(d.SeriesInstanceUID, d.SOPInstanceUID + ".dcm")), f1[0])
        check("pixel data unchanged", d.PixelData == ct_ds.PixelData)
    (rc, so, se), d2, _ = deid_export("d2")
    check("same project: same pseudonymous UIDs and ID",
          d1 and d2 and d1[0].SOPInstanceUID == d2[0].SOPInstanceUID and d1[0].PatientID == d2[0].PatientID)
    (rc, so, se), d3, _ = deid_export("d3", "--project", "another-study")
    check("another project: other UIDs", rc == 0 and d1 and d3 and d1[0].SOPInstanceUID != d3[0].SOPInstanceUID)

    # escrow configured in the vault: the export carries it, reidentify opens it
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", os.path.join(T, "esc.key"),
                    "-out", os.path.join(v.dir, "escrow.crt"), "-days", "2", "-subj", "/CN=escrow"],
                   capture_output=True)
    os.chmod(os.path.join(T, "esc.key"), 0o600)
    conf = os.path.join(v.dir, "dicomvault.conf")
    text = open(conf).read()
    open(conf, "w").write(text.replace("[deid]\n", "[deid]\nescrow_cert = escrow.crt\n", 1))
    (rc, so, se), d4, f4 = deid_export("d4")
    check("export with [deid] escrow_cert: an Encrypted Attributes Sequence",
          rc == 0 and d4 and "EncryptedAttributesSequence" in d4[0], (rc, se))
    if f4:
        back = os.path.join(T, "back.dcm")
        p = subprocess.run([DV, "reidentify", "--key", os.path.join(T, "esc.key"), "--reason", "export escrow test",
                            "--vault", v.dir, f4[0], back], capture_output=True, text=True)
        check("reidentify restores the exported instance",
              p.returncode == 0 and pydicom.dcmread(back).SOPInstanceUID == ct_ds.SOPInstanceUID and
              pydicom.dcmread(back).PatientID == ct_ds.PatientID, p.stderr)
    open(conf, "w").write(text)

    # burned-in: masked by the vault's rule
    o = os.path.join(T, "us")
    rc, so, se = run("--vault", v.dir, "--study", us_study, "--out", o, "--deidentify", "basic", "--quiet")
    files = glob.glob(os.path.join(o, "*", "*.dcm"))
    check("burned-in image exported when a rule fits", rc == 0 and len(files) == 1, (rc, so, se))
    if files:
        m = pydicom.dcmread(files[0])
        px = np.frombuffer(m.PixelData, np.uint8).reshape(16, 16)
        check("its rectangle is masked, the rest kept",
              (px[:4] == 0).all() and (px[4:] == np.frombuffer(us[-256:], np.uint8).reshape(16, 16)[4:]).all())
    conf = os.path.join(v.dir, "dicomvault.conf")
    text = open(conf).read()
    open(conf, "w").write(text.replace("manufacturer = ACME", "manufacturer = OTHER"))
    o = os.path.join(T, "us2")
    rc, so, se = run("--vault", v.dir, "--study", us_study, "--out", o, "--deidentify", "basic", "--quiet")
    check("no rule fits: refused, exit 1, nothing written",
          rc == 1 and "refused" in se and not glob.glob(os.path.join(o, "*", "*.dcm")), (rc, se))
    open(conf, "w").write(text.replace("rect = 0,0,16,4", "rect = 0,0,16"))
    rc, so, se = run("--vault", v.dir, "--study", us_study, "--out", os.path.join(T, "us3"), "--deidentify", "basic")
    check("a bad masking rule in dicomvault.conf: exit 1 naming the file", rc == 1 and "dicomvault.conf" in se, se)
    open(conf, "w").write(text)

    # usage and unknown study
    for args, what in [((), "no arguments"), (("--study", "1.2.3"), "no --out"),
                       (("--study", "1.2.x", "--out", T + "/x"), "bad UID"),
                       (("--study", "1.2.3", "--out", T + "/x", "--deidentify", "nonsense"), "bad profile"),
                       (("--study", "1.2.3", "--out", T + "/x", "--project", "p"), "--project without --deidentify"),
                       (("--bogus",), "unknown option"), (("--study",), "missing value")]:
        rc, so, se = run("--vault", v.dir, *args)
        check(f"usage error ({what}) exits 2", rc == 2, (rc, se))
    # OUT in the vault: identified plaintext would land where none may be
    # (and backups copy it); refused before anything is made
    os.symlink(v.dir, os.path.join(T, "to-vault"))
    for o, what in [(v.dir, "the vault"), (os.path.join(v.dir, "objects"), "its objects folder"),
                    (os.path.join(v.dir, "new", "sub"), "a new folder in it"),
                    (os.path.join(T, "to-vault", "exp"), "through a symbolic link"),
                    (os.path.join(v.dir, "..", os.path.basename(v.dir), "exp"), "through ..")]:
        before = sorted(os.listdir(v.dir))
        rc, so, se = run("--vault", v.dir, "--study", ct_ds.StudyInstanceUID, "--out", o)
        check(f"--out in the vault ({what}): exit 2, said so, nothing made",
              rc == 2 and "inside the vault" in se and sorted(os.listdir(v.dir)) == before
              and not glob.glob(os.path.join(v.dir, "**", "*.dcm"), recursive=True), (rc, se))
    rc, so, se = run("--vault", v.dir, "--study", "1.2.3.4.5", "--out", os.path.join(T, "none"))
    check("unknown study: exit 1, said so", rc == 1 and "no such study" in se, se)
    rc, so, se = run("--vault", os.path.join(T, "nowhere"), "--study", "1.2.3", "--out", os.path.join(T, "n"))
    check("no vault: exit 1", rc == 1, se)
    rc, so, se = run("--help")
    check("--help exits 0", rc == 0 and "--deidentify" in so)

    # tampering: flip a byte of every stored object; the export must fail
    for p in first_objs:
        b = bytearray(open(p, "rb").read())
        b[len(b) // 2] ^= 1
        open(p, "wb").write(bytes(b))
    o = os.path.join(T, "tampered")
    rc, so, se = run("--vault", v.dir, "--study", ct_ds.StudyInstanceUID, "--out", o)
    check("tampered object: exit 1, integrity named, no file left",
          rc == 1 and ("authentic" in se or "integrity" in se or "tamper" in se)
          and not glob.glob(os.path.join(o, "*", "*.dcm")) and not glob.glob(os.path.join(o, ".export.*")), se)

    # audit
    p = subprocess.run([DV, "audit", "export", "--vault", v.dir], capture_output=True, text=True)
    recs = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
    ex = [r for r in recs if r.get("action") == "export"]
    # the tampered object's integrity failure is named as WADO-RS names
    # one: the patient (as the export's record keys it), study, series, SOP,
    # so that the patient's accounting (audit report --patient) lists it
    integ = [r["objects"] for r in recs if r.get("action") == "integrity-failure" and
             r["actor"].get("role") == "operator"]
    pkey = [r["objects"].get("patient") for r in ex if r["objects"].get("study") == ct_ds.StudyInstanceUID]
    check("the tampered export's integrity failure names patient, study, series and SOP",
          len(integ) == 1 and pkey and pkey[0] and integ[0].get("patient") == pkey[0] and
          integ[0].get("study") == ct_ds.StudyInstanceUID and integ[0].get("series") == ct_ds.SeriesInstanceUID and
          integ[0].get("sop") == ct_ds.SOPInstanceUID, (integ, pkey[:1]))
    # a record before the first file of each: original, beside the vault,
    # the two killed ones and their two re-runs, four de-identified, masked, refused, tampered; a
    # second where less was written than recorded: refused, tampered (none
    # for the killed one: SIGKILL); one for the unknown study
    check("every export attempt on a study is audited (%d records)" % (12 + killed_runs),
          len(ex) == 12 + killed_runs, len(ex))
    check("the refused and tampered exports: the intent, then what went",
          sum(1 for r in ex if r.get("reason", "").endswith(" to write")) == 9 + killed_runs
          and sum(1 for r in ex if " of 1 written" in r.get("reason", "")) == 2, [r.get("reason") for r in ex])
    check("failed exports are audited as failures",
          sum(1 for r in ex if r.get("outcome") not in ("success", 0, "0")) >= 3, [r.get("outcome") for r in ex])
    p = subprocess.run([DV, "audit", "verify", "--vault", v.dir], capture_output=True, text=True)
    check("audit chain verifies", p.returncode == 0, p.stdout + p.stderr)
    # the CLI signs what it writes: each export record is followed by a
    # checkpoint (unsigned, a forger could rewrite it unseen)
    after = [recs[i + 1].get("type") if i + 1 < len(recs) else None
             for i, r in enumerate(recs) if r.get("action") == "export"]
    check("each export record is signed at once (a checkpoint follows it)",
          after and all(t == "checkpoint" for t in after), after)
    def export_records():
        p = subprocess.run([DV, "audit", "export", "--vault", v.dir], capture_output=True, text=True)
        return [r for r in (json.loads(x) for x in p.stdout.splitlines() if x.strip()) if r.get("action") == "export"]

    # the record comes first: an export whose record cannot be written
    # writes nothing (the log moved away: no new one is started either)
    log = os.path.join(v.dir, "audit", "audit.log")
    os.rename(log, log + ".kept")
    o = os.path.join(T, "nolog")
    rc, so, se = run("--vault", v.dir, "--study", ct_ds.StudyInstanceUID, "--out", o)
    check("no audit log: exit 1, nothing exported, no new log",
          rc == 1 and "nothing exported" in se and not glob.glob(os.path.join(o, "**", "*.dcm"), recursive=True)
          and not os.path.exists(log), (rc, se))
    os.rename(log + ".kept", log)

    # a symbolic link planted as OUT/SERIES is not followed
    o = os.path.join(T, "planted")
    elsewhere = os.path.join(T, "elsewhere")
    os.makedirs(o)
    os.makedirs(elsewhere)
    os.symlink(elsewhere, os.path.join(o, ct_ds.SeriesInstanceUID))
    rc, so, se = run("--vault", v.dir, "--study", ct_ds.StudyInstanceUID, "--out", o)
    check("a symbolic link as OUT/SERIES: refused (exit 1), nothing written through it",
          rc == 1 and "symbolic link" in se and os.listdir(elsewhere) == [], (rc, se, os.listdir(elsewhere)))
    recs = export_records()
    check("...and recorded: the intent, then the failure",
          len(recs) >= 2 and recs[-2]["reason"].endswith("1 to write") and recs[-1]["outcome"] == "failure"
          and "0 of 1 written" in recs[-1]["reason"], [r.get("reason") for r in recs[-2:]])

    # SIGTERM in the middle: the file being written is finished, the rest
    # is not started, and the record says how far it went. stderr is not
    # read until the signal is sent: its pipe fills with "exported" lines
    # and holds the export in the middle, so the signal always lands there
    o = os.path.join(T, "interrupted")
    px = subprocess.Popen([DV, "export", "--vault", v.dir, "--study", many_study, "--out", o],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen, same = -1, 0
    for _ in range(600):
        time.sleep(0.1)
        n = len(glob.glob(os.path.join(o, "*", "*.dcm")))
        same = same + 1 if n == seen and n > 0 else 0
        seen = n
        if same >= 5:
            break
    px.terminate()
    so, se = px.communicate(timeout=120)
    se = se.decode(errors="replace")
    files = glob.glob(os.path.join(o, "*", "*.dcm"))
    check("SIGTERM in the middle: exit 1, some but not all written, no temporary file left",
          px.returncode == 1 and 0 < len(files) < MANY and not glob.glob(os.path.join(o, "*", ".export.*"))
          and "stopped by signal" in se, (px.returncode, len(files), se[-300:]))
    recs = export_records()
    check("...recorded before the first file (%d to write), then how far it went" % MANY,
          len(recs) >= 2 and recs[-2]["reason"].endswith(f"{MANY} to write")
          and recs[-1]["outcome"] == "failure" and f"{len(files)} of {MANY} written" in recs[-1]["reason"]
          and "stopped by a signal" in recs[-1]["reason"]
          and recs[-1]["objects"]["counts"]["instances"] == len(files), [r.get("reason") for r in recs[-2:]])
    p = subprocess.run([DV, "audit", "verify", "--vault", v.dir], capture_output=True, text=True)
    check("audit chain still verifies", p.returncode == 0, p.stdout + p.stderr)

    blob = b""
    for p in glob.glob(os.path.join(v.dir, "**", "*"), recursive=True):
        if os.path.isfile(p):
            blob += open(p, "rb").read()
    check("no patient name in the clear in the vault", b"Export^Burned" not in blob and b"CompressedSamples" not in blob)
finally:
    shutil.rmtree(T, ignore_errors=True)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
