#!/bin/bash
# dimse_tls.sh: the DICOM network service of `dicomvault serve` (issue 5)
# against DCMTK as the real peer, over DICOM-TLS (TLS 1.3, client
# certificates made here with openssl): C-ECHO from a peer bound by
# fingerprint and from one bound by CA (its certificate naming the AE
# title); C-STORE with storescu of a
# synthetic CT series (bench/gen_corpus.py) and pydicom's samples (native,
# JPEG 2000, JPEG, RLE: encapsulated ones stored as received), read back
# with `dicomvault export` and compared; a peer storing into a study of
# another collection refused (0124H); refusals (no client certificate,
# an unknown certificate, a certificate of the peer's CA naming another AE
# or for TLS servers only, an expired bound certificate, an unknown AE
# title, a peer without the right,
# a wrong called AE title, TLS 1.2, a `tls = no` peer), each audited; a
# connection that stalls is dropped while others are served; the plain-TCP listener only
# as configured, with a warning, and only for `tls = no` peers from their
# host (an AE title bound to a certificate is refused there; tls = no
# with a fingerprint or ca is refused in the configuration). Prints ok/not ok lines. Env DV: the CLI
# under test; KEEP=1 keeps the directory. Layer: tests.
set -u
DV=${DV:-build/check/dicomvault}
PY=/usr/bin/python3
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TEST=dimse_tls
. "$(dirname "$0")/lib/dimse.sh"
tap_setup dtls

need echoscu openssl


# ---- certificates: two self-signed peers, a CA and a peer it issued ----
cert peer1
cert stranger
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=test CA" \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
	-keyout "$T/ca.key" -out "$T/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=capeer" \
	-keyout "$T/capeer.key" -out "$T/capeer.csr" 2>/dev/null
openssl x509 -req -in "$T/capeer.csr" -CA "$T/ca.crt" -CAkey "$T/ca.key" -CAcreateserial -days 2 \
	-out "$T/capeer.crt" 2>/dev/null
# issued by the same CA: one naming another AE title, one for TLS servers only
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=someoneelse" \
	-keyout "$T/caother.key" -out "$T/caother.csr" 2>/dev/null
openssl x509 -req -in "$T/caother.csr" -CA "$T/ca.crt" -CAkey "$T/ca.key" -CAcreateserial -days 2 \
	-out "$T/caother.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=capeer" \
	-keyout "$T/caserver.key" -out "$T/caserver.csr" 2>/dev/null
printf 'extendedKeyUsage = serverAuth\n' >"$T/serverauth.ext"
openssl x509 -req -in "$T/caserver.csr" -CA "$T/ca.crt" -CAkey "$T/ca.key" -CAcreateserial -days 2 \
	-extfile "$T/serverauth.ext" -out "$T/caserver.crt" 2>/dev/null
# self-signed and expired (python3-cryptography: openssl 3.0 cannot back-date)
"$PY" - "$T/expired" <<'PYEOF'
import datetime, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
k = ec.generate_private_key(ec.SECP256R1())
n = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired")])
now = datetime.datetime.now(datetime.timezone.utc)
c = (x509.CertificateBuilder().subject_name(n).issuer_name(n).public_key(k.public_key())
     .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=10))
     .not_valid_after(now - datetime.timedelta(days=1)).sign(k, hashes.SHA256()))
open(sys.argv[1] + ".crt", "wb").write(c.public_bytes(serialization.Encoding.PEM))
open(sys.argv[1] + ".key", "wb").write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
PYEOF
for f in peer1 stranger ca capeer caother caserver expired; do
	[ -s "$T/$f.crt" ] || { no "openssl made the $f certificate"; exit 0; }
done

# ---- a vault with peers, and the server ----
vault_init || exit 0
HP=$(free_port)
DP=$(free_port)
PP=$(free_port)
sed -i "s/^\[dicom\]\$/[dicom]\nartim = 2\nidle_timeout = 3\nplain_listen = 127.0.0.1:$PP/" "$T/v/dicomvault.conf"
cat >>"$T/v/dicomvault.conf" <<CONF

