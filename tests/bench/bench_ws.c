/*
 * bench_ws.c - WebSocket load client on corio's own core: `corio-bench
 * ws-echo`, `corio-bench ws-broadcast` and `corio-bench ws-idle`. A
 * benchmark tool, never a test.
 *
 * One loop (io_uring, SINGLE_ISSUER|DEFER_TASKRUN where the kernel has it)
 * drives every connection. The handshake is the client's own: tasks connect
 * (from 127.0.0.x source addresses when asked), send a raw HTTP upgrade
 * request and check the 101 and its Sec-WebSocket-Accept. Then each socket
 * goes to a socket transport (multishot receive into provided buffers, one
 * send in flight, the rest gathered behind it): no task and no per-message
 * system call of its own; the loop submits a turn's sends in one
 * io_uring_enter. Frames are masked with a fresh key each, as a client must.
 *
 *   ws-echo       N connections, each a request/response loop of SIZE-byte
 *                 text messages: messages/s, round trip p50/p99.
 *   ws-broadcast  one publisher and N subscribers of one room (the server
 *                 relays each message of a member to the others): the
 *                 publisher keeps INFLIGHT messages in flight; a message
 *                 counts when every subscriber has it. Deliveries/s,
 *                 full-delivery latency p50/p99.
 *   ws-idle       N connections opened (with --touch: and one message echoed
 *                 on each) and left idle (pings answered) until stdin
 *                 closes or --hold passes; prints READY once all are open.
 *                 For memory measurements.
 *
 * The load runs WARMUP seconds, then is measured for DURATION seconds
 * (bounded: the run stops at the end whatever happens). Over the measured
 * window the client reads its own CPU (getrusage), the server's utime+stime
 * (/proc/PID/stat, all threads, --server-pid) plus the time of ksoftirqd on
 * the server's CPU (--server-cpu, 0: network work the kernel deferred there,
 * which it does for io_uring's large batches of sends) and the machine's busy
 * ticks (/proc/stat) and prints a human summary and one machine-readable line:
 *   RESULT mode=... key=value ...
 * Exit status 0, or 1 when the run had errors (a connection lost, a wrong
 * or missing message, a subscriber dropped), 2 for bad usage.
 */
#include "bench.h"

#include "cio.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum { MODE_ECHO, MODE_BROADCAST, MODE_IDLE };
enum { ROLE_ECHO, ROLE_PUB, ROLE_SUB, ROLE_IDLE };

#define PREFIX_MAX 64 /* bytes of a message kept for checking */
#define SEQ_DIGITS 20 /* a broadcast message starts with its sequence number */

/* ---- options ------------------------------------------------------------------------- */

typedef struct opts {
    int mode;
    const char *name;
    struct sockaddr_in addr;
    char hostport[64];
    const char *path;
    unsigned conns;    /* echo: connections; broadcast: subscribers; idle: connections */
    unsigned size;     /* message payload bytes */
    unsigned inflight; /* broadcast: messages in flight */
    double duration, warmup, hold;
    int cpu;
    unsigned sources; /* 127.0.0.1 .. 127.0.0.<sources> */
    unsigned source_base;
    unsigned parallel; /* handshakes in progress at a time */
    int server_pid;
    int server_cpu; /* its ksoftirqd's time is the server's (-1: none) */
    bool deflate; /* offer permessage-deflate */
    bool touch;   /* ws-idle: one echo on each connection before it idles */
    bool verbose;
    unsigned buf_count, buf_size;
} opts;

/* ---- one connection ------------------------------------------------------------------- */

typedef struct wsc {
    cio_socket_transport st;
    struct run *r;
    uint32_t idx;
    uint8_t role;
    bool live;    /* handed to the transport, not closed */
    bool dead;    /* lost: counted once */
    bool sending; /* a send is in flight */
    bool deflate; /* the server accepted permessage-deflate */
    /* receiver: frames from the server (never masked) */
    uint8_t h[14];
    uint8_t hn;       /* header bytes collected */
    uint8_t fop;      /* the frame's opcode */
    bool ffin;        /* the frame ends its message */
    bool in_payload;  /* inside a frame's payload */
    uint64_t left;    /* payload bytes left of the frame */
    uint8_t mop;      /* the message's opcode (text, binary; 0 = none) */
    uint64_t mlen;    /* the message's bytes so far */
    uint8_t pre[PREFIX_MAX];
    uint8_t ctl[125]; /* a control frame's payload */
    uint8_t cn;
    /* sender: ob[cur] collects, ob[cur ^ 1] is in flight */
    uint8_t *ob[2];
    size_t on[2], ocap[2];
    int cur;
    struct iovec iov;
    /* echo */
    cio_time t0;
    uint64_t seq;
    uint8_t sent[PREFIX_MAX]; /* the payload in flight (its prefix) */
    /* subscriber */
    uint64_t expect; /* next sequence number */
    bool synced;
} wsc;

typedef struct slot {
    cio_time t_sent;
    uint32_t count;
} slot;

