#!/bin/bash
# dimse_move.sh: the C-MOVE SCP of `dicomvault serve` (issue 5): DCMTK's
# movescu (3.6.7: no TLS) through a local stunnel4 TLS client with the
# mover's certificate, DCMTK's storescp +tls as the Move Destination (its
# own certificate, made here with openssl, bound to [peer "DEST"] by
# fingerprint, with host and port): the vault opens a DICOM-TLS
# association to it, presenting its TLS certificate, and sends the C-STORE
# sub-operations there. The files storescp writes are compared with the
# originals (data sets and pixel bytes, pydicom); the pending responses
# counted; a Move Destination that is not a peer with host and port
# (A801H), a destination whose certificate is not the one bound to it (all
# sub-operations failed, A702H), a peer without the move right (refused),
# an identifier naming nothing (0000H); a destination that speaks TLS 1.2
# only (openssl s_server -tls1_2 behind a relay that records what is sent:
# A702H, only the TLS ClientHello sent, the failure audited); one
# "retrieve" audit record per C-MOVE. Prints ok/not ok lines. Env DV: the CLI under test; KEEP=1 keeps
# the directory. Layer: tests.
set -u
# storescp 3.6.7 cannot bind an address (it listens on every interface):
# the whole test runs in a network namespace of its own, whose only
# interface is loopback, so that nothing it starts is reachable from
# outside the machine. Without namespaces the storescp checks are skipped.
if [ -z "${DV_NETNS:-}" ]; then
	if unshare -n true 2>/dev/null; then
		exec unshare -n env DV_NETNS=1 bash -c 'ip link set lo up && exec bash "$0" "$@"' "$0" "$@"
	fi
	echo "# SKIP dimse_move: no network namespace (unshare -n) to keep storescp off the network"
	exit 0
fi
DV=${DV:-build/check/dicomvault}
PY=/usr/bin/python3
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TEST=dimse_move
. "$(dirname "$0")/lib/dimse.sh"
tap_setup dmove
TUN=
SCP=
S12=
RELAY=
cleanup() {
	stop_pid "$TUN"
	stop_pid "$SCP"
	stop_pid "$RELAY"
	stop_pid "$S12"
	tap_cleanup
}
trap cleanup EXIT

need movescu storescu storescp openssl stunnel4

cert peer1
cert dest
cert other
[ -s "$T/peer1.crt" ] && [ -s "$T/dest.crt" ] && [ -s "$T/other.crt" ] || { no "openssl made the certificates"; exit 0; }

# ---- the data: P1 (study 1: series 1.1 of 2 instances, series 1.2 of
# 1), P2 (study 2, 1 instance in implicit VR) ----
"$PY" - "$T/data" >"$T/gen.err" 2>&1 <<'PYEOF'
import os, sys
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
out = sys.argv[1]
os.makedirs(out)
n = [0]
def inst(pid, study, series, rows, implicit=False):
    n[0] += 1
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"   # secondary capture
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.2.1143.29.%d" % n[0]
    ds.PatientName = "DOE^" + pid; ds.PatientID = pid; ds.PatientSex = "O"
    ds.StudyInstanceUID = study; ds.StudyDate = "20240105"; ds.AccessionNumber = "A%d" % n[0]
    ds.SeriesInstanceUID = series; ds.Modality = "OT"; ds.SeriesNumber = 1; ds.InstanceNumber = n[0]
    ds.Rows = rows; ds.Columns = 64; ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16; ds.BitsStored = 12; ds.HighBit = 11; ds.PixelRepresentation = 0
    ds.PixelData = bytes((i * 5 + n[0]) & 255 for i in range(rows * 64 * 2))
    fm = FileMetaDataset(); fm.MediaStorageSOPClassUID = ds.SOPClassUID
    fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    fm.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds.file_meta = fm
    ds.is_little_endian = True; ds.is_implicit_VR = implicit
    ds.save_as("%s/%03d.dcm" % (out, n[0]), write_like_original=False)
