/*
 * buf.c - the one growable byte buffer of corio (input buffers, output
 * chunks, log buffers, header lists). Capacity doubles from 1 KiB, so a
 * buffer that grows byte by byte still costs O(log n) reallocations.
 */
#include "cio_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FIRST_CAP 1024

int cio__buf_grow(cio_buf *b, size_t n)
{
    if (n > SIZE_MAX / 2 - b->len)
        return -ENOMEM;
    size_t cap = b->cap ? b->cap : FIRST_CAP;
    while (cap < b->len + n)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int cio_buf_reserve_exact(cio_buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return 0;
    if (n > SIZE_MAX / 2 - b->len)
        return -ENOMEM;
    char *p = realloc(b->p, b->len + n);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = b->len + n;
    return 0;
}

int cio_buf_append(cio_buf *b, const void *p, size_t n)
{
    if (cio_buf_reserve(b, n) < 0)
        return -ENOMEM;
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

void cio_buf_consume(cio_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

void cio_buf_free(cio_buf *b)
{
    free(b->p);
    *b = (cio_buf){0};
}
