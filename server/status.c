/*
 * status.c - the live status page: GET /status (server/status.html,
 * embedded at build time, with the latest snapshot in it), GET
 * /status.json (the snapshot) and GET /ws/status (one snapshot a second).
 *
 * A task on loop 0 takes a snapshot every second: every worker's figures
 * (corio_snaps_take, the same copy /metrics makes), discovery's view, and
 * what the last minute looked like, from a ring of 61 per-second samples
 * (the loops' heartbeat histograms, request and byte counters). The
 * snapshot is encoded once, kept for /status and /status.json, and
 * published to /ws/status's topic: framed once, queued by reference on
 * every viewer of every worker (cio_ws_topic_group), so a viewer costs
 * the loop a send a second and nothing else.
 */
#include "app_internal.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STATUS_PERIOD CIO_SEC(1)
#define STATUS_SAMPLES 61    /* a minute of seconds, both ends */
#define SLOW_WINDOW_S  300.0 /* slow-handler reports shown: the last 5 minutes */
#define SLOW_SHOWN     32
#define STATUS_TOPIC   "status"
#define SNAPSHOT_MARK  "__CORIO_SNAPSHOT__"

/* server/status.html (cmake/embed.cmake) */
extern const unsigned char corio_status_html[];
extern const size_t corio_status_html_len;

/* One second's figures, summed over the workers but for the histograms. */
typedef struct sample {
    double t;              /* seconds since the epoch */
    cio_time mono;
    uint64_t by_class[5];  /* responses by status class, 1xx..5xx, ever */
    uint64_t bytes_in, bytes_out;
    double lag_max_ms;     /* the latest heartbeat of any loop since the previous sample */
    double drift_ms;       /* the largest drift of any loop */
    double requests_per_s; /* since the previous sample */
    uint64_t *hist;        /* nworkers x 64: each loop's heartbeat histogram, ever */
} sample;

struct corio_status {
    const corio_shared *sh;
    cio_task *task;
    corio_snap *snaps; /* nworkers */
    sample ring[STATUS_SAMPLES];
    unsigned head;     /* where the next sample goes */
    unsigned count;
    cio_buf json;      /* the latest snapshot */
};

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const sample *back(const corio_status *st, unsigned k) /* k = 0: the newest */
{
    return &st->ring[(st->head + STATUS_SAMPLES - 1 - k) % STATUS_SAMPLES];
}

/* Bucket i of a heartbeat histogram holds lateness up to 2^i - 1 ns. */
static double bucket_ms(unsigned i)
{
    return i == 0 ? 0.0 : (double)((UINT64_C(1) << i) - 1) / 1e6;
}

/* The lateness under which a fraction q of the ticks in (old, now] fell,
 * from the two cumulative histograms (old NULL: since the start); q > 1:
 * the worst. In ms, a bucket's upper bound. */
static double quantile_ms(const uint64_t *now, const uint64_t *old, double q)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < 64; i++)
        total += now[i] - (old ? old[i] : 0);
    if (!total)
        return 0;
    if (q > 1) {
        for (unsigned i = 64; i-- > 0;)
            if (now[i] != (old ? old[i] : 0))
                return bucket_ms(i);
        return 0;
    }
    uint64_t want = (uint64_t)(q * (double)total + 0.999999), cum = 0;
    for (unsigned i = 0; i < 64; i++) {
        cum += now[i] - (old ? old[i] : 0);
        if (cum >= want)
            return bucket_ms(i);
    }
    return bucket_ms(63);
}

/* Fills the next sample from st->snaps. */
static void take_sample(corio_status *st)
{
    unsigned n = st->sh->nworkers;
    sample *s = &st->ring[st->head];
    const sample *prev = st->count ? back(st, 0) : NULL;
    uint64_t *hist = s->hist;
    memset(s, 0, sizeof(*s));
    s->hist = hist;
    s->t = wall_now();
    s->mono = cio_now();
    for (unsigned w = 0; w < n; w++) {
        const corio_snap *x = &st->snaps[w];
        for (int m = 0; m < CIO_HTTP_M_COUNT; m++)
            for (int c = 0; c < 500; c++)
                s->by_class[(c + 100) / 100 - 1] += x->http.responses[m][c];
        s->bytes_in += x->ls.bytes_in;
        s->bytes_out += x->ls.bytes_out;
        memcpy(&s->hist[w * 64], x->lag_hist, sizeof(x->lag_hist));
        double drift = (double)(x->lag.drift_ns < 0 ? -x->lag.drift_ns : x->lag.drift_ns) / 1e6;
        if (drift > s->drift_ms)
            s->drift_ms = drift;
        double worst = quantile_ms(&s->hist[w * 64], prev ? &prev->hist[w * 64] : NULL, 2);
        if (worst > s->lag_max_ms)
            s->lag_max_ms = worst;
    }
    if (prev) {
        double dt = (double)(s->mono - prev->mono) / 1e9;
        uint64_t d = 0;
        for (int k = 0; k < 5; k++)
            d += s->by_class[k] - prev->by_class[k];
        s->requests_per_s = dt > 0 ? (double)d / dt : 0;
    }
    st->head = (st->head + 1) % STATUS_SAMPLES;
    if (st->count < STATUS_SAMPLES)
        st->count++;
}

