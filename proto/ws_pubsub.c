/*
 * ws_pubsub.c - named topics for WebSocket connections. A published message
 * is framed once into a shared segment (cio_seg) and queued by reference on
 * every subscriber's send queue: no per-subscriber copy. Subscribers that
 * negotiated permessage-deflate get one compressed segment shared by all of
 * them (the route negotiates server_no_context_takeover, so a compressed
 * frame depends on no connection's history, RFC 7692 7.1.1.1).
 */
#include "ws_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS_MIN 16

typedef struct ws_topic {
    struct ws_topic *next; /* in its bucket */
    cio_list subs;         /* ws_sub.topic_link */
    size_t nsubs;
    uint32_t hash;
    size_t len;
    char name[];
} ws_topic;

struct cio_ws_topics {
    ws_topic **buckets;
    size_t nbuckets, ntopics;
    cio_ws_topic_group *group; /* or NULL */
    size_t index;              /* in group */
    ws_deflate dfl; /* compresses broadcasts once: no context takeover */
    bool dfl_ready;
};

/* What a loop forwarded and another has not delivered yet stays below this
 * (a loop that falls behind loses messages, counted, rather than letting
 * the posts grow without bound). */
#define FORWARD_PENDING_MAX (64u << 20)

typedef struct group_slot {
    cio_ws_topics *topics; /* atomic: NULL until created and after destroyed */
    cio_loop *loop;
    size_t ntopics;        /* atomic: the member's topic count, to skip empty members */
    size_t pending;        /* atomic: bytes posted to it, not yet delivered */
} group_slot;

struct cio_ws_topic_group {
    size_t n;
    uint64_t dropped; /* atomic */
    group_slot slot[];
};

static uint32_t hash_name(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

int cio_ws_topics_create(cio_ws_topics **out)
{
    cio_ws_topics *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->buckets = calloc(BUCKETS_MIN, sizeof(*t->buckets));
    if (!t->buckets) {
        free(t);
        return -ENOMEM;
    }
    t->nbuckets = BUCKETS_MIN;
    *out = t;
    return 0;
}

void cio_ws_topics_destroy(cio_ws_topics *t)
{
    if (!t)
        return;
    if (t->group) {
        /* Messages still on their way here find no topics and are dropped. */
        __atomic_store_n(&t->group->slot[t->index].ntopics, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&t->group->slot[t->index].topics, NULL, __ATOMIC_RELEASE);
    }
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (ws_topic *tp = t->buckets[i], *next; tp; tp = next) {
            next = tp->next;
            /* connections still subscribed drop their links when they go */
            for (cio_list *n; (n = cio_list_pop(&tp->subs)) != NULL;)
                ws_sub_detach(cio_container_of(n, ws_sub, topic_link));
            free(tp);
        }
    }
    if (t->dfl_ready)
        ws_deflate_fini(&t->dfl);
    free(t->buckets);
    free(t);
}

static void count_topics(cio_ws_topics *t);

static ws_topic *find(cio_ws_topics *t, const char *name, size_t n, uint32_t h)
{
    for (ws_topic *tp = t->buckets[h & (t->nbuckets - 1)]; tp; tp = tp->next)
        if (tp->hash == h && tp->len == n && memcmp(tp->name, name, n) == 0)
            return tp;
    return NULL;
}

