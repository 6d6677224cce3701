#!/usr/bin/python3
"""gen_admin.py: writes the seed corpus of admin_fuzz (fuzz/corpus/admin/):
the bodies of POST /api/users (first byte 0), POST /api/grants (1) and
POST /api/auth/break-glass (2), and the parameters of GET /api/audit (3:
user, action, patient, from, to separated by NUL; 0xff: absent). Good
requests, and bad ones: unknown, missing, mistyped and duplicate members,
bad names, roles, times, UIDs and reasons, deep nesting, trailing data.
Deterministic. Our own work, same licence as dicomvault."""
import json
import os

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "admin")


def body(kind, obj):
    return bytes([kind]) + (obj if isinstance(obj, bytes) else json.dumps(obj).encode())


def query(*fields):
    return b"\x03" + b"\x00".join(b"\xff" if f is None else f.encode() for f in fields)


def seeds():
    yield "user_good", body(0, {"username": "dr.who@x", "role": "radiologist"})
    yield "user_all", body(0, {"username": "a", "role": "admin", "collection": "onco", "expires": "+2d"})
    yield "user_date", body(0, {"username": "a", "role": "auditor", "expires": "2026-12-31T17:00:00+01:00"})
    yield "user_typo", body(0, {"username": "a", "role": "admin", "expiry": "+1d"})
    yield "user_bad_name", body(0, {"username": "x y", "role": "admin"})
    yield "user_bad_role", body(0, {"username": "a", "role": "king"})
    yield "user_null_coll", body(0, {"username": "a", "role": "admin", "collection": None})
    yield "user_dup", body(0, b'{"username":"a","username":"b","role":"admin"}')
    yield "user_nested", body(0, b'{"username":["a"],"role":{"x":[[[[[[[[1]]]]]]]]}}')
    yield "user_trailing", body(0, b'{"username":"a","role":"admin"} {}')
    yield "user_nul", body(0, b'{"username":"a\\u0000b","role":"admin"}')
    yield "grant_good", body(1, {"username": "api_made", "role": "physician", "scope": "*", "expires": "+1d",
                                 "purpose": "on call"})
    yield "grant_priors", body(1, {"username": "a", "role": "researcher", "scope": "study:1.2.3",
                                   "with_priors": True, "from": "@1800000000", "purpose": ""})
    yield "grant_patient", body(1, {"username": "a", "role": "physician", "scope": "patient:" + "ab" * 32})
    yield "grant_bad_bool", body(1, {"username": "a", "role": "physician", "scope": "*", "with_priors": "yes"})
    yield "grant_bad_time", body(1, {"username": "a", "role": "physician", "scope": "*", "from": "+1y"})
    yield "grant_long_purpose", body(1, {"username": "a", "role": "physician", "scope": "*", "purpose": "p" * 201})
    yield "glass_good", body(2, {"study": "1.2.840.1", "reason": "trauma bay 2, unconscious"})
    yield "glass_short", body(2, {"study": "1.2.840.1", "reason": "short"})
    yield "glass_control", body(2, {"study": "1.2.840.1", "reason": "line one\nline two"})
    yield "glass_bad_uid", body(2, {"study": "1..2", "reason": "long enough"})
    yield "glass_extra", body(2, {"study": "1.2", "reason": "long enough", "minutes": 600})
    yield "glass_utf8", body(2, {"study": "1.2", "reason": "\u00e9tat critique, \u00e9quipe SMUR"})
    yield "query_none", query(None, None, None, None, None)
    yield "query_all", query("dr.a", "break-glass", "PID 7", "2026-11-01", "+1h")
    yield "query_bad_user", query("x y", None, None, None, None)
    yield "query_bad_action", query(None, "Login", None, None, None)
    yield "query_empty_patient", query(None, None, "", None, None)
    yield "query_reversed", query(None, None, None, "2026-11-02", "2026-11-01")
    yield "query_epoch", query(None, None, None, "@0", "@1")


def main():
    os.makedirs(HERE, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
