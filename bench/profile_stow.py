"""profile_stow.py: where dicomvault's STOW-RS ingest spends its time.
Starts `dicomvault serve` on a fresh vault (as server_bench.py does), then
STOWs the 300-slice CT one instance per request on one connection while
`perf record -g` (or, with --strace, `strace -c -f`) is attached to the
server; prints the report. Not part of `make bench` (perf needs
perf_event_paranoid <= 1 or root); see docs/BENCH.md, "Profile of the
STOW-RS ingest".

Usage: profile_stow.py DV CORPUS OUT.data [--strace] [--series]
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_bench as sb  # noqa: E402


def main():
    dv, corpus, out = sys.argv[1:4]
    use_strace = "--strace" in sys.argv
    series = "--series" in sys.argv
    tmp = tempfile.mkdtemp(prefix="dvprof.")
    try:
        ct = sb.CT(corpus)
        s = sb.Vault(tmp, dv)
        try:
            if use_strace:
                cmd = ["strace", "-c", "-w", "-f", "-o", out, "-p", str(s.pid)]
            else:
                cmd = ["perf", "record", "-g", "--call-graph", "dwarf,16384", "-F", "999", "-o", out,
                       "-p", str(s.pid)]
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1.0)
            if series:
                t, cpu = sb.stow_all(s, ct.data)
            else:
                t, cpu = sb.stow_each(s, ct)
            p.send_signal(signal.SIGINT)
            err = p.communicate()[1]
            print("stow: %.2f s, %.0f instances/s, server CPU %.2f s (%.2f ms/instance)"
                  % (t, len(ct.data) / t, cpu, cpu / len(ct.data) * 1e3))
            if p.returncode not in (0, -2, 130):
                sys.stderr.buffer.write(err)
        finally:
            s.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
