/*
 * fuzz_http.c - libFuzzer harness: arbitrary bytes through request parsing
 * and dispatch on an in-memory connection (cio_mem_transport), with routes that
 * echo, stream, read path parameters, await, and serve static files from a
 * small document root (with a symlink leading outside it as bait).
 *
 * The first input byte picks how the bytes are cut into reads (1 to 256
 * bytes, or all at once); the rest is what the client sends, followed by a
 * half-close. Each input runs until the server closes the connection or a
 * bounded number of loop turns passed, then the server shuts down.
 *
 *   CC=clang cmake -S . -B build-fuzz -DCORIO_FUZZ=ON -DCORIO_SANITIZE=address,undefined
 *   cmake --build build-fuzz --target fuzz_http
 *   ./build-fuzz/tests/fuzz_http -max_total_time=600 -dict=tests/fuzz/http.dict \
 *       corpus-dir tests/fuzz/corpus/http
 */
#include "cio.h"
#include "cio_http.h"
#include "cio_ws.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static cio_loop *loop;
static char root[64];

static int h_echo(cio_http_req *req, void *ud)
{
    (void)ud;
    cio_str b = cio_http_body(req);
    cio_str ct = cio_http_header(req, "Content-Type");
    if (ct.p)
        cio_http_add_header(req, "X-Type-Length", ct.n > 10 ? "long" : "short");
    return cio_http_respond(req, 200, "application/octet-stream", b.p, b.n);
}

/* A streamed route: reads the body in small pieces as it arrives. */
static int h_up(cio_http_req *req, void *ud)
{
    (void)ud;
    char buf[5];
    size_t total = 0;
    ssize_t n;
    while ((n = cio_http_read(req, buf, sizeof(buf))) > 0)
        total += (size_t)n;
    if (n < 0)
        return (int)n;
    char *body = cio_arena_printf(cio_http_arena(req), "%zu", total);
    return cio_http_respond(req, 200, "text/plain", body, strlen(body));
}

static int h_param(cio_http_req *req, void *ud)
{
    (void)ud;
    cio_str a = cio_http_param(req, "a"), q = cio_http_query_param(req, "q");
    char *body = cio_arena_printf(cio_http_arena(req), "%.*s|%.*s", (int)a.n, a.p ? a.p : "",
                                  (int)q.n, q.p ? q.p : "");
    return cio_http_respond(req, 200, "text/plain", body, strlen(body));
}

static int h_stream(cio_http_req *req, void *ud)
{
    (void)ud;
    int rc = cio_http_start(req, 200, "text/plain", -1);
    for (int i = 0; rc == 0 && i < 3; i++) {
        rc = cio_yield();
        rc = rc ? rc : cio_http_write(req, "chunk", 5);
    }
    return rc ? rc : cio_http_end(req);
}

/* WebSocket: bytes after an upgrade handshake are frames (echoed, and
 * published to a room). */
static cio_ws_topics *rooms;

static void ws_open(cio_ws *ws, void *ud)
{
    (void)ud;
    cio_ws_subscribe(ws, rooms, "r");
}

static void ws_message(cio_ws *ws, void *ud, bool binary, const uint8_t *data, size_t len)
{
    (void)ud;
    cio_ws_send(ws, binary, data, len);
    cio_ws_publish(rooms, "r", binary, data, len, ws);
    if (len && data[0] == 'c')
        cio_ws_close(ws, 4000, "asked");
}

static const cio_ws_handler ws_handler = {.on_open = ws_open, .on_message = ws_message};
static cio_ws_opts ws_opts;

static int h_ws(cio_http_req *req, void *ud)
{
    (void)ud;
    int rc = cio_ws_accept(req, &ws_opts, &ws_handler, NULL);
    return rc < 0 ? rc : 0;
}

static void make_root(void)
{
    snprintf(root, sizeof(root), "/tmp/corio-fuzz-%d", (int)getpid());
    char p[128];
    mkdir(root, 0755);
    snprintf(p, sizeof(p), "%s/dir", root);
    mkdir(p, 0755);
    static const struct {
        const char *name, *text;
    } files[] = {{"index.html", "<h1>home</h1>"}, {"a.txt", "0123456789"}, {"dir/index.html", "d"}};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", root, files[i].name);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            if (write(fd, files[i].text, strlen(files[i].text)) < 0)
                abort();
            close(fd);
        }
    }
    snprintf(p, sizeof(p), "%s/out", root);
    if (symlink("/etc/passwd", p) != 0 && errno != EEXIST)
        abort();
}

typedef struct run {
    const uint8_t *data;
    size_t size;
} run_t;

static intptr_t fuzz_main(void *arg)
{
    run_t *r = arg;
    /* A small budget, so that admission refusals and pauses are reached. */
    cio_budget budget;
    cio_budget_init(&budget, NULL, 8192);
    cio_http_opts o = {
        .max_header_bytes = 2048,
        .max_uri_bytes = 512,
        .max_body_bytes = 4096,
        .max_requests_per_conn = 50,
        .keepalive_timeout = CIO_SEC(60),
        .root = root,
        .budget = &budget,
    };
    cio_http_server *srv;
    if (cio_http_server_create(NULL, &o, &srv) < 0)
        abort();
    cio_http_route(srv, "POST", "/echo", h_echo, NULL);
    cio_http_route(srv, "GET", "/p/:a", h_param, NULL);
    cio_http_route(srv, "GET", "/p/:a/x", h_param, NULL);
    cio_http_route(srv, "GET", "/stream", h_stream, NULL);
    cio_http_route(srv, "GET", "/ws", h_ws, NULL);
    cio_http_route_stream(srv, "POST", "/up", h_up, NULL);
    if (!rooms && cio_ws_topics_create(&rooms) < 0)
        abort();
    cio_ws_opts_defaults(&ws_opts);
    ws_opts.max_message_bytes = 4096;
    ws_opts.send_queue_bytes = 16384;

    cio_http_conn *c = cio_http_conn_new(srv);
    cio_mem_transport m;
    cio_mem_transport_init(&m, NULL, cio_http_conn_cbs(), c);
    static const size_t chunks[] = {0, 1, 2, 3, 7, 16, 64, 256};
    m.chunk = r->size ? chunks[r->data[0] % 8] : 0;
    if (r->size > 1)
        cio_mem_transport_feed(&m, r->data + 1, r->size - 1);
    cio_mem_transport_feed_eof(&m);
    cio_http_conn_start(c, &m.t);
    for (int turn = 0; turn < 20000 && !m.closed; turn++)
        cio_yield();
    /* Whatever is still open (a request waiting for more bytes): close it. */
    cio_http_server_shutdown(srv, cio_now());
    cio_http_server_destroy(srv);
    if (budget.used != 0)
        abort(); /* a connection did not give back what it took */
    cio_budget_fini(&budget);
    cio_mem_transport_fini(&m);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!loop) {
        cio_log_set_level(CIO_LOG_ERROR);
        if (cio_loop_create(&loop, NULL) < 0)
            abort();
        make_root();
    }
    run_t r = {data, size};
    cio_run(loop, fuzz_main, &r);
    return 0;
}
