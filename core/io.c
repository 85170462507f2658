/*
 * io.c - awaitable io_uring operations for tasks.
 *
 * Each call queues one SQE whose user_data is a cio__uop on the task's stack,
 * then suspends. If the task is cancelled or the deadline passes, an async
 * cancel is queued for it and the task keeps waiting for the operation's own
 * CQE: only then is the buffer free again, so the call can return.
 */
#include "cio_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef CIO_HAVE_VALGRIND
#include <valgrind/memcheck.h>
/* The kernel fills these buffers through io_uring, which valgrind does not
 * model: tell it they are defined. */
#define FILLED(p, n) VALGRIND_MAKE_MEM_DEFINED((p), (n))
#else
#define FILLED(p, n) ((void)(p), (void)(n))
#endif

static void uop_done(cio_completion *c, int32_t res, uint32_t flags)
{
    (void)flags;
    cio__uop *op = cio_container_of(c, cio__uop, comp);
    intptr_t r = res;
    if (res == -ECANCELED && op->w.why != CIO__WHY_NONE)
        r = cio__wait_error(&op->w);
    cio__wait_complete(&op->w, r);
}

static void uop_interrupt(cio__wait *w)
{
    cio__uop *op = cio_container_of(w, cio__uop, w);
    /* Completion (with -ECANCELED or a real result) arrives through uop_done. */
    cio__cancel_op(w->task->loop, &op->comp);
}

int cio__uop_begin(cio__uop *op, cio_time deadline)
{
    op->comp.fn = uop_done;
    return cio__wait_begin(&op->w, deadline, uop_interrupt);
}

void cio__uop_submit(cio__uop *op, struct io_uring_sqe *sqe)
{
    cio__sqe_set_comp(op->w.task->loop, sqe, &op->comp);
}

intptr_t cio__uop_end(cio__uop *op)
{
    return cio__wait_suspend(&op->w);
}

/* An SQE carries a 32-bit length: larger requests are cut down, as read(2)
 * cuts them to 0x7ffff000, and report the shorter count. */
static unsigned clamp_len(size_t len)
{
    return len > 0x7ffff000u ? 0x7ffff000u : (unsigned)len;
}

/* Queues one operation prepared by PREP (which may use 'sqe') and awaits it. */
#define RING_AWAIT(deadline, PREP)                          \
    do {                                                    \
        cio__uop op_;                                       \
        int rc_ = cio__uop_begin(&op_, (deadline));         \
        if (rc_ < 0)                                        \
            return rc_;                                     \
        struct io_uring_sqe *sqe = cio__sqe(cio__tls_loop); \
        PREP;                                               \
        cio__uop_submit(&op_, sqe);                         \
        return cio__uop_end(&op_);                          \
    } while (0)

int cio_socket(int domain, int type, int protocol)
{
    int fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    return fd < 0 ? -errno : fd;
}

static int ring_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, cio_time deadline)
{
    RING_AWAIT(deadline,
               io_uring_prep_accept(sqe, fd, addr, addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC));
}

int cio_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, cio_time deadline)
{
    int rc = ring_accept(fd, addr, addrlen, deadline);
    if (rc >= 0 && addr && addrlen) {
        FILLED(addrlen, sizeof(*addrlen));
        FILLED(addr, *addrlen);
    }
    return rc;
}

int cio_connect(int fd, const struct sockaddr *addr, socklen_t addrlen, cio_time deadline)
{
    RING_AWAIT(deadline, io_uring_prep_connect(sqe, fd, addr, addrlen));
}

static ssize_t ring_recv(int fd, void *buf, size_t len, int flags, cio_time deadline)
{
    RING_AWAIT(deadline, io_uring_prep_recv(sqe, fd, buf, clamp_len(len), flags));
}

ssize_t cio_recv(int fd, void *buf, size_t len, int flags, cio_time deadline)
{
    ssize_t n = ring_recv(fd, buf, len, flags, deadline);
    if (n > 0)
        FILLED(buf, (size_t)n);
    return n;
}

ssize_t cio_send(int fd, const void *buf, size_t len, int flags, cio_time deadline)
{
    RING_AWAIT(deadline, io_uring_prep_send(sqe, fd, buf, clamp_len(len), flags | MSG_NOSIGNAL));
}

ssize_t cio_sendmsg(int fd, const struct msghdr *msg, int flags, cio_time deadline)
{
    RING_AWAIT(deadline, io_uring_prep_sendmsg(sqe, fd, msg, (unsigned)(flags | MSG_NOSIGNAL)));
}

static ssize_t ring_read(int fd, void *buf, size_t len, int64_t off, cio_time deadline)
{
    RING_AWAIT(deadline, io_uring_prep_read(sqe, fd, buf, clamp_len(len), (uint64_t)off));
}

ssize_t cio_read(int fd, void *buf, size_t len, int64_t off, cio_time deadline)
{
    ssize_t n = ring_read(fd, buf, len, off, deadline);
    if (n > 0)
        FILLED(buf, (size_t)n);
    return n;
}

ssize_t cio_write(int fd, const void *buf, size_t len, int64_t off, cio_time deadline)
{
    RING_AWAIT(deadline, io_uring_prep_write(sqe, fd, buf, clamp_len(len), (uint64_t)off));
}

int cio_openat2(int dirfd, const char *path, const struct open_how *how, cio_time deadline)
{
    RING_AWAIT(deadline, io_uring_prep_openat2(sqe, dirfd, path, (struct open_how *)how));
}

static int ring_statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *out,
                      cio_time deadline)
{
    RING_AWAIT(deadline, io_uring_prep_statx(sqe, dirfd, path, flags, mask, out));
}

int cio_statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *out,
              cio_time deadline)
{
    int rc = ring_statx(dirfd, path, flags, mask, out, deadline);
    if (rc == 0)
        FILLED(out, sizeof(*out));
    return rc;
}

int cio_fsync(int fd, cio_time deadline)
{
    RING_AWAIT(deadline, io_uring_prep_fsync(sqe, fd, 0));
}

ssize_t cio_splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out, size_t len,
                   unsigned flags, cio_time deadline)
{
    RING_AWAIT(deadline,
               io_uring_prep_splice(sqe, fd_in, off_in, fd_out, off_out, clamp_len(len), flags));
}

/* Cleanup calls run shielded: a cancelled task must still be able to close. */
static int shielded_shutdown(int fd, int how)
{
    RING_AWAIT(CIO_NEVER, io_uring_prep_shutdown(sqe, fd, how));
}

int cio_shutdown(int fd, int how)
{
    cio_scope shield;
    cio_scope_enter(&shield, CIO_NEVER, true);
    int rc = shielded_shutdown(fd, how);
    (void)cio_scope_exit(&shield);
    return rc;
}

static int shielded_close(int fd)
{
    /* Pending operations hold a reference to the file: cancel them first.
     * A hard link keeps the close even when there was nothing to cancel. */
    cio__sq_reserve(cio__tls_loop, 2);
    struct io_uring_sqe *c = cio__sqe(cio__tls_loop);
    io_uring_prep_cancel_fd(c, fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data(c, NULL);
    c->flags |= IOSQE_IO_HARDLINK;
    RING_AWAIT(CIO_NEVER, io_uring_prep_close(sqe, fd));
}

int cio_close(int fd)
{
    cio_scope shield;
    cio_scope_enter(&shield, CIO_NEVER, true);
    int rc = shielded_close(fd);
    (void)cio_scope_exit(&shield);
    return rc;
}
