#!/usr/bin/python3
"""dimse_flood.py DV: a plain TCP connect flood from one address (no TLS,
no certificate, nothing sent) against the DICOM-TLS listener at capacity
does not lock a configured peer out. At capacity the listener evicts a
connection without an accepted association; it used to evict the oldest
of them whoever opened it, so a flood from 127.0.0.66 evicted the peer's
connection during its TLS handshake ("Peer aborted Association"). It now
evicts from the host holding the most such connections, and a connection
whose handshake is done last. [dicom] max_associations = 8 here, so that
even a slow flood keeps the listener full (the choice itself is unit-tested
in dimse_test, evict_choice: the flood here may be too slow on a loaded
machine to evict the peer on the old code).

Then, with max_associations = 1 and an accepted association held open
(lib/dul.py), nothing can be evicted: a new association is answered with
an A-ASSOCIATE-RJ, rejected-transient, service provider (presentation),
local limit exceeded (PS3.8 9.3.4), which echoscu prints, and audited once
per 10 s however many are refused; it used to be closed unanswered ("Peer
aborted Association" with no reason). Once the held one is released, a
new echoscu succeeds.

Run as /usr/bin/python3 tests/integration/dimse_flood.py build/check/dicomvault.
Prints ok/not ok lines; exits 1 if any check failed. Layer: tests."""
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import Tap  # noqa: E402
import dul  # noqa: E402

TAP = Tap("dimse_flood")
check, skip = TAP.check, TAP.skip
DV = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/check/dicomvault")
if shutil.which("storescu") is None or shutil.which("openssl") is None:
    skip("no storescu or openssl")
try:
    import dsgen
except ImportError:
    skip("no pydicom")

T = tempfile.mkdtemp(prefix="dv-flood.")
srv = None
N = 6


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def store(dp):
    p = subprocess.run(["storescu", "-to", "20", "-ta", "20", "-td", "20", "+tls", T + "/peer.key", T + "/peer.crt",
                        "+cf", T + "/v/keys/tls.crt", "-aet", "STORESCU", "-aec", "DICOMVAULT", "127.0.0.1", str(dp),
                        T + "/one.dcm"], capture_output=True, text=True)
    return p.returncode == 0, (p.stdout + p.stderr).strip().splitlines()[-1:]


def echo(dp):
    p = subprocess.run(["echoscu", "-to", "20", "-ta", "20", "-td", "20", "+tls", T + "/peer.key", T + "/peer.crt",
                        "+cf", T + "/v/keys/tls.crt", "-aet", "STORESCU", "-aec", "DICOMVAULT", "127.0.0.1", str(dp)],
                       capture_output=True, text=True)
    return p.returncode == 0, p.stdout + p.stderr


def serve(max_assoc):
    """serve with [dicom] max_associations = max_assoc: its DICOM port."""
    global srv
    with open(T + "/v/dicomvault.conf") as f:
        conf = f.read()
    conf = re.sub(r"max_associations = \d+\n", "max_associations = %d\n" % max_assoc, conf, 1)
    with open(T + "/v/dicomvault.conf", "w") as f:
        f.write(conf)
    hp, dp = free_port(), free_port()
    srv = subprocess.Popen([DV, "serve", "--vault", T + "/v", "--http", "127.0.0.1:%d" % hp, "--dicom",
                            "127.0.0.1:%d" % dp], stdout=open(T + "/serve.out", "w"),
                           stderr=open(T + "/serve.err", "w"))
    for _ in range(300):
        if "DICOM-TLS" in open(T + "/serve.out").read():
            break
        time.sleep(0.1)
    check("serve with max_associations = %d" % max_assoc, "DICOM-TLS" in open(T + "/serve.out").read(),
          open(T + "/serve.err").read()[-400:])
    return dp


