/*
 * heartbeat.c - the counter and its heartbeat from "asyncio for threading
 * users", in corio's API, and what one blocking call does to them.
 *
 * count() bumps every value of an array, yielding only between passes, so
 * heartbeat() always finds them equal: no lock. The heartbeat ticks every
 * 100 ms and reports its jitter (how late a tick is) and drift (the sum of
 * the lateness). Then a blocking call (usleep 300 ms, a stand-in for a
 * synchronous library) runs once on the loop, freezing every task, and once
 * on the thread pool, which the heartbeat does not notice.
 *
 *   heartbeat     exit 0; 1 if the values ever differ or the frozen loop went unseen
 */
#include "cio.h"

#include <stdio.h>
#include <unistd.h>

#define SIZE     100000
#define INTERVAL CIO_MS(100)
#define BLOCK_US 300000

static int values[SIZE];
static cio_time worst; /* the worst lateness of the current phase */

static intptr_t count(void *arg)
{
    (void)arg;
    while (cio_yield() == 0) /* the only point where another task may run */
        for (int i = 0; i < SIZE; i++)
            values[i]++;
    return 0;
}

static intptr_t heartbeat(void *arg)
{
    (void)arg;
    cio_time t0 = cio_now(), drift = 0;
    for (int tick = 1; cio_sleep_until(t0 + tick * INTERVAL) == 0; tick++) {
        for (int i = 0; i < SIZE; i++)
            if (values[i] != values[0])
                return 1;
        cio_time late = cio_now() - (t0 + tick * INTERVAL);
        drift += late;
        worst = late > worst ? late : worst;
        printf("All values are %d at +%.5fs (jitter %.1f ms, drift %.1f ms)\n", values[0],
               (double)(cio_now() - t0) / 1e9, late / 1e6, drift / 1e6);
    }
    return 0;
}

static intptr_t blocking_call(void *arg)
{
    (void)arg;
    usleep(BLOCK_US);
    return 0;
}

static intptr_t experiment(void *arg)
{
    (void)arg;
    cio_pool *pool;
    cio_task *counter, *beat;
    if (cio_pool_create(NULL, &pool, NULL) < 0)
        return 1;
    cio_spawn(NULL, &counter, count, NULL);
    cio_spawn(NULL, &beat, heartbeat, NULL);
    cio_sleep(CIO_MS(350));
    printf("-- a blocking call on the loop: every task waits\n");
    worst = 0;
    blocking_call(NULL);
    cio_sleep(CIO_MS(250));
    cio_time frozen = worst;
    printf("-- the same call on the thread pool: the loop keeps turning\n");
    worst = 0;
    cio_pool_run(pool, blocking_call, NULL, CIO_NEVER);
    cio_sleep(CIO_MS(150));
    printf("worst jitter: %.1f ms blocked on the loop, %.1f ms on the pool\n", frozen / 1e6,
           worst / 1e6);
    cio_task_cancel(counter);
    cio_task_cancel(beat);
    intptr_t r = cio_join(beat, CIO_NEVER) == 1;
    cio_join(counter, CIO_NEVER);
    cio_pool_shutdown(pool, CIO_POOL_DRAIN, CIO_NEVER);
    cio_pool_destroy(pool);
    /* A tick that fell due during the 300 ms on the loop came at least
     * 200 ms late, however fast or loaded the machine. */
    return r || frozen < CIO_US(BLOCK_US) - INTERVAL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    cio_loop *loop;
    if (cio_loop_create(&loop, NULL) < 0)
        return 1;
    intptr_t r = cio_run(loop, experiment, NULL);
    cio_loop_destroy(loop);
    return r == 0 ? 0 : 1;
}
