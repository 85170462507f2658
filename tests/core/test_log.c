/* Non-blocking writers and the process log. */
#include "harness.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static int pfd[2];

static intptr_t main_writer_order(void *arg)
{
    (void)arg;
    ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
    cio_log_writer *w;
    ck_assert_int_eq(cio_log_writer_create(NULL, pfd[1], 0, &w), 0);
    char line[32];
    for (int i = 0; i < 100; i++) {
        int n = snprintf(line, sizeof(line), "line %03d\n", i);
        ck_assert_int_eq(cio_log_writer_append(w, line, (size_t)n), 0);
        if (i % 10 == 0)
            cio_yield(); /* let flushes interleave with appends */
    }
    /* The writes go out one at a time, a loop turn each: collect them. */
    static char got[4096];
    ssize_t n = 0;
    fcntl(pfd[0], F_SETFL, O_NONBLOCK);
    cio_time until = cio_clock() + CIO_MS(T_PATIENCE_MS);
    while (n < 900 && cio_clock() < until) {
        ssize_t r = read(pfd[0], got + n, sizeof(got) - (size_t)n);
        if (r > 0)
            n += r;
        else
            cio_sleep(CIO_MS(1));
    }
    cio_sleep(CIO_MS(5));
    ssize_t more = read(pfd[0], got + n, sizeof(got) - (size_t)n);
    n += more > 0 ? more : 0;
    ck_assert_int_eq(n, 900);
    for (int i = 0; i < 100; i++) {
        snprintf(line, sizeof(line), "line %03d\n", i);
        ck_assert_int_eq(memcmp(got + i * 9, line, 9), 0);
    }
    ck_assert_int_eq(cio_log_writer_dropped(w), 0);
    cio_log_writer_destroy(w);
    return 0;
}

START_TEST(writer_writes_in_order_through_the_ring)
{
    ck_assert_int_eq(t_run(main_writer_order, NULL), 0);
}
END_TEST

static intptr_t main_writer_drops(void *arg)
{
    (void)arg;
    ck_assert_int_eq(pipe2(pfd, O_CLOEXEC | O_NONBLOCK), 0);
    /* Fill the pipe so the writer's write stalls in the kernel. */
    char fill[4096];
    memset(fill, 'f', sizeof(fill));
    size_t filled = 0;
    for (ssize_t n; (n = write(pfd[1], fill, sizeof(fill))) > 0;)
        filled += (size_t)n;
    int fl = fcntl(pfd[1], F_GETFL);
    fcntl(pfd[1], F_SETFL, fl & ~O_NONBLOCK);
    cio_log_writer *w;
    /* Bound 150: 60 in flight + 60 waiting fit, 60 more do not. */
    ck_assert_int_eq(cio_log_writer_create(NULL, pfd[1], 150, &w), 0);
    ck_assert_int_eq(cio_log_writer_append(w, fill, 60), 0);
    cio_sleep(CIO_MS(2)); /* a turn ended: the 60 bytes are in flight, stalled */
    ck_assert_int_eq(cio_log_writer_append(w, fill, 60), 0);
    /* The loop is not blocked, and past the bound appends are dropped. */
    ck_assert_int_eq(cio_log_writer_append(w, fill, 60), -ENOBUFS);
    ck_assert_int_eq(cio_log_writer_dropped(w), 60);
    /* Drain the pipe: the stalled write completes, the next one follows. */
    fcntl(pfd[0], F_SETFL, O_NONBLOCK);
    static char sink[65536]; /* not on the 64 KiB coroutine stack */
    size_t total = 0;
    cio_time until = cio_clock() + CIO_MS(T_PATIENCE_MS);
    while (total < filled + 120 && cio_clock() < until) {
        ssize_t n = read(pfd[0], sink, sizeof(sink));
        if (n > 0)
            total += (size_t)n;
        cio_sleep(CIO_MS(2));
    }
    cio_sleep(CIO_MS(5)); /* nothing more: the dropped bytes never come */
    ssize_t more = read(pfd[0], sink, sizeof(sink));
    total += more > 0 ? (size_t)more : 0;
    cio_log_writer_destroy(w);
    return (intptr_t)(total - filled);
}

START_TEST(writer_never_blocks_and_drops_past_bound)
{
    ck_assert_int_eq(t_run(main_writer_drops, NULL), 120);
}
END_TEST

static intptr_t main_destroy_flushes(void *arg)
{
    (void)arg;
    ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
    cio_log_writer *w;
    cio_log_writer_create(NULL, pfd[1], 0, &w);
    char *p = cio_log_writer_reserve(w, 5);
    ck_assert_ptr_nonnull(p);
    memcpy(p, "abcde", 5);
    cio_log_writer_commit(w, 5);
    cio_log_writer_destroy(w); /* not flushed by the loop yet: written now */
    char got[8] = {0};
    ck_assert_int_eq(read(pfd[0], got, sizeof(got)), 5);
    return strcmp(got, "abcde");
}

START_TEST(writer_destroy_writes_what_is_buffered)
{
    ck_assert_int_eq(t_run(main_destroy_flushes, NULL), 0);
}
END_TEST

static intptr_t main_log_lines(void *arg)
{
    (void)arg;
    cio_log_set_level(CIO_LOG_INFO);
    cio_info("visible %d", 1);
    cio_debug("hidden");
    cio_warn("also visible");
    cio_sleep(CIO_MS(5));
    return 0;
}

START_TEST(log_respects_level_and_formats_lines)
{
    ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
    int saved = dup(2);
    dup2(pfd[1], 2);
    t_run(main_log_lines, NULL);
    dup2(saved, 2);
    close(pfd[1]);
    char got[1024] = {0};
    ssize_t n = read(pfd[0], got, sizeof(got) - 1);
    ck_assert_int_gt(n, 0);
    ck_assert_ptr_nonnull(strstr(got, "info  ["));
    ck_assert_ptr_nonnull(strstr(got, "] visible 1\n"));
    ck_assert_ptr_nonnull(strstr(got, "warn  ["));
    ck_assert_ptr_null(strstr(got, "hidden"));
    ck_assert_int_eq(got[4], '-'); /* ISO 8601 timestamp first */
}
END_TEST

START_TEST(log_level_parse)
{
    ck_assert_int_eq(cio_log_parse_level("error"), CIO_LOG_ERROR);
    ck_assert_int_eq(cio_log_parse_level("debug"), CIO_LOG_DEBUG);
    ck_assert_int_eq(cio_log_parse_level("verbose"), -EINVAL);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    T_CASE(s, writer_writes_in_order_through_the_ring, 5);
    T_CASE(s, writer_never_blocks_and_drops_past_bound, 10);
    T_CASE(s, writer_destroy_writes_what_is_buffered, 5);
    T_CASE(s, log_respects_level_and_formats_lines, 5);
    T_CASE(s, log_level_parse, 5);
    return s;
}

T_MAIN(log_suite)
