/* Futures: await, wait-all, wait-any, as_completed, callbacks. */
#include "harness.h"

typedef struct {
    cio_future *f;
    cio_time after;
    intptr_t value;
} setter_arg;

static intptr_t setter(void *arg)
{
    setter_arg *a = arg;
    cio_sleep(a->after);
    cio_future_set(a->f, a->value);
    return 0;
}

static void set_later(cio_future *f, cio_time after, intptr_t value, setter_arg *storage)
{
    *storage = (setter_arg){f, after, value};
    ck_assert_int_eq(cio_spawn(NULL, NULL, setter, storage), 0);
}

static intptr_t main_await(void *arg)
{
    (void)arg;
    cio_future f;
    setter_arg sa;
    cio_future_init(&f);
    set_later(&f, CIO_MS(2), 99, &sa);
    ck_assert(!cio_future_done(&f));
    intptr_t r = cio_await(&f, CIO_NEVER);
    ck_assert(cio_future_done(&f));
    return r;
}

START_TEST(await_returns_value)
{
    ck_assert_int_eq(t_run(main_await, NULL), 99);
}
END_TEST

static intptr_t main_await_error(void *arg)
{
    (void)arg;
    cio_future f;
    setter_arg sa;
    cio_future_init(&f);
    set_later(&f, 0, -EIO, &sa);
    return cio_await(&f, CIO_NEVER);
}

START_TEST(await_returns_error)
{
    ck_assert_int_eq(t_run(main_await_error, NULL), -EIO);
}
END_TEST

static intptr_t main_await_done(void *arg)
{
    (void)arg;
    cio_future f;
    cio_future_init(&f);
    cio_future_set(&f, 5);
    return cio_await(&f, CIO_NEVER);
}

START_TEST(await_done_future_returns_at_once)
{
    ck_assert_int_eq(t_run(main_await_done, NULL), 5);
}
END_TEST

static intptr_t main_set_twice(void *arg)
{
    (void)arg;
    cio_future f;
    cio_future_init(&f);
    ck_assert_int_eq(cio_future_set(&f, 1), 0);
    ck_assert_int_eq(cio_future_set(&f, 2), -EALREADY);
    return cio_future_result(&f);
}

static intptr_t main_await_done_cancelled(void *arg)
{
    (void)arg;
    cio_future f;
    cio_future_init(&f);
    cio_future_set(&f, 8);
    cio_task_cancel(cio_current());
    ck_assert_int_eq(cio_sleep(CIO_MS(1)), -ECANCELED); /* cancelled indeed */
    return cio_await(&f, cio_now() - 1);                /* yet the result is there */
}

START_TEST(await_done_future_returns_result_even_when_cancelled)
{
    ck_assert_int_eq(t_run(main_await_done_cancelled, NULL), 8);
}
END_TEST

START_TEST(set_twice_is_ealready_and_keeps_first)
{
    ck_assert_int_eq(t_run(main_set_twice, NULL), 1);
}
END_TEST

static intptr_t main_await_timeout(void *arg)
{
    (void)arg;
    cio_future f;
    cio_future_init(&f);
    intptr_t r = cio_await(&f, cio_after(CIO_MS(5)));
    ck_assert(!cio_future_done(&f));
    /* The subscription is gone: completing f now must not touch our stack. */
    cio_future_set(&f, 1);
    return r;
}

START_TEST(await_deadline_times_out_and_unsubscribes)
{
    ck_assert_int_eq(t_run(main_await_timeout, NULL), -ETIMEDOUT);
}
END_TEST

static cio_future shared_future;

static intptr_t await_shared(void *arg)
{
    (void)arg;
    return cio_await(&shared_future, CIO_NEVER);
}

static intptr_t main_many_waiters(void *arg)
{
    (void)arg;
    cio_future_init(&shared_future);
    cio_task *t[10];
    for (int i = 0; i < 10; i++)
        cio_spawn(NULL, &t[i], await_shared, NULL);
    cio_yield();
    cio_future_set(&shared_future, 7);
    intptr_t sum = 0;
    for (int i = 0; i < 10; i++)
        sum += cio_join(t[i], CIO_NEVER);
    return sum;
}

START_TEST(all_waiters_wake)
{
    ck_assert_int_eq(t_run(main_many_waiters, NULL), 70);
}
END_TEST

