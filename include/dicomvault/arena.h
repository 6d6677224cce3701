/* arena.h: region allocator; everything is freed at once. Layer: base. */
#ifndef DICOMVAULT_ARENA_H
#define DICOMVAULT_ARENA_H

#include <stddef.h>

struct arena_chunk;

struct arena {
	struct arena_chunk *head;
	size_t total;   /* bytes handed out */
	size_t max;     /* cap on total; 0 = none */
};

void arena_init(struct arena *a, size_t max);
void arena_fini(struct arena *a);
/* 16-byte aligned, uninitialised; NULL when out of memory or past max. */
void *arena_alloc(struct arena *a, size_t n);
void *arena_zalloc(struct arena *a, size_t n);

#endif
