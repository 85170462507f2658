/*
 * cio.h - corio's runtime: one io_uring event loop per thread, stackful
 * coroutines, futures, task groups, cancellation, a thread pool and streams.
 *
 * THE SUSPENSION RULE
 *   A coroutine (task) runs until it calls one of the *awaiting* calls marked
 *   [awaits] below. Only there can other tasks run. Code between two awaiting
 *   calls is therefore atomic with respect to every other task on the loop:
 *   shared state needs no locks as long as no awaiting call sits inside the
 *   critical section ("local reasoning"). The flip side: a task that computes
 *   for 50 ms without awaiting freezes every connection on the loop for 50 ms.
 *   Blocking or CPU-heavy work belongs on the thread pool (cio_pool_run).
 *
 * THREADS
 *   A loop and everything attached to it (tasks, futures, timers, sync
 *   primitives, streams) belongs to the thread that created the loop. The only
 *   calls that may be made from other threads are cio_loop_post() and
 *   cio_loop_stop(). Thread-pool jobs run on worker threads and must not touch
 *   loop objects; their result travels back through the future of the job.
 *
 * ERRORS
 *   Calls return 0 or a non-negative value on success and -errno on failure;
 *   they never set errno. A call that fails never also completes its callback
 *   or wakes its waiter. Task and job results are intptr_t: negative values are
 *   errors (-errno), non-negative values are results, which may be pointers
 *   (user-space pointers on Linux are non-negative as intptr_t).
 *
 * CANCELLATION AND DEADLINES
 *   Every awaiting call takes an absolute deadline (CLOCK_MONOTONIC ns, or
 *   CIO_NEVER) and returns -ETIMEDOUT when it passes. Cancellation is
 *   level-triggered, as in Trio: once a task (or a cancel scope around the
 *   code) is cancelled, the pending awaiting call returns -ECANCELED, and so
 *   does every later one until the scope is left. A pending io_uring operation
 *   is cancelled in the kernel and the call returns only after its completion
 *   arrived, so buffers passed to it are never written after the call returns.
 *   If the operation completed anyway, its real result is returned and the
 *   cancellation is reported by the next awaiting call. Nested scopes may carry
 *   deadlines; the tightest one wins.
 *
 * OWNERSHIP
 *   Objects passed by pointer to an awaiting call (buffers, futures, sync
 *   primitives) must stay valid until the call returns; because coroutine
 *   stacks survive suspension, stack memory is fine. Tasks are owned by the
 *   handle returned from cio_spawn until cio_join() or cio_detach(); children
 *   of a group are owned by the group until cio_group_wait() returns.
 */
#ifndef CIO_H
#define CIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CIO_VERSION "0.1.0"

/* ------------------------------------------------------------------------ */
/* Time                                                                      */
/* ------------------------------------------------------------------------ */

/* Absolute CLOCK_MONOTONIC time in nanoseconds. */
typedef int64_t cio_time;

#define CIO_NEVER  INT64_MAX
#define CIO_US(x)  ((cio_time)(x)*1000)
#define CIO_MS(x)  ((cio_time)(x)*1000000)
#define CIO_SEC(x) ((cio_time)(x)*1000000000)

/* A fresh reading of CLOCK_MONOTONIC. */
cio_time cio_clock(void);

/* The current loop's time, refreshed once per loop turn (cheap; use it for
 * deadlines). Outside a loop thread it is cio_clock(). */
cio_time cio_now(void);

/* cio_now() + ns, saturating at CIO_NEVER; ns < 0 counts as 0. */
cio_time cio_after(cio_time ns);

/* ------------------------------------------------------------------------ */
/* Loop                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct cio_loop cio_loop;
typedef struct cio_task cio_task;
typedef intptr_t (*cio_fn)(void *arg);

/* A ring completion record (internal plumbing, embedded in public structs so
 * that they need no allocation): user_data of an SQE points at one. */
typedef struct cio_completion {
    void (*fn)(struct cio_completion *c, int32_t res, uint32_t flags);
} cio_completion;

typedef struct cio_loop_opts {
    unsigned sq_entries; /* submission queue size (default 1024) */
    unsigned cq_entries; /* completion queue size (default 16 * sq) */
    size_t stack_size;   /* coroutine stack size, bytes (default 64 KiB); finished
                            tasks' stacks are reused, and beyond 64 idle ones their
                            memory is returned to the kernel once a second */
    unsigned buf_count;  /* provided receive buffers, power of 2 (default 256) */
    unsigned buf_size;   /* bytes per provided buffer (default 16 KiB) */
} cio_loop_opts;

