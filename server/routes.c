/*
 * routes.c - the corio daemon's own routes, written on the public API
 * (cio_app.h, cio_http.h, cio_ws.h) as any program would: /plaintext and
 * /json (the benchmarks' answers), /echo (a streamed body), /hash (the
 * reference example of CPU-bound work: PBKDF2 runs on the thread pool
 * while the loop keeps serving everyone else), /client-request (the
 * peer-ID example's request that needs self, awaiting it), and the
 * WebSocket routes /ws/echo and /ws/chat (rooms spanning the workers) on
 * the callback API, whose idle connections hold no stack and no buffer.
 */
#include "routes.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HASH_DEFAULT_ITERATIONS 100000
#define HASH_MAX_ITERATIONS     10000000

static int plaintext(cio_http_req *req, void *ud)
{
    (void)ud;
    return cio_http_respond(req, 200, "text/plain", "Hello, World!", 13);
}

/* Where a replicated protocol would take client requests: it must know
 * which member it is, so it waits for discovery (a request that arrives
 * during the search waits; it is not refused), within the handler's
 * deadline. Standalone (no "servers"), self is null. */
static int client_request(cio_http_req *req, void *ud)
{
    cio_app_worker *w = ud;
    const char *self = NULL;
    int rc = cio_app_await_self(w, &self, CIO_NEVER);
    if (rc == -ESRCH || rc == -ESHUTDOWN) {
        cio_http_add_header(req, "Retry-After", "1");
        static const char msg[] = "this server has not found itself in \"servers\"\n";
        return cio_http_respond(req, 503, "text/plain", msg, sizeof(msg) - 1);
    }
    if (rc < 0 && rc != -ENOENT)
        return rc;
    /* An entry is "host:port", validated: nothing in it needs escaping. */
    char *body = cio_arena_printf(cio_http_arena(req), "{\"self\": %s%s%s, \"id\": \"%s\"}\n",
                                  self ? "\"" : "", self ? self : "null", self ? "\"" : "",
                                  cio_app_worker_id(w)->hex);
    if (!body)
        return -ENOMEM;
    return cio_http_respond(req, 200, "application/json", body, strlen(body));
}

static int json(cio_http_req *req, void *ud)
{
    (void)ud;
    static const char body[] = "{\"message\":\"Hello, World!\"}";
    return cio_http_respond(req, 200, "application/json", body, sizeof(body) - 1);
}

/* The announced body length, -1 when unknown (chunked). */
static int64_t body_length(cio_http_req *req)
{
    cio_str cl = cio_http_header(req, "Content-Length");
    if (!cl.p)
        return cio_http_header(req, "Transfer-Encoding").p ? -1 : 0;
    int64_t n = 0;
    for (size_t i = 0; i < cl.n; i++)
        n = n * 10 + (cl.p[i] - '0'); /* the parser let only digits through */
    return n;
}

