/*
 * http_conn.c - one HTTP/1.1 connection, top to bottom: input buffering and
 * parsing (llhttp, strict), timeouts, routing and the task that runs
 * handlers, output through the connection's send queue, and closing
 * (lingering where the peer may still be sending).
 *
 * Parsing happens outside any task, in the transport's callbacks: a slow or
 * idle client never holds a coroutine stack. Only a complete request (head
 * and body) starts a task. While it runs, the request's bytes in act->in are
 * pinned (the handler's strings point into them) and new input collects in
 * act->pend; when the request is done both are compacted and the task goes
 * on with the next pipelined request, or ends.
 *
 * Output is queued in the send queue (core's cio_sendq); a batch of
 * pipelined responses leaves in one send.
 */
#include "http_internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>

#define PEND_MAX       (64 * 1024)      /* input buffered behind a running handler */
#define LINGER_TIME    CIO_SEC(2)       /* discard input this long before closing */
#define COMPACT_AT     (64 * 1024)      /* consumed input compacted within a batch */
#define OUT_HIGH       (256 * 1024)     /* a writer waits above this much unsent output */
#define OUT_LOW        (64 * 1024)      /* ...until it is down to this */
#define IN_MAX         (UINT32_MAX / 2) /* input offsets are 32-bit */
#define ACT_CACHE      16               /* request states a server keeps for reuse */
#define ACT_KEEP_BUF   (16 * 1024)      /* a reused state keeps buffers up to this size */
#define STREAM_HIGH    (64 * 1024)      /* streamed body held: reading stops above this */
#define STREAM_LOW     (16 * 1024)      /* ...and resumes once the handler read it down here */
#define READ_SLACK     (16 * 1024)      /* one read past an announced body */
#define GROW_STEP      (64 * 1024)      /* a body of unknown length grows by this */
#define PAUSED_RCVBUF  (64 * 1024)      /* a socket paused for the budget receives at most ~2x */

/* P_STREAM: the head of a request for a streamed route is in (its handler
 * starts now and reads the body as it arrives). */
enum { P_NEED_MORE, P_COMPLETE, P_ERROR, P_STREAM };

static void conn_process(cio_http_conn *c);
static void after_task(cio_http_conn *c);
static void conn_free(cio_http_conn *c);
static void switch_protocols(cio_http_conn *c);
static void send_continue(cio_http_conn *c);

/* ---- per-request state ------------------------------------------------------------ */

static void req_reset(cio_http_req *r)
{
    cio_http_conn *c = r->conn;
    http_header *hdrs = r->f.hdrs;
    uint32_t cap = r->f.cap;
    cio_arena arena = r->arena;
    cio_buf extra = r->extra;
    memset(r, 0, sizeof(*r));
    r->conn = c;
    r->f.hdrs = hdrs;
    r->f.cap = cap;
    r->arena = arena;
    r->extra = extra;
    r->extra.len = 0;
    r->start = UINT32_MAX; /* no byte of the request seen yet */
}

static void out_error(cio_sendq *q, int err)
{
    (void)err; /* -ETIMEDOUT: a reader that stopped; or a send that failed */
    http_active *a = cio_container_of(q, http_active, sq);
    http_conn_close(a->req.conn);
}

/* Request states (parser, buffers, arena, send queue) are kept per server
 * for reuse, up to ACT_CACHE of them with their smaller buffers: a
 * keep-alive connection gives its state back after every response, and
 * allocating it anew each time cost more than parsing the request. */
static void act_trim(cio_buf *b)
{
    if (b->cap > ACT_KEEP_BUF)
        cio_buf_free(b);
    b->len = 0;
}

/* ---- the budget -------------------------------------------------------------------------- */

void http_charge(cio_http_conn *c)
{
    http_active *a = c->act;
    if (!a || !c->srv->budget)
        return;
    /* An admitted body counts whole from its head on (its reservation), so
     * that admissions cannot promise the same bytes twice. */
    size_t in = a->in.cap > a->reserve ? a->in.cap : a->reserve;
    cio_budget_charge(c->srv->budget, &a->charged, in + a->pend.cap + cio_sendq_pending(&a->sq));
}

static void budget_woke(cio_budget_waiter *w)
{
    http_active *a = cio_container_of(w, http_active, bwait);
    cio_http_conn *c = a->req.conn;
    a->budget_paused = false;
    if (!a->reading_paused && c->state != C_CLOSING)
        c->tp->ops->read_start(c->tp);
}

/* Reading stopped for the budget starts again (lingering, switching, done). */
static void budget_unpause(cio_http_conn *c)
{
    http_active *a = c->act;
    if (!a || !a->budget_paused)
        return;
    cio_budget_cancel(c->srv->budget, &a->bwait);
    budget_woke(&a->bwait);
}

/* With the budget full, a connection whose body would grow what is held
 * (one of unknown length past its first step, or a streamed one) stops
 * being read: TCP flow control holds the rest in the peer. An admitted body
 * of known length is counted whole already and goes on. */
