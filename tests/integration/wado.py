#!/usr/bin/python3
"""wado.py: WADO-RS beyond the single instance against the real
`dicomvault serve`: study and series retrieval (every part byte-identical
to the stored file, in series number / instance number order, pydicom and
dcmdump read each), Accept negotiation, metadata (compared with pydicom's
to_json_dict, normalised as oracle_json.py does, each BulkDataURI fetched
and its bytes compared with pydicom's value), frames of native (16 and 32
bit, big endian, YBR_FULL_422, 1-bit frames that are not byte-aligned) and
encapsulated images (RLE, JPEG with a Basic Offset Table, without one, with
an Extended Offset Table) compared with pydicom's pixel data and
generate_pixel_data_frame, bad input (frame 0, past the end, garbage,
1000000, too many, unknown study/series, 406), a tampered object cutting a
study retrieval short, the audit trail, and the server's memory while it
streams a study much larger than 64 MB; with that large answer (sent
through gathered TLS writes on a corked socket): two of them and a small
request on one kept-alive connection, a client that goes away after 10 MB,
a damaged 6th object cutting it short after 5 whole parts, audited, and a
client that stops reading it (others served, SIGTERM still stops the
server at once, no sanitizer report).

Usage: wado.py DV (the CLI under test). Prints ok/not ok lines. KEEP=1
keeps the temporary directory.
"""
import base64
import io
import http.client
import json
import os
import random
import re
import sqlite3
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import warnings

