/*
 * sendq.c - the one send path of a connection, shared by the protocols:
 * bytes are queued as parts, either copied into a chunk (cio_buf) or held by
 * reference (cio_seg, encoded once and queued on many connections), and
 * leave in slices of at most SLICE bytes, each gathered into one send (one
 * sendmsg for several parts). Each slice must leave within the write timeout:
 * it measures progress, so a slow but steady reader is not cut off while one
 * that stopped reading is. Writers above the high watermark wait until the
 * queue is down to the low one.
 *
 * Only the last part can grow, and only while none of its bytes is in
 * flight: a chunk handed to the kernel never moves.
 */
#include "cio_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SLICE      (64 * 1024) /* the write timeout measures progress per slice */
#define CHUNK_KEEP (64 * 1024) /* a drained chunk up to this size is kept for reuse */

#define CHUNK_FIRST 4096 /* a new chunk's first capacity: a batch of small responses */

/* A part's copied bytes are [off, buf.len) of its chunk; a segment's are
 * [off, end) of seg->data. */
struct cio__sqpart {
    cio_seg *seg; /* a shared segment, or NULL: copied bytes in 'buf' */
    cio_buf buf;
    size_t off, end;
};

static_assert(CIO_SENDQ_IOV >= 2, "a slice gathers parts");

/* ---- segments ------------------------------------------------------------------ */

cio_seg *cio_seg_new(size_t len)
{
    if (len > UINT32_MAX)
        return NULL;
    cio_seg *s = malloc(sizeof(*s) + len);
    if (!s)
        return NULL;
    s->refs = 1;
    s->len = (uint32_t)len;
    return s;
}

void cio_seg_unref(cio_seg *s)
{
    if (!s)
        return;
    if (__atomic_load_n(&s->refs, __ATOMIC_RELAXED) & CIO_SEG_SHARED) {
        /* acq_rel: every thread's use of the bytes happens before the free */
        if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == CIO_SEG_SHARED)
            free(s);
    } else if (--s->refs == 0) {
        free(s);
    }
}

/* ---- parts ---------------------------------------------------------------------- */

static struct cio__sqpart *part_at(const cio_sendq *q, uint32_t i)
{
    return &q->parts[(q->head + i) & (q->cap - 1)];
}

static const uint8_t *part_data(const struct cio__sqpart *p)
{
    return p->seg ? p->seg->data : (const uint8_t *)p->buf.p;
}

static size_t part_end(const struct cio__sqpart *p)
{
    return p->seg ? p->end : p->buf.len;
}

/* Appends an empty part; NULL on -ENOMEM. */
static struct cio__sqpart *part_push(cio_sendq *q)
{
    if (q->count == q->cap) {
        uint32_t cap = q->cap ? q->cap * 2 : 4;
        struct cio__sqpart *parts = malloc(cap * sizeof(*parts));
        if (!parts)
            return NULL;
        for (uint32_t i = 0; i < q->count; i++) /* unwrap the ring */
            parts[i] = *part_at(q, i);
        free(q->parts);
        q->parts = parts;
        q->head = 0;
        q->cap = cap;
    }
    struct cio__sqpart *p = part_at(q, q->count++);
    *p = (struct cio__sqpart){0};
    return p;
}

static void part_release(cio_sendq *q, struct cio__sqpart *p)
{
    if (p->seg) {
        cio_seg_unref(p->seg);
    } else if (!q->spare.p && p->buf.cap <= CHUNK_KEEP) {
        q->spare = p->buf; /* the next chunk reuses it */
        q->spare.len = 0;
    } else {
        cio_buf_free(&p->buf);
    }
}

static void part_pop(cio_sendq *q)
{
    part_release(q, part_at(q, 0));
    q->head = (q->head + 1) & (q->cap - 1);
    q->count--;
    if (q->count == 0)
        q->open_tail = false;
}

/* ---- the queue -------------------------------------------------------------------- */

static void write_timer(cio_timer *t)
{
    cio_sendq *q = cio_container_of(t, cio_sendq, timer);
    q->on_error(q, -ETIMEDOUT);
}

void cio_sendq_init(cio_sendq *q, cio_transport *tp, size_t low, size_t high,
                    cio_time write_timeout, void (*on_error)(cio_sendq *q, int err))
{
    memset(q, 0, sizeof(*q));
    q->tp = tp;
    q->low = low;
    q->high = high > low ? high : low;
    q->write_timeout = write_timeout;
    q->on_error = on_error;
    cio_list_init(&q->due_link);
    cio_timer_init(&q->timer, NULL, write_timer);
    cio_event_init(&q->room);
}

void cio_sendq_reuse(cio_sendq *q, cio_transport *tp)
{
    cio_list_del(&q->due_link);
    q->tp = tp;
    q->closed = false;
    cio_event_clear(&q->room);
}

void cio_sendq_trim(cio_sendq *q, size_t keep)
{
    if (q->spare.cap > keep)
        cio_buf_free(&q->spare);
    if (q->count == 0 && q->cap > 8) {
        /* a burst of small broadcasts grew it (48 bytes a part): it would
         * stay with the cached state otherwise */
        free(q->parts);
        q->parts = NULL;
        q->cap = q->head = 0;
        q->open_tail = false;
    }
}

void cio_sendq_fini(cio_sendq *q)
{
    cio_list_del(&q->due_link);
    cio_timer_stop(&q->timer);
    while (q->count)
        part_pop(q);
    free(q->parts);
    q->parts = NULL;
    q->cap = 0;
    cio_buf_free(&q->spare);
    q->queued = q->inflight = 0;
    q->sending = false;
}