static void grow(cio_ws_topics *t)
{
    size_t nb = t->nbuckets * 2;
    ws_topic **b = calloc(nb, sizeof(*b));
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (ws_topic *tp = t->buckets[i], *next; tp; tp = next) {
            next = tp->next;
            tp->next = b[tp->hash & (nb - 1)];
            b[tp->hash & (nb - 1)] = tp;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = nb;
}

static void topic_remove(cio_ws_topics *t, ws_topic *tp)
{
    ws_topic **pp = &t->buckets[tp->hash & (t->nbuckets - 1)];
    while (*pp != tp)
        pp = &(*pp)->next;
    *pp = tp->next;
    t->ntopics--;
    count_topics(t);
    free(tp);
}

int cio_ws_subscribe(cio_ws *ws, cio_ws_topics *t, const char *name)
{
    size_t n = strlen(name);
    uint32_t h = hash_name(name, n);
    ws_topic *tp = find(t, name, n, h);
    if (tp && ws_sub_find(ws, tp))
        return 0; /* already */
    if (!tp) {
        tp = malloc(sizeof(*tp) + n + 1);
        if (!tp)
            return -ENOMEM;
        cio_list_init(&tp->subs);
        tp->nsubs = 0;
        tp->hash = h;
        tp->len = n;
        memcpy(tp->name, name, n + 1);
        if (t->ntopics + 1 > t->nbuckets)
            grow(t);
        tp->next = t->buckets[h & (t->nbuckets - 1)];
        t->buckets[h & (t->nbuckets - 1)] = tp;
        t->ntopics++;
        count_topics(t);
    }
    ws_sub *s = ws_sub_add(ws, t, tp);
    if (!s) {
        if (tp->nsubs == 0)
            topic_remove(t, tp);
        return -ENOMEM;
    }
    cio_list_push(&tp->subs, &s->topic_link);
    tp->nsubs++;
    return 0;
}

void ws_sub_unlink(ws_sub *s)
{
    ws_topic *tp = s->topic;
    cio_list_del(&s->topic_link);
    if (--tp->nsubs == 0)
        topic_remove(s->topics, tp);
}

int cio_ws_unsubscribe(cio_ws *ws, cio_ws_topics *t, const char *name)
{
    size_t n = strlen(name);
    ws_topic *tp = find(t, name, n, hash_name(name, n));
    ws_sub *s = tp ? ws_sub_find(ws, tp) : NULL;
    if (!s)
        return -ENOENT;
    ws_sub_unlink(s);
    ws_sub_free(s);
    return 0;
}

size_t cio_ws_subscribers(cio_ws_topics *t, const char *name)
{
    size_t n = strlen(name);
    ws_topic *tp = find(t, name, n, hash_name(name, n));
    return tp ? tp->nsubs : 0;
}

/* The frame of a message in a new segment: header, then payload. */
static cio_seg *frame_seg(unsigned op, bool rsv1, const void *p, size_t n)
{
    uint8_t hdr[WS_HEADER_MAX];
    size_t hl = ws_frame_header(hdr, op, true, rsv1, n);
    cio_seg *s = cio_seg_new(hl + n);
    if (!s)
        return NULL;
    memcpy(s->data, hdr, hl);
    if (n)
        memcpy(s->data + hl, p, n);
    return s;
}

/* The compressed frame, made once: the payload is compressed into a
 * segment with room for the header in front, which is then moved up to
 * meet it (the header's length depends on the compressed length). */
static cio_seg *frame_seg_deflated(cio_ws_topics *t, unsigned op, const void *p, size_t n)
{
    if (!t->dfl_ready) {
        ws_deflate_params prm = {.server_no_context_takeover = true,
                                 .client_no_context_takeover = true,
                                 .server_max_window_bits = WS_SHARED_WINDOW_BITS,
                                 .client_max_window_bits = 15};
        if (ws_deflate_init(&t->dfl, &prm, NULL, SIZE_MAX) < 0)
            return NULL;
        t->dfl_ready = true;
    }
    cio_seg *s;
    if (ws_deflate_compress_seg(&t->dfl, p, n, WS_HEADER_MAX, &s) < 0)
        return NULL;
    size_t clen = s->len - WS_HEADER_MAX;
    uint8_t hdr[WS_HEADER_MAX];
    size_t hl = ws_frame_header(hdr, op, true, true, clen);
    memcpy(s->data + WS_HEADER_MAX - hl, hdr, hl);
    return s; /* the frame is data[WS_HEADER_MAX - hl, len) */
}

/* A message's frames, made when first needed: plain always the same;
 * deflated once for all subscribers that share compressed frames. */
typedef struct frames {
    unsigned op;
    const void *data; /* the payload */
    size_t len;
    cio_seg *plain;
    cio_seg *deflated;
    size_t doff; /* where the deflated frame starts in its segment */
    bool oom;
} frames;

static cio_seg *frames_plain(frames *f)
{
    if (!f->plain && !f->oom && !(f->plain = frame_seg(f->op, false, f->data, f->len)))
        f->oom = true;
    return f->plain;
}

/* Queues the message on every subscriber of tp but except; returns how
 * many took it. */
static size_t deliver(cio_ws_topics *t, ws_topic *tp, frames *f, cio_ws *except)
{
    size_t delivered = 0;
    /* Walk with the next node saved: a subscriber over its bound is closed,
     * which may unlink it from this topic. */
    cio_list *node = tp->subs.next;
    while (node != &tp->subs) {
        cio_list *next = node->next;
        ws_sub *s = cio_container_of(node, ws_sub, topic_link);
        cio_ws *ws = s->ws;
        node = next;
        if (ws == except || !ws_can_send(ws))
            continue;
        cio_seg *seg = NULL;
        size_t off = 0;
        if (ws_shares_deflated(ws) && f->len >= 32) {
            if (!f->deflated) {
                f->deflated = frame_seg_deflated(t, f->op, f->data, f->len);
                if (f->deflated) {
                    size_t clen = f->deflated->len - WS_HEADER_MAX;
                    uint8_t hdr[WS_HEADER_MAX];
                    f->doff = WS_HEADER_MAX - ws_frame_header(hdr, f->op, true, true, clen);
                }
            }
            seg = f->deflated;
            off = f->doff;
        }
        if (!seg && !(seg = frames_plain(f)))
            return delivered;
        if (ws_queue_seg(ws, seg, off, seg->len - off) == 0)
            delivered++;
    }
    return delivered;
}

static void forward(cio_ws_topics *t, const char *name, size_t n, frames *f);

int cio_ws_publish(cio_ws_topics *t, const char *name, bool binary, const void *data, size_t len,
                   cio_ws *except)
{
    size_t n = strlen(name);
    ws_topic *tp = find(t, name, n, hash_name(name, n));
    frames f = {.op = binary ? WS_OP_BINARY : WS_OP_TEXT, .data = data, .len = len};
    size_t delivered = tp ? deliver(t, tp, &f, except) : 0;
    if (t->group && !f.oom)
        forward(t, name, n, &f);
    cio_seg_unref(f.plain);
    cio_seg_unref(f.deflated);
    if (f.oom)
        return -ENOMEM;
    return (int)(delivered > INT32_MAX ? INT32_MAX : delivered);
}

/* ---- groups: topics spanning loops ------------------------------------------------------- */

int cio_ws_topic_group_create(size_t n, cio_ws_topic_group **out)
{
    if (n == 0)
        return -EINVAL;
    cio_ws_topic_group *g = calloc(1, sizeof(*g) + n * sizeof(group_slot));
    if (!g)
        return -ENOMEM;
    g->n = n;
    *out = g;
    return 0;
}

void cio_ws_topic_group_destroy(cio_ws_topic_group *g)
{
    free(g);
}

uint64_t cio_ws_topic_group_dropped(const cio_ws_topic_group *g)
{
    return __atomic_load_n(&g->dropped, __ATOMIC_RELAXED);
}

int cio_ws_topics_create_member(cio_ws_topic_group *g, size_t i, cio_ws_topics **out)
{
    cio_loop *loop = cio_loop_current();
    if (i >= g->n || !loop || __atomic_load_n(&g->slot[i].topics, __ATOMIC_ACQUIRE))
        return -EINVAL;
    int rc = cio_ws_topics_create(out);
    if (rc < 0)
        return rc;
    (*out)->group = g;
    (*out)->index = i;
    g->slot[i].loop = loop;
    __atomic_store_n(&g->slot[i].topics, *out, __ATOMIC_RELEASE);
    return 0;
}

static void count_topics(cio_ws_topics *t)
{
    if (t->group)
        __atomic_store_n(&t->group->slot[t->index].ntopics, t->ntopics, __ATOMIC_RELAXED);
}

/* A message on its way to another loop: the frames by reference. */
typedef struct ws_fwd {
    cio_ws_topic_group *g;
    size_t to;
    unsigned op;
    cio_seg *plain;    /* shared */
    cio_seg *deflated; /* shared, or NULL: the receiving loop makes it if needed */
    size_t doff, hl, charge;
    char name[];
} ws_fwd;

static void forwarded(void *arg)
{
    ws_fwd *m = arg;
    group_slot *sl = &m->g->slot[m->to];
    /* Only this loop sets or clears its own slot: a plain read is current. */
    cio_ws_topics *t = sl->topics;
    size_t n = strlen(m->name);
    ws_topic *tp = t ? find(t, m->name, n, hash_name(m->name, n)) : NULL;
    if (tp) {
        frames f = {.op = m->op,
                    .data = m->plain->data + m->hl,
                    .len = m->plain->len - m->hl,
                    .plain = m->plain,
                    .deflated = m->deflated,
                    .doff = m->doff};
        (void)deliver(t, tp, &f, NULL);
        m->plain = f.plain;
        m->deflated = f.deflated; /* made here if it was not: this loop's own */
    }
    __atomic_fetch_sub(&sl->pending, m->charge, __ATOMIC_RELAXED);
    cio_seg_unref(m->plain);
    cio_seg_unref(m->deflated);
    free(m);
}

/* Posts the message to every other member that has topics at all: the
 * frames cross by reference, one post per loop, none per subscriber. */
static void forward(cio_ws_topics *t, const char *name, size_t n, frames *f)
{
    cio_ws_topic_group *g = t->group;
    bool shared = false;
    for (size_t i = 0; i < g->n; i++) {
        group_slot *sl = &g->slot[i];
        if (i == t->index || !__atomic_load_n(&sl->topics, __ATOMIC_ACQUIRE) ||
            !__atomic_load_n(&sl->ntopics, __ATOMIC_RELAXED))
            continue;
        if (!frames_plain(f))
            return;
        size_t charge = f->plain->len + (f->deflated ? f->deflated->len : 0);
        ws_fwd *m = malloc(sizeof(*m) + n + 1);
        if (!m || __atomic_add_fetch(&sl->pending, charge, __ATOMIC_RELAXED) > FORWARD_PENDING_MAX) {
            if (m)
                __atomic_fetch_sub(&sl->pending, charge, __ATOMIC_RELAXED);
            free(m);
            __atomic_fetch_add(&g->dropped, 1, __ATOMIC_RELAXED);
            continue;
        }
        if (!shared) {
            cio_seg_share(f->plain);
            if (f->deflated)
                cio_seg_share(f->deflated);
            shared = true;
        }
        uint8_t hdr[WS_HEADER_MAX];
        *m = (ws_fwd){.g = g,
                      .to = i,
                      .op = f->op,
                      .plain = cio_seg_ref(f->plain),
                      .deflated = f->deflated ? cio_seg_ref(f->deflated) : NULL,
                      .doff = f->doff,
                      .hl = ws_frame_header(hdr, f->op, true, false, f->len),
                      .charge = charge};
        memcpy(m->name, name, n + 1);
        if (cio_loop_post(sl->loop, forwarded, m) < 0) {
            __atomic_fetch_sub(&sl->pending, charge, __ATOMIC_RELAXED);
            cio_seg_unref(m->plain);
            cio_seg_unref(m->deflated);
            free(m);
            __atomic_fetch_add(&g->dropped, 1, __ATOMIC_RELAXED);
        }
    }
}

/* ---- publishing from another thread ----------------------------------------------------- */

typedef struct ws_post {
    cio_ws_topics *t;
    bool binary;
    size_t len;
    char *name;
    uint8_t data[];
} ws_post;

static void post_publish(void *arg)
{
    ws_post *m = arg;
    (void)cio_ws_publish(m->t, m->name, m->binary, m->data, m->len, NULL);
    free(m);
}

int cio_ws_publish_post(cio_loop *loop, cio_ws_topics *t, const char *name, bool binary,
                        const void *data, size_t len)
{
    size_t n = strlen(name);
    ws_post *m = malloc(sizeof(*m) + len + n + 1);
    if (!m)
        return -ENOMEM;
    m->t = t;
    m->binary = binary;
    m->len = len;
    m->name = (char *)m->data + len;
    if (len)
        memcpy(m->data, data, len);
    memcpy(m->name, name, n + 1);
    int rc = cio_loop_post(loop, post_publish, m);
    if (rc < 0)
        free(m);
    return rc;
}
