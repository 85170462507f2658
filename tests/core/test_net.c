/* Transports and listeners: the socket transport over provided buffers,
 * the in-memory transport, and the multishot-accept listener. */
#include "harness.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A connection endpoint driven by transport callbacks. */
typedef struct endpoint {
    cio_socket_transport sock;
    cio_mem_transport mem;
    cio_transport *t;
    char got[1 << 16];
    size_t got_len;
    int eof, sent, closed, sent_err;
    bool echo;
    struct iovec iov[4];
} endpoint;

static void ep_data(void *ud, uint8_t *data, size_t len)
{
    endpoint *e = ud;
    if (e->got_len + len <= sizeof(e->got)) {
        memcpy(e->got + e->got_len, data, len);
        e->got_len += len;
    }
}

static void ep_eof(void *ud, int err)
{
    endpoint *e = ud;
    e->eof = err == 0 ? 1 : err;
}

static void ep_sent(void *ud, int err)
{
    endpoint *e = ud;
    e->sent++;
    e->sent_err = err;
}

static void ep_closed(void *ud)
{
    ((endpoint *)ud)->closed++;
}

static const cio_transport_cbs ep_cbs = {ep_data, ep_eof, ep_sent, ep_closed};

static int wait_for(int *flag, cio_time ms)
{
    cio_time until = cio_after(CIO_MS(ms));
    while (!*flag && cio_now() < until)
        cio_sleep(CIO_MS(1));
    return *flag;
}

static int pair[2];

static endpoint *sock_endpoint(void)
{
    static endpoint e;
    memset(&e, 0, sizeof(e));
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair), 0);
    cio_socket_transport_init(&e.sock, NULL, pair[0], &ep_cbs, &e);
    e.t = &e.sock.t;
    return &e;
}

static intptr_t main_receive(void *arg)
{
    (void)arg;
    endpoint *e = sock_endpoint();
    ck_assert_int_eq(e->t->ops->read_start(e->t), 0);
    ck_assert_int_eq(write(pair[1], "hello ", 6), 6);
    cio_sleep(CIO_MS(5));
    ck_assert_int_eq(write(pair[1], "world", 5), 5);
    shutdown(pair[1], SHUT_WR);
    ck_assert(wait_for(&e->eof, 2000));
    ck_assert_int_eq(e->got_len, 11);
    ck_assert(memcmp(e->got, "hello world", 11) == 0);
    e->t->ops->close(e->t);
    ck_assert(wait_for(&e->closed, 2000));
    return e->closed;
}

START_TEST(sock_receives_until_eof_then_closes)
{
    ck_assert_int_eq(t_run(main_receive, NULL), 1);
}
END_TEST

static intptr_t main_multi_iov(void *arg)
{
    (void)arg;
    endpoint *e = sock_endpoint();
    e->iov[0] = (struct iovec){"abc", 3};
    e->iov[1] = (struct iovec){"", 0};
    e->iov[2] = (struct iovec){"defgh", 5};
    ck_assert_int_eq(e->t->ops->send(e->t, e->iov, 3), 0);
    ck_assert_int_eq(e->t->ops->send(e->t, e->iov, 3), -EBUSY); /* one at a time */
    ck_assert(wait_for(&e->sent, 2000));
    ck_assert_int_eq(e->sent_err, 0);
    char b[16] = {0};
    ck_assert_int_eq(read(pair[1], b, sizeof(b)), 8);
    ck_assert_str_eq(b, "abcdefgh");
    e->t->ops->close(e->t);
    ck_assert(wait_for(&e->closed, 2000));
    return 0;
}

START_TEST(sock_sends_several_buffers_in_order)
{
    ck_assert_int_eq(t_run(main_multi_iov, NULL), 0);
}
END_TEST

