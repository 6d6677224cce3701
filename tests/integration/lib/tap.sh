# tap.sh: the preamble shared by the shell integration tests (sourced, not
# run): their folder, the server they start, and the "ok - TEST: ..." /
# "not ok - TEST: ..." lines tests/run.sh counts. The caller sets TEST.

. "$(dirname "${BASH_SOURCE[0]}")/wait.sh"

# tap_setup NAME: the test's folder $T (dv-NAME.*; KEEP=1 keeps it), SRV
# empty, and an EXIT trap that stops the server $SRV and removes $T. A
# test with more processes sets its own trap, which ends with tap_cleanup.
tap_setup() {
	T=$(mktemp -d "${TMPDIR:-/tmp}/dv-$1.XXXXXX")
	SRV=
	trap tap_cleanup EXIT
}
tap_cleanup() {
	stop_pid "$SRV"
	if [ -n "${KEEP:-}" ]; then echo "# kept $T"; else rm -rf "$T"; fi
}
# stop_pid PID: TERM, up to 5 s, then KILL (a PID of ours only)
stop_pid() {
	local p=$1
	[ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 0
	kill -TERM "$p" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
	kill -KILL "$p" 2>/dev/null
}
ok() { echo "ok - $TEST: $1"; }
# no NAME [FILE...]: a "not ok" line, then the last lines of each FILE
no() {
	echo "not ok - $TEST: $1"
	shift
	for f in "$@"; do [ -f "$f" ] && sed 's/^/#   /' "$f" | tail -8; done
}
# check NAME CONDITION [FILE...]
check() { if eval "$2"; then ok "$1"; else no "$1" "${@:3}"; fi; }
# vault_init: a vault in $T/v whose admin's password is $PW (in $T/pw);
# returns 1 after a "not ok" line when init fails.
vault_init() {
	PW='correct horse battery staple'
	printf '%s\n' "$PW" >"$T/pw"
	chmod 600 "$T/pw"
	"$DV" init --vault "$T/v" --password-file "$T/pw" --json >"$T/init.json" 2>"$T/init.err" ||
		{ no "init" "$T/init.err"; return 1; }
}
