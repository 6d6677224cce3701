"""dimse_user.py DV: User Identity Negotiation on the DICOM-TLS listener
(issues 4 and 5): an A-ASSOCIATE-RQ with a user identity sub-item of type
2 (user name, and an API token of that user as passcode) makes the
association act for the vault user, so every operation needs both the
peer's right and the user's grants. A peer whose collection holds two
studies: alone it finds both; as alice (radiologist on one study only) it
finds that one, may store into it and not into a new study (0124H); her
C-GET and C-MOVE retrieve only what her grants allow. A bad
token, the token of another user, a revoked token (while the server runs;
an association already open gets 0124H at its next operation) and a type
3 identity are refused (A-ASSOCIATE-RJ permanent, service-user,
reason 1); a type 1 identity (a user name alone) is accepted as PS3.15
B.4 asks, the peer keeping its own rights and the name audited as not
verified; a [peer] with require_user = yes refuses an association
without identity or with a type 1 one; a positive response asked for is
an empty 59H item.
Audit records name alice as the actor and the peer as agent; refusals are
audited. Then, with [auth] jwt_key, type 5 identities: ES256 JWTs signed
by the openssl command map to alice and bob; expired, foreign-issuer,
foreign-audience, foreign-key, unknown-user, too-long-lived, unsigned and
non-JWT tokens are refused, over plain TCP too; disabling alice during
her JWT association refuses her next operation; bad [auth] jwt_* settings
stop serve at start. Built with lib/dul.py (the client certificate made with openssl).
Prints ok/not ok lines. Layer: tests."""
import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import dul  # noqa: E402
from dvserver import free_port  # noqa: E402
from tap import Tap  # noqa: E402

DV = sys.argv[1] if len(sys.argv) > 1 else "build/check/dicomvault"
PW = "correct horse battery staple"
SC = "1.2.840.10008.5.1.4.1.1.7"   # secondary capture
S = "1.2.826.0.1.3680043.2.1143.77."
TAP = Tap("dimse_user")
check, skip = TAP.check, TAP.skip


try:
    import pydicom
    import dsgen
except ImportError:
    skip("no pydicom")
dsgen.need_dimse(DV, skip)

T = tempfile.mkdtemp(prefix="dv-duser.")
V = os.path.join(T, "v")
srv = None


def run(*args):
    return subprocess.run([DV] + list(args) + ["--vault", V], capture_output=True, text=True)


def instance(study, n):
    ds = dsgen.sc(S + "9.%d" % n, study, study + ".1", "DOE^S" + study[-1], "PS" + study[-1], n, 2, 2,
                  bytes([n & 255] * 4), PatientBirthDate="19700101", PatientSex="O", StudyDate="20240105",
                  StudyTime="101500", AccessionNumber="U%d" % n, StudyID="1")   # one patient per study
    return ds.SOPInstanceUID, dsgen.implicit(ds)


def start_server(name, label):
    """Starts serve on the vault (DICOM-TLS on DP); False (checked as
    label) when it does not come up."""
    global srv
    out = open(os.path.join(T, name + ".out"), "w+")
    err = open(os.path.join(T, name + ".err"), "w+")
    srv = subprocess.Popen([DV, "serve", "--vault", V, "--http", "127.0.0.1:%d" % free_port(),
                            "--dicom", "127.0.0.1:%d" % DP], stdout=out, stderr=err)
    for _ in range(200):
        out.seek(0)
        if "DICOM-TLS" in out.read() or srv.poll() is not None:
            break
        time.sleep(0.05)
    out.seek(0)
    if srv.poll() is not None or "DICOM-TLS" not in out.read():
        err.seek(0)
        check(label, False, err.read())
        return False
    return True


