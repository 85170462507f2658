/*
 * cio_io.h - awaitable io_uring operations for tasks (sockets, files).
 */
#ifndef CIO_IO_H
#define CIO_IO_H

#include <sys/socket.h>
#include <sys/types.h>
#include "cio_loop.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the public API: see LIBRARY in cio.h */

/* ------------------------------------------------------------------------ */
/* I/O through the ring ([awaits]; all return -errno on failure)             */
/* ------------------------------------------------------------------------ */

struct open_how;
struct statx;

/* A non-blocking, close-on-exec socket. */
int cio_socket(int domain, int type, int protocol);
int cio_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, cio_time deadline);
int cio_connect(int fd, const struct sockaddr *addr, socklen_t addrlen, cio_time deadline);
ssize_t cio_recv(int fd, void *buf, size_t len, int flags, cio_time deadline);
/* send adds MSG_NOSIGNAL: a vanished peer gives -EPIPE, never SIGPIPE. */
ssize_t cio_send(int fd, const void *buf, size_t len, int flags, cio_time deadline);
ssize_t cio_sendmsg(int fd, const struct msghdr *msg, int flags, cio_time deadline);
int cio_shutdown(int fd, int how);
/* Cancels what is pending on fd in this loop, then closes it. */
int cio_close(int fd);
/* off = -1 means the file position. */
ssize_t cio_read(int fd, void *buf, size_t len, int64_t off, cio_time deadline);
ssize_t cio_write(int fd, const void *buf, size_t len, int64_t off, cio_time deadline);
int cio_openat2(int dirfd, const char *path, const struct open_how *how, cio_time deadline);
int cio_statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *out,
              cio_time deadline);
int cio_fsync(int fd, cio_time deadline);
ssize_t cio_splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out, size_t len,
                   unsigned flags, cio_time deadline);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif /* CIO_IO_H */
