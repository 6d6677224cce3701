#!/bin/bash
# bad_input.sh: the dicomvault CLI (sanitizer build) on hostile and broken
# files. Every bad file must give exit status 1 with one message line
#   dicomvault: FILE: not valid DICOM at byte offset N: REASON
#   dicomvault: FILE: limit exceeded at byte offset N: REASON
# and never a crash (exit >= 128) or a sanitizer report. Files that are odd
# but readable (huge VM, unknown character set, odd lengths without
# --strict) must read. Exhaustive truncation at every offset is done in C
# (tests/unit/reader/truncate_test.c); here a sample of offsets goes through
# the whole CLI. Prints "ok - NAME" / "not ok - NAME". Layer: tests.
#
# Environment: DV (the CLI, default build/check/dicomvault), DV_BUILD.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
DV=${DV:-build/check/dicomvault}
PY=/usr/bin/python3
PYD=/usr/lib/python3/dist-packages/pydicom/data/test_files
T=$(mktemp -d "${TMPDIR:-/tmp}/dv-bad.XXXXXX")
trap 'rm -rf "$T"' EXIT

ok() { echo "ok - $1"; }
notok() {
	echo "not ok - $1"
	shift
	for l in "$@"; do echo "#   $l"; done
}

# run ARGS...: sets RC, OUT (stdout file), ERR (stderr text)
run() {
	"$DV" "$@" >"$T/out" 2>"$T/err"
	RC=$?
	ERR=$(head -c 4000 "$T/err")
}

# A crash, a sanitizer report or a multi-line error is never acceptable.
sane() {
	if [ "$RC" -ge 128 ] || [ "$RC" -gt 2 ]; then
		echo "exit status $RC (crash?)"
		return 1
	fi
	if grep -qE 'Sanitizer|runtime error|AddressSanitizer|LeakSanitizer|Assertion|core dumped' "$T/err"; then
		echo "sanitizer report: $(grep -m1 -E 'Sanitizer|runtime error' "$T/err")"
		return 1
	fi
	return 0
}

# expect_error NAME REASON_REGEX CMD FILE [OPTS...]: exit 1 and one line
# naming the byte offset and a reason matching REASON_REGEX.
expect_error() {
	local name=$1 reason=$2 cmd=$3 file=$4 why
	shift 4
	run "$cmd" "$@" "$file"
	if ! why=$(sane); then
		notok "$name" "$why" "$(head -3 "$T/err")"
		return
	fi
	if [ "$RC" -ne 1 ]; then
		notok "$name" "exit status $RC, expected 1" "$(head -3 "$T/err")"
		return
	fi
	if [ "$(wc -l <"$T/err")" -ne 1 ]; then
		notok "$name" "expected one message line, got $(wc -l <"$T/err")" "$(head -3 "$T/err")"
		return
	fi
	if ! grep -qE "^dicomvault: .*: (not valid DICOM|limit exceeded) at byte offset [0-9]+( of the inflated data set)?: .+" "$T/err"; then
		notok "$name" "message does not name a byte offset and a reason" "$ERR"
		return
	fi
	if ! grep -qiE "$reason" "$T/err"; then
		notok "$name" "reason does not match /$reason/" "$ERR"
		return
	fi
	if [ -s "$T/out" ]; then
		notok "$name" "output on stdout despite the error"
		return
	fi
	ok "$name"
}

# expect_ok NAME CMD FILE [OPTS...]: exit 0, no crash.
expect_ok() {
	local name=$1 cmd=$2 file=$3 why
	shift 3
	run "$cmd" "$@" "$file"
	if ! why=$(sane); then
		notok "$name" "$why" "$(head -3 "$T/err")"
	elif [ "$RC" -ne 0 ]; then
		notok "$name" "exit status $RC, expected 0" "$(head -3 "$T/err")"
	else
		ok "$name"
	fi
}

# expect_sane NAME CMD FILE: exit 0, or exit 1 with a proper message.
expect_sane() {
	local name=$1 cmd=$2 file=$3 why
	run "$cmd" "$file"
	if ! why=$(sane); then
		notok "$name" "$why" "$(head -3 "$T/err")"
	elif [ "$RC" -eq 0 ]; then
		ok "$name"
	elif [ "$RC" -eq 1 ] && grep -qE "^dicomvault: .*: (not valid DICOM|limit exceeded) at byte offset [0-9]+( of the inflated data set)?: .+" "$T/err"; then
		ok "$name"
	else
		notok "$name" "exit status $RC" "$(head -3 "$T/err")"
	fi
}

