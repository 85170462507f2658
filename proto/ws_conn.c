/*
 * ws_conn.c - one WebSocket connection, top to bottom: the accept (the
 * handshake's answer and the switch from HTTP), bytes in through the frame
 * receiver, messages reassembled (inflated, UTF-8 checked, bounded) and
 * handed to the handler, control frames answered, frames out through the
 * send queue, the ping/idle timer, and the close handshake.
 *
 * Memory: an idle connection is its struct (and the HTTP connection that
 * owns the transport); the receiver, the message being assembled and the
 * send queue hang off ws->act, which exists only while a frame or message is
 * in progress or output is queued. zlib streams (tens of KiB) are freed,
 * their window kept, once they have not been used for DEFLATE_IDLE.
 */
#include "ws_internal.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OUT_LOW   (64 * 1024) /* writers wait (coroutine API) down to this */
#define MSG_KEEP  (64 * 1024) /* a message buffer up to this size is kept */
#define DEFLATE_IDLE CIO_SEC(2) /* zlib streams unused this long are freed */
/* A connection paused mid-message this long for the budget is closed with
 * 1013: connections that each hold part of a message could otherwise wait
 * for each other until their idle timeout. */
#define BUDGET_WAIT  CIO_SEC(10)
/* Receive/send states kept per thread for reuse: a broadcast gives every
 * subscriber one until its send completes, and allocating them anew each
 * time cost more than the queueing. Cached states keep buffers of up to
 * ACT_KEEP_BUF, all of them together up to ACT_CACHE_BUFS bytes (the cache
 * is at most ~1.7 MiB). */
#define ACT_CACHE      1024
#define ACT_KEEP_BUF   4096
#define ACT_CACHE_BUFS (1024 * 1024)

enum {
    WS_OPEN,       /* messages both ways */
    WS_CLOSE_SENT, /* our close is queued: waiting for the peer's (close timeout) */
    WS_CLOSING,    /* the transport closes once the queue is out; nothing more is sent */
    WS_LINGER,     /* our close is out, the peer's not in: reading and discarding until it
                      closes (or the close timeout), so that it reads our close, not a reset */
    WS_GONE,       /* the transport is closing or closed */
};

typedef struct ws_active {
    struct ws_active *next_free; /* in the thread's cache */
    cio_ws *ws;                  /* the owner, while in use */
    ws_rx rx;
    cio_buf msg; /* the data message being assembled */
    ws_utf8 utf8;
    bool budget_paused; /* reading stopped until the budget has room */
    cio_time paused_at; /* ...since then */
    size_t charged;     /* bytes charged to the route's budget */
    cio_budget_waiter bwait;
    cio_sendq sq;
} ws_active;

struct cio_ws {
    cio_transport *t;
    const cio_ws_handler *h;
    void *ud;
    const cio_ws_opts *o;
    ws_active *act;
    ws_deflate *dfl; /* when permessage-deflate was negotiated */
    cio_timer timer; /* ping, idle timeout, close timeout */
    cio_time last_seen;
    char *peer_reason; /* the peer's close reason (malloc'ed), or NULL */
    uint16_t peer_code;
    uint8_t peer_reason_len;
    uint8_t state;
    bool task_paused; /* the coroutine API stopped reading (its inbox is full) */
    cio_list subs;  /* ws_sub.ws_link: this connection's topics */
    void *task;     /* the coroutine API's state (ws_task.c), or NULL */
    uint8_t holds;  /* references beyond the transport's (a task's) */
    bool closed;    /* on_closed came: freed once the holds are gone */
    bool ping_out;  /* our ping is unanswered */
    bool in_feed;   /* inside a feed: flush once it is done */
    bool got_close; /* the peer's close arrived */
    bool peer_eof;  /* the peer finished sending */
    bool zlib_armed; /* the timer also waits for the zlib streams to go idle */
    uint8_t subprotocol; /* 1 + its index in o->subprotocols, or 0 (none) */
};
/* An idle connection is this struct and the HTTP connection that owns the
 * transport: keep it within a 144-byte malloc chunk. */
static_assert(sizeof(struct cio_ws) <= 136, "cio_ws grew");

