/* hello.c - a server of its own on libcorio: corio's settings, workers,
 * signals and operators' routes (cio_app.h), and three routes:
 *   GET /hello      "hello\n"
 *   GET /backend    GET / of the backend in $HELLO_BACKEND (host:port),
 *                   awaited through the async client, at most 4 at once
 *                   per worker (a slow backend gets few connections)
 *   GET /ws/upper   WebSocket: each text message back in capitals */
#include <cio_app.h>

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct backend {   /* one per worker: loop objects stay on their loop */
    cio_http_client *client;
    cio_sem slots;
} backend;

static int hello(cio_http_req *req, void *ud)
{
    (void)ud;
    return cio_http_respond(req, 200, "text/plain", "hello\n", 6);
}

static int proxy(cio_http_req *req, void *ud)
{
    backend *b = ud;
    const char *addr = getenv("HELLO_BACKEND"), *colon = addr ? strrchr(addr, ':') : NULL;
    if (!colon)
        return cio_http_respond(req, 500, "text/plain", "set HELLO_BACKEND=host:port\n", 28);
    char *host = cio_arena_strndup(cio_http_arena(req), addr, (size_t)(colon - addr));
    if (!host)
        return -ENOMEM;
    cio_time deadline = cio_after(CIO_SEC(2));
    if (cio_sem_acquire(&b->slots, deadline) < 0)       /* waits while 4 are out */
        return cio_http_respond(req, 503, "text/plain", "busy\n", 5);
    cio_http_response r;
    int rc = cio_http_get(b->client, host, (uint16_t)atoi(colon + 1), "/", &r, deadline);
    cio_sem_release(&b->slots);
    if (rc < 0)                         /* -ETIMEDOUT, -ECONNREFUSED, -ENXIO, -EPROTO, ... */
        return cio_http_respond(req, 502, "text/plain", "backend down\n", 13);
    rc = cio_http_respond(req, r.status, "text/plain", r.body.p, r.body.n);
    cio_http_response_free(&r);
    return rc;
}

static void upper(cio_ws *ws, void *ud, bool binary, const uint8_t *data, size_t len)
{
    (void)ud;
    char *up = malloc(len + 1);
    for (size_t i = 0; up && i < len; i++)
        up[i] = binary ? (char)data[i] : (char)toupper(data[i]);
    if (up)
        cio_ws_send(ws, binary, up, len);               /* copied into the send queue */
    free(up);
}

static const cio_ws_handler upper_handler = {.on_message = upper};

static int ws_upper(cio_http_req *req, void *ud)
{
    int rc = cio_ws_accept(req, cio_app_worker_ws_opts(ud, false), &upper_handler, NULL);
    return rc < 0 ? rc : 0;                             /* 1 accepted, 0 refused (answered) */
}

/* On each worker's loop, before it listens. */
static int setup(cio_app_worker *w, void *ud)
{
    (void)ud;
    backend *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    cio_app_worker_set_data(w, b);
    cio_sem_init(&b->slots, 4);
    cio_http_server *srv = cio_app_worker_server(w);
    int rc = cio_http_client_create(NULL, NULL, &b->client);
    rc = rc ? rc : cio_http_route(srv, "GET", "/hello", hello, NULL);
    rc = rc ? rc : cio_http_route(srv, "GET", "/backend", proxy, b);
    rc = rc ? rc : cio_http_route(srv, "GET", "/ws/upper", ws_upper, w);
    return rc;
}

/* On each worker's loop, after its drain. */
static void teardown(cio_app_worker *w, void *ud)
{
    (void)ud;
    backend *b = cio_app_worker_data(w);
    if (b)
        cio_http_client_destroy(b->client);
    free(b);
}

int main(int argc, char **argv)
{
    cio_app_opts o = {.name = "hello", .setup = setup, .teardown = teardown};
    return cio_app_main(argc, argv, &o);  /* corio's flags: --listen, --config, --workers... */
}
