/*
 * The HTTP/1.1 server on the in-memory transport: parsing, keep-alive,
 * pipelining, limits, timeouts, routing, responses. No sockets: each test
 * feeds bytes to a cio_mem_transport and reads what the server sent back.
 */
#include "../core/harness.h"
#include "cio_http.h"
#include "cio_internal.h"  /* the loop's timer heap, for the ENOMEM test */
#include "http_internal.h" /* a connection's send queue, for the watermark test */

#include <arpa/inet.h>
#include <string.h>

/* ---- a tiny in-memory client ----------------------------------------------------- */

typedef struct exchange {
    const char *input;
    size_t chunk; /* deliver input in pieces of this size (0 = all) */
    bool eof;     /* half-close after the input */
    bool linger;  /* expect_status_and_close: no half-close, so the close lingers (2 s) */
    /* A connection expected to stay open: the exchange waits for this output,
     * then watches `watch` longer for a close (which must not come). Without
     * `until`, the exchange waits for the server to close. */
    const char *until;
    cio_time watch;
    cio_http_opts opts;
    size_t budget; /* a budget of this many bytes for the server (0: none) */
    cio_budget b;
    char out[16384]; /* what the server sent (truncated to fit) */
    size_t out_len;
    bool closed;     /* the server closed the connection */
    bool write_shut; /* ...after half-closing it first (a lingering close) */
} exchange;

static cio_http_server *srv;

static int h_plain(cio_http_req *req, void *ud)
{
    (void)ud;
    return cio_http_respond(req, 200, "text/plain", "Hello, World!", 13);
}

static int h_echo(cio_http_req *req, void *ud)
{
    (void)ud;
    cio_str b = cio_http_body(req);
    return cio_http_respond(req, 200, "application/octet-stream", b.p, b.n);
}

/* A streamed route: reads the body in 7-byte pieces (so that reads end
 * mid-window and mid-chunk), then answers "<n>:<body>" and the request's
 * Host header (its head moved out of the input). A failed read's status is
 * the handler's answer. */
static int h_sum(cio_http_req *req, void *ud)
{
    (void)ud;
    cio_buf got = {0};
    ssize_t n;
    char piece[7];
    ck_assert_int_eq(cio_http_body(req).n, 0); /* streamed: never buffered whole */
    while ((n = cio_http_read(req, piece, sizeof(piece))) > 0)
        ck_assert_int_eq(cio_buf_append(&got, piece, (size_t)n), 0);
    if (n < 0) {
        cio_buf_free(&got);
        return (int)n;
    }
    cio_str host = cio_http_header(req, "Host");
    char *out = cio_arena_printf(cio_http_arena(req), "%zu:%.*s host=%.*s", got.len, (int)got.len,
                                 got.p ? got.p : "", (int)host.n, host.p);
    cio_buf_free(&got);
    return cio_http_respond(req, 200, "text/plain", out, strlen(out));
}

/* A streamed route that starts its response, then reads the body into it
 * (full duplex, as an echo of a large body does). */
static int h_duplex(cio_http_req *req, void *ud)
{
    (void)ud;
    int rc = cio_http_start(req, 200, "text/plain", -1);
    char buf[4];
    ssize_t n;
    while (rc == 0 && (n = cio_http_read(req, buf, sizeof(buf))) > 0)
        rc = cio_http_write(req, buf, (size_t)n);
    return rc ? rc : cio_http_end(req);
}

/* A streamed route that answers without reading the body. */
static int h_unread(cio_http_req *req, void *ud)
{
    (void)ud;
    return cio_http_respond(req, 401, "text/plain", "no", 2);
}

static int h_user(cio_http_req *req, void *ud)
{
    (void)ud;
    cio_str id = cio_http_param(req, "id");
    char *body = cio_arena_printf(cio_http_arena(req), "user %.*s", (int)id.n, id.p);
    return cio_http_respond(req, 200, "text/plain", body, strlen(body));
}

static int h_me(cio_http_req *req, void *ud)
{
    (void)ud;
    return cio_http_respond(req, 200, "text/plain", "me", 2);
}

static int h_slow(cio_http_req *req, void *ud)
{
    (void)ud;
    cio_sleep(CIO_MS(30)); /* awaiting inside a handler */
    return cio_http_respond(req, 200, "text/plain", "slow", 4);
}

static int h_stream(cio_http_req *req, void *ud)
{
    (void)ud;
    int rc = cio_http_start(req, 200, "text/plain", -1);
    for (int i = 0; rc == 0 && i < 3; i++)
        rc = cio_http_write(req, "abc", 3);
    return rc ? rc : cio_http_end(req);
}

static int h_sized(cio_http_req *req, void *ud)
{
    (void)ud;
    int rc = cio_http_start(req, 200, "text/plain", 5);
    rc = rc ? rc : cio_http_write(req, "hello", 5);
    return rc ? rc : cio_http_end(req);
}

static int h_fail(cio_http_req *req, void *ud)
{
    (void)req, (void)ud;
    return -EIO; /* no response: the server answers 500 */
}

static int h_inject(cio_http_req *req, void *ud)
{
    (void)ud;
    int rc = cio_http_add_header(req, "X-Bad", "a\r\nSet-Cookie: evil=1");
    return cio_http_respond(req, rc == -EINVAL ? 200 : 500, "text/plain", "ok", 2);
}

static int h_trailer(cio_http_req *req, void *ud)
{
    (void)ud;
    char *body = cio_arena_printf(cio_http_arena(req), "%s %zu",
                                  cio_http_header(req, "X-T").p ? "present" : "absent",
                                  cio_http_body(req).n);
    return cio_http_respond(req, 200, "text/plain", body, strlen(body));
}

static int h_query(cio_http_req *req, void *ud)
{
    (void)ud;
    cio_str v = cio_http_query_param(req, "b");
    return cio_http_respond(req, 200, "text/plain", v.p ? v.p : "none", v.p ? v.n : 4);
}

/* Waits for something that never comes; records how the wait ended. */
static intptr_t wait_result = 1;
static int h_wait(cio_http_req *req, void *ud)
{
    (void)req, (void)ud;
    cio_event never;
    cio_event_init(&never);
    wait_result = cio_event_wait(&never, CIO_NEVER);
    return (int)wait_result;
}

/* Starts a response, then takes longer than the handler deadline. */
static int h_late_stream(cio_http_req *req, void *ud)
{
    (void)ud;
    int rc = cio_http_start(req, 200, "text/plain", -1);
    rc = rc ? rc : cio_http_write(req, "first ", 6);
    rc = rc ? rc : cio_sleep(CIO_MS(150));
    rc = rc ? rc : cio_http_write(req, "second", 6);
    return rc ? rc : cio_http_end(req);
}

static int h_path(cio_http_req *req, void *ud)
{
    (void)ud;
    cio_str p = cio_http_path(req);
    return cio_http_respond(req, 200, "text/plain", p.p, p.n);
}

/* The X-V header's value, in brackets. */
static int h_header(cio_http_req *req, void *ud)
{
    (void)ud;
    cio_str v = cio_http_header(req, "X-V");
    char *body = cio_arena_printf(cio_http_arena(req), "[%.*s]", (int)v.n, v.p ? v.p : "");
    return cio_http_respond(req, 200, "text/plain", body, strlen(body));
}

/* A protocol to switch to: echoes what it receives, counts its events. */
typedef struct echo_proto {
    cio_transport *t;
    cio_buf pending;
    struct iovec iov;
    char sending[4096];
    bool busy, closing;
    int started, closed, shutdowns, eofs;
} echo_proto;

static echo_proto ep;

static void ep_flush(void)
{
    if (ep.busy || ep.closing || !ep.pending.len)
        return;
    size_t n = ep.pending.len < sizeof(ep.sending) ? ep.pending.len : sizeof(ep.sending);
    memcpy(ep.sending, ep.pending.p, n);
    cio_buf_consume(&ep.pending, n);
    ep.iov = (struct iovec){ep.sending, n};
    ep.busy = ep.t->ops->send(ep.t, &ep.iov, 1) == 0;
}

static void ep_close(void)
{
    if (!ep.closing) {
        ep.closing = true;
        ep.t->ops->close(ep.t);
    }
}

static void ep_start(void *ud, cio_transport *t, uint8_t *data, size_t len)
{
    (void)ud;
    ep.t = t;
    ep.started++;
    if (getenv("T_DUMP"))
        fprintf(stderr, "ep_start %zu [%.*s]\n", len, (int)len, data);
    cio_buf_append(&ep.pending, data, len);
    ep_flush();
}

static void ep_data(void *ud, uint8_t *data, size_t len)
{
    (void)ud;
    if (getenv("T_DUMP"))
        fprintf(stderr, "ep_data %zu [%.*s] busy=%d\n", len, (int)len, data, ep.busy);
    cio_buf_append(&ep.pending, data, len);
    ep_flush();
}

static void ep_eof(void *ud, int err)
{
    (void)ud, (void)err;
    ep.eofs++;
    if (!ep.busy && !ep.pending.len)
        ep_close();
}

static void ep_sent(void *ud, int err)
{
    (void)ud;
    ep.busy = false;
    if (err < 0)
        ep_close();
    ep_flush();
    if (ep.eofs && !ep.busy)
        ep_close();
}

static void ep_closed(void *ud)
{
    (void)ud;
    ep.closed++;
    cio_buf_free(&ep.pending);
}

static void ep_shutdown(void *ud, bool force)
{
    (void)ud, (void)force;
    ep.shutdowns++;
    ep_close();
}

static const cio_http_upgrade_ops echo_ops = {
    .on_start = ep_start,
    .cbs = {.on_data = ep_data, .on_eof = ep_eof, .on_sent = ep_sent, .on_closed = ep_closed},
    .on_shutdown = ep_shutdown,
};

static int h_upgrade(cio_http_req *req, void *ud)
{
    (void)ud;
    cio_http_add_header(req, "X-Proto", "echo");
    return cio_http_upgrade(req, "echo", &echo_ops, &ep);
}

static void add_routes(void)
{
    ck_assert_int_eq(cio_http_route(srv, "GET", "/plaintext", h_plain, NULL), 0);
    ck_assert_int_eq(cio_http_route(srv, "POST", "/echo", h_echo, NULL), 0);
    ck_assert_int_eq(cio_http_route(srv, "GET", "/users/:id", h_user, NULL), 0);
    ck_assert_int_eq(cio_http_route(srv, "GET", "/users/me", h_me, NULL), 0);
    ck_assert_int_eq(cio_http_route(srv, "GET", "/slow", h_slow, NULL), 0);
    ck_assert_int_eq(cio_http_route(srv, "GET", "/stream", h_stream, NULL), 0);
    ck_assert_int_eq(cio_http_route(srv, "GET", "/fail", h_fail, NULL), 0);
    ck_assert_int_eq(cio_http_route(srv, "GET", "/sized", h_sized, NULL), 0);
    ck_assert_int_eq(cio_http_route(srv, "GET", "/inject", h_inject, NULL), 0);
    ck_assert_int_eq(cio_http_route(srv, "GET", "/query", h_query, NULL), 0);
    ck_assert_int_eq(cio_http_route(srv, "POST", "/trailer", h_trailer, NULL), 0);
    ck_assert_int_eq(cio_http_route(srv, "GET", "/", h_plain, NULL), 0);
    ck_assert_int_eq(cio_http_route(srv, "GET", "/wait", h_wait, NULL), 0);
    ck_assert_int_eq(cio_http_route(srv, "GET", "/late", h_late_stream, NULL), 0);
    ck_assert_int_eq(cio_http_route(srv, "GET", "/path/:rest", h_path, NULL), 0);
    ck_assert_int_eq(cio_http_route(srv, "POST", "/query", h_query, NULL), 0);
    ck_assert_int_eq(cio_http_route(srv, "GET", "/header", h_header, NULL), 0);
    ck_assert_int_eq(cio_http_route(srv, "GET", "/upgrade", h_upgrade, NULL), 0);
    ck_assert_int_eq(cio_http_route_stream(srv, "POST", "/sum", h_sum, NULL), 0);
    ck_assert_int_eq(cio_http_route_stream(srv, "POST", "/unread", h_unread, NULL), 0);
    ck_assert_int_eq(cio_http_route_stream(srv, "POST", "/duplex", h_duplex, NULL), 0);
    ck_assert_int_eq(cio_http_route(srv, "GET", "/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/:x", h_path, NULL), 0); /* 32 segments */
}

