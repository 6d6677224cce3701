#!/bin/bash
# init.sh: `dicomvault init` creates a vault with safe defaults and refuses
# bad input. Prints ok/not ok lines. Env DV: the CLI under test.
set -u
DV=${DV:-build/check/dicomvault}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
n=0
ok() { echo "ok - init: $1"; }
no() { echo "not ok - init: $1"; }
check() { if eval "$2"; then ok "$1"; else no "$1"; fi; }
mode() { stat -c %a "$1"; }

# 1. a vault with a generated password, machine-readable output
$DV init --vault "$T/v" --json >"$T/out.json" 2>"$T/err"
check "exit 0" "[ $? -eq 0 ]"
read -r PASSWORD SECRET URI FP < <(/usr/bin/python3 -c '
import json,sys; d=json.load(open(sys.argv[1]))
print(d["password"], d["totp_secret"], d["otpauth_uri"], d["tls_fingerprint"])' "$T/out.json")
check "password generated (24 chars)" "[ \${#PASSWORD} -eq 24 ]"
check "totp secret is base32 of 160 bits" "[[ \$SECRET =~ ^[A-Z2-7]{32}\$ ]]"
check "otpauth uri" "[[ \$URI == otpauth://totp/dicomvault:admin\?secret=\$SECRET\&issuer=dicomvault* ]]"
check "oathtool makes a code from the secret" "oathtool --totp -b \$SECRET | grep -qE '^[0-9]{6}\$'"
check "vault dir 0700" "[ \$(mode $T/v) = 700 ]"
check "keys dir 0700" "[ \$(mode $T/v/keys) = 700 ]"
for f in keys/master.key keys/index.key keys/audit.key keys/tls.key dicomvault.conf index.db; do
	check "$f is 0600" "[ \$(mode $T/v/$f) = 600 ]"
done
check "master key file format" "[ \$(head -c 4 $T/v/keys/master.key) = DVMK ] && [ \$(stat -c %s $T/v/keys/master.key) = 40 ]"
check "index key is wrapped" "[ \$(head -c 4 $T/v/keys/index.key) = DVWK ]"
check "audit key is wrapped" "[ \$(head -c 4 $T/v/keys/audit.key) = DVWK ]"
check "audit public key is 32 bytes hex" "grep -qE '^[0-9a-f]{64}\$' $T/v/keys/audit.pub"
check "certificate is ECDSA P-256" "openssl x509 -in $T/v/keys/tls.crt -noout -text | grep -q 'prime256v1'"
check "certificate names localhost and 127.0.0.1" "openssl x509 -in $T/v/keys/tls.crt -noout -ext subjectAltName | grep -q 'DNS:localhost, IP Address:127.0.0.1'"
check "fingerprint as openssl prints it" "[ \"\$(openssl x509 -in $T/v/keys/tls.crt -noout -fingerprint -sha256 | cut -d= -f2)\" = \"\$FP\" ]"
check "key matches certificate" "[ \"\$(openssl pkey -in $T/v/keys/tls.key -pubout)\" = \"\$(openssl x509 -in $T/v/keys/tls.crt -noout -pubkey)\" ]"
check "config has the sections" "grep -q '^\[http\]' $T/v/dicomvault.conf && grep -q '^\[auth\]' $T/v/dicomvault.conf && grep -q 'master_key = file:keys/master.key' $T/v/dicomvault.conf"
check "no secret in the vault's files" "! grep -rqF -e \"\$PASSWORD\" -e \"\$SECRET\" $T/v"
check "admin stored with Argon2id" "/usr/bin/python3 -c \"import sqlite3,sys; r=sqlite3.connect('$T/v/index.db').execute('select role,pwhash from users where name=\\\"admin\\\"').fetchone(); sys.exit(0 if r[0]=='admin' and r[1].startswith('\\\$argon2id\\\$') else 1)\""
check "nothing on stderr" "[ ! -s $T/err ]"

# 2. refusals
$DV init --vault "$T/v" >/dev/null 2>"$T/err"
check "second init on a vault refused" "[ $? -eq 1 ] && grep -q 'already holds a vault' $T/err"
check "existing vault untouched" "[ \$(head -c 4 $T/v/keys/master.key) = DVMK ]"
printf 'correct horse battery staple\n' >"$T/pw"
chmod 644 "$T/pw"
$DV init --vault "$T/w" --password-file "$T/pw" >/dev/null 2>"$T/err"
check "world-readable password file refused" "[ $? -eq 1 ] && grep -q 'password file' $T/err && [ ! -e $T/w ]"
printf 'short\n' >"$T/short"
chmod 600 "$T/short"
$DV init --vault "$T/w" --password-file "$T/short" >/dev/null 2>"$T/err"
check "short password refused, nothing created" "[ $? -eq 1 ] && grep -q 'at least 12' $T/err && [ ! -e $T/w ]"
printf 'aaaaaaaaaaaaaaaaaaaa\n' >"$T/weakpp"
chmod 600 "$T/weakpp"
$DV init --vault "$T/w" --passphrase-file "$T/weakpp" >/dev/null 2>"$T/err"
check "weak passphrase refused, saying why, not showing it, nothing created" \
	"[ $? -eq 1 ] && grep -q 'too weak to guard the master key: it has fewer than 4 different characters' $T/err &&
	 ! grep -q aaaa $T/err && [ ! -e $T/w ]"
$DV init --vault "$T/w" --password hunter2hunter2 >/dev/null 2>"$T/err"
check "password on argv refused (usage)" "[ $? -eq 2 ] && grep -q 'never taken from the command line' $T/err"
$DV init --vault "$T/w" --admin 'bad name;' >/dev/null 2>"$T/err"
check "bad admin name refused" "[ $? -eq 1 ] && [ ! -e $T/w ]"
$DV init --vault "$T/w" --bogus >/dev/null 2>"$T/err"
check "unknown option is a usage error" "[ $? -eq 2 ]"
$DV init --vault "$T/w" --tls-cert "$T/v/keys/tls.crt" >/dev/null 2>"$T/err"
check "--tls-cert without --tls-key: usage error" "[ $? -eq 2 ] && grep -q -- '--tls-key' $T/err && [ ! -e $T/w ]"
$DV init --vault "$T/w" --tls-key "$T/v/keys/tls.key" >/dev/null 2>"$T/err"
check "--tls-key without --tls-cert: usage error" "[ $? -eq 2 ] && grep -q -- '--tls-cert' $T/err && [ ! -e $T/w ]"
$DV init --help >/dev/null
check "--help exits 0" "[ $? -eq 0 ]"

# 3. passphrase mode, given password, given certificate
chmod 600 "$T/pw"
printf 'a long passphrase for the master key\n' >"$T/pp"
chmod 600 "$T/pp"
$DV init --vault "$T/p" --admin alice --password-file "$T/pw" --passphrase-file "$T/pp" \
	--tls-cert "$T/v/keys/tls.crt" --tls-key "$T/v/keys/tls.key" >"$T/out" 2>"$T/err"
check "passphrase vault created" "[ $? -eq 0 ]"
check "passphrase record instead of key file" "[ -f $T/p/keys/master.pass ] && [ ! -e $T/p/keys/master.key ] && [ \$(head -c 4 $T/p/keys/master.pass) = DVKP ]"
check "given password not printed" "! grep -q 'correct horse' $T/out && ! grep -q 'Password:' $T/out"
check "given certificate installed" "cmp -s $T/v/keys/tls.crt $T/p/keys/tls.crt"
check "config names the passphrase" "grep -q 'master_key = passphrase:keys/master.pass' $T/p/dicomvault.conf"
DICOMVAULT_HOME="$T/env" $DV init >/dev/null 2>&1
check "DICOMVAULT_HOME is used" "[ -f $T/env/dicomvault.conf ]"

# dicomvault.conf as this version reads it: a misspelt key, an unknown
# section, or a place or backend it cannot honour stops every command
# that opens the vault, naming the line (none would be silently ignored)
cp "$T/v/dicomvault.conf" "$T/conf0"
conf_refused() {  # name, sed expression or "+TEXT" to append, expected text in the error
	cp "$T/conf0" "$T/v/dicomvault.conf"
	case $2 in
	+*) printf '%b' "${2#+}" >>"$T/v/dicomvault.conf" ;;
	*) sed -i "$2" "$T/v/dicomvault.conf" ;;
	esac
	$DV token list --vault "$T/v" >"$T/out" 2>"$T/err"
	check "$1: refused, naming it" "[ $? -eq 1 ] && grep -qF -- \"$3\" $T/err"
}
conf_refused "a misspelt [auth] key" 's/^idle_timeout = 900/idle_timeot = 900/' "[auth] has no key 'idle_timeot'"
conf_refused "an unknown section" '+\n[peers "OLDPACS"]\nhost = 10.0.0.1\n' 'unknown section [peers'
conf_refused "a named [deid] that is not a mask" '+\n[deid "masks CT"]\nmodality = CT\n' 'unknown section [deid'
conf_refused "[storage] objects elsewhere (not honoured yet)" 's|^objects = objects|objects = /mnt/big|' \
	"[storage] objects = /mnt/big: this version keeps objects in the vault directory only"
