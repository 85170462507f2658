/* The thread pool: offloading, backpressure, cancellation, shutdown, posts,
 * front ends for other loops, the CPU count. */
#include "harness.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

static void spin(cio_time ns)
{
    cio_time end = cio_clock() + ns;
    while (cio_clock() < end) {
    }
}

static intptr_t job_tid(void *arg)
{
    (void)arg;
    return gettid();
}

static intptr_t job_sleep_ms(void *arg)
{
    usleep((useconds_t)((intptr_t)arg * 1000));
    return (intptr_t)arg;
}

static intptr_t job_spin_ms(void *arg)
{
    spin(CIO_MS((intptr_t)arg));
    return 0;
}

static cio_pool *make_pool(unsigned threads, unsigned queue)
{
    cio_pool *p;
    cio_pool_opts o = {.threads = threads, .queue = queue};
    ck_assert_int_eq(cio_pool_create(NULL, &p, &o), 0);
    return p;
}

static void finish_pool(cio_pool *p)
{
    ck_assert_int_eq(cio_pool_shutdown(p, CIO_POOL_DRAIN, CIO_NEVER), 0);
    cio_pool_destroy(p);
}

static intptr_t main_runs_elsewhere(void *arg)
{
    (void)arg;
    cio_pool *p = make_pool(2, 8);
    intptr_t tid = cio_pool_run(p, job_tid, NULL, CIO_NEVER);
    ck_assert_int_gt(tid, 0);
    ck_assert_int_ne(tid, gettid());
    finish_pool(p);
    return 0;
}

START_TEST(job_runs_on_a_worker_thread)
{
    ck_assert_int_eq(t_run(main_runs_elsewhere, NULL), 0);
}
END_TEST

static int ticks;

static intptr_t ticker_task(void *arg)
{
    (void)arg;
    cio_ticker t;
    cio_ticker_init(&t, CIO_MS(5));
    while (cio_ticker_wait(&t, CIO_NEVER) > 0)
        ticks++;
    return 0;
}

static intptr_t main_loop_keeps_serving(void *arg)
{
    (void)arg;
    cio_pool *p = make_pool(1, 8);
    cio_task *t;
    cio_spawn(NULL, &t, ticker_task, NULL);
    ck_assert_int_eq(cio_lag_start(NULL, CIO_MS(5)), 0);
    /* A CPU-bound job of a second (of wall time, on any CPU) on the pool... */
    ck_assert_int_eq(cio_pool_run(p, job_spin_ms, (void *)1000, CIO_NEVER), 0);
    cio_task_cancel(t);
    cio_join(t, CIO_NEVER);
    /* ...while the loop kept ticking (200 ticks on an idle machine, none had
     * the job run on the loop), never blocked for long (a blocked loop: the
     * whole second; a loaded machine: tens of milliseconds). */
    cio_lag_stats s;
    cio_lag_get(cio_loop_current(), &s);
    ck_assert_int_ge(ticks, 20);
    ck_assert_int_lt(s.max_ns, CIO_MS(300));
    finish_pool(p);
    return 0;
}

START_TEST(loop_is_not_blocked_while_a_job_runs)
{
    ck_assert_int_eq(t_run(main_loop_keeps_serving, NULL), 0);
}
END_TEST

typedef struct {
    cio_pool *p;
    int i;
} sat_arg;

static atomic_int running_now, running_max;

static intptr_t job_counted(void *arg)
{
    int now = atomic_fetch_add(&running_now, 1) + 1;
    int max = atomic_load(&running_max);
    while (now > max && !atomic_compare_exchange_weak(&running_max, &max, now)) {
    }
    usleep(2000);
    atomic_fetch_sub(&running_now, 1);
    return (intptr_t)arg;
}

static intptr_t submitter(void *arg)
{
    sat_arg *a = arg;
    return cio_pool_run(a->p, job_counted, (void *)(intptr_t)a->i, CIO_NEVER) == a->i ? 0 : -EIO;
}

