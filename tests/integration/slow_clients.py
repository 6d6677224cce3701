#!/usr/bin/python3
"""Slow clients against `dicomvault serve` (slowloris): connections that
send their request head a few bytes at a time, and connections that never
finish the TLS handshake, are closed once HTTP_HEAD_TIMEOUT (10 s) has
passed since their accept, although each keeps sending within the 30 s
inactivity timeout; so is a login whose body (read before anyone is
authenticated) trickles, 10 s after its head; while they hang, other
clients are served; a request
whose head came in time but whose body trickles (a STOW-RS from a slow
link) is not cut at 10 s and is answered; a STOW-RS whose body stalls
half-way (the socket kept open) is closed after the 30 s inactivity
timeout (HTTP_CONN_TIMEOUT, not configurable), nothing of it stored or
left in the vault's tmp/ (named, or as an open unnamed spool file), and
others are served meanwhile. A connection that pipelines thousands of
public requests (the login page) and reads their answers a KiB every 2 s
is closed HTTP_ANON_TIMEOUT (30 s) after its accept, once the answer
being sent then has ended (by Connection: close), or at most
HTTP_HEAD_TIMEOUT (10 s) later (before session 25 it
was held as long as it kept reading, each answer finishing in time for the
next); one asking for /healthz every 2 s gets Connection: close once past
those 30 s, while one asking for an authenticated resource every 2 s lives
on.
Prints "ok - NAME" / "not ok - NAME"."""
import os
import shutil
import socket
import json
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import dsgen  # noqa: E402
from dvserver import Vault  # noqa: E402
from tap import Tap  # noqa: E402

warnings.simplefilter("ignore")
DV = os.path.abspath(sys.argv[1])
HEAD_TIMEOUT = 10
CONN_TIMEOUT = 30   # HTTP_CONN_TIMEOUT (include/dicomvault/limits.h)
ANON_TIMEOUT = 30   # HTTP_ANON_TIMEOUT
STALL_STUDY = "2.25.%d" % uuid.uuid4().int
TAP = Tap("slow_clients")
check = TAP.check


def trickle(v, out, i, first, more, source="127.0.0.1", from_connect=True):
    """TLS, first sent, then more(k) every 2 s: the time from connect
    (else from first) until the server closed the connection (None: still
    open at 40 s)."""
    t0 = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", v.port), timeout=40, source_address=(source, 0))
        t = v.ctx.wrap_socket(s, server_hostname="localhost")
        t.sendall(first)
        if not from_connect:
            t0 = time.monotonic()
        t.settimeout(2)
        k = 0
        while time.monotonic() - t0 < 40:
            try:
                if t.recv(4096) == b"":
                    break
            except (socket.timeout, TimeoutError):
                t.sendall(more(k))
                k += 1
        else:
            out[i] = None
            t.close()
            return
        out[i] = time.monotonic() - t0
        t.close()
    except (ssl.SSLError, OSError):
        out[i] = time.monotonic() - t0


