/* turns.c: a turn of a counting semaphore, waited for at most a given
 * time, and the process-wide pools made on first use (turns.h).
 * Layer: base. */
#include <errno.h>
#include <time.h>
#include "dicomvault/turns.h"

enum err turn_take(sem_t *s, unsigned wait_s)
{
	struct timespec ts;
	int r;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return ERR_INTERNAL;
	ts.tv_sec += (time_t)wait_s;
	while ((r = sem_timedwait(s, &ts)) != 0 && errno == EINTR)
		;
	return r == 0 ? ERR_OK : ERR_LIMIT;
}

enum err turns_take(struct turns *t, unsigned wait_s)
{
	bool ok;

	(void)pthread_mutex_lock(&t->mu);
	if (!t->made) {
		t->ok = sem_init(&t->s, 0, t->n) == 0;
		t->made = true;
	}
	ok = t->ok;
	(void)pthread_mutex_unlock(&t->mu);
	return ok ? turn_take(&t->s, wait_s) : ERR_INTERNAL;
}

void turns_give(struct turns *t)
{
	(void)sem_post(&t->s);
}
