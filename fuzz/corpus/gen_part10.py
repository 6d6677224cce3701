#!/usr/bin/python3
"""gen_part10.py OUTDIR: (re)generates the seed corpus of fuzz/part10_fuzz.c.

Two kinds of seeds:
  gen_*      small files built byte by byte here (struct packing), one per
             encoding feature the Part 10 reader must handle;
  pydicom_*  pydicom's own test files (MIT licence) of at most 64 KiB, copied
             as they are; a few larger ones are rewritten with pydicom with
             their bulk values cut short (pydicom_*_short.dcm).

Deterministic: running it twice gives the same bytes. Needs the Debian
python3-pydicom package (run with /usr/bin/python3). Layer: tests (fuzz).
"""
import os
import shutil
import struct
import sys
import zlib

MAX_SEED = 64 * 1024

TS_IMPLICIT = "1.2.840.10008.1.2"
TS_EXPLICIT = "1.2.840.10008.1.2.1"
TS_DEFLATED = "1.2.840.10008.1.2.1.99"
TS_BIG = "1.2.840.10008.1.2.2"
TS_JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
TS_JPEG2000 = "1.2.840.10008.1.2.4.91"
TS_RLE = "1.2.840.10008.1.2.5"
SC_SOP = "1.2.840.10008.5.1.4.1.1.7"      # Secondary Capture Image Storage
CT_SOP = "1.2.840.10008.5.1.4.1.1.2"
IMPL_UID = "2.25.214404290787425542307226187380651128817"  # a UUID-derived UID

LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
UNDEF = 0xFFFFFFFF


class Enc:
    """An encoding: explicit or implicit VR, little or big endian."""

    def __init__(self, explicit=True, big=False):
        self.explicit = explicit
        self.big = big
        self.e = ">" if big else "<"

    def tag(self, tag):
        return struct.pack(self.e + "HH", tag >> 16, tag & 0xFFFF)

    def u32(self, v):
        return struct.pack(self.e + "I", v)


LE = Enc(True, False)
IMPL = Enc(False, False)
BE = Enc(True, True)


def pad(val, vr):
    if len(val) % 2:
        val += b"\0" if vr in ("UI", "OB", "UN") else b" "
    return val


def elem(enc, tag, vr, val, length=None):
    """One element; val is the already encoded value field."""
    n = len(val) if length is None else length
    if not enc.explicit:
        return enc.tag(tag) + enc.u32(n) + val
    if vr in LONG_VRS:
        return enc.tag(tag) + vr.encode() + b"\0\0" + enc.u32(n) + val
    return enc.tag(tag) + vr.encode() + struct.pack(enc.e + "H", n) + val


def s(enc, tag, vr, text):
    """A string element (padded to even length)."""
    if isinstance(text, str):
        text = text.encode("latin-1")
    return elem(enc, tag, vr, pad(text, vr))


def nums(enc, tag, vr, fmt, values):
    return elem(enc, tag, vr, b"".join(struct.pack(enc.e + fmt, v) for v in values))


def item(enc, content, undef=False):
    if undef:
        return enc.tag(0xFFFEE000) + enc.u32(UNDEF) + content + enc.tag(0xFFFEE00D) + enc.u32(0)
    return enc.tag(0xFFFEE000) + enc.u32(len(content)) + content


def seq(enc, tag, items, undef=False, vr="SQ"):
    body = b"".join(items)
    if undef:
        return elem(enc, tag, vr, body + enc.tag(0xFFFEE0DD) + enc.u32(0), UNDEF)
    return elem(enc, tag, vr, body)


def encaps(enc, tag, frags, vr="OB"):
    """Encapsulated pixel data; frags[0] is the basic offset table."""
    body = b"".join(enc.tag(0xFFFEE000) + enc.u32(len(f)) + f for f in frags)
    return elem(enc, tag, vr, body + enc.tag(0xFFFEE0DD) + enc.u32(0), UNDEF)