static void budget_pause_if_over(cio_http_conn *c)
{
    http_active *a = c->act;
    cio_http_server *srv = c->srv;
    if (!a || a->budget_paused || !cio_budget_over(srv->budget) ||
        (c->state != C_BODY && c->state != C_HANDLING))
        return;
    cio_http_req *r = &a->req;
    if (c->close_after && !(a->task && r->streaming && !r->complete))
        return; /* nothing more is read for it anyway */
    bool growing = c->state == C_BODY ? (a->parser.flags & F_CHUNKED) != 0
                                      : r->streaming && !r->complete && !r->err_status;
    if (!growing)
        return;
    a->budget_paused = true;
    c->tp->ops->read_stop(c->tp);
    /* What the kernel has received for the socket still arrives after the
     * stop (the multishot receive drains it): a small receive buffer from
     * now on keeps that to a window per connection, not the megabytes TCP
     * autotuning grants a fast sender. For the socket's life (setting it
     * ends autotuning): a client that filled the budget once stays slow. */
    if (c->tp == &c->sock.t && !a->rcvbuf_small) {
        int small = PAUSED_RCVBUF;
        setsockopt(c->sock.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
        a->rcvbuf_small = true;
    }
    srv->st.budget_pauses++;
    cio_budget_wait(srv->budget, &a->bwait);
    http_budget_note(srv);
}

static void budget_release(cio_http_conn *c, http_active *a)
{
    cio_budget *b = c->srv->budget;
    cio_budget_cancel(b, &a->bwait);
    a->budget_paused = false;
    a->reserve = 0;
    cio_budget_charge(b, &a->charged, 0);
}

static http_active *act_get(cio_http_conn *c)
{
    if (c->act)
        return c->act;
    cio_http_server *srv = c->srv;
    http_active *a = srv->act_free;
    if (a) {
        srv->act_free = a->next_free;
        srv->nact_free--;
        cio_sendq_reuse(&a->sq, c->tp);
    } else {
        a = calloc(1, sizeof(*a));
        if (!a)
            return NULL;
        cio_sendq_init(&a->sq, c->tp, OUT_LOW, OUT_HIGH, srv->o.write_timeout, out_error);
        cio_arena_init(&a->req.arena, 1024);
        cio_event_init(&a->body_ev);
        cio_budget_waiter_init(&a->bwait, budget_woke);
    }
    llhttp_init(&a->parser, HTTP_REQUEST, &srv->settings);
    a->parser.data = c;
    a->req.conn = c;
    req_reset(&a->req);
    c->act = a;
    return a;
}

static void act_destroy(http_active *a)
{
    cio_arena_fini(&a->req.arena);
    free(a->req.f.hdrs);
    cio_buf_free(&a->req.extra);
    cio_buf_free(&a->in);
    cio_buf_free(&a->pend);
    cio_sendq_fini(&a->sq);
    free(a);
}

static void act_free(cio_http_conn *c)
{
    http_active *a = c->act;
    if (!a)
        return;
    budget_unpause(c); /* reading goes on (unless closing) */
    c->act = NULL;
    budget_release(c, a);
    cio_http_server *srv = c->srv;
    if (srv->nact_free >= ACT_CACHE || cio_sendq_pending(&a->sq) || cio_sendq_busy(&a->sq)) {
        act_destroy(a); /* a closed connection may leave output behind */
        return;
    }
    cio_arena_reset(&a->req.arena);
    act_trim(&a->in);
    act_trim(&a->pend);
    act_trim(&a->req.extra);
    cio_sendq_trim(&a->sq, 64 * 1024); /* a parts ring a burst grew; the spare chunk stays */
    a->parsed = 0;
    a->pinned = a->reading_paused = a->deadline_due = a->rcvbuf_small = a->unread_body = false;
    a->task = NULL;
    a->next_free = srv->act_free;
    srv->act_free = a;
    srv->nact_free++;
}

void http_act_cache_free(cio_http_server *srv)
{
    while (srv->act_free) {
        http_active *a = srv->act_free;
        srv->act_free = a->next_free;
        act_destroy(a);
    }
    srv->nact_free = 0;
}

/* Gives the per-request state back when nothing is buffered or in flight:
 * an idle keep-alive connection then costs only its struct. */
static void act_release_if_idle(cio_http_conn *c)
{
    http_active *a = c->act;
    if (a && !a->task && a->in.len == a->parsed && a->pend.len == 0 &&
        cio_sendq_pending(&a->sq) == 0 && a->req.start == UINT32_MAX)
        act_free(c);
}

/* ---- llhttp callbacks --------------------------------------------------------------- */

#define REQ(p) (&((cio_http_conn *)(p)->data)->act->req)
#define SRV(p) (((cio_http_conn *)(p)->data)->srv)
#define IN(p)  (((cio_http_conn *)(p)->data)->act->in.p)

static int fail(llhttp_t *p, int status)
{
    cio_http_req *r = REQ(p);
    if (!r->err_status)
        r->err_status = (uint16_t)status;
    return -1;
}

/* The request head (request line and headers) so far, against the limit. */
static bool head_too_big(llhttp_t *p, const char *end)
{
    cio_http_req *r = REQ(p);
    return (uint64_t)(end - IN(p)) - r->start > SRV(p)->o.max_header_bytes;
}

static void span_extend(llhttp_t *p, http_span *s, const char *at, size_t len)
{
    if (s->len == 0)
        s->off = (uint32_t)(at - IN(p));
    s->len += (uint32_t)len;
}

static int on_method(llhttp_t *p, const char *at, size_t len)
{
    cio_http_req *r = REQ(p);
    if (r->start == UINT32_MAX)
        r->start = (uint32_t)(at - IN(p));
    span_extend(p, &r->method_s, at, len);
    return head_too_big(p, at + len) ? fail(p, 431) : 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    cio_http_req *r = REQ(p);
    span_extend(p, &r->url, at, len);
    if (r->url.len > SRV(p)->o.max_uri_bytes)
        return fail(p, 414);
    return head_too_big(p, at + len) ? fail(p, 431) : 0;
}

/* Trailer fields (after a chunked body) are not merged into the headers
 * (RFC 9110 6.5.1): they are skipped, within a bound of their own. */
static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    cio_http_req *r = REQ(p);
    if (r->head_done) {
        r->f.name_len += (uint32_t)len;
        int st = http_trailer_bytes(&r->f, len, SRV(p)->o.max_header_bytes);
        return st ? fail(p, st) : 0;
    }
    int st = http_field_name(&r->f, IN(p), at, len);
    if (st)
        return fail(p, st);
    return head_too_big(p, at + len) ? fail(p, 431) : 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    cio_http_req *r = REQ(p);
    int st = http_field_name_done(&r->f, IN(p), r->head_done);
    return st ? fail(p, st) : 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    cio_http_req *r = REQ(p);
    if (r->head_done) {
        int st = http_trailer_bytes(&r->f, len, SRV(p)->o.max_header_bytes);
        return st ? fail(p, st) : 0;
    }
    int st = http_field_value(&r->f, IN(p), at, len);
    if (st)
        return fail(p, st);
    return head_too_big(p, at + len) ? fail(p, 431) : 0;
}

