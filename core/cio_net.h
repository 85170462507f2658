/*
 * cio_net.h - transports (callback-driven byte streams: the socket transport
 * on the ring, the memory transport), the send queue over them, the
 * listener, and buffered streams for tasks.
 */
#ifndef CIO_NET_H
#define CIO_NET_H

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include "cio_buf.h"
#include "cio_sync.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the public API: see LIBRARY in cio.h */

/* ------------------------------------------------------------------------ */
/* Transports: callback-driven byte streams for protocol code                */
/* ------------------------------------------------------------------------ */

/* A transport delivers received bytes to callbacks and sends what it is
 * given, without any task: an idle connection costs only its struct (no
 * stack, no buffer). The socket transport (cio_socket_transport) runs on the ring with a
 * multishot receive into the loop's provided buffers; the memory transport
 * (cio_mem_transport) runs protocol code in tests and fuzzers without sockets.
 *
 * Every callback runs on the loop thread, never inside the transport call
 * that caused it. After close(), on_closed is the last callback; only then
 * may the owner free the memory holding the transport. */
typedef struct cio_transport cio_transport;

typedef struct cio_transport_cbs {
    /* Bytes arrived; data is valid only during the call, and the owner's to
     * use as scratch meanwhile (WebSocket unmasks in place). */
    void (*on_data)(void *ud, uint8_t *data, size_t len);
    /* The peer finished sending (err 0) or the connection failed (err < 0).
     * No more on_data follows. */
    void (*on_eof)(void *ud, int err);
    /* The send() in flight completed: 0 when every byte went out, or -errno. */
    void (*on_sent)(void *ud, int err);
    /* The transport is closed: nothing else will be called. */
    void (*on_closed)(void *ud);
} cio_transport_cbs;

typedef struct cio_transport_ops {
    /* Starts (or resumes) delivering on_data. 0 or -errno. */
    int (*read_start)(cio_transport *t);
    /* Stops receiving (backpressure); read_start resumes. Bytes the kernel
     * had already received may still arrive through on_data. */
    void (*read_stop)(cio_transport *t);
    /* Sends every byte of iov[0..n). One send at a time; the iov array and
     * the bytes must stay valid until on_sent (the array may be modified to
     * track progress). 0 or -errno (then on_sent is not called). */
    int (*send)(cio_transport *t, struct iovec *iov, unsigned n);
    /* Half-closes the sending side (the peer sees end of stream). */
    void (*shutdown_write)(cio_transport *t);
    /* Cancels whatever is in flight and closes; on_closed follows. */
    void (*close)(cio_transport *t);
} cio_transport_ops;

struct cio_transport {
    const cio_transport_ops *ops;
    const cio_transport_cbs *cbs;
    void *ud;
};

/* The socket transport. Embed it; it is owned by whoever embeds it. */
typedef struct cio_socket_transport {
    cio_transport t;
    cio_loop *loop;
    struct msghdr *msg; /* for sendmsg of more than one iovec, allocated then */
    struct iovec *iov;
    int fd;
    uint16_t niov; /* sends of more iovecs are refused (-EINVAL) */
    uint8_t flags;
    uint8_t pending; /* operations whose last completion has not arrived */
    cio_completion recv_comp, send_comp, aux_comp;
    cio_list bufwait_link; /* waiting for provided buffers to re-arm */
} cio_socket_transport;

/* Takes ownership of the connected socket fd (closed by close()). */
void cio_socket_transport_init(cio_socket_transport *s, cio_loop *loop, int fd,
                               const cio_transport_cbs *cbs, void *ud);

/* The in-memory transport, for tests and fuzzers: bytes written with
 * cio_mem_transport_feed() arrive through on_data in a later loop turn, and what
 * the protocol sends is collected in 'out'. */
typedef struct cio_mem_transport {
    cio_transport t;
    cio_loop *loop;
    cio_buf out;            /* everything sent so far */
    cio_buf in;             /* fed but not yet delivered */
    cio_timer timer;        /* delivers input and completions one turn later */
    struct iovec *send_iov; /* the send in flight, completed next turn */
    size_t chunk;           /* deliver input in pieces of at most this size (0 = all) */
    bool reading, eof_pending, eof_sent, write_shut, closing, closed;
} cio_mem_transport;

void cio_mem_transport_init(cio_mem_transport *m, cio_loop *loop, const cio_transport_cbs *cbs,
                            void *ud);
