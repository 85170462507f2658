/*
 * http_client.c - the HTTP/1.1 client, top to bottom: the response parser
 * (llhttp in response mode, on the glue the server's requests use), name
 * resolution on a pool (getaddrinfo blocks), connections kept alive per
 * address, and cio_http_fetch: resolve -> take or open a connection -> send
 * -> receive and parse -> keep the connection or close it.
 *
 * A fetch is a task's awaiting call: every step goes through the ring with
 * the fetch's deadline, so cancelling the task's scope stops it wherever it
 * is. Ownership: a connection belongs to the fetch using it, or to the
 * client's idle list; a fetch that fails closes its connection. A lookup
 * whose fetch gave up finishes on its own and frees itself.
 */
#include "http_internal.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEF_MAX_RESPONSE  (1u << 20)
#define DEF_MAX_HEAD      (16u * 1024)
#define DEF_IDLE_PER_ADDR 4
#define DEF_IDLE_TIMEOUT  CIO_SEC(30)
#define IDLE_MAX          256          /* kept-alive connections in all */
#define READ_SIZE         (16 * 1024)  /* bytes asked of one recv */
#define HEAD_MAX          2048         /* the request head without added headers */
#define RESOLVER_THREADS  2

/* ---- the response parser ---------------------------------------------------------- */

#define RP(p) ((http_resp_parser *)(p)->data)

static int rp_fail(llhttp_t *p, int err)
{
    http_resp_parser *rp = RP(p);
    if (!rp->err)
        rp->err = err;
    return -1;
}

/* A status from the shared glue: 431 and 413 are sizes, 503 memory, the
 * rest malformed input. */
static int rp_status(llhttp_t *p, int status)
{
    return rp_fail(p, status == 431 || status == 413 ? -EMSGSIZE
                      : status == 503                ? -ENOMEM
                                                     : -EPROTO);
}

static int rp_field(llhttp_t *p, const char *at, size_t len)
{
    http_resp_parser *rp = RP(p);
    if (rp->head_done) {
        rp->f.name_len += (uint32_t)len;
        int st = http_trailer_bytes(&rp->f, len, rp->max_head);
        return st ? rp_status(p, st) : 0;
    }
    int st = http_field_name(&rp->f, rp->in.p, at, len);
    return st ? rp_status(p, st) : 0;
}

static int rp_field_done(llhttp_t *p)
{
    http_resp_parser *rp = RP(p);
    int st = http_field_name_done(&rp->f, rp->in.p, rp->head_done);
    return st ? rp_status(p, st) : 0;
}

static int rp_value(llhttp_t *p, const char *at, size_t len)
{
    http_resp_parser *rp = RP(p);
    int st = rp->head_done ? http_trailer_bytes(&rp->f, len, rp->max_head)
                           : http_field_value(&rp->f, rp->in.p, at, len);
    return st ? rp_status(p, st) : 0;
}

static int rp_value_done(llhttp_t *p)
{
    http_resp_parser *rp = RP(p);
    if (rp->head_done)
        return 0; /* a trailer */
    http_header *h = http_field_value_done(&rp->f, rp->in.p);
    int kind = http_field_kind(rp->in.p, h);
    if (kind == HTTP_FIELD_LENGTH)
        rp->has_length = true;
    else if (kind == HTTP_FIELD_TE)
        rp->has_te = true;
    return 0;
}

static int rp_headers_complete(llhttp_t *p)
{
    http_resp_parser *rp = RP(p);
    rp->head_done = true;
    rp->status = p->status_code;
    rp->minor = p->http_minor;
    if (p->http_major != 1 || p->upgrade || rp->status == 101)
        return rp_fail(p, -EPROTO); /* never asked for an upgrade */
    if (rp->status < 100)
        return rp_fail(p, -EPROTO); /* llhttp 8.1 takes "21" or "0": a status has 3 digits */
    if (rp->status >= 100 && rp->status < 200)
        return 1; /* interim (100 Continue...): no body, whatever it announces (RFC 9110
                     15.2; llhttp 8.1 would read one); the real response follows */
    /* A response with both framings may be an attempt at response
     * splitting (RFC 9112 6.3): refused, as is a Transfer-Encoding that does
     * not end in chunked (its end would be the close: not worth the risk). */
    if (http_framing_bad(rp->has_te, rp->has_length, rp->minor, p->flags & F_CHUNKED))
        return rp_fail(p, -EPROTO);
    /* The response to a HEAD, a 204 and a 304 have no body, whatever they
     * announce (RFC 9112 6.3: their Content-Length is the representation's,
     * which llhttp 8.1 would wait for, and which may pass max_bytes). */
    if (rp->head_only || rp->status == 204 || rp->status == 304)
        return 1;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > rp->max_bytes)
        return rp_fail(p, -EMSGSIZE);
    /* Stop here so that the end of the head is known: the body is gathered
     * right after it. */
    return HPE_PAUSED;
}

