#!/usr/bin/python3
"""gen_corpus.py: makes the synthetic benchmark corpus in bench/corpus/.

Run with Debian's /usr/bin/python3 (python3-pydicom, python3-numpy):

    /usr/bin/python3 bench/gen_corpus.py [OUTDIR]

Writes, if OUTDIR/.stamp does not already name this generator's version:
  ct/CT0001.dcm..CT0300.dcm  300-slice CT series, 512x512 signed 16-bit,
                             explicit VR little endian, ~527 KB each
  mr/MR0001.dcm..MR0060.dcm  60-slice MR series, 256x256 unsigned 16-bit
  mf/enhanced_ct.dcm         Enhanced CT, 512x512 x 950 frames (~498 MB) with
                             a 950-item Per-frame Functional Groups Sequence
  mf/enhanced_ct_210.dcm     its first 400 frames (~210 MB), made from it (also
                             when the stamp is current but this file is missing)

Everything is deterministic (fixed seeds, UIDs derived from a seeded RNG), so
two runs make byte-identical files. The pixel data is a smooth elliptical
phantom (body, bones, lungs, a few inserts) that changes along z, plus noise
drawn from one pre-generated pool, which keeps generation fast (under 10 s here,
mostly writing 660 MB). The data set of the multi-frame file is written by
pydicom; its Pixel Data element, the last one, is then appended frame by
frame so that the ~500 MB of pixels are never held in memory at once.
"""
import os
import shutil
import struct
import sys
import time
import uuid

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

VERSION = "dicomvault-bench-corpus 1"
N_CT = 300
N_MR = 60
N_MF = 950

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENH_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
IMPL_UID = "2.25.229513436939925366219262963316574935339"


