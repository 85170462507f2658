/*
 * cio_ws.h - WebSocket (RFC 6455, permessage-deflate RFC 7692) on corio's
 * runtime, reached through an HTTP route that accepts the upgrade.
 *
 * CONNECTIONS. After the handshake the HTTP connection hands its transport
 * over (cio_http_upgrade). A WebSocket connection is driven by the
 * transport's callbacks, outside any task: an idle one holds no coroutine
 * stack and no receive buffer, only its small struct. Messages are handed to
 * the handler's callbacks whole (fragments reassembled, text validated as
 * UTF-8, decompressed), or received by a task with cio_ws_recv().
 *
 * SENDING goes through the connection's send queue: a message is framed
 * (and compressed, when negotiated) into it; a frame published to a topic is
 * encoded once and queued by reference on every subscriber. A connection
 * whose queue exceeds its bound (a client that stopped reading) is closed
 * with 1008.
 */
#ifndef CIO_WS_H
#define CIO_WS_H

#include "cio_http.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the public API: see LIBRARY in cio.h */

typedef struct cio_ws cio_ws;

/* Close codes (RFC 6455 7.4.1). */
enum {
    CIO_WS_NORMAL = 1000,
    CIO_WS_GOING_AWAY = 1001,
    CIO_WS_PROTOCOL_ERROR = 1002,
    CIO_WS_UNSUPPORTED = 1003,
    CIO_WS_NO_STATUS = 1005, /* not sent: the peer's close had no code */
    CIO_WS_ABNORMAL = 1006,  /* not sent: the connection ended without a close */
    CIO_WS_INVALID_DATA = 1007,
    CIO_WS_POLICY = 1008,
    CIO_WS_TOO_BIG = 1009,
    CIO_WS_INTERNAL_ERROR = 1011,
    CIO_WS_TRY_AGAIN_LATER = 1013, /* overloaded: the memory budget stayed full */
};

#define CIO_WS_MAX_SUBPROTOCOLS 255 /* cio_ws_accept refuses more (-EINVAL) */

/* A route's options. Fill them with cio_ws_opts_defaults() first: zero is
 * not "default" here. They must stay valid as long as connections accepted
 * with them live (route options usually live as long as the server). */
typedef struct cio_ws_opts {
    uint64_t max_message_bytes; /* after decompression; over it: close 1009 (default 1 MiB) */
    uint64_t send_queue_bytes;  /* bound of the send queue; over it: close 1008 (default
                                   2 MiB, at least max_message_bytes + 14) */
    cio_time ping_interval;     /* ping a connection idle this long (default 30 s; CIO_NEVER
                                   = never) */
    cio_time idle_timeout;      /* close one that sent nothing, not even a pong, this long
                                   (default 120 s; CIO_NEVER = never) */
    cio_time close_timeout;     /* for the peer's close after ours, then TCP close (5 s) */
    cio_time write_timeout;     /* each 64 KiB of output must leave within it (30 s) */
    const char *const *origins; /* allowed Origin values (RFC 6454 form, compared
                                   case-insensitively); NULL or none = any */
    size_t norigins;
    const char *const *subprotocols; /* offered by the server, in its order of preference */
    size_t nsubprotocols;            /* at most CIO_WS_MAX_SUBPROTOCOLS */
    bool compression;   /* negotiate permessage-deflate when offered */
    uint8_t deflate_window_bits; /* 9..15: the LZ77 window both sides may use (the
                                    server's announced, the client's asked for when
                                    its offer allows). zlib's memory per connection
                                    with streams in use: ~40 KiB at 12 (default),
                                    ~180 KiB at 15; 12 or more lets pub/sub share
                                    one compressed frame; 0 = 15) */
    bool shared_frames; /* a pub/sub route: negotiate server_no_context_takeover,
                           so one compressed broadcast frame serves everyone */
    cio_budget *budget; /* counts partial messages and send queues (a shared frame
                           once per queue it waits in); while it is full, a
                           connection in the middle of a message stops being
                           read. NULL: not counted */
} cio_ws_opts;

