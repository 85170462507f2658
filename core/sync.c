/*
 * sync.c - events, semaphores and bounded channels for the tasks of one loop.
 * Nothing here needs atomics or locks: all of it runs on the loop thread and
 * only changes hands at awaiting calls.
 */
#include "cio_internal.h"

#include <errno.h>
#include <stdlib.h>

/* Every awaiting call is a cancellation point, even when it would not wait. */
static int checkpoint(void)
{
    return cio_cancelled() ? -ECANCELED : 0;
}

/* ---- event ------------------------------------------------------------------ */

void cio_event_init(cio_event *e)
{
    cio_list_init(&e->waiters);
    e->set = false;
}

void cio_event_set(cio_event *e)
{
    e->set = true;
    cio__qwait_wake_all(&e->waiters, 0);
}

void cio_event_clear(cio_event *e)
{
    e->set = false;
}

int cio_event_wait(cio_event *e, cio_time deadline)
{
    if (e->set)
        return checkpoint();
    cio__qwait qw;
    return (int)cio__qwait_on(&e->waiters, &qw, deadline);
}

/* ---- semaphore ---------------------------------------------------------------- */

void cio_sem_init(cio_sem *s, int64_t count)
{
    cio_list_init(&s->waiters);
    s->count = count;
}

int cio_sem_try_acquire(cio_sem *s)
{
    /* Waiters are served first (FIFO): no barging. */
    if (s->count > 0 && cio_list_empty(&s->waiters)) {
        s->count--;
        return 0;
    }
    return -EAGAIN;
}

int cio_sem_acquire(cio_sem *s, cio_time deadline)
{
    int rc = checkpoint();
    if (rc < 0)
        return rc;
    if (cio_sem_try_acquire(s) == 0)
        return 0;
    cio__qwait qw;
    /* A release hands the unit over directly: the count is not touched. */
    return (int)cio__qwait_on(&s->waiters, &qw, deadline);
}

void cio_sem_release(cio_sem *s)
{
    if (!cio__qwait_wake_one(&s->waiters, 0))
        s->count++;
}

/* ---- channel ---------------------------------------------------------------------- */

int cio_chan_init(cio_chan *c, size_t capacity)
{
    c->ring = NULL;
    if (capacity) {
        c->ring = malloc(capacity * sizeof(intptr_t));
        if (!c->ring)
            return -ENOMEM;
    }
    c->cap = capacity;
    c->head = c->len = 0;
    c->closed = false;
    cio_list_init(&c->senders);
    cio_list_init(&c->receivers);
    return 0;
}

void cio_chan_fini(cio_chan *c)
{
    free(c->ring);
    c->ring = NULL;
}

static cio__qwait *first_waiter(cio_list *q)
{
    return cio_list_empty(q) ? NULL : cio_container_of(q->next, cio__qwait, link);
}

int cio_chan_try_send(cio_chan *c, intptr_t item)
{
    if (c->closed)
        return -EPIPE;
    cio__qwait *r = first_waiter(&c->receivers);
    if (r) {
        /* A waiting receiver implies an empty buffer: hand over directly. */
        r->item = item;
        cio__qwait_wake_one(&c->receivers, 0);
        return 0;
    }
    if (c->len < c->cap) {
        c->ring[(c->head + c->len++) % c->cap] = item;
        return 0;
    }
    return -EAGAIN;
}

int cio_chan_send(cio_chan *c, intptr_t item, cio_time deadline)
{
    int rc = checkpoint();
    if (rc < 0)
        return rc;
    rc = cio_chan_try_send(c, item);
    if (rc != -EAGAIN)
        return rc;
    cio__qwait qw;
    qw.item = item;
    /* Woken with 0 once a receiver took the item, or -EPIPE on close. */
    return (int)cio__qwait_on(&c->senders, &qw, deadline);
}

int cio_chan_try_recv(cio_chan *c, intptr_t *item)
{
    cio__qwait *s = first_waiter(&c->senders);
    if (c->len) {
        *item = c->ring[c->head];
        c->head = (c->head + 1) % c->cap;
        c->len--;
        if (s) {
            /* Room again: move the longest-waiting sender's item in. */
            c->ring[(c->head + c->len++) % c->cap] = s->item;
            cio__qwait_wake_one(&c->senders, 0);
        }
        return 0;
    }
    if (s) {
        /* Rendezvous (capacity 0), or a sender racing an empty buffer. */
        *item = s->item;
        cio__qwait_wake_one(&c->senders, 0);
        return 0;
    }
    return c->closed ? -EPIPE : -EAGAIN;
}

int cio_chan_recv(cio_chan *c, intptr_t *item, cio_time deadline)
{
    int rc = checkpoint();
    if (rc < 0)
        return rc;
    rc = cio_chan_try_recv(c, item);
    if (rc != -EAGAIN)
        return rc;
    cio__qwait qw;
    rc = (int)cio__qwait_on(&c->receivers, &qw, deadline);
    if (rc == 0)
        *item = qw.item;
    return rc;
}

void cio_chan_close(cio_chan *c)
{
    if (c->closed)
        return;
    c->closed = true;
    cio__qwait_wake_all(&c->senders, -EPIPE);
    cio__qwait_wake_all(&c->receivers, -EPIPE);
}
