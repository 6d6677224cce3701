#!/usr/bin/python3
"""wado_rendered.py: WADO-RS rendered and thumbnail resources (PS3.18
10.4.1.1.3-4, 8.3.5.1) against the real `dicomvault serve`. The images
(pydicom's CT_small, MR_small (native, big endian, RLE), RT dose
(32-bit), RGB RLE, JPEG Baseline, YBR_FULL_422 and multi-frame samples,
and synthetic ones: MONOCHROME1 signed 12-bit with a rescale, planar RGB,
PALETTE COLOR, a series of three) are stored with
STOW-RS, fetched as PNG and JPEG and decoded with PIL; PNG pixels are
compared exactly with an oracle computed here from pydicom's pixel_array
with numpy and the PS3.3 C.11.2.1.2 formulas (linear, linear-exact,
sigmoid; the data set's window, else the frame's range), JPEG within a
tolerance. Also: window override, viewport (area average, aspect ratio, no
upscaling), thumbnails (size; a series' or study's middle instance of the
first series), frames of multi-frame images (one, a list as
multipart/related, out of range), a rendered study as multipart/related,
quality, the accept parameter and Accept header (406 for others), 406 for
unsupported transfer syntaxes and non-images, a bad-input section (400 for
bad window/viewport/quality/frames, 404 for unknown resources), 401
without credentials, 403 for a role without retrieval, 404 outside one's
grants, the audit records, and that the server keeps serving.

Usage: wado_rendered.py DV. Prints ok/not ok lines. KEEP=1 keeps the
temporary directory.
"""
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

warnings.simplefilter("ignore")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import Tap  # noqa: E402

DV = sys.argv[1] if len(sys.argv) > 1 else "build/check/dicomvault"
TF = "/usr/lib/python3/dist-packages/pydicom/data/test_files"
TAP = Tap("rendered")
check, skip = TAP.check, TAP.skip


try:
    import numpy as np
    import pydicom
    from PIL import Image
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut, convert_color_space
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    from dvserver import Vault, PASSWORD, USER_PASSWORD
except ImportError as ex:
    skip(f"python modules missing: {ex}")
if shutil.which("oathtool") is None:
    skip("no oathtool")
if not os.path.exists(f"{TF}/CT_small.dcm"):
    skip("no pydicom test files")

T = tempfile.mkdtemp(prefix="rendered.")
PFX = "1.2.826.0.1.3680043.10.1138."


def uid():
    return generate_uid(prefix=PFX)


# ---- the oracle (PS3.3 C.11) ----

def first(v, default):
    if v is None or v == "":
        return default
    if isinstance(v, pydicom.multival.MultiValue):
        v = v[0]
    return float(v)


def window_of(ds, param, stored, slope, icpt):
    """(center, width, function) as the server must choose it."""
    if param is not None:
        return param
    c, w = ds.get("WindowCenter"), ds.get("WindowWidth")
    if c is not None and w is not None:
        c, w = first(c, None), first(w, None)
        fn = str(ds.get("VOILUTFunction", "LINEAR")).strip().lower().replace("_", "-")
        if (fn == "linear" and w >= 1) or (fn != "linear" and w > 0):
            return c, w, fn
    lo, hi = float(stored.min()) * slope + icpt, float(stored.max()) * slope + icpt
    lo, hi = min(lo, hi), max(lo, hi)
    return (lo + hi) / 2, hi - lo, "linear-exact"


def voi(x, c, w, fn):
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if fn == "linear":
            y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255
            y = np.where(x <= c - 0.5 - (w - 1) / 2, 0.0, np.where(x > c - 0.5 + (w - 1) / 2, 255.0, y))
        elif fn == "linear-exact":
            y = ((x - c) / w + 0.5) * 255
            y = np.where(x <= c - w / 2, 0.0, np.where(x > c + w / 2, 255.0, y))
        else:
            y = 255 / (1 + np.exp(-4 * (x - c) / w))
    return np.clip(np.floor(y + 0.5), 0, 255).astype(np.uint8)


def oracle_grey(ds, stored, param=None):
    slope = first(ds.get("RescaleSlope"), 1.0) or 1.0
    icpt = first(ds.get("RescaleIntercept"), 0.0)
    x = stored.astype(np.float64) * slope + icpt
    c, w, fn = window_of(ds, param, stored, slope, icpt)
    y = voi(x, c, w, fn)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        y = 255 - y
    return y


