"""qido_values.py DV: stored values that the QIDO index must keep as the
matching sees them. A study of 13 series, each of its own modality (an
RT course: CT MR PT RTSTRUCT RTPLAN RTDOSE RTIMAGE RTRECORD REG SEG KO PR
SR, 64 bytes and more together): ModalitiesInStudy lists all 13 and
matches on the last (before, the index kept 64 bytes and SR was dropped);
a data set with Modality " MR" and StudyDate " 20240404" (leading spaces,
not significant in CS and DA): found by Modality=MR, ModalitiesInStudy=MR
and StudyDate=20240404, the values answered without the spaces; a data set
in ISO 2022 IR 87 whose PatientID and AccessionNumber begin with the escape
ESC ( B (ASCII designated again, as some Japanese modalities write): found
by the exact PatientID and AccessionNumber, which its keyed hashes must be
of (before, the raw bytes were hashed and only a wildcard found it).

Run as /usr/bin/python3 tests/integration/qido_values.py build/check/dicomvault.
Prints ok/not ok lines; exits 1 if any check failed. KEEP=1 keeps the
directory. Layer: tests."""
import json
import warnings
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import Tap  # noqa: E402

warnings.simplefilter("ignore")   # pydicom warns of the leading space, which is the point
TAP = Tap("qido_values")
check, skip = TAP.check, TAP.skip
DV = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/check/dicomvault")
try:
    import dsgen
    from dvserver import Vault, finish
except ImportError:
    skip("no pydicom")

P = "1.2.826.0.1.3680043.2.1143.92."
MODS = ["CT", "MR", "PT", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTIMAGE", "RTRECORD", "REG", "SEG", "KO", "PR", "SR"]
T = tempfile.mkdtemp(prefix="dv-qidovals.")
v = None


def qido(path):
    st, _, b = v.request("GET", "/dicom-web/" + path, headers={"Accept": "application/dicom+json"})
    return st, (json.loads(b) if st == 200 and b else [])


def val(item, tag):
    return (item.get(tag, {}).get("Value") or [None])


def studies(d):
    return sorted(val(i, "0020000D")[0] for i in d)


def main():
    global v
    v = Vault(DV, T).serve()
    v.login()
    rt = [dsgen.part10(dsgen.sc(P + "1.%d.1" % k, P + "1", P + "1.%d" % k, "RT^COURSE", "RT92", Modality=m))
          for k, m in enumerate(MODS)]
    sp = dsgen.part10(dsgen.sc(P + "2.1.1", P + "2", P + "2.1", "SPACE^LEAD", "SP92", Modality=" MR",
                               StudyDate=" 20240404"))
    esc = dsgen.sc(P + "3.1.1", P + "3", P + "3.1", "ESC^TEST", "x")
    esc.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    esc.add_new(0x00100020, "LO", b"\x1b(BPIDESC92")
    esc.add_new(0x00080050, "SH", b"\x1b(BACCESC92 ")
    st, j = v.stow(rt + [sp, dsgen.part10(esc)])
    check("15 instances stored", st == 200 and len((j or {}).get("00081199", {}).get("Value", [])) == 15, (st, j))
    st, d = qido("studies?StudyInstanceUID=%s1&includefield=00080061" % P)
    got = val(d[0], "00080061") if d else []
    check("ModalitiesInStudy of the 13-series study: all 13", sorted(got) == sorted(MODS), got)
    st, d = qido("studies?ModalitiesInStudy=SR")
    check("ModalitiesInStudy=SR (the 13th, past 64 bytes): the study", st == 200 and studies(d) == [P + "1"],
          (st, studies(d)))
    st, d = qido("studies?ModalitiesInStudy=MR")
    check("ModalitiesInStudy=MR: both studies (one stored as ' MR')", st == 200 and studies(d) == [P + "1", P + "2"],
          (st, studies(d)))
    st, d = qido("series?Modality=MR")
    mods = sorted(val(i, "00080060")[0] for i in d)
    check("series?Modality=MR: both series, the value answered without its space",
          st == 200 and len(d) == 2 and mods == ["MR", "MR"], (st, mods))
    st, d = qido("studies?StudyDate=20240404")
    check("StudyDate=20240404 finds the study stored as ' 20240404', answered without the space",
          st == 200 and studies(d) == [P + "2"] and val(d[0], "00080020") == ["20240404"],
          (st, [val(i, "00080020") for i in d]))
    st, d = qido("studies?StudyDate=20240101-20241231")
    check("and within a date range", st == 200 and studies(d) == [P + "2"], (st, studies(d)))
    for q in ("PatientID=PIDESC92", "AccessionNumber=ACCESC92", "PatientID=PIDESC9*", "AccessionNumber=ACCESC*"):
        st, d = qido("studies?" + q)
        check("ISO 2022 IR 87 values after ESC ( B: %s finds the study" % q,
              st == 200 and studies(d) == [P + "3"], (st, studies(d)))
    st, d = qido("studies?PatientID=PIDESC92&AccessionNumber=ACCESC92&includefield=00100020")
    check("and answers the values decoded", st == 200 and len(d) == 1 and val(d[0], "00100020") == ["PIDESC92"]
          and val(d[0], "00080050") == ["ACCESC92"], (st, d))


TAP.run(main, lambda: finish(T, v))