static intptr_t main_saturation(void *arg)
{
    (void)arg;
    enum { N = 64 };
    cio_pool *p = make_pool(2, 4);
    static sat_arg args[N];
    cio_group g;
    cio_group_init(&g, CIO_NEVER);
    for (int i = 0; i < N; i++) {
        args[i] = (sat_arg){p, i};
        cio_group_spawn(&g, NULL, submitter, &args[i]);
    }
    ck_assert_int_eq(cio_group_wait(&g), 0);
    cio_pool_stats st;
    cio_pool_get_stats(p, &st);
    ck_assert_int_eq(st.completed, N);
    ck_assert_int_gt(st.waits_full, 0); /* submitters waited: backpressure */
    ck_assert_int_le(atomic_load(&running_max), 2);
    finish_pool(p);
    return 0;
}

START_TEST(saturated_pool_makes_submitters_wait)
{
    ck_assert_int_eq(t_run(main_saturation, NULL), 0);
}
END_TEST

static intptr_t main_try_submit_full(void *arg)
{
    (void)arg;
    cio_pool *p = make_pool(1, 1);
    cio_job a, b, c;
    ck_assert_int_eq(cio_pool_try_submit(p, &a, job_sleep_ms, (void *)20), 0);
    ck_assert_int_eq(cio_pool_try_submit(p, &b, job_sleep_ms, (void *)1), 0);
    int rc = cio_pool_try_submit(p, &c, job_sleep_ms, (void *)1);
    cio_job_join(&a, CIO_NEVER);
    cio_job_join(&b, CIO_NEVER);
    finish_pool(p);
    return rc;
}

START_TEST(try_submit_on_full_queue_is_eagain)
{
    ck_assert_int_eq(t_run(main_try_submit_full, NULL), -EAGAIN);
}
END_TEST

static atomic_bool release_gate;
static atomic_int ran_queued, gate_entered;

static intptr_t job_gate(void *arg)
{
    (void)arg;
    atomic_store(&gate_entered, 1);
    while (!atomic_load(&release_gate))
        usleep(500);
    return 1;
}

static intptr_t job_mark(void *arg)
{
    (void)arg;
    atomic_store(&ran_queued, 1);
    return 2;
}

static intptr_t main_cancel_queued(void *arg)
{
    (void)arg;
    cio_pool *p = make_pool(1, 4);
    cio_job first, second;
    cio_pool_submit(p, &first, job_gate, NULL, CIO_NEVER);
    cio_pool_submit(p, &second, job_mark, NULL, CIO_NEVER);
    /* The only worker is busy with 'first'. */
    ck_assert(T_AWAIT(atomic_load(&gate_entered), T_PATIENCE_MS));
    cio_job_cancel(&second);
    ck_assert(cio_future_done(&second.fut));
    intptr_t r = cio_future_result(&second.fut);
    atomic_store(&release_gate, true);
    ck_assert_int_eq(cio_job_join(&first, CIO_NEVER), 1);
    finish_pool(p);
    ck_assert_int_eq(atomic_load(&ran_queued), 0); /* it never ran */
    return r;
}

START_TEST(cancel_queued_job_never_runs)
{
    ck_assert_int_eq(t_run(main_cancel_queued, NULL), -ECANCELED);
}
END_TEST

typedef struct {
    atomic_int started, saw_cancel;
} coop_flags;

static coop_flags coop; /* job_cooperative's, when its arg is NULL */

/* Runs until asked to stop (or 10 s). Tests wait for .started before they
 * cancel: a job cancelled before a worker took it never runs at all, and a
 * worker can take a while to get a CPU on a loaded machine. */
static intptr_t job_cooperative(void *arg)
{
    coop_flags *f = arg ? arg : &coop;
    atomic_store(&f->started, 1);
    cio_time end = cio_clock() + CIO_SEC(10);
    while (cio_clock() < end) {
        if (cio_job_cancelled()) {
            atomic_store(&f->saw_cancel, 1);
            return -ECANCELED;
        }
        usleep(200);
    }
    return 0;
}

