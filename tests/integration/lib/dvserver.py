"""Shared by the Python integration tests: a fresh vault (`dicomvault init`),
`dicomvault serve` on a free loopback port, a login with a TOTP code from
oathtool, and small DICOMweb helpers over TLS 1.3 (http.client + ssl, the
vault's own certificate as the only trust anchor). The server is killed by
stop() or at exit. Not a test itself (tests/run.sh runs only files directly
in tests/integration/)."""
import atexit
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import uuid

PASSWORD = "correct horse battery staple"
USER_PASSWORD = "a long enough password 1"   # of the users add_user makes


def finish(tmp, *vaults):
    """A test's end: stops the vaults' servers, removes tmp (kept with
    KEEP=1, and said so)."""
    for v in vaults:
        if v is not None:
            v.stop()
    if os.environ.get("KEEP"):
        print("# kept " + tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Vault:
    def __init__(self, dv, tmp, name="v"):
        self.dv = dv
        self.dir = os.path.join(tmp, name)
        pw = os.path.join(tmp, name + ".pw")
        with open(os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(PASSWORD + "\n")
        p = subprocess.run([dv, "init", "--vault", self.dir, "--password-file", pw, "--json"],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError("init failed: " + p.stderr)
        self.init = json.loads(p.stdout)
        self.secret = self.init["totp_secret"]
        self.proc = None
        self.port = None
        self.token = None
        self.ctx = None
        atexit.register(self.stop)

    def conf(self, text):
        """Appends text to the vault's dicomvault.conf (before serve)."""
        with open(os.path.join(self.dir, "dicomvault.conf"), "a") as f:
            f.write(text)

    def add_user(self, name, role, *opts):
        """`dicomvault user add NAME --role ROLE OPTS...` with USER_PASSWORD:
        (succeeded, TOTP secret or None, stderr)."""
        pw = os.path.join(os.path.dirname(self.dir), "user.pw")
        with open(os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(USER_PASSWORD + "\n")
        p = subprocess.run([self.dv, "user", "add", name, "--role", role, *opts, "--password-file", pw,
                            "--vault", self.dir, "--json"], capture_output=True, text=True)
        if p.returncode != 0:
            return False, None, p.stderr
        return True, json.loads(p.stdout)["totp_secret"], p.stderr

    def serve(self, dicom_port=None, env=None):
        """Starts serve (HTTPS on a free port; DICOM-TLS on dicom_port
        too when given; env: more environment variables) and waits until
        it says it is serving."""
        self.port = free_port()
        self.out = open(os.path.join(os.path.dirname(self.dir), "serve.out"), "w+")
        self.err = open(os.path.join(os.path.dirname(self.dir), "serve.err"), "w+")
        argv = [self.dv, "serve", "--vault", self.dir, "--http", f"127.0.0.1:{self.port}"]
        if dicom_port:
            argv += ["--dicom", f"127.0.0.1:{dicom_port}"]
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=self.err,
                                     env=dict(os.environ, **env) if env else None)
        for _ in range(200):
            self.out.seek(0)
            if "serving" in self.out.read():
                break
            if self.proc.poll() is not None:
                raise RuntimeError("serve exited")
            time.sleep(0.05)
        self.ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "keys", "tls.crt"))
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def conn(self):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=60)

    def request(self, method, path, body=None, headers=None, auth=True):
        h = dict(headers or {})
        if auth and self.token:
            h["Authorization"] = "Bearer " + self.token
        c = self.conn()
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data

    def login(self, user="admin", password=PASSWORD, secret=None):
        code = subprocess.run(["oathtool", "--totp", "-b", secret or self.secret], capture_output=True,
                              text=True).stdout.strip()
        st, _, body = self.request("POST", "/api/auth/login",
                                   json.dumps({"username": user, "password": password, "totp": code}),
                                   {"Content-Type": "application/json"}, auth=False)
        if st != 200:
            raise RuntimeError(f"login: {st} {body!r}")
        self.token = json.loads(body)["token"]
        return self.token

    def stow(self, files, study=None):
        """POST the files (paths or bytes) in one multipart/related request;
        returns (status, parsed JSON or None)."""
        b = uuid.uuid4().hex
        parts = []
        for f in files:
            data = f if isinstance(f, bytes) else open(f, "rb").read()
            parts.append(b"--" + b.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n")
        body = b"".join(parts) + b"--" + b.encode() + b"--\r\n"
        path = "/dicom-web/studies" + (f"/{study}" if study else "")
        st, _, data = self.request("POST", path, body,
                                   {"Content-Type": f'multipart/related; type="application/dicom"; boundary={b}',
                                    "Accept": "application/dicom+json"})
        try:
            return st, json.loads(data) if data else None
        except ValueError:
            return st, None