/* Creates a loop owned by the calling thread. opts may be NULL. The ring is
 * set up with SINGLE_ISSUER|DEFER_TASKRUN where the kernel allows it, falling
 * back to plainer setups. Returns 0 or -errno. */
int cio_loop_create(cio_loop **out, const cio_loop_opts *opts);

/* Destroys a loop with no live tasks and no pending operations left (use
 * cio_run(), or cio_loop_run() until quiet, first). Safe on NULL. */
void cio_loop_destroy(cio_loop *loop);

/* The loop running on this thread, or NULL. */
cio_loop *cio_loop_current(void);

/* Runs fn(arg) as the main task and turns the loop until it returns; then
 * cancels the tasks still alive and turns the loop until they have finished
 * (asyncio.run's contract). Returns the main task's result; -ENOMEM or
 * -EINVAL if it could not be spawned; -ECANCELED if the loop was stopped
 * before it finished; a ring error (-errno) if the loop failed. */
intptr_t cio_run(cio_loop *loop, cio_fn fn, void *arg);

/* Turns the loop until cio_loop_stop() or until nothing is left to do: no
 * ready tasks, no pending ring operations or pool jobs, no armed timers.
 * (Tasks suspended on futures that only a cross-thread post could complete
 * stay suspended: use cio_run() with a task that waits for them.)
 * Returns 0, or -errno if the ring failed. */
int cio_loop_run(cio_loop *loop);

/* Asks cio_loop_run()/cio_run() to return after the current turn (in
 * cio_run's clean-up phase too: tasks that have not finished are left
 * suspended). Thread-safe. */
void cio_loop_stop(cio_loop *loop);

/* For a process that must exit now although work is still in flight (say a
 * pool job past a shutdown deadline): writes out what the loop's writers
 * hold, synchronously, and touches nothing else. Call _exit() next; the loop
 * cannot be used or destroyed afterwards. */
void cio_loop_abandon(cio_loop *loop);

/* Runs fn(arg) on the loop's thread during a later turn. Thread-safe
 * (asyncio's call_soon_threadsafe): the only way for another thread to touch
 * loop objects. Returns 0 or -ENOMEM; fn is never called if it fails. */
int cio_loop_post(cio_loop *loop, void (*fn)(void *arg), void *arg);

/* Ring setup flags that took effect (IORING_SETUP_*), for diagnostics. */
unsigned cio_loop_ring_flags(const cio_loop *loop);

typedef struct cio_loop_stats {
    uint64_t turns;           /* loop iterations */
    uint64_t enters;          /* io_uring_enter calls made by the loop */
    uint64_t cqes;            /* completions handled */
    uint64_t cq_overflows;    /* times the CQ overflowed and was flushed */
    uint64_t submits_refused; /* submissions the kernel refused for overload (retried) */
    uint64_t tasks_spawned;   /* tasks created */
    uint64_t tasks_live;      /* tasks not yet finished */
    uint64_t stacks_mapped;   /* coroutine stacks mapped (live + pooled) */
    uint64_t ops_inflight;    /* ring operations awaiting completion */
    uint64_t buf_shortages;   /* receives that found no provided buffer (re-armed) */
} cio_loop_stats;

void cio_loop_get_stats(const cio_loop *loop, cio_loop_stats *out);

/* ------------------------------------------------------------------------ */
/* Loop-lag monitor                                                          */
/* ------------------------------------------------------------------------ */

/* A heartbeat timer ticks every interval; each tick records how late it fired
 * (jitter) and the accumulated lateness against the ideal schedule (drift). A
 * loop that is never blocked shows lag in the tens of microseconds. */
typedef struct cio_lag_stats {
    uint64_t ticks;
    cio_time interval_ns;
    cio_time last_ns; /* lateness of the latest tick */
    cio_time max_ns;  /* worst lateness since start (or reset) */
    cio_time mean_ns;
    cio_time p50_ns; /* from a log2 histogram: upper bound of the bucket */
    cio_time p99_ns;
    cio_time drift_ns; /* actual time of the latest tick minus its ideal time */
} cio_lag_stats;

/* Starts (or restarts, resetting the figures) the heartbeat. interval_ns <= 0
 * stops it. Returns 0, -EINVAL (no loop) or -ENOMEM. */
int cio_lag_start(cio_loop *loop, cio_time interval_ns);
void cio_lag_get(const cio_loop *loop, cio_lag_stats *out);

