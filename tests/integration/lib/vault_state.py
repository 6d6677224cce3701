"""vault_state.py: what the crash tests (crash.sh, crash_dimse.sh) check
after a restart, shared: the index's instances, one instance retrieved over
WADO-RS, the object store against the index, and the whole verification
(imported, not run)."""
import http.client
import json
import os
import re
import sqlite3
import ssl


def indexed(vault):
    """{SOP Instance UID: (study UID, series UID, object key)} of the index."""
    db = sqlite3.connect("file:%s/index.db?mode=ro" % vault, uri=True)
    rows = db.execute("select i.uid, s.uid, t.uid, i.object_key from instances i join series s on s.id = i.series_id"
                      " join studies t on t.id = s.study_id").fetchall()
    db.close()
    return {r[0]: (r[2], r[1], r[3]) for r in rows}


class Wado:
    """One TLS 1.3 connection; get() returns an instance's bytes or None."""

    def __init__(self, host, port, cafile, token):
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=30)
        self.token = token

    def get(self, sop, st, se):
        self.conn.request("GET", "/dicom-web/studies/%s/series/%s/instances/%s" % (st, se, sop),
                          headers={"Authorization": "Bearer " + self.token})
        r = self.conn.getresponse()
        body = r.read()
        if r.status != 200:
            return None
        b = re.search(r'boundary="?([^";]+)', r.getheader("Content-Type")).group(1).encode()
        head, data = body.split(b"--" + b)[1].split(b"\r\n\r\n", 1)
        return data[:-2]


def objects(vault, keys, bad):
    """(orphans, temporary files) of the object store, given the index's
    object keys; appends to bad what is wrong (a row without its object, a
    spare file that is not empty)."""
    objs = set()
    od = os.path.join(vault, "objects")
    for d, _, files in os.walk(od):
        if re.fullmatch(r"[0-9a-f]{2}/[0-9a-f]{2}", os.path.relpath(d, od)):
            objs.update(files)
    # a server of an older version kept a few empty spare.* files in .tmp:
    # not temporary writes
    spares = [f for f in os.listdir(os.path.join(od, ".tmp")) if f.startswith("spare.")]
    for f in spares:
        if os.path.getsize(os.path.join(od, ".tmp", f)) != 0:
            bad.append("spare file %s is not empty" % f)
    # and empty pending entries made ahead under fresh keys (blob_fs.c,
    # spares_make), with no object linked under their key
    pend = os.path.join(od, ".pending")
    for f in os.listdir(pend):
        if os.path.getsize(os.path.join(pend, f)) == 0 and f not in objs:
            spares.append(f)
    tmps = [f for f in os.listdir(os.path.join(od, ".tmp")) if f not in spares] + \
        [f for f in os.listdir(pend) if f not in spares]
    if keys - objs:
        bad.append("%d index rows without their object" % len(keys - objs))
    return objs - keys, tmps


def audit_unvoided(vault, rows, bad):
    """The audit log against the index: a store's success record that
    names an object (written beside the index commit, so it can be durable
    when the commit is not) of an instance the index does not have must be
    followed by a failure record naming that object (recovery's) or that
    instance (the store's own); appends to bad each one that is not."""
    open_ = {}
    with open(os.path.join(vault, "audit", "audit.log"), encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r.get("type") != "event" or r.get("action") != "store":
                continue
            o = r.get("objects", {})
            if r.get("outcome") == "success" and o.get("object"):
                open_[o["object"]] = o.get("sop")
            elif r.get("outcome") != "success":
                for k in [k for k, s in open_.items() if k == o.get("object") or (s and s == o.get("sop"))]:
                    del open_[k]
    for k, sop in open_.items():
        if sop not in rows:
            bad.append("audit: a success record for %s (object %s), not in the index, never voided" % (sop, k))
    return len(open_)


def verify(vault, wado, acked, compare):
    """After a restart: every acknowledged SOP Instance UID (acked) in the
    index; every indexed instance retrieved over WADO-RS and compared with
    what was sent (compare(sop, got): None when got, the bytes retrieved or
    None when it does not retrieve, is right, else what is wrong); the
    object store against the index; the audit log's store records against
    the index (audit_unvoided). Prints a summary line and what is
    wrong; returns the exit status (1: something is)."""
    rows = indexed(vault)
    bad = ["acknowledged %s not in the index" % sop for sop in acked if sop not in rows]
    for sop, (st, se, _) in rows.items():
        why = compare(sop, wado.get(sop, st, se))
        if why is not None:
            bad.append("%s (%s): %s" % (sop, "acknowledged" if sop in acked else "not acknowledged", why))
    orphans, tmps = objects(vault, set(k for _, _, k in rows.values()), bad)
    recorded = audit_unvoided(vault, rows, bad)
    print("acked=%d indexed=%d unacked_indexed=%d orphans=%d tmp=%d store_records=%d" % (
        len(acked), len(rows), len(set(rows) - set(acked)), len(orphans), len(tmps), recorded))
    for b in bad[:10]:
        print("# " + b)
    return 1 if bad else 0


def audit_records(vault):
    """The records of the vault's audit log, parsed."""
    with open(os.path.join(vault, "audit", "audit.log"), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def deleted_fds(pid):
    """Descriptors process pid holds on deleted files (an unfinished spool
    not freed)."""
    out = []
    d = "/proc/%d/fd" % pid
    for f in os.listdir(d):
        try:
            t = os.readlink(os.path.join(d, f))
        except OSError:
            continue
        if t.endswith(" (deleted)"):
            out.append(t)
    return out
