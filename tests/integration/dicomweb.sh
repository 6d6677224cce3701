#!/bin/bash
# dicomweb.sh: DICOMweb part 1 against the real `dicomvault serve`: STOW-RS
# (several instances, a junk part, identical re-upload, a changed object
# with the same SOP Instance UID, the study in the path, a study of another
# patient and a series of another study), WADO-RS and
# WADO-URI (bytes identical, dcmdump reads them), 404/400/401/406/415,
# malformed multipart bodies (the server keeps serving), no patient name
# or ID in the vault or the server's log, and the audit trail. curl +
# oathtool as in http_auth.sh; bodies are built and answers checked with
# python3 (stdlib). Prints ok/not ok lines. Env DV: the CLI under test;
# KEEP=1 keeps the directory.
set -u
DV=${DV:-build/check/dicomvault}
PY=/usr/bin/python3
TF=/usr/lib/python3/dist-packages/pydicom/data/test_files
TEST=dicomweb
. "$(dirname "$0")/lib/tap.sh"
tap_setup dicomweb

if ! "$DV" serve --help >/dev/null 2>&1; then
	echo "# SKIP dicomweb: $DV has no serve command"
	exit 0
fi
for f in CT_small MR_small JPEG2000 rtplan; do
	[ -f "$TF/$f.dcm" ] || { echo "# SKIP dicomweb: no pydicom test files"; exit 0; }
	cp "$TF/$f.dcm" "$T/$f.dcm"
done
command -v oathtool >/dev/null || { echo "# SKIP dicomweb: no oathtool"; exit 0; }

# ---- a vault, a server, a session ----
. "$(dirname "$0")/lib/http.sh"
dv_session || exit 0

# mp OUT BOUNDARY FILE...: a multipart/related body (a FILE named junk:TEXT
# is a text/plain part)
mp() {
	"$PY" - "$@" <<'EOF'
import sys
out, b, files = sys.argv[1], sys.argv[2].encode(), sys.argv[3:]
body = b"preamble\r\n"
for f in files:
    if f.startswith("junk:"):
        body += b"--" + b + b"\r\nContent-Type: text/plain\r\n\r\n" + f[5:].encode() + b"\r\n"
    elif f.startswith("raw:"):
        body += b"--" + b + b"\r\nContent-Type: application/dicom\r\n\r\n" + f[4:].encode() + b"\r\n"
    else:
        body += b"--" + b + b"\r\nContent-Type: application/dicom\r\nContent-Location: x\r\n\r\n" + open(f, "rb").read() + b"\r\n"
body += b"--" + b + b"--\r\n"
open(out, "wb").write(body)
EOF
}
CT='Content-Type: multipart/related; type="application/dicom"; boundary=BoUnDaRy.42'
# a request refused from its headers is answered before its body is read
# and the connection closed: with Expect, curl waits for the answer first
EXPECT='Expect: 100-continue'
stow() {  # NAME BODYFILE [path suffix] [curl args...]
	local n=$1 f=$2 p=${3:-}
	shift 3 2>/dev/null || shift $#
	req "$n" -H "$AUTH" -H "$CT" -H 'Accept: application/dicom+json' -H "$EXPECT" --data-binary @"$f" "$@" "$U/dicom-web/studies$p"
}
# js NAME EXPR: evaluates a Python expression over d = the JSON answer
js() { "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$T/$1.body" 2>/dev/null; }
uids() {  # FILE -> "study series sop class"
	"$PY" -c '
import sys, pydicom
d = pydicom.dcmread(sys.argv[1], stop_before_pixels=True)
print(d.StudyInstanceUID, d.SeriesInstanceUID, d.SOPInstanceUID, d.SOPClassUID)' "$1"
}

# ---- STOW-RS ----
mp "$T/four.mp" BoUnDaRy.42 "$T/CT_small.dcm" "$T/MR_small.dcm" "$T/JPEG2000.dcm" "$T/rtplan.dcm"
stow four "$T/four.mp"
check "STOW of 4 instances: 200 application/dicom+json" "[ \$(code four) = 200 ] && hdr four Content-Type | grep -q '^application/dicom+json'"
check "ReferencedSOPSequence has all 4, with RetrieveURLs" "js four 'len(d[\"00081199\"][\"Value\"]) == 4 and \"00081198\" not in d and all(i[\"00081190\"][\"Value\"][0].startswith(\"$U/dicom-web/studies/\") for i in d[\"00081199\"][\"Value\"])'"
read -r CT_ST CT_SE CT_SOP CT_CLS < <(uids "$T/CT_small.dcm")
check "CT item has its SOP Class and Instance UIDs" "js four 'any(i[\"00081155\"][\"Value\"] == [\"$CT_SOP\"] and i[\"00081150\"][\"Value\"] == [\"$CT_CLS\"] for i in d[\"00081199\"][\"Value\"])'"
# the index's SHA-256 fixity of each instance: the SHA-256 of the bytes sent
# ix_sha SOP: the instances.sha256 column (src/backend/index_sqlite.c) as hex
ix_sha() {
	"$PY" -c 'import sqlite3,sys; r=sqlite3.connect(sys.argv[1]).execute("select sha256 from instances where uid=?", (sys.argv[2],)).fetchone(); print(r[0].hex() if r else "-")' "$T/v/index.db" "$1" 2>/dev/null
}
fix_ok=1
for f in CT_small MR_small JPEG2000 rtplan; do
	read -r _ _ sop _ < <(uids "$T/$f.dcm")
	want=$(sha256sum "$T/$f.dcm" | cut -d' ' -f1)
	got=$(ix_sha "$sop")
	[ "$got" = "$want" ] || { fix_ok=0; echo "# $f: index sha256 $got, sent $want"; }
done
check "fixity: the index's SHA-256 of each stored instance is that of the bytes sent" "[ $fix_ok = 1 ]"
# a patient of our own with a distinctive birth date and free text (study
# description, referring physician, institution), looked for in clear at
# the end with the names and IDs
"$PY" - "$T/CT_small.dcm" "$T/phi.dcm" <<'EOF'
import sys, pydicom
d = pydicom.dcmread(sys.argv[1])
d.PatientName, d.PatientID, d.PatientBirthDate = "Quellwasser^Ottilie", "QW-73521-X", "19370611"
d.StudyDescription, d.ReferringPhysicianName = "Knirpsgelenk Verlauf", "Zwiebelmann^Hartmut"
d.InstitutionName = "Klinikum Zwiebelfeld"
d.StudyInstanceUID, d.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.7601", "1.2.826.0.1.3680043.8.498.7602"
d.SOPInstanceUID = d.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.7603"
d.save_as(sys.argv[2], write_like_original=False)
EOF
mp "$T/phi.mp" BoUnDaRy.42 "$T/phi.dcm"
stow phi_stow "$T/phi.mp"
req phi_q -H "$AUTH" -H 'Accept: application/dicom+json' \
	"$U/dicom-web/studies?PatientID=QW-73521-X&includefield=00081030,00100030,00080090"