/* ------------------------------------------------------------------------ */
/* Tasks                                                                     */
/* ------------------------------------------------------------------------ */

/* Spawns fn(arg) as a new task on loop (NULL = current loop). It starts
 * running at a later point of the loop, never inside this call. If out is
 * NULL the task is detached; otherwise *out is a handle that must be passed to
 * cio_join() or cio_detach(). Returns 0, -ENOMEM or -EINVAL (no loop). */
int cio_spawn(cio_loop *loop, cio_task **out, cio_fn fn, void *arg);

/* [awaits] Waits for t to finish and releases the handle; returns t's result
 * (-EDEADLK for the running task itself: the handle is then kept).
 * If the join itself is interrupted (its deadline passes, or the joining task
 * is cancelled), t is cancelled and the join still waits for it to finish, so
 * no task outlives its joiner; in that case a -ECANCELED result of t is
 * reported as -ETIMEDOUT or -ECANCELED according to what interrupted the join. */
intptr_t cio_join(cio_task *t, cio_time deadline);

/* Gives up the handle: the task runs on and frees itself when it finishes. */
void cio_detach(cio_task *t);

/* Requests cancellation of t (idempotent, no-op once finished). */
void cio_task_cancel(cio_task *t);

/* The task's completion as a future (valid while the handle is held). */
struct cio_future *cio_task_future(cio_task *t);

/* The running task, or NULL outside coroutines. */
cio_task *cio_current(void);

/* [awaits] Lets every other ready task run once. Returns 0 or -ECANCELED. */
int cio_yield(void);

/* True when the running task's innermost scope chain is cancelled or past its
 * deadline: the next awaiting call would fail. For long computations that want
 * to stop early without awaiting. */
bool cio_cancelled(void);

/* ------------------------------------------------------------------------ */
/* Cancel scopes                                                             */
/* ------------------------------------------------------------------------ */

/* A cancel scope (Trio's CancelScope) lives on the task's stack and must be
 * exited in LIFO order by the task that entered it. Awaiting calls inside it
 * fail with -ECANCELED once it is cancelled or its deadline passes. A shielded
 * scope hides the outer scopes' cancellation and deadlines (for cleanup). */
typedef struct cio_scope {
    struct cio_scope *parent;
    cio_task *task;
    cio_time deadline;
    bool cancelled; /* cancelled explicitly or by its deadline */
    bool expired;   /* its own deadline passed */
    bool shield;
} cio_scope;

/* Enters s (deadline may be CIO_NEVER). Must be called inside a task. */
void cio_scope_enter(cio_scope *s, cio_time deadline, bool shield);

/* Leaves s. Returns 0, -ETIMEDOUT if s's own deadline passed, or -ECANCELED
 * if s was cancelled with cio_scope_cancel(). */
int cio_scope_exit(cio_scope *s);

/* Cancels s: the awaiting call its task is suspended in (if inside s) returns
 * -ECANCELED, and so does every later one inside s. Children of groups opened
 * inside s are cancelled too. */
void cio_scope_cancel(cio_scope *s);

/* ------------------------------------------------------------------------ */
/* Futures                                                                   */
/* ------------------------------------------------------------------------ */

/* An intrusive doubly linked list (the head is a cio_list of its own). */
typedef struct cio_list {
    struct cio_list *next, *prev;
} cio_list;

#define cio_container_of(p, T, m) ((T *)(void *)((char *)(p)-offsetof(T, m)))

static inline void cio_list_init(cio_list *l)
{
    l->next = l->prev = l;
}
static inline bool cio_list_empty(const cio_list *l)
{
    return l->next == l;
}
/* Appends n at the tail of head. */
static inline void cio_list_push(cio_list *head, cio_list *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}
/* Unlinks n (harmless on an unlinked, self-linked node). */
static inline void cio_list_del(cio_list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}
/* Moves every node of src to the tail of dst; src is left empty. */
static inline void cio_list_splice(cio_list *dst, cio_list *src)
{
    if (cio_list_empty(src))
        return;
    src->next->prev = dst->prev;
    dst->prev->next = src->next;
    src->prev->next = dst;
    dst->prev = src->prev;
    cio_list_init(src);
}
static inline cio_list *cio_list_pop(cio_list *head)
{
    if (cio_list_empty(head))
        return NULL;
    cio_list *n = head->next;
    cio_list_del(n);
    return n;
}

/* A one-shot result holder (a promise). Single-threaded: completed on the
 * loop thread (the thread pool completes its futures through the ring). */
