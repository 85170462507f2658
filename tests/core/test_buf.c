/* The growable buffer, shared segments and the send queue, over a transport
 * whose sends complete only when the test says so. */
#include "harness.h"

#include <string.h>

/* ---- cio_buf ------------------------------------------------------------------------ */

START_TEST(buf_append_reserve_consume)
{
    cio_buf b = {0};
    ck_assert_int_eq(cio_buf_append(&b, "hello", 5), 0);
    char *p = cio_buf_space(&b, 6);
    ck_assert_ptr_nonnull(p);
    memcpy(p, " world", 6);
    b.len += 6;
    ck_assert_int_eq(b.len, 11);
    ck_assert(memcmp(b.p, "hello world", 11) == 0);
    cio_buf_consume(&b, 6);
    ck_assert_int_eq(b.len, 5);
    ck_assert(memcmp(b.p, "world", 5) == 0);
    cio_buf_consume(&b, 99);
    ck_assert_int_eq(b.len, 0);
    cio_buf_free(&b);
    ck_assert_ptr_null(b.p);
    ck_assert_int_eq(b.cap, 0);
}
END_TEST

/* Growth doubles: a megabyte appended byte by byte costs about ten
 * reallocations, not a million. */
START_TEST(buf_grows_by_doubling)
{
    cio_buf b = {0};
    int grew = 0;
    size_t cap = 0;
    for (int i = 0; i < 1 << 20; i++) {
        ck_assert_int_eq(cio_buf_append(&b, "x", 1), 0);
        if (b.cap != cap)
            grew++, cap = b.cap;
    }
    ck_assert_int_le(grew, 12);
    ck_assert_int_eq(b.len, 1 << 20);
    ck_assert_int_eq(cio_buf_reserve(&b, SIZE_MAX - 8), -ENOMEM);
    ck_assert_int_eq(b.len, 1 << 20); /* unchanged */
    cio_buf_free(&b);
}
END_TEST

/* ---- a transport that records sends and completes them on demand --------------------- */

typedef struct rec {
    cio_transport t;
    char out[1 << 20];
    size_t out_len;
    unsigned sends, last_niov;
    size_t last_len;
    bool pending;
    int fail; /* the next send returns this (-errno) */
} rec;

static int rec_send(cio_transport *t, struct iovec *iov, unsigned n)
{
    rec *r = cio_container_of(t, rec, t);
    ck_assert(!r->pending); /* one send at a time */
    if (r->fail) {
        int rc = r->fail;
        r->fail = 0;
        return rc;
    }
    r->last_len = 0;
    for (unsigned i = 0; i < n; i++) {
        ck_assert(r->out_len + iov[i].iov_len <= sizeof(r->out));
        memcpy(r->out + r->out_len, iov[i].iov_base, iov[i].iov_len);
        r->out_len += iov[i].iov_len;
        r->last_len += iov[i].iov_len;
    }
    r->last_niov = n;
    r->sends++;
    r->pending = true;
    return 0;
}

static const cio_transport_ops rec_ops = {.send = rec_send};

static int timeouts, last_error;
static void on_error(cio_sendq *q, int err)
{
    (void)q;
    last_error = err;
    if (err == -ETIMEDOUT)
        timeouts++;
}

/* Lets the loop finish its turn: the slices due at its end go out. */
static void next_turn(void)
{
    ck_assert_int_eq(cio_sleep(1), 0);
}

/* Completes the send in flight and lets the turn end (the next slice leaves
 * then); returns cio_sendq_sent's answer. */
static int complete(rec *r, cio_sendq *q)
{
    ck_assert(r->pending);
    r->pending = false;
    int rc = cio_sendq_sent(q, 0);
    next_turn();
    return rc;
}

static rec *rec_new(cio_sendq *q, size_t low, size_t high, cio_time write_timeout)
{
    rec *r = calloc(1, sizeof(*r));
    r->t.ops = &rec_ops;
    cio_sendq_init(q, &r->t, low, high, write_timeout, on_error);
    return r;
}

/* ---- cio_sendq -------------------------------------------------------------------------- */