typedef struct run {
    opts *o;
    cio_loop *loop;
    wsc *c;       /* conns (+1 publisher for broadcast, last) */
    unsigned nc;  /* entries of c */
    unsigned next_connect, connected, handshake_fail;
    unsigned deflated;
    unsigned touched;  /* ws-idle --touch: connections whose echo came back */
    cio_event all_touched;
    unsigned closed;   /* on_closed seen */
    unsigned lost;     /* connections the server closed or that failed */
    unsigned errors;   /* wrong content, order, protocol */
    char first_error[200];
    bool stopping;     /* no new messages */
    bool measuring;
    cio_event all_closed;
    cio_event synced;
    /* counters (the window's figures are differences) */
    uint64_t msgs;       /* echo: answers received; broadcast: deliveries */
    uint64_t completed;  /* broadcast: messages every subscriber has */
    uint64_t sent_msgs;  /* broadcast: messages published */
    unsigned live_subs;
    uint64_t sync_seq;   /* broadcast: the message that ended the sync phase */
    bool in_sync;
    slot *slots;
    uint64_t slot_mask;
    /* latency samples (ns) of the measured window */
    uint32_t *lat;
    size_t nlat, caplat;
    uint64_t rng;
    uint8_t *payload; /* the message bytes, SIZE of them */
} run;

static run R;

static void fail(run *r, const char *fmt, ...)
{
    r->errors++;
    if (r->first_error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->first_error, sizeof(r->first_error), fmt, ap);
    va_end(ap);
    if (r->o->verbose)
        fprintf(stderr, "corio-bench %s: %s\n", r->o->name, r->first_error);
}

static uint64_t rnd(run *r)
{
    uint64_t x = r->rng;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return r->rng = x;
}

static void lat_add(run *r, cio_time ns)
{
    if (r->nlat == r->caplat) {
        size_t cap = r->caplat ? r->caplat * 2 : 1 << 20;
        uint32_t *p = realloc(r->lat, cap * sizeof(*p));
        if (!p)
            return;
        r->lat = p;
        r->caplat = cap;
    }
    r->lat[r->nlat++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)(ns < 0 ? 0 : ns);
}

/* ---- sending ---------------------------------------------------------------------------- */

static void conn_lost(wsc *c, const char *why, int err);

static void flush(wsc *c)
{
    if (c->sending || !c->live || c->on[c->cur] == 0)
        return;
    int k = c->cur;
    c->iov = (struct iovec){c->ob[k], c->on[k]};
    int rc = c->st.t.ops->send(&c->st.t, &c->iov, 1);
    if (rc < 0) {
        conn_lost(c, "send", rc);
        return;
    }
    c->sending = true;
    c->cur = k ^ 1;
    c->on[c->cur] = 0;
}

/* Room for n more bytes in the collecting buffer. */
static uint8_t *out_space(wsc *c, size_t n)
{
    int k = c->cur;
    if (c->on[k] + n > c->ocap[k]) {
        size_t cap = c->ocap[k] ? c->ocap[k] : 256;
        while (cap < c->on[k] + n)
            cap *= 2;
        uint8_t *p = realloc(c->ob[k], cap);
        if (!p)
            return NULL;
        c->ob[k] = p;
        c->ocap[k] = cap;
    }
    return c->ob[k] + c->on[k];
}

