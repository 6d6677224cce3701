"""dimse_cancel.py DV: C-CANCEL of a C-MOVE and of a C-GET under way,
ARTIM in state Sta2 and max_associations, on the DICOM-TLS listener of `dicomvault serve`
(issue 5), with lib/dul.py as the requestor (its client certificate made
with openssl) and, as the Move Destination, a small C-STORE SCP written
here (a thread of this test: Python ssl, its own openssl certificate bound
to [peer "DEST"] by fingerprint, the vault's certificate as its only trust
anchor), which lets the test hold a sub-operation's C-STORE-RSP, so that
the C-CANCEL lands at a known point and the counts are exact. One study of
4 instances is stored first.

* C-MOVE, C-CANCEL-RQ sent after the first pending response while the
  second sub-operation's C-STORE-RSP is held by the destination: the
  pending responses FF00H (3 remaining, 1 completed; 2 remaining, 2
  completed: the sub-operation in flight finishes, the cancel is seen
  before the next one), then FE00H with 2 remaining, 2 completed, 0
  failed, 0 warning, no identifier; the destination got exactly those 2
  C-STOREs (byte-equal data sets, Move Originator AE and Message ID) and
  an A-RELEASE, not an A-ABORT. A C-CANCEL-RQ in the same TLS write as
  its C-MOVE-RQ: FE00H at once, 4 remaining, 0 completed, nothing stored
  at the destination. Then, on the same association, a full C-MOVE
  (0000H, 4 completed, all 4 byte-equal at the destination) and a C-ECHO.
* C-GET, C-CANCEL-RQ sent once the first sub-operation's C-STORE-RQ has
  arrived and before its C-STORE-RSP: FF00H (3 remaining, 1 completed),
  then FE00H (3 remaining, 1 completed, 0 failed), no further C-STORE-RQ;
  then a full C-GET on the same association (4 instances, byte-equal,
  0000H), a C-ECHO and an A-RELEASE.
* ARTIM in Sta2 with [dicom] artim = 2 (idle_timeout = 30): a client that
  completes the TLS handshake and sends no A-ASSOCIATE-RQ is disconnected
  between 1.5 and 3.5 s after the handshake, without any PDU (AA-2);
  meanwhile a second association is accepted and its C-ECHO answered.
* [dicom] max_pdu = 32768 is the Maximum Length our A-ASSOCIATE-AC gives.
* A C-STORE, C-GET or C-FIND whose SOP class is not that of the context it
  came on: 0122H (SOP class not supported), the association going on.
* Capacity, [dicom] max_associations = 6: 10 connections that never start
  TLS do not keep a peer out (its association is accepted at once, the
  oldest silent connections shut down to make room: at least 5 of 10);
  6 admitted associations are never evicted (a 7th is refused, each of
  the 6 still answers C-ECHO); the evictions are logged.
* The server still serves afterwards, stops cleanly on SIGTERM; one
  "retrieve" audit record per C-MOVE and C-GET before its first image
  ("4 to send"), the cancelled ones followed by one saying "(cancelled)"
  with what was sent; `audit verify` passes.

Run as /usr/bin/python3 tests/integration/dimse_cancel.py build/check/dicomvault.
Prints ok/not ok lines; exits 1 if any check failed. KEEP=1 keeps the
directory. Layer: tests."""
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import dul  # noqa: E402
from dvserver import free_port  # noqa: E402
from tap import Tap  # noqa: E402

DV = sys.argv[1] if len(sys.argv) > 1 else "build/check/dicomvault"
PW = "correct horse battery staple"
SC = "1.2.840.10008.5.1.4.1.1.7"   # secondary capture
MOVE_STUDY = "1.2.840.10008.5.1.4.1.2.2.2"
UIDS = "1.2.826.0.1.3680043.2.1143.88."
STUDY = UIDS + "1"
N = 4              # instances in the study
ARTIM = 2          # [dicom] artim, seconds
MAX_ASSOC = 6      # [dicom] max_associations
TAP = Tap("dimse_cancel")
check, skip = TAP.check, TAP.skip


try:
    import dsgen
except ImportError:
    skip("no pydicom")
