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


def report(*args):
    p = subprocess.run([DV, "audit", "report", "--vault", v.dir, "--json", "--action", "store", *args],
                       capture_output=True, text=True)
    return p.returncode, [json.loads(line) for line in p.stdout.splitlines() if line.strip()], p.stderr


def main():
    global v
    v = Vault(DV, T).serve()
    v.login()
    st, j = v.stow([inst(1, "PIDX1", "HOSP-A"), inst(2, "PIDX1", "HOSP-B"), inst(3, "PIDX2")])
    check("three instances stored: PIDX1 under two issuers, PIDX2 with none",
          st == 200 and len((j or {}).get("00081199", {}).get("Value", [])) == 3, (st, j))
    st, recs = api("patient=PIDX1&action=store")
    check("GET /api/audit?patient=PIDX1: the stores of both patients with that ID",
          st == 200 and studies_of(recs) == [P + "1", P + "2"], (st, recs if st != 200 else studies_of(recs)))
    st, recs = api("patient=PIDX1&issuer=HOSP-A&action=store")
    check("&issuer=HOSP-A: that patient's only", st == 200 and studies_of(recs) == [P + "1"],
          (st, recs if st != 200 else studies_of(recs)))
    st, recs = api("patient=PIDX1&issuer=NOSUCH&action=store")
    check("&issuer of no patient: none", st == 200 and recs == [], (st, recs))
    st, recs = api("patient=PIDX2&action=store")
    check("an ID stored without issuer: found", st == 200 and studies_of(recs) == [P + "3"],
          (st, recs if st != 200 else studies_of(recs)))
    st, _ = api("issuer=HOSP-A")
    check("issuer without patient: 400", st == 400, st)
    st, _ = api("patient=PIDX1&issuer=" + "x" * 65)
    check("an issuer over 64 characters: 400", st == 400, st)
    v.stop()
    rc, recs, err = report("--patient", "PIDX1")
    check("audit report --patient PIDX1: both patients' stores", rc == 0 and studies_of(recs) == [P + "1", P + "2"],
          (rc, studies_of(recs), err))
    rc, recs, err = report("--patient", "PIDX1", "--issuer", "HOSP-B")
    check("--issuer HOSP-B: that patient's only", rc == 0 and studies_of(recs) == [P + "2"],
          (rc, studies_of(recs), err))
    rc, recs, err = report("--patient", "PIDX*")
    check("an ID with a wildcard is taken literally: nothing", rc == 0 and recs == [], (rc, studies_of(recs), err))


TAP.run(main, lambda: finish(T, v))
