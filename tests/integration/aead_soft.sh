#!/bin/bash
# aead_soft.sh: objects are AES-256-GCM on every CPU (SPEC section 6), also
# one without AES instructions, where GnuTLS and nettle run their software
# code. Simulated here with their overrides (GNUTLS_CPUID_OVERRIDE=0x1
# turns GnuTLS's own accelerated code off, NETTLE_FAT_OVERRIDE=none
# nettle's): the crypto unit tests (golden objects made by
# python3-cryptography included) pass that way, and a vault written with
# the hardware's code is read back byte for byte with the software's, and
# the other way round. Prints ok/not ok lines. Env DV, DV_BUILD.
set -u
DV=${DV:-build/check/dicomvault}
B=${DV_BUILD:-build/check}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
ok() { echo "ok - aead_soft: $1"; }
no() { echo "not ok - aead_soft: $1"; }
check() { if eval "$2"; then ok "$1"; else no "$1"; fi; }
soft() { GNUTLS_CPUID_OVERRIDE=0x1 NETTLE_FAT_OVERRIDE=none "$@"; }

for t in kat_test aead_test aead_ra_test; do
	soft "$B/tests/crypto/$t" >"$T/$t.out" 2>&1
	rc=$?
	check "$t with software AES-GCM: exit 0, no failure" \
		"[ $rc -eq 0 ] && grep -q '^ok - ' $T/$t.out && ! grep -q '^not ok' $T/$t.out"
done
check "the golden AES-256-GCM object opens with software AES" "grep -q '^ok - golden_dvob_aes256gcm' $T/kat_test.out"

TF=/usr/lib/python3/dist-packages/pydicom/data/test_files
printf 'correct horse battery staple\n' >"$T/pw"
chmod 600 "$T/pw"
"$DV" init --vault "$T/v" --password-file "$T/pw" >/dev/null 2>&1
check "vault created" "[ -f $T/v/dicomvault.conf ]"
"$DV" import --vault "$T/v" "$TF/CT_small.dcm" >"$T/i1" 2>&1
check "CT_small imported with the CPU's AES code" "[ $? -eq 0 ]"
soft "$DV" import --vault "$T/v" "$TF/MR_small.dcm" >"$T/i2" 2>&1
check "MR_small imported with software AES" "[ $? -eq 0 ]"
study() { /usr/bin/python3 -c 'import pydicom,sys; print(pydicom.dcmread(sys.argv[1], stop_before_pixels=True).StudyInstanceUID)' "$1"; }
CT_ST=$(study "$TF/CT_small.dcm")
MR_ST=$(study "$TF/MR_small.dcm")
soft "$DV" export --vault "$T/v" --study "$CT_ST" --out "$T/ct" --quiet >/dev/null 2>"$T/e1"
check "the hardware-sealed object exported with software AES, byte for byte" \
	"[ $? -eq 0 ] && cmp -s $TF/CT_small.dcm \"\$(find $T/ct -name '*.dcm')\""
"$DV" export --vault "$T/v" --study "$MR_ST" --out "$T/mr" --quiet >/dev/null 2>"$T/e2"
check "the software-sealed object exported with the CPU's AES code, byte for byte" \
	"[ $? -eq 0 ] && cmp -s $TF/MR_small.dcm \"\$(find $T/mr -name '*.dcm')\""
check "both objects are AES-256-GCM (algorithm byte 1 of the DVOB header)" \
	"[ \$(for f in \$(find $T/v/objects -type f -size +1k); do od -An -tu1 -j6 -N1 \$f; done | tr -d ' ' | sort -u) = 1 ]"
exit 0
