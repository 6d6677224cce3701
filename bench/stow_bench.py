"""stow_bench.py: issue 3's STOW-RS ingest figure alone, side by side in one
run: Orthanc (HTTP, DICOMweb plugin) and dicomvault (HTTPS, encrypted,
fsync'd), and optionally a second dicomvault build (before/after a change),
over the 300-slice CT of bench/corpus: one instance per request on one
kept-alive connection, the whole series in one request, and one instance
per request from BENCH_STOW_CONNS (4) connections at once; each on a fresh
server, the servers alternated, ROUNDS (3) rounds, medians. Prints
instances/s, the server's CPU per instance and the ratios to Orthanc. The
full server benchmark (WADO, QIDO, RSS) is bench/server_bench.py.

Usage: stow_bench.py DV [DV_BEFORE] [CORPUS] [ROUNDS]
"""
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_bench as sb  # noqa: E402


def main():
    dv = sys.argv[1]
    before = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
    corpus = sys.argv[3] if len(sys.argv) > 3 else "bench/corpus"
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    ct = sb.CT(corpus)
    n = len(ct.data)
    kinds = [("Orthanc", None), ("dicomvault", dv)] + ([("dicomvault before", before)] if before else [])
    modes = [("1 per request", lambda s: sb.stow_each(s, ct)),
             ("series in 1 request", lambda s: sb.stow_all(s, ct.data)),
             ("1 per request, %d connections" % sb.STOW_CONNS, lambda s: sb.stow_each_parallel(s, ct, sb.STOW_CONNS))]
    res = {(k, m): [] for k, _ in kinds for m, _ in modes}
    # every server's files are removed at the end only (Server.stop says why)
    tmp = tempfile.mkdtemp(prefix="dvstow.", dir=os.environ.get("BENCH_TMP", "/tmp"))
    try:
        for r in range(rounds):
            for m, fn in modes:
                for k, path in kinds:
                    s = sb.Orthanc(tmp) if path is None else sb.Vault(tmp, path)
                    try:
                        t, cpu = fn(s)
                        res[(k, m)].append((n / t, cpu / n * 1e3))
                    finally:
                        s.stop()
            sys.stderr.write("round %d done, load %s\n" % (r + 1, open("/proc/loadavg").read().split()[0]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("STOW-RS of %d CT slices, median of %d rounds (servers alternated), load %s at the end."
          % (n, rounds, " ".join(open("/proc/loadavg").read().split()[:3])))
    print()
    print("| mode | " + " | ".join("%s inst/s (CPU ms/inst)" % k for k, _ in kinds) + " | dicomvault / Orthanc |"
          + (" dicomvault / before |" if before else ""))
    print("|---|" + "---:|" * len(kinds) + "---:|" + ("---:|" if before else ""))
    for m, _ in modes:
        med = {k: (statistics.median(x[0] for x in res[(k, m)]), statistics.median(x[1] for x in res[(k, m)]))
               for k, _ in kinds}
        row = "| %s | " % m + " | ".join("%.0f (%.2f)" % med[k] for k, _ in kinds)
        row += " | %.2fx |" % (med["dicomvault"][0] / med["Orthanc"][0])
        if before:
            row += " %.2fx |" % (med["dicomvault"][0] / med["dicomvault before"][0])
        print(row)
    print()
    print("runs (inst/s): " + "; ".join("%s %s: %s" % (k, m, " ".join("%.0f" % x[0] for x in res[(k, m)]))
                                       for k, _ in kinds for m, _ in modes))


if __name__ == "__main__":
    main()
