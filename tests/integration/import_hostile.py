"""import_hostile.py DV: `dicomvault import --from SOURCE` against a source
that sends what nobody asked for (lib/fake_pacs.py, a plain-TCP Q/R SCP,
`tls = no`). Its C-FIND lists one instance; its C-MOVE sends that one,
one of another study and patient, and one of the listed study that C-FIND
did not list. The import stores and verifies the listed instance only:
the other two are refused (0124H, "Not asked for") as they arrive, named
in the report as failed ("sent by SOURCE without being asked for"), and
the import exits 1; nothing of them is in the index; the refusals are
audited; `audit verify` passes. The same source, honest, gives exit 0,
and so it does when it lists every study, series and instance twice
(each expected, moved and verified once), and when it lists a legacy
study whose UID has a leading-zero component (listed, moved, verified),
and when it sends the listed instance twice (stored once, not also
"already present").
A source whose C-MOVE pending responses carry no counts is no progress
(the stall timeout ends it), and when it ignores the C-CANCEL of a
SIGTERM the import waits for the final response no longer than ARTIM,
then aborts and says so (it waited for ever).
A source whose C-FIND answers include matches without the level's
unique key: each such listing is an error naming the level and its
parent (exit 1, counted in the audit's end record), not a silent drop.

Run as /usr/bin/python3 tests/integration/import_hostile.py build/check/dicomvault.
Prints ok/not ok lines; exits 1 if any check failed. KEEP=1 keeps the
directory. Layer: tests."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import Tap  # noqa: E402

TAP = Tap("import_hostile")
check, skip = TAP.check, TAP.skip
DV = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/check/dicomvault")
LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib")
try:
    import fake_pacs
    import vault_state
    from dvserver import Vault, finish, free_port
except ImportError:
    skip("no pydicom")

T = tempfile.mkdtemp(prefix="dv-imphostile.")
procs = []


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    finish(T)


def run_import(v, mode, term_after=None, timeout=120):
    """Starts the fake source in mode, runs the import (sent SIGTERM
    term_after seconds in, if given; killed after timeout seconds): (exit
    status, or None if killed, report JSON, the source's output)."""
    qp, vp = free_port(), free_port()
    v.conf('\n[peer "SRC%s"]\nhost = 127.0.0.1\nport = %d\ntls = no\n' % (mode.upper(), qp))
    out = open(os.path.join(T, mode + ".pacs"), "w+")
    p = subprocess.Popen([sys.executable, os.path.join(LIB, "fake_pacs.py"), str(qp), str(vp), mode], stdout=out,
                         stderr=subprocess.STDOUT)
    procs.append(p)
    for _ in range(300):
        out.seek(0)
        if "listening" in out.read() or p.poll() is not None:
            break
        time.sleep(0.05)
    imp = subprocess.Popen([DV, "import", "--vault", v.dir, "--from", "SRC" + mode.upper(), "--port", str(vp),
                            "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs.append(imp)
    if term_after is not None:
        time.sleep(term_after)
        imp.send_signal(signal.SIGTERM)
    try:
        stdout, stderr = imp.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        imp.kill()
        stdout, stderr = imp.communicate()
        imp.returncode = None
    p.wait(30)
    out.seek(0)
    try:
        rep = json.loads(stdout)
    except ValueError:
        rep = {"raw": stdout + stderr}
    return imp.returncode, rep, out.read()


def stall_timeout(v, secs, key="stall_timeout"):
    """[dicom] stall_timeout (or key) = secs in v's dicomvault.conf."""
    p = os.path.join(v.dir, "dicomvault.conf")
    text = open(p).read()
    if "\n[dicom]\n" in text:
        text = text.replace("\n[dicom]\n", "\n[dicom]\n%s = %d\n" % (key, secs), 1)
    else:
        text += "\n[dicom]\n%s = %d\n" % (key, secs)
    open(p, "w").write(text)


def indexed(vdir):
    db = sqlite3.connect("file:%s/index.db?mode=ro" % vdir, uri=True)
    rows = {u for (u,) in db.execute("select uid from instances")}
    db.close()
    return rows


def main():
    v = Vault(DV, T, "v")
    rc, rep, pacs = run_import(v, "hostile")
    check("the source sent three instances: the listed one stored (0000), the two others refused (0124)",
          "store %s 0000" % fake_pacs.SOP in pacs and "store %s 0124" % fake_pacs.OTHER_SOP in pacs and
          "store %s 0124" % fake_pacs.UNLISTED_SOP in pacs, pacs)
    check("import exits 1", rc == 1, (rc, rep))
    check("report: 1 expected, 3 received, 1 stored and verified, 2 failed",
          (rep.get("expected"), rep.get("received"), rep.get("stored"), rep.get("verified"), rep.get("failed")) ==
          (1, 3, 1, 1, 2), rep)
    named = {p.get("object"): p.get("reason", "") for p in rep.get("problems", [])}
    check("both named: 'sent by SRCHOSTILE without being asked for'",
          all("sent by SRCHOSTILE without being asked for" in named.get(u, "")
              for u in (fake_pacs.OTHER_SOP, fake_pacs.UNLISTED_SOP)), named)
    check("the index holds the listed instance only", indexed(v.dir) == {fake_pacs.SOP}, indexed(v.dir))
    refused = [r for r in vault_state.audit_records(v.dir)
               if r.get("action") == "store" and r.get("outcome") == "denied" and "Not asked for" in r.get("reason", "")]
    check("each refusal audited (store denied, 'Not asked for')", len(refused) == 2,
          [r.get("reason") for r in vault_state.audit_records(v.dir) if r.get("action") == "store"])
    w = Vault(DV, T, "w")
    rc, rep, pacs = run_import(w, "honest")
    check("an honest source: exit 0, 1 stored and verified, no problem",
          rc == 0 and rep.get("verified") == 1 and not rep.get("problems"), (rc, rep, pacs))
    x = Vault(DV, T, "x")
    rc, rep, pacs = run_import(x, "repeats")
    check("a source that lists everything twice: exit 0, 1 expected, stored and verified",
          rc == 0 and (rep.get("expected"), rep.get("verified")) == (1, 1) and not rep.get("problems"),
          (rc, rep, pacs))
    # the listed instance sent twice, the same bytes: 1 stored (its first
    # C-STORE), not also 1 already present (every success was counted)
    dp = Vault(DV, T, "dup")
    rc, rep, pacs = run_import(dp, "dup")
    check("the listed instance sent twice: exit 0, 2 received, 1 stored, 0 already present, 1 verified",
          pacs.count("store %s 0000" % fake_pacs.SOP) == 2 and rc == 0 and
          (rep.get("expected"), rep.get("received"), rep.get("stored"), rep.get("already_present"),
           rep.get("verified")) == (1, 2, 1, 0, 1), (rc, rep, pacs[-300:]))
    # a legacy study UID ("05": a leading zero; PS3.5 forbids it, the
    # store takes it) is listed and moved like any other (it was dropped
    # unreadable, and the import said ok)
    lg = Vault(DV, T, "legacy")
    rc, rep, pacs = run_import(lg, "legacy")
    check("a legacy study UID with a leading zero: both studies listed, moved and verified, exit 0",
          rc == 0 and (rep.get("expected"), rep.get("stored"), rep.get("verified")) == (2, 2, 2) and
          not rep.get("problems") and indexed(lg.dir) == {fake_pacs.SOP, fake_pacs.LEGACY_SOP},
          (rc, rep, pacs[-600:]))
    # matches the import cannot name (no unique key) are errors, each
    # C-FIND's counted and named by level and parent UID
    nk = Vault(DV, T, "nokey")
    rc, rep, pacs = run_import(nk, "nokey")
    errs = {p.get("object"): p.get("reason", "") for p in rep.get("problems", []) if p.get("kind") == "error"}
    check("matches without their unique key: exit 1, 3 errors (studies, series, instances), the listed one verified",
          rc == 1 and rep.get("ok") is False and rep.get("errors") == 3 and rep.get("verified") == 1 and
          "1 match without a readable StudyInstanceUID" in errs.get("SRCNOKEY", "") and
          "1 match without a readable SeriesInstanceUID" in errs.get(fake_pacs.STUDY, "") and
          "1 match without a readable SOPInstanceUID" in errs.get(fake_pacs.SERIES, ""), (rc, rep))
    ends = [r for r in vault_state.audit_records(nk.dir) if r.get("action") == "import"]
    check("the import's audit record counts the 3 errors, outcome failure",
          ends and "3 errors" in ends[-1].get("reason", "") and ends[-1].get("outcome") == "failure",
          ends[-1:] if ends else vault_state.audit_records(nk.dir)[-3:])
    # a source that keeps the import waiting with pending responses that
    # change nothing (each one reset the idle timeout: it never ended);
    # [dicom] stall_timeout = 2 s here (an hour by default)
    stalled = []
    for mode in ("stall-move", "stall-find"):
        y = Vault(DV, T, mode.replace("-", ""))
        stall_timeout(y, 2)
        t0 = time.time()
        rc, rep, pacs = run_import(y, mode)
        took = time.time() - t0
        n = int(pacs.split("stalling: ")[1].split()[0]) if "stalling: " in pacs else -1
        check("%s: the import gives up after the stall timeout (exit 1, said why), not at the source's end"
              % mode, rc == 1 and "without progress" in json.dumps(rep) and 0 < n < 100000 and 2 <= took < 60,
              (rc, n, took, json.dumps(rep)[:400]))
        stalled.append(y)
    # pending C-MOVE responses without counts are no progress either (each
    # was: the stall timeout never ran)
    y = Vault(DV, T, "nocount")
    stall_timeout(y, 2)
    t0 = time.time()
    rc, rep, pacs = run_import(y, "nocount", timeout=40)
    took = time.time() - t0
    check("nocount: pending C-MOVE responses without counts: the import gives up after the stall timeout",
          rc == 1 and "without progress" in json.dumps(rep) and 2 <= took < 60, (rc, took, json.dumps(rep)[:400]))
    stalled.append(y)
    # ... and a SIGTERM's C-CANCEL that the source ignores: the final
    # response is awaited no longer than ARTIM (2 s here; the stall
    # timeout an hour), then the association is aborted and said so
    y = Vault(DV, T, "nocountterm")
    stall_timeout(y, 2, "artim")
    t0 = time.time()
    rc, rep, pacs = run_import(y, "nocount", term_after=3, timeout=40)
    took = time.time() - t0
    check("nocount and SIGTERM, the C-CANCEL ignored: the import ends (exit 1, cancelled, the C-CANCEL named)",
          rc == 1 and rep.get("cancelled") is True and "C-CANCEL" in json.dumps(rep) and took < 30,
          (rc, took, json.dumps(rep)[:600]))
    stalled.append(y)
    # an honest source's keep-alive (1500 pending responses over ~8 s while
    # a sub-operation runs) is no stall under the default
    z = Vault(DV, T, "keepalive")
    rc, rep, pacs = run_import(z, "keepalive")
    check("keepalive: 1500 unchanged pending responses, then the store: exit 0, 1 stored and verified",
          rc == 0 and rep.get("verified") == 1 and "keepalive: 1500 pending" in pacs, (rc, rep, pacs[-300:]))
    stalled.append(z)
    for d in [v.dir, w.dir, x.dir, dp.dir, lg.dir, nk.dir] + [y.dir for y in stalled]:
        r = subprocess.run([DV, "audit", "verify", "--vault", d], capture_output=True, text=True)
        check("audit verify: intact (%s)" % os.path.basename(d), r.returncode == 0, r.stdout + r.stderr)


TAP.run(main, cleanup)
