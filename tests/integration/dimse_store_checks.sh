#!/bin/bash
# dimse_store_checks.sh: the C-STORE SCP checks the data set against its
# command and its presentation context (PS3.4 B.2.3, PS3.7 6.3.1), with a
# raw requestor (tests/integration/lib/dul.py) over DICOM-TLS and pydicom
# writing the data sets: a data set in implicit VR on an explicit VR
# context (Cxxx: it would be served mislabelled), a SOP Class UID other
# than the command's (A900), no SOP Instance UID (A900), a truncated data
# set (Cxxx), and the conflicts with what is stored named in the error
# comment (a study of another patient, a series of another study, other
# content under a stored SOP Instance UID); a C-ECHO of another SOP class
# or on a storage context (0122H); an N-CREATE with or without a data set
# (0211H). None is stored, each is audited (a conflict by one failure
# record naming the patient, no success record), the association goes on, and
# storescu's instance before is retrieved intact. Prints ok/not ok lines.
# Env DV: the CLI under test; KEEP=1 keeps the directory. Layer: tests.
set -u
DV=${DV:-build/check/dicomvault}
PY=/usr/bin/python3
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TEST=dimse_store_checks
. "$(dirname "$0")/lib/dimse.sh"
tap_setup dstc

need storescu openssl
"$PY" -c 'import pydicom' 2>/dev/null || { echo "# SKIP $TEST: no pydicom"; exit 0; }

cert peer1
vault_init || exit 0
HP=$(free_port)
DP=$(free_port)
cat >>"$T/v/dicomvault.conf" <<CONF

[peer "PEER"]
fingerprint = $(fp "$T/peer1.crt")
rights = echo, store
CONF
serve_dicom || exit 0
TF=/usr/lib/python3/dist-packages/pydicom/data/test_files
storescu -to 20 -ta 20 -td 20 +tls "$T/peer1.key" "$T/peer1.crt" +cf "$T/v/keys/tls.crt" -aet PEER -aec DICOMVAULT \
	127.0.0.1 "$DP" "$TF/CT_small.dcm" >"$T/s1" 2>&1
check "storescu stored CT_small first" "[ $? -eq 0 ]" "$T/s1"
# a user name alone (storescu -usr: type 1) is noted, not trusted (PS3.15
# B.4): the same file again succeeds, the name audited as not verified; a
# user name with a password (type 2, no API token) is refused
storescu -to 20 -ta 20 -td 20 +tls "$T/peer1.key" "$T/peer1.crt" +cf "$T/v/keys/tls.crt" -aet PEER -aec DICOMVAULT \
	-usr "Dr Who" 127.0.0.1 "$DP" "$TF/CT_small.dcm" >"$T/s1u" 2>&1
check "storescu -usr (user identity type 1): stored again, identical" "[ $? -eq 0 ]" "$T/s1u"
check "its store audited with the user name as not verified" \
	"grep '\"action\":\"store\"' '$T/v/audit/audit.log' | grep -q 'AE PEER, user Dr Who (not verified)'"
storescu -to 20 -ta 20 -td 20 +tls "$T/peer1.key" "$T/peer1.crt" +cf "$T/v/keys/tls.crt" -aet PEER -aec DICOMVAULT \
	-usr "Dr Who" -pwd "tardis" 127.0.0.1 "$DP" "$TF/CT_small.dcm" >"$T/s1p" 2>&1
check "storescu -usr -pwd (a password, not an API token): association rejected" \
	"[ $? -ne 0 ] && grep -qi 'reject' '$T/s1p'" "$T/s1p"

"$PY" - "$ROOT" "$DP" "$T" "$TF/CT_small.dcm" >"$T/out.txt" 2>&1 <<'PYEOF'
import copy, io, sys
sys.path.insert(0, sys.argv[1] + "/tests/integration/lib")
import dul
from pydicom import dcmread
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

port, d, ct_path = int(sys.argv[2]), sys.argv[3], sys.argv[4]
CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
ct = dcmread(ct_path)


def encode(ds, implicit):
    b = DicomBytesIO()
    b.is_little_endian = True
    b.is_implicit_VR = implicit
    write_dataset(b, ds)
    return b.getvalue()


