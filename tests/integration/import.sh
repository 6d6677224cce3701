#!/bin/bash
# import.sh: `dicomvault import` (issue 5, SPEC section 2). The old PACS is
# DCMTK's dcmqrscp (plain TCP; its storage areas loaded with dcmqridx):
# import --from over plain TCP (`tls = no`, warned about), and over
# DICOM-TLS with stunnel4 in front of dcmqrscp (server side, the peer's
# certificate, our certificate required) and around its C-STORE
# sub-operations (client side, presenting the peer's certificate). The
# data: a synthetic CT series (bench/gen_corpus.py) and pydicom's CT, MR
# and RT plan (implicit VR). Checked: the report's counts (text and
# --json), the studies exported by `dicomvault export` compared with the
# originals by pydicom (data sets and pixel bytes), a second import
# (already present), --study, the audit records (start, end, stores) and
# `audit verify`; bad cases: an unknown AE, a peer that refuses the
# association (named with the reason), no route back (C-MOVE refused:
# A801H, every instance missing), a PACS holding fewer instances than its
# C-FIND listed (a file deleted after indexing: the missing UID named),
# each exit 1; import PATH...: folders, a non-DICOM file (skipped), a
# truncated Part 10 file (failed, named), a folder that does not exist;
# usage errors (exit 2). Prints ok/not ok lines. Env DV: the CLI under
# test; KEEP=1 keeps the directory. Layer: tests.
set -u
# dcmqrscp 3.6.7 listens on every interface: the whole test runs in a
# network namespace of its own whose only interface is loopback (as
# dimse_move.sh does for storescp). Without namespaces: skipped.
if [ -z "${DV_NETNS:-}" ]; then
	if unshare -n true 2>/dev/null; then
		exec unshare -n env DV_NETNS=1 bash -c 'ip link set lo up && exec bash "$0" "$@"' "$0" "$@"
	fi
	echo "# SKIP import: no network namespace (unshare -n) to keep dcmqrscp off the network"
	exit 0