char *cio__sendq_reserve_part(cio_sendq *q, size_t n)
{
    if (!q->open_tail) {
        struct cio__sqpart *p = part_push(q);
        if (!p)
            return NULL;
        p->buf = q->spare; /* empty, possibly with capacity */
        q->spare = (cio_buf){0};
        q->open_tail = true;
        q->tail_buf = &p->buf;
        if (n < CHUNK_FIRST && cio_buf_reserve(&p->buf, CHUNK_FIRST) < 0)
            return NULL; /* one allocation rather than growing by doubling */
    }
    return cio_buf_space(q->tail_buf, n);
}

int cio_sendq_append(cio_sendq *q, const void *data, size_t n)
{
    char *dst = cio_sendq_reserve(q, n);
    if (!dst)
        return -ENOMEM;
    if (n)
        memcpy(dst, data, n);
    cio_sendq_commit(q, n);
    return 0;
}

int cio_sendq_append_seg(cio_sendq *q, cio_seg *seg, size_t off, size_t len)
{
    if (off > seg->len || len > seg->len - off)
        return -EINVAL;
    if (len == 0)
        return 0;
    struct cio__sqpart *p = part_push(q);
    if (!p)
        return -ENOMEM;
    p->seg = cio_seg_ref(seg);
    p->off = off;
    p->end = off + len;
    q->open_tail = false; /* copies after it go to a new chunk */
    q->queued += len;
    return 0;
}

/* Gathers the next slice from the front parts and hands it to the
 * transport, with the write timeout armed for it. */
static int send_slice(cio_sendq *q)
{
    size_t total = 0;
    unsigned n = 0;
    for (uint32_t i = 0; i < q->count && n < CIO_SENDQ_IOV && total < SLICE; i++) {
        struct cio__sqpart *p = part_at(q, i);
        size_t len = part_end(p) - p->off;
        if (len > SLICE - total)
            len = SLICE - total;
        if (len == 0)
            continue;
        q->iov[n].iov_base = (void *)(part_data(p) + p->off);
        q->iov[n].iov_len = len;
        n++;
        total += len;
        if (i == q->count - 1)
            q->open_tail = false; /* in flight now: it must not move */
    }
    if (total == 0)
        return 0;
    if (cio_timer_start(&q->timer, cio_now() + q->write_timeout) < 0)
        return -ENOMEM; /* a send without its timeout could hang forever */
    int rc = q->tp->ops->send(q->tp, q->iov, n);
    if (rc < 0) {
        cio_timer_stop(&q->timer);
        return rc;
    }
    q->sending = true;
    q->inflight = total;
    return 0;
}

int cio_sendq_flush(cio_sendq *q)
{
    cio_list_del(&q->due_link); /* due now, not at the end of the turn */
    if (q->sending || q->closed || q->queued == 0)
        return 0;
    return send_slice(q);
}

void cio_sendq_flush_soon(cio_sendq *q)
{
    if (q->sending || q->closed || q->queued == 0 || !cio_list_empty(&q->due_link))
        return;
    cio_loop *l = cio__tls_loop;
    if (l && !l->closing) {
        cio_list_push(&l->sendq_due, &q->due_link);
        return;
    }
    int rc = send_slice(q);
    if (rc < 0)
        q->on_error(q, rc);
}

void cio__sendq_run_due(cio_loop *l)
{
    /* on_error may close queues (unlinking them) or, through callbacks,
     * link more: popping one at a time copes with both. */
    for (cio_list *n; (n = cio_list_pop(&l->sendq_due)) != NULL;) {
        cio_sendq *q = cio_container_of(n, cio_sendq, due_link);
        if (q->sending || q->closed || q->queued == 0)
            continue;
        int rc = send_slice(q);
        if (rc < 0)
            q->on_error(q, rc);
    }
}

int cio_sendq_sent(cio_sendq *q, int err)
{
    cio_timer_stop(&q->timer);
    q->sending = false;
    if (err < 0)
        return err;
    size_t done = q->inflight;
    q->inflight = 0;
    q->queued -= done;
    /* Retire what went out (and any part left empty), front first. */
    while (q->count) {
        struct cio__sqpart *p = part_at(q, 0);
        size_t end = part_end(p);
        size_t k = end - p->off < done ? end - p->off : done;
        p->off += k;
        done -= k;
        if (p->off < end)
            break;
        part_pop(q);
    }
    if (q->queued <= q->low)
        cio_event_set(&q->room); /* writers waiting for room go on */
    if (q->closed)
        return 1;
    if (q->queued) {
        cio_sendq_flush_soon(q); /* with whatever else this turn queues */
        return 0;
    }
    return 1;
}

int cio_sendq_wait_room(cio_sendq *q, cio_time deadline)
{
    while (q->queued > q->high) {
        if (q->closed)
            return -EPIPE;
        int rc = cio_sendq_flush(q);
        if (rc < 0)
            return rc;
        cio_event_clear(&q->room);
        rc = cio_event_wait(&q->room, deadline);
        if (rc < 0)
            return rc;
        if (q->queued <= q->low)
            break;
    }
    return q->closed ? -EPIPE : 0;
}

void cio_sendq_close(cio_sendq *q)
{
    q->closed = true;
    cio_list_del(&q->due_link);
    cio_timer_stop(&q->timer);
    cio_event_set(&q->room); /* a writer waiting for room learns */
}
