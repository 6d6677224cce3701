#!/bin/bash
# qido.sh: QIDO-RS against the real `dicomvault serve`: synthetic studies
# with known names, IDs, dates and modalities (pydicom) and two pydicom test
# files are stored over STOW-RS, then queried with curl and the answers
# checked with python3: exact and wildcard matching (PN case, LIKE
# characters as data), date and time ranges, UID lists, modalities, a
# sequence key, study/series/instance resources, includefield, limit and
# offset, no match, bad input (400/406, the server keeps serving), no
# patient name or ID in the vault or the server's log, the audit trail.
# Prints ok/not ok lines. Env DV: the CLI under test; KEEP=1 keeps the
# directory.
set -u
DV=${DV:-build/check/dicomvault}
PY=/usr/bin/python3
TF=/usr/lib/python3/dist-packages/pydicom/data/test_files
TEST=qido
. "$(dirname "$0")/lib/tap.sh"
tap_setup qido

if ! "$DV" serve --help >/dev/null 2>&1; then
	echo "# SKIP qido: $DV has no serve command"
	exit 0
fi
for f in CT_small MR_small; do
	[ -f "$TF/$f.dcm" ] || { echo "# SKIP qido: no pydicom test files"; exit 0; }
done
command -v oathtool >/dev/null || { echo "# SKIP qido: no oathtool"; exit 0; }

# ---- synthetic studies ----
R=1.2.826.0.1.3680043.9.7777
mkdir -p "$T/in"
"$PY" - "$T/in" "$R" <<'EOF' || { no "synthetic files"; exit 0; }
import sys
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian
out, R = sys.argv[1], sys.argv[2]
n = 0
def make(name, pid, date, time, mod, acc, st, se, inum, desc, issuer=None, rp=None, charset=None, sdesc="Study"):
    global n
    n += 1
    sop = "%s.3.%d" % (R, n)
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    fm.MediaStorageSOPInstanceUID = sop
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = fm
    ds.is_little_endian, ds.is_implicit_VR = True, False
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = fm.MediaStorageSOPClassUID
    ds.SOPInstanceUID = sop
    ds.PatientName, ds.PatientID = name, pid
    if issuer:
        ds.IssuerOfPatientID = issuer
    ds.PatientBirthDate, ds.PatientSex = "19370611", "O"   # distinctive: looked for in clear at the end
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber = date, time, acc
    ds.StudyDescription, ds.ReferringPhysicianName, ds.StudyID = sdesc, "Quackenbusch^Ferdinand", "S" + acc[-3:]
    ds.InstitutionName = "Spital Kuckucksheim"
    ds.Modality, ds.SeriesDescription = mod, desc
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "%s.1.%d" % (R, st), "%s.2.%d" % (R, se)
    ds.SeriesNumber, ds.InstanceNumber = se, inum
    if rp:
        item = Dataset()
        item.RequestedProcedureID = rp
        item.ScheduledProcedureStepID = "SPS-" + rp
        ds.RequestAttributesSequence = Sequence([item])
    ds.Rows = ds.Columns = 16
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.SamplesPerPixel, ds.PixelRepresentation = 7, 1, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = bytes(256)
    ds.save_as("%s/i%02d.dcm" % (out, n), write_like_original=False)
