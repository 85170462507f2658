/*
 * cio_config.h - corio's configuration model: built-in defaults, then a JSON
 * file, then command-line flags, validated into one struct that the daemon
 * treats as immutable once loaded. Knows nothing of sockets or HTTP.
 */
#ifndef CIO_CONFIG_H
#define CIO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the public API: see LIBRARY in cio.h */

#define CIO_CONFIG_MAX_LISTEN  16
#define CIO_CONFIG_MAX_ORIGINS 64 /* websocket.origins entries */
#define CIO_CONFIG_MAX_SERVERS 64 /* "servers" entries */

/* One listen address, parsed and resolved (numeric only, no DNS). */
typedef struct cio_listen {
    struct sockaddr_storage addr; /* AF_INET or AF_INET6, port in network order */
    socklen_t addrlen;
    char text[64]; /* as written by the user, e.g. "0.0.0.0:8080" or "[::1]:8080" */
    bool proxy_protocol; /* each connection starts with a PROXY protocol header giving the
                            client's address (an entry written as an object with
                            "proxy_protocol": true); false for a plain string */
} cio_listen;

/* One member of the cluster ("servers"), parsed but not resolved (no DNS). */
typedef struct cio_server_entry {
    char text[300]; /* as written in the config: "host0:8080", "[::1]:8080", "host0" */
    char host[256]; /* a DNS name (case kept as written), an IPv4 address or an IPv6
                       address (no brackets) */
    uint16_t port;  /* 1..65535; a bare name takes the port of listen[0], filled in by
                       cio_config_resolve_bare_servers (0 until then) */
    bool bare;      /* written without a port */
} cio_server_entry;

typedef struct cio_config {
    cio_listen listen[CIO_CONFIG_MAX_LISTEN];
    size_t nlisten;
    /* A separate address for /metrics, /cluster and /status; none = those stay on
     * the main listeners. No entry may overlap a listen address. */
    cio_listen admin_listen[CIO_CONFIG_MAX_LISTEN];
    size_t nadmin_listen;
    char *root;            /* document root (absolute or as given), or NULL: none */
    bool serve_dotfiles;   /* false: a static path with a segment starting with "."
                              is 404 (the /.well-known/ prefix excepted) */
    unsigned pool_threads; /* 0 = number of CPUs */
    unsigned pool_queue;   /* queued (not yet running) pool jobs: 1..1048576 */
    int pool_priority;     /* CIO_CONFIG_POOL_*: how workers compete with the loop */
    unsigned workers;      /* 0..1024 serving workers, 0 = one per CPU */
    bool daemon;           /* detach into the background */
    char *pidfile;         /* file the daemon writes its pid to, or NULL: none */
    char *user;            /* after binding, switch to this user (a name or a numeric
                              uid), or NULL: stay */
    char *group;           /* after binding, switch to this group (a name or a numeric
                              gid), or NULL: the user's primary group (stay without user) */
    struct {
        uint64_t max_connections;             /* open connections; past it, accepting pauses */
        uint64_t max_header_bytes;            /* request line + headers; over it -> 431 */
        uint64_t max_uri_bytes;               /* request target; over it -> 414 */
        uint64_t max_body_bytes;              /* over it -> 413; 1..1 GiB (held in memory) */
        uint64_t max_requests_per_connection; /* 0 = unlimited */
        uint64_t max_connections_per_ip;      /* open connections from one client address
                                                 (IPv6: one /128); 0 = no limit */
        uint64_t max_buffered_bytes;          /* bytes held for all peers together (bodies,
                                                 heads, output, WebSocket queues); 0 =
                                                 automatic: 256 MiB, or a quarter of the
                                                 cgroup's memory limit when lower */
    } limits;
    struct {
        uint64_t header_ms;    /* to receive a complete request head -> 408 */
        uint64_t body_ms;      /* between body bytes -> 408 */
        uint64_t keepalive_ms; /* idle between requests; 0 = no keep-alive */
        uint64_t write_ms;     /* without send progress -> close */
        uint64_t handler_ms;   /* a handler, from the request head to the start of the
                                  response; 0 = no deadline */
        uint64_t pool_wait_ms; /* for room in the full pool queue, then 503 with
                                  Retry-After; 0 = answer 503 at once */
        uint64_t drain_ms;     /* graceful shutdown: in-flight requests get this long */
    } timeouts;
    struct {
        int level;    /* CIO_LOG_* from cio.h: 0 error, 1 warn, 2 info, 3 debug */
        char *access; /* "-" = stderr, "off", or a file path (opened for append) */
        int format;   /* CIO_CONFIG_LOG_*: the access log's format */
        char *error;  /* the process's error/info log: "-" = stderr, or a file path
                         (opened for append); never "off" */
    } log;
    struct {
        uint64_t max_message_bytes; /* a client's message after decompression; over it the
                                       connection is closed with 1009; 1..1 GiB */
        uint64_t ping_interval_ms;  /* ping a connection idle this long; 0 = never */
        uint64_t idle_timeout_ms;   /* close a connection nothing arrived from (no message, no
                                       pong) for this long; 0 = never; when both are set,
                                       greater than ping_interval_ms */
        uint64_t send_queue_bytes;  /* bound of one connection's send queue; over it a
                                       subscriber is closed with 1008; at least
                                       max_message_bytes + 14 (the largest frame header) */
        /* Allowed values of the Origin header, none = any origin: each the RFC 6454
         * serialisation "scheme://host[:port]" (http or https) in its canonical form
         * (scheme and host in lower case, no default port: "https://example.com:443" is
         * stored as "https://example.com"), or "null". The server is to compare them
         * with the header case-insensitively. Strings owned by the config. */
        char *origins[CIO_CONFIG_MAX_ORIGINS];
        size_t norigins;
        bool compression; /* negotiate permessage-deflate when the client offers it */
        uint64_t compression_window_bits; /* 9..15: the LZ77 window of both sides (zlib's
                                             memory per connection in use) */
    } websocket;
    /* The cluster's members, identical on every member, this server among them
     * (found by discovery); none = standalone. Owned by the config (NULL when
     * empty); a file that sets "servers" replaces the whole list. */
    cio_server_entry *servers;
    size_t nservers; /* 0..CIO_CONFIG_MAX_SERVERS */
    struct {
        uint64_t interval_ms;        /* between two rounds of queries to the servers */
        uint64_t window_ms;          /* how long discovery searches for this server;
                                        0 = search forever */
        uint64_t request_timeout_ms; /* one query (GET /server_id) */
        bool require_self;           /* when the window ends without finding this server,
                                        exit non-zero instead of serving on without it */
    } discovery;
    struct {
        uint64_t stall_ms; /* /healthz answers 503 when the loop has not completed a
                              turn for this long: 100..3600000 */
    } health;
    struct {
        uint64_t slow_ms; /* log a coroutine that runs this long without awaiting;
                             0..60000, 0 = off */
    } debug;
} cio_config;