conf_refused "[index] backend postgresql (not yet)" 's|^backend = sqlite|backend = postgresql|' "[index] backend = postgresql"
conf_refused "[storage] master_key naming another kind of key" \
	's|^master_key = file:keys/master.key|master_key = passphrase:keys/master.pass|' \
	"does not describe this vault's master key (file:keys/master.key)"
# the named sections too, as serve reads them: [collection "NAME"],
# [peer "AE"], [deid "mask NAME"]
conf_refused "a misspelt [collection] key" '+\n[collection "cardio"]\nfrob = 1\n' \
	"dicomvault.conf line $(($(wc -l <"$T/conf0") + 3)): unknown key 'frob' in [collection"
conf_refused "a [collection] match on no DICOM keyword" '+\n[collection "cardio"]\nmatch = Frob=CT\n' \
	"match: 'Frob' is not a DICOM keyword"
conf_refused "a [collection] section named default" '+\n[collection "default"]\ncalling_ae = CT1\n' \
	"NAME is 1 to 64 of A-Z"
conf_refused "a misspelt [peer] key" '+\n[peer "PACS"]\nfrob = 1\n' "[peer] has no key 'frob'"
conf_refused "a [peer] port out of range" '+\n[peer "PACS"]\ntls = no\nhost = 10.0.0.1\nport = 70000\n' \
	"port: a number from 1 to 65535"