if [ ! -x "$DV" ]; then
	notok "cli built" "$DV is missing"
	exit 1
fi

# ---- hostile files, built byte by byte ----
"$PY" - "$T" <<'EOF'
import os, random, struct, sys
d = sys.argv[1]
UNDEF = 0xFFFFFFFF
LONG = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}

def tag(t):
    return struct.pack("<HH", t >> 16, t & 0xFFFF)

def ex(t, vr, val, n=None):
    n = len(val) if n is None else n
    if vr in LONG:
        return tag(t) + vr + b"\0\0" + struct.pack("<I", n) + val
    return tag(t) + vr + struct.pack("<H", n) + val

def im(t, val, n=None):
    return tag(t) + struct.pack("<I", len(val) if n is None else n) + val

def part10(ts, body):
    ts = ts.encode()
    ts += b"\0" * (len(ts) & 1)
    meta = ex(0x00020001, b"OB", b"\0\1") + ex(0x00020010, b"UI", ts)
    return b"\0" * 128 + b"DICM" + ex(0x00020000, b"UL", struct.pack("<I", len(meta))) + meta + body

EXPL, IMPL = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"
head = ex(0x00080016, b"UI", b"1.2.840.10008.5.1.4.1.1.7\0") + ex(0x00080060, b"CS", b"OT")
ihead = im(0x00080016, b"1.2.840.10008.5.1.4.1.1.7\0") + im(0x00080060, b"OT")
files = {
    "len_past_end": part10(EXPL, head + ex(0x00081030, b"LO", b"short ", 200)),
    "len_past_item": part10(EXPL, head + ex(0x00081032, b"SQ", tag(0xFFFEE000) + struct.pack("<I", 12)
                                             + ex(0x00080100, b"SH", b"ABCDEF", 6))),
    "len_ffff_explicit_us": part10(EXPL, head + ex(0x00280010, b"US", b"\1\0", 0xFFFF)),
    "undef_us": part10(IMPL, ihead + im(0x00280010, b"\1\0", UNDEF)),
    "undef_lo": part10(IMPL, ihead + im(0x00100020, b"ID", UNDEF)),
    "undef_da": part10(IMPL, ihead + im(0x00080020, b"20240101", UNDEF)),
    "undef_ut_explicit": part10(EXPL, head + ex(0x0040A160, b"UT", b"text", UNDEF)),
    "invalid_vr_bytes": part10(EXPL, head + tag(0x00081030) + b"\x01\xfe" + struct.pack("<H", 2) + b"ab"),
    "unknown_vr_zz": part10(EXPL, head + ex(0x00081030, b"ZZ", b"ab")),
    "item_at_top_level": part10(EXPL, head + tag(0xFFFEE000) + struct.pack("<I", 0)),
    "item_undef_at_top_level": part10(EXPL, head + tag(0xFFFEE000) + struct.pack("<I", UNDEF)),
    "seq_delim_at_top_level": part10(EXPL, head + tag(0xFFFEE0DD) + struct.pack("<I", 0)),
    "item_delim_at_top_level": part10(EXPL, head + tag(0xFFFEE00D) + struct.pack("<I", 0)),
    "element_in_sequence": part10(EXPL, head + ex(0x00081032, b"SQ", ex(0x00080100, b"SH", b"AB"), UNDEF)),
    "seq_not_closed": part10(EXPL, head + ex(0x00081032, b"SQ", tag(0xFFFEE000) + struct.pack("<I", UNDEF)
                                             + ex(0x00080100, b"SH", b"AB"), UNDEF)),
    # an item delimiter that crosses the end of its 12-byte sequence
    "delim_crosses_seq_end": part10(EXPL, head + ex(0x00081032, b"SQ", tag(0xFFFEE000) + struct.pack("<I", UNDEF)
                                                     + tag(0xFFFEE00D) + b"\0" * 4, 12) + ex(0x00100010, b"PN", b"A^B ")),
    "odd_length": part10(EXPL, head + ex(0x00081030, b"LO", b"ABCDE") + ex(0x00100010, b"PN", b"A^B ")),
    "charset_iso_ir_999": part10(EXPL, ex(0x00080005, b"CS", b"ISO_IR 999") + head
                                 + ex(0x00100010, b"PN", "Müller^Jörg".encode("latin-1"))),
    "charset_garbage": part10(EXPL, ex(0x00080005, b"CS", b"\\\\\\\\\\\\\\\\\\\\ \xff\xfe") + head
                              + ex(0x00100010, b"PN", b"\x1b$B\xff\xff\x1b(B^\x1b")),
    "us_60000_values": part10(IMPL, ihead + im(0x00280010, struct.pack("<60000H", *range(60000)))),
    "cs_70000_backslashes": part10(IMPL, im(0x00080008, b"\\" * 70000) + ihead),
    "ut_70000_backslashes": part10(EXPL, head + ex(0x0040A160, b"UT", b"\\" * 70000)),
    "empty": b"",
    "one_byte": b"\x08",
    "preamble_only": b"\0" * 128 + b"DICM",
    "preamble_and_half_header": b"\0" * 128 + b"DICM" + b"\x02\x00\x10",
    "deflate_garbage": part10("1.2.840.10008.1.2.1.99", b"\x78\x9c not a deflate stream at all \xff" * 4),
}
# nesting: 40 (too deep) and 32 (the limit) Content Sequences of undefined length
def nest(n):
    body = b""
    for _ in range(n):
        body += ex(0x0040A730, b"SQ", b"", UNDEF) + tag(0xFFFEE000) + struct.pack("<I", UNDEF)
    body += ex(0x0040A010, b"CS", b"CONTAINS")
    body += (tag(0xFFFEE00D) + b"\0" * 4 + tag(0xFFFEE0DD) + b"\0" * 4) * n
    return part10(EXPL, head + body)
