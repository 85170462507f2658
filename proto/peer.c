/*
 * peer.c - the peer-ID protocol (see cio_peer.h): the id, and discovery.
 *
 * Tasks: one coordinator, which starts a round every interval, and one
 * task per entry, which queries its entry when the coordinator says so
 * (its 'go' event) and records the answer. All of them are one group's
 * children, so stopping is cancelling the coordinator. Everything runs on
 * the loop: the view is only changed between awaiting calls, so readers
 * (routes, the self decision) need no lock.
 */
#include "cio_peer.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define DEF_INTERVAL CIO_SEC(1)
#define DEF_WINDOW   CIO_SEC(60)
#define DEF_TIMEOUT  CIO_SEC(1)
#define POKE_GAP     CIO_MS(100) /* between two early rounds (cio_discovery_heard) */

int cio_peer_id_generate(cio_peer_id *out)
{
    static const char digits[] = "0123456789abcdef";
    uint8_t raw[16];
    size_t got = 0;
    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        out->hex[2 * i] = digits[raw[i] >> 4];
        out->hex[2 * i + 1] = digits[raw[i] & 15];
    }
    out->hex[32] = 0;
    return 0;
}

bool cio_peer_id_parse(const char *body, size_t len, cio_peer_id *out)
{
    const char *p = body, *end = body + len;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
        end--;
    if (end - p != 34 || p[0] != '"' || p[33] != '"')
        return false;
    for (int i = 1; i <= 32; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return false;
    memcpy(out->hex, p + 1, 32);
    out->hex[32] = 0;
    return true;
}

const char *cio_peer_state_name(enum cio_peer_state s)
{
    switch (s) {
    case CIO_PEER_STANDALONE:
        return "standalone";
    case CIO_PEER_SEARCHING:
        return "searching";
    case CIO_PEER_FOUND:
        return "found";
    case CIO_PEER_FAILED:
        return "failed";
    }
    return "?";
}

/* ---- discovery ----------------------------------------------------------------------- */

typedef struct slot {
    cio_peer_info info;
    struct cio_discovery *d;
    char *host;
    uint16_t port;
    cio_event go;            /* the coordinator started a round for this entry */
    uint64_t round;          /* the latest round it was queried in */
    uint64_t first_match;    /* the round it first answered our id in (0: never) */
    bool busy;               /* its query is out */
} slot;

struct cio_discovery {
    cio_loop *loop;
    cio_discovery_opts o;
    slot *slots;
    size_t n;
    enum cio_peer_state state;
    int self;
    cio_future self_fut; /* the index of self, or -ESRCH / -ESHUTDOWN */
    cio_time started, found_after;
    uint64_t found_round; /* the round self was first seen in (1: the first) */
    cio_task *coord;
    cio_event poke;      /* an unknown member asked for our id: query everyone now */
    cio_time last_early; /* when the latest early round started */
    cio_http_field hdr;  /* Corio-Peer-Id: our id, sent with every query */
};

int cio_discovery_create(cio_loop *loop, const cio_discovery_opts *opts, cio_discovery **out)
{
    *out = NULL;
    loop = loop ? loop : cio_loop_current();
    if (!loop || (opts->nmembers && !opts->client))
        return -EINVAL;
    cio_discovery *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->loop = loop;
    d->o = *opts;
    d->o.members = NULL;
    if (d->o.interval <= 0)
        d->o.interval = DEF_INTERVAL;
    if (d->o.window <= 0)
        d->o.window = DEF_WINDOW;
    if (d->o.request_timeout <= 0)
        d->o.request_timeout = DEF_TIMEOUT;
    d->self = -1;
    d->n = opts->nmembers;
    cio_event_init(&d->poke);
    d->hdr = (cio_http_field){CIO_STR("Corio-Peer-Id"), {d->o.id.hex, 32}};
    d->state = d->n ? CIO_PEER_SEARCHING : CIO_PEER_STANDALONE;
    cio_future_init(&d->self_fut);
    if (d->n && !(d->slots = calloc(d->n, sizeof(slot)))) {
        free(d);
        return -ENOMEM;
    }
    for (size_t i = 0; i < d->n; i++) {
        slot *s = &d->slots[i];
        s->d = d;
        s->port = opts->members[i].port;
        s->info.name = strdup(opts->members[i].name);
        s->host = strdup(opts->members[i].host);
        cio_event_init(&s->go);
        if (!s->info.name || !s->host) {
            d->n = i + 1;
            cio_discovery_destroy(d);
            return -ENOMEM;
        }
    }
    *out = d;
    return 0;
}

void cio_discovery_destroy(cio_discovery *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++) {
        free((char *)d->slots[i].info.name);
        free(d->slots[i].host);
    }
    free(d->slots);
    free(d);
}

