/*
 * arena.c - per-request bump allocation with a defer list: everything a
 * request allocates goes away at once when it ends, and cleanups (closing a
 * file, releasing a reference) run in reverse order of registration.
 */
#include "cio_internal.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cio__chunk {
    struct cio__chunk *next;
    size_t size;
    _Alignas(16) char data[];
};

struct cio__defer {
    struct cio__defer *next;
    void (*fn)(void *arg);
    void *arg;
};

void cio_arena_init(cio_arena *a, size_t first_chunk)
{
    memset(a, 0, sizeof(*a));
    a->first_size = first_chunk ? first_chunk : 4096;
}

static bool grow(cio_arena *a, size_t need)
{
    size_t size = a->chunk ? a->chunk->size * 2 : a->first_size;
    while (size < need)
        size *= 2;
    struct cio__chunk *c = malloc(sizeof(*c) + size);
    if (!c)
        return false;
    c->next = a->chunk;
    c->size = size;
    a->chunk = c;
    a->ptr = c->data;
    a->end = c->data + size;
    return true;
}

void *cio_arena_alloc(cio_arena *a, size_t n)
{
    if (n > SIZE_MAX / 4)
        return NULL; /* rounding and chunk doubling would overflow */
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    if ((size_t)(a->end - a->ptr) < n && !grow(a, n))
        return NULL;
    void *p = a->ptr;
    a->ptr += n;
    return p;
}

char *cio_arena_strndup(cio_arena *a, const char *s, size_t n)
{
    char *p = n < SIZE_MAX ? cio_arena_alloc(a, n + 1) : NULL;
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

char *cio_arena_printf(cio_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = cio_arena_alloc(a, (size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

int cio_arena_defer(cio_arena *a, void (*fn)(void *arg), void *arg)
{
    struct cio__defer *d = cio_arena_alloc(a, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->fn = fn;
    d->arg = arg;
    d->next = a->defers;
    a->defers = d;
    return 0;
}

static void run_defers(cio_arena *a)
{
    /* Defers live in the arena: take the list before freeing anything. */
    struct cio__defer *d = a->defers;
    a->defers = NULL;
    for (; d; d = d->next)
        d->fn(d->arg);
}

void cio_arena_reset(cio_arena *a)
{
    run_defers(a);
    if (!a->chunk)
        return;
    /* Keep the oldest (smallest) chunk for the next request. */
    struct cio__chunk *c = a->chunk;
    while (c->next) {
        struct cio__chunk *next = c->next;
        free(c);
        c = next;
    }
    a->chunk = c;
    a->ptr = c->data;
    a->end = c->data + c->size;
}

void cio_arena_fini(cio_arena *a)
{
    run_defers(a);
    struct cio__chunk *c = a->chunk;
    while (c) {
        struct cio__chunk *next = c->next;
        free(c);
        c = next;
    }
    a->chunk = NULL;
    a->ptr = a->end = NULL;
}