conf_refused "a [peer] with no certificate binding" '+\n[peer "PACS"]\nrights = echo\n' \
	"give either fingerprint or ca (exactly one), or tls = no"
conf_refused "a masking rule with a misspelt key" '+\n[deid "mask US"]\nmodality = US\nrect = 0,0,10,10\nrekt = 1\n' \
	'unknown key'
for c in "user list" "import $T/conf0" "export --study 1.2.3 --out $T/ex"; do
	$DV $c --vault "$T/v" >"$T/out" 2>"$T/err"
	check "$c with that conf: refused, naming the file and line" \
		"[ $? -eq 1 ] && grep -q 'dicomvault.conf line [0-9]*: ' $T/err"
done
# values serve would otherwise take for the default (break_glass_minutes)
# or find wrong only at a researcher's request (the de-identification)
conf_refused "[auth] break_glass_minutes = 30m" 's/^lockout_window = 900/&\nbreak_glass_minutes = 30m/' \
	"[auth] break_glass_minutes must be an integer from 1 to 1440"
conf_refused "[auth] break_glass_minutes = 2000" 's/^lockout_window = 900/&\nbreak_glass_minutes = 2000/' \
	"[auth] break_glass_minutes must be an integer from 1 to 1440"
conf_refused "[auth] idle_timeout = abc, with its line" 's/^idle_timeout = 900/idle_timeout = abc/' \
	"dicomvault.conf line $(grep -n '^idle_timeout' "$T/conf0" | cut -d: -f1): [auth] idle_timeout must be"
conf_refused "a misspelt [deid] profile option" 's/^\[deid\]/&\nprofile = basic,retain-uid/' \
	"[deid] profile: unknown profile option 'retain-uid'"