def meta(ts, sop=SC_SOP, inst="1.2.3.4.5.6.7.8.9", group_length=True, extra=b""):
    body = (elem(LE, 0x00020001, "OB", b"\x00\x01")
            + s(LE, 0x00020002, "UI", sop)
            + s(LE, 0x00020003, "UI", inst)
            + (s(LE, 0x00020010, "UI", ts) if ts is not None else b"")
            + s(LE, 0x00020012, "UI", IMPL_UID)
            + s(LE, 0x00020013, "SH", "GEN_PART10")
            + extra)
    gl = elem(LE, 0x00020000, "UL", struct.pack("<I", len(body))) if group_length else b""
    return gl + body


def part10(ts, ds, **kw):
    return b"\0" * 128 + b"DICM" + meta(ts, **kw) + ds


def deflate(data):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def patient(enc, name="Doe^Jane", charset=None):
    out = b""
    if charset is not None:
        out += s(enc, 0x00080005, "CS", charset)
    out += (s(enc, 0x00080016, "UI", SC_SOP)
            + s(enc, 0x00080018, "UI", "1.2.3.4.5.6.7.8.9")
            + s(enc, 0x00080020, "DA", "20240131")
            + s(enc, 0x00080030, "TM", "235959.123456")
            + s(enc, 0x00080060, "CS", "OT")
            + s(enc, 0x00100010, "PN", name)
            + s(enc, 0x00100020, "LO", "ID-42"))
    return out


def image(enc, rows=4, cols=4, pixel_repr=0, pixel_vr="OW"):
    """A tiny 16-bit monochrome image."""
    px = [((r * cols + c) * 257) & 0xFFFF for r in range(rows) for c in range(cols)]
    if pixel_repr:
        px = [v - 0x10000 if v >= 0x8000 else v for v in px]
    out = (nums(enc, 0x00280002, "US", "H", [1])
           + s(enc, 0x00280004, "CS", "MONOCHROME2")
           + nums(enc, 0x00280010, "US", "H", [rows])
           + nums(enc, 0x00280011, "US", "H", [cols])
           + nums(enc, 0x00280100, "US", "H", [16])
           + nums(enc, 0x00280101, "US", "H", [12])
           + nums(enc, 0x00280102, "US", "H", [11])
           + nums(enc, 0x00280103, "US", "H", [pixel_repr]))
    # Smallest Image Pixel Value is "US or SS": signed when pixel_repr is 1
    if pixel_repr:
        out += nums(enc, 0x00280106, "SS", "h", [min(px)])
    else:
        out += nums(enc, 0x00280106, "US", "H", [min(px)])
    fmt = "h" if pixel_repr else "H"
    out += nums(enc, 0x7FE00010, pixel_vr, fmt, px)
    return out


def code_item(enc, value, scheme, meaning, undef=False):
    return item(enc, s(enc, 0x00080100, "SH", value) + s(enc, 0x00080102, "SH", scheme)
                + s(enc, 0x00080104, "LO", meaning), undef)


def nested3(enc, undef_outer, undef_mid, undef_inner):
    """Three levels: Referenced Series > Referenced Instance > Code Sequence
    (tags chosen from the dictionary so implicit VR sees them as SQ)."""
    inner = seq(enc, 0x00081250, [code_item(enc, "121311", "DCM", "Localizer", undef_inner)], undef_inner)
    mid = seq(enc, 0x0008114A, [item(enc, s(enc, 0x00081150, "UI", "1.2.3") + s(enc, 0x00081155, "UI", "1.2.3.1") + inner,
                                     undef_mid)], undef_mid)
    outer = seq(enc, 0x00081115, [item(enc, s(enc, 0x0020000E, "UI", "1.2.3.9") + mid, undef_outer),
                                  item(enc, s(enc, 0x0020000E, "UI", "1.2.3.10"), not undef_outer)], undef_outer)
    return outer


