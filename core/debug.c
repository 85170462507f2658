/*
 * debug.c - debug mode (CORIO_DEBUG=1): the checks too costly to run
 * always. See cio_task.h for what each catches and misses.
 *
 * Blocking calls: the loop thread's voluntary context switches (the kernel
 * counts one each time the thread goes to sleep) are read before and after
 * each task run; the loop's own waits in io_uring_enter happen between
 * runs, so they never count. Never-joined tasks: a task that ends with its
 * handle still held gets a record (its name copied: the string may die
 * with it), dropped when the handle is joined or detached; what is left at
 * teardown was never joined. Abandoned jobs: a job whose cio_job lies on
 * the submitting task's stack is tracked until its future completes; if
 * the task ends first, its stack is kept out of use until then.
 */
#include "cio_internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define LOG_EVERY      CIO_SEC(1) /* one log line a second per kind, at most */
#define TEARDOWN_LINES 8          /* never-joined tasks named one by one */
#define KINDS          (CIO_DEBUG_JOB_ABANDONED + 1)

/* A finished task whose handle is still held. */
typedef struct cio__unjoined {
    cio_list link; /* in young (a candidate for UNJOINED_ERROR) or settled */
    cio_task *task;
    const void *spawned_at;
    intptr_t result;
    cio_time finished;
    bool named;
    char name[64];
} unjoined;

/* A pool job whose cio_job lies on its submitter's stack. */
typedef struct {
    cio_job *job;      /* NULL: a free slot */
    cio_task *task;    /* the submitter while alive and tracked, else NULL */
    cio__stack *stack; /* kept out of use until the job completes, or NULL */
} job_rec;

typedef struct {
    cio_time last; /* when the kind's last line was logged */
    uint64_t held; /* reports since, not logged */
} limiter;

typedef struct cio__debug {
    void (*fn)(void *ud, const cio_debug_report *r);
    void *ud;
    cio_debug_stats stats;
    cio_list young, settled;
    cio_timer timer; /* young's oldest reaches CIO_DEBUG_UNJOINED_GRACE */
    job_rec *jobs;   /* open addressing, linear probing */
    size_t jobs_cap, jobs_len;
    uint64_t emitted;
    limiter lim[KINDS];
} cio__debug;

/* ---- reports ------------------------------------------------------------------ */

/* "GET /x (spawned at 0x55d0c3a4b2c1, corio+0x4b2c1)": the offset is what
 * addr2line -e corio takes (position-independent binaries). */
static void describe(char *buf, size_t n, const char *name, const void *site)
{
    const char *who = name ? name : "a task";
    Dl_info info;
    if (!site) {
        snprintf(buf, n, "%s", who);
    } else if (dladdr(site, &info) && info.dli_fname && info.dli_fbase) {
        const char *base = strrchr(info.dli_fname, '/');
        snprintf(buf, n, "%s (spawned at %p, %s+%#tx)", who, site, base ? base + 1 : info.dli_fname,
                 (const char *)site - (const char *)info.dli_fbase);
    } else {
        snprintf(buf, n, "%s (spawned at %p)", who, site);
    }
}

/* "-5 (Input/output error)", or "42". */
static void result_text(char *buf, size_t n, intptr_t r)
{
    if (r < 0 && r > -4096)
        snprintf(buf, n, "%" PRIdPTR " (%s)", r, strerror((int)-r));
    else
        snprintf(buf, n, "%" PRIdPTR, r);
}

/* To the reporter, or to the log: at most one line a second per kind, the
 * ones held back counted in the next. */
static void emit(cio__debug *d, const cio_debug_report *r)
{
    d->emitted++;
    if (d->fn) {
        d->fn(d->ud, r);
        return;
    }
    limiter *lim = &d->lim[r->kind];
    cio_time now = cio_clock();
    if (lim->last && now - lim->last < LOG_EVERY) {
        lim->held++;
        return;
    }
    if (lim->held)
        cio_warn("%s (and %" PRIu64 " more of this kind since the last such line)", r->text,
                 lim->held);
    else
        cio_warn("%s", r->text);
    lim->last = now;
    lim->held = 0;
}

/* ---- state ------------------------------------------------------------------------ */

static void unjoined_tick(cio_timer *tm);

static cio__debug *state(cio_loop *l)
{
    if (!l->dbg) {
        cio__debug *d = calloc(1, sizeof(*d));
        if (!d)
            return NULL;
        cio_list_init(&d->young);
        cio_list_init(&d->settled);
        cio_timer_init_weak(&d->timer, l, unjoined_tick);
        l->dbg = d;
    }
    return l->dbg;
}

