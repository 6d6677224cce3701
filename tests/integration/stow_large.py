#!/usr/bin/python3
"""STOW-RS of a body of several GB in bounded memory (issue 3): one
request, streamed by the client as it is sent, carries three multi-frame
instances, one with Pixel Data over 2 GiB (a length past 31 bits) and a
body past 4 GiB (offsets past 32 bits). Every instance is stored, the
server's peak RSS grows by less than 64 MB, the instance over 2 GiB comes
back by WADO-RS byte for byte (SHA-256 over the streamed part), its last
frame (starting past 2 GiB) is the frame that was sent, and the index
and audit name all three. Then storescu +tls sends the instance over
2 GiB as a file by C-STORE (issue 5): stored in bounded memory, its data
set retrieved by WADO-RS byte for byte. The pixels are 1 MiB blocks, each
numbered, so that a reordered, repeated or dropped block changes the hash.

STOW_LARGE_MB (default 4400) sets the body's size in MB (the instance
over 2 GiB is kept whenever it is at least 2,300 MB; smaller sizes are for
trying the test quickly). Prints "ok - NAME" / "not ok - NAME"."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import dsgen  # noqa: E402
from dvserver import Vault, free_port  # noqa: E402
from tap import Tap  # noqa: E402

DV = os.path.abspath(sys.argv[1])
P = "1.2.826.0.1.3680043.2.1143.61."
TAP = Tap("stow_large")
check = TAP.check
TMP = tempfile.mkdtemp(prefix="dv-stowlarge-")
MB = 1000 * 1000
MIB = 1 << 20
ROWS, COLS = 1024, 512              # 16-bit: 1 MiB per frame
BLOCK = os.urandom(MIB)


def frame(i):
    """Frame i (0-based): the random block with its number in front."""
    return i.to_bytes(8, "little") + BLOCK[8:]


class Inst:
    """A multi-frame instance of n frames of 1 MiB: its Part 10 head
    (everything before the Pixel Data value) made by pydicom, then the
    frames."""

    def __init__(self, k, n):
        self.sop = P + f"1.1.{k}"
        self.n = n
        ds = dsgen.sc(self.sop, P + "1", P + "1.1", "LARGE^STOW", "LARGE61", n=k, rows=ROWS, cols=COLS, pixel=b"")
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.NumberOfFrames = n
        del ds.PixelData
        head = dsgen.part10(ds)
        # Pixel Data, OW, explicit VR little endian: tag, VR, 2 reserved, 32-bit length
        self.head = head + b"\xe0\x7f\x10\x00OW\x00\x00" + (n * MIB).to_bytes(4, "little")
        self.size = len(self.head) + n * MIB

    def chunks(self):
        yield self.head
        for i in range(self.n):
            yield frame(i)


def vm(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def stow_stream(v, insts):
    """POSTs the instances as one multipart/related body, sent as it is
    made: (status, JSON answer or None, bytes sent, the parts' SHA-256)."""
    b = uuid.uuid4().hex.encode()
    pre = b"--" + b + b"\r\nContent-Type: application/dicom\r\n\r\n"
    end = b"--" + b + b"--\r\n"
    total = sum(len(pre) + x.size + 2 for x in insts) + len(end)
    c = v.conn()
    c.timeout = 600
    c.putrequest("POST", "/dicom-web/studies")
    c.putheader("Authorization", "Bearer " + v.token)
    c.putheader("Content-Type", f'multipart/related; type="application/dicom"; boundary={b.decode()}')
    c.putheader("Accept", "application/dicom+json")
    c.putheader("Content-Length", str(total))
    c.endheaders()
    sent, hashes = 0, []
    for x in insts:
        h = hashlib.sha256()
        c.send(pre)
        for piece in x.chunks():
            h.update(piece)
            c.send(piece)
            sent += len(piece)
        c.send(b"\r\n")
        sent += len(pre) + 2
        hashes.append(h.hexdigest())
    c.send(end)
    sent += len(end)
    r = c.getresponse()
    data = r.read()
    c.close()
    try:
        js = json.loads(data)
    except ValueError:
        js = None
    return r.status, js, sent, total, hashes


def meta_end(b):
    """Where the file meta group of a Part 10 file starting b ends."""
    return 132 + 12 + int.from_bytes(b[140:144], "little")


def wado_hash(v, path, skip_meta=False):
    """GETs one instance by WADO-RS, hashing its single part (from its
    data set on, with skip_meta) as it streams: (status, SHA-256 or None,
    bytes hashed)."""
    c = v.conn()
    c.timeout = 600
    c.request("GET", path, headers={"Authorization": "Bearer " + v.token,
                                    "Accept": 'multipart/related; type="application/dicom"'})
    r = c.getresponse()
    if r.status != 200:
        r.read()
        c.close()
        return r.status, None, 0
    m = re.search(r'boundary="?([^";]+)"?', r.getheader("Content-Type", ""))
    delim = b"\r\n--" + (m.group(1).encode() if m else b"?")
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = r.read(65536)
        if not d:
            c.close()
            return 200, None, 0
        buf += d
    buf = buf[buf.index(b"\r\n\r\n") + 4:]
    while skip_meta and len(buf) < 144:
        d = r.read(65536)
        if not d:
            break
        buf += d
    if skip_meta:
        buf = buf[meta_end(buf):]
    h, n, keep = hashlib.sha256(), 0, len(delim) + 8
    while True:
        d = r.read(MIB)
        if not d:
            break
        buf += d
        if len(buf) > keep:
            h.update(buf[:-keep])
            n += len(buf) - keep
            buf = buf[-keep:]
    c.close()
    i = buf.find(delim)
    if i < 0 or not buf[i + len(delim):].startswith(b"--"):
        return 200, None, n
    h.update(buf[:i])
    return 200, h.hexdigest(), n + i


def main():
    want_mb = int(os.environ.get("STOW_LARGE_MB", "4400"))
    if shutil.disk_usage(TMP).free < (want_mb * MB) * 2.5:
        TAP.skip(f"less than {want_mb * 2.5 / 1000:.1f} GB free in {TMP}")
    big = (2300 * MB) // MIB if want_mb >= 2300 else max(1, want_mb * MB // MIB // 2)
    rest = max(2, want_mb * MB // MIB - big)
    insts = [Inst(1, big), Inst(2, rest // 2), Inst(3, rest - rest // 2)]
    # AddressSanitizer keeps freed blocks in a quarantine of up to 256 MB,
    # resident: a smaller one, so that RSS measures what the server holds
    asan = os.environ.get("ASAN_OPTIONS", "")
    os.environ["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=8"
    v = Vault(DV, TMP)
    dimse = shutil.which("storescu") is not None
    if dimse:
        fp = dsgen.cert(TMP, "scu")
        v.conf(f'\n[peer "LARGESCU"]\nfingerprint = {fp}\nrights = echo, store\n')
    dport = free_port()
    v.serve(dport if dimse else None)
    v.login()
    pid = v.proc.pid
    hwm0 = vm(pid, "VmHWM")
    t0 = time.monotonic()
    st, js, sent, total, hashes = stow_stream(v, insts)
    secs = time.monotonic() - t0
    print(f"# {sent / MB:,.0f} MB sent in {secs:.1f} s ({sent / MB / secs:,.0f} MB/s); "
          f"instances of {', '.join(f'{x.size / MB:,.0f}' for x in insts)} MB")
    check("the client sent the whole body", sent == total, (sent, total))
    ok = [i.get("00081155", {}).get("Value", [""])[0]
          for i in (js or {}).get("00081199", {}).get("Value", [])]
    check(f"STOW of a {total / MB:,.0f} MB body (past 4 GiB when run in full): 200, every instance stored",
          st == 200 and sorted(ok) == sorted(x.sop for x in insts) and "00081198" not in (js or {}),
          (st, json.dumps(js)[:400] if js else None))
    hwm1 = vm(pid, "VmHWM")
    print(f"# server peak RSS {hwm0 >> 20} MiB before, {hwm1 >> 20} MiB after")
    check("server peak RSS grew by less than 64 MB over the upload", hwm1 - hwm0 < 64 * MIB,
          f"{hwm0 >> 20} -> {hwm1 >> 20} MiB")

    x = insts[0]
    path = f"/dicom-web/studies/{P}1/series/{P}1.1/instances/{x.sop}"
    st, digest, n = wado_hash(v, path)
    check(f"WADO-RS of the {x.size / MB:,.0f} MB instance: its stored bytes (SHA-256), streamed",
          st == 200 and digest == hashes[0] and n == x.size, (st, n, x.size))
    hwm2 = vm(pid, "VmHWM")
    check("server peak RSS grew by less than 64 MB over the retrieval too", hwm2 - hwm0 < 64 * MIB,
          f"{hwm0 >> 20} -> {hwm2 >> 20} MiB")
    c = v.conn()
    c.request("GET", f"{path}/frames/{x.n}",
              headers={"Authorization": "Bearer " + v.token,
                       "Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"})
    r = c.getresponse()
    body = r.read()
    c.close()
    check(f"its last frame ({x.n}, starting {(x.n - 1) * MIB / MIB / 1024:.2f} GiB into Pixel Data): "
          "the frame sent", r.status == 200 and frame(x.n - 1) in body and len(body) < MIB + 4096,
          (r.status, len(body)))
    st, _, data = v.request("GET", f"/dicom-web/studies/{P}1/series/{P}1.1/instances",
                            headers={"Accept": "application/dicom+json"})
    found = sorted(i.get("00080018", {}).get("Value", [""])[0] for i in json.loads(data)) if st == 200 else []
    check("QIDO lists the three instances", found == sorted(x.sop for x in insts), (st, found))
    log = open(os.path.join(v.dir, "audit", "audit.log"), errors="replace").read() \
        if os.path.exists(os.path.join(v.dir, "audit", "audit.log")) else ""
    check("the audit names each stored instance", all(x.sop in log for x in insts), len(log))
    st, _, _ = v.request("GET", "/dicom-web/studies", headers={"Accept": "application/dicom+json"})
    check("the server is still serving", st == 200 and v.proc.poll() is None, st)
    if not dimse:
        print("# SKIP the C-STORE part: no storescu (scripts/install-deps.sh installs dcmtk)")
        return

    # ---- the same size by C-STORE: storescu +tls of a file ----
    y = Inst(4, x.n)
    f = os.path.join(TMP, "large.dcm")
    h = hashlib.sha256()
    with open(f, "wb") as out:
        for piece in y.chunks():
            out.write(piece)
            h.update(piece if piece is not y.head else piece[meta_end(y.head):])
    del x, insts
    t0 = time.monotonic()
    p = subprocess.run(["storescu", "-to", "60", "-ta", "60", "-td", "600", "+tls", os.path.join(TMP, "scu.key"),
                        os.path.join(TMP, "scu.crt"), "+cf", os.path.join(v.dir, "keys", "tls.crt"),
                        "-aet", "LARGESCU", "-aec", "DICOMVAULT", "127.0.0.1", str(dport), f],
                       capture_output=True, text=True, timeout=900)
    print(f"# C-STORE of {y.size / MB:,.0f} MB in {time.monotonic() - t0:.1f} s")
    check(f"storescu +tls of the {y.size / MB:,.0f} MB file: stored", p.returncode == 0,
          (p.returncode, p.stderr[-400:]))
    os.unlink(f)
    hwm3 = vm(pid, "VmHWM")
    check("server peak RSS grew by less than 64 MB over the C-STORE", hwm3 - hwm0 < 64 * MIB,
          f"{hwm0 >> 20} -> {hwm3 >> 20} MiB")
    st, digest, n = wado_hash(v, f"/dicom-web/studies/{P}1/series/{P}1.1/instances/{y.sop}", skip_meta=True)
    check("WADO-RS of it: the data set storescu sent, byte for byte (SHA-256)",
          st == 200 and digest == h.hexdigest() and n == y.size - meta_end(y.head), (st, n))


TAP.run(main, lambda: shutil.rmtree(TMP, ignore_errors=True))
