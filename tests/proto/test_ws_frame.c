/*
 * The WebSocket frame layer (proto/ws_frame.c), with no I/O: the UTF-8
 * validator against Markus Kuhn's decoder stress test, the cases of
 * Autobahn's section 6 and an arithmetic reference on every short
 * sequence; the encoder; the receiver fed client frames built here
 * independently of the encoder, whole and in every kind of piece, and every
 * RFC 6455 violation with its close code.
 */
#include "check_harness.h"
#include "ws_frame.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers --------------------------------------------------------------------- */

/* Check's ck_assert reports every check that passes through a pipe to the
 * parent process: far too slow for the millions of checks made here. This
 * one calls Check only when it fails. */
#define EXPECT(cond)                                                       \
    do {                                                                   \
        if (!(cond))                                                       \
            ck_abort_msg("%s:%d: expected %s", __FILE__, __LINE__, #cond); \
    } while (0)

/* A growable byte string. */
typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void b_put(bytes *b, const void *p, size_t n)
{
    if (b->cap - b->n < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->n < n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        ck_assert_ptr_nonnull(b->p);
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void b_printf(bytes *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void b_printf(bytes *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    b_put(b, tmp, (size_t)n);
}

static void b_free(bytes *b)
{
    free(b->p);
    *b = (bytes){0};
}

static const uint8_t KEY[4] = {0x37, 0xfa, 0x21, 0x3d};
static const uint8_t KEY0[4] = {0, 0, 0, 0};

enum { LEN_MIN = 0, LEN_16 = 2, LEN_64 = 8 };

/* Appends a client frame with first byte b0, masked with key, its length
 * in the minimal form or forced to 16 or 64 bits: written byte by byte
 * here, independently of ws_frame_header and ws_mask. */
static void cframe(bytes *b, uint8_t b0, const void *payload, uint64_t n, const uint8_t key[4],
                   int form)
{
    uint8_t h[14];
    size_t hl = 2;
    h[0] = b0;
    if (form == LEN_MIN && n < 126) {
        h[1] = (uint8_t)(0x80 | n);
    } else if (form != LEN_64 && n <= 0xFFFF) {
        h[1] = 0x80 | 126;
        h[2] = (uint8_t)(n >> 8), h[3] = (uint8_t)n;
        hl = 4;
    } else {
        h[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)(n >> (56 - 8 * i));
        hl = 10;
    }
    memcpy(h + hl, key, 4);
    b_put(b, h, hl + 4);
    const uint8_t *src = payload;
    for (uint64_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)(src[i] ^ key[i % 4]);
        b_put(b, &c, 1);
    }
}

#define FIN  0x80
#define RSV1 0x40
#define RSV2 0x20
#define RSV3 0x10

/* Appends a masked frame with the minimal length and the usual key. */
static void frame(bytes *b, uint8_t b0, const void *payload, size_t n)
{
    cframe(b, b0, payload, n, KEY, LEN_MIN);
}

static void frame_str(bytes *b, uint8_t b0, const char *s)
{
    frame(b, b0, s, strlen(s));
}

/* Records what the receiver reports, in a form that does not depend on how
 * the input was cut: a frame's pieces are joined. Checks on the way that
 * every piece agrees with the ones before it. */
typedef struct rec {
    bytes log;
    bool in_frame, in_msg;
    uint8_t msg_op;
    bool msg_compressed;
    size_t pieces, controls, msgs;
    size_t stop_at_piece; /* the piece (1-based) whose callback returns stop_code */
    int stop_code;
    int control_code; /* what on_control returns */
} rec;

static int on_data(void *ud, const ws_data *d)
{
    rec *r = ud;
    r->pieces++;
    EXPECT(d->op == WS_OP_TEXT || d->op == WS_OP_BINARY);
    EXPECT(d->p != NULL);
    EXPECT(d->frame_end == (d->frame_left == 0));
    EXPECT(!d->msg_end || d->frame_end);
    EXPECT(d->msg_start == !r->in_msg);
    if (r->in_msg) {
        EXPECT(d->op == r->msg_op);
        EXPECT(d->compressed == r->msg_compressed);
    }
    if (!r->in_frame)
        b_printf(&r->log, "[%c%s%s:", d->op == WS_OP_TEXT ? 'T' : 'B', d->compressed ? "z" : "",
                 d->msg_start ? "^" : "");
    b_put(&r->log, d->p, d->n);
    r->in_frame = !d->frame_end;
    r->in_msg = !d->msg_end;
    r->msg_op = d->op;
    r->msg_compressed = d->compressed;
    if (d->frame_end)
        b_printf(&r->log, "%s]", d->msg_end ? "$" : "");
    if (d->msg_end)
        r->msgs++;
    return r->pieces == r->stop_at_piece ? r->stop_code : 0;
}

static int on_control(void *ud, const ws_control *c)
{
    rec *r = ud;
    r->controls++;
    EXPECT(!r->in_frame); /* between frames, maybe inside a message */
    EXPECT(c->n <= WS_CONTROL_MAX);
    EXPECT(c->p != NULL);
    b_printf(&r->log, "[C%d", c->op);
    if (c->op == WS_OP_CLOSE) {
        b_printf(&r->log, " %u", c->code);
        if (c->n == 0) {
            EXPECT(c->code == WS_CLOSE_NO_STATUS);
            EXPECT(c->reason_len == 0);
        } else {
            EXPECT(c->reason == c->p + 2);
            EXPECT(c->reason_len == c->n - 2);
        }
    }
    b_put(&r->log, ":", 1);
    b_put(&r->log, c->p, c->n);
    b_put(&r->log, "]", 1);
    return r->control_code;
}

static const ws_rx_cbs CBS = {on_data, on_control};

/* Feeds a copy of in (the receiver unmasks in place) in pieces of `chunk`
 * bytes (0: all at once; SIZE_MAX: pseudo-random sizes of 1 to 300) into a
 * fresh receiver. Returns what the last feed returned. */
static int run(rec *r, const bytes *in, size_t chunk, bool deflate)
{
    ws_rx rx;
    ws_rx_init(&rx, deflate);
    uint8_t *copy = malloc(in->n ? in->n : 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, in->p, in->n);
    uint32_t seed = 12345;
    int rc = 0;
    size_t off = 0;
    do {
        size_t k = in->n - off;
        if (chunk == SIZE_MAX) {
            seed = seed * 1103515245 + 12345;
            k = 1 + (seed >> 16) % 300;
        } else if (chunk) {
            k = chunk;
        }
        if (k > in->n - off)
            k = in->n - off;
        rc = ws_rx_feed(&rx, copy + off, k, &CBS, r);
        off += k;
    } while (rc == 0 && off < in->n);
    free(copy);
    return rc;
}

static bool log_is(const rec *r, const char *expect)
{
    size_t n = strlen(expect);
    if (r->log.n == n && memcmp(r->log.p, expect, n) == 0)
        return true;
    fprintf(stderr, "log: %.*s\nexpected: %s\n", (int)r->log.n, (const char *)r->log.p, expect);
    return false;
}

/* The close code the receiver answers in to a stream, fed all at once. */
static int violation(const bytes *in, bool deflate)
{
    rec r = {0};
    int rc = run(&r, in, 0, deflate);
    b_free(&r.log);
    return rc;
}

/* ---- UTF-8: reference and tables ---------------------------------------------------- */

/* Whether a character whose leading bits so far give cp, with rest_bits
 * still to come, can still turn out a valid code point of at least min (the
 * shortest form). Arithmetic, independent of the validator's tables. */
static bool ref_viable(uint32_t cp, unsigned rest_bits, uint32_t min)
{
    uint32_t lo = cp << rest_bits, hi = lo | ((1u << rest_bits) - 1);
    if (lo < min)
        lo = min;
    if (hi > 0x10FFFF)
        hi = 0x10FFFF;
    return lo <= hi && !(lo >= 0xD800 && hi <= 0xDFFF);
}

/* The index of the byte at which p stops being a prefix of valid UTF-8, or
 * n if it never does; *complete: it ends on a character boundary. */
static size_t ref_fail(const uint8_t *p, size_t n, bool *complete)
{
    size_t i = 0;
    *complete = true;
    while (i < n) {
        uint8_t b = p[i];
        unsigned len;
        uint32_t cp, min;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            len = 2, cp = b & 0x1F, min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            len = 3, cp = b & 0x0F, min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            len = 4, cp = b & 0x07, min = 0x10000;
        } else {
            return i;
        }
        if (!ref_viable(cp, 6 * (len - 1), min))
            return i;
        for (unsigned k = 1; k < len; k++) {
            if (i + k == n) {
                *complete = false;
                return n;
            }
            uint8_t c = p[i + k];
            if ((c & 0xC0) != 0x80)
                return i + k;
            cp = cp << 6 | (c & 0x3F);
            if (!ref_viable(cp, 6 * (len - 1 - k), min))
                return i + k;
        }
        i += len;
    }
    return n;
}

/* Feeds p byte by byte: the index of the byte whose feed failed (n if
 * none), and whether the validator ends on a boundary. */
static size_t fail_index(const uint8_t *p, size_t n, bool *complete)
{
    ws_utf8 u = WS_UTF8_INIT;
    for (size_t i = 0; i < n; i++) {
        if (ws_utf8_feed(&u, p + i, 1) != 0) {
            EXPECT(ws_utf8_feed(&u, p + i, 1) == -EILSEQ); /* it stays failed */
            EXPECT(!ws_utf8_complete(&u));
            *complete = false;
            return i;
        }
    }
    *complete = ws_utf8_complete(&u);
    return n;
}

static size_t utf8_encode(uint32_t cp, uint8_t out[4])
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

typedef struct u8case {
    const char *s;
    size_t n;
    long fail; /* the index of the byte that makes it invalid; -1: none */
} u8case;

#define OK(str)                  \
    {                            \
        str, sizeof(str) - 1, -1 \
    }
#define BAD(str, at)             \
    {                            \
        str, sizeof(str) - 1, at \
    }
#define NCASES(a) (sizeof(a) / sizeof((a)[0]))
#define KOSME     "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5" /* κόσμε */

/* Valid: Kuhn 1, 2.1, 2.2, 2.3, 5.3 (non-characters are valid UTF-8) and
 * Autobahn's 6.2-6.x valid cases. */
static const u8case valid_cases[] = {
    OK("hello\x24world"),
    OK("hello\xC2\xA2world"),
    OK("hello\xE2\x82\xAC"
       "world"),
    OK("hello\xF0\xA4\xAD\xA2world"),
    OK(KOSME),
    OK(""),
    OK("\x00"),
    OK("\xc2\x80"),
    OK("\xe0\xa0\x80"),
    OK("\xf0\x90\x80\x80"),
    OK("\x7f"),
    OK("\xdf\xbf"),
    OK("\xef\xbf\xbf"),
    OK("\xf4\x8f\xbf\xbf"),
    OK("\xed\x9f\xbf"),
    OK("\xee\x80\x80"),
    OK("\xef\xbf\xbd"),
    OK("\xef\xbf\xbe"),
    OK("\xf0\x9f\xbf\xbe"),
    OK("\xf1\x8f\xbf\xbf"),
    OK("\xf3\xbf\xbf\xbe"),
    OK("\xf4\x8f\xbf\xbe"),
    OK("\xef\xbf\xb9\xef\xbf\xba\xef\xbf\xbb\xef\xbf\xbc"),
    OK("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"),
};

/* Invalid, with the byte that must be refused: Kuhn 2.1/2.2 (5 and 6 byte
 * forms, above U+10FFFF), 2.3, 3.1, 3.3-3.5, 4.1-4.3, 5.1, 5.2, and
 * Autobahn 6.3.1 (a surrogate after valid text). */
static const u8case invalid_cases[] = {
    BAD("\xf8\x88\x80\x80\x80", 0),
    BAD("\xfc\x84\x80\x80\x80\x80", 0),
    BAD("\xf7\xbf\xbf\xbf", 0),
    BAD("\xfb\xbf\xbf\xbf\xbf", 0),
    BAD("\xfd\xbf\xbf\xbf\xbf\xbf", 0),
    BAD("\xf4\x90\x80\x80", 1),
    BAD("\x80", 0),
    BAD("\xbf", 0),
    BAD("\x80\xbf", 0),
    BAD("\x80\xbf\x80", 0),
    BAD("\x80\xbf\x80\xbf", 0),
    BAD("\x80\xbf\x80\xbf\x80", 0),
    BAD("\x80\xbf\x80\xbf\x80\xbf", 0),
    BAD("\xc0", 0),
    BAD("\xe0\x80", 1),
    BAD("\xf0\x80\x80", 1),
    BAD("\xf8\x80\x80\x80", 0),
    BAD("\xfc\x80\x80\x80\x80", 0),
    BAD("\xf7\xbf\xbf", 0),
    BAD("\xfb\xbf\xbf\xbf", 0),
    BAD("\xfd\xbf\xbf\xbf\xbf", 0),
    BAD("\xc0\xe0\x80\xf0\x80\x80\xf8\x80\x80\x80\xfc\x80\x80\x80\x80"
        "\xdf\xef\xbf\xf7\xbf\xbf\xfb\xbf\xbf\xbf\xfd\xbf\xbf\xbf\xbf",
        0),
    BAD("\xdf\xef\xbf", 1),
    BAD("\xfe", 0),
    BAD("\xff", 0),
    BAD("\xfe\xfe\xff\xff", 0),
    BAD("\xc0\xaf", 0),
    BAD("\xe0\x80\xaf", 1),
    BAD("\xf0\x80\x80\xaf", 1),
    BAD("\xf8\x80\x80\x80\xaf", 0),
    BAD("\xfc\x80\x80\x80\x80\xaf", 0),
    BAD("\xc1\xbf", 0),
    BAD("\xe0\x9f\xbf", 1),
    BAD("\xf0\x8f\xbf\xbf", 1),
    BAD("\xf8\x87\xbf\xbf\xbf", 0),
    BAD("\xfc\x83\xbf\xbf\xbf\xbf", 0),
    BAD("\xc0\x80", 0),
    BAD("\xe0\x80\x80", 1),
    BAD("\xf0\x80\x80\x80", 1),
    BAD("\xed\xa0\x80", 1),
    BAD("\xed\xad\xbf", 1),
    BAD("\xed\xae\x80", 1),
    BAD("\xed\xaf\xbf", 1),
    BAD("\xed\xb0\x80", 1),
    BAD("\xed\xbe\x80", 1),
    BAD("\xed\xbf\xbf", 1),
    BAD("\xed\xa0\x80\xed\xb0\x80", 1),
    BAD("\xed\xaf\xbf\xed\xbf\xbf", 1),
    BAD(KOSME "\xed\xa0\x80"
              "edited",
        12),
    BAD("\xc2\x41", 1),
    BAD("\xe1\x80\x41", 2),
    BAD("\xf1\x80\x80\xc0", 3),
    BAD("abc\xf5", 3),
};

/* Truncated characters: never refused, but not complete (Kuhn 3.3). */
static const u8case truncated_cases[] = {
    OK("\xdf"), OK("\xef\xbf"), OK("\xf4\x8f\xbf"), OK("\xe2\x82"), OK(KOSME "\xce"),
};

/* ---- UTF-8 tests -------------------------------------------------------------------- */

START_TEST(utf8_valid_cases_are_valid_in_every_split)
{
    for (size_t c = 0; c < NCASES(valid_cases); c++) {
        const uint8_t *s = (const uint8_t *)valid_cases[c].s;
        size_t n = valid_cases[c].n;
        ck_assert_msg(ws_utf8_valid(s, n), "case %zu", c);
        for (size_t i = 0; i <= n; i++) {
            for (size_t j = i; j <= n; j++) {
                ws_utf8 u = WS_UTF8_INIT;
                ck_assert_int_eq(ws_utf8_feed(&u, s, i), 0);
                ck_assert_int_eq(ws_utf8_feed(&u, s + i, j - i), 0);
                ck_assert_int_eq(ws_utf8_feed(&u, s + j, n - j), 0);
                ck_assert_msg(ws_utf8_complete(&u), "case %zu cut at %zu, %zu", c, i, j);
            }
        }
    }
}
END_TEST

/* Each invalid case fails exactly at its bad byte, wherever it is cut:
 * everything before that byte is accepted. */
START_TEST(utf8_invalid_cases_fail_at_the_bad_byte_in_every_split)
{
    for (size_t c = 0; c < NCASES(invalid_cases); c++) {
        const uint8_t *s = (const uint8_t *)invalid_cases[c].s;
        size_t n = invalid_cases[c].n, bad = (size_t)invalid_cases[c].fail;
        ck_assert_msg(!ws_utf8_valid(s, n), "case %zu", c);
        bool complete;
        ck_assert_msg(fail_index(s, n, &complete) == bad, "case %zu", c);
        for (size_t i = 0; i <= n; i++) {
            ws_utf8 u = WS_UTF8_INIT;
            int first = ws_utf8_feed(&u, s, i), second = ws_utf8_feed(&u, s + i, n - i);
            ck_assert_int_eq(first, i > bad ? -EILSEQ : 0);
            ck_assert_int_eq(second, -EILSEQ);
            ck_assert(!ws_utf8_complete(&u));
        }
    }
}
END_TEST

START_TEST(utf8_truncated_characters_are_pending_not_invalid)
{
    for (size_t c = 0; c < NCASES(truncated_cases); c++) {
        ws_utf8 u = WS_UTF8_INIT;
        ck_assert_int_eq(
            ws_utf8_feed(&u, (const uint8_t *)truncated_cases[c].s, truncated_cases[c].n), 0);
        ck_assert_msg(!ws_utf8_complete(&u), "case %zu", c);
        ck_assert(!ws_utf8_valid((const uint8_t *)truncated_cases[c].s, truncated_cases[c].n));
    }
}
END_TEST

/* Every prefix of a string of multi-byte characters is accepted; it is
 * complete exactly at character boundaries (Autobahn 6.2). */
START_TEST(utf8_prefixes_are_complete_only_at_boundaries)
{
    const uint8_t *s = (const uint8_t *)KOSME;
    static const bool boundary[] = {1, 0, 1, 0, 0, 1, 0, 1, 0, 1, 0, 1};
    for (size_t i = 0; i <= 11; i++) {
        ws_utf8 u = WS_UTF8_INIT;
        ck_assert_int_eq(ws_utf8_feed(&u, s, i), 0);
        ck_assert_int_eq(ws_utf8_complete(&u), boundary[i]);
    }
}
END_TEST

/* Kuhn 3.2: a lead byte followed by a space fails at the space, or at
 * itself if no character can start with it. */
START_TEST(utf8_lonely_start_bytes_fail)
{
    for (unsigned lead = 0xC0; lead <= 0xFF; lead++) {
        uint8_t s[2] = {(uint8_t)lead, 0x20};
        bool complete;
        bool never = lead <= 0xC1 || lead >= 0xF5;
        ck_assert_uint_eq(fail_index(s, 2, &complete), never ? 0 : 1);
    }
}
END_TEST

/* The validator agrees with the arithmetic reference, on where it fails
 * and on being complete, for every sequence of 1 to 3 bytes and every
 * 4-byte sequence that starts like a 4-byte character. */
START_TEST(utf8_agrees_with_reference_on_all_short_sequences)
{
    uint8_t s[4];
    for (uint32_t len = 1; len <= 3; len++) {
        for (uint32_t v = 0; v < 1u << (8 * len); v++) {
            for (uint32_t k = 0; k < len; k++)
                s[k] = (uint8_t)(v >> (8 * k));
            bool rc, vc;
            size_t r = ref_fail(s, len, &rc), f = fail_index(s, len, &vc);
            if (r != f || (r == len && rc != vc))
                ck_abort_msg("%u bytes %02x %02x %02x: ref %zu/%d, validator %zu/%d", len, s[0],
                             s[1], s[2], r, rc, f, vc);
        }
    }
    for (uint32_t v = 0; v < 5u << 20; v++) {
        s[0] = (uint8_t)(0xF0 + (v >> 20));
        s[1] = (uint8_t)(0x80 | (v >> 14 & 0x3F));
        s[2] = (uint8_t)(0x80 | (v >> 8 & 0x3F));
        s[3] = (uint8_t)v;
        bool rc, vc;
        size_t r = ref_fail(s, 4, &rc), f = fail_index(s, 4, &vc);
        if (r != f || (r == 4 && rc != vc))
            ck_abort_msg("%02x %02x %02x %02x: ref %zu, validator %zu", s[0], s[1], s[2], s[3], r,
                         f);
    }
}
END_TEST

/* Every code point encodes to valid UTF-8 except the surrogates; every
 * longer-than-needed encoding of it is invalid. */
START_TEST(utf8_every_code_point_and_its_overlong_forms)
{
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        uint8_t s[4];
        size_t n = utf8_encode(cp, s);
        bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        if (ws_utf8_valid(s, n) != !surrogate)
            ck_abort_msg("U+%04X", cp);
        if (cp < 0x80) { /* 2-byte overlong */
            uint8_t o[2] = {(uint8_t)(0xC0 | cp >> 6), (uint8_t)(0x80 | (cp & 0x3F))};
            EXPECT(!ws_utf8_valid(o, 2));
        }
        if (cp < 0x800) { /* 3-byte overlong */
            uint8_t o[3] = {0xE0, (uint8_t)(0x80 | cp >> 6), (uint8_t)(0x80 | (cp & 0x3F))};
            EXPECT(!ws_utf8_valid(o, 3));
        }
        if (cp < 0x10000) { /* 4-byte overlong */
            uint8_t o[4] = {0xF0, (uint8_t)(0x80 | cp >> 12), (uint8_t)(0x80 | (cp >> 6 & 0x3F)),
                            (uint8_t)(0x80 | (cp & 0x3F))};
            EXPECT(!ws_utf8_valid(o, 4));
        }
    }
    /* above U+10FFFF, in the 4-byte form */
    for (uint32_t cp = 0x110000; cp < 0x200000; cp += 0x1001) {
        uint8_t o[4] = {(uint8_t)(0xF0 | cp >> 18), (uint8_t)(0x80 | (cp >> 12 & 0x3F)),
                        (uint8_t)(0x80 | (cp >> 6 & 0x3F)), (uint8_t)(0x80 | (cp & 0x3F))};
        ck_assert_msg(!ws_utf8_valid(o, 4), "U+%X", cp);
    }
}
END_TEST

/* Autobahn 6.4: fail fast, when the bad byte comes, also when the text is
 * cut inside a character (6.4.3) and across fragments (6.4.2, 6.4.4). */
START_TEST(utf8_fails_fast_in_the_piece_with_the_bad_byte)
{
    ws_utf8 u = WS_UTF8_INIT;
    ck_assert_int_eq(ws_utf8_feed(&u, (const uint8_t *)KOSME, 11), 0);
    ck_assert_int_eq(ws_utf8_feed(&u, (const uint8_t *)"\xf4\x90\x80\x80", 4), -EILSEQ);

    u = WS_UTF8_INIT;
    ck_assert_int_eq(ws_utf8_feed(&u, (const uint8_t *)KOSME "\xf4", 12), 0);
    ck_assert_int_eq(ws_utf8_feed(&u, (const uint8_t *)"\x90", 1), -EILSEQ);

    u = WS_UTF8_INIT;
    ck_assert_int_eq(ws_utf8_feed(&u, (const uint8_t *)"edited\xed", 7), 0);
    ck_assert(!ws_utf8_complete(&u));
    ck_assert_int_eq(ws_utf8_feed(&u, (const uint8_t *)"\xa0\x80", 2), -EILSEQ);
    /* failed for good: valid input and empty feeds fail too */
    ck_assert_int_eq(ws_utf8_feed(&u, (const uint8_t *)"a", 1), -EILSEQ);
    ck_assert_int_eq(ws_utf8_feed(&u, NULL, 0), -EILSEQ);
}
END_TEST

/* The ASCII fast path: a non-ASCII byte at any position and alignment of a
 * long ASCII run is seen, valid or not; valid text around it still passes. */
START_TEST(utf8_word_fast_path_sees_every_position)
{
    uint8_t buf[80];
    for (size_t align = 0; align < 8; align++) {
        for (size_t at = 0; at + 2 <= 64; at++) {
            uint8_t *s = buf + align;
            memset(s, 'a', 64);
            s[at] = 0xFF;
            bool complete;
            ck_assert_uint_eq(fail_index(s, 64, &complete), at);
            ck_assert(!ws_utf8_valid(s, 64));
            s[at] = 0xC3, s[at + 1] = 0xA9; /* é */
            ck_assert(ws_utf8_valid(s, 64));
            s[at + 1] = 'a'; /* a lead byte without its continuation */
            ck_assert(!ws_utf8_valid(s, 64));
            ck_assert_uint_eq(fail_index(s, 64, &complete), at + 1);
        }
    }
}
END_TEST

/* ---- close codes, masking, encoder ---------------------------------------------------- */

/* RFC 6455 §7.4 and the IANA registry: what a peer may send. */
START_TEST(close_code_table)
{
    for (unsigned code = 0; code < 70000; code++) {
        bool expect = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                      (code >= 3000 && code <= 4999);
        if (ws_close_code_valid(code) != expect)
            ck_abort_msg("code %u", code);
    }
    /* Autobahn 7.7 (valid) and 7.9 (invalid) */
    static const unsigned ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009,
                                  1010, 1011, 3000, 3999, 4000, 4999};
    static const unsigned bad[] = {0,    999,  1004, 1005, 1006, 1015,
                                   1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < NCASES(ok); i++)
        ck_assert(ws_close_code_valid(ok[i]));
    for (size_t i = 0; i < NCASES(bad); i++)
        ck_assert(!ws_close_code_valid(bad[i]));
}
END_TEST