fi
DV=${DV:-build/check/dicomvault}
PY=/usr/bin/python3
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/dv-import.XXXXXX")
QR=
TS=
TC=
cleanup() {
	stop_pid "$TS"
	stop_pid "$TC"
	stop_pid "$QR"
	if [ -n "${KEEP:-}" ]; then echo "# kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
TEST=import
. "$(dirname "$0")/lib/dimse.sh"

for tool in dcmqrscp dcmqridx openssl stunnel4; do
	command -v $tool >/dev/null || { echo "# SKIP import: no $tool (scripts/install-deps.sh)"; exit 0; }
done
"$DV" import --help >/dev/null 2>&1 || { echo "# SKIP import: no import command"; exit 0; }

# ---- usage errors ----
"$DV" import >"$T/u1" 2>&1
check "no PATH and no --from: exit 2" "[ $? -eq 2 ]" "$T/u1"
"$DV" import --from A "$T" >"$T/u2" 2>&1
check "PATH and --from together: exit 2" "[ $? -eq 2 ]" "$T/u2"
"$DV" import "$T" --study 1.2.3 >"$T/u3" 2>&1
check "--study without --from: exit 2" "[ $? -eq 2 ]" "$T/u3"
"$DV" import --from A --port 70000 >"$T/u4" 2>&1
check "--port out of range: exit 2" "[ $? -eq 2 ]" "$T/u4"
"$DV" import --from A --study 'x;y' >"$T/u5" 2>&1
check "--study not a UID: exit 2" "[ $? -eq 2 ]" "$T/u5"
"$DV" import --from A --bogus >"$T/u6" 2>&1
check "unknown option: exit 2" "[ $? -eq 2 ]" "$T/u6"

# ---- the data: a synthetic CT series and pydicom's files ----
TF=/usr/lib/python3/dist-packages/pydicom/data/test_files
NCT=6
gen_ct() {  # DIR SEED: DIR/ct/*.dcm
	"$PY" -c "
import sys; sys.path.insert(0, '$ROOT/bench'); import gen_corpus as g
g.N_CT = $NCT; u = g.Uids(int(sys.argv[2]))
uids = {k: u.new() for k in ('ct_study', 'ct_series', 'ct_for', 'refstudy')}
uids['ct_sop'] = [u.new() for _ in range($NCT)]
g.gen_ct(sys.argv[1], uids)" "$1" "$2" >>"$T/gen.err" 2>&1
}
mkdir -p "$T/g"
gen_ct "$T" 20261122
gen_ct "$T/g" 20261123
check "bench/gen_corpus.py made two CT series" \
	"[ \$(ls '$T/ct' 2>/dev/null | wc -l) -eq $NCT ] && [ \$(ls '$T/g/ct' 2>/dev/null | wc -l) -eq $NCT ]" "$T/gen.err"
mkdir -p "$T/orig"
cp "$T"/ct/*.dcm "$T/orig/"
cp "$TF/CT_small.dcm" "$TF/MR_small.dcm" "$TF/rtplan.dcm" "$T/orig/"
NALL=$((NCT + 3))
# uids FILE...: "STUDY SOP" lines
uids() {
	"$PY" -c '
import sys, pydicom
for f in sys.argv[1:]:
    d = pydicom.dcmread(f, stop_before_pixels=True)
    print(d.StudyInstanceUID, d.SOPInstanceUID)' "$@"
}
uids "$T"/orig/*.dcm >"$T/orig.uids"
NSTUDIES=$(cut -d' ' -f1 "$T/orig.uids" | sort -u | wc -l)
uids "$T"/ct/*.dcm >"$T/ct.uids"
CT_STUDY=$(head -1 "$T/ct.uids" | cut -d' ' -f1)

# ---- the old PACS: dcmqrscp with three storage areas ----
QP=$(free_port)       # dcmqrscp (plain TCP)
VP=$(free_port)       # the importing vault's listener, plain
VT=$(free_port)       # the TLS vault's listener
TP=$(free_port)       # stunnel: TLS in front of dcmqrscp
CP=$(free_port)       # stunnel: dcmqrscp's sub-operations into TLS
NRP=$(free_port)      # nothing listens: no route back
mkdir -p "$T/pacs/all" "$T/pacs/gap" "$T/pacs/big"
# a study of NBIG tiny images, long enough to move that an operator can
# stop it half way (SIGINT: C-CANCEL)
NBIG=600
"$PY" - "$T/pacs/big" "$NBIG" <<'EOF2' >>"$T/gen.err" 2>&1
import sys
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
out, n = sys.argv[1], int(sys.argv[2])
root = "1.2.826.0.1.3680043.8.498.99"
for i in range(n):
    d = Dataset()
    d.file_meta = FileMetaDataset()
    d.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    d.file_meta.MediaStorageSOPInstanceUID = "%s.3.%d" % (root, i + 1)
    d.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    d.SOPClassUID = d.file_meta.MediaStorageSOPClassUID
    d.SOPInstanceUID = d.file_meta.MediaStorageSOPInstanceUID
    d.StudyInstanceUID, d.SeriesInstanceUID = root + ".1", root + ".2"
    d.PatientName, d.PatientID, d.StudyID, d.Modality = "Big^Study", "BIG1", "1", "OT"
    d.SeriesNumber, d.InstanceNumber, d.ConversionType = 1, i + 1, "WSD"
    d.Rows = d.Columns = 8
    d.SamplesPerPixel, d.PhotometricInterpretation = 1, "MONOCHROME2"
    d.BitsAllocated = d.BitsStored = 8
    d.HighBit, d.PixelRepresentation = 7, 0
    d.PixelData = bytes([i % 256]) * 64
    d.is_little_endian, d.is_implicit_VR = True, False
    d.save_as("%s/big%04d.dcm" % (out, i), write_like_original=False)
EOF2
cp "$T"/orig/*.dcm "$T/pacs/all/"
cp "$T"/g/ct/*.dcm "$T/pacs/gap/"
cat >"$T/qr.cfg" <<CONF
NetworkTCPPort  = $QP
MaxPDUSize      = 16384
MaxAssociations = 16

HostTable BEGIN
vault = (DICOMVAULT, 127.0.0.1, $VP)
tlsvault = (TLSVAULT, 127.0.0.1, $CP)
HostTable END

VendorTable BEGIN
VendorTable END

AETable BEGIN
OLDPACS  $T/pacs/all  R  (200, 1024mb)  ANY
GAPPACS  $T/pacs/gap  R  (200, 1024mb)  ANY
BIGPACS  $T/pacs/big  R  (1000, 1024mb)  ANY
AETable END
CONF
dcmqridx "$T/pacs/all" "$T"/pacs/all/*.dcm >"$T/idx1" 2>&1 &&
	dcmqridx "$T/pacs/gap" "$T"/pacs/gap/*.dcm >"$T/idx2" 2>&1 &&
	[ "$(ls "$T"/pacs/big | wc -l)" -eq "$NBIG" ] &&
	dcmqridx "$T/pacs/big" "$T"/pacs/big/*.dcm >"$T/idx3" 2>&1
check "dcmqridx indexed the three storage areas" "[ $? -eq 0 ]" "$T/idx1" "$T/idx2" "$T/idx3" "$T/gen.err"
# the gap: one CT slice indexed, then deleted (C-FIND lists it, C-MOVE cannot send it)
GAP_FILE=$(ls "$T"/pacs/gap/*.dcm | head -1)
GAP_UID=$(uids "$GAP_FILE" | cut -d' ' -f2)
rm -f "$GAP_FILE"
# (fork mode: dcmqrscp 3.6.7 -s crashes after an association is released)
dcmqrscp -c "$T/qr.cfg" -d >"$T/qr.log" 2>&1 &
QR=$!
wait_port "$QP"
check "dcmqrscp listening" "kill -0 $QR" "$T/qr.log"

# ---- a vault importing over plain TCP ----
PW='correct horse battery staple'
printf '%s\n' "$PW" >"$T/pw"
chmod 600 "$T/pw"
mkvault() {  # DIR AE PORT
	"$DV" init --vault "$1" --password-file "$T/pw" --json >"$1.init" 2>&1 || return 1
	sed -i "/^\[dicom\]\$/,/^\[/{s/^listen = .*/listen = 127.0.0.1:$3/}; s/^ae_title = .*/ae_title = $2/" \
		"$1/dicomvault.conf"
	grep -q "^listen = 127.0.0.1:8443\$" "$1/dicomvault.conf" || return 1
	grep -q "^ae_title = $2\$" "$1/dicomvault.conf" || return 1
}
mkvault "$T/v" DICOMVAULT "$VP"
check "init the plain-TCP vault" "[ $? -eq 0 ]" "$T/v.init"
cat >>"$T/v/dicomvault.conf" <<CONF

