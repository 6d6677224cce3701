#!/bin/bash
# audit.sh: `dicomvault audit verify|export` against logs written two ways:
# by dicomvault itself (the vault-init record) and by an independent Python
# writer that follows docs/internals/audit.md; then tampering with sed and
# Python, usage errors and missing vaults. Prints ok/not ok lines.
# Env DV: the CLI under test.
set -u
DV=${DV:-build/check/dicomvault}
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
ok() { echo "ok - audit: $1"; }
no() { echo "not ok - audit: $1"; }
check() { if eval "$2"; then ok "$1"; else no "$1"; fi; }

# The documented format, from Python: verify a log, or append records.
cat >"$T/dvaudit.py" <<'EOF'
import hashlib, json, sys

def verify(path):
    """The verifier of docs/internals/audit.md: returns the record count."""
    prev, seq = "0" * 64, 0
    for no, raw in enumerate(open(path, "rb"), 1):
        if not raw.endswith(b"\n"):
            raise SystemExit("line %d: truncated" % no)
        line = raw[:-1]
        canon, tail = line[:-75], line[-75:]
        if not (tail.startswith(b',"hash":"') and tail.endswith(b'"}')):
            raise SystemExit("line %d: no hash suffix" % no)
        h = hashlib.sha256(canon).hexdigest()
        rec = json.loads(line)
        if tail[9:73].decode() != h or rec["hash"] != h:
            raise SystemExit("line %d: bad hash" % no)
        if rec["seq"] != seq + 1:
            raise SystemExit("line %d: seq %d, expected %d" % (no, rec["seq"], seq + 1))
        if rec["prev"] != prev:
            raise SystemExit("line %d: broken link" % no)
        prev, seq = h, rec["seq"]
    return seq

def last(path):
    prev, seq = "0" * 64, 0
    for raw in open(path, "rb"):
        rec = json.loads(raw)
        prev, seq = rec["hash"], rec["seq"]
    return prev, seq

def seal(canon):
    """canonical bytes -> the whole line"""
    return canon + b',"hash":"' + hashlib.sha256(canon).hexdigest().encode() + b'"}\n'

def event(seq, prev, action, actor, objects, time="2024-05-01T12:34:56.789Z"):
    c = '{"v":1,"seq":%d,"prev":"%s","time":"%s","type":"event","action":"%s","outcome":"success","actor":%s,"objects":%s' % (
        seq, prev, time, action, json.dumps(actor, separators=(",", ":"), ensure_ascii=False),
        json.dumps(objects, separators=(",", ":")))
    return seal(c.encode())

def append(path, n):
    prev, seq = last(path)
    with open(path, "ab") as f:
        for i in range(n):
            seq += 1
            actor = {"user": "bob%d" % seq, "role": "clinician", "addr": "192.0.2.7:4433",
                     "ua": 'curl/8 "quoted" \\ \u00e9\n'}
            objects = {"patient": hashlib.sha256(b"pat%d" % i).hexdigest(), "study": "1.2.3.%d" % i,
                       "counts": {"patients": 1, "studies": 1, "series": 1, "instances": i}}
            line = event(seq, prev, "retrieve", actor, objects)
            f.write(line)
            prev = hashlib.sha256(line[:-76]).hexdigest()

def init(path):
    """The record a vault's log begins with."""
    prev, seq = last(path)
    open(path, "ab").write(event(seq + 1, prev, "vault-init", {"user": "admin", "role": "admin", "addr": "local"}, {}))

