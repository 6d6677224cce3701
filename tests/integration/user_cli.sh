#!/bin/bash
# user_cli.sh: `dicomvault user` from the command line: each subcommand
# works and is audited, and bad input (unknown subcommand or option, a
# secret on argv, bad names, roles, times, scopes, ids, unknown users and
# collections) gets exit 2 (usage) or 1 (refused) with a message, and
# changes nothing. Prints ok/not ok lines. Env DV: the CLI under test.
set -u
DV=${DV:-build/check/dicomvault}
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
ok() { echo "ok - user_cli: $1"; }
no() { echo "not ok - user_cli: $1"; }
check() { if eval "$2"; then ok "$1"; else no "$1"; fi; }
# run NAME ARGS...: exit code in $T/NAME.rc, stdout/stderr in $T/NAME.out/.err
run() {
	local n=$1
	shift
	"$DV" user "$@" --vault "$T/v" >"$T/$n.out" 2>"$T/$n.err"
	echo $? >"$T/$n.rc"
}
rc() { cat "$T/$1.rc"; }

printf 'correct horse battery staple\n' >"$T/pw"
chmod 600 "$T/pw"
"$DV" init --vault "$T/v" --password-file "$T/pw" >/dev/null 2>&1 || { no "init"; exit 0; }
printf '\n[collection "onco"]\nmatch = InstitutionalDepartmentName=Onco*\n' >>"$T/v/dicomvault.conf"

run add1 add alice --role physician --collection onco --password-file "$T/pw" --json
check "add: exit 0 with a TOTP secret in JSON" "[ \$(rc add1) = 0 ] && grep -q totp_secret $T/add1.out"
check "add: no password shown when one was given" "! grep -q '\"password\"' $T/add1.out"
run add2 add bob --role researcher
check "add without a password file: one is generated and shown once" "[ \$(rc add2) = 0 ] && grep -q 'Password:' $T/add2.out"
run list list --json
check "list: both users and the admin" "[ \$(rc list) = 0 ] && grep -q alice $T/list.out && grep -q bob $T/list.out && grep -q admin $T/list.out"
run grants grants alice --json
check "alice's initial grant is on collection onco" "grep -q 'collection:onco' $T/grants.out"
# read-audit and manage-users need a grant of scope * (docs/ACCESS.md): a
# new auditor, whose role does nothing else, gets *; a new admin keeps
# collection:default (* would open every patient's studies to it) and is
# told how to give it the rest (an auditor on collection:default could read
# nothing, an admin could not manage users, and nothing was said)
run aud add aud --role auditor --json
"$DV" user grants aud --json --vault "$T/v" >"$T/audg.out" 2>&1
check "add --role auditor: its grant is of scope *, no warning" \
	"[ \$(rc aud) = 0 ] && grep -q '\"scope\":\"\\*\"' $T/audg.out && ! grep -q . $T/aud.err"
run adm add adm2 --role admin --json
"$DV" user grants adm2 --json --vault "$T/v" >"$T/admg.out" 2>&1
check "add --role admin: collection:default, and a warning naming manage-users, scope * and the command" \
	"[ \$(rc adm) = 0 ] && grep -q 'collection:default' $T/admg.out && grep -q 'manage-users' $T/adm.err && \
	 grep -q 'scope \\*' $T/adm.err && grep -q 'user grant adm2 --role admin --all' $T/adm.err"
run aud2 add aud2 --role auditor --collection onco
check "add --role auditor --collection onco: done as asked, with the warning" \
	"[ \$(rc aud2) = 0 ] && grep -q 'read-audit' $T/aud2.err && grep -q 'user grant aud2 --role auditor --all' $T/aud2.err"
run phy add phy --role physician --json
check "add --role physician: no warning" "[ \$(rc phy) = 0 ] && ! grep -q . $T/phy.err"
run g1 grant alice --role radiologist --study 1.2.3.4 --from +1h --expires +2d --purpose 'second read'
check "grant on a study with a window" "[ \$(rc g1) = 0 ] && grep -q 'study:1.2.3.4' $T/g1.out"
run g2 grant alice --role physician --patient PID-9 --issuer HOSP
check "grant on a patient names no patient in its output" "[ \$(rc g2) = 0 ] && ! grep -q PID-9 $T/g2.out"
run dis disable alice
run en enable alice
run un unlock alice
check "disable, enable, unlock" "[ \$(rc dis) = 0 ] && [ \$(rc en) = 0 ] && [ \$(rc un) = 0 ]"
GID=$("$PY" -c 'import json,sys; print([g["id"] for g in json.load(open(sys.argv[1])) if g["scope"] == "study:1.2.3.4"][0])' \
	<("$DV" user grants alice --json --vault "$T/v") 2>/dev/null)
