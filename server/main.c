/*
 * corio - the daemon: configuration in, HTTP server out.
 *
 * Signals are read through the ring from a signalfd: SIGINT or SIGTERM starts
 * a graceful shutdown (stop accepting, let in-flight requests finish within
 * timeouts.drain_ms, exit 0); a second one cuts the drain short. SIGHUP
 * reopens the log files and reloads what can change while running.
 *
 * Startup order: configuration; the open-files limit; the pidfile, locked;
 * --daemon detaches (before any ring or thread exists: a SINGLE_ISSUER ring
 * belongs to the task that made it, and threads do not survive a fork, so
 * both are made after); then the loop, the pool, the listeners; then
 * privileges are dropped (--user/--group), and only then is the daemon
 * ready (systemd's READY=1; the waiting parent of --daemon exits 0).
 *
 * Exit status: 0 after a clean shutdown, 1 when the server cannot start
 * (e.g. the address is in use, the pidfile is locked), 2 for configuration
 * errors.
 */
#include "cio_config.h"
#include "daemon.h"
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define BIND_RETRY_FOR  CIO_SEC(2) /* how long a listen address in use is retried */
#define BIND_RETRY_STEP CIO_MS(10)
#define HEAP_TRIM_INTERVAL CIO_SEC(1)  /* how often the heap trimmer looks */
#define HEAP_TRIM_MIN      (8u << 20)  /* resident growth since the last trim worth one */
#define MMAP_THRESHOLD     (128 * 1024) /* glibc's starting value, kept fixed */
#define BUDGET_DEFAULT     (UINT64_C(256) << 20) /* limits.max_buffered_bytes 0, uncontained */

typedef struct daemon {
    cio_config cfg;
    int argc;
    char **argv; /* read again at SIGHUP */
    int sigfd;
    int ready_fd;   /* --daemon: tells the waiting parent how the start went, or -1 */
    int pidfile_fd; /* the locked pidfile, or -1 */
    int term_fd;    /* the terminal's stderr while the process log goes to a file, or -1 */
    /* what SIGHUP reconfigures */
    corio_app *app;
    cio_http_server *srv;
    cio_http_server *admin; /* admin_listen's, or NULL */
    cio_budget *budget;
    cio_log_writer *access;
    int access_fd;
    cio_time slow_logged; /* the watchdog's last line */
    uint64_t slow_held;   /* reports since, not logged */
    cio_time slow_worst;
    cio_event stop;
    cio_scope *drain; /* the shutdown in progress, cancelled by a second signal */
    int signals;
    bool abandon;    /* exit with work still running on the pool */
    bool self_lost;  /* --require-self and discovery failed: exit 1 */
    cio_discovery *disc;
} daemon_t;

static int open_access_log(const char *spec, cio_log_writer **out, int *fd_out)
{
    *out = NULL;
    *fd_out = -1;
    if (strcmp(spec, "off") == 0)
        return 0;
    int fd = STDERR_FILENO;
    if (strcmp(spec, "-") != 0) {
        /* At startup, before serving: a blocking open is fine here. */
        fd = open(spec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return -errno;
        *fd_out = fd;
    }
    return cio_log_writer_create(NULL, fd, 4 * 1024 * 1024, out);
}

/* The process log to a file (log.error), put in place of stderr: the
 * loop's writer writes to fd 2, so lines go to the new file from the next
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

static cio_http_opts http_opts_of(const cio_config *cfg, cio_log_writer *access, cio_budget *b)
{
    return (cio_http_opts){
        .max_connections = cfg->limits.max_connections,
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

/* The WebSocket routes' settings (their connections read them live). */
static void ws_opts_of(const cio_config *cfg, corio_app *app, cio_budget *b)
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
    app->chat_opts = *w;
    app->chat_opts.shared_frames = true;
    app->pool_wait = CIO_MS(cfg->timeouts.pool_wait_ms);
}

/* The slow-task watchdog's report: a handler (or another task) kept the
 * loop for ns without awaiting. At most one line a second; the ones held
 * back are counted in the next (all are in corio_slow_handlers_total). */
