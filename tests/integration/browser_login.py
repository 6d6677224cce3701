#!/usr/bin/python3
"""The login page in a real browser: headless Chromium (Debian's), driven
over the DevTools protocol, opens https://127.0.0.1:PORT/ with the vault's
own certificate as the one accepted (its SPKI pinned, no blanket
ignoring of certificate errors). Under the page's Content-Security-Policy
its script runs; a wrong password and a wrong TOTP code show the
server's problem detail and sign nobody in; the right password with an
oathtool code signs the admin in (the page shows the user and role); the
session cookie is HttpOnly, Secure and SameSite=Strict and invisible to
the page's script; the same cookie authorises a DICOMweb request from the
page; signing out ends it (the page returns to the form, the request is
then 401); no CSP violation and no script error is reported. Prints
"ok - NAME" / "not ok - NAME"."""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from dvserver import PASSWORD, Vault  # noqa: E402
from tap import Tap  # noqa: E402

DV = os.path.abspath(sys.argv[1])
TAP = Tap("browser_login")
check = TAP.check
TMP = tempfile.mkdtemp(prefix="dv-browser-")
BROWSER = None


def spki_b64(crt):
    """base64 of the SHA-256 of the certificate's SubjectPublicKeyInfo, as
    --ignore-certificate-errors-spki-list takes it."""
    pub = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-pubkey"], capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub, capture_output=True,
                         check=True).stdout
    dig = subprocess.run(["openssl", "dgst", "-sha256", "-binary"], input=der, capture_output=True,
                         check=True).stdout
    return base64.b64encode(dig).decode()


