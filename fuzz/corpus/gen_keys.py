#!/usr/bin/python3
"""gen_keys.py: writes the seed corpus of keys_fuzz (fuzz/corpus/keys/),
each file a mode byte and its payload as keys_fuzz.c reads them: master
key files (good, wrong version, cut), wrapped keys (garbage, the real one
unchanged, one byte flipped, extended, cut), passphrase records (cheap
parameters, a wrong magic, an absurd cost), changes to the real one and
cuts of it.
Deterministic. Our own work, same licence as dicomvault."""
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keys")


def seeds():
    key = bytes(range(32))
    yield "mk_good", b"\x00" + b"DVMK\x01\x00\x00\x00" + key
    yield "mk_version2", b"\x00" + b"DVMK\x02\x00\x00\x00" + key
    yield "mk_cut", b"\x00" + b"DVMK\x01\x00\x00\x00" + key[:31]
    yield "wrap_garbage", b"\x01" + b"DVWK\x01\x01\x00\x00" + bytes(48 + 32)
    yield "wrap_real", b"\x02"
    yield "wrap_flip_tag", b"\x02" + bytes(87) + b"\x01"
    yield "wrap_flip_header", b"\x02" + b"\x00\x00\x00\x00\x02"
    yield "wrap_extended", b"\x02" + bytes(88) + b"\x00"
    rec = b"DVKP\x01\x02\x00\x00" + struct.pack(">IQ", 1, 8192) + bytes(16) + bytes(8)
    yield "pass_cheap", b"\x03" + rec
    yield "pass_magic", b"\x03" + b"XXKP" + rec[4:]
    yield "pass_costly", b"\x03" + rec[:8] + struct.pack(">IQ", 4, 1 << 40) + rec[20:]
    yield "pass_real", b"\x04"
    yield "pass_flip_salt", b"\x04" + bytes(20) + b"\x80"
    yield "pass_ops2", b"\x04" + bytes(11) + b"\x03"
    yield "wrap_cut", b"\x05\x57"
    yield "pass_cut", b"\x06\x2b"


def main():
    os.makedirs(HERE, exist_ok=True)
    for name, b in seeds():
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(b)


if __name__ == "__main__":
    main()
