/*
 * routes.c - the daemon's built-in routes. /hash is the reference example of
 * CPU-bound work: PBKDF2 runs on the thread pool while the loop keeps
 * serving everyone else. /ws/echo and /ws/chat are WebSocket routes on the
 * callback API, whose idle connections hold no stack and no buffer.
 */
#include "server.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdarg.h>
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

/* Discovery runs on loop 0: an id heard on another worker goes there. */
typedef struct heard_msg {
    cio_discovery *disc;
    cio_peer_id id;
} heard_msg;

static void heard_on_loop0(void *arg)
{
    heard_msg *m = arg;
    cio_discovery_heard(m->disc, m->id.hex);
    free(m);
}

static void heard(corio_app *app, const cio_peer_id *pid)
{
    if (app->worker == 0) {
        cio_discovery_heard(app->sh->disc, pid->hex);
        return;
    }
    /* Discovery itself runs at most one early round per 100 ms: so many
     * posts suffice, whatever the rate of /server_id requests. */
    if (app->heard_posted && cio_now() - app->heard_posted < CIO_MS(100))
        return;
    heard_msg *m = malloc(sizeof(*m));
    if (!m)
        return; /* the next regular round hears it */
    app->heard_posted = cio_now();
    *m = (heard_msg){app->sh->disc, *pid};
    if (cio_loop_post(app->sh->loops[0], heard_on_loop0, m) < 0)
        free(m);
}

/* The process's id as a JSON string (the peer-ID protocol's question). */
static int server_id(cio_http_req *req, void *ud)
{
    corio_app *app = ud;
    /* A member that says who it is may be new to us: discovery asks
     * everyone at once rather than at its next round. */
    cio_str peer = cio_http_header(req, "Corio-Peer-Id");
    cio_peer_id pid;
    char quoted[36];
    if (peer.n == 32) {
        quoted[0] = '"';
        memcpy(quoted + 1, peer.p, 32);
        quoted[33] = '"';
        if (cio_peer_id_parse(quoted, 34, &pid))
            heard(app, &pid);
    }
    char body[36];
    body[0] = '"';
    memcpy(body + 1, app->sh->id.hex, 32);
    body[33] = '"';
    return cio_http_respond(req, 200, "application/json", body, 34);
}

/* Liveness: answered by a loop, so a process that is gone or whose loop
 * is stuck fails it; and 503 when any worker's loop has not completed a
 * turn for health.stall_ms (a stuck loop, not a busy one: a busy loop
 * turns many times a second). */
static int healthz(cio_http_req *req, void *ud)
{
    corio_app *app = ud;
    unsigned stuck;
    cio_time since;
    if (corio_loops_alive(app->sh, &stuck, &since))
        return cio_http_respond(req, 200, "text/plain", "ok\n", 3);
    char *body = cio_arena_printf(cio_http_arena(req),
                                  "stalled: worker %u's loop has not turned for %lld ms\n", stuck,
                                  (long long)(since / CIO_MS(1)));
    return cio_http_respond(req, 503, "text/plain", body, body ? strlen(body) : 0);
}

/* Readiness: ready once this server knows which entry of "servers" it is
 * (at once when standalone); until then, and after a failed search, load
 * balancers should send it nothing that needs it. */
static int readyz(cio_http_req *req, void *ud)
{
    corio_app *app = ud;
    enum cio_peer_state st = (enum cio_peer_state)atomic_load(&app->sh->disc_state);
    if (st == CIO_PEER_FOUND || st == CIO_PEER_STANDALONE)
        return cio_http_respond(req, 200, "text/plain", "ready\n", 6);
    cio_http_add_header(req, "Retry-After", "1");
    const char *msg = st == CIO_PEER_SEARCHING ? "searching for self\n" : "self not found\n";
    return cio_http_respond(req, 503, "text/plain", msg, strlen(msg));
}

/* A JSON document being built; a failed append is remembered (the
 * document is then not sent). */
typedef struct jbuf {
    cio_buf b;
    bool oom;
} jbuf;

static void jraw(jbuf *j, const char *p, size_t n)
{
    if (!j->oom && cio_buf_append(&j->b, p, n) < 0)
        j->oom = true;
}

#define JLIT(j, lit) jraw((j), (lit), sizeof(lit) - 1)

/* Appends s as a JSON string (or null). */
static void json_str(jbuf *j, const char *s)
{
    if (!s) {
        JLIT(j, "null");
        return;
    }
    JLIT(j, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char esc[8];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            jraw(j, esc, 2);
        } else if (ch < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", ch);
            jraw(j, esc, 6);
        } else {
            jraw(j, s, 1);
        }
    }
    JLIT(j, "\"");
}

