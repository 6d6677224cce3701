#!/bin/bash
# dimse_get.sh: the C-GET SCP of `dicomvault serve` (issue 5) against
# DCMTK's getscu. getscu 3.6.7 has no TLS: a local stunnel4 client listens
# on a loopback port and connects to our DICOM-TLS port with the peer's
# certificate (made here with openssl). A small hierarchy made with
# pydicom is stored with storescu (+tls); getscu then retrieves it at the
# STUDY (study root), SERIES, IMAGE and PATIENT (patient root) levels into
# a folder (-od): the data sets received and their pixel bytes are compared
# with the originals (pydicom), one pending C-GET-RSP per sub-operation is
# counted; a study of another collection, an identifier naming nothing
# (0000H, no sub-operation), one without its unique key (A900H), a peer
# without the get right (refused), an instance stored in implicit VR that
# getscu's contexts cannot carry (B000H, one failed) and then retrieved
# with +xi, JPEG Baseline, RLE, JPEG 2000, HTJ2K and JPEG-LS instances
# decompressed for getscu's uncompressed contexts (lib/decompressed.py,
# lib/decoded_native.py), a C-CANCEL right behind the C-GET (FE00H,
# lib/dul.py), one
# "retrieve" audit record per C-GET. Prints ok/not ok lines. Env DV: the
# CLI under test; KEEP=1 keeps the directory. Layer: tests.
set -u
DV=${DV:-build/check/dicomvault}
PY=/usr/bin/python3
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TEST=dimse_get
. "$(dirname "$0")/lib/dimse.sh"
tap_setup dget
TUN=
cleanup() {
	stop_pid "$TUN"
	tap_cleanup
}
trap cleanup EXIT

need getscu storescu openssl stunnel4

cert peer1
[ -s "$T/peer1.crt" ] || { no "openssl made the certificate"; exit 0; }

# ---- the data: P1 (study 1: series 1.1 of 2 instances, series 1.2 of 1),
# P2 (study 2, 1 instance), study 3 of P1 in "ctdept"; study 4 of P3 in
# implicit VR little endian ----
"$PY" - "$T/data" >"$T/gen.err" 2>&1 <<'PYEOF'
import os, sys
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
out = sys.argv[1]
for d in ("default", "ctdept", "other", "legacy"):
    os.makedirs(out + "/" + d)
n = [0]
def inst(coll, pid, study, series, rows, implicit=False, jpeg=False, sop=None):
    n[0] += 1
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"   # secondary capture
    ds.SOPInstanceUID = sop or "1.2.826.0.1.3680043.2.1143.19.%d" % n[0]
    ds.PatientName = "DOE^" + pid; ds.PatientID = pid; ds.PatientSex = "O"
    ds.StudyInstanceUID = study; ds.StudyDate = "20240105"; ds.AccessionNumber = "A%d" % n[0]
    ds.SeriesInstanceUID = series; ds.Modality = "OT"; ds.SeriesNumber = 1; ds.InstanceNumber = n[0]
    ds.Rows = rows; ds.Columns = 64; ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16; ds.BitsStored = 12; ds.HighBit = 11; ds.PixelRepresentation = 0
    ds.PixelData = bytes((i * 7 + n[0]) & 255 for i in range(rows * 64 * 2))
    fm = FileMetaDataset(); fm.MediaStorageSOPClassUID = ds.SOPClassUID
    fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    fm.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    if jpeg:   # stored as received: the bytes need not be a real image
        fm.TransferSyntaxUID = "1.2.840.10008.1.2.4.50"
        ds.BitsAllocated = 8; ds.BitsStored = 8; ds.HighBit = 7
        ds.PixelData = encapsulate([b"\xff\xd8\xff\xe0" + bytes(60) + b"\xff\xd9"])
    ds.file_meta = fm
    ds.is_little_endian = True; ds.is_implicit_VR = implicit
    ds.save_as("%s/%s/%03d.dcm" % (out, coll, n[0]), write_like_original=False)
S = "1.2.826.0.1.3680043.2.1143.17."
inst("default", "P1", S + "1", S + "1.1", 64)
inst("default", "P1", S + "1", S + "1.1", 600)    # 76 800 bytes of pixels: several PDUs
inst("default", "P1", S + "1", S + "1.2", 8)
inst("default", "P2", S + "2", S + "2.1", 8)
inst("ctdept", "P1", S + "3", S + "3.1", 8)
inst("other", "P3", S + "4", S + "4.1", 8, implicit=True)
inst("other", "P3", S + "4", S + "4.1", 8, jpeg=True)
# a legacy SOP Instance UID: a component with a leading zero ("05")
inst("legacy", "P5", S + "5", S + "5.1", 8, sop="1.2.826.0.1.3680043.2.1143.19.05")
PYEOF
check "pydicom made the data" "[ \$(ls '$T'/data/*/*.dcm 2>/dev/null | wc -l) -eq 8 ]" "$T/gen.err"

vault_init || exit 0
HP=$(free_port)
DP=$(free_port)
FP=$(fp "$T/peer1.crt")
cat >>"$T/v/dicomvault.conf" <<CONF

[peer "GETTER"]
fingerprint = $FP
rights = echo, store, get

[peer "CTSTORE"]
fingerprint = $FP
collection = ctdept
rights = store

[peer "NOGET"]
fingerprint = $FP
rights = echo, store, find