/* Queues bytes for delivery (copied). 0 or -ENOMEM. */
int cio_mem_transport_feed(cio_mem_transport *m, const void *data, size_t len);
/* Queues an end of stream after the fed bytes. */
void cio_mem_transport_feed_eof(cio_mem_transport *m);
/* Frees the buffers; call after on_closed, or when the protocol never ran. */
void cio_mem_transport_fini(cio_mem_transport *m);

/* ------------------------------------------------------------------------ */
/* Send queues                                                               */
/* ------------------------------------------------------------------------ */

#define CIO_SENDQ_IOV 8 /* parts gathered into one send */

/* The output of one connection over a transport: copied bytes and
 * segments, sent in order, in slices of at most 64 KiB gathered into one
 * send each; each slice must leave within the write timeout (which thus
 * measures progress, not the whole output), else on_error runs (the owner
 * closes). Above the high watermark, writers wait until the queue is down to
 * the low one. The owner forwards the transport's on_sent to
 * cio_sendq_sent(). Embedded by the owner; not thread-safe.
 *
 * Batching: what a turn of the loop queues leaves at the end of the turn
 * (cio_sendq_flush_soon, and the slice after a completed one), so that the
 * messages of a whole read, or a burst of broadcasts, share one send. The
 * turn's submissions reach the kernel only at the next turn's enter, so
 * this costs no latency. */
typedef struct cio_sendq {
    cio_transport *tp;
    struct cio__sqpart *parts; /* FIFO ring */
    uint32_t head, count, cap;
    bool open_tail; /* the last part is a chunk none of whose bytes is in flight */
    bool sending, closed;
    size_t queued;   /* bytes not yet sent, those in flight included */
    size_t inflight; /* bytes of the send in flight */
    size_t low, high;
    cio_time write_timeout;
    cio_timer timer; /* the slice in flight's write deadline */
    cio_event room;  /* set when the queue is down to the low watermark */
    /* A slice did not leave within the write timeout (-ETIMEDOUT), or a
     * send started at the end of a turn failed (-errno): the owner closes. */
    void (*on_error)(struct cio_sendq *q, int err);
    cio_list due_link; /* in the loop's list of queues sent at the end of the turn */
    cio_buf spare;     /* a drained chunk, kept for the next one */
    cio_buf *tail_buf; /* the open chunk's buffer (valid while open_tail) */
    struct iovec iov[CIO_SENDQ_IOV];
} cio_sendq;

void cio_sendq_init(cio_sendq *q, cio_transport *tp, size_t low, size_t high,
                    cio_time write_timeout, void (*on_error)(cio_sendq *q, int err));
/* Frees what is queued. Only once the transport cannot touch the bytes any
 * more: after its on_closed, or with nothing in flight. */
void cio_sendq_fini(cio_sendq *q);
/* Attaches an empty queue (nothing queued or in flight) to another
 * transport, keeping its memory for reuse. */
void cio_sendq_reuse(cio_sendq *q, cio_transport *tp);
/* Frees the spare chunk an empty queue kept if it is larger than keep
 * bytes, and a parts ring a burst grew beyond 8 (before the queue is cached
 * for reuse). */
void cio_sendq_trim(cio_sendq *q, size_t keep);
char *cio__sendq_reserve_part(cio_sendq *q, size_t n);

/* Room for n bytes to copy in, at the end of the queue, or NULL (-ENOMEM);
 * then cio_sendq_commit() with the bytes written. */
static inline char *cio_sendq_reserve(cio_sendq *q, size_t n)
{
    if (q->open_tail) {
        cio_buf *b = q->tail_buf;
        if (b->cap - b->len >= n)
            return b->p + b->len;
    }
    return cio__sendq_reserve_part(q, n);
}
static inline void cio_sendq_commit(cio_sendq *q, size_t n)
{
    q->tail_buf->len += n;
    q->queued += n;
}
/* Copies n bytes in. 0 or -ENOMEM. Nothing is sent before a flush. */
int cio_sendq_append(cio_sendq *q, const void *data, size_t n);
/* Queues bytes [off, off + len) of seg by reference (taking one). 0,
 * -EINVAL (out of the segment) or -ENOMEM. */
int cio_sendq_append_seg(cio_sendq *q, cio_seg *seg, size_t off, size_t len);
/* Starts sending what is queued, unless a send is in flight (what is queued
 * meanwhile follows it). 0 or -errno from the transport (nothing is then in
 * flight; the owner closes). */
int cio_sendq_flush(cio_sendq *q);
/* Like cio_sendq_flush, at the end of the loop's turn (at once outside a
 * loop): what else the turn queues joins the same send. A failure then
 * goes to on_error. */