const char *cio_peer_answer(const cio_peer_info *p, char *out, size_t len)
{
    if (p->last_error == -ETIMEDOUT)
        snprintf(out, len, "timed out");
    else if (p->last_error == -ENXIO)
        snprintf(out, len, "name does not resolve");
    else if (p->last_error == -EPROTO)
        snprintf(out, len, "not an HTTP response");
    else if (p->last_error)
        snprintf(out, len, "%s", strerror(-p->last_error));
    else if (p->up)
        snprintf(out, len, "id %s", p->id.hex);
    else if (p->last_status)
        snprintf(out, len, "HTTP %d%s%s%s", p->last_status, p->last_answer[0] ? " \"" : "",
                 p->last_answer, p->last_answer[0] ? "\"" : "");
    else
        snprintf(out, len, p->pending ? "no answer yet" : "not queried yet");
    if (len && p->last_error) /* strerror's capital: it follows a name in the logs */
        out[0] = (char)tolower((unsigned char)out[0]);
    return out;
}

/* Self is the first entry in list order that answered our id in the round
 * where it was first seen (m). Decided once nothing can change that: no
 * entry is still out with an earlier round (it might answer our id, and
 * m would move back), and none listed before the candidate is still out
 * with round m. force (the window ended): what has answered decides. */
static void decide(cio_discovery *d, bool force)
{
    if (d->state != CIO_PEER_SEARCHING)
        return;
    uint64_t m = 0;
    for (size_t i = 0; i < d->n; i++)
        if (d->slots[i].first_match && (!m || d->slots[i].first_match < m))
            m = d->slots[i].first_match;
    if (!m)
        return;
    size_t i = d->n;
    for (size_t j = 0; j < d->n; j++) {
        slot *s = &d->slots[j];
        if (i == d->n && s->first_match == m)
            i = j;
        if (!force && s->busy && (s->round < m || (s->round == m && i == d->n)))
            return; /* it may still answer our id in round m, or earlier */
    }
    d->state = CIO_PEER_FOUND;
    d->self = (int)i;
    d->found_after = cio_now() - d->started;
    d->slots[i].info.self = true;
    char aliases[512] = "";
    size_t al = 0;
    for (size_t j = 0; j < d->n; j++)
        if (j != i && d->slots[j].first_match) {
            d->slots[j].info.alias = true;
            if (al < sizeof(aliases))
                al += (size_t)snprintf(aliases + al, sizeof(aliases) - al, "%s%s",
                                       al ? ", " : "; aliases: ", d->slots[j].info.name);
        }
    d->found_round = m;
    cio_info("discovery: self is %s (entry %zu of %zu), found in round %llu, %.1f ms after start%s",
             d->slots[i].info.name, i + 1, d->n, (unsigned long long)m,
             (double)d->found_after / 1e6, aliases);
    (void)cio_future_set(&d->self_fut, (intptr_t)i);
}

static void give_up(cio_discovery *d)
{
    decide(d, true); /* an entry that answered our id wins, whoever is still out */
    if (d->state != CIO_PEER_SEARCHING)
        return;
    d->state = CIO_PEER_FAILED;
    cio_error("discovery: no entry of \"servers\" answered with this server's id (%s) within "
              "%lld ms; is this server in the list, under a name that reaches it?",
              d->o.id.hex, (long long)(d->o.window / CIO_MS(1)));
    for (size_t i = 0; i < d->n; i++) {
        char a[96];
        cio_error("discovery:   %s: %s", d->slots[i].info.name,
                  cio_peer_answer(&d->slots[i].info, a, sizeof(a)));
    }
    (void)cio_future_set(&d->self_fut, -ESRCH);
}

