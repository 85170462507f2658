/* Buffered streams: read some / exact / until, write buffering, EOF, resets. */
#include "harness.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int sp[2];
static cio_stream rs, ws;

static void setup_pair(size_t rbuf)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    ck_assert_int_eq(cio_stream_init(&rs, sp[1], rbuf, 0), 0);
    ck_assert_int_eq(cio_stream_init(&ws, sp[0], 0, 64), 0);
}

static intptr_t main_read_some(void *arg)
{
    (void)arg;
    setup_pair(0);
    write(sp[0], "abcdef", 6);
    char b[4] = {0};
    ck_assert_int_eq(cio_stream_read(&rs, b, 3, CIO_NEVER), 3);
    ck_assert_str_eq(b, "abc");
    ck_assert_int_eq(cio_stream_read(&rs, b, 3, CIO_NEVER), 3); /* from the buffer */
    ck_assert_str_eq(b, "def");
    close(sp[0]);
    return cio_stream_read(&rs, b, 3, CIO_NEVER); /* EOF */
}

START_TEST(read_some_then_eof_is_zero)
{
    ck_assert_int_eq(t_run(main_read_some, NULL), 0);
}
END_TEST

static intptr_t dribble(void *arg)
{
    const char *s = arg;
    for (; *s; s++) {
        cio_sleep(CIO_MS(1));
        cio_send(sp[0], s, 1, 0, CIO_NEVER);
    }
    return 0;
}

static intptr_t main_read_exact(void *arg)
{
    (void)arg;
    setup_pair(0);
    cio_task *t;
    cio_spawn(NULL, &t, dribble, "0123456789");
    char b[11] = {0};
    ck_assert_int_eq(cio_stream_read_exact(&rs, b, 10, CIO_NEVER), 0);
    ck_assert_str_eq(b, "0123456789");
    return cio_join(t, CIO_NEVER);
}

START_TEST(read_exact_gathers_a_split_message)
{
    ck_assert_int_eq(t_run(main_read_exact, NULL), 0);
}
END_TEST

static intptr_t main_read_exact_eof(void *arg)
{
    (void)arg;
    setup_pair(0);
    write(sp[0], "abc", 3);
    shutdown(sp[0], SHUT_WR);
    char b[8];
    return cio_stream_read_exact(&rs, b, 8, CIO_NEVER);
}

START_TEST(read_exact_short_stream_is_epipe)
{
    ck_assert_int_eq(t_run(main_read_exact_eof, NULL), -EPIPE);
}
END_TEST

