/*
 * coffee.c - the French press workflow from "Why should async get all the
 * love?" (PyCon 2022), in corio's API.
 *
 * Heat water and grind coffee concurrently; add each to the press as soon
 * as it is ready, in whichever order they finish (as_completed); grinding
 * is CPU work, so it runs on the thread pool; then brew. The whole morning
 * runs in a task group with a deadline: if it passes, every step still
 * running is cancelled.
 *
 *   coffee [DEADLINE_MS]     exit 0: coffee made; exit 3: deadline exceeded
 */
#include "cio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static cio_pool *pool;

static intptr_t heat_water(void *arg)
{
    (void)arg;
    int rc = cio_sleep(CIO_MS(30)); /* waiting on the kettle: no CPU */
    return rc < 0 ? rc : (intptr_t) "heated water";
}

/* Runs on a worker thread: blocking or CPU-heavy work belongs here. */
static intptr_t grind_by_hand(void *arg)
{
    (void)arg;
    for (int turn = 0; turn < 20; turn++) {
        if (cio_job_cancelled())
            return -ECANCELED;
        usleep(1000);
    }
    return (intptr_t) "ground coffee";
}

static intptr_t grind_coffee(void *arg)
{
    (void)arg;
    return cio_pool_run(pool, grind_by_hand, NULL, CIO_NEVER);
}

static intptr_t make_coffee(void *arg)
{
    cio_time deadline = cio_after(CIO_MS((intptr_t)arg));
    if (cio_pool_create(NULL, &pool, NULL) < 0)
        return -ENOMEM;

    cio_group morning;
    cio_task *water, *coffee;
    cio_group_init(&morning, deadline);
    cio_group_spawn(&morning, &water, heat_water, NULL);
    cio_group_spawn(&morning, &coffee, grind_coffee, NULL);

    cio_future *steps[] = {cio_task_future(water), cio_task_future(coffee)};
    cio_as_completed it;
    cio_as_completed_init(&it, steps, 2);
    int i, added = 0;
    while ((i = cio_as_completed_next(&it, CIO_NEVER)) >= 0) {
        intptr_t r = cio_future_result(steps[i]);
        if (r >= 0) {
            printf("Adding %s to French press\n", (const char *)r);
            added++;
        }
    }
    cio_as_completed_fini(&it);

    if (added == 2) {
        printf("Brewing\n");
        if (cio_sleep(CIO_MS(40)) == 0) /* cancelled if the deadline passes */
            printf("Drinking coffee\n");
    }
    intptr_t result = cio_group_wait(&morning);

    cio_pool_shutdown(pool, CIO_POOL_CANCEL, CIO_NEVER);
    cio_pool_destroy(pool);
    return result;
}

int main(int argc, char **argv)
{
    intptr_t deadline_ms = argc > 1 ? atol(argv[1]) : 1000;
    setvbuf(stdout, NULL, _IONBF, 0);
    cio_loop *loop;
    if (cio_loop_create(&loop, NULL) < 0)
        return 1;
    intptr_t r = cio_run(loop, make_coffee, (void *)deadline_ms);
    cio_loop_destroy(loop);
    if (r == -ETIMEDOUT) {
        printf("Deadline of %ld ms exceeded: the morning was cancelled\n", (long)deadline_ms);
        return 3;
    }
    if (r < 0) {
        printf("failed: %s\n", strerror((int)-r));
        return 1;
    }
    return 0;
}
