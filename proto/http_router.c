/*
 * http_router.c - from request target to route: the target is split, its
 * path percent-decoded and normalised (the same path static files see, as
 * nginx does), then matched against method + path patterns with ":name"
 * parameters. Routes are few; a linear scan over pre-split patterns is both
 * simple and fast. Among the routes matching a path, the one with more
 * literal segments wins.
 */
#include "http_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void route_free(http_route *rt)
{
    for (size_t i = 0; i < rt->nsegs; i++)
        free(rt->segs[i]);
    free(rt->segs);
    free(rt->seg_len);
    free(rt->name);
    free(rt);
}

void http_routes_free(cio_http_server *srv)
{
    while (srv->routes) {
        http_route *next = srv->routes->next;
        route_free(srv->routes);
        srv->routes = next;
    }
}

static bool valid_method(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n >= sizeof(((http_route *)0)->method))
        return false;
    for (size_t i = 0; i < n; i++)
        if (m[i] < 'A' || m[i] > 'Z')
            return false;
    return true;
}

#define PATH_SEGS_MAX 32 /* segments of a route at most: more are refused */

/* Whether a and b match the same requests: one method, and segment by
 * segment the same literal or both parameters ("/u/:id" is "/u/:name"). */
static bool same_route(const http_route *a, const http_route *b)
{
    if (strcmp(a->method, b->method) != 0 || a->nsegs != b->nsegs)
        return false;
    for (size_t i = 0; i < a->nsegs; i++) {
        bool pa = a->segs[i][0] == ':', pb = b->segs[i][0] == ':';
        if (pa != pb || (!pa && strcmp(a->segs[i], b->segs[i]) != 0))
            return false;
    }
    return true;
}

static int route_add(cio_http_server *srv, const char *method, const char *pattern,
                     cio_http_handler fn, void *ud, bool stream)
{
    if (!valid_method(method) || !pattern || pattern[0] != '/' || !fn)
        return -EINVAL;
    http_route *rt = calloc(1, sizeof(*rt));
    if (!rt)
        return -ENOMEM;
    strcpy(rt->method, method);
    rt->method_len = (uint8_t)strlen(method);
    rt->is_get = strcmp(method, "GET") == 0;
    rt->fn = fn;
    rt->ud = ud;
    size_t nl = strlen(method) + 1 + strlen(pattern) + 1;
    if (!(rt->name = malloc(nl))) {
        free(rt);
        return -ENOMEM;
    }
    snprintf(rt->name, nl, "%s %s", method, pattern);
    rt->stream = stream;
    /* Segments after the leading '/': "/a/:b" -> {"a", ":b"}; "/a/" -> {"a",
     * ""}; "/" -> {}. Paths are split the same way when matching. */
    if (strcmp(pattern, "/") != 0) {
        for (const char *p = pattern + 1;;) {
            const char *e = strchr(p, '/');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            char **segs = realloc(rt->segs, (rt->nsegs + 1) * sizeof(char *));
            if (segs)
                rt->segs = segs;
            if (!segs || !(rt->segs[rt->nsegs] = strndup(p, n))) {
                route_free(rt);
                return -ENOMEM;
            }
            rt->nsegs++;
            if (!e)
                break;
            if (rt->nsegs == PATH_SEGS_MAX) {
                route_free(rt);
                return -EINVAL; /* more segments than a path is split into */
            }
            p = e + 1;
        }
    }
    rt->seg_len = calloc(rt->nsegs ? rt->nsegs : 1, sizeof(uint16_t));
    if (!rt->seg_len) {
        route_free(rt);
        return -ENOMEM;
    }
    for (size_t i = 0; i < rt->nsegs; i++)
        rt->seg_len[i] = (uint16_t)strlen(rt->segs[i]);
    http_route **tail = &srv->routes;
    for (; *tail; tail = &(*tail)->next)
        if (same_route(*tail, rt)) {
            /* It would never run: the first one matches first. */
            route_free(rt);
            return -EEXIST;
        }
    *tail = rt;
    http_allow_all_update(srv);
    return 0;
}

