#!/usr/bin/python3
"""gen_store.py: writes the seed corpus of store_fuzz (fuzz/corpus/store/):
small Part 10 files whose index attributes take the store's odd paths
(person names in several character sets and with component groups,
dates and times in DICOM and ACR-NEMA forms and broken ones, no Patient
ID, an issuer, a UID with trailing NUL, multi-valued modalities,
sequences of identifying attributes, other transfer syntaxes, a file
whose VR encoding contradicts its meta), each a patient, study, series
and instance of its own. Written by pydicom (Debian's python3-pydicom,
run with /usr/bin/python3) through the tests' dsgen. Synthetic values
only. Deterministic. Our own work, same licence as dicomvault."""
import os
import sys
import warnings

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "integration", "lib"))
import dsgen  # noqa: E402  (the tests' data set writers)

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "store")
UID = "1.2.826.0.1.3680043.8.498.77"


def inst(i, name="Fuzz^Seed", pid=None, **attrs):
    pid = "STORE-%02d" % i if pid is None else pid
    ds = dsgen.sc("%s.%d.1.1" % (UID, i), "%s.%d" % (UID, i), "%s.%d.1" % (UID, i), name, pid, **attrs)
    if pid == "":
        del ds.PatientID
    return ds


def seeds():
    yield "plain", inst(1, StudyDate="20240315", StudyTime="101530.25", PatientBirthDate="19700101",
                        PatientSex="F", AccessionNumber="ACC1", StudyDescription="CT CHEST", StudyID="7",
                        ReferringPhysicianName="Smith^John")
    yield "latin1", inst(2, name="M\u00fcller^J\u00fcrgen", SpecificCharacterSet="ISO_IR 100")
    yield "utf8_groups", inst(3, name="Yamada^Tarou=\u5c71\u7530^\u592a\u90ce=\u3084\u307e\u3060^\u305f\u308d\u3046",
                              SpecificCharacterSet="ISO_IR 192")
    d = inst(4, name="Yamada^Tarou=\u5c71\u7530^\u592a\u90ce", SpecificCharacterSet=["", "ISO 2022 IR 87"])
    yield "iso2022", d
    yield "acr_nema_dates", inst(5, StudyDate="2020.03.01", StudyTime="10:15:30", PatientBirthDate="1970.01.01",
                                 SeriesDate="2020.03.01", ContentTime="10:15")
    yield "bad_dates", inst(6, StudyDate="2020133", StudyTime="256161", PatientBirthDate="-",
                            SeriesDate="20200230", AcquisitionDateTime="20200301101530.123456+0100")
    yield "no_patient_id", inst(7, pid="")
    yield "issuer_spaces", inst(8, pid="ID 8  ", IssuerOfPatientID="HOSP^X ")
    yield "wild_chars", inst(9, name="A*B?^C\\D", pid="P*?9")
    d = inst(10, ModalitiesInStudy=["CT", "SR", "OT"], SeriesNumber=-3, InstanceNumber=2147483647,
             NumberOfFrames="1")
    yield "numbers", d
    d = inst(11)
    r = Dataset()
    r.RequestedProcedureID = "RP1"
    r.AccessionNumber = "ACC-IN-SEQ"
    d.RequestAttributesSequence = Sequence([r])
    o = Dataset()
    o.PatientID = "OTHER-11"
    o.IssuerOfPatientID = "ELSEWHERE"
    d.OtherPatientIDsSequence = Sequence([o])
    yield "sequences", d
    d = inst(12, name="")
    yield "empty_name", d
    d = inst(13, name="^^^^")
    yield "empty_components", d
    d = inst(14, name="X" * 64, pid="Y" * 64, StudyDescription="Z" * 64)
    yield "long_values", d
    d = inst(15)
    d.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    d.is_implicit_VR = True
    yield "implicit", d
    d = inst(16)
    d.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    d.is_little_endian = False
    yield "big_endian", d


def main():
    warnings.simplefilter("ignore")   # the odd values are the point
    os.makedirs(HERE, exist_ok=True)
    for name, ds in seeds():
        with open(os.path.join(HERE, name + ".dcm"), "wb") as f:
            f.write(dsgen.part10(ds))
    # a data set in explicit VR under a meta that says implicit: refused
    ds = inst(17)
    b = bytearray(dsgen.part10(ds))
    i = b.index(b"1.2.840.10008.1.2.1\x00")
    b[i:i + 20] = b"1.2.840.10008.1.2\x00\x00\x00"
    with open(os.path.join(HERE, "vr_mismatch.dcm"), "wb") as f:
        f.write(bytes(b))


if __name__ == "__main__":
    main()
