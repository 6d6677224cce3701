#!/usr/bin/python3
"""stow_client.py: the STOW-RS client of tests/integration/crash.sh.

Usage: stow_client.py URL CAFILE TOKEN TEMPLATE OUTDIR [PARTS]

Sends distinct instances made from TEMPLATE (a new SOP Instance UID each,
one new study and series per run), PARTS (default 1) per request, over one
keep-alive TLS 1.3 connection, until the server goes away. Before a
request each file is written to OUTDIR/files/UID.dcm and "send UID"
appended to OUTDIR/log; as soon as a 200 answer lists the UIDs in
ReferencedSOPSequence, "ack UID STUDY SERIES" is appended for each and
fsync'd. Exits 0 when the connection breaks (the expected end), 1 on an
unexpected answer."""
import http.client
import io
import json
import os
import ssl
import sys
import uuid

import pydicom

url, cafile, token, template, outdir = sys.argv[1:6]
nparts = int(sys.argv[6]) if len(sys.argv) > 6 else 1
host, port = url.split("//", 1)[1].rstrip("/").rsplit(":", 1)
ctx = ssl.create_default_context(cafile=cafile)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
os.makedirs(os.path.join(outdir, "files"), exist_ok=True)
log = open(os.path.join(outdir, "log"), "a")

ds = pydicom.dcmread(template)
study = "2.25.%d" % uuid.uuid4().int
series = "2.25.%d" % uuid.uuid4().int
ds.StudyInstanceUID = study
ds.SeriesInstanceUID = series
B = b"crashBoundary"


def note(line):
    log.write(line + "\n")
    log.flush()
    os.fsync(log.fileno())


conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=30)
i = 0
while True:
    sops, body = [], b""
    for _ in range(nparts):
        i += 1
        sop = "2.25.%d" % uuid.uuid4().int
        ds.SOPInstanceUID = sop
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.InstanceNumber = i
        buf = io.BytesIO()
        ds.save_as(buf, write_like_original=False)
        data = buf.getvalue()
        with open(os.path.join(outdir, "files", sop + ".dcm"), "wb") as f:
            f.write(data)
        body += b"--" + B + b"\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n"
        sops.append(sop)
    body += b"--" + B + b"--\r\n"
    for sop in sops:
        note("send %s %s %s" % (sop, study, series))
    try:
        conn.request("POST", "/dicom-web/studies", body=body, headers={
            "Authorization": "Bearer " + token,
            "Content-Type": 'multipart/related; type="application/dicom"; boundary=crashBoundary',
            "Accept": "application/dicom+json"})
        r = conn.getresponse()
        answer = r.read()
    except (OSError, http.client.HTTPException):
        sys.exit(0)   # the server was killed
    if r.status != 200:
        print("# unexpected answer %d: %s" % (r.status, answer[:200]), file=sys.stderr)
        sys.exit(1)
    refs = json.loads(answer).get("00081199", {}).get("Value", [])
    listed = set(x.get("00081155", {}).get("Value", [None])[0] for x in refs)
    if any(sop not in listed for sop in sops):
        print("# 200 without every instance in ReferencedSOPSequence", file=sys.stderr)
        sys.exit(1)
    for sop in sops:
        note("ack %s %s %s" % (sop, study, series))