static int by_time(const void *a, const void *b)
{
    double x = ((const corio_slow_rec *)a)->time, y = ((const corio_slow_rec *)b)->time;
    return (x > y) - (x < y);
}

/* The slow-handler reports of the last 5 minutes, oldest first. */
static void slow_json(corio_status *st, corio_json *j, double now)
{
    typedef struct {
        corio_slow_rec r;
        unsigned worker;
    } rec;
    unsigned n = st->sh->nworkers;
    rec *all = calloc((size_t)n * CORIO_SLOW_KEPT, sizeof(*all));
    size_t got = 0;
    for (unsigned w = 0; all && w < n; w++) {
        const corio_snap *x = &st->snaps[w];
        uint64_t kept = x->slow_reports < CORIO_SLOW_KEPT ? x->slow_reports : CORIO_SLOW_KEPT;
        for (uint64_t k = 0; k < kept; k++) {
            const corio_slow_rec *r = &x->slow_recent[(x->slow_reports - 1 - k) % CORIO_SLOW_KEPT];
            if (r->time >= now - SLOW_WINDOW_S)
                all[got++] = (rec){*r, w};
        }
    }
    if (got)
        qsort(all, got, sizeof(*all), by_time); /* r is the first member */
    CORIO_JLIT(j, "[");
    for (size_t i = got > SLOW_SHOWN ? got - SLOW_SHOWN : 0, first = i; i < got; i++) {
        corio_json_printf(j, "%s{\"time\":%.3f,\"worker\":%u,\"task\":", i > first ? "," : "",
                          all[i].r.time, all[i].worker);
        corio_json_str(j, all[i].r.task);
        corio_json_printf(j, ",\"ms\":%.1f}", all[i].r.ms);
    }
    CORIO_JLIT(j, "]");
    free(all);
}

/* One series of the ring, oldest first: field at offset off (a double). */
static void series_json(corio_status *st, corio_json *j, const char *name, size_t off,
                        const char *fmt)
{
    corio_json_printf(j, "\"%s\":[", name);
    for (unsigned k = st->count; k-- > 0;) {
        double v;
        memcpy(&v, (const char *)back(st, k) + off, sizeof(v));
        corio_json_printf(j, fmt, v);
        if (k)
            CORIO_JLIT(j, ",");
    }
    CORIO_JLIT(j, "]");
}