check "an instance with a birth date, a study description and a referring physician: stored and indexed" \
	"[ \$(code phi_stow) = 200 ] && [ \$(code phi_q) = 200 ] && js phi_q 'len(d) == 1 and d[0][\"00100030\"][\"Value\"] == [\"19370611\"] and d[0][\"00081030\"][\"Value\"] == [\"Knirpsgelenk Verlauf\"] and d[0][\"00080090\"][\"Value\"][0][\"Alphabetic\"] == \"Zwiebelmann^Hartmut\"'"

mp "$T/mixed.mp" BoUnDaRy.42 "$T/CT_small.dcm" "junk:this is not DICOM" "raw:DICM but not really"
stow mixed "$T/mixed.mp"
check "mixed request with junk parts: 202" "[ \$(code mixed) = 202 ]"
check "202: one stored, two FailedSOPSequence items with FailureReason" "js mixed 'len(d[\"00081199\"][\"Value\"]) == 1 and len(d[\"00081198\"][\"Value\"]) == 2 and all(i[\"00081197\"][\"Value\"][0] == 0xC000 for i in d[\"00081198\"][\"Value\"])'"

stow again "$T/four.mp"
check "identical re-upload: 200" "[ \$(code again) = 200 ] && js again 'len(d[\"00081199\"][\"Value\"]) == 4'"

# three requests storing the same new instances at once (encryption runs
# unlocked, so they race to the index): all succeed, one copy is kept
PYD=/usr/lib/python3/dist-packages/pydicom/data/test_files
mp "$T/race.mp" BoUnDaRy.42 "$T/MR_small.dcm" "$PYD/rtdose.dcm" "$PYD/SC_rgb_rle.dcm"
RACE=()
for i in 1 2 3; do
	stow "race$i" "$T/race.mp" &
	RACE+=($!)
done
wait "${RACE[@]}"   # not a bare wait: the server is a background job too
check "concurrent identical STOWs: all 200 with 3 instances" "for i in 1 2 3; do [ \$(code race\$i) = 200 ] && js race\$i 'len(d[\"00081199\"][\"Value\"]) == 3' || exit 1; done"
check "concurrent identical STOWs: one instance row each" "[ \$(\"$PY\" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select count(*) from instances\").fetchone()[0])' $T/v/index.db) = \$(\"$PY\" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select count(distinct uid) from instances\").fetchone()[0])' $T/v/index.db) ]"

"$PY" - "$T/CT_small.dcm" "$T/CT_changed.dcm" <<'EOF'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
# one pixel byte: the last, before the Data Set Trailing Padding (FFFC,FFFC)
# that ends the file (a change there alone is the same data set)
pad = b.rfind(b"\xfc\xff\xfc\xff")
assert pad > 0
b[pad - 1] ^= 0x01
open(sys.argv[2], "wb").write(b)
EOF
mp "$T/changed.mp" BoUnDaRy.42 "$T/CT_changed.dcm"
stow changed "$T/changed.mp"
check "same SOP UID, one byte changed: 409 with a failure reason" "[ \$(code changed) = 409 ] && js changed 'd[\"00081198\"][\"Value\"][0][\"00081197\"][\"Value\"][0] == 0x0111 and d[\"00081198\"][\"Value\"][0][\"00081155\"][\"Value\"] == [\"$CT_SOP\"]'"

# many parts in one request (stored by the request's workers while the
# next part arrives): ten new instances, one over 1 MiB (its spool spills to
# an encrypted file), a junk part and a changed duplicate among them; the
# answer lists every part in the order sent, with its own outcome
"$PY" - "$T/CT_small.dcm" "$T/pipe" <<'EOF'
import sys, os, pydicom
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
for i in range(10):
    d = pydicom.dcmread(src)
    d.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.7700%d" % i
    d.file_meta.MediaStorageSOPInstanceUID = d.SOPInstanceUID
    if i == 4:
        d.add_new(0x00110010, "LO", "DV TEST")
        d.add_new(0x00111000, "OB", bytes(range(256)) * 8192)   # 2 MiB
    d.save_as("%s/p%d.dcm" % (out, i), write_like_original=False)
EOF
P=$T/pipe
mp "$T/pipe.mp" BoUnDaRy.42 "$P/p0.dcm" "junk:not DICOM" "$P/p1.dcm" "$P/p2.dcm" "$P/p3.dcm" "$P/p4.dcm" \
	"$T/CT_changed.dcm" "$P/p5.dcm" "$P/p6.dcm" "$P/p7.dcm" "$P/p8.dcm" "$P/p9.dcm"
stow pipe "$T/pipe.mp"
check "12 parts in one request: 202, ten stored in part order" "[ \$(code pipe) = 202 ] && js pipe '[i[\"00081155\"][\"Value\"][0] for i in d[\"00081199\"][\"Value\"]] == [\"1.2.826.0.1.3680043.8.498.7700%d\" % i for i in range(10)]'"
check "12 parts in one request: the junk part and the changed duplicate failed, in order" "js pipe '[i[\"00081197\"][\"Value\"][0] for i in d[\"00081198\"][\"Value\"]] == [0xC000, 0x0111] and d[\"00081198\"][\"Value\"][1][\"00081155\"][\"Value\"] == [\"$CT_SOP\"]'"
req pipe_big -H "$AUTH" \
	"$U/wado?requestType=WADO&studyUID=$CT_ST&seriesUID=$CT_SE&objectUID=1.2.826.0.1.3680043.8.498.77004&contentType=application/dicom"
check "the 2 MiB part of the request reads back byte for byte" "[ \$(code pipe_big) = 200 ] && cmp -s $T/pipe_big.body $P/p4.dcm"

# two different objects under one SOP Instance UID in one request, in
# pairs (A1 B1 A2 B2 ...), four requests (the last without Pixel Data, so
# that the parts' UIDs are read at their end, not from an early object):
# the first of each pair is kept and answered stored, the second fails as
# a duplicate, whatever the workers' timing (a part waits for an earlier
# one of the same instance)
"$PY" - "$T/CT_small.dcm" "$T/dup" <<'EOF'
import sys, os, pydicom
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
for r in range(4):
    for i in range(4):
        for v in "ab":
            d = pydicom.dcmread(src)
            if r == 3:
                del d.PixelData
            d.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.79%d%d" % (r, i)
            d.file_meta.MediaStorageSOPInstanceUID = d.SOPInstanceUID
            d.StudyDescription = "version " + v
            d.save_as("%s/r%d_%d%s.dcm" % (out, r, i, v), write_like_original=False)