static int rp_chunk_header(llhttp_t *p)
{
    if (p->content_length == 0)
        RP(p)->ck.trailers = true;
    return 0;
}

static int rp_body(llhttp_t *p, const char *at, size_t len)
{
    http_resp_parser *rp = RP(p);
    http_body_add(rp->in.p, &rp->body, rp->head_end, &rp->ck, at, len);
    return (uint64_t)rp->head_end + rp->body.len > rp->max_bytes ? rp_fail(p, -EMSGSIZE) : 0;
}

static int rp_message_complete(llhttp_t *p)
{
    http_resp_parser *rp = RP(p);
    if (rp->status >= 100 && rp->status < 200) {
        /* Interim: forget it; the next message is the response. */
        rp->f.n = 0;
        rp->f.in_value = false;
        rp->head_done = rp->has_te = rp->has_length = false;
        rp->status = 0;
        return HPE_PAUSED;
    }
    rp->complete = true;
    rp->keep_alive = llhttp_should_keep_alive(p);
    return HPE_PAUSED;
}

static const llhttp_settings_t resp_settings = {
    .on_header_field = rp_field,
    .on_header_field_complete = rp_field_done,
    .on_header_value = rp_value,
    .on_header_value_complete = rp_value_done,
    .on_headers_complete = rp_headers_complete,
    .on_chunk_header = rp_chunk_header,
    .on_body = rp_body,
    .on_message_complete = rp_message_complete,
};

void http_resp_init(http_resp_parser *rp, bool head_only, uint64_t max_bytes, uint64_t max_head)
{
    http_fields f = rp->f;
    cio_buf in = rp->in;
    memset(rp, 0, sizeof(*rp));
    rp->f.hdrs = f.hdrs;
    rp->f.cap = f.cap;
    rp->in = in;
    rp->in.len = 0;
    rp->head_only = head_only;
    rp->max_bytes = max_bytes;
    rp->max_head = max_head;
    llhttp_init(&rp->parser, HTTP_RESPONSE, &resp_settings);
    rp->parser.data = rp;
}

int http_resp_parse(http_resp_parser *rp)
{
    /* Resumed after a pause: llhttp must run on even with no byte left, to
     * finish a message that ends with its head (Content-Length: 0, 204). */
    bool resumed = false;
    for (;;) {
        if (rp->err)
            return rp->err;
        if (rp->complete)
            return 1;
        if (rp->parsed == rp->in.len && !resumed)
            return 0;
        resumed = false;
        const char *base = rp->in.p + rp->parsed;
        size_t n = rp->in.len - rp->parsed;
        if (!rp->head_done) {
            /* No byte past max_head of a head: one that arrives whole in
             * a single read is bounded too. */
            uint64_t used = rp->parsed - rp->start;
            uint64_t room = used < rp->max_head ? rp->max_head - used : 0;
            if (n > room)
                n = (size_t)room;
        }
        enum llhttp_errno e = llhttp_execute(&rp->parser, base, n);
        if (e == HPE_OK) {
            rp->parsed += (uint32_t)n;
            if (!rp->head_done) {
                if (rp->in.len - rp->start > rp->max_head)
                    rp->err = -EMSGSIZE;
            } else if (rp->parser.flags & F_CHUNKED) {
                uint32_t keep = rp->body.len ? rp->body.off + rp->body.len : rp->head_end;
                int st = http_drop_framing(&rp->in, &rp->parsed, keep, &rp->ck, rp->max_head);
                if (st)
                    rp->err = st == 431 ? -EMSGSIZE : -EPROTO;
            }
            continue;
        }
        if (e == HPE_PAUSED) {
            rp->parsed = (uint32_t)(llhttp_get_error_pos(&rp->parser) - rp->in.p);
            if (rp->complete)
                return 1;
            if (rp->head_done)
                rp->head_end = rp->parsed; /* paused at the end of the head */
            else if ((rp->start = rp->parsed) > rp->max_bytes)
                rp->err = -EMSGSIZE; /* past interim responses, which count too */
            llhttp_resume(&rp->parser);
            resumed = true;
            continue;
        }
        if (!rp->err)
            rp->err = -EPROTO;
        return rp->err;
    }
}

