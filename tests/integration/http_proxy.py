"""http_proxy.py DV: `dicomvault serve` behind a reverse proxy
([http] trusted_proxies). Every client of a proxy comes from the proxy's
address: without this setting the audit trail named the proxy for every
request, and five failed logins of one user behind it locked out the
address, so every other user too (SPEC 3's lockout per source address).
* With trusted_proxies = 127.0.0.1 (the test's connections come from it),
  the client is the last address of X-Forwarded-For (the one the proxy
  appended; whatever comes before it the client may have written): the
  audit records name it, and the lockout counts it: five failures from
  one client lock that client, not another one behind the same proxy.
* An X-Forwarded-For that is not an address leaves the proxy's.
* Without the setting, X-Forwarded-For is ignored (a client cannot choose
  the address its failures count against, nor the one audited).
* A bad value of the setting: serve refuses to start, naming it.
Run as /usr/bin/python3 tests/integration/http_proxy.py build/check/dicomvault.
Prints ok/not ok lines; exits 1 if any check failed. Layer: tests."""
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from dvserver import Vault, PASSWORD, USER_PASSWORD, free_port  # noqa: E402
from tap import Tap  # noqa: E402

DV = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/check/dicomvault")
TAP = Tap("http_proxy")
check = TAP.check
TMP = tempfile.mkdtemp(prefix="dv-proxy.")


def set_http(v, line):
    """Adds line to the [http] section of v's dicomvault.conf."""
    p = os.path.join(v.dir, "dicomvault.conf")
    text = open(p).read()
    open(p, "w").write(text.replace("[http]\n", "[http]\n" + line + "\n", 1))


def records(v):
    with open(os.path.join(v.dir, "audit", "audit.log")) as f:
        return [json.loads(l) for l in f if l.strip()]


def login(v, user, password, code, xff=None):
    h = {"Content-Type": "application/json", "User-Agent": "proxy-test"}
    if xff is not None:
        h["X-Forwarded-For"] = xff
    st, _, body = v.request("POST", "/api/auth/login",
                            json.dumps({"username": user, "password": password, "totp": code}), h, auth=False)
    return st


def totp(secret):
    return subprocess.run(["oathtool", "--totp", "-b", secret], capture_output=True, text=True).stdout.strip()


def logins_from(v, n0):
    return [(r["outcome"], r["actor"].get("addr")) for r in records(v)[n0:] if r["action"].startswith("login")]


def main():
    if shutil.which("oathtool") is None:
        TAP.skip("no oathtool")
        return
    v = Vault(DV, TMP)
    ok, bob, err = v.add_user("bob", "physician")
    check("a second user", ok, err)
    set_http(v, "trusted_proxies = 127.0.0.1, ::1")
    v.serve()
    n0 = len(records(v))
    st = login(v, "admin", PASSWORD, totp(v.secret), "198.51.100.7")
    check("a login through the proxy: 200", st == 200, st)
    check("its audit record names the client of X-Forwarded-For, not the proxy",
          logins_from(v, n0) == [("success", "198.51.100.7")], logins_from(v, n0))
    n0 = len(records(v))
    # a client's own X-Forwarded-For comes first; the proxy appends the
    # address it saw: the last one counts
    login(v, "nobody", "wrong", "000000", "203.0.113.1, 198.51.100.8")
    login(v, "nobody", "wrong", "000000", "not-an-address")
    got = logins_from(v, n0)
    check("the last address of the field counts; one that is not an address leaves the proxy's",
          [a for _, a in got] == ["198.51.100.8", "127.0.0.1"], got)
    for i in range(5):
        # a name each (a name's own lock would stop its failures counting)
        login(v, "nobody%d" % i, "wrong", "000000", "198.51.100.9")
    st = login(v, "admin", PASSWORD, "000000", "198.51.100.9")
    check("five failures from one client behind the proxy lock that client (429)", st == 429, st)
    st = login(v, "bob", USER_PASSWORD, totp(bob), "198.51.100.10")
    check("another client behind the same proxy logs in (200)", st == 200, st)
    # every client of the proxy is its address: no limit of 16 per address
    held = []
    try:
        for _ in range(20):
            t = v.ctx.wrap_socket(socket.create_connection(("127.0.0.1", v.port), timeout=10),
                                  server_hostname="localhost")
            held.append(t)
        st, _, _ = v.request("GET", "/healthz", auth=False)
    except (OSError, ssl.SSLError) as e:
        st = repr(e)
    check("20 connections held open from the proxy's address: a 21st is served", len(held) == 20 and st == 200,
          (len(held), st))
    for t in held:
        t.close()
    # a direct client (not the proxy) keeps its limit of 16, so that it
    # cannot take every connection and keep the proxy out
    held = []
    try:
        for _ in range(20):
            t = v.ctx.wrap_socket(socket.create_connection(("127.0.0.1", v.port), timeout=10,
                                                           source_address=("127.0.0.3", 0)),
                                  server_hostname="localhost")
            t.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            if not t.recv(12).startswith(b"HTTP/1.1 200"):
                break
            held.append(t)
    except (OSError, ssl.SSLError):
        pass
    st, _, _ = v.request("GET", "/healthz", auth=False)
    check("a direct client holds 16 connections, not 20; the proxy is still served", len(held) == 16 and st == 200,
          (len(held), st))
    for t in held:
        t.close()
    # nor can a host with a few addresses: all the others together leave
    # 16 of the 64 connections to the proxies
    socks = []
    for k in range(3, 7):
        for _ in range(16):
            try:
                socks.append(socket.create_connection(("127.0.0.1", v.port), timeout=5,
                                                      source_address=("127.0.0.%d" % k, 0)))
            except OSError:
                pass
    t0 = time.monotonic()
    st, _, _ = v.request("GET", "/healthz", auth=False)
    dt = time.monotonic() - t0
    check("64 silent connections from 4 other addresses: the proxy is served at once", st == 200 and dt < 3,
          (st, round(dt, 1)))
    for t in socks:
        t.close()
    v.stop()

    # without trusted_proxies: the header is ignored
    w = Vault(DV, TMP, name="w")
    w.serve()
    n0 = len(records(w))
    login(w, "nobody", "wrong", "000000", "198.51.100.11")
    got = logins_from(w, n0)
    check("without trusted_proxies, X-Forwarded-For is ignored: the connection's address",
          [a for _, a in got] == ["127.0.0.1"], got)
    w.stop()

    for bad in ("proxy.example.org", "127.0.0.1,", "1.2.3.4, 300.1.1.1", ",".join(["10.0.0.%d" % i for i in range(9)])):
        x = Vault(DV, TMP, name="x")
        set_http(x, "trusted_proxies = %s" % bad)
        p = subprocess.run([DV, "serve", "--vault", x.dir, "--http", "127.0.0.1:%d" % free_port()], capture_output=True,
                           text=True,
                           timeout=60)
        check("trusted_proxies = %s: serve refuses to start, naming the setting" % bad[:40],
              p.returncode != 0 and "trusted_proxies" in p.stderr, (p.returncode, p.stderr[-300:]))
        shutil.rmtree(x.dir, ignore_errors=True)
    err = open(os.path.join(TMP, "serve.err")).read()
    check("no sanitizer report", "Sanitizer" not in err and "runtime error" not in err, err[-600:])


TAP.run(main, lambda: shutil.rmtree(TMP, ignore_errors=True))
