/*
 * metrics.c - GET /metrics in the Prometheus text exposition format
 * (version 0.0.4): HELP and TYPE lines, base units (seconds, bytes),
 * counters ending in _total, histograms with cumulative le buckets, _sum
 * and _count.
 *
 * Collecting costs the request path nothing but the counters it already
 * keeps (one loop's, no atomics): everything here is read at scrape time.
 */
#include "app_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

typedef struct out {
    cio_buf b;
    bool oom;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...)
{
    if (o->oom)
        return;
    for (size_t room = 256;; room *= 2) {
        if (cio_buf_reserve(&o->b, room) < 0) {
            o->oom = true;
            return;
        }
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->b.p + o->b.len, o->b.cap - o->b.len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->oom = true;
            return;
        }
        if ((size_t)n < o->b.cap - o->b.len) {
            o->b.len += (size_t)n;
            return;
        }
    }
}

static void head(out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(out *o, const char *name, const char *type, const char *help, double v)
{
    head(o, name, type, help);
    if (v == (double)(int64_t)v && v > -9e15 && v < 9e15)
        put(o, "%s %lld\n", name, (long long)v); /* counts: exact */
    else {
        /* The shortest of 15 or 17 digits that reads back as v. */
        char num[32];
        snprintf(num, sizeof(num), "%.15g", v);
        if (strtod(num, NULL) != v)
            snprintf(num, sizeof(num), "%.17g", v);
        put(o, "%s %s\n", name, num);
    }
}

/* ---- the process --------------------------------------------------------------------- */

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd"); /* procfs: answered from memory */
    if (!d)
        return -1;
    long n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own fd */
}