def standard_ds(enc, undef=True, charset="ISO_IR 100"):
    """Typical content: strings, numbers, sequences, pixel data."""
    return (patient(enc, charset=charset)
            + s(enc, 0x00081030, "LO", "Study description")
            + seq(enc, 0x00081032, [code_item(enc, "T-A0100", "SRT", "Brain"),
                                    code_item(enc, "T-D4000", "SRT", "Abdomen", True)], undef)
            + s(enc, 0x00180050, "DS", "2.5")
            + nested3(enc, undef, not undef, undef)
            + image(enc))


# Every VR of PS3.5 on a dictionary tag of that VR (so that the same set
# also reads in implicit VR), by tag.
def all_vrs(enc):
    e = enc.e

    def pk(fmt, *v):
        return b"".join(struct.pack(e + fmt, x) for x in v)

    items = [
        (0x00080005, "CS", pad(b"ISO_IR 192", "CS")),
        (0x00080012, "DA", b"20240229"),
        (0x00080013, "TM", b"120000.5"),
        (0x00080015, "DT", pad(b"20240229120000.000001+0100", "DT")),
        (0x00080016, "UI", pad(SC_SOP.encode(), "UI")),
        (0x00080018, "UI", pad(b"1.2.3.4.5.6.7.8.9", "UI")),
        (0x00080054, "AE", pad(b"ARCHIVE_AE", "AE")),
        (0x00080081, "ST", pad("Straße 1\r\nBern".encode("utf-8"), "ST")),
        (0x00080090, "PN", pad("Müller^Hans=山田^太郎=やまだ^たろう".encode("utf-8"), "PN")),
        (0x00080119, "UC", pad(b"a-long-code-value-of-more-than-sixteen-characters\\second", "UC")),
        (0x00080120, "UR", pad(b"http://example.org/codes?x=1", "UR")),
        (0x0008030E, "UT", pad("Unlimited text \\ with a backslash — and UTF-8".encode("utf-8"), "UT")),
        (0x0008040C, "UV", pk("Q", 1, 2**64 - 1)),
        (0x00089459, "FL", pk("f", 1.5, -0.0, float("inf"))),
        (0x00100020, "LO", pad(b"PATIENT-ID", "LO")),
        (0x00101010, "AS", b"042Y"),
        (0x00104000, "LT", pad(b"Long text\\not split", "LT")),
        (0x00144108, "SL", pk("i", -2147483648, 2147483647)),
        (0x0014410A, "OW", pk("H", 1, 2, 0xFFFF)),
        (0x0014410B, "OF", pk("f", 3.25, float("nan"))),
        (0x0014410C, "OD", pk("d", 2.5, -1e300)),
        (0x00180050, "DS", pad(b"1.25\\-3e-2\\ 7 ", "DS")),
        (0x00189219, "SS", pk("h", -32768, 32767)),
        (0x00200013, "IS", pad(b"-12\\+34", "IS")),
        (0x00209165, "AT", pk("H", 0x0010, 0x0010, 0x7FE0, 0x0010)),
        (0x00280010, "US", pk("H", 0, 65535)),
        (0x00281050, "DS", pad(b"40", "DS")),
        (0x0040A30A, "DS", pad(b"1\\2\\3\\4\\5\\6\\7\\8", "DS")),
        (0x00660040, "OL", pk("I", 0, 0xFFFFFFFF)),
        (0x0072006D, "UN", b"\x01\x02\x03\x04"),
        (0x00720081, "OV", pk("Q", 2**63)),
        (0x00720082, "SV", pk("q", -2**63, 2**63 - 1)),
        (0x00720083, "UV", pk("Q", 7)),
        (0x00720106, "UL", pk("I", 0xDEADBEEF)),
        (0x7FE00010, "OB", b"\x00\xff\x10\x20"),
    ]
    return {tag: elem(enc, tag, vr, val) for tag, vr, val in items}