typedef struct cio_future {
    cio_list waiters;
    intptr_t result;
    bool done;
} cio_future;

/* A callback subscription, for code that is not a coroutine. */
typedef struct cio_waiter {
    cio_list link;
    void (*fn)(struct cio_waiter *w, cio_future *f);
} cio_waiter;

void cio_future_init(cio_future *f);

/* Completes f with result (a value >= 0 or an error < 0) and wakes every
 * waiter. Returns 0, or -EALREADY if f was already done (f is unchanged). */
int cio_future_set(cio_future *f, intptr_t result);

static inline bool cio_future_done(const cio_future *f)
{
    return f->done;
}

/* The result of a done future. */
static inline intptr_t cio_future_result(const cio_future *f)
{
    return f->result;
}

/* [awaits] Waits for f. Returns f's result (at once, even in a cancelled
 * task, if f is already done), or -ETIMEDOUT/-ECANCELED if the wait was
 * interrupted first (then cio_future_done(f) is false). */
intptr_t cio_await(cio_future *f, cio_time deadline);

/* [awaits] wait-all (gather): returns 0 once every future is done (read each
 * result; at once if they already are), or -ETIMEDOUT/-ECANCELED. */
int cio_wait_all(cio_future *const *fs, size_t n, cio_time deadline);

/* [awaits] wait-any: returns the index of a done future (the lowest index if
 * several are done), -ETIMEDOUT/-ECANCELED, or -EINVAL if n == 0. */
int cio_wait_any(cio_future *const *fs, size_t n, cio_time deadline);

/* In-completion-order iteration (as_completed). The iterator lives on the
 * task's stack and must be finished with cio_as_completed_fini(). */
typedef struct cio_as_completed {
    cio_future *const *fs;
    size_t n, yielded, queued;
    void *subs;    /* one subscription per future */
    size_t *order; /* indexes in completion order */
    struct cio__wait *wait;
} cio_as_completed;

int cio_as_completed_init(cio_as_completed *it, cio_future *const *fs, size_t n);

/* [awaits] Returns the index of the next future to complete, -ENOENT once all
 * have been returned, or -ETIMEDOUT/-ECANCELED. */
int cio_as_completed_next(cio_as_completed *it, cio_time deadline);
void cio_as_completed_fini(cio_as_completed *it);

/* Subscribes w to f: fn(w, f) runs (on the loop thread) when f completes; if f
 * is already done, it runs before this call returns. */
void cio_future_subscribe(cio_future *f, cio_waiter *w, void (*fn)(cio_waiter *, cio_future *));
/* Removes a subscription whose callback has not run. */
void cio_future_unsubscribe(cio_waiter *w);

/* ------------------------------------------------------------------------ */
/* Task groups (structured concurrency)                                      */
/* ------------------------------------------------------------------------ */

/* A group (Trio's nursery, asyncio's TaskGroup) scopes the lifetime of its
 * children: cio_group_wait() returns only when all of them have finished. If a
 * child fails (result < 0), the others are cancelled and the first error is
 * what the group reports. The group's deadline cancels all children when it
 * passes. Children inherit the group's scope, hence its deadline and the
 * parent's enclosing scopes. */
typedef struct cio_group {
    cio_scope scope;
    cio_list children; /* all spawned, owned until wait returns */
    size_t live;
    intptr_t first_error;
    struct cio_group *outer; /* parent task's enclosing group */
    cio_task *owner;
    struct cio__wait *waiting;
} cio_group;

/* Opens g inside the running task (enters its scope). */
void cio_group_init(cio_group *g, cio_time deadline);

/* Spawns a child of g. *out (optional) is a borrowed handle, valid until
 * cio_group_wait() returns; never join or detach it. Returns 0 or -ENOMEM.
 * Spawning into a cancelled group still works: the child starts cancelled. */
int cio_group_spawn(cio_group *g, cio_task **out, cio_fn fn, void *arg);

/* Cancels every child and the group's scope. */
void cio_group_cancel(cio_group *g);

/* [awaits] Waits for all children, then leaves the group's scope and frees
 * the children. Returns 0, the first child error, -ETIMEDOUT if the group's
 * deadline passed, or -ECANCELED if the group or its task was cancelled. It
 * cannot be interrupted early: cancellation only cancels the children. */
intptr_t cio_group_wait(cio_group *g);

/* ------------------------------------------------------------------------ */
/* Timers                                                                    */
/* ------------------------------------------------------------------------ */

