"""dimse_sequence.py DV: the order of DIMSE messages on an association of
`dicomvault serve` (issue 5), and command sets that peers write in ways
PS3.7 allows or that are common, with lib/dul.py as the requestor over
DICOM-TLS ([dicom] idle_timeout = 2, artim = 5).

* A command before the data set its predecessor announced (a C-STORE-RQ
  then a C-ECHO-RQ; a C-FIND-RQ then a C-STORE-RQ; three C-STORE-RQs with
  no data): a protocol error, the association aborted (A-ABORT, as DCMTK
  does); the unfinished store audited as a failure naming its SOP Instance
  UID, nothing indexed, no spool or temporary file left, no descriptor of a
  deleted file held; a new association is served.
* A response to nothing outstanding (a stray C-ECHO-RSP; a C-STORE-RSP
  with a data set): no answer, the association goes on: the next C-ECHO-RQ
  is answered with its own Message ID.
* A C-GET whose three sub-operations are each answered 0.9 s late (2.7 s
  in all, longer than the idle timeout): every instance arrives, the final
  response is 0000H, and the A-RELEASE-RQ that follows it is answered with
  an A-RELEASE-RP: the operation's time is not counted as the peer's
  silence (no "idle timeout" audit record).
* A peer silent for longer than the idle timeout after its last answer is
  still aborted (A-ABORT, audited "idle timeout").
* Lenient where peers differ: an empty Move Originator Application Entity
  Title and a SOP Class UID padded with a space on a C-ECHO-RQ: 0000H; an
  empty (required) Priority on a C-FIND-RQ: the association aborted, as
  DCMTK's storescp does.

Run as /usr/bin/python3 tests/integration/dimse_sequence.py build/check/dicomvault.
Prints ok/not ok lines; exits 1 if any check failed. KEEP=1 keeps the
directory. Layer: tests."""
import os
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import dul  # noqa: E402
from dvserver import Vault, finish, free_port  # noqa: E402
from tap import Tap  # noqa: E402

DV = sys.argv[1] if len(sys.argv) > 1 else "build/check/dicomvault"
TAP = Tap("dimse_sequence")
check, skip = TAP.check, TAP.skip

try:
    import dsgen
    import vault_state
except ImportError:
    skip("no pydicom")
dsgen.need_dimse(DV, skip)

SC = dsgen.SC
U = "1.2.826.0.1.3680043.2.1143.62."
STUDY, SERIES = U + "1", U + "1.1"
IDLE = 2
T = tempfile.mkdtemp(prefix="dv-dseq.")
V = None


def cleanup():
    finish(T, V)


def stderr():
    V.err.flush()
    with open(V.err.name, encoding="utf-8", errors="replace") as f:
        return f.read()


def audit():
    return vault_state.audit_records(V.dir)


def indexed():
    return set(vault_state.indexed(V.dir))


def deleted_fds():
    return vault_state.deleted_fds(V.proc.pid)


def spool_left():
    d = os.path.join(V.dir, "tmp")
    return os.listdir(d) if os.path.isdir(d) else []


def connect(contexts, roles=()):
    s = dul.connect(DP, os.path.join(T, "peer1.crt"), os.path.join(T, "peer1.key"),
                    os.path.join(V.dir, "keys", "tls.crt"), timeout=15)
    s.sendall(dul.assoc_rq("PEER", "DICOMVAULT", contexts, roles=roles))
    t, _ = dul.read_pdu(s)
    if t != 2:
        s.close()
        return None
    return s


def next_msg(s, secs=5):
    """The next message, ('pdu', type, body), or None when nothing comes
    within secs (or the connection ends)."""
    s.settimeout(secs)
    try:
        return dul.Messages(s).next()
    except (OSError, EOFError):
        return None
    finally:
        s.settimeout(15)


def release(s):
    s.sendall(dul.RELEASE_RQ)
    try:
        t, _ = dul.read_pdu(s)
    except (OSError, EOFError):
        t = None
    s.close()
    return t


