/* Debug mode (CORIO_DEBUG): blocking calls on the loop thread, tasks never
 * joined, pool jobs abandoned on a dead stack. Reports are captured through
 * the reporter hook, never parsed from stderr. */
#include "harness.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define KINDS (CIO_DEBUG_JOB_ABANDONED + 1)

/* What the reporter saw, per kind (static: NEVER_JOINED arrives from
 * cio_loop_destroy, after the main task is gone). */
static struct {
    int n[KINDS];
    char task[KINDS][64];
    char text[KINDS][512];
    cio_debug_report last[KINDS];
} seen;

static void capture(void *ud, const cio_debug_report *r)
{
    (void)ud;
    seen.n[r->kind]++;
    snprintf(seen.task[r->kind], sizeof(seen.task[0]), "%s", r->task ? r->task : "");
    snprintf(seen.text[r->kind], sizeof(seen.text[0]), "%s", r->text);
    seen.last[r->kind] = *r;
    seen.last[r->kind].task = seen.task[r->kind];
    seen.last[r->kind].text = seen.text[r->kind];
}

static void debug_on(void)
{
    ck_assert_int_eq(cio_debug_set_reporter(NULL, capture, NULL), 0);
    ck_assert_int_eq(cio_debug_set(NULL, true), 0);
    ck_assert(cio_debug_enabled(NULL));
    /* Turned on inside a task, it takes effect from the next loop turn. */
    ck_assert_int_eq(cio_sleep(CIO_US(1)), 0);
}

static cio_debug_stats stats_now(void)
{
    cio_debug_stats st;
    cio_debug_get_stats(NULL, &st);
    return st;
}

/* Spawns fn, joins it, returns its result. */
static intptr_t run_named(cio_fn fn, void *arg)
{
    cio_task *t;
    ck_assert_int_eq(cio_spawn(NULL, &t, fn, arg), 0);
    return cio_join(t, CIO_NEVER);
}

/* ---- blocking calls ------------------------------------------------------------ */

static intptr_t sleepy(void *arg)
{
    (void)arg;
    cio_task_set_name(NULL, "sleepy");
    usleep(1000);
    return 0;
}

static intptr_t t_usleep_reported(void *arg)
{
    (void)arg;
    debug_on();
    run_named(sleepy, NULL);
    /* Asserting writes to Check's channel, itself a system call that could
     * sleep: only with the checks off. */
    ck_assert_int_eq(cio_debug_set(NULL, false), 0);
    ck_assert_int_ge(seen.n[CIO_DEBUG_BLOCKING], 1);
    ck_assert_str_eq(seen.task[CIO_DEBUG_BLOCKING], "sleepy");
    ck_assert_uint_ge(seen.last[CIO_DEBUG_BLOCKING].sleeps, 1);
    ck_assert_int_ge(seen.last[CIO_DEBUG_BLOCKING].ns, CIO_US(900));
    ck_assert_ptr_nonnull(seen.last[CIO_DEBUG_BLOCKING].spawned_at);
    ck_assert_ptr_nonnull(strstr(seen.text[CIO_DEBUG_BLOCKING],
                                 "blocking call on the loop thread: sleepy (spawned at "));
    ck_assert_ptr_nonnull(strstr(seen.text[CIO_DEBUG_BLOCKING], "move it to the pool"));
    ck_assert_uint_eq(stats_now().blocking, (uint64_t)seen.n[CIO_DEBUG_BLOCKING]);
    return 0;
}

T_LOOP_TEST(usleep_in_a_task_is_reported, t_usleep_reported, 0)

/* recv() on an empty socket with a 5 ms receive timeout: a blocking read
 * that waits, then fails with EAGAIN. */
static intptr_t reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    cio_task_set_name(NULL, "reader");
    char c;
    return recv(fd, &c, 1, 0) < 0 ? 0 : 1;
}

