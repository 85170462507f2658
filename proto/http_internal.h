/*
 * http_internal.h - what the files of proto/http share.
 *
 * Memory per connection: an idle connection is a cio_http_conn (the socket
 * transport, a timer, counters) and nothing else. Everything a request needs
 * (parser, input buffers, the send queue, the request view, its arena, the
 * task) hangs off conn->act, which exists only while bytes are buffered, a
 * request is being handled or a response is being sent.
 */
#ifndef CIO_HTTP_INTERNAL_H
#define CIO_HTTP_INTERNAL_H

#include <pthread.h>
#include "cio_http.h"

#include <assert.h>
#include <llhttp.h>

#define CIO_HTTP_MAX_PARAMS 8

typedef struct http_span {
    uint32_t off, len; /* into act->in */
} http_span;

typedef struct http_header {
    http_span name, value;
} http_header;

/* ---- http_parse.c: the llhttp glue of requests and responses ------------------ */

/* The header fields of the message being parsed, as spans into its input. */
typedef struct http_fields {
    http_header *hdrs;
    uint32_t n, cap;
    uint32_t name_len;      /* bytes of the field name being parsed */
    uint32_t trailer_bytes; /* the trailer section so far (its fields are not kept) */
    bool in_value;          /* the last callback was a value: a new field starts */
} http_fields;

/* A chunked body's framing as it is dropped (http_drop_framing). */
typedef struct http_chunks {
    uint32_t frame_run; /* framing bytes since the last body data */
    uint32_t data_end;  /* where the last body data of this read ended */
    bool data_seen;     /* this read carried body data */
    bool trailers;      /* past the last chunk: the trailer section */
} http_chunks;

#define HTTP_CHUNK_LINE_MAX 4096 /* chunk framing between two pieces of data */

enum { HTTP_FIELD_OTHER, HTTP_FIELD_HOST, HTTP_FIELD_LENGTH, HTTP_FIELD_TE, HTTP_FIELD_EXPECT };

/* The llhttp callbacks' work (base: the first byte of the input the spans
 * count from). Each returns 0 or the HTTP status of what is wrong. */
/* on_header_field: a piece of a field name. 0 or 503 (no memory). */
int http_field_name(http_fields *f, const char *base, const char *at, size_t len);
/* on_header_field_complete: 0, or 400 for an empty name or bytes between
 * the name and its colon. A trailer's name is not kept. */
int http_field_name_done(http_fields *f, const char *base, bool trailer);
/* on_header_value: 0, or 400 for obsolete line folding. */
int http_field_value(http_fields *f, const char *base, const char *at, size_t len);
/* on_header_value_complete: trims the value's trailing whitespace and
 * returns the complete field. */
http_header *http_field_value_done(http_fields *f, const char *base);
/* HTTP_FIELD_*: the fields that decide framing and routing. */
int http_field_kind(const char *base, const http_header *h);
/* A trailer field's bytes, against max: 0 or 431. */
int http_trailer_bytes(http_fields *f, size_t len, uint64_t max);
/* The input's bytes moved down by 'by': the spans follow. */
void http_fields_shift(http_fields *f, uint32_t by);
/* Faulty framing (RFC 9112 6.1, 6.3) that llhttp does not catch entirely. */
bool http_framing_bad(bool has_te, bool has_length, int minor, bool chunked);
/* on_body: gathers body data right after the head (at head_end), closing the
 * gaps chunk framing left. */
void http_body_add(char *in, http_span *body, uint32_t head_end, http_chunks *ck, const char *at,
                   size_t len);
/* After a read of a chunked body: drops the framing parsed past keep (the
 * end of the body so far), so that the input holds the head, the body and
 * at most one read; bounds the framing between two pieces of data, and the
 * trailer section (max_trailer). 0, or 400/431. */
int http_drop_framing(cio_buf *in, uint32_t *parsed, uint32_t keep, http_chunks *ck,
                      uint64_t max_trailer);

typedef struct http_route {
    struct http_route *next;
    char method[16];
    uint8_t method_len;
    bool is_get;
    char **segs; /* literal segment, or ":name" */
    uint16_t *seg_len;
    size_t nsegs;
    cio_http_handler fn;
    void *ud;
    bool stream; /* the handler starts at the head and reads the body (cio_http_read) */
    char *name;  /* "GET /users/:id": the handler's task is named so (diagnostics) */
} http_route;

