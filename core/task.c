/*
 * task.c - tasks, the wait mechanism behind every awaiting call, cancel
 * scopes, joins and task groups.
 *
 * A task switches only between itself and the loop's scheduler context: it
 * suspends inside cio__wait_suspend() (or cio_yield()), and the scheduler
 * resumes it once cio__wait_complete() made it ready. Finished tasks hand
 * their stack back right after the switch off it.
 */
#include "cio_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define TASK_FREE_MAX 4096
#define RUN_BUDGET    128

_Thread_local cio_loop *cio__tls_loop;

#if !defined(CIO_CORO_UCONTEXT) /* ucontext_t alone is ~1 KiB: the fallback is for portability */
static_assert(sizeof(cio_task) <= 256, "cio_task is on every spawn's path: keep it small");
#endif

/* ---- allocation ---------------------------------------------------------- */

static cio_task *task_alloc(cio_loop *l)
{
    cio_task *t = l->task_free;
    if (t) {
        l->task_free = t->next_ready;
        l->task_free_len--;
        return t;
    }
    return malloc(sizeof(cio_task));
}

static void task_release(cio_task *t)
{
    cio_loop *l = t->loop;
    if (--t->refs != 0)
        return;
    if (cio__unlikely(t->dbg != NULL))
        cio__debug_task_released(t); /* joined or detached after all */
    if (l->task_free_len < TASK_FREE_MAX) {
        t->next_ready = l->task_free;
        l->task_free = t;
        l->task_free_len++;
    } else {
        free(t);
    }
}

void cio__tasks_fini(cio_loop *l)
{
    cio__debug_fini(l); /* frees the finished tasks nobody joined, too */
    while (l->task_free) {
        cio_task *t = l->task_free;
        l->task_free = t->next_ready;
        free(t);
    }
    l->task_free_len = 0;
}

/* ---- scheduling ----------------------------------------------------------- */

static void ready_push(cio_loop *l, cio_task *t)
{
    t->state = CIO__T_READY;
    t->next_ready = NULL;
    if (l->ready_tail)
        l->ready_tail->next_ready = t;
    else
        l->ready_head = t;
    l->ready_tail = t;
}

void cio__task_wake(cio_task *t)
{
    if (t->state == CIO__T_SUSPENDED)
        ready_push(t->loop, t);
}

/* The coarse clock: a few nanoseconds to read (a vDSO load), a jiffy's
 * resolution (1 to 4 ms): enough for a watchdog whose thresholds are tens
 * of milliseconds, and cheap enough to read around every switch. */
static cio_time coarse_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (cio_time)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline cio_task *ready_pop(cio_loop *l)
{
    cio_task *t = l->ready_head;
    l->ready_head = t->next_ready;
    if (!l->ready_head)
        l->ready_tail = NULL;
    return t;
}

/* Runs t until it awaits or ends; returns whether the slow-task watchdog
 * reported the run (its callback ran). */
static inline bool run_task(cio_loop *l, cio_task *t)
{
    t->state = CIO__T_RUNNING;
    l->current = t;
    cio_time t0 = l->slow_threshold ? coarse_now() : 0;
    cio__ctx_switch(l, &l->sched, &t->ctx, NULL, t, false);
    l->current = NULL;
    if (l->slow_threshold && t0) { /* (not when turned on meanwhile) */
        /* It ran from t0 until it awaited (or ended): everything else
         * on this loop waited that long. */
        cio_time ran = coarse_now() - t0;
        if (ran > l->slow_threshold) {
            l->slow_count++;
            if (l->slow_fn)
                l->slow_fn(l->slow_ud, t->name, ran);
            return true;
        }
    }
    return false;
}

/* A finished task hands its stack back (unless debug mode keeps it) and
 * drops the running reference. */
static inline void task_retire(cio_loop *l, cio_task *t, bool keep_stack)
{
    if (!keep_stack)
        cio__stack_put(l, t->stack);
    t->stack = NULL;
    task_release(t);
}