EOF
dup_ok=1
for r in 0 1 2 3; do
	mp "$T/dup$r.mp" BoUnDaRy.42 "$T/dup/r${r}_0a.dcm" "$T/dup/r${r}_0b.dcm" "$T/dup/r${r}_1a.dcm" "$T/dup/r${r}_1b.dcm" \
		"$T/dup/r${r}_2a.dcm" "$T/dup/r${r}_2b.dcm" "$T/dup/r${r}_3a.dcm" "$T/dup/r${r}_3b.dcm"
	stow "dup$r" "$T/dup$r.mp"
	[ "$(code "dup$r")" = 202 ] && js "dup$r" 'len(d["00081199"]["Value"]) == 4 and [i["00081197"]["Value"][0] for i in d["00081198"]["Value"]] == [0x0111] * 4' || dup_ok=0
	for i in 0 1 2 3; do
		req "dupget$r$i" -H "$AUTH" \
			"$U/wado?requestType=WADO&studyUID=$CT_ST&seriesUID=$CT_SE&objectUID=1.2.826.0.1.3680043.8.498.79$r$i&contentType=application/dicom"
		cmp -s "$T/dupget$r$i.body" "$T/dup/r${r}_${i}a.dcm" || { dup_ok=0; echo "# pair $r$i: not the first part's bytes"; }
	done
done
check "two objects under one SOP Instance UID in one request: the first part is kept, every time" "[ $dup_ok = 1 ]"

# ten such requests at once, five new parts each: more parts in flight than
# the server's slots (16), so some requests wait for others' workers; all
# complete, every instance stored once
"$PY" - "$T/CT_small.dcm" "$T/many" <<'EOF'
import sys, os, pydicom
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
for r in range(10):
    for i in range(5):
        d = pydicom.dcmread(src)
        d.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.78%d%d" % (r, i)
        d.file_meta.MediaStorageSOPInstanceUID = d.SOPInstanceUID
        d.save_as("%s/r%d_%d.dcm" % (out, r, i), write_like_original=False)
EOF
MANY=()
for r in 0 1 2 3 4 5 6 7 8 9; do
	mp "$T/many$r.mp" BoUnDaRy.42 "$T"/many/r${r}_*.dcm
	stow "many$r" "$T/many$r.mp" &
	MANY+=($!)
done
wait "${MANY[@]}"
check "ten 5-part requests at once: all 200 with their 5 instances" "for r in 0 1 2 3 4 5 6 7 8 9; do [ \$(code many\$r) = 200 ] && js many\$r 'len(d[\"00081199\"][\"Value\"]) == 5' || exit 1; done"
check "ten 5-part requests at once: 50 instance rows" "[ \$(\"$PY\" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select count(*) from instances where uid like ?\", (\"1.2.826.0.1.3680043.8.498.78%\",)).fetchone()[0])' $T/v/index.db) = 50 ]"

# a client that goes away in the middle of its fourth part: the three
# parts it sent whole are stored (as when each was stored before the next
# was read), the fourth is not, and the server keeps serving
"$PY" - "$PORT" "$T/v/keys/tls.crt" "$TOK" "$P" <<'EOF'
import sys, ssl, socket, pydicom
port, ca, tok, d = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
parts = []
for i in range(4):
    x = pydicom.dcmread("%s/p%d.dcm" % (d, i))
    x.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.7710%d" % i
    x.file_meta.MediaStorageSOPInstanceUID = x.SOPInstanceUID
    x.save_as("%s/a%d.dcm" % (d, i), write_like_original=False)
    parts.append(b"--B\r\nContent-Type: application/dicom\r\n\r\n" + open("%s/a%d.dcm" % (d, i), "rb").read() + b"\r\n")