static intptr_t main_order(void *arg)
{
    (void)arg;
    cio_sendq q;
    rec *r = rec_new(&q, 1024, 4096, CIO_SEC(5));
    cio_seg *seg = cio_seg_new(5);
    memcpy(seg->data, "SHARE", 5);
    ck_assert_int_eq(cio_sendq_append(&q, "head ", 5), 0);
    ck_assert_int_eq(cio_sendq_append_seg(&q, seg, 1, 3), 0); /* "HAR" */
    ck_assert_int_eq(cio_sendq_append(&q, " tail", 5), 0);
    ck_assert_int_eq(seg->refs, 2);
    ck_assert_int_eq(r->sends, 0); /* nothing leaves before a flush */
    ck_assert_int_eq(cio_sendq_pending(&q), 13);
    ck_assert_int_eq(cio_sendq_flush(&q), 0);
    ck_assert_int_eq(r->sends, 1);
    ck_assert_int_eq(r->last_niov, 3); /* one gathered send */
    ck_assert(cio_sendq_busy(&q));
    /* appended while a send is in flight: follows it, in order */
    ck_assert_int_eq(cio_sendq_append(&q, "!", 1), 0);
    ck_assert_int_eq(cio_sendq_flush(&q), 0);
    ck_assert_int_eq(r->sends, 1);
    ck_assert_int_eq(complete(r, &q), 0);
    ck_assert_int_eq(r->sends, 2);
    ck_assert_int_eq(complete(r, &q), 1);
    ck_assert_int_eq(cio_sendq_pending(&q), 0);
    r->out[r->out_len] = 0;
    ck_assert_str_eq(r->out, "head HAR tail!");
    ck_assert_int_eq(seg->refs, 1); /* the queue let go of it */
    cio_seg_unref(seg);
    cio_sendq_fini(&q);
    free(r);
    return 0;
}

START_TEST(sendq_keeps_order_and_gathers)
{
    ck_assert_int_eq(t_run(main_order, NULL), 0);
}
END_TEST

/* A broadcast frame queued on many connections: one copy, freed when the
 * last queue has sent it (or was torn down). */
static intptr_t main_shared(void *arg)
{
    (void)arg;
    enum { N = 3 };
    cio_sendq q[N];
    rec *r[N];
    cio_seg *seg = cio_seg_new(4);
    memcpy(seg->data, "ping", 4);
    for (int i = 0; i < N; i++) {
        r[i] = rec_new(&q[i], 1024, 4096, CIO_SEC(5));
        ck_assert_int_eq(cio_sendq_append_seg(&q[i], seg, 0, 4), 0);
        ck_assert_int_eq(cio_sendq_flush(&q[i]), 0);
    }
    cio_seg_unref(seg); /* the encoder's reference */
    ck_assert_int_eq(seg->refs, N);
    ck_assert_int_eq(complete(r[0], &q[0]), 1);
    ck_assert_int_eq(complete(r[1], &q[1]), 1);
    ck_assert_int_eq(seg->refs, 1);
    for (int i = 0; i < N; i++) {
        ck_assert(memcmp(r[i]->out, "ping", 4) == 0);
        cio_sendq_fini(&q[i]); /* the last one drops the last reference */
        free(r[i]);
    }
    return 0;
}

START_TEST(sendq_shares_segments)
{
    ck_assert_int_eq(t_run(main_shared, NULL), 0);
}
END_TEST

/* Output leaves in slices of 64 KiB, each with its own write deadline: a
 * slow but steady reader is never cut off; one that stops is. */
