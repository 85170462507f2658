/*
 * http_addrs.c - open connections per client address, for
 * max_conns_per_addr: a chained hash of the addresses that have at least one
 * connection (an entry goes with its last connection). Keyed with a random
 * seed per table, so a peer that controls many source addresses (IPv6 gives
 * one 2^64 of them) cannot aim them at one bucket.
 */
#include "http_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define BUCKETS_MIN 64

struct http_addr {
    struct http_addr *next;
    uint32_t count;
    uint8_t family;
    uint8_t addr[16];
};

static uint64_t mix(uint64_t x)
{
    /* the finaliser of MurmurHash3: every input bit reaches every output bit */
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static uint64_t hash(const http_addrs *t, uint8_t family, const uint8_t *addr)
{
    uint64_t a, b;
    memcpy(&a, addr, 8);
    memcpy(&b, addr + 8, 8);
    return mix(mix(a ^ t->seed) ^ b ^ family);
}

/* Copies the address of family (AF_INET: 4 bytes, AF_INET6: 16) into the
 * 16-byte key form. */
static void key(uint8_t out[16], uint8_t family, const uint8_t *addr)
{
    memset(out, 0, 16);
    memcpy(out, addr, family == AF_INET ? 4 : 16);
}

static struct http_addr **slot(http_addrs *t, uint8_t family, const uint8_t k[16])
{
    struct http_addr **p = &t->buckets[hash(t, family, k) & (t->nbuckets - 1)];
    while (*p && ((*p)->family != family || memcmp((*p)->addr, k, 16) != 0))
        p = &(*p)->next;
    return p;
}

static int grow(http_addrs *t)
{
    size_t n = t->nbuckets ? t->nbuckets * 2 : BUCKETS_MIN;
    struct http_addr **b = calloc(n, sizeof(*b));
    if (!b)
        return -ENOMEM;
    if (!t->nbuckets && getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) != sizeof(t->seed))
        t->seed = (uint64_t)(uintptr_t)t ^ (uint64_t)cio_clock(); /* no entropy yet: still varies */
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (struct http_addr *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            struct http_addr **p = &b[hash(t, e->family, e->addr) & (n - 1)];
            e->next = *p;
            *p = e;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
    return 0;
}

void http_addrs_init(http_addrs *t)
{
    *t = (http_addrs){0};
    pthread_mutex_init(&t->lock, NULL);
}

static int take_locked(http_addrs *t, uint8_t family, const uint8_t *addr, uint64_t limit)
{
    if (t->nentries >= t->nbuckets && grow(t) < 0 && !t->nbuckets)
        return -ENOMEM; /* a table that cannot grow still works, with longer chains */
    uint8_t k[16];
    key(k, family, addr);
    struct http_addr **p = slot(t, family, k);
    if (*p) {
        if ((*p)->count >= limit)
            return 0;
        (*p)->count++;
        return 1;
    }
    if (limit == 0)
        return 0;
    struct http_addr *e = malloc(sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->next = NULL;
    e->count = 1;
    e->family = family;
    memcpy(e->addr, k, 16);
    *p = e;
    t->nentries++;
    return 1;
}

int http_addrs_take(http_addrs *t, uint8_t family, const uint8_t *addr, uint64_t limit)
{
    pthread_mutex_lock(&t->lock);
    int rc = take_locked(t, family, addr, limit);
    pthread_mutex_unlock(&t->lock);
    return rc;
}

static void put_locked(http_addrs *t, uint8_t family, const uint8_t *addr)
{
    if (!t->nbuckets)
        return;
    uint8_t k[16];
    key(k, family, addr);
    struct http_addr **p = slot(t, family, k);
    struct http_addr *e = *p;
    if (!e || --e->count > 0)
        return;
    *p = e->next;
    free(e);
    t->nentries--;
}

void http_addrs_put(http_addrs *t, uint8_t family, const uint8_t *addr)
{
    pthread_mutex_lock(&t->lock);
    put_locked(t, family, addr);
    pthread_mutex_unlock(&t->lock);
}

uint32_t http_addrs_count(http_addrs *t, uint8_t family, const uint8_t *addr)
{
    pthread_mutex_lock(&t->lock);
    uint32_t n = 0;
    if (t->nbuckets) {
        uint8_t k[16];
        key(k, family, addr);
        struct http_addr *e = *slot(t, family, k);
        n = e ? e->count : 0;
    }
    pthread_mutex_unlock(&t->lock);
    return n;
}

void http_addrs_fini(http_addrs *t)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (struct http_addr *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(t->buckets);
    pthread_mutex_destroy(&t->lock);
    memset(t, 0, sizeof(*t));
}
