/*
 * cio_http.h - HTTP/1.1 server on corio's runtime: connections, router,
 * handlers as coroutines, responses, static files, access log.
 *
 * CONNECTIONS. An idle keep-alive connection is a small struct with an armed
 * multishot receive: no task, no stack, no buffer. When a complete request
 * arrives, a task is spawned for the connection; it runs the handlers of all
 * requests available (pipelining: responses keep request order) and ends
 * when the input is drained, handing the stack back.
 *
 * HANDLERS run as tasks: they may await anything core offers (thread-pool
 * jobs, timers, channels, other sockets) while other connections are served.
 * A handler responds with cio_http_respond() (fixed body) or with
 * cio_http_start() + cio_http_write()... + cio_http_end() (streamed; chunked
 * for HTTP/1.1 when the length is unknown). A handler that returns without
 * responding gets a 500. Memory for the request's lifetime comes from
 * cio_http_arena(); request strings stay valid until the handler returns.
 */
#ifndef CIO_HTTP_H
#define CIO_HTTP_H

#include "cio.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the public API: see LIBRARY in cio.h */

/* A byte string that is not NUL-terminated. */
typedef struct cio_str {
    const char *p;
    size_t n;
} cio_str;

#ifdef __cplusplus
#define CIO_STR(lit) (cio_str{(lit), sizeof(lit) - 1})
#else
#define CIO_STR(lit) ((cio_str){(lit), sizeof(lit) - 1})
#endif

typedef struct cio_http_server cio_http_server;
typedef struct cio_http_req cio_http_req;

/* Returns 0, or -errno: the connection is then closed (after a 500 if
 * nothing was sent yet). */
typedef int (*cio_http_handler)(cio_http_req *req, void *ud);

typedef struct cio_http_opts {
    uint64_t max_connections;       /* past it, accepting pauses (default 100000) */
    uint64_t max_header_bytes;      /* -> 431 (default 8192) */
    uint64_t max_uri_bytes;         /* -> 414 (default 8192) */
    uint64_t max_body_bytes;        /* -> 413 (default 1 MiB, at most 1 GiB: held in memory) */
    uint64_t max_requests_per_conn; /* 0 = unlimited */
    uint64_t max_conns_per_addr;    /* open connections from one client address (IPv6:
                                       /128); more are reset at accept (0 = no limit) */
    cio_time header_timeout;        /* -> 408 (default 10 s) */
    cio_time body_timeout;          /* -> 408 (default 30 s) */
    cio_time keepalive_timeout;     /* idle close; 0 = no keep-alive (default 75 s) */
    cio_time write_timeout;         /* no send progress -> close (default 30 s) */
    cio_time handler_timeout;       /* from the request head to the start of the
                                       response; past it the handler is cancelled and,
                                       if nothing was sent, 503 (default 60 s;
                                       CIO_NEVER = none) */
    const char *root;               /* document root for GET/HEAD, or NULL */
    bool serve_dotfiles;            /* serve "/.env", "/a/.git/..." from the root
                                       (default false: 404; "/.well-known/" always) */
    cio_log_writer *access_log;     /* combined log format, or NULL */
    bool access_log_json;           /* JSON lines instead: {"time", "remote", "method",
                                       "uri", "protocol", "status", "bytes",
                                       "duration_ms", "referer", "user_agent"} */
    cio_budget *budget;             /* bytes buffered for peers, shared with other
                                       servers and WebSocket routes (NULL: unbounded).
                                       A buffered body that does not fit is refused
                                       at its head (503, Retry-After); while it is
                                       full, bodies of unknown length and streamed
                                       ones stop being read until it has room. */
    const char *server_header;      /* default "corio/<version>" */
} cio_http_opts;

/* Creates a server on loop with opts (NULL = defaults; zero fields take their
 * defaults). Returns 0, -ENOMEM, or -errno from opening the document root. */
int cio_http_server_create(cio_loop *loop, const cio_http_opts *opts, cio_http_server **out);

/* Makes srv count open connections per client address (max_conns_per_addr)
 * in with's table, so that the limit holds across servers on several loops
 * (a multi-loop process's workers, each with its own server): an address
 * gets max_conns_per_addr connections in all, not on each. Call before srv
 * listens; with must outlive srv. The table is taken under a lock, only on
 * accept and close and only with the limit set. 0 or -EINVAL (srv is with,
 * or already listens). */
int cio_http_server_share_addrs(cio_http_server *srv, cio_http_server *with);

