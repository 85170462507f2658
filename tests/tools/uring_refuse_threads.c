/*
 * uring_refuse_threads.c - an LD_PRELOAD shim for the test of what corio
 * says when a worker thread's loop cannot make its ring
 * (integration/test_uring_refused.py): liburing's
 * io_uring_queue_init_params, which cio_loop_create calls, fails with
 * -EPERM in every thread but the process's first, for loops' rings (set up
 * with IORING_SETUP_CQSIZE; the pool's small rings are left alone). A
 * seccomp filter cannot do that: it is inherited by every thread made
 * after it, and the main thread's loop comes first.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <errno.h>
#include <liburing.h>
#include <sys/syscall.h>
#include <unistd.h>

int io_uring_queue_init_params(unsigned entries, struct io_uring *ring, struct io_uring_params *p)
{
    int (*real)(unsigned, struct io_uring *, struct io_uring_params *) =
        (int (*)(unsigned, struct io_uring *, struct io_uring_params *))dlsym(
            RTLD_NEXT, "io_uring_queue_init_params");
    if ((p->flags & IORING_SETUP_CQSIZE) && syscall(SYS_gettid) != getpid())
        return -EPERM;
    return real ? real(entries, ring, p) : -ENOSYS;
}
