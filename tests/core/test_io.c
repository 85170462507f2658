/* Awaitable ring operations: sockets and files, deadlines and cancellation. */
#include "harness.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int sp[2];

static void make_pair(void)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
}

static intptr_t main_send_recv(void *arg)
{
    (void)arg;
    make_pair();
    char buf[16] = {0};
    ck_assert_int_eq(cio_send(sp[0], "hello", 5, 0, CIO_NEVER), 5);
    ck_assert_int_eq(cio_recv(sp[1], buf, sizeof(buf), 0, CIO_NEVER), 5);
    ck_assert_str_eq(buf, "hello");
    return 0;
}

START_TEST(send_and_recv_roundtrip)
{
    ck_assert_int_eq(t_run(main_send_recv, NULL), 0);
}
END_TEST

static intptr_t main_recv_deadline(void *arg)
{
    (void)arg;
    make_pair();
    char buf[8];
    cio_time t0 = cio_now(); /* what cio_after() counts from */
    intptr_t r = cio_recv(sp[1], buf, sizeof(buf), 0, cio_after(CIO_MS(10)));
    ck_assert_int_ge(cio_clock() - t0, CIO_MS(9));
    /* The socket is usable afterwards: the recv was really cancelled. */
    send(sp[0], "x", 1, 0);
    ck_assert_int_eq(cio_recv(sp[1], buf, sizeof(buf), 0, CIO_NEVER), 1);
    return r;
}

START_TEST(recv_deadline_times_out)
{
    ck_assert_int_eq(t_run(main_recv_deadline, NULL), -ETIMEDOUT);
}
END_TEST

static char recv_buf[64];

static intptr_t recv_task(void *arg)
{
    (void)arg;
    return cio_recv(sp[1], recv_buf, sizeof(recv_buf), 0, CIO_NEVER);
}

static intptr_t main_cancel_recv(void *arg)
{
    (void)arg;
    make_pair();
    cio_task *t;
    cio_spawn(NULL, &t, recv_task, NULL);
    cio_sleep(CIO_MS(5));
    cio_task_cancel(t);
    intptr_t r = cio_join(t, CIO_NEVER);
    /* After the cancelled recv returned, data sent later is not written into
     * its buffer (the kernel no longer holds it). */
    send(sp[0], "late", 4, 0);
    cio_sleep(CIO_MS(5));
    ck_assert_int_eq(recv_buf[0], 0);
    char b[8];
    ck_assert_int_eq(cio_recv(sp[1], b, sizeof(b), 0, CIO_NEVER), 4);
    return r;
}

START_TEST(cancel_while_waiting_on_recv)
{
    ck_assert_int_eq(t_run(main_cancel_recv, NULL), -ECANCELED);
}
END_TEST

static intptr_t main_recv_data_wins(void *arg)
{
    (void)arg;
    make_pair();
    send(sp[0], "ready", 5, 0);
    cio_task_cancel(cio_current());
    char b[8];
    /* Cancelled before the call: it fails without consuming the data. */
    ck_assert_int_eq(cio_recv(sp[1], b, sizeof(b), 0, CIO_NEVER), -ECANCELED);
    cio_scope sh;
    cio_scope_enter(&sh, CIO_NEVER, true);
    intptr_t r = cio_recv(sp[1], b, sizeof(b), 0, CIO_NEVER);
    cio_scope_exit(&sh);
    return r;
}

START_TEST(cancelled_recv_does_not_consume_data)
{
    ck_assert_int_eq(t_run(main_recv_data_wins, NULL), 5);
}
END_TEST

static intptr_t main_peer_close(void *arg)
{
    (void)arg;
    make_pair();
    close(sp[0]);
    char b[8];
    ck_assert_int_eq(cio_recv(sp[1], b, sizeof(b), 0, CIO_NEVER), 0); /* EOF */
    return cio_send(sp[1], "x", 1, 0, CIO_NEVER);
}

START_TEST(send_to_closed_peer_is_epipe_not_sigpipe)
{
    ck_assert_int_eq(t_run(main_peer_close, NULL), -EPIPE);
}
END_TEST

static int listen_fd;
static struct sockaddr_in listen_addr;

static intptr_t accept_task(void *arg)
{
    (void)arg;
    int c = cio_accept(listen_fd, NULL, NULL, CIO_NEVER);
    if (c < 0)
        return c;
    char b[16];
    ssize_t n = cio_recv(c, b, sizeof(b), 0, CIO_NEVER);
    ck_assert_int_eq(cio_send(c, b, (size_t)n, 0, CIO_NEVER), n);
    return cio_close(c);
}

static intptr_t main_tcp(void *arg)
{
    (void)arg;
    listen_fd = cio_socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(listen_fd, 0);
    listen_addr =
        (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(listen_fd, (struct sockaddr *)&listen_addr, sizeof(listen_addr)), 0);
    socklen_t len = sizeof(listen_addr);
    getsockname(listen_fd, (struct sockaddr *)&listen_addr, &len);
    ck_assert_int_eq(listen(listen_fd, 16), 0);
    cio_task *srv;
    cio_spawn(NULL, &srv, accept_task, NULL);
    int c = cio_socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(
        cio_connect(c, (struct sockaddr *)&listen_addr, sizeof(listen_addr), CIO_NEVER), 0);
    ck_assert_int_eq(cio_send(c, "ping", 4, 0, CIO_NEVER), 4);
    char b[8] = {0};
    ck_assert_int_eq(cio_recv(c, b, sizeof(b), 0, cio_after(CIO_SEC(5))), 4);
    ck_assert_str_eq(b, "ping");
    ck_assert_int_eq(cio_join(srv, CIO_NEVER), 0);
    cio_close(c);
    return cio_close(listen_fd);
}