S = "1.2.826.0.1.3680043.2.1143.27."
inst("P1", S + "1", S + "1.1", 64)
inst("P1", S + "1", S + "1.1", 600)    # 76 800 bytes of pixels: several PDUs
inst("P1", S + "1", S + "1.2", 8)
inst("P2", S + "2", S + "2.1", 8, implicit=True)
PYEOF
check "pydicom made the data" "[ \$(ls '$T'/data/*.dcm 2>/dev/null | wc -l) -eq 4 ]" "$T/gen.err"

vault_init || exit 0
HP=$(free_port)
DP=$(free_port)
SP=$(free_port)
RP=$(free_port)    # the relay in front of openssl s_server -tls1_2
OP=$(free_port)    # openssl s_server -tls1_2
FP=$(fp "$T/peer1.crt")
cat >>"$T/v/dicomvault.conf" <<CONF

[peer "MOVER"]
fingerprint = $FP
rights = echo, store, move

[peer "NOMOVE"]
fingerprint = $FP
rights = echo, store, find, get

[peer "DEST"]
fingerprint = $(fp "$T/dest.crt")
host = 127.0.0.1
port = $SP

[peer "WRONGCERT"]
fingerprint = $(fp "$T/other.crt")
host = 127.0.0.1
port = $SP

[peer "NOHOST"]
fingerprint = $(fp "$T/dest.crt")

[peer "TLS12"]
fingerprint = $(fp "$T/dest.crt")
host = 127.0.0.1
port = $RP
CONF
serve_dicom || exit 0
SC="$T/v/keys/tls.crt"
TLS=(+tls "$T/peer1.key" "$T/peer1.crt" +cf "$SC")
storescu -to 20 -ta 20 -td 20 "${TLS[@]}" -aet MOVER -aec DICOMVAULT 127.0.0.1 "$DP" "$T"/data/00[123].dcm \
	>"$T/s1" 2>&1
check "storescu: study 1" "[ $? -eq 0 ]" "$T/s1"
storescu -xi -to 20 -ta 20 -td 20 "${TLS[@]}" -aet MOVER -aec DICOMVAULT 127.0.0.1 "$DP" "$T/data/004.dcm" \
	>"$T/s2" 2>&1
check "storescu -xi: study 2 in implicit VR" "[ $? -eq 0 ]" "$T/s2"

# ---- the Move Destination: storescp +tls, trusting the vault's certificate ----
mkdir -p "$T/dest"
# (storescp 3.6.7 cannot bind an address: it listens on every interface of
# this test's own network namespace, i.e. on loopback only; +tls with +cf:
# only a client holding the vault's key is served)
# dest_start LOG [storescp options]: storescp on $SP as SCP, listening
dest_start() {
	local log=$1
	shift
	storescp -d "$@" -aet DEST +tls "$T/dest.key" "$T/dest.crt" +cf "$SC" -od "$T/dest" "$SP" >"$log" 2>&1 &
	SCP=$!
	wait_port "$SP"
}
dest_start "$T/storescp.log"
check "storescp +tls listening" "kill -0 $SCP" "$T/storescp.log"

# ---- the TLS tunnel for movescu: stunnel4 as a TLS client on loopback ----
LP=$(free_port)
cat >"$T/stunnel.conf" <<CONF
foreground = yes
pid =
output = $T/stunnel.log
debug = 4
[dicom]
client = yes
accept = 127.0.0.1:$LP
connect = 127.0.0.1:$DP
cert = $T/peer1.crt
key = $T/peer1.key
CAfile = $SC
verifyPeer = yes
sslVersionMin = TLSv1.3
CONF
stunnel4 "$T/stunnel.conf" >"$T/stunnel.out" 2>&1 &
TUN=$!
wait_port "$LP"
check "stunnel4 listening on 127.0.0.1:$LP" "kill -0 $TUN" "$T/stunnel.out" "$T/stunnel.log"