int http_resp_eof(http_resp_parser *rp)
{
    if (rp->err)
        return rp->err;
    if (rp->complete)
        return 1;
    /* A body delimited by the close ends here (llhttp completes it). */
    if (rp->head_done && rp->status >= 200)
        (void)llhttp_finish(&rp->parser);
    if (rp->err)
        return rp->err;
    if (rp->complete) {
        rp->keep_alive = false;
        return 1;
    }
    return -EPIPE;
}

int http_resp_take(http_resp_parser *rp, cio_http_response *out)
{
    memset(out, 0, sizeof(*out));
    uint32_t body_end = rp->body.len ? rp->body.off + rp->body.len : 0;
    if (cio_buf_reserve(&rp->in, 1) < 0) /* room for the NUL after the body */
        return -ENOMEM;
    cio_http_field *h = NULL;
    if (rp->f.n) {
        h = malloc(rp->f.n * sizeof(*h));
        if (!h)
            return -ENOMEM;
    }
    char *p = rp->in.p;
    for (uint32_t i = 0; i < rp->f.n; i++) {
        h[i].name = (cio_str){p + rp->f.hdrs[i].name.off, rp->f.hdrs[i].name.len};
        h[i].value = rp->f.hdrs[i].value.len
                         ? (cio_str){p + rp->f.hdrs[i].value.off, rp->f.hdrs[i].value.len}
                         : (cio_str){"", 0};
    }
    if (rp->body.len) {
        /* Whatever followed the response in the buffer is not needed. */
        p[body_end] = 0;
        out->body = (cio_str){p + rp->body.off, rp->body.len};
    } else {
        out->body = (cio_str){"", 0};
    }
    out->status = rp->status;
    out->version_minor = rp->minor;
    out->headers = h;
    out->nheaders = rp->f.n;
    out->raw_ = p;
    rp->in = (cio_buf){0};
    return 0;
}

void http_resp_fini(http_resp_parser *rp)
{
    free(rp->f.hdrs);
    cio_buf_free(&rp->in);
    rp->f = (http_fields){0};
}

cio_str cio_http_response_header(const cio_http_response *resp, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < resp->nheaders; i++)
        if (http_str_ieq_n(resp->headers[i].name, name, n))
            return resp->headers[i].value;
    return (cio_str){NULL, 0};
}

void cio_http_response_free(cio_http_response *resp)
{
    if (!resp)
        return;
    free(resp->headers);
    free(resp->raw_);
    memset(resp, 0, sizeof(*resp));
}

/* ---- the client ----------------------------------------------------------------- */

/* A connection kept alive, in the client's idle list. */
typedef struct idle_conn {
    cio_list link;
    int fd;
    socklen_t addrlen;
    struct sockaddr_storage addr;
    cio_time since;
} idle_conn;

struct cio_http_client {
    cio_loop *loop;
    cio_http_client_opts o;
    cio_pool *own_resolver; /* started at the first name lookup when o.resolver is NULL */
    cio_list idle;          /* idle_conn, oldest first */
    cio_timer sweep;        /* closes idle connections past the idle timeout */
    cio_http_client_stats st;
    char ua[64];
};

static void idle_close(cio_http_client *c, idle_conn *ic)
{
    cio_list_del(&ic->link);
    close(ic->fd); /* nothing is pending on an idle connection */
    free(ic);
    c->st.idle--;
}

static void sweep_tick(cio_timer *t)
{
    cio_http_client *c = cio_container_of(t, cio_http_client, sweep);
    cio_time now = cio_now();
    while (!cio_list_empty(&c->idle)) {
        idle_conn *ic = cio_container_of(c->idle.next, idle_conn, link);
        if (now - ic->since < c->o.idle_timeout) {
            cio_timer_start(&c->sweep, ic->since + c->o.idle_timeout);
            return;
        }
        idle_close(c, ic);
    }
}