void cio_sendq_flush_soon(cio_sendq *q);
/* The transport's on_sent(err): retires what went out; what is still
 * queued leaves at the end of the turn (cio_sendq_flush_soon). Returns 1
 * when everything queued is out, 0 while more is queued, or -errno (the
 * send failed: the owner closes). */
int cio_sendq_sent(cio_sendq *q, int err);
/* [awaits] Above the high watermark: flushes and waits until the queue is
 * down to the low one. 0, -EPIPE once closed, -ETIMEDOUT or -ECANCELED. */
int cio_sendq_wait_room(cio_sendq *q, cio_time deadline);
/* The connection is closing: nothing more is sent, waiters get -EPIPE. */
void cio_sendq_close(cio_sendq *q);
static inline size_t cio_sendq_pending(const cio_sendq *q)
{
    return q->queued;
}
/* A send is in flight, or due at the end of this turn (between two slices
 * the queue is not idle: its owner must not close or free it). */
static inline bool cio_sendq_busy(const cio_sendq *q)
{
    return q->sending || !cio_list_empty(&q->due_link);
}

/* ------------------------------------------------------------------------ */
/* Budget: a bound on the bytes a process buffers for its peers              */
/* ------------------------------------------------------------------------ */

/* What connections hold for their peers (request heads and bodies, output,
 * partial messages, send queues) is bounded by configuration, not by what
 * peers send. Each owner keeps the amount it has charged and moves it to
 * what it holds now (cio_budget_charge), so a closed connection gives back
 * exactly what it took. The budget itself takes no memory and refuses
 * nothing: its owners ask it. Before buffering a large request they ask
 * cio_budget_admit (a refusal is counted: answer 503); while it is over its
 * limit they stop reading from peers that are sending more (cio_budget_wait)
 * and are woken, oldest first, once it has room again (below 7/8 of the
 * limit), from a timer callback of their own loop (never inside the call
 * that freed the bytes). One loop's: not thread-safe. */
typedef struct cio_budget {
    size_t limit; /* 0: no limit (still counted) */
    size_t used, peak;
    uint64_t refused; /* admissions refused */
    uint64_t paused;  /* waits begun: a peer paused until memory was freed */
    uint64_t waiting; /* waiters now */
    cio_list waiters;
    cio_timer wake;
} cio_budget;

typedef struct cio_budget_waiter {
    cio_list link; /* unlinked (self-linked) when not waiting */
    /* Called once, on the loop, when the budget has room again. */
    void (*fn)(struct cio_budget_waiter *w);
} cio_budget_waiter;

void cio_budget_init(cio_budget *b, cio_loop *loop, size_t limit);
/* Wakes nobody any more; the waiters must have been cancelled. */
void cio_budget_fini(cio_budget *b);
/* Moves an owner's charge from *charged to now bytes (updating *charged).
 * Never fails: bytes already held are counted even past the limit. Safe
 * with b NULL (nothing counted). */
void cio_budget_charge(cio_budget *b, size_t *charged, size_t now);
/* May n more bytes be buffered? false (counted in refused) when that would
 * pass the limit. Charges nothing. true with b NULL. */
bool cio_budget_admit(cio_budget *b, size_t n);
/* Room for n more bytes (nothing counted: for growing what is admitted). */
static inline bool cio_budget_has_room(const cio_budget *b, size_t n)
{
    return !b || !b->limit || (b->used <= b->limit && n <= b->limit - b->used);
}
/* At or past the limit: owners stop reading from peers that send more. */
static inline bool cio_budget_over(const cio_budget *b)
{
    return b && b->limit && b->used >= b->limit;
}
static inline void cio_budget_waiter_init(cio_budget_waiter *w, void (*fn)(cio_budget_waiter *w))
{
    cio_list_init(&w->link);
    w->fn = fn;
}
/* Queues w (not already waiting) to be called once the budget has room. */
void cio_budget_wait(cio_budget *b, cio_budget_waiter *w);
/* Takes w off the queue if it is on it (safe otherwise). */
void cio_budget_cancel(cio_budget *b, cio_budget_waiter *w);
static inline bool cio_budget_waiting(const cio_budget_waiter *w)
{
    return !cio_list_empty(&w->link);
}

/* A listening socket with a multishot accept. */
typedef struct cio_listener {
    cio_loop *loop;
    int fd;
    bool armed, paused, closing;
    bool shared; /* other loops accept on the same socket (cio_listener_adopt) */
    cio_completion comp;
    cio_timer retry; /* re-arms after EMFILE/ENFILE */
    uint64_t backoffs;       /* accepts refused for want of fds or memory since the last report */
    cio_time backoff_logged; /* when that was reported (once per 10 s) */
    void (*on_accept)(struct cio_listener *ls, int fd);
    void (*on_closed)(struct cio_listener *ls);
    void *ud;
} cio_listener;

