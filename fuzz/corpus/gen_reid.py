#!/usr/bin/python3
"""gen_reid.py: writes the seed corpus of reid_fuzz (fuzz/corpus/reid/),
each file a mode byte and its payload as reid_fuzz.c reads them: Part 10
files for the de-identify and re-identify round trip (mode 0, under
several profile options) and for re-identification as they are (mode 1,
one with an Encrypted Attributes Sequence that no key opens), and escrow
plaintexts (mode 2: a Modified Attributes Sequence of one item, of two
items, nested, empty). pydicom's small samples (MIT licence) and the
tests' dsgen instances. Deterministic. Our own work, same licence as
dicomvault."""
import os
import sys
import warnings

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "integration", "lib"))
import dsgen  # noqa: E402  (the tests' data set writers)

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reid")
TF = "/usr/lib/python3/dist-packages/pydicom/data/test_files"
UID = "1.2.826.0.1.3680043.8.498.78"


def modified(items):
    mod = Dataset()
    mod.ModifiedAttributesSequence = Sequence(items)
    return dsgen.implicit(mod, vr_implicit=False)


def seeds():
    sc = dsgen.sc(UID + ".1.1.1", UID + ".1", UID + ".1.1", "Doe^Jane", "PID-1", StudyDate="20240315",
                  AccessionNumber="ACC1", InstitutionName="General", StudyDescription="CT CHEST")
    b = dsgen.part10(sc)
    yield "rt_sc_basic", b"\x00" + b
    yield "rt_sc_options_a", b"\x0c" + b   # mode 0, option bits 3 and 2 of the low byte
    yield "rt_sc_options_b", b"\xf0" + b
    for name in ("rtplan.dcm", "MR_small.dcm", "nested_priv_SQ.dcm"):
        with open(os.path.join(TF, name), "rb") as f:
            yield "rt_" + name.replace(".dcm", ""), b"\x00" + f.read()
    yield "raw_no_escrow", b"\x01" + b
    enc = dsgen.sc(UID + ".2.1.1", UID + ".2", UID + ".2.1", "", "ANON", PatientIdentityRemoved="YES")
    item = Dataset()
    item.EncryptedContentTransferSyntaxUID = "1.2.840.10008.1.2.1"
    item.EncryptedContent = b"\x30\x80" + bytes(62)
    enc.EncryptedAttributesSequence = Sequence([item])
    yield "raw_unopenable", b"\x01" + dsgen.part10(enc)
    one = Dataset()
    one.PatientName = "Doe^Jane"
    one.PatientID = "PID-1"
    one.StudyInstanceUID = UID + ".3"
    yield "esc_one_item", b"\x02" + modified([one])
    yield "esc_two_items", b"\x02" + modified([one, one])
    nested = Dataset()
    inner = Dataset()
    inner.CodeValue = "X"
    nested.ProcedureCodeSequence = Sequence([inner])
    nested.PatientIdentityRemoved = "NO"
    yield "esc_nested", b"\x02" + modified([nested])
    yield "esc_empty_item", b"\x02" + modified([Dataset()])
    yield "esc_not_modified", b"\x02" + dsgen.implicit(one, vr_implicit=False)


def main():
    warnings.simplefilter("ignore")
    os.makedirs(HERE, exist_ok=True)   # finding_* files beside the seeds stay
    for name, b in seeds():
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(b)


if __name__ == "__main__":
    main()