static intptr_t main_deadline_running(void *arg)
{
    (void)arg;
    cio_pool *p = make_pool(1, 4);
    cio_time t0 = cio_clock();
    /* The deadline leaves the worker ample time to start the job (it must be
     * running when the deadline passes), and the job would run for 10 s. */
    intptr_t r = cio_pool_run(p, job_cooperative, NULL, cio_after(CIO_SEC(1)));
    ck_assert_int_lt(cio_clock() - t0, CIO_SEC(5));
    ck_assert_int_eq(atomic_load(&coop.started), 1);
    ck_assert_int_eq(atomic_load(&coop.saw_cancel), 1);
    finish_pool(p);
    return r;
}

START_TEST(deadline_on_running_job_asks_it_to_stop)
{
    ck_assert_int_eq(t_run(main_deadline_running, NULL), -ETIMEDOUT);
}
END_TEST

static cio_pool *shared_pool;

static intptr_t awaits_job(void *arg)
{
    (void)arg;
    return cio_pool_run(shared_pool, job_cooperative, NULL, CIO_NEVER);
}

static intptr_t main_cancel_awaiter(void *arg)
{
    (void)arg;
    shared_pool = make_pool(1, 4);
    cio_task *t;
    cio_spawn(NULL, &t, awaits_job, NULL);
    ck_assert(T_AWAIT(atomic_load(&coop.started), T_PATIENCE_MS));
    cio_task_cancel(t);
    intptr_t r = cio_join(t, CIO_NEVER);
    ck_assert_int_eq(atomic_load(&coop.saw_cancel), 1);
    finish_pool(shared_pool);
    return r;
}

START_TEST(cancel_task_waiting_on_job)
{
    ck_assert_int_eq(t_run(main_cancel_awaiter, NULL), -ECANCELED);
}
END_TEST

static intptr_t main_drain(void *arg)
{
    (void)arg;
    enum { N = 10 };
    cio_pool *p = make_pool(2, 16);
    cio_job jobs[N];
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(cio_pool_submit(p, &jobs[i], job_sleep_ms, (void *)5, CIO_NEVER), 0);
    /* Shut down with all of it in flight: every job still completes. */
    ck_assert_int_eq(cio_pool_shutdown(p, CIO_POOL_DRAIN, CIO_NEVER), 0);
    intptr_t sum = 0;
    for (int i = 0; i < N; i++) {
        ck_assert(cio_future_done(&jobs[i].fut));
        sum += cio_future_result(&jobs[i].fut);
    }
    cio_job late;
    ck_assert_int_eq(cio_pool_submit(p, &late, job_sleep_ms, NULL, CIO_NEVER), -ESHUTDOWN);
    cio_pool_destroy(p);
    return sum;
}

START_TEST(shutdown_drain_completes_work_in_flight)
{
    ck_assert_int_eq(t_run(main_drain, NULL), 50);
}
END_TEST

static intptr_t main_shutdown_cancel(void *arg)
{
    (void)arg;
    enum { N = 6 };
    cio_pool *p = make_pool(1, 16);
    cio_job jobs[N];
    ck_assert_int_eq(cio_pool_submit(p, &jobs[0], job_cooperative, NULL, CIO_NEVER), 0);
    for (int i = 1; i < N; i++)
        cio_pool_submit(p, &jobs[i], job_mark, NULL, CIO_NEVER);
    ck_assert(T_AWAIT(atomic_load(&coop.started), T_PATIENCE_MS));
    ck_assert_int_eq(cio_pool_shutdown(p, CIO_POOL_CANCEL, cio_after(CIO_SEC(5))), 0);
    int cancelled = 0;
    for (int i = 0; i < N; i++)
        cancelled += cio_future_result(&jobs[i].fut) == -ECANCELED;
    ck_assert_int_eq(atomic_load(&ran_queued), 0);
    ck_assert_int_eq(atomic_load(&coop.saw_cancel), 1);
    cio_pool_destroy(p);
    return cancelled;
}

