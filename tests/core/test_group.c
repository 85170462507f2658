/* Task groups: structured concurrency, failure propagation, deadlines. */
#include "harness.h"

static int finished, cancelled;

static intptr_t sleep_ms(void *arg)
{
    int rc = cio_sleep(CIO_MS((intptr_t)arg));
    if (rc == -ECANCELED)
        cancelled++;
    else
        finished++;
    return rc;
}

static intptr_t fail_after(void *arg)
{
    cio_sleep(CIO_MS((intptr_t)arg));
    return -EIO;
}

static intptr_t main_waits_for_all(void *arg)
{
    (void)arg;
    cio_group g;
    cio_group_init(&g, CIO_NEVER);
    for (int i = 1; i <= 5; i++)
        ck_assert_int_eq(cio_group_spawn(&g, NULL, sleep_ms, (void *)(intptr_t)i), 0);
    intptr_t r = cio_group_wait(&g);
    ck_assert_int_eq(finished, 5);
    return r;
}

START_TEST(wait_returns_after_all_children)
{
    ck_assert_int_eq(t_run(main_waits_for_all, NULL), 0);
}
END_TEST

static intptr_t main_failure(void *arg)
{
    (void)arg;
    cio_group g;
    cio_group_init(&g, CIO_NEVER);
    cio_group_spawn(&g, NULL, sleep_ms, (void *)10000);
    cio_group_spawn(&g, NULL, sleep_ms, (void *)10000);
    cio_group_spawn(&g, NULL, fail_after, (void *)5);
    cio_time t0 = cio_clock();
    intptr_t r = cio_group_wait(&g);
    ck_assert_int_lt(cio_clock() - t0, CIO_SEC(5));
    ck_assert_int_eq(cancelled, 2);
    return r;
}

START_TEST(child_failure_cancels_siblings_and_is_reported)
{
    ck_assert_int_eq(t_run(main_failure, NULL), -EIO);
}
END_TEST

static intptr_t fail_with(void *arg)
{
    intptr_t *spec = arg; /* {delay ms, error} */
    cio_scope shield;
    cio_scope_enter(&shield, CIO_NEVER, true);
    cio_sleep(CIO_MS(spec[0]));
    cio_scope_exit(&shield);
    return spec[1];
}

static intptr_t main_first_error(void *arg)
{
    (void)arg;
    static intptr_t a[2] = {5, -EPIPE}, b[2] = {10, -EIO};
    cio_group g;
    cio_group_init(&g, CIO_NEVER);
    cio_group_spawn(&g, NULL, fail_with, b);
    cio_group_spawn(&g, NULL, fail_with, a);
    return cio_group_wait(&g);
}

START_TEST(first_error_wins)
{
    ck_assert_int_eq(t_run(main_first_error, NULL), -EPIPE);
}
END_TEST

static intptr_t main_deadline(void *arg)
{
    (void)arg;
    cio_group g;
    /* The short child is done long before the deadline, even on a loaded
     * machine: a stalled loop that saw both due in one turn would cancel it. */
    cio_group_init(&g, cio_after(CIO_MS(500)));
    cio_group_spawn(&g, NULL, sleep_ms, (void *)10000);
    cio_group_spawn(&g, NULL, sleep_ms, (void *)1);
    intptr_t r = cio_group_wait(&g);
    ck_assert_int_eq(finished, 1);
    ck_assert_int_eq(cancelled, 1);
    return r;
}

START_TEST(deadline_cancels_children_and_reports_timeout)
{
    ck_assert_int_eq(t_run(main_deadline, NULL), -ETIMEDOUT);
}
END_TEST

static intptr_t group_owner(void *arg)
{
    (void)arg;
    cio_group g;
    cio_group_init(&g, CIO_NEVER);
    cio_group_spawn(&g, NULL, sleep_ms, (void *)10000);
    cio_group_spawn(&g, NULL, sleep_ms, (void *)10000);
    return cio_group_wait(&g);
}

static intptr_t main_parent_cancel(void *arg)
{
    (void)arg;
    cio_task *t;
    cio_spawn(NULL, &t, group_owner, NULL);
    cio_sleep(CIO_MS(5));
    cio_task_cancel(t);
    intptr_t r = cio_join(t, CIO_NEVER);
    ck_assert_int_eq(cancelled, 2);
    return r;
}

START_TEST(cancelling_owner_cancels_children)
{
    ck_assert_int_eq(t_run(main_parent_cancel, NULL), -ECANCELED);
}
END_TEST

static intptr_t nested_inner(void *arg)
{
    (void)arg;
    cio_group g;
    cio_group_init(&g, CIO_NEVER);
    cio_group_spawn(&g, NULL, sleep_ms, (void *)10000);
    return cio_group_wait(&g);
}

static intptr_t main_nested(void *arg)
{
    (void)arg;
    cio_group g;
    cio_group_init(&g, CIO_NEVER);
    cio_group_spawn(&g, NULL, nested_inner, NULL);
    cio_group_spawn(&g, NULL, nested_inner, NULL);
    cio_group_spawn(&g, NULL, fail_after, (void *)5);
    intptr_t r = cio_group_wait(&g);
    ck_assert_int_eq(cancelled, 2); /* grandchildren too */
    return r;
}