int cio_http_client_create(cio_loop *loop, const cio_http_client_opts *opts,
                           cio_http_client **out)
{
    *out = NULL;
    loop = loop ? loop : cio_loop_current();
    if (!loop)
        return -EINVAL;
    cio_http_client *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->loop = loop;
    if (opts)
        c->o = *opts;
    if (!c->o.max_response_bytes)
        c->o.max_response_bytes = DEF_MAX_RESPONSE;
    if (!c->o.max_header_bytes)
        c->o.max_header_bytes = DEF_MAX_HEAD;
    if (!c->o.max_idle_per_addr)
        c->o.max_idle_per_addr = DEF_IDLE_PER_ADDR;
    if (c->o.idle_timeout <= 0)
        c->o.idle_timeout = DEF_IDLE_TIMEOUT;
    snprintf(c->ua, sizeof(c->ua), "%s", c->o.user_agent ? c->o.user_agent : "corio/" CIO_VERSION);
    c->o.user_agent = c->ua;
    cio_list_init(&c->idle);
    cio_timer_init_weak(&c->sweep, loop, sweep_tick);
    *out = c;
    return 0;
}

int cio_http_client_destroy(cio_http_client *c)
{
    if (!c)
        return 0;
    if (c->st.inflight)
        return -EBUSY;
    cio_timer_stop(&c->sweep);
    while (!cio_list_empty(&c->idle))
        idle_close(c, cio_container_of(c->idle.next, idle_conn, link));
    if (c->own_resolver) {
        /* Shielded: a lookup in progress cannot be interrupted, and its
         * job's memory is in use until it returns. */
        cio_scope s;
        cio_scope_enter(&s, CIO_NEVER, true);
        (void)cio_pool_shutdown(c->own_resolver, CIO_POOL_CANCEL, CIO_NEVER);
        cio_scope_exit(&s);
        cio_pool_destroy(c->own_resolver);
    }
    free(c);
    return 0;
}

void cio_http_client_stats_get(const cio_http_client *c, cio_http_client_stats *out)
{
    *out = c->st;
}

static bool same_addr(const struct sockaddr_storage *a, socklen_t alen,
                      const struct sockaddr *b, socklen_t blen)
{
    return alen == blen && memcmp(a, b, blen) == 0;
}

/* Keeps fd for reuse, within the per-address and overall caps. */
static void idle_put(cio_http_client *c, int fd, const struct sockaddr *addr, socklen_t len)
{
    unsigned same = 0;
    cio_list *n;
    for (n = c->idle.next; n != &c->idle; n = n->next)
        same += same_addr(&cio_container_of(n, idle_conn, link)->addr,
                          cio_container_of(n, idle_conn, link)->addrlen, addr, len);
    idle_conn *ic = NULL;
    if (same < c->o.max_idle_per_addr && c->st.idle < IDLE_MAX)
        ic = malloc(sizeof(*ic));
    if (!ic) {
        close(fd);
        return;
    }
    ic->fd = fd;
    ic->addrlen = len;
    memcpy(&ic->addr, addr, len);
    ic->since = cio_now();
    cio_list_push(&c->idle, &ic->link);
    c->st.idle++;
    if (!cio_timer_armed(&c->sweep))
        cio_timer_start(&c->sweep, ic->since + c->o.idle_timeout);
}

/* A kept-alive connection to addr that is still open, or -1. The newest is
 * taken (the least likely to have been closed by the server). */
static int idle_take(cio_http_client *c, const struct sockaddr *addr, socklen_t len)
{
    for (cio_list *n = c->idle.prev; n != &c->idle;) {
        idle_conn *ic = cio_container_of(n, idle_conn, link);
        n = n->prev;
        if (!same_addr(&ic->addr, ic->addrlen, addr, len))
            continue;
        /* A server that closed it (idle timeout, restart) left an end of
         * stream, or a reset, to find without waiting; bytes nobody asked
         * for also make it unusable. */
        char b;
        ssize_t r = recv(ic->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int fd = ic->fd;
            cio_list_del(&ic->link);
            free(ic);
            c->st.idle--;
            return fd;
        }
        idle_close(c, ic);
    }
    return -1;
}

/* ---- name resolution ------------------------------------------------------------- */