/* "pool_priority": "low" (default: nice 19), "idle" (SCHED_IDLE), "normal". */
enum { CIO_CONFIG_POOL_LOW, CIO_CONFIG_POOL_IDLE, CIO_CONFIG_POOL_NORMAL };

/* "log.format": "combined" (default: the Apache/nginx combined format), "json". */
enum { CIO_CONFIG_LOG_COMBINED, CIO_CONFIG_LOG_JSON };

/* What the command line asked for. */
typedef enum cio_config_action {
    CIO_CONFIG_RUN,   /* run the daemon */
    CIO_CONFIG_CHECK, /* --check-config: validate and exit 0 */
    CIO_CONFIG_VERSION,
    CIO_CONFIG_HELP,
} cio_config_action;

/* Fills c with the built-in defaults:
 *   listen ["0.0.0.0:8080"] (proxy_protocol false), admin_listen [] (none), root NULL,
 *   serve_dotfiles false, pool_threads 0, pool_queue 1024, pool_priority "low",
 *   workers 1, daemon false, pidfile NULL, user NULL, group NULL,
 *   limits {max_connections 100000, max_header_bytes 8192, max_uri_bytes 8192,
 *           max_body_bytes 1048576, max_requests_per_connection 0,
 *           max_connections_per_ip 0, max_buffered_bytes 0},
 *   timeouts {header_ms 10000, body_ms 30000, keepalive_ms 75000, write_ms 30000,
 *             handler_ms 60000, pool_wait_ms 1000, drain_ms 10000},
 *   log {level "info", access "-", format "combined", error "-"},
 *   websocket {max_message_bytes 1048576, ping_interval_ms 30000, idle_timeout_ms 120000,
 *              send_queue_bytes 2097152, origins [] (any), compression true,
 *              compression_window_bits 12},
 *   servers [] (standalone),
 *   discovery {interval_ms 1000, window_ms 60000, request_timeout_ms 1000,
 *              require_self false},
 *   health {stall_ms 5000},
 *   debug {slow_ms 100}. */
