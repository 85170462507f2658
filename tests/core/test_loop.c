/* The loop: ring setup and fallbacks, CQ overflow, run/stop semantics,
 * calls on other loops, liveness. */
#include "harness.h"

#include "cio_internal.h" /* the ring, for the refusing-kernel emulation */

#include <fcntl.h>
#include <liburing.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

START_TEST(ring_uses_single_issuer_and_defer_taskrun)
{
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    unsigned f = cio_loop_ring_flags(l);
    ck_assert(f & IORING_SETUP_SINGLE_ISSUER);
    ck_assert(f & IORING_SETUP_DEFER_TASKRUN);
    ck_assert_ptr_eq(cio_loop_current(), l);
    cio_loop_destroy(l);
    ck_assert_ptr_null(cio_loop_current());
}
END_TEST

static intptr_t main_sleep_and_value(void *arg)
{
    cio_sleep(CIO_MS(2));
    return (intptr_t)arg;
}

START_TEST(plain_ring_fallback_works)
{
    setenv("CORIO_PLAIN_RING", "1", 1);
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    ck_assert(!(cio_loop_ring_flags(l) & IORING_SETUP_DEFER_TASKRUN));
    ck_assert_int_eq(cio_run(l, main_sleep_and_value, (void *)3), 3);
    cio_loop_destroy(l);
}
END_TEST

enum { PAIRS = 300 };
static int pairs[PAIRS][2];
static int got;

static intptr_t recv_one(void *arg)
{
    int i = (int)(intptr_t)arg;
    char b[8];
    ssize_t n = cio_recv(pairs[i][1], b, sizeof(b), 0, CIO_NEVER);
    got += n == 1;
    return n == 1 ? 0 : -EIO;
}

static intptr_t main_overflow(void *arg)
{
    (void)arg;
    for (int i = 0; i < PAIRS; i++)
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pairs[i]), 0);
    cio_group g;
    cio_group_init(&g, CIO_NEVER);
    for (int i = 0; i < PAIRS; i++)
        cio_group_spawn(&g, NULL, recv_one, (void *)(intptr_t)i);
    cio_yield(); /* all receives are armed */
    cio_yield();
    for (int i = 0; i < PAIRS; i++)
        ck_assert_int_eq(write(pairs[i][0], "x", 1), 1);
    return cio_group_wait(&g);
}

/* Runs main_overflow on a ring of the given sizes: every receive must
 * complete. Returns the loop's stats. */
static cio_loop_stats run_pairs(unsigned sq_entries, unsigned cq_entries)
{
    cio_loop *l;
    cio_loop_opts o = {.sq_entries = sq_entries, .cq_entries = cq_entries};
    ck_assert_int_eq(cio_loop_create(&l, &o), 0);
    ck_assert_int_eq(cio_run(l, main_overflow, NULL), 0);
    cio_loop_stats st;
    cio_loop_get_stats(l, &st);
    cio_loop_destroy(l);
    ck_assert_int_eq(got, PAIRS);
    return st;
}

START_TEST(cq_overflow_is_flushed_not_lost)
{
    /* A plain ring posts completions as they happen, so 300 of them
     * overflow a 32-entry CQ. (With DEFER_TASKRUN the kernel may instead
     * hold task work back until there is room: see the next test.) */
    setenv("CORIO_PLAIN_RING", "1", 1);
    ck_assert_int_gt(run_pairs(16, 32).cq_overflows, 0);
}
END_TEST

START_TEST(small_cq_with_defer_taskrun_loses_nothing)
{
    (void)run_pairs(16, 32);
}
END_TEST

START_TEST(more_operations_than_sq_entries)
{
    (void)run_pairs(4, 4096); /* more concurrent operations than SQ entries */
}
END_TEST

static int leftover_result = 1;

static intptr_t leftover(void *arg)
{
    (void)arg;
    leftover_result = cio_sleep(CIO_SEC(100));
    return 0;
}

static intptr_t main_leaves_task(void *arg)
{
    (void)arg;
    cio_spawn(NULL, NULL, leftover, NULL);
    cio_yield();
    return 9;
}

START_TEST(run_cancels_leftover_tasks_at_exit)
{
    cio_time t0 = cio_clock();
    ck_assert_int_eq(t_run(main_leaves_task, NULL), 9);
    ck_assert_int_lt(cio_clock() - t0, CIO_SEC(5));
    ck_assert_int_eq(leftover_result, -ECANCELED);
}
END_TEST

