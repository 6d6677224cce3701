/* deid_fuzz.c: libFuzzer target for de-identification (core/deid*.c) and
 * the masking of burned-in annotation (core/deid_mask.c). The first input
 * byte picks the profile options and flags, the rest is a Part 10 file (or
 * a bare data set). Each file the reader accepts goes through deid_apply
 * with a fixed project key and a fixed set of masking rules; a success must
 * write as Part 10 and read back with Patient Identity Removed = YES; a
 * refusal must say why; nothing may crash, leak or trip a sanitizer. The
 * rules text is also fed through the INI parser and deid_masks_load once
 * per input with the input's bytes appended, so hostile rule files are
 * fuzzed too; and the input's bytes after the first, up to 256 and cut at
 * a NUL, are a --profile value (deid_parse_profile): one it accepts must
 * have basic and not both longitudinal options, and the canonical
 * "basic,OPTION..." of what it gave must parse to the same options; one
 * it refuses must say why. Layer: tests (fuzz). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/crypto.h"
#include "dicomvault/dataset.h"
#include "dicomvault/deid.h"
#include "dicomvault/ini.h"
#include "dicomvault/io.h"
#include "dicomvault/wbuf.h"

#define WRITE_MAX ((size_t)256 << 20)

static const char rules_text[] =
	"[deid \"mask us\"]\nmodality = US\nrect = 0,0,8,2; 1,1,2,2\n"
	"[deid \"mask any\"]\nmodality = *\nmanufacturer = *\nrect = 0,0,1,1\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "deid_fuzz: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	abort();
}

static struct deid_masks *load_rules(const uint8_t *extra, size_t n)
{
	struct deid_masks *m = NULL;
	struct ini_error ie;
	struct ini *ini = NULL;
	struct wbuf w;
	char why[256];

	wbuf_init(&w, (1u << 20) + sizeof rules_text);
	wbuf_put(&w, rules_text, sizeof rules_text - 1);
	wbuf_put(&w, extra, n);
	if (wbuf_err(&w) == ERR_OK && ini_parse(w.p, w.len, &ini, &ie) == ERR_OK) {
		why[0] = 0;
		if (deid_masks_load(ini, &m, why, sizeof why) != ERR_OK) {
			if (why[0] == 0)
				die("deid_masks_load failed without a reason", NULL);
			m = NULL;
		}
	}
	ini_free(ini);
	wbuf_fini(&w);
	return m;
}

static void profile_check(const uint8_t *p, size_t n)
{
	char spec[257], canon[1024], why[256] = "";
	unsigned opts = 0, again = 0, i;
	size_t len = 0;

	if (n > 256)
		n = 256;
	memcpy(spec, p, n);
	spec[n] = 0;
	if (deid_parse_profile(spec, &opts, why, sizeof why) != ERR_OK) {
		if (why[0] == 0)
			die("a profile refused without a reason", NULL);
		return;
	}
	if ((opts & ~DEID_ALL_OPTIONS) != 0 ||
	    ((opts & DEID_RETAIN_LONG_FULL_DATES) && (opts & DEID_RETAIN_LONG_MODIFIED_DATES)))
		die("a profile accepted with impossible options", spec);
	len = (size_t)snprintf(canon, sizeof canon, "basic");
	for (i = 0; i < DEID_NOPTS; i++)
		if (opts & (1u << i))
			len += (size_t)snprintf(canon + len, sizeof canon - len, ",%s", deid_option_name(i));
	if (deid_parse_profile(canon, &again, why, sizeof why) != ERR_OK || again != opts)
		die("the canonical form of a profile does not parse to it", canon);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t keybytes[32] = "dicomvault-deid-fuzz-project-key";
	static struct deid_masks *fixed;
	struct deid_masks *extra;
	struct secret *key = NULL;
	struct dcm_read_opts ro;
	struct dcm_errinfo ei;
	struct dcm_file *f = NULL, *g = NULL;
	struct deid_opts o;
	struct deid_stats st;
	struct src s, s2;
	struct src_mem m, m2;
	struct sink k;
	struct wbuf w;
	char why[512];
	enum err rc;

	if (size < 1)
		return 0;
	if (fixed == NULL) {
		struct ini_error ie;
		struct ini *ini = NULL;
		char w2[256];
		if (ini_parse((const uint8_t *)rules_text, sizeof rules_text - 1, &ini, &ie) != ERR_OK ||
		    deid_masks_load(ini, &fixed, w2, sizeof w2) != ERR_OK)
			die("the fixed rules do not load", NULL);
		ini_free(ini);
	}
	profile_check(data + 1, size - 1);
	extra = load_rules(data, size > 4096 ? 4096 : size);
	deid_masks_free(extra);
	if (secret_from_bytes(keybytes, sizeof keybytes, &key) != ERR_OK)
		return 0;
	memset(&o, 0, sizeof o);
	o.options = (unsigned)(data[0] | (data[0] << 8)) & DEID_ALL_OPTIONS;
	if ((o.options & DEID_RETAIN_LONG_FULL_DATES) && (o.options & DEID_RETAIN_LONG_MODIFIED_DATES))
		o.options &= ~DEID_RETAIN_LONG_FULL_DATES;
	o.flags = (data[0] & 0x80) ? DEID_F_PSEUDONYM_NAME | DEID_F_REFUSE_SUSPECT : 0;
	o.project_key = key;
	o.masks = (data[0] & 0x40) ? fixed : NULL;
	memset(&ro, 0, sizeof ro);
	ro.bulk_threshold = (data[0] & 0x20) ? 64 : 0;
	src_mem_init(&s, &m, data + 1, size - 1);
	if (dcm_file_read(&s, &ro, &f, &ei) != ERR_OK)
		goto out;
	memset(&st, 0, sizeof st);
	why[0] = 0;
	rc = deid_apply(f, &o, &st, why, sizeof why);
	if (rc == ERR_DENIED || rc == ERR_UNSUPPORTED) {
		if (why[0] == 0)
			die("refused without a reason", err_str(rc));
		goto out;
	}
	if (rc == ERR_INTERNAL)
		die("ERR_INTERNAL from deid_apply", why);
	if (rc != ERR_OK)
		goto out;
	wbuf_init(&w, WRITE_MAX);
	sink_wbuf(&k, &w);
	{
		struct dcm_write_opts wo;
		memset(&wo, 0, sizeof wo);
		rc = dcm_file_write(f, &wo, &k);
	}
	if (rc == ERR_INTERNAL)
		die("ERR_INTERNAL writing a de-identified file", NULL);
	if (rc == ERR_OK && wbuf_err(&w) == ERR_OK) {
		char v[8];
		memset(&ro, 0, sizeof ro);
		src_mem_init(&s2, &m2, w.p, w.len);
		if (dcm_file_read(&s2, &ro, &g, &ei) != ERR_OK)
			die("a de-identified file we wrote does not read back", ei.msg);
		if (dcm_ds_get_cstr(&g->ds, 0x00120062, v, sizeof v) != ERR_OK || strcmp(v, "YES") != 0)
			die("Patient Identity Removed is not YES", NULL);
		dcm_file_free(g);
		src_close(&s2);
	}
	wbuf_fini(&w);
out:
	dcm_file_free(f);
	src_close(&s);
	secret_free(key);
	return 0;
}