/* Applies new settings to a running server (a daemon's SIGHUP): limits,
 * timeouts, the document root, serve_dotfiles, the access log (the old
 * writer stays the caller's to destroy). They count for what starts
 * afterwards: connections and requests in progress keep the deadlines they
 * have. The budget and the Server header stay as created. 0, or -errno from
 * opening the new root (then nothing changed). */
int cio_http_server_reconfigure(cio_http_server *srv, const cio_http_opts *opts);

/* Adds a route: method ("GET", "POST", ...) and a path pattern whose segments
 * are literal or ":name" parameters ("/users/:id"). A GET route also answers
 * HEAD. Literal segments win over parameters. 0, -EINVAL (also for more
 * than 32 segments), -EEXIST (this method has a route matching the same
 * paths: the same literals, parameters where it has them, whatever their
 * names; streamed or not) or -ENOMEM. */
int cio_http_route(cio_http_server *srv, const char *method, const char *pattern,
                   cio_http_handler fn, void *ud);

/* The same for a handler that reads the request body as it arrives, with
 * cio_http_read(), instead of receiving it whole: it starts as soon as the
 * head is in, and the connection holds at most a window (~64 KiB) of body
 * at a time, whatever its length. */
int cio_http_route_stream(cio_http_server *srv, const char *method, const char *pattern,
                          cio_http_handler fn, void *ud);

/* Listens on addr (port 0 picks a free port); text_out (optional, 64 bytes)
 * gets the bound address as "IP:port". 0 or -errno. */
int cio_http_listen(cio_http_server *srv, const struct sockaddr *addr, socklen_t len,
                    bool reuseport, char *text_out);

/* The same with options: reuseport (SO_REUSEPORT), and proxy_protocol: a
 * load balancer in front sends a PROXY protocol header (HAProxy's v1 text
 * or v2 binary) first, which says who the client is: the access log and
 * max_conns_per_addr see that address. On such a listener the header is
 * required; a connection without one is closed. */
typedef struct cio_http_listen_opts {
    bool reuseport;
    bool proxy_protocol;
    bool shared; /* cio_http_listen_fd only: servers of other loops accept on the
                    same socket (see cio_listener_adopt) */
} cio_http_listen_opts;
int cio_http_listen_with(cio_http_server *srv, const struct sockaddr *addr, socklen_t len,
                         const cio_http_listen_opts *o, char *text_out);

/* Serves on fd, a listening TCP socket made elsewhere: one inherited
 * through systemd's socket activation, or a dup() of it, so that the
 * servers of several loops accept on one socket (with o->shared, set on
 * each: they take turns). o->proxy_protocol as above; o->reuseport does
 * not apply (the socket is bound already). On success srv owns fd
 * (made non-blocking and close-on-exec; closed when srv stops listening);
 * on failure it stays the caller's. text_out as above. 0, -EINVAL (not a
 * listening stream socket), -ENOMEM or -errno (-EBADF, -ENOTSOCK). */
int cio_http_listen_fd(cio_http_server *srv, int fd, const cio_http_listen_opts *o,
                       char *text_out);

/* Serves one connection over any transport the caller created with
 * cio_http_conn_cbs() and cio_http_conn_ud() (tests, fuzzers: cio_mem_transport). */
typedef struct cio_http_conn cio_http_conn;
cio_http_conn *cio_http_conn_new(cio_http_server *srv);
const cio_transport_cbs *cio_http_conn_cbs(void);
/* Starts serving c over t (which must call back with c as ud). 0 or -errno. */
int cio_http_conn_start(cio_http_conn *c, cio_transport *t);

/* [awaits] Graceful shutdown: stops accepting, closes idle connections,
 * lets requests in flight finish (their responses carry Connection: close),
 * and at the deadline closes whatever is left, waiting at most one more
 * second for it to go. Returns 0 when every connection was gone before the
 * deadline, -ETIMEDOUT otherwise (then cio_http_server_stats() tells whether
 * connections remain: handlers that cannot be interrupted, e.g. waiting for
 * a running pool job). */
int cio_http_server_shutdown(cio_http_server *srv, cio_time deadline);

/* Frees a server that has been shut down (no connections left). */
void cio_http_server_destroy(cio_http_server *srv);

typedef struct cio_http_stats {
    uint64_t connections;   /* open now */
    uint64_t accepted;      /* since start */
    uint64_t requests;      /* responses started */
    uint64_t accept_pauses; /* times max_connections paused accepting */
    uint64_t refused_per_addr; /* connections reset: their address was at max_conns_per_addr */
    uint64_t errors_4xx, errors_5xx;
    uint64_t idle; /* connections with no request in progress */
    uint64_t budget_refused; /* requests answered 503: their body did not fit the budget */
    uint64_t budget_pauses;  /* times a connection stopped being read: the budget was full */
} cio_http_stats;

