/*
 * app_routes.c - the app's built-in routes, those operators and the
 * peer-ID protocol need: /server_id, /healthz, /readyz, /cluster,
 * /metrics, and with CORIO_DEBUG=1 /debug/block (the status page's are
 * status.c's); and the JSON writer they share.
 */
#include "app_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void heard(cio_app_worker *app, const cio_peer_id *pid)
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
    cio_app_worker *app = ud;
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
    cio_app_worker *app = ud;
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
    cio_app_worker *app = ud;
    enum cio_peer_state st = (enum cio_peer_state)atomic_load(&app->sh->disc_state);
    if (st == CIO_PEER_FOUND || st == CIO_PEER_STANDALONE)
        return cio_http_respond(req, 200, "text/plain", "ready\n", 6);
    cio_http_add_header(req, "Retry-After", "1");
    const char *msg = st == CIO_PEER_SEARCHING ? "searching for self\n" : "self not found\n";
    return cio_http_respond(req, 503, "text/plain", msg, strlen(msg));
}

void corio_json_raw(corio_json *j, const char *p, size_t n)
{
    if (!j->oom && cio_buf_append(&j->b, p, n) < 0)
        j->oom = true;
}

void corio_json_str(corio_json *j, const char *s)
{
    if (!s) {
        CORIO_JLIT(j, "null");
        return;
    }
    CORIO_JLIT(j, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char esc[8];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            corio_json_raw(j, esc, 2);
        } else if (ch < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", ch);
            corio_json_raw(j, esc, 6);
        } else {
            corio_json_raw(j, s, 1);
        }
    }
    CORIO_JLIT(j, "\"");
}

void corio_json_printf(corio_json *j, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        corio_json_raw(j, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

int corio_json_respond(cio_http_req *req, corio_json *j)
{
    int rc = j->oom ? -ENOMEM : cio_http_respond(req, 200, "application/json", j->b.p, j->b.len);
    cio_buf_free(&j->b);
    return rc;
}

/* The cluster as this server sees it, read from discovery's view on loop
 * 0 (the other workers ask it to write the document there). */
typedef struct cluster_ask {
    corio_shared *sh;
    corio_json j;
} cluster_ask;

void corio_cluster_json(const corio_shared *sh, corio_json *jp)
{
    cio_discovery *d = sh->disc;
    int self = cio_discovery_self(d);
    size_t n = cio_discovery_count(d);
#define j (*jp)
    CORIO_JLIT(&j, "{\"self\": ");
    corio_json_str(&j, self >= 0 ? cio_discovery_peer(d, (size_t)self)->name : NULL);
    corio_json_printf(&j, ", \"id\": \"%s\", \"state\": \"%s\", \"aliases\": [", sh->id.hex,
                      cio_peer_state_name(cio_discovery_state(d)));
    bool first = true;
    for (size_t i = 0; i < n; i++)
        if (cio_discovery_peer(d, i)->alias) {
            if (!first)
                CORIO_JLIT(&j, ", ");
            corio_json_str(&j, cio_discovery_peer(d, i)->name);
            first = false;
        }
    CORIO_JLIT(&j, "], \"peers\": [");
    cio_time now = cio_now();
    for (size_t i = 0; i < n; i++) {
        const cio_peer_info *p = cio_discovery_peer(d, i);
        char answer[96];
        if (i)
            CORIO_JLIT(&j, ",");
        CORIO_JLIT(&j, "\n  {\"name\": ");
        corio_json_str(&j, p->name);
        CORIO_JLIT(&j, ", \"id\": ");
        corio_json_str(&j, p->has_id ? p->id.hex : NULL);
        corio_json_printf(&j, ", \"up\": %s, \"self\": %s, \"alias\": %s, \"last_seen_ms\": ",
                          p->up ? "true" : "false", p->self ? "true" : "false",
                          p->alias ? "true" : "false");
        if (p->last_seen)
            corio_json_printf(&j, "%lld", (long long)((now - p->last_seen) / CIO_MS(1)));
        else
            CORIO_JLIT(&j, "null");
        corio_json_printf(&j, ", \"restarts\": %u, \"answer\": ", p->restarts);
        corio_json_str(&j, cio_peer_answer(p, answer, sizeof(answer)));
        CORIO_JLIT(&j, "}");
    }
    if (n)
        CORIO_JLIT(&j, "\n");
    CORIO_JLIT(&j, "]}");
#undef j
}

static void cluster_json(void *arg)
{
    cluster_ask *a = arg;
    corio_cluster_json(a->sh, &a->j);
    CORIO_JLIT(&a->j, "\n");
}

static int cluster(cio_http_req *req, void *ud)
{
    cio_app_worker *app = ud;
    cluster_ask a = {.sh = app->sh};
    int rc = cio_loop_call(app->sh->loops[0], cluster_json, &a);
    if (rc < 0)
        return rc;
    return corio_json_respond(req, &a.j);
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
    cio_app_worker *app = ud;
    cio_buf b = {0};
    int rc = corio_metrics_render(app, &b);
    if (rc == 0)
        rc = cio_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
    cio_buf_free(&b);
    return rc;
}

int corio_routes_register(cio_http_server *srv, cio_app_worker *app, cio_http_server *admin)
{
    /* What operators read, not clients: on the admin listeners when there
     * are some (which also answer the probes). */
    cio_http_server *ops = admin ? admin : srv;
    int rc = 0;
    rc = rc ? rc : cio_http_route(srv, "GET", "/server_id", server_id, app);
    rc = rc ? rc : cio_http_route(srv, "GET", "/healthz", healthz, app);
    rc = rc ? rc : cio_http_route(srv, "GET", "/readyz", readyz, app);
    if (admin) {
        rc = rc ? rc : cio_http_route(admin, "GET", "/healthz", healthz, app);
        rc = rc ? rc : cio_http_route(admin, "GET", "/readyz", readyz, app);
    }
    rc = rc ? rc : cio_http_route(ops, "GET", "/cluster", cluster, app);
    rc = rc ? rc : cio_http_route(ops, "GET", "/metrics", metrics, app);
    rc = rc ? rc : corio_status_routes(ops, app);
    const char *debug = getenv("CORIO_DEBUG");
    if (!rc && debug && strcmp(debug, "1") == 0)
        rc = cio_http_route(srv, "GET", "/debug/block", debug_block, app);
    return rc;
}
