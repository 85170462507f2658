/*
 * log.c - non-blocking writers (for the process log and access logs) and the
 * process logger.
 *
 * A writer has two buffers: tasks append to the active one while the other
 * is being written through the ring. At the end of each loop turn the loop
 * swaps them if no write is in flight. Logging thus never blocks the loop,
 * even on a slow disk or a full pipe; past max_buffer it drops and counts.
 */
#include "cio_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct cio_log_writer {
    cio_loop *loop;
    int fd;
    cio_list link; /* in loop->writers */
    cio_buf buf[2];
    int cur; /* index of the buffer being appended to */
    size_t max, off;
    bool inflight, destroying;
    cio_completion comp;
    uint64_t dropped;
    uint64_t dropped_lines;
};

static uint64_t count_lines(const char *p, size_t n)
{
    uint64_t k = 0;
    for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))) != NULL; p++)
        k++;
    return k;
}

static void write_sync(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return; /* nowhere to report it: give up */
        p += k;
        n -= (size_t)k;
    }
}

static void writer_free(cio_log_writer *w)
{
    cio_buf_free(&w->buf[0]);
    cio_buf_free(&w->buf[1]);
    free(w);
}

static void writer_submit(cio_log_writer *w)
{
    int b = 1 - w->cur;
    struct io_uring_sqe *sqe = cio__sqe(w->loop);
    io_uring_prep_write(sqe, w->fd, w->buf[b].p + w->off, (unsigned)(w->buf[b].len - w->off),
                        (uint64_t)-1);
    cio__sqe_set_comp(w->loop, sqe, &w->comp);
}

static void writer_done(cio_completion *c, int32_t res, uint32_t flags)
{
    (void)flags;
    cio_log_writer *w = cio_container_of(c, cio_log_writer, comp);
    int b = 1 - w->cur;
    if (res > 0)
        w->off += (size_t)res;
    if (res == -EINTR || res == -EAGAIN || (res > 0 && w->off < w->buf[b].len)) {
        if (!w->destroying) {
            writer_submit(w); /* the rest */
            return;
        }
    } else if (res <= 0) {
        w->dropped += w->buf[b].len - w->off;
        w->dropped_lines += count_lines(w->buf[b].p + w->off, w->buf[b].len - w->off);
        w->off = w->buf[b].len;
    }
    if (w->destroying) {
        /* Teardown: finish synchronously, in order, then free. */
        write_sync(w->fd, w->buf[b].p + w->off, w->buf[b].len - w->off);
        write_sync(w->fd, w->buf[w->cur].p, w->buf[w->cur].len);
        writer_free(w);
        return;
    }
    w->buf[b].len = 0;
    w->off = 0;
    w->inflight = false;
}

int cio_log_writer_create(cio_loop *loop, int fd, size_t max_buffer, cio_log_writer **out)
{
    loop = cio__loop_or_current(loop);
    if (!loop || fd < 0)
        return -EINVAL;
    cio_log_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->loop = loop;
    w->fd = fd;
    w->max = max_buffer ? max_buffer : 1024 * 1024;
    w->comp.fn = writer_done;
    cio_list_push(&loop->writers, &w->link);
    *out = w;
    return 0;
}

char *cio_log_writer_reserve(cio_log_writer *w, size_t n)
{
    /* The bound covers both buffers: what waits and what is in flight. */
    char *p = w->buf[0].len + w->buf[1].len + n > w->max ? NULL : cio_buf_space(&w->buf[w->cur], n);
    if (!p) {
        w->dropped += n;
        w->dropped_lines++; /* a reservation is one line */
    }
    return p;
}

void cio_log_writer_commit(cio_log_writer *w, size_t n)
{
    w->buf[w->cur].len += n;
}

int cio_log_writer_append(cio_log_writer *w, const void *data, size_t n)
{
    char *p = cio_log_writer_reserve(w, n);
    if (!p)
        return -ENOBUFS;
    memcpy(p, data, n);
    cio_log_writer_commit(w, n);
    return 0;
}

uint64_t cio_log_writer_dropped(const cio_log_writer *w)
{
    return w->dropped;
}

uint64_t cio_log_writer_dropped_lines(const cio_log_writer *w)
{
    return w->dropped_lines;
}

uint64_t cio_log_dropped_lines(const cio_loop *loop)
{
    return loop && loop->log ? loop->log->dropped_lines : 0;
}

static void writer_flush(cio_log_writer *w)
{
    if (w->inflight || w->buf[w->cur].len == 0)
        return;
    w->cur = 1 - w->cur;
    w->off = 0;
    w->inflight = true;
    writer_submit(w);
}

void cio__log_flush(cio_loop *l)
{
    for (cio_list *n = l->writers.next; n != &l->writers; n = n->next)
        writer_flush(cio_container_of(n, cio_log_writer, link));
}

void cio__log_writer_detach_link(cio_list *n)
{
    cio_log_writer *w = cio_container_of(n, cio_log_writer, link);
    if (w->inflight) {
        /* Abandoned with a write in the ring: its rest goes first (a line
         * may be repeated if the kernel still completes it; none is lost). */
        int b = 1 - w->cur;
        write_sync(w->fd, w->buf[b].p + w->off, w->buf[b].len - w->off);
    }
    write_sync(w->fd, w->buf[w->cur].p, w->buf[w->cur].len);
    w->buf[w->cur].len = 0;
    cio_list_init(&w->link);
}

void cio_log_writer_destroy(cio_log_writer *w)
{
    if (!w)
        return;
    cio_list_del(&w->link);
    if (w->inflight) {
        w->destroying = true; /* writer_done finishes and frees */
        return;
    }
    write_sync(w->fd, w->buf[w->cur].p, w->buf[w->cur].len);
    writer_free(w);
}

/* ---- process log ------------------------------------------------------------------- */

static _Atomic int log_level = CIO_LOG_INFO;
static _Atomic int log_pid; /* getpid() is a system call in current glibc: cache it */
static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* A child of fork() (a daemon detaching) has another pid. */
static void log_forked(void)
{
    atomic_store(&log_pid, 0);
}

__attribute__((constructor)) static void log_init(void)
{
    pthread_atfork(NULL, NULL, log_forked);
}

void cio_log_set_level(enum cio_log_level level)
{
    atomic_store(&log_level, (int)level);
}

enum cio_log_level cio_log_get_level(void)
{
    return (enum cio_log_level)atomic_load(&log_level);
}

int cio_log_parse_level(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -EINVAL;
}

void cio_log(enum cio_log_level level, const char *fmt, ...)
{
    if ((int)level > atomic_load(&log_level))
        return;
    char line[2048];
    int pid = atomic_load(&log_pid);
    if (!pid)
        atomic_store(&log_pid, pid = (int)getpid());
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%d] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level], pid);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2; /* truncated */
    line[len++] = '\n';

    cio_loop *l = cio__tls_loop;
    if (l && !l->closing) {
        if (!l->log && cio_log_writer_create(l, STDERR_FILENO, 0, &l->log) < 0)
            l->log = NULL;
        if (l->log) {
            (void)cio_log_writer_append(l->log, line, len);
            return;
        }
    }
    write_sync(STDERR_FILENO, line, len);
}