void cio_ws_opts_defaults(cio_ws_opts *o)
{
    *o = (cio_ws_opts){
        .max_message_bytes = 1024 * 1024,
        .send_queue_bytes = 2 * 1024 * 1024,
        .ping_interval = CIO_SEC(30),
        .idle_timeout = CIO_SEC(120),
        .close_timeout = CIO_SEC(5),
        .write_timeout = CIO_SEC(30),
        .compression = true,
        .deflate_window_bits = 12,
    };
}

static void ws_fail(cio_ws *ws, int code);
static void ws_close_transport(cio_ws *ws);

/* ---- per-connection state --------------------------------------------------------------- */

static _Thread_local ws_active *act_free_list;
static _Thread_local unsigned act_free_len;
static _Thread_local size_t act_free_bufs; /* buffer bytes the cached states keep */
static _Thread_local cio_buf deflate_out;   /* a message compressed before it is framed */
static _Thread_local bool thread_cached;    /* the caches above hold memory */

static void act_destroy(ws_active *a);

/* A loop's thread that ends (a worker) frees what its caches hold: a key
 * whose destructor runs at the thread's exit. (The main thread's are
 * still reachable at exit.) */
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void caches_free(void *unused)
{
    (void)unused;
    while (act_free_list) {
        ws_active *a = act_free_list;
        act_free_list = a->next_free;
        act_destroy(a);
    }
    act_free_len = 0;
    act_free_bufs = 0;
    cio_buf_free(&deflate_out);
    thread_cached = false;
}

static void cache_key_make(void)
{
    (void)pthread_key_create(&cache_key, caches_free);
}

/* Called before a cache first keeps memory on this thread. */
static void caches_note(void)
{
    if (thread_cached)
        return;
    thread_cached = true;
    pthread_once(&cache_once, cache_key_make);
    (void)pthread_setspecific(cache_key, &thread_cached); /* any non-NULL value */
}

static void sq_error(cio_sendq *q, int err);
static void budget_woke(cio_budget_waiter *w);

/* Moves the connection's charge on the budget to what it holds now. */
static void ws_charge(cio_ws *ws)
{
    ws_active *a = ws->act;
    if (a && ws->o->budget)
        cio_budget_charge(ws->o->budget, &a->charged, a->msg.cap + cio_sendq_pending(&a->sq));
}

/* Before the state is cached or freed: its charge and its wait end. */
static void act_uncharge(cio_ws *ws, ws_active *a)
{
    cio_budget *b = ws->o->budget;
    if (a->budget_paused) {
        cio_budget_cancel(b, &a->bwait);
        budget_woke(&a->bwait); /* reads on */
    }
    cio_budget_charge(b, &a->charged, 0);
}

static ws_active *act_get(cio_ws *ws)
{
    if (ws->act)
        return ws->act;
    ws_active *a = act_free_list;
    if (a) {
        act_free_list = a->next_free;
        act_free_len--;
        act_free_bufs -= a->msg.cap + a->sq.spare.cap;
        cio_sendq_reuse(&a->sq, ws->t);
        a->sq.high = ws->o->send_queue_bytes; /* the route's, which may differ */
        a->sq.write_timeout = ws->o->write_timeout;
    } else {
        a = calloc(1, sizeof(*a));
        if (!a)
            return NULL;
        cio_sendq_init(&a->sq, ws->t, OUT_LOW, ws->o->send_queue_bytes, ws->o->write_timeout,
                       sq_error);
        cio_budget_waiter_init(&a->bwait, budget_woke);
    }
    a->ws = ws;
    ws_rx_init(&a->rx, ws->dfl != NULL);
    a->msg.len = 0;
    a->utf8 = (ws_utf8)WS_UTF8_INIT;
    ws->act = a;
    return a;
}

static void act_destroy(ws_active *a)
{
    cio_sendq_fini(&a->sq);
    cio_buf_free(&a->msg);
    free(a);
}

/* Gives the state back when nothing is in progress: no partial frame or
 * message, nothing queued. */
static void act_release_if_idle(cio_ws *ws)
{
    ws_active *a = ws->act;
    if (!a || !ws_rx_idle(&a->rx) || cio_sendq_pending(&a->sq) || cio_sendq_busy(&a->sq))
        return;
    ws->act = NULL;
    act_uncharge(ws, a);
    if (act_free_len >= ACT_CACHE) {
        act_destroy(a);
        return;
    }
    size_t keep = act_free_bufs < ACT_CACHE_BUFS - 2 * ACT_KEEP_BUF ? ACT_KEEP_BUF : 0;
    if (a->msg.cap > keep)
        cio_buf_free(&a->msg);
    cio_sendq_trim(&a->sq, keep);
    act_free_bufs += a->msg.cap + a->sq.spare.cap;
    caches_note();
    a->next_free = act_free_list;
    act_free_list = a;
    act_free_len++;
}