/* The defaults: max_message_bytes 1 MiB, send_queue_bytes 2 MiB, ping
 * every 30 s, idle timeout 120 s, close timeout 5 s, write timeout 30 s, any
 * origin, no subprotocols, compression on. */
void cio_ws_opts_defaults(cio_ws_opts *o);

/* The handler of a route's connections (callback API). Every callback runs
 * on the loop, outside any task; it must not await. */
typedef struct cio_ws_handler {
    /* The connection is open (the 101 went out). Optional. */
    void (*on_open)(cio_ws *ws, void *ud);
    /* A complete message: text (valid UTF-8) or binary; data is valid during
     * the call. */
    void (*on_message)(cio_ws *ws, void *ud, bool binary, const uint8_t *data, size_t len);
    /* The connection is gone: code is the peer's close code (or 1006 when it
     * went without a close), reason its text. The last call; ws is freed
     * after it. Also when the connection went before on_open. Optional. */
    void (*on_close)(cio_ws *ws, void *ud, int code, cio_str reason);
} cio_ws_handler;

/* From a route's handler: checks the handshake and, if it is good, accepts
 * the upgrade (101 with Sec-WebSocket-Accept, the chosen subprotocol and
 * extensions); the connection then belongs to h with ud. A bad handshake is
 * answered here: 426 with "Sec-WebSocket-Version: 13" for a missing or other
 * version, 403 for an Origin not allowed, 400 for anything else. Returns 1
 * when accepted (h->on_close(ud) then comes exactly once, even if the
 * connection goes before it opened), 0 when refused (answered), or -errno.
 * opts may be NULL (defaults). */
int cio_ws_accept(cio_http_req *req, const cio_ws_opts *opts, const cio_ws_handler *h, void *ud);

/* ---- coroutine API ------------------------------------------------------------------- */

/* Like cio_ws_accept, but the connection is served by a task running
 * fn(ws, arg) once it is open, which awaits messages with cio_ws_recv() and
 * sends with cio_ws_send(). When fn returns, the connection is closed (1000,
 * or 1011 if it returned < 0). The task holds a coroutine stack for its
 * lifetime: the callback API is the one for many idle connections. Returns
 * 1 (accepted), 0 (refused, answered) or -errno. */
int cio_ws_accept_task(cio_http_req *req, const cio_ws_opts *opts,
                       intptr_t (*fn)(cio_ws *ws, void *arg), void *arg);

/* A received message, valid until the next cio_ws_recv() or the task's end. */
typedef struct cio_ws_msg {
    const uint8_t *data;
    size_t len;
    bool binary;
} cio_ws_msg;

/* [awaits] The next message (in the task of cio_ws_accept_task). While the
 * task has not taken the messages that arrived, the connection stops
 * reading. 0, -EPIPE once the connection is closed (cio_ws_close_code()
 * tells the peer's code), -ETIMEDOUT, -ECANCELED, or -EINVAL (not a task's
 * connection). */
int cio_ws_recv(cio_ws *ws, cio_ws_msg *msg, cio_time deadline);

/* After cio_ws_recv() returned -EPIPE: the peer's close code (1006: none). */
int cio_ws_close_code(const cio_ws *ws);

/* Sends a whole message (text must be valid UTF-8: the caller's promise).
 * Copied into the send queue: 0, -EPIPE once closing, -EMSGSIZE, or
 * -ENOBUFS when the queue's bound is reached (the connection is then closed
 * with 1008). */
int cio_ws_send(cio_ws *ws, bool binary, const void *data, size_t len);

/* Starts the close handshake with code (1000..4999, not 1004..1006, 1015)
 * and a reason of at most 123 bytes. 0, -EINVAL or -EPIPE (already
 * closing). The connection ends after the peer's close or the close
 * timeout; on_close follows. */
int cio_ws_close(cio_ws *ws, int code, const char *reason);

/* ---- pub/sub ---------------------------------------------------------------------------- */

/* A set of named topics (rooms), used on one loop. */
typedef struct cio_ws_topics cio_ws_topics;

int cio_ws_topics_create(cio_ws_topics **out);
/* Frees the set; connections still subscribed simply lose the subscription. */
void cio_ws_topics_destroy(cio_ws_topics *t);