s = dul.connect(port, d + "/peer1.crt", d + "/peer1.key", d + "/v/keys/tls.crt", timeout=20)
s.sendall(dul.assoc_rq("PEER", "DICOMVAULT", [(1, CT, [dul.EXPLICIT]), (3, dul.VERIFICATION, [dul.IMPLICIT])],
                       max_len=1 << 20))
t, _ = dul.read_pdu(s)
print("associated" if t == 2 else "not associated: PDU type %d" % t)
msgs = dul.Messages(s)
mid = [0]


def store(name, data, sop, cls=CT):
    mid[0] += 1
    cmd = dul.command({0x00000002: cls, 0x00000100: 0x0001, 0x00000110: mid[0], 0x00000700: 0,
                       0x00000800: 0x0000, 0x00001000: sop})
    s.sendall(dul.pdata(1, cmd, True))
    for i in range(0, len(data), 60000):
        s.sendall(dul.pdata(1, data[i:i + 60000], False, i + 60000 >= len(data)))
    c, _ = msgs.next()
    comment = c.get(0x00000902, b"").decode(errors="replace").rstrip(" \0")
    print("%s status %04X comment [%s]" % (name, dul.us(c[0x00000900]), comment))


def variant(sop, **kw):
    x = copy.deepcopy(ct)
    x.SOPInstanceUID = sop
    for k, v in kw.items():
        setattr(x, k, v)
    return x