typedef struct http_listener {
    cio_listener ls;
    cio_http_server *srv;
    bool proxy; /* connections start with a PROXY protocol header */
} http_listener;

/* Open connections per client address (http_addrs.c). Servers on several
 * loops may share one (cio_http_server_share_addrs): every call takes its
 * lock, uncontended on one loop (~20 ns, and only with the limit set). */
typedef struct http_addrs {
    pthread_mutex_t lock;
    struct http_addr **buckets;
    size_t nbuckets, nentries;
    uint64_t seed;
} http_addrs;

void http_addrs_init(http_addrs *t);

/* Counts one more connection from addr (4 bytes for AF_INET, 16 for
 * AF_INET6): 1, or 0 when the address already has limit of them (nothing
 * counted), or -ENOMEM. */
int http_addrs_take(http_addrs *t, uint8_t family, const uint8_t *addr, uint64_t limit);
/* One connection from addr is gone. */
void http_addrs_put(http_addrs *t, uint8_t family, const uint8_t *addr);
uint32_t http_addrs_count(http_addrs *t, uint8_t family, const uint8_t *addr);
void http_addrs_fini(http_addrs *t);

struct cio_http_server {
    cio_loop *loop;
    cio_http_opts o;
    int root_fd; /* O_PATH directory of the document root, or -1 */
    http_route *routes;
    http_listener **listeners;
    size_t nlisteners;
    cio_list conns;
    uint64_t nconns;
    bool shutting, accept_paused;
    cio_event drained;        /* shutting down and no connection left */
    size_t listeners_closing; /* closes whose last completion is not in yet */
    cio_event listeners_closed;
    cio_http_stats st;
    cio_http_metrics *metrics; /* responses by method and status, durations */
    http_addrs addrs;          /* when max_conns_per_addr is set */
    http_addrs *addrs_used;    /* &addrs, or a table shared with another loop's server */
    cio_timer refused_timer;   /* logs the refusals of the last interval */
    uint64_t refused_unlogged; /* refused since the last line */
    char refused_last[48];     /* the last address refused */
    cio_budget *budget;        /* o.budget, or NULL */
    cio_timer budget_timer;    /* logs the budget's refusals of the last interval */
    uint64_t budget_refused_logged, budget_paused_logged;
    llhttp_settings_t settings;
    char server_hdr[64];
    size_t server_hdr_len;
    char allow_all[128];          /* every method some route or the root answers */
    struct http_active *act_free; /* request states kept for reuse */
    unsigned nact_free;
    /* Date and access-log time, formatted once per second. */
    int64_t clock_sec;
    char date[30];
    char clf_time[32];
    char iso_time[24]; /* for the JSON access log */
};

/* Response state of the request being handled. */
enum { RESP_NONE, RESP_STREAMING, RESP_DONE };

struct cio_http_req {
    cio_http_conn *conn;
    /* parsed request (offsets into act->in while being parsed) */
    uint8_t method;
    uint8_t minor;
    bool complete, head_done, expect_continue, keep_alive, upgrade;
    bool version_seen;
    bool has_length, has_te; /* Content-Length / Transfer-Encoding fields seen */
    bool resolved;           /* target split, path normalised, route looked up */
    bool streaming;          /* the handler runs while the body arrives */
    uint16_t route_status;   /* what resolving found, when done at the head: 404, 405... */
    uint16_t err_status;
    uint32_t start;     /* offset of the request's first byte in act->in */
    uint32_t head_end;  /* offset just past the head (requests with a body) */
    http_chunks ck;     /* a chunked body's framing */
    http_span method_s, url, body;
    http_fields f; /* header fields */
    uint64_t content_length; /* as announced */
    uint64_t body_total;     /* body bytes received (streamed: read or not) */
    uint32_t body_read;      /* buffered body: bytes cio_http_read() has returned */
    const char *head_base;   /* streamed: the head's spans point here (an arena copy) */
    uint32_t host_count;
    cio_time head_time; /* when the head was complete: the handler deadline counts from it */
    /* after resolving: stable views for the handler */
    cio_str path;    /* percent-decoded, dot segments removed, slashes merged */
    http_span query; /* as sent: an offset like the other spans, so that it
                        survives the input buffer growing or moving */
    const http_route *route;
    const char *allow; /* a 405 found before the body: the path's methods (arena) */
    cio_str params_name[CIO_HTTP_MAX_PARAMS], params_val[CIO_HTTP_MAX_PARAMS];
    unsigned nparams;
    cio_scope *scope; /* the handler's scope while it runs (deadline, client gone) */
    /* response */
    uint8_t resp_state;
    bool chunked, close_delimited, head_only;
    int status;
    uint64_t bytes_sent; /* body bytes, for the access log */
    int64_t body_left;   /* streamed with a length: bytes still to write */
    cio_buf extra;       /* added headers, "Name: value\r\n"... */
    cio_arena arena;
};