/* [awaits] Returns 0 after ns (or at deadline), or -ECANCELED. */
int cio_sleep(cio_time ns);
int cio_sleep_until(cio_time deadline);

/* A periodic timer for tasks. */
typedef struct cio_ticker {
    cio_time period, next;
} cio_ticker;

void cio_ticker_init(cio_ticker *t, cio_time period);

/* [awaits] Waits for the next tick. Returns how many periods elapsed since the
 * previous tick (1 when on time; missed ticks are coalesced, as in Go), or
 * -ECANCELED/-ETIMEDOUT. */
int64_t cio_ticker_wait(cio_ticker *t, cio_time deadline);

/* A callback timer, for code that is not a coroutine. The struct is owned by
 * the caller and must stay valid while armed. */
typedef struct cio_timer {
    cio_time when;
    uint32_t heap_index; /* 0 = not armed */
    bool weak;           /* internal: does not keep cio_loop_run() alive */
    void (*fn)(struct cio_timer *t);
    cio_loop *loop;
} cio_timer;

void cio_timer_init(cio_timer *t, cio_loop *loop, void (*fn)(cio_timer *t));
/* Arms (or re-arms) t to fire at 'when'. Returns 0 or -ENOMEM. */
int cio_timer_start(cio_timer *t, cio_time when);
void cio_timer_stop(cio_timer *t);
static inline bool cio_timer_armed(const cio_timer *t)
{
    return t->heap_index != 0;
}

/* ------------------------------------------------------------------------ */
/* Synchronisation between tasks of one loop                                 */
/* ------------------------------------------------------------------------ */

/* An event: tasks wait until it is set; set wakes them all. */
typedef struct cio_event {
    cio_list waiters;
    bool set;
} cio_event;

void cio_event_init(cio_event *e);
void cio_event_set(cio_event *e);
void cio_event_clear(cio_event *e);
static inline bool cio_event_is_set(const cio_event *e)
{
    return e->set;
}
/* [awaits] Returns 0 once set, or -ETIMEDOUT/-ECANCELED. */
int cio_event_wait(cio_event *e, cio_time deadline);

/* A counting semaphore with FIFO hand-off, e.g. to cap the number of
 * concurrent requests to a slow backend. */
typedef struct cio_sem {
    cio_list waiters;
    int64_t count;
} cio_sem;

void cio_sem_init(cio_sem *s, int64_t count);
/* [awaits] Returns 0 when a unit was taken, or -ETIMEDOUT/-ECANCELED. */
int cio_sem_acquire(cio_sem *s, cio_time deadline);
/* Takes a unit without waiting: 0 or -EAGAIN. */
int cio_sem_try_acquire(cio_sem *s);
/* Returns a unit; hands it to the longest waiter if any. */
void cio_sem_release(cio_sem *s);

/* A bounded FIFO channel of intptr_t items with backpressure. Capacity 0 is a
 * rendezvous channel: a send completes when a receiver takes the item. */
typedef struct cio_chan {
    intptr_t *ring;
    size_t cap, head, len;
    cio_list senders, receivers;
    bool closed;
} cio_chan;

/* Returns 0 or -ENOMEM. */
int cio_chan_init(cio_chan *c, size_t capacity);
/* Frees the storage; no task may be waiting on c. */
void cio_chan_fini(cio_chan *c);
/* [awaits] Waits while the channel is full. Returns 0, -EPIPE if closed,
 * -ETIMEDOUT or -ECANCELED. */
int cio_chan_send(cio_chan *c, intptr_t item, cio_time deadline);
/* Non-waiting send: 0, -EAGAIN if full, -EPIPE if closed. */
int cio_chan_try_send(cio_chan *c, intptr_t item);
/* [awaits] Waits while empty. Returns 0 with *item set, -EPIPE once closed and
 * drained, -ETIMEDOUT or -ECANCELED. */
int cio_chan_recv(cio_chan *c, intptr_t *item, cio_time deadline);
int cio_chan_try_recv(cio_chan *c, intptr_t *item);
/* Closes c: waiting senders fail with -EPIPE, receivers drain what is
 * buffered and then get -EPIPE. */
void cio_chan_close(cio_chan *c);

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
    unsigned threads; /* default: number of CPUs this process may use */
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
    _Atomic int state;
    _Atomic bool cancel_requested;
} cio_job;

/* Creates a pool whose jobs complete on loop. Returns 0 or -errno. */
int cio_pool_create(cio_loop *loop, cio_pool **out, const cio_pool_opts *opts);

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

