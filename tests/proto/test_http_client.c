/*
 * The HTTP/1.1 client (cio_http_fetch) over real sockets on 127.0.0.1: a
 * corio server for the well-behaved answers, and "raw" servers (tasks on
 * the same loop that read each request and answer canned bytes, possibly a
 * byte at a time) for the misbehaving ones. Every wait is on an observable
 * state (a server saw the request, counted a connection gone) with a
 * generous deadline; no test sleeps and hopes.
 */
#include "../core/harness.h"
#include "cio_http.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

/* A fetch that should succeed: far longer than it ever takes. */
#define T_DEADLINE() cio_after(CIO_SEC(10))

/* ---- a corio server ------------------------------------------------------------- */

static int h_hello(cio_http_req *req, void *ud)
{
    (void)ud;
    cio_http_add_header(req, "X-Test", "yes");
    return cio_http_respond(req, 200, "text/plain", "Hello, World!", 13);
}

/* The body back, with what framed it: X-Got-Length (the Content-Length
 * header as received) and X-Got-Type (the Content-Type's length). */
static int h_echo(cio_http_req *req, void *ud)
{
    (void)ud;
    cio_str cl = cio_http_header(req, "Content-Length"), ct = cio_http_header(req, "Content-Type");
    cio_arena *a = cio_http_arena(req);
    cio_http_add_header(req, "X-Got-Length",
                        cl.p ? cio_arena_printf(a, "%.*s", (int)cl.n, cl.p) : "none");
    cio_http_add_header(req, "X-Got-Type", cio_arena_printf(a, "%zu", ct.p ? ct.n : 0));
    cio_str b = cio_http_body(req);
    return cio_http_respond(req, 200, "application/octet-stream", b.p, b.n);
}

static int h_headers(cio_http_req *req, void *ud)
{
    (void)ud;
    cio_str one = cio_http_header(req, "X-One"), two = cio_http_header(req, "X-Two");
    char *body = cio_arena_printf(cio_http_arena(req), "%.*s|%.*s", (int)one.n,
                                  one.p ? one.p : "", (int)two.n, two.p ? two.p : "");
    return cio_http_respond(req, 200, "text/plain", body, strlen(body));
}

/* Length unknown: chunked. */
static int h_chunked(cio_http_req *req, void *ud)
{
    (void)ud;
    int rc = cio_http_start(req, 200, "text/plain", -1);
    for (int i = 0; rc == 0 && i < 3; i++)
        rc = cio_http_write(req, "abc", 3);
    return rc ? rc : cio_http_end(req);
}

