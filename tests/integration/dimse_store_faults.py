"""dimse_store_faults.py DV: the C-STORE SCP of `dicomvault serve` (issue 5)
when things go wrong, and its presentation context negotiation of every
storage SOP class, with lib/dul.py as the requestor over DICOM-TLS (its
client certificate made with openssl).

* Every storage SOP class of ../shared/standard/sop_classes.tsv (DV_STD:
  another folder; column storage = Y, the table the SCP is generated from) proposed with explicit VR little endian
  only, at most 128 presentation contexts per A-ASSOCIATE-RQ (so several
  associations), each with an unknown abstract syntax 1.2.3.4.5 among
  them: every storage context accepted (result 0, explicit VR LE), the
  unknown one rejected with result 3 (abstract syntax not supported); the
  association audited as "N of M presentation contexts accepted".
* Out of resources: a second server runs under RLIMIT_FSIZE (SIGXFSZ
  ignored), so that writing a large object fails with EFBIG. A data set
  larger than the limit and than the spool's 1 MiB of memory fails while
  it is spooled (A700H, "Out of resources: cannot write the spool"); one
  that the spool keeps in memory but over the limit fails when its object
  is written (A700H, "Out of resources"). Each is audited as a failed store naming the SOP Instance
  UID; nothing of it is indexed (no instance, study or series row; a
  patient row may stay, as durability.md says), no temporary or pending file is left; on the same association a
  C-ECHO and a small C-STORE succeed, and on a new association another.
* A peer A-ABORT, and separately a TCP close, half-way through the
  P-DATA-TF of a 3 MiB data set (spooled to disk, its object being written
  early): the instance is absent (C-FIND at IMAGE level, and the index),
  no temporary or pending file is left, the server holds no descriptor of
  a deleted file, and it goes on serving: the same instance is then stored
  whole on a new association and found. Each aborted store is audited
  as a failure (the data set incomplete, nothing stored), none as a
  success.
* The index commit's WAL sync fails once (a third server under the shim
  tests/shim/fault_sync.c, when built): the C-STORE is refused after its
  success record was written, and its failure record voids it ("voids the
  store record before: ...", the same patient and object).

Run as /usr/bin/python3 tests/integration/dimse_store_faults.py build/check/dicomvault.
Prints ok/not ok lines; exits 1 if any check failed. KEEP=1 keeps the
directory. Layer: tests."""
import os
import resource
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import dul  # noqa: E402
from dvserver import Vault, free_port  # noqa: E402
from tap import Tap  # noqa: E402

DV = sys.argv[1] if len(sys.argv) > 1 else "build/check/dicomvault"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# the table the SCP's storage classes are generated from (Makefile: STD)
TSV = next((os.path.join(d, "sop_classes.tsv") for d in (os.environ.get("DV_STD", ""),
                                                         os.path.join(ROOT, "..", "shared", "standard"),
                                                         os.path.join(ROOT, "shared", "standard"))
            if d and os.path.exists(os.path.join(d, "sop_classes.tsv"))), None)
TAP = Tap("dimse_store_faults")
check, skip = TAP.check, TAP.skip

try:
    import dsgen
    import vault_state
except ImportError:
    skip("no pydicom")
dsgen.need_dimse(DV, skip)

SC = dsgen.SC
UNKNOWN = "1.2.3.4.5"
FSIZE = 512 << 10        # RLIMIT_FSIZE of the second server: 512 KiB
U = "1.2.826.0.1.3680043.2.1143.61."
T = tempfile.mkdtemp(prefix="dv-dsfault.")
servers = []


def cleanup():
    for p in servers:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    if os.environ.get("KEEP"):
        print("# kept " + T)
    else:
        shutil.rmtree(T, ignore_errors=True)