/* Queues one masked frame (and sends it unless a send is in flight). */
static void send_frame(wsc *c, unsigned op, const uint8_t *p, size_t n)
{
    uint8_t *d = out_space(c, n + 14);
    if (!d) {
        fail(c->r, "out of memory");
        return;
    }
    size_t hl = 0;
    d[hl++] = (uint8_t)(0x80 | op);
    if (n < 126) {
        d[hl++] = (uint8_t)(0x80 | n);
    } else if (n <= 0xffff) {
        d[hl++] = 0x80 | 126;
        d[hl++] = (uint8_t)(n >> 8);
        d[hl++] = (uint8_t)n;
    } else {
        d[hl++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            d[hl++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    uint32_t key = (uint32_t)rnd(c->r);
    uint8_t m[4];
    memcpy(m, &key, 4);
    memcpy(d + hl, m, 4);
    hl += 4;
    uint8_t *q = d + hl;
    size_t i = 0;
    uint64_t m8;
    memcpy(&m8, (uint8_t[8]){m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]}, 8);
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        v ^= m8;
        memcpy(q + i, &v, 8);
    }
    for (; i < n; i++)
        q[i] = p[i] ^ m[i & 3];
    c->on[c->cur] += hl + n;
    flush(c);
}

/* ---- echo -------------------------------------------------------------------------------- */

static void echo_send(wsc *c)
{
    run *r = c->r;
    uint8_t *p = r->payload;
    /* a different message each time: "<conn>.<seq>" over the filler */
    char tag[PREFIX_MAX];
    int tl = snprintf(tag, sizeof(tag), "%u.%llu ", c->idx, (unsigned long long)c->seq++);
    size_t n = r->o->size;
    size_t k = (size_t)tl < n ? (size_t)tl : n;
    memcpy(p, tag, k);
    memcpy(c->sent, p, n < PREFIX_MAX ? n : PREFIX_MAX);
    c->t0 = cio_clock();
    send_frame(c, 0x1, p, n);
}

static void echo_got(wsc *c, uint8_t op, uint64_t len)
{
    run *r = c->r;
    cio_time now = cio_clock();
    size_t k = len < PREFIX_MAX ? (size_t)len : PREFIX_MAX;
    if (op != 0x1 || len != r->o->size || memcmp(c->pre, c->sent, k) != 0) {
        fail(r, "connection %u: the echo differs from the message sent (opcode %u, %llu bytes)",
             c->idx, op, (unsigned long long)len);
        return;
    }
    r->msgs++;
    if (r->measuring)
        lat_add(r, now - c->t0);
    if (!r->stopping)
        echo_send(c);
}

/* ---- broadcast ---------------------------------------------------------------------------- */

static void pub_send(run *r)
{
    wsc *p = &r->c[r->nc - 1];
    uint64_t s = r->sent_msgs++;
    slot *sl = &r->slots[s & r->slot_mask];
    sl->count = 0;
    uint8_t *m = r->payload;
    char num[SEQ_DIGITS + 1];
    snprintf(num, sizeof(num), "%0*llu", SEQ_DIGITS, (unsigned long long)s);
    memcpy(m, num, SEQ_DIGITS);
    sl->t_sent = cio_clock();
    send_frame(p, 0x1, m, r->o->size);
}

static void pub_fill(run *r)
{
    while (!r->stopping && !r->in_sync && r->sent_msgs - r->completed < r->o->inflight &&
           r->c[r->nc - 1].live)
        pub_send(r);
}

/* Retires the messages every live subscriber has, oldest first (each
 * subscriber receives in order, so they complete in order). */
static void complete_ready(run *r)
{
    if (r->in_sync)
        return;
    bool any = false;
    while (r->completed < r->sent_msgs) {
        slot *sl = &r->slots[r->completed & r->slot_mask];
        if (sl->count < r->live_subs)
            break;
        if (r->measuring)
            lat_add(r, cio_clock() - sl->t_sent);
        r->completed++;
        any = true;
    }
    if (any)
        pub_fill(r);
}

static uint64_t parse_seq(const uint8_t *p, size_t n, bool *ok)
{
    uint64_t v = 0;
    *ok = n >= SEQ_DIGITS;
    for (size_t i = 0; *ok && i < SEQ_DIGITS; i++) {
        if (p[i] < '0' || p[i] > '9')
            *ok = false;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    return v;
}

static void sub_got(wsc *c, uint8_t op, uint64_t len)
{
    run *r = c->r;
    bool ok;
    uint64_t s = parse_seq(c->pre, len < PREFIX_MAX ? (size_t)len : PREFIX_MAX, &ok);
    if (op != 0x1 || len != r->o->size || !ok || s >= r->sent_msgs) {
        fail(r, "subscriber %u: unexpected message (opcode %u, %llu bytes)", c->idx, op,
             (unsigned long long)len);
        return;
    }
    if (!c->synced) {
        /* the first message a subscriber sees may be any of the sync phase */
        c->synced = true;
    } else if (s != c->expect) {
        fail(r, "subscriber %u: message %llu arrived, %llu expected (lost or reordered)", c->idx,
             (unsigned long long)s, (unsigned long long)c->expect);
    }
    c->expect = s + 1;
    if (s < r->completed)
        return; /* a sync message that a later one already settled */
    r->msgs++;
    slot *sl = &r->slots[s & r->slot_mask];
    sl->count++;
    if (r->in_sync) {
        /* the first message every subscriber has ends the sync phase */
        if (sl->count >= r->live_subs) {
            r->in_sync = false;
            r->sync_seq = s;
            r->completed = s + 1;
            cio_event_set(&r->synced);
        }
        return;
    }
    if (s == r->completed)
        complete_ready(r);
}

/* ---- receiving ---------------------------------------------------------------------------- */

static void got_message(wsc *c)
{
    switch (c->role) {
    case ROLE_ECHO:
        echo_got(c, c->mop, c->mlen);
        break;
    case ROLE_SUB:
        sub_got(c, c->mop, c->mlen);
        break;
    case ROLE_PUB:
        fail(c->r, "the publisher received a message (the server echoes to the sender?)");
        break;
    default: /* idle: the answer to --touch, once */
        if (!c->synced) {
            c->synced = true;
            if (++c->r->touched == c->r->o->conns)
                cio_event_set(&c->r->all_touched);
        }
        break;
    }
}

static void got_control(wsc *c)
{
    switch (c->fop) {
    case 0x9: /* ping: pong with the same payload */
        send_frame(c, 0xA, c->ctl, c->cn);
        break;
    case 0xA:
        break;
    case 0x8: { /* close: echo it; the server closes the TCP connection */
        unsigned code = c->cn >= 2 ? (unsigned)c->ctl[0] << 8 | c->ctl[1] : 1005;
        if (!c->r->stopping)
            fail(c->r, "connection %u: the server closed it with %u %.*s", c->idx, code,
                 c->cn > 2 ? c->cn - 2 : 0, (const char *)c->ctl + 2);
        send_frame(c, 0x8, c->ctl, c->cn >= 2 ? 2 : 0);
        break;
    }
    default:
        break;
    }
}

static void on_data(void *ud, uint8_t *data, size_t len)
{
    wsc *c = ud;
    run *r = c->r;
    while (len) {
        if (!c->in_payload) {
            /* header: 2 bytes, then 0, 2 or 8 of length (a server never masks) */
            while (c->hn < 2 && len)
                c->h[c->hn++] = *data++, len--;
            if (c->hn < 2)
                return;
            unsigned l7 = c->h[1] & 0x7f;
            unsigned need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0);
            if (c->h[1] & 0x80) {
                fail(r, "connection %u: a masked frame from the server", c->idx);
                need += 4;
            }
            while (c->hn < need && len)
                c->h[c->hn++] = *data++, len--;
            if (c->hn < need)
                return;
            uint64_t n = l7;
            if (l7 == 126)
                n = (uint64_t)c->h[2] << 8 | c->h[3];
            else if (l7 == 127)
                for (int i = 0; i < 8; i++)
                    n = n << 8 | c->h[2 + i];
            c->fop = c->h[0] & 0x0f;
            c->ffin = c->h[0] & 0x80;
            c->left = n;
            c->hn = 0;
            c->in_payload = true;
            c->cn = 0;
            if (c->fop >= 0x8) {
                if (n > 125) {
                    fail(r, "connection %u: a control frame of %llu bytes", c->idx,
                         (unsigned long long)n);
                    conn_lost(c, "protocol", 0);
                    return;
                }
            } else if (c->fop != 0) {
                c->mop = c->fop;
                c->mlen = 0;
            } else if (!c->mop) {
                fail(r, "connection %u: a continuation without a message", c->idx);
            }
        }
        size_t k = c->left < len ? (size_t)c->left : len;
        if (c->fop >= 0x8) {
            memcpy(c->ctl + c->cn, data, k);
            c->cn = (uint8_t)(c->cn + k);
        } else if (c->mlen < PREFIX_MAX) {
            size_t room = PREFIX_MAX - (size_t)c->mlen;
            memcpy(c->pre + c->mlen, data, k < room ? k : room);
        }
        if (c->fop < 0x8)
            c->mlen += k;
        data += k, len -= k, c->left -= k;
        if (c->left)
            return;
        c->in_payload = false;
        if (c->fop >= 0x8) {
            got_control(c);
        } else if (c->ffin) {
            got_message(c);
            c->mop = 0;
        }
        if (!c->live)
            return;
    }
}

static void conn_close(wsc *c)
{
    if (!c->live)
        return;
    c->live = false;
    c->st.t.ops->close(&c->st.t);
}

static void conn_lost(wsc *c, const char *why, int err)
{
    run *r = c->r;
    if (!c->dead) {
        c->dead = true;
        if (!r->stopping) {
            r->lost++;
            fail(r, "connection %u (%s) lost: %s%s%s", c->idx,
                 c->role == ROLE_PUB   ? "publisher"
                 : c->role == ROLE_SUB ? "subscriber"
                                       : "client",
                 why, err ? ", " : "", err ? strerror(-err) : "");
            if (c->role == ROLE_SUB && r->live_subs) {
                r->live_subs--; /* the others still complete their messages */
                complete_ready(r);
            }
        }
    }
    conn_close(c);
}

static void on_eof(void *ud, int err)
{
    conn_lost(ud, err ? "receive failed" : "the server closed the connection", err);
}

static void on_sent(void *ud, int err)
{
    wsc *c = ud;
    c->sending = false;
    c->on[c->cur ^ 1] = 0;
    if (err < 0) {
        conn_lost(c, "send failed", err);
        return;
    }
    flush(c);
}

static void on_closed(void *ud)
{
    wsc *c = ud;
    run *r = c->r;
    if (++r->closed == r->connected)
        cio_event_set(&r->all_closed);
}

static const cio_transport_cbs conn_cbs = {
    .on_data = on_data, .on_eof = on_eof, .on_sent = on_sent, .on_closed = on_closed};

/* ---- connecting and the handshake --------------------------------------------------------- */

static void b64(const uint8_t *in, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

static bool header_value(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t n = e ? (size_t)(e - v) : strlen(v);
            while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                n--;
            if (n >= cap)
                n = cap - 1;
            memcpy(out, v, n);
            out[n] = 0;
            return true;
        }
    }
    return false;
}