static intptr_t main_wait_all(void *arg)
{
    (void)arg;
    cio_future f[3];
    setter_arg sa[3];
    cio_future *fs[3] = {&f[0], &f[1], &f[2]};
    for (int i = 0; i < 3; i++) {
        cio_future_init(&f[i]);
        set_later(&f[i], CIO_MS(3 - i), i + 1, &sa[i]);
    }
    ck_assert_int_eq(cio_wait_all(fs, 3, CIO_NEVER), 0);
    intptr_t sum = 0;
    for (int i = 0; i < 3; i++) {
        ck_assert(cio_future_done(&f[i]));
        sum += cio_future_result(&f[i]);
    }
    return sum;
}

START_TEST(wait_all_waits_for_every_future)
{
    ck_assert_int_eq(t_run(main_wait_all, NULL), 6);
}
END_TEST

static intptr_t main_wait_all_timeout(void *arg)
{
    (void)arg;
    cio_future f[2];
    setter_arg sa;
    cio_future *fs[2] = {&f[0], &f[1]};
    cio_future_init(&f[0]);
    cio_future_init(&f[1]);
    set_later(&f[0], 0, 1, &sa);
    int rc = cio_wait_all(fs, 2, cio_after(CIO_MS(10)));
    ck_assert(cio_future_done(&f[0]));
    cio_future_set(&f[1], 1); /* subscriptions were removed */
    return rc;
}

START_TEST(wait_all_deadline)
{
    ck_assert_int_eq(t_run(main_wait_all_timeout, NULL), -ETIMEDOUT);
}
END_TEST

static intptr_t main_wait_all_many(void *arg)
{
    (void)arg;
    enum { N = 100 }; /* beyond the on-stack subscription array */
    static cio_future f[N];
    static cio_future *fs[N];
    static setter_arg sa[N];
    for (int i = 0; i < N; i++) {
        cio_future_init(&f[i]);
        fs[i] = &f[i];
        set_later(&f[i], CIO_US(i * 10), 1, &sa[i]);
    }
    return cio_wait_all(fs, N, CIO_NEVER);
}

START_TEST(wait_all_large_set)
{
    ck_assert_int_eq(t_run(main_wait_all_many, NULL), 0);
}
END_TEST

static intptr_t main_wait_any(void *arg)
{
    (void)arg;
    cio_future f[3];
    setter_arg sa[2];
    cio_future *fs[3] = {&f[0], &f[1], &f[2]};
    for (int i = 0; i < 3; i++)
        cio_future_init(&f[i]);
    set_later(&f[2], CIO_MS(2), 1, &sa[0]);
    /* f[0] and f[1] stay pending until wait_any is back (a second setter on
     * a timer could fire in the same turn on a loaded machine). */
    int i = cio_wait_any(fs, 3, CIO_NEVER);
    ck_assert(!cio_future_done(&f[0]));
    ck_assert(!cio_future_done(&f[1]));
    /* The wait's subscriptions were removed: completing them now touches
     * nothing of it. */
    set_later(&f[0], 0, 1, &sa[1]);
    cio_future_set(&f[1], 1);
    cio_await(&f[0], CIO_NEVER);
    return i;
}

/* Regression: wait_all also subscribed to futures already done; when the
 * owner re-initialised one during the wait and a task waited on it, the
 * final unsubscribe unlinked that task's waiter and it hung. */
static cio_future reused, pending_f;

static intptr_t reuse_and_wait(void *arg)
{
    (void)arg;
    cio_future_init(&reused); /* the owner reuses it for a new round */
    return cio_await(&reused, cio_after(CIO_SEC(2)));
}

static intptr_t main_wait_all_reuse(void *arg)
{
    (void)arg;
    cio_future_init(&reused);
    cio_future_init(&pending_f);
    cio_future_set(&reused, 1);
    cio_task *t;
    cio_spawn(NULL, &t, reuse_and_wait, NULL);
    setter_arg sa;
    set_later(&pending_f, CIO_MS(5), 2, &sa);
    cio_future *fs[2] = {&reused, &pending_f};
    ck_assert_int_eq(cio_wait_all(fs, 2, CIO_NEVER), 0);
    cio_future_set(&reused, 3); /* must wake the task waiting on the new round */
    return cio_join(t, CIO_NEVER);
}

START_TEST(wait_all_leaves_done_futures_alone)
{
    ck_assert_int_eq(t_run(main_wait_all_reuse, NULL), 3);
}
END_TEST

START_TEST(wait_any_returns_first_completed)
{
    ck_assert_int_eq(t_run(main_wait_any, NULL), 2);
}
END_TEST

static intptr_t main_wait_any_empty(void *arg)
{
    (void)arg;
    return cio_wait_any(NULL, 0, CIO_NEVER);
}