def checkpoint(path, keyfile):
    """A checkpoint signed with a new Ed25519 key; its public key to keyfile."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives import serialization
    sk = Ed25519PrivateKey.generate()
    pk = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    open(keyfile, "w").write(pk + "\n")
    prev, seq = last(path)
    seq += 1
    t = "2024-05-01T12:35:00.000Z"
    sig = sk.sign(("dicomvault-audit-checkpoint:1:%d:%s:%s" % (seq, prev, t)).encode()).hex()
    c = '{"v":1,"seq":%d,"prev":"%s","time":"%s","type":"checkpoint","key":"%s","sig":"%s"' % (seq, prev, t, pk, sig)
    open(path, "ab").write(seal(c.encode()))

def forge_append(path):
    """A well-formed record whose prev is not the last hash."""
    _, seq = last(path)
    open(path, "ab").write(event(seq + 1, "f" * 64, "login", {"user": "mallory"}, {}))

def rechain(path):
    """What a forger without the signing key can do: drop every checkpoint
    and number and link the rest again."""
    import re
    prev, seq, out = "0" * 64, 0, []
    for raw in open(path, "rb"):
        rec = json.loads(raw)
        if rec["type"] == "checkpoint":
            continue
        seq += 1
        canon = raw[:-76]
        canon = re.sub(rb'^\{"v":1,"seq":\d+,"prev":"[0-9a-f]{64}"',
                       b'{"v":1,"seq":%d,"prev":"%s"' % (seq, prev.encode()), canon)
        line = seal(canon)
        out.append(line)
        prev = hashlib.sha256(canon).hexdigest()
    open(path, "wb").writelines(out)

def swap(path, a, b):
    lines = open(path, "rb").readlines()
    lines[a - 1], lines[b - 1] = lines[b - 1], lines[a - 1]
    open(path, "wb").writelines(lines)

cmd = sys.argv[1]
if cmd == "verify":
    print(verify(sys.argv[2]))
elif cmd == "append":
    append(sys.argv[2], int(sys.argv[3]))
elif cmd == "init":
    init(sys.argv[2])
elif cmd == "checkpoint":
    checkpoint(sys.argv[2], sys.argv[3])
elif cmd == "forge":
    forge_append(sys.argv[2])
elif cmd == "rechain":
    rechain(sys.argv[2])
elif cmd == "swap":
    swap(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
elif cmd == "json":  # json FILE KEY -> value
    print(json.load(open(sys.argv[2]))[sys.argv[3]])
EOF
A="$PY $T/dvaudit.py"

# 1. a new vault has an intact log with the vault-init record, signed at
# once (a checkpoint: a log is never without one)
$DV init --vault "$T/v" --json >/dev/null 2>"$T/err"
check "init exit 0" "[ $? -eq 0 ]"
LOG="$T/v/audit/audit.log"
check "audit dir 0700, log 0600" "[ \$(stat -c %a $T/v/audit) = 700 ] && [ \$(stat -c %a $LOG) = 600 ]"
check "vault-init is audited" "grep -q '\"action\":\"vault-init\",\"outcome\":\"success\"' $LOG"
check "the Python verifier accepts dicomvault's log" "[ \"\$($A verify $LOG)\" = 2 ]"
check "init signs its record: a checkpoint follows it" "tail -1 $LOG | grep -q '\"seq\":2,.*\"type\":\"checkpoint\"'"
$DV audit verify --vault "$T/v" >"$T/out" 2>"$T/err"
check "verify a new vault: exit 0" "[ $? -eq 0 ] && grep -q 'intact, 2 records' $T/out"

# 2. records written by Python following the documentation
$A append "$LOG" 10
check "the Python writer's records verify in Python" "[ \"\$($A verify $LOG)\" = 12 ]"
$DV audit verify --vault "$T/v" >"$T/out" 2>"$T/err"
check "dicomvault verifies the Python-written log" "[ $? -eq 0 ] && grep -q 'intact, 12 records (seq 1-12)' $T/out"
$DV audit verify --vault "$T/v" --json >"$T/out.json" 2>"$T/err"
check "--json: intact, 12 records" "[ $? -eq 0 ] && [ \"\$($A json $T/out.json intact)\" = True ] && [ \"\$($A json $T/out.json records)\" = 12 ]"
DICOMVAULT_HOME="$T/v" $DV audit verify >/dev/null 2>&1
check "DICOMVAULT_HOME is used" "[ $? -eq 0 ]"
GOOD="$T/good.log"
cp "$LOG" "$GOOD"
$DV audit export --vault "$T/v" --format json >"$T/export" 2>"$T/err"
check "export: exit 0, the records as JSON lines" "[ $? -eq 0 ] && cmp -s $T/export $LOG"
$DV audit export --vault "$T/v" --json >"$T/export2" 2>"$T/err"
check "export --json (every subcommand takes it): the same JSON lines" "[ $? -eq 0 ] && cmp -s $T/export2 $LOG"
check "export: every line is JSON" "$PY -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' $T/export"
# reading the trail is recorded (ATNA's Audit Log Used) before its first
# line goes out, by the operator; unsigned (no master key here), which
# verify does not count against the unsigned tail
check "export is recorded before it writes: its own audit-read record is the last line it wrote" \
	"tail -1 $T/export | grep -q '\"action\":\"audit-read\",\"outcome\":\"success\",\"reason\":\"audit trail: export\",\"actor\":{\"user\":\"$(id -un)\",\"role\":\"operator\",\"addr\":\"local\"}'"
n=$(wc -l <"$LOG")
$DV audit report --vault "$T/v" --user bob3 --action retrieve >"$T/out" 2>"$T/err"
check "report is recorded, with its filters" \
	"[ $? -eq 0 ] && [ \$(wc -l <$LOG) = $((n + 1)) ] && tail -1 $LOG | grep -q '\"action\":\"audit-read\",\"outcome\":\"success\",\"reason\":\"audit trail: report (user=bob3, action=retrieve)\"'"
$DV audit verify --vault "$T/v" >"$T/out" 2>&1
check "verify is not (an integrity check: nothing of the trail is shown), and the log verifies" \
	"[ $? -eq 0 ] && [ \$(wc -l <$LOG) = $((n + 1)) ]"

# A scratch vault holding a copy of the good log (taken before the
# readings below add theirs), for tampering.
W="$T/w"
mkdir -p "$W/audit" "$W/keys"
cp "$T/v/keys/audit.pub" "$W/keys/"
cp "$T/v/audit/audit.log.anchor" "$W/audit/"   # the signed anchor beside the log (at init's checkpoint)
fresh() { cp "$GOOD" "$W/audit/audit.log"; }
verify_json() { $DV audit verify --vault "$W" --json >"$T/out.json" 2>"$T/err"; echo $?; }
verify_json_key() { $DV audit verify --vault "$W" --key "$T/py.pub" --json >"$T/out.json" 2>"$T/err"; echo $?; }
names() {  # fault line seq
	[ "$($A json "$T/out.json" fault)" = "$1" ] && [ "$($A json "$T/out.json" line)" = "$2" ] &&
		[ "$($A json "$T/out.json" seq)" = "$3" ]
}

# 3. tampering
fresh
sed -i '7s/bob7/eve7/' "$W/audit/audit.log"
check "one byte changed in record 7: exit 1, names seq 7" "[ \$(verify_json) = 1 ] && names bad-hash 7 7"
$DV audit verify --vault "$W" >"$T/out" 2>&1
check "text output names the record" "grep -q 'BROKEN at line 7 (seq 7): bad-hash' $T/out && grep -q 'the 6 records before it (seq 1-6) are intact' $T/out"
check "the Python verifier agrees" "! $A verify $W/audit/audit.log 2>/dev/null"

fresh
sed -i '5d' "$W/audit/audit.log"
check "a deleted record: names the next one (seq 6 at line 5)" "[ \$(verify_json) = 1 ] && names sequence-gap 5 6"

fresh
$A swap "$W/audit/audit.log" 3 4
check "two records swapped: names line 3 (seq 4)" "[ \$(verify_json) = 1 ] && names sequence-gap 3 4"

fresh
truncate -s -20 "$W/audit/audit.log"
check "last line truncated: names seq 12" "[ \$(verify_json) = 1 ] && names truncated 12 12"

fresh
$A forge "$W/audit/audit.log"
check "a forged record with the wrong prev: broken-link named from seq 12 (12 rehashed or 13 forged: the first that may be bad)" "[ \$(verify_json) = 1 ] && names broken-link 12 12"

fresh
sed -i '4i this is not an audit record' "$W/audit/audit.log"
check "a garbage line: unparsable at line 4" "[ \$(verify_json) = 1 ] && names unparsable 4 0"

fresh
sed -i '2s/$/\r/' "$W/audit/audit.log"
check "a CRLF line: unparsable at line 2" "[ \$(verify_json) = 1 ] && names unparsable 2 2"

fresh
head -c 100000 /dev/zero | tr '\0' x >>"$W/audit/audit.log"
echo >>"$W/audit/audit.log"
check "a 100 KB line: line-too-long at line 13" "[ \$(verify_json) = 1 ] && names line-too-long 13 0"

fresh
sed -i '1d' "$W/audit/audit.log"
check "the first record deleted: seq 2 at line 1" "[ \$(verify_json) = 1 ] && names sequence-gap 1 2"

fresh
sed -i '6s/bob6/eve6/' "$W/audit/audit.log"
$DV audit export --vault "$W" >"$T/export" 2>"$T/err"
check "export stops at a bad record: exit 1, the 5 good ones out" "[ $? -eq 1 ] && [ \$(wc -l <$T/export) = 5 ] && grep -q 'line 6 (seq 6)' $T/err"

: >"$W/audit/audit.log"
$DV audit verify --vault "$W" >"$T/out" 2>&1
check "an emptied log, with the vault's key: unsigned (a vault's log begins with init's signed record)" \
	"[ $? -eq 1 ] && grep -q 'the log is empty, but a vault' $T/out"
: >"$T/empty.log"
check "an empty log is a valid chain (0 records) for the Python verifier" "[ \"\$($A verify $T/empty.log)\" = 0 ]"

# a forger without the key: checkpoints dropped, the chain rebuilt
fresh
sed -i '7d' "$W/audit/audit.log"
$A rechain "$W/audit/audit.log"
check "a record deleted, the checkpoint dropped and the chain rebuilt: the Python verifier is fooled" \
	"[ \"\$($A verify $W/audit/audit.log)\" = 10 ]"
check "dicomvault is not: unsigned, named from seq 1" "[ \$(verify_json) = 1 ] && names unsigned 1 1"
$DV audit verify --vault "$W" >"$T/out" 2>&1
check "the text says no checkpoint covers the records" "grep -q 'no signed checkpoint covers any of the 10 records' $T/out"
# more records after the last checkpoint than any writer leaves
fresh
$A append "$W/audit/audit.log" 1995
check "2005 records after the last checkpoint (over 2000): unsigned from seq 3" \
	"[ \$(verify_json) = 1 ] && names unsigned 3 3"
fresh
$A append "$W/audit/audit.log" 1990
check "2000 after it: intact" "[ \$(verify_json) = 0 ]"

# 4. signed checkpoints (a Python key: --key names it)
if $PY -c 'import cryptography.hazmat.primitives.asymmetric.ed25519' 2>/dev/null; then
	rm -f "$W/audit/audit.log.anchor"   # logs of the Python writer, whose checkpoints keep none
	: >"$W/audit/audit.log"
	$A append "$W/audit/audit.log" 11
	$A checkpoint "$W/audit/audit.log" "$T/py.pub"
	[ "$(verify_json_key)" = 1 ] && names no-init 1 1
	check "a signed log that does not begin with vault-init (a replaced log): no-init at seq 1" "[ $? -eq 0 ]"
	grep -q "does not begin with the record of the vault's init" "$T/out.json"
	check "no-init: the detail says so" "[ $? -eq 0 ]"
	: >"$W/audit/audit.log"
	$A init "$W/audit/audit.log"
	$A append "$W/audit/audit.log" 10
	$A checkpoint "$W/audit/audit.log" "$T/py.pub"
	$A append "$W/audit/audit.log" 2
	$DV audit verify --vault "$W" --key "$T/py.pub" --json >"$T/out.json" 2>"$T/err"
	check "a checkpoint signed as documented verifies" "[ $? -eq 0 ] && [ \"\$($A json $T/out.json checkpoints)\" = 1 ] && [ \"\$($A json $T/out.json last_checkpoint_seq)\" = 12 ]"
	[ "$(verify_json)" = 1 ] && names bad-signature 12 12
	check "the same checkpoint against the vault's key: bad-signature at seq 12" "[ $? -eq 0 ]"
	sed -i '12s/"time":"2024-05-01T12:35:00.000Z"/"time":"2024-05-01T12:35:00.001Z"/' "$W/audit/audit.log"
	$DV audit verify --vault "$W" --key "$T/py.pub" >/dev/null 2>&1
	check "an edited checkpoint fails" "[ $? -eq 1 ]"
else
	ok "checkpoints skipped (no python3-cryptography) # SKIP"
fi

# 5. usage errors (exit 2), missing things (exit 1)
$DV audit >/dev/null 2>&1
check "no subcommand: exit 2" "[ $? -eq 2 ]"
$DV audit bogus >/dev/null 2>&1
check "unknown subcommand: exit 2" "[ $? -eq 2 ]"
$DV audit verify --bogus >/dev/null 2>&1
check "unknown option: exit 2" "[ $? -eq 2 ]"
$DV audit verify --vault >/dev/null 2>&1
check "missing value: exit 2" "[ $? -eq 2 ]"
$DV audit export --vault "$T/v" --format atna >/dev/null 2>&1
check "unsupported export format: exit 2" "[ $? -eq 2 ]"
$DV audit verify --help >"$T/out" 2>&1
check "--help: exit 0, usage" "[ $? -eq 0 ] && grep -q 'usage: dicomvault audit verify' $T/out"
$DV --help | grep -q 'audit verify'
check "listed in dicomvault --help" "[ $? -eq 0 ]"
$DV audit verify --vault "$T/nope" >"$T/out" 2>&1
check "missing vault: exit 1, says so" "[ $? -eq 1 ] && grep -q 'no vault at $T/nope: give --vault DIR' $T/out"
rm -f "$W/audit/audit.log"
$DV audit verify --vault "$W" >"$T/out" 2>&1
check "missing log: exit 1, says so" "[ $? -eq 1 ] && grep -q 'no audit log' $T/out"
# 6. a deleted or emptied log is never replaced by a new chain: a writer
# that started one would make the loss verify as an intact log
LOG="$T/v/audit/audit.log"
cp "$LOG" "$T/kept.log"
printf 'a-password-for-carol-1\n' >"$T/pw"
chmod 600 "$T/pw"
for how in deleted emptied; do
	if [ $how = deleted ]; then rm -f "$LOG"; else : >"$LOG"; fi
	$DV user add carol --role physician --password-file "$T/pw" --vault "$T/v" >"$T/out" 2>&1
	rc=$?
	check "$how log: user add refused (exit 1), no user made" \
		"[ $rc = 1 ] && grep -q 'nothing was changed' $T/out && ! $DV user list --vault $T/v 2>/dev/null | grep -q carol"
	$DV token create --user admin --vault "$T/v" >"$T/out" 2>&1
	check "$how log: token create refused" "[ $? = 1 ]"
	timeout 20 $DV serve --vault "$T/v" --http 127.0.0.1:0 >"$T/out" 2>&1
	check "$how log: serve refuses to start" "[ $? = 1 ] && grep -q 'cannot open the audit trail' $T/out"
	$DV init --vault "$T/v" >"$T/out" 2>&1
	check "$how log: init refuses the folder, saying its log has no record" \
		"[ \$? = 1 ] && grep -q 'its audit log has no record: an init that did not finish' $T/out"
	if [ $how = deleted ]; then
		check "deleted log: none of them created a new one" "[ ! -e $LOG ]"
	else
		check "emptied log: none of them wrote in it" "[ ! -s $LOG ]"
	fi
done
cp "$T/kept.log" "$LOG"
chmod 600 "$LOG"
$DV user add carol --role physician --password-file "$T/pw" --vault "$T/v" >"$T/out" 2>&1
check "the log restored: user add works again" "[ $? = 0 ] && $DV audit verify --vault $T/v >/dev/null 2>&1"

# the end of the log cut off back to a checkpoint: a chain that verifies
# alone; the signed anchor beside it (written with every checkpoint) shows it
n=$(wc -l <"$LOG")
$DV token create --user admin --vault "$T/v" --json >/dev/null 2>&1   # records and a closing checkpoint
check "the anchor names the closing checkpoint" \
	"grep -q \"\\\"seq\\\":\$(wc -l <$LOG),\" $T/v/audit/audit.log.anchor && tail -1 $LOG | grep -q '\"anchored\":true'"
cp "$LOG" "$T/whole.log"
head -n "$n" "$T/whole.log" >"$LOG"
check "cut back to a checkpoint: the chain alone is fooled" "[ \"\$($A verify $LOG)\" -ge 2 ]"
$DV audit verify --vault "$T/v" --json >"$T/out.json" 2>"$T/err"
check "dicomvault is not: exit 1, the anchor fault named from the first missing line" \
	"[ $? -eq 1 ] && [ \"\$($A json $T/out.json fault)\" = anchor ] && [ \"\$($A json $T/out.json line)\" = $((n + 1)) ]"
$DV audit verify --vault "$T/v" >"$T/out" 2>&1
check "the text says records were cut from its end" "grep -q 'records were cut from its end' $T/out"
$DV user add dave --role physician --password-file "$T/pw" --vault "$T/v" >"$T/out" 2>&1
check "no command appends to the cut log (exit 1, nothing changed)" \
	"[ $? = 1 ] && ! $DV user list --vault $T/v 2>/dev/null | grep -q dave"
$DV audit export --vault "$T/v" >"$T/export" 2>"$T/err"
check "nor does audit export, which then exports nothing (its reading could not be recorded)" \
	"[ $? = 1 ] && [ ! -s $T/export ] && grep -q 'nothing exported' $T/err && [ \$(wc -l <$LOG) = $n ]"
mv "$T/v/audit/audit.log.anchor" "$T/anchor.saved"
$DV audit verify --vault "$T/v" --json >"$T/out.json" 2>"$T/err"
check "the anchor removed as well: still the anchor fault (the checkpoints say one was kept)" \
	"[ $? -eq 1 ] && [ \"\$($A json $T/out.json fault)\" = anchor ]"
cp "$T/whole.log" "$LOG"
mv "$T/anchor.saved" "$T/v/audit/audit.log.anchor"
$DV audit verify --vault "$T/v" >/dev/null 2>&1
check "the whole log back: intact" "[ $? -eq 0 ]"
# a copy of the vault taken while it ran: the log copied, a checkpoint
# written, then the anchor copied (cp -r, tar and rsync copy in that order)
cp "$LOG" "$T/copied.log"
m=$(wc -l <"$T/copied.log")   # its last record: a checkpoint
$DV token create --user admin --vault "$T/v" --json >/dev/null 2>&1
cp "$T/copied.log" "$LOG"
$DV audit verify --vault "$T/v" >"$T/out" 2>&1
check "a copy taken while it ran: verify says records were cut, and names audit reanchor" \
	"[ $? -eq 1 ] && grep -q 'records were cut' $T/out && grep -q 'audit reanchor' $T/out"
$DV audit reanchor --vault "$T/v" >"$T/out" 2>&1
check "audit reanchor: exit 0, says where it anchored" "[ $? -eq 0 ] && grep -q \"anchored at seq $m \" $T/out"
$DV audit verify --vault "$T/v" >/dev/null 2>&1
check "then intact" "[ $? -eq 0 ]"
check "the move is on the record (audit-reanchor, naming both seqs)" \
	"grep -q '\"action\":\"audit-reanchor\".*moved from seq [0-9]* to seq $m,' $LOG"
check "the audit-reanchor record names who moved it (the operator, as every command's record)" \
	"grep '\"action\":\"audit-reanchor\"' $LOG | grep -q '\"actor\":{\"user\":\"$(id -un)\",\"role\":\"operator\",\"addr\":\"local\"}'"
$DV user add erin --role physician --password-file "$T/pw" --vault "$T/v" >/dev/null 2>&1
check "and commands write again" "[ $? -eq 0 ]"
cp "$T/v/audit/audit.log.anchor" "$T/anchor.before"
sed -i '3s/"seq":3,/"seq":9,/' "$LOG"
$DV audit reanchor --vault "$T/v" >"$T/out" 2>&1
check "audit reanchor of a log not intact: exit 1, nothing anchored" \
	"[ $? -eq 1 ] && grep -q 'not intact' $T/out && cmp -s $T/anchor.before $T/v/audit/audit.log.anchor"

fresh
echo nothex >"$T/bad.pub"
$DV audit verify --vault "$W" --key "$T/bad.pub" >"$T/out" 2>&1
check "bad key file: exit 1" "[ $? -eq 1 ] && grep -q 'cannot read the audit public key' $T/out"
exit 0