/* Connects c and does the handshake; on success c's socket is a transport. */
static int conn_open(run *r, wsc *c, cio_time deadline)
{
    opts *o = r->o;
    int fd = cio_socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (o->sources > 1 || o->source_base > 1) {
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000000u | (o->source_base + c->idx % o->sources));
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
            int e = -errno;
            close(fd);
            return e;
        }
    }
    int rc = cio_connect(fd, (struct sockaddr *)&o->addr, sizeof(o->addr), deadline);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    uint8_t raw[16];
    for (int i = 0; i < 16; i += 8) {
        uint64_t v = rnd(r);
        memcpy(raw + i, &v, 8);
    }
    char key[32], accept[32], want[32];
    b64(raw, 16, key);
    char acc_in[96];
    int an = snprintf(acc_in, sizeof(acc_in), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    uint8_t sha[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)acc_in, (size_t)an, sha);
    b64(sha, sizeof(sha), want);
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                     o->path, o->hostport, key,
                     o->deflate ? "Sec-WebSocket-Extensions: permessage-deflate; "
                                  "client_max_window_bits\r\n"
                                : "");
    ssize_t w = cio_send(fd, req, (size_t)n, 0, deadline);
    if (w != n) {
        close(fd);
        return w < 0 ? (int)w : -EIO;
    }
    char buf[4096];
    size_t got = 0;
    char *end = NULL;
    while (!end) {
        ssize_t k = cio_recv(fd, buf + got, sizeof(buf) - 1 - got, 0, deadline);
        if (k <= 0) {
            close(fd);
            return k < 0 ? (int)k : -ECONNRESET;
        }
        got += (size_t)k;
        buf[got] = 0;
        end = strstr(buf, "\r\n\r\n");
        if (!end && got == sizeof(buf) - 1) {
            close(fd);
            return -EMSGSIZE;
        }
    }
    end[2] = 0; /* keep the last header's CRLF for header_value */
    if (strncmp(buf, "HTTP/1.1 101", 12) != 0 || !header_value(buf, "Sec-WebSocket-Accept",
                                                               accept, sizeof(accept)) ||
        strcmp(accept, want) != 0) {
        char *eol = strstr(buf, "\r\n");
        if (eol)
            *eol = 0;
        fail(r, "connection %u: the handshake failed: \"%.80s\"", c->idx, buf);
        close(fd);
        return -EPROTO;
    }
    char ext[256];
    c->deflate = header_value(buf, "Sec-WebSocket-Extensions", ext, sizeof(ext)) &&
                 strstr(ext, "permessage-deflate");
    r->deflated += c->deflate;
    c->r = r;
    cio_socket_transport_init(&c->st, r->loop, fd, &conn_cbs, c);
    c->live = true;
    r->connected++;
    rc = c->st.t.ops->read_start(&c->st.t);
    if (rc < 0) {
        conn_lost(c, "read_start", rc);
        return 0;
    }
    size_t rest = got - (size_t)(end + 4 - buf);
    if (rest)
        on_data(c, (uint8_t *)end + 4, rest);
    if (c->role == ROLE_IDLE && o->touch)
        send_frame(c, 0x1, r->payload, o->size);
    return 0;
}

