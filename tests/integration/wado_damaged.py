"""wado_damaged.py DV: WADO-RS of stored objects whose encapsulated frames
are damaged or cannot be split into frames. Such objects are stored as
received (STOW-RS keeps what it is sent); reading them is the object's
fault, never the server's: `/rendered` of a frame the decoder refuses
(an empty fragment, a garbage JPEG, a JPEG cut in half, which libjpeg
decoded with made-up grey rows before session 26, a garbage RLE segment)
answers 406
problem+json, as `/frames` asked for decompressed does; `/frames/1` and
`/bulkdata/7FE00010` of fragments nothing splits into frames (more
fragments than frames, no offset table, no end-of-image marker; RLE
likewise) answer 404 problem+json; Number of Frames 4294967295 over two
fragments too, without asking for a table of that many frames. Before
session 23 each was a 500, logged as a server error. The instance itself
is still retrievable whole; the server keeps serving.

Run as /usr/bin/python3 tests/integration/wado_damaged.py build/check/dicomvault.
Prints ok/not ok lines; exits 1 if any check failed. Layer: tests."""
import io
import os
import struct
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import Tap  # noqa: E402

TAP = Tap("wado_damaged")
check, skip = TAP.check, TAP.skip
DV = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/check/dicomvault")
try:
    import dsgen
    from dvserver import Vault, finish
except ImportError:
    skip("no pydicom")

P = "1.2.826.0.1.3680043.2.1143.93."
JPEG, RLE = "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.5"
T = tempfile.mkdtemp(prefix="dv-wadodmg.")
v = None


def item(b):
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(b)) + b


def encapsulated(n, frags, ts, frames):
    """A Part 10 file: an 8-bit 16x16 image whose Pixel Data holds frags
    (an empty Basic Offset Table first), Number of Frames frames."""
    ds = dsgen.sc(P + "1.1.%d" % n, P + "1", P + "1.1", "DAMAGED^FRAMES", "DMG93", rows=16, cols=16)
    del ds.PixelData
    ds.NumberOfFrames = frames
    ds.file_meta.TransferSyntaxUID = ts
    b = io.BytesIO()
    ds.save_as(b, write_like_original=False)
    px = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF) + item(b"") + \
        b"".join(item(f) for f in frags) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return P + "1.1.%d" % n, b.getvalue() + px


def garbage_jpeg(n, eoi=True):
    return b"\xff\xd8" + bytes((i * 7) % 254 for i in range(n)) + (b"\xff\xd9" if eoi else b"\x00\x00")


def real_jpeg():
    """A JPEG Baseline frame of a 16x16 8-bit grey gradient (PIL)."""
    from PIL import Image
    im = Image.frombytes("L", (16, 16), bytes((x * 16 + y * 3) % 256 for y in range(16) for x in range(16)))
    b = io.BytesIO()
    im.save(b, "JPEG", quality=95)
    return b.getvalue()


def zero_tail_jpeg():
    """A whole 16x16 JPEG whose scan data ends in a stuffed FF 00 (searched
    for: about 1 frame in 10 of random pixels), or None."""
    import random
    from PIL import Image
    rnd = random.Random(1)
    for _ in range(200):
        im = Image.frombytes("L", (16, 16), bytes(rnd.randrange(256) for _ in range(256)))
        b = io.BytesIO()
        im.save(b, "JPEG", quality=90)
        if b.getvalue()[-4:] == b"\xff\x00\xff\xd9":
            return b.getvalue()
    return None


def progressive_jpeg():
    """A 16x16 progressive JPEG (several scans)."""
    from PIL import Image
    im = Image.frombytes("L", (16, 16), bytes((x * 13 + y * 7) % 256 for y in range(16) for x in range(16)))
    b = io.BytesIO()
    im.save(b, "JPEG", quality=95, progressive=True)
    return b.getvalue()


def get(sop, suffix, accept):
    st, h, b = v.request("GET", "/dicom-web/studies/%s1/series/%s1.1/instances/%s%s" % (P, P, sop, suffix),
                         headers={"Accept": accept})
    problem = h.get("content-type", "").startswith("application/problem+json")
    return st, problem


