/* peers_fuzz.c: libFuzzer target for the [peer "AE"] sections of
 * dicomvault.conf (ini_parse, then peers_load). Checks: every loaded peer
 * has exactly one certificate binding (or none with tls = no), a valid AE title and collection,
 * and is found again by its AE title; its fingerprint formats and parses
 * back to the same bytes. Layer: fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/ini.h"
#include "dicomvault/peers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ini *ini = NULL;
	struct ini_error e;
	struct peers *p = NULL;
	char why[256];
	size_t i;

	if (ini_parse(data, size, &ini, &e) != ERR_OK)
		return 0;
	if (peers_load(ini, &p, why, sizeof why) == ERR_OK) {
		for (i = 0; i < p->n; i++) {
			const struct peer *pe = &p->p[i];
			char fp[96];
			uint8_t back[32];
			if ((pe->has_fp && pe->ca[0] != 0) || (!pe->has_fp && pe->ca[0] == 0 && !pe->plain) || !pdu_ae_ok(pe->ae) || pe->collection[0] == 0 ||
			    peers_find(p, pe->ae) != pe || (pe->host[0] != 0) != (pe->port != 0))
				abort();
			peers_fingerprint_format(pe->fp, fp);
			if (peers_fingerprint_parse(fp, back) != ERR_OK || memcmp(back, pe->fp, 32) != 0)
				abort();
		}
		peers_free(p);
	}
	ini_free(ini);
	return 0;
}
