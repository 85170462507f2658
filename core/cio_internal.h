/*
 * cio_internal.h - what the files of core/ share. Not installed, not used
 * outside core/ (proto/ and server/ see only cio.h).
 */
#ifndef CIO_INTERNAL_H
#define CIO_INTERNAL_H

#include "cio.h"

#include <assert.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>

#if defined(__SANITIZE_ADDRESS__)
#define CIO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CIO_ASAN 1
#endif
#endif

#define cio__likely(x)   __builtin_expect(!!(x), 1)
#define cio__unlikely(x) __builtin_expect(!!(x), 0)

/* ---- machine context --------------------------------------------------- */

#if defined(CIO_CORO_UCONTEXT)
#include <ucontext.h>
typedef struct cio__ctx {
    ucontext_t uc;
} cio__ctx;
#else
typedef struct cio__ctx {
    void *sp; /* saved stack pointer; registers are on that stack */
} cio__ctx;
/* Implemented in switch_<arch>.S: saves callee-saved registers on the current
 * stack, stores the stack pointer in *save, loads to and restores from it. */
void cio__switch(void **save, void *to);
#endif

/* A coroutine stack. The descriptor sits at the top of its own mapping, in the
 * page the coroutine touches first anyway. */
typedef struct cio__stack {
    struct cio__stack *next; /* free list */
    char *lo;                /* lowest usable byte (above the guard page) */
    size_t size;             /* usable bytes below the descriptor */
    unsigned vg_id;          /* valgrind stack id */
    bool dirty;              /* used since last trimmed */
} cio__stack;

/* ---- waits: the one mechanism behind every awaiting call --------------- */

enum { CIO__WHY_NONE, CIO__WHY_TIMEOUT, CIO__WHY_CANCEL };

/* A task suspended in an awaiting call owns one cio__wait on its stack. The
 * call's completer sets the result with cio__wait_complete(). If the deadline
 * passes or the task is cancelled first, interrupt() runs once; it must
 * complete the wait now (removing it from wherever it was queued) or arrange
 * for a completion later (an async cancel in the ring). 'why' says which. */
typedef struct cio__wait {
    cio_task *task;
    void (*interrupt)(struct cio__wait *w);
    intptr_t result;
    cio_time deadline; /* the call's own deadline */
    cio_timer timer;   /* armed at the effective deadline */
    uint8_t why;
    bool done;
} cio__wait;

/* Starts a wait: returns -ECANCELED or -ETIMEDOUT without suspending if the
 * task is already cancelled or past an effective deadline, else 0 (and the
 * deadline timer is armed). Between begin and suspend nothing may await. */
int cio__wait_begin(cio__wait *w, cio_time deadline, void (*interrupt)(cio__wait *));
/* Suspends until the wait completes; returns its result. */
intptr_t cio__wait_suspend(cio__wait *w);
/* Completes the wait with result and makes its task ready. */
void cio__wait_complete(cio__wait *w, intptr_t result);
/* The error an interrupted wait reports: -ETIMEDOUT or -ECANCELED. */
static inline intptr_t cio__wait_error(const cio__wait *w)
{
    return w->why == CIO__WHY_TIMEOUT ? -ETIMEDOUT : -ECANCELED;
}

/* A list-queued waiter (events, semaphores, channels, futures). */
typedef struct cio__qwait {
    cio__wait w;
    cio_list link;
    intptr_t item; /* channel payload */
} cio__qwait;

/* Queues the running task on q and suspends; the interrupt unlinks it. */
intptr_t cio__qwait_on(cio_list *q, cio__qwait *qw, cio_time deadline);
/* Wakes the first waiter of q with result; false if none. */
bool cio__qwait_wake_one(cio_list *q, intptr_t result);
void cio__qwait_wake_all(cio_list *q, intptr_t result);

/* ---- tasks -------------------------------------------------------------- */

enum { CIO__T_READY, CIO__T_RUNNING, CIO__T_SUSPENDED, CIO__T_DONE };

