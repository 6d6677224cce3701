#!/usr/bin/python3
"""access_bench.py DV: the cost of authorisation (issue 4): QIDO-RS (one
study by StudyInstanceUID) and WADO-RS metadata latency, p50 and p90 over
one kept-alive TLS connection, for
  * the first admin (one grant on everything),
  * a physician with 10 collection grants in a vault of 100 collections and
    10,000 grants (the others belong to 1,000 other users),
  * a physician holding 10,000 grants of its own (the worst case: every
    request reads them all).
Prints a Markdown table; the target is the second row within 10% of the
first. The grants of the crowd are written into the index with sqlite3
directly (bench only: 10,000 `user grant` commands would take minutes)."""
import http.client
import io
import json
import os
import shutil
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

DV = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/release/dicomvault")
NCOLL, NGRANTS, NUSERS, REPS = 100, 10000, 1000, int(os.environ.get("BENCH_ACCESS_REPS", "300"))
PW = "a long enough password 1"


def sh(*a, **kw):
    return subprocess.run(list(a), capture_output=True, text=True, **kw)


def dicom(dept):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Bench^" + dept
    ds.PatientID = "B-" + dept
    ds.Modality = "OT"
    ds.InstitutionalDepartmentName = dept
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(64)
    b = io.BytesIO()
    ds.save_as(b, write_like_original=False)
    return ds.StudyInstanceUID, b.getvalue()


class Client:
    def __init__(self, port, cafile):
        ctx = ssl.create_default_context(cafile=cafile)
        self.c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
        self.tok = None

    def req(self, method, path, body=None, headers=None):
        h = dict(headers or {})
        if self.tok:
            h["Authorization"] = "Bearer " + self.tok
        self.c.request(method, path, body=body, headers=h)
        r = self.c.getresponse()
        return r.status, r.read()

    def login(self, user, pw, secret):
        code = sh("oathtool", "--totp", "-b", secret).stdout.strip()
        st, body = self.req("POST", "/api/auth/login", json.dumps({"username": user, "password": pw, "totp": code}),
                            {"Content-Type": "application/json"})
        if st != 200:
            raise SystemExit(f"login {user}: {st} {body[:200]!r}")
        self.tok = json.loads(body)["token"]


def timed(cl, path, accept):
    ts = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        st, _ = cl.req("GET", path, headers={"Accept": accept})
        ts.append((time.perf_counter() - t0) * 1000)
        if st != 200:
            raise SystemExit(f"{path}: {st}")
    ts.sort()
    return statistics.median(ts), ts[int(len(ts) * 0.9)]