[peer "OLDPACS"]
host = 127.0.0.1
port = $QP
tls = no

[peer "GAPPACS"]
host = 127.0.0.1
port = $QP
tls = no

[peer "NOSUCHAE"]
host = 127.0.0.1
port = $QP
tls = no

[peer "NOHOST"]
tls = no

[peer "BIGPACS"]
host = 127.0.0.1
port = $QP
tls = no
CONF

"$DV" import --vault "$T/v" --from OLDPACS --json >"$T/i1.json" 2>"$T/i1.err"
RC=$?
check "import --from OLDPACS over plain TCP: exit 0" "[ $RC -eq 0 ]" "$T/i1.json" "$T/i1.err" "$T/qr.log"
check "plain TCP warned about on stderr" "grep -q 'tls = no' '$T/i1.err' && grep -q 'neither encrypted' '$T/i1.err'"
# counts NAME FILE EXPECTED RECEIVED STORED PRESENT FAILED MISSING VERIFIED
counts() {
	"$PY" - "$2" "${@:3}" <<'PYEOF' >"$T/counts.out" 2>&1
import json, sys
r = json.load(open(sys.argv[1]))
want = dict(zip(("expected", "received", "stored", "already_present", "failed", "missing", "verified"),
                map(int, sys.argv[2:])))
got = {k: r[k] for k in want}
if got != want:
    print("got", got, "want", want, "problems", r["problems"])
    sys.exit(1)
PYEOF
	check "$1" "[ $? -eq 0 ]" "$T/counts.out"
}
counts "report: $NALL expected, received, stored and verified" "$T/i1.json" $NALL $NALL $NALL 0 0 0 $NALL
check "every pending C-MOVE response consumed ($NALL, one per sub-operation)" \
	"grep -q '\"pending_responses\":$NALL,' '$T/i1.json'" "$T/i1.json"

# export every study and compare with the originals
mkdir -p "$T/exp"
for s in $(cut -d' ' -f1 "$T/orig.uids" | sort -u); do
	"$DV" export --vault "$T/v" --study "$s" --out "$T/exp/$s" --quiet >>"$T/exp.out" 2>&1 || echo "export $s failed" >>"$T/exp.out"