def main():
    global v
    v = Vault(DV, T).serve()
    v.login()
    whole = real_jpeg()
    sos = whole.index(b"\xff\xda")
    cut = whole[:sos + (len(whole) - sos) // 2] + b"\xff\xd9"   # half its scan: libjpeg made up grey rows
    cut += b"\x00" * (len(cut) % 2)
    prog = progressive_jpeg()
    second_scan = prog.index(b"\xff\xda", prog.index(b"\xff\xda") + 2)
    between = prog[:second_scan]   # cut after its first scan, between two scans
    between += b"\x00" * (len(between) % 2)
    undecodable = [encapsulated(1, [b"", garbage_jpeg(10)], JPEG, 2), encapsulated(2, [garbage_jpeg(100)], JPEG, 1),
                   encapsulated(3, [b"\x05" + bytes(63)], RLE, 1), encapsulated(7, [cut], JPEG, 1),
                   encapsulated(11, [between], JPEG, 1)]
    unsplittable = [encapsulated(4, [garbage_jpeg(100, False)] * 5, JPEG, 3),
                    encapsulated(5, [bytes(64)] * 5, RLE, 3),
                    encapsulated(6, [garbage_jpeg(50)] * 2, JPEG, 4294967295)]
    st, j = v.stow([d for _, d in undecodable + unsplittable])
    check("eight damaged objects stored as received", st == 200 and
          len((j or {}).get("00081199", {}).get("Value", [])) == 8, (st, j))
    bad = []
    for sop, _ in undecodable:
        r = get(sop, "/rendered", "image/jpeg")
        if r != (406, True):
            bad.append((sop, "/rendered", r))
        r = get(sop, "/frames/1", 'multipart/related; type="application/octet-stream"; '
                                   'transfer-syntax=1.2.840.10008.1.2.1')
        if r != (406, True):
            bad.append((sop, "/frames/1 decompressed", r))
    check("a frame the decoder refuses (a JPEG cut in half, a progressive one cut between two scans): /rendered "
          "and /frames decompressed 406 problem+json", not bad, bad)
    # whole frames that libjpeg warns about without losing anything: still
    # decoded (no EOI after the whole scan, as some encoders write; a JFIF
    # version 2.01); before session 26 as now, and refused by its first fix
    no_eoi = whole[:-2]
    jfif2 = whole.replace(b"JFIF\x00\x01", b"JFIF\x00\x02", 1)
    zero_tail = zero_tail_jpeg()   # without its EOI it ends in 00, a byte of its scan, not padding
    frames = [(8, whole), (9, no_eoi), (10, jfif2), (12, prog)] + ([(13, zero_tail[:-2])] if zero_tail else [])
    ok = []
    for n, frame in frames:
        sop, data = encapsulated(n, [frame + b"\x00" * (len(frame) % 2)], JPEG, 1)
        st, _ = v.stow([data])
        r = get(sop, "/frames/1", 'multipart/related; type="application/octet-stream"; '
                                  'transfer-syntax=1.2.840.10008.1.2.1')
        ok.append((n, st, r, get(sop, "/rendered", "image/png")))
    check("the same JPEG whole decodes (200), also without its EOI and as JFIF 2.01; a whole progressive one; "
          "one without its EOI whose scan ends in FF 00",
          all(st == 200 and r == (200, False) and rr == (200, False) for _, st, r, rr in ok), ok)
    bad = []
    for sop, _ in unsplittable:
        for suffix in ("/frames/1", "/bulkdata/7FE00010"):
            r = get(sop, suffix, "*/*")
            if r != (404, True):
                bad.append((sop, suffix, r))
    check("fragments nothing splits into frames (and 4294967295 frames): /frames/1 and the Pixel Data "
          "bulk data 404 problem+json", not bad, bad)
    ok = all(get(sop, "", 'multipart/related; type="application/dicom"')[0] == 200
             for sop, _ in undecodable + unsplittable)
    check("each instance still retrievable whole", ok)
    v.err.seek(0)
    log = v.err.read()
    check("no server error logged for them", " error: " not in log.replace("dicomvault: error: db_err", ""),
          [ln for ln in log.splitlines() if " error: " in ln][:3])
    st, _, _ = v.request("GET", "/healthz", auth=False)
    check("server still serving", st == 200 and v.proc.poll() is None, st)


TAP.run(main, lambda: finish(T, v))
