"""profile_stow.py: where dicomvault's STOW-RS ingest spends its time.
Starts `dicomvault serve` on a fresh vault (as server_bench.py does), then
STOWs the 300-slice CT one instance per request on one connection while
`perf record -g` (or, with --strace, `strace -c -f`) is attached to the
server; prints the report. Not part of `make bench` (perf needs
perf_event_paranoid <= 1 or root); see docs/BENCH.md, "Profile of the
STOW-RS ingest".

Usage: profile_stow.py DV CORPUS OUT.data [--strace] [--series | --wado]
(--series: the whole series in one request; --wado: store it, then profile
its WADO-RS retrieval, through the series route or per instance)
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


# the functions whose inclusive share ("children") says where the time goes;
# see docs/BENCH.md for how they map onto the ingest steps
KEY = ["store_instance", "p_data", "p_begin", "p_end", "tmp_open", "spool_open", "spool_end", "peek_uids",
       "dcm_file_read", "dcm_reader_skip_value", "write_object", "ra_load", "crypto_hash_sha256_update",
       "gnutls_hash", "gnutls_aead_cipher_encrypt", "fs_put_write", "__x64_sys_openat", "__x64_sys_mkdir",
       "aead_enc_write", "chunk_seal", "crypto_aead_aes256gcm_encrypt_detached_afternm",
       "crypto_aead_aes256gcm_decrypt_detached_afternm", "fs_put_begin", "mkdir_durable", "fs_put_commit",
       "fsync_dir", "do_fsync", "__x64_sys_fdatasync", "sq_commit", "sqlite3_step", "audit_append",
       "dw_audit_obj", "patient", "seal_attrs", "secret_new", "secret_free", "sodium_malloc", "sodium_free",
       "__x64_sys_mprotect", "gnutls_aead_cipher_decrypt", "__libc_recv", "mp_parser_feed", "__ext4_new_inode",
       "recently_deleted"]


def summary(data):
    """Inclusive and self shares of KEY functions in the perf profile."""
    r = subprocess.run(["perf", "report", "-i", data, "--children", "--sort", "sym", "--stdio", "-g", "none"],
                       capture_output=True, text=True)
    got = {}
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) >= 4 and f[0].endswith("%") and f[1].endswith("%"):
            name = f[3]
            if name in KEY:
                c, sf = float(f[0][:-1]), float(f[1][:-1])
                pc, ps = got.get(name, (0.0, 0.0))
                got[name] = (max(pc, c), ps + sf)   # an inlined copy may be listed twice
    print("%-50s %9s %7s" % ("function (share of the server's CPU samples)", "inclusive", "self"))
    for k in KEY:
        if k in got:
            print("%-50s %8.1f%% %6.1f%%" % (k, got[k][0], got[k][1]))


def main():
    dv, corpus, out = sys.argv[1:4]
    use_strace = "--strace" in sys.argv
    series = "--series" in sys.argv
    wado = "--wado" in sys.argv   # profile the WADO-RS retrieval of the series instead
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
            if wado:
                sb.stow_all(s, ct.data)
                hg = os.path.join(os.path.dirname(dv), "bench", "http_get")
                sb.HTTP_GET = hg if os.access(hg, os.X_OK) else None
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1.0)
            if wado:
                t, n, mode, cpu, client = sb.wado_series(s, ct)
                what = "wado (%s, %s): %.0f MB/s, best of %d" % (mode, client, n / t / 1e6, sb.WADO_REPS)
            elif series:
                t, cpu = sb.stow_all(s, ct.data)
            else:
                t, cpu = sb.stow_each(s, ct)
            p.send_signal(signal.SIGINT)
            err = p.communicate()[1]
            if not wado:
                what = "stow: %.2f s, %.0f instances/s" % (t, len(ct.data) / t)
            print("%s; server CPU %.2f s (%.2f ms/instance)" % (what, cpu, cpu / len(ct.data) * 1e3))
            if p.returncode not in (0, -2, 130):
                sys.stderr.buffer.write(err)
            if not use_strace:
                time.sleep(0.5)
                summary(out)
        finally:
            s.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