static cio_event never;

static intptr_t stuck(void *arg)
{
    (void)arg;
    cio_scope sh;
    cio_scope_enter(&sh, CIO_NEVER, true); /* cancellation cannot reach it */
    cio_event_wait(&never, CIO_NEVER);
    cio_scope_exit(&sh);
    return 0;
}

static intptr_t main_stops_loop(void *arg)
{
    (void)arg;
    cio_event_init(&never);
    cio_spawn(NULL, NULL, stuck, NULL);
    cio_yield();
    cio_loop_stop(cio_loop_current());
    return 5;
}

START_TEST(stop_cuts_run_cleanup_short)
{
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    cio_time t0 = cio_clock();
    ck_assert_int_eq(cio_run(l, main_stops_loop, NULL), 5);
    ck_assert_int_lt(cio_clock() - t0, CIO_SEC(2));
    cio_loop_stats st;
    cio_loop_get_stats(l, &st);
    ck_assert_int_eq(st.tasks_live, 1); /* left suspended, as documented */
    cio_loop_abandon(l);                /* the loop cannot be destroyed now */
}
END_TEST

static void stop_cb(cio_timer *t)
{
    cio_loop_stop(t->loop);
}

static int ticks;
static void tick_cb(cio_timer *t)
{
    ticks++;
    cio_timer_start(t, cio_now() + CIO_MS(1));
}

START_TEST(stop_then_run_again)
{
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    cio_timer tick, stop;
    cio_timer_init(&tick, l, tick_cb);
    cio_timer_init(&stop, l, stop_cb);
    cio_timer_start(&tick, cio_clock());
    cio_timer_start(&stop, cio_clock() + CIO_MS(10));
    ck_assert_int_eq(cio_loop_run(l), 0);
    int first = ticks;
    ck_assert_int_gt(first, 0);
    cio_timer_start(&stop, cio_clock() + CIO_MS(10));
    ck_assert_int_eq(cio_loop_run(l), 0); /* the stop flag was reset */
    ck_assert_int_gt(ticks, first);
    cio_timer_stop(&tick);
    cio_loop_destroy(l);
}
END_TEST

static intptr_t yielder(void *arg)
{
    for (intptr_t i = 0; i < (intptr_t)arg; i++)
        cio_yield();
    return 0;
}

START_TEST(busy_yielding_amortizes_turns_and_kernel_entries)
{
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    ck_assert_int_eq(cio_run(l, yielder, (void *)100000), 0);
    cio_loop_stats st;
    cio_loop_get_stats(l, &st);
    cio_loop_destroy(l);
    /* A turn runs up to 128 task runs, and a loop with ready tasks enters
     * the kernel only when it has something to submit or every 50 us. */
    ck_assert_int_ge(st.turns, 100000 / 128);
    ck_assert_int_lt(st.turns, 100000 / 64);
    ck_assert_int_le(st.enters, st.turns);
}
END_TEST

static int reaped;

static intptr_t reader(void *arg)
{
    int *fds = arg;
    char b;
    intptr_t r = cio_recv(fds[1], &b, 1, 0, CIO_NEVER);
    reaped = 1;
    return r;
}

