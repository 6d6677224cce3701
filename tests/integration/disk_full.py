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
* DICOM-TLS (lib/dul.py as the peer) on the same full disk: a C-STORE is
  refused (A700H, out of resources); C-FIND and C-GET answer only after
  their audit record is written: each either answers in full with its
  record, or is refused (C000H / A702H) with no match and no image sent.
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
    import pydicom
    import dsgen
    import dul
    import vault_state
    from dvserver import PASSWORD, Vault, finish, free_port
except ImportError:
    skip("no pydicom")
dsgen.need_dimse(DV, skip)

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
    else:
        # as clients do for large bodies: the refusal comes before the body
        # is sent (without it, the server's early answer and close could be
        # lost to a reset while the client is still sending)
        cmd[1:1] = ["-H", "Expect: 100-continue"]
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


def dimse_assoc():
    """An association of PEER: C-FIND (1), C-GET (3), storage of SC with
    the SCP role for C-GET's sub-operations (5); the socket or None."""
    s = dul.connect(DICOM_PORT, os.path.join(T, "peer.crt"), os.path.join(T, "peer.key"),
                    os.path.join(v.dir, "keys", "tls.crt"))
    s.sendall(dul.assoc_rq("PEER", "DICOMVAULT", [(1, dul.FIND_STUDY, [dul.IMPLICIT]),
                                                  (3, dul.GET_STUDY, [dul.IMPLICIT]),
                                                  (5, dsgen.SC, [dul.IMPLICIT])], roles=[(dsgen.SC, 1, 1)]))
    t, _ = dul.read_pdu(s)
    if t != 2:
        s.close()
        return None
    return s


def c_find(s, mid):
    """A C-FIND of every study: (final status, answers)."""
    rq = dul.command({0x00000002: dul.FIND_STUDY, 0x00000100: 0x0020, 0x00000110: mid, 0x00000700: 0,
                      0x00000800: 0x0000})
    s.sendall(dul.pdata(1, rq, True) + dul.pdata(1, dul.dataset({0x00080052: "STUDY", 0x0020000D: ""}), False))
    m, n = dul.Messages(s), 0
    while True:
        c, data = m.next()
        if data is None:
            return dul.us(c[0x00000900]), n
        n += 1


def c_get(s, mid, study):
    """A C-GET of a study, every sub-operation answered with success:
    (final status, images received)."""
    rq = dul.command({0x00000002: dul.GET_STUDY, 0x00000100: 0x0010, 0x00000110: mid, 0x00000700: 0,
                      0x00000800: 0x0000})
    s.sendall(dul.pdata(3, rq, True) + dul.pdata(3, dul.dataset({0x00080052: "STUDY", 0x0020000D: study}), False))
    m, got = dul.Messages(s), 0
    while True:
        c, _ = m.next()
        if dul.us(c[0x00000100]) == 0x0001:   # a C-STORE sub-operation
            got += 1
            s.sendall(dul.pdata(5, dul.command({0x00000002: dsgen.SC, 0x00000100: 0x8001,
                                                 0x00000120: dul.us(c[0x00000110]), 0x00000800: 0x0101,
                                                 0x00000900: 0, 0x00001000: c[0x00001000].rstrip(b"\0").decode()}),
                                  True))
            continue
        st = dul.us(c[0x00000900])
        if st != 0xFF00:
            return st, got


def c_store(s, mid, data, sop):
    """A C-STORE of an implicit VR data set on context 5: its status."""
    rq = dul.command({0x00000002: dsgen.SC, 0x00000100: 0x0001, 0x00000110: mid, 0x00000700: 0,
                      0x00000800: 0x0000, 0x00001000: sop})
    s.sendall(dul.pdata(5, rq, True))
    for i in range(0, len(data), 16000):
        s.sendall(dul.pdata(5, data[i:i + 16000], False, i + 16000 >= len(data)))
    c, _ = dul.Messages(s).next()
    return dul.us(c[0x00000900])


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
    global DICOM_PORT
    fp = dsgen.cert(T, "peer")
    v = Vault(DV, MNT)
    v.conf('\n[peer "PEER"]\nfingerprint = %s\nrights = echo, store, find, get\n' % fp)
    DICOM_PORT = free_port()
    v.serve(dicom_port=DICOM_PORT)
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
    # a part past the spool's memory (1 MiB) fails while it arrives: its
    # entry still names it, so that the client knows which to send again
    st, body, ctype = stow_curl([instance(12, kb=1536)], chunked=True)
    try:
        j = json.loads(body)
    except ValueError:
        j = {}
    failed = j.get("00081198", {}).get("Value", [])
    check("chunked STOW of 1.5 MB on a full disk: the failed part names its SOP Instance and Class UIDs",
          st == 409 and len(failed) == 1 and failed[0].get("00081197", {}).get("Value") == [0xA700] and
          failed[0].get("00081155", {}).get("Value") == [P + "1.1.12"] and
          failed[0].get("00081150", {}).get("Value") == ["1.2.840.10008.5.1.4.1.1.7"], (st, body[:400]))
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

    # DICOM on the same full disk
    s = dimse_assoc()
    check("a DICOM-TLS association on the full disk", s is not None)
    if s is not None:
        ds = dsgen.sc(P + "1.1.30", P + "1", P + "1.1", "FULL^DISK", "FULL88", rows=256, cols=256,
                      pixel=bytes(65536))
        st = c_store(s, 1, dsgen.implicit(ds), P + "1.1.30")
        check("C-STORE on a full disk: A700H (out of resources)", st == 0xA700, hex(st))
        f0, g0 = len(records("query")), len(records("retrieve"))
        finds, gets, bad = [], [], []
        for i in range(20):
            st, n = c_find(s, 10 + 2 * i)
            finds.append((st, n))
            if not ((st == 0 and n == 1) or (st == 0xC000 and n == 0)):
                bad.append(("find", hex(st), n))
            st, n = c_get(s, 11 + 2 * i, P + "1")
            gets.append((st, n))
            if not ((st == 0 and n == 5) or (st == 0xA702 and n == 0)):
                bad.append(("get", hex(st), n))
        s.sendall(dul.RELEASE_RQ)
        s.close()
        check("while full, each C-FIND answers in full or is refused (C000H) with no match sent, "
              "each C-GET sends all or is refused (A702H) with no image sent", not bad, bad[:4])
        check("the audit log is full for DICOM too: some C-FINDs and C-GETs were refused",
              any(st != 0 for st, _ in finds) and any(st != 0 for st, _ in gets), (finds, gets))
        qf = [r for r in records("query")[f0:] if "C-FIND" in r.get("reason", "")]
        rg = [r for r in records("retrieve")[g0:] if "C-GET" in r.get("reason", "")]
        check("every C-FIND answered has its record", len(qf) == sum(1 for st, _ in finds if st == 0),
              (len(qf), finds))
        check("every C-GET that sent images has its record, written before them ('5 to send')",
              len(rg) == sum(1 for st, _ in gets if st == 0) and all(r["reason"].endswith(": 5 to send") for r in rg),
              [r.get("reason") for r in rg][:3])

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
