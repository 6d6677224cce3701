"""decompressed.py GOTDIR ORIGINAL...: checks that the files received in
GOTDIR are the originals (JPEG Baseline or RLE Lossless) decompressed by
dicomvault's C-GET: one per original (same SOP Instance UID), in Explicit
VR Little Endian, the pixels equal to what pydicom decodes from the
original (RLE exactly; JPEG within 3 of it, the colour conversion's
rounding: pydicom's own YBR-to-RGB against libjpeg's), the attributes that
describe the pixels as the decoded pixels are, every other attribute of
the original kept. Prints one line per instance; exit 1 on the first
difference. Layer: tests."""
import glob
import sys

import numpy
import pydicom
from pydicom.pixel_data_handlers.util import convert_color_space

JPEG = "1.2.840.10008.1.2.4.50"
RLE = "1.2.840.10008.1.2.5"
# what decompression may change (pixel description, lossy marks)
CHANGED = {"PixelData", "PhotometricInterpretation", "PlanarConfiguration", "LossyImageCompression",
           "LossyImageCompressionMethod", "LossyImageCompressionRatio", "BitsAllocated", "BitsStored", "HighBit"}


def fail(*msg):
    print(*msg)
    sys.exit(1)


def kept(name, orig, got):
    """Fails unless every attribute of orig that does not describe the
    pixels (CHANGED), the meta, group lengths and what follows Pixel Data
    aside, is in got with the same value."""
    for k in orig.keys():
        el = orig[k]
        if el.keyword in CHANGED or k.group == 0x0002 or k.element == 0 or k > 0x7FE00010:
            continue
        if k not in got or got[k].value != el.value:
            fail(name, "attribute", el.keyword or str(k), "differs or is missing")


def received(folder):
    """{SOP Instance UID: data set} of the files in folder."""
    got = {}
    for f in glob.glob(folder + "/*"):
        d = pydicom.dcmread(f)
        got[d.SOPInstanceUID] = d
    return got


def main():
    got = received(sys.argv[1])
    if len(got) != len(sys.argv) - 2:
        fail("received", len(got), "files for", len(sys.argv) - 2, "originals")
    for f in sys.argv[2:]:
        w = pydicom.dcmread(f)
        g = got.get(w.SOPInstanceUID)
        ts = w.file_meta.TransferSyntaxUID
        if g is None:
            fail(f, "not received")
        if g.file_meta.TransferSyntaxUID != "1.2.840.10008.1.2.1":
            fail(f, "received in", g.file_meta.TransferSyntaxUID)
        frames = int(w.get("NumberOfFrames", 1))
        spp = int(w.SamplesPerPixel)
        bits = 8 if ts == JPEG else int(w.BitsAllocated)
        want_len = w.Rows * w.Columns * spp * (bits // 8) * frames
        if len(g.PixelData) != want_len + (want_len & 1):
            fail(f, "pixel data of", len(g.PixelData), "bytes, not", want_len)
        a = w.pixel_array
        b = g.pixel_array
        if ts == JPEG:
            photo = w.PhotometricInterpretation
            if spp == 3 and photo.startswith("YBR") and not numpy.array_equal(a, b):
                # pydicom 2.x leaves JPEG's YCbCr as it is: converted here
                a = convert_color_space(a, "YBR_FULL", "RGB")
            diff = numpy.abs(a.astype(int) - b.astype(int)).max() if a.shape == b.shape else None
            if diff is None or diff > 3:
                fail(f, "pixels differ from pydicom's decoding by", diff, a.shape, b.shape)
            if spp == 3 and (g.PhotometricInterpretation != "RGB" or g.PlanarConfiguration != 0):
                fail(f, "colour JPEG not RGB interleaved:", g.PhotometricInterpretation, g.get("PlanarConfiguration"))
            if g.get("LossyImageCompression") != "01" or "LossyImageCompressionMethod" not in g:
                fail(f, "JPEG Baseline decompressed without its lossy marks")
        else:
            if not numpy.array_equal(a, b):
                fail(f, "RLE pixels differ from pydicom's decoding")
            if spp == 3 and g.PlanarConfiguration != w.get("PlanarConfiguration", 0):
                fail(f, "RLE colour laid out otherwise: Planar Configuration", g.get("PlanarConfiguration"))
            if g.PhotometricInterpretation != w.PhotometricInterpretation:
                fail(f, "RLE photometric changed to", g.PhotometricInterpretation)
        kept(f, w, g)
        print("ok", f.rsplit("/", 1)[-1], ts, "frames", frames, "diff", "0" if ts == RLE else "<=3")
    print("decompressed", len(got))


if __name__ == "__main__":
    main()
