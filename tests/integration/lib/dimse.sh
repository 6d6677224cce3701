# dimse.sh: shared by the DIMSE shell integration tests (sourced, not run).
# The caller sets TEST (its name in the ok/not ok lines) and PY.

ok() { echo "ok - $TEST: $1"; }
# no NAME [FILE...]: a "not ok" line, then the last lines of each FILE
no() {
	echo "not ok - $TEST: $1"
	shift
	for f in "$@"; do [ -f "$f" ] && sed 's/^/#   /' "$f" | tail -8; done
}
# check NAME CONDITION [FILE...]
check() { if eval "$2"; then ok "$1"; else no "$1" "${@:3}"; fi; }
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# fp CERT: its SHA-256 fingerprint as `openssl x509 -fingerprint` prints it
fp() { openssl x509 -noout -fingerprint -sha256 -in "$1" | cut -d= -f2; }
# stop_pid PID: TERM, up to 5 s, then KILL (a PID of ours only)
stop_pid() {
	local p=$1
	[ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 0
	kill -TERM "$p" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
	kill -KILL "$p" 2>/dev/null
}