class Page:
    """One page target over the DevTools protocol (websocket-client)."""

    def __init__(self, ws_url):
        import websocket
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.n = 0
        self.events = []

    def call(self, method, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("id") == self.n:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def js(self, expr):
        """The value of a JavaScript expression (promises awaited)."""
        r = self.call("Runtime.evaluate", expression=expr, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails'].get('text')}")
        return r.get("result", {}).get("value")

    def wait(self, expr, secs=10):
        """Polls a JavaScript expression until it is true: True, or False
        after secs."""
        end = time.monotonic() + secs
        while time.monotonic() < end:
            if self.js(expr):
                return True
            time.sleep(0.05)
        return False


def start_browser(crt):
    """Chromium headless with its DevTools port: the port."""
    global BROWSER
    prof = os.path.join(TMP, "profile")
    BROWSER = subprocess.Popen(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         "--disable-background-networking", "--disable-sync", "--metrics-recording-only", "--mute-audio",
         f"--user-data-dir={prof}", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
         f"--ignore-certificate-errors-spki-list={spki_b64(crt)}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(TMP, "chromium.err"), "w"))
    port_file = os.path.join(prof, "DevToolsActivePort")
    for _ in range(300):
        if os.path.exists(port_file):
            lines = open(port_file).read().split()
            if lines:
                return int(lines[0])
        if BROWSER.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError("chromium did not start: " + open(os.path.join(TMP, "chromium.err")).read()[-500:])


def main():
    if shutil.which("chromium") is None:
        TAP.skip("no chromium (scripts/install-deps.sh installs it)")
    try:
        import websocket  # noqa: F401
    except ImportError:
        TAP.skip("no python3-websocket (scripts/install-deps.sh installs it)")
    v = Vault(DV, TMP).serve()
    crt = os.path.join(v.dir, "keys", "tls.crt")
    dport = start_browser(crt)
    targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{dport}/json/list", timeout=10))
    page = Page(next(t for t in targets if t.get("type") == "page")["webSocketDebuggerUrl"])
    page.call("Page.enable")
    page.call("Runtime.enable")
    page.call("Log.enable")
    page.call("Network.enable")
    # every CSP violation the page sees, kept where the test can read it
    page.call("Page.addScriptToEvaluateOnNewDocument",
              source="window.__csp = []; document.addEventListener('securitypolicyviolation', "
                     "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")
    origin = f"https://127.0.0.1:{v.port}"
    page.call("Page.navigate", url=origin + "/")
    check("the login page loads over TLS with the vault's certificate",
          page.wait("document.readyState === 'complete' && location.protocol === 'https:' && "
                    "!!document.getElementById('login')"), page.js("location.href"))
    check("its script runs under the page's CSP: the form is shown, the session section hidden",
          page.wait("!document.getElementById('login').hidden && document.getElementById('session').hidden"),
          None)

    def submit(user, password, totp):
        page.js("(() => { const f = document.getElementById('login'); "
                f"f.username.value = {json.dumps(user)}; f.password.value = {json.dumps(password)}; "
                f"f.totp.value = {json.dumps(totp)}; document.getElementById('message').textContent = '…'; "
                "f.requestSubmit(); })()")

    def code():
        return subprocess.run(["oathtool", "--totp", "-b", v.secret], capture_output=True, text=True).stdout.strip()

    msg = "document.getElementById('message').textContent"
    submit("admin", "not the password", code())
    shown = page.wait(f"{msg} !== '…' && {msg} !== ''")
    check("a wrong password: the server's problem detail shown, still signed out",
          shown and page.js("document.getElementById('session').hidden") and
          page.js("document.getElementById('login').password.value === ''") and
          "invalid" in page.js(msg) and not page.js(msg).startswith("Sign-in failed"), page.js(msg))
    good = code()
    submit("admin", PASSWORD, "000000" if good != "000000" else "111111")
    shown = page.wait(f"{msg} !== '…' && {msg} !== ''")
    check("a wrong TOTP code: refused with a message, still signed out",
          shown and page.js("document.getElementById('session').hidden") and "invalid" in page.js(msg),
          page.js(msg))
    submit("admin", PASSWORD, good)
    signed = page.wait("!document.getElementById('session').hidden")
    check("the right password and an oathtool code: signed in, the page names the user and role",
          signed and page.js("document.getElementById('who').textContent") == "admin" and
          page.js("document.getElementById('login').hidden") and page.js("document.getElementById('role').textContent"),
          (page.js(msg), page.js("document.getElementById('who').textContent")))
    cookies = page.call("Network.getCookies", urls=[origin + "/"]).get("cookies", [])
    sess = [c for c in cookies if c.get("value")]
    check("the session cookie is HttpOnly, Secure, SameSite=Strict",
          len(sess) == 1 and sess[0].get("httpOnly") and sess[0].get("secure") and
          sess[0].get("sameSite") == "Strict", cookies)
    check("the page's script cannot read it", sess and sess[0]["value"] not in page.js("document.cookie"), None)
    qido = "fetch('/dicom-web/studies', {credentials: 'same-origin', headers: {Accept: 'application/dicom+json'}})" \
           ".then(r => r.status)"
    st = page.js(qido)
    check("the cookie authorises a DICOMweb request from the page", st in (200, 204), st)
    page.js("document.getElementById('logout').click()")
    out = page.wait("!document.getElementById('login').hidden && document.getElementById('session').hidden")
    check("signing out returns to the form", out and page.js(msg) == "Signed out.", page.js(msg))
    st = page.js(qido)
    check("after signing out the same request is 401", st == 401, st)
    check("no CSP violation reported", page.js("window.__csp.length") == 0, page.js("window.__csp"))
    errs = [e["params"] for e in page.events
            if e.get("method") == "Runtime.exceptionThrown" or
            (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error" and
             e["params"]["entry"].get("source") != "network")]
    check("no script error in the console", not errs, errs[:3])
    page.ws.close()


def cleanup():
    if BROWSER is not None and BROWSER.poll() is None:
        BROWSER.terminate()
        try:
            BROWSER.wait(10)
        except subprocess.TimeoutExpired:
            BROWSER.kill()
            BROWSER.wait()
    shutil.rmtree(TMP, ignore_errors=True)


TAP.run(main, cleanup)
