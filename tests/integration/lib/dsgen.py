"""dsgen.py: small secondary-capture instances (8-bit MONOCHROME2) and
client certificates for the Python integration tests (pydicom, openssl;
imported, not run)."""
import io
import os
import shutil
import subprocess

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import ExplicitVRLittleEndian

SC = "1.2.840.10008.5.1.4.1.1.7"


def sc(sop, study, series, name, pid, n=1, rows=4, cols=4, pixel=None, **attrs):
    """A data set with a patient, a study, a series and rows x cols pixels
    (pixel: bytes, default zeros), file meta for explicit VR little endian;
    attrs: more attributes by keyword."""
    ds = Dataset()
    ds.SOPClassUID = SC
    ds.SOPInstanceUID = sop
    ds.PatientName = name
    ds.PatientID = pid
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.Modality = "OT"
    ds.SeriesNumber = 1
    ds.InstanceNumber = n
    ds.Rows = rows
    ds.Columns = cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = pixel if pixel is not None else bytes(rows * cols)
    for k, v in attrs.items():
        setattr(ds, k, v)
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = SC
    fm.MediaStorageSOPInstanceUID = sop
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = fm
    ds.is_little_endian, ds.is_implicit_VR = True, False
    return ds


def part10(ds):
    """The data set as a Part 10 file's bytes."""
    b = io.BytesIO()
    ds.save_as(b, write_like_original=False)
    return b.getvalue()


def implicit(ds, vr_implicit=True):
    """The data set alone (no meta) in implicit VR little endian, as a
    C-STORE carries it (explicit VR little endian with vr_implicit
    False)."""
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, vr_implicit
    was, ds.is_implicit_VR = ds.is_implicit_VR, vr_implicit
    write_dataset(fp, ds)
    ds.is_implicit_VR = was
    return fp.getvalue()


def cert(folder, name):
    """A self-signed P-256 certificate folder/name.crt with its key
    folder/name.key; its SHA-256 fingerprint as openssl prints it ("" when
    openssl failed)."""
    crt, key = os.path.join(folder, name + ".crt"), os.path.join(folder, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=" + name, "-keyout", key, "-out", crt], capture_output=True)
    p = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", crt],
                       capture_output=True, text=True)
    return p.stdout.strip().split("=")[1] if p.returncode == 0 and "=" in p.stdout else ""


def need_dimse(dv, skip):
    """skip(why) unless openssl is installed and the CLI serves DICOM."""
    if shutil.which("openssl") is None:
        skip("no openssl")
    h = subprocess.run([dv, "serve", "--help"], capture_output=True, text=True)
    if "--dicom" not in h.stdout + h.stderr:
        skip("no --dicom")
