/* ini_fuzz.c: libFuzzer target for the dicomvault.conf parser. Layer: fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include "dicomvault/ini.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ini *ini = NULL;
	struct ini_error e;
	size_t i;

	if (ini_parse(data, size, &ini, &e) != ERR_OK)
		return 0;
	for (i = 0; i < ini->n; i++)
		if (ini_get(ini, ini->e[i].section, ini->e[i].sub, ini->e[i].key) == NULL)
			abort();  /* every parsed entry must be found again */
	ini_free(ini);
	return 0;
}
