/*
 * loop.c - the io_uring back end: ring setup, the loop turn, completion
 * dispatch, cross-thread posts and the run functions.
 *
 * One turn = at most one io_uring_enter (submit what the last turn queued
 * and, if no task is ready, wait for a completion or the earliest timer),
 * then dispatch the completions, fire due timers and run ready tasks. While
 * tasks are ready and nothing is queued for the kernel, the enter is skipped
 * unless ENTER_INTERVAL has passed since the last one: a busy loop still
 * reaps completions every few tens of microseconds, without a system call
 * per turn.
 *
 * Cross-thread posts go on a mutex-guarded list, and an eventfd read armed
 * in the ring wakes the loop. cio_loop_call builds on them with posts that
 * live in the caller's frame: there and back without an allocation.
 */
#include "cio_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#ifdef CIO_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#endif

#define ENTER_INTERVAL CIO_US(50)

/* ---- submission ------------------------------------------------------------- */

/* Errors with which the kernel refuses a submission for a while: its CQ is
 * backed up (-EBUSY, early IORING_FEAT_NODROP kernels) or it is short of
 * memory (-EAGAIN). */
static bool refusal_is_overload(int rc)
{
    return rc == -EBUSY || rc == -EAGAIN || rc == -ENOMEM || rc == -EINTR;
}

static int held_grow(cio_loop *l)
{
    uint32_t cap = l->held_cap ? l->held_cap * 2 : 64;
    cio__cqe *h = malloc(cap * sizeof(*h));
    if (!h)
        return -ENOMEM;
    for (uint32_t i = 0; i < l->held_len; i++) /* unwrap the ring */
        h[i] = l->held[(l->held_head + i) & (l->held_cap - 1)];
    free(l->held);
    l->held = h;
    l->held_head = 0;
    l->held_cap = cap;
    return 0;
}

/* Takes one CQE off the ring, advancing the head at once: a reap nested in a
 * callback (through cio__sqe) then starts after it. */
static bool cq_take(cio_loop *l, cio__cqe *out)
{
    unsigned head;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&l->ring, head, cqe)
    {
        *out = (cio__cqe){.data = cqe->user_data, .res = cqe->res, .flags = cqe->flags};
        io_uring_cqe_seen(&l->ring, cqe);
        return true;
    }
    return false;
}

/* Moves every CQE on the ring to the held queue, without running it (the
 * caller of cio__sqe is halfway through preparing an operation). */
static unsigned cq_hold(cio_loop *l)
{
    unsigned n = 0;
    while (io_uring_cq_ready(&l->ring)) {
        if (l->held_len == l->held_cap && held_grow(l) < 0)
            break;
        cq_take(l, &l->held[(l->held_head + l->held_len) & (l->held_cap - 1)]);
        l->held_len++;
        n++;
    }
    return n;
}

static void backoff(unsigned idle)
{
    if (idle < 16) {
        sched_yield();
        return;
    }
    struct timespec ts = {.tv_nsec = idle < 64 ? 100000 : 1000000};
    nanosleep(&ts, NULL);
}

/* Hands the queued SQEs to the kernel; returns once it took some, or once
 * the ring is known to be broken (l->ring_error, reported by the next turn).
 * A refusal for overload is waited out, never given up on: completions are
 * moved off the CQ into the held queue (they run in the next reap, in
 * order), the kernel's overflow list is flushed into the freed CQ, and the
 * submission is tried again; when nothing could be freed, it backs off. */
static void sq_flush(cio_loop *l)
{
    unsigned idle = 0;
    while (!l->ring_error && io_uring_sq_ready(&l->ring)) {
        int rc = io_uring_submit(&l->ring);
        l->stats.enters++;
        if (rc > 0)
            return;
        if (rc < 0 && !refusal_is_overload(rc)) {
            /* Not overload: a call from a thread that does not own the loop
             * (-EEXIST), completions lost (-EBADR). Stop the loop. */
            fprintf(stderr, "corio: io_uring submission failed: %s\n", strerror(-rc));
            l->ring_error = rc;
            return;
        }
        l->stats.submits_refused++;
        unsigned moved = cq_hold(l);
        if (io_uring_cq_has_overflow(&l->ring) || moved == 0) {
            (void)io_uring_get_events(&l->ring); /* flush the overflow, run task work */
            l->stats.enters++;
            moved += cq_hold(l);
        }
        if (moved)
            idle = 0;
        else
            backoff(++idle);
    }
}