static int on_version_complete(llhttp_t *p)
{
    cio_http_req *r = REQ(p);
    r->minor = p->http_minor; /* known now, for the access log of an early error */
    r->version_seen = true;
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    cio_http_req *r = REQ(p);
    if (r->head_done)
        return 0; /* a trailer */
    http_header *h = http_field_value_done(&r->f, IN(p));
    switch (http_field_kind(IN(p), h)) {
    case HTTP_FIELD_HOST:
        r->host_count++;
        break;
    case HTTP_FIELD_LENGTH:
        r->has_length = true;
        break;
    case HTTP_FIELD_TE:
        r->has_te = true; /* even empty: llhttp then sets no flag */
        break;
    case HTTP_FIELD_EXPECT:
        if (!http_str_ieq_lit(http_span_str(r, h->value), "100-continue"))
            return fail(p, 417);
        r->expect_continue = true;
        break;
    }
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    cio_http_req *r = REQ(p);
    cio_http_server *srv = SRV(p);
    r->head_done = true;
    r->head_time = cio_now();
    r->method = p->method;
    r->minor = p->http_minor;
    if (p->http_major != 1)
        return fail(p, 505); /* HTTP/0.9 too */
    if (r->minor >= 1 && r->host_count != 1)
        return fail(p, 400); /* RFC 9112 3.2: exactly one Host */
    if (r->host_count > 1)
        return fail(p, 400);
    if (p->method == HTTP_CONNECT)
        return fail(p, 405);
    if (http_framing_bad(r->has_te, r->has_length, r->minor, p->flags & F_CHUNKED))
        return fail(p, 400);
    if (p->flags & F_CONTENT_LENGTH) {
        r->content_length = p->content_length;
        if (r->content_length > srv->o.max_body_bytes)
            return fail(p, 413); /* answered before reading the body */
    }
    bool has_body = (p->flags & F_CHUNKED) || r->content_length > 0;
    if (!has_body || r->minor == 0)
        r->expect_continue = false;
    r->upgrade = p->upgrade;
    /* A body follows: stop here, so that the end of the head is known (the
     * body is gathered right after it) and the request can be routed before
     * a 100 Continue invites the body. */
    return has_body ? HPE_PAUSED : 0;
}

static int on_chunk_header(llhttp_t *p)
{
    if (p->content_length == 0)
        REQ(p)->ck.trailers = true; /* the last chunk: trailer fields follow */
    return 0;
}

/* Body bytes are gathered right after the head, closing the gaps left by
 * chunk framing (moving down); the framing is dropped after each read. */
static int on_body(llhttp_t *p, const char *at, size_t len)
{
    cio_http_req *r = REQ(p);
    http_body_add(IN(p), &r->body, r->head_end, &r->ck, at, len);
    r->body_total += len;
    return r->body_total > SRV(p)->o.max_body_bytes ? fail(p, 413) : 0;
}

static int on_message_complete(llhttp_t *p)
{
    cio_http_req *r = REQ(p);
    r->complete = true;
    r->keep_alive = llhttp_should_keep_alive(p);
    /* Stop at the message boundary: pipelined requests wait their turn. */
    return HPE_PAUSED;
}

void http_settings_init(llhttp_settings_t *s)
{
    llhttp_settings_init(s);
    s->on_method = on_method;
    s->on_url = on_url;
    s->on_version_complete = on_version_complete;
    s->on_header_field = on_header_field;
    s->on_header_field_complete = on_header_field_complete;
    s->on_header_value = on_header_value;
    s->on_header_value_complete = on_header_value_complete;
    s->on_headers_complete = on_headers_complete;
    s->on_chunk_header = on_chunk_header;
    s->on_body = on_body;
    s->on_message_complete = on_message_complete;
}

/* An unknown method ("QUERY / HTTP/1.1", RFC 9110 9.1): a well-formed
 * request line whose method llhttp does not know. Anything else that cannot
 * be parsed (say a TLS handshake, or a line that is not a request line) is a
 * plain 400. */
static bool unknown_method(const char *msg, const char *end)
{
    const char *q = msg;
    while (q < end && (*q == '\r' || *q == '\n'))
        q++; /* empty lines before a request are allowed */
    const char *tok = q;
    while (q < end && q - tok < 32 && ((*q >= 'A' && *q <= 'Z') || *q == '-' || *q == '_'))
        q++;
    if (q == tok || q == end || *q++ != ' ')
        return false;
    const char *target = q;
    while (q < end && (unsigned char)*q > 0x20 && *q != 0x7f)
        q++;
    if (q == target || end - q < 11 || memcmp(q, " HTTP/", 6) != 0)
        return false;
    q += 6;
    return q[0] >= '0' && q[0] <= '9' && q[1] == '.' && q[2] >= '0' && q[2] <= '9' &&
           q[3] == '\r' && q[4] == '\n';
}

/* A body is arriving: drop the chunk framing the parser has consumed (see
 * http_drop_framing). */
static int drop_framing(cio_http_conn *c)
{
    http_active *a = c->act;
    cio_http_req *r = &a->req;
    uint32_t keep = r->body.len ? r->body.off + r->body.len : r->head_end;
    int st = http_drop_framing(&a->in, &a->parsed, keep, &r->ck, c->srv->o.max_header_bytes);
    if (st)
        r->err_status = (uint16_t)st;
    return st ? -1 : 0;
}

static void head_arrived(cio_http_conn *c);

static int parse(cio_http_conn *c)
{
    http_active *a = c->act;
    cio_http_req *r = &a->req;
    for (;;) {
        if (r->complete)
            return P_COMPLETE;
        if (r->err_status)
            return P_ERROR;
        if (a->parsed == a->in.len)
            return P_NEED_MORE;
        const char *base = a->in.p + a->parsed;
        enum llhttp_errno e = llhttp_execute(&a->parser, base, a->in.len - a->parsed);
        if (e == HPE_OK) {
            a->parsed = (uint32_t)a->in.len;
            if (!r->head_done) {
                if (r->start != UINT32_MAX && a->in.len - r->start > c->srv->o.max_header_bytes)
                    r->err_status = 431;
            } else if (a->parser.flags & F_CHUNKED) {
                (void)drop_framing(c);
            }
            continue;
        }
        if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
            a->parsed = (uint32_t)(llhttp_get_error_pos(&a->parser) - a->in.p);
            if (r->complete)
                return P_COMPLETE;
            r->head_end = a->parsed; /* paused at the end of a head with a body */
            llhttp_resume(&a->parser);
            head_arrived(c);
            if (r->streaming)
                return P_STREAM;
            continue;
        }
        a->parsed = (uint32_t)a->in.len;
        if (!r->err_status) {
            /* 505 is for a well-formed other major version */
            bool method = e == HPE_INVALID_METHOD && !r->head_done &&
                          unknown_method(r->start != UINT32_MAX ? a->in.p + r->start : base,
                                         a->in.p + a->in.len);
            r->err_status = method ? 501 : 400;
        }
        return P_ERROR;
    }
}

