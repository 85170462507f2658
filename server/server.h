/* server.h - what the daemon's files share. */
#ifndef CORIO_SERVER_H
#define CORIO_SERVER_H

#include "cio.h"
#include "cio_http.h"
#include "cio_peer.h"
#include "cio_ws.h"

typedef struct corio_app {
    cio_pool *pool;
    cio_time pool_wait;    /* for room in a full pool queue, then 503 + Retry-After */
    cio_ws_opts ws_opts;   /* /ws/echo */
    cio_ws_opts chat_opts; /* /ws/chat: the same, with frames shared by the room */
    cio_ws_topics *rooms;  /* /ws/chat's rooms */
    cio_peer_id id;        /* this process's id, served at /server_id */
    cio_discovery *disc;   /* which entry of "servers" this server is */
    cio_http_server *srv;  /* for /metrics */
    cio_log_writer *access; /* the access log (SIGHUP replaces it), or NULL */
    double start_time;     /* the process's start, seconds since the epoch */
} corio_app;

/* Appends the Prometheus text exposition of the process's metrics to b.
 * 0 or -ENOMEM (b holds what was written). */
int corio_metrics_render(corio_app *app, cio_buf *b);

/* When the process started, in seconds since the epoch (/proc). */
double corio_process_start_time(void);

/* Registers the built-in routes (/plaintext, /json, /echo, /hash, /ws/echo,
 * /ws/chat, /server_id, /healthz, /readyz, /cluster, /client-request,
 * /metrics). With an admin server (admin_listen), /metrics and /cluster
 * are its only (with /healthz and /readyz, which both answer). app->rooms,
 * app->id and app->disc must exist. */
int corio_routes_register(cio_http_server *srv, corio_app *app, cio_http_server *admin);

#endif
