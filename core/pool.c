/*
 * pool.c - the executor for blocking and CPU-heavy work.
 *
 * Workers take jobs from a mutex-guarded FIFO. A finished job travels back
 * to its loop through the ring: the worker sends IORING_OP_MSG_RING from a
 * small ring of its own, which posts a CQE carrying the job's completion
 * record straight into the loop's CQ (no queue, no lock, no eventfd). Where
 * MSG_RING is missing (or fails), finished jobs go on a list and the loop is
 * woken through its eventfd post. Either way the loop is never polled.
 *
 * One set of threads and one queue (pool_shared) can serve several loops:
 * each loop submits through a front end of its own (the public cio_pool),
 * and a job completes on the loop of the front end it was submitted through.
 * cio_pool_create makes the shared part and its owner front end;
 * cio_pool_attach adds front ends for other loops.
 *
 * Backpressure: a loop-side semaphore per front end holds one unit per job
 * it may have in flight (queue capacity + workers); a submitter that finds
 * none waits, as an awaiting call, until one of its jobs completes.
 */
#include "cio_internal.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

/* The threads and the queue, shared by every front end. Fields under lock
 * unless noted. */
typedef struct pool_shared {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    cio_job *head, *tail; /* queued jobs, of every front end */
    pthread_t *tids;
    unsigned threads, alive;
    size_t queued, running;
    unsigned fronts;  /* attached front ends (the owner not counted) */
    bool shutting;    /* the owner shut down: workers exit once the queue is empty */
    bool silent_exit; /* being destroyed: workers must not post to the loop */
    bool joined;      /* owner side */
    /* set at creation, read-only afterwards */
    cio_pool *owner;
    int64_t capacity; /* jobs one front end may have in flight */
    bool msg_ring;    /* workers deliver through MSG_RING (else the fallback) */
    bool sched_idle;
    int nice;
} pool_shared;

/* A front end: one loop's way into the shared threads. Loop side, except
 * the fallback list (under s->lock) and cancel (atomic). */
struct cio_pool {
    pool_shared *s;
    cio_loop *loop;
    atomic_bool cancel; /* CANCEL shutdown: its running jobs are asked to stop */
    bool shutting;      /* no more submissions through this front end */

    /* finished jobs for the fallback path, handed over by one post */
    cio_job *done_head;
    bool done_posted;

    cio_sem space;      /* jobs that may still be submitted */
    size_t outstanding; /* submitted jobs whose future is not done */
    cio_event exited;   /* owner: every worker has exited */
    cio_event drained;  /* shutting down and nothing outstanding */
    uint64_t submitted, completed, cancelled, waits_full;
};

static _Thread_local cio_job *tls_job;

bool cio_job_cancelled(void)
{
    cio_job *j = tls_job;
    /* The owner's CANCEL shutdown comes after every other front end is gone,
     * so its own flag covers every job the threads may still run. */
    return j && (__atomic_load_n(&j->cancel_requested, __ATOMIC_SEQ_CST) ||
                 atomic_load(&j->pool->cancel));
}

/* ---- loop side ------------------------------------------------------------------ */

static void job_finish(cio_job *job, intptr_t result)
{
    cio_pool *p = job->pool;
    __atomic_store_n(&job->state, JOB_DONE, __ATOMIC_SEQ_CST);
    p->completed++;
    p->outstanding--;
    cio_sem_release(&p->space);
    if (p->shutting && p->outstanding == 0)
        cio_event_set(&p->drained);
    (void)cio_future_set(&job->fut, result);
}

/* MSG_RING completion: the CQE's user_data is &job->comp. */
static void job_cqe(cio_completion *c, int32_t res, uint32_t flags)
{
    (void)res;
    (void)flags;
    cio_job *job = cio_container_of(c, cio_job, comp);
    job_finish(job, job->result);
}