/* Drops the bytes of finished requests from the front of act->in: once per
 * batch, not per pipelined request. A request that is partly received keeps
 * its bytes; its spans move with them. Never while a handler runs. */
static void compact(http_active *a)
{
    cio_http_req *r = &a->req;
    uint32_t from = r->start != UINT32_MAX ? r->start : a->parsed;
    if (from == 0 || a->pinned)
        return;
    memmove(a->in.p, a->in.p + from, a->in.len - from);
    a->in.len -= from;
    a->parsed -= from;
    if (r->start == UINT32_MAX)
        return;
    r->start = 0;
    if (r->head_end)
        r->head_end -= from;
    http_span *spans[] = {&r->method_s, &r->url, &r->body, &r->query};
    for (size_t i = 0; i < sizeof(spans) / sizeof(spans[0]); i++)
        if (spans[i]->len)
            spans[i]->off -= from;
    http_fields_shift(&r->f, from);
}

/* ---- output ----------------------------------------------------------------------- */

/* The state's deadline (header, body, keep-alive, linger). */
static void set_state_deadline(cio_http_conn *c, cio_time when)
{
    if (c->act)
        c->act->deadline_due = false; /* a new deadline replaces one held back */
    if (when == CIO_NEVER)
        cio_timer_stop(&c->timer);
    else if (cio_timer_start(&c->timer, when) < 0)
        http_conn_close(c); /* out of memory: never leave a connection without its timeout */
}

int http_conn_flush(cio_http_conn *c)
{
    http_active *a = c->act;
    if (!a || c->state == C_CLOSING)
        return 0;
    int rc = cio_sendq_flush(&a->sq);
    if (rc < 0)
        http_conn_close(c);
    return rc;
}

int http_out_wait(cio_http_conn *c)
{
    if (c->state == C_CLOSING)
        return -EPIPE;
    /* Error responses are also written from callbacks, outside any task:
     * they never wait (the write timeout bounds what they queue). */
    if (!cio_current())
        return 0;
    return cio_sendq_wait_room(&c->act->sq, CIO_NEVER);
}

/* ---- timers and closing ----------------------------------------------------------------- */

static bool sending(const cio_http_conn *c)
{
    return c->act && cio_sendq_busy(&c->act->sq);
}

void http_conn_finish_close(cio_http_conn *c)
{
    if (sending(c))
        return; /* on_sent comes back here once the output is out */
    /* Lingering close, where the peer may still be sending (an error answered
     * early, or input we will not read): stop sending, discard what arrives
     * for a while, so that the peer reads our last response instead of a
     * reset. Otherwise close at once. */
    http_active *a = c->act;
    bool may_send = a && (a->req.err_status || a->in.len > a->parsed || a->pend.len ||
                          a->req.start != UINT32_MAX || a->unread_body);
    if (c->peer_eof || c->state == C_CLOSING || !may_send) {
        http_conn_close(c);
        return;
    }
    c->state = C_LINGER;
    /* Nothing read so far is needed any more: a flood of refused requests
     * must not keep a read each for the linger time. */
    cio_buf_free(&a->in);
    cio_buf_free(&a->pend);
    a->parsed = 0;
    a->reserve = 0;
    http_charge(c);
    budget_unpause(c); /* lingering reads (and discards) */
    c->tp->ops->shutdown_write(c->tp);
    set_state_deadline(c, cio_now() + LINGER_TIME);
}

static void conn_timer(cio_timer *t)
{
    cio_http_conn *c = cio_container_of(t, cio_http_conn, timer);
    if (sending(c)) {
        /* Output is leaving (the send queue's write timeout watches it):
         * the state's deadline counts once it is out. */
        c->act->deadline_due = true;
        return;
    }
    switch (c->state) {
    case C_SWITCHING:
        switch_protocols(c);
        return;
    case C_HEAD:
    case C_BODY:
        if (c->act && !c->act->task && c->act->req.start != UINT32_MAX) {
            if (c->act->budget_paused)
                c->srv->st.budget_refused++; /* held back by us all along: not the peer's fault */
            http_error_response(c, c->act->budget_paused ? 503 : 408);
            return;
        }
        http_conn_close(c);
        return;
    case C_HANDLING:
        return;
    default:
        http_conn_close(c); /* idle keep-alive, lingering */
    }
}

void http_conn_close(cio_http_conn *c)
{
    if (c->state == C_CLOSING)
        return;
    c->state = C_CLOSING;
    cio_timer_stop(&c->timer);
    if (c->act) {
        cio_sendq_close(&c->act->sq); /* a task waiting to write learns */
        if (c->act->task)
            cio_task_cancel(c->act->task);
    }
    c->tp->ops->close(c->tp);
}

/* ---- routing and handlers ------------------------------------------------------------------ */

/* The head of a request with a body is complete (the parser is paused
 * there): it is routed now. A streamed route's handler starts at once. A
 * body to buffer must fit the budget, whole (its announced length is
 * reserved) or, of unknown length, a first window of it: else 503 before
 * the body is read. A request that expects 100 Continue gets its 404 or 405
 * instead of the invitation (a 413 was decided already). */
