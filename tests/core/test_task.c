/* Tasks, yields, joins, cancellation and cancel scopes. */
#include "harness.h"

static intptr_t ret_arg(void *arg)
{
    return (intptr_t)arg;
}

static intptr_t sleeper(void *arg)
{
    return cio_sleep(CIO_MS((intptr_t)arg));
}

/* ---- spawn / join --------------------------------------------------------- */

static intptr_t main_join_result(void *arg)
{
    (void)arg;
    cio_task *t;
    ck_assert_int_eq(cio_spawn(NULL, &t, ret_arg, (void *)42), 0);
    return cio_join(t, CIO_NEVER);
}

START_TEST(join_returns_task_result)
{
    ck_assert_int_eq(t_run(main_join_result, NULL), 42);
}
END_TEST

static int order[8], order_len;

static intptr_t record(void *arg)
{
    order[order_len++] = (int)(intptr_t)arg;
    return 0;
}

static intptr_t main_spawn_not_inline(void *arg)
{
    (void)arg;
    cio_task *t;
    cio_spawn(NULL, &t, record, (void *)1);
    /* The child must not have run inside cio_spawn. */
    ck_assert_int_eq(order_len, 0);
    record((void *)0);
    cio_join(t, CIO_NEVER);
    return 0;
}

START_TEST(spawn_starts_later_not_inline)
{
    t_run(main_spawn_not_inline, NULL);
    ck_assert_int_eq(order_len, 2);
    ck_assert_int_eq(order[0], 0);
    ck_assert_int_eq(order[1], 1);
}
END_TEST

static intptr_t yielder(void *arg)
{
    for (int i = 0; i < 3; i++) {
        order[order_len++] = (int)(intptr_t)arg;
        ck_assert_int_eq(cio_yield(), 0);
    }
    return 0;
}

static intptr_t main_yield_interleaves(void *arg)
{
    (void)arg;
    cio_task *a, *b;
    cio_spawn(NULL, &a, yielder, (void *)1);
    cio_spawn(NULL, &b, yielder, (void *)2);
    cio_join(a, CIO_NEVER);
    cio_join(b, CIO_NEVER);
    return 0;
}

START_TEST(yield_interleaves_round_robin)
{
    t_run(main_yield_interleaves, NULL);
    int want[] = {1, 2, 1, 2, 1, 2};
    ck_assert_int_eq(order_len, 6);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(order[i], want[i]);
}
END_TEST

static int detached_ran;

static intptr_t detached(void *arg)
{
    (void)arg;
    cio_sleep(CIO_MS(1));
    detached_ran = 1;
    return 0;
}

static intptr_t main_detach(void *arg)
{
    (void)arg;
    ck_assert_int_eq(cio_spawn(NULL, NULL, detached, NULL), 0);
    return cio_sleep(CIO_MS(20));
}

START_TEST(detached_task_runs_to_completion)
{
    ck_assert_int_eq(t_run(main_detach, NULL), 0);
    ck_assert_int_eq(detached_ran, 1);
}
END_TEST

static intptr_t main_join_self(void *arg)
{
    (void)arg;
    return cio_join(cio_current(), CIO_NEVER);
}

START_TEST(join_self_is_edeadlk)
{
    ck_assert_int_eq(t_run(main_join_self, NULL), -EDEADLK);
}
END_TEST

/* ---- cancellation -------------------------------------------------------------- */

static intptr_t main_cancel_sleeping(void *arg)
{
    (void)arg;
    cio_task *t;
    cio_spawn(NULL, &t, sleeper, (void *)10000);
    cio_sleep(CIO_MS(5));
    cio_task_cancel(t);
    cio_time t0 = cio_clock();
    intptr_t r = cio_join(t, CIO_NEVER);
    ck_assert_int_lt(cio_clock() - t0, CIO_SEC(1));
    return r;
}

START_TEST(cancel_while_sleeping_returns_ecanceled)
{
    ck_assert_int_eq(t_run(main_cancel_sleeping, NULL), -ECANCELED);
}
END_TEST

static intptr_t count_cancelled_awaits(void *arg)
{
    (void)arg;
    int fails = 0;
    for (int i = 0; i < 3; i++)
        fails += cio_sleep(CIO_MS(1000)) == -ECANCELED;
    fails += cio_yield() == -ECANCELED;
    return fails;
}

static intptr_t main_level_triggered(void *arg)
{
    (void)arg;
    cio_task *t;
    cio_spawn(NULL, &t, count_cancelled_awaits, NULL);
    cio_yield();
    cio_task_cancel(t);
    return cio_join(t, CIO_NEVER);
}