static void sq_error(cio_sendq *q, int err)
{
    (void)err; /* -ETIMEDOUT: a reader that stopped; or a send that failed */
    ws_active *a = cio_container_of(q, ws_active, sq);
    ws_close_transport(a->ws);
}

/* ---- sending ---------------------------------------------------------------------------- */

/* Output leaves at the end of the loop's turn: the answers to a whole read,
 * and every broadcast of the turn, share one send per connection. */
static void ws_flush(cio_ws *ws)
{
    if (ws->in_feed || !ws->act || ws->state == WS_GONE)
        return;
    ws_charge(ws);
    cio_sendq_flush_soon(&ws->act->sq);
}

/* This loop's counters (one thread, one loop: no atomics). */
static _Thread_local cio_ws_stats ws_stats;

void cio_ws_stats_get(cio_ws_stats *out)
{
    *out = ws_stats;
}

/* Queues one frame. Data frames respect the queue's bound (-ENOBUFS);
 * control frames always go in (they are small and end the conversation). */
static int queue_frame(cio_ws *ws, unsigned op, bool rsv1, const void *payload, size_t n)
{
    ws_active *a = act_get(ws);
    if (!a)
        return -ENOMEM;
    uint8_t hdr[WS_HEADER_MAX];
    size_t hl = ws_frame_header(hdr, op, true, rsv1, n);
    bool data = op == WS_OP_TEXT || op == WS_OP_BINARY;
    if (data && cio_sendq_pending(&a->sq) + hl + n > ws->o->send_queue_bytes)
        return -ENOBUFS;
    char *dst = cio_sendq_reserve(&a->sq, hl + n);
    if (!dst)
        return -ENOMEM;
    memcpy(dst, hdr, hl);
    if (n)
        memcpy(dst + hl, payload, n);
    cio_sendq_commit(&a->sq, hl + n);
    ws_stats.messages_out += data;
    ws_flush(ws);
    return 0;
}

static void arm_timer(cio_ws *ws);

/* The zlib streams were used: the timer frees them once they rest. */
static void deflate_used(cio_ws *ws)
{
    ws->dfl->used = cio_now();
    if (!ws->zlib_armed && ws->state == WS_OPEN)
        arm_timer(ws);
}


int cio_ws_send(cio_ws *ws, bool binary, const void *data, size_t len)
{
    if (ws->state != WS_OPEN)
        return -EPIPE;
    unsigned op = binary ? WS_OP_BINARY : WS_OP_TEXT;
    const void *payload = data;
    size_t n = len;
    bool rsv1 = false;
    if (ws->dfl) {
        deflate_out.len = 0;
        caches_note();
        int rc = ws_deflate_compress(ws->dfl, data, len, true, &deflate_out);
        deflate_used(ws);
        if (rc < 0)
            return rc;
        if (ws_deflate_use_compressed(ws->dfl, len, deflate_out.len)) {
            payload = deflate_out.p;
            n = deflate_out.len;
            rsv1 = true;
        }
    }
    int rc = queue_frame(ws, op, rsv1, payload, n);
    if (rc == -ENOBUFS)
        ws_fail(ws, CIO_WS_POLICY); /* a client that stopped reading: never grow */
    return rc;
}

/* ---- closing ---------------------------------------------------------------------------- */

static void ws_close_transport(cio_ws *ws)
{
    if (ws->state == WS_GONE)
        return;
    ws->state = WS_GONE;
    cio_timer_stop(&ws->timer);
    if (ws->act)
        cio_sendq_close(&ws->act->sq);
    ws->t->ops->close(ws->t);
}

/* Sends our close frame (unless one went already), then waits for the
 * peer's within the close timeout, or closes once it is out (after_out). */