/* [awaits] Stops accepting jobs; DRAIN runs the queued jobs, CANCEL completes
 * them with -ECANCELED and asks running jobs to stop. Returns 0 once every
 * worker has exited, or -ETIMEDOUT/-ECANCELED (then call it again). */
int cio_pool_shutdown(cio_pool *p, enum cio_pool_shutdown_mode mode, cio_time deadline);

/* Frees a pool after cio_pool_shutdown() returned 0, or one that was never
 * shut down and has no job outstanding (its idle workers are stopped and
 * joined). Anything else aborts: completions could still arrive for it. Safe
 * on NULL. */
void cio_pool_destroy(cio_pool *p);

typedef struct cio_pool_stats {
    unsigned threads;
    uint64_t submitted, completed, cancelled;
    uint64_t queued, running; /* now */
    uint64_t waits_full;      /* submissions that had to wait for space */
} cio_pool_stats;

void cio_pool_get_stats(cio_pool *p, cio_pool_stats *out);

/* ------------------------------------------------------------------------ */
/* I/O through the ring ([awaits]; all return -errno on failure)             */
/* ------------------------------------------------------------------------ */

struct open_how;
struct statx;

/* A non-blocking, close-on-exec socket. */
int cio_socket(int domain, int type, int protocol);
int cio_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, cio_time deadline);
int cio_connect(int fd, const struct sockaddr *addr, socklen_t addrlen, cio_time deadline);
ssize_t cio_recv(int fd, void *buf, size_t len, int flags, cio_time deadline);
/* send adds MSG_NOSIGNAL: a vanished peer gives -EPIPE, never SIGPIPE. */
ssize_t cio_send(int fd, const void *buf, size_t len, int flags, cio_time deadline);
ssize_t cio_sendmsg(int fd, const struct msghdr *msg, int flags, cio_time deadline);
int cio_shutdown(int fd, int how);
/* Cancels what is pending on fd in this loop, then closes it. */
int cio_close(int fd);
/* off = -1 means the file position. */
ssize_t cio_read(int fd, void *buf, size_t len, int64_t off, cio_time deadline);
ssize_t cio_write(int fd, const void *buf, size_t len, int64_t off, cio_time deadline);
int cio_openat2(int dirfd, const char *path, const struct open_how *how, cio_time deadline);
int cio_statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *out,
              cio_time deadline);
int cio_fsync(int fd, cio_time deadline);
ssize_t cio_splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out, size_t len,
                   unsigned flags, cio_time deadline);

/* ------------------------------------------------------------------------ */
/* Buffers and shared segments                                               */
/* ------------------------------------------------------------------------ */

/* One growable byte buffer: bytes [0, len) of p, capacity cap. Zero-
 * initialised it is empty and owns nothing. */
typedef struct cio_buf {
    char *p;
    size_t len, cap;
} cio_buf;

/* Makes room for n more bytes (the capacity doubles). 0 or -ENOMEM. */
int cio_buf_reserve(cio_buf *b, size_t n);
/* Room for n bytes at the end (write there, then add to len), or NULL. */
char *cio_buf_space(cio_buf *b, size_t n);
/* Appends n bytes. 0 or -ENOMEM (b unchanged). */
int cio_buf_append(cio_buf *b, const void *p, size_t n);
/* Drops the first n bytes (all of them if n >= len). */
void cio_buf_consume(cio_buf *b, size_t n);
/* Frees the memory; b is empty again. */
void cio_buf_free(cio_buf *b);

/* An immutable, reference-counted run of bytes to send: encoded once and
 * queued on any number of send queues (a broadcast frame). Single-threaded,
 * like everything attached to a loop. */
typedef struct cio_seg {
    uint32_t refs;
    uint32_t len;
    uint8_t data[];
} cio_seg;

/* A segment of len bytes (fill data before queuing it) with one reference,
 * or NULL. */
cio_seg *cio_seg_new(size_t len);
static inline cio_seg *cio_seg_ref(cio_seg *s)
{
    s->refs++;
    return s;
}
/* Drops a reference; the last one frees the segment. Safe on NULL. */
void cio_seg_unref(cio_seg *s);

/* ------------------------------------------------------------------------ */
/* Transports: callback-driven byte streams for protocol code                */
/* ------------------------------------------------------------------------ */