static void young_arm(cio__debug *d)
{
    if (cio_list_empty(&d->young))
        return;
    unjoined *u = cio_container_of(d->young.next, unjoined, link);
    (void)cio_timer_start(&d->timer, u->finished + CIO_DEBUG_UNJOINED_GRACE);
}

/* ---- blocking calls ------------------------------------------------------------------ */

/* Times the calling thread went to sleep in the kernel. One system call
 * (~0.4 us): the whole of debug mode's cost per task run. */
static long nvcsw(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_THREAD, &ru) == 0 ? ru.ru_nvcsw : 0;
}

void cio__debug_run_begin(cio_loop *l, cio__debug_mark *m)
{
    (void)l;
    if (!m->valid)
        m->nvcsw = nvcsw();
    m->valid = true;
    m->start = cio_clock();
}

static void report_blocking(cio_loop *l, cio_task *t, long sleeps, cio_time ns)
{
    cio__debug *d = l->dbg;
    d->stats.blocking++;
    char who[192], took[32], text[384];
    describe(who, sizeof(who), t->name, t->spawned_at);
    if (ns < CIO_MS(1))
        snprintf(took, sizeof(took), "%.0f us", (double)ns / 1e3);
    else
        snprintf(took, sizeof(took), "%.1f ms", (double)ns / 1e6);
    snprintf(text, sizeof(text),
             "blocking call on the loop thread: %s slept in the kernel %ld time(s) during one "
             "run (%s); move it to the pool (cio_pool_run)",
             who, sleeps, took);
    cio_debug_report r = {.kind = CIO_DEBUG_BLOCKING,
                          .task = t->name,
                          .spawned_at = t->spawned_at,
                          .sleeps = (uint64_t)sleeps,
                          .ns = ns,
                          .text = text};
    emit(d, &r);
}

/* ---- pool jobs on a task's stack ------------------------------------------------------- */

static size_t job_home(const cio__debug *d, const cio_job *job)
{
    uint64_t h = (uint64_t)(uintptr_t)job * UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(h >> 32) & (d->jobs_cap - 1);
}

static job_rec *job_find(cio__debug *d, const cio_job *job)
{
    if (!d->jobs_len)
        return NULL;
    for (size_t i = job_home(d, job);; i = (i + 1) & (d->jobs_cap - 1)) {
        if (d->jobs[i].job == job)
            return &d->jobs[i];
        if (!d->jobs[i].job)
            return NULL;
    }
}

static void job_put(cio__debug *d, job_rec r)
{
    size_t i = job_home(d, r.job);
    while (d->jobs[i].job)
        i = (i + 1) & (d->jobs_cap - 1);
    d->jobs[i] = r;
    d->jobs_len++;
}

/* Kept at most half full. */
static int job_add(cio__debug *d, job_rec r)
{
    if (2 * (d->jobs_len + 1) > d->jobs_cap) {
        size_t cap = d->jobs_cap ? 2 * d->jobs_cap : 16;
        job_rec *old = d->jobs, *tab = calloc(cap, sizeof(*tab));
        if (!tab)
            return -ENOMEM;
        size_t old_cap = d->jobs_cap;
        d->jobs = tab;
        d->jobs_cap = cap;
        d->jobs_len = 0;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].job)
                job_put(d, old[i]);
        free(old);
    }
    job_put(d, r);
    return 0;
}

/* Removes slot r, moving later entries of its probe run back into the hole
 * (no tombstones). */
static void job_remove(cio__debug *d, job_rec *r)
{
    size_t mask = d->jobs_cap - 1, hole = (size_t)(r - d->jobs);
    for (size_t j = (hole + 1) & mask; d->jobs[j].job; j = (j + 1) & mask) {
        size_t home = job_home(d, d->jobs[j].job);
        /* j's entry may fill the hole if its home is not in (hole, j]. */
        bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!stays) {
            d->jobs[hole] = d->jobs[j];
            hole = j;
        }
    }
    d->jobs[hole].job = NULL;
    d->jobs_len--;
}

void cio__debug_track_job(cio_loop *l, cio_job *job)
{
    cio_task *t = l->current;
    cio__debug *d = l->dbg;
    if (!t || !t->stack || !d)
        return;
    /* Only a job on the submitter's stack has a lifetime we know: the
     * task's. One on the heap may be freed at any time, unseen. */
    if ((char *)job < t->stack->lo || (char *)(job + 1) > (char *)t->stack)
        return;
    if (job_find(d, job))
        return; /* resubmitted while outstanding: beyond what is tracked */
    if (job_add(d, (job_rec){.job = job, .task = t}) < 0)
        return; /* a check is not worth failing the submission for */
    t->dbg_jobs++;
    job->fut.watched = true;
}