static intptr_t main_slices(void *arg)
{
    (void)arg;
    static char big[200 * 1024];
    memset(big, 'b', sizeof(big));
    cio_sendq q;
    rec *r = rec_new(&q, 64 * 1024, 256 * 1024, CIO_MS(250));
    timeouts = 0;
    ck_assert_int_eq(cio_sendq_append(&q, big, sizeof(big)), 0);
    ck_assert_int_eq(cio_sendq_flush(&q), 0);
    int rc = 0;
    while (rc == 0) {
        ck_assert_int_le(r->last_len, 64 * 1024);
        cio_sleep(CIO_MS(150)); /* each slice takes more than half the timeout */
        rc = complete(r, &q);
    }
    ck_assert_int_eq(rc, 1);
    ck_assert_int_eq(r->sends, 4);
    ck_assert_int_eq(timeouts, 0);
    ck_assert_int_eq(r->out_len, sizeof(big));
    /* a reader that stops */
    ck_assert_int_eq(cio_sendq_append(&q, "x", 1), 0);
    ck_assert_int_eq(cio_sendq_flush(&q), 0);
    cio_time until = cio_after(CIO_SEC(5));
    while (!timeouts && cio_now() < until)
        cio_sleep(CIO_MS(10));
    ck_assert_int_eq(timeouts, 1);
    cio_sendq_close(&q);
    cio_sendq_fini(&q);
    free(r);
    return 0;
}

START_TEST(sendq_slices_with_a_write_timeout_each)
{
    ck_assert_int_eq(t_run(main_slices, NULL), 0);
}
END_TEST

typedef struct writer_arg {
    cio_sendq *q;
    int rc;
    bool done;
} writer_arg;

static intptr_t writer(void *arg)
{
    writer_arg *w = arg;
    w->rc = cio_sendq_wait_room(w->q, CIO_NEVER);
    w->done = true;
    return 0;
}

/* Above the high watermark a writer waits, until the queue is down to the
 * low one; a close wakes it with -EPIPE. */
static intptr_t main_watermarks(void *arg)
{
    (void)arg;
    static char data[64 * 1024];
    cio_sendq q;
    rec *r = rec_new(&q, 64 * 1024, 128 * 1024, CIO_SEC(5));
    for (int i = 0; i < 4; i++) /* 256 KiB */
        ck_assert_int_eq(cio_sendq_append(&q, data, sizeof(data)), 0);
    writer_arg w = {.q = &q};
    cio_task *t;
    ck_assert_int_eq(cio_spawn(NULL, &t, writer, &w), 0);
    cio_sleep(CIO_MS(5));
    ck_assert(!w.done);
    ck_assert_int_eq(r->sends, 1);        /* the waiter flushed */
    ck_assert_int_eq(complete(r, &q), 0); /* 192 KiB left: above high */
    cio_sleep(CIO_MS(5));
    ck_assert(!w.done);
    ck_assert_int_eq(complete(r, &q), 0); /* 128 KiB: not above high, not yet low */
    cio_sleep(CIO_MS(5));
    ck_assert(!w.done);
    ck_assert_int_eq(complete(r, &q), 0); /* 64 KiB: low */
    cio_sleep(CIO_MS(5));
    ck_assert(w.done);
    ck_assert_int_eq(w.rc, 0);
    cio_join(t, CIO_NEVER);

    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(cio_sendq_append(&q, data, sizeof(data)), 0);
    w = (writer_arg){.q = &q};
    ck_assert_int_eq(cio_spawn(NULL, &t, writer, &w), 0);
    cio_sleep(CIO_MS(5));
    ck_assert(!w.done);
    cio_sendq_close(&q);
    cio_sleep(CIO_MS(5));
    ck_assert(w.done);
    ck_assert_int_eq(w.rc, -EPIPE);
    cio_join(t, CIO_NEVER);
    ck_assert_int_eq(cio_sendq_flush(&q), 0); /* closed: nothing more goes out */
    cio_sendq_fini(&q);
    free(r);
    return 0;
}

START_TEST(sendq_watermarks_hold_writers_back)
{
    ck_assert_int_eq(t_run(main_watermarks, NULL), 0);
}
END_TEST

/* What one turn of the loop queues leaves at its end in one send, also
 * after a completed send; a queue closed before then sends nothing; a send
 * started at the end of a turn that fails goes to on_error. */