struct cio_task {
    cio__ctx ctx;
    cio__stack *stack;
    cio_loop *loop;
    cio_fn fn;
    void *arg;
    cio_task *next_ready;
    cio__wait *wait;     /* while suspended in an awaiting call */
    cio_scope *scope;    /* innermost active scope */
    cio_group *groups;   /* innermost open group of this task */
    cio_group *parent;   /* group this task is a child of */
    cio_list group_link; /* in parent->children */
    cio_list all_link;   /* in loop->tasks while alive */
    cio_scope root;      /* the task-wide scope (cio_task_cancel) */
    cio_future done;
    const char *name; /* for diagnostics (cio_task_set_name), or NULL */
    uint8_t state;
    uint8_t refs; /* handle/group + running */

    /* for debug mode (debug.c) */
    bool spawned_in_task;      /* by a task: the one expected to join it */
    uint32_t dbg_jobs;         /* pool jobs outstanding on its stack */
    const void *spawned_at;    /* the spawn call's return address */
    struct cio__unjoined *dbg; /* finished with its handle held */
#if CIO_ASAN
    void *asan_fake;
#endif
};

void cio__task_wake(cio_task *t);
void cio__run_ready(cio_loop *l);
void cio__tasks_fini(cio_loop *l);
/* Cancels s: interrupts its task's wait (if inside s) and the children of
 * the task's groups opened inside s. */
void cio__scope_cancel_internal(cio_scope *s);
/* Waits for f shielded from cancellation and deadlines (after cancelling the
 * work behind it: its memory is in use until f is done). */
void cio__await_shielded(cio_future *f);

/* ---- loop --------------------------------------------------------------- */

typedef struct cio__post {
    struct cio__post *next;
    void (*fn)(void *arg);
    void *arg;
    bool heap; /* cio_loop_post's own: freed once taken */
} cio__post;

/* A completion moved off the CQ to make room, waiting for its turn to run. */
typedef struct cio__cqe {
    uint64_t data;
    int32_t res;
    uint32_t flags;
} cio__cqe;

typedef struct cio__slab {
    struct cio__slab *next;
    void *base;
    size_t len;
} cio__slab;

struct cio_loop {
    struct io_uring ring;
    unsigned ring_flags;
    cio_time now;
    pthread_t thread;

    /* scheduler */
    cio__ctx sched;
    cio_task *current;
    cio_task *ready_head, *ready_tail;
    cio_list tasks; /* all live tasks */
    cio_task *task_free;
    size_t task_free_len;
    cio_time last_enter; /* when the loop last entered the kernel */
    cio_time wait_slice; /* longest single wait (0 = unbounded) */

    /* timers: binary min-heap, 1-based */
    cio_timer **heap;
    uint32_t heap_len, heap_cap;
    uint32_t weak_timers; /* armed timers that do not keep the loop alive */

    /* coroutine stacks */
    size_t stack_size, slot_size;
    cio__stack *stack_free;
    size_t stack_free_len;
    cio__slab *slabs;
    char *slab_next, *slab_end; /* carving position in the newest slab */
    size_t stacks_mapped;
    bool guard_madvise; /* MADV_GUARD_INSTALL works */
    cio_timer trim_timer;

    /* cross-thread posts: a mutex-guarded list and an eventfd read in the ring */
    pthread_mutex_t post_lock;
    cio__post *post_head, *post_tail;
    int efd;
    uint64_t efd_val;
    cio_completion efd_comp;
    atomic_bool efd_signalled;
    bool efd_armed;
    bool msg_ring_ok; /* IORING_OP_MSG_RING supported */

    /* provided receive buffers (net.c), set up on first use */
    struct io_uring_buf_ring *br;
    char *bufs;
    unsigned buf_count, buf_size, buf_mask;
    unsigned br_returned; /* buffers given back since the last publish */
    bool br_failed;       /* registration refused: transports cannot read */
    bool recv_single;     /* no multishot receive: one-shot receives instead */
    cio_list bufwait;     /* cio_socket_transport waiting for buffers to re-arm */