/* The printable start of an answer that is not an id. */
static void keep_answer(cio_peer_info *p, cio_str body)
{
    size_t k = 0;
    for (size_t i = 0; i < body.n && k + 1 < sizeof(p->last_answer); i++) {
        unsigned char ch = (unsigned char)body.p[i];
        if (ch == '\n' || ch == '\r')
            break;
        p->last_answer[k++] = ch >= 0x20 && ch < 0x7f && ch != '"' ? (char)ch : '?';
    }
    p->last_answer[k] = 0;
}

/* [awaits] One query of the entry; records what came. */
static void query(cio_discovery *d, slot *s)
{
    cio_peer_info *p = &s->info;
    cio_http_response resp;
    cio_http_request rq = {.host = s->host, .port = s->port, .target = "/server_id",
                           .headers = &d->hdr, .nheaders = 1};
    int rc = cio_http_fetch(d->o.client, &rq, &resp, cio_after(d->o.request_timeout));
    if (rc == -ECANCELED && cio_cancelled())
        return; /* stopping */
    bool was_up = p->up;
    cio_peer_id id;
    if (rc < 0) {
        p->up = false;
        p->last_error = rc;
        p->last_status = 0;
        p->last_answer[0] = 0;
    } else if (resp.status != 200 || !cio_peer_id_parse(resp.body.p, resp.body.n, &id)) {
        p->up = false;
        p->last_error = 0;
        p->last_status = resp.status;
        keep_answer(p, resp.body);
    } else {
        p->up = true;
        p->last_error = 0;
        p->last_status = 200;
        p->last_answer[0] = 0;
        p->last_seen = cio_now();
        if (p->has_id && strcmp(p->id.hex, id.hex) != 0) {
            p->restarts++;
            cio_info("discovery: %s restarted (id %s, was %s)", p->name, id.hex, p->id.hex);
        }
        p->id = id;
        p->has_id = true;
        if (strcmp(id.hex, d->o.id.hex) == 0) {
            if (!s->first_match)
                s->first_match = s->round;
            if (d->state == CIO_PEER_FOUND && !p->self && !p->alias) {
                p->alias = true;
                cio_info("discovery: %s also reaches this server (an alias of %s)", p->name,
                         d->slots[d->self].info.name);
            }
        }
    }
    if (rc == 0)
        cio_http_response_free(&resp);
    /* Changes of peers once self is known are worth a line; failures
     * while everyone is still starting are not. */
    if (was_up && !p->up && d->state != CIO_PEER_SEARCHING) {
        char a[96];
        cio_warn("discovery: %s is down (%s)", p->name, cio_peer_answer(p, a, sizeof(a)));
    } else if (!was_up && p->up && p->restarts == 0 && p->last_seen && d->state == CIO_PEER_FOUND &&
               !p->self && !p->alias) {
        cio_info("discovery: %s is up (id %s)", p->name, p->id.hex);
    }
}

static intptr_t entry_task(void *arg)
{
    slot *s = arg;
    cio_discovery *d = s->d;
    for (;;) {
        if (cio_event_wait(&s->go, CIO_NEVER) < 0)
            return 0;
        cio_event_clear(&s->go);
        query(d, s);
        s->busy = s->info.pending = false;
        if (cio_cancelled())
            return 0;
        decide(d, false);
    }
}