/* Encodes the snapshot into st->json (one line). 0 or -ENOMEM. */
static int encode(corio_status *st)
{
    const corio_shared *sh = st->sh;
    unsigned n = sh->nworkers;
    const sample *now = back(st, 0), *prev = st->count > 1 ? back(st, 1) : NULL;
    const sample *oldest = back(st, st->count - 1);
    corio_json j = {.b = st->json};
    j.b.len = 0;
    uint64_t http = 0, ws = 0, total = 0;
    for (unsigned w = 0; w < n; w++)
        http += st->snaps[w].st.connections, ws += st->snaps[w].ws.open;
    for (int k = 0; k < 5; k++)
        total += now->by_class[k];
    CORIO_JLIT(&j, "{\"name\":");
    corio_json_str(&j, sh->name);
    CORIO_JLIT(&j, ",\"version\":");
    corio_json_str(&j, sh->version);
    corio_json_printf(&j, ",\"id\":\"%s\",\"time\":%.3f,\"uptime_s\":%.1f,\"workers\":%u,", sh->id.hex,
                      now->t, now->t - sh->start_time, n);
    CORIO_JLIT(&j, "\"cluster\":");
    corio_cluster_json(sh, &j);
    corio_json_printf(&j, ",\"connections\":{\"http\":%llu,\"ws\":%llu},",
                      (unsigned long long)http, (unsigned long long)ws);
    corio_json_printf(&j, "\"requests\":{\"total\":%llu,\"by_class\":{", (unsigned long long)total);
    for (int k = 0; k < 5; k++)
        corio_json_printf(&j, "%s\"%dxx\":%llu", k ? "," : "", k + 1,
                          (unsigned long long)now->by_class[k]);
    CORIO_JLIT(&j, "},\"per_s\":{");
    double dt = prev ? (double)(now->mono - prev->mono) / 1e9 : 0;
    for (int k = 0; k < 5; k++)
        corio_json_printf(&j, "%s\"%dxx\":%.1f", k ? "," : "", k + 1,
                          dt > 0 ? (double)(now->by_class[k] - prev->by_class[k]) / dt : 0.0);
    corio_json_printf(&j, "}},\"bytes\":{\"in\":%llu,\"out\":%llu,\"in_per_s\":%.1f,\"out_per_s\":%.1f},",
                      (unsigned long long)now->bytes_in, (unsigned long long)now->bytes_out,
                      dt > 0 ? (double)(now->bytes_in - prev->bytes_in) / dt : 0.0,
                      dt > 0 ? (double)(now->bytes_out - prev->bytes_out) / dt : 0.0);
    const cio_pool_stats *ps = &st->snaps[0].ps; /* the process's threads and queue */
    corio_json_printf(&j, "\"pool\":{\"threads\":%u,\"queued\":%llu,\"busy\":%u},\"loops\":[",
                      (unsigned)ps->threads, (unsigned long long)ps->queued, (unsigned)ps->running);
    for (unsigned w = 0; w < n; w++) {
        const uint64_t *h = &now->hist[w * 64], *o = oldest != now ? &oldest->hist[w * 64] : NULL;
        corio_json_printf(&j, "%s{\"worker\":%u,\"lag_ms\":{\"p50\":%.3f,\"p99\":%.3f,", w ? "," : "",
                          w, quantile_ms(h, o, 0.5), quantile_ms(h, o, 0.99));
        corio_json_printf(&j, "\"max\":%.3f},\"drift_ms\":%.3f}", quantile_ms(h, o, 2),
                          (double)st->snaps[w].lag.drift_ns / 1e6);
    }
    CORIO_JLIT(&j, "],\"series\":{");
    series_json(st, &j, "t", offsetof(sample, t), "%.0f");
    CORIO_JLIT(&j, ",");
    series_json(st, &j, "lag_max_ms", offsetof(sample, lag_max_ms), "%.3f");
    CORIO_JLIT(&j, ",");
    series_json(st, &j, "drift_ms", offsetof(sample, drift_ms), "%.3f");
    CORIO_JLIT(&j, ",");
    series_json(st, &j, "requests_per_s", offsetof(sample, requests_per_s), "%.1f");
    CORIO_JLIT(&j, "},\"slow\":");
    slow_json(st, &j, now->t);
    CORIO_JLIT(&j, "}");
    st->json = j.b;
    return j.oom ? -ENOMEM : 0;
}

/* [awaits] Takes a snapshot and publishes it. -ECANCELED when stopped. */
static int tick(corio_status *st)
{
    int rc = corio_snaps_take(st->sh, st->snaps);
    if (rc < 0)
        return rc;
    take_sample(st);
    if (encode(st) < 0) {
        st->json.len = 0; /* none rather than half of one */
        return -ENOMEM;
    }
    (void)cio_ws_publish(st->sh->apps[0]->status_topics, STATUS_TOPIC, false, st->json.p,
                         st->json.len, NULL);
    return 0;
}

static intptr_t ticker(void *arg)
{
    corio_status *st = arg;
    cio_time next = cio_now();
    for (;;) {
        next += STATUS_PERIOD;
        if (next < cio_now())
            next = cio_now(); /* a stalled loop: no burst of catching up */
        if (cio_sleep_until(next) < 0 || tick(st) == -ECANCELED)
            return 0;
    }
}

static void status_free(corio_status *st)
{
    if (!st)
        return;
    for (unsigned i = 0; i < STATUS_SAMPLES; i++)
        free(st->ring[i].hist);
    free(st->snaps);
    cio_buf_free(&st->json);
    free(st);
}

int corio_status_start(corio_shared *sh)
{
    corio_status *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    st->sh = sh;
    st->snaps = calloc(sh->nworkers, sizeof(*st->snaps));
    bool ok = st->snaps != NULL;
    for (unsigned i = 0; ok && i < STATUS_SAMPLES; i++)
        ok = (st->ring[i].hist = calloc((size_t)sh->nworkers * 64, sizeof(uint64_t))) != NULL;
    /* The first now: once the app says it is ready, /status has one. */
    int rc = ok ? 0 : -ENOMEM;
    if (rc == 0)
        rc = tick(st);
    if (rc == 0)
        rc = cio_spawn(NULL, &st->task, ticker, st);
    if (rc < 0) {
        status_free(st);
        return rc;
    }
    cio_task_set_name(st->task, "the status page's snapshots");
    sh->status = st;
    return 0;
}

void corio_status_stop(corio_shared *sh)
{
    corio_status *st = sh->status;
    if (!st)
        return;
    cio_task_cancel(st->task);
    cio_join(st->task, CIO_NEVER);
    sh->status = NULL;
    status_free(st);
}

/* ---- the routes --------------------------------------------------------------------- */

