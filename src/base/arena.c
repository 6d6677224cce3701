/* arena.c: region allocator for parsed datasets. Layer: base. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/arena.h"

#define ARENA_CHUNK (32u * 1024)

struct arena_chunk {
	struct arena_chunk *next;
	size_t size;
	size_t used;
	_Alignas(16) unsigned char data[];
};

void arena_init(struct arena *a, size_t max)
{
	a->head = NULL;
	a->total = 0;
	a->max = max;
}

void arena_fini(struct arena *a)
{
	struct arena_chunk *c = a->head, *n;

	while (c) {
		n = c->next;
		free(c);
		c = n;
	}
	a->head = NULL;
	a->total = 0;
}

void *arena_alloc(struct arena *a, size_t n)
{
	struct arena_chunk *c = a->head;
	size_t need = (n + 15) & ~(size_t)15;

	if (need < n)
		return NULL;
	if (a->max && (need > a->max || a->total > a->max - need))
		return NULL;
	if (c == NULL || c->size - c->used < need) {
		size_t sz = need > ARENA_CHUNK / 4 ? need : ARENA_CHUNK;
		struct arena_chunk *nc;
		if (sz > SIZE_MAX - sizeof *nc)
			return NULL;
		nc = malloc(sizeof *nc + sz);
		if (nc == NULL)
			return NULL;
		nc->size = sz;
		nc->used = 0;
		if (c != NULL && sz != ARENA_CHUNK) {
			/* big block: keep the current chunk in front for small ones */
			nc->next = c->next;
			c->next = nc;
		} else {
			nc->next = c;
			a->head = nc;
		}
		c = nc;
	}
	c->used += need;
	a->total += need;
	return c->data + c->used - need;
}

void *arena_zalloc(struct arena *a, size_t n)
{
	void *p = arena_alloc(a, n);

	if (p)
		memset(p, 0, n);
	return p;
}
