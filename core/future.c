/*
 * future.c - futures, wait-all, wait-any and as_completed.
 *
 * A future keeps a list of cio_waiter subscriptions; completing it unlinks
 * each subscription and calls it. Task waits subscribe a waiter whose
 * callback completes the task's wait; the task then runs in a later turn, so
 * cio_future_set() never runs task code inline.
 */
#include "cio_internal.h"

#include <errno.h>
#include <stdlib.h>

void cio_future_init(cio_future *f)
{
    cio_list_init(&f->waiters);
    f->result = 0;
    f->done = false;
    f->watched = false;
}

void cio__future_complete(cio_future *f, intptr_t result)
{
    f->done = true;
    f->result = result;
    cio_list *n;
    while ((n = cio_list_pop(&f->waiters)) != NULL) {
        cio_waiter *w = cio_container_of(n, cio_waiter, link);
        w->fn(w, f);
    }
}

int cio_future_set(cio_future *f, intptr_t result)
{
    if (f->done)
        return -EALREADY;
    if (cio__unlikely(f->watched))
        cio__debug_future_set(f, result); /* a job debug mode tracks */
    else
        cio__future_complete(f, result);
    return 0;
}

void cio_future_subscribe(cio_future *f, cio_waiter *w, void (*fn)(cio_waiter *, cio_future *))
{
    w->fn = fn;
    if (f->done) {
        cio_list_init(&w->link);
        fn(w, f);
        return;
    }
    cio_list_push(&f->waiters, &w->link);
}

void cio_future_unsubscribe(cio_waiter *w)
{
    cio_list_del(&w->link);
}

/* ---- await one ------------------------------------------------------------ */

typedef struct {
    cio__wait w;
    cio_waiter sub;
} await_one;

static void await_one_done(cio_waiter *sub, cio_future *f)
{
    await_one *a = cio_container_of(sub, await_one, sub);
    cio__wait_complete(&a->w, f->result);
}

static void await_one_interrupt(cio__wait *w)
{
    await_one *a = cio_container_of(w, await_one, w);
    cio_future_unsubscribe(&a->sub);
    cio__wait_complete(w, cio__wait_error(w));
}

intptr_t cio_await(cio_future *f, cio_time deadline)
{
    if (f->done)
        return f->result; /* nothing to wait for: not even a cancellation */
    await_one a;
    int rc = cio__wait_begin(&a.w, deadline, await_one_interrupt);
    if (rc < 0)
        return rc;
    a.sub.fn = await_one_done;
    cio_list_push(&f->waiters, &a.sub.link);
    return cio__wait_suspend(&a.w);
}

/* ---- wait all / wait any ---------------------------------------------------- */

/* One subscription per future that was not done yet; the wait completes when
 * the first (any) or the last (all) of them completes. The subscriptions live
 * on the waiting task's stack, or on the heap for large n. Unlinking a
 * subscription is harmless whether or not its future already popped it. */
typedef struct await_many await_many;

typedef struct {
    cio_waiter w;
    await_many *m;
} many_sub;

struct await_many {
    cio__wait w;
    many_sub *subs;
    size_t n, pending;
    bool any;
};

static void many_unsubscribe(await_many *m)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->subs[i].w.fn)
            cio_list_del(&m->subs[i].w.link);
}

static void many_sub_done(cio_waiter *sub, cio_future *f)
{
    (void)f;
    await_many *m = cio_container_of(sub, many_sub, w)->m;
    if (m->w.done || m->w.why != CIO__WHY_NONE)
        return;
    if (m->any || --m->pending == 0)
        cio__wait_complete(&m->w, 0);
}

static void many_interrupt(cio__wait *w)
{
    await_many *m = cio_container_of(w, await_many, w);
    many_unsubscribe(m);
    cio__wait_complete(w, cio__wait_error(w));
}

static int first_done(cio_future *const *fs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fs[i]->done)
            return (int)i;
    return -1;
}