static void done_list_drain(void *arg)
{
    cio_pool *p = arg;
    pthread_mutex_lock(&p->s->lock);
    cio_job *j = p->done_head;
    p->done_head = NULL;
    p->done_posted = false;
    pthread_mutex_unlock(&p->s->lock);
    while (j) {
        cio_job *next = j->next;
        p->loop->inflight--; /* counted at submission; no CQE came for it */
        job_finish(j, j->result);
        j = next;
    }
}

static void workers_exited(void *arg)
{
    cio_pool *p = arg;
    p->loop->external--; /* counted by begin_shutdown */
    cio_event_set(&p->exited);
}

/* ---- worker side ------------------------------------------------------------------- */

static void deliver_fallback(cio_pool *p, cio_job *job)
{
    pool_shared *s = p->s;
    pthread_mutex_lock(&s->lock);
    job->next = p->done_head;
    p->done_head = job;
    bool post = !p->done_posted;
    p->done_posted = true;
    pthread_mutex_unlock(&s->lock);
    /* Only the post made here can hand this job to the loop, so p is still
     * valid. cio_loop_post can only fail on ENOMEM; retry rather than lose
     * the job. */
    while (post && cio_loop_post(p->loop, done_list_drain, p) < 0)
        sched_yield();
}

/* Posts the job's completion into the loop's CQ. Returns 1 if delivered, 0
 * if it certainly was not (the caller falls back to the list), and marks the
 * ring unusable when its state is unknown, so a stale SQE can never deliver
 * the same job a second time. */
static int deliver_msg_ring(struct io_uring *r, bool *have_ring, int loop_fd, cio_job *job)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(r);
    if (!sqe)
        return 0;
    io_uring_prep_msg_ring(sqe, loop_fd, 0, (uint64_t)(uintptr_t)&job->comp, 0);
    io_uring_sqe_set_data64(sqe, 1);
    int rc;
    do
        rc = io_uring_submit(r);
    while (rc == -EINTR);
    if (rc < 1) {
        /* Not submitted: drop the ring with the SQE still in it. */
        io_uring_queue_exit(r);
        *have_ring = false;
        return 0;
    }
    struct io_uring_cqe *cqe;
    do
        rc = io_uring_wait_cqe(r, &cqe);
    while (rc == -EINTR);
    if (rc < 0) {
        /* Submitted, outcome unknown: assume delivered rather than risk a
         * second completion; the ring cannot be trusted any more. */
        io_uring_queue_exit(r);
        *have_ring = false;
        return 1;
    }
    bool ok = cqe->res >= 0; /* the kernel says whether the message went out */
    io_uring_cqe_seen(r, cqe);
    return ok;
}

static void *worker_main(void *arg)
{
    pool_shared *s = arg;
    if (s->nice) {
        /* Linux nice values are per thread. */
        pid_t tid = gettid();
        errno = 0;
        int cur = getpriority(PRIO_PROCESS, (id_t)tid);
        if (errno == 0)
            (void)setpriority(PRIO_PROCESS, (id_t)tid, cur + s->nice);
    }
    if (s->sched_idle) {
        /* SCHED_IDLE: run only when no normal thread wants this CPU, and
         * yield it the moment the loop wakes up. */
        struct sched_param sp = {0};
        (void)pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
    }
    struct io_uring ring;
    bool have_ring = s->msg_ring && io_uring_queue_init(4, &ring, 0) == 0;

    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->head && !s->shutting)
            pthread_cond_wait(&s->cond, &s->lock);
        cio_job *job = s->head;
        if (!job)
            break; /* shutting down and nothing left */
        s->head = job->next;
        if (!s->head)
            s->tail = NULL;
        s->queued--;
        s->running++;
        __atomic_store_n(&job->state, JOB_RUNNING, __ATOMIC_SEQ_CST);
        pthread_mutex_unlock(&s->lock);

        tls_job = job;
        job->result = job->fn(job->arg);
        tls_job = NULL;

        pthread_mutex_lock(&s->lock);
        s->running--;
        pthread_mutex_unlock(&s->lock);
        /* To the loop of the front end it came through. After delivery the
         * job belongs to that loop again: do not touch it. */
        cio_pool *p = job->pool;
        if (!have_ring || !deliver_msg_ring(&ring, &have_ring, p->loop->ring.ring_fd, job))
            deliver_fallback(p, job);
        pthread_mutex_lock(&s->lock);
    }
    bool last = --s->alive == 0 && !s->silent_exit;
    pthread_mutex_unlock(&s->lock);
    if (have_ring)
        io_uring_queue_exit(&ring);
    if (last) {
        while (cio_loop_post(s->owner->loop, workers_exited, s->owner) < 0)
            sched_yield();
    }
    return NULL;
}

