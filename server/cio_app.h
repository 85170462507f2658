/*
 * cio_app.h - a whole server in a few calls: what the corio daemon is, for
 * programs with routes of their own. The daemon itself is this API plus
 * its example routes (server/main.c).
 *
 * An app reads corio's configuration (the same model, file, flags and
 * validation as the daemon: cio_config.h, corio(8)), runs one worker per
 * "workers" (an event loop on a thread of its own, with its own HTTP
 * server on the "listen" addresses, SO_REUSEPORT), one thread pool for
 * all of them, the operators' routes, peer-ID discovery when "servers" is
 * set, and the daemon's life: --daemon, the pidfile, --user/--group,
 * systemd's notify and socket activation, SIGHUP (reopen the logs, apply
 * what can change), and SIGINT/SIGTERM (stop accepting, let requests in
 * flight finish within timeouts.drain_ms, a second signal cuts that short).
 *
 * The program's routes go on every worker's server, from a setup callback
 * that runs on each worker's loop before it listens (per-loop state, such
 * as a semaphore or an HTTP client, is made there: loop objects belong to
 * their loop). The shortest program:
 *
 *     static int hello(cio_http_req *req, void *ud)
 *     {
 *         return cio_http_respond(req, 200, "text/plain", "hello\n", 6);
 *     }
 *     static int setup(cio_app_worker *w, void *ud)
 *     {
 *         return cio_http_route(cio_app_worker_server(w), "GET", "/hello", hello, NULL);
 *     }
 *     int main(int argc, char **argv)
 *     {
 *         cio_app_opts o = {.name = "hello", .setup = setup};
 *         return cio_app_main(argc, argv, &o);
 *     }
 *
 * Built-in routes, on every worker (operators' ones on admin_listen instead
 * when that is set): GET /healthz (200 while every worker's loop turns, 503
 * when one has not for health.stall_ms), GET /readyz (200 once discovery
 * knows which entry of "servers" this process is, at once when
 * standalone), GET /server_id (the peer-ID protocol's question), GET
 * /cluster (discovery's view, JSON), GET /metrics (Prometheus text), and
 * the live status page: GET /status (HTML), GET /status.json and GET
 * /ws/status (a snapshot a second to each viewer).
 * CORIO_DEBUG=1 adds GET /debug/block?ms=N and turns on debug mode
 * (cio_debug_set). A program's route on one of these paths is refused
 * (-EEXIST from its cio_http_route).
 */
#ifndef CIO_APP_H
#define CIO_APP_H

#include "cio.h"
#include "cio_config.h"
#include "cio_http.h"
#include "cio_peer.h"
#include "cio_ws.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* The process: its settings, its workers, its signals. */
typedef struct cio_app cio_app;
/* One worker: a loop on a thread of its own (worker 0's is the thread that
 * called cio_app_run), with its HTTP server. Everything it hands out
 * belongs to its loop. */
typedef struct cio_app_worker cio_app_worker;

typedef struct cio_app_opts {
    const char *name;    /* the program's name in --version, --help and its
                            error lines ("name: ..."); NULL: "corio" */
    const char *version; /* what --version prints after the name; NULL:
                            CIO_VERSION */
    /* [may await] On each worker's loop, after its server exists, before it
     * listens: the program's routes (on cio_app_worker_server(w)) and its
     * per-worker state. 0, or -errno: the start fails (the process exits
     * 1 from cio_app_run), and teardown is still called for this worker. */
    int (*setup)(cio_app_worker *w, void *ud);
    /* [may await] On each worker's loop whose setup was called, after its
     * drain (no request of it runs any more), before its server is freed:
     * free what setup made. May be NULL. */
    void (*teardown)(cio_app_worker *w, void *ud);
    void *ud; /* both callbacks' */
    /* The command line to read again at SIGHUP (cio_config_from_args; must
     * stay valid while the app runs), so that a changed file applies. NULL:
     * SIGHUP reopens the logs only. cio_app_main sets it. */
    int argc;
    char **argv;
} cio_app_opts;

/* The whole program, as the corio daemon's main: reads the command line as
 * corio does (cio_config_from_args: --config FILE and the flags; --help,
 * --version and --check-config answer and return 0; --probe URL checks a
 * running server, as `corio --probe` does), then creates the app and runs
 * it. Returns the process's exit status: 0 after a clean shutdown, 1 when it
 * could not start, 2 for a configuration error (one line on stderr). o may
 * be NULL (no routes of the program's own). */
