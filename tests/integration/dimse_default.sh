#!/bin/bash
# dimse_default.sh: `dicomvault serve` starts DICOM-TLS beside HTTPS by
# default (SPEC section 2: [dicom] listen, 127.0.0.1:2762 as `init` writes
# it), also without a [peer] section, where it accepts no association (an
# unknown calling AE: A-ASSOCIATE-RJ). When it cannot listen: without a
# peer, a warning on stderr and HTTPS served alone; with a peer, or with
# the address given by --dicom, serve exits 1 naming the address. The
# tests listen on free ports (set in [dicom] listen), never on 2762.
# Prints ok/not ok lines. Env DV: the CLI under test; KEEP=1 keeps the
# directory. Layer: tests.
set -u
DV=${DV:-build/check/dicomvault}
PY=/usr/bin/python3
TEST=dimse_default
. "$(dirname "$0")/lib/dimse.sh"
tap_setup ddef
need echoscu openssl curl

BLOCK=
trap 'stop_pid "$BLOCK"; tap_cleanup' EXIT

vault_init || exit 0
grep -q '^listen = 127.0.0.1:2762$' "$T/v/dicomvault.conf"
check "init writes the default DICOM listen address (127.0.0.1:2762) into [dicom]" "[ $? -eq 0 ]" "$T/v/dicomvault.conf"
HP=$(free_port)
DP=$(free_port)
sed -i "s/^listen = 127.0.0.1:2762\$/listen = 127.0.0.1:$DP/" "$T/v/dicomvault.conf"
cert peer1

# serve_plain: serve with --http only; waits for "serving" or its exit
serve_plain() {
	: >"$T/out"   # not the last serve's "serving": the job truncates it only when it runs
	"$DV" serve --vault "$T/v" --http "127.0.0.1:$HP" "$@" >"$T/out" 2>"$T/err" &
	SRV=$!
	wait_line "$SRV" "$T/out" serving
}
healthz() { curl -sf --tlsv1.3 --cacert "$T/v/keys/tls.crt" "https://127.0.0.1:$HP/healthz" >/dev/null; }

# ---- no peer, no --dicom: the listener is up all the same ----
serve_plain
check "no [peer], no --dicom: DICOM-TLS started on [dicom] listen, 0 peers" \
	"kill -0 $SRV 2>/dev/null && grep -q 'DICOM-TLS port $DP AE DICOMVAULT, 0 peers' '$T/out'" "$T/out" "$T/err"
check "HTTPS served beside it" "healthz" "$T/err"
echoscu -to 10 -ta 10 -td 10 +tls "$T/peer1.key" "$T/peer1.crt" +cf "$T/v/keys/tls.crt" -aet NOBODY \
	-aec DICOMVAULT 127.0.0.1 "$DP" >"$T/e1" 2>&1
RC=$?
check "a C-ECHO there without any peer: association rejected" \
	"[ $RC -ne 0 ] && grep -qi 'reject' '$T/e1'" "$T/e1"
check "the refusal audited (unknown calling AE title)" \
	"grep -q 'unknown calling AE title' '$T/v/audit/audit.log'" "$T/v/audit/audit.log"
check "no warning at start" "! grep -q 'warning: serve_run' '$T/err'" "$T/err"
stop_pid "$SRV"
SRV=

# ---- the address taken by another process ----
"$PY" -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1)
print("listening", flush=True)
time.sleep(120)
' "$DP" >"$T/block.out" 2>&1 &
BLOCK=$!
wait_line "$BLOCK" "$T/block.out" listening
serve_plain
check "no [peer], address taken: HTTPS served all the same" "kill -0 $SRV 2>/dev/null && healthz" "$T/out" "$T/err"
check "... with a warning naming the address and why the server goes on" \
	"grep -q 'warning: .*DICOM-TLS not started: cannot listen on 127.0.0.1:$DP' '$T/err' && grep -q 'no \[peer\] is configured' '$T/err'" \
	"$T/err"
check "... and no DICOM-TLS line on stdout" "! grep -q 'DICOM-TLS port' '$T/out'" "$T/out"
stop_pid "$SRV"
SRV=

# --dicom names the listener: it must start
timeout 30 "$DV" serve --vault "$T/v" --http "127.0.0.1:$HP" --dicom "127.0.0.1:$DP" >"$T/out2" 2>"$T/err2"
RC=$?
check "--dicom on a taken address: exit 1 naming it" \
	"[ $RC -eq 1 ] && grep -q 'cannot listen on 127.0.0.1:$DP' '$T/err2'" "$T/err2"

# a peer needs the listener: it must start
cat >>"$T/v/dicomvault.conf" <<CONF

[peer "ECHOSCU"]
fingerprint = $(fp "$T/peer1.crt")
rights = echo
CONF
timeout 30 "$DV" serve --vault "$T/v" --http "127.0.0.1:$HP" >"$T/out3" 2>"$T/err3"
RC=$?
check "a [peer] and a taken address: exit 1 naming it" \
	"[ $RC -eq 1 ] && grep -q 'cannot listen on 127.0.0.1:$DP' '$T/err3'" "$T/err3"
stop_pid "$BLOCK"
BLOCK=

# ---- the peer served on the default-configured listener ----
serve_plain
echoscu -to 10 -ta 10 -td 10 +tls "$T/peer1.key" "$T/peer1.crt" +cf "$T/v/keys/tls.crt" -aet ECHOSCU \
	-aec DICOMVAULT 127.0.0.1 "$DP" >"$T/e2" 2>&1
check "the address free again, with the peer: its C-ECHO succeeds without --dicom" "[ $? -eq 0 ]" "$T/e2" "$T/err"
