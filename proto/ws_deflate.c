/*
 * ws_deflate.c - permessage-deflate (RFC 7692): the Sec-WebSocket-Extensions
 * parser and negotiation, and the zlib streams of one connection.
 *
 * Every zlib allocation goes through a counting allocator, so the memory a
 * connection's contexts hold is known exactly, not estimated.
 */
#define ZLIB_CONST
#include "ws_deflate.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* A zlib stream and the bytes allocated for it (itself included). The count
 * lives beside the stream, not in ws_deflate, so the state may move. */
struct ws_zstream {
    z_stream z;
    size_t mem;
};

/* The empty stored block a sender removes from every message (§7.2.1). */
static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};

/* ---- negotiation -------------------------------------------------------------------- */

/* RFC 7230 tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

typedef struct lexer {
    const char *p, *end;
} lexer;

static void skip_ows(lexer *lx)
{
    while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t'))
        lx->p++;
}

static size_t take_token(lexer *lx)
{
    const char *start = lx->p;
    while (lx->p < lx->end && is_tchar((unsigned char)*lx->p))
        lx->p++;
    return (size_t)(lx->p - start);
}

static bool at(const lexer *lx, char c)
{
    return lx->p < lx->end && *lx->p == c;
}

#define VAL_MAX 8 /* longer values are invalid for every parameter we know */

/* A parameter value, a token or a quoted string, unescaped into val; *vlen
 * counts every unescaped byte, even those that did not fit. false on a
 * syntax error. */
static bool take_value(lexer *lx, char val[VAL_MAX], size_t *vlen)
{
    *vlen = 0;
    if (!at(lx, '"')) {
        const char *start = lx->p;
        size_t n = take_token(lx);
        memcpy(val, start, n < VAL_MAX ? n : VAL_MAX);
        *vlen = n;
        return n > 0;
    }
    lx->p++;
    for (;;) {
        if (lx->p >= lx->end)
            return false; /* unterminated */
        unsigned char c = (unsigned char)*lx->p++;
        if (c == '"')
            return true;
        if (c == '\\') {
            if (lx->p >= lx->end)
                return false;
            c = (unsigned char)*lx->p++;
        }
        if (c < 0x20 ? c != '\t' : c == 0x7f)
            return false; /* controls are not allowed, escaped or not */
        if (*vlen < VAL_MAX)
            val[*vlen] = (char)c;
        (*vlen)++;
    }
}

typedef struct pmd_offer {
    bool snct, cnct; /* the no_context_takeover parameters */
    bool smwb_seen, cmwb_seen;
    int smwb, cmwb; /* window bits, 0 when given without a value */
    bool bad;       /* unknown or repeated parameter, or bad value: declined */
} pmd_offer;

/* 8..15 in decimal without leading zeroes (§7.1.2), else 0. */
static int parse_bits(const char *v, size_t n)
{
    if (n == 1 && (v[0] == '8' || v[0] == '9'))
        return v[0] - '0';
    if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
        return 10 + v[1] - '0';
    return 0;
}

static bool name_is(const char *name, size_t n, const char *lit)
{
    return n == strlen(lit) && strncasecmp(name, lit, n) == 0;
}

static void offer_param(pmd_offer *o, const char *name, size_t nlen, const char *val, size_t vlen,
                        bool has_val)
{
    if (name_is(name, nlen, "server_no_context_takeover")) {
        o->bad |= o->snct || has_val;
        o->snct = true;
    } else if (name_is(name, nlen, "client_no_context_takeover")) {
        o->bad |= o->cnct || has_val;
        o->cnct = true;
    } else if (name_is(name, nlen, "server_max_window_bits")) {
        o->smwb = has_val ? parse_bits(val, vlen) : 0;
        o->bad |= o->smwb_seen || o->smwb == 0; /* a value is required */
        o->smwb_seen = true;
    } else if (name_is(name, nlen, "client_max_window_bits")) {
        o->cmwb = has_val ? parse_bits(val, vlen) : 0;
        o->bad |= o->cmwb_seen || (has_val && o->cmwb == 0);
        o->cmwb_seen = true;
    } else {
        o->bad = true;
    }
}

/* One extension with its parameters. false on a syntax error; *is_pmd and
 * *o describe a permessage-deflate offer. */
