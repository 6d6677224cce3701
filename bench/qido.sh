#!/bin/bash
# qido.sh [STUDIES]: QIDO-RS latency of one-study queries over TLS 1.3 on
# loopback, against `dicomvault serve` of build/release. 1000 real studies
# (one instance each, distinct patients) are stored over STOW-RS; to reach
# STUDIES (default 100000) the index is then padded with rows copied in SQL
# (random UIDs and hashes: never matched, never decrypted, they only make
# the tables and indexes as large as a real archive's). Then REPS
# (default 300) queries of each kind on one keep-alive connection (curl
# reuses it): by StudyInstanceUID, by PatientID, by a PatientName exact
# match, and a 10-result StudyDate range, each answer's number of results
# checked first; prints p50/p90/p99 in ms of curl's time_total. Not part
# of `make check` (see docs/internals/qido.md).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
REPS=${REPS:-300}
DV=${DV:-build/release/dicomvault}
PY=/usr/bin/python3
T=$(mktemp -d)
SRV=
trap '[ -n "$SRV" ] && kill "$SRV" 2>/dev/null; [ -n "${KEEP:-}" ] && echo "# kept $T" || rm -rf "$T"' EXIT

PW='correct horse battery staple'
printf '%s\n' "$PW" >"$T/pw"
chmod 600 "$T/pw"
"$DV" init --vault "$T/v" --password-file "$T/pw" --json >"$T/init.json" 2>/dev/null
SECRET=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["totp_secret"])' "$T/init.json")
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
U="https://127.0.0.1:$PORT"
"$DV" serve --vault "$T/v" --http "127.0.0.1:$PORT" >"$T/out" 2>"$T/err" &
SRV=$!
for _ in $(seq 100); do grep -q serving "$T/out" 2>/dev/null && break; sleep 0.1; done
C=(curl -s --tlsv1.3 --cacert "$T/v/keys/tls.crt")
printf '{"username":"admin","password":"%s","totp":"%s"}' "$PW" "$(oathtool --totp -b "$SECRET")" |
	"${C[@]}" -H 'Content-Type: application/json' --data-binary @- "$U/api/auth/login" >"$T/login.json"
TOK=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$T/login.json")

# 1000 studies in 10 STOW requests of 100
"$PY" - "$T" <<'EOF'
import sys
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from io import BytesIO
T = sys.argv[1]
R = "1.2.826.0.1.3680043.9.7779"
for b in range(10):
    body = b""
    for i in range(b * 100, b * 100 + 100):
        fm = FileMetaDataset()
        fm.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
        fm.MediaStorageSOPInstanceUID = "%s.3.%d" % (R, i)
        fm.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = fm
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.SOPClassUID, ds.SOPInstanceUID = fm.MediaStorageSOPClassUID, fm.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID = "Bench^Patient%04d" % i, "BENCH-%04d" % i
        ds.StudyDate, ds.StudyTime = "2020%02d%02d" % (1 + i % 12, 1 + i % 28), "101500"
        ds.AccessionNumber, ds.Modality = "A%06d" % i, "CT"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = "%s.1.%d" % (R, i), "%s.2.%d" % (R, i)
        ds.Rows = ds.Columns = 8
        ds.BitsAllocated = 8
        ds.PixelData = bytes(64)
        f = BytesIO()
        ds.save_as(f, write_like_original=False)
        body += b"--BB\r\nContent-Type: application/dicom\r\n\r\n" + f.getvalue() + b"\r\n"
    open("%s/stow%d.mp" % (T, b), "wb").write(body + b"--BB--\r\n")
EOF
for b in $(seq 0 9); do
	"${C[@]}" -o /dev/null -H "Authorization: Bearer $TOK" -H 'Content-Type: multipart/related; type="application/dicom"; boundary=BB' \
		--data-binary @"$T/stow$b.mp" "$U/dicom-web/studies"
done
if [ "$N" -gt 1000 ]; then
	"$PY" - "$T/v/index.db" "$N" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
