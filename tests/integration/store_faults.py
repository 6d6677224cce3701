#!/usr/bin/python3
"""store_faults.py DV: the store when the disk fails its syncs, driven by
the LD_PRELOAD shim tests/shim/fault_sync.c (build/.../shim/fault_sync.so)
under `dicomvault serve`, then a kill -9 and a restart
(docs/internals/durability.md):

* An instance sent again while its first store waits for its object's
  fsync (3 s), which then fails: the second is not answered "already
  stored" over an object that was never durable (before session 25 it
  was, and then the first store's failure took the instance away: an
  acknowledged store lost). It waits for the first to end, stores the
  instance itself, and is answered 200; the instance is there, byte for
  byte, before and after kill -9.
* The index commit's WAL sync fails once (EIO): the store is refused. Its
  rows may still be in the WAL, whole; after kill -9 they came back, with
  the object deleted (before session 25: an index row without its object,
  a 500 on retrieval, and every later store of that instance refused).
  Now its object stays for recovery, so after the restart the instance is
  either whole or absent, never a row without an object, and the same
  instance sent again is stored (200) and retrieved byte for byte.
* The audit log's fsync fails once: that store is refused, and so is
  every later one (no record can be made durable until a restart), but
  now before anything of it is written: no index row (before session 25
  each was stored, indexed and never acknowledged). After a restart
  stores succeed again.
* An `import` in another process, its settle (the unlink of its pending
  entry) held, killed after its index commit: the instance's pending entry stays while serve runs
  (only a start's recovery removes it). The same instance sent over
  STOW-RS is answered 200 at once, over its object made durable then:
  the wait of the second bullet is only for stores of this process
  (before the fix of the fix, every such STOW waited 30 s and failed).
* In the first two, the failed store's failure record voids its success
  record, written before: it names the same patient and object.
* `audit verify` passes after each.

Run as /usr/bin/python3 tests/integration/store_faults.py build/check/dicomvault.
Prints ok/not ok lines; exits 1 if any check failed. Layer: tests."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import Tap  # noqa: E402

warnings.simplefilter("ignore")
TAP = Tap("store_faults")
check, skip = TAP.check, TAP.skip
DV = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/check/dicomvault")
SHIM = os.path.join(os.path.dirname(DV), "shim", "fault_sync.so")
try:
    import dsgen
    from dvserver import Vault
except ImportError:
    skip("no pydicom")
if not os.path.exists(SHIM):
    skip("no %s (make build)" % SHIM)

TMP = tempfile.mkdtemp(prefix="dv-storefaults.")
FD = os.path.join(TMP, "fault")
os.makedirs(FD)
ENV = {"LD_PRELOAD": SHIM, "FAULT_DIR": FD,
       "ASAN_OPTIONS": (os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")}


def uid():
    return "2.25.%d" % uuid.uuid4().int


def instance(rows):
    """A Part 10 instance (bytes) with rows x rows pixels: its bytes and its UIDs."""
    st, se, sop = uid(), uid(), uid()
    return dsgen.part10(dsgen.sc(sop, st, se, "FAULT^SYNC", "FS1", rows=rows, cols=rows)), (st, se, sop)


def rule(fn, text):
    with open(os.path.join(FD, fn), "w") as f:
        f.write(text + "\n")


def no_rules():
    for fn in ("fsync", "fdatasync", "unlink"):
        try:
            os.unlink(os.path.join(FD, fn))
        except FileNotFoundError:
            pass


def hits():
    try:
        return open(os.path.join(FD, "hits")).read()
    except FileNotFoundError:
        return ""


def retrieve(v, uids):
    """WADO-RS of one instance: (status, the part's bytes or None)."""
    st, se, sop = uids
    status, h, body = v.request("GET", "/dicom-web/studies/%s/series/%s/instances/%s" % (st, se, sop),
                                headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
    if status != 200:
        return status, None
    b = h.get("content-type", "").split("boundary=")[-1].strip('"').split(";")[0].encode()
    part = body.split(b"--" + b)[1]
    return status, part.split(b"\r\n\r\n", 1)[1][:-2]


def restart(v, env=None):
    """kill -9, then serve again (the session token stays valid: sessions
    are kept in the index; a new login would reuse the TOTP code)."""
    v.proc.kill()
    v.proc.wait()
    v.proc = None
    v.serve(env=env)


def stored_again(v, data, uids, after):
    """The instance sent again after `after`: 200, retrieved byte for
    byte, and audit verify passes."""
    st, _ = v.stow([data])
    check("%s: the same instance sent again: 200" % after, st == 200, st)
    st, got = retrieve(v, uids)
    check("%s: and retrieved byte for byte" % after, st == 200 and got == data, st)
    ok, out = audit_ok(v)
    check("%s: audit verify passes" % after, ok, out)


def voided(v, sop):
    """The store records of an instance: every failure follows a success
    record of the same store and voids it (reason "voids the store record
    before: ..."), naming the same patient and object, so that a report by
    patient lists both (before, it named neither). (ok, the records)."""
    recs = [json.loads(l) for l in open(os.path.join(v.dir, "audit", "audit.log")) if '"type":"event"' in l]
    mine = [r for r in recs if r["action"] == "store" and r["objects"].get("sop") == sop]
    fails = [i for i, r in enumerate(mine) if r["outcome"] == "failure"]
    ok = len(fails) > 0
    for i in fails:
        f = mine[i]["objects"]
        ok = ok and mine[i].get("reason", "").startswith("voids the store record before: ") and "patient" in f
        ok = ok and len(f.get("object", "")) == 32
        ok = ok and any(r["outcome"] == "success" and r["objects"].get("object") == f.get("object") and
                        r["objects"].get("patient") == f["patient"] for r in mine[:i])
    return ok, [(r["outcome"], r.get("reason"), r["objects"].get("object")) for r in mine]


def audit_ok(v):
    p = subprocess.run([DV, "audit", "verify", "--vault", v.dir], capture_output=True, text=True)
    return p.returncode == 0, p.stdout + p.stderr


def main():
    v = Vault(DV, TMP)
    v.serve(env=ENV)
    v.login()
    warm, _ = instance(8)
    st, _ = v.stow([warm])
    check("a store with the shim loaded: 200", st == 200, st)

    # 1. "already stored" over a first store whose object fsync then fails
    big, a = instance(1448)   # 2 MiB: written early, while it arrives
    rule("fsync", "*/objects/.pending/* 0 1 waitEIO:3000")
    first = {}
    t = threading.Thread(target=lambda: first.update(st=v.stow([big])[0]))
    t.start()
    time.sleep(0.8)
    t0 = time.monotonic()
    second, _ = v.stow([big])
    waited = time.monotonic() - t0
    t.join(60)
    check("the first store's object fsync failed (after 3 s): the first store refused",
          "waitEIO" in hits() and first.get("st") not in (None, 200), (first, hits()))
    check("the same instance meanwhile: answered 200 once the first had ended (%.1f s)" % waited,
          second == 200 and waited > 1.5, (second, waited))
    ok, recs = voided(v, a[2])
    check("the first store's failure record voids its success record: the same patient and object", ok, recs)
    no_rules()
    st, got = retrieve(v, a)
    check("and it is there, byte for byte", st == 200 and got == big, (st, len(got or b""), len(big)))
    restart(v)
    st, got = retrieve(v, a)
    check("after kill -9 and a restart too", st == 200 and got == big, (st, len(got or b"")))
    ok, out = audit_ok(v)
    check("audit verify passes", ok, out)

    # 2. the index commit's WAL sync fails: its rows may come back
    restart(v, ENV)
    small, b = instance(16)
    rule("fdatasync", "*/index.db-wal 0 1 EIO")
    st, _ = v.stow([small])
    check("the index commit's WAL sync failed (EIO): the store refused", st != 200 and "index.db-wal" in hits(),
          (st, hits()))
    ok, recs = voided(v, b[2])
    check("its failure record voids its success record: the same patient and object", ok, recs)
    no_rules()
    restart(v)
    st, got = retrieve(v, b)
    check("after kill -9: the instance whole (its rows came back, its object kept) or absent, "
          "never a row without its object (%d)" % st, (st == 200 and got == small) or st == 404, st)
    stored_again(v, small, b, "after the failed commit")

    # 3. the audit log's fsync fails: stores refused, not written
    import vault_state
    restart(v, ENV)
    one, _ = instance(16)
    two, c2 = instance(16)
    rule("fsync", "*/audit/audit.log 0 1 EIO")
    st1, _ = v.stow([one])
    st2, _ = v.stow([two])
    check("the audit log's fsync failed: that store refused, and the next", st1 != 200 and st2 != 200 and
          "audit.log" in hits(), (st1, st2, hits()))
    no_rules()
    rows = vault_state.indexed(v.dir)
    check("the next one refused before it was written: not in the index", c2[2] not in rows, sorted(rows))
    restart(v)
    stored_again(v, two, c2, "after the audit failure and a restart")

    # 4. another process's store killed between its commit and its settle
    no_rules()
    rule("unlink", "*/objects/.pending/* 0 100 wait:60000")   # its settle: the entry stays
    imp, c4 = instance(16)
    path = os.path.join(TMP, "imp.dcm")
    with open(path, "wb") as f:
        f.write(imp)
    p = subprocess.Popen([DV, "import", path, "--vault", v.dir], env=dict(os.environ, **ENV),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    while c4[2] not in vault_state.indexed(v.dir) and time.monotonic() - t0 < 40 and p.poll() is None:
        time.sleep(0.05)
    rows = vault_state.indexed(v.dir)
    running = p.poll() is None
    p.kill()
    p.wait()
    no_rules()
    key = rows[c4[2]][2] if c4[2] in rows else None
    pend = os.listdir(os.path.join(v.dir, "objects", ".pending"))
    check("an import killed after its index commit, before its settle: its pending entry stays",
          running and key is not None and key in pend,
          (running, "%.1f s" % (time.monotonic() - t0), key, pend, hits()))
    t0 = time.monotonic()
    st, _ = v.stow([imp])
    dt = time.monotonic() - t0
    check("the same instance over STOW-RS meanwhile: 200 at once (%.1f s)" % dt, st == 200 and dt < 10, (st, dt))
    st, got = retrieve(v, c4)
    check("and retrieved byte for byte", st == 200 and got == imp, st)
    err = open(os.path.join(TMP, "serve.err")).read()
    check("no sanitizer report", "Sanitizer" not in err and "runtime error" not in err, err[-600:])
    v.stop()


TAP.run(main, lambda: None if os.environ.get("KEEP") else shutil.rmtree(TMP, ignore_errors=True))