typedef struct lookup {
    cio_job job;
    cio_waiter abandoned; /* the fetch gave up: free once the job is done */
    cio_loop *loop;
    struct addrinfo *res;
    int rc;  /* getaddrinfo's result */
    int err; /* the worker's errno, for EAI_SYSTEM */
    char host[256];
    char port[8];
} lookup;

static const struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                                      .ai_flags = AI_NUMERICSERV};

static intptr_t lookup_run(void *arg)
{
    lookup *l = arg;
    l->rc = getaddrinfo(l->host, l->port, &hints, &l->res);
    l->err = errno; /* errno is the worker thread's own */
    return 0;
}

static void lookup_free(void *arg)
{
    lookup *l = arg;
    if (l->res)
        freeaddrinfo(l->res);
    free(l);
}

static void lookup_done_late(cio_waiter *w, cio_future *f)
{
    (void)f;
    lookup *l = cio_container_of(w, lookup, abandoned);
    /* Not here: the future's owner is still walking its waiters. (Should
     * the post find no memory, the lookup's few hundred bytes leak.) */
    (void)cio_loop_post(l->loop, lookup_free, l);
}

static int gai_errno(int rc, int err)
{
    switch (rc) {
    case 0:
        return 0;
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
    case EAI_ADDRFAMILY:
        return -ENXIO;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return err ? -err : -EIO;
    default:
        return -EIO;
    }
}

/* [awaits] The addresses of host:port into *out (freeaddrinfo). A numeric
 * address is converted at once; a name is looked up on the resolver pool. */
static int resolve(cio_http_client *c, const char *host, uint16_t port, struct addrinfo **out,
                   cio_time deadline)
{
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", port);
    struct addrinfo num = hints;
    num.ai_flags |= AI_NUMERICHOST;
    int rc = getaddrinfo(host, ps, &num, out); /* numeric: does not block */
    if (rc != EAI_NONAME)
        return gai_errno(rc, errno);
    size_t hl = strlen(host);
    if (hl == 0 || hl >= sizeof(((lookup *)0)->host))
        return -EINVAL;
    cio_pool *pool = c->o.resolver;
    if (!pool) {
        if (!c->own_resolver) {
            cio_pool_opts po = {.threads = RESOLVER_THREADS, .queue = 64,
                                .priority = CIO_POOL_PRIO_NORMAL};
            rc = cio_pool_create(c->loop, &c->own_resolver, &po);
            if (rc < 0)
                return rc;
        }
        pool = c->own_resolver;
    }
    lookup *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->loop = c->loop;
    memcpy(l->host, host, hl + 1);
    memcpy(l->port, ps, sizeof(ps));
    rc = cio_pool_submit(pool, &l->job, lookup_run, l, deadline);
    if (rc < 0) {
        free(l);
        return rc;
    }
    c->st.lookups++;
    intptr_t r = cio_await(&l->job.fut, deadline);
    if (!cio_future_done(&l->job.fut)) {
        /* Given up (deadline, cancellation): a queued lookup is dropped, a
         * running one finishes on its own and frees itself. */
        cio_job_cancel(&l->job);
        cio_future_subscribe(&l->job.fut, &l->abandoned, lookup_done_late);
        return (int)r;
    }
    if (r < 0) { /* dropped by a pool shutting down */
        free(l);
        return (int)r;
    }
    rc = gai_errno(l->rc, l->err);
    *out = l->res;
    l->res = NULL;
    free(l);
    return rc;
}

/* ---- fetch -------------------------------------------------------------------------- */

static bool token_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool is_token(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!token_char((unsigned char)s[i]))
            return false;
    return true;
}

/* No control bytes (CR, LF, NUL...) but tab in a value; none and no space in a target. */
static bool clean(const char *s, size_t n, bool space_ok)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch < 0x20 && !(space_ok && ch == '\t')) || ch == 0x7f || (!space_ok && ch == ' '))
            return false;
    }
    return true;
}

static bool idempotent(const char *m)
{
    static const char *const ms[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++)
        if (strcmp(m, ms[i]) == 0)
            return true;
    return false;
}