/* A transport delivers received bytes to callbacks and sends what it is
 * given, without any task: an idle connection costs only its struct (no
 * stack, no buffer). The socket transport (cio_sock) runs on the ring with a
 * multishot receive into the loop's provided buffers; the memory transport
 * (cio_memconn) runs protocol code in tests and fuzzers without sockets.
 *
 * Every callback runs on the loop thread, never inside the transport call
 * that caused it. After close(), on_closed is the last callback; only then
 * may the owner free the memory holding the transport. */
typedef struct cio_transport cio_transport;

typedef struct cio_transport_cbs {
    /* Bytes arrived; data is valid only during the call. */
    void (*on_data)(void *ud, const uint8_t *data, size_t len);
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
typedef struct cio_sock {
    cio_transport t;
    cio_loop *loop;
    struct msghdr *msg; /* for sendmsg of more than one iovec, allocated then */
    struct iovec *iov;
    unsigned niov;
    int fd;
    uint8_t flags;
    uint8_t pending; /* operations whose last completion has not arrived */
    cio_completion recv_comp, send_comp, aux_comp;
    cio_list bufwait_link; /* waiting for provided buffers to re-arm */
} cio_sock;

/* Takes ownership of the connected socket fd (closed by close()). */
void cio_sock_init(cio_sock *s, cio_loop *loop, int fd, const cio_transport_cbs *cbs, void *ud);

/* The in-memory transport, for tests and fuzzers: bytes written with
 * cio_memconn_feed() arrive through on_data in a later loop turn, and what
 * the protocol sends is collected in 'out'. */
typedef struct cio_memconn {
    cio_transport t;
    cio_loop *loop;
    cio_buf out; /* everything sent so far */
    cio_buf in;  /* fed but not yet delivered */
    cio_timer timer;        /* delivers input and completions one turn later */
    struct iovec *send_iov; /* the send in flight, completed next turn */
    size_t chunk;           /* deliver input in pieces of at most this size (0 = all) */
    bool reading, eof_pending, eof_sent, write_shut, closing, closed;
} cio_memconn;

void cio_memconn_init(cio_memconn *m, cio_loop *loop, const cio_transport_cbs *cbs, void *ud);
/* Queues bytes for delivery (copied). 0 or -ENOMEM. */
int cio_memconn_feed(cio_memconn *m, const void *data, size_t len);
/* Queues an end of stream after the fed bytes. */
void cio_memconn_feed_eof(cio_memconn *m);
/* Frees the buffers; call after on_closed, or when the protocol never ran. */
void cio_memconn_fini(cio_memconn *m);

/* ------------------------------------------------------------------------ */
/* Send queues                                                               */
/* ------------------------------------------------------------------------ */

#define CIO_SENDQ_IOV 8 /* parts gathered into one send */

/* The output of one connection over a transport: copied bytes and
 * segments, sent in order, in slices of at most 64 KiB gathered into one
 * send each; each slice must leave within the write timeout (which thus
 * measures progress, not the whole output), else on_timeout runs (the owner
 * closes). Above the high watermark, writers wait until the queue is down to
 * the low one. The owner forwards the transport's on_sent to
 * cio_sendq_sent(). Embedded by the owner; not thread-safe. */
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
    void (*on_timeout)(struct cio_sendq *q);
    cio_buf spare; /* a drained chunk, kept for the next one */
    struct iovec iov[CIO_SENDQ_IOV];
} cio_sendq;

void cio_sendq_init(cio_sendq *q, cio_transport *tp, size_t low, size_t high,
                    cio_time write_timeout, void (*on_timeout)(cio_sendq *q));
/* Frees what is queued. Only once the transport cannot touch the bytes any
 * more: after its on_closed, or with nothing in flight. */
void cio_sendq_fini(cio_sendq *q);
/* Room for n bytes to copy in, at the end of the queue, or NULL (-ENOMEM);
 * then cio_sendq_commit() with the bytes written. */
char *cio_sendq_reserve(cio_sendq *q, size_t n);
void cio_sendq_commit(cio_sendq *q, size_t n);
/* Copies n bytes in. 0 or -ENOMEM. Nothing is sent before a flush. */
int cio_sendq_append(cio_sendq *q, const void *data, size_t n);
/* Queues bytes [off, off + len) of seg by reference (taking one). 0,
 * -EINVAL (out of the segment) or -ENOMEM. */
int cio_sendq_append_seg(cio_sendq *q, cio_seg *seg, size_t off, size_t len);
/* Starts sending what is queued, unless a send is in flight (what is queued
 * meanwhile follows it). 0 or -errno from the transport (nothing is then in
 * flight; the owner closes). */
