/*
 * ws_handshake.c - the opening handshake (RFC 6455 4.2): checks the
 * client's request, chooses a subprotocol, and computes
 * Sec-WebSocket-Accept with libcrypto's SHA-1 and base64.
 */
#include "ws_internal.h"

#include <errno.h>
#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

void ws_accept_key(cio_str key, char out[29])
{
    unsigned char buf[64 + sizeof(WS_GUID)], md[20];
    size_t n = key.n < 64 ? key.n : 64; /* a checked key has 24 bytes */
    memcpy(buf, key.p, n);
    memcpy(buf + n, WS_GUID, sizeof(WS_GUID) - 1);
    unsigned int mdlen = 0;
    EVP_Digest(buf, n + sizeof(WS_GUID) - 1, md, &mdlen, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 characters and a NUL */
}

/* Calls fn for each comma-separated token of every header named name,
 * trimmed of whitespace; stops when fn returns true. */
static bool each_token(const cio_http_req *req, const char *name,
                       bool (*fn)(cio_str tok, void *arg), void *arg)
{
    cio_str hn, hv;
    for (size_t i = 0; cio_http_header_at(req, i, &hn, &hv); i++) {
        if (hn.n != strlen(name) || strncasecmp(hn.p, name, hn.n) != 0)
            continue;
        const char *p = hv.p, *end = hv.p + hv.n;
        while (p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *e = comma ? comma : end;
            const char *a = p, *b = e;
            while (a < b && (*a == ' ' || *a == '\t'))
                a++;
            while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
                b--;
            if (b > a && fn((cio_str){a, (size_t)(b - a)}, arg))
                return true;
            p = e + 1;
        }
    }
    return false;
}

static bool token_is(cio_str tok, void *arg)
{
    const char *want = arg;
    return tok.n == strlen(want) && strncasecmp(tok.p, want, tok.n) == 0;
}

/* The number of headers named name; *first gets the first one's value. */
static int count_header(const cio_http_req *req, const char *name, cio_str *first)
{
    cio_str hn, hv;
    int n = 0;
    for (size_t i = 0; cio_http_header_at(req, i, &hn, &hv); i++) {
        if (hn.n == strlen(name) && strncasecmp(hn.p, name, hn.n) == 0) {
            if (n++ == 0)
                *first = hv;
        }
    }
    return n;
}

/* A key is the base64 of 16 bytes: 22 characters and "==". */
static bool key_valid(cio_str k)
{
    if (k.n != 24 || k.p[22] != '=' || k.p[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++) {
        char c = k.p[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return false;
    }
    return true;
}

typedef struct proto_pick {
    const cio_ws_opts *o;
    size_t best; /* index into o->subprotocols, or nsubprotocols */
} proto_pick;

static bool offer_proto(cio_str tok, void *arg)
{
    proto_pick *pk = arg;
    for (size_t i = 0; i < pk->best; i++) {
        const char *s = pk->o->subprotocols[i];
        if (tok.n == strlen(s) && memcmp(tok.p, s, tok.n) == 0) /* case-sensitive: a token */
            pk->best = i;
    }
    return pk->best == 0; /* the server's first choice: no better one */
}

int ws_handshake_check(cio_http_req *req, const cio_ws_opts *o, ws_handshake *hs)
{
    memset(hs, 0, sizeof(*hs));
    cio_str method = cio_http_method(req);
    if (method.n != 3 || memcmp(method.p, "GET", 3) != 0 || cio_http_version_minor(req) < 1)
        return 400;
    if (!each_token(req, "Upgrade", token_is, "websocket") ||
        !each_token(req, "Connection", token_is, "upgrade"))
        return 400;
    cio_str version = {0};
    if (count_header(req, "Sec-WebSocket-Version", &version) != 1 || version.n != 2 ||
        memcmp(version.p, "13", 2) != 0)
        return 426;
    if (count_header(req, "Sec-WebSocket-Key", &hs->key) != 1 || !key_valid(hs->key))
        return 400;
    /* The Origin allow-list guards browsers' cross-site requests; a client
     * that sends no Origin is not a browser (and could send any). */
    cio_str origin = {0};
    int norigin = count_header(req, "Origin", &origin);
    if (norigin > 1)
        return 400;
    if (norigin == 1 && o->norigins) {
        bool ok = false;
        for (size_t i = 0; i < o->norigins && !ok; i++)
            ok = origin.n == strlen(o->origins[i]) &&
                 strncasecmp(origin.p, o->origins[i], origin.n) == 0;
        if (!ok)
            return 403;
    }
    if (o->nsubprotocols) {
        proto_pick pk = {o, o->nsubprotocols};
        each_token(req, "Sec-WebSocket-Protocol", offer_proto, &pk);
        if (pk.best < o->nsubprotocols)
            hs->subprotocol = o->subprotocols[pk.best];
    }
    return 0;
}
