/* Sleep, callback timers, tickers, the lag monitor and the clock helpers. */
#include "harness.h"

#include <stdint.h>

static void spin(cio_time ns)
{
    cio_time end = cio_clock() + ns;
    while (cio_clock() < end) {
    }
}

static intptr_t main_sleep(void *arg)
{
    (void)arg;
    cio_time t0 = cio_now(); /* what the sleep counts from */
    ck_assert_int_eq(cio_sleep(CIO_MS(20)), 0);
    cio_time took = cio_clock() - t0;
    ck_assert_int_ge(took, CIO_MS(20));
    ck_assert_int_lt(took, CIO_MS(2000));
    /* A deadline in the past returns at once, successfully. */
    ck_assert_int_eq(cio_sleep_until(cio_now() - CIO_SEC(1)), 0);
    return 0;
}

START_TEST(sleep_lasts_at_least_requested)
{
    ck_assert_int_eq(t_run(main_sleep, NULL), 0);
}
END_TEST

static int fired[64], nfired;

static intptr_t sleep_and_record(void *arg)
{
    cio_sleep(CIO_MS((intptr_t)arg));
    fired[nfired++] = (int)(intptr_t)arg;
    return 0;
}

static intptr_t main_order(void *arg)
{
    (void)arg;
    int ms[] = {30, 10, 50, 20, 40};
    cio_group g;
    cio_group_init(&g, CIO_NEVER);
    for (int i = 0; i < 5; i++)
        cio_group_spawn(&g, NULL, sleep_and_record, (void *)(intptr_t)ms[i]);
    return cio_group_wait(&g);
}

START_TEST(sleepers_wake_in_deadline_order)
{
    t_run(main_order, NULL);
    ck_assert_int_eq(nfired, 5);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(fired[i], (i + 1) * 10);
}
END_TEST

