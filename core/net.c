/*
 * net.c - the socket transport (multishot receive into provided buffers,
 * ordered sends, safe close) and the multishot-accept listener.
 *
 * Provided buffers are what make idle connections cheap: an armed multishot
 * receive owns no memory until data arrives, and every buffer goes back to
 * the ring as soon as on_data returns. The buffers live in one MAP_NORESERVE
 * mapping, so only buffers that were ever used cost resident memory.
 *
 * A socket is closed only after the last completion of everything it had in
 * flight (receive, send, shutdown), so a completion can never arrive for
 * memory its owner already freed: on_closed is the owner's safe point.
 */
#include "cio_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef CIO_HAVE_VALGRIND
#include <valgrind/memcheck.h>
#endif

#define BGID 0

enum {
    S_READING = 1 << 0,    /* the owner wants on_data */
    S_RECV_ARMED = 1 << 1, /* a receive is in the ring */
    S_SENDING = 1 << 2,
    S_CLOSING = 1 << 3,
    S_EOF = 1 << 4,        /* on_eof was delivered */
    S_BUFWAIT = 1 << 5,    /* on loop->bufwait */
    S_CLOSE_SENT = 1 << 6, /* the close is in the ring */
    S_SHUT_AFTER = 1 << 7, /* shut the sending side once the send in flight is done */
};

/* ---- provided buffer ring ----------------------------------------------------- */

static int bufring_setup(cio_loop *l)
{
    if (l->br)
        return 0;
    if (l->br_failed)
        return -ENOTSUP;
    unsigned n = l->buf_count;
    size_t ring_len = n * sizeof(struct io_uring_buf);
    /* liburing 2.3 has no io_uring_setup_buf_ring: map and register by hand. */
    void *ring = mmap(NULL, ring_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ring == MAP_FAILED)
        return -ENOMEM;
    char *bufs = mmap(NULL, (size_t)n * l->buf_size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (bufs == MAP_FAILED) {
        munmap(ring, ring_len);
        return -ENOMEM;
    }
    struct io_uring_buf_ring *br = ring;
    io_uring_buf_ring_init(br);
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = n, .bgid = BGID};
    int rc = io_uring_register_buf_ring(&l->ring, &reg, 0);
    if (rc < 0) {
        munmap(bufs, (size_t)n * l->buf_size);
        munmap(ring, ring_len);
        l->br_failed = true;
        return rc;
    }
    unsigned mask = io_uring_buf_ring_mask(n);
    for (unsigned i = 0; i < n; i++)
        io_uring_buf_ring_add(br, bufs + (size_t)i * l->buf_size, l->buf_size, (unsigned short)i,
                              mask, (int)i);
    io_uring_buf_ring_advance(br, (int)n);
    l->br = br;
    l->bufs = bufs;
    l->buf_mask = mask;
    return 0;
}

void cio__bufring_fini(cio_loop *l)
{
    if (!l->br)
        return;
    (void)io_uring_unregister_buf_ring(&l->ring, BGID);
    munmap(l->bufs, (size_t)l->buf_count * l->buf_size);
    munmap(l->br, l->buf_count * sizeof(struct io_uring_buf));
    l->br = NULL;
}

/* Gives a buffer back; the ring's tail moves once per reap (one release
 * store for the whole batch), in cio__bufring_publish. */
static void buf_recycle(cio_loop *l, unsigned bid)
{
    io_uring_buf_ring_add(l->br, l->bufs + (size_t)bid * l->buf_size, l->buf_size,
                          (unsigned short)bid, l->buf_mask, (int)l->br_returned++);
}

void cio__bufring_publish(cio_loop *l)
{
    io_uring_buf_ring_advance(l->br, (int)l->br_returned);
    l->br_returned = 0;
}

/* ---- socket transport ------------------------------------------------------------ */

static void sock_arm_recv(cio_socket_transport *s);
static void sock_submit_shutdown(cio_socket_transport *s);

/* Sockets whose receive ended with -ENOBUFS; buffers are back by the end of
 * the reap that saw it, so re-arm them then. */