/* cio__run_ready with debug mode's checks around each run. */
static void run_ready_debug(cio_loop *l)
{
    cio__debug_mark m = {.valid = false};
    size_t n = RUN_BUDGET;
    while (n-- > 0 && l->ready_head) {
        cio_task *t = ready_pop(l);
        cio__debug_run_begin(l, &m);
        bool reported = run_task(l, t);
        bool keep = cio__debug_run_end(l, &m, t);
        if (reported)
            m.valid = false; /* the watchdog's callback ran: measure afresh */
        if (t->state == CIO__T_DONE)
            task_retire(l, t, keep);
    }
}

/* Runs ready tasks in FIFO order, including those made ready meanwhile, up
 * to a budget of task runs: the turn's fixed costs (clock, timers, kernel
 * entry) are shared by many runs, while tasks that keep yielding to each
 * other still cannot keep the loop from reaping I/O for long. Debug mode
 * costs this path one branch a turn. */
void cio__run_ready(cio_loop *l)
{
    if (cio__unlikely(l->debug)) {
        run_ready_debug(l);
        return;
    }
    size_t n = RUN_BUDGET;
    while (n-- > 0 && l->ready_head) {
        cio_task *t = ready_pop(l);
        (void)run_task(l, t);
        if (t->state == CIO__T_DONE)
            task_retire(l, t, false);
    }
}

static void task_suspend(cio_task *t)
{
    t->state = CIO__T_SUSPENDED;
    cio__ctx_switch(t->loop, &t->ctx, &t->loop->sched, t, NULL, false);
}

static void group_child_done(cio_group *g, intptr_t r);

/* Debug mode runs a task's function this much deeper in its stack. When
 * the function returns, the task's own exit path (setting its future,
 * waking its joiner, the switch away) runs where the function's frames
 * were: a cio_job it left outstanding there would be overwritten before
 * debug mode can see the task end and keep the stack. The gap is where
 * the exit path runs instead. */
#if CIO_ASAN
#define DEBUG_EXIT_GAP (32 * 1024) /* instrumented frames are larger */
#else
#define DEBUG_EXIT_GAP (8 * 1024)
#endif

/* Nothing may run between the function's return and this frame's: hence
 * no ASan instrumentation (it would call in to unpoison the frame), and a
 * use of the gap after the call (no tail call, which would drop it). */
__attribute__((noinline, no_sanitize_address)) static intptr_t run_fn_deep(cio_task *t)
{
    char gap[DEBUG_EXIT_GAP];
    __asm__ volatile("" : : "r"(gap) : "memory");
    intptr_t r = t->fn(t->arg);
    __asm__ volatile("" : : "r"(gap) : "memory");
    return r;
}

void cio__task_main(cio_task *t)
{
    cio__ctx_first_entry(t);
    intptr_t r = cio__unlikely(t->loop->debug) ? run_fn_deep(t) : t->fn(t->arg);
    if (t->scope != &t->root || t->groups) {
        fprintf(stderr, "corio: task %p returned inside a scope or group it did not leave\n",
                (void *)t);
        abort();
    }
    cio_loop *l = t->loop;
    cio_list_del(&t->all_link);
    l->stats.tasks_live--;
    t->state = CIO__T_DONE;
    (void)cio_future_set(&t->done, r);
    if (t->parent)
        group_child_done(t->parent, r);
    cio__ctx_switch(l, &t->ctx, &l->sched, t, NULL, true);
    abort(); /* a finished task is never resumed */
}

static int spawn(cio_loop *l, cio_task **out, cio_fn fn, void *arg, cio_group *g, const void *site)
{
    cio_task *t = task_alloc(l);
    if (!t)
        return -ENOMEM;
    t->dbg = NULL;
    t->stack = cio__stack_get(l);
    if (!t->stack) {
        t->refs = 1;
        t->loop = l;
        task_release(t);
        return -ENOMEM;
    }
    t->loop = l;
    t->fn = fn;
    t->name = NULL;
    t->spawned_at = site;
    t->spawned_in_task = l->current != NULL;
    t->dbg_jobs = 0;
    t->arg = arg;
    t->wait = NULL;
    t->groups = NULL;
    t->parent = g;
    cio_list_init(&t->group_link);
    t->root = (cio_scope){.parent = g ? &g->scope : NULL, .task = t, .deadline = CIO_NEVER};
    t->scope = &t->root;
    cio_future_init(&t->done);
    t->refs = 1 + (out != NULL || g != NULL);
#if CIO_ASAN
    t->asan_fake = NULL;
#endif
    cio__ctx_make(t);
    cio_list_push(&l->tasks, &t->all_link);
    l->stats.tasks_spawned++;
    l->stats.tasks_live++;
    ready_push(l, t);
    if (out)
        *out = t;
    return 0;
}

