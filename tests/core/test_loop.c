/* The loop: ring setup and fallbacks, CQ overflow, run/stop semantics. */
#include "harness.h"

#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

START_TEST(ring_uses_single_issuer_and_defer_taskrun)
{
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    unsigned f = cio_loop_ring_flags(l);
    ck_assert(f & IORING_SETUP_SINGLE_ISSUER);
    ck_assert(f & IORING_SETUP_DEFER_TASKRUN);
    ck_assert_ptr_eq(cio_loop_current(), l);
    cio_loop_destroy(l);
    ck_assert_ptr_null(cio_loop_current());
}
END_TEST

static intptr_t main_sleep_and_value(void *arg)
{
    cio_sleep(CIO_MS(2));
    return (intptr_t)arg;
}

START_TEST(plain_ring_fallback_works)
{
    setenv("CORIO_PLAIN_RING", "1", 1);
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    ck_assert(!(cio_loop_ring_flags(l) & IORING_SETUP_DEFER_TASKRUN));
    ck_assert_int_eq(cio_run(l, main_sleep_and_value, (void *)3), 3);
    cio_loop_destroy(l);
}
END_TEST

enum { PAIRS = 300 };
static int pairs[PAIRS][2];
static int got;

static intptr_t recv_one(void *arg)
{
    int i = (int)(intptr_t)arg;
    char b[8];
    ssize_t n = cio_recv(pairs[i][1], b, sizeof(b), 0, CIO_NEVER);
    got += n == 1;
    return n == 1 ? 0 : -EIO;
}

static intptr_t main_overflow(void *arg)
{
    (void)arg;
    for (int i = 0; i < PAIRS; i++)
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pairs[i]), 0);
    cio_group g;
    cio_group_init(&g, CIO_NEVER);
    for (int i = 0; i < PAIRS; i++)
        cio_group_spawn(&g, NULL, recv_one, (void *)(intptr_t)i);
    cio_yield(); /* all receives are armed */
    cio_yield();
    for (int i = 0; i < PAIRS; i++)
        ck_assert_int_eq(write(pairs[i][0], "x", 1), 1);
    return cio_group_wait(&g);
}

/* Runs main_overflow on a ring of the given sizes: every receive must
 * complete. Returns the loop's stats. */
static cio_loop_stats run_pairs(unsigned sq_entries, unsigned cq_entries)
{
    cio_loop *l;
    cio_loop_opts o = {.sq_entries = sq_entries, .cq_entries = cq_entries};
    ck_assert_int_eq(cio_loop_create(&l, &o), 0);
    ck_assert_int_eq(cio_run(l, main_overflow, NULL), 0);
    cio_loop_stats st;
    cio_loop_get_stats(l, &st);
    cio_loop_destroy(l);
    ck_assert_int_eq(got, PAIRS);
    return st;
}

START_TEST(cq_overflow_is_flushed_not_lost)
{
    /* A plain ring posts completions as they happen, so 300 of them
     * overflow a 32-entry CQ. (With DEFER_TASKRUN the kernel may instead
     * hold task work back until there is room: see the next test.) */
    setenv("CORIO_PLAIN_RING", "1", 1);
    ck_assert_int_gt(run_pairs(16, 32).cq_overflows, 0);
}
END_TEST

START_TEST(small_cq_with_defer_taskrun_loses_nothing)
{
    (void)run_pairs(16, 32);
}
END_TEST

START_TEST(more_operations_than_sq_entries)
{
    (void)run_pairs(4, 4096); /* more concurrent operations than SQ entries */
}
END_TEST

static int leftover_result = 1;

static intptr_t leftover(void *arg)
{
    (void)arg;
    leftover_result = cio_sleep(CIO_SEC(100));
    return 0;
}

static intptr_t main_leaves_task(void *arg)
{
    (void)arg;
    cio_spawn(NULL, NULL, leftover, NULL);
    cio_yield();
    return 9;
}

START_TEST(run_cancels_leftover_tasks_at_exit)
{
    cio_time t0 = cio_clock();
    ck_assert_int_eq(t_run(main_leaves_task, NULL), 9);
    ck_assert_int_lt(cio_clock() - t0, CIO_SEC(5));
    ck_assert_int_eq(leftover_result, -ECANCELED);
}
END_TEST

static cio_event never;

static intptr_t stuck(void *arg)
{
    (void)arg;
    cio_scope sh;
    cio_scope_enter(&sh, CIO_NEVER, true); /* cancellation cannot reach it */
    cio_event_wait(&never, CIO_NEVER);
    cio_scope_exit(&sh);
    return 0;
}