static intptr_t coordinator(void *arg)
{
    cio_discovery *d = arg;
    cio_group g;
    cio_group_init(&g, CIO_NEVER);
    for (size_t i = 0; i < d->n; i++) {
        int rc = cio_group_spawn(&g, NULL, entry_task, &d->slots[i]);
        if (rc < 0) {
            /* Without a task per entry there is no search: say so, and
             * fail those who wait rather than leave them searching. */
            cio_error("discovery: cannot start: %s", strerror(-rc));
            d->state = CIO_PEER_FAILED;
            (void)cio_future_set(&d->self_fut, rc);
            cio_group_cancel(&g);
            (void)cio_group_wait(&g);
            return rc;
        }
    }
    cio_time next = d->started + d->o.interval; /* the next regular round */
    for (uint64_t round = 1;; round++) {
        if (d->state == CIO_PEER_SEARCHING && d->o.window != CIO_NEVER &&
            cio_now() - d->started >= d->o.window)
            give_up(d);
        for (size_t i = 0; i < d->n; i++) {
            slot *s = &d->slots[i];
            if (s->busy)
                continue; /* its query of an earlier round is still out */
            s->busy = s->info.pending = true;
            s->round = round;
            cio_event_set(&s->go);
        }
        /* Until the next round is due, or an early one is asked for: then
         * at most one per POKE_GAP (the requests that asked meanwhile are
         * all answered by it). */
        int rc = cio_event_wait(&d->poke, next);
        if (rc == -ECANCELED)
            break;
        if (rc == 0) {
            cio_time at = d->last_early + POKE_GAP;
            if (at > cio_now() && at < next && cio_sleep_until(at) < 0)
                break;
            cio_event_clear(&d->poke);
            if (next - cio_now() < POKE_GAP) {
                /* The regular round is as near: it answers the request. */
                if (cio_sleep_until(next) < 0)
                    break;
            } else {
                d->last_early = cio_now();
            }
        }
        if (cio_now() >= next) {
            next += d->o.interval;
            if (next <= cio_now())
                next = cio_now() + d->o.interval; /* held up: missed rounds are not made up */
        }
    }
    cio_group_cancel(&g);
    (void)cio_group_wait(&g);
    return 0;
}

int cio_discovery_start(cio_discovery *d)
{
    if (d->state == CIO_PEER_STANDALONE || d->coord)
        return 0;
    d->started = cio_now();
    return cio_spawn(d->loop, &d->coord, coordinator, d);
}

void cio_discovery_stop(cio_discovery *d)
{
    if (!d->coord)
        return;
    cio_task_cancel(d->coord);
    cio_scope s; /* the join must not be cut short: the tasks use d */
    cio_scope_enter(&s, CIO_NEVER, true);
    (void)cio_join(d->coord, CIO_NEVER);
    cio_scope_exit(&s);
    d->coord = NULL;
    (void)cio_future_set(&d->self_fut, -ESHUTDOWN);
}

void cio_discovery_heard(cio_discovery *d, const char *id)
{
    if (!d->coord || !strcmp(id, d->o.id.hex))
        return;
    for (size_t i = 0; i < d->n; i++)
        if (d->slots[i].info.has_id && !strcmp(d->slots[i].info.id.hex, id))
            return; /* a member we know */
    /* A member that started, or restarted, since we last asked: ask
     * everyone now rather than at the next round (the coordinator runs at
     * most one early round per 100 ms, so made-up ids cannot make us flood
     * the others). */
    cio_event_set(&d->poke);
}

int cio_discovery_await_self(cio_discovery *d, const char **entry, cio_time deadline)
{
    *entry = NULL;
    if (d->state == CIO_PEER_STANDALONE)
        return 0;
    intptr_t r = cio_await(&d->self_fut, deadline);
    if (r < 0)
        return (int)r;
    *entry = d->slots[r].info.name;
    return 0;
}

enum cio_peer_state cio_discovery_state(const cio_discovery *d)
{
    return d->state;
}

int cio_discovery_self(const cio_discovery *d)
{
    return d->self;
}

cio_time cio_discovery_found_after(const cio_discovery *d)
{
    return d->found_after;
}

uint64_t cio_discovery_found_round(const cio_discovery *d)
{
    return d->found_round;
}

size_t cio_discovery_count(const cio_discovery *d)
{
    return d->n;
}

const cio_peer_info *cio_discovery_peer(const cio_discovery *d, size_t i)
{
    return &d->slots[i].info;
}
