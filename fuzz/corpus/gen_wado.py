#!/usr/bin/python3
"""gen_wado.py: writes the seed corpus of wado_fuzz (fuzz/corpus/wado/):
a WADO-RS URL segment (a frame list or a bulk data path), a newline, then
a small Part 10 file written by pydicom (Debian's python3-pydicom, run with
/usr/bin/python3): one with nested sequences and native Pixel Data, one
with encapsulated Pixel Data of three frames. Synthetic values only.
Deterministic. Our own work, same licence as dicomvault."""
import os
import warnings

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wado")


def part10(ds, ts):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ts
    ds.file_meta = meta
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    b = DicomBytesIO()
    dcmwrite(b, ds, write_like_original=False)
    return b.getvalue()


def base(n):
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.9.%d" % n
    ds.PatientName = "Doe^Jane"
    code = Dataset()
    code.CodeValue = "T-D3000"
    code.CodingSchemeDesignator = "SRT"
    inner = Dataset()
    inner.CodeMeaning = "nested"
    inner.LongCodeValue = "x" * 80
    code.ConceptNameCodeSequence = Sequence([inner])
    ds.ProcedureCodeSequence = Sequence([code, Dataset()])
    ds.Rows = 4
    ds.Columns = 4
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    return ds


def main():
    warnings.simplefilter("ignore")
    os.makedirs(HERE, exist_ok=True)
    native = base(1)
    native.PixelData = bytes(range(16))
    native = part10(native, ExplicitVRLittleEndian)
    enc = base(2)
    enc.NumberOfFrames = 3
    enc.PixelData = encapsulate([b"\xff\xd8frame%d\xff\xd9" % i for i in range(3)])
    enc["PixelData"].VR = "OB"
    enc = part10(enc, JPEGBaseline8Bit)
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