    /* completions taken off the CQ by a refused submission (a FIFO ring,
     * power-of-2 capacity); the reap runs them before the CQ's */
    cio__cqe *held;
    uint32_t held_head, held_len, held_cap;
    int ring_error;                /* the ring refused for good: turns fail with it */
    struct io_uring_sqe sqe_spare; /* handed out once the ring is broken */

    uint64_t inflight; /* ring operations awaiting their last CQE */
    uint64_t external; /* work on other threads that will post back (the pool's
                          exit notice, cio_loop_call): the loop is not quiet */
    atomic_bool stop;
    bool closing; /* being destroyed: do not re-arm the wake-up read */

    /* lag monitor */
    cio_timer lag_timer;
    cio_time lag_interval, lag_start, lag_next;
    cio_lag_stats lag;
    uint64_t lag_hist[64];
    cio_time lag_sum;

    /* heap trimming (heap.c) */
    cio_timer heap_timer;
    cio_time heap_interval;
    size_t heap_min_free, heap_base; /* resident bytes after the last trim */
    size_t heap_peak;                /* the most resident bytes seen since */
    bool heap_busy;                  /* a busy tick since the last quiet one */
    size_t heap_inuse;               /* the allocator's bytes in use at the last trim */
    uint64_t heap_last_cqes;
    cio_heap_stats heap_stats;

    cio_loop_stats stats;
    _Atomic cio_time last_turn; /* now of the latest finished turn, for other threads */

    /* the slow-task watchdog (task.c) */
    cio_time slow_threshold; /* 0: off */
    void (*slow_fn)(void *ud, const char *name, cio_time ns);
    void *slow_ud;
    uint64_t slow_count;

    /* debug mode (debug.c) */
    bool debug;             /* its switch (cio_debug_set) */
    struct cio__debug *dbg; /* its state, NULL until first used */

    cio_list writers;    /* cio_log_writer flushed at the end of each turn */
    cio_list sendq_due;  /* cio_sendq.due_link: sent at the end of each turn */
    cio_log_writer *log; /* this loop's process-log writer (stderr) */

#if CIO_ASAN
    const void *main_stack_bottom;
    size_t main_stack_size;
#endif
};

extern _Thread_local cio_loop *cio__tls_loop;

/* An SQE, flushing the SQ to the kernel if it is full. Never NULL, never
 * aborts, and runs no callback: when the kernel refuses the submission for
 * overload, the completions it must first take off the CQ are held for the
 * reap. Safe inside completion callbacks. */
struct io_uring_sqe *cio__sqe(cio_loop *l);
/* Makes sure the next n (<= 2) cio__sqe() calls land in one submission, as
 * a linked chain must. */
void cio__sq_reserve(cio_loop *l, unsigned n);
/* Attaches c to sqe and counts it in flight (until a CQE without F_MORE). */
static inline void cio__sqe_set_comp(cio_loop *l, struct io_uring_sqe *sqe, cio_completion *c)
{
    io_uring_sqe_set_data(sqe, c);
    l->inflight++;
}
/* Submits an async cancel for the operation whose user_data is c; its own
 * CQE is ignored. */
void cio__cancel_op(cio_loop *l, cio_completion *c);

/* Awaiting a single ring operation from a task. */
typedef struct cio__uop {
    cio_completion comp;
    cio__wait w;
} cio__uop;

/* begin -> (sqe = cio__sqe(), prep it) -> submit -> end. begin returns
 * -ECANCELED/-ETIMEDOUT without touching the ring. */
int cio__uop_begin(cio__uop *op, cio_time deadline);
void cio__uop_submit(cio__uop *op, struct io_uring_sqe *sqe);
intptr_t cio__uop_end(cio__uop *op);