# study 1: Doe^John, two CT series (2 + 1 instances), a request sequence
make("Doe^John", "QIDO-PID-001", "20200115", "101500", "CT", "ACC-100", 1, 11, 1, "Chest CT", issuer="HOSP-A", rp="RP-77", sdesc="Thorax study")
make("Doe^John", "QIDO-PID-001", "20200115", "101500", "CT", "ACC-100", 1, 11, 2, "Chest CT", issuer="HOSP-A", rp="RP-77", sdesc="Thorax study")
make("Doe^John", "QIDO-PID-001", "20200115", "101500", "CT", "ACC-100", 1, 12, 1, "Abdomen", issuer="HOSP-A", sdesc="Thorax study")
# study 2: Doe^Jane, MR
make("Doe^Jane", "QIDO-PID-002", "20210610", "083000", "MR", "ACC-200", 2, 21, 1, "Brain")
# study 3: lower-case name, CT + US
make("smith^johnny", "QIDO-PID-003", "20190301", "140000", "CT", "ACC-300", 3, 31, 1, "Scout")
make("smith^johnny", "QIDO-PID-003", "20190301", "140000", "US", "ACC-300", 3, 32, 1, "Echo")
# study 4: SQL LIKE characters in the name
make("D_E^Under", "QIDO-PID-004", "20180101", "120000", "OT", "ACC-400", 4, 41, 1, "Other")
# study 5: a UTF-8 name
make("Ölmez^Ayşe", "QIDO-PID-005", "20170505", "091500", "CT", "ACC-500", 5, 51, 1, "Head", charset="ISO_IR 192")
EOF
cp "$TF/CT_small.dcm" "$TF/MR_small.dcm" "$T/in/"

# ---- a vault, a server, a session ----
. "$(dirname "$0")/lib/http.sh"
dv_session || exit 0

