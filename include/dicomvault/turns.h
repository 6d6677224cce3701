/* turns.h: bounded concurrency for costly work (Argon2id verifications,
 * image rendering, heavy frame decoding): a turn is a unit of a counting
 * semaphore, waited for at most a given time and given back with
 * sem_post; struct turns is a process-wide pool of them made on first
 * use. Layer: base. */
#ifndef DICOMVAULT_TURNS_H
#define DICOMVAULT_TURNS_H

#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include "dicomvault/err.h"

/* A turn of s within wait_s seconds: ERR_OK, ERR_LIMIT when none came
 * free in time, ERR_INTERNAL when the clock cannot be read. */
WUR enum err turn_take(sem_t *s, unsigned wait_s);

/* A pool of n turns for the whole process, its semaphore made by the first
 * turns_take: static struct turns t = TURNS_INIT(n); */
struct turns {
	pthread_mutex_t mu;
	bool made, ok;
	unsigned n;
	sem_t s;
};
#define TURNS_INIT(N) { .mu = PTHREAD_MUTEX_INITIALIZER, .n = (N) }

/* A turn of t within wait_s seconds, as turn_take (ERR_INTERNAL also when
 * its semaphore cannot be made); given back with turns_give. */
WUR enum err turns_take(struct turns *t, unsigned wait_s);
void turns_give(struct turns *t);

#endif