conf_refused "a [deid] project name too long" "s/^\\[deid\\]/&\\nproject = $(printf 'p%.0s' $(seq 65))/" \
	"[deid] project: a project name is at most 64 characters"
# the documents' dicomvault.conf examples are as the parser reads them: a
# ';' or '#' starts a comment only at the start of a line (include/
# dicomvault/ini.h), so an example "key = value ; note" would make the note
# part of the value (README's jwt_key did: serve looked for a file of that name)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
awk 'FNR == 1 { inb = 0 } /^```ini/ { inb = 1; next } /^```/ { inb = 0 }
	inb && /^[ \t]*[A-Za-z0-9_.-]+[ \t]*=/ && !/^[ \t]*[A-Za-z0-9_.-]+[ \t]*=[ \t]*"/ && /[ \t][;#]/ {
		print FILENAME ":" FNR ": " $0 }' "$ROOT"/README.md "$ROOT"/docs/*.md "$ROOT"/docs/internals/*.md >"$T/inline" 2>&1
check "the documents' dicomvault.conf examples put no comment after a value" "[ ! -s $T/inline ]"
[ -s "$T/inline" ] && sed 's/^/#   /' "$T/inline"
cp "$T/conf0" "$T/v/dicomvault.conf"
sed -i 's/^idle_timeout = 900/idle_timeot = 900/' "$T/v/dicomvault.conf"
$DV serve --vault "$T/v" --http 127.0.0.1:0 >"$T/out" 2>"$T/err"
check "serve with a misspelt key: exits 1 naming the line and key" \
	"[ $? -eq 1 ] && grep -qE \"line [0-9]+: \\[auth\\] has no key 'idle_timeot'\" $T/err"
cp "$T/conf0" "$T/v/dicomvault.conf"
$DV token list --vault "$T/v" >"$T/out" 2>"$T/err"
check "the written conf opens" "[ $? -eq 0 ]"
# 4. the TLS certificate and key: init refuses a weak key, a key that is
# not the certificate's, a SHA-1 signature and an expired certificate;
# serve refuses the first three in keys/ and warns of the last
mkpair() {  # name digest openssl-newkey-arguments...
	local name=$1 dg=$2
	shift 2
	openssl req -x509 "$@" -nodes -days 30 "-$dg" -subj /CN=localhost -keyout "$T/$name.key" \
		-out "$T/$name.crt" 2>/dev/null && chmod 600 "$T/$name.key"
}
mkpair rsa1024 sha256 -newkey rsa:1024
mkpair rsa2048 sha256 -newkey rsa:2048
mkpair ec sha256 -newkey ec -pkeyopt ec_paramgen_curve:P-256
mkpair p224 sha256 -newkey ec -pkeyopt ec_paramgen_curve:P-224
mkpair p384 sha384 -newkey ec -pkeyopt ec_paramgen_curve:P-384
mkpair ed sha256 -newkey ed25519
mkpair sha1 sha1 -newkey ec -pkeyopt ec_paramgen_curve:P-256
/usr/bin/python3 - "$T/old" <<'PY'
import datetime, os, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
k = ec.generate_private_key(ec.SECP256R1())
n = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
now = datetime.datetime.now(datetime.timezone.utc)
c = (x509.CertificateBuilder().subject_name(n).issuer_name(n).public_key(k.public_key())
     .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=60))
     .not_valid_after(now - datetime.timedelta(days=1)).sign(k, hashes.SHA256()))