done
same() {  # DIR ORIGINAL...: the exported files are exactly these originals
	local dir=$1
	shift
	"$PY" - "$dir" "$@" <<'PYEOF'
import glob, sys, pydicom
got = {}
for f in glob.glob(sys.argv[1] + "/**/*.dcm", recursive=True):
    d = pydicom.dcmread(f)
    got[d.SOPInstanceUID] = d
bad = []
for f in sys.argv[2:]:
    o = pydicom.dcmread(f, force=True)   # (a bare data set too)
    g = got.pop(o.SOPInstanceUID, None)
    if g is None:
        bad.append("missing " + f)
        continue
    if "PixelData" in o and g.PixelData != o.PixelData:
        bad.append("pixel bytes differ " + f)
    for e in o:
        if e.tag == 0x7FE00010:
            continue
        if e.tag == 0xFFFCFFFC:
            continue   # Data Set Trailing Padding: no meaning (PS3.10 7.2), DCMTK drops it
        if e.tag not in g or g[e.tag].value != e.value:
            bad.append("element %s differs in %s" % (e.tag, f))
            break
    for e in g:
        if e.tag not in o:
            bad.append("element %s added in %s" % (e.tag, f))
            break
if got:
    bad.append("unexpected %d" % len(got))
print("\n".join(bad))
sys.exit(1 if bad else 0)
PYEOF
}
same "$T/exp" "$T"/orig/*.dcm >"$T/same1" 2>&1
check "exported studies equal the originals (data sets, pixel bytes; pydicom)" "[ $? -eq 0 ]" "$T/same1" "$T/exp.out"

# the audit: start and end of the import, one store per object
AL="$T/v/audit/audit.log"
check "audit: import start names the peer" "grep '\"import\"' '$AL' | grep -q 'start: from peer OLDPACS'"
check "audit: import end with the counts" \
	"grep '\"import\"' '$AL' | grep 'end: from peer OLDPACS' | grep -q '$NALL verified'"
check "audit: $NALL store records by OLDPACS" \
	"[ \$(grep '\"store\"' '$AL' | grep -c 'OLDPACS') -eq $NALL ]"
"$DV" audit verify --vault "$T/v" >"$T/av" 2>&1
check "audit verify: intact" "[ $? -eq 0 ]" "$T/av"

# again: every object already present (identical bytes: deduplicated)
"$DV" import --vault "$T/v" --from OLDPACS --json >"$T/i2.json" 2>"$T/i2.err"
check "import again: exit 0" "[ $? -eq 0 ]" "$T/i2.json" "$T/i2.err"
counts "import again: $NALL already present, 0 stored, all verified" "$T/i2.json" $NALL $NALL 0 $NALL 0 0 $NALL

# the text report
"$DV" import --vault "$T/v" --from OLDPACS --study "$CT_STUDY" >"$T/i3.out" 2>"$T/i3.err"
check "--study: exit 0, only the CT study's $NCT instances" \
	"[ $? -eq 0 ] && grep -q '^import from peer OLDPACS: $NCT expected, $NCT received, 0 stored, $NCT already present, 0 failed, 0 missing' '$T/i3.out'" \
	"$T/i3.out" "$T/i3.err"

# ---- the operator stops an import half way (SIGINT) ----
BIG_STUDY=1.2.826.0.1.3680043.8.498.99.1
nbig() {  # [VAULT]: instances of the big study in the vault's index
	"$PY" -c 'import sqlite3,sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=5)
print(c.execute("select count(*) from instances where uid like ?", (sys.argv[2] + ".3.%",)).fetchone()[0])' \
		"${1:-$T/v}/index.db" 1.2.826.0.1.3680043.8.498.99 2>/dev/null || echo 0
}
# stop_at_20 SIGNAL VAULT: once 20 instances of the big study are in
# VAULT's index, sends SIGNAL to the import $IMP and waits: sets RC
stop_at_20() {
	for _ in $(seq 300); do
		[ "$(nbig "$2")" -ge 20 ] && break
		kill -0 $IMP 2>/dev/null || break
		sleep 0.05
	done
	kill "-$1" $IMP 2>/dev/null
	wait $IMP
	RC=$?
}
"$DV" import --vault "$T/v" --from BIGPACS --json >"$T/c1.json" 2>"$T/c1.err" &
IMP=$!
stop_at_20 INT "$T/v"
NB=$(nbig)
# jv FILE EXPR: a Python expression over d = the JSON report
jv() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2"; }
jv "$T/c1.json" 'd["cancelled"] is True and d["ok"] is False and any(p["kind"] == "error" and "cancelled by the operator" in p["reason"] for p in d["problems"])'
check "SIGINT during the C-MOVE: exit 1, reported as cancelled" "[ $RC -eq 1 ] && [ $? -eq 0 ]" "$T/c1.json" "$T/c1.err"
jv "$T/c1.json" "d['expected'] == $NBIG and 20 <= d['stored'] < $NBIG and d['failed'] == 0 and d['missing'] == 0"
check "SIGINT: the move stopped half way; nothing failed or went missing" "[ $? -eq 0 ]" "$T/c1.json"
jv "$T/c1.json" "d['verified'] == d['stored'] == $NB and d['skipped'] == $NBIG - d['stored']"
check "SIGINT: what arrived ($NB) is in the index and verified, the rest counted as skipped" "[ $? -eq 0 ]" "$T/c1.json"
check "SIGINT: dcmqrscp received a C-CANCEL" "grep -qi 'cancel' '$T/qr.log'" "$T/qr.log"
check "SIGINT: the audit's end record says cancelled" \
	"grep '\"import\"' '$T/v/audit/audit.log' | grep -q 'end (cancelled): from peer BIGPACS'"
"$DV" import --vault "$T/v" --from BIGPACS --json >"$T/c2.json" 2>"$T/c2.err"
RC=$?
jv "$T/c2.json" "d['verified'] == $NBIG and d['already_present'] == $NB and d['stored'] == $NBIG - $NB and not d['cancelled']"
check "import again after the cancel: exit 0, the rest stored, all $NBIG verified" "[ $RC -eq 0 ] && [ $? -eq 0 ]" \
	"$T/c2.json" "$T/c2.err"

# the same from files: no file after the current one is read
mkvault "$T/pv" DICOMVAULT "$VP" || no "init the path-import vault" "$T/pv.init"
"$DV" import --vault "$T/pv" --json "$T/pacs/big" >"$T/c3.json" 2>"$T/c3.err" &
IMP=$!
stop_at_20 TERM "$T/pv"
NB=$(nbig "$T/pv")
jv "$T/c3.json" "d['cancelled'] is True and 20 <= d['stored'] == d['verified'] == $NB < $NBIG and d['failed'] == 0"
check "SIGTERM during import PATH: exit 1, cancelled, the $NB files stored are verified" "[ $RC -eq 1 ] && [ $? -eq 0 ]" \
	"$T/c3.json" "$T/c3.err"
"$DV" import --vault "$T/pv" --json "$T/pacs/big" >"$T/c4.json" 2>"$T/c4.err"
RC=$?
jv "$T/c4.json" "d['stored'] == $NBIG - $NB and d['already_present'] == $NB and d['verified'] == $NBIG"
check "import PATH again: exit 0, the rest stored" "[ $RC -eq 0 ] && [ $? -eq 0 ]" "$T/c4.json" "$T/c4.err"

# ---- bad cases ----
"$DV" import --vault "$T/v" --from UNKNOWNAE >"$T/b1.out" 2>"$T/b1.err"
check "unknown AE: exit 1, named" "[ $? -eq 1 ] && grep -q 'no \[peer \"UNKNOWNAE\"\]' '$T/b1.err'" "$T/b1.err"
"$DV" import --vault "$T/v" --from NOHOST >"$T/b2.out" 2>"$T/b2.err"
check "a peer without host and port: exit 1" "[ $? -eq 1 ] && grep -q 'no host and port' '$T/b2.err'" "$T/b2.err"
"$DV" import --vault "$T/v" --from NOSUCHAE --json >"$T/b3.json" 2>"$T/b3.err"
RC=$?
check "peer refuses the association: exit 1, the peer and the reason named" \
	"[ $RC -eq 1 ] && grep -q 'NOSUCHAE refused the association' '$T/b3.json' && grep -q 'called AE title not recognized' '$T/b3.json'" \
	"$T/b3.json" "$T/b3.err"
# the gap: C-FIND lists NCT slices, one file is gone
"$DV" import --vault "$T/v" --from GAPPACS --json >"$T/b4.json" 2>"$T/b4.err"
RC=$?
check "fewer instances than C-FIND said: exit 1" "[ $RC -eq 1 ]" "$T/b4.json" "$T/b4.err"
counts "fewer instances: $NCT expected, $((NCT - 1)) received, stored and verified, 1 missing" "$T/b4.json" \
	$NCT $((NCT - 1)) $((NCT - 1)) 0 0 1 $((NCT - 1))
check "the missing instance is named" \
	"grep -q '\"kind\":\"missing\",\"object\":\"$GAP_UID\"' '$T/b4.json'" "$T/b4.json"
check "the C-MOVE warning status is reported (B000H, 1 failed)" "grep -q 'B000H.*1 failed' '$T/b4.json'" "$T/b4.json"

# no route back: a vault whose AE title dcmqrscp does not know (A801H)
mkvault "$T/nr" NOROUTE "$NRP"
cat >>"$T/nr/dicomvault.conf" <<CONF

[peer "OLDPACS"]
host = 127.0.0.1
port = $QP
tls = no
CONF
"$DV" import --vault "$T/nr" --from OLDPACS --json >"$T/b5.json" 2>"$T/b5.err"
RC=$?
check "no route back: exit 1" "[ $RC -eq 1 ]" "$T/b5.json" "$T/b5.err"
counts "no route back: $NALL expected, all missing" "$T/b5.json" $NALL 0 0 0 0 $NALL 0
check "no route back: the C-MOVE failure named (A801H, Move Destination unknown)" \
	"grep -q 'A801H' '$T/b5.json' && grep -q 'Move Destination unknown' '$T/b5.json'" "$T/b5.json"
check "no route back: audited as a failure" \
	"grep '\"import\"' '$T/nr/audit/audit.log' | grep 'end: from peer OLDPACS' | grep -q '\"failure\"'"

# [dicom] max_pdu: the Maximum Length of import's A-ASSOCIATE-RQ (serve's
# setting, PS3.8 D.1): a one-shot listener reads the RQ and rejects it
PKP=$(free_port)
mkvault "$T/mp" DICOMVAULT "$NRP"
sed -i "/^\[dicom\]\$/a max_pdu = 20000" "$T/mp/dicomvault.conf"
cat >>"$T/mp/dicomvault.conf" <<CONF

[peer "PEEK"]
host = 127.0.0.1
port = $PKP
tls = no
CONF
"$PY" - "$PKP" "$T/peek.out" <<'PYEOF' &
import socket, struct, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1)
open(sys.argv[2] + ".ready", "w").close()   # not a probe connection: that would be the one accepted
s.settimeout(30)
c, _ = s.accept()
c.settimeout(10)
def take(n):
    b = b""
    while len(b) < n:
        k = c.recv(n - len(b))
        if not k:
            raise SystemExit("short read")
        b += k
    return b
t, _, n = struct.unpack(">BBI", take(6))
body = take(n)
found = "none"
i = 68                                   # past the fixed fields
while t == 1 and i + 4 <= len(body):
    it, ln = body[i], struct.unpack(">H", body[i + 2:i + 4])[0]
    if it == 0x50:                       # user information: its sub-items
        j = i + 4
        while j + 4 <= i + 4 + ln:
            st, sl = body[j], struct.unpack(">H", body[j + 2:j + 4])[0]
            if st == 0x51 and sl == 4:
                found = str(struct.unpack(">I", body[j + 4:j + 8])[0])
            j += 4 + sl
    i += 4 + ln
open(sys.argv[2], "w").write(found + "\n")
c.sendall(bytes([3, 0, 0, 0, 0, 4, 0, 1, 1, 3]))   # A-ASSOCIATE-RJ: permanent, user, called AE not recognised
c.close()
PYEOF
PK=$!
for _ in $(seq 50); do [ -e "$T/peek.out.ready" ] && break; sleep 0.1; done
"$DV" import --vault "$T/mp" --from PEEK --json >"$T/b6.json" 2>"$T/b6.err"
RC=$?
wait "$PK"
check "[dicom] max_pdu = 20000: import's A-ASSOCIATE-RQ advertises 20000" \
	"[ $RC -eq 1 ] && [ \"\$(cat '$T/peek.out')\" = 20000 ]" "$T/peek.out" "$T/b6.json" "$T/b6.err"
sed -i "s/^max_pdu = 20000\$/max_pdu = 100/" "$T/mp/dicomvault.conf"
"$DV" import --vault "$T/mp" --from PEEK --json >"$T/b7.json" 2>"$T/b7.err"
check "[dicom] max_pdu out of range: import exits 1 and names the key" \
	"[ $? -eq 1 ] && grep -q 'max_pdu: 512 to' '$T/b7.json'" "$T/b7.json" "$T/b7.err"

# ---- over DICOM-TLS: stunnel4 on both sides of dcmqrscp ----
cert pacs oldpacs
cert other
mkvault "$T/tv" TLSVAULT "$VT"
check "init the TLS vault" "[ $? -eq 0 ] && [ -s '$T/pacs.crt' ]" "$T/tv.init"
cat >>"$T/tv/dicomvault.conf" <<CONF

[peer "OLDPACS"]
host = 127.0.0.1
port = $TP
fingerprint = $(fp "$T/pacs.crt")

[peer "GAPPACS"]
host = 127.0.0.1
port = $TP
fingerprint = $(fp "$T/other.crt")
CONF
VC="$T/tv/keys/tls.crt"
# server side: TLS 1.3 in front of dcmqrscp, the vault's certificate required
cat >"$T/ts.conf" <<CONF
foreground = yes
pid =
output = $T/ts.log
debug = 4
[pacs]
accept = 127.0.0.1:$TP
connect = 127.0.0.1:$QP
cert = $T/pacs.crt
key = $T/pacs.key
CAfile = $VC
verifyPeer = yes
sslVersionMin = TLSv1.3
CONF
# client side: dcmqrscp's sub-operations to TLSVAULT, with the PACS's certificate
cat >"$T/tc.conf" <<CONF
foreground = yes
pid =
output = $T/tc.log
debug = 4
[subops]
client = yes
accept = 127.0.0.1:$CP
connect = 127.0.0.1:$VT
cert = $T/pacs.crt
key = $T/pacs.key
CAfile = $VC
verifyPeer = yes
sslVersionMin = TLSv1.3
CONF
stunnel4 "$T/ts.conf" >"$T/ts.out" 2>&1 &
TS=$!
stunnel4 "$T/tc.conf" >"$T/tc.out" 2>&1 &
TC=$!
wait_port "$TP" && wait_port "$CP"
check "stunnel4 on both sides of dcmqrscp" "kill -0 $TS && kill -0 $TC" "$T/ts.out" "$T/tc.out"
"$DV" import --vault "$T/tv" --from OLDPACS --json >"$T/t1.json" 2>"$T/t1.err"
RC=$?
check "import --from OLDPACS over DICOM-TLS: exit 0" "[ $RC -eq 0 ]" "$T/t1.json" "$T/t1.err" "$T/ts.log" "$T/tc.log"
counts "DICOM-TLS: $NALL expected, stored and verified" "$T/t1.json" $NALL $NALL $NALL 0 0 0 $NALL
check "DICOM-TLS: no plain-TCP warning" "! grep -q 'tls = no' '$T/t1.err'" "$T/t1.err"
check "DICOM-TLS: the stores audited with the peer's certificate" \
	"[ \$(grep '\"store\"' '$T/tv/audit/audit.log' | grep -c \"$(fp "$T/pacs.crt")\") -eq $NALL ]"
mkdir -p "$T/texp"
for s in $(cut -d' ' -f1 "$T/orig.uids" | sort -u); do
	"$DV" export --vault "$T/tv" --study "$s" --out "$T/texp/$s" --quiet >>"$T/texp.out" 2>&1
done
same "$T/texp" "$T"/orig/*.dcm >"$T/same2" 2>&1
check "DICOM-TLS: exported studies equal the originals" "[ $? -eq 0 ]" "$T/same2" "$T/texp.out"
# a peer whose certificate is not the one bound to it: refused, named
"$DV" import --vault "$T/tv" --from GAPPACS >"$T/t2.out" 2>"$T/t2.err"
RC=$?
check "DICOM-TLS: a peer with another certificate refused: exit 1, named (its server certificate)" \
	"[ $RC -eq 1 ] && grep -q 'GAPPACS' '$T/t2.out' && grep -q 'server certificate is not the one bound' '$T/t2.out'" \
	"$T/t2.out" "$T/t2.err"

# ---- import PATH... ----
mkdir -p "$T/files/a/b" "$T/pv"
cp "$T"/ct/*.dcm "$T/files/a/"
cp "$TF/MR_small.dcm" "$T/files/a/b/"
cp "$TF/rtplan.dcm" "$T/files/"
echo "not an image" >"$T/files/README.txt"
mkvault "$T/pv" DICOMVAULT "$NRP"
"$DV" import --vault "$T/pv" "$T/files" --json >"$T/p1.json" 2>"$T/p1.err"
check "import PATH: a folder tree, exit 0" "[ $? -eq 0 ]" "$T/p1.json" "$T/p1.err"
counts "import PATH: $((NCT + 2)) stored and verified" "$T/p1.json" $((NCT + 2)) $((NCT + 2)) $((NCT + 2)) 0 0 0 \
	$((NCT + 2))
check "import PATH: the text file skipped with its reason" \
	"grep -q '\"kind\":\"skipped\",\"object\":\"$T/files/README.txt\",\"reason\":\"not DICOM (no DICM prefix' '$T/p1.json'" \
	"$T/p1.json"
# bare data sets (no preamble, no meta: as old archives hold them), implicit
# and explicit VR little endian, and explicit big endian (the same SOP
# Instance UID as the little endian one, other bytes: a vault of its own)
mkdir -p "$T/bare1" "$T/bare2"
cp "$TF/rtstruct.dcm" "$TF/ExplVR_LitEndNoMeta.dcm" "$T/bare1/"
cp "$TF/ExplVR_BigEndNoMeta.dcm" "$T/bare2/"
for b in 1 2; do
	mkvault "$T/bv$b" DICOMVAULT "$NRP"
	"$DV" import --vault "$T/bv$b" "$T/bare$b" --json >"$T/bare$b.json" 2>"$T/bare$b.err"
	echo $? >"$T/bare$b.rc"
	mkdir -p "$T/bexp$b"
	for s in $("$PY" -c 'import sys, pydicom; print(" ".join(sorted({pydicom.dcmread(f, force=True).StudyInstanceUID for f in sys.argv[1:]})))' "$T/bare$b"/*.dcm); do
		"$DV" export --vault "$T/bv$b" --study "$s" --out "$T/bexp$b/$s" --quiet >>"$T/bexp$b.out" 2>&1
	done
done
counts "import PATH of bare data sets (implicit and explicit VR LE): stored as Part 10 and verified" "$T/bare1.json" \
	2 2 2 0 0 0 2
check "and exit 0" "[ \$(cat '$T/bare1.rc') -eq 0 ]" "$T/bare1.err"
same "$T/bexp1" "$T"/bare1/*.dcm >"$T/same4" 2>&1
check "the bare data sets exported (Part 10, with meta) equal the originals" "[ $? -eq 0 ]" "$T/same4" "$T/bexp1.out"
counts "import PATH of a bare big endian data set: stored and verified" "$T/bare2.json" 1 1 1 0 0 0 1
same "$T/bexp2" "$T"/bare2/*.dcm >"$T/same5" 2>&1
check "the big endian one exported equals the original" "[ $? -eq 0 ]" "$T/same5" "$T/bexp2.out"
# a damaged bare data set is a failure, not "not DICOM"; a meta group
# without the preamble keeps its transfer syntax (an unknown one too),
# never relabelled by re-encoding
"$PY" - "$TF" "$T/bare3" <<'PYEOF'
import os, struct, sys
tf, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
m = open(os.path.join(tf, "MR_small_implicit.dcm"), "rb").read()
assert m[132:140] == b"\x02\x00\x00\x00UL\x04\x00"   # the meta's group length first
ds = m[144 + struct.unpack("<I", m[140:144])[0]:]   # the data set alone, implicit VR LE
open(os.path.join(out, "cut.dcm"), "wb").write(ds[:-3000])
j = open(os.path.join(tf, "JPEG2000.dcm"), "rb").read()[132:]
old, new = b"1.2.840.10008.1.2.4.91", b"1.2.826.0.1.3680043.99"   # same length: the group length holds
assert len(old) == len(new) and j.count(old) == 1
open(os.path.join(out, "private_ts.dcm"), "wb").write(j.replace(old, new))
PYEOF
mkvault "$T/bv3" DICOMVAULT "$NRP"
"$DV" import --vault "$T/bv3" "$T/bare3" --json >"$T/bare3.json" 2>"$T/bare3.err"
RC=$?
check "a truncated bare data set: failed with its reason (not skipped), exit 1" \
	"[ $RC -eq 1 ] && grep -q '\"kind\":\"failed\",\"object\":\"$T/bare3/cut.dcm\",\"reason\":\"a bare data set, not readable at byte' '$T/bare3.json'" \
	"$T/bare3.json" "$T/bare3.err"
J2K_ST=$("$PY" -c 'import sys, pydicom; print(pydicom.dcmread(sys.argv[1]).StudyInstanceUID)' "$TF/JPEG2000.dcm")
"$DV" export --vault "$T/bv3" --study "$J2K_ST" --out "$T/bexp3" --quiet >"$T/bexp3.out" 2>&1
check "a meta group without the preamble (a private transfer syntax): stored with its own transfer syntax and bytes" \
	"$PY -c 'import glob, sys, pydicom; f = glob.glob(sys.argv[1] + \"/**/*.dcm\", recursive=True); d = pydicom.dcmread(f[0]); o = open(sys.argv[2], \"rb\").read(); sys.exit(0 if len(f) == 1 and d.file_meta.TransferSyntaxUID == \"1.2.826.0.1.3680043.99\" and open(f[0], \"rb\").read()[-len(o) + 600:] == o[-len(o) + 600:] else 1)' '$T/bexp3' '$T/bare3/private_ts.dcm'" \
	"$T/bexp3.out"