static intptr_t main_big_send(void *arg)
{
    (void)arg;
    endpoint *e = sock_endpoint();
    enum { N = 4 << 20 }; /* far beyond the socket buffer: short sends */
    char *big = malloc(N);
    for (size_t i = 0; i < N; i++)
        big[i] = (char)(i * 7);
    e->iov[0] = (struct iovec){big, N};
    ck_assert_int_eq(e->t->ops->send(e->t, e->iov, 1), 0);
    size_t total = 0;
    static char b[65536];
    bool same = true;
    while (total < N) {
        ssize_t n = read(pair[1], b, sizeof(b));
        if (n < 0) {
            cio_sleep(CIO_MS(1)); /* let the loop push more */
            continue;
        }
        for (ssize_t i = 0; i < n; i++)
            same &= b[i] == (char)((total + (size_t)i) * 7);
        total += (size_t)n;
    }
    ck_assert(wait_for(&e->sent, 2000));
    ck_assert(same);
    free(big);
    e->t->ops->close(e->t);
    wait_for(&e->closed, 2000);
    return e->sent;
}

START_TEST(sock_completes_a_send_once_after_short_writes)
{
    ck_assert_int_eq(t_run(main_big_send, NULL), 1);
}
END_TEST

/* Regression: shutdown_write during a send in flight shut the socket before
 * the rest of the send went out. */
static intptr_t main_shutdown_after_send(void *arg)
{
    (void)arg;
    endpoint *e = sock_endpoint();
    enum { N = 2 << 20 };
    char *big = malloc(N);
    memset(big, 'q', N);
    e->iov[0] = (struct iovec){big, N};
    ck_assert_int_eq(e->t->ops->send(e->t, e->iov, 1), 0);
    e->t->ops->shutdown_write(e->t); /* while the send is still in flight */
    size_t total = 0;
    static char b[65536];
    for (;;) {
        ssize_t n = read(pair[1], b, sizeof(b));
        if (n == 0)
            break; /* EOF: after every byte */
        if (n < 0) {
            cio_sleep(CIO_MS(1));
            continue;
        }
        total += (size_t)n;
    }
    ck_assert(wait_for(&e->sent, 2000));
    ck_assert_int_eq(e->sent_err, 0);
    free(big);
    e->t->ops->close(e->t);
    wait_for(&e->closed, 2000);
    return (intptr_t)total;
}

START_TEST(shutdown_write_waits_for_the_send_in_flight)
{
    ck_assert_int_eq(t_run(main_shutdown_after_send, NULL), 2 << 20);
}
END_TEST

static intptr_t main_read_stop(void *arg)
{
    (void)arg;
    endpoint *e = sock_endpoint();
    e->t->ops->read_start(e->t);
    ck_assert_int_eq(write(pair[1], "one", 3), 3);
    cio_sleep(CIO_MS(5));
    e->t->ops->read_stop(e->t);
    cio_sleep(CIO_MS(5));
    ck_assert_int_eq(write(pair[1], "two", 3), 3);
    cio_sleep(CIO_MS(20));
    ck_assert_int_eq(e->got_len, 3); /* paused: "two" waits in the socket */
    e->t->ops->read_start(e->t);
    ck_assert(T_AWAIT(e->got_len == 6, T_PATIENCE_MS));
    e->t->ops->close(e->t);
    wait_for(&e->closed, 2000);
    return memcmp(e->got, "onetwo", 6);
}

START_TEST(sock_read_stop_and_start)
{
    ck_assert_int_eq(t_run(main_read_stop, NULL), 0);
}
END_TEST

static intptr_t main_close_armed(void *arg)
{
    (void)arg;
    endpoint *e = sock_endpoint();
    e->t->ops->read_start(e->t);
    cio_sleep(CIO_MS(2));
    e->t->ops->close(e->t); /* the armed receive is cancelled first */
    ck_assert(wait_for(&e->closed, 2000));
    cio_sleep(CIO_MS(5));
    ck_assert_int_eq(e->closed, 1); /* exactly once */
    ck_assert_int_eq(e->eof, 0);    /* a cancel is not an end of stream */
    char b;
    return read(pair[1], &b, 1); /* the peer sees the close */
}