static intptr_t main_read_until(void *arg)
{
    (void)arg;
    setup_pair(16); /* small buffer: lines must be found across refills */
    cio_task *t;
    cio_spawn(NULL, &t, dribble, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const uint8_t *line;
    ssize_t n = cio_stream_read_until(&rs, "\r\n", 2, 64, &line, CIO_NEVER);
    ck_assert_int_eq(n, 16);
    ck_assert_int_eq(memcmp(line, "GET / HTTP/1.1\r\n", 16), 0);
    n = cio_stream_read_until(&rs, "\r\n\r\n", 4, 64, &line, CIO_NEVER);
    ck_assert_int_eq(n, 11);
    ck_assert_int_eq(memcmp(line, "Host: x\r\n\r\n", 11), 0);
    return cio_join(t, CIO_NEVER);
}

START_TEST(read_until_finds_delimiters_across_reads)
{
    ck_assert_int_eq(t_run(main_read_until, NULL), 0);
}
END_TEST

static intptr_t main_read_until_max(void *arg)
{
    (void)arg;
    setup_pair(0);
    write(sp[0], "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", 31);
    const uint8_t *line;
    return cio_stream_read_until(&rs, "\n", 1, 20, &line, CIO_NEVER);
}

START_TEST(read_until_over_max_is_emsgsize)
{
    ck_assert_int_eq(t_run(main_read_until_max, NULL), -EMSGSIZE);
}
END_TEST

static intptr_t main_read_until_deadline(void *arg)
{
    (void)arg;
    setup_pair(0);
    write(sp[0], "partial", 7);
    const uint8_t *line;
    return cio_stream_read_until(&rs, "\n", 1, 100, &line, cio_after(CIO_MS(10)));
}

START_TEST(read_until_deadline)
{
    ck_assert_int_eq(t_run(main_read_until_deadline, NULL), -ETIMEDOUT);
}
END_TEST

static intptr_t main_write_buffering(void *arg)
{
    (void)arg;
    setup_pair(0);
    ck_assert_int_eq(cio_stream_write(&ws, "abc", 3, CIO_NEVER), 0);
    char b[256];
    /* Nothing was sent yet: the bytes sit in the write buffer. */
    ck_assert_int_eq(recv(sp[1], b, sizeof(b), MSG_DONTWAIT), -1);
    ck_assert_int_eq(cio_stream_flush(&ws, CIO_NEVER), 0);
    ck_assert_int_eq(cio_stream_read(&rs, b, sizeof(b), CIO_NEVER), 3);
    /* Larger than the 64-byte buffer: flushes and sends through. */
    char big[200];
    memset(big, 'z', sizeof(big));
    ck_assert_int_eq(cio_stream_write(&ws, "x", 1, CIO_NEVER), 0);
    ck_assert_int_eq(cio_stream_write(&ws, big, sizeof(big), CIO_NEVER), 0);
    ck_assert_int_eq(cio_stream_read_exact(&rs, b, 201, CIO_NEVER), 0);
    ck_assert_int_eq(b[0], 'x');
    ck_assert_int_eq(b[200], 'z');
    return 0;
}

START_TEST(write_buffers_small_and_flushes)
{
    ck_assert_int_eq(t_run(main_write_buffering, NULL), 0);
}
END_TEST

static intptr_t reader_drain(void *arg)
{
    size_t total = 0, want = (size_t)(intptr_t)arg;
    static char b[65536]; /* not on the 64 KiB coroutine stack */
    while (total < want) {
        ssize_t n = cio_stream_read(&rs, b, sizeof(b), CIO_NEVER);
        if (n <= 0)
            return -EIO;
        total += (size_t)n;
    }
    return (intptr_t)total;
}

static intptr_t main_write_all_large(void *arg)
{
    (void)arg;
    setup_pair(0);
    enum { N = 8 << 20 }; /* far more than the socket buffer: short sends */
    char *big = malloc(N);
    memset(big, 7, N);
    cio_task *r;
    cio_spawn(NULL, &r, reader_drain, (void *)(intptr_t)N);
    ck_assert_int_eq(cio_stream_write_all(&ws, big, N, CIO_NEVER), 0);
    free(big);
    return cio_join(r, CIO_NEVER);
}

START_TEST(write_all_handles_short_sends)
{
    ck_assert_int_eq(t_run(main_write_all_large, NULL), 8 << 20);
}
END_TEST

static intptr_t main_write_closed(void *arg)
{
    (void)arg;
    setup_pair(0);
    close(sp[1]);
    return cio_stream_write_all(&ws, "hello", 5, CIO_NEVER);
}

START_TEST(write_to_vanished_peer_is_epipe)
{
    ck_assert_int_eq(t_run(main_write_closed, NULL), -EPIPE);
}
END_TEST

/* Regression: a flush cut short by its deadline kept the bytes it had sent,
 * so the next flush sent them again. */
enum { BIG = 4 << 20 };
static size_t drained_total;
static bool drained_ok = true;

static intptr_t drain_pattern(void *arg)
{
    (void)arg;
    static unsigned char b[65536];
    while (drained_total < BIG) {
        ssize_t n = cio_recv(sp[1], b, sizeof(b), 0, cio_after(CIO_SEC(5)));
        if (n <= 0)
            return -EIO;
        for (ssize_t i = 0; i < n; i++)
            drained_ok &= b[i] == (unsigned char)((drained_total + (size_t)i) % 251);
        drained_total += (size_t)n;
    }
    return 0;
}

static intptr_t main_flush_retry(void *arg)
{
    (void)arg;
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    ck_assert_int_eq(cio_stream_init(&ws, sp[0], 0, BIG), 0);
    unsigned char *big = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (unsigned char)(i % 251);
    ck_assert_int_eq(cio_stream_write(&ws, big, BIG, CIO_NEVER), 0); /* buffered */
    free(big);
    /* Nobody reads yet: the flush sends what fits, then times out. */
    ck_assert_int_eq(cio_stream_flush(&ws, cio_after(CIO_MS(20))), -ETIMEDOUT);
    ck_assert_int_lt(ws.wlen, BIG);
    ck_assert_int_gt(ws.wlen, 0);
    cio_task *r;
    cio_spawn(NULL, &r, drain_pattern, NULL);
    ck_assert_int_eq(cio_stream_flush(&ws, CIO_NEVER), 0);
    ck_assert_int_eq(cio_join(r, CIO_NEVER), 0);
    ck_assert(drained_ok);
    return (intptr_t)drained_total;
}

START_TEST(flush_retried_after_timeout_repeats_nothing)
{
    ck_assert_int_eq(t_run(main_flush_retry, NULL), BIG);
}
END_TEST

static Suite *stream_suite(void)
{
    Suite *s = suite_create("stream");
    T_CASE(s, read_some_then_eof_is_zero, 5);
    T_CASE(s, read_exact_gathers_a_split_message, 5);
    T_CASE(s, read_exact_short_stream_is_epipe, 5);
    T_CASE(s, read_until_finds_delimiters_across_reads, 5);
    T_CASE(s, read_until_over_max_is_emsgsize, 5);
    T_CASE(s, read_until_deadline, 5);
    T_CASE(s, write_buffers_small_and_flushes, 5);
    T_CASE(s, write_all_handles_short_sends, 10);
    T_CASE(s, write_to_vanished_peer_is_epipe, 5);
    T_CASE(s, flush_retried_after_timeout_repeats_nothing, 10);
    return s;
}

T_MAIN(stream_suite)
