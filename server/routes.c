/*
 * routes.c - the daemon's built-in routes. /hash is the reference example of
 * CPU-bound work: PBKDF2 runs on the thread pool while the loop keeps
 * serving everyone else.
 */
#include "server.h"

#include <errno.h>
#include <openssl/evp.h>
#include <string.h>

#define HASH_DEFAULT_ITERATIONS 100000
#define HASH_MAX_ITERATIONS     10000000

static int plaintext(cio_http_req *req, void *ud)
{
    (void)ud;
    return cio_http_respond(req, 200, "text/plain", "Hello, World!", 13);
}

static int json(cio_http_req *req, void *ud)
{
    (void)ud;
    static const char body[] = "{\"message\":\"Hello, World!\"}";
    return cio_http_respond(req, 200, "application/json", body, sizeof(body) - 1);
}

static int echo(cio_http_req *req, void *ud)
{
    (void)ud;
    cio_str body = cio_http_body(req);
    cio_str ct = cio_http_header(req, "Content-Type");
    const char *type = "application/octet-stream";
    if (ct.p && ct.n && !memchr(ct.p, '\r', ct.n) && !memchr(ct.p, '\n', ct.n))
        type = cio_arena_strndup(cio_http_arena(req), ct.p, ct.n);
    return cio_http_respond(req, 200, type ? type : "application/octet-stream", body.p, body.n);
}

typedef struct hash_job {
    const char *password;
    size_t len;
    int iterations;
    unsigned char key[32];
} hash_job;

/* On a worker thread: touches only its job. */
static intptr_t pbkdf2_job(void *arg)
{
    hash_job *j = arg;
    if (!PKCS5_PBKDF2_HMAC(j->password, (int)j->len, (const unsigned char *)"corio", 5,
                           j->iterations, EVP_sha256(), sizeof(j->key), j->key))
        return -EIO;
    return 0;
}

/* A decimal in [1, max], or -1. */
static long parse_count(cio_str s, long max)
{
    if (s.n == 0 || s.n > 9)
        return -1;
    long v = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return -1;
        v = v * 10 + (s.p[i] - '0');
    }
    return v >= 1 && v <= max ? v : -1;
}

static int hash(cio_http_req *req, void *ud)
{
    corio_app *app = ud;
    cio_str it = cio_http_query_param(req, "iterations");
    long iterations = it.p ? parse_count(it, HASH_MAX_ITERATIONS) : HASH_DEFAULT_ITERATIONS;
    if (iterations < 0) {
        static const char msg[] = "iterations must be an integer from 1 to 10000000\n";
        return cio_http_respond(req, 400, "text/plain", msg, sizeof(msg) - 1);
    }
    cio_str body = cio_http_body(req);
    /* The job lives on this coroutine's stack: cio_pool_run returns only
     * after the worker is done with it, even when cancelled. */
    hash_job job = {.password = body.p, .len = body.n, .iterations = (int)iterations};
    intptr_t rc = cio_pool_run(app->pool, pbkdf2_job, &job, CIO_NEVER);
    if (rc < 0)
        return (int)rc;
    char hex[65];
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof(job.key); i++) {
        hex[2 * i] = digits[job.key[i] >> 4];
        hex[2 * i + 1] = digits[job.key[i] & 15];
    }
    return cio_http_respond(req, 200, "text/plain", hex, 64);
}

int corio_routes_register(cio_http_server *srv, corio_app *app)
{
    int rc = 0;
    rc = rc ? rc : cio_http_route(srv, "GET", "/plaintext", plaintext, app);
    rc = rc ? rc : cio_http_route(srv, "GET", "/json", json, app);
    rc = rc ? rc : cio_http_route(srv, "POST", "/echo", echo, app);
    rc = rc ? rc : cio_http_route(srv, "POST", "/hash", hash, app);
    return rc;
}
