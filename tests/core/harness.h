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

#include "cio.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

/* Runs fn(arg) as the main task of a fresh loop; returns its result. */
static inline intptr_t t_run(cio_fn fn, void *arg)
{
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    intptr_t r = cio_run(l, fn, arg);
    cio_loop_destroy(l);
    return r;
}

/* A tcase with one test and a per-test timeout (seconds). */
#define T_CASE(suite, fn, timeout)         \
    do {                                   \
        TCase *tc_ = tcase_create(#fn);    \
        tcase_set_timeout(tc_, (timeout)); \
        tcase_add_test(tc_, fn);           \
        suite_add_tcase((suite), tc_);     \
    } while (0)

#define T_CASE_SIGNAL(suite, fn, sig, timeout)       \
    do {                                             \
        TCase *tc_ = tcase_create(#fn);              \
        tcase_set_timeout(tc_, (timeout));           \
        tcase_add_test_raise_signal(tc_, fn, (sig)); \
        suite_add_tcase((suite), tc_);               \
    } while (0)

#define T_MAIN(make_suite)                                           \
    int main(void)                                                   \
    {                                                                \
        SRunner *sr = srunner_create(make_suite());                  \
        if (!getenv("CK_FORK")) /* CK_FORK=no to debug in-process */ \
            srunner_set_fork_status(sr, CK_FORK);                    \
        srunner_run_all(sr, CK_NORMAL);                              \
        int failed = srunner_ntests_failed(sr);                      \
        srunner_free(sr);                                            \
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;                 \
    }

#endif
