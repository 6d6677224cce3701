/* aead_fuzz_key.h: the data key and object identity of fuzz/aead_fuzz.c,
 * shared with tests/tools/aead_seeds.c, which writes the objects of
 * fuzz/corpus/aead/ under them. Not a secret: test data. Layer: fuzz. */
#ifndef DICOMVAULT_AEAD_FUZZ_KEY_H
#define DICOMVAULT_AEAD_FUZZ_KEY_H

static const uint8_t aead_fuzz_key[32] = { 7, 1, 2, 3, 5, 8, 13, 21 };
static const char aead_fuzz_ad[] = "fuzz-object";

#endif
