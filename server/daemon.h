/* daemon.h - startup and shutdown chores of a Unix daemon (daemon.c). */
#ifndef CORIO_DAEMON_H
#define CORIO_DAEMON_H

#include <stddef.h>
#include <sys/resource.h>

/* Raises the soft RLIMIT_NOFILE to the hard limit. Returns the soft limit
 * now in force (0 if it cannot be read). */
rlim_t corio_nofile_raise(void);

/* Detaches (fork, setsid, fork). Returns, in the daemon process, the fd
 * through which it reports to the caller's process, which waits: report
 * with corio_daemon_started() once serving (the caller's process exits 0)
 * or corio_daemon_failed() (it exits with that status; if the daemon dies
 * without a word, 1). -errno if the first fork failed (nothing detached). */
int corio_daemonize(void);
/* Serving: stdin and stdout go to /dev/null, and so does stderr if it is a
 * terminal (a log file put there stays); the caller's process exits 0.
 * No-op with fd < 0. */
void corio_daemon_started(int fd);
/* Not serving: the caller's process exits with status. No-op with fd < 0. */
void corio_daemon_failed(int fd, int status);

/* Opens and locks path (before detaching: the lock stays with the daemon).
 * The fd, or -1 with err set ("... is locked: corio is already running (pid
 * N)"). */
int corio_pidfile_lock(const char *path, char *err, size_t errlen);
/* Writes this process's pid (after detaching). 0 or -errno. */
int corio_pidfile_write(int fd);
/* Removes the pidfile (or empties it when its directory forbids that) and
 * closes fd. No-op with fd < 0. */
void corio_pidfile_remove(const char *path, int fd);

/* Switches to group and user (names or numbers; either may be NULL) for
 * good: refuses (-1, err set) if a switch fails or root could be regained.
 * 0 when done or nothing asked. */
int corio_drop_privileges(const char *user, const char *group, char *err, size_t errlen);

/* Socket activation (systemd's LISTEN_FDS protocol, read without
 * libsystemd): when LISTEN_PID is this process's pid and LISTEN_FDS is
 * n >= 1, the service manager passed n listening sockets as fds 3..3+n-1.
 * Each must be a listening TCP socket (IPv4 or IPv6); each is made
 * close-on-exec and stored in fds (at most max). LISTEN_PID, LISTEN_FDS
 * and LISTEN_FDNAMES are removed from the environment whatever they said,
 * so that nothing started later takes them for its own. Returns n, 0 when
 * no sockets were passed to this process, or -1 with err set ("socket
 * activation: fd 3 (LISTEN_FDS=1) is not a listening TCP socket: ..."). */
int corio_listen_fds(int *fds, size_t max, char *err, size_t errlen);

/* What to say when a loop's ring cannot be made (rc: -errno from
 * cio_loop_create), in one line without "corio: " nor a newline, into buf.
 * A refusal (-EPERM, -ENOSYS: io_uring_setup refused by a seccomp profile,
 * sysctl kernel.io_uring_disabled, a security module, or a kernel without
 * io_uring) is named, with what allows it, from what /proc says:
 * "io_uring is not available (io_uring_setup: Operation not permitted): a
 * seccomp filter blocks it ...". Anything else: "io_uring: <strerror>". */
void corio_uring_error(int rc, char *buf, size_t len);

/* Sends state ("READY=1", "STOPPING=1", "RELOADING=1") to systemd's
 * $NOTIFY_SOCKET, if set (Type=notify); RELOADING=1 carries MONOTONIC_USEC. */
void corio_notify(const char *state);

#endif