int cio_sendq_flush(cio_sendq *q);
/* The transport's on_sent(err): retires what went out and sends the next
 * slice. Returns 1 when everything queued is out, 0 while more is in
 * flight, or -errno (the send failed: the owner closes). */
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
static inline bool cio_sendq_busy(const cio_sendq *q)
{
    return q->sending;
}

/* A listening socket with a multishot accept. */
typedef struct cio_listener {
    cio_loop *loop;
    int fd;
    bool armed, paused, closing;
    cio_completion comp;
    cio_timer retry; /* re-arms after EMFILE/ENFILE */
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
/* Stops accepting (connections wait in the kernel backlog) / resumes. */
void cio_listener_pause(cio_listener *ls);
void cio_listener_resume(cio_listener *ls);
/* Stops and closes; on_closed (optional) runs when the last completion is in. */
void cio_listener_close(cio_listener *ls, void (*on_closed)(cio_listener *ls));
/* The bound address (e.g. to learn the port chosen for port 0). 0 or -errno. */
int cio_listener_address(const cio_listener *ls, struct sockaddr_storage *out, socklen_t *len);

/* ------------------------------------------------------------------------ */
/* Arenas: per-request memory with a defer list                              */
/* ------------------------------------------------------------------------ */

/* Bump allocation in chunks, freed all at once by reset/fini, which first
 * runs the deferred cleanups in reverse order. Allocation failure returns
 * NULL. */
typedef struct cio_arena {
    struct cio__chunk *chunk;
    char *ptr, *end;
    struct cio__defer *defers;
    size_t first_size;
} cio_arena;

void cio_arena_init(cio_arena *a, size_t first_chunk);
void *cio_arena_alloc(cio_arena *a, size_t n); /* 16-byte aligned */
char *cio_arena_strndup(cio_arena *a, const char *s, size_t n);
char *cio_arena_printf(cio_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Runs fn(arg) at reset/fini. 0 or -ENOMEM (then fn is not registered). */
int cio_arena_defer(cio_arena *a, void (*fn)(void *arg), void *arg);
/* Runs the defers and frees all but the first chunk (kept for reuse). */
void cio_arena_reset(cio_arena *a);
void cio_arena_fini(cio_arena *a);

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

/* ------------------------------------------------------------------------ */
/* Non-blocking writers and logging                                          */
/* ------------------------------------------------------------------------ */

/* An append-only writer for logs: appends are copied into a buffer and never
 * block; the loop writes the buffer through the ring at the end of each turn,
 * one write in flight at a time. When max_buffer bytes are waiting (a slow
 * disk or a stalled pipe), further appends are dropped and counted. */
typedef struct cio_writer cio_writer;

/* Creates a writer on fd for loop (NULL = current). The fd stays the
 * caller's. max_buffer 0 means 1 MiB. Returns 0, -ENOMEM or -EINVAL. */
int cio_writer_create(cio_loop *loop, int fd, size_t max_buffer, cio_writer **out);
/* Copies n bytes in; returns 0 or -ENOBUFS (dropped). */
int cio_writer_append(cio_writer *w, const void *data, size_t n);
/* Room for n bytes to format into directly, or NULL (dropped); then commit. */
char *cio_writer_reserve(cio_writer *w, size_t n);
void cio_writer_commit(cio_writer *w, size_t n);
/* Bytes dropped so far. */
uint64_t cio_writer_dropped(const cio_writer *w);
/* Writes what is buffered (blocking, for shutdown) and frees w. Safe on NULL. */
void cio_writer_destroy(cio_writer *w);

enum cio_log_level { CIO_LOG_ERROR, CIO_LOG_WARN, CIO_LOG_INFO, CIO_LOG_DEBUG };

void cio_log_set_level(enum cio_log_level level);
enum cio_log_level cio_log_get_level(void);
/* Parses "error", "warn", "info", "debug". Returns the level or -EINVAL. */
int cio_log_parse_level(const char *s);
/* Writes one line to the process log (stderr) if level is enabled. On a loop
 * thread the line is queued and written through the ring, never blocking. */
void cio_log(enum cio_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define cio_error(...) cio_log(CIO_LOG_ERROR, __VA_ARGS__)
#define cio_warn(...)  cio_log(CIO_LOG_WARN, __VA_ARGS__)
#define cio_info(...)  cio_log(CIO_LOG_INFO, __VA_ARGS__)
#define cio_debug(...) cio_log(CIO_LOG_DEBUG, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif /* CIO_H */
