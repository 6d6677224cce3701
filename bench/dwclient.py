"""dwclient.py: a small HTTP/1.1 client for the DICOMweb benchmark
(bench/server_bench.py): one kept-alive connection, plain TCP or TLS 1.3
(Python's ssl, i.e. OpenSSL, which does the record crypto in C), TCP_NODELAY,
request bodies sent as a list of buffers with sendall (no copy into one
buffer), response bodies read with recv_into into one reused 1 MiB buffer and
counted (or kept when asked). Content-Length, chunked and close-delimited
bodies. No dependencies beyond the standard library."""
import socket
import ssl

BUFSZ = 1 << 20


class HTTPError(Exception):
    pass


class Conn:
    def __init__(self, host, port, tls=False, cafile=None, timeout=600):
        self.host, self.port, self.tls, self.cafile, self.timeout = host, port, tls, cafile, timeout
        self.rbuf = bytearray(BUFSZ)
        self.mv = memoryview(self.rbuf)
        self.sock = None
        self.connect()

    def connect(self):
        s = socket.create_connection((self.host, self.port), timeout=self.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.cafile)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
            s = ctx.wrap_socket(s, server_hostname=self.host)
        self.sock = s
        self.buf = bytearray()   # received, not yet consumed

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    # ---- receiving ----
    def _more(self):
        n = self.sock.recv_into(self.mv)
        if n == 0:
            raise EOFError("connection closed by the server")
        self.buf += self.mv[:n]

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            self._more()

    def _take(self, n, keep):
        """Consumes exactly n body bytes; returns them (keep) or None."""
        out = bytearray() if keep else None
        k = min(n, len(self.buf))
        if k:
            if keep:
                out += self.buf[:k]
            del self.buf[:k]
            n -= k
        recv_into, mv = self.sock.recv_into, self.mv
        while n > 0:
            got = recv_into(mv[:min(n, BUFSZ)])
            if got == 0:
                raise EOFError("body truncated")
            if keep:
                out += mv[:got]
            n -= got
        return out

    def _to_eof(self, keep):
        out = bytearray() if keep else None
        total = len(self.buf)
        if keep:
            out += self.buf
        self.buf = bytearray()
        while True:
            got = self.sock.recv_into(self.mv)
            if got == 0:
                break
            total += got
            if keep:
                out += self.mv[:got]
        return total, out

    def request(self, method, path, headers=None, body=None, keep=False):
        """body: None, bytes, or a list of buffers. Returns (status, headers
        dict with lower-case names, body length, body bytes or None)."""
        if self.sock is None:
            self.connect()
        if body is None:
            parts, blen = [], 0
        elif isinstance(body, (bytes, bytearray, memoryview)):
            parts, blen = [body], len(body)
        else:
            parts, blen = body, sum(len(p) for p in body)
        h = ["%s %s HTTP/1.1" % (method, path), "Host: %s:%d" % (self.host, self.port)]
        for k, v in (headers or {}).items():
            h.append("%s: %s" % (k, v))
        if body is not None or method in ("POST", "PUT"):
            h.append("Content-Length: %d" % blen)
        head = ("\r\n".join(h) + "\r\n\r\n").encode("latin1")
        if blen and blen < 65536:
            self.sock.sendall(head + b"".join(parts))
        else:
            self.sock.sendall(head)
            for p in parts:
                self.sock.sendall(p)
        while True:
            status_line = self._line()
            try:
                version, code = status_line.split(b" ", 2)[:2]
                status = int(code)
            except ValueError:
                raise HTTPError("bad status line %r" % status_line[:80])
            hdrs = {}
            while True:
                line = self._line()
                if not line:
                    break
                k, _, v = line.partition(b":")
                hdrs[k.decode("latin1").strip().lower()] = v.decode("latin1").strip()
            if status != 100:
                break
        if method == "HEAD" or status in (204, 304):
            return status, hdrs, 0, (b"" if keep else None)
        te = hdrs.get("transfer-encoding", "").lower()
        if "chunked" in te:
            total, out = 0, (bytearray() if keep else None)
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():   # trailers
                        pass
                    break
                piece = self._take(size, keep)
                if keep:
                    out += piece
                total += size
                self._take(2, False)
        elif "content-length" in hdrs:
            total = int(hdrs["content-length"])
            out = self._take(total, keep)
        else:
            total, out = self._to_eof(keep)
            self.close()
        if hdrs.get("connection", "").lower() == "close" or version == b"HTTP/1.0":
            self.close()
        return status, hdrs, total, (bytes(out) if keep else None)


def multipart(parts, boundary, ctype="application/dicom"):
    """A multipart/related body as a list of buffers (no copy of the parts)."""
    b = boundary.encode()
    out = []
    head = b"--" + b + b"\r\nContent-Type: " + ctype.encode() + b"\r\n\r\n"
    for i, p in enumerate(parts):
        out.append((b"\r\n" if i else b"") + head)
        out.append(p)
    out.append(b"\r\n--" + b + b"--\r\n")
    return out


def stow_headers(boundary, auth=None):
    h = {"Content-Type": 'multipart/related; type="application/dicom"; boundary=%s' % boundary,
         "Accept": "application/dicom+json"}
    if auth:
        h["Authorization"] = auth
    return h
