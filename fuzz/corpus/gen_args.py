#!/usr/bin/python3
"""gen_args.py: writes the seed corpus of args_fuzz (fuzz/corpus/args/):
command lines (the first byte sets the room for arguments and list values,
mod 4, plus one; then the arguments separated by NUL) with both value
forms, flags, lists, "--", "-", help, and each mistake: unknown options,
refused secrets, missing, empty and repeated values, a value for a flag,
too many arguments. Deterministic. Our own work, same licence as
dicomvault."""
import os

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "args")


def line(room, *args):
    return bytes([room]) + b"\x00".join(a.encode() for a in args)


def seeds():
    yield "good", line(1, "--vault", "/v", "--json", "in.dcm", "--out=/o", "--study", "1.2", "--study=1.3", "out")
    yield "dashes", line(1, "-", "--vault", "-v=x", "--", "--json")
    yield "eq_in_value", line(0, "--out=a=b")
    yield "help", line(0, "--vault", "v", "-h")
    yield "help_after_dashes", line(3, "--out", "--help", "--", "-h")
    yield "unknown", line(0, "--bogus")
    yield "unknown_value", line(0, "--tocken=s3cr3t-value")
    yield "secret", line(0, "--password", "hunter22")
    yield "secret_eq", line(0, "--password=hunter22")
    yield "missing", line(0, "in", "--vault")
    yield "empty", line(0, "--vault=")
    yield "twice", line(0, "--vault", "a", "--vault=b")
    yield "flag_value", line(0, "--json=yes")
    yield "list_full", line(0, "--study=1", "--study=2", "--study=3")
    yield "too_many", line(1, "a", "b", "c")
    yield "empty_args", line(2, "", "", "--")


def main():
    os.makedirs(HERE, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
