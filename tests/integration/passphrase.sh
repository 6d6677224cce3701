#!/bin/bash
# passphrase.sh: a vault whose master key is derived from a passphrase
# (init --passphrase-file). `serve` unlocks it with the passphrase from
# --passphrase-file, or on stdin (a pipe, written in two pieces; a file
# without a final newline; typed on a terminal, after a prompt, without
# echo): it answers /healthz, an instance stored under
# one unlock reads back under the other (the same master key). A wrong
# passphrase (another one, the right one but for its last character, on
# stdin or in a file), none at all, or a passphrase file others can read:
# refused with a clear error and a non-zero exit, before anything listens.
# The passphrase never shows in any output, the audit trail or the vault's
# files; the audit trail verifies. Prints ok/not ok lines. Env DV: the CLI
# under test; KEEP=1 keeps the directory.
set -u
DV=${DV:-build/check/dicomvault}
PY=/usr/bin/python3
TF=/usr/lib/python3/dist-packages/pydicom/data/test_files
TEST=passphrase
. "$(dirname "$0")/lib/tap.sh"
tap_setup passphrase

if ! "$DV" serve --help 2>/dev/null | grep -q -- --passphrase-file; then
	echo "# SKIP passphrase: $DV serve has no --passphrase-file"
	exit 0
fi
[ -f "$TF/CT_small.dcm" ] || { echo "# SKIP passphrase: no pydicom test files"; exit 0; }
command -v oathtool >/dev/null || { echo "# SKIP passphrase: no oathtool"; exit 0; }
. "$(dirname "$0")/lib/http.sh"   # req, code; wait_line

# ---- the vault ----
PW='correct horse battery staple'
PP='pass phrase: 7 blue-green Herons @ dawn'
printf '%s\n' "$PW" >"$T/pw"
printf '%s\n' "$PP" >"$T/pp"
printf '%s' "$PP" >"$T/pp_nonl"
printf '%s\n' 'an entirely different passphrase' >"$T/wrong"
printf '%s\n' "${PP%?}N" >"$T/almost"   # the last character changed
chmod 600 "$T/pw" "$T/pp" "$T/pp_nonl" "$T/wrong" "$T/almost"
"$DV" init --vault "$T/v" --password-file "$T/pw" --passphrase-file "$T/pp" --json >"$T/init.json" 2>"$T/init.err"
check "init with a passphrase" "[ \$? = 0 ] && [ -f $T/v/keys/master.pass ] && [ ! -e $T/v/keys/master.key ]"
SECRET=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["totp_secret"])' "$T/init.json" 2>/dev/null)

# start NAME STDIN [ARGS...]: `serve` on a free port with stdin from
# STDIN (a file or a pipe) and ARGS; output in $T/NAME.out and .err; sets
# PORT, U, SRV; waits (20 s at most) for its "serving" line or its exit
start() {
	local n=$1 in=$2
	shift 2
	PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	U="https://127.0.0.1:$PORT"
	"$DV" serve --vault "$T/v" --http "127.0.0.1:$PORT" "$@" <"$in" >"$T/$n.out" 2>"$T/$n.err" &
	SRV=$!
	wait_line "$SRV" "$T/$n.out" serving 200
}
# stop: SIGTERM, then wait for the exit (10 s, then KILL)
stop() {
	[ -n "$SRV" ] || return 0
	kill -TERM "$SRV" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$SRV" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$SRV" 2>/dev/null
	wait "$SRV" 2>/dev/null
	SRV=
}
# up NAME: the server runs, printed where it serves and answers /healthz
up() {
	kill -0 "$SRV" 2>/dev/null && grep -q "serving $U" "$T/$1.out" && req "$1_hz" "$U/healthz" &&
		[ "$(code "$1_hz")" = 200 ] && grep -q '"ok"' "$T/$1_hz.body"
}
# refused NAME STDIN [ARGS...]: `serve` exits non-zero within 15 s without
# serving, nothing listens on its port, and its stderr says why (status in
# $T/NAME.rc)
refused() {
	local n=$1 in=$2 p
	shift 2
	p=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	timeout 15 "$DV" serve --vault "$T/v" --http "127.0.0.1:$p" "$@" <"$in" >"$T/$n.out" 2>"$T/$n.err"
	echo $? >"$T/$n.rc"
	sleep 0.2   # a child it might have left would be listening by now
	[ "$(cat "$T/$n.rc")" != 0 ] && [ "$(cat "$T/$n.rc")" != 124 ] && ! grep -q serving "$T/$n.out" &&
		! "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$p" 2>/dev/null
}
# login NAME CODE: the session token of admin, logged in with CODE
login() {
	printf '{"username":"admin","password":"%s","totp":"%s"}' "$PW" "$2" |
		req "$1" -H 'Content-Type: application/json' --data-binary @- "$U/api/auth/login"
	"$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$T/$1.body" 2>/dev/null
}

