"""ljpeg_enc.py NATIVE OUT [--sv N] [--restart ROWS] [--separate] [--precision P]:
a small JPEG Lossless encoder (ISO 10918-1 process 14, Annex H) for
tests, making the streams dcmcjpeg does not: restart intervals (RSTn
every ROWS rows), one scan per component (--separate), any predictor,
any precision (default: Bits Stored), and differences of 32768 (SSSS 16,
no additional bits) when the samples jump from 0 to 65535. Every
category 0..16 gets a 5-bit code. OUT is NATIVE with its Pixel Data
encapsulated as one frame, transfer syntax JPEG Lossless (.4.57). The
test decodes OUT with DCMTK's dcmdjpeg too, so that a fault of this
encoder is not taken for one of the decoder. Layer: tests."""
import argparse

import numpy
import pydicom
from pydicom.encaps import encapsulate


class Bits:
    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, v, n):
        for i in range(n - 1, -1, -1):
            self.acc = (self.acc << 1) | ((v >> i) & 1)
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)   # byte stuffing
                self.acc = self.n = 0

    def flush(self):   # pad with 1 bits to the byte
        while self.n:
            self.put(1, 1)


def predict(plane, y, x, sv, first, dflt):
    if first:
        return dflt if x == 0 else int(plane[y, x - 1])
    if x == 0:
        return int(plane[y - 1, 0])
    ra, rb, rc = int(plane[y, x - 1]), int(plane[y - 1, x]), int(plane[y - 1, x - 1])
    return {1: ra, 2: rb, 3: rc, 4: ra + rb - rc, 5: ra + ((rb - rc) >> 1), 6: rb + ((ra - rc) >> 1),
            7: (ra + rb) >> 1}[sv]


def code_diff(b, d):
    d &= 0xFFFF
    if d >= 0x8000:
        d -= 0x10000
    if d == -0x8000:
        b.put(16, 5)
        return
    s = abs(d).bit_length()
    b.put(s, 5)
    if s:
        b.put(d if d >= 0 else d + (1 << s) - 1, s)


def scan(planes, ids, sv, restart, prec):
    rows, cols = planes[0].shape
    b = Bits()
    dflt = 1 << (prec - 1)
    rst = 0
    for y in range(rows):
        first = y == 0
        if restart and y and y % restart == 0:
            b.flush()
            b.out += bytes((0xFF, 0xD0 + rst % 8))
            rst += 1
            first = True
        for x in range(cols):
            for p in planes:
                code_diff(b, int(p[y, x]) - predict(p, y, x, sv, first, dflt))
    b.flush()
    seg = bytes([len(ids)]) + b"".join(bytes((i, 0x00)) for i in ids) + bytes((sv, 0, 0))
    return b"\xff\xda" + (len(seg) + 2).to_bytes(2, "big") + seg + bytes(b.out)


def encode(planes, sv, restart, separate, prec):
    rows, cols = planes[0].shape
    n = len(planes)
    sof = bytes((prec,)) + rows.to_bytes(2, "big") + cols.to_bytes(2, "big") + bytes((n,))
    sof += b"".join(bytes((i + 1, 0x11, 0)) for i in range(n))
    counts = bytes((0, 0, 0, 0, 17) + (0,) * 11)
    dht = b"\x00" + counts + bytes(range(17))
    out = b"\xff\xd8\xff\xc3" + (len(sof) + 2).to_bytes(2, "big") + sof
    out += b"\xff\xc4" + (len(dht) + 2).to_bytes(2, "big") + dht
    if restart:
        out += b"\xff\xdd\x00\x04" + (restart * cols).to_bytes(2, "big")
    if separate:
        for i, p in enumerate(planes):
            out += scan([p], [i + 1], sv, restart, prec)
    else:
        out += scan(planes, list(range(1, n + 1)), sv, restart, prec)
    return out + b"\xff\xd9"


def main():
    a = argparse.ArgumentParser()
    a.add_argument("native")
    a.add_argument("out")
    a.add_argument("--sv", type=int, default=1)
    a.add_argument("--restart", type=int, default=0)
    a.add_argument("--separate", action="store_true")
    a.add_argument("--precision", type=int, default=0)
    o = a.parse_args()
    ds = pydicom.dcmread(o.native)
    dt = numpy.uint8 if ds.BitsAllocated == 8 else numpy.uint16   # the bit patterns
    arr = numpy.frombuffer(ds.PixelData, dtype="<" + numpy.dtype(dt).str[1:],
                           count=ds.Rows * ds.Columns * ds.SamplesPerPixel)
    arr = arr.reshape(ds.Rows, ds.Columns, ds.SamplesPerPixel)
    planes = [arr[:, :, c].astype(numpy.int64) for c in range(ds.SamplesPerPixel)]
    prec = o.precision or int(ds.BitsStored)
    ds.PixelData = encapsulate([encode(planes, o.sv, o.restart, o.separate, prec)])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.57"
    ds.save_as(o.out, write_like_original=False)


main()
