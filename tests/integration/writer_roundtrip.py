#!/usr/bin/python3
"""Writer test: every pydicom test file we can read is written back by
dv_rewrite (tests/tools) in its own transfer syntax (meta regenerated with
our implementation class UID) and, for native pixel data, in explicit VR
little endian. Each output must
  * be read by pydicom with a data set equal to the input's (group lengths
    aside: they are dropped when the VR encoding changes),
  * be read by DCMTK dcmdump with the same data set listing as the input,
  * carry a correct meta group (transfer syntax, our implementation UID),
  * give dciodvfy no more errors than the input.
dcmdump and dciodvfy run on the own-syntax output; the explicit-LE output
(written with bulk values streamed from the source) is checked by pydicom.
Prints "ok - NAME" / "not ok - NAME" lines."""
import multiprocessing
import os
import subprocess
import sys
import tempfile
import warnings

import pydicom

warnings.simplefilter("ignore")
DV = sys.argv[1]
REWRITE = os.path.join(os.path.dirname(DV), "tools", "dv_rewrite")
PYD = "/usr/lib/python3/dist-packages/pydicom/data"
DIRS = [f"{PYD}/test_files", f"{PYD}/charset_files"]
OUR_UID = "2.25.101431291716583383212813563382328598260"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def no_group_lengths(ds):
    for elem in list(ds):
        if elem.tag.element == 0:
            del ds[elem.tag]
        elif elem.VR == "SQ":
            for item in elem.value:
                no_group_lengths(item)
    return ds


def dcmdump_dataset(path):
    p = subprocess.run(["dcmdump", "-q", "+L", path], capture_output=True, text=True, errors="replace")
    if p.returncode != 0:
        return None
    lines = p.stdout.splitlines()
    if "# Dicom-Data-Set" in lines:
        lines = lines[lines.index("# Dicom-Data-Set") + 2:]  # skip "Used TransferSyntax"
    # group lengths are dropped when the VR encoding changes
    return [l for l in lines if not l.lstrip()[5:11] == ",0000)"]


def dciodvfy_errors(path):
    p = subprocess.run(["dciodvfy", path], capture_output=True, text=True, errors="replace")
    return sum(1 for l in (p.stdout + p.stderr).splitlines() if l.startswith("Error"))


def check(path, out, ts_expected, full=True):
    a = pydicom.dcmread(path, force=True)
    b = pydicom.dcmread(out)
    if str(b.file_meta.TransferSyntaxUID) != ts_expected:
        return f"meta transfer syntax {b.file_meta.TransferSyntaxUID} != {ts_expected}"
    if str(b.file_meta.ImplementationClassUID) != OUR_UID:
        return "meta implementation class UID is not ours"
    if "MediaStorageSOPInstanceUID" in b.file_meta and "SOPInstanceUID" in a:
        if b.file_meta.MediaStorageSOPInstanceUID != a.SOPInstanceUID:
            return "MediaStorageSOPInstanceUID != SOPInstanceUID"
    if a.is_little_endian != b.is_little_endian and "PixelData" in a and a["PixelData"].VR == "OW":
        # native OW pixel data changes byte order with the transfer syntax
        if (a.pixel_array != b.pixel_array).any():
            return "pixel values differ after changing byte order"
        del a["PixelData"]
        del b["PixelData"]
    if no_group_lengths(a) != no_group_lengths(b):
        for e in a:
            if e.tag not in b or b[e.tag] != e:
                return f"pydicom: {e.tag} differs after writing ({str(e)[:100]} vs {str(b.get(e.tag))[:100]})"
        return "pydicom: data sets differ"
    if not full:
        return None
    da, db = dcmdump_dataset(path), dcmdump_dataset(out)
    if db is None:
        return "dcmdump cannot read our output"
    if da is not None and ts_expected == str(a.file_meta.TransferSyntaxUID if "TransferSyntaxUID" in getattr(a, "file_meta", {}) else "") and da != db:
        for x, y in zip(da, db):
            if x != y:
                return f"dcmdump listing differs: {x[:90]!r} vs {y[:90]!r}"
        return f"dcmdump listing differs in length ({len(da)} vs {len(db)} lines)"
    ea, eb = dciodvfy_errors(path), dciodvfy_errors(out)
    if eb > ea:
        return f"dciodvfy: {eb} errors in our output, {ea} in the input"
    return None


def one(path):
    """All variants for one input file; returns the report lines."""
    lines = []
    name = os.path.relpath(path, PYD)
    tmp = tempfile.mkdtemp()
    try:
        if subprocess.run([DV, "dump", path], capture_output=True).returncode != 0:
            return [f"# {name}: skipped, we refuse it (see oracle_json)"]
        try:
            src = pydicom.dcmread(path, force=True)
            if "TransferSyntaxUID" in getattr(src, "file_meta", {}):
                ts = str(src.file_meta.TransferSyntaxUID)
            else:  # a bare data set: we write what it was encoded in
                ts = ("1.2.840.10008.1.2" if src.is_implicit_VR else
                      EXPLICIT_LE if src.is_little_endian else "1.2.840.10008.1.2.2")
        except Exception as ex:
            return [f"# {name}: skipped, pydicom cannot read it ({type(ex).__name__})"]
        # own syntax with every value in memory (full checks), explicit LE
        # with bulk values streamed from the source
        for mode, bulk in (("own", "0"), ("explicit-le", "64")):
            out = os.path.join(tmp, "out.dcm")
            args = [REWRITE, "--bulk", bulk] + (["--ts", EXPLICIT_LE] if mode == "explicit-le" else []) + [path, out]
            p = subprocess.run(args, capture_output=True, text=True)
            label = f"writer {mode} bulk={bulk} {name}"
            if p.returncode == 3 and mode == "explicit-le":
                lines.append(f"# {label}: encapsulated pixel data is not transcoded (by design)")
                continue
            if p.returncode != 0:
                lines.append(f"not ok - {label}\n#   dv_rewrite failed: {p.stderr.strip()[:200]}")
                continue
            expected = EXPLICIT_LE if mode == "explicit-le" else ts
            try:
                problem = check(path, out, expected, full=(mode == "own"))
            except Exception as ex:
                problem = f"{type(ex).__name__}: {ex}"
            lines.append(f"not ok - {label}\n#   {problem}" if problem else f"ok - {label}")
    finally:
        for n in os.listdir(tmp):
            os.unlink(os.path.join(tmp, n))
        os.rmdir(tmp)
    return lines


def main():
    files = []
    for d in DIRS:
        for root, _, names in os.walk(d):
            files += [os.path.join(root, n) for n in sorted(names) if n.endswith(".dcm")]
    with multiprocessing.Pool(2) as pool:
        for lines in pool.map(one, sorted(files)):
            for l in lines:
                print(l)
    return 0


if __name__ == "__main__":
    sys.exit(main())
