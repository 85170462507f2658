/*
 * heap.c - giving freed heap memory back after a burst (issue 8). glibc keeps
 * what a burst freed: its heap cannot shrink below a chunk still in use, and
 * freed pages in the middle stay resident, so a daemon that once served a
 * burst of large bodies or compressed WebSocket messages kept its peak RSS.
 * malloc_trim(0) returns those pages (MADV_DONTNEED on every free page, in
 * every arena), but it walks the free lists and briefly locks each arena, so
 * it runs only when the loop is quiet and, since the last trim, the resident
 * size grew by at least min_free at some point or the bytes in use fell by
 * that much (a trim in the middle of a burst saw them in use). The resident
 * size is read at every tick, busy ones too, and its peak kept: a burst
 * that started just after a trim and ended with the process no bigger than
 * then (its own large buffers, mapped apart from the heap, gone again) still
 * left its heap pages resident. A weak timer: it never keeps a loop alive.
 */
#include "cio_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/* Busier than this many completions per second, the loop is working:
 * trimming then would only slow the work down and the memory is in use. */
#define QUIET_CQES_PER_SEC 2000
/* Freed, or grown, since the last trim: worth one when a burst has ended. */
#define BURST_END_MIN (1u << 20)

/* Resident bytes of this process, or 0 when unknown. */
static size_t resident_bytes(void)
{
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    unsigned long long size, resident;
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
        return 0;
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* Bytes the allocator has handed out from its arenas (not counting the
 * large blocks it maps on their own: those go back when freed). mallinfo2
 * walks the free lists: called only when the loop is quiet. */
static size_t heap_in_use(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    return mallinfo2().uordblks;
#else
    return 0;
#endif
}

static void heap_tick(cio_timer *t)
{
    cio_loop *l = t->loop;
    uint64_t cqes = l->stats.cqes - l->heap_last_cqes;
    l->heap_last_cqes = l->stats.cqes;
    (void)cio_timer_start(t, cio_now() + l->heap_interval);
    size_t rss = resident_bytes(); /* a read of statm: cheap enough every tick */
    if (rss > l->heap_peak)
        l->heap_peak = rss;
    if ((double)cqes > QUIET_CQES_PER_SEC * ((double)l->heap_interval / 1e9)) {
        l->heap_busy = true;
        return;
    }
    bool burst_ended = l->heap_busy;
    l->heap_busy = false;
    size_t inuse = heap_in_use();
    /* Worth a trim: the process grew since the last one (at its peak), or
     * its heap holds at least min_free less than then (freed since:
     * resident, unless trimmed; a trim during a burst saw that memory in
     * use). */
    bool grew = !rss || l->heap_peak >= l->heap_base + l->heap_min_free;
    bool freed = inuse + l->heap_min_free <= l->heap_inuse;
    /* The first quiet look after a busy spell: whatever the burst freed
     * since the last trim (a trim during it saw its memory in use, and
     * what it used after that trim went unseen) goes back, if at least a
     * MiB less is in use or the process is a MiB bigger. Once a burst. */
    bool after_burst = burst_ended && (inuse + BURST_END_MIN <= l->heap_inuse ||
                                       rss >= l->heap_base + BURST_END_MIN);
    if (!grew && !freed && !after_burst)
        return;
#ifdef __GLIBC__
    cio_time t0 = cio_clock();
    malloc_trim(0);
    l->heap_stats.last_trim_ns = cio_clock() - t0;
#endif
    size_t after = resident_bytes();
    l->heap_stats.trims++;
    if (rss > after)
        l->heap_stats.released_bytes += rss - after;
    l->heap_base = l->heap_peak = after;
    l->heap_inuse = inuse;
}

int cio_heap_trim_start(cio_loop *l, cio_time interval, size_t min_free)
{
    l = cio__loop_or_current(l);
    if (!l)
        return -EINVAL;
    cio_timer_init_weak(&l->heap_timer, l, heap_tick);
    if (interval <= 0)
        return 0;
    l->heap_interval = interval;
    l->heap_min_free = min_free;
    l->heap_last_cqes = l->stats.cqes;
    l->heap_base = l->heap_peak = resident_bytes();
    l->heap_inuse = heap_in_use();
    return cio_timer_start(&l->heap_timer, cio_now() + interval);
}

void cio_heap_trim_get(const cio_loop *l, cio_heap_stats *out)
{
    l = cio__loop_or_current((cio_loop *)l);
    *out = l ? l->heap_stats : (cio_heap_stats){0};
}
