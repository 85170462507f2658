/*
 * afternoon.c - two examples from "Why should async get all the love?"
 * (PyCon 2022), in corio's API.
 *
 * The counter: two tasks each await something, then add one to a shared
 * counter. "+=" has no awaiting call in it, so it cannot interleave: no
 * lock, and the count is always 2.
 *
 * The afternoon, as nested task groups (structured concurrency): a podcast
 * plays throughout; first the coffee workflow (heat water and grind coffee
 * at once, add each to the press as it is ready, brew, drink), then the
 * chores (dishes and laundry at once). Leaving a group waits for all its
 * tasks; the podcast is stopped (cancelled) when the afternoon is over.
 *
 *   afternoon     exit 0
 */
#include "cio.h"

#include <stdio.h>

static int counter;

static intptr_t do_something(void *arg)
{
    (void)arg;
    printf("doing something....\n");
    cio_sleep(CIO_MS(1)); /* call_some_coroutine() */
    counter += 1;         /* atomic: no awaiting call in it */
    return 0;
}

static intptr_t step(void *what)
{
    cio_sleep(CIO_MS(20));
    return (intptr_t)what;
}

static intptr_t listen_to_podcast(void *arg)
{
    (void)arg;
    for (int minute = 1; cio_sleep(CIO_MS(15)) == 0; minute++)
        printf("  (podcast, minute %d)\n", minute);
    return 0;
}

static intptr_t afternoon(void *arg)
{
    (void)arg;
    cio_group two;
    cio_group_init(&two, CIO_NEVER);
    cio_group_spawn(&two, NULL, do_something, NULL);
    cio_group_spawn(&two, NULL, do_something, NULL);
    cio_group_wait(&two);
    printf("Counter: %d\n", counter);

    cio_group main_group, coffee, chores;
    cio_task *podcast, *water, *grounds;
    cio_group_init(&main_group, CIO_NEVER);
    cio_group_spawn(&main_group, &podcast, listen_to_podcast, NULL);

    cio_group_init(&coffee, CIO_NEVER);
    cio_group_spawn(&coffee, &water, step, "heated water");
    cio_group_spawn(&coffee, &grounds, step, "ground coffee");
    cio_future *ready[] = {cio_task_future(water), cio_task_future(grounds)};
    cio_as_completed it;
    cio_as_completed_init(&it, ready, 2);
    for (int i; (i = cio_as_completed_next(&it, CIO_NEVER)) >= 0;)
        printf("Adding %s to French press\n", (const char *)cio_future_result(ready[i]));
    cio_as_completed_fini(&it);
    cio_group_wait(&coffee);
    cio_sleep(CIO_MS(20));
    printf("Drinking coffee\n");

    cio_group_init(&chores, CIO_NEVER);
    cio_group_spawn(&chores, NULL, step, "dishes");
    cio_group_spawn(&chores, NULL, step, "laundry");
    cio_group_wait(&chores);
    printf("Chores done\n");

    cio_task_cancel(podcast); /* the afternoon is over */
    cio_group_wait(&main_group);
    return counter == 2 ? 0 : 1;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    cio_loop *loop;
    if (cio_loop_create(&loop, NULL) < 0)
        return 1;
    intptr_t r = cio_run(loop, afternoon, NULL);
    cio_loop_destroy(loop);
    return (int)r;
}
