#!/bin/bash
# demo.sh (test): `make demo`'s script creates a vault, loads sample studies
# over STOW-RS, serves them and prints the login; a second run reuses the
# vault. Quick mode: pydicom's samples only, server stopped once loaded.
# The banner asks for a [peer "AE"] section only while there is none.
set -u
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
PY=/usr/bin/python3
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
check() { if eval "$2"; then echo "ok - demo: $1"; else echo "not ok - demo: $1"; fi; }
DP=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DEMO_DIR="$T/d" DEMO_PORT=$PORT DEMO_DICOM_PORT=$DP DEMO_SAMPLES=pydicom DEMO_NO_WAIT=1 bash scripts/demo.sh >"$T/out" 2>"$T/err"
check "runs to the end" "[ $? -eq 0 ]"
check "prints the URL" "grep -q 'serving at https://127.0.0.1:$PORT/' $T/out"
check "prints the login and how to get a code" "grep -q 'user:      admin' $T/out && grep -q 'oathtool --totp -b' $T/out"
check "says where DICOM-TLS listens, and to add a peer (there is none)" \
	"grep -q '^  DICOM: *DICOM-TLS on 127.0.0.1:$DP, AE title DICOMVAULT: add a \\[peer \"AE\"\\] section' $T/out"
check "loads sample studies" "[ \$(cat $T/d/stored 2>/dev/null || echo 0) -ge 20 ]"
check "the vault's audit trail verifies" "build/release/dicomvault audit verify --vault $T/d/vault >/dev/null"
check "password file is private" "[ \$(stat -c %a $T/d/admin.password) = 600 ]"
check "no patient name in the vault" "! grep -rq 'CompressedSamples' $T/d/vault"
# a fresh port: the first server's may linger in TIME_WAIT on a loaded machine
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# a peer configured: the second banner counts it and asks for none
printf '\n[peer "MODALITY"]\nfingerprint = %s\nrights = echo, store\n' \
	"$("$PY" -c 'print(":".join(["AB"] * 32))')" >>"$T/d/vault/dicomvault.conf"
DEMO_DIR="$T/d" DEMO_PORT=$PORT DEMO_DICOM_PORT=$DP DEMO_SAMPLES=pydicom DEMO_NO_WAIT=1 bash scripts/demo.sh >"$T/out2" 2>&1
check "second run reuses the vault" "[ $? -eq 0 ] && ! grep -q loading $T/out2 && grep -q 'serving at' $T/out2"
check "second run, one peer configured: the banner says so and asks for no [peer] section" \
	"grep -q '^  DICOM: *DICOM-TLS on 127.0.0.1:$DP, AE title DICOMVAULT, peers in dicomvault.conf: 1\$' $T/out2 && ! grep -q 'add a \\[peer' $T/out2"
exit 0