typedef struct connect_job {
    run *r;
    unsigned first, count;
    cio_time deadline;
} connect_job;

static intptr_t connect_worker(void *arg)
{
    connect_job *j = arg;
    run *r = j->r;
    while (r->next_connect < j->first + j->count) {
        wsc *c = &r->c[r->next_connect++];
        int rc = conn_open(r, c, j->deadline);
        if (rc < 0) {
            r->handshake_fail++;
            if (rc != -EPROTO)
                fail(r, "connection %u: %s", c->idx, strerror(-rc));
            if (rc == -ETIMEDOUT || rc == -ECANCELED)
                return rc;
        }
    }
    return 0;
}

/* Opens c[first .. first + count) with o->parallel handshakes at a time. */
static int connect_range(run *r, unsigned first, unsigned count, cio_time deadline)
{
    connect_job j = {r, first, count, deadline};
    r->next_connect = first;
    cio_group g;
    cio_group_init(&g, deadline);
    unsigned w = r->o->parallel < count ? r->o->parallel : count;
    for (unsigned i = 0; i < w; i++)
        cio_group_spawn(&g, NULL, connect_worker, &j);
    intptr_t rc = cio_group_wait(&g);
    return rc < 0 ? (int)rc : 0;
}

/* ---- figures ------------------------------------------------------------------------------ */

typedef struct snap {
    cio_time t;
    double self_cpu; /* seconds */
    long long server_ticks;
    long long sirq_server, sirq_client; /* ksoftirqd/<cpu> of the server's and the client's CPU */
    long long busy_ticks;
    uint64_t msgs, completed;
} snap;

