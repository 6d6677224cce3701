# dimse.sh: shared by the DIMSE shell integration tests (sourced, not run).
# The caller sets TEST (its name in the ok/not ok lines) and PY.

. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"   # tap_setup, ok, no, check, stop_pid, vault_init

# wait_port PORT: until something listens on 127.0.0.1:PORT (5 s at most)
wait_port() {
	for _ in $(seq 50); do
		"$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1" \
			2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# fp CERT: its SHA-256 fingerprint as `openssl x509 -fingerprint` prints it
fp() { openssl x509 -noout -fingerprint -sha256 -in "$1" | cut -d= -f2; }
# need TOOL...: ends the test with a SKIP line (exit 0) when a tool is not
# installed or the CLI has no `serve --dicom`
need() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null || { echo "# SKIP $TEST: no $tool (scripts/install-deps.sh)"; exit 0; }
	done
	"$DV" serve --help 2>/dev/null | grep -q -- '--dicom' || { echo "# SKIP $TEST: no --dicom"; exit 0; }
}
# cert NAME [CN]: a self-signed P-256 certificate $T/NAME.crt, key $T/NAME.key
cert() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=${2:-$1}" \
		-keyout "$T/$1.key" -out "$T/$1.crt" 2>/dev/null
}
# serve_dicom: `serve` of the vault $T/v with HTTPS on $HP and DICOM-TLS on
# $DP, output in $T/out and $T/err; SRV gets its PID. Returns 1, after a
# "not ok" line, when the DICOM listener does not come up.
serve_dicom() {
	"$DV" serve --vault "$T/v" --http "127.0.0.1:$HP" --dicom "127.0.0.1:$DP" >"$T/out" 2>"$T/err" &
	SRV=$!
	wait_line "$SRV" "$T/out" DICOM-TLS 300   # 30 s: a restart recovers first, on a loaded machine
	if ! kill -0 "$SRV" 2>/dev/null || ! grep -q 'DICOM-TLS' "$T/out"; then
		no "server running with DICOM-TLS" "$T/err"
		return 1
	fi
}
