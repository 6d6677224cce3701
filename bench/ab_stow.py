"""ab_stow.py: compares two dicomvault builds on the STOW-RS ingest and the
WADO-RS retrieval of the 300-slice CT, alternating them so that both see the
same neighbours' load (a change in src/ checked before and after; not part
of `make bench`). For each round, each build, with the vault's objects/xx/yy
directories absent (a new vault) and then made beforehand (a mature vault):
instances/s of one instance per request on one connection, the server's
CPU per instance, then the retrieval (series route, or per instance while it
answers 404). CPU per instance is the figure to compare on a busy machine.

Usage: ab_stow.py DV_A DV_B [CORPUS] [ROUNDS]
  e.g. ab_stow.py build/release/dicomvault /tmp/other/build/release/dicomvault
"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_bench as sb  # noqa: E402


def main():
    a, b = sys.argv[1], sys.argv[2]
    corpus = sys.argv[3] if len(sys.argv) > 3 else "bench/corpus"
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    hg = os.path.join(os.path.dirname(a), "bench", "http_get")
    sb.HTTP_GET = hg if os.access(hg, os.X_OK) else None
    sb.WADO_REPS = 2
    ct = sb.CT(corpus)
    # every server's files are removed at the end only (server_bench's Server.stop says why)
    tmp = tempfile.mkdtemp(prefix="dvab.", dir=os.environ.get("BENCH_TMP", "/tmp"))
    try:
        for _ in range(rounds):
            for dirs in (False, True):
                for name, dv in (("A", a), ("B", b)):
                    s = sb.Vault(tmp, dv)
                    try:
                        if dirs:
                            od = os.path.join(s.dir, "v", "objects")
                            for x in range(256):
                                for y in range(256):
                                    os.makedirs(os.path.join(od, "%02x" % x, "%02x" % y), 0o700, exist_ok=True)
                            os.sync()
                        t, cpu = sb.stow_each(s, ct)
                        tw, n, mode, wcpu, _ = sb.wado_series(s, ct)
                        print("%s dirs=%-5s STOW %4.0f inst/s, CPU %.2f ms/inst | WADO (%s) %4.0f MB/s, CPU %.2f ms/inst"
                              " | load %s" % (name, "made" if dirs else "new", len(ct.data) / t, cpu / len(ct.data) * 1e3,
                                              mode, n / tw / 1e6, wcpu / len(ct.data) * 1e3,
                                              open("/proc/loadavg").read().split()[0]), flush=True)
                    finally:
                        s.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