/* Reads until buf is full or the body ends: the length read, or -errno. */
static ssize_t read_full(cio_http_req *req, char *buf, size_t cap)
{
    size_t got = 0;
    while (got < cap) {
        ssize_t n = cio_http_read(req, buf + got, cap - got);
        if (n < 0)
            return n;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

#define ECHO_SLICE 8192 /* what an echo holds of the body at a time, on its stack */

/* Streams the body back as it arrives (a streamed route): the memory it
 * takes is a slice, not the body. A body that fits in one slice is answered
 * with a Content-Length, as a buffered echo would be. */
static int echo(cio_http_req *req, void *ud)
{
    (void)ud;
    cio_str ct = cio_http_header(req, "Content-Type");
    const char *type = "application/octet-stream";
    if (ct.p && ct.n && !memchr(ct.p, '\r', ct.n) && !memchr(ct.p, '\n', ct.n))
        type = cio_arena_strndup(cio_http_arena(req), ct.p, ct.n);
    if (!type)
        return -ENOMEM;
    char buf[ECHO_SLICE];
    ssize_t n = read_full(req, buf, sizeof(buf));
    if (n < 0)
        return (int)n; /* nothing sent yet: the status of the failure (408, 413...) */
    if ((size_t)n < sizeof(buf))
        return cio_http_respond(req, 200, type, buf, (size_t)n);
    int rc = cio_http_start(req, 200, type, body_length(req));
    while (rc == 0 && n > 0) {
        rc = cio_http_write(req, buf, (size_t)n);
        if (rc == 0)
            n = read_full(req, buf, sizeof(buf));
        if (n < 0)
            rc = (int)n; /* cut short: the client sees the connection close */
    }
    return rc ? rc : cio_http_end(req);
}

typedef struct hash_job {
    const char *password;
    size_t len;
    long iterations;
    unsigned char key[32];
} hash_job;

#define HASH_SLICE 1024 /* iterations between two looks at cio_job_cancelled() */

/* On a worker thread: touches only its job. PBKDF2-HMAC-SHA256 (RFC 8018)
 * of one 32-byte block, iterated here on libcrypto's HMAC rather than in
 * one PKCS5_PBKDF2_HMAC call, so that a job whose request was abandoned
 * (client gone, deadline passed) stops within a slice, about a millisecond. */
static intptr_t pbkdf2_job(void *arg)
{
    static const unsigned char salt_block1[] = {'c', 'o', 'r', 'i', 'o', 0, 0, 0, 1};
    hash_job *j = arg;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    unsigned char u[32], t[32];
    size_t n;
    intptr_t rc = -EIO;
    /* U1 = HMAC(password, salt || INT(1)); T = U1 ^ U2 ^ ... with Ui = HMAC(password, Ui-1).
     * EVP_MAC_init without a key restarts HMAC with the key already set. */
    if (!ctx || !EVP_MAC_init(ctx, (const unsigned char *)j->password, j->len, params) ||
        !EVP_MAC_update(ctx, salt_block1, sizeof(salt_block1)) ||
        !EVP_MAC_final(ctx, u, &n, sizeof(u)))
        goto out;
    memcpy(t, u, sizeof(t));
    for (long i = 1; i < j->iterations; i++) {
        if (i % HASH_SLICE == 0 && cio_job_cancelled()) {
            rc = -ECANCELED;
            goto out;
        }
        if (!EVP_MAC_init(ctx, NULL, 0, NULL) || !EVP_MAC_update(ctx, u, sizeof(u)) ||
            !EVP_MAC_final(ctx, u, &n, sizeof(u)))
            goto out;
        for (size_t k = 0; k < sizeof(t); k++)
            t[k] ^= u[k];
    }
    memcpy(j->key, t, sizeof(t));
    rc = 0;
out:
    OPENSSL_cleanse(u, sizeof(u));
    OPENSSL_cleanse(t, sizeof(t));
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return rc;
}

/* A decimal in [1, max], or -1. */
static long parse_count(cio_str s, long max)
{
    if (s.n == 0 || s.n > 9)
        return -1;
    long v = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return -1;
        v = v * 10 + (s.p[i] - '0');
    }
    return v >= 1 && v <= max ? v : -1;
}

static int hash(cio_http_req *req, void *ud)
{
    cio_app_worker *w = ud;
    cio_time pool_wait = CIO_MS(cio_app_worker_config(w)->timeouts.pool_wait_ms);
    cio_str it = cio_http_query_param(req, "iterations");
    long iterations = it.p ? parse_count(it, HASH_MAX_ITERATIONS) : HASH_DEFAULT_ITERATIONS;
    if (iterations < 0) {
        static const char msg[] = "iterations must be an integer from 1 to 10000000\n";
        return cio_http_respond(req, 400, "text/plain", msg, sizeof(msg) - 1);
    }
    cio_str body = cio_http_body(req);
    /* The job lives on this coroutine's stack: cio_job_join returns only
     * after the worker is done with it, even when cancelled. */
    hash_job job = {.password = body.p, .len = body.n, .iterations = iterations};
    cio_job pj;
    /* A full queue is waited for a bounded time, then answered 503: the
     * connection is not held indefinitely. */
    int rc = cio_pool_submit(cio_app_worker_pool(w), &pj, pbkdf2_job, &job, cio_after(pool_wait));
    if (rc == -ETIMEDOUT) {
        static const char msg[] = "busy: the thread pool's queue is full\n";
        char after[24];
        snprintf(after, sizeof(after), "%lld",
                 (long long)((pool_wait + CIO_SEC(1) - 1) / CIO_SEC(1)));
        cio_http_add_header(req, "Retry-After", pool_wait > CIO_SEC(1) ? after : "1");
        return cio_http_respond(req, 503, "text/plain", msg, sizeof(msg) - 1);
    }
    if (rc < 0)
        return rc;
    /* The handler's scope (its deadline, the client leaving) cancels the
     * join, and with it the job. */
    intptr_t r = cio_job_join(&pj, CIO_NEVER);
    if (r < 0)
        return (int)r;
    char hex[65];
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof(job.key); i++) {
        hex[2 * i] = digits[job.key[i] >> 4];
        hex[2 * i + 1] = digits[job.key[i] & 15];
    }
    return cio_http_respond(req, 200, "text/plain", hex, 64);
}

