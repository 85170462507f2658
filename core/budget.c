/*
 * budget.c - the process-wide bound on buffered bytes (issue 8): counting,
 * admission, and waking the peers paused while it was full.
 */
#include "cio_internal.h"

/* Room again below 7/8 of the limit: waking at the limit itself would pause
 * the woken peers again at their first read. */
static size_t resume_mark(const cio_budget *b)
{
    return b->limit - b->limit / 8;
}

/* Each woken peer may bring this much before it is paused again: waking
 * them all at once would overshoot the limit by a read each. */
#define WAKE_ROOM (1024 * 1024)

static void budget_wake(cio_timer *t)
{
    cio_budget *b = cio_container_of(t, cio_budget, wake);
    size_t room = b->used < resume_mark(b) ? resume_mark(b) - b->used : 0;
    size_t n = room / WAKE_ROOM ? room / WAKE_ROOM : 1;
    while (n-- && !cio_list_empty(&b->waiters)) {
        cio_budget_waiter *w = cio_container_of(cio_list_pop(&b->waiters), cio_budget_waiter, link);
        b->waiting--;
        w->fn(w);
    }
    /* More wait: go on once the woken ones have had their turn. */
    if (!cio_list_empty(&b->waiters) && b->used < resume_mark(b))
        (void)cio_timer_start(&b->wake, cio_now());
}

void cio_budget_init(cio_budget *b, cio_loop *loop, size_t limit)
{
    *b = (cio_budget){.limit = limit};
    cio_list_init(&b->waiters);
    /* weak: the waiters' connections keep the loop alive */
    cio_timer_init_weak(&b->wake, loop, budget_wake);
}

void cio_budget_fini(cio_budget *b)
{
    cio_timer_stop(&b->wake);
}

void cio_budget_charge(cio_budget *b, size_t *charged, size_t now)
{
    if (!b) {
        *charged = now;
        return;
    }
    b->used = b->used - *charged + now;
    *charged = now;
    if (b->used > b->peak)
        b->peak = b->used;
    if (b->waiting && b->used < resume_mark(b) && !cio_timer_armed(&b->wake))
        (void)cio_timer_start(&b->wake, cio_now());
}

bool cio_budget_admit(cio_budget *b, size_t n)
{
    if (!b || !b->limit || (b->used <= b->limit && n <= b->limit - b->used))
        return true;
    b->refused++;
    return false;
}

void cio_budget_wait(cio_budget *b, cio_budget_waiter *w)
{
    cio_list_push(&b->waiters, &w->link);
    b->waiting++;
    b->paused++;
    if (b->used < resume_mark(b) && !cio_timer_armed(&b->wake))
        (void)cio_timer_start(&b->wake, cio_now()); /* freed meanwhile */
}

void cio_budget_cancel(cio_budget *b, cio_budget_waiter *w)
{
    if (cio_list_empty(&w->link))
        return;
    cio_list_del(&w->link);
    b->waiting--;
}
