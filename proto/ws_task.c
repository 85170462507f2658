/*
 * ws_task.c - the coroutine API of WebSocket: a connection accepted with
 * cio_ws_accept_task() is served by a task that awaits its messages with
 * cio_ws_recv(). Built on the callback API: messages that arrive while the
 * task is busy wait in an inbox, and the connection stops reading until the
 * task has taken them (TCP pushes back on the peer).
 */
#include "ws_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define REC_HDR 5 /* a record in the inbox: u32 length, u8 binary, then the bytes */

typedef struct ws_task {
    cio_ws *ws;
    intptr_t (*fn)(cio_ws *ws, void *arg);
    void *arg;
    cio_buf inbox;
    size_t head;  /* the next record */
    size_t taken; /* the record handed out last (dropped at the next recv) */
    cio_event ready;
    int refs; /* the task and the connection */
    int close_code;
    bool closed, paused;
} ws_task;

static void st_unref(ws_task *st)
{
    if (--st->refs == 0) {
        cio_buf_free(&st->inbox);
        free(st);
    }
}

static intptr_t task_main(void *arg)
{
    ws_task *st = arg;
    cio_ws *ws = st->ws;
    intptr_t r = st->fn(ws, st->arg);
    if (!st->closed)
        (void)cio_ws_close(ws, r < 0 ? CIO_WS_INTERNAL_ERROR : CIO_WS_NORMAL, NULL);
    ws_set_task(ws, NULL);
    ws_release(ws); /* ws may be freed here */
    st_unref(st);
    return r;
}

static void t_open(cio_ws *ws, void *ud)
{
    ws_task *st = ud;
    st->ws = ws;
    ws_set_task(ws, st);
    ws_hold(ws);
    st->refs++;
    if (cio_spawn(NULL, NULL, task_main, st) < 0) {
        st->refs--;
        ws_release(ws);
        (void)cio_ws_close(ws, CIO_WS_INTERNAL_ERROR, "out of memory");
    }
}

static void t_message(cio_ws *ws, void *ud, bool binary, const uint8_t *data, size_t len)
{
    ws_task *st = ud;
    uint8_t hdr[REC_HDR] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
                            (uint8_t)(len >> 24), binary};
    /* At most one read's messages wait here (reading pauses below), but a
     * read of small compressed messages can inflate to many: bounded. */
    if (st->inbox.len - st->head + len > 2 * ws_max_message(ws) ||
        cio_buf_append(&st->inbox, hdr, sizeof(hdr)) < 0 ||
        cio_buf_append(&st->inbox, data, len) < 0) {
        (void)cio_ws_close(ws, CIO_WS_POLICY, "too many messages waiting");
        return;
    }
    cio_event_set(&st->ready);
    if (!st->paused) {
        st->paused = true;
        ws_read_pause(ws, true);
    }
}

static void t_close(cio_ws *ws, void *ud, int code, cio_str reason)
{
    (void)ws, (void)reason;
    ws_task *st = ud;
    st->closed = true;
    st->close_code = code;
    cio_event_set(&st->ready); /* a task in cio_ws_recv learns */
    st_unref(st);
}

static const cio_ws_handler task_handler = {
    .on_open = t_open, .on_message = t_message, .on_close = t_close};

int cio_ws_accept_task(cio_http_req *req, const cio_ws_opts *opts,
                       intptr_t (*fn)(cio_ws *ws, void *arg), void *arg)
{
    ws_task *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    st->fn = fn;
    st->arg = arg;
    st->refs = 1; /* the connection's, given back in t_close */
    cio_event_init(&st->ready);
    int rc = cio_ws_accept(req, opts, &task_handler, st);
    if (rc <= 0)
        free(st);
    return rc;
}

int cio_ws_recv(cio_ws *ws, cio_ws_msg *msg, cio_time deadline)
{
    ws_task *st = ws_task_of(ws);
    if (!st)
        return -EINVAL;
    if (st->taken) {
        st->head += st->taken;
        st->taken = 0;
        if (st->head == st->inbox.len)
            st->inbox.len = st->head = 0;
    }
    while (st->head == st->inbox.len) {
        if (st->closed)
            return -EPIPE;
        if (st->paused) {
            st->paused = false;
            ws_read_pause(ws, false); /* all taken: read on */
        }
        cio_event_clear(&st->ready);
        int rc = cio_event_wait(&st->ready, deadline);
        if (rc < 0)
            return rc;
    }
    const uint8_t *h = (const uint8_t *)st->inbox.p + st->head;
    size_t len = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16 | (size_t)h[3] << 24;
    msg->binary = h[4];
    msg->data = h + REC_HDR;
    msg->len = len;
    st->taken = REC_HDR + len;
    return 0;
}

int cio_ws_close_code(const cio_ws *ws)
{
    ws_task *st = ws_task_of(ws);
    return st && st->closed ? st->close_code : 0;
}
