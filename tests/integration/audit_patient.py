"""audit_patient.py DV: the accounting of disclosures by patient when
patients carry an Issuer of Patient ID. Records name a patient by the
keyed hash of ID and issuer together, so a search by ID alone must find
the patient under whatever issuer it was stored with: `GET
/api/audit?patient=ID` and `dicomvault audit report --patient ID` give
the records of every patient with that ID (two here: one ID under two
issuers), `&issuer=I` / `--issuer I` narrow them to one, an ID stored
without issuer is found as before, `issuer` without `patient` is a 400.
(Before, an ID stored with an issuer gave nothing without it: an empty
answer to "who touched this patient".)

Run as /usr/bin/python3 tests/integration/audit_patient.py build/check/dicomvault.
Prints ok/not ok lines; exits 1 if any check failed. KEEP=1 keeps the
directory. Layer: tests."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import Tap  # noqa: E402

TAP = Tap("audit_patient")
check, skip = TAP.check, TAP.skip
DV = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/check/dicomvault")
try:
    import dsgen
    from dvserver import Vault, finish
except ImportError:
    skip("no pydicom")

P = "1.2.826.0.1.3680043.2.1143.91."
T = tempfile.mkdtemp(prefix="dv-auditpat.")
v = None


def inst(n, pid, issuer=None):
    attrs = {"IssuerOfPatientID": issuer} if issuer else {}
    return dsgen.part10(dsgen.sc(P + "%d.1.1" % n, P + str(n), P + "%d.1" % n, "PAT^%d" % n, pid, **attrs))


def studies_of(recs):
    return sorted({r.get("objects", {}).get("study") for r in recs if r.get("action") == "store"} - {None})


def api(query):
    st, _, b = v.request("GET", "/api/audit?" + query)
    return st, (json.loads(b) if st == 200 else b)


def log():
    """The vault's audit log, every record."""
    with open(os.path.join(v.dir, "audit", "audit.log")) as f:
        return [json.loads(line) for line in f]


def report(*args, action="store"):
    p = subprocess.run([DV, "audit", "report", "--vault", v.dir, "--json", "--action", action, *args],
                       capture_output=True, text=True)
    return p.returncode, [json.loads(line) for line in p.stdout.splitlines() if line.strip()], p.stderr