dsgen.need_dimse(DV, skip)

T = tempfile.mkdtemp(prefix="dv-dcancel.")
V = os.path.join(T, "v")
srv = None
dest = None


def instance(n):
    """(SOP Instance UID, implicit VR little endian data set bytes)."""
    ds = dsgen.sc(UIDS + "9.%d" % n, STUDY, STUDY + ".1", "DOE^CANCEL", "PCANCEL", n, 16, 16,
                  bytes((i * 3 + n) & 255 for i in range(256)), PatientBirthDate="19700101", PatientSex="O",
                  StudyDate="20240105", StudyTime="101500", AccessionNumber="C1", StudyID="1")
    return ds.SOPInstanceUID, dsgen.implicit(ds)


# ---- messages with their presentation context ----

def next_msg(s):
    """(pcid, command dict, data set bytes or None), or ("pdu", type, body)
    for a PDU other than P-DATA-TF."""
    cmd, data, parsed, pc = b"", b"", None, None
    while True:
        t, body = dul.read_pdu(s)
        if t != 4:
            return ("pdu", t, body)
        for pcid, is_cmd, last, d in dul.pdvs(body):
            pc = pcid
            if is_cmd:
                cmd += d
                if last:
                    parsed = dul.parse_command(cmd)
                    if dul.us(parsed[0x00000800]) == 0x0101:
                        return (pc, parsed, None)
            else:
                data += d
                if last:
                    return (pc, parsed, data)


def rsp_fields(c):
    """(status, remaining, completed, failed, warning, message ID being
    responded to); a count that is absent is None."""
    def n(tag):
        return dul.us(c[tag]) if tag in c else None
    return (n(0x00000900), n(0x00001020), n(0x00001021), n(0x00001022), n(0x00001023), n(0x00000120))


def cancel_rq(pcid, msg_id):
    return dul.pdata(pcid, dul.command({0x00000100: 0x0FFF, 0x00000120: msg_id, 0x00000800: 0x0101}), True)


def store_rsp(pcid, c):
    uid = c[0x00001000].rstrip(b"\0").decode()
    return dul.pdata(pcid, dul.command({0x00000002: c[0x00000002].rstrip(b"\0").decode(), 0x00000100: 0x8001,
                                        0x00000120: dul.us(c[0x00000110]), 0x00000800: 0x0101,
                                        0x00000900: 0, 0x00001000: uid}), True)


# ---- the Move Destination: a C-STORE SCP over TLS ----

def _item(t, payload):
    return struct.pack(">BxH", t, len(payload)) + payload


def assoc_ac(rq):
    """The A-ASSOCIATE-AC for an A-ASSOCIATE-RQ body: every presentation
    context accepted with its first transfer syntax. (AC, {pcid: ts})."""
    ctxs, i = {}, 68
    while i + 4 <= len(rq):
        t, n = struct.unpack(">BxH", rq[i:i + 4])
        if t == 0x20:
            pcid, j, tss = rq[i + 4], i + 8, []
            while j + 4 <= i + 4 + n:
                st, sn = struct.unpack(">BxH", rq[j:j + 4])
                if st == 0x40:
                    tss.append(rq[j + 4:j + 4 + sn].rstrip(b"\0").decode())
                j += 4 + sn
            ctxs[pcid] = tss[0] if tss else dul.IMPLICIT
        i += 4 + n
    body = struct.pack(">HH", 1, 0) + rq[4:36] + bytes(32) + _item(0x10, dul.APP_CONTEXT.encode())
    for pcid, ts in sorted(ctxs.items()):
        body += _item(0x21, struct.pack(">BBBB", pcid, 0, 0, 0) + _item(0x40, ts.encode()))
    body += _item(0x50, _item(0x51, struct.pack(">I", 65536)) + _item(0x52, b"1.2.826.0.1.3680043.2.1143.88.0"))
    return dul.pdu(2, body), ctxs


