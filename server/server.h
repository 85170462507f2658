/* server.h - what the daemon's files share. */
#ifndef CORIO_SERVER_H
#define CORIO_SERVER_H

#include "cio.h"
#include "cio_http.h"

typedef struct corio_app {
    cio_pool *pool;
    cio_time pool_wait; /* for room in a full pool queue, then 503 + Retry-After */
} corio_app;

/* Registers the built-in routes (/plaintext, /json, /echo, /hash). */
int corio_routes_register(cio_http_server *srv, corio_app *app);

#endif
