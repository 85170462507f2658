/*
 * ws_internal.h - what the files of proto's WebSocket share.
 */
#ifndef CIO_WS_INTERNAL_H
#define CIO_WS_INTERNAL_H

#include "cio_ws.h"
#include "ws_deflate.h"
#include "ws_frame.h"

/* ws_handshake.c */

typedef struct ws_handshake {
    cio_str key;             /* Sec-WebSocket-Key, checked */
    const char *subprotocol; /* chosen from the server's list, or NULL */
} ws_handshake;

/* Checks the client's opening handshake (RFC 6455 4.2.1) against o.
 * Returns 0 with *hs filled, or the status to answer: 400, 403 (Origin not
 * allowed) or 426 (a missing or other Sec-WebSocket-Version). */
int ws_handshake_check(cio_http_req *req, const cio_ws_opts *o, ws_handshake *hs);

/* Sec-WebSocket-Accept for a key: base64 of SHA-1(key + GUID), 28
 * characters and a NUL. */
void ws_accept_key(cio_str key, char out[29]);

/* ws_pubsub.c and ws_conn.c: subscriptions */

typedef struct ws_topic ws_topic;

/* One connection's subscription to one topic: in both lists. */
typedef struct ws_sub {
    cio_list topic_link; /* in the topic's subscribers */
    cio_list ws_link;    /* in the connection's subscriptions */
    cio_ws *ws;
    cio_ws_topics *topics;
    ws_topic *topic;
} ws_sub;

/* ws_conn.c */
/* A new subscription of ws (linked into the connection's list only). */
ws_sub *ws_sub_add(cio_ws *ws, cio_ws_topics *t, ws_topic *tp);
ws_sub *ws_sub_find(cio_ws *ws, const ws_topic *tp);
/* Unlinks s from its connection and frees it. */
void ws_sub_free(ws_sub *s);
/* The topic is going: s is unlinked from the topic already; frees it. */
void ws_sub_detach(ws_sub *s);
/* Whether ws takes messages (open, not closing). */
bool ws_can_send(const cio_ws *ws);
/* Whether ws can take the shared compressed frame of a broadcast. */
/* The window of the one compressed frame a topic makes for all subscribers
 * whose connection allows it (no server context takeover, a window at least
 * this large). */
#define WS_SHARED_WINDOW_BITS 12
bool ws_shares_deflated(const cio_ws *ws);
/* Queues bytes [off, off + n) of a framed segment on ws, within its bound
 * (over it: ws is closed with 1008). 0 or -errno. */
int ws_queue_seg(cio_ws *ws, cio_seg *seg, size_t off, size_t n);

/* Keeps ws allocated after its connection closed, until ws_release (a task
 * of the coroutine API still refers to it). */
void ws_hold(cio_ws *ws);
void ws_release(cio_ws *ws);
/* Stops (or resumes) reading from the peer: TCP then pushes back. */
void ws_read_pause(cio_ws *ws, bool pause);
/* The coroutine API's state of a connection (ws_task.c). */
void ws_set_task(cio_ws *ws, void *task);
void *ws_task_of(const cio_ws *ws);
/* The route's max_message_bytes. */
size_t ws_max_message(const cio_ws *ws);

/* ws_pubsub.c */
/* Unlinks s from its topic (dropping the topic when it was the last). */
void ws_sub_unlink(ws_sub *s);

#endif
