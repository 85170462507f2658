/*
 * mem_transport.c - an in-memory transport: protocol code driven by tests and
 * fuzzers without sockets. Input is delivered, and sends and closes complete,
 * from a timer one loop turn later, like the ring would.
 */
#include "cio_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void mem_schedule(cio_mem_transport *m)
{
    if (!cio_timer_armed(&m->timer))
        (void)cio_timer_start(&m->timer, m->loop->now);
}

static void mem_tick(cio_timer *tm)
{
    /* m->t.cbs and ud are read at each call: a callback may hand the
     * transport to another owner (a protocol switch). */
    cio_mem_transport *m = cio_container_of(tm, cio_mem_transport, timer);
    if (m->closing) {
        if (!m->closed) {
            m->closed = true;
            m->t.cbs->on_closed(m->t.ud);
        }
        return;
    }
    if (m->send_iov) {
        m->send_iov = NULL;
        m->t.cbs->on_sent(m->t.ud, 0);
        if (m->closing) {
            mem_schedule(m);
            return;
        }
    }
    if (m->reading && m->in.len) {
        size_t n = m->chunk && m->chunk < m->in.len ? m->chunk : m->in.len;
        /* Deliver from a private copy: on_data may feed more input. */
        uint8_t *piece = malloc(n);
        if (piece) {
            memcpy(piece, m->in.p, n);
            cio_buf_consume(&m->in, n);
            m->t.cbs->on_data(m->t.ud, piece, n);
            free(piece);
        }
    } else if (m->reading && m->eof_pending && !m->eof_sent) {
        m->eof_sent = true;
        m->t.cbs->on_eof(m->t.ud, 0);
    }
    if (m->closing || m->send_iov ||
        (m->reading && (m->in.len || (m->eof_pending && !m->eof_sent))))
        mem_schedule(m);
}

static int mem_read_start(cio_transport *t)
{
    cio_mem_transport *m = cio_container_of(t, cio_mem_transport, t);
    if (m->closing)
        return -EPIPE;
    m->reading = true;
    mem_schedule(m);
    return 0;
}

static void mem_read_stop(cio_transport *t)
{
    cio_container_of(t, cio_mem_transport, t)->reading = false;
}

static int mem_send(cio_transport *t, struct iovec *iov, unsigned n)
{
    cio_mem_transport *m = cio_container_of(t, cio_mem_transport, t);
    if (m->closing || m->write_shut)
        return -EPIPE;
    if (m->send_iov)
        return -EBUSY;
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (cio_buf_reserve(&m->out, total) < 0)
        return -ENOMEM;
    for (unsigned i = 0; i < n; i++)
        cio_buf_append(&m->out, iov[i].iov_base, iov[i].iov_len); /* room reserved */
    m->send_iov = iov;
    mem_schedule(m);
    return 0;
}

static void mem_shutdown_write(cio_transport *t)
{
    cio_container_of(t, cio_mem_transport, t)->write_shut = true;
}

static void mem_close(cio_transport *t)
{
    cio_mem_transport *m = cio_container_of(t, cio_mem_transport, t);
    if (m->closing)
        return;
    m->closing = true;
    m->reading = false;
    mem_schedule(m);
}

static const cio_transport_ops mem_ops = {
    .read_start = mem_read_start,
    .read_stop = mem_read_stop,
    .send = mem_send,
    .shutdown_write = mem_shutdown_write,
    .close = mem_close,
};

void cio_mem_transport_init(cio_mem_transport *m, cio_loop *loop, const cio_transport_cbs *cbs,
                            void *ud)
{
    memset(m, 0, sizeof(*m));
    m->t.ops = &mem_ops;
    m->t.cbs = cbs;
    m->t.ud = ud;
    m->loop = cio__loop_or_current(loop);
    cio_timer_init(&m->timer, m->loop, mem_tick);
}

int cio_mem_transport_feed(cio_mem_transport *m, const void *data, size_t len)
{
    if (cio_buf_append(&m->in, data, len) < 0)
        return -ENOMEM;
    if (m->reading)
        mem_schedule(m);
    return 0;
}

void cio_mem_transport_feed_eof(cio_mem_transport *m)
{
    m->eof_pending = true;
    if (m->reading)
        mem_schedule(m);
}

void cio_mem_transport_fini(cio_mem_transport *m)
{
    cio_timer_stop(&m->timer);
    cio_buf_free(&m->in);
    cio_buf_free(&m->out);
}