static intptr_t main_stops_loop(void *arg)
{
    (void)arg;
    cio_event_init(&never);
    cio_spawn(NULL, NULL, stuck, NULL);
    cio_yield();
    cio_loop_stop(cio_loop_current());
    return 5;
}

START_TEST(stop_cuts_run_cleanup_short)
{
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    cio_time t0 = cio_clock();
    ck_assert_int_eq(cio_run(l, main_stops_loop, NULL), 5);
    ck_assert_int_lt(cio_clock() - t0, CIO_SEC(2));
    cio_loop_stats st;
    cio_loop_get_stats(l, &st);
    ck_assert_int_eq(st.tasks_live, 1); /* left suspended, as documented */
    cio_loop_abandon(l);                /* the loop cannot be destroyed now */
}
END_TEST

static void stop_cb(cio_timer *t)
{
    cio_loop_stop(t->loop);
}

static int ticks;
static void tick_cb(cio_timer *t)
{
    ticks++;
    cio_timer_start(t, cio_now() + CIO_MS(1));
}

START_TEST(stop_then_run_again)
{
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    cio_timer tick, stop;
    cio_timer_init(&tick, l, tick_cb);
    cio_timer_init(&stop, l, stop_cb);
    cio_timer_start(&tick, cio_clock());
    cio_timer_start(&stop, cio_clock() + CIO_MS(10));
    ck_assert_int_eq(cio_loop_run(l), 0);
    int first = ticks;
    ck_assert_int_gt(first, 0);
    cio_timer_start(&stop, cio_clock() + CIO_MS(10));
    ck_assert_int_eq(cio_loop_run(l), 0); /* the stop flag was reset */
    ck_assert_int_gt(ticks, first);
    cio_timer_stop(&tick);
    cio_loop_destroy(l);
}
END_TEST

static intptr_t yielder(void *arg)
{
    for (intptr_t i = 0; i < (intptr_t)arg; i++)
        cio_yield();
    return 0;
}

START_TEST(busy_yielding_amortizes_turns_and_kernel_entries)
{
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    ck_assert_int_eq(cio_run(l, yielder, (void *)100000), 0);
    cio_loop_stats st;
    cio_loop_get_stats(l, &st);
    cio_loop_destroy(l);
    /* A turn runs up to 128 task runs, and a loop with ready tasks enters
     * the kernel only when it has something to submit or every 50 us. */
    ck_assert_int_ge(st.turns, 100000 / 128);
    ck_assert_int_lt(st.turns, 100000 / 64);
    ck_assert_int_le(st.enters, st.turns);
}
END_TEST

static int reaped;

static intptr_t reader(void *arg)
{
    int *fds = arg;
    char b;
    intptr_t r = cio_recv(fds[1], &b, 1, 0, CIO_NEVER);
    reaped = 1;
    return r;
}

static intptr_t busy_until_reaped(void *arg)
{
    (void)arg;
    int fds[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
    cio_task *t;
    cio_spawn(NULL, &t, reader, fds);
    cio_yield();
    ck_assert_int_eq(write(fds[0], "x", 1), 1);
    /* This task never sleeps; completions must still be reaped (within
     * 50 us by design; a loop that never reaps runs into the 5 s limit). */
    cio_time t0 = cio_clock();
    while (!reaped && cio_clock() - t0 < CIO_SEC(5))
        cio_yield();
    ck_assert_int_eq(reaped, 1);
    ck_assert_int_lt(cio_clock() - t0, CIO_SEC(1));
    return cio_join(t, CIO_NEVER);
}

START_TEST(busy_loop_still_reaps_completions)
{
    ck_assert_int_eq(t_run(busy_until_reaped, NULL), 1);
}
END_TEST

static Suite *loop_suite(void)
{
    Suite *s = suite_create("loop");
    T_CASE(s, ring_uses_single_issuer_and_defer_taskrun, 5);
    T_CASE(s, plain_ring_fallback_works, 5);
    T_CASE(s, cq_overflow_is_flushed_not_lost, 10);
    T_CASE(s, small_cq_with_defer_taskrun_loses_nothing, 10);
    T_CASE(s, more_operations_than_sq_entries, 10);
    T_CASE(s, run_cancels_leftover_tasks_at_exit, 5);
    T_CASE(s, stop_then_run_again, 5);
    T_CASE(s, stop_cuts_run_cleanup_short, 5);
    T_CASE(s, busy_yielding_amortizes_turns_and_kernel_entries, 10);
    T_CASE(s, busy_loop_still_reaps_completions, 10);
    return s;
}

T_MAIN(loop_suite)
