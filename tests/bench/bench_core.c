/*
 * bench_core.c - `corio-bench core`: the runtime's figures, one
 * "name value unit" line each. Pinned to one CPU (default 0) unless --cpu -1.
 *
 *   switch_ns          one coroutine context switch (scheduler <-> task),
 *                      measured white-box through core's switch wrapper
 *   yield_ns           cio_yield() round trip through the scheduler (for
 *                      context: two switches plus run-queue and turn work)
 *   spawn_join_ns      cio_spawn + cio_join of an empty task
 *   coro_rss_bytes     resident memory per live idle task (default stack,
 *                      after first use), from /proc/self/statm
 *   pool_roundtrip_us  cio_pool_run of a no-op job, median
 *   timer_ops_per_s    callback timers armed and fired
 *
 * CORIO_DEBUG=1 runs yield_ns and spawn_join_ns in debug mode (cio_debug_set):
 * what its checks cost a task switch.
 */
#include "bench.h"

#include "cio_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Scales every iteration count (--scale N): longer runs, steadier figures. */
static int iterations_scale = 1;

/* CORIO_DEBUG=1: the task benchmarks run in debug mode. */
static void debug_from_env(cio_loop *l)
{
    const char *v = getenv("CORIO_DEBUG");
    if (v && strcmp(v, "1") == 0)
        (void)cio_debug_set(l, true);
}

#define BATCHES 7

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- switch --------------------------------------------------------------- */

static volatile bool pingpong_stop;

static intptr_t pingpong(void *arg)
{
    cio_task *self = cio_current();
    cio_loop *l = arg;
    while (!pingpong_stop)
        cio__ctx_switch(l, &self->ctx, &l->sched, self, NULL, false);
    return 0;
}

static double bench_switch(void)
{
    pingpong_stop = false;
    cio_loop *l;
    if (cio_loop_create(&l, NULL) < 0)
        return -1;
    cio_task *t;
    cio_spawn(l, &t, pingpong, l);
    /* Drive the task by hand, exactly as the scheduler does. */
    l->ready_head = l->ready_tail = NULL;
    l->current = t;
    const long n = 5000000L * iterations_scale;
    for (long i = 0; i < 1000; i++)
        cio__ctx_switch(l, &l->sched, &t->ctx, NULL, t, false);
    cio_time t0 = cio_clock();
    for (long i = 0; i < n; i++)
        cio__ctx_switch(l, &l->sched, &t->ctx, NULL, t, false);
    cio_time dt = cio_clock() - t0;
    pingpong_stop = true;
    cio__ctx_switch(l, &l->sched, &t->ctx, NULL, t, false); /* let it finish */
    cio__stack_put(l, t->stack); /* what the scheduler does after a task exits */
    t->stack = NULL;
    l->current = NULL;
    cio_detach(t);
    cio_loop_destroy(l);
    return (double)dt / (double)(2 * n);
}

/* ---- yield and spawn/join ----------------------------------------------------- */

static intptr_t yield_loop(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++)
        cio_yield();
    return 0;
}

static double bench_yield(void)
{
    cio_loop *l;
    cio_loop_create(&l, NULL);
    debug_from_env(l);
    long n = 2000000L * iterations_scale;
    cio_time t0 = cio_clock();
    cio_run(l, yield_loop, (void *)(intptr_t)n);
    cio_time dt = cio_clock() - t0;
    cio_loop_destroy(l);
    return (double)dt / (double)n;
}

static intptr_t empty(void *arg)
{
    (void)arg;
    return 0;
}

static intptr_t spawn_join_loop(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++) {
        cio_task *t;
        cio_spawn(NULL, &t, empty, NULL);
        cio_join(t, CIO_NEVER);
    }
    return 0;
}

static double bench_spawn_join(void)
{
    cio_loop *l;
    cio_loop_create(&l, NULL);
    debug_from_env(l);
    long n = 1000000L * iterations_scale;
    cio_run(l, spawn_join_loop, (void *)(intptr_t)10000); /* warm pools */
    cio_time t0 = cio_clock();
    cio_run(l, spawn_join_loop, (void *)(intptr_t)n);
    cio_time dt = cio_clock() - t0;
    cio_loop_destroy(l);
    return (double)dt / (double)n;
}

/* ---- memory per idle coroutine --------------------------------------------------- */

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (!f || fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = 0;
    if (f)
        fclose(f);
    return rss * sysconf(_SC_PAGESIZE);
}

static cio_event idle_gate;

static intptr_t idle_task(void *arg)
{
    (void)arg;
    return cio_event_wait(&idle_gate, CIO_NEVER);
}

static double idle_rss_result;