static void send_close(cio_ws *ws, int code, const void *reason, size_t n, bool after_out)
{
    if (ws->state != WS_OPEN)
        return;
    uint8_t payload[WS_CONTROL_MAX];
    int len = ws_close_payload(payload, (unsigned)code, reason, n);
    if (len < 0)
        len = ws_close_payload(payload, CIO_WS_NO_STATUS, NULL, 0);
    ws->state = after_out ? WS_CLOSING : WS_CLOSE_SENT;
    if (queue_frame(ws, WS_OP_CLOSE, false, payload, (size_t)len) < 0) {
        ws_close_transport(ws);
        return;
    }
    if (ws->state == WS_CLOSING && cio_sendq_pending(&ws->act->sq) == 0)
        ws_close_transport(ws);
    else if (ws->state != WS_GONE &&
             cio_timer_start(&ws->timer, cio_now() + ws->o->close_timeout) < 0)
        ws_close_transport(ws);
}

/* Fail the WebSocket connection (RFC 6455 7.1.7): our close with the code,
 * then TCP close as soon as it is out. */
static void ws_fail(cio_ws *ws, int code)
{
    if (ws->state == WS_OPEN)
        send_close(ws, code, NULL, 0, true);
    else if (ws->state == WS_CLOSE_SENT)
        ws_close_transport(ws);
}

int cio_ws_close(cio_ws *ws, int code, const char *reason)
{
    if (ws->state != WS_OPEN)
        return -EPIPE;
    size_t n = reason ? strlen(reason) : 0;
    uint8_t check[WS_CONTROL_MAX];
    if (n > WS_CONTROL_MAX - 2 || ws_close_payload(check, (unsigned)code, reason, n) < 0)
        return -EINVAL;
    send_close(ws, code, reason, n, false);
    return 0;
}

/* ---- receiving -------------------------------------------------------------------------- */

static void deliver(cio_ws *ws, bool binary, const uint8_t *p, size_t n)
{
    ws_stats.messages_in++;
    if (ws->h->on_message)
        ws->h->on_message(ws, ws->ud, binary, p, n);
}

static int rx_data(void *ud, const ws_data *d)
{
    cio_ws *ws = ud;
    ws_active *a = ws->act;
    if (ws->state != WS_OPEN)
        return 0; /* after our close, data is not delivered (RFC 6455 5.5.1) */
    bool text = d->op == WS_OP_TEXT;
    if (d->msg_start) {
        a->msg.len = 0;
        a->utf8 = (ws_utf8)WS_UTF8_INIT;
        /* The common case: a whole uncompressed message in one piece is
         * handed over from the receive buffer, without a copy. */
        if (d->msg_end && !d->compressed) {
            if (d->n > ws->o->max_message_bytes)
                return CIO_WS_TOO_BIG;
            if (text && !ws_utf8_valid(d->p, d->n))
                return CIO_WS_INVALID_DATA;
            deliver(ws, !text, d->p, d->n);
            return 0;
        }
    }
    size_t before = a->msg.len;
    if (d->compressed) {
        int rc = ws_deflate_inflate(ws->dfl, d->p, d->n, d->msg_end, &a->msg);
        deflate_used(ws);
        if (rc == -EMSGSIZE)
            return CIO_WS_TOO_BIG;
        if (rc == -EBADMSG)
            return CIO_WS_INVALID_DATA;
        if (rc < 0)
            return CIO_WS_INTERNAL_ERROR;
    } else {
        if (d->n > ws->o->max_message_bytes - a->msg.len)
            return CIO_WS_TOO_BIG; /* checked before a byte of it is kept */
        if (cio_buf_append(&a->msg, d->p, d->n) < 0)
            return CIO_WS_INTERNAL_ERROR;
    }
    /* Fail fast: the first invalid byte ends the connection, whatever the
     * fragmenting. */
    if (text && ws_utf8_feed(&a->utf8, (const uint8_t *)a->msg.p + before, a->msg.len - before) < 0)
        return CIO_WS_INVALID_DATA;
    if (!d->msg_end)
        return 0;
    if (text && !ws_utf8_complete(&a->utf8))
        return CIO_WS_INVALID_DATA;
    deliver(ws, !text, (const uint8_t *)a->msg.p, a->msg.len);
    a->msg.len = 0;
    if (a->msg.cap > MSG_KEEP)
        cio_buf_free(&a->msg); /* a big message went by: do not keep its buffer */
    return 0;
}

