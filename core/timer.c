/*
 * timer.c - the loop's timers: a binary min-heap of cio_timer in user space.
 * The loop's single io_uring_enter per turn waits with the earliest expiry
 * as its timeout (IORING_ENTER_EXT_ARG), so timers cost no SQE and no
 * syscall of their own. Also: sleep, tickers and the loop-lag monitor.
 */
#include "cio_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

cio_time cio_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (cio_time)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

cio_time cio_now(void)
{
    cio_loop *l = cio__tls_loop;
    return l ? l->now : cio_clock();
}

cio_time cio_after(cio_time ns)
{
    cio_time now = cio_now();
    if (ns <= 0)
        return now;
    if (ns >= CIO_NEVER - now)
        return CIO_NEVER;
    return now + ns;
}

/* ---- heap --------------------------------------------------------------------- */

static void heap_set(cio_loop *l, uint32_t i, cio_timer *t)
{
    l->heap[i] = t;
    t->heap_index = i;
}

static void sift_up(cio_loop *l, uint32_t i)
{
    cio_timer *t = l->heap[i];
    while (i > 1) {
        uint32_t p = i / 2;
        if (l->heap[p]->when <= t->when)
            break;
        heap_set(l, i, l->heap[p]);
        i = p;
    }
    heap_set(l, i, t);
}

static void sift_down(cio_loop *l, uint32_t i)
{
    cio_timer *t = l->heap[i];
    uint32_t n = l->heap_len;
    for (;;) {
        uint32_t c = i * 2;
        if (c > n)
            break;
        if (c + 1 <= n && l->heap[c + 1]->when < l->heap[c]->when)
            c++;
        if (t->when <= l->heap[c]->when)
            break;
        heap_set(l, i, l->heap[c]);
        i = c;
    }
    heap_set(l, i, t);
}

void cio_timer_init(cio_timer *t, cio_loop *loop, void (*fn)(cio_timer *t))
{
    t->when = 0;
    t->heap_index = 0;
    t->weak = false;
    t->fn = fn;
    t->loop = cio__loop_or_current(loop);
}

void cio__timer_set_weak(cio_timer *t, bool weak)
{
    if (t->heap_index && t->weak != weak)
        t->loop->weak_timers += weak ? 1 : (uint32_t)-1;
    t->weak = weak;
}

void cio_timer_init_weak(cio_timer *t, cio_loop *l, void (*fn)(cio_timer *t))
{
    cio_timer_stop(t);
    cio_timer_init(t, l, fn);
    cio__timer_set_weak(t, true);
}

int cio_timer_start(cio_timer *t, cio_time when)
{
    cio_loop *l = t->loop;
    if (t->heap_index) {
        cio_time old = t->when;
        t->when = when;
        if (when < old)
            sift_up(l, t->heap_index);
        else
            sift_down(l, t->heap_index);
        return 0;
    }
    if (l->heap_len + 1 >= l->heap_cap) {
        uint32_t cap = l->heap_cap ? l->heap_cap * 2 : 256;
        cio_timer **h = realloc(l->heap, cap * sizeof(*h));
        if (!h)
            return -ENOMEM;
        l->heap = h;
        l->heap_cap = cap;
    }
    t->when = when;
    l->heap_len++;
    l->heap[l->heap_len] = t;
    sift_up(l, l->heap_len);
    if (t->weak)
        l->weak_timers++;
    return 0;
}

void cio_timer_stop(cio_timer *t)
{
    uint32_t i = t->heap_index;
    if (!i)
        return;
    cio_loop *l = t->loop;
    cio_timer *last = l->heap[l->heap_len--];
    t->heap_index = 0;
    if (t->weak)
        l->weak_timers--;
    if (last != t) {
        heap_set(l, i, last);
        if (i > 1 && last->when < l->heap[i / 2]->when)
            sift_up(l, i);
        else
            sift_down(l, i);
    }
}

cio_time cio__timers_next(const cio_loop *l)
{
    return l->heap_len ? l->heap[1]->when : CIO_NEVER;
}

void cio__timers_fire(cio_loop *l)
{
    /* A callback may re-arm its timer for 'now' or earlier: bound the work to
     * the timers due when we started so a zero-period timer cannot spin. */
    uint32_t budget = l->heap_len;
    while (budget-- > 0 && l->heap_len && l->heap[1]->when <= l->now) {
        cio_timer *t = l->heap[1];
        cio_timer_stop(t);
        t->fn(t);
    }
}

