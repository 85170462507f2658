/* app_internal.h - what the app's files share (app.c, app_routes.c,
 * metrics.c): the process's shared state and a worker's public part. */
#ifndef CORIO_APP_INTERNAL_H
#define CORIO_APP_INTERNAL_H

#include "cio_app.h"

#include <stdatomic.h>


/* What every worker shares: set up before the workers start and read-only
 * afterwards, but for the atomics. */
typedef struct corio_shared {
    unsigned nworkers;
    cio_app_worker **apps;        /* every worker's, by index */
    cio_loop **loops;        /* every worker's loop, by index (loops[0] is the main one) */
    cio_peer_id id;          /* this process's id, served at /server_id */
    cio_discovery *disc;     /* which entry of "servers" this server is (loop 0's) */
    _Atomic int disc_state;  /* its state, for every loop (enum cio_peer_state) */
    cio_ws_topic_group *rooms; /* /ws/chat's rooms, spanning the workers */
    _Atomic uint64_t stall_ms; /* health.stall_ms (SIGHUP may change it) */
    double start_time;       /* the process's start, seconds since the epoch */
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
    cio_http_server *srv;  /* for /metrics */
    cio_log_writer *access; /* the access log (SIGHUP replaces it), or NULL */
    cio_event self_known;  /* set once discovery has an answer (self_rc) */
    int self_rc;           /* cio_discovery_await_self's */
    const char *self;      /* and the entry it found (the discovery's memory) */
    cio_time heard_posted; /* the latest peer id passed on to loop 0 */
    void *data;            /* the program's (cio_app_worker_set_data) */
};

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