def associate(calling, identity=None, contexts=None):
    """(socket, PDU type, body) after the A-ASSOCIATE-RQ."""
    s = dul.connect(DP, os.path.join(T, "peer.crt"), os.path.join(T, "peer.key"), os.path.join(V, "keys", "tls.crt"))
    ctx = contexts or [(1, dul.VERIFICATION, [dul.IMPLICIT]), (3, dul.FIND_STUDY, [dul.IMPLICIT]),
                       (5, SC, [dul.IMPLICIT])]
    s.sendall(dul.assoc_rq(calling, "DICOMVAULT", ctx, identity=identity))
    try:
        t, body = dul.read_pdu(s)
    except (EOFError, OSError) as e:
        return s, None, str(e).encode()
    return s, t, body


def release(s):
    try:
        s.sendall(dul.RELEASE_RQ)
        dul.read_pdu(s)
    except (EOFError, OSError):
        pass
    s.close()


def rejected(t, body):
    """Whether (t, body) is an A-ASSOCIATE-RJ permanent, service-user, reason 1."""
    return t == 3 and len(body) >= 4 and body[1:4] == bytes([1, 1, 1])


def ref(token):
    """audit_session_ref: the session reference records give a token."""
    return hashlib.sha256(b"dicomvault-session:" + token.encode()).hexdigest()[:16]


def ident(user, token, positive=False):
    return dul.user_identity(2, user, token, positive)


def store(s, msg_id, study, n):
    uid, data = instance(study, n)
    rq = dul.command({0x00000002: SC, 0x00000100: 0x0001, 0x00000110: msg_id, 0x00000700: 0,
                      0x00000800: 0x0000, 0x00001000: uid})
    s.sendall(dul.pdata(5, rq, True) + dul.pdata(5, data, False))
    c, _ = dul.Messages(s).next()
    return dul.us(c[0x00000900])


def find_studies(s, msg_id):
    """(final status, sorted study UIDs)."""
    rq = dul.command({0x00000002: dul.FIND_STUDY, 0x00000100: 0x0020, 0x00000110: msg_id, 0x00000700: 0,
                      0x00000800: 0x0000})
    s.sendall(dul.pdata(3, rq, True) + dul.pdata(3, dul.dataset({0x00080052: "STUDY", 0x0020000D: ""}), False))
    m = dul.Messages(s)
    found = []
    while True:
        c, data = m.next()
        st = dul.us(c[0x00000900])
        if data is None:
            return st, sorted(found)
        d = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data), force=True)
        d.is_little_endian, d.is_implicit_VR = True, True
        found.append(str(d.StudyInstanceUID))


MOVE_STUDY = "1.2.840.10008.5.1.4.1.2.2.2"


def retrieve(s, msg_id, study, move_dest=None):
    """A C-GET (or, with move_dest, a C-MOVE) of one study: answers every
    C-STORE sub-operation with success; (final status, completed, failed,
    SOP Instance UIDs received)."""
    field, pc, model = (0x0021, 9, MOVE_STUDY) if move_dest else (0x0010, 7, dul.GET_STUDY)
    rq = {0x00000002: model, 0x00000100: field, 0x00000110: msg_id, 0x00000700: 0, 0x00000800: 0x0000}
    if move_dest:
        rq[0x00000600] = move_dest
    s.sendall(dul.pdata(pc, dul.command(rq), True) +
              dul.pdata(pc, dul.dataset({0x00080052: "STUDY", 0x0020000D: study}), False))
    m = dul.Messages(s)
    got = []
    while True:
        c, data = m.next()
        if c == "pdu":
            return None, 0, 0, got
        if dul.us(c[0x00000100]) == 0x0001:   # a C-STORE sub-operation
            uid = c[0x00001000].rstrip(b"\0").decode()
            got.append(uid)
            s.sendall(dul.pdata(5, dul.command({0x00000002: SC, 0x00000100: 0x8001,
                                                 0x00000120: dul.us(c[0x00000110]), 0x00000800: 0x0101,
                                                 0x00000900: 0, 0x00001000: uid}), True))
            continue
        st = dul.us(c[0x00000900])
        if st != 0xFF00:
            n = lambda t: dul.us(c[t]) if t in c else 0   # noqa: E731
            return st, n(0x00001021), n(0x00001022), sorted(got)