static int rx_control(void *ud, const ws_control *c)
{
    cio_ws *ws = ud;
    switch (c->op) {
    case WS_OP_PING:
        if (ws->state == WS_OPEN)
            (void)queue_frame(ws, WS_OP_PONG, false, c->p, c->n);
        return 0;
    case WS_OP_PONG:
        return 0; /* its arrival cleared ping_out (on_data) */
    default:      /* WS_OP_CLOSE */
        break;
    }
    ws->got_close = true;
    ws->peer_code = c->code;
    if (c->reason_len && !ws->peer_reason && (ws->peer_reason = malloc(c->reason_len)) != NULL) {
        memcpy(ws->peer_reason, c->reason, c->reason_len);
        ws->peer_reason_len = (uint8_t)c->reason_len;
    }
    if (ws->state == WS_OPEN) {
        /* Echo the code (RFC 6455 5.5.1), then close once it is out: the
         * server closes the TCP connection first (7.1.1). */
        send_close(ws, c->code, NULL, 0, true);
    } else if (ws->state == WS_CLOSE_SENT) {
        ws->state = WS_CLOSING; /* the handshake is complete */
        if (!ws->act || cio_sendq_pending(&ws->act->sq) == 0)
            ws_close_transport(ws);
    }
    return 0;
}

static const ws_rx_cbs rx_cbs = {.on_data = rx_data, .on_control = rx_control};

static void budget_woke(cio_budget_waiter *w)
{
    ws_active *a = cio_container_of(w, ws_active, bwait);
    a->budget_paused = false;
    if (!a->ws->task_paused)
        ws_read_pause(a->ws, false);
}

/* With the budget full, a connection in the middle of a message (which
 * would grow what is held) stops being read until there is room. */
static void ws_budget_check(cio_ws *ws)
{
    ws_active *a = ws->act;
    cio_budget *b = ws->o->budget;
    ws_charge(ws);
    if (!a || a->budget_paused || ws->state != WS_OPEN || !a->msg.len || !cio_budget_over(b))
        return;
    a->budget_paused = true;
    a->paused_at = cio_now();
    ws->t->ops->read_stop(ws->t);
    cio_budget_wait(b, &a->bwait);
    arm_timer(ws);
}

static void ws_feed(cio_ws *ws, uint8_t *data, size_t len)
{
    if (ws->state == WS_GONE || ws->state == WS_LINGER || ws->got_close)
        return; /* nothing may follow a close; lingering discards */
    ws_active *a = act_get(ws);
    if (!a) {
        ws_close_transport(ws);
        return;
    }
    ws->in_feed = true; /* answers to a whole read leave in one send */
    int rc = ws_rx_feed(&a->rx, data, len, &rx_cbs, ws);
    ws->in_feed = false;
    if (rc != 0)
        ws_fail(ws, rc > 0 ? rc : CIO_WS_INTERNAL_ERROR);
    ws_flush(ws);
    ws_budget_check(ws);
    act_release_if_idle(ws);
}

/* ---- the ping / idle / close timer -------------------------------------------------------- */

static void arm_timer(cio_ws *ws)
{
    const cio_ws_opts *o = ws->o;
    cio_time when = CIO_NEVER;
    if (o->ping_interval != CIO_NEVER && !ws->ping_out)
        when = ws->last_seen + o->ping_interval;
    if (o->idle_timeout != CIO_NEVER && ws->last_seen + o->idle_timeout < when)
        when = ws->last_seen + o->idle_timeout;
    ws->zlib_armed = ws->dfl && ws_deflate_holds_streams(ws->dfl);
    if (ws->zlib_armed) {
        cio_time rest = ws->dfl->used + DEFLATE_IDLE;
        if (rest <= cio_now()) /* due, but held by a message in the middle */
            rest = cio_now() + DEFLATE_IDLE;
        if (rest < when)
            when = rest;
    }
    if (ws->act && ws->act->budget_paused && ws->act->paused_at + BUDGET_WAIT < when)
        when = ws->act->paused_at + BUDGET_WAIT;
    if (when == CIO_NEVER)
        cio_timer_stop(&ws->timer);
    else if (cio_timer_start(&ws->timer, when) < 0)
        ws_close_transport(ws); /* never leave a connection without its timeout */
}