static void head_arrived(cio_http_conn *c)
{
    http_active *a = c->act;
    cio_http_req *r = &a->req;
    cio_str target = cio_http_target(r);
    if (!(target.n == 1 && target.p[0] == '*')) {
        char allowed[128];
        int status = http_route_resolve(r, true, allowed, sizeof(allowed));
        if (status == 405)
            r->allow = cio_arena_strndup(&r->arena, allowed, strlen(allowed));
        r->route_status = (uint16_t)status;
        if (status && r->expect_continue) {
            r->err_status = (uint16_t)status;
            return;
        }
        if (!status && r->route && r->route->stream) {
            r->streaming = true;
            /* Known now (a buffered request learns it at its end): a response
             * that starts before the body is in keeps the connection. */
            r->keep_alive = llhttp_should_keep_alive(&a->parser);
            return;
        }
    }
    /* A large body of known length gets its buffer at once, of its size
     * (and one read more: what may follow it in the last read), not the
     * power of two that doubling would reach: what is admitted is what is
     * held. */
    bool large = r->content_length > ACT_KEEP_BUF;
    size_t need = r->content_length ? a->in.len + r->content_length : STREAM_HIGH;
    need += large ? READ_SLACK : 0;
    if (!cio_budget_admit(c->srv->budget, need > a->charged ? need - a->charged : 0)) {
        c->srv->st.budget_refused++;
        http_budget_note(c->srv);
        r->err_status = 503;
        return;
    }
    if (large && cio_buf_reserve_exact(&a->in, need - a->in.len) < 0) {
        r->err_status = 503;
        return;
    }
    a->reserve = need; /* unknown length: a first step of it */
    http_charge(c);
}

/* A streamed request's handler is about to start: its head moves into the
 * request's arena (the handler's strings point there, and the input buffer
 * then holds only the body's window and what follows it). */
static int stream_begin(cio_http_conn *c)
{
    http_active *a = c->act;
    cio_http_req *r = &a->req;
    compact(a); /* the request starts at 0 */
    char *head = cio_arena_alloc(&r->arena, r->head_end);
    if (!head)
        return -ENOMEM;
    memcpy(head, a->in.p, r->head_end);
    r->head_base = head;
    memmove(a->in.p, a->in.p + r->head_end, a->in.len - r->head_end);
    a->in.len -= r->head_end;
    a->parsed -= r->head_end;
    r->head_end = 0;
    r->body = (http_span){0, 0};
    cio_event_clear(&a->body_ev);
    return 0;
}

/* Input for a streamed request whose handler runs: parsed at once into the
 * body's window, which the handler drains. */
static void stream_input(cio_http_conn *c)
{
    http_active *a = c->act;
    cio_http_req *r = &a->req;
    int p = parse(c);
    if (p != P_NEED_MORE) {
        a->pinned = true;  /* the end (or an error): what follows waits in pend */
        budget_unpause(c); /* the body grows no more */
    }
    if (r->body.len >= STREAM_HIGH && !a->reading_paused) {
        a->reading_paused = true;
        c->tp->ops->read_stop(c->tp);
    }
    if (r->body.len || p != P_NEED_MORE)
        cio_event_set(&a->body_ev);
}

static ssize_t read_error(const cio_http_req *r)
{
    switch (r->err_status) {
    case 413:
        return -EMSGSIZE;
    case 408:
        return -ETIMEDOUT;
    case 503:
        return -ENOMEM;
    default:
        return -EPROTO;
    }
}

ssize_t cio_http_read(cio_http_req *r, void *buf, size_t cap)
{
    cio_http_conn *c = r->conn;
    http_active *a = c->act;
    if (!r->streaming) {
        size_t n = r->body.len - r->body_read;
        n = n < cap ? n : cap;
        if (n)
            memcpy(buf, a->in.p + r->body.off + r->body_read, n);
        r->body_read += (uint32_t)n;
        return (ssize_t)n;
    }
    for (;;) {
        if (r->body.len) {
            size_t n = r->body.len < cap ? r->body.len : cap;
            memcpy(buf, a->in.p + r->body.off, n);
            r->body.off += (uint32_t)n;
            r->body.len -= (uint32_t)n;
            if (r->body.len == 0 || r->body.off >= STREAM_LOW) {
                /* Drop what was read (the window starts at 0 again). */
                uint32_t k = r->body.off;
                memmove(a->in.p, a->in.p + k, a->in.len - k);
                a->in.len -= k;
                a->parsed -= k;
                r->ck.data_end = r->ck.data_end > k ? r->ck.data_end - k : 0;
                r->body.off = 0;
            }
            if (a->reading_paused && !a->pinned && r->body.len < STREAM_LOW) {
                a->reading_paused = false;
                if (!a->budget_paused && c->state != C_CLOSING)
                    c->tp->ops->read_start(c->tp);
            }
            http_charge(c);
            return (ssize_t)n;
        }
        if (r->err_status)
            return read_error(r);
        if (r->complete)
            return 0;
        if (c->peer_eof || c->state == C_CLOSING)
            return -EPIPE;
        if (r->expect_continue && r->resp_state == RESP_NONE)
            send_continue(c);
        r->expect_continue = false; /* after a response, no invitation */
        cio_event_clear(&a->body_ev);
        cio_time deadline = cio_now() + c->srv->o.body_timeout;
        int rc = cio_event_wait(&a->body_ev, deadline);
        if (rc == -ETIMEDOUT && cio_now() >= deadline && !r->body.len && !r->complete) {
            /* Nothing arrived within the body timeout: 408, or 503 when the
             * budget held the body back all along (not the client's fault). */
            if (!r->err_status)
                r->err_status = a->budget_paused ? 503 : 408;
            if (a->budget_paused)
                c->srv->st.budget_refused++;
            return -ETIMEDOUT;
        }
        if (rc < 0 && rc != -ETIMEDOUT)
            return c->peer_eof ? -EPIPE : rc;
    }
}

static int call_handler(cio_http_req *r)
{
    cio_http_server *srv = r->conn->srv;
    cio_str target = cio_http_target(r);
    if (target.n == 1 && target.p[0] == '*') {
        if (r->method != HTTP_OPTIONS)
            return http_respond_status(r, 400);
        cio_http_add_header(r, "Allow", srv->allow_all);
        return cio_http_respond(r, 204, NULL, NULL, 0);
    }
    char allowed[128] = "";
    int status = r->resolved ? r->route_status : http_route_resolve(r, false, allowed, sizeof(allowed));
    if (status == 405)
        cio_http_add_header(r, "Allow", r->allow ? r->allow : allowed);
    if (status)
        return http_respond_status(r, status);
    /* Named for the slow-task watchdog: the connection's task runs one
     * request after another. */
    cio_task_set_name(NULL, r->route ? r->route->name : "static file");
    if (r->route)
        return r->route->fn(r, r->route->ud);
    return cio_http_serve_static(r);
}