START_TEST(sock_close_with_receive_armed)
{
    ck_assert_int_eq(t_run(main_close_armed, NULL), 0);
}
END_TEST

/* Many sockets and only two provided buffers: receives end with -ENOBUFS
 * and must be re-armed, never mistaken for an end of stream. */
enum { MANY = 40 };
static endpoint many[MANY];
static int many_pair[MANY][2];

static intptr_t main_enobufs(void *arg)
{
    (void)arg;
    for (int i = 0; i < MANY; i++) {
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, many_pair[i]);
        cio_socket_transport_init(&many[i].sock, NULL, many_pair[i][0], &ep_cbs, &many[i]);
        many[i].t = &many[i].sock.t;
        ck_assert_int_eq(many[i].t->ops->read_start(many[i].t), 0);
    }
    cio_sleep(CIO_MS(5));
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < MANY; i++)
            ck_assert_int_eq(write(many_pair[i][1], "0123456789", 10), 10);
        cio_sleep(CIO_MS(20));
    }
    /* Each receive waits its turn for one of the two buffers: however long
     * that takes, every byte arrives. */
    for (int i = 0; i < MANY; i++)
        (void)T_AWAIT(many[i].got_len == 30 || many[i].eof, T_PATIENCE_MS);
    int ok = 0;
    for (int i = 0; i < MANY; i++) {
        ok += many[i].got_len == 30 && many[i].eof == 0;
        many[i].t->ops->close(many[i].t);
    }
    for (int i = 0; i < MANY; i++)
        wait_for(&many[i].closed, 2000);
    return ok;
}

START_TEST(buffer_shortage_rearms_receives)
{
    cio_loop *l;
    cio_loop_opts o = {.buf_count = 2, .buf_size = 4096};
    ck_assert_int_eq(cio_loop_create(&l, &o), 0);
    ck_assert_int_eq(cio_run(l, main_enobufs, NULL), MANY);
    cio_loop_stats st;
    cio_loop_get_stats(l, &st);
    ck_assert_int_gt(st.buf_shortages, 0);
    cio_loop_destroy(l);
}
END_TEST

/* ---- in-memory transport --------------------------------------------------------- */

static intptr_t main_mem_transport(void *arg)
{
    (void)arg;
    static endpoint e;
    cio_mem_transport_init(&e.mem, NULL, &ep_cbs, &e);
    e.mem.chunk = 4;
    e.t = &e.mem.t;
    cio_mem_transport_feed(&e.mem, "abcdefghij", 10);
    cio_mem_transport_feed_eof(&e.mem);
    ck_assert_int_eq(e.t->ops->read_start(e.t), 0);
    ck_assert_int_eq(e.got_len, 0); /* never inside read_start */
    ck_assert(wait_for(&e.eof, 1000));
    ck_assert_int_eq(e.got_len, 10);
    e.iov[0] = (struct iovec){"out", 3};
    ck_assert_int_eq(e.t->ops->send(e.t, e.iov, 1), 0);
    ck_assert_int_eq(e.sent, 0); /* completes one turn later */
    ck_assert(wait_for(&e.sent, 1000));
    ck_assert_int_eq(e.mem.out.len, 3);
    e.t->ops->close(e.t);
    ck_assert(wait_for(&e.closed, 1000));
    cio_mem_transport_fini(&e.mem);
    return memcmp(e.got, "abcdefghij", 10);
}

START_TEST(mem_transport_delivers_in_chunks_and_completes_later)
{
    ck_assert_int_eq(t_run(main_mem_transport, NULL), 0);
}
END_TEST

/* ---- listener ---------------------------------------------------------------------- */

static int accepted;

static void on_accept(cio_listener *ls, int fd)
{
    (void)ls;
    accepted++;
    close(fd);
}

static int listener_closed;

static void on_listener_closed(cio_listener *ls)
{
    (void)ls;
    listener_closed = 1;
}