warnings.simplefilter("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import Tap  # noqa: E402

DV = sys.argv[1] if len(sys.argv) > 1 else "build/check/dicomvault"
TF = "/usr/lib/python3/dist-packages/pydicom/data/test_files"
TAP = Tap("wado")
check, skip = TAP.check, TAP.skip


try:
    import numpy  # noqa: F401  (pydicom's pixel handling)
    import pydicom
    from pydicom import encaps
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid, ExplicitVRLittleEndian
    import oracle_json as oracle
except ImportError as ex:
    skip(f"python modules missing: {ex}")
if subprocess.run([DV, "serve", "--help"], capture_output=True).returncode != 0:
    skip(f"{DV} has no serve command")
if shutil.which("oathtool") is None:
    skip("no oathtool")
if not os.path.exists(f"{TF}/CT_small.dcm"):
    skip("no pydicom test files")

T = tempfile.mkdtemp(prefix="wado.")
SRV = None


def cleanup():
    if SRV is not None and SRV.poll() is None:
        SRV.kill()
        SRV.wait()
    if os.environ.get("KEEP"):
        print(f"# kept {T}")
    else:
        shutil.rmtree(T, ignore_errors=True)


# ---- test data ----

def uid_prefixed():
    return generate_uid(prefix="1.2.826.0.1.3680043.10.1138.")


def new_ds(study, series, series_no, inst_no, rows=64, cols=64, extra=None, pixel=None, patient="WADO^TEST"):
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    fm.MediaStorageSOPInstanceUID = uid_prefixed()
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    fm.ImplementationClassUID = "1.2.826.0.1.3680043.10.1138.1"
    ds = Dataset()
    ds.file_meta = fm
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    ds.SOPClassUID = fm.MediaStorageSOPClassUID
    ds.SOPInstanceUID = fm.MediaStorageSOPInstanceUID
    ds.PatientName = patient
    ds.PatientID = "WADO-1"
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.SeriesNumber = series_no
    ds.InstanceNumber = inst_no
    ds.Modality = "OT"
    ds.StudyDate = "20240102"
    ds.Rows = rows
    ds.Columns = cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    if extra:
        extra(ds)
    ds.PixelData = pixel if pixel is not None else random.randbytes(rows * cols * 2)
    return ds


def save(ds, name):
    p = os.path.join(T, name)
    ds.save_as(p, write_like_original=False)
    return p


def with_new_uids(src, name, study=None, series=None):
    """A copy of a pydicom test file with its own SOP Instance UID (several
    test files share theirs), written as pydicom writes it."""
    ds = pydicom.dcmread(src)
    u = uid_prefixed()
    ds.SOPInstanceUID = u
    ds.file_meta.MediaStorageSOPInstanceUID = u
    if study:
        ds.StudyInstanceUID = study
    if series:
        ds.SeriesInstanceUID = series
    p = os.path.join(T, name)
    ds.save_as(p, write_like_original=True)
    return p


def dcmdjpeg_pixels(path):
    """The pixels of a JPEG instance as DCMTK's dcmdjpeg decodes them."""
    out = os.path.join(T, "dcmdjpeg.dcm")
    subprocess.run(["dcmdjpeg", path, out], check=True, stderr=subprocess.DEVNULL)   # its warnings
    return pydicom.dcmread(out).pixel_array


def fake_jpeg(n):
    """A byte string of n + 4 bytes that starts with SOI and ends with EOI,
    with no FFD9 inside (frames are compared as bytes, never decoded)."""
    body = bytes(b if b != 0xFF else 0xFE for b in random.randbytes(n))
    return b"\xff\xd8" + body + b"\xff\xd9"


def encaps_file(name, frames, how):
    """A JPEG baseline multi-frame image: 'bot' (two fragments per frame and
    a Basic Offset Table), 'nobot' (two fragments per frame, no table),
    'eot' (one fragment per frame, Extended Offset Table)."""
    st, se = uid_prefixed(), uid_prefixed()
    ds = new_ds(st, se, 1, 1, rows=16, cols=16, pixel=b"")
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.50"
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.NumberOfFrames = len(frames)
    if how == "eot":
        px, eot, eotl = encaps.encapsulate_extended(frames)
        ds.ExtendedOffsetTable = eot
        ds.ExtendedOffsetTableLengths = eotl
    else:
        px = encaps.encapsulate(frames, fragments_per_frame=2, has_bot=(how == "bot"))
    ds.PixelData = px
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.is_implicit_VR = False
    ds.is_little_endian = True
    p = os.path.join(T, name)
    ds.save_as(p, write_like_original=False)
    return p


def one_bit_file(name):
    """5x5 pixels, 3 frames, BitsAllocated 1: 25 bits per frame, so frames 2
    and 3 start inside a byte."""
    bits = [random.randint(0, 1) for _ in range(75)]
    packed = bytearray(10)
    for i, b in enumerate(bits):
        packed[i // 8] |= b << (i % 8)
    st, se = uid_prefixed(), uid_prefixed()
    ds = new_ds(st, se, 1, 1, rows=5, cols=5, pixel=bytes(packed))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7.1"
    ds.BitsAllocated = 1
    ds.BitsStored = 1
    ds.HighBit = 0
    ds.NumberOfFrames = 3
    ds["PixelData"].VR = "OB"
    frames = []
    for f in range(3):
        out = bytearray(4)
        for j in range(25):
            out[j // 8] |= bits[f * 25 + j] << (j % 8)
        frames.append(bytes(out))
    return save(ds, name), frames


def icon_file(name):
    """An image whose Icon Image Sequence item holds JPEG pixel data of two
    frames (over the bulk threshold): a BulkDataURI inside an item that
    names encapsulated Pixel Data."""
    st, se = uid_prefixed(), uid_prefixed()
    ds = new_ds(st, se, 1, 1, rows=8, cols=8)
    icon = Dataset()
    icon.Rows, icon.Columns, icon.SamplesPerPixel = 16, 16, 1
    icon.PhotometricInterpretation = "MONOCHROME2"
    icon.BitsAllocated, icon.BitsStored, icon.HighBit, icon.PixelRepresentation = 8, 8, 7, 0
    icon.NumberOfFrames = 2
    icon.PixelData = encaps.encapsulate([fake_jpeg(800), fake_jpeg(900)], has_bot=True)
    icon["PixelData"].VR = "OB"
    icon["PixelData"].is_undefined_length = True
    ds.IconImageSequence = Sequence([icon])
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.50"
    # the main image stays native in memory terms: a JPEG syntax needs
    # encapsulated pixel data at the top level too
    ds.PixelData = encaps.encapsulate([fake_jpeg(1200)], has_bot=False)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    return save(ds, name)


# ---- server ----

def start_server():
    global SRV
    pw = os.path.join(T, "pw")
    with open(pw, "w") as f:
        f.write("correct horse battery staple\n")
    os.chmod(pw, 0o600)
    p = subprocess.run([DV, "init", "--vault", f"{T}/v", "--password-file", pw, "--json"], capture_output=True)
    if p.returncode != 0:
        check("vault init", False, p.stderr)
        sys.exit(0)
    secret = json.loads(p.stdout)["totp_secret"]
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = dict(os.environ)
    # ASan keeps freed memory in quarantine (256 MB by default), which would
    # hide what the memory test measures
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4").lstrip(":")
    SRV = subprocess.Popen([DV, "serve", "--vault", f"{T}/v", "--http", f"127.0.0.1:{port}"],
                           stdout=open(f"{T}/out", "w"), stderr=open(f"{T}/err", "w"), env=env)
    for _ in range(200):
        if "serving" in open(f"{T}/out").read() or SRV.poll() is not None:
            break
        time.sleep(0.1)
    if SRV.poll() is not None:
        check("server running", False, open(f"{T}/err").read()[-500:])
        sys.exit(0)
    return port, secret


CTX = None
PORT = None
TOKEN = None


class Resp:
    def __init__(self, status, headers, body, complete=True):
        self.status, self.headers, self.body, self.complete = status, headers, body, complete

    def h(self, name):
        return self.headers.get(name.lower(), "")


def request(method, path, headers=None, body=None, auth=True):
    c = http.client.HTTPSConnection("127.0.0.1", PORT, context=CTX, timeout=120)
    hd = dict(headers or {})
    if auth and TOKEN:
        hd["Authorization"] = f"Bearer {TOKEN}"
    c.request(method, path, body=body, headers=hd)
    r = c.getresponse()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    complete = True
    try:
        data = r.read() if method != "HEAD" else b""
    except http.client.IncompleteRead as ex:
        data, complete = ex.partial, False
    except (ConnectionError, ssl.SSLError, OSError):
        data, complete = b"", False
    c.close()
    return Resp(r.status, hdrs, data, complete)


def get(path, accept=None):
    return request("GET", path, {"Accept": accept} if accept else None)


def is_problem(r, status):
    if r.status != status or not r.h("content-type").startswith("application/problem+json"):
        return False
    try:
        return json.loads(r.body)["status"] == status
    except (ValueError, KeyError):
        return False


def parts_of(r):
    """[(headers dict, body)] of a multipart/related answer; raises if the
    framing is wrong."""
    m = re.search(r'boundary="?([^";]+)"?', r.h("content-type"))
    assert m, "no boundary"
    b = m.group(1).encode()
    data = r.body
    first = b"--" + b + b"\r\n"
    assert data.startswith(first), "does not open with the boundary"
    assert data.endswith(b"\r\n--" + b + b"--\r\n"), "no close delimiter"
    inner = data[len(first):-len(b"\r\n--" + b + b"--\r\n")]
    out = []
    for chunk in inner.split(b"\r\n--" + b + b"\r\n"):
        head, body = chunk.split(b"\r\n\r\n", 1)
        hd = {}
        for line in head.split(b"\r\n"):
            k, v = line.decode().split(":", 1)
            hd[k.strip().lower()] = v.strip()
        out.append((hd, body))
    return out


def stow(files):
    b = "wAdO-b0undary"
    body = b""
    for f in files:
        body += b"--" + b.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + open(f, "rb").read() + b"\r\n"
    body += b"--" + b.encode() + b"--\r\n"
    return request("POST", "/dicom-web/studies",
                   {"Content-Type": f'multipart/related; type="application/dicom"; boundary={b}',
                    "Accept": "application/dicom+json"}, body)


def uids(path):
    d = pydicom.dcmread(path, stop_before_pixels=True)
    return d.StudyInstanceUID, d.SeriesInstanceUID, d.SOPInstanceUID


def inst_path(f, suffix=""):
    st, se, sop = uids(f)
    return f"/dicom-web/studies/{st}/series/{se}/instances/{sop}{suffix}"


def dcmdump_ok(data):
    if shutil.which("dcmdump") is None:
        return True
    p = os.path.join(T, "part.dcm")
    with open(p, "wb") as f:
        f.write(data)
    return subprocess.run(["dcmdump", p], capture_output=True).returncode == 0


def pydicom_ok(data):
    p = os.path.join(T, "part.dcm")
    with open(p, "wb") as f:
        f.write(data)
    try:
        pydicom.dcmread(p)
        return True
    except Exception:
        return False


def audit_lines():
    out = []
    for line in open(f"{T}/v/audit/audit.log"):
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def rec_has(rec, text):
    return text in json.dumps(rec)


def main():
    global CTX, PORT, TOKEN
    random.seed(1138)
    PORT, secret = start_server()
    CTX = ssl.create_default_context(cafile=f"{T}/v/keys/tls.crt")
    CTX.check_hostname = False
    CTX.minimum_version = ssl.TLSVersion.TLSv1_3
    totp = subprocess.run(["oathtool", "--totp", "-b", secret], capture_output=True, text=True).stdout.strip()
    r = request("POST", "/api/auth/login", {"Content-Type": "application/json"},
                json.dumps({"username": "admin", "password": "correct horse battery staple", "totp": totp}),
                auth=False)
    TOKEN = json.loads(r.body).get("token") if r.status == 200 else None
    check("login", TOKEN is not None, r.body)
    if not TOKEN:
        return

    # ---- a synthetic study: two series, numbers out of order, stored shuffled ----
    study = uid_prefixed()
    se_a, se_b = uid_prefixed(), uid_prefixed()

    def nested(ds):
        item = Dataset()
        item.CodeValue = "X"
        item.add_new(0x00420011, "OB", random.randbytes(3000))  # bulk inside an item
        item2 = Dataset()
        item2.CodeValue = "Y"
        ds.add_new(0x00400260, "SQ", Sequence([item2, item]))
        ds.add_new(0x00091010, "LO", "WADO TEST")   # private creator
        ds.add_new(0x00091011, "OB", random.randbytes(2000))
        ds.add_new(0x00282000, "OB", random.randbytes(1500))  # ICC profile: top-level bulk

    syn = []
    for se, se_no, nums in ((se_a, 2, [3, 1, 2]), (se_b, 1, [2, 1])):
        for k in nums:
            ds = new_ds(study, se, se_no, k, extra=nested if (se_no, k) == (2, 1) else None)
            syn.append((se_no, k, save(ds, f"syn_{se_no}_{k}.dcm")))
    # one larger instance (several 64 KiB chunks) in series 1
    big = new_ds(study, se_b, 1, 3, rows=256, cols=256)
    syn.append((1, 3, save(big, "syn_1_3.dcm")))
    order = [p for _, _, p in sorted(syn)]
    shuffled = order[:]
    random.shuffle(shuffled)
    r = stow(shuffled)
    check("STOW of the synthetic study (6 instances)", r.status == 200, r.body[:300])

    # ---- pydicom files, some with their own SOP Instance UIDs ----
    files = {}
    for n in ("CT_small", "MR_small", "JPEG2000", "rtdose", "SC_rgb_rle_2frame", "SC_ybr_full_422_uncompressed",
              "liver_1frame", "JPEG-lossy", "image_dfl", "rtplan"):
        files[n] = os.path.join(T, n + ".dcm")
        shutil.copy(f"{TF}/{n}.dcm", files[n])
    files["mr_implicit"] = with_new_uids(f"{TF}/MR_small_implicit.dcm", "mr_implicit.dcm", uid_prefixed(),
                                         uid_prefixed())
    files["mr_bigendian"] = with_new_uids(f"{TF}/MR_small_bigendian.dcm", "mr_bigendian.dcm", uid_prefixed(),
                                          uid_prefixed())
    files["rtdose_rle"] = with_new_uids(f"{TF}/rtdose_rle.dcm", "rtdose_rle.dcm")
    files["rtdose_expb"] = with_new_uids(f"{TF}/rtdose_expb.dcm", "rtdose_expb.dcm")
    files["MR_small_jpeg_ls_lossless"] = with_new_uids(f"{TF}/MR_small_jpeg_ls_lossless.dcm", "jls.dcm")
    files["rle_32bit_2frame"] = with_new_uids(f"{TF}/SC_rgb_rle_32bit_2frame.dcm", "rle32.dcm")
    # JPEG 2000 Part 2 (.4.92): no decoder here (its frame is Part 1's,
    # which a Part 2 decoder would take too)
    files["j2k_part2"] = with_new_uids(f"{TF}/JPEG2000.dcm", "j2k_part2.dcm", uid_prefixed(), uid_prefixed())
    pd = pydicom.dcmread(files["j2k_part2"])
    pd.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.92"
    pd.save_as(files["j2k_part2"], write_like_original=True)
    files["jpeg_rgb"] = with_new_uids(f"{TF}/SC_jpeg_no_color_transform.dcm", "jpeg_rgb.dcm", uid_prefixed(), uid_prefixed())
    files["jpeg_ybr"] = with_new_uids(f"{TF}/SC_rgb_jpeg_dcmtk.dcm", "jpeg_ybr.dcm", uid_prefixed(), uid_prefixed())
    # the RGB JPEG again, its metadata claiming planes and 16 bits: what
    # the decoder gives (8-bit, interleaved) would contradict it
    files["jpeg_rgb_planar"] = with_new_uids(f"{TF}/SC_jpeg_no_color_transform.dcm", "jpeg_rgb_planar.dcm",
                                             uid_prefixed(), uid_prefixed())
    pd = pydicom.dcmread(files["jpeg_rgb_planar"])
    pd.PlanarConfiguration = 1
    pd.save_as(files["jpeg_rgb_planar"], write_like_original=True)
    files["jpeg_rgb_16"] = with_new_uids(f"{TF}/SC_jpeg_no_color_transform.dcm", "jpeg_rgb_16.dcm",
                                         uid_prefixed(), uid_prefixed())
    pd = pydicom.dcmread(files["jpeg_rgb_16"])
    pd.BitsAllocated = 16
    pd.save_as(files["jpeg_rgb_16"], write_like_original=True)
    # even halves: pydicom 2.3's encapsulate_extended computes offsets
    # from unpadded lengths
    jf = [fake_jpeg(4 * random.randint(100, 500)) for _ in range(4)]
    files["jpeg_bot"] = encaps_file("jpeg_bot.dcm", jf, "bot")
    files["jpeg_nobot"] = encaps_file("jpeg_nobot.dcm", jf, "nobot")
    files["jpeg_eot"] = encaps_file("jpeg_eot.dcm", jf, "eot")
    # Number of Frames "1A" (pydicom's badVR.dcm, which pydicom cannot
    # write again: its SOP Instance UID, rtdose's, changed in its bytes to
    # one of the same length): its frames cannot be located
    raw = open(f"{TF}/badVR.dcm", "rb").read()
    old_uid = pydicom.dcmread(f"{TF}/badVR.dcm", stop_before_pixels=True).SOPInstanceUID.encode()
    files["bad_nframes"] = os.path.join(T, "bad_nframes.dcm")
    with open(files["bad_nframes"], "wb") as fh:
        fh.write(raw.replace(old_uid, old_uid[:-1] + (b"1" if old_uid[-1:] != b"1" else b"2")))
    files["onebit"], onebit_frames = one_bit_file("onebit.dcm")
    files["icon"] = icon_file("icon.dcm")
    r = stow(list(files.values()))
    check(f"STOW of {len(files)} test files", r.status == 200, r.body[:400])

    # ---- study and series retrieval ----
    r = get(f"/dicom-web/studies/{study}", 'multipart/related; type="application/dicom"')
    ok = r.status == 200 and r.h("content-type").startswith('multipart/related; type="application/dicom"')
    parts = parts_of(r) if ok else []
    check("study retrieval: 200 multipart/related application/dicom", ok, (r.status, r.body[:200]))
    check("study retrieval: one part per instance", len(parts) == len(order), len(parts))
    check("study retrieval: series number, instance number order, each part byte-identical",
          [b for _, b in parts] == [open(p, "rb").read() for p in order])
    check("study retrieval: Content-Length is the body's length",
          r.h("content-length") == str(len(r.body)), r.h("content-length"))
    check("study retrieval: each part's Content-Type names its transfer syntax",
          all(h.get("content-type") == "application/dicom; transfer-syntax=1.2.840.10008.1.2.1" for h, _ in parts))
    check("study retrieval: pydicom and dcmdump read every part",
          all(pydicom_ok(b) and dcmdump_ok(b) for _, b in parts))

    r = get(f"/dicom-web/studies/{study}/series/{se_b}")
    parts = parts_of(r) if r.status == 200 else []
    check("series retrieval (no Accept): the series' 3 instances in order, byte-identical",
          [b for _, b in parts] == [open(p, "rb").read() for p in order[:3]], (r.status, len(parts)))
    r = get(f"/dicom-web/studies/{study}/series/{se_a}",
            "multipart/related; type=application/dicom; transfer-syntax=*")
    parts = parts_of(r) if r.status == 200 else []
    check("series retrieval, transfer-syntax=*: 200, 3 instances",
          [b for _, b in parts] == [open(p, "rb").read() for p in order[3:]], r.status)
    r = get(f"/dicom-web/studies/{study}/series/{se_a}",
            'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1')
    check("series retrieval, transfer-syntax = the stored one: 200", r.status == 200, r.status)
    r = get(f"/dicom-web/studies/{study}",
            'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50')
    check("study retrieval, another transfer syntax (no transcoding): 406", is_problem(r, 406), r.status)
    r = get(f"/dicom-web/studies/{study}", "application/dicom+json")
    check("study retrieval, Accept application/dicom+json: 406", is_problem(r, 406), r.status)
    r = get(f"/dicom-web/studies/{study}", "image/jpeg, multipart/related; type=application/dicom;q=0")
    check("study retrieval, the only multipart range has q=0: 406", is_problem(r, 406), r.status)
    r = get(f"/dicom-web/studies/{study}", "image/jpeg, multipart/related; type=\"application/dicom\"")
    check("study retrieval, second Accept range acceptable: 200", r.status == 200, r.status)
    r = request("HEAD", f"/dicom-web/studies/{study}")
    check("HEAD of a study: 200 with the length of the GET",
          r.status == 200 and int(r.h("content-length") or -1) > sum(os.path.getsize(p) for p in order),
          (r.status, r.h("content-length")))

    # a study of several transfer syntaxes: one Accept range per syntax
    st_j = uids(files["JPEG2000"])[0]
    tss = sorted({str(pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID)
                  for f in files.values() if uids(f)[0] == st_j})
    ranges = [f'multipart/related; type="application/dicom"; transfer-syntax={t}' for t in tss]
    r = get(f"/dicom-web/studies/{st_j}", ", ".join(ranges))
    check(f"study of {len(tss)} transfer syntaxes, one Accept range for each: 200",
          len(tss) >= 2 and r.status == 200 and
          sorted({h["content-type"].split("=")[1] for h, _ in parts_of(r)}) == tss, (tss, r.status))
    r = get(f"/dicom-web/studies/{st_j}", ", ".join(ranges[1:]))
    check("the same with one syntax missing: 406", is_problem(r, 406), r.status)

    # q decides between the stored syntax and explicit VR little endian
    # (RFC 9110 12.5.1): the stored bytes won whenever * was taken at all
    prefer = ('multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1; q=1, '
              'multipart/related; type="application/dicom"; transfer-syntax=*; q=0.1')
    r = get(inst_path(files["JPEG2000"]), prefer)
    parts = parts_of(r) if r.status == 200 else []
    check("explicit VR little endian with q=1 beside * with q=0.1: the JPEG 2000 instance decompressed",
          len(parts) == 1 and parts[0][0].get("content-type") == "application/dicom; transfer-syntax=1.2.840.10008.1.2.1",
          (r.status, [h for h, _ in parts]))
    r = get(inst_path(files["JPEG2000"]), prefer.replace("q=1,", "q=0.1,").replace("*; q=0.1", "*; q=1"))
    parts = parts_of(r) if r.status == 200 else []
    check("... and with the q the other way round: as stored",
          len(parts) == 1 and parts[0][1] == open(files["JPEG2000"], "rb").read(), r.status)

    st_ct, se_ct, sop_ct = uids(files["CT_small"])
    r = get(inst_path(files["CT_small"]))
    parts = parts_of(r) if r.status == 200 else []
    check("instance retrieval still byte-identical", len(parts) == 1 and parts[0][1] == open(files["CT_small"], "rb").read())

    r = get("/dicom-web/studies/1.2.3.4.5")
    check("unknown study: 404 problem+json", is_problem(r, 404), r.status)
    r = get(f"/dicom-web/studies/{study}/series/1.2.3.4.5")
    check("unknown series: 404 problem+json", is_problem(r, 404), r.status)
    r = get(f"/dicom-web/studies/{study}/series/{se_ct}")
    check("a series of another study: 404", is_problem(r, 404), r.status)
    r = get(f"/dicom-web/studies/{study}/series/{se_a}/metadata/x")
    check("unknown sub-resource: 404", is_problem(r, 404), r.status)
    r = get("/dicom-web/studies/1.2.x/metadata")
    check("malformed study UID: 400", is_problem(r, 400), r.status)
    r = request("GET", f"/dicom-web/studies/{study}", auth=False)
    check("study retrieval without a session: 401", is_problem(r, 401), r.status)

    # ---- metadata ----
    def our_inline(obj, where):
        """Replace every BulkDataURI in our JSON by the bytes it serves
        (InlineBinary), fetched over WADO-RS; encapsulated Pixel Data is
        checked against pydicom's frames and dropped on both sides."""
        problems = []

        def walk(d):
            for k, v in list(d.items()):
                if "BulkDataURI" in v:
                    uri = v.pop("BulkDataURI")
                    m = re.match(r"https://[^/]+(/dicom-web/.*)$", uri)
                    if not m or "/bulkdata/" not in uri:
                        problems.append(f"{k}: odd URI {uri}")
                        continue
                    rr = get(m.group(1))
                    if rr.status != 200:
                        problems.append(f"{k}: {uri} -> {rr.status}")
                        continue
                    ps = parts_of(rr)
                    if k == "7FE00010" and 'type="application/octet-stream"' not in rr.h("content-type"):
                        v["frames"] = [b for _, b in ps]   # encapsulated: one part per frame
                    else:
                        if len(ps) != 1 or not ps[0][0]["content-type"].startswith("application/octet-stream"):
                            problems.append(f"{k}: {len(ps)} parts")
                        v["InlineBinary"] = base64.b64encode(ps[0][1]).decode()
                if v.get("vr") == "SQ":
                    for item in v.get("Value", []):
                        if isinstance(item, dict):
                            walk(item)
        walk(obj)
        return problems

    def frames_vs_pydicom(ours, theirs, probs):
        """Encapsulated Pixel Data served as frames (at any depth, e.g. an
        icon): pydicom's frames of its InlineBinary; then dropped on both
        sides."""
        for k in list(ours):
            v = ours[k]
            if "frames" in v:
                raw = base64.b64decode(theirs.get(k, {}).get("InlineBinary", ""))
                nf = int((theirs.get("00280008", {}).get("Value") or [1])[0] or 1)
                want = [bytes(f) for f in encaps.generate_pixel_data_frame(raw, nf)] if raw else None
                if v["frames"] != want:
                    probs.append(f"{k}: encapsulated bulk data is not pydicom's frames")
                ours.pop(k)
                theirs.pop(k, None)
            elif v.get("vr") == "SQ" and k in theirs:
                for x, y in zip(v.get("Value", []), theirs[k].get("Value", [])):
                    frames_vs_pydicom(x, y, probs)

    def compare_meta(path, ours):
        theirs = oracle.pydicom_json(path)
        probs = our_inline(ours, {})
        frames_vs_pydicom(ours, theirs, probs)
        theirs_n = oracle.norm_ds(theirs)
        big = oracle.BIG_ENDIAN
        oracle.BIG_ENDIAN = False
        ours_n = oracle.norm_ds(ours)
        oracle.private_un(ours_n, theirs_n)
        d = oracle.diff(ours_n, theirs_n)
        oracle.BIG_ENDIAN = big
        if d:
            probs.append(d)
        return probs

    r = get(f"/dicom-web/studies/{study}/metadata", "application/dicom+json")
    meta = json.loads(r.body) if r.status == 200 else []
    check("study metadata: 200 application/dicom+json, one object per instance",
          r.h("content-type").startswith("application/dicom+json") and len(meta) == len(order),
          (r.status, r.body[:300]))
    check("study metadata: in series/instance order",
          [m["00080018"]["Value"][0] for m in meta] == [uids(p)[2] for p in order])
    probs = []
    for m, p in zip(meta, order):
        probs += compare_meta(p, m)
    check("study metadata equals pydicom's (bulk data fetched from each BulkDataURI)", not probs, probs[:3])
    nested_uri = [m for m in meta if "00400260" in m]
    nested_uri = nested_uri[0]["00400260"]["Value"][1]["00420011"].get("BulkDataURI", "") if nested_uri else ""
    # (our_inline popped it: look at a fresh copy)
    r = get(f"/dicom-web/studies/{study}/series/{se_a}/metadata")
    ms = json.loads(r.body) if r.status == 200 else []
    m0 = [m for m in ms if "00400260" in m]
    uri = m0[0]["00400260"]["Value"][1]["00420011"].get("BulkDataURI", "") if m0 else ""
    check("series metadata: 3 objects; a bulk value in a sequence item has an item-indexed BulkDataURI",
          len(ms) == 3 and uri.endswith("/bulkdata/00400260.1.00420011"), uri or nested_uri)
    check("metadata: PixelData and ICC profile are BulkDataURIs, short values inline",
          all("BulkDataURI" in m["7FE00010"] and "BulkDataURI" in m.get("00282000", {"BulkDataURI": 1}) for m in ms)
          and "Value" in ms[0]["00100010"])

    probs = []
    for n, f in sorted(files.items()):
        r = get(inst_path(f, "/metadata"))
        if r.status != 200:
            probs.append(f"{n}: {r.status} {r.body[:200]}")
            continue
        mm = json.loads(r.body)
        if len(mm) != 1:
            probs.append(f"{n}: {len(mm)} objects")
            continue
        if n == "bad_nframes":   # pydicom's to_json_dict fails on it
            if mm[0].get("00280008") != {"vr": "IS", "Value": ["1A"]}:
                probs.append(f"{n}: Number of Frames {mm[0].get('00280008')}")
            continue
        probs += [f"{n}: {p}" for p in compare_meta(f, mm[0])]
    check(f"instance metadata of {len(files)} files (native, RLE, JPEG, JPEG 2000, JPEG-LS, deflated, "
          "big endian, offset tables) equals pydicom's", not probs, probs[:4])
    r = get(inst_path(files["icon"], "/metadata"))
    mi = json.loads(r.body)[0] if r.status == 200 else {}
    uri = mi.get("00880200", {}).get("Value", [{}])[0].get("7FE00010", {}).get("BulkDataURI", "")
    check("an icon's encapsulated Pixel Data has a BulkDataURI inside its item",
          uri.endswith("/bulkdata/00880200.0.7FE00010"), uri)
    r = get(inst_path(files["icon"], "/bulkdata/00880200.0.7FE00010"))
    ps = parts_of(r) if r.status == 200 else []
    check("the icon's bulk data: its two JPEG frames, image/jpeg parts",
          len(ps) == 2 and all(h["content-type"] == "image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50" for h, _ in ps)
          and all(b.startswith(b"\xff\xd8") and b.endswith(b"\xff\xd9") for _, b in ps), (r.status, r.body[:200]))
    r = get(inst_path(files["CT_small"], "/metadata"), "image/jpeg")
    check("metadata with Accept image/jpeg: 406", is_problem(r, 406), r.status)
    r = get(inst_path(files["CT_small"], "/bulkdata/00100010"))
    check("bulk data of a text element: 404", is_problem(r, 404), r.status)
    r = get(inst_path(files["CT_small"], "/bulkdata/7FE00010.0.00100010"))
    check("bulk data path through a non-sequence: 404", is_problem(r, 404), r.status)
    r = get(inst_path(files["CT_small"], "/bulkdata/zz"))
    check("malformed bulk data path: 404", is_problem(r, 404), r.status)

    # ---- frames ----
    def frames(f, lst, accept=None):
        return get(inst_path(f, f"/frames/{lst}"), accept)

    def native_frames(f):
        ds = pydicom.dcmread(f)
        n = int(ds.get("NumberOfFrames", 1) or 1)
        px = ds.PixelData
        if not ds.is_little_endian:   # frames are little endian
            unit = ds.BitsAllocated // 8
            px = b"".join(px[i:i + unit][::-1] for i in range(0, len(px), unit))
        fs = ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8
        if ds.PhotometricInterpretation == "YBR_FULL_422":
            fs = fs // 3 * 2
        return [px[i * fs:(i + 1) * fs] for i in range(n)]

    for name, lst in (("rtdose", "1,3,5,15"), ("rtdose_expb", "2,15,1"), ("SC_ybr_full_422_uncompressed", "1"),
                      ("liver_1frame", "1"), ("CT_small", "1"), ("image_dfl", "1")):
        want = native_frames(files[name])
        r = frames(files[name], lst, "multipart/related; type=application/octet-stream; transfer-syntax=*")
        ps = parts_of(r) if r.status == 200 else []
        idx = [int(x) - 1 for x in lst.split(",")]
        check(f"native frames {lst} of {name}: pydicom's pixel data slices",
              [b for _, b in ps] == [want[i] for i in idx] and
              all(h["content-type"] == "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1" for h, _ in ps),
              (r.status, [len(b) for _, b in ps], [len(want[i]) for i in idx]))
    r = frames(files["onebit"], "3,1,2")
    ps = parts_of(r) if r.status == 200 else []
    check("1-bit frames that start inside a byte: re-aligned, bits past the frame zero",
          [b for _, b in ps] == [onebit_frames[2], onebit_frames[0], onebit_frames[1]], (r.status, ps))

    for name, media in (("rtdose_rle", "image/dicom-rle"), ("SC_rgb_rle_2frame", "image/dicom-rle"),
                        ("rle_32bit_2frame", "image/dicom-rle"), ("JPEG2000", "image/jp2"),
                        ("JPEG-lossy", "image/jpeg"), ("MR_small_jpeg_ls_lossless", "image/jls"),
                        ("jpeg_bot", "image/jpeg"), ("jpeg_nobot", "image/jpeg"), ("jpeg_eot", "image/jpeg")):
        ds = pydicom.dcmread(files[name])
        n = int(ds.get("NumberOfFrames", 1) or 1)
        if name == "jpeg_eot":
            want = [bytes(x) for x in jf]
        else:
            want = [bytes(x) for x in encaps.generate_pixel_data_frame(ds.PixelData, n)]
        if name.startswith("jpeg_"):
            want_ok = want == [bytes(x) for x in jf]
        else:
            want_ok = True
        lst = ",".join(str(i + 1) for i in reversed(range(n)))
        r = frames(files[name], lst, f"multipart/related; type={media}")
        ps = parts_of(r) if r.status == 200 else []
        ts = ds.file_meta.TransferSyntaxUID
        check(f"encapsulated frames {lst} of {name}: pydicom's frames, {media}",
              want_ok and [b for _, b in ps] == want[::-1] and r.h("content-type").startswith(f'multipart/related; type="{media}"')
              and all(h["content-type"] == f"{media}; transfer-syntax={ts}" for h, _ in ps),
              (r.status, r.body[:200] if r.status != 200 else [len(b) for _, b in ps], [len(w) for w in want]))
    r = frames(files["rtdose_rle"], "1", "multipart/related; type=application/octet-stream; transfer-syntax=*")
    ps = parts_of(r) if r.status == 200 else []
    check("RLE frame with octet-stream and transfer-syntax=*: the compressed frame labelled with its syntax",
          len(ps) == 1 and ps[0][0]["content-type"] == "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.5",
          (r.status, ps[:1]))
    r = frames(files["SC_rgb_rle_2frame"], "1", "multipart/related; type=image/x-dicom-rle")
    check("RLE frames with the older image/x-dicom-rle: 200", r.status == 200, r.status)
    for acc in ('multipart/related; type="image/*"', 'multipart/related; type="image/*"; transfer-syntax=*'):
        r = frames(files["SC_rgb_rle_2frame"], "1", acc)
        check("RLE frames with %s (PS3.18 8.7.3.5): 200, image/dicom-rle" % acc,
              r.status == 200 and b"image/dicom-rle" in r.body[:400], (r.status, r.body[:200]))
    r = frames(files["rtdose_rle"], "1", "multipart/related; type=image/dicom-rle;q=0, */*")
    check("RLE frames refused with q=0 beside */*: not sent as RLE (406)", is_problem(r, 406), r.status)
    r = frames(files["rtdose_rle"], "1", "multipart/related; type=image/dicom-rle;q=0, "
               "multipart/related; type=application/octet-stream")
    ps = parts_of(r) if r.status == 200 else []
    check("RLE frames refused with q=0, octet-stream taken: decompressed",
          len(ps) == 1 and ps[0][0]["content-type"] == "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1",
          (r.status, ps[:1]))
    # uncompressed frames of compressed instances: decompressed (RLE, and
    # JPEG Baseline of one component or RGB), as pydicom decodes them
    native = "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
    for name, lst, accept in (
            ("rtdose_rle", "3,1,15", "multipart/related; type=application/octet-stream"),
            ("SC_rgb_rle_2frame", "2", 'multipart/related; type="application/octet-stream"; '
                                       'transfer-syntax=1.2.840.10008.1.2.1'),
            ("rle_32bit_2frame", "1,2", "multipart/related; transfer-syntax=1.2.840.10008.1.2.1"),
            ("jpeg_rgb", "1", "multipart/related; type=application/octet-stream")):
        ds = pydicom.dcmread(files[name])
        arr = ds.pixel_array
        if int(ds.get("NumberOfFrames", 1) or 1) == 1:
            arr = arr[None]
        want = [arr[int(i) - 1].astype(arr.dtype.newbyteorder("<")).tobytes() for i in lst.split(",")]
        r = frames(files[name], lst, accept)
        ps = parts_of(r) if r.status == 200 else []
        check(f"frames {lst} of {name} ({ds.file_meta.TransferSyntaxUID}) asked uncompressed: decompressed, "
              "as pydicom decodes them",
              [b for _, b in ps] == want and all(h["content-type"] == native for h, _ in ps) and
              r.h("content-type").startswith('multipart/related; type="application/octet-stream"'),
              (r.status, r.body[:300] if r.status != 200 else [len(b) for _, b in ps], [len(w) for w in want]))
    r = frames(files["jpeg_ybr"], "1", "multipart/related; type=application/octet-stream")
    check("frames of a YBR JPEG asked uncompressed (decoded RGB would contradict its metadata): 406",
          is_problem(r, 406), r.status)
    for name in ("jpeg_rgb_planar", "jpeg_rgb_16"):
        r = frames(files[name], "1", "multipart/related; type=application/octet-stream")
        check(f"frames of an RGB JPEG whose metadata says {name[9:]} asked uncompressed (8-bit interleaved "
              "would contradict it): 406", is_problem(r, 406), r.status)
    r = frames(files["JPEG-lossy"], "1", "multipart/related; type=application/octet-stream")
    ps = parts_of(r) if r.status == 200 else []
    ref = dcmdjpeg_pixels(files["JPEG-lossy"])
    got = numpy.frombuffer(ps[0][1], "<u2").reshape(ref.shape) if len(ps) == 1 and len(ps[0][1]) == ref.nbytes \
        else None
    check("frames of a 12-bit JPEG asked uncompressed: decoded, within 1 of dcmdjpeg's decoding",
          got is not None and int(numpy.abs(got.astype(int) - ref.astype(int)).max()) <= 1,
          (r.status, [len(b) for _, b in ps], ref.nbytes))
    r = frames(files["j2k_part2"], "1", "multipart/related; type=application/octet-stream")
    check("frames of a JPEG 2000 Part 2 instance asked uncompressed (no decoder): 406", is_problem(r, 406), r.status)
    r = frames(files["jpeg_bot"], "2", "multipart/related; type=application/octet-stream")
    check("a JPEG frame that does not decode, asked uncompressed: 406 naming why, the server serving",
          is_problem(r, 406) and b"cannot be decompressed" in r.body, (r.status, r.body[:300]))
    r = frames(files["jpeg_rgb"], "1", "multipart/related; type=image/jpeg")
    check("the same JPEG frame asked as image/jpeg: the stored bytes", r.status == 200 and
          [b for _, b in parts_of(r)] == [bytes(x) for x in encaps.generate_pixel_data_frame(
              pydicom.dcmread(files["jpeg_rgb"]).PixelData, 1)], r.status)
    r = frames(files["rtdose"], "1", "multipart/related; type=image/jpeg")
    check("native frames as image/jpeg: 406", is_problem(r, 406), r.status)
    r = frames(files["rtdose"], "1", 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.4.50')
    check("native frames in another transfer syntax: 406", is_problem(r, 406), r.status)

    # instances asked for in explicit VR little endian: JPEG Baseline and
    # RLE ones decompressed (Part 10, chunked), as pydicom decodes them
    from pydicom.pixel_data_handlers.util import convert_color_space
    explicit = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1'
    def as_explicit(name):
        """The original, the instance asked in explicit VR LE (its part
        parsed, None if it did not come as one part), the part's headers
        and bytes, and the answer."""
        w = pydicom.dcmread(files[name])
        r = get(inst_path(files[name]), explicit)
        ps = parts_of(r) if r.status == 200 else []
        g = pydicom.dcmread(io.BytesIO(ps[0][1])) if len(ps) == 1 else None
        return w, g, ps[0] if g is not None else ({}, b""), r
    for name in ("rtdose_rle", "SC_rgb_rle_2frame", "rle_32bit_2frame", "jpeg_rgb", "jpeg_ybr"):
        w, g, (ph, _), r = as_explicit(name)
        ok, why = False, r.status
        if g is not None:
            a, b = w.pixel_array, g.pixel_array
            if w.PhotometricInterpretation.startswith("YBR"):
                a = convert_color_space(a, "YBR_FULL", "RGB")
            diff = numpy.abs(a.astype(int) - b.astype(int)).max() if a.shape == b.shape else None
            ok = (ph["content-type"] == "application/dicom; transfer-syntax=1.2.840.10008.1.2.1" and
                  g.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1" and g.SOPInstanceUID == w.SOPInstanceUID
                  and diff is not None and diff <= (3 if "jpeg" in name else 0) and
                  "content-length" not in {k.lower() for k in r.headers})
            why = (diff, g.file_meta.TransferSyntaxUID, ph)
        check(f"instance {name} ({w.file_meta.TransferSyntaxUID}) asked in explicit VR LE: decompressed, "
              "as pydicom decodes it", ok, why)
    # native instances stored in another syntax (implicit VR, big endian,
    # deflated): re-encoded, every attribute as pydicom reads the original
    def same_elements(a, b):
        diff = []
        for e in a:
            if e.tag.element == 0 or e.tag in (0xFFFCFFFC, 0x7FE00010):   # pixels: compared decoded
                continue
            if e.tag not in b:
                diff.append((str(e.tag), "missing"))
            elif e.VR != "SQ" and b[e.tag].value != e.value:
                diff.append((str(e.tag), "differs"))
            elif e.VR == "SQ" and len(b[e.tag].value) != len(e.value):
                diff.append((str(e.tag), "items"))
        return diff
    for name in ("mr_implicit", "mr_bigendian", "image_dfl"):
        w, g, (ph, part), r = as_explicit(name)
        ok, why = False, r.status
        if g is not None:
            d = same_elements(w, g)
            ok = (ph["content-type"] == "application/dicom; transfer-syntax=1.2.840.10008.1.2.1" and
                  g.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1" and not g.is_implicit_VR and
                  g.is_little_endian and numpy.array_equal(w.pixel_array, g.pixel_array) and not d and
                  g.file_meta.MediaStorageSOPInstanceUID == w.SOPInstanceUID)
            why = (d[:5], g.file_meta.TransferSyntaxUID, ph)
            if name == "mr_implicit":
                check("the re-encoded instance passes dcmdump", dcmdump_ok(part))
        check(f"instance {name} ({w.file_meta.TransferSyntaxUID}) asked in explicit VR LE: re-encoded, "
              "every attribute and pixel kept", ok, why)
    # a stored syntax refused with q=0 beside a range that takes any
    # (RFC 9110 12.5.1: the most specific range's q counts)
    dcm = 'multipart/related; type="application/dicom"'
    r = get(inst_path(files["mr_implicit"]), f"{dcm}; transfer-syntax=1.2.840.10008.1.2;q=0, {dcm}")
    ps = parts_of(r) if r.status == 200 else []
    check("implicit VR refused with q=0 beside a range of any syntax: re-encoded in explicit VR LE",
          len(ps) == 1 and ps[0][0]["content-type"] == "application/dicom; transfer-syntax=1.2.840.10008.1.2.1",
          (r.status, ps[0][0] if ps else r.body[:200]))
    r = get(inst_path(files["CT_small"]), f"{dcm}; transfer-syntax=1.2.840.10008.1.2.1;q=0, */*")
    check("explicit VR LE (stored) refused with q=0 beside */*: nothing else to offer, 406",
          is_problem(r, 406), r.status)
    r = get(inst_path(files["jpeg_rgb"]), f"{dcm}; transfer-syntax=1.2.840.10008.1.2.4.50;q=0, multipart/*")
    ps = parts_of(r) if r.status == 200 else []
    check("JPEG baseline refused with q=0 beside multipart/*: decompressed",
          len(ps) == 1 and ps[0][0]["content-type"] == "application/dicom; transfer-syntax=1.2.840.10008.1.2.1",
          (r.status, ps[0][0] if ps else r.body[:200]))
    r = get(inst_path(files["CT_small"], "/metadata"), "application/json")
    check("metadata with Accept application/json: answered as application/json",
          r.status == 200 and (r.h("content-type") or "").startswith("application/json") and json.loads(r.body),
          (r.status, r.h("content-type")))
    r = get(inst_path(files["CT_small"], "/metadata"), "application/dicom+json;q=0, application/json;q=0, */*")
    check("metadata with both JSON types refused (q=0) beside */*: 406", is_problem(r, 406), r.status)
    st_i, se_i, sop_i = uids(files["mr_implicit"])
    wado_uri = f"/wado?requestType=WADO&studyUID={st_i}&seriesUID={se_i}&objectUID={sop_i}&contentType=application/dicom"
    r = request("GET", wado_uri + "&transferSyntax=1.2.840.10008.1.2.1")
    g = pydicom.dcmread(io.BytesIO(r.body)) if r.status == 200 else None
    check("WADO-URI transferSyntax=explicit VR LE of an implicit VR instance: re-encoded",
          g is not None and g.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1" and g.SOPInstanceUID == sop_i and
          numpy.array_equal(g.pixel_array, pydicom.dcmread(files["mr_implicit"]).pixel_array), r.status)
    r = request("GET", wado_uri)
    g = pydicom.dcmread(io.BytesIO(r.body)) if r.status == 200 else None
    check("WADO-URI without transferSyntax of an implicit VR instance: re-encoded into explicit VR LE "
          "(PS3.18 8.7.3 bars implicit VR from web services)",
          g is not None and g.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1" and g.SOPInstanceUID == sop_i and
          numpy.array_equal(g.pixel_array, pydicom.dcmread(files["mr_implicit"]).pixel_array), r.status)
    r = get(inst_path(files["mr_implicit"]), 'multipart/related; type="application/dicom"; transfer-syntax=*')
    parts = parts_of(r) if r.status == 200 else []
    check("WADO-RS of an implicit VR instance with transfer-syntax=*: re-encoded into explicit VR LE",
          len(parts) == 1 and parts[0][0].get("content-type") == "application/dicom; transfer-syntax=1.2.840.10008.1.2.1",
          (r.status, parts[0][0] if parts else None))
    r = request("GET", wado_uri + "&transferSyntax=1.2.840.10008.1.2")
    g = pydicom.dcmread(io.BytesIO(r.body)) if r.status == 200 else None
    check("WADO-URI transferSyntax=implicit VR LE (its stored one) of an implicit VR instance: re-encoded all the same",
          g is not None and g.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1", r.status)
    r = request("GET", wado_uri + "&transferSyntax=1.2.840.10008.1.2.2")
    check("WADO-URI transferSyntax=big endian: 406 (only the stored one or explicit VR LE)",
          is_problem(r, 406), r.status)
    # an implicit VR instance the re-encoder cannot take (an Encapsulated
    # PDF over its 64 MiB bound for values other than Pixel Data): sent as
    # stored when the client takes that (transfer-syntax=*, WADO-URI), its
    # part naming its syntax; a study of it after another instance is
    # whole (before: 406, and a study cut after its first instance)
    big = os.path.join(T, "big_implicit_pdf.dcm")
    fm = pydicom.dataset.FileMetaDataset()
    fm.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"
    fm.MediaStorageSOPInstanceUID = uid_prefixed()
    fm.TransferSyntaxUID = "1.2.840.10008.1.2"
    bd = pydicom.dataset.Dataset()
    bd.file_meta = fm
    bd.is_little_endian, bd.is_implicit_VR = True, True
    bd.SOPClassUID, bd.SOPInstanceUID = fm.MediaStorageSOPClassUID, fm.MediaStorageSOPInstanceUID
    bd.StudyInstanceUID, bd.SeriesInstanceUID = uids(files["mr_implicit"])[0], uid_prefixed()
    mi = pydicom.dcmread(files["mr_implicit"], stop_before_pixels=True)
    bd.PatientName, bd.PatientID, bd.Modality = mi.PatientName, mi.PatientID, "DOC"   # its study's patient
    bd.MIMETypeOfEncapsulatedDocument = "application/pdf"
    bd.add_new(0x00420011, "OB", b"%PDF-1.4\n" + bytes(66 * 1024 * 1024))
    bd.save_as(big, write_like_original=False)
    del bd
    r = stow([big])
    check("STOW of a 66 MB implicit VR Encapsulated PDF", r.status == 200, (r.status, r.body[:200]))
    r = get(inst_path(big), 'multipart/related; type="application/dicom"; transfer-syntax=*')
    parts = parts_of(r) if r.status == 200 else []
    check("WADO-RS transfer-syntax=* of an implicit VR instance too large to re-encode: as stored, so named",
          len(parts) == 1 and parts[0][0].get("content-type") == "application/dicom; transfer-syntax=1.2.840.10008.1.2"
          and parts[0][1] == open(big, "rb").read(), (r.status, parts[0][0] if parts else None))
    st_b, se_b, sop_b = uids(big)
    r = request("GET", f"/wado?requestType=WADO&studyUID={st_b}&seriesUID={se_b}&objectUID={sop_b}"
                "&contentType=application/dicom")
    check("WADO-URI of it: as stored", r.status == 200 and r.body == open(big, "rb").read(), r.status)
    r = request("GET", f"/wado?requestType=WADO&studyUID={st_b}&seriesUID={se_b}&objectUID={sop_b}"
                "&contentType=application/dicom&transferSyntax=1.2.840.10008.1.2.1")
    check("WADO-URI of it asking explicit VR LE: 406 saying to leave transferSyntax out",
          is_problem(r, 406) and b"no transferSyntax" in r.body, (r.status, r.body[:300]))
    r = get(f"/dicom-web/studies/{st_b}", 'multipart/related; type="application/dicom"; transfer-syntax=*')
    parts = parts_of(r) if r.status == 200 else []
    check("its study (with the small implicit VR instance, re-encoded): both instances, whole",
          len(parts) == 2 and sorted(p[0].get("content-type") for p in parts) ==
          ["application/dicom; transfer-syntax=1.2.840.10008.1.2", "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"],
          (r.status, [p[0] for p in parts]))
    st_j2, se_j2, sop_j2 = uids(files["JPEG2000"])
    r = request("GET", f"/wado?requestType=WADO&studyUID={st_j2}&seriesUID={se_j2}&objectUID={sop_j2}"
                "&contentType=application/dicom&transferSyntax=1.2.840.10008.1.2.1")
    d = pydicom.dcmread(io.BytesIO(r.body)) if r.status == 200 else None
    check("WADO-URI transferSyntax=explicit VR LE of a lossy JPEG 2000 instance: decompressed, marked lossy",
          d is not None and d.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1" and
          d.LossyImageCompression == "01" and "ISO_15444_1" in d.LossyImageCompressionMethod and
          len(d.PixelData) == d.Rows * d.Columns * 2, r.status)

    r = get(inst_path(files["JPEG-lossy"]), explicit)
    ps = parts_of(r) if r.status == 200 else []
    d = pydicom.dcmread(io.BytesIO(ps[0][1])) if len(ps) == 1 else None
    ref = dcmdjpeg_pixels(files["JPEG-lossy"])
    check("a 12-bit JPEG instance asked in explicit VR LE: decompressed within 1 of dcmdjpeg, marked lossy",
          d is not None and d.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1" and
          d.LossyImageCompression == "01" and "ISO_10918_1" in d.LossyImageCompressionMethod and
          int(numpy.abs(d.pixel_array.astype(int) - ref.astype(int)).max()) <= 1, r.status)
    r = get(inst_path(files["j2k_part2"]), explicit)
    check("a JPEG 2000 Part 2 instance asked in explicit VR LE (no decoder): 406 saying what is decompressed",
          is_problem(r, 406) and b"(Baseline, Extended, Lossless), RLE, JPEG 2000 and JPEG-LS" in r.body,
          (r.status, r.body[:300]))
    r = get(inst_path(files["jpeg_bot"]), explicit)
    check("a JPEG instance whose frames do not decode, asked in explicit VR LE: 406 naming why",
          is_problem(r, 406) and b"cannot be decompressed" in r.body, (r.status, r.body[:300]))
    r = get(inst_path(files["JPEG2000"]), explicit)
    ps = parts_of(r) if r.status == 200 else []
    d = pydicom.dcmread(io.BytesIO(ps[0][1])) if len(ps) == 1 else None
    check("a JPEG 2000 instance asked in explicit VR LE: decompressed",
          d is not None and d.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1" and
          len(d.PixelData) == d.Rows * d.Columns * 2, r.status)
    r = get(inst_path(files["MR_small_jpeg_ls_lossless"]), explicit)
    ps = parts_of(r) if r.status == 200 else []
    d = pydicom.dcmread(io.BytesIO(ps[0][1])) if len(ps) == 1 else None
    check("a JPEG-LS lossless instance asked in explicit VR LE: MR_small's pixels, byte for byte",
          d is not None and d.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1" and
          d.PixelData == pydicom.dcmread(f"{TF}/MR_small.dcm").PixelData, r.status)
    r = get(inst_path(files["CT_small"]), explicit)
    check("a native explicit VR instance asked so: its stored bytes, with its length",
          r.status == 200 and parts_of(r)[0][1] == open(files["CT_small"], "rb").read() and
          r.h("content-length") != "", r.status)
    r = get(inst_path(files["jpeg_rgb"]), 'multipart/related; type="application/dicom"')
    check("the JPEG instance asked without transfer-syntax: its stored bytes",
          r.status == 200 and parts_of(r)[0][1] == open(files["jpeg_rgb"], "rb").read(), r.status)

    for lst, code, what in (("0", 400, "frame 0"), ("16", 404, "frame past the end"),
                            ("1,16", 404, "a list with one frame past the end"),
                            ("1000000", 404, "frame 1000000"), ("1,,2", 400, "empty item"),
                            ("1,a", 400, "garbage"), ("1,", 400, "trailing comma"), ("-1", 400, "negative"),
                            ("99999999999", 400, "over 32 bits"), (",".join(["1"] * 1025), 400, "1025 frames")):
        r = frames(files["rtdose"], lst)
        check(f"frames: {what}: {code}", is_problem(r, code), (r.status, r.body[:200]))
    r = frames(files["rtplan"], "1")
    check("frames of an instance without pixel data: 404", is_problem(r, 404), r.status)
    r = frames(files["bad_nframes"], "1")
    check("frames of an instance whose Number of Frames is not a number: 404 naming it (was 500)",
          is_problem(r, 404) and b"Number of Frames" in r.body, (r.status, r.body[:300]))
    r = get(inst_path(files["bad_nframes"]), 'multipart/related; type="application/dicom"')
    check("that instance itself: its stored bytes",
          r.status == 200 and parts_of(r)[0][1] == open(files["bad_nframes"], "rb").read(), r.status)
    r = get(f"/dicom-web/studies/{st_ct}/series/{se_ct}/instances/1.2.3.4/frames/1")
    check("frames of an unknown instance: 404", is_problem(r, 404), r.status)
    r = frames(files["rtdose"], ",".join(["1"] * 1024))
    check("1024 frames (the cap): 200, 1024 parts", r.status == 200 and len(parts_of(r)) == 1024, r.status)

    # ---- memory: a study far larger than 64 MB streams in bounded memory ----
    def rss():
        for line in open(f"/proc/{SRV.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0
    big_study, big_series = uid_prefixed(), uid_prefixed()
    big_files = []
    for k in range(12):
        ds = new_ds(big_study, big_series, 1, k + 1, rows=2048, cols=2048)   # 8 MiB each
        big_files.append(save(ds, f"big_{k}.dcm"))
    for k in range(0, 12, 3):
        r = stow(big_files[k:k + 3])
        if r.status != 200:
            break
    check("STOW of a 96 MiB study", r.status == 200, r.status)
    time.sleep(0.5)
    before = peak = rss()
    c = http.client.HTTPSConnection("127.0.0.1", PORT, context=CTX, timeout=300)
    c.request("GET", f"/dicom-web/studies/{big_study}", headers={"Authorization": f"Bearer {TOKEN}"})
    resp = c.getresponse()
    got = bytearray()
    while True:
        chunk = resp.read(1 << 20)   # slowly enough for the server to be mid-stream at each sample
        if not chunk:
            break
        got += chunk
        peak = max(peak, rss())
    c.close()
    rr = Resp(resp.status, {k.lower(): v for k, v in resp.getheaders()}, bytes(got))
    ps = parts_of(rr) if rr.status == 200 else []
    check("96 MiB study streamed whole, byte-identical",
          [b for _, b in ps] == [open(p, "rb").read() for p in big_files], (resp.status, len(got)))
    print(f"# server RSS {before >> 20} MiB before, {peak >> 20} MiB at most while streaming 96 MiB")
    check("server memory grew by less than 64 MB while streaming it", peak - before < 64 * 1024 * 1024,
          f"{before >> 20} MiB -> {peak >> 20} MiB")
    del got, ps, rr

    # ---- a large answer (its TLS records gathered into large writes, the
    # socket corked): keep-alive, a client that goes away, damage midway ----
    big_bytes = [open(p, "rb").read() for p in big_files]
    big_path = f"/dicom-web/studies/{big_study}"
    c = http.client.HTTPSConnection("127.0.0.1", PORT, context=CTX, timeout=300)
    whole = []
    for _ in range(2):
        c.request("GET", big_path, headers={"Authorization": f"Bearer {TOKEN}"})
        resp = c.getresponse()
        body = resp.read()
        whole.append(resp.status == 200 and [b for _, b in parts_of(Resp(200, {k.lower(): v for k, v in
                                                                               resp.getheaders()}, body))] == big_bytes)
    c.request("GET", "/healthz")
    resp = c.getresponse()
    resp.read()
    check("two 96 MiB answers and a small one on one kept-alive connection, each whole",
          whole == [True, True] and resp.status == 200, (whole, resp.status))
    c.close()

    # a client that reads 10 MB and goes away: the server keeps serving
    # (the sanitizer check at the end covers leaks of the abandoned answer)
    raw = CTX.wrap_socket(socket.create_connection(("127.0.0.1", PORT)), server_hostname="127.0.0.1")
    raw.sendall(f"GET {big_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
    n = 0
    while n < 10 << 20:
        k = raw.recv(1 << 20)
        if not k:
            break
        n += len(k)
    raw.close()
    time.sleep(0.5)
    r = get(big_path)
    check("a client gone after 10 MB of 96: the next answer is whole, the server alive",
          n >= 10 << 20 and r.status == 200 and r.complete and [b for _, b in parts_of(r)] == big_bytes and
          SRV.poll() is None, (n, r.status, r.complete))

    # one byte of the first chunk of the 6th of 12 objects flipped: the
    # answer stops there, and the last bytes of the 5th part (still in the
    # gathered TLS writes when the damage is found) are sent before it ends
    vsop6 = uids(big_files[5])[2]
    key6 = sqlite3.connect(f"{T}/v/index.db").execute("select object_key from instances where uid=?",
                                                      (vsop6,)).fetchone()[0]
    obj6 = f"{T}/v/objects/{key6[0:2]}/{key6[2:4]}/{key6}"
    at6 = 100   # past the 44-byte object header: in chunk 0's ciphertext
    with open(obj6, "r+b") as f:
        f.seek(at6)
        b6 = f.read(1)
        f.seek(at6)
        f.write(bytes([b6[0] ^ 0x10]))
    n_audit = len(audit_lines())
    r = get(big_path)
    check("large answer, 6th object damaged: cut short after the 5 whole parts before it, nothing of the 6th",
          r.status == 200 and not r.complete and all(x in r.body for x in big_bytes[:5]) and
          big_bytes[5][:4096] not in r.body and len(r.body) < sum(len(x) for x in big_bytes[:5]) + 4096,
          (r.status, r.complete, len(r.body)))
    time.sleep(0.3)
    recs = audit_lines()[n_audit:]
    check("large answer, 6th object damaged: audited as an integrity failure naming it",
          any(x.get("action") == "integrity-failure" and x.get("outcome") == "failure" and rec_has(x, vsop6)
              for x in recs),
          recs[-2:])
    with open(obj6, "r+b") as f:
        f.seek(at6)
        f.write(b6)
    r = get(big_path)
    check("repaired: the large answer is whole again", r.status == 200 and r.complete and
          [b for _, b in parts_of(r)] == big_bytes, (r.status, r.complete))
    del big_bytes, r
    for p in big_files:
        os.unlink(p)

    # ---- tampering: a damaged object cuts the study answer short ----
    victim = order[2]   # third part of the study answer
    vsop = uids(victim)[2]
    key = sqlite3.connect(f"{T}/v/index.db").execute("select object_key from instances where uid=?",
                                                     (vsop,)).fetchone()[0]
    obj = f"{T}/v/objects/{key[0:2]}/{key[2:4]}/{key}"
    size = os.path.getsize(obj)
    with open(obj, "r+b") as f:
        f.seek(size // 2)
        b = f.read(1)
        f.seek(size // 2)
        f.write(bytes([b[0] ^ 1]))
    n_audit = len(audit_lines())
    r = get(f"/dicom-web/studies/{study}")
    first_two = open(order[0], "rb").read() + open(order[1], "rb").read()
    check("tampered instance: the study answer is cut short", r.status == 200 and not r.complete,
          (r.status, r.complete, len(r.body)))
    check("tampered instance: the parts before it were sent whole, the damaged one not",
          len(r.body) < sum(os.path.getsize(p) for p in order[:3]) + 600 and
          open(order[0], "rb").read() in r.body and open(order[1], "rb").read() in r.body and
          open(victim, "rb").read() not in r.body, len(r.body))
    time.sleep(0.3)
    recs = audit_lines()[n_audit:]
    check("tampered instance: audited as an integrity failure naming it",
          any(x.get("action") == "integrity-failure" and x.get("outcome") == "failure" and rec_has(x, vsop)
              for x in recs),
          recs[-2:])
    r = get(f"/dicom-web/studies/{study}/series/{se_a}")
    check("the other series of the study is still served", r.status == 200 and r.complete and len(parts_of(r)) == 3)
    r = get(inst_path(victim, "/metadata"))
    # the flipped byte is in the pixel data: metadata reads only the header chunks
    check("metadata of the tampered instance does not need the damaged chunk", r.status == 200, r.status)
    r = get(inst_path(victim, "/frames/1"))
    check("frames of the tampered instance: 500 or cut short, never the damaged bytes",
          (r.status == 500) or (r.status == 200 and not r.complete), (r.status, r.complete))
    r = request("GET", "/healthz", auth=False)
    check("the server keeps serving", r.status == 200 and SRV.poll() is None)
    with open(obj, "r+b") as f:
        f.seek(size // 2)
        f.write(b)
    r = get(inst_path(victim, "/frames/1"))
    check("the repaired object's frame is served again", r.status == 200 and r.complete, r.status)

    # a damaged implicit VR instance asked in explicit VR LE: parsed for
    # re-encoding, its damage is an integrity failure (500), not a 406
    ikey = sqlite3.connect(f"{T}/v/index.db").execute("select object_key from instances where uid=?",
                                                     (uids(files["mr_implicit"])[2],)).fetchone()[0]
    iobj = f"{T}/v/objects/{ikey[0:2]}/{ikey[2:4]}/{ikey}"
    with open(iobj, "r+b") as f:
        f.seek(200)
        ib = f.read(1)
        f.seek(200)
        f.write(bytes([ib[0] ^ 1]))
    r = get(inst_path(files["mr_implicit"]), explicit)
    check("a damaged instance asked re-encoded: 500 naming the integrity check, not 406",
          is_problem(r, 500) and b"integrity" in r.body, (r.status, r.body[:200]))
    with open(iobj, "r+b") as f:
        f.seek(200)
        f.write(ib)

    # cut at a chunk boundary: every remaining chunk authenticates, but the
    # length no longer matches the index
    whole = open(obj, "rb").read()
    with open(obj, "r+b") as f:
        f.truncate(size - (65536 + 16))
    r = get(inst_path(victim, "/metadata"))
    check("object cut by one whole chunk: metadata refused (500, integrity)",
          is_problem(r, 500) and b"integrity" in r.body, (r.status, r.body[:200]))
    with open(obj, "wb") as f:
        f.write(whole)

    # damage in the first chunk (the header): metadata cannot be made
    v2 = order[3]   # the first instance of the series numbered 2
    key2 = sqlite3.connect(f"{T}/v/index.db").execute("select object_key from instances where uid=?",
                                                      (uids(v2)[2],)).fetchone()[0]
    obj2 = f"{T}/v/objects/{key2[0:2]}/{key2[2:4]}/{key2}"
    whole2 = open(obj2, "rb").read()
    with open(obj2, "r+b") as f:
        f.seek(200)
        f.write(bytes([whole2[200] ^ 0x40]))
    n_audit = len(audit_lines())
    r = get(f"/dicom-web/studies/{study}/series/{se_a}/metadata")
    check("header chunk damaged: the series metadata (it comes first) is 500, integrity",
          is_problem(r, 500) and b"integrity" in r.body, (r.status, r.body[:200]))
    r = get(f"/dicom-web/studies/{study}/metadata")
    check("header chunk damaged: the study metadata (4th object) is cut short",
          r.status == 200 and not r.complete and uids(order[2])[2].encode() in r.body and
          uids(v2)[2].encode() not in r.body, (r.status, r.complete, len(r.body)))
    time.sleep(0.3)
    recs = audit_lines()[n_audit:]
    check("header chunk damaged: both failures audited as integrity failures",
          sum(1 for x in recs if x.get("action") == "integrity-failure" and x.get("outcome") == "failure" and
              rec_has(x, "integrity") and rec_has(x, uids(v2)[2])) == 2, recs)
    with open(obj2, "wb") as f:
        f.write(whole2)

    # ---- audit ----
    recs = audit_lines()
    st_recs = [x for x in recs if x.get("action") == "retrieve" and x.get("outcome") == "success"
               and rec_has(x, study) and not rec_has(x, "00080018")]
    check("audit: study retrievals are retrieve records naming the study, with counts",
          any(rec_has(x, study) and rec_has(x, '"instances": 6') for x in st_recs) or
          any(rec_has(x, study) and rec_has(x, '"instances":6') for x in st_recs), st_recs[:1])
    fr_recs = [x for x in recs if x.get("action") == "retrieve" and rec_has(x, uids(files["rtdose"])[2])]
    check("audit: frames requests are retrieve records naming the instance", len(fr_recs) >= 3, len(fr_recs))
    # a client that asks for the large study and reads nothing: the server
    # blocks in that answer's writes, serves others, and still stops at once
    stalled = CTX.wrap_socket(socket.create_connection(("127.0.0.1", PORT)), server_hostname="127.0.0.1")
    stalled.sendall(f"GET {big_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
    stalled.recv(100)
    time.sleep(1)
    r = request("GET", "/healthz", auth=False)
    check("a client that stopped reading a large answer: the others are served", r.status == 200, r.status)
    t0 = time.time()
    SRV.terminate()
    try:
        SRV.wait(20)
    except subprocess.TimeoutExpired:
        SRV.kill()
        SRV.wait()
    check("... and the server stops at once on SIGTERM", time.time() - t0 < 10, time.time() - t0)
    stalled.close()
    p = subprocess.run([DV, "audit", "verify", "--vault", f"{T}/v"], capture_output=True)
    check("audit verify passes", p.returncode == 0, p.stderr)
    err = open(f"{T}/err").read()
    check("no sanitizer report in the server's log", "Sanitizer" not in err and "runtime error" not in err,
          err[-800:])
    check("no token in the server log", TOKEN not in err)


if __name__ == "__main__":
    TAP.run(main, cleanup)