class Server:
    """A vault in T/name with [peer "PEER"] (rights: echo, store, find),
    served on a free DICOM-TLS port, under RLIMIT_FSIZE fsize when given,
    with env added to its environment."""

    def __init__(self, name, fp, fsize=None, env=None):
        self.name = name
        os.makedirs(os.path.join(T, name))
        self.v = Vault(DV, os.path.join(T, name))
        self.v.conf('\n[peer "PEER"]\nfingerprint = %s\nrights = echo, store, find\n' % fp)
        self.dir = self.v.dir
        self.port = free_port()
        self.out = open(os.path.join(T, name, "serve.out"), "w+")
        self.err = open(os.path.join(T, name, "serve.err"), "w+")

        def limits():
            if fsize is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        self.p = subprocess.Popen([DV, "serve", "--vault", self.dir, "--http", "127.0.0.1:%d" % free_port(),
                                   "--dicom", "127.0.0.1:%d" % self.port], stdout=self.out, stderr=self.err,
                                  preexec_fn=limits, env=dict(os.environ, **(env or {})))
        servers.append(self.p)
        for _ in range(200):
            self.out.seek(0)
            if "DICOM-TLS" in self.out.read() or self.p.poll() is not None:
                break
            time.sleep(0.05)
        self.out.seek(0)
        self.up = self.p.poll() is None and "DICOM-TLS" in self.out.read()

    def connect(self):
        return dul.connect(self.port, T + "/peer1.crt", T + "/peer1.key", self.dir + "/keys/tls.crt", timeout=30)

    def stderr(self):
        self.err.seek(0)
        return self.err.read()

    def audit(self):
        return vault_state.audit_records(self.dir)

    def index(self):
        """{table: row count} of the index, and its instances' SOP Instance UIDs."""
        db = sqlite3.connect("file:%s/index.db?mode=ro" % self.dir, uri=True)
        counts = {t: db.execute("select count(*) from " + t).fetchone()[0]
                  for t in ("patients", "studies", "series", "instances")}
        db.close()
        return counts, set(vault_state.indexed(self.dir))

    def leftovers(self):
        """What a store left behind that it should not: temporary files of
        the object store (.tmp, .pending, not the empty spares made ahead),
        files in the vault's tmp (spool) folder, objects no index row names."""
        bad = []
        rows = vault_state.indexed(self.dir)
        orphans, tmps = vault_state.objects(os.path.join(self.dir), set(k for _, _, k in rows.values()), bad)
        spool = os.listdir(os.path.join(self.dir, "tmp")) if os.path.isdir(os.path.join(self.dir, "tmp")) else []
        return sorted(orphans) + sorted(tmps) + ["tmp/" + f for f in spool] + bad

    def deleted_fds(self):
        return vault_state.deleted_fds(self.p.pid)


# ---- the requestor's side ----

def assoc(srv, contexts, max_len=1 << 20):
    """(socket, {pcid: (result, transfer syntax)}) or (None, PDU type)."""
    s = srv.connect()
    s.sendall(dul.assoc_rq("PEER", "DICOMVAULT", contexts, max_len=max_len))
    t, body = dul.read_pdu(s)
    if t != 2:
        s.close()
        return None, t
    return s, ac_results(body)


def ac_results(body):
    """{pcid: (result, transfer syntax)} of an A-ASSOCIATE-AC body."""
    out, i = {}, 68
    while i + 4 <= len(body):
        t, n = struct.unpack(">BxH", body[i:i + 4])
        if t == 0x21:
            pcid, result = body[i + 4], body[i + 6]
            ts = ""
            j = i + 8
            while j + 4 <= i + 4 + n:
                st, sn = struct.unpack(">BxH", body[j:j + 4])
                if st == 0x40:
                    ts = body[j + 4:j + 4 + sn].decode(errors="replace").rstrip("\0 ")
                j += 4 + sn
            out[pcid] = (result, ts)
        i += 4 + n
    return out


def release(s):
    s.sendall(dul.RELEASE_RQ)
    try:
        t, _ = dul.read_pdu(s)
    except (EOFError, OSError):
        t = None
    s.close()
    return t


