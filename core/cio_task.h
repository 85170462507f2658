/*
 * cio_task.h - tasks (stackful coroutines), cancel scopes, futures, wait-all,
 * wait-any, as_completed and task groups.
 */
#ifndef CIO_TASK_H
#define CIO_TASK_H

#include "cio_loop.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the public API: see LIBRARY in cio.h */

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

/* Names task t (NULL: the running one) for diagnostics, e.g. the
 * slow-task watchdog's reports ("GET /hash"). The string is not copied: it
 * must stay valid while it is the name (a literal, or the task's own
 * memory until it renames itself or ends). NULL clears it. */
void cio_task_set_name(cio_task *t, const char *name);

/* The slow-task watchdog, asyncio's debug-mode slow_callback_duration: a
 * task that runs longer than threshold without reaching an awaiting call
 * froze every other task and connection of its loop meanwhile. Each such
 * run is counted (cio_slow_count) and reported to fn(ud, name, ns) on the
 * loop right after the task yields (name: its cio_task_set_name, or NULL).
 * Measured with CLOCK_MONOTONIC_COARSE: a few nanoseconds per switch, and
 * a resolution of a jiffy (1 to 4 ms), enough for thresholds of tens of
 * milliseconds. threshold <= 0 turns it off. 0 or -EINVAL (no loop). */
int cio_slow_watch(cio_loop *loop, cio_time threshold,
                   void (*fn)(void *ud, const char *name, cio_time ns), void *ud);
/* The runs counted so far on loop (NULL: the current one). */
uint64_t cio_slow_count(const cio_loop *loop);

/* Debug mode, asyncio's debug mode beyond the watchdog: checks too costly
 * to run always (the daemon turns them on with CORIO_DEBUG=1). Off, the
 * default, they cost one predictable branch per loop turn, task start,
 * last release of a task, future set and pool submission. On: a
 * getrusage() system call per task run (~0.4 us measured), a small
 * allocation per finished task whose handle is still held, and tasks
 * started in debug mode run 8 KiB deeper in their stack (see
 * JOB_ABANDONED). Reports name the task (cio_task_set_name) and where it
 * was spawned (the return address of its cio_spawn or cio_group_spawn
 * call, with the binary and offset for addr2line). Kinds:
 *
 * CIO_DEBUG_BLOCKING: a task run during which the loop's thread slept in
 *   the kernel (its voluntary context switches, getrusage(RUSAGE_THREAD)
 *   ru_nvcsw, grew): a blocking read or write that waited, sleep(), a
 *   contended mutex, fsync(), a page fault that waited for the disk. Every
 *   other task and connection of the loop waited meanwhile: such work
 *   belongs on the pool. Not caught: a blocking call that did not have to
 *   sleep this time (a read served from the page cache, an uncontended
 *   lock); CPU-bound work (the watchdog's); the thread being preempted
 *   (involuntary switches are not counted); sleeps in completion, timer or
 *   subscription callbacks and posted functions (only task runs are
 *   measured). Under a tracer (strace, gdb) every traced system call
 *   stops the thread and counts as a sleep.
 * CIO_DEBUG_UNJOINED_ERROR: a task spawned by another task finished with
 *   an error (result < 0) while its handle was held, and was neither joined
 *   nor detached CIO_DEBUG_UNJOINED_GRACE later: asyncio's "Task exception
 *   was never retrieved". A heuristic: a handle joined later still (after a
 *   wait-all over slower siblings, say) is reported too. Once per task.
 * CIO_DEBUG_NEVER_JOINED: from cio_loop_destroy(), each task that finished
 *   while debug mode was on and was never joined nor detached: its handle
 *   was dropped and its result never read. Certain, but late (a daemon's at
 *   exit); cio_debug_stats.unjoined counts them meanwhile. Such tasks are
 *   freed with the loop (without debug mode they leak).
 * CIO_DEBUG_JOB_ABANDONED: a task ended while a pool job whose cio_job
 *   lies on its own stack was still outstanding (submitted, not joined):
 *   its result would be written into a stack the next task reuses. Debug
 *   mode keeps that stack out of use until the job completes (and runs the
 *   task's function 8 KiB deeper, so that the task's own exit does not
 *   write over the job first), so the mistake is reported instead of
 *   corrupting memory. Only tasks started in debug mode are protected so.
 *   Not caught: a cio_job
 *   on the heap freed early; one in a function's frame that returned
 *   while its task lives on (reported only if still outstanding when the
 *   task ends; the frame's memory was reused meanwhile).
 *
 * Not checked: a cio_future set but never awaited. A future is plain
 * memory of its owner, and nothing tells when it is dropped. */