static void ws_timer(cio_timer *t)
{
    cio_ws *ws = cio_container_of(t, cio_ws, timer);
    if (ws->state != WS_OPEN) {
        ws_close_transport(ws); /* the close timeout: the peer did not answer */
        return;
    }
    const cio_ws_opts *o = ws->o;
    cio_time now = cio_now();
    ws_active *a = ws->act;
    if (a && a->budget_paused && now - a->paused_at >= BUDGET_WAIT) {
        o->budget->refused++;
        cio_budget_cancel(o->budget, &a->bwait);
        budget_woke(&a->bwait); /* reads again: the close is answered */
        ws_fail(ws, CIO_WS_TRY_AGAIN_LATER);
        return;
    }
    if (o->idle_timeout != CIO_NEVER && now - ws->last_seen >= o->idle_timeout) {
        ws_close_transport(ws); /* silent, not even a pong: gone (1006) */
        return;
    }
    /* Streams at rest: what zlib held can go (a message in the middle keeps
     * them). */
    if (ws->dfl && now - ws->dfl->used >= DEFLATE_IDLE && (!ws->act || ws_rx_idle(&ws->act->rx)))
        ws_deflate_idle(ws->dfl);
    if (o->ping_interval != CIO_NEVER && !ws->ping_out && now - ws->last_seen >= o->ping_interval) {
        ws->ping_out = true;
        (void)queue_frame(ws, WS_OP_PING, false, NULL, 0);
        act_release_if_idle(ws);
    }
    arm_timer(ws);
}

/* ---- the transport's callbacks (after the switch from HTTP) --------------------------------- */

/* ---- subscriptions (ws_pubsub.c keeps the topics) ---------------------------------------------
 */

ws_sub *ws_sub_add(cio_ws *ws, cio_ws_topics *t, ws_topic *tp)
{
    ws_sub *s = malloc(sizeof(*s));
    if (!s)
        return NULL;
    s->ws = ws;
    s->topics = t;
    s->topic = tp;
    cio_list_push(&ws->subs, &s->ws_link);
    return s;
}

ws_sub *ws_sub_find(cio_ws *ws, const ws_topic *tp)
{
    for (cio_list *n = ws->subs.next; n != &ws->subs; n = n->next) {
        ws_sub *s = cio_container_of(n, ws_sub, ws_link);
        if (s->topic == tp)
            return s;
    }
    return NULL;
}

void ws_sub_free(ws_sub *s)
{
    cio_list_del(&s->ws_link);
    free(s);
}

void ws_sub_detach(ws_sub *s)
{
    ws_sub_free(s);
}

bool ws_can_send(const cio_ws *ws)
{
    return ws->state == WS_OPEN && ws->t != NULL;
}

bool ws_shares_deflated(const cio_ws *ws)
{
    return ws->dfl && ws->dfl->p.server_no_context_takeover &&
           ws->dfl->p.server_max_window_bits >= WS_SHARED_WINDOW_BITS;
}

int ws_queue_seg(cio_ws *ws, cio_seg *seg, size_t off, size_t n)
{
    ws_active *a = act_get(ws);
    if (!a)
        return -ENOMEM;
    if (cio_sendq_pending(&a->sq) + n > ws->o->send_queue_bytes) {
        ws_fail(ws, CIO_WS_POLICY); /* a subscriber that stopped reading: never grow */
        return -ENOBUFS;
    }
    int rc = cio_sendq_append_seg(&a->sq, seg, off, n);
    if (rc == 0) {
        ws_stats.messages_out++; /* a shared frame is one message */
        ws_flush(ws);
    }
    return rc;
}

static void ws_free(cio_ws *ws)
{
    for (cio_list *n; (n = cio_list_pop(&ws->subs)) != NULL;) {
        ws_sub *s = cio_container_of(n, ws_sub, ws_link);
        cio_list_init(&s->ws_link);
        ws_sub_unlink(s);
        free(s);
    }
    cio_timer_stop(&ws->timer);
    if (ws->act) {
        act_uncharge(ws, ws->act);
        act_destroy(ws->act);
    }
    if (ws->dfl) {
        ws_deflate_fini(ws->dfl);
        free(ws->dfl);
    }
    free(ws->peer_reason);
    free(ws);
}

static void on_start(void *ud, cio_transport *t, uint8_t *data, size_t len)
{
    cio_ws *ws = ud;
    ws->t = t;
    ws_stats.open++;
    ws_stats.accepted++;
    ws->last_seen = cio_now();
    arm_timer(ws);
    if (ws->h->on_open)
        ws->h->on_open(ws, ws->ud);
    if (len)
        ws_feed(ws, data, len);
}

