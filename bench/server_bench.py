"""server_bench.py: dicomvault serve vs Orthanc (+ DICOMweb plugin), side by
side (bench/run.sh section 5; docs/BENCH.md says what and why).

Usage: server_bench.py DV CORPUS OUTDIR
  DV      build/release/dicomvault
  CORPUS  bench/corpus (ct/*.dcm, mf/enhanced_ct_210.dcm)
  OUTDIR  where to write server.md (the Markdown section) and server.kv

Each server is started here, on 127.0.0.1 and a free port, on a fresh
temporary store, and stopped at the end:
  * Orthanc (/usr/sbin/Orthanc, Debian 1.10.1 + orthanc-dicomweb 1.7): a
    generated configuration: its own storage and index folders, HttpPort,
    the DicomWeb plugin enabled at /dicom-web/, TcpNoDelay true,
    RemoteAccessAllowed false, AuthenticationEnabled false, its DICOM
    listener off; every other option at Orthanc's built-in default. Plain
    HTTP (its HTTPS crashes on Debian 12, see the issue).
  * dicomvault: `dicomvault init` of a temporary vault (its generated
    self-signed certificate), `dicomvault serve --http 127.0.0.1:PORT`
    (HTTPS, TLS 1.3), login with password + TOTP (oathtool), then a Bearer
    token on every request.
Measures, each for both servers:
  a. STOW-RS of the 300-slice CT: one instance per request on one kept-alive
     connection (as a modality or a forwarding gateway sends), and the whole
     series in one multipart request, each on a fresh server; then
     BENCH_STOW_ROUNDS (4) more runs of one instance per request, the two
     servers alternated, each on a fresh server: the figure is the median;
  b. WADO-RS retrieval of the series (GET .../studies/{st}/series/{se},
     multipart/related), best of BENCH_WADO_REPS; where the series route
     answers 404, every instance is fetched on one connection instead
     (GET .../instances/{sop}) and the figure says so;
  c. QIDO-RS, one study by StudyInstanceUID and by PatientID, p50/p90 over
     BENCH_QIDO_N queries on one kept-alive connection, with 1,000 studies
     loaded (tiny one-instance studies) and, with BENCH_QIDO_LARGE=1, with
     100,000 (or as many as load within BENCH_QIDO_LOAD_MAX_S per server);
  d. peak RSS (VmHWM of /proc/PID/status, reset through clear_refs before
     each phase) during a, b and the STOW of one ~210 MB multi-frame file;
plus the clients' own ceiling: each client fetching a file of the series'
size from a trivial server (this file run with --blob-server: plain HTTP,
and TLS 1.3 through OpenSSL), to show that the client is not the
bottleneck. Clients: bench/dwclient.py (Python) for STOW and QIDO;
bench/http_get (C, GnuTLS; BENCH_HTTP_GET, default next to DV in
bench/) for the timed WADO retrievals when it is built, else dwclient.py.
"""
import json
import os
import random
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dwclient import Conn, multipart, stow_headers  # noqa: E402

import pydicom  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402

HOST = "127.0.0.1"
BOUNDARY = "dicomvault-bench-7c1f"
WADO_REPS = int(os.environ.get("BENCH_WADO_REPS", "3"))
QIDO_N = int(os.environ.get("BENCH_QIDO_N", "200"))
QIDO_SMALL = int(os.environ.get("BENCH_QIDO_SMALL", "1000"))
QIDO_LARGE = int(os.environ.get("BENCH_QIDO_LARGE_N", "100000")) if os.environ.get("BENCH_QIDO_LARGE") == "1" else 0
QIDO_LOAD_MAX_S = float(os.environ.get("BENCH_QIDO_LOAD_MAX_S", "600"))
STOW_CONNS = int(os.environ.get("BENCH_STOW_CONNS", "4"))
# more runs of STOW one instance per request, the servers alternated, each
# on a fresh store: the figure is the median of these and phase a
STOW_ROUNDS = int(os.environ.get("BENCH_STOW_ROUNDS", "4"))
LOAD_THREADS = int(os.environ.get("BENCH_LOAD_THREADS", "4"))
HTTP_GET = None   # bench/http_get (C), set in main() when built
ORTHANC = "/usr/sbin/Orthanc"
DW_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


def log(*a):
    print("server_bench:", *a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def hwm_reset(pid):
    """Resets the peak RSS of pid (Linux >= 4.0: '5' > clear_refs)."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def hwm_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def cpu_s(pid):
    """user + system CPU seconds of pid so far (all its threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100.0
    f = int(k)
    c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)


# ---------------------------------------------------------------- servers

class Server:
    name = "?"
    tls = False
    cafile = None
    proc = None

    def conn(self):
        return Conn(HOST, self.port, tls=self.tls, cafile=self.cafile)

    def auth(self):
        return {}

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "logf", None):
            self.logf.close()
            self.logf = None
        # The files stay until the caller removes its whole temporary
        # folder at the end of the run: this ext4 has no journal, and then
        # it skips every inode freed in the last 60-300 s each time it
        # allocates one (recently_deleted), so deleting one server's files
        # just before the next server runs would charge that one a scan per
        # file it creates (up to a quarter of its CPU, seen in a profile).
        # What a server left unwritten (Orthanc does not fsync) is written
        # now, so that its write-back does not run during the next timing.
        os.sync()

    @property
    def pid(self):
        return self.proc.pid


