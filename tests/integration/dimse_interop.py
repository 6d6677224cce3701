"""dimse_interop.py DV: what real requestors send that the DICOM upper
layer and C-STORE must take in stride (issue 5, from a review of the SCP
against PS3.7/PS3.8 and DCMTK), over the plain-TCP listener of `dicomvault
serve` with lib/dul.py as the requestor (a `tls = no` peer):

* SCP/SCU Role Selection items repeated for one SOP class (DCMTK writes one
  per presentation context that carries a role): the association is
  accepted and one role item is answered (it was an A-ABORT).
* A presentation context whose abstract syntax is not a valid UID (a
  leading zero, as some vendors' private classes have), or a transfer
  syntax that is not one, costs that context only: result 3, or the
  syntax left out; a trailing space pad is taken (it was an A-ABORT of the
  whole association).
* Transfer syntax choice for storage: lossless encapsulated, then native,
  and lossy only when nothing else is offered (a lossy syntax proposed
  beside native was chosen: a requestor holding native pixels would have
  compressed them irreversibly).
* A C-STORE data set holding File Meta elements (group 0002): C000H, not
  stored (it was stored, and its (0002,0010) relabelled the object).
* C-GET: a sub-operation answered with the warning status 0001H counts as
  a warning, the final status B000H, nothing in a Failed SOP Instance UID
  List (it counted as a failure: A702H).
* A SOP Instance UID with a leading-zero component (legacy archives made
  them; PS3.5 forbids it, DCMTK's storescu and storescp take it, and so
  does our store): its C-STORE-RQ is stored (0000H; it was an A-ABORT),
  and a C-GET of its study sends it (its C-STORE-RQ could not be built:
  no final response, the association aborted).
* The same instance with and without a Data Set Trailing Padding
  (FFFC,FFFC) at its end (DCMTK's storescu leaves it out of a file it
  sends): already stored either way round, STOW-RS then C-STORE (it was
  C000H "different content") and C-STORE then STOW-RS (it was 409); a
  pixel changed is still refused by both; the stored object keeps the
  bytes first received.

Run as /usr/bin/python3 tests/integration/dimse_interop.py build/check/dicomvault.
Prints ok/not ok lines; exits 1 if any check failed. Layer: tests."""
import copy
import os
import socket
import struct
import sys
import tempfile
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import dul  # noqa: E402
from tap import Tap  # noqa: E402

TAP = Tap("dimse_interop")
check, skip = TAP.check, TAP.skip
DV = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/check/dicomvault")
try:
    import dsgen
    from dvserver import Vault, finish, free_port
except ImportError:
    skip("no pydicom")

SC = "1.2.840.10008.5.1.4.1.1.7"
MR = "1.2.840.10008.5.1.4.1.1.4"
U = "1.2.826.0.1.3680043.2.1143.95."
J_BASE, J_LL, J2K, J2K_LL = "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.91", \
    "1.2.840.10008.1.2.4.90"
T = tempfile.mkdtemp(prefix="dv-interop.")
v = None
PP = 0


def connect():
    return socket.create_connection(("127.0.0.1", PP), timeout=20)


def ac_contexts(body):
    """{context id: (result, transfer syntax or None)} of an A-ASSOCIATE-AC."""
    i, out = 68, {}
    while i + 4 <= len(body):
        t, n = struct.unpack(">BxH", body[i:i + 4])
        if t == 0x21:
            sub = body[i + 8:i + 4 + n]
            ts = None
            if len(sub) >= 4:
                sn = struct.unpack(">H", sub[2:4])[0]
                ts = sub[4:4 + sn].decode().rstrip("\0")
            out[body[i + 4]] = (body[i + 6], ts)
        i += 4 + n
    return out


def roles_of(body):
    out = []
    for val in dul.user_items(body).get(0x54, []):
        n = struct.unpack(">H", val[:2])[0]
        out.append((val[2:2 + n].decode().rstrip("\0"), val[2 + n], val[3 + n]))
    return out