def trickle_head(v, out, i):
    """A request head one header line every 2 s, timed from connect."""
    trickle(v, out, i, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n", lambda k: b"X-Slow-%d: %d\r\n" % (k, k))


def trickle_login(v, out, i):
    """From 127.0.0.2: a whole login head (Content-Length 60000), then
    its body a byte every 2 s, timed from the head."""
    trickle(v, out, i, b"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 60000\r\n\r\n", lambda k: b" ", source="127.0.0.2", from_connect=False)


def slow_reader(v, out, key, source):
    """From source: 3000 pipelined GETs of the login page, their answers
    read a KiB every 2 s for 36 s, then as fast as they come: the seconds
    from connect until the server closed the connection (None: still open
    at 50 s)."""
    t0 = time.monotonic()
    req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 3000
    try:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.bind((source, 0))
        s.settimeout(10)
        s.connect(("127.0.0.1", v.port))
        t = v.ctx.wrap_socket(s, server_hostname="localhost")
        threading.Thread(target=lambda: t.sendall(req), daemon=True).start()
        while time.monotonic() - t0 < 50:
            slow = time.monotonic() - t0 < 36
            if slow:
                time.sleep(2)
            t.settimeout(0.2 if slow else 2)
            try:
                if t.recv(1024) == b"":
                    break
            except (socket.timeout, TimeoutError):
                pass
        else:
            out[key] = None
            t.close()
            return
        out[key] = time.monotonic() - t0
        t.close()
    except (ssl.SSLError, OSError):
        out[key] = time.monotonic() - t0


def keep_asking(v, out, key, source, auth):
    """From source, on one connection: a GET every 2 s (whoami with the
    token when auth, else /healthz), each answer read whole: the seconds
    from connect until the server closed it (None: still open at 40 s)."""
    t0 = time.monotonic()
    path, extra = ("/api/auth/whoami", "Authorization: Bearer %s\r\n" % v.token) if auth else ("/healthz", "")
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n" % (path, extra)).encode()
    try:
        s = socket.create_connection(("127.0.0.1", v.port), timeout=10, source_address=(source, 0))
        t = v.ctx.wrap_socket(s, server_hostname="localhost")
        while time.monotonic() - t0 < 40:
            t.sendall(req)
            head = b""
            while b"\r\n\r\n" not in head:
                d = t.recv(4096)
                if d == b"":
                    raise EOFError
                head += d
            hl = head.split(b"\r\n\r\n")[0].lower()
            if b"connection: close" in hl:
                out[key + "_close"] = True
            n = int(hl.split(b"content-length:")[1].split(b"\r\n")[0])
            body = head.split(b"\r\n\r\n", 1)[1]
            while len(body) < n:
                d = t.recv(4096)
                if d == b"":
                    raise EOFError
                body += d
            time.sleep(2)
        out[key] = None
        t.close()
    except (ssl.SSLError, OSError, EOFError, IndexError, ValueError):
        out[key] = time.monotonic() - t0


def no_handshake(v, out, i):
    """TCP only, a byte of a TLS record every 2 s: when the server closed."""
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", v.port), timeout=2)
    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(40))
    k = 0
    while time.monotonic() - t0 < 40:
        try:
            if s.recv(4096) == b"":
                break
        except (socket.timeout, TimeoutError):
            try:
                s.sendall(hello[k:k + 1])
            except OSError:
                break
            k += 1
        except OSError:
            break
    out[i] = time.monotonic() - t0 if time.monotonic() - t0 < 40 else None
    s.close()


def instance():
    def uid():
        return "2.25.%d" % uuid.uuid4().int
    return dsgen.part10(dsgen.sc(uid(), uid(), uid(), "SLOW^LINK", "SLOW1", rows=16, cols=16))


def stow_request(v, boundary, inst):
    """The head (Content-Length the whole body) and the body of a STOW-RS
    of one instance, as raw bytes."""
    b = boundary.encode()
    body = b"--" + b + b"\r\nContent-Type: application/dicom\r\n\r\n" + inst + b"\r\n--" + b + b"--\r\n"
    head = ("POST /dicom-web/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: multipart/related; type=\"application/dicom\"; boundary=%s\r\n"
            "Accept: application/dicom+json\r\nContent-Length: %d\r\n\r\n" % (v.token, boundary, len(body))).encode()
    return head, body


def slow_body(v, out):
    """A STOW-RS whose head is sent at once and whose body comes in 8
    pieces 2 s apart (16 s in all): the status line of its answer."""
    head, body = stow_request(v, "slowbody", instance())
    s = socket.create_connection(("127.0.0.1", v.port), timeout=30)
    t = v.ctx.wrap_socket(s, server_hostname="localhost")
    t.sendall(head)
    step = (len(body) + 7) // 8
    for k in range(8):
        time.sleep(2)
        t.sendall(body[k * step:(k + 1) * step])
    data = b""
    try:
        while b"\r\n" not in data:
            d = t.recv(4096)
            if not d:
                break
            data += d
    except OSError:
        pass
    t.close()
    out[0] = data.split(b"\r\n", 1)[0].decode("latin-1")