static void slow_report(void *ud, const char *name, cio_time ns)
{
    daemon_t *d = ud;
    cio_time now = cio_now();
    if (ns > d->slow_worst)
        d->slow_worst = ns;
    if (d->slow_logged && now - d->slow_logged < CIO_SEC(1)) {
        d->slow_held++;
        return;
    }
    char more[96] = "";
    if (d->slow_held)
        snprintf(more, sizeof(more), " (and %llu more in the last second, the worst %.0f ms)",
                 (unsigned long long)d->slow_held, (double)d->slow_worst / 1e6);
    cio_warn("slow handler: %s ran %.0f ms without awaiting; every connection of this loop "
             "waited meanwhile (debug.slow_ms %llu)%s",
             name ? name : "a task", (double)ns / 1e6, (unsigned long long)d->cfg.debug.slow_ms,
             more);
    d->slow_logged = now;
    d->slow_held = 0;
    d->slow_worst = 0;
}

/* SIGHUP: reopens the log files (logrotate renamed them), and reads the
 * command line and its file again: what can change while running is
 * applied, what cannot is named and kept; a configuration that does not
 * validate changes nothing. */
static void reload(daemon_t *d)
{
    corio_notify("RELOADING=1");
    cio_config nc;
    char err[512];
    if (cio_config_from_args(&nc, d->argc, d->argv, NULL, err, sizeof(err)) < 0) {
        cio_error("SIGHUP: %s: keeping the running configuration", err);
        cio_config_free(&nc);
        goto reopen;
    }
    cio_config_change ch[64];
    size_t n = cio_config_diff(&d->cfg, &nc, ch, 64);
    char live[1024] = "", later[1024] = "";
    size_t ll = 0, rl = 0;
    for (size_t i = 0; i < n && i < 64; i++) {
        char *buf = ch[i].restart ? later : live;
        size_t *len = ch[i].restart ? &rl : &ll;
        if (*len < sizeof(live))
            *len += (size_t)snprintf(buf + *len, sizeof(live) - *len, "%s%s", *len ? ", " : "",
                                     ch[i].key);
    }
    /* What is applied moves into the running configuration; the rest of
     * nc (what needs a restart) is dropped with it. */
    cio_config *c = &d->cfg;
#define TAKE(field)                                                                              \
    do {                                                                                         \
        __typeof__(c->field) t_ = c->field;                                                      \
        c->field = nc.field;                                                                     \
        nc.field = t_;                                                                           \
    } while (0)
    TAKE(limits);
    TAKE(timeouts);
    TAKE(root);
    TAKE(serve_dotfiles);
    TAKE(log.level);
    TAKE(log.access);
    TAKE(log.format);
    TAKE(websocket);
    TAKE(health);
    TAKE(debug);
#undef TAKE
    cio_config_free(&nc);
    /* Said at the level in force before: lowering it to warn still
     * confirms the reload. */
    if (ll)
        cio_info("SIGHUP: applied: %s", live);
    if (rl)
        cio_warn("SIGHUP: changed, but they need a restart (still running with the old values): %s",
                 later);
    if (!ll && !rl)
        cio_info("SIGHUP: configuration unchanged");
    cio_log_set_level((enum cio_log_level)c->log.level);
    ws_opts_of(c, d->app, d->budget);
    (void)cio_slow_watch(NULL, CIO_MS(c->debug.slow_ms), slow_report, d);
reopen:;
    /* The logs are reopened in any case: that is what logrotate asks. */
    int rc = open_error_log(d->cfg.log.error);
    if (rc < 0)
        cio_error("SIGHUP: error log %s: %s", d->cfg.log.error, strerror(-rc));
    cio_log_writer *w;
    int fd;
    rc = open_access_log(d->cfg.log.access, &w, &fd);
    if (rc < 0) {
        cio_error("SIGHUP: access log %s: %s (keeping the old one)", d->cfg.log.access,
                  strerror(-rc));
        w = d->access;
        fd = -2; /* unchanged */
    }
    cio_http_opts o = http_opts_of(&d->cfg, w, d->budget);
    rc = cio_http_server_reconfigure(d->srv, &o);
    if (rc == 0 && d->admin)
        rc = cio_http_server_reconfigure(d->admin, &o);
    if (rc < 0)
        cio_error("SIGHUP: %s: %s", d->cfg.root ? d->cfg.root : "root", strerror(-rc));
    if (fd != -2) {
        cio_log_writer_destroy(d->access);
        if (d->access_fd >= 0)
            close(d->access_fd);
        d->access = w;
        d->access_fd = fd;
        d->app->access = w;
    }
    corio_notify("READY=1");
}