static bool parse_extension(lexer *lx, bool *is_pmd, pmd_offer *o)
{
    const char *name = lx->p;
    size_t n = take_token(lx);
    if (n == 0)
        return false;
    *is_pmd = name_is(name, n, "permessage-deflate");
    *o = (pmd_offer){0};
    skip_ows(lx);
    while (at(lx, ';')) {
        lx->p++;
        skip_ows(lx);
        const char *pname = lx->p;
        size_t plen = take_token(lx);
        if (plen == 0)
            return false;
        skip_ows(lx);
        char val[VAL_MAX];
        size_t vlen = 0;
        bool has_val = at(lx, '=');
        if (has_val) {
            lx->p++;
            skip_ows(lx);
            if (!take_value(lx, val, &vlen))
                return false;
            skip_ows(lx);
        }
        if (*is_pmd)
            offer_param(o, pname, plen, val, vlen, has_val);
    }
    return lx->p == lx->end || *lx->p == ',';
}

static int policy_check(const ws_deflate_policy *pol)
{
    if ((pol->server_max_window_bits &&
         (pol->server_max_window_bits < 8 || pol->server_max_window_bits > 15)) ||
        (pol->client_max_window_bits &&
         (pol->client_max_window_bits < 8 || pol->client_max_window_bits > 15)) ||
        pol->level < 0 || pol->level > 9 || pol->mem_level < 0 || pol->mem_level > 9)
        return -EINVAL;
    return 0;
}

/* The agreed parameters for an acceptable offer, and the response. */
static int agree(const pmd_offer *o, const ws_deflate_policy *pol, ws_deflate_params *out,
                 char *resp, size_t resp_len)
{
    int psw = pol->server_max_window_bits ? pol->server_max_window_bits : 15;
    int pcw = pol->client_max_window_bits ? pol->client_max_window_bits : 15;
    out->server_no_context_takeover = o->snct || pol->server_no_context_takeover;
    out->client_no_context_takeover = o->cnct || pol->client_no_context_takeover;
    /* The server must not use a larger window than the client asked for; it
     * may choose a smaller one on its own (§7.1.2.1). */
    out->server_max_window_bits = o->smwb && o->smwb < psw ? o->smwb : psw;
    /* The client's window can be limited only if it said it supports that
     * (§7.1.2.2); its value, if any, is a hint we take when smaller. */
    out->client_max_window_bits = 15;
    if (o->cmwb_seen)
        out->client_max_window_bits = o->cmwb && o->cmwb < pcw ? o->cmwb : pcw;

    char sw[40] = "", cw[40] = ""; /* room for any int: no truncation warning */
    if (o->smwb_seen || out->server_max_window_bits < 15)
        snprintf(sw, sizeof(sw), "; server_max_window_bits=%d", out->server_max_window_bits);
    if (out->client_max_window_bits < 15)
        snprintf(cw, sizeof(cw), "; client_max_window_bits=%d", out->client_max_window_bits);
    /* At most 128 characters: every parameter, with two-digit values. */
    char buf[WS_DEFLATE_RESPONSE_MAX];
    int n = snprintf(buf, sizeof(buf), "permessage-deflate%s%s%s%s",
                     out->server_no_context_takeover ? "; server_no_context_takeover" : "",
                     out->client_no_context_takeover ? "; client_no_context_takeover" : "", sw, cw);
    if (n < 0 || (size_t)n >= sizeof(buf) || (size_t)n >= resp_len)
        return -ENOSPC;
    memcpy(resp, buf, (size_t)n + 1);
    return 1;
}

int ws_deflate_negotiate(const char *offer, size_t len, const ws_deflate_policy *policy,
                         ws_deflate_params *out, char *response, size_t response_len)
{
    static const ws_deflate_policy defaults = {0};
    const ws_deflate_policy *pol = policy ? policy : &defaults;
    *out = (ws_deflate_params){0};
    if (response_len)
        response[0] = '\0';
    if (policy_check(pol) < 0)
        return -EINVAL;

    /* The whole list is checked even after an acceptable offer: a value
     * that is not an extension list is refused as a whole. */
    if (!offer)
        offer = "", len = 0; /* no header */
    lexer lx = {offer, offer + len};
    pmd_offer chosen = {0};
    bool found = false;
    for (;;) {
        while (at(&lx, ',') || at(&lx, ' ') || at(&lx, '\t'))
            lx.p++; /* empty list elements are allowed (RFC 7230 §7) */
        if (lx.p == lx.end)
            break;
        bool is_pmd;
        pmd_offer o;
        if (!parse_extension(&lx, &is_pmd, &o))
            return -EBADMSG;
        if (is_pmd && !o.bad && !found) {
            chosen = o;
            found = true;
        }
    }
    if (!found)
        return 0;
    int rc = agree(&chosen, pol, out, response, response_len);
    if (rc < 0)
        *out = (ws_deflate_params){0};
    return rc;
}