def echo_rq(mid):
    return dul.command({0x00000002: dul.VERIFICATION, 0x00000100: 0x0030, 0x00000110: mid, 0x00000800: 0x0101})


def store_rq(sop, mid):
    return dul.command({0x00000002: SC, 0x00000100: 0x0001, 0x00000110: mid, 0x00000700: 0, 0x00000800: 0x0000,
                        0x00001000: sop})


def find_rq(mid):
    return dul.command({0x00000002: dul.FIND_STUDY, 0x00000100: 0x0020, 0x00000110: mid, 0x00000700: 0,
                        0x00000800: 0x0000})


def instance(sop, n):
    return dsgen.implicit(dsgen.sc(sop, STUDY, SERIES, "SEQ^" + str(n), "PSEQ", n, 16, 16,
                                   bytes((i * 3 + n) & 255 for i in range(256))))


def raw_command(elems):
    """A command set of (tag, bytes) elements as given (no checks), with
    its group length."""
    body = b"".join(struct.pack("<HHI", 0, t, len(v)) + v for t, v in elems)
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def status_of(msg):
    return dul.us(msg[0][0x00000900]) if msg and isinstance(msg[0], dict) else None


def store(s, pcid, sop, data, mid):
    s.sendall(dul.pdata(pcid, store_rq(sop, mid), True) + dul.pdata(pcid, data, False))
    return status_of(next_msg(s))


# ---- the checks ----

def command_before_data():
    cases = (
        ("a C-STORE-RQ then a C-ECHO-RQ", [(3, store_rq(U + "9.1", 1)), (1, echo_rq(2))], U + "9.1"),
        ("a C-FIND-RQ then a C-STORE-RQ", [(5, find_rq(1)), (3, store_rq(U + "9.2", 2))], None),
        ("three C-STORE-RQs without data", [(3, store_rq(U + "9.3", 1)), (3, store_rq(U + "9.4", 2)),
                                            (3, store_rq(U + "9.5", 3))], U + "9.3"),
    )
    for what, msgs, sop in cases:
        before = len(audit())
        s = connect([(1, dul.VERIFICATION, [dul.IMPLICIT]), (3, SC, [dul.IMPLICIT]),
                     (5, dul.FIND_STUDY, [dul.IMPLICIT])])
        if not check("%s: associated" % what, s is not None):
            continue
        for pcid, cmd in msgs:
            s.sendall(dul.pdata(pcid, cmd, True))
        got = next_msg(s)
        s.close()
        check("%s: the association aborted (A-ABORT)" % what, got is not None and got[0] == "pdu" and got[1] == 7,
              got)
        time.sleep(0.3)
        if sop is not None:
            recs = [r for r in audit()[before:] if r.get("action") == "store"]
            check("%s: the unfinished store audited as a failure naming its instance" % what,
                  len(recs) == 1 and recs[0].get("outcome") == "failure" and
                  recs[0].get("objects", {}).get("sop") == sop, recs)
    check("the log says why: a command before the data set", "a command before the data set" in stderr(),
          stderr()[-600:])
    check("nothing of them indexed", not {U + "9.1", U + "9.3", U + "9.4", U + "9.5"} & indexed())
    check("no spool file left", not spool_left(), spool_left())
    check("the server holds no descriptor of a deleted file", not deleted_fds(), deleted_fds())
    s = connect([(1, dul.VERIFICATION, [dul.IMPLICIT]), (3, SC, [dul.IMPLICIT])])
    ok = s is not None and store(s, 3, U + "9.1", instance(U + "9.1", 1), 1) == 0
    check("a new association stores the instance (0000H) and is released",
          ok and release(s) == 6)
    check("and it is indexed", U + "9.1" in indexed())


