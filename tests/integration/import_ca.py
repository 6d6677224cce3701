"""import_ca.py DV: `dicomvault import --from AE` between two vaults that
bind each other by CA (`ca =`), each certificate issued by one test CA
for its vault's AE title. B imports A's study: B checks A's server
certificate (issued by the CA, naming VAULTA), A checks B's as the C-MOVE
destination, B's listener checks A's client certificate: exit 0, the
instance verified. Then A presents a certificate of the same CA naming
another AE title: B refuses it ("names neither its AE title nor its
host") and the import fails with that reason, nothing imported. (Before
session 23 every CA-bound import failed, "no CA loaded for this peer":
the listener's one-peer table and the SCU's peer were different arrays.)

Run as /usr/bin/python3 tests/integration/import_ca.py build/check/dicomvault.
Prints ok/not ok lines; exits 1 if any check failed. KEEP=1 keeps the
directory. Layer: tests."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import Tap  # noqa: E402

TAP = Tap("import_ca")
check, skip = TAP.check, TAP.skip
DV = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/check/dicomvault")
try:
    import dsgen
    from dvserver import Vault, finish, free_port
    from pydicom.data import get_testdata_file
except ImportError:
    skip("no pydicom")
dsgen.need_dimse(DV, skip)

T = tempfile.mkdtemp(prefix="dv-importca.")
vaults = []


def openssl(*args):
    return subprocess.run(["openssl", *args], capture_output=True).returncode == 0


def issue(name, cn):
    """T/name.crt and .key, issued by T/ca for CN=cn."""
    return openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=" + cn,
                   "-keyout", os.path.join(T, name + ".key"), "-out", os.path.join(T, name + ".csr")) and \
        openssl("x509", "-req", "-in", os.path.join(T, name + ".csr"), "-CA", os.path.join(T, "ca.crt"),
                "-CAkey", os.path.join(T, "ca.key"), "-CAcreateserial", "-days", "2",
                "-out", os.path.join(T, name + ".crt"))


def use_cert(v, name, ae):
    """The vault's TLS certificate (HTTPS and DICOM-TLS) and AE title."""
    shutil.copy(os.path.join(T, name + ".crt"), os.path.join(v.dir, "keys", "tls.crt"))
    shutil.copy(os.path.join(T, name + ".key"), os.path.join(v.dir, "keys", "tls.key"))
    os.chmod(os.path.join(v.dir, "keys", "tls.key"), 0o600)
    conf = os.path.join(v.dir, "dicomvault.conf")
    text = open(conf).read()
    if "ae_title = %s\n" % ae not in text:
        open(conf, "w").write(text.replace("ae_title = DICOMVAULT\n", "ae_title = %s\n" % ae, 1))


def main():
    ok = openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                 "-subj", "/CN=import test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign", "-keyout", os.path.join(T, "ca.key"),
                 "-out", os.path.join(T, "ca.crt"))
    ok = ok and issue("a", "VAULTA") and issue("b", "VAULTB") and issue("other", "SOMEONE")
    check("openssl made the CA and the certificates", ok)
    if not ok:
        return
    a, b = Vault(DV, T, "a"), Vault(DV, T, "b")
    vaults.extend([a, b])
    use_cert(a, "a", "VAULTA")
    use_cert(b, "b", "VAULTB")
    pa, pb = free_port(), free_port()
    ca = os.path.join(T, "ca.crt")
    a.conf('\n[peer "VAULTB"]\nca = %s\nhost = 127.0.0.1\nport = %d\nrights = echo, find, move\n' % (ca, pb))
    b.conf('\n[peer "VAULTA"]\nca = %s\nhost = 127.0.0.1\nport = %d\nrights = echo, store\n' % (ca, pa))
    ct = os.path.join(T, "ct.dcm")
    shutil.copy(get_testdata_file("CT_small.dcm"), ct)
    r = subprocess.run([DV, "import", "--vault", a.dir, ct], capture_output=True, text=True)
    check("the CT stored in A", r.returncode == 0, r.stderr)

    def import_from_a():
        r = subprocess.run([DV, "import", "--vault", b.dir, "--from", "VAULTA", "--port", str(pb), "--json"],
                           capture_output=True, text=True, timeout=120)
        try:
            return r.returncode, json.loads(r.stdout), r.stderr
        except ValueError:
            return r.returncode, {}, r.stdout + r.stderr

    a.serve(dicom_port=pa)
    rc, rep, err = import_from_a()
    check("import --from VAULTA, both bound by CA: exit 0, the instance verified",
          rc == 0 and rep.get("verified") == 1 and rep.get("stored") == 1, (rc, rep, err[-400:]))
    a.stop()
    use_cert(a, "other", "VAULTA")   # a certificate of the same CA for another AE title
    a.serve(dicom_port=pa)
    rc, rep, err = import_from_a()
    text = json.dumps(rep) + err
    check("A presenting a certificate of the CA that names another AE title: refused, import fails",
          rc != 0 and "names neither its AE title nor its host" in text and not rep.get("stored"), (rc, text[-500:]))


TAP.run(main, lambda: finish(T, *vaults))
