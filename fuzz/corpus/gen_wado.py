#!/usr/bin/python3
"""gen_wado.py: writes the seed corpus of wado_fuzz (fuzz/corpus/wado/):
a WADO-RS URL segment (a frame list or a bulk data path), a newline, then
a small Part 10 file written by pydicom (Debian's python3-pydicom, run with
/usr/bin/python3): one with nested sequences and native Pixel Data, one
with encapsulated Pixel Data of three frames. Synthetic values only.
Deterministic. Our own work, same licence as dicomvault."""
import os
import sys
import warnings

from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import JPEGBaseline8Bit

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "integration", "lib"))
import dsgen  # noqa: E402  (the tests' secondary captures and Part 10 writer)

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wado")


def base(n, pixel):
    """A 4x4 secondary capture (dsgen.sc) with a procedure code sequence of
    two items, the first holding a nested sequence."""
    code = Dataset()
    code.CodeValue = "T-D3000"
    code.CodingSchemeDesignator = "SRT"
    inner = Dataset()
    inner.CodeMeaning = "nested"
    inner.LongCodeValue = "x" * 80
    code.ConceptNameCodeSequence = Sequence([inner])
    r = "1.2.826.0.1.3680043.8.498.9"
    return dsgen.sc("%s.%d" % (r, n), r + ".1", r + ".2", "Doe^Jane", "PAT-9", pixel=pixel,
                    ProcedureCodeSequence=Sequence([code, Dataset()]))


def main():
    warnings.simplefilter("ignore")
    os.makedirs(HERE, exist_ok=True)
    native = dsgen.part10(base(1, bytes(range(16))))
    enc = base(2, encapsulate([b"\xff\xd8frame%d\xff\xd9" % i for i in range(3)]))
    enc.NumberOfFrames = 3
    enc["PixelData"].VR = "OB"
    enc.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    enc = dsgen.part10(enc)
    seeds = {
        "frames_list": (b"1,2,3", native),
        "frames_one": (b"7", enc),
        "frames_zero_led": (b"01,002", native),
        "path_top": (b"00100010", native),
        "path_item": (b"00081032.0.00080100", native),
        "path_nested": (b"00081032.0.0040a043.0.00080104", native),
        "path_item_out_of_range": (b"00081032.5.00080100", native),
        "path_pixel_native": (b"7FE00010", native),
        "path_pixel_encaps": (b"7fe00010", enc),
        "path_bad_hex": (b"0008103G", native),
    }
    for name, (seg, f) in seeds.items():
        with open(os.path.join(HERE, name), "wb") as out:
            out.write(seg + b"\n" + f)


if __name__ == "__main__":
    main()
