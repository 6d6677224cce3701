#!/bin/bash
# qr.sh: `dicomvault init` on a terminal (a pseudo-terminal from python3's
# pty) ends its output with the otpauth URI as a QR code of half blocks
# (U+2580, U+2584, U+2588; dark modules are spaces): a square of modules
# with its quiet zone, the three finder patterns, and the very matrix
# libqrencode (the library the CLI links) makes of the URI printed above
# it. Not on a terminal (a file, a pipe) and with --json: no QR code, no
# block character. Prints ok/not ok lines. Env DV: the CLI under test;
# KEEP=1 keeps the directory.
set -u
DV=${DV:-build/check/dicomvault}
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/dv-qr.XXXXXX")
cleanup() { if [ -n "${KEEP:-}" ]; then echo "# kept $T"; else rm -rf "$T"; fi; }
trap cleanup EXIT
ok() { echo "ok - qr: $1"; }
no() { echo "not ok - qr: $1"; }
check() { if eval "$2"; then ok "$1"; else no "$1"; fi; }

PW='correct horse battery staple'
printf '%s\n' "$PW" >"$T/pw"
chmod 600 "$T/pw"

# on_tty OUT CMD...: CMD with stdout a pseudo-terminal (stdin /dev/null,
# stderr OUT.err); what the terminal showed in OUT, CR LF turned LF; exits
# as CMD did (124 if it ran over 30 s)
on_tty() {
	"$PY" - "$@" <<'EOF'
import os, pty, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
m, s = pty.openpty()
with open(out + ".err", "wb") as err:
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=s, stderr=err)
os.close(s)
buf, end = b"", time.time() + 30
while time.time() < end:
    try:
        b = os.read(m, 65536)
    except OSError:      # EIO: the terminal's last writer closed it
        break
    if not b:
        break
    buf += b
try:
    rc = p.wait(max(0.1, end - time.time()))
except subprocess.TimeoutExpired:
    p.kill()
    rc = 124
open(out, "wb").write(buf.replace(b"\r\n", b"\n"))
sys.exit(rc)
EOF
}
BLOCKS='▀\|▄\|█'

# ---- on a terminal ----
on_tty "$T/tty.out" "$DV" init --vault "$T/v" --password-file "$T/pw"
check "init on a terminal: exit 0, nothing on stderr" "[ \$? = 0 ] && [ ! -s $T/tty.out.err ]"
check "it says to scan the code" "grep -q 'Scan with an authenticator app' $T/tty.out"
# qr FILE: checks the QR code at the end of FILE (init's text output):
# "ok" or what is wrong, on stdout
qr() {
	"$PY" - "$1" <<'EOF'
import ctypes, ctypes.util, re, sys
text = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r"^otpauth URI: +(otpauth://\S+)$", text, re.M)
if not m:
    sys.exit(print("no otpauth URI line"))
uri = m.group(1)
sec = re.search(r"^TOTP secret: +([A-Z2-7]+)$", text, re.M)
if not sec or "secret=" + sec.group(1) + "&" not in uri:
    sys.exit(print("the URI does not hold the TOTP secret printed"))
lines = text.split("Scan with an authenticator app:\n", 1)[-1].rstrip("\n").split("\n")
if len(lines) < 10 or any(set(l) - set(" \u2580\u2584\u2588") for l in lines):
    sys.exit(print("no block of half-block lines after the prompt: %r" % lines[:3]))
w = len(lines[0])
if any(len(l) != w for l in lines) or len(lines) != (w + 1) // 2:
    sys.exit(print("not a square of modules: %d lines of %s" % (len(lines), sorted({len(l) for l in lines}))))
# modules, quiet zone included: a space is two dark ones, U+2584 (lower
# half block) a dark top, U+2580 (upper half block) a dark bottom
g = []
for l in lines:
    g.append([c in " \u2584" for c in l])
    g.append([c in " \u2580" for c in l])
n = w - 4
if n < 21 or (n - 17) % 4:
    sys.exit(print("%d modules a side: no QR code version" % n))
if any(g[y][x] for y in range(len(g)) for x in range(w) if not (2 <= y < n + 2 and 2 <= x < n + 2)):
    sys.exit(print("the quiet zone (2 modules) has a dark module"))
q = [row[2:n + 2] for row in g[2:n + 2]]
def finder(y0, x0):
    return all(q[y0 + y][x0 + x] == (max(abs(y - 3), abs(x - 3)) != 2) for y in range(7) for x in range(7))
if not (finder(0, 0) and finder(0, n - 7) and finder(n - 7, 0)) or finder(n - 7, n - 7):
    sys.exit(print("finder patterns not at the three corners"))
# the same URI through libqrencode, at each error correction level
lib = ctypes.CDLL(ctypes.util.find_library("qrencode") or "libqrencode.so.4")
class QRcode(ctypes.Structure):
    _fields_ = [("version", ctypes.c_int), ("width", ctypes.c_int), ("data", ctypes.POINTER(ctypes.c_ubyte))]
lib.QRcode_encodeString.restype = ctypes.POINTER(QRcode)
lib.QRcode_encodeString.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]
lib.QRcode_free.argtypes = [ctypes.POINTER(QRcode)]
for level in range(4):                       # QR_ECLEVEL_L .. QR_ECLEVEL_H
    for hint in (2, 1):                      # QR_MODE_8, QR_MODE_AN
        r = lib.QRcode_encodeString(uri.encode(), 0, level, hint, 1)
        if not r:
            continue
        c = r.contents
        same = c.width == n and all(bool(c.data[y * n + x] & 1) == q[y][x] for y in range(n) for x in range(n))
        lib.QRcode_free(r)
        if same:
            sys.exit(print("ok"))
print("the modules are not libqrencode's QR code of %s" % uri)
EOF
}
R=$(qr "$T/tty.out" 2>&1)
check "a QR code of the printed otpauth URI (quiet zone, finder patterns, libqrencode's matrix)" "[ \"\$R\" = ok ]"
[ "$R" = ok ] || echo "# $R"
check "the QR code comes last, after the secret and the URI" \
	"[ \$(grep -n 'otpauth URI:' $T/tty.out | cut -d: -f1) -lt \$(grep -n '$BLOCKS' $T/tty.out | head -1 | cut -d: -f1) ]"

# ---- not on a terminal ----
"$DV" init --vault "$T/f" --password-file "$T/pw" >"$T/file.out" 2>"$T/file.err"
check "init to a file: exit 0, the URI printed" "[ \$? = 0 ] && grep -q '^otpauth URI: *otpauth://totp/' $T/file.out"
check "init to a file: no QR code, no block character, no prompt to scan" \
	"! grep -q '$BLOCKS' $T/file.out && ! grep -q 'Scan with' $T/file.out && [ -s $T/file.out ]"
"$DV" init --vault "$T/p" --password-file "$T/pw" 2>"$T/pipe.err" | cat >"$T/pipe.out"
check "init to a pipe: the URI, no QR code" \
	"grep -q '^otpauth URI: *otpauth://totp/' $T/pipe.out && ! grep -q '$BLOCKS' $T/pipe.out && ! grep -q 'Scan with' $T/pipe.out"
on_tty "$T/json.out" "$DV" init --vault "$T/j" --password-file "$T/pw" --json
check "init --json on a terminal: JSON alone, no QR code" \
	"[ \$? = 0 ] && \"$PY\" -c 'import json,sys; json.load(open(sys.argv[1]))' $T/json.out && ! grep -q '$BLOCKS' $T/json.out"
exit 0