[collection "ctdept"]
CONF
serve_dicom || exit 0
SC="$T/v/keys/tls.crt"
TLS=(+tls "$T/peer1.key" "$T/peer1.crt" +cf "$SC")
storescu -to 20 -ta 20 -td 20 "${TLS[@]}" -aet GETTER -aec DICOMVAULT 127.0.0.1 "$DP" "$T"/data/default/*.dcm \
	>"$T/s1" 2>&1
check "storescu into the default collection" "[ $? -eq 0 ]" "$T/s1"
storescu -to 20 -ta 20 -td 20 "${TLS[@]}" -aet CTSTORE -aec DICOMVAULT 127.0.0.1 "$DP" "$T"/data/ctdept/*.dcm \
	>"$T/s2" 2>&1
check "storescu into ctdept" "[ $? -eq 0 ]" "$T/s2"
storescu -xi -to 20 -ta 20 -td 20 "${TLS[@]}" -aet GETTER -aec DICOMVAULT 127.0.0.1 "$DP" \
	"$T/data/other/006.dcm" >"$T/s3" 2>&1
check "storescu -xi: an instance stored in implicit VR" "[ $? -eq 0 ]" "$T/s3"
storescu -xy -to 20 -ta 20 -td 20 "${TLS[@]}" -aet GETTER -aec DICOMVAULT 127.0.0.1 "$DP" \
	"$T/data/other/007.dcm" >"$T/s4" 2>&1
check "storescu -xy: an instance stored in JPEG baseline" "[ $? -eq 0 ]" "$T/s4"
storescu -to 20 -ta 20 -td 20 "${TLS[@]}" -aet GETTER -aec DICOMVAULT 127.0.0.1 "$DP" "$T"/data/legacy/*.dcm \
	>"$T/s5" 2>&1
check "storescu: an instance whose SOP Instance UID has a leading-zero component, stored" "[ $? -eq 0 ]" "$T/s5"

# ---- the TLS tunnel for getscu: stunnel4 as a TLS client on loopback ----
LP=$(free_port)
cat >"$T/stunnel.conf" <<CONF
foreground = yes
pid =
output = $T/stunnel.log
debug = 4
[dicom]
client = yes
accept = 127.0.0.1:$LP
connect = 127.0.0.1:$DP
cert = $T/peer1.crt
key = $T/peer1.key
CAfile = $SC
verifyPeer = yes
sslVersionMin = TLSv1.3
CONF
stunnel4 "$T/stunnel.conf" >"$T/stunnel.out" 2>&1 &
TUN=$!
wait_port "$LP"
check "stunnel4 listening on 127.0.0.1:$LP" "kill -0 $TUN" "$T/stunnel.out" "$T/stunnel.log"

# get NAME AET [getscu options and keys]: received files in $T/gNAME
get_() {
	local name=$1 aet=$2
	shift 2
	mkdir -p "$T/g$name"
	getscu -v -to 20 -ta 20 -td 20 -aet "$aet" -aec DICOMVAULT -od "$T/g$name" "$@" 127.0.0.1 "$LP" \
		>"$T/$name.log" 2>&1
}
# same NAME ORIGINAL...: the received files are exactly these originals:
# same SOP instances, equal data sets (every element) and pixel bytes
same() {
	local name=$1
	shift
	"$PY" - "$T/g$name" "$@" <<'PYEOF'
import glob, os, sys, pydicom
got = {}
for f in glob.glob(sys.argv[1] + "/*"):
    d = pydicom.dcmread(f)
    got[d.SOPInstanceUID] = d
want = {}
for f in sys.argv[2:]:
    d = pydicom.dcmread(f)
    want[d.SOPInstanceUID] = d
if sorted(got) != sorted(want):
    print("instances differ:", sorted(got), sorted(want)); sys.exit(1)
for uid, w in want.items():
    g = got[uid]
    if g.file_meta.TransferSyntaxUID != os.environ.get("WANT_TS", w.file_meta.TransferSyntaxUID):
        print(uid, "transfer syntax", g.file_meta.TransferSyntaxUID); sys.exit(1)
    if g.PixelData != w.PixelData or len(g.PixelData) != w.Rows * w.Columns * 2:
        print(uid, "pixel bytes differ"); sys.exit(1)
    if list(g.keys()) != list(w.keys()) or any(g[k] != w[k] for k in w.keys()):
        print(uid, "data sets differ"); sys.exit(1)
print("same", len(want))
PYEOF
}
npending() { grep -c 'Received C-GET Response (Pending)' "$T/$1.log"; }
final_() { grep -A4 'Final status report' "$T/$1.log" | grep "$2" | awk -F: '{gsub(/ /, "", $NF); print $NF}'; }
S=1.2.826.0.1.3680043.2.1143.17.
D=$T/data/default

get_ st GETTER -S -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=${S}1
check "study root, STUDY level: getscu succeeded" "[ $? -eq 0 ] && grep -q 'Received C-GET Response (Success)' '$T/st.log'" \
	"$T/st.log" "$T/err"
same st "$D/001.dcm" "$D/002.dcm" "$D/003.dcm" >"$T/st.cmp" 2>&1
check "the study's 3 instances received: data sets and pixel bytes equal to the originals" "[ $? -eq 0 ]" "$T/st.cmp"
check "3 pending C-GET-RSP, final counts 3 completed, 0 failed" \
	"[ \$(npending st) -eq 3 ] && [ \"\$(final_ st Completed)\" = 3 ] && [ \"\$(final_ st Failed)\" = 0 ]" "$T/st.log"

get_ se GETTER -P -k QueryRetrieveLevel=SERIES -k PatientID=P1 -k StudyInstanceUID=${S}1 \
	-k SeriesInstanceUID=${S}1.1
same se "$D/001.dcm" "$D/002.dcm" >"$T/se.cmp" 2>&1
check "patient root, SERIES level: the series' 2 instances, equal" "[ $? -eq 0 ]" "$T/se.cmp" "$T/se.log"

get_ im GETTER -S -k QueryRetrieveLevel=IMAGE -k StudyInstanceUID=${S}1 -k SeriesInstanceUID=${S}1.2 \
	-k SOPInstanceUID=1.2.826.0.1.3680043.2.1143.19.3
same im "$D/003.dcm" >"$T/im.cmp" 2>&1
check "IMAGE level: that one instance, equal" "[ $? -eq 0 ]" "$T/im.cmp" "$T/im.log"

get_ pa GETTER -P -k QueryRetrieveLevel=PATIENT -k PatientID=P2
same pa "$D/004.dcm" >"$T/pa.cmp" 2>&1
check "patient root, PATIENT level: P2's instance only" "[ $? -eq 0 ]" "$T/pa.cmp" "$T/pa.log"

get_ ul GETTER -S -k QueryRetrieveLevel=STUDY -k "StudyInstanceUID=${S}2\\${S}1"
check "a UID list at the STUDY level: 4 instances" "[ \$(ls '$T/gul' | wc -l) -eq 4 ] && [ \$(npending ul) -eq 4 ]" \
	"$T/ul.log"

get_ lz GETTER -S -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=${S}5
same lz "$T"/data/legacy/*.dcm >"$T/lz.cmp" 2>&1
check "the leading-zero SOP Instance UID retrieved by getscu: equal, final status success" \
	"[ $? -eq 0 ] && grep -q 'Received C-GET Response (Success)' '$T/lz.log'" "$T/lz.cmp" "$T/lz.log"

get_ ct GETTER -S -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=${S}3
check "a study of another collection: nothing sent, success" \
	"grep -q 'Received C-GET Response (Success)' '$T/ct.log' && [ -z \"\$(ls '$T/gct')\" ] && [ \$(npending ct) -eq 0 ]" \
	"$T/ct.log"
get_ no GETTER -S -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=1.2.3.4.5.6
check "an identifier naming nothing: 0000H, zero sub-operations" \
	"grep -q 'Received C-GET Response (Success)' '$T/no.log' && [ \"\$(final_ no Completed)\" = 0 ] && [ -z \"\$(ls '$T/gno')\" ]" \
	"$T/no.log"
get_ bad GETTER -S -k QueryRetrieveLevel=STUDY -k PatientID=P1
check "STUDY level without StudyInstanceUID: A900H" "grep -qi 'a900\|DataSetDoesNotMatchSOPClass' '$T/bad.log'" \
	"$T/bad.log"
# a unique key that is a list of empty values ("\"), or a list with an
# empty value or a value that is no UID, names no entity (PS3.4 C.4.2.2.1:
# one value or a list of UIDs): A900H, not the whole collection
nbs=0
for k in "S StudyInstanceUID STUDY \\" "P PatientID PATIENT \\" "S SOPInstanceUID IMAGE \\" \
	"S StudyInstanceUID STUDY ${S}1\\" "S StudyInstanceUID STUDY ${S}1\\x.1"; do
	read -r root key lvl val <<<"$k"
	n=bs$((++nbs))
	get_ $n GETTER -$root -k QueryRetrieveLevel=$lvl -k "$key=$val"
	check "$lvl level, $key '$val': A900H, nothing sent" \
		"grep -qi 'a900\|DataSetDoesNotMatchSOPClass' '$T/$n.log' && [ -z \"\$(ls '$T/g$n')\" ] && [ \$(npending $n) -eq 0 ]" \
		"$T/$n.log"
done
get_ ng NOGET -S -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=${S}1
rc=$?
check "a peer without the get right: refused, nothing sent" "[ $rc -ne 0 ] && [ -z \"\$(ls '$T/gng')\" ]" "$T/ng.log"

get_ im1 GETTER -S -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=${S}4
check "a study of an implicit VR and a JPEG instance, getscu's contexts explicit VR only: B000H, 1 completed, 1 failed" \
	"grep -q 'Received C-GET Response (Warning' '$T/im1.log' && [ \"\$(final_ im1 Completed)\" = 1 ] && [ \"\$(final_ im1 Failed)\" = 1 ]" \
	"$T/im1.log"
WANT_TS=1.2.840.10008.1.2.1 same im1 "$T/data/other/006.dcm" >"$T/im1.cmp" 2>&1
check "the implicit VR instance re-encoded in explicit VR: data set and pixel bytes equal" "[ $? -eq 0 ]" \
	"$T/im1.cmp"

# ---- decompression: real JPEG Baseline and RLE instances (pydicom's test
# files) retrieved by a getscu that proposes uncompressed syntaxes only
# (its default): sent in explicit VR little endian, their pixels decoded
# (as pydicom decodes the originals: RLE exactly, JPEG within the colour
# conversion's rounding), the data set otherwise the original's ----
PYD=/usr/lib/python3/dist-packages/pydicom/data/test_files
CMP=(SC_rgb_jpeg_dcmtk.dcm "SC_rgb_dcmtk_+eb+cy+np.dcm" SC_jpeg_no_color_transform.dcm SC_rgb_small_odd_jpeg.dcm
	MR_small_RLE.dcm SC_rgb_rle_16bit_2frame.dcm)
mkdir -p "$T/cmp"
for f in "${CMP[@]}"; do cp "$PYD/$f" "$T/cmp/"; done
# and 5 frames of 32-bit grey, RLE-encoded here (PS3.5 G.3: one segment
# per byte plane, most significant first; literal runs)
"$PY" - "$T/cmp/rle32x5.dcm" >"$T/gen2.err" 2>&1 <<'PYEOF'
import struct, sys
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
ds = Dataset()
ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
ds.SOPInstanceUID = "1.2.826.0.1.3680043.2.1143.19.99"
ds.PatientName = "RLE^FIVE"; ds.PatientID = "P9"; ds.StudyInstanceUID = "1.2.826.0.1.3680043.2.1143.17.9"
ds.SeriesInstanceUID = "1.2.826.0.1.3680043.2.1143.17.9.1"; ds.Modality = "OT"
ds.Rows = 12; ds.Columns = 10; ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = "MONOCHROME2"
ds.BitsAllocated = 32; ds.BitsStored = 32; ds.HighBit = 31; ds.PixelRepresentation = 0; ds.NumberOfFrames = 5
def literal(b):
    out = bytearray()
    for i in range(0, len(b), 128):
        out.append(len(b[i:i + 128]) - 1); out += b[i:i + 128]
    return out + (b"\0" if len(out) & 1 else b"")
frames = []
for f in range(5):
    px = [(f * 120 + i) * 2654435761 & 0xFFFFFFFF for i in range(120)]
    segs = [literal(bytes((v >> s) & 255 for v in px)) for s in (24, 16, 8, 0)]
    offs, o = [], 64
    for seg in segs:
        offs.append(o); o += len(seg)
    frames.append(struct.pack("<16I", 4, *offs, *[0] * 11) + b"".join(segs))
ds.PixelData = encapsulate(frames)
fm = FileMetaDataset(); fm.MediaStorageSOPClassUID = ds.SOPClassUID; fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
fm.TransferSyntaxUID = "1.2.840.10008.1.2.5"
ds.file_meta = fm; ds.is_little_endian = True; ds.is_implicit_VR = False
ds["PixelData"].VR = "OB"
ds.save_as(sys.argv[1], write_like_original=False)
PYEOF
check "5 frames of 32 bits, RLE-encoded" "[ -s '$T/cmp/rle32x5.dcm' ]" "$T/gen2.err"
CMP+=(rle32x5.dcm)
storescu -xy -to 20 -ta 20 -td 20 "${TLS[@]}" -aet GETTER -aec DICOMVAULT 127.0.0.1 "$DP" "$T"/cmp/*jpeg*.dcm \
	"$T/cmp/SC_rgb_dcmtk_+eb+cy+np.dcm" >"$T/s5" 2>&1 &&
	storescu -xr -to 20 -ta 20 -td 20 "${TLS[@]}" -aet GETTER -aec DICOMVAULT 127.0.0.1 "$DP" "$T"/cmp/*RLE*.dcm \
		"$T"/cmp/*rle*.dcm >>"$T/s5" 2>&1
check "storescu: ${#CMP[@]} JPEG Baseline and RLE instances, stored as received" "[ $? -eq 0 ]" "$T/s5"
STUDIES=$("$PY" -c 'import sys, pydicom
print("\\".join(sorted({pydicom.dcmread(f, stop_before_pixels=True).StudyInstanceUID for f in sys.argv[1:]})))' \
	"$T"/cmp/*.dcm)
get_ dz GETTER -S -k QueryRetrieveLevel=STUDY -k "StudyInstanceUID=$STUDIES"
check "getscu with uncompressed contexts only: ${#CMP[@]} completed, 0 failed" \
	"grep -q 'Received C-GET Response (Success)' '$T/dz.log' && [ \"\$(final_ dz Completed)\" = ${#CMP[@]} ]" \
	"$T/dz.log"
"$PY" "$ROOT/tests/integration/lib/decompressed.py" "$T/gdz" "$T"/cmp/*.dcm >"$T/dz.cmp" 2>&1
check "each decompressed: explicit VR, pixels as pydicom decodes the original, the other attributes kept" \
	"[ $? -eq 0 ]" "$T/dz.cmp"

# ---- decompression of JPEG 2000 (.90, .91), HTJ2K (.201-203), JPEG-LS
# (.80, .81), JPEG Lossless (.57, .70) and 12-bit JPEG Extended (.51):
# made here from native originals (pydicom's MR_small, signed 16-bit; an
# RGB, a 12-bit grey and a 16-bit image made with pydicom) by gdcmconv,
# dcmcjpls, ojph_compress, dcmcjpeg and lib/ljpeg_enc.py (JPEG Lossless
# with restart intervals, one scan per component, 16-bit precision of
# 12-bit samples, differences of 32768: what dcmcjpeg does not make;
# dcmdjpeg decodes each to its original first), plus pydicom's YBR_RCT
# GDCMJ2K_TextGBR (against GDCM's decoding, gdcmconv -w) and JPGExtended
# (against dcmdjpeg's); all in one study, stored with storescu +tls in
# their own syntaxes (HTJ2K and .57, which storescu 3.6.7 does not
# propose, through lib/dul.py), retrieved by a getscu that proposes
# uncompressed syntaxes only: Explicit VR Little Endian, lossless pixels
# the originals' byte for byte, near-lossless within NEAR, lossy within 0
# of pydicom's decoding (JPEG 2000) or 1 of dcmdjpeg's (12-bit JPEG:
# IJG's integer inverse DCT), lossy marks, lib/decoded_native.py ----
GETS=0   # C-GETs of this part
if command -v gdcmconv >/dev/null && command -v dcmcjpls >/dev/null && command -v ojph_compress >/dev/null; then
	CZ=$T/cz
	mkdir -p "$CZ/nat" "$CZ/z" "$CZ/ht"
	cp "$PYD/MR_small.dcm" "$CZ/nat/mr.dcm"
	"$PY" - "$CZ/nat" >"$T/gen3.err" 2>&1 <<'PYEOF'
import sys
from pydicom.dataset import Dataset, FileMetaDataset
def native(name, uid, rows, cols, spp, stored, pixels, photo):
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = uid
    ds.PatientName = "CODEC^" + name; ds.PatientID = "P8"; ds.StudyInstanceUID = uid + ".1"
    ds.SeriesInstanceUID = uid + ".1.1"; ds.Modality = "OT"
    ds.Rows = rows; ds.Columns = cols; ds.SamplesPerPixel = spp; ds.PhotometricInterpretation = photo
    if spp == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = 8 if spp == 3 else 16; ds.BitsStored = stored; ds.HighBit = stored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = pixels
    fm = FileMetaDataset(); fm.MediaStorageSOPClassUID = ds.SOPClassUID; fm.MediaStorageSOPInstanceUID = uid
    fm.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.file_meta = fm; ds.is_little_endian = True; ds.is_implicit_VR = False
    ds.save_as(sys.argv[1] + "/" + name + ".dcm", write_like_original=False)
native("rgb", "1.2.826.0.1.3680043.2.1143.19.80", 40, 48, 3, 8,
       bytes(v for y in range(40) for x in range(48) for v in (x * 5, y * 6, (x * y) & 255)), "RGB")
native("grey", "1.2.826.0.1.3680043.2.1143.19.81", 48, 40, 1, 12,
       b"".join(((x * 83 + y * 61 + (x * y) % 97) & 0xFFF).to_bytes(2, "little") for y in range(48) for x in range(40)),
       "MONOCHROME2")
# 16-bit samples that jump by 32768 (a difference coded as SSSS 16)
native("jump", "1.2.826.0.1.3680043.2.1143.19.82", 24, 40, 1, 16,
       b"".join((0, 32768, 65535, 12345, 1)[(x * 7 + y * 3 + x * y) % 5].to_bytes(2, "little")
                for y in range(24) for x in range(40)), "MONOCHROME2")
import pydicom
for name in ("mr", "rgb"):   # PGM / PPM for ojph_compress (MR_small's samples are all positive)
    d = pydicom.dcmread(sys.argv[1] + "/" + name + ".dcm")
    with open(sys.argv[1] + "/" + name + (".pgm" if name == "mr" else ".ppm"), "wb") as f:
        if name == "mr":
            f.write(b"P5\n64 64\n65535\n" + d.pixel_array.astype(">u2").tobytes())
        else:
            f.write(b"P6\n48 40\n255\n" + d.PixelData)
PYEOF
	{
		gdcmconv --j2k "$CZ/nat/mr.dcm" "$CZ/z/mr_j2k.dcm" &&
			gdcmconv --j2k "$CZ/nat/rgb.dcm" "$CZ/z/rgb_j2k.dcm" &&
			gdcmconv --j2k --lossy -q 40 "$CZ/nat/rgb.dcm" "$CZ/z/rgb_j2ki.dcm" &&
			cp "$PYD/GDCMJ2K_TextGBR.dcm" "$CZ/z/gbr_j2k.dcm" &&
			gdcmconv -w "$PYD/GDCMJ2K_TextGBR.dcm" "$CZ/nat/gbr.dcm" &&
			dcmcjpls "$CZ/nat/mr.dcm" "$CZ/z/mr_jls.dcm" &&
			dcmcjpls +in "$CZ/nat/rgb.dcm" "$CZ/z/rgb_jlsin.dcm" &&
			dcmcjpls +il "$CZ/nat/rgb.dcm" "$CZ/z/rgb_jlsil.dcm" &&
			dcmcjpls +en "$CZ/nat/grey.dcm" "$CZ/z/grey_jlsn.dcm" &&
			ojph_compress -i "$CZ/nat/mr.pgm" -o "$CZ/nat/mr.j2c" -reversible true &&
			ojph_compress -i "$CZ/nat/rgb.ppm" -o "$CZ/nat/rgb.j2c" -reversible true -colour_trans true &&
			ojph_compress -i "$CZ/nat/rgb.ppm" -o "$CZ/nat/rgbl.j2c" -reversible false -qstep 0.02 -colour_trans true &&
			ojph_expand -i "$CZ/nat/rgbl.j2c" -o "$CZ/nat/rgbl.ppm" &&
			dcmcjpeg +e1 "$CZ/nat/mr.dcm" "$CZ/z/mr_jll.dcm" &&
			dcmcjpeg +el +sv 7 "$CZ/nat/rgb.dcm" "$CZ/ht/rgb_jllsv7.dcm" &&
			dcmcjpeg +ee "$CZ/nat/grey.dcm" "$CZ/z/greyx_jpx.dcm" &&
			dcmdjpeg "$CZ/z/greyx_jpx.dcm" "$CZ/nat/greyx.dcm" &&
			cp "$PYD/JPGExtended.dcm" "$CZ/z/ext_jpx.dcm" &&
			dcmdjpeg "$CZ/z/ext_jpx.dcm" "$CZ/nat/ext.dcm" &&
			"$PY" "$ROOT/tests/integration/lib/ljpeg_enc.py" "$CZ/nat/jump.dcm" "$CZ/ht/jump_jlr.dcm" --restart 3 &&
			"$PY" "$ROOT/tests/integration/lib/ljpeg_enc.py" "$CZ/nat/rgb.dcm" "$CZ/ht/rgb_jlr.dcm" --sv 6 --restart 2 \
				--separate &&
			"$PY" "$ROOT/tests/integration/lib/ljpeg_enc.py" "$CZ/nat/grey.dcm" "$CZ/ht/grey_jlr.dcm" --sv 7 --restart 5 \
				--precision 16 &&
			"$PY" "$ROOT/tests/integration/lib/ljpeg_enc.py" "$CZ/nat/mr.dcm" "$CZ/ht/mr_jlr.dcm" --sv 5 --restart 4
	} >>"$T/gen3.err" 2>&1
	# DCMTK decodes lib/ljpeg_enc.py's streams to their originals
	for f in "$CZ"/ht/*_jlr.dcm; do
		dcmdjpeg "$f" "$f.dcmtk" >>"$T/gen3.err" 2>&1
	done
	"$PY" - "$CZ" >"$T/ljenc.cmp" 2>&1 <<'PYEOF'
import glob, sys
import pydicom
fs = sorted(glob.glob(sys.argv[1] + "/ht/*_jlr.dcm"))
for f in fs:
    nat = pydicom.dcmread(sys.argv[1] + "/nat/" + f.rsplit("/", 1)[-1].split("_")[0] + ".dcm")
    same = pydicom.dcmread(f + ".dcmtk").PixelData == nat.PixelData
    print(f, "dcmdjpeg equals the original" if same else "DIFFERS")
    assert same
print("streams", len(fs))
PYEOF
	check "DCMTK's dcmdjpeg decodes lib/ljpeg_enc.py's 4 JPEG Lossless streams to their originals" \
		"[ $? -eq 0 ] && grep -q 'streams 4' '$T/ljenc.cmp'" "$T/ljenc.cmp"
	# one study, new instance UIDs; the HTJ2K codestreams in copies of
	# their originals (the colour one says YBR_RCT: ojph_compress applied
	# the reversible colour transform)
	"$PY" - "$CZ" "$PYD" >>"$T/gen3.err" 2>&1 <<'PYEOF'
import glob, sys
import pydicom
from pydicom._uid_dict import UID_dictionary
from pydicom.encaps import encapsulate
cz, pyd = sys.argv[1], sys.argv[2]
for ts, name, kw in (("201", "High-Throughput JPEG 2000 Image Compression (Lossless Only)", "HTJ2KLossless"),
                     ("202", "High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)",
                      "HTJ2KLosslessRPCL"),
                     ("203", "High-Throughput JPEG 2000 Image Compression", "HTJ2K")):
    UID_dictionary.setdefault("1.2.840.10008.1.2.4." + ts, (name, "Transfer Syntax", "", "", kw))
natives = {n: cz + "/nat/" + n + ".dcm" for n in ("mr", "rgb", "grey", "gbr", "jump", "greyx", "ext", "rgbl")}
# the lossy HTJ2K's original: the RGB image as OpenJPH's ojph_expand decodes it
d = pydicom.dcmread(natives["rgb"])
ppm = open(cz + "/nat/rgbl.ppm", "rb").read()
d.PixelData = ppm[len(ppm) - 48 * 40 * 3:]   # after the header "P6\n48 40\n255\n"
d.save_as(natives["rgbl"], write_like_original=False)
# .201 lossless, the same RPCL codestream as .202 (ojph_compress's order),
# and .203 lossy (the irreversible colour transform: YBR_ICT)
for name, stream, ts, photo, out in (("mr", "mr", "201", None, "mr_htj2k"), ("rgb", "rgb", "201", "YBR_RCT", "rgb_htj2k"),
                                     ("mr", "mr", "202", None, "mr_htj2kr"),
                                     ("rgbl", "rgbl", "203", "YBR_ICT", "rgbl_htj2ki")):
    d = pydicom.dcmread(natives["rgb" if name == "rgbl" else name])
    d.PixelData = encapsulate([open(cz + "/nat/" + stream + ".j2c", "rb").read()])
    d["PixelData"].VR = "OB"; d["PixelData"].is_undefined_length = True
    if photo:
        d.PhotometricInterpretation = photo
    d.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4." + ts
    d.save_as(cz + "/ht/" + out + ".dcm", write_like_original=False)
manifest = []
for i, f in enumerate(sorted(glob.glob(cz + "/z/*.dcm") + glob.glob(cz + "/ht/*.dcm"))):
    d = pydicom.dcmread(f)
    uid = "1.2.826.0.1.3680043.2.1143.19.9%02d" % i
    d.SOPInstanceUID = d.file_meta.MediaStorageSOPInstanceUID = uid
    d.StudyInstanceUID = "1.2.826.0.1.3680043.2.1143.17.8"
    d.SeriesInstanceUID = "1.2.826.0.1.3680043.2.1143.17.8.%d" % i
    d.PatientID = "P8"
    d.save_as(f, write_like_original=False)
    name = f.rsplit("/", 1)[-1].split("_")[0]
    kind = f.rsplit("_", 1)[-1][:-4]
    how = {"j2ki": "pydicom 0", "jlsn": "near 2", "jpx": "near 1", "htj2ki": "near 1"}.get(kind, "exact")
    manifest.append("%s %s %s" % (f, natives[name], how))
open(cz + "/manifest", "w").write("\n".join(manifest) + "\n")
PYEOF
	check "gdcmconv, dcmcjpls, ojph_compress, dcmcjpeg, lib/ljpeg_enc.py and pydicom made 20 JPEG 2000, HTJ2K, JPEG-LS, JPEG Lossless and 12-bit JPEG instances" \
		"[ \$(wc -l <'$CZ/manifest' 2>/dev/null) -eq 20 ]" "$T/gen3.err"
	st() {
		local o=$1
		shift
		storescu "$o" -to 20 -ta 20 -td 20 "${TLS[@]}" -aet GETTER -aec DICOMVAULT 127.0.0.1 "$DP" "$@" >>"$T/s6" 2>&1
	}
	st -xv "$CZ"/z/*_j2k.dcm && st -xw "$CZ"/z/*_j2ki.dcm && st -xt "$CZ"/z/*_jlsi?.dcm "$CZ/z/mr_jls.dcm" &&
		st -xu "$CZ"/z/*_jlsn.dcm && st -xs "$CZ"/z/*_jll.dcm && st -xx "$CZ"/z/*_jpx.dcm
	check "storescu +tls: 11 JPEG 2000, JPEG-LS, JPEG Lossless and 12-bit JPEG instances stored in their own syntaxes (-xv -xw -xt -xu -xs -xx)" \
		"[ $? -eq 0 ]" "$T/s6"
	"$PY" - "$ROOT" "$DP" "$T" "$CZ"/ht/*.dcm >"$T/s7" 2>&1 <<'PYEOF'
import io, sys
sys.path.insert(0, sys.argv[1] + "/tests/integration/lib")
import dul, pydicom
from pydicom.filewriter import write_dataset
port, d = int(sys.argv[2]), sys.argv[3]
files = [pydicom.dcmread(f) for f in sys.argv[4:]]
PC = {}   # (SOP class, its own transfer syntax): context
for ds in files:
    PC.setdefault((ds.SOPClassUID, ds.file_meta.TransferSyntaxUID), 2 * len(PC) + 1)
s = dul.connect(port, d + "/peer1.crt", d + "/peer1.key", d + "/v/keys/tls.crt")
s.sendall(dul.assoc_rq("GETTER", "DICOMVAULT", [(pc, sop, [ts]) for (sop, ts), pc in PC.items()]))
t, _ = dul.read_pdu(s)
assert t == 2, t
for mid, (f, ds) in enumerate(zip(sys.argv[4:], files), 1):
    b = io.BytesIO()
    fp = pydicom.filebase.DicomFileLike(b)
    fp.is_little_endian, fp.is_implicit_VR = True, False   # explicit VR LE, encapsulated pixels
    write_dataset(fp, ds)
    cmd = dul.command({0x00000002: ds.SOPClassUID, 0x00000100: 0x0001, 0x00000110: mid, 0x00000700: 0,
                       0x00000800: 0x0000, 0x00001000: ds.SOPInstanceUID})
    pc = PC[(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)]
    s.sendall(dul.pdata(pc, cmd, True) + dul.pdata(pc, b.getvalue(), False))
    c, _ = dul.Messages(s).next()
    st = dul.us(c[0x00000900]) if isinstance(c, dict) else None
    print(f.rsplit("/", 1)[-1], "status %04X" % st if st is not None else None,
          c.get(0x00000902, b"").decode(errors="replace") if isinstance(c, dict) else "")
    assert st == 0, st
s.sendall(dul.RELEASE_RQ)
print("stored", len(sys.argv) - 4)
PYEOF
	check "4 HTJ2K and 5 JPEG Lossless instances stored in .4.201-203 and .4.57 (lib/dul.py over TLS)" \
		"[ $? -eq 0 ] && grep -q 'stored 9' '$T/s7'" "$T/s7"
	get_ cz GETTER -S -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=1.2.826.0.1.3680043.2.1143.17.8
	GETS=1
	check "getscu with uncompressed contexts only: 20 completed, 0 failed" \
		"grep -q 'Received C-GET Response (Success)' '$T/cz.log' && [ \"\$(final_ cz Completed)\" = 20 ]" \
		"$T/cz.log"
	"$PY" "$ROOT/tests/integration/lib/decoded_native.py" "$T/gcz" "$CZ/manifest" >"$T/cz.cmp" 2>&1
	check "each decompressed: explicit VR, lossless pixels the native originals' byte for byte, lossy within bounds and marked, RGB interleaved, the other attributes kept" \
		"[ $? -eq 0 ]" "$T/cz.cmp"
else
	no "gdcmconv, dcmcjpls and ojph_compress installed (scripts/install-deps.sh)"
fi

# ---- role selection and the Failed SOP Instance UID List (lib/dul.py) ----
cat >"$T/roles.py" <<'PYEOF'
import sys
sys.path.insert(0, sys.argv[1] + "/tests/integration/lib")
import dul, pydicom, io
port, d, study = int(sys.argv[2]), sys.argv[3], sys.argv[4]
SC = "1.2.840.10008.5.1.4.1.1.7"
def run(roles):
    s = dul.connect(port, d + "/peer1.crt", d + "/peer1.key", d + "/v/keys/tls.crt")
    s.sendall(dul.assoc_rq("GETTER", "DICOMVAULT", [(1, dul.GET_STUDY, [dul.IMPLICIT]), (3, SC, [dul.EXPLICIT])],
                           roles=roles))
    t, _ = dul.read_pdu(s)
    assert t == 2, t
    rq = dul.command({0x00000002: dul.GET_STUDY, 0x00000100: 0x0010, 0x00000110: 5, 0x00000700: 0,
                      0x00000800: 0x0000})
    s.sendall(dul.pdata(1, rq, True) + dul.pdata(1, dul.dataset({0x00080052: "STUDY", 0x0020000D: study}), False))
    m = dul.Messages(s)
    stored, pending = [], 0
    while True:
        c, data = m.next()
        field = dul.us(c[0x00000100])
        if field == 0x0001:   # C-STORE-RQ sub-operation
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            ds.is_little_endian, ds.is_implicit_VR = True, False
            stored.append(ds.SOPInstanceUID)
            rsp = dul.command({0x00000002: SC, 0x00000100: 0x8001, 0x00000120: dul.us(c[0x00000110]),
                               0x00000800: 0x0101, 0x00000900: 0, 0x00001000: ds.SOPInstanceUID})
            s.sendall(dul.pdata(3, rsp, True))
            continue
        st = dul.us(c[0x00000900])
        if st == 0xFF00:
            pending += 1
            continue
        failed = []
        if data:
            ident = pydicom.dcmread(io.BytesIO(data), force=True)
            ident.is_little_endian, ident.is_implicit_VR = True, True
            v = ident.get("FailedSOPInstanceUIDList", [])
            failed = [v] if isinstance(v, str) else list(v)
        print("roles" if roles else "noroles", "%04X" % st, "stored", ",".join(x[-4:] for x in stored),
              "pending", pending, "completed", dul.us(c[0x00001021]), "failed", dul.us(c[0x00001022]),
              "list", ",".join(x[-4:] for x in failed))
        break
    s.sendall(dul.RELEASE_RQ)
    t, _ = dul.read_pdu(s)
    assert t == 6, t
run([(SC, 0, 1)])
run([])
PYEOF
"$PY" "$T/roles.py" "$ROOT" "$DP" "$T" "${S}4" >"$T/roles" 2>&1
check "SCP role selected: the implicit VR instance sent, B000H with the JPEG one in the Failed SOP Instance UID List" \
	"grep -qx 'roles B000 stored 19.6 pending 2 completed 1 failed 1 list 19.7' '$T/roles'" "$T/roles" "$T/err"
check "no SCP role proposed: no sub-operation, A702H, both in the list" \
	"grep -qx 'noroles A702 stored  pending 2 completed 0 failed 2 list 19.6,19.7' '$T/roles'" "$T/roles" "$T/err"

# ---- C-CANCEL right behind the C-GET (lib/dul.py over TLS) ----
cat >"$T/cancel.py" <<'PYEOF'
import sys
sys.path.insert(0, sys.argv[1] + "/tests/integration/lib")
import dul
port, d, study = int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = dul.connect(port, d + "/peer1.crt", d + "/peer1.key", d + "/v/keys/tls.crt")
s.sendall(dul.assoc_rq("GETTER", "DICOMVAULT", [(1, dul.GET_STUDY, [dul.IMPLICIT])]))
t, _ = dul.read_pdu(s)
assert t == 2, t
rq = dul.command({0x00000002: dul.GET_STUDY, 0x00000100: 0x0010, 0x00000110: 9, 0x00000700: 0,
                  0x00000800: 0x0000})
ident = dul.dataset({0x00080052: "STUDY", 0x0020000D: study})
cancel = dul.pdata(1, dul.command({0x00000100: 0x0FFF, 0x00000120: 9, 0x00000800: 0x0101}), True)
s.sendall(dul.pdata(1, rq, True) + dul.pdata(1, ident, False) + cancel)
m = dul.Messages(s)
c, _ = m.next()
assert dul.us(c[0x00000120]) == 9
print("cancel %04X remaining %d completed %d" % (dul.us(c[0x00000900]), dul.us(c[0x00001020]),
                                                 dul.us(c[0x00001021])))
s.sendall(dul.RELEASE_RQ)
t, _ = dul.read_pdu(s)
print("released" if t == 6 else t)
PYEOF
"$PY" "$T/cancel.py" "$ROOT" "$DP" "$T" "${S}1" >"$T/cancel" 2>&1
check "C-CANCEL right behind the C-GET: FE00H, 3 remaining, none sent" \
	"grep -qx 'cancel FE00 remaining 3 completed 0' '$T/cancel' && grep -qx released '$T/cancel'" "$T/cancel" "$T/err"

# one record per C-GET, written before its first image leaves ("N to send");
# one more, right after it, for each C-GET that sent less than that
"$PY" - "$T/v/audit/audit.log" $((14 + nbs + GETS)) >"$T/getrecs" 2>&1 <<'PYEOF'
import json, re, sys
recs = [r for r in map(json.loads, open(sys.argv[1])) if r.get("action") == "retrieve" and "C-GET" in r.get("reason", "")]
ops, bad, prev = 0, [], None
for r in recs:
    m = re.search(r": (\d+) of (\d+) sent", r["reason"])
    if " to send" in r["reason"]:
        ops += 1
    elif m and int(m.group(2)) > 0:   # the end of one that sent less than announced
        if prev is None or not prev["reason"].endswith(": %s to send" % m.group(2)) or \
                int(m.group(1)) >= int(m.group(2)) and "failed, 0 warning" in r["reason"] and "cancel" not in r["reason"]:
            bad.append(r["reason"])
    else:
        ops += 1   # nothing to send: the one record, at the end
    prev = r
print("ops %d (want %s), bad %r" % (ops, sys.argv[2], bad))
sys.exit(0 if ops == int(sys.argv[2]) and not bad else 1)
PYEOF
rc=$?
check "one retrieve audit record per C-GET before it sends, one more after each that sent less" \
	"[ $rc -eq 0 ] && grep '\"retrieve\"' '$T/v/audit/audit.log' | grep -q '\"GETTER\"'" "$T/getrecs"
# what they retrieved, as WADO-RS's records name it: the study when every
# instance is of one, the series and the instance likewise (st: study 1 of
# two series; se: series 1.1; im and pa: one instance; ul: two patients)
"$PY" - "$T/v/audit/audit.log" "$S" >"$T/getobjs" 2>&1 <<'PYEOF'
import json, sys
S = sys.argv[2]
recs = [r for r in map(json.loads, open(sys.argv[1])) if r.get("action") == "retrieve" and
        r["actor"].get("user") == "GETTER" and r.get("reason", "").endswith(" to send")][:5]
want = [("STUDY", S + "1", None, None, True), ("SERIES", S + "1", S + "1.1", None, True),
        ("IMAGE", S + "1", S + "1.2", "1.2.826.0.1.3680043.2.1143.19.3", True),
        ("PATIENT", S + "2", S + "2.1", "1.2.826.0.1.3680043.2.1143.19.4", True), ("STUDY", None, None, None, False)]
bad = []
for r, (lvl, st, se, sop, one) in zip(recs, want):
    o = r["objects"]
    if (" %s: " % lvl not in r["reason"] or o.get("study") != st or o.get("series") != se or o.get("sop") != sop or
            ("patient" in o) != one or ("patients" in o) == one):
        bad.append((r["reason"], o))
print("records %d, bad %r" % (len(recs), bad))
sys.exit(0 if len(recs) == 5 and not bad else 1)
PYEOF
check "C-GET records name the study, series and instance when the retrieve is of one" "[ $? -eq 0 ]" "$T/getobjs"
check "server still running" "kill -0 $SRV"

# ---- a damaged object: the sub-operation fails, integrity-failure audited ----
TSOP=1.2.826.0.1.3680043.2.1143.19.3
OBJ=$("$PY" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select object_key from instances where uid=?", (sys.argv[2],)).fetchone()[0])' "$T/v/index.db" "$TSOP" 2>/dev/null)
OBJP="$T/v/objects/${OBJ:0:2}/${OBJ:2:2}/$OBJ"
flip() { "$PY" -c 'import os,sys; p=sys.argv[1]; o=os.path.getsize(p)//2; f=open(p,"r+b"); f.seek(o); b=f.read(1); f.seek(o); f.write(bytes([b[0]^1]))' "$OBJP"; }
if [ -f "$OBJP" ]; then
	flip
	get_ dmg GETTER -S -k QueryRetrieveLevel=IMAGE -k StudyInstanceUID=${S}1 -k SeriesInstanceUID=${S}1.2 \
		-k SOPInstanceUID=$TSOP
	check "a damaged object asked for by C-GET: not received, the sub-operation failed" \
		"[ -d '$T/gdmg' ] && [ -z \"\$(ls '$T/gdmg')\" ] && grep -q 'Received Final C-GET Response\|Received C-GET Response' '$T/dmg.log' && grep -A4 'Final status report' '$T/dmg.log' | grep -qiE 'failed.*: *1'" \
		"$T/dmg.log"
	check "its integrity failure audited: the peer as actor, the instance named" \
		"grep '\"action\":\"integrity-failure\",\"outcome\":\"failure\"' '$T/v/audit/audit.log' | grep '\"GETTER\"' | grep -q '$TSOP'"
	# named as WADO-RS names it, so that the patient's accounting lists it:
	# the patient (the key the C-GET of that instance was recorded with),
	# study and series
	"$PY" - "$T/v/audit/audit.log" "$S" "$TSOP" >"$T/dmgrec" 2>&1 <<'PYEOF'
import json, sys
recs = list(map(json.loads, open(sys.argv[1])))
S, sop = sys.argv[2], sys.argv[3]
pk = [r["objects"].get("patient") for r in recs if r.get("action") == "retrieve" and
      r["objects"].get("sop") == sop and r.get("reason", "").endswith(" to send")][:1]
bad = [r["objects"] for r in recs if r.get("action") == "integrity-failure" and
       (r["objects"].get("sop") != sop or r["objects"].get("study") != S + "1" or
        r["objects"].get("series") != S + "1.2" or [r["objects"].get("patient")] != pk or None in pk)]
print("patient", pk, "bad", bad)
sys.exit(1 if bad or not pk else 0)
PYEOF
	check "its integrity failure names the patient key, study and series" "[ $? -eq 0 ]" "$T/dmgrec"
	check "server still running after it" "kill -0 $SRV"
	flip
	get_ undmg GETTER -S -k QueryRetrieveLevel=IMAGE -k StudyInstanceUID=${S}1 -k SeriesInstanceUID=${S}1.2 \
		-k SOPInstanceUID=$TSOP
	same undmg "$D/003.dcm" >"$T/undmg.cmp" 2>&1
	check "the byte flipped back: that instance again, equal" "[ $? -eq 0 ]" "$T/undmg.cmp" "$T/undmg.log"
else
	no "the object of $TSOP found under objects/"
fi
stop_pid "$TUN"
TUN=
kill -TERM "$SRV"
for _ in $(seq 100); do kill -0 "$SRV" 2>/dev/null || break; sleep 0.1; done
wait "$SRV" 2>/dev/null
rc=$?
SRV=
check "server stops cleanly on SIGTERM" "[ $rc -eq 0 ]" "$T/err"
"$DV" audit verify --vault "$T/v" >"$T/av" 2>&1
check "audit trail intact" "[ $? -eq 0 ]" "$T/av"
