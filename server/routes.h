/* routes.h - the corio daemon's own routes (routes.c). */
#ifndef CORIO_ROUTES_H
#define CORIO_ROUTES_H

#include "cio_app.h"

/* The app's setup callback (cio_app_opts.setup): registers /plaintext,
 * /json, /echo, /hash, /client-request, /ws/echo and /ws/chat on w's
 * server. 0 or -errno. */
int corio_routes_setup(cio_app_worker *w, void *ud);

#endif