static intptr_t t_read_reported(void *arg)
{
    (void)arg;
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct timeval tv = {.tv_usec = 5000};
    ck_assert_int_eq(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    debug_on();
    intptr_t r = run_named(reader, (void *)(intptr_t)sv[0]);
    ck_assert_int_eq(cio_debug_set(NULL, false), 0);
    ck_assert_int_eq(r, 0);
    ck_assert_int_ge(seen.n[CIO_DEBUG_BLOCKING], 1);
    ck_assert_str_eq(seen.task[CIO_DEBUG_BLOCKING], "reader");
    close(sv[0]);
    close(sv[1]);
    return 0;
}

T_LOOP_TEST(blocking_read_is_reported, t_read_reported, 0)

/* A mutex held by another thread until the loop's thread is seen asleep
 * on it (state S in /proc): contention for sure, whatever the timing. */
static pthread_mutex_t contended = PTHREAD_MUTEX_INITIALIZER;
static atomic_int lock_phase; /* 1: held by the holder; 2: the task is about to lock */
static atomic_int loop_tid;

static char thread_state(int tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return '?';
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    char *p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
    return p && p[1] && p[2] ? p[2] : '?';
}

static void *holder(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&contended);
    atomic_store(&lock_phase, 1);
    cio_time until = cio_clock() + CIO_MS(T_PATIENCE_MS);
    while (atomic_load(&lock_phase) != 2 && cio_clock() < until)
        ;
    while (thread_state(atomic_load(&loop_tid)) != 'S' && cio_clock() < until)
        ;
    pthread_mutex_unlock(&contended);
    return NULL;
}

static intptr_t locker(void *arg)
{
    (void)arg;
    cio_task_set_name(NULL, "locker");
    atomic_store(&lock_phase, 2);
    pthread_mutex_lock(&contended);
    pthread_mutex_unlock(&contended);
    return 0;
}

static intptr_t t_mutex_reported(void *arg)
{
    (void)arg;
    atomic_store(&loop_tid, gettid());
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, holder, NULL), 0);
    ck_assert(T_AWAIT(atomic_load(&lock_phase) == 1, T_PATIENCE_MS));
    debug_on();
    run_named(locker, NULL);
    ck_assert_int_eq(cio_debug_set(NULL, false), 0);
    pthread_join(th, NULL);
    ck_assert_int_ge(seen.n[CIO_DEBUG_BLOCKING], 1);
    ck_assert_str_eq(seen.task[CIO_DEBUG_BLOCKING], "locker");
    return 0;
}

T_LOOP_TEST(contended_mutex_is_reported, t_mutex_reported, 0)

/* What must not count: computing, allocating, yielding, spawning, a
 * non-blocking read, and the loop's own waits in io_uring_enter (between
 * runs) while tasks await timers. */
static intptr_t polite_child(void *arg)
{
    (void)arg;
    return cio_sleep(CIO_US(100)) == 0 ? 0 : -1;
}

static intptr_t polite(void *arg)
{
    (void)arg;
    int p[2];
    if (pipe2(p, O_NONBLOCK) < 0)
        return -1;
    for (int i = 0; i < 20; i++) {
        cio_time until = cio_clock() + CIO_US(200);
        while (cio_clock() < until)
            ;
        void *m = malloc(1000 + 4000 * (size_t)i);
        if (m)
            memset(m, i, 1000);
        free(m);
        char c = 'x';
        if (write(p[1], &c, 1) != 1 || read(p[0], &c, 1) != 1 || read(p[0], &c, 1) != -1)
            return -1;
        cio_task *child;
        if (cio_spawn(NULL, &child, polite_child, NULL) < 0)
            return -1;
        cio_yield();
        cio_sleep(CIO_MS(1));
        cio_join(child, CIO_NEVER);
    }
    close(p[0]);
    close(p[1]);
    return 0;
}

