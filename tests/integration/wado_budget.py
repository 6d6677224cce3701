"""wado_budget.py DV: answers built whole in memory (here rendered
images) that clients ask for and do not read. Each is held until it is
read, so together they count against HTTP_SEND_BUDGET (256 MiB), and each
user's against a quarter of it (HTTP_SEND_USER_SHARE): with a rendered
answer of about 50 MB, one user gets as many as fit in the share and then
503 (before, one user could hold the whole budget against everyone), other
users go on until the budget is full, and the next one is answered 503
problem+json with Retry-After (before the budget, each such connection held
its copy for ever: 64 of them could hold 16 GB). Each refused answer's
success record is followed by a failure record (it was not sent). Once
they close, the same request is answered 200 again. One rendered answer
over RENDER_MAX_ANSWER (64 MiB) is a 400 that says to ask for fewer frames
(it was a 500).

Run as /usr/bin/python3 tests/integration/wado_budget.py build/check/dicomvault.
Prints ok/not ok lines; exits 1 if any check failed. Layer: tests."""
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import Tap  # noqa: E402

TAP = Tap("wado_budget")
check, skip = TAP.check, TAP.skip
DV = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/check/dicomvault")
try:
    import dsgen
    from dvserver import Vault, finish
except ImportError:
    skip("no pydicom")

P = "1.2.826.0.1.3680043.2.1143.94."
BUDGET = 256 << 20
SHARE = BUDGET // 4
USERS = 6
SIDE = 1024
T = tempfile.mkdtemp(prefix="dv-wadobudget.")
v = None
held = []


def path(frames):
    return "/dicom-web/studies/%s1/series/%s1.1/instances/%s1.1.1/frames/%s/rendered?quality=100" % (
        P, P, P, ",".join(["1"] * frames))


def ask(frames, token=None):
    """The request sent and the status line read, the rest left unread:
    (socket, status)."""
    s = socket.create_connection(("127.0.0.1", v.port), timeout=120)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    t = v.ctx.wrap_socket(s, server_hostname="localhost")
    t.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n"
               % (path(frames), token or v.token)).encode())
    head = t.recv(600)
    line = head.split(b"\r\n")[0].decode(errors="replace")
    return t, int(line.split()[1]) if len(line.split()) > 1 else 0, head


def rss_mb():
    for line in open("/proc/%d/status" % v.proc.pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return -1


def main():
    global v
    v = Vault(DV, T)
    for i in range(USERS):
        ok, _, err = v.add_user("reader%d" % i, "radiologist")
        check("user reader%d added" % i, ok, err)
    v.serve()
    v.login()
    tokens = []
    for i in range(USERS):
        p = subprocess.run([DV, "token", "create", "--user", "reader%d" % i, "--vault", v.dir, "--json"],
                           capture_output=True, text=True)
        tokens.append(json.loads(p.stdout)["token"] if p.returncode == 0 else None)
    check("an API token for each", all(tokens), tokens)
    rnd = random.Random(94)
    noise = bytes(rnd.getrandbits(8) for _ in range(SIDE * SIDE))
    st, j = v.stow([dsgen.part10(dsgen.sc(P + "1.1.1", P + "1", P + "1.1", "BUDGET^TEST", "BUD94", rows=SIDE,
                                          cols=SIDE, pixel=noise))])
    check("a 1024x1024 noise image stored", st == 200, (st, j))
    st, h, body = v.request("GET", path(1))
    one = len(body)
    check("one frame rendered (JPEG, quality 100): %d bytes" % one, st == 200 and one > 100000, (st, one))
    frames = max(1, min(1024, (50 << 20) // max(one, 1)))
    size = frames * one
    # one user: the share
    mine = SHARE // size
    for i in range(mine):
        t, st, head = ask(frames, tokens[0])
        held.append(t)
        if st != 200:
            break
    check("one user: %d rendered answer(s) of ~%d MB left unread, each 200" % (mine, size >> 20),
          len(held) == mine and st == 200, (len(held), st, head[:200]))
    t, st, head = ask(frames, tokens[0])
    held.append(t)
    check("the same user's next one: 503 problem+json with Retry-After, saying it is theirs",
          st == 503 and b"application/problem+json" in head and b"Retry-After" in head, head[:300])
    refused = 1
    # the others, until the whole budget is held
    fit = BUDGET // size
    n200, u = mine, 1
    while n200 < fit and u < USERS:
        for i in range(mine):
            if n200 == fit:
                break
            t, st, head = ask(frames, tokens[u])
            held.append(t)
            n200 += st == 200
            if st != 200:
                break
        u += 1
    check("other users meanwhile: answered 200 until %d answers are held" % fit, n200 == fit, (n200, st))
    t, st, head = ask(frames, tokens[USERS - 1] if u < USERS else v.token)
    held.append(t)
    refused += 1
    check("one more while they wait (the budget full): 503 problem+json with Retry-After",
          st == 503 and b"application/problem+json" in head and b"Retry-After" in head, head[:300])
    log = open(os.path.join(v.dir, "audit", "audit.log")).read().splitlines()
    notsent = [json.loads(x) for x in log if "not sent: 503" in x]
    check("each refused answer: a failure record of the same objects after its success record",
          len(notsent) == refused and all(r["outcome"] == "failure" and r["objects"].get("sop") for r in notsent),
          notsent)
    print("# resident memory while they are held: %d MB (under ASan, its quarantine adds up to 256 MB)" % rss_mb())
    for t in held:
        t.close()
    held.clear()
    time.sleep(2)
    t, st, head = ask(frames)
    t.close()
    check("once they are closed, the same request is answered 200", st == 200, head[:200])
    st, h, body = v.request("GET", path(max(frames, (70 << 20) // max(one, 1))))
    check("a rendered answer over 64 MiB: 400 problem+json, ask for fewer frames",
          st == 400 and b"fewer frames" in body, (st, body[:200]))


def cleanup():
    for t in held:
        t.close()
    finish(T, v)


TAP.run(main, cleanup)
