#!/bin/bash
# token.sh: API tokens end to end: `dicomvault token create|list|revoke`
# (exit codes, --help, bad --ttl/--scope/user/ID, --json), then against the
# real `dicomvault serve` with curl: a token on /api/auth/whoami and on
# DICOMweb (STOW-RS of one file, WADO-RS back), an expired token (ttl 1 s)
# and a revoked one refused at once (while the server runs), garbage, too
# long and empty bearer values refused with problem+json, no logout of a
# token, the audit trail (create, revoke, refusals) intact, and the token
# value nowhere in the vault directory or the server's log. Prints ok/not
# ok lines. Env DV: the CLI under test; KEEP=1 keeps the directory.
set -u
DV=${DV:-build/check/dicomvault}
PY=/usr/bin/python3
TF=/usr/lib/python3/dist-packages/pydicom/data/test_files
TEST=token
. "$(dirname "$0")/lib/tap.sh"
tap_setup token

if ! "$DV" token --help >/dev/null 2>&1; then
	echo "# SKIP token: $DV has no token command"
	exit 0
fi

# ---- the command line ----
PW='correct horse battery staple'
printf '%s\n' "$PW" >"$T/pw"
chmod 600 "$T/pw"
"$DV" init --vault "$T/v" --password-file "$T/pw" --json >"$T/init.json" 2>"$T/init.err" || { no "init"; exit 0; }
V="--vault $T/v"
# rc EXPECTED command...: the exit status, with stdout and stderr kept
rc() {
	local want=$1
	shift
	"$@" >"$T/cli.out" 2>"$T/cli.err"
	[ $? -eq "$want" ]
}
check "token --help: 0, usage on stdout" "rc 0 $DV token --help && grep -q 'token create --user NAME' $T/cli.out"
check "token create --help: 0" "rc 0 $DV token create --help && grep -q -- '--ttl SECONDS' $T/cli.out"
check "token without subcommand: 2" "rc 2 $DV token"
check "token frobnicate: 2" "rc 2 $DV token frobnicate $V"
check "token create without --user: 2" "rc 2 $DV token create $V"
check "token create --user without value: 2" "rc 2 $DV token create $V --user"
check "token create unknown option: 2" "rc 2 $DV token create $V --user admin --bogus"
check "token create --user twice: 2" "rc 2 $DV token create $V --user admin --user admin"
for ttl in 0 -1 -3600 abc 1.5 ' 60' 60s '' 31622401 99999999999999999999 0x10; do
	check "--ttl '$ttl' refused: 2, says why" "rc 2 $DV token create $V --user admin --ttl '$ttl' && grep -q -- '--ttl' $T/cli.err && [ ! -s $T/cli.out ]"
done
for sc in '' admin store,store 'store,' ',query' STORE 'store,collection=' 'collection=default' \
	'store,collection=a b' 'query,collection=x,collection=y' 'store;query'; do
	check "--scope '$sc' refused: 2" "rc 2 $DV token create $V --user admin --scope '$sc' && grep -q -- '--scope' $T/cli.err"
done
check "--scope of an unknown collection: 1" "rc 1 $DV token create $V --user admin --scope store,collection=nosuch && grep -q \"no collection 'nosuch'\" $T/cli.err"
check "unknown user: 1, named" "rc 1 $DV token create $V --user nobody && grep -q \"user 'nobody' does not exist\" $T/cli.err && [ ! -s $T/cli.out ]"
check "no vault there: 1" "rc 1 $DV token list --vault $T/none"
check "revoke without ID: 2" "rc 2 $DV token revoke $V"
check "revoke of a non-number: 2" "rc 2 $DV token revoke $V abc"
check "revoke of ID 0: 2" "rc 2 $DV token revoke $V 0"
check "revoke of an unknown ID: 1" "rc 1 $DV token revoke $V 4242 && grep -q 'does not exist' $T/cli.err"
check "list of no tokens: 0, []" "rc 0 $DV token list $V --json && [ \"\$(cat $T/cli.out)\" = '[]' ]"