static bool stack_has_jobs(const cio__debug *d, const cio__stack *s)
{
    for (size_t i = 0; i < d->jobs_cap; i++)
        if (d->jobs[i].job && d->jobs[i].stack == s)
            return true;
    return false;
}

void cio__debug_future_set(cio_future *f, intptr_t result)
{
    cio_loop *l = cio__tls_loop;
    cio__debug *d = l ? l->dbg : NULL;
    cio__stack *release = NULL;
    f->watched = false;
    job_rec *r = d ? job_find(d, cio_container_of(f, cio_job, fut)) : NULL;
    if (r) {
        if (r->task)
            r->task->dbg_jobs--;
        release = r->stack;
        job_remove(d, r);
        if (release && stack_has_jobs(d, release))
            release = NULL; /* another abandoned job still lands there */
    }
    cio__future_complete(f, result);
    if (release)
        cio__stack_put(l, release); /* now the stack may be reused */
}

/* t ended: its outstanding jobs would complete into a dead stack, which is
 * kept until they have. Returns true if it is kept. */
static bool jobs_abandoned(cio_loop *l, cio_task *t)
{
    cio__debug *d = l->dbg;
    bool keep = false;
    for (size_t i = 0; i < d->jobs_cap; i++) {
        job_rec *r = &d->jobs[i];
        if (!r->job || r->task != t)
            continue;
        r->task = NULL;
        r->stack = t->stack;
        keep = true;
        d->stats.jobs_abandoned++;
        char who[192], text[512];
        describe(who, sizeof(who), t->name, t->spawned_at);
        snprintf(text, sizeof(text),
                 "pool job abandoned: %s ended while the job it submitted from its stack "
                 "(cio_job %p) was still outstanding, so its result would land in a stack "
                 "another task reuses (debug mode keeps that stack out of use until then); "
                 "cio_job_join it before returning",
                 who, (void *)r->job);
        cio_debug_report rep = {.kind = CIO_DEBUG_JOB_ABANDONED,
                                .task = t->name,
                                .spawned_at = t->spawned_at,
                                .job = r->job,
                                .text = text};
        emit(d, &rep);
    }
    t->dbg_jobs = 0;
    return keep;
}

/* ---- tasks never joined ---------------------------------------------------------------- */

/* t ended with its handle held (not detached, not a group's child): it
 * stays tracked until joined or detached. */
static void track_unjoined(cio_loop *l, cio_task *t)
{
    cio__debug *d = l->dbg;
    unjoined *u = malloc(sizeof(*u));
    if (!u)
        return; /* not tracked: a check is not worth failing for */
    u->task = t;
    u->spawned_at = t->spawned_at;
    u->result = t->done.result;
    u->finished = cio_now();
    u->named = t->name != NULL;
    size_t len = t->name ? strnlen(t->name, sizeof(u->name) - 1) : 0;
    memcpy(u->name, t->name ? t->name : "", len); /* (snprintf: a tenth of the cost) */
    u->name[len] = '\0';
    t->dbg = u;
    d->stats.unjoined++;
    /* Only a failed task spawned by a task is reported before teardown:
     * the one its spawner should have joined by now. */
    if (u->result < 0 && t->spawned_in_task) {
        cio_list_push(&d->young, &u->link);
        if (!cio_timer_armed(&d->timer))
            young_arm(d);
    } else {
        cio_list_push(&d->settled, &u->link);
    }
}

void cio__debug_task_released(cio_task *t)
{
    unjoined *u = t->dbg;
    cio_list_del(&u->link);
    free(u);
    t->dbg = NULL;
    t->loop->dbg->stats.unjoined--;
}

static void unjoined_tick(cio_timer *tm)
{
    cio__debug *d = cio_container_of(tm, cio__debug, timer);
    cio_time now = tm->loop->now;
    while (!cio_list_empty(&d->young)) {
        unjoined *u = cio_container_of(d->young.next, unjoined, link);
        if (u->finished + CIO_DEBUG_UNJOINED_GRACE > now) {
            young_arm(d);
            return;
        }
        cio_list_del(&u->link);
        cio_list_push(&d->settled, &u->link);
        d->stats.unjoined_errors++;
        char who[192], res[96], text[512];
        describe(who, sizeof(who), u->named ? u->name : NULL, u->spawned_at);
        result_text(res, sizeof(res), u->result);
        snprintf(text, sizeof(text),
                 "task failed and was not joined: %s ended with %s %.1f s ago and is neither "
                 "joined nor detached; if its handle was dropped, the error is lost (join it, or "
                 "detach it and handle the error inside)",
                 who, res, (double)(now - u->finished) / 1e9);
        cio_debug_report r = {.kind = CIO_DEBUG_UNJOINED_ERROR,
                              .task = u->named ? u->name : NULL,
                              .spawned_at = u->spawned_at,
                              .result = u->result,
                              .text = text};
        emit(d, &r);
    }
}

