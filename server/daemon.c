/*
 * daemon.c - what makes corio a well-behaved Unix daemon: the open-files
 * limit, detaching (--daemon), the pidfile, dropping privileges, and
 * systemd's notify protocol. All of it runs at startup or shutdown, outside
 * the loop's hot paths, so plain blocking system calls are fine here.
 */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

rlim_t corio_nofile_raise(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur;
}

/* ---- detaching ---------------------------------------------------------------------- */

int corio_daemonize(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0) {
        /* The caller's process: wait for the daemon's verdict (a status
         * byte once it serves, or its exit status if it fails first), so
         * that errors reach the terminal and the exit status says
         * whether it started. */
        close(p[1]);
        int st;
        (void)waitpid(pid, &st, 0); /* the intermediate child, which exits at once */
        unsigned char b;
        ssize_t n;
        while ((n = read(p[0], &b, 1)) < 0 && errno == EINTR)
            ;
        _exit(n == 1 ? b : 1);
    }
    close(p[0]);
    if (setsid() < 0)
        _exit(1);
    pid = fork(); /* not a session leader: it can never get a terminal again */
    if (pid < 0)
        _exit(1);
    if (pid > 0)
        _exit(0);
    umask(022);
    return p[1];
}

void corio_daemon_started(int fd)
{
    if (fd < 0)
        return;
    /* From now on nobody reads the terminal. */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        if (isatty(STDERR_FILENO) || fcntl(STDERR_FILENO, F_GETFD) < 0)
            dup2(null, STDERR_FILENO);
        close(null);
    }
    unsigned char ok = 0;
    (void)!write(fd, &ok, 1);
    close(fd);
}

void corio_daemon_failed(int fd, int status)
{
    if (fd < 0)
        return;
    unsigned char b = (unsigned char)(status ? status : 1);
    (void)!write(fd, &b, 1);
    close(fd);
}

/* ---- the pidfile ----------------------------------------------------------------------- */

int corio_pidfile_lock(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "pidfile %s: %s", path, strerror(errno));
        return -1;
    }
    /* The lock belongs to the open file description: the daemon's process
     * keeps it across the forks, and the kernel drops it when the process
     * is gone, however it ends. */
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        if (e == EWOULDBLOCK)
            snprintf(err, errlen, "pidfile %s is locked: corio is already running%s%s%s", path,
                     pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
        else
            snprintf(err, errlen, "pidfile %s: %s", path, strerror(e));
        close(fd);
        return -1;
    }
    return fd;
}

int corio_pidfile_write(int fd)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
        return -errno;
    return 0;
}

void corio_pidfile_remove(const char *path, int fd)
{
    if (fd < 0)
        return;
    /* Privileges dropped may forbid removing it from its directory: then
     * at least it names no process. */
    if (unlink(path) < 0)
        (void)!ftruncate(fd, 0);
    close(fd);
}

/* ---- privileges ------------------------------------------------------------------------ */

/* A name, or a number. */
static int lookup_ids(const char *user, const char *group, uid_t *uid, gid_t *gid, char *err,
                      size_t errlen)
{
    char *end;
    *uid = (uid_t)-1;
    *gid = (gid_t)-1;
    if (user) {
        struct passwd *pw = getpwnam(user);
        unsigned long v = strtoul(user, &end, 10);
        if (pw) {
            *uid = pw->pw_uid;
            *gid = pw->pw_gid;
        } else if (*user && !*end) {
            *uid = (uid_t)v;
            *gid = (gid_t)v;
        } else {
            snprintf(err, errlen, "user \"%s\": no such user", user);
            return -1;
        }
    }
    if (group) {
        struct group *gr = getgrnam(group);
        unsigned long v = strtoul(group, &end, 10);
        if (gr)
            *gid = gr->gr_gid;
        else if (*group && !*end)
            *gid = (gid_t)v;
        else {
            snprintf(err, errlen, "group \"%s\": no such group", group);
            return -1;
        }
    }
    return 0;
}

int corio_drop_privileges(const char *user, const char *group, char *err, size_t errlen)
{
    if (!user && !group)
        return 0;
    uid_t uid;
    gid_t gid;
    if (lookup_ids(user, group, &uid, &gid, err, errlen) < 0)
        return -1;
    /* Group first: once the user is not root, it can no longer change. */
    if (gid != (gid_t)-1 && (setgroups(1, &gid) < 0 || setgid(gid) < 0)) {
        snprintf(err, errlen, "cannot switch to group %u: %s", (unsigned)gid, strerror(errno));
        return -1;
    }
    if (uid != (uid_t)-1 && setuid(uid) < 0) {
        snprintf(err, errlen, "cannot switch to user %u: %s", (unsigned)uid, strerror(errno));
        return -1;
    }
    /* Asked to drop root: make sure it cannot come back. */
    if (uid != 0 && uid != (uid_t)-1 && (setuid(0) == 0 || geteuid() == 0)) {
        snprintf(err, errlen, "still able to become root after switching to user %u",
                 (unsigned)uid);
        return -1;
    }
    return 0;
}

/* ---- io_uring refused ------------------------------------------------------------------- */

/* The number after "key" at the start of a line of the file at path, or
 * -1 ("Seccomp:" in /proc/self/status; "" for a file of one number). */