int cio_spawn(cio_loop *l, cio_task **out, cio_fn fn, void *arg)
{
    l = cio__loop_or_current(l);
    if (!l || !fn)
        return -EINVAL;
    return spawn(l, out, fn, arg, NULL, __builtin_return_address(0));
}

void cio_task_set_name(cio_task *t, const char *name)
{
    if (!t)
        t = cio_current();
    if (t)
        t->name = name;
}

int cio_slow_watch(cio_loop *l, cio_time threshold,
                   void (*fn)(void *ud, const char *name, cio_time ns), void *ud)
{
    l = cio__loop_or_current(l);
    if (!l)
        return -EINVAL;
    l->slow_threshold = threshold > 0 ? threshold : 0;
    l->slow_fn = fn;
    l->slow_ud = ud;
    return 0;
}

uint64_t cio_slow_count(const cio_loop *l)
{
    if (!l)
        l = cio_loop_current();
    return l ? l->slow_count : 0;
}

cio_task *cio_current(void)
{
    cio_loop *l = cio__tls_loop;
    return l ? l->current : NULL;
}

cio_future *cio_task_future(cio_task *t)
{
    return &t->done;
}

void cio_detach(cio_task *t)
{
    task_release(t);
}

/* ---- scopes and the cancellation state ------------------------------------ */

/* Walks the scope chain from s outwards, up to and including the first
 * shielded scope. */
static bool chain_state(cio_scope *s, cio_time now, cio_time *deadline_out)
{
    cio_time d = CIO_NEVER;
    bool cancelled = false;
    for (; s; s = s->parent) {
        if (!s->cancelled && s->deadline <= now)
            s->cancelled = s->expired = true; /* noticed lazily */
        if (s->cancelled)
            cancelled = true;
        if (s->deadline < d)
            d = s->deadline;
        if (s->shield)
            break;
    }
    if (deadline_out)
        *deadline_out = d;
    return cancelled;
}

static bool chain_reaches(cio_scope *from, const cio_scope *target)
{
    for (cio_scope *s = from; s; s = s->parent) {
        if (s == target)
            return true;
        if (s->shield)
            return false;
    }
    return false;
}

bool cio_cancelled(void)
{
    cio_task *t = cio_current();
    if (!t)
        return false;
    cio_time d;
    if (chain_state(t->scope, t->loop->now, &d))
        return true;
    /* The cached turn time stands still while a task computes: with a
     * deadline in the chain, ask the clock. */
    return d != CIO_NEVER && chain_state(t->scope, cio_clock(), NULL);
}

static void wait_interrupt(cio__wait *w, uint8_t why)
{
    if (w->done || w->why != CIO__WHY_NONE)
        return;
    w->why = why;
    cio_timer_stop(&w->timer);
    w->interrupt(w);
}

static void group_cancel_children(cio_group *g);

void cio__scope_cancel_internal(cio_scope *s)
{
    if (s->cancelled)
        return;
    s->cancelled = true;
    cio_task *t = s->task;
    if (t->state == CIO__T_DONE)
        return;
    if (t->state == CIO__T_SUSPENDED && t->wait && chain_reaches(t->scope, s))
        wait_interrupt(t->wait, CIO__WHY_CANCEL);
    for (cio_group *g = t->groups; g; g = g->outer)
        if (chain_reaches(&g->scope, s))
            group_cancel_children(g);
}

void cio_scope_enter(cio_scope *s, cio_time deadline, bool shield)
{
    cio_task *t = cio_current();
    assert(t && "cio_scope_enter outside a task");
    *s = (cio_scope){.parent = t->scope, .task = t, .deadline = deadline, .shield = shield};
    t->scope = s;
}