static long long proc_ticks(int pid)
{
    if (pid <= 0)
        return -1;
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* comm may hold spaces */
    if (!p)
        return -1;
    unsigned long long ut, st;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

/* The pid of ksoftirqd/<cpu>, or -1. Network work that the softirq budget
 * defers runs there, not in the process whose sends caused it: on the
 * server's CPU it is the server's work (loopback delivery of what it sent),
 * on the client's the client's. */
static int ksoftirqd_pid(int cpu)
{
    if (cpu < 0)
        return -1;
    char want[32];
    snprintf(want, sizeof(want), "ksoftirqd/%d\n", cpu);
    for (int pid = 2; pid < 4096; pid++) {
        char path[64], comm[64];
        snprintf(path, sizeof(path), "/proc/%d/comm", pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        bool match = fgets(comm, sizeof(comm), f) && strcmp(comm, want) == 0;
        fclose(f);
        if (match)
            return pid;
    }
    return -1;
}

static int sirq_server_pid = -1, sirq_client_pid = -1;

static long long busy_ticks(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    unsigned long long v[8] = {0};
    int k = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (k < 8)
        return -1;
    /* user nice system idle iowait irq softirq steal: all but idle, iowait */
    return (long long)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]);
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void take(run *r, snap *s)
{
    s->t = cio_clock();
    s->self_cpu = self_cpu();
    s->server_ticks = proc_ticks(r->o->server_pid);
    s->sirq_server = proc_ticks(sirq_server_pid);
    s->sirq_client = proc_ticks(sirq_client_pid);
    s->busy_ticks = busy_ticks();
    s->msgs = r->msgs;
    s->completed = r->completed;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static double pct_us(run *r, double q)
{
    if (!r->nlat)
        return -1;
    size_t i = (size_t)(q * (double)(r->nlat - 1) + 0.5);
    return r->lat[i] / 1000.0;
}

static void report(run *r, const snap *a, const snap *b)
{
    opts *o = r->o;
    double secs = (double)(b->t - a->t) / 1e9;
    double hz = (double)sysconf(_SC_CLK_TCK);
    uint64_t msgs = b->msgs - a->msgs;
    qsort(r->lat, r->nlat, sizeof(*r->lat), cmp_u32);
    double sirq_s = a->sirq_server >= 0 && b->sirq_server >= 0
                        ? (double)(b->sirq_server - a->sirq_server) / hz
                        : 0;
    double sirq_c = a->sirq_client >= 0 && b->sirq_client >= 0
                        ? (double)(b->sirq_client - a->sirq_client) / hz
                        : 0;
    double client_cpu = b->self_cpu - a->self_cpu + sirq_c;
    double server_proc = a->server_ticks >= 0 && b->server_ticks >= 0
                             ? (double)(b->server_ticks - a->server_ticks) / hz
                             : -1;
    double server_cpu = server_proc >= 0 ? server_proc + sirq_s : -1;
    double busy = (double)(b->busy_ticks - a->busy_ticks) / hz;
    double noise = busy - client_cpu - (server_cpu > 0 ? server_cpu : sirq_s);
    if (noise < 0)
        noise = 0;
    double per_s = (double)msgs / secs;
    double srv_us = server_cpu >= 0 && msgs ? server_cpu * 1e6 / (double)msgs : -1;
    double proc_us = server_proc >= 0 && msgs ? server_proc * 1e6 / (double)msgs : -1;
    double cli_us = msgs ? client_cpu * 1e6 / (double)msgs : -1;
    cio_loop_stats ls;
    cio_loop_get_stats(r->loop, &ls);
    const char *what = o->mode == MODE_ECHO ? "messages" : "deliveries";
    printf("%s: %.0f %s/s over %.2f s (%llu)", o->name, per_s, what, secs,
           (unsigned long long)msgs);
    if (o->mode == MODE_BROADCAST)
        printf(", %.0f messages/s to %u subscribers", (double)(b->completed - a->completed) / secs,
               o->conns);
    printf("\n");
    printf("  %s p50 %.1f us, p99 %.1f us, max %.1f us (%zu samples)\n",
           o->mode == MODE_ECHO ? "round trip" : "full delivery", pct_us(r, 0.50),
           pct_us(r, 0.99), pct_us(r, 1.0), r->nlat);
    printf("  client CPU %.1f%% of a core (%.2f us per %s)", client_cpu / secs * 100, cli_us,
           o->mode == MODE_ECHO ? "message" : "delivery");
    if (server_cpu >= 0)
        printf(", server CPU %.1f%% (%.3f us per %s)", server_cpu / secs * 100, srv_us,
               o->mode == MODE_ECHO ? "message" : "delivery");
    printf(", other load %.1f%% of a CPU\n", noise / secs * 100);
    printf("  (ksoftirqd: %.1f%% of a CPU on the server's CPU, counted as the server's; %.1f%% on the "
           "client's, counted as the client's)\n",
           sirq_s / secs * 100, sirq_c / secs * 100);
    printf("  errors %u, connections lost %u%s%s\n", r->errors, r->lost,
           r->first_error[0] ? ": " : "", r->first_error);
    if (o->verbose)
        printf("  client loop: %llu turns, %llu enters, %llu completions, %llu buffer shortages\n",
               (unsigned long long)ls.turns, (unsigned long long)ls.enters,
               (unsigned long long)ls.cqes, (unsigned long long)ls.buf_shortages);
    printf("RESULT mode=%s conns=%u size=%u%s%u secs=%.3f msgs=%llu per_s=%.1f p50_us=%.1f "
           "p99_us=%.1f max_us=%.1f client_cpu_pct=%.1f client_us=%.3f server_cpu_pct=%.1f "
           "server_us=%.4f server_proc_us=%.4f sirq_server_pct=%.1f sirq_client_pct=%.1f "
           "noise_pct=%.1f errors=%u lost=%u buf_shortages=%llu total=%llu\n",
           o->name, o->conns, o->size, o->mode == MODE_BROADCAST ? " inflight=" : " x=",
           o->mode == MODE_BROADCAST ? o->inflight : 0, secs, (unsigned long long)msgs, per_s,
           pct_us(r, 0.50), pct_us(r, 0.99), pct_us(r, 1.0), client_cpu / secs * 100, cli_us,
           server_cpu >= 0 ? server_cpu / secs * 100 : -1, srv_us, proc_us, sirq_s / secs * 100,
           sirq_c / secs * 100, noise / secs * 100, r->errors,
           r->lost, (unsigned long long)ls.buf_shortages, (unsigned long long)b->msgs);
    fflush(stdout);
}

/* ---- the runs ------------------------------------------------------------------------------ */

/* Closes every connection with a reset (SO_LINGER 0): no TIME_WAIT pile-up
 * of client ports from one run to the next. */
static void close_all(run *r)
{
    r->stopping = true;
    struct linger lg = {1, 0};
    for (unsigned i = 0; i < r->nc; i++) {
        if (r->c[i].live)
            setsockopt(r->c[i].st.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        conn_close(&r->c[i]);
    }
}

static int wait_closed(run *r)
{
    if (r->closed < r->connected)
        cio_event_wait(&r->all_closed, cio_after(CIO_SEC(5)));
    return r->closed == r->connected ? 0 : -ETIMEDOUT;
}

static intptr_t load_main(void *arg)
{
    run *r = arg;
    opts *o = r->o;
    cio_time setup_deadline = cio_after(CIO_SEC(120));
    unsigned n = o->conns;
    int rc = connect_range(r, 0, n, setup_deadline);
    if (rc < 0 || r->connected < n) {
        fail(r, "only %u of %u connections opened", r->connected, n);
        close_all(r);
        wait_closed(r);
        return 1;
    }
    if (o->mode == MODE_BROADCAST) {
        /* the publisher joins last, once every subscriber is in the room */
        cio_sleep(CIO_MS(100));
        rc = connect_range(r, n, 1, setup_deadline);
        if (rc < 0 || r->connected < n + 1) {
            fail(r, "the publisher could not connect");
            close_all(r);
            wait_closed(r);
            return 1;
        }
        cio_sleep(CIO_MS(100));
        /* sync: a message every 200 ms until one reaches every subscriber */
        r->in_sync = true;
        cio_time give_up = cio_after(CIO_SEC(10));
        while (r->in_sync && cio_now() < give_up && !r->lost) {
            pub_send(r);
            cio_event_wait(&r->synced, cio_after(CIO_MS(200)));
        }
        if (r->in_sync) {
            fail(r, "the first messages never reached every subscriber (%u of %u got message %llu)",
                 r->slots[r->completed & r->slot_mask].count, r->live_subs,
                 (unsigned long long)r->completed);
            close_all(r);
            wait_closed(r);
            return 1;
        }
        for (unsigned i = 0; i < n; i++) /* from now on, no gap is allowed */
            if (!r->c[i].synced)
                fail(r, "subscriber %u saw no message", i);
        pub_fill(r);
    } else {
        for (unsigned i = 0; i < n; i++)
            echo_send(&r->c[i]);
    }
    cio_time t_start = cio_after((cio_time)(o->warmup * 1e9));
    cio_sleep_until(t_start);
    snap a, b;
    r->nlat = 0;
    take(r, &a);
    r->measuring = true;
    cio_sleep_until(a.t + (cio_time)(o->duration * 1e9));
    take(r, &b);
    r->measuring = false;
    r->stopping = true;
    report(r, &a, &b);
    close_all(r);
    wait_closed(r);
    return r->errors || r->lost ? 1 : 0;
}

static intptr_t stdin_watch(void *arg)
{
    (void)arg;
    char buf[256];
    for (;;) {
        ssize_t k = cio_read(0, buf, sizeof(buf), -1, CIO_NEVER);
        if (k <= 0)
            return 0;
    }
}

static intptr_t idle_main(void *arg)
{
    run *r = arg;
    opts *o = r->o;
    cio_time t0 = cio_clock();
    int rc = connect_range(r, 0, o->conns, cio_after(CIO_SEC(300)));
    if (rc < 0 || r->connected < o->conns) {
        fail(r, "only %u of %u connections opened", r->connected, o->conns);
        close_all(r);
        wait_closed(r);
        printf("RESULT mode=ws-idle conns=%u opened=%u deflate=%u closed_by_server=%u errors=%u\n",
               o->conns, r->connected, r->deflated, r->lost, r->errors);
        return 1;
    }
    if (o->touch && r->touched < o->conns &&
        (cio_event_wait(&r->all_touched, cio_after(CIO_SEC(60))) < 0 || r->touched < o->conns))
        fail(r, "only %u of %u connections answered their message", r->touched, o->conns);
    printf("READY conns=%u deflate=%u secs=%.1f\n", r->connected, r->deflated,
           (double)(cio_clock() - t0) / 1e9);
    fflush(stdout);
    /* hold until stdin ends (the script is done measuring) or --hold passes */
    cio_task *w;
    if (cio_spawn(NULL, &w, stdin_watch, NULL) == 0)
        cio_join(w, cio_after((cio_time)(o->hold * 1e9)));
    unsigned lost = r->lost;
    close_all(r);
    wait_closed(r);
    printf("RESULT mode=ws-idle conns=%u opened=%u deflate=%u closed_by_server=%u errors=%u%s%s\n",
           o->conns, r->connected, r->deflated, lost, r->errors, r->first_error[0] ? " first=" : "",
           r->first_error[0] ? r->first_error : "");
    return lost || r->errors ? 1 : 0;
}

/* ---- command line ---------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: corio-bench ws-echo      [options] HOST:PORT\n"
            "       corio-bench ws-broadcast [options] HOST:PORT\n"
            "       corio-bench ws-idle      [options] HOST:PORT\n"
            "options:\n"
            "  --path P         request target (ws-echo, ws-idle: /ws/echo; ws-broadcast:\n"
            "                   /ws/chat?room=bench)\n"
            "  --conns N        connections (ws-echo 100), subscribers (ws-broadcast 1000),\n"
            "                   idle connections (ws-idle 1000)\n"
            "  --size B         message payload bytes (ws-echo 32, ws-broadcast 64)\n"
            "  --inflight K     ws-broadcast: messages in flight (8)\n"
            "  --duration S     measured seconds (10); --warmup S before it (1)\n"
            "  --hold S         ws-idle: at most this long after READY (600); stdin EOF ends it\n"
            "  --server-pid P   read P's CPU time over the measured window\n"
            "  --server-cpu N   the server's CPU (0): ksoftirqd/N's time is counted as the\n"
            "                   server's (and ksoftirqd/<--cpu> as the client's); -1: not\n"
            "  --cpu N          pin the client to CPU N (1; -1 = not pinned)\n"
            "  --sources K      connect from 127.0.0.<base>..<base+K-1> (1); --source-base B (1)\n"
            "  --parallel K     handshakes in progress at a time (64)\n"
            "  --deflate        ws-idle: offer permessage-deflate (client_max_window_bits)\n"
            "  --touch          ws-idle: one SIZE-byte message each, answered, before idling\n"
            "  --bufs N --buf-size B   the loop's provided receive buffers\n"
            "  -v               verbose\n");
}

static bool parse_hostport(opts *o, const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= 48)
        return false;
    char host[48];
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    int port = atoi(colon + 1);
    if (port <= 0 || port > 65535)
        return false;
    o->addr.sin_family = AF_INET;
    o->addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &o->addr.sin_addr) != 1)
        return false;
    snprintf(o->hostport, sizeof(o->hostport), "%s:%d", host, port);
    return true;
}

int bench_ws(const char *mode, int argc, char **argv)
{
    opts o = {.name = mode,
              .duration = 10,
              .warmup = 1,
              .hold = 600,
              .cpu = 1,
              .server_cpu = 0,
              .sources = 1,
              .source_base = 1,
              .parallel = 64,
              .inflight = 8};
    if (strcmp(mode, "ws-echo") == 0) {
        o.mode = MODE_ECHO, o.path = "/ws/echo", o.conns = 100, o.size = 32;
        o.buf_count = 1024, o.buf_size = 4096;
    } else if (strcmp(mode, "ws-broadcast") == 0) {
        o.mode = MODE_BROADCAST, o.path = "/ws/chat?room=bench", o.conns = 1000, o.size = 64;
        o.buf_count = 16384, o.buf_size = 1024;
    } else {
        o.mode = MODE_IDLE, o.path = "/ws/echo", o.conns = 1000, o.size = 32;
        o.buf_count = 1024, o.buf_size = 1024;
    }
    const char *target = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && ++i)
        if (ARG("--path"))
            o.path = v;
        else if (ARG("--conns"))
            o.conns = (unsigned)atoi(v);
        else if (ARG("--size"))
            o.size = (unsigned)atoi(v);
        else if (ARG("--inflight"))
            o.inflight = (unsigned)atoi(v);
        else if (ARG("--duration"))
            o.duration = atof(v);
        else if (ARG("--warmup"))
            o.warmup = atof(v);
        else if (ARG("--hold"))
            o.hold = atof(v);
        else if (ARG("--server-pid"))
            o.server_pid = atoi(v);
        else if (ARG("--server-cpu"))
            o.server_cpu = atoi(v);
        else if (ARG("--cpu"))
            o.cpu = atoi(v);
        else if (ARG("--sources"))
            o.sources = (unsigned)atoi(v);
        else if (ARG("--source-base"))
            o.source_base = (unsigned)atoi(v);
        else if (ARG("--parallel"))
            o.parallel = (unsigned)atoi(v);
        else if (ARG("--bufs"))
            o.buf_count = (unsigned)atoi(v);
        else if (ARG("--buf-size"))
            o.buf_size = (unsigned)atoi(v);
        else if (strcmp(a, "--deflate") == 0)
            o.deflate = true;
        else if (strcmp(a, "--touch") == 0)
            o.touch = true;
        else if (strcmp(a, "-v") == 0)
            o.verbose = true;
        else if (a[0] != '-' && !target)
            target = a;
        else {
            usage();
            return 2;
        }
#undef ARG
    }
    if (!target || !parse_hostport(&o, target)) {
        usage();
        return 2;
    }
    if (o.conns < 1 || o.sources < 1 || o.source_base < 1 || o.source_base + o.sources > 255 ||
        o.parallel < 1 || o.duration <= 0 || o.warmup < 0 || o.inflight < 1 ||
        o.inflight > 65536 || (o.mode == MODE_BROADCAST && o.size < SEQ_DIGITS) ||
        (o.mode == MODE_ECHO && o.size < 1) || o.size > (64u << 20) ||
        (o.deflate && o.mode != MODE_IDLE)) {
        fprintf(stderr, "corio-bench %s: bad option value\n", mode);
        return 2;
    }
    bench_pin_cpu(o.cpu);
    sirq_server_pid = o.server_pid > 0 ? ksoftirqd_pid(o.server_cpu) : -1;
    sirq_client_pid = o.cpu != o.server_cpu ? ksoftirqd_pid(o.cpu) : -1;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)o.conns + 64) {
        fprintf(stderr, "corio-bench %s: %u connections need %u open files; the limit is %llu\n",
                mode, o.conns, o.conns + 64, (unsigned long long)rl.rlim_cur);
        return 2;
    }

    run *r = &R;
    r->o = &o;
    r->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)cio_clock() ^ ((uint64_t)getpid() << 32);
    r->nc = o.conns + (o.mode == MODE_BROADCAST);
    r->c = calloc(r->nc, sizeof(*r->c));
    r->payload = malloc(o.size);
    uint64_t ring = 1;
    while (ring < 2ull * o.inflight + 64)
        ring <<= 1;
    r->slots = calloc(ring, sizeof(*r->slots));
    r->slot_mask = ring - 1;
    if (!r->c || !r->payload || !r->slots) {
        fprintf(stderr, "corio-bench %s: out of memory\n", mode);
        return 1;
    }
    /* printable filler: valid UTF-8 text */
    for (unsigned i = 0; i < o.size; i++)
        r->payload[i] = (uint8_t)('a' + i % 26);
    for (unsigned i = 0; i < r->nc; i++) {
        r->c[i].idx = i;
        r->c[i].r = r;
        r->c[i].role = o.mode == MODE_ECHO        ? ROLE_ECHO
                       : o.mode == MODE_IDLE      ? ROLE_IDLE
                       : i == o.conns             ? ROLE_PUB
                                                  : ROLE_SUB;
    }
    r->live_subs = o.mode == MODE_BROADCAST ? o.conns : 0;
    cio_event_init(&r->all_closed);
    cio_event_init(&r->synced);
    cio_event_init(&r->all_touched);

    cio_loop_opts lo = {.sq_entries = 4096, .buf_count = o.buf_count, .buf_size = o.buf_size};
    int rc = cio_loop_create(&r->loop, &lo);
    if (rc < 0) {
        fprintf(stderr, "corio-bench %s: cannot create the loop: %s\n", mode, strerror(-rc));
        return 1;
    }
    intptr_t res = cio_run(r->loop, o.mode == MODE_IDLE ? idle_main : load_main, r);
    if (r->first_error[0])
        fprintf(stderr, "corio-bench %s: %u errors; first: %s\n", mode, r->errors, r->first_error);
    cio_loop_destroy(r->loop);
    for (unsigned i = 0; i < r->nc; i++)
        free(r->c[i].ob[0]), free(r->c[i].ob[1]);
    free(r->c);
    free(r->payload);
    free(r->slots);
    free(r->lat);
    return res == 0 ? 0 : 1;
}