static intptr_t busy_until_reaped(void *arg)
{
    (void)arg;
    int fds[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
    cio_task *t;
    cio_spawn(NULL, &t, reader, fds);
    cio_yield();
    ck_assert_int_eq(write(fds[0], "x", 1), 1);
    /* This task never sleeps; completions must still be reaped (within
     * 50 us by design; a loop that never reaps runs into the 5 s limit). */
    cio_time t0 = cio_clock();
    while (!reaped && cio_clock() - t0 < CIO_SEC(5))
        cio_yield();
    ck_assert_int_eq(reaped, 1);
    ck_assert_int_lt(cio_clock() - t0, CIO_SEC(1));
    return cio_join(t, CIO_NEVER);
}

START_TEST(busy_loop_still_reaps_completions)
{
    ck_assert_int_eq(t_run(busy_until_reaped, NULL), 1);
}
END_TEST

/* ---- the clock seen by completion callbacks ---- */

static struct {
    int fds[2];
    cio_socket_transport sock;
    cio_time now_seen, clock_seen; /* in on_data */
    int data_calls;
} fresh;

static void fresh_on_data(void *ud, uint8_t *data, size_t len)
{
    (void)ud, (void)data, (void)len;
    fresh.now_seen = cio_now();
    fresh.clock_seen = cio_clock();
    fresh.data_calls++;
    fresh.sock.t.ops->close(&fresh.sock.t);
}

static void fresh_on_eof(void *ud, int err)
{
    (void)ud, (void)err;
}

static void fresh_on_closed(void *ud)
{
    (void)ud;
}

static const cio_transport_cbs fresh_cbs = {
    .on_data = fresh_on_data, .on_eof = fresh_on_eof, .on_closed = fresh_on_closed};

static void *write_later(void *arg)
{
    (void)arg;
    struct timespec ts = {.tv_nsec = 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    ck_assert_int_eq(write(fresh.fds[0], "x", 1), 1);
    return NULL;
}

START_TEST(completion_callbacks_see_a_fresh_clock)
{
    /* No task, no timer (no lag monitor): the loop's one turn waits in the
     * kernel until the other thread writes, ~300 ms later. A deadline set in
     * on_data (cio_now() + timeout) must count from then, not from before
     * the wait. */
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fresh.fds), 0);
    cio_socket_transport_init(&fresh.sock, l, fresh.fds[1], &fresh_cbs, NULL);
    ck_assert_int_eq(fresh.sock.t.ops->read_start(&fresh.sock.t), 0);
    pthread_t th;
    cio_time t0 = cio_clock();
    ck_assert_int_eq(pthread_create(&th, NULL, write_later, NULL), 0);
    ck_assert_int_eq(cio_loop_run(l), 0);
    pthread_join(th, NULL);
    ck_assert_int_eq(fresh.data_calls, 1);
    ck_assert_int_ge(fresh.clock_seen - t0, CIO_MS(250)); /* the loop did wait */
    /* The stale value would be ~300 ms behind; allow a loaded machine 50 ms. */
    ck_assert_int_ge(fresh.now_seen, t0 + CIO_MS(250));
    ck_assert_int_lt(fresh.clock_seen - fresh.now_seen, CIO_MS(50));
    cio_loop_destroy(l);
    close(fresh.fds[0]);
}
END_TEST

/* ---- overload: a tiny ring, a kernel that refuses submissions ---- */

/* Early IORING_FEAT_NODROP kernels refused submissions with -EBUSY while
 * completions sat in the overflow list; today's kernels may refuse with
 * -EAGAIN when short of memory. Either way only reaping frees the ring. The
 * emulation: a seccomp filter hands every io_uring_enter that submits to a
 * supervisor thread, which answers -EBUSY while the loop's CQ has overflowed
 * and lets the call through otherwise. */
static struct {
    struct io_uring *ring;
    pid_t loop_tid;
    int fd;
    atomic_uint refused;
} refuse;

static void *refuse_supervisor(void *arg)
{
    (void)arg;
    for (;;) {
        struct seccomp_notif req;
        struct seccomp_notif_resp resp;
        memset(&req, 0, sizeof(req)); /* the kernel insists */
        if (ioctl(refuse.fd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
            if (errno == EINTR || errno == ENOENT)
                continue;
            return NULL;
        }
        memset(&resp, 0, sizeof(resp));
        resp.id = req.id;
        unsigned kflags = __atomic_load_n(refuse.ring->sq.kflags, __ATOMIC_ACQUIRE);
        if ((pid_t)req.pid == refuse.loop_tid && (kflags & IORING_SQ_CQ_OVERFLOW)) {
            resp.error = -EBUSY;
            atomic_fetch_add(&refuse.refused, 1);
        } else {
            resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        }
        (void)ioctl(refuse.fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    }
}

/* Installs the emulation for the calling (loop) thread. False if this
 * kernel or sandbox does not allow it. */
static bool refuse_install(cio_loop *l)
{
#if defined(__x86_64__)
    const unsigned arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
    const unsigned arch = AUDIT_ARCH_AARCH64;
#else
    return false;
#endif
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        /* to_submit (args[1], an unsigned int: the low word on little-endian) */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
    };
    struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};
    refuse.ring = &l->ring;
    refuse.loop_tid = gettid();
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return false;
    refuse.fd = (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER,
                             SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (refuse.fd < 0)
        return false;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, refuse_supervisor, NULL), 0);
    pthread_detach(th);
    return true;
}

enum { ECHO_CONNS = 16, ROUNDS = 100, READERS = 32, READS = 50 };