def main():
    T = tempfile.mkdtemp(prefix="dv_access_bench.")
    srv = None
    try:
        pwf = os.path.join(T, "pw")
        with open(os.open(pwf, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(PW + "\n")
        vdir = os.path.join(T, "v")
        p = sh(DV, "init", "--vault", vdir, "--password-file", pwf, "--json")
        admin_secret = json.loads(p.stdout)["totp_secret"]
        with open(os.path.join(vdir, "dicomvault.conf"), "a") as f:
            for i in range(NCOLL):
                f.write(f'\n[collection "c{i:03d}"]\nmatch = InstitutionalDepartmentName=D{i:03d}\n')
        secrets = {}
        for u in ("phys", "heavy", "crowd"):
            p = sh(DV, "user", "add", u, "--role", "physician", "--collection", "c007", "--password-file", pwf,
                   "--vault", vdir, "--json")
            secrets[u] = json.loads(p.stdout)["totp_secret"]
        # the crowd: 1,000 users and 10,000 grants, straight into the index
        db = sqlite3.connect(os.path.join(vdir, "index.db"))
        now = int(time.time())
        ids = {u: db.execute("SELECT id FROM users WHERE name = ?", (u,)).fetchone()[0] for u in ("phys", "heavy")}
        blob = db.execute("SELECT totp_wrapped, pwhash FROM users WHERE name = 'crowd'").fetchone()
        for i in range(NUSERS):
            db.execute("INSERT INTO users (name, role, pwhash, totp_wrapped, totp_last_step, failures, locked_until,"
                       " disabled, expires, created) VALUES (?, 'physician', ?, ?, 0, 0, 0, 0, 0, ?)",
                       (f"crowd{i:04d}", blob[1], blob[0], now))
        crowd = [r[0] for r in db.execute("SELECT id FROM users WHERE name LIKE 'crowd0%'")]
        rows = []
        for i in range(NGRANTS - 10):
            rows.append((crowd[i % len(crowd)], f"collection:c{i % NCOLL:03d}", now))
        for i in range(10):   # phys: 10 grants among the 10,000
            rows.append((ids["phys"], f"collection:c{i:03d}", now))
        for i in range(NGRANTS):   # heavy: 10,000 of its own
            rows.append((ids["heavy"], f"collection:c{i % NCOLL:03d}", now))
        db.executemany("INSERT INTO grants (user_id, role, scope, created, created_by) VALUES (?, 'physician', ?, ?,"
                       " 'bench')", rows)
        db.commit()
        db.close()
        # serve and load one study per collection
        s = __import__("socket").socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        out = open(os.path.join(T, "serve.out"), "w+")
        srv = subprocess.Popen([DV, "serve", "--vault", vdir, "--http", f"127.0.0.1:{port}"], stdout=out,
                               stderr=open(os.path.join(T, "serve.err"), "w"))
        for _ in range(200):
            out.seek(0)
            if "serving" in out.read():
                break
            time.sleep(0.05)
        ca = os.path.join(vdir, "keys", "tls.crt")
        adm = Client(port, ca)
        adm.login("admin", PW, admin_secret)
        studies = {}
        parts = []
        for i in range(NCOLL):
            uid, data = dicom(f"D{i:03d}")
            studies[i] = uid
            parts.append(data)
        b = uuid.uuid4().hex
        body = b"".join(b"--" + b.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + d + b"\r\n"
                        for d in parts) + b"--" + b.encode() + b"--\r\n"
        st, _ = adm.req("POST", "/dicom-web/studies", body,
                        {"Content-Type": f'multipart/related; type="application/dicom"; boundary={b}'})
        if st != 200:
            raise SystemExit(f"STOW: {st}")
        users = [("admin: 1 grant (*)", adm)]
        for u, label in (("phys", "physician: 10 of 10,000 grants, 100 collections"),
                         ("heavy", "physician holding 10,000 grants")):
            time.sleep(0.05)
            c = Client(port, ca)
            c.login(u, PW, secrets[u])
            users.append((label, c))
        study = studies[7]
        q = f"/dicom-web/studies?StudyInstanceUID={study}"
        m = f"/dicom-web/studies/{study}/metadata"
        res = []
        for label, c in users:
            timed(c, q, "application/dicom+json")   # warm
            res.append((label, timed(c, q, "application/dicom+json"), timed(c, m, "application/dicom+json")))
        base_q, base_m = res[0][1][0], res[0][2][0]
        print("| who | QIDO p50 / p90 (ms) | ratio | WADO metadata p50 / p90 (ms) | ratio |")
        print("|---|---:|---:|---:|---:|")
        for label, (q50, q90), (m50, m90) in res:
            print(f"| {label} | {q50:.2f} / {q90:.2f} | {q50 / base_q:.2f} | {m50:.2f} / {m90:.2f} | "
                  f"{m50 / base_m:.2f} |")
        worst = max(res[1][1][0] / base_q, res[1][2][0] / base_m)
        print(f"\ntarget: the 10,000-grant vault within 10% of the admin: {'met' if worst <= 1.10 else 'missed'}"
              f" (worst ratio {worst:.2f})")
    finally:
        if srv is not None:
            srv.terminate()
            srv.wait(10)
        shutil.rmtree(T, ignore_errors=True)


main()
