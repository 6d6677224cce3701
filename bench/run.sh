#!/bin/bash
# run.sh: the dicomvault benchmark (`make bench` builds MODE=release first).
# Generates the synthetic corpus if needed (bench/gen_corpus.py), then times,
# side by side and with every input already in the page cache:
#   1. metadata parse of a 300-slice CT series: dicomvault (bench/read_bench
#      headers) vs pydicom dcmread(stop_before_pixels=True) vs DCMTK dcmdump;
#   2. text dump of the same series: `dicomvault dump` vs `dcmdump -M`;
#   3. a full streaming read of a ~500 MB multi-frame file (bench/read_bench
#      stream): MB/s and peak RSS, with pydicom and dcmdump for reference;
#   4. de-identification of the CT series folder: `dicomvault deid --profile
#      basic` vs GDCM `gdcmanon` (its PS3.15 basic profile, with a throwaway
#      certificate) vs DCMTK `dcmodify` erasing the same attributes in place.
#   5. DICOMweb servers (issue 3): dicomvault serve (HTTPS) vs Orthanc
#      (HTTP) started by bench/server_bench.py: STOW-RS, WADO-RS series,
#      QIDO-RS latency, peak RSS (BENCH_SERVERS=0 skips it; BENCH_QIDO_LARGE=1
#      adds the 100,000-study QIDO set);
#   6. the machine's own limits: SHA-256, AES-256-GCM, fsync'd writes
#      (bench/limits_bench);
#   7. the cost of authorisation: QIDO/WADO latency with 10,000 grants and
#      100 collections against one admin (bench/access_bench.py;
#      BENCH_ACCESS=0 skips it);
#   8. DIMSE C-STORE ingest (issue 5): storescu +tls into dicomvault, one
#      association and 8 at once, side by side with DCMTK storescp +tls +B
#      and Orthanc, with the ratios (bench/dimse_bench.sh; BENCH_DIMSE=0
#      skips it).
# Writes bench/out/results.md and prints it. See docs/BENCH.md.
# Every figure is the best of several runs: 2 x BENCH_REPS (default 5) runs
# of each command over the CT series (short, hence noisy) and passes of
# pydicom over it, BENCH_INNER_REPS (default 20) passes of read_bench headers
# in one process, BENCH_REPS runs of read_bench stream and of the dumps of the
# multi-frame file, 3 runs of the 500 MB full reads by pydicom and dcmdump,
# BENCH_DEID_REPS (default 3) runs of each de-identification, every one into
# a fresh output folder;
# each both in wall-clock time and in CPU time (user + system) of the process,
# the second being what to trust when other work keeps the machine busy.
# The 60-slice MR series of the corpus is not timed here (it is there for
# other benchmarks and tests).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=/usr/bin/python3
B=build/release
RB=$B/bench/read_bench
DV=$B/dicomvault
OUT=bench/out
REPS=${BENCH_REPS:-5}
INNER=${BENCH_INNER_REPS:-20}
DREPS=${BENCH_DEID_REPS:-3}
R2=$((2 * REPS))   # the short, noisy runs over the CT series

die() { echo "bench/run.sh: $*" >&2; exit 1; }

{ [ -x "$RB" ] && [ -x "$DV" ]; } || die "build first: make MODE=release build (or make bench)"
command -v dcmdump >/dev/null || die "dcmdump missing (apt-get install dcmtk; make deps)"
if ! command -v gdcmanon >/dev/null; then
	# scripts/install-deps.sh should list libgdcm-tools; until it does, install
	# it here when we can (make bench runs as root)
	if [ "$(id -u)" -eq 0 ]; then
		echo "bench/run.sh: installing libgdcm-tools (gdcmanon)" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libgdcm-tools >/dev/null ||
			die "apt-get install libgdcm-tools failed"
	fi
	command -v gdcmanon >/dev/null || die "gdcmanon missing (apt-get install libgdcm-tools)"
fi
command -v dcmodify >/dev/null || die "dcmodify missing (apt-get install dcmtk; make deps)"
command -v openssl >/dev/null || die "openssl missing (make deps)"
[ -x /usr/bin/time ] || die "/usr/bin/time missing (apt-get install time; make deps)"
"$PY" -c 'import pydicom, numpy' 2>/dev/null || die "$PY cannot import pydicom and numpy (make deps)"

mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

