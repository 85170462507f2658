/*
 * corio - the daemon: the app (cio_app.h: configuration, workers, signals,
 * the operators' routes, discovery) with the daemon's own routes
 * (routes.c). Everything it does, a program of its own can do the same
 * way; README's "Writing handlers" shows one.
 *
 * Exit status: 0 after a clean shutdown, 1 when the server cannot start
 * (e.g. the address is in use, the pidfile is locked), 2 for configuration
 * errors. (corio --probe URL is a client instead: probe.c.)
 */
#include "routes.h"

int main(int argc, char **argv)
{
    cio_app_opts o = {.name = "corio", .setup = corio_routes_setup};
    return cio_app_main(argc, argv, &o);
}