/* stacks (coro.c) */
void cio__stacks_init(cio_loop *l, size_t stack_size);
void cio__stacks_fini(cio_loop *l);
cio__stack *cio__stack_get(cio_loop *l);
void cio__stack_put(cio_loop *l, cio__stack *s);
void cio__stacks_trim(cio_loop *l, size_t keep);
/* Prepares t->ctx so that switching to it runs cio__task_main(t) on
 * t->stack; cio__task_main calls cio__ctx_first_entry(t) first. */
void cio__ctx_make(cio_task *t);
void cio__ctx_first_entry(cio_task *t);
void cio__task_main(cio_task *t);
static inline void cio__raw_switch(cio__ctx *from, cio__ctx *to)
{
#if defined(CIO_CORO_UCONTEXT)
    swapcontext(&from->uc, &to->uc);
#else
    cio__switch(&from->sp, to->sp);
#endif
}

/* Switches from the running context to 'to'; 'exiting' when the current
 * coroutine never runs again (sanitizer bookkeeping). Without ASan this is
 * the bare switch, inlined at the call site. */
#if CIO_ASAN
void cio__ctx_switch(cio_loop *l, cio__ctx *from, cio__ctx *to, cio_task *from_task,
                     cio_task *to_task, bool exiting);
#else
static inline void cio__ctx_switch(cio_loop *l, cio__ctx *from, cio__ctx *to, cio_task *from_task,
                                   cio_task *to_task, bool exiting)
{
    (void)l, (void)from_task, (void)to_task, (void)exiting;
    cio__raw_switch(from, to);
}
#endif

/* timers (timer.c) */
void cio__timers_fire(cio_loop *l);
cio_time cio__timers_next(const cio_loop *l);
void cio__timer_set_weak(cio_timer *t, bool weak);

/* the lag monitor's heartbeat (timer.c) */
void cio__lag_tick(cio_timer *t);

/* net (net.c) */
void cio__net_rearm(cio_loop *l);
/* Makes the buffers given back during a reap visible to the kernel. */
void cio__bufring_publish(cio_loop *l);
void cio__bufring_fini(cio_loop *l);

/* send queues (sendq.c): the slices due at the end of a turn go out. */
void cio__sendq_run_due(cio_loop *l);

/* log (log.c) */
void cio__log_flush(cio_loop *l);
/* Writes out the writer linked by n (already unlinked) synchronously. */
void cio__log_writer_detach_link(cio_list *n);

static inline cio_loop *cio__loop_or_current(cio_loop *l)
{
    return l ? l : cio__tls_loop;
}

/* ---- debug mode (debug.c) ------------------------------------------------ */

/* The loop thread's count of voluntary context switches, read around each
 * task run; each run's closing reading opens the next one's (valid) unless
 * a callback ran in between. */
typedef struct cio__debug_mark {
    long nvcsw;
    cio_time start;
    bool valid;
} cio__debug_mark;

/* Around a run of t by the scheduler while l->debug is on. run_end reports
 * a run that slept in the kernel and, when t has ended, its abandoned pool
 * jobs; it returns true if t's stack must not be reused yet (it keeps it). */
void cio__debug_run_begin(cio_loop *l, cio__debug_mark *m);
bool cio__debug_run_end(cio_loop *l, cio__debug_mark *m, cio_task *t);
/* The last reference to t, which debug mode tracked, is gone. */
void cio__debug_task_released(cio_task *t);
/* Pool submissions: a job on the submitting task's stack is tracked. */
void cio__debug_track_job(cio_loop *l, cio_job *job);
static inline void cio__debug_job_submitted(cio_job *job)
{
    cio_loop *l = cio__tls_loop;
    if (cio__unlikely(l != NULL && l->debug))
        cio__debug_track_job(l, job);
}
/* cio_future_set of a watched future (a tracked job's). */
void cio__debug_future_set(cio_future *f, intptr_t result);
/* Completes f (not done) and runs its subscriptions (future.c). */
void cio__future_complete(cio_future *f, intptr_t result);
/* Loop teardown: reports the tasks never joined and frees debug state. */
void cio__debug_fini(cio_loop *l);

#endif /* CIO_INTERNAL_H */