def at_limit():
    """max_associations = 1, held by an accepted association: the next is
    rejected, transient, local limit exceeded; audited once."""
    srv.terminate()
    srv.wait(20)
    dp = serve(1)
    held = dul.connect(dp, T + "/peer.crt", T + "/peer.key", T + "/v/keys/tls.crt")
    held.sendall(dul.assoc_rq("STORESCU", "DICOMVAULT", [(1, dul.VERIFICATION, [dul.IMPLICIT])]))
    t, _ = dul.read_pdu(held)
    check("an association accepted and held open", t == 2, t)
    res = [echo(dp) for _ in range(3)]
    out = res[0][1].lower()
    check("at the limit: echoscu +tls is rejected, transient, local limit exceeded",
          not any(r[0] for r in res) and "transient" in out and "local limit exceeded" in out, res[0][1][-400:])
    check("the two after it too", all("local limit exceeded" in r[1].lower() for r in res[1:]),
          [r[1][-200:] for r in res[1:]])
    # connections that say nothing: 4 are waited for (a short while, for
    # a TLS handshake), the rest closed at once, so memory stays bounded
    time.sleep(0.5)
    silent = [socket.create_connection(("127.0.0.1", dp), timeout=5) for _ in range(8)]
    time.sleep(1.5)
    closed = len(select.select(silent, [], [], 0)[0])
    for x in silent:
        x.close()
    check("at the limit: of 8 silent connections, 4 closed at once", closed == 4, closed)
    held.sendall(dul.RELEASE_RQ)
    t, _ = dul.read_pdu(held)
    held.close()
    check("the held association released", t == 6, t)
    ok, txt = echo(dp)
    check("after the release: echoscu +tls succeeds", ok, txt[-400:])
    srv.terminate()
    srv.wait(20)
    log = open(T + "/serve.err").read()
    check("no sanitizer report (at the limit)", "Sanitizer" not in log and "runtime error" not in log, log[-600:])
    recs = []
    with open(T + "/v/audit/audit.log") as f:
        for line in f:
            try:
                recs.append(json.loads(line))
            except ValueError:
                pass
    den = [x for x in recs if x.get("action") == "dicom-association" and x.get("outcome") == "denied" and
           "local limit exceeded" in x.get("reason", "")]
    check("audit: one record for the three refused within 10 s, naming the peer",
          len(den) == 1 and den[0]["actor"].get("user") == "STORESCU" and den[0]["actor"].get("cert"),
          [(x.get("reason"), x.get("actor")) for x in den])


def main():
    global srv
    pw = os.path.join(T, "pw")
    with open(os.open(pw, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write("correct horse battery staple\n")
    subprocess.run([DV, "init", "--vault", T + "/v", "--password-file", pw, "--json"], check=True,
                   capture_output=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=peer", "-keyout", T + "/peer.key", "-out", T + "/peer.crt"],
                   check=True, capture_output=True)
    fp = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", T + "/peer.crt"],
                        capture_output=True, text=True).stdout.strip().split("=")[1]
    with open(T + "/v/dicomvault.conf") as f:
        conf = f.read()
    conf = conf.replace("[dicom]\n", "[dicom]\nmax_associations = 8\n", 1)
    conf += '\n[peer "STORESCU"]\nfingerprint = %s\nrights = echo, store\n' % fp
    with open(T + "/v/dicomvault.conf", "w") as f:
        f.write(conf)
    dsgen.sc("2.25.771234567", "2.25.771234", "2.25.771234.1", "FLOOD^TEST", "FLOOD1").save_as(
        T + "/one.dcm", write_like_original=False)
    dp = serve(8)
    ok = sum(store(dp)[0] for _ in range(N))
    check("storescu +tls without a flood: %d of %d" % (ok, N), ok == N)

    stop = [False]
    opened = [0]

    def flood():
        held = []
        while not stop[0]:
            try:
                held.append(socket.create_connection(("127.0.0.1", dp), timeout=2, source_address=("127.0.0.66", 0)))
                opened[0] += 1
            except OSError:
                time.sleep(0.01)
            if len(held) > 100:
                for s in held[:50]:
                    s.close()
                del held[:50]
        for s in held:
            s.close()

    ths = [threading.Thread(target=flood) for _ in range(2)]
    for t in ths:
        t.start()
    time.sleep(1)
    res = [store(dp) for _ in range(N)]
    stop[0] = True
    for t in ths:
        t.join()
    ok = sum(r[0] for r in res)
    check("during a plain TCP connect flood from 127.0.0.66 (%d connections): storescu +tls %d of %d" %
          (opened[0], ok, N), ok == N and opened[0] > 16, [r[1] for r in res if not r[0]][:2])
    log = open(T + "/serve.err").read()
    check("the listener said it evicted connections at capacity", "evicted" in log, log[-400:])
    check("no sanitizer report", "Sanitizer" not in log and "runtime error" not in log, log[-600:])
    ok = sum(store(dp)[0] for _ in range(2))
    check("after the flood: storescu +tls works", ok == 2)
    at_limit()


def cleanup():
    if srv is not None:
        srv.terminate()
        try:
            srv.wait(20)
        except subprocess.TimeoutExpired:
            srv.kill()
    shutil.rmtree(T, ignore_errors=True)


TAP.run(main, cleanup)
