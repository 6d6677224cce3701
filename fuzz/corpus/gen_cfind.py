#!/usr/bin/python3
"""gen_cfind.py: writes the seed corpus of cfind_fuzz (fuzz/corpus/cfind/):
pairs of an identifier and a record, bare data sets written by pydicom
(Debian's python3-pydicom, run with /usr/bin/python3), each file laid out
as cfind_fuzz.c reads it: a byte of level and encodings, the identifier's
length (2 bytes, little endian), the identifier, the record. Synthetic
values only. Deterministic. Our own work, same licence as dicomvault."""
import os
import struct
import sys
import warnings

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "integration", "lib"))
import dsgen  # noqa: E402  (the tests' data set writers)

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cfind")
LEVELS = {"PATIENT": 0, "STUDY": 1, "SERIES": 2, "IMAGE": 3}


def record():
    r = Dataset()
    r.SpecificCharacterSet = "ISO_IR 192"
    r.PatientName = "Doe^Jane=\u5c71\u7530^\u82b1\u5b50"
    r.PatientID = "PAT-0001"
    r.PatientBirthDate = "19700101"
    r.PatientSex = "F"
    r.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    r.StudyDate = "20240315"
    r.StudyTime = "101530.25"
    r.AccessionNumber = "ACC42"
    r.StudyDescription = "CT CHEST"
    r.ModalitiesInStudy = ["CT", "SR"]
    r.ReferringPhysicianName = "Smith^John"
    r.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.1.1"
    r.SeriesNumber = "3"
    r.Modality = "CT"
    r.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.1.1.7"
    r.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    r.InstanceNumber = "7"
    code = Dataset()
    code.CodeValue = "T-D3000"
    code.CodingSchemeDesignator = "SRT"
    code.CodeMeaning = "Chest"
    r.ProcedureCodeSequence = Sequence([code])
    return r


def ident(level, **keys):
    d = Dataset()
    d.QueryRetrieveLevel = level
    for k, v in keys.items():
        setattr(d, k, v)
    return d


def main():
    warnings.simplefilter("ignore")   # wildcards in CS keys are C-FIND's, not a CS value's
    os.makedirs(HERE, exist_ok=True)
    seq_key = Dataset()
    seq_key.CodeValue = "T-D3*"
    cases = {
        "patient_name_wild": ident("PATIENT", PatientName="do*^j?ne", PatientID=""),
        "patient_id_exact": ident("PATIENT", PatientID="PAT-0001", PatientName=""),
        "study_date_range": ident("STUDY", StudyDate="20240101-20241231", StudyTime="10-11", StudyInstanceUID=""),
        "study_uid_list": ident("STUDY", StudyInstanceUID=["1.2.3", "1.2.826.0.1.3680043.8.498.1"]),
        "study_modalities": ident("STUDY", ModalitiesInStudy="CT", AccessionNumber="ACC*"),
        "study_sequence": ident("STUDY", ProcedureCodeSequence=Sequence([seq_key])),
        "series_number": ident("SERIES", SeriesNumber="3", Modality="C?"),
        "image_uid": ident("IMAGE", SOPInstanceUID="1.2.826.0.1.3680043.8.498.1.1.7", InstanceNumber=""),
        "ideographic_name": ident("PATIENT", SpecificCharacterSet="ISO_IR 192", PatientName="=\u5c71\u7530*"),
        "universal": ident("STUDY", StudyDate="", PatientName="*"),
        "no_match": ident("STUDY", StudyDate="19990101", PatientID="OTHER"),
    }
    for i, (name, d) in enumerate(sorted(cases.items())):
        level = LEVELS[d.QueryRetrieveLevel]
        id_implicit = i % 2 == 1
        rec_implicit = i % 3 == 1
        idb = dsgen.implicit(d, id_implicit)
        recb = dsgen.implicit(record(), rec_implicit)
        head = bytes([level | (4 if id_implicit else 0) | (8 if rec_implicit else 0)]) + struct.pack("<H", len(idb))
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(head + idb + recb)


if __name__ == "__main__":
    main()
