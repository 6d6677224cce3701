#!/usr/bin/python3
"""gen_render.py: writes the seeds of fuzz/corpus/render/ (render_fuzz.c):
"window\\nviewport\\nquality\\n", an 8-byte image header (rows - 1,
columns - 1, bits allocated 8/16/32 as 0/1/2, bits stored - 1, high bit
offset, photometric << 1 | signed, planar, slope byte) and the frame bytes.
Seeds named p10_* are "window\nviewport\nquality\nP" and a small Part 10
file (pydicom): the image attributes as a stored object has them. JPEG 2000
frames are made by Pillow, JPEG-LS ones by DCMTK's dcmcjpls.
Needs python3-pil, python3-pydicom and dcmtk. Run from the repository
root."""
import io
import os
import struct
import subprocess
import tempfile
from PIL import Image
from pydicom import encaps
from pydicom.dataset import Dataset, FileMetaDataset

D = "fuzz/corpus/render/"


def hdr(rows, cols, ba_idx, bs, hb_off, signed, photo, planar, slope):
    return bytes([rows - 1, cols - 1, ba_idx, bs - 1, hb_off, (photo << 1) | signed, planar, slope])


def j2k(mode, colour, irreversible=False, mct=0):
    b = io.BytesIO()
    Image.new(mode, (8, 8), colour).save(b, "JPEG2000", no_jp2=True, irreversible=irreversible, mct=mct)
    return b.getvalue()


def jls(ds_bytes, *opts):
    """The first frame of a Part 10 file (bytes) compressed by dcmcjpls."""
    from pydicom import dcmread
    from pydicom.encaps import generate_pixel_data_frame
    with tempfile.TemporaryDirectory() as d:
        with open(d + "/in.dcm", "wb") as f:
            f.write(ds_bytes)
        subprocess.run(["dcmcjpls", *opts, d + "/in.dcm", d + "/out.dcm"], check=True)
        return next(generate_pixel_data_frame(dcmread(d + "/out.dcm").PixelData))


def jpeg(mode, colour):
    b = io.BytesIO()
    Image.new(mode, (4, 2), colour).save(b, "JPEG", quality=90)
    return b.getvalue()


# photometric: 0 MONOCHROME1, 1 MONOCHROME2, 2 RGB, 3 YBR_FULL, 4 YBR_FULL_422, 5 PALETTE COLOR
SEEDS = {
    "mono2_16_window": b"40,400\n512,512\n90\n" + hdr(2, 2, 1, 12, 0, 1, 1, 0, 4)
    + bytes([0xff, 0x0f, 0, 0xf8, 0xff, 7, 5, 0x10]),
    "rgb_planar_sigmoid": b"40,400,sigmoid\n1,1\n1\n" + hdr(2, 3, 0, 8, 0, 0, 2, 1, 4) + bytes(range(0, 180, 10)),
    "ybr422_bad_params": b"bad\n0,0\n101\n" + hdr(2, 4, 0, 8, 0, 0, 4, 0, 4) + bytes([100, 200, 128, 128] * 4),
    "palette_region_viewport": b"1,1,linear-exact\n1,2,3,4,5,6\n50\n" + hdr(3, 3, 0, 8, 3, 0, 5, 0, 4) + bytes(range(9)),
    "mono1_32bit_noparams": b"\n\n\n" + hdr(2, 2, 2, 32, 0, 0, 0, 0, 0xfc) + struct.pack("<4I", 1, 2**31, 2**32 - 1, 77),
    "rle_mono2": b"20,10,linear\n2,2\n75\n" + hdr(1, 4, 0, 8, 0, 0, 1, 0, 4)
    + struct.pack("<16I", 1, 64, *([0] * 14)) + bytes([0x01, 7, 9, 0xFF, 5]),
    "jpeg_mono2": b"0,1000\n4,4\n100\n" + hdr(2, 4, 0, 8, 0, 0, 1, 0, 4) + jpeg("L", 100),
    "jpeg_rgb": b"0,1000\n4,4\n100\n" + hdr(2, 4, 0, 8, 0, 0, 2, 0, 4) + jpeg("RGB", (200, 10, 30)),
    "j2k_mono16": b"\n\n\n" + hdr(8, 8, 1, 16, 0, 0, 1, 0, 4) + j2k("I;16", 1000),
    "j2k_rgb_mct": b"\n\n\n" + hdr(8, 8, 0, 8, 0, 0, 2, 0, 4) + j2k("RGB", (200, 10, 30), mct=1),
    "window_only": b"1e12,1e12,sigmoid",
    "short_frame": b"40,1\n8192,8192\n100\n" + hdr(16, 16, 1, 16, 0, 0, 1, 0, 4) + bytes(10),
}



def part10(ts="1.2.840.10008.1.2.1", rows=8, cols=8, pixels=None, **attrs):
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    fm.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.10.1138.77"
    fm.TransferSyntaxUID = ts
    fm.ImplementationClassUID = "1.2.826.0.1.3680043.10.1138.1"
    ds = Dataset()
    ds.file_meta = fm
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID, ds.SOPInstanceUID = fm.MediaStorageSOPClassUID, fm.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    for k, v in attrs.items():
        setattr(ds, k, v)
    ds.PixelData = pixels if pixels is not None else bytes(range(rows * cols * ds.SamplesPerPixel))
    if ts != "1.2.840.10008.1.2.1":
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    b = io.BytesIO()
    ds.save_as(b, write_like_original=False)
    return b"P" + b.getvalue()