void cio__net_rearm(cio_loop *l)
{
    /* Detach the list first: a socket may land on it again while re-arming. */
    cio_list pending;
    cio_list_init(&pending);
    cio_list_splice(&pending, &l->bufwait);
    cio_list *n;
    while ((n = cio_list_pop(&pending)) != NULL) {
        cio_socket_transport *s = cio_container_of(n, cio_socket_transport, bufwait_link);
        s->flags &= (uint8_t)~S_BUFWAIT;
        if ((s->flags & S_READING) && !(s->flags & (S_CLOSING | S_RECV_ARMED | S_EOF)))
            sock_arm_recv(s);
    }
}

static void bufwait_leave(cio_socket_transport *s)
{
    if (s->flags & S_BUFWAIT) {
        cio_list_del(&s->bufwait_link);
        s->flags &= (uint8_t)~S_BUFWAIT;
    }
}

static void sock_maybe_close(cio_socket_transport *s)
{
    if (!(s->flags & S_CLOSING) || s->pending || (s->flags & S_CLOSE_SENT))
        return;
    s->flags |= S_CLOSE_SENT;
    struct io_uring_sqe *sqe = cio__sqe(s->loop);
    io_uring_prep_close(sqe, s->fd);
    cio__sqe_set_comp(s->loop, sqe, &s->aux_comp);
    s->pending++;
}

static void sock_recv_done(cio_completion *c, int32_t res, uint32_t cflags)
{
    cio_socket_transport *s = cio_container_of(c, cio_socket_transport, recv_comp);
    cio_loop *l = s->loop;
    bool more = cflags & IORING_CQE_F_MORE;
    if (cflags & IORING_CQE_F_BUFFER) {
        unsigned bid = cflags >> IORING_CQE_BUFFER_SHIFT;
        uint8_t *data = (uint8_t *)l->bufs + (size_t)bid * l->buf_size;
#ifdef CIO_HAVE_VALGRIND
        if (res > 0)
            VALGRIND_MAKE_MEM_DEFINED(data, (size_t)res); /* filled by the kernel */
#endif
        /* Bytes already received are delivered even after read_stop. */
        if (res > 0) /* counted whether delivered or not: they came */
            l->stats.bytes_in += (uint64_t)res;
        if (res > 0 && !(s->flags & S_CLOSING))
            s->t.cbs->on_data(s->t.ud, data, (size_t)res);
        buf_recycle(l, bid); /* whatever the result: a buffer is never lost */
    }
    if (res > 0) {
        /* delivered above */
    } else if (res == -EINVAL && !more && !l->recv_single) {
        /* No multishot receive in this kernel: fall back to one-shot. */
        l->recv_single = true;
    } else if (res <= 0 && res != -ECANCELED && res != -ENOBUFS) {
        if (!(s->flags & (S_EOF | S_CLOSING))) {
            s->flags |= S_EOF;
            s->t.cbs->on_eof(s->t.ud, res);
        }
    }
    if (more)
        return;
    s->flags &= (uint8_t)~S_RECV_ARMED;
    s->pending--;
    if (s->flags & S_CLOSING) {
        sock_maybe_close(s);
    } else if ((s->flags & S_READING) && !(s->flags & S_EOF)) {
        if (res == -ENOBUFS) {
            l->stats.buf_shortages++;
            s->flags |= S_BUFWAIT;
            cio_list_push(&l->bufwait, &s->bufwait_link);
        } else {
            sock_arm_recv(s);
        }
    }
}

