#!/bin/bash
# dimse_badinput.sh: hostile peers against the DICOM-TLS listener of
# `dicomvault serve` (issue 5), each a pure Python client over TLS 1.3
# with an accepted peer's certificate (tests/integration/lib/dul.py): an
# unknown PDU type before and after the association, a PDV longer than its
# PDU, a PDU announcing more than the negotiated maximum, a P-DATA on a
# presentation context that was not negotiated, a data set no command
# announced, garbage, an A-ASSOCIATE-RQ whose items overrun it, and a peer
# that stalls after the A-ASSOCIATE-AC (the idle timeout, 2 s here). Each
# must end with an A-ABORT (or the connection closed), audited where the
# association was established, while echoscu in parallel still succeeds
# and what was stored before still exports intact. Prints ok/not ok lines.
# Env DV: the CLI under test; KEEP=1 keeps the directory. Layer: tests.
set -u
DV=${DV:-build/check/dicomvault}
PY=/usr/bin/python3
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TEST=dimse_badinput
. "$(dirname "$0")/lib/dimse.sh"
tap_setup dbad

need echoscu storescu openssl

cert peer1
[ -s "$T/peer1.crt" ] || { no "openssl made the certificate"; exit 0; }
vault_init || exit 0
HP=$(free_port)
DP=$(free_port)
sed -i 's/^\[dicom\]$/[dicom]\nartim = 2\nidle_timeout = 2/' "$T/v/dicomvault.conf"
cat >>"$T/v/dicomvault.conf" <<CONF

[peer "PEER"]
fingerprint = $(fp "$T/peer1.crt")
rights = echo, store, find
CONF
serve_dicom || exit 0
SC="$T/v/keys/tls.crt"
TLS=(+tls "$T/peer1.key" "$T/peer1.crt" +cf "$SC")
TF=/usr/lib/python3/dist-packages/pydicom/data/test_files
SAMPLES="$TF/CT_small.dcm $TF/MR_small.dcm $TF/rtplan.dcm"
storescu -to 20 -ta 20 -td 20 "${TLS[@]}" -aet PEER -aec DICOMVAULT 127.0.0.1 "$DP" $SAMPLES >"$T/s1" 2>&1
check "storescu stored three instances first" "[ $? -eq 0 ] && [ \$(grep -c '\"store\"' '$T/v/audit/audit.log') -eq 3 ]" \
	"$T/s1"

cat >"$T/bad.py" <<'PYEOF'
import socket, ssl, struct, sys, time
sys.path.insert(0, sys.argv[1] + "/tests/integration/lib")
import dul
port, d, case = int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = dul.connect(port, d + "/peer1.crt", d + "/peer1.key", d + "/v/keys/tls.crt", timeout=20)
CTX = [(1, dul.VERIFICATION, [dul.IMPLICIT])]
def associate():
    s.sendall(dul.assoc_rq("PEER", "DICOMVAULT", CTX))
    t, _ = dul.read_pdu(s)
    assert t == 2, "no A-ASSOCIATE-AC: %d" % t
ECHO = dul.command({0x00000002: dul.VERIFICATION, 0x00000100: 0x0030, 0x00000110: 1, 0x00000800: 0x0101})
t0 = time.time()
if case == "type-before":
    s.sendall(dul.pdu(0x09, bytes(4)))
elif case == "assoc-overrun":
    rq = bytearray(dul.assoc_rq("PEER", "DICOMVAULT", CTX))
    rq[6 + 68 + 2:6 + 68 + 4] = struct.pack(">H", 0x4000)   # application context item longer than the PDU
    s.sendall(bytes(rq))
else:
    associate()
    if case == "type-after":
        s.sendall(dul.pdu(0x42, bytes(10)))
    elif case == "pdv-overrun":
        p = bytearray(dul.pdata(1, ECHO, True))
        p[6:10] = struct.pack(">I", len(ECHO) + 200)   # PDV item longer than the PDU
        s.sendall(bytes(p))
    elif case == "over-max":
        s.sendall(struct.pack(">BxI", 4, 4 << 20) + bytes(1024))   # 4 MiB announced, 64 KiB negotiated
    elif case == "pcid":
        s.sendall(dul.pdata(3, ECHO, True))
    elif case == "data-first":
        s.sendall(dul.pdata(1, b"\x08\x00\x18\x00\x02\x00\x00\x001\x00", False))
    elif case == "garbage":
        s.sendall(bytes(range(256)) * 8)
    elif case == "stall":
        pass
    elif case == "echo":
        s.sendall(dul.pdata(1, ECHO, True))
        c, _ = dul.Messages(s).next()
        print("echo status %04X" % dul.us(c[0x00000900]))
        s.sendall(dul.RELEASE_RQ)
        print("release", dul.read_pdu(s)[0])
        sys.exit(0)
