#!/usr/bin/python3
"""STOW-RS and import against what must never be stored, and requests
whose size alone is absurd: parts whose SOP Instance, Study or Series UID
is not a UID (".", "..", an empty component: such a value would become a
path segment of the RetrieveURL that means something else) are refused in
FailedSOPSequence with a reason while the good part beside them is stored;
`dicomvault import` refuses the same files, naming why; a STOW whose
Content-Length is larger than the configured limit (`[http]
max_upload_mb`) is answered 413 problem+json before its body is read, one
beyond 64 bits 413 (by libmicrohttpd), one within the limit but larger
than the vault's free space 507; an invalid max_upload_mb stops serve
from starting; the server keeps serving and nothing stored is lost. Prints "ok - NAME" / "not ok - NAME"."""
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import warnings


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import dsgen  # noqa: E402
from dvserver import Vault  # noqa: E402
from tap import Tap  # noqa: E402

warnings.simplefilter("ignore")
DV = os.path.abspath(sys.argv[1])
P = "1.2.826.0.1.3680043.2.1143.47."
TAP = Tap("stow_limits")
check = TAP.check


def inst(path, sop, study=P + "1", series=P + "1.1"):
    ds = dsgen.sc(sop, study, series, "LIMITS^TEST", "LIM47")
    if sop in (".", ".."):   # pydicom would not write such a meta UID
        ds.file_meta.MediaStorageSOPInstanceUID = P + "9"
    open(path, "wb").write(dsgen.part10(ds))
    return path


def dsgen_file(path, sop):
    open(path, "wb").write(dsgen.part10(dsgen.sc(sop, P + "2", P + "2.1", "LIMITS^TEST", "LIM47")))
    return path


def mislabelled(path, sop, meta_explicit, deflated=False):
    """A Part 10 file whose meta says one VR encoding (explicit or implicit
    VR little endian) while its data set is in the other, as pydicom's
    SC_rgb_jpeg.dcm is; deflated: an implicit VR data set deflated under
    Deflated Explicit VR Little Endian."""
    import zlib
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info
    ds = dsgen.sc(sop, P + "2", P + "2.1", "LIMITS^TEST", "LIM47")
    ds.file_meta.TransferSyntaxUID = ("1.2.840.10008.1.2.1.99" if deflated else
                                      "1.2.840.10008.1.2.1" if meta_explicit else "1.2.840.10008.1.2")
    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    if meta_explicit:
        body = dsgen.implicit(ds)
    else:
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, False
        ds.is_implicit_VR, ds.is_little_endian = False, True
        write_dataset(fp, ds)
        body = fp.getvalue()
    if deflated:
        z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        body = z.compress(body) + z.flush()
    open(path, "wb").write(b"\0" * 128 + b"DICM" + meta.getvalue() + body)
    return path