extra = int(sys.argv[2]) - 1000
db.execute("PRAGMA synchronous=OFF")
with db:
    db.execute("""INSERT INTO patients (key_hmac, name_hmac, wrapped_key, enc, id_hmac)
        SELECT randomblob(32), randomblob(32), wrapped_key, enc, randomblob(32)
        FROM patients, (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) SELECT x FROM c)
        WHERE patients.id = 1""", (extra,))
    db.execute("""INSERT INTO studies (patient_id, uid, collection, date, time, modalities, accession_hmac, enc, n_series, n_instances)
        SELECT p.id, '2.25.' || abs(random()), 'default', '2019' || printf('%02d%02d', 1 + p.id % 12, 1 + p.id % 28),
               '120000', 'MR', randomblob(32), s.enc, 1, 1
        FROM patients p, studies s WHERE s.id = 1 AND p.id > 1000""")
    db.execute("""INSERT INTO series (study_id, uid, modality, number, enc, n_instances)
        SELECT s.id, '2.25.' || abs(random()), 'MR', 1, x.enc, 1 FROM studies s, series x WHERE x.id = 1 AND s.id > 1000""")
    db.execute("""INSERT INTO instances (series_id, uid, sop_class, ts_uid, number, object_key, size, sha256, created)
        SELECT se.id, '2.25.' || abs(random()), '1.2.840.10008.5.1.4.1.1.4', '1.2.840.10008.1.2.1', 1,
               lower(hex(randomblob(16))), 1, randomblob(32), 0 FROM series se WHERE se.id > 1000""")
db.execute("ANALYZE")
print("# studies:", db.execute("select count(*) from studies").fetchone()[0])
EOF
fi
R=1.2.826.0.1.3680043.9.7779
measure() {  # NAME URL-SUFFIX [RESULTS]: RESULTS, the answer's array length, is checked first
	local args=() i got
	if [ -n "${3:-}" ]; then
		"${C[@]}" -H "Authorization: Bearer $TOK" -H 'Accept: application/dicom+json' "$U/$2" >"$T/answer"
		got=$("$PY" -c 'import json,sys; a=json.load(open(sys.argv[1])); print(len(a) if isinstance(a, list) else "not a list")' \
			"$T/answer" 2>/dev/null || echo "not JSON")
		if [ "$got" != "$3" ]; then
			echo "qido.sh: $1: $got results where $3 were expected" >&2
			exit 1
		fi
	fi
	for i in $(seq "$REPS"); do args+=(-o /dev/null "$U/$2"); done
	"${C[@]}" -H "Authorization: Bearer $TOK" -H 'Accept: application/dicom+json' \
		-w '%{time_total}\n' "${args[@]}" >"$T/times"
	"$PY" - "$1" "$T/times" <<'EOF'
import sys
t = sorted(float(x) * 1000 for x in open(sys.argv[2]).read().split()[1:])   # the first sets up TLS
q = lambda p: t[min(len(t) - 1, int(p * len(t)))]
print("%-34s p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  (n=%d)" % (sys.argv[1], q(0.5), q(0.9), q(0.99), len(t)))
EOF
}
echo "# $N studies, $REPS queries each, one keep-alive TLS 1.3 connection"
measure "baseline: whoami (session only)" "api/auth/whoami"
measure "StudyInstanceUID (1 result)" "dicom-web/studies?StudyInstanceUID=$R.1.500" 1
measure "PatientID (1 result)" "dicom-web/studies?PatientID=BENCH-0500" 1
measure "PatientName exact (1 result)" "dicom-web/studies?PatientName=bench%5Epatient0500" 1
measure "series of a study (1 result)" "dicom-web/studies/$R.1.500/series" 1
# March 2020: 83 of the real studies (the padding's are of 2019); until
# session 16 this asked for 1-2 March, which none has, and timed 0 results
measure "StudyDate range, limit=10" "dicom-web/studies?StudyDate=20200301-20200331&limit=10" 10