START_TEST(cancellation_is_level_triggered)
{
    /* Every awaiting call after the cancel fails, not just the first. */
    ck_assert_int_eq(t_run(main_level_triggered, NULL), 4);
}
END_TEST

static intptr_t main_cancel_before_start(void *arg)
{
    (void)arg;
    cio_task *t;
    cio_spawn(NULL, &t, sleeper, (void *)1000);
    cio_task_cancel(t); /* it has not run yet */
    return cio_join(t, CIO_NEVER);
}

START_TEST(cancel_before_start_fails_first_await)
{
    ck_assert_int_eq(t_run(main_cancel_before_start, NULL), -ECANCELED);
}
END_TEST

static intptr_t main_join_deadline(void *arg)
{
    (void)arg;
    cio_task *t;
    cio_spawn(NULL, &t, sleeper, (void *)10000);
    /* The join's deadline cancels the child and still waits for it. */
    intptr_t r = cio_join(t, cio_after(CIO_MS(10)));
    cio_loop_stats st;
    cio_loop_get_stats(cio_loop_current(), &st);
    ck_assert_int_eq(st.tasks_live, 1); /* only main is left */
    return r;
}

START_TEST(join_deadline_cancels_child_and_times_out)
{
    ck_assert_int_eq(t_run(main_join_deadline, NULL), -ETIMEDOUT);
}
END_TEST

static intptr_t main_cancelled_joiner(void *arg)
{
    (void)arg;
    cio_task *t;
    cio_spawn(NULL, &t, sleeper, (void *)10000);
    return cio_join(t, CIO_NEVER);
}

static intptr_t outer_cancelled_joiner(void *arg)
{
    (void)arg;
    cio_task *j;
    cio_spawn(NULL, &j, main_cancelled_joiner, NULL);
    cio_sleep(CIO_MS(5));
    cio_task_cancel(j);
    intptr_t r = cio_join(j, CIO_NEVER);
    cio_loop_stats st;
    cio_loop_get_stats(cio_loop_current(), &st);
    ck_assert_int_eq(st.tasks_live, 1); /* the grandchild did not leak */
    return r;
}

START_TEST(cancelled_joiner_takes_child_down)
{
    ck_assert_int_eq(t_run(outer_cancelled_joiner, NULL), -ECANCELED);
}
END_TEST

static intptr_t cancelled_poll(void *arg)
{
    (void)arg;
    /* A computation that checks cio_cancelled() without awaiting. */
    ck_assert(!cio_cancelled());
    cio_task_cancel(cio_current());
    return cio_cancelled();
}

/* Regression: cio_cancelled() compared against the turn's cached time, so a
 * computation inside a scope never saw the scope's deadline pass. */
static intptr_t main_deadline_while_computing(void *arg)
{
    (void)arg;
    cio_scope s;
    cio_scope_enter(&s, cio_after(CIO_MS(5)), false);
    cio_time t0 = cio_clock();
    while (!cio_cancelled() && cio_clock() - t0 < CIO_SEC(2)) {
    }
    cio_time took = cio_clock() - t0;
    ck_assert_int_lt(took, CIO_SEC(1));
    return cio_scope_exit(&s);
}

START_TEST(cancelled_sees_a_deadline_pass_during_computation)
{
    ck_assert_int_eq(t_run(main_deadline_while_computing, NULL), -ETIMEDOUT);
}
END_TEST

START_TEST(cancelled_reports_without_awaiting)
{
    ck_assert_int_eq(t_run(cancelled_poll, NULL), 1);
}
END_TEST

/* ---- scopes ---------------------------------------------------------------------- */

static intptr_t main_scope_deadline(void *arg)
{
    (void)arg;
    cio_scope s;
    cio_scope_enter(&s, cio_after(CIO_MS(10)), false);
    int rc = cio_sleep(CIO_SEC(10));
    ck_assert_int_eq(rc, -ECANCELED);
    return cio_scope_exit(&s);
}

START_TEST(scope_deadline_cancels_and_exit_reports_timeout)
{
    ck_assert_int_eq(t_run(main_scope_deadline, NULL), -ETIMEDOUT);
}
END_TEST

