/*
 * http_server.c - the server: listeners, the connection count (and pausing
 * accepts at max_connections), request dispatch and graceful shutdown.
 */
#include "http_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define BACKLOG  4096
#define MAX_BODY (1u << 30) /* bodies are held in memory, indexed by uint32 */
#define REFUSED_LOG_INTERVAL CIO_SEC(10) /* at most one line about refusals per interval */

static void refused_log(cio_timer *t);
static void budget_log(cio_timer *t);

static void set_defaults(cio_http_opts *o)
{
    if (!o->max_connections)
        o->max_connections = 100000;
    if (!o->max_header_bytes)
        o->max_header_bytes = 8192;
    if (!o->max_uri_bytes)
        o->max_uri_bytes = 8192;
    if (!o->max_body_bytes)
        o->max_body_bytes = 1024 * 1024;
    if (o->max_body_bytes > MAX_BODY)
        o->max_body_bytes = MAX_BODY; /* offsets into the input are 32-bit */
    if (!o->header_timeout)
        o->header_timeout = CIO_SEC(10);
    if (!o->body_timeout)
        o->body_timeout = CIO_SEC(30);
    if (!o->write_timeout)
        o->write_timeout = CIO_SEC(30);
    if (!o->handler_timeout)
        o->handler_timeout = CIO_SEC(60);
    /* keepalive_timeout 0 means "no keep-alive": the caller sets 75 s */
}