static intptr_t rss_main(void *arg)
{
    long n = (long)(intptr_t)arg;
    cio_event_init(&idle_gate);
    cio_task **ts = malloc((size_t)n * sizeof(*ts));
    long before = rss_bytes();
    for (long i = 0; i < n; i++)
        cio_spawn(NULL, &ts[i], idle_task, NULL);
    cio_yield(); /* every task ran to its first await: stacks in use */
    long after = rss_bytes();
    idle_rss_result = (double)(after - before) / (double)n;
    cio_event_set(&idle_gate);
    for (long i = 0; i < n; i++)
        cio_join(ts[i], CIO_NEVER);
    free(ts);
    return 0;
}

static double bench_idle_rss(void)
{
    cio_loop *l;
    cio_loop_create(&l, NULL);
    cio_run(l, rss_main, (void *)(intptr_t)100000);
    cio_loop_destroy(l);
    return idle_rss_result;
}

/* ---- pool round trip ------------------------------------------------------------------ */

static intptr_t noop_job(void *arg)
{
    return (intptr_t)arg;
}

static double pool_median_us;

static int cmp_time(const void *a, const void *b)
{
    cio_time x = *(const cio_time *)a, y = *(const cio_time *)b;
    return (x > y) - (x < y);
}

static intptr_t pool_main(void *arg)
{
    long n = (long)(intptr_t)arg;
    cio_pool *p;
    if (cio_pool_create(NULL, &p, NULL) < 0)
        return -1;
    cio_time *samples = malloc((size_t)n * sizeof(*samples));
    for (long i = 0; i < 1000; i++)
        cio_pool_run(p, noop_job, NULL, CIO_NEVER);
    for (long i = 0; i < n; i++) {
        cio_time t0 = cio_clock();
        cio_pool_run(p, noop_job, NULL, CIO_NEVER);
        samples[i] = cio_clock() - t0;
    }
    qsort(samples, (size_t)n, sizeof(*samples), cmp_time);
    pool_median_us = (double)samples[n / 2] / 1000.0;
    free(samples);
    cio_pool_shutdown(p, CIO_POOL_DRAIN, CIO_NEVER);
    cio_pool_destroy(p);
    return 0;
}

static double bench_pool(void)
{
    cio_loop *l;
    cio_loop_create(&l, NULL);
    cio_run(l, pool_main, (void *)(intptr_t)(5000 * iterations_scale));
    cio_loop_destroy(l);
    return pool_median_us;
}

/* ---- timers ------------------------------------------------------------------------- */

static long timers_fired;

static void timer_cb(cio_timer *t)
{
    (void)t;
    timers_fired++;
}

static double bench_timers(void)
{
    cio_loop *l;
    cio_loop_create(&l, NULL);
    long n = 500000L * iterations_scale;
    timers_fired = 0;
    cio_timer *tm = malloc((size_t)n * sizeof(*tm));
    uint64_t x = 88172645463325252ULL;
    cio_time t0 = cio_clock();
    for (long i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        cio_timer_init(&tm[i], l, timer_cb);
        cio_timer_start(&tm[i], t0 + (cio_time)(x % CIO_MS(5)));
    }
    cio_loop_run(l);
    cio_time dt = cio_clock() - t0;
    free(tm);
    cio_loop_destroy(l);
    return timers_fired == n ? (double)n / ((double)dt / 1e9) : -1;
}

int bench_core(int argc, char **argv)
{
    int cpu = 0;
    const char *only = NULL; /* --only NAME: one figure (for profiling) */
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--cpu") == 0 && i + 1 < argc)
            cpu = atoi(argv[++i]);
        else if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc)
            iterations_scale = atoi(argv[++i]) > 0 ? atoi(argv[i]) : 1;
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
    }
    static const struct {
        const char *name, *fmt;
        double (*fn)(void);
    } figures[] = {
        {"switch_ns", "%.2f ns", bench_switch},
        {"yield_ns", "%.2f ns", bench_yield},
        {"spawn_join_ns", "%.1f ns", bench_spawn_join},
        {"coro_rss_bytes", "%.0f bytes", bench_idle_rss},
        {"pool_roundtrip_us", "%.2f us", bench_pool},
        {"timer_ops_per_s", "%.0f ops/s", bench_timers},
    };
    bench_pin_cpu(cpu);
    for (size_t i = 0; i < sizeof(figures) / sizeof(figures[0]); i++) {
        if (only && strcmp(only, figures[i].name) != 0)
            continue;
        /* The median of BATCHES runs: steady on a noisy (virtual) machine. */
        double v[BATCHES];
        for (int b = 0; b < BATCHES; b++)
            v[b] = figures[i].fn();
        if (getenv("CORIO_BENCH_VERBOSE"))
            for (int b = 0; b < BATCHES; b++)
                fprintf(stderr, "  %s batch %d: %.2f\n", figures[i].name, b, v[b]);
        qsort(v, BATCHES, sizeof(double), cmp_double);
        printf("%s ", figures[i].name);
        printf(figures[i].fmt, v[BATCHES / 2]);
        printf("\n");
        fflush(stdout);
    }
    return 0;
}
