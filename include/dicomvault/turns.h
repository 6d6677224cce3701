/* turns.h: bounded concurrency for costly work (Argon2id verifications,
 * image rendering): a turn is a unit of a counting semaphore (sem_init'ed
 * by its owner), waited for at most a given time and given back with
 * sem_post. Layer: base. */
#ifndef DICOMVAULT_TURNS_H
#define DICOMVAULT_TURNS_H

#include <semaphore.h>
#include "dicomvault/err.h"

/* A turn of s within wait_s seconds: ERR_OK, ERR_LIMIT when none came
 * free in time, ERR_INTERNAL when the clock cannot be read. */
WUR enum err turn_take(sem_t *s, unsigned wait_s);

#endif