int cio_http_server_reconfigure(cio_http_server *srv, const cio_http_opts *opts)
{
    cio_http_opts o = *opts;
    set_defaults(&o);
    int fd = -1;
    if (o.root && (fd = open(o.root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        return -errno;
    if (srv->root_fd >= 0)
        close(srv->root_fd);
    srv->root_fd = fd;
    o.budget = srv->o.budget; /* shared with WebSocket routes: not the server's to swap */
    o.server_header = NULL;
    o.root = NULL;
    srv->o = o;
    http_allow_all_update(srv); /* GET and HEAD come and go with the root */
    return 0;
}

int cio_http_server_share_addrs(cio_http_server *srv, cio_http_server *with)
{
    if (srv == with || srv->nconns || srv->nlisteners)
        return -EINVAL;
    srv->addrs_used = with->addrs_used;
    return 0;
}

int cio_http_server_create(cio_loop *loop, const cio_http_opts *opts, cio_http_server **out)
{
    cio_http_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return -ENOMEM;
    srv->metrics = calloc(1, sizeof(*srv->metrics));
    if (!srv->metrics) {
        free(srv);
        return -ENOMEM;
    }
    srv->loop = loop ? loop : cio_loop_current();
    if (opts)
        srv->o = *opts;
    else
        srv->o.keepalive_timeout = CIO_SEC(75);
    set_defaults(&srv->o);
    srv->root_fd = -1;
    if (srv->o.root) {
        srv->root_fd = open(srv->o.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (srv->root_fd < 0) {
            int rc = -errno;
            free(srv->metrics);
            free(srv);
            return rc;
        }
    }
    snprintf(srv->server_hdr, sizeof(srv->server_hdr), "%s",
             srv->o.server_header ? srv->o.server_header : "corio/" CIO_VERSION);
    srv->server_hdr_len = strlen(srv->server_hdr);
    srv->o.server_header = NULL;
    srv->o.root = NULL;
    http_settings_init(&srv->settings);
    http_addrs_init(&srv->addrs);
    srv->addrs_used = &srv->addrs;
    cio_list_init(&srv->conns);
    cio_event_init(&srv->drained);
    cio_event_init(&srv->listeners_closed);
    srv->clock_sec = -1;
    cio_timer_init(&srv->refused_timer, srv->loop, refused_log);
    cio_timer_init(&srv->budget_timer, srv->loop, budget_log);
    srv->budget = srv->o.budget;
    http_allow_all_update(srv);
    *out = srv;
    return 0;
}

/* ---- connections and listeners --------------------------------------------------- */

static void pause_accepting(cio_http_server *srv, bool pause)
{
    srv->accept_paused = pause;
    for (size_t i = 0; i < srv->nlisteners; i++) {
        if (srv->listeners[i]->ls.closing)
            continue;
        if (pause)
            cio_listener_pause(&srv->listeners[i]->ls);
        else
            cio_listener_resume(&srv->listeners[i]->ls);
    }
}

void http_server_conn_added(cio_http_server *srv, cio_http_conn *c)
{
    cio_list_push(&srv->conns, &c->link);
    srv->nconns++;
    srv->st.accepted++;
    if (srv->nconns >= srv->o.max_connections && !srv->accept_paused) {
        srv->st.accept_pauses++;
        pause_accepting(srv, true); /* new connections wait in the backlog */
    }
}

void http_server_conn_removed(cio_http_server *srv, cio_http_conn *c)
{
    if (c->addr_counted) {
        c->addr_counted = false;
        http_addrs_put(srv->addrs_used, c->rfamily, c->raddr);
    }
    cio_list_del(&c->link);
    srv->nconns--;
    if (srv->accept_paused && !srv->shutting && srv->nconns < srv->o.max_connections)
        pause_accepting(srv, false);
    if (srv->shutting && srv->nconns == 0)
        cio_event_set(&srv->drained);
}

/* The refusals of the last interval, in one line (a flood must not flood the
 * log too). */
static void refused_log(cio_timer *t)
{
    cio_http_server *srv = cio_container_of(t, cio_http_server, refused_timer);
    if (!srv->refused_unlogged)
        return;
    cio_warn("reset %llu connection%s over limits.max_connections_per_ip (%llu) in the last "
             "%d s; the last from %s",
             (unsigned long long)srv->refused_unlogged, srv->refused_unlogged == 1 ? "" : "s",
             (unsigned long long)srv->o.max_conns_per_addr,
             (int)(REFUSED_LOG_INTERVAL / CIO_SEC(1)), srv->refused_last);
    srv->refused_unlogged = 0;
    (void)cio_timer_start(t, cio_now() + REFUSED_LOG_INTERVAL); /* the next line waits */
}

/* What the budget refused or paused in the last interval, in one line. */
static void budget_log(cio_timer *t)
{
    cio_http_server *srv = cio_container_of(t, cio_http_server, budget_timer);
    uint64_t refused = srv->st.budget_refused - srv->budget_refused_logged;
    uint64_t paused = srv->st.budget_pauses - srv->budget_paused_logged;
    if (!refused && !paused)
        return;
    const cio_budget *b = srv->budget;
    cio_warn("memory budget full: %llu request%s refused (503), %llu connection%s paused in the "
             "last %d s; buffered %zu of limits.max_buffered_bytes %zu (peak %zu)",
             (unsigned long long)refused, refused == 1 ? "" : "s", (unsigned long long)paused,
             paused == 1 ? "" : "s", (int)(REFUSED_LOG_INTERVAL / CIO_SEC(1)), b->used, b->limit,
             b->peak);
    srv->budget_refused_logged = srv->st.budget_refused;
    srv->budget_paused_logged = srv->st.budget_pauses;
    (void)cio_timer_start(t, cio_now() + REFUSED_LOG_INTERVAL);
}

void http_budget_note(cio_http_server *srv)
{
    if (!cio_timer_armed(&srv->budget_timer))
        budget_log(&srv->budget_timer); /* the first of an interval: at once */
}

/* Resets a connection whose address is at max_conns_per_addr: RST rather
 * than FIN, so that a flood leaves no TIME_WAIT behind here. */
/* A connection over max_conns_per_addr: counted, and logged once per
 * interval. */
static void note_refused(cio_http_server *srv, uint8_t family, const uint8_t *addr)
{
    srv->st.refused_per_addr++;
    srv->refused_unlogged++;
    if (!inet_ntop(family, addr, srv->refused_last, sizeof(srv->refused_last)))
        snprintf(srv->refused_last, sizeof(srv->refused_last), "?");
    if (!cio_timer_armed(&srv->refused_timer))
        refused_log(&srv->refused_timer); /* the first of an interval: at once */
}

static void refuse(cio_http_server *srv, int fd, uint8_t family, const uint8_t *addr)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    note_refused(srv, family, addr);
}

bool http_server_conn_admit(cio_http_server *srv, cio_http_conn *c)
{
    if (!srv->o.max_conns_per_addr || !c->rfamily || c->addr_counted)
        return true;
    int rc = http_addrs_take(srv->addrs_used, c->rfamily, c->raddr, srv->o.max_conns_per_addr);
    if (rc == 0) {
        note_refused(srv, c->rfamily, c->raddr);
        return false;
    }
    c->addr_counted = rc > 0;
    return true;
}

static void on_accept(cio_listener *ls, int fd)
{
    http_listener *hl = cio_container_of(ls, http_listener, ls);
    cio_http_server *srv = hl->srv;
    if (srv->shutting) {
        close(fd);
        return;
    }
    /* The address, once, now (later the fd may already be closed): for the
     * access log and the per-address limit. Behind a balancer (PROXY
     * protocol) it is the balancer's until the header says whose. */
    uint8_t family = 0, addr[16];
    if (srv->o.access_log || srv->o.max_conns_per_addr || hl->proxy) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
            if (ss.ss_family == AF_INET) {
                family = AF_INET;
                memcpy(addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
            } else if (ss.ss_family == AF_INET6) {
                family = AF_INET6;
                memcpy(addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
            }
        }
    }
    bool counted = false;
    if (srv->o.max_conns_per_addr && family && !hl->proxy) {
        int rc = http_addrs_take(srv->addrs_used, family, addr, srv->o.max_conns_per_addr);
        if (rc == 0) {
            refuse(srv, fd, family, addr);
            return;
        }
        counted = rc > 0; /* out of memory: let it in uncounted rather than refuse */
    }
    cio_http_conn *c = cio_http_conn_new(srv);
    if (!c) {
        if (counted)
            http_addrs_put(srv->addrs_used, family, addr);
        close(fd);
        return;
    }
    c->rfamily = family;
    if (family)
        memcpy(c->raddr, addr, family == AF_INET ? 4 : 16);
    c->addr_counted = counted;
    c->proxy_wait = hl->proxy;
    /* Responses are coalesced per batch already; do not let Nagle hold the
     * last segment of one back for an ACK. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    cio_socket_transport_init(&c->sock, srv->loop, fd, cio_http_conn_cbs(), c);
    cio_http_conn_start(c, &c->sock.t);
}

static void listener_closed(cio_listener *ls)
{
    cio_http_server *srv = cio_container_of(ls, http_listener, ls)->srv;
    if (--srv->listeners_closing == 0)
        cio_event_set(&srv->listeners_closed);
}

int cio_http_listen(cio_http_server *srv, const struct sockaddr *addr, socklen_t len,
                    bool reuseport, char *text_out)
{
    cio_http_listen_opts o = {.reuseport = reuseport};
    return cio_http_listen_with(srv, addr, len, &o, text_out);
}

/* A listener for srv, on a socket that cio_listener_open makes (addr) or
 * cio_listener_adopt takes over (fd >= 0). */
static int listen_on(cio_http_server *srv, const struct sockaddr *addr, socklen_t len, int fd,
                     const cio_http_listen_opts *o, char *text_out)
{
    bool reuseport = o && o->reuseport;
    http_listener **ls = realloc(srv->listeners, (srv->nlisteners + 1) * sizeof(*ls));
    if (!ls)
        return -ENOMEM;
    srv->listeners = ls;
    http_listener *hl = calloc(1, sizeof(*hl));
    if (!hl)
        return -ENOMEM;
    hl->srv = srv;
    hl->proxy = o && o->proxy_protocol;
    int rc = fd >= 0 ? cio_listener_adopt(&hl->ls, srv->loop, fd, o && o->shared, on_accept, hl)
                     : cio_listener_open(&hl->ls, srv->loop, addr, len, BACKLOG, reuseport,
                                         on_accept, hl);
    if (rc < 0) {
        free(hl);
        return rc;
    }
    srv->listeners[srv->nlisteners++] = hl;
    if (srv->accept_paused)
        cio_listener_pause(&hl->ls);
    if (text_out) {
        struct sockaddr_storage ss;
        socklen_t sl;
        char ip[INET6_ADDRSTRLEN] = "?";
        int port = 0;
        snprintf(text_out, 64, "?");
        if (cio_listener_address(&hl->ls, &ss, &sl) == 0) {
            if (ss.ss_family == AF_INET6) {
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof(ip));
                port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
                snprintf(text_out, 64, "[%s]:%d", ip, port);
            } else if (ss.ss_family == AF_INET) {
                inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
                port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
                snprintf(text_out, 64, "%s:%d", ip, port);
            }
        }
    }
    return 0;
}

int cio_http_listen_with(cio_http_server *srv, const struct sockaddr *addr, socklen_t len,
                         const cio_http_listen_opts *o, char *text_out)
{
    return listen_on(srv, addr, len, -1, o, text_out);
}

int cio_http_listen_fd(cio_http_server *srv, int fd, const cio_http_listen_opts *o,
                       char *text_out)
{
    if (fd < 0)
        return -EBADF;
    return listen_on(srv, NULL, 0, fd, o, text_out);
}

/* ---- shutdown ------------------------------------------------------------------------- */

int cio_http_server_shutdown(cio_http_server *srv, cio_time deadline)
{
    srv->shutting = true;
    for (size_t i = 0; i < srv->nlisteners; i++) {
        if (srv->listeners[i]->ls.closing)
            continue;
        srv->listeners_closing++;
        cio_listener_close(&srv->listeners[i]->ls, listener_closed);
    }
    for (cio_list *n = srv->conns.next; n != &srv->conns; n = n->next)
        http_conn_shutdown(cio_container_of(n, cio_http_conn, link), false);
    if (srv->nconns == 0)
        cio_event_set(&srv->drained);
    int rc = cio_event_wait(&srv->drained, deadline);
    cio_scope shield;
    if (rc < 0) {
        /* Past the deadline: close what is left, and give it a second to go. */
        for (cio_list *n = srv->conns.next; n != &srv->conns; n = n->next)
            http_conn_shutdown(cio_container_of(n, cio_http_conn, link), true);
        cio_scope_enter(&shield, cio_after(CIO_SEC(1)), true);
        (void)cio_event_wait(&srv->drained, CIO_NEVER);
        cio_scope_exit(&shield);
        rc = -ETIMEDOUT;
    }
    /* The listeners' last completions must be in before they can be freed,
     * even if this task is being cancelled. */
    if (srv->listeners_closing == 0)
        cio_event_set(&srv->listeners_closed);
    cio_scope_enter(&shield, CIO_NEVER, true);
    (void)cio_event_wait(&srv->listeners_closed, CIO_NEVER);
    cio_scope_exit(&shield);
    return rc;
}

void cio_http_server_destroy(cio_http_server *srv)
{
    if (!srv)
        return;
    for (size_t i = 0; i < srv->nlisteners; i++)
        free(srv->listeners[i]);
    free(srv->listeners);
    http_routes_free(srv);
    http_act_cache_free(srv);
    cio_timer_stop(&srv->refused_timer);
    cio_timer_stop(&srv->budget_timer);
    http_addrs_fini(&srv->addrs);
    if (srv->root_fd >= 0)
        close(srv->root_fd);
    free(srv->metrics);
    free(srv);
}

const cio_http_metrics *cio_http_server_metrics(const cio_http_server *srv)
{
    return srv->metrics;
}

void cio_http_server_stats(const cio_http_server *srv, cio_http_stats *out)
{
    *out = srv->st;
    out->connections = srv->nconns;
    uint64_t idle = 0;
    for (cio_list *n = srv->conns.next; n != &srv->conns; n = n->next)
        idle += http_conn_is_idle(cio_container_of(n, cio_http_conn, link));
    out->idle = idle;
}
