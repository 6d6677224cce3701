#!/usr/bin/python3
"""Access control against the real server, generated from docs/ACCESS.md:
for each role x endpoint x (inside, outside the granted collection) the
expected status is derived from the permission matrix in the document (not
written here), then requested with a user of that role whose only grant is
on the collection "onco". Objects outside one's grants answer 404, also in
QIDO (left out of the results) and in metadata and frames sub-resources;
inside them a role without the right gets 403. Then: grants that expire
(refused within a second of expiry), revoked grants, disabled and expired
accounts, break-glass (reason required, roles allowed, time-boxed, flagged
in the audit), CSRF on cookie-authenticated requests, the administration
API, and one audit record per refusal. Prints "ok - NAME" / "not ok - NAME"."""
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
import warnings

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from dvserver import Vault, USER_PASSWORD  # noqa: E402

warnings.simplefilter("ignore")
DV = os.path.abspath(sys.argv[1])
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok - access: {name}")
    else:
        failed += 1
        print(f"not ok - access: {name}" + (f": {str(detail)[:300]}" if detail else ""))


def matrix():
    """{action: {role: yes|no|deid}} from docs/ACCESS.md."""
    text = open(os.path.join(ROOT, "docs", "ACCESS.md")).read()
    body = text.split("<!-- access-matrix:begin -->")[1].split("<!-- access-matrix:end -->")[0]
    rows = [[c.strip() for c in l.strip().strip("|").split("|")] for l in body.splitlines() if l.startswith("|")]
    head = rows[0][1:]
    out = {}
    for r in rows[2:]:
        out[r[0]] = dict(zip(head, r[1:]))
    return out


def image(dept, study=None, series=None, frames=1):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.StudyInstanceUID = study or generate_uid()
    ds.SeriesInstanceUID = series or generate_uid()
    ds.PatientName = "Matrix^" + dept
    ds.PatientID = "MX-" + dept
    ds.Modality = "OT"
    ds.InstitutionalDepartmentName = dept
    ds.Rows, ds.Columns = 4, 4
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = frames
    ds.PixelData = bytes(range(16)) * frames
    b = io.BytesIO()
    ds.save_as(b, write_like_original=False)
    return ds, b.getvalue()


def stow_body(files):
    b = uuid.uuid4().hex
    body = b"".join(b"--" + b.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + f + b"\r\n" for f in files)
    return body + b"--" + b.encode() + b"--\r\n", f'multipart/related; type="application/dicom"; boundary={b}'


def as_user(v, token, method, path, body=None, headers=None):
    h = dict(headers or {})
    h["Authorization"] = "Bearer " + token
    c = v.conn()
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def login(v, user, pw, secret):
    code = subprocess.run(["oathtool", "--totp", "-b", secret], capture_output=True, text=True).stdout.strip()
    st, _, body = v.request("POST", "/api/auth/login", json.dumps({"username": user, "password": pw, "totp": code}),
                            {"Content-Type": "application/json"}, auth=False)
    return json.loads(body)["token"] if st == 200 else None


def cli(*args):
    return subprocess.run([DV] + list(args), capture_output=True, text=True)


def problem_detail(data):
    try:
        return json.loads(data).get("detail", "")
    except ValueError:
        return ""


def scope_said(data):
    """A 403 for a role that allows the action, without a grant of scope *."""
    d = problem_detail(data)
    return "scope *" in d and "your role does not allow" not in d


def role_said(data):
    return "your role does not allow" in problem_detail(data)


def audit_records(v):
    p = cli("audit", "export", "--vault", v.dir)
    return [json.loads(l) for l in p.stdout.splitlines() if l.strip()]


if shutil.which("oathtool") is None:
    print("# SKIP access: no oathtool")
    sys.exit(0)