def store(s, pcid, sop, data, mid, chunk=60000):
    """A C-STORE of data (implicit VR LE) on pcid: (status, error comment)."""
    cmd = dul.command({0x00000002: SC, 0x00000100: 0x0001, 0x00000110: mid, 0x00000700: 0, 0x00000800: 0x0000,
                       0x00001000: sop})
    s.sendall(dul.pdata(pcid, cmd, True))
    for i in range(0, len(data), chunk):
        s.sendall(dul.pdata(pcid, data[i:i + chunk], False, i + chunk >= len(data)))
    c, _ = dul.Messages(s).next()
    if c == "pdu" or not isinstance(c, dict):
        return None, "PDU instead of a response"
    return dul.us(c[0x00000900]), c.get(0x00000902, b"").decode(errors="replace").rstrip(" \0")


def echo(s, pcid, mid):
    s.sendall(dul.pdata(pcid, dul.command({0x00000002: dul.VERIFICATION, 0x00000100: 0x0030, 0x00000110: mid,
                                            0x00000800: 0x0101}), True))
    c, _ = dul.Messages(s).next()
    return dul.us(c[0x00000900]) if isinstance(c, dict) else None


def find_sops(srv, study):
    """The SOP Instance UIDs a Study Root C-FIND at IMAGE level answers for
    study (None when the C-FIND fails)."""
    s, res = assoc(srv, [(1, dul.FIND_STUDY, [dul.IMPLICIT])])
    if s is None:
        return None
    rq = dul.command({0x00000002: dul.FIND_STUDY, 0x00000100: 0x0020, 0x00000110: 1, 0x00000700: 0,
                      0x00000800: 0x0000})
    s.sendall(dul.pdata(1, rq, True) + dul.pdata(1, dul.dataset({0x00080052: "IMAGE", 0x0020000D: study,
                                                                 0x00080018: ""}), False))
    m, got = dul.Messages(s), set()
    while True:
        c, data = m.next()
        if not isinstance(c, dict):
            return None
        st = dul.us(c[0x00000900])
        if st in (0xFF00, 0xFF01):
            got.add(dul.parse_command(data)[0x00080018].decode().rstrip("\0 "))
            continue
        break
    release(s)
    return got if st == 0 else None