def stray_responses():
    s = connect([(1, dul.VERIFICATION, [dul.IMPLICIT]), (3, SC, [dul.IMPLICIT])])
    if not check("stray responses: associated", s is not None):
        return
    rsp = dul.command({0x00000002: dul.VERIFICATION, 0x00000100: 0x8030, 0x00000120: 5, 0x00000800: 0x0101,
                       0x00000900: 0})
    s.sendall(dul.pdata(1, rsp, True))
    got = next_msg(s, 1.0)
    check("a C-ECHO-RSP to nothing outstanding: no answer", got is None, got)
    srsp = dul.command({0x00000002: SC, 0x00000100: 0x8001, 0x00000120: 6, 0x00000800: 0x0000, 0x00000900: 0,
                        0x00001000: U + "9.7"})
    s.sendall(dul.pdata(3, srsp, True) + dul.pdata(3, b"\x08\x00\x18\x00\x02\x00\x00\x001\x00", False))
    got = next_msg(s, 1.0)
    check("a C-STORE-RSP with a data set to nothing outstanding: no answer", got is None, got)
    s.sendall(dul.pdata(1, echo_rq(41), True))
    got = next_msg(s)
    check("then a C-ECHO-RQ answered 0000H with its own Message ID (41)",
          status_of(got) == 0 and dul.us(got[0][0x00000120]) == 41, got)
    check("and the association is released", release(s) == 6)
    check("the stray responses are logged", stderr().count("to no outstanding request: ignored") == 2,
          stderr()[-600:])


def slow_get():
    sops = [U + "8.%d" % i for i in range(1, 4)]
    s = connect([(1, SC, [dul.IMPLICIT])])
    ok = s is not None and all(store(s, 1, x, instance(x, i + 10), i + 1) == 0 for i, x in enumerate(sops))
    check("3 instances stored for the C-GET", ok and release(s) == 6)
    before = len(audit())
    s = connect([(1, dul.GET_STUDY, [dul.IMPLICIT]), (3, SC, [dul.IMPLICIT])], roles=[(SC, 0, 1)])
    if not check("slow C-GET: associated", s is not None):
        return
    ident = dul.dataset({0x00080052: "IMAGE", 0x00080018: "\\".join(sops)})
    cmd = dul.command({0x00000002: dul.GET_STUDY, 0x00000100: 0x0010, 0x00000110: 7, 0x00000700: 0,
                       0x00000800: 0})
    t0 = time.time()
    s.sendall(dul.pdata(1, cmd, True) + dul.pdata(1, ident, False))
    got, final, other = [], None, None
    while True:
        msg = next_msg(s, 10)
        if msg is None or msg[0] == "pdu":
            other = msg
            break
        c, d = msg
        f = dul.us(c[0x00000100])
        if f == 0x0001:
            time.sleep(0.9)
            sop = c[0x00001000].rstrip(b"\0").decode()
            got.append(sop)
            s.sendall(dul.pdata(3, dul.command({0x00000002: SC, 0x00000100: 0x8001,
                                                0x00000120: dul.us(c[0x00000110]), 0x00000800: 0x0101,
                                                0x00000900: 0, 0x00001000: sop}), True))
        elif f == 0x8010 and dul.us(c[0x00000900]) != 0xFF00:
            final = dul.us(c[0x00000900])
            break
    took = time.time() - t0
    check("every sub-operation arrived, the final C-GET-RSP 0000H (%.1f s, idle timeout %d s)" % (took, IDLE),
          sorted(got) == sorted(sops) and final == 0 and took > IDLE, "%s %s %s" % (got, final, other))
    time.sleep(0.3)
    check("the A-RELEASE-RQ after it is answered with an A-RELEASE-RP", release(s) == 6)
    idle = [r for r in audit()[before:] if "idle timeout" in (r.get("reason") or "")]
    check("no association audited as idle", not idle, idle)