int cio_app_main(int argc, char **argv, const cio_app_opts *o);

/* Creates an app with the settings in *cfg (NULL: the built-in defaults,
 * cio_config_defaults), which it takes over: *cfg is left empty, and may
 * be freed or reused. Bare "servers" entries get the first listen port,
 * then the settings are validated as the daemon's are. Nothing is opened,
 * bound or started yet. 0, -EINVAL (invalid settings: one line logged,
 * "key: message"), -ENOMEM. o is copied (NULL: no callbacks). */
int cio_app_create(cio_config *cfg, const cio_app_opts *o, cio_app **out);

/* Runs the app on the calling thread until SIGINT or SIGTERM (or
 * cio_app_stop), then drains and frees every worker. Call it before the
 * program has made any thread of its own: SIGINT, SIGTERM and SIGHUP are
 * blocked in the calling thread and read from a signalfd, and every
 * thread made afterwards inherits that mask. Returns the exit status: 0
 * after a clean shutdown, 1 when it could not start (the cause is logged)
 * or discovery.require_self found no self. When requests still wait on
 * pool jobs that cannot be stopped at the drain's deadline, the process
 * exits from here (_exit, status as above): their memory must stay. Once
 * per app. */
int cio_app_run(cio_app *app);

/* Thread-safe, async-signal-unsafe: starts the graceful shutdown, as
 * SIGTERM does (a second call cuts the drain). 0, or -EAGAIN when the app
 * is not running (not yet, or no more). */
int cio_app_stop(cio_app *app);

/* Frees the app (after cio_app_run returned, or instead of it). NULL: no-op. */
void cio_app_destroy(cio_app *app);

/* Which worker (0 .. workers-1) w is. */
unsigned cio_app_worker_index(const cio_app_worker *w);

/* How many workers the app runs. */
unsigned cio_app_worker_count(const cio_app_worker *w);

/* w's HTTP server, for cio_http_route and the rest of cio_http.h. Its
 * options (limits, timeouts, root, the access log) come from the
 * configuration, and SIGHUP reconfigures them. */
cio_http_server *cio_app_worker_server(cio_app_worker *w);

/* The thread pool's front end of w's loop (cio_pool.h): pool_threads
 * threads shared by every worker, pool_queue and its priority from the
 * configuration. Jobs complete on w's loop. */
cio_pool *cio_app_worker_pool(cio_app_worker *w);

/* w's member of the app's pub/sub topics (cio_ws.h): a message published
 * on any worker reaches the subscribers of its topic on every worker.
 * Accept with cio_app_worker_ws_opts(w, true). */
cio_ws_topics *cio_app_worker_topics(cio_app_worker *w);

/* The WebSocket options from the configuration's websocket.* (limits,
 * timeouts, origins, compression) and w's memory budget, for cio_ws_accept:
 * pubsub true for connections that subscribe to topics (shared_frames).
 * The pointer stays valid for w's life, and SIGHUP updates what it points
 * to, so connections accepted with it read the new values. */
const cio_ws_opts *cio_app_worker_ws_opts(cio_app_worker *w, bool pubsub);

/* The settings w runs with. SIGHUP replaces them on w's loop: valid until
 * the caller's next awaiting call. */
const cio_config *cio_app_worker_config(const cio_app_worker *w);

/* This process's peer id (the answer of its GET /server_id). */
const cio_peer_id *cio_app_worker_id(const cio_app_worker *w);

/* [awaits] Which entry of "servers" this process is (the peer-ID protocol's
 * answer, found by discovery on worker 0's loop): 0 with *entry set (the
 * entry's text, valid while the app runs), -ESRCH when the search failed,
 * -ENOENT when "servers" is empty (standalone), -ESHUTDOWN when the app
 * stopped before an answer, -ETIMEDOUT, -ECANCELED. Waits while the
 * search goes on. */
int cio_app_await_self(cio_app_worker *w, const char **entry, cio_time deadline);

/* A pointer of the program's for w (from setup to teardown): set, and read. */
void cio_app_worker_set_data(cio_app_worker *w, void *data);
void *cio_app_worker_data(const cio_app_worker *w);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif /* CIO_APP_H */
