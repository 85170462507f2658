/*
 * harness.h - shared helpers for corio's Check suites.
 *
 * Every test runs in its own forked process (Check's CK_FORK), which is also
 * what io_uring's SINGLE_ISSUER wants: each test creates its own loop. A
 * failed ck_assert inside a coroutine ends the forked child, so asserting on
 * a coroutine stack is safe in fork mode (and only there).
 */
#ifndef CORIO_TEST_HARNESS_H
#define CORIO_TEST_HARNESS_H

#include "check_harness.h"
#include "cio.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* How long a test waits for something that takes microseconds: far more
 * than it ever needs, even on a loaded machine, and well inside the tcase
 * timeouts (5 s and more), so that a failure is an assertion, not a kill. */
#define T_PATIENCE_MS 3000

/* [awaits] Polls cond every millisecond until it holds or ms milliseconds
 * pass; evaluates to cond's final value. Tests wait on an observable state
 * this way instead of sleeping a fixed time and hoping the work was done. */
#define T_AWAIT(cond, ms)                                          \
    __extension__({                                                \
        cio_time t_until_ = cio_clock() + CIO_MS(ms);              \
        while (!(cond) && cio_clock() < t_until_)                  \
            cio_sleep(CIO_MS(1));                                  \
        (cond);                                                    \
    })

/* Runs fn(arg) as the main task of a fresh loop; returns its result. */
static inline intptr_t t_run(cio_fn fn, void *arg)
{
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    intptr_t r = cio_run(l, fn, arg);
    cio_loop_destroy(l);
    return r;
}

/* A test whose body is the task fn on a fresh loop, which must return
 * expect. */
#define T_LOOP_TEST(name, fn, expect)                          \
    START_TEST(name)                                           \
    {                                                          \
        ck_assert_int_eq(t_run((fn), NULL), (expect));         \
    }                                                          \
    END_TEST

/* This process's resident memory in KiB (/proc/self/statm). */
static inline long t_rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%ld %ld", &pages, &rss), 2);
    fclose(f);
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ---- a loop on a thread of its own, for the cross-thread tests ---------------- */

typedef struct t_thread {
    pthread_t th;
    cio_fn fn; /* the loop's main task; NULL: wait for t_thread_stop */
    void *arg;
    cio_loop *loop;   /* valid from t_thread_start until the thread ends */
    cio_event stop;   /* on loop: ends the NULL main task */
    intptr_t result;  /* the main task's */
    atomic_int state; /* 1: loop created; 2: main task returned */
} t_thread;

static inline intptr_t t_thread_idle(void *arg)
{
    return cio_event_wait(&((t_thread *)arg)->stop, CIO_NEVER);
}

static inline void *t_thread_main(void *arg)
{
    t_thread *t = arg;
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    cio_event_init(&t->stop);
    t->loop = l;
    atomic_store(&t->state, 1);
    t->result = t->fn ? cio_run(l, t->fn, t->arg) : cio_run(l, t_thread_idle, t);
    atomic_store(&t->state, 2);
    cio_loop_destroy(l);
    return NULL;
}

/* [awaits] Starts a thread whose loop runs fn(arg) (fn NULL: an idle main
 * task until t_thread_stop) and returns once t->loop is set. */
static inline void t_thread_start(t_thread *t, cio_fn fn, void *arg)
{
    t->fn = fn;
    t->arg = arg;
    atomic_init(&t->state, 0);
    ck_assert_int_eq(pthread_create(&t->th, NULL, t_thread_main, t), 0);
    ck_assert(T_AWAIT(atomic_load(&t->state) >= 1, T_PATIENCE_MS));
}

/* [awaits] Waits for t's main task to return and its thread to end; returns
 * the task's result. */
static inline intptr_t t_thread_join(t_thread *t)
{
    ck_assert(T_AWAIT(atomic_load(&t->state) == 2, T_PATIENCE_MS));
    pthread_join(t->th, NULL);
    return t->result;
}

static inline void t_thread_stop_cb(void *arg)
{
    cio_event_set(&((t_thread *)arg)->stop);
}

/* [awaits] Ends the idle main task of t (started with fn NULL) and joins. */
static inline intptr_t t_thread_stop(t_thread *t)
{
    ck_assert_int_eq(cio_loop_post(t->loop, t_thread_stop_cb, t), 0);
    return t_thread_join(t);
}

#endif