def associate(contexts, roles=()):
    s = connect()
    s.sendall(dul.assoc_rq("PLAIN", "DICOMVAULT", contexts, roles=roles))
    try:
        t, body = dul.read_pdu(s)
    except (EOFError, OSError):
        t, body = None, b""
    return s, t, body


def release(s):
    try:
        s.sendall(dul.RELEASE_RQ)
        dul.read_pdu(s)
    except (EOFError, OSError):
        pass
    s.close()


def store(s, pcid, cls, sop, data, msgid):
    """A C-STORE-RQ and its data set: (status or None, error comment)."""
    s.sendall(dul.pdata(pcid, dul.command({0x00000002: cls, 0x00000100: 0x0001, 0x00000110: msgid,
                                           0x00000700: 0, 0x00000800: 0, 0x00001000: sop}), True))
    s.sendall(dul.pdata(pcid, data, False))
    c = dul.Messages(s).next()[0]
    if c == "pdu":   # an A-ABORT: no response
        return None, "association aborted"
    return dul.us(c[0x00000900]), c.get(0x00000902, b"").rstrip(b"\0 ").decode(errors="replace")


def get_study(s, study, answer, msgid=7):
    """A Study Root C-GET of study on context 1, each C-STORE-RQ
    sub-operation answered with status answer on context 3: (the SOP
    Instance UIDs sent, the final C-GET-RSP or None)."""
    ident = dul.dataset({0x00080052: b"STUDY ", 0x0020000D: study.encode() + b"\0"})
    s.sendall(dul.pdata(1, dul.command({0x00000002: dul.GET_STUDY, 0x00000100: 0x0010, 0x00000110: msgid,
                                        0x00000700: 0, 0x00000800: 0}), True))
    s.sendall(dul.pdata(1, ident, False))
    m = dul.Messages(s)
    got = []
    for _ in range(20):
        msg = m.next()
        if msg[0] == "pdu":   # an A-ABORT or a release: no final response
            return got, None
        c, data = msg
        field = dul.us(c[0x00000100])
        if field == 0x0001:
            got.append(c[0x00001000].rstrip(b"\0").decode())
            s.sendall(dul.pdata(3, dul.command({0x00000002: SC, 0x00000100: 0x8001,
                                                0x00000120: dul.us(c[0x00000110]), 0x00000800: 0x0101,
                                                0x00000900: answer, 0x00001000: got[-1]}), True))
        elif field == 0x8010 and dul.us(c[0x00000900]) not in (0xFF00, 0xFF01):
            return got, c
    return got, None