run rv revoke "$GID" --json
run rv2 revoke "$GID"
check "revoke, then again: refused" "[ \$(rc rv) = 0 ] && [ \$(rc rv2) = 1 ] && grep -q 'already revoked' $T/rv2.err"
# a revocation's record names what the grant's named: the study of a study
# scope (not stored here: no patient), the patient (its keyed hash) of a
# patient scope; so the accounting by patient shows access taken away too
GID2=$("$PY" -c 'import json,sys; print([g["id"] for g in json.load(open(sys.argv[1])) if g["scope"].startswith("patient:")][0])' \
	<("$DV" user grants alice --json --vault "$T/v") 2>/dev/null)
run rvp revoke "$GID2"
# revoked_as_granted ID: the revocation's objects are the grant's, and not {}
revoked_as_granted() {
	"$PY" - "$T/v/audit/audit.log" "$1" <<'EOF'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
g = [x["objects"] for x in r if x.get("action") == "grant" and x.get("reason", "").startswith("grant %s:" % sys.argv[2])]
rv = [x["objects"] for x in r if x.get("action") == "grant" and x.get("reason") == "revoke grant " + sys.argv[2]]
sys.exit(0 if len(g) == 1 and len(rv) == 1 and g[0] and rv[0] == g[0] else 1)
EOF
}
check "revoke of a study grant: its record names the study" \
	"revoked_as_granted $GID && grep '\"reason\":\"revoke grant $GID\"' $T/v/audit/audit.log | grep -q '\"objects\":{\"study\":\"1.2.3.4\"}'"
check "revoke of a patient grant: its record names the patient (its key hash), never the ID" \
	"[ \$(rc rvp) = 0 ] && revoked_as_granted $GID2 && grep '\"reason\":\"revoke grant $GID2\"' $T/v/audit/audit.log | grep -q '\"patient\":\"[0-9a-f]\{64\}\"' && ! grep -q PID-9 $T/v/audit/audit.log"
# a [collection] section with a mistake: the mistake and its line are
# said, not "no collection" (the section is there)
cp "$T/v/dicomvault.conf" "$T/conf.good"
printf '\n[collection "cardio"]\nmach = Modality=CT\n' >>"$T/v/dicomvault.conf"
run badcoll grant alice --role physician --collection cardio
check "grant on a collection whose section has a mistake: exit 1 naming the file, the line and the key" \
	"[ \$(rc badcoll) = 1 ] && grep -q \"dicomvault.conf line [0-9]*: unknown key 'mach'\" $T/badcoll.err"
cp "$T/conf.good" "$T/v/dicomvault.conf"
# --json (SPEC 2: machine-readable): one JSON object, the state as 'user
# list --json' and 'user grants --json' show it
jis() { "$PY" -c 'import json,sys; sys.exit(json.load(open(sys.argv[1])) != json.loads(sys.argv[2]))' "$T/$1.out" "$2" 2>/dev/null; }
check "revoke --json: {\"id\":N,\"state\":\"revoked\"}" "jis rv '{\"id\":$GID,\"state\":\"revoked\"}'"
run disj disable bob --json
check "disable --json: {\"user\":\"bob\",\"state\":\"disabled\"}" "[ \$(rc disj) = 0 ] && jis disj '{\"user\":\"bob\",\"state\":\"disabled\"}'"
run unj unlock bob --json
check "unlock --json of a disabled account: still disabled" "[ \$(rc unj) = 0 ] && jis unj '{\"user\":\"bob\",\"state\":\"disabled\"}'"
run enj enable bob --json
check "enable --json: active" "[ \$(rc enj) = 0 ] && jis enj '{\"user\":\"bob\",\"state\":\"active\"}'"

# usage errors: exit 2
n=0
while IFS='|' read -r what args; do
	n=$((n + 1))
	eval "run u$n $args"
	check "usage error: $what (exit 2, a message)" "[ \$(rc u$n) = 2 ] && [ -s $T/u$n.err ]"
