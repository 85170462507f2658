/* Events, semaphores and channels. */
#include "harness.h"

/* ---- event ------------------------------------------------------------------ */

static cio_event ev;
static int woke;

static intptr_t ev_waiter(void *arg)
{
    (void)arg;
    int rc = cio_event_wait(&ev, CIO_NEVER);
    woke += rc == 0;
    return rc;
}

static intptr_t main_event(void *arg)
{
    (void)arg;
    cio_event_init(&ev);
    cio_task *t[3];
    for (int i = 0; i < 3; i++)
        cio_spawn(NULL, &t[i], ev_waiter, NULL);
    cio_yield();
    ck_assert_int_eq(woke, 0);
    cio_event_set(&ev);
    for (int i = 0; i < 3; i++)
        cio_join(t[i], CIO_NEVER);
    ck_assert(cio_event_is_set(&ev));
    /* Once set, waits return at once until cleared. */
    ck_assert_int_eq(cio_event_wait(&ev, cio_after(CIO_MS(1))), 0);
    cio_event_clear(&ev);
    return cio_event_wait(&ev, cio_after(CIO_MS(2)));
}

START_TEST(event_wakes_all_and_clear_rearms)
{
    ck_assert_int_eq(t_run(main_event, NULL), -ETIMEDOUT);
    ck_assert_int_eq(woke, 3);
}
END_TEST

/* ---- semaphore ----------------------------------------------------------------- */

static cio_sem sem;
static int inside, max_inside, order[16], order_len;

static intptr_t backend_call(void *arg)
{
    ck_assert_int_eq(cio_sem_acquire(&sem, CIO_NEVER), 0);
    order[order_len++] = (int)(intptr_t)arg;
    inside++;
    if (inside > max_inside)
        max_inside = inside;
    cio_sleep(CIO_MS(2)); /* the slow backend */
    inside--;
    cio_sem_release(&sem);
    return 0;
}

static intptr_t main_sem_caps(void *arg)
{
    (void)arg;
    cio_sem_init(&sem, 3);
    cio_group g;
    cio_group_init(&g, CIO_NEVER);
    for (int i = 0; i < 12; i++)
        cio_group_spawn(&g, NULL, backend_call, (void *)(intptr_t)i);
    return cio_group_wait(&g);
}

START_TEST(semaphore_caps_concurrency)
{
    ck_assert_int_eq(t_run(main_sem_caps, NULL), 0);
    ck_assert_int_eq(max_inside, 3);
    ck_assert_int_eq(order_len, 12);
}
END_TEST

START_TEST(semaphore_is_fifo)
{
    ck_assert_int_eq(t_run(main_sem_caps, NULL), 0);
    for (int i = 0; i < 12; i++)
        ck_assert_int_eq(order[i], i);
}
END_TEST

static intptr_t main_sem_timeout(void *arg)
{
    (void)arg;
    cio_sem_init(&sem, 1);
    ck_assert_int_eq(cio_sem_try_acquire(&sem), 0);
    ck_assert_int_eq(cio_sem_try_acquire(&sem), -EAGAIN);
    int rc = cio_sem_acquire(&sem, cio_after(CIO_MS(5)));
    /* The timed-out waiter left the queue: a release goes to the count. */
    cio_sem_release(&sem);
    ck_assert_int_eq(sem.count, 1);
    return rc;
}

START_TEST(semaphore_acquire_deadline)
{
    ck_assert_int_eq(t_run(main_sem_timeout, NULL), -ETIMEDOUT);
}
END_TEST

/* ---- channel --------------------------------------------------------------------- */

static cio_chan ch;
static int sent;

static intptr_t producer(void *arg)
{
    intptr_t n = (intptr_t)arg;
    for (intptr_t i = 0; i < n; i++) {
        int rc = cio_chan_send(&ch, i, CIO_NEVER);
        if (rc < 0)
            return rc;
        sent++;
    }
    return 0;
}

static intptr_t main_backpressure(void *arg)
{
    (void)arg;
    ck_assert_int_eq(cio_chan_init(&ch, 4), 0);
    cio_task *p;
    cio_spawn(NULL, &p, producer, (void *)10);
    cio_sleep(CIO_MS(5));
    /* The producer filled the buffer and is now waiting. */
    ck_assert_int_eq(sent, 4);
    intptr_t sum = 0, item;
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(cio_chan_recv(&ch, &item, CIO_NEVER), 0);
        ck_assert_int_eq(item, i); /* FIFO, no loss */
        sum += item;
    }
    ck_assert_int_eq(cio_join(p, CIO_NEVER), 0);
    cio_chan_fini(&ch);
    return sum;
}

START_TEST(channel_backpressure_blocks_full_sender)
{
    ck_assert_int_eq(t_run(main_backpressure, NULL), 45);
}
END_TEST

