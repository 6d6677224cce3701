/* turns.c: a turn of a counting semaphore, waited for at most a given
 * time (turns.h). Layer: base. */
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