/* Binds and listens (SO_REUSEADDR; SO_REUSEPORT when reuseport; IPV6_V6ONLY
 * for IPv6) and arms the accept. on_accept receives each new non-blocking,
 * close-on-exec fd and owns it. 0 or -errno. */
int cio_listener_open(cio_listener *ls, cio_loop *loop, const struct sockaddr *addr,
                      socklen_t addrlen, int backlog, bool reuseport,
                      void (*on_accept)(cio_listener *ls, int fd), void *ud);
/* Accepts on fd, a stream socket already bound and listening that was made
 * elsewhere (inherited: systemd's socket activation). shared: listeners of
 * other loops accept on the same socket (each on a dup() of it): then each
 * connection is accepted by one of them, taking turns, with one accept in
 * flight at a time instead of a multishot accept (which would take them
 * all: it stays first in the socket's wait queue). Sets O_NONBLOCK and
 * FD_CLOEXEC on fd. On success the listener owns fd (cio_listener_close
 * closes it); on failure fd stays the caller's. 0, -EINVAL (not a
 * listening stream socket), or -errno (-ENOTSOCK, -EBADF). */
int cio_listener_adopt(cio_listener *ls, cio_loop *loop, int fd, bool shared,
                       void (*on_accept)(cio_listener *ls, int fd), void *ud);
/* Stops accepting (connections wait in the kernel backlog) / resumes. */
void cio_listener_pause(cio_listener *ls);
void cio_listener_resume(cio_listener *ls);
/* Stops and closes; on_closed (optional) runs when the last completion is in. */
void cio_listener_close(cio_listener *ls, void (*on_closed)(cio_listener *ls));
/* The bound address (e.g. to learn the port chosen for port 0). 0 or -errno. */
int cio_listener_address(const cio_listener *ls, struct sockaddr_storage *out, socklen_t *len);

/* ------------------------------------------------------------------------ */
/* Streams: buffered socket reader/writer for tasks                          */
/* ------------------------------------------------------------------------ */

/* Errors: -EPIPE when the peer closed before the request could be met (for
 * reads: end of stream; for writes: peer gone), -ECONNRESET when it reset the
 * connection, -EMSGSIZE when read_until's maximum was reached. */
typedef struct cio_stream {
    int fd;
    uint8_t *rbuf;
    size_t rcap, rstart, rend;
    uint8_t *wbuf;
    size_t wcap, wlen;
    bool eof;
} cio_stream;

/* Wraps fd (not owned: fini does not close it). rbuf_size and wbuf_size are
 * the buffer sizes (0 = 16 KiB). Returns 0 or -ENOMEM. */
int cio_stream_init(cio_stream *s, int fd, size_t rbuf_size, size_t wbuf_size);
void cio_stream_fini(cio_stream *s);

/* [awaits] Reads up to len bytes (buffered bytes first). Returns the count,
 * 0 at end of stream, or -errno. */
ssize_t cio_stream_read(cio_stream *s, void *dst, size_t len, cio_time deadline);

/* [awaits] Reads exactly n bytes. Returns 0, -EPIPE if the stream ended
 * first (the bytes read so far are consumed), or -errno. */
int cio_stream_read_exact(cio_stream *s, void *dst, size_t n, cio_time deadline);

/* [awaits] Reads until delim (dlen bytes) appears within the first max bytes.
 * Returns the length including delim and points *line at the data inside the
 * stream's buffer, valid until the next stream call; the data is consumed.
 * -EMSGSIZE if max bytes came without delim, -EPIPE at end of stream. */
ssize_t cio_stream_read_until(cio_stream *s, const void *delim, size_t dlen, size_t max,
                              const uint8_t **line, cio_time deadline);

/* [awaits] Buffers src, sending when the write buffer fills. 0 or -errno. */
int cio_stream_write(cio_stream *s, const void *src, size_t len, cio_time deadline);
/* [awaits] Sends everything buffered. 0 or -errno; after an error the bytes
 * not yet sent stay buffered, so calling it again repeats nothing. */
int cio_stream_flush(cio_stream *s, cio_time deadline);
/* [awaits] Sends the buffer and then all of src. 0 or -errno; after an error
 * how much of src went out is not known: treat the stream as broken. */
int cio_stream_write_all(cio_stream *s, const void *src, size_t len, cio_time deadline);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif /* CIO_NET_H */
