"""config_audit.py DV: `dicomvault serve` records the configuration it runs
with (SPEC 8: a configuration change is one record). A new [peer] with
every right or a lockout weakened from 5 to 100 failures took effect at the
next start with no trace in the trail.
* The first start of a vault: one config-change record with the SHA-256
  of dicomvault.conf.
* A restart with the file unchanged: no new config-change record.
* A key changed and a [peer] section added: one record with the old and
  the new hash, naming "[auth] lockout_failures" and "+[peer "ROGUE"]",
  without their values.
* Only a comment changed: a record saying no setting changed.
* The copy of the last recorded file (audit/dicomvault.conf.audited)
  edited: a change is still recorded (the log, not the copy, holds the
  last hash), its settings said to be unknown.
* `audit verify` passes at the end; no sanitizer report.
Run as /usr/bin/python3 tests/integration/config_audit.py build/check/dicomvault.
Prints ok/not ok lines; exits 1 if any check failed. Layer: tests."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from dvserver import Vault, free_port  # noqa: E402
from tap import Tap  # noqa: E402

DV = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/check/dicomvault")
TAP = Tap("config_audit")
check = TAP.check
TMP = tempfile.mkdtemp(prefix="dv-confaudit.")
FP = ":".join(["AB"] * 32)


def records(v):
    with open(os.path.join(v.dir, "audit", "audit.log")) as f:
        return [json.loads(l) for l in f if l.strip()]


def changes(v):
    return [r for r in records(v) if r.get("action") == "config-change"]


def conf_hash(v):
    with open(os.path.join(v.dir, "dicomvault.conf"), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def edit(v, old, new):
    p = os.path.join(v.dir, "dicomvault.conf")
    text = open(p).read()
    open(p, "w").write(text.replace(old, new, 1))


def restart(v):
    """serve, then stop: the records of one start."""
    v.serve(dicom_port=free_port())
    v.stop()


def main():
    v = Vault(DV, TMP)
    h0 = conf_hash(v)
    restart(v)
    got = changes(v)
    check("the first start: one config-change record", len(got) == 1, got)
    first = got[0] if got else {}
    check("it holds the file's SHA-256, success, actor local",
          h0 in first.get("reason", "") and first.get("outcome") == "success"
          and first.get("actor", {}).get("addr") == "local", first)

    restart(v)
    check("a restart with the same file: no new config-change record", len(changes(v)) == 1, changes(v))

    edit(v, "lockout_failures = 5", "lockout_failures = 100")
    v.conf('\n[peer "ROGUE"]\nfingerprint = %s\nhost = 127.0.0.1\nport = 11112\n'
           'rights = echo, store, find, move, get\n' % FP)
    h1 = conf_hash(v)
    restart(v)
    got = changes(v)
    check("a key changed and a peer added: one more config-change record", len(got) == 2, got)
    rec = got[-1] if got else {}
    reason = rec.get("reason", "")
    check("it holds the new hash and the old one", h1 in reason and h0 in reason and reason.index(h1) < reason.index(h0),
          reason)
    check("it names the key changed and the section added",
          "[auth] lockout_failures" in reason and '+[peer "ROGUE"]' in reason, reason)
    check("it holds no value of the file", "100" not in reason.replace(h0, "").replace(h1, "")
          and FP not in reason and "11112" not in reason, reason)

    restart(v)
    check("restarted again unchanged: no new record", len(changes(v)) == 2, changes(v))

    edit(v, "[http]\n", "# a comment\n[http]\n")
    restart(v)
    got = changes(v)
    check("only a comment changed: a record saying no setting changed",
          len(got) == 3 and "no setting changed" in got[-1].get("reason", ""), got[-1:])

    copy = os.path.join(v.dir, "audit", "dicomvault.conf.audited")
    check("the copy of the recorded file is mode 0600 and the file itself",
          os.path.exists(copy) and os.stat(copy).st_mode & 0o777 == 0o600
          and open(copy, "rb").read() == open(os.path.join(v.dir, "dicomvault.conf"), "rb").read(), copy)
    with open(copy, "a") as f:
        f.write("[auth]\nlockout_failures = 100\n")
    edit(v, "lockout_failures = 100", "lockout_failures = 7")
    h2 = conf_hash(v)
    restart(v)
    got = changes(v)
    check("the copy edited: the change is still recorded, its settings not known",
          len(got) == 4 and h2 in got[-1].get("reason", "") and "not known" in got[-1].get("reason", ""), got[-1:])

    p = subprocess.run([DV, "audit", "verify", "--vault", v.dir], capture_output=True, text=True)
    check("audit verify passes", p.returncode == 0, p.stdout + p.stderr)
    err = open(os.path.join(TMP, "serve.err")).read()
    check("no sanitizer report", "Sanitizer" not in err and "runtime error" not in err, err[-600:])


TAP.run(main, lambda: shutil.rmtree(TMP, ignore_errors=True))