/* Runs the handler of a complete request in a scope of its own: the
 * handler deadline counts from the head, and the scope is cancelled when
 * the client goes (end of stream, reset, failed write), as nginx abandons
 * a request whose client closed (its 499). */
static void dispatch(cio_http_req *r)
{
    cio_http_conn *c = r->conn;
    cio_time limit = c->srv->o.handler_timeout;
    cio_time deadline = limit >= CIO_NEVER - r->head_time ? CIO_NEVER : r->head_time + limit;
    r->head_only = r->method == HTTP_HEAD;
    cio_scope scope;
    cio_scope_enter(&scope, deadline, false);
    r->scope = &scope;
    if (c->peer_eof)
        cio_scope_cancel(&scope);
    int rc = call_handler(r);
    r->scope = NULL;
    int why = cio_scope_exit(&scope);
    if (r->resp_state == RESP_NONE) {
        c->close_after = true;
        if (why == -ETIMEDOUT)
            (void)http_respond_status(r, 503); /* the handler deadline passed */
        else if (r->err_status && c->state != C_CLOSING)
            (void)http_respond_status(r, r->err_status); /* the body was refused (413...) */
        else if (c->peer_eof || c->state == C_CLOSING)
            r->status = 499; /* nobody to answer: logged as nginx does */
        else
            (void)http_respond_status(r, rc == -ENOMEM ? 503 : 500);
    } else if (r->resp_state == RESP_STREAMING && rc < 0) {
        c->close_after = true; /* cut short: the peer sees the close */
        r->resp_state = RESP_DONE;
    }
}

/* ---- state machine ------------------------------------------------------------------------- */

static intptr_t conn_task(void *arg);

/* pin: the request is complete, new input waits in pend (a streamed one
 * goes on parsing its body). */
static void start_task(cio_http_conn *c, bool pin)
{
    http_active *a = c->act;
    cio_task *t;
    a->pinned = pin;
    if (pin)
        budget_unpause(c); /* the body is complete: it grows no more */
    c->state = C_HANDLING;
    set_state_deadline(c, CIO_NEVER);
    if (cio_spawn(c->srv->loop, &t, conn_task, c) < 0) {
        a->pinned = false;
        http_error_response(c, 503);
        return;
    }
    a->task = t;
    cio_detach(t); /* it frees itself; a->task is cleared before it ends */
}

static void send_continue(cio_http_conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    c->act->req.expect_continue = false;
    if (cio_sendq_append(&c->act->sq, cont, sizeof(cont) - 1) == 0)
        http_conn_flush(c);
}

/* Decides what happens next after input arrived or a task finished. */
static void conn_process(cio_http_conn *c)
{
    if (c->state == C_CLOSING || c->state == C_LINGER || c->state == C_SWITCHING)
        return;
    if (c->close_after) {
        /* A response said Connection: close (or an error did): nothing more
         * is read or started; close once the output is out. */
        http_conn_finish_close(c);
        return;
    }
    http_active *a = c->act;
    if (!a) {
        /* Idle, nothing buffered: only the peer's end of stream matters. */
        if (c->peer_eof)
            http_conn_close(c);
        return;
    }
    if (a->task)
        return;
    cio_http_req *r = &a->req;
    compact(a);
    switch (parse(c)) {
    case P_COMPLETE:
        start_task(c, true);
        return;
    case P_STREAM:
        if (stream_begin(c) < 0) {
            http_error_response(c, 503);
            return;
        }
        start_task(c, false);
        if (c->act && c->act->task)
            stream_input(c); /* body bytes read with the head */
        return;
    case P_ERROR:
        http_error_response(c, r->err_status);
        return;
    default:
        break;
    }
    if (c->peer_eof) {
        /* The peer stopped sending mid-request or while idle: nothing more
         * can come. Close once our output is out. */
        c->close_after = true;
        http_conn_finish_close(c);
        return;
    }
    if (r->start == UINT32_MAX) {
        if (c->state != C_IDLE) {
            c->state = C_IDLE;
            set_state_deadline(c, cio_now() + c->srv->o.keepalive_timeout);
        }
        act_release_if_idle(c);
        return;
    }
    if (!r->head_done) {
        if (c->state != C_HEAD) {
            c->state = C_HEAD; /* measured from the request's first byte */
            set_state_deadline(c, cio_now() + c->srv->o.header_timeout);
        }
        return;
    }
    c->state = C_BODY; /* measured between reads */
    set_state_deadline(c, cio_now() + c->srv->o.body_timeout);
    if (r->expect_continue)
        send_continue(c);
}

static void on_data(void *ud, uint8_t *data, size_t len);

/* The PROXY protocol header of a connection from a load balancer: held
 * until whole (it is small, and the header timeout bounds the wait), then
 * the client's address replaces the balancer's (access log, per-address
 * limit) and what followed it is served as HTTP. Anything else closes the
 * connection without a word: a listener configured for the protocol
 * requires it. */
