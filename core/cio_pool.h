/*
 * cio_pool.h - the thread pool: the executor for blocking and CPU-heavy work,
 * whose results come back to the loop through the ring.
 */
#ifndef CIO_POOL_H
#define CIO_POOL_H

#include "cio_task.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the public API: see LIBRARY in cio.h */

/* ------------------------------------------------------------------------ */
/* Thread pool (executor for blocking and CPU-heavy work)                    */
/* ------------------------------------------------------------------------ */

typedef struct cio_pool cio_pool;

/* How workers compete with the loop for CPU (see README: measured). */
enum cio_pool_priority {
    CIO_POOL_PRIO_LOW,    /* default: nice + opts.nice (0 means 19): jobs get
                             what the loop leaves, plus a small guaranteed
                             share, and the loop preempts them on wakeup */
    CIO_POOL_PRIO_IDLE,   /* SCHED_IDLE: only CPU time nothing else wants;
                             lowest loop latency, but jobs may starve while the
                             loop is saturated */
    CIO_POOL_PRIO_NORMAL, /* the loop's priority */
};

typedef struct cio_pool_opts {
    unsigned threads; /* default: cio_cpu_count() */
    unsigned queue;   /* queued (not yet running) jobs, default 1024 */
    enum cio_pool_priority priority;
    int nice;          /* with CIO_POOL_PRIO_LOW: the nice increment (0 = 19) */
    size_t stack_size; /* worker thread stack (default 256 KiB) */
} cio_pool_opts;

/* A job: owned by the pool from submission until its future is done. */
typedef struct cio_job {
    cio_future fut;
    cio_fn fn;
    void *arg;
    struct cio_job *next;
    cio_pool *pool;
    intptr_t result;
    cio_completion comp; /* delivery of the result to the loop */
    /* internal: shared with the worker threads, read and written only with
     * __atomic builtins (plain fields, not _Atomic, so that C++ can include
     * this header) */
    int state;
    bool cancel_requested;
} cio_job;

/* Creates a pool whose jobs complete on loop (NULL = current). The pool
 * returned is the owner of the threads and the queue; other loops reach them
 * through cio_pool_attach(). Returns 0 or -errno. */
int cio_pool_create(cio_loop *loop, cio_pool **out, const cio_pool_opts *opts);

/* A front end of p's threads and queue for another loop (NULL = current),
 * for workers that share one pool: jobs submitted through *out run on p's
 * threads and complete on loop. Its own backpressure: the queue bound and
 * the threads are shared, and each front end may have at most queue +
 * threads jobs in flight. *out is used like a pool of loop's own, on loop's
 * thread; shut it down and destroy it there before the owner shuts down.
 * Call on loop's thread. 0, -ENOMEM, -ESHUTDOWN (p is shutting down) or
 * -EINVAL (no loop). */
int cio_pool_attach(cio_pool *p, cio_loop *loop, cio_pool **out);

/* The CPUs this process may use: its affinity mask's count, lowered to the
 * CPU quota of its cgroup and the cgroup's ancestors (v2 cpu.max, v1
 * cpu.cfs_quota_us / cpu.cfs_period_us), rounded up; at least 1. Reads
 * /proc and /sys: call it at startup, not per request. */
unsigned cio_cpu_count(void);

/* Calls fn(ud, dir, v2) for each cgroup directory whose limits bind this
 * process, from its own cgroup up to the root of the hierarchy: in the v2
 * hierarchy (v2 true; under /sys/fs/cgroup) and in the v1 hierarchy of the
 * controller v1_ctrl ("cpu", "memory"; under /sys/fs/cgroup/<controllers>).
 * The root counts: in a container it is the container's own cgroup, while
 * the path /proc/self/cgroup gives may exist only on the host. Blocking file
 * reads: for startup. */
void cio_cgroup_walk(const char *v1_ctrl, void (*fn)(void *ud, const char *dir, bool v2), void *ud);

/* [awaits] Submits job (waiting while the queue is full: backpressure) and
 * returns 0 once queued; the result arrives in job->fut. Returns -ETIMEDOUT,
 * -ECANCELED (job not submitted) or -ESHUTDOWN. */
int cio_pool_submit(cio_pool *p, cio_job *job, cio_fn fn, void *arg, cio_time deadline);

/* Non-waiting submission for callbacks: 0, -EAGAIN if the queue is full, or
 * -ESHUTDOWN. */
int cio_pool_try_submit(cio_pool *p, cio_job *job, cio_fn fn, void *arg);

/* [awaits] Waits for a submitted job and returns its result. If interrupted,
 * the job is cancelled: a queued job never runs; a running job sees
 * cio_job_cancelled() turn true and is waited for (its memory is in use), and
 * the call returns -ETIMEDOUT or -ECANCELED. */
intptr_t cio_job_join(cio_job *job, cio_time deadline);

/* Cancels a job: a queued job is dropped and its future completes with
 * -ECANCELED; a running one is asked to stop (cio_job_cancelled()). */
void cio_job_cancel(cio_job *job);

/* [awaits] Submit and join in one call: runs fn(arg) on a worker thread while
 * the loop keeps serving, and returns its result. */
intptr_t cio_pool_run(cio_pool *p, cio_fn fn, void *arg, cio_time deadline);

/* On a worker thread: true once the running job was asked to stop. */
bool cio_job_cancelled(void);

enum cio_pool_shutdown_mode { CIO_POOL_DRAIN, CIO_POOL_CANCEL };

/* [awaits] Stops accepting jobs through p; DRAIN runs the queued jobs, CANCEL
 * completes them with -ECANCELED and asks running jobs to stop. Returns 0 once
 * every job submitted through p is done and, for the owner (the pool
 * cio_pool_create returned), every worker has exited; or -ETIMEDOUT /
 * -ECANCELED (then call it again). On an attached front end it touches only
 * that front end's jobs and leaves the threads running. The owner returns
 * -EBUSY, changing nothing, while attached front ends exist: shut down and
 * destroy those first, each on its own loop. */
int cio_pool_shutdown(cio_pool *p, enum cio_pool_shutdown_mode mode, cio_time deadline);

/* Frees p after cio_pool_shutdown() returned 0, or when it was never shut
 * down and has no job outstanding (for the owner: its idle workers are
 * stopped and joined, blocking). An attached front end is detached from the
 * threads; the owner frees them, and aborts while attached front ends
 * remain. Anything else aborts: completions could still arrive for it. Safe
 * on NULL. */
void cio_pool_destroy(cio_pool *p);

typedef struct cio_pool_stats {
    unsigned threads;
    uint64_t submitted, completed, cancelled; /* through this front end */
    uint64_t queued, running;                 /* now, of all front ends */
    uint64_t waits_full; /* submissions through this front end that waited for space */
} cio_pool_stats;

/* The figures of p's front end; threads, queued and running are the shared
 * threads' and queue's. */
void cio_pool_get_stats(cio_pool *p, cio_pool_stats *out);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif /* CIO_POOL_H */