static void process_metrics(out *o, double start_time)
{
    long page = sysconf(_SC_PAGESIZE);
    unsigned long vsz = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (f) {
        if (fscanf(f, "%lu %lu", &vsz, &rss) != 2)
            vsz = rss = 0;
        fclose(f);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    struct rlimit rl = {0};
    getrlimit(RLIMIT_NOFILE, &rl);
    one(o, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
        cpu);
    one(o, "process_open_fds", "gauge", "Number of open file descriptors.", (double)open_fds());
    one(o, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
        (double)rl.rlim_cur);
    one(o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
        (double)rss * (double)page);
    one(o, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
        (double)vsz * (double)page);
    one(o, "process_start_time_seconds", "gauge",
        "Start time of the process since unix epoch in seconds.", start_time);
}

double corio_process_start_time(void)
{
    /* /proc/self/stat's starttime counts clock ticks of CLOCK_BOOTTIME:
     * the process has run for (boot time now - starttime), so it started
     * that long before the wall clock's now. (/proc/stat's btime, whole
     * seconds and drifting, can put the start in the future.) */
    struct timespec wall, boot;
    clock_gettime(CLOCK_REALTIME, &wall);
    clock_gettime(CLOCK_BOOTTIME, &boot);
    double now = (double)wall.tv_sec + (double)wall.tv_nsec / 1e9;
    FILE *f = fopen("/proc/self/stat", "re");
    if (!f)
        return now;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command may hold spaces */
    /* after ")": state is field 3; starttime is field 22 */
    for (int field = 2; p && field < 22; field++)
        p = strchr(p + 1, ' ');
    if (!p)
        return now;
    double started = (double)strtoull(p + 1, NULL, 10) / (double)sysconf(_SC_CLK_TCK);
    double ran = (double)boot.tv_sec + (double)boot.tv_nsec / 1e9 - started;
    return now - (ran > 0 ? ran : 0);
}

/* ---- the workers ----------------------------------------------------------------------- */

typedef corio_snap snap;

typedef struct gather {
    const corio_shared *sh;
    snap *s;
} gather;

static void take_snap(void *arg, size_t i)
{
    gather *g = arg;
    cio_app_worker *app = g->sh->apps[i];
    snap *s = &g->s[i];
    cio_loop *loop = cio_loop_current();
    s->http = *cio_http_server_metrics(app->srv);
    cio_http_server_stats(app->srv, &s->st);
    cio_ws_stats_get(&s->ws);
    cio_loop_get_stats(loop, &s->ls);
    cio_lag_histogram(loop, s->lag_hist, &s->lag_sum);
    cio_lag_get(loop, &s->lag);
    s->slow = cio_slow_count(loop);
    s->log_dropped = cio_log_dropped_lines(loop);
    s->access_dropped = app->access ? cio_log_writer_dropped_lines(app->access) : 0;
    cio_pool_get_stats(app->pool, &s->ps);
    memcpy(s->slow_recent, app->slow_recent, sizeof(s->slow_recent));
    s->slow_reports = app->slow_reports;
}

int corio_snaps_take(const corio_shared *sh, corio_snap *s)
{
    gather g = {.sh = sh, .s = s};
    return cio_loop_call_all(sh->loops, sh->nworkers, take_snap, &g);
}

#define EACH(i, n) for (unsigned i = 0; i < (n); i++)

static void http_metrics(out *o, const snap *s, unsigned n)
{
    head(o, "corio_http_requests_total", "counter", "HTTP responses by method and status code.");
    for (int m = 0; m < CIO_HTTP_M_COUNT; m++)
        for (int c = 0; c < 500; c++) {
            uint64_t v = 0;
            EACH(w, n) v += s[w].http.responses[m][c];
            if (v)
                put(o, "corio_http_requests_total{method=\"%s\",code=\"%d\"} %llu\n",
                    cio_http_method_label(m), c + 100, (unsigned long long)v);
        }
    head(o, "corio_http_request_duration_seconds", "histogram",
         "Time from a complete request head to the end of its response.");
    uint64_t cum = 0, count = 0;
    cio_time sum = 0;
    for (int b = 0; b < CIO_HTTP_DURATION_BUCKETS; b++) {
        EACH(w, n) cum += s[w].http.duration[b];
        put(o, "corio_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
            cio_http_duration_bounds[b], (unsigned long long)cum);
    }
    EACH(w, n) count += s[w].http.duration_count, sum += s[w].http.duration_sum;
    put(o, "corio_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
        (unsigned long long)count);
    put(o, "corio_http_request_duration_seconds_sum %.9f\n", (double)sum / 1e9);
    put(o, "corio_http_request_duration_seconds_count %llu\n", (unsigned long long)count);

    head(o, "corio_connections_open", "gauge",
         "Open HTTP connections (WebSocket ones included), by worker.");
    EACH(w, n) put(o, "corio_connections_open{worker=\"%u\"} %llu\n", w,
                   (unsigned long long)s[w].st.connections);
    uint64_t accepted = 0, refused = 0;
    EACH(w, n) accepted += s[w].st.accepted, refused += s[w].st.budget_refused;
    one(o, "corio_connections_accepted_total", "counter", "Connections accepted.",
        (double)accepted);
    one(o, "corio_budget_refused_total", "counter",
        "Requests answered 503 because their body did not fit the memory budget.",
        (double)refused);

    head(o, "corio_ws_connections_open", "gauge", "Open WebSocket connections, by worker.");
    EACH(w, n) put(o, "corio_ws_connections_open{worker=\"%u\"} %llu\n", w,
                   (unsigned long long)s[w].ws.open);
    uint64_t in = 0, outm = 0;
    EACH(w, n) in += s[w].ws.messages_in, outm += s[w].ws.messages_out;
    head(o, "corio_ws_messages_total", "counter",
         "WebSocket data messages received (in) and queued to send (out).");
    put(o, "corio_ws_messages_total{direction=\"in\"} %llu\n", (unsigned long long)in);
    put(o, "corio_ws_messages_total{direction=\"out\"} %llu\n", (unsigned long long)outm);
}

static void loop_metrics(out *o, const snap *s, unsigned n)
{
    uint64_t in = 0, outb = 0, slow = 0;
    EACH(w, n) in += s[w].ls.bytes_in, outb += s[w].ls.bytes_out, slow += s[w].slow;
    head(o, "corio_bytes_total", "counter", "Bytes received from and sent to HTTP and WebSocket peers.");
    put(o, "corio_bytes_total{direction=\"in\"} %llu\n", (unsigned long long)in);
    put(o, "corio_bytes_total{direction=\"out\"} %llu\n", (unsigned long long)outb);
    head(o, "corio_coroutines_alive", "gauge", "Tasks (coroutines) not yet finished, by worker.");
    EACH(w, n) put(o, "corio_coroutines_alive{worker=\"%u\"} %llu\n", w,
                   (unsigned long long)s[w].ls.tasks_live);
    one(o, "corio_slow_handlers_total", "counter",
        "Times a handler or task ran longer than debug.slow_ms without awaiting.", (double)slow);

    /* Each loop's heartbeat: its log2 histogram, every other power of two
     * from 1 us. */
    head(o, "corio_loop_lag_seconds", "histogram",
         "How late each worker loop's heartbeat timer fired (the loop was busy or blocked).");
    EACH(w, n) {
        uint64_t cum = 0;
        unsigned i = 0;
        for (unsigned k = 10; k <= 32; k += 2) {
            for (; i <= k; i++)
                cum += s[w].lag_hist[i];
            put(o, "corio_loop_lag_seconds_bucket{worker=\"%u\",le=\"%.9g\"} %llu\n", w,
                (double)(1ull << k) / 1e9, (unsigned long long)cum);
        }
        put(o, "corio_loop_lag_seconds_bucket{worker=\"%u\",le=\"+Inf\"} %llu\n", w,
            (unsigned long long)s[w].lag.ticks);
        put(o, "corio_loop_lag_seconds_sum{worker=\"%u\"} %.9f\n", w,
            (double)s[w].lag_sum / 1e9);
        put(o, "corio_loop_lag_seconds_count{worker=\"%u\"} %llu\n", w,
            (unsigned long long)s[w].lag.ticks);
    }
    head(o, "corio_loop_drift_seconds", "gauge",
         "Each worker loop's heartbeat: accumulated lateness against its ideal schedule.");
    EACH(w, n) put(o, "corio_loop_drift_seconds{worker=\"%u\"} %.9f\n", w,
                   (double)s[w].lag.drift_ns / 1e9);
}

int corio_metrics_render(cio_app_worker *app, cio_buf *b)
{
    out o = {.b = *b};
    corio_shared *sh = app->sh;
    unsigned n = sh->nworkers;
    gather g = {.sh = sh, .s = calloc(n, sizeof(snap))};
    if (!g.s)
        return -ENOMEM;
    /* Each worker copies its own figures, on its own loop, all at once. */
    int rc = corio_snaps_take(sh, g.s);
    if (rc < 0) {
        free(g.s);
        return rc;
    }
    http_metrics(&o, g.s, n);
    loop_metrics(&o, g.s, n);

    const cio_pool_stats *ps = &g.s[0].ps; /* threads and queue: the process's */
    one(&o, "corio_pool_threads", "gauge", "Thread-pool workers.", (double)ps->threads);
    one(&o, "corio_pool_queue_depth", "gauge", "Thread-pool jobs queued, not yet running.",
        (double)ps->queued);
    one(&o, "corio_pool_busy_threads", "gauge", "Thread-pool workers running a job.",
        (double)ps->running);

    head(&o, "corio_discovery_state", "gauge",
         "Peer-ID discovery: 1 for the state this server is in, 0 for the others.");
    int now = atomic_load(&sh->disc_state);
    for (int st = CIO_PEER_STANDALONE; st <= CIO_PEER_FAILED; st++)
        put(&o, "corio_discovery_state{state=\"%s\"} %d\n",
            cio_peer_state_name((enum cio_peer_state)st), st == now);

    uint64_t errd = 0, accd = 0;
    EACH(w, n) errd += g.s[w].log_dropped, accd += g.s[w].access_dropped;
    head(&o, "corio_log_lines_dropped_total", "counter",
         "Log lines dropped because the log's writer had fallen behind.");
    put(&o, "corio_log_lines_dropped_total{log=\"error\"} %llu\n", (unsigned long long)errd);
    put(&o, "corio_log_lines_dropped_total{log=\"access\"} %llu\n", (unsigned long long)accd);
    one(&o, "corio_ws_forwards_dropped_total", "counter",
        "Room messages a worker could not be sent (it had fallen 64 MiB behind).",
        (double)cio_ws_topic_group_dropped(sh->rooms));
    one(&o, "corio_workers", "gauge", "Serving workers (loops).", (double)n);

    process_metrics(&o, sh->start_time);
    free(g.s);
    *b = o.b;
    return o.oom ? -ENOMEM : 0;
}

bool corio_loops_alive(const corio_shared *sh, unsigned *stuck, cio_time *since)
{
    cio_time limit = CIO_MS(atomic_load(&sh->stall_ms));
    cio_time now = cio_clock();
    for (unsigned w = 0; w < sh->nworkers; w++) {
        cio_time ago = now - cio_loop_last_turn(sh->loops[w]);
        if (limit > 0 && ago > limit) {
            *stuck = w;
            *since = ago;
            return false;
        }
    }
    return true;
}