static void proxy_data(cio_http_conn *c, uint8_t *data, size_t len)
{
    http_active *a = act_get(c);
    if (!a) {
        http_conn_close(c);
        return;
    }
    const uint8_t *p = data;
    size_t n = len;
    if (a->in.len) { /* a first piece is held */
        if (cio_buf_append(&a->in, data, len) < 0) {
            http_conn_close(c);
            return;
        }
        p = (const uint8_t *)a->in.p;
        n = a->in.len;
    }
    uint8_t family, addr[16];
    int h = http_proxy_parse(p, n, &family, addr);
    if (h < 0) {
        http_conn_close(c);
        return;
    }
    if (h == 0) {
        if (!a->in.len && cio_buf_append(&a->in, data, len) < 0) {
            http_conn_close(c);
            return;
        }
        if (c->state != C_HEAD) {
            c->state = C_HEAD;
            set_state_deadline(c, cio_now() + c->srv->o.header_timeout);
        }
        return;
    }
    c->proxy_wait = false;
    if (family) {
        c->rfamily = family;
        memcpy(c->raddr, addr, family == AF_INET ? 4 : 16);
    }
    if (!http_server_conn_admit(c->srv, c)) {
        http_conn_close(c); /* its address has max_conns_per_addr connections already */
        return;
    }
    size_t rest = n - (size_t)h;
    uint8_t *copy = rest ? malloc(rest) : NULL;
    if (rest && !copy) {
        http_conn_close(c);
        return;
    }
    if (rest)
        memcpy(copy, p + h, rest);
    a->in.len = 0;
    c->state = C_IDLE;
    set_state_deadline(c, cio_now() + c->srv->o.keepalive_timeout);
    if (rest)
        on_data(c, copy, rest);
    else
        act_release_if_idle(c);
    free(copy);
}

static void on_data(void *ud, uint8_t *data, size_t len)
{
    cio_http_conn *c = ud;
    if (c->state == C_LINGER || c->state == C_CLOSING)
        return;
    if (c->proxy_wait) {
        proxy_data(c, data, len);
        return;
    }
    /* Discarded: no request after a close is answered (but the body of a
     * streamed one whose handler runs is still its to read). */
    if (c->close_after && !(c->act && c->act->task && !c->act->pinned))
        return;
    http_active *a = act_get(c);
    if (!a) {
        http_conn_close(c);
        return;
    }
    if (a->pinned || c->state == C_SWITCHING) {
        if (cio_buf_append(&a->pend, data, len) < 0) {
            http_conn_close(c);
            return;
        }
        if (a->pend.len > PEND_MAX && !a->reading_paused) {
            a->reading_paused = true; /* backpressure on pipelined input */
            c->tp->ops->read_stop(c->tp);
        }
        http_charge(c);
        return;
    }
    /* A buffered body of unknown length grows its buffer by steps, not by
     * doubling: its charge stays within a step of what it holds, and what
     * the budget can overshoot while connections are being paused is a
     * read each. */
    if (c->state == C_BODY && a->in.cap - a->in.len < len && a->in.cap >= a->reserve) {
        /* Past what was admitted: a step more if the budget has room for
         * it, else only this read (the connection is paused below). */
        size_t step = len > GROW_STEP ? len : GROW_STEP;
        if (!cio_budget_has_room(c->srv->budget, step))
            step = len;
        if (cio_buf_reserve_exact(&a->in, step) < 0) {
            http_conn_close(c);
            return;
        }
    }
    /* Parsing bounds what is kept (head, body, one read): this is a guard
     * for the 32-bit offsets, never reached within the limits. */
    if (a->in.len + len > IN_MAX || cio_buf_append(&a->in, data, len) < 0) {
        http_conn_close(c);
        return;
    }
    if (a->task)
        stream_input(c); /* a streamed body, its handler running */
    else
        conn_process(c);
    http_charge(c);
    budget_pause_if_over(c);
}

static void on_eof(void *ud, int err)
{
    cio_http_conn *c = ud;
    c->peer_eof = true;
    if (c->state == C_LINGER || c->state == C_CLOSING || err < 0) {
        http_conn_close(c); /* done lingering, or reset: nobody reads a response */
        return;
    }
    if (c->act && c->act->task) {
        /* The client is gone: its handler is abandoned (what it answered
         * without waiting still goes out), then the connection closes. */
        if (c->act->req.scope)
            cio_scope_cancel(c->act->req.scope);
        return;
    }
    conn_process(c);
}

static void on_sent(void *ud, int err)
{
    cio_http_conn *c = ud;
    http_active *a = c->act;
    int rc = a ? cio_sendq_sent(&a->sq, err) : -EPIPE;
    if (rc < 0) {
        http_conn_close(c);
        return;
    }
    http_charge(c);
    if (rc == 0)
        return; /* more is on its way */
    if (c->state == C_SWITCHING && !a->task) {
        switch_protocols(c);
        return;
    }
    if (a->deadline_due) {
        a->deadline_due = false;
        conn_timer(&c->timer); /* the state's deadline passed meanwhile */
        return;
    }
    if (a->task)
        return;
    if (c->close_after)
        http_conn_finish_close(c);
    else if (c->state == C_IDLE)
        act_release_if_idle(c);
}

static void on_closed(void *ud)
{
    cio_http_conn *c = ud;
    c->state = C_CLOSING;
    c->started = false;
    if (c->act && c->act->task)
        return; /* conn_task frees the connection when it ends */
    conn_free(c);
}

static const cio_transport_cbs conn_cbs = {
    .on_data = on_data,
    .on_eof = on_eof,
    .on_sent = on_sent,
    .on_closed = on_closed,
};

const cio_transport_cbs *cio_http_conn_cbs(void)
{
    return &conn_cbs;
}

/* ---- the task ------------------------------------------------------------------------------ */

/* Ends the request: drops its bytes, merges what arrived meanwhile, and
 * prepares the parser for the next message. */
static void finish_request(cio_http_conn *c)
{
    http_active *a = c->act;
    cio_http_req *r = &a->req;
    http_finish_response(r);
    http_request_done(r);
    c->nreq++;
    cio_arena_reset(&r->arena);
    a->pinned = false;
    if (a->pend.len) {
        if (cio_buf_append(&a->in, a->pend.p, a->pend.len) < 0)
            c->close_after = true;
        a->pend.len = 0;
    }
    if (a->reading_paused && c->state != C_CLOSING) {
        a->reading_paused = false;
        if (!a->budget_paused)
            c->tp->ops->read_start(c->tp);
    }
    if (r->streaming && !r->complete) {
        c->close_after = true; /* the rest of the body is not read: no next request */
        a->unread_body = true; /* and lingering, so that the peer reads our answer */
    }
    a->reserve = 0;
    bool upgrade = r->upgrade;
    req_reset(r);
    if (a->parsed > COMPACT_AT)
        compact(a); /* a long batch: do not let consumed bytes pile up */
    if (c->up)
        return; /* switching protocols: what follows is the new protocol's */
    if (upgrade)
        c->close_after = true; /* not accepted: the bytes after an upgrade are not HTTP */
    else
        llhttp_resume(&a->parser);
}