class Dest(threading.Thread):
    """One association at a time. assocs: one dict per association
    (calling, stores: [(uid, move originator AE, its message ID, ts, data
    set bytes)], end: "released" / "aborted" / ..., done: Event). hold_at
    = k: on the k-th C-STORE-RQ of an association, sets reached and waits
    for go before answering."""

    def __init__(self, cert, key, cafile):
        super().__init__(daemon=True)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.ctx.load_cert_chain(cert, key)
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.load_verify_locations(cafile)
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(4)
        self.ls.settimeout(0.2)
        self.port = self.ls.getsockname()[1]
        self.assocs = []
        self.errors = []
        self.hold_at = None
        self.reached = threading.Event()
        self.go = threading.Event()
        self.stopping = False

    def run(self):
        while not self.stopping:
            try:
                c, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            rec = {"calling": None, "stores": [], "end": None, "done": threading.Event()}
            self.assocs.append(rec)
            try:
                c.settimeout(20)
                s = self.ctx.wrap_socket(c, server_side=True)
                self.serve(s, rec)
                s.close()
            except Exception as e:   # noqa: BLE001 (reported by the checks)
                rec["end"] = rec["end"] or "error: %r" % e
                self.errors.append(repr(e))
                c.close()
            rec["done"].set()
        self.ls.close()

    def serve(self, s, rec):
        t, body = dul.read_pdu(s)
        if t != 1:
            rec["end"] = "PDU %d instead of an A-ASSOCIATE-RQ" % t
            return
        rec["calling"] = body[20:36].decode().strip()
        ac, ctxs = assoc_ac(body)
        s.sendall(ac)
        while True:
            m = next_msg(s)
            if m[0] == "pdu":
                if m[1] == 5:
                    s.sendall(dul.pdu(6, bytes(4)))
                    rec["end"] = "released"
                else:
                    rec["end"] = "aborted" if m[1] == 7 else "PDU %d" % m[1]
                return
            pcid, c, data = m
            if dul.us(c[0x00000100]) != 0x0001 or data is None:
                rec["end"] = "unexpected message %r" % c
                return
            orig_id = dul.us(c[0x00001031]) if 0x00001031 in c else None
            rec["stores"].append((c[0x00001000].rstrip(b"\0").decode(),
                                  c.get(0x00001030, b"").decode(errors="replace").strip(), orig_id,
                                  ctxs.get(pcid), data))
            if self.hold_at == len(rec["stores"]):
                self.reached.set()
                self.go.wait(15)
            s.sendall(store_rsp(pcid, c))

    def wait_idle(self, since, timeout=10):
        """Waits until every association from index since on has ended;
        their records."""
        end = time.monotonic() + timeout
        for rec in self.assocs[since:]:
            rec["done"].wait(max(0.0, end - time.monotonic()))
        return self.assocs[since:]


# ---- the server ----

def start_server():
    global srv
    out = open(os.path.join(T, "serve.out"), "w+")
    err = open(os.path.join(T, "serve.err"), "w+")
    srv = subprocess.Popen([DV, "serve", "--vault", V, "--http", "127.0.0.1:%d" % free_port(),
                            "--dicom", "127.0.0.1:%d" % DP], stdout=out, stderr=err)
    for _ in range(300):
        out.seek(0)
        if "DICOM-TLS" in out.read() or srv.poll() is not None:
            break
        time.sleep(0.05)
    out.seek(0)
    up = srv.poll() is None and "DICOM-TLS" in out.read()
    err.seek(0)
    return check("server running with DICOM-TLS (artim = %d)" % ARTIM, up, err.read())


def connect():
    return dul.connect(DP, os.path.join(T, "peer.crt"), os.path.join(T, "peer.key"), os.path.join(V, "keys", "tls.crt"))


CTX = [(1, dul.VERIFICATION, [dul.IMPLICIT]), (3, SC, [dul.IMPLICIT]), (5, dul.GET_STUDY, [dul.IMPLICIT]),
       (7, MOVE_STUDY, [dul.IMPLICIT])]


def associate():
    """(socket, accepted) of an association of CANCELER, the SCP role for
    secondary capture proposed (C-GET)."""
    s = connect()
    s.sendall(dul.assoc_rq("CANCELER", "DICOMVAULT", CTX, roles=[(SC, 1, 1)]))
    t, body = dul.read_pdu(s)
    return s, t == 2