def idle_peer():
    before = len(audit())
    s = connect([(1, dul.VERIFICATION, [dul.IMPLICIT])])
    if not check("idle peer: associated", s is not None):
        return
    s.sendall(dul.pdata(1, echo_rq(1), True))
    first = status_of(next_msg(s))
    t0 = time.time()
    got = next_msg(s, IDLE + 4)
    took = time.time() - t0
    s.close()
    check("a peer silent after its C-ECHO is aborted after the idle timeout (%.1f s)" % took,
          first == 0 and got is not None and got[0] == "pdu" and got[1] == 7 and IDLE - 0.5 < took < IDLE + 3.5,
          got)
    time.sleep(0.2)
    idle = [r for r in audit()[before:] if "idle timeout" in (r.get("reason") or "")]
    check("audited as an idle timeout", len(idle) == 1, audit()[before:])


def lenient():
    s = connect([(1, dul.VERIFICATION, [dul.IMPLICIT]), (5, dul.FIND_STUDY, [dul.IMPLICIT])])
    if not check("lenient: associated", s is not None):
        return
    uid = (dul.VERIFICATION + ("\0" if len(dul.VERIFICATION) % 2 else "")).encode()
    us = lambda v: struct.pack("<H", v)   # noqa: E731
    s.sendall(dul.pdata(1, raw_command([(0x0002, uid), (0x0100, us(0x30)), (0x0110, us(1)), (0x0800, us(0x101)),
                                        (0x1030, b"")]), True))
    check("a C-ECHO-RQ with an empty Move Originator AE: 0000H", status_of(next_msg(s)) == 0)
    s.sendall(dul.pdata(1, raw_command([(0x0002, (dul.VERIFICATION + " ").encode()), (0x0100, us(0x30)), (0x0110, us(2)),
                                        (0x0800, us(0x101))]), True))
    got = next_msg(s)
    check("a C-ECHO-RQ whose SOP Class UID is padded with a space: 0000H",
          status_of(got) == 0 and dul.us(got[0][0x00000120]) == 2, got)
    fuid = (dul.FIND_STUDY + ("\0" if len(dul.FIND_STUDY) % 2 else "")).encode()
    s.sendall(dul.pdata(5, raw_command([(0x0002, fuid), (0x0100, us(0x20)), (0x0110, us(3)), (0x0700, b""),
                                        (0x0800, us(0))]), True) +
              dul.pdata(5, dul.dataset({0x00080052: "STUDY", 0x0020000D: ""}), False))
    got = next_msg(s)
    s.close()
    check("a C-FIND-RQ with an empty Priority: the association aborted",
          got is not None and got[0] == "pdu" and got[1] == 7, got)
    check("the log names the missing element", "lacks a required element" in stderr(), stderr()[-600:])


def main():
    global V, DP
    fp = dsgen.cert(T, "peer1")
    if not check("openssl made the requestor's certificate", bool(fp)):
        return
    V = Vault(DV, T)
    path = os.path.join(V.dir, "dicomvault.conf")
    with open(path) as f:
        conf = f.read()
    conf = conf.replace("[dicom]\n", "[dicom]\nartim = 5\nidle_timeout = %d\n" % IDLE, 1)
    conf += '\n[peer "PEER"]\nfingerprint = %s\nrights = echo, store, find, get\n' % fp
    with open(path, "w") as f:
        f.write(conf)
    DP = free_port()
    V.serve(DP)
    for name, fn in (("command before data", command_before_data), ("stray responses", stray_responses),
                     ("slow C-GET", slow_get), ("idle peer", idle_peer), ("lenient", lenient)):
        t = time.time()
        fn()
        print("# %s: %.1f s" % (name, time.time() - t))
    check("server still running", V.proc.poll() is None, stderr()[-600:])
    V.proc.terminate()
    check("server stops cleanly on SIGTERM", V.proc.wait(15) == 0, stderr()[-600:])
    p = subprocess.run([DV, "audit", "verify", "--vault", V.dir], capture_output=True, text=True)
    check("audit trail intact", p.returncode == 0, p.stdout + p.stderr)


DP = None
TAP.run(main, cleanup)
