#!/bin/bash
# crash_dimse.sh: kill -9 of `dicomvault serve` while DCMTK storescu +tls
# sends a stream of C-STOREs (SPEC section 6: "an acknowledged store is
# durable and either fully visible or absent after a crash"). The data
# sets are encrypted and written while they arrive (the early object,
# docs/internals/durability.md), so a kill lands inside a data set's
# receive, its syncs or its index commit. Three rounds at different
# moments, each on the same vault after a restart; then: every instance
# storescu was told was stored is indexed and its data set retrieves over
# WADO-RS equal to the file sent (pydicom), every indexed instance passes
# its integrity check, no orphan object or pending file is left, `audit
# verify` passes. Prints ok/not ok lines. Env DV: the CLI under test.
set -u
DV=${DV:-build/check/dicomvault}
PY=/usr/bin/python3
TEST=crash_dimse
TF=/usr/lib/python3/dist-packages/pydicom/data/test_files
T=$(mktemp -d)
SRV=
SCU=
. "$(dirname "$0")/lib/dimse.sh"
cleanup() {
	for p in $SRV $SCU; do kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
need storescu openssl
[ -f "$TF/CT_small.dcm" ] || { echo "# SKIP $TEST: no pydicom test files"; exit 0; }

printf 'correct horse battery staple\n' >"$T/pw"
chmod 600 "$T/pw"
"$DV" init --vault "$T/v" --password-file "$T/pw" --json >/dev/null 2>"$T/init.err" || { no "init" "$T/init.err"; exit 0; }
"$DV" token create --vault "$T/v" --user admin --json >"$T/tok.json" 2>/dev/null || { no "token create"; exit 0; }
TOK=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$T/tok.json")
cert scu SCU
printf '\n[peer "CRASHSCU"]\nfingerprint = %s\nrights = echo, store\n' "$(fp "$T/scu.crt")" >>"$T/v/dicomvault.conf"

# 3 x 40 distinct instances (CT_small under new SOP Instance UIDs, the
# pixel data made 8x longer so that a kill often lands inside one); the
# SOP Instance UID of each file in its name
"$PY" - "$TF/CT_small.dcm" "$T/files" <<'EOF' || { no "test files"; exit 0; }
import os, sys
import pydicom
src, out = sys.argv[1:]
for r in range(3):
    os.makedirs(os.path.join(out, str(r)))
    for i in range(40):
        d = pydicom.dcmread(src)
        d.Rows = d.Rows * 8
        d.PixelData = d.PixelData * 8
        uid = "1.2.826.0.1.3680043.8.498.77.%d.%d" % (r, i + 1)
        d.SOPInstanceUID = uid
        d.file_meta.MediaStorageSOPInstanceUID = uid
        d.save_as(os.path.join(out, str(r), "%03d_%s.dcm" % (i, uid)), write_like_original=False)
EOF

acks() { grep -c 'Received Store Response (Success)' "$T/scu.log" 2>/dev/null || true; }

# verify: every acknowledged instance (storescu's log, all rounds) and
# every index row, over WADO-RS, and the object store against the index
verify() {
	"$PY" - "$HP" "$T/v/keys/tls.crt" "$TOK" "$T/acked" "$T/files" "$T/v" "$(dirname "$0")/lib" <<'EOF'
import glob, io, os, sys, warnings
import pydicom
port, cafile, token, acked_file, files, vault, lib = sys.argv[1:]
sys.path.insert(0, lib)
import vault_state
warnings.simplefilter("ignore")
wado = vault_state.Wado("127.0.0.1", port, cafile, token)
sent = {}
for p in glob.glob(os.path.join(files, "*", "*.dcm")):
    sent[os.path.basename(p)[4:-4]] = p
acked = set(l.strip() for l in open(acked_file) if l.strip())


def compare(sop, got):
    if sop not in sent:
        return "indexed, never sent"
    if got is None:
        return "does not retrieve"
    a, b = pydicom.dcmread(io.BytesIO(got)), pydicom.dcmread(sent[sop])
    for d in (a, b):   # storescu drops the trailing padding CT_small has
        if (0xFFFC, 0xFFFC) in d:
            del d[0xFFFC, 0xFFFC]
    if a == b:
        return None
    diff = [str(t) for t in sorted(set(a.keys()) | set(b.keys())) if a.get(t) != b.get(t)]
    return "the data set retrieved differs from the one sent (%s)" % ", ".join(diff[:3])


sys.exit(vault_state.verify(vault, wado, acked, compare))
EOF
}

: >"$T/acked"
round=0
for moment in "3 0" "10 0.02" "20 0.02"; do
	set -- $moment
	want=$1 delay=$2
	round=$((round + 1))
	HP=$(free_port)
	DP=$(free_port)
	serve_dicom || exit 0
	storescu -v -to 30 +tls "$T/scu.key" "$T/scu.crt" +cf "$T/v/keys/tls.crt" -aet CRASHSCU -aec DICOMVAULT \
		127.0.0.1 "$DP" "$T/files/$((round - 1))"/*.dcm >"$T/scu.log" 2>&1 &
	SCU=$!
	# polled every 5 ms: a fast machine acknowledges 20 in ~40 ms (round
	# 3 once ran to the end of its 40 before the kill)
	for _ in $(seq 1200); do
		[ "$(acks)" -ge "$want" ] && break
		kill -0 "$SCU" 2>/dev/null || break
		sleep 0.005
	done
	sleep "$delay"
	kill -KILL "$SRV"
	wait "$SRV" 2>/dev/null
	wait "$SCU" 2>/dev/null
	SCU=
	SRV=
	# the files storescu was told were stored: each "Sending file" line
	# followed by a success response before the next one
	"$PY" - "$T/scu.log" >>"$T/acked" <<'EOF'
import os, re, sys
cur = None
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"Sending file: (\S+)", line)
    if m:
        cur = os.path.basename(m.group(1))[4:-4]
    elif cur and "Received Store Response (Success)" in line:
        print(cur)
        cur = None
EOF
	n=$(acks)
	check "round $round: storescu stopped by the kill after $n of 40 acknowledged (at least $want)" "[ $n -ge $want ] && [ $n -lt 40 ]" "$T/scu.log"
	serve_dicom || exit 0
	ok "round $round: server restarts after kill -9"
	verify >"$T/verify.out" 2>&1
	vrc=$?
	echo "# round $round: $(head -1 "$T/verify.out")"
	check "round $round: every acknowledged instance retrieves with the data set sent, every indexed one intact" "[ $vrc = 0 ]" "$T/verify.out"
	check "round $round: no orphan object or pending file after the restart" "head -1 $T/verify.out | grep -q 'orphans=0 tmp=0'"
	check "round $round: audit verify passes" "$DV audit verify --vault $T/v >$T/av.out 2>&1" "$T/av.out"
	stop_pid "$SRV"
	SRV=
done
