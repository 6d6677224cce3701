/* qr.c: Query/Retrieve identifiers for the SCU of `dicomvault import
 * --from AE`: built by hand (a handful of elements in tag order), read
 * back through the DICOM reader (dicom/), which checks every length
 * against what remains. Layer: proto. */
#include <string.h>
#include "dicomvault/dataset.h"
#include "dicomvault/dict.h"
#include "dicomvault/io.h"
#include "dicomvault/qr.h"
#include "dicomvault/vr.h"

#define TAG_SOP_INSTANCE 0x00080018u
#define TAG_LEVEL        0x00080052u
#define TAG_STUDY        0x0020000Du
#define TAG_SERIES       0x0020000Eu

uint32_t qr_level_key(const char *level)
{
	if (level == NULL)
		return 0;
	if (strcmp(level, "STUDY") == 0)
		return TAG_STUDY;
	if (strcmp(level, "SERIES") == 0)
		return TAG_SERIES;
	if (strcmp(level, "IMAGE") == 0)
		return TAG_SOP_INSTANCE;
	return 0;
}

/* One element; the value padded to even length with pad. */
static void put_elem(struct wbuf *w, bool explicit_vr, uint32_t tag, const char vr[2], const char *v, char pad)
{
	size_t n = strlen(v), len = n + (n & 1);

	wbuf_put_u16le(w, (uint16_t)(tag >> 16));
	wbuf_put_u16le(w, (uint16_t)tag);
	if (explicit_vr) {
		wbuf_put(w, vr, 2);
		wbuf_put_u16le(w, (uint16_t)len);
	} else {
		wbuf_put_u32le(w, (uint32_t)len);
	}
	wbuf_put(w, v, n);
	if (n & 1)
		wbuf_put(w, &pad, 1);
}

/* UIDs are checked as the store checks them (vr_uid_ok), not by the
 * stricter pdu_uid_ok: legacy archives made UIDs with a leading-zero
 * component (PS3.5 9.1 forbids it), which the store keeps; refusing them
 * here left such a study unlisted and unmoved. */
static bool uid_or_null(const char *s)
{
	return s == NULL || vr_uid_ok(s, strlen(s));
}

enum err qr_ident_build(struct wbuf *w, bool explicit_vr, const char *level, const char *study, const char *series,
                        const char *sop)
{
	uint32_t key = qr_level_key(level);

	if (key == 0 || !uid_or_null(study) || !uid_or_null(series) || !uid_or_null(sop))
		return ERR_PARSE;
	if (key == TAG_SOP_INSTANCE)
		put_elem(w, explicit_vr, TAG_SOP_INSTANCE, "UI", sop != NULL ? sop : "", 0);
	put_elem(w, explicit_vr, TAG_LEVEL, "CS", level, ' ');
	put_elem(w, explicit_vr, TAG_STUDY, "UI", study != NULL ? study : "", 0);
	if (key != TAG_STUDY)
		put_elem(w, explicit_vr, TAG_SERIES, "UI", series != NULL ? series : "", 0);
	return wbuf_err(w);
}

enum err qr_ident_uid(const uint8_t *p, size_t n, bool explicit_vr, uint32_t tag, char out[65])
{
	struct dcm_read_opts ro;
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL;
	struct src_mem m;
	struct src s;
	const char *v;
	size_t len = 0;
	enum err rc;

	if (n > QR_MAX_IDENTIFIER)
		return ERR_LIMIT;
	memset(&ro, 0, sizeof ro);
	ro.no_meta = true;
	ro.ts = explicit_vr ? DCM_TS_EXPLICIT_LE : DCM_TS_IMPLICIT_LE;
	src_mem_init(&s, &m, p != NULL ? p : (const uint8_t *)"", n);
	rc = dcm_file_read(&s, &ro, &f, &ei);
	if (rc != ERR_OK)
		return ERR_PARSE;
	v = dcm_ds_str(&f->ds, tag, &len);
	while (v != NULL && len > 0 && (v[len - 1] == 0 || v[len - 1] == ' '))
		len--;
	if (v == NULL || len == 0)
		rc = ERR_NOTFOUND;
	else if (len > 64 || memchr(v, 0, len) != NULL)
		rc = ERR_PARSE;
	else if (!vr_uid_ok(v, len))
		rc = ERR_PARSE;
	else {
		memcpy(out, v, len);
		out[len] = 0;
	}
	dcm_file_free(f);
	return rc;
}
