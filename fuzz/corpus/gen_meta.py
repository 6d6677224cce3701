#!/usr/bin/python3
"""gen_meta.py: writes the seed corpus of meta_fuzz (fuzz/corpus/meta/):
the first bytes of stored objects as C-GET reads their File Meta
Information: a well-formed meta (padded with NUL or a space), one with a
data set after it, no Transfer Syntax UID, a group length past the input,
one over DIMSE_MAX_META, an element of another group, a long-length VR, a
transfer syntax that is not a UID. Built byte by byte (struct).
Deterministic. Our own work, same licence as dicomvault."""
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "meta")


def el(group, elem, vr, value):
    if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR"):
        return struct.pack("<HH2sHI", group, elem, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr, len(value)) + value


def part10(elems, glen=None, tail=b""):
    body = b"".join(elems)
    n = len(body) if glen is None else glen
    return bytes(128) + b"DICM" + el(2, 0, b"UL", struct.pack("<I", n)) + body + tail


def seeds():
    ver = el(2, 1, b"OB", b"\x00\x01")
    cls = el(2, 2, b"UI", b"1.2.840.10008.5.1.4.1.1.7\x00")
    ts = el(2, 0x10, b"UI", b"1.2.840.10008.1.2.1\x00")
    ds = el(8, 0x16, b"UI", b"1.2.840.10008.5.1.4.1.1.7\x00")
    yield "good", part10([ver, cls, ts])
    yield "good_with_dataset", part10([ver, cls, ts], tail=ds)
    yield "ts_space_padded", part10([ver, el(2, 0x10, b"UI", b"1.2.840.10008.1.2 ")])
    yield "no_ts", part10([ver, cls])
    yield "glen_past_end", part10([ver, ts], glen=4000)
    yield "glen_over_max", part10([ver, ts], glen=70000)
    yield "other_group", part10([ver, ts, el(8, 0x16, b"UI", b"1.2\x00")])
    yield "ts_not_uid", part10([el(2, 0x10, b"UI", b"1.2..3\x00")])
    yield "ts_inner_nul", part10([el(2, 0x10, b"UI", b"1.2\x00x")])
    yield "cut_inside_meta", part10([ver, ts])[:-6]
    yield "no_dicm", bytes(128) + b"DICX" + bytes(16)


def main():
    os.makedirs(HERE, exist_ok=True)
    for name, b in seeds():
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(b)


if __name__ == "__main__":
    main()
