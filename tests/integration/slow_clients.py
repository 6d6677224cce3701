#!/usr/bin/python3
"""Slow clients against `dicomvault serve` (slowloris): connections that
send their request head a few bytes at a time, and connections that never
finish the TLS handshake, are closed once HTTP_HEAD_TIMEOUT (10 s) has
passed since their accept, although each keeps sending within the 30 s
inactivity timeout; while they hang, other clients are served; a request
whose head came in time but whose body trickles (a STOW-RS from a slow
link) is not cut at 10 s and is answered. Prints "ok - NAME" / "not ok -
NAME"."""
import os
import shutil
import socket
import ssl
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
TAP = Tap("slow_clients")
check = TAP.check


def trickle_head(v, out, i):
    """TLS, then a request head one header line every 2 s: the time from
    connect until the server closed the connection (None: still open at
    40 s)."""
    t0 = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", v.port), timeout=40)
        t = v.ctx.wrap_socket(s, server_hostname="localhost")
        t.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        t.settimeout(2)
        k = 0
        while time.monotonic() - t0 < 40:
            try:
                if t.recv(4096) == b"":
                    break
            except (socket.timeout, TimeoutError):
                t.sendall(b"X-Slow-%d: %d\r\n" % (k, k))
                k += 1
        else:
            out[i] = None
            t.close()
            return
        out[i] = time.monotonic() - t0
        t.close()
    except (ssl.SSLError, OSError):
        out[i] = time.monotonic() - t0


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


def slow_body(v, out):
    """A STOW-RS whose head is sent at once and whose body comes in 8
    pieces 2 s apart (16 s in all): the status line of its answer."""
    b = "slowbody"
    body = (b"--" + b.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + instance() + b"\r\n--" +
            b.encode() + b"--\r\n")
    head = ("POST /dicom-web/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: multipart/related; type=\"application/dicom\"; boundary=%s\r\n"
            "Accept: application/dicom+json\r\nContent-Length: %d\r\n\r\n" % (v.token, b, len(body))).encode()
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


def main():
    tmp = TMP
    v = Vault(DV, tmp)
    v.serve()
    v.login()
    heads, raws, body = [None] * 8, [None] * 4, [None]
    threads = [threading.Thread(target=trickle_head, args=(v, heads, i)) for i in range(8)]
    threads += [threading.Thread(target=no_handshake, args=(v, raws, i)) for i in range(4)]
    threads.append(threading.Thread(target=slow_body, args=(v, body)))
    for t in threads:
        t.start()
    time.sleep(3)
    served = []
    for _ in range(3):
        st, _, _ = v.request("GET", "/healthz", auth=False)
        served.append(st)
        time.sleep(1)
    check("other clients served while 12 connections hang", served == [200, 200, 200], served)
    for t in threads:
        t.join(60)
    check("request heads a line every 2 s: closed after the head timeout, not held for ever",
          all(x is not None and HEAD_TIMEOUT - 0.5 <= x <= HEAD_TIMEOUT + 4 for x in heads), heads)
    check("connections that never finish the TLS handshake: closed after the head timeout",
          all(x is not None and HEAD_TIMEOUT - 0.5 <= x <= HEAD_TIMEOUT + 4 for x in raws), raws)
    check("a STOW-RS body trickled over 16 s after a whole head: answered 200",
          body[0] is not None and body[0].startswith("HTTP/1.1 200"), body[0])
    st, _, _ = v.request("GET", "/healthz", auth=False)
    check("server still serving", st == 200, st)
    v.stop()
    log = open(os.path.join(tmp, "serve.err")).read() + open(os.path.join(tmp, "serve.out")).read()
    check("the closings logged", "request head was not complete in time" in log, log[-500:])


TMP = tempfile.mkdtemp(prefix="dv-slow.")
TAP.run(main, lambda: shutil.rmtree(TMP, ignore_errors=True))