int cio_scope_exit(cio_scope *s)
{
    cio_task *t = s->task;
    if (t->scope != s) {
        fprintf(stderr, "corio: cancel scopes exited out of order\n");
        abort();
    }
    t->scope = s->parent;
    if (!s->cancelled && s->deadline != CIO_NEVER && s->deadline <= cio_clock())
        s->cancelled = s->expired = true; /* passed while nothing awaited */
    if (s->expired)
        return -ETIMEDOUT;
    return s->cancelled ? -ECANCELED : 0;
}

void cio_scope_cancel(cio_scope *s)
{
    cio__scope_cancel_internal(s);
}

void cio_task_cancel(cio_task *t)
{
    if (t->state != CIO__T_DONE)
        cio__scope_cancel_internal(&t->root);
}

/* ---- waits ------------------------------------------------------------------ */

static void wait_timer_fired(cio_timer *tm)
{
    cio__wait *w = cio_container_of(tm, cio__wait, timer);
    cio_loop *l = tm->loop;
    /* A scope deadline that passed marks that scope cancelled (and is what the
     * call reports); otherwise it was the call's own deadline. */
    cio_time d;
    if (chain_state(w->task->scope, l->now, &d))
        wait_interrupt(w, CIO__WHY_CANCEL);
    else if (w->deadline <= l->now)
        wait_interrupt(w, CIO__WHY_TIMEOUT);
    else
        (void)cio_timer_start(tm, w->deadline < d ? w->deadline : d); /* clock skew guard */
}

int cio__wait_begin(cio__wait *w, cio_time deadline, void (*interrupt)(cio__wait *))
{
    cio_loop *l = cio__tls_loop;
    cio_task *t = l ? l->current : NULL;
    if (!t) {
        fprintf(stderr, "corio: awaiting call outside a task\n");
        abort();
    }
    cio_time d;
    if (chain_state(t->scope, l->now, &d))
        return -ECANCELED;
    if (deadline <= l->now)
        return -ETIMEDOUT;
    w->task = t;
    w->interrupt = interrupt;
    w->result = 0;
    w->deadline = deadline;
    w->why = CIO__WHY_NONE;
    w->done = false;
    cio_timer_init(&w->timer, l, wait_timer_fired);
    cio_time fire = deadline < d ? deadline : d;
    if (fire != CIO_NEVER) {
        int rc = cio_timer_start(&w->timer, fire);
        if (rc < 0)
            return rc;
    }
    return 0;
}

intptr_t cio__wait_suspend(cio__wait *w)
{
    cio_task *t = w->task;
    t->wait = w;
    while (!w->done)
        task_suspend(t);
    t->wait = NULL;
    return w->result;
}

void cio__wait_complete(cio__wait *w, intptr_t result)
{
    if (w->done)
        return;
    w->done = true;
    w->result = result;
    cio_timer_stop(&w->timer);
    cio__task_wake(w->task);
}

int cio_yield(void)
{
    cio_task *t = cio_current();
    assert(t && "cio_yield outside a task");
    if (chain_state(t->scope, t->loop->now, NULL))
        return -ECANCELED;
    ready_push(t->loop, t);
    cio__ctx_switch(t->loop, &t->ctx, &t->loop->sched, t, NULL, false);
    return chain_state(t->scope, t->loop->now, NULL) ? -ECANCELED : 0;
}

static void qwait_interrupt(cio__wait *w)
{
    cio__qwait *q = cio_container_of(w, cio__qwait, w);
    cio_list_del(&q->link);
    cio__wait_complete(w, cio__wait_error(w));
}

intptr_t cio__qwait_on(cio_list *q, cio__qwait *qw, cio_time deadline)
{
    int rc = cio__wait_begin(&qw->w, deadline, qwait_interrupt);
    if (rc < 0)
        return rc;
    cio_list_push(q, &qw->link);
    return cio__wait_suspend(&qw->w);
}

bool cio__qwait_wake_one(cio_list *q, intptr_t result)
{
    cio_list *n = cio_list_pop(q);
    if (!n)
        return false;
    cio__wait_complete(&cio_container_of(n, cio__qwait, link)->w, result);
    return true;
}

void cio__qwait_wake_all(cio_list *q, intptr_t result)
{
    while (cio__qwait_wake_one(q, result)) {
    }
}