# ---- STOW ----
"$PY" - "$T/all.mp" "$T"/in/*.dcm <<'EOF'
import sys
b = b"QiDo.42"
body = b""
for f in sys.argv[2:]:
    body += b"--" + b + b"\r\nContent-Type: application/dicom\r\n\r\n" + open(f, "rb").read() + b"\r\n"
open(sys.argv[1], "wb").write(body + b"--" + b + b"--\r\n")
EOF
req stow -H "$AUTH" -H 'Content-Type: multipart/related; type="application/dicom"; boundary=QiDo.42' \
	-H 'Accept: application/dicom+json' --data-binary @"$T/all.mp" "$U/dicom-web/studies"
check "STOW of 10 instances" "[ \$(code stow) = 200 ]"

# mp1 OUT FILE: one part in a multipart/related body (boundary QiDo.42)
mp1() {
	"$PY" -c 'import sys; b = b"QiDo.42"; open(sys.argv[1], "wb").write(b"--" + b + b"\r\nContent-Type: application/dicom\r\n\r\n" + open(sys.argv[2], "rb").read() + b"\r\n--" + b + b"--\r\n")' "$1" "$2"
}

# q NAME PATH?QUERY [curl args]: a QIDO-RS request (the query already URL-encoded)
q() {
	local n=$1 p=$2
	shift 2
	req "$n" -H "$AUTH" -H 'Accept: application/dicom+json' "$@" "$U/dicom-web/$p"
}
# js NAME EXPR: a Python expression over d (the JSON answer) with helpers:
# V(item, tag) the first value, P(item) the patient name, S(NAME) the set of
# StudyInstanceUIDs, N the number of results
js() {
	"$PY" -c "
import json, sys
d = json.load(open(sys.argv[1]))
V = lambda i, t: (i.get(t, {}).get('Value') or [None])[0]
P = lambda i: (V(i, '00100010') or {}).get('Alphabetic')
S = lambda: set(V(i, '0020000D') for i in d)
N = len(d)
sys.exit(0 if ($2) else 1)" "$T/$1.body" 2>/dev/null
}
ok200() { [ "$(code "$1")" = 200 ] && hdr "$1" Content-Type | grep -q '^application/dicom+json'; }
st() { echo "\"$R.1.$1\""; }

# ---- studies ----
q pid "studies?PatientID=QIDO-PID-001"
check "PatientID exact: one study, its attributes" "ok200 pid && js pid 'N == 1 and V(d[0], \"0020000D\") == $(st 1) and P(d[0]) == \"Doe^John\" and V(d[0], \"00080020\") == \"20200115\" and V(d[0], \"00201206\") == 2 and V(d[0], \"00201208\") == 3 and d[0][\"00080061\"][\"Value\"] == [\"CT\"] and V(d[0], \"00080050\") == \"ACC-100\" and V(d[0], \"00080056\") == \"ONLINE\"'"
check "RetrieveURL of the study" "js pid 'V(d[0], \"00081190\") == \"$U/dicom-web/studies/$R.1.1\"'"
check "no StudyDescription unless asked" "js pid '\"00081030\" not in d[0]'"
q pidbd "studies?PatientID=QIDO-PID-001&includefield=00100030,00080090"
check "the birth date and referring physician come back from the index" \
	"ok200 pidbd && js pidbd 'V(d[0], \"00100030\") == \"19370611\" and V(d[0], \"00080090\")[\"Alphabetic\"] == \"Quackenbusch^Ferdinand\"'"
q pidiss "studies?PatientID=QIDO-PID-001&IssuerOfPatientID=HOSP-A"
q pidiss2 "studies?PatientID=QIDO-PID-001&IssuerOfPatientID=OTHER"
check "PatientID with its issuer; another issuer: none" "ok200 pidiss && js pidiss 'N == 1' && ok200 pidiss2 && js pidiss2 'N == 0'"
q pidlow "studies?PatientID=qido-pid-001"
check "PatientID is case-sensitive" "ok200 pidlow && js pidlow 'N == 0'"
q doe "studies?PatientName=DOE*"
check "PatientName DOE*: both Does (PN ignores case)" "ok200 doe && js doe 'S() == {$(st 1), $(st 2)} and {P(i) for i in d} == {\"Doe^John\", \"Doe^Jane\"}'"
q ohn "studies?PatientName=*ohn"
check "PatientName *ohn: only Doe^John" "ok200 ohn && js ohn 'S() == {$(st 1)}'"
q john "studies?PatientName=*JOHN*"
check "PatientName *JOHN*: Doe^John and smith^johnny" "js john 'S() == {$(st 1), $(st 3)}'"
q exactpn "studies?PatientName=doe%5Ejohn"
check "PatientName exact, other case: found" "ok200 exactpn && js exactpn 'S() == {$(st 1)}'"
q exactpn2 "studies?PatientName=doe%5Ejohn%5E%5E%3D"
check "PatientName exact with trailing empty components and group (doe^john^^=): found" \
	"ok200 exactpn2 && js exactpn2 'S() == {$(st 1)}'"
q qmark "studies?PatientName=%3Foe%5EJ*"
check "? matches one character" "js qmark 'S() == {$(st 1), $(st 2)}'"
q pct "studies?PatientName=D%25"
q und "studies?PatientName=_OE*"
q dund "studies?PatientName=D_E*"
check "% and _ are data, not SQL LIKE wildcards" "ok200 pct && js pct 'N == 0' && ok200 und && js und 'N == 0' && js dund 'S() == {$(st 4)}'"
q utf "studies?PatientName=%C3%96lmez*"
check "UTF-8 name by wildcard" "ok200 utf && js utf 'S() == {$(st 5)} and P(d[0]) == \"Ölmez^Ayşe\"'"
q utf2 "studies?PatientName=olmez%5Eayse"
check "UTF-8 name, exact, without case or accents (olmez^ayse)" "ok200 utf2 && js utf2 'S() == {$(st 5)}'"
q ctname "studies?PatientName=compressedsamples%5Ect1"
check "a Latin-1 vault name, exact" "js ctname 'N == 1 and P(d[0]) == \"CompressedSamples^CT1\"'"
q acc "studies?AccessionNumber=ACC-200"
check "AccessionNumber exact" "ok200 acc && js acc 'S() == {$(st 2)}'"
q accw "studies?AccessionNumber=ACC-*00"
check "AccessionNumber wildcard" "js accw 'len(S() & {$(st 1), $(st 2), $(st 3), $(st 4), $(st 5)}) == 5'"
q range "studies?StudyDate=20190101-20201231"
check "StudyDate range" "ok200 range && js range 'S() == {$(st 1), $(st 3)}'"
q before "studies?StudyDate=-20040201"
check "StudyDate open start" "js before 'N == 1 and V(d[0], \"00080020\") == \"20040119\"'"
q after "studies?StudyDate=20210101-"
check "StudyDate open end" "js after 'S() == {$(st 2)}'"
q day "studies?StudyDate=20190301"
check "StudyDate single value" "js day 'S() == {$(st 3)}'"
q time "studies?StudyTime=0800-0900"
check "StudyTime range" "ok200 time && js time 'S() == {$(st 2)}'"
q us "studies?ModalitiesInStudy=US"
check "ModalitiesInStudy US" "ok200 us && js us 'S() == {$(st 3)} and set(d[0][\"00080061\"][\"Value\"]) == {\"CT\", \"US\"}'"
q ct "studies?ModalitiesInStudy=CT"
check "ModalitiesInStudy CT" "js ct 'N == 4 and $(st 1) in S() and $(st 2) not in S()'"
q ctmr "studies?ModalitiesInStudy=CT,MR"
q mr "studies?ModalitiesInStudy=MR"
# the studies of each file, as sets: the comma list is their union
sets() { "$PY" -c "
import json, sys
s = [set(i['0020000D']['Value'][0] for i in json.load(open(f))) for f in sys.argv[1:]]
sys.exit(0 if s[0] == s[1] | s[2] and s[1] and s[2] else 1)" "$T/$1.body" "$T/$2.body" "$T/$3.body"; }
check "ModalitiesInStudy=CT,MR: a comma list of CS values, any of them (as CT\\MR)" \
	"ok200 ctmr && sets ctmr ct mr && js ctmr '$(st 1) in S() and $(st 2) in S()'"
q sermod2 "series?Modality=US,MR"
check "Modality=US,MR at the series level: any of them" \
	"ok200 sermod2 && js sermod2 'sorted(V(i, \"00080060\") for i in d) == [\"MR\", \"MR\", \"US\"]'"
q list "studies?StudyInstanceUID=$R.1.1,$R.1.2"
q list2 "studies?StudyInstanceUID=$R.1.1%5C$R.1.4"
check "StudyInstanceUID lists (comma, backslash)" "js list 'S() == {$(st 1), $(st 2)}' && js list2 'S() == {$(st 1), $(st 4)}'"
q both "studies?PatientName=DOE*&StudyDate=20210101-"
check "two keys together" "js both 'S() == {$(st 2)}'"
q inc "studies?PatientID=QIDO-PID-001&includefield=StudyDescription,00100021"
check "includefield adds attributes" "ok200 inc && js inc 'V(d[0], \"00081030\") == \"Thorax study\" and V(d[0], \"00100021\") == \"HOSP-A\"'"
q incall "studies?PatientID=QIDO-PID-001&includefield=all"
check "includefield=all" "js incall 'V(d[0], \"00081030\") == \"Thorax study\" and P(d[0]) == \"Doe^John\"'"
q none "studies?PatientID=NOBODY"
check "no match: 200 and an empty array" "ok200 none && js none 'd == []'"
q sqlq "studies?PatientID=%27%20OR%20%271%27%3D%271"
q sqlq2 "studies?PatientName=x%27%3B%20DROP%20TABLE%20studies%3B--"
check "SQL in values is just data" "ok200 sqlq && js sqlq 'N == 0' && ok200 sqlq2 && js sqlq2 'N == 0'"
q all "studies"
check "all studies: 7" "ok200 all && js all 'N == 7'"

# ---- limit and offset ----
q p1 "studies?limit=3"
q p2 "studies?limit=3&offset=3"
q p3 "studies?limit=3&offset=6"
check "limit=3: 3 results and a Warning header" "js p1 'N == 3' && hdr p1 Warning | grep -q '^299 '"
check "the Warning says more can be requested, not that the server's maximum was hit" \
	"hdr p1 Warning | grep -q 'additional results that can be requested' && ! hdr p1 Warning | grep -q maximum"
check "pages are disjoint and cover all 7" "\"$PY\" -c '
import json, sys
pages = [json.load(open(sys.argv[i])) for i in (1, 2, 3)]
u = [i[\"0020000D\"][\"Value\"][0] for p in pages for i in p]
sys.exit(0 if len(u) == 7 and len(set(u)) == 7 and [len(p) for p in pages] == [3, 3, 1] else 1)' $T/p1.body $T/p2.body $T/p3.body"
check "the last page has no Warning" "[ -z \"\$(hdr p3 Warning)\" ]"
q off "studies?offset=100"
check "offset past the end: empty" "ok200 off && js off 'N == 0'"

# ---- series and instances ----
q ser "studies/$R.1.1/series"
check "series of a study" "ok200 ser && js ser '{V(i, \"0020000E\"): (V(i, \"00201209\"), V(i, \"0008103E\"), V(i, \"00200011\")) for i in d} == {\"$R.2.11\": (2, \"Chest CT\", 11), \"$R.2.12\": (1, \"Abdomen\", 12)}'"
check "series RetrieveURL, no patient attributes" "js ser 'V(d[0], \"00081190\") == \"$U/dicom-web/studies/$R.1.1/series/\" + V(d[0], \"0020000E\") and \"00100010\" not in d[0]'"
q sermod "series?Modality=MR"
check "all series by Modality, with study attributes" "ok200 sermod && js sermod 'N == 2 and any(P(i) == \"Doe^Jane\" for i in d)'"
q sq "series?RequestAttributesSequence.RequestedProcedureID=RP-77"
q sq0 "series?RequestAttributesSequence.RequestedProcedureID=RP-00"
check "sequence matching" "ok200 sq && js sq 'N == 1 and V(d[0], \"0020000E\") == \"$R.2.11\" and V(V(d[0], \"00400275\"), \"00401001\") == \"RP-77\"' && js sq0 'N == 0'"
q inst "studies/$R.1.1/series/$R.2.11/instances"
check "instances of a series" "ok200 inst && js inst 'N == 2 and all(V(i, \"00280010\") == 16 and V(i, \"00280011\") == 16 and V(i, \"00280100\") == 8 and V(i, \"00080016\") == \"1.2.840.10008.5.1.4.1.1.7\" for i in d) and sorted(V(i, \"00200013\") for i in d) == [1, 2]'"
check "instance RetrieveURL" "js inst 'all(V(i, \"00081190\") == \"$U/dicom-web/studies/$R.1.1/series/$R.2.11/instances/\" + V(i, \"00080018\") for i in d)'"
q sinst "studies/$R.1.1/instances?InstanceNumber=1"
check "instances of a study, InstanceNumber" "ok200 sinst && js sinst 'N == 2'"
q allinst "instances?SOPInstanceUID=$R.3.4"
check "all instances by SOP Instance UID" "ok200 allinst && js allinst 'N == 1 and V(d[0], \"0020000D\") == $(st 2) and V(d[0], \"0020000E\") == \"$R.2.21\"'"
check "all instances: the study's attributes, its patient's among them (PS3.18 10.6.3.3.3)" \
	"js allinst 'P(d[0]) not in (None, \"\") and \"00100020\" in d[0] and \"00080020\" in d[0]'"
q rows "instances?Rows=128"
check "instances by Rows (US)" "js rows 'N == 1 and V(d[0], \"00280010\") == 128'"
q wrong "studies/$R.1.2/series/$R.2.11/instances"
check "a series under another study: none" "ok200 wrong && js wrong 'N == 0'"

# ---- bad input: 400 problem+json, the server keeps serving ----
bad() {  # NAME QUERY [STATUS]
	q "$1" "$2"
	problem "$1" "${3:-400}"
}
check "unknown keyword: 400" "bad b1 'studies?PatientNam=x'"
check "bad tag: 400" "bad b2 'studies?0010001Z=x'"
check "private tag: 400" "bad b3 'studies?00091010=x'"
check "bad date range: 400" "bad b4 'studies?StudyDate=2020-01-01'"
check "impossible date: 400" "bad b5 'studies?StudyDate=20201301'"
check "reversed range: 400" "bad b6 'studies?StudyDate=20201231-20200101'"
check "limit not a number: 400" "bad b7 'studies?limit=abc'"
check "negative limit: 400" "bad b8 'studies?limit=-1'"
check "absurd limit: 400" "bad b9 'studies?limit=99999999999'"
check "negative offset: 400" "bad b10 'studies?offset=-5'"
LONG=$(printf 'A%.0s' $(seq 5000))
check "value too long: 400" "bad b11 'studies?PatientName=$LONG'"
LONGER=$(printf 'A%.0s' $(seq 9000))
check "a query over 8192 bytes: 414 problem+json" "bad b11b 'studies?PatientName=$LONGER' 414"
check "SQL in a UID: 400" "bad b12 'studies?StudyInstanceUID=1.2%27%20OR%20%271%27%3D%271'"
check "wildcard in a UID: 400" "bad b13 'studies?StudyInstanceUID=1.2*'"
check "fuzzymatching=maybe: 400" "bad b14 'studies?fuzzymatching=maybe'"
check "an attribute twice: 400" "bad b15 'studies?PatientID=a&PatientID=b'"
check "bad UID in the path: 400" "bad b16 'studies/1.2.x/series'"
check "control character: 400" "bad b17 'studies?PatientName=a%01b'"
check "bad time: 400" "bad b18 'studies?StudyTime=2500'"
check "includefield of Attribute.Attribute where the first is no sequence: 400" "bad b19 'studies?includefield=00100010.00100020'"
check "the details do not echo values" "! grep -q AAAAAAAA $T/b11.body && ! grep -q DROP $T/b12.body"
q fz "studies?fuzzymatching=true&PatientID=QIDO-PID-002"
check "fuzzymatching=true: literal matching and a Warning" "ok200 fz && js fz 'N == 1' && hdr fz Warning | grep -q fuzzymatching"
q fzc "studies?fuzzymatching=TRUE&PatientID=QIDO-PID-002"
check "fuzzymatching=TRUE (ABNF literals are case-insensitive): 200" "ok200 fzc && js fzc 'N == 1'"
q evm "studies?PatientID=QIDO-PID-002&emptyvaluematching=true&multiplevaluematching=false"
check "emptyvaluematching=true: searched without it, the standard's Warning" \
	"ok200 evm && js evm 'N == 1' && hdr evm Warning | grep -q 'The emptyvaluematching parameter is not supported'"
q mvm "studies?PatientID=QIDO-PID-002%5CQIDO-PID-001&multiplevaluematching=true"
check "multiplevaluematching=true: done (either ID's studies), no Warning saying it was not" \
	"ok200 mvm && js mvm 'N == 2' && ! hdr mvm Warning | grep -qi 'multiple'"
check "emptyvaluematching=maybe: 400" "bad b19 'studies?emptyvaluematching=maybe'"
q cb "studies?PatientID=QIDO-PID-002&_=1700000000&r%0D%0AX-Evil:%201=x"
check "unsupported parameters (a viewer's cache buster) are ignored, named in a Warning" \
	"ok200 cb && js cb 'N == 1' && hdr cb Warning | grep -q 'ignored: _, parameter 3'"
check "no header injected from a parameter name" "! grep -qi '^X-Evil' $T/cb.hdr"
q uidrep "studies?StudyInstanceUID=$R.1.1&StudyInstanceUID=$R.1.2"
check "a UID attribute given twice is a UID list" "ok200 uidrep && js uidrep 'N == 2'"
req q0 -H "$AUTH" -H 'Accept: application/dicom+json;q=0' "$U/dicom-web/studies?PatientID=QIDO-PID-002"
check "Accept application/dicom+json;q=0 (not acceptable): 406" "problem q0 406"
q ign "studies?PatientID=QIDO-PID-002&Modality=CT"
check "a key the level cannot match is ignored, with a Warning" "ok200 ign && js ign 'N == 1' && hdr ign Warning | grep -q 00080060"
check "and it is left out of the results (not returned empty), the Warning says so" \
	"js ign '\"00080060\" not in d[0]' && hdr ign Warning | grep -q 'Not kept by this server at the study level, left out of the results: 00080060'"
q incnk "studies?PatientID=QIDO-PID-002&includefield=PatientAge,InstitutionName,StudyDescription"
check "includefield of attributes not kept at the study level: left out, named in a Warning; a kept one returned" \
	"ok200 incnk && js incnk 'N == 1 and \"00101010\" not in d[0] and \"00080080\" not in d[0] and \"00081030\" in d[0]' && hdr incnk Warning | grep -q 'left out of the results: 00101010,00080080'"
q incse "studies/$R.1.2/series?includefield=StudyDescription,PatientAge"
check "includefield at the series level: a study attribute returned, PatientAge left out" \
	"ok200 incse && js incse 'N >= 1 and \"00081030\" in d[0] and \"00101010\" not in d[0]' && hdr incse Warning | grep -q 'at the series level, left out of the results: 00101010'"
req acc406 -H "$AUTH" -H 'Accept: image/png' "$U/dicom-web/studies"
check "Accept image/png: 406" "problem acc406 406"
req accjson -H "$AUTH" -H 'Accept: application/json' "$U/dicom-web/studies?PatientID=QIDO-PID-002"
check "Accept application/json: 200, answered as application/json" \
	"[ \"\$(code accjson)\" = 200 ] && hdr accjson Content-Type | grep -q '^application/json' && js accjson 'N == 1'"
req accq0 -H "$AUTH" -H 'Accept: application/dicom+json;q=0, */*' "$U/dicom-web/studies?PatientID=QIDO-PID-002"
check "Accept application/dicom+json;q=0, */*: the refused type is not sent (application/json)" \
	"[ \"\$(code accq0)\" = 200 ] && hdr accq0 Content-Type | grep -q '^application/json' && js accq0 'N == 1'"