# move NAME AET DEST [movescu options and keys]
move_() {
	local name=$1 aet=$2 dest=$3
	shift 3
	movescu -v -to 20 -ta 20 -td 20 -aet "$aet" -aec DICOMVAULT -aem "$dest" "$@" 127.0.0.1 "$LP" \
		>"$T/$name.log" 2>&1
}
# same DIR ORIGINAL...: the files in DIR are exactly these originals
same() {
	local dir=$1
	shift
	"$PY" - "$dir" "$@" <<'PYEOF'
import glob, os, sys, pydicom
got = {}
for f in glob.glob(sys.argv[1] + "/*"):
    d = pydicom.dcmread(f)
    got[d.SOPInstanceUID] = d
want = {}
for f in sys.argv[2:]:
    d = pydicom.dcmread(f)
    want[d.SOPInstanceUID] = d
if sorted(got) != sorted(want):
    print("instances differ:", sorted(got), sorted(want)); sys.exit(1)
for uid, w in want.items():
    g = got[uid]
    if g.PixelData != w.PixelData or len(g.PixelData) != w.Rows * w.Columns * 2:
        print(uid, "pixel bytes differ"); sys.exit(1)
    if list(g.keys()) != list(w.keys()) or any(g[k] != w[k] for k in w.keys()):
        print(uid, "data sets differ"); sys.exit(1)
print("same", len(want))
PYEOF
}
npending() { grep -c 'Received Move Response [0-9]* (Pending)' "$T/$1.log"; }
S=1.2.826.0.1.3680043.2.1143.27.

move_ m1 MOVER DEST -S -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=${S}1
check "study root, STUDY level to DEST: movescu succeeded" \
	"[ $? -eq 0 ] && grep -q 'Received Final Move Response (Success)' '$T/m1.log'" "$T/m1.log" "$T/err"
check "3 pending responses" "[ \$(npending m1) -eq 3 ]" "$T/m1.log"
sleep 0.5
same "$T/dest" "$T"/data/00[123].dcm >"$T/m1.cmp" 2>&1
check "storescp received the study's 3 instances: data sets and pixel bytes equal" "[ $? -eq 0 ]" "$T/m1.cmp" \
	"$T/storescp.log"
check "storescp was called by DICOMVAULT, C-STOREs naming MOVER and its message ID as the move originator" \
	"grep -q 'Calling Application Name: *DICOMVAULT' '$T/storescp.log' && [ \$(grep -c 'Move Originator AE Title *: *MOVER' '$T/storescp.log') -ge 3 ]" \
	"$T/storescp.log"