struct io_uring_sqe *cio__sqe(cio_loop *l)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
    if (cio__likely(sqe != NULL))
        return sqe;
    sq_flush(l);
    sqe = io_uring_get_sqe(&l->ring);
    if (cio__unlikely(!sqe)) {
        /* The ring is broken: the caller still gets an SQE to fill, which
         * is never submitted; the loop stops with l->ring_error. */
        memset(&l->sqe_spare, 0, sizeof(l->sqe_spare));
        sqe = &l->sqe_spare;
    }
    return sqe;
}

void cio__sq_reserve(cio_loop *l, unsigned n)
{
    while (!l->ring_error && io_uring_sq_space_left(&l->ring) < n)
        sq_flush(l);
}

void cio__cancel_op(cio_loop *l, cio_completion *c)
{
    struct io_uring_sqe *sqe = cio__sqe(l);
    io_uring_prep_cancel(sqe, c, 0);
    io_uring_sqe_set_data(sqe, NULL);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

/* ---- cross-thread posts -------------------------------------------------------- */

static void efd_arm(cio_loop *l)
{
    struct io_uring_sqe *sqe = cio__sqe(l);
    io_uring_prep_read(sqe, l->efd, &l->efd_val, sizeof(l->efd_val), 0);
    cio__sqe_set_comp(l, sqe, &l->efd_comp);
    l->efd_armed = true;
}

static void posts_drain(cio_loop *l)
{
    pthread_mutex_lock(&l->post_lock);
    cio__post *p = l->post_head;
    l->post_head = l->post_tail = NULL;
    pthread_mutex_unlock(&l->post_lock);
    while (p) {
        cio__post *next = p->next;
        void (*fn)(void *) = p->fn;
        void *arg = p->arg;
        if (p->heap)
            free(p);
        if (fn)
            fn(arg); /* may end the life of a caller-owned p */
        p = next;
    }
}

static void efd_done(cio_completion *c, int32_t res, uint32_t flags)
{
    (void)flags;
    cio_loop *l = cio_container_of(c, cio_loop, efd_comp);
    l->efd_armed = false;
    /* Clear before draining: a post that lands after the drain signals again. */
    atomic_store(&l->efd_signalled, false);
    posts_drain(l);
    if (res < 0 && res != -ECANCELED && res != -EINTR && res != -EAGAIN)
        fprintf(stderr, "corio: loop wake-up read failed: %s\n", strerror(-res));
    if (!l->closing)
        efd_arm(l);
}

static void efd_signal(cio_loop *l)
{
    if (!atomic_exchange(&l->efd_signalled, true)) {
        uint64_t one = 1;
        ssize_t n = write(l->efd, &one, sizeof(one));
        (void)n; /* only fails if the counter would overflow: already signalled */
    }
}

/* Queues p (fn and arg set) on l and wakes it. */
static void post_push(cio_loop *l, cio__post *p)
{
    p->next = NULL;
    pthread_mutex_lock(&l->post_lock);
    if (l->post_tail)
        l->post_tail->next = p;
    else
        l->post_head = p;
    l->post_tail = p;
    /* Woken under the lock: the loop takes the post only afterwards, so a
     * post that lets the loop finish and be destroyed (the last pool job of
     * a worker loop) never has its poster touch the loop after that. */
    efd_signal(l);
    pthread_mutex_unlock(&l->post_lock);
}

int cio_loop_post(cio_loop *l, void (*fn)(void *arg), void *arg)
{
    cio__post *p = malloc(sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->fn = fn;
    p->arg = arg;
    p->heap = true;
    post_push(l, p);
    return 0;
}

/* ---- calls on other loops ---------------------------------------------------------- */

typedef struct call_batch call_batch;

/* One target's share of a call: the post there and the post back, in the
 * caller's frame, which waits until the post back has run. */
typedef struct {
    cio__post there, back;
    call_batch *b;
    size_t i;
} call_leg;

struct call_batch {
    void (*fn)(void *arg); /* cio_loop_call's, or */
    void (*fn_i)(void *arg, size_t i);
    void *arg;
    cio_loop *home;
    size_t pending; /* legs not back yet (home side) */
    cio_future done;
};

static void call_invoke(call_batch *b, size_t i)
{
    if (b->fn)
        b->fn(b->arg);
    else
        b->fn_i(b->arg, i);
}

/* On the target's thread. */
static void leg_there(void *arg)
{
    call_leg *g = arg;
    call_invoke(g->b, g->i);
    post_push(g->b->home, &g->back); /* g may be gone once this returns */
}

/* Back on the caller's thread. */
static void leg_back(void *arg)
{
    call_batch *b = ((call_leg *)arg)->b;
    if (--b->pending == 0) {
        b->home->external--;
        (void)cio_future_set(&b->done, 0);
    }
}

static int call_many(cio_loop *const *targets, size_t n, call_batch *b)
{
    cio_loop *self = cio__tls_loop;
    size_t foreign = 0;
    for (size_t i = 0; i < n; i++)
        foreign += targets[i] != self;
    if (foreign && !(self && self->current)) {
        fprintf(stderr, "corio: cio_loop_call to another loop outside a task\n");
        abort();
    }
    call_leg on_stack[8];
    call_leg *legs = foreign <= 8 ? on_stack : malloc(foreign * sizeof(*legs));
    if (!legs)
        return -ENOMEM;
    b->home = self;
    b->pending = foreign;
    cio_future_init(&b->done);
    if (foreign)
        self->external++; /* a cio_loop_run must wait for the legs to come back */
    for (size_t i = 0, k = 0; i < n; i++) {
        if (targets[i] == self)
            continue;
        call_leg *g = &legs[k++];
        *g = (call_leg){.there = {.fn = leg_there, .arg = g},
                        .back = {.fn = leg_back, .arg = g},
                        .b = b,
                        .i = i};
        post_push(targets[i], &g->there);
    }
    /* The current loop's entries meanwhile, while the others run. */
    for (size_t i = 0; i < n; i++)
        if (targets[i] == self)
            call_invoke(b, i);
    /* Shielded: the legs point into this frame until they are back. */
    if (foreign)
        cio__await_shielded(&b->done);
    if (legs != on_stack)
        free(legs);
    return 0;
}

int cio_loop_call(cio_loop *target, void (*fn)(void *arg), void *arg)
{
    target = cio__loop_or_current(target);
    if (target == cio__tls_loop) {
        fn(arg);
        return 0;
    }
    call_batch b = {.fn = fn, .arg = arg};
    return call_many(&target, 1, &b);
}

int cio_loop_call_all(cio_loop *const *targets, size_t n, void (*fn)(void *arg, size_t i), void *arg)
{
    call_batch b = {.fn_i = fn, .arg = arg};
    return call_many(targets, n, &b);
}

void cio_loop_stop(cio_loop *l)
{
    atomic_store(&l->stop, true);
    if (!pthread_equal(pthread_self(), l->thread))
        efd_signal(l);
}

/* ---- setup ---------------------------------------------------------------------- */

static int ring_setup(cio_loop *l, unsigned sq, unsigned cq)
{
    static const unsigned attempts[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    const char *plain = getenv("CORIO_PLAIN_RING"); /* test hook for the fallback path */
    size_t first = plain && *plain && *plain != '0' ? 3 : 0;
    int rc = -EINVAL;
    for (size_t i = first; i < sizeof(attempts) / sizeof(attempts[0]); i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = attempts[i] | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
        p.cq_entries = cq;
        rc = io_uring_queue_init_params(sq, &l->ring, &p);
        if (rc == 0) {
            /* Timed waits need EXT_ARG (5.11): without it liburing would
             * queue timeout SQEs of its own into our completions. */
            if (!(p.features & IORING_FEAT_EXT_ARG) || !(p.features & IORING_FEAT_NODROP)) {
                io_uring_queue_exit(&l->ring);
                return -ENOTSUP;
            }
            l->ring_flags = p.flags;
            return 0;
        }
        if (rc != -EINVAL)
            break;
    }
    return rc;
}

int cio_loop_create(cio_loop **out, const cio_loop_opts *opts)
{
    cio_loop_opts o = {0};
    if (opts)
        o = *opts;
    if (!o.sq_entries)
        o.sq_entries = 1024;
    if (o.sq_entries < 2)
        o.sq_entries = 2; /* a linked pair must fit in one submission */
    if (!o.cq_entries)
        o.cq_entries = o.sq_entries * 16;

    cio_loop *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    int rc = ring_setup(l, o.sq_entries, o.cq_entries);
    if (rc < 0) {
        free(l);
        return rc;
    }
    (void)io_uring_register_ring_fd(&l->ring);

    struct io_uring_probe *probe = io_uring_get_probe_ring(&l->ring);
    if (probe) {
        l->msg_ring_ok = io_uring_opcode_supported(probe, IORING_OP_MSG_RING);
        io_uring_free_probe(probe);
    }

    l->efd = eventfd(0, EFD_CLOEXEC);
    if (l->efd < 0) {
        rc = -errno;
        io_uring_queue_exit(&l->ring);
        free(l);
        return rc;
    }
    pthread_mutex_init(&l->post_lock, NULL);
    atomic_init(&l->efd_signalled, false);
    atomic_init(&l->stop, false);
    l->efd_comp.fn = efd_done;
    l->thread = pthread_self();
    cio_list_init(&l->tasks);
    cio_list_init(&l->writers);
    cio_list_init(&l->sendq_due);
    cio_list_init(&l->bufwait);
    /* 256 x 16 KiB: at most 1 MiB of buffer pages is ever touched by small
     * requests, and 1000 busy connections measured as fast as with 1024. */
    unsigned bc = o.buf_count ? o.buf_count : 256;
    if (bc > 32768)
        bc = 32768;
    l->buf_count = 1;
    while (l->buf_count < bc)
        l->buf_count <<= 1; /* the ring size must be a power of 2 */
    l->buf_size = o.buf_size ? o.buf_size : 16 * 1024;
    l->now = cio_clock();
    atomic_init(&l->last_turn, l->now);
    cio__stacks_init(l, o.stack_size);
    cio_timer_init(&l->lag_timer, l, cio__lag_tick);
    cio_timer_init(&l->heap_timer, l, NULL);
#ifdef CIO_HAVE_VALGRIND
    /* valgrind (3.19) does not count io_uring_enter as a blocking call: it
     * keeps its big thread lock across it, so pool workers would never run.
     * Under valgrind only, wait in slices of 10 ms and yield after each. */
    if (RUNNING_ON_VALGRIND)
        l->wait_slice = CIO_MS(10);
#endif
    cio__tls_loop = l;
    efd_arm(l);
    *out = l;
    return 0;
}

/* ---- the turn ---------------------------------------------------------------------- */

/* The next completion to run: held ones first (they came off the CQ
 * earlier), then the ring's. */
static bool next_cqe(cio_loop *l, cio__cqe *out)
{
    if (l->held_len) {
        *out = l->held[l->held_head];
        l->held_head = (l->held_head + 1) & (l->held_cap - 1);
        l->held_len--;
        return true;
    }
    return cq_take(l, out);
}

static unsigned reap(cio_loop *l)
{
    unsigned n = 0;
    cio__cqe e;
    while (next_cqe(l, &e)) {
        n++;
        cio_completion *c = (cio_completion *)(uintptr_t)e.data;
        if (!c)
            continue; /* a cancel request's own completion */
        if (!(e.flags & IORING_CQE_F_MORE))
            l->inflight--;
        c->fn(c, e.res, e.flags);
    }
    if (l->br_returned)
        cio__bufring_publish(l);
    return n;
}

static int turn(cio_loop *l)
{
    if (l->ring_error)
        return l->ring_error;
    int rc = 0;
    /* Completions held back by a refused submission count as work ready to
     * run: waiting for a new one first could wait forever. */
    bool busy = l->ready_head != NULL || l->held_len;
    if (busy) {
        if (io_uring_sq_ready(&l->ring) || l->now - l->last_enter >= ENTER_INTERVAL) {
            rc = io_uring_submit_and_get_events(&l->ring);
            l->stats.enters++;
            l->last_enter = l->now;
        }
    } else {
        cio_time next = cio__timers_next(l);
        if (l->wait_slice && next - l->now > l->wait_slice)
            next = l->now + l->wait_slice;
        l->stats.enters++;
        if (next == CIO_NEVER) {
            rc = io_uring_submit_and_wait(&l->ring, 1);
        } else {
            cio_time wait = next - cio_clock();
            if (wait <= 0) {
                rc = io_uring_submit_and_get_events(&l->ring);
            } else {
                struct __kernel_timespec ts = {.tv_sec = wait / 1000000000,
                                               .tv_nsec = wait % 1000000000};
                struct io_uring_cqe *cqe;
                rc = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
            }
        }
    }
    if (rc < 0 && rc != -ETIME && !refusal_is_overload(rc))
        return rc; /* overload is reaped away below; the next turn submits */
    if (l->wait_slice)
        sched_yield();

    /* Read the clock before running completions: a deadline a callback sets
     * (cio_now() + timeout) must count from now, not from before the wait. */
    l->now = cio_clock();
    if (!busy)
        l->last_enter = l->now;
    unsigned n = reap(l);
    while (io_uring_cq_has_overflow(&l->ring)) {
        /* The kernel kept what did not fit (IORING_FEAT_NODROP); flush it. */
        l->stats.cq_overflows++;
        (void)io_uring_get_events(&l->ring);
        n += reap(l);
    }
    if (!cio_list_empty(&l->bufwait))
        cio__net_rearm(l); /* buffers went back during the reap */
    l->stats.cqes += n;
    l->stats.turns++;
    if (n)
        l->now = cio_clock(); /* the callbacks took time: timers and tasks see it */
    cio__timers_fire(l);
    cio__run_ready(l);
    if (!cio_list_empty(&l->sendq_due))
        cio__sendq_run_due(l); /* one send per connection for all this turn queued */
    if (!cio_list_empty(&l->writers))
        cio__log_flush(l);
    /* Relaxed: a plain store on the loop's side; readers want a time, not
     * an ordering. */
    atomic_store_explicit(&l->last_turn, l->now, memory_order_relaxed);
    return 0;
}

/* Nothing can happen any more unless another thread posts. */
static bool quiet(const cio_loop *l)
{
    return !l->ready_head && cio_list_empty(&l->sendq_due) && l->inflight - (l->efd_armed ? 1 : 0) == 0 && l->external == 0 &&
           l->heap_len - l->weak_timers == 0;
}

/* Turns until 'until' is done (if given; then quietness does not end the run,
 * since a post from another thread may still complete it), stop is requested
 * (if honoured), there are no tasks (if asked) or the loop is quiet. */
static int run(cio_loop *l, cio_future *until, bool honour_stop, bool until_no_tasks)
{
    cio_loop *prev = cio__tls_loop;
    cio__tls_loop = l;
    l->now = cio_clock();
    int rc = 0;
    for (;;) {
        if (honour_stop && atomic_load(&l->stop))
            break;
        if (until && until->done)
            break;
        if (until_no_tasks && cio_list_empty(&l->tasks))
            break;
        if (!until && quiet(l))
            break;
        rc = turn(l);
        if (rc < 0)
            break;
    }
    cio__tls_loop = prev ? prev : l;
    return rc;
}

int cio_loop_run(cio_loop *l)
{
    int rc = run(l, NULL, true, false);
    atomic_store(&l->stop, false);
    return rc;
}

intptr_t cio_run(cio_loop *l, cio_fn fn, void *arg)
{
    cio_task *main;
    int rc = cio_spawn(l, &main, fn, arg);
    if (rc < 0)
        return rc;
    rc = run(l, &main->done, true, false);
    /* A stop during the main phase ends it; one requested by the main task
     * itself (it is done) also cuts the clean-up short. */
    if (!main->done.done)
        atomic_store(&l->stop, false);
    /* Cancel whatever is still alive (the main task too, if the loop was
     * stopped or deadlocked) and let it unwind. */
    while (rc == 0 && !cio_list_empty(&l->tasks) && !atomic_load(&l->stop)) {
        for (cio_list *n = l->tasks.next; n != &l->tasks; n = n->next)
            cio_task_cancel(cio_container_of(n, cio_task, all_link));
        rc = run(l, NULL, true, true);
        if (rc == 0 && quiet(l) && !cio_list_empty(&l->tasks)) {
            /* Suspended where cancellation cannot reach (a shielded wait on
             * something nobody will complete): report, do not spin. */
            fprintf(stderr, "corio: %llu task(s) deadlocked at exit\n",
                    (unsigned long long)l->stats.tasks_live);
            break;
        }
    }
    intptr_t result = main->done.done ? main->done.result : (rc < 0 ? rc : -ECANCELED);
    atomic_store(&l->stop, false);
    cio_detach(main);
    return result;
}

/* ---- teardown and introspection -------------------------------------------------------- */

void cio_loop_destroy(cio_loop *l)
{
    if (!l)
        return;
    l->closing = true;
    cio__tls_loop = l;
    if (l->efd_armed) {
        cio__cancel_op(l, &l->efd_comp);
        while (l->efd_armed) {
            int rc = io_uring_submit_and_wait(&l->ring, 1);
            if (rc < 0 && rc != -EINTR)
                break;
            reap(l);
        }
    }
    cio__log_flush(l);
    while (l->inflight > 0) {
        /* Operations left behind (e.g. log writes): let them finish. */
        if (io_uring_submit_and_wait(&l->ring, 1) < 0)
            break;
        reap(l);
    }
    cio_log_writer_destroy(l->log);
    l->log = NULL;
    /* Writers the application forgot: write out and detach (a later
     * cio_log_writer_destroy still frees them). */
    for (cio_list *n; (n = cio_list_pop(&l->writers)) != NULL;)
        cio__log_writer_detach_link(n);
    posts_drain(l);
    cio__bufring_fini(l);
    io_uring_queue_exit(&l->ring);
    close(l->efd);
    pthread_mutex_destroy(&l->post_lock);
    cio__stacks_fini(l);
    cio__tasks_fini(l);
    free(l->heap);
    free(l->held);
    if (cio__tls_loop == l)
        cio__tls_loop = NULL;
    free(l);
}

void cio_loop_abandon(cio_loop *l)
{
    l->closing = true; /* later log lines go straight to stderr */
    for (cio_list *n; (n = cio_list_pop(&l->writers)) != NULL;)
        cio__log_writer_detach_link(n);
}

cio_loop *cio_loop_current(void)
{
    return cio__tls_loop;
}

cio_time cio_loop_last_turn(const cio_loop *l)
{
    return atomic_load_explicit(&l->last_turn, memory_order_relaxed);
}

unsigned cio_loop_ring_flags(const cio_loop *l)
{
    return l->ring_flags;
}

void cio_loop_get_stats(const cio_loop *l, cio_loop_stats *out)
{
    *out = l->stats;
    out->stacks_mapped = l->stacks_mapped;
    out->ops_inflight = l->inflight;
}