mkdir -p "$T/pexp"
"$DV" export --vault "$T/pv" --study "$CT_STUDY" --out "$T/pexp" --quiet >"$T/pexp.out" 2>&1
same "$T/pexp" "$T"/ct/*.dcm >"$T/same3" 2>&1
check "import PATH: the CT study exported equals the originals" "[ $? -eq 0 ]" "$T/same3" "$T/pexp.out"
head -c 3000 "$TF/MR_small.dcm" >"$T/trunc.dcm"
"$DV" import --vault "$T/pv" "$T/trunc.dcm" "$T/files/rtplan.dcm" "$T/no-such-dir" >"$T/p2.out" 2>"$T/p2.err"
RC=$?
check "import PATH: a truncated file and a missing folder: exit 1" "[ $RC -eq 1 ]" "$T/p2.out" "$T/p2.err"
check "the truncated file named with the reason" "grep -q '^failed: $T/trunc.dcm: not readable DICOM at byte' '$T/p2.out'" \
	"$T/p2.out"
check "the missing folder named" "grep -q '^error: $T/no-such-dir: No such file or directory' '$T/p2.out'" "$T/p2.out"
check "the good file already present" "grep -q '2 expected, 1 received, 0 stored, 1 already present, 1 failed' '$T/p2.out'" \
	"$T/p2.out"
# an object damaged on disk after its import: importing it again finds it
# (identical bytes) and the store checks the stored copy before it says
# "already stored" (since session 22; before, only the read back after
# caught it): reported, exit 1
mkvault "$T/dv" DICOMVAULT "$NRP"
"$DV" import --vault "$T/dv" "$TF/rtplan.dcm" >"$T/d1.out" 2>&1
check "import PATH: one file into a fresh vault" "[ $? -eq 0 ]" "$T/d1.out"
OBJ=$(find "$T/dv/objects" -type f ! -name '.*' | head -1)
"$PY" -c '
import os, sys
p = sys.argv[1]; n = os.path.getsize(p)
with open(p, "r+b") as f:
    f.seek(n // 2); b = f.read(1); f.seek(n // 2); f.write(bytes([b[0] ^ 0x01]))' "$OBJ"
"$DV" import --vault "$T/dv" "$TF/rtplan.dcm" --json >"$T/d2.json" 2>"$T/d2.err"
RC=$?
check "a damaged stored object: exit 1, the stored copy fails its integrity check" \
	"[ $RC -eq 1 ] && grep -q '\"kind\":\"failed\".*already stored, and the stored copy fails its integrity check' '$T/d2.json' && grep -q '\"already_present\":0' '$T/d2.json'" \
	"$T/d2.json" "$T/d2.err"
check "import PATH audited" "grep '\"import\"' '$T/pv/audit/audit.log' | grep -q 'end: from 3 paths'"
check "no patient name in any output" "! grep -rq 'CompressedSamples\|Rubo\|DOE^' '$T'/*.out '$T'/*.err '$T'/*.json"