START_TEST(wait_any_empty_is_einval)
{
    ck_assert_int_eq(t_run(main_wait_any_empty, NULL), -EINVAL);
}
END_TEST

static intptr_t main_as_completed(void *arg)
{
    (void)arg;
    cio_future f[4];
    setter_arg sa[3];
    cio_future *fs[4] = {&f[0], &f[1], &f[2], &f[3]};
    for (int i = 0; i < 4; i++)
        cio_future_init(&f[i]);
    cio_future_set(&f[3], 0); /* already done: comes first */
    set_later(&f[0], CIO_MS(30), 0, &sa[0]);
    set_later(&f[1], CIO_MS(10), 0, &sa[1]);
    set_later(&f[2], CIO_MS(20), 0, &sa[2]);
    cio_as_completed it;
    ck_assert_int_eq(cio_as_completed_init(&it, fs, 4), 0);
    intptr_t code = 0;
    int i;
    while ((i = cio_as_completed_next(&it, CIO_NEVER)) >= 0) {
        ck_assert(cio_future_done(fs[i]));
        code = code * 10 + i;
    }
    ck_assert_int_eq(i, -ENOENT);
    cio_as_completed_fini(&it);
    return code;
}

START_TEST(as_completed_yields_in_completion_order)
{
    ck_assert_int_eq(t_run(main_as_completed, NULL), 3120);
}
END_TEST

static intptr_t main_as_completed_timeout(void *arg)
{
    (void)arg;
    cio_future f;
    cio_future *fs[1] = {&f};
    cio_future_init(&f);
    cio_as_completed it;
    cio_as_completed_init(&it, fs, 1);
    int rc = cio_as_completed_next(&it, cio_after(CIO_MS(5)));
    cio_as_completed_fini(&it);
    cio_future_set(&f, 0); /* unsubscribed by fini */
    return rc;
}

START_TEST(as_completed_deadline)
{
    ck_assert_int_eq(t_run(main_as_completed_timeout, NULL), -ETIMEDOUT);
}
END_TEST

static int cb_calls;
static intptr_t cb_value;

static void on_done(cio_waiter *w, cio_future *f)
{
    (void)w;
    cb_calls++;
    cb_value = cio_future_result(f);
}

static intptr_t main_subscribe(void *arg)
{
    (void)arg;
    cio_future f, g;
    cio_waiter w1, w2, w3;
    cio_future_init(&f);
    cio_future_init(&g);
    cio_future_subscribe(&f, &w1, on_done);
    cio_future_subscribe(&f, &w2, on_done);
    cio_future_unsubscribe(&w2);
    cio_future_set(&f, 11);
    ck_assert_int_eq(cb_calls, 1);
    cio_future_set(&g, 12);
    cio_future_subscribe(&g, &w3, on_done); /* already done: runs now */
    ck_assert_int_eq(cb_calls, 2);
    return cb_value;
}

START_TEST(subscribe_callbacks_and_unsubscribe)
{
    ck_assert_int_eq(t_run(main_subscribe, NULL), 12);
}
END_TEST

static intptr_t main_spawn_null(void *arg)
{
    (void)arg;
    cio_task *t = NULL;
    return cio_spawn(NULL, &t, NULL, NULL);
}

START_TEST(spawn_without_function_is_einval)
{
    ck_assert_int_eq(t_run(main_spawn_null, NULL), -EINVAL);
}
END_TEST

static Suite *future_suite(void)
{
    Suite *s = suite_create("future");
    T_CASE(s, await_returns_value, 5);
    T_CASE(s, await_returns_error, 5);
    T_CASE(s, await_done_future_returns_at_once, 5);
    T_CASE(s, await_done_future_returns_result_even_when_cancelled, 5);
    T_CASE(s, set_twice_is_ealready_and_keeps_first, 5);
    T_CASE(s, await_deadline_times_out_and_unsubscribes, 5);
    T_CASE(s, all_waiters_wake, 5);
    T_CASE(s, wait_all_waits_for_every_future, 5);
    T_CASE(s, wait_all_deadline, 5);
    T_CASE(s, wait_all_large_set, 5);
    T_CASE(s, wait_all_leaves_done_futures_alone, 5);
    T_CASE(s, wait_any_returns_first_completed, 5);
    T_CASE(s, wait_any_empty_is_einval, 5);
    T_CASE(s, as_completed_yields_in_completion_order, 5);
    T_CASE(s, as_completed_deadline, 5);
    T_CASE(s, subscribe_callbacks_and_unsubscribe, 5);
    T_CASE(s, spawn_without_function_is_einval, 5);
    return s;
}

T_MAIN(future_suite)
