/*
 * cio_buf.h - the growable byte buffer, shared (reference-counted) segments
 * and arenas with a defer list.
 */
#ifndef CIO_BUF_H
#define CIO_BUF_H

#include "cio_loop.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the public API: see LIBRARY in cio.h */

/* ------------------------------------------------------------------------ */
/* Buffers and shared segments                                               */
/* ------------------------------------------------------------------------ */

/* One growable byte buffer: bytes [0, len) of p, capacity cap. Zero-
 * initialised it is empty and owns nothing. */
typedef struct cio_buf {
    char *p;
    size_t len, cap;
} cio_buf;

int cio__buf_grow(cio_buf *b, size_t n);

/* Makes room for n more bytes (the capacity doubles). 0 or -ENOMEM. */
static inline int cio_buf_reserve(cio_buf *b, size_t n)
{
    return b->cap - b->len >= n ? 0 : cio__buf_grow(b, n);
}
/* Room for n bytes at the end (write there, then add to len), or NULL. */
static inline char *cio_buf_space(cio_buf *b, size_t n)
{
    return cio_buf_reserve(b, n) < 0 ? NULL : b->p + b->len;
}
/* Makes room for exactly n more bytes (no doubling: for a size known in
 * advance, such as an announced body). 0 or -ENOMEM (b unchanged). */
int cio_buf_reserve_exact(cio_buf *b, size_t n);
/* Appends n bytes. 0 or -ENOMEM (b unchanged). */
int cio_buf_append(cio_buf *b, const void *p, size_t n);
/* Drops the first n bytes (all of them if n >= len). */
void cio_buf_consume(cio_buf *b, size_t n);
/* Frees the memory; b is empty again. */
void cio_buf_free(cio_buf *b);

/* An immutable, reference-counted run of bytes to send: encoded once and
 * queued on any number of send queues (a broadcast frame). A segment used on
 * one loop counts its references with plain increments, so queueing costs no
 * locked instruction per subscriber. One that is to cross to other loops (a
 * broadcast forwarded to every worker) is marked with cio_seg_share() first:
 * from then on its count is atomic, and each loop queues it on its own
 * connections by reference (no copy per loop). */
typedef struct cio_seg {
    uint32_t refs; /* the count, and CIO_SEG_SHARED once shared */
    uint32_t len;
    uint8_t data[];
} cio_seg;

#define CIO_SEG_SHARED 0x80000000u

/* A segment of len bytes (fill data before queuing it) with one reference,
 * or NULL. */
cio_seg *cio_seg_new(size_t len);
static inline cio_seg *cio_seg_ref(cio_seg *s)
{
    /* The flag never changes once other threads can see the segment, so a
     * relaxed read of it is enough (a plain load on x86-64 and arm64). */
    if (__atomic_load_n(&s->refs, __ATOMIC_RELAXED) & CIO_SEG_SHARED)
        __atomic_fetch_add(&s->refs, 1, __ATOMIC_RELAXED);
    else
        s->refs++;
    return s;
}
/* Makes s's count atomic, so that other threads may take and drop
 * references. Call while only this thread can see s, before handing it
 * over (cio_loop_post's lock orders the hand-over). Returns s. */
static inline cio_seg *cio_seg_share(cio_seg *s)
{
    s->refs |= CIO_SEG_SHARED;
    return s;
}
/* Drops a reference; the last one frees the segment. Safe on NULL. */
void cio_seg_unref(cio_seg *s);

/* ------------------------------------------------------------------------ */
/* Arenas: per-request memory with a defer list                              */
/* ------------------------------------------------------------------------ */

/* Bump allocation in chunks, freed all at once by reset/fini, which first
 * runs the deferred cleanups in reverse order. Allocation failure returns
 * NULL. */
typedef struct cio_arena {
    struct cio__chunk *chunk;
    char *ptr, *end;
    struct cio__defer *defers;
    size_t first_size;
} cio_arena;

void cio_arena_init(cio_arena *a, size_t first_chunk);
void *cio_arena_alloc(cio_arena *a, size_t n); /* 16-byte aligned */
char *cio_arena_strndup(cio_arena *a, const char *s, size_t n);
char *cio_arena_printf(cio_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Runs fn(arg) at reset/fini. 0 or -ENOMEM (then fn is not registered). */
int cio_arena_defer(cio_arena *a, void (*fn)(void *arg), void *arg);
/* Runs the defers and frees all but the first chunk (kept for reuse). */
void cio_arena_reset(cio_arena *a);
void cio_arena_fini(cio_arena *a);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif /* CIO_BUF_H */