try:
    while True:
        t, body = dul.read_pdu(s)
        if t == 7:
            print("A-ABORT source %d reason %d after %.1f s" % (body[2], body[3], time.time() - t0))
            break
        print("PDU type %d" % t)
except (EOFError, ConnectionError, ssl.SSLError) as e:
    print("closed after %.1f s (%s)" % (time.time() - t0, type(e).__name__))
except socket.timeout:
    print("still open after %.1f s" % (time.time() - t0))
PYEOF
bad() { "$PY" "$T/bad.py" "$ROOT" "$DP" "$T" "$1" >"$T/b-$1" 2>&1; }
aborted() { grep -q '^A-ABORT\|^closed' "$T/b-$1"; }

bad echo
check "the raw client itself works (C-ECHO 0000H, released)" "grep -q 'echo status 0000' '$T/b-echo'" "$T/b-echo"

# the stall first, in the background: others are served meanwhile
bad stall &
STALL=$!
sleep 0.3
for c in type-before assoc-overrun type-after pdv-overrun over-max pcid data-first garbage; do
	bad $c
	check "$c: A-ABORT or closed" "aborted $c" "$T/b-$c" "$T/err"
done
check "an unknown PDU type after the association: A-ABORT (provider, unrecognized PDU)" \
	"grep -q '^A-ABORT source 2 reason 1 ' '$T/b-type-after'" "$T/b-type-after"
check "a P-DATA on a context not negotiated: A-ABORT from the provider" \
	"grep -q '^A-ABORT source 2 ' '$T/b-pcid'" "$T/b-pcid"
check "a PDU over the negotiated maximum: A-ABORT from its header" "grep -q '^A-ABORT' '$T/b-over-max'" "$T/b-over-max"
echoscu -to 10 -ta 10 -td 10 "${TLS[@]}" -aet PEER -aec DICOMVAULT 127.0.0.1 "$DP" >"$T/e1" 2>&1
check "echoscu succeeds while a peer stalls after its association" "[ $? -eq 0 ]" "$T/e1"
wait "$STALL"
check "a peer that stalls after the A-ASSOCIATE-AC: A-ABORT at the idle timeout (2 s)" \
	"grep -Eq '^A-ABORT source [02] reason [0-9]+ after [2-5]\.' '$T/b-stall'" "$T/b-stall"
check "idle abort audited" "grep '\"dicom-association\"' '$T/v/audit/audit.log' | grep -q 'idle timeout'"
bad echo
check "the raw client works again after all that" "grep -q 'echo status 0000' '$T/b-echo'" "$T/b-echo"
echoscu -to 10 -ta 10 -td 10 "${TLS[@]}" -aet PEER -aec DICOMVAULT 127.0.0.1 "$DP" >"$T/e2" 2>&1
check "echoscu succeeds afterwards" "[ $? -eq 0 ]" "$T/e2"

for f in $SAMPLES; do
	st=$("$PY" -c 'import pydicom,sys; print(pydicom.dcmread(sys.argv[1], stop_before_pixels=True).StudyInstanceUID)' "$f")
	"$DV" export --vault "$T/v" --study "$st" --out "$T/exp" --quiet <"$T/pw" >/dev/null 2>>"$T/exp.err"
done
"$PY" - "$T/exp" $SAMPLES >"$T/cmp" 2>&1 <<'PYEOF'
import os, sys, pydicom
exported = {}
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        exported[f[:-4]] = os.path.join(root, f)
bad = 0
for p in sys.argv[2:]:
    o = pydicom.dcmread(p)
    e = exported.get(str(o.SOPInstanceUID))
    if e is None:
        print("missing", p); bad += 1; continue
    e = pydicom.dcmread(e)
    for d in (o, e):
        for t in [t for t in d.keys() if t.element == 0 or t == 0xFFFCFFFC]:
            del d[t]
    if o != e or o.get("PixelData") != e.get("PixelData"):
        print("differs", p); bad += 1
print("compared", len(sys.argv) - 2, "bad", bad)
sys.exit(1 if bad else 0)
PYEOF
check "the instances stored before export intact" "[ $? -eq 0 ]" "$T/cmp" "$T/exp.err"
check "server still running" "kill -0 $SRV"
kill -TERM "$SRV"
for _ in $(seq 100); do kill -0 "$SRV" 2>/dev/null || break; sleep 0.1; done
wait "$SRV" 2>/dev/null
rc=$?
SRV=
check "server stops cleanly on SIGTERM (no sanitizer report)" "[ $rc -eq 0 ] && ! grep -q 'Sanitizer' '$T/err'" "$T/err"
"$DV" audit verify --vault "$T/v" >"$T/av" 2>&1
check "audit trail intact" "[ $? -eq 0 ]" "$T/av"