done <<'EOF'
no subcommand|
unknown subcommand|frobnicate alice
unknown option|list --bogus
missing value|add carol --role
a password on argv|add carol --role physician --password hunter2
add without a role|add carol
add with an unknown role|add carol --role king
add with both collection and scope|add carol --role physician --collection onco --scope *
a bad expiry|add carol --role physician --expires tomorrow
grant without a scope|grant alice --role physician
grant with two scopes|grant alice --role physician --all --collection onco
priors without a study|grant alice --role physician --collection onco --priors
issuer without a patient|grant alice --role physician --all --issuer X
a bad --from|grant alice --role physician --all --from 2026-13-01
revoke without an id|revoke
revoke a non-number|revoke 12x
revoke zero|revoke 0
revoke with a sign|revoke +1
revoke with a leading space|revoke ' 1'
revoke a huge number|revoke 99999999999999999999
too many arguments|disable alice bob
an expiry at 0 (read as never)|add carol --role physician --expires @0
a start at 1970-01-01T00:00Z (0: none)|grant alice --role physician --all --from 1970-01-01
a flag with a value|list --json=yes
the same option twice|list --role a --role=b
an empty value|add carol --role=
list with an argument|list extra-arg
grant on a study that is not a UID|grant alice --role physician --study notauid
a study scope that is not a UID|grant alice --role physician --study 1.2.x
a collection name no collection can have|add carol --role physician --collection 'a b'
grant with a misspelt role|grant alice --role physiciam --all
EOF
# a usage error names the option and the value it could not use
run role add carol --role radiologst
check "add with a misspelt role: exit 2 naming --role and the value" \
	"[ \$(rc role) = 2 ] && grep -q \"unknown --role 'radiologst'\" $T/role.err"
run stu grant alice --role physician --study notauid
check "grant --study notauid: exit 2 naming --study" "[ \$(rc stu) = 2 ] && grep -q -- '--study: ' $T/stu.err"

# the option rules every subcommand shares (docs/internals/cli.md)
CT=/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm
"$DV" user list --vault="$T/v" >"$T/eq.out" 2>&1
check "--name=VALUE is read like --name VALUE" "[ \$? = 0 ] && grep -q alice $T/eq.out"
"$DV" user add carol --role physician --password=hunter2-secret --vault "$T/v" >"$T/pweq.out" 2>&1
check "--password=... refused (exit 2) without repeating it" \
	"[ \$? = 2 ] && grep -q 'use --password-file' $T/pweq.out && ! grep -q hunter2-secret $T/pweq.out"
"$DV" user list --tocken=s3cr3t-value --vault "$T/v" >"$T/unk.out" 2>&1
check "an unknown --name=VALUE is named without its value" \
	"[ \$? = 2 ] && grep -q \"unknown option '--tocken'\" $T/unk.out && ! grep -q s3cr3t-value $T/unk.out"
# serve --json: where it listens, as one JSON line (ports chosen by the system)
"$DV" serve --vault "$T/v" --http 127.0.0.1:0 --dicom 127.0.0.1:0 --json >"$T/sj.out" 2>"$T/sj.err" &
SP=$!
for _ in $(seq 100); do [ -s "$T/sj.out" ] && break; sleep 0.1; done
URL=$(/usr/bin/python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).readline()); assert d["dicom_port"] > 0 and d["vault"]; print(d["https"])' "$T/sj.out" 2>/dev/null)
check "serve --json: one JSON line with the HTTPS URL, the DICOM port and the vault" \
	"[ -n '$URL' ] && [ \$(wc -l <$T/sj.out) = 1 ] && [ \"\$(curl -sk -o /dev/null -w '%{http_code}' '${URL}healthz')\" = 200 ]"
kill $SP 2>/dev/null
wait $SP 2>/dev/null
# a listen address that is not one is a usage error (SPEC 2), named by its option
# (the other listener's port 0: had the address been taken, nothing is in use)
while read -r opt addr other; do
	"$DV" serve --vault "$T/v" "$other" 127.0.0.1:0 "$opt" "$addr" >"$T/sb.out" 2>"$T/sb.err" </dev/null
	check "serve $opt $addr: usage error (exit 2) naming $opt" "[ \$? = 2 ] && grep -q -- '$opt: ' $T/sb.err"
done <<'EOF'
--http garbage --dicom
--http 127.0.0.1:65536 --dicom
--dicom 127.0.0.1:70000 --http
--dicom ::1:104 --http
EOF
"$DV" json --json "$CT" >"$T/jj.out" 2>&1
check "json takes --json too (its output is JSON)" "[ \$? = 0 ] && /usr/bin/python3 -c 'import json,sys; json.load(open(sys.argv[1]))' $T/jj.out"
for c in init serve dump json deid import export reidentify user token audit; do
	"$DV" $c -h >"$T/h.out" 2>"$T/h.err"
	check "$c -h: exit 0 with the usage on stdout" "[ \$? = 0 ] && grep -qi usage $T/h.out && [ ! -s $T/h.err ]"
