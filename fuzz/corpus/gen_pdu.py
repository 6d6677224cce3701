#!/usr/bin/python3
"""gen_pdu.py: writes the seed corpora of pdu_fuzz and dimse_fuzz
(fuzz/corpus/pdu/, fuzz/corpus/dimse/) byte by byte from the layouts of
PS3.8 9.3 and PS3.7 annex E. Deterministic; needs only the standard
library. Our own work, same licence as dicomvault."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
APP = b"1.2.840.10008.3.1.1.1"
ECHO = b"1.2.840.10008.1.1"
CT = b"1.2.840.10008.5.1.4.1.1.2"
FIND = b"1.2.840.10008.5.1.4.1.2.2.1"
MOVE = b"1.2.840.10008.5.1.4.1.2.2.2"
IMPL = b"1.2.840.10008.1.2"
EXPL = b"1.2.840.10008.1.2.1"


def item(t, v):
    return struct.pack(">BBH", t, 0, len(v)) + v


def pdu(t, body):
    return struct.pack(">BBI", t, 0, len(body)) + body


def ae(s):
    return s.ljust(16, b" ")


def pc_rq(pid, abstract, tss):
    return item(0x20, bytes([pid, 0, 0, 0]) + item(0x30, abstract) + b"".join(item(0x40, t) for t in tss))


def pc_ac(pid, result, ts):
    return item(0x21, bytes([pid, 0, result, 0]) + item(0x40, ts))


def user_info(max_len=16384, extra=b""):
    return item(0x50, item(0x51, struct.pack(">I", max_len)) + item(0x52, b"1.2.826.0.1.3680043.2.1") +
                item(0x55, b"SEEDGEN_1") + extra)


def assoc(t, called, calling, pcs, ui):
    return pdu(t, struct.pack(">HH", 1, 0) + ae(called) + ae(calling) + bytes(32) + item(0x10, APP) + pcs + ui)


def identity(kind, primary, secondary=b"", resp=1):
    return item(0x58, bytes([kind, resp]) + struct.pack(">H", len(primary)) + primary +
                struct.pack(">H", len(secondary)) + secondary)


def role(uid, scu, scp):
    return item(0x54, struct.pack(">H", len(uid)) + uid + bytes([scu, scp]))


def elem(el, v):
    return struct.pack("<HHI", 0, el, len(v)) + v


def us(el, v):
    return elem(el, struct.pack("<H", v))


def ui(el, s):
    return elem(el, s + (b"\0" if len(s) % 2 else b""))


def text(el, s):
    return elem(el, s + (b" " if len(s) % 2 else b""))


def command(*elems):
    body = b"".join(elems)
    return elem(0, struct.pack("<I", len(body))) + body


def pdv(pid, mch, frag):
    return struct.pack(">I", len(frag) + 2) + bytes([pid, mch]) + frag


def pdata(*pdvs):
    return pdu(0x04, b"".join(pdvs))


RELEASE_RQ = pdu(0x05, bytes(4))
RELEASE_RP = pdu(0x06, bytes(4))

ECHO_RQ = command(ui(0x0002, ECHO), us(0x0100, 0x0030), us(0x0110, 1), us(0x0800, 0x0101))
ECHO_RSP = command(ui(0x0002, ECHO), us(0x0100, 0x8030), us(0x0120, 1), us(0x0800, 0x0101), us(0x0900, 0))
STORE_RQ = command(ui(0x0002, CT), us(0x0100, 0x0001), us(0x0110, 7), us(0x0700, 0), us(0x0800, 0),
                   ui(0x1000, b"1.2.3.4.5.6.7.8.9"), text(0x1030, b"MOVER"), us(0x1031, 3))
STORE_RSP = command(ui(0x0002, CT), us(0x0100, 0x8001), us(0x0120, 7), us(0x0800, 0x0101), us(0x0900, 0xA900),
                    elem(0x0901, struct.pack("<HH", 0x0010, 0x0010)), text(0x0902, b"bad patient"),
                    ui(0x1000, b"1.2.3.4.5.6.7.8.9"))
FIND_RQ = command(ui(0x0002, FIND), us(0x0100, 0x0020), us(0x0110, 2), us(0x0700, 2), us(0x0800, 0))
FIND_RSP = command(ui(0x0002, FIND), us(0x0100, 0x8020), us(0x0120, 2), us(0x0800, 0), us(0x0900, 0xFF00))
MOVE_RQ = command(ui(0x0002, MOVE), us(0x0100, 0x0021), us(0x0110, 3), text(0x0600, b"DEST_AE"),
                  us(0x0700, 0), us(0x0800, 0))
MOVE_RSP = command(ui(0x0002, MOVE), us(0x0100, 0x8021), us(0x0120, 3), us(0x0800, 0x0101), us(0x0900, 0xFF00),
                   us(0x1020, 5), us(0x1021, 2), us(0x1022, 1), us(0x1023, 0))
GET_RQ = command(ui(0x0002, b"1.2.840.10008.5.1.4.1.2.2.3"), us(0x0100, 0x0010), us(0x0110, 4), us(0x0700, 1),
                 us(0x0800, 0))
CANCEL_RQ = command(us(0x0100, 0x0FFF), us(0x0120, 2), us(0x0800, 0x0101))
RETIRED = command(elem(0x0001, bytes(4)), us(0x0100, 0x0030), us(0x0110, 9), us(0x0800, 0x0101),
                  elem(0x4000, b"AB"))
BAD_GROUP_LENGTH = ECHO_RQ[:8] + struct.pack("<I", 99) + ECHO_RQ[12:]
DUPLICATE = command(us(0x0100, 0x0030), us(0x0110, 1), us(0x0110, 2))

RQ_ECHO = assoc(0x01, b"DICOMVAULT", b"ECHOSCU", pc_rq(1, ECHO, [IMPL]), user_info())
RQ_STORE = assoc(0x01, b"DICOMVAULT", b"STORESCU",
                 pc_rq(1, ECHO, [IMPL]) + pc_rq(3, CT, [b"1.2.840.10008.1.2.4.50", EXPL, IMPL]) +
                 pc_rq(5, b"1.2.3.4", [IMPL]), user_info(4096))
RQ_IDENT = assoc(0x01, b"DICOMVAULT", b"GETSCU", pc_rq(1, ECHO, [IMPL]) + pc_rq(3, CT, [EXPL]),
                 user_info(0, role(CT, 1, 1) + item(0x53, struct.pack(">HH", 0, 1)) +
                           item(0x56, struct.pack(">H", len(CT)) + CT + b"\x01\x00\x01") +
                           item(0x5F, b"unknown") + identity(2, b"alice", b"correct horse")))
RQ_JWT = assoc(0x01, b"DICOMVAULT", b"JWTSCU", pc_rq(1, ECHO, [IMPL]),
               user_info(16384, identity(5, b"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2ln")))
AC = assoc(0x02, b"DICOMVAULT", b"FUZZSCU", pc_ac(1, 0, IMPL) + pc_ac(3, 0, EXPL), user_info(8192))
AC_REJECTED_CTX = assoc(0x02, b"DICOMVAULT", b"FUZZSCU", pc_ac(1, 0, IMPL) + item(0x21, bytes([3, 0, 3, 0]) +
                        item(0x40, b"")), user_info(8192, item(0x59, struct.pack(">H", 0))))

data = bytes(range(256)) * 12

seeds = {
    "pdu": {
        "rq_echo.bin": RQ_ECHO,
        "rq_identity_roles.bin": RQ_IDENT,
        "rq_jwt.bin": RQ_JWT,
        "session_echo.bin": RQ_ECHO + pdata(pdv(1, 3, ECHO_RQ)) + RELEASE_RQ,
        "session_store.bin": RQ_STORE + pdata(pdv(3, 1, STORE_RQ[:20])) + pdata(pdv(3, 3, STORE_RQ[20:])) +
            pdata(pdv(3, 0, data[:1000]), pdv(3, 0, data[1000:2000])) + pdata(pdv(3, 2, data[2000:])) +
            pdata(pdv(1, 3, ECHO_RQ)) + RELEASE_RQ,
        "session_abort.bin": RQ_ECHO + pdata(pdv(1, 3, ECHO_RQ)) + pdu(0x07, bytes([0, 0, 2, 1])),
        "ac_session.bin": AC + pdata(pdv(1, 3, ECHO_RSP)) + pdata(pdv(3, 3, STORE_RSP)) + RELEASE_RP,
        "ac_collision.bin": AC + RELEASE_RQ + RELEASE_RP,
        "ac_rejected_context.bin": AC_REJECTED_CTX,
        "rj.bin": pdu(0x03, bytes([0, 1, 1, 7])),
        "abort.bin": pdu(0x07, bytes([0, 0, 2, 6])),
        "release_rq.bin": RELEASE_RQ,
        "bad_called_ae.bin": assoc(0x01, b"SOMEONE_ELSE", b"ECHOSCU", pc_rq(1, ECHO, [IMPL]), user_info()),
        "bad_pdu_too_long.bin": RQ_ECHO + struct.pack(">BBI", 4, 0, 1 << 20),
        "bad_unknown_type.bin": pdu(0x09, b"xx"),
        "bad_pdv_length.bin": RQ_ECHO + pdu(0x04, struct.pack(">I", 100) + b"\x01\x03"),
        "bad_item_past_parent.bin": RQ_ECHO[:101] + b"\xff" + RQ_ECHO[102:],
    },
    "dimse": {
        "echo_rq.bin": ECHO_RQ, "echo_rsp.bin": ECHO_RSP, "store_rq.bin": STORE_RQ, "store_rsp.bin": STORE_RSP,
        "find_rq.bin": FIND_RQ, "find_rsp.bin": FIND_RSP, "move_rq.bin": MOVE_RQ, "move_rsp.bin": MOVE_RSP,
        "get_rq.bin": GET_RQ, "cancel_rq.bin": CANCEL_RQ, "retired_elements.bin": RETIRED,
        "bad_group_length.bin": BAD_GROUP_LENGTH, "bad_duplicate.bin": DUPLICATE,
    },
}

for d, files in seeds.items():
    os.makedirs(os.path.join(HERE, d), exist_ok=True)
    for name, b in files.items():
        with open(os.path.join(HERE, d, name), "wb") as f:
            f.write(b)