def instance(sop, study, series, pid, n, rows=4, cols=4):
    pixel = bytes((i * 7 + n) & 255 for i in range(256)) * (rows * cols // 256) if rows * cols >= 256 else None
    ds = dsgen.sc(sop, study, series, "FAULT^" + pid, pid, n, rows, cols, pixel, StudyDate="20240105",
                  AccessionNumber="F%d" % n)
    return dsgen.implicit(ds)


def storage_classes():
    uids = []
    with open(TSV, encoding="utf-8") as f:
        head = f.readline().rstrip("\n").split("\t")
        cu, cs = head.index("uid"), head.index("storage")
        for line in f:
            r = line.rstrip("\n").split("\t")
            if len(r) > cs and r[cs] == "Y" and r[cu].replace(".", "").isdigit():
                uids.append(r[cu])
    return uids


# ---- the checks ----

def all_storage_classes(srv):
    if TSV is None:
        check("../shared/standard/sop_classes.tsv found (or DV_STD)", False)
        return
    classes = storage_classes()
    check("sop_classes.tsv lists storage SOP classes (%d)" % len(classes), len(classes) > 150)
    rejected, unknown, nassoc, audited = [], [], 0, 0
    for k in range(0, len(classes), 127):
        part = classes[k:k + 127]
        ctx = [(1 + 2 * i, uid, [dul.EXPLICIT]) for i, uid in enumerate(part)]
        upc = 1 + 2 * len(part)
        ctx.append((upc, UNKNOWN, [dul.EXPLICIT]))
        s, res = assoc(srv, ctx)
        if s is None:
            rejected.append("association %d: PDU type %s" % (nassoc, res))
            continue
        nassoc += 1
        for pcid, uid, _ in ctx[:-1]:
            r = res.get(pcid)
            if r != (0, dul.EXPLICIT):
                rejected.append("%s: %s" % (uid, r))
        unknown.append(res.get(upc, (None, ""))[0])
        release(s)
        want = "%d of %d presentation contexts accepted" % (len(part), len(ctx))
        audited += sum(1 for r in srv.audit() if r.get("action") == "dicom-association" and
                       r.get("outcome") == "success" and r.get("reason") == want)
    check("every storage SOP class accepted with explicit VR LE, in %d associations of <= 128 contexts"
          % nassoc, not rejected and nassoc == (len(classes) + 126) // 127, "; ".join(rejected[:8]))
    check("the unknown abstract syntax 1.2.3.4.5 rejected in each with result 3 (abstract syntax not supported)",
          unknown and all(r == 3 for r in unknown), unknown)
    check("each association audited with its count of accepted contexts", audited == nassoc,
          "%d of %d" % (audited, nassoc))


def out_of_resources(srv):
    study, series = U + "1", U + "1.1"
    before, _ = srv.index()
    s, res = assoc(srv, [(1, SC, [dul.IMPLICIT]), (3, dul.VERIFICATION, [dul.IMPLICIT])])
    check("limited server: associated", s is not None, res)
    if s is None:
        return
    # 3 MiB: over the limit while it is spooled (in memory up to 1 MiB, then to disk)
    big = instance(U + "9.1", study, series, "PFAULT1", 1, 1024, 3072)
    st, comment = store(s, 1, U + "9.1", big, 1)
    check("a data set over RLIMIT_FSIZE: A700H, 'Out of resources: cannot write the spool'",
          st == 0xA700 and comment == "Out of resources: cannot write the spool", "%s [%s]" % (st, comment))
    # 768 KiB: spooled in memory, over the limit when its object is written
    mid = instance(U + "9.2", U + "2", U + "2.1", "PFAULT2", 2, 1024, 768)
    st2, comment2 = store(s, 1, U + "9.2", mid, 2)
    if st2 == 0xA700 and comment2 == "Out of resources: cannot write the spool":
        print("# the 768 KiB data set failed at the spool already, not when the object was written")
    check("a data set whose object cannot be written: A700H, 'Out of resources...'",
          st2 == 0xA700 and comment2.startswith("Out of resources"), "%s [%s]" % (st2, comment2))
    st3 = echo(s, 3, 3)
    st4, c4 = store(s, 1, U + "9.3", instance(U + "9.3", U + "3", U + "3.1", "PFAULT3", 3), 4)
    check("then, on the same association, a C-ECHO and a small C-STORE succeed",
          st3 == 0 and st4 == 0, "echo %s, store %s [%s]" % (st3, st4, c4))
    check("and the association is released", release(s) == 6)
    s, res = assoc(srv, [(1, SC, [dul.IMPLICIT])])
    st5, c5 = store(s, 1, U + "9.4", instance(U + "9.4", U + "3", U + "3.1", "PFAULT3", 4), 1) if s else (None, "")
    if s is not None:
        release(s)
    check("a new association stores another small instance", st5 == 0, "%s [%s]" % (st5, c5))
    after, sops = srv.index()
    # (a patient row may stay: made before the data set is whole, for its
    # early object; docs/internals/durability.md calls it harmless)
    check("the failed instances are not indexed, nor their study or series rows",
          U + "9.1" not in sops and U + "9.2" not in sops and
          (after["studies"], after["series"], after["instances"]) ==
          (before["studies"] + 1, before["series"] + 1, before["instances"] + 2), "%s -> %s" % (before, after))
    print("# patient rows: %d before, %d after (1 stored patient)" % (before["patients"], after["patients"]))
    found = find_sops(srv, U + "1"), find_sops(srv, U + "2"), find_sops(srv, U + "3")
    check("C-FIND: nothing of the failed studies, both small instances of the third",
          found == (set(), set(), {U + "9.3", U + "9.4"}), found)
    left = srv.leftovers()
    check("no temporary, pending or orphan file left", not left, left)
    fails = [r for r in srv.audit() if r.get("action") == "store" and r.get("outcome") == "failure"]
    reasons = {r.get("objects", {}).get("sop"): r.get("reason") for r in fails}
    check("each failure audited as a failed store with its reason and SOP Instance UID",
          reasons.get(U + "9.1") == "Out of resources: cannot write the spool" and
          (reasons.get(U + "9.2") or "").startswith("Out of resources") and len(fails) == 2, reasons)
    check("no store of the failed instances audited as a success",
          not [r for r in srv.audit() if r.get("action") == "store" and r.get("outcome") == "success" and
               r.get("objects", {}).get("sop") in (U + "9.1", U + "9.2")])
    check("limited server still running", srv.p.poll() is None, srv.stderr()[-600:])


def commit_fails(srv, fault_dir):
    """The index commit's WAL sync fails once (the shim fault_sync.so), after
    the store's success record was written: the C-STORE is refused, and its
    failure record voids that record, naming the same patient and object
    (before, a report by patient listed the success and a failure naming
    no object)."""
    s, res = assoc(srv, [(1, SC, [dul.IMPLICIT])])
    check("faulty server: associated", s is not None, res)
    if s is None:
        return
    # its patient stored first: the commit that fails is then the store's
    # rows', not the new patient's (phase 1, before the record)
    st0, c0 = store(s, 1, U + "9.6", instance(U + "9.6", U + "5", U + "5.1", "PFAULT5", 6), 1)
    check("faulty server: a first instance of the patient stored", st0 == 0, "%s [%s]" % (st0, c0))
    sop = U + "9.5"
    with open(os.path.join(fault_dir, "fdatasync"), "w") as f:
        f.write("*/index.db-wal 0 1 EIO\n")
    st, comment = store(s, 1, sop, instance(sop, U + "5", U + "5.1", "PFAULT5", 5), 2)
    os.unlink(os.path.join(fault_dir, "fdatasync"))
    release(s)
    check("the index commit's WAL sync failed: the C-STORE refused", st not in (None, 0), "%s [%s]" % (st, comment))
    mine = [r for r in srv.audit() if r.get("action") == "store" and r.get("objects", {}).get("sop") == sop]
    got = [(r.get("outcome"), r.get("reason"), r["objects"].get("object"), r["objects"].get("patient")) for r in mine]
    check("a success record, then a failure that voids it, naming the same patient and object",
          len(got) == 2 and got[0][0] == "success" and got[1][0] == "failure" and
          (got[1][1] or "").startswith("voids the store record before: ") and
          got[1][2] is not None and got[1][2:] == got[0][2:], got)


def wait_log(srv, needle, n, secs=5):
    end = time.time() + secs
    while time.time() < end:
        if srv.stderr().count(needle) >= n:
            return True
        time.sleep(0.05)
    return False


def cut_short(srv):
    study, series = U + "5", U + "5.1"
    data = {}
    for how, sop, n in (("abort", U + "9.5", 5), ("close", U + "9.6", 6)):
        data[sop] = instance(sop, study, series, "PFAULT5", n, 1024, 3072)   # 3 MiB
        s, res = assoc(srv, [(1, SC, [dul.IMPLICIT])])
        if s is None:
            check("%s: associated" % how, False, res)
            continue
        cmd = dul.command({0x00000002: SC, 0x00000100: 0x0001, 0x00000110: 1, 0x00000700: 0, 0x00000800: 0x0000,
                           0x00001000: sop})
        s.sendall(dul.pdata(1, cmd, True))
        d, chunk = data[sop], 60000
        for i in range(0, len(d) // 2, chunk):
            s.sendall(dul.pdata(1, d[i:i + chunk], False, False))
        time.sleep(0.3)   # let the server take them in (spooled, the early object begun)
        if how == "abort":
            s.sendall(dul.pdu(7, bytes([0, 0, 0, 0])))   # A-ABORT, service user
            time.sleep(0.1)
        s.close()
    # the server logs each association's end (handle_event)
    ended = wait_log(srv, "aborted", 2)
    time.sleep(0.3)
    check("both cut-short associations ended at the server (A-ABORT; transport closed)",
          ended and "aborted: transport closed" in srv.stderr(), srv.stderr()[-600:])
    _, sops = srv.index()
    check("neither instance indexed", U + "9.5" not in sops and U + "9.6" not in sops, sops)
    got = find_sops(srv, study)
    check("C-FIND at IMAGE level finds nothing of their study", got == set(), got)
    left = srv.leftovers()
    check("no temporary, pending or orphan file left after an A-ABORT and a TCP close mid data set", not left, left)
    fds = srv.deleted_fds()
    check("the server holds no descriptor of a deleted (spool) file", not fds, fds)
    recs = [r for r in srv.audit() if r.get("action") == "store" and
            r.get("objects", {}).get("sop") in (U + "9.5", U + "9.6")]
    check("no store audit record claims an aborted instance was stored",
          not [r for r in recs if r.get("outcome") == "success"], recs)
    check("each aborted store audited as a failure: the data set incomplete, nothing stored",
          sorted(r.get("objects", {}).get("sop") for r in recs) == [U + "9.5", U + "9.6"] and
          all(r.get("outcome") == "failure" and "before the data set was complete" in (r.get("reason") or "")
              for r in recs), recs)
    s, res = assoc(srv, [(1, SC, [dul.IMPLICIT])])
    st, c = store(s, 1, U + "9.5", data[U + "9.5"], 1) if s else (None, "")
    st2, c2 = store(s, 1, U + "9.6", data[U + "9.6"], 2) if s else (None, "")
    if s is not None:
        release(s)
    check("a new association stores both instances whole (0000H)", st == 0 and st2 == 0,
          "%s [%s] %s [%s]" % (st, c, st2, c2))
    got = find_sops(srv, study)
    check("and C-FIND finds them", got == {U + "9.5", U + "9.6"}, got)
    check("server still running", srv.p.poll() is None, srv.stderr()[-600:])


def main():
    fp = dsgen.cert(T, "peer1")
    if not fp:
        check("openssl made the certificate", False)
        return
    srv = Server("a", fp)
    check("server running with DICOM-TLS", srv.up, srv.stderr()[-600:])
    lim = Server("b", fp, FSIZE)
    check("server under RLIMIT_FSIZE %d running" % FSIZE, lim.up, lim.stderr()[-600:])
    if not srv.up or not lim.up:
        return
    t = time.time()
    all_storage_classes(srv)
    print("# storage classes: %.1f s" % (time.time() - t))
    t = time.time()
    out_of_resources(lim)
    print("# out of resources: %.1f s" % (time.time() - t))
    t = time.time()
    cut_short(srv)
    print("# cut short: %.1f s" % (time.time() - t))
    shim = os.path.join(os.path.dirname(os.path.abspath(DV)), "shim", "fault_sync.so")
    servers_done = [srv, lim]
    if os.path.exists(shim):
        fd = os.path.join(T, "fault")
        os.makedirs(fd)
        asan = (os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")
        flt = Server("c", fp, env={"LD_PRELOAD": shim, "FAULT_DIR": fd, "ASAN_OPTIONS": asan})
        check("server under the fault shim running", flt.up, flt.stderr()[-600:])
        if flt.up:
            commit_fails(flt, fd)
            servers_done.append(flt)
    else:
        print("# no %s: the failed commit not tried" % shim)
    for x in servers_done:
        x.p.terminate()
        try:
            rc = x.p.wait(15)
        except subprocess.TimeoutExpired:
            rc = None
        check("server %s stops cleanly on SIGTERM" % x.name, rc == 0, x.stderr()[-600:])
        p = subprocess.run([DV, "audit", "verify", "--vault", x.dir], capture_output=True, text=True)
        check("server %s: audit trail intact" % x.name, p.returncode == 0, p.stdout + p.stderr)


TAP.run(main, cleanup)
