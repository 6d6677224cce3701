#!/bin/bash
# dimse_bench.sh [DV]: issue 5's ingest figure. DCMTK storescu sends the
# 300-slice CT of bench/corpus/ct on one association to:
#   * dicomvault serve --dicom (DICOM-TLS 1.3, client certificate,
#     encryption at rest, fsync before each answer),
#   * DCMTK storescp +tls +B (TLS, plain files, no fsync: the practical
#     limit of the machine),
#   * Orthanc (plain TCP, no encryption), when installed.
# Prints instances/s of each and dicomvault's ratios. Runs in a network
# namespace of its own (loopback only: storescp cannot bind an address).
# Not part of `make check`; see docs/BENCH.md.
set -u
if [ -z "${DV_NETNS:-}" ] && unshare -n true 2>/dev/null; then
	exec unshare -n env DV_NETNS=1 bash -c 'ip link set lo up && exec bash "$0" "$@"' "$0" "$@"
fi
cd "$(dirname "$0")/.." || exit 1
# DCMTK reads TCP_NODELAY from the environment (dcmnet): set it, as the
# issue asks for every DICOM socket (no 40 ms delayed-ACK stalls)
export TCP_NODELAY=1
DV=${1:-build/release/dicomvault}
PY=/usr/bin/python3
CT=bench/corpus/ct
T=$(mktemp -d)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
die() { echo "dimse_bench: $*" >&2; exit 1; }
[ -d "$CT" ] || "$PY" bench/gen_corpus.py >/dev/null || die "no corpus"
N=$(ls "$CT"/*.dcm | wc -l)
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
rate() { "$PY" -c "import sys; print('%.0f' % ($N / (float(sys.argv[2]) - float(sys.argv[1]))))" "$1" "$2"; }
for c in peer dest; do
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$c" \
		-keyout "$T/$c.key" -out "$T/$c.crt" 2>/dev/null || die "openssl"
done
FP=$(openssl x509 -noout -fingerprint -sha256 -in "$T/peer.crt" | cut -d= -f2)

# ---- dicomvault ----
printf 'correct horse battery staple\n' >"$T/pw"
chmod 600 "$T/pw"
"$DV" init --vault "$T/v" --password-file "$T/pw" >/dev/null || die "init"
printf '\n[peer "BENCH"]\nfingerprint = %s\nrights = echo, store\n' "$FP" >>"$T/v/dicomvault.conf"
DP=$(free_port)
"$DV" serve --vault "$T/v" --http "127.0.0.1:$(free_port)" --dicom "127.0.0.1:$DP" >"$T/serve.out" 2>"$T/serve.err" &
PIDS+=($!)
for _ in $(seq 100); do grep -q DICOM-TLS "$T/serve.out" 2>/dev/null && break; sleep 0.1; done
t0=$(now)
storescu -to 30 -ta 30 -td 30 +tls "$T/peer.key" "$T/peer.crt" +cf "$T/v/keys/tls.crt" -aet BENCH -aec DICOMVAULT \
	127.0.0.1 "$DP" "$CT"/*.dcm >"$T/dv.log" 2>&1 || die "storescu into dicomvault failed: $(tail -3 "$T/dv.log")"
t1=$(now)
DVR=$(rate "$t0" "$t1")
DVRSS=$(awk '/VmHWM/ {print int($2/1024)}' /proc/"${PIDS[0]}"/status 2>/dev/null)

# ---- storescp +tls +B (no fsync) ----
SP=$(free_port)
mkdir -p "$T/scp"
storescp +tls "$T/dest.key" "$T/dest.crt" +cf "$T/peer.crt" +B -od "$T/scp" "$SP" >"$T/scp.log" 2>&1 &
PIDS+=($!)
sleep 0.5
t0=$(now)
storescu -to 30 +tls "$T/peer.key" "$T/peer.crt" +cf "$T/dest.crt" -aec STORESCP 127.0.0.1 "$SP" "$CT"/*.dcm \
	>"$T/scu2.log" 2>&1 || die "storescu into storescp failed: $(tail -3 "$T/scu2.log")"
t1=$(now)
SCPR=$(rate "$t0" "$t1")

# ---- Orthanc (plain TCP), if installed ----
ORR=
if [ -x /usr/sbin/Orthanc ]; then
	OP=$(free_port)
	mkdir -p "$T/orthanc"
	cat >"$T/orthanc.json" <<JSON
{ "Name": "bench", "StorageDirectory": "$T/orthanc", "IndexDirectory": "$T/orthanc",
  "HttpPort": $(free_port), "DicomPort": $OP, "DicomAet": "ORTHANC", "RemoteAccessAllowed": false,
  "DicomServerEnabled": true, "TcpNoDelay": true, "Plugins": [] }
JSON
	/usr/sbin/Orthanc "$T/orthanc.json" >"$T/orthanc.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 100); do grep -q 'DICOM server listening' "$T/orthanc.log" 2>/dev/null && break; sleep 0.1; done
	t0=$(now)
	if storescu -to 30 -aec ORTHANC 127.0.0.1 "$OP" "$CT"/*.dcm >"$T/scu3.log" 2>&1; then
		t1=$(now)
		ORR=$(rate "$t0" "$t1")
	fi
fi

echo "| storescu of $N CT slices, one association | instances/s |"
echo "|---|---:|"
echo "| dicomvault (DICOM-TLS, encrypted, fsync'd; peak RSS ${DVRSS:-?} MB) | $DVR |"
echo "| DCMTK storescp +tls +B (plain files, no fsync) | $SCPR |"
[ -n "$ORR" ] && echo "| Orthanc (plain TCP, no encryption) | $ORR |"
"$PY" -c "import sys; d,s=float(sys.argv[1]),float(sys.argv[2]); o=float(sys.argv[3]) if sys.argv[3] else 0
print('\ndicomvault / storescp: %.2fx (target >= 0.8x)' % (d/s))
if o: print('dicomvault / Orthanc: %.2fx (target >= 3x)' % (d/o))" "$DVR" "$SCPR" "${ORR:-}"