def all_vrs_full(enc):
    """all_vrs plus SH, FD and SQ, as a data set in ascending tag order."""
    parts = all_vrs(enc)
    parts[0x00080050] = s(enc, 0x00080050, "SH", "ACC-1")
    parts[0x00180088] = s(enc, 0x00180088, "DS", "0.5")
    parts[0x0018602C] = nums(enc, 0x0018602C, "FD", "d", [0.125, 1e-10])
    parts[0x00400275] = seq(enc, 0x00400275, [item(enc, s(enc, 0x00321060, "LO", "Requested procedure"))])
    return b"".join(parts[t] for t in sorted(parts))


def private_blocks(enc):
    """Two creators in group 0009, one in 0011 with a private sequence, and
    a private block inside an item."""
    inner = item(enc, s(enc, 0x00290010, "LO", "INNER CREATOR") + s(enc, 0x00291001, "SH", "inner"))
    return (patient(enc)
            + s(enc, 0x00090010, "LO", "ACME 1.0")
            + s(enc, 0x00090011, "LO", "OTHER VENDOR")
            + s(enc, 0x00091001, "LO", "acme value")
            + nums(enc, 0x00091002, "US", "H", [1, 2, 3])
            + elem(enc, 0x00091003, "OB", b"\x00\x01\x02\x03")
            + s(enc, 0x00091101, "DS", "1.5")
            + s(enc, 0x00110010, "LO", "SIEMENS CSA HEADER")
            + elem(enc, 0x00111008, "UN", b"ABCD")
            + seq(enc, 0x00111010, [inner, inner], True)
            + s(enc, 0x00190010, "LO", "GEMS_ACQU_01")
            + s(enc, 0x0019100C, "SH", "x")
            + elem(enc, 0x00191010, "UT", pad(b"text under a GE creator", "UT")))


def un_sequences():
    """CP-246: UN of undefined length holding implicit VR LE items, a UN of
    defined length on a tag the dictionary calls SQ, nested in a real SQ."""
    inner_impl = IMPL.tag(0x00080100) + IMPL.u32(6) + b"121311" + IMPL.tag(0x00080102) + IMPL.u32(4) + b"DCM "
    un_items = IMPL.tag(0xFFFEE000) + IMPL.u32(UNDEF) + inner_impl + IMPL.tag(0xFFFEE00D) + IMPL.u32(0)
    un_undef = (LE.tag(0x00091010) + b"UN\0\0" + LE.u32(UNDEF) + un_items
                + IMPL.tag(0xFFFEE0DD) + IMPL.u32(0))
    # defined-length item inside a defined-length UN on (0040,A043) Concept Name Code Sequence
    it = IMPL.tag(0xFFFEE000) + IMPL.u32(len(inner_impl)) + inner_impl
    un_def = LE.tag(0x0040A043) + b"UN\0\0" + LE.u32(len(it)) + it
    in_sq = seq(LE, 0x0040A730, [item(LE, s(LE, 0x0040A010, "CS", "CONTAINS") + un_def, True)], True)
    return (patient(LE) + s(LE, 0x00090010, "LO", "UN CREATOR") + un_undef + un_def + in_sq)


def deep(enc, depth, undef=True):
    """depth nested sequences (Content Sequence), innermost holds a value."""
    content = s(enc, 0x0040A160, "UT", "leaf")
    for _ in range(depth):
        content = seq(enc, 0x0040A730, [item(enc, content, undef)], undef)
    return patient(enc) + content