open(sys.argv[1] + ".crt", "wb").write(c.public_bytes(serialization.Encoding.PEM))
fd = os.open(sys.argv[1] + ".key", os.O_WRONLY | os.O_CREAT, 0o600)
os.write(fd, k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()))
PY
tls_init() {  # name, cert, key, expected exit, expected text ("" for none)
	rm -rf "$T/tv"
	$DV init --vault "$T/tv" --password-file "$T/pw" --tls-cert "$T/$2.crt" --tls-key "$T/$3.key" >"$T/out" 2>"$T/err"
	local rc=$?
	if [ "$4" = 0 ]; then
		check "init --tls-cert: $1 accepted" "[ $rc -eq 0 ] && cmp -s $T/$2.crt $T/tv/keys/tls.crt"
	else
		check "init --tls-cert: $1 refused, saying why, no vault left" \
			"[ $rc -eq $4 ] && grep -qF -- \"$5\" $T/err && [ ! -e $T/tv ]"
	fi
}
tls_init "RSA 2048" rsa2048 rsa2048 0
tls_init "ECDSA P-256" ec ec 0
tls_init "Ed25519" ed ed 0
tls_init "ECDSA P-384" p384 p384 0
tls_init "ECDSA P-224 (no TLS 1.3 signature scheme)" p224 p224 1 "the TLS key is too weak (EC/ECDSA of 224 bits)"
tls_init "RSA 1024" rsa1024 rsa1024 1 "the TLS key is too weak (RSA of 1024 bits)"
tls_init "another certificate's key" rsa2048 ec 1 "the TLS key does not belong to the certificate"
tls_init "a SHA-1 signature" sha1 sha1 1 "the TLS certificate is signed with ECDSA-SHA1"
tls_init "an expired certificate" old old 1 "the TLS certificate has expired"
printf 'not PEM\n' | tee "$T/junk.crt" >"$T/junk.key"
chmod 600 "$T/junk.key"
tls_init "a key that is not PEM" ec junk 1 "the TLS key is not an unencrypted PEM private key"
tls_init "a certificate that is not PEM" junk ec 1 "is not a PEM X.509 certificate"
# a file that cannot be read: named, with the OS's reason
tls_init "a certificate file that does not exist" nosuch ec 1 "the TLS certificate $T/nosuch.crt: No such file or directory"
tls_init "a key file that does not exist" ec nosuch 1 "the TLS key $T/nosuch.key: No such file or directory"
cp "$T/ec.key" "$T/loose.key"
chmod 644 "$T/loose.key"
tls_init "a key file others may read" ec loose 1 "the TLS key $T/loose.key: mode 0644 lets group or other read it"
# serve reads keys/tls.crt and keys/tls.key at every start
tls_init "RSA 2048 again" rsa2048 rsa2048 0
tls_serve() {  # name, cert, key, expected text
	cp "$T/$2.crt" "$T/tv/keys/tls.crt"
	cp "$T/$3.key" "$T/tv/keys/tls.key"
	$DV serve --vault "$T/tv" --http 127.0.0.1:0 --dicom 127.0.0.1:0 >"$T/out" 2>"$T/err"
	check "serve with $1 in keys/: exits 1 naming the files and why" \
		"[ $? -eq 1 ] && grep -qF -- \"$T/tv/keys/tls.crt and $T/tv/keys/tls.key: $4\" $T/err"
}
tls_serve "RSA 1024" rsa1024 rsa1024 "the TLS key is too weak"
tls_serve "another certificate's key" rsa2048 ec "the TLS key does not belong to the certificate"
tls_serve "a SHA-1 signature" sha1 sha1 "the TLS certificate is signed with ECDSA-SHA1"
# serve_warns NAME PAIR TEXT: serve with PAIR in keys/ starts, and warns TEXT
serve_warns() {
	cp "$T/$2.crt" "$T/tv/keys/tls.crt"
	cp "$T/$2.key" "$T/tv/keys/tls.key"
	# emptied first: the background job truncates them only when it runs,
	# and the wait below must not find the previous serve's port line
	: >"$T/out"
	: >"$T/err"
	$DV serve --vault "$T/tv" --http 127.0.0.1:0 --dicom 127.0.0.1:0 --json >"$T/out" 2>"$T/err" &
	local sp=$!
	# up to 30 s: under ASan on a loaded machine serve can take over 10 s
	for _ in $(seq 300); do grep -q dicom_port "$T/out" 2>/dev/null && break; sleep 0.1; done
	check "serve with $1: serves, with a warning" \
		"grep -q dicom_port $T/out && grep -q 'the TLS certificate $T/tv/keys/tls.crt $3' $T/err" "$T/err"
	kill "$sp" 2>/dev/null
	wait "$sp" 2>/dev/null
}
serve_warns "an expired certificate" old "has expired"
# the pairs above are valid for 30 days from now: under a month left
serve_warns "a certificate that expires within 30 days (the days left)" rsa2048 "expires in 29 days"
exit 0
