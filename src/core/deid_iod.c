/* deid_iod.c: resolution of the composite action codes of PS3.15 Table
 * E.1-1 (Z/D, X/Z, X/D, X/Z/D, X/Z/U*) by the Type of the attribute in the
 * IOD. We have no machine-readable PS3.3, so this is a small table of what
 * we know, by IOD family: an attribute that is Type 1 there gets a dummy
 * (D, or U for a sequence of references), Type 2 a zero-length value (Z),
 * Type 3 or unknown the most protective choice the code allows (X).
 * Inside sequence items the module Types do not apply and the attributes are
 * mostly parts of macros where they are required, so there the least
 * removing choice is taken (it is never identifying: empty, dummy or
 * pseudonymous UIDs). The choices are listed in docs/internals/deid.md and
 * were checked with dciodvfy on the pydicom test files. Layer: core. */
#include <string.h>
#include "deid_int.h"

#define SOP_PREFIX "1.2.840.10008.5.1.4.1.1."

struct iod_type {
	uint32_t tag;
	uint8_t type[DEID_FAM_N];   /* 1, 2 or 3 by family; 0: not known there (3) */
};

/* Indexed by enum deid_family: OTHER IMAGE ENHANCED SR PR RT WAVEFORM DOC. */
static const struct iod_type types[] = {
	/* Content Date/Time: General Image 2C, Multi-frame Functional Groups 1,
	 * SR Document General 1, Waveform Identification 1, Encapsulated
	 * Document 2, RT Dose (General Image) 2 */
	{ 0x00080023, { 0, 2, 1, 1, 0, 2, 1, 2 } },
	{ 0x00080033, { 0, 2, 1, 1, 0, 2, 1, 2 } },
	/* Acquisition DateTime: Enhanced image modules 1C, Waveform Identification 1 */
	{ 0x0008002A, { 0, 0, 1, 0, 0, 0, 1, 0 } },
	/* Operators' Name: RT Series module 2 */
	{ 0x00081070, { 0, 0, 0, 0, 0, 2, 0, 0 } },
	/* Patient's Sex Neutered: Patient module 2C (present for animals) */
	{ 0x00102203, { 2, 2, 2, 2, 2, 2, 2, 2 } },
	/* Contrast/Bolus Agent: Contrast/Bolus module 2 */
	{ 0x00180010, { 2, 2, 2, 2, 2, 2, 2, 2 } },
	/* Device Serial Number: Enhanced General Equipment 1 */
	{ 0x00181000, { 0, 0, 1, 0, 0, 0, 0, 0 } },
	/* Instruction Performed DateTime: 2 where used */
	{ 0x00189919, { 2, 2, 2, 2, 2, 2, 2, 2 } },
	/* Acquisition Context Sequence: Acquisition Context module 2 */
	{ 0x00400555, { 0, 0, 2, 0, 0, 0, 2, 0 } },
	/* Observation DateTime: SR Document Content 1C */
	{ 0x0040A032, { 0, 0, 0, 1, 0, 0, 0, 0 } },
	/* Content Creator's Name: Content Identification macro 2 */
	{ 0x00700084, { 2, 2, 2, 2, 2, 2, 2, 2 } },
	/* RT: Source Serial Number 2, Treatment Date/Time 2, RT Plan Date/Time 2,
	 * Treatment Machine Name 2, Reviewer Name 2C */
	{ 0x30080105, { 0, 0, 0, 0, 0, 2, 0, 0 } },
	{ 0x30080250, { 0, 0, 0, 0, 0, 2, 0, 0 } },
	{ 0x30080251, { 0, 0, 0, 0, 0, 2, 0, 0 } },
	{ 0x300A0006, { 0, 0, 0, 0, 0, 2, 0, 0 } },
	{ 0x300A0007, { 0, 0, 0, 0, 0, 2, 0, 0 } },
	{ 0x300A00B2, { 0, 0, 0, 0, 0, 2, 0, 0 } },
	{ 0x300E0008, { 2, 2, 2, 2, 2, 2, 2, 2 } },
};