/* ---- API ------------------------------------------------------------------------------ */

static void front_init(cio_pool *p, pool_shared *s, cio_loop *loop)
{
    p->s = s;
    p->loop = loop;
    atomic_init(&p->cancel, false);
    cio_sem_init(&p->space, s->capacity);
    cio_event_init(&p->exited);
    cio_event_init(&p->drained);
}

int cio_pool_create(cio_loop *loop, cio_pool **out, const cio_pool_opts *opts)
{
    loop = cio__loop_or_current(loop);
    if (!loop)
        return -EINVAL;
    cio_pool_opts o = {.priority = CIO_POOL_PRIO_LOW};
    if (opts)
        o = *opts;
    if (o.priority == CIO_POOL_PRIO_LOW && o.nice == 0)
        o.nice = 19;
    if (!o.threads)
        o.threads = cio_cpu_count();
    if (!o.queue)
        o.queue = 1024;
    if (!o.stack_size)
        o.stack_size = 256 * 1024;

    pool_shared *s = calloc(1, sizeof(*s));
    cio_pool *p = calloc(1, sizeof(*p));
    pthread_t *tids = calloc(o.threads, sizeof(pthread_t));
    if (!s || !p || !tids) {
        free(s);
        free(p);
        free(tids);
        return -ENOMEM;
    }
    s->tids = tids;
    s->owner = p;
    s->capacity = (int64_t)o.queue + o.threads;
    s->nice = o.priority == CIO_POOL_PRIO_LOW ? o.nice : 0;
    s->sched_idle = o.priority == CIO_POOL_PRIO_IDLE;
    const char *no_msg = getenv("CORIO_NO_MSG_RING"); /* test hook for the fallback */
    s->msg_ring = loop->msg_ring_ok && !(no_msg && *no_msg && *no_msg != '0');
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    front_init(p, s, loop);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, o.stack_size);
    /* Workers must not take the process's signals: those belong to the loop. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = 0;
    for (unsigned i = 0; i < o.threads; i++) {
        rc = -pthread_create(&s->tids[i], &attr, worker_main, s);
        if (rc < 0)
            break;
        pthread_mutex_lock(&s->lock);
        s->threads++;
        s->alive++;
        pthread_mutex_unlock(&s->lock);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc < 0) {
        cio_pool_destroy(p);
        return rc;
    }
    *out = p;
    return 0;
}

int cio_pool_attach(cio_pool *p, cio_loop *loop, cio_pool **out)
{
    loop = cio__loop_or_current(loop);
    if (!loop)
        return -EINVAL;
    pool_shared *s = p->s;
    cio_pool *fe = calloc(1, sizeof(*fe));
    if (!fe)
        return -ENOMEM;
    pthread_mutex_lock(&s->lock);
    bool shutting = s->shutting; /* the owner's shutdown refuses while fronts > 0 */
    if (!shutting)
        s->fronts++;
    pthread_mutex_unlock(&s->lock);
    if (shutting) {
        free(fe);
        return -ESHUTDOWN;
    }
    front_init(fe, s, loop);
    *out = fe;
    return 0;
}