static intptr_t main_tightest_wins(void *arg)
{
    (void)arg;
    cio_scope outer, inner;
    cio_time t0 = cio_now(); /* what cio_after() counts from */
    cio_scope_enter(&outer, cio_after(CIO_MS(20)), false);
    cio_scope_enter(&inner, cio_after(CIO_SEC(10)), false);
    int rc = cio_sleep(CIO_SEC(10));
    cio_time took = cio_clock() - t0;
    ck_assert_int_eq(rc, -ECANCELED);
    ck_assert_int_eq(cio_scope_exit(&inner), 0); /* not its deadline */
    ck_assert_int_eq(cio_scope_exit(&outer), -ETIMEDOUT);
    ck_assert_int_ge(took, CIO_MS(15));
    ck_assert_int_lt(took, CIO_SEC(5));
    return 0;
}

START_TEST(nested_scopes_tightest_deadline_wins)
{
    ck_assert_int_eq(t_run(main_tightest_wins, NULL), 0);
}
END_TEST

static intptr_t main_call_deadline_vs_scope(void *arg)
{
    (void)arg;
    cio_scope s;
    cio_scope_enter(&s, cio_after(CIO_SEC(10)), false);
    cio_event e;
    cio_event_init(&e);
    /* The call's own deadline is tighter: -ETIMEDOUT, scope unaffected. */
    int rc = cio_event_wait(&e, cio_after(CIO_MS(5)));
    ck_assert_int_eq(rc, -ETIMEDOUT);
    ck_assert_int_eq(cio_yield(), 0);
    return cio_scope_exit(&s);
}

START_TEST(call_deadline_tighter_than_scope_times_out)
{
    ck_assert_int_eq(t_run(main_call_deadline_vs_scope, NULL), 0);
}
END_TEST

static intptr_t main_shield(void *arg)
{
    (void)arg;
    cio_task_cancel(cio_current());
    ck_assert_int_eq(cio_sleep(CIO_MS(1)), -ECANCELED);
    cio_scope sh;
    cio_scope_enter(&sh, CIO_NEVER, true);
    int rc = cio_sleep(CIO_MS(2)); /* cleanup work still possible */
    ck_assert_int_eq(cio_scope_exit(&sh), 0);
    ck_assert_int_eq(cio_sleep(CIO_MS(1)), -ECANCELED);
    return rc;
}

START_TEST(shielded_scope_hides_outer_cancellation)
{
    ck_assert_int_eq(t_run(main_shield, NULL), 0);
}
END_TEST

static cio_scope *shared_scope;

static intptr_t canceller(void *arg)
{
    (void)arg;
    cio_sleep(CIO_MS(5));
    cio_scope_cancel(shared_scope);
    return 0;
}

static intptr_t main_scope_cancel(void *arg)
{
    (void)arg;
    cio_scope s;
    cio_scope_enter(&s, CIO_NEVER, false);
    shared_scope = &s;
    cio_spawn(NULL, NULL, canceller, NULL);
    int rc = cio_sleep(CIO_SEC(10));
    ck_assert_int_eq(rc, -ECANCELED);
    ck_assert_int_eq(cio_scope_exit(&s), -ECANCELED);
    /* Outside the scope, awaiting works again. */
    return cio_sleep(CIO_MS(1));
}

START_TEST(scope_cancel_from_another_task)
{
    ck_assert_int_eq(t_run(main_scope_cancel, NULL), 0);
}
END_TEST

static intptr_t main_scope_misorder(void *arg)
{
    (void)arg;
    cio_scope a, b;
    cio_scope_enter(&a, CIO_NEVER, false);
    cio_scope_enter(&b, CIO_NEVER, false);
    cio_scope_exit(&a); /* not the innermost: aborts */
    return 0;
}

START_TEST(scope_exit_out_of_order_aborts)
{
    t_run(main_scope_misorder, NULL);
}
END_TEST

static intptr_t wait_event(void *arg)
{
    return cio_event_wait(arg, CIO_NEVER);
}

static intptr_t main_many_tasks(void *arg)
{
    (void)arg;
    enum { N = 100000 };
    cio_event go;
    cio_event_init(&go);
    static cio_task *ts[N];
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(cio_spawn(NULL, &ts[i], wait_event, &go), 0);
    cio_yield(); /* all of them are now suspended on the event */
    cio_loop_stats st;
    cio_loop_get_stats(cio_loop_current(), &st);
    ck_assert_int_eq(st.tasks_live, N + 1);
    cio_event_set(&go);
    intptr_t sum = 0;
    for (int i = 0; i < N; i++)
        sum += cio_join(ts[i], CIO_NEVER) == 0;
    return sum;
}