req accq00 -H "$AUTH" -H 'Accept: application/dicom+json;q=0, application/json;q=0, */*' "$U/dicom-web/studies"
check "both JSON types refused with q=0 beside */*: 406" "problem accq00 406"
req accpref -H "$AUTH" -H 'Accept: application/json;q=0.5, application/dicom+json;q=0.9' "$U/dicom-web/studies?PatientID=QIDO-PID-002"
check "the higher q wins: application/dicom+json" "ok200 accpref"
req noauth "$U/dicom-web/studies"
check "no session: 401" "problem noauth 401"
req alive "$U/healthz"
check "the server keeps serving" "[ \$(code alive) = 200 ] && kill -0 $SRV"
q again "studies?PatientID=QIDO-PID-001"
check "and still answers queries" "js again 'N == 1'"

# ---- an ACR-NEMA date and time (YYYY.MM.DD, HH:MM:SS, as in pydicom's
# ExplVR_BigEnd.dcm): indexed as DICOM's, so matched and answered ----
"$PY" - "$T/acr.dcm" "$R" <<'EOF'
import sys
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
out, R = sys.argv[1], sys.argv[2]
fm = FileMetaDataset()
fm.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
fm.MediaStorageSOPInstanceUID = R + ".3.90"
fm.TransferSyntaxUID = ExplicitVRLittleEndian
ds = Dataset()
ds.file_meta = fm
ds.is_little_endian, ds.is_implicit_VR = True, False
ds.SOPClassUID, ds.SOPInstanceUID = fm.MediaStorageSOPClassUID, fm.MediaStorageSOPInstanceUID
ds.PatientName, ds.PatientID = "Acr^Nema", "QIDO-PID-090"
ds.StudyDate, ds.StudyTime = "1997.04.24", "14:04:38"
ds.StudyInstanceUID, ds.SeriesInstanceUID = R + ".1.90", R + ".2.90"
ds.Modality = "OT"
ds.save_as(out, write_like_original=False)
EOF
mp1 "$T/acr.mp" "$T/acr.dcm"
req acr -H "$AUTH" -H 'Content-Type: multipart/related; type="application/dicom"; boundary=QiDo.42' \
	-H 'Accept: application/dicom+json' --data-binary @"$T/acr.mp" "$U/dicom-web/studies"
