"""wado_ab.py: WADO-RS series retrieval, dicomvault (one or more builds,
TLS 1.3) against Orthanc (plain HTTP), measured in alternation in the same
run, so that the ratios compare like with like on a shared machine. Not part
of `make bench` (bench/server_bench.py section b is the reference figure);
a tool for judging a change to the read path (docs/BENCH.md, WADO).

Usage: wado_ab.py CORPUS ROUNDS DV [DV...]
  Starts Orthanc and one `dicomvault serve` per DV (each on its own fresh
  store), stores the 300-slice CT series into each (one request), then for
  ROUNDS rounds fetches the series from each server in turn with
  bench/http_get (next to the first DV; 3 GETs a round, best kept), and
  prints per round and as medians: MB/s, server CPU seconds per retrieval,
  client CPU per retrieval, server peak RSS, and each dicomvault's ratio to
  the Orthanc figure of the same round.
  WADO_AB_PIN=1: every server (all its threads) on CPU 0 and the client on
  CPU 1 (taskset), so that server and client do not take turns on the same
  core: what each server does with one core of its own.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import shutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_bench as sb  # noqa: E402


def one(srv, ct, reps):
    acc = {"Accept": 'multipart/related; type="application/dicom"'}
    acc.update(srv.auth())
    path = "/dicom-web/studies/%s/series/%s" % (ct.study, ct.series)
    sb.hwm_reset(srv.pid)
    c0 = sb.cpu_s(srv.pid)
    r = sb.c_get(srv, [path], acc, reps)
    cpu = (sb.cpu_s(srv.pid) - c0) / reps
    if r["status"] != 200 or r["bytes"] < ct.bytes:
        raise SystemExit("%s WADO: %r" % (srv.name, r))
    return r["bytes"] / r["best_s"] / 1e6, cpu, r["cpu_s"] / reps, sb.hwm_mb(srv.pid)


def main():
    corpus, rounds, dvs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    hg = os.path.join(os.path.dirname(dvs[0]), "bench", "http_get")
    if not os.access(hg, os.X_OK):
        raise SystemExit("bench/http_get is not built next to %s" % dvs[0])
    pin = os.environ.get("WADO_AB_PIN") == "1"
    tmp = tempfile.mkdtemp(prefix="dvwadoab.", dir=os.environ.get("BENCH_TMP", "/tmp"))
    sb.HTTP_GET = hg
    if pin:
        sb.HTTP_GET = os.path.join(tmp, "http_get_cpu1")
        with open(sb.HTTP_GET, "w") as f:
            f.write('#!/bin/sh\nexec taskset -c 1 "%s" "$@"\n' % os.path.abspath(hg))
        os.chmod(sb.HTTP_GET, 0o755)
    servers = []
    try:
        ct = sb.CT(corpus)
        o = sb.Orthanc(tmp)
        servers.append(("Orthanc", o))
        for i, dv in enumerate(dvs):
            servers.append(("dv%d" % i, sb.Vault(tmp, dv)))
        for _, s in servers:
            sb.stow_all(s, ct.data)
            if pin:   # after the STOW: connection threads made later inherit the mask
                subprocess.run(["taskset", "-a", "-p", "-c", "0", str(s.pid)], check=True,
                               stdout=subprocess.DEVNULL)
        res = {n: [] for n, _ in servers}
        for k in range(rounds):
            line = ["round %d (load %s)" % (k + 1, open("/proc/loadavg").read().split()[0])]
            for n, s in servers:
                m = one(s, ct, 3)
                res[n].append(m)
                line.append("%s %.0f MB/s cpu %.3f s client %.3f s rss %.0f MB" % (n, m[0], m[1], m[2], m[3]))
            o_mb = res["Orthanc"][-1][0]
            for n, _ in servers[1:]:
                line.append("%s/Orthanc %.2fx" % (n, res[n][-1][0] / o_mb))
            print("; ".join(line), flush=True)
        print("medians:")
        for n, _ in servers:
            xs = res[n]
            ratio = ""
            if n != "Orthanc":
                ratio = " ratio %.2fx (per-round ratios %s)" % (
                    statistics.median(x[0] / o[0] for x, o in zip(xs, res["Orthanc"])),
                    " ".join("%.2f" % (x[0] / o[0]) for x, o in zip(xs, res["Orthanc"])))
            print("  %-8s %6.0f MB/s  server CPU %.3f s  client CPU %.3f s  peak RSS %.0f MB%s" % (
                n, statistics.median(x[0] for x in xs), statistics.median(x[1] for x in xs),
                statistics.median(x[2] for x in xs), max(x[3] for x in xs), ratio))
    finally:
        for _, s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