/* ---- sleep and tickers ---------------------------------------------------------- */

static void sleep_interrupt(cio__wait *w)
{
    /* Reaching the call's own deadline is the sleep's success. */
    cio__wait_complete(w, w->why == CIO__WHY_TIMEOUT ? 0 : -ECANCELED);
}

int cio_sleep_until(cio_time deadline)
{
    cio__wait w;
    int rc = cio__wait_begin(&w, deadline, sleep_interrupt);
    if (rc == -ETIMEDOUT)
        return 0; /* already past */
    if (rc < 0)
        return rc;
    return (int)cio__wait_suspend(&w);
}

int cio_sleep(cio_time ns)
{
    return cio_sleep_until(cio_after(ns));
}

void cio_ticker_init(cio_ticker *t, cio_time period)
{
    t->period = period > 0 ? period : 1;
    t->next = cio_after(t->period);
}

int64_t cio_ticker_wait(cio_ticker *t, cio_time deadline)
{
    if (deadline < t->next) {
        /* The tick lies beyond the caller's deadline: wait for the deadline. */
        int rc = cio_sleep_until(deadline);
        return rc < 0 ? rc : -ETIMEDOUT;
    }
    int rc = cio_sleep_until(t->next);
    if (rc < 0)
        return rc;
    cio_time now = cio_now();
    int64_t ticks = 1 + (now - t->next) / t->period;
    t->next += ticks * t->period;
    return ticks;
}

/* ---- loop-lag monitor -------------------------------------------------------------- */

static unsigned log2_bucket(cio_time ns)
{
    return ns <= 0 ? 0 : 64 - (unsigned)__builtin_clzll((unsigned long long)ns);
}

void cio__lag_tick(cio_timer *tm)
{
    cio_loop *l = tm->loop;
    /* A fresh clock reading: the cached turn time would hide lag incurred by
     * the work done earlier in this same turn. */
    cio_time now = cio_clock();
    cio_time late = now - l->lag_next;
    if (late < 0)
        late = 0;
    cio_lag_stats *s = &l->lag;
    s->ticks++;
    s->last_ns = late;
    if (late > s->max_ns)
        s->max_ns = late;
    l->lag_sum += late;
    l->lag_hist[log2_bucket(late)]++;
    s->drift_ns = now - (l->lag_start + (cio_time)s->ticks * l->lag_interval);
    /* The next tick is due one interval after this one fired. */
    l->lag_next = now + l->lag_interval;
    (void)cio_timer_start(tm, l->lag_next);
}

int cio_lag_start(cio_loop *l, cio_time interval_ns)
{
    l = cio__loop_or_current(l);
    if (!l)
        return -EINVAL;
    cio_timer_init_weak(&l->lag_timer, l, cio__lag_tick);
    l->lag = (cio_lag_stats){0};
    l->lag_sum = 0;
    for (unsigned i = 0; i < 64; i++)
        l->lag_hist[i] = 0;
    if (interval_ns <= 0)
        return 0;
    l->lag.interval_ns = interval_ns;
    l->lag_interval = interval_ns;
    l->lag_start = cio_clock();
    l->lag_next = l->lag_start + interval_ns;
    return cio_timer_start(&l->lag_timer, l->lag_next);
}

static cio_time hist_percentile(const cio_loop *l, uint64_t ticks, double q)
{
    uint64_t want = (uint64_t)((double)ticks * q + 0.5);
    if (want == 0)
        want = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < 64; i++) {
        seen += l->lag_hist[i];
        if (seen >= want)
            return i == 0 ? 0 : (cio_time)((1ULL << i) - 1);
    }
    return l->lag.max_ns;
}

void cio_lag_histogram(const cio_loop *l, uint64_t counts[64], cio_time *sum_ns)
{
    for (unsigned i = 0; i < 64; i++)
        counts[i] = l->lag_hist[i];
    *sum_ns = l->lag_sum;
}

void cio_lag_get(const cio_loop *l, cio_lag_stats *out)
{
    *out = l->lag;
    if (l->lag.ticks) {
        out->mean_ns = l->lag_sum / (cio_time)l->lag.ticks;
        out->p50_ns = hist_percentile(l, l->lag.ticks, 0.50);
        out->p99_ns = hist_percentile(l, l->lag.ticks, 0.99);
        if (out->p50_ns > out->max_ns)
            out->p50_ns = out->max_ns;
        if (out->p99_ns > out->max_ns)
            out->p99_ns = out->max_ns;
    }
}
