/* qr_fuzz.c: libFuzzer target for the C-FIND response identifiers that
 * `dicomvault import --from AE` reads from the peer (proto/qr.c,
 * qr_ident_uid), in both VR encodings, for the three unique keys. Checks:
 * a UID read is a UID of 1..64 characters as the store takes them
 * (vr_uid_ok: a legacy leading-zero component passes); it builds into an
 * identifier (qr_ident_build) that reads back to the same UID. Layer:
 * fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/qr.h"
#include "dicomvault/vr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const levels[] = { "STUDY", "SERIES", "IMAGE" };
	int ex;
	size_t l;

	for (ex = 0; ex < 2; ex++)
		for (l = 0; l < 3; l++) {
			char out[65], back[65];
			struct wbuf w;
			enum err rc = qr_ident_uid(data, size, ex, qr_level_key(levels[l]), out);
			if (rc != ERR_OK)
				continue;
			if (strlen(out) == 0 || strlen(out) > 64 || !vr_uid_ok(out, strlen(out)))
				abort();
			wbuf_init(&w, 4096);
			if (qr_ident_build(&w, ex, levels[l], l == 0 ? out : "1.2", l == 1 ? out : "1.2.3",
			                   l == 2 ? out : NULL) != ERR_OK ||
			    qr_ident_uid(w.p, w.len, ex, qr_level_key(levels[l]), back) != ERR_OK || strcmp(back, out) != 0)
				abort();
			wbuf_fini(&w);
		}
	return 0;
}