def encapsulated(frames, bot=True, vr="OB"):
    """Encapsulated pixel data: basic offset table + fragments per frame."""
    frags = []
    offsets = []
    pos = 0
    for fr in frames:
        offsets.append(pos)
        for part in fr:
            frags.append(part)
            pos += 8 + len(part)
    table = b"".join(struct.pack("<I", o) for o in offsets) if bot else b""
    ds = (patient(LE)
          + nums(LE, 0x00280002, "US", "H", [1])
          + s(LE, 0x00280004, "CS", "MONOCHROME2")
          + s(LE, 0x00280008, "IS", str(len(frames)))
          + nums(LE, 0x00280010, "US", "H", [8])
          + nums(LE, 0x00280011, "US", "H", [8])
          + nums(LE, 0x00280100, "US", "H", [8])
          + nums(LE, 0x00280101, "US", "H", [8])
          + nums(LE, 0x00280102, "US", "H", [7])
          + nums(LE, 0x00280103, "US", "H", [0])
          + encaps(LE, 0x7FE00010, [table] + frags, vr))
    return ds


def jpegish(n):
    """Bytes that look like a JPEG stream (SOI ... EOI), even length."""
    body = bytes((i * 37) & 0xFF for i in range(n))
    return b"\xff\xd8" + body + b"\xff\xd9"


