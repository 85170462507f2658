/*
 * stream.c - buffered reads and writes on a socket for tasks (asyncio's
 * StreamReader/StreamWriter). The read buffer is compacted lazily; a
 * read_until whose maximum exceeds the buffer grows it up to that maximum.
 */
#include "cio_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_BUF (16 * 1024)

int cio_stream_init(cio_stream *s, int fd, size_t rbuf_size, size_t wbuf_size)
{
    memset(s, 0, sizeof(*s));
    s->fd = fd;
    s->rcap = rbuf_size ? rbuf_size : DEFAULT_BUF;
    s->wcap = wbuf_size ? wbuf_size : DEFAULT_BUF;
    s->rbuf = malloc(s->rcap);
    s->wbuf = malloc(s->wcap);
    if (!s->rbuf || !s->wbuf) {
        cio_stream_fini(s);
        return -ENOMEM;
    }
    return 0;
}

void cio_stream_fini(cio_stream *s)
{
    free(s->rbuf);
    free(s->wbuf);
    s->rbuf = s->wbuf = NULL;
}

static size_t buffered(const cio_stream *s)
{
    return s->rend - s->rstart;
}

/* Receives more bytes into the buffer (making room first). Returns the count,
 * 0 at end of stream, or -errno. */
static ssize_t fill(cio_stream *s, size_t want_room, cio_time deadline)
{
    if (s->eof)
        return 0;
    if (s->rstart > 0 && s->rcap - s->rend < want_room) {
        memmove(s->rbuf, s->rbuf + s->rstart, buffered(s));
        s->rend -= s->rstart;
        s->rstart = 0;
    }
    if (s->rend == s->rcap)
        return -ENOBUFS;
    ssize_t n = cio_recv(s->fd, s->rbuf + s->rend, s->rcap - s->rend, 0, deadline);
    if (n == 0)
        s->eof = true;
    if (n > 0)
        s->rend += (size_t)n;
    return n;
}

ssize_t cio_stream_read(cio_stream *s, void *dst, size_t len, cio_time deadline)
{
    if (len == 0)
        return 0;
    if (buffered(s) == 0) {
        if (cio_cancelled())
            return -ECANCELED;
        /* Large reads bypass the buffer. */
        if (len >= s->rcap && !s->eof) {
            ssize_t n = cio_recv(s->fd, dst, len, 0, deadline);
            if (n == 0)
                s->eof = true;
            return n;
        }
        ssize_t n = fill(s, s->rcap, deadline);
        if (n <= 0)
            return n;
    }
    size_t n = buffered(s) < len ? buffered(s) : len;
    memcpy(dst, s->rbuf + s->rstart, n);
    s->rstart += n;
    return (ssize_t)n;
}

int cio_stream_read_exact(cio_stream *s, void *dst, size_t n, cio_time deadline)
{
    uint8_t *p = dst;
    while (n > 0) {
        ssize_t got = cio_stream_read(s, p, n, deadline);
        if (got == 0)
            return -EPIPE;
        if (got < 0)
            return (int)got;
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

ssize_t cio_stream_read_until(cio_stream *s, const void *delim, size_t dlen, size_t max,
                              const uint8_t **line, cio_time deadline)
{
    if (dlen == 0 || max < dlen)
        return -EINVAL;
    if (max > s->rcap) {
        uint8_t *nb = realloc(s->rbuf, max);
        if (!nb)
            return -ENOMEM;
        s->rbuf = nb;
        s->rcap = max;
    }
    size_t scanned = 0; /* bytes already known not to start the delimiter */
    for (;;) {
        size_t have = buffered(s);
        size_t limit = have < max ? have : max;
        if (limit >= dlen) {
            const uint8_t *base = s->rbuf + s->rstart;
            const uint8_t *hit = memmem(base + scanned, limit - scanned, delim, dlen);
            if (hit) {
                size_t len = (size_t)(hit - base) + dlen;
                *line = base;
                s->rstart += len;
                return (ssize_t)len;
            }
            scanned = limit - dlen + 1;
        }
        if (have >= max)
            return -EMSGSIZE;
        if (cio_cancelled())
            return -ECANCELED;
        ssize_t n = fill(s, max - have, deadline);
        if (n == 0)
            return -EPIPE;
        if (n < 0)
            return n;
    }
}

/* Sends p[0..len). Returns 0 or -errno; *sent says how much went out. */
static int send_all(cio_stream *s, const uint8_t *p, size_t len, size_t *sent, cio_time deadline)
{
    *sent = 0;
    while (*sent < len) {
        ssize_t n = cio_send(s->fd, p + *sent, len - *sent, 0, deadline);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return -EPIPE;
        *sent += (size_t)n;
    }
    return 0;
}

int cio_stream_flush(cio_stream *s, cio_time deadline)
{
    if (s->wlen == 0)
        return cio_cancelled() ? -ECANCELED : 0;
    size_t sent;
    int rc = send_all(s, s->wbuf, s->wlen, &sent, deadline);
    /* Keep only what did not go out: a retried flush must not repeat bytes. */
    memmove(s->wbuf, s->wbuf + sent, s->wlen - sent);
    s->wlen -= sent;
    return rc;
}

int cio_stream_write(cio_stream *s, const void *src, size_t len, cio_time deadline)
{
    if (s->wlen + len <= s->wcap) {
        if (cio_cancelled())
            return -ECANCELED;
        memcpy(s->wbuf + s->wlen, src, len);
        s->wlen += len;
        return 0;
    }
    return cio_stream_write_all(s, src, len, deadline);
}

int cio_stream_write_all(cio_stream *s, const void *src, size_t len, cio_time deadline)
{
    int rc = cio_stream_flush(s, deadline);
    if (rc < 0)
        return rc;
    size_t sent;
    return send_all(s, src, len, &sent, deadline);
}
