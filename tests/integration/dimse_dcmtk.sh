#!/bin/bash
# dimse_dcmtk.sh: the pure protocol layer (proto/ul.c, proto/dimse.c)
# against DCMTK on loopback, through tests/tools/ul_peer (a minimal peer,
# not the server). As acceptor: echoscu, storescu (the received data set
# must equal the file's, read by pydicom), storescu with a 4 KiB maximum
# PDU (many fragments), echoscu to a called AE that is not ours (rejected,
# reason 7), and a raw socket that stalls and sends garbage (aborted, the
# peer goes on serving). As requestor: C-ECHO to storescp. Prints
# "ok - NAME" / "not ok - NAME". Layer: tests.
#
# Environment: DV_BUILD (default build/check).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
B=${DV_BUILD:-build/check}
PEER=$B/tools/ul_peer
PY=/usr/bin/python3
CT=/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm
MR=/usr/lib/python3/dist-packages/pydicom/data/test_files/MR_small.dcm
T=$(mktemp -d "${TMPDIR:-/tmp}/dv-dimse.XXXXXX")
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT

ok() { echo "ok - $1"; }
notok() {
	echo "not ok - $1"
	shift
	for l in "$@"; do echo "#   $l"; done
}

for tool in echoscu storescu storescp; do
	if ! command -v $tool >/dev/null; then
		notok "dcmtk_$tool" "$tool not installed (scripts/install-deps.sh installs dcmtk)"
		exit 0
	fi
done

port() { echo $((20000 + (RANDOM % 20000))); }

# --- acceptor ---
P=$(port)
mkdir -p "$T/out"
"$PEER" scp "$P" 6 "$T/out" >"$T/peer.log" 2>"$T/peer.err" &
PEER_PID=$!
PIDS+=("$PEER_PID")
for _ in $(seq 50); do grep -q listening "$T/peer.log" 2>/dev/null && break; sleep 0.1; done

if echoscu -to 10 -aet ECHOSCU -aec DICOMVAULT 127.0.0.1 "$P" >"$T/e1" 2>&1; then ok echoscu; else notok echoscu "$(cat "$T/e1")"; fi

if storescu -to 10 -aet STORESCU -aec DICOMVAULT 127.0.0.1 "$P" "$CT" >"$T/s1" 2>&1; then
	ok storescu_ct
else
	notok storescu_ct "$(cat "$T/s1")"
fi

if storescu -to 10 -pdu 4096 -aet STORESCU -aec DICOMVAULT 127.0.0.1 "$P" "$MR" >"$T/s2" 2>&1; then
	ok storescu_small_pdu
else
	notok storescu_small_pdu "$(cat "$T/s2")"
fi

if echoscu -to 10 -aet ECHOSCU -aec SOMEONE_ELSE 127.0.0.1 "$P" >"$T/e2" 2>&1; then
	notok echoscu_wrong_called_ae "accepted"
elif grep -q "Called AE Title Not Recognized" "$T/e2"; then
	ok echoscu_wrong_called_ae
else
	notok echoscu_wrong_called_ae "$(cat "$T/e2")"
fi

# garbage instead of an A-ASSOCIATE-RQ: A-ABORT; then a stalled RQ header
# and a close: the peer goes on with the next association
"$PY" - "$P" >"$T/g1" 2>&1 <<'PYEOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"\x09\x00\x00\x00\x00\x02xx")
data = s.recv(100)
print("abort" if data[:1] == b"\x07" else "other %r" % data)
s.close()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"\x01\x00\x00\x00")
s.close()
PYEOF
if grep -q '^abort$' "$T/g1"; then ok garbage_aborted; else notok garbage_aborted "$(cat "$T/g1")"; fi

wait "$PEER_PID"
RC=$?
# exit 1: some associations were refused or aborted, as they should be
if { [ "$RC" -eq 0 ] || [ "$RC" -eq 1 ]; } && ! grep -qE 'Sanitizer|runtime error' "$T/peer.err"; then
	ok peer_survived
else
	notok peer_survived "exit $RC" "$(tail -5 "$T/peer.err")"
fi
if [ "$(grep -c 'association .* done' "$T/peer.log")" -eq 6 ]; then
	ok six_associations
else
	notok six_associations "$(cat "$T/peer.log")"
fi

# what storescu sent is what the file holds (pydicom)
if "$PY" - "$CT" "$T/out/0.raw" "$MR" "$T/out/1.raw" >"$T/cmp" 2>&1 <<'PYEOF'
import io, sys, warnings
import pydicom
from pydicom.filereader import read_dataset
warnings.simplefilter("ignore")
bad = 0
for f, raw in ((sys.argv[1], sys.argv[2]), (sys.argv[3], sys.argv[4])):
    orig = pydicom.dcmread(f)
    implicit = orig.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    got = read_dataset(io.BytesIO(open(raw, "rb").read()), is_implicit_VR=implicit, is_little_endian=True)
    for ds in (orig, got):
        for tag in [e.tag for e in ds if e.tag.element == 0 or e.tag == 0xFFFCFFFC]:
            del ds[tag]
    if orig != got:
        print("differs:", f)
        bad = 1
sys.exit(bad)
PYEOF
then ok stored_data_sets_equal; else notok stored_data_sets_equal "$(cat "$T/cmp")"; fi

# --- requestor ---
P=$(port)
mkdir -p "$T/scp"
storescp -aet STORESCP "$P" -od "$T/scp" >"$T/storescp.log" 2>&1 &
SCP_PID=$!
PIDS+=("$SCP_PID")
sleep 0.5
if "$PEER" scu "$P" STORESCP >"$T/scu.log" 2>&1 && grep -q "echo status 0000" "$T/scu.log" &&
	grep -q "release rp" "$T/scu.log"; then
	ok requestor_echo_to_storescp
else
	notok requestor_echo_to_storescp "$(cat "$T/scu.log")"
fi
kill "$SCP_PID" 2>/dev/null