files["nested_40"] = nest(40)
files["nested_32"] = nest(32)
# defined-length nesting 40 deep
def nest_def(n):
    body = ex(0x0040A010, b"CS", b"CONTAINS")
    for _ in range(n):
        it = tag(0xFFFEE000) + struct.pack("<I", len(body)) + body
        body = ex(0x0040A730, b"SQ", it)
    return part10(EXPL, head + body)
files["nested_40_defined"] = nest_def(40)
for seed in range(6):
    r = random.Random(seed)
    files["random_%d" % seed] = bytes(r.randrange(256) for _ in range(r.choice([7, 100, 1000, 5000])))
    # random bytes after a valid header: the reader gets further
    files["random_after_header_%d" % seed] = part10(EXPL if seed % 2 else IMPL, head if seed % 2 else ihead) + \
        bytes(r.randrange(256) for _ in range(2000))
for name, data in files.items():
    with open(os.path.join(d, name + ".dcm"), "wb") as f:
        f.write(data)
EOF
if [ ! -s "$T/nested_40.dcm" ]; then
	notok "generate hostile files" "python failed"
	exit 1
fi

E=$T
expect_error "length past the end" "past the end" dump "$E/len_past_end.dcm"
expect_error "length past the end (json)" "past the end" json "$E/len_past_end.dcm"
expect_error "length past the enclosing item" "enclosing item" dump "$E/len_past_item.dcm"
expect_error "length 0xFFFF on explicit US" "past the end" dump "$E/len_ffff_explicit_us.dcm"
expect_error "length 0xFFFFFFFF on US" "undefined length on VR US" dump "$E/undef_us.dcm"
expect_error "length 0xFFFFFFFF on LO" "undefined length on VR LO" dump "$E/undef_lo.dcm"
expect_error "length 0xFFFFFFFF on DA" "undefined length on VR DA" json "$E/undef_da.dcm"
expect_error "length 0xFFFFFFFF on explicit UT" "undefined length on VR UT" dump "$E/undef_ut_explicit.dcm"
expect_error "nesting 40 deep" "nested deeper than 32" dump "$E/nested_40.dcm"
expect_error "nesting 40 deep (json)" "nested deeper than 32" json "$E/nested_40.dcm"
expect_error "nesting 40 deep, defined lengths" "nested deeper than 32" dump "$E/nested_40_defined.dcm"
run dump "$E/nested_40.dcm"
if grep -q ": limit exceeded at byte offset" "$T/err"; then
	ok "nesting 40 deep is a limit, not a parse error"