void cio_http_server_stats(const cio_http_server *srv, cio_http_stats *out);

/* Counters for monitoring (a Prometheus exporter reads them): responses by
 * method and status, and how long requests took, from the complete head to
 * the end of the response, at the loop turn's clock resolution. */
enum {
    CIO_HTTP_M_GET,
    CIO_HTTP_M_HEAD,
    CIO_HTTP_M_POST,
    CIO_HTTP_M_PUT,
    CIO_HTTP_M_DELETE,
    CIO_HTTP_M_PATCH,
    CIO_HTTP_M_OPTIONS,
    CIO_HTTP_M_OTHER, /* any other method, and requests refused before one was read */
    CIO_HTTP_M_COUNT
};
#define CIO_HTTP_DURATION_BUCKETS 12

typedef struct cio_http_metrics {
    uint64_t responses[CIO_HTTP_M_COUNT][500]; /* [method][status - 100] */
    uint64_t duration[CIO_HTTP_DURATION_BUCKETS + 1]; /* per bucket (not cumulative);
                                                         the last: above every bound */
    uint64_t duration_count;
    cio_time duration_sum; /* ns */
} cio_http_metrics;

/* Upper bounds of the duration buckets, in seconds (0.001 ... 10). */
extern const double cio_http_duration_bounds[CIO_HTTP_DURATION_BUCKETS];
/* "GET", ..., "OTHER" for a CIO_HTTP_M_* index. */
const char *cio_http_method_label(int m);
/* The server's counters (valid while it exists; they change as it serves). */
const cio_http_metrics *cio_http_server_metrics(const cio_http_server *srv);

/* ---- requests ------------------------------------------------------------ */

cio_str cio_http_method(const cio_http_req *req);
/* The request target as sent (path?query, or absolute-form). */
cio_str cio_http_target(const cio_http_req *req);
/* The path routes and static files see: percent-decoded, dot segments
 * removed, repeated slashes merged ("/a/%62/../c//d" is "/a/c/d"). It may
 * hold any byte but NUL, '/' from "%2F" included. */
cio_str cio_http_path(const cio_http_req *req);
/* The query after '?', as sent (not decoded), or empty. */
cio_str cio_http_query(const cio_http_req *req);
/* HTTP minor version: 0 for HTTP/1.0, 1 for HTTP/1.1. */
int cio_http_version_minor(const cio_http_req *req);
/* The first header named name (case-insensitive); found = p != NULL. */
cio_str cio_http_header(const cio_http_req *req, const char *name);
/* Header n (0-based) as name/value; false past the end. */
bool cio_http_header_at(const cio_http_req *req, size_t n, cio_str *name, cio_str *value);
/* A ":name" parameter of the matched route: a segment of cio_http_path(),
 * so percent-decoded ("/users/%C3%A9" gives the two bytes of "é"); or
 * {NULL, 0}. */
cio_str cio_http_param(const cio_http_req *req, const char *name);
/* The query parameter's value as sent (not decoded: "a%20b" and "a+b" stay
 * as they are), or {NULL, 0}. */
cio_str cio_http_query_param(const cio_http_req *req, const char *name);
/* The complete request body (de-chunked), possibly empty; empty for a
 * streamed route (see cio_http_read). */
cio_str cio_http_body(const cio_http_req *req);
/* [awaits] Reads up to cap bytes of the body into buf, as they arrive (on
 * a streamed route; on others from the buffered body). A request that
 * expects 100-continue is invited by the first read. Returns the number of
 * bytes (> 0), 0 at the end of the body, or -errno: -ETIMEDOUT (nothing
 * arrived within the body timeout: 408), -EMSGSIZE (past max_body_bytes:
 * 413), -EPROTO (malformed chunked framing: 400), -EPIPE (the client went
 * away), -ECANCELED (the handler's scope: client gone, deadline). After an
 * error, a handler that returns without responding sends that status; a
 * body not read to its end closes the connection after the response. */
ssize_t cio_http_read(cio_http_req *req, void *buf, size_t cap);
/* Memory that lives until the request is done. */
cio_arena *cio_http_arena(cio_http_req *req);
/* The server the request came to. */
cio_http_server *cio_http_req_server(const cio_http_req *req);

/* ---- responses ------------------------------------------------------------- */

/* Adds a response header (copied). Before the response starts only: 0,
 * -EALREADY or -ENOMEM. Date, Server, Content-Length, Transfer-Encoding and
 * Connection are managed by the server. */
int cio_http_add_header(cio_http_req *req, const char *name, const char *value);

