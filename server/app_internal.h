/* app_internal.h - what the app's files share (app.c, app_routes.c,
 * metrics.c): the process's shared state and a worker's public part. */
#ifndef CORIO_APP_INTERNAL_H
#define CORIO_APP_INTERNAL_H

#include "cio_app.h"

#include <stdatomic.h>


typedef struct corio_status corio_status;

/* A slow-handler report (the watchdog's), kept for the status page. */
typedef struct corio_slow_rec {
    double time;   /* seconds since the epoch */
    double ms;     /* how long it ran without awaiting */
    char task[48]; /* its name, or "a task" */
} corio_slow_rec;

#define CORIO_SLOW_KEPT 16 /* per worker, the latest */

/* What every worker shares: set up before the workers start and read-only
 * afterwards, but for the atomics. */
typedef struct corio_shared {
    unsigned nworkers;
    cio_app_worker **apps;        /* every worker's, by index */
    cio_loop **loops;        /* every worker's loop, by index (loops[0] is the main one) */
    cio_peer_id id;          /* this process's id, served at /server_id */
    cio_discovery *disc;     /* which entry of "servers" this server is (loop 0's) */
    _Atomic int disc_state;  /* its state, for every loop (enum cio_peer_state) */
    cio_ws_topic_group *rooms; /* the program's topics (/ws/chat's rooms), spanning the workers */
    cio_ws_topic_group *status_group; /* /ws/status's one topic, spanning the workers */
    corio_status *status;    /* the snapshots (loop 0's) */
    _Atomic uint64_t stall_ms; /* health.stall_ms (SIGHUP may change it) */
    double start_time;       /* the process's start, seconds since the epoch */
    const char *name, *version; /* the program's (cio_app_opts) */
} corio_shared;

/* One worker: a loop on a thread of its own, with its own server. The
 * fields are its loop's. */
struct cio_app_worker {
    corio_shared *sh;
    unsigned worker;       /* index in sh */
    cio_pool *pool;        /* the process's pool, completing on this loop */
    const cio_config *cfg; /* the settings in force (SIGHUP replaces them) */
    cio_ws_opts ws_opts;   /* from websocket.*, updated in place by SIGHUP */
    cio_ws_opts pubsub_opts; /* the same, with frames shared by the subscribers */
    cio_ws_topics *rooms;  /* this loop's member of sh->rooms */
    cio_ws_topics *status_topics; /* this loop's member of sh->status_group */
    corio_slow_rec slow_recent[CORIO_SLOW_KEPT]; /* a ring: the latest reports */
    uint64_t slow_reports; /* ever, of which the ring holds the last */
    cio_http_server *srv;  /* for /metrics */
    cio_log_writer *access; /* the access log (SIGHUP replaces it), or NULL */
    cio_event self_known;  /* set once discovery has an answer (self_rc) */
    int self_rc;           /* cio_discovery_await_self's */
    const char *self;      /* and the entry it found (the discovery's memory) */
    cio_time heard_posted; /* the latest peer id passed on to loop 0 */
    void *data;            /* the program's (cio_app_worker_set_data) */
};

/* ---- a JSON document being built (app_routes.c) ---- */

/* A failed append is remembered: the document is then not sent. */
typedef struct corio_json {
    cio_buf b;
    bool oom;
} corio_json;

void corio_json_raw(corio_json *j, const char *p, size_t n);
#define CORIO_JLIT(j, lit) corio_json_raw((j), (lit), sizeof(lit) - 1)
/* s as a JSON string, or null. */
void corio_json_str(corio_json *j, const char *s);
void corio_json_printf(corio_json *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* [awaits] Sends the document as application/json (or fails with -ENOMEM),
 * and frees it. */
int corio_json_respond(cio_http_req *req, corio_json *j);
/* On loop 0: appends GET /cluster's document (discovery's view), without
 * its final newline. */
void corio_cluster_json(const corio_shared *sh, corio_json *j);

/* ---- every worker's figures (metrics.c) ---- */

/* One worker's figures, copied on its own loop (its counters are plain
 * fields of that loop's thread: read there, never from another thread). */
typedef struct corio_snap {
    cio_http_metrics http;
    cio_http_stats st;
    cio_ws_stats ws;
    cio_loop_stats ls;
    uint64_t lag_hist[64];
    cio_time lag_sum;
    cio_lag_stats lag;
    uint64_t slow;
    uint64_t log_dropped, access_dropped;
    cio_pool_stats ps;
    corio_slow_rec slow_recent[CORIO_SLOW_KEPT];
    uint64_t slow_reports;
} corio_snap;

/* [awaits] Copies every worker's figures, each on its own loop, all at
 * once, into s (sh->nworkers entries). 0 or -errno. */
int corio_snaps_take(const corio_shared *sh, corio_snap *s);

/* ---- the status page (status.c) ---- */

/* [awaits] On loop 0, once every worker listens: takes a snapshot every
 * second, keeps a minute of them, and publishes each to /ws/status's
 * topic. 0 or -errno. */
int corio_status_start(corio_shared *sh);
/* [awaits] Stops taking snapshots and frees them (before the workers end).
 * No-op when not started. */
void corio_status_stop(corio_shared *sh);
/* Registers GET /status, /status.json and /ws/status on srv (the admin
 * server when there is one). */
int corio_status_routes(cio_http_server *srv, cio_app_worker *app);

/* Appends the Prometheus text exposition of the process's metrics (summed
 * over every worker, with a worker label on per-loop gauges) to b.
 * [awaits] the other workers' loops. 0 or -ENOMEM (b holds what was
 * written). */
int corio_metrics_render(cio_app_worker *app, cio_buf *b);

/* When the process started, in seconds since the epoch (/proc). */
double corio_process_start_time(void);

/* Whether every worker's loop turned within health.stall_ms; if not, the
 * first that did not, and how long ago it last turned. Thread-safe. */
bool corio_loops_alive(const corio_shared *sh, unsigned *stuck, cio_time *since);

/* Registers the built-in routes (/server_id, /healthz, /readyz, /cluster,
 * /metrics; /debug/block with CORIO_DEBUG=1). With an admin server
 * (admin_listen), /metrics and /cluster are its only (with /healthz and
 * /readyz, which both answer). app->sh's id and disc must exist. */
int corio_routes_register(cio_http_server *srv, cio_app_worker *app, cio_http_server *admin);

#endif /* CORIO_APP_INTERNAL_H */
