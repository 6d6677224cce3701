#!/usr/bin/python3
"""http_framing.py DV: request framing that `dicomvault serve` must refuse
(RFC 9112 6.1, 6.3), over raw TLS 1.3 connections:

* Content-Length and Transfer-Encoding: chunked together, followed on the
  same connection by a second request (request smuggling: a proxy in front
  may frame the body by the other header): 400 problem+json with
  Connection: close, and the second request is never answered; on
  STOW-RS too (whose size checks read Content-Length, so a chunked body
  announced as 1 byte got past max_upload before);
* a Transfer-Encoding other than chunked (identity, gzip): 501 at once
  (before, no answer: the server read until the connection closed);
* a version other than HTTP/1.1 or 1.0 (1.9): 505; two Host header
  fields: 400 (RFC 9112 3.2), both with Connection: close; two
  Content-Length or two Transfer-Encoding fields: 400, Connection: close
  (libmicrohttpd frames by the first; before, a second request hidden in
  the body past the first length was answered);
* an HTTP/1.1 request without Host (GET, POST, HEAD): one 400
  problem+json (a HEAD's without body), Connection: close (before,
  libmicrohttpd's own 400: its status line and headers twice, then HTML);
  a space or tab in the request target: 400 problem+json (before, a space
  closed the connection with no answer, a tab was served);
* what libmicrohttpd's own parser refuses once the request line is read
  (a Content-Length not a number or beyond 64 bits, a malformed chunk or
  chunk size, a header line without a colon, a head beyond the connection's
  memory): one problem+json answer, Connection: close (before, its HTML,
  and for a Content-Length its status line and headers twice); a refused
  request line (HTTP/2.0, no version) keeps its HTML, in one header block;
* a query of 1,000 one-letter arguments (2 KB, well under the 8 KB limit):
  answered (before, libmicrohttpd's per-connection pool ran out and the
  connection closed with no answer); of 4,000: 414 problem+json.
After each, an authenticated request on a new connection is served.

Run as /usr/bin/python3 tests/integration/http_framing.py build/check/dicomvault.
Prints ok/not ok lines; exits 1 if any check failed. Layer: tests."""
import os
import re
import shutil
import socket
import ssl
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from dvserver import Vault  # noqa: E402
from tap import Tap  # noqa: E402

DV = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/check/dicomvault")
TAP = Tap("http_framing")
check = TAP.check
TMP = tempfile.mkdtemp(prefix="dv-framing.")


def raw(v, data, timeout=10):
    """Sends data on a new TLS connection, reads until the server closes
    it or timeout: (bytes, seconds, closed by the server)."""
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", v.port), timeout=timeout)
    t = v.ctx.wrap_socket(s, server_hostname="localhost")
    t.sendall(data.encode() if isinstance(data, str) else data)
    out, closed = b"", False
    try:
        while True:
            d = t.recv(65536)
            if not d:
                closed = True
                break
            out += d
    except (socket.timeout, TimeoutError):
        pass
    except (ssl.SSLError, OSError):
        closed = True
    t.close()
    return out, time.monotonic() - t0, closed


def statuses(out):
    return re.findall(rb"HTTP/1\.1 (\d{3})", out)


def head_of(out):
    return out.split(b"\r\n\r\n", 1)[0].lower()


def blocks(out):
    """The header blocks in out: one per status line (a second one inside
    a body counts too: an answer must hold exactly one)."""
    return len(re.findall(rb"(?:^|\r\n)HTTP/1\.[01] \d{3} ", out))


def problem(out, status):
    """One answer: status, problem+json with that status, Connection: close."""
    h = head_of(out)
    body = out.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in out else b""
    return (statuses(out) == [status.encode()] and blocks(out) == 1 and b"application/problem+json" in h and
            b"connection: close" in h and (b'"status":' + status.encode()) in body)


def served(v):
    st, _, _ = v.request("GET", "/api/auth/whoami")
    return st == 200