store("implicit-on-explicit", encode(variant("2.25.4242001"), True), "2.25.4242001")
store("class-differs", encode(variant("2.25.4242002", SOPClassUID=MR), False), "2.25.4242002")
x = variant("2.25.4242003")
del x.SOPInstanceUID
store("no-sop", encode(x, False), "2.25.4242003")
good = encode(variant("2.25.4242004"), False)
store("truncated", good[:len(good) // 2 + 3], "2.25.4242004")
store("other-patient", encode(variant("2.25.4242005", PatientID="XYZ-OTHER"), False), "2.25.4242005")
store("other-study", encode(variant("2.25.4242006", StudyInstanceUID="2.25.4242999"), False), "2.25.4242006")
store("other-content", encode(variant(ct.SOPInstanceUID, StudyDescription="changed"), False), ct.SOPInstanceUID)
store("good", good, "2.25.4242004")
def echo(name, pcid, cls):
    cmd = dul.command({0x00000002: cls, 0x00000100: 0x0030, 0x00000110: 99, 0x00000800: 0x0101})
    s.sendall(dul.pdata(pcid, cmd, True))
    c, _ = msgs.next()
    print("%s status %04X" % (name, dul.us(c[0x00000900])))


# an N-CREATE-RQ with a data set on an accepted context: not offered,
# answered 0211H once its data set has gone by; the association goes on
ncreate0 = dul.command({0x00000002: CT, 0x00000100: 0x0140, 0x00000110: 49, 0x00000800: 0x0101})
s.sendall(dul.pdata(1, ncreate0, True))
c, _ = msgs.next()
print("n-create-nodata status %04X field %04X" % (dul.us(c[0x00000900]), dul.us(c[0x00000100])))
ncreate = dul.command({0x00000002: CT, 0x00000100: 0x0140, 0x00000110: 50, 0x00000800: 0x0000})
s.sendall(dul.pdata(1, ncreate, True) + dul.pdata(1, dul.dataset({0x00100010: "X^Y"}), False))
c, _ = msgs.next()
print("n-create status %04X field %04X" % (dul.us(c[0x00000900]), dul.us(c[0x00000100])))
echo("echo-other-class", 3, "1.2.3.4")
echo("echo-on-ct-context", 1, dul.VERIFICATION)
echo("echo", 3, dul.VERIFICATION)
s.sendall(dul.RELEASE_RQ)
print("release", dul.read_pdu(s)[0])
PYEOF
o="$T/out.txt"
check "associated" "grep -q '^associated' '$o'" "$o" "$T/err"
check "implicit VR data set on an explicit VR context: C000, the comment says why" \
	"grep -q '^implicit-on-explicit status C000 comment \[Cannot understand: VR encoding differs' '$o'" "$o"
check "SOP Class UID other than the command's: A900" \
	"grep -q '^class-differs status A900 comment \[SOP Class UID differs' '$o'" "$o"
check "no SOP Instance UID: A900" "grep -q '^no-sop status A900 comment \[Data set has no SOP Instance UID\]' '$o'" "$o"
check "a truncated data set: C000 (cannot understand)" "grep -q '^truncated status C000 comment \[Cannot understand' '$o'" "$o"
check "a study of another patient: C000 naming that conflict" \
	"grep -q '^other-patient status C000 comment \[Study belongs to another patient\]' '$o'" "$o"
check "a series of another study: C000 naming that conflict" \
	"grep -q '^other-study status C000 comment \[Series belongs to another study\]' '$o'" "$o"
check "other content under a stored SOP Instance UID: C000, already stored" \
	"grep -q '^other-content status C000 comment \[SOP Instance already stored with other content\]' '$o'" "$o"
check "the association goes on: the good instance stored, C-ECHO answered, released" \
	"grep -q '^good status 0000' '$o' && grep -q '^echo status 0000' '$o' && grep -q '^release 6' '$o'" "$o"
check "C-ECHO of another SOP class, or on a storage context: 0122H (SOP class not supported)" \
	"grep -q '^echo-other-class status 0122' '$o' && grep -q '^echo-on-ct-context status 0122' '$o'" "$o"
check "an N-CREATE-RQ with a data set: 0211H (unrecognized operation) in an N-CREATE-RSP, no A-ABORT" \
	"grep -q '^n-create status 0211 field 8140' '$o'" "$o"
check "an N-CREATE-RQ without a data set: 0211H" "grep -q '^n-create-nodata status 0211 field 8140' '$o'" "$o"
LOG="$T/v/audit/audit.log"
check "each refusal audited as a failed store" \
	"[ \$(grep '\"action\":\"store\"' '$LOG' | grep -c '\"outcome\":\"failure\"') -ge 7 ]" "$LOG"
# the two conflicts found by the index: no store success record for them
# (one was written before the index found the conflict), one failure each
# naming the sender's patient (other-patient: not CT_small's)
"$PY" - "$LOG" "$("$PY" -c 'import pydicom,sys; print(pydicom.dcmread(sys.argv[1]).SOPInstanceUID)' "$TF/CT_small.dcm")" \
	>"$T/conf.rec" 2>&1 <<'PYEOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if '"type":"event"' in l]
store = [r for r in recs if r["action"] == "store"]
ct = [r["objects"]["patient"] for r in store if r["objects"].get("sop") == sys.argv[2] and r["outcome"] == "success"][0]
for sop in ("2.25.4242005", "2.25.4242006"):
    mine = [r for r in store if r["objects"].get("sop") == sop]
    who = ["-" if "patient" not in r["objects"] else "ct" if r["objects"]["patient"] == ct else "other" for r in mine]
    print(sop, " ".join(r["outcome"] for r in mine), " ".join(who))
PYEOF
check "a study of another patient, a series of another study: one failure record each naming the sender's patient, no success record" \
	"grep -qx '2.25.4242005 failure other' '$T/conf.rec' && grep -qx '2.25.4242006 failure ct' '$T/conf.rec'" "$T/conf.rec"
"$DV" export --vault "$T/v" --study "$("$PY" -c 'import pydicom,sys; print(pydicom.dcmread(sys.argv[1]).StudyInstanceUID)' \
	"$TF/CT_small.dcm")" --out "$T/exp" >"$T/exp.out" 2>&1
"$PY" - "$T/exp" "$TF/CT_small.dcm" >"$T/cmp" 2>&1 <<'PYEOF'
import os, sys
import pydicom
got = {}
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        ds = pydicom.dcmread(os.path.join(root, f))
        got[ds.SOPInstanceUID] = ds
orig = pydicom.dcmread(sys.argv[2])
ok = set(got) == {orig.SOPInstanceUID, "2.25.4242004"}
ok = ok and got[orig.SOPInstanceUID].StudyDescription == orig.StudyDescription
ok = ok and got[orig.SOPInstanceUID].PixelData == orig.PixelData
print("instances", sorted(got))
sys.exit(0 if ok else 1)
PYEOF
check "only storescu's instance and the good one are stored, the first unchanged" "[ $? -eq 0 ]" "$T/cmp" "$T/exp.out"
check "server still running" "kill -0 $SRV" "$T/err"
