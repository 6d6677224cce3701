#!/bin/bash
# swap.sh: two stored objects of the same patient (one data key for both)
# whose files are swapped on disk. Each object is encrypted with its key
# and SOP Instance UID bound in, so neither decrypts under the other's
# name: WADO-RS and WADO-URI of either, and a frame, fail (an error or a
# body cut short) and never release a byte of the other instance (nor its
# metadata); each failure is audited as "integrity check failed"; the
# server keeps serving (a third instance reads back byte for byte) and the
# audit trail still verifies. Instances are stored one at a time over
# STOW-RS, the object file of each found as the one new file under
# objects/. Prints ok/not ok lines. Env DV: the CLI under test; KEEP=1
# keeps the directory.
set -u
DV=${DV:-build/check/dicomvault}
PY=/usr/bin/python3
TF=/usr/lib/python3/dist-packages/pydicom/data/test_files
TEST=swap
. "$(dirname "$0")/lib/tap.sh"
tap_setup swap

if ! "$DV" serve --help >/dev/null 2>&1; then
	echo "# SKIP swap: $DV has no serve command"
	exit 0
fi
[ -f "$TF/CT_small.dcm" ] || { echo "# SKIP swap: no pydicom test files"; exit 0; }
command -v oathtool >/dev/null || { echo "# SKIP swap: no oathtool"; exit 0; }

# ---- three instances of one patient (CT_small's), all of one size: a, b
# (its pixels inverted, so that its bytes differ from a's beyond the UID)
# and c ----
R=1.2.826.0.1.3680043.8.498.5529
"$PY" - "$TF/CT_small.dcm" "$T" "$R" <<'EOF' || { no "test files"; exit 0; }
import sys, pydicom
src, out, r = sys.argv[1:4]
for i, x in enumerate("abc"):
    d = pydicom.dcmread(src)
    d.SOPInstanceUID = "%s.%d" % (r, i + 1)
    d.file_meta.MediaStorageSOPInstanceUID = d.SOPInstanceUID
    if x == "b":
        d.PixelData = bytes(v ^ 0xFF for v in d.PixelData)
    d.save_as("%s/%s.dcm" % (out, x), write_like_original=False)