static intptr_t watch_signals(void *arg)
{
    daemon_t *d = arg;
    for (;;) {
        struct signalfd_siginfo si;
        ssize_t n = cio_read(d->sigfd, &si, sizeof(si), -1, CIO_NEVER);
        if (n != (ssize_t)sizeof(si))
            return n < 0 ? n : -EIO;
        if (si.ssi_signo == SIGHUP) {
            reload(d);
            continue;
        }
        d->signals++;
        if (d->signals == 1) {
            corio_notify("STOPPING=1");
            cio_info("%s: shutting down gracefully (drain %llu ms)", strsignal((int)si.ssi_signo),
                     (unsigned long long)d->cfg.timeouts.drain_ms);
            cio_event_set(&d->stop);
        } else {
            cio_warn("%s again: closing all connections now", strsignal((int)si.ssi_signo));
            if (d->drain)
                cio_scope_cancel(d->drain);
        }
    }
}

/* --require-self: a member that cannot tell which entry it is must not
 * run on (its supervisor restarts it, or someone fixes the list). */
static intptr_t require_self(void *arg)
{
    daemon_t *d = arg;
    const char *self;
    int rc = cio_discovery_await_self(d->disc, &self, CIO_NEVER);
    if (rc == -ESRCH) {
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


/* The lowest memory limit on the way from cgroup path (under mount) up to
 * its root, read from file in each; UINT64_MAX when none. v2 writes "max"
 * for no limit, v1 a number near 2^63. At startup: blocking reads are fine. */
static uint64_t cgroup_limit(const char *mount, char *path, const char *file)
{
    uint64_t lowest = UINT64_MAX;
    for (;;) {
        char name[4400];
        snprintf(name, sizeof(name), "%s%s/%s", mount, strcmp(path, "/") ? path : "", file);
        FILE *f = fopen(name, "re");
        if (f) {
            unsigned long long v;
            if (fscanf(f, "%llu", &v) == 1 && v < lowest)
                lowest = v;
            fclose(f);
        }
        char *slash = strrchr(path, '/');
        if (!slash || slash == path)
            break;
        *slash = 0;
    }
    return lowest;
}

/* The memory the process's cgroup may use: cgroup v2 (memory.max), or the
 * v1 memory controller (memory.limit_in_bytes); UINT64_MAX when unlimited. */
static uint64_t cgroup_memory_max(void)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return UINT64_MAX;
    uint64_t lowest = UINT64_MAX, v;
    char line[4096];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = 0;
        char *ctrl = strchr(line, ':');
        char *path = ctrl ? strchr(ctrl + 1, ':') : NULL;
        if (!path)
            continue;
        *path++ = 0;
        ctrl++;
        if (*ctrl == 0) /* "0::/path": the v2 hierarchy */
            v = cgroup_limit("/sys/fs/cgroup", path, "memory.max");
        else if (strcmp(ctrl, "memory") == 0)
            v = cgroup_limit("/sys/fs/cgroup/memory", path, "memory.limit_in_bytes");
        else
            continue;
        lowest = v < lowest ? v : lowest;
    }
    fclose(f);
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

/* [awaits] Listens on every address of list. A daemon restarted at once
 * (after kill -9, by a supervisor) finds its old listening socket still
 * bound for ~10 ms, until the kernel has torn down the dead process's ring:
 * EADDRINUSE is retried for a while, as nginx does (5 tries 500 ms apart).
 * 0 or -errno (logged). */
static int listen_all(cio_http_server *srv, const cio_listen *list, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        char bound[64];
        cio_time give_up = cio_after(BIND_RETRY_FOR);
        bool told = false;
        int rc;
        cio_http_listen_opts lo = {.proxy_protocol = list[i].proxy_protocol};
        while ((rc = cio_http_listen_with(srv, (const struct sockaddr *)&list[i].addr,
                                          list[i].addrlen, &lo, bound)) == -EADDRINUSE &&
               cio_now() < give_up) {
            if (!told)
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
        cio_info("%s on %s%s", what, bound,
                 list[i].proxy_protocol ? " (PROXY protocol required)" : "");
    }
    return 0;
}

static intptr_t serve(void *arg)
{
    daemon_t *d = arg;
    cio_config *cfg = &d->cfg;
    corio_app app = {0};
    cio_http_server *srv = NULL, *admin = NULL;
    cio_budget budget;
    cio_log_writer *access = NULL;
    cio_http_client *client = NULL;
    cio_task *self_watch = NULL;
    int access_fd = -1;
    intptr_t result = 1;

    static const enum cio_pool_priority prio[] = {
        [CIO_CONFIG_POOL_LOW] = CIO_POOL_PRIO_LOW,
        [CIO_CONFIG_POOL_IDLE] = CIO_POOL_PRIO_IDLE,
        [CIO_CONFIG_POOL_NORMAL] = CIO_POOL_PRIO_NORMAL,
    };
    cio_pool_opts po = {.threads = cfg->pool_threads,
                        .queue = cfg->pool_queue,
                        .priority = prio[cfg->pool_priority]};
    uint64_t cgroup_max;
    uint64_t limit = buffered_limit(cfg, &cgroup_max);
    cio_budget_init(&budget, NULL, limit);
    if (cgroup_max / 4 < BUDGET_DEFAULT)
        cio_info("memory budget for buffered bytes: %llu MiB (the cgroup may use %llu MiB)",
                 (unsigned long long)(limit >> 20), (unsigned long long)(cgroup_max >> 20));
    ws_opts_of(cfg, &app, &budget);
    d->app = &app;
    d->budget = &budget;
    int rc = cio_peer_id_generate(&app.id);
    if (rc < 0) {
        cio_error("cannot generate the server id: %s", strerror(-rc));
        return 1;
    }
    rc = cio_ws_topics_create(&app.rooms);
    if (rc < 0) {
        cio_error("websocket rooms: %s", strerror(-rc));
        return 1;
    }
    rc = cio_pool_create(NULL, &app.pool, &po);
    if (rc < 0) {
        cio_error("thread pool: %s", strerror(-rc));
        return 1;
    }
    rc = open_access_log(cfg->log.access, &access, &access_fd);
    if (rc < 0) {
        cio_error("access log %s: %s", cfg->log.access, strerror(-rc));
        goto out;
    }
    cio_http_opts o = http_opts_of(cfg, access, &budget);
    rc = cio_http_server_create(NULL, &o, &srv);
    d->srv = srv;
    d->access = access;
    d->access_fd = access_fd;
    app.srv = srv;
    app.access = access;
    app.start_time = corio_process_start_time();
    if (rc < 0) {
        cio_error("cannot start: %s%s%s", cfg->root ? cfg->root : "", cfg->root ? ": " : "",
                  strerror(-rc));
        goto out;
    }
    /* The peer-ID protocol's queries go through a client whose name
     * lookups run on threads of its own (not behind /hash jobs). */
    rc = cio_http_client_create(NULL, NULL, &client);
    if (rc == 0)
        rc = discovery_create(cfg, client, &app.id, &app.disc);
    if (rc < 0) {
        cio_error("discovery: %s", strerror(-rc));
        goto out;
    }
    d->disc = app.disc;
    if (cfg->nadmin_listen) {
        /* Operators' routes on addresses of their own, not public ones. */
        rc = cio_http_server_create(NULL, &o, &admin);
        if (rc < 0) {
            cio_error("admin server: %s", strerror(-rc));
            goto out;
        }
        d->admin = admin;
    }
    rc = corio_routes_register(srv, &app, admin);
    if (rc < 0) {
        cio_error("cannot register routes: %s", strerror(-rc));
        goto out;
    }
    rc = listen_all(srv, cfg->listen, cfg->nlisten, "listening");
    if (rc == 0 && admin)
        rc = listen_all(admin, cfg->admin_listen, cfg->nadmin_listen,
                        "listening (/metrics, /cluster)");
    if (rc < 0)
        goto out;
    /* The first round goes out now that we listen: our own entry can
     * answer it. */
    rc = cio_discovery_start(app.disc);
    if (rc == 0 && cfg->discovery.require_self && cfg->nservers)
        rc = cio_spawn(NULL, &self_watch, require_self, d);
    if (rc < 0) {
        cio_error("discovery: %s", strerror(-rc));
        goto out;
    }
    cio_lag_start(NULL, CIO_MS(100));
    (void)cio_slow_watch(NULL, CIO_MS(cfg->debug.slow_ms), slow_report, d);
    /* Memory that returns: what a burst freed goes back to the kernel once
     * the loop is quiet (CORIO_NO_TRIM=1 turns it off, for comparisons). */
    if (!getenv("CORIO_NO_TRIM"))
        cio_heap_trim_start(NULL, HEAP_TRIM_INTERVAL, HEAP_TRIM_MIN);
    cio_pool_stats ps;
    cio_pool_get_stats(app.pool, &ps);
    /* Bound to every address: now the privileges that took can go. */
    char err[256];
    if (corio_drop_privileges(cfg->user, cfg->group, err, sizeof(err)) < 0) {
        cio_error("%s: refusing to run on with the privileges it has", err);
        goto out;
    }
    if (d->pidfile_fd >= 0 && (rc = corio_pidfile_write(d->pidfile_fd)) < 0) {
        cio_error("pidfile %s: %s", cfg->pidfile, strerror(-rc));
        goto out;
    }
    cio_info("corio %s ready (id %s, pool: %u threads, root: %s, servers: %zu%s)", CIO_VERSION,
             app.id.hex, ps.threads, cfg->root ? cfg->root : "none", cfg->nservers,
             cfg->nservers ? ", searching for self" : ", standalone");

    cio_task *watcher;
    rc = cio_spawn(NULL, &watcher, watch_signals, d);
    if (rc < 0) {
        cio_error("cannot watch signals: %s", strerror(-rc));
        goto out;
    }
    corio_notify("READY=1");
    corio_daemon_started(d->ready_fd);
    d->ready_fd = -1;
    if (d->term_fd >= 0) {
        close(d->term_fd); /* started: failures from now on are the log's to tell */
        d->term_fd = -1;
    }
    cio_event_wait(&d->stop, CIO_NEVER);

    /* No more searching: requests still waiting for self are answered 503
     * now rather than at the end of the drain. (The view stays readable:
     * the discovery is freed after the server.) */
    cio_discovery_stop(app.disc);
    cio_scope drain;
    cio_scope_enter(&drain, CIO_NEVER, false);
    d->drain = &drain;
    rc = cio_http_server_shutdown(srv, cio_after(CIO_MS(cfg->timeouts.drain_ms)));
    d->drain = NULL;
    cio_scope_exit(&drain);
    if (rc < 0) {
        cio_http_stats st;
        cio_http_server_stats(srv, &st);
        if (st.connections > 0) {
            /* Handlers still waiting for pool jobs that cannot be stopped:
             * exit without them rather than overrun the drain deadline. Their
             * memory stays untouched until the process is gone. */
            cio_warn("drain deadline passed with %llu request(s) still running: exiting",
                     (unsigned long long)st.connections);
            d->abandon = true;
            cio_loop_stop(cio_loop_current());
            return d->self_lost ? 1 : 0;
        }
        cio_warn("drain deadline passed: connections with requests in flight were closed");
    }
    cio_task_cancel(watcher);
    cio_join(watcher, CIO_NEVER);
    result = d->self_lost ? 1 : 0;
    /* The admin listeners served /metrics through the drain; their
     * scrapes are short. */
    if (admin)
        (void)cio_http_server_shutdown(admin, cio_after(CIO_SEC(1)));
out:
    if (self_watch) {
        cio_task_cancel(self_watch);
        cio_join(self_watch, CIO_NEVER);
    }
    if (srv) {
        if (!result || d->self_lost)
            cio_http_server_destroy(srv); /* drained above */
        else {
            cio_http_server_shutdown(srv, cio_now());
            cio_http_server_destroy(srv);
        }
    }
    if (admin) {
        if (result && !d->self_lost)
            cio_http_server_shutdown(admin, cio_now());
        cio_http_server_destroy(admin);
    }
    /* After the servers: their handlers may await self until they are done. */
    if (app.disc) {
        cio_discovery_stop(app.disc);
        cio_discovery_destroy(app.disc);
    }
    cio_http_client_destroy(client);
    /* A job that does not stop within 5 s keeps its memory: the process
     * exits without freeing the pool. */
    if (cio_pool_shutdown(app.pool, CIO_POOL_CANCEL, cio_after(CIO_SEC(5))) == 0)
        cio_pool_destroy(app.pool);
    cio_ws_topics_destroy(app.rooms);
    cio_budget_fini(&budget);
    /* SIGHUP may have replaced them. */
    cio_log_writer_destroy(d->access);
    if (d->access_fd >= 0)
        close(d->access_fd);
    if (result == 0 || d->self_lost)
        cio_info("stopped");
    return result;
}

/* Settings the configuration knows but this daemon does not serve yet
 * (issue 10 lands in steps): refused at start rather than ignored. NULL
 * when none is set, else the message. */
static const char *not_yet(const cio_config *cfg)
{
    if (cfg->workers != 1)
        return "workers: only 1 is supported so far (multi-core workers are not built yet)";
    return NULL;
}

int main(int argc, char **argv)
{
    daemon_t d = {.argc = argc, .argv = argv, .sigfd = -1, .ready_fd = -1, .pidfile_fd = -1,
                  .term_fd = -1, .access_fd = -1};
    char err[512];
    cio_config_action action;
    if (cio_config_from_args(&d.cfg, argc, argv, &action, err, sizeof(err)) < 0) {
        fprintf(stderr, "corio: %s\n", err);
        cio_config_free(&d.cfg);
        return 2;
    }
    switch (action) {
    case CIO_CONFIG_VERSION:
        printf("corio %s\n", CIO_VERSION);
        cio_config_free(&d.cfg);
        return 0;
    case CIO_CONFIG_HELP:
        cio_config_usage(stdout, argv[0]);
        cio_config_free(&d.cfg);
        return 0;
    case CIO_CONFIG_CHECK:
        if (not_yet(&d.cfg)) {
            fprintf(stderr, "corio: %s\n", not_yet(&d.cfg));
            cio_config_free(&d.cfg);
            return 2;
        }
        printf("corio: configuration OK\n");
        cio_config_free(&d.cfg);
        return 0;
    case CIO_CONFIG_RUN:
        break;
    }
    const char *missing = not_yet(&d.cfg);
    if (missing) {
        fprintf(stderr, "corio: %s\n", missing);
        cio_config_free(&d.cfg);
        return 2;
    }

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
    if (d.cfg.pidfile && (d.pidfile_fd = corio_pidfile_lock(d.cfg.pidfile, err, sizeof(err))) < 0) {
        fprintf(stderr, "corio: %s\n", err);
        goto done;
    }
    if (d.cfg.log.error && strcmp(d.cfg.log.error, "-") != 0) {
        /* The terminal keeps hearing about a failed start. */
        d.term_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
        int rc = open_error_log(d.cfg.log.error);
        if (rc < 0) {
            fprintf(stderr, "corio: error log %s: %s\n", d.cfg.log.error, strerror(-rc));
            goto done;
        }
    }
    if (d.cfg.daemon) {
        /* Before the ring and the pool's threads exist (see the top). The
         * working directory stays: relative paths of the command line are
         * read again at SIGHUP. */
        d.ready_fd = corio_daemonize();
        if (d.ready_fd < 0) {
            fprintf(stderr, "corio: cannot detach: %s\n", strerror(-d.ready_fd));
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
    d.sigfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (d.sigfd < 0) {
        perror("corio: signalfd");
        goto done;
    }
    cio_log_set_level((enum cio_log_level)d.cfg.log.level);
    cio_event_init(&d.stop);

    cio_loop *loop;
    int rc = cio_loop_create(&loop, NULL);
    if (rc < 0) {
        fprintf(stderr, "corio: io_uring: %s\n", strerror(-rc));
        goto done;
    }
    if (nofile && nofile < 4096)
        cio_warn("open files limited to %llu (ulimit -n): few connections fit",
                 (unsigned long long)nofile);
    intptr_t r = cio_run(loop, serve, &d);
    if (d.abandon) {
        cio_loop_abandon(loop);
        corio_pidfile_remove(d.cfg.pidfile, d.pidfile_fd);
        _exit(d.self_lost ? 1 : 0); /* no atexit handlers: pool threads are still inside jobs */
    }
    cio_loop_destroy(loop);
    status = r == 0 ? 0 : 1;
done:
    if (d.ready_fd >= 0) /* it never started: the waiting parent exits with our status */
        corio_daemon_failed(d.ready_fd, status);
    if (d.term_fd >= 0) {
        if (status)
            dprintf(d.term_fd, "corio: could not start; the error log says why: %s\n",
                    d.cfg.log.error);
        close(d.term_fd);
    }
    corio_pidfile_remove(d.cfg.pidfile, d.pidfile_fd);
    if (d.sigfd >= 0)
        close(d.sigfd);
    cio_config_free(&d.cfg);
    return status;
}
