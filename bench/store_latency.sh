#!/bin/bash
# store_latency.sh [DV]: where the time goes after the last byte of a
# C-STORE. One association of storescu +tls (the 300-slice CT of
# bench/corpus/ct) into a fresh vault, the server traced with perf syscall
# tracepoints (cheap, unlike strace): per instance, the time from the
# connection thread's last recvfrom to its C-STORE-RSP (sendmsg), cut at the
# store's syscalls (renameat2 of a spare = put_begin, link = put_commit,
# the object's fsync, the WAL's fdatasync, the audit record's flock and
# fsync). Prints the median of each step and their sum. Needs perf and
# root (tracepoints). Not part of `make check`; see docs/BENCH.md.
set -u
if [ -z "${DV_NETNS:-}" ] && unshare -n true 2>/dev/null; then
	exec unshare -n env DV_NETNS=1 bash -c 'ip link set lo up && exec bash "$0" "$@"' "$0" "$@"
fi
cd "$(dirname "$0")/.." || exit 1
export TCP_NODELAY=1
DV=${1:-build/release/dicomvault}
T=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
die() { echo "store_latency: $*" >&2; exit 1; }
[ -x "$DV" ] || die "build first: make MODE=release build"
[ -d bench/corpus/ct ] || /usr/bin/python3 bench/gen_corpus.py >/dev/null || die "no corpus"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=peer" \
	-keyout "$T/peer.key" -out "$T/peer.crt" 2>/dev/null || die "openssl"
FP=$(openssl x509 -noout -fingerprint -sha256 -in "$T/peer.crt" | cut -d= -f2)
printf 'correct horse battery staple\n' >"$T/pw"
chmod 600 "$T/pw"
"$DV" init --vault "$T/v" --password-file "$T/pw" >/dev/null || die "init"
printf '\n[peer "BENCH"]\nfingerprint = %s\nrights = echo, store\n' "$FP" >>"$T/v/dicomvault.conf"
"$DV" serve --vault "$T/v" --http 127.0.0.1:18080 --dicom 127.0.0.1:11112 >"$T/out" 2>"$T/err" &
P=$!
for _ in $(seq 100); do grep -q DICOM-TLS "$T/out" 2>/dev/null && break; sleep 0.1; done
grep -q DICOM-TLS "$T/out" || die "serve did not start: $(tail -3 "$T/err")"
EV=""
for e in sys_exit_recvfrom sys_enter_sendmsg sys_enter_renameat2 sys_enter_link sys_enter_fsync sys_exit_fsync \
	sys_enter_fdatasync sys_exit_fdatasync sys_enter_flock; do EV="$EV -e syscalls:$e"; done
# shellcheck disable=SC2086
perf record $EV -o "$T/perf.data" -p "$P" 2>/dev/null &
PP=$!
sleep 0.5
storescu -to 60 +tls "$T/peer.key" "$T/peer.crt" +cf "$T/v/keys/tls.crt" -aet BENCH -aec DICOMVAULT \
	127.0.0.1 11112 bench/corpus/ct/*.dcm >"$T/scu.log" 2>&1 || die "storescu: $(tail -2 "$T/scu.log")"
kill -INT "$PP"
wait "$PP"
kill "$P"
wait "$P"
perf script -i "$T/perf.data" -F tid,time,event 2>/dev/null | /usr/bin/python3 -c '
import sys, statistics
ev = []
for line in sys.stdin:
    p = line.split()
    if len(p) >= 3:
        ev.append((int(p[0]), float(p[1].rstrip(":")), p[2].rstrip(":").split(":")[-1]))
sends = [t for t, _, e in ev if e == "sys_enter_sendmsg"]
main = max(set(sends), key=sends.count)          # the connection thread
steps, last, cur = {}, None, []
for tid, ts, e in ev:
    if tid != main:
        continue
    if e == "sys_exit_recvfrom":
        last, cur = ts, []
    elif last is not None:
        cur.append((ts, e))
        if e == "sys_enter_sendmsg":
            marks = [(last, "last recvfrom")] + cur
            for i in range(1, len(marks)):
                k = (i, marks[i - 1][1] + " -> " + marks[i][1])
                steps.setdefault(k, []).append((marks[i][0] - marks[i - 1][0]) * 1000)
            last = None
total = 0.0
print("| step (connection thread) | instances | median ms |\n|---|---:|---:|")
for (i, k), v in sorted(steps.items()):
    if len(v) >= 100:
        m = statistics.median(v)
        total += m
        print("| %s | %d | %.3f |" % (k, len(v), m))
print("| sum of the medians | | %.3f |" % total)
'