def main():
    global v, PP
    dsgen.need_dimse(DV, skip)
    v = Vault(DV, T)
    PP = free_port()
    p = os.path.join(v.dir, "dicomvault.conf")
    conf = open(p).read().replace("[dicom]\n", "[dicom]\nplain_listen = 127.0.0.1:%d\n" % PP, 1)
    conf += '\n[peer "PLAIN"]\nhost = 127.0.0.1\nport = 104\ntls = no\nrights = echo, store, find, get\n'
    open(p, "w").write(conf)
    v.serve(dicom_port=free_port())
    v.login()

    # ---- role selection items repeated for one SOP class ----
    s, t, body = associate([(1, SC, [dul.IMPLICIT]), (3, SC, [dul.EXPLICIT])],
                           roles=[(SC, 0, 1), (SC, 0, 1)])
    check("two role items for one SOP class (DCMTK's way): accepted", t == 2, body[:16])
    if t == 2:
        check("...one role item answered for it", roles_of(body) == [(SC, 0, 1)], roles_of(body))
    release(s)

    # ---- a bad UID costs its context only ----
    s, t, body = associate([(1, dul.VERIFICATION, [dul.IMPLICIT]),
                            (3, "1.2.840.113619.4.027", [dul.IMPLICIT]),
                            (5, SC, ["1.2.840.10008.1.2.4.070", dul.IMPLICIT]),
                            (7, MR + " ", [dul.EXPLICIT + " "])])
    ctx = ac_contexts(body) if t == 2 else {}
    check("a context with an abstract syntax that is not a UID: the association is accepted", t == 2, body[:16])
    check("...that context answered 'abstract syntax not supported' (3)", ctx.get(3, (None,))[0] == 3, ctx)
    check("...a transfer syntax that is not a UID left out, the context accepted with the valid one",
          ctx.get(5) == (0, dul.IMPLICIT), ctx)
    check("...space-padded UIDs taken", ctx.get(7) == (0, dul.EXPLICIT), ctx)
    check("...Verification accepted", ctx.get(1) == (0, dul.IMPLICIT), ctx)
    release(s)

    # ---- transfer syntax preference ----
    s, t, body = associate([(1, SC, [J_BASE, dul.EXPLICIT]), (3, SC, [J_BASE, J_LL, dul.EXPLICIT]),
                            (5, SC, [J2K]), (7, SC, [dul.EXPLICIT, J2K, J2K_LL])])
    ctx = ac_contexts(body) if t == 2 else {}
    check("lossy JPEG and native offered: native chosen", ctx.get(1) == (0, dul.EXPLICIT), ctx)
    check("lossy, lossless JPEG and native: lossless JPEG chosen", ctx.get(3) == (0, J_LL), ctx)
    check("lossy JPEG 2000 alone: taken", ctx.get(5) == (0, J2K), ctx)
    check("native, lossy and lossless JPEG 2000: lossless chosen", ctx.get(7) == (0, J2K_LL), ctx)
    release(s)

    # ---- group 0002 in a C-STORE data set ----
    s, t, body = associate([(1, SC, [dul.IMPLICIT])], roles=[(SC, 0, 1)])
    check("a storage association", t == 2, body[:16])
    if t != 2:
        return
    sop = U + "1.1.1"
    ds = dsgen.sc(sop, U + "1", U + "1.1", "INTEROP^META", "IOP95")
    g2 = struct.pack("<HHI", 2, 0x10, 20) + b"1.2.840.10008.1.2.2\0"
    bad = dsgen.sc(U + "1.1.9", U + "1", U + "1.1", "INTEROP^META", "IOP95")
    st, comment = store(s, 1, SC, U + "1.1.9", g2 + dsgen.implicit(bad), 1)
    check("a data set with (0002,0010) in it: C000H, named", st == 0xC000 and "0002" in comment, (hex(st), comment))
    st, comment = store(s, 1, SC, sop, dsgen.implicit(ds), 3)
    check("the same instance without it: stored (0000H)", st == 0, (hex(st), comment))
    st2, h, data = v.request("GET", "/dicom-web/studies/%s1/instances" % U, headers={"Accept": "application/dicom+json"})
    check("only the good one is in the vault", st2 == 200 and sop.encode() in data and
          (U + "1.1.9").encode() not in data, (st2, data[:200]))

    # ---- a legacy SOP Instance UID: a component with a leading zero ----
    lz = U + "2.1.05"
    warnings.filterwarnings("ignore", "Invalid value for VR UI")   # pydicom's, on writing it
    st, comment = store(s, 1, SC, lz, dsgen.implicit(dsgen.sc(lz, U + "2", U + "2.1", "INTEROP^LZ", "IOP95")), 5)
    check("a C-STORE-RQ whose SOP Instance UID has a leading-zero component: stored (0000H)", st == 0,
          (st, comment))
    release(s)
    # another one, of a study of its own, stored by STOW-RS (which took
    # them before): a C-GET sends it
    lz2 = U + "3.1.07"
    st2, rep = v.stow([dsgen.part10(dsgen.sc(lz2, U + "3", U + "3.1", "INTEROP^LZ", "IOP95"))])
    check("STOW-RS of another such instance: 200", st2 == 200, (st2, rep))
    s, t, body = associate([(1, dul.GET_STUDY, [dul.IMPLICIT]), (3, SC, [dul.IMPLICIT])], roles=[(SC, 0, 1)])
    if t != 2:
        check("a C-GET association", False, body[:16])
        return
    got, final = get_study(s, U + "3", 0x0000)
    check("C-GET of its study: that instance sent, final 0000H with 1 completed",
          got == [lz2] and final is not None and dul.us(final[0x00000900]) == 0 and
          dul.us(final.get(0x00001021, b"\0\0")) == 1, (got, {hex(k): final[k] for k in final} if final else None))

    # ---- C-GET: a sub-operation's warning status 0001H is a warning ----
    release(s)
    s, t, body = associate([(1, dul.GET_STUDY, [dul.IMPLICIT]), (3, SC, [dul.IMPLICIT])], roles=[(SC, 0, 1)])
    check("a C-GET association with the SCP role for the storage class", t == 2, body[:16])
    if t != 2:
        return
    got, final = get_study(s, U + "1", 0x0001)   # each sub-operation answered with 0001H
    check("one sub-operation sent", len(got) == 1, got)
    ok = final is not None
    check("final C-GET-RSP: B000H, 0 failed, 1 warning, no Failed SOP Instance UID List",
          ok and dul.us(final[0x00000900]) == 0xB000 and dul.us(final.get(0x00001022, b"\0\0")) == 0 and
          dul.us(final.get(0x00001023, b"\0\0")) == 1 and dul.us(final[0x00000800]) == 0x0101,
          {hex(k): final[k] for k in final} if ok else None)
    release(s)

    # ---- Data Set Trailing Padding: the same instance with it and without ----
    # DCMTK's storescu leaves a file's (FFFC,FFFC) out when it sends it (as
    # PS3.10 allows), so a file stored by STOW-RS came back over C-STORE as
    # C000H "different content", and the other way round STOW-RS said 409
    def padded(sop, pixel=None):
        d = dsgen.sc(sop, U + "4", U + "4.1", "INTEROP^PAD", "IOP95", pixel=pixel)
        d.DataSetTrailingPadding = bytes(126)
        return d

    def bare(d):
        """d's data set without its padding, as a C-STORE carries it
        (explicit VR little endian)."""
        d = copy.deepcopy(d)
        del d.DataSetTrailingPadding
        return dsgen.implicit(d, False)

    s, t, body = associate([(1, SC, [dul.EXPLICIT])])
    check("a storage association, explicit VR", t == 2, body[:16])
    if t != 2:
        return
    a = padded(U + "4.1.1")
    st2, rep = v.stow([dsgen.part10(a)])
    check("STOW-RS of a file with Data Set Trailing Padding: 200", st2 == 200, (st2, rep))
    st, comment = store(s, 1, SC, U + "4.1.1", bare(a), 11)
    check("...the same instance by C-STORE without the padding: 0000H", st == 0, (hex(st), comment))
    b = padded(U + "4.1.2")
    st, comment = store(s, 1, SC, U + "4.1.2", bare(b), 13)
    check("C-STORE of another without the padding: 0000H", st == 0, (hex(st), comment))
    st2, rep = v.stow([dsgen.part10(b)])
    check("...the same instance by STOW-RS with the padding: 200", st2 == 200, (st2, rep))
    other = padded(U + "4.1.2", pixel=b"\1" + bytes(15))
    st2, rep = v.stow([dsgen.part10(other)])
    fails = (rep or {}).get("00081198", {}).get("Value", [])
    check("...a pixel changed, with the padding: STOW-RS 409, 0111H", st2 == 409 and len(fails) == 1 and
          fails[0].get("00081197", {}).get("Value") == [0x0111], (st2, rep))
    st, comment = store(s, 1, SC, U + "4.1.2", bare(other), 15)
    check("...and without it: C-STORE C000H, other content", st == 0xC000 and "other content" in comment,
          (hex(st), comment))
    release(s)
    st2, h, data = v.request("GET", "/dicom-web/studies/%s4/series/%s4.1/instances/%s4.1.1" % (U, U, U),
                             headers={"Accept": 'multipart/related; type="application/dicom"'})
    check("the first stored as received, its padding kept", st2 == 200 and dsgen.part10(a) in data,
          (st2, len(data)))

    s, t, body = associate([(1, dul.VERIFICATION, [dul.IMPLICIT])])
    check("the server still serves", t == 2)
    release(s)


def cleanup():
    finish(T, v)


TAP.run(main, cleanup)