static void json_printf(jbuf *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void json_printf(jbuf *j, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        jraw(j, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* [awaits] Sends the document (or fails with -ENOMEM) and frees it. */
static int json_respond(cio_http_req *req, jbuf *j)
{
    int rc = j->oom ? -ENOMEM : cio_http_respond(req, 200, "application/json", j->b.p, j->b.len);
    cio_buf_free(&j->b);
    return rc;
}

/* The cluster as this server sees it, read from discovery's view on loop
 * 0 (the other workers ask it to write the document there). */
typedef struct cluster_ask {
    corio_shared *sh;
    jbuf j;
} cluster_ask;

static void cluster_json(void *arg)
{
    cluster_ask *a = arg;
    jbuf *jp = &a->j;
    cio_discovery *d = a->sh->disc;
    int self = cio_discovery_self(d);
    size_t n = cio_discovery_count(d);
#define j (*jp)
    JLIT(&j, "{\"self\": ");
    json_str(&j, self >= 0 ? cio_discovery_peer(d, (size_t)self)->name : NULL);
    json_printf(&j, ", \"id\": \"%s\", \"state\": \"%s\", \"aliases\": [", a->sh->id.hex,
                cio_peer_state_name(cio_discovery_state(d)));
    bool first = true;
    for (size_t i = 0; i < n; i++)
        if (cio_discovery_peer(d, i)->alias) {
            if (!first)
                JLIT(&j, ", ");
            json_str(&j, cio_discovery_peer(d, i)->name);
            first = false;
        }
    JLIT(&j, "], \"peers\": [");
    cio_time now = cio_now();
    for (size_t i = 0; i < n; i++) {
        const cio_peer_info *p = cio_discovery_peer(d, i);
        char answer[96];
        if (i)
            JLIT(&j, ",");
        JLIT(&j, "\n  {\"name\": ");
        json_str(&j, p->name);
        JLIT(&j, ", \"id\": ");
        json_str(&j, p->has_id ? p->id.hex : NULL);
        json_printf(&j, ", \"up\": %s, \"self\": %s, \"alias\": %s, \"last_seen_ms\": ",
                    p->up ? "true" : "false", p->self ? "true" : "false",
                    p->alias ? "true" : "false");
        if (p->last_seen)
            json_printf(&j, "%lld", (long long)((now - p->last_seen) / CIO_MS(1)));
        else
            JLIT(&j, "null");
        json_printf(&j, ", \"restarts\": %u, \"answer\": ", p->restarts);
        json_str(&j, cio_peer_answer(p, answer, sizeof(answer)));
        JLIT(&j, "}");
    }
    if (n)
        JLIT(&j, "\n");
    JLIT(&j, "]}\n");
#undef j
}

static int cluster(cio_http_req *req, void *ud)
{
    corio_app *app = ud;
    cluster_ask a = {.sh = app->sh};
    int rc = cio_loop_call(app->sh->loops[0], cluster_json, &a);
    if (rc < 0)
        return rc;
    return json_respond(req, &a.j);
}

/* CORIO_DEBUG=1 only: keeps the loop busy for ?ms=N (1..10000) without
 * awaiting, the mistake the slow-task watchdog and the loop-lag metrics
 * exist to catch, on demand. */
static int debug_block(cio_http_req *req, void *ud)
{
    (void)ud;
    cio_str v = cio_http_query_param(req, "ms");
    long ms = 0;
    for (size_t i = 0; i < v.n && ms <= 10000; i++)
        ms = v.p[i] >= '0' && v.p[i] <= '9' ? ms * 10 + (v.p[i] - '0') : 100000;
    if (ms < 1 || ms > 10000)
        return cio_http_respond(req, 400, "text/plain", "ms must be 1 to 10000\n", 22);
    cio_time until = cio_clock() + CIO_MS(ms);
    while (cio_clock() < until)
        ; /* on purpose: nothing else on this loop runs meanwhile */
    char *body = cio_arena_printf(cio_http_arena(req), "blocked the loop for %ld ms\n", ms);
    return cio_http_respond(req, 200, "text/plain", body, strlen(body));
}

/* Prometheus scrapes this (text format 0.0.4). */
static int metrics(cio_http_req *req, void *ud)
{
    corio_app *app = ud;
    cio_buf b = {0};
    int rc = corio_metrics_render(app, &b);
    if (rc == 0)
        rc = cio_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
    cio_buf_free(&b);
    return rc;
}

/* Where a replicated protocol would take client requests: it must know
 * which member it is, so it waits for discovery (a request that arrives
 * during the search waits; it is not refused), within the handler's
 * deadline. */
static int client_request(cio_http_req *req, void *ud)
{
    corio_app *app = ud;
    /* Loop 0 sets the event once discovery has its answer. */
    int rc = cio_event_wait(&app->self_known, CIO_NEVER);
    if (rc == 0)
        rc = app->self_rc;
    const char *self = app->self;
    if (rc == -ESRCH || rc == -ESHUTDOWN) {
        cio_http_add_header(req, "Retry-After", "1");
        static const char msg[] = "this server has not found itself in \"servers\"\n";
        return cio_http_respond(req, 503, "text/plain", msg, sizeof(msg) - 1);
    }
    if (rc < 0)
        return rc;
    jbuf j = {0};
    JLIT(&j, "{\"self\": ");
    json_str(&j, self);
    json_printf(&j, ", \"id\": \"%s\"}\n", app->sh->id.hex);
    return json_respond(req, &j);
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
    corio_app *app = ud;
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
    int rc = cio_pool_submit(app->pool, &pj, pbkdf2_job, &job, cio_after(app->pool_wait));
    if (rc == -ETIMEDOUT) {
        static const char msg[] = "busy: the thread pool's queue is full\n";
        char after[24];
        snprintf(after, sizeof(after), "%lld",
                 (long long)((app->pool_wait + CIO_SEC(1) - 1) / CIO_SEC(1)));
        cio_http_add_header(req, "Retry-After", app->pool_wait > CIO_SEC(1) ? after : "1");
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
    corio_app *app = ud;
    int rc = cio_ws_accept(req, &app->ws_opts, &echo_handler, app);
    return rc < 0 ? rc : 0;
}

#define ROOM_MAX 64

typedef struct chat_member {
    corio_app *app;
    char room[];
} chat_member;

static void chat_open(cio_ws *ws, void *ud)
{
    chat_member *m = ud;
    if (cio_ws_subscribe(ws, m->app->rooms, m->room) < 0)
        (void)cio_ws_close(ws, CIO_WS_INTERNAL_ERROR, "out of memory");
}

/* Every message goes to the other members of the room. */
static void chat_message(cio_ws *ws, void *ud, bool binary, const uint8_t *data, size_t len)
{
    chat_member *m = ud;
    (void)cio_ws_publish(m->app->rooms, m->room, binary, data, len, ws);
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
    corio_app *app = ud;
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
    m->app = app;
    memcpy(m->room, room.p, room.n);
    m->room[room.n] = 0;
    int rc = cio_ws_accept(req, &app->chat_opts, &chat_handler, m);
    if (rc <= 0)
        free(m); /* refused or failed: no connection will own it */
    return rc < 0 ? rc : 0;
}

int corio_routes_register(cio_http_server *srv, corio_app *app, cio_http_server *admin)
{
    /* What operators read, not clients: on the admin listeners when there
     * are some (which also answer the probes). */
    cio_http_server *ops = admin ? admin : srv;
    int rc = 0;
    rc = rc ? rc : cio_http_route(srv, "GET", "/plaintext", plaintext, app);
    rc = rc ? rc : cio_http_route(srv, "GET", "/json", json, app);
    rc = rc ? rc : cio_http_route(srv, "GET", "/server_id", server_id, app);
    rc = rc ? rc : cio_http_route(srv, "GET", "/healthz", healthz, app);
    rc = rc ? rc : cio_http_route(srv, "GET", "/readyz", readyz, app);
    if (admin) {
        rc = rc ? rc : cio_http_route(admin, "GET", "/healthz", healthz, app);
        rc = rc ? rc : cio_http_route(admin, "GET", "/readyz", readyz, app);
    }
    rc = rc ? rc : cio_http_route(ops, "GET", "/cluster", cluster, app);
    rc = rc ? rc : cio_http_route(ops, "GET", "/metrics", metrics, app);
    const char *debug = getenv("CORIO_DEBUG");
    if (!rc && debug && strcmp(debug, "1") == 0)
        rc = cio_http_route(srv, "GET", "/debug/block", debug_block, app);
    rc = rc ? rc : cio_http_route(srv, "POST", "/client-request", client_request, app);
    rc = rc ? rc : cio_http_route_stream(srv, "POST", "/echo", echo, app);
    rc = rc ? rc : cio_http_route(srv, "POST", "/hash", hash, app);
    rc = rc ? rc : cio_http_route(srv, "GET", "/ws/echo", ws_echo, app);
    rc = rc ? rc : cio_http_route(srv, "GET", "/ws/chat", ws_chat, app);
    return rc;
}