START_TEST(hundred_thousand_concurrent_tasks)
{
    ck_assert_int_eq(t_run(main_many_tasks, NULL), 100000);
}
END_TEST

/* ---- the slow-task watchdog --------------------------------------------------------- */

typedef struct slow_seen {
    int reports;
    const char *name;
    cio_time ns;
} slow_seen;

static void slow_cb(void *ud, const char *name, cio_time ns)
{
    slow_seen *s = ud;
    s->reports++;
    s->name = name;
    s->ns = ns;
}

/* Runs without awaiting for ms milliseconds of the clock (not of work: the
 * same on any machine). */
static intptr_t busy_for(void *arg)
{
    cio_task_set_name(NULL, "busy");
    cio_time until = cio_clock() + CIO_MS((intptr_t)arg);
    while (cio_clock() < until)
        ;
    return 0;
}

/* Runs as long, but awaits every millisecond. */
static intptr_t polite_for(void *arg)
{
    cio_time until = cio_clock() + CIO_MS((intptr_t)arg);
    while (cio_clock() < until) {
        cio_time step = cio_clock() + CIO_MS(1);
        while (cio_clock() < step)
            ;
        cio_yield();
    }
    return 0;
}

static intptr_t t_slow(void *arg)
{
    (void)arg;
    slow_seen seen = {0};
    /* 200 ms: far above what the OS takes from a task beside a CPU hog. */
    ck_assert_int_eq(cio_slow_watch(NULL, CIO_MS(200), slow_cb, &seen), 0);
    cio_task *a, *b;
    ck_assert_int_eq(cio_spawn(NULL, &a, polite_for, (void *)(intptr_t)100), 0);
    ck_assert_int_eq(cio_join(a, CIO_NEVER), 0);
    ck_assert_int_eq(seen.reports, 0); /* 100 ms in all, but 1 ms at a time */
    ck_assert_int_eq(cio_spawn(NULL, &b, busy_for, (void *)(intptr_t)300), 0);
    ck_assert_int_eq(cio_join(b, CIO_NEVER), 0);
    ck_assert_int_eq(seen.reports, 1);
    ck_assert_str_eq(seen.name, "busy");
    ck_assert_int_ge(seen.ns, CIO_MS(290)); /* the coarse clock: within a jiffy or two */
    ck_assert_uint_eq(cio_slow_count(NULL), 1);
    /* Off: not reported, not counted. */
    ck_assert_int_eq(cio_slow_watch(NULL, 0, slow_cb, &seen), 0);
    ck_assert_int_eq(cio_spawn(NULL, &b, busy_for, (void *)(intptr_t)50), 0);
    ck_assert_int_eq(cio_join(b, CIO_NEVER), 0);
    ck_assert_int_eq(seen.reports, 1);
    return 0;
}

T_LOOP_TEST(slow_task_is_reported_with_its_name, t_slow, 0)

static Suite *task_suite(void)
{
    Suite *s = suite_create("task");
    T_CASE(s, join_returns_task_result, 5);
    T_CASE(s, spawn_starts_later_not_inline, 5);
    T_CASE(s, yield_interleaves_round_robin, 5);
    T_CASE(s, detached_task_runs_to_completion, 5);
    T_CASE(s, join_self_is_edeadlk, 5);
    T_CASE(s, cancel_while_sleeping_returns_ecanceled, 5);
    T_CASE(s, cancellation_is_level_triggered, 5);
    T_CASE(s, cancel_before_start_fails_first_await, 5);
    T_CASE(s, join_deadline_cancels_child_and_times_out, 5);
    T_CASE(s, cancelled_joiner_takes_child_down, 5);
    T_CASE(s, cancelled_reports_without_awaiting, 5);
    T_CASE(s, cancelled_sees_a_deadline_pass_during_computation, 5);
    T_CASE(s, scope_deadline_cancels_and_exit_reports_timeout, 5);
    T_CASE(s, nested_scopes_tightest_deadline_wins, 5);
    T_CASE(s, call_deadline_tighter_than_scope_times_out, 5);
    T_CASE(s, shielded_scope_hides_outer_cancellation, 5);
    T_CASE(s, scope_cancel_from_another_task, 5);
    T_CASE_SIGNAL(s, scope_exit_out_of_order_aborts, SIGABRT, 5);
    T_CASE(s, hundred_thousand_concurrent_tasks, 60);
    T_CASE(s, slow_task_is_reported_with_its_name, 10);
    return s;
}

T_MAIN(task_suite)
