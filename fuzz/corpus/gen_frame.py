#!/usr/bin/python3
"""gen_frame.py [OUTDIR]: (re)generates the seed corpus of fuzz/frame_fuzz.c
(default OUTDIR: fuzz/corpus/frame next to this script).

  gen_*      small images written with pydicom here, one per way of laying
             out frames (native 1/8/16/32 bit, odd frame sizes, big endian,
             YBR_FULL_422; encapsulated with a Basic Offset Table, without
             one, with an Extended Offset Table) and a few broken layouts
             (a table that points between fragments, one that lists another
             number of frames, more fragments than frames without a table,
             pixel data shorter than its frames, a bad Number of Frames);
  pydicom_*  pydicom's multi-frame test files of at most 64 KiB, copied as
             they are (MIT licence: see fuzz/corpus/README.md).

found_* files in the same directory are inputs the fuzzer found (kept as
regression seeds); this script leaves them alone.

Deterministic (fixed UIDs and pseudo-random bytes). Needs the Debian
python3-pydicom package (run with /usr/bin/python3). Layer: tests (fuzz).
"""
import os
import random
import shutil
import sys

from pydicom import encaps
from pydicom.dataset import Dataset, FileMetaDataset

TF = "/usr/lib/python3/dist-packages/pydicom/data/test_files"
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "frame")
R = random.Random(1138)
N = [0]


def image(rows, cols, frames, bits, spp=1, ts="1.2.840.10008.1.2.1", pi="MONOCHROME2"):
    N[0] += 1
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    fm.MediaStorageSOPInstanceUID = f"2.25.1138{N[0]}"
    fm.TransferSyntaxUID = ts
    fm.ImplementationClassUID = "2.25.214404290787425542307226187380651128817"
    ds = Dataset()
    ds.file_meta = fm
    ds.is_little_endian = ts != "1.2.840.10008.1.2.2"
    ds.is_implicit_VR = False
    ds.SOPClassUID = fm.MediaStorageSOPClassUID
    ds.SOPInstanceUID = fm.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, spp
    ds.PhotometricInterpretation = pi
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    if frames is not None:
        ds.NumberOfFrames = frames
    return ds


def native(name, rows, cols, frames, bits, spp=1, ts="1.2.840.10008.1.2.1", pi="MONOCHROME2", short=0):
    ds = image(rows, cols, frames, bits, spp, ts, pi)
    nbits = rows * cols * spp * bits * (frames or 1)
    if pi == "YBR_FULL_422":
        nbits = nbits // 3 * 2
    n = (nbits + 7) // 8 - short
    ds.PixelData = bytes(R.randrange(256) for _ in range(n + (n & 1)))
    ds["PixelData"].VR = "OB" if bits <= 8 else "OW"
    write(ds, name)


def jpeg(n):
    return b"\xff\xd8" + bytes(R.choice(range(0, 0xFF)) for _ in range(n)) + b"\xff\xd9"


def encapsulated(name, frames, how, ts="1.2.840.10008.1.2.4.50", nframes=None, bot=None):
    ds = image(8, 8, nframes or len(frames), 8, ts=ts)
    if how == "eot":
        px, eot, eotl = encaps.encapsulate_extended(frames)
        ds.ExtendedOffsetTable = eot
        ds.ExtendedOffsetTableLengths = eotl
    elif how == "raw":
        items = [bot or b""] + frames
        # pydicom appends the sequence delimiter itself
        px = b"".join(b"\xfe\xff\x00\xe0" + len(f).to_bytes(4, "little") + f for f in items)
    else:
        px = encaps.encapsulate(frames, fragments_per_frame=2 if how != "one" else 1, has_bot=how == "bot")
    ds.PixelData = px
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    write(ds, name)


def write(ds, name):
    ds.save_as(os.path.join(OUT, name), write_like_original=False)


def main():
    os.makedirs(OUT, exist_ok=True)
    native("gen_native_16bit_3frames.dcm", 4, 4, 3, 16)
    native("gen_native_8bit_odd_frames.dcm", 3, 3, 3, 8)
    native("gen_native_1bit_unaligned.dcm", 5, 5, 3, 1)
    native("gen_native_1bit_aligned.dcm", 4, 4, 2, 1)
    native("gen_native_32bit_big_endian.dcm", 2, 2, 3, 32, ts="1.2.840.10008.1.2.2")
    native("gen_native_16bit_big_endian.dcm", 3, 3, 2, 16, ts="1.2.840.10008.1.2.2")
    native("gen_native_ybr422.dcm", 2, 2, 2, 8, spp=3, pi="YBR_FULL_422")
    native("gen_native_rgb_no_frames_attr.dcm", 2, 3, None, 8, spp=3, pi="RGB")
    native("gen_bad_native_short.dcm", 4, 4, 3, 16, short=8)
    ds = image(2, 2, 2, 8)
    ds.NumberOfFrames = None
    ds.PixelData = bytes(8)
    write(ds, "gen_bad_nframes_empty.dcm")
    fr = [jpeg(4 * R.randint(5, 40)) for _ in range(3)]
    encapsulated("gen_jpeg_bot.dcm", fr, "bot")
    encapsulated("gen_jpeg_nobot_eoi.dcm", fr, "nobot")
    encapsulated("gen_jpeg_eot.dcm", fr, "eot")
    encapsulated("gen_jpeg_one_per_frame.dcm", fr, "one")
    encapsulated("gen_jpeg_one_frame_many_fragments.dcm", fr, "raw", nframes=1)
    encapsulated("gen_rle_one_per_frame.dcm", [bytes(64 + 4 * i) for i in range(3)], "raw",
                 ts="1.2.840.10008.1.2.5")
    encapsulated("gen_bad_rle_ambiguous.dcm", [bytes(64) for _ in range(3)], "raw", ts="1.2.840.10008.1.2.5",
                 nframes=2)
    encapsulated("gen_bad_bot_between_fragments.dcm", fr, "raw",
                 bot=b"".join(x.to_bytes(4, "little") for x in (0, 3, 40)))
    encapsulated("gen_bad_bot_count.dcm", fr, "raw", bot=(0).to_bytes(4, "little"))
    encapsulated("gen_bad_nobot_no_eoi.dcm", [bytes(10) for _ in range(5)], "raw", nframes=2)
    ds = image(2, 2, 2, 8)
    ds.NumberOfFrames = "0"
    ds.PixelData = bytes(8)
    write(ds, "gen_bad_nframes_zero.dcm")
    for n in ("rtdose", "rtdose_rle", "rtdose_expb", "SC_rgb_rle_2frame", "SC_rgb_rle_16bit_2frame",
              "SC_rgb_rle_32bit_2frame", "SC_ybr_full_422_uncompressed", "liver_1frame", "JPEG2000",
              "MR_small_jpeg_ls_lossless"):
        p = os.path.join(TF, n + ".dcm")
        if os.path.exists(p) and os.path.getsize(p) <= 64 * 1024:
            shutil.copy(p, os.path.join(OUT, f"pydicom_{n}.dcm"))


if __name__ == "__main__":
    main()