void cio_config_defaults(cio_config *c);

/* Applies the JSON file at path on top of c. Unknown keys and wrong types are
 * errors naming the key ("limits.max_body_bytes: expected a non-negative
 * integer"); syntax errors give "path:line:column: message". Returns 0 or
 * -EINVAL (err holds one line, no trailing newline). */
int cio_config_load_file(cio_config *c, const char *path, char *err, size_t errlen);

/* Applies a JSON document held in memory (same rules; 'name' is used in
 * messages in place of a path). */
int cio_config_load_string(cio_config *c, const char *json, const char *name, char *err,
                           size_t errlen);

/* Checks cross-field rules (ranges, root is a directory, websocket timeouts and
 * queue against each other, origins well-formed and distinct, servers
 * well-formed, with a port and distinct, admin_listen apart from listen, user
 * and group exist, ...). 0 or -EINVAL with "key: message"
 * ("root: /x: not a directory"). A bare server whose port is still 0 is an
 * error: call cio_config_resolve_bare_servers first. */
int cio_config_validate(const cio_config *c, char *err, size_t errlen);

/* Gives every bare entry of c->servers the port of c->listen[0] (0 when there
 * is no listen address), replacing the port it had, so it may be called again
 * after the listen list changed. Entries written with a port are left alone.
 * cio_config_from_args calls it after the flags; a caller that uses
 * cio_config_load_file or _load_string directly calls it before validating. */
void cio_config_resolve_bare_servers(cio_config *c);

/* The whole command line: defaults, then --config FILE, then the other flags
 *   corio [--config FILE] [--listen ADDR:PORT]... [--admin-listen ADDR:PORT]...
 *         [--root DIR] [--log-level L] [--access-log FILE|-|off] [--error-log FILE|-]
 *         [--server HOST[:PORT]]... [--require-self] [--workers N] [--daemon]
 *         [--pidfile FILE] [--user NAME] [--group NAME]
 *         [--check-config] [--version] [--help]
 * (flags override the file; repeated --listen, --admin-listen or --server
 * replaces the file's list), then bare servers get the port of the first listen address, then
 * validation. Returns 0 with *action set, or -EINVAL with a one-line message.
 * A validation error names the flag that set the offending value ("--root: /x:
 * not a directory"), or else the file if one was given ("corio.json: root: /x:
 * not a directory"). */
int cio_config_from_args(cio_config *c, int argc, char **argv, cio_config_action *action, char *err,
                         size_t errlen);

/* Parses "IPv4:port", "[IPv6]:port", "*:port" (0.0.0.0) or "localhost:port"
 * (127.0.0.1); port 0..65535 (0 = any free port). 0 or -EINVAL. */
int cio_listen_parse(const char *text, cio_listen *out);

/* One setting that differs between two configurations. */
typedef struct cio_config_change {
    const char *key; /* the leaf key: "log.level", "limits.max_connections",
                        "timeouts.drain_ms", "listen", ... (a static string) */
    bool restart;    /* the running daemon cannot apply it: only a restart does */
} cio_config_change;

/* Lists what differs between the running configuration a and a new one b (for
 * SIGHUP), one entry per leaf key in a fixed order (that of the defaults
 * above), at most max entries in out (which may be NULL when max is 0).
 * Returns how many keys differ, which may exceed max. The lists (listen,
 * admin_listen, servers, websocket.origins) compare element by element, each
 * one key; listen addresses by address, port and proxy_protocol, not by text.
 * Applied live (restart false): root, serve_dotfiles, limits.*, timeouts.*,
 * log.level, log.access, log.format, websocket.*, health.stall_ms,
 * debug.slow_ms. Everything else needs a restart: listen, admin_listen,
 * pool_threads, pool_queue, pool_priority, workers, daemon, pidfile, user, group,
 * log.error, servers, discovery.*. Pure: neither config is changed. */
size_t cio_config_diff(const cio_config *a, const cio_config *b, cio_config_change *out,
                       size_t max);

/* Frees what c owns (strings, websocket.origins, servers). c may then be reused with
 * cio_config_defaults. */
void cio_config_free(cio_config *c);

/* Usage text for --help. */
void cio_config_usage(FILE *out, const char *argv0);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif /* CIO_CONFIG_H */