/* ws_mask equals the byte-wise XOR for every length, key offset and
 * alignment, and applied twice gives the input back. */
START_TEST(mask_matches_bytewise_xor)
{
    uint8_t buf[200], ref[200], orig[200];
    for (size_t i = 0; i < sizeof(orig); i++)
        orig[i] = (uint8_t)(i * 7 + 3);
    for (size_t align = 0; align < 8; align++) {
        for (size_t n = 0; n + align <= 150; n++) {
            for (uint64_t off = 0; off < 8; off++) {
                memcpy(buf + align, orig, n);
                for (size_t i = 0; i < n; i++)
                    ref[i] = orig[i] ^ KEY[(off + i) % 4];
                ws_mask(buf + align, n, KEY, off);
                EXPECT(memcmp(buf + align, ref, n) == 0);
                ws_mask(buf + align, n, KEY, off);
                EXPECT(memcmp(buf + align, orig, n) == 0);
            }
        }
    }
    /* in pieces, each with its offset in the payload */
    memcpy(buf, orig, 100);
    ws_mask(buf, 13, KEY, 0);
    ws_mask(buf + 13, 50, KEY, 13);
    ws_mask(buf + 63, 37, KEY, 63);
    for (size_t i = 0; i < 100; i++)
        ck_assert_uint_eq(buf[i], orig[i] ^ KEY[i % 4]);
}
END_TEST