[peer "ECHOSCU"]
fingerprint = $(fp "$T/peer1.crt")
host = 127.0.0.1
port = 11112
rights = echo, store, find, move, get

[peer "FINDONLY"]
fingerprint = $(fp "$T/peer1.crt")
rights = find

[peer "GETONLY"]
fingerprint = $(fp "$T/peer1.crt")
rights = get

[peer "CAPEER"]
ca = $T/ca.crt
rights = echo

[peer "EXPIRED"]
fingerprint = $(fp "$T/expired.crt")
rights = echo

[peer "PLAINOLD"]
host = 127.0.0.1
port = 11112
tls = no
rights = echo

[peer "PLAINFAR"]
host = 192.0.2.7
port = 11112
tls = no
rights = echo

[peer "CTDEPT"]
fingerprint = $(fp "$T/peer1.crt")
collection = ctdept
rights = store

[collection "ctdept"]

[collection "modality"]
calling_ae = ROUTED

[collection "research"]
match = InstitutionName=RESEARCH*

[peer "ROUTED"]
fingerprint = $(fp "$T/peer1.crt")
rights = store
CONF
serve_dicom || exit 0
ok "server running with DICOM-TLS"
check "plain-TCP listener warned about at start" "grep -q 'plain-TCP DICOM listener' '$T/err'"

SC="$T/v/keys/tls.crt"
# echo AET KEY CERT [more echoscu options]: C-ECHO over DICOM-TLS
echo_tls() {
	local aet=$1 key=$2 crt=$3
	shift 3
	echoscu -to 10 -ta 10 -td 10 +tls "$key" "$crt" +cf "$SC" -aet "$aet" -aec DICOMVAULT "$@" 127.0.0.1 "$DP"
}
audit_has() { grep -q "$1" "$T/v/audit/audit.log"; }

echo_tls ECHOSCU "$T/peer1.key" "$T/peer1.crt" >"$T/e1" 2>&1
check "C-ECHO from a peer bound by fingerprint" "[ $? -eq 0 ]" "$T/e1"
check "association accept audited with the AE and fingerprint" \
	"grep '\"dicom-association\"' '$T/v/audit/audit.log' | grep '\"success\"' | grep -q \"$(fp "$T/peer1.crt")\""
echo_tls CAPEER "$T/capeer.key" "$T/capeer.crt" >"$T/e2" 2>&1
check "C-ECHO from a peer bound by CA" "[ $? -eq 0 ]" "$T/e2"
# 128 contexts of 24 transfer syntaxes: an 84 KB A-ASSOCIATE-RQ, over the
# 2,048 transfer syntaxes kept: 3,072 proposed (DCMTK's storescp accepts it too)
echo_tls ECHOSCU "$T/peer1.key" "$T/peer1.crt" -ppc 128 -pts 24 >"$T/e3" 2>&1
check "C-ECHO in an A-ASSOCIATE-RQ of 128 contexts x 24 transfer syntaxes" "[ $? -eq 0 ]" "$T/e3" "$T/err"

