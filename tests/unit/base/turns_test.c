/* turns_test.c: turn_take, the timed wait for a turn of a counting
 * semaphore: turns free at once, none free (ERR_LIMIT after the wait), a
 * turn given back by another thread during the wait; a struct turns pool
 * made on first use, its n turns taken, then none, then one given back.
 * Layer: tests. */
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include "test.h"
#include "dicomvault/turns.h"

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

TEST(free_turns_then_none)
{
	sem_t s;
	double t0;
	int v = -1;

	CHECK(sem_init(&s, 0, 2) == 0);
	CHECK(turn_take(&s, 1) == ERR_OK);
	CHECK(turn_take(&s, 1) == ERR_OK);
	t0 = now_s();
	CHECK(turn_take(&s, 1) == ERR_LIMIT);
	CHECK(now_s() - t0 >= 0.5);   /* it waited before giving up */
	CHECK(sem_post(&s) == 0);
	CHECK(turn_take(&s, 0) == ERR_OK);   /* no wait needed */
	CHECK(turn_take(&s, 0) == ERR_LIMIT);
	CHECK(sem_getvalue(&s, &v) == 0 && v == 0);
	sem_destroy(&s);
}

static void *give_later(void *arg)
{
	usleep(200 * 1000);
	(void)sem_post(arg);
	return NULL;
}

TEST(turn_given_back_while_waiting)
{
	sem_t s;
	pthread_t th;

	CHECK(sem_init(&s, 0, 0) == 0);
	CHECK(pthread_create(&th, NULL, give_later, &s) == 0);
	CHECK(turn_take(&s, 5) == ERR_OK);
	CHECK(pthread_join(th, NULL) == 0);
	sem_destroy(&s);
}

TEST(pool_made_on_first_use)
{
	static struct turns two = TURNS_INIT(2);

	CHECK(!two.made);
	CHECK_EQ_INT(turns_take(&two, 0), ERR_OK);
	CHECK(two.made && two.ok);
	CHECK_EQ_INT(turns_take(&two, 0), ERR_OK);
	CHECK_EQ_INT(turns_take(&two, 0), ERR_LIMIT);
	turns_give(&two);
	CHECK_EQ_INT(turns_take(&two, 0), ERR_OK);
	turns_give(&two);
	turns_give(&two);
}

int main(void)
{
	RUN(free_turns_then_none);
	RUN(turn_given_back_while_waiting);
	RUN(pool_made_on_first_use);
	return TEST_DONE();
}