typedef struct http_active {
    struct http_active *next_free; /* in the server's cache of request states */
    llhttp_t parser;
    cio_buf in; /* received bytes: [0, parsed) seen by the parser */
    uint32_t parsed;
    cio_buf pend; /* received while 'in' is pinned by a running handler */
    bool pinned, reading_paused;
    bool deadline_due; /* the state deadline passed while output was in flight */
    bool budget_paused; /* reading stopped until the budget has room */
    bool rcvbuf_small;  /* its socket's receive buffer was shrunk for the budget */
    bool unread_body;   /* a streamed body was left unread: linger before closing */
    cio_task *task;
    cio_event body_ev;  /* streamed body: data, its end or an error arrived */
    size_t charged;     /* bytes charged to the server's budget */
    size_t reserve;     /* a buffered body admitted: its announced length */
    cio_budget_waiter bwait;
    cio_sendq sq; /* the output */
    cio_http_req req;
} http_active;

/* Connection states (what the timer means). */
enum {
    C_IDLE,      /* keep-alive, waiting for the next request */
    C_HEAD,      /* a request head is arriving: header timeout */
    C_BODY,      /* a body is arriving: body timeout */
    C_HANDLING,  /* a task runs the handler(s) */
    C_LINGER,    /* response sent, discarding input before close */
    C_SWITCHING, /* a 101 accepted an upgrade: waiting for it to go out */
    C_UPGRADED,  /* the transport belongs to another protocol (up, up_ud) */
    C_CLOSING,
};

struct cio_http_conn {
    cio_socket_transport sock; /* the socket transport, when accepted from a listener */
    cio_transport *tp;
    cio_http_server *srv;
    cio_list link;
    cio_timer timer;
    http_active *act;
    uint32_t nreq;
    uint8_t state;
    bool close_after; /* close once the output is flushed; read nothing more */
    bool peer_eof;
    bool started;
    uint8_t rfamily; /* remote address, read at accept for the access log and limits */
    uint8_t raddr[16];
    bool addr_counted; /* in srv->addrs */
    bool proxy_wait;   /* its PROXY protocol header has not been read yet */
    const cio_http_upgrade_ops *up; /* the protocol an upgrade handed over to */
    void *up_ud;
};
/* Every connection, idle ones included, is this struct: keep it within a
 * 224-byte malloc chunk. */
static_assert(sizeof(struct cio_http_conn) <= 216, "cio_http_conn grew");

/* http_conn.c */
void http_settings_init(llhttp_settings_t *s);
/* Moves the connection's charge on the server's budget to what it holds now. */
void http_charge(cio_http_conn *c);
/* Frees the request states the server keeps for reuse. */
void http_act_cache_free(cio_http_server *srv);
void http_conn_close(cio_http_conn *c);
/* Closes once the output is out: lingering when the peer may still send. */
void http_conn_finish_close(cio_http_conn *c);
bool http_conn_is_idle(const cio_http_conn *c);
void http_conn_shutdown(cio_http_conn *c, bool force);
void http_finish_response(cio_http_req *r); /* http_resp.c */
void http_server_conn_added(cio_http_server *srv, cio_http_conn *c);
void http_server_conn_removed(cio_http_server *srv, cio_http_conn *c);
/* A connection's address became known after accept (the PROXY protocol):
 * counted against max_conns_per_addr; false (counted as refused) when the
 * address has its share already: the caller closes it. */
bool http_server_conn_admit(cio_http_server *srv, cio_http_conn *c);
/* The budget refused or paused something: logged once per interval. */
void http_budget_note(cio_http_server *srv);
/* Starts sending what the connection's send queue holds (closing the
 * connection if the transport refuses). */
