#!/bin/bash
# dimse_find.sh: the C-FIND SCP of `dicomvault serve` (issue 5) against
# DCMTK's findscu over DICOM-TLS (client certificates made here with
# openssl). A small hierarchy made with pydicom (three patients of the
# default collection, one name in UTF-8, and a patient and a study stored
# into another collection) is stored with storescu, then queried with the
# Patient Root (-P) and Study Root (-S) models at every level (the Study
# Root SERIES level with the series' counts), in explicit
# and implicit VR: the answers (written by findscu -X, read with pydicom)
# are compared with what was stored; wildcards (PatientName=DOE*), a
# date range, a peer whose collection excludes a study (not returned, and
# the patient's related counts tell of its collection only), a peer
# without the find right (refused), a QueryRetrieveLevel the model lacks
# (A900H), C-CANCEL (FE00H), one "query" audit record per C-FIND. Prints
# ok/not ok lines. Env DV: the CLI under test; KEEP=1 keeps the directory.
# Layer: tests.
set -u
DV=${DV:-build/check/dicomvault}
PY=/usr/bin/python3
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TEST=dimse_find
. "$(dirname "$0")/lib/dimse.sh"
tap_setup dfind

need findscu storescu openssl

cert peer1
[ -s "$T/peer1.crt" ] || { no "openssl made the certificate"; exit 0; }

# ---- the data: 3 patients in the default collection, one also with a
# study in "ctdept"; a 4th patient only in "ctdept" ----
"$PY" - "$T/data" >"$T/gen.err" 2>&1 <<'PYEOF'
import os, sys
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
out = sys.argv[1]
os.makedirs(out + "/default"); os.makedirs(out + "/ctdept"); os.makedirs(out + "/probe")
n = [0]
def inst(coll, pname, pid, birth, study, sdate, acc, series, mod, snum, inum, cs=None, rqa=()):
    n[0] += 1
    ds = Dataset()
    if cs: ds.SpecificCharacterSet = cs
    items = []
    for rp, sps in rqa:
        it = Dataset(); it.RequestedProcedureID = rp; it.ScheduledProcedureStepID = sps
        items.append(it)
    if items: ds.RequestAttributesSequence = items
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"   # secondary capture
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.2.1143.9.%d" % n[0]
    ds.PatientName = pname; ds.PatientID = pid; ds.PatientBirthDate = birth; ds.PatientSex = "O"
    ds.StudyInstanceUID = study; ds.StudyDate = sdate; ds.StudyTime = "101500"; ds.AccessionNumber = acc
    ds.StudyID = "1"; ds.StudyDescription = "desc " + acc
    ds.SeriesInstanceUID = series; ds.Modality = mod; ds.SeriesNumber = snum; ds.InstanceNumber = inum
    ds.Rows = 2; ds.Columns = 2; ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 8; ds.BitsStored = 8; ds.HighBit = 7; ds.PixelRepresentation = 0
    ds.PixelData = bytes([n[0] & 255] * 4)
    fm = FileMetaDataset(); fm.MediaStorageSOPClassUID = ds.SOPClassUID
    fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID; fm.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = fm
    ds.is_little_endian = True; ds.is_implicit_VR = False
    ds.save_as("%s/%s/%03d.dcm" % (out, coll, n[0]), write_like_original=False)
S = "1.2.826.0.1.3680043.2.1143.7."
inst("default", "DOE^JOHN", "P1", "19700101", S + "1", "20240105", "A1", S + "1.1", "CT", 1, 1)
inst("default", "DOE^JOHN", "P1", "19700101", S + "1", "20240105", "A1", S + "1.1", "CT", 1, 2)
inst("default", "DOE^JOHN", "P1", "19700101", S + "1", "20240105", "A1", S + "1.2", "SR", 2, 1)
inst("default", "DOE^JANE", "P2", "19800202", S + "2", "20240310", "A2", S + "2.1", "MR", 1, 1,
     rqa=[("RP-A", "SPS-A"), ("RP-B", "SPS-B")])
