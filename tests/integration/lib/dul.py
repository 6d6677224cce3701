"""A minimal DICOM upper layer requestor for the integration tests (PS3.8
section 9.3, PS3.7 annex E), pure Python over TLS (ssl, the peer's client
certificate): A-ASSOCIATE-RQ, P-DATA-TF, A-RELEASE-RQ, implicit VR little
endian command sets and identifiers, and raw bytes for the bad-input tests.
No validation beyond what the tests need. Not a test itself (tests/run.sh
runs only files directly in tests/integration/)."""
import socket
import ssl
import struct

IMPLICIT = "1.2.840.10008.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"
VERIFICATION = "1.2.840.10008.1.1"
FIND_PATIENT = "1.2.840.10008.5.1.4.1.2.1.1"
FIND_STUDY = "1.2.840.10008.5.1.4.1.2.2.1"
GET_STUDY = "1.2.840.10008.5.1.4.1.2.2.3"
APP_CONTEXT = "1.2.840.10008.3.1.1.1"


def connect(port, cert, key, cafile, host="127.0.0.1", timeout=15):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(cafile)
    ctx.check_hostname = False
    ctx.load_cert_chain(cert, key)
    raw = socket.create_connection((host, port), timeout=timeout)
    return ctx.wrap_socket(raw)


def _uid(b, t, uid):
    v = uid.encode()
    return struct.pack(">BxH", t, len(v)) + v


def user_identity(id_type, primary, secondary=b"", positive=False):
    """A user identity negotiation sub-item (58H, PS3.7 D.3.3.7.1): type 1
    user name, 2 user name and passcode, ...; positive: a positive response
    is requested."""
    p = primary.encode() if isinstance(primary, str) else primary
    q = secondary.encode() if isinstance(secondary, str) else secondary
    v = struct.pack(">BBH", id_type, 1 if positive else 0, len(p)) + p + struct.pack(">H", len(q)) + q
    return struct.pack(">BxH", 0x58, len(v)) + v


def assoc_rq(calling, called, contexts, max_len=16384, roles=(), identity=None):
    """contexts: [(pcid, abstract, [ts, ...])]; roles: [(sop class, scu, scp)]
    (SCP/SCU role selection sub-items); identity: the bytes of a user
    identity sub-item (user_identity())."""
    body = struct.pack(">HH", 1, 0) + called.ljust(16).encode() + calling.ljust(16).encode() + bytes(32)
    body += _uid(None, 0x10, APP_CONTEXT)
    for pcid, abstract, tss in contexts:
        sub = _uid(None, 0x30, abstract) + b"".join(_uid(None, 0x40, t) for t in tss)
        body += struct.pack(">BxH", 0x20, 4 + len(sub)) + struct.pack(">BBBB", pcid, 0, 0, 0) + sub
    ui = struct.pack(">BxHI", 0x51, 4, max_len) + _uid(None, 0x52, "1.2.3.4.5")
    for uid, scu, scp in roles:
        v = uid.encode()
        ui += struct.pack(">BxHH", 0x54, 4 + len(v), len(v)) + v + struct.pack(">BB", scu, scp)
    if identity is not None:
        ui += identity
    body += struct.pack(">BxH", 0x50, len(ui)) + ui
    return pdu(1, body)


def user_items(body):
    """{sub-item type: [value, ...]} of the user information item of an
    A-ASSOCIATE-AC (or -RQ) body."""
    i, out = 68, {}
    while i + 4 <= len(body):
        t, n = struct.unpack(">BxH", body[i:i + 4])
        if t == 0x50:
            j = i + 4
            while j + 4 <= i + 4 + n:
                st, sn = struct.unpack(">BxH", body[j:j + 4])
                out.setdefault(st, []).append(body[j + 4:j + 4 + sn])
                j += 4 + sn
        i += 4 + n
    return out


def pdu(t, body):
    return struct.pack(">BxI", t, len(body)) + body


def pdata(pcid, data, command, last=True):
    """One P-DATA-TF with one PDV."""
    mch = (1 if command else 0) | (2 if last else 0)
    pdv = struct.pack(">IBB", len(data) + 2, pcid, mch) + data
    return pdu(4, pdv)


RELEASE_RQ = pdu(5, bytes(4))


def elem(tag, value):
    if isinstance(value, int):
        v = struct.pack("<H", value)
    else:
        v = value.encode() if isinstance(value, str) else value
        if len(v) & 1:
            v += b"\0" if isinstance(value, str) and value[:1].isdigit() else b" "
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(v)) + v


def command(elems):
    """elems: {tag: int (US) or str}; the group length is added."""
    body = b"".join(elem(t, elems[t]) for t in sorted(elems))
    return elem(0x00000000, struct.pack("<I", len(body))) + body


def dataset(elems):
    """An implicit VR little endian data set: {tag: str or bytes}."""
    return b"".join(elem(t, elems[t]) for t in sorted(elems))


def read_exact(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += d
    return b


def read_pdu(s):
    h = read_exact(s, 6)
    t, n = struct.unpack(">BxI", h)
    return t, read_exact(s, n)


def pdvs(body):
    """[(pcid, command, last, data)] of a P-DATA-TF body."""
    out, i = [], 0
    while i < len(body):
        n = struct.unpack(">I", body[i:i + 4])[0]
        out.append((body[i + 4], bool(body[i + 5] & 1), bool(body[i + 5] & 2), body[i + 6:i + 4 + n]))
        i += 4 + n
    return out


def parse_command(b):
    """{tag: bytes} of an implicit VR LE command set."""
    out, i = {}, 0
    while i + 8 <= len(b):
        g, e, n = struct.unpack("<HHI", b[i:i + 8])
        out[(g << 16) | e] = b[i + 8:i + 8 + n]
        i += 8 + n
    return out


def us(v):
    return struct.unpack("<H", v)[0]


class Messages:
    """Reassembles P-DATA into messages: (command dict, data set bytes or None)."""

    def __init__(self, s):
        self.s = s

    def next(self):
        cmd, data = b"", b""
        parsed = None
        while True:
            t, body = read_pdu(self.s)
            if t != 4:
                return ("pdu", t, body)
            for _, is_cmd, last, d in pdvs(body):
                if is_cmd:
                    cmd += d
                    if last:
                        parsed = parse_command(cmd)
                        if us(parsed[0x00000800]) == 0x0101:
                            return (parsed, None)
                else:
                    data += d
                    if last:
                        return (parsed, data)
