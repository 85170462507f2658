/*
 * cio_sync.h - timers, sleep and tickers; events, semaphores and channels
 * between the tasks of one loop.
 */
#ifndef CIO_SYNC_H
#define CIO_SYNC_H

#include "cio_task.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the public API: see LIBRARY in cio.h */

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
/* (Re)initialises t (zeroed, or initialised before: stopped first if armed)
 * as a weak timer: armed, it does not keep cio_loop_run() alive. For
 * housekeeping (the runtime's heartbeat, heap and stack trimmers, budget
 * wake-ups; a client's idle-connection sweep). */
void cio_timer_init_weak(cio_timer *t, cio_loop *loop, void (*fn)(cio_timer *t));
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

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif /* CIO_SYNC_H */