static intptr_t t_polite_silent(void *arg)
{
    (void)arg;
    debug_on();
    cio_task *t[4];
    for (int i = 0; i < 4; i++)
        (void)cio_spawn(NULL, &t[i], polite, NULL);
    intptr_t bad = 0;
    for (int i = 0; i < 4; i++)
        bad |= cio_join(t[i], CIO_NEVER);
    ck_assert_int_eq(cio_debug_set(NULL, false), 0);
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(seen.n[CIO_DEBUG_BLOCKING], 0);
    ck_assert_uint_eq(stats_now().blocking, 0);
    return 0;
}

T_LOOP_TEST(awaiting_tasks_are_not_reported, t_polite_silent, 0)

/* ---- tasks never joined ------------------------------------------------------------- */

static intptr_t ret_arg(void *arg)
{
    cio_task_set_name(NULL, "forgotten");
    return (intptr_t)arg;
}

static intptr_t t_forget(void *arg)
{
    (void)arg;
    debug_on();
    cio_task *t;
    ck_assert_int_eq(cio_spawn(NULL, &t, ret_arg, (void *)(intptr_t)7), 0);
    ck_assert(T_AWAIT(cio_future_done(cio_task_future(t)), T_PATIENCE_MS));
    ck_assert_uint_eq(stats_now().unjoined, 1);
    return 0; /* t's handle dropped: never joined nor detached */
}

START_TEST(task_never_joined_is_reported_at_teardown)
{
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    ck_assert_int_eq(cio_run(l, t_forget, NULL), 0);
    ck_assert_int_eq(seen.n[CIO_DEBUG_NEVER_JOINED], 0); /* joinable until the loop goes */
    cio_loop_destroy(l);
    ck_assert_int_eq(seen.n[CIO_DEBUG_NEVER_JOINED], 1);
    ck_assert_str_eq(seen.task[CIO_DEBUG_NEVER_JOINED], "forgotten");
    ck_assert_int_eq(seen.last[CIO_DEBUG_NEVER_JOINED].result, 7);
    ck_assert_ptr_nonnull(seen.last[CIO_DEBUG_NEVER_JOINED].spawned_at);
    ck_assert_ptr_nonnull(
        strstr(seen.text[CIO_DEBUG_NEVER_JOINED], "task never joined: forgotten"));
}
END_TEST

static intptr_t fail_eio(void *arg)
{
    (void)arg;
    cio_task_set_name(NULL, "failing");
    return -EIO;
}

static intptr_t t_failed_unjoined(void *arg)
{
    (void)arg;
    debug_on();
    cio_task *t;
    ck_assert_int_eq(cio_spawn(NULL, &t, fail_eio, NULL), 0);
    /* Reported once CIO_DEBUG_UNJOINED_GRACE has passed: waited for, not timed. */
    ck_assert(T_AWAIT(seen.n[CIO_DEBUG_UNJOINED_ERROR] == 1, T_PATIENCE_MS));
    ck_assert_str_eq(seen.task[CIO_DEBUG_UNJOINED_ERROR], "failing");
    ck_assert_int_eq(seen.last[CIO_DEBUG_UNJOINED_ERROR].result, -EIO);
    ck_assert_ptr_nonnull(strstr(seen.text[CIO_DEBUG_UNJOINED_ERROR], "Input/output error"));
    /* Joined at last: no longer tracked, never reported at teardown. */
    ck_assert_int_eq(cio_join(t, CIO_NEVER), -EIO);
    ck_assert_uint_eq(stats_now().unjoined_errors, 1);
    ck_assert_uint_eq(stats_now().unjoined, 0);
    return 0;
}

START_TEST(failed_task_not_joined_is_reported)
{
    ck_assert_int_eq(t_run(t_failed_unjoined, NULL), 0);
    ck_assert_int_eq(seen.n[CIO_DEBUG_NEVER_JOINED], 0); /* joined in the end */
}
END_TEST