# ---- C-STORE ----
TF=/usr/lib/python3/dist-packages/pydicom/data/test_files
NCT=12
"$PY" -c "
import sys; sys.path.insert(0, '$ROOT/bench'); import gen_corpus as g
g.N_CT = $NCT; u = g.Uids(20240611)
uids = {k: u.new() for k in ('ct_study', 'ct_series', 'ct_for', 'refstudy')}
uids['ct_sop'] = [u.new() for _ in range($NCT)]
g.gen_ct(sys.argv[1], uids)" "$T" >"$T/gen.err" 2>&1
check "bench/gen_corpus.py made the CT series" "[ \$(ls '$T/ct' 2>/dev/null | wc -l) -eq $NCT ]" "$T/gen.err"
store() {  # storescu over DICOM-TLS as AET; more options and files follow
	local aet=$1
	shift
	storescu -to 20 -ta 20 -td 20 +tls "$T/peer1.key" "$T/peer1.crt" +cf "$SC" -aet "$aet" -aec DICOMVAULT \
		127.0.0.1 "$DP" "$@"
}
store ECHOSCU "$T"/ct/*.dcm >"$T/s1" 2>&1
check "storescu: the CT series ($NCT slices, one association)" "[ $? -eq 0 ]" "$T/s1" "$T/err"
store ECHOSCU "$TF/CT_small.dcm" "$TF/MR_small.dcm" "$TF/rtplan.dcm" >"$T/s2" 2>&1
check "storescu: pydicom's CT, MR (explicit LE) and RT plan (implicit LE)" "[ $? -eq 0 ]" "$T/s2"
store ECHOSCU -xw "$TF/JPEG2000.dcm" >"$T/s3" 2>&1
check "storescu: JPEG 2000 stored as received" "[ $? -eq 0 ]" "$T/s3"
store ECHOSCU -xr "$TF/SC_rgb_rle.dcm" >"$T/s4" 2>&1
check "storescu: RLE stored as received" "[ $? -eq 0 ]" "$T/s4"
store ECHOSCU -xx "$TF/JPEG-lossy.dcm" >"$T/s5" 2>&1
check "storescu: JPEG extended stored as received" "[ $? -eq 0 ]" "$T/s5"
store ECHOSCU "$TF/CT_small.dcm" >"$T/s6" 2>&1
check "storescu: the same instance again (identical) succeeds" "[ $? -eq 0 ]" "$T/s6"
store CTDEPT -v "$TF/MR_small.dcm" >"$T/s7" 2>&1
check "C-STORE into a study of another collection: status 0124H" "grep -q 'Status: 0x124' '$T/s7'" "$T/s7"
check "refused store audited" "grep '\"store\"' '$T/v/audit/audit.log' | grep -q 'another collection'"
# a data set that a [collection] rule routes to a collection the peer is
# not bound to: refused (a study already stored there is refused already)
"$PY" - "$TF/MR_small.dcm" "$T/research_new.dcm" "$T/routed_new.dcm" <<'PYEOF'
import sys
import pydicom
ds = pydicom.dcmread(sys.argv[1])
ds.InstitutionName = "RESEARCH-LAB"
ds.StudyInstanceUID = "1.2.826.0.1.3680043.2.1143.77.1"
ds.SeriesInstanceUID = "1.2.826.0.1.3680043.2.1143.77.1.1"
ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.2.1143.77.1.1.1"
ds.save_as(sys.argv[2])
ds.InstitutionName = "WARD 7"
ds.StudyInstanceUID = "1.2.826.0.1.3680043.2.1143.77.2"
ds.SeriesInstanceUID = "1.2.826.0.1.3680043.2.1143.77.2.1"
ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.2.1143.77.2.1.1"
ds.save_as(sys.argv[3])
PYEOF
store CTDEPT -v "$T/research_new.dcm" >"$T/s8" 2>&1
check "C-STORE that a rule routes to a collection the peer is not bound to (new study): 0124H" \
	"grep -q 'Status: 0x124' '$T/s8'" "$T/s8"
store ECHOSCU -v "$T/research_new.dcm" >"$T/s9" 2>&1
check "the same from a peer of the default collection: 0124H too" "grep -q 'Status: 0x124' '$T/s9'" "$T/s9"
# a calling_ae rule is the administrator routing that peer: its stores go there
store ROUTED -v "$T/routed_new.dcm" >"$T/s10" 2>&1
rc=$?
check "C-STORE from a peer that a calling_ae rule routes to another collection: stored there" \
	"[ $rc -eq 0 ] && ! grep -q 'Status: 0x' '$T/s10' && [ \"\$(\"$PY\" -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(\"select collection from studies where uid = ?\", (\"1.2.826.0.1.3680043.2.1143.77.2\",)).fetchone()[0])' '$T/v/index.db')\" = modality ]" "$T/s10"
# without the store right: with neither store nor get no storage context
# is accepted (dimse_svc_policy), so storescu's association is rejected
# (A-ASSOCIATE-RJ 1/1/1: permanent, service user, no reason given) and
# audited with the peer's rights; with the get right only, storage
# contexts are accepted (for the SCP role of C-GET sub-operations), and a
# C-STORE is refused with 0124H, "Not authorized" (PS3.7 C.5: a right the
# peer lacks, not a class we do not support), audited as denied
store FINDONLY -v "$TF/rtplan.dcm" >"$T/s8" 2>&1
rc=$?
check "storescu from a peer without the store right (find only): A-ASSOCIATE-RJ permanent, service user, no reason" \
	"[ $rc -ne 0 ] && grep -q 'Association Rejected' '$T/s8' && grep -q 'Result: Rejected Permanent, Source: Service User' '$T/s8' && grep -q 'Reason: No Reason$' '$T/s8' && ! grep -q 'Sending Store Request' '$T/s8'" \
	"$T/s8"
# audit_rec ACTION OUTCOME AE REASON [MORE]: a record of ACTION with that
# outcome, the peer AE as actor, exactly that reason (and MORE, verbatim)
audit_rec() {
	grep -F "\"action\":\"$1\",\"outcome\":\"$2\"" "$T/v/audit/audit.log" | grep -F "\"user\":\"$3\"" |
		grep -F "\"reason\":\"$4\"" | grep -qF "${5:-}"
}
audit_rec dicom-association denied FINDONLY "no right for any proposed service (rights of FINDONLY: find)"
check "that refusal audited: denied, 'no right for any proposed service (rights of FINDONLY: find)'" "[ $? -eq 0 ]" \
	"$T/v/audit/audit.log"
# a peer proposing services beyond its rights beside one it has: the
# association is accepted for that one, and the rest is a refusal of its
# own in the audit trail (denied, naming the rights it lacked)
"$PY" - "$ROOT" "$DP" "$T" <<'PYEOF' >"$T/mixed" 2>&1
import sys
sys.path.insert(0, sys.argv[1] + "/tests/integration/lib")
import dul
port, d = int(sys.argv[2]), sys.argv[3]
s = dul.connect(port, d + "/peer1.crt", d + "/peer1.key", d + "/v/keys/tls.crt")
CT = "1.2.840.10008.5.1.4.1.1.2"
s.sendall(dul.assoc_rq("CTDEPT", "DICOMVAULT", [(1, dul.VERIFICATION, [dul.IMPLICIT]),
                                                (3, dul.FIND_STUDY, [dul.IMPLICIT]),
                                                (5, CT, [dul.IMPLICIT])]))
t, body = dul.read_pdu(s)
print("type", t)
s.sendall(dul.RELEASE_RQ)
t, _ = dul.read_pdu(s)
print("released" if t == 6 else t)
PYEOF
check "a store-only peer proposing echo, find and CT storage: accepted (for storage)" \
	"grep -qx 'type 2' '$T/mixed' && grep -qx released '$T/mixed'" "$T/mixed"
audit_rec dicom-association denied CTDEPT "presentation contexts refused for want of a right: echo find (rights of CTDEPT: store)"
check "the services beyond its rights audited: denied, naming echo and find" "[ $? -eq 0 ]" "$T/v/audit/audit.log"
audit_rec dicom-association success CTDEPT "1 of 3 presentation contexts accepted"
check "and the association itself: success, 1 of 3 contexts" "[ $? -eq 0 ]" "$T/v/audit/audit.log"
RTSOP=$("$PY" -c 'import pydicom,sys; print(pydicom.dcmread(sys.argv[1], stop_before_pixels=True).SOPInstanceUID)' \
	"$TF/rtplan.dcm")
store GETONLY -v "$TF/rtplan.dcm" >"$T/s9" 2>&1
check "storescu from a peer with the get right only: associated, C-STORE refused with 0124H (not authorized)" \
	"grep -q 'Association Accepted' '$T/s9' && grep -qE 'Received Store Response \\((Refused: NotAuthorized|Unknown Status: 0x124)\\)' '$T/s9'" \
	"$T/s9"
audit_rec store denied GETONLY "Not authorized: this peer has no store right" "\"sop\":\"$RTSOP\""
check "that C-STORE audited: store denied, 'no store right', naming the SOP Instance UID" "[ $? -eq 0 ]" \
	"$T/v/audit/audit.log"
SAMPLES="$TF/CT_small.dcm $TF/MR_small.dcm $TF/rtplan.dcm $TF/JPEG2000.dcm $TF/SC_rgb_rle.dcm $TF/JPEG-lossy.dcm"
for f in "$T"/ct/CT0001.dcm $SAMPLES; do
	st=$("$PY" -c 'import pydicom,sys; print(pydicom.dcmread(sys.argv[1], stop_before_pixels=True).StudyInstanceUID)' "$f")
	"$DV" export --vault "$T/v" --study "$st" --out "$T/exp" --quiet <"$T/pw" >/dev/null 2>>"$T/exp.err"
done
cat >"$T/cmp.py" <<'PYEOF'
import os, struct, sys, pydicom
def body(path):
    b = open(path, "rb").read()
    assert b[128:132] == b"DICM", path
    # (0002,0000) UL, explicit VR LE: tag 4, VR 2, len 2, value 4
    assert b[132:136] == b"\x02\x00\x00\x00", path
    glen = struct.unpack("<I", b[140:144])[0]
    return b[144 + glen:], pydicom.dcmread(path, stop_before_pixels=True)
def same_but_group_lengths(a, b):
    """DCMTK sends without group lengths and trailing padding: apart from those
    every other element must be identical, pixel data byte for byte."""
    da, db = pydicom.dcmread(a), pydicom.dcmread(b)
    for d in (da, db):
        for t in [t for t in d.keys() if t.element == 0 or t == 0xFFFCFFFC]:
            del d[t]
    return da == db and da.get("PixelData") == db.get("PixelData")
exported = {}
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        exported[f[:-4]] = os.path.join(root, f)
bad = 0
for p in sys.argv[2:]:
    ob, od = body(p)
    uid = str(od.SOPInstanceUID)
    if uid not in exported:
        print("missing", p); bad += 1; continue
    eb, ed = body(exported[uid])
    same = (ob == eb or same_but_group_lengths(p, exported[uid])) and ed.file_meta.TransferSyntaxUID == od.file_meta.TransferSyntaxUID and ed.file_meta.MediaStorageSOPClassUID == od.SOPClassUID
    if not same:
        print("differs", p, len(ob), len(eb), ed.file_meta.TransferSyntaxUID, od.file_meta.TransferSyntaxUID); bad += 1
print("compared", len(sys.argv) - 2, "bad", bad)
sys.exit(1 if bad else 0)
PYEOF
"$PY" "$T/cmp.py" "$T/exp" "$T"/ct/*.dcm $SAMPLES >"$T/cmp" 2>&1
check "every stored instance exported and identical to what was sent" "[ $? -eq 0 ]" "$T/cmp" "$T/exp.err"
n=$(grep '"store"' "$T/v/audit/audit.log" | grep -c '"success"')
check "each C-STORE audited with the peer as actor ($n)" \
	"[ $n -ge $((NCT + 7)) ] && grep '\"store\"' '$T/v/audit/audit.log' | grep -q '\"ECHOSCU\"'"

# ---- refusals ----
echo_tls CAPEER "$T/stranger.key" "$T/stranger.crt" >"$T/r1" 2>&1
rc=$?
check "a certificate the peer's CA did not issue: refused" "[ $rc -ne 0 ] && grep -qi 'reject' '$T/r1'" "$T/r1"
echo_tls CAPEER "$T/caother.key" "$T/caother.crt" >"$T/r9" 2>&1
rc=$?
check "a certificate of the peer's CA naming another AE title (CN=someoneelse): refused" \
	"[ $rc -ne 0 ] && grep -qi 'reject' '$T/r9'" "$T/r9"
check "that refusal audited" "audit_has 'does not name its AE title'"
echo_tls CAPEER "$T/caserver.key" "$T/caserver.crt" >"$T/r10" 2>&1
rc=$?
check "a certificate of the peer's CA for TLS servers only (extendedKeyUsage serverAuth): refused" \
	"[ $rc -ne 0 ] && grep -qi 'reject' '$T/r10'" "$T/r10"
check "that refusal audited" "audit_has 'not issued by the peer.s CA for this use'"
echo_tls EXPIRED "$T/expired.key" "$T/expired.crt" >"$T/r11" 2>&1
rc=$?
check "the very certificate bound to the AE title, expired: refused" \
	"[ $rc -ne 0 ] && grep -qi 'reject' '$T/r11'" "$T/r11"
check "that refusal audited" "audit_has 'expired or not yet valid'"
echo_tls ECHOSCU "$T/stranger.key" "$T/stranger.crt" >"$T/r2" 2>&1
rc=$?
check "an unknown certificate: A-ASSOCIATE-RJ" "[ $rc -ne 0 ] && grep -qi 'reject' '$T/r2'" "$T/r2"
check "unknown certificate audited" "audit_has 'not the one bound to this AE title'"
echo_tls NOBODY "$T/peer1.key" "$T/peer1.crt" >"$T/r3" 2>&1
rc=$?
check "an unknown calling AE title: A-ASSOCIATE-RJ" "[ $rc -ne 0 ] && grep -qi 'reject' '$T/r3'" "$T/r3"
check "unknown AE title audited" "audit_has 'unknown calling AE title'"
echo_tls PLAINOLD "$T/peer1.key" "$T/peer1.crt" >"$T/r7" 2>&1
rc=$?
check "a tls = no peer (no certificate bound) on the DICOM-TLS listener: A-ASSOCIATE-RJ" \
	"[ $rc -ne 0 ] && grep -qi 'reject' '$T/r7'" "$T/r7"
check "tls = no peer refused audited" "audit_has 'no certificate bound to this AE title (tls = no)'"
echo_tls FINDONLY "$T/peer1.key" "$T/peer1.crt" >"$T/r4" 2>&1
rc=$?
check "C-ECHO from a peer without the echo right: A-ASSOCIATE-RJ" "[ $rc -ne 0 ] && grep -qi 'reject' '$T/r4'" "$T/r4"
check "missing right audited" "audit_has 'no right for any proposed service'"
echoscu -to 10 -ta 10 -td 10 +tls "$T/peer1.key" "$T/peer1.crt" +cf "$SC" -aet ECHOSCU -aec OTHERAE \
	127.0.0.1 "$DP" >"$T/r5" 2>&1
rc=$?
check "a called AE title that is not ours: A-ASSOCIATE-RJ" "[ $rc -ne 0 ] && grep -qi 'reject' '$T/r5'" "$T/r5"
echoscu -to 10 -ta 10 -td 10 +tla +cf "$SC" -aet ECHOSCU -aec DICOMVAULT 127.0.0.1 "$DP" >"$T/r6" 2>&1
rc=$?
check "no client certificate: refused" "[ $rc -ne 0 ]" "$T/r6"
check "no client certificate audited" "audit_has 'TLS handshake failed'"
echo Q | timeout 10 openssl s_client -connect "127.0.0.1:$DP" -tls1_2 -cert "$T/peer1.crt" -key "$T/peer1.key" \
	>"$T/r7" 2>&1
check "TLS 1.2 refused (no cipher agreed, no server certificate shown)" \
	"grep -q 'Cipher is (NONE)' '$T/r7' && grep -q 'no peer certificate available' '$T/r7'" "$T/r7"
echo Q | timeout 10 openssl s_client -connect "127.0.0.1:$DP" -tls1_3 -cert "$T/peer1.crt" -key "$T/peer1.key" \
	-CAfile "$SC" >"$T/r8" 2>&1
check "TLS 1.3 accepted (the same client otherwise)" "grep -q 'New, TLSv1.3' '$T/r8'" "$T/r8"

# ---- a stalled connection is dropped; others are served meanwhile ----
"$PY" - "$DP" >"$T/stall" 2>&1 <<'PYEOF' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(15)
t = time.time()
try:
    d = s.recv(1)
    while d:
        d = s.recv(100)
    print("closed after %.1f" % (time.time() - t))
except socket.timeout:
    print("still open")
PYEOF
STALL=$!
sleep 0.5
echo_tls ECHOSCU "$T/peer1.key" "$T/peer1.crt" >"$T/e3" 2>&1
check "C-ECHO served while another connection stalls" "[ $? -eq 0 ]" "$T/e3"
wait "$STALL"
check "a connection that stalls before the TLS handshake is dropped (ARTIM)" "grep -q '^closed after' '$T/stall'" "$T/stall"

# ---- plain TCP, as configured: only for tls = no peers, from their host ----
echoscu -to 10 -ta 10 -td 10 -aet PLAINOLD -aec DICOMVAULT 127.0.0.1 "$PP" >"$T/p1" 2>&1
check "C-ECHO of a tls = no peer on the configured plain-TCP listener" "[ $? -eq 0 ]" "$T/p1"
echoscu -to 10 -ta 10 -td 10 -aet ECHOSCU -aec DICOMVAULT 127.0.0.1 "$PP" >"$T/p3" 2>&1
rc=$?
check "an AE title bound to a certificate, on the plain-TCP listener: A-ASSOCIATE-RJ" \
	"[ $rc -ne 0 ] && grep -qi 'reject' '$T/p3'" "$T/p3"
check "that refusal audited" "audit_has 'plain TCP refused: this AE title is bound to a certificate'"
findscu -to 10 -ta 10 -td 10 -S -aet ECHOSCU -aec DICOMVAULT -k QueryRetrieveLevel=STUDY -k PatientID \
	127.0.0.1 "$PP" >"$T/p4" 2>&1
rc=$?
check "nor does its C-FIND get anything there" "[ $rc -ne 0 ] && ! grep -q 'PatientID' '$T/p4'" "$T/p4"
echoscu -to 10 -ta 10 -td 10 -aet PLAINFAR -aec DICOMVAULT 127.0.0.1 "$PP" >"$T/p5" 2>&1
rc=$?
check "a tls = no peer from another address than its host: A-ASSOCIATE-RJ" \
	"[ $rc -ne 0 ] && grep -qi 'reject' '$T/p5'" "$T/p5"
check "that refusal audited" "audit_has 'plain TCP refused: not from the peer'"
echoscu -to 10 -ta 10 -td 10 -aet ECHOSCU -aec DICOMVAULT 127.0.0.1 "$DP" >"$T/p2" 2>&1
check "plain DICOM on the TLS port: refused" "[ $? -ne 0 ]" "$T/p2"

check "server still running" "kill -0 $SRV"
kill -TERM "$SRV"
for _ in $(seq 100); do kill -0 "$SRV" 2>/dev/null || break; sleep 0.1; done
wait "$SRV" 2>/dev/null
rc=$?
SRV=
check "server stops cleanly on SIGTERM" "[ $rc -eq 0 ]" "$T/err"
"$DV" audit verify --vault "$T/v" >"$T/av" 2>&1
check "audit trail intact" "[ $? -eq 0 ]" "$T/av"