START_TEST(shutdown_cancel_drops_queue_and_stops_running)
{
    ck_assert_int_eq(t_run(main_shutdown_cancel, NULL), 6);
}
END_TEST

/* Regression: a shutdown called twice (DRAIN timed out, then CANCEL) counted
 * the workers' exit notice twice, and the loop could never go quiet. */
static intptr_t main_drain_then_cancel(void *arg)
{
    (void)arg;
    cio_pool *p = make_pool(1, 4);
    cio_job job;
    cio_pool_submit(p, &job, job_cooperative, NULL, CIO_NEVER);
    ck_assert(T_AWAIT(atomic_load(&coop.started), T_PATIENCE_MS));
    ck_assert_int_eq(cio_pool_shutdown(p, CIO_POOL_DRAIN, cio_after(CIO_MS(20))), -ETIMEDOUT);
    ck_assert_int_eq(cio_pool_shutdown(p, CIO_POOL_CANCEL, cio_after(CIO_SEC(5))), 0);
    ck_assert_int_eq(cio_future_result(&job.fut), -ECANCELED);
    cio_pool_destroy(p);
    return 0;
}

START_TEST(shutdown_again_after_timeout_leaves_loop_quiet)
{
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    ck_assert_int_eq(cio_run(l, main_drain_then_cancel, NULL), 0);
    cio_time t0 = cio_clock();
    ck_assert_int_eq(cio_loop_run(l), 0); /* nothing left: returns at once */
    ck_assert_int_lt(cio_clock() - t0, CIO_SEC(1));
    cio_loop_destroy(l);
}
END_TEST

/* Regression: joining a job that had already finished returned -ECANCELED
 * in a cancelled task, throwing the job's result away. */
static intptr_t main_join_finished_when_cancelled(void *arg)
{
    (void)arg;
    cio_pool *p = make_pool(1, 4);
    cio_job job;
    cio_pool_submit(p, &job, job_sleep_ms, (void *)1, CIO_NEVER);
    cio_await(&job.fut, CIO_NEVER);
    cio_task_cancel(cio_current());
    intptr_t r = cio_job_join(&job, CIO_NEVER);
    cio_scope sh;
    cio_scope_enter(&sh, CIO_NEVER, true);
    finish_pool(p);
    cio_scope_exit(&sh);
    return r;
}

START_TEST(join_of_finished_job_returns_its_result)
{
    ck_assert_int_eq(t_run(main_join_finished_when_cancelled, NULL), 1);
}
END_TEST

START_TEST(completion_without_msg_ring_uses_eventfd_post)
{
    setenv("CORIO_NO_MSG_RING", "1", 1);
    ck_assert_int_eq(t_run(main_saturation, NULL), 0);
}
END_TEST

START_TEST(pool_works_on_a_plain_ring)
{
    setenv("CORIO_PLAIN_RING", "1", 1);
    ck_assert_int_eq(t_run(main_saturation, NULL), 0);
}
END_TEST

/* ---- front ends: one pool's threads serving several loops ------------------------ */

static cio_pool *owner_pool; /* created on the test's main loop */

typedef struct {
    cio_waiter w;
    cio_loop *loop; /* where the job's future completed */
    pthread_t thread;
} where_seen;

static void note_where(cio_waiter *w, cio_future *f)
{
    (void)f;
    where_seen *ws = cio_container_of(w, where_seen, w);
    ws->loop = cio_loop_current();
    ws->thread = pthread_self();
}