else
	notok "nesting 40 deep is a limit, not a parse error"
fi
expect_ok "nesting 32 deep (the limit) reads" dump "$E/nested_32.dcm"
expect_error "invalid VR bytes" "invalid VR" dump "$E/invalid_vr_bytes.dcm"
expect_error "unknown VR ZZ" "unknown VR 'ZZ'" dump "$E/unknown_vr_zz.dcm"
expect_error "item at top level" "item outside a sequence" dump "$E/item_at_top_level.dcm"
expect_error "item of undefined length at top level" "item outside a sequence" json "$E/item_undef_at_top_level.dcm"
expect_error "sequence delimiter at top level" "sequence delimiter" dump "$E/seq_delim_at_top_level.dcm"
expect_error "item delimiter at top level" "item delimiter" dump "$E/item_delim_at_top_level.dcm"
expect_error "element where an item belongs" "expected an item" dump "$E/element_in_sequence.dcm"
expect_error "sequence never closed" "data ends inside" dump "$E/seq_not_closed.dcm"
expect_error "delimiter crossing the end of its sequence" "." dump "$E/delim_crosses_seq_end.dcm"
expect_error "empty file" "empty" dump "$E/empty.dcm"
expect_error "empty file (json)" "empty" json "$E/empty.dcm"
expect_error "1-byte file" "short|ends|header" dump "$E/one_byte.dcm"
expect_error "preamble only" "short|ends|empty|header" dump "$E/preamble_only.dcm"
expect_error "preamble and half a header" "short|ends|header" dump "$E/preamble_and_half_header.dcm"
expect_sane "deflated transfer syntax over garbage" dump "$E/deflate_garbage.dcm"
if [ "$RC" -eq 1 ]; then ok "deflate garbage is an error"; else notok "deflate garbage is an error" "exit $RC"; fi

# odd lengths: readable with a warning, an error with --strict
run dump "$E/odd_length.dcm"
if why=$(sane) && [ "$RC" -eq 0 ] && grep -qE "^dicomvault: .*: warning: .*byte offset [0-9]+: .*odd" "$T/err"; then
	ok "odd length: exit 0 with a warning"
else
	notok "odd length: exit 0 with a warning" "exit $RC ${why:-}" "$ERR"
fi
expect_error "odd length with --strict" "odd" dump "$E/odd_length.dcm" --strict
expect_error "odd length with --strict (json)" "odd" json "$E/odd_length.dcm" --strict

# readable oddities
expect_ok "US with 60000 values (dump)" dump "$E/us_60000_values.dcm"
expect_ok "US with 60000 values (json)" json "$E/us_60000_values.dcm"
if "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); v=d["00280010"]["Value"]; sys.exit(not (len(v)==60000 and v[59999]==59999))' "$T/out" 2>/dev/null; then
	ok "US with 60000 values: all values in the JSON"
else
	notok "US with 60000 values: all values in the JSON"
fi
expect_sane "CS with 70000 backslashes (dump)" dump "$E/cs_70000_backslashes.dcm"
expect_sane "CS with 70000 backslashes (json)" json "$E/cs_70000_backslashes.dcm"
expect_ok "UT with 70000 backslashes (dump)" dump "$E/ut_70000_backslashes.dcm"
expect_ok "UT with 70000 backslashes (json)" json "$E/ut_70000_backslashes.dcm"
expect_ok "charset ISO_IR 999 (dump)" dump "$E/charset_iso_ir_999.dcm"
expect_ok "charset ISO_IR 999 (json)" json "$E/charset_iso_ir_999.dcm"
expect_sane "charset garbage (dump)" dump "$E/charset_garbage.dcm"
expect_sane "charset garbage (json)" json "$E/charset_garbage.dcm"

# not files
run dump "$T/no-such-file.dcm"
if why=$(sane) && [ "$RC" -eq 1 ] && grep -q "cannot open" "$T/err"; then
	ok "nonexistent file: exit 1, cannot open"
else
	notok "nonexistent file: exit 1, cannot open" "exit $RC ${why:-}" "$ERR"
fi
mkdir -p "$T/a_directory"
run dump "$T/a_directory"
if why=$(sane) && [ "$RC" -eq 1 ] && grep -q "cannot open" "$T/err"; then
	ok "directory: exit 1, cannot open"