static intptr_t main_batching(void *arg)
{
    (void)arg;
    cio_sendq q;
    rec *r = rec_new(&q, 1024, 4096, CIO_SEC(5));
    cio_seg *seg = cio_seg_new(3);
    memcpy(seg->data, "SEG", 3);
    ck_assert_int_eq(cio_sendq_append(&q, "one ", 4), 0);
    cio_sendq_flush_soon(&q);
    ck_assert_int_eq(cio_sendq_append_seg(&q, seg, 0, 3), 0);
    cio_sendq_flush_soon(&q);
    ck_assert_int_eq(r->sends, 0); /* not before the turn ends */
    next_turn();
    ck_assert_int_eq(r->sends, 1);
    ck_assert_int_eq(r->last_len, 7);
    /* completed while more was queued: the rest of the turn joins it */
    ck_assert_int_eq(cio_sendq_append(&q, " two", 4), 0);
    cio_sendq_flush_soon(&q); /* in flight: waits for the completion */
    r->pending = false;
    ck_assert_int_eq(cio_sendq_sent(&q, 0), 0);
    /* between two slices the queue is not idle (regression: it looked idle
     * until the turn ended, and HTTP closed connections mid-response) */
    ck_assert(cio_sendq_busy(&q));
    ck_assert_int_eq(cio_sendq_append_seg(&q, seg, 0, 3), 0);
    cio_sendq_flush_soon(&q);
    ck_assert_int_eq(r->sends, 1);
    next_turn();
    ck_assert_int_eq(r->sends, 2);
    ck_assert_int_eq(r->last_len, 7);
    ck_assert_int_eq(complete(r, &q), 1);
    r->out[r->out_len] = 0;
    ck_assert_str_eq(r->out, "one SEG twoSEG");
    /* a failure at the end of the turn */
    last_error = 0;
    r->fail = -ECONNRESET;
    ck_assert_int_eq(cio_sendq_append(&q, "x", 1), 0);
    cio_sendq_flush_soon(&q);
    next_turn();
    ck_assert_int_eq(last_error, -ECONNRESET);
    ck_assert(!cio_sendq_busy(&q));
    /* closed before the turn ends: nothing goes out */
    cio_sendq_flush_soon(&q);
    cio_sendq_close(&q);
    next_turn();
    ck_assert_int_eq(r->sends, 2);
    cio_sendq_fini(&q);
    cio_seg_unref(seg);
    free(r);
    return 0;
}

START_TEST(sendq_batches_a_turn_into_one_send)
{
    ck_assert_int_eq(t_run(main_batching, NULL), 0);
}
END_TEST

/* More parts than one send gathers: they leave over several sends. */
static intptr_t main_many_parts(void *arg)
{
    (void)arg;
    cio_sendq q;
    rec *r = rec_new(&q, 1024, 4096, CIO_SEC(5));
    char want[64];
    size_t n = 0;
    for (int i = 0; i < 20; i++) {
        cio_seg *s = cio_seg_new(1);
        s->data[0] = (uint8_t)('a' + i);
        ck_assert_int_eq(cio_sendq_append_seg(&q, s, 0, 1), 0);
        cio_seg_unref(s);
        char d = (char)('A' + i);
        ck_assert_int_eq(cio_sendq_append(&q, &d, 1), 0);
        want[n++] = (char)('a' + i);
        want[n++] = d;
    }
    ck_assert_int_eq(cio_sendq_flush(&q), 0);
    int rc;
    while ((rc = complete(r, &q)) == 0)
        ck_assert_int_le(r->last_niov, CIO_SENDQ_IOV);
    ck_assert_int_eq(rc, 1);
    ck_assert_int_ge(r->sends, 40 / CIO_SENDQ_IOV);
    ck_assert_int_eq(r->out_len, n);
    ck_assert(memcmp(r->out, want, n) == 0);
    /* the ring grew for 40 parts; an idle queue gives it back when trimmed */
    ck_assert_uint_ge(q.cap, 32);
    cio_sendq_trim(&q, 4096);
    ck_assert_uint_eq(q.cap, 0);
    ck_assert_ptr_null(q.parts);
    ck_assert_int_eq(cio_sendq_append(&q, "again", 5), 0); /* and still works */
    ck_assert_int_eq(cio_sendq_flush(&q), 0);
    ck_assert_int_eq(complete(r, &q), 1);
    cio_sendq_fini(&q);
    free(r);
    return 0;
}

START_TEST(sendq_many_parts_over_several_sends)
{
    ck_assert_int_eq(t_run(main_many_parts, NULL), 0);
}
END_TEST

/* ---- the budget ---------------------------------------------------------------- */

static int nwoken;

