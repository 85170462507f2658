/*
 * app.c - the app (cio_app.h): configuration in, HTTP server out. The
 * corio daemon is this with its own routes (main.c, routes.c).
 *
 * Signals are read through the ring from a signalfd: SIGINT or SIGTERM starts
 * a graceful shutdown (stop accepting, let in-flight requests finish within
 * timeouts.drain_ms, exit 0); a second one cuts the drain short. SIGHUP
 * reopens the log files and reloads what can change while running.
 *
 * Startup order: configuration; the open-files limit; the sockets passed
 * by socket activation (LISTEN_FDS), if any; the pidfile, locked;
 * --daemon detaches (before any ring or thread exists: a SINGLE_ISSUER ring
 * belongs to the task that made it, and threads do not survive a fork, so
 * both are made after); then the loop, the pool, the listeners; then
 * privileges are dropped (--user/--group), and only then is the daemon
 * ready (systemd's READY=1; the waiting parent of --daemon exits 0).
 *
 * Workers (--workers N): N shared-nothing loops, each on a thread of its
 * own with its own ring, server and listening sockets (SO_REUSEPORT on the
 * same addresses). Worker 0 is the main thread's loop ("loop 0"): it also
 * reads the signals, runs discovery and the admin listeners, and owns the
 * thread pool, which every loop submits to. Loop 0 steers the others
 * only by posting to them (cio_loop_post): set up, listen, drain, end;
 * and they answer the same way. Settings (SIGHUP) reach each worker as a
 * reference-counted snapshot, applied on its own loop.
 *
 * Socket activation (systemd's LISTEN_FDS): the sockets passed are served
 * instead of binding "listen". They cannot be multiplied with SO_REUSEPORT
 * (that takes a socket bound by the same user, before the first listen),
 * so every worker accepts on a dup() of each: several rings on one socket,
 * one accept in flight in each, so that they take turns (a multishot
 * accept would keep the head of the socket's wait queue: worker 0 would
 * get every connection).
 *
 * The program's routes (cio_app_opts.setup) are registered on each worker's
 * server after the built-in ones, on that worker's loop; its teardown runs
 * there after the drain.
 *
 * Exit status (cio_app_run, cio_app_main): 0 after a clean shutdown, 1
 * when the server cannot start (e.g. the address is in use, the pidfile is
 * locked), 2 for configuration errors. (--probe URL is a client instead:
 * probe.c.)
 */
#include "app_internal.h"
#include "daemon.h"
#include "probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define BIND_RETRY_FOR  CIO_SEC(2) /* how long a listen address in use is retried */
#define BIND_RETRY_STEP CIO_MS(10)
#define HEAP_TRIM_INTERVAL CIO_SEC(1)  /* how often the heap trimmer looks */
#define HEAP_TRIM_MIN      (8u << 20)  /* resident growth since the last trim worth one */
#define MMAP_THRESHOLD     (128 * 1024) /* glibc's starting value, kept fixed */
#define BUDGET_DEFAULT     (UINT64_C(256) << 20) /* limits.max_buffered_bytes 0, uncontained */

/* Settings in force, shared by the workers: SIGHUP makes a new one and
 * hands every worker a reference; the last worker to let go frees it. */
typedef struct cfg_ref {
    atomic_uint refs;
    cio_config cfg;
} cfg_ref;

/* The access log's file, shared the same way (SIGHUP reopens it). fd -1:
 * "off"; STDERR_FILENO: "-" (not ours to close). */
typedef struct fd_ref {
    atomic_uint refs;
    int fd;
} fd_ref;

static cfg_ref *cfg_hold(cfg_ref *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

static void cfg_release(cfg_ref *r)
{
    if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1) {
        cio_config_free(&r->cfg);
        free(r);
    }
}

static fd_ref *fd_hold(fd_ref *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

static void fd_release(fd_ref *r)
{
    if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1) {
        if (r->fd > STDERR_FILENO)
            close(r->fd);
        free(r);
    }
}


/* One worker: a loop, its server and what it owns. Worker 0 runs on the
 * main thread (signals, discovery, the admin listeners, the pool's
 * owner); the others on threads of their own. Fields are the worker's
 * loop's but where said. */
typedef struct worker {
    cio_app *d;
    unsigned index;
    cio_app_worker app;
    pthread_t thread;     /* main thread's */
    cio_http_server *srv;
    cio_http_server *admin; /* worker 0's, when admin_listen is set */
    cio_budget budget;
    cio_log_writer *access;
    cfg_ref *cfg;         /* the settings this worker runs with */
    fd_ref *access_fd;
    cio_event go;         /* set by loop 0: listen now */
    cio_event stop;       /* set by loop 0: drain now */
    cio_event exit;       /* set by loop 0: every worker has drained: end */
    cio_scope *drain;     /* the drain in progress */
    bool cut;             /* a second signal: drain with no grace */
    bool setup_called;    /* the program's setup ran: its teardown will */
    cio_time slow_logged; /* the watchdog's last line */
    uint64_t slow_held;   /* reports since, not logged */
    cio_time slow_worst;
} worker;

struct cio_app {
    cio_app_opts opts;
    const char *name; /* opts.name or "corio" */
    const cio_config *cfg; /* as started (start's): what needs a restart is read from here */
    cfg_ref *start;
    cfg_ref *live;  /* loop 0's: the latest settings handed to the workers */
    fd_ref *access_fd;
    int sigfd;
    int ready_fd;   /* --daemon: tells the waiting parent how the start went, or -1 */
    int pidfile_fd; /* the locked pidfile, or -1 */
    int term_fd;    /* the terminal's stderr while the process log goes to a file, or -1 */
    corio_shared sh;
    worker *w;
    unsigned n;
    uint16_t *ports; /* per listen address, the port worker 0 bound */
    /* Socket activation: the listening sockets the service manager passed
     * (fds 3...), served instead of binding "listen"; each worker accepts
     * on a copy of its own, and loop 0 closes these once all have one. */
    int lfds[CIO_CONFIG_MAX_LISTEN];
    bool lproxy[CIO_CONFIG_MAX_LISTEN]; /* a "listen" entry with its address says so */
    size_t nlfds;
    /* loop 0's: workers' reports (set up, listening, drained), one per
     * phase from each worker that has a loop */
    unsigned alive;  /* workers with a loop */
    unsigned expect; /* reports this phase */
    unsigned reports;
    unsigned failures;
    unsigned abandons;
    cio_event reported;
    cio_event stop;
    int signals;
    bool abandon;   /* exit with work still running on the pool */
    bool self_lost; /* --require-self and discovery failed: exit 1 */
    bool ran;       /* cio_app_run was called */
    /* cio_app_stop's way in from any thread: loop 0 while it serves */
    pthread_mutex_t stop_lock;
    cio_loop *stop_loop;
};

/* ---- logs ----------------------------------------------------------------------------- */

/* The access log's file for spec ("off", "-" or a path). At startup and
 * SIGHUP, on loop 0: a blocking open is fine. */