# create: TOKEN, TTL, SCOPE; prints the token, sets ID_<name>
jget() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2" 2>/dev/null; }
rc 0 "$DV" token create $V --user admin --json
cp "$T/cli.out" "$T/a.json"
TA=$(jget "$T/a.json" token)
IDA=$(jget "$T/a.json" id)
check "create --json: token is dvt_ + 64 hex" "[[ \$TA =~ ^dvt_[0-9a-f]{64}\$ ]]"
check "create --json: default ttl 30 days, default scope" "[ \"\$(jget $T/a.json expires_in)\" = 2592000 ] && [ \"\$(jget $T/a.json scope)\" = store,query,retrieve ] && [ \"\$(jget $T/a.json user)\" = admin ]"
rc 0 "$DV" token create $V --user admin --ttl 1 --scope retrieve,query
TE=$(grep -oE 'dvt_[0-9a-f]{64}' "$T/cli.out")
check "create (text): the token on its own line, the scope canonical" "[ -n \"\$TE\" ] && grep -qx \"\$TE\" $T/cli.out && grep -q 'scope query,retrieve' $T/cli.out"
rc 0 "$DV" token create $V --user admin --ttl 600 --scope store,collection=default --json
TR=$(jget "$T/cli.out" token)
IDR=$(jget "$T/cli.out" id)
check "three tokens, all different" "[ -n \"\$TR\" ] && [ \"\$TA\" != \"\$TE\" ] && [ \"\$TA\" != \"\$TR\" ] && [ \"\$TE\" != \"\$TR\" ]"
rc 0 "$DV" token list $V --json
check "list --json: 3 tokens, no token value" "$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if len(d)==3 and all(\"token\" not in t and t[\"state\"] in (\"active\",\"expired\") for t in d) else 1)' $T/cli.out && ! grep -q dvt_ $T/cli.out"
rc 0 "$DV" token list $V
check "list (text): a header and 3 rows" "[ \$(wc -l <$T/cli.out) = 4 ] && head -1 $T/cli.out | grep -q 'ID.*USER.*STATE.*CREATED.*EXPIRES.*SCOPE'"

# ---- the server ----
. "$(dirname "$0")/lib/http.sh"
dv_serve || exit 0
who() { req "$1" -H "Authorization: Bearer $2" "$U/api/auth/whoami"; }

who whoA "$TA"
check "whoami with an API token: 200 admin" "[ \$(code whoA) = 200 ] && [ \"\$(cat $T/whoA.body)\" = '{\"username\":\"admin\",\"role\":\"admin\"}' ]"
req whoAl -H "authorization: bearer   $TA  " "$U/api/auth/whoami"
check "scheme case-insensitive, spaces around the token" "[ \$(code whoAl) = 200 ]"
req cookieA -H "Cookie: __Host-dv_session=$TA" "$U/api/auth/whoami"
check "an API token also works as the cookie value" "[ \$(code cookieA) = 200 ]"

# DICOMweb: STOW-RS one file, WADO-RS it back
if [ -f "$TF/CT_small.dcm" ]; then
	cp "$TF/CT_small.dcm" "$T/ct.dcm"
	"$PY" - "$T/ct.mp" "$T/ct.dcm" <<'EOF'
import sys
b = b"tokEnBoundary"
body = b"--" + b + b"\r\nContent-Type: application/dicom\r\n\r\n" + open(sys.argv[2], "rb").read() + b"\r\n--" + b + b"--\r\n"
open(sys.argv[1], "wb").write(body)
EOF
	req stow -H "Authorization: Bearer $TA" -H 'Content-Type: multipart/related; type="application/dicom"; boundary=tokEnBoundary' \
		-H 'Accept: application/dicom+json' --data-binary @"$T/ct.mp" "$U/dicom-web/studies"
	check "STOW-RS with an API token: 200, the instance referenced" "[ \$(code stow) = 200 ] && grep -q '00081199' $T/stow.body"
	read -r ST SE SOP < <("$PY" -c 'import pydicom,sys; d=pydicom.dcmread(sys.argv[1]); print(d.StudyInstanceUID, d.SeriesInstanceUID, d.SOPInstanceUID)' "$T/ct.dcm")
	req wado -H "Authorization: Bearer $TA" "$U/wado?requestType=WADO&studyUID=$ST&seriesUID=$SE&objectUID=$SOP&contentType=application/dicom"
	check "WADO with an API token: the same bytes" "[ \$(code wado) = 200 ] && cmp -s $T/wado.body $T/ct.dcm"
	check "audit: the store names the token's user" "grep '\"action\":\"store\"' $T/v/audit/audit.log | grep -q '\"user\":\"admin\"'"
else
	echo "# no pydicom test file: STOW part skipped"
fi

# expired (ttl 1 s)
sleep 2
who whoE "$TE"
check "expired token (ttl 1 s, 2 s later): 401 problem+json" "problem whoE 401 && hdr whoE WWW-Authenticate | grep -q '^Bearer'"
# revoked, while the server runs
who whoR1 "$TR"
check "token works before revocation" "[ \$(code whoR1) = 200 ]"
check "revoke: 0" "rc 0 $DV token revoke $V $IDR"
who whoR2 "$TR"
check "revoked token: 401 at once" "problem whoR2 401"
check "revoke again: 1 (already revoked)" "rc 1 $DV token revoke $V $IDR && grep -q 'already revoked' $T/cli.err"
check "list shows revoked and expired" "rc 0 $DV token list $V --json && $PY -c 'import json,sys; s=sorted(t[\"state\"] for t in json.load(open(sys.argv[1]))); sys.exit(0 if s==[\"active\",\"expired\",\"revoked\"] else 1)' $T/cli.out"
check "last_used recorded for the used token" "$PY -c 'import json,sys; d={t[\"id\"]:t for t in json.load(open(sys.argv[1]))}; sys.exit(0 if d[int(sys.argv[2])][\"last_used\"] else 1)' $T/cli.out $IDA"