rm -rf "$T/dest"/*
move_ m2 MOVER DEST -P -k QueryRetrieveLevel=PATIENT -k PatientID=P2
sleep 0.5
same "$T/dest" "$T/data/004.dcm" >"$T/m2.cmp" 2>&1
check "patient root, PATIENT level: P2's implicit VR instance, equal" "[ $? -eq 0 ]" "$T/m2.cmp" "$T/m2.log"

rm -rf "$T/dest"/*
move_ m3 MOVER NOSUCH -S -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=${S}1
check "an unknown Move Destination: A801H" "grep -qi 'a801\|MoveDestinationUnknown' '$T/m3.log'" "$T/m3.log"
move_ m4 MOVER NOHOST -S -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=${S}1
check "a peer without host and port as destination: A801H" "grep -qi 'a801\|MoveDestinationUnknown' '$T/m4.log'" \
	"$T/m4.log"
move_ m5 MOVER WRONGCERT -S -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=${S}1
check "a destination whose certificate is not the one bound to it: A702H, 3 failed, nothing stored" \
	"grep -qi 'a702\|OutOfResourcesSubOperations' '$T/m5.log' && [ -z \"\$(ls '$T/dest')\" ]" "$T/m5.log"
move_ m6 MOVER DEST -S -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=1.2.3.4.5.6
check "an identifier naming nothing: 0000H" "grep -q 'Received Final Move Response (Success)' '$T/m6.log'" "$T/m6.log"
# "\" is a list of two empty values, not a UID: it names no study (it
# retrieved the whole collection when empty values were dropped)
move_ m6b MOVER DEST -S -k QueryRetrieveLevel=STUDY -k "StudyInstanceUID=\\"
check "StudyInstanceUID '\\': A900H, nothing stored" \
	"grep -qi 'a900\|DataSetDoesNotMatchSOPClass' '$T/m6b.log' && [ -z \"\$(ls '$T/dest')\" ]" "$T/m6b.log"
move_ m7 NOMOVE DEST -S -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=${S}1
check "a peer without the move right: no C-MOVE context, nothing stored" \
	"grep -q 'No valid Presentation Context' '$T/m7.log' && [ -z \"\$(ls '$T/dest')\" ]" "$T/m7.log"

# ---- a destination that speaks TLS 1.2 only: openssl s_server -tls1_2
# with the certificate bound to [peer "TLS12"], behind a relay that keeps
# every byte the vault sends. Outgoing DICOM-TLS is TLS 1.3 only: the
# handshake fails, every sub-operation fails (A702H), nothing but the TLS
# ClientHello is sent (no A-ASSOCIATE-RQ in clear), the C-MOVE is audited
# as a failure ----
openssl s_server -tls1_2 -www -cert "$T/dest.crt" -key "$T/dest.key" -accept "127.0.0.1:$OP" -naccept 1 \
	</dev/null >"$T/s12.log" 2>&1 &
S12=$!
"$PY" - "$RP" "$OP" "$T/relay.bin" >"$T/relay.log" 2>&1 <<'PYEOF' &
import socket, sys, threading
lp, bp, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", lp))
ls.listen(4)
print("listening", flush=True)
def pump(a, b, f):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            if f is not None:
                f.write(d)
                f.flush()
            b.sendall(d)
    except OSError:
        pass
    for x in (a, b):
        try:
            x.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
while True:
    c, _ = ls.accept()
    u = socket.create_connection(("127.0.0.1", bp))
    f = open(out, "ab")
    threading.Thread(target=pump, args=(c, u, f), daemon=True).start()
    threading.Thread(target=pump, args=(u, c, None), daemon=True).start()
PYEOF
RELAY=$!
# (no test connection to either: s_server accepts one connection only)
wait_line "$S12" "$T/s12.log" '^ACCEPT'
wait_line "$RELAY" "$T/relay.log" '^listening'
check "openssl s_server -tls1_2 and the relay in front of it listening" "kill -0 $S12 && kill -0 $RELAY" \
	"$T/s12.log" "$T/relay.log"
rm -rf "$T/dest"/*
move_ m10 MOVER TLS12 -S -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=${S}1
check "C-MOVE to a TLS 1.2-only destination: A702H (unable to perform sub-operations), no pending response" \
	"grep -q 'Received Final Move Response (Refused: OutOfResourcesSubOperations)' '$T/m10.log' && [ \$(npending m10) -eq 0 ]" \
	"$T/m10.log"
sleep 0.3
"$PY" - "$T/relay.bin" >"$T/relay.chk" 2>&1 <<'PYEOF'
import sys
b = open(sys.argv[1], "rb").read()
# a TLS record of type 22 (handshake) starting with a ClientHello (1) is
# what was sent; neither the called AE title nor a DICOM UID in clear
ok = len(b) > 5 and b[0] == 0x16 and b[1] == 0x03 and b[5] == 0x01 and b"TLS12" not in b and \
    b"DICOMVAULT" not in b and b"1.2.840.10008" not in b
# every byte sent is in TLS records: handshake (22) or alert (21) only
i = 0
while ok and i < len(b):
    if i + 5 > len(b) or b[i] not in (0x15, 0x16):
        ok = False
        break
    i += 5 + int.from_bytes(b[i + 3:i + 5], "big")
print("bytes", len(b), "tls-records-only" if ok else "NOT-ONLY-TLS", b[:16].hex())
sys.exit(0 if ok else 1)
PYEOF
check "the vault sent the TLS 1.2-only peer only TLS handshake records, nothing in clear" "[ $? -eq 0 ]" \
	"$T/relay.chk"
check "s_server refused the ClientHello: unsupported protocol (the vault offers TLS 1.3 only)" \
	"grep -q 'tls_early_post_process_client_hello:unsupported protocol' '$T/s12.log'" "$T/s12.log"
check "the handshake failure logged with the destination" \
	"grep -q 'C-MOVE of MOVER to TLS12: TLS handshake with 127.0.0.1:$RP failed' '$T/err'" "$T/err"
grep -F '"action":"retrieve","outcome":"failure"' "$T/v/audit/audit.log" | grep -F '"user":"MOVER"' |
	grep -qF '"reason":"DIMSE C-MOVE study root STUDY to TLS12: 0 of 3 sent, 3 failed, 0 warning"'
check "that C-MOVE audited as a failure: 0 of 3 sent, 3 failed" "[ $? -eq 0 ]" "$T/v/audit/audit.log"
stop_pid "$RELAY"
RELAY=
stop_pid "$S12"
S12=

# ---- a JPEG Baseline and an RLE instance to a destination that takes
# uncompressed syntaxes only (storescp's default): decompressed for it ----
PYD=/usr/lib/python3/dist-packages/pydicom/data/test_files
mkdir -p "$T/cmp"
cp "$PYD/SC_rgb_jpeg_dcmtk.dcm" "$PYD/MR_small_RLE.dcm" "$T/cmp/"
storescu -xy -to 20 -ta 20 -td 20 "${TLS[@]}" -aet MOVER -aec DICOMVAULT 127.0.0.1 "$DP" "$T/cmp/SC_rgb_jpeg_dcmtk.dcm" \
	>"$T/s3" 2>&1 &&
	storescu -xr -to 20 -ta 20 -td 20 "${TLS[@]}" -aet MOVER -aec DICOMVAULT 127.0.0.1 "$DP" "$T/cmp/MR_small_RLE.dcm" \
		>>"$T/s3" 2>&1
check "storescu: a JPEG Baseline and an RLE instance" "[ $? -eq 0 ]" "$T/s3"
STUDIES=$("$PY" -c 'import sys, pydicom
print("\\".join(sorted({pydicom.dcmread(f, stop_before_pixels=True).StudyInstanceUID for f in sys.argv[1:]})))' \
	"$T"/cmp/*.dcm)
rm -rf "$T/dest"/*
move_ m8 MOVER DEST -S -k QueryRetrieveLevel=STUDY -k "StudyInstanceUID=$STUDIES"
check "to a destination without compressed syntaxes: success, 2 pending responses" \
	"grep -q 'Received Final Move Response (Success)' '$T/m8.log' && [ \$(npending m8) -eq 2 ]" "$T/m8.log"
sleep 0.5
"$PY" "$ROOT/tests/integration/lib/decompressed.py" "$T/dest" "$T"/cmp/*.dcm >"$T/m8.cmp" 2>&1
check "storescp received both decompressed, pixels as pydicom decodes the originals" "[ $? -eq 0 ]" "$T/m8.cmp" \
	"$T/storescp.log"

# ---- a JPEG Lossless (.70) CT, dcmcjpeg's, new UIDs, to the same
# destination: decoded (since session 20), CT_small's pixels byte for
# byte, Explicit VR Little Endian ----
mkdir -p "$T/ll"
dcmcjpeg +e1 "$PYD/CT_small.dcm" "$T/ll/ct70.dcm" >"$T/ll.err" 2>&1 &&
	"$PY" -c 'import sys, pydicom
d = pydicom.dcmread(sys.argv[1])
d.StudyInstanceUID = sys.argv[2]; d.SeriesInstanceUID = sys.argv[2] + ".1"
d.SOPInstanceUID = d.file_meta.MediaStorageSOPInstanceUID = sys.argv[2] + ".1.1"
d.save_as(sys.argv[1], write_like_original=False)' "$T/ll/ct70.dcm" "${S}70" >>"$T/ll.err" 2>&1 &&
	storescu -xs -to 20 -ta 20 -td 20 "${TLS[@]}" -aet MOVER -aec DICOMVAULT 127.0.0.1 "$DP" "$T/ll/ct70.dcm" \
		>>"$T/ll.err" 2>&1
check "storescu -xs: a JPEG Lossless CT stored in 1.2.840.10008.1.2.4.70" "[ $? -eq 0 ]" "$T/ll.err"
rm -rf "$T/dest"/*
move_ m8b MOVER DEST -S -k QueryRetrieveLevel=STUDY -k "StudyInstanceUID=${S}70"
sleep 0.5
"$PY" - "$T/dest" "$PYD/CT_small.dcm" >"$T/m8b.cmp" 2>&1 <<'PYEOF'
import glob, sys, pydicom
got = [pydicom.dcmread(f) for f in glob.glob(sys.argv[1] + "/*")]
want = pydicom.dcmread(sys.argv[2])
assert len(got) == 1, len(got)
g = got[0]
print(g.file_meta.TransferSyntaxUID, len(g.PixelData), len(want.PixelData))
assert g.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
assert g.PixelData == want.PixelData
assert "LossyImageCompression" not in g
print("decoded, equal")
PYEOF
check "to a destination without compressed syntaxes: the JPEG Lossless CT decoded, CT_small's pixels byte for byte" \
	"[ $? -eq 0 ] && grep -q 'Received Final Move Response (Success)' '$T/m8b.log'" "$T/m8b.cmp" "$T/m8b.log"

# ---- the same to a storescp that takes compressed syntaxes too (+xa):
# the stored bytes, not decompressed copies (a context of their own) ----
stop_pid "$SCP"
SCP=
rm -rf "$T/dest"/*
dest_start "$T/storescp2.log" +xa
move_ m9 MOVER DEST -S -k QueryRetrieveLevel=STUDY -k "StudyInstanceUID=$STUDIES"
sleep 0.5
"$PY" - "$T/dest" "$T"/cmp/*.dcm >"$T/m9.cmp" 2>&1 <<'PYEOF'
import glob, sys, pydicom
got = {}
for f in glob.glob(sys.argv[1] + "/*"):
    d = pydicom.dcmread(f)
    got[d.SOPInstanceUID] = d
for f in sys.argv[2:]:
    w = pydicom.dcmread(f)
    g = got.get(w.SOPInstanceUID)
    if g is None or g.file_meta.TransferSyntaxUID != w.file_meta.TransferSyntaxUID or g.PixelData != w.PixelData:
        print(f, "not received as stored:", g.file_meta.TransferSyntaxUID if g else None); sys.exit(1)
print("as stored", len(sys.argv) - 2)
PYEOF
check "to a destination that takes JPEG and RLE: both in their stored syntax, pixel bytes as stored" \
	"[ $? -eq 0 ] && grep -q 'Received Final Move Response (Success)' '$T/m9.log'" "$T/m9.cmp" "$T/m9.log" \
	"$T/storescp2.log"

n=$(grep '"retrieve"' "$T/v/audit/audit.log" | grep -c 'C-MOVE')
check "one retrieve audit record per C-MOVE with the mover as actor ($n)" \
	"[ $n -eq 11 ] && grep '\"retrieve\"' '$T/v/audit/audit.log' | grep 'C-MOVE' | grep -q '\"MOVER\"'"
# what they moved, as WADO-RS's records name it: m1 study 1 (two series),
# m2 P2's one instance
"$PY" - "$T/v/audit/audit.log" "$S" >"$T/moveobjs" 2>&1 <<'PYEOF'
import json, sys
S = sys.argv[2]
recs = [r for r in map(json.loads, open(sys.argv[1])) if r.get("action") == "retrieve" and
        "C-MOVE" in r.get("reason", "") and r.get("reason", "").endswith(" to send")][:2]
got = [(r["objects"].get("study"), r["objects"].get("series"), r["objects"].get("sop"), "patient" in r["objects"])
       for r in recs]
print(got)
sys.exit(0 if got == [(S + "1", None, None, True),
                      (S + "2", S + "2.1", "1.2.826.0.1.3680043.2.1143.29.4", True)] else 1)
PYEOF
check "C-MOVE records name the study, and the series and instance of a move of one" "[ $? -eq 0 ]" "$T/moveobjs"
check "server still running" "kill -0 $SRV"
stop_pid "$TUN"
TUN=
stop_pid "$SCP"
SCP=
kill -TERM "$SRV"
for _ in $(seq 100); do kill -0 "$SRV" 2>/dev/null || break; sleep 0.1; done
wait "$SRV" 2>/dev/null
rc=$?
SRV=
check "server stops cleanly on SIGTERM" "[ $rc -eq 0 ]" "$T/err"
"$DV" audit verify --vault "$T/v" >"$T/av" 2>&1
check "audit trail intact" "[ $? -eq 0 ]" "$T/av"