check "STOW of an instance with an ACR-NEMA StudyDate and StudyTime" "[ \$(code acr) = 200 ]"
q acrd "studies?StudyDate=19970424"
check "its StudyDate matched as 19970424, answered as DICOM's DA and TM" \
	"ok200 acrd && js acrd 'N == 1 and V(d[0], \"00080020\") == \"19970424\" and V(d[0], \"00080030\") == \"140438\"'"
q acrr "studies?StudyDate=19970101-19971231&StudyTime=1400-1405"
check "and by date and time ranges" "ok200 acrr && js acrr 'N == 1 and V(d[0], \"0020000D\") == \"$R.1.90\"'"

# ---- keep-alive: DICOMweb GETs reuse the connection (each new one is a
# TLS handshake; libmicrohttpd closed it after a response queued during the
# headers) ----
curl -s -v --tlsv1.3 --cacert "$T/v/keys/tls.crt" -H "$AUTH" -H 'Accept: application/dicom+json' \
	-o /dev/null -o /dev/null -o /dev/null "$U/dicom-web/studies?limit=1" "$U/dicom-web/studies?limit=2" \
	"$U/api/auth/whoami" 2>"$T/keepalive.err"
check "three requests on one connection (no Connection: close)" \
	"[ \$(grep -c 'Re-using existing connection' $T/keepalive.err) -ge 2 ] && ! grep -qi '< Connection: close' $T/keepalive.err"

