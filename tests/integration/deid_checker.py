#!/usr/bin/python3
"""De-identification checker, written against PS3.15 Table E.1-1 itself
(../shared/standard/deid_profile_e1_1.tsv) and Table E.3.10-1, not against
our C code.

`dicomvault deid` runs over copies of pydicom's test file folders
(test_files, charset_files) plus a few generated files (one patient in two
studies with a cross-reference, another patient, a burned-in annotation),
with three profiles: `basic`; `basic` with every option but Retain UIDs and
full dates; and `basic` with the retaining options (UIDs, full dates, device,
institution, patient characteristics).
For each output file, every attribute of the input (recursively through
sequences) must obey its action in the table:
  X absent; Z present, empty or a dummy; D present, non-empty, not the
  original; U replaced by a valid 2.25 UID, the same replacement for the same
  UID in every file of the run; K unchanged; C cleaned (dates shifted by one
  offset per patient, text without the patient's name or ID, sequences
  cleaned inside); composite codes any of their allowed outcomes;
  private attributes absent unless retained as safe; overlays absent.
The output must carry the attestation attributes, a Media Storage SOP
Instance UID equal to the new SOP Instance UID, and dciodvfy must report no
more errors than on the input. Files that cannot be read are reported, the
rest of the folder completes, refusals give their reason.
Prints one "ok - NAME" / "not ok - NAME" line per file and per check."""
import multiprocessing
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import warnings

import pydicom
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

try:
    from pydicom._uid_dict import UID_dictionary
except ImportError:  # pragma: no cover
    UID_dictionary = {}

warnings.simplefilter("ignore")
DV = os.path.abspath(sys.argv[1])
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STD = next((d for d in (os.path.join(ROOT, "..", "shared", "standard"), os.path.join(ROOT, "shared", "standard"))
            if os.path.isdir(d)), None)
PYD = "/usr/lib/python3/dist-packages/pydicom/data"
SOURCES = ["test_files", "charset_files"]
OPTS = ["retain-safe-private", "retain-uids", "retain-device-identity", "retain-institution-identity",
        "retain-patient-characteristics", "retain-long-full-dates", "retain-long-modified-dates",
        "clean-descriptors", "clean-structured-content", "clean-graphics"]
PROFILES = [
    ("basic", []),
    ("options", [o for o in OPTS if o not in ("retain-long-full-dates", "retain-uids")]),
    ("retain", ["retain-uids", "retain-long-full-dates", "retain-device-identity", "retain-institution-identity",
                "retain-patient-characteristics"]),
]
DUMMIES = {"ANONYMIZED", "19000101", "19000101000000", "000000", "0", "000Y", "99DVDEID",
           "https://anonymized.invalid/"}
UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
ADDED = {0x00120062, 0x00120063, 0x00120064, 0x00280303}
CODES = {"retain-safe-private": "113111", "retain-uids": "113110", "retain-device-identity": "113109",
         "retain-institution-identity": "113112", "retain-patient-characteristics": "113108",
         "retain-long-full-dates": "113106", "retain-long-modified-dates": "113107",
         "clean-descriptors": "113105", "clean-structured-content": "113104", "clean-graphics": "113103"}


# ---- the standard's tables ----