typedef struct budget_case {
    cio_budget b;
    cio_budget_waiter w[2];
} budget_case;

static void woke_one(cio_budget_waiter *w)
{
    (void)w;
    nwoken++;
}

static intptr_t main_budget(void *arg)
{
    (void)arg;
    budget_case k;
    cio_budget_init(&k.b, NULL, 1000);
    size_t a = 0, b = 0;
    cio_budget_charge(&k.b, &a, 800);
    ck_assert(cio_budget_admit(&k.b, 200));  /* fits exactly */
    ck_assert(!cio_budget_admit(&k.b, 201)); /* refused, and counted */
    ck_assert_uint_eq(k.b.refused, 1);
    ck_assert(!cio_budget_over(&k.b));
    cio_budget_charge(&k.b, &b, 300); /* held bytes count past the limit */
    ck_assert_uint_eq(k.b.used, 1100);
    ck_assert(cio_budget_over(&k.b));
    ck_assert(!cio_budget_admit(&k.b, 0));
    for (int i = 0; i < 2; i++) {
        cio_budget_waiter_init(&k.w[i], woke_one);
        cio_budget_wait(&k.b, &k.w[i]);
        ck_assert(cio_budget_waiting(&k.w[i]));
    }
    ck_assert_uint_eq(k.b.paused, 2);
    cio_sleep(CIO_MS(5));
    ck_assert_int_eq(nwoken, 0); /* still full */
    cio_budget_charge(&k.b, &b, 200); /* 1000: at the limit, not below 7/8 of it */
    cio_sleep(CIO_MS(5));
    ck_assert_int_eq(nwoken, 0);
    cio_budget_charge(&k.b, &a, 0); /* 200: room; woken from a timer, not from here */
    ck_assert_int_eq(nwoken, 0);
    for (int i = 0; i < 2000 && nwoken < 2; i++)
        cio_sleep(CIO_MS(1)); /* one per turn (the room is under one 64 KiB share) */
    ck_assert_int_eq(nwoken, 2);
    ck_assert(!cio_budget_waiting(&k.w[0]) && !cio_budget_waiting(&k.w[1]));
    ck_assert_uint_eq(k.b.peak, 1100);
    /* A cancelled waiter is not called. */
    cio_budget_charge(&k.b, &a, 2000);
    cio_budget_wait(&k.b, &k.w[0]);
    cio_budget_cancel(&k.b, &k.w[0]);
    cio_budget_cancel(&k.b, &k.w[0]); /* twice: harmless */
    cio_budget_charge(&k.b, &a, 0);
    cio_sleep(CIO_MS(5));
    ck_assert_int_eq(nwoken, 2);
    ck_assert_uint_eq(k.b.waiting, 0);
    cio_budget_charge(&k.b, &b, 0);
    ck_assert_uint_eq(k.b.used, 0); /* every owner gave back what it took */
    /* NULL: counts nothing, refuses nothing. */
    size_t z = 0;
    cio_budget_charge(NULL, &z, 5);
    ck_assert_uint_eq(z, 5);
    ck_assert(cio_budget_admit(NULL, SIZE_MAX) && !cio_budget_over(NULL));
    cio_budget_fini(&k.b);
    return 0;
}

START_TEST(budget_counts_admits_and_wakes_waiters)
{
    ck_assert_int_eq(t_run(main_budget, NULL), 0);
}
END_TEST

static Suite *buf_suite(void)
{
    Suite *s = suite_create("buf");
    T_CASE(s, buf_append_reserve_consume, 5);
    T_CASE(s, buf_grows_by_doubling, 10);
    T_CASE(s, budget_counts_admits_and_wakes_waiters, 5);
    T_CASE(s, sendq_keeps_order_and_gathers, 5);
    T_CASE(s, sendq_shares_segments, 5);
    T_CASE(s, sendq_slices_with_a_write_timeout_each, 5);
    T_CASE(s, sendq_watermarks_hold_writers_back, 5);
    T_CASE(s, sendq_many_parts_over_several_sends, 5);
    T_CASE(s, sendq_batches_a_turn_into_one_send, 5);
    return s;
}

T_MAIN(buf_suite)