def half_body(v, boundary, name, pid):
    """A TLS connection that has sent the head of a STOW-RS of a 3 MiB
    instance (Content-Length the whole body) and half its body, past the
    1 MiB an in-memory spool holds."""
    inst = dsgen.part10(dsgen.sc("2.25.%d" % uuid.uuid4().int, STALL_STUDY, "2.25.%d" % uuid.uuid4().int,
                                 name, pid, rows=1774, cols=1774))
    head, body = stow_request(v, boundary, inst)
    s = socket.create_connection(("127.0.0.1", v.port), timeout=60)
    t = v.ctx.wrap_socket(s, server_hostname="localhost")
    t.sendall(head + body[:len(body) // 2])
    return t


def stalled_body(v, out):
    """half_body, then nothing, the socket open: the seconds from the last byte sent
    until the server closed the connection (None: still open at 60 s),
    and what it sent."""
    t = half_body(v, "stalled", "STALL^BODY", "STALL1")
    t0 = time.monotonic()
    out["sent"] = True
    data = b""
    try:
        while True:
            d = t.recv(4096)
            if not d:
                break
            data += d
    except (socket.timeout, TimeoutError):
        out["closed"] = None
        t.close()
        return
    except (ssl.SSLError, OSError):
        pass
    out["closed"] = time.monotonic() - t0
    out["data"] = data[:200]
    t.close()


def closed_body(v):
    """A STOW-RS of a 3 MiB instance whose client closes the connection
    after half the body."""
    half_body(v, "closed", "CLOSED^BODY", "CLOSED1").close()


def audit_store_failures(v):
    """The reasons of the store failure records in the audit log."""
    p = subprocess.run([DV, "audit", "export", "--vault", v.dir], capture_output=True, text=True)
    out = []
    for line in p.stdout.splitlines():
        rec = json.loads(line)
        if rec.get("action") == "store" and rec.get("outcome") == "failure":
            out.append(rec.get("reason", ""))
    return out


def spool_fds(v):
    """The server's open files in the vault's tmp/ (an unnamed spool file
    shows as tmp/#N (deleted))."""
    tmp, n = os.path.join(v.dir, "tmp") + "/", 0
    for fd in os.listdir("/proc/%d/fd" % v.proc.pid):
        try:
            n += os.readlink("/proc/%d/fd/%s" % (v.proc.pid, fd)).startswith(tmp)
        except OSError:
            pass
    return n


def study_count(v):
    st, _, data = v.request("GET", "/dicom-web/studies?StudyInstanceUID=" + STALL_STUDY,
                            headers={"Accept": "application/dicom+json"})
    return st, len(json.loads(data)) if st == 200 else None


def main():
    tmp = TMP
    v = Vault(DV, tmp)
    v.serve()
    v.login()
    heads, raws, body, stall, logins = [None] * 8, [None] * 4, [None], {}, [None] * 2
    threads = [threading.Thread(target=trickle_head, args=(v, heads, i)) for i in range(8)]
    threads += [threading.Thread(target=trickle_login, args=(v, logins, i)) for i in range(2)]
    threads += [threading.Thread(target=no_handshake, args=(v, raws, i)) for i in range(4)]
    threads.append(threading.Thread(target=slow_body, args=(v, body)))
    stalled = threading.Thread(target=stalled_body, args=(v, stall))
    threads.append(stalled)
    readers = {}
    threads.append(threading.Thread(target=slow_reader, args=(v, readers, "reader", "127.0.0.3")))
    threads.append(threading.Thread(target=keep_asking, args=(v, readers, "anon", "127.0.0.4", False)))
    threads.append(threading.Thread(target=keep_asking, args=(v, readers, "authed", "127.0.0.4", True)))
    for t in threads:
        t.start()
    time.sleep(3)
    served = []
    for _ in range(3):
        st, _, _ = v.request("GET", "/healthz", auth=False)
        served.append(st)
        time.sleep(1)
    check("other clients served while 17 connections hang", served == [200, 200, 200], served)
    t0 = time.monotonic()
    q = study_count(v)
    dt = time.monotonic() - t0
    check("a QIDO during the stalled STOW: answered at once, the stalled instance not there",
          stall.get("sent") and q == (200, 0) and dt < 2, (stall, q, dt))
    n = spool_fds(v)
    print("# during the stall the server holds %d file(s) in the vault's tmp/" % n)
    for t in threads:
        t.join(60)
    check("request heads a line every 2 s: closed after the head timeout, not held for ever",
          all(x is not None and HEAD_TIMEOUT - 0.5 <= x <= HEAD_TIMEOUT + 4 for x in heads), heads)
    check("a login body (read before any authentication) trickled a byte every 2 s: closed %d s after its head"
          % HEAD_TIMEOUT, all(x is not None and HEAD_TIMEOUT - 0.5 <= x <= HEAD_TIMEOUT + 4 for x in logins), logins)
    check("connections that never finish the TLS handshake: closed after the head timeout",
          all(x is not None and HEAD_TIMEOUT - 0.5 <= x <= HEAD_TIMEOUT + 4 for x in raws), raws)
    check("3000 pipelined public requests read slowly: closed %d to %d s after the accept"
          % (ANON_TIMEOUT, ANON_TIMEOUT + HEAD_TIMEOUT), readers.get("reader") is not None and
          ANON_TIMEOUT - 0.5 <= readers["reader"] <= ANON_TIMEOUT + HEAD_TIMEOUT + 5, readers)
    # closed at the deadline: by the watcher when the connection is idle
    # then (no answer under way: no header to carry), or by the answer
    # that crosses it, which says Connection: close; which one comes first
    # is the 2 s rhythm's against the watcher's (it failed now and then
    # when the header alone was taken)
    check("/healthz every 2 s on one connection: closed %d s after the accept (the watcher, or an answer saying "
          "Connection: close)" % ANON_TIMEOUT,
          readers.get("anon") is not None and ANON_TIMEOUT - 0.5 <= readers["anon"] <= ANON_TIMEOUT + 5, readers)
    check("an authenticated request every 2 s: the connection lives on", "authed" in readers and
          readers["authed"] is None, readers)
    check("a STOW-RS body trickled over 16 s after a whole head: answered 200",
          body[0] is not None and body[0].startswith("HTTP/1.1 200"), body[0])
    check("a STOW-RS body stalled half-way: closed after the %d s inactivity timeout" % CONN_TIMEOUT,
          stall.get("closed") is not None and CONN_TIMEOUT - 1 <= stall["closed"] <= CONN_TIMEOUT + 5, stall)
    print("# the stalled STOW: closed after %s s, the server sent %r" % (stall.get("closed"), stall.get("data")))
    check("the stalled STOW: nothing of it stored (QIDO)", study_count(v) == (200, 0))
    time.sleep(0.5)
    vtmp = os.path.join(v.dir, "tmp")
    left = os.listdir(vtmp) if os.path.isdir(vtmp) else []
    check("the stalled STOW: no file left in the vault's tmp/, none held open by the server",
          left == [] and spool_fds(v) == 0, (left, spool_fds(v)))
    closed_body(v)
    time.sleep(1)
    check("a STOW-RS closed by its client half-way: nothing of it stored (QIDO)", study_count(v) == (200, 0))
    st, _, _ = v.request("GET", "/healthz", auth=False)
    check("server still serving", st == 200, st)
    v.stop()
    fails = audit_store_failures(v)
    print("# store failures audited: %r" % fails)
    cut = "the request ended before its body was complete"
    check("the stalled STOW audited as a store failure: the timeout, the part not stored",
          any(cut in f and "inactivity timeout" in f and "part being received was not stored" in f for f in fails),
          fails)
    check("the STOW closed by its client audited as a store failure: the part not stored",
          any(cut in f and "closed by the client" in f and "part being received was not stored" in f
              for f in fails), fails)
    log = open(os.path.join(tmp, "serve.err")).read() + open(os.path.join(tmp, "serve.out")).read()
    print("".join("# " + l + "\n" for l in log.splitlines() if "stow" in l.lower() or "dicomweb" in l.lower())[:1500], end="")
    check("the closings logged", "request head was not complete in time" in log and
          "without an authenticated request" in log, log[-500:])
    check("the cut STOW requests logged as warnings, without PHI",
          log.count(cut) == 2 and "STALL^BODY" not in log and "CLOSED1" not in log, log[-800:])


TMP = tempfile.mkdtemp(prefix="dv-slow.")
TAP.run(main, lambda: shutil.rmtree(TMP, ignore_errors=True))