done
# no vault where the commands look (./vault when neither --vault nor
# DICOMVAULT_HOME is given, as README's lines typed from a checkout): each
# says so and how to name one, exit 1 (it said "./vault/. is missing")
mkdir -m 700 "$T/empty"
DVA=$(cd "$(dirname "$DV")" && pwd)/$(basename "$DV")   # DV may be relative to here
while IFS='|' read -r what args; do
	(cd "$T/empty" && unset DICOMVAULT_HOME && eval "\"\$DVA\" $args" </dev/null >"$T/nov.out" 2>"$T/nov.err")
	check "no ./vault: $what: exit 1, no vault at ./vault, give --vault DIR or set DICOMVAULT_HOME" \
		"[ \$? = 1 ] && [ \$(wc -l <$T/nov.err) = 1 ] && grep -qx 'dicomvault [a-z ]*: no vault at ./vault: give --vault DIR or set DICOMVAULT_HOME' $T/nov.err"
done <<'EOF'
user add|user add bob --role physician
user grant|user grant bob --role physician --all
user list|user list
token list|token list
import|import /etc/hostname
export|export --study 1.2.3 --out out
serve|serve --http 127.0.0.1:0 --dicom 127.0.0.1:0
audit report|audit report --break-glass
audit verify|audit verify
audit reanchor|audit reanchor
EOF
(cd "$T/empty" && DICOMVAULT_HOME="$T/none" "$DVA" user list >"$T/nov.out" 2>"$T/nov.err")
check "DICOMVAULT_HOME naming no vault: exit 1, named" \
	"[ \$? = 1 ] && grep -qx 'dicomvault user: no vault at $T/none: give --vault DIR or set DICOMVAULT_HOME' $T/nov.err"
for c in dump json; do
	"$DV" $c --vault "$T/nowhere" "$CT" >"$T/nv.out" 2>&1
	check "$c takes --vault like every subcommand (SPEC 2) and needs none" "[ \$? = 0 ] && [ -s $T/nv.out ]"
done
for c in "audit bogus -h" "token --vault x --help" "audit"; do
	"$DV" $c >"$T/h.out" 2>"$T/h.err"
	r=$?
	if [ "$c" = audit ]; then
		check "audit without a subcommand: usage error" "[ $r = 2 ] && grep -q 'missing subcommand' $T/h.err"
	else
		check "$c: the usage (exit 0), whatever comes before" "[ $r = 0 ] && grep -qi usage $T/h.out"
	fi
done
MR=/usr/lib/python3/dist-packages/pydicom/data/test_files/MR_small.dcm
"$DV" dump --json "$CT" "$MR" >"$T/dj.out" 2>&1
check "dump --json: one DICOM JSON object a line, the first the same as 'json'" \
	"[ \$? = 0 ] && [ \$(wc -l <$T/dj.out) = 2 ] && /usr/bin/python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' $T/dj.out && \"$DV\" json \"$CT\" | cmp -s - <(head -1 $T/dj.out)"
"$DV" dump --strict=yes x.dcm >/dev/null 2>"$T/d.err"
check "dump: a flag with a value is a usage error" "[ \$? = 2 ] && grep -q \"'--strict' takes no value\" $T/d.err"
# refusals: exit 1
while IFS='|' read -r what args; do
	n=$((n + 1))
	eval "run r$n $args"
	check "refused: $what (exit 1, a message)" "[ \$(rc r$n) = 1 ] && [ -s $T/r$n.err ]"
done <<'EOF'
a name taken|add alice --role physician
a bad name|add 'a b' --role physician
an SQL-looking name|add "x';DROP TABLE users;--" --role physician
an unknown collection|add carol --role physician --collection nope
an unknown collection as a scope|add carol --role physician --scope collection:nope
grant to nobody|grant nobody --role physician --all
grant on an unknown collection|grant alice --role physician --collection nope
priors of a study not stored|grant alice --role physician --study 1.2.3 --priors
an expiry before the start|grant alice --role physician --all --from +2d --expires +1d
disable nobody|disable nobody
revoke a grant that does not exist|revoke 99999
a password file that does not exist|add dave --role physician --password-file /nonexistent/pw
EOF
printf 'another long password\n' >"$T/loose"
chmod 644 "$T/loose"
run loose add dave --role physician --password-file "$T/loose"
check "refused: a password file readable by others (exit 1)" "[ \$(rc loose) = 1 ]"
run users_after list --json
check "nothing changed by the refusals (7 users: admin, alice, bob, aud, adm2, aud2, phy)" "[ \$(\"$PY\" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' $T/users_after.out) = 7 ]"
check "the users table holds no injected name" "! grep -q DROP $T/users_after.out"
"$DV" audit export --vault "$T/v" >"$T/audit.jsonl" 2>/dev/null
check "changes are audited with the operator as actor" "grep -q '\"action\":\"user-change\"' $T/audit.jsonl && grep -q '\"action\":\"grant\"' $T/audit.jsonl && grep -q '\"role\":\"operator\"' $T/audit.jsonl"
check "refusals are audited too" "grep -q '\"outcome\":\"failure\"' $T/audit.jsonl"
check "the audit chain verifies" "\"$DV\" audit verify --vault $T/v >/dev/null"
check "--help exits 0" "\"$DV\" user --help | grep -q 'user grant'"