/* On a second loop's thread: jobs through a front end of owner_pool. */
static intptr_t attached_submitter(void *arg)
{
    (void)arg;
    enum { N = 8 };
    cio_pool *fe;
    ck_assert_int_eq(cio_pool_attach(owner_pool, NULL, &fe), 0);
    cio_job jobs[N];
    where_seen seen[N];
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(cio_pool_submit(fe, &jobs[i], job_tid, NULL, CIO_NEVER), 0);
        cio_future_subscribe(&jobs[i].fut, &seen[i].w, note_where);
    }
    for (int i = 0; i < N; i++) {
        intptr_t tid = cio_job_join(&jobs[i], CIO_NEVER);
        ck_assert_int_gt(tid, 0);
        ck_assert_int_ne(tid, gettid()); /* ran on a worker */
        ck_assert_ptr_eq(seen[i].loop, cio_loop_current());
        ck_assert(pthread_equal(seen[i].thread, pthread_self()));
    }
    cio_pool_stats st;
    cio_pool_get_stats(fe, &st);
    ck_assert_int_eq(st.submitted, N);
    ck_assert_int_eq(st.completed, N);
    ck_assert_int_eq(st.threads, 2);
    ck_assert_int_eq(cio_pool_shutdown(fe, CIO_POOL_DRAIN, CIO_NEVER), 0);
    cio_pool_destroy(fe);
    return 0;
}

static intptr_t main_attached_loop(void *arg)
{
    (void)arg;
    owner_pool = make_pool(2, 8);
    t_thread t;
    t_thread_start(&t, attached_submitter, NULL);
    ck_assert_int_eq(t_thread_join(&t), 0);
    cio_pool_stats st;
    cio_pool_get_stats(owner_pool, &st);
    ck_assert_int_eq(st.submitted, 0); /* the front end's jobs are its own */
    finish_pool(owner_pool);
    return 0;
}

T_LOOP_TEST(attached_loop_jobs_complete_on_that_loop, main_attached_loop, 0)

START_TEST(attached_loop_without_msg_ring_completes_on_that_loop)
{
    setenv("CORIO_NO_MSG_RING", "1", 1);
    ck_assert_int_eq(t_run(main_attached_loop, NULL), 0);
}
END_TEST

enum { PER_LOOP = 32 };
static atomic_int at_start;

/* [awaits] PER_LOOP submitters through p at once, once both loops are here. */
static intptr_t submit_many(cio_pool *p)
{
    sat_arg args[PER_LOOP];
    atomic_fetch_add(&at_start, 1);
    ck_assert(T_AWAIT(atomic_load(&at_start) == 2, T_PATIENCE_MS));
    cio_group g;
    cio_group_init(&g, CIO_NEVER);
    for (int i = 0; i < PER_LOOP; i++) {
        args[i] = (sat_arg){p, i};
        ck_assert_int_eq(cio_group_spawn(&g, NULL, submitter, &args[i]), 0);
    }
    intptr_t rc = cio_group_wait(&g);
    cio_pool_stats st;
    cio_pool_get_stats(p, &st);
    ck_assert_int_eq(st.completed, PER_LOOP);
    return rc;
}

static intptr_t attached_many(void *arg)
{
    (void)arg;
    cio_pool *fe;
    ck_assert_int_eq(cio_pool_attach(owner_pool, NULL, &fe), 0);
    intptr_t rc = submit_many(fe);
    ck_assert_int_eq(cio_pool_shutdown(fe, CIO_POOL_DRAIN, CIO_NEVER), 0);
    cio_pool_destroy(fe);
    return rc;
}

static intptr_t main_two_loops(void *arg)
{
    (void)arg;
    owner_pool = make_pool(2, 4);
    t_thread t;
    t_thread_start(&t, attached_many, NULL);
    ck_assert_int_eq(submit_many(owner_pool), 0);
    ck_assert_int_eq(t_thread_join(&t), 0);
    ck_assert_int_le(atomic_load(&running_max), 2); /* the two threads, shared */
    finish_pool(owner_pool);
    return 0;
}

T_LOOP_TEST(two_loops_submitting_at_once_all_complete, main_two_loops, 0)

static atomic_int owner_ran, front_ran;

/* Counts its runs in *arg (an atomic_int). */
static intptr_t job_count(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    return 1;
}

