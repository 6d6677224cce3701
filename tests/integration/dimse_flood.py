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

Run as /usr/bin/python3 tests/integration/dimse_flood.py build/check/dicomvault.
Prints ok/not ok lines; exits 1 if any check failed. Layer: tests."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import Tap  # noqa: E402

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
    hp, dp = free_port(), free_port()
    srv = subprocess.Popen([DV, "serve", "--vault", T + "/v", "--http", "127.0.0.1:%d" % hp, "--dicom",
                            "127.0.0.1:%d" % dp], stdout=open(T + "/serve.out", "w"),
                           stderr=open(T + "/serve.err", "w"))
    for _ in range(300):
        if "DICOM-TLS" in open(T + "/serve.out").read():
            break
        time.sleep(0.1)
    check("serve with max_associations = 8", "DICOM-TLS" in open(T + "/serve.out").read(),
          open(T + "/serve.err").read()[-400:])
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


def cleanup():
    if srv is not None:
        srv.terminate()
        try:
            srv.wait(20)
        except subprocess.TimeoutExpired:
            srv.kill()
    shutil.rmtree(T, ignore_errors=True)


TAP.run(main, cleanup)