static const char *const family_names[DEID_FAM_N] = {
	"other", "image", "enhanced multi-frame", "structured report", "presentation state",
	"radiotherapy", "waveform", "encapsulated document"
};

const char *deid_family_name(enum deid_family fam)
{
	return (unsigned)fam < DEID_FAM_N ? family_names[fam] : "?";
}

static bool has_prefix(const char *s, size_t n, const char *p)
{
	size_t pl = strlen(p);

	return n >= pl && memcmp(s, p, pl) == 0;
}

enum deid_family deid_family_of(const struct dcm_ds *ds)
{
	const char *sop;
	size_t n = 0, pl = strlen(SOP_PREFIX);

	sop = dcm_ds_str(ds, 0x00080016, &n);
	if (sop == NULL && ds->file != NULL)
		sop = dcm_ds_str(&ds->file->meta, 0x00020002, &n);
	if (sop != NULL && has_prefix(sop, n, SOP_PREFIX)) {
		const char *r = sop + pl;
		size_t rn = n - pl;
		if (has_prefix(r, rn, "88."))
			return DEID_FAM_SR;
		if (has_prefix(r, rn, "11."))
			return DEID_FAM_PR;
		if (has_prefix(r, rn, "481."))
			return DEID_FAM_RT;
		if (has_prefix(r, rn, "9."))
			return DEID_FAM_WAVEFORM;
		if (has_prefix(r, rn, "104."))
			return DEID_FAM_DOC;
	}
	/* Shared / Per-frame Functional Groups Sequence */
	if (dcm_ds_find(ds, 0x52009229) != NULL || dcm_ds_find(ds, 0x52009230) != NULL)
		return DEID_FAM_ENHANCED;
	if (dcm_ds_find(ds, TAG_PIXEL_DATA) != NULL || dcm_ds_find(ds, TAG_FLOAT_PIXEL) != NULL ||
	    dcm_ds_find(ds, TAG_DFLOAT_PIXEL) != NULL)
		return DEID_FAM_IMAGE;
	return DEID_FAM_OTHER;
}

static unsigned type_of(uint32_t tag, enum deid_family fam)
{
	size_t i;

	for (i = 0; i < sizeof types / sizeof types[0]; i++)
		if (types[i].tag == tag)
			return types[i].type[fam] ? types[i].type[fam] : 3;
	return 3;
}

enum deid_action deid_resolve(enum deid_action a, uint32_t tag, enum deid_family fam, bool nested)
{
	unsigned t;

	if (a != DEID_ZD && a != DEID_XZ && a != DEID_XD && a != DEID_XZD && a != DEID_XZU)
		return a;
	if ((unsigned)fam >= DEID_FAM_N)
		fam = DEID_FAM_OTHER;
	t = type_of(tag, fam);
	if (tag == 0x00100020)  /* Patient ID: always a pseudonym */
		return DEID_D;
	if (nested) {
		switch (a) {
		case DEID_ZD: return t == 1 ? DEID_D : DEID_Z;
		case DEID_XZ: return DEID_Z;
		case DEID_XD: return DEID_D;
		case DEID_XZD: return DEID_D;
		default: return DEID_U;   /* X/Z/U*: keep the references, UIDs replaced */
		}
	}
	switch (a) {
	case DEID_ZD: return t == 1 ? DEID_D : DEID_Z;
	case DEID_XZ: return t <= 2 ? DEID_Z : DEID_X;
	case DEID_XD: return t <= 2 ? DEID_D : DEID_X;
	case DEID_XZD: return t == 1 ? DEID_D : t == 2 ? DEID_Z : DEID_X;
	default: return t == 1 ? DEID_U : t == 2 ? DEID_Z : DEID_X;
	}
}
