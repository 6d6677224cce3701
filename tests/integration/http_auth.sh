#!/bin/bash
# http_auth.sh: `dicomvault serve` over HTTPS: TLS 1.3 only, the login flow
# (password + TOTP, replay, lockout per account and per address), sessions
# by bearer token and cookie, logout, problem+json errors, request limits,
# a slow client, SIGTERM, and no secret in the server's log. Starts the real
# server on a free loopback port and talks to it with curl, openssl and
# oathtool. Prints ok/not ok lines. Env DV: the CLI under test; KEEP=1
# keeps the temporary directory (vault, server log) for a look.
set -u
DV=${DV:-build/check/dicomvault}
PY=/usr/bin/python3
. "$(dirname "$0")/lib/wait.sh"
TEST=http_auth
. "$(dirname "$0")/lib/tap.sh"
tap_setup http_auth

if ! "$DV" serve --help >/dev/null 2>&1; then
	echo "# SKIP http_auth: $DV has no serve command (src/daemon not built)"
	exit 0
fi

# ---- a vault and a server ----
PW='correct horse battery staple'
printf '%s\n' "$PW" >"$T/pw"
chmod 600 "$T/pw"
"$DV" init --vault "$T/v" --password-file "$T/pw" --json >"$T/init.json" 2>"$T/init.err" || { no "init"; exit 0; }
SECRET=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["totp_secret"])' "$T/init.json")
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
U="https://127.0.0.1:$PORT"
"$DV" serve --vault "$T/v" --http "127.0.0.1:$PORT" >"$T/out" 2>"$T/err" &
SRV=$!
wait_line "$SRV" "$T/out" serving
check "serve prints its URL" "grep -qx 'dicomvault: serving $U/' $T/out"
if ! kill -0 "$SRV" 2>/dev/null; then
	no "server running"
	tail -5 "$T/err"
	exit 0
fi

# req NAME [curl args...]: status in $T/NAME.code, body .body, headers .hdr
# (curl verifies the vault's self-signed certificate: it names 127.0.0.1)
req() {
	local n=$1
	shift
	curl -s --tlsv1.3 --cacert "$T/v/keys/tls.crt" --max-time 20 -o "$T/$n.body" -D "$T/$n.hdr" \
		-w '%{http_code}' "$@" >"$T/$n.code" 2>/dev/null
}
code() { cat "$T/$1.code"; }
hdr() { grep -i "^$2:" "$T/$1.hdr" | head -1 | cut -d: -f2- | tr -d '\r' | sed 's/^ //'; }
# a body that is a problem+json with this status
problem() {
	[ "$(code "$1")" = "$2" ] && hdr "$1" Content-Type | grep -q '^application/problem+json' &&
		"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
ok = set(d) >= {"type", "title", "status", "detail"} and d["status"] == int(sys.argv[2])
ok = ok and all(isinstance(d[k], str) for k in ("type", "title", "detail"))
sys.exit(0 if ok else 1)' "$T/$1.body" "$2"
}
# login NAME USER PASSWORD CODE [curl args...]; the body goes through stdin
login() {
	local n=$1 u=$2 p=$3 c=$4
	shift 4
	printf '{"username":"%s","password":"%s","totp":"%s"}' "$u" "$p" "$c" |
		req "$n" -H 'Content-Type: application/json' --data-binary @- "$@" "$U/api/auth/login"
}
totp() { oathtool --totp -b -N "$1 seconds" "$SECRET"; }
token() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$T/$1.body" 2>/dev/null; }
from() { echo "--interface 127.0.0.$1"; }   # a source address of our own per test

# ---- public endpoints and headers ----
req health "$U/healthz"
check "healthz 200 {\"status\":\"ok\"}" "[ \$(code health) = 200 ] && [ \"\$(cat $T/health.body)\" = '{\"status\":\"ok\"}' ]"
check "healthz is application/json" "hdr health Content-Type | grep -q '^application/json'"
check "HSTS on every response" "hdr health Strict-Transport-Security | grep -q 'max-age='"
check "nosniff" "[ \"\$(hdr health X-Content-Type-Options)\" = nosniff ]"
check "Referrer-Policy no-referrer" "[ \"\$(hdr health Referrer-Policy)\" = no-referrer ]"
check "Cache-Control no-store" "[ \"\$(hdr health Cache-Control)\" = no-store ]"
req page "$U/"
check "login page 200 text/html" "[ \$(code page) = 200 ] && hdr page Content-Type | grep -q '^text/html'"
check "login page CSP default-src 'self'" "hdr page Content-Security-Policy | grep -q \"default-src 'self'\""
check "login page has no external resource" "grep -q '<form' $T/page.body && ! grep -qiE '(src|href)=\"(https?:)?//' $T/page.body && ! grep -q '<script>' $T/page.body"
req js "$U/static/login.js"
check "login script served" "[ \$(code js) = 200 ] && grep -q '/api/auth/login' $T/js.body"

