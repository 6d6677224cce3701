"""decoded_native.py GOTDIR MANIFEST: checks the files that dicomvault's
C-GET decompressed from JPEG 2000, HTJ2K, JPEG-LS, JPEG Lossless and
12-bit JPEG Extended instances against
the native images they were made from. MANIFEST has one line per
compressed instance: its path, the native original's path, and what its
pixels must be: "exact" (the original's Pixel Data byte for byte),
"near N" (each sample within N of the original's: JPEG-LS near-lossless;
12-bit JPEG against dcmdjpeg's decoding as the original),
or "pydicom N" (within N of pydicom's own decoding of the compressed
file: lossy JPEG 2000, decoded by Pillow's OpenJPEG). Each received file
is in Explicit VR Little Endian, RGB and interleaved when in colour, with
the lossy marks exactly when the frame was lossy (Lossy Image Compression
"01", the method in Lossy Image Compression Method, as many ratios as
methods in Lossy Image Compression Ratio), every attribute of
the compressed file that does not describe the pixels kept. Prints one
line per instance; exit 1 on the first difference. Layer: tests."""
import sys

import numpy
import pydicom

from decompressed import fail, kept, received

METHOD = {"1.2.840.10008.1.2.4.91": "ISO_15444_1", "1.2.840.10008.1.2.4.81": "ISO_14495_1",
          "1.2.840.10008.1.2.4.51": "ISO_10918_1", "1.2.840.10008.1.2.4.203": "ISO_15444_1"}


def main():
    got = received(sys.argv[1])
    lines = [l.split() for l in open(sys.argv[2]) if l.strip()]
    if len(got) != len(lines):
        fail("received", len(got), "files for", len(lines), "instances")
    for path, native, how, *tol in lines:
        c = pydicom.dcmread(path)
        n = pydicom.dcmread(native)
        g = got.get(c.SOPInstanceUID)
        name = path.rsplit("/", 1)[-1]
        if g is None:
            fail(name, "not received")
        if g.file_meta.TransferSyntaxUID != "1.2.840.10008.1.2.1":
            fail(name, "received in", g.file_meta.TransferSyntaxUID)
        want_len = c.Rows * c.Columns * c.SamplesPerPixel * (c.BitsAllocated // 8)
        if len(g.PixelData) != want_len + (want_len & 1):
            fail(name, "pixel data of", len(g.PixelData), "bytes, not", want_len)
        if how == "exact":
            if g.PixelData != n.PixelData:
                fail(name, "pixels differ from the native original's")
            diff = 0
        else:
            want = n.pixel_array if how == "near" else c.pixel_array
            diff = int(numpy.abs(want.astype(int) - g.pixel_array.astype(int)).max())
            if diff > int(tol[0]):
                fail(name, "pixels differ by", diff, "more than", tol[0])
        if int(c.SamplesPerPixel) == 3 and (g.PhotometricInterpretation != "RGB" or g.PlanarConfiguration != 0):
            fail(name, "colour not RGB interleaved:", g.PhotometricInterpretation, g.get("PlanarConfiguration"))
        if int(c.SamplesPerPixel) == 1 and g.PhotometricInterpretation != c.PhotometricInterpretation:
            fail(name, "photometric interpretation changed to", g.PhotometricInterpretation)
        ts = c.file_meta.TransferSyntaxUID
        lossy = ts in METHOD
        methods = g.get("LossyImageCompressionMethod", [])
        methods = [methods] if isinstance(methods, str) else list(methods)
        if lossy and (g.get("LossyImageCompression") != "01" or METHOD[ts] not in methods):
            fail(name, "lossy, decompressed without its lossy marks:", g.get("LossyImageCompression"), methods)
        if not lossy and ("LossyImageCompression" in g or methods):
            fail(name, "lossless, decompressed with lossy marks")
        ratios = g.get("LossyImageCompressionRatio", [])
        ratios = [ratios] if not isinstance(ratios, (list, pydicom.multival.MultiValue)) else list(ratios)
        if lossy and len(ratios) != len(methods):
            fail(name, "lossy, its", len(methods), "methods with", len(ratios), "ratios")
        if (n.PixelRepresentation, n.BitsAllocated, n.BitsStored) != (g.PixelRepresentation, g.BitsAllocated,
                                                                       g.BitsStored):
            fail(name, "pixel description differs from the original's")
        kept(name, c, g)
        print("ok", name, ts, how, "diff", diff)
    print("decoded", len(got))


main()