static void enqueue(cio_pool *p, cio_job *job, cio_fn fn, void *arg)
{
    pool_shared *s = p->s;
    cio_future_init(&job->fut);
    cio__debug_job_submitted(job);
    job->fn = fn;
    job->arg = arg;
    job->next = NULL;
    job->pool = p;
    job->result = 0;
    job->comp.fn = job_cqe;
    __atomic_store_n(&job->state, JOB_QUEUED, __ATOMIC_SEQ_CST);
    __atomic_store_n(&job->cancel_requested, false, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&s->lock);
    if (s->tail)
        s->tail->next = job;
    else
        s->head = job;
    s->tail = job;
    s->queued++;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    p->loop->inflight++; /* completes through a CQE (or the fallback list) */
    p->submitted++;
    p->outstanding++;
}

int cio_pool_try_submit(cio_pool *p, cio_job *job, cio_fn fn, void *arg)
{
    if (p->shutting)
        return -ESHUTDOWN;
    if (cio_sem_try_acquire(&p->space) < 0)
        return -EAGAIN;
    enqueue(p, job, fn, arg);
    return 0;
}

int cio_pool_submit(cio_pool *p, cio_job *job, cio_fn fn, void *arg, cio_time deadline)
{
    if (p->shutting)
        return -ESHUTDOWN;
    if (cio_cancelled())
        return -ECANCELED;
    if (cio_sem_try_acquire(&p->space) < 0) {
        p->waits_full++;
        int rc = cio_sem_acquire(&p->space, deadline);
        if (rc < 0)
            return rc;
        if (p->shutting) {
            cio_sem_release(&p->space);
            return -ESHUTDOWN;
        }
    }
    enqueue(p, job, fn, arg);
    return 0;
}

/* Unlinks the queued job *pp (prev: the job before it, or NULL). Under
 * s->lock. */
static void queue_unlink(pool_shared *s, cio_job **pp, cio_job *prev)
{
    cio_job *job = *pp;
    *pp = job->next;
    if (s->tail == job)
        s->tail = prev;
    s->queued--;
    job->next = NULL;
}

/* Removes a queued job. Returns true if it was still queued. */
static bool unqueue(pool_shared *s, cio_job *job)
{
    bool found = false;
    pthread_mutex_lock(&s->lock);
    if (__atomic_load_n(&job->state, __ATOMIC_SEQ_CST) == JOB_QUEUED) {
        for (cio_job **pp = &s->head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next) {
            if (*pp == job) {
                queue_unlink(s, pp, prev);
                found = true;
                break;
            }
        }
    }
    pthread_mutex_unlock(&s->lock);
    return found;
}

/* Completes a job taken off the queue before it ran. */
static void finish_unrun(cio_pool *p, cio_job *job)
{
    p->cancelled++;
    p->loop->inflight--;
    job_finish(job, -ECANCELED);
}

void cio_job_cancel(cio_job *job)
{
    cio_pool *p = job->pool;
    if (job->fut.done)
        return;
    if (unqueue(p->s, job)) {
        finish_unrun(p, job);
        return;
    }
    __atomic_store_n(&job->cancel_requested, true, __ATOMIC_SEQ_CST);
}

intptr_t cio_job_join(cio_job *job, cio_time deadline)
{
    intptr_t r = cio_await(&job->fut, deadline);
    if (job->fut.done)
        return r;
    /* Interrupted: the job's memory may be in use on a worker; wait it out. */
    intptr_t why = r;
    cio_job_cancel(job);
    cio__await_shielded(&job->fut);
    return why;
}

intptr_t cio_pool_run(cio_pool *p, cio_fn fn, void *arg, cio_time deadline)
{
    cio_job job;
    int rc = cio_pool_submit(p, &job, fn, arg, deadline);
    if (rc < 0)
        return rc;
    return cio_job_join(&job, deadline);
}

/* Stops submissions through p; CANCEL also drops the jobs p has queued and
 * asks its running ones to stop. The owner also tells the workers to exit
 * once the queue is empty, or returns -EBUSY (nothing done) while other
 * front ends are attached: their jobs need the workers. */