# ---- logins: start well inside a TOTP step so that codes of the
# previous, current and next step stay valid while we use them ----
s=$(($(date +%s) % 30))
[ "$s" -gt 20 ] && sleep $((31 - s))
C_PREV=$(totp -30)
C_NOW=$(totp +0)
C_NEXT=$(totp +30)
C_FAR=$(totp +90)
C_BAD=$(printf '%06d' $(((10#$C_NOW + 1) % 1000000)))

login a admin "$PW" "$C_PREV"
T1=$(token a)
check "login (code of the previous step) 200" "[ \$(code a) = 200 ]"
check "token is 256 bits of hex" "[[ \$T1 =~ ^[0-9a-f]{64}\$ ]]"
check "expires_in is the session lifetime" "$PY -c 'import json,sys; sys.exit(0 if json.load(open(\"$T/a.body\"))[\"expires_in\"] == 43200 else 1)'"
check "Set-Cookie __Host-dv_session HttpOnly Secure SameSite=Strict Path=/" "[ \"\$(hdr a Set-Cookie)\" = \"__Host-dv_session=\$T1; HttpOnly; Secure; SameSite=Strict; Path=/\" ]"
check "login response not cacheable" "[ \"\$(hdr a Cache-Control)\" = no-store ]"
req who1 -H "Authorization: Bearer $T1" "$U/api/auth/whoami"
check "whoami with bearer" "[ \$(code who1) = 200 ] && [ \"\$(cat $T/who1.body)\" = '{\"username\":\"admin\",\"role\":\"admin\"}' ]"
req who2 -H "Cookie: __Host-dv_session=$T1" "$U/api/auth/whoami"
check "whoami with cookie" "[ \$(code who2) = 200 ] && grep -q '\"username\":\"admin\"' $T/who2.body"
# the cookie's name has the __Host- prefix (since session 25): a cookie
# without it (as a sibling subdomain could plant) is not the session's
req who3 -H "Cookie: dv_session=$T1" "$U/api/auth/whoami"
check "a cookie named without the __Host- prefix: 401" "[ \$(code who3) = 401 ]"

login replay admin "$PW" "$C_PREV" $(from 11)
check "same TOTP code again refused (replay) 401" "problem replay 401"
login badpw admin 'not the password' "$C_NOW" $(from 12)
check "wrong password 401" "problem badpw 401"
login badtotp admin "$PW" "$C_BAD" $(from 13)
check "wrong TOTP 401" "problem badtotp 401"
login far admin "$PW" "$C_FAR" $(from 14)
check "TOTP code three steps ahead 401" "problem far 401"
login nouser nobody "$PW" "$C_NOW" $(from 15)
check "unknown user 401" "problem nouser 401"
check "same answer for unknown user, bad password, bad TOTP, replay" "cmp -s $T/nouser.body $T/badpw.body && cmp -s $T/badpw.body $T/badtotp.body && cmp -s $T/badtotp.body $T/replay.body"
check "401 carries WWW-Authenticate" "hdr badpw WWW-Authenticate | grep -q '^Bearer'"

login b admin "$PW" "$C_NOW"
T2=$(token b)
check "login (code of this step) 200" "[ \$(code b) = 200 ] && [[ \$T2 =~ ^[0-9a-f]{64}\$ ]] && [ \"\$T2\" != \"\$T1\" ]"
# the next step's code (one step of skew), in three concurrent logins:
# it is accepted once
pids=
for i in 1 2 3; do
	login "race$i" admin "$PW" "$C_NEXT" $(from $((50 + i))) &
	pids="$pids $!"
done
wait $pids
T3=
n200=0
n401=0
for i in 1 2 3; do
	case $(code "race$i") in
	200) T3=$(token "race$i"); n200=$((n200 + 1)) ;;
	401) n401=$((n401 + 1)) ;;
	esac
done
check "code of the next step accepted (one step of skew)" "[ -n \"\$T3\" ]"
check "the same code in 3 concurrent logins: exactly one 200, the others 401" "[ $n200 -eq 1 ] && [ $n401 -eq 2 ]"

# ---- every other path needs a session ----
for p in /api/anything /dicom-web/nosuch /api/nosuch /healthz/ /api/auth/whoamix; do
	req other "$U$p"
	check "GET $p without credentials 401 problem+json" "problem other 401"
	req other -H "Authorization: Bearer $T2" "$U$p"
	check "GET $p with a session 404 problem+json" "problem other 404"
done
req other -H "Authorization: Bearer 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" "$U/api/auth/whoami"
check "unknown token 401" "problem other 401"
req other -H "Authorization: Basic YWRtaW46eA==" "$U/api/auth/whoami"
check "other Authorization scheme 401" "problem other 401"
req other -H "Cookie: __Host-dv_session=../../etc" "$U/api/auth/whoami"
check "malformed cookie 401" "problem other 401"
req other -X POST -H "Authorization: Bearer $T2" -H 'Content-Type: application/json' --data-binary '{}' "$U/api/no-such-route"
check "POST elsewhere with a session 404" "problem other 404"
req other "$U/api/auth/login"
check "GET /api/auth/login 405 with Allow: POST" "problem other 405 && [ \"\$(hdr other Allow)\" = POST ]"
req other -X DELETE -H "Authorization: Bearer $T2" "$U/api/auth/whoami"
check "DELETE whoami 405" "problem other 405"

# ---- bad bodies ----
badbody() {  # name, body
	printf '%s' "$2" | req "$1" -H 'Content-Type: application/json' --data-binary @- $(from 16) "$U/api/auth/login"
}
badbody b1 '{"username":"admin","password":'
check "malformed JSON 400 problem+json" "problem b1 400"
badbody b2 "{\"username\":\"admin\",\"password\":\"$PW\",\"totp\":123456}"
check "TOTP as a number 400" "problem b2 400"
badbody b3 "{\"username\":\"admin\",\"password\":\"$PW\"}"
check "missing totp 400" "problem b3 400"
badbody b4 '["admin"]'
check "array instead of object 400" "problem b4 400"
badbody b5 "{\"username\":\"admin\",\"password\":\"$PW\",\"totp\":\"000000\",\"admin\":true}"
check "unexpected member 400" "problem b5 400"
badbody b6 "{\"username\":[\"admin\"],\"password\":\"$PW\",\"totp\":\"000000\"}"
check "username not a string 400" "problem b6 400"
badbody b7 "$("$PY" -c 'print("[" * 100 + "]" * 100)')"
check "deeply nested JSON 400" "problem b7 400"
badbody b8 "{\"username\":\"admin\",\"username\":\"x\",\"password\":\"$PW\",\"totp\":\"000000\"}"
check "duplicate member 400" "problem b8 400"
badbody b9 "{\"username\":\"admin\",\"password\":\"a\\u0000b\",\"totp\":\"000000\"}"
check "NUL in a string 400" "problem b9 400"
printf '{}' | req b10 -H 'Content-Type: text/plain' --data-binary @- $(from 16) "$U/api/auth/login"
check "wrong Content-Type 415" "problem b10 415"
"$PY" -c 'print("{\"username\":\"" + "a" * 100000 + "\"}")' >"$T/big.json"
req big -H 'Content-Type: application/json' --data-binary @"$T/big.json" $(from 16) "$U/api/auth/login"
check "oversized body (Content-Length) 413 problem+json" "problem big 413"
req bigc -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' --data-binary @"$T/big.json" $(from 16) "$U/api/auth/login"
check "oversized chunked body 413 problem+json (while streaming)" "problem bigc 413"
head -c 5000000 /dev/zero >"$T/huge"
req huge -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' --data-binary @"$T/huge" $(from 16) "$U/api/auth/login"
check "endless chunked body: connection closed" "[ \$(code huge) -lt 200 ] || [ \$(code huge) = 413 ]"
req longurl "$U/$("$PY" -c 'print("a" * 9000)')"
check "over-long URL refused" "[ \$(code longurl) -ge 400 ] && [ \$(code longurl) -lt 500 ]"
req manyhdr $(for i in $(seq 80); do printf -- '-H X-H%d:%d ' "$i" "$i"; done) "$U/healthz"
check "too many header fields 431" "problem manyhdr 431"

# ---- TLS 1.3 only ----
openssl s_client -tls1_2 -connect "127.0.0.1:$PORT" </dev/null >"$T/tls12" 2>&1
check "TLS 1.2 handshake refused" "[ $? -ne 0 ] && grep -q 'Cipher is (NONE)' $T/tls12"
openssl s_client -tls1_3 -connect "127.0.0.1:$PORT" </dev/null >"$T/tls13" 2>&1
check "TLS 1.3 handshake works" "[ $? -eq 0 ] && grep -q 'New, TLSv1.3, Cipher is TLS_' $T/tls13"
curl -s --tls-max 1.2 --cacert "$T/v/keys/tls.crt" --max-time 10 -o /dev/null "$U/healthz" 2>/dev/null
check "curl limited to TLS 1.2 fails" "[ $? -ne 0 ]"

# ---- a slow client does not block others ----
"$PY" - "$PORT" >"$T/slow" 2>&1 <<'EOF' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.send(b"\x16\x03\x01")   # the start of a TLS record, then nothing
time.sleep(8)
s.close()
EOF
SLOW=$!
sleep 0.5
t0=$(date +%s%N)
req slow1 "$U/healthz"
req slow2 -H "Authorization: Bearer $T2" "$U/api/auth/whoami"
t1=$(date +%s%N)
check "others are served while a client stalls" "[ \$(code slow1) = 200 ] && [ \$(code slow2) = 200 ] && [ \$(((t1 - t0) / 1000000)) -lt 3000 ]"
kill "$SLOW" 2>/dev/null
wait "$SLOW" 2>/dev/null

# ---- connection limits ----
"$PY" - "$PORT" >"$T/many" 2>&1 <<'EOF' &
import socket, sys, time
conns = []
for i in range(20):   # more than HTTP_MAX_PER_IP from one address
	s = socket.socket()
	s.bind(("127.0.0.60", 0))
	s.connect(("127.0.0.1", int(sys.argv[1])))
	conns.append(s)
time.sleep(6)
EOF
MANY=$!
sleep 1
req lim1 $(from 60) "$U/healthz"
req lim2 $(from 61) "$U/healthz"
check "per-address connection limit: one more connection refused" "[ \$(code lim1) != 200 ]"
check "other addresses still served" "[ \$(code lim2) = 200 ]"
kill "$MANY" 2>/dev/null
wait "$MANY" 2>/dev/null
req head -I "$U/healthz"
check "HEAD /healthz 200" "[ \$(code head) = 200 ]"
curl -s --max-time 5 -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null
check "plain HTTP on the TLS port refused" "[ $? -ne 0 ]"

# ---- logout ----
req out1 -X POST -H "Authorization: Bearer $T1" "$U/api/auth/logout"
check "logout 204" "[ \$(code out1) = 204 ]"
check "logout clears the cookie" "hdr out1 Set-Cookie | grep -q '^__Host-dv_session=; Max-Age=0'"
req out2 -H "Authorization: Bearer $T1" "$U/api/auth/whoami"
check "token no longer works after logout" "problem out2 401"
req out3 -H "Cookie: __Host-dv_session=$T1" "$U/api/auth/whoami"
check "cookie no longer works after logout" "problem out3 401"
req out4 -X POST -H "Authorization: Bearer $T1" "$U/api/auth/logout"
check "second logout 401" "problem out4 401"
req out5 -H "Authorization: Bearer $T2" "$U/api/auth/whoami"
check "other sessions unaffected" "[ \$(code out5) = 200 ]"

# ---- lockout ----
for i in 1 2 3 4 5; do
	login la "nobody$i" "$PW" 000000 $(from 20)
done
check "5th failure from an address still 401" "problem la 401"
login lb admin "$PW" "$C_NEXT" $(from 20)
check "address locked out: right credentials refused 429" "problem lb 429 && [ \"\$(hdr lb Retry-After)\" -gt 0 ]"
for i in 1 2 3 4 5; do
	login lc admin 'not the password' 000000 $(from $((30 + i)))
done
login ld admin "$PW" "$C_NEXT" $(from 40)
check "account locked out after 5 failures: right credentials refused 429" "problem ld 429"
req le -H "Authorization: Bearer $T2" "$U/api/auth/whoami"
check "existing session survives the lockout" "[ \$(code le) = 200 ]"
# the operator lifts it while the server runs: the server's lock goes too
# (the code was used: 401 now, not 429)
"$DV" user unlock admin --vault "$T/v" >"$T/unlock.out" 2>&1
check "user unlock while serving: exit 0" "[ $? -eq 0 ]"
login lf admin "$PW" "$C_NEXT" $(from 41)
check "after user unlock the account is no longer locked out (401 for a used code, not 429)" "problem lf 401"

# ---- still serving; stop ----
req final "$U/healthz"
check "still serving after all the bad requests" "[ \$(code final) = 200 ]"
kill -TERM "$SRV"
rc=124
for _ in $(seq 100); do
	if ! kill -0 "$SRV" 2>/dev/null; then
		wait "$SRV"
		rc=$?
		break
	fi
	sleep 0.1
done
check "SIGTERM stops the server with exit 0" "[ $rc -eq 0 ]"
SRV=
check "no sanitizer report" "! grep -q 'Sanitizer' $T/err"

# ---- no secret in the log or the audit trail ----
# (-w: a 6-digit code may occur inside a hex hash by chance, never as a word)
secrets_absent() {  # file
	! grep -qwF -e "$PW" -e "$T1" -e "$T2" -e "$T3" -e "$C_PREV" -e "$C_NOW" -e "$C_NEXT" -e "$SECRET" "$1" &&
		! grep -qi 'authorization\|bearer' "$1"
}
check "server log names logins" "grep -q 'login of admin' $T/err && grep -q 'refused' $T/err"
check "no password, TOTP code, token or Authorization in the server log" "secrets_absent $T/err"
A="$T/v/audit/audit.log"
check "audit: login, login-failure, lockout, logout recorded" "grep -q '\"action\":\"login\"' $A && grep -q '\"action\":\"login-failure\"' $A && grep -q '\"action\":\"lockout\"' $A && grep -q '\"action\":\"logout\"' $A"
check "no password, TOTP code or token in the audit trail" "secrets_absent $A"
# ---- [auth] idle_timeout, and who/where/how in the audit records: the
# vault restarted with idle_timeout = 3 (seconds, an integer from 1: 0 is
# refused; 1 is allowed but time is counted in whole seconds, so a 1 s
# session may end within a few ms of its last request), a new account
# (admin's account is locked out above) logged in from 127.0.0.5 with
# a user agent of our own ----
AR0=$(wc -l <"$A")
sed -i 's/^idle_timeout = 900$/idle_timeout = 0/' "$T/v/dicomvault.conf"
"$DV" serve --vault "$T/v" --http "127.0.0.1:$PORT" >"$T/out0" 2>"$T/err0"
check "[auth] idle_timeout = 0 refused at start" "[ $? -ne 0 ] && grep -q 'idle_timeout must be an integer from 1' $T/err0" "$T/err0"
sed -i 's/^idle_timeout = 0$/idle_timeout = 3/' "$T/v/dicomvault.conf"
printf 'another long enough password\n' >"$T/pw2"
chmod 600 "$T/pw2"
"$DV" user add carol --role admin --password-file "$T/pw2" --vault "$T/v" --json >"$T/carol.json" 2>"$T/carol.err"
SECRET2=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["totp_secret"])' "$T/carol.json" 2>/dev/null)
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
U="https://127.0.0.1:$PORT"
"$DV" serve --vault "$T/v" --http "127.0.0.1:$PORT" >"$T/out2" 2>"$T/err2" &
SRV=$!
wait_line "$SRV" "$T/out2" serving
if [ -z "$SECRET2" ] || ! kill -0 "$SRV" 2>/dev/null; then
	no "restart with idle_timeout = 3 and a second account" "$T/carol.err" "$T/err2"
	exit 0
fi
UA='X-Test-Agent/1'
login c1 carol 'another long enough password' "$(oathtool --totp -b "$SECRET2")" $(from 5) -A "$UA"
TC=$(token c1)
check "login from 127.0.0.5: 200, idle_timeout 3 in the answer" "[ \$(code c1) = 200 ] && $PY -c 'import json,sys; sys.exit(0 if json.load(open(\"$T/c1.body\"))[\"idle_timeout\"] == 3 else 1)'"
login c2 carol 'not the password' 000000 $(from 6) -A "$UA"
check "a failed login from 127.0.0.6: 401" "problem c2 401"
req cq -H "Authorization: Bearer $TC" -H 'Accept: application/dicom+json' $(from 5) -A "$UA" "$U/dicom-web/studies?PatientID=nobody"
check "a QIDO from 127.0.0.5 with the session: 200" "[ \$(code cq) = 200 ]"
# the records: the session as audit.c names it (the first 8 bytes of
# SHA-256("dicomvault-session:" TOKEN), hex)
SREF=$(printf 'dicomvault-session:%s' "$TC" | sha256sum | cut -c1-16)
tail -n +$((AR0 + 1)) "$A" >"$T/a2.log"
# rec ACTION OUTCOME: the actor of the one record with that action and outcome, as user|role|session|addr|ua
rec() {
	"$PY" - "$T/a2.log" "$1" "$2" <<'EOF'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
r = [x for x in r if x.get("action") == sys.argv[2] and x.get("outcome") == sys.argv[3]]
a = r[0]["actor"] if len(r) == 1 else {}
print("|".join(str(a.get(k, "")) for k in ("user", "role", "session", "addr", "ua")))
EOF
}
check "audit: the login record names carol, her session, 127.0.0.5 and the user agent" \
	"[ \"\$(rec login success)\" = 'carol|admin|$SREF|127.0.0.5|$UA' ]"
check "audit: the query record names carol, the same session, 127.0.0.5 and the user agent" \
	"[ \"\$(rec query success)\" = 'carol|admin|$SREF|127.0.0.5|$UA' ]"
check "audit: the failed login is recorded from 127.0.0.6 with its user agent, no session" \
	"rec login-failure failure | grep -q '^carol|[^|]*||127.0.0.6|X-Test-Agent/1\$'"
# idle_timeout: requests 1 s apart keep the session for longer than 3 s ...
alive=1
for i in 1 2 3 4; do
	sleep 1
	req ci -H "Authorization: Bearer $TC" "$U/api/auth/whoami"
	[ "$(code ci)" = 200 ] || { alive=0; echo "# whoami $i: $(code ci)"; }
done
check "idle_timeout 3: a session used every second lives on (4 s)" "[ $alive = 1 ]"
# ... 3 s without one end it, for the cookie and the bearer token alike
sleep 3.3
req cx1 -H "Cookie: __Host-dv_session=$TC" $(from 7) -A "$UA" "$U/api/auth/whoami"
check "idle_timeout 3: after 3 s idle, the session's cookie is 401 problem+json" "problem cx1 401"
req cx2 -H "Authorization: Bearer $TC" "$U/api/auth/whoami"
check "idle_timeout 3: and its bearer token 401 problem+json" "problem cx2 401"
# its end is a logout on the record, once, from the request that found it;
# admin's sessions of the first run, ended under idle_timeout 3, were
# recorded as they went at carol's login (before its record), each from
# the address it was opened from
tail -n +$((AR0 + 1)) "$A" >"$T/a2.log"
# ends SESSION: user|role|addr|ua|reason of each logout of that session;
# ends -: those of the other sessions before the first login, then "login USER"
ends() {
	"$PY" - "$T/a2.log" "$1" <<'EOF'
import json, sys
for x in (json.loads(l) for l in open(sys.argv[1])):
	a = x.get("actor", {})
	if x.get("action") == "logout" and (a.get("session") == sys.argv[2]) != (sys.argv[2] == "-"):
		print("|".join(str(v) for v in (a.get("user", ""), a.get("role", ""), a.get("addr", ""), a.get("ua", ""), x.get("reason", ""))))
	if x.get("action") == "login" and sys.argv[2] == "-":
		print("login " + a.get("user", ""))
		break
EOF
}
check "audit: the idle session's end is one logout (idle timeout) naming carol, 127.0.0.7 and the user agent" \
	"[ \"\$(ends $SREF)\" = 'carol|admin|127.0.0.7|$UA|idle timeout' ]"
check "audit: the first run's sessions ended at carol's login, one logout each (from their own address), before it" \
	"[ \"\$(ends - | tail -n 1)\" = 'login carol' ] && [ \$(ends - | grep -c '^admin|admin|127\.0\.0\.[0-9]*||idle timeout\$') -ge 1 ] && [ \$(ends - | wc -l) = \$((\$(ends - | grep -c '^admin|admin|127\.0\.0\.[0-9]*||idle timeout\$') + 1)) ]"
kill -TERM "$SRV"
wait "$SRV" 2>/dev/null
SRV=
"$DV" audit verify --vault "$T/v" >"$T/verify2.out" 2>&1
check "audit verify passes after the restart" "[ \$? = 0 ]" "$T/verify2.out"
check "no sanitizer report (second run)" "! grep -q 'Sanitizer' $T/err2"
exit 0