/* ---- join --------------------------------------------------------------------- */

void cio__await_shielded(cio_future *f)
{
    cio_scope shield;
    cio_scope_enter(&shield, CIO_NEVER, true);
    (void)cio_await(f, CIO_NEVER);
    (void)cio_scope_exit(&shield);
}

intptr_t cio_join(cio_task *t, cio_time deadline)
{
    cio_task *self = cio_current();
    assert(self && "cio_join outside a task");
    if (t == self)
        return -EDEADLK;
    intptr_t r = 0;
    if (!t->done.done) {
        r = cio_await(&t->done, deadline);
        if (!t->done.done) {
            /* Interrupted: cancel t and wait for it, so it cannot outlive us. */
            intptr_t why = r;
            cio_task_cancel(t);
            cio__await_shielded(&t->done);
            r = t->done.result == -ECANCELED ? why : t->done.result;
            task_release(t);
            return r;
        }
    }
    r = t->done.result;
    task_release(t);
    return r;
}

/* ---- groups --------------------------------------------------------------------- */

void cio_group_init(cio_group *g, cio_time deadline)
{
    cio_task *t = cio_current();
    assert(t && "cio_group_init outside a task");
    cio_scope_enter(&g->scope, deadline, false);
    cio_list_init(&g->children);
    g->live = 0;
    g->first_error = 0;
    g->outer = t->groups;
    g->owner = t;
    g->waiting = NULL;
    t->groups = g;
}

int cio_group_spawn(cio_group *g, cio_task **out, cio_fn fn, void *arg)
{
    cio_task *t;
    int rc = spawn(g->owner->loop, &t, fn, arg, g, __builtin_return_address(0));
    if (rc < 0)
        return rc;
    cio_list_push(&g->children, &t->group_link);
    g->live++;
    if (out)
        *out = t;
    return 0;
}

static void group_cancel_children(cio_group *g)
{
    for (cio_list *n = g->children.next; n != &g->children; n = n->next) {
        cio_task *c = cio_container_of(n, cio_task, group_link);
        cio_task_cancel(c);
    }
}

void cio_group_cancel(cio_group *g)
{
    cio__scope_cancel_internal(&g->scope);
    group_cancel_children(g); /* also when the scope was already cancelled */
}

static void group_child_done(cio_group *g, intptr_t r)
{
    g->live--;
    bool cancelling = g->scope.cancelled;
    if (r < 0 && !(r == -ECANCELED && cancelling) && g->first_error == 0) {
        g->first_error = r;
        cio_group_cancel(g);
    }
    if (g->live == 0 && g->waiting)
        cio__wait_complete(g->waiting, 0);
}

static void group_wait_interrupt(cio__wait *w)
{
    cio__wait_complete(w, cio__wait_error(w));
}

intptr_t cio_group_wait(cio_group *g)
{
    cio_task *t = g->owner;
    assert(t == cio_current() && "cio_group_wait from another task");
    /* Until the group's scope or the owner is cancelled (or past a
     * deadline), the wait can be interrupted; then the children are
     * cancelled and waited for, shielded, however long they take. */
    cio_scope shield;
    bool shielded = false;
    while (g->live > 0) {
        cio__wait w;
        int rc = cio__wait_begin(&w, CIO_NEVER, group_wait_interrupt);
        if (rc == 0) {
            g->waiting = &w;
            rc = (int)cio__wait_suspend(&w);
            g->waiting = NULL;
        }
        if (rc < 0 && !shielded) {
            cio_group_cancel(g);
            cio_scope_enter(&shield, CIO_NEVER, true);
            shielded = true;
        }
    }
    if (shielded)
        (void)cio_scope_exit(&shield);
    bool outer_cancelled = g->scope.parent && chain_state(g->scope.parent, t->loop->now, NULL);
    int scope_rc = cio_scope_exit(&g->scope);
    t->groups = g->outer;
    cio_list *n;
    while ((n = cio_list_pop(&g->children)) != NULL)
        task_release(cio_container_of(n, cio_task, group_link));
    if (g->first_error)
        return g->first_error;
    if (scope_rc)
        return scope_rc;
    return outer_cancelled ? -ECANCELED : 0;
}