static intptr_t main_rendezvous(void *arg)
{
    (void)arg;
    ck_assert_int_eq(cio_chan_init(&ch, 0), 0);
    cio_task *p;
    cio_spawn(NULL, &p, producer, (void *)3);
    cio_sleep(CIO_MS(2));
    ck_assert_int_eq(sent, 0); /* nobody received yet */
    ck_assert_int_eq(cio_chan_try_send(&ch, 9), -EAGAIN);
    intptr_t item, sum = 0;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(cio_chan_recv(&ch, &item, CIO_NEVER), 0);
        sum += item;
    }
    cio_join(p, CIO_NEVER);
    cio_chan_fini(&ch);
    return sum;
}

START_TEST(channel_capacity_zero_is_rendezvous)
{
    ck_assert_int_eq(t_run(main_rendezvous, NULL), 3);
}
END_TEST

static intptr_t consumer(void *arg)
{
    intptr_t *got = arg, item;
    int rc;
    while ((rc = cio_chan_recv(&ch, &item, CIO_NEVER)) == 0)
        (*got)++;
    return rc;
}

static intptr_t main_close(void *arg)
{
    (void)arg;
    intptr_t got = 0;
    cio_chan_init(&ch, 8);
    for (int i = 0; i < 5; i++)
        cio_chan_try_send(&ch, i);
    cio_task *c;
    cio_spawn(NULL, &c, consumer, &got);
    cio_chan_close(&ch);
    ck_assert_int_eq(cio_chan_send(&ch, 1, CIO_NEVER), -EPIPE);
    /* The consumer drains what was buffered, then sees -EPIPE. */
    ck_assert_int_eq(cio_join(c, CIO_NEVER), -EPIPE);
    cio_chan_fini(&ch);
    return got;
}

START_TEST(channel_close_drains_then_epipe)
{
    ck_assert_int_eq(t_run(main_close, NULL), 5);
}
END_TEST

static intptr_t main_close_wakes_sender(void *arg)
{
    (void)arg;
    cio_chan_init(&ch, 1);
    cio_task *p;
    cio_spawn(NULL, &p, producer, (void *)5);
    cio_sleep(CIO_MS(2));
    cio_chan_close(&ch);
    intptr_t r = cio_join(p, CIO_NEVER);
    cio_chan_fini(&ch);
    return r;
}

START_TEST(channel_close_fails_waiting_sender)
{
    ck_assert_int_eq(t_run(main_close_wakes_sender, NULL), -EPIPE);
}
END_TEST

static intptr_t main_recv_timeout(void *arg)
{
    (void)arg;
    intptr_t item;
    cio_chan_init(&ch, 2);
    ck_assert_int_eq(cio_chan_try_recv(&ch, &item), -EAGAIN);
    int rc = cio_chan_recv(&ch, &item, cio_after(CIO_MS(3)));
    /* The timed-out receiver is gone: a send buffers instead of handing off. */
    ck_assert_int_eq(cio_chan_try_send(&ch, 1), 0);
    ck_assert_int_eq(ch.len, 1);
    cio_chan_fini(&ch);
    return rc;
}

START_TEST(channel_recv_deadline)
{
    ck_assert_int_eq(t_run(main_recv_timeout, NULL), -ETIMEDOUT);
}
END_TEST

static intptr_t main_send_cancel(void *arg)
{
    (void)arg;
    cio_chan_init(&ch, 1);
    cio_task *p;
    cio_spawn(NULL, &p, producer, (void *)3);
    cio_sleep(CIO_MS(2));
    cio_task_cancel(p);
    intptr_t r = cio_join(p, CIO_NEVER);
    ck_assert_int_eq(ch.len, 1); /* only the first item made it */
    cio_chan_fini(&ch);
    return r;
}

START_TEST(channel_cancel_blocked_sender)
{
    ck_assert_int_eq(t_run(main_send_cancel, NULL), -ECANCELED);
}
END_TEST

static Suite *sync_suite(void)
{
    Suite *s = suite_create("sync");
    T_CASE(s, event_wakes_all_and_clear_rearms, 5);
    T_CASE(s, semaphore_caps_concurrency, 5);
    T_CASE(s, semaphore_is_fifo, 5);
    T_CASE(s, semaphore_acquire_deadline, 5);
    T_CASE(s, channel_backpressure_blocks_full_sender, 5);
    T_CASE(s, channel_capacity_zero_is_rendezvous, 5);
    T_CASE(s, channel_close_drains_then_epipe, 5);
    T_CASE(s, channel_close_fails_waiting_sender, 5);
    T_CASE(s, channel_recv_deadline, 5);
    T_CASE(s, channel_cancel_blocked_sender, 5);
    return s;
}

T_MAIN(sync_suite)