/* ---- zlib streams --------------------------------------------------------------------- */

/* Counting allocator: a size header before each block (16 bytes keeps
 * malloc's alignment). */
#define HDR 16

static void *z_alloc(void *opaque, unsigned items, unsigned size)
{
    size_t n = (size_t)items * size; /* two 32-bit factors: no overflow in 64 bits */
    char *p = malloc(n + HDR);
    if (!p)
        return Z_NULL;
    memcpy(p, &n, sizeof(n));
    *(size_t *)opaque += n;
    return p + HDR;
}

static void z_free(void *opaque, void *addr)
{
    if (!addr)
        return;
    char *p = (char *)addr - HDR;
    size_t n;
    memcpy(&n, p, sizeof(n));
    *(size_t *)opaque -= n;
    free(p);
}

static struct ws_zstream *zs_new(void)
{
    struct ws_zstream *zs = calloc(1, sizeof(*zs));
    if (!zs)
        return NULL;
    zs->z.zalloc = z_alloc;
    zs->z.zfree = z_free;
    zs->z.opaque = &zs->mem;
    zs->mem = sizeof(*zs);
    return zs;
}

static int zerr(int rc)
{
    return rc == Z_MEM_ERROR ? -ENOMEM : rc == Z_DATA_ERROR ? -EBADMSG : -EINVAL;
}

/* The inflate stream, created on first use around a kept window if any. */
static int inf_open(ws_deflate *st)
{
    if (st->inf)
        return 0;
    struct ws_zstream *zs = zs_new();
    if (!zs)
        return -ENOMEM;
    int rc = inflateInit2(&zs->z, -st->p.client_max_window_bits);
    if (rc == Z_OK && st->inf_win)
        rc = inflateSetDictionary(&zs->z, st->inf_win, st->inf_win_len);
    if (rc != Z_OK) {
        inflateEnd(&zs->z);
        free(zs);
        return zerr(rc);
    }
    free(st->inf_win);
    st->inf_win = NULL;
    st->inf_win_len = 0;
    st->inf = zs;
    return 0;
}

/* zlib refuses a 256-byte window for raw deflate; 9 stays within 256 bytes
 * of distance (see ws_deflate.h). */
static int def_window_bits(const ws_deflate *st)
{
    return st->p.server_max_window_bits < 9 ? 9 : st->p.server_max_window_bits;
}

static int def_open(ws_deflate *st)
{
    if (st->def)
        return 0;
    struct ws_zstream *zs = zs_new();
    if (!zs)
        return -ENOMEM;
    int rc = deflateInit2(&zs->z, st->level, Z_DEFLATED, -def_window_bits(st), st->mem_level,
                          Z_DEFAULT_STRATEGY);
    if (rc == Z_OK && st->def_win)
        rc = deflateSetDictionary(&zs->z, st->def_win, st->def_win_len);
    if (rc != Z_OK) {
        deflateEnd(&zs->z);
        free(zs);
        return zerr(rc);
    }
    free(st->def_win);
    st->def_win = NULL;
    st->def_win_len = 0;
    st->def = zs;
    return 0;
}

static void zs_end(struct ws_zstream **zsp, bool deflater)
{
    struct ws_zstream *zs = *zsp;
    if (!zs)
        return;
    if (deflater)
        deflateEnd(&zs->z);
    else
        inflateEnd(&zs->z);
    free(zs);
    *zsp = NULL;
}

int ws_deflate_init(ws_deflate *st, const ws_deflate_params *p, const ws_deflate_policy *policy,
                    size_t max_message_bytes)
{
    static const ws_deflate_policy defaults = {0};
    const ws_deflate_policy *pol = policy ? policy : &defaults;
    if (policy_check(pol) < 0 || p->server_max_window_bits < 8 || p->server_max_window_bits > 15 ||
        p->client_max_window_bits < 8 || p->client_max_window_bits > 15)
        return -EINVAL;
    *st = (ws_deflate){0};
    st->p = *p;
    st->level = (int8_t)(pol->level ? pol->level : WS_DEFLATE_LEVEL);
    st->mem_level = (int8_t)(pol->mem_level ? pol->mem_level : WS_DEFLATE_MEM_LEVEL);
    st->max_message = max_message_bytes;
    return 0;
}

void ws_deflate_fini(ws_deflate *st)
{
    zs_end(&st->inf, false);
    zs_end(&st->def, true);
    free(st->inf_win);
    free(st->def_win);
    *st = (ws_deflate){0};
}

/* ---- inflate ---------------------------------------------------------------------------- */