static int wait_many(cio_future *const *fs, size_t n, cio_time deadline, bool any)
{
    await_many m = {.n = n, .any = any};
    for (size_t i = 0; i < n; i++)
        m.pending += !fs[i]->done;
    if (any ? m.pending < n : m.pending == 0)
        return any ? first_done(fs, n) : 0; /* already satisfied */
    int rc = cio__wait_begin(&m.w, deadline, many_interrupt);
    if (rc < 0)
        return rc;
    many_sub on_stack[8];
    m.subs = n <= 8 ? on_stack : malloc(n * sizeof(many_sub));
    if (!m.subs) {
        cio_timer_stop(&m.w.timer);
        return -ENOMEM;
    }
    /* Only futures still pending are subscribed: a done one may be reused
     * (re-initialised) by its owner while we wait. */
    for (size_t i = 0; i < n; i++) {
        m.subs[i].m = &m;
        m.subs[i].w.fn = fs[i]->done ? NULL : many_sub_done;
        if (!fs[i]->done)
            cio_list_push(&fs[i]->waiters, &m.subs[i].w.link);
    }
    intptr_t r = cio__wait_suspend(&m.w);
    many_unsubscribe(&m);
    if (m.subs != on_stack)
        free(m.subs);
    if (r < 0)
        return (int)r;
    return any ? first_done(fs, n) : 0;
}

int cio_wait_all(cio_future *const *fs, size_t n, cio_time deadline)
{
    return wait_many(fs, n, deadline, false);
}

int cio_wait_any(cio_future *const *fs, size_t n, cio_time deadline)
{
    if (n == 0)
        return -EINVAL;
    return wait_many(fs, n, deadline, true);
}

/* ---- as_completed ------------------------------------------------------------- */

typedef struct {
    cio_waiter w;
    cio_as_completed *it;
    size_t index;
} ac_sub;

static void ac_done(cio_waiter *sub, cio_future *f)
{
    (void)f;
    ac_sub *s = cio_container_of(sub, ac_sub, w);
    cio_as_completed *it = s->it;
    it->order[it->queued++] = s->index;
    if (it->wait)
        cio__wait_complete(it->wait, 0);
}

int cio_as_completed_init(cio_as_completed *it, cio_future *const *fs, size_t n)
{
    it->fs = fs;
    it->n = n;
    it->yielded = it->queued = 0;
    it->wait = NULL;
    it->order = malloc((n ? n : 1) * sizeof(size_t));
    ac_sub *subs = malloc((n ? n : 1) * sizeof(ac_sub));
    if (!it->order || !subs) {
        free(it->order);
        free(subs);
        it->order = NULL;
        it->subs = NULL;
        return -ENOMEM;
    }
    it->subs = subs;
    /* Futures already done come first, in index order. */
    for (size_t i = 0; i < n; i++) {
        subs[i].it = it;
        subs[i].index = i;
        cio_future_subscribe(fs[i], &subs[i].w, ac_done);
    }
    return 0;
}

static void ac_interrupt(cio__wait *w)
{
    cio__wait_complete(w, cio__wait_error(w));
}

int cio_as_completed_next(cio_as_completed *it, cio_time deadline)
{
    if (it->yielded == it->n)
        return -ENOENT;
    cio__wait w;
    int rc = cio__wait_begin(&w, deadline, ac_interrupt);
    if (rc < 0)
        return rc;
    if (it->yielded == it->queued) {
        it->wait = &w;
        rc = (int)cio__wait_suspend(&w);
        it->wait = NULL;
        if (rc < 0)
            return rc;
    } else {
        cio_timer_stop(&w.timer);
    }
    return (int)it->order[it->yielded++];
}

void cio_as_completed_fini(cio_as_completed *it)
{
    ac_sub *subs = it->subs;
    if (subs) {
        for (size_t i = 0; i < it->n; i++)
            cio_future_unsubscribe(&subs[i].w);
    }
    free(subs);
    free(it->order);
    it->subs = NULL;
    it->order = NULL;
}