static intptr_t main_front_cancel_queued(void *arg)
{
    (void)arg;
    cio_pool *p = make_pool(1, 8), *fe;
    ck_assert_int_eq(cio_pool_attach(p, NULL, &fe), 0);
    cio_job gate, mine[2], theirs[3];
    ck_assert_int_eq(cio_pool_submit(p, &gate, job_gate, NULL, CIO_NEVER), 0);
    ck_assert(T_AWAIT(atomic_load(&gate_entered), T_PATIENCE_MS)); /* the only worker is busy */
    /* The shared queue: mine[0], theirs[0..2], mine[1]. */
    ck_assert_int_eq(cio_pool_submit(p, &mine[0], job_count, &owner_ran, CIO_NEVER), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(cio_pool_submit(fe, &theirs[i], job_count, &front_ran, CIO_NEVER), 0);
    ck_assert_int_eq(cio_pool_submit(p, &mine[1], job_count, &owner_ran, CIO_NEVER), 0);
    ck_assert_int_eq(cio_pool_shutdown(fe, CIO_POOL_CANCEL, cio_after(CIO_SEC(5))), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(cio_future_result(&theirs[i].fut), -ECANCELED);
    cio_pool_stats st;
    cio_pool_get_stats(fe, &st);
    ck_assert_int_eq(st.cancelled, 3);
    ck_assert_int_eq(st.queued, 2); /* the owner's two are still queued */
    cio_pool_destroy(fe);
    atomic_store(&release_gate, true);
    ck_assert_int_eq(cio_job_join(&gate, CIO_NEVER), 1);
    ck_assert_int_eq(cio_job_join(&mine[0], CIO_NEVER), 1);
    ck_assert_int_eq(cio_job_join(&mine[1], CIO_NEVER), 1);
    finish_pool(p);
    ck_assert_int_eq(atomic_load(&owner_ran), 2);
    ck_assert_int_eq(atomic_load(&front_ran), 0);
    return 0;
}

T_LOOP_TEST(attached_cancel_shutdown_drops_only_its_own_queued_jobs, main_front_cancel_queued, 0)

static intptr_t main_front_cancel_running(void *arg)
{
    (void)arg;
    static coop_flags mine, theirs;
    cio_pool *p = make_pool(2, 4), *fe;
    ck_assert_int_eq(cio_pool_attach(p, NULL, &fe), 0);
    cio_job a, b;
    ck_assert_int_eq(cio_pool_submit(p, &a, job_cooperative, &mine, CIO_NEVER), 0);
    ck_assert_int_eq(cio_pool_submit(fe, &b, job_cooperative, &theirs, CIO_NEVER), 0);
    ck_assert(T_AWAIT(atomic_load(&mine.started) && atomic_load(&theirs.started), T_PATIENCE_MS));
    /* Returns once its running job has stopped... */
    ck_assert_int_eq(cio_pool_shutdown(fe, CIO_POOL_CANCEL, cio_after(CIO_SEC(5))), 0);
    ck_assert_int_eq(cio_future_result(&b.fut), -ECANCELED);
    ck_assert_int_eq(atomic_load(&theirs.saw_cancel), 1);
    /* ...and the owner's was not asked to. */
    ck_assert(!cio_future_done(&a.fut));
    ck_assert_int_eq(atomic_load(&mine.saw_cancel), 0);
    cio_pool_destroy(fe);
    cio_job_cancel(&a);
    ck_assert_int_eq(cio_job_join(&a, CIO_NEVER), -ECANCELED);
    finish_pool(p);
    return 0;
}

T_LOOP_TEST(attached_cancel_shutdown_stops_only_its_own_running_jobs, main_front_cancel_running, 0)

static intptr_t main_owner_busy(void *arg)
{
    (void)arg;
    cio_pool *p = make_pool(1, 4), *fe;
    ck_assert_int_eq(cio_pool_attach(p, NULL, &fe), 0);
    ck_assert_int_eq(cio_pool_shutdown(p, CIO_POOL_DRAIN, CIO_NEVER), -EBUSY);
    ck_assert_int_gt(cio_pool_run(p, job_tid, NULL, CIO_NEVER), 0); /* nothing changed */
    ck_assert_int_gt(cio_pool_run(fe, job_tid, NULL, CIO_NEVER), 0);
    ck_assert_int_eq(cio_pool_shutdown(fe, CIO_POOL_DRAIN, CIO_NEVER), 0);
    cio_pool_destroy(fe);
    finish_pool(p);
    return 0;
}

T_LOOP_TEST(owner_shutdown_with_a_front_end_attached_is_ebusy, main_owner_busy, 0)

static intptr_t main_attach_after_shutdown(void *arg)
{
    (void)arg;
    cio_pool *p = make_pool(1, 4), *fe = NULL;
    ck_assert_int_eq(cio_pool_shutdown(p, CIO_POOL_DRAIN, CIO_NEVER), 0);
    int rc = cio_pool_attach(p, NULL, &fe);
    ck_assert_ptr_null(fe);
    cio_pool_destroy(p);
    return rc;
}

T_LOOP_TEST(attach_to_a_shut_down_pool_is_eshutdown, main_attach_after_shutdown, -ESHUTDOWN)

/* ---- cio_cpu_count ------------------------------------------------------------------ */

START_TEST(cpu_count_is_within_the_affinity_mask)
{
    cpu_set_t set;
    ck_assert_int_eq(sched_getaffinity(0, sizeof(set), &set), 0);
    unsigned n = cio_cpu_count();
    ck_assert_uint_ge(n, 1);
    ck_assert_uint_le(n, (unsigned)CPU_COUNT(&set));
}
END_TEST

static bool write_file(const char *dir, const char *file, const char *text)
{
    char name[512];
    snprintf(name, sizeof(name), "%s/%s", dir, file);
    int fd = open(name, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
    close(fd);
    return ok;
}

/* Makes a cgroup with a quota of half a CPU in dir: v2 where /sys/fs/cgroup
 * is cgroup2, else under v1's cpu controller. False where that is not
 * allowed here (not root, read-only, no cpu controller). */
static bool make_half_cpu_cgroup(char *dir, size_t len)
{
    if (geteuid() != 0)
        return false;
    struct statfs sf;
    bool v2 = statfs("/sys/fs/cgroup", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
    if (v2) {
        (void)write_file("/sys/fs/cgroup", "cgroup.subtree_control", "+cpu");
        snprintf(dir, len, "/sys/fs/cgroup/corio-test-%d", (int)getpid());
    } else {
        if (statfs("/sys/fs/cgroup/cpu", &sf) != 0 || sf.f_type != CGROUP_SUPER_MAGIC)
            return false;
        snprintf(dir, len, "/sys/fs/cgroup/cpu/corio-test-%d", (int)getpid());
    }
    if (mkdir(dir, 0755) != 0)
        return false;
    bool ok = v2 ? write_file(dir, "cpu.max", "50000 100000")
                 : write_file(dir, "cpu.cfs_period_us", "100000") &&
                       write_file(dir, "cpu.cfs_quota_us", "50000");
    if (!ok)
        rmdir(dir);
    return ok;
}

START_TEST(cpu_count_follows_the_cgroup_quota)
{
    char dir[256];
    if (!make_half_cpu_cgroup(dir, sizeof(dir))) {
        fprintf(stderr, "note: no writable cgroup with a cpu controller: quota not tested\n");
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        char me[32];
        snprintf(me, sizeof(me), "%d", (int)getpid());
        _exit(write_file(dir, "cgroup.procs", me) ? (int)cio_cpu_count() : 100);
    }
    int status = 0;
    pid_t w = waitpid(pid, &status, 0);
    int removed = rmdir(dir);
    ck_assert_int_eq(w, pid);
    ck_assert_int_eq(removed, 0);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 1); /* half a CPU, rounded up */
}
END_TEST

/* ---- cio_loop_post from foreign threads ------------------------------------------ */

enum { POSTS = 1000 };
static int posted;
static cio_event posts_done;

static void on_post(void *arg)
{
    (void)arg;
    if (++posted == 2 * POSTS)
        cio_event_set(&posts_done);
}

static void *poster(void *arg)
{
    for (int i = 0; i < POSTS; i++)
        ck_assert_int_eq(cio_loop_post(arg, on_post, NULL), 0);
    return NULL;
}

static intptr_t main_posts(void *arg)
{
    (void)arg;
    cio_event_init(&posts_done);
    pthread_t a, b;
    pthread_create(&a, NULL, poster, cio_loop_current());
    pthread_create(&b, NULL, poster, cio_loop_current());
    int rc = cio_event_wait(&posts_done, cio_after(CIO_SEC(10)));
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    return rc;
}

START_TEST(posts_from_threads_all_run_on_the_loop)
{
    ck_assert_int_eq(t_run(main_posts, NULL), 0);
    ck_assert_int_eq(posted, 2 * POSTS);
}
END_TEST

static void *stopper(void *arg)
{
    usleep(20000);
    cio_loop_stop(arg);
    return NULL;
}

static void forever_cb(cio_timer *t)
{
    cio_timer_start(t, cio_now() + CIO_SEC(1));
}

START_TEST(stop_from_another_thread_wakes_the_loop)
{
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    cio_timer t;
    cio_timer_init(&t, l, forever_cb);
    cio_timer_start(&t, cio_clock() + CIO_SEC(100));
    pthread_t th;
    pthread_create(&th, NULL, stopper, l);
    cio_time t0 = cio_clock();
    ck_assert_int_eq(cio_loop_run(l), 0);
    ck_assert_int_lt(cio_clock() - t0, CIO_SEC(5));
    pthread_join(th, NULL);
    cio_timer_stop(&t);
    cio_loop_destroy(l);
}
END_TEST

static Suite *pool_suite(void)
{
    Suite *s = suite_create("pool");
    T_CASE(s, job_runs_on_a_worker_thread, 5);
    T_CASE(s, loop_is_not_blocked_while_a_job_runs, 15);
    T_CASE(s, saturated_pool_makes_submitters_wait, 10);
    T_CASE(s, try_submit_on_full_queue_is_eagain, 5);
    T_CASE(s, cancel_queued_job_never_runs, 5);
    T_CASE(s, deadline_on_running_job_asks_it_to_stop, 10);
    T_CASE(s, cancel_task_waiting_on_job, 10);
    T_CASE(s, shutdown_drain_completes_work_in_flight, 5);
    T_CASE(s, shutdown_cancel_drops_queue_and_stops_running, 10);
    T_CASE(s, shutdown_again_after_timeout_leaves_loop_quiet, 10);
    T_CASE(s, join_of_finished_job_returns_its_result, 5);
    T_CASE(s, completion_without_msg_ring_uses_eventfd_post, 10);
    T_CASE(s, pool_works_on_a_plain_ring, 10);
    T_CASE(s, attached_loop_jobs_complete_on_that_loop, 10);
    T_CASE(s, attached_loop_without_msg_ring_completes_on_that_loop, 10);
    T_CASE(s, two_loops_submitting_at_once_all_complete, 15);
    T_CASE(s, attached_cancel_shutdown_drops_only_its_own_queued_jobs, 10);
    T_CASE(s, attached_cancel_shutdown_stops_only_its_own_running_jobs, 10);
    T_CASE(s, owner_shutdown_with_a_front_end_attached_is_ebusy, 5);
    T_CASE(s, attach_to_a_shut_down_pool_is_eshutdown, 5);
    T_CASE(s, cpu_count_is_within_the_affinity_mask, 5);
    T_CASE(s, cpu_count_follows_the_cgroup_quota, 10);
    T_CASE(s, posts_from_threads_all_run_on_the_loop, 10);
    T_CASE(s, stop_from_another_thread_wakes_the_loop, 10);
    return s;
}

T_MAIN(pool_suite)