START_TEST(tcp_accept_connect_echo)
{
    ck_assert_int_eq(t_run(main_tcp, NULL), 0);
}
END_TEST

static intptr_t main_accept_deadline(void *arg)
{
    (void)arg;
    int fd = cio_socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    listen(fd, 4);
    intptr_t r = cio_accept(fd, NULL, NULL, cio_after(CIO_MS(10)));
    cio_close(fd);
    return r;
}

START_TEST(accept_deadline_times_out)
{
    ck_assert_int_eq(t_run(main_accept_deadline, NULL), -ETIMEDOUT);
}
END_TEST

static intptr_t main_close_cancels_pending(void *arg)
{
    (void)arg;
    make_pair();
    cio_task *t;
    cio_spawn(NULL, &t, recv_task, NULL);
    cio_sleep(CIO_MS(2));
    /* Closing the fd cancels the recv that holds it. */
    ck_assert_int_eq(cio_close(sp[1]), 0);
    return cio_join(t, cio_after(CIO_SEC(5)));
}

START_TEST(close_cancels_pending_operations)
{
    ck_assert_int_eq(t_run(main_close_cancels_pending, NULL), -ECANCELED);
}
END_TEST

static intptr_t main_files(void *arg)
{
    (void)arg;
    char dir[] = "/tmp/corio-io-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    int dfd = open(dir, O_DIRECTORY | O_CLOEXEC);
    struct open_how how = {.flags = O_CREAT | O_RDWR | O_CLOEXEC, .mode = 0600};
    int fd = cio_openat2(dfd, "f.txt", &how, CIO_NEVER);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(cio_write(fd, "abcdef", 6, 0, CIO_NEVER), 6);
    ck_assert_int_eq(cio_fsync(fd, CIO_NEVER), 0);
    char b[8] = {0};
    ck_assert_int_eq(cio_read(fd, b, 3, 2, CIO_NEVER), 3);
    ck_assert_str_eq(b, "cde");
    struct statx st;
    ck_assert_int_eq(cio_statx(dfd, "f.txt", 0, STATX_SIZE, &st, CIO_NEVER), 0);
    ck_assert_int_eq(st.stx_size, 6);
    /* RESOLVE_BENEATH refuses to leave the directory. */
    struct open_how beneath = {.flags = O_RDONLY | O_CLOEXEC, .resolve = RESOLVE_BENEATH};
    ck_assert_int_eq(cio_openat2(dfd, "../etc/passwd", &beneath, CIO_NEVER), -EXDEV);
    ck_assert_int_eq(cio_close(fd), 0);
    unlinkat(dfd, "f.txt", 0);
    close(dfd);
    rmdir(dir);
    return 0;
}

START_TEST(file_open_write_read_statx)
{
    ck_assert_int_eq(t_run(main_files, NULL), 0);
}
END_TEST

static intptr_t main_splice(void *arg)
{
    (void)arg;
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    make_pair();
    ck_assert_int_eq(write(p[1], "spliced", 7), 7);
    ck_assert_int_eq(cio_splice(p[0], -1, sp[0], -1, 7, 0, CIO_NEVER), 7);
    char b[8] = {0};
    ck_assert_int_eq(cio_recv(sp[1], b, sizeof(b), 0, CIO_NEVER), 7);
    ck_assert_str_eq(b, "spliced");
    return 0;
}

START_TEST(splice_moves_bytes)
{
    ck_assert_int_eq(t_run(main_splice, NULL), 0);
}
END_TEST

static intptr_t main_shutdown(void *arg)
{
    (void)arg;
    make_pair();
    ck_assert_int_eq(cio_shutdown(sp[0], SHUT_WR), 0);
    char b[4];
    return cio_recv(sp[1], b, sizeof(b), 0, cio_after(CIO_SEC(5)));
}

START_TEST(shutdown_write_gives_peer_eof)
{
    ck_assert_int_eq(t_run(main_shutdown, NULL), 0);
}
END_TEST

static Suite *io_suite(void)
{
    Suite *s = suite_create("io");
    T_CASE(s, send_and_recv_roundtrip, 5);
    T_CASE(s, recv_deadline_times_out, 5);
    T_CASE(s, cancel_while_waiting_on_recv, 5);
    T_CASE(s, cancelled_recv_does_not_consume_data, 5);
    T_CASE(s, send_to_closed_peer_is_epipe_not_sigpipe, 5);
    T_CASE(s, tcp_accept_connect_echo, 5);
    T_CASE(s, accept_deadline_times_out, 5);
    T_CASE(s, close_cancels_pending_operations, 5);
    T_CASE(s, file_open_write_read_statx, 5);
    T_CASE(s, splice_moves_bytes, 5);
    T_CASE(s, shutdown_write_gives_peer_eof, 5);
    return s;
}

T_MAIN(io_suite)
