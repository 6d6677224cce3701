#!/bin/bash
# import_conflicts.sh: `dicomvault import PATH` of files that the index
# refuses, each named with its own reason (before session 11 every such
# refusal was reported as "SOP Instance UID already stored with other
# content"): other bytes under a stored SOP Instance UID, a Series Instance
# UID that belongs to another study, a Study Instance UID that belongs to
# another patient; the good file beside them stored; exit 1; one audit
# failure record per refusal with that reason; nothing stored before is
# lost. Prints ok/not ok lines. Env DV: the CLI under test; KEEP=1 keeps
# the directory. Layer: tests.
set -u
DV=${DV:-build/check/dicomvault}
PY=/usr/bin/python3
TEST=import_conflicts
. "$(dirname "$0")/lib/dimse.sh"
tap_setup impc

"$PY" - "$T" >"$T/gen.err" 2>&1 <<'PYEOF'
import sys
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
out = sys.argv[1]
P = "1.2.826.0.1.3680043.2.1143.39."
def inst(name, pid, study, series, sop, fill):
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = P + sop
    ds.PatientName = "DOE^" + pid; ds.PatientID = pid
    ds.StudyInstanceUID = P + study; ds.SeriesInstanceUID = P + series; ds.Modality = "OT"
    ds.Rows = 4; ds.Columns = 4; ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 8; ds.BitsStored = 8; ds.HighBit = 7; ds.PixelRepresentation = 0
    ds.PixelData = bytes([fill]) * 16
    fm = FileMetaDataset(); fm.MediaStorageSOPClassUID = ds.SOPClassUID
    fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID; fm.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = fm; ds.is_little_endian = True; ds.is_implicit_VR = False
    ds.save_as("%s/%s.dcm" % (out, name), write_like_original=False)
inst("first", "P1", "1", "1.1", "1.1.1", 1)
inst("content", "P1", "1", "1.1", "1.1.1", 2)     # same SOP Instance UID, other pixels
inst("series", "P1", "2", "1.1", "2.1.1", 3)      # series 1.1 in another study
inst("patient", "P2", "1", "1.2", "1.2.1", 4)     # study 1 under another patient
inst("good", "P1", "1", "1.3", "1.3.1", 5)
PYEOF
check "pydicom made the files" "[ -s '$T/good.dcm' ]" "$T/gen.err"
vault_init || exit 0

"$DV" import --vault "$T/v" "$T/first.dcm" >"$T/i1" 2>&1
check "the first file: exit 0" "[ $? -eq 0 ]" "$T/i1"
"$DV" import --vault "$T/v" "$T/content.dcm" "$T/series.dcm" "$T/patient.dcm" "$T/good.dcm" >"$T/i2" 2>&1
RC=$?
check "three refused, one stored: exit 1" "[ $RC -eq 1 ] && grep -q '1 stored.*3 failed' '$T/i2'" "$T/i2"
check "other content under a stored SOP Instance UID: named so" \
	"grep -q 'content.dcm: SOP Instance UID .*1.1.1 is already stored with different content' '$T/i2'" "$T/i2"
check "a series of another study: named so, not as other content" \
	"grep -q 'series.dcm: Series Instance UID .*\\.39\\.1\\.1 belongs to another study' '$T/i2'" "$T/i2"
check "a study of another patient: named so" \
	"grep -q 'patient.dcm: Study Instance UID .*\\.39\\.1 belongs to another patient' '$T/i2'" "$T/i2"
AL="$T/v/audit/audit.log"
check "audit: one failure record per refusal, with its reason" \
	"grep -q 'import: SOP Instance already stored with other content' '$AL' && grep -q 'import: Series belongs to another study' '$AL' && grep -q 'import: Study belongs to another patient' '$AL'" \
	"$AL"
"$DV" import --vault "$T/v" "$T/first.dcm" "$T/good.dcm" >"$T/i3" 2>&1
check "what was stored is still there: both already present" "[ $? -eq 0 ] && grep -q '2 already present' '$T/i3'" \
	"$T/i3"
"$DV" audit verify --vault "$T/v" >"$T/av" 2>&1
check "audit verify: intact" "[ $? -eq 0 ]" "$T/av"
