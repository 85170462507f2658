/*
 * cio.h - corio's runtime: one io_uring event loop per thread, stackful
 * coroutines, futures, task groups, cancellation, a thread pool, transports
 * and send queues, logging. It includes one header per subsystem
 * (cio_loop.h, cio_task.h, cio_sync.h, cio_pool.h, cio_io.h, cio_buf.h,
 * cio_net.h, cio_log.h); the rules below hold for all of them.
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
 *   calls that may be made from other threads are cio_loop_post(),
 *   cio_loop_stop() and cio_loop_last_turn(); cio_loop_call() runs a callback
 *   on another loop's thread and waits for it, and cio_pool_attach() lets
 *   another loop use a pool's threads. Thread-pool jobs run on worker threads
 *   and must not touch loop objects; their result travels back through the
 *   future of the job, to the loop of the pool (front end) they came through.
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
 *
 * LIBRARY
 *   libcorio (libcorio.a, libcorio.so.0) is core, proto (cio_http.h,
 *   cio_ws.h, cio_peer.h), config (cio_config.h) and the app (server's
 *   cio_app.h: the daemon's machinery). Its API is what the
 *   public headers declare: each wraps its declarations in
 *   "#pragma GCC visibility push(default)" and the library is compiled with
 *   -fvisibility=hidden, so the shared library exports exactly those and
 *   nothing of its internals (cio__* helpers, http_*, ws_*, llhttp). Two
 *   cio__ functions are exported because inline functions of the headers
 *   call them (cio__buf_grow, cio__sendq_reserve_part): ABI, not API.
 *   Fields of public structs are the library's unless documented for the
 *   caller. The SONAME stays libcorio.so.0 until the API is declared
 *   stable: until then a release may change the ABI, and programs linked
 *   against the shared library are rebuilt with each.
 */
#ifndef CIO_H
#define CIO_H

/* One header per subsystem; this one includes them all. */
#include "cio_loop.h"
#include "cio_task.h"
#include "cio_sync.h"
#include "cio_pool.h"
#include "cio_io.h"
#include "cio_buf.h"
#include "cio_net.h"
#include "cio_log.h"

#endif /* CIO_H */
