/*
 * failalloc.c - the test-only allocator hook of corio-failalloc (issue 8:
 * allocation failure survived). Linked with -Wl,--wrap=malloc,calloc,realloc,
 * so it sees every allocation made by corio's own code (core, proto, config,
 * server; not the shared libraries'). With CORIO_FAIL_EVERY=N in the
 * environment, every Nth of them fails (NULL, errno ENOMEM) from
 * CORIO_FAIL_START_MS (default 1000) after the process started until
 * CORIO_FAIL_STOP_MS (default never), so that the daemon starts normally,
 * fails while it serves, and can be checked afterwards.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static atomic_ulong calls, failed;
static unsigned long every;
static int64_t start_ns = -1, stop_ns = INT64_MAX;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

__attribute__((constructor)) static void failalloc_init(void)
{
    const char *e = getenv("CORIO_FAIL_EVERY");
    const char *s = getenv("CORIO_FAIL_START_MS");
    const char *t = getenv("CORIO_FAIL_STOP_MS");
    every = e ? strtoul(e, NULL, 10) : 0;
    int64_t t0 = now_ns();
    start_ns = t0 + (s ? strtoll(s, NULL, 10) : 1000) * 1000000;
    if (t)
        stop_ns = t0 + strtoll(t, NULL, 10) * 1000000;
}

static int should_fail(void)
{
    if (!every)
        return 0;
    int64_t now = now_ns();
    if (now < start_ns || now >= stop_ns)
        return 0;
    if (atomic_fetch_add(&calls, 1) % every != every - 1)
        return 0;
    atomic_fetch_add(&failed, 1);
    errno = ENOMEM;
    return 1;
}

void *__wrap_malloc(size_t n)
{
    return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : __real_realloc(p, n);
}

/* How many allocations failed (the test reads it in the log at exit). */
__attribute__((destructor)) static void failalloc_report(void)
{
    if (every) {
        char line[96];
        int len = snprintf(line, sizeof(line), "failalloc: %lu of %lu allocations failed\n",
                           atomic_load(&failed), atomic_load(&calls));
        if (len > 0)
            (void)!write(2, line, (size_t)len);
    }
}