class Uids:
    """Deterministic 2.25 UIDs (UUID-shaped integers from a seeded RNG)."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def new(self):
        b = bytearray(self.rng.bytes(16))
        u = uuid.UUID(bytes=bytes(b), version=4)
        return "2.25." + str(u.int)


def phantom(n, z, fov):
    """HU image of n x n pixels at table position z (mm) for a field of view
    fov (mm): an elliptical body with a bone ring, two lungs and inserts."""
    c = (np.arange(n, dtype=np.float32) - (n - 1) / 2.0) * (fov / n)
    x = c[np.newaxis, :]
    y = c[:, np.newaxis]
    s = 1.0 + 0.08 * np.sin(z / 90.0)          # the body narrows and widens
    img = np.full((n, n), -1000.0, dtype=np.float32)
    body = (x / (170 * s)) ** 2 + (y / (120 * s)) ** 2
    img[body <= 1.0] = 40.0
    ring = (body > 0.86) & (body <= 0.93)
    img[ring] = 700.0
    lungz = max(0.0, np.cos(z / 120.0))
    for cx in (-75.0, 75.0):
        lung = ((x - cx) / (55 * s * lungz + 1e-3)) ** 2 + ((y + 5) / (80 * s * lungz + 1e-3)) ** 2
        img[lung <= 1.0] = -820.0
    spine = (x / 18.0) ** 2 + ((y - 85 * s) / 18.0) ** 2
    img[spine <= 1.0] = 1100.0
    for i, hu in enumerate((60.0, 200.0, -100.0)):
        a = z / 40.0 + i * 2.1
        ins = ((x - 30 * np.cos(a)) / 12.0) ** 2 + ((y - 30 * np.sin(a)) / 12.0) ** 2
        img[ins <= 1.0] = hu
    return img


class Noise:
    """Gaussian noise from one pool, read at random offsets (fast)."""

    def __init__(self, seed, npix, sigma):
        self.rng = np.random.default_rng(seed)
        self.npix = npix
        self.pool = np.rint(self.rng.normal(0.0, sigma, npix * 3)).astype(np.int16)

    def frame(self):
        off = int(self.rng.integers(0, self.npix * 2))
        return self.pool[off:off + self.npix]


def code_item(value, scheme, meaning):
    it = Dataset()
    it.CodeValue = value
    it.CodingSchemeDesignator = scheme
    it.CodeMeaning = meaning
    return it


def file_meta(sop_class, sop_inst):
    m = FileMetaDataset()
    m.MediaStorageSOPClassUID = sop_class
    m.MediaStorageSOPInstanceUID = sop_inst
    m.TransferSyntaxUID = ExplicitVRLittleEndian
    m.ImplementationClassUID = IMPL_UID
    m.ImplementationVersionName = "DV_BENCH_1"
    return m


def patient_study(ds, study_uid, accession, modality_desc):
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Bench^Synthetic^Phantom"
    ds.PatientID = "DVB-000123"
    ds.IssuerOfPatientID = "DICOMVAULT-BENCH"
    ds.PatientBirthDate = "19620314"
    ds.PatientSex = "O"
    ds.PatientAge = "061Y"
    ds.PatientWeight = "72.5"
    ds.PatientSize = "1.74"
    ds.OtherPatientIDs = "ALT-998877"
    ds.EthnicGroup = ""
    ds.StudyInstanceUID = study_uid
    ds.StudyID = "4711"
    ds.StudyDate = "20240611"
    ds.StudyTime = "101500.000000"
    ds.AccessionNumber = accession
    ds.StudyDescription = "Synthetic " + modality_desc + " for dicomvault benchmarks"
    ds.ReferringPhysicianName = "Referrer^Example^^Dr."
    ds.PhysiciansOfRecord = "Record^Physician"
    ds.InstitutionName = "Dicomvault Synthetic Imaging Center"
    ds.InstitutionAddress = "1 Benchmark Way, Testville"
    ds.InstitutionalDepartmentName = "Radiology"
    ds.StationName = "BENCHSTATION01"
    ds.OperatorsName = "Operator^Synthetic"
    ds.Manufacturer = "Dicomvault Bench"
    ds.ManufacturerModelName = "PhantomGen"
    ds.DeviceSerialNumber = "SN-0001"
    ds.SoftwareVersions = "gen_corpus 1"


def sequences(ds, uids):
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management
    ref.ReferencedSOPInstanceUID = uids["refstudy"]
    ds.ReferencedStudySequence = Sequence([ref])
    ds.ProcedureCodeSequence = Sequence([code_item("ZZBENCH1", "99DVB", "Synthetic phantom procedure")])
    ds.AnatomicRegionSequence = Sequence([code_item("T-D3000", "SRT", "Chest")])
    rq = Dataset()
    rq.RequestedProcedureID = "RP-4711"
    rq.ScheduledProcedureStepID = "SPS-4711-1"
    rq.RequestedProcedureDescription = "Phantom scan"
    rq.ScheduledProtocolCodeSequence = Sequence([code_item("PROT-1", "99DVB", "Bench protocol")])
    ds.RequestAttributesSequence = Sequence([rq])


def ct_slice(i, uids, img16, z):
    sop = uids["ct_sop"][i]
    ds = FileDataset(None, {}, file_meta=file_meta(CT_STORAGE, sop), preamble=b"\0" * 128)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CT_STORAGE
    ds.SOPInstanceUID = sop
    ds.Modality = "CT"
    ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20240611"
    ds.SeriesTime = "101730.000000"
    ds.AcquisitionTime = "101742.%06d" % (i * 1000)
    ds.ContentTime = "101745.%06d" % (i * 1000)
    patient_study(ds, uids["ct_study"], "A20240611-0001", "CT chest")
    ds.SeriesDescription = "Axial 1.0 mm soft tissue"
    ds.BodyPartExamined = "CHEST"
    ds.ProtocolName = "Bench chest"
    ds.ScanOptions = "HELICAL MODE"
    ds.SliceThickness = "1.0"
    ds.KVP = "120"
    ds.DataCollectionDiameter = "500.0"
    ds.ReconstructionDiameter = "360.0"
    ds.GantryDetectorTilt = "0.0"
    ds.TableHeight = "150.0"
    ds.RotationDirection = "CW"
    ds.ExposureTime = "500"
    ds.XRayTubeCurrent = "220"
    ds.Exposure = "110"
    ds.FilterType = "BODY FILTER"
    ds.ConvolutionKernel = "B30f"
    ds.PatientPosition = "HFS"
    ds.SeriesInstanceUID = uids["ct_series"]
    ds.SeriesNumber = "2"
    ds.AcquisitionNumber = "1"
    ds.InstanceNumber = str(i + 1)
    ds.ImagePositionPatient = ["-180.0", "-180.0", "%.1f" % z]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = uids["ct_for"]
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = "%.1f" % z
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 512
    ds.Columns = 512
    ds.PixelSpacing = ["0.703125", "0.703125"]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.WindowCenter = ["40", "-600"]
    ds.WindowWidth = ["400", "1500"]
    ds.WindowCenterWidthExplanation = ["SOFT TISSUE", "LUNG"]
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    sequences(ds, uids)
    ds.PixelData = img16.tobytes()
    ds["PixelData"].VR = "OW"
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    return ds


def mr_slice(i, uids, img16, z):
    sop = uids["mr_sop"][i]
    ds = FileDataset(None, {}, file_meta=file_meta(MR_STORAGE, sop), preamble=b"\0" * 128)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.SOPClassUID = MR_STORAGE
    ds.SOPInstanceUID = sop
    ds.Modality = "MR"
    ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20240612"
    ds.SeriesTime = "090000.000000"
    ds.AcquisitionTime = ds.ContentTime = "090112.%06d" % (i * 1000)
    patient_study(ds, uids["mr_study"], "A20240612-0002", "MR brain")
    ds.SeriesDescription = "T1 axial"
    ds.BodyPartExamined = "HEAD"
    ds.ScanningSequence = "SE"
    ds.SequenceVariant = "SP"
    ds.ScanOptions = ""
    ds.MRAcquisitionType = "2D"
    ds.SliceThickness = "3.0"
    ds.RepetitionTime = "500"
    ds.EchoTime = "12"
    ds.MagneticFieldStrength = "1.5"
    ds.ImagingFrequency = "63.87"
    ds.EchoTrainLength = "1"
    ds.FlipAngle = "90"
    ds.PatientPosition = "HFS"
    ds.SeriesInstanceUID = uids["mr_series"]
    ds.SeriesNumber = "3"
    ds.InstanceNumber = str(i + 1)
    ds.ImagePositionPatient = ["-120.0", "-120.0", "%.1f" % z]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = uids["mr_for"]
    ds.SliceLocation = "%.1f" % z
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 256
    ds.Columns = 256
    ds.PixelSpacing = ["0.9375", "0.9375"]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = "600"
    ds.WindowWidth = "1200"
    sequences(ds, uids)
    ds.PixelData = img16.tobytes()
    ds["PixelData"].VR = "OW"
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    return ds


def gen_ct(outdir, uids):
    d = os.path.join(outdir, "ct")
    os.makedirs(d, exist_ok=True)
    noise = Noise(11, 512 * 512, 12.0)
    for i in range(N_CT):
        z = -150.0 + i * 1.0
        hu = phantom(512, z, 360.0).ravel()
        img = (np.rint(hu) + 1024).astype(np.int16) + noise.frame()
        ct_slice(i, uids, img, z).save_as(os.path.join(d, "CT%04d.dcm" % (i + 1)), write_like_original=False)


def gen_mr(outdir, uids):
    d = os.path.join(outdir, "mr")
    os.makedirs(d, exist_ok=True)
    noise = Noise(12, 256 * 256, 15.0)
    for i in range(N_MR):
        z = -90.0 + i * 3.0
        hu = phantom(256, z, 240.0).ravel()
        sig = np.interp(hu, [-1000, -820, 40, 700, 1100], [0, 80, 900, 300, 250])
        img = np.clip(np.rint(sig) + noise.frame(), 0, 4095).astype(np.uint16)
        mr_slice(i, uids, img, z).save_as(os.path.join(d, "MR%04d.dcm" % (i + 1)), write_like_original=False)


def gen_mf(outdir, uids):
    d = os.path.join(outdir, "mf")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "enhanced_ct.dcm")
    sop = uids["mf_sop"]
    ds = FileDataset(None, {}, file_meta=file_meta(ENH_CT_STORAGE, sop), preamble=b"\0" * 128)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.SOPClassUID = ENH_CT_STORAGE
    ds.SOPInstanceUID = sop
    ds.Modality = "CT"
    ds.ContentDate = ds.AcquisitionDateTime = "20240613"
    ds.ContentTime = "111111.000000"
    patient_study(ds, uids["mf_study"], "A20240613-0003", "Enhanced CT")
    ds.SeriesDescription = "Enhanced CT 0.5 mm"
    ds.SeriesInstanceUID = uids["mf_series"]
    ds.SeriesNumber = "4"
    ds.InstanceNumber = "1"
    ds.FrameOfReferenceUID = uids["mf_for"]
    ds.PositionReferenceIndicator = ""
    ds.PresentationLUTShape = "IDENTITY"
    ds.BurnedInAnnotation = "NO"
    ds.ContentQualification = "RESEARCH"
    ds.ImageComments = "synthetic multi-frame phantom"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = str(N_MF)
    ds.Rows = 512
    ds.Columns = 512
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.LossyImageCompression = "00"
    sequences(ds, uids)
    dim_org = Dataset()
    dim_org.DimensionOrganizationUID = uids["mf_dimorg"]
    ds.DimensionOrganizationSequence = Sequence([dim_org])
    dims = []
    for ptr, grp in ((0x00209056, 0x00209111), (0x00209057, 0x00209111)):
        it = Dataset()
        it.DimensionOrganizationUID = uids["mf_dimorg"]
        it.DimensionIndexPointer = ptr
        it.FunctionalGroupPointer = grp
        dims.append(it)
    ds.DimensionIndexSequence = Sequence(dims)

    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = ["0.703125", "0.703125"]
    pm.SliceThickness = "0.5"
    shared.PixelMeasuresSequence = Sequence([pm])
    po = Dataset()
    po.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    shared.PlaneOrientationSequence = Sequence([po])
    pvt = Dataset()
    pvt.RescaleIntercept = "-1024"
    pvt.RescaleSlope = "1"
    pvt.RescaleType = "HU"
    shared.PixelValueTransformationSequence = Sequence([pvt])
    voi = Dataset()
    voi.WindowCenter = "40"
    voi.WindowWidth = "400"
    shared.FrameVOILUTSequence = Sequence([voi])
    ftype = Dataset()
    ftype.FrameType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ftype.PixelPresentation = "MONOCHROME"
    ftype.VolumetricProperties = "VOLUME"
    ftype.VolumeBasedCalculationTechnique = "NONE"
    shared.CTImageFrameTypeSequence = Sequence([ftype])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])

    zs = [-237.0 + k * 0.5 for k in range(N_MF)]
    per = []
    for k in range(N_MF):
        it = Dataset()
        fc = Dataset()
        fc.FrameAcquisitionNumber = 1
        fc.FrameReferenceDateTime = "20240613111111.%06d" % (k * 1000)
        fc.FrameAcquisitionDateTime = "20240613111111.%06d" % (k * 1000)
        fc.StackID = "1"
        fc.InStackPositionNumber = k + 1
        fc.DimensionIndexValues = [1, k + 1]
        it.FrameContentSequence = Sequence([fc])
        pp = Dataset()
        pp.ImagePositionPatient = ["-180.0", "-180.0", "%.1f" % zs[k]]
        it.PlanePositionSequence = Sequence([pp])
        per.append(it)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    ds.is_little_endian = True
    ds.is_implicit_VR = False

    tmp = path + ".tmp"
    ds.save_as(tmp, write_like_original=False)
    nbytes = N_MF * 512 * 512 * 2
    noise = Noise(13, 512 * 512, 12.0)
    with open(tmp, "ab") as fp:
        # (7FE0,0010) OW, explicit VR LE long form: tag, VR, 2 reserved, 32-bit length
        fp.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, nbytes))
        batch = []
        for k in range(N_MF):
            # the phantom changes slowly: compute every 4th position, reuse between
            if k % 4 == 0:
                base = (np.rint(phantom(512, zs[k], 360.0)) + 1024).astype(np.int16).ravel()
            batch.append(base + noise.frame())
            if len(batch) == 32 or k == N_MF - 1:
                fp.write(np.concatenate(batch).astype("<i2", copy=False).tobytes())
                batch = []
    os.replace(tmp, path)


N_MF_SMALL = 400   # 400 x 512 x 512 x 2 = 209.7 MB of pixel data


def gen_mf_small(outdir):
    """mf/enhanced_ct_210.dcm: the first N_MF_SMALL frames of the big
    multi-frame file (header cut to match, SOP Instance UID + ".1"), for
    the server benchmark's large upload (bench/server_bench.py). Made from
    the big file, not from the seeds, so that it is quick."""
    big = os.path.join(outdir, "mf", "enhanced_ct.dcm")
    path = os.path.join(outdir, "mf", "enhanced_ct_210.dcm")
    if os.path.exists(path):
        return False
    ds = pydicom.dcmread(big, stop_before_pixels=True)
    frame = 512 * 512 * 2
    pix_off = os.path.getsize(big) - N_MF * frame
    ds.SOPInstanceUID = ds.SOPInstanceUID + ".1"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.NumberOfFrames = str(N_MF_SMALL)
    ds.PerFrameFunctionalGroupsSequence = Sequence(list(ds.PerFrameFunctionalGroupsSequence)[:N_MF_SMALL])
    tmp = path + ".tmp"
    ds.save_as(tmp, write_like_original=False)
    nbytes = N_MF_SMALL * frame
    with open(big, "rb") as src, open(tmp, "ab") as fp:
        fp.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, nbytes))
        src.seek(pix_off)
        left = nbytes
        while left:
            b = src.read(min(left, 1 << 24))
            if not b:
                raise SystemExit("gen_corpus: %s is short" % big)
            fp.write(b)
            left -= len(b)
    os.replace(tmp, path)
    return True


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")
    stamp = os.path.join(outdir, ".stamp")
    try:
        with open(stamp) as fp:
            if fp.read().strip() == VERSION:
                made = gen_mf_small(outdir)
                print("gen_corpus: %s is up to date%s" % (outdir, " (made mf/enhanced_ct_210.dcm)" if made else ""))
                return 0
    except FileNotFoundError:
        pass
    for sub in ("ct", "mr", "mf"):
        shutil.rmtree(os.path.join(outdir, sub), ignore_errors=True)
    os.makedirs(outdir, exist_ok=True)
    u = Uids(20240611)
    uids = {k: u.new() for k in ("ct_study", "ct_series", "ct_for", "mr_study", "mr_series", "mr_for",
                                 "mf_study", "mf_series", "mf_for", "mf_sop", "mf_dimorg", "refstudy")}
    uids["ct_sop"] = [u.new() for _ in range(N_CT)]
    uids["mr_sop"] = [u.new() for _ in range(N_MR)]
    t0 = time.time()
    gen_ct(outdir, uids)
    t1 = time.time()
    gen_mr(outdir, uids)
    t2 = time.time()
    gen_mf(outdir, uids)
    gen_mf_small(outdir)
    t3 = time.time()
    with open(stamp, "w") as fp:
        fp.write(VERSION + "\n")
    print("gen_corpus: pydicom %s: %d CT in %.1f s, %d MR in %.1f s, %d-frame file in %.1f s -> %s"
          % (pydicom.__version__, N_CT, t1 - t0, N_MR, t2 - t1, N_MF, t3 - t2, outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