static uint64_t rng = 88172645463325252ULL;
static uint64_t xorshift(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static cio_time last_when;
static int heap_fired, heap_misordered;

static void heap_cb(cio_timer *t)
{
    if (t->when < last_when)
        heap_misordered++;
    last_when = t->when;
    heap_fired++;
}

START_TEST(timer_heap_fires_in_order_and_stop_removes)
{
    enum { N = 10000 };
    static cio_timer tm[N];
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    cio_time base = cio_clock();
    for (int i = 0; i < N; i++) {
        cio_timer_init(&tm[i], l, heap_cb);
        ck_assert_int_eq(cio_timer_start(&tm[i], base + (cio_time)(xorshift() % CIO_MS(30))), 0);
    }
    /* Stop every third; restart every fifth with a new time. */
    int stopped = 0;
    for (int i = 0; i < N; i += 3) {
        cio_timer_stop(&tm[i]);
        ck_assert(!cio_timer_armed(&tm[i]));
        stopped++;
    }
    for (int i = 1; i < N; i += 5)
        cio_timer_start(&tm[i], base + (cio_time)(xorshift() % CIO_MS(30)));
    int armed = 0;
    for (int i = 0; i < N; i++)
        armed += cio_timer_armed(&tm[i]);
    ck_assert_int_lt(armed, N - stopped + N / 5); /* some stopped ones were restarted */
    ck_assert_int_eq(cio_loop_run(l), 0);
    cio_loop_destroy(l);
    ck_assert_int_eq(heap_fired, armed);
    ck_assert_int_eq(heap_misordered, 0);
}
END_TEST

static int rearm_count;

static void rearm_cb(cio_timer *t)
{
    if (++rearm_count < 5)
        cio_timer_start(t, cio_now()); /* due now: must not spin in one turn */
}

START_TEST(timer_rearming_itself_terminates)
{
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    cio_timer t;
    cio_timer_init(&t, l, rearm_cb);
    cio_timer_start(&t, cio_clock());
    ck_assert_int_eq(cio_loop_run(l), 0);
    cio_loop_destroy(l);
    ck_assert_int_eq(rearm_count, 5);
}
END_TEST

/* One wait, checked against the clock rather than against expectations of
 * how punctual the loop is: it returns the number of ticks that fell due
 * since the previous one (all missed ticks coalesced and counted), and the
 * schedule stays on the original grid. */
static int64_t checked_tick(cio_ticker *t)
{
    cio_time due = t->next;
    int64_t n = cio_ticker_wait(t, CIO_NEVER);
    ck_assert_int_ge(n, 1);
    ck_assert_int_eq(t->next, due + n * t->period);
    cio_time now = cio_now(); /* the time the wait counted with */
    ck_assert_int_ge(now, due + (n - 1) * t->period);
    ck_assert_int_lt(now, due + n * t->period);
    return n;
}

static intptr_t main_ticker(void *arg)
{
    (void)arg;
    cio_ticker t;
    cio_ticker_init(&t, CIO_MS(10));
    checked_tick(&t);
    /* Block the loop for three and a half periods: at least three ticks
     * fall due meanwhile (more if the machine is slow to resume us). */
    spin(CIO_MS(35));
    ck_assert_int_ge(checked_tick(&t), 3);
    checked_tick(&t);
    /* A deadline before the next tick: the wait times out, no tick taken. */
    cio_time next = t.next;
    int64_t r = cio_ticker_wait(&t, next - 1);
    ck_assert_int_eq(t.next, next);
    return r;
}

START_TEST(ticker_coalesces_missed_ticks)
{
    ck_assert_int_eq(t_run(main_ticker, NULL), -ETIMEDOUT);
}
END_TEST

static uint64_t lag_ticks(void)
{
    cio_lag_stats s;
    cio_lag_get(cio_loop_current(), &s);
    return s.ticks;
}

static intptr_t main_lag_blocked(void *arg)
{
    (void)arg;
    ck_assert_int_eq(cio_lag_start(NULL, CIO_MS(2)), 0);
    uint64_t want = 2;
    ck_assert(T_AWAIT(lag_ticks() >= want, T_PATIENCE_MS));
    spin(CIO_MS(60));       /* a coroutine that forgets to await */
    want = lag_ticks() + 2; /* the first of them is the one that was held up */
    ck_assert(T_AWAIT(lag_ticks() >= want, T_PATIENCE_MS));
    cio_lag_stats s;
    cio_lag_get(cio_loop_current(), &s);
    ck_assert_int_ge(s.ticks, 4);
    ck_assert_int_ge(s.max_ns, CIO_MS(50));
    ck_assert_int_ge(s.drift_ns, CIO_MS(50));
    ck_assert_int_le(s.p50_ns, s.max_ns);
    ck_assert_int_le(s.p99_ns, s.max_ns);
    ck_assert_int_eq(s.interval_ns, CIO_MS(2));
    return 0;
}

START_TEST(lag_monitor_sees_a_blocked_loop)
{
    ck_assert_int_eq(t_run(main_lag_blocked, NULL), 0);
}
END_TEST

START_TEST(lag_timer_does_not_keep_loop_alive)
{
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    cio_lag_start(l, CIO_MS(1));
    cio_time t0 = cio_clock();
    ck_assert_int_eq(cio_loop_run(l), 0); /* returns: nothing else to do */
    ck_assert_int_lt(cio_clock() - t0, CIO_SEC(1));
    cio_loop_destroy(l);
}
END_TEST

START_TEST(after_saturates)
{
    ck_assert_int_eq(cio_after(CIO_NEVER), CIO_NEVER);
    ck_assert_int_eq(cio_after(CIO_NEVER - 1), CIO_NEVER);
    cio_time now = cio_now();
    ck_assert_int_ge(cio_after(-5), now);
    ck_assert_int_lt(cio_after(-5), now + CIO_SEC(1));
}
END_TEST

static Suite *timer_suite(void)
{
    Suite *s = suite_create("timer");
    T_CASE(s, sleep_lasts_at_least_requested, 5);
    T_CASE(s, sleepers_wake_in_deadline_order, 5);
    T_CASE(s, timer_heap_fires_in_order_and_stop_removes, 10);
    T_CASE(s, timer_rearming_itself_terminates, 5);
    T_CASE(s, ticker_coalesces_missed_ticks, 5);
    T_CASE(s, lag_monitor_sees_a_blocked_loop, 5);
    T_CASE(s, lag_timer_does_not_keep_loop_alive, 5);
    T_CASE(s, after_saturates, 5);
    return s;
}

T_MAIN(timer_suite)
