"""fake_pacs.py PORT DEST_PORT [MODE]: a plain-TCP Query/Retrieve SCP
(lib/dul.py) that serves one association of `dicomvault import --from
SOURCE` and exits. Its C-FIND lists one study, one series, one instance
(pydicom's CT_small under UIDs of our own); its C-MOVE opens a second
association to DEST_PORT as SOURCE and C-STOREs, in MODE "hostile"
(the default), the listed instance, then one of another study and
patient that nobody asked for, then one of the listed study that C-FIND
did not list; in MODE "honest", the listed instance only; in MODE
"repeats", the same, each C-FIND answer given twice; in MODE
"stall-move", its C-MOVE sends pending responses with the same counts
(one every 5 ms) until the association ends, and in MODE "nocount"
pending responses without any count so (PS3.7 requires the counts; a
C-CANCEL is ignored); in MODE "stall-find", its
C-FIND sends pending responses without identifiers so; in MODE
"keepalive", its C-MOVE sends 1500 such pending responses (about 8
s), then stores the listed instance and ends with success; in MODE
"legacy", its C-FIND lists a second study whose UID has a component
with a leading zero (LEGACY_STUDY, as old archives made them; its series
and instance UIDs are plain), and its C-MOVE of that study stores its
instance; in MODE "nokey", each C-FIND answer is followed by a match
whose identifier lacks the level's unique key, the rest as "honest"; in
MODE "dup", its C-MOVE stores the listed instance twice (the same
bytes). Prints
"listening" once it listens, then one line per C-STORE with the status
it got ("store UID STATUS"). Imported by
nothing; run by tests/integration/import_hostile.py. Layer: tests."""
import io
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dul  # noqa: E402
import pydicom  # noqa: E402
from pydicom.data import get_testdata_file  # noqa: E402
from pydicom.filebase import DicomBytesIO  # noqa: E402
from pydicom.filewriter import write_dataset  # noqa: E402

CT = "1.2.840.10008.5.1.4.1.1.2"
U = "1.2.826.0.1.3680043.2.1143.90."
STUDY, SERIES, SOP = U + "1", U + "1.1", U + "1.1.1"
OTHER_STUDY, OTHER_SOP = U + "2", U + "2.1.1"   # another patient's
UNLISTED_SOP = U + "1.1.77"                      # in the listed study, not listed
LEGACY_STUDY = U + "05.3"                        # "05": a leading zero
LEGACY_SERIES, LEGACY_SOP = U + "3.1", U + "3.1.1"


def encode(ds):
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, True
    write_dataset(fp, ds)
    return fp.getvalue()


def ct(study, series, sop, pid):
    d = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    d.StudyInstanceUID, d.SeriesInstanceUID, d.SOPInstanceUID, d.PatientID = study, series, sop, pid
    del d.file_meta
    return d


def rq_contexts(body):
    """[(pcid, abstract syntax, [transfer syntaxes])] of an A-ASSOCIATE-RQ."""
    out, i = [], 68
    while i + 4 <= len(body):
        t, n = body[i], struct.unpack(">H", body[i + 2:i + 4])[0]
        if t == 0x20:
            item, j, ab, tss = body[i + 4:i + 4 + n], 4, None, []
            while j + 4 <= len(item):
                st, sn = item[j], struct.unpack(">H", item[j + 2:j + 4])[0]
                v = item[j + 4:j + 4 + sn].decode().rstrip("\0")
                if st == 0x30:
                    ab = v
                else:
                    tss.append(v)
                j += 4 + sn
            out.append((item[0], ab, tss))
        i += 4 + n
    return out


def assoc_ac(rq, ctxs):
    """An A-ASSOCIATE-AC accepting every context with implicit VR LE."""
    body = struct.pack(">HH", 1, 0) + rq[4:68] + dul._uid(None, 0x10, dul.APP_CONTEXT)
    for pcid, _, tss in ctxs:
        sub = dul._uid(None, 0x40, dul.IMPLICIT)
        result = 0 if dul.IMPLICIT in tss else 4
        body += struct.pack(">BxH", 0x21, 4 + len(sub)) + struct.pack(">BBBB", pcid, 0, result, 0) + sub
    ui = struct.pack(">BxHI", 0x51, 4, 16384) + dul._uid(None, 0x52, "1.2.3.4.5")
    return dul.pdu(2, body + struct.pack(">BxH", 0x50, len(ui)) + ui)


def send(s, pcid, cmd, data=None):
    s.sendall(dul.pdata(pcid, dul.command(cmd), True))
    if data is not None:
        for k in range(0, len(data), 16000):
            s.sendall(dul.pdata(pcid, data[k:k + 16000], False, k + 16000 >= len(data)))


def rsp(field, cls, msgid, status, has_data):
    return {0x00000002: cls, 0x00000100: field, 0x00000120: msgid, 0x00000800: 0x0000 if has_data else 0x0101,
            0x00000900: status}