int cio_http_route(cio_http_server *srv, const char *method, const char *pattern,
                   cio_http_handler fn, void *ud)
{
    return route_add(srv, method, pattern, fn, ud, false);
}

int cio_http_route_stream(cio_http_server *srv, const char *method, const char *pattern,
                          cio_http_handler fn, void *ud)
{
    return route_add(srv, method, pattern, fn, ud, true);
}

/* A path split into segments once per request, so that each route costs
 * a count comparison and, for the few whose shape fits, a length and a
 * memcmp per segment (not a scan of the path per route). */

typedef struct path_segs {
    cio_str s[PATH_SEGS_MAX];
    size_t n; /* PATH_SEGS_MAX + 1: more than any route has */
} path_segs;

/* "/" -> {}; "/a/b" -> {"a", "b"}; "/a/" -> {"a", ""}: as patterns are split. */
static void split_path(cio_str path, path_segs *ps)
{
    ps->n = 0;
    if (path.n <= 1)
        return;
    const char *p = path.p + 1, *end = path.p + path.n;
    for (;;) {
        if (ps->n == PATH_SEGS_MAX) {
            ps->n = PATH_SEGS_MAX + 1;
            return;
        }
        const char *e = memchr(p, '/', (size_t)(end - p));
        ps->s[ps->n++] = (cio_str){p, e ? (size_t)(e - p) : (size_t)(end - p)};
        if (!e)
            return;
        p = e + 1;
    }
}

/* Matches the path's segments against rt; returns the number of literal
 * segments matched, or -1. */
static int match_path(const http_route *rt, const path_segs *ps, cio_http_req *req, bool fill)
{
    if (rt->nsegs != ps->n)
        return -1;
    int literal = 0;
    unsigned np = 0;
    for (size_t i = 0; i < rt->nsegs; i++) {
        cio_str seg = ps->s[i];
        const char *pat = rt->segs[i];
        if (pat[0] == ':') {
            if (seg.n == 0)
                return -1;
            if (fill && np < CIO_HTTP_MAX_PARAMS) {
                req->params_name[np] = (cio_str){pat + 1, (size_t)rt->seg_len[i] - 1};
                req->params_val[np] = seg;
                np++;
            }
        } else if (rt->seg_len[i] != seg.n || memcmp(pat, seg.p, seg.n) != 0) {
            return -1;
        } else {
            literal++;
        }
    }
    if (fill)
        req->nparams = np;
    return literal;
}

/* Appends method m to the ", "-separated list unless it is there. */
static void allow_add(char *allowed, size_t len, const char *m)
{
    size_t n = strlen(m), used = strlen(allowed);
    for (const char *p = allowed; *p;) {
        const char *e = strchr(p, ',');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        if (k == n && memcmp(p, m, n) == 0)
            return; /* already listed */
        p += k;
        while (*p == ',' || *p == ' ')
            p++;
    }
    if (used + n + 3 > len)
        return;
    if (used)
        strcat(allowed, ", ");
    strcat(allowed, m);
}

void http_allow_all_update(cio_http_server *srv)
{
    srv->allow_all[0] = 0;
    if (srv->root_fd >= 0) {
        allow_add(srv->allow_all, sizeof(srv->allow_all), "GET");
        allow_add(srv->allow_all, sizeof(srv->allow_all), "HEAD");
    }
    for (const http_route *rt = srv->routes; rt; rt = rt->next) {
        allow_add(srv->allow_all, sizeof(srv->allow_all), rt->method);
        if (rt->is_get)
            allow_add(srv->allow_all, sizeof(srv->allow_all), "HEAD");
    }
}