def main():
    global v
    v = Vault(DV, T)
    v.conf('\n[collection "elsewhere"]\nmatch = PatientID=NOBODY*\n')
    v.serve()
    v.login()
    st, j = v.stow([inst(1, "PIDX1", "HOSP-A"), inst(2, "PIDX1", "HOSP-B"), inst(3, "PIDX2")])
    check("three instances stored: PIDX1 under two issuers, PIDX2 with none",
          st == 200 and len((j or {}).get("00081199", {}).get("Value", [])) == 3, (st, j))
    st, recs = api("patient=PIDX1&action=store")
    check("GET /api/audit?patient=PIDX1: the stores of both patients with that ID",
          st == 200 and studies_of(recs) == [P + "1", P + "2"], (st, recs if st != 200 else studies_of(recs)))
    # reading the trail is itself recorded (ATNA's Audit Log Used), before
    # the answer: who, and the patients searched as their keys, never the ID
    keys = sorted({r["objects"]["patient"] for r in recs if r.get("action") == "store"}) if st == 200 else []
    before = len(log())
    st, _, body = v.request("GET", "/api/audit?patient=PIDX1&user=admin", headers={"User-Agent": "auditor-ua/1"})
    new = [r for r in log()[before:] if r["type"] == "event"]
    # the keys searched: the ID without issuer and under each of its two
    check("GET /api/audit?patient=PIDX1 is recorded: audit-read, the request's actor, the keys searched",
          st == 200 and len(new) == 1 and new[0]["action"] == "audit-read" and new[0]["outcome"] == "success" and
          new[0]["actor"].get("user") == "admin" and new[0]["actor"].get("session") and
          new[0]["actor"].get("ua") == "auditor-ua/1" and len(keys) == 2 and
          len(new[0]["objects"].get("patients", [])) == 3 and set(keys) <= set(new[0]["objects"]["patients"]) and
          new[0].get("reason") == "audit trail: 3 records (user=admin, patient)", (st, new, keys))
    check("... and the record holds no Patient ID", new and "PIDX" not in json.dumps(new), new)
    before = len(log())
    st, _ = api("action=login")
    new = [r for r in log()[before:] if r["type"] == "event"]
    check("GET /api/audit without a patient: recorded, naming no patient",
          st == 200 and len(new) == 1 and new[0]["action"] == "audit-read" and "patients" not in new[0]["objects"],
          (st, new))
    st, recs = api("patient=PIDX1&issuer=HOSP-A&action=store")
    check("&issuer=HOSP-A: that patient's only", st == 200 and studies_of(recs) == [P + "1"],
          (st, recs if st != 200 else studies_of(recs)))
    st, recs = api("patient=PIDX1&issuer=NOSUCH&action=store")
    check("&issuer of no patient: none", st == 200 and recs == [], (st, recs))
    st, recs = api("patient=PIDX2&action=store")
    check("an ID stored without issuer: found", st == 200 and studies_of(recs) == [P + "3"],
          (st, recs if st != 200 else studies_of(recs)))
    # an answer over several patients is in each one's accounting; and so
    # is the break-glass that opened a patient's study
    st, _, body = v.request("GET", "/dicom-web/studies?includefield=00100020", headers={"Accept": "application/dicom+json"})
    check("QIDO /studies answers the three patients", st == 200 and len(json.loads(body)) == 3, (st, body[:200]))
    for pid in ("PIDX1", "PIDX2"):
        st, recs = api("patient=%s&action=query" % pid)
        check("GET /api/audit?patient=%s&action=query: the query over three patients" % pid,
              st == 200 and len(recs) == 1 and len(recs[0]["objects"].get("patients", [])) == 3, (st, recs))
    ok, secret, err = v.add_user("doc", "physician", "--collection", "elsewhere")
    check("a physician of another collection", ok, err)
    admin = v.token
    v.login("doc", "a long enough password 1", secret)
    st, _, body = v.request("POST", "/api/auth/break-glass", json.dumps({"study": P + "3", "reason": "unconscious in ER"}),
                            {"Content-Type": "application/json"})
    check("break-glass on PIDX2's study", st in (200, 201), (st, body[:200]))
    v.token = admin
    st, recs = api("patient=PIDX2&action=break-glass")
    check("GET /api/audit?patient=PIDX2: the break-glass, naming the study",
          st == 200 and len(recs) == 1 and recs[0]["outcome"] == "success" and recs[0]["objects"].get("study") == P + "3",
          (st, recs))
    st, recs = api("patient=PIDX1&action=break-glass")
    check("... and not in another patient's", st == 200 and recs == [], (st, recs))
    # many patients in one answer: every one named, however many records it takes
    many = [inst(100 + i, "PIDM%03d" % i) for i in range(300)]
    st, j = v.stow(many)
    check("300 more patients stored", st == 200 and len((j or {}).get("00081199", {}).get("Value", [])) == 300, st)
    st, _, body = v.request("GET", "/dicom-web/studies?limit=1000&PatientID=PIDM*",
                            headers={"Accept": "application/dicom+json"})
    check("QIDO over the 300 answers them", st == 200 and len(json.loads(body)) == 300, st)
    st, recs = api("patient=PIDM299&action=query")
    check("the last of them finds the query", st == 200 and len(recs) == 1, (st, recs))
    st, recs = api("action=query&user=admin")
    named = set()
    for r in recs:
        if "PIDM" in r.get("reason", "") or "continued" in r.get("reason", ""):
            pass
        named.update(r["objects"].get("patients", []))
    check("the query's records name 303 patients in all (2 records of 256 at most each, plus the first query's)",
          len(named) == 303 and max(len(r["objects"].get("patients", [])) for r in recs) == 256, (len(named), len(recs)))
    st, _ = api("issuer=HOSP-A")
    check("issuer without patient: 400", st == 400, st)
    st, _ = api("patient=PIDX1&issuer=" + "x" * 65)
    check("an issuer over 64 characters: 400", st == 400, st)
    v.stop()
    rc, recs, err = report("--patient", "PIDX1")
    check("audit report --patient PIDX1: both patients' stores", rc == 0 and studies_of(recs) == [P + "1", P + "2"],
          (rc, studies_of(recs), err))
    new = [r for r in log() if r.get("action") == "audit-read" and r["actor"].get("role") == "operator"]
    check("audit report --patient PIDX1 is recorded: audit-read, the operator, the keys searched, no ID",
          len(new) == 1 and new[0]["actor"].get("addr") == "local" and
          len(new[0]["objects"].get("patients", [])) == 3 and set(keys) <= set(new[0]["objects"]["patients"]) and
          "PIDX" not in json.dumps(new), new)
    rc, recs, err = report("--patient", "PIDX1", "--issuer", "HOSP-B")
    check("--issuer HOSP-B: that patient's only", rc == 0 and studies_of(recs) == [P + "2"],
          (rc, studies_of(recs), err))
    rc, recs, err = report("--patient", "PIDX2", action="break-glass")
    check("audit report --patient PIDX2 --action break-glass: the break-glass", rc == 0 and len(recs) == 1,
          (rc, recs, err))
    rc, recs, err = report("--patient", "PIDM150", action="query")
    check("audit report --patient PIDM150 --action query: the query over 300", rc == 0 and len(recs) == 1,
          (rc, recs, err))
    rc, recs, err = report("--patient", "PIDX*")
    check("an ID with a wildcard is taken literally: nothing", rc == 0 and recs == [], (rc, studies_of(recs), err))


TAP.run(main, lambda: finish(T, v))
