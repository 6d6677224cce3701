"""login_race.py DV: the address lockout of POST /api/auth/login against a
spray of concurrent guesses (SPEC section 5: lockout after 5 failures).
Fifteen accounts, fourteen wrong passwords and one right one, all sent at
once from one address (127.0.0.9): the password checks queue (two Argon2id
at a time), so most of them end after the address was locked by the
failures of the first. Those are refused as locked out (429), their
outcome not told: at most lockout_failures plus the checks running beside
them are answered 401 (before session 22 all fourteen were, and the right
password logged in while the address was locked). Afterwards the address
is locked; the audit trail has the lockout. Run as
/usr/bin/python3 tests/integration/login_race.py build/check/dicomvault.
Layer: tests."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import http.client
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from dvserver import USER_PASSWORD, Vault, finish  # noqa: E402
from tap import Tap  # noqa: E402

DV = sys.argv[1] if len(sys.argv) > 1 else "build/check/dicomvault"
TAP = Tap("login_race")
check, skip = TAP.check, TAP.skip
if shutil.which("oathtool") is None:
    skip("no oathtool")
N = 15
FAILURES = 5          # [auth] lockout_failures (the default)
PWHASH_AT_ONCE = 2    # AUTH_PWHASH_CONCURRENCY
ADDR = "127.0.0.9"
T = tempfile.mkdtemp(prefix="dv-lrace.")
V = None


def cleanup():
    finish(T, V)


def main():
    global V
    V = Vault(DV, T)
    names = ["r%02d" % i for i in range(N)]
    secrets = {}
    for n in names:
        ok, secrets[n], err = V.add_user(n, "physician")
        if not check("user add " + n, ok, err):
            return
    V.serve()
    got = {}
    bar = threading.Barrier(N)

    def one(i):
        user = names[i]
        pw = USER_PASSWORD if i == N - 1 else "guess-%d" % i
        code = subprocess.run(["oathtool", "--totp", "-b", secrets[user]], capture_output=True,
                              text=True).stdout.strip()
        c = http.client.HTTPSConnection("127.0.0.1", V.port, context=V.ctx, timeout=60, source_address=(ADDR, 0))
        try:
            c.connect()
            bar.wait()
            c.request("POST", "/api/auth/login", json.dumps({"username": user, "password": pw, "totp": code}),
                      {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            got[i] = r.status
        except (OSError, threading.BrokenBarrierError) as e:
            got[i] = str(e)
        finally:
            c.close()

    ts = [threading.Thread(target=one, args=(i,)) for i in range(N)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    seen = Counter(got.values())
    print("# statuses: %s; the right password: %s" % (dict(seen), got.get(N - 1)))
    check("every attempt answered (401 or 429, or 200 for the right password)",
          len(got) == N and all(s in (200, 401, 429) for s in got.values()), got)
    check("at most %d + %d wrong passwords told apart (401): the rest refused as locked out"
          % (FAILURES, PWHASH_AT_ONCE), seen[401] <= FAILURES + PWHASH_AT_ONCE and seen[429] >= 1, dict(seen))
    st, _, _ = V.request("POST", "/api/auth/login", json.dumps({"username": names[0], "password": "x",
                                                                "totp": "123456"}),
                         {"Content-Type": "application/json"}, auth=False)
    # V.request goes from 127.0.0.1: another address, not locked
    check("another address is not locked out by it (401 for a wrong password)", st == 401, st)
    recs = [json.loads(line) for line in open(os.path.join(V.dir, "audit", "audit.log"))]
    locks = [r for r in recs if r.get("action") == "lockout" and (r.get("actor") or {}).get("addr", "").startswith(ADDR)]
    check("the address lockout is audited", len(locks) >= 1, len(locks))
    ok = [r for r in recs if r.get("action") == "login" and (r.get("actor") or {}).get("addr", "").startswith(ADDR)]
    if ok:
        first_lock = min(r["seq"] for r in locks) if locks else 0
        check("a login that succeeded came before the lockout", all(r["seq"] < first_lock for r in ok),
              [(r["seq"], first_lock) for r in ok])


TAP.run(main, cleanup)
