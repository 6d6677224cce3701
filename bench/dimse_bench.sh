#!/bin/bash
# dimse_bench.sh [DV]: issue 5's ingest figures. DCMTK storescu sends the
# 300-slice CT of bench/corpus/ct (527 KB a slice) to:
#   * dicomvault serve --dicom (DICOM-TLS 1.3, client certificate,
#     encryption at rest, fsync before each answer), on one association;
#   * the same with 8 associations at once: 8 storescu +tls started
#     together, the i-th sending slices i, i+8, i+16... (distinct
#     instances, 300 in all, into one fresh vault): every response must be
#     a success, the rate (300 / time until the last one ends) should be no
#     lower than one association's, and the server's peak RSS (VmHWM) under
#     64 MB;
#   * DCMTK storescp +tls +B (TLS, plain files, no fsync: the practical
#     limit of the machine), one association;
#   * Orthanc (plain TCP, no encryption), when installed, one association.
# Every figure is the median of DIMSE_REPS (default 3) runs, the runs of the
# four interleaved, each into a fresh vault / folder / Orthanc storage; all
# are removed only at the end (files deleted during the runs would slow
# every server's file creation: ext4 skips recently freed inodes).
# Prints a markdown table, the ratios and the checks; with DIMSE_OUT=FILE
# also writes the table there (bench/run.sh's section 8). Runs in a network
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
REPS=${DIMSE_REPS:-3}
NA=8   # associations of the concurrent figure
T=$(mktemp -d)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
die() { echo "dimse_bench: $*" >&2; exit 1; }
[ -x "$DV" ] || die "build first: make MODE=release build"
[ -d "$CT" ] || "$PY" bench/gen_corpus.py >/dev/null || die "no corpus"
FILES=("$CT"/*.dcm)
N=${#FILES[@]}
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
rate() { "$PY" -c "import sys; print('%.0f' % ($N / (float(sys.argv[2]) - float(sys.argv[1]))))" "$1" "$2"; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
stop() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
for c in peer dest; do
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$c" \
		-keyout "$T/$c.key" -out "$T/$c.crt" 2>/dev/null || die "openssl"
done
FP=$(openssl x509 -noout -fingerprint -sha256 -in "$T/peer.crt" | cut -d= -f2)
printf 'correct horse battery staple\n' >"$T/pw"
chmod 600 "$T/pw"

# dv_start DIR: a fresh vault in DIR and its server; sets DVPID and DP
dv_start() {
	"$DV" init --vault "$1" --password-file "$T/pw" >/dev/null || die "init"
	printf '\n[peer "BENCH"]\nfingerprint = %s\nrights = echo, store\n' "$FP" >>"$1/dicomvault.conf"
	DP=$(free_port)
	"$DV" serve --vault "$1" --http "127.0.0.1:$(free_port)" --dicom "127.0.0.1:$DP" >"$1.out" 2>"$1.err" &
	DVPID=$!
	PIDS+=("$DVPID")
	for _ in $(seq 100); do grep -q DICOM-TLS "$1.out" 2>/dev/null && return 0; sleep 0.1; done
	die "dicomvault serve did not start: $(tail -3 "$1.err")"
}
ok_count() { cat "$@" | grep -c 'Received Store Response (Success)'; }
hwm() { awk '/VmHWM/ {print int($2/1024)}' /proc/"$1"/status 2>/dev/null; }

DV1=() DV8=() SCP=() ORR=() RSS1=() RSS8=() FAIL8=0 FAIL1=0
for rep in $(seq "$REPS"); do
	# ---- dicomvault, one association ----
	dv_start "$T/v.$rep"
	# every vault has its own TLS certificate: trust this one
	cp "$T/v.$rep/keys/tls.crt" "$T/dv.crt"
	t0=$(now)
	storescu -v -to 60 -ta 60 -td 60 +tls "$T/peer.key" "$T/peer.crt" +cf "$T/dv.crt" -aet BENCH -aec DICOMVAULT \
		127.0.0.1 "$DP" "${FILES[@]}" >"$T/dv1.log" 2>&1
	t1=$(now)
	okn=$(ok_count "$T/dv1.log")
	[ "$okn" -eq "$N" ] || { FAIL1=$((FAIL1 + N - okn)); echo "dimse_bench: one association: $okn of $N stored: $(grep -E '^[EW]:' "$T/dv1.log" | tail -2)" >&2; }
	DV1+=("$(rate "$t0" "$t1")")
	RSS1+=("$(hwm "$DVPID")")
	stop "$DVPID"

	# ---- dicomvault, 8 associations at once ----
	dv_start "$T/w.$rep"
	cp "$T/w.$rep/keys/tls.crt" "$T/dv.crt"
	t0=$(now)
	SCUS=()
	for i in $(seq 0 $((NA - 1))); do
		share=()
		for ((j = i; j < N; j += NA)); do share+=("${FILES[j]}"); done
		storescu -v -to 60 -ta 60 -td 60 +tls "$T/peer.key" "$T/peer.crt" +cf "$T/dv.crt" -aet BENCH \
			-aec DICOMVAULT 127.0.0.1 "$DP" "${share[@]}" >"$T/dv8.$i.log" 2>&1 &
		SCUS+=($!)
	done
	for p in "${SCUS[@]}"; do wait "$p"; done
	t1=$(now)
	okn=$(ok_count "$T"/dv8.*.log)
	[ "$okn" -eq "$N" ] || { FAIL8=$((FAIL8 + N - okn)); echo "dimse_bench: $NA associations: $okn of $N stored: $(cat "$T"/dv8.*.log | grep -E '^[EW]:' | tail -2)" >&2; }
	DV8+=("$(rate "$t0" "$t1")")
	RSS8+=("$(hwm "$DVPID")")
	stop "$DVPID"

	# ---- storescp +tls +B (no fsync) ----
	SP=$(free_port)
	mkdir -p "$T/scp.$rep"
	storescp +tls "$T/dest.key" "$T/dest.crt" +cf "$T/peer.crt" +B -od "$T/scp.$rep" "$SP" >"$T/scp.log" 2>&1 &
	SPID=$!
	PIDS+=("$SPID")
	sleep 0.5
	t0=$(now)
	storescu -to 30 +tls "$T/peer.key" "$T/peer.crt" +cf "$T/dest.crt" -aec STORESCP 127.0.0.1 "$SP" "${FILES[@]}" \
		>"$T/scu2.log" 2>&1 || die "storescu into storescp failed: $(tail -3 "$T/scu2.log")"
	t1=$(now)
	SCP+=("$(rate "$t0" "$t1")")
	stop "$SPID"

	# ---- Orthanc (plain TCP), if installed ----
	if [ -x /usr/sbin/Orthanc ]; then
		OP=$(free_port)
		mkdir -p "$T/orthanc.$rep"
		cat >"$T/orthanc.json" <<JSON
{ "Name": "bench", "StorageDirectory": "$T/orthanc.$rep", "IndexDirectory": "$T/orthanc.$rep",
  "HttpPort": $(free_port), "DicomPort": $OP, "DicomAet": "ORTHANC", "RemoteAccessAllowed": false,
  "DicomServerEnabled": true, "TcpNoDelay": true, "Plugins": [] }
JSON
		: >"$T/orthanc.log"
		/usr/sbin/Orthanc "$T/orthanc.json" >"$T/orthanc.log" 2>&1 &
		OPID=$!
		PIDS+=("$OPID")
		for _ in $(seq 100); do grep -q 'DICOM server listening' "$T/orthanc.log" 2>/dev/null && break; sleep 0.1; done
		t0=$(now)
		if storescu -to 30 -aec ORTHANC 127.0.0.1 "$OP" "${FILES[@]}" >"$T/scu3.log" 2>&1; then
			t1=$(now)
			ORR+=("$(rate "$t0" "$t1")")
		fi
		stop "$OPID"
	fi
done

M1=$(median "${DV1[@]}") M8=$(median "${DV8[@]}") MS=$(median "${SCP[@]}") MO=$(median "${ORR[@]}")
R1=$(median "${RSS1[@]}") R8=$(printf '%s\n' "${RSS8[@]}" | sort -n | tail -1)
ratio() { "$PY" -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }
yn() { if "$PY" -c "import sys; sys.exit(0 if $1 else 1)"; then echo "met"; else echo "**MISSED**"; fi; }
{
	echo "Median of $REPS runs of each, interleaved (runs: dicomvault 1 association ${DV1[*]}; $NA associations ${DV8[*]}; storescp ${SCP[*]}; Orthanc ${ORR[*]:-none})."
	echo
	echo "| storescu of $N CT slices (527 KB each) | instances/s | peak RSS MB |"
	echo "|---|---:|---:|"
	echo "| dicomvault, 1 association (DICOM-TLS, encrypted, fsync'd) | $M1 | $R1 |"
	echo "| dicomvault, $NA associations at once (slices i, i+$NA, ... each), failures: $FAIL8 | $M8 | $R8 (max) |"
	echo "| DCMTK storescp +tls +B, 1 association (plain files, no fsync) | $MS | |"
	[ -n "$MO" ] && echo "| Orthanc, 1 association (plain TCP, no encryption, no fsync) | $MO | |"
	echo
	echo "| check | value | target | status |"
	echo "|---|---:|---|---|"
	echo "| dicomvault / storescp +tls +B, 1 association | $(ratio "$M1" "$MS")x | >= 0.8x | $(yn "$M1 >= 0.8 * $MS") |"
	[ -n "$MO" ] && echo "| dicomvault / Orthanc, 1 association | $(ratio "$M1" "$MO")x | >= 3x | $(yn "$M1 >= 3 * $MO") |"
	echo "| $NA associations: failed stores | $FAIL8 | 0 | $(yn "$FAIL8 == 0") |"
	echo "| $NA associations / 1 association, instances/s | $(ratio "$M8" "$M1")x | >= 1x | $(yn "$M8 >= $M1") |"
	echo "| $NA associations: server peak RSS | $R8 MB | < 64 MB | $(yn "${R8:-999} < 64") |"
} >"$T/table.md"
cat "$T/table.md"
[ -n "${DIMSE_OUT:-}" ] && cp "$T/table.md" "$DIMSE_OUT"
[ "$FAIL1" -eq 0 ] && [ "$FAIL8" -eq 0 ]