bool cio__debug_run_end(cio_loop *l, cio__debug_mark *m, cio_task *t)
{
    cio__debug *d = l->dbg;
    uint64_t emitted = d->emitted;
    long nv = nvcsw();
    if (nv > m->nvcsw)
        report_blocking(l, t, nv - m->nvcsw, cio_clock() - m->start);
    m->nvcsw = nv;
    bool keep = false;
    if (t->state == CIO__T_DONE) {
        if (t->dbg_jobs)
            keep = jobs_abandoned(l, t);
        if (!t->parent && t->refs == 2) /* the handle and the running reference */
            track_unjoined(l, t);
    }
    /* A reporter ran: it may have slept, and that was not the next run. */
    m->valid = d->emitted == emitted;
    return keep;
}

void cio__debug_fini(cio_loop *l)
{
    cio__debug *d = l->dbg;
    if (!d)
        return;
    cio_timer_stop(&d->timer);
    cio_list_splice(&d->settled, &d->young);
    uint64_t n = 0;
    for (cio_list *p; (p = cio_list_pop(&d->settled)) != NULL; n++) {
        unjoined *u = cio_container_of(p, unjoined, link);
        char who[192], res[96], text[512];
        describe(who, sizeof(who), u->named ? u->name : NULL, u->spawned_at);
        result_text(res, sizeof(res), u->result);
        snprintf(text, sizeof(text),
                 "task never joined: %s ended with %s and was neither joined nor detached "
                 "before its loop was destroyed: its handle was dropped, its result never read",
                 who, res);
        cio_debug_report r = {.kind = CIO_DEBUG_NEVER_JOINED,
                              .task = u->named ? u->name : NULL,
                              .spawned_at = u->spawned_at,
                              .result = u->result,
                              .text = text};
        if (d->fn)
            d->fn(d->ud, &r);
        else if (n < TEARDOWN_LINES)
            cio_warn("%s", text);
        free(u->task); /* nobody can join it once its loop is gone */
        free(u);
    }
    if (!d->fn && n > TEARDOWN_LINES)
        cio_warn("and %" PRIu64 " more tasks never joined", n - TEARDOWN_LINES);
    free(d->jobs);
    free(d);
    l->dbg = NULL;
    l->debug = false;
}

/* ---- API ----------------------------------------------------------------------------------- */

int cio_debug_set(cio_loop *l, bool on)
{
    l = cio__loop_or_current(l);
    if (!l)
        return -EINVAL;
    if (on == l->debug)
        return 0;
    cio__debug *d = state(l);
    if (!d)
        return -ENOMEM;
    l->debug = on;
    if (on) {
        young_arm(d);
        return 0;
    }
    cio_timer_stop(&d->timer);
    /* Live tasks' jobs are no longer followed (their end will not be seen);
     * a record stays until its future completes, as the future is marked.
     * Stacks already kept stay kept until their jobs complete. */
    for (size_t i = 0; i < d->jobs_cap; i++) {
        job_rec *r = &d->jobs[i];
        if (r->job && r->task) {
            r->task->dbg_jobs = 0;
            r->task = NULL;
        }
    }
    return 0;
}

bool cio_debug_enabled(const cio_loop *l)
{
    if (!l)
        l = cio_loop_current();
    return l && l->debug;
}

int cio_debug_set_reporter(cio_loop *l, void (*fn)(void *ud, const cio_debug_report *r), void *ud)
{
    l = cio__loop_or_current(l);
    if (!l)
        return -EINVAL;
    cio__debug *d = state(l);
    if (!d)
        return -ENOMEM;
    d->fn = fn;
    d->ud = ud;
    return 0;
}

void cio_debug_get_stats(const cio_loop *l, cio_debug_stats *out)
{
    if (!l)
        l = cio_loop_current();
    if (l && l->dbg)
        *out = l->dbg->stats;
    else
        *out = (cio_debug_stats){0};
}
