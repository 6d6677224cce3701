#!/bin/bash
# run.sh BUILD_DIR: runs every test of dicomvault and ends with the line
# "N passed, N failed". Each test program prints "ok - name" or
# "not ok - name" lines; a program that exits non-zero without reporting a
# failure (a crash, a sanitizer report) counts as one failure.
set -uo pipefail
B=${1:-build/check}
cd "$(dirname "$0")/.."
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export DV="$B/dicomvault"
export DV_BUILD="$B"
PY=/usr/bin/python3
LOG=$(mktemp -d)
trap 'rm -rf "$LOG"' EXIT
pass=0
fail=0

run() {  # name, command...
	local name=$1
	shift
	local out="$LOG/out"
	"$@" >"$out" 2>"$LOG/err"
	local rc=$?
	local p f
	p=$(grep -c '^ok - ' "$out")
	f=$(grep -c '^not ok - ' "$out")
	grep -E '^(not ok - |#)' "$out" | head -50
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "not ok - $name exited $rc"
		tail -30 "$LOG/err"
		f=1
	elif [ "$f" -gt 0 ]; then
		tail -20 "$LOG/err"
	fi
	echo "$name: $p passed, $f failed"
	pass=$((pass + p))
	fail=$((fail + f))
}

for t in $(find "$B/tests" -type f -executable 2>/dev/null | sort); do
	run "unit/${t#$B/tests/}" "$t"
done
for t in $(find "$B/replay" -type f -executable 2>/dev/null | sort); do
	n=$(basename "$t" _fuzz)
	[ -d "fuzz/corpus/$n" ] && run "fuzz-replay/$n" "$t" "fuzz/corpus/$n"
done
for t in tests/integration/*.sh; do
	[ -e "$t" ] && run "integration/$(basename "$t")" bash "$t"
done
for t in tests/integration/*.py; do
	[ -e "$t" ] && run "integration/$(basename "$t")" "$PY" "$t" "$DV"
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