START_TEST(failure_cancels_nested_groups)
{
    ck_assert_int_eq(t_run(main_nested, NULL), -EIO);
}
END_TEST

static intptr_t main_body_cancelled(void *arg)
{
    (void)arg;
    cio_group g;
    cio_group_init(&g, CIO_NEVER);
    cio_group_spawn(&g, NULL, fail_after, (void *)5);
    /* The owner's own awaits inside the group block are cancelled too. */
    int rc = cio_sleep(CIO_SEC(10));
    ck_assert_int_eq(rc, -ECANCELED);
    return cio_group_wait(&g);
}

START_TEST(failure_cancels_owner_body)
{
    ck_assert_int_eq(t_run(main_body_cancelled, NULL), -EIO);
}
END_TEST

static intptr_t main_explicit_cancel(void *arg)
{
    (void)arg;
    cio_group g;
    cio_group_init(&g, CIO_NEVER);
    cio_group_spawn(&g, NULL, sleep_ms, (void *)10000);
    cio_yield();
    cio_group_cancel(&g);
    intptr_t r = cio_group_wait(&g);
    ck_assert_int_eq(cancelled, 1);
    return r;
}

START_TEST(explicit_cancel_reports_ecanceled)
{
    ck_assert_int_eq(t_run(main_explicit_cancel, NULL), -ECANCELED);
}
END_TEST

static intptr_t main_outer_deadline(void *arg)
{
    (void)arg;
    cio_scope s;
    cio_scope_enter(&s, cio_after(CIO_MS(10)), false);
    cio_group g;
    cio_group_init(&g, CIO_NEVER);
    cio_group_spawn(&g, NULL, sleep_ms, (void *)10000);
    intptr_t r = cio_group_wait(&g);
    ck_assert_int_eq(cancelled, 1);
    ck_assert_int_eq(cio_scope_exit(&s), -ETIMEDOUT);
    return r;
}

START_TEST(enclosing_scope_deadline_reaches_children)
{
    ck_assert_int_eq(t_run(main_outer_deadline, NULL), -ECANCELED);
}
END_TEST

static intptr_t main_empty(void *arg)
{
    (void)arg;
    cio_group g;
    cio_group_init(&g, CIO_NEVER);
    return cio_group_wait(&g);
}

START_TEST(empty_group_returns_at_once)
{
    ck_assert_int_eq(t_run(main_empty, NULL), 0);
}
END_TEST

static cio_event release_a;

static intptr_t wait_release(void *arg)
{
    (void)arg;
    return cio_event_wait(&release_a, CIO_NEVER);
}

static intptr_t main_borrowed_handles(void *arg)
{
    (void)arg;
    cio_group g;
    cio_task *a, *b;
    cio_event_init(&release_a);
    cio_group_init(&g, CIO_NEVER);
    /* a ends only when released (a timer could end it in the same turn as
     * b's on a loaded machine, and wait_any reports the lowest index done). */
    cio_group_spawn(&g, &a, wait_release, NULL);
    cio_group_spawn(&g, &b, sleep_ms, (void *)5);
    cio_future *fs[2] = {cio_task_future(a), cio_task_future(b)};
    int first = cio_wait_any(fs, 2, CIO_NEVER);
    ck_assert(!cio_future_done(fs[0]));
    cio_event_set(&release_a);
    ck_assert_int_eq(cio_group_wait(&g), 0);
    return first;
}

START_TEST(child_futures_compose_with_wait_any)
{
    ck_assert_int_eq(t_run(main_borrowed_handles, NULL), 1);
}
END_TEST

static intptr_t main_leaves_open(void *arg)
{
    (void)arg;
    cio_group g;
    cio_group_init(&g, CIO_NEVER);
    return 0; /* returning without cio_group_wait is a bug: abort */
}

START_TEST(returning_with_open_group_aborts)
{
    t_run(main_leaves_open, NULL);
}
END_TEST

static Suite *group_suite(void)
{
    Suite *s = suite_create("group");
    T_CASE(s, wait_returns_after_all_children, 5);
    T_CASE(s, child_failure_cancels_siblings_and_is_reported, 5);
    T_CASE(s, first_error_wins, 5);
    T_CASE(s, deadline_cancels_children_and_reports_timeout, 5);
    T_CASE(s, cancelling_owner_cancels_children, 5);
    T_CASE(s, failure_cancels_nested_groups, 5);
    T_CASE(s, failure_cancels_owner_body, 5);
    T_CASE(s, explicit_cancel_reports_ecanceled, 5);
    T_CASE(s, enclosing_scope_deadline_reaches_children, 5);
    T_CASE(s, empty_group_returns_at_once, 5);
    T_CASE(s, child_futures_compose_with_wait_any, 5);
    T_CASE_SIGNAL(s, returning_with_open_group_aborts, SIGABRT, 5);
    return s;
}

T_MAIN(group_suite)