typedef struct conn_run {
    cio_mem_transport m;
    exchange *x;
} conn_run;

/* Every wait for the server is bounded by this: far more than the work takes
 * even on a loaded machine, and more than a lingering close (2 s). */
#define EXCHANGE_CAP CIO_SEC(4)

static bool sent_contains(const cio_mem_transport *m, const char *s)
{
    return m->out.len > 0 && memmem(m->out.p, m->out.len, s, strlen(s)) != NULL;
}

/* Feeds one exchange and waits until the server closes the connection, or
 * (x->until) until the expected output is in and x->watch has passed. */
static void run_one(conn_run *cr)
{
    exchange *x = cr->x;
    cio_http_conn *c = cio_http_conn_new(srv);
    ck_assert_ptr_nonnull(c);
    cio_mem_transport_init(&cr->m, NULL, cio_http_conn_cbs(), c);
    cr->m.chunk = x->chunk;
    cio_mem_transport_feed(&cr->m, x->input, strlen(x->input));
    if (x->eof)
        cio_mem_transport_feed_eof(&cr->m);
    ck_assert_int_eq(cio_http_conn_start(c, &cr->m.t), 0);
    cio_time cap = cio_clock() + EXCHANGE_CAP, watch_end = CIO_NEVER;
    while (!cr->m.closed) {
        cio_time now = cio_clock();
        if (x->until && watch_end == CIO_NEVER && sent_contains(&cr->m, x->until))
            watch_end = now + x->watch;
        if (now >= watch_end || (watch_end == CIO_NEVER && now >= cap))
            break;
        cio_sleep(CIO_MS(1));
    }
    x->closed = cr->m.closed;
    x->write_shut = cr->m.write_shut;
    x->out_len = cr->m.out.len < sizeof(x->out) - 1 ? cr->m.out.len : sizeof(x->out) - 1;
    if (x->out_len)
        memcpy(x->out, cr->m.out.p, x->out_len);
    x->out[x->out_len] = 0;
    if (getenv("T_DUMP"))
        fprintf(stderr, "---- closed=%d out:\n%s\n----\n", x->closed, x->out);
}

static intptr_t exchange_main(void *arg)
{
    exchange *x = arg;
    if (x->budget) {
        cio_budget_init(&x->b, NULL, x->budget);
        x->opts.budget = &x->b;
    }
    ck_assert_int_eq(cio_http_server_create(NULL, &x->opts, &srv), 0);
    add_routes();
    conn_run cr = {.x = x};
    run_one(&cr);
    int rc = cio_http_server_shutdown(srv, cio_after(CIO_MS(200)));
    /* A request still arriving is waited for until the drain deadline. */
    ck_assert(rc == 0 || (rc == -ETIMEDOUT && !x->closed));
    cio_mem_transport_fini(&cr.m);
    cio_http_server_destroy(srv);
    if (x->budget) {
        ck_assert_uint_eq(x->b.used, 0); /* every connection gave back what it held */
        cio_budget_fini(&x->b);
    }
    return 0;
}