def jpeg_frame():
    b = io.BytesIO()
    Image.new("RGB", (8, 8), (30, 200, 90)).save(b, "JPEG", quality=90)
    return encaps.encapsulate([b.getvalue()])


def lut_seq(desc_vr, desc, data):
    from pydicom.sequence import Sequence
    it = Dataset()
    it.add_new(0x00283002, desc_vr, desc)
    it.add_new(0x00283006, "OW", data)
    return Sequence([it])


RLE8 = struct.pack("<16I", 1, 64, *([0] * 14)) + bytes([0x81, 42]) * 2   # 64 pixels of 42
SEEDS.update({
    "p10_mono1_signed_rescale": b"\n\n\n" + part10(
        PhotometricInterpretation="MONOCHROME1", BitsAllocated=16, BitsStored=12, HighBit=11, PixelRepresentation=1,
        RescaleSlope="2.5", RescaleIntercept="-1024", WindowCenter="40\\400", WindowWidth="400\\10",
        VOILUTFunction="SIGMOID", pixels=bytes(range(128))),
    "p10_palette": b"\n4,4\n\n" + part10(
        PhotometricInterpretation="PALETTE COLOR", RedPaletteColorLookupTableDescriptor=[16, 2, 16],
        GreenPaletteColorLookupTableDescriptor=[16, 2, 16], BluePaletteColorLookupTableDescriptor=[16, 2, 16],
        RedPaletteColorLookupTableData=bytes(range(32)), GreenPaletteColorLookupTableData=bytes(range(32, 64)),
        BluePaletteColorLookupTableData=bytes(range(64, 96))),
    "p10_rgb_planar": b"10,20\n\n\n" + part10(SamplesPerPixel=3, PhotometricInterpretation="RGB",
                                                 PlanarConfiguration=1, pixels=bytes(range(192))),
    "p10_ybr422": b"\n\n\n" + part10(SamplesPerPixel=3, PhotometricInterpretation="YBR_FULL_422",
                                     pixels=bytes(range(128))),
    "p10_rle": b"\n\n\n" + part10(ts="1.2.840.10008.1.2.5", pixels=encaps.encapsulate([RLE8])),
    "p10_voi_lut": b"\n\n\n" + part10(
        BitsAllocated=16, BitsStored=12, HighBit=11, pixels=bytes(range(128)),
        VOILUTSequence=lut_seq("US", [16, 3, 10], struct.pack("<16H", *range(0, 1024, 64)))),
    "p10_voi_lut_signed": b"\n\n\n" + part10(
        BitsAllocated=16, BitsStored=16, HighBit=15, PixelRepresentation=1, pixels=bytes(range(128)),
        RescaleIntercept="-1000", VOILUTSequence=lut_seq("SS", [8, -1000, 16], struct.pack("<8H", *range(8)))),
    "p10_modality_lut": b"\n\n\n" + part10(
        pixels=bytes(range(64)), WindowCenter="500", WindowWidth="1000",
        ModalityLUTSequence=lut_seq("US", [32, 16, 16], struct.pack("<32H", *range(1000, 0, -32)[:32]))),
    "p10_jpeg": b"\n\n\n" + part10(ts="1.2.840.10008.1.2.4.50", SamplesPerPixel=3,
                                   PhotometricInterpretation="YBR_FULL_422", pixels=jpeg_frame()),
})

def encapsulated(frame):
    return encaps.encapsulate([frame])


NATIVE16 = part10(BitsAllocated=16, BitsStored=12, HighBit=11,
                  pixels=b"".join(((i * 37) & 0xFFF).to_bytes(2, "little") for i in range(64)))[1:]
NATIVE_RGB = part10(SamplesPerPixel=3, PhotometricInterpretation="RGB", PlanarConfiguration=0,
                    pixels=bytes(range(192)))[1:]
SEEDS.update({
    "p10_j2k_mono16": b"\n\n\n" + part10(ts="1.2.840.10008.1.2.4.90", BitsAllocated=16, BitsStored=16, HighBit=15,
                                           pixels=encapsulated(j2k("I;16", 1000))),
    "p10_j2k_ybr_ict": b"\n\n\n" + part10(ts="1.2.840.10008.1.2.4.91", SamplesPerPixel=3,
                                            PhotometricInterpretation="YBR_ICT", PlanarConfiguration=0,
                                            pixels=encapsulated(j2k("RGB", (30, 200, 90), True, 1))),
    "p10_jls_mono12": b"\n\n\n" + part10(ts="1.2.840.10008.1.2.4.80", BitsAllocated=16, BitsStored=12, HighBit=11,
                                           pixels=encapsulated(jls(NATIVE16))),
    "p10_jls_rgb_planes": b"\n\n\n" + part10(ts="1.2.840.10008.1.2.4.80", SamplesPerPixel=3,
                                               PhotometricInterpretation="RGB", PlanarConfiguration=0,
                                               pixels=encapsulated(jls(NATIVE_RGB, "+in"))),
    "p10_jls_near": b"\n\n\n" + part10(ts="1.2.840.10008.1.2.4.81", BitsAllocated=16, BitsStored=12, HighBit=11,
                                         pixels=encapsulated(jls(NATIVE16, "+en"))),
})

for k, v in SEEDS.items():
    with open(D + k, "wb") as f:
        f.write(v)