static void on_data(void *ud, uint8_t *data, size_t len)
{
    cio_ws *ws = ud;
    ws->last_seen = cio_now(); /* the timer looks at it when it fires */
    if (ws->ping_out) {
        /* Our ping was answered (or something came): the next one is due a
         * ping interval from now, not at the idle timeout it waited for. */
        ws->ping_out = false;
        arm_timer(ws);
    }
    ws_feed(ws, data, len);
}

static void on_eof(void *ud, int err)
{
    cio_ws *ws = ud;
    ws->peer_eof = true;
    if (err == 0 && ws->state == WS_CLOSING && ws->act && cio_sendq_pending(&ws->act->sq))
        return;             /* our close goes out first (the close timer bounds it) */
    ws_close_transport(ws); /* with or without a close frame: nothing more comes */
}

static void on_sent(void *ud, int err)
{
    cio_ws *ws = ud;
    if (!ws->act) /* a send completing after the state went: nothing to do */
        return;
    int rc = cio_sendq_sent(&ws->act->sq, err);
    if (rc < 0) {
        ws_close_transport(ws);
        return;
    }
    ws_charge(ws);
    if (rc == 0)
        return;
    if (ws->state == WS_CLOSING) {
        if (ws->got_close || ws->peer_eof) {
            ws_close_transport(ws); /* our answer is out, or nothing more comes */
        } else {
            /* We failed the connection while the peer may still be sending
             * (a message over the maximum): closing now would reset it
             * before it reads our close. */
            ws->state = WS_LINGER;
            ws->t->ops->shutdown_write(ws->t);
        }
        return;
    }
    act_release_if_idle(ws);
}

static void on_closed(void *ud)
{
    cio_ws *ws = ud;
    if (ws->t) /* it had opened */
        ws_stats.open--;
    ws->state = WS_GONE;
    cio_timer_stop(&ws->timer);
    if (ws->h->on_close) {
        int code = ws->got_close ? ws->peer_code : CIO_WS_ABNORMAL;
        ws->h->on_close(ws, ws->ud, code, (cio_str){ws->peer_reason, ws->peer_reason_len});
    }
    ws->closed = true;
    if (ws->holds == 0)
        ws_free(ws);
}

void ws_hold(cio_ws *ws)
{
    ws->holds++;
}

void ws_release(cio_ws *ws)
{
    if (--ws->holds == 0 && ws->closed)
        ws_free(ws);
}

void ws_read_pause(cio_ws *ws, bool pause)
{
    if (ws->state == WS_GONE || !ws->t)
        return;
    if (ws->task) /* the coroutine API's own pause; the budget's is separate */
        ws->task_paused = pause;
    if (!pause && ws->act && ws->act->budget_paused)
        return; /* the budget wakes it */
    if (pause)
        ws->t->ops->read_stop(ws->t);
    else if (ws->t->ops->read_start(ws->t) < 0)
        ws_close_transport(ws);
}

void ws_set_task(cio_ws *ws, void *task)
{
    ws->task = task;
}

void *ws_task_of(const cio_ws *ws)
{
    return ws->task;
}

size_t ws_max_message(const cio_ws *ws)
{
    return (size_t)ws->o->max_message_bytes;
}

static void on_shutdown(void *ud, bool force)
{
    cio_ws *ws = ud;
    if (force)
        ws_close_transport(ws);
    else
        send_close(ws, CIO_WS_GOING_AWAY, "server shutting down", 20, false);
}

static const cio_http_upgrade_ops ws_ops = {
    .on_start = on_start,
    .cbs = {.on_data = on_data, .on_eof = on_eof, .on_sent = on_sent, .on_closed = on_closed},
    .on_shutdown = on_shutdown,
};

/* ---- the handshake's answer ----------------------------------------------------------------- */

static int refuse(cio_http_req *req, int status)
{
    if (status == 426) {
        cio_http_add_header(req, "Sec-WebSocket-Version", "13");
        cio_http_add_header(req, "Upgrade", "websocket");
    }
    const char *why = status == 426   ? "WebSocket version 13 required\n"
                      : status == 403 ? "origin not allowed\n"
                                      : "not a valid WebSocket handshake\n";
    return cio_http_respond(req, status, "text/plain; charset=utf-8", why, strlen(why));
}