/* Room for inflate's output: out doubles as cio_buf would, but never past
 * allowed more bytes (cio_buf's doubling could overshoot the limit 2x). */
static uint8_t *out_room(cio_buf *out, size_t allowed, size_t *room)
{
    if (out->cap == out->len) {
        size_t add = out->cap < 1024 ? 1024 : out->cap;
        if (add > allowed)
            add = allowed;
        if (add > SIZE_MAX - out->len)
            return NULL;
        char *p = realloc(out->p, out->len + add);
        if (!p)
            return NULL;
        out->p = p;
        out->cap = out->len + add;
    }
    size_t n = out->cap - out->len;
    *room = n < allowed ? n : allowed;
    return (uint8_t *)out->p + out->len;
}

/* A deflate stream ended (a block with BFINAL set, §7.2.3.4): what follows
 * in the message, the tail at least, is a new stream, which with context
 * takeover goes on from the same window. */
static int inf_restart(ws_deflate *st)
{
    z_stream *z = &st->inf->z;
    if (st->p.client_no_context_takeover)
        return inflateReset(z) == Z_OK ? 0 : -EINVAL;
    unsigned n = 0;
    inflateGetDictionary(z, NULL, &n);
    uint8_t *win = n ? malloc(n) : NULL;
    if (n && !win)
        return -ENOMEM;
    inflateGetDictionary(z, win, &n);
    int rc = inflateReset(z);
    if (rc == Z_OK && n)
        rc = inflateSetDictionary(z, win, n);
    free(win);
    return rc == Z_OK ? 0 : zerr(rc);
}

/* Inflates z's pending input into out, within the message limit. */
static int inf_run(ws_deflate *st, cio_buf *out)
{
    z_stream *z = &st->inf->z;
    for (;;) {
        size_t allowed = st->max_message - st->msg_in;
        uint8_t probe, *dst = &probe;
        size_t room = 1;
        /* At the limit, one byte more is asked for into probe: if it
         * comes, the message is too big, and nothing was allocated for it. */
        if (allowed > 0 && !(dst = out_room(out, allowed, &room)))
            return -ENOMEM;
        if (room > UINT_MAX)
            room = UINT_MAX;
        z->next_out = dst;
        z->avail_out = (unsigned)room;
        int rc = inflate(z, Z_SYNC_FLUSH);
        size_t got = room - z->avail_out;
        if (got && allowed == 0)
            return -EMSGSIZE;
        out->len += got;
        st->msg_in += got;
        switch (rc) {
        case Z_OK:
            /* A message must end at a block boundary; only a call that
             * made progress says where the stream is (on entry zlib turns
             * its boundary state into another one). */
            st->inf_boundary = (z->data_type & 128) != 0;
            break;
        case Z_STREAM_END:
            st->inf_boundary = true;
            if ((rc = inf_restart(st)) < 0)
                return rc;
            break;
        case Z_BUF_ERROR: /* no progress possible: all input used */
            return 0;
        default:
            return zerr(rc == Z_NEED_DICT ? Z_DATA_ERROR : rc);
        }
        if (z->avail_in == 0 && z->avail_out > 0)
            return 0;
    }
}

static int inf_feed(ws_deflate *st, const uint8_t *in, size_t len, cio_buf *out)
{
    z_stream *z = &st->inf->z;
    do {
        unsigned n = len > UINT_MAX ? UINT_MAX : (unsigned)len;
        z->next_in = in;
        z->avail_in = n;
        int rc = inf_run(st, out);
        if (rc < 0)
            return rc;
        in += n;
        len -= n;
    } while (len > 0);
    return 0;
}

int ws_deflate_inflate(ws_deflate *st, const void *in, size_t len, bool fin, cio_buf *out)
{
    int rc;
    if (len) {
        if ((rc = inf_open(st)) < 0)
            return rc;
        st->inf_mid = true;
        if ((rc = inf_feed(st, in, len, out)) < 0)
            return rc;
    }
    /* A message without a single byte is empty. The tail alone is not a
     * block (the stored block's header is in the byte before it), so it
     * must not reach a stream that goes on to the next message. */
    if (!fin || !st->inf_mid)
        return 0;
    if ((rc = inf_feed(st, tail, sizeof(tail), out)) < 0)
        return rc;
    if (!st->inf_boundary)
        return -EBADMSG; /* the message stops inside a block */
    st->inf_mid = false;
    st->msg_in = 0;
    if (st->p.client_no_context_takeover && inflateReset(&st->inf->z) != Z_OK)
        return -EINVAL;
    return 0;
}

/* ---- deflate ---------------------------------------------------------------------------- */