static intptr_t group_children(void *arg)
{
    (void)arg;
    cio_group g;
    cio_group_init(&g, CIO_NEVER);
    cio_task *borrowed;
    (void)cio_group_spawn(&g, &borrowed, ret_arg, NULL);
    (void)cio_group_spawn(&g, NULL, ret_arg, NULL);
    return cio_group_wait(&g);
}

static intptr_t t_joined_silent(void *arg)
{
    (void)arg;
    debug_on();
    cio_task *a, *b, *c;
    ck_assert_int_eq(cio_spawn(NULL, &a, fail_eio, NULL), 0);
    ck_assert_int_eq(cio_spawn(NULL, &b, ret_arg, NULL), 0);
    ck_assert_int_eq(cio_spawn(NULL, &c, fail_eio, NULL), 0);
    ck_assert_int_eq(cio_spawn(NULL, NULL, fail_eio, NULL), 0); /* detached at once */
    cio_detach(b);                                              /* detached while running */
    ck_assert(T_AWAIT(cio_future_done(cio_task_future(c)), T_PATIENCE_MS));
    cio_detach(c); /* detached once finished */
    ck_assert_int_eq(cio_join(a, CIO_NEVER), -EIO);
    ck_assert_int_eq(run_named(group_children, NULL), 0);
    ck_assert_uint_eq(stats_now().unjoined, 0);
    ck_assert_uint_eq(stats_now().unjoined_errors, 0);
    return 0;
}

START_TEST(joined_and_detached_tasks_are_not_reported)
{
    ck_assert_int_eq(t_run(t_joined_silent, NULL), 0);
    ck_assert_int_eq(seen.n[CIO_DEBUG_NEVER_JOINED], 0);
    ck_assert_int_eq(seen.n[CIO_DEBUG_UNJOINED_ERROR], 0);
}
END_TEST

/* ---- pool jobs left on a dead stack ------------------------------------------------------ */

static atomic_bool gate_open;

static intptr_t gated_job(void *arg)
{
    cio_time until = cio_clock() + CIO_MS(T_PATIENCE_MS);
    while (!atomic_load(&gate_open) && cio_clock() < until)
        usleep(100);
    return (intptr_t)arg;
}

/* Submits a job whose cio_job lives in this frame, and returns without
 * joining it: the mistake. */
static intptr_t submitter(void *arg)
{
    cio_pool *p = arg;
    cio_task_set_name(NULL, "submitter");
    cio_job job;
    return cio_pool_submit(p, &job, gated_job, (void *)(intptr_t)5, CIO_NEVER);
}

/* Covers as much of its stack as the submitter's frame took, and more. */
static intptr_t scribbler(void *arg)
{
    (void)arg;
    volatile char buf[8192];
    memset((char *)buf, 0xA5, sizeof(buf));
    return buf[100];
}

static intptr_t t_job_abandoned(void *arg)
{
    (void)arg;
    cio_pool *p;
    cio_pool_opts o = {.threads = 1};
    ck_assert_int_eq(cio_pool_create(NULL, &p, &o), 0);
    debug_on();
    ck_assert_int_eq(run_named(submitter, p), 0);
    ck_assert_int_eq(seen.n[CIO_DEBUG_JOB_ABANDONED], 1);
    ck_assert_str_eq(seen.task[CIO_DEBUG_JOB_ABANDONED], "submitter");
    ck_assert_ptr_nonnull(seen.last[CIO_DEBUG_JOB_ABANDONED].job);
    ck_assert_ptr_nonnull(
        strstr(seen.text[CIO_DEBUG_JOB_ABANDONED], "pool job abandoned: submitter"));
    /* The dead stack is kept: the next task (stacks are reused last-freed
     * first) gets another one, and the job's completion lands intact. */
    ck_assert_int_eq(run_named(scribbler, NULL), (intptr_t)(char)0xA5);
    atomic_store(&gate_open, true);
    ck_assert_int_eq(cio_pool_shutdown(p, CIO_POOL_DRAIN, CIO_NEVER), 0);
    cio_pool_destroy(p);
    const cio_job *job = seen.last[CIO_DEBUG_JOB_ABANDONED].job;
    ck_assert(cio_future_done(&job->fut)); /* still mapped, untouched but by the pool */
    ck_assert_int_eq(cio_future_result(&job->fut), 5);
    ck_assert_uint_eq(stats_now().jobs_abandoned, 1);
    return 0;
}

