#!/bin/bash
# demo.sh: `make demo`. Installs what is missing, builds, creates a demo
# vault (once) with sample studies (the synthetic CT and MR series of
# bench/gen_corpus.py and pydicom's test files), serves it on
# https://127.0.0.1:8443 and prints the login.
#   DEMO_DIR      where the demo lives (default ./demo; the vault is DEMO_DIR/vault)
#   DEMO_PORT     port (default 8443)
#   DEMO_SAMPLES  all (default) or pydicom (quick: no synthetic series)
#   DEMO_NO_WAIT  1: stop the server once loaded (for tests)
#   DEMO_DICOM_PORT  DICOM-TLS port (default: [dicom] listen of the vault, 2762)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DIR=${DEMO_DIR:-$ROOT/demo}
PORT=${DEMO_PORT:-8443}
SAMPLES=${DEMO_SAMPLES:-all}
PY=/usr/bin/python3
bash scripts/install-deps.sh
make -s --no-print-directory MODE=release build >/dev/null
DV=$ROOT/build/release/dicomvault
V=$DIR/vault
mkdir -p "$DIR"
chmod 700 "$DIR"
umask 077

if [ ! -f "$V/dicomvault.conf" ]; then
	"$PY" -c 'import secrets; print(secrets.token_urlsafe(18))' >"$DIR/admin.password"
	"$DV" init --vault "$V" --password-file "$DIR/admin.password" --json >"$DIR/init.json"
	NEW=1
else
	NEW=0
fi
SECRET=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["totp_secret"])' "$DIR/init.json")
PW=$(cat "$DIR/admin.password")
U="https://127.0.0.1:$PORT"

DICOM_OPT=()
[ -z "${DEMO_DICOM_PORT:-}" ] || DICOM_OPT=(--dicom "127.0.0.1:$DEMO_DICOM_PORT")
"$DV" serve --vault "$V" --http "127.0.0.1:$PORT" "${DICOM_OPT[@]}" >"$DIR/serve.out" 2>"$DIR/serve.log" &
SRV=$!
trap 'kill $SRV 2>/dev/null; wait $SRV 2>/dev/null' EXIT INT TERM
for _ in $(seq 300); do
	grep -q serving "$DIR/serve.out" 2>/dev/null && break
	kill -0 $SRV 2>/dev/null || { cat "$DIR/serve.log" >&2; exit 1; }
	sleep 0.1
done
grep -q serving "$DIR/serve.out" 2>/dev/null || { echo "demo: the server did not start within 30 s" >&2; exit 1; }

if [ "$NEW" = 1 ]; then
	echo "demo: loading sample studies into the vault..."
	TOKEN=$(printf '{"username":"admin","password":"%s","totp":"%s"}' "$PW" "$(oathtool --totp -b "$SECRET")" |
		curl -s --tlsv1.3 --cacert "$V/keys/tls.crt" -H 'Content-Type: application/json' --data-binary @- \
			"$U/api/auth/login" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["token"])')
	FILES=()
	if [ "$SAMPLES" = all ]; then
		"$PY" bench/gen_corpus.py >/dev/null
		FILES+=(bench/corpus/ct/*.dcm bench/corpus/mr/*.dcm)
	fi
	for f in /usr/lib/python3/dist-packages/pydicom/data/test_files/*.dcm; do
		"$DV" dump "$f" >/dev/null 2>&1 && FILES+=("$f")
	done
	# STOW-RS in batches of 40 instances per request
	stored=0
	for ((i = 0; i < ${#FILES[@]}; i += 40)); do
		"$PY" - "$DIR/batch.mp" "${FILES[@]:i:40}" <<'PYEOF'
import sys
out, files = sys.argv[1], sys.argv[2:]
with open(out, "wb") as o:
    for f in files:
        o.write(b"--DemoBoundary\r\nContent-Type: application/dicom\r\n\r\n")
        o.write(open(f, "rb").read())
        o.write(b"\r\n")
    o.write(b"--DemoBoundary--\r\n")
PYEOF
		code=$(curl -s --tlsv1.3 --cacert "$V/keys/tls.crt" -o "$DIR/stow.json" -w '%{http_code}' \
			-H "Authorization: Bearer $TOKEN" -H 'Accept: application/dicom+json' \
			-H 'Content-Type: multipart/related; type="application/dicom"; boundary=DemoBoundary' \
			--data-binary @"$DIR/batch.mp" "$U/dicom-web/studies")
		n=$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d.get("00081199",{}).get("Value",[])))' "$DIR/stow.json" 2>/dev/null || echo 0)
		stored=$((stored + n))
		[ "$code" = 200 ] || [ "$code" = 202 ] || echo "demo: a batch was answered $code" >&2
	done
	rm -f "$DIR/batch.mp"
	echo "demo: stored $stored instances"
	echo "$stored" >"$DIR/stored"
fi

# the DICOM-TLS listener's line ("DICOM-TLS port P AE T, N peers"), or why
# it did not start (its port taken: HTTPS is served alone); a peer to add
# only while there is none (it said so with peers configured too)
DICOM=$(sed -n -e 's/^dicomvault: DICOM-TLS port \([0-9]*\) AE \([^,]*\), 0 peers.*/DICOM-TLS on 127.0.0.1:\1, AE title \2: add a [peer "AE"] section to dicomvault.conf (README.md, "DICOM peers")/p' \
	-e 's/^dicomvault: DICOM-TLS port \([0-9]*\) AE \([^,]*\), \([0-9]*\) peers.*/DICOM-TLS on 127.0.0.1:\1, AE title \2, peers in dicomvault.conf: \3/p' "$DIR/serve.out")
[ -n "$DICOM" ] || DICOM="not started ($(grep -o 'DICOM-TLS not started: [^;]*' "$DIR/serve.log" | head -1))"
cat <<MSG

dicomvault demo is serving at $U/
  (self-signed certificate: $V/keys/tls.crt)
  user:      admin
  password:  $PW
  TOTP:      secret $SECRET
             a code: oathtool --totp -b $SECRET   (each code works once;
             if it was just used, wait for the next 30-second step)
  try:       curl --cacert $V/keys/tls.crt $U/healthz
  DICOM:     $DICOM
Stop with Ctrl-C. The vault stays in $V; 'rm -rf $DIR' starts afresh.
MSG
if [ "${DEMO_NO_WAIT:-0}" = 1 ]; then
	exit 0
fi
wait $SRV