/* Subscribes ws to topic name (created on first use; idempotent). A
 * connection's subscriptions end with it. 0 or -ENOMEM. */
int cio_ws_subscribe(cio_ws *ws, cio_ws_topics *t, const char *name);
/* 0, or -ENOENT if ws was not subscribed. */
int cio_ws_unsubscribe(cio_ws *ws, cio_ws_topics *t, const char *name);
/* Subscribers of topic name now. */
size_t cio_ws_subscribers(cio_ws_topics *t, const char *name);

/* Sends a message to every subscriber of topic name but except (NULL:
 * all). It is framed once into a shared segment queued by reference on each
 * subscriber (and compressed once for those whose connection negotiated no
 * server context takeover); a subscriber whose queue would pass its bound is
 * closed with 1008. Returns the number of subscribers it was queued on, or
 * -ENOMEM. */
int cio_ws_publish(cio_ws_topics *t, const char *name, bool binary, const void *data, size_t len,
                   cio_ws *except);

/* Topics that span loops: a group holds one member topic set per loop (a
 * multi-loop process's workers). A message published to any member also
 * reaches the subscribers of the others: its frames are made once, marked
 * shared (cio_seg_share) and posted by reference to each other loop that
 * has topics at all, which queues them on its own subscribers (one post
 * per loop, none per subscriber; a loop makes its own compressed frame if
 * the publisher's had no use for one). A loop that falls 64 MiB of posted
 * frames behind loses the excess, counted in cio_ws_topic_group_dropped.
 * cio_ws_subscribers counts the calling member's subscribers only.
 * Lifetime: create the group before its members and destroy it after every
 * member's loop has ended; a member is destroyed on its own loop, after
 * which messages still on their way to it are dropped. */
typedef struct cio_ws_topic_group cio_ws_topic_group;

/* A group for n members. 0, -EINVAL (n == 0) or -ENOMEM. */
int cio_ws_topic_group_create(size_t n, cio_ws_topic_group **out);
/* Frees the group (every member destroyed, every member's loop ended). */
void cio_ws_topic_group_destroy(cio_ws_topic_group *g);
/* Member i (0 <= i < n) of g, for the calling thread's loop: the topic set
 * used there as any other (destroy it with cio_ws_topics_destroy). 0,
 * -EINVAL (no loop, i out of range or taken) or -ENOMEM. Thread-safe. */
int cio_ws_topics_create_member(cio_ws_topic_group *g, size_t i, cio_ws_topics **out);
/* Messages a member could not be sent (it was 64 MiB behind, or memory
 * ran out). Thread-safe. */
uint64_t cio_ws_topic_group_dropped(const cio_ws_topic_group *g);

/* The same from any thread: the message is copied and published on loop,
 * which must own t. 0 or -ENOMEM. */
int cio_ws_publish_post(cio_loop *loop, cio_ws_topics *t, const char *name, bool binary,
                        const void *data, size_t len);

/* The subprotocol chosen in the handshake, or an empty string. */
const char *cio_ws_subprotocol(const cio_ws *ws);
/* Whether permessage-deflate was negotiated. */
bool cio_ws_compressed(const cio_ws *ws);
/* Bytes the connection holds beyond its own struct: its receive and send
 * state with buffers and queued output (only while a frame or message is
 * coming in or output is queued), and zlib's streams (freed when unused
 * for 2 s) and the windows kept for them. 0 for an idle connection without
 * compression. */
size_t cio_ws_memory(const cio_ws *ws);

/* WebSocket counters of the calling thread's loop (one loop per thread:
 * a multi-loop process sums its loops'). */
typedef struct cio_ws_stats {
    uint64_t open;         /* connections open now */
    uint64_t accepted;     /* connections opened since start */
    uint64_t messages_in;  /* complete messages received */
    uint64_t messages_out; /* data messages queued to send (a broadcast: one per subscriber) */
} cio_ws_stats;

void cio_ws_stats_get(cio_ws_stats *out);
/* The handler's ud (may be changed with cio_ws_set_userdata in on_open). */
void *cio_ws_userdata(const cio_ws *ws);
void cio_ws_set_userdata(cio_ws *ws, void *ud);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif /* CIO_WS_H */