def release(s):
    """Whether the A-RELEASE-RQ was answered by an A-RELEASE-RP."""
    try:
        s.sendall(dul.RELEASE_RQ)
        t, _ = dul.read_pdu(s)
        return t == 6
    except (EOFError, OSError):
        return False
    finally:
        s.close()


def echo(s, msg_id):
    s.sendall(dul.pdata(1, dul.command({0x00000002: dul.VERIFICATION, 0x00000100: 0x0030, 0x00000110: msg_id,
                                        0x00000800: 0x0101}), True))
    m = next_msg(s)
    if m[0] == "pdu":
        return None
    return dul.us(m[1][0x00000900]) if dul.us(m[1][0x00000100]) == 0x8030 else None


def echo_round(msg_id):
    """A whole association: accepted, C-ECHO, released; (accepted, its
    status, released, seconds taken)."""
    t0 = time.monotonic()
    s, ok = associate()
    e = echo(s, msg_id) if ok else None
    rel = release(s) if ok else False
    return ok, e, rel, time.monotonic() - t0


def store(s, msg_id, uid, data):
    rq = dul.command({0x00000002: SC, 0x00000100: 0x0001, 0x00000110: msg_id, 0x00000700: 0,
                      0x00000800: 0x0000, 0x00001000: uid})
    s.sendall(dul.pdata(3, rq, True) + dul.pdata(3, data, False))
    m = next_msg(s)
    return None if m[0] == "pdu" else dul.us(m[1][0x00000900])


def retrieve_rq(move, msg_id):
    pc, model, field = (7, MOVE_STUDY, 0x0021) if move else (5, dul.GET_STUDY, 0x0010)
    rq = {0x00000002: model, 0x00000100: field, 0x00000110: msg_id, 0x00000700: 0, 0x00000800: 0x0000}
    if move:
        rq[0x00000600] = "DEST"
    return dul.pdata(pc, dul.command(rq), True) + \
        dul.pdata(pc, dul.dataset({0x00080052: "STUDY", 0x0020000D: STUDY}), False)


def final_rsp(s, get_stores=None):
    """Reads C-MOVE/C-GET responses up to the final one: ([pending
    fields], final fields, final has an identifier); C-STORE sub-operations
    (C-GET) are answered with success and appended to get_stores as (uid,
    data). A PDU other than P-DATA: (pendings, ("pdu", type), False)."""
    pend = []
    while True:
        m = next_msg(s)
        if m[0] == "pdu":
            return pend, ("pdu", m[1]), False
        pcid, c, data = m
        if dul.us(c[0x00000100]) == 0x0001:
            if get_stores is not None:
                get_stores.append((c[0x00001000].rstrip(b"\0").decode(), data))
            s.sendall(store_rsp(pcid, c))
            continue
        f = rsp_fields(c)
        if f[0] == 0xFF00:
            pend.append(f)
            continue
        return pend, f, data is not None