int http_conn_flush(cio_http_conn *c);
/* [awaits] Above the queue's high watermark, waits until it is down to the
 * low one. 0, -EPIPE once the connection is closing, -ETIMEDOUT/-ECANCELED. */
int http_out_wait(cio_http_conn *c);

/* http_resp.c */
void http_clock_update(cio_http_server *srv);
/* Writes the status line and headers for req into the output. */
int http_write_head(cio_http_req *req, int status, const char *content_type, int64_t length);
/* A complete response with "<status> <reason>" as its text/plain body. */
int http_respond_status(cio_http_req *r, int status);
/* A complete canned error response (text/plain) that closes the connection. */
int http_error_response(cio_http_conn *c, int status);
/* A request is done (its response complete, or given up): counted in the
 * metrics and written to the access log. */
void http_request_done(cio_http_req *req);

/* http_router.c */
/* Splits the request target into path and query, percent-decodes the path,
 * removes dot segments, merges repeated slashes, and finds the route of the
 * method and path. Done once per request (r->resolved). Returns 0 with
 * r->route set (NULL: no route, the document root serves GET or HEAD), or the
 * status to answer: 400 (malformed target), 404, 405 (with *allowed listing
 * the path's methods, comma-separated). copy: the path must not point into
 * the input buffer (which may still grow). */
int http_route_resolve(cio_http_req *r, bool copy, char *allowed, size_t allowed_len);
void http_routes_free(cio_http_server *srv);
/* Recomputes srv->allow_all (for OPTIONS * and 405s raised by the parser). */
void http_allow_all_update(cio_http_server *srv);

/* http_util.c */
bool http_str_ieq(cio_str a, const char *b);
/* The same against a literal, with its length known at compile time. */
bool http_str_ieq_n(cio_str a, const char *b, size_t n);
#define http_str_ieq_lit(a, lit) http_str_ieq_n((a), (lit), sizeof(lit) - 1)
cio_str http_span_str(const cio_http_req *req, http_span s);

/* ---- http_proxy.c ---------------------------------------------------------------- */

/* A PROXY protocol header (v1 or v2) at the start of p[0..n): its length
 * (> 0) with *family (AF_INET, AF_INET6, or 0: keep the connection's own
 * address: UNKNOWN, LOCAL) and addr (the client's) set; 0 while more bytes
 * are needed; -1 when it is not one (the connection is to be closed). */
int http_proxy_parse(const uint8_t *p, size_t n, uint8_t *family, uint8_t addr[16]);

/* ---- http_client.c: the response parser (exposed for the fuzzer) -------------- */

/* One response being received: the whole of it is kept in 'in' (head, then
 * the body gathered right after it, chunk framing dropped). */
typedef struct http_resp_parser {
    llhttp_t parser;
    cio_buf in;
    uint32_t parsed;   /* [0, parsed) seen by llhttp */
    uint32_t start;    /* where the current message began (after 1xx ones) */
    uint32_t head_end; /* just past the final response's head */
    http_fields f;
    http_chunks ck;
    http_span body;
    uint64_t max_bytes, max_head;
    int status, minor;
    int err; /* the first error: -EPROTO, -EMSGSIZE, -ENOMEM */
    bool head_only;       /* the response to a HEAD: no body follows */
    bool head_done, complete, keep_alive, has_te, has_length;
} http_resp_parser;

/* Prepares rp for one response (rp zeroed or finished before). */
void http_resp_init(http_resp_parser *rp, bool head_only, uint64_t max_bytes, uint64_t max_head);
/* Parses the bytes appended to rp->in since the last call. 1 once the
 * response is complete (bytes after it, if any, stay unparsed: the
 * connection cannot be reused), 0 while more is needed, or -errno. */
int http_resp_parse(http_resp_parser *rp);
/* The server closed: 1 if that completes a response whose end is the
 * close, else -EPIPE (or the error already found). */
int http_resp_eof(http_resp_parser *rp);
/* Moves a complete response into *out (which then owns the memory). 0 or -ENOMEM. */
int http_resp_take(http_resp_parser *rp, cio_http_response *out);
void http_resp_fini(http_resp_parser *rp);

#endif