def generated():
    seeds = {}
    # --- transfer syntaxes ---
    seeds["gen_implicit_le.dcm"] = part10(TS_IMPLICIT, standard_ds(IMPL))
    seeds["gen_explicit_le.dcm"] = part10(TS_EXPLICIT, standard_ds(LE))
    seeds["gen_explicit_be.dcm"] = part10(TS_BIG, standard_ds(BE))
    seeds["gen_deflated.dcm"] = part10(TS_DEFLATED, deflate(standard_ds(LE)))
    seeds["gen_deflated_all_vrs.dcm"] = part10(TS_DEFLATED, deflate(all_vrs_full(LE)))
    seeds["gen_encaps_bot_3frames_5frags.dcm"] = part10(
        TS_JPEG_BASELINE, encapsulated([[jpegish(20)], [jpegish(10), jpegish(12)], [jpegish(6), b"\0\0", jpegish(4)]]))
    seeds["gen_encaps_empty_bot_1frame.dcm"] = part10(TS_JPEG_BASELINE, encapsulated([[jpegish(30)]], bot=False))
    seeds["gen_encaps_j2k_ow.dcm"] = part10(TS_JPEG2000, encapsulated([[jpegish(16)], [jpegish(16)]], vr="OW"))
    seeds["gen_encaps_rle.dcm"] = part10(TS_RLE, encapsulated([[struct.pack("<16I", 1, 64, *([0] * 14)) + b"\x07" + b"\x00" * 8]]))
    seeds["gen_unknown_ts.dcm"] = part10("1.2.3.999.1", standard_ds(LE))
    seeds["gen_missing_ts.dcm"] = part10(None, standard_ds(LE))
    seeds["gen_ts_says_implicit_data_explicit.dcm"] = part10(TS_IMPLICIT, standard_ds(LE))
    seeds["gen_ts_says_explicit_data_implicit.dcm"] = part10(TS_EXPLICIT, standard_ds(IMPL))
    seeds["gen_meta_no_group_length.dcm"] = part10(TS_EXPLICIT, standard_ds(LE), group_length=False)
    seeds["gen_meta_extra_elements.dcm"] = part10(
        TS_EXPLICIT, standard_ds(LE),
        extra=s(LE, 0x00020016, "AE", "SENDER") + s(LE, 0x00020100, "UI", "1.2.3") + elem(LE, 0x00020102, "OB", b"\x01\x02"))
    seeds["gen_no_preamble_with_meta.dcm"] = meta(TS_EXPLICIT) + standard_ds(LE)
    # --- bare data sets (no preamble, no meta) ---
    seeds["gen_bare_implicit_le.dcm"] = standard_ds(IMPL)
    seeds["gen_bare_explicit_le.dcm"] = standard_ds(LE)
    seeds["gen_bare_explicit_be.dcm"] = standard_ds(BE)
    # --- sequences ---
    seqs_def = (patient(LE)
                + seq(LE, 0x00081032, [code_item(LE, "A", "B", "defined item in defined sequence")])
                + seq(LE, 0x00081140, [])                                  # empty, defined length
                + seq(LE, 0x00081199, [], True)                            # empty, undefined length
                + seq(LE, 0x00082112, [item(LE, b""), item(LE, b"", True)]))  # empty items
    seeds["gen_seq_defined_and_empty.dcm"] = part10(TS_EXPLICIT, seqs_def)
    seeds["gen_seq_undefined.dcm"] = part10(TS_EXPLICIT, patient(LE) + seq(
        LE, 0x00081032, [code_item(LE, "A", "B", "undefined", True), code_item(LE, "C", "D", "item", True)], True))
    for name, (a, b, c) in {"ddd": (False, False, False), "uuu": (True, True, True),
                            "dud": (False, True, False), "udu": (True, False, True)}.items():
        seeds["gen_seq_nested3_%s_explicit_le.dcm" % name] = part10(TS_EXPLICIT, patient(LE) + nested3(LE, a, b, c))
    seeds["gen_seq_nested3_implicit_le.dcm"] = part10(TS_IMPLICIT, patient(IMPL) + nested3(IMPL, True, False, True))
    seeds["gen_seq_nested3_explicit_be.dcm"] = part10(TS_BIG, patient(BE) + nested3(BE, False, True, False))
    seeds["gen_seq_nested31_undef.dcm"] = part10(TS_EXPLICIT, deep(LE, 31))
    seeds["gen_seq_nested33_too_deep.dcm"] = part10(TS_EXPLICIT, deep(LE, 33))
    seeds["gen_seq_nested31_defined.dcm"] = part10(TS_EXPLICIT, deep(LE, 31, False))
    # --- UN, CP-246 ---
    seeds["gen_un_undefined_cp246.dcm"] = part10(TS_EXPLICIT, un_sequences())
    # --- private data ---
    seeds["gen_private_blocks_explicit_le.dcm"] = part10(TS_EXPLICIT, private_blocks(LE))
    seeds["gen_private_blocks_implicit_le.dcm"] = part10(TS_IMPLICIT, private_blocks(IMPL))
    # --- every VR ---
    seeds["gen_all_vrs_explicit_le.dcm"] = part10(TS_EXPLICIT, all_vrs_full(LE))
    seeds["gen_all_vrs_explicit_be.dcm"] = part10(TS_BIG, all_vrs_full(BE))
    seeds["gen_all_vrs_implicit_le.dcm"] = part10(TS_IMPLICIT, all_vrs_full(IMPL))
    # --- multi-valued strings and numbers ---
    mv = (s(LE, 0x00080005, "CS", "ISO_IR 100")
          + s(LE, 0x00080008, "CS", "ORIGINAL\\PRIMARY\\AXIAL\\\\")
          + s(LE, 0x00080016, "UI", SC_SOP)
          + s(LE, 0x00080018, "UI", "1.2.3")
          + s(LE, 0x00100010, "PN", "Doe^John^^Dr^Jr=\\Roe^Richard")
          + s(LE, 0x00101001, "PN", "\\\\\\")
          + s(LE, 0x00180050, "DS", "\\".join(str(i * 0.5) for i in range(200)))
          + nums(LE, 0x00189219, "SS", "h", list(range(-500, 500)))
          + s(LE, 0x00200013, "IS", "\\".join(str(i) for i in range(-100, 100)))
          + nums(LE, 0x00209165, "AT", "H", [0x0008, 0x0016] * 40)
          + nums(LE, 0x00280010, "US", "H", list(range(2000))))
    seeds["gen_multivalue.dcm"] = part10(TS_EXPLICIT, mv)
    seeds["gen_multivalue_implicit_le.dcm"] = part10(TS_IMPLICIT, bare_implicit_of(mv))
    # --- character sets ---
    for cs, name, text in [
        ("ISO_IR 100", "latin1", "Müller^Jörg".encode("latin-1")),
        ("ISO_IR 192", "utf8", "Günther^Größe=山田^太郎".encode("utf-8")),
        ("ISO_IR 144", "cyrillic", "Люкceмбypг".encode("iso-8859-5", "replace")),
        ("GB18030", "gb18030", "王^小东".encode("gb18030")),
        ("\\ISO 2022 IR 87", "jis_x0208", b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B"),
        ("ISO 2022 IR 6\\ISO 2022 IR 149", "korean", b"Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7"),
        ("ISO_IR 999", "invalid_charset", b"Unknown^Charset"),
        ("ISO_IR 100\\ISO_IR 100\\ISO_IR 100\\ISO_IR 100\\ISO_IR 100\\ISO_IR 100\\ISO_IR 100\\ISO_IR 100\\ISO_IR 100",
         "nine_charset_terms", b"Nine^Terms"),
        ("", "empty_charset", b"Plain^Ascii"),
    ]:
        ds = (s(LE, 0x00080005, "CS", cs) + s(LE, 0x00080016, "UI", SC_SOP) + s(LE, 0x00080018, "UI", "1.2.3")
              + s(LE, 0x00081030, "LO", text.split(b"=")[0]) + s(LE, 0x00100010, "PN", text)
              + seq(LE, 0x00400275, [item(LE, s(LE, 0x00080005, "CS", "ISO_IR 192")
                                          + s(LE, 0x00321060, "LO", "Überweisung".encode("utf-8")))]))
        seeds["gen_charset_%s.dcm" % name] = part10(TS_EXPLICIT, ds)
    # --- lenient quirks the reader accepts with a warning ---
    odd = patient(LE) + LE.tag(0x00081030) + b"LO" + struct.pack("<H", 5) + b"ABCDE"
    seeds["gen_quirk_odd_length.dcm"] = part10(TS_EXPLICIT, odd)
    nz = patient(LE) + elem(LE, 0x00081032, "SQ", LE.tag(0xFFFEE000) + LE.u32(UNDEF) + s(LE, 0x00080100, "SH", "X")
                            + LE.tag(0xFFFEE00D) + LE.u32(4) + LE.tag(0xFFFEE0DD) + LE.u32(8), UNDEF)
    seeds["gen_quirk_delimiters_nonzero_length.dcm"] = part10(TS_EXPLICIT, nz)
    seeds["gen_quirk_unsorted_tags.dcm"] = part10(TS_EXPLICIT, s(LE, 0x00100020, "LO", "ID") + s(LE, 0x00100010, "PN", "B^A")
                                                 + s(LE, 0x00080018, "UI", "1.2.3") + s(LE, 0x00100010, "PN", "dup"))
    gl = (elem(LE, 0x00080000, "UL", struct.pack("<I", 0)) + s(LE, 0x00080016, "UI", SC_SOP)
          + elem(LE, 0x00100000, "UL", struct.pack("<I", 18)) + s(LE, 0x00100010, "PN", "Group^Length"))
    seeds["gen_quirk_group_lengths.dcm"] = part10(TS_EXPLICIT, gl)
    seeds["gen_quirk_us_or_ss_signed_implicit.dcm"] = part10(TS_IMPLICIT, patient(IMPL) + image(IMPL, pixel_repr=1))
    seeds["gen_quirk_trailing_padding.dcm"] = part10(TS_EXPLICIT, standard_ds(LE)) + elem(LE, 0xFFFCFFFC, "OB", b"\0" * 64)
    seeds["gen_quirk_empty_values.dcm"] = part10(TS_EXPLICIT, b"".join(
        elem(LE, t, v, b"") for t, v in [(0x00080016, "UI"), (0x00080020, "DA"), (0x00100010, "PN"),
                                         (0x00280010, "US"), (0x7FE00010, "OW")]))
    # --- hostile but small ---
    seeds["gen_bad_length_past_end.dcm"] = part10(TS_EXPLICIT, patient(LE) + LE.tag(0x00081030) + b"LO" + struct.pack("<H", 200) + b"short")
    seeds["gen_bad_undefined_length_us.dcm"] = part10(TS_EXPLICIT, patient(LE) + LE.tag(0x00280010) + b"US" + b"\xff\xff" + b"\x01\x00")
    seeds["gen_bad_item_at_top_level.dcm"] = part10(TS_EXPLICIT, patient(LE) + item(LE, b""))
    seeds["gen_bad_unknown_vr.dcm"] = part10(TS_EXPLICIT, patient(LE) + LE.tag(0x00081030) + b"ZZ" + struct.pack("<H", 2) + b"ab")
    return seeds


def bare_implicit_of(explicit_le):
    """Re-encode a flat explicit VR LE data set (no sequences) as implicit."""
    out = b""
    pos = 0
    while pos < len(explicit_le):
        tag = struct.unpack("<HH", explicit_le[pos:pos + 4])
        vr = explicit_le[pos + 4:pos + 6].decode()
        if vr in LONG_VRS:
            n = struct.unpack("<I", explicit_le[pos + 8:pos + 12])[0]
            h = 12
        else:
            n = struct.unpack("<H", explicit_le[pos + 6:pos + 8])[0]
            h = 8
        out += struct.pack("<HHI", tag[0], tag[1], n) + explicit_le[pos + h:pos + h + n]
        pos += h + n
    return out


def shortened(path, out):
    """A pydicom file with its bulk values cut to a few hundred bytes."""
    import pydicom
    ds = pydicom.dcmread(path)
    for el in ds.iterall():
        if el.VR in ("OB", "OW", "UN") and isinstance(el.value, bytes) and len(el.value) > 512:
            el.value = el.value[:512]
    if "PixelData" in ds and ds.file_meta.TransferSyntaxUID.is_compressed:
        from pydicom.encaps import encapsulate, generate_pixel_data_frame
        nf = int(getattr(ds, "NumberOfFrames", 1) or 1)
        frames = [f[:300] + b"\xff\xd9" if len(f) > 300 else f
                  for f in generate_pixel_data_frame(ds.PixelData, nf)]
        ds.PixelData = encapsulate([f + b"\0" * (len(f) & 1) for f in frames], has_bot=True)
    ds.save_as(out, write_like_original=True)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "part10")
    os.makedirs(out, exist_ok=True)
    for name, data in sorted(generated().items()):
        assert len(data) <= MAX_SEED, name
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    import pydicom.data
    base = os.path.dirname(pydicom.data.__file__)
    for sub in ("test_files", "charset_files", "test_files/dicomdirtests"):
        d = os.path.join(base, sub)
        for fn in sorted(os.listdir(d)):
            p = os.path.join(d, fn)
            if not os.path.isfile(p) or os.path.getsize(p) > MAX_SEED:
                continue
            if not (fn.endswith(".dcm") or fn.startswith("DICOMDIR")):
                continue
            dst = "pydicom_" + ("dicomdir_" if sub.endswith("dicomdirtests") and fn.startswith("DICOMDIR") else "") \
                + fn.replace("DICOMDIR-", "").replace("DICOMDIR", "plain")
            if not dst.endswith(".dcm"):
                dst += ".dcm"
            shutil.copyfile(p, os.path.join(out, dst))
    for fn in ("waveform_ecg.dcm", "SC_rgb_jpeg_dcmd.dcm", "J2K_pixelrep_mismatch.dcm"):
        p = os.path.join(base, "test_files", fn)
        if os.path.exists(p):
            dst = os.path.join(out, "pydicom_" + fn[:-4] + "_short.dcm")
            shortened(p, dst)
            assert os.path.getsize(dst) <= MAX_SEED, dst


if __name__ == "__main__":
    main()
