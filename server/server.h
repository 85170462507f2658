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
} corio_app;

/* Registers the built-in routes (/plaintext, /json, /echo, /hash, /ws/echo,
 * /ws/chat, /server_id, /healthz, /readyz, /cluster, /client-request).
 * app->rooms, app->id and app->disc must exist. */
int corio_routes_register(cio_http_server *srv, corio_app *app);

#endif