EOF
read -r ST SE PID < <("$PY" -c '
import sys, pydicom
d = pydicom.dcmread(sys.argv[1], stop_before_pixels=True)
print(d.StudyInstanceUID, d.SeriesInstanceUID, d.PatientID)' "$T/a.dcm")
SOP_A=$R.1 SOP_B=$R.2 SOP_C=$R.3

# ---- a vault, a server, a session ----
. "$(dirname "$0")/lib/http.sh"
dv_session || exit 0

# get NAME URL: a GET with the session; body (empty if none came), status
# and curl's exit status (18: the answer was cut short) in $T/NAME.*
get() {
	: >"$T/$1.body"
	curl -s --tlsv1.3 --cacert "$T/v/keys/tls.crt" --max-time 20 -H "$AUTH" -o "$T/$1.body" -D "$T/$1.hdr" \
		-w '%{http_code}' "$2" >"$T/$1.code" 2>/dev/null
	echo $? >"$T/$1.rc"
}
# failed NAME: not a whole 200 answer
failed() { [ "$(cat "$T/$1.rc")" != 0 ] || [ "$(code "$1")" != 200 ]; }
# none_of NAME FILE SOP: the answer holds no DICOM file (no "DICM"), no
# 256 bytes of FILE's pixel data and not the SOP Instance UID SOP
none_of() {
	"$PY" - "$T/$1.body" "$2" "$3" <<'EOF'
import sys, pydicom
body, f, sop = open(sys.argv[1], "rb").read(), sys.argv[2], sys.argv[3].encode()
px = pydicom.dcmread(f).PixelData
bad = b"DICM" in body or sop in body or any(px[i:i + 256] in body for i in range(0, len(px) - 256, 4096))
sys.exit(1 if bad else 0)
EOF
}
# unmp NAME: the single part of a multipart/related answer, in $T/NAME.dcm
unmp() {
	"$PY" - "$T/$1.body" "$T/$1.hdr" "$T/$1.dcm" <<'EOF'
import re, sys
raw, hdr = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read().decode("latin1")
b = re.search(r'(?im)^content-type:\s*multipart/related;.*boundary="?([^";\r\n]+)', hdr).group(1).encode()
parts = raw.split(b"--" + b)
assert len(parts) == 3 and parts[0] == b"" and parts[2] in (b"--\r\n", b"--")
head, body = parts[1].split(b"\r\n\r\n", 1)
open(sys.argv[3], "wb").write(body[:-2])
EOF
}
rs() { echo "$U/dicom-web/studies/$ST/series/$SE/instances/$1"; }
uri() { echo "$U/wado?requestType=WADO&studyUID=$ST&seriesUID=$SE&objectUID=$1&contentType=application/dicom"; }
# objs: the object files under objects/ (not its .pending/ or other dot
# entries), relative, sorted
objs() { (cd "$T/v/objects" && find . -path './.*' -prune -o -type f -size +0 -print | sort); }

# ---- store one at a time; each adds one object file ----
for x in a b c; do
	objs >"$T/before"
	"$PY" - "$T/$x.dcm" "$T/$x.mp" <<'EOF'
import sys
b = b"SwAp.42"
open(sys.argv[2], "wb").write(b"--" + b + b"\r\nContent-Type: application/dicom\r\n\r\n" +
                              open(sys.argv[1], "rb").read() + b"\r\n--" + b + b"--\r\n")
EOF
	req "stow_$x" -H "$AUTH" -H 'Content-Type: multipart/related; type="application/dicom"; boundary=SwAp.42' \
		-H 'Accept: application/dicom+json' --data-binary @"$T/$x.mp" "$U/dicom-web/studies"
	objs | comm -13 "$T/before" - >"$T/new_$x"
	check "STOW of $x: 200, one new object file" "[ \$(code stow_$x) = 200 ] && [ \$(wc -l <$T/new_$x) = 1 ]"
done
OA=$T/v/objects/$(cat "$T/new_a") OB=$T/v/objects/$(cat "$T/new_b")
check "a and b: the same size on disk, files of their own" \
	"[ -f '$OA' ] && [ -f '$OB' ] && [ '$OA' != '$OB' ] && [ \$(stat -c %s '$OA') = \$(stat -c %s '$OB') ]"
get base_a "$(rs "$SOP_A")"
get base_b "$(uri "$SOP_B")"
check "before the swap: a (WADO-RS) and b (WADO-URI) read back byte for byte" \
	"! failed base_a && unmp base_a 2>/dev/null && cmp -s $T/base_a.dcm $T/a.dcm && ! failed base_b && cmp -s $T/base_b.body $T/b.dcm"

# ---- swap the two files ----
mv "$OA" "$T/swap.tmp" && mv "$OB" "$OA" && mv "$T/swap.tmp" "$OB"
check "swapped on disk" "[ -f '$OA' ] && [ -f '$OB' ] && [ ! -e $T/swap.tmp ]"

get rs_a "$(rs "$SOP_A")"
check "WADO-RS of a (b's file under its name): fails" "failed rs_a"
check "WADO-RS of a: not a byte of b, nor of a" "none_of rs_a $T/b.dcm $SOP_B && none_of rs_a $T/a.dcm $SOP_B && ! cmp -s $T/rs_a.body $T/b.dcm"
get rs_b "$(rs "$SOP_B")"
check "WADO-RS of b (a's file under its name): fails" "failed rs_b"
check "WADO-RS of b: not a byte of a, nor of b" "none_of rs_b $T/a.dcm $SOP_A && none_of rs_b $T/b.dcm $SOP_A && ! cmp -s $T/rs_b.body $T/a.dcm"
get uri_a "$(uri "$SOP_A")"
get uri_b "$(uri "$SOP_B")"
check "WADO-URI of a and of b: fail, neither releases the other" \
	"failed uri_a && failed uri_b && none_of uri_a $T/b.dcm $SOP_B && none_of uri_b $T/a.dcm $SOP_A && none_of uri_a $T/a.dcm $SOP_B && none_of uri_b $T/b.dcm $SOP_A"
# its first chunk is authenticated before the answer begins: a clean
# error, not a 200 cut short (since session 12)
check "WADO-RS and WADO-URI of a swapped object: 500 problem+json, before any byte" \
	"problem rs_a 500 && problem rs_b 500 && problem uri_a 500 && problem uri_b 500"
get meta_a "$(rs "$SOP_A")/metadata"
check "WADO-RS metadata of a: not b's attributes (an error, or a's own)" \
	"none_of meta_a $T/b.dcm $SOP_B && { failed meta_a || grep -q '$SOP_A' $T/meta_a.body; }"
get frame_b "$(rs "$SOP_B")/frames/1"
check "WADO-RS frame 1 of b: fails, not a pixel of either" \
	"failed frame_b && none_of frame_b $T/a.dcm $SOP_A && none_of frame_b $T/b.dcm $SOP_A"

# ---- the server keeps serving ----
get rs_c "$(rs "$SOP_C")"
get uri_c "$(uri "$SOP_C")"
check "then c reads back byte for byte (WADO-RS and WADO-URI)" \
	"! failed rs_c && unmp rs_c 2>/dev/null && cmp -s $T/rs_c.dcm $T/c.dcm && ! failed uri_c && cmp -s $T/uri_c.body $T/c.dcm"
req alive "$U/healthz"
check "the server keeps running" "[ \$(code alive) = 200 ] && kill -0 $SRV"

# ---- stop, audit ----
kill -TERM "$SRV"
for _ in $(seq 100); do kill -0 "$SRV" 2>/dev/null || break; sleep 0.1; done
check "the server stops on SIGTERM" "! kill -0 $SRV 2>/dev/null"
wait "$SRV" 2>/dev/null
SRV=
LOG="$T/v/audit/audit.log"
# fails_of SOP: the patients (keyed hashes) of the records of failed
# retrievals of SOP for an integrity check (integrity-failure records)
fails_of() {
	"$PY" - "$LOG" "$1" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    o = r.get("objects", {})
    if r.get("action") == "integrity-failure" and r.get("outcome") == "failure" and \
       r.get("reason") == "integrity check failed" and o.get("sop") == sys.argv[2]:
        print(o.get("patient"))
EOF
}
fails_of "$SOP_A" >"$T/fail_a"
fails_of "$SOP_B" >"$T/fail_b"
fails_of "$SOP_C" >"$T/fail_c"
check "audit: the failed retrievals of a and of b, each \"integrity check failed\"" \
	"[ \$(wc -l <$T/fail_a) -ge 2 ] && [ \$(wc -l <$T/fail_b) -ge 2 ] && [ ! -s $T/fail_c ]"
check "audit: a and b are one patient's (so one data key: the swap is caught by the binding, not the key)" \
	"[ \$(sort -u $T/fail_a $T/fail_b | wc -l) = 1 ] && grep -qE '^[0-9a-f]{64}\$' $T/fail_a"
check "audit: the raw patient ID is in no record" "[ -s $LOG ] && ! grep -qaw '$PID' $LOG"
"$DV" audit verify --vault "$T/v" >"$T/verify.out" 2>&1
check "audit verify passes" "[ \$? = 0 ]"
exit 0