/* The echo side: transports whose on_data sends from inside the reap. */
typedef struct echo_conn {
    cio_socket_transport sock;
    uint8_t byte;
    struct iovec iov;
} echo_conn;

static struct {
    echo_conn conns[ECHO_CONNS];
    int client_fd[ECHO_CONNS];
    int zero_fd;
    int echoed, sent, closed, rounds_ok, reads_ok;
} ov;

static void echo_on_data(void *ud, uint8_t *data, size_t len)
{
    echo_conn *c = ud;
    ck_assert_int_eq(len, 1); /* the client waits for each echo */
    c->byte = data[0];
    c->iov = (struct iovec){.iov_base = &c->byte, .iov_len = 1};
    ck_assert_int_eq(c->sock.t.ops->send(&c->sock.t, &c->iov, 1), 0);
    ov.echoed++;
}

static void echo_on_sent(void *ud, int err)
{
    (void)ud;
    ck_assert_int_eq(err, 0);
    ov.sent++;
}

static void echo_on_eof(void *ud, int err)
{
    echo_conn *c = ud;
    ck_assert_int_eq(err, 0);
    c->sock.t.ops->close(&c->sock.t);
}

static void echo_on_closed(void *ud)
{
    (void)ud;
    ov.closed++;
}

static const cio_transport_cbs echo_cbs = {.on_data = echo_on_data,
                                           .on_eof = echo_on_eof,
                                           .on_sent = echo_on_sent,
                                           .on_closed = echo_on_closed};

static intptr_t echo_client(void *arg)
{
    int i = (int)(intptr_t)arg, fd = ov.client_fd[i];
    for (int r = 0; r < ROUNDS; r++) {
        uint8_t b = (uint8_t)(r * 31 + i), echo = 0;
        ck_assert_int_eq(cio_send(fd, &b, 1, 0, CIO_NEVER), 1);
        ck_assert_int_eq(cio_recv(fd, &echo, 1, 0, CIO_NEVER), 1);
        ck_assert_int_eq(echo, b);
        ov.rounds_ok++;
    }
    return cio_close(fd);
}

static intptr_t zero_reader(void *arg)
{
    (void)arg;
    char buf[64];
    for (int r = 0; r < READS; r++) {
        /* completes inside the submission: a burst of CQEs per enter */
        ck_assert_int_eq(cio_read(ov.zero_fd, buf, sizeof(buf), -1, CIO_NEVER), sizeof(buf));
        ov.reads_ok++;
    }
    return 0;
}