/* ---- WebSocket: echo, and rooms ------------------------------------------------------- */

static void echo_message(cio_ws *ws, void *ud, bool binary, const uint8_t *data, size_t len)
{
    (void)ud;
    (void)cio_ws_send(ws, binary, data, len);
}

static const cio_ws_handler echo_handler = {.on_message = echo_message};

static int ws_echo(cio_http_req *req, void *ud)
{
    cio_app_worker *w = ud;
    int rc = cio_ws_accept(req, cio_app_worker_ws_opts(w, false), &echo_handler, NULL);
    return rc < 0 ? rc : 0;
}

#define ROOM_MAX 64

typedef struct chat_member {
    cio_ws_topics *rooms; /* its worker's */
    char room[];
} chat_member;

static void chat_open(cio_ws *ws, void *ud)
{
    chat_member *m = ud;
    if (cio_ws_subscribe(ws, m->rooms, m->room) < 0)
        (void)cio_ws_close(ws, CIO_WS_INTERNAL_ERROR, "out of memory");
}

/* Every message goes to the other members of the room. */
static void chat_message(cio_ws *ws, void *ud, bool binary, const uint8_t *data, size_t len)
{
    chat_member *m = ud;
    (void)cio_ws_publish(m->rooms, m->room, binary, data, len, ws);
}

static void chat_close(cio_ws *ws, void *ud, int code, cio_str reason)
{
    (void)ws, (void)code, (void)reason;
    free(ud);
}

static const cio_ws_handler chat_handler = {
    .on_open = chat_open, .on_message = chat_message, .on_close = chat_close};

static int ws_chat(cio_http_req *req, void *ud)
{
    cio_app_worker *w = ud;
    cio_str room = cio_http_query_param(req, "room");
    bool ok = room.p && room.n > 0 && room.n <= ROOM_MAX;
    for (size_t i = 0; ok && i < room.n; i++)
        ok = (unsigned char)room.p[i] > 0x20 && (unsigned char)room.p[i] < 0x7f;
    if (!ok) {
        static const char msg[] = "room must be 1 to 64 printable characters: /ws/chat?room=NAME\n";
        return cio_http_respond(req, 400, "text/plain", msg, sizeof(msg) - 1);
    }
    chat_member *m = malloc(sizeof(*m) + room.n + 1);
    if (!m)
        return -ENOMEM;
    m->rooms = cio_app_worker_topics(w);
    memcpy(m->room, room.p, room.n);
    m->room[room.n] = 0;
    int rc = cio_ws_accept(req, cio_app_worker_ws_opts(w, true), &chat_handler, m);
    if (rc <= 0)
        free(m); /* refused or failed: no connection will own it */
    return rc < 0 ? rc : 0;
}

int corio_routes_setup(cio_app_worker *w, void *ud)
{
    (void)ud;
    cio_http_server *srv = cio_app_worker_server(w);
    int rc = 0;
    rc = rc ? rc : cio_http_route(srv, "GET", "/plaintext", plaintext, w);
    rc = rc ? rc : cio_http_route(srv, "GET", "/json", json, w);
    rc = rc ? rc : cio_http_route(srv, "POST", "/client-request", client_request, w);
    rc = rc ? rc : cio_http_route_stream(srv, "POST", "/echo", echo, w);
    rc = rc ? rc : cio_http_route(srv, "POST", "/hash", hash, w);
    rc = rc ? rc : cio_http_route(srv, "GET", "/ws/echo", ws_echo, w);
    rc = rc ? rc : cio_http_route(srv, "GET", "/ws/chat", ws_chat, w);
    return rc;
}