# ---- at rest, in the server's log, audit ----
kill -TERM "$SRV"
wait "$SRV" 2>/dev/null
SRV=
# the patients' names (also as the index might fold them: without case or
# accents), IDs, accessions, birth date, a description, the referring
# physician and the institution, and the pydicom files' IDs
# (4 characters: as words, and not in objects/ or tmp/, where in MBs of
# ciphertext such a word turns up by chance a few times in a thousand
# runs). none GREP-ARGS...: grep finds nothing (status 1: no error either)
PHI='Acr\^Nema|Doe\^John|Doe\^Jane|QIDO-PID|smith\^johnny|D_E\^Under|ACC-[1-5]00|Thorax study|lmez\^Ay|CompressedSamples|19370611|Quackenbusch|Kuckucksheim'
none() {
	LC_ALL=C grep -ai "$@" >"$T/phi.hits" 2>&1
	[ $? = 1 ] || { sed 's/^/# found: /' "$T/phi.hits" | head -5; return 1; }
}
check "no patient name, ID, accession, birth date or free text in the vault" \
	"none -rlE '$PHI' $T/v && none -rlwE '1CT1|4MR1' --exclude-dir=objects --exclude-dir=tmp $T/v"
check "no patient name, ID, accession, birth date or free text in the server's log (its stdout and stderr)" \
	"grep -q serving $T/out && [ -s $T/err ] && none -lE '$PHI' $T/out $T/err && none -lwE '1CT1|4MR1' $T/out $T/err"
"$DV" audit verify --vault "$T/v" >"$T/verify.out" 2>&1
check "audit verify passes" "[ \$? = 0 ]"
LOG="$T/v/audit/audit.log"
check "one audit record per query" "[ \$(grep -c '\"action\":\"query\"' $LOG) -ge 60 ]"
check "query records carry counts, no names or IDs" "grep '\"action\":\"query\"' $LOG | grep -q '\"studies\":1' && ! grep -qaE 'Doe|QIDO-PID|smith|johnny|ACC-' $LOG"
check "a refused query is audited as a failure" "grep '\"action\":\"query\"' $LOG | grep -q '\"outcome\":\"failure\"'"