static int connect_to(const struct sockaddr_storage *ss, socklen_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(connect(fd, (const struct sockaddr *)ss, len), 0);
    return fd;
}

static intptr_t main_listener(void *arg)
{
    (void)arg;
    cio_listener ls;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(
        cio_listener_open(&ls, NULL, (struct sockaddr *)&a, sizeof(a), 16, false, on_accept, NULL),
        0);
    struct sockaddr_storage ss;
    socklen_t len;
    ck_assert_int_eq(cio_listener_address(&ls, &ss, &len), 0);
    int c1 = connect_to(&ss, len), c2 = connect_to(&ss, len);
    ck_assert(T_AWAIT(accepted == 2, T_PATIENCE_MS)); /* one multishot accept, two connections */
    cio_sleep(CIO_MS(5));
    ck_assert_int_eq(accepted, 2);
    cio_listener_pause(&ls);
    cio_sleep(CIO_MS(5));
    int c3 = connect_to(&ss, len); /* completes in the kernel backlog */
    cio_sleep(CIO_MS(20));
    ck_assert_int_eq(accepted, 2);
    cio_listener_resume(&ls);
    ck_assert(T_AWAIT(accepted == 3, T_PATIENCE_MS));
    cio_listener_close(&ls, on_listener_closed);
    ck_assert_int_eq(listener_closed, 0); /* never inside close() */
    ck_assert(wait_for(&listener_closed, 1000));
    close(c1), close(c2), close(c3);
    return 0;
}

START_TEST(listener_accepts_pauses_resumes_closes)
{
    ck_assert_int_eq(t_run(main_listener, NULL), 0);
}
END_TEST

START_TEST(listener_reports_bind_errors)
{
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    cio_listener a, b;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(
        cio_listener_open(&a, l, (struct sockaddr *)&addr, sizeof(addr), 4, false, on_accept, NULL),
        0);
    struct sockaddr_storage ss;
    socklen_t len;
    cio_listener_address(&a, &ss, &len);
    ck_assert_int_eq(
        cio_listener_open(&b, l, (struct sockaddr *)&ss, len, 4, false, on_accept, NULL),
        -EADDRINUSE);
    cio_listener_close(&a, NULL);
    cio_loop_run(l);
    cio_loop_destroy(l);
}
END_TEST

/* A listening socket on 127.0.0.1, made here (as systemd makes one for
 * socket activation), and its address. */
static int made_listening(struct sockaddr_storage *ss, socklen_t *len)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); /* blocking, as systemd's */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    *len = sizeof(*ss);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)ss, len), 0);
    return fd;
}

static intptr_t main_adopt(void *arg)
{
    (void)arg;
    struct sockaddr_storage ss;
    socklen_t len;
    int lfd = made_listening(&ss, &len);
    int copy = dup(lfd); /* stands for the service manager's copy */
    cio_listener a, b;
    ck_assert_int_eq(cio_listener_adopt(&a, NULL, lfd, true, on_accept, NULL), 0);
    ck_assert_int_ne(fcntl(lfd, F_GETFL) & O_NONBLOCK, 0);
    ck_assert_int_ne(fcntl(lfd, F_GETFD) & FD_CLOEXEC, 0);
    int c1 = connect_to(&ss, len);
    ck_assert(T_AWAIT(accepted == 1, T_PATIENCE_MS));
    /* A second listener on a dup of the same socket: either takes each
     * connection, and the socket outlives the first one's close. */
    ck_assert_int_eq(cio_listener_adopt(&b, NULL, dup(lfd), true, on_accept, NULL), 0);
    listener_closed = 0;
    cio_listener_close(&a, on_listener_closed);
    ck_assert(wait_for(&listener_closed, 1000));
    ck_assert_int_eq(fcntl(lfd, F_GETFD), -1); /* closed by the listener */
    int c2 = connect_to(&ss, len);
    ck_assert(T_AWAIT(accepted == 2, T_PATIENCE_MS));
    listener_closed = 0;
    cio_listener_close(&b, on_listener_closed);
    ck_assert(wait_for(&listener_closed, 1000));
    /* Closed by us, the socket still listens in its other holder's hands:
     * a connection waits in the backlog for the next one to adopt it. */
    int c3 = connect_to(&ss, len);
    close(c1), close(c2), close(c3), close(copy);
    return accepted;
}