/* The request head into b. 0, -EINVAL or -ENOMEM. */
static int write_head(cio_http_client *c, const cio_http_request *rq, const char *method,
                      const char *target, cio_buf *b)
{
    size_t ml = strlen(method), tl = strlen(target);
    if (!is_token(method, ml) || tl == 0 || !clean(target, tl, false) || !rq->host ||
        !clean(rq->host, strlen(rq->host), false) || strlen(rq->host) > 255)
        return -EINVAL;
    size_t need = HEAD_MAX + ml + tl + (rq->content_type ? strlen(rq->content_type) : 0);
    for (size_t i = 0; i < rq->nheaders; i++) {
        const cio_http_field *h = &rq->headers[i];
        if (!is_token(h->name.p, h->name.n) || !clean(h->value.p, h->value.n, true) ||
            http_str_ieq_lit(h->name, "host") || http_str_ieq_lit(h->name, "content-length") ||
            http_str_ieq_lit(h->name, "transfer-encoding") ||
            http_str_ieq_lit(h->name, "connection"))
            return -EINVAL;
        need += h->name.n + h->value.n + 4;
    }
    if (rq->content_type && !clean(rq->content_type, strlen(rq->content_type), true))
        return -EINVAL;
    if (cio_buf_reserve(b, need) < 0)
        return -ENOMEM;
    uint16_t port = rq->port ? rq->port : 80;
    bool v6 = strchr(rq->host, ':') != NULL;
    char portpart[8] = "";
    if (port != 80)
        snprintf(portpart, sizeof(portpart), ":%u", port);
    b->len += (size_t)snprintf(b->p + b->len, b->cap - b->len,
                               "%s %s HTTP/1.1\r\nHost: %s%s%s%s\r\nUser-Agent: %s\r\n", method,
                               target, v6 ? "[" : "", rq->host, v6 ? "]" : "", portpart,
                               c->o.user_agent);
    if (rq->content_type)
        b->len += (size_t)snprintf(b->p + b->len, b->cap - b->len, "Content-Type: %s\r\n",
                                   rq->content_type);
    bool body = rq->body_len || !strcmp(method, "POST") || !strcmp(method, "PUT") ||
                !strcmp(method, "PATCH");
    if (body)
        b->len += (size_t)snprintf(b->p + b->len, b->cap - b->len, "Content-Length: %zu\r\n",
                                   rq->body_len);
    for (size_t i = 0; i < rq->nheaders; i++) {
        const cio_http_field *h = &rq->headers[i];
        memcpy(b->p + b->len, h->name.p, h->name.n);
        b->len += h->name.n;
        memcpy(b->p + b->len, ": ", 2);
        memcpy(b->p + b->len + 2, h->value.p, h->value.n);
        b->len += 2 + h->value.n;
        memcpy(b->p + b->len, "\r\n", 2);
        b->len += 2;
    }
    memcpy(b->p + b->len, "\r\n", 2);
    b->len += 2;
    return 0;
}

/* [awaits] A new connection to one of the addresses, each given a share of
 * the time left (so that one that does not answer leaves time for the
 * next). The fd, or the error of the last address tried. */
