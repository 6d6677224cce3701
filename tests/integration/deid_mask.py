#!/usr/bin/python3
"""Masking of burned-in annotation by `dicomvault deid --masks F`.

Images made here with pydicom, flagged Burned In Annotation = YES or empty (or
unflagged ultrasound under --refuse-unflagged), are de-identified with a rules
file of [deid "mask NAME"] sections. Checked with pydicom/numpy, not with our
code: every pixel inside a rule's rectangles, in every frame and sample, has
the photometric interpretation's darkest value; every pixel outside is
unchanged; Burned In Annotation becomes NO; De-identification Method names
the rule; a vendor's rule fits its Manufacturer in any character set or
length. Images no rule fits, compressed or float pixel data, and bad rules
files are refused with their reason, and the rest of a folder still
completes.
Prints one "ok - NAME" / "not ok - NAME" line per check."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ExplicitVRBigEndian, RLELossless, generate_uid

warnings.simplefilter("ignore")
DV = os.path.abspath(sys.argv[1])
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok - {name}")
    else:
        failed += 1
        print(f"not ok - {name}" + (f": {detail}" if detail else ""))


def image(path, modality="US", manufacturer="ACME Medical", model="Sono 5", rows=48, cols=64, frames=1,
          spp=1, bits=8, signed=False, pi=None, planar=0, burned="YES", ts=ExplicitVRLittleEndian):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1" if frames > 1 else "1.2.840.10008.5.1.4.1.1.6.1"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ts
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Masked^Patient"
    ds.PatientID = "MASK-1"
    ds.Modality = modality
    ds.Manufacturer = manufacturer
    ds.ManufacturerModelName = model
    if burned is not None:
        ds.BurnedInAnnotation = burned
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = spp
    ds.PhotometricInterpretation = pi or ("MONOCHROME2" if spp == 1 else "RGB")
    if spp == 3:
        ds.PlanarConfiguration = planar
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if signed else 0
    if frames > 1:
        ds.NumberOfFrames = frames
    rng = np.random.default_rng(len(path))
    dt = {8: np.uint8, 16: np.uint16}[bits]
    lo = 1 if not signed else 1
    arr = rng.integers(lo, 100, size=frames * rows * cols * spp).astype(dt)
    ds.PixelData = arr.tobytes() if ts != ExplicitVRBigEndian else arr.byteswap().tobytes()
    ds.is_little_endian = ts != ExplicitVRBigEndian
    ds.is_implicit_VR = False
    if ts == RLELossless:
        ds.PixelData = arr.tobytes()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.compress(RLELossless)
    ds.save_as(path, write_like_original=False)
    return ds


def pixels(ds):
    """(frames, rows, cols, samples) array of raw stored values."""
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    spp = ds.SamplesPerPixel
    dt = np.dtype({8: "u1", 16: "u2"}[ds.BitsAllocated])
    dt = dt.newbyteorder("<" if ds.is_little_endian or ds.file_meta.TransferSyntaxUID != ExplicitVRBigEndian else ">")
    if ds.file_meta.TransferSyntaxUID == ExplicitVRBigEndian:
        dt = dt.newbyteorder(">")
    a = np.frombuffer(ds.PixelData, dtype=dt)[: frames * ds.Rows * ds.Columns * spp]
    if spp == 3 and getattr(ds, "PlanarConfiguration", 0) == 1:
        return a.reshape(frames, spp, ds.Rows, ds.Columns).transpose(0, 2, 3, 1)
    return a.reshape(frames, ds.Rows, ds.Columns, spp)


def run(args):
    p = subprocess.run([DV, "deid"] + args, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


T = tempfile.mkdtemp(prefix="dv_mask.")
try:
    key = os.path.join(T, "key")
    with open(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
        f.write(os.urandom(32))
    rules = os.path.join(T, "masks.conf")
    with open(rules, "w") as f:
        f.write('[deid "mask sono"]\nmodality = US\nmanufacturer = acme*\nmodel = Sono ?\n'
                'rect = 0,0,64,6; 50,40,14,8\n'
                '[deid "mask xa"]\nmodality = XA\nrows = 32\ncolumns = 32\nrect = 2,3,10,4\n'
                '[deid "mask ot"]\nmodality = OT\nrect = 1,1,5,5\n')
    inp = os.path.join(T, "in")
    os.mkdir(inp)
    cases = {
        "us8": dict(),
        "us_empty": dict(burned=""),   # Burned In Annotation empty: unknown, flagged as YES
        "us16be": dict(bits=16, ts=ExplicitVRBigEndian),
        "xa_frames": dict(modality="XA", rows=32, cols=32, frames=3, bits=16, manufacturer="Other", model="X"),
        "rgb_planar": dict(modality="OT", spp=3, planar=1, manufacturer="", model=""),
        "rgb_inter": dict(modality="OT", spp=3, planar=0, manufacturer="", model=""),
        "mono1": dict(modality="OT", pi="MONOCHROME1", bits=16, manufacturer="", model=""),
        "signed": dict(modality="OT", signed=True, bits=16, manufacturer="", model=""),
        "signed16be": dict(modality="OT", signed=True, bits=16, manufacturer="", model="", ts=ExplicitVRBigEndian),
        "ybr": dict(modality="OT", spp=3, pi="YBR_FULL", manufacturer="", model=""),
    }
    rects = {"US": [(0, 0, 64, 6), (50, 40, 14, 8)], "XA": [(2, 3, 10, 4)], "OT": [(1, 1, 5, 5)]}
    orig = {}
    for name, kw in cases.items():
        orig[name] = image(os.path.join(inp, name + ".dcm"), **kw)
    # refused: no rule fits (other manufacturer), compressed, XA of another size
    image(os.path.join(inp, "nofit.dcm"), manufacturer="Other Corp")
    image(os.path.join(inp, "nofit_empty.dcm"), manufacturer="Other Corp", burned="")
    image(os.path.join(inp, "xa_size.dcm"), modality="XA", rows=30, cols=32, manufacturer="O", model="X")
    image(os.path.join(inp, "rle.dcm"), ts=RLELossless)
    out = os.path.join(T, "out")
    rc, so, se = run(["--profile", "basic", "--key-file", key, "--masks", rules, "--json", "--quiet", inp, out])
    summ = json.loads(so) if so.strip().startswith("{") else {}
    check("folder run exits 1 (four refusals) and completes the rest", rc == 1 and summ.get("done") == len(cases),
          f"rc={rc} {so} {se}")
    check("summary counts the masked images", summ.get("masked") == len(cases), so)
    reasons = {os.path.basename(p["path"]): p["reason"] for p in summ.get("problems", [])}
    check("no rule fits: refused with the reason", "no masking rule fits" in reasons.get("nofit.dcm", ""), reasons)
    check("Burned In Annotation empty, no rule fits: refused with the reason",
          "no masking rule fits" in reasons.get("nofit_empty.dcm", ""), reasons)
    check("rows/columns of a rule are exact", "no masking rule fits" in reasons.get("xa_size.dcm", ""), reasons)
    check("compressed pixel data: refused, said so", "compressed" in reasons.get("rle.dcm", ""), reasons)
    for name in ("nofit", "nofit_empty", "xa_size", "rle"):
        check(f"{name}: nothing written", not os.path.exists(os.path.join(out, name + ".dcm")))
    for name, kw in cases.items():
        p = os.path.join(out, name + ".dcm")
        if not os.path.exists(p):
            check(f"{name}: written", False)
            continue
        ds = pydicom.dcmread(p)
        o = orig[name]
        a, b = pixels(o), pixels(ds)
        mod = kw.get("modality", "US")
        bits = kw.get("bits", 8)
        pi = kw.get("pi") or ("MONOCHROME2" if kw.get("spp", 1) == 1 else "RGB")
        dark = [0, 0, 0]
        if pi == "MONOCHROME1":
            dark = [(1 << bits) - 1] * 3
        elif kw.get("signed"):
            dark = [1 << (bits - 1)] * 3   # the most negative value, as raw bits
        elif pi.startswith("YBR"):
            dark = [0, 1 << (bits - 1), 1 << (bits - 1)]
        inside = np.zeros(a.shape[1:3], dtype=bool)
        for (x, y, w, h) in rects[mod]:
            inside[y:y + h, x:x + w] = True
        ok_in = all((b[f][inside][:, s] == dark[s]).all() for f in range(b.shape[0]) for s in range(b.shape[3]))
        ok_out = all((b[f][~inside] == a[f][~inside]).all() for f in range(b.shape[0]))
        check(f"{name}: every frame's rectangles hold the darkest value", ok_in)
        check(f"{name}: pixels outside the rectangles unchanged", ok_out)
        check(f"{name}: Burned In Annotation is NO", ds.get("BurnedInAnnotation") == "NO")
        meth = ds.get("DeidentificationMethod")
        meth = "\\".join(meth) if isinstance(meth, (list, pydicom.multival.MultiValue)) else str(meth)
        check(f"{name}: De-identification Method names the rule", "masked (rule" in meth, meth)
        codes = [i.CodeValue for i in ds.get("DeidentificationMethodCodeSequence", [])]
        check(f"{name}: code 113101 (Clean Pixel Data) recorded", "113101" in codes, codes)
        check(f"{name}: patient name gone", "Masked" not in str(ds.get("PatientName", "")))
    # unflagged ultrasound: masked when a rule fits and --refuse-unflagged is on
    one = os.path.join(T, "unflagged.dcm")
    o = image(one, burned=None)
    rc, so, se = run(["--profile", "basic", "--key-file", key, "--masks", rules, "--refuse-unflagged", "--quiet",
                      one, os.path.join(T, "unflagged_out.dcm")])
    check("unflagged suspect image with a fitting rule: masked, not refused",
          rc == 0 and pydicom.dcmread(os.path.join(T, "unflagged_out.dcm")).get("BurnedInAnnotation") == "NO",
          f"rc={rc} {se}")
    rc, so, se = run(["--profile", "basic", "--key-file", key, "--quiet", os.path.join(inp, "us8.dcm"),
                      os.path.join(T, "nomasks.dcm")])
    check("without --masks a flagged image is refused", rc == 1 and "no masking rule" in so + se, so + se)
    # Pixel Data longer than its frames (here a frame and a bit more than
    # Rows x Columns x Number of Frames): what no frame covers may be the text
    # and is masked whole (zeroed, the length kept), the frame by the rule
    one = os.path.join(T, "long.dcm")
    o = image(one)
    declared = len(o.PixelData)
    o.PixelData = o.PixelData + bytes([255]) * (declared + 6)
    o.save_as(one, write_like_original=False)
    rc, so, se = run(["--profile", "basic", "--key-file", key, "--masks", rules, "--quiet", one,
                      os.path.join(T, "long_out.dcm")])
    ds = pydicom.dcmread(os.path.join(T, "long_out.dcm")) if rc == 0 else None
    check("pixel data past its frames: written", ds is not None, f"rc={rc} {se}")
    if ds is not None:
        pd = ds.PixelData
        check("pixel data past its frames: the length is kept", len(pd) == len(o.PixelData), len(pd))
        check("pixel data past its frames: every byte past the frame is zero", pd[declared:] == bytes(len(pd) - declared))
        check("pixel data past its frames: the frame masked by the rule", (pixels(ds)[0][0:6, :] == 0).all() and
              (pixels(ds)[0][6:40, 0:50] == pixels(o)[0][6:40, 0:50]).all())
        check("pixel data past its frames: Burned In Annotation is NO", ds.get("BurnedInAnnotation") == "NO")
    # the flag as files may carry it: several values (YES\NO), or padded past
    # the 64 KiB the reader leaves in the file (as UN): flagged all the same
    odd = {"multi": None, "padded": None}
    for name in odd:
        odd[name] = os.path.join(T, name + ".dcm")
        o = image(odd[name], burned="YES\\NO" if name == "multi" else None)
        if name == "padded":
            o.add_new(0x00280301, "UN", b"YES" + b" " * 69997)
            o.save_as(odd[name], write_like_original=False)
        rc, so, se = run(["--profile", "basic", "--key-file", key, "--quiet", odd[name],
                          os.path.join(T, name + "_out.dcm")])
        check(f"Burned In Annotation {name} YES without --masks: refused",
              rc == 1 and "no masking rule" in so + se and not os.path.exists(os.path.join(T, name + "_out.dcm")),
              f"rc={rc} {so} {se}")
        rc, so, se = run(["--profile", "basic", "--key-file", key, "--masks", rules, "--quiet", odd[name],
                          os.path.join(T, name + "_out.dcm")])
        ds = pydicom.dcmread(os.path.join(T, name + "_out.dcm")) if rc == 0 else None
        check(f"Burned In Annotation {name} YES with a fitting rule: masked, flag NO",
              ds is not None and ds.get("BurnedInAnnotation") == "NO" and (pixels(ds)[0][0:6, :] == 0).all(),
              f"rc={rc} {se}")
    # Modality and Manufacturer as files may carry them: another character
    # set than the rules file's UTF-8, padded past the 64 KiB the reader
    # leaves in the file, several values. The specific rule must win over
    # the catch-all one (which masks elsewhere), an unflagged image of a
    # suspect modality must be caught whatever its Modality's shape
    f = os.path.join(T, "vendor.conf")
    with open(f, "w", encoding="utf-8") as fh:
        fh.write('[deid "mask draeger"]\nmodality = us\nmanufacturer = Dräger\nrect = 0,0,64,6\n'
                 '[deid "mask schoene"]\nmodality = US\nmanufacturer = sch?ne *\nrect = 0,0,64,6\n'
                 '[deid "mask any"]\nmodality = US\nrect = 50,40,14,8\n')
    vend = {  # name: (Specific Character Set, Manufacturer as bytes, Modality, Burned In Annotation, rule)
        "latin1": ("ISO_IR 100", "Dräger".encode("latin-1"), "US", "YES", "draeger"),
        "utf8": ("ISO_IR 192", "Dräger".encode("utf-8"), "US", "YES", "draeger"),
        "iso2022": ("\\ISO 2022 IR 100", b"Dr\x1b-A\xe4ger", "US", "YES", "draeger"),
        "question_mark": ("ISO_IR 100", "SCHÖNE Medizin".encode("latin-1"), "US", "YES", "schoene"),
        "padded": ("ISO_IR 192", "Dräger".encode("utf-8") + b" " * 70000, "US", "YES", "draeger"),
        "modality_padded": (None, b"Other", "US" + " " * 70000, None, "any"),
        "modality_multi": (None, b"Other", "OT\\US", None, None),
    }
    for name, (cs, manu, mod, burned, rule) in vend.items():
        one = os.path.join(T, "v_" + name + ".dcm")
        o = image(one, burned=burned)
        if cs is not None:
            o.add_new(0x00080005, "CS", cs)
        o.add_new(0x00080070, "LO" if len(manu) < 65536 else "UN", manu)
        o.add_new(0x00080060, "CS" if len(mod) < 65536 else "UN", mod.encode())
        o.save_as(one, write_like_original=False)
        outp = os.path.join(T, "v_" + name + "_out.dcm")
        rc, so, se = run(["--profile", "basic", "--key-file", key, "--masks", f, "--refuse-unflagged", "--quiet",
                          one, outp])
        ds = pydicom.dcmread(outp) if rc == 0 else None
        if rule is None:
            check(f"{name}: no rule fits all its values, refused as suspect",
                  rc == 1 and "possible burned-in" in so + se and ds is None, f"rc={rc} {so} {se}")
            continue
        meth = ds.get("DeidentificationMethod") if ds is not None else None
        meth = "\\".join(meth) if isinstance(meth, (list, pydicom.multival.MultiValue)) else str(meth)
        want = [(0, 0, 64, 6)] if rule != "any" else [(50, 40, 14, 8)]
        inside = np.zeros((48, 64), dtype=bool)
        for (x, y, w, h) in want:
            inside[y:y + h, x:x + w] = True
        ok = ds is not None and (pixels(ds)[0][inside] == 0).all() and \
            (pixels(ds)[0][~inside] == pixels(o)[0][~inside]).all()
        check(f"{name}: masked by rule {rule}, its rectangles only", ok and f"(rule {rule})" in meth,
              f"rc={rc} {meth} {se}")
    # float pixel data (Float / Double Float Pixel Data, parametric maps): a
    # rule's rectangles have no darkest value to take there, so an image
    # with such data that a rule fits is refused, never passed unmasked
    # under Burned In Annotation NO and 113101; alone, beside native Pixel
    # Data (masked, the float data would not be), or unflagged and suspect
    flt = {"float": (0x7FE00008, "OF", np.float32, 32, "YES"), "double": (0x7FE00009, "OD", np.float64, 64, "YES"),
           "float_and_native": (0x7FE00008, "OF", np.float32, 8, "YES"),
           "float_unflagged": (0x7FE00008, "OF", np.float32, 32, None)}
    for name, (tag, vr, dt, bits, burned) in flt.items():
        one = os.path.join(T, name + ".dcm")
        o = image(one, burned=burned)
        if name != "float_and_native":
            del o.PixelData
            o.BitsAllocated = bits
            for kw in ("BitsStored", "HighBit", "PixelRepresentation"):
                delattr(o, kw)
        o.add_new(tag, vr, (np.arange(48 * 64) % 97 + 1).astype(dt).tobytes())
        o.save_as(one, write_like_original=False)
        outp = os.path.join(T, name + "_out.dcm")
        extra = ["--refuse-unflagged"] if burned is None else []
        rc, so, se = run(["--profile", "basic", "--key-file", key, "--masks", rules, "--quiet"] + extra + [one, outp])
        check(f"{name} pixel data a rule fits: refused, said so, nothing written",
              rc == 1 and "float pixel data" in so + se and not os.path.exists(outp), f"rc={rc} {so} {se}")
        if burned is None:
            rc, so, se = run(["--profile", "basic", "--key-file", key, "--refuse-unflagged", "--quiet", one, outp])
            check(f"{name} pixel data, no rule, --refuse-unflagged: refused as suspect",
                  rc == 1 and "possible burned-in" in so + se and not os.path.exists(outp), f"rc={rc} {so} {se}")
    # bad rules files: clear error, exit 1, nothing written
    bad = {
        "unknown key": '[deid "mask a"]\nmodality = US\ncolour = red\nrect = 0,0,1,1\n',
        "no rect": '[deid "mask a"]\nmodality = US\n',
        "no modality": '[deid "mask a"]\nrect = 0,0,1,1\n',
        "rect with three numbers": '[deid "mask a"]\nmodality = US\nrect = 0,0,1\n',
        "rect with a zero width": '[deid "mask a"]\nmodality = US\nrect = 0,0,0,1\n',
        "rect with a negative number": '[deid "mask a"]\nmodality = US\nrect = -1,0,1,1\n',
        "rect outside the rule's size": '[deid "mask a"]\nmodality = US\nrows = 10\ncolumns = 10\nrect = 5,5,6,1\n',
        "huge number": '[deid "mask a"]\nmodality = US\nrect = 0,0,99999999999,1\n',
        "too many rects": '[deid "mask a"]\nmodality = US\nrect = ' + "; ".join(["0,0,1,1"] * 17) + "\n",
        "a trailing ;": '[deid "mask a"]\nmodality = US\nrect = 0,0,1,1;\n',
        "not INI": "\x00\x01garbage[[[\n",
        "empty name": '[deid "mask "]\nmodality = US\nrect = 0,0,1,1\n',
    }
    for what, text in bad.items():
        f = os.path.join(T, "bad.conf")
        with open(f, "w") as fh:
            fh.write(text)
        o2 = os.path.join(T, "bad_out.dcm")
        rc, so, se = run(["--profile", "basic", "--key-file", key, "--masks", f, "--quiet",
                          os.path.join(inp, "us8.dcm"), o2])
        check(f"bad rules ({what}): exit 1 with the file named, nothing written",
              rc == 1 and "bad.conf" in se and not os.path.exists(o2), f"rc={rc} {se}")
    # a pattern not in UTF-8 (a Latin-1 rules file) would fit no file's
    # Dräger, decoded to UTF-8, and leave it to a less specific rule
    f = os.path.join(T, "bad.conf")
    with open(f, "wb") as fh:
        fh.write(b'[deid "mask a"]\nmodality = US\nmanufacturer = Dr\xe4ger\nrect = 0,0,1,1\n')
    rc, so, se = run(["--profile", "basic", "--key-file", key, "--masks", f, "--quiet",
                      os.path.join(inp, "us8.dcm"), os.path.join(T, "bad_out.dcm")])
    check("bad rules (a pattern not in UTF-8): exit 1, said so, nothing written",
          rc == 1 and "bad.conf" in se and "UTF-8" in se and not os.path.exists(os.path.join(T, "bad_out.dcm")),
          f"rc={rc} {se}")
    rc, so, se = run(["--profile", "basic", "--masks", os.path.join(T, "missing.conf"), "--quiet",
                      os.path.join(inp, "us8.dcm"), os.path.join(T, "x.dcm")])
    check("missing rules file: exit 1, said so", rc == 1 and "no such file" in se, se)
    # a rect past the image of a rule without size: that image is refused
    f = os.path.join(T, "past.conf")
    with open(f, "w") as fh:
        fh.write('[deid "mask big"]\nmodality = US\nrect = 60,0,10,1\n')
    rc, so, se = run(["--profile", "basic", "--key-file", key, "--masks", f, "--quiet",
                      os.path.join(inp, "us8.dcm"), os.path.join(T, "past.dcm")])
    check("a rect outside this image: refused with the reason", rc == 1 and "outside" in so + se, so + se)
finally:
    shutil.rmtree(T, ignore_errors=True)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
