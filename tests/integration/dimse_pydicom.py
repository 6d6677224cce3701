#!/usr/bin/python3
"""DIMSE command sets against pydicom: command sets written by pydicom
(implicit VR little endian, group 0000, CommandGroupLength computed here)
are parsed by dimse_tool (tests/tools) into the same values; command sets
built by dimse_tool are read by pydicom with the same values and a
CommandGroupLength equal to the bytes that follow it, every value of even
length. Covers C-ECHO, C-STORE, C-FIND, C-GET, C-MOVE (requests and
responses) and C-CANCEL. Prints "ok - NAME" / "not ok - NAME" lines."""
import io
import os
import subprocess
import sys
import warnings

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset

warnings.simplefilter("ignore")
DV = sys.argv[1]
TOOL = os.path.join(os.path.dirname(DV), "tools", "dimse_tool")

NUMS = {"field": "CommandField", "msg_id": "MessageID", "msg_id_rsp": "MessageIDBeingRespondedTo",
        "priority": "Priority", "data_set_type": "CommandDataSetType", "status": "Status",
        "error_id": "ErrorID", "remaining": "NumberOfRemainingSuboperations",
        "completed": "NumberOfCompletedSuboperations", "failed": "NumberOfFailedSuboperations",
        "warning": "NumberOfWarningSuboperations", "move_orig_id": "MoveOriginatorMessageID"}
STRS = {"sop_class": "AffectedSOPClassUID", "sop_instance": "AffectedSOPInstanceUID",
        "move_dest": "MoveDestination", "move_orig_ae": "MoveOriginatorApplicationEntityTitle",
        "error_comment": "ErrorComment"}

CT = "1.2.840.10008.5.1.4.1.1.2"
CASES = {
    "c_echo_rq": dict(field=0x0030, msg_id=1, sop_class="1.2.840.10008.1.1", data_set_type=0x0101),
    "c_echo_rsp": dict(field=0x8030, msg_id_rsp=1, sop_class="1.2.840.10008.1.1", data_set_type=0x0101, status=0),
    "c_store_rq": dict(field=0x0001, msg_id=77, sop_class=CT, priority=2, data_set_type=0,
                       sop_instance="1.2.826.0.1.3680043.8.498.1", move_orig_ae="MOVESCU", move_orig_id=5),
    "c_store_rsp": dict(field=0x8001, msg_id_rsp=77, sop_class=CT, data_set_type=0x0101, status=0xA900,
                        sop_instance="1.2.826.0.1.3680043.8.498.1", error_comment="Patient ID missing",
                        offending=[0x00100020]),
    "c_find_rq": dict(field=0x0020, msg_id=2, sop_class="1.2.840.10008.5.1.4.1.2.2.1", priority=0,
                      data_set_type=0),
    "c_find_rsp": dict(field=0x8020, msg_id_rsp=2, sop_class="1.2.840.10008.5.1.4.1.2.2.1", data_set_type=0,
                       status=0xFF00),
    "c_move_rq": dict(field=0x0021, msg_id=3, sop_class="1.2.840.10008.5.1.4.1.2.2.2", priority=1,
                      data_set_type=0, move_dest="STORE_SCP"),
    "c_move_rsp": dict(field=0x8021, msg_id_rsp=3, sop_class="1.2.840.10008.5.1.4.1.2.2.2",
                       data_set_type=0x0101, status=0xB000, remaining=0, completed=9, failed=1, warning=2),
    "c_get_rq": dict(field=0x0010, msg_id=4, sop_class="1.2.840.10008.5.1.4.1.2.2.3", priority=0,
                     data_set_type=0),
    "c_get_rsp": dict(field=0x8010, msg_id_rsp=4, sop_class="1.2.840.10008.5.1.4.1.2.2.3", data_set_type=0x0101,
                      status=0xFF00, remaining=3, completed=1, failed=0, warning=0),
    "c_cancel_rq": dict(field=0x0FFF, msg_id_rsp=2, data_set_type=0x0101),
}


def pydicom_bytes(case):
    ds = Dataset()
    for k, v in case.items():
        if k in NUMS:
            setattr(ds, NUMS[k], v)
        elif k in STRS:
            setattr(ds, STRS[k], v)
        elif k == "offending":
            ds.OffendingElement = v
    body = DicomBytesIO()
    body.is_little_endian = True
    body.is_implicit_VR = True
    write_dataset(body, ds)
    rest = body.getvalue()
    head = Dataset()
    head.CommandGroupLength = len(rest)
    out = DicomBytesIO()
    out.is_little_endian = True
    out.is_implicit_VR = True
    write_dataset(out, head)
    return out.getvalue() + rest


def tool(mode, data):
    r = subprocess.run([TOOL, mode], input=data, capture_output=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"dimse_tool {mode}: {r.stderr.decode(errors='replace')}")
    return r.stdout


def parse_lines(out):
    got = {}
    for line in out.decode().splitlines():
        k, _, v = line.partition(" ")
        if k in NUMS:
            got[k] = int(v)
        elif k == "offending":
            got.setdefault("offending", []).append(int(v, 16))
        else:
            got[k] = v.strip() if k == "check" else v
    return got


def check(name, ok, why=""):
    print(("ok - " if ok else "not ok - ") + name)
    if not ok:
        print(f"# {name}: {why}", file=sys.stderr)


def main():
    for name, case in CASES.items():
        # pydicom writes, we parse
        got = parse_lines(tool("parse", pydicom_bytes(case)))
        want = dict(case)
        bad = [k for k in want if got.get(k) != want[k]]
        extra = [k for k in got if k not in want and k != "check"]
        check(f"parse_{name}", not bad and not extra and got.get("check") == "OK",
              f"differs in {bad}, extra {extra}, check {got.get('check')}")
        # we build, pydicom reads
        lines = "".join(f"{k} {v}\n" for k, v in case.items() if k != "offending")
        lines += "".join(f"offending {t:08x}\n" for t in case.get("offending", []))
        raw = tool("build", lines.encode())
        ds = read_dataset(io.BytesIO(raw), is_implicit_VR=True, is_little_endian=True)
        bad = []
        if ds.CommandGroupLength != len(raw) - 12:
            bad.append("CommandGroupLength")
        for elem in ds:
            if elem.tag.group != 0:
                bad.append(f"group {elem.tag.group:04x}")
        off = 0
        while off + 8 <= len(raw):
            length = int.from_bytes(raw[off + 4:off + 8], "little")
            if length % 2:
                bad.append(f"odd length at {off}")
            off += 8 + length
        for k, v in case.items():
            if k in NUMS and getattr(ds, NUMS[k], None) != v:
                bad.append(k)
            if k in STRS and str(getattr(ds, STRS[k], "")).strip() != v:
                bad.append(k)
            if k == "offending":
                val = ds.OffendingElement
                vals = [val] if isinstance(val, int) else list(val)
                if [int(t) for t in vals] != v:
                    bad.append(k)
        check(f"build_{name}", not bad, f"pydicom reads other values: {bad}")
        # and our bytes parse back identical to pydicom's view of them
        check(f"same_bytes_{name}", raw == pydicom_bytes(case),
              "our encoding differs from pydicom's (element order, padding)")


main()
