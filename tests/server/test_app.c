/*
 * test_app.c - the app API (server/cio_app.h) beyond what the daemon's
 * integration tests drive: settings given by the program, the setup and
 * teardown callbacks on every worker's own loop, a failing setup,
 * cio_app_stop, a program's route on a built-in path, self when
 * standalone. Serving itself is the daemon's suite and the consumer's
 * (tests/install/consumer.sh).
 */
#include "check_harness.h"

#include "cio_app.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static cio_app *app;
static atomic_uint setups, teardowns; /* bit i: worker i's ran */
static pthread_t setup_thread[2];
static bool teardown_on_own_thread[2];
static int fail_on = -1;   /* the worker whose setup fails (-EIO) */
static int route_rc = 1;   /* what registering GET /healthz gave */
static int self_rc = 1;    /* cio_app_await_self's, standalone */

/* Two workers on 127.0.0.1, a port the kernel picks, no access log. */
static void settings(cio_config *c, unsigned workers)
{
    cio_config_defaults(c);
    ck_assert_int_eq(cio_listen_parse("127.0.0.1:0", &c->listen[0]), 0);
    c->nlisten = 1;
    c->workers = workers;
    free(c->log.access);
    c->log.access = strdup("off");
    c->log.level = CIO_LOG_WARN;
}

static intptr_t stopper(void *arg)
{
    cio_app_worker *w = arg;
    const char *self = NULL;
    self_rc = cio_app_await_self(w, &self, cio_after(CIO_SEC(10)));
    ck_assert_int_eq(cio_app_stop(app), 0);
    return 0;
}

static int setup(cio_app_worker *w, void *ud)
{
    ck_assert_ptr_eq(ud, &setups);
    unsigned i = cio_app_worker_index(w);
    ck_assert_uint_lt(i, 2);
    ck_assert_uint_eq(cio_app_worker_count(w), 2);
    ck_assert_ptr_nonnull(cio_app_worker_server(w));
    ck_assert_ptr_nonnull(cio_app_worker_pool(w));
    ck_assert_ptr_nonnull(cio_app_worker_topics(w));
    ck_assert(cio_app_worker_ws_opts(w, true)->shared_frames);
    ck_assert(!cio_app_worker_ws_opts(w, false)->shared_frames);
    ck_assert_uint_eq(cio_app_worker_config(w)->workers, 2);
    setup_thread[i] = pthread_self();
    cio_app_worker_set_data(w, &setup_thread[i]);
    atomic_fetch_or(&setups, 1u << i);
    if ((int)i == fail_on)
        return -EIO;
    if (i == 0) {
        cio_task *t;
        ck_assert_int_eq(cio_spawn(NULL, &t, stopper, w), 0);
        cio_detach(t);
    }
    return 0;
}

static void teardown(cio_app_worker *w, void *ud)
{
    (void)ud;
    unsigned i = cio_app_worker_index(w);
    ck_assert_ptr_eq(cio_app_worker_data(w), &setup_thread[i]);
    teardown_on_own_thread[i] = pthread_equal(setup_thread[i], pthread_self());
    atomic_fetch_or(&teardowns, 1u << i);
}

static int route_on_healthz(cio_http_req *req, void *ud)
{
    (void)ud;
    return cio_http_respond(req, 200, "text/plain", "mine\n", 5);
}

static int setup_healthz(cio_app_worker *w, void *ud)
{
    (void)ud;
    int rc = cio_http_route(cio_app_worker_server(w), "GET", "/healthz", route_on_healthz, NULL);
    if (cio_app_worker_index(w) == 0)
        route_rc = rc;
    return rc;
}

START_TEST(stop_before_run_is_eagain)
{
    ck_assert_int_eq(cio_app_create(NULL, NULL, &app), 0); /* the defaults */
    ck_assert_int_eq(cio_app_stop(app), -EAGAIN);
    cio_app_destroy(app);
}
END_TEST

START_TEST(invalid_settings_are_refused_and_taken_over)
{
    cio_config c;
    settings(&c, 1);
    free(c.root);
    c.root = strdup("/nonexistent/corio-test-root");
    ck_assert_int_eq(cio_app_create(&c, NULL, &app), -EINVAL);
    ck_assert_ptr_null(c.root); /* taken over, and freed */
    ck_assert_ptr_null(c.log.access);
}
END_TEST

START_TEST(setup_and_teardown_run_on_every_worker_s_loop)
{
    cio_config c;
    settings(&c, 2);
    cio_app_opts o = {.name = "test", .setup = setup, .teardown = teardown, .ud = &setups};
    ck_assert_int_eq(cio_app_create(&c, &o, &app), 0);
    ck_assert_ptr_null(c.log.access); /* taken over */
    ck_assert_int_eq(cio_app_run(app), 0); /* until the stopper's cio_app_stop */
    ck_assert_uint_eq(atomic_load(&setups), 3);
    ck_assert_uint_eq(atomic_load(&teardowns), 3);
    ck_assert(teardown_on_own_thread[0] && teardown_on_own_thread[1]);
    ck_assert(!pthread_equal(setup_thread[0], setup_thread[1])); /* a thread each */
    ck_assert_int_eq(self_rc, -ENOENT); /* standalone: no "servers" */
    ck_assert_int_eq(cio_app_stop(app), -EAGAIN); /* no more running */
    cio_app_destroy(app);
}
END_TEST

START_TEST(a_failing_setup_fails_the_start_and_every_teardown_runs)
{
    cio_config c;
    settings(&c, 2);
    fail_on = 1;
    cio_app_opts o = {.setup = setup, .teardown = teardown, .ud = &setups};
    ck_assert_int_eq(cio_app_create(&c, &o, &app), 0);
    ck_assert_int_eq(cio_app_run(app), 1);
    ck_assert_uint_eq(atomic_load(&setups), 3);
    ck_assert_uint_eq(atomic_load(&teardowns), 3);
    cio_app_destroy(app);
}
END_TEST

START_TEST(a_route_on_a_built_in_path_is_refused)
{
    cio_config c;
    settings(&c, 1);
    cio_app_opts o = {.setup = setup_healthz};
    ck_assert_int_eq(cio_app_create(&c, &o, &app), 0);
    ck_assert_int_eq(cio_app_run(app), 1);
    ck_assert_int_eq(route_rc, -EEXIST);
    cio_app_destroy(app);
}
END_TEST

static Suite *app_suite(void)
{
    Suite *s = suite_create("app");
    T_CASE(s, stop_before_run_is_eagain, 10);
    T_CASE(s, invalid_settings_are_refused_and_taken_over, 10);
    T_CASE(s, setup_and_teardown_run_on_every_worker_s_loop, 30);
    T_CASE(s, a_failing_setup_fails_the_start_and_every_teardown_runs, 30);
    T_CASE(s, a_route_on_a_built_in_path_is_refused, 30);
    return s;
}

T_MAIN(app_suite)