static intptr_t main_overload(void *arg)
{
    cio_loop *l = arg;
    for (int i = 0; i < ECHO_CONNS; i++) {
        int fds[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        ov.client_fd[i] = fds[0];
        cio_socket_transport_init(&ov.conns[i].sock, l, fds[1], &echo_cbs, &ov.conns[i]);
        ck_assert_int_eq(ov.conns[i].sock.t.ops->read_start(&ov.conns[i].sock.t), 0);
    }
    ov.zero_fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(ov.zero_fd, 0);
    cio_group g;
    cio_group_init(&g, CIO_NEVER);
    for (int i = 0; i < ECHO_CONNS; i++)
        ck_assert_int_eq(cio_group_spawn(&g, NULL, echo_client, (void *)(intptr_t)i), 0);
    for (int i = 0; i < READERS; i++)
        ck_assert_int_eq(cio_group_spawn(&g, NULL, zero_reader, NULL), 0);
    return cio_group_wait(&g);
}

START_TEST(overload_refused_submissions_never_abort)
{
    cio_loop *l;
    cio_loop_opts o = {.sq_entries = 4, .cq_entries = 8};
    ck_assert_int_eq(cio_loop_create(&l, &o), 0);
    bool emulated = refuse_install(l);
    if (!emulated)
        fprintf(stderr, "note: seccomp user notification unavailable: no refusals emulated\n");
    ck_assert_int_eq(cio_run(l, main_overload, l), 0);
    ck_assert_int_eq(cio_loop_run(l), 0); /* the echo transports close */
    ck_assert_int_eq(ov.rounds_ok, ECHO_CONNS * ROUNDS);
    ck_assert_int_eq(ov.echoed, ECHO_CONNS * ROUNDS);
    ck_assert_int_eq(ov.sent, ECHO_CONNS * ROUNDS);
    ck_assert_int_eq(ov.closed, ECHO_CONNS);
    ck_assert_int_eq(ov.reads_ok, READERS * READS);
    cio_loop_stats st;
    cio_loop_get_stats(l, &st);
    ck_assert_int_eq(st.ops_inflight, 1); /* only the loop's own wake-up read */
    if (emulated) {                       /* the path was taken */
        ck_assert_uint_gt(atomic_load(&refuse.refused), 0);
        ck_assert_uint_gt(st.submits_refused, 0);
    }
    cio_loop_destroy(l);
}
END_TEST

/* Memory that returns: 32 KiB blocks freed between blocks still in use stay
 * resident (glibc can neither merge them nor shrink its heap past the live
 * ones); once the loop is quiet the trimmer, started before the burst, gives
 * their pages back. Not under ASan, whose allocator malloc_trim does not
 * reach. */
static intptr_t main_heap_trim(void *arg)
{
    (void)arg;
    enum { N = 2048, SIZE = 32 * 1024 };
    static char *blocks[N];
    ck_assert_int_eq(cio_heap_trim_start(NULL, CIO_MS(50), 8 << 20), 0);
    for (int i = 0; i < N; i++) {
        blocks[i] = malloc(SIZE);
        ck_assert_ptr_nonnull(blocks[i]);
        memset(blocks[i], 1, SIZE);
    }
    long peak = t_rss_kib();
    for (int i = 0; i < N; i += 2) /* 32 MiB of holes between live blocks */
        free(blocks[i]);
    cio_heap_stats st = {0};
    cio_time until = cio_after(CIO_SEC(5));
    while (cio_now() < until) {
        cio_heap_trim_get(NULL, &st);
        if (st.trims)
            break;
        cio_sleep(CIO_MS(20)); /* quiet: a few completions a second */
    }
    ck_assert_uint_ge(st.trims, 1);
#if !CIO_ASAN
    ck_assert_uint_ge(st.released_bytes, 16u << 20);
    ck_assert_int_le(t_rss_kib(), peak - 16 * 1024);
#else
    (void)peak;
#endif
    /* nothing grew since: no second trim */
    cio_sleep(CIO_MS(300));
    cio_heap_stats again;
    cio_heap_trim_get(NULL, &again);
    ck_assert_uint_eq(again.trims, st.trims);
    ck_assert_int_eq(cio_heap_trim_start(NULL, 0, 0), 0); /* stops */
    for (int i = 1; i < N; i += 2)
        free(blocks[i]);
    return 0;
}

START_TEST(heap_trim_gives_a_burst_back_when_quiet)
{
    ck_assert_int_eq(t_run(main_heap_trim, NULL), 0);
}
END_TEST

/* The burst that a trim just missed (found by the upload-flood test): a
 * trim at the start of a burst sees its memory in use and sets its
 * baseline high, partly with large buffers mapped apart from the heap.
 * The burst then fills the heap while the loop is too busy for the
 * trimmer to look, frees it, and frees the large buffers too: the process
 * ends no bigger than at that trim, and its heap holds no less in use, yet
 * the heap's freed pages are resident. The peak seen in between (read on
 * busy ticks too) is what calls for the trim. */
enum { BIG_N = 40, BIG = 256 * 1024, SMALL_N = 320, SMALL = 32 * 1024 };

/* [awaits] Until the trimmer has trimmed more than `than` times (5 s at
 * most), the loop quiet meanwhile: the stats then. */
static cio_heap_stats trims_beyond(uint64_t than)
{
    cio_heap_stats st = {0};
    cio_time until = cio_after(CIO_SEC(5));
    while (cio_now() < until) {
        cio_heap_trim_get(NULL, &st);
        if (st.trims > than)
            break;
        cio_sleep(CIO_MS(20)); /* a few completions a second */
    }
    return st;
}

static intptr_t main_heap_trim_after_busy_burst(void *arg)
{
    (void)arg;
    static char *big[BIG_N], *small[SMALL_N], *pins[SMALL_N];
    ck_assert_int_eq(cio_heap_trim_start(NULL, CIO_MS(50), 8 << 20), 0);
    /* 10 MiB of large buffers (each mapped on its own): the process grew,
     * so a quiet tick trims, with nothing to give back */
    for (int i = 0; i < BIG_N; i++) {
        big[i] = malloc(BIG);
        ck_assert_ptr_nonnull(big[i]);
        memset(big[i], 1, BIG);
    }
    cio_heap_stats st = trims_beyond(0);
    ck_assert_uint_ge(st.trims, 1);
    /* busy: a write to /dev/null after another through the ring (a
     * completion each), so no tick is quiet, while the heap fills with 10
     * MiB of blocks pinned by small ones (free() cannot shrink the heap
     * past a pin) */
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    ck_assert_int_ge(devnull, 0);
    cio_time busy_until = cio_after(CIO_MS(300));
    int k = 0;
    while (cio_now() < busy_until) {
        if (k < SMALL_N) {
            small[k] = malloc(SMALL);
            pins[k] = malloc(64);
            ck_assert_ptr_nonnull(small[k]);
            ck_assert_ptr_nonnull(pins[k]);
            memset(small[k], 3, SMALL);
            k++;
        }
        ck_assert_int_eq(cio_write(devnull, "x", 1, -1, CIO_NEVER), 1);
    }
    close(devnull);
    ck_assert_int_eq(k, SMALL_N);
    cio_heap_trim_get(NULL, &st);
    /* the burst ends: its heap blocks and the large buffers are freed; the
     * process is no bigger than at the trim, nor is less in use */
    long before = t_rss_kib();
    for (int i = 0; i < SMALL_N; i++)
        free(small[i]);
    for (int i = 0; i < BIG_N; i++)
        free(big[i]); /* unmapped at once */
    uint64_t trims = st.trims;
    st = trims_beyond(trims);
    ck_assert_uint_gt(st.trims, trims);
#if !CIO_ASAN
    ck_assert_uint_ge(st.released_bytes, 6u << 20);
    ck_assert_int_le(t_rss_kib(), before - 10 * 1024 - 6 * 1024);
#else
    (void)before;
#endif
    ck_assert_int_eq(cio_heap_trim_start(NULL, 0, 0), 0);
    for (int i = 0; i < SMALL_N; i++)
        free(pins[i]);
    return 0;
}

START_TEST(heap_trim_gives_back_a_burst_it_did_not_see)
{
    ck_assert_int_eq(t_run(main_heap_trim_after_busy_burst, NULL), 0);
}
END_TEST

/* ---- cio_loop_call: a callback on another loop's thread ---- */

typedef struct {
    pthread_t thread;
    cio_loop *loop;
    int calls;
} call_seen;

static void note_call(void *arg)
{
    call_seen *c = arg;
    c->thread = pthread_self();
    c->loop = cio_loop_current();
    c->calls++;
}

static intptr_t main_call_other(void *arg)
{
    (void)arg;
    t_thread t;
    t_thread_start(&t, NULL, NULL);
    call_seen seen = {0};
    ck_assert_int_eq(cio_loop_call(t.loop, note_call, &seen), 0);
    ck_assert_int_eq(seen.calls, 1); /* it has run by the time the call returns */
    ck_assert(pthread_equal(seen.thread, t.th));
    ck_assert_ptr_eq(seen.loop, t.loop);
    return t_thread_stop(&t);
}

T_LOOP_TEST(call_runs_fn_on_the_target_loops_thread, main_call_other, 0)

static intptr_t main_call_self(void *arg)
{
    (void)arg;
    call_seen seen = {0};
    ck_assert_int_eq(cio_loop_call(cio_loop_current(), note_call, &seen), 0);
    ck_assert_int_eq(seen.calls, 1);
    ck_assert(pthread_equal(seen.thread, pthread_self()));
    return 0;
}

T_LOOP_TEST(call_on_the_current_loop_runs_fn_directly, main_call_self, 0)

enum { FAN = 4 };

typedef struct {
    atomic_int calls[FAN];
    pthread_t thread[FAN];
} fan_seen;

static void note_fan(void *arg, size_t i)
{
    fan_seen *f = arg;
    f->thread[i] = pthread_self();
    atomic_fetch_add(&f->calls[i], 1);
}

static intptr_t main_call_all(void *arg)
{
    (void)arg;
    t_thread t[3];
    for (int i = 0; i < 3; i++)
        t_thread_start(&t[i], NULL, NULL);
    /* Three other loops and this one. */
    cio_loop *targets[FAN] = {t[0].loop, t[1].loop, cio_loop_current(), t[2].loop};
    pthread_t expect[FAN] = {t[0].th, t[1].th, pthread_self(), t[2].th};
    fan_seen seen = {0};
    ck_assert_int_eq(cio_loop_call_all(targets, FAN, note_fan, &seen), 0);
    for (int i = 0; i < FAN; i++) {
        ck_assert_int_eq(atomic_load(&seen.calls[i]), 1);
        ck_assert(pthread_equal(seen.thread[i], expect[i]));
    }
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(t_thread_stop(&t[i]), 0);
    return 0;
}

T_LOOP_TEST(call_all_runs_once_on_each_targets_thread, main_call_all, 0)

typedef struct {
    atomic_int entered;
    atomic_bool release;
    int value;
} slow_call;

static slow_call *in_flight; /* in the calling task's frame while it calls */

/* On the target: holds on until released, then writes into the caller's
 * frame. */
static void slow_fn(void *arg)
{
    slow_call *s = arg;
    atomic_store(&s->entered, 1);
    while (!atomic_load(&s->release))
        usleep(200);
    s->value = 42;
}

static intptr_t cancelled_caller(void *arg)
{
    slow_call s = {0};
    in_flight = &s;
    ck_assert_int_eq(cio_loop_call(arg, slow_fn, &s), 0);
    ck_assert_int_eq(s.value, 42);
    in_flight = NULL;
    return cio_yield(); /* the cancellation shows here */
}

static intptr_t main_call_cancelled(void *arg)
{
    (void)arg;
    t_thread t;
    t_thread_start(&t, NULL, NULL);
    cio_task *c;
    ck_assert_int_eq(cio_spawn(NULL, &c, cancelled_caller, t.loop), 0);
    ck_assert(T_AWAIT(in_flight && atomic_load(&in_flight->entered), T_PATIENCE_MS));
    cio_task_cancel(c);
    /* Until fn has run, the caller cannot have returned, however long. */
    cio_sleep(CIO_MS(20));
    ck_assert(!cio_future_done(cio_task_future(c)));
    atomic_store(&in_flight->release, true);
    ck_assert_int_eq(cio_join(c, CIO_NEVER), -ECANCELED);
    return t_thread_stop(&t);
}

T_LOOP_TEST(cancelled_caller_still_waits_for_fn, main_call_cancelled, 0)

static t_thread keeper;       /* the target of the next test */
static atomic_int home_done;  /* its main task has returned */
static int caller_finished;

static void wait_for_home(void *arg)
{
    (void)arg;
    while (!atomic_load(&home_done))
        usleep(200);
    usleep(50000); /* the home loop is in cio_run's clean-up meanwhile */
}

static intptr_t late_caller(void *arg)
{
    (void)arg;
    caller_finished = cio_loop_call(keeper.loop, wait_for_home, NULL) == 0;
    return 0;
}

static intptr_t main_leaves_a_call(void *arg)
{
    (void)arg;
    t_thread_start(&keeper, NULL, NULL);
    ck_assert_int_eq(cio_spawn(NULL, NULL, late_caller, NULL), 0);
    cio_yield(); /* the call is posted */
    atomic_store(&home_done, 1);
    return 0;
}

/* A task waiting for a call keeps its loop from going quiet: cio_run's
 * clean-up waits for it rather than report a deadlock. */
START_TEST(run_cleanup_waits_for_a_call_in_flight)
{
    cio_loop *l;
    ck_assert_int_eq(cio_loop_create(&l, NULL), 0);
    ck_assert_int_eq(cio_run(l, main_leaves_a_call, NULL), 0);
    ck_assert_int_eq(caller_finished, 1);
    cio_loop_destroy(l);
    ck_assert_int_eq(cio_loop_post(keeper.loop, t_thread_stop_cb, &keeper), 0);
    pthread_join(keeper.th, NULL);
}
END_TEST

/* ---- cio_loop_last_turn: liveness seen from other threads ---- */

static atomic_int hb_waiting;

static intptr_t heartbeat_idle(void *arg)
{
    t_thread *t = arg;
    ck_assert_int_eq(cio_lag_start(NULL, CIO_MS(100)), 0);
    atomic_store(&hb_waiting, 1);
    return cio_event_wait(&t->stop, CIO_NEVER);
}

static intptr_t main_idle_heartbeat(void *arg)
{
    (void)arg;
    static t_thread t;
    t_thread_start(&t, heartbeat_idle, &t);
    ck_assert(T_AWAIT(atomic_load(&hb_waiting), T_PATIENCE_MS));
    /* Its only task waits; only the heartbeat wakes the loop. Two advances:
     * the first may be the turn in which the task began to wait. */
    cio_time v = cio_loop_last_turn(t.loop);
    for (int i = 0; i < 2; i++) {
        ck_assert(T_AWAIT(cio_loop_last_turn(t.loop) > v, 5000));
        v = cio_loop_last_turn(t.loop);
    }
    return t_thread_stop(&t);
}

T_LOOP_TEST(idle_loop_with_heartbeat_advances_last_turn, main_idle_heartbeat, 0)

static struct {
    cio_loop *loop;
    atomic_int phase;          /* 1 while the task spins, 2 once it is done */
    _Atomic cio_time at_start; /* last_turn as the spin began */
    atomic_int samples, moved; /* the watcher's readings during the spin */
} blocked;

/* Another thread reading the loop's last turn, as a health check would. */
static void *turn_watcher(void *arg)
{
    (void)arg;
    while (atomic_load(&blocked.phase) != 2) {
        int before = atomic_load(&blocked.phase);
        cio_time v = cio_loop_last_turn(blocked.loop);
        if (before == 1 && atomic_load(&blocked.phase) == 1) { /* read during the spin */
            atomic_fetch_add(&blocked.samples, 1);
            if (v != atomic_load(&blocked.at_start))
                atomic_fetch_add(&blocked.moved, 1);
        }
        usleep(1000);
    }
    return NULL;
}

static intptr_t main_blocked(void *arg)
{
    (void)arg;
    blocked.loop = cio_loop_current();
    ck_assert_int_eq(cio_lag_start(NULL, CIO_MS(10)), 0); /* due many times during the spin */
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, turn_watcher, NULL), 0);
    cio_sleep(CIO_MS(1));
    cio_time v0 = cio_loop_last_turn(blocked.loop);
    atomic_store(&blocked.at_start, v0);
    atomic_store(&blocked.phase, 1);
    /* 300 ms on the CPU without awaiting, and on until the watcher has
     * read at least once (it may wait for a CPU on a loaded machine). */
    cio_time end = cio_clock() + CIO_MS(300), give_up = cio_clock() + CIO_SEC(5);
    while (cio_clock() < end || (atomic_load(&blocked.samples) == 0 && cio_clock() < give_up)) {
    }
    cio_time v1 = cio_loop_last_turn(blocked.loop);
    atomic_store(&blocked.phase, 2);
    pthread_join(th, NULL);
    ck_assert_int_eq(v1, v0);
    ck_assert_int_gt(atomic_load(&blocked.samples), 0);
    ck_assert_int_eq(atomic_load(&blocked.moved), 0);
    cio_sleep(CIO_MS(1)); /* the spinning turn has finished by now */
    ck_assert_int_gt(cio_loop_last_turn(blocked.loop), v0);
    return 0;
}