static int begin_shutdown(cio_pool *p, enum cio_pool_shutdown_mode mode, bool silent)
{
    pool_shared *s = p->s;
    cio_job *dropped = NULL, **last = &dropped;
    pthread_mutex_lock(&s->lock);
    if (p == s->owner && !s->shutting) {
        if (s->fronts) {
            pthread_mutex_unlock(&s->lock);
            return -EBUSY;
        }
        /* Counted once, when shutting starts: a second call (CANCEL after a
         * timed out DRAIN) must not count the exit notice again. */
        if (!silent && s->alive > 0)
            p->loop->external++; /* until the last worker's exit notice arrives */
        s->shutting = true;
        s->silent_exit = silent;
        pthread_cond_broadcast(&s->cond);
    }
    p->shutting = true;
    if (mode == CIO_POOL_CANCEL) {
        atomic_store(&p->cancel, true);
        /* Only p's own: the queue may hold other front ends' jobs. */
        for (cio_job **pp = &s->head, *prev = NULL; *pp;) {
            if ((*pp)->pool != p) {
                prev = *pp;
                pp = &(*pp)->next;
                continue;
            }
            *last = *pp;
            queue_unlink(s, pp, prev);
            last = &(*last)->next;
        }
    }
    pthread_mutex_unlock(&s->lock);
    while (dropped) {
        cio_job *next = dropped->next;
        finish_unrun(p, dropped);
        dropped = next;
    }
    return 0;
}

int cio_pool_shutdown(cio_pool *p, enum cio_pool_shutdown_mode mode, cio_time deadline)
{
    pool_shared *s = p->s;
    bool owner = p == s->owner;
    if (!p->shutting || (mode == CIO_POOL_CANCEL && !atomic_load(&p->cancel))) {
        int rc = begin_shutdown(p, mode, false);
        if (rc < 0)
            return rc;
    }
    if (p->outstanding == 0)
        cio_event_set(&p->drained);
    /* Workers exit once the queue is empty; jobs they finished may still be
     * on their way through the ring, so also wait for every future. */
    int rc = owner && s->threads > 0 ? cio_event_wait(&p->exited, deadline) : 0;
    if (rc == 0)
        rc = cio_event_wait(&p->drained, deadline);
    if (rc < 0)
        return rc;
    if (owner && !s->joined) {
        /* Every worker has posted its exit, so these joins do not block. */
        for (unsigned i = 0; i < s->threads; i++)
            pthread_join(s->tids[i], NULL);
        s->joined = true;
    }
    return 0;
}

static void die(const char *why)
{
    fprintf(stderr, "corio: cio_pool_destroy %s\n", why);
    abort();
}

void cio_pool_destroy(cio_pool *p)
{
    if (!p)
        return;
    pool_shared *s = p->s;
    if (p != s->owner) {
        /* Nothing of it is queued, running or on its way back. */
        if (p->outstanding)
            die("on a pool with work in flight");
        pthread_mutex_lock(&s->lock);
        s->fronts--;
        pthread_mutex_unlock(&s->lock);
        free(p);
        return;
    }
    pthread_mutex_lock(&s->lock);
    unsigned fronts = s->fronts;
    pthread_mutex_unlock(&s->lock);
    if (fronts)
        die("on a pool with attached front ends (destroy those first)");
    if (!s->joined) {
        /* Only a pool that was never shut down and has nothing outstanding
         * may be destroyed this way: its idle workers are stopped and joined
         * (blocking, at teardown). After a shutdown that did not complete,
         * posts and completions for this pool may still be on their way. */
        if (p->shutting || p->outstanding)
            die("on a pool with work in flight");
        (void)begin_shutdown(p, CIO_POOL_CANCEL, true);
        for (unsigned i = 0; i < s->threads; i++)
            pthread_join(s->tids[i], NULL);
    }
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s->tids);
    free(s);
    free(p);
}

void cio_pool_get_stats(cio_pool *p, cio_pool_stats *out)
{
    pool_shared *s = p->s;
    pthread_mutex_lock(&s->lock);
    out->queued = s->queued;
    out->running = s->running;
    pthread_mutex_unlock(&s->lock);
    out->threads = s->threads;
    out->submitted = p->submitted;
    out->completed = p->completed;
    out->cancelled = p->cancelled;
    out->waits_full = p->waits_full;
}
