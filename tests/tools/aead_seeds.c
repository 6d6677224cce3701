/* aead_seeds.c: writes the seed objects of fuzz/corpus/aead/ (run as
 * `build/check/tools/aead_seeds fuzz/corpus/aead`): objects under the fuzz
 * target's key and identity (fuzz/aead_fuzz_key.h), each file the mode
 * byte 0 (an object, read in whole chunks) or 2 (reads of 3 bytes), then
 * the object; plaintexts of 0, 1, 100 and 3000 bytes, chunks of 16, 64 and
 * the default size, both algorithms; and two round-trip inputs (mode 1).
 * Layer: tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/crypto.h"
#include "dicomvault/io.h"
#include "dicomvault/wbuf.h"
#include "../../fuzz/aead_fuzz_key.h"

static int put(const char *dir, const char *name, uint8_t mode, const void *p, size_t n)
{
	char path[4096];
	FILE *f;
	int ok;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL)
		return 1;
	ok = fputc(mode, f) != EOF && fwrite(p, 1, n, f) == n;
	return fclose(f) != 0 || !ok;
}

int main(int argc, char **argv)
{
	static const size_t sizes[] = { 0, 1, 100, 3000 };
	static const uint32_t chunks[] = { 16, 64, 0 };
	uint8_t pt[3000];
	struct secret *key = NULL;
	char name[64];
	size_t i, j, a;
	int bad = 0;

	if (argc != 2) {
		fputs("usage: aead_seeds DIR\n", stderr);
		return 2;
	}
	for (i = 0; i < sizeof pt; i++)
		pt[i] = (uint8_t)(i * 37 + i / 251);
	if (crypto_init() != ERR_OK || secret_from_bytes(aead_fuzz_key, sizeof aead_fuzz_key, &key) != ERR_OK)
		return 1;
	for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		for (j = 0; j < sizeof chunks / sizeof chunks[0]; j++)
			for (a = 1; a <= 2; a++) {
				struct aead_opts o = { .chunk = chunks[j], .alg = (enum aead_alg)a };
				uint8_t *ct = NULL;
				size_t n = 0;
				if (aead_seal(key, aead_fuzz_ad, sizeof aead_fuzz_ad - 1, pt, sizes[i], &o, &ct, &n) != ERR_OK)
					return 1;
				snprintf(name, sizeof name, "obj_%zu_c%u_a%zu", sizes[i], (unsigned)chunks[j], a);
				bad |= put(argv[1], name, (uint8_t)((sizes[i] + j) % 2 ? 2 : 0), ct, n);
				free(ct);
			}
	bad |= put(argv[1], "rt_short", 1, "\x05hello, world", 13);
	bad |= put(argv[1], "rt_3000", 1, pt, sizeof pt);
	secret_free(key);
	return bad;
}