"$PY" bench/gen_corpus.py bench/corpus
CT=(bench/corpus/ct/*.dcm)
MF=bench/corpus/mf/enhanced_ct.dcm
NCT=${#CT[@]}
{ [ "$NCT" -eq 300 ] && [ -f "$MF" ]; } || die "corpus incomplete: remove bench/corpus and rerun"

warm() { cat "$@" >/dev/null; }   # page cache, before each tool
# kv KEY LINE: the value of KEY=... in a read_bench output line
kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
calc() { awk "BEGIN { printf \"%$1\", $2 }"; }
# runbest N CMD...: runs CMD N times, output discarded; prints the best wall
# time and the best CPU time (user + system, from wait4) in microseconds
cat >"$TMP/runbest.py" <<'EOF'
import os, subprocess, sys, time
n, cmd = int(sys.argv[1]), sys.argv[2:]
wall = cpu = float("inf")
for _ in range(n):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read()
    p.stderr.close()
    _, status, ru = os.wait4(p.pid, 0)
    t1 = time.perf_counter()
    p.returncode = 0
    if status != 0:
        sys.stderr.buffer.write(err)
        sys.exit("failed (status %d): %s" % (status, " ".join(cmd[:3])))
    wall = min(wall, t1 - t0)
    cpu = min(cpu, ru.ru_utime + ru.ru_stime)
print("x wall_us=%.0f cpu_us=%.0f" % (wall * 1e6, cpu * 1e6))
EOF
runbest() { "$PY" "$TMP/runbest.py" "$@"; }
# deidbest N IN_DIR WORK COPY CMD...: runs CMD N times, each time on a fresh
# WORK folder: removed first, then (COPY=copy) a copy of IN_DIR made for a
# tool that modifies in place, all outside the timing; IN_DIR is read before
# each run (page cache). CMD's output is discarded. Checks that WORK holds as
# many files as IN_DIR afterwards. Prints the best wall and CPU time (us).
cat >"$TMP/deidbest.py" <<'EOF'
import os, shutil, subprocess, sys, time
n, src, work, copy, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
names = sorted(os.listdir(src))
wall = cpu = float("inf")
for _ in range(n):
    shutil.rmtree(work, ignore_errors=True)
    if copy == "copy":
        shutil.copytree(src, work)
    for f in names:
        with open(os.path.join(src, f), "rb") as fh:
            while fh.read(1 << 20):
                pass
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read()
    p.stderr.close()
    _, status, ru = os.wait4(p.pid, 0)
    t1 = time.perf_counter()
    p.returncode = 0
    if status != 0:
        sys.stderr.buffer.write(err)
        sys.exit("failed (status %d): %s" % (status, " ".join(cmd[:3])))
    got = sum(len(fs) for _, _, fs in os.walk(work))
    if got != len(names):
        sys.exit("%s: %d files in %s, expected %d" % (cmd[0], got, work, len(names)))
    wall = min(wall, t1 - t0)
    cpu = min(cpu, ru.ru_utime + ru.ru_stime)
shutil.rmtree(work, ignore_errors=True)
print("x wall_us=%.0f cpu_us=%.0f" % (wall * 1e6, cpu * 1e6))
EOF
deidbest() { "$PY" "$TMP/deidbest.py" "$@"; }
# marginal ALL_US ONE_US: files/s of the NCT-1 files beyond the first
marginal() { calc .1f "($NCT - 1) / (($1 - $2) / 1e6)"; }
# rss_run NAME N CMD...: runs N times under /usr/bin/time -v; sets WALL_US to
# the best wall time and RSS_KB to the largest peak RSS; NAME.out keeps the
# output of the fastest run
rss_run() {
	local name=$1 n=$2 i s e rss
	shift 2
	WALL_US=0 RSS_KB=0
	for ((i = 0; i < n; i++)); do
		s=${EPOCHREALTIME/[.,]/}
		/usr/bin/time -v -o "$TMP/$name.time" "$@" >"$TMP/$name.run" 2>"$TMP/$name.err" ||
			{ cat "$TMP/$name.err" >&2; die "failed: $*"; }
		e=${EPOCHREALTIME/[.,]/}
		rss=$(sed -n 's/.*Maximum resident set size (kbytes): *//p' "$TMP/$name.time")
		((rss > RSS_KB)) && RSS_KB=$rss
		if ((WALL_US == 0 || e - s < WALL_US)); then
			WALL_US=$((e - s))
			mv "$TMP/$name.run" "$TMP/$name.out"
		fi
	done
}

CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
NPROC=$(nproc)
MEM_GB=$(awk '/MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)
PYDICOM_V=$("$PY" -c 'import pydicom; print(pydicom.__version__)')
DCMTK_V=$(dcmdump --version 2>/dev/null | sed -n 's/.*dcmdump v\([^ ]*\).*/\1/p' | head -1)
CC_V=$(${CC:-cc} --version 2>/dev/null | head -1)
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== machine: $NPROC cpus, $CPU, ${MEM_GB} GiB, load $LOAD"
echo "== pydicom $PYDICOM_V, dcmdump $DCMTK_V, $CC_V"

# ---- 1. metadata parse of the CT series ----
echo "== 1. metadata parse, $NCT CT files"
warm "${CT[@]}"
OURS_BULK=$("$RB" headers -r "$INNER" "${CT[@]}")
warm "${CT[@]}"
OURS_STOP=$("$RB" headers -r "$INNER" --stop "${CT[@]}")
echo "$OURS_BULK"
echo "$OURS_STOP"
if awk "BEGIN { exit !($(kv inst_per_s_best "$OURS_STOP") > $(kv inst_per_s_best "$OURS_BULK")) }"; then
	OURS=$OURS_STOP OTHER=$OURS_BULK
	OURS_V="stop_tag=(7FE0,0010), bulk_threshold=1024" OTHER_V="bulk_threshold=1024 only (pixel data skipped by seek)"
else
	OURS=$OURS_BULK OTHER=$OURS_STOP
	OURS_V="bulk_threshold=1024 (pixel data skipped by seek)" OTHER_V="stop_tag=(7FE0,0010), bulk_threshold=1024"
fi
H_W=$(kv inst_per_s_best "$OURS") H_C=$(kv inst_per_s_cpu "$OURS")
HO_W=$(kv inst_per_s_best "$OTHER") HO_C=$(kv inst_per_s_cpu "$OTHER")

warm "${CT[@]}"
PYD=$("$PY" - "$R2" "${CT[@]}" <<'EOF'
import sys, time
import pydicom
reps, files = int(sys.argv[1]), sys.argv[2:]

def lazy():
    n = 0
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        n += len(ds.SOPInstanceUID) + len(ds.PatientID)   # what an indexer would look at
    return n

def full():
    n = 0
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        for _ in ds.iterall():    # converts every raw value, sequences included
            n += 1
    return n

def best(name, fn):
    fn()                          # warm-up: imports, dictionary caches
    wall = cpu = float("inf")
    for _ in range(reps):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpu = min(cpu, time.process_time() - c0)
        wall = min(wall, time.perf_counter() - w0)
    return "%s_w=%.1f %s_c=%.1f" % (name, len(files) / wall, name, len(files) / cpu)

print("pydicom", best("lazy", lazy), best("full", full))
EOF
)
echo "$PYD"
PL_W=$(kv lazy_w "$PYD") PL_C=$(kv lazy_c "$PYD")
PF_W=$(kv full_w "$PYD") PF_C=$(kv full_c "$PYD")

# dcmdump: one process over all files; two ways of skipping the pixel data,
# each printing a single attribute per file so that parsing dominates
DCM_A=(-q -M +P "0008,0018")
DCM_B=(-q +sb "7fe0,0010" +P "0008,0018")
warm "${CT[@]}"
A_ALL=$(runbest "$R2" dcmdump "${DCM_A[@]}" "${CT[@]}")
B_ALL=$(runbest "$R2" dcmdump "${DCM_B[@]}" "${CT[@]}")
A_ONE=$(runbest "$R2" dcmdump "${DCM_A[@]}" "${CT[0]}")
B_ONE=$(runbest "$R2" dcmdump "${DCM_B[@]}" "${CT[0]}")
echo "dcmdump ${DCM_A[*]}: all $A_ALL; one $A_ONE"
echo "dcmdump ${DCM_B[*]}: all $B_ALL; one $B_ONE"
# start-up (dictionary load) plus one file: the quicker of both variants,
# as one slow run would flatter dcmdump's per-file rate
ONE_W=$(awk "BEGIN { a = $(kv wall_us "$A_ONE"); b = $(kv wall_us "$B_ONE"); print a < b ? a : b }")
ONE_C=$(awk "BEGIN { a = $(kv cpu_us "$A_ONE"); b = $(kv cpu_us "$B_ONE"); print a < b ? a : b }")
# per-file (marginal) rates: process start and dictionary load excluded
A_W=$(marginal "$(kv wall_us "$A_ALL")" "$ONE_W") A_C=$(marginal "$(kv cpu_us "$A_ALL")" "$ONE_C")
B_W=$(marginal "$(kv wall_us "$B_ALL")" "$ONE_W") B_C=$(marginal "$(kv cpu_us "$B_ALL")" "$ONE_C")
if awk "BEGIN { exit !($A_W >= $B_W) }"; then
	D_W=$A_W D_C=$A_C DCM_FLAGS="${DCM_A[*]}" DCM_ALL=$A_ALL
else
	D_W=$B_W D_C=$B_C DCM_FLAGS="${DCM_B[*]}" DCM_ALL=$B_ALL
fi
DW_W=$(calc .1f "$NCT / ($(kv wall_us "$DCM_ALL") / 1e6)")
DW_C=$(calc .1f "$NCT / ($(kv cpu_us "$DCM_ALL") / 1e6)")

# ---- 2. text dump of the CT series ----
echo "== 2. text dump, $NCT CT files"
warm "${CT[@]}"
DV_ALL=$(runbest "$R2" "$DV" dump "${CT[@]}")
DV_ONE=$(runbest "$R2" "$DV" dump "${CT[0]}")
DD_ALL=$(runbest "$R2" dcmdump -q -M "${CT[@]}")
DD_ONE=$(runbest "$R2" dcmdump -q -M "${CT[0]}")
echo "dicomvault dump: all $DV_ALL; one $DV_ONE"
echo "dcmdump -q -M: all $DD_ALL; one $DD_ONE"
DVW_W=$(calc .1f "$NCT / ($(kv wall_us "$DV_ALL") / 1e6)") DVW_C=$(calc .1f "$NCT / ($(kv cpu_us "$DV_ALL") / 1e6)")
DDW_W=$(calc .1f "$NCT / ($(kv wall_us "$DD_ALL") / 1e6)") DDW_C=$(calc .1f "$NCT / ($(kv cpu_us "$DD_ALL") / 1e6)")
DVM_W=$(marginal "$(kv wall_us "$DV_ALL")" "$(kv wall_us "$DV_ONE")")
DVM_C=$(marginal "$(kv cpu_us "$DV_ALL")" "$(kv cpu_us "$DV_ONE")")
DDM_W=$(marginal "$(kv wall_us "$DD_ALL")" "$(kv wall_us "$DD_ONE")")
DDM_C=$(marginal "$(kv cpu_us "$DD_ALL")" "$(kv cpu_us "$DD_ONE")")

# ---- 3. streaming read of the multi-frame file ----
MF_BYTES=$(stat -c %s "$MF")
MF_MB=$(calc .0f "$MF_BYTES / 1e6")
echo "== 3. streaming read of $MF ($MF_MB MB)"
warm "$MF"
rss_run stream 1 "$RB" stream -r "$REPS" "$MF"
STREAM=$(cat "$TMP/stream.out")
echo "$STREAM"
S_RSS=$(calc .1f "$RSS_KB / 1024")

warm "$MF"
MF_HDR=$("$RB" headers -r "$INNER" "$MF")
MF_HDR_MS=$(calc .2f "$(kv best_s "$MF_HDR") * 1000")

warm "$MF"
cat >"$TMP/pyfull.py" <<'EOF'
import sys, time
import pydicom
t0 = time.perf_counter()
ds = pydicom.dcmread(sys.argv[1])
n = len(ds.PixelData) + sum(1 for _ in ds.iterall())
t = time.perf_counter() - t0
print("secs=%.6f" % t)
EOF
rss_run pyfull 3 "$PY" "$TMP/pyfull.py" "$MF"
PYF_S=$(sed -n 's/secs=//p' "$TMP/pyfull.out")
PYF_MBS=$(calc .1f "$MF_BYTES / $PYF_S / 1e6")
PYF_RSS=$(calc .1f "$RSS_KB / 1024")

warm "$MF"
cat >"$TMP/pyhdr.py" <<'EOF'
import sys, time
import pydicom
pydicom.dcmread(sys.argv[1], stop_before_pixels=True)
lazy = full = 1e9
for _ in range(5):
    t0 = time.perf_counter()
    ds = pydicom.dcmread(sys.argv[1], stop_before_pixels=True)
    t1 = time.perf_counter()
    n = sum(1 for _ in ds.iterall())   # sequences are parsed lazily: force them
    t2 = time.perf_counter()
    lazy, full = min(lazy, t1 - t0), min(full, t2 - t0)
print("x lazy=%.6f full=%.6f" % (lazy, full))
EOF
rss_run pyhdr 1 "$PY" "$TMP/pyhdr.py" "$MF"
PYH=$(cat "$TMP/pyhdr.out")
PYH_LAZY_MS=$(calc .2f "$(kv lazy "$PYH") * 1000")
PYH_MS=$(calc .2f "$(kv full "$PYH") * 1000")

warm "$MF"
rss_run ddfull 3 dcmdump -q "$MF"
DDF_MBS=$(calc .1f "$MF_BYTES / $WALL_US")
DDF_RSS=$(calc .1f "$RSS_KB / 1024")
warm "$MF"
rss_run ddshort "$REPS" dcmdump -q -M "$MF"
DDS_MS=$(calc .1f "$WALL_US / 1000")
DDS_RSS=$(calc .1f "$RSS_KB / 1024")
warm "$MF"
rss_run dvdump "$REPS" "$DV" dump "$MF"
DVD_MS=$(calc .1f "$WALL_US / 1000")
DVD_RSS=$(calc .1f "$RSS_KB / 1024")

# ---- 4. de-identification of the CT series folder ----
CTDIR=bench/corpus/ct
CT_BYTES=$(cat "${CT[@]}" | wc -c)
CT_MB=$(calc .1f "$CT_BYTES / 1e6")
echo "== 4. de-identification of $CTDIR ($NCT files, $CT_MB MB)"
# outputs on tmpfs when there is room (2 x the series), so that no disk
# write-back runs during or between the timings; else under $TMP
DOUT=$TMP
if [ -d /dev/shm ] && [ -w /dev/shm ] &&
	(($(df -Pk /dev/shm | awk 'NR == 2 { print $4 }') > 2 * CT_BYTES / 1024 + 65536)); then
	DOUT=$(mktemp -d /dev/shm/dvbench.XXXXXX)
	trap 'rm -rf "$TMP" "$DOUT"' EXIT
fi
DOUT_FS=$(df -PT "$DOUT" | awk 'NR == 2 { print $2 }')
# (a) ours: a project key of 32 random bytes, mode 0600
(umask 077 && head -c 32 /dev/urandom >"$TMP/deid.key")
DV_DEID=("$DV" deid --profile basic --key-file "$TMP/deid.key" --quiet "$CTDIR" "$DOUT/dv")
# (b) gdcmanon -e (de-identify, its PS3.15 E.1 basic profile) encrypts the
# original values into the Encrypted Attributes Sequence, for which it needs
# an X.509 certificate (-c; the key is only for re-identification): a
# throwaway self-signed one. AES-256 (its default).
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=dicomvault bench" \
	-keyout "$TMP/gdcm.key" -out "$TMP/gdcm.pem" 2>/dev/null || die "openssl req failed"
GDCM_DEID=(gdcmanon -e -r --continue -c "$TMP/gdcm.pem" -i "$CTDIR" -o "$DOUT/gdcm")
GDCM_V=$(gdcmanon --version 2>&1 | sed -n 's/.*gdcm \([0-9.]*\).*/\1/p' | head -1)
# (c) dcmodify, in place on a fresh copy (not timed): erases the attributes
# the basic profile removes or empties in these files (dates, times,
# accession, institution, physicians, operators, station, descriptions,
# patient identity and characteristics, device serial, protocol, study ID,
# the referenced study and request attributes sequences) and every private
# attribute (-ep). It cannot map UIDs or make a pseudonym, so it does less.
DCMOD_TAGS=(0008,0020 0008,0021 0008,0022 0008,0023 0008,0030 0008,0031 0008,0032 0008,0033
	0008,0050 0008,0080 0008,0081 0008,0090 0008,1010 0008,1030 0008,103e 0008,1040 0008,1048
	0008,1070 0008,1110 0010,0010 0010,0020 0010,0021 0010,0030 0010,0040 0010,1000 0010,1010
	0010,1020 0010,1030 0010,2160 0018,1000 0018,1030 0020,0010 0040,0275)
DCMOD_ARGS=(-nb -ie)
for t in "${DCMOD_TAGS[@]}"; do DCMOD_ARGS+=(-ea "($t)"); done
DCMOD_ARGS+=(-ep)
DI_DV=$(deidbest "$DREPS" "$CTDIR" "$DOUT/dv" new "${DV_DEID[@]}")
DI_GD=$(deidbest "$DREPS" "$CTDIR" "$DOUT/gdcm" new "${GDCM_DEID[@]}")
DCMOD_FILES=()   # the copies deidbest makes before each run
for f in "${CT[@]}"; do DCMOD_FILES+=("$DOUT/dcmod/${f##*/}"); done
DI_DM=$(deidbest "$DREPS" "$CTDIR" "$DOUT/dcmod" copy dcmodify "${DCMOD_ARGS[@]}" "${DCMOD_FILES[@]}")
echo "dicomvault deid: $DI_DV"
echo "gdcmanon: $DI_GD"
echo "dcmodify: $DI_DM"
mbs() { calc .1f "$CT_BYTES / $(kv "$1" "$2")"; }   # bytes per us = MB/s
DV_MW=$(mbs wall_us "$DI_DV") DV_MC=$(mbs cpu_us "$DI_DV")
GD_MW=$(mbs wall_us "$DI_GD") GD_MC=$(mbs cpu_us "$DI_GD")
DM_MW=$(mbs wall_us "$DI_DM") DM_MC=$(mbs cpu_us "$DI_DM")

# ---- 5. DICOMweb servers: dicomvault vs Orthanc (issue 3) ----
# bench/server_bench.py starts both servers itself (fresh temporary stores,
# 127.0.0.1, free ports) and stops them; BENCH_SERVERS=0 skips the section.
# Orthanc and its DICOMweb plugin are installed here when missing (root).
SRV_MD=$OUT/server.md
rm -f "$SRV_MD" "$OUT/server_targets.md"
if [ "${BENCH_SERVERS:-1}" != 0 ]; then
	echo "== 5. DICOMweb servers: dicomvault vs Orthanc"
	if ! [ -x /usr/sbin/Orthanc ] || ! [ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]; then
		[ "$(id -u)" -eq 0 ] || die "Orthanc missing: apt-get install orthanc orthanc-dicomweb (or BENCH_SERVERS=0)"
		echo "bench/run.sh: installing orthanc orthanc-dicomweb" >&2
		# where a service manager runs, the package also starts the system's
		# own Orthanc (port 8042); the bench uses its own instance and ports
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends orthanc orthanc-dicomweb \
			>/dev/null || die "apt-get install orthanc orthanc-dicomweb failed"
	fi
	command -v oathtool >/dev/null || die "oathtool missing (make deps)"
	"$PY" bench/server_bench.py "$DV" bench/corpus "$OUT" || die "server benchmark failed"
fi

# ---- 7. the cost of authorisation (issue 4) ----
# bench/access_bench.py: QIDO and WADO metadata latency for the admin (one
# grant) against a physician in a vault of 100 collections and 10,000 grants
# (and a user holding 10,000 grants of its own). BENCH_ACCESS=0 skips it.
ACC_MD=$OUT/access.md
rm -f "$ACC_MD"
if [ "${BENCH_ACCESS:-1}" != 0 ]; then
	echo "== 7. authorisation cost"
	"$PY" bench/access_bench.py "$DV" >"$ACC_MD" || die "access benchmark failed"
fi

# ---- 8. DIMSE C-STORE ingest (issue 5) ----
# bench/dimse_bench.sh: storescu +tls of the CT series into dicomvault on one
# association and on 8 at once, against DCMTK storescp +tls +B and Orthanc,
# medians of DIMSE_REPS (3) runs; needs storescu/storescp (dcmtk) and
# unshare (a loopback-only network namespace). BENCH_DIMSE=0 skips it.
DIMSE_MD=$OUT/dimse.md
rm -f "$DIMSE_MD"
if [ "${BENCH_DIMSE:-1}" != 0 ]; then
	echo "== 8. DIMSE C-STORE ingest"
	if command -v storescu >/dev/null && command -v storescp >/dev/null; then
		DIMSE_OUT=$DIMSE_MD bash bench/dimse_bench.sh "$DV" >/dev/null || echo "bench/run.sh: dimse_bench reported failed stores" >&2
	else
		echo "bench/run.sh: storescu/storescp missing (dcmtk): section 8 skipped" >&2
	fi
fi

# ---- 6. the machine's own limits ----
echo "== 6. machine limits"
LB=$B/bench/limits_bench
LSHA=$("$LB" sha256 "$CT_MB")
LGCM=$("$LB" gcm "$CT_MB")
# on the file system of the servers' stores (BENCH_TMP, default /tmp)
LFS_DIR=$(mktemp -d "${BENCH_TMP:-/tmp}/dvfsync.XXXXXX")
LFS=$("$LB" fsync "$LFS_DIR" "${CT[@]}")
rm -rf "$LFS_DIR"
LFS_FS=$(df -PT "${BENCH_TMP:-/tmp}" | awk 'NR == 2 { print $2 }')
echo "$LSHA"
echo "$LGCM"
echo "$LFS"
SHA_LINE() { grep "^$1 " <<<"$LSHA"; }
GCM_LINE() { grep "^$1 " <<<"$LGCM"; }
# the same primitives in OpenSSL 3 (not used by the product): what the
# hardware gives with its best code (VAES/AVX-512 GCM, SHA-NI)
ospeed() { openssl speed -evp "$1" -bytes 65536 -seconds 1 2>/dev/null | tail -1 | awk '{ sub(/k$/, "", $NF); printf "%.0f", $NF / 1000 }'; }
OSSL_SHA=$(ospeed sha256)
OSSL_GCM=$(ospeed aes-256-gcm)
OSSL_V=$(openssl version | cut -d' ' -f1-2)
echo "openssl speed (64 KiB blocks): sha256 $OSSL_SHA MB/s, aes-256-gcm $OSSL_GCM MB/s"

# ---- results ----
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
r() { calc .1f "$1 / $2"; }                       # ratio
n0() { printf %.0f "$1"; }
# status: met only if both the wall-clock and the CPU-time figure meet it
status() {
	local w c
	w=$(awk "BEGIN { print ($1) ? 1 : 0 }") c=$(awk "BEGIN { print ($2) ? 1 : 0 }")
	case $w$c in
	11) echo "met" ;;
	01) echo "met in CPU time only (machine busy?)" ;;
	10) echo "met in wall time only" ;;
	*) echo "**MISSED**" ;;
	esac
}
RPY_W=$(r "$H_W" "$PL_W") RPY_C=$(r "$H_C" "$PL_C")
RDC_W=$(r "$H_W" "$D_W") RDC_C=$(r "$H_C" "$D_C")
RGD_W=$(r "$DV_MW" "$GD_MW") RGD_C=$(r "$DV_MC" "$GD_MC")
RDM_W=$(r "$DV_MW" "$DM_MW") RDM_C=$(r "$DV_MC" "$DM_MC")
S_MBS=$(kv mb_per_s_best "$STREAM") S_MED=$(kv mb_per_s_median "$STREAM") S_CPU=$(kv mb_per_s_cpu "$STREAM")
RES=$OUT/results.md
{
	echo "# dicomvault benchmark results"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src include 2>/dev/null || echo ' (+ local changes)')."
	echo "Machine: $NPROC CPUs ($CPU), ${MEM_GB} GiB RAM; load average $LOAD at start, $LOAD_END at the end."
	echo "Tools: $CC_V (-O2); pydicom $PYDICOM_V (Debian python3); DCMTK dcmdump $DCMTK_V (and dcmodify); GDCM gdcmanon $GDCM_V."
	echo "All inputs in the page cache. Each figure is the best of $R2 runs over the CT series (read_bench headers: $INNER passes in one process) and of $REPS for the multi-frame file (full reads: 3; de-identification: $DREPS, fresh output folder each), in wall-clock time and, separately, in CPU time (user + system) of the process, which other load on the machine disturbs less."
	echo
	echo "## Targets"
	echo
	echo "| measure | dicomvault (wall / CPU) | baseline (wall / CPU) | ratio (wall / CPU) | target | status |"
	echo "|---|---:|---:|---:|---|---|"
	echo "| CT metadata parse vs pydicom, instances/s | $(n0 "$H_W") / $(n0 "$H_C") | $(n0 "$PL_W") / $(n0 "$PL_C") | ${RPY_W}x / ${RPY_C}x | >= 20x | $(status "$RPY_W >= 20" "$RPY_C >= 20") |"
	echo "| CT metadata parse vs dcmdump, instances/s | $(n0 "$H_W") / $(n0 "$H_C") | $(n0 "$D_W") / $(n0 "$D_C") | ${RDC_W}x / ${RDC_C}x | >= 3x | $(status "$RDC_W >= 3" "$RDC_C >= 3") |"
	echo "| stream ${MF_MB} MB multi-frame, MB/s | $(n0 "$S_MBS") / $(n0 "$S_CPU") | | | >= 1000 | $(status "$S_MBS >= 1000" "$S_CPU >= 1000") |"
	echo "| stream ${MF_MB} MB multi-frame, peak RSS MB | $S_RSS | | | < 32 | $(status "$S_RSS < 32" "$S_RSS < 32") |"
	echo "| de-identify $NCT CT files (basic profile) vs gdcmanon, MB/s | $(n0 "$DV_MW") / $(n0 "$DV_MC") | $(n0 "$GD_MW") / $(n0 "$GD_MC") | ${RGD_W}x / ${RGD_C}x | >= 4x | $(status "$RGD_W >= 4" "$RGD_C >= 4") |"
	[ -f "$OUT/server_targets.md" ] && cat "$OUT/server_targets.md"
	if [ -f "$DIMSE_MD" ]; then
		# the check rows of bench/dimse_bench.sh, as target rows
		grep -E '^\| (dicomvault / |[0-9]+ associations)' "$DIMSE_MD" | grep -v 'instances/s |$' |
			awk -F'|' '{ printf "| DIMSE C-STORE (section 8): %s | | | %s | %s | %s |\n", $2, $3, $4, $5 }'
	fi
	if [ -f "$ACC_MD" ]; then
		ACC_RATIO=$(sed -n 's/.*worst ratio \([0-9.]*\)).*/\1/p' "$ACC_MD")
		echo "| QIDO and WADO p50, a physician among 10,000 grants and 100 collections, against the admin | ${ACC_RATIO}x | | | <= 1.10x | $(status "${ACC_RATIO:-9} <= 1.10" "${ACC_RATIO:-9} <= 1.10") |"
	fi
	echo
	echo "## 1. Metadata parse of $NCT CT files (512x512, ~527 KB each)"
	echo
	echo "| tool | how | instances/s, wall | instances/s, CPU | dicomvault is (wall / CPU) |"
	echo "|---|---|---:|---:|---:|"
	echo "| dicomvault | read_bench headers: $OURS_V | $(n0 "$H_W") | $(n0 "$H_C") | |"
	echo "| dicomvault | read_bench headers: $OTHER_V | $(n0 "$HO_W") | $(n0 "$HO_C") | |"
	echo "| pydicom $PYDICOM_V | dcmread(stop_before_pixels=True) + 2 attributes, in one process | $(n0 "$PL_W") | $(n0 "$PL_C") | ${RPY_W}x / ${RPY_C}x |"
	echo "| pydicom $PYDICOM_V | same + iterall() (sequences parsed, every value decoded) | $(n0 "$PF_W") | $(n0 "$PF_C") | $(r "$H_W" "$PF_W")x / $(r "$H_C" "$PF_C")x |"
	echo "| dcmdump $DCMTK_V | \`dcmdump $DCM_FLAGS\`, per file (start-up excluded) | $(n0 "$D_W") | $(n0 "$D_C") | ${RDC_W}x / ${RDC_C}x |"
	echo "| dcmdump $DCMTK_V | same, whole process over $NCT files | $(n0 "$DW_W") | $(n0 "$DW_C") | $(r "$H_W" "$DW_W")x / $(r "$H_C" "$DW_C")x |"
	echo
	echo "## 2. Text dump of $NCT CT files (output to /dev/null)"
	echo
	echo "| tool | instances/s, whole process (wall / CPU) | instances/s, per file, start-up excluded (wall / CPU) |"
	echo "|---|---:|---:|"
	echo "| \`dicomvault dump\` | $(n0 "$DVW_W") / $(n0 "$DVW_C") | $(n0 "$DVM_W") / $(n0 "$DVM_C") |"
	echo "| \`dcmdump -q -M\` | $(n0 "$DDW_W") / $(n0 "$DDW_C") | $(n0 "$DDM_W") / $(n0 "$DDM_C") |"
	echo "| dicomvault is | $(r "$DVW_W" "$DDW_W")x / $(r "$DVW_C" "$DDW_C")x | $(r "$DVM_W" "$DDM_W")x / $(r "$DVM_C" "$DDM_C")x |"
	echo
	echo "## 3. Multi-frame file, $MF_MB MB (Enhanced CT, 950 frames, 950-item functional groups)"
	echo
	echo "| tool | what | time or rate (wall) | peak RSS MB |"
	echo "|---|---|---:|---:|"
	echo "| dicomvault | read_bench stream: event reader, every value read (1 MiB chunks) | $(n0 "$S_MBS") MB/s (median $(n0 "$S_MED"), CPU $(n0 "$S_CPU")) | $S_RSS |"
	echo "| pydicom $PYDICOM_V | dcmread() whole file + PixelData + iterall() | $PYF_MBS MB/s | $PYF_RSS |"
	echo "| dcmdump $DCMTK_V | \`dcmdump -q\` (loads all values) | $DDF_MBS MB/s | $DDF_RSS |"
	echo "| dicomvault | metadata tree (dcm_file_read, bulk_threshold=1024) | $MF_HDR_MS ms | |"
	echo "| pydicom $PYDICOM_V | dcmread(stop_before_pixels=True): sequences kept as raw bytes (lazy) | $PYH_LAZY_MS ms | |"
	echo "| pydicom $PYDICOM_V | same + iterall(): sequences parsed, every value decoded | $PYH_MS ms | |"
	echo "| \`dicomvault dump\` | text dump, pixel data not loaded, whole process | $DVD_MS ms | $DVD_RSS |"
	echo "| \`dcmdump -q -M\` | text dump, pixel data not loaded, whole process | $DDS_MS ms | $DDS_RSS |"
	echo
	echo "## 4. De-identification of $NCT CT files, $CT_MB MB (folder in, folder out)"
	echo
	echo "MB/s = input bytes / time; outputs on $DOUT_FS, a fresh folder for each run."
	echo
	echo "| tool | command | MB/s, wall | MB/s, CPU | dicomvault is (wall / CPU) |"
	echo "|---|---|---:|---:|---:|"
	echo "| dicomvault | \`dicomvault deid --profile basic --key-file KEY --quiet IN OUT\` | $(n0 "$DV_MW") | $(n0 "$DV_MC") | |"
	echo "| GDCM $GDCM_V | \`gdcmanon -e -r --continue -c CERT.pem -i IN -o OUT\` (basic profile, original values encrypted into (0400,0500)) | $(n0 "$GD_MW") | $(n0 "$GD_MC") | ${RGD_W}x / ${RGD_C}x |"
	echo "| DCMTK $DCMTK_V | \`dcmodify -nb -ie -ea (gggg,eeee) x${#DCMOD_TAGS[@]} -ep FILE...\` in place on a copy (copy not timed) | $(n0 "$DM_MW") | $(n0 "$DM_MC") | ${RDM_W}x / ${RDM_C}x |"
	echo
	echo "gdcmanon's basic profile leaves private attributes, Patient's Address, every date and time and Issuer of Patient ID in place (checked on a copy with a private block and an address added); dcmodify only erases the listed attributes (no UID mapping, no pseudonym). dicomvault applies every row of PS3.15 Table E.1-1 (5 UIDs mapped per file, Patient ID pseudonym, attestation)."
} >"$RES"
{
	echo
	[ -f "$SRV_MD" ] && cat "$SRV_MD" && echo
	if [ -f "$ACC_MD" ]; then
		echo "## 7. The cost of authorisation (bench/access_bench.py)"
		echo
		cat "$ACC_MD"
		echo
	fi
	if [ -f "$DIMSE_MD" ]; then
		echo "## 8. DIMSE C-STORE ingest (bench/dimse_bench.sh)"
		echo
		cat "$DIMSE_MD"
		echo
	fi
	echo "## 6. The machine's own limits (what the ingest path is made of)"
	echo
	echo "MB/s = 10^6 bytes per second; best of 3. The CPU flags include $(grep -o -w -E 'sha_ni|aes|vaes|avx2|avx512f' /proc/cpuinfo | sort -u | tr '\n' ' ')."
	echo
	echo "| what | how | 1 thread | 2 threads (together) |"
	echo "|---|---|---:|---:|"
	echo "| SHA-256, MB/s | libsodium \`crypto_hash_sha256\` (what src/crypto/hash.c used until the perf branch) | $(kv mb_per_s_1thread "$(SHA_LINE sha256_libsodium)") | $(kv mb_per_s_2threads "$(SHA_LINE sha256_libsodium)") |"
	echo "| SHA-256, MB/s | GnuTLS \`gnutls_hash\` (nettle; uses SHA-NI when the CPU has it; what src/crypto/hash.c uses) | $(kv mb_per_s_1thread "$(SHA_LINE sha256_gnutls)") | $(kv mb_per_s_2threads "$(SHA_LINE sha256_gnutls)") |"
	echo "| SHA-256, MB/s | $OSSL_V \`openssl speed -evp sha256\`, 64 KiB blocks (reference, not used) | $OSSL_SHA | |"
	echo "| AES-256-GCM encrypt, MB/s | libsodium, precomputed key, 64 KiB chunks (what src/crypto/aead.c used until the perf branch) | $(kv mb_per_s_1thread "$(GCM_LINE aes256gcm_libsodium)") | $(kv mb_per_s_2threads "$(GCM_LINE aes256gcm_libsodium)") |"
	echo "| AES-256-GCM encrypt, MB/s | GnuTLS \`gnutls_aead_cipher_encrypt\`, 64 KiB chunks (the TLS record cipher, and src/crypto/aead.c's GCM) | $(kv mb_per_s_1thread "$(GCM_LINE aes256gcm_gnutls)") | $(kv mb_per_s_2threads "$(GCM_LINE aes256gcm_gnutls)") |"
	echo "| AES-256-GCM encrypt, MB/s | $OSSL_V \`openssl speed -evp aes-256-gcm\`, 64 KiB blocks (reference, not used) | $OSSL_GCM | |"
	echo
	echo "| fsync'd write of the $NCT CT files ($(kv mb "$LFS") MB) on $LFS_FS | time | rate |"
	echo "|---|---:|---:|"
	echo "| into one file, one fsync | $(kv one_file_ms "$LFS") ms | $(kv one_file_mb_per_s "$LFS") MB/s |"
	echo "| one file each, each fsync'd before the next (a durable store per request) | $(kv per_file_fsync_ms "$LFS") ms | $(kv per_file_fsync_files_per_s "$LFS") files/s, $(kv per_file_fsync_mb_per_s "$LFS") MB/s |"
	echo "| one file each, all written, then all fsync'd, then the directory (group commit) | $(kv group_fsync_ms "$LFS") ms | $(kv group_fsync_files_per_s "$LFS") files/s |"
} >>"$RES"
echo
cat "$RES"