body = b"".join(parts[:3]) + parts[3][: len(parts[3]) // 2]
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1")
s.sendall(("POST /dicom-web/studies HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
           "Content-Type: multipart/related; type=\"application/dicom\"; boundary=B\r\n"
           "Content-Length: %d\r\n\r\n" % (tok, len(body) * 2)).encode() + body)
s.close()
EOF
ok_abort=1
for i in 0 1 2; do
	for _ in $(seq 50); do
		req "ab$i" -H "$AUTH" \
			"$U/wado?requestType=WADO&studyUID=$CT_ST&seriesUID=$CT_SE&objectUID=1.2.826.0.1.3680043.8.498.7710$i&contentType=application/dicom"
		[ "$(code "ab$i")" = 200 ] && break
		sleep 0.1
	done
	cmp -s "$T/ab$i.body" "$P/a$i.dcm" || ok_abort=0
done
check "client gone mid-part: the three whole parts are stored" "[ $ok_abort = 1 ]"
req ab3 -H "$AUTH" \
	"$U/wado?requestType=WADO&studyUID=$CT_ST&seriesUID=$CT_SE&objectUID=1.2.826.0.1.3680043.8.498.77103&contentType=application/dicom"
check "client gone mid-part: the cut part is not, and the server keeps serving" "problem ab3 404 && kill -0 $SRV"

mp "$T/ct.mp" BoUnDaRy.42 "$T/CT_small.dcm"
stow study_ok "$T/ct.mp" "/$CT_ST"
check "STOW to /studies/{its study}: 200 + study RetrieveURL" "[ \$(code study_ok) = 200 ] && js study_ok 'd[\"00081190\"][\"Value\"] == [\"$U/dicom-web/studies/$CT_ST\"]'"
stow study_bad "$T/ct.mp" "/1.2.3.4"
check "STOW to another study: 409, Study Instance UID mismatch" "[ \$(code study_bad) = 409 ] && js study_bad 'd[\"00081198\"][\"Value\"][0][\"00081197\"][\"Value\"][0] == 0xC409'"
check "STOW to another study, nothing stored: an empty RetrieveURL (Type 2), no study named" \
	"js study_bad 'd[\"00081190\"] == {\"vr\": \"UR\"}'"
# a Study Instance UID of another patient's and a Series Instance UID of
# another study's (the first also without Pixel Data: no early object):
# refused, nothing stored, and no store success record for them (it was
# written before the index found the conflict, followed by a failure
# naming no patient: a report by patient listed a successful store); the
# failure names the sender's patient, another than CT_small's
"$PY" - "$T/CT_small.dcm" "$T/conf" <<'EOF'
import sys, os, pydicom
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
def variant(name, sop, pixels=True, **kw):
    d = pydicom.dcmread(src)
    d.SOPInstanceUID = d.file_meta.MediaStorageSOPInstanceUID = sop
    for k, v in kw.items():
        setattr(d, k, v)
    if not pixels:
        del d.PixelData
    d.save_as("%s/%s.dcm" % (out, name), write_like_original=False)
variant("pat", "1.2.826.0.1.3680043.8.498.7651", PatientID="XYZ-OTHER")
variant("pat_np", "1.2.826.0.1.3680043.8.498.7652", pixels=False, PatientID="XYZ-OTHER")
variant("study", "1.2.826.0.1.3680043.8.498.7653", StudyInstanceUID="1.2.826.0.1.3680043.8.498.7659")
EOF
mp "$T/conf.mp" BoUnDaRy.42 "$T/conf/pat.dcm" "$T/conf/pat_np.dcm" "$T/conf/study.dcm"
stow conf "$T/conf.mp"
check "a study of another patient, a series of another study: 409, each part failed (0110H)" \
	"[ \$(code conf) = 409 ] && js conf '\"Value\" not in d[\"00081199\"] and sorted(i[\"00081155\"][\"Value\"][0] for i in d[\"00081198\"][\"Value\"]) == [\"1.2.826.0.1.3680043.8.498.765%d\" % i for i in (1, 2, 3)] and all(i[\"00081197\"][\"Value\"][0] == 0x0110 for i in d[\"00081198\"][\"Value\"])'"
# conf_records LOG CT_SOP: per refused part, its store records' outcomes and
# whose patient the failure names (other: not CT_small's)
conf_records() {
	"$PY" - "$1" "$2" <<'EOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if '"type":"event"' in l]
store = [r for r in recs if r["action"] == "store"]
ct = [r["objects"]["patient"] for r in store if r["objects"].get("sop") == sys.argv[2] and r["outcome"] == "success"][0]
for sop in ("1.2.826.0.1.3680043.8.498.765%d" % i for i in (1, 2, 3)):
    mine = [r for r in store if r["objects"].get("sop") == sop]
    who = ["-" if "patient" not in r["objects"] else "ct" if r["objects"]["patient"] == ct else "other" for r in mine]
    print(sop, " ".join(r["outcome"] for r in mine), " ".join(who))
EOF
}
conf_records "$T/v/audit/audit.log" "$CT_SOP" >"$T/conf.rec" 2>&1
check "those parts: one store record each, a failure naming the sender's patient; no success record" \
	"grep -qx '1.2.826.0.1.3680043.8.498.7651 failure other' $T/conf.rec && grep -qx '1.2.826.0.1.3680043.8.498.7652 failure other' $T/conf.rec && grep -qx '1.2.826.0.1.3680043.8.498.7653 failure ct' $T/conf.rec" "$T/conf.rec"
req stow_xml -H "$AUTH" -H "$CT" -H 'Accept: application/dicom+xml' -H "$EXPECT" --data-binary @"$T/ct.mp" "$U/dicom-web/studies"
check "STOW asking for a DICOM XML answer only (dcm4che's stowrs): stored, answered in DICOM JSON" \
	"[ \$(code stow_xml) = 200 ] && hdr stow_xml Content-Type | grep -q '^application/dicom+json' && js stow_xml '\"00081199\" in d'"
gzip -c "$T/ct.mp" >"$T/ct.mp.gz"
req stow_gz -H "$AUTH" -H "$CT" -H 'Content-Encoding: gzip' -H "$EXPECT" --data-binary @"$T/ct.mp.gz" "$U/dicom-web/studies"
check "STOW with a content-encoded body: 415, Accept-Encoding: identity" \
	"problem stow_gz 415 && hdr stow_gz Accept-Encoding | grep -q identity"
req stow_json -H "$AUTH" -H "$CT" -H 'Accept: application/dicom+json;q=0, application/json' -H "$EXPECT" --data-binary @"$T/ct.mp" "$U/dicom-web/studies"
check "STOW with application/dicom+json refused and application/json taken: answered as application/json" \
	"[ \$(code stow_json) = 200 ] && hdr stow_json Content-Type | grep -q '^application/json' && js stow_json '\"00081199\" in d'"
stow study_syntax "$T/ct.mp" "/1.2.x"
check "STOW to a malformed study UID: 400" "problem study_syntax 400"

# ---- malformed requests ----
req wrongtype -H "$AUTH" -H "$EXPECT" -H 'Content-Type: application/dicom' --data-binary @"$T/CT_small.dcm" "$U/dicom-web/studies"
check "wrong Content-Type: 415" "problem wrongtype 415"
req wrongtype2 -H "$AUTH" -H "$EXPECT" -H 'Content-Type: multipart/related; type="application/dicom+json"; boundary=x' --data-binary @"$T/ct.mp" "$U/dicom-web/studies"
check "multipart of another type: 415" "problem wrongtype2 415"
req nob -H "$AUTH" -H "$EXPECT" -H 'Content-Type: multipart/related; type="application/dicom"' --data-binary @"$T/ct.mp" "$U/dicom-web/studies"
check "no boundary: 400" "problem nob 400"
B71=$(printf 'b%.0s' $(seq 71))
req longb -H "$AUTH" -H "$EXPECT" -H "Content-Type: multipart/related; type=\"application/dicom\"; boundary=$B71" --data-binary @"$T/ct.mp" "$U/dicom-web/studies"
check "a boundary over 70 characters (malformed Content-Type): 400, not 415" "problem longb 400"
req unterminated -H "$AUTH" -H "$EXPECT" -H 'Content-Type: multipart/related; type="application/dicom; boundary=x' --data-binary @"$T/ct.mp" "$U/dicom-web/studies"
check "an unterminated quoted parameter: 400" "problem unterminated 400"
head -c 3000 "$T/four.mp" >"$T/trunc.mp"
stow trunc "$T/trunc.mp"
check "truncated body: 400 problem+json" "problem trunc 400 && grep -q truncated $T/trunc.body"
# one new instance whole, then a part cut short: the first is stored, and
# its Store Instances Response says so (202), the rest in a Warning header
# (400 is "unable to store any Instances", PS3.18 10.5.3.1)
"$PY" - "$T/CT_small.dcm" "$T/cutafter.mp" <<'EOF'
import io, sys, pydicom
from pydicom.uid import generate_uid
d = pydicom.dcmread(sys.argv[1])
d.SOPInstanceUID = generate_uid()
d.file_meta.MediaStorageSOPInstanceUID = d.SOPInstanceUID
b = io.BytesIO()
d.save_as(b, write_like_original=False)
one = b"--BoUnDaRy.42\r\nContent-Type: application/dicom\r\n\r\n" + b.getvalue() + b"\r\n"
two = b"--BoUnDaRy.42\r\nContent-Type: application/dicom\r\n\r\n" + open(sys.argv[1], "rb").read()[:2000]
open(sys.argv[2], "wb").write(one + two)
open(sys.argv[2] + ".sop", "w").write(d.SOPInstanceUID)
EOF
stow cutafter "$T/cutafter.mp"
check "a whole new instance, then a part cut short: 202, the first in ReferencedSOPSequence, a Warning header" \
	"[ \$(code cutafter) = 202 ] && js cutafter 'len(d[\"00081199\"][\"Value\"]) == 1 and d[\"00081199\"][\"Value\"][0][\"00081155\"][\"Value\"][0] == open(\"$T/cutafter.mp.sop\").read()' && hdr cutafter Warning | grep -q 'malformed multipart body'"
# the accept query parameter stands for the Accept header (PS3.18
# 8.3.3.1: a browser's link cannot set it)
req accq -H "$AUTH" -H 'Accept: text/html' "$U/dicom-web/studies/$CT_ST/metadata?accept=application/dicom%2Bjson"
check "metadata with Accept: text/html and ?accept=application/dicom+json: 200, DICOM JSON" \
	"[ \$(code accq) = 200 ] && hdr accq Content-Type | grep -q '^application/dicom+json'"
req accq2 -H "$AUTH" "$U/dicom-web/studies?StudyInstanceUID=$CT_ST&accept=application/json"
check "QIDO with ?accept=application/json: answered so, the parameter not taken for a key (no Warning)" \
	"[ \$(code accq2) = 200 ] && hdr accq2 Content-Type | grep -q '^application/json' && ! grep -qi '^warning:.*accept' $T/accq2.hdr"
# a method no DICOMweb resource takes: 405, Allow naming what that resource takes
req opt1 -H "$AUTH" -X OPTIONS "$U/dicom-web/studies/$CT_ST/series"
check "OPTIONS on a series list: 405, Allow: GET, HEAD (no POST there)" \
	"problem opt1 405 && [ \"\$(hdr opt1 Allow)\" = 'GET, HEAD' ]"
req opt2 -H "$AUTH" -X OPTIONS "$U/dicom-web/studies"
check "OPTIONS on /studies: 405, Allow: GET, HEAD, POST (STOW-RS)" \
	"problem opt2 405 && [ \"\$(hdr opt2 Allow)\" = 'GET, HEAD, POST' ]"
printf 'no delimiter here at all' >"$T/nodelim.mp"
stow nodelim "$T/nodelim.mp"
check "body without any delimiter: 400" "problem nodelim 400"
printf -- '--BoUnDaRy.42\r\nContent-Type: multipart/related; boundary=in\r\n\r\n--in--\r\n--BoUnDaRy.42--\r\n' >"$T/nested.mp"
stow nested "$T/nested.mp"
check "nested multipart: 400" "problem nested 400"
printf -- '--BoUnDaRy.42--\r\n' >"$T/empty.mp"
stow empty "$T/empty.mp"
check "no parts: 400" "problem empty 400"
req alive "$U/healthz"
check "the server keeps serving" "[ \$(code alive) = 200 ] && kill -0 $SRV"

# ---- auth ----
req noauth -H "$CT" -H "$EXPECT" --data-binary @"$T/ct.mp" "$U/dicom-web/studies"
check "STOW without a session: 401" "problem noauth 401"
req noauth2 "$U/dicom-web/studies/$CT_ST/series/$CT_SE/instances/$CT_SOP"
check "WADO-RS without a session: 401" "problem noauth2 401"
req noauth3 "$U/wado?requestType=WADO&studyUID=$CT_ST&seriesUID=$CT_SE&objectUID=$CT_SOP&contentType=application/dicom"
check "WADO-URI without a session: 401" "problem noauth3 401"

# ---- WADO-RS and WADO-URI ----
# unmp FILE OUT: the single part of a multipart/related answer
unmp() {
	"$PY" - "$@" <<'EOF'
import re, sys
raw = open(sys.argv[1], "rb").read()
hdr = open(sys.argv[1].replace(".body", ".hdr"), "rb").read().decode("latin1")
m = re.search(r'(?im)^content-type:\s*multipart/related;.*boundary="?([^";\r\n]+)', hdr)
b = m.group(1).encode()
parts = raw.split(b"--" + b)
assert parts[0] == b"" and parts[-1] in (b"--\r\n", b"--"), "framing"
assert len(parts) == 3, "one part"
p = parts[1]
head, body = p.split(b"\r\n\r\n", 1)
assert b"application/dicom" in head.lower()
assert body.endswith(b"\r\n")
open(sys.argv[2], "wb").write(body[:-2])
EOF
}
# same RETRIEVED ORIGINAL: the exact bytes; or, for an original in implicit
# VR little endian or explicit VR big endian, which PS3.18 8.7.3 bars from
# web services, the same data set re-encoded into explicit VR little endian
same() {
	"$PY" - "$@" <<'EOF'
import sys, pydicom
got, orig = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
if got == orig:
    sys.exit(0)
o = pydicom.dcmread(sys.argv[2])
g = pydicom.dcmread(sys.argv[1])
if o.file_meta.TransferSyntaxUID not in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.2"):
    sys.exit("not the same bytes")
if g.file_meta.TransferSyntaxUID != "1.2.840.10008.1.2.1":
    sys.exit("not re-encoded into explicit VR little endian")
def elems(ds):
    return [(e.tag, e.VR, e.value) for e in ds if e.tag.element != 0]
sys.exit(0 if elems(g) == elems(o) else "another data set")
EOF
}
all_ok=1
for f in CT_small MR_small JPEG2000 rtplan; do
	read -r st se sop _ < <(uids "$T/$f.dcm")
	req "rs_$f" -H "$AUTH" -H 'Accept: multipart/related; type="application/dicom"' \
		"$U/dicom-web/studies/$st/series/$se/instances/$sop"
	if [ "$(code "rs_$f")" = 200 ] && unmp "$T/rs_$f.body" "$T/rs_$f.dcm" 2>/dev/null &&
		same "$T/rs_$f.dcm" "$T/$f.dcm" && dcmdump "$T/rs_$f.dcm" >/dev/null 2>&1; then :; else
		all_ok=0
		echo "# WADO-RS $f: $(code "rs_$f")"
	fi
	req "uri_$f" -H "$AUTH" "$U/wado?requestType=WADO&studyUID=$st&seriesUID=$se&objectUID=$sop&contentType=application/dicom"
	if [ "$(code "uri_$f")" = 200 ] && [ "$(hdr "uri_$f" Content-Type)" = application/dicom ] &&
		same "$T/uri_$f.body" "$T/$f.dcm" && dcmdump "$T/uri_$f.body" >/dev/null 2>&1; then :; else
		all_ok=0
		echo "# WADO-URI $f: $(code "uri_$f")"
	fi
done
check "WADO-RS of each instance: the exact bytes (implicit VR: re-encoded, the same data set), dcmdump reads them" "[ $all_ok = 1 ]"
check "WADO-URI of each instance: the exact bytes (implicit VR: re-encoded), application/dicom" "[ $all_ok = 1 ]"
req rs_default -H "$AUTH" "$U/dicom-web/studies/$CT_ST/series/$CT_SE/instances/$CT_SOP"
check "WADO-RS without Accept: multipart/related" "[ \$(code rs_default) = 200 ] && hdr rs_default Content-Type | grep -q '^multipart/related; type=\"application/dicom\"; boundary='"
req rs_406 -H "$AUTH" -H 'Accept: image/jpeg' "$U/dicom-web/studies/$CT_ST/series/$CT_SE/instances/$CT_SOP"
check "WADO-RS Accept image/jpeg: 406" "problem rs_406 406"
req rs_404 -H "$AUTH" "$U/dicom-web/studies/$CT_ST/series/$CT_SE/instances/1.2.3.4.5"
check "WADO-RS unknown instance: 404" "problem rs_404 404"
req rs_wrong -H "$AUTH" "$U/dicom-web/studies/1.2.3/series/$CT_SE/instances/$CT_SOP"
check "WADO-RS with another study in the path: 404" "problem rs_wrong 404"
req rs_bad -H "$AUTH" "$U/dicom-web/studies/$CT_ST/series/$CT_SE/instances/1.2.abc"
check "WADO-RS malformed UID: 400" "problem rs_bad 400"
LONG=$(printf '1.%.0s' $(seq 40))1
req rs_long -H "$AUTH" "$U/dicom-web/studies/$CT_ST/series/$CT_SE/instances/$LONG"
check "WADO-RS UID over 64 characters: 400" "problem rs_long 400"
req uri_404 -H "$AUTH" "$U/wado?requestType=WADO&studyUID=$CT_ST&seriesUID=$CT_SE&objectUID=1.2.3&contentType=application/dicom"
check "WADO-URI unknown instance: 404" "problem uri_404 404"
req uri_bad -H "$AUTH" "$U/wado?requestType=WADO&studyUID=x&seriesUID=$CT_SE&objectUID=$CT_SOP"
check "WADO-URI malformed UID: 400" "problem uri_bad 400"

# ---- WADO-URI: contentType, its default, rendering, transferSyntax, anonymize ----
wuri() {  # NAME FILE [more query]: WADO-URI of the stored copy of FILE
	local n=$1 st se sop
	read -r st se sop _ < <(uids "$2")
	req "$n" -H "$AUTH" "$U/wado?requestType=WADO&studyUID=$st&seriesUID=$se&objectUID=$sop${3:-}"
}
# jpeg_size NAME: "columns rows" of the JPEG answer (its SOF marker)
jpeg_size() {
	"$PY" - "$T/$1.body" <<'EOF'
import struct, sys
b = open(sys.argv[1], "rb").read()
i = 2
while i + 9 < len(b) and b[0:2] == b"\xff\xd8":
    m, n = b[i + 1], struct.unpack(">H", b[i + 2:i + 4])[0]
    if 0xC0 <= m <= 0xC3:
        h, w = struct.unpack(">HH", b[i + 5:i + 9])
        print(w, h)
        break
    i += 2 + n
EOF
}
wuri wd_ct "$T/CT_small.dcm"
check "WADO-URI without contentType, a single-frame image: image/jpeg (PS3.18 default)" \
	"[ \$(code wd_ct) = 200 ] && [ \"\$(hdr wd_ct Content-Type)\" = image/jpeg ] && [ \"\$(jpeg_size wd_ct)\" = '128 128' ]"
wuri wd_plan "$T/rtplan.dcm"
check "WADO-URI without contentType, not an image: the object as application/dicom" \
	"[ \$(code wd_plan) = 200 ] && [ \"\$(hdr wd_plan Content-Type)\" = application/dicom ] && same $T/wd_plan.body $T/rtplan.dcm"
wuri wd_dose "$PYD/rtdose.dcm"
check "WADO-URI without contentType, a multi-frame image: application/dicom" \
	"[ \$(code wd_dose) = 200 ] && [ \"\$(hdr wd_dose Content-Type)\" = application/dicom ] && same $T/wd_dose.body $PYD/rtdose.dcm"
wuri wd_j2k "$T/JPEG2000.dcm"
check "WADO-URI without contentType, a single-frame JPEG 2000 image (decoded since session 19): image/jpeg" \
	"[ \$(code wd_j2k) = 200 ] && [ \"\$(hdr wd_j2k Content-Type)\" = image/jpeg ]"
# JPEG Extended (12-bit, .51) is decoded since session 20: a JPEG; a
# 1-bit segmentation the renderer does not take goes as the object
mp "$T/jl.mp" BoUnDaRy.42 "$PYD/JPEG-lossy.dcm" "$PYD/liver_1frame.dcm"
stow jl "$T/jl.mp"
wuri wd_jl "$PYD/JPEG-lossy.dcm"
check "WADO-URI without contentType, a single-frame 12-bit JPEG Extended image (decoded since session 20): image/jpeg" \
	"[ \$(code jl) = 200 ] && [ \$(code wd_jl) = 200 ] && [ \"\$(hdr wd_jl Content-Type)\" = image/jpeg ]"
wuri wd_seg "$PYD/liver_1frame.dcm"
check "WADO-URI without contentType, an image the renderer does not take (1-bit segmentation): application/dicom" \
	"[ \$(code wd_seg) = 200 ] && [ \"\$(hdr wd_seg Content-Type)\" = application/dicom ] && cmp -s $T/wd_seg.body $PYD/liver_1frame.dcm"
wuri wj_ct "$T/CT_small.dcm" "&contentType=image/jpeg&rows=32&windowCenter=40&windowWidth=400&imageQuality=80"
check "WADO-URI contentType=image/jpeg with rows, window and quality: a 32-row JPEG" \
	"[ \$(code wj_ct) = 200 ] && [ \"\$(hdr wj_ct Content-Type)\" = image/jpeg ] && [ \"\$(jpeg_size wj_ct)\" = '32 32' ]"
wuri wp_ct "$T/CT_small.dcm" "&contentType=image/png"
check "WADO-URI contentType=image/png: a PNG" \
	"[ \$(code wp_ct) = 200 ] && [ \"\$(hdr wp_ct Content-Type)\" = image/png ] && head -c 8 $T/wp_ct.body | od -An -tx1 | grep -q '89 50 4e 47'"
wuri wl_ct "$T/CT_small.dcm" "&contentType=text/html,application/dicom"
check "WADO-URI contentType list: the first offered (application/dicom)" \
	"[ \$(code wl_ct) = 200 ] && cmp -s $T/wl_ct.body $T/CT_small.dcm"
wuri wj_plan "$T/rtplan.dcm" "&contentType=image/jpeg"
check "WADO-URI contentType=image/jpeg of an RT plan: 406" "problem wj_plan 406"
wuri wj_fr "$T/CT_small.dcm" "&contentType=image/jpeg&frameNumber=2"
check "WADO-URI frameNumber beyond the frames: 404" "problem wj_fr 404"
wuri wj_f1 "$T/CT_small.dcm" "&contentType=image/jpeg&frameNumber=1"
check "WADO-URI frameNumber=1: the frame as JPEG" "[ \$(code wj_f1) = 200 ] && [ \"\$(hdr wj_f1 Content-Type)\" = image/jpeg ]"
wuri wj_f0 "$T/CT_small.dcm" "&contentType=image/jpeg&frameNumber=0"
wuri wj_f12 "$T/CT_small.dcm" "&contentType=image/jpeg&frameNumber=1,2"
wuri wj_fx "$T/CT_small.dcm" "&contentType=image/jpeg&frameNumber=-1"
wuri wj_fb "$T/CT_small.dcm" "&contentType=image/jpeg&frameNumber=99999999999"
check "WADO-URI frameNumber 0, a list, negative or beyond 32 bits: 400 each" \
	"problem wj_f0 400 && problem wj_f12 400 && problem wj_fx 400 && problem wj_fb 400"
wuri wh_ct "$T/CT_small.dcm" "&contentType=text/html"
check "WADO-URI contentType=text/html: 406" "problem wh_ct 406"
wuri wts_ok "$T/CT_small.dcm" "&contentType=application/dicom&transferSyntax=1.2.840.10008.1.2.1"
check "WADO-URI transferSyntax = the stored one: 200, the bytes" "[ \$(code wts_ok) = 200 ] && cmp -s $T/wts_ok.body $T/CT_small.dcm"
wuri wts_406 "$T/JPEG2000.dcm" "&contentType=application/dicom&transferSyntax=1.2.840.10008.1.2.2"
check "WADO-URI transferSyntax neither the stored one nor explicit VR LE (big endian): 406" "problem wts_406 406"
wuri wts_bad "$T/CT_small.dcm" "&contentType=application/dicom&transferSyntax=explicit"
check "WADO-URI transferSyntax that is no UID: 400" "problem wts_bad 400"
wuri wanon "$T/CT_small.dcm" "&contentType=application/dicom&anonymize=yes"
check "WADO-URI anonymize=yes: 400, never the identified object" "problem wanon 400"
wuri wwin "$T/CT_small.dcm" "&contentType=image/jpeg&windowCenter=40"
check "WADO-URI windowCenter without windowWidth: 400" "problem wwin 400"
wuri wwinf "$T/CT_small.dcm" "&contentType=image/jpeg&windowCenter=40&windowWidth=400,sigmoid"
check "WADO-URI windowWidth with a comma (a VOI LUT function smuggled in): 400" "problem wwinf 400"
wuri wrows "$T/CT_small.dcm" "&contentType=image/jpeg&rows=0"
wuri wrows2 "$T/CT_small.dcm" "&contentType=image/jpeg&columns=32,32"
check "WADO-URI rows=0 and columns=32,32: 400" "problem wrows 400 && problem wrows2 400"
req post_inst -H "$AUTH" -H "$EXPECT" -H "$CT" --data-binary @"$T/ct.mp" "$U/dicom-web/studies/$CT_ST/series/$CT_SE/instances/$CT_SOP"
check "POST to an instance: 405" "problem post_inst 405"

# ---- tampering: a flipped byte in the stored object stops the answer ----
OBJ=$("$PY" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select object_key from instances where uid=?", (sys.argv[2],)).fetchone()[0])' "$T/v/index.db" "$CT_SOP" 2>/dev/null)
OBJP="$T/v/objects/${OBJ:0:2}/${OBJ:2:2}/$OBJ"
if [ -f "$OBJP" ]; then
	"$PY" -c 'import sys; f=open(sys.argv[1],"r+b"); f.seek(20000); b=f.read(1); f.seek(20000); f.write(bytes([b[0]^1])); f.close()' "$OBJP"
	code_t=$(curl -s --tlsv1.3 --cacert "$T/v/keys/tls.crt" --max-time 20 -H "$AUTH" -o "$T/tampered.dcm" \
		-w '%{http_code}' "$U/dicom-web/studies/$CT_ST/series/$CT_SE/instances/$CT_SOP" 2>/dev/null)
	# the damaged byte is in the first chunk, authenticated before the
	# answer begins (a damaged later chunk cuts the answer: wado.py)
	check "tampered object: refused with a 500 before any of it is sent" \
		"[ '$code_t' = 500 ] && grep -q 'integrity check' $T/tampered.dcm"
	check "tampered object: no byte of the damaged chunk released" "! cmp -s $T/tampered.dcm $T/CT_small.dcm && [ \$(stat -c %s $T/tampered.dcm 2>/dev/null || echo 0) -lt 20000 ]"
	req after_tamper "$U/healthz"
	check "server keeps serving after an integrity failure" "[ \$(code after_tamper) = 200 ]"
	check "tampered object: a failed retrieve and an integrity-failure record, each naming it" \
		"grep '\"action\":\"integrity-failure\",\"outcome\":\"failure\"' $T/v/audit/audit.log | grep -q '$CT_SOP' && grep '\"action\":\"retrieve\",\"outcome\":\"failure\"' $T/v/audit/audit.log | grep 'integrity check failed' | grep -q '$CT_SOP'"
	"$PY" -c 'import sys; f=open(sys.argv[1],"r+b"); f.seek(20000); b=f.read(1); f.seek(20000); f.write(bytes([b[0]^1])); f.close()' "$OBJP"
else
	no "tampering: object file of the CT found"
fi

# ---- at rest, audit ----
check "the CT patient's name is nowhere in the vault" "! grep -rqa CompressedSamples $T/v"
check "no temporary file left" "[ -z \"\$(ls -A $T/v/tmp 2>/dev/null)\" ]"
kill -TERM "$SRV"
wait "$SRV" 2>/dev/null
SRV=
# every stored patient's name (whole, and a long family name) and ID, read
# from the files sent, looked for without case as whole words: those of 7
# characters or more everywhere, a shorter one (4 to 6) outside objects/
# and tmp/ (in MBs of ciphertext a 4-byte word turns up by chance a few
# times in a thousand runs; an object stored in clear would show the names
# anyway); one under 4 characters (SC_rgb_rle's "ID1") nowhere. Also
# their birth dates, study descriptions, referring physicians (whole, and a
# long family name) and institutions, those of 7 characters or more
# ("Here", "e+1" are words a log may hold).
"$PY" - "$T/phi.long" "$T/phi.short" "$T/CT_small.dcm" "$T/MR_small.dcm" "$T/JPEG2000.dcm" "$T/rtplan.dcm" \
	"$PYD/rtdose.dcm" "$PYD/SC_rgb_rle.dcm" "$T/phi.dcm" <<'EOF'
import sys, pydicom
terms, text = set(), set()
for f in sys.argv[3:]:
    d = pydicom.dcmread(f, stop_before_pixels=True)
    name = str(d.PatientName)
    terms |= {name, str(d.PatientID)}
    if len(name.split("^")[0]) >= 7:  # not "Last" (a word a log may hold)
        terms.add(name.split("^")[0])
    ref = str(d.get("ReferringPhysicianName", ""))
    text |= {str(d.get("PatientBirthDate", "")), str(d.get("StudyDescription", "")), ref,
             ref.split("^")[0], str(d.get("InstitutionName", ""))}
open(sys.argv[1], "w").write("".join(t + "\n" for t in sorted(terms | text) if len(t) >= 7))
open(sys.argv[2], "w").write("".join(t + "\n" for t in sorted(terms) if 4 <= len(t) < 7))
EOF
# nophi PATTERNFILE GREP-ARGS...: grep finds none of the terms (status 1:
# no match and no error, such as a file that is not there)
nophi() {
	local f=$1
	shift
	LC_ALL=C grep -aiFw -f "$f" "$@" >"$T/phi.hits" 2>&1
	[ $? = 1 ] || { sed 's/^/# found: /' "$T/phi.hits" | head -5; return 1; }
}
check "the stored patients' names and IDs (1CT1, 4MR1, id00001...) are the terms looked for" \
	"grep -qx 'CompressedSamples^CT1' $T/phi.long && grep -qx id00001 $T/phi.long && grep -qx 1CT1 $T/phi.short && grep -qx 4MR1 $T/phi.short"
check "and their birth date (19370611), descriptions, referring physicians and institutions" \
	"grep -qx 19370611 $T/phi.long && grep -qx 'Knirpsgelenk Verlauf' $T/phi.long && grep -qx 'Whole Body Bone' $T/phi.long && grep -qx 'Zwiebelmann^Hartmut' $T/phi.long && grep -qx 'Moriarty^James' $T/phi.long && grep -qx 'JFK IMAGING CENTER' $T/phi.long && grep -qx 'Klinikum Zwiebelfeld' $T/phi.long"
check "no patient name, ID, birth date or free text in the vault" "nophi $T/phi.long -rl $T/v && nophi $T/phi.short -rl --exclude-dir=objects --exclude-dir=tmp $T/v"
check "no patient name, ID, birth date or free text in the server's log (its stdout and stderr)" \
	"grep -q serving $T/out && [ -s $T/err ] && nophi $T/phi.long -l $T/out $T/err && nophi $T/phi.short -l $T/out $T/err"
"$DV" audit verify --vault "$T/v" >"$T/verify.out" 2>&1
check "audit verify passes" "[ \$? = 0 ]"
LOG="$T/v/audit/audit.log"
check "audit has store records" "grep -q '\"action\":\"store\"' $LOG && grep '\"action\":\"store\"' $LOG | grep -q '$CT_SOP'"
check "audit has retrieve records" "grep '\"action\":\"retrieve\"' $LOG | grep -q '$CT_SOP'"
check "audit store records carry the patient as a keyed hash only" "grep '\"action\":\"store\"' $LOG | grep -q patient && ! grep -qa CompressedSamples $LOG"
check "no token in the server log" "! grep -q '$TOK' $T/err"

# ---- fixity: the index's SHA-256 of MR_small changed (one hex digit)
# while the server is stopped. Every chunk of the object still
# authenticates; the whole-object fixity is checked at the end of a full
# sequential read (src/core/retrieve.c): by export and import's read-back
# (SPEC 6: "the fixity value that scrub, migration and export verify"),
# while WADO skips it (retrieve_no_fixity: chunks authenticated, fixity
# is scrub's) ----
read -r MR_ST MR_SE MR_SOP _ < <(uids "$T/MR_small.dcm")
"$PY" - "$T/v/index.db" "$MR_SOP" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
h = bytearray(db.execute("select sha256 from instances where uid=?", (sys.argv[2],)).fetchone()[0])
h[0] ^= 0x01                 # the first hex digit's lowest bit
db.execute("update instances set sha256=? where uid=?", (bytes(h), sys.argv[2]))
db.commit()
EOF
MR_SHA=$(sha256sum "$T/MR_small.dcm" | cut -d' ' -f1)
check "fixity: the stored SHA-256 of MR_small now differs from the object's in one hex digit" \
	"[ \"\$(ix_sha $MR_SOP)\" != $MR_SHA ] && [ \"\$(ix_sha $MR_SOP | cut -c3-)\" = \"\$(echo $MR_SHA | cut -c3-)\" ]"
NREC0=$(wc -l <"$LOG")
if dv_serve; then
	req fx_rs -H "$AUTH" "$U/dicom-web/studies/$MR_ST/series/$MR_SE/instances/$MR_SOP"
	req fx_uri -H "$AUTH" "$U/wado?requestType=WADO&studyUID=$MR_ST&seriesUID=$MR_SE&objectUID=$MR_SOP&contentType=application/dicom"
	kill -TERM "$SRV"
	wait "$SRV" 2>/dev/null
	SRV=
	# (FINDING, reported: the brief expected a 500 or a cut answer and an
	# integrity-failure record here)
	check "fixity: WADO-RS and WADO-URI do not check the whole-object SHA-256: 200, the exact (authenticated) bytes" \
		"[ \$(code fx_rs) = 200 ] && unmp $T/fx_rs.body $T/fx_rs.dcm && cmp -s $T/fx_rs.dcm $T/MR_small.dcm && [ \$(code fx_uri) = 200 ] && cmp -s $T/fx_uri.body $T/MR_small.dcm"
	check "fixity: those retrievals audited as successes, no failure record" \
		"[ \$(tail -n +$((NREC0 + 1)) $LOG | grep -c '\"action\":\"retrieve\",\"outcome\":\"success\"') = 2 ] && ! tail -n +$((NREC0 + 1)) $LOG | grep -q '\"outcome\":\"failure\"'"
else
	no "fixity: server restarted"
fi
# export reads the whole object and checks its fixity at the end
"$DV" export --vault "$T/v" --study "$MR_ST" --out "$T/fx_export" --quiet >"$T/fx_export.out" 2>"$T/fx_export.err"
check "fixity: export of the study fails (exit 1), naming the fixity check" \
	"[ $? = 1 ] && grep -q 'export: 0 of 1 instance written' $T/fx_export.out && grep -q '$MR_SOP.*fixity check' $T/fx_export.err" "$T/fx_export.out" "$T/fx_export.err"
check "fixity: nothing exported, no temporary file left in the export folder" "[ -z \"\$(find $T/fx_export -type f 2>/dev/null)\" ]"
check "fixity: the export's audit record is a failure with 1 failed, naming the instance and the integrity check" \
	"grep -v '\"type\":\"checkpoint\"' $LOG | tail -n 1 | grep '\"action\":\"export\",\"outcome\":\"failure\"' | grep -q '0 of 1 written, 0 refused, 1 failed (first: $MR_SOP: integrity check failed)'"
check "fixity: the export's first record (before any file) says what was to be written" \
	"grep -v '\"type\":\"checkpoint\"' $LOG | tail -n 3 | head -n 1 | grep '\"action\":\"export\",\"outcome\":\"success\"' | grep -q '1 to write'"
check "fixity: before it, an integrity-failure record naming the instance, the operator as actor" \
	"grep -v '\"type\":\"checkpoint\"' $LOG | tail -n 2 | head -n 1 | grep '\"action\":\"integrity-failure\",\"outcome\":\"failure\"' | grep '\"role\":\"operator\"' | grep -q '$MR_SOP'"
"$DV" audit verify --vault "$T/v" >"$T/verify2.out" 2>&1
check "fixity: audit verify still passes" "[ \$? = 0 ]" "$T/verify2.out"
check "fixity: the export's records are signed at once (the log ends with a checkpoint)" \
	"tail -n 1 $LOG | grep -q '\"type\":\"checkpoint\"'"
# the right hash back: the same export succeeds (the failure was the hash's)
"$PY" -c 'import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); db.execute("update instances set sha256=? where uid=?", (bytes.fromhex(sys.argv[3]), sys.argv[2])); db.commit()' "$T/v/index.db" "$MR_SOP" "$MR_SHA"
"$DV" export --vault "$T/v" --study "$MR_ST" --out "$T/fx_export2" --quiet >"$T/fx_export2.out" 2>&1
check "fixity: with the right SHA-256 back, the export writes the exact bytes" \
	"[ $? = 0 ] && cmp -s $T/fx_export2/$MR_SE/$MR_SOP.dcm $T/MR_small.dcm" "$T/fx_export2.out"
exit 0