def raw(v, head, body=b"", read=True):
    """One request written by hand over TLS 1.3: (status line, whole answer)."""
    s = socket.create_connection(("127.0.0.1", v.port), timeout=20)
    t = v.ctx.wrap_socket(s, server_hostname="localhost")
    try:
        t.sendall(head + body)
    except (ssl.SSLError, OSError):
        pass   # the server may close before the whole body is sent (that answer is read below)
    data = b""
    try:
        while read:
            b = t.recv(65536)
            if not b:
                break
            data += b
            if b"\r\n\r\n" in data:
                h, _, rest = data.partition(b"\r\n\r\n")
                cl = [ln for ln in h.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
                if cl and len(rest) >= int(cl[0].split(b":")[1]):
                    break
    except (socket.timeout, ssl.SSLError, OSError):
        pass
    t.close()
    return data.split(b"\r\n", 1)[0].decode("latin-1"), data


def main():
    tmp = TMP
    v = Vault(DV, tmp)
    conf = os.path.join(v.dir, "dicomvault.conf")
    text = open(conf).read()
    open(conf, "w").write(text.replace("[http]\n", "[http]\nmax_upload_mb = 64\n", 1))
    v.serve()
    v.login()
    good = inst(os.path.join(tmp, "good.dcm"), P + "1.1.1")
    bad = {
        "sop ..": inst(os.path.join(tmp, "b1.dcm"), ".."),
        "sop .": inst(os.path.join(tmp, "b2.dcm"), "."),
        "sop 1..2": inst(os.path.join(tmp, "b3.dcm"), P + "1..2"),
        "study trailing dot": inst(os.path.join(tmp, "b4.dcm"), P + "1.1.4", study=P + "1."),
        "series leading dot": inst(os.path.join(tmp, "b5.dcm"), P + "1.1.5", series="." + P + "1.1"),
    }
    st, js = v.stow([good] + list(bad.values()))
    ok_refs = (js or {}).get("00081199", {}).get("Value", [])
    fails = (js or {}).get("00081198", {}).get("Value", [])
    check("STOW of one good and five bad UIDs: answered (202), one stored",
          st == 202 and len(ok_refs) == 1 and ok_refs[0]["00081155"]["Value"] == [P + "1.1.1"], (st, js))
    check("each bad part in FailedSOPSequence with a FailureReason",
          len(fails) == 5 and all("00081197" in f for f in fails), fails)
    retrieve_urls = [r.get("00081190", {}).get("Value", [""])[0] for r in ok_refs]
    check("no RetrieveURL with a dot segment",
          all("/.." not in u and "/./" not in u and not u.endswith("/.") for u in retrieve_urls), retrieve_urls)
    st, _, body = v.request("GET", f"/dicom-web/studies/{P}1/instances", headers={"Accept": "application/dicom+json"})
    found = [d["00080018"]["Value"][0] for d in json.loads(body)] if st == 200 else []
    check("QIDO: only the good instance in the study", found == [P + "1.1.1"], (st, found))
    st, _, body = v.request("GET", "/dicom-web/studies/../instances")
    check("a path with a dot segment for a UID: not a retrieval (4xx)", 400 <= st < 500, st)

    # a data set in the other VR encoding than its meta says: refused (C000,
    # as the C-STORE SCP does), not stored to be served under a wrong label
    mis = [mislabelled(os.path.join(tmp, "m1.dcm"), P + "2.1.1", True),
           mislabelled(os.path.join(tmp, "m2.dcm"), P + "2.1.2", False),
           mislabelled(os.path.join(tmp, "m4.dcm"), P + "2.1.4", True, deflated=True)]
    st, js = v.stow(mis)
    fails = (js or {}).get("00081198", {}).get("Value", [])
    check("STOW of implicit VR under an explicit meta, the reverse, and implicit deflated: each refused, C000 (409)",
          st == 409 and len(fails) == 3 and all(f.get("00081197", {}).get("Value") == [0xC000] for f in fails),
          (st, js))
    st, _, body = v.request("GET", f"/dicom-web/studies/{P}2/instances", headers={"Accept": "application/dicom+json"})
    check("QIDO: nothing of them stored", st in (200, 204, 404) and P.encode() + b"2.1." not in body, (st, body[:300]))
    p = subprocess.run([DV, "import", "--vault", v.dir] + mis, capture_output=True, text=True)
    out = p.stdout + p.stderr
    check("import of them: exit 1, each file named with the reason",
          p.returncode == 1 and "m1.dcm" in out and "m2.dcm" in out and "m4.dcm" in out and
          out.count("VR encoding") == 3, (p.returncode, out))
    st, js = v.stow([dsgen_file(os.path.join(tmp, "m3.dcm"), P + "2.1.3")])
    check("a well-labelled instance of that study: stored", st == 200, (st, js))

    p = subprocess.run([DV, "import", "--vault", v.dir, bad["sop .."], bad["study trailing dot"]],
                       capture_output=True, text=True)
    check("import of bad UIDs: exit 1, each file named", p.returncode == 1 and "b1.dcm" in p.stderr + p.stdout and
          "b4.dcm" in p.stderr + p.stdout, (p.returncode, p.stdout, p.stderr))

    # ---- absurd sizes: answered before the body is read ----
    b = "BOUNDARYlimits"
    head = ("POST /dicom-web/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: multipart/related; type=\"application/dicom\"; boundary=%s\r\n"
            "Content-Length: %s\r\n\r\n")
    line, data = raw(v, (head % (v.token, b, 65 * 1024 * 1024)).encode(), b"--" + b.encode() + b"\r\n")
    check("Content-Length over max_upload_mb: 413 problem+json at once",
          line.endswith("413 Payload Too Large") or " 413 " in line, line)
    check("that 413 is problem+json naming the limit",
          b"application/problem+json" in data and b"64 MiB" in data, data[:400])
    line, data = raw(v, (head % (v.token, b, 10 ** 12)).encode(), b"")
    check("Content-Length of 10^12: 413", " 413 " in line, line)
    line, data = raw(v, (head % (v.token, b, "99999999999999999999")).encode(), b"")
    # refused by libmicrohttpd itself before any handler of ours runs (its
    # 0.9.75 writes that answer's head twice: docs/internals/dicomweb.md)
    check("Content-Length beyond 64 bits: 413, the connection closed",
          line.startswith("HTTP/1.1 413") and b"Connection: close" in data, data[:300])
    line, data = raw(v, (head % ("x" * 43, b, 65 * 1024 * 1024)).encode(), b"")
    check("without a valid session the size does not matter: 401", " 401 " in line, line)

    # ---- a good part, a malformed delimiter, then 2 MiB more: the server
    # reads 1 MiB past the error, closes, and says so in the log and audit ----
    cut = inst(os.path.join(tmp, "cut.dcm"), P + "3.1.1", study=P + "3", series=P + "3.1")
    body = (b"--" + b.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + open(cut, "rb").read() +
            b"\r\n--" + b.encode() + b"\r\nNo colon in this header line\r\n\r\n" + b"\0" * (2 << 20))
    line, data = raw(v, (head % (v.token, b, len(body))).encode(), body)
    check("a malformed body followed by 2 MiB: the connection closed without an answer", line == "", data[:300])
    # the server stores the part and writes the record as the request ends,
    # which may be just after the client sees the connection close: polled
    want = "closed by the server: more than 1 MiB after an error in the multipart body (malformed part header"
    deadline = time.monotonic() + 10
    while True:
        st, _, found = v.request("GET", f"/dicom-web/studies/{P}3/instances",
                                 headers={"Accept": "application/dicom+json"})
        p = subprocess.run([DV, "audit", "export", "--vault", v.dir], capture_output=True, text=True)
        reasons = [json.loads(ln).get("reason", "") for ln in p.stdout.splitlines()
                   if '"action":"store"' in ln and '"outcome":"failure"' in ln]
        stored = st == 200 and len(json.loads(found)) == 1
        audited = any(want in x for x in reasons)
        if (stored and audited) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    check("the part before the error is stored", stored, (st, found[:200]))
    check("that closing audited as a store failure naming the server's reason and the parser's", audited, reasons)

    st, _, body = v.request("GET", "/healthz", auth=False)
    check("server still serving", st == 200, st)
    st, _, body = v.request("GET", f"/dicom-web/studies/{P}1/series/{P}1.1/instances/{P}1.1.1",
                            headers={"Accept": 'multipart/related; type="application/dicom"'})
    check("the good instance still retrievable", st == 200 and open(good, "rb").read() in body, st)
    v.stop()

    # ---- within the limit, beyond the disk: 507 before a byte is read ----
    open(conf, "w").write(text.replace("[http]\n", "[http]\nmax_upload_mb = 1073741824\n", 1))
    v.serve()   # the session of the login above is still valid (a TOTP code works once)
    line, data = raw(v, (head % (v.token, b, 10 ** 15)).encode(), b"--" + b.encode() + b"\r\n")
    check("Content-Length of 10^15 under a 1 PiB limit, over the free space: 507 problem+json",
          " 507 " in line and b"application/problem+json" in data and b"free space" in data, data[:300])
    st, _, body = v.request("GET", "/healthz", auth=False)
    check("server still serving after it", st == 200, st)
    v.stop()
    open(conf, "w").write(text.replace("[http]\n", "[http]\nmax_upload_mb = 0\n", 1))
    p = subprocess.run([DV, "serve", "--vault", v.dir, "--http", "127.0.0.1:0"], capture_output=True, text=True,
                       timeout=30)
    check("max_upload_mb = 0: serve refuses to start, naming the key",
          p.returncode != 0 and "max_upload_mb" in p.stderr, (p.returncode, p.stderr))
    open(conf, "w").write(text)
    p = subprocess.run([DV, "audit", "verify", "--vault", v.dir], capture_output=True, text=True)
    check("audit verify: intact", p.returncode == 0, p.stdout + p.stderr)


TMP = tempfile.mkdtemp(prefix="dv-stowlim.")
TAP.run(main, lambda: shutil.rmtree(TMP, ignore_errors=True))