/* The client's Sec-WebSocket-Extensions lines, joined with ", " (arena). */
static cio_str extensions_offer(cio_http_req *req)
{
    cio_str hn, hv, all = {NULL, 0};
    for (size_t i = 0; cio_http_header_at(req, i, &hn, &hv); i++) {
        if (!(hn.n == 24 && strncasecmp(hn.p, "Sec-WebSocket-Extensions", 24) == 0))
            continue;
        if (!all.p) {
            all = hv;
            continue;
        }
        char *joined =
            cio_arena_printf(cio_http_arena(req), "%.*s, %.*s", (int)all.n, all.p, (int)hv.n, hv.p);
        if (joined)
            all = (cio_str){joined, strlen(joined)};
    }
    return all;
}

int cio_ws_accept(cio_http_req *req, const cio_ws_opts *opts, const cio_ws_handler *h, void *ud)
{
    static cio_ws_opts defaults;
    if (!opts) {
        if (!defaults.max_message_bytes)
            cio_ws_opts_defaults(&defaults);
        opts = &defaults;
    }
    const cio_ws_opts *o = opts;
    if (o->nsubprotocols > CIO_WS_MAX_SUBPROTOCOLS)
        return -EINVAL;
    ws_handshake hs;
    int status = ws_handshake_check(req, o, &hs);
    if (status)
        return refuse(req, status);
    cio_ws *ws = calloc(1, sizeof(*ws));
    if (!ws)
        return -ENOMEM;
    ws->h = h;
    ws->ud = ud;
    ws->o = o;
    for (size_t i = 0; hs.subprotocol && i < o->nsubprotocols; i++)
        if (o->subprotocols[i] == hs.subprotocol)
            ws->subprotocol = (uint8_t)(i + 1);
    ws->peer_code = CIO_WS_ABNORMAL;
    cio_list_init(&ws->subs);
    cio_timer_init(&ws->timer, NULL, ws_timer);
    char accept[29];
    ws_accept_key(hs.key, accept);
    int rc = cio_http_add_header(req, "Sec-WebSocket-Accept", accept);
    if (rc == 0 && hs.subprotocol)
        rc = cio_http_add_header(req, "Sec-WebSocket-Protocol", hs.subprotocol);
    cio_str offer = extensions_offer(req);
    if (rc == 0 && o->compression && offer.p) {
        ws_deflate_params p;
        char resp[WS_DEFLATE_RESPONSE_MAX];
        int wb = o->deflate_window_bits ? o->deflate_window_bits : 15;
        ws_deflate_policy pol = {.server_no_context_takeover = o->shared_frames,
                                 .server_max_window_bits = wb < 9 ? 9 : wb > 15 ? 15 : wb,
                                 .client_max_window_bits = wb < 9 ? 9 : wb > 15 ? 15 : wb};
        int acc = ws_deflate_negotiate(offer.p, offer.n, &pol, &p, resp, sizeof(resp));
        if (acc == 1) {
            ws->dfl = calloc(1, sizeof(*ws->dfl));
            if (!ws->dfl || ws_deflate_init(ws->dfl, &p, NULL, o->max_message_bytes) < 0)
                rc = -ENOMEM;
            else
                rc = cio_http_add_header(req, "Sec-WebSocket-Extensions", resp);
        }
    }
    if (rc == 0)
        rc = cio_http_upgrade(req, "websocket", &ws_ops, ws);
    if (rc == 0)
        return 1;
    if (ws->dfl) {
        ws_deflate_fini(ws->dfl);
        free(ws->dfl);
    }
    free(ws);
    return rc;
}

const char *cio_ws_subprotocol(const cio_ws *ws)
{
    return ws->subprotocol ? ws->o->subprotocols[ws->subprotocol - 1] : "";
}

size_t cio_ws_memory(const cio_ws *ws)
{
    size_t n = 0;
    const ws_active *a = ws->act;
    if (a)
        n += sizeof(*a) + a->msg.cap + a->sq.spare.cap + cio_sendq_pending(&a->sq);
    if (ws->dfl)
        n += sizeof(*ws->dfl) + ws_deflate_memory(ws->dfl);
    return n;
}

bool cio_ws_compressed(const cio_ws *ws)
{
    return ws->dfl != NULL;
}

void *cio_ws_userdata(const cio_ws *ws)
{
    return ws->ud;
}

void cio_ws_set_userdata(cio_ws *ws, void *ud)
{
    ws->ud = ud;
}