def store_all(dest_port, source_ae, mode, move_msgid, study=STUDY):
    """The C-MOVE of study's sub-operations, on an association of our own;
    their count."""
    s = socket.create_connection(("127.0.0.1", dest_port), timeout=15)
    s.sendall(dul.assoc_rq(source_ae, "DICOMVAULT", [(1, CT, [dul.IMPLICIT])]))
    t, _ = dul.read_pdu(s)
    if t != 2:
        print("store association refused", flush=True)
        return 0
    objs = [ct(STUDY, SERIES, SOP, "PAT90")]
    if study == LEGACY_STUDY:
        objs = [ct(LEGACY_STUDY, LEGACY_SERIES, LEGACY_SOP, "PAT90")]
    if mode == "dup":
        objs += [ct(STUDY, SERIES, SOP, "PAT90")]
    if mode == "hostile":
        objs += [ct(OTHER_STUDY, OTHER_STUDY + ".1", OTHER_SOP, "OTHER90"), ct(STUDY, SERIES, UNLISTED_SOP, "PAT90")]
    m = dul.Messages(s)
    for i, d in enumerate(objs):
        send(s, 1, {0x00000002: CT, 0x00000100: 0x0001, 0x00000110: 100 + i, 0x00000700: 0, 0x00000800: 0,
                    0x00001000: d.SOPInstanceUID, 0x00001030: "DICOMVAULT", 0x00001031: move_msgid}, encode(d))
        c, _ = m.next()
        print("store %s %04X" % (d.SOPInstanceUID, dul.us(c[0x00000900])), flush=True)
    s.sendall(dul.RELEASE_RQ)
    dul.read_pdu(s)
    s.close()
    return len(objs)


def stall(c, pcid, cmd, most=100000):
    """The same pending response every 5 ms until the peer ends the
    association (at most `most` of them): how many were sent."""
    n = 0
    try:
        while n < most:
            send(c, pcid, cmd)
            n += 1
            time.sleep(0.005)
    except OSError:
        pass
    return n


def main():
    port, dest_port = int(sys.argv[1]), int(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else "hostile"
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    srv.settimeout(60)
    print("listening", flush=True)
    c, _ = srv.accept()
    c.settimeout(30)
    _, body = dul.read_pdu(c)
    source_ae = body[4:20].decode().strip()   # the called AE title: ours, as the importer knows us
    ctxs = rq_contexts(body)
    c.sendall(assoc_ac(body, ctxs))
    accepted = {ab: p for p, ab, tss in ctxs if dul.IMPLICIT in tss}
    m = dul.Messages(c)
    while True:
        msg = m.next()
        if msg[0] == "pdu":
            if msg[1] == 5:
                c.sendall(dul.pdu(6, bytes(4)))
            break
        cmd, data = msg
        field, msgid = dul.us(cmd[0x00000100]), dul.us(cmd[0x00000110])
        cls = cmd[0x00000002].decode().rstrip("\0")
        pcid = accepted[cls]
        if field == 0x0020:   # C-FIND
            q = pydicom.filereader.read_dataset(io.BytesIO(data), True, True)
            ds = pydicom.dataset.Dataset()
            ds.QueryRetrieveLevel = lvl = q.QueryRetrieveLevel.strip()
            legacy = q.get("StudyInstanceUID", "") == LEGACY_STUDY
            ds.StudyInstanceUID = LEGACY_STUDY if legacy else STUDY
            if lvl in ("SERIES", "IMAGE"):
                ds.SeriesInstanceUID = LEGACY_SERIES if legacy else SERIES
            if lvl == "IMAGE":
                ds.SOPInstanceUID = LEGACY_SOP if legacy else SOP
            if mode == "stall-find":
                print("stalling: %d pending" % stall(c, pcid, rsp(0x8020, cls, msgid, 0xFF00, False)), flush=True)
                break
            for _ in range(2 if mode == "repeats" else 1):
                send(c, pcid, rsp(0x8020, cls, msgid, 0xFF00, True), encode(ds))
            if mode == "legacy" and lvl == "STUDY":
                ds.StudyInstanceUID = LEGACY_STUDY
                send(c, pcid, rsp(0x8020, cls, msgid, 0xFF00, True), encode(ds))
            if mode == "nokey":   # a match the importer cannot name
                bad = pydicom.dataset.Dataset()
                bad.QueryRetrieveLevel = lvl
                bad.PatientID = "PAT90"
                send(c, pcid, rsp(0x8020, cls, msgid, 0xFF00, True), encode(bad))
            send(c, pcid, rsp(0x8020, cls, msgid, 0x0000, False))
        elif field == 0x0021 and mode == "keepalive":
            # an honest source during a slow sub-operation: pending
            # responses with the same counts for a while, then the store
            r = rsp(0x8021, cls, msgid, 0xFF00, False)
            r.update({0x00001020: 1, 0x00001021: 0, 0x00001022: 0, 0x00001023: 0})
            print("keepalive: %d pending" % stall(c, pcid, r, 1500), flush=True)
            n = store_all(dest_port, source_ae, "honest", msgid)
            r = rsp(0x8021, cls, msgid, 0x0000, False)
            r.update({0x00001021: n, 0x00001022: 0, 0x00001023: 0})
            send(c, pcid, r)
        elif field == 0x0021 and mode in ("stall-move", "nocount"):
            r = rsp(0x8021, cls, msgid, 0xFF00, False)
            if mode == "stall-move":
                r.update({0x00001020: 1, 0x00001021: 0, 0x00001022: 0, 0x00001023: 0})
            print("stalling: %d pending" % stall(c, pcid, r), flush=True)
            break
        elif field == 0x0021:   # C-MOVE
            q = pydicom.filereader.read_dataset(io.BytesIO(data), True, True)
            n = store_all(dest_port, source_ae, mode, msgid, q.StudyInstanceUID)
            r = rsp(0x8021, cls, msgid, 0x0000, False)
            r.update({0x00001021: n, 0x00001022: 0, 0x00001023: 0})
            send(c, pcid, r)
    c.close()


if __name__ == "__main__":
    main()
