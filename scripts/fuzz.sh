#!/bin/bash
# fuzz.sh SECONDS [TARGET...]: runs each libFuzzer target build/fuzz/X_fuzz
# (built by `make fuzz-build`) for SECONDS over its seed corpus
# fuzz/corpus/X, and exits 1 if any target found a crash, leak, timeout or
# out-of-memory. With TARGET names (X), runs only those.
#
# The seeds are never written to: libFuzzer adds the inputs it finds to the
# first corpus directory, which is a scratch directory, and only reads the
# seed directory given second. Reproducers go to fuzz/findings/ (gitignored)
# as X-crash-<sha1>, X-leak-..., X-timeout-..., X-oom-..., with the log of
# the run as fuzz/findings/X.log.
#
# New inputs are not merged into the seed corpus unless FUZZ_MERGE=1 is set:
# then those of at most FUZZ_MERGE_MAX bytes (default 4096) that add coverage
# are copied into fuzz/corpus/X (libFuzzer -merge=1), for review before they
# are committed; the corpus replays under `make check`, so it must stay small.
#
# Environment: FUZZ_FLAGS (more libFuzzer flags, e.g. -dict=... or
# -max_len=...), FUZZ_KEEP=1 keeps the scratch corpora.
# Layer: scripts.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

SECONDS_PER_TARGET=${1:-60}
shift || true
case $SECONDS_PER_TARGET in
'' | *[!0-9]*)
	echo "usage: scripts/fuzz.sh SECONDS [TARGET...]" >&2
	exit 2
	;;
esac

FUZZ_B=build/fuzz
FINDINGS=fuzz/findings
MERGE=${FUZZ_MERGE:-0}
MERGE_MAX=${FUZZ_MERGE_MAX:-4096}
mkdir -p "$FINDINGS"

targets=()
if [ $# -gt 0 ]; then
	for n in "$@"; do
		targets+=("$FUZZ_B/${n%_fuzz}_fuzz")
	done
else
	for t in "$FUZZ_B"/*_fuzz; do
		[ -x "$t" ] && targets+=("$t")
	done
fi
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz.sh: no targets in $FUZZ_B (run: make fuzz-build)" >&2
	exit 1
fi

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/dv-fuzz.XXXXXX")
if [ "${FUZZ_KEEP:-0}" = 1 ]; then
	echo "fuzz.sh: scratch corpora kept in $SCRATCH"
else
	trap 'rm -rf "$SCRATCH"' EXIT
fi

failed=()
for t in "${targets[@]}"; do
	if [ ! -x "$t" ]; then
		echo "fuzz.sh: $t: not built" >&2
		failed+=("$(basename "$t")")
		continue
	fi
	name=$(basename "$t" _fuzz)
	seeds=fuzz/corpus/$name
	work=$SCRATCH/$name
	mkdir -p "$work" "$seeds"
	# targets whose inputs are another's too: its seeds are read as well
	also=()
	case $name in
	store | meta) also=(fuzz/corpus/part10) ;;
	esac
	stamp=$SCRATCH/$name.start
	touch "$stamp"
	before=$(find "$FINDINGS" -maxdepth 1 -name "$name-*" -type f | wc -l)
	echo "== $name: ${SECONDS_PER_TARGET}s over $seeds (new inputs in $work)"
	# shellcheck disable=SC2086
	"$t" -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=10 \
		-artifact_prefix="$FINDINGS/$name-" -print_final_stats=1 \
		${FUZZ_FLAGS:-} "$work" "$seeds" "${also[@]}" >"$FINDINGS/$name.log" 2>&1 &
	pid=$!
	wait "$pid"
	rc=$?
	# what a target keeps under /dev/shm (or $TMPDIR) is named after its
	# process; atexit does not run when libFuzzer stops at a finding
	rm -rf /dev/shm/dv-*-fuzz-"$pid" /dev/shm/dv-*-fuzz-"$pid".* \
		"${TMPDIR:-/tmp}"/dv-*-fuzz-"$pid" "${TMPDIR:-/tmp}"/dv-*-fuzz-"$pid".*
	after=$(find "$FINDINGS" -maxdepth 1 -name "$name-*" -type f | wc -l)
	grep -E '^(stat::|Done|#[0-9]+ +DONE)' "$FINDINGS/$name.log" | tail -4
	if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
		echo "fuzz.sh: $name: FAILED (exit $rc); reproducers:"
		find "$FINDINGS" -maxdepth 1 -name "$name-*" -type f -newer "$stamp" | sed 's/^/  /'
		grep -E 'ERROR: |SUMMARY: |[a-z0-9]+_fuzz: |runtime error' "$FINDINGS/$name.log" | head -5 | sed 's/^/  /'
		failed+=("$name")
		continue
	fi
	if [ "$MERGE" = 1 ]; then
		small=$SCRATCH/$name.small
		mkdir -p "$small"
		find "$work" -type f -size -"$((MERGE_MAX + 1))"c -exec cp {} "$small/" \;
		n0=$(find "$seeds" -type f | wc -l)
		"$t" -merge=1 -rss_limit_mb=2048 -timeout=10 "$seeds" "$small" >>"$FINDINGS/$name.log" 2>&1
		n1=$(find "$seeds" -type f | wc -l)
		echo "$name: merged $((n1 - n0)) new inputs of at most $MERGE_MAX bytes into $seeds"
	fi
done

if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz.sh: crashes found in: ${failed[*]} (see $FINDINGS/ and fuzz/README.md)"
	exit 1
fi
echo "fuzz.sh: no crashes"
exit 0