def main():
    v = Vault(DV, TMP)
    v.serve()
    v.login()
    host = "Host: 127.0.0.1\r\n"
    auth = "Authorization: Bearer %s\r\n" % v.token
    nxt = "GET /healthz HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n"
    for name, req in (
            ("login", "POST /api/auth/login HTTP/1.1\r\n" + host + "Content-Type: application/json\r\n"
             "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + nxt),
            ("STOW-RS", "POST /dicom-web/studies HTTP/1.1\r\n" + host + auth +
             "Content-Type: multipart/related; type=\"application/dicom\"; boundary=XX\r\n"
             "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + nxt)):
        out, _, closed = raw(v, req)
        h = head_of(out)
        check("%s with Content-Length and Transfer-Encoding: 400 problem+json, Connection: close" % name,
              statuses(out)[:1] == [b"400"] and b"application/problem+json" in h and b"connection: close" in h,
              out[:300])
        check("%s: the request after it never answered, the connection closed" % name,
              len(statuses(out)) == 1 and closed, (statuses(out), closed))
    for te in ("identity", "gzip", "chunked, gzip"):
        out, dt, closed = raw(v, "POST /dicom-web/studies HTTP/1.1\r\n" + host + auth +
                              "Content-Type: multipart/related; type=\"application/dicom\"; boundary=XX\r\n"
                              "Transfer-Encoding: %s\r\n\r\n" % te)
        check("Transfer-Encoding: %s: 501 at once, the connection closed" % te,
              statuses(out) == [b"501"] and dt < 5 and closed and b"application/problem+json" in head_of(out),
              (out[:200], dt, closed))
    out, _, _ = raw(v, "GET /healthz HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + nxt)
    check("Transfer-Encoding: chunked alone (an empty body): served", statuses(out)[:1] == [b"200"], out[:200])
    out, _, closed = raw(v, "GET /healthz HTTP/1.9\r\n" + host + "\r\n")
    check("HTTP/1.9: 505 problem+json, the connection closed", statuses(out) == [b"505"] and closed and
          b"application/problem+json" in head_of(out), out[:200])
    out, _, _ = raw(v, "GET /healthz HTTP/1.0\r\n\r\n")
    check("HTTP/1.0 (no Host): served", statuses(out) == [b"200"], out[:200])
    # an HTTP/1.1 request without Host (RFC 9112 3.2): libmicrohttpd's own
    # 400 wrote its status line and headers twice, then an HTML body
    for name, req in (("GET", "GET /healthz HTTP/1.1\r\n\r\n" + nxt),
                      ("POST", "POST /api/auth/login HTTP/1.1\r\nContent-Type: application/json\r\n"
                       "Content-Length: 2\r\n\r\n{}" + nxt)):
        out, _, closed = raw(v, req)
        check("HTTP/1.1 %s without Host: one 400 problem+json, Connection: close, the next request never "
              "answered" % name, problem(out, "400") and closed, out[:400])
    out, _, closed = raw(v, "HEAD /healthz HTTP/1.1\r\n\r\n")
    check("HTTP/1.1 HEAD without Host: one 400 header block, no body, the connection closed",
          statuses(out) == [b"400"] and blocks(out) == 1 and out.endswith(b"\r\n\r\n") and closed, out[:400])
    # whitespace inside the request target (RFC 9112 3.2): a proxy in front
    # may split the line elsewhere
    for name, target in (("a space", "/healthz x"), ("a tab", "/healthz\tx"), ("a space in the query", "/healthz?a b")):
        out, _, closed = raw(v, "GET %s HTTP/1.1\r\n%s\r\n" % (target, host))
        check("%s in the request target: one 400 problem+json, the connection closed" % name,
              problem(out, "400") and closed, out[:400])
    out, _, _ = raw(v, "GET /healthz?a=%20b HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n")
    check("an encoded space (%20) in the query: served", statuses(out) == [b"200"], out[:200])
    out, _, closed = raw(v, "GET /healthz HTTP/1.1\r\n" + host + "Host: evil.example\r\n\r\n")
    check("two Host header fields: 400 problem+json, the connection closed", statuses(out) == [b"400"] and closed,
          out[:200])
    # two Content-Length fields: libmicrohttpd frames by the first, a proxy
    # may by the last; the rest of the first body would be a request of its
    # own (smuggled: here a GET of /api/auth/whoami with the admin's token)
    smuggled = "GET /api/auth/whoami HTTP/1.1\r\n" + host + auth + "\r\n"
    body = "{}" + smuggled
    out, _, closed = raw(v, "POST /api/auth/login HTTP/1.1\r\n" + host + "Content-Type: application/json\r\n"
                         "Content-Length: 2\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    check("two Content-Length fields: 400 problem+json, the smuggled request never answered, the connection closed",
          statuses(out) == [b"400"] and closed and b"application/problem+json" in head_of(out), out[:300])
    out, _, closed = raw(v, "POST /api/auth/login HTTP/1.1\r\n" + host + "Content-Type: application/json\r\n"
                         "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + nxt)
    check("two Transfer-Encoding fields: 400, the connection closed", statuses(out) == [b"400"] and closed, out[:300])
    # whitespace before a field name's colon (RFC 9112 5.1: 400): a proxy
    # that trims it frames the body by that Content-Length, where the name
    # taken as it is would leave the body to be read as the next request
    body = smuggled
    out, _, closed = raw(v, "GET /dicom-web/studies HTTP/1.1\r\n" + host + auth +
                         "Content-Length : %d\r\n\r\n%s" % (len(body), body))
    check("whitespace before a field name's colon: one 400 problem+json, the smuggled request never answered, "
          "the connection closed", problem(out, "400") and closed, out[:300])
    out, _, closed = raw(v, "GET /healthz HTTP/1.1\r\n" + host + "X Y: z\r\n\r\n")
    check("a field name with a space in it: 400", problem(out, "400") and closed, out[:300])
    # refused by libmicrohttpd's own parser, answered as ours: one header
    # block, problem+json, Connection: close (before: its HTML, and for a
    # Content-Length its status line and headers twice)
    login = "POST /api/auth/login HTTP/1.1\r\n" + host + "Content-Type: application/json\r\n"
    for name, req, status in (
            ("Content-Length: abc", login + "Content-Length: abc\r\n\r\n", "400"),
            ("Content-Length: -1", login + "Content-Length: -1\r\n\r\n", "400"),
            ("Content-Length: 2, 2", login + "Content-Length: 2, 2\r\n\r\n{}", "400"),
            ("Content-Length beyond 64 bits", login + "Content-Length: 99999999999999999999\r\n\r\n", "413"),
            ("a malformed chunk size", login + "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", "400"),
            ("a chunk without its CRLF", login + "Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n", "400"),
            ("a chunk size beyond 64 bits", login + "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", "413"),
            ("a header line without a colon", "GET /healthz HTTP/1.1\r\n" + host + "Garbage\r\n\r\n", "400"),
            ("a head beyond the connection's memory", "GET /healthz HTTP/1.1\r\n" + host +
             "X-Big: " + "a" * 400000 + "\r\n\r\n", "431")):
        out, _, closed = raw(v, req + nxt)
        check("%s: one %s problem+json, Connection: close, the next request never answered" % (name, status),
              problem(out, status) and closed, out[:400])
    # a refusal of the request line itself stays libmicrohttpd's (HTML), but
    # one header block and the connection closed
    for name, req, status in (("HTTP/2.0", "GET /healthz HTTP/2.0\r\n" + host + "\r\n", b"505"),
                              ("a request line without a version", "GET /healthz\r\n\r\n", b"400")):
        out, _, closed = raw(v, req)
        check("%s: one %s header block, the connection closed" % (name, status.decode()),
              statuses(out) == [status] and blocks(out) == 1 and closed, out[:400])
    check("served after them", served(v))
    q = "&".join("a" for _ in range(1000))
    out, _, _ = raw(v, "GET /healthz?%s HTTP/1.1\r\n%sConnection: close\r\n\r\n" % (q, host))
    check("1,000 one-letter query arguments (2 KB): answered", statuses(out) == [b"200"], out[:200])
    out, _, _ = raw(v, "GET /dicom-web/studies?%s HTTP/1.1\r\n%s%sConnection: close\r\n\r\n" % (q, host, auth))
    check("the same on QIDO: its own 400 problem+json", statuses(out) == [b"400"] and
          b"application/problem+json" in head_of(out), out[:300])
    q = "&".join("a" for _ in range(4000))
    out, _, _ = raw(v, "GET /dicom-web/studies?%s HTTP/1.1\r\n%s%sConnection: close\r\n\r\n" % (q, host, auth))
    check("4,000 of them (8 KB): 414 problem+json", statuses(out) == [b"414"] and
          b"application/problem+json" in head_of(out), out[:300])
    check("an authenticated request on a new connection: served", served(v))
    err = open(os.path.join(TMP, "serve.err")).read()
    check("no sanitizer report", "Sanitizer" not in err and "runtime error" not in err, err[-600:])
    v.stop()


TAP.run(main, lambda: shutil.rmtree(TMP, ignore_errors=True))