int ws_deflate_compress(ws_deflate *st, const void *in, size_t len, bool fin, cio_buf *out)
{
    int rc = def_open(st);
    if (rc < 0)
        return rc;
    z_stream *z = &st->def->z;
    st->def_mid = true;
    size_t start = out->len;
    const uint8_t *p = in;
    /* A first guess at the output (text shrinks at least twofold), then out
     * doubles; a big message does not reserve its size up front. */
    size_t want = len < 128 * 1024 ? len / 2 + 64 : 64 * 1024;
    do {
        unsigned n = len > UINT_MAX ? UINT_MAX : (unsigned)len;
        int flush = fin && n == len ? Z_SYNC_FLUSH : Z_NO_FLUSH;
        z->next_in = p;
        z->avail_in = n;
        do {
            if (cio_buf_reserve(out, want) < 0)
                return -ENOMEM;
            want = out->cap;
            size_t room = out->cap - out->len;
            if (room > UINT_MAX)
                room = UINT_MAX;
            z->next_out = (uint8_t *)out->p + out->len;
            z->avail_out = (unsigned)room;
            rc = deflate(z, flush);
            out->len += room - z->avail_out;
            if (rc != Z_OK && rc != Z_BUF_ERROR)
                return zerr(rc);
        } while (z->avail_in > 0 || z->avail_out == 0);
        len -= n;
        if (len)
            p += n; /* an empty message may come as NULL: no arithmetic on it */
    } while (len > 0);
    if (!fin)
        return 0;
    if (out->len == start) {
        /* An empty message right after a flush: zlib does not flush twice
         * without input between. The stream is on a byte boundary, so the
         * empty stored block's first byte is the whole message (§7.2.3.6). */
        if (cio_buf_append(out, tail, 1) < 0)
            return -ENOMEM;
    } else {
        /* Otherwise Z_SYNC_FLUSH ends with the empty stored block, here. */
        if (out->len - start < sizeof(tail) || memcmp(out->p + out->len - 4, tail, 4) != 0)
            return -EPROTO;
        out->len -= sizeof(tail);
    }
    st->def_mid = false;
    if (st->p.server_no_context_takeover && deflateReset(z) != Z_OK)
        return -EINVAL;
    return 0;
}

int ws_deflate_compress_seg(ws_deflate *st, const void *in, size_t len, size_t headroom,
                            cio_seg **out)
{
    *out = NULL;
    cio_buf b = {0};
    if (cio_buf_reserve(&b, headroom) < 0)
        return -ENOMEM;
    b.len = headroom;
    int rc = ws_deflate_compress(st, in, len, true, &b);
    if (rc == 0 && b.len > UINT32_MAX)
        rc = -EMSGSIZE;
    cio_seg *s = NULL;
    if (rc == 0 && !(s = cio_seg_new(b.len)))
        rc = -ENOMEM;
    if (rc == 0) {
        memcpy(s->data + headroom, b.p + headroom, b.len - headroom);
        *out = s;
    }
    cio_buf_free(&b);
    return rc;
}

bool ws_deflate_use_compressed(const ws_deflate *st, size_t raw_len, size_t compressed_len)
{
    return !st->p.server_no_context_takeover || compressed_len < raw_len;
}

/* ---- idle ------------------------------------------------------------------------------- */

/* A stream's window, copied out before the stream is freed, so that context
 * takeover survives. false when there is no memory for it. */
static bool keep_window(z_stream *z, bool deflater, uint8_t **win, uint32_t *win_len)
{
    unsigned n = 0;
    if (deflater)
        deflateGetDictionary(z, NULL, &n);
    else
        inflateGetDictionary(z, NULL, &n);
    if (n == 0)
        return true;
    uint8_t *w = malloc(n);
    if (!w)
        return false;
    if (deflater)
        deflateGetDictionary(z, w, &n);
    else
        inflateGetDictionary(z, w, &n);
    *win = w;
    *win_len = n;
    return true;
}

void ws_deflate_idle(ws_deflate *st)
{
    if (st->inf && !st->inf_mid &&
        (st->p.client_no_context_takeover ||
         keep_window(&st->inf->z, false, &st->inf_win, &st->inf_win_len)))
        zs_end(&st->inf, false);
    if (st->def && !st->def_mid &&
        (st->p.server_no_context_takeover ||
         keep_window(&st->def->z, true, &st->def_win, &st->def_win_len)))
        zs_end(&st->def, true);
}

size_t ws_deflate_memory(const ws_deflate *st)
{
    return (st->inf ? st->inf->mem : 0) + (st->def ? st->def->mem : 0) + st->inf_win_len +
           st->def_win_len;
}