static int open_conn(cio_http_client *c, const struct addrinfo *ai, const struct addrinfo **used,
                     cio_time deadline)
{
    int err = -EHOSTUNREACH;
    size_t left = 0;
    for (const struct addrinfo *a = ai; a; a = a->ai_next)
        left++;
    for (const struct addrinfo *a = ai; a; a = a->ai_next, left--) {
        cio_time now = cio_now();
        if (now >= deadline)
            return -ETIMEDOUT;
        cio_time share = deadline == CIO_NEVER ? CIO_NEVER : now + (deadline - now) / (cio_time)left;
        int fd = cio_socket(a->ai_family, SOCK_STREAM, 0);
        if (fd == -EMFILE || fd == -ENFILE || fd == -ENOMEM || fd == -ENOBUFS)
            return fd; /* the next address would not fare better */
        if (fd < 0) {
            err = fd; /* e.g. EAFNOSUPPORT: IPv6 off, and ::1 came first */
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        err = cio_connect(fd, a->ai_addr, a->ai_addrlen, share);
        if (err == 0) {
            c->st.connects++;
            *used = a;
            return fd;
        }
        close(fd);
        if (err == -ECANCELED)
            return err;
        if (err == -ETIMEDOUT && cio_now() >= deadline)
            return err;
    }
    return err;
}

/* [awaits] Sends head and body. 0 or -errno. */
static int send_all(int fd, cio_buf *head, const cio_http_request *rq, cio_time deadline)
{
    struct iovec iov[2] = {{head->p, head->len}, {(void *)rq->body, rq->body_len}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = rq->body_len ? 2 : 1};
    for (;;) {
        ssize_t n = cio_sendmsg(fd, &msg, 0, deadline);
        if (n < 0)
            return (int)n;
        while (msg.msg_iovlen && (size_t)n >= msg.msg_iov->iov_len) {
            n -= (ssize_t)msg.msg_iov->iov_len;
            msg.msg_iov++;
            msg.msg_iovlen--;
        }
        if (!msg.msg_iovlen)
            return 0;
        msg.msg_iov->iov_base = (char *)msg.msg_iov->iov_base + n;
        msg.msg_iov->iov_len -= (size_t)n;
    }
}

/* [awaits] Receives and parses until the response is complete. 1, or
 * -errno (-EPIPE/-ECONNRESET: closed before it was complete). *got: some
 * byte arrived. */
static int receive(int fd, http_resp_parser *rp, bool *got, cio_time deadline)
{
    for (;;) {
        char *space = cio_buf_space(&rp->in, READ_SIZE);
        if (!space)
            return -ENOMEM;
        ssize_t n = cio_recv(fd, space, READ_SIZE, 0, deadline);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return http_resp_eof(rp);
        *got = true;
        rp->in.len += (size_t)n;
        int r = http_resp_parse(rp);
        if (r != 0)
            return r;
    }
}

int cio_http_fetch(cio_http_client *c, const cio_http_request *rq, cio_http_response *resp,
                   cio_time deadline)
{
    memset(resp, 0, sizeof(*resp));
    const char *method = rq->method ? rq->method : "GET";
    const char *target = rq->target ? rq->target : "/";
    cio_buf head = {0};
    http_resp_parser rp = {0};
    struct addrinfo *ai = NULL;
    int fd = -1, rc;
    c->st.inflight++;
    rc = write_head(c, rq, method, target, &head);
    if (rc < 0)
        goto out;
    rc = resolve(c, rq->host, rq->port ? rq->port : 80, &ai, deadline);
    if (rc < 0)
        goto out;
    bool retry_ok = idempotent(method);
    for (int attempt = 0;; attempt++) {
        const struct addrinfo *used = NULL;
        bool reused = false;
        if (attempt == 0) {
            for (const struct addrinfo *a = ai; a && fd < 0; a = a->ai_next)
                if ((fd = idle_take(c, a->ai_addr, a->ai_addrlen)) >= 0)
                    used = a;
            reused = fd >= 0;
        }
        if (fd < 0) {
            fd = open_conn(c, ai, &used, deadline);
            if (fd < 0) {
                rc = fd;
                goto out;
            }
        }
        c->st.reuses += reused;
        bool got = false;
        http_resp_init(&rp, !strcmp(method, "HEAD"), c->o.max_response_bytes,
                       c->o.max_header_bytes);
        rc = send_all(fd, &head, rq, deadline);
        if (rc == 0)
            rc = receive(fd, &rp, &got, deadline);
        if (rc == 1) {
            /* Reusable only when nothing followed the response. */
            bool keep = rp.keep_alive && rp.parsed == rp.in.len;
            rc = http_resp_take(&rp, resp);
            if (rc == 0 && keep)
                idle_put(c, fd, used->ai_addr, used->ai_addrlen);
            else
                close(fd);
            fd = -1;
            goto out;
        }
        close(fd);
        fd = -1;
        /* The server had closed the kept-alive connection before it saw
         * the request: once more on a new one. */
        if (reused && !got && retry_ok &&
            (rc == -EPIPE || rc == -ECONNRESET || rc == -ECONNABORTED)) {
            c->st.retries++;
            continue;
        }
        goto out;
    }
out:
    if (fd >= 0)
        close(fd);
    if (ai)
        freeaddrinfo(ai);
    http_resp_fini(&rp);
    cio_buf_free(&head);
    c->st.inflight--;
    if (rc < 0)
        c->st.failures++;
    else
        c->st.requests++;
    return rc < 0 ? rc : 0;
}

int cio_http_get(cio_http_client *c, const char *host, uint16_t port, const char *target,
                 cio_http_response *resp, cio_time deadline)
{
    cio_http_request rq = {.host = host, .port = port, .target = target};
    return cio_http_fetch(c, &rq, resp, deadline);
}