/* A copy of the latest snapshot, made on loop 0. */
typedef struct latest_ask {
    const corio_shared *sh;
    char *p;
    size_t len;
    int rc;
} latest_ask;

static void latest_copy(void *arg)
{
    latest_ask *a = arg;
    const corio_status *st = a->sh->status;
    a->rc = -EAGAIN;
    if (!st || !st->json.len)
        return; /* not started, or stopping */
    a->p = malloc(st->json.len);
    a->rc = a->p ? 0 : -ENOMEM;
    if (a->p) {
        memcpy(a->p, st->json.p, st->json.len);
        a->len = st->json.len;
    }
}

/* [awaits] The latest snapshot into *a (a->p the caller's to free). */
static int latest(cio_app_worker *app, latest_ask *a)
{
    *a = (latest_ask){.sh = app->sh};
    int rc = cio_loop_call(app->sh->loops[0], latest_copy, a);
    return rc < 0 ? rc : a->rc;
}

static int not_yet(cio_http_req *req)
{
    static const char msg[] = "no snapshot yet\n";
    cio_http_add_header(req, "Retry-After", "1");
    return cio_http_respond(req, 503, "text/plain", msg, sizeof(msg) - 1);
}

static int status_json(cio_http_req *req, void *ud)
{
    latest_ask a;
    int rc = latest(ud, &a);
    if (rc == -EAGAIN)
        return not_yet(req);
    if (rc < 0)
        return rc;
    cio_http_add_header(req, "Cache-Control", "no-store");
    rc = cio_http_respond(req, 200, "application/json", a.p, a.len);
    free(a.p);
    return rc;
}

/* The page, with the snapshot in place of its mark. Every "<" of the JSON
 * (only strings hold one: a peer's answer may hold anything) is written
 * \u003c, so that nothing in it can end or restart the script element it
 * sits in ("</script>", "<!--"). */
static int status_page(cio_http_req *req, void *ud)
{
    latest_ask a;
    int rc = latest(ud, &a);
    if (rc < 0 && rc != -EAGAIN)
        return rc;
    const char *html = (const char *)corio_status_html;
    const char *mark = memmem(html, corio_status_html_len, SNAPSHOT_MARK, strlen(SNAPSHOT_MARK));
    size_t pre = mark ? (size_t)(mark - html) : corio_status_html_len;
    size_t post = mark ? corio_status_html_len - pre - strlen(SNAPSHOT_MARK) : 0;
    size_t cap = pre + post + (a.p ? 6 * a.len : 4);
    char *out = cio_arena_alloc(cio_http_arena(req), cap), *o = out;
    if (!out) {
        free(a.p);
        return -ENOMEM;
    }
    memcpy(o, html, pre);
    o += pre;
    if (mark && !a.p) {
        memcpy(o, "null", 4);
        o += 4;
    } else if (mark) {
        for (size_t i = 0; i < a.len; i++) {
            if (a.p[i] == '<') {
                memcpy(o, "\\u003c", 6);
                o += 6;
            } else {
                *o++ = a.p[i];
            }
        }
    }
    if (mark)
        memcpy(o, mark + strlen(SNAPSHOT_MARK), post), o += post;
    free(a.p);
    cio_http_add_header(req, "Cache-Control", "no-store");
    /* Everything the page needs is in it: nothing from elsewhere may load. */
    cio_http_add_header(req, "Content-Security-Policy",
                        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                        "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
                        "frame-ancestors 'none'");
    cio_http_add_header(req, "X-Content-Type-Options", "nosniff");
    return cio_http_respond(req, 200, "text/html; charset=utf-8", out, (size_t)(o - out));
}

static void viewer_open(cio_ws *ws, void *ud)
{
    cio_app_worker *app = ud;
    if (cio_ws_subscribe(ws, app->status_topics, STATUS_TOPIC) < 0)
        (void)cio_ws_close(ws, CIO_WS_INTERNAL_ERROR, "out of memory");
}

/* Viewers only listen: what they send is dropped. */
static void viewer_message(cio_ws *ws, void *ud, bool binary, const uint8_t *data, size_t len)
{
    (void)ws, (void)ud, (void)binary, (void)data, (void)len;
}

static const cio_ws_handler viewer_handler = {.on_open = viewer_open,
                                              .on_message = viewer_message};

static int ws_status(cio_http_req *req, void *ud)
{
    cio_app_worker *app = ud;
    int rc = cio_ws_accept(req, &app->pubsub_opts, &viewer_handler, app);
    return rc < 0 ? rc : 0;
}

int corio_status_routes(cio_http_server *srv, cio_app_worker *app)
{
    int rc = cio_http_route(srv, "GET", "/status", status_page, app);
    rc = rc ? rc : cio_http_route(srv, "GET", "/status.json", status_json, app);
    rc = rc ? rc : cio_http_route(srv, "GET", "/ws/status", ws_status, app);
    return rc;
}