# garbage, too long, empty, wrong form
bad_all=1
LONG=$("$PY" -c 'print("dvt_" + "a" * 5000)')
for b in "dvt_" "dvt_zz" "${TA}0" "${TA%?}" "$(echo "$TA" | tr a-f A-F)" "x${TA}" "$LONG" 'dvt_%00' "${TA:4}" ''; do
	who bad "$b"
	if ! problem bad 401; then bad_all=0; echo "# bearer '${b:0:40}': $(code bad)"; fi
done
check "garbage, altered, too long, empty bearer values: 401 problem+json" "[ $bad_all = 1 ]"
req noscheme -H "Authorization: $TA" "$U/api/auth/whoami"
check "a token without the Bearer scheme: 401" "problem noscheme 401"
req basic -H "Authorization: Basic $TA" "$U/api/auth/whoami"
check "a token under another scheme: 401" "problem basic 401"
req logoutA -X POST -H "Authorization: Bearer $TA" "$U/api/auth/logout"
check "logout with an API token: 403 problem+json, the token still works" "problem logoutA 403 && who whoA2 \"$TA\" && [ \$(code whoA2) = 200 ]"

# ---- stop, audit, secrecy ----
kill -TERM "$SRV"
wait "$SRV"
check "server exits 0 on SIGTERM" "[ $? = 0 ]"
SRV=
check "no sanitizer report" "! grep -q 'Sanitizer' $T/err"
A=$T/v/audit/audit.log
check "audit: token-create (success and refusals) recorded" "[ \$(grep -c '\"action\":\"token-create\",\"outcome\":\"success\"' $A) = 3 ] && grep -q '\"action\":\"token-create\",\"outcome\":\"failure\".*no such user' $A"
check "audit: token-revoke recorded" "grep -q '\"action\":\"token-revoke\",\"outcome\":\"success\".*token $IDR of user admin' $A && grep -q '\"action\":\"token-revoke\",\"outcome\":\"failure\".*already revoked' $A"
check "audit: refusals of the expired and the revoked token" "grep '\"action\":\"token-refused\"' $A | grep -q expired && grep '\"action\":\"token-refused\"' $A | grep -q 'revoked'"
check "audit: the CLI's token records name the operator (actor user and role)" \
	"grep '\"action\":\"token-' $A | grep -v token-refused | grep -c '\"role\":\"operator\"' | grep -qx \"\$(grep '\"action\":\"token-' $A | grep -vc token-refused)\""
"$DV" token create --user admin $V >/dev/full 2>"$T/full.err"
check "create to a full stdout: exit 1, the token revoked" "[ \$? = 1 ] && grep -q 'the token is revoked' $T/full.err"
check "...and that revocation is recorded" "tail -3 $A | grep -q 'revoked at once, it could not be shown'"
"$PY" -c 'import os, subprocess, sys
r, w = os.pipe(); os.close(r)
sys.exit(subprocess.run(sys.argv[1:], stdout=w).returncode)' "$DV" token create --user admin $V 2>"$T/pipe.err"
check "create to a closed pipe: exit 1 (not 141), the token revoked and that recorded" \
	"[ \$? = 1 ] && grep -q 'the token is revoked' $T/pipe.err && [ \$(grep -c 'revoked at once, it could not be shown' $A) = 2 ]"
mv "$A" "$A.kept"
"$DV" token create --user admin $V >"$T/nolog.out" 2>"$T/nolog.err"
check "no audit log: create refused before making a token, no new log" \
	"[ \$? = 1 ] && grep -q 'nothing was changed' $T/nolog.err && [ ! -s $T/nolog.out ] && [ ! -e $A ]"
mv "$A.kept" "$A"
check "audit verify: intact" "rc 0 $DV audit verify $V"
secret_free() {
	! grep -rqF -e "$TA" -e "$TE" -e "$TR" -e "${TA:4}" -e "${TE:4}" -e "${TR:4}" "$@"
}
check "no token value anywhere in the vault directory" "secret_free $T/v"
check "no token value in the server's log or output" "secret_free $T/err $T/out && ! grep -qi 'bearer' $T/err"
check "server log names refused tokens by id" "grep -q \"API token $IDR of admin from 127.0.0.1 refused: revoked\" $T/err"