static void sock_arm_recv(cio_socket_transport *s)
{
    struct io_uring_sqe *sqe = cio__sqe(s->loop);
    if (s->loop->recv_single)
        io_uring_prep_recv(sqe, s->fd, NULL, 0, 0);
    else
        io_uring_prep_recv_multishot(sqe, s->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    cio__sqe_set_comp(s->loop, sqe, &s->recv_comp);
    s->flags |= S_RECV_ARMED;
    s->pending++;
}

static int sock_read_start(cio_transport *t)
{
    cio_socket_transport *s = cio_container_of(t, cio_socket_transport, t);
    if (s->flags & S_CLOSING)
        return -EPIPE;
    int rc = bufring_setup(s->loop);
    if (rc < 0)
        return rc;
    s->flags |= S_READING;
    if (!(s->flags & (S_RECV_ARMED | S_EOF | S_BUFWAIT)))
        sock_arm_recv(s);
    return 0;
}

static void sock_read_stop(cio_transport *t)
{
    cio_socket_transport *s = cio_container_of(t, cio_socket_transport, t);
    s->flags &= (uint8_t)~S_READING;
    bufwait_leave(s);
    if (s->flags & S_RECV_ARMED)
        cio__cancel_op(s->loop, &s->recv_comp);
}

static void sock_submit_send(cio_socket_transport *s)
{
    while (s->niov && s->iov->iov_len == 0)
        s->iov++, s->niov--;
    struct io_uring_sqe *sqe = cio__sqe(s->loop);
    if (s->niov == 1) {
        io_uring_prep_send(sqe, s->fd, s->iov->iov_base, s->iov->iov_len, MSG_NOSIGNAL);
    } else {
        memset(s->msg, 0, sizeof(*s->msg));
        s->msg->msg_iov = s->iov;
        s->msg->msg_iovlen = s->niov;
        io_uring_prep_sendmsg(sqe, s->fd, s->msg, MSG_NOSIGNAL);
    }
    cio__sqe_set_comp(s->loop, sqe, &s->send_comp);
    s->pending++;
}

static void sock_send_done(cio_completion *c, int32_t res, uint32_t cflags)
{
    (void)cflags;
    cio_socket_transport *s = cio_container_of(c, cio_socket_transport, send_comp);
    s->pending--;
    if (res > 0) {
        s->loop->stats.bytes_out += (uint64_t)res;
        size_t left = (size_t)res;
        while (s->niov && left >= s->iov->iov_len) {
            left -= s->iov->iov_len;
            s->iov++, s->niov--;
        }
        if (s->niov) {
            s->iov->iov_base = (char *)s->iov->iov_base + left;
            s->iov->iov_len -= left;
        }
        while (s->niov && s->iov->iov_len == 0)
            s->iov++, s->niov--;
        if (s->niov && !(s->flags & S_CLOSING)) {
            sock_submit_send(s); /* a short send: the rest */
            return;
        }
    }
    s->flags &= (uint8_t)~S_SENDING;
    if (s->flags & S_CLOSING) {
        sock_maybe_close(s);
        return;
    }
    if (s->flags & S_SHUT_AFTER)
        sock_submit_shutdown(s);
    s->t.cbs->on_sent(s->t.ud, res > 0 ? 0 : (res == 0 ? -EPIPE : res));
}

static int sock_send(cio_transport *t, struct iovec *iov, unsigned n)
{
    cio_socket_transport *s = cio_container_of(t, cio_socket_transport, t);
    if (s->flags & S_CLOSING)
        return -EPIPE;
    if (s->flags & S_SENDING)
        return -EBUSY;
    if (n > UINT16_MAX)
        return -EINVAL;
    s->iov = iov;
    s->niov = (uint16_t)n;
    while (s->niov && s->iov->iov_len == 0)
        s->iov++, s->niov--;
    if (!s->niov)
        return -EINVAL;
    /* Most sends are one buffer: the msghdr is only paid for when needed,
     * and kept until the socket is closed. */
    if (s->niov > 1 && !s->msg && !(s->msg = malloc(sizeof(*s->msg))))
        return -ENOMEM;
    s->flags |= S_SENDING;
    sock_submit_send(s);
    return 0;
}

static void sock_aux_done(cio_completion *c, int32_t res, uint32_t cflags)
{
    (void)res;
    (void)cflags;
    cio_socket_transport *s = cio_container_of(c, cio_socket_transport, aux_comp);
    s->pending--;
    if (s->flags & S_CLOSE_SENT) {
        if (s->pending == 0) {
            free(s->msg);
            s->msg = NULL;
            s->t.cbs->on_closed(s->t.ud); /* the last callback */
        }
        return;
    }
    sock_maybe_close(s); /* a shutdown finished */
}

static void sock_submit_shutdown(cio_socket_transport *s)
{
    s->flags &= (uint8_t)~S_SHUT_AFTER;
    struct io_uring_sqe *sqe = cio__sqe(s->loop);
    io_uring_prep_shutdown(sqe, s->fd, SHUT_WR);
    cio__sqe_set_comp(s->loop, sqe, &s->aux_comp);
    s->pending++;
}

static void sock_shutdown_write(cio_transport *t)
{
    cio_socket_transport *s = cio_container_of(t, cio_socket_transport, t);
    if (s->flags & S_CLOSING)
        return;
    if (s->flags & S_SENDING) {
        s->flags |= S_SHUT_AFTER; /* the rest of the send goes out first */
        return;
    }
    sock_submit_shutdown(s);
}

static void sock_close(cio_transport *t)
{
    cio_socket_transport *s = cio_container_of(t, cio_socket_transport, t);
    if (s->flags & S_CLOSING)
        return;
    s->flags |= S_CLOSING;
    s->flags &= (uint8_t)~S_READING;
    bufwait_leave(s);
    if (s->flags & (S_RECV_ARMED | S_SENDING)) {
        struct io_uring_sqe *sqe = cio__sqe(s->loop);
        io_uring_prep_cancel_fd(sqe, s->fd, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data(sqe, NULL);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    }
    sock_maybe_close(s);
}

static const cio_transport_ops sock_ops = {
    .read_start = sock_read_start,
    .read_stop = sock_read_stop,
    .send = sock_send,
    .shutdown_write = sock_shutdown_write,
    .close = sock_close,
};

void cio_socket_transport_init(cio_socket_transport *s, cio_loop *loop, int fd,
                               const cio_transport_cbs *cbs, void *ud)
{
    memset(s, 0, sizeof(*s));
    s->t.ops = &sock_ops;
    s->t.cbs = cbs;
    s->t.ud = ud;
    s->loop = cio__loop_or_current(loop);
    s->fd = fd;
    s->recv_comp.fn = sock_recv_done;
    s->send_comp.fn = sock_send_done;
    s->aux_comp.fn = sock_aux_done;
    cio_list_init(&s->bufwait_link);
}

/* ---- listener ---------------------------------------------------------------------- */

static void listener_arm(cio_listener *ls)
{
    struct io_uring_sqe *sqe = cio__sqe(ls->loop);
    /* A shared socket gets one accept at a time: a multishot accept keeps
     * its place at the head of the socket's wait queue and would be woken
     * for every connection; a single one re-armed after each joins the
     * queue's tail, so the wake-ups rotate among the loops that wait. */
    if (ls->shared)
        io_uring_prep_accept(sqe, ls->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    else
        io_uring_prep_multishot_accept(sqe, ls->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    cio__sqe_set_comp(ls->loop, sqe, &ls->comp);
    ls->armed = true;
}

static void listener_finish_close(cio_listener *ls)
{
    close(ls->fd); /* a listening socket: close() does not block */
    ls->fd = -1;
    if (ls->on_closed)
        ls->on_closed(ls);
}

static void listener_retry(cio_timer *t)
{
    cio_listener *ls = cio_container_of(t, cio_listener, retry);
    if (ls->closing)
        listener_finish_close(ls); /* deferred: on_closed never runs inside close() */
    else if (!ls->armed && !ls->paused)
        listener_arm(ls);
}

static void listener_done(cio_completion *c, int32_t res, uint32_t cflags)
{
    cio_listener *ls = cio_container_of(c, cio_listener, comp);
    bool more = cflags & IORING_CQE_F_MORE;
    bool backoff = false;
    if (res >= 0) {
        if (ls->closing || ls->paused)
            close(res); /* raced with pause/close: the kernel handed us one more */
        else
            ls->on_accept(ls, res);
    } else if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
        /* Out of descriptors or memory: back off instead of spinning, and
         * say so once per 10 s, not at every retry. */
        ls->backoffs++;
        cio_time now = ls->loop->now;
        if (!ls->backoff_logged || now - ls->backoff_logged >= CIO_SEC(10)) {
            cio_warn("accept: %s: new connections wait in the kernel's backlog; retrying "
                     "every 100 ms (%llu time%s since the last report)",
                     strerror(-res), (unsigned long long)ls->backoffs,
                     ls->backoffs == 1 ? "" : "s");
            ls->backoff_logged = now;
            ls->backoffs = 0;
        }
        backoff = true;
    }
    if (more)
        return;
    ls->armed = false;
    if (ls->closing)
        listener_finish_close(ls);
    else if (backoff && cio_timer_start(&ls->retry, ls->loop->now + CIO_MS(100)) == 0)
        return; /* re-armed by the timer */
    else if (!ls->paused)
        listener_arm(ls); /* also when the back-off timer cannot be armed: never stop accepting */
}

/* Fills ls for fd and arms the accept. */
static void listener_start(cio_listener *ls, cio_loop *loop, int fd, bool shared,
                           void (*on_accept)(cio_listener *ls, int fd), void *ud)
{
    memset(ls, 0, sizeof(*ls));
    ls->shared = shared;
    ls->loop = cio__loop_or_current(loop);
    ls->on_accept = on_accept;
    ls->ud = ud;
    ls->comp.fn = listener_done;
    cio_timer_init(&ls->retry, ls->loop, listener_retry);
    ls->fd = fd;
    listener_arm(ls);
}

int cio_listener_open(cio_listener *ls, cio_loop *loop, const struct sockaddr *addr,
                      socklen_t addrlen, int backlog, bool reuseport,
                      void (*on_accept)(cio_listener *ls, int fd), void *ud)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto fail;
    if (addr->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, addr, addrlen) < 0 || listen(fd, backlog) < 0)
        goto fail;
    listener_start(ls, loop, fd, false, on_accept, ud);
    return 0;
fail:;
    int rc = -errno;
    close(fd);
    return rc;
}

int cio_listener_adopt(cio_listener *ls, cio_loop *loop, int fd, bool shared,
                       void (*on_accept)(cio_listener *ls, int fd), void *ud)
{
    int listening = 0, type = 0;
    socklen_t len = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
        return -errno; /* -ENOTSOCK, -EBADF */
    len = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return -errno;
    if (!listening || type != SOCK_STREAM)
        return -EINVAL;
    /* As a socket of our own: the flags belong to the open file, which
     * whoever passed it (systemd) shares, and neither matters to it. */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return -errno;
    listener_start(ls, loop, fd, shared, on_accept, ud);
    return 0;
}

void cio_listener_pause(cio_listener *ls)
{
    if (ls->paused || ls->closing)
        return;
    ls->paused = true;
    cio_timer_stop(&ls->retry);
    if (ls->armed)
        cio__cancel_op(ls->loop, &ls->comp);
}

void cio_listener_resume(cio_listener *ls)
{
    if (!ls->paused || ls->closing)
        return;
    ls->paused = false;
    if (!ls->armed)
        listener_arm(ls);
}

void cio_listener_close(cio_listener *ls, void (*on_closed)(cio_listener *ls))
{
    if (ls->closing)
        return;
    ls->closing = true;
    ls->on_closed = on_closed;
    cio_timer_stop(&ls->retry);
    if (ls->armed)
        cio__cancel_op(ls->loop, &ls->comp);
    else if (cio_timer_start(&ls->retry, ls->loop->now) < 0)
        listener_finish_close(ls); /* on_closed then runs inside close(): better than never */
}

int cio_listener_address(const cio_listener *ls, struct sockaddr_storage *out, socklen_t *len)
{
    *len = sizeof(*out);
    return getsockname(ls->fd, (struct sockaddr *)out, len) < 0 ? -errno : 0;
}