START_TEST(header_length_forms)
{
    static const struct {
        uint64_t len;
        size_t hl;
        uint8_t b[10];
    } cases[] = {
        {0, 2, {0x82, 0}},
        {125, 2, {0x82, 125}},
        {126, 4, {0x82, 126, 0, 126}},
        {65535, 4, {0x82, 126, 0xff, 0xff}},
        {65536, 10, {0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
        {1ull << 32, 10, {0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0}},
        {(1ull << 63) - 1, 10, {0x82, 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
    };
    for (size_t i = 0; i < NCASES(cases); i++) {
        uint8_t h[WS_HEADER_MAX];
        size_t hl = ws_frame_header(h, WS_OP_BINARY, true, false, cases[i].len);
        ck_assert_uint_eq(hl, cases[i].hl);
        ck_assert_msg(memcmp(h, cases[i].b, hl) == 0, "length %llu",
                      (unsigned long long)cases[i].len);
    }
}
END_TEST

START_TEST(header_bits)
{
    uint8_t h[WS_HEADER_MAX];
    ck_assert_uint_eq(ws_frame_header(h, WS_OP_TEXT, true, false, 5), 2);
    ck_assert_uint_eq(h[0], 0x81);
    ck_assert_uint_eq(h[1], 5); /* never masked */
    ws_frame_header(h, WS_OP_TEXT, false, true, 5);
    ck_assert_uint_eq(h[0], 0x41);
    ws_frame_header(h, WS_OP_CONT, true, false, 0);
    ck_assert_uint_eq(h[0], 0x80);
    ws_frame_header(h, WS_OP_PONG, true, false, 125);
    ck_assert_uint_eq(h[0], 0x8A);
    ck_assert_uint_eq(h[1], 125);
}
END_TEST

START_TEST(close_payload_code_and_reason)
{
    uint8_t out[WS_CONTROL_MAX];
    ck_assert_int_eq(ws_close_payload(out, 1000, "bye", 3), 5);
    ck_assert(memcmp(out,
                     "\x03\xe8"
                     "bye",
                     5) == 0);
    ck_assert_int_eq(ws_close_payload(out, 4999, NULL, 0), 2);
    ck_assert(memcmp(out, "\x13\x87", 2) == 0);
    ck_assert_int_eq(ws_close_payload(out, 1005, "ignored", 7), 0); /* no status: empty */
    ck_assert_int_eq(ws_close_payload(out, 1006, NULL, 0), -EINVAL);
    ck_assert_int_eq(ws_close_payload(out, 999, NULL, 0), -EINVAL);
    ck_assert_int_eq(ws_close_payload(out, 1000, "\xed\xa0\x80", 3), -EINVAL);
}
END_TEST

/* A reason too long for a control frame is cut before the character that
 * would not fit whole. */
START_TEST(close_payload_cuts_a_long_reason_at_a_character)
{
    uint8_t out[WS_CONTROL_MAX];
    char reason[200];
    memset(reason, 'r', 122);
    memcpy(reason + 122, "\xe2\x82\xac", 3); /* € over bytes 122-124: does not fit in 123 */
    int n = ws_close_payload(out, 1001, reason, 125);
    ck_assert_int_eq(n, 2 + 122);
    ck_assert(ws_utf8_valid(out + 2, (size_t)n - 2));
    memset(reason, 'r', 150);
    ck_assert_int_eq(ws_close_payload(out, 1001, reason, 150), WS_CONTROL_MAX);
    memcpy(reason + 120, "\xe2\x82\xac", 3); /* ends exactly at 123: kept */
    ck_assert_int_eq(ws_close_payload(out, 1001, reason, 150), WS_CONTROL_MAX);
    ck_assert(memcmp(out + 2 + 120, "\xe2\x82\xac", 3) == 0);
}
END_TEST

/* ---- the receiver: delivery ---------------------------------------------------------- */

START_TEST(rx_single_text_frame)
{
    bytes in = {0};
    frame_str(&in, FIN | WS_OP_TEXT, "Hello");
    rec r = {0};
    ck_assert_int_eq(run(&r, &in, 0, false), 0);
    ck_assert(log_is(&r, "[T^:Hello$]"));
    ck_assert_uint_eq(r.pieces, 1);
    b_free(&in), b_free(&r.log);
}
END_TEST

/* Payload is unmasked in place, in the caller's buffer. */
START_TEST(rx_unmasks_in_place)
{
    bytes in = {0};
    frame_str(&in, FIN | WS_OP_BINARY, "in place!");
    ws_rx rx;
    ws_rx_init(&rx, false);
    rec r = {0};
    ck_assert_int_eq(ws_rx_feed(&rx, in.p, in.n, &CBS, &r), 0);
    ck_assert(memcmp(in.p + 6, "in place!", 9) == 0);
    b_free(&in), b_free(&r.log);
}
END_TEST

/* Payloads of each length form arrive whole and unmasked. */
START_TEST(rx_length_forms)
{
    static const size_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 70000};
    for (size_t i = 0; i < NCASES(lens); i++) {
        size_t n = lens[i];
        uint8_t *pl = malloc(n + 1);
        for (size_t k = 0; k < n; k++)
            pl[k] = (uint8_t)(k * 31 + i);
        bytes in = {0}, expect = {0};
        cframe(&in, FIN | WS_OP_BINARY, pl, n, KEY, LEN_MIN);
        ck_assert_uint_eq(in.n, n + 4 + (n < 126 ? 2 : n <= 65535 ? 4 : 10));
        b_put(&expect, "[B^:", 4);
        b_put(&expect, pl, n);
        b_put(&expect, "$]", 2);
        rec r = {0};
        ck_assert_int_eq(run(&r, &in, 0, false), 0);
        ck_assert(r.log.n == expect.n && memcmp(r.log.p, expect.p, expect.n) == 0);
        free(pl);
        b_free(&in), b_free(&expect), b_free(&r.log);
    }
}
END_TEST

typedef struct count {
    uint64_t bytes, pieces, msgs;
    uint64_t first_left;
} count;

static int count_data(void *ud, const ws_data *d)
{
    count *c = ud;
    if (c->pieces++ == 0)
        c->first_left = d->frame_left;
    c->bytes += d->n;
    c->msgs += d->msg_end;
    ck_assert_uint_eq(d->frame_left == 0, d->frame_end);
    return 0;
}

static int count_control(void *ud, const ws_control *c)
{
    (void)ud, (void)c;
    return 0;
}

/* A 2^32-byte frame (a zero key: the client need not mask), fed a
 * megabyte at a time: every byte is delivered and the message ends once. */
START_TEST(rx_length_2_pow_32)
{
    static const ws_rx_cbs cbs = {count_data, count_control};
    bytes in = {0};
    cframe(&in, FIN | WS_OP_BINARY, NULL, 0, KEY0, LEN_64);
    in.p[2 + 3] = 1; /* length 2^32 */
    ws_rx rx;
    ws_rx_init(&rx, false);
    count c = {0};
    ck_assert_int_eq(ws_rx_feed(&rx, in.p, in.n, &cbs, &c), 0);
    size_t chunk = 1 << 20;
    uint8_t *zero = calloc(1, chunk);
    for (uint64_t left = 1ull << 32; left; left -= chunk)
        ck_assert_int_eq(ws_rx_feed(&rx, zero, chunk, &cbs, &c), 0);
    ck_assert_uint_eq(c.bytes, 1ull << 32);
    ck_assert_uint_eq(c.first_left, (1ull << 32) - chunk);
    ck_assert_uint_eq(c.msgs, 1);
    free(zero);
    b_free(&in);
}
END_TEST

/* The largest length allowed is 2^63 - 1; its header is accepted. */
START_TEST(rx_length_2_pow_63_minus_1_is_accepted)
{
    static const ws_rx_cbs cbs = {count_data, count_control};
    bytes in = {0};
    cframe(&in, FIN | WS_OP_BINARY, NULL, 0, KEY, LEN_64);
    memset(in.p + 2, 0xff, 8);
    in.p[2] = 0x7f;
    b_put(&in, "abc", 3);
    ws_rx rx;
    ws_rx_init(&rx, false);
    count c = {0};
    ck_assert_int_eq(ws_rx_feed(&rx, in.p, in.n, &cbs, &c), 0);
    ck_assert_uint_eq(c.bytes, 3);
    ck_assert_uint_eq(c.first_left, (1ull << 63) - 4);
    b_free(&in);
}
END_TEST

/* A sender must use the shortest length form (RFC 6455 §5.2), but the
 * receiver is lenient: 16 and 64-bit forms of a short length are accepted,
 * for control frames too. */
START_TEST(rx_non_minimal_lengths_are_accepted)
{
    bytes in = {0};
    cframe(&in, FIN | WS_OP_TEXT, "sixteen", 7, KEY, LEN_16);
    cframe(&in, FIN | WS_OP_TEXT, "sixty-four", 10, KEY, LEN_64);
    cframe(&in, FIN | WS_OP_PING, "p", 1, KEY, LEN_16);
    cframe(&in, FIN | WS_OP_PONG, "q", 1, KEY, LEN_64);
    cframe(&in, FIN | WS_OP_CLOSE, "\x03\xe8", 2, KEY, LEN_16);
    rec r = {0};
    ck_assert_int_eq(run(&r, &in, 1, false), 0);
    ck_assert(log_is(&r, "[T^:sixteen$][T^:sixty-four$][C9:p][C10:q][C8 1000:\x03\xe8]"));
    b_free(&in), b_free(&r.log);
}
END_TEST

/* Fragments with pings and a pong between them: the controls are reported
 * where they came, the message goes on with its opcode. */
START_TEST(rx_fragments_with_interleaved_controls)
{
    bytes in = {0};
    frame_str(&in, WS_OP_TEXT, "frag");
    frame_str(&in, FIN | WS_OP_PING, "p1");
    frame_str(&in, WS_OP_CONT, "men");
    frame_str(&in, FIN | WS_OP_PONG, "");
    frame_str(&in, FIN | WS_OP_PING, "p2");
    frame_str(&in, FIN | WS_OP_CONT, "ted");
    frame_str(&in, FIN | WS_OP_BINARY, "next");
    rec r = {0};
    ck_assert_int_eq(run(&r, &in, 0, false), 0);
    ck_assert(log_is(&r, "[T^:frag][C9:p1][T:men][C10:][C9:p2][T:ted$][B^:next$]"));
    ck_assert_uint_eq(r.msgs, 2);
    b_free(&in), b_free(&r.log);
}
END_TEST

/* Empty frames are reported, so is an empty message, and a message made of
 * empty fragments ends with its final (empty) piece. */
START_TEST(rx_empty_frames_and_messages)
{
    bytes in = {0};
    frame_str(&in, FIN | WS_OP_TEXT, "");
    frame_str(&in, WS_OP_BINARY, "");
    frame_str(&in, WS_OP_CONT, "");
    frame_str(&in, FIN | WS_OP_PING, "");
    frame_str(&in, FIN | WS_OP_CONT, "");
    rec r = {0};
    ck_assert_int_eq(run(&r, &in, 0, false), 0);
    ck_assert(log_is(&r, "[T^:$][B^:][B:][C9:][B:$]"));
    ck_assert_uint_eq(r.pieces, 4);
    ck_assert_uint_eq(r.msgs, 2);
    b_free(&in), b_free(&r.log);
}
END_TEST

/* A control frame cut into 1-byte pieces is assembled and reported once. */
START_TEST(rx_control_frame_split_is_assembled)
{
    char pl[126];
    memset(pl, 'x', 125);
    pl[125] = 0;
    bytes in = {0};
    frame(&in, FIN | WS_OP_PING, pl, 125);
    rec r = {0};
    ck_assert_int_eq(run(&r, &in, 1, false), 0);
    ck_assert_uint_eq(r.controls, 1);
    bytes expect = {0};
    b_printf(&expect, "[C9:%s]", pl);
    b_put(&expect, "", 1);
    ck_assert(log_is(&r, (const char *)expect.p));
    b_free(&in), b_free(&expect), b_free(&r.log);
}
END_TEST

/* A stream of every kind of frame gives the same events fed whole, 1 byte
 * at a time, in pieces of several fixed sizes and of random sizes. */
START_TEST(rx_any_cut_gives_the_same_events)
{
    bytes in = {0};
    uint8_t *big = malloc(70000);
    for (size_t i = 0; i < 70000; i++)
        big[i] = (uint8_t)(i ^ (i >> 8));
    frame_str(&in, FIN | WS_OP_TEXT, "Hello");
    frame(&in, WS_OP_BINARY, big, 0);
    frame_str(&in, FIN | WS_OP_PING, "ping");
    frame(&in, WS_OP_CONT, big, 126);
    cframe(&in, FIN | WS_OP_PONG, "pong", 4, KEY0, LEN_MIN);
    frame(&in, WS_OP_CONT, big, 70000);
    cframe(&in, FIN | WS_OP_CONT, big + 5, 10, KEY, LEN_64);
    frame_str(&in, FIN | WS_OP_TEXT, "");
    frame(&in, FIN | WS_OP_TEXT, big, 65535);
    frame(&in, FIN | WS_OP_BINARY, big + 1, 65536);
    frame(&in, FIN | WS_OP_PING, big, 125);
    frame(&in, FIN | WS_OP_CLOSE,
          "\x03\xe8"
          "bye",
          5);
    rec whole = {0};
    ck_assert_int_eq(run(&whole, &in, 0, false), 0);
    ck_assert_uint_eq(whole.msgs, 5);
    ck_assert_uint_eq(whole.controls, 4);
    static const size_t chunks[] = {1, 2, 3, 5, 7, 13, 14, 1000, 4096, SIZE_MAX};
    for (size_t i = 0; i < NCASES(chunks); i++) {
        rec r = {0};
        ck_assert_int_eq(run(&r, &in, chunks[i], false), 0);
        ck_assert_msg(r.log.n == whole.log.n && memcmp(r.log.p, whole.log.p, r.log.n) == 0,
                      "pieces of %zu", chunks[i]);
        ck_assert_uint_eq(r.msgs, whole.msgs);
        ck_assert_uint_eq(r.controls, whole.controls);
        if (chunks[i] == 1) /* one piece per payload byte, plus the empty frames */
            ck_assert_uint_eq(r.pieces, 5 + 126 + 70000 + 10 + 65535 + 65536 + 2);
        b_free(&r.log);
    }
    free(big);
    b_free(&in), b_free(&whole.log);
}
END_TEST

/* 50,000 one-byte fragments: one piece each, one message, no limit. */
START_TEST(rx_fifty_thousand_one_byte_fragments)
{
    enum { N = 50000 };
    bytes in = {0}, expect = {0};
    for (size_t i = 0; i < N; i++) {
        uint8_t c = (uint8_t)('a' + i % 26);
        uint8_t b0 = (uint8_t)((i == 0 ? WS_OP_TEXT : WS_OP_CONT) | (i == N - 1 ? FIN : 0));
        cframe(&in, b0, &c, 1, KEY, LEN_MIN);
        b_put(&expect, i == 0 ? "[T^:" : "[T:", i == 0 ? 4 : 3);
        b_put(&expect, &c, 1);
        b_put(&expect, i == N - 1 ? "$]" : "]", i == N - 1 ? 2 : 1);
    }
    ck_assert_uint_eq(in.n, 7 * N);
    for (size_t chunk = 0; chunk <= 1; chunk++) {
        rec r = {0};
        ck_assert_int_eq(run(&r, &in, chunk, false), 0);
        ck_assert_uint_eq(r.pieces, N);
        ck_assert_uint_eq(r.msgs, 1);
        ck_assert(r.log.n == expect.n && memcmp(r.log.p, expect.p, expect.n) == 0);
        b_free(&r.log);
    }
    b_free(&in), b_free(&expect);
}
END_TEST

/* 50,000 empty fragments: as many empty pieces and one message end. */
START_TEST(rx_fifty_thousand_empty_fragments)
{
    enum { N = 50000 };
    bytes in = {0};
    for (size_t i = 0; i < N; i++)
        frame(&in, (uint8_t)((i == 0 ? WS_OP_BINARY : WS_OP_CONT) | (i == N - 1 ? FIN : 0)), "", 0);
    rec r = {0};
    ck_assert_int_eq(run(&r, &in, 0, false), 0);
    ck_assert_uint_eq(r.pieces, N);
    ck_assert_uint_eq(r.msgs, 1);
    b_free(&in), b_free(&r.log);
}
END_TEST

START_TEST(rx_rsv1_marks_a_compressed_message_when_negotiated)
{
    bytes in = {0};
    frame_str(&in, RSV1 | WS_OP_TEXT, "zz");
    frame_str(&in, FIN | WS_OP_PING, "");
    frame_str(&in, FIN | WS_OP_CONT, "zz");
    frame_str(&in, FIN | WS_OP_BINARY, "plain");
    rec r = {0};
    ck_assert_int_eq(run(&r, &in, 0, true), 0);
    ck_assert(log_is(&r, "[Tz^:zz][C9:][Tz:zz$][B^:plain$]"));
    b_free(&in), b_free(&r.log);
}
END_TEST

START_TEST(rx_close_frames)
{
    bytes in = {0};
    frame(&in, FIN | WS_OP_CLOSE, "", 0);
    rec r = {0};
    ck_assert_int_eq(run(&r, &in, 0, false), 0);
    ck_assert(log_is(&r, "[C8 1005:]"));
    b_free(&in), b_free(&r.log);

    frame(&in, FIN | WS_OP_CLOSE,
          "\x0f\xa0"
          "r\xc3\xa9son",
          8); /* 4000 */
    r = (rec){0};
    ck_assert_int_eq(run(&r, &in, 1, false), 0);
    ck_assert(log_is(&r, "[C8 4000:\x0f\xa0r\xc3\xa9son]"));
    b_free(&in), b_free(&r.log);
}
END_TEST

/* Nothing counts after a close frame: the rest is not reported, also in
 * later feeds. */
START_TEST(rx_ignores_what_follows_a_close)
{
    bytes in = {0};
    frame(&in, FIN | WS_OP_CLOSE, "\x03\xe8", 2);
    frame_str(&in, FIN | WS_OP_TEXT, "after");
    b_put(&in, "\x00garbage", 8);
    rec r = {0};
    ck_assert_int_eq(run(&r, &in, 0, false), 0);
    ck_assert_int_eq(run(&r, &in, 3, false), 0);
    ck_assert(log_is(&r, "[C8 1000:\x03\xe8][C8 1000:\x03\xe8]"));
    ck_assert_uint_eq(r.pieces, 0);
    b_free(&in), b_free(&r.log);
}
END_TEST

/* Every close code through the receiver: accepted ones are reported, the
 * others fail the connection with 1002. */
START_TEST(rx_close_code_validation)
{
    for (unsigned code = 0; code < 65536; code += (code < 5100 ? 1 : 97)) {
        uint8_t pl[2] = {(uint8_t)(code >> 8), (uint8_t)code};
        bytes in = {0};
        frame(&in, FIN | WS_OP_CLOSE, pl, 2);
        rec r = {0};
        int rc = run(&r, &in, 0, false);
        if (ws_close_code_valid(code)) {
            ck_assert_int_eq(rc, 0);
            ck_assert_uint_eq(r.controls, 1);
        } else {
            ck_assert_int_eq(rc, WS_CLOSE_PROTOCOL);
            ck_assert_uint_eq(r.controls, 0);
        }
        b_free(&in), b_free(&r.log);
    }
}
END_TEST

/* ---- the receiver: violations ---------------------------------------------------------- */

START_TEST(rx_unmasked_frame_is_1002)
{
    bytes in = {0};
    b_put(&in, "\x81\x05hello", 7);
    ck_assert_int_eq(violation(&in, false), WS_CLOSE_PROTOCOL);
    b_free(&in);
    b_put(&in, "\x89\x00", 2); /* an unmasked empty ping too */
    ck_assert_int_eq(violation(&in, false), WS_CLOSE_PROTOCOL);
    b_free(&in);
}
END_TEST

START_TEST(rx_rsv1_without_deflate_is_1002)
{
    bytes in = {0};
    frame_str(&in, FIN | RSV1 | WS_OP_TEXT, "x");
    ck_assert_int_eq(violation(&in, false), WS_CLOSE_PROTOCOL);
    b_free(&in);
}
END_TEST

START_TEST(rx_rsv1_on_a_continuation_is_1002)
{
    bytes in = {0};
    frame_str(&in, RSV1 | WS_OP_TEXT, "x");
    frame_str(&in, FIN | RSV1 | WS_OP_CONT, "y");
    ck_assert_int_eq(violation(&in, true), WS_CLOSE_PROTOCOL);
    b_free(&in);
    frame_str(&in, WS_OP_BINARY, "x"); /* uncompressed message, compressed continuation */
    frame_str(&in, FIN | RSV1 | WS_OP_CONT, "y");
    ck_assert_int_eq(violation(&in, true), WS_CLOSE_PROTOCOL);
    b_free(&in);
}
END_TEST

START_TEST(rx_rsv1_on_a_control_frame_is_1002)
{
    static const uint8_t ops[] = {WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
    for (size_t i = 0; i < NCASES(ops); i++) {
        bytes in = {0};
        frame(&in, FIN | RSV1 | ops[i], "", 0);
        ck_assert_int_eq(violation(&in, true), WS_CLOSE_PROTOCOL);
        b_free(&in);
    }
}
END_TEST

START_TEST(rx_rsv2_rsv3_are_1002)
{
    static const uint8_t bits[] = {RSV2, RSV3, RSV2 | RSV3, RSV1 | RSV2};
    static const uint8_t ops[] = {WS_OP_TEXT, WS_OP_BINARY, WS_OP_PING};
    for (size_t i = 0; i < NCASES(bits); i++) {
        for (size_t k = 0; k < NCASES(ops); k++) {
            for (int deflate = 0; deflate <= 1; deflate++) {
                bytes in = {0};
                frame_str(&in, FIN | bits[i] | ops[k], "x");
                ck_assert_int_eq(violation(&in, deflate), WS_CLOSE_PROTOCOL);
                b_free(&in);
            }
        }
    }
}
END_TEST

START_TEST(rx_unknown_opcodes_are_1002)
{
    static const uint8_t ops[] = {3, 4, 5, 6, 7, 11, 12, 13, 14, 15};
    for (size_t i = 0; i < NCASES(ops); i++) {
        bytes in = {0};
        frame_str(&in, FIN | WS_OP_TEXT, "before");
        frame_str(&in, FIN | ops[i], "");
        frame_str(&in, FIN | WS_OP_TEXT, "after");
        rec r = {0};
        ck_assert_int_eq(run(&r, &in, 0, false), WS_CLOSE_PROTOCOL);
        ck_assert(log_is(&r, "[T^:before$]")); /* nothing after the bad frame */
        b_free(&in), b_free(&r.log);
        /* unknown data opcodes inside a fragmented message too */
        frame_str(&in, WS_OP_TEXT, "a");
        frame_str(&in, ops[i], "");
        ck_assert_int_eq(violation(&in, false), WS_CLOSE_PROTOCOL);
        b_free(&in);
    }
}
END_TEST

START_TEST(rx_control_frame_over_125_is_1002)
{
    char pl[200] = {0};
    static const uint8_t ops[] = {WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
    for (size_t i = 0; i < NCASES(ops); i++) {
        bytes in = {0};
        frame(&in, FIN | ops[i], pl, 126);
        ck_assert_int_eq(violation(&in, false), WS_CLOSE_PROTOCOL);
        b_free(&in);
        cframe(&in, FIN | ops[i], pl, 126, KEY, LEN_64);
        ck_assert_int_eq(violation(&in, false), WS_CLOSE_PROTOCOL);
        b_free(&in);
        cframe(&in, FIN | ops[i], NULL, 0, KEY, LEN_64); /* 2^56: refused at the header */
        in.p[2] = 1;
        ck_assert_int_eq(violation(&in, false), WS_CLOSE_PROTOCOL);
        b_free(&in);
    }
}
END_TEST

START_TEST(rx_fragmented_control_frame_is_1002)
{
    static const uint8_t ops[] = {WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
    for (size_t i = 0; i < NCASES(ops); i++) {
        bytes in = {0};
        frame(&in, ops[i], "", 0);
        ck_assert_int_eq(violation(&in, false), WS_CLOSE_PROTOCOL);
        b_free(&in);
    }
}
END_TEST

START_TEST(rx_continuation_without_a_message_is_1002)
{
    bytes in = {0};
    frame_str(&in, FIN | WS_OP_CONT, "x");
    ck_assert_int_eq(violation(&in, false), WS_CLOSE_PROTOCOL);
    b_free(&in);
    frame_str(&in, FIN | WS_OP_TEXT, "done"); /* after a finished message */
    frame_str(&in, WS_OP_CONT, "x");
    ck_assert_int_eq(violation(&in, false), WS_CLOSE_PROTOCOL);
    b_free(&in);
}
END_TEST

START_TEST(rx_new_message_inside_a_fragmented_one_is_1002)
{
    static const uint8_t ops[] = {WS_OP_TEXT, WS_OP_BINARY};
    for (size_t i = 0; i < 2; i++) {
        for (size_t k = 0; k < 2; k++) {
            bytes in = {0};
            frame_str(&in, ops[i], "start");
            frame_str(&in, FIN | WS_OP_PING, "");
            frame_str(&in, FIN | ops[k], "other");
            ck_assert_int_eq(violation(&in, false), WS_CLOSE_PROTOCOL);
            b_free(&in);
        }
    }
}
END_TEST

START_TEST(rx_64_bit_length_with_top_bit_is_1002)
{
    bytes in = {0};
    cframe(&in, FIN | WS_OP_BINARY, NULL, 0, KEY, LEN_64);
    in.p[2] = 0x80;
    ck_assert_int_eq(violation(&in, false), WS_CLOSE_PROTOCOL);
    b_free(&in);
}
END_TEST

START_TEST(rx_close_with_one_byte_is_1002)
{
    bytes in = {0};
    frame(&in, FIN | WS_OP_CLOSE, "\x03", 1);
    ck_assert_int_eq(violation(&in, false), WS_CLOSE_PROTOCOL);
    b_free(&in);
    cframe(&in, FIN | WS_OP_CLOSE, "\x03", 1, KEY, LEN_16);
    ck_assert_int_eq(violation(&in, false), WS_CLOSE_PROTOCOL);
    b_free(&in);
}
END_TEST

/* Autobahn 7.5.1: a close reason that is not UTF-8 is 1007. */
START_TEST(rx_close_reason_not_utf8_is_1007)
{
    bytes in = {0};
    frame(&in, FIN | WS_OP_CLOSE,
          "\x03\xe8" KOSME "\xed\xa0\x80"
          "edited",
          2 + 11 + 3 + 6);
    rec r = {0};
    ck_assert_int_eq(run(&r, &in, 0, false), WS_CLOSE_INVALID_DATA);
    ck_assert_uint_eq(r.controls, 0);
    b_free(&in), b_free(&r.log);
    frame(&in, FIN | WS_OP_CLOSE, "\x03\xe8\xe2\x82", 4); /* a truncated character */
    ck_assert_int_eq(violation(&in, false), WS_CLOSE_INVALID_DATA);
    b_free(&in);
}
END_TEST

/* A violation is seen at the byte that makes it one: with nothing else fed,
 * the first header byte or the second fails at once. */
START_TEST(rx_violation_is_reported_at_its_byte)
{
    ws_rx rx;
    rec r = {0};
    uint8_t b = 0x83; /* unknown opcode */
    ws_rx_init(&rx, false);
    ck_assert_int_eq(ws_rx_feed(&rx, &b, 1, &CBS, &r), WS_CLOSE_PROTOCOL);
    uint8_t h[2] = {0x81, 0x05}; /* unmasked */
    ws_rx_init(&rx, false);
    ck_assert_int_eq(ws_rx_feed(&rx, h, 1, &CBS, &r), 0);
    ck_assert_int_eq(ws_rx_feed(&rx, h + 1, 1, &CBS, &r), WS_CLOSE_PROTOCOL);
    b_free(&r.log);
}
END_TEST

/* Once failed, the receiver stays failed: later feeds return the same
 * code and report nothing. */
START_TEST(rx_failure_is_sticky)
{
    bytes bad = {0}, good = {0};
    frame_str(&bad, FIN | WS_OP_CONT, "x");
    frame_str(&good, FIN | WS_OP_TEXT, "fine");
    ws_rx rx;
    ws_rx_init(&rx, false);
    rec r = {0};
    ck_assert_int_eq(ws_rx_feed(&rx, bad.p, bad.n, &CBS, &r), WS_CLOSE_PROTOCOL);
    ck_assert_int_eq(ws_rx_feed(&rx, good.p, good.n, &CBS, &r), WS_CLOSE_PROTOCOL);
    ck_assert_int_eq(ws_rx_feed(&rx, NULL, 0, &CBS, &r), WS_CLOSE_PROTOCOL);
    ck_assert_uint_eq(r.pieces, 0);
    b_free(&bad), b_free(&good), b_free(&r.log);
}
END_TEST

/* A callback's non-zero return (the caller's 1009, 1007...) stops the feed
 * there and is returned, now and later. */
START_TEST(rx_callback_return_stops_the_feed)
{
    bytes in = {0};
    frame_str(&in, FIN | WS_OP_TEXT, "one");
    frame_str(&in, FIN | WS_OP_TEXT, "two");
    frame_str(&in, FIN | WS_OP_TEXT, "three");
    rec r = {.stop_at_piece = 2, .stop_code = WS_CLOSE_TOO_BIG};
    ck_assert_int_eq(run(&r, &in, 0, false), WS_CLOSE_TOO_BIG);
    ck_assert(log_is(&r, "[T^:one$][T^:two$]"));
    b_free(&r.log);

    r = (rec){.control_code = -ENOMEM};
    bytes ping = {0};
    frame_str(&ping, FIN | WS_OP_PING, "");
    b_put(&ping, in.p, in.n);
    ck_assert_int_eq(run(&r, &ping, 0, false), -ENOMEM);
    ck_assert_uint_eq(r.pieces, 0);
    b_free(&in), b_free(&ping), b_free(&r.log);
}
END_TEST

/* Every violation is found wherever the input is cut. */
START_TEST(rx_violations_in_one_byte_pieces)
{
    bytes in = {0};
    frame_str(&in, WS_OP_TEXT, "ab");
    frame(&in, FIN | WS_OP_PING, "\0\0\0", 3);
    frame_str(&in, FIN | WS_OP_TEXT, "x"); /* new message inside the fragmented one */
    rec r = {0};
    ck_assert_int_eq(run(&r, &in, 1, false), WS_CLOSE_PROTOCOL);
    ck_assert_uint_eq(r.controls, 1);
    b_free(&in), b_free(&r.log);

    cframe(&in, FIN | WS_OP_BINARY, NULL, 0, KEY, LEN_64);
    in.p[2] = 0xff;
    r = (rec){0};
    ck_assert_int_eq(run(&r, &in, 1, false), WS_CLOSE_PROTOCOL);
    b_free(&in), b_free(&r.log);
}
END_TEST

/* ---- encoder round trips ---------------------------------------------------------------- */

/* A server frame from the encoder, masked the way a client does (mask bit,
 * key after the header, payload XORed), fed back: the same frame comes out. */
static void round_trip(unsigned op, bool fin, bool rsv1, const uint8_t *pl, size_t n, bytes *in)
{
    uint8_t h[WS_HEADER_MAX];
    size_t hl = ws_frame_header(h, op, fin, rsv1, n);
    h[1] |= 0x80;
    b_put(in, h, hl);
    b_put(in, KEY, 4);
    for (size_t i = 0; i < n; i++) { /* not ws_mask: the receiver uses it */
        uint8_t c = pl[i] ^ KEY[i % 4];
        b_put(in, &c, 1);
    }
}

START_TEST(encoder_round_trips)
{
    static const size_t lens[] = {0, 1, 125, 126, 65535, 65536, 100000};
    uint8_t *pl = malloc(100001); /* the continuation starts 1 byte in */
    for (size_t i = 0; i < 100001; i++)
        pl[i] = (uint8_t)(i * 13);
    for (size_t i = 0; i < NCASES(lens); i++) {
        for (int rsv1 = 0; rsv1 <= 1; rsv1++) {
            bytes in = {0}, expect = {0};
            round_trip(WS_OP_BINARY, false, rsv1, pl, lens[i], &in);
            round_trip(WS_OP_PING, true, false, pl, 7, &in);
            round_trip(WS_OP_CONT, true, false, pl + 1, lens[i], &in);
            b_put(&expect, rsv1 ? "[Bz^:" : "[B^:", rsv1 ? 5 : 4);
            b_put(&expect, pl, lens[i]);
            b_put(&expect, "][C9:", 5);
            b_put(&expect, pl, 7);
            b_put(&expect, rsv1 ? "][Bz:" : "][B:", rsv1 ? 5 : 4);
            b_put(&expect, pl + 1, lens[i]);
            b_put(&expect, "$]", 2);
            rec r = {0};
            ck_assert_int_eq(run(&r, &in, 0, true), 0);
            ck_assert(r.log.n == expect.n && memcmp(r.log.p, expect.p, expect.n) == 0);
            b_free(&in), b_free(&expect), b_free(&r.log);
        }
    }
    free(pl);
}
END_TEST

START_TEST(encoder_close_round_trip)
{
    uint8_t pl[WS_CONTROL_MAX];
    int n = ws_close_payload(pl, 4321, "na\xc3\xafve", 6);
    ck_assert_int_eq(n, 8);
    bytes in = {0};
    round_trip(WS_OP_CLOSE, true, false, pl, (size_t)n, &in);
    rec r = {0};
    ck_assert_int_eq(run(&r, &in, 1, false), 0);
    ck_assert(log_is(&r, "[C8 4321:\x10\xe1na\xc3\xafve]"));
    b_free(&in), b_free(&r.log);
}
END_TEST

/* Feeds one copy of the bytes of b into rx. */
static int feed_copy(ws_rx *rx, const bytes *b, rec *r)
{
    uint8_t *copy = malloc(b->n);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, b->p, b->n);
    int rc = ws_rx_feed(rx, copy, b->n, &CBS, r);
    free(copy);
    return rc;
}

/* Regression: the receiver stayed "inside a message" after the first whole
 * message, so a connection never gave its receive/send state back and every
 * idle connection that had once spoken kept ~5 KiB. Idle means between
 * messages: not in a frame, not between the fragments of a message. */
START_TEST(rx_idle_between_messages_only)
{
    rec r = {0};
    ws_rx rx;
    ws_rx_init(&rx, false);
    ck_assert(ws_rx_idle(&rx));
    bytes b = {0};
    frame_str(&b, 0x81, "whole");
    ck_assert_int_eq(feed_copy(&rx, &b, &r), 0);
    ck_assert(ws_rx_idle(&rx));
    b_free(&b);
    frame_str(&b, 0x01, "frag"); /* a first fragment */
    ck_assert_int_eq(feed_copy(&rx, &b, &r), 0);
    ck_assert(!ws_rx_idle(&rx));
    b_free(&b);
    frame_str(&b, 0x89, "ping"); /* a control frame inside the message */
    ck_assert_int_eq(feed_copy(&rx, &b, &r), 0);
    ck_assert(!ws_rx_idle(&rx));
    b_free(&b);
    frame_str(&b, 0x80, "ment"); /* the last fragment */
    ck_assert_int_eq(feed_copy(&rx, &b, &r), 0);
    ck_assert(ws_rx_idle(&rx));
    b_free(&b);
    frame_str(&b, 0x82, "partial frame");
    bytes half = {0};
    b_put(&half, b.p, b.n - 3);
    ck_assert_int_eq(feed_copy(&rx, &half, &r), 0);
    ck_assert(!ws_rx_idle(&rx));
    b_free(&b);
    b_free(&half);
    ck_assert_int_eq(r.msgs, 2);
    b_free(&r.log);
}
END_TEST

static Suite *ws_frame_suite(void)
{
    Suite *s = suite_create("ws_frame");
    T_CASE(s, utf8_valid_cases_are_valid_in_every_split, 10);
    T_CASE(s, utf8_invalid_cases_fail_at_the_bad_byte_in_every_split, 10);
    T_CASE(s, utf8_truncated_characters_are_pending_not_invalid, 10);
    T_CASE(s, utf8_prefixes_are_complete_only_at_boundaries, 10);
    T_CASE(s, utf8_lonely_start_bytes_fail, 10);
    T_CASE(s, utf8_agrees_with_reference_on_all_short_sequences, 120);
    T_CASE(s, utf8_every_code_point_and_its_overlong_forms, 60);
    T_CASE(s, utf8_fails_fast_in_the_piece_with_the_bad_byte, 10);
    T_CASE(s, utf8_word_fast_path_sees_every_position, 10);
    T_CASE(s, close_code_table, 10);
    T_CASE(s, mask_matches_bytewise_xor, 10);
    T_CASE(s, header_length_forms, 10);
    T_CASE(s, header_bits, 10);
    T_CASE(s, close_payload_code_and_reason, 10);
    T_CASE(s, close_payload_cuts_a_long_reason_at_a_character, 10);
    T_CASE(s, rx_single_text_frame, 10);
    T_CASE(s, rx_unmasks_in_place, 10);
    T_CASE(s, rx_length_forms, 10);
    T_CASE(s, rx_length_2_pow_32, 120);
    T_CASE(s, rx_length_2_pow_63_minus_1_is_accepted, 10);
    T_CASE(s, rx_non_minimal_lengths_are_accepted, 10);
    T_CASE(s, rx_fragments_with_interleaved_controls, 10);
    T_CASE(s, rx_empty_frames_and_messages, 10);
    T_CASE(s, rx_control_frame_split_is_assembled, 10);
    T_CASE(s, rx_any_cut_gives_the_same_events, 60);
    T_CASE(s, rx_fifty_thousand_one_byte_fragments, 60);
    T_CASE(s, rx_fifty_thousand_empty_fragments, 60);
    T_CASE(s, rx_rsv1_marks_a_compressed_message_when_negotiated, 10);
    T_CASE(s, rx_close_frames, 10);
    T_CASE(s, rx_ignores_what_follows_a_close, 10);
    T_CASE(s, rx_close_code_validation, 30);
    T_CASE(s, rx_unmasked_frame_is_1002, 10);
    T_CASE(s, rx_rsv1_without_deflate_is_1002, 10);
    T_CASE(s, rx_rsv1_on_a_continuation_is_1002, 10);
    T_CASE(s, rx_rsv1_on_a_control_frame_is_1002, 10);
    T_CASE(s, rx_rsv2_rsv3_are_1002, 10);
    T_CASE(s, rx_unknown_opcodes_are_1002, 10);
    T_CASE(s, rx_control_frame_over_125_is_1002, 10);
    T_CASE(s, rx_fragmented_control_frame_is_1002, 10);
    T_CASE(s, rx_continuation_without_a_message_is_1002, 10);
    T_CASE(s, rx_new_message_inside_a_fragmented_one_is_1002, 10);
    T_CASE(s, rx_64_bit_length_with_top_bit_is_1002, 10);
    T_CASE(s, rx_close_with_one_byte_is_1002, 10);
    T_CASE(s, rx_close_reason_not_utf8_is_1007, 10);
    T_CASE(s, rx_violation_is_reported_at_its_byte, 10);
    T_CASE(s, rx_failure_is_sticky, 10);
    T_CASE(s, rx_callback_return_stops_the_feed, 10);
    T_CASE(s, rx_violations_in_one_byte_pieces, 10);
    T_CASE(s, rx_idle_between_messages_only, 10);
    T_CASE(s, encoder_round_trips, 30);
    T_CASE(s, encoder_close_round_trip, 10);
    return s;
}

T_MAIN(ws_frame_suite)