# ---- the passphrase in a file ----
start file /dev/null --passphrase-file "$T/pp"
check "serve --passphrase-file: serving, /healthz answers" "up file"
# two logins, each needing a code of a later TOTP step than the one before
# (a code is not taken twice): the previous step's now, the current one's
# under the second unlock, well inside the window of one step either side
s=$(($(date +%s) % 30))
[ "$s" -gt 24 ] && sleep $((31 - s))
C1=$(oathtool --totp -b -N '-30 seconds' "$SECRET")
C2=$(oathtool --totp -b "$SECRET")
TOK=$(login login1 "$C1")
"$PY" - "$TF/CT_small.dcm" "$T/ct.mp" <<'EOF'
import sys
b = b"PaSs.42"
open(sys.argv[2], "wb").write(b"--" + b + b"\r\nContent-Type: application/dicom\r\n\r\n" +
                              open(sys.argv[1], "rb").read() + b"\r\n--" + b + b"--\r\n")
EOF
req stow -H "Authorization: Bearer $TOK" -H 'Content-Type: multipart/related; type="application/dicom"; boundary=PaSs.42' \
	-H 'Accept: application/dicom+json' --data-binary @"$T/ct.mp" "$U/dicom-web/studies"
check "login and a STOW-RS under it" "[ -n '$TOK' ] && [ \$(code stow) = 200 ]"
stop
read -r ST SE SOP < <("$PY" -c '
import sys, pydicom
d = pydicom.dcmread(sys.argv[1], stop_before_pixels=True)
print(d.StudyInstanceUID, d.SeriesInstanceUID, d.SOPInstanceUID)' "$TF/CT_small.dcm")

# ---- the passphrase on stdin: a pipe, in two writes 0.3 s apart ----
start stdin <({ printf '%s' "${PP:0:10}"; sleep 0.3; printf '%s\n' "${PP:10}"; })
check "serve, the passphrase piped on stdin (in two pieces): serving, /healthz answers" "up stdin"
TOK=$(login login2 "$C2")
req get -H "Authorization: Bearer $TOK" "$U/wado?requestType=WADO&studyUID=$ST&seriesUID=$SE&objectUID=$SOP&contentType=application/dicom"
check "the instance stored under the other unlock reads back byte for byte" \
	"[ -n '$TOK' ] && [ \$(code get) = 200 ] && cmp -s $T/get.body $TF/CT_small.dcm"
stop
start stdin2 "$T/pp_nonl"
check "serve, stdin a 0600 file without a final newline: serving" "up stdin2"
stop

# ---- typed on a terminal: a prompt, no echo, Enter ends it ----
"$PY" - "$DV" "$T/v" "$PP" >"$T/tty.txt" 2>&1 <<'PYEOF'
import os, pty, select, socket, subprocess, sys, time
dv, vault, pp = sys.argv[1], sys.argv[2], sys.argv[3].encode()
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
m, sl = pty.openpty()
p = subprocess.Popen([dv, "serve", "--vault", vault, "--http", "127.0.0.1:%d" % port], stdin=sl, stdout=sl,
                     stderr=sl, start_new_session=True)
os.close(sl)
out = b""
def until(what, t):
    global out
    end = time.time() + t
    while what not in out and time.time() < end:
        r, _, _ = select.select([m], [], [], 0.1)
        if r:
            try:
                out += os.read(m, 4096)
            except OSError:
                break
    return what in out
prompt = until(b"Passphrase: ", 10)
os.write(m, pp + b"\n")
serving = until(b"serving", 20)
p.terminate(); p.wait(10)
print("prompt" if prompt else "no prompt")
print("serving" if serving else "not serving")
print("echoed" if pp in out or pp[:12] in out else "not echoed")
# Ctrl-C while typing: the process ends by SIGINT, the terminal echoes again
import fcntl, signal, termios
m, sl = pty.openpty()
p = subprocess.Popen([dv, "serve", "--vault", vault, "--http", "127.0.0.1:%d" % port], stdin=sl, stdout=sl,
                     stderr=sl, start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
out = b""
until(b"Passphrase: ", 10)
os.write(m, pp[:5] + b"\x03")
try:
    rc = p.wait(10)
except subprocess.TimeoutExpired:
    p.kill(); rc = None
print("interrupted" if rc == -signal.SIGINT else "not interrupted: %r" % rc)
print("echo restored" if termios.tcgetattr(sl)[3] & termios.ECHO else "echo left off")
PYEOF
check "on a terminal: a prompt, the passphrase not echoed, Enter (no Ctrl-D) unlocks and serves" \
	"grep -qx prompt $T/tty.txt && grep -qx serving $T/tty.txt && grep -qx 'not echoed' $T/tty.txt"
check "Ctrl-C while typing it: serve ends by SIGINT, the terminal's echo back on" \
	"grep -qx interrupted $T/tty.txt && grep -qx 'echo restored' $T/tty.txt" "$T/tty.txt"

# ---- refusals ----
check "a wrong passphrase file: refused, exit 1, 'wrong passphrase', not serving" \
	"refused wrongf /dev/null --passphrase-file $T/wrong && [ \$(cat $T/wrongf.rc) = 1 ] && grep -q 'wrong passphrase' $T/wrongf.err"
check "a wrong passphrase on stdin: refused the same way" \
	"refused wrongs $T/wrong && [ \$(cat $T/wrongs.rc) = 1 ] && grep -q 'wrong passphrase' $T/wrongs.err"
check "the right passphrase but for its last character: refused" \
	"refused almost /dev/null --passphrase-file $T/almost && grep -q 'wrong passphrase' $T/almost.err"
check "nothing on stdin, no file: refused (empty), not serving" \
	"refused empty /dev/null && grep -q 'empty' $T/empty.err"
cp "$T/pp" "$T/pp644"
chmod 644 "$T/pp644"
check "a passphrase file others can read: refused, its mode named" \
	"refused loose /dev/null --passphrase-file $T/pp644 && grep -q 'mode 0644' $T/loose.err"
check "--passphrase on the command line: a usage error (2), not serving" \
	"refused argv /dev/null --passphrase x && [ \$(cat $T/argv.rc) = 2 ]"

# ---- the passphrase is nowhere ----
LOG="$T/v/audit/audit.log"
check "the audit trail has the runs' records (logins, the store)" \
	"grep -q '\"action\":\"store\"' $LOG && [ \$(grep -c '\"action\":\"login\"' $LOG) -ge 2 ]"
# whole, and its first and last 12 characters (not a part of any other text
# here), and the wrong one; -a: the vault holds binary files
check "no passphrase, right or wrong, in any output of init or serve (stdout, stderr)" \
	"[ -s $T/file.err ] && [ -s $T/stdin.err ] && [ -s $T/wrongs.err ] && ! LC_ALL=C grep -laF -e \"\$PP\" -e \"\${PP:0:12}\" -e \"\${PP: -12}\" -e 'entirely different' $T/init.json $T/init.err $T/*.out $T/*.err"
check "the passphrase is nowhere in the vault, the audit trail among it" \
	"[ -s $LOG ] && ! LC_ALL=C grep -rlaF -e \"\$PP\" -e \"\${PP:0:12}\" -e \"\${PP: -12}\" $T/v"
"$DV" audit verify --vault "$T/v" </dev/null >"$T/verify.txt" 2>&1
check "audit verify passes" "[ \$? = 0 ]"
exit 0