START_TEST(listener_adopts_listening_sockets)
{
    accepted = 0;
    ck_assert_int_eq(t_run(main_adopt, NULL), 2);
}
END_TEST

START_TEST(listener_refuses_to_adopt_what_does_not_listen)
{
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    cio_listener ls;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); /* not listening */
    ck_assert_int_eq(cio_listener_adopt(&ls, l, s, false, on_accept, NULL), -EINVAL);
    ck_assert_int_ne(fcntl(s, F_GETFD), -1); /* still the caller's */
    close(s);
    s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(cio_listener_adopt(&ls, l, s, false, on_accept, NULL), -EINVAL);
    close(s);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(cio_listener_adopt(&ls, l, p[0], false, on_accept, NULL), -ENOTSOCK);
    close(p[0]), close(p[1]);
    ck_assert_int_eq(cio_listener_adopt(&ls, l, p[0], false, on_accept, NULL), -EBADF);
    cio_loop_destroy(l);
}
END_TEST

/* ---- arena --------------------------------------------------------------------------- */

static int order[4], norder;

static void defer_fn(void *arg)
{
    order[norder++] = (int)(intptr_t)arg;
}

START_TEST(arena_allocates_aligned_and_runs_defers_in_reverse)
{
    cio_arena a;
    cio_arena_init(&a, 64);
    void *p = cio_arena_alloc(&a, 3), *q = cio_arena_alloc(&a, 100); /* spills to a new chunk */
    ck_assert_int_eq((uintptr_t)p % 16, 0);
    ck_assert_int_eq((uintptr_t)q % 16, 0);
    ck_assert_str_eq(cio_arena_printf(&a, "%d-%s", 7, "x"), "7-x");
    ck_assert_str_eq(cio_arena_strndup(&a, "abcdef", 3), "abc");
    cio_arena_defer(&a, defer_fn, (void *)1);
    cio_arena_defer(&a, defer_fn, (void *)2);
    cio_arena_reset(&a);
    ck_assert_int_eq(norder, 2);
    ck_assert_int_eq(order[0], 2);
    ck_assert_int_eq(order[1], 1);
    ck_assert_ptr_nonnull(cio_arena_alloc(&a, 10)); /* usable after reset */
    cio_arena_defer(&a, defer_fn, (void *)3);
    cio_arena_fini(&a);
    ck_assert_int_eq(order[2], 3);
}
END_TEST

static Suite *net_suite(void)
{
    Suite *s = suite_create("net");
    T_CASE(s, sock_receives_until_eof_then_closes, 5);
    T_CASE(s, sock_sends_several_buffers_in_order, 5);
    T_CASE(s, sock_completes_a_send_once_after_short_writes, 10);
    T_CASE(s, shutdown_write_waits_for_the_send_in_flight, 10);
    T_CASE(s, sock_read_stop_and_start, 5);
    T_CASE(s, sock_close_with_receive_armed, 5);
    T_CASE(s, buffer_shortage_rearms_receives, 10);
    T_CASE(s, mem_transport_delivers_in_chunks_and_completes_later, 5);
    T_CASE(s, listener_accepts_pauses_resumes_closes, 5);
    T_CASE(s, listener_reports_bind_errors, 5);
    T_CASE(s, listener_adopts_listening_sockets, 5);
    T_CASE(s, listener_refuses_to_adopt_what_does_not_listen, 5);
    T_CASE(s, arena_allocates_aligned_and_runs_defers_in_reverse, 5);
    return s;
}

T_MAIN(net_suite)