class Orthanc(Server):
    name = "Orthanc"

    def __init__(self, tmp):
        self.dir = tempfile.mkdtemp(prefix="orthanc.", dir=tmp)
        self.port = free_port()
        cfg = {
            "Name": "dicomvault-bench",
            "StorageDirectory": os.path.join(self.dir, "storage"),
            "IndexDirectory": os.path.join(self.dir, "index"),
            "Plugins": [DW_PLUGIN],
            "HttpServerEnabled": True,
            "HttpPort": self.port,
            "DicomServerEnabled": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "TcpNoDelay": True,
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        }
        with open(os.path.join(self.dir, "orthanc.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        self.logf = open(os.path.join(tmp, "orthanc.log"), "ab")
        self.proc = subprocess.Popen([ORTHANC, os.path.join(self.dir, "orthanc.json")],
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        t0 = time.time()
        while True:
            if self.proc.poll() is not None:
                raise SystemExit("Orthanc exited at start (see %s/orthanc.log)" % tmp)
            try:
                c = Conn(HOST, self.port)
                st, _, _, body = c.request("GET", "/system", keep=True)
                c.close()
                if st == 200:
                    self.version = json.loads(body).get("Version", "?")
                    break
            except OSError:
                pass
            if time.time() - t0 > 30:
                raise SystemExit("Orthanc did not start")
            time.sleep(0.1)
        c = Conn(HOST, self.port)
        st, _, _, body = c.request("GET", "/plugins/dicom-web", keep=True)
        c.close()
        self.dw_version = json.loads(body).get("Version", "?") if st == 200 else "?"
        if st != 200:
            raise SystemExit("Orthanc's DicomWeb plugin is not loaded")

    def load_one(self, c, data):
        st, _, _, body = c.request("POST", "/instances", {"Content-Type": "application/dicom"}, data, keep=True)
        if st != 200:
            raise SystemExit("Orthanc POST /instances: %d %r" % (st, body[:200]))


class Vault(Server):
    name = "dicomvault"
    tls = True

    def __init__(self, tmp, dv):
        self.dir = tempfile.mkdtemp(prefix="vault.", dir=tmp)
        vdir = os.path.join(self.dir, "v")
        pw = "bench password %d" % random.getrandbits(40)
        pwf = os.path.join(self.dir, "pw")
        with open(os.open(pwf, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(pw + "\n")
        r = subprocess.run([dv, "init", "--vault", vdir, "--password-file", pwf, "--json"],
                           capture_output=True, check=False)
        if r.returncode != 0:
            raise SystemExit("dicomvault init failed: %s" % r.stderr.decode()[-500:])
        secret = json.loads(r.stdout)["totp_secret"]
        self.cafile = os.path.join(vdir, "keys", "tls.crt")
        self.port = free_port()
        self.logf = open(os.path.join(tmp, "dicomvault.log"), "ab")
        outp = os.path.join(self.dir, "out")
        self.proc = subprocess.Popen([dv, "serve", "--vault", vdir, "--http", "%s:%d" % (HOST, self.port)],
                                     stdout=open(outp, "wb"), stderr=self.logf)
        t0 = time.time()
        while True:
            if self.proc.poll() is not None:
                raise SystemExit("dicomvault serve exited at start (see %s/dicomvault.log)" % tmp)
            if b"serving" in open(outp, "rb").read():
                break
            if time.time() - t0 > 30:
                raise SystemExit("dicomvault serve did not start")
            time.sleep(0.05)
        totp = subprocess.run(["oathtool", "--totp", "-b", secret], capture_output=True, check=True,
                              text=True).stdout.strip()
        c = self.conn()
        st, _, _, body = c.request("POST", "/api/auth/login", {"Content-Type": "application/json"},
                                   json.dumps({"username": "admin", "password": pw, "totp": totp}).encode(),
                                   keep=True)
        c.close()
        if st != 200:
            raise SystemExit("dicomvault login: %d %r" % (st, body[:200]))
        self.token = json.loads(body)["token"]
        self.version = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                      text=True).stdout.strip() or "?"

    def auth(self):
        return {"Authorization": "Bearer " + self.token}


# ---------------------------------------------------------------- corpus

class CT:
    def __init__(self, corpus):
        d = os.path.join(corpus, "ct")
        self.files = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".dcm"))
        self.data = [open(f, "rb").read() for f in self.files]
        self.bytes = sum(len(x) for x in self.data)
        self.sops = []
        for f in self.files:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            self.sops.append(ds.SOPInstanceUID)
            self.study, self.series = ds.StudyInstanceUID, ds.SeriesInstanceUID


def tiny_maker(run_id):
    """A function i -> the bytes of a tiny one-instance study (8x8 secondary
    capture), patient 'BENCH^Pnnnnnnnnn' with ID 'BPnnnnnnnnn', all UIDs
    unique; made by patching a pydicom template (same lengths)."""
    ph = "999999999"

    def uid(i, k):
        return "2.25.%d%s%d" % (run_id, i, k)

    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    fm.MediaStorageSOPInstanceUID = uid(ph, 3)
    fm.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    fm.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
    ds = Dataset()
    ds.file_meta = fm
    ds.preamble = b"\0" * 128
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID = fm.MediaStorageSOPClassUID
    ds.SOPInstanceUID = uid(ph, 3)
    ds.StudyDate = "20240101"
    ds.StudyTime = "120000"
    ds.AccessionNumber = "A" + ph
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.StudyDescription = "bench tiny study"
    ds.PatientName = "BENCH^P" + ph
    ds.PatientID = "BP" + ph
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = uid(ph, 1)
    ds.SeriesInstanceUID = uid(ph, 2)
    ds.StudyID = "1"
    ds.SeriesNumber = "1"
    ds.InstanceNumber = "1"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 8
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(range(64))
    import io
    bio = io.BytesIO()
    pydicom.filewriter.dcmwrite(bio, ds, write_like_original=False)
    tmpl = bio.getvalue()
    php = ph.encode()
    assert tmpl.count(php) == 7, tmpl.count(php)   # 2 x SOP, study, series, accession, name, ID

    def make(i):
        return tmpl.replace(php, b"%09d" % i)

    def ids(i):
        return uid("%09d" % i, 1), "BP%09d" % i
    return make, ids


# ---------------------------------------------------------------- phases

def stow_each(srv, ct):
    """One instance per request, one connection; returns (secs, server CPU s)."""
    c = srv.conn()
    h = stow_headers(BOUNDARY)
    h.update(srv.auth())
    bodies = [multipart([d], BOUNDARY) for d in ct.data]
    c0 = cpu_s(srv.pid)
    t0 = time.perf_counter()
    for i, b in enumerate(bodies):
        st, _, _, body = c.request("POST", "/dicom-web/studies", h, b, keep=True)
        if st != 200:
            raise SystemExit("%s STOW instance %d: %d %r" % (srv.name, i, st, body[:300]))
    t = time.perf_counter() - t0
    c1 = cpu_s(srv.pid)
    c.close()
    return t, c1 - c0


def stow_each_parallel(srv, ct, nconn):
    """One instance per request from nconn kept-alive connections at once (a
    gateway forwarding with several associations); instance i goes on
    connection i % nconn. Returns (secs, server CPU s)."""
    h = stow_headers(BOUNDARY)
    h.update(srv.auth())
    conns = [srv.conn() for _ in range(nconn)]
    bodies = [multipart([d], BOUNDARY) for d in ct.data]
    errors = []
    go = threading.Barrier(nconn + 1)

    def worker(k):
        go.wait()
        try:
            for i in range(k, len(bodies), nconn):
                st, _, _, body = conns[k].request("POST", "/dicom-web/studies", h, bodies[i], keep=True)
                if st != 200:
                    raise SystemExit("%s STOW instance %d: %d %r" % (srv.name, i, st, body[:300]))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(nconn)]
    for t in ts:
        t.start()
    c0 = cpu_s(srv.pid)
    go.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    t = time.perf_counter() - t0
    c1 = cpu_s(srv.pid)
    for c in conns:
        c.close()
    if errors:
        raise errors[0]
    return t, c1 - c0


def stow_all(srv, datas, check_n=True):
    c = srv.conn()
    h = stow_headers(BOUNDARY)
    h.update(srv.auth())
    body = multipart(datas, BOUNDARY)
    c0 = cpu_s(srv.pid)
    t0 = time.perf_counter()
    st, _, _, resp = c.request("POST", "/dicom-web/studies", h, body, keep=True)
    t = time.perf_counter() - t0
    c1 = cpu_s(srv.pid)
    c.close()
    if st != 200:
        raise SystemExit("%s STOW of %d instances: %d %r" % (srv.name, len(datas), st, resp[:300]))
    if check_n:
        n = len(json.loads(resp).get("00081199", {}).get("Value", []))
        if n != len(datas):
            raise SystemExit("%s STOW: %d of %d instances referenced" % (srv.name, n, len(datas)))
    return t, c1 - c0


def wado_series(srv, ct):
    """Best time of WADO_REPS retrievals of the series; returns (secs, body
    bytes, mode, server CPU s of the best)."""
    acc = {"Accept": 'multipart/related; type="application/dicom"'}
    acc.update(srv.auth())
    c = srv.conn()
    path = "/dicom-web/studies/%s/series/%s" % (ct.study, ct.series)
    st, hdrs, n, body = c.request("GET", path, acc, keep=True)
    if st == 200:
        mode = "series"
        # check once: as many application/dicom parts as instances, the right size
        parts = body.count(b"Content-Type: application/dicom") + body.count(b"content-type: application/dicom")
        if parts != len(ct.data) or n < ct.bytes:
            raise SystemExit("%s WADO series: %d parts, %d bytes" % (srv.name, parts, n))
    elif st == 404:
        mode = "instances"
    else:
        raise SystemExit("%s WADO series: %d %r" % (srv.name, st, body[:300]))
    del body
    paths = [path] if mode == "series" else ["%s/instances/%s" % (path, sop) for sop in ct.sops]
    if HTTP_GET:
        c.close()
        c0 = cpu_s(srv.pid)
        r = c_get(srv, paths, acc, WADO_REPS)
        cc = (cpu_s(srv.pid) - c0) / WADO_REPS
        if r["status"] != 200 or r["bytes"] < ct.bytes:
            raise SystemExit("%s WADO (http_get): %r" % (srv.name, r))
        return r["best_s"], r["bytes"], mode, cc, "C (bench/http_get.c)"
    best, best_cpu, total = float("inf"), 0.0, 0
    for _ in range(WADO_REPS):
        c0 = cpu_s(srv.pid)
        t0 = time.perf_counter()
        if mode == "series":
            st, _, total, _ = c.request("GET", path, acc)
            if st != 200:
                raise SystemExit("%s WADO series: %d" % (srv.name, st))
        else:
            total = 0
            for sop in ct.sops:
                st, _, n, _ = c.request("GET", "%s/instances/%s" % (path, sop), acc)
                if st != 200:
                    raise SystemExit("%s WADO instance: %d" % (srv.name, st))
                total += n
        t = time.perf_counter() - t0
        cc = cpu_s(srv.pid) - c0
        if t < best:
            best, best_cpu = t, cc
    c.close()
    if total < ct.bytes:
        raise SystemExit("%s WADO: %d bytes < %d" % (srv.name, total, ct.bytes))
    return best, total, mode, best_cpu, "Python (bench/dwclient.py)"


def c_get(srv, paths, headers, reps, port=None, tls=None, cafile=None):
    """GETs paths with bench/http_get (C, GnuTLS) on one connection, reps
    times; returns its key=value output as a dict."""
    tls = srv.tls if tls is None else tls
    cmd = [HTTP_GET, "-r", str(reps)]
    if tls:
        cmd += ["--tls", cafile or srv.cafile]
    for k, v in headers.items():
        cmd += ["-H", "%s: %s" % (k, v)]
    cmd += [HOST, str(port or srv.port), "-"]
    r = subprocess.run(cmd, input="\n".join(paths) + "\n", capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("http_get failed: %s" % r.stderr.strip()[-300:])
    out = {}
    for kv in r.stdout.split()[1:]:
        k, _, v = kv.partition("=")
        out[k] = float(v) if k not in ("status", "reqs", "bytes") else int(v)
    return out


def load_tiny(srv, make, start, end, deadline):
    """Loads tiny studies [start, end) from LOAD_THREADS connections: STOW
    in batches of 100 (dicomvault) or REST POST /instances (Orthanc). Stops
    at the deadline; returns the number loaded (a contiguous prefix)."""
    batch = 100
    lock = threading.Lock()
    nxt = [start]
    done = [0]
    errors = []
    ends = []

    def worker():
        c = srv.conn()
        h = stow_headers(BOUNDARY)
        h.update(srv.auth())
        try:
            while not errors:
                with lock:
                    a = nxt[0]
                    if a >= end or time.time() > deadline:
                        return
                    b = min(a + batch, end)
                    nxt[0] = b
                if isinstance(srv, Orthanc):
                    for i in range(a, b):
                        srv.load_one(c, make(i))
                else:
                    st, _, _, body = c.request("POST", "/dicom-web/studies", h,
                                               multipart([make(i) for i in range(a, b)], BOUNDARY), keep=True)
                    if st != 200:
                        raise SystemExit("dicomvault STOW of tiny studies: %d %r" % (st, body[:300]))
                with lock:
                    done[0] += b - a
                    ends.append((a, b))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            c.close()
    ts = [threading.Thread(target=worker) for _ in range(LOAD_THREADS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
    # the loaded prefix: batches are handed out in order, all finished
    return max((b for _, b in ends), default=start) - start


def qido(srv, ids, n_loaded, first=0):
    """p50/p90 (ms) of QIDO by StudyInstanceUID and by PatientID over one
    kept-alive connection; None when the route answers an error."""
    c = srv.conn()
    h = {"Accept": "application/dicom+json"}
    h.update(srv.auth())
    rnd = random.Random(7)
    picks = [first + rnd.randrange(n_loaded) for _ in range(QIDO_N)]
    out = {}
    for key in ("StudyInstanceUID", "PatientID"):
        lat = []
        # warm-up + check of the answer: exactly one study
        st_uid, pid = ids(picks[0])
        st, _, _, body = c.request("GET", "/dicom-web/studies?%s=%s" % (key, st_uid if key[0] == "S" else pid),
                                   h, keep=True)
        if st != 200:
            out[key] = ("n/a (%d)" % st, None, None)
            continue
        got = json.loads(body)
        if len(got) != 1:
            raise SystemExit("%s QIDO %s: %d studies" % (srv.name, key, len(got)))
        for i in picks:
            st_uid, pid = ids(i)
            path = "/dicom-web/studies?%s=%s" % (key, st_uid if key[0] == "S" else pid)
            t0 = time.perf_counter()
            st, _, _, _ = c.request("GET", path, h)
            lat.append(time.perf_counter() - t0)
            if st != 200:
                raise SystemExit("%s QIDO: %d" % (srv.name, st))
        out[key] = ("ok", pct(lat, 50) * 1e3, pct(lat, 90) * 1e3)
    c.close()
    return out


def blob_server(port, path, crt=None, key=None):
    """A trivial HTTP/1.1 server for the client ceiling: every GET on a
    connection is answered with the file's bytes (Content-Length), sent from
    memory with one sendall (TLS 1.3 through Python's ssl, i.e. OpenSSL,
    when crt and key are given). One connection at a time."""
    data = open(path, "rb").read()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % len(data)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((HOST, port))
    ls.listen(4)
    ctx = None
    if crt:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(crt, key)
    while True:
        s, _ = ls.accept()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if ctx:
                s = ctx.wrap_socket(s, server_side=True)
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    b = s.recv(65536)
                    if not b:
                        raise EOFError
                    buf += b
                buf = buf.split(b"\r\n\r\n", 1)[1]
                s.sendall(head)
                s.sendall(data)
        except (OSError, EOFError):
            pass
        finally:
            s.close()


def client_ceiling(tmp, nbytes):
    """The client alone: GETs of a file of nbytes from a trivial server
    (blob_server: plain HTTP, and TLS 1.3 by OpenSSL); best of 3, MB/s. A
    client that is not the bottleneck reads far faster than the servers
    under test send."""
    d = tempfile.mkdtemp(prefix="ceiling.", dir=tmp)
    with open(os.path.join(d, "blob.bin"), "wb") as f:
        f.write(os.urandom(1 << 20) * (nbytes >> 20))
    size = os.path.getsize(os.path.join(d, "blob.bin"))
    key, crt = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", crt], capture_output=True, check=True)
    res = {}
    for kind in ("tls", "plain"):
        port = free_port()
        cmd = [sys.executable, os.path.abspath(__file__), "--blob-server", str(port), "blob.bin"]
        if kind == "tls":
            cmd += [crt, key]
        p = subprocess.Popen(cmd, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL)
        try:
            best = float("inf")
            for _ in range(40):
                try:
                    socket.create_connection((HOST, port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            if HTTP_GET:
                r = c_get(None, ["/blob.bin"], {}, 3, port=port, tls=(kind == "tls"), cafile=crt)
                if r["status"] != 200 or r["bytes"] != size:
                    raise SystemExit("client ceiling (http_get) %s: %r" % (kind, r))
                res[kind + "_c"] = r["mb_per_s"]
            for _ in range(3):
                c = Conn(HOST, port, tls=(kind == "tls"), cafile=crt)
                t0 = time.perf_counter()
                st, _, n, _ = c.request("GET", "/blob.bin")
                t = time.perf_counter() - t0
                c.close()
                if st != 200 or n != size:
                    raise SystemExit("client ceiling %s: %d, %d bytes" % (kind, st, n))
                best = min(best, t)
            res[kind] = size / best / 1e6
        finally:
            p.terminate()
            p.wait()
    shutil.rmtree(d, ignore_errors=True)
    return res


# ---------------------------------------------------------------- main

def start_server(kind, tmp, dv):
    """A fresh server of kind "orthanc" or "vault" with its store under tmp."""
    return Orthanc(tmp) if kind == "orthanc" else Vault(tmp, dv)


def bench_server(kind, tmp, dv, ct, mf, make, ids, run):
    R = {"stow1_more": []}   # filled by main's alternated runs

    def start():
        return start_server(kind, tmp, dv)
    # a. one instance per request, fresh server
    s = start()
    R["version"] = s.version if kind == "vault" else "%s + DICOMweb %s" % (s.version, s.dw_version)
    try:
        log(kind, "STOW one instance per request")
        hwm_reset(s.pid)
        t, cpu = stow_each(s, ct)
        R["stow1_s"], R["stow1_cpu"], R["stow1_rss"] = t, cpu, hwm_mb(s.pid)
        # b. series retrieval
        log(kind, "WADO-RS series")
        hwm_reset(s.pid)
        t, n, mode, cpu, client = wado_series(s, ct)
        R["wado_s"], R["wado_bytes"], R["wado_mode"], R["wado_cpu"], R["wado_rss"] = t, n, mode, cpu, hwm_mb(s.pid)
        R["wado_client"] = client
        # d. the ~210 MB multi-frame file, one STOW request
        log(kind, "STOW of the multi-frame file")
        hwm_reset(s.pid)
        R["mf_rss_before"] = rss_mb(s.pid)
        t, cpu = stow_all(s, [mf])
        R["mf_s"], R["mf_cpu"], R["mf_rss"] = t, cpu, hwm_mb(s.pid)
        # c. QIDO
        log(kind, "loading %d tiny studies" % QIDO_SMALL)
        t0 = time.time()
        n = load_tiny(s, make, 0, QIDO_SMALL, t0 + QIDO_LOAD_MAX_S)
        R["load_small_s"] = time.time() - t0
        R["load_small_n"] = n
        q = qido(s, ids, n)
        R["qido_small"] = q
        R["qido_small_studies"] = n + 2
        R["qido_large"] = None
        if QIDO_LARGE and q["StudyInstanceUID"][0] != "ok" and q["PatientID"][0] != "ok" \
                and os.environ.get("BENCH_QIDO_FORCE_LOAD") != "1":
            R["qido_large"] = ("skipped", "QIDO answers %s: the %d studies were not loaded"
                               % (q["StudyInstanceUID"][0][5:-1], QIDO_LARGE))
        elif QIDO_LARGE:
            log(kind, "loading up to %d tiny studies (at most %.0f s)" % (QIDO_LARGE, QIDO_LOAD_MAX_S))
            hwm_reset(s.pid)
            t0 = time.time()
            m = load_tiny(s, make, n, QIDO_LARGE, t0 + QIDO_LOAD_MAX_S)
            tl = time.time() - t0
            log(kind, "loaded %d more in %.0f s (%.0f/s)" % (m, tl, m / tl))
            ql = qido(s, ids, n + m)
            R["qido_large"] = ("ok", ql, n + m + 2, tl, m, hwm_mb(s.pid))
    finally:
        s.stop()
    # a'. whole series in one request, fresh server
    s = start()
    try:
        log(kind, "STOW of the series in one request")
        hwm_reset(s.pid)
        t, cpu = stow_all(s, ct.data)
        R["stowN_s"], R["stowN_cpu"], R["stowN_rss"] = t, cpu, hwm_mb(s.pid)
    finally:
        s.stop()
    # a''. one instance per request from STOW_CONNS connections, fresh server
    s = start()
    try:
        log(kind, "STOW one instance per request, %d connections" % STOW_CONNS)
        hwm_reset(s.pid)
        t, cpu = stow_each_parallel(s, ct, STOW_CONNS)
        R["stowP_s"], R["stowP_cpu"], R["stowP_rss"] = t, cpu, hwm_mb(s.pid)
    finally:
        s.stop()
    return R


def main():
    global HTTP_GET
    dv, corpus, outdir = sys.argv[1], sys.argv[2], sys.argv[3]
    hg = os.environ.get("BENCH_HTTP_GET", os.path.join(os.path.dirname(dv), "bench", "http_get"))
    HTTP_GET = hg if hg and os.access(hg, os.X_OK) else None
    tmp = tempfile.mkdtemp(prefix="dvsrvbench.", dir=os.environ.get("BENCH_TMP", "/tmp"))
    try:
        ct = CT(corpus)
        mfp = os.path.join(corpus, "mf", "enhanced_ct_210.dcm")
        mf = open(mfp, "rb").read()
        run = random.Random().randrange(10**9, 10**10)
        make, ids = tiny_maker(run)
        load0 = open("/proc/loadavg").read().split()[:3]
        log("client ceiling")
        ceil = client_ceiling(tmp, ct.bytes)
        res = {}
        for kind in ("orthanc", "vault"):
            res[kind] = bench_server(kind, tmp, dv, ct, mf, make, ids, run)
        # one run is at the mercy of this shared machine (either server's
        # figure moves by up to 2x between runs): more runs, alternated
        for r in range(STOW_ROUNDS):
            for kind in (("vault", "orthanc") if r % 2 == 0 else ("orthanc", "vault")):
                s = start_server(kind, tmp, dv)
                try:
                    log(kind, "STOW one instance per request, run %d of %d more" % (r + 1, STOW_ROUNDS))
                    res[kind]["stow1_more"].append(stow_each(s, ct))
                finally:
                    s.stop()
        load1 = open("/proc/loadavg").read().split()[:3]
        report(outdir, ct, len(mf), ceil, res, load0, load1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report(outdir, ct, mf_bytes, ceil, res, load0, load1):
    O, V = res["orthanc"], res["vault"]
    N = len(ct.data)
    MB = ct.bytes / 1e6

    def f0(x):
        return "%.0f" % x

    def ratio(a, b):
        return "%.2fx" % (a / b) if b else "n/a"

    def status(ok):
        return "met" if ok else "**missed**"

    def fq(q):
        return "%.2f / %.2f" % (q[1], q[2]) if q[0] == "ok" else q[0]
    L = []
    L.append("## 5. DICOMweb servers: dicomvault vs Orthanc (issue 3)")
    L.append("")
    L.append("Orthanc %s, plain HTTP, its defaults + TcpNoDelay; dicomvault %s over HTTPS (TLS 1.3), objects "
             "encrypted, every store durable (fsync) and audited. Both on 127.0.0.1, each phase on a fresh "
             "temporary store on the same file system; one client connection unless said. Load average %s at "
             "the start of this section, %s at its end. Throughput is wall-clock time at the client; server "
             "CPU is user + system time of the server process over the same interval."
             % (O["version"], V["version"], " ".join(load0), " ".join(load1)))
    L.append("")
    L.append("| measure | Orthanc | dicomvault | dicomvault / Orthanc | target | status |")
    L.append("|---|---:|---:|---:|---|---|")
    o1s, v1s = ([N / R["stow1_s"]] + [N / t for t, _ in R["stow1_more"]] for R in (O, V))
    o1, v1 = statistics.median(o1s), statistics.median(v1s)
    oN, vN = N / O["stowN_s"], N / V["stowN_s"]
    oP, vP = N / O["stowP_s"], N / V["stowP_s"]
    L.append("| a. STOW-RS, 1 instance per request, 1 connection (%d requests), instances/s, median of %d runs "
             "(Orthanc %s; dicomvault %s) | %s | %s | **%s** | >= 3x | %s |"
             % (N, len(v1s), " ".join(f0(x) for x in o1s), " ".join(f0(x) for x in v1s), f0(o1), f0(v1),
                ratio(v1, o1), status(v1 >= 3 * o1)))
    L.append("| a. same, MB/s | %.1f | %.1f | | | |" % (o1 * MB / N, v1 * MB / N))
    L.append("| a. STOW-RS, 1 instance per request, %d connections at once, instances/s | %s | %s | %s | "
             "(>= 3x) | %s |" % (STOW_CONNS, f0(oP), f0(vP), ratio(vP, oP), status(vP >= 3 * oP)))
    L.append("| a. STOW-RS, the whole series in 1 request, instances/s | %s | %s | %s | (>= 3x) | %s |"
             % (f0(oN), f0(vN), ratio(vN, oN), status(vN >= 3 * oN)))
    L.append("| a. same, MB/s | %.1f | %.1f | | | |" % (MB / O["stowN_s"], MB / V["stowN_s"]))
    L.append("| a. server CPU per instance (1 per request, 1 connection / whole series), ms | %.2f / %.2f | "
             "%.2f / %.2f | | | |" % (O["stow1_cpu"] / N * 1e3, O["stowN_cpu"] / N * 1e3,
                                     V["stow1_cpu"] / N * 1e3, V["stowN_cpu"] / N * 1e3))
    ow, vw = O["wado_bytes"] / O["wado_s"] / 1e6, V["wado_bytes"] / V["wado_s"] / 1e6
    how = {"series": "series route", "instances": "**per instance** (series route answers 404: %d GETs)" % N}
    L.append("| b. WADO-RS series retrieval, MB/s (Orthanc: %s, HTTP; dicomvault: %s, TLS) | %s | %s | **%s** | "
             ">= 1.5x | %s |" % (how[O["wado_mode"]], how[V["wado_mode"]], f0(ow), f0(vw), ratio(vw, ow),
                                 status(vw >= 1.5 * ow) + ("" if V["wado_mode"] == "series" else " (fallback)")))
    L.append("| b. server CPU for the series, s | %.2f | %.2f | | | |" % (O["wado_cpu"], V["wado_cpu"]))
    for key in ("StudyInstanceUID", "PatientID"):
        oq, vq = O["qido_small"][key], V["qido_small"][key]
        L.append("| c. QIDO-RS ?%s=, %d studies, p50 / p90 ms | %s | %s | %s | p50 <= 1 ms | %s |"
                 % (key, V["qido_small_studies"], fq(oq), fq(vq),
                    ratio(oq[1], vq[1]) if oq[0] == vq[0] == "ok" else "n/a",
                    status(vq[1] <= 1.0) if vq[0] == "ok" else "n/a"))
    o, v = O["qido_large"], V["qido_large"]
    if o is None and v is None:
        L.append("| c. QIDO-RS with 100,000 studies | not run (BENCH_QIDO_LARGE=1) | | | p50 <= 2 ms | |")
    else:
        for key in ("StudyInstanceUID", "PatientID"):
            def fl(x):
                if x is None:
                    return "not run"
                if x[0] != "ok":
                    return x[1]
                q = x[1][key]
                return ("%s (%d studies)" % (fq(q), x[2])) if q[0] == "ok" else q[0]
            vok = v is not None and v[0] == "ok" and v[1][key][0] == "ok"
            L.append("| c. QIDO-RS ?%s=, large set, p50 / p90 ms | %s | %s | | p50 <= 2 ms at 100,000 | %s |"
                     % (key, fl(o), fl(v), status(v[1][key][1] <= 2.0) if vok else "n/a"))
    rv = max(V["stow1_rss"], V["stowN_rss"], V["stowP_rss"])
    L.append("| d. peak RSS during a (1 per request / %d connections / whole series), MB | %.0f / %.0f / %.0f | "
             "%.0f / %.0f / %.0f | | <= 64 | %s |"
             % (STOW_CONNS, O["stow1_rss"], O["stowP_rss"], O["stowN_rss"], V["stow1_rss"], V["stowP_rss"],
                V["stowN_rss"], status(rv <= 64)))
    L.append("| d. peak RSS during b, MB | %.0f | %.0f | | <= 64 | %s |"
             % (O["wado_rss"], V["wado_rss"], status(V["wado_rss"] <= 64)))
    L.append("| d. peak RSS during the STOW of one %.0f MB multi-frame file, MB | %.0f | %.0f | | <= 64 | %s |"
             % (mf_bytes / 1e6, O["mf_rss"], V["mf_rss"], status(V["mf_rss"] <= 64)))
    L.append("| d. that upload, MB/s | %.1f | %.1f | %s | | |"
             % (mf_bytes / O["mf_s"] / 1e6, mf_bytes / V["mf_s"] / 1e6, ratio(O["mf_s"], V["mf_s"])))
    L.append("")
    L.append("The issue's 3x is on instances/s of one instance per request: that is what a modality or a "
             "forwarding gateway does (one C-STORE, or one STOW-RS POST, per instance, on one association or "
             "connection, or on a few at once), and it is the harder case for a store that makes each "
             "instance durable before it answers. The whole-series request is shown too (a bulk import), and "
             "several connections at once (a gateway with parallel associations).")
    L.append("")
    L.append("Clients: STOW and QIDO with bench/dwclient.py (Python, OpenSSL through `ssl`, bodies sent with "
             "sendall from memory); WADO with %s. The clients alone, one GET of a %.0f MB file, best of 3: "
             "from a trivial server sending it from memory (bench/server_bench.py --blob-server), over TLS 1.3 "
             "(OpenSSL) %s MB/s (C) / %.0f MB/s (Python), over plain HTTP %s / %.0f MB/s. These are lower "
             "bounds of the clients' speed (the trivial server shares the 2 cores); a server figure near them "
             "would be client-bound."
             % (V.get("wado_client", "?"), ct.bytes / 1e6, f0(ceil["tls_c"]) if "tls_c" in ceil else "n/a",
                ceil["tls"], f0(ceil["plain_c"]) if "plain_c" in ceil else "n/a", ceil["plain"]))
    L.append("")
    L.append("Loading the QIDO studies (tiny 8x8 secondary captures, one study and patient each, %d "
             "connections): Orthanc REST `POST /instances`, %d in %.1f s (%.0f/s); dicomvault STOW-RS "
             "batches of 100, %d in %.1f s (%.0f/s)."
             % (LOAD_THREADS, O["load_small_n"], O["load_small_s"], O["load_small_n"] / O["load_small_s"],
                V["load_small_n"], V["load_small_s"], V["load_small_n"] / V["load_small_s"]))
    for name, x in (("Orthanc", O["qido_large"]), ("dicomvault", V["qido_large"])):
        if x and x[0] == "ok":
            L.append("Large QIDO set, %s: %d more studies loaded in %.0f s (%.0f/s), peak RSS while loading "
                     "and querying %.0f MB."
                     % (name, x[4], x[3], x[4] / x[3], x[5]))
        elif x:
            L.append("Large QIDO set, %s: %s." % (name, x[1]))
    L.append("")
    # rows for the Targets table at the top of results.md (run.sh): wall-clock
    # only (the servers' CPU is beside them in section 5)
    T = []
    T.append("| STOW-RS 1 instance per request vs Orthanc (section 5), instances/s | %s (wall) | %s (wall) | %s (wall) | >= 3x | %s |"
             % (f0(v1), f0(o1), ratio(v1, o1), status(v1 >= 3 * o1)))
    T.append("| WADO-RS series vs Orthanc (HTTP; ours TLS%s), MB/s | %s (wall) | %s (wall) | %s (wall) | >= 1.5x | %s |"
             % ("" if V["wado_mode"] == "series" else ", per instance: series route 404", f0(vw), f0(ow),
                ratio(vw, ow), status(vw >= 1.5 * ow)))
    vq = V["qido_small"]["StudyInstanceUID"]
    T.append("| QIDO-RS one study, p50, %d studies, ms | %s | %s | | <= 1 | %s |"
             % (V["qido_small_studies"], "%.2f" % vq[1] if vq[0] == "ok" else vq[0],
                "%.2f" % O["qido_small"]["StudyInstanceUID"][1] if O["qido_small"]["StudyInstanceUID"][0] == "ok"
                else "n/a", status(vq[1] <= 1.0) if vq[0] == "ok" else "n/a"))
    T.append("| server peak RSS, any STOW (210 MB file included) or WADO, MB | %.0f | %.0f | | <= 64 | %s |"
             % (max(rv, V["wado_rss"], V["mf_rss"]), max(O["stow1_rss"], O["stowN_rss"], O["stowP_rss"],
                                                         O["wado_rss"], O["mf_rss"]),
                status(max(rv, V["wado_rss"], V["mf_rss"]) <= 64)))
    with open(os.path.join(outdir, "server_targets.md"), "w") as f:
        f.write("\n".join(T) + "\n")
    md = "\n".join(L) + "\n"
    with open(os.path.join(outdir, "server.md"), "w") as f:
        f.write(md)
    with open(os.path.join(outdir, "server.json"), "w") as f:
        json.dump({"orthanc": O, "vault": V, "ceiling": ceil}, f, indent=1, default=str)
    sys.stdout.write(md)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--blob-server":
        blob_server(int(sys.argv[2]), sys.argv[3], *sys.argv[4:6])
    else:
        main()