inst("default", "MÜLLER^ANN", "P3", "19900303", S + "3", "20230707", "A3", S + "3.1", "CT", 1, 1, "ISO_IR 192")
inst("ctdept", "DOE^JOHN", "P1", "19700101", S + "4", "20240601", "A4", S + "4.1", "CT", 1, 1)
inst("ctdept", "DOE^HIDDEN", "P4", "19600404", S + "5", "20240602", "A5", S + "5.1", "CT", 1, 1)
# stored by CTFINDER later: P2's Patient ID (a patient of the default
# collection only) under another name and birth date
inst("probe", "PROBE^CT", "P2", "20000101", S + "6", "20240603", "A6", S + "6.1", "CT", 1, 1)
PYEOF
check "pydicom made the data" "[ \$(ls '$T'/data/*/*.dcm 2>/dev/null | wc -l) -eq 8 ]" "$T/gen.err"

vault_init || exit 0
HP=$(free_port)
DP=$(free_port)
FP=$(fp "$T/peer1.crt")
cat >>"$T/v/dicomvault.conf" <<CONF

[peer "FINDER"]
fingerprint = $FP
rights = echo, store, find

[peer "CTFINDER"]
fingerprint = $FP
collection = ctdept
rights = store, find

[peer "NOFIND"]
fingerprint = $FP
rights = echo, store

