#!/bin/bash
# demo.sh (test): `make demo`'s script creates a vault, loads sample studies
# over STOW-RS, serves them and prints the login; a second run reuses the
# vault. Quick mode: pydicom's samples only, server stopped once loaded.
set -u
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
PY=/usr/bin/python3
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
check() { if eval "$2"; then echo "ok - demo: $1"; else echo "not ok - demo: $1"; fi; }
DEMO_DIR="$T/d" DEMO_PORT=$PORT DEMO_SAMPLES=pydicom DEMO_NO_WAIT=1 bash scripts/demo.sh >"$T/out" 2>"$T/err"
check "runs to the end" "[ $? -eq 0 ]"
check "prints the URL" "grep -q 'serving at https://127.0.0.1:$PORT/' $T/out"
check "prints the login and how to get a code" "grep -q 'user:      admin' $T/out && grep -q 'oathtool --totp -b' $T/out"
check "says where DICOM-TLS listens (or, its port taken, why not)" \
	"grep -qE '^  DICOM: +(DICOM-TLS on 127.0.0.1:2762, AE title DICOMVAULT: add a \\[peer|not started \\(DICOM-TLS not started: cannot listen on 127.0.0.1:2762)' $T/out"
check "loads sample studies" "[ \$(cat $T/d/stored 2>/dev/null || echo 0) -ge 20 ]"
check "the vault's audit trail verifies" "build/release/dicomvault audit verify --vault $T/d/vault >/dev/null"
check "password file is private" "[ \$(stat -c %a $T/d/admin.password) = 600 ]"
check "no patient name in the vault" "! grep -rq 'CompressedSamples' $T/d/vault"
# a fresh port: the first server's may linger in TIME_WAIT on a loaded machine
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DEMO_DIR="$T/d" DEMO_PORT=$PORT DEMO_SAMPLES=pydicom DEMO_NO_WAIT=1 bash scripts/demo.sh >"$T/out2" 2>&1
check "second run reuses the vault" "[ $? -eq 0 ] && ! grep -q loading $T/out2 && grep -q 'serving at' $T/out2"
exit 0