static const http_route *route_match(cio_http_server *srv, cio_http_req *req, char *allowed,
                                     size_t allowed_len)
{
    cio_str method = cio_http_method(req);
    bool head = req->method == HTTP_HEAD;
    path_segs ps;
    split_path(req->path, &ps);
    const http_route *best = NULL;
    int best_lit = -1;
    for (const http_route *rt = srv->routes; rt; rt = rt->next) {
        bool same = rt->method_len == method.n && memcmp(rt->method, method.p, method.n) == 0;
        if (!same && !(head && rt->is_get))
            continue;
        int lit = match_path(rt, &ps, req, false);
        if (lit > best_lit) {
            best = rt;
            best_lit = lit;
        }
    }
    allowed[0] = 0;
    if (best) {
        match_path(best, &ps, req, true);
        return best;
    }
    /* No route for this method: which methods would the path take? */
    for (const http_route *rt = srv->routes; rt; rt = rt->next) {
        if (match_path(rt, &ps, req, false) < 0)
            continue;
        allow_add(allowed, allowed_len, rt->method);
        if (rt->is_get)
            allow_add(allowed, allowed_len, "HEAD");
    }
    return NULL;
}

/* Splits the target into path and query (both raw); accepts origin-form
 * ("/p?q") and absolute-form ("http://host/p?q"). *normal tells whether the
 * path is normal already (no escape, no dot or empty segment: most are, and
 * are used in place). False if neither form. */
static bool split_target(cio_http_req *r, cio_str *path, bool *normal)
{
    cio_str t = cio_http_target(r);
    size_t i = 0; /* index of the path's first byte */
    size_t skip = 0;
    if (t.n && t.p[0] != '/') { /* origin-form is the common case */
        if (t.n >= 7 && strncasecmp(t.p, "http://", 7) == 0)
            skip = 7;
        else if (t.n >= 8 && strncasecmp(t.p, "https://", 8) == 0)
            skip = 8;
    }
    if (skip) {
        i = skip;
        while (i < t.n && t.p[i] != '/')
            i++; /* "http://host": the path is "/" */
    }
    if (i < t.n && t.p[i] != '/')
        return false;
    bool plain = true;
    size_t q = i;
    for (; q < t.n && t.p[q] != '?'; q++) {
        char ch = t.p[q];
        if (ch == '%' || (ch == '/' && q + 1 < t.n && (t.p[q + 1] == '/' || t.p[q + 1] == '.')))
            plain = false;
    }
    *normal = plain;
    *path = q == i ? (cio_str){"/", 1} : (cio_str){t.p + i, q - i};
    if (q < t.n)
        r->query = (http_span){r->url.off + (uint32_t)q + 1, (uint32_t)(t.n - q - 1)};
    return true;
}

int http_route_resolve(cio_http_req *r, bool copy, char *allowed, size_t allowed_len)
{
    cio_http_server *srv = r->conn->srv;
    allowed[0] = 0;
    if (r->resolved)
        return 0;
    cio_str raw;
    bool normal;
    if (!split_target(r, &raw, &normal))
        return 400;
    if (!copy && normal) {
        r->path = raw;
    } else {
        char *p = cio_arena_alloc(&r->arena, raw.n + 1);
        if (!p)
            return 503;
        ssize_t n = cio_http_percent_decode(p, raw.p, raw.n);
        if (n > 0)
            n = cio_http_normalize_path(p, (size_t)n);
        if (n <= 0)
            return 400; /* a bad escape, a NUL, or above the root */
        p[n] = 0;
        r->path = (cio_str){p, (size_t)n};
    }
    r->route = route_match(srv, r, allowed, allowed_len);
    r->resolved = true;
    if (r->route)
        return 0;
    if (allowed[0])
        return 405; /* the path has routes, for other methods */
    if (srv->root_fd < 0)
        return 404;
    if (r->method != HTTP_GET && r->method != HTTP_HEAD) {
        snprintf(allowed, allowed_len, "GET, HEAD"); /* files only answer these */
        return 405;
    }
    return 0;
}