# a change made while another process (a server's login) writes the same
# row: the CLI waits for it and changes only its flag, so the TOTP step
# and the lockout that writer recorded stay (they were written over with
# the CLI's stale copy of the row: a used code usable again, a lock lifted)
"$PY" - "$DV" "$T/v" >"$T/race.out" 2>&1 <<'PYEOF'
import sqlite3, subprocess, sys, time
dv, vault = sys.argv[1], sys.argv[2]
db = vault + "/index.db"
w = sqlite3.connect(db, isolation_level=None, timeout=10)
w.execute("BEGIN IMMEDIATE")
w.execute("UPDATE users SET totp_last_step = 99999999, locked_until = 2000000000, failures = 5 WHERE name = 'alice'")
cli = subprocess.Popen([dv, "user", "disable", "alice", "--vault", vault], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
time.sleep(1.5)   # the CLI has started and waits for the write lock
w.execute("COMMIT")
rc = cli.wait(30)
row = sqlite3.connect(db).execute("SELECT totp_last_step, locked_until, failures, disabled FROM users "
                                  "WHERE name = 'alice'").fetchone()
print("race", rc, *row)
PYEOF
check "a change while a server writes the same row: its TOTP step and lock kept, the flag changed" \
	"grep -qx 'race 0 99999999 2000000000 5 1' $T/race.out"
run race_en enable alice
run race_un unlock alice

# output nobody receives: the secrets shown once are lost, so the account
# (or the new vault) is not left usable by whoever got them
"$DV" user add erin --role physician --vault "$T/v" >/dev/full 2>"$T/full.err"
check "add to a full stdout: exit 1, said so" "[ \$? = 1 ] && grep -q 'cannot write output' $T/full.err"
"$DV" user list --vault "$T/v" >"$T/afterfull.out" 2>&1
check "...and the account is disabled" "grep -q '^erin .*disabled' $T/afterfull.out"
"$DV" audit export --vault "$T/v" | grep -q 'user-disable erin'
check "...which is audited" "[ \$? = 0 ]"
"$DV" init --vault "$T/v2" >/dev/full 2>"$T/full2.err"
check "init to a full stdout: exit 1, the new vault removed" "[ \$? = 1 ] && [ ! -e $T/v2 ] && grep -q 'was removed' $T/full2.err"
mkdir -m 700 "$T/v3"
"$DV" init --vault "$T/v3" --password-file "$T/pw" --json >/dev/full 2>/dev/null
check "init into an empty folder, to a full stdout: nothing of the vault left" "[ \$? = 1 ] && [ -z \"\$(ls -A $T/v3 2>/dev/null)\" ]"
# the same with a closed pipe (its reader gone before the first write): a
# write error they handle, not a silent death by SIGPIPE
closed() { "$PY" -c 'import os, subprocess, sys
r, w = os.pipe(); os.close(r)
sys.exit(subprocess.run(sys.argv[1:], stdout=w).returncode)' "$@"; }
closed "$DV" user add fay --role physician --vault "$T/v" 2>"$T/pipe.err"
check "add to a closed pipe: exit 1 (not 141), said so" "[ \$? = 1 ] && grep -q 'cannot write output' $T/pipe.err"
"$DV" user list --vault "$T/v" >"$T/afterpipe.out" 2>&1
check "...and the account is disabled" "grep -q '^fay .*disabled' $T/afterpipe.out"
closed "$DV" init --vault "$T/v4" 2>"$T/pipe2.err"
check "init to a closed pipe: exit 1, the new vault removed" "[ \$? = 1 ] && [ ! -e $T/v4 ]"
for c in "user list" "user grants" "audit verify" "audit report" "audit export"; do
	"$DV" $c --vault "$T/v" >/dev/full 2>"$T/full3.err"
	check "$c to a full stdout: exit 1" "[ \$? = 1 ] && grep -q 'cannot write output' $T/full3.err"
done
exit 0