enum cio_debug_kind {
    CIO_DEBUG_BLOCKING,
    CIO_DEBUG_UNJOINED_ERROR,
    CIO_DEBUG_NEVER_JOINED,
    CIO_DEBUG_JOB_ABANDONED,
};

#define CIO_DEBUG_UNJOINED_GRACE CIO_SEC(1)

typedef struct cio_debug_report {
    enum cio_debug_kind kind;
    const char *task;       /* its name, or NULL (a finished task's: a copy, <= 63 bytes) */
    const void *spawned_at; /* return address of the spawn call, or NULL */
    intptr_t result;        /* UNJOINED_ERROR, NEVER_JOINED: the task's result */
    uint64_t sleeps;        /* BLOCKING: times the thread slept during the run */
    cio_time ns;            /* BLOCKING: the run's length */
    const void *job;        /* JOB_ABANDONED: the cio_job */
    const char *text;       /* the report as one line, as the log gets it */
} cio_debug_report;

/* Turns debug mode on loop (NULL: the current one) on or off, from the
 * loop's next turn (the task runs of the current one, if called from a
 * task, keep the mode they started with). Only tasks that finish and jobs
 * submitted while it is on are tracked. Returns 0, -EINVAL (no loop) or
 * -ENOMEM (its state is allocated on first use). */
int cio_debug_set(cio_loop *loop, bool on);
bool cio_debug_enabled(const cio_loop *loop);

/* Sends every report to fn(ud, r) instead of the process log (fn NULL:
 * back to the log, where each kind gets at most one line a second, the
 * ones held back counted in the next, and teardown names the first 8
 * never-joined tasks, then counts the rest). fn runs on the loop's thread
 * outside any task (between task runs, in a timer callback, or inside
 * cio_loop_destroy for NEVER_JOINED, when the loop must not be used); it
 * must not await. r and its strings are valid during the call only.
 * Returns 0, -EINVAL (no loop) or -ENOMEM. */
int cio_debug_set_reporter(cio_loop *loop, void (*fn)(void *ud, const cio_debug_report *r),
                           void *ud);

typedef struct cio_debug_stats {
    uint64_t blocking;        /* CIO_DEBUG_BLOCKING reports */
    uint64_t unjoined_errors; /* CIO_DEBUG_UNJOINED_ERROR reports */
    uint64_t jobs_abandoned;  /* CIO_DEBUG_JOB_ABANDONED reports */
    uint64_t unjoined;        /* now: tracked finished tasks whose handle is held
                                 (NEVER_JOINED, if the loop were destroyed now) */
} cio_debug_stats;

/* Debug mode's counters on loop (NULL: the current one); zeros if it was
 * never used. */
void cio_debug_get_stats(const cio_loop *loop, cio_debug_stats *out);

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
/* A one-shot result holder (a promise). Single-threaded: completed on the
 * loop thread (the thread pool completes its futures through the ring). */
typedef struct cio_future {
    cio_list waiters;
    intptr_t result;
    bool done;
    bool watched; /* internal: debug mode tracks it (a pool job's) */
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

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif /* CIO_TASK_H */