/* [awaits] A complete response with a fixed body (content_type may be NULL).
 * For HEAD the body is not sent. 0 or -errno. */
int cio_http_respond(cio_http_req *req, int status, const char *content_type, const void *body,
                     size_t len);

/* Starts a streamed response. content_length < 0: unknown (chunked for
 * HTTP/1.1, close-delimited for HTTP/1.0). 0 or -errno. */
int cio_http_start(cio_http_req *req, int status, const char *content_type, int64_t content_length);
/* [awaits] Writes part of the body; waits while the peer is slow
 * (backpressure). 0 or -errno (-EPIPE: the peer is gone). */
int cio_http_write(cio_http_req *req, const void *data, size_t len);
/* [awaits] Finishes a streamed response. 0 or -errno. */
int cio_http_end(cio_http_req *req);

/* ---- switching protocols -------------------------------------------------------- */

/* A protocol that takes a connection over from HTTP (WebSocket). */
typedef struct cio_http_upgrade_ops {
    /* The switch is done: from now on the transport t is the protocol's (the
     * callbacks below get its ud), and data holds the bytes the client sent
     * after the request, already read (possibly none), valid during the
     * call. Runs on the loop, outside any task. */
    void (*on_start)(void *ud, cio_transport *t, uint8_t *data, size_t len);
    /* The transport's callbacks, as in cio_transport_cbs (with ud). on_closed
     * is the last call, also when the connection closed before on_start. */
    cio_transport_cbs cbs;
    /* The server shuts down: close gracefully (WebSocket: 1001), or at once
     * when force. */
    void (*on_shutdown)(void *ud, bool force);
} cio_http_upgrade_ops;

/* Accepts the request's Upgrade: instead of a response, "101 Switching
 * Protocols" goes out with "Upgrade: <protocol>", "Connection: Upgrade" and
 * the headers added with cio_http_add_header. When the handler has returned
 * and the 101 is sent, the connection is handed to (ops, ud) with the bytes
 * already read past the request, without a copy of the socket or a gap in
 * its in-flight operations. Once this returns 0, ops->cbs.on_closed(ud) is
 * called exactly once, at the end. 0, -EALREADY (a response started), -EINVAL
 * (the request asked for no upgrade, or is HTTP/1.0, or its
 * streamed body was not read to its end), -ENOMEM. */
int cio_http_upgrade(cio_http_req *req, const char *protocol, const cio_http_upgrade_ops *ops,
                     void *ud);

/* ---- client ------------------------------------------------------------------ */

/* An HTTP/1.1 client on the same loop (and the same llhttp glue) as the
 * server, for handlers that call backends and for peer discovery. Requests
 * are awaiting calls made from tasks; each has one deadline, covering name
 * resolution, connecting, sending and receiving, and is cancelled with its
 * task's scope. Connections are kept alive and reused per address.
 * A slow backend is best reached through a semaphore (cio_sem) that caps
 * how many requests go to it at once. One loop's: not thread-safe. */
typedef struct cio_http_client cio_http_client;

/* A header field (name and value, not NUL-terminated). */
typedef struct cio_http_field {
    cio_str name, value;
} cio_http_field;

typedef struct cio_http_client_opts {
    /* Runs getaddrinfo, which blocks. NULL: the client starts a pool of
     * its own (2 threads) the first time a name is not a numeric address,
     * so that lookups never queue behind the CPU jobs of a shared pool. */
    cio_pool *resolver;
    uint64_t max_response_bytes; /* head and body together, else -EMSGSIZE (default 1 MiB) */
    uint64_t max_header_bytes;   /* the response head, else -EMSGSIZE (default 16 KiB) */
    unsigned max_idle_per_addr;  /* kept-alive connections per address (default 4) */
    cio_time idle_timeout;       /* a kept-alive connection unused this long is closed
                                    (default 30 s) */
    const char *user_agent;      /* default "corio/<version>" */
} cio_http_client_opts;

/* Creates a client on loop (NULL = current) with opts (NULL = defaults; zero
 * fields take their defaults). 0, -EINVAL or -ENOMEM. */
int cio_http_client_create(cio_loop *loop, const cio_http_client_opts *opts,
                           cio_http_client **out);

/* [awaits] Closes the kept-alive connections, stops the client's own
 * resolver threads (waiting for a lookup in progress: getaddrinfo cannot be
 * interrupted) and frees the client. 0, or -EBUSY (nothing done) while
 * requests are in flight. Safe on NULL. */
int cio_http_client_destroy(cio_http_client *c);