def fit(w, h, vw, vh):
    if w <= vw and h <= vh:
        return w, h
    if w * vh <= h * vw:
        return max(1, (w * vh + h // 2) // h), vh
    return vw, max(1, (h * vw + w // 2) // w)


def area_average(img, vw, vh):
    """The server's downscale: each output pixel the rounded mean of the
    source pixels [x*W/w, (x+1)*W/w) x [y*H/h, (y+1)*H/h)."""
    h0, w0 = img.shape[:2]
    w, h = fit(w0, h0, vw, vh)
    if (w, h) == (w0, h0):
        return img
    a = img.astype(np.uint64)
    if a.ndim == 2:
        a = a[:, :, None]
    out = np.zeros((h, w, a.shape[2]), np.uint8)
    for oy in range(h):
        y0, y1 = oy * h0 // h, (oy + 1) * h0 // h
        for ox in range(w):
            x0, x1 = ox * w0 // w, (ox + 1) * w0 // w
            s = a[y0:y1, x0:x1].sum(axis=(0, 1))
            cnt = (y1 - y0) * (x1 - x0)
            out[oy, ox] = (s + cnt // 2) // cnt
    return out[:, :, 0] if img.ndim == 2 else out


# ---- test data ----

def copy_sample(name, study=None, series=None):
    """A pydicom sample (or the file at an absolute path) with new UIDs
    (samples share theirs)."""
    ds = pydicom.dcmread(name if os.path.isabs(name) else f"{TF}/{name}")
    ds.StudyInstanceUID = study or uid()
    ds.SeriesInstanceUID = series or uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid()
    p = os.path.join(T, "s_" + ds.SOPInstanceUID + ".dcm")
    ds.save_as(p, write_like_original=True)
    return p, pydicom.dcmread(p)


def synthetic(name, rows, cols, pixels, study=None, series=None, series_no=1, inst_no=1, **attrs):
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    fm.MediaStorageSOPInstanceUID = uid()
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    fm.ImplementationClassUID = PFX + "1"
    ds = Dataset()
    ds.file_meta = fm
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID, ds.SOPInstanceUID = fm.MediaStorageSOPClassUID, fm.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID = "RENDER^TEST", "RENDER-1"
    ds.StudyInstanceUID = study or uid()
    ds.SeriesInstanceUID = series or uid()
    ds.SeriesNumber, ds.InstanceNumber = series_no, inst_no
    ds.Modality = "OT"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    for k, v in attrs.items():
        setattr(ds, k, v)
    ds.PixelData = pixels
    p = os.path.join(T, name + ".dcm")
    ds.save_as(p, write_like_original=False)
    return p, pydicom.dcmread(p)


def path_of(ds, suffix=""):
    return (f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}{suffix}")


def decode(body):
    im = Image.open(io.BytesIO(body))
    im.load()
    return im


def parts_of(ctype, body):
    b = ctype.split("boundary=")[1].split(";")[0].strip().strip('"').encode()
    out = []
    for chunk in body.split(b"--" + b)[1:]:
        if chunk.startswith(b"--"):
            break
        head, data = chunk.split(b"\r\n\r\n", 1)
        out.append((head.decode(), data[:-2] if data.endswith(b"\r\n") else data))
    return out


def is_problem(st, h, want):
    return st == want and h.get("content-type", "").startswith("application/problem+json")


def main():
    v = Vault(DV, T)
    v.conf('\n[collection "onco"]\nmatch = InstitutionalDepartmentName=Onco*\n')
    secrets = {}
    for name, role, coll in (("tech", "technologist", "default"), ("doc", "physician", "onco")):
        added, secrets[name], err = v.add_user(name, role, "--collection", coll)
        check(f"user add {name} ({role})", added, err)
    v.serve()
    v.login()

    def get(path, headers=None, auth=True):
        return v.request("GET", path, headers=headers, auth=auth)

    # ---- store ----
    ct_p, ct = copy_sample("CT_small.dcm")
    mr_p, mr = copy_sample("MR_small.dcm")
    rle_p, rle = copy_sample("SC_rgb_rle.dcm")
    rle2_p, rle2 = copy_sample("SC_rgb_rle_2frame.dcm")
    jpg_p, jpg = copy_sample("SC_rgb_jpeg_dcmtk.dcm")
    ybr_p, ybr = copy_sample("SC_ybr_full_422_uncompressed.dcm")
    j2k_p, j2k = copy_sample("JPEG2000.dcm")
    # CT_small as JPEG Lossless (.70) by dcmcjpeg, new UIDs; pydicom's
    # 12-bit JPEG Extended, and dcmdjpeg's decoding of it for the oracle
    jll_p = os.path.join(T, "ct_jll.dcm")
    subprocess.run(["dcmcjpeg", "+e1", ct_p, jll_p], check=True)
    jll_p, jll = copy_sample(jll_p)
    ext_p, ext = copy_sample("JPGExtended.dcm")
    subprocess.run(["dcmdjpeg", ext_p, os.path.join(T, "ext_dcmtk.dcm")], check=True, stderr=subprocess.DEVNULL)
    ext_ref = pydicom.dcmread(os.path.join(T, "ext_dcmtk.dcm")).pixel_array
    sr_p, sr = copy_sample("test-SR.dcm")
    mrle_p, mrle = copy_sample("MR_small_RLE.dcm")
    mbe_p, mbe = copy_sample("MR_small_bigendian.dcm")
    dose_p, dose = copy_sample("rtdose.dcm")
    # MONOCHROME1, 12 bits stored in 16, signed, rescale 2x - 100, window in the data set
    rng = np.random.default_rng(1138)
    m1 = rng.integers(-2048, 2048, size=(40, 60), dtype=np.int16)
    m1_p, m1_ds = synthetic("mono1", 40, 60, m1.astype("<i2").tobytes(), PhotometricInterpretation="MONOCHROME1",
                            BitsAllocated=16, BitsStored=12, HighBit=11, PixelRepresentation=1,
                            RescaleSlope="2", RescaleIntercept="-100", WindowCenter="150", WindowWidth="3001")
    # no window: the frame's range; 512 x 256 for thumbnails
    wide = rng.integers(0, 256, size=(256, 512), dtype=np.uint8)
    wide_p, wide_ds = synthetic("wide", 256, 512, wide.tobytes())
    # planar RGB
    rgb = rng.integers(0, 256, size=(3, 20, 30), dtype=np.uint8)   # planes
    rgbp_p, rgbp = synthetic("rgb_planar", 20, 30, rgb.tobytes(), SamplesPerPixel=3, PhotometricInterpretation="RGB",
                             PlanarConfiguration=1)
    # PALETTE COLOR with 16-bit tables of 256 entries from 0
    lut = [rng.integers(0, 65536, size=256, dtype=np.uint16) for _ in range(3)]
    pal_px = rng.integers(0, 256, size=(16, 24), dtype=np.uint8)
    pal_p, pal = synthetic("palette", 16, 24, pal_px.tobytes(), PhotometricInterpretation="PALETTE COLOR",
                           RedPaletteColorLookupTableDescriptor=[256, 0, 16],
                           GreenPaletteColorLookupTableDescriptor=[256, 0, 16],
                           BluePaletteColorLookupTableDescriptor=[256, 0, 16],
                           RedPaletteColorLookupTableData=lut[0].astype("<u2").tobytes(),
                           GreenPaletteColorLookupTableData=lut[1].astype("<u2").tobytes(),
                           BluePaletteColorLookupTableData=lut[2].astype("<u2").tobytes())
    # a VOI LUT Sequence and no window (as CR/DX images carry): 12 bits
    # stored, a gamma-like table of 4096 12-bit entries from 0
    dx = rng.integers(0, 4096, size=(30, 40), dtype=np.uint16)
    dx_lut = np.round(4095 * (np.arange(4096) / 4095.0) ** 0.5).astype(np.uint16)
    dx_item = Dataset()
    dx_item.add_new(0x00283002, "US", [4096, 0, 12])
    dx_item.add_new(0x00283006, "OW", dx_lut.astype("<u2").tobytes())
    dx_p, dx_ds = synthetic("voilut", 30, 40, dx.astype("<u2").tobytes(), BitsAllocated=16, BitsStored=12, HighBit=11,
                            VOILUTSequence=Sequence([dx_item]))
    # a Modality LUT Sequence (instead of a rescale) and a window in its
    # output units: 256 entries of 16 bits from 0, not monotonic
    ml = rng.integers(0, 65536, size=256, dtype=np.uint16)
    ml_px = rng.integers(0, 256, size=(20, 24), dtype=np.uint8)
    ml_item = Dataset()
    ml_item.add_new(0x00283002, "US", [256, 0, 16])
    ml_item.add_new(0x00283006, "OW", ml.astype("<u2").tobytes())
    ml_item.ModalityLUTType = "US"
    ml_p, ml_ds = synthetic("modlut", 20, 24, ml_px.tobytes(), ModalityLUTSequence=Sequence([ml_item]),
                            WindowCenter="30000", WindowWidth="40000")
    # a native multi-frame, 3 frames of 16-bit
    mf = rng.integers(0, 4096, size=(3, 10, 12), dtype=np.uint16)
    mf_p, mf_ds = synthetic("multi", 10, 12, mf.astype("<u2").tobytes(), BitsAllocated=16, BitsStored=16, HighBit=15,
                            NumberOfFrames=3)
    # a study of two series: series 1 has three instances (constant 10, 20, 30), series 2 one
    st_uid, se1, se2 = uid(), uid(), uid()
    ser = []
    for i, val in enumerate((10, 20, 30)):
        ser.append(synthetic(f"ser{i}", 8, 8, bytes([val]) * 64, study=st_uid, series=se1, series_no=1,
                             inst_no=i + 1, WindowCenter="128", WindowWidth="256"))
    ser2 = synthetic("ser2_0", 8, 8, bytes([200]) * 64, study=st_uid, series=se2, series_no=2, inst_no=1,
                     WindowCenter="128", WindowWidth="256")
    files = [mrle_p, mbe_p, dose_p, ct_p, mr_p, rle_p, rle2_p, jpg_p, ybr_p, j2k_p, jll_p, ext_p, sr_p, m1_p, dx_p, ml_p, wide_p, rgbp_p,
             pal_p, mf_p,
             ser[2][0], ser[0][0], ser2[0], ser[1][0]]
    st, ans = v.stow(files)
    check("all test images stored", st == 200, (st, json.dumps(ans)[:300]))

    # ---- greyscale against the oracle ----
    def png_exact(name, ds, suffix, want, extra=""):
        st, h, body = get(path_of(ds, suffix) + ("&" if "?" in suffix else "?") + "accept=image/png" + extra)
        if st != 200:
            check(name, False, (st, body[:200]))
            return None
        im = decode(body)
        got = np.asarray(im)
        ok = h.get("content-type") == "image/png" and im.format == "PNG" and got.shape == want.shape and \
            np.array_equal(got, want)
        diff = None if got.shape != want.shape else int(np.abs(got.astype(int) - want.astype(int)).max())
        check(name, ok, (h.get("content-type"), got.shape, want.shape, "max diff", diff))
        return got

    ct_want = oracle_grey(ct, ct.pixel_array)
    png_exact("CT (signed 16-bit, rescale, no window: frame range) PNG equals the oracle", ct, "/rendered", ct_want)
    png_exact("CT as JPEG Lossless (.70, decoded since session 20) PNG equals the native CT's oracle", jll,
              "/rendered", ct_want)
    ext_want = oracle_grey(ext, ext_ref)
    st, h, body = get(path_of(ext, "/rendered?accept=image/png"))
    got = np.asarray(decode(body)) if st == 200 else None
    check("12-bit JPEG Extended (.51) PNG within 1 of the oracle of dcmdjpeg's decoding (integer inverse DCT)",
          got is not None and got.shape == ext_want.shape and
          np.abs(got.astype(int) - ext_want.astype(int)).max() <= 1, st)
    mr_want = oracle_grey(mr, mr.pixel_array)
    png_exact("MR (window 600/1600 of the data set) PNG equals the oracle", mr, "/rendered", mr_want)
    for w in ("40,400", "1000,1,linear", "1100,300,linear-exact", "-950.5,20.25"):
        c, wd, *fn = w.split(",")
        want = oracle_grey(ct, ct.pixel_array, (float(c), float(wd), fn[0] if fn else "linear"))
        png_exact(f"CT window={w} PNG equals the oracle", ct, f"/rendered?window={w}", want)
    want = oracle_grey(ct, ct.pixel_array, (40.0, 400.0, "sigmoid"))
    st, h, body = get(path_of(ct, "/rendered?window=40,400,sigmoid&accept=image/png"))
    got = np.asarray(decode(body)) if st == 200 else None
    check("CT window=40,400,sigmoid PNG within 1 of the oracle (exp may differ by an ulp)",
          got is not None and got.shape == want.shape and np.abs(got.astype(int) - want.astype(int)).max() <= 1,
          st)
    check("a window changes the image", not np.array_equal(want, ct_want))
    m1_want = oracle_grey(m1_ds, m1_ds.pixel_array)
    check("MONOCHROME1 oracle sanity: pydicom reads the signed 12-bit values", np.array_equal(m1_ds.pixel_array, m1))
    png_exact("MONOCHROME1 signed 12-bit with rescale and data-set window PNG equals the oracle (inverted)", m1_ds,
              "/rendered", m1_want)
    png_exact("no window anywhere: the frame's range PNG equals the oracle", wide_ds, "/rendered",
              oracle_grey(wide_ds, wide))
    lut_vals = apply_voi_lut(dx_ds.pixel_array, dx_ds).astype(np.float64)
    check("VOI LUT oracle sanity: pydicom maps through the table", np.array_equal(lut_vals, dx_lut[dx]))
    png_exact("VOI LUT Sequence, no window: PNG equals pydicom's apply_voi_lut scaled to 8 bits", dx_ds, "/rendered",
              np.floor(lut_vals * 255 / 4095 + 0.5).astype(np.uint8))
    png_exact("VOI LUT Sequence: a window in the request wins over it", dx_ds, "/rendered?window=2000,1000",
              oracle_grey(dx_ds, dx_ds.pixel_array, (2000.0, 1000.0, "linear")))
    ml_x = apply_modality_lut(ml_ds.pixel_array, ml_ds).astype(np.float64)
    check("Modality LUT oracle sanity: pydicom maps through the table", np.array_equal(ml_x, ml[ml_px]))
    png_exact("Modality LUT Sequence and a data-set window: PNG equals pydicom's apply_modality_lut then the window",
              ml_ds, "/rendered", voi(ml_x, 30000.0, 40000.0, "linear"))
    png_exact("Modality LUT Sequence, window in the request: PNG equals the oracle", ml_ds, "/rendered?window=1000,3000",
              voi(ml_x, 1000.0, 3000.0, "linear"))
    png_exact("MR RLE Lossless (16-bit: two segments per sample) PNG equals the oracle", mrle, "/rendered",
              oracle_grey(mrle, mrle.pixel_array))
    png_exact("MR explicit VR big endian PNG equals the oracle", mbe, "/rendered", oracle_grey(mbe, mbe.pixel_array))
    png_exact("RT dose (32-bit, frame 5 of 15) PNG equals the oracle", dose, "/frames/5/rendered",
              oracle_grey(dose, dose.pixel_array[4]))

    # JPEG (default media type) within a tolerance
    for name, ds, want in (("CT", ct, ct_want), ("MR", mr, mr_want)):
        st, h, body = get(path_of(ds, "/rendered"))
        ok = st == 200 and h.get("content-type") == "image/jpeg"
        got = np.asarray(decode(body)) if ok else None
        ok = ok and got.shape == want.shape
        mad = float(np.abs(got.astype(int) - want.astype(int)).mean()) if ok else None
        check(f"{name} as JPEG by default: the oracle within a mean difference of 3", ok and mad <= 3.0, (st, mad))
    st, h, hi = get(path_of(ct, "/rendered?quality=100"))
    st2, h2, lo = get(path_of(ct, "/rendered?quality=5"))
    check("quality=5 gives a smaller JPEG than quality=100", st == 200 and st2 == 200 and len(lo) < len(hi),
          (st, st2, len(lo), len(hi)))
    st, h, body = get(path_of(ct, "/rendered"), {"Accept": "image/png"})
    check("Accept: image/png gives PNG", st == 200 and h.get("content-type") == "image/png" and
          decode(body).format == "PNG", st)
    st, h, body = get(path_of(ct, "/rendered"), {"Accept": "application/dicom, image/png;q=0.5"})
    check("Accept with an unusable range first and image/png after: PNG", st == 200 and
          h.get("content-type") == "image/png", st)
    st, h, body = get(path_of(ct, "/rendered"), {"Accept": "image/png;q=0.5, image/jpeg"})
    check("Accept: the range of the highest q wins (image/jpeg over image/png;q=0.5)", st == 200 and
          h.get("content-type") == "image/jpeg", (st, h.get("content-type")))
    st, h, body = get(path_of(ct, "/rendered"), {"Accept": "image/jpeg;q=0.2, image/png;q=0.9"})
    check("Accept: image/png;q=0.9 over image/jpeg;q=0.2", st == 200 and h.get("content-type") == "image/png",
          (st, h.get("content-type")))
    st, h, body = get(path_of(ct, "/rendered?accept=image/jpeg"), {"Accept": "image/png"})
    check("the accept parameter overrides the Accept header", st == 200 and h.get("content-type") == "image/jpeg",
          (st, h.get("content-type")))
    st, h, body = get(path_of(ct, "/rendered"), {"Accept": "image/*"})
    check("Accept: image/* gives JPEG", st == 200 and h.get("content-type") == "image/jpeg", st)
    st, h, body = get(path_of(ct, "/rendered"), {"Accept": "image/jpeg;q=0, image/*"})
    check("Accept: image/jpeg;q=0, image/* gives PNG (the refused type is not chosen by the wildcard)",
          st == 200 and h.get("content-type") == "image/png", (st, h.get("content-type")))
    st, h, body = get(path_of(ct, "/rendered"), {"Accept": 'multipart/related; type="image/*"'})
    check("Accept: multipart/related; type=\"image/*\" gives JPEG", st == 200 and h.get("content-type") == "image/jpeg",
          (st, h.get("content-type")))
    st, h, body = get(path_of(ct, "/rendered"), {"Accept": "image/jpeg;q=0, image/png;q=0, */*"})
    check("Accept: both image types refused (q=0) beside */*: 406", st == 406, st)

    # ---- viewport ----
    got = png_exact("viewport=64,32 on 128x128: 32x32, the area average of the oracle", ct,
                    "/rendered?viewport=64,32", area_average(ct_want, 64, 32))
    png_exact("viewport=100,300 on 512x256: 100x50, aspect kept", wide_ds, "/rendered?viewport=100,300",
              area_average(oracle_grey(wide_ds, wide), 100, 300))
    png_exact("viewport=300,300 on 128x128: not upscaled", ct, "/rendered?viewport=300,300", ct_want)
    png_exact("viewport with a window: windowed, then scaled", ct, "/rendered?viewport=50,50&window=40,400",
              area_average(oracle_grey(ct, ct.pixel_array, (40.0, 400.0, "linear")), 50, 50))

    # ---- thumbnails ----
    st, h, body = get(path_of(wide_ds, "/thumbnail"))
    im = decode(body) if st == 200 else None
    check("thumbnail of 512x256 fits 128x128: 128x64 JPEG", im is not None and im.size == (128, 64) and
          h.get("content-type") == "image/jpeg", (st, im.size if im else None))
    st, h, body = get(path_of(wide_ds, "/thumbnail?viewport=32,32&accept=image/png"))
    got = np.asarray(decode(body)) if st == 200 else None
    want = area_average(oracle_grey(wide_ds, wide), 32, 32)
    check("thumbnail with viewport=32,32 as PNG: 32x16, the oracle's area average",
          got is not None and got.shape == (16, 32) and np.array_equal(got, want), (st, None if got is None else
                                                                                      got.shape))
    st, h, body = get(path_of(ct, "/thumbnail?window=0,1&accept=image/png"))
    got = np.asarray(decode(body)) if st == 200 else None
    check("a thumbnail ignores window (the default rendering)", got is not None and np.array_equal(got, ct_want), st)
    st, h, body = get(f"/dicom-web/studies/{st_uid}/series/{se1}/thumbnail?accept=image/png")
    got = np.asarray(decode(body)) if st == 200 else None
    check("series thumbnail: the middle instance (number 2, value 20)", got is not None and got.shape == (8, 8) and
          (got == 20).all(), (st, None if got is None else got[0, 0]))
    st, h, body = get(f"/dicom-web/studies/{st_uid}/thumbnail?accept=image/png")
    got = np.asarray(decode(body)) if st == 200 else None
    check("study thumbnail: the middle instance of the first series", got is not None and (got == 20).all(), st)

    # ---- colour ----
    png_exact("RGB RLE Lossless PNG equals pixel_array", rle, "/rendered", rle.pixel_array)
    png_exact("planar RGB (PlanarConfiguration 1) PNG equals the planes interleaved", rgbp, "/rendered",
              np.moveaxis(rgb, 0, -1))
    pal_want = np.stack([(lut[c][pal_px] >> 8).astype(np.uint8) for c in range(3)], axis=-1)
    png_exact("PALETTE COLOR PNG equals the tables applied", pal, "/rendered", pal_want)
    for name, ds in (("JPEG Baseline YBR_FULL", jpg), ("YBR_FULL_422 native", ybr)):
        want = convert_color_space(ds.pixel_array, "YBR_FULL", "RGB")
        st, h, body = get(path_of(ds, "/rendered?accept=image/png"))
        got = np.asarray(decode(body).convert("RGB")) if st == 200 else None
        diff = int(np.abs(got.astype(int) - want.astype(int)).max()) if got is not None and \
            got.shape == want.shape else None
        check(f"{name} to RGB: within 3 of pydicom's conversion", diff is not None and diff <= 3, (st, diff))

    # ---- frames ----
    png_exact("frame 2 of a native multi-frame equals the oracle of frame 2", mf_ds, "/frames/2/rendered",
              oracle_grey(mf_ds, mf[1]))
    png_exact("frame 3 of a native multi-frame", mf_ds, "/frames/3/rendered", oracle_grey(mf_ds, mf[2]))
    png_exact("the instance renders its first frame", mf_ds, "/rendered", oracle_grey(mf_ds, mf[0]))
    png_exact("frame 2 of a 2-frame RGB RLE image", rle2, "/frames/2/rendered", rle2.pixel_array[1])
    st, h, body = get(path_of(mf_ds, "/frames/1,3/rendered?accept=image/png"))
    parts = parts_of(h.get("content-type", ""), body) if st == 200 else []
    ok = st == 200 and h.get("content-type", "").startswith('multipart/related; type="image/png"') and len(parts) == 2
    ok = ok and np.array_equal(np.asarray(decode(parts[0][1])), oracle_grey(mf_ds, mf[0])) and \
        np.array_equal(np.asarray(decode(parts[1][1])), oracle_grey(mf_ds, mf[2]))
    check("frames/1,3/rendered: multipart/related of the two frames", ok, (st, h.get("content-type"), len(parts)))
    st, h, body = get(path_of(mf_ds, "/frames/2/thumbnail"))
    check("frame thumbnail", st == 200 and decode(body).size == (12, 10), st)
    st, h, body = get(path_of(mf_ds, "/frames/4/rendered"))
    check("frame 4 of 3: 404 problem", is_problem(st, h, 404) and b"frame 4" in body, (st, body[:200]))

    # ---- study and series rendered ----
    st, h, body = get(f"/dicom-web/studies/{st_uid}/rendered?accept=image/png")
    parts = parts_of(h.get("content-type", ""), body) if st == 200 else []
    vals = [int(np.asarray(decode(p[1]))[0, 0]) for p in parts]
    check("a rendered study: multipart/related, one PNG per instance in series/instance order",
          st == 200 and vals == [10, 20, 30, 200], (st, vals))
    st, h, body = get(f"/dicom-web/studies/{st_uid}/series/{se2}/rendered")
    parts = parts_of(h.get("content-type", ""), body) if st == 200 else []
    check("a rendered series: multipart/related of JPEG", st == 200 and len(parts) == 1 and
          h.get("content-type", "").startswith('multipart/related; type="image/jpeg"'), (st, len(parts)))

    # ---- what is not rendered ----
    st, h, body = get(path_of(j2k, "/rendered"))
    check("JPEG 2000 (lossy, signed 16-bit): rendered since session 19, a JPEG of its size",
          st == 200 and h.get("content-type", "").startswith("image/jpeg") and body[:2] == b"\xff\xd8", (st, body[:200]))
    st, h, body = get(path_of(sr, "/rendered"))
    check("a structured report (no pixel data): 406 problem", is_problem(st, h, 406) and b"pixel data" in body,
          (st, body[:200]))
    st, h, body = get(path_of(sr, "/thumbnail"))
    check("... and no thumbnail", is_problem(st, h, 406), st)
    for acc in ("application/dicom", "image/gif", "text/html", "image/png;q=0"):
        st, h, body = get(path_of(ct, "/rendered"), {"Accept": acc})
        check(f"Accept: {acc}: 406 problem", is_problem(st, h, 406), (st, body[:200]))
    st, h, body = get(path_of(ct, "/rendered?accept=image/webp"))
    check("accept=image/webp: 406 problem", is_problem(st, h, 406), st)

    # ---- bad input ----
    bad = ["window=abc", "window=40", "window=40,0", "window=40,0.5", "window=40,400,cubic", "window=nan,1",
           "window=1e999,1", "window=40,400,linear,x", "window=", "viewport=0,0", "viewport=9000,10",
           "viewport=a,b", "viewport=10", "viewport=-5,5", "viewport=10,10,0,0,5,5", "quality=0", "quality=101",
           "quality=x", "quality=", "quality=50.5", "window=" + "9" * 200 + ",1"]
    for q in bad:
        st, h, body = get(path_of(ct, "/rendered?" + q))
        check(f"bad parameter {q[:30]}: 400 problem", is_problem(st, h, 400), (st, body[:200]))
    st, h, body = get(path_of(ct, "/thumbnail?viewport=0,0"))
    check("thumbnail with a bad viewport: 400", is_problem(st, h, 400), st)
    for fr in ("0", "abc", "1,,2", "-1", "99999999999"):
        st, h, body = get(path_of(mf_ds, f"/frames/{fr}/rendered"))
        check(f"frames/{fr}/rendered: 400 problem", is_problem(st, h, 400), (st, body[:120]))
    unknown = [
        path_of(ct, "/renderedx"),
        path_of(ct, "/frames/1/unknown"),
        path_of(ct, "/frames/1/rendered/x"),
        f"/dicom-web/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/instances/{uid()}/rendered",
        f"/dicom-web/studies/{uid()}/rendered",
        f"/dicom-web/studies/{ct.StudyInstanceUID}/series/{uid()}/thumbnail",
        f"/dicom-web/studies/{mr.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/instances/{ct.SOPInstanceUID}"
        "/rendered",
    ]
    for u in unknown:
        st, h, body = get(u)
        check(f"unknown resource {u[-40:]}: 404 problem", is_problem(st, h, 404), (st, body[:200]))
    st, h, body = get("/dicom-web/studies/1.2.x/rendered")
    check("a malformed UID: 400 problem", is_problem(st, h, 400), st)

    # ---- who may ----
    st, h, body = get(path_of(ct, "/rendered"), auth=False)
    check("no credentials: 401", st == 401, st)
    st, h, body = get(path_of(ct, "/thumbnail"), {"Authorization": "Bearer not-a-token"}, auth=False)
    check("a bad token: 401", st == 401, st)
    admin = v.token
    v.login("tech", USER_PASSWORD, secrets["tech"])
    st, h, body = get(path_of(ct, "/rendered"))
    check("a technologist (store only) in the study's collection: 403 problem", is_problem(st, h, 403),
          (st, body[:200]))
    v.login("doc", USER_PASSWORD, secrets["doc"])
    st, h, body = get(path_of(ct, "/thumbnail"))
    check("a physician whose grant is another collection: 404 (as unknown)", is_problem(st, h, 404), st)
    v.token = admin

    # ---- several at once (RENDER_CONCURRENCY render, the others wait their turn) ----
    import threading
    results = []

    def worker():
        results.append(get(path_of(ct, "/rendered?accept=image/png")))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check("8 concurrent rendered requests: all 200 and equal to the oracle",
          len(results) == 8 and all(st == 200 and np.array_equal(np.asarray(decode(b)), ct_want)
                                    for st, h, b in results), [r[0] for r in results])

    # ---- audit, and still serving ----
    recs = []
    for line in open(os.path.join(v.dir, "audit", "audit.log")):
        try:
            recs.append(json.loads(line))
        except ValueError:
            pass
    mine = [x for x in recs if x.get("action") == "retrieve" and x.get("outcome") == "success" and
            mf_ds.SOPInstanceUID in json.dumps(x)]
    check("rendered requests are audited as retrieve records naming the instance", len(mine) >= 5, len(mine))
    refused = [x for x in recs if x.get("action") == "retrieve" and x.get("outcome") == "denied" and
               ct.StudyInstanceUID in json.dumps(x)]
    check("the refused requests are audited as refusals by policy (denied)", len(refused) >= 2, len(refused))
    st, h, body = get(path_of(mr, "/rendered?accept=image/png"))
    check("after all the bad requests the server still renders",
          st == 200 and np.array_equal(np.asarray(decode(body)), mr_want), st)
    err = open(os.path.join(T, "serve.err")).read()
    check("no sanitizer report in the server's log", "Sanitizer" not in err and "runtime error" not in err,
          err[-800:])
    check("no password or token in the server's log", PASSWORD not in err and admin not in err)
    v.stop()
    p = subprocess.run([DV, "audit", "verify", "--vault", v.dir], capture_output=True)
    check("audit verify passes", p.returncode == 0, p.stderr)


def cleanup():
    if os.environ.get("KEEP"):
        print(f"# kept {T}")
    else:
        shutil.rmtree(T, ignore_errors=True)


if __name__ == "__main__":
    TAP.run(main, cleanup)