static long proc_number(const char *path, const char *key)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    size_t klen = strlen(key);
    while (v < 0 && fgets(line, sizeof(line), f))
        if (strncmp(line, key, klen) == 0) {
            char *end;
            long n = strtol(line + klen, &end, 10);
            if (end != line + klen)
                v = n;
        }
    fclose(f);
    return v;
}

void corio_uring_error(int rc, char *buf, size_t len)
{
    if (rc == -ENOTSUP) {
        snprintf(buf, len, "io_uring: this kernel's io_uring lacks features corio needs "
                           "(IORING_FEAT_EXT_ARG and NODROP: Linux 5.11 or later)");
        return;
    }
    if (rc != -EPERM && rc != -ENOSYS) {
        snprintf(buf, len, "io_uring: %s", strerror(-rc));
        return;
    }
    long disabled = proc_number("/proc/sys/kernel/io_uring_disabled", "");
    long seccomp = proc_number("/proc/self/status", "Seccomp:");
    const char *why;
    if (disabled == 2)
        why = "sysctl kernel.io_uring_disabled is 2, which turns io_uring off for every "
              "process: set it to 0 (sysctl -w kernel.io_uring_disabled=0)";
    else if (disabled == 1)
        why = "sysctl kernel.io_uring_disabled is 1, which allows io_uring only to root and "
              "the group kernel.io_uring_group: set it to 0, or run corio in that group";
    else if (seccomp == 2)
        why = "a seccomp filter blocks it (Docker 25 and later block io_uring in their default "
              "profile): run the container with --security-opt "
              "seccomp=deploy/seccomp-io_uring.json (a profile that allows io_uring_setup, "
              "io_uring_enter and io_uring_register); under systemd, allow them in "
              "SystemCallFilter=";
    else if (rc == -ENOSYS)
        why = "this kernel has no io_uring (built without CONFIG_IO_URING, or a sandbox such "
              "as gVisor that does not offer it): corio needs Linux 6.x with io_uring";
    else
        why = "a security policy refused it (a seccomp profile, a security module such as "
              "SELinux, or sysctl kernel.io_uring_disabled): allow io_uring_setup, "
              "io_uring_enter and io_uring_register for corio";
    snprintf(buf, len, "io_uring is not available (io_uring_setup: %s): %s", strerror(-rc), why);
}

/* ---- socket activation ------------------------------------------------------------------ */

#define LISTEN_FDS_START 3 /* SD_LISTEN_FDS_START */

/* A decimal number that fits in an int, or -1. */
static int decimal(const char *s)
{
    long v = 0;
    if (!s || !*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 100000000)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return (int)v;
}

/* NULL when fd is a listening TCP socket, or why it is not. */
static const char *not_listening_tcp(int fd)
{
    int v = 0;
    socklen_t len = sizeof(v);
    if (fcntl(fd, F_GETFD) < 0)
        return "not open";
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) < 0)
        return errno == ENOTSOCK ? "not a socket" : strerror(errno);
    if (v != SOCK_STREAM)
        return "not a stream socket";
    len = sizeof(v);
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) < 0 || (v != AF_INET && v != AF_INET6))
        return "not an IPv4 or IPv6 socket";
    len = sizeof(v);
    if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &len) < 0 || v != IPPROTO_TCP)
        return "not a TCP socket";
    len = sizeof(v);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0 || !v)
        return "not listening";
    return NULL;
}

int corio_listen_fds(int *fds, size_t max, char *err, size_t errlen)
{
    const char *pid_text = getenv("LISTEN_PID"), *n_text = getenv("LISTEN_FDS");
    int pid = decimal(pid_text), n = 0, rc = 0;
    char n_copy[16];
    snprintf(n_copy, sizeof(n_copy), "%s", n_text ? n_text : "");
    /* Meant for another process (a parent that did not clean up): ignored. */
    if (pid_text && n_text && pid == (int)getpid()) {
        n = decimal(n_text);
        if (n < 0) {
            snprintf(err, errlen, "socket activation: LISTEN_FDS=\"%s\": expected a number",
                     n_copy);
            rc = -1;
        } else if ((size_t)n > max) {
            snprintf(err, errlen, "socket activation: LISTEN_FDS=%d: at most %zu sockets", n,
                     max);
            rc = -1;
        }
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (rc < 0)
        return rc;
    for (int i = 0; i < n; i++) {
        int fd = LISTEN_FDS_START + i;
        const char *why = not_listening_tcp(fd);
        if (!why && fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
            why = strerror(errno);
        if (why) {
            snprintf(err, errlen,
                     "socket activation: fd %d (LISTEN_FDS=%d) is not a listening TCP socket: %s",
                     fd, n, why);
            return -1;
        }
        fds[i] = fd;
    }
    return n;
}

/* ---- systemd's notify protocol ----------------------------------------------------------- */

void corio_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = 0; /* the abstract namespace */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    char msg[256];
    int n = snprintf(msg, sizeof(msg), "%s", state);
    if (strcmp(state, "RELOADING=1") == 0) {
        /* Type=notify-reload wants the time the reload began. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        n = snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
                     (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    }
    (void)sendto(fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sa,
                 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    close(fd);
}