[collection "ctdept"]
CONF
serve_dicom || exit 0
SC="$T/v/keys/tls.crt"
TLS=(+tls "$T/peer1.key" "$T/peer1.crt" +cf "$SC")
storescu -to 20 -ta 20 -td 20 "${TLS[@]}" -aet FINDER -aec DICOMVAULT 127.0.0.1 "$DP" "$T"/data/default/*.dcm \
	>"$T/s1" 2>&1
check "storescu into the default collection" "[ $? -eq 0 ]" "$T/s1"
storescu -to 20 -ta 20 -td 20 "${TLS[@]}" -aet CTFINDER -aec DICOMVAULT 127.0.0.1 "$DP" "$T"/data/ctdept/*.dcm \
	>"$T/s2" 2>&1
check "storescu into ctdept" "[ $? -eq 0 ]" "$T/s2"

# find NAME AET MODEL-OPTION [findscu options and keys]: responses in $T/NAME/rsp*.dcm
find_() {
	local name=$1 aet=$2
	shift 2
	mkdir -p "$T/q$name"
	findscu -v -to 20 -ta 20 -td 20 "${TLS[@]}" -aet "$aet" -aec DICOMVAULT -X -od "$T/q$name" "$@" 127.0.0.1 "$DP" \
		>"$T/$name.log" 2>&1
}
# got NAME KEYWORD...: one line per response, the keywords' values joined by |, sorted
got() {
	local name=$1
	shift
	"$PY" - "$T/q$name" "$@" <<'PYEOF'
import glob, sys, pydicom
rows = []
for f in sorted(glob.glob(sys.argv[1] + "/rsp*.dcm")):
    d = pydicom.dcmread(f, force=True)
    vals = [(d[k].value if k in d else "<absent>") for k in sys.argv[2:]]
    rows.append("|".join("" if v is None else str(v) for v in vals))
print("\n".join(sorted(rows)))
PYEOF
}
S=1.2.826.0.1.3680043.2.1143.7.

# ---- Patient Root ----
find_ p1 FINDER -P -k QueryRetrieveLevel=PATIENT -k PatientName -k PatientID -k PatientBirthDate \
	-k NumberOfPatientRelatedStudies -k NumberOfPatientRelatedInstances
check "patient root, PATIENT level: succeeded" "[ $? -eq 0 ]" "$T/p1.log" "$T/err"
got p1 PatientID PatientName PatientBirthDate NumberOfPatientRelatedStudies NumberOfPatientRelatedInstances \
	QueryRetrieveLevel >"$T/p1.txt"
cat >"$T/p1.want" <<EOF
P1|DOE^JOHN|19700101|1|3|PATIENT
P2|DOE^JANE|19800202|1|1|PATIENT
P3|MÜLLER^ANN|19900303|1|1|PATIENT
EOF
check "PATIENT level: every patient of the collection, counts of the collection only, not P4" \
	"diff '$T/p1.want' '$T/p1.txt' >'$T/p1.diff'" "$T/p1.diff"
got p1 SpecificCharacterSet PatientID >"$T/p1cs.txt"
check "UTF-8 name answered with SpecificCharacterSet ISO_IR 192" "grep -qx 'ISO_IR 192|P3' '$T/p1cs.txt'" "$T/p1cs.txt"
check "3 pending responses, then success" \
	"[ \$(grep -c 'Find Response [0-9]* (Pending)' '$T/p1.log') -eq 3 ] && grep -q 'Final Find Response (Success)' '$T/p1.log'" "$T/p1.log"

find_ p2 FINDER -P -k QueryRetrieveLevel=PATIENT -k 'PatientName=DOE*' -k PatientID
got p2 PatientID >"$T/p2.txt"
check "wildcard PatientName=DOE*: P1 and P2 only" "[ \"\$(tr '\n' ' ' <'$T/p2.txt')\" = 'P1 P2 ' ]" "$T/p2.txt"

# PS3.5 6.2: trailing empty components and groups may be left out, so
# DOE^JANE^^= is the name stored as DOE^JANE; a UTF-8 name, exact, in
# another case and without its accent: both through the index's hash of
# the name's group
find_ p2b FINDER -P -k QueryRetrieveLevel=PATIENT -k 'PatientName=DOE^JANE^^=' -k PatientID
got p2b PatientID >"$T/p2b.txt"
check "exact PatientName=DOE^JANE^^=: P2" "[ \"\$(cat '$T/p2b.txt')\" = 'P2' ]" "$T/p2b.txt"
find_ p2c FINDER -P -k QueryRetrieveLevel=PATIENT -k 'SpecificCharacterSet=ISO_IR 192' -k 'PatientName=muller^Ann' \
	-k PatientID
got p2c PatientID >"$T/p2c.txt"
check "exact UTF-8 PatientName=muller^Ann: P3" "[ \"\$(cat '$T/p2c.txt')\" = 'P3' ]" "$T/p2c.txt"

find_ p3 FINDER -P -xi -k QueryRetrieveLevel=STUDY -k PatientID=P1 -k PatientName -k StudyInstanceUID \
	-k StudyDate -k AccessionNumber -k ModalitiesInStudy
check "patient root, STUDY level, implicit VR: succeeded" "[ $? -eq 0 ]" "$T/p3.log"
got p3 StudyInstanceUID PatientName StudyDate AccessionNumber >"$T/p3.txt"
check "STUDY level of P1: its default study, not the ctdept one" \
	"[ \"\$(cat '$T/p3.txt')\" = '${S}1|DOE^JOHN|20240105|A1' ]" "$T/p3.txt"

find_ p4 FINDER -P -k QueryRetrieveLevel=SERIES -k StudyInstanceUID=${S}1 -k SeriesInstanceUID -k Modality \
	-k SeriesNumber -k NumberOfSeriesRelatedInstances
got p4 SeriesInstanceUID Modality SeriesNumber NumberOfSeriesRelatedInstances QueryRetrieveLevel >"$T/p4.txt"
printf '%s\n' "${S}1.1|CT|1|2|SERIES" "${S}1.2|SR|2|1|SERIES" >"$T/p4.want"
check "patient root, SERIES level: both series with their counts" "diff '$T/p4.want' '$T/p4.txt' >'$T/p4.diff'" "$T/p4.diff"

find_ p5 FINDER -P -k QueryRetrieveLevel=IMAGE -k SeriesInstanceUID=${S}1.1 -k SOPInstanceUID -k SOPClassUID \
	-k InstanceNumber
got p5 SOPInstanceUID SOPClassUID InstanceNumber >"$T/p5.txt"
"$PY" -c '
import glob, sys, pydicom
rows = []
for f in glob.glob(sys.argv[1] + "/*.dcm"):
    d = pydicom.dcmread(f)
    if d.SeriesInstanceUID == sys.argv[2]:
        rows.append("%s|%s|%s" % (d.SOPInstanceUID, d.SOPClassUID, d.InstanceNumber))
print("\n".join(sorted(rows)))' "$T/data/default" "${S}1.1" >"$T/p5.want"
check "patient root, IMAGE level: the two instances as stored" "diff '$T/p5.want' '$T/p5.txt' >'$T/p5.diff'" \
	"$T/p5.diff"

# ---- Study Root ----
find_ s1 FINDER -S -k QueryRetrieveLevel=STUDY -k StudyInstanceUID -k PatientID -k StudyDate=20240101-20241231
check "study root, STUDY level with a date range: succeeded" "[ $? -eq 0 ]" "$T/s1.log"
got s1 StudyInstanceUID PatientID >"$T/s1.txt"
printf '%s\n' "${S}1|P1" "${S}2|P2" >"$T/s1.want"
check "date range 2024: studies 1 and 2 (3 is of 2023, 4 and 5 of ctdept)" "diff '$T/s1.want' '$T/s1.txt' >'$T/s1.diff'" \
	"$T/s1.diff"
find_ s2 FINDER -S -k QueryRetrieveLevel=IMAGE -k StudyInstanceUID=${S}2 -k SOPInstanceUID -k PatientName
got s2 PatientName QueryRetrieveLevel >"$T/s2.txt"
check "study root, IMAGE level" "[ \"\$(cat '$T/s2.txt')\" = 'DOE^JANE|IMAGE' ]" "$T/s2.txt"
find_ s4 FINDER -S -k QueryRetrieveLevel=SERIES -k StudyInstanceUID=${S}1 -k SeriesInstanceUID -k Modality \
	-k NumberOfSeriesRelatedInstances
check "study root, SERIES level: succeeded" "[ $? -eq 0 ] && grep -q 'Final Find Response (Success)' '$T/s4.log'" \
	"$T/s4.log"
got s4 StudyInstanceUID SeriesInstanceUID Modality NumberOfSeriesRelatedInstances QueryRetrieveLevel >"$T/s4.txt"
printf '%s\n' "${S}1|${S}1.1|CT|2|SERIES" "${S}1|${S}1.2|SR|1|SERIES" >"$T/s4.want"
check "study root, SERIES level of study 1: both series, their modality and instance counts" \
	"diff '$T/s4.want' '$T/s4.txt' >'$T/s4.diff' && [ \$(grep -c 'Find Response [0-9]* (Pending)' '$T/s4.log') -eq 2 ]" \
	"$T/s4.diff" "$T/s4.log"
find_ s5 FINDER -S -k QueryRetrieveLevel=SERIES -k StudyInstanceUID=${S}1 -k SeriesInstanceUID=${S}1.2 -k Modality \
	-k NumberOfSeriesRelatedInstances
got s5 SeriesInstanceUID Modality NumberOfSeriesRelatedInstances >"$T/s5.txt"
check "study root, SERIES level matching one SeriesInstanceUID: that series only" \
	"[ \"\$(cat '$T/s5.txt')\" = '${S}1.2|SR|1' ]" "$T/s5.txt" "$T/s5.log"
find_ s6 CTFINDER -S -k QueryRetrieveLevel=SERIES -k StudyInstanceUID=${S}1 -k SeriesInstanceUID \
	-k NumberOfSeriesRelatedInstances
got s6 SeriesInstanceUID >"$T/s6.txt"
check "study root, SERIES level: a study of another collection answers nothing" \
	"grep -q 'Final Find Response (Success)' '$T/s6.log' && [ -z \"\$(cat '$T/s6.txt')\" ]" "$T/s6.txt" "$T/s6.log"
# sequence matching (PS3.4 C.2.2.2.6): the items that match, with only the
# attributes asked for; an item key with no value: every item, so cut; a
# zero-length item: the sequence whole (before, always whole)
rqa() {   # NAME: per response, each item as RequestedProcedureID/ScheduledProcedureStepID
	"$PY" - "$T/q$1" <<'PYEOF'
import glob, sys, pydicom
out = []
for f in sorted(glob.glob(sys.argv[1] + "/rsp*.dcm")):
    d = pydicom.dcmread(f, force=True)
    sq = d.get("RequestAttributesSequence")
    out.append("none" if sq is None else " ".join(
        "%s/%s" % (i.get("RequestedProcedureID", "-"), i.get("ScheduledProcedureStepID", "-")) for i in sq))
print(";".join(out))
PYEOF
}
find_ q1 FINDER -S -k QueryRetrieveLevel=SERIES -k StudyInstanceUID=${S}2 -k SeriesInstanceUID \
	-k 'RequestAttributesSequence[0].RequestedProcedureID=RP-B'
check "sequence key RequestedProcedureID=RP-B: the one matching item, only that attribute" \
	"[ \"\$(rqa q1)\" = 'RP-B/-' ]" "$T/q1.log"
find_ q2 FINDER -S -k QueryRetrieveLevel=SERIES -k StudyInstanceUID=${S}2 -k SeriesInstanceUID \
	-k 'RequestAttributesSequence[0].RequestedProcedureID'
check "sequence key with an empty item key: every item, only that attribute" \
	"[ \"\$(rqa q2)\" = 'RP-A/- RP-B/-' ]" "$T/q2.log"
find_ q3 FINDER -S -k QueryRetrieveLevel=SERIES -k StudyInstanceUID=${S}2 -k SeriesInstanceUID \
	-k RequestAttributesSequence
check "sequence key of no item: the sequence whole" "[ \"\$(rqa q3)\" = 'RP-A/SPS-A RP-B/SPS-B' ]" "$T/q3.log"
find_ q4 FINDER -S -k QueryRetrieveLevel=SERIES -k StudyInstanceUID=${S}2 -k SeriesInstanceUID \
	-k 'RequestAttributesSequence[0].RequestedProcedureID=RP-Z'
check "sequence key no item matches: no response" "[ -z \"\$(ls '$T/qq4')\" ] && grep -q 'Final Find Response (Success)' '$T/q4.log'" \
	"$T/q4.log"
find_ s3 FINDER -S -k QueryRetrieveLevel=PATIENT -k PatientID
check "study root has no PATIENT level: A900H" "grep -q 'DataSetDoesNotMatchSOPClass' '$T/s3.log'" "$T/s3.log"

# ---- access ----
find_ c1 CTFINDER -S -k QueryRetrieveLevel=STUDY -k StudyInstanceUID -k PatientID
got c1 StudyInstanceUID PatientID >"$T/c1.txt"
printf '%s\n' "${S}4|P1" "${S}5|P4" >"$T/c1.want"
check "a peer bound to ctdept sees its two studies only" "diff '$T/c1.want' '$T/c1.txt' >'$T/c1.diff'" "$T/c1.diff"
find_ c2 CTFINDER -P -k QueryRetrieveLevel=PATIENT -k PatientID -k NumberOfPatientRelatedStudies
got c2 PatientID NumberOfPatientRelatedStudies >"$T/c2.txt"
printf '%s\n' "P1|1" "P4|1" >"$T/c2.want"
check "its PATIENT level: P1 and P4, one study each" "diff '$T/c2.want' '$T/c2.txt' >'$T/c2.diff'" "$T/c2.diff"
# P1 has one study in each collection: a count is matched as it is shown,
# over what the peer may see (the index's count of 2 would answer for ctdept)
find_ c4 FINDER -P -k QueryRetrieveLevel=PATIENT -k PatientID=P1 -k NumberOfPatientRelatedStudies=2
got c4 PatientID >"$T/c4.txt"
find_ c5 FINDER -P -k QueryRetrieveLevel=PATIENT -k PatientID=P1 -k NumberOfPatientRelatedStudies=1
got c5 PatientID NumberOfPatientRelatedStudies >"$T/c5.txt"
check "NumberOfPatientRelatedStudies matched on the collection's count: =2 nothing, =1 P1" \
	"! grep -q . '$T/c4.txt' && grep -qx 'P1|1' '$T/c5.txt'" "$T/c4.txt" "$T/c5.txt"
find_ c3 NOFIND -S -k QueryRetrieveLevel=STUDY -k StudyInstanceUID
rc=$?
check "a peer without the find right: refused" \
	"[ $rc -ne 0 ] && [ -z \"\$(ls '$T/qc3')\" ]" "$T/c3.log"
# a patient's row is shared by the collections (keyed by Patient ID): a
# peer of ctdept that stores an instance under P2's ID (a patient of the
# default collection) is answered with what it stored, never with what
# the default collection holds for P2 (which it matched on, too)
storescu -to 20 -ta 20 -td 20 "${TLS[@]}" -aet CTFINDER -aec DICOMVAULT 127.0.0.1 "$DP" "$T"/data/probe/*.dcm \
	>"$T/s3" 2>&1
check "storescu of P2's ID into ctdept" "[ $? -eq 0 ]" "$T/s3"
find_ x1 CTFINDER -P -k QueryRetrieveLevel=PATIENT -k PatientID=P2 -k PatientName -k PatientBirthDate
got x1 PatientID PatientName PatientBirthDate >"$T/x1.txt"
find_ x2 CTFINDER -S -k QueryRetrieveLevel=STUDY -k PatientID=P2 -k PatientName -k PatientBirthDate
got x2 PatientID PatientName PatientBirthDate >"$T/x2.txt"
check "ctdept's peer: P2 as it stored it, at the PATIENT and STUDY levels" \
	"grep -qx 'P2|PROBE^CT|20000101' '$T/x1.txt' && grep -qx 'P2|PROBE^CT|20000101' '$T/x2.txt' && ! grep -q JANE '$T/x1.txt' '$T/x2.txt'" \
	"$T/x1.txt" "$T/x2.txt"
find_ x3 CTFINDER -P -k QueryRetrieveLevel=PATIENT -k 'PatientName=DOE^J*' -k PatientID
got x3 PatientID >"$T/x3.txt"
find_ x4 CTFINDER -S -k QueryRetrieveLevel=STUDY -k PatientBirthDate=19800202 -k PatientID
got x4 PatientID >"$T/x4.txt"
check "ctdept's peer: the default collection's name and birth date of P2 match nothing" \
	"grep -qx P1 '$T/x3.txt' && ! grep -q P2 '$T/x3.txt' && ! grep -q . '$T/x4.txt'" "$T/x3.txt" "$T/x4.txt"
find_ x6 CTFINDER -S -k QueryRetrieveLevel=STUDY -k 'PatientName=PROBE^CT' -k PatientID
got x6 PatientID >"$T/x6.txt"
check "ctdept's peer: its P2 study is found by its own exact name (the patient row has another)" \
	"grep -qx P2 '$T/x6.txt'" "$T/x6.txt"
find_ x5 FINDER -P -k QueryRetrieveLevel=PATIENT -k PatientID=P2 -k PatientName -k PatientBirthDate
got x5 PatientID PatientName PatientBirthDate >"$T/x5.txt"
check "the default collection's peer: P2 as the default collection holds it" \
	"grep -qx 'P2|DOE^JANE|19800202' '$T/x5.txt'" "$T/x5.txt"

# ---- C-CANCEL ----
# findscu --cancel sends its C-CANCEL after the first response, by which
# time 5 small answers are all sent: only that the server goes on is
# checked with it; the status is checked with a C-CANCEL sent right
# behind the C-FIND (lib/dul.py), then with the C-FIND alone
find_ k1 FINDER -S --cancel 1 -k QueryRetrieveLevel=IMAGE -k SOPInstanceUID
check "findscu --cancel: the C-FIND ends" "grep -q 'Received Final Find Response' '$T/k1.log'" "$T/k1.log"
cat >"$T/cancel.py" <<'PYEOF'
import sys
sys.path.insert(0, sys.argv[1] + "/tests/integration/lib")
import dul
port, d = int(sys.argv[2]), sys.argv[3]
def run(cancel, intrude=False):
    s = dul.connect(port, d + "/peer1.crt", d + "/peer1.key", d + "/v/keys/tls.crt")
    s.sendall(dul.assoc_rq("FINDER", "DICOMVAULT", [(1, dul.FIND_STUDY, [dul.IMPLICIT])]))
    t, _ = dul.read_pdu(s)
    assert t == 2, t
    rq = dul.command({0x00000002: dul.FIND_STUDY, 0x00000100: 0x0020, 0x00000110: 7, 0x00000700: 0,
                      0x00000800: 0x0000})
    ident = dul.dataset({0x00080052: "IMAGE", 0x00080018: ""})
    out = dul.pdata(1, rq, True) + dul.pdata(1, ident, False)
    if cancel:
        out += dul.pdata(1, dul.command({0x00000100: 0x0FFF, 0x00000120: 7, 0x00000800: 0x0101}), True)
    if intrude:   # a second operation while the C-FIND runs (window 1/1)
        out += dul.pdata(1, dul.command({0x00000002: dul.FIND_STUDY, 0x00000100: 0x0020, 0x00000110: 8,
                                         0x00000700: 0, 0x00000800: 0x0000}), True)
    s.sendall(out)
    if intrude:
        while True:
            t, body = dul.read_pdu(s)
            if t != 4:
                print("intrude", "A-ABORT source %d" % body[2] if t == 7 else t)
                return
    m = dul.Messages(s)
    pending = 0
    while True:
        c, _ = m.next()
        st = dul.us(c[0x00000900])
        assert dul.us(c[0x00000120]) == 7
        if st in (0xFF00, 0xFF01):
            pending += 1
            continue
        break
    s.sendall(dul.RELEASE_RQ)
    t, _ = dul.read_pdu(s)
    print("cancel" if cancel else "plain", "%04X" % st, pending, "released" if t == 6 else t)
def run_glen():
    """A command set without its group length, an identifier with group
    lengths (0008,0000) and (0020,0000): the C-FIND is served, pending
    FF00H (no unsupported key), no group length answered."""
    import struct
    s = dul.connect(port, d + "/peer1.crt", d + "/peer1.key", d + "/v/keys/tls.crt")
    s.sendall(dul.assoc_rq("FINDER", "DICOMVAULT", [(1, dul.FIND_STUDY, [dul.IMPLICIT])]))
    t, _ = dul.read_pdu(s)
    assert t == 2, t
    fields = {0x00000002: dul.FIND_STUDY, 0x00000100: 0x0020, 0x00000110: 9, 0x00000700: 0, 0x00000800: 0x0000}
    rq = b"".join(dul.elem(k, fields[k]) for k in sorted(fields))
    ident = dul.dataset({0x00080000: struct.pack("<I", 0), 0x00080052: "IMAGE", 0x00080018: "",
                         0x00200000: struct.pack("<I", 0)})
    s.sendall(dul.pdata(1, rq, True) + dul.pdata(1, ident, False))
    m = dul.Messages(s)
    statuses, glen = set(), False
    while True:
        c, data = m.next()
        st = dul.us(c[0x00000900])
        if st in (0xFF00, 0xFF01):
            statuses.add("%04X" % st)
            glen = glen or data[:4] in (bytes([8, 0, 0, 0]), bytes([0x20, 0, 0, 0]))
            continue
        break
    s.sendall(dul.RELEASE_RQ)
    dul.read_pdu(s)
    print("glen", "%04X" % st, ",".join(sorted(statuses)), "group-length-answered" if glen else "none-answered")
run(True)
run(False)
run(False, True)
run_glen()
PYEOF
"$PY" "$T/cancel.py" "$ROOT" "$DP" "$T" >"$T/cancel" 2>&1
check "C-CANCEL right behind the C-FIND: FE00H before any match" "grep -qx 'cancel FE00 0 released' '$T/cancel'" \
	"$T/cancel" "$T/err"
check "the same C-FIND without it: 5 matches, 0000H (implicit VR, raw client)" \
	"grep -qx 'plain 0000 5 released' '$T/cancel'" "$T/cancel"
check "a second operation during a C-FIND: A-ABORT" "grep -qx 'intrude A-ABORT source 0' '$T/cancel'" \
	"$T/cancel"
check "no CommandGroupLength, group lengths in the identifier: served, FF00H pending, none answered" \
	"grep -qx 'glen 0000 FF00 none-answered' '$T/cancel'" "$T/cancel" "$T/err"
echoscu -to 10 -ta 10 -td 10 "${TLS[@]}" -aet FINDER -aec DICOMVAULT 127.0.0.1 "$DP" >"$T/e1" 2>&1
check "server answers after the cancels" "[ $? -eq 0 ]" "$T/e1"

nq=$(grep '"query"' "$T/v/audit/audit.log" | grep -c 'C-FIND')
# 32 C-FINDs, one record each before the first answer; the cancelled one
# and the one whose association went add one each, with what was sent
check "one query audit record per C-FIND with the peer as actor, one more for each ended short ($nq)" \
	"[ $nq -eq 34 ] && [ \$(grep '\"query\"' '$T/v/audit/audit.log' | grep -c 'C-FIND study root IMAGE (cancelled)') -eq 1 ] && grep '\"query\"' '$T/v/audit/audit.log' | grep -q '\"CTFINDER\"'"
check "server still running" "kill -0 $SRV"
kill -TERM "$SRV"
for _ in $(seq 100); do kill -0 "$SRV" 2>/dev/null || break; sleep 0.1; done
wait "$SRV" 2>/dev/null
rc=$?
SRV=
check "server stops cleanly on SIGTERM" "[ $rc -eq 0 ]" "$T/err"

# [dicom] max_find_matches: past it, A700H and nothing sent (each match is
# kept between the counting run and the answering one: memory is bounded)
sed -i '/^\[dicom\]/a max_find_matches = 3' "$T/v/dicomvault.conf"
serve_dicom || exit 0
find_ m1 FINDER -S -k QueryRetrieveLevel=IMAGE -k SOPInstanceUID
check "more matches than max_find_matches (3): A700H, narrow the query, nothing answered" \
	"grep -q 'Final Find Response (Refused: OutOfResources)' '$T/m1.log' && [ -z \"\$(ls '$T/qm1')\" ]" \
	"$T/m1.log"
find_ m2 FINDER -S -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=${S}1 -k SOPInstanceUID
check "a narrower query on the same server: answered" "[ \$(ls '$T/qm2' | wc -l) -eq 1 ]" "$T/m2.log"
# return keys are not counted against the 64 keys a query may match on
# (before, any 65 elements were refused with C000H): 100 empty ones, from
# pydicom's dictionary, with the study's UID
mapfile -t MANY < <("$PY" -c '
from pydicom.datadict import DicomDictionary as D
n = 0
for t in sorted(D):
    if t >> 16 in (0x0008, 0x0010, 0x0018, 0x0020) and D[t][0] in ("LO", "SH", "CS", "DA", "TM") and "Retired" not in D[t][3] \
            and t not in (0x00080005, 0x00080052, 0x00100020, 0x0020000D) and n < 100:
        print("-k"); print("%04x,%04x" % (t >> 16, t & 0xFFFF)); n += 1')
find_ m3 FINDER -S -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=${S}1 "${MANY[@]}"
check "a query with 100 empty return keys (${#MANY[@]} arguments): answered" \
	"[ \${#MANY[@]} -eq 200 ] && [ \$(ls '$T/qm3' | wc -l) -eq 1 ] && grep -q 'Final Find Response (Success)' '$T/m3.log'" \
	"$T/m3.log"
check "the refusal is audited, with its reason" \
	"grep '\"query\"' '$T/v/audit/audit.log' | grep -q 'More than 3 matches'"
kill -TERM "$SRV"
wait "$SRV" 2>/dev/null
SRV=
sed -i 's/^max_find_matches = 3$/max_find_matches = 0/' "$T/v/dicomvault.conf"
"$DV" serve --vault "$T/v" --http "127.0.0.1:$HP" --dicom "127.0.0.1:$DP" >"$T/out0" 2>&1
check "max_find_matches = 0: serve refuses to start, names it" "[ \$? -eq 1 ] && grep -q 'max_find_matches' '$T/out0'" \
	"$T/out0"
"$DV" audit verify --vault "$T/v" >"$T/av" 2>&1
check "audit trail intact" "[ $? -eq 0 ]" "$T/av"