else
	notok "directory: exit 1, cannot open" "exit $RC ${why:-}" "$ERR"
fi
run json "$T/a_directory"
if why=$(sane) && [ "$RC" -eq 1 ] && grep -q "cannot open" "$T/err"; then
	ok "directory (json): exit 1, cannot open"
else
	notok "directory (json): exit 1, cannot open" "exit $RC ${why:-}" "$ERR"
fi

# random bytes, alone and after a valid header
for f in "$E"/random_*.dcm; do
	expect_sane "random bytes $(basename "$f" .dcm) (dump)" dump "$f"
	expect_sane "random bytes $(basename "$f" .dcm) (json)" json "$f"
done

# ---- truncated real files: a sample of offsets ----
# Offsets: the preamble edges, offsets inside the header and at the start of
# the value of each meta element and of the first three data set elements,
# then a spread to the end.
# A cut at an element boundary is a shorter valid file (exit 0); any other
# cut must be exit 1 with a proper message.
truncations() {  # FILE NAME
	local f=$1 name=$2 off at bad=0 nerr=0 n=0 msg=""
	if [ ! -r "$f" ]; then
		echo "# skipped $name: $f not installed"
		return
	fi
	for off in $("$PY" - "$f" <<'EOF'
import struct, sys
b = open(sys.argv[1], "rb").read()
LONG = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
offs = {0, 1, 2, 4, 8, 64, 127, 128, 129, 131, 132, 133, 134, 136, 140}
pos, n = 132, 0
# walk top-level explicit VR LE elements: the meta group and the first
# three of the data set (stop at an undefined length)
while pos + 8 <= len(b) and n < 3:
    for k in (0, 1, 4, 6, 8, 10, 12, 13):
        offs.add(pos + k)
    vr = b[pos + 4:pos + 6]
    if vr in LONG:
        ln = struct.unpack("<I", b[pos + 8:pos + 12])[0]
        hdr = 12
    else:
        ln = struct.unpack("<H", b[pos + 6:pos + 8])[0]
        hdr = 8
    if ln == 0xFFFFFFFF:
        break
    if struct.unpack("<H", b[pos:pos + 2])[0] != 2:
        n += 1
    pos += hdr + ln
for k in range(1, 16):
    offs.add(len(b) * k // 16)
offs.update({len(b) - 8, len(b) - 2, len(b) - 1})
print(" ".join(str(o) for o in sorted(o for o in offs if 0 <= o < len(b))))
EOF
	); do
		head -c "$off" "$f" >"$T/cut.dcm"
		run dump "$T/cut.dcm"
		n=$((n + 1))
		if ! why=$(sane); then
			bad=$((bad + 1))
			msg="cut at $off: $why"
		elif [ "$RC" -eq 1 ]; then
			nerr=$((nerr + 1))
			if [ "$(wc -l <"$T/err")" -ne 1 ] ||
				! grep -qE "^dicomvault: .*: (not valid DICOM|limit exceeded) at byte offset [0-9]+( of the inflated data set)?: .+" "$T/err"; then
				bad=$((bad + 1))
				msg="cut at $off: bad message: $ERR"
			elif ! grep -q "of the inflated data set" "$T/err"; then
				# the offset named lies inside the cut file
				at=$(sed -E 's/.* at byte offset ([0-9]+).*/\1/' "$T/err")
				if [ "$at" -gt "$off" ]; then
					bad=$((bad + 1))
					msg="cut at $off: offset $at is past the end: $ERR"
				fi
			fi
		elif [ "$RC" -ne 0 ]; then
			bad=$((bad + 1))
			msg="cut at $off: exit $RC"
		fi
	done
	if [ "$bad" -eq 0 ] && [ "$nerr" -gt $((n / 2)) ]; then
		ok "$name truncated at $n offsets ($nerr errors, $((n - nerr)) at element boundaries)"
	else
		notok "$name truncated at $n offsets" "$bad bad results, $nerr errors" "$msg"
	fi
}
truncations "$PYD/CT_small.dcm" "CT_small.dcm"
truncations "$PYD/rtplan.dcm" "rtplan.dcm"
truncations "$PYD/image_dfl.dcm" "image_dfl.dcm (deflated)"
exit 0
