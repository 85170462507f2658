/*
 * peer_id.c - the "real life example" of "Why should async get all the
 * love?" (PyCon 2022): a member of a cluster finds which entry of the shared
 * server list is itself, in corio's API. The Flask + threads original is in
 * README beside it.
 *
 * Each member draws a random id and serves it at GET /server_id; discovery
 * queries /server_id of every entry (itself included, all at once, every
 * second, for a minute) and the one answering our id is self. POST
 * /client-request cannot be handled before that: it awaits the self future.
 *
 *   peer_id [--once] PORT ENTRY...    (an ENTRY is host:port)
 *
 * It serves until SIGINT/SIGTERM; --once exits 0 as soon as self is found
 * (3 if the minute passes first), for the test suite.
 */
#include "cio.h"
#include "cio_http.h"
#include "cio_peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>

static cio_peer_id server_id;
static cio_discovery *disc; /* holds the self future */

static int get_server_id(cio_http_req *req, void *ud)
{
    (void)ud;
    char body[40];
    int n = snprintf(body, sizeof(body), "\"%s\"", server_id.hex);
    return cio_http_respond(req, 200, "application/json", body, (size_t)n);
}

static int client_request(cio_http_req *req, void *ud)
{
    (void)ud;
    /* Can't handle requests until I find myself: wait here (other
     * requests go on being served meanwhile). */
    const char *self;
    if (cio_discovery_await_self(disc, &self, cio_after(CIO_SEC(60))) < 0)
        return cio_http_respond(req, 503, "text/plain", "who am I?\n", 10);
    char *body = cio_arena_printf(cio_http_arena(req), "handled by %s\n", self);
    return cio_http_respond(req, 200, "text/plain", body, strlen(body));
}

typedef struct args {
    bool once;
    int port;
    int n;
    char **entries;
} args;

static intptr_t serve(void *arg)
{
    args *a = arg;
    cio_http_server *srv;
    cio_http_client *client;
    if (cio_peer_id_generate(&server_id) < 0 || cio_http_server_create(NULL, NULL, &srv) < 0 ||
        cio_http_client_create(NULL, NULL, &client) < 0)
        return 1;
    cio_http_route(srv, "GET", "/server_id", get_server_id, NULL);
    cio_http_route(srv, "POST", "/client-request", client_request, NULL);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)a->port)};
    if (cio_http_listen(srv, (struct sockaddr *)&sa, sizeof(sa), false, NULL) < 0)
        return 1;

    cio_peer_member m[16];
    char hosts[16][256];
    for (int i = 0; i < a->n; i++) {
        char *colon = strrchr(a->entries[i], ':');
        snprintf(hosts[i], sizeof(hosts[i]), "%.*s", (int)(colon - a->entries[i]), a->entries[i]);
        m[i] = (cio_peer_member){a->entries[i], hosts[i], (uint16_t)atoi(colon + 1)};
    }
    cio_discovery_opts o = {.members = m, .nmembers = (size_t)a->n, .id = server_id,
                            .client = client, .window = CIO_SEC(60)};
    if (cio_discovery_create(NULL, &o, &disc) < 0 || cio_discovery_start(disc) < 0)
        return 1;

    intptr_t rc = 0;
    const char *self;
    if (a->once) {
        rc = cio_discovery_await_self(disc, &self, CIO_NEVER) == 0 ? 0 : 3;
        if (rc == 0)
            printf("I am %s (id %s)\n", self, server_id.hex);
    } else {
        sigset_t set; /* blocked in main: read them here */
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        int fd = signalfd(-1, &set, SFD_CLOEXEC);
        struct signalfd_siginfo si;
        if (fd >= 0)
            (void)cio_read(fd, &si, sizeof(si), -1, CIO_NEVER);
    }
    cio_http_server_shutdown(srv, cio_after(CIO_SEC(5)));
    cio_http_server_destroy(srv);
    cio_discovery_stop(disc);
    cio_discovery_destroy(disc);
    cio_http_client_destroy(client);
    return rc;
}

int main(int argc, char **argv)
{
    args a = {0};
    int i = 1;
    if (i < argc && strcmp(argv[i], "--once") == 0)
        a.once = true, i++;
    if (argc - i < 2 || argc - i > 17) {
        fprintf(stderr, "usage: %s [--once] PORT HOST:PORT...\n", argv[0]);
        return 2;
    }
    a.port = atoi(argv[i++]);
    a.n = argc - i;
    a.entries = argv + i;
    for (int k = 0; k < a.n; k++)
        if (!strrchr(a.entries[k], ':')) {
            fprintf(stderr, "%s: expected host:port\n", a.entries[k]);
            return 2;
        }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    cio_loop *loop;
    if (cio_loop_create(&loop, NULL) < 0)
        return 1;
    intptr_t rc = cio_run(loop, serve, &a);
    cio_loop_destroy(loop);
    return (int)rc;
}