def main():
    global srv, DP, dest
    with open(os.open(os.path.join(T, "pw"), os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(PW + "\n")
    p = subprocess.run([DV, "init", "--vault", V, "--password-file", os.path.join(T, "pw"), "--json"],
                       capture_output=True, text=True)
    if not check("init", p.returncode == 0, p.stderr):
        return
    fp_peer, fp_dest = dsgen.cert(T, "peer"), dsgen.cert(T, "dest")
    if not check("openssl made the requestor's and the destination's certificates", fp_peer and fp_dest):
        return
    dest = Dest(os.path.join(T, "dest.crt"), os.path.join(T, "dest.key"), os.path.join(V, "keys", "tls.crt"))
    dest.start()
    DP = free_port()
    with open(os.path.join(V, "dicomvault.conf")) as f:
        conf = f.read()
    conf = conf.replace("[dicom]\n", "[dicom]\nartim = %d\nidle_timeout = 30\nmax_associations = %d\n"
                        "max_pdu = 32768\n" % (ARTIM, MAX_ASSOC), 1)
    conf += ('\n[peer "CANCELER"]\nfingerprint = %s\nrights = echo, store, get, move\n'
             '\n[peer "DEST"]\nfingerprint = %s\nhost = 127.0.0.1\nport = %d\nrights = echo\n'
             % (fp_peer, fp_dest, dest.port))
    with open(os.path.join(V, "dicomvault.conf"), "w") as f:
        f.write(conf)
    if not start_server():
        return
    inst = dict(instance(n) for n in range(1, N + 1))

    # ---- the study: 4 instances ----
    s, ok = associate()
    if not check("association of CANCELER accepted", ok):
        return
    sts = [store(s, 1 + 2 * i, uid, inst[uid]) for i, uid in enumerate(sorted(inst))]
    check("C-STORE of the study's %d instances: 0000H each" % N, sts == [0] * N, sts)

    # ---- C-MOVE, C-CANCEL while sub-operation 2 is at the destination ----
    mark = len(dest.assocs)
    dest.hold_at, dest.reached, dest.go = 2, threading.Event(), threading.Event()
    s.sendall(retrieve_rq(True, 11))
    m = next_msg(s)
    f1 = rsp_fields(m[1]) if m[0] != "pdu" else m
    check("C-MOVE: first pending response FF00H, 3 remaining, 1 completed, 0 failed, 0 warning",
          f1 == (0xFF00, 3, 1, 0, 0, 11), f1)
    held = dest.reached.wait(10)
    check("C-MOVE: the destination received sub-operation 2 (its C-STORE-RSP held)", held)
    s.sendall(cancel_rq(7, 11))
    time.sleep(0.3)   # the C-CANCEL is in the server's socket before sub-operation 2 ends
    dest.go.set()
    pend, fin, ident = final_rsp(s)
    check("C-MOVE: the sub-operation in flight completes: pending FF00H, 2 remaining, 2 completed",
          pend == [(0xFF00, 2, 2, 0, 0, 11)], pend)
    check("C-MOVE cancelled: final FE00H, 2 remaining, 2 completed, 0 failed, 0 warning, to message 11",
          fin == (0xFE00, 2, 2, 0, 0, 11), fin)
    check("C-MOVE cancelled: no identifier (no failed SOP instance)", not ident)
    dest.hold_at = None
    recs = dest.wait_idle(mark)
    got = [x for r in recs for x in r["stores"]]
    check("C-MOVE cancelled: the destination got 2 C-STOREs in one association, then an A-RELEASE",
          len(recs) == 1 and recs[0]["end"] == "released" and len(got) == 2 and recs[0]["calling"] == "DICOMVAULT",
          [(r["calling"], r["end"], [g[0] for g in r["stores"]]) for r in recs] + dest.errors)
    check("C-MOVE cancelled: those 2 are distinct instances of the study, data sets byte-equal",
          len({g[0] for g in got}) == 2 and all(g[0] in inst and g[4] == inst[g[0]] for g in got),
          [(g[0], g[3], len(g[4])) for g in got])
    check("C-MOVE cancelled: the C-STOREs name CANCELER and message 11 as the move originator",
          got and all(g[1] == "CANCELER" and g[2] == 11 for g in got), [g[1:3] for g in got])

    # ---- C-MOVE with its C-CANCEL in the same write ----
    mark = len(dest.assocs)
    s.sendall(retrieve_rq(True, 13) + cancel_rq(7, 13))
    pend, fin, ident = final_rsp(s)
    check("C-MOVE with the C-CANCEL right behind it: FE00H at once, 4 remaining, 0 completed, 0 failed",
          pend == [] and fin == (0xFE00, 4, 0, 0, 0, 13) and not ident, (pend, fin, ident))
    recs = dest.wait_idle(mark)
    check("C-MOVE cancelled before its first sub-operation: nothing stored at the destination",
          sum(len(r["stores"]) for r in recs) == 0 and all(r["end"] == "released" for r in recs),
          [(r["end"], len(r["stores"])) for r in recs])

    # ---- nothing lost: the whole study moves afterwards ----
    mark = len(dest.assocs)
    s.sendall(retrieve_rq(True, 15))
    pend, fin, ident = final_rsp(s)
    recs = dest.wait_idle(mark)
    got = [x for r in recs for x in r["stores"]]
    check("a full C-MOVE after the cancels on the same association: %d pending, 0000H, %d completed" % (N, N),
          len(pend) == N and fin[0] == 0 and fin[2:5] == (N, 0, 0) and not ident, (pend, fin))
    check("the full C-MOVE: all %d instances at the destination, byte-equal" % N,
          sorted(g[0] for g in got) == sorted(inst) and all(g[4] == inst[g[0]] for g in got),
          [g[0] for g in got])
    check("C-ECHO after the cancelled C-MOVEs, same association: 0000H", echo(s, 17) == 0)
    check("A-RELEASE after the C-MOVEs: A-RELEASE-RP", release(s))

    # ---- C-GET, C-CANCEL while sub-operation 1 is in flight ----
    s, ok = associate()
    if not check("a second association of CANCELER accepted", ok):
        return
    s.sendall(retrieve_rq(False, 21))
    m = next_msg(s)
    first = m[1] if m[0] != "pdu" else {}
    sub1 = m[0] != "pdu" and dul.us(first[0x00000100]) == 0x0001 and m[2] is not None
    check("C-GET: the first sub-operation's C-STORE-RQ and data set arrive", sub1, m)
    if not sub1:
        return
    uid1 = first[0x00001000].rstrip(b"\0").decode()
    check("C-GET: sub-operation 1 is an instance of the study, byte-equal", m[2] == inst.get(uid1), uid1)
    s.sendall(cancel_rq(5, 21))
    time.sleep(0.3)   # the C-CANCEL read while the C-STORE-RSP is awaited
    s.sendall(store_rsp(m[0], first))
    extra = []
    pend, fin, ident = final_rsp(s, extra)
    check("C-GET: pending FF00H after the sub-operation in flight, 3 remaining, 1 completed",
          pend == [(0xFF00, 3, 1, 0, 0, 21)], pend)
    check("C-GET cancelled: final FE00H, 3 remaining, 1 completed, 0 failed, 0 warning, to message 21",
          fin == (0xFE00, 3, 1, 0, 0, 21) and not ident, (fin, ident))
    check("C-GET cancelled: no sub-operation after the C-CANCEL", extra == [], [e[0] for e in extra])
    got = []
    s.sendall(retrieve_rq(False, 23))
    pend, fin, ident = final_rsp(s, got)
    check("a full C-GET after the cancel on the same association: %d pending, 0000H, %d completed" % (N, N),
          len(pend) == N and fin[0] == 0 and fin[2:5] == (N, 0, 0) and not ident, (pend, fin))
    check("the full C-GET: all %d instances, byte-equal" % N,
          sorted(g[0] for g in got) == sorted(inst) and all(g[1] == inst[g[0]] for g in got), [g[0] for g in got])
    check("C-ECHO after the cancelled C-GET, same association: 0000H", echo(s, 25) == 0)
    check("A-RELEASE after the C-GETs: A-RELEASE-RP", release(s))

    # ---- ARTIM in Sta2: TLS done, no A-ASSOCIATE-RQ ----
    stalled = connect()   # the handshake is done when connect returns
    t0 = time.monotonic()
    ok, e, rel, t_echo = echo_round(1)
    check("while a connection waits in Sta2: another association, C-ECHO 0000H, released",
          ok and e == 0 and rel, (ok, e, rel))
    stalled.settimeout(ARTIM + 5)
    got, how = b"", "open"
    try:
        while True:
            d = stalled.recv(4096)
            if not d:
                how = "closed"
                break
            got += d
    except socket.timeout:
        how = "still open"
    except (ssl.SSLError, OSError) as ex:
        how = "closed (%s)" % type(ex).__name__
    t_close = time.monotonic() - t0
    stalled.close()
    check("Sta2 without an A-ASSOCIATE-RQ: the server closes the connection", how.startswith("closed"), how)
    print("# ARTIM: %s %.2f s after the handshake; the other C-ECHO done after %.2f s" % (how, t_close, t_echo))
    check("ARTIM (%d s): closed between %.1f and %.1f s after the handshake" % (ARTIM, ARTIM - 0.5, ARTIM + 1.5),
          ARTIM - 0.5 <= t_close <= ARTIM + 1.5, "%s after %.2f s" % (how, t_close))
    check("ARTIM in Sta2: no PDU sent before closing (AA-2)", got == b"", got[:16])
    check("the other association was served while the stalled one was still open",
          t_echo < ARTIM - 0.5 and t_echo < t_close,
          "C-ECHO done after %.2f s, closed after %.2f s" % (t_echo, t_close))

    # ---- [dicom] max_pdu = 32768: what the A-ASSOCIATE-AC advertises ----
    s = connect()
    s.sendall(dul.assoc_rq("CANCELER", "DICOMVAULT", CTX))
    t, body = dul.read_pdu(s)
    ml = dul.user_items(body).get(0x51, [b""])[0] if t == 2 else b""
    check("max_pdu = 32768: the A-ASSOCIATE-AC's Maximum Length is 32768",
          len(ml) == 4 and struct.unpack(">I", ml)[0] == 32768, (t, ml))
    release(s)

    # ---- a command whose SOP class is not its context's: 0122H ----
    s, ok = associate()
    data = inst[sorted(inst)[0]]
    ct = "1.2.840.10008.5.1.4.1.1.2"
    s.sendall(dul.pdata(3, dul.command({0x00000002: ct, 0x00000100: 0x0001, 0x00000110: 41, 0x00000700: 0,
                                        0x00000800: 0x0000, 0x00001000: sorted(inst)[0]}), True) +
              dul.pdata(3, data, False))
    m = next_msg(s)
    st_store = None if m[0] == "pdu" else dul.us(m[1][0x00000900])
    s.sendall(dul.pdata(7, dul.command({0x00000002: dul.GET_STUDY, 0x00000100: 0x0010, 0x00000110: 42,
                                        0x00000700: 0, 0x00000800: 0x0000}), True) +
              dul.pdata(7, dul.dataset({0x00080052: "STUDY", 0x0020000D: STUDY}), False))
    m = next_msg(s)
    st_get = None if m[0] == "pdu" else dul.us(m[1][0x00000900])
    s.sendall(dul.pdata(5, dul.command({0x00000002: "1.2.840.10008.5.1.4.1.2.2.1", 0x00000100: 0x0020,
                                        0x00000110: 43, 0x00000700: 0, 0x00000800: 0x0000}), True) +
              dul.pdata(5, dul.dataset({0x00080052: "STUDY", 0x0020000D: ""}), False))
    m = next_msg(s)
    st_find = None if m[0] == "pdu" else dul.us(m[1][0x00000900])
    check("C-STORE, C-GET and C-FIND on a context of another SOP class: 0122H (SOP class not supported), "
          "not A900H", ok and (st_store, st_get, st_find) == (0x0122, 0x0122, 0x0122),
          (ok, st_store, st_get, st_find))
    check("the association goes on: C-ECHO 0000H, released", echo(s, 44) == 0 and release(s))

    # ---- capacity (max_associations = 6): connections that say nothing
    # are evicted for a peer, admitted associations never ----
    silent = [socket.create_connection(("127.0.0.1", DP), timeout=10) for _ in range(10)]
    time.sleep(0.3)
    ok, e, rel, t_in = echo_round(5)
    check("10 silent connections at a limit of 6: a peer's association is still accepted at once (C-ECHO 0000H)",
          ok and e == 0 and rel and t_in < ARTIM - 0.5, (ok, e, rel, t_in))
    gone = 0
    for x in silent:
        x.settimeout(0.2)
        try:
            gone += x.recv(16) == b""
        except socket.timeout:
            pass
        except OSError:
            gone += 1
        x.close()
    check("the oldest silent connections were closed to make room (at least 5 of 10)", gone >= 5, gone)
    time.sleep(ARTIM + 1)   # the others end at ARTIM
    held = []
    for _ in range(MAX_ASSOC):
        h, ok = associate()
        held.append(h)
        if not ok:
            break
    check("%d associations admitted and held" % MAX_ASSOC, len(held) == MAX_ASSOC and ok, len(held))
    try:
        extra, ok = associate()
        extra.close()
    except (EOFError, OSError):
        ok = False
    check("a 7th association at the limit: refused (the admitted ones are not evicted)", not ok)
    check("each admitted association still answers C-ECHO",
          all(echo(h, 7) == 0 for h in held) and all(release(h) for h in held))
    with open(os.path.join(T, "serve.err")) as f:
        errlog = f.read()
    check("evictions and refusals at the limit logged", "without an association evicted" in errlog, errlog[-400:])
    check("the connection closed by ARTIM in Sta2 logged",
          "no A-ASSOCIATE-RQ within 2000 ms (ARTIM): closed" in errlog, errlog[-400:])

    # ---- still serving; the audit trail ----
    s, ok = associate()
    check("after all this: a new association, C-ECHO 0000H", ok and echo(s, 3) == 0)
    if ok:
        release(s)
    srv.terminate()
    try:
        rc = srv.wait(20)
    except subprocess.TimeoutExpired:
        rc = None
    check("server stops cleanly on SIGTERM", rc == 0, rc)
    with open(os.path.join(V, "dicomvault.conf")) as f:
        good = f.read()
    for key, val in (("max_pdu", "100"), ("max_pdu", "2097152"), ("max_pdu", "64k"), ("max_associations", "0"),
                     ("max_associations", "1001"), ("max_associations", "x")):
        line = "%s = %s" % (key, {"max_pdu": "32768", "max_associations": str(MAX_ASSOC)}[key])
        with open(os.path.join(V, "dicomvault.conf"), "w") as f:
            f.write(good.replace(line, "%s = %s" % (key, val), 1))
        p = subprocess.run([DV, "serve", "--vault", V, "--http", "127.0.0.1:%d" % free_port(), "--dicom",
                            "127.0.0.1:%d" % free_port()], capture_output=True, text=True, timeout=30)
        check("[dicom] %s = %s: serve refuses to start, naming it" % (key, val),
              p.returncode != 0 and key in p.stderr, (p.returncode, p.stderr[-200:]))
    with open(os.path.join(V, "dicomvault.conf"), "w") as f:
        f.write(good)
    recs = []
    with open(os.path.join(V, "audit", "audit.log")) as f:
        for line in f:
            try:
                recs.append(json.loads(line))
            except ValueError:
                pass
    ret = [x.get("reason", "") for x in recs if x.get("action") == "retrieve"]
    mv = [r for r in ret if "C-MOVE" in r]
    gt = [r for r in ret if "C-GET" in r]
    # each announced before its first image ("4 to send"); the cancelled
    # ones followed by what went
    check("audit: C-MOVE records: 4 to send + 2 of 4 sent (cancelled), 4 to send + 0 of 4 sent (cancelled), "
          "4 to send", len(mv) == 5 and all(mv[i].endswith(": 4 to send") for i in (0, 2, 4)) and
          "2 of 4 sent" in mv[1] and "(cancelled)" in mv[1] and "0 of 4 sent" in mv[3] and "(cancelled)" in mv[3],
          mv)
    check("audit: C-GET records: 4 to send + 1 of 4 sent (cancelled), 4 to send, the one on a wrong context refused",
          len(gt) == 4 and gt[0].endswith(": 4 to send") and "1 of 4 sent" in gt[1] and "(cancelled)" in gt[1] and
          gt[2].endswith(": 4 to send") and "0 of 0 sent" in gt[3] and
          "does not match the presentation context" in gt[3], gt)
    r = subprocess.run([DV, "audit", "verify", "--vault", V], capture_output=True, text=True)
    check("audit verify", r.returncode == 0, r.stdout + r.stderr)
    check("the destination SCP saw no error", dest.errors == [], dest.errors)


def cleanup():
    if srv is not None and srv.poll() is None:
        srv.terminate()
        try:
            srv.wait(20)
        except subprocess.TimeoutExpired:
            srv.kill()
    if dest is not None:
        dest.stopping = True
        dest.go.set()
    if os.environ.get("KEEP"):
        print("# kept " + T)
    else:
        shutil.rmtree(T, ignore_errors=True)


DP = 0
TAP.run(main, cleanup)