typedef struct cio_http_request {
    const char *method;   /* default "GET" */
    const char *host;     /* a DNS name, an IPv4 address or an IPv6 address (no brackets) */
    uint16_t port;        /* default 80 */
    const char *target;   /* "/path?query" as it goes on the wire (default "/") */
    const cio_http_field *headers; /* more request headers (not Host, Content-Length,
                                      Transfer-Encoding, Connection) */
    size_t nheaders;
    const char *content_type; /* of the body, or NULL */
    const void *body;         /* sent with a Content-Length (also 0 for POST, PUT, PATCH) */
    size_t body_len;
} cio_http_request;

typedef struct cio_http_response {
    int status;
    int version_minor;
    cio_str body;             /* de-chunked, followed by a NUL that is not counted */
    cio_http_field *headers;  /* in the order received (trailers are not kept) */
    size_t nheaders;
    char *raw_;               /* internal: the bytes the strings point into */
} cio_http_response;

/* [awaits] Sends rq to rq->host:rq->port and receives the whole response
 * into *resp (any status: 0 says a response came, not that it is a 2xx).
 * Every address a name resolves to is tried in turn, each with a share of
 * the time left. A kept-alive connection that turns out to have been closed
 * by the server is replaced by a new one for idempotent methods. On error
 * *resp holds nothing and the connection is closed. Returns 0, or -EINVAL
 * (a malformed request: a method, target, header name or value with
 * forbidden bytes), -ENXIO (the name does not resolve), -EAGAIN (temporary
 * resolver failure), -ECONNREFUSED, -EHOSTUNREACH, -ENETUNREACH and other
 * connect errors, -ETIMEDOUT (deadline), -ECANCELED (the task's scope),
 * -ECONNRESET or -EPIPE (the server closed before the response was
 * complete), -EPROTO (not a valid HTTP/1.x response, or an upgrade),
 * -EMSGSIZE (over max_header_bytes or max_response_bytes), -ENOMEM. */
int cio_http_fetch(cio_http_client *c, const cio_http_request *rq, cio_http_response *resp,
                   cio_time deadline);

/* [awaits] cio_http_fetch of a GET. */
int cio_http_get(cio_http_client *c, const char *host, uint16_t port, const char *target,
                 cio_http_response *resp, cio_time deadline);

/* The first response header named name (case-insensitive), or {NULL, 0}. */
cio_str cio_http_response_header(const cio_http_response *resp, const char *name);

/* Frees what the response holds (safe on a zeroed or freed one). */
void cio_http_response_free(cio_http_response *resp);

typedef struct cio_http_client_stats {
    uint64_t requests;  /* fetches that got a response */
    uint64_t failures;  /* fetches that returned an error */
    uint64_t connects;  /* connections established */
    uint64_t reuses;    /* requests sent on a kept-alive connection */
    uint64_t retries;   /* requests repeated: a kept-alive connection had been closed */
    uint64_t lookups;   /* names resolved on the resolver pool */
    uint64_t idle;      /* kept-alive connections now */
    uint64_t inflight;  /* fetches in progress */
} cio_http_client_stats;

void cio_http_client_stats_get(const cio_http_client *c, cio_http_client_stats *out);

/* The reason phrase of a status code ("Not Found"). */
const char *cio_http_reason(int status);

/* ---- static files ------------------------------------------------------------- */

/* [awaits] Serves the request's path from the server's document root (GET and
 * HEAD): MIME type by extension, ETag/Last-Modified with conditional 304,
 * single byte ranges (206/416), index.html for directories, no listings; the
 * path cannot leave the root (percent-decoding before checks, dot segments,
 * NUL and backslash are refused, and symlinks are resolved beneath the root).
 * Returns 0 once a response was sent. */
int cio_http_serve_static(cio_http_req *req);

/* The MIME type for a file name by its extension. */
const char *cio_http_mime_type(const char *name, size_t len);

/* Decodes %XX escapes of src into dst (which may be src). Returns the decoded
 * length, or -EINVAL on a malformed escape or a decoded NUL. */
ssize_t cio_http_percent_decode(char *dst, const char *src, size_t len);

/* Removes "." and ".." segments of an absolute, decoded path in place (RFC
 * 3986 remove_dot_segments) and merges repeated slashes ("//a" is "/a"; a
 * trailing slash stays). Returns the new length, or -EINVAL if the path
 * would climb above "/". */
ssize_t cio_http_normalize_path(char *path, size_t len);

/* Formats t (seconds since the epoch) as an IMF-fixdate into out[30]. */
void cio_http_date(int64_t t, char out[30]);
/* Parses an HTTP date (IMF-fixdate, RFC 850, asctime). -1 if invalid. */
int64_t cio_http_parse_date(const char *s, size_t n);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif /* CIO_HTTP_H */