T_LOOP_TEST(blocked_loop_does_not_advance_last_turn, main_blocked, 0)

static Suite *loop_suite(void)
{
    Suite *s = suite_create("loop");
    T_CASE(s, ring_uses_single_issuer_and_defer_taskrun, 5);
    T_CASE(s, plain_ring_fallback_works, 5);
    T_CASE(s, cq_overflow_is_flushed_not_lost, 10);
    T_CASE(s, small_cq_with_defer_taskrun_loses_nothing, 10);
    T_CASE(s, more_operations_than_sq_entries, 10);
    T_CASE(s, run_cancels_leftover_tasks_at_exit, 5);
    T_CASE(s, stop_then_run_again, 5);
    T_CASE(s, stop_cuts_run_cleanup_short, 5);
    T_CASE(s, busy_yielding_amortizes_turns_and_kernel_entries, 10);
    T_CASE(s, busy_loop_still_reaps_completions, 10);
    T_CASE(s, completion_callbacks_see_a_fresh_clock, 10);
    T_CASE(s, overload_refused_submissions_never_abort, 60);
    T_CASE(s, heap_trim_gives_a_burst_back_when_quiet, 10);
    T_CASE(s, heap_trim_gives_back_a_burst_it_did_not_see, 15);
    T_CASE(s, call_runs_fn_on_the_target_loops_thread, 10);
    T_CASE(s, call_on_the_current_loop_runs_fn_directly, 5);
    T_CASE(s, call_all_runs_once_on_each_targets_thread, 10);
    T_CASE(s, cancelled_caller_still_waits_for_fn, 10);
    T_CASE(s, run_cleanup_waits_for_a_call_in_flight, 10);
    T_CASE(s, idle_loop_with_heartbeat_advances_last_turn, 15);
    T_CASE(s, blocked_loop_does_not_advance_last_turn, 15);
    return s;
}

T_MAIN(loop_suite)