T_LOOP_TEST(job_abandoned_on_a_dead_stack_is_reported, t_job_abandoned, 0)

static intptr_t careful(void *arg)
{
    cio_pool *p = arg;
    cio_job job;
    if (cio_pool_submit(p, &job, gated_job, (void *)(intptr_t)3, CIO_NEVER) < 0)
        return -1;
    intptr_t a = cio_job_join(&job, CIO_NEVER);
    intptr_t b = cio_pool_run(p, gated_job, (void *)(intptr_t)4, CIO_NEVER);
    return a + b;
}

static intptr_t t_job_joined(void *arg)
{
    (void)arg;
    cio_pool *p;
    cio_pool_opts o = {.threads = 2};
    ck_assert_int_eq(cio_pool_create(NULL, &p, &o), 0);
    atomic_store(&gate_open, true);
    debug_on();
    ck_assert_int_eq(run_named(careful, p), 7);
    ck_assert_int_eq(cio_pool_shutdown(p, CIO_POOL_DRAIN, CIO_NEVER), 0);
    cio_pool_destroy(p);
    ck_assert_int_eq(seen.n[CIO_DEBUG_JOB_ABANDONED], 0);
    ck_assert_uint_eq(stats_now().jobs_abandoned, 0);
    return 0;
}

T_LOOP_TEST(joined_job_is_not_reported, t_job_joined, 0)

/* ---- off ------------------------------------------------------------------------------------ */

static intptr_t t_off_silent(void *arg)
{
    (void)arg;
    /* A reporter, but debug mode never turned on. */
    ck_assert_int_eq(cio_debug_set_reporter(NULL, capture, NULL), 0);
    ck_assert(!cio_debug_enabled(NULL));
    run_named(sleepy, NULL);
    cio_task *t;
    ck_assert_int_eq(cio_spawn(NULL, &t, fail_eio, NULL), 0);
    ck_assert(T_AWAIT(cio_future_done(cio_task_future(t)), T_PATIENCE_MS));
    ck_assert_uint_eq(stats_now().unjoined, 0);
    ck_assert_uint_eq(stats_now().blocking, 0);
    cio_detach(t); /* not tracked, so not freed at teardown: no leak here */
    return 0;
}

START_TEST(nothing_is_reported_when_off)
{
    ck_assert_int_eq(t_run(t_off_silent, NULL), 0);
    for (int k = 0; k < KINDS; k++)
        ck_assert_int_eq(seen.n[k], 0);
}
END_TEST

static Suite *debug_suite(void)
{
    Suite *s = suite_create("debug");
    T_CASE(s, usleep_in_a_task_is_reported, 5);
    T_CASE(s, blocking_read_is_reported, 5);
    T_CASE(s, contended_mutex_is_reported, 10);
    T_CASE(s, awaiting_tasks_are_not_reported, 10);
    T_CASE(s, task_never_joined_is_reported_at_teardown, 5);
    T_CASE(s, failed_task_not_joined_is_reported, 10);
    T_CASE(s, joined_and_detached_tasks_are_not_reported, 5);
    T_CASE(s, job_abandoned_on_a_dead_stack_is_reported, 10);
    T_CASE(s, joined_job_is_not_reported, 10);
    T_CASE(s, nothing_is_reported_when_off, 5);
    return s;
}

T_MAIN(debug_suite)