M = matrix()
ROLES = ["admin", "radiologist", "physician", "technologist", "researcher", "auditor"]
T = tempfile.mkdtemp(prefix="dv_access.")
try:
    v = Vault(DV, T)
    v.conf('\n[collection "onco"]\nmatch = InstitutionalDepartmentName=Onco*\n')
    # a break-glass grant lives [auth] break_glass_minutes (not the default 60)
    conf_path = os.path.join(v.dir, "dicomvault.conf")
    conf_text = open(conf_path).read()
    open(conf_path, "w").write(conf_text.replace("lockout_window = 900\n",
                                                 "lockout_window = 900\nbreak_glass_minutes = 45\n"))
    users = {}
    for role in ROLES:
        added, users[role], err = v.add_user("u_" + role, role, "--collection", "onco")
        check(f"user add ({role})", added, err)
    # manage-users and read-audit are the whole vault's: only a grant of
    # scope "*" gives them (docs/ACCESS.md); these users hold one
    WIDE = [r for r in ROLES if M["manage-users"][r] == "yes" or M["read-audit"][r] == "yes"]
    wide_secret = {}
    for role in WIDE:
        added, wide_secret[role], err = v.add_user("w_" + role, role, "--scope", "*")
        check(f"user add ({role}, scope *)", added, err)
    v.serve()
    v.login()   # the first admin: a grant on everything
    onco_ds, onco = image("Oncology", frames=2)
    card_ds, card = image("Cardiology", frames=2)
    st, ans = v.stow([onco, card])
    check("admin stores one study per collection", st == 200, ans)
    tokens = {}
    for i, role in enumerate(ROLES):
        # each TOTP code works once: users log in one after the other
        tokens[role] = login(v, "u_" + role, USER_PASSWORD, users[role])
        check(f"login ({role})", tokens[role] is not None)
    wide = {}
    for role in WIDE:
        wide[role] = login(v, "w_" + role, USER_PASSWORD, wide_secret[role])
        check(f"login ({role}, scope *)", wide[role] is not None)
    inside, outside = onco_ds, card_ds

    def expect(action, role, where):
        cell = M[action][role]
        if where == "inside":
            return cell
        return "outside"

    seq_before = audit_records(v)[-1]["seq"]
    refusals = 0
    for role in ROLES:
        tok = tokens[role]
        if tok is None:
            continue
        for where, ds in (("inside", inside), ("outside", outside)):
            # query
            st, data = as_user(v, tok, "GET", f"/dicom-web/studies?StudyInstanceUID={ds.StudyInstanceUID}",
                               headers={"Accept": "application/dicom+json"})
            cell = M["query"][role]
            if cell == "yes":
                n = len(json.loads(data)) if st == 200 else -1
                want = 1 if where == "inside" else 0
                check(f"query {role} {where}: 200 with {want} result(s)", st == 200 and n == want, (st, data[:200]))
            elif cell == "deid":
                # a real UID is not a key of a de-identified view: nothing matches
                n = len(json.loads(data)) if st == 200 else -1
                check(f"query {role} {where} by the real UID: 200 with nothing (de-identified view)",
                      st == 200 and n == 0, (st, data[:200]))
            else:
                check(f"query {role} {where}: 403", st == 403, st)
                refusals += 1
            # retrieval and its sub-resources
            base = f"/dicom-web/studies/{ds.StudyInstanceUID}"
            for what, path, acc in (
                    ("metadata", base + "/metadata", "application/dicom+json"),
                    ("study", base, 'multipart/related; type="application/dicom"'),
                    ("frames", f"{base}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}/frames/1",
                     "multipart/related; type=\"application/octet-stream\""),
                    ("wado-uri", f"/wado?requestType=WADO&studyUID={ds.StudyInstanceUID}&seriesUID="
                                 f"{ds.SeriesInstanceUID}&objectUID={ds.SOPInstanceUID}&contentType=application/dicom",
                     "application/dicom")):
                st, data = as_user(v, tok, "GET", path, headers={"Accept": acc})
                cell = M["retrieve-original"][role]
                if where == "outside":
                    want = 404
                else:
                    want = 200 if cell == "yes" else 403
                if want != 200:
                    refusals += 1
                check(f"retrieve {what} {role} {where}: {want}", st == want, (st, data[:120]))
            # store (a new instance of the study)
            new_ds, new = image("Oncology" if where == "inside" else "Cardiology", ds.StudyInstanceUID)
            body, ctype = stow_body([new])
            st, data = as_user(v, tok, "POST", "/dicom-web/studies", body,
                               {"Content-Type": ctype, "Accept": "application/dicom+json"})
            cell = M["store"][role]
            if cell != "yes":
                want = 403
            else:
                want = 200 if where == "inside" else 409
            if want != 200:
                refusals += 1
            check(f"store {role} {where}: {want}", st == want, (st, data[:200]))
            if want == 409:
                fr = json.loads(data).get("00081198", {}).get("Value", [{}])[0].get("00081197", {}).get("Value", [0])[0]
                check(f"store {role} {where}: Failure Reason 0124H (not authorized)", fr == 0x0124, fr)
        # administration: the vault's, out of reach of a grant on one
        # collection whatever the role
        st, data = as_user(v, tok, "GET", "/api/users")
        refusals += 1
        check(f"manage-users {role} (a grant on one collection): GET /api/users 403", st == 403, st)
        check(f"manage-users {role}: the 403 says why, truly (the role, or the scope * it needs)",
              scope_said(data) if M["manage-users"][role] == "yes" else role_said(data), data[:200])
    for role in WIDE:
        if wide[role] is None:
            continue
        st, data = as_user(v, wide[role], "GET", "/api/users")
        want = 200 if M["manage-users"][role] == "yes" else 403
        if want != 200:
            refusals += 1
        check(f"manage-users {role} (scope *): GET /api/users {want}", st == want, st)
    if tokens["admin"] is not None:
        # what a collection's admin tried: granting itself the whole vault
        st, data = as_user(v, tokens["admin"], "POST", "/api/grants",
                           json.dumps({"username": "u_admin", "role": "admin", "scope": "*"}),
                           {"Content-Type": "application/json"})
        refusals += 1
        check("an admin of one collection cannot grant itself '*': 403", st == 403, (st, data[:120]))
    # a refusal by policy is outcome denied (docs/internals/audit.md), as
    # over DIMSE: it was failure over HTTP, which says the operation failed
    new_recs = [r for r in audit_records(v) if r["seq"] > seq_before and r.get("type") == "event"]
    denied = [r for r in new_recs if r["outcome"] == "denied"]
    check("every refusal left an audit record, outcome denied", len(denied) >= refusals, (len(denied), refusals))
    check("... and none of them is outcome failure",
          not [r for r in new_recs if r["outcome"] == "failure"],
          [(r["action"], r.get("reason")) for r in new_recs if r["outcome"] == "failure"][:5])

    # de-identified views (the roles whose query cell is deid)
    for role in [r for r in ROLES if M["query"][r] == "deid" and tokens[r]]:
        tok = tokens[role]
        st, data = as_user(v, tok, "GET", "/dicom-web/studies?includefield=PatientName&includefield=PatientID",
                           headers={"Accept": "application/dicom+json"})
        res = json.loads(data) if st == 200 else []
        check(f"deid view {role}: QIDO answers the granted collection only (1 study)", st == 200 and len(res) == 1,
              (st, data[:300]))
        if len(res) != 1:
            continue
        r0 = res[0]
        pst = r0.get("0020000D", {}).get("Value", [""])[0]
        pname = json.dumps(r0.get("00100010", {}))
        pid = json.dumps(r0.get("00100020", {}))
        check(f"deid view {role}: pseudonymous Study Instance UID (2.25.)",
              pst.startswith("2.25.") and pst != inside.StudyInstanceUID, pst)
        check(f"deid view {role}: no patient name or ID of the original", "Matrix" not in pname and
              "MX-Oncology" not in pid, (pname, pid))
        url = r0.get("00081190", {}).get("Value", [""])[0]
        check(f"deid view {role}: RetrieveURL names the pseudonym", url.endswith("/studies/" + pst), url)
        st, data = as_user(v, tok, "GET", f"/dicom-web/studies/{pst}",
                           headers={"Accept": 'multipart/related; type="application/dicom"'})
        parts = [p for p in re.split(rb"--[0-9a-zA-Z_]+", data) if b"application/dicom" in p[:200]]
        dsets = []
        for part in parts:
            body = part.split(b"\r\n\r\n", 1)[1].rstrip(b"\r\n") if b"\r\n\r\n" in part else b""
            try:
                dsets.append(pydicom.dcmread(io.BytesIO(body)))
            except Exception:   # noqa: BLE001
                pass
        check(f"deid view {role}: the study retrieves de-identified ({len(dsets)} instance(s))",
              st == 200 and len(dsets) >= 1 and all(str(d.get("PatientName", "")) != str(inside.PatientName) and
                                                    d.get("PatientIdentityRemoved") == "YES" and
                                                    d.StudyInstanceUID == pst for d in dsets), (st, len(dsets)))
        check(f"deid view {role}: pixel data kept", dsets and dsets[0].PixelData[:16] == bytes(range(16)))
        st, data = as_user(v, tok, "GET", f"/dicom-web/studies/{pst}/metadata",
                           headers={"Accept": "application/dicom+json"})
        check(f"deid view {role}: metadata de-identified, no bulk data",
              st == 200 and b"Matrix" not in data and b"7FE00010" not in data and pst.encode() in data, (st, data[:200]))
        st, _ = as_user(v, tok, "GET", f"/dicom-web/studies/{inside.StudyInstanceUID}/metadata",
                        headers={"Accept": "application/dicom+json"})
        check(f"deid view {role}: the original UID still refused (403)", st == 403, st)
        if role == "researcher":
            # a damaged object under the view's metadata: 500, and both the
            # retrieve failure and the integrity failure are audited
            db = sqlite3.connect(os.path.join(v.dir, "index.db"))
            keys = [r[0] for r in db.execute("select i.object_key from instances i join series s on s.id = "
                                             "i.series_id join studies t on t.id = s.study_id where t.uid = ?",
                                             (inside.StudyInstanceUID,))]
            db.close()
            obj = os.path.join(v.dir, "objects", keys[0][:2], keys[0][2:4], keys[0]) if keys else ""
            if obj and os.path.exists(obj):
                with open(obj, "r+b") as f:
                    f.seek(100)
                    b = f.read(1)
                    f.seek(100)
                    f.write(bytes([b[0] ^ 1]))
                before = cli("audit", "export", "--vault", v.dir).stdout.splitlines()
                st, data = as_user(v, tok, "GET", f"/dicom-web/studies/{pst}/metadata",
                                   headers={"Accept": "application/dicom+json"})
                time.sleep(0.3)
                new_recs = cli("audit", "export", "--vault", v.dir).stdout.splitlines()[len(before):]
                with open(obj, "r+b") as f:
                    f.seek(100)
                    f.write(b)
                check("deid view: a damaged object's metadata is 500, naming the integrity check",
                      st == 500 and b"integrity" in data, (st, data[:200]))
                check("deid view: audited as a failed retrieve and as an integrity failure",
                      any('"action":"retrieve","outcome":"failure"' in x and "integrity check failed" in x
                          for x in new_recs) and
                      any('"action":"integrity-failure","outcome":"failure"' in x for x in new_recs), new_recs)
                st, _ = as_user(v, tok, "GET", f"/dicom-web/studies/{pst}/metadata",
                                headers={"Accept": "application/dicom+json"})
                check("deid view: the byte restored, the metadata is served again", st == 200, st)
            else:
                check("deid view: the object of the study found", False, keys)
        st, data = as_user(v, tok, "GET", f"/dicom-web/studies?PatientName=Matrix*",
                           headers={"Accept": "application/dicom+json"})
        check(f"deid view {role}: matching on a name is refused (400)", st == 400, st)
        st, data = as_user(v, tok, "GET", f"/dicom-web/studies?StudyInstanceUID={pst}",
                           headers={"Accept": "application/dicom+json"})
        check(f"deid view {role}: query by the pseudonym finds it",
              st == 200 and len(json.loads(data)) == 1, (st, data[:200]))
        many = "%5C".join(["1.%d" % i for i in range(1000)])   # short pseudonyms, each mapped to a long UID
        st, _ = as_user(v, tok, "GET", f"/dicom-web/studies?StudyInstanceUID={many}",
                        headers={"Accept": "application/dicom+json"})
        check(f"deid view {role}: 1000 UIDs in one key: 400, the server serving on", st == 400, st)
        st, _ = as_user(v, tok, "GET", "/dicom-web/studies/2.25.1234567/metadata",
                        headers={"Accept": "application/dicom+json"})
        check(f"deid view {role}: an unknown pseudonym is 404", st == 404, st)

    # break-glass: the outside study, by each role; the longest reason allowed (200 bytes)
    LONG_REASON = ("patient unconscious in ER, no consent possible; " * 5)[:200]
    for role in ROLES:
        tok = tokens[role]
        if tok is None:
            continue
        st, data = as_user(v, tok, "POST", "/api/auth/break-glass", json.dumps({"study": outside.StudyInstanceUID}),
                           {"Content-Type": "application/json"})
        check(f"break-glass without a reason ({role}): 400", st == 400, st)
        st, data = as_user(v, tok, "POST", "/api/auth/break-glass",
                           json.dumps({"study": outside.StudyInstanceUID, "reason": "patient unconscious",
                                       "minutes": 6000}), {"Content-Type": "application/json"})
        check(f"break-glass with an unknown member ({role}): 400 naming the allowed ones",
              st == 400 and b"only study and reason are allowed" in data, (st, data[:200]))
        st, data = as_user(v, tok, "POST", "/api/auth/break-glass",
                           json.dumps({"study": outside.StudyInstanceUID, "reason": LONG_REASON}),
                           {"Content-Type": "application/json", "User-Agent": "ED-workstation-" + role})
        want = 200 if M["break-glass"][role] == "yes" else 403
        check(f"break-glass {role}: {want}", st == want, (st, data[:200]))
        if st == 200:
            check(f"break-glass {role}: for [auth] break_glass_minutes (45)", json.loads(data)["expires_in"] == 2700,
                  data[:200])
        st2, _ = as_user(v, tok, "GET", f"/dicom-web/studies/{outside.StudyInstanceUID}/metadata",
                         headers={"Accept": "application/dicom+json"})
        if want == 200:
            check(f"break-glass {role}: the outside study opens", st2 == 200, st2)
        elif M["retrieve-original"][role] != "yes":
            check(f"break-glass {role}: still closed", st2 in (403, 404), st2)
    # the refusals are audited with their reason, and never with the body's bytes
    p = cli("audit", "export", "--vault", v.dir)
    refusals = [json.loads(l) for l in p.stdout.splitlines() if '"break-glass"' in l and '"failure"' in l]
    check("break-glass refusals audited with the parser's reason",
          any("refused: unexpected member: only study and reason are allowed" in json.dumps(r) for r in refusals) and
          any('refused: member \\"reason\\": missing' in json.dumps(r) for r in refusals), refusals[-3:])
    role_refused = [json.loads(l) for l in p.stdout.splitlines() if "role not allowed to break the glass" in l]
    check("a break-glass refused to the role: outcome denied (a policy refusal; a bad body stays failure)",
          len(role_refused) == sum(1 for r in ROLES if tokens[r] and M["break-glass"][r] != "yes") and
          all(r["outcome"] == "denied" for r in role_refused), [r["outcome"] for r in role_refused])
    check("... and without the body's bytes (the unknown member's name)", '"minutes"' not in p.stdout and
          "minutes" not in "".join(json.dumps(r) for r in refusals))
    p = cli("user", "grants", "--vault", v.dir, "--json")
    bg = [g for g in json.loads(p.stdout) if g["break_glass"]] if p.returncode == 0 else []
    check("break-glass grants are flagged and time-boxed (45 min)", len(bg) == sum(
        1 for r in ROLES if M["break-glass"][r] == "yes") and all(g["expires"] != "-" for g in bg), bg)
    check("break-glass grants keep the whole reason as their purpose", bg and all(g["purpose"] == LONG_REASON
                                                                                  for g in bg), bg)
    p = cli("audit", "export", "--vault", v.dir)
    check("break-glass is in the audit trail", '"action":"break-glass"' in p.stdout)
    # its record is what a review reads (audit report --break-glass): the
    # reason the clinician gave, whole, and the actor of SPEC section 8,
    # with the session of the user's other records and the user agent (the
    # reason was only in the grants table, outside the chain, and the
    # actor had neither)
    recs = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    for role in [r for r in ROLES if M["break-glass"][r] == "yes" and tokens[r]]:
        bgr = [r for r in recs if r.get("action") == "break-glass" and r["outcome"] == "success" and
               r["actor"].get("user") == "u_" + role]
        later = [r for r in recs if r.get("action") == "retrieve" and r["actor"].get("user") == "u_" + role]
        a = bgr[0]["actor"] if len(bgr) == 1 else {}
        check(f"break-glass {role}: its record holds the reason given, whole",
              len(bgr) == 1 and LONG_REASON in bgr[0].get("reason", ""), bgr)
        check(f"break-glass {role}: its record's actor has the session of the user's other records",
              a.get("session") and later and all(r["actor"].get("session") == a["session"] for r in later),
              (a, [r["actor"] for r in later][:2]))
        check(f"break-glass {role}: its record's actor has the user agent",
              a.get("ua") == "ED-workstation-" + role and a.get("role") and a.get("addr"), a)
    p = cli("audit", "report", "--vault", v.dir, "--break-glass")
    check("audit report --break-glass (text) shows the reasons",
          p.returncode == 0 and p.stdout.count(LONG_REASON) == sum(
              1 for r in ROLES if M["break-glass"][r] == "yes" and tokens[r]), p.stdout[-400:])

    # grants that expire and are revoked, with a fresh physician
    _, sec, _ = v.add_user("consultant", "physician", "--scope", "study:" + outside.StudyInstanceUID)
    time.sleep(1)
    tok = login(v, "consultant", USER_PASSWORD, sec)
    path = f"/dicom-web/studies/{outside.StudyInstanceUID}/metadata"
    st, _ = as_user(v, tok, "GET", path, headers={"Accept": "application/dicom+json"})
    check("a study grant opens that study", st == 200, st)
    st, _ = as_user(v, tok, "GET", f"/dicom-web/studies/{inside.StudyInstanceUID}/metadata",
                    headers={"Accept": "application/dicom+json"})
    check("... and no other (404)", st == 404, st)
    p = cli("user", "grants", "consultant", "--vault", v.dir, "--json")
    gid = json.loads(p.stdout)[0]["id"]
    p = cli("user", "revoke", str(gid), "--vault", v.dir)
    st, _ = as_user(v, tok, "GET", path, headers={"Accept": "application/dicom+json"})
    check("a revoked grant stops at once (404)", p.returncode == 0 and st == 404, (p.stderr, st))
    # its record names the study and the study's patient, as a grant's
    # does: the accounting by patient shows the access taken away too
    p = cli("audit", "report", "--vault", v.dir, "--patient", outside.PatientID, "--action", "grant", "--json")
    rv = [r for r in (json.loads(l) for l in p.stdout.splitlines() if l.strip())
          if r.get("reason") == f"revoke grant {gid}"]
    check("the revocation is in the accounting of the study's patient, naming the study",
          p.returncode == 0 and len(rv) == 1 and rv[0]["objects"].get("study") == outside.StudyInstanceUID and
          len(rv[0]["objects"].get("patient", "")) == 64, p.stdout[-400:] + p.stderr[-200:])
    p = cli("user", "grant", "consultant", "--role", "physician", "--study", outside.StudyInstanceUID, "--expires",
            "+3s", "--vault", v.dir)
    st, _ = as_user(v, tok, "GET", path, headers={"Accept": "application/dicom+json"})
    check("a grant until now+3s works before", st == 200, st)
    end = time.time() + 3
    time.sleep(max(0, end - time.time()) + 1.0)
    st, _ = as_user(v, tok, "GET", path, headers={"Accept": "application/dicom+json"})
    check("... and is refused within a second of its expiry", st == 404, st)
    p = cli("user", "disable", "consultant", "--vault", v.dir)
    st, _ = as_user(v, tok, "GET", "/api/auth/whoami")
    check("a disabled account: its session ends (401)", st == 401, st)

    # CSRF: state-changing requests by cookie need our origin
    c = v.conn()
    cookie = "__Host-dv_session=" + tokens["admin"] if tokens["admin"] else ""
    body, ctype = stow_body([image("Oncology")[1]])
    for origin, want in (("https://evil.example", 403), (f"https://127.0.0.1:{v.port}", 200)):
        c = v.conn()
        c.request("POST", "/dicom-web/studies", body=body, headers={"Cookie": cookie, "Content-Type": ctype,
                                                                     "Origin": origin})
        r = c.getresponse()
        r.read()
        c.close()
        check(f"cookie POST with Origin {origin}: {want}", r.status == want, r.status)
    c = v.conn()
    c.request("POST", "/dicom-web/studies", body=body, headers={"Cookie": cookie, "Content-Type": ctype})
    r = c.getresponse()
    r.read()
    c.close()
    check("cookie POST without Origin or Sec-Fetch-Site: 403", r.status == 403, r.status)
    log = open(os.path.join(v.dir, "audit", "audit.log")).read().splitlines()
    refused = [json.loads(x) for x in log if '"action":"request-refused"' in x]
    check("each cross-origin refusal audited (request-refused, denied, the session's user and address)",
          len(refused) == 2 and all(r["outcome"] == "denied" and r["actor"].get("user", "").endswith("admin") and
                                    r["actor"].get("addr") for r in refused), refused)

    # administration API (admin)
    st, _, data = v.request("POST", "/api/users", json.dumps({"username": "api_made", "role": "radiologist",
                                                               "collection": "onco"}),
                            {"Content-Type": "application/json"})
    made = json.loads(data) if st == 201 else {}
    check("POST /api/users: 201 with a password and TOTP secret shown once",
          st == 201 and len(made.get("password", "")) >= 20 and made.get("totp_secret"), (st, data[:200]))
    st, _, data = v.request("POST", "/api/users", json.dumps({"username": "api_made", "role": "radiologist"}),
                            {"Content-Type": "application/json"})
    check("the same name again: 409", st == 409, st)
    # an auditor without a collection: read-audit is the whole vault's, so
    # its grant is of scope * (on collection:default it could read nothing);
    # a role with data keeps collection:default
    for name, role, want in (("api_aud", "auditor", "*"), ("api_rad", "radiologist", "collection:default")):
        st, _, data = v.request("POST", "/api/users", json.dumps({"username": name, "role": role}),
                                {"Content-Type": "application/json"})
        p = cli("user", "grants", name, "--vault", v.dir, "--json")
        scopes = [g["scope"] for g in json.loads(p.stdout)] if p.returncode == 0 else []
        check(f"POST /api/users {role} without a collection: a grant on {want}", st == 201 and scopes == [want],
              (st, data[:120], scopes))
    for bad in ({"username": "x y", "role": "radiologist"}, {"username": "ok", "role": "king"},
                {"username": "ok", "role": "radiologist", "collection": "nope"}, {"username": ["a"]}, "[]", "{"):
        st, _, _ = v.request("POST", "/api/users", bad if isinstance(bad, str) else json.dumps(bad),
                             {"Content-Type": "application/json"})
        check(f"POST /api/users {str(bad)[:40]}: 400", st == 400, st)
    # a misspelt "expires" must not make an account that never expires
    st, _, data = v.request("POST", "/api/users", json.dumps({"username": "typo_made", "role": "radiologist",
                                                               "expiry": "+1d"}),
                            {"Content-Type": "application/json"})
    check("POST /api/users with a misspelt member: 400 naming the allowed ones, no account made",
          st == 400 and b"expires" in data and b"expiry" not in data, (st, data[:200]))
    p = cli("user", "list", "--vault", v.dir)
    check("... the account does not exist", "typo_made" not in p.stdout, p.stdout[-200:])
    st, _, data = v.request("POST", "/api/grants", json.dumps({"username": "api_made", "role": "physician",
                                                                "scope": "*", "expires": "+1d",
                                                                "purpose": "on call\x1b[2J\r\nforged line"}),
                            {"Content-Type": "application/json", "User-Agent": "admin-console/1"})
    gid = json.loads(data).get("id") if st == 201 else None
    check("POST /api/grants: 201", st == 201 and gid, (st, data[:200]))
    # the grant's record: its purpose, and the admin's session and user
    # agent (an admin-API record had neither); the purpose is the user's
    # text, escaped in the log and in audit report's text
    p = cli("audit", "export", "--vault", v.dir)
    grec = [json.loads(l) for l in p.stdout.splitlines() if '"action":"grant"' in l and f"grant {gid}:" in l]
    a = grec[0]["actor"] if grec else {}
    check("POST /api/grants: the record has the purpose, the session and the user agent",
          len(grec) == 1 and "on call\x1b[2J\r\nforged line" in grec[0]["reason"] and a.get("session") and
          a.get("ua") == "admin-console/1", grec)
    p = cli("audit", "report", "--vault", v.dir, "--action", "grant")
    line = [l for l in p.stdout.splitlines() if f"grant {gid}:" in l]
    check("audit report (text): a purpose's control characters are not written to the terminal",
          p.returncode == 0 and len(line) == 1 and "on call" in line[0] and "forged line" in line[0] and
          "\x1b" not in p.stdout and "\r" not in p.stdout, line)
    st, _, data = v.request("GET", "/api/grants")
    check("GET /api/grants lists it", st == 200 and any(g["id"] == gid for g in json.loads(data)), st)
    st, _, _ = v.request("DELETE", f"/api/grants/{gid}")
    check("DELETE /api/grants/{id}: 204", st == 204, st)
    st, _, _ = v.request("DELETE", f"/api/grants/{gid}")
    check("... again: 409", st == 409, st)
    for bad in ("/api/grants/x", "/api/grants/0", "/api/grants/999999"):
        st, _, _ = v.request("DELETE", bad)
        check(f"DELETE {bad}: 400 or 404", st in (400, 404), st)
    st, _, _ = v.request("POST", "/api/grants", json.dumps({"username": "api_made", "role": "physician",
                                                             "scope": "study:1.2.x"}),
                         {"Content-Type": "application/json"})
    check("POST /api/grants with a bad scope: 400", st == 400, st)
    # a misspelt collection is refused as POST /api/users and `user grant`
    # refuse it: the grant would give nothing today, and whatever a
    # [collection] of that name holds once one is added, unreviewed
    st, _, data = v.request("POST", "/api/grants", json.dumps({"username": "api_made", "role": "physician",
                                                                "scope": "collection:oncp"}),
                            {"Content-Type": "application/json"})
    check("POST /api/grants on a collection that does not exist: 400 problem+json",
          st == 400 and b"no such collection" in data, (st, data[:200]))
    st, _, data = v.request("GET", "/api/grants")
    check("... no grant made", st == 200 and not any(g.get("scope") == "collection:oncp" for g in json.loads(data)),
          data[:200])
    st, _, data = v.request("POST", "/api/grants", json.dumps({"username": "api_made", "role": "physician",
                                                                "scope": "collection:onco"}),
                            {"Content-Type": "application/json"})
    check("POST /api/grants on a configured collection: 201", st == 201, (st, data[:200]))
    # the audit trail for auditors: GET /api/audit (read-audit), the
    # vault's one trail: a grant on one collection does not reach it
    for role in ROLES:
        if tokens[role] is None:
            continue
        st, data = as_user(v, tokens[role], "GET", "/api/audit?action=break-glass")
        check(f"read-audit {role} (a grant on one collection): GET /api/audit 403", st == 403, (st, data[:120]))
        check(f"read-audit {role}: the 403 says why, truly (the role, or the scope * it needs)",
              scope_said(data) if M["read-audit"][role] == "yes" else role_said(data), data[:200])
    refused = [r for r in audit_records(v) if r.get("reason") == "refused: read-audit"]
    check("each refused GET /api/audit audited, outcome denied",
          len(refused) >= sum(1 for r in ROLES if tokens[r]) and all(r["outcome"] == "denied" for r in refused),
          [r["outcome"] for r in refused])
    for role in WIDE:
        tok = wide[role]
        if tok is None:
            continue
        st, data = as_user(v, tok, "GET", "/api/audit?action=break-glass")
        want = 200 if M["read-audit"][role] == "yes" else 403
        check(f"read-audit {role} (scope *): GET /api/audit {want}", st == want, (st, data[:120]))
        if st == 200:
            recs = json.loads(data)
            check(f"read-audit {role}: the break-glass records, and only those",
                  recs and all(r["action"] == "break-glass" for r in recs), len(recs))
            st, data = as_user(v, tok, "GET", "/api/audit?patient=MX-Cardiology&action=retrieve")
            who = {r["actor"].get("user") for r in json.loads(data)} if st == 200 else set()
            check(f"read-audit {role}: by patient ID (accounting of disclosures)",
                  st == 200 and "u_physician" in who, (st, who))
            for bad in ("?from=yesterday", "?user=a%20b", "?patient=", "?to=2026-13-01", "?action=Login",
                        "?from=2026-11-02&to=2026-11-01"):
                st, _ = as_user(v, tok, "GET", "/api/audit" + bad)
                check(f"read-audit {role}: /api/audit{bad} is 400", st == 400, st)

    # accounting: audit report
    p = cli("audit", "report", "--vault", v.dir, "--break-glass", "--json")
    recs = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    ok_bg = [r for r in recs if r["action"] == "break-glass" and r["outcome"] == "success"]
    check("audit report --break-glass: each emergency access, with its user",
          p.returncode == 0 and sorted(r["actor"]["user"] for r in ok_bg) ==
          sorted("u_" + r for r in ROLES if M["break-glass"][r] == "yes"), [r["actor"].get("user") for r in ok_bg])
    p = cli("audit", "report", "--vault", v.dir, "--patient", "MX-Cardiology", "--json")
    recs = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    who = {r["actor"].get("user") for r in recs if r["action"] == "retrieve" and r["outcome"] == "success"}
    check("audit report --patient: who retrieved the patient's data (the break-glass users among them)",
          p.returncode == 0 and {"u_radiologist", "u_physician"} <= who and "u_researcher" not in who, who)
    p = cli("audit", "report", "--vault", v.dir, "--user", "u_researcher", "--json")
    recs = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    check("audit report --user: the researcher's refusals are there",
          p.returncode == 0 and recs and all(r["actor"]["user"] == "u_researcher" for r in recs) and
          any(r["outcome"] == "denied" for r in recs), len(recs))
    for bad in (["--from", "yesterday"], ["--issuer", "X"], ["--bogus"], ["--from", "@0"], ["--to=1970-01-01"]):
        p = cli("audit", "report", "--vault", v.dir, *bad)
        check(f"audit report {' '.join(bad)}: usage error", p.returncode == 2, p.stderr)
    p = cli("audit", "verify", "--vault", v.dir)
    check("the audit chain verifies", p.returncode == 0, p.stdout + p.stderr)

    # a patient's row is shared by the collections (keyed by Patient ID and
    # issuer) and written by the patient's first instance: a user of onco
    # who stores an instance under the Patient ID of a patient of
    # cardiology only is answered with what it stored, and the cardiology
    # name and birth date match nothing of it (QIDO answered and matched
    # them from the shared row)
    prober = next((r for r in ROLES if M["store"][r] == "yes" and M["query"][r] == "yes" and tokens[r]), None)
    if prober is not None:
        def patient_image(dept, name, birth):
            ds, _ = image(dept)
            ds.PatientID, ds.PatientName, ds.PatientBirthDate = "MX-SHARED", name, birth
            b = io.BytesIO()
            ds.save_as(b, write_like_original=False)
            return ds, b.getvalue()
        cds, cbytes = patient_image("Cardiology", "Hidden^Cardiac", "19510203")
        st, ans = v.stow([cbytes])
        check("admin stores a cardiology patient", st == 200, ans)
        pds, pbytes = patient_image("Oncology", "Probe^Onco", "20000101")
        body, ctype = stow_body([pbytes])
        st, data = as_user(v, tokens[prober], "POST", "/dicom-web/studies", body,
                           {"Content-Type": ctype, "Accept": "application/dicom+json"})
        check(f"{prober} stores the cardiology patient's ID into onco", st == 200, (st, data[:200]))
        A = {"Accept": "application/dicom+json"}

        def qido(tok, q):
            st, data = as_user(v, tok, "GET", "/dicom-web/studies?" + q, headers=A)
            return [(r.get("00100010", {}).get("Value", [{}])[0].get("Alphabetic"),
                     r.get("00100030", {}).get("Value", [None])[0]) for r in json.loads(data)] if st == 200 else st
        got = qido(tokens[prober], f"StudyInstanceUID={pds.StudyInstanceUID}&includefield=PatientBirthDate")
        check(f"{prober}: its study answers with the name and birth date it stored", got == [("Probe^Onco", "20000101")],
              got)
        got = qido(tokens[prober], "PatientName=Probe^Onco")
        check(f"{prober}: its study is found by its own exact name (not only the patient's first)",
              got == [("Probe^Onco", "20000101")], got)
        # a later instance of the study that renames the patient: the study
        # answers with the new name and is found by it exactly (the name
        # hashes were added for a new study's first instance only; so a
        # study stored before session 27 was lost to exact names once its
        # next instance gave it its own copy)
        rds, _ = image("Oncology", pds.StudyInstanceUID, pds.SeriesInstanceUID)
        rds.PatientID, rds.PatientName, rds.PatientBirthDate = "MX-SHARED", "Probe^Renamed", "20000101"
        rb = io.BytesIO()
        rds.save_as(rb, write_like_original=False)
        body, ctype = stow_body([rb.getvalue()])
        st, data = as_user(v, tokens[prober], "POST", "/dicom-web/studies", body,
                           {"Content-Type": ctype, "Accept": "application/dicom+json"})
        got = qido(tokens[prober], "PatientName=Probe^Renamed")
        check(f"{prober}: a later instance renaming the patient: the study found by the new exact name",
              st == 200 and got == [("Probe^Renamed", "20000101")], (st, got))
        for q in ("PatientID=MX-SHARED&PatientName=Hidden*", "PatientID=MX-SHARED&PatientBirthDate=19510203",
                  "PatientName=Hidden^Cardiac"):
            got = qido(tokens[prober], q)
            check(f"{prober}: the cardiology patient's values match nothing ({q})", got == [], got)
        got = qido(v.token, f"StudyInstanceUID={cds.StudyInstanceUID}&includefield=PatientBirthDate")
        check("admin: the cardiology study still answers with its own values", got == [("Hidden^Cardiac", "19510203")],
              got)

finally:
    if not os.environ.get('KEEPDIR'):
        shutil.rmtree(T, ignore_errors=True)
    else:
        print('# kept', T)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