static int open_access_fd(const char *spec, fd_ref **out)
{
    fd_ref *r = malloc(sizeof(*r));
    if (!r)
        return -ENOMEM;
    atomic_init(&r->refs, 1);
    r->fd = strcmp(spec, "off") == 0 ? -1 : STDERR_FILENO;
    if (r->fd >= 0 && strcmp(spec, "-") != 0 &&
        (r->fd = open(spec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)) < 0) {
        int rc = -errno;
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* The process log to a file (log.error), put in place of stderr: the
 * loops' writers write to fd 2, so lines go to the new file from the next
 * write on. Also how SIGHUP reopens it after a rename (logrotate). At
 * startup and SIGHUP: a blocking open is fine. 0 or -errno. */
static int open_error_log(const char *path)
{
    if (!path || strcmp(path, "-") == 0)
        return 0;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = dup2(fd, STDERR_FILENO) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* ---- a worker's settings -------------------------------------------------------------- */

/* The server's options for one of n workers: the process-wide
 * max_connections is shared out among them (each pauses accepting at its
 * share; SO_REUSEPORT spreads connections evenly enough). */
static cio_http_opts http_opts_of(const cio_config *cfg, unsigned n, cio_log_writer *access,
                                  cio_budget *b)
{
    return (cio_http_opts){
        .max_connections = (cfg->limits.max_connections + n - 1) / n,
        .max_header_bytes = cfg->limits.max_header_bytes,
        .max_uri_bytes = cfg->limits.max_uri_bytes,
        .max_body_bytes = cfg->limits.max_body_bytes,
        .max_requests_per_conn = cfg->limits.max_requests_per_connection,
        .max_conns_per_addr = cfg->limits.max_connections_per_ip,
        .header_timeout = CIO_MS(cfg->timeouts.header_ms),
        .body_timeout = CIO_MS(cfg->timeouts.body_ms),
        .keepalive_timeout = CIO_MS(cfg->timeouts.keepalive_ms),
        .write_timeout = CIO_MS(cfg->timeouts.write_ms),
        .handler_timeout = cfg->timeouts.handler_ms ? CIO_MS(cfg->timeouts.handler_ms) : CIO_NEVER,
        .root = cfg->root,
        .serve_dotfiles = cfg->serve_dotfiles,
        .access_log = access,
        .access_log_json = cfg->log.format == CIO_CONFIG_LOG_JSON,
        .budget = b,
    };
}

/* The WebSocket options handed out (their connections read them live). */
static void ws_opts_of(const cio_config *cfg, cio_app_worker *app, cio_budget *b)
{
    cio_ws_opts *w = &app->ws_opts;
    cio_ws_opts_defaults(w);
    w->max_message_bytes = cfg->websocket.max_message_bytes;
    w->send_queue_bytes = cfg->websocket.send_queue_bytes;
    w->ping_interval =
        cfg->websocket.ping_interval_ms ? CIO_MS(cfg->websocket.ping_interval_ms) : CIO_NEVER;
    w->idle_timeout =
        cfg->websocket.idle_timeout_ms ? CIO_MS(cfg->websocket.idle_timeout_ms) : CIO_NEVER;
    w->write_timeout = CIO_MS(cfg->timeouts.write_ms);
    w->origins = (const char *const *)cfg->websocket.origins;
    w->norigins = cfg->websocket.norigins;
    w->compression = cfg->websocket.compression;
    w->deflate_window_bits = (uint8_t)cfg->websocket.compression_window_bits;
    w->budget = b;
    app->pubsub_opts = *w;
    app->pubsub_opts.shared_frames = true;
}

/* The slow-task watchdog's report: a handler (or another task) kept the
 * loop for ns without awaiting. At most one line a second per worker; the
 * ones held back are counted in the next (all are in
 * corio_slow_handlers_total). */
static void slow_report(void *ud, const char *name, cio_time ns)
{
    worker *w = ud;
    cio_time now = cio_now();
    /* Every report, for the status page (the log below is rate-limited). */
    corio_slow_rec *r = &w->app.slow_recent[w->app.slow_reports++ % CORIO_SLOW_KEPT];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r->time = (double)ts.tv_sec + ts.tv_nsec / 1e9;
    r->ms = (double)ns / 1e6;
    snprintf(r->task, sizeof(r->task), "%s", name ? name : "a task");
    if (ns > w->slow_worst)
        w->slow_worst = ns;
    if (w->slow_logged && now - w->slow_logged < CIO_SEC(1)) {
        w->slow_held++;
        return;
    }
    char more[96] = "", who[32] = "";
    if (w->slow_held)
        snprintf(more, sizeof(more), " (and %llu more in the last second, the worst %.0f ms)",
                 (unsigned long long)w->slow_held, (double)w->slow_worst / 1e6);
    if (w->d->n > 1)
        snprintf(who, sizeof(who), " (worker %u)", w->index);
    cio_warn("slow handler: %s ran %.0f ms without awaiting; every connection of this loop%s "
             "waited meanwhile (debug.slow_ms %llu)%s",
             name ? name : "a task", (double)ns / 1e6, who,
             (unsigned long long)w->cfg->cfg.debug.slow_ms, more);
    w->slow_logged = now;
    w->slow_held = 0;
    w->slow_worst = 0;
}

/* Takes settings (and the access log's file) into use on w's loop: the
 * servers' options, the WebSocket routes', the watchdog's threshold. The
 * references become w's. At start and at SIGHUP. */
static void worker_apply(worker *w, cfg_ref *c, fd_ref *afd)
{
    const cio_config *cfg = &c->cfg;
    cio_log_writer *access = w->access;
    if (afd != w->access_fd) {
        access = NULL;
        int rc = afd->fd >= 0 ? cio_log_writer_create(NULL, afd->fd, 4 * 1024 * 1024, &access) : 0;
        if (rc < 0 && w->access_fd) {
            cio_error("access log: %s (keeping the old one)", strerror(-rc));
            fd_release(afd);
            afd = fd_hold(w->access_fd);
            access = w->access;
        } else if (rc < 0) {
            cio_error("access log: %s (none on worker %u)", strerror(-rc), w->index);
        }
    }
    if (w->srv) {
        cio_http_opts o = http_opts_of(cfg, w->d->n, access, &w->budget);
        int rc = cio_http_server_reconfigure(w->srv, &o);
        if (rc == 0 && w->admin)
            rc = cio_http_server_reconfigure(w->admin, &o);
        if (rc < 0 && w->index == 0)
            cio_error("SIGHUP: %s: %s", cfg->root ? cfg->root : "root", strerror(-rc));
    }
    ws_opts_of(cfg, &w->app, &w->budget);
    (void)cio_slow_watch(NULL, CIO_MS(cfg->debug.slow_ms), slow_report, w);
    if (access != w->access)
        cio_log_writer_destroy(w->access); /* writes out what it holds */
    w->access = access;
    w->app.access = access;
    cfg_release(w->cfg);
    fd_release(w->access_fd);
    w->cfg = c;
    w->app.cfg = &c->cfg;
    w->access_fd = afd;
}

typedef struct apply_msg {
    worker *w;
    cfg_ref *c;
    fd_ref *afd;
} apply_msg;

static void apply_posted(void *arg)
{
    apply_msg *m = arg;
    worker_apply(m->w, m->c, m->afd);
    free(m);
}

/* Hands settings to every worker (loop 0 applies its own at once). */
static void apply_everywhere(cio_app *d, cfg_ref *c, fd_ref *afd)
{
    for (unsigned i = 1; i < d->n; i++) {
        apply_msg *m = malloc(sizeof(*m));
        if (!m) {
            cio_error("SIGHUP: worker %u keeps its settings: out of memory", i);
            continue;
        }
        *m = (apply_msg){&d->w[i], cfg_hold(c), fd_hold(afd)};
        if (cio_loop_post(d->sh.loops[i], apply_posted, m) < 0) {
            cfg_release(m->c);
            fd_release(m->afd);
            free(m);
            cio_error("SIGHUP: worker %u keeps its settings: out of memory", i);
        }
    }
    worker_apply(&d->w[0], cfg_hold(c), fd_hold(afd));
}

/* ---- loop 0 telling the workers, the workers telling loop 0 --------------------------- */

typedef void (*worker_fn)(worker *w);

typedef struct worker_msg {
    worker *w;
    worker_fn fn;
} worker_msg;

static void worker_msg_run(void *arg)
{
    worker_msg *m = arg;
    m->fn(m->w);
    free(m);
}

/* Runs fn(w) on w's loop (at once when that is the calling one). A post
 * fails only for want of memory: retried, since these messages start and
 * stop workers. */
static void tell(worker *w, worker_fn fn)
{
    if (!w->d->sh.loops[w->index])
        return; /* its thread could not make a loop (and has ended) */
    if (w->d->sh.loops[w->index] == cio_loop_current()) {
        fn(w);
        return;
    }
    worker_msg *m;
    while (!(m = malloc(sizeof(*m))))
        sched_yield();
    *m = (worker_msg){w, fn};
    while (cio_loop_post(w->d->sh.loops[w->index], worker_msg_run, m) < 0)
        sched_yield();
}

static void tell_all(cio_app *d, worker_fn fn)
{
    for (unsigned i = 0; i < d->n; i++)
        tell(&d->w[i], fn);
}

static void set_go(worker *w)
{
    cio_event_set(&w->go);
}
static void set_stop(worker *w)
{
    cio_event_set(&w->stop);
}
static void set_exit(worker *w)
{
    cio_event_set(&w->exit);
}
static void cut_drain(worker *w)
{
    w->cut = true;
    if (w->drain)
        cio_scope_cancel(w->drain);
}

/* Reports arrive on loop 0 and are counted there. */
enum report { REPORT_OK, REPORT_FAILED, REPORT_ABANDON, REPORT_GONE };

static void counted(cio_app *d, enum report r)
{
    d->failures += r == REPORT_FAILED || r == REPORT_GONE;
    d->abandons += r == REPORT_ABANDON;
    if (r == REPORT_GONE)
        d->alive--; /* no loop: it reports nothing more */
    if (++d->reports == d->expect)
        cio_event_set(&d->reported);
}

static void report_ok(worker *w)
{
    counted(w->d, REPORT_OK);
}
static void report_failed(worker *w)
{
    counted(w->d, REPORT_FAILED);
}
static void report_abandon(worker *w)
{
    counted(w->d, REPORT_ABANDON);
}
static void report_gone(worker *w)
{
    counted(w->d, REPORT_GONE);
}

static void report(worker *w, enum report r)
{
    static const worker_fn fns[] = {report_ok, report_failed, report_abandon, report_gone};
    /* Runs fns[r](w) on loop 0, whose worker is d->w[0]: the w passed is
     * the reporting one, the loop is loop 0's. */
    worker_msg *m;
    if (w->index == 0) {
        fns[r](w);
        return;
    }
    while (!(m = malloc(sizeof(*m))))
        sched_yield();
    *m = (worker_msg){w, fns[r]};
    while (cio_loop_post(w->d->sh.loops[0], worker_msg_run, m) < 0)
        sched_yield();
}

/* [awaits] On loop 0: waits until every worker with a loop has reported
 * the phase; returns how many reported failures, and readies the count
 * for the next phase. */
static unsigned gather(cio_app *d)
{
    cio_event_wait(&d->reported, CIO_NEVER);
    unsigned failed = d->failures;
    d->reports = 0;
    d->failures = 0;
    d->expect = d->alive;
    cio_event_init(&d->reported);
    return failed;
}

/* ---- SIGHUP ------------------------------------------------------------------------------ */

/* What changed between a and b, those that need a restart or those that
 * do not, as "key, key, ...". */
static size_t changes(const cio_config *a, const cio_config *b, bool restart, char *out,
                      size_t cap)
{
    cio_config_change ch[64];
    size_t n = cio_config_diff(a, b, ch, 64), len = 0;
    out[0] = 0;
    for (size_t i = 0; i < n && i < 64; i++)
        if (ch[i].restart == restart && len < cap)
            len += (size_t)snprintf(out + len, cap - len, "%s%s", len ? ", " : "", ch[i].key);
    return len;
}

/* SIGHUP: reopens the log files (logrotate renamed them), and reads the
 * command line and its file again: what can change while running is
 * applied on every worker, what cannot is named (against the values the
 * process started with) and ignored; a configuration that does not
 * validate changes nothing. */
static void reload(cio_app *d)
{
    corio_notify("RELOADING=1");
    char err[512];
    cfg_ref *nc = calloc(1, sizeof(*nc));
    if (!nc) {
        cio_error("SIGHUP: out of memory: keeping the running configuration");
        corio_notify("READY=1");
        return;
    }
    atomic_init(&nc->refs, 1);
    if (!d->opts.argv) {
        /* Created from a configuration, not a command line: nothing to
         * read again. */
        free(nc); /* owns nothing yet */
        nc = cfg_hold(d->live);
        cio_info("SIGHUP: reopening the logs (settings given by the program: nothing to reload)");
    } else if (cio_config_from_args(&nc->cfg, d->opts.argc, d->opts.argv, NULL, err,
                                    sizeof(err)) < 0) {
        cio_error("SIGHUP: %s: keeping the running configuration", err);
        cfg_release(nc);
        nc = cfg_hold(d->live);
    } else {
        char live[1024], later[1024];
        size_t ll = changes(&d->live->cfg, &nc->cfg, false, live, sizeof(live));
        size_t rl = changes(d->cfg, &nc->cfg, true, later, sizeof(later));
        /* Said at the level in force before: lowering it to warn still
         * confirms the reload. */
        if (ll)
            cio_info("SIGHUP: applied: %s", live);
        if (rl)
            cio_warn("SIGHUP: changed, but they need a restart (still running with the old "
                     "values): %s",
                     later);
        if (!ll && !rl)
            cio_info("SIGHUP: configuration unchanged");
    }
    cio_log_set_level((enum cio_log_level)nc->cfg.log.level);
    atomic_store(&d->sh.stall_ms, nc->cfg.health.stall_ms);
    /* The logs are reopened in any case: that is what logrotate asks. */
    int rc = open_error_log(d->cfg->log.error); /* reopened, never moved */
    if (rc < 0)
        cio_error("SIGHUP: error log %s: %s", d->cfg->log.error, strerror(-rc));
    fd_ref *afd;
    rc = open_access_fd(nc->cfg.log.access, &afd);
    if (rc < 0) {
        cio_error("SIGHUP: access log %s: %s (keeping the old one)", nc->cfg.log.access,
                  strerror(-rc));
        afd = fd_hold(d->access_fd);
    }
    apply_everywhere(d, nc, afd);
    cfg_release(d->live);
    fd_release(d->access_fd);
    d->live = nc;
    d->access_fd = afd;
    corio_notify("READY=1");
}

/* ---- signals, discovery ------------------------------------------------------------------ */

/* A stop request (SIGINT, SIGTERM, cio_app_stop): the first starts the
 * graceful shutdown, the next cuts every drain short. On loop 0. */
static void stop_requested(cio_app *d, const char *why)
{
    d->signals++;
    if (d->signals == 1) {
        corio_notify("STOPPING=1");
        cio_info("%s: shutting down gracefully (drain %llu ms)", why,
                 (unsigned long long)d->live->cfg.timeouts.drain_ms);
        cio_event_set(&d->stop);
    } else {
        cio_warn("%s again: closing all connections now", why);
        tell_all(d, cut_drain);
    }
}

static void stop_posted(void *arg)
{
    stop_requested(arg, "cio_app_stop");
}

static intptr_t watch_signals(void *arg)
{
    cio_app *d = arg;
    for (;;) {
        struct signalfd_siginfo si;
        ssize_t n = cio_read(d->sigfd, &si, sizeof(si), -1, CIO_NEVER);
        if (n != (ssize_t)sizeof(si))
            return n < 0 ? n : -EIO;
        if (si.ssi_signo == SIGHUP)
            reload(d);
        else
            stop_requested(d, strsignal((int)si.ssi_signo));
    }
}

/* Tells every worker discovery's answer (the routes that need self wait
 * for it on their own loop). */
typedef struct self_msg {
    cio_app_worker *app;
    int rc;
    const char *self;
} self_msg;

static void self_set(void *arg)
{
    self_msg *m = arg;
    m->app->self_rc = m->rc;
    m->app->self = m->self;
    cio_event_set(&m->app->self_known);
    free(m);
}

static intptr_t announce_self(void *arg)
{
    cio_app *d = arg;
    const char *self = NULL;
    int rc = cio_discovery_await_self(d->sh.disc, &self, CIO_NEVER);
    if (rc == -ECANCELED)
        return rc;
    atomic_store(&d->sh.disc_state, (int)cio_discovery_state(d->sh.disc));
    for (unsigned i = 0; i < d->n; i++) {
        self_msg *m = malloc(sizeof(*m));
        while (!m && !cio_cancelled() && cio_sleep(CIO_MS(10)) == 0)
            m = malloc(sizeof(*m));
        if (!m)
            return -ECANCELED;
        *m = (self_msg){&d->w[i].app, rc, self};
        if (i == 0)
            self_set(m);
        else
            while (cio_loop_post(d->sh.loops[i], self_set, m) < 0)
                sched_yield();
    }
    if (rc == -ESRCH && d->cfg->discovery.require_self && d->cfg->nservers) {
        /* A member that cannot tell which entry it is must not run on (its
         * supervisor restarts it, or someone fixes the list). */
        cio_error("--require-self: exiting, since this server is not in \"servers\"");
        d->self_lost = true;
        cio_event_set(&d->stop);
    }
    return 0;
}

/* Discovery's members, from the configuration's "servers". */
static int discovery_create(const cio_config *cfg, cio_http_client *client, const cio_peer_id *id,
                            cio_discovery **out)
{
    cio_peer_member *m = calloc(cfg->nservers ? cfg->nservers : 1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    for (size_t i = 0; i < cfg->nservers; i++)
        m[i] = (cio_peer_member){cfg->servers[i].text, cfg->servers[i].host,
                                 cfg->servers[i].port};
    cio_discovery_opts o = {
        .members = m,
        .nmembers = cfg->nservers,
        .id = *id,
        .client = client,
        .interval = CIO_MS(cfg->discovery.interval_ms),
        .window = cfg->discovery.window_ms ? CIO_MS(cfg->discovery.window_ms) : CIO_NEVER,
        .request_timeout = CIO_MS(cfg->discovery.request_timeout_ms),
    };
    int rc = cio_discovery_create(NULL, &o, out);
    free(m);
    return rc;
}

/* ---- memory ------------------------------------------------------------------------------ */

/* Lowers *(uint64_t *)ud to the memory limit of the cgroup in dir: v2's
 * memory.max ("max" for none, which does not parse), v1's
 * memory.limit_in_bytes (a number near 2^63 for none). */
static void note_memory_limit(void *ud, const char *dir, bool v2)
{
    uint64_t *lowest = ud;
    char name[4400];
    snprintf(name, sizeof(name), "%s/%s", dir, v2 ? "memory.max" : "memory.limit_in_bytes");
    FILE *f = fopen(name, "re");
    if (!f)
        return;
    unsigned long long v;
    if (fscanf(f, "%llu", &v) == 1 && v < *lowest)
        *lowest = v;
    fclose(f);
}

/* The memory the process's cgroups may use: the lowest limit from its own
 * cgroup up (v2, or the v1 memory controller); UINT64_MAX when unlimited.
 * At startup: blocking reads are fine. */
static uint64_t cgroup_memory_max(void)
{
    uint64_t lowest = UINT64_MAX;
    cio_cgroup_walk("memory", note_memory_limit, &lowest);
    return lowest;
}

/* limits.max_buffered_bytes, or by default 256 MiB, or a quarter of the
 * memory the process's cgroup may use when that is lower (a container
 * limited to 512 MiB buffers at most 128 MiB for its clients). */
static uint64_t buffered_limit(const cio_config *cfg, uint64_t *cgroup_max)
{
    *cgroup_max = UINT64_MAX;
    if (cfg->limits.max_buffered_bytes)
        return cfg->limits.max_buffered_bytes;
    *cgroup_max = cgroup_memory_max();
    return *cgroup_max / 4 < BUDGET_DEFAULT ? *cgroup_max / 4 : BUDGET_DEFAULT;
}

/* ---- a worker's life ---------------------------------------------------------------------- */

/* The port of a "host:port" text (as cio_http_listen_with writes it). */
static uint16_t port_of(const char *text)
{
    const char *c = strrchr(text, ':');
    return c ? (uint16_t)strtoul(c + 1, NULL, 10) : 0;
}

/* [awaits] Listens on every address of list (with SO_REUSEPORT when
 * several workers share them: each has a socket of its own, and the
 * kernel spreads connections among them). ports, when given, holds per
 * entry the port to use instead of the listed one (0: as listed) and
 * receives the port bound: worker 0 binds first, and the others take its
 * ports, so that "port 0" is one free port for all of them. A daemon restarted at once
 * (after kill -9, by a supervisor) finds its old listening socket still
 * bound for ~10 ms, until the kernel has torn down the dead process's
 * ring: EADDRINUSE is retried for a while, as nginx does (5 tries 500 ms
 * apart). 0 or -errno (logged). */
static int listen_all(cio_http_server *srv, const cio_listen *list, size_t n, bool reuseport,
                      const char *what, bool tell, uint16_t *ports)
{
    for (size_t i = 0; i < n; i++) {
        char bound[64];
        cio_time give_up = cio_after(BIND_RETRY_FOR);
        bool told = false;
        int rc;
        cio_http_listen_opts lo = {.reuseport = reuseport,
                                   .proxy_protocol = list[i].proxy_protocol};
        struct sockaddr_storage addr = list[i].addr;
        if (ports && ports[i]) {
            if (addr.ss_family == AF_INET)
                ((struct sockaddr_in *)&addr)->sin_port = htons(ports[i]);
            else if (addr.ss_family == AF_INET6)
                ((struct sockaddr_in6 *)&addr)->sin6_port = htons(ports[i]);
        }
        while ((rc = cio_http_listen_with(srv, (const struct sockaddr *)&addr, list[i].addrlen,
                                          &lo, bound)) == -EADDRINUSE &&
               cio_now() < give_up) {
            if (!told && tell)
                cio_warn("%s is in use; trying again for %d s", list[i].text,
                         (int)(BIND_RETRY_FOR / CIO_SEC(1)));
            told = true;
            if (cio_sleep(BIND_RETRY_STEP) < 0)
                break; /* cancelled: the loop is stopping */
        }
        if (rc < 0) {
            cio_error("cannot listen on %s: %s", list[i].text, strerror(-rc));
            return rc;
        }
        if (ports)
            ports[i] = port_of(bound);
        if (tell)
            cio_info("%s on %s%s", what, bound,
                     list[i].proxy_protocol ? " (PROXY protocol required)" : "");
    }
    return 0;
}

/* The listening sockets passed by the service manager, as they were
 * passed: closed once every worker has its own copy (or at exit). */
static void close_inherited(cio_app *d)
{
    for (size_t i = 0; i < d->nlfds; i++)
        if (d->lfds[i] >= 0) {
            close(d->lfds[i]);
            d->lfds[i] = -1;
        }
}

/* Whether two socket addresses are one: family, address and port. */
static bool same_sockaddr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

/* An inherited socket takes proxy_protocol from the "listen" entry with
 * its address, if there is one (none: plain connections). */
static bool inherited_proxy(const cio_config *cfg, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return false;
    for (size_t i = 0; i < cfg->nlisten; i++)
        if (same_sockaddr(&cfg->listen[i].addr, &ss))
            return cfg->listen[i].proxy_protocol;
    return false;
}

/* [awaits] Socket activation: listens on the sockets the service manager
 * passed, each worker on a copy of its own (a dup: one socket, accepted on
 * by every worker's ring, taking turns). 0 or -errno (logged). */
static int listen_inherited(worker *w)
{
    cio_app *d = w->d;
    if (w->index == 0)
        cio_info("socket activation: serving on the %zu socket(s) the service manager passed, "
                 "not on \"listen\"",
                 d->nlfds);
    for (size_t i = 0; i < d->nlfds; i++) {
        char bound[64];
        cio_http_listen_opts lo = {.proxy_protocol = d->lproxy[i], .shared = d->n > 1};
        int fd = fcntl(d->lfds[i], F_DUPFD_CLOEXEC, 3);
        int rc = fd < 0 ? -errno : cio_http_listen_fd(w->srv, fd, &lo, bound);
        if (rc < 0) {
            if (fd >= 0)
                close(fd);
            cio_error("socket activation: fd %d: %s", d->lfds[i], strerror(-rc));
            return rc;
        }
        if (w->index == 0)
            cio_info("listening on %s (socket activation%s)", bound,
                     lo.proxy_protocol ? ", PROXY protocol required" : "");
    }
    return 0;
}

/* [awaits] Sets up worker w on the calling loop: budget, rooms, pool,
 * access log, server (and admin server) with the routes. Not listening
 * yet. 0 or -errno (logged). */
static int worker_setup(worker *w)
{
    cio_app *d = w->d;
    const cio_config *cfg = d->cfg;
    cio_app_worker *app = &w->app;
    app->sh = &d->sh;
    app->worker = w->index;
    cio_event_init(&app->self_known);
    if (atomic_load(&d->sh.disc_state) == CIO_PEER_STANDALONE) {
        app->self_rc = -ENOENT; /* nothing to find */
        cio_event_set(&app->self_known);
    }
    uint64_t cgroup_max;
    uint64_t limit = buffered_limit(cfg, &cgroup_max);
    cio_budget_init(&w->budget, NULL, limit / d->n); /* shared out, like max_connections */
    if (w->index == 0 && cgroup_max / 4 < BUDGET_DEFAULT)
        cio_info("memory budget for buffered bytes: %llu MiB (the cgroup may use %llu MiB)",
                 (unsigned long long)(limit >> 20), (unsigned long long)(cgroup_max >> 20));
    int rc = cio_ws_topics_create_member(d->sh.rooms, w->index, &app->rooms);
    if (rc == 0)
        rc = cio_ws_topics_create_member(d->sh.status_group, w->index, &app->status_topics);
    if (rc < 0) {
        cio_error("websocket rooms: %s", strerror(-rc));
        return rc;
    }
    if (w->index > 0 && (rc = cio_pool_attach(d->w[0].app.pool, NULL, &app->pool)) < 0) {
        cio_error("thread pool: %s", strerror(-rc));
        return rc;
    }
    cfg_ref *c = cfg_hold(d->live);
    fd_ref *afd = fd_hold(d->access_fd);
    w->access_fd = NULL; /* a new file for worker_apply */
    worker_apply(w, c, afd);
    cio_http_opts o = http_opts_of(&c->cfg, d->n, w->access, &w->budget);
    rc = cio_http_server_create(NULL, &o, &w->srv);
    if (rc < 0) {
        cio_error("cannot start: %s%s%s", cfg->root ? cfg->root : "", cfg->root ? ": " : "",
                  strerror(-rc));
        return rc;
    }
    app->srv = w->srv;
    if (w->index > 0)
        (void)cio_http_server_share_addrs(w->srv, d->w[0].srv);
    if (w->index == 0 && cfg->nadmin_listen) {
        /* Operators' routes on addresses of their own, not public ones. */
        rc = cio_http_server_create(NULL, &o, &w->admin);
        if (rc < 0) {
            cio_error("admin server: %s", strerror(-rc));
            return rc;
        }
    }
    rc = corio_routes_register(w->srv, app, w->admin);
    if (rc < 0) {
        cio_error("cannot register routes: %s", strerror(-rc));
        return rc;
    }
    if (d->opts.setup) {
        w->setup_called = true;
        rc = d->opts.setup(app, d->opts.ud);
        if (rc < 0) {
            cio_error("%s's setup%s: %s", d->name, d->n > 1 ? " (a worker's)" : "",
                      strerror(-rc));
            return rc;
        }
    }
    cio_lag_start(NULL, CIO_MS(100)); /* also what keeps an idle loop turning (/healthz) */
    /* CORIO_DEBUG=1: the costly checks too (blocking calls on the loop
     * thread, tasks never joined, abandoned pool jobs), into this log. */
    const char *debug = getenv("CORIO_DEBUG");
    if (debug && strcmp(debug, "1") == 0) {
        (void)cio_debug_set(NULL, true);
        cio_task_set_name(NULL, w->index == 0 ? "serve (the daemon's start and shutdown)"
                                              : "a worker's start and shutdown");
    }
    return 0;
}

/* [awaits] Listens (worker 0 also on the admin addresses). */
static int worker_listen(worker *w)
{
    const cio_config *cfg = w->d->cfg;
    bool many = w->d->n > 1;
    int rc = w->d->nlfds ? listen_inherited(w)
                         : listen_all(w->srv, cfg->listen, cfg->nlisten, many, "listening",
                                      w->index == 0, w->d->ports);
    if (rc == 0 && w->admin)
        rc = listen_all(w->admin, cfg->admin_listen, cfg->nadmin_listen, false,
                        "listening (/metrics, /cluster, /status)", true, NULL);
    return rc;
}

/* [awaits] Stops accepting and lets requests in flight finish within
 * timeouts.drain_ms (none after a second signal). Returns REPORT_ABANDON
 * when requests still wait for pool jobs that cannot be stopped. */
static enum report worker_drain(worker *w)
{
    cio_scope drain;
    cio_scope_enter(&drain, CIO_NEVER, false);
    w->drain = &drain;
    cio_time until = w->cut ? cio_now() : cio_after(CIO_MS(w->cfg->cfg.timeouts.drain_ms));
    int rc = cio_http_server_shutdown(w->srv, until);
    w->drain = NULL;
    cio_scope_exit(&drain);
    if (rc < 0) {
        cio_http_stats st;
        cio_http_server_stats(w->srv, &st);
        if (st.connections > 0) {
            /* Handlers still waiting for pool jobs that cannot be stopped:
             * exit without them rather than overrun the drain deadline.
             * Their memory stays untouched until the process is gone. */
            cio_warn("drain deadline passed with %llu request(s) still running: exiting",
                     (unsigned long long)st.connections);
            return REPORT_ABANDON;
        }
        cio_warn("drain deadline passed: connections with requests in flight were closed");
    }
    return REPORT_OK;
}

/* Frees what worker_setup made (after the drain, or a failed start). */
static void worker_teardown(worker *w)
{
    if (w->setup_called && w->d->opts.teardown)
        w->d->opts.teardown(&w->app, w->d->opts.ud);
    w->setup_called = false;
    if (w->srv) {
        cio_http_server_shutdown(w->srv, cio_now()); /* at once: drained, or never served */
        cio_http_server_destroy(w->srv);
        w->srv = w->app.srv = NULL;
    }
    if (w->admin) {
        cio_http_server_shutdown(w->admin, cio_now());
        cio_http_server_destroy(w->admin);
        w->admin = NULL;
    }
    if (w->index > 0 && w->app.pool) {
        /* A job that does not stop within 5 s keeps its memory. */
        if (cio_pool_shutdown(w->app.pool, CIO_POOL_CANCEL, cio_after(CIO_SEC(5))) == 0)
            cio_pool_destroy(w->app.pool);
        w->app.pool = NULL;
    }
    cio_ws_topics_destroy(w->app.rooms);
    cio_ws_topics_destroy(w->app.status_topics);
    w->app.rooms = w->app.status_topics = NULL;
    cio_budget_fini(&w->budget);
    cio_log_writer_destroy(w->access);
    w->access = w->app.access = NULL;
    cfg_release(w->cfg);
    fd_release(w->access_fd);
    w->cfg = NULL;
    w->access_fd = NULL;
}

/* A worker other than 0: its loop's main task. Every step is reported to
 * loop 0, which starts the next for all workers at once. */
static intptr_t worker_main(void *arg)
{
    worker *w = arg;
    int rc = worker_setup(w);
    report(w, rc < 0 ? REPORT_FAILED : REPORT_OK);
    cio_event_wait(&w->go, CIO_NEVER);
    /* After a failure elsewhere (cut), every phase is still reported. */
    int lrc = rc == 0 && !w->cut ? worker_listen(w) : 0;
    report(w, lrc < 0 ? REPORT_FAILED : REPORT_OK);
    cio_event_wait(&w->stop, CIO_NEVER);
    enum report r = rc == 0 ? worker_drain(w) : REPORT_OK;
    if (r == REPORT_ABANDON)
        cio_loop_abandon(cio_loop_current()); /* its logs written out: the process exits */
    report(w, r);
    if (r == REPORT_ABANDON) {
        while (cio_sleep(CIO_SEC(60)) == 0)
            ; /* until loop 0 exits the process */
        return 0;
    }
    cio_event_wait(&w->exit, CIO_NEVER);
    worker_teardown(w);
    return 0;
}

static void *worker_thread(void *arg)
{
    worker *w = arg;
    cio_loop *loop;
    int rc = cio_loop_create(&loop, NULL);
    if (rc < 0) {
        /* Loop 0 waits for this worker's report: it must hear of it (and
         * tells it nothing more: its loops[] entry stays NULL). */
        char why[768];
        corio_uring_error(rc, why, sizeof(why));
        fprintf(stderr, "corio: worker %u: %s\n", w->index, why);
        report(w, REPORT_GONE);
        return NULL;
    }
    /* Loop 0 reads loops[] only after this worker's first report (the
     * post orders the two). */
    w->d->sh.loops[w->index] = loop;
    cio_run(loop, worker_main, w);
    cio_loop_destroy(loop);
    return NULL;
}

/* ---- the process: loop 0 -------------------------------------------------------------------- */

static intptr_t serve(void *arg)
{
    cio_app *d = arg;
    const cio_config *cfg = d->cfg;
    cio_http_client *client = NULL;
    cio_task *announce = NULL, *watcher = NULL;
    intptr_t result = 1;
    unsigned started = 1; /* worker threads running, counting this one */
    worker *w0 = &d->w[0];

    static const enum cio_pool_priority prio[] = {
        [CIO_CONFIG_POOL_LOW] = CIO_POOL_PRIO_LOW,
        [CIO_CONFIG_POOL_IDLE] = CIO_POOL_PRIO_IDLE,
        [CIO_CONFIG_POOL_NORMAL] = CIO_POOL_PRIO_NORMAL,
    };
    cio_pool_opts po = {.threads = cfg->pool_threads,
                        .queue = cfg->pool_queue,
                        .priority = prio[cfg->pool_priority]};
    d->sh.start_time = corio_process_start_time();
    d->sh.name = d->name;
    d->sh.version = d->opts.version ? d->opts.version : CIO_VERSION;
    atomic_store(&d->sh.stall_ms, d->live->cfg.health.stall_ms);
    atomic_store(&d->sh.disc_state, cfg->nservers ? CIO_PEER_SEARCHING : CIO_PEER_STANDALONE);
    int rc = cio_peer_id_generate(&d->sh.id);
    if (rc < 0) {
        cio_error("cannot generate the server id: %s", strerror(-rc));
        return 1;
    }
    rc = cio_ws_topic_group_create(d->n, &d->sh.rooms);
    if (rc == 0)
        rc = cio_ws_topic_group_create(d->n, &d->sh.status_group);
    if (rc < 0) {
        cio_error("websocket rooms: %s", strerror(-rc));
        return 1;
    }
    rc = cio_pool_create(NULL, &w0->app.pool, &po);
    if (rc < 0) {
        cio_error("thread pool: %s", strerror(-rc));
        return 1;
    }
    /* The peer-ID protocol's queries go through a client whose name
     * lookups run on threads of its own (not behind /hash jobs). */
    rc = cio_http_client_create(NULL, NULL, &client);
    if (rc == 0)
        rc = discovery_create(cfg, client, &d->sh.id, &d->sh.disc);
    if (rc < 0) {
        cio_error("discovery: %s", strerror(-rc));
        goto out;
    }
    rc = open_access_fd(d->live->cfg.log.access, &d->access_fd);
    if (rc < 0) {
        cio_error("access log %s: %s", d->live->cfg.log.access, strerror(-rc));
        goto out;
    }
    /* Every worker is set up, then every worker listens: no route (nor
     * /metrics) runs before every loop exists. */
    /* Each phase ends when every worker with a loop has reported it; after
     * a failure the others still go through every phase, with no grace. */
    d->alive = d->expect = d->n;
    cio_event_init(&d->reported);
    int setup_rc = worker_setup(w0);
    report(w0, setup_rc < 0 ? REPORT_FAILED : REPORT_OK);
    for (unsigned i = 1; i < d->n; i++, started++) {
        rc = -pthread_create(&d->w[i].thread, NULL, worker_thread, &d->w[i]);
        if (rc < 0) {
            cio_error("worker %u: %s", i, strerror(-rc));
            break;
        }
    }
    if (started < d->n) {
        /* Those that never started never report. */
        d->alive -= d->n - started;
        d->expect -= d->n - started;
        d->failures += d->n - started;
        if (d->reports == d->expect)
            cio_event_set(&d->reported);
    }
    bool failed = gather(d) > 0;
    /* The status page's snapshots: every worker's server exists, and the
     * first snapshot is there before the first request can ask for it. */
    if (!failed && (rc = corio_status_start(&d->sh)) < 0) {
        cio_error("status page: %s", strerror(-rc));
        failed = true;
    }
    /* Worker 0 binds first: the others take the ports it got. */
    rc = failed ? 0 : worker_listen(w0);
    failed = failed || rc < 0;
    report(w0, rc < 0 ? REPORT_FAILED : REPORT_OK);
    for (unsigned i = 1; i < started; i++) {
        if (failed)
            tell(&d->w[i], cut_drain); /* they skip listening */
        tell(&d->w[i], set_go);
    }
    failed = gather(d) > 0 || failed;
    close_inherited(d); /* every worker that listens has a copy of its own */
    if (failed)
        goto drain;
    if (d->n > 1 && d->nlfds)
        cio_info("%u workers accept on the same sockets", d->n);
    else if (d->n > 1)
        cio_info("%u workers share the listening addresses (SO_REUSEPORT)", d->n);

    /* The first round goes out now that we listen: our own entry can
     * answer it. */
    rc = cio_discovery_start(d->sh.disc);
    if (rc == 0 && cfg->nservers)
        rc = cio_spawn(NULL, &announce, announce_self, d);
    if (rc < 0) {
        cio_error("discovery: %s", strerror(-rc));
        goto drain;
    }
    /* Memory that returns: what a burst freed goes back to the kernel once
     * the loop is quiet (CORIO_NO_TRIM=1 turns it off, for comparisons). */
    if (!getenv("CORIO_NO_TRIM"))
        cio_heap_trim_start(NULL, HEAP_TRIM_INTERVAL, HEAP_TRIM_MIN);
    cio_pool_stats ps;
    cio_pool_get_stats(w0->app.pool, &ps);
    /* Bound to every address: now the privileges that took can go. */
    char err[256];
    if (corio_drop_privileges(cfg->user, cfg->group, err, sizeof(err)) < 0) {
        cio_error("%s: refusing to run on with the privileges it has", err);
        goto drain;
    }
    if (d->pidfile_fd >= 0 && (rc = corio_pidfile_write(d->pidfile_fd)) < 0) {
        cio_error("pidfile %s: %s", cfg->pidfile, strerror(-rc));
        goto drain;
    }
    cio_info("%s %s ready (id %s, workers: %u, pool: %u threads, root: %s, servers: %zu%s)",
             d->name, d->opts.version ? d->opts.version : CIO_VERSION, d->sh.id.hex, d->n, ps.threads, cfg->root ? cfg->root : "none",
             cfg->nservers, cfg->nservers ? ", searching for self" : ", standalone");
    rc = cio_spawn(NULL, &watcher, watch_signals, d);
    if (rc < 0) {
        cio_error("cannot watch signals: %s", strerror(-rc));
        goto drain;
    }
    corio_notify("READY=1");
    corio_daemon_started(d->ready_fd);
    d->ready_fd = -1;
    if (d->term_fd >= 0) {
        close(d->term_fd); /* started: failures from now on are the log's to tell */
        d->term_fd = -1;
    }
    cio_event_wait(&d->stop, CIO_NEVER);
    result = d->self_lost ? 1 : 0;

drain:
    corio_status_stop(&d->sh); /* it asks every worker's loop */
    /* No more searching: requests still waiting for self are answered 503
     * now rather than at the end of the drain. (The view stays readable:
     * the discovery is freed after the workers.) */
    cio_discovery_stop(d->sh.disc);
    if (result != 0 && !d->self_lost)
        tell_all(d, cut_drain); /* a failed start: no grace */
    for (unsigned i = 1; i < d->n; i++)
        tell(&d->w[i], set_stop);
    report(w0, setup_rc == 0 ? worker_drain(w0) : REPORT_OK);
    gather(d);
    if (d->abandons) {
        d->abandon = true;
        cio_loop_stop(cio_loop_current());
        return result;
    }
    /* The admin listeners served /metrics through the drain; their
     * scrapes are short. */
    if (w0->admin)
        (void)cio_http_server_shutdown(w0->admin, cio_after(CIO_SEC(1)));
    for (unsigned i = 1; i < started; i++)
        tell(&d->w[i], set_exit);
    for (unsigned i = 1; i < started; i++)
        pthread_join(d->w[i].thread, NULL); /* each has freed its own; no client is left */
    started = 1;
out:
    if (watcher) {
        cio_task_cancel(watcher);
        cio_join(watcher, CIO_NEVER);
    }
    if (announce) {
        cio_task_cancel(announce);
        cio_join(announce, CIO_NEVER);
    }
    worker_teardown(w0);
    /* After the servers: their handlers may await self until they are done. */
    if (d->sh.disc) {
        cio_discovery_stop(d->sh.disc);
        cio_discovery_destroy(d->sh.disc);
    }
    cio_http_client_destroy(client);
    /* A job that does not stop within 5 s keeps its memory: the process
     * exits without freeing the pool. */
    if (w0->app.pool &&
        cio_pool_shutdown(w0->app.pool, CIO_POOL_CANCEL, cio_after(CIO_SEC(5))) == 0)
        cio_pool_destroy(w0->app.pool);
    cio_ws_topic_group_destroy(d->sh.rooms);
    cio_ws_topic_group_destroy(d->sh.status_group);
    if (result == 0 || d->self_lost)
        cio_info("stopped");
    return result;
}

/* ---- the public API ----------------------------------------------------------------------- */

int cio_app_create(cio_config *cfg, const cio_app_opts *o, cio_app **out)
{
    cio_app *d = calloc(1, sizeof(*d));
    cfg_ref *live = calloc(1, sizeof(*live));
    if (!d || !live) {
        free(d);
        free(live);
        cio_config_free(cfg);
        return -ENOMEM;
    }
    if (cfg) {
        live->cfg = *cfg; /* taken over */
        memset(cfg, 0, sizeof(*cfg));
    } else {
        cio_config_defaults(&live->cfg);
    }
    atomic_init(&live->refs, 1);
    if (o)
        d->opts = *o;
    d->name = d->opts.name ? d->opts.name : "corio";
    d->sigfd = d->ready_fd = d->pidfile_fd = d->term_fd = -1;
    pthread_mutex_init(&d->stop_lock, NULL);
    d->live = live;
    d->start = cfg_hold(live); /* never changes: SIGHUP makes new ones */
    d->cfg = &live->cfg;
    char err[512];
    cio_config_resolve_bare_servers(&live->cfg);
    if (cio_config_validate(&live->cfg, err, sizeof(err)) < 0) {
        cio_error("%s", err);
        cio_app_destroy(d);
        return -EINVAL;
    }
    d->n = d->cfg->workers ? d->cfg->workers : cio_cpu_count();
    d->w = calloc(d->n, sizeof(*d->w));
    d->sh.apps = calloc(d->n, sizeof(*d->sh.apps));
    d->sh.loops = calloc(d->n, sizeof(*d->sh.loops));
    d->ports = calloc(d->cfg->nlisten ? d->cfg->nlisten : 1, sizeof(*d->ports));
    if (!d->w || !d->sh.apps || !d->sh.loops || !d->ports) {
        cio_app_destroy(d);
        return -ENOMEM;
    }
    d->sh.nworkers = d->n;
    for (unsigned i = 0; i < d->n; i++) {
        d->w[i].d = d;
        d->w[i].index = i;
        cio_event_init(&d->w[i].go);
        cio_event_init(&d->w[i].stop);
        cio_event_init(&d->w[i].exit);
        d->sh.apps[i] = &d->w[i].app;
    }
    for (size_t i = 0; i < CIO_CONFIG_MAX_LISTEN; i++)
        d->lfds[i] = -1;
    *out = d;
    return 0;
}

int cio_app_run(cio_app *d)
{
    char err[512];
    if (d->ran)
        return 1;
    d->ran = true;
    /* A vanished peer gives EPIPE, not SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
#ifdef M_MMAP_THRESHOLD
    /* Large buffers (bodies being received, big responses, message
     * reassembly) get pages of their own that go back to the kernel when
     * freed. glibc's default raises this threshold after each such free, and
     * then serves them from the heap, where a burst of them stays resident. */
    if (!getenv("CORIO_NO_TRIM"))
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
#endif
    /* Every connection is a file: the soft limit (often 1024) goes up to
     * the hard one. */
    rlim_t nofile = corio_nofile_raise();
    int status = 1;
    /* Socket activation: first, before any file is opened here. */
    int nlfds = corio_listen_fds(d->lfds, CIO_CONFIG_MAX_LISTEN, err, sizeof(err));
    if (nlfds < 0) {
        fprintf(stderr, "%s: %s\n", d->name, err);
        goto done;
    }
    d->nlfds = (size_t)nlfds;
    for (size_t i = 0; i < d->nlfds; i++)
        d->lproxy[i] = inherited_proxy(d->cfg, d->lfds[i]);
    if (d->cfg->pidfile &&
        (d->pidfile_fd = corio_pidfile_lock(d->cfg->pidfile, err, sizeof(err))) < 0) {
        fprintf(stderr, "%s: %s\n", d->name, err);
        goto done;
    }
    if (d->cfg->log.error && strcmp(d->cfg->log.error, "-") != 0) {
        /* The terminal keeps hearing about a failed start. */
        d->term_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
        int rc = open_error_log(d->cfg->log.error);
        if (rc < 0) {
            fprintf(stderr, "%s: error log %s: %s\n", d->name, d->cfg->log.error, strerror(-rc));
            goto done;
        }
    }
    if (d->cfg->daemon) {
        /* Before the ring and the pool's threads exist (see the top). The
         * working directory stays: relative paths of the command line are
         * read again at SIGHUP. */
        d->ready_fd = corio_daemonize();
        if (d->ready_fd < 0) {
            fprintf(stderr, "%s: cannot detach: %s\n", d->name, strerror(-d->ready_fd));
            goto done;
        }
    }

    /* Signals go to the signalfd (blocked before any thread exists, so every
     * thread inherits the mask). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    d->sigfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (d->sigfd < 0) {
        fprintf(stderr, "%s: signalfd: %s\n", d->name, strerror(errno));
        goto done;
    }
    cio_log_set_level((enum cio_log_level)d->cfg->log.level);
    cio_event_init(&d->stop);

    cio_loop *loop;
    int rc = cio_loop_create(&loop, NULL);
    if (rc < 0) {
        char why[768];
        corio_uring_error(rc, why, sizeof(why));
        fprintf(stderr, "%s: %s\n", d->name, why);
        goto done;
    }
    if (nofile && nofile < 4096)
        cio_warn("open files limited to %llu (ulimit -n): few connections fit",
                 (unsigned long long)nofile);
    d->sh.loops[0] = loop;
    pthread_mutex_lock(&d->stop_lock);
    d->stop_loop = loop;
    pthread_mutex_unlock(&d->stop_lock);
    intptr_t r = cio_run(loop, serve, d);
    pthread_mutex_lock(&d->stop_lock);
    d->stop_loop = NULL;
    pthread_mutex_unlock(&d->stop_lock);
    if (d->abandon) {
        cio_loop_abandon(loop);
        corio_pidfile_remove(d->cfg->pidfile, d->pidfile_fd);
        _exit(d->self_lost ? 1 : 0); /* no atexit handlers: pool threads are still inside jobs */
    }
    cio_loop_destroy(loop);
    d->sh.loops[0] = NULL;
    status = r == 0 ? 0 : 1;
done:
    if (d->ready_fd >= 0) /* it never started: the waiting parent exits with our status */
        corio_daemon_failed(d->ready_fd, status);
    d->ready_fd = -1;
    if (d->term_fd >= 0) {
        if (status)
            dprintf(d->term_fd, "%s: could not start; the error log says why: %s\n", d->name,
                    d->cfg->log.error);
        close(d->term_fd);
        d->term_fd = -1;
    }
    corio_pidfile_remove(d->cfg->pidfile, d->pidfile_fd);
    d->pidfile_fd = -1;
    close_inherited(d);
    if (d->sigfd >= 0)
        close(d->sigfd);
    d->sigfd = -1;
    return status;
}

int cio_app_stop(cio_app *d)
{
    pthread_mutex_lock(&d->stop_lock);
    /* Under the lock: the loop is not destroyed meanwhile. */
    int rc = d->stop_loop ? cio_loop_post(d->stop_loop, stop_posted, d) : -EAGAIN;
    pthread_mutex_unlock(&d->stop_lock);
    return rc;
}

void cio_app_destroy(cio_app *d)
{
    if (!d)
        return;
    cfg_release(d->live);
    cfg_release(d->start);
    fd_release(d->access_fd);
    free(d->w);
    free(d->sh.apps);
    free(d->sh.loops);
    free(d->ports);
    pthread_mutex_destroy(&d->stop_lock);
    free(d);
}

int cio_app_main(int argc, char **argv, const cio_app_opts *o)
{
    cio_app_opts opts = o ? *o : (cio_app_opts){0};
    const char *name = opts.name ? opts.name : "corio";
    char err[512];
    /* --probe URL: a client of a running server, not a server: before the
     * configuration (it reads none). */
    int probed = corio_probe_main(argc, argv);
    if (probed >= 0)
        return probed;
    cio_config cfg;
    cio_config_action action;
    if (cio_config_from_args(&cfg, argc, argv, &action, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", name, err);
        cio_config_free(&cfg);
        return 2;
    }
    switch (action) {
    case CIO_CONFIG_VERSION:
        printf("%s %s\n", name, opts.version ? opts.version : CIO_VERSION);
        cio_config_free(&cfg);
        return 0;
    case CIO_CONFIG_HELP:
        cio_config_usage(stdout, argv[0]);
        cio_config_free(&cfg);
        return 0;
    case CIO_CONFIG_CHECK:
        printf("%s: configuration OK\n", name);
        cio_config_free(&cfg);
        return 0;
    case CIO_CONFIG_RUN:
        break;
    }
    opts.argc = argc; /* read again at SIGHUP */
    opts.argv = argv;
    cio_app *app;
    int rc = cio_app_create(&cfg, &opts, &app);
    if (rc < 0) {
        if (rc != -EINVAL) /* already said */
            fprintf(stderr, "%s: %s\n", name, strerror(-rc));
        return 2;
    }
    int status = cio_app_run(app);
    cio_app_destroy(app);
    return status;
}

/* ---- a worker, for the program's routes ---------------------------------------------------- */

unsigned cio_app_worker_index(const cio_app_worker *w)
{
    return w->worker;
}

unsigned cio_app_worker_count(const cio_app_worker *w)
{
    return w->sh->nworkers;
}

cio_http_server *cio_app_worker_server(cio_app_worker *w)
{
    return w->srv;
}

cio_pool *cio_app_worker_pool(cio_app_worker *w)
{
    return w->pool;
}

cio_ws_topics *cio_app_worker_topics(cio_app_worker *w)
{
    return w->rooms;
}

const cio_ws_opts *cio_app_worker_ws_opts(cio_app_worker *w, bool pubsub)
{
    return pubsub ? &w->pubsub_opts : &w->ws_opts;
}

const cio_config *cio_app_worker_config(const cio_app_worker *w)
{
    return w->cfg;
}

const cio_peer_id *cio_app_worker_id(const cio_app_worker *w)
{
    return &w->sh->id;
}

int cio_app_await_self(cio_app_worker *w, const char **entry, cio_time deadline)
{
    /* Loop 0 sets the event once discovery has its answer. */
    int rc = cio_event_wait(&w->self_known, deadline);
    if (rc < 0)
        return rc;
    if (w->self_rc == 0)
        *entry = w->self;
    return w->self_rc;
}

void cio_app_worker_set_data(cio_app_worker *w, void *data)
{
    w->data = data;
}

void *cio_app_worker_data(const cio_app_worker *w)
{
    return w->data;
}
