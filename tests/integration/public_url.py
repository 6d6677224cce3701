"""public_url.py DV: the absolute URLs in DICOMweb answers (STOW and QIDO
RetrieveURL, metadata BulkDataURI) name the address clients reach:
[http] public_url when set (behind a proxy: https://pacs.example.org/vault),
else the bound address; bound to a wildcard address (0.0.0.0), which no
client can reach, they are path-absolute and serve says so at start
(before, they named https://0.0.0.0:PORT). A public_url that is not an
http(s) URL with a host is refused at start.

Run as /usr/bin/python3 tests/integration/public_url.py build/check/dicomvault.
Prints ok/not ok lines; exits 1 if any check failed. Layer: tests."""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import Tap  # noqa: E402

TAP = Tap("public_url")
check, skip = TAP.check, TAP.skip
DV = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/check/dicomvault")
try:
    import dsgen
    from dvserver import Vault, finish, free_port
except ImportError:
    skip("no pydicom")

U = "1.2.826.0.1.3680043.2.1143.97."
PUBLIC = "https://pacs.example.org/vault"
T = tempfile.mkdtemp(prefix="dv-publicurl.")
v = None
extra = []


def set_public(url):
    p = os.path.join(v.dir, "dicomvault.conf")
    lines = [x for x in open(p).read().split("\n") if not x.startswith("public_url")]
    text = "\n".join(lines)
    if url is not None:
        text = text.replace("[http]\n", "[http]\npublic_url = %s\n" % url, 1)
    open(p, "w").write(text)


def urls(study):
    """(STOW RetrieveURL of the study, a QIDO RetrieveURL, a BulkDataURI)."""
    ds = dsgen.sc(U + study + ".1.1", U + study, U + study + ".1", "PUBLIC^URL", "PU97",
                  rows=64, cols=64, pixel=bytes(range(256)) * 16)
    st, ans = v.stow([dsgen.part10(ds)])
    stow = (ans or {}).get("00081190", {}).get("Value", [""])[0] if st == 200 else "stow %s" % st
    st, _, body = v.request("GET", "/dicom-web/studies?StudyInstanceUID=" + U + study,
                            headers={"Accept": "application/dicom+json"})
    qido = json.loads(body)[0]["00081190"]["Value"][0] if st == 200 and body.strip() != b"[]" else "qido %s" % st
    st, _, body = v.request("GET", "/dicom-web/studies/%s/metadata" % (U + study),
                            headers={"Accept": "application/dicom+json"})
    meta = json.loads(body)[0] if st == 200 else {}
    bulk = meta.get("7FE00010", {}).get("BulkDataURI", "metadata %s" % st)
    return stow, qido, bulk


def main():
    global v
    v = Vault(DV, T)
    conf = open(os.path.join(v.dir, "dicomvault.conf")).read()
    if "[http]\n" not in conf:
        open(os.path.join(v.dir, "dicomvault.conf"), "a").write("\n[http]\n")
    set_public(PUBLIC)
    v.serve()
    v.login()
    stow, qido, bulk = urls("1")
    check("[http] public_url: the STOW RetrieveURL is under it", stow == PUBLIC + "/dicom-web/studies/" + U + "1",
          stow)
    check("...the QIDO RetrieveURL too", qido == PUBLIC + "/dicom-web/studies/" + U + "1", qido)
    check("...and the metadata's BulkDataURI", bulk.startswith(PUBLIC + "/dicom-web/studies/" + U + "1/"), bulk)
    v.stop()

    # bound to a wildcard address, no public_url: path-absolute, and said
    set_public(None)
    port = free_port()
    err = open(os.path.join(T, "wild.err"), "w+")
    out = open(os.path.join(T, "wild.out"), "w+")
    p = subprocess.Popen([DV, "serve", "--vault", v.dir, "--http", "0.0.0.0:%d" % port, "--dicom",
                          "127.0.0.1:%d" % free_port()], stdout=out, stderr=err)
    extra.append(p)
    for _ in range(200):
        out.seek(0)
        if "serving" in out.read() or p.poll() is not None:
            break
        time.sleep(0.05)
    v.port = port
    # an API token (a second login in the same 30 s would replay the code)
    r = subprocess.run([DV, "token", "create", "--user", "admin", "--vault", v.dir, "--json"],
                       capture_output=True, text=True)
    v.token = json.loads(r.stdout)["token"] if r.returncode == 0 else None
    stow, qido, bulk = urls("2")
    check("bound to 0.0.0.0 without public_url: RetrieveURLs and BulkDataURIs are path-absolute",
          stow == "/dicom-web/studies/" + U + "2" and qido == stow and bulk.startswith(stow + "/"),
          (stow, qido, bulk))
    err.seek(0)
    check("...and serve says to set [http] public_url", "public_url" in err.read())
    p.terminate()
    p.wait(10)

    # a public_url that is not one: refused at start
    for bad in ("ftp://pacs.example.org", "https://", "https://host/path?x=1", "https://ho st", "pacs.example.org"):
        set_public(bad)
        r = subprocess.run([DV, "serve", "--vault", v.dir, "--http", "127.0.0.1:%d" % free_port()],
                           capture_output=True, text=True, timeout=30)
        check("public_url = %r: serve refuses to start, names it" % bad,
              r.returncode == 1 and "public_url" in r.stderr, (r.returncode, r.stderr[-200:]))


def cleanup():
    for p in extra:
        if p.poll() is None:
            p.kill()
            p.wait()
    finish(T, v)


TAP.run(main, cleanup)