def load_tables():
    exact, masked = {}, []
    with open(os.path.join(STD, "deid_profile_e1_1.tsv"), encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        assert header[5:15] == [o.replace("-", "_").replace("long_", "longitudinal_") for o in OPTS], header
        for line in f:
            c = line.rstrip("\n").split("\t")
            if c[0].startswith("(gggg"):
                continue
            t = (c[0][1:5] + c[0][6:10]).upper()
            row = (c[4], c[5:15])
            if "X" in t:
                mask = int("".join("0" if ch == "X" else "F" for ch in t), 16)
                masked.append((mask, int(t.replace("X", "0"), 16), row))
            else:
                exact[int(t, 16)] = row
    safe = set()
    with open(os.path.join(STD, "safe_private_e3_10_1.tsv"), encoding="utf-8") as f:
        f.readline()
        for line in f:
            c = line.rstrip("\n").split("\t")
            safe.add((int(c[0][1:5], 16), int(c[0][8:10], 16), c[1]))
    return exact, masked, safe


EXACT, MASKED, SAFE = load_tables()


def table_action(tag, opts):
    """The action of a tag under the options (None: not in E.1-1). An
    option's C wins over an option's K, either over the basic action; under
    Retain UIDs every U is K (our documented reading, deid.md)."""
    row = EXACT.get(tag)
    if row is None:
        for mask, val, r in MASKED:
            if tag & mask == val:
                row = r
                break
    if row is None:
        return None
    basic, cols = row
    sel = [cols[OPTS.index(o)] for o in opts]
    a = "C" if "C" in sel else "K" if "K" in sel else basic
    if a == "U" and "retain-uids" in opts:
        a = "K"
    return a


def instance_uid_keyword(tag):
    kw = keyword_for_tag(tag) or ""
    return ("InstanceUID" in kw or kw.endswith(("FrameOfReferenceUID", "EventUID", "AssertionUID", "FiducialUID",
                                                "ModelGroupUID", "InputSetUID", "PrivateRecordUID"))
            or "UIDOfConcatenationSource" in kw)


# ---- checking one file ----

def values(elem):
    v = elem.value
    if v is None:
        return []
    if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
        return [str(x) for x in v]
    if isinstance(v, bytes):
        return [v]
    return [str(v)]


def empty(elem):
    v = elem.value
    if isinstance(v, (Sequence, list)) and not isinstance(v, (str, bytes)):
        return len(v) == 0
    return v is None or v == "" or v == b"" or (hasattr(v, "__len__") and len(v) == 0)


def days(d):
    import datetime
    try:
        return datetime.date(int(d[0:4]), int(d[4:6]), int(d[6:8])).toordinal()
    except (ValueError, IndexError):
        return None


class Ctx:
    def __init__(self, opts, top):
        self.opts = opts
        self.problems = []
        self.uids = []          # (original, replacement)
        self.shifts = set()     # date offsets in days
        self.words = []
        pn = str(top.get("PatientName", "") or "")
        for w in re.split(r"[\^= ,.]+", pn):
            if len(w) >= 3:
                self.words.append(w.lower())
        pid = str(top.get("PatientID", "") or "")
        if len(pid) >= 3:
            self.words.append(pid.lower())

    def bad(self, path, msg):
        if len(self.problems) < 8:
            self.problems.append(f"{path}: {msg}")


def check_uid_values(ctx, path, ein, eout):
    vin, vout = values(ein), values(eout)
    if len(vin) != len(vout):
        ctx.bad(path, f"UID count {len(vin)} became {len(vout)}")
        return
    for a, b in zip(vin, vout):
        a, b = a.strip("\0 "), b.strip("\0 ")
        if a == "":
            if b != "":
                ctx.bad(path, "empty UID got a value")
        elif a in UID_dictionary:
            if a != b:
                ctx.bad(path, f"well-known UID {a} replaced")
        elif not (len(b) <= 64 and UID_RE.match(b) and b.startswith("2.25.")):
            ctx.bad(path, f"invalid replacement UID {b!r}")
        elif a == b:
            ctx.bad(path, "UID not replaced")
        else:
            ctx.uids.append((a, b))


def check_dates(ctx, path, ein, eout):
    dt = ein.VR == "DT"
    for a, b in zip(values(ein), values(eout) or [""] * len(values(ein))):
        a, b = a.strip(), b.strip()
        if len(a) >= 8 and a[:8].isdigit() and days(a[:8]) is not None:
            if len(b) < 8 or days(b[:8]) is None:
                ctx.bad(path, f"date {a} not shifted but {b!r}")
                continue
            ctx.shifts.add(days(b[:8]) - days(a[:8]))
            if dt and a[8:] != b[8:]:
                ctx.bad(path, f"time part of {a} changed to {b}")
    if len(values(eout)) > len(values(ein)):
        ctx.bad(path, "more date values than in the input")


def check_clean_text(ctx, path, ein, eout):
    for v in values(eout):
        s = v.decode("latin-1") if isinstance(v, bytes) else v
        low = s.lower()
        for w in ctx.words:
            if re.search(r"(?<![0-9a-z])" + re.escape(w) + r"(?![0-9a-z])", low):
                ctx.bad(path, f"cleaned text still holds an identifying word ({len(w)} chars)")
        if re.search(r"[0-9]{8}", s):
            ctx.bad(path, "cleaned text still holds an 8-digit number")


def creator_of(ds, tag):
    block = tag.element >> 8
    ct = (tag.group << 16) | block
    if block < 0x10 or ct not in ds:
        return None
    v = ds[ct].value
    return (v.decode("latin-1") if isinstance(v, bytes) else str(v)).rstrip(" \0")


def check_ds(ctx, din, dout, path, nested, relaxed):
    opts = ctx.opts
    for ein in din:
        tag = ein.tag
        if tag.element == 0 or tag == 0x00080001 or (not nested and int(tag) in ADDED):
            continue
        p = f"{path}({tag.group:04X},{tag.element:04X})"
        eout = dout[tag] if tag in dout else None
        if tag.is_private:
            if 0x10 <= tag.element <= 0xFF:
                continue
            cr = creator_of(din, tag)
            safe = "retain-safe-private" in opts and cr is not None and (tag.group, tag.element & 0xFF, cr) in SAFE
            if not safe:
                if eout is not None:
                    ctx.bad(p, "private attribute not removed")
            elif eout is None:
                ctx.bad(p, "safe private attribute removed although retained")
            elif ein.VR != "SQ" and ein.value != eout.value:
                ctx.bad(p, "safe private attribute changed")
            continue
        if 0x6000 <= tag.group <= 0x60FF:
            if eout is not None:
                ctx.bad(p, "overlay attribute not removed")
            continue
        a = table_action(int(tag), opts)
        is_sq = ein.VR == "SQ"
        if a is None:
            if is_sq and eout is not None and isinstance(eout.value, (Sequence, list)):
                recurse(ctx, ein, eout, p, relaxed)
            elif eout is None:
                ctx.bad(p, "attribute not in E.1-1 was removed")
            elif relaxed:
                pass
            elif ein.VR == "UI" and instance_uid_keyword(int(tag)) and ein.value != eout.value:
                check_uid_values(ctx, p, ein, eout)
            elif ein.value != eout.value:
                ctx.bad(p, "attribute not in E.1-1 was changed")
            continue
        if a == "X":
            if eout is not None:
                ctx.bad(p, "X: not removed")
        elif a == "K":
            if eout is None:
                ctx.bad(p, "K: removed")
            elif is_sq:
                recurse(ctx, ein, eout, p, relaxed)
            elif ein.value != eout.value:
                ctx.bad(p, "K: changed")
        elif a == "Z":
            if eout is None:
                ctx.bad(p, "Z: removed")
            elif not empty(eout) and not empty(ein) and eout.value == ein.value:
                ctx.bad(p, "Z: neither empty nor a dummy")
        elif a == "D" or a == "Z/D":
            if eout is None:
                ctx.bad(p, f"{a}: removed")
            elif tag == 0x00100020:
                if not re.match(r"^DV[0-9A-F]{20}$", str(eout.value)):
                    ctx.bad(p, "Patient ID is not a pseudonym")
            elif is_sq:
                recurse(ctx, ein, eout, p, True)
            elif a == "D" and empty(eout):
                ctx.bad(p, "D: empty")
            elif not empty(ein) and eout.value == ein.value and str(ein.value) not in DUMMIES:
                ctx.bad(p, f"{a}: original value kept")
        elif a == "U":
            if eout is None:
                ctx.bad(p, "U: removed")
            elif is_sq:
                recurse(ctx, ein, eout, p, relaxed)
            elif ein.VR == "UI":
                check_uid_values(ctx, p, ein, eout)
        elif a == "C":
            if is_sq:
                if eout is not None:
                    recurse(ctx, ein, eout, p, True)
            elif ein.VR in ("DA", "DT"):
                if eout is None:
                    ctx.bad(p, "C: date removed")
                else:
                    check_dates(ctx, p, ein, eout)
            elif ein.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
                pass  # binary: removed or kept are both clean here
            elif eout is None:
                ctx.bad(p, "C: removed")
            elif ein.VR in ("TM", "DS", "IS", "US", "SS", "UL", "SL", "FL", "FD"):
                if eout.value != ein.value:
                    ctx.bad(p, "C: time or number changed")
            else:
                check_clean_text(ctx, p, ein, eout)
        elif a == "X/Z":
            if eout is not None and not empty(eout):
                ctx.bad(p, "X/Z: neither removed nor empty")
        elif a in ("X/D", "X/Z/D"):
            if eout is None:
                pass
            elif is_sq:
                recurse(ctx, ein, eout, p, True)
            elif a == "X/D" and empty(eout):
                ctx.bad(p, "X/D: empty")
            elif not empty(eout) and not empty(ein) and eout.value == ein.value and str(ein.value) not in DUMMIES:
                ctx.bad(p, f"{a}: original value kept")
        elif a == "X/Z/U*":
            if eout is not None and not empty(eout):
                recurse(ctx, ein, eout, p, relaxed)
        else:
            ctx.bad(p, f"unknown action {a}")
    for eout in dout:
        tag = eout.tag
        if tag in din or (not nested and int(tag) in ADDED):
            continue
        if tag.element == 0:
            ctx.bad(f"{path}({tag.group:04X},{tag.element:04X})", "group length in output")
            continue
        ctx.bad(f"{path}({tag.group:04X},{tag.element:04X})", "attribute added")


def recurse(ctx, ein, eout, path, relaxed):
    if not isinstance(eout.value, (Sequence, list)):  # pydicom gives [] for an empty one
        ctx.bad(path, "sequence is no longer a sequence")
        return
    if len(eout.value) not in (0, len(ein.value)):
        ctx.bad(path, f"{len(ein.value)} items became {len(eout.value)}")
        return
    for i, (a, b) in enumerate(zip(ein.value, eout.value)):
        check_ds(ctx, a, b, f"{path}[{i}]", True, relaxed)


def dciodvfy_errors(path):
    p = subprocess.run(["dciodvfy", path], capture_output=True, text=True, errors="replace")
    return sum(1 for line in (p.stdout + p.stderr).splitlines() if line.startswith("Error"))


def check_file(args):
    """Returns (report lines, UID pairs, (patient id in, out, date offset))."""
    name, pin, pout, opts, dcio = args
    try:
        din = pydicom.dcmread(pin, force=True)
        dout = pydicom.dcmread(pout)
    except Exception as ex:
        return [f"not ok - {name}\n#   cannot read: {type(ex).__name__}: {ex}"], [], None
    ctx = Ctx(opts, din)
    try:
        check_ds(ctx, din, dout, "", False, False)
    except Exception as ex:
        ctx.bad("?", f"checker error {type(ex).__name__}: {ex}")
    if str(dout.get("PatientIdentityRemoved", "")) != "YES":
        ctx.bad("(0012,0062)", "Patient Identity Removed is not YES")
    if "DeidentificationMethod" not in dout:
        ctx.bad("(0012,0063)", "no De-identification Method")
    codes = {str(i.get("CodeValue", "")) for i in dout.get("DeidentificationMethodCodeSequence", [])}
    for c in ["113100"] + [CODES[o] for o in opts]:
        if c not in codes:
            ctx.bad("(0012,0064)", f"code {c} missing")
    if "SOPInstanceUID" in dout and dout.file_meta.get("MediaStorageSOPInstanceUID") != dout.SOPInstanceUID:
        ctx.bad("(0002,0003)", "Media Storage SOP Instance UID is not the new SOP Instance UID")
    if "SOPInstanceUID" in din and "SOPInstanceUID" in dout:
        ctx.uids.append((str(din.SOPInstanceUID), str(dout.SOPInstanceUID)))
    if len(ctx.shifts) > 1:
        ctx.bad("dates", f"several offsets in one file: {sorted(ctx.shifts)}")
    for s in ctx.shifts:
        if not -3652 <= s <= -365:
            ctx.bad("dates", f"offset {s} days out of range")
    if dcio:
        ea, eb = dciodvfy_errors(pin), dciodvfy_errors(pout)
        if eb > ea:
            ctx.bad("dciodvfy", f"{eb} errors in the output, {ea} in the input")
    lines = [f"ok - {name}"] if not ctx.problems else [f"not ok - {name}"] + [f"#   {p}" for p in ctx.problems]
    pat = (str(din.get("PatientID", "")), str(dout.get("PatientID", "")), next(iter(ctx.shifts), None),
           str(din.get("StudyInstanceUID", "")), str(dout.get("StudyInstanceUID", "")))
    return lines, ctx.uids, pat


# ---- generated inputs ----

def make_generated(gdir):
    os.makedirs(gdir)
    base = pydicom.dcmread(os.path.join(PYD, "test_files", "CT_small.dcm"))
    sop_a = "1.2.826.0.1.3680043.8.498.1001"

    def variant(fname, pid, pname, study, series, sop, date, ref=None, burned=None):
        ds = base.copy()
        ds.file_meta = base.file_meta.copy()
        ds.PatientID = pid
        ds.PatientName = pname
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = sop
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.StudyDate = date
        ds.SeriesDate = date
        ds.ContentDate = date
        ds.ImageComments = f"Seen {pname.replace('^', ' ')} on {date}"
        ds.StudyDescription = f"Follow-up of {pname.split('^')[0]} {pid}"
        if ref is not None:
            item = Dataset()
            src = Dataset()
            src.ReferencedSOPClassUID = ds.SOPClassUID
            src.ReferencedSOPInstanceUID = ref
            item.SourceImageSequence = Sequence([src])
            ds.DerivationImageSequence = Sequence([item])
            ref_item = Dataset()
            ref_item.ReferencedSOPClassUID = ds.SOPClassUID
            ref_item.ReferencedSOPInstanceUID = ref
            ds.ReferencedImageSequence = Sequence([ref_item])
        if burned is not None:
            ds.BurnedInAnnotation = burned
        ds.save_as(os.path.join(gdir, fname), write_like_original=False)

    variant("long_a.dcm", "PAT-LONG-1", "Longitudinal^Test", "1.2.826.0.1.3680043.8.498.10", "1.2.826.0.1.3680043.8.498.11",
            sop_a, "20200101")
    variant("long_b.dcm", "PAT-LONG-1", "Longitudinal^Test", "1.2.826.0.1.3680043.8.498.20", "1.2.826.0.1.3680043.8.498.21",
            "1.2.826.0.1.3680043.8.498.2001", "20210615", ref=sop_a)
    variant("other_patient.dcm", "PAT-OTHER-2", "Other^Person", "1.2.826.0.1.3680043.8.498.30",
            "1.2.826.0.1.3680043.8.498.31", "1.2.826.0.1.3680043.8.498.3001", "20190310")
    variant("burned_in.dcm", "PAT-BURN-3", "Burned^In", "1.2.826.0.1.3680043.8.498.40",
            "1.2.826.0.1.3680043.8.498.41", "1.2.826.0.1.3680043.8.498.4001", "20190311", burned="YES")


# ---- driver ----

def dv(args, **kw):
    return subprocess.run([DV] + args, capture_output=True, text=True, errors="replace", **kw)


def readable(path):
    try:
        pydicom.dcmread(path)
    except Exception:
        return False
    return dv(["dump", path]).returncode == 0


def run_profile(label, opts, tmp, indir, key, pool, out_lines):
    out = os.path.join(tmp, "out-" + label)
    profile = ",".join(["basic"] + opts)
    p = dv(["deid", "--quiet", "--profile", profile, "--key-file", key, indir, out])
    err = p.stderr
    ok = p.returncode == 1 and "de-identified" in p.stdout
    out_lines.append(("ok" if ok else "not ok") + f" - {label}: exit 1 (unreadable and refused files) and a summary")
    if not ok:
        out_lines.append(f"#   exit {p.returncode}; stdout {p.stdout[:300]!r}; stderr {err[-300:]!r}")
    jobs, missing = [], []
    for root, _, names in os.walk(indir):
        for n in sorted(names):
            pin = os.path.join(root, n)
            rel = os.path.relpath(pin, indir)
            pout = os.path.join(out, rel)
            if os.path.exists(pout):
                jobs.append((f"{label} {rel}", pin, pout, opts, True))
            elif f"{pin}: refused:" in err or f"{pin}: failed:" in err:
                if readable(pin) and f"{pin}: refused:" not in err:
                    missing.append(f"not ok - {label} {rel}\n#   readable DICOM but failed: "
                                   + next(l for l in err.splitlines() if pin + ":" in l)[:200])
                else:
                    reason = next(l for l in err.splitlines() if pin + ":" in l)
                    out_lines.append(f"# {label} {rel}: {reason.split(': ', 2)[-1][:120]}")
            else:
                missing.append(f"not ok - {label} {rel}\n#   no output and no error message")
    out_lines += missing
    uidmap, rev, pats = {}, {}, {}
    conflicts = []
    for lines, pairs, pat in pool.imap(check_file, jobs):
        out_lines += lines
        for a, b in pairs:
            if uidmap.setdefault(a, b) != b:
                conflicts.append(f"{a} -> {uidmap[a]} and {b}")
            if rev.setdefault(b, a) != a:
                conflicts.append(f"{rev[b]} and {a} -> {b}")
        if pat is not None:
            pats[pat[0]] = pats.get(pat[0], []) + [pat]
    out_lines.append(("ok" if not conflicts else "not ok") + f" - {label}: every UID has one replacement across "
                     f"{len(jobs)} files ({len(uidmap)} UIDs)")
    out_lines += [f"#   {c}" for c in conflicts[:5]]
    # the generated longitudinal set
    g = lambda n: pydicom.dcmread(os.path.join(out, "generated", n))
    try:
        a, b, o = g("long_a.dcm"), g("long_b.dcm"), g("other_patient.dcm")
        same = a.PatientID == b.PatientID and a.PatientID != o.PatientID and a.PatientID != "PAT-LONG-1"
        out_lines.append(("ok" if same else "not ok") + f" - {label}: one patient in two studies has one pseudonym")
        ref = b.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        out_lines.append(("ok" if ref == a.SOPInstanceUID else "not ok")
                         + f" - {label}: a nested reference maps to the referenced instance's new UID")
        out_lines.append(("ok" if a.StudyInstanceUID != b.StudyInstanceUID else "not ok")
                         + f" - {label}: two studies keep two Study Instance UIDs")
        offs = [pp[2] for pp in pats.get("PAT-LONG-1", [])]
        if "retain-long-modified-dates" in opts:
            good = len(offs) == 2 and offs[0] is not None and offs[0] == offs[1]
            out_lines.append(("ok" if good else "not ok") + f" - {label}: one date offset for the patient ({offs})")
            shifted = str(a.StudyDate) != "20200101" and len(str(a.StudyDate)) == 8
            out_lines.append(("ok" if shifted else "not ok") + f" - {label}: Study Date shifted")
        elif "retain-long-full-dates" in opts:
            out_lines.append(("ok" if str(a.get("StudyDate", "")) == "20200101" else "not ok")
                             + f" - {label}: Study Date kept with full dates")
        else:
            out_lines.append(("ok" if str(a.get("StudyDate", "")) == "" else "not ok")
                             + f" - {label}: Study Date emptied without a date option")
        burned = not os.path.exists(os.path.join(out, "generated", "burned_in.dcm")) and \
            "burned_in.dcm: refused: burned-in annotation" in err
        out_lines.append(("ok" if burned else "not ok") + f" - {label}: burned-in annotation refused with its reason")
    except Exception as ex:
        out_lines.append(f"not ok - {label}: generated files\n#   {type(ex).__name__}: {ex}")
    return out


def cli_checks(tmp, indir, key, lines):
    one = os.path.join(indir, "test_files", "CT_small.dcm")
    r = dv(["deid", "--profile", "basic,retain-long-full-dates,retain-long-modified-dates", one, os.path.join(tmp, "x.dcm")])
    lines.append(("ok" if r.returncode == 2 else "not ok") + " - cli: both longitudinal options are a usage error")
    r = dv(["deid", "--profile", "basic,no-such-option", one, os.path.join(tmp, "x.dcm")])
    lines.append(("ok" if r.returncode == 2 else "not ok") + " - cli: an unknown option is a usage error")
    r = dv(["deid", one, os.path.join(tmp, "x.dcm")])
    lines.append(("ok" if r.returncode == 2 else "not ok") + " - cli: --profile is required")
    loose = os.path.join(tmp, "loose.key")
    with open(loose, "wb") as f:
        f.write(b"k" * 32)
    os.chmod(loose, 0o644)
    r = dv(["deid", "--profile", "basic", "--key-file", loose, one, os.path.join(tmp, "x.dcm")])
    lines.append(("ok" if r.returncode == 1 and not os.path.exists(os.path.join(tmp, "x.dcm")) else "not ok")
                 + " - cli: a group/other-readable key file is refused")
    short = os.path.join(tmp, "short.key")
    with open(short, "wb") as f:
        f.write(b"short")
    os.chmod(short, 0o600)
    r = dv(["deid", "--profile", "basic", "--key-file", short, one, os.path.join(tmp, "x.dcm")])
    lines.append(("ok" if r.returncode == 1 else "not ok") + " - cli: a key shorter than 16 bytes is refused")
    key2 = os.path.join(tmp, "other.key")
    with open(key2, "wb") as f:
        f.write(os.urandom(32))
    os.chmod(key2, 0o600)
    outs = []
    for k in (key, key, key2, None):
        dst = os.path.join(tmp, f"one{len(outs)}.dcm")
        r = dv(["deid", "--profile", "basic"] + (["--key-file", k] if k else []) + [one, dst])
        outs.append(pydicom.dcmread(dst) if r.returncode == 0 else None)
        if k is None:
            lines.append(("ok" if "not be reproducible" in r.stderr else "not ok")
                         + " - cli: without --key-file a warning says pseudonyms are not reproducible")
    if None in outs:
        lines.append("not ok - cli: single-file runs")
        return
    lines.append(("ok" if outs[0].PatientID == outs[1].PatientID and outs[0].SOPInstanceUID == outs[1].SOPInstanceUID
                  else "not ok") + " - cli: same key, same pseudonym and UIDs")
    lines.append(("ok" if outs[0].PatientID != outs[2].PatientID and outs[0].SOPInstanceUID != outs[2].SOPInstanceUID
                  else "not ok") + " - cli: another key, unrelated pseudonym and UIDs")
    d = os.path.join(tmp, "outdir")
    os.makedirs(d)
    r = dv(["deid", "--profile", "basic", "--key-file", key, one, d])
    lines.append(("ok" if r.returncode == 0 and os.path.exists(os.path.join(d, "CT_small.dcm")) else "not ok")
                 + " - cli: a file into a folder keeps its name")
    r = dv(["deid", "--profile", "basic", "--key-file", key, indir, os.path.join(indir, "inside")])
    lines.append(("ok" if r.returncode == 2 else "not ok") + " - cli: OUT inside IN is a usage error")


def main():
    if STD is None:
        print("not ok - deid_checker: ../shared/standard not found")
        return 1
    tmp = tempfile.mkdtemp(prefix="deid_checker.")
    lines = []
    try:
        indir = os.path.join(tmp, "in")
        os.makedirs(indir)
        for s in SOURCES:
            shutil.copytree(os.path.join(PYD, s), os.path.join(indir, s))
        make_generated(os.path.join(indir, "generated"))
        key = os.path.join(tmp, "project.key")
        with open(key, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(key, stat.S_IRUSR | stat.S_IWUSR)
        with multiprocessing.Pool(2) as pool:
            for label, opts in PROFILES:
                run_profile(label, opts, tmp, indir, key, pool, lines)
        cli_checks(tmp, indir, key, lines)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
