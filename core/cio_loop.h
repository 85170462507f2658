/*
 * cio_loop.h - the event loop (one io_uring per thread), time, intrusive lists
 * and the loop-lag monitor. See cio.h for the rules every call follows.
 */
#ifndef CIO_LOOP_H
#define CIO_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the public API: see LIBRARY in cio.h */

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
/* Intrusive lists                                                          */
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

/* [awaits] Runs fn(arg) on target's thread (NULL: the current loop) and
 * returns once it has run: asyncio's run_coroutine_threadsafe(...).result()
 * for a plain callback, which must not await. On the current loop fn is
 * called directly. On another loop it runs during one of target's turns
 * (target must be turning, or be destroyed: destroy runs what was posted),
 * while the calling task waits shielded from cancellation and deadlines, so
 * arg may point into the caller's frame; a cancellation that arrives
 * meanwhile is reported by the next awaiting call. Call it from a task
 * when target is another loop (else it aborts). Allocates nothing: 0. */
int cio_loop_call(cio_loop *target, void (*fn)(void *arg), void *arg);

/* [awaits] cio_loop_call on several loops at once: fn(arg, i) runs on
 * targets[i]'s thread, the entries for the current loop directly once the
 * others are posted, and the call returns when every one has run. Returns
 * 0, or -ENOMEM (more than 8 other loops and no memory for their posts:
 * fn ran nowhere). */
int cio_loop_call_all(cio_loop *const *targets, size_t n, void (*fn)(void *arg, size_t i),
                      void *arg);

/* When loop last finished a turn: the clock reading that turn took after its
 * wait in the kernel (its cio_now()). For a health check on another thread:
 * thread-safe, and nearly free (the loop stores it once per turn, a relaxed
 * atomic). A loop held up by a task that computes without awaiting stops
 * advancing it, but so does an idle loop, which waits in io_uring_enter
 * without turning: with the heartbeat on (cio_lag_start, say 100 ms) an idle
 * loop still turns every interval, and cio_clock() - last_turn well above
 * the interval means the loop is stuck. */
cio_time cio_loop_last_turn(const cio_loop *loop);

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
    uint64_t bytes_in;        /* received by socket transports (HTTP, WebSocket peers) */
    uint64_t bytes_out;       /* sent by socket transports */
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
/* The heartbeat's lateness histogram since the (re)start, for exporting:
 * counts[0] ticks were on time, counts[i] (i >= 1) late by 2^(i-1) to
 * 2^i - 1 ns; *sum_ns is their total lateness. */
void cio_lag_histogram(const cio_loop *loop, uint64_t counts[64], cio_time *sum_ns);

/* ------------------------------------------------------------------------ */
/* Giving memory back after a burst                                          */
/* ------------------------------------------------------------------------ */

typedef struct cio_heap_stats {
    uint64_t trims;          /* malloc_trim calls */
    uint64_t released_bytes; /* resident bytes they gave back, in all */
    cio_time last_trim_ns;   /* how long the latest one took (the loop waited) */
} cio_heap_stats;

/* Every interval, when the loop has been quiet (under 2,000 completions a
 * second) and the process's resident size grew by at least min_free bytes
 * since the last trim, gives the pages freed meanwhile back to the kernel
 * (glibc's malloc_trim, all arenas). A weak timer: it keeps no loop alive.
 * interval <= 0 stops it. 0, -EINVAL (no loop) or -ENOMEM. */
int cio_heap_trim_start(cio_loop *loop, cio_time interval, size_t min_free);
void cio_heap_trim_get(const cio_loop *loop, cio_heap_stats *out);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif /* CIO_LOOP_H */
