"""disk_full.py DV: `dicomvault serve` on a vault whose file system fills
up, a real ENOSPC (a tmpfs of DISK_MB mounted by the test in a mount
namespace of its own, so that it goes when the test ends; skipped where
mounting is not allowed).

* Five instances stored, then the file system filled to the last byte.
* STOW-RS with a Content-Length: 507 problem+json before the body is read.
  Chunked (no length): 409, the part in FailedSOPSequence with 0xA700
  (out of resources); nothing of it is indexed.
* Every answer while full is either a success whose audit record is in the
  log, or an error (problem+json): QIDO-RS and WADO-RS go on until the
  audit log itself can take no more, then answer 500 rather than serve an
  access that left no record ("audit", fail closed; the log's short write
  is cut back, so the log stays a whole chain). A login either succeeds
  with its record or is refused; a logout answers.
* Space freed: the same server answers QIDO again, stores a new instance,
  and every instance stored before the disk filled comes back byte for
  byte; `dicomvault audit verify` says intact; the log ends with a newline.

Run as /usr/bin/python3 tests/integration/disk_full.py build/check/dicomvault.
Prints ok/not ok lines; exits 1 if any check failed. Layer: tests."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import Tap  # noqa: E402

TAP = Tap("disk_full")
check, skip = TAP.check, TAP.skip
DV = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/check/dicomvault")
DISK_MB = 24

# a mount namespace of our own (the tmpfs is gone with the process, even
# if the test is killed): re-run under unshare once
if os.environ.get("DV_DISKFULL_NS") != "1":
    if os.geteuid() == 0 and shutil.which("unshare") and subprocess.run(
            ["unshare", "-m", "--propagation", "private", "true"], capture_output=True).returncode == 0:
        os.environ["DV_DISKFULL_NS"] = "1"
        os.execvp("unshare", ["unshare", "-m", "--propagation", "private", sys.executable,
                              os.path.abspath(__file__), DV])
    skip("needs root and unshare -m to mount a small file system")

try:
    import dsgen
    import vault_state
    from dvserver import PASSWORD, Vault, finish
except ImportError:
    skip("no pydicom")

T = tempfile.mkdtemp(prefix="dv-diskfull.")
MNT = os.path.join(T, "mnt")
P = "1.2.826.0.1.3680043.2.1143.88."
v = None


def cleanup():
    finish(T, v)
    subprocess.run(["umount", "-l", MNT], capture_output=True)
    shutil.rmtree(T, ignore_errors=True)


def instance(i, kb=64):
    """A secondary capture of about kb KiB, in study 1."""
    side = int((kb * 1024 // 2) ** 0.5)
    ds = dsgen.sc(P + "1.1.%d" % i, P + "1", P + "1.1", "FULL^DISK", "FULL88", rows=side, cols=side,
                  pixel=bytes((i + k) & 0xFF for k in range(side * side * 2)), BitsAllocated=16,
                  BitsStored=16, HighBit=15)
    return dsgen.part10(ds)


def multipart(datas):
    b = uuid.uuid4().hex
    body = b"".join(b"--" + b.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + d + b"\r\n"
                    for d in datas) + b"--" + b.encode() + b"--\r\n"
    return b, body


def stow_curl(datas, chunked):
    """STOW-RS with curl (which reads an answer sent before the body is
    taken): (status, body bytes, content type)."""
    b, body = multipart(datas)
    f = os.path.join(T, "body.bin")
    with open(f, "wb") as o:
        o.write(body)
    hdr = os.path.join(T, "hdr.txt")
    cmd = ["curl", "-s", "--tlsv1.3", "--cacert", os.path.join(v.dir, "keys", "tls.crt"),
           "-H", "Authorization: Bearer " + v.token, "-H", "Accept: application/dicom+json",
           "-H", 'Content-Type: multipart/related; type="application/dicom"; boundary=' + b,
           "--data-binary", "@" + f, "-D", hdr, "-o", os.path.join(T, "out.bin"), "-w", "%{http_code}",
           "https://127.0.0.1:%d/dicom-web/studies" % v.port]
    if chunked:
        cmd[1:1] = ["-H", "Transfer-Encoding: chunked"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    out = open(os.path.join(T, "out.bin"), "rb").read() if os.path.exists(os.path.join(T, "out.bin")) else b""
    ctype = ""
    if os.path.exists(hdr):
        for line in open(hdr, encoding="latin-1"):
            if line.lower().startswith("content-type:"):
                ctype = line.split(":", 1)[1].strip()
    for x in ("out.bin", "hdr.txt", "body.bin"):
        if os.path.exists(os.path.join(T, x)):
            os.unlink(os.path.join(T, x))
    return int(r.stdout or 0), out, ctype


def problem(st, h, body):
    """An error answered as problem+json."""
    try:
        return st >= 400 and h.get("content-type", "").startswith("application/problem+json") and \
            json.loads(body).get("status") == st
    except ValueError:
        return False


def records(action):
    return [r for r in vault_state.audit_records(v.dir) if r.get("action") == action]


def fill(path):
    """Writes zeros into path until the file system has no byte left."""
    with open(path, "wb", buffering=0) as f:
        chunk = bytes(1 << 16)
        while True:
            try:
                f.write(chunk)
            except OSError:
                break
        small = bytes(512)
        while True:
            try:
                f.write(small)
            except OSError:
                break


def main():
    global v
    os.makedirs(MNT)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0700" % DISK_MB, "tmpfs", MNT],
                      capture_output=True).returncode != 0:
        skip("cannot mount a tmpfs")
    v = Vault(DV, MNT).serve()
    v.login()
    kept = [instance(i) for i in range(5)]
    st, j = v.stow(kept)
    check("five instances stored before the disk fills", st == 200 and
          len((j or {}).get("00081199", {}).get("Value", [])) == 5, (st, j))
    # an API token for after the disk is full (a TOTP code is taken once)
    r = subprocess.run([DV, "token", "create", "--user", "admin", "--vault", v.dir, "--json"],
                       capture_output=True, text=True)
    api_token = json.loads(r.stdout)["token"] if r.returncode == 0 else None
    check("an API token made", api_token is not None, r.stderr)
    filler = os.path.join(MNT, "filler")
    fill(filler)
    check("the file system is full", os.statvfs(MNT).f_bavail == 0)

    st, body, ctype = stow_curl([instance(10, kb=256)], chunked=False)
    check("STOW with a Content-Length on a full disk: 507 problem+json", st == 507 and
          ctype.startswith("application/problem+json") and b"free space" in body, (st, ctype, body[:300]))
    st, body, ctype = stow_curl([instance(11, kb=256)], chunked=True)
    try:
        j = json.loads(body)
    except ValueError:
        j = {}
    failed = j.get("00081198", {}).get("Value", [])
    check("chunked STOW on a full disk: 409, the part failed with 0xA700", st == 409 and len(failed) == 1 and
          failed[0].get("00081197", {}).get("Value") == [0xA700] and
          not j.get("00081199", {}).get("Value"), (st, body[:400]))
    st, _, b = v.request("GET", "/dicom-web/studies/%s/instances" % (P + "1"),
                         headers={"Accept": "application/dicom+json"})
    n_inst = len(json.loads(b)) if st == 200 and b else None
    check("the refused instances are not indexed", n_inst in (None, 5), (st, b[:200]))

    # reads go on while the audit log has room, then refuse: never an
    # answer without its record
    q0, r0 = len(records("query")), len(records("retrieve"))
    ok_q = ok_r = 0
    bad = []
    sop = P + "1.1.0"
    for _ in range(40):
        st, h, b = v.request("GET", "/dicom-web/studies", headers={"Accept": "application/dicom+json"})
        if st == 200:
            ok_q += 1
        elif not (st == 500 and problem(st, h, b)):
            bad.append(("qido", st, b[:200]))
        st, h, b = v.request("GET", "/dicom-web/studies/%s/series/%s/instances/%s" % (P + "1", P + "1.1", sop),
                             headers={"Accept": 'multipart/related; type="application/dicom"'})
        if st == 200:
            ok_r += 1
            if kept[0] not in b:
                bad.append(("wado body", st, len(b)))
        elif not (st == 500 and problem(st, h, b)):
            bad.append(("wado", st, b[:200]))
    check("while full, every read answer is a 200 or a 500 problem+json", not bad, bad[:3])
    check("the audit log filled up: some reads were refused", ok_q + ok_r < 80, (ok_q, ok_r))
    check("every query answered has its audit record", len(records("query")) - q0 == ok_q,
          (len(records("query")) - q0, ok_q))
    check("every retrieval answered has its audit record", len(records("retrieve")) - r0 == ok_r,
          (len(records("retrieve")) - r0, ok_r))
    v.err.seek(0)
    log = v.err.read()
    check("the refusals are logged as audit write failures", "cannot write the audit record" in log, log[-600:])

    logins0 = len([r for r in records("login") if r.get("outcome") == "success"])
    code = subprocess.run(["oathtool", "--totp", "-b", "-N", "+30 seconds", v.secret], capture_output=True,
                          text=True).stdout.strip()   # the next step: one of clock skew is taken
    st, h, b = v.request("POST", "/api/auth/login",
                         json.dumps({"username": "admin", "password": PASSWORD, "totp": code}),
                         {"Content-Type": "application/json"}, auth=False)
    if st == 200:
        check("a login on a full disk that succeeds has its record",
              len([r for r in records("login") if r.get("outcome") == "success"]) == logins0 + 1)
    else:
        check("a login on a full disk is refused with a server error (problem+json)",
              st >= 500 and problem(st, h, b), (st, b[:200]))
    st, h, b = v.request("POST", "/api/auth/logout")
    check("a logout on a full disk answers (204, or a problem+json error)", st in (200, 204) or problem(st, h, b),
          (st, b[:200]))
    check("the server is still running", v.proc.poll() is None)
    with open(os.path.join(v.dir, "audit", "audit.log"), "rb") as f:
        tail = f.read()
    check("the audit log still ends with a whole record", tail.endswith(b"\n"), tail[-120:])

    os.unlink(filler)
    v.token = api_token
    st, _, b = v.request("GET", "/dicom-web/studies", headers={"Accept": "application/dicom+json"})
    check("space freed: QIDO answers again", st == 200 and P + "1" in b.decode(), (st, b[:200]))
    st, j = v.stow([instance(20)])
    check("space freed: a new instance is stored", st == 200 and
          len((j or {}).get("00081199", {}).get("Value", [])) == 1, (st, j))
    same = 0
    for i, d in enumerate(kept):
        st, _, b = v.request("GET", "/dicom-web/studies/%s/series/%s/instances/%s" % (P + "1", P + "1.1",
                                                                                      P + "1.1.%d" % i),
                             headers={"Accept": 'multipart/related; type="application/dicom"'})
        same += st == 200 and d in b
    check("every instance stored before the disk filled comes back byte for byte", same == 5, same)
    v.stop()
    r = subprocess.run([DV, "audit", "verify", "--vault", v.dir], capture_output=True, text=True)
    check("audit verify: intact", r.returncode == 0 and "intact" in r.stdout, (r.stdout + r.stderr)[-400:])


TAP.run(main, cleanup)
