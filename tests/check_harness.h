/*
 * check_harness.h - the Check conventions every suite follows, with no
 * dependency on corio: one tcase per test with its own timeout, fork mode
 * (each test in its own process; CK_FORK=no runs them in-process for a
 * debugger), exit status non-zero on any failure.
 */
#ifndef CORIO_CHECK_HARNESS_H
#define CORIO_CHECK_HARNESS_H

#include <check.h>
#include <signal.h>
#include <stdlib.h>

/* A tcase with one test and a per-test timeout (seconds). */
#define T_CASE(suite, fn, timeout)         \
    do {                                   \
        TCase *tc_ = tcase_create(#fn);    \
        tcase_set_timeout(tc_, (timeout)); \
        tcase_add_test(tc_, fn);           \
        suite_add_tcase((suite), tc_);     \
    } while (0)

/* The same, with setup/teardown run in the parent around the forked test (so
 * that they run even when the test dies). */
#define T_CASE_FIXTURE(suite, fn, timeout, setup, teardown)    \
    do {                                                       \
        TCase *tc_ = tcase_create(#fn);                        \
        tcase_set_timeout(tc_, (timeout));                     \
        tcase_add_unchecked_fixture(tc_, (setup), (teardown)); \
        tcase_add_test(tc_, fn);                               \
        suite_add_tcase((suite), tc_);                         \
    } while (0)

/* A test that passes only if it dies by signal sig. */
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