/* A server on 127.0.0.1 (o may be NULL); *port gets the port it listens on. */
static cio_http_server *srv_start(const cio_http_opts *o, uint16_t *port)
{
    cio_http_server *s;
    ck_assert_int_eq(cio_http_server_create(NULL, o, &s), 0);
    ck_assert_int_eq(cio_http_route(s, "GET", "/hello", h_hello, NULL), 0);
    ck_assert_int_eq(cio_http_route(s, "POST", "/echo", h_echo, NULL), 0);
    ck_assert_int_eq(cio_http_route(s, "GET", "/headers", h_headers, NULL), 0);
    ck_assert_int_eq(cio_http_route(s, "GET", "/chunked", h_chunked, NULL), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char text[64];
    ck_assert_int_eq(cio_http_listen(s, (struct sockaddr *)&a, sizeof(a), false, text), 0);
    *port = (uint16_t)atoi(strrchr(text, ':') + 1);
    ck_assert_uint_ne(*port, 0);
    return s;
}

static void srv_stop(cio_http_server *s)
{
    cio_http_server_shutdown(s, cio_after(CIO_SEC(5)));
    cio_http_server_destroy(s);
}

static uint64_t srv_connections(const cio_http_server *s)
{
    cio_http_stats st;
    cio_http_server_stats(s, &st);
    return st.connections;
}

/* ---- raw servers ---------------------------------------------------------------- */

/* What a raw server does with each request it reads, in order across
 * connections: answers bytes (NULL: nothing), then keeps the connection
 * for the next request, closes it, or holds it (reads and drops whatever
 * comes until the client closes it). */
enum { KEEP, CLOSE, HOLD };
typedef struct step {
    const char *bytes;
    size_t len; /* 0: strlen(bytes) */
    int then;
} step;

typedef struct raw {
    const step *steps;
    size_t nsteps;
    size_t piece; /* send answers in pieces of this many bytes, 1 ms apart (0: at once) */
    int lfd;
    uint16_t port;
    int accepted;    /* connections accepted */
    int requests;    /* requests read */
    int peer_closed; /* held connections the client closed */
    char req[8192];  /* the last request read */
    size_t req_len;
    cio_task *task;
} raw;

/* The request's head and its Content-Length body into r->req: its length,
 * 0 when the client closed first, or -errno. */
static ssize_t raw_read_request(raw *r, int fd)
{
    size_t len = 0;
    for (;;) {
        char *e = memmem(r->req, len, "\r\n\r\n", 4);
        if (e) {
            size_t head = (size_t)(e + 4 - r->req), body = 0;
            for (char *p = r->req; p < e; p = strstr(p, "\r\n") + 2)
                if (strncasecmp(p, "Content-Length:", 15) == 0)
                    body = strtoul(p + 15, NULL, 10);
            if (len >= head + body) {
                r->req_len = len;
                return (ssize_t)len;
            }
        }
        if (len == sizeof(r->req) - 1)
            return -EMSGSIZE;
        ssize_t n = cio_recv(fd, r->req + len, sizeof(r->req) - 1 - len, 0, cio_after(CIO_SEC(30)));
        if (n <= 0)
            return n;
        len += (size_t)n;
        r->req[len] = 0;
    }
}

static int raw_send(raw *r, int fd, const char *p, size_t n)
{
    while (n) {
        size_t k = r->piece && r->piece < n ? r->piece : n;
        ssize_t w = cio_send(fd, p, k, 0, cio_after(CIO_SEC(30)));
        if (w < 0)
            return (int)w;
        p += w;
        n -= (size_t)w;
        if (r->piece && n)
            cio_sleep(CIO_MS(1)); /* so that the pieces tend to arrive in separate reads */
    }
    return 0;
}

static intptr_t raw_main(void *arg)
{
    raw *r = arg;
    size_t i = 0;
    while (i < r->nsteps) {
        int fd = cio_accept(r->lfd, NULL, NULL, cio_after(CIO_SEC(30)));
        if (fd < 0)
            return fd;
        r->accepted++;
        while (i < r->nsteps) {
            if (raw_read_request(r, fd) <= 0)
                break; /* the client closed it: the next step is for another connection */
            r->requests++;
            const step *s = &r->steps[i++];
            if (s->bytes && raw_send(r, fd, s->bytes, s->len ? s->len : strlen(s->bytes)) < 0)
                break;
            if (s->then == HOLD) {
                char drop[4096];
                while (cio_recv(fd, drop, sizeof(drop), 0, cio_after(CIO_SEC(30))) > 0)
                    ;
                r->peer_closed++;
            }
            if (s->then != KEEP)
                break;
        }
        cio_close(fd);
    }
    return 0;
}

static void raw_start(raw *r, const step *steps, size_t nsteps)
{
    r->steps = steps;
    r->nsteps = nsteps;
    r->lfd = cio_socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(r->lfd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    ck_assert_int_eq(bind(r->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(r->lfd, (struct sockaddr *)&a, &len), 0);
    ck_assert_int_eq(listen(r->lfd, 16), 0);
    r->port = ntohs(a.sin_port);
    ck_assert_int_eq(cio_spawn(NULL, &r->task, raw_main, r), 0);
}

static void raw_stop(raw *r)
{
    cio_task_cancel(r->task);
    cio_join(r->task, CIO_NEVER);
    cio_close(r->lfd);
}

#define RAW_START(r, ...)                                     \
    do {                                                      \
        static const step steps_[] = {__VA_ARGS__};           \
        raw_start((r), steps_, sizeof(steps_) / sizeof(step)); \
    } while (0)

static cio_http_client *client_new(const cio_http_client_opts *o)
{
    cio_http_client *c;
    ck_assert_int_eq(cio_http_client_create(NULL, o, &c), 0);
    return c;
}

static cio_http_client_stats client_stats(const cio_http_client *c)
{
    cio_http_client_stats st;
    cio_http_client_stats_get(c, &st);
    return st;
}

static void client_free(cio_http_client *c)
{
    ck_assert_int_eq(cio_http_client_destroy(c), 0);
}

/* One canned answer to one GET on a fresh client with opts o (NULL:
 * defaults): fetch's result. *resp is freed unless out is given. */
typedef struct canned {
    const char *reply;
    size_t reply_len;
    int then;
    size_t piece;
    cio_http_client_opts opts;
    const char *method;
    cio_time deadline; /* relative (0: T_DEADLINE) */
    cio_http_response resp;
    cio_http_client_stats st;
    raw r;
    int rc;
    cio_time took;
} canned;

static intptr_t canned_main(void *arg)
{
    canned *k = arg;
    step s = {k->reply, k->reply_len, k->then};
    k->r.piece = k->piece;
    raw_start(&k->r, &s, 1);
    cio_http_client *c = client_new(&k->opts);
    cio_http_request rq = {.method = k->method, .host = "127.0.0.1", .port = k->r.port,
                           .target = "/x"};
    cio_time t0 = cio_clock();
    k->rc = cio_http_fetch(c, &rq, &k->resp, k->deadline ? cio_after(k->deadline) : T_DEADLINE());
    k->took = cio_clock() - t0;
    k->st = client_stats(c);
    client_free(c);
    raw_stop(&k->r);
    return 0;
}

static void canned_run(canned *k)
{
    t_run(canned_main, k);
}

/* A corio server with the test routes (opts NULL: defaults) and a client
 * with default settings: most tests' two ends. */
typedef struct fixture {
    cio_http_server *s;
    cio_http_client *c;
    uint16_t port;
} fixture;

static fixture fx_start(const cio_http_opts *o)
{
    fixture f;
    f.s = srv_start(o, &f.port);
    f.c = client_new(NULL);
    return f;
}

static void fx_stop(fixture *f)
{
    client_free(f->c);
    srv_stop(f->s);
}

/* [awaits] rq, sent to f's server, gets a response (any status). */
static void fx_fetch(fixture *f, cio_http_request *rq, cio_http_response *resp)
{
    rq->host = "127.0.0.1";
    rq->port = f->port;
    ck_assert_int_eq(cio_http_fetch(f->c, rq, resp, T_DEADLINE()), 0);
}

/* ---- well-behaved responses ------------------------------------------------------- */

static intptr_t main_get(void *arg)
{
    (void)arg;
    fixture f = fx_start(NULL);
    cio_http_response resp;
    ck_assert_int_eq(cio_http_get(f.c, "127.0.0.1", f.port, "/hello", &resp, T_DEADLINE()), 0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_int_eq(resp.version_minor, 1);
    ck_assert_uint_eq(resp.body.n, 13);
    ck_assert_str_eq(resp.body.p, "Hello, World!"); /* NUL-terminated */
    cio_str v = cio_http_response_header(&resp, "x-TEST");
    ck_assert_uint_eq(v.n, 3);
    ck_assert_mem_eq(v.p, "yes", 3);
    v = cio_http_response_header(&resp, "CONTENT-TYPE");
    ck_assert_uint_eq(v.n, 10);
    ck_assert_mem_eq(v.p, "text/plain", 10);
    ck_assert_ptr_null(cio_http_response_header(&resp, "X-Absent").p);
    cio_http_response_free(&resp);
    cio_http_client_stats st = client_stats(f.c);
    ck_assert_uint_eq(st.requests, 1);
    ck_assert_uint_eq(st.failures, 0);
    ck_assert_uint_eq(st.lookups, 0); /* a numeric address */
    fx_stop(&f);
    return 0;
}

T_LOOP_TEST(get_returns_status_headers_and_body, main_get, 0)

static intptr_t main_post(void *arg)
{
    (void)arg;
    fixture f = fx_start(NULL);
    cio_http_request rq = {.method = "POST", .target = "/echo", .content_type = "text/plain",
                           .body = "the body", .body_len = 8};
    cio_http_response resp;
    fx_fetch(&f, &rq, &resp);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(resp.body.p, "the body");
    cio_str v = cio_http_response_header(&resp, "X-Got-Length");
    ck_assert_uint_eq(v.n, 1);
    ck_assert_mem_eq(v.p, "8", 1);
    v = cio_http_response_header(&resp, "X-Got-Type");
    ck_assert_mem_eq(v.p, "10", 2);
    cio_http_response_free(&resp);
    fx_stop(&f);
    return 0;
}

T_LOOP_TEST(post_sends_body_with_content_length, main_post, 0)

static intptr_t main_empty_post(void *arg)
{
    (void)arg;
    fixture f = fx_start(NULL);
    cio_http_request rq = {.method = "POST", .target = "/echo"};
    cio_http_response resp;
    fx_fetch(&f, &rq, &resp);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_uint_eq(resp.body.n, 0);
    ck_assert_str_eq(resp.body.p, "");
    cio_str v = cio_http_response_header(&resp, "X-Got-Length");
    ck_assert_uint_eq(v.n, 1);
    ck_assert_mem_eq(v.p, "0", 1);
    cio_http_response_free(&resp);
    fx_stop(&f);
    return 0;
}

T_LOOP_TEST(empty_post_says_content_length_0, main_empty_post, 0)

/* The request head is built with the content type's length counted. */
static intptr_t main_long_type(void *arg)
{
    (void)arg;
    fixture f = fx_start(NULL);
    static char type[4001];
    memset(type, 'a', sizeof(type) - 1);
    memcpy(type, "text/", 5);
    cio_http_request rq = {.method = "POST", .target = "/echo", .content_type = type, .body = "b", .body_len = 1};
    cio_http_response resp;
    fx_fetch(&f, &rq, &resp);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(resp.body.p, "b");
    cio_str v = cio_http_response_header(&resp, "X-Got-Type");
    ck_assert_uint_eq(v.n, 4);
    ck_assert_mem_eq(v.p, "4000", 4);
    cio_http_response_free(&resp);
    fx_stop(&f);
    return 0;
}

T_LOOP_TEST(long_content_type_is_sent_whole, main_long_type, 0)

static intptr_t main_extra_headers(void *arg)
{
    (void)arg;
    fixture f = fx_start(NULL);
    cio_http_field h[] = {{CIO_STR("X-One"), CIO_STR("1")},
                          {CIO_STR("x-two"), CIO_STR("two words\tand a tab")}};
    cio_http_request rq = {.target = "/headers",
                           .headers = h, .nheaders = 2};
    cio_http_response resp;
    fx_fetch(&f, &rq, &resp);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(resp.body.p, "1|two words\tand a tab");
    cio_http_response_free(&resp);
    fx_stop(&f);
    return 0;
}

T_LOOP_TEST(extra_request_headers_arrive, main_extra_headers, 0)

static intptr_t main_request_head(void *arg)
{
    (void)arg;
    raw r = {0};
    RAW_START(&r, {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, CLOSE});
    cio_http_client_opts o = {.user_agent = "test-agent/1"};
    cio_http_client *c = client_new(&o);
    cio_http_response resp;
    ck_assert_int_eq(cio_http_get(c, "127.0.0.1", r.port, "/a?b=c", &resp, T_DEADLINE()), 0);
    cio_http_response_free(&resp);
    char want[128];
    snprintf(want, sizeof(want), "GET /a?b=c HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n", r.port);
    ck_assert_ptr_eq(strstr(r.req, want), r.req);
    ck_assert_ptr_nonnull(strstr(r.req, "\r\nUser-Agent: test-agent/1\r\n"));
    ck_assert_ptr_null(strcasestr(r.req, "Content-Length")); /* a GET without a body */
    client_free(c);
    raw_stop(&r);
    return 0;
}

T_LOOP_TEST(request_head_has_host_port_and_user_agent, main_request_head, 0)

static intptr_t main_head(void *arg)
{
    (void)arg;
    fixture f = fx_start(NULL);
    cio_http_request rq = {.method = "HEAD", .target = "/hello"};
    cio_http_response resp;
    fx_fetch(&f, &rq, &resp);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_uint_eq(resp.body.n, 0);
    ck_assert_str_eq(resp.body.p, "");
    cio_str v = cio_http_response_header(&resp, "Content-Length");
    ck_assert_uint_eq(v.n, 2);
    ck_assert_mem_eq(v.p, "13", 2);
    cio_http_response_free(&resp);
    ck_assert_uint_eq(client_stats(f.c).idle, 1); /* complete without a body: kept */
    fx_stop(&f);
    return 0;
}

T_LOOP_TEST(head_response_with_content_length_has_no_body, main_head, 0)

/* The Content-Length of a HEAD response is the representation's: it may be
 * far over max_response_bytes. */
START_TEST(head_response_may_announce_more_than_the_limit)
{
    canned k = {.reply = "HTTP/1.1 200 OK\r\nContent-Length: 50000000\r\n\r\n",
                .then = HOLD, .method = "HEAD", .opts = {.max_response_bytes = 4096}};
    canned_run(&k);
    ck_assert_int_eq(k.rc, 0);
    ck_assert_int_eq(k.resp.status, 200);
    ck_assert_uint_eq(k.resp.body.n, 0);
    cio_http_response_free(&k.resp);
}
END_TEST

static intptr_t main_chunked(void *arg)
{
    (void)arg;
    fixture f = fx_start(NULL);
    cio_http_response resp;
    ck_assert_int_eq(cio_http_get(f.c, "127.0.0.1", f.port, "/chunked", &resp, T_DEADLINE()), 0);
    ck_assert_int_eq(resp.status, 200);
    cio_str te = cio_http_response_header(&resp, "transfer-encoding");
    ck_assert_uint_eq(te.n, 7);
    ck_assert_mem_eq(te.p, "chunked", 7);
    ck_assert_uint_eq(resp.body.n, 9);
    ck_assert_str_eq(resp.body.p, "abcabcabc");
    cio_http_response_free(&resp);
    ck_assert_uint_eq(client_stats(f.c).idle, 1);
    fx_stop(&f);
    return 0;
}

T_LOOP_TEST(chunked_response_is_dechunked, main_chunked, 0)

static const char chunked_reply[] = "HTTP/1.1 200 OK\r\n"
                                    "Transfer-Encoding: chunked\r\n"
                                    "X-Before: 1\r\n"
                                    "\r\n"
                                    "5\r\nhello\r\n"
                                    "1;ext=\"quoted\"\r\n,\r\n"
                                    "0006\r\n world\r\n"
                                    "0\r\n"
                                    "X-Trailer: not kept\r\n"
                                    "\r\n";

static void check_chunked_reply(canned *k)
{
    ck_assert_int_eq(k->rc, 0);
    ck_assert_int_eq(k->resp.status, 200);
    ck_assert_uint_eq(k->resp.body.n, 12);
    ck_assert_str_eq(k->resp.body.p, "hello, world");
    ck_assert_uint_eq(k->resp.nheaders, 2); /* the trailer is not kept */
    ck_assert_ptr_nonnull(cio_http_response_header(&k->resp, "X-Before").p);
    ck_assert_ptr_null(cio_http_response_header(&k->resp, "X-Trailer").p);
    ck_assert_uint_eq(k->st.idle, 1); /* the response's end is known: kept alive */
    cio_http_response_free(&k->resp);
}

START_TEST(chunked_response_split_byte_by_byte)
{
    canned k = {.reply = chunked_reply, .then = HOLD, .piece = 1};
    canned_run(&k);
    check_chunked_reply(&k);
}
END_TEST

START_TEST(chunked_response_split_in_odd_pieces)
{
    canned k = {.reply = chunked_reply, .then = HOLD, .piece = 7};
    canned_run(&k);
    check_chunked_reply(&k);
}
END_TEST

START_TEST(close_delimited_response_completes_at_the_close)
{
    canned k = {.reply = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close",
                .then = CLOSE, .piece = 5};
    canned_run(&k);
    ck_assert_int_eq(k.rc, 0);
    ck_assert_int_eq(k.resp.status, 200);
    ck_assert_str_eq(k.resp.body.p, "until the close");
    ck_assert_uint_eq(k.st.idle, 0);
    cio_http_response_free(&k.resp);
}
END_TEST

/* No length and no close: the status says there is no body. */
START_TEST(no_content_204_completes_without_a_body)
{
    canned k = {.reply = "HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n", .then = HOLD};
    canned_run(&k);
    ck_assert_int_eq(k.rc, 0);
    ck_assert_int_eq(k.resp.status, 204);
    ck_assert_uint_eq(k.resp.body.n, 0);
    ck_assert_uint_eq(k.st.idle, 1);
    cio_http_response_free(&k.resp);
}
END_TEST

START_TEST(not_modified_304_completes_without_a_body)
{
    canned k = {.reply = "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", .then = HOLD};
    canned_run(&k);
    ck_assert_int_eq(k.rc, 0);
    ck_assert_int_eq(k.resp.status, 304);
    ck_assert_uint_eq(k.resp.body.n, 0);
    ck_assert_uint_eq(k.st.idle, 1);
    cio_http_response_free(&k.resp);
}
END_TEST

/* A 304 may carry the Content-Length of the representation it validates
 * (RFC 9110 8.6): no body follows it. */
START_TEST(not_modified_304_with_content_length_has_no_body)
{
    canned k = {.reply = "HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n\r\n",
                .then = HOLD};
    canned_run(&k);
    ck_assert_int_eq(k.rc, 0);
    ck_assert_int_eq(k.resp.status, 304);
    ck_assert_uint_eq(k.resp.body.n, 0);
    cio_http_response_free(&k.resp);
}
END_TEST

START_TEST(continue_then_the_final_response)
{
    canned k = {.reply = "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
                         "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Final: yes\r\n\r\nok",
                .then = HOLD, .piece = 3};
    canned_run(&k);
    ck_assert_int_eq(k.rc, 0);
    ck_assert_int_eq(k.resp.status, 200);
    ck_assert_str_eq(k.resp.body.p, "ok");
    ck_assert_uint_eq(k.resp.nheaders, 2);
    ck_assert_ptr_null(cio_http_response_header(&k.resp, "X-Interim").p);
    ck_assert_ptr_nonnull(cio_http_response_header(&k.resp, "X-Final").p);
    cio_http_response_free(&k.resp);
}
END_TEST

/* A 1xx response ends with its head (RFC 9110 15.2): a Content-Length on
 * it announces no body. */
START_TEST(interim_response_has_no_body)
{
    canned k = {.reply = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\nContent-Length: 4\r\n\r\n"
                         "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                .then = HOLD};
    canned_run(&k);
    ck_assert_int_eq(k.rc, 0);
    ck_assert_int_eq(k.resp.status, 200);
    ck_assert_str_eq(k.resp.body.p, "ok");
    ck_assert_uint_eq(k.resp.nheaders, 1);
    cio_http_response_free(&k.resp);
}
END_TEST

/* ---- keep-alive ----------------------------------------------------------------- */

static intptr_t main_reuse(void *arg)
{
    (void)arg;
    fixture f = fx_start(NULL);
    cio_http_response resp;
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(cio_http_get(f.c, "127.0.0.1", f.port, "/hello", &resp, T_DEADLINE()), 0);
        ck_assert_str_eq(resp.body.p, "Hello, World!");
        cio_http_response_free(&resp);
    }
    cio_http_client_stats st = client_stats(f.c);
    ck_assert_uint_eq(st.connects, 1);
    ck_assert_uint_eq(st.reuses, 1);
    ck_assert_uint_eq(st.idle, 1);
    ck_assert_uint_eq(st.requests, 2);
    fx_stop(&f);
    return 0;
}

T_LOOP_TEST(keep_alive_connection_is_reused, main_reuse, 0)

static intptr_t main_no_reuse(void *arg)
{
    (void)arg;
    cio_http_opts o = {.max_requests_per_conn = 1}; /* every response says Connection: close */
    fixture f = fx_start(&o);
    cio_http_response resp;
    ck_assert_int_eq(cio_http_get(f.c, "127.0.0.1", f.port, "/hello", &resp, T_DEADLINE()), 0);
    cio_str v = cio_http_response_header(&resp, "Connection");
    ck_assert_uint_eq(v.n, 5);
    ck_assert_mem_eq(v.p, "close", 5);
    cio_http_response_free(&resp);
    ck_assert_uint_eq(client_stats(f.c).idle, 0);
    ck_assert_int_eq(cio_http_get(f.c, "127.0.0.1", f.port, "/hello", &resp, T_DEADLINE()), 0);
    cio_http_response_free(&resp);
    cio_http_client_stats st = client_stats(f.c);
    ck_assert_uint_eq(st.connects, 2);
    ck_assert_uint_eq(st.reuses, 0);
    fx_stop(&f);
    return 0;
}

T_LOOP_TEST(connection_close_response_is_not_reused, main_no_reuse, 0)

static intptr_t main_idle_closed(void *arg)
{
    (void)arg;
    cio_http_opts o = {.keepalive_timeout = CIO_MS(50)};
    fixture f = fx_start(&o);
    cio_http_response resp;
    ck_assert_int_eq(cio_http_get(f.c, "127.0.0.1", f.port, "/hello", &resp, T_DEADLINE()), 0);
    cio_http_response_free(&resp);
    ck_assert_uint_eq(client_stats(f.c).idle, 1);
    /* The server closes the idle connection; the client still holds it. */
    ck_assert(T_AWAIT(srv_connections(f.s) == 0, T_PATIENCE_MS));
    ck_assert_int_eq(cio_http_get(f.c, "127.0.0.1", f.port, "/hello", &resp, T_DEADLINE()), 0);
    ck_assert_str_eq(resp.body.p, "Hello, World!");
    cio_http_response_free(&resp);
    cio_http_client_stats st = client_stats(f.c);
    ck_assert_uint_eq(st.connects, 2); /* found closed, or retried: a new connection */
    ck_assert_uint_le(st.retries, 1);
    ck_assert_uint_eq(st.requests, 2);
    ck_assert_uint_eq(st.failures, 0);
    fx_stop(&f);
    return 0;
}

T_LOOP_TEST(idle_connection_closed_by_the_server_is_replaced, main_idle_closed, 0)

/* The kept-alive connection looks open, but the server closes it on
 * reading the next request: a GET is sent again on a new one. */
static intptr_t main_retry(void *arg)
{
    (void)arg;
    raw r = {0};
    RAW_START(&r, {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1", 0, KEEP},
              {NULL, 0, CLOSE}, {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2", 0, HOLD});
    cio_http_client *c = client_new(NULL);
    cio_http_response resp;
    ck_assert_int_eq(cio_http_get(c, "127.0.0.1", r.port, "/", &resp, T_DEADLINE()), 0);
    ck_assert_str_eq(resp.body.p, "1");
    cio_http_response_free(&resp);
    ck_assert_int_eq(cio_http_get(c, "127.0.0.1", r.port, "/", &resp, T_DEADLINE()), 0);
    ck_assert_str_eq(resp.body.p, "2");
    cio_http_response_free(&resp);
    cio_http_client_stats st = client_stats(c);
    ck_assert_uint_eq(st.retries, 1);
    ck_assert_uint_eq(st.reuses, 1);
    ck_assert_uint_eq(st.connects, 2);
    ck_assert_uint_eq(st.failures, 0);
    client_free(c);
    raw_stop(&r);
    ck_assert_int_eq(r.requests, 3);
    return 0;
}

T_LOOP_TEST(reused_connection_closed_before_answering_is_retried, main_retry, 0)

static intptr_t main_no_retry(void *arg)
{
    (void)arg;
    raw r = {0};
    RAW_START(&r, {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1", 0, KEEP},
              {NULL, 0, CLOSE});
    cio_http_client *c = client_new(NULL);
    cio_http_response resp;
    ck_assert_int_eq(cio_http_get(c, "127.0.0.1", r.port, "/", &resp, T_DEADLINE()), 0);
    cio_http_response_free(&resp);
    cio_http_request rq = {.method = "POST", .host = "127.0.0.1", .port = r.port,
                           .body = "x", .body_len = 1};
    int rc = cio_http_fetch(c, &rq, &resp, T_DEADLINE());
    ck_assert_msg(rc == -EPIPE || rc == -ECONNRESET, "rc %d", rc);
    cio_http_client_stats st = client_stats(c);
    ck_assert_uint_eq(st.retries, 0);
    ck_assert_uint_eq(st.connects, 1);
    ck_assert_uint_eq(st.failures, 1);
    client_free(c);
    raw_stop(&r);
    return 0;
}

T_LOOP_TEST(post_on_a_connection_closed_before_answering_is_not_retried, main_no_retry, 0)

/* ---- limits and malformed responses ------------------------------------------------ */

START_TEST(content_length_over_max_response_is_emsgsize)
{
    canned k = {.reply = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nabc", .then = HOLD,
                .opts = {.max_response_bytes = 4096}};
    canned_run(&k);
    ck_assert_int_eq(k.rc, -EMSGSIZE);
    ck_assert_ptr_null(k.resp.raw_);
    ck_assert_uint_eq(k.st.idle, 0);
    ck_assert_uint_eq(k.st.failures, 1);
}
END_TEST

/* "1000\r\n" + 4096 bytes, n times, then no end. */
static char *chunks_of(size_t n, size_t *len)
{
    const char *head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    size_t hl = strlen(head);
    char *p = malloc(hl + n * (6 + 4096 + 2));
    ck_assert_ptr_nonnull(p);
    memcpy(p, head, hl);
    *len = hl;
    for (size_t i = 0; i < n; i++) {
        memcpy(p + *len, "1000\r\n", 6);
        memset(p + *len + 6, 'x', 4096);
        memcpy(p + *len + 6 + 4096, "\r\n", 2);
        *len += 6 + 4096 + 2;
    }
    return p;
}

START_TEST(chunked_body_growing_past_max_response_is_emsgsize)
{
    size_t len;
    char *big = chunks_of(64, &len); /* 256 KiB of body, no end */
    canned k = {.reply = big, .reply_len = len, .then = HOLD,
                .opts = {.max_response_bytes = 16384}};
    canned_run(&k);
    ck_assert_int_eq(k.rc, -EMSGSIZE);
    free(big);
}
END_TEST

START_TEST(close_delimited_body_growing_past_max_response_is_emsgsize)
{
    static char big[200000];
    const char *head = "HTTP/1.1 200 OK\r\n\r\n";
    memset(big, 'y', sizeof(big));
    memcpy(big, head, strlen(head));
    canned k = {.reply = big, .reply_len = sizeof(big), .then = HOLD,
                .opts = {.max_response_bytes = 16384}};
    canned_run(&k);
    ck_assert_int_eq(k.rc, -EMSGSIZE);
}
END_TEST

/* The head arrives in one read: its size is still checked. */
START_TEST(head_over_max_header_bytes_is_emsgsize)
{
    static char reply[2100];
    const char *a = "HTTP/1.1 200 OK\r\nX-Big: ", *b = "\r\nContent-Length: 0\r\n\r\n";
    memset(reply, 'v', sizeof(reply) - 1);
    memcpy(reply, a, strlen(a));
    memcpy(reply + sizeof(reply) - 1 - strlen(b), b, strlen(b));
    canned k = {.reply = reply, .then = HOLD, .opts = {.max_header_bytes = 1024}};
    canned_run(&k);
    ck_assert_int_eq(k.rc, -EMSGSIZE);
}
END_TEST

START_TEST(endless_head_is_emsgsize)
{
    static char reply[100000];
    const char *a = "HTTP/1.1 200 OK\r\n", *line = "X-Many: 1\r\n";
    size_t n = strlen(a), ll = strlen(line);
    memcpy(reply, a, n);
    while (n + ll < sizeof(reply)) { /* field lines, and never the blank line */
        memcpy(reply + n, line, ll);
        n += ll;
    }
    canned k = {.reply = reply, .reply_len = n, .then = HOLD,
                .opts = {.max_header_bytes = 4096}};
    canned_run(&k);
    ck_assert_int_eq(k.rc, -EMSGSIZE);
}
END_TEST

/* Interim responses, one after the other, count against the response's size. */
START_TEST(endless_interim_responses_are_emsgsize)
{
    static char reply[100 * 1024];
    const char *line = "HTTP/1.1 100 Continue\r\n\r\n";
    size_t ll = strlen(line), n = 0;
    while (n + ll < sizeof(reply)) {
        memcpy(reply + n, line, ll);
        n += ll;
    }
    canned k = {.reply = reply, .reply_len = n, .then = HOLD,
                .opts = {.max_response_bytes = 16384}};
    canned_run(&k);
    ck_assert_int_eq(k.rc, -EMSGSIZE);
}
END_TEST

START_TEST(huge_chunk_extension_is_refused)
{
    static char reply[64 * 1024];
    const char *head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;e=";
    memset(reply, 'e', sizeof(reply) - 1);
    memcpy(reply, head, strlen(head));
    canned k = {.reply = reply, .then = HOLD};
    canned_run(&k);
    ck_assert_msg(k.rc == -EPROTO || k.rc == -EMSGSIZE, "rc %d", k.rc);
}
END_TEST

START_TEST(garbage_is_eproto)
{
    canned k = {.reply = "hello\r\n\r\n", .then = HOLD};
    canned_run(&k);
    ck_assert_int_eq(k.rc, -EPROTO);
    ck_assert_uint_eq(k.st.idle, 0);
}
END_TEST

START_TEST(transfer_encoding_with_content_length_is_eproto)
{
    canned k = {.reply = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "3\r\nabc\r\n0\r\n\r\n",
                .then = HOLD};
    canned_run(&k);
    ck_assert_int_eq(k.rc, -EPROTO);
}
END_TEST

START_TEST(switching_protocols_is_eproto)
{
    canned k = {.reply = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\n\r\n\x81\x02hi",
                .then = HOLD};
    canned_run(&k);
    ck_assert_int_eq(k.rc, -EPROTO);
}
END_TEST

START_TEST(http2_status_line_is_eproto)
{
    canned k = {.reply = "HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok", .then = HOLD};
    canned_run(&k);
    ck_assert_int_eq(k.rc, -EPROTO);
}
END_TEST

/* llhttp 8.1 reads "21" as a status; a status code has three digits. */
START_TEST(status_of_two_digits_is_eproto)
{
    canned k = {.reply = "HTTP/1.1 21 OK\r\nContent-Length: 2\r\n\r\nok", .then = HOLD};
    canned_run(&k);
    ck_assert_int_eq(k.rc, -EPROTO);
}
END_TEST

START_TEST(close_in_the_middle_of_the_body_is_epipe)
{
    canned k = {.reply = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
                .then = CLOSE};
    canned_run(&k);
    ck_assert_msg(k.rc == -EPIPE || k.rc == -ECONNRESET, "rc %d", k.rc);
    ck_assert_ptr_null(k.resp.raw_);
}
END_TEST

START_TEST(close_in_the_middle_of_a_chunk_is_epipe)
{
    canned k = {.reply = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
                .then = CLOSE};
    canned_run(&k);
    ck_assert_msg(k.rc == -EPIPE || k.rc == -ECONNRESET, "rc %d", k.rc);
}
END_TEST

START_TEST(close_without_an_answer_is_an_error)
{
    canned k = {.reply = NULL, .then = CLOSE};
    canned_run(&k);
    ck_assert_msg(k.rc == -EPIPE || k.rc == -ECONNRESET, "rc %d", k.rc);
    ck_assert_uint_eq(k.st.retries, 0); /* a fresh connection: not retried */
    ck_assert_uint_eq(k.st.failures, 1);
}
END_TEST

/* ---- deadlines and cancellation -------------------------------------------------- */

START_TEST(silent_server_times_out_at_the_deadline)
{
    canned k = {.reply = NULL, .then = HOLD, .deadline = CIO_MS(200)};
    canned_run(&k);
    ck_assert_int_eq(k.rc, -ETIMEDOUT);
    ck_assert_int_lt(k.took, CIO_SEC(10));
    ck_assert_uint_eq(k.st.idle, 0);
}
END_TEST

typedef struct fetcher {
    cio_http_client *c;
    uint16_t port;
    const char *target; /* default "/" */
    cio_scope *scope;   /* while the fetch is under way */
    int rc;
} fetcher;

static intptr_t fetch_task(void *arg)
{
    fetcher *f = arg;
    cio_scope s;
    cio_scope_enter(&s, CIO_NEVER, false);
    f->scope = &s;
    cio_http_response resp;
    f->rc = cio_http_get(f->c, "127.0.0.1", f->port, f->target ? f->target : "/", &resp, cio_after(CIO_SEC(30)));
    f->scope = NULL;
    cio_scope_exit(&s);
    cio_http_response_free(&resp);
    return 0;
}

static intptr_t main_cancel(void *arg)
{
    (void)arg;
    raw r = {0};
    RAW_START(&r, {NULL, 0, HOLD});
    cio_http_client *c = client_new(NULL);
    fetcher f = {.c = c, .port = r.port, .rc = 1};
    cio_task *t;
    ck_assert_int_eq(cio_spawn(NULL, &t, fetch_task, &f), 0);
    ck_assert(T_AWAIT(r.requests == 1, T_PATIENCE_MS)); /* the request is out */
    ck_assert_ptr_nonnull(f.scope);
    cio_scope_cancel(f.scope);
    ck_assert_int_eq(cio_join(t, cio_after(CIO_SEC(10))), 0);
    ck_assert_int_eq(f.rc, -ECANCELED);
    cio_http_client_stats st = client_stats(c);
    ck_assert_uint_eq(st.idle, 0);
    ck_assert_uint_eq(st.inflight, 0);
    ck_assert_uint_eq(st.failures, 1);
    ck_assert(T_AWAIT(r.peer_closed == 1, T_PATIENCE_MS)); /* the connection is closed */
    client_free(c);
    raw_stop(&r);
    return 0;
}

T_LOOP_TEST(cancelling_the_scope_stops_the_fetch_and_closes_the_connection, main_cancel, 0)

/* ---- a listening socket made elsewhere (socket activation) ------------------------------- */

/* [awaits] GET /hello on 127.0.0.1:port answers 200. */
static void get_hello(cio_http_client *c, uint16_t port)
{
    cio_http_response resp;
    ck_assert_int_eq(cio_http_get(c, "127.0.0.1", port, "/hello", &resp, T_DEADLINE()), 0);
    ck_assert_int_eq(resp.status, 200);
    cio_http_response_free(&resp);
}

static intptr_t main_listen_fd(void *arg)
{
    (void)arg;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    cio_http_server *s1, *s2;
    ck_assert_int_eq(cio_http_server_create(NULL, NULL, &s1), 0);
    ck_assert_int_eq(cio_http_route(s1, "GET", "/hello", h_hello, NULL), 0);
    /* Not listening yet: refused, and still ours. */
    ck_assert_int_eq(cio_http_listen_fd(s1, lfd, NULL, NULL), -EINVAL);
    ck_assert_int_eq(listen(lfd, 16), 0);
    char text[64], want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%u", ntohs(a.sin_port));
    cio_http_listen_opts lo = {.shared = true};
    ck_assert_int_eq(cio_http_listen_fd(s1, dup(lfd), &lo, text), 0);
    ck_assert_str_eq(text, want);
    /* A second server (of another loop, in a daemon) on a copy of it. */
    ck_assert_int_eq(cio_http_server_create(NULL, NULL, &s2), 0);
    ck_assert_int_eq(cio_http_route(s2, "GET", "/hello", h_hello, NULL), 0);
    ck_assert_int_eq(cio_http_listen_fd(s2, dup(lfd), &lo, NULL), 0);
    close(lfd); /* each server holds a copy of its own */
    cio_http_client *c = client_new(NULL);
    for (int i = 0; i < 4; i++)
        get_hello(c, ntohs(a.sin_port));
    /* One server stops: the other serves on the same socket. */
    client_free(c);
    srv_stop(s1);
    c = client_new(NULL);
    get_hello(c, ntohs(a.sin_port));
    client_free(c);
    srv_stop(s2);
    ck_assert_int_eq(cio_http_listen_fd(NULL, -1, NULL, NULL), -EBADF);
    return 0;
}

T_LOOP_TEST(listen_fd_serves_on_a_socket_made_elsewhere, main_listen_fd, 0)

/* ---- addresses ------------------------------------------------------------------------ */

static intptr_t main_refused(void *arg)
{
    (void)arg;
    int fd = cio_socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    cio_close(fd); /* nobody listens there now */
    cio_http_client *c = client_new(NULL);
    cio_http_response resp;
    ck_assert_int_eq(cio_http_get(c, "127.0.0.1", ntohs(a.sin_port), "/", &resp, T_DEADLINE()),
                     -ECONNREFUSED);
    ck_assert_uint_eq(client_stats(c).connects, 0);
    client_free(c);
    return 0;
}

T_LOOP_TEST(connection_refused_is_econnrefused, main_refused, 0)

static intptr_t main_nxdomain(void *arg)
{
    (void)arg;
    cio_http_client *c = client_new(NULL);
    cio_http_response resp;
    /* .invalid never resolves (RFC 6761); a machine without a resolver
     * answers with a temporary failure. */
    int rc = cio_http_get(c, "nonexistent.invalid", 80, "/", &resp, cio_after(CIO_SEC(40)));
    ck_assert_msg(rc == -ENXIO || rc == -EAGAIN, "rc %d", rc);
    cio_http_client_stats st = client_stats(c);
    ck_assert_uint_eq(st.lookups, 1);
    ck_assert_uint_eq(st.connects, 0);
    client_free(c);
    return 0;
}

T_LOOP_TEST(name_that_does_not_resolve_fails, main_nxdomain, 0)

/* localhost may resolve to ::1 before 127.0.0.1, where nothing listens:
 * every address is tried. */
static intptr_t main_localhost(void *arg)
{
    (void)arg;
    fixture f = fx_start(NULL);
    cio_http_response resp;
    ck_assert_int_eq(cio_http_get(f.c, "localhost", f.port, "/hello", &resp, cio_after(CIO_SEC(30))),
                     0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(resp.body.p, "Hello, World!");
    cio_http_response_free(&resp);
    cio_http_client_stats st = client_stats(f.c);
    ck_assert_uint_eq(st.lookups, 1);
    ck_assert_uint_eq(st.connects, 1);
    fx_stop(&f);
    return 0;
}

T_LOOP_TEST(localhost_resolves_and_every_address_is_tried, main_localhost, 0)

/* ---- malformed requests ------------------------------------------------------------- */

/* fetch's result for rq sent to a port where nobody listens: the request
 * must be refused before any connection. */
static int fetch_refused(cio_http_request rq)
{
    cio_http_client *c = client_new(NULL);
    cio_http_response resp;
    rq.host = rq.host ? rq.host : "127.0.0.1";
    rq.port = 1;
    int rc = cio_http_fetch(c, &rq, &resp, T_DEADLINE());
    ck_assert_ptr_null(resp.raw_);
    cio_http_client_stats st = client_stats(c);
    ck_assert_uint_eq(st.connects, 0);
    ck_assert_uint_eq(st.inflight, 0);
    client_free(c);
    return rc;
}

static intptr_t main_bad_method(void *arg)
{
    (void)arg;
    return fetch_refused((cio_http_request){.method = "GET /evil HTTP/1.1\r\nX:"});
}

T_LOOP_TEST(method_with_a_space_is_einval, main_bad_method, -EINVAL)

static intptr_t main_bad_target(void *arg)
{
    (void)arg;
    return fetch_refused((cio_http_request){.target = "/a\r\nX-Injected: 1"});
}

T_LOOP_TEST(target_with_cr_lf_is_einval, main_bad_target, -EINVAL)

static intptr_t main_bad_value(void *arg)
{
    (void)arg;
    static const cio_http_field h[] = {{CIO_STR("X-A"), CIO_STR("ok\nX-Injected: 1")}};
    return fetch_refused((cio_http_request){.headers = h, .nheaders = 1});
}

T_LOOP_TEST(header_value_with_lf_is_einval, main_bad_value, -EINVAL)

static intptr_t main_forbidden_header(void *arg)
{
    (void)arg;
    static const cio_http_field h[] = {{CIO_STR("content-LENGTH"), CIO_STR("5")}};
    return fetch_refused((cio_http_request){.headers = h, .nheaders = 1});
}

T_LOOP_TEST(forbidden_header_is_einval, main_forbidden_header, -EINVAL)

/* ---- destroy ------------------------------------------------------------------------- */

static intptr_t main_destroy_busy(void *arg)
{
    (void)arg;
    raw r = {0};
    RAW_START(&r, {NULL, 0, HOLD});
    cio_http_client *c = client_new(NULL);
    fetcher f = {.c = c, .port = r.port, .rc = 1};
    cio_task *t;
    ck_assert_int_eq(cio_spawn(NULL, &t, fetch_task, &f), 0);
    ck_assert(T_AWAIT(r.requests == 1, T_PATIENCE_MS));
    ck_assert_int_eq(cio_http_client_destroy(c), -EBUSY);
    ck_assert_uint_eq(client_stats(c).inflight, 1); /* nothing done: still usable */
    cio_scope_cancel(f.scope);
    ck_assert_int_eq(cio_join(t, cio_after(CIO_SEC(10))), 0);
    ck_assert_int_eq(f.rc, -ECANCELED);
    client_free(c);
    raw_stop(&r);
    return 0;
}

T_LOOP_TEST(destroy_during_a_fetch_is_ebusy, main_destroy_busy, 0)

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static intptr_t main_destroy_idle(void *arg)
{
    (void)arg;
    uint16_t port;
    cio_http_server *s = srv_start(NULL, &port);
    int before = open_fds();
    cio_http_client_opts o = {.max_idle_per_addr = 4};
    cio_http_client *c = client_new(&o);
    /* Three at once: three connections, all kept. */
    fetcher f[3];
    cio_task *t[3];
    for (int i = 0; i < 3; i++) {
        f[i] = (fetcher){.c = c, .port = port, .target = "/hello", .rc = 1};
        ck_assert_int_eq(cio_spawn(NULL, &t[i], fetch_task, &f[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(cio_join(t[i], cio_after(CIO_SEC(10))), 0);
        ck_assert_int_eq(f[i].rc, 0);
    }
    cio_http_client_stats st = client_stats(c);
    ck_assert_uint_eq(st.connects, 3);
    ck_assert_uint_eq(st.idle, 3);
    ck_assert_int_gt(open_fds(), before);
    client_free(c);
    /* The server sees the three connections close. */
    ck_assert(T_AWAIT(srv_connections(s) == 0, T_PATIENCE_MS));
    ck_assert_int_eq(open_fds(), before);
    srv_stop(s);
    return 0;
}

T_LOOP_TEST(destroy_closes_idle_connections, main_destroy_idle, 0)

static Suite *http_client_suite(void)
{
    Suite *s = suite_create("http_client");
    T_CASE(s, get_returns_status_headers_and_body, 20);
    T_CASE(s, listen_fd_serves_on_a_socket_made_elsewhere, 20);
    T_CASE(s, post_sends_body_with_content_length, 20);
    T_CASE(s, empty_post_says_content_length_0, 20);
    T_CASE(s, long_content_type_is_sent_whole, 20);
    T_CASE(s, extra_request_headers_arrive, 20);
    T_CASE(s, request_head_has_host_port_and_user_agent, 20);
    T_CASE(s, head_response_with_content_length_has_no_body, 20);
    T_CASE(s, head_response_may_announce_more_than_the_limit, 20);
    T_CASE(s, chunked_response_is_dechunked, 20);
    T_CASE(s, chunked_response_split_byte_by_byte, 20);
    T_CASE(s, chunked_response_split_in_odd_pieces, 20);
    T_CASE(s, close_delimited_response_completes_at_the_close, 20);
    T_CASE(s, no_content_204_completes_without_a_body, 20);
    T_CASE(s, not_modified_304_completes_without_a_body, 20);
    T_CASE(s, not_modified_304_with_content_length_has_no_body, 20);
    T_CASE(s, continue_then_the_final_response, 20);
    T_CASE(s, interim_response_has_no_body, 20);
    T_CASE(s, keep_alive_connection_is_reused, 20);
    T_CASE(s, connection_close_response_is_not_reused, 20);
    T_CASE(s, idle_connection_closed_by_the_server_is_replaced, 20);
    T_CASE(s, reused_connection_closed_before_answering_is_retried, 20);
    T_CASE(s, post_on_a_connection_closed_before_answering_is_not_retried, 20);
    T_CASE(s, content_length_over_max_response_is_emsgsize, 20);
    T_CASE(s, chunked_body_growing_past_max_response_is_emsgsize, 20);
    T_CASE(s, close_delimited_body_growing_past_max_response_is_emsgsize, 20);
    T_CASE(s, head_over_max_header_bytes_is_emsgsize, 20);
    T_CASE(s, endless_head_is_emsgsize, 20);
    T_CASE(s, endless_interim_responses_are_emsgsize, 20);
    T_CASE(s, huge_chunk_extension_is_refused, 20);
    T_CASE(s, garbage_is_eproto, 20);
    T_CASE(s, transfer_encoding_with_content_length_is_eproto, 20);
    T_CASE(s, switching_protocols_is_eproto, 20);
    T_CASE(s, http2_status_line_is_eproto, 20);
    T_CASE(s, status_of_two_digits_is_eproto, 20);
    T_CASE(s, close_in_the_middle_of_the_body_is_epipe, 20);
    T_CASE(s, close_in_the_middle_of_a_chunk_is_epipe, 20);
    T_CASE(s, close_without_an_answer_is_an_error, 20);
    T_CASE(s, silent_server_times_out_at_the_deadline, 20);
    T_CASE(s, cancelling_the_scope_stops_the_fetch_and_closes_the_connection, 20);
    T_CASE(s, connection_refused_is_econnrefused, 20);
    T_CASE(s, name_that_does_not_resolve_fails, 60);
    T_CASE(s, localhost_resolves_and_every_address_is_tried, 60);
    T_CASE(s, method_with_a_space_is_einval, 20);
    T_CASE(s, target_with_cr_lf_is_einval, 20);
    T_CASE(s, header_value_with_lf_is_einval, 20);
    T_CASE(s, forbidden_header_is_einval, 20);
    T_CASE(s, destroy_during_a_fetch_is_ebusy, 20);
    T_CASE(s, destroy_closes_idle_connections, 20);
    return s;
}

T_MAIN(http_client_suite)