static intptr_t conn_task(void *arg)
{
    cio_http_conn *c = arg;
    http_active *a = c->act;
    for (;;) {
        dispatch(&a->req);
        finish_request(c);
        if (c->close_after || c->state == C_CLOSING || c->up)
            break;
        int p = parse(c);
        if (p == P_ERROR) {
            http_error_response(c, a->req.err_status); /* flushed after the loop */
            break;
        }
        if (p == P_STREAM) {
            if (stream_begin(c) < 0) {
                http_error_response(c, 503);
                break;
            }
            stream_input(c); /* body bytes read with the head */
            continue;        /* the rest is read while the handler runs */
        }
        if (p != P_COMPLETE)
            break;
        a->pinned = true;
    }
    http_charge(c);
    a->task = NULL;
    after_task(c);
    return 0;
}

static void after_task(cio_http_conn *c)
{
    if (c->state == C_CLOSING) {
        if (!c->started)
            conn_free(c); /* on_closed came while the task ran */
        return;
    }
    if (c->up) {
        /* The 101 goes out first; the switch happens from a callback once
         * it is (the new protocol never starts inside this task). */
        c->state = C_SWITCHING;
        http_conn_flush(c);
        if (c->state == C_SWITCHING && !sending(c))
            set_state_deadline(c, cio_now());
        return;
    }
    c->state = C_HANDLING; /* conn_process re-derives the state */
    http_conn_flush(c);
    conn_process(c);
}

/* ---- switching protocols -------------------------------------------------------------- */

/* The transport's callbacks once another protocol has it: forwarded, and
 * the connection (which holds the transport's memory) freed at the end. */
static void up_data(void *ud, uint8_t *data, size_t len)
{
    cio_http_conn *c = ud;
    c->up->cbs.on_data(c->up_ud, data, len);
}

static void up_eof(void *ud, int err)
{
    cio_http_conn *c = ud;
    c->up->cbs.on_eof(c->up_ud, err);
}

static void up_sent(void *ud, int err)
{
    cio_http_conn *c = ud;
    c->up->cbs.on_sent(c->up_ud, err);
}

static void up_closed(void *ud)
{
    cio_http_conn *c = ud;
    c->up->cbs.on_closed(c->up_ud);
    c->up = NULL; /* told */
    c->started = false;
    conn_free(c);
}

static const cio_transport_cbs upgraded_cbs = {
    .on_data = up_data,
    .on_eof = up_eof,
    .on_sent = up_sent,
    .on_closed = up_closed,
};

/* The 101 is out: hands the transport and the bytes read past the request
 * to the new protocol. The connection stays in the server's list (counted,
 * and told of a shutdown) as the owner of the transport's memory. */
static void switch_protocols(cio_http_conn *c)
{
    http_active *a = c->act;
    cio_timer_stop(&c->timer);
    /* What arrived while the 101 was leaving waited in pend, behind what was
     * read with the request. */
    if (a->pend.len && cio_buf_append(&a->in, a->pend.p, a->pend.len) < 0) {
        http_conn_close(c);
        return;
    }
    if (a->budget_paused) {
        cio_budget_cancel(c->srv->budget, &a->bwait);
        a->budget_paused = false;
        a->reading_paused = true; /* started once, below */
    }
    if (a->reading_paused) {
        a->reading_paused = false;
        c->tp->ops->read_start(c->tp);
    }
    c->state = C_UPGRADED;
    c->tp->cbs = &upgraded_cbs;
    c->up->on_start(c->up_ud, c->tp, (uint8_t *)a->in.p + a->parsed, a->in.len - a->parsed);
    act_free(c);
    if (c->peer_eof && c->state == C_UPGRADED)
        c->up->cbs.on_eof(c->up_ud, 0); /* it came while the 101 was leaving */
    if (c->srv->shutting && c->state == C_UPGRADED)
        c->up->on_shutdown(c->up_ud, false);
}

/* ---- lifecycle ---------------------------------------------------------------------------------
 */

cio_http_conn *cio_http_conn_new(cio_http_server *srv)
{
    cio_http_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->srv = srv;
    cio_timer_init(&c->timer, srv->loop, conn_timer);
    cio_list_init(&c->link);
    return c;
}

int cio_http_conn_start(cio_http_conn *c, cio_transport *t)
{
    c->tp = t;
    c->state = C_IDLE;
    c->started = true;
    http_server_conn_added(c->srv, c);
    /* A connection that never sends a byte gets the header timeout. */
    set_state_deadline(c, cio_now() + c->srv->o.header_timeout);
    int rc = t->ops->read_start(t);
    if (rc < 0)
        http_conn_close(c);
    return 0;
}

static void conn_free(cio_http_conn *c)
{
    if (c->up) /* accepted, but closed before the switch */
        c->up->cbs.on_closed(c->up_ud);
    cio_timer_stop(&c->timer);
    http_server_conn_removed(c->srv, c);
    act_free(c);
    free(c);
}

bool http_conn_is_idle(const cio_http_conn *c)
{
    return c->state == C_IDLE && (!c->act || (!c->act->task && c->act->req.start == UINT32_MAX &&
                                              !cio_sendq_busy(&c->act->sq)));
}

/* Graceful: an idle connection closes now; one with a request in flight
 * (from its first byte on) goes on reading and answering it, and closes
 * after the response (srv->shutting makes it Connection: close). One that
 * needs no more input (its handler runs, or only output is left) closes
 * once its output is out. */
void http_conn_shutdown(cio_http_conn *c, bool force)
{
    if (c->state == C_UPGRADED) {
        c->up->on_shutdown(c->up_ud, force); /* the protocol closes in its own way */
        return;
    }
    if (c->state == C_SWITCHING && !force)
        return; /* told once switched */
    if (force || http_conn_is_idle(c)) {
        http_conn_close(c);
        return;
    }
    http_active *a = c->act;
    if (!a || a->task || a->req.start == UINT32_MAX) {
        c->close_after = true;
        if (!a || !a->task)
            http_conn_finish_close(c);
    }
}