def main():
    global srv, DP
    with open(os.open(os.path.join(T, "pw"), os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(PW + "\n")
    p = subprocess.run([DV, "init", "--vault", V, "--password-file", os.path.join(T, "pw"), "--json"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        check("init", False, p.stderr)
        return
    fp = dsgen.cert(T, "peer")
    with open(os.path.join(V, "dicomvault.conf"), "a") as f:
        f.write('\n[peer "UPEER"]\nfingerprint = %s\nrights = echo, store, find\n'
                '\n[peer "STRICT"]\nfingerprint = %s\nrights = echo, find\nrequire_user = yes\n'
                '\n[peer "GPEER"]\nfingerprint = %s\nrights = echo, store, find, get, move\n'
                '\n[peer "DEST"]\nfingerprint = %s\nhost = 127.0.0.1\nport = %d\nrights = echo\n'
                '\n[peer "OTHERCOLL"]\nfingerprint = %s\nhost = 127.0.0.1\nport = %d\nrights = echo\n'
                'collection = research\n'
                '\n[peer "PLAINDEST"]\ntls = no\nhost = 127.0.0.1\nport = %d\nrights = echo\n'
                % (fp, fp, fp, fp, free_port(), fp, free_port(), free_port()))
    S1, S2, S3 = S + "1", S + "2", S + "3"
    r = run("user", "add", "alice", "--role", "radiologist", "--scope", "study:" + S1,
            "--password-file", os.path.join(T, "pw"))
    check("user alice: radiologist on study S1 only", r.returncode == 0, r.stderr)
    r = run("user", "add", "bob", "--role", "radiologist", "--password-file", os.path.join(T, "pw"))
    check("user bob: radiologist on the default collection", r.returncode == 0, r.stderr)
    toks = {}
    for name, user in (("a", "alice"), ("r", "alice"), ("b", "bob")):
        r = run("token", "create", "--user", user, "--json")
        toks[name] = json.loads(r.stdout)["token"] if r.returncode == 0 else ""
    check("three API tokens", all(t.startswith("dvt_") for t in toks.values()))

    DP = free_port()
    PP = free_port()
    with open(os.path.join(V, "dicomvault.conf")) as f:
        conf = f.read()
    with open(os.path.join(V, "dicomvault.conf"), "w") as f:
        f.write(conf.replace("[dicom]\n", "[dicom]\nplain_listen = 127.0.0.1:%d\n" % PP, 1))
    if not start_server("serve", "server running with DICOM-TLS"):
        return

    # ---- a user identity over the plain-TCP listener, from a tls = no
    # peer (the only ones taken there): refused (the token would travel
    # unencrypted) ----
    import socket as _socket
    ps = _socket.create_connection(("127.0.0.1", PP), timeout=15)
    ps.sendall(dul.assoc_rq("PLAINDEST", "DICOMVAULT", [(1, dul.VERIFICATION, [dul.IMPLICIT])],
                            identity=ident("alice", toks["a"])))
    try:
        t, body = dul.read_pdu(ps)
    except (EOFError, OSError):
        t, body = None, b""
    ps.close()
    check("a user identity over plain TCP: A-ASSOCIATE-RJ", rejected(t, body), (t, body[:8]))

    # ---- the peer alone: stores two studies, finds both ----
    s, t, body = associate("UPEER")
    check("peer without identity: accepted", t == 2, body)
    if t == 2:
        check("peer alone: C-STORE into S1", store(s, 1, S1, 1) == 0)
        check("peer alone: C-STORE into S2", store(s, 3, S2, 2) == 0)
        st, got = find_studies(s, 5)
        check("peer alone: C-FIND finds S1 and S2", st == 0 and got == [S1, S2], (st, got))
    release(s)

    # ---- as alice ----
    s, t, body = associate("UPEER", ident("alice", toks["a"], positive=True))
    check("alice's token: accepted", t == 2, body)
    if t == 2:
        ui = dul.user_items(body)
        check("positive response asked: a 59H item, server response of length 0 (type 2)", ui.get(0x59) == [b"\0\0"], ui)
        st, got = find_studies(s, 1)
        check("as alice: C-FIND finds S1 only", st == 0 and got == [S1], (st, got))
        check("as alice: C-STORE into S1 (her grant): success", store(s, 3, S1, 3) == 0)
        st = store(s, 5, S3, 4)
        check("as alice: C-STORE into a new study S3: 0124H", st == 0x0124, hex(st))
    release(s)
    s, t, body = associate("UPEER", ident("alice", toks["a"]))
    check("no positive response asked: no 59H item", t == 2 and 0x59 not in dul.user_items(body), body)
    if t == 2:
        st, got = find_studies(s, 1)
        check("as alice again: S3 was not stored", st == 0 and S3 not in got, (st, got))
    release(s)
    s, t, body = associate("UPEER", ident("bob", toks["b"]))
    if t == 2:
        st, got = find_studies(s, 1)
        check("as bob (default collection): S1 and S2", st == 0 and got == [S1, S2], (st, got))
    else:
        check("bob's token: accepted", False, body)
    release(s)

    # ---- refusals ----
    s, t, body = associate("UPEER", ident("alice", "dvt_" + "0" * 64))
    check("unknown token: A-ASSOCIATE-RJ (1, 1, 1)", rejected(t, body), (t, body))
    s.close()
    s, t, body = associate("UPEER", ident("alice", "not a token"))
    check("a passcode that is no API token: RJ", rejected(t, body), (t, body))
    s.close()
    s, t, body = associate("UPEER", ident("bob", toks["a"]))
    check("alice's token under bob's name: RJ", rejected(t, body), (t, body))
    s.close()
    s, t, body = associate("UPEER", dul.user_identity(1, "alice\x01", positive=True))
    check("identity type 1 (user name only): accepted, as PS3.15 B.4 asks", t == 2, body)
    if t == 2:
        ui = dul.user_items(body)
        check("type 1, positive response asked: a 59H item, server response of length 0", ui.get(0x59) == [b"\0\0"], ui)
        st, got = find_studies(s, 1)
        check("type 1: the peer's own rights, not alice's (S1 and S2)", st == 0 and got == [S1, S2], (st, got))
    release(s)
    s, t, body = associate("UPEER", dul.user_identity(3, b"a Kerberos ticket"))
    check("identity type 3 (Kerberos): RJ", rejected(t, body), (t, body))
    s.close()
    s, t, body = associate("UPEER", dul.user_identity(2, "alice", b""))
    check("type 2 with an empty passcode (DCMTK -epw): RJ, not an A-ABORT", rejected(t, body), (t, body))
    s.close()
    s2, t, body = associate("UPEER", ident("alice", toks["r"]))
    check("second token of alice: accepted", t == 2, body)
    if t == 2:
        st, got = find_studies(s2, 1)
        check("second token: C-FIND as alice", st == 0 and got == [S1], (st, got))
    r = run("token", "list", "--json")
    rid = [x["id"] for x in json.loads(r.stdout) if x["user"] == "alice"] if r.returncode == 0 else []
    rid = max(rid) if rid else 0
    r = run("token", "revoke", str(rid))
    check("token revoked while the server runs", r.returncode == 0, r.stderr)
    if t == 2:
        st, got = find_studies(s2, 3)
        check("revoked during the association: the next C-FIND is 0124H", st == 0x0124 and got == [], (hex(st), got))
        st = store(s2, 5, S1, 5)
        check("revoked during the association: the next C-STORE is 0124H", st == 0x0124, hex(st))
    release(s2)
    s, t, body = associate("UPEER", ident("alice", toks["r"]))
    check("revoked token: RJ at once", rejected(t, body), (t, body))
    s.close()
    s, t, body = associate("STRICT")
    check("require_user = yes without identity: RJ", rejected(t, body), (t, body))
    s.close()
    s, t, body = associate("STRICT", dul.user_identity(1, "alice"))
    check("require_user = yes with a user name alone (type 1): RJ", rejected(t, body), (t, body))
    s.close()
    s, t, body = associate("STRICT", ident("alice", toks["a"]))
    check("require_user = yes with alice's token: accepted", t == 2, body)
    if t == 2:
        st, got = find_studies(s, 1)
        check("STRICT as alice: S1 only (its collection, her grant)", st == 0 and got == [S1], (st, got))
    release(s)

    # ---- C-GET and C-MOVE as alice: her grants filter the instances
    # retrieved, as they filter C-FIND (DEST's port is closed: a move that
    # has something to send fails its sub-operations) ----
    getctx = [(1, dul.VERIFICATION, [dul.IMPLICIT]), (5, SC, [dul.IMPLICIT]), (7, dul.GET_STUDY, [dul.IMPLICIT]),
              (9, MOVE_STUDY, [dul.IMPLICIT])]
    roles = [(SC, 1, 1)]
    s1_uids = sorted([S + "9.1", S + "9.3"])

    def gassoc(identity=None):
        s = dul.connect(DP, os.path.join(T, "peer.crt"), os.path.join(T, "peer.key"), os.path.join(V, "keys", "tls.crt"))
        s.sendall(dul.assoc_rq("GPEER", "DICOMVAULT", getctx, roles=roles, identity=identity))
        t, body = dul.read_pdu(s)
        return s, t, body

    s, t, body = gassoc()
    check("GPEER alone: accepted", t == 2, body)
    if t == 2:
        check("the same instance again from another AE (other file meta, same data set): success",
              store(s, 11, S1, 1) == 0)
        r = retrieve(s, 1, S2)
        check("GPEER alone: C-GET of S2 sends its instance", r == (0, 1, 0, [S + "9.2"]), r)
        r = retrieve(s, 3, S2, "DEST")
        check("GPEER alone: C-MOVE of S2 to a closed port fails its sub-operation",
              r[0] not in (0, None) and r[1] == 0, r)
        r = retrieve(s, 5, S2, "OTHERCOLL")
        check("C-MOVE to a destination of another collection: A801, nothing sent", r == (0xA801, 0, 0, []), r)
        r = retrieve(s, 7, S2, "PLAINDEST")
        check("C-MOVE to a plain-TCP-only destination: A801", r == (0xA801, 0, 0, []), r)
        r = retrieve(s, 9, S2, "NOSUCHAE")
        check("C-MOVE to an unknown destination: A801", r == (0xA801, 0, 0, []), r)
    release(s)
    s, t, body = gassoc(ident("alice", toks["a"]))
    check("GPEER as alice: accepted", t == 2, body)
    if t == 2:
        r = retrieve(s, 1, S1)
        check("as alice: C-GET of S1 (her grant) sends both its instances", r == (0, 2, 0, s1_uids), r)
        r = retrieve(s, 3, S2)
        check("as alice: C-GET of S2 (outside her grants) sends nothing", r == (0, 0, 0, []), r)
        r = retrieve(s, 5, S2, "DEST")
        check("as alice: C-MOVE of S2 (outside her grants) moves nothing", r == (0, 0, 0, []), r)
    release(s)

    # ---- audit ----
    srv.terminate()
    srv.wait(20)
    recs = []
    with open(os.path.join(V, "audit", "audit.log")) as f:
        for line in f:
            try:
                recs.append(json.loads(line))
            except ValueError:
                pass

    def of(action, outcome=None):
        return [x for x in recs if x.get("action") == action and (outcome is None or x.get("outcome") == outcome)]

    stores = of("store")
    alice_ok = [x for x in stores if x["actor"].get("user") == "alice" and x.get("outcome") == "success"]
    alice_no = [x for x in stores if x["actor"].get("user") == "alice" and x.get("outcome") == "denied"]
    check("audit: alice's C-STORE names alice, the peer as agent",
          len(alice_ok) == 1 and alice_ok[0]["actor"].get("ua") == "AE UPEER" and alice_ok[0]["actor"].get("cert"),
          alice_ok)
    check("audit: alice's refused C-STOREs, denied (2)", len(alice_no) == 2, alice_no)
    as_alice = [x for x in recs if x.get("actor", {}).get("user") == "alice" and
                x["actor"].get("ua") in ("AE UPEER", "AE GPEER", "AE STRICT")]
    check("audit: the records of alice's associations give her role and her token's session reference, "
          "as over HTTPS", len(as_alice) >= 10 and
          all(x["actor"].get("role") == "radiologist" and x["actor"].get("session") in (ref(toks["a"]), ref(toks["r"]))
              for x in as_alice) and any(x["actor"].get("session") == ref(toks["a"]) for x in as_alice),
          [(x["action"], x["actor"]) for x in as_alice if x["actor"].get("role") != "radiologist" or
           x["actor"].get("session") not in (ref(toks["a"]), ref(toks["r"]))][:4])
    peer_own = [x for x in recs if x.get("actor", {}).get("user") in ("UPEER", "GPEER")]
    check("audit: the peer's own records: role dicom-peer, no session",
          len(peer_own) > 0 and all(x["actor"].get("role") == "dicom-peer" and "session" not in x["actor"]
                                    for x in peer_own), [x["actor"] for x in peer_own][:4])
    check("audit: the peer's own C-STOREs name the peer",
          len([x for x in stores if x["actor"].get("user") == "UPEER"]) == 2)
    check("audit: alice's queries name alice",
          len([x for x in of("query") if x["actor"].get("user") == "alice"]) == 5)
    ar = [x.get("reason", "") for x in of("retrieve") if x["actor"].get("user") == "alice"]
    check("audit: alice's C-GET and C-MOVE name alice (3), with what is sent",
          len(ar) == 3 and "C-GET study root STUDY: 2 to send" in ar[0] and "0 of 0 sent" in ar[2], ar)
    claimed = [x for x in of("query") if x["actor"].get("user") == "UPEER" and
               x["actor"].get("ua") == "AE UPEER, user alice? (not verified)"]
    check("audit: the type 1 association's query names the peer, and the name it gave as not verified",
          len(claimed) == 1, [x["actor"] for x in of("query")])
    den = [x.get("reason", "") for x in of("dicom-association", "denied")]
    # (9 refused associations, and STRICT's accepted one proposing a
    # storage context it has no right for: that refusal is its own record)
    check("audit: the refused associations (9) and the refused storage context of STRICT (1)",
          len(den) == 10 and sum("plain TCP" in d for d in den) == 1 and
          sum(d == "presentation contexts refused for want of a right: store (rights of STRICT: echo find)"
              for d in den) == 1 and
          sum("API token refused" in d for d in den) == 2 and sum("not the named user" in d for d in den) == 1 and
          sum("requires one" in d for d in den) == 1 and sum("type not supported" in d for d in den) == 1 and
          sum("user name alone proves nothing" in d for d in den) == 1 and
          sum("not an API token" in d for d in den) == 2, den)
    check("audit: the revoked token's refusals by the token check (3)",
          sum("revoked" in x.get("reason", "") for x in recs if x.get("action") == "token-refused") == 3,
          [x for x in recs if "token" in x.get("action", "")])
    r = run("audit", "verify")
    check("audit verify", r.returncode == 0, r.stdout + r.stderr)
    jwt_part(PP)


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def es256_jwt(claims, key, header=None):
    """A JWT signed by openssl (the independent signer): ES256, the DER
    signature openssl prints turned into r || s as RFC 7518 3.4 asks."""
    msg = b64u(json.dumps(header or {"alg": "ES256", "typ": "JWT"}).encode()) + "." + b64u(json.dumps(claims).encode())
    der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=msg.encode(), capture_output=True).stdout
    assert der[0] == 0x30 and der[2] == 2
    rl = der[3]
    r = int.from_bytes(der[4:4 + rl], "big")
    sl = der[5 + rl]
    s_ = int.from_bytes(der[6 + rl:6 + rl + sl], "big")
    return msg + "." + b64u(r.to_bytes(32, "big") + s_.to_bytes(32, "big"))


def jwt_part(PP):
    """JWT user identities (type 5): [auth] jwt_key names the identity
    provider's P-256 public key; tokens signed with openssl."""
    global srv
    for name in ("idp", "other"):
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-out", os.path.join(T, name + ".key")], capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", os.path.join(T, "idp.key"), "-pubout", "-out",
                    os.path.join(V, "idp.pub")], capture_output=True)
    with open(os.path.join(V, "dicomvault.conf")) as f:
        conf = f.read()
    with open(os.path.join(V, "dicomvault.conf"), "w") as f:
        f.write(conf.replace("[auth]\n", "[auth]\njwt_key = idp.pub\njwt_issuer = https://idp.test\n", 1))
    with open(os.path.join(V, "audit", "audit.log")) as f:
        before = len(f.readlines())
    if not start_server("serve2", "server with [auth] jwt_key running"):
        return
    now = int(time.time())
    idp = os.path.join(T, "idp.key")

    def claims(sub, **kw):
        c = {"iss": "https://idp.test", "sub": sub, "aud": "DICOMVAULT", "iat": now, "exp": now + 600}
        c.update(kw)
        return c

    def jwt_ident(tok, positive=False):
        return dul.user_identity(5, tok, b"", positive)

    S1, S2 = S + "1", S + "2"
    jwt_a = es256_jwt(claims("alice"), idp)
    s, t, body = associate("UPEER", jwt_ident(jwt_a, positive=True))
    check("JWT of alice (ES256, signed by openssl): accepted", t == 2, body)
    if t == 2:
        check("JWT: no server response item (we issue no token of ours)", 0x59 not in dul.user_items(body))
        st, got = find_studies(s, 1)
        check("JWT as alice: C-FIND finds S1 only (her grants)", st == 0 and got == [S1], (st, got))
    release(s)
    jwt_b = es256_jwt(claims("bob", aud=["x", "DICOMVAULT"]), idp)
    s, t, body = associate("UPEER", jwt_ident(jwt_b))
    check("JWT of bob, aud as an array: accepted", t == 2, body)
    if t == 2:
        st, got = find_studies(s, 1)
        check("JWT as bob: S1 and S2", st == 0 and got == [S1, S2], (st, got))
    release(s)
    bad = [
        ("expired two minutes ago", es256_jwt(claims("alice", iat=now - 900, exp=now - 120), idp)),
        ("another issuer", es256_jwt(claims("alice", iss="https://evil.test"), idp)),
        ("another audience", es256_jwt(claims("alice", aud="OTHERPACS"), idp)),
        ("signed by another key", es256_jwt(claims("alice"), os.path.join(T, "other.key"))),
        ("an unknown user", es256_jwt(claims("mallory"), idp)),
        ("living two hours (maximum one)", es256_jwt(claims("alice", exp=now + 7200), idp)),
        ("alg none", b64u(b'{"alg":"none"}') + "." + b64u(json.dumps(claims("alice")).encode()) + "."),
        ("not a JWT", "alice"),
    ]
    for why, tok in bad:
        s, t, body = associate("UPEER", jwt_ident(tok))
        check("JWT %s: A-ASSOCIATE-RJ (1, 1, 1)" % why, rejected(t, body), (t, body))
        s.close()
    ps = socket.create_connection(("127.0.0.1", PP), timeout=15)
    ps.sendall(dul.assoc_rq("PLAINDEST", "DICOMVAULT", [(1, dul.VERIFICATION, [dul.IMPLICIT])],
                            identity=jwt_ident(es256_jwt(claims("alice"), idp))))
    try:
        t, body = dul.read_pdu(ps)
    except (EOFError, OSError):
        t, body = None, b""
    ps.close()
    check("JWT over plain TCP: RJ", rejected(t, body), (t, body))
    # the account disabled during the association: the next operation is refused
    s, t, body = associate("UPEER", jwt_ident(es256_jwt(claims("alice"), idp)))
    if t == 2:
        r = run("user", "disable", "alice")
        check("alice disabled while her JWT association is open", r.returncode == 0, r.stderr)
        st, got = find_studies(s, 1)
        check("disabled during a JWT association: the next C-FIND is 0124H", st == 0x0124 and got == [], (hex(st), got))
    else:
        check("JWT of alice accepted again", False, body)
    release(s)
    s, t, body = associate("UPEER", jwt_ident(es256_jwt(claims("alice"), idp)))
    check("JWT of a disabled account: RJ", rejected(t, body), (t, body))
    s.close()
    srv.terminate()
    srv.wait(20)
    recs = []
    with open(os.path.join(V, "audit", "audit.log")) as f:
        for line in f.readlines()[before:]:
            try:
                recs.append(json.loads(line))
            except ValueError:
                pass
    den = [x.get("reason", "") for x in recs if x.get("action") == "dicom-association" and
           x.get("outcome") == "denied" and "JWT" in x.get("reason", "")]
    check("audit: the JWT refusals, each with its reason (9)",
          len(den) == 9 and sum("expired" in d for d in den) == 1 and sum("issuer" in d for d in den) == 1 and
          sum("audience" in d for d in den) == 1 and sum("signature does not verify" in d for d in den) == 1 and
          sum("no usable account" in d for d in den) == 2 and sum("longer" in d for d in den) == 1 and
          sum("empty part" in d for d in den) == 1 and sum("three dot-separated" in d for d in den) == 1, den)
    ok_as = [x for x in recs if x.get("action") == "query" and x["actor"].get("user") in ("alice", "bob")]
    check("audit: the JWT users' queries name them, the peer as agent (3)",
          len(ok_as) == 3 and all(x["actor"].get("ua") == "AE UPEER" for x in ok_as), ok_as)
    check("audit: the JWT users' queries give their role and the JWT's reference as session",
          len(ok_as) == 3 and all(x["actor"].get("role") == "radiologist" for x in ok_as) and
          [x["actor"].get("session") for x in ok_as if x["actor"]["user"] == "bob"] == [ref(jwt_b)] and
          ok_as[0]["actor"].get("session") == ref(jwt_a), [x["actor"] for x in ok_as])
    check("audit: no token bytes in any record", not any("eyJ" in json.dumps(x) for x in recs))
    r = run("audit", "verify")
    check("audit verify after the JWT associations", r.returncode == 0, r.stdout + r.stderr)
    # bad [auth] JWT settings: serve refuses to start, naming the key
    with open(os.path.join(V, "dicomvault.conf")) as f:
        good = f.read()
    with open(os.path.join(V, "rsa1024.pub"), "w") as f:
        k = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
                           capture_output=True).stdout
        f.write(subprocess.run(["openssl", "pkey", "-pubout"], input=k, capture_output=True).stdout.decode())
    for why, new_line, want in (("jwt_issuer without jwt_key", "", "without jwt_key"),
                                ("a missing key file", "jwt_key = nowhere.pub\n", "cannot read"),
                                ("an RSA key of 1024 bits", "jwt_key = rsa1024.pub\n", "2048"),
                                ("jwt_max_lifetime of 0", "jwt_key = idp.pub\njwt_max_lifetime = 0\n",
                                 "jwt_max_lifetime")):
        with open(os.path.join(V, "dicomvault.conf"), "w") as f:
            f.write(good.replace("jwt_key = idp.pub\n", new_line, 1))
        try:
            p = subprocess.run([DV, "serve", "--vault", V, "--http", "127.0.0.1:%d" % free_port(),
                                "--dicom", "127.0.0.1:%d" % free_port()], capture_output=True, text=True, timeout=30)
            check("serve refuses %s" % why, p.returncode == 1 and want in p.stderr, p.stderr)
        except subprocess.TimeoutExpired:
            check("serve refuses %s" % why, False, "still running")
    with open(os.path.join(V, "dicomvault.conf"), "w") as f:
        f.write(good)


def cleanup():
    if srv is not None and srv.poll() is None:
        srv.terminate()
        try:
            srv.wait(20)
        except subprocess.TimeoutExpired:
            srv.kill()
    if os.environ.get("KEEP"):
        print("# kept " + T)
    else:
        shutil.rmtree(T, ignore_errors=True)


DP = 0
TAP.run(main, cleanup)
