# http.sh: shared by the shell integration tests that talk HTTPS to the real
# server (sourced, not run; tests/run.sh runs only tests/integration/*.sh).
# The caller defines DV, PY, T (its temporary folder, with the vault in
# $T/v), SRV= (stopped by its own cleanup) and no() (a "not ok" line):
# lib/tap.sh gives them.

. "$(dirname "${BASH_SOURCE[0]}")/wait.sh"

# dv_serve: `dicomvault serve` of $T/v on a free loopback port, waited for;
# sets PORT, U and SRV. Returns 1 (after a "not ok" line) if it does not
# start.
dv_serve() {
	PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	U="https://127.0.0.1:$PORT"
	"$DV" serve --vault "$T/v" --http "127.0.0.1:$PORT" >"$T/out" 2>"$T/err" &
	SRV=$!
	wait_line "$SRV" "$T/out" serving
	if ! kill -0 "$SRV" 2>/dev/null; then
		no "server running"
		tail -5 "$T/err"
		return 1
	fi
}

# dv_session: a vault in $T/v (vault_init of lib/tap.sh), dv_serve, and the admin's login with a TOTP code from
# oathtool; sets PW, SECRET, TOK and AUTH ("Authorization: Bearer TOK")
# besides dv_serve's PORT, U and SRV; a "login" check (the caller's
# check). Returns 1 (after a "not ok" line) if init or serve fails.
dv_session() {
	vault_init || return 1
	SECRET=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["totp_secret"])' "$T/init.json")
	dv_serve || return 1
	printf '{"username":"admin","password":"%s","totp":"%s"}' "$PW" "$(oathtool --totp -b "$SECRET")" |
		req login -H 'Content-Type: application/json' --data-binary @- "$U/api/auth/login"
	TOK=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$T/login.body" 2>/dev/null)
	check "login" "[ \$(code login) = 200 ] && [ -n '$TOK' ]"
	# shellcheck disable=SC2034  # for the caller
	AUTH="Authorization: Bearer $TOK"
}

# req NAME CURL-ARGS...: one request over TLS 1.3 trusting the vault's
# certificate; body, headers and status in $T/NAME.{body,hdr,code}.
req() {
	local n=$1
	shift
	curl -s --tlsv1.3 --cacert "$T/v/keys/tls.crt" --max-time 20 -o "$T/$n.body" -D "$T/$n.hdr" \
		-w '%{http_code}' "$@" >"$T/$n.code" 2>/dev/null
}
code() { cat "$T/$1.code"; }
hdr() { grep -i "^$2:" "$T/$1.hdr" | head -1 | cut -d: -f2- | tr -d '\r' | sed 's/^ //'; }
# problem NAME STATUS: the answer was STATUS with an RFC 9457 body saying so.
problem() {
	[ "$(code "$1")" = "$2" ] && hdr "$1" Content-Type | grep -q '^application/problem+json' &&
		"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["status"]==int(sys.argv[2]) else 1)' \
			"$T/$1.body" "$2"
}