static exchange *run(exchange *x)
{
    if (!x->opts.keepalive_timeout)
        x->opts.keepalive_timeout = CIO_SEC(5);
    t_run(exchange_main, x);
    return x;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

#define GET(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"

/* ---- basics ------------------------------------------------------------------------- */

START_TEST(get_plaintext)
{
    exchange x = {.input = GET("/plaintext"), .eof = true};
    run(&x);
    ck_assert(strncmp(x.out, "HTTP/1.1 200 OK\r\n", 17) == 0);
    ck_assert_ptr_nonnull(strstr(x.out, "\r\nContent-Length: 13\r\n"));
    ck_assert_ptr_nonnull(strstr(x.out, "\r\nContent-Type: text/plain\r\n"));
    ck_assert_ptr_nonnull(strstr(x.out, "\r\nDate: "));
    ck_assert_ptr_nonnull(strstr(x.out, "\r\nServer: corio/"));
    ck_assert(x.out_len > 13 && strcmp(x.out + x.out_len - 17, "\r\n\r\nHello, World!") == 0);
    ck_assert(x.closed); /* after the half-close */
}
END_TEST

START_TEST(keep_alive_serves_requests_in_sequence)
{
    exchange x = {.input = GET("/plaintext") GET("/users/7"),
                  .chunk = 36,
                  .until = "user 7",
                  .watch = CIO_MS(100)};
    run(&x);
    ck_assert_int_eq(count(x.out, "HTTP/1.1 200 OK"), 2);
    ck_assert_ptr_nonnull(strstr(x.out, "user 7"));
    ck_assert(!x.closed); /* kept alive: no EOF, no close */
    ck_assert_ptr_null(strstr(x.out, "Connection: close"));
}
END_TEST

START_TEST(pipelined_requests_answered_in_order)
{
    exchange x = {.input = GET("/users/1") GET("/slow") GET("/users/3") GET("/users/4"),
                  .eof = true};
    run(&x);
    ck_assert_int_eq(count(x.out, "HTTP/1.1 200 OK"), 4);
    char *a = strstr(x.out, "user 1"), *b = strstr(x.out, "slow"), *c = strstr(x.out, "user 3"),
         *d = strstr(x.out, "user 4");
    ck_assert(a && b && c && d && a < b && b < c && c < d);
}
END_TEST

START_TEST(request_split_byte_by_byte)
{
    exchange x = {.input = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
                  .chunk = 1,
                  .eof = true};
    run(&x);
    ck_assert(strncmp(x.out, "HTTP/1.1 200 OK\r\n", 17) == 0);
    ck_assert(strcmp(x.out + x.out_len - 5, "hello") == 0);
}
END_TEST

static uint64_t idle_count(void)
{
    cio_http_stats st;
    cio_http_server_stats(srv, &st);
    return st.idle;
}

/* Regression: an idle connection (no per-request state left) ignored the
 * peer's end of stream and stayed open until the keep-alive timeout. */
static intptr_t idle_then_eof_main(void *arg)
{
    exchange *x = arg;
    ck_assert_int_eq(cio_http_server_create(NULL, &x->opts, &srv), 0);
    add_routes();
    conn_run cr = {.x = x};
    cio_http_conn *c = cio_http_conn_new(srv);
    cio_mem_transport_init(&cr.m, NULL, cio_http_conn_cbs(), c);
    cio_mem_transport_feed(&cr.m, GET("/plaintext"), strlen(GET("/plaintext")));
    cio_http_conn_start(c, &cr.m.t);
    /* answered, now idle */
    ck_assert(T_AWAIT(sent_contains(&cr.m, "Hello, World!") && idle_count() == 1, T_PATIENCE_MS));
    cio_mem_transport_feed_eof(&cr.m);
    ck_assert(T_AWAIT(cr.m.closed, T_PATIENCE_MS));
    x->closed = cr.m.closed;
    cio_http_server_shutdown(srv, cio_after(CIO_SEC(1)));
    cio_mem_transport_fini(&cr.m);
    cio_http_server_destroy(srv);
    return 0;
}

START_TEST(idle_connection_closes_on_peer_eof)
{
    exchange x = {.opts = {.keepalive_timeout = CIO_SEC(60)}};
    t_run(idle_then_eof_main, &x);
    ck_assert(x.closed);
}
END_TEST

START_TEST(http10_closes_by_default)
{
    exchange x = {.input = "GET /plaintext HTTP/1.0\r\n\r\n"};
    run(&x);
    ck_assert_ptr_nonnull(strstr(x.out, "Connection: close\r\n"));
    ck_assert(x.closed);
}
END_TEST

START_TEST(http10_keep_alive_on_request)
{
    exchange x = {.input = "GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                  .until = "Hello, World!",
                  .watch = CIO_MS(50)};
    run(&x);
    ck_assert_ptr_nonnull(strstr(x.out, "Connection: keep-alive\r\n"));
    ck_assert(!x.closed);
}
END_TEST

START_TEST(connection_close_closes)
{
    /* The second request is never read: the close lingers (2 s) first. */
    exchange x = {.input = "GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" GET(
                      "/plaintext")};
    run(&x);
    ck_assert_int_eq(count(x.out, "HTTP/1.1 200"), 1); /* nothing after the close */
    ck_assert_ptr_nonnull(strstr(x.out, "Connection: close\r\n"));
    ck_assert(x.closed);
}
END_TEST

START_TEST(head_has_length_but_no_body)
{
    exchange x = {.input = "HEAD /plaintext HTTP/1.1\r\nHost: t\r\n\r\n", .eof = true};
    run(&x);
    ck_assert_ptr_nonnull(strstr(x.out, "Content-Length: 13\r\n"));
    ck_assert(strcmp(x.out + x.out_len - 4, "\r\n\r\n") == 0);
}
END_TEST

/* ---- routing ---------------------------------------------------------------------------- */

START_TEST(unknown_path_is_404)
{
    exchange x = {.input = GET("/nowhere"), .eof = true};
    run(&x);
    ck_assert(strncmp(x.out, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
}
END_TEST

START_TEST(wrong_method_is_405_with_allow)
{
    exchange x = {.input = "DELETE /plaintext HTTP/1.1\r\nHost: t\r\n\r\n", .eof = true};
    run(&x);
    ck_assert(strncmp(x.out, "HTTP/1.1 405 Method Not Allowed\r\n", 33) == 0);
    ck_assert_ptr_nonnull(strstr(x.out, "\r\nAllow: GET, HEAD\r\n"));
}
END_TEST

START_TEST(path_parameters_and_literal_precedence)
{
    exchange x = {.input = GET("/users/42") GET("/users/me") GET("/users/"), .eof = true};
    run(&x);
    ck_assert_ptr_nonnull(strstr(x.out, "user 42"));
    ck_assert_ptr_nonnull(strstr(x.out, "\r\n\r\nme"));
    ck_assert_int_eq(count(x.out, "404 Not Found\r\n"), 1); /* empty parameter */
}
END_TEST

START_TEST(query_parameters)
{
    exchange x = {.input = GET("/query?a=1&b=two&c") GET("/query?a=1"), .eof = true};
    run(&x);
    ck_assert_ptr_nonnull(strstr(x.out, "\r\n\r\ntwo"));
    ck_assert_ptr_nonnull(strstr(x.out, "\r\n\r\nnone"));
}
END_TEST

START_TEST(absolute_form_and_options_star)
{
    exchange x = {.input = "GET http://t/plaintext HTTP/1.1\r\nHost: t\r\n\r\n"
                           "OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n",
                  .eof = true};
    run(&x);
    ck_assert(strncmp(x.out, "HTTP/1.1 200 OK", 15) == 0);
    ck_assert_ptr_nonnull(strstr(x.out, "HTTP/1.1 204 No Content"));
}
END_TEST

/* ---- bodies ------------------------------------------------------------------------------- */

START_TEST(content_length_body)
{
    exchange x = {.input =
                      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world",
                  .eof = true};
    run(&x);
    ck_assert_ptr_nonnull(strstr(x.out, "Content-Length: 11\r\n\r\nhello world"));
}
END_TEST

START_TEST(chunked_body_is_dechunked)
{
    exchange x = {.input = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n" GET("/users/9"),
                  .chunk = 7,
                  .eof = true};
    run(&x);
    ck_assert_ptr_nonnull(strstr(x.out, "Content-Length: 11\r\n\r\nhello world"));
    ck_assert_ptr_nonnull(strstr(x.out, "user 9"));
}
END_TEST

/* Regression: trailer fields were merged into the headers and counted, with
 * the whole body, against max_header_bytes. */
START_TEST(trailers_are_not_headers)
{
    static char in[4096];
    char chunk[2001];
    memset(chunk, 'c', 2000);
    chunk[2000] = 0;
    snprintf(in, sizeof(in),
             "POST /trailer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
             "7d0\r\n%s\r\n0\r\nX-T: 1\r\n\r\n",
             chunk);
    exchange x = {.input = in, .eof = true, .opts = {.max_header_bytes = 1024}};
    run(&x);
    ck_assert_msg(strncmp(x.out, "HTTP/1.1 200 ", 13) == 0, "got %.40s", x.out);
    ck_assert_ptr_nonnull(strstr(x.out, "\r\n\r\nabsent 2000"));
}
END_TEST

START_TEST(options_star_lists_the_routes_methods)
{
    exchange x = {.input = "OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", .eof = true};
    run(&x);
    ck_assert_ptr_nonnull(strstr(x.out, "\r\nAllow: GET, HEAD, POST\r\n"));
}
END_TEST

START_TEST(expect_100_continue)
{
    exchange x = {.input = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n"
                           "Expect: 100-continue\r\n\r\n",
                  .until = "\r\n\r\n",
                  .watch = CIO_MS(50)};
    run(&x);
    ck_assert_str_eq(x.out, "HTTP/1.1 100 Continue\r\n\r\n"); /* and now waits for the body */
    ck_assert(!x.closed);
}
END_TEST

START_TEST(unknown_expectation_is_417)
{
    exchange x = {.input = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n"
                           "Expect: teapot\r\n\r\nhi",
                  .until = "\r\n\r\n"};
    run(&x);
    ck_assert(strncmp(x.out, "HTTP/1.1 417 ", 13) == 0);
}
END_TEST

/* ---- limits and bad input -------------------------------------------------------------------- */

/* The client half-closes after its input (as curl and browsers do once they
 * got an answer), so the server's lingering close ends at once; unless
 * x->linger: then the server discards input for 2 s before it closes. */
static void expect_status_and_close(exchange *x, const char *status_line)
{
    x->eof = !x->linger;
    run(x);
    ck_assert_msg(strncmp(x->out, status_line, strlen(status_line)) == 0, "got: %.60s", x->out);
    ck_assert_ptr_nonnull(strstr(x->out, "Connection: close\r\n"));
    ck_assert(x->closed);
}

START_TEST(body_too_large_is_413_before_reading_it)
{
    exchange x = {.input = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n"
                           "Expect: 100-continue\r\n\r\n",
                  .opts = {.max_body_bytes = 10}};
    expect_status_and_close(&x, "HTTP/1.1 413 ");
    ck_assert_ptr_null(strstr(x.out, "100 Continue")); /* no invitation to send it */
}
END_TEST

START_TEST(chunked_body_too_large_is_413)
{
    exchange x = {.input = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "20\r\n0123456789abcdef0123456789abcdef\r\n0\r\n\r\n",
                  .opts = {.max_body_bytes = 10}};
    expect_status_and_close(&x, "HTTP/1.1 413 ");
}
END_TEST

START_TEST(headers_too_large_is_431)
{
    char big[3000];
    snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: t\r\nX-Big: %02000d\r\n\r\n", 7);
    exchange x = {.input = big, .opts = {.max_header_bytes = 1024}};
    expect_status_and_close(&x, "HTTP/1.1 431 ");
}
END_TEST

START_TEST(partial_huge_header_is_431_without_waiting)
{
    char big[3000];
    snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: t\r\nX-Big: %02000d", 7);
    exchange x = {.input = big, .opts = {.max_header_bytes = 1024, .header_timeout = CIO_SEC(60)}};
    expect_status_and_close(&x, "HTTP/1.1 431 ");
}
END_TEST

START_TEST(uri_too_long_is_414)
{
    char big[3000];
    snprintf(big, sizeof(big), "GET /%01000d HTTP/1.1\r\nHost: t\r\n\r\n", 7);
    exchange x = {.input = big, .opts = {.max_uri_bytes = 256}};
    expect_status_and_close(&x, "HTTP/1.1 414 ");
}
END_TEST

START_TEST(huge_trailer_is_431)
{
    static char in[8192];
    char big[3001];
    memset(big, 't', 3000);
    big[3000] = 0;
    snprintf(in, sizeof(in),
             "POST /trailer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
             "1\r\nx\r\n0\r\nX-T: %s\r\n\r\n",
             big);
    exchange x = {.input = in, .opts = {.max_header_bytes = 1024}};
    expect_status_and_close(&x, "HTTP/1.1 431 ");
}
END_TEST

START_TEST(content_length_with_transfer_encoding_is_400)
{
    exchange x = {.input = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"};
    expect_status_and_close(&x, "HTTP/1.1 400 ");
}
END_TEST

START_TEST(duplicate_content_length_is_400)
{
    exchange x = {.input = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                           "Content-Length: 5\r\n\r\nhello"};
    expect_status_and_close(&x, "HTTP/1.1 400 ");
}
END_TEST

START_TEST(invalid_content_length_is_400)
{
    exchange x = {.input = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1x\r\n\r\nhello"};
    expect_status_and_close(&x, "HTTP/1.1 400 ");
}
END_TEST

START_TEST(obsolete_line_folding_is_400)
{
    exchange x = {.input = "GET / HTTP/1.1\r\nHost: t\r\nX-A: one\r\n two\r\n\r\n"};
    expect_status_and_close(&x, "HTTP/1.1 400 ");
}
END_TEST

START_TEST(missing_host_is_400)
{
    exchange x = {.input = "GET / HTTP/1.1\r\n\r\n"};
    expect_status_and_close(&x, "HTTP/1.1 400 ");
}
END_TEST

START_TEST(garbage_is_400)
{
    exchange x = {.input = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"};
    expect_status_and_close(&x, "HTTP/1.1 400 ");
}
END_TEST

START_TEST(other_http_version_is_505)
{
    exchange x = {.input = "GET / HTTP/2.0\r\nHost: t\r\n\r\n"};
    run(&x);
    ck_assert(strncmp(x.out, "HTTP/1.1 505 ", 13) == 0 || strncmp(x.out, "HTTP/1.1 400 ", 13) == 0);
    ck_assert(x.closed);
}
END_TEST

START_TEST(error_close_lingers_until_the_peer_is_done)
{
    /* No half-close: the server discards input for 2 s, then closes. */
    exchange x = {.input = "BAD\r\n\r\n", .linger = true};
    cio_time t0 = cio_clock();
    expect_status_and_close(&x, "HTTP/1.1 400 ");
    ck_assert_int_ge(cio_clock() - t0, CIO_MS(1900));
}
END_TEST

START_TEST(input_after_an_error_is_ignored)
{
    exchange x = {.input = "BAD\r\n\r\n" GET("/plaintext")};
    expect_status_and_close(&x, "HTTP/1.1 400 ");
    ck_assert_int_eq(count(x.out, "HTTP/1.1"), 1);
}
END_TEST

/* ---- timeouts ----------------------------------------------------------------------------------
 */

START_TEST(slow_head_is_408)
{
    exchange x = {.input = "GET /plaintext HTTP/1.1\r\nHost: t\r\n", /* never finished */
                  .opts = {.header_timeout = CIO_MS(50)},
                  .linger = true};
    expect_status_and_close(&x, "HTTP/1.1 408 ");
}
END_TEST

START_TEST(slow_body_is_408)
{
    exchange x = {.input = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhal",
                  .opts = {.body_timeout = CIO_MS(50)},
                  .linger = true};
    expect_status_and_close(&x, "HTTP/1.1 408 ");
}
END_TEST

START_TEST(idle_keep_alive_closes_silently)
{
    exchange x = {.input = GET("/plaintext"), .opts = {.keepalive_timeout = CIO_MS(50)}};
    run(&x);
    ck_assert_int_eq(count(x.out, "HTTP/1.1"), 1);
    ck_assert(x.closed);
}
END_TEST

START_TEST(silent_connection_is_closed_after_header_timeout)
{
    exchange x = {.input = "", .opts = {.header_timeout = CIO_MS(50)}};
    run(&x);
    ck_assert_int_eq(x.out_len, 0);
    ck_assert(x.closed);
}
END_TEST

START_TEST(max_requests_per_connection)
{
    exchange x = {.input = GET("/users/1") GET("/users/2") GET("/users/3"),
                  .opts = {.max_requests_per_conn = 2}};
    run(&x);
    ck_assert_int_eq(count(x.out, "HTTP/1.1 200"), 2);
    ck_assert_int_eq(count(x.out, "Connection: close"), 1);
    ck_assert(strstr(x.out, "user 2") > strstr(x.out, "Connection: close"));
    ck_assert(x.closed);
}
END_TEST

/* ---- responses
 * ------------------------------------------------------------------------------------- */

START_TEST(streamed_response_is_chunked)
{
    exchange x = {.input = GET("/stream"), .eof = true};
    run(&x);
    ck_assert_ptr_nonnull(strstr(x.out, "Transfer-Encoding: chunked\r\n"));
    ck_assert_ptr_nonnull(strstr(x.out, "\r\n\r\n3\r\nabc\r\n3\r\nabc\r\n3\r\nabc\r\n0\r\n\r\n"));
}
END_TEST

START_TEST(streamed_response_to_http10_is_close_delimited)
{
    exchange x = {.input = "GET /stream HTTP/1.0\r\n\r\n"};
    run(&x);
    ck_assert_ptr_null(strstr(x.out, "chunked"));
    ck_assert(strcmp(x.out + x.out_len - 13, "\r\n\r\nabcabcabc") == 0);
    ck_assert(x.closed);
}
END_TEST

/* Regression: a HEAD of a streamed response with a Content-Length counted
 * the unsent body as truncated and closed the connection. */
START_TEST(head_of_sized_stream_keeps_the_connection)
{
    exchange x = {.input = "HEAD /sized HTTP/1.1\r\nHost: t\r\n\r\n" GET("/sized"),
                  .until = "hello",
                  .watch = CIO_MS(100)};
    run(&x);
    ck_assert_int_eq(count(x.out, "HTTP/1.1 200 OK"), 2);
    ck_assert_int_eq(count(x.out, "Content-Length: 5\r\n"), 2);
    ck_assert_int_eq(count(x.out, "hello"), 1);
    ck_assert_ptr_null(strstr(x.out, "Connection: close"));
    ck_assert(!x.closed);
}
END_TEST

START_TEST(handler_error_without_response_is_500)
{
    exchange x = {.input = GET("/fail") GET("/plaintext"), .linger = true};
    expect_status_and_close(&x, "HTTP/1.1 500 ");
}
END_TEST

START_TEST(header_injection_is_refused)
{
    exchange x = {.input = GET("/inject"), .eof = true};
    run(&x);
    ck_assert(strncmp(x.out, "HTTP/1.1 200 ", 13) == 0);
    ck_assert_ptr_null(strstr(x.out, "evil"));
}
END_TEST

START_TEST(upgrade_request_is_answered_then_closed)
{
    exchange x = {.input = "GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
                           "Upgrade: websocket\r\n\r\n\x81\x85garbage"};
    run(&x);
    ck_assert(strncmp(x.out, "HTTP/1.1 200 ", 13) == 0);
    ck_assert(x.closed);
}
END_TEST

/* ---- concurrency
 * --------------------------------------------------------------------------------------- */

static intptr_t run_one_task(void *arg)
{
    run_one(arg);
    return 0;
}

static intptr_t two_conns(void *arg)
{
    exchange *xs = arg;
    cio_http_opts o = {.keepalive_timeout = CIO_SEC(5)};
    ck_assert_int_eq(cio_http_server_create(NULL, &o, &srv), 0);
    add_routes();
    conn_run a = {.x = &xs[0]}, b = {.x = &xs[1]};
    cio_group g;
    cio_group_init(&g, CIO_NEVER);
    cio_group_spawn(&g, NULL, run_one_task, &a);
    cio_group_spawn(&g, NULL, run_one_task, &b);
    cio_group_wait(&g);
    cio_http_server_shutdown(srv, cio_after(CIO_SEC(2)));
    cio_mem_transport_fini(&a.m);
    cio_mem_transport_fini(&b.m);
    cio_http_server_destroy(srv);
    return 0;
}

START_TEST(slow_handler_does_not_block_other_connections)
{
    exchange xs[2] = {{.input = GET("/slow"), .eof = true},
                      {.input = GET("/plaintext"), .eof = true}};
    t_run(two_conns, xs);
    ck_assert_ptr_nonnull(strstr(xs[0].out, "slow"));
    ck_assert_ptr_nonnull(strstr(xs[1].out, "Hello, World!"));
}
END_TEST

/* ---- strict framing (issue 6) ------------------------------------------------------------ */

/* Regression: llhttp was built lenient, so a bare CR ended the head and
 * swallowed the next byte: this was served as two requests (smuggling). */
START_TEST(bare_cr_does_not_smuggle_a_second_request)
{
    exchange x = {.input = "GET /plaintext HTTP/1.1\r\nHost: a\r\n\rZGET /users/5 HTTP/1.1\r\n"
                           "Host: a\r\n\r\n"};
    expect_status_and_close(&x, "HTTP/1.1 400 ");
    ck_assert_int_eq(count(x.out, "HTTP/1.1 "), 1);
    ck_assert_ptr_null(strstr(x.out, "user 5"));
}
END_TEST

START_TEST(bare_cr_before_content_length_is_400)
{
    exchange x = {.input =
                      "POST /echo HTTP/1.1\r\nHost: a\r\nX-A: b\rContent-Length: 5\r\n\r\nhello"};
    expect_status_and_close(&x, "HTTP/1.1 400 ");
}
END_TEST

START_TEST(bare_lf_line_ends_are_400)
{
    exchange x = {.input = "GET /plaintext HTTP/1.1\nHost: a\n\n"};
    expect_status_and_close(&x, "HTTP/1.1 400 ");
}
END_TEST

/* Regression: llhttp 8.1 accepts an empty field name even in strict mode. */
START_TEST(empty_field_name_is_400)
{
    exchange x = {.input = "GET /plaintext HTTP/1.1\r\n: Bar\r\nHost: a\r\n\r\n"};
    expect_status_and_close(&x, "HTTP/1.1 400 ");
}
END_TEST

START_TEST(empty_trailer_name_is_400)
{
    exchange x = {.input = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "1\r\nx\r\n0\r\n: v\r\n\r\n"};
    expect_status_and_close(&x, "HTTP/1.1 400 ");
}
END_TEST

START_TEST(whitespace_before_colon_is_400)
{
    exchange x = {.input = "GET /plaintext HTTP/1.1\r\nHost: a\r\nX-Any : b\r\n\r\n"};
    expect_status_and_close(&x, "HTTP/1.1 400 ");
}
END_TEST

START_TEST(space_inside_field_name_is_400)
{
    exchange x = {.input = "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer- Encoding: chunked\r\n\r\n"
                           "0\r\n\r\n"};
    expect_status_and_close(&x, "HTTP/1.1 400 ");
}
END_TEST

START_TEST(control_bytes_in_target_are_400)
{
    exchange x = {.input = "GET /plain\ttext HTTP/1.1\r\nHost: a\r\n\r\n"};
    expect_status_and_close(&x, "HTTP/1.1 400 ");
    exchange y = {.input = "GET /plain\x01text HTTP/1.1\r\nHost: a\r\n\r\n"};
    expect_status_and_close(&y, "HTTP/1.1 400 ");
}
END_TEST

/* Regression: Content-Length plus an empty Transfer-Encoding was answered
 * 200 on a kept-alive connection (RFC 9112 6.1: faulty framing). */
START_TEST(content_length_with_empty_transfer_encoding_is_400)
{
    exchange x = {.input = "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n"
                           "Transfer-Encoding:\r\n\r\n0123456789" GET("/users/1")};
    expect_status_and_close(&x, "HTTP/1.1 400 ");
    ck_assert_ptr_null(strstr(x.out, "user 1"));
}
END_TEST

START_TEST(transfer_encoding_in_http10_is_400)
{
    exchange x = {.input = "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "5\r\nhello\r\n0\r\n\r\n"};
    expect_status_and_close(&x, "HTTP/1.1 400 ");
}
END_TEST

START_TEST(unknown_method_is_501)
{
    exchange x = {.input = "QUERY /plaintext HTTP/1.1\r\nHost: a\r\n\r\n"};
    expect_status_and_close(&x, "HTTP/1.1 501 ");
}
END_TEST

START_TEST(http09_is_refused)
{
    exchange x = {.input = "GET /plaintext\r\n\r\n"};
    expect_status_and_close(&x, "HTTP/1.1 505 ");
}
END_TEST

/* ---- bounded input while a body streams ------------------------------------------------ */

/* Regression (the class of CVE-2024-22019): a chunk extension was kept
 * until the message ended, however long. */
START_TEST(long_chunk_extension_is_400)
{
    static char in[200 * 1024];
    int n = snprintf(in, sizeof(in),
                     "POST /echo HTTP/1.1\r\nHost: t\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n1;x=");
    memset(in + n, 'a', sizeof(in) - (size_t)n - 1);
    exchange x = {.input = in, .chunk = 16384};
    expect_status_and_close(&x, "HTTP/1.1 400 ");
}
END_TEST

START_TEST(leading_zeros_in_chunk_size_are_bounded)
{
    static char in[64 * 1024];
    int n = snprintf(in, sizeof(in),
                     "POST /echo HTTP/1.1\r\nHost: t\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n");
    memset(in + n, '0', 20000);
    strcpy(in + n + 20000, "1\r\na\r\n0\r\n\r\n");
    exchange x = {.input = in, .chunk = 4096};
    expect_status_and_close(&x, "HTTP/1.1 400 ");
}
END_TEST

/* The bound is per chunk header: many chunks with extensions whose total is
 * far above the bound are fine. */
START_TEST(many_chunks_with_extensions_are_fine)
{
    static char in[256 * 1024], want[2048];
    int n = snprintf(in, sizeof(in),
                     "POST /echo HTTP/1.1\r\nHost: t\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 1000; i++)
        n += snprintf(in + n, sizeof(in) - (size_t)n, "1;name=%0100d\r\n%c\r\n", i, 'a' + i % 26);
    snprintf(in + n, sizeof(in) - (size_t)n, "0\r\n\r\n");
    for (int i = 0; i < 1000; i++)
        want[i] = (char)('a' + i % 26);
    exchange x = {.input = in, .chunk = 1000, .eof = true};
    run(&x);
    ck_assert_msg(strncmp(x.out, "HTTP/1.1 200 ", 13) == 0, "got %.60s", x.out);
    ck_assert_ptr_nonnull(strstr(x.out, "Content-Length: 1000\r\n"));
    ck_assert(x.out_len >= 1000 && memcmp(x.out + x.out_len - 1000, want, 1000) == 0);
}
END_TEST

/* ---- handlers that stop when nobody waits ----------------------------------------------- */

START_TEST(handler_deadline_answers_503)
{
    exchange x = {.input = GET("/wait"), .opts = {.handler_timeout = CIO_MS(50)}, .linger = true};
    expect_status_and_close(&x, "HTTP/1.1 503 ");
    ck_assert_int_eq(count(x.out, "HTTP/1.1 "), 1);
}
END_TEST

/* The deadline ends where the response starts: a long stream goes on. */
START_TEST(handler_deadline_stops_at_the_response)
{
    exchange x = {.input = GET("/late"),
                  .opts = {.handler_timeout = CIO_MS(50)},
                  .until = "0\r\n\r\n",
                  .watch = CIO_MS(10)};
    run(&x);
    ck_assert_msg(strncmp(x.out, "HTTP/1.1 200 ", 13) == 0, "got %.60s", x.out);
    ck_assert_ptr_nonnull(strstr(x.out, "first \r\n6\r\nsecond\r\n0\r\n\r\n"));
}
END_TEST

static intptr_t client_gone_main(void *arg)
{
    exchange *x = arg;
    wait_result = 1;
    run(x);
    return wait_result;
}

/* Regression: a request whose client had gone went on (its handler waited,
 * a pool job ran) until it finished on its own. */
START_TEST(client_end_of_stream_cancels_the_handler)
{
    exchange x = {.input = GET("/wait"), .eof = true};
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    ck_assert_int_eq(cio_run(l, client_gone_main, &x), -ECANCELED);
    cio_loop_destroy(l);
    ck_assert(x.closed);
    ck_assert_int_eq(x.out_len, 0); /* nobody to answer */
}
END_TEST

/* ---- one path for routes and files ------------------------------------------------------ */

START_TEST(routes_match_the_decoded_normalised_path)
{
    exchange x = {.input = GET("/%70laintext") GET("//plaintext") GET("/users/../plaintext")
                      GET("/users//7") GET("/./users/%38"),
                  .eof = true};
    run(&x);
    ck_assert_int_eq(count(x.out, "Hello, World!"), 3);
    ck_assert_ptr_nonnull(strstr(x.out, "user 7"));
    ck_assert_ptr_nonnull(strstr(x.out, "user 8"));
    ck_assert_int_eq(count(x.out, "HTTP/1.1 200 "), 5);
}
END_TEST

START_TEST(path_parameters_are_decoded)
{
    exchange x = {.input = GET("/users/%C3%A9t%C3%A9") GET("/path/a%20b"), .eof = true};
    run(&x);
    ck_assert_ptr_nonnull(strstr(x.out, "user \xC3\xA9t\xC3\xA9"));
    ck_assert_ptr_nonnull(strstr(x.out, "\r\n\r\n/path/a b"));
}
END_TEST

/* Paths are split into at most 32 segments once per request: a route of
 * 32 matches, a path of 33 finds none, and a route of 33 is refused. */
START_TEST(routes_have_at_most_32_segments)
{
    ck_assert_int_eq(cio_http_route(srv, "GET", "/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/:x/y", h_path, NULL), -EINVAL);
    exchange x = {.input = GET("/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/last") GET("/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/last/z"), .eof = true};
    run(&x);
    ck_assert_ptr_nonnull(strstr(x.out, "\r\n\r\n/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/last"));
    ck_assert_int_eq(count(x.out, "404 Not Found\r\n"), 1);
}
END_TEST

/* A second route for the same paths would never run: refused. */
static intptr_t dup_routes(void *arg)
{
    (void)arg;
    cio_http_server *s;
    ck_assert_int_eq(cio_http_server_create(NULL, NULL, &s), 0);
    ck_assert_int_eq(cio_http_route(s, "GET", "/dup/:a/x", h_path, NULL), 0);
    ck_assert_int_eq(cio_http_route(s, "GET", "/dup/:b/x", h_path, NULL), -EEXIST);
    ck_assert_int_eq(cio_http_route_stream(s, "GET", "/dup/:a/x", h_path, NULL), -EEXIST);
    ck_assert_int_eq(cio_http_route(s, "POST", "/dup/:a/x", h_path, NULL), 0);
    ck_assert_int_eq(cio_http_route(s, "GET", "/dup/y/x", h_path, NULL), 0);
    ck_assert_int_eq(cio_http_route(s, "GET", "/dup/:a", h_path, NULL), 0);
    ck_assert_int_eq(cio_http_server_shutdown(s, cio_now()), 0);
    cio_http_server_destroy(s);
    return 0;
}

START_TEST(routes_for_the_same_paths_are_refused)
{
    cio_loop *loop;
    ck_assert_int_eq(cio_loop_create(&loop, NULL), 0);
    ck_assert_int_eq(cio_run(loop, dup_routes, NULL), 0);
    cio_loop_destroy(loop);
}
END_TEST

/* ---- the PROXY protocol header ------------------------------------------------------ */

static int proxy(const char *p, size_t n, uint8_t *family, char *text)
{
    uint8_t addr[16];
    *family = 99;
    int r = http_proxy_parse((const uint8_t *)p, n, family, addr);
    text[0] = 0;
    if (r > 0 && *family)
        inet_ntop(*family, addr, text, 64);
    return r;
}

START_TEST(proxy_v1_headers)
{
    uint8_t f;
    char t[64];
    static const char v4[] = "PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\nGET";
    ck_assert_int_eq(proxy(v4, sizeof(v4) - 1, &f, t), (int)sizeof(v4) - 1 - 3);
    ck_assert_int_eq(f, AF_INET);
    ck_assert_str_eq(t, "203.0.113.7");
    static const char v6[] = "PROXY TCP6 2001:db8::7 2001:db8::1 5555 443\r\n";
    ck_assert_int_eq(proxy(v6, sizeof(v6) - 1, &f, t), (int)sizeof(v6) - 1);
    ck_assert_int_eq(f, AF_INET6);
    ck_assert_str_eq(t, "2001:db8::7");
    static const char unk[] = "PROXY UNKNOWN\r\n";
    ck_assert_int_eq(proxy(unk, sizeof(unk) - 1, &f, t), (int)sizeof(unk) - 1);
    ck_assert_int_eq(f, 0); /* the connection's own address stands */
    /* every prefix of a header needs more, none is refused */
    for (size_t k = 1; k < sizeof(v4) - 4; k++)
        ck_assert_int_eq(proxy(v4, k, &f, t), 0);
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\n\r\n",
        "PROXY TCP4 203.0.113.7 10.0.0.1 5555\r\n",       /* a port missing */
        "PROXY TCP4 2001:db8::7 10.0.0.1 5555 80\r\n",     /* not IPv4 */
        "PROXY TCP4 203.0.113.7 10.0.0.1 5555 99999\r\n", /* port range */
        "PROXY UDP4 203.0.113.7 10.0.0.1 5555 80\r\n",
        "PROXY TCP4 203.0.113.7 10.0.0.1 5555 80 x\r\n", /* trailing bytes */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(proxy(bad[i], strlen(bad[i]), &f, t) == -1, "accepted %s", bad[i]);
    /* a v1 line never ends: refused once past the longest there can be */
    char endless[200];
    memset(endless, 'x', sizeof(endless));
    memcpy(endless, "PROXY TCP4 ", 11);
    ck_assert_int_eq(proxy(endless, sizeof(endless), &f, t), -1);
}
END_TEST

START_TEST(proxy_v2_headers)
{
    uint8_t f;
    char t[64];
    static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                    0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
    uint8_t h[16 + 36 + 8];
    memcpy(h, sig, 12);
    h[12] = 0x21; /* v2, PROXY */
    h[13] = 0x11; /* TCP over IPv4 */
    h[14] = 0, h[15] = 12;
    const uint8_t a4[12] = {198, 51, 100, 9, 10, 0, 0, 1, 0x15, 0xb3, 0, 80};
    memcpy(h + 16, a4, 12);
    ck_assert_int_eq(proxy((char *)h, 28, &f, t), 28);
    ck_assert_int_eq(f, AF_INET);
    ck_assert_str_eq(t, "198.51.100.9");
    for (size_t k = 1; k < 28; k++)
        ck_assert_int_eq(proxy((char *)h, k, &f, t), 0);
    h[13] = 0x21; /* TCP over IPv6 */
    h[15] = 36;
    memset(h + 16, 0, 36);
    h[16] = 0x20, h[17] = 0x01, h[18] = 0x0d, h[19] = 0xb8, h[31] = 9;
    ck_assert_int_eq(proxy((char *)h, 52, &f, t), 52);
    ck_assert_str_eq(t, "2001:db8::9");
    h[12] = 0x20; /* LOCAL: a health check of the balancer's own */
    ck_assert_int_eq(proxy((char *)h, 52, &f, t), 52);
    ck_assert_int_eq(f, 0);
    h[12] = 0x31; /* version 3 */
    ck_assert_int_eq(proxy((char *)h, 52, &f, t), -1);
    h[12] = 0x21;
    h[13] = 0x12; /* UDP */
    ck_assert_int_eq(proxy((char *)h, 52, &f, t), -1);
    h[13] = 0x11;
    h[14] = 0xff; /* 65,000 bytes of TLVs: more than is held for a header */
    ck_assert_int_eq(proxy((char *)h, 52, &f, t), -1);
}
END_TEST

START_TEST(malformed_escape_or_climbing_path_is_400)
{
    exchange x = {.input = GET("/%zzplaintext"), .eof = true};
    run(&x);
    ck_assert(strncmp(x.out, "HTTP/1.1 400 ", 13) == 0);
    exchange y = {.input = GET("/../plaintext"), .eof = true};
    run(&y);
    ck_assert(strncmp(y.out, "HTTP/1.1 400 ", 13) == 0);
    exchange z = {.input = GET("/a%00b"), .eof = true};
    run(&z);
    ck_assert(strncmp(z.out, "HTTP/1.1 400 ", 13) == 0);
}
END_TEST

/* Regression: 100 Continue was sent before routing, so the client sent a
 * body only to be told 404 or 405. */
START_TEST(expect_to_an_unknown_path_gets_404_without_continue)
{
    exchange x = {.input = "POST /nowhere HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                           "Expect: 100-continue\r\n\r\n"};
    expect_status_and_close(&x, "HTTP/1.1 404 ");
    ck_assert_ptr_null(strstr(x.out, "100 Continue"));
}
END_TEST

START_TEST(expect_with_a_wrong_method_gets_405_without_continue)
{
    exchange x = {.input = "PUT /plaintext HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                           "Expect: 100-continue\r\n\r\n"};
    expect_status_and_close(&x, "HTTP/1.1 405 ");
    ck_assert_ptr_nonnull(strstr(x.out, "\r\nAllow: GET, HEAD\r\n"));
    ck_assert_ptr_null(strstr(x.out, "100 Continue"));
}
END_TEST

START_TEST(expect_then_body_is_answered)
{
    exchange x = {.input = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                           "Expect: 100-continue\r\n\r\nhello",
                  .chunk = 73, /* the head alone, then the body */
                  .eof = true};
    run(&x);
    ck_assert(strncmp(x.out, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ", 38) == 0);
    ck_assert(strcmp(x.out + x.out_len - 5, "hello") == 0);
}
END_TEST

/* ---- switching protocols ------------------------------------------------------------- */

#define UPGRADE_REQ \
    "GET /upgrade HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"

/* The 101 goes out, then the new protocol gets the transport and the bytes
 * that came with the request; the HTTP connection is gone from the path. */
START_TEST(upgrade_hands_the_transport_and_the_bytes_over)
{
    memset(&ep, 0, sizeof(ep));
    exchange x = {.input = UPGRADE_REQ "hello", .eof = true};
    run(&x);
    ck_assert_msg(strncmp(x.out, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0, "got %.60s",
                  x.out);
    ck_assert_ptr_nonnull(strstr(x.out, "\r\nUpgrade: echo\r\nConnection: Upgrade\r\n"));
    ck_assert_ptr_nonnull(strstr(x.out, "\r\nX-Proto: echo\r\n"));
    ck_assert_ptr_null(strstr(x.out, "Content-Length"));
    ck_assert(x.out_len >= 5 && strcmp(x.out + x.out_len - 9, "\r\n\r\nhello") == 0);
    ck_assert(x.closed);
    ck_assert_int_eq(ep.started, 1);
    ck_assert_int_eq(ep.eofs, 1);
    ck_assert_int_eq(ep.closed, 1);
}
END_TEST

/* Bytes fed one at a time: the protocol still gets all of them, in order. */
START_TEST(upgrade_bytes_split_anywhere)
{
    memset(&ep, 0, sizeof(ep));
    exchange x = {.input = UPGRADE_REQ "0123456789", .chunk = 1, .eof = true};
    run(&x);
    ck_assert(strncmp(x.out, "HTTP/1.1 101 ", 13) == 0);
    ck_assert(strcmp(x.out + x.out_len - 14, "\r\n\r\n0123456789") == 0);
    ck_assert_int_eq(ep.closed, 1);
}
END_TEST

/* The server's shutdown reaches the protocol, which closes its own way. */
START_TEST(upgrade_shutdown_reaches_the_protocol)
{
    memset(&ep, 0, sizeof(ep));
    exchange x = {.input = UPGRADE_REQ "ping", .until = "ping", .watch = CIO_MS(20)};
    run(&x);
    ck_assert(!x.closed); /* open until the server shut down */
    ck_assert_int_eq(ep.started, 1);
    ck_assert_int_eq(ep.shutdowns, 1);
    ck_assert_int_eq(ep.closed, 1);
}
END_TEST

/* Without an Upgrade in the request there is nothing to accept: 500. */
START_TEST(upgrade_without_a_request_for_it_fails)
{
    memset(&ep, 0, sizeof(ep));
    exchange x = {.input = GET("/upgrade"), .linger = true};
    expect_status_and_close(&x, "HTTP/1.1 500 ");
    ck_assert_int_eq(ep.started, 0);
    ck_assert_int_eq(ep.closed, 0);
}
END_TEST

/* ---- found in review (issue 6) --------------------------------------------------------- */

/* Regression: routed before its body (Expect), a request kept its query as
 * a pointer into the input buffer, which the body then moved. */
START_TEST(query_survives_the_body_after_100_continue)
{
    static char in[8192];
    int n = snprintf(in, sizeof(in),
                     "POST /query?b=two HTTP/1.1\r\nHost: t\r\n"
                     "Content-Length: 6000\r\nExpect: 100-continue\r\n\r\n");
    memset(in + n, 'x', 6000);
    exchange x = {.input = in, .chunk = (size_t)n, .eof = true};
    run(&x);
    ck_assert_msg(strstr(x.out, "HTTP/1.1 200 OK") != NULL, "got %.60s", x.out);
    ck_assert(x.out_len >= 3 && strcmp(x.out + x.out_len - 3, "two") == 0);
}
END_TEST

/* Regression: the framing of every chunk of a read was counted as one run,
 * so a body of small chunks arriving in one read got a 400. */
START_TEST(many_small_chunks_in_one_read_are_fine)
{
    static char in[64 * 1024];
    int n = snprintf(in, sizeof(in),
                     "POST /echo HTTP/1.1\r\nHost: t\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 4000; i++)
        n += snprintf(in + n, sizeof(in) - (size_t)n, "1\r\n%c\r\n", 'a' + i % 26);
    snprintf(in + n, sizeof(in) - (size_t)n, "0\r\n\r\n");
    /* the head and all the chunks in one read, the last chunk in the next */
    exchange x = {.input = in, .chunk = (size_t)n, .eof = true};
    run(&x);
    ck_assert_msg(strncmp(x.out, "HTTP/1.1 200 ", 13) == 0, "got %.60s", x.out);
    ck_assert_ptr_nonnull(strstr(x.out, "Content-Length: 4000\r\n"));
}
END_TEST

/* Regression: a folded value whose first line is empty reached llhttp as
 * the value ("Transfer-Encoding:\r\n chunked" framed the body chunked). */
START_TEST(folding_after_an_empty_first_line_is_400)
{
    exchange x = {.input =
                      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"
                      "5\r\nhello\r\n0\r\n\r\n"};
    expect_status_and_close(&x, "HTTP/1.1 400 ");
    exchange y = {.input = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length:\r\n 5\r\n\r\nhello"};
    expect_status_and_close(&y, "HTTP/1.1 400 ");
}
END_TEST

START_TEST(trailing_whitespace_is_not_part_of_a_value)
{
    exchange x = {.input = "GET /header HTTP/1.1\r\nHost: t\r\nX-V: a b \t \r\n\r\n", .eof = true};
    run(&x);
    ck_assert_ptr_nonnull(strstr(x.out, "\r\n\r\n[a b]"));
    exchange y = {.input = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n"
                           "Expect: 100-continue  \r\n\r\n",
                  .until = "100 Continue",
                  .watch = CIO_MS(10)};
    run(&y);
    ck_assert_str_eq(y.out, "HTTP/1.1 100 Continue\r\n\r\n");
}
END_TEST

/* ---- helpers
 * --------------------------------------------------------------------------------------------- */

START_TEST(percent_decode)
{
    char b[32];
    ck_assert_int_eq(cio_http_percent_decode(b, "/a%20b%2Fc", 10), 6);
    ck_assert(memcmp(b, "/a b/c", 6) == 0);
    ck_assert_int_eq(cio_http_percent_decode(b, "/x%00", 5), -EINVAL);
    ck_assert_int_eq(cio_http_percent_decode(b, "/x%2", 4), -EINVAL);
    ck_assert_int_eq(cio_http_percent_decode(b, "/x%zz", 5), -EINVAL);
}
END_TEST

static void norm_case(const char *in, const char *want)
{
    char b[128];
    strcpy(b, in);
    ssize_t n = cio_http_normalize_path(b, strlen(b));
    if (!want) {
        ck_assert_msg(n < 0, "%s should be refused", in);
        return;
    }
    ck_assert_msg(n >= 0, "%s refused", in);
    b[n] = 0;
    ck_assert_str_eq(b, want);
}

START_TEST(normalize_path)
{
    norm_case("/", "/");
    norm_case("/a/b", "/a/b");
    norm_case("/a/./b", "/a/b");
    norm_case("/a/b/../c", "/a/c");
    norm_case("/a/..", "/");
    norm_case("/a/.", "/a/");
    norm_case("/a/b/", "/a/b/");
    norm_case("/..", NULL);
    norm_case("/a/../../etc/passwd", NULL);
    norm_case("/./../x", NULL);
    norm_case("relative", NULL);
    norm_case("//a///b", "/a/b");
    norm_case("/a//", "/a/");
    norm_case("//", "/");
    norm_case("/a/.//../b", "/b");
}
END_TEST

START_TEST(dates_format_and_parse)
{
    char d[30];
    cio_http_date(784111777, d);
    ck_assert_str_eq(d, "Sun, 06 Nov 1994 08:49:37 GMT");
    ck_assert_int_eq(cio_http_parse_date(d, strlen(d)), 784111777);
    const char *rfc850 = "Sunday, 06-Nov-94 08:49:37 GMT", *asc = "Sun Nov  6 08:49:37 1994";
    ck_assert_int_eq(cio_http_parse_date(rfc850, strlen(rfc850)), 784111777);
    ck_assert_int_eq(cio_http_parse_date(asc, strlen(asc)), 784111777);
    ck_assert_int_eq(cio_http_parse_date("yesterday", 9), -1);
    ck_assert_int_eq(cio_http_parse_date("Sun, 06 Nov 1994 08:49:37 GMTX", 30), -1);
}
END_TEST

START_TEST(mime_types)
{
    ck_assert_str_eq(cio_http_mime_type("/a/index.html", 13), "text/html; charset=utf-8");
    ck_assert_str_eq(cio_http_mime_type("/x.PNG", 6), "image/png");
    ck_assert_str_eq(cio_http_mime_type("/x.tar.gz", 9), "application/gzip");
    ck_assert_str_eq(cio_http_mime_type("/dir.d/file", 11), "application/octet-stream");
    ck_assert_str_eq(cio_http_mime_type("/noext", 6), "application/octet-stream");
}
END_TEST

START_TEST(reason_phrases)
{
    ck_assert_str_eq(cio_http_reason(404), "Not Found");
    ck_assert_str_eq(cio_http_reason(431), "Request Header Fields Too Large");
    ck_assert_str_eq(cio_http_reason(799), "Unknown");
}
END_TEST

/* ---- a transport whose sends complete only when the test says so --------------------- */

typedef struct manual {
    cio_transport t;
    char out[1 << 20];
    size_t out_len;
    int sends;
    bool send_pending, closing, closed;
    cio_timer close_timer;
} manual;

static void manual_closed(cio_timer *tm)
{
    manual *m = cio_container_of(tm, manual, close_timer);
    m->closed = true;
    m->t.cbs->on_closed(m->t.ud);
}

static int man_read_start(cio_transport *t)
{
    (void)t;
    return 0;
}

static void man_read_stop(cio_transport *t)
{
    (void)t;
}

static int man_send(cio_transport *t, struct iovec *iov, unsigned n)
{
    manual *m = cio_container_of(t, manual, t);
    ck_assert(!m->send_pending);
    for (unsigned i = 0; i < n; i++) {
        ck_assert(m->out_len + iov[i].iov_len < sizeof(m->out)); /* room for a NUL */
        memcpy(m->out + m->out_len, iov[i].iov_base, iov[i].iov_len);
        m->out_len += iov[i].iov_len;
    }
    m->send_pending = true;
    m->sends++;
    return 0;
}

static void man_shutdown(cio_transport *t)
{
    (void)t;
}

static void man_close(cio_transport *t)
{
    manual *m = cio_container_of(t, manual, t);
    if (m->closing)
        return;
    m->closing = true;
    cio_timer_start(&m->close_timer, cio_now());
}

static const cio_transport_ops manual_ops = {man_read_start, man_read_stop, man_send, man_shutdown,
                                             man_close};

static manual man;
static int hits;

static int h_count(cio_http_req *req, void *ud)
{
    (void)ud;
    hits++;
    return cio_http_respond(req, 200, "text/plain", "counted", 7);
}

static int h_big(cio_http_req *req, void *ud)
{
    (void)ud;
    static char body[200 * 1024];
    memset(body, 'b', sizeof(body));
    return cio_http_respond(req, 200, "text/plain", body, sizeof(body));
}

static void man_start(const cio_http_opts *o)
{
    ck_assert_int_eq(cio_http_server_create(NULL, o, &srv), 0);
    cio_http_route(srv, "GET", "/count", h_count, NULL);
    cio_http_route(srv, "GET", "/big", h_big, NULL);
    memset(&man, 0, sizeof(man));
    man.t.ops = &manual_ops;
    cio_timer_init(&man.close_timer, NULL, manual_closed);
    cio_http_conn *c = cio_http_conn_new(srv);
    man.t.cbs = cio_http_conn_cbs();
    man.t.ud = c;
    ck_assert_int_eq(cio_http_conn_start(c, &man.t), 0);
}

static void man_feed(const char *s)
{
    /* a private copy: the callee may use the bytes as scratch */
    size_t n = strlen(s);
    uint8_t *copy = malloc(n + 1);
    memcpy(copy, s, n);
    man.t.cbs->on_data(man.t.ud, copy, n);
    free(copy);
}

/* Completes the held send and lets the loop's turn end: the next slice, if
 * any, leaves then. */
static void man_complete(void)
{
    if (man.send_pending) {
        man.send_pending = false;
        man.t.cbs->on_sent(man.t.ud, 0);
        cio_sleep(1);
    }
}

/* Lets the held send complete and gives the connection a moment to react
 * (to do what it must not: tests wait for what it must do with T_AWAIT);
 * man.out is then a C string of everything the server sent. */
static void man_release(void)
{
    man_complete();
    cio_sleep(CIO_MS(5));
    man.out[man.out_len] = 0;
}

static void man_finish(void)
{
    cio_http_server_shutdown(srv, cio_after(CIO_MS(100)));
    while (!man.closed)
        cio_sleep(CIO_MS(1));
    cio_http_server_destroy(srv);
}

/* Regression: after a response that said Connection: close (here the
 * request limit), a request arriving while it was still being sent was
 * parsed and handled anyway. */
static intptr_t main_no_request_after_close(void *arg)
{
    (void)arg;
    cio_http_opts o = {.max_requests_per_conn = 1, .keepalive_timeout = CIO_SEC(5)};
    man_start(&o);
    man_feed(GET("/count"));
    ck_assert(T_AWAIT(man.send_pending, T_PATIENCE_MS)); /* answered; the send is held */
    man_feed(GET("/count"));
    cio_sleep(CIO_MS(5));
    man_release();
    ck_assert(T_AWAIT(man.closing, T_PATIENCE_MS));
    man.out[man.out_len] = 0;
    ck_assert_int_eq(count(man.out, "HTTP/1.1 200"), 1);
    man_finish();
    return hits;
}

START_TEST(no_request_is_handled_after_a_close)
{
    ck_assert_int_eq(t_run(main_no_request_after_close, NULL), 1);
}
END_TEST

/* Regression: the rest of a head arriving after its 408 was parsed, and the
 * handler ran for a request already answered. */
static intptr_t main_no_handler_after_408(void *arg)
{
    (void)arg;
    cio_http_opts o = {.header_timeout = CIO_MS(20), .keepalive_timeout = CIO_SEC(5)};
    man_start(&o);
    man_feed("GET /count HTTP/1.1\r\nHost: t\r\n");
    ck_assert(T_AWAIT(man.send_pending, T_PATIENCE_MS)); /* 408 written, send held */
    man_feed("\r\n");
    cio_sleep(CIO_MS(5));
    man_release();
    ck_assert(strncmp(man.out, "HTTP/1.1 408 ", 13) == 0);
    ck_assert_int_eq(count(man.out, "HTTP/1.1 "), 1);
    man_finish();
    return hits;
}

START_TEST(no_handler_runs_after_a_408)
{
    ck_assert_int_eq(t_run(main_no_handler_after_408, NULL), 0);
}
END_TEST

/* Regression: the write timeout ran per whole buffer, so a reader taking
 * its time over a 200 KiB response was cut off although it kept reading.
 * Each 64 KiB slice leaves after WT / 2 (a margin of WT / 2 for a loaded
 * machine), the whole response takes at least 3 slices, 1.5 WT: a timeout
 * per buffer would cut it off. */
#define WT CIO_MS(400)

static intptr_t main_write_timeout_progress(void *arg)
{
    (void)arg;
    cio_http_opts o = {.write_timeout = WT, .keepalive_timeout = CIO_SEC(5)};
    man_start(&o);
    man_feed(GET("/big"));
    ck_assert(T_AWAIT(man.send_pending, T_PATIENCE_MS));
    while (man.out_len < 200 * 1024 && !man.closing) {
        cio_sleep(WT / 2); /* a slow but steady reader */
        man_complete();
    }
    ck_assert(!man.closing);
    ck_assert_int_ge(man.sends, 4); /* the response went out in slices */
    /* A reader that stops: closed once WT passes without progress. */
    cio_time t0 = cio_clock();
    ck_assert(T_AWAIT(man.closing, T_PATIENCE_MS));
    ck_assert_int_ge(cio_clock() - t0, WT / 2);
    man_finish();
    return 0;
}

START_TEST(write_timeout_measures_progress)
{
    ck_assert_int_eq(t_run(main_write_timeout_progress, NULL), 0);
}
END_TEST

/* Delivers bytes from a timer callback: outside any task, as the ring does. */
static const char *timer_feed_data;
static void timer_feed(cio_timer *t)
{
    (void)t;
    man_feed(timer_feed_data);
}

/* Regression: an error response written from a callback, with the output
 * already above the high watermark (a client that stopped reading), waited
 * for room outside any task, and the process aborted. */
static intptr_t main_error_above_watermark(void *arg)
{
    (void)arg;
    cio_http_opts o = {.keepalive_timeout = CIO_SEC(5)};
    man_start(&o);
    man_feed(GET("/big")); /* 200 KiB: the first slice is held in flight */
    T_AWAIT(man.send_pending, T_PATIENCE_MS);
    cio_sleep(CIO_MS(5));
    http_active *a = ((cio_http_conn *)man.t.ud)->act;
    ck_assert_ptr_nonnull(a);
    a->sq.high = 1024; /* as if the client stopped reading long ago */
    a->sq.low = 512;
    cio_timer t;
    cio_timer_init(&t, NULL, timer_feed);
    timer_feed_data = "BAD\r\n\r\n";
    cio_timer_start(&t, cio_now());
    cio_sleep(CIO_MS(20)); /* the 400 is queued behind the big response */
    ck_assert(!man.closing);
    while (!man.closing && man.send_pending) {
        man_complete();
        cio_sleep(CIO_MS(2));
    }
    man.out[man.out_len] = 0;
    ck_assert_ptr_nonnull(strstr(man.out, "HTTP/1.1 400 "));
    man_finish();
    return 0;
}

START_TEST(error_response_above_the_watermark_outside_a_task)
{
    ck_assert_int_eq(t_run(main_error_above_watermark, NULL), 0);
}
END_TEST

static intptr_t shutdown_task(void *arg)
{
    return cio_http_server_shutdown(arg, cio_after(CIO_SEC(10)));
}

/* Regression: a keep-alive connection whose response was still leaving when
 * the drain began stayed open afterwards, until the drain deadline. */
static intptr_t main_drain_after_response(void *arg)
{
    (void)arg;
    cio_http_opts o = {.keepalive_timeout = CIO_SEC(60)};
    man_start(&o);
    man_feed(GET("/count"));
    T_AWAIT(man.send_pending, T_PATIENCE_MS); /* answered, the send held */
    cio_task *t;
    ck_assert_int_eq(cio_spawn(NULL, &t, shutdown_task, srv), 0);
    cio_sleep(CIO_MS(5));
    ck_assert(!man.closing); /* the response still goes out */
    cio_time t0 = cio_now();
    man_complete();
    T_AWAIT(man.closed, T_PATIENCE_MS);
    ck_assert(man.closed);
    ck_assert_int_eq(cio_join(t, CIO_NEVER), 0);
    ck_assert_int_lt(cio_now() - t0, CIO_SEC(5)); /* not the drain deadline */
    cio_http_server_destroy(srv);
    return 0;
}

START_TEST(drain_closes_after_a_response_in_flight)
{
    ck_assert_int_eq(t_run(main_drain_after_response, NULL), 0);
}
END_TEST

/* ---- a timer that cannot be armed (ENOMEM) ---------------------------------------- */

/* This suite is linked with -Wl,--wrap=realloc: growing the block at
 * fail_realloc_ptr (the loop's timer heap) fails. */
void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);
static void *fail_realloc_ptr;
void *__wrap_realloc(void *p, size_t n)
{
    if (fail_realloc_ptr && p == fail_realloc_ptr)
        return NULL;
    return __real_realloc(p, n);
}

static cio_event hold;
static int h_hold(cio_http_req *req, void *ud)
{
    (void)ud;
    int rc = cio_event_wait(&hold, CIO_NEVER);
    return rc ? rc : cio_http_respond(req, 200, "text/plain", "held", 4);
}

static void man_close_unfail(cio_transport *t)
{
    fail_realloc_ptr = NULL; /* the transport's own close timer may grow the heap */
    man_close(t);
}

/* Regression: a keep-alive deadline that could not be armed (the timer heap
 * could not grow) was ignored, leaving the connection without a timeout. */
static intptr_t main_timer_enomem(void *arg)
{
    (void)arg;
    static const cio_transport_ops ops = {man_read_start, man_read_stop, man_send, man_shutdown,
                                          man_close_unfail};
    cio_http_opts o = {.keepalive_timeout = CIO_SEC(60), .handler_timeout = CIO_NEVER};
    man_start(&o);
    man.t.ops = &ops;
    cio_http_route(srv, "GET", "/hold", h_hold, NULL);
    cio_event_init(&hold);
    man_feed(GET("/hold"));
    cio_sleep(CIO_MS(5)); /* the handler waits; the connection's timer is stopped */
    /* Fill the heap so that the write timer of the response takes its last
     * slot and the keep-alive deadline after it needs it to grow. */
    cio_loop *l = cio_loop_current();
    static cio_timer fill[1024];
    size_t nfill = 0;
    while (l->heap_len < l->heap_cap - 2) {
        cio_timer_init(&fill[nfill], NULL, NULL);
        ck_assert_int_eq(cio_timer_start(&fill[nfill++], CIO_NEVER - 1), 0);
    }
    fail_realloc_ptr = l->heap;
    cio_event_set(&hold);
    for (int i = 0; i < 50 && !man.closing; i++)
        cio_yield(); /* no timers here: sleeping would need one */
    fail_realloc_ptr = NULL;
    ck_assert_msg(man.closing, "the connection stayed open without its keep-alive timeout");
    for (size_t i = 0; i < nfill; i++)
        cio_timer_stop(&fill[i]);
    man_release();
    ck_assert(strncmp(man.out, "HTTP/1.1 200 ", 13) == 0);
    man_finish();
    return 0;
}

START_TEST(timer_enomem_closes_the_connection)
{
    ck_assert_int_eq(t_run(main_timer_enomem, NULL), 0);
}
END_TEST

/* The per-address connection counts behind max_conns_per_addr: a limit per
 * address and family, entries that go with their last connection, and a
 * table that grows with thousands of addresses. */
START_TEST(per_address_counts)
{
    http_addrs t = {0};
    const uint8_t a4[4] = {10, 0, 0, 1}, b4[4] = {10, 0, 0, 2};
    uint8_t a6[16] = {0x20, 0x01, 0x0d, 0xb8};
    ck_assert_int_eq(http_addrs_take(&t, AF_INET, a4, 2), 1);
    ck_assert_int_eq(http_addrs_take(&t, AF_INET, a4, 2), 1);
    ck_assert_int_eq(http_addrs_take(&t, AF_INET, a4, 2), 0); /* at the limit */
    ck_assert_uint_eq(http_addrs_count(&t, AF_INET, a4), 2);
    ck_assert_int_eq(http_addrs_take(&t, AF_INET, b4, 2), 1); /* another address */
    /* an IPv6 address whose first 4 bytes equal an IPv4 one is another key */
    memcpy(a6, a4, 4);
    ck_assert_int_eq(http_addrs_take(&t, AF_INET6, a6, 2), 1);
    ck_assert_uint_eq(http_addrs_count(&t, AF_INET6, a6), 1);
    http_addrs_put(&t, AF_INET, a4);
    ck_assert_int_eq(http_addrs_take(&t, AF_INET, a4, 2), 1); /* room again */
    http_addrs_put(&t, AF_INET, a4);
    http_addrs_put(&t, AF_INET, a4);
    ck_assert_uint_eq(http_addrs_count(&t, AF_INET, a4), 0);
    ck_assert_uint_eq(t.nentries, 2); /* the entry went with its last connection */
    http_addrs_put(&t, AF_INET, a4);  /* not there: harmless */
    for (uint32_t i = 0; i < 5000; i++) {
        uint8_t k[16] = {0xfd};
        memcpy(k + 12, &i, 4);
        ck_assert_int_eq(http_addrs_take(&t, AF_INET6, k, 1), 1);
    }
    ck_assert_uint_eq(t.nentries, 5002);
    ck_assert_uint_ge(t.nbuckets, 4096);
    for (uint32_t i = 0; i < 5000; i++) {
        uint8_t k[16] = {0xfd};
        memcpy(k + 12, &i, 4);
        ck_assert_int_eq(http_addrs_take(&t, AF_INET6, k, 1), 0);
        http_addrs_put(&t, AF_INET6, k);
    }
    ck_assert_uint_eq(t.nentries, 2);
    http_addrs_fini(&t);
}
END_TEST

/* ---- streamed bodies and the budget ----------------------------------------------------- */

/* A body that never completes: the body timeout (100 ms here) ends it with
 * status_line, in a lingering close. */
static void expect_stalled(exchange *x, const char *status_line)
{
    x->linger = true;
    x->opts.body_timeout = CIO_MS(100);
    expect_status_and_close(x, status_line);
}

/* Runs an exchange that ends with the client's end of stream and checks
 * that the output holds each of the NULL-terminated strings. */
static void expect_out(exchange *x, const char *const *want)
{
    x->eof = true;
    run(x);
    for (; *want; want++)
        ck_assert_msg(strstr(x->out, *want) != NULL, "no %s in:\n%s", *want, x->out);
}

START_TEST(streamed_body_read_as_it_arrives)
{
    exchange x = {.input = "POST /sum HTTP/1.1\r\nHost: h1\r\nContent-Length: 26\r\n\r\n"
                           "abcdefghijklmnopqrstuvwxyz" GET("/users/5"),
                  .chunk = 5};
    /* the body, the head's Host (moved out of the input), the pipelined request */
    expect_out(&x, (const char *const[]){"\r\n\r\n26:abcdefghijklmnopqrstuvwxyz host=h1",
                                         "user 5", NULL});
}
END_TEST

START_TEST(streamed_chunked_body_is_dechunked)
{
    exchange x = {.input = "POST /sum HTTP/1.1\r\nHost: h2\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nT: x\r\n\r\n" GET("/users/6"),
                  .chunk = 3};
    expect_out(&x, (const char *const[]){"11:hello world host=h2", "user 6", NULL});
}
END_TEST

/* The window the connection holds stays bounded whatever the body's length:
 * a 1 MiB body read by a handler keeps the input buffer near 64 KiB. */
static int h_read_count(cio_http_req *req, void *ud)
{
    size_t *max_in = ud;
    char buf[1000];
    size_t total = 0;
    ssize_t n;
    while ((n = cio_http_read(req, buf, sizeof(buf))) > 0) {
        total += (size_t)n;
        size_t cap = req->conn->act->in.cap;
        *max_in = cap > *max_in ? cap : *max_in;
    }
    char *out = cio_arena_printf(cio_http_arena(req), "%zu", total);
    return n < 0 ? (int)n : cio_http_respond(req, 200, "text/plain", out, strlen(out));
}

static intptr_t big_stream_main(void *arg)
{
    size_t *max_in = arg;
    ck_assert_int_eq(cio_http_server_create(NULL, NULL, &srv), 0);
    ck_assert_int_eq(cio_http_route_stream(srv, "POST", "/count", h_read_count, max_in), 0);
    static const char head[] = "POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n";
    conn_run cr = {0};
    cio_http_conn *c = cio_http_conn_new(srv);
    cio_mem_transport_init(&cr.m, NULL, cio_http_conn_cbs(), c);
    cr.m.chunk = 16384;
    cio_mem_transport_feed(&cr.m, head, sizeof(head) - 1);
    char *body = calloc(1, 1 << 20);
    cio_mem_transport_feed(&cr.m, body, 1 << 20);
    free(body);
    cio_mem_transport_feed_eof(&cr.m);
    ck_assert_int_eq(cio_http_conn_start(c, &cr.m.t), 0);
    for (int i = 0; i < 4000 && !cr.m.closed; i++)
        cio_sleep(CIO_MS(1));
    ck_assert(cr.m.closed);
    ck_assert_ptr_nonnull(memmem(cr.m.out.p, cr.m.out.len, "\r\n\r\n1048576", 11));
    cio_http_server_shutdown(srv, cio_after(CIO_MS(200)));
    cio_mem_transport_fini(&cr.m);
    cio_http_server_destroy(srv);
    return 0;
}

START_TEST(streamed_body_holds_a_window_not_the_body)
{
    size_t max_in = 0;
    ck_assert_int_eq(t_run(big_stream_main, &max_in), 0);
    ck_assert_uint_gt(max_in, 0);
    ck_assert_uint_le(max_in, 128 * 1024);
}
END_TEST

START_TEST(streamed_chunked_body_too_large_is_413)
{
    exchange x = {.input = "POST /sum HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "20\r\n0123456789abcdef0123456789abcdef\r\n0\r\n\r\n",
                  .opts = {.max_body_bytes = 10}};
    expect_status_and_close(&x, "HTTP/1.1 413 ");
}
END_TEST

START_TEST(streamed_body_that_stalls_is_408)
{
    exchange x = {.input = "POST /sum HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"};
    expect_stalled(&x, "HTTP/1.1 408 ");
}
END_TEST

/* The invitation goes out when the handler first reads (here the body
 * never comes: then 408). */
START_TEST(streamed_expect_100_continue_on_first_read)
{
    exchange x = {.input = "POST /sum HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                           "Expect: 100-continue\r\n\r\n"};
    expect_stalled(&x, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 408 ");
}
END_TEST

/* A handler that answers without reading the body: the answer goes out, no
 * 100 Continue invites the body, and the connection closes after it (what
 * follows is the unread body, not a request). */
START_TEST(streamed_body_left_unread_closes_after_the_response)
{
    exchange x = {.input = "POST /unread HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n"
                           "Expect: 100-continue\r\n\r\n" GET("/users/7")};
    run(&x);
    ck_assert_msg(strncmp(x.out, "HTTP/1.1 401 ", 13) == 0, "%s", x.out);
    ck_assert_ptr_null(strstr(x.out, "100 Continue"));
    ck_assert_ptr_null(strstr(x.out, "user 7"));
    ck_assert(x.closed);
    /* Regression: it closed at once, and a client still sending its body
     * could get a reset instead of the answer; it lingers (half-closes,
     * discards what comes) like any early answer. */
    ck_assert(x.write_shut);
}
END_TEST

/* The chunked body of the first response in out (after its head), decoded
 * into body (at most cap - 1 bytes): how it was cut into chunks (as the
 * reads returned it) is left open. */
static void first_chunked_body(const char *out, char *body, size_t cap)
{
    const char *p = strstr(out, "\r\n\r\n");
    size_t n = 0;
    ck_assert_ptr_nonnull(p);
    for (p += 4;;) {
        char *end;
        unsigned long len = strtoul(p, &end, 16);
        ck_assert_msg(end > p && strncmp(end, "\r\n", 2) == 0, "a chunk size in:\n%s", out);
        if (len == 0)
            break;
        ck_assert_uint_lt(n + len, cap);
        memcpy(body + n, end + 2, len);
        n += len;
        p = end + 2 + len;
        ck_assert_msg(strncmp(p, "\r\n", 2) == 0, "a chunk's end in:\n%s", out);
        p += 2;
    }
    body[n] = 0;
}

/* A response started before the body is in keeps the connection (keep-alive
 * is decided at the head for a streamed request), and a read after the
 * response has started sends no "100 Continue" into it. */
START_TEST(streamed_response_before_the_body_keeps_the_connection)
{
    exchange x = {.input = "POST /duplex HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n"
                           "Expect: 100-continue\r\n\r\nabcdef" GET("/users/8"),
                  .chunk = 8};
    /* the echo as it was read (in pieces of at most 4 bytes, cut wherever
     * the reads found the input's pieces: that depends on when they came),
     * then the next request on the same connection */
    expect_out(&x, (const char *const[]){"\r\n0\r\n\r\n", "user 8", NULL});
    char body[16];
    first_chunked_body(x.out, body, sizeof(body));
    ck_assert_str_eq(body, "abcdef");
    ck_assert_msg(strncmp(x.out, "HTTP/1.1 200 ", 13) == 0, "%s", x.out);
    ck_assert_ptr_null(strstr(x.out, "100 Continue"));
    ck_assert_ptr_null(strstr(x.out, "Connection: close"));
}
END_TEST

START_TEST(budget_refuses_a_body_that_does_not_fit)
{
    exchange x = {.input = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n"
                           "Expect: 100-continue\r\n\r\n",
                  .budget = 4096};
    expect_status_and_close(&x, "HTTP/1.1 503 ");
    ck_assert_ptr_nonnull(strstr(x.out, "Retry-After: 1\r\n"));
    ck_assert_ptr_null(strstr(x.out, "100 Continue")); /* refused before the body */
    ck_assert_uint_eq(x.b.refused, 1);
}
END_TEST

START_TEST(budget_admits_a_body_that_fits_and_gets_it_back)
{
    exchange x = {.input = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world",
                  .budget = 1 << 20};
    /* (exchange_main checks that the budget is back to 0) */
    expect_out(&x, (const char *const[]){"Content-Length: 11\r\n\r\nhello world", NULL});
    ck_assert_uint_eq(x.b.refused, 0);
    ck_assert_uint_ge(x.b.peak, 11);
}
END_TEST

/* A streamed body takes no reservation: it is admitted with the budget
 * nearly spent, since it holds only a window. */
START_TEST(budget_lets_streamed_bodies_through)
{
    exchange x = {.input = "POST /sum HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n",
                  .budget = 4096};
    expect_stalled(&x, "HTTP/1.1 408 "); /* it waited for the body */
    ck_assert_uint_eq(x.b.refused, 0);
}
END_TEST

static Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    T_CASE(s, get_plaintext, 5);
    T_CASE(s, keep_alive_serves_requests_in_sequence, 5);
    T_CASE(s, pipelined_requests_answered_in_order, 5);
    T_CASE(s, request_split_byte_by_byte, 10);
    T_CASE(s, idle_connection_closes_on_peer_eof, 5);
    T_CASE(s, http10_closes_by_default, 5);
    T_CASE(s, http10_keep_alive_on_request, 5);
    T_CASE(s, connection_close_closes, 10);
    T_CASE(s, head_has_length_but_no_body, 5);
    T_CASE(s, unknown_path_is_404, 5);
    T_CASE(s, wrong_method_is_405_with_allow, 5);
    T_CASE(s, path_parameters_and_literal_precedence, 5);
    T_CASE(s, query_parameters, 5);
    T_CASE(s, absolute_form_and_options_star, 5);
    T_CASE(s, content_length_body, 5);
    T_CASE(s, chunked_body_is_dechunked, 5);
    T_CASE(s, trailers_are_not_headers, 5);
    T_CASE(s, huge_trailer_is_431, 5);
    T_CASE(s, options_star_lists_the_routes_methods, 5);
    T_CASE(s, expect_100_continue, 5);
    T_CASE(s, unknown_expectation_is_417, 5);
    T_CASE(s, body_too_large_is_413_before_reading_it, 10);
    T_CASE(s, chunked_body_too_large_is_413, 10);
    T_CASE(s, headers_too_large_is_431, 10);
    T_CASE(s, partial_huge_header_is_431_without_waiting, 10);
    T_CASE(s, uri_too_long_is_414, 10);
    T_CASE(s, content_length_with_transfer_encoding_is_400, 10);
    T_CASE(s, duplicate_content_length_is_400, 10);
    T_CASE(s, invalid_content_length_is_400, 10);
    T_CASE(s, obsolete_line_folding_is_400, 10);
    T_CASE(s, missing_host_is_400, 10);
    T_CASE(s, garbage_is_400, 10);
    T_CASE(s, other_http_version_is_505, 10);
    T_CASE(s, input_after_an_error_is_ignored, 10);
    T_CASE(s, error_close_lingers_until_the_peer_is_done, 10);
    T_CASE(s, slow_head_is_408, 10);
    T_CASE(s, slow_body_is_408, 10);
    T_CASE(s, idle_keep_alive_closes_silently, 5);
    T_CASE(s, silent_connection_is_closed_after_header_timeout, 5);
    T_CASE(s, max_requests_per_connection, 10);
    T_CASE(s, streamed_response_is_chunked, 5);
    T_CASE(s, streamed_response_to_http10_is_close_delimited, 5);
    T_CASE(s, head_of_sized_stream_keeps_the_connection, 5);
    T_CASE(s, handler_error_without_response_is_500, 10);
    T_CASE(s, header_injection_is_refused, 5);
    T_CASE(s, upgrade_request_is_answered_then_closed, 10);
    T_CASE(s, slow_handler_does_not_block_other_connections, 5);
    T_CASE(s, no_request_is_handled_after_a_close, 5);
    T_CASE(s, no_handler_runs_after_a_408, 5);
    T_CASE(s, write_timeout_measures_progress, 10);
    T_CASE(s, timer_enomem_closes_the_connection, 5);
    T_CASE(s, upgrade_hands_the_transport_and_the_bytes_over, 5);
    T_CASE(s, upgrade_bytes_split_anywhere, 5);
    T_CASE(s, upgrade_shutdown_reaches_the_protocol, 5);
    T_CASE(s, upgrade_without_a_request_for_it_fails, 5);
    T_CASE(s, error_response_above_the_watermark_outside_a_task, 10);
    T_CASE(s, drain_closes_after_a_response_in_flight, 15);
    T_CASE(s, query_survives_the_body_after_100_continue, 10);
    T_CASE(s, many_small_chunks_in_one_read_are_fine, 10);
    T_CASE(s, folding_after_an_empty_first_line_is_400, 10);
    T_CASE(s, trailing_whitespace_is_not_part_of_a_value, 10);
    T_CASE(s, bare_cr_does_not_smuggle_a_second_request, 10);
    T_CASE(s, bare_cr_before_content_length_is_400, 10);
    T_CASE(s, bare_lf_line_ends_are_400, 10);
    T_CASE(s, empty_field_name_is_400, 10);
    T_CASE(s, empty_trailer_name_is_400, 10);
    T_CASE(s, whitespace_before_colon_is_400, 10);
    T_CASE(s, space_inside_field_name_is_400, 10);
    T_CASE(s, control_bytes_in_target_are_400, 10);
    T_CASE(s, content_length_with_empty_transfer_encoding_is_400, 10);
    T_CASE(s, transfer_encoding_in_http10_is_400, 10);
    T_CASE(s, unknown_method_is_501, 10);
    T_CASE(s, http09_is_refused, 10);
    T_CASE(s, long_chunk_extension_is_400, 10);
    T_CASE(s, leading_zeros_in_chunk_size_are_bounded, 10);
    T_CASE(s, many_chunks_with_extensions_are_fine, 10);
    T_CASE(s, handler_deadline_answers_503, 10);
    T_CASE(s, handler_deadline_stops_at_the_response, 10);
    T_CASE(s, client_end_of_stream_cancels_the_handler, 10);
    T_CASE(s, routes_match_the_decoded_normalised_path, 5);
    T_CASE(s, path_parameters_are_decoded, 5);
    T_CASE(s, routes_have_at_most_32_segments, 5);
    T_CASE(s, routes_for_the_same_paths_are_refused, 5);
    T_CASE(s, proxy_v1_headers, 5);
    T_CASE(s, proxy_v2_headers, 5);
    T_CASE(s, malformed_escape_or_climbing_path_is_400, 5);
    T_CASE(s, expect_to_an_unknown_path_gets_404_without_continue, 10);
    T_CASE(s, expect_with_a_wrong_method_gets_405_without_continue, 10);
    T_CASE(s, expect_then_body_is_answered, 5);
    T_CASE(s, percent_decode, 5);
    T_CASE(s, normalize_path, 5);
    T_CASE(s, dates_format_and_parse, 5);
    T_CASE(s, mime_types, 5);
    T_CASE(s, reason_phrases, 5);
    T_CASE(s, per_address_counts, 5);
    T_CASE(s, streamed_body_read_as_it_arrives, 5);
    T_CASE(s, streamed_chunked_body_is_dechunked, 5);
    T_CASE(s, streamed_body_holds_a_window_not_the_body, 10);
    T_CASE(s, streamed_chunked_body_too_large_is_413, 5);
    T_CASE(s, streamed_body_that_stalls_is_408, 10);
    T_CASE(s, streamed_expect_100_continue_on_first_read, 5);
    T_CASE(s, streamed_body_left_unread_closes_after_the_response, 5);
    T_CASE(s, streamed_response_before_the_body_keeps_the_connection, 5);
    T_CASE(s, budget_refuses_a_body_that_does_not_fit, 5);
    T_CASE(s, budget_admits_a_body_that_fits_and_gets_it_back, 5);
    T_CASE(s, budget_lets_streamed_bodies_through, 10);
    return s;
}

T_MAIN(http_suite)
