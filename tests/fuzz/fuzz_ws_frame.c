/*
 * fuzz_ws_frame.c - libFuzzer harness for the WebSocket frame layer
 * (proto/ws_frame.c): arbitrary bytes as a client's stream into ws_rx, and
 * as text into the UTF-8 validator.
 *
 * Input: byte 0 says whether permessage-deflate was negotiated (bit 0);
 * bytes 1-2 where to cut the stream in two; the rest is the stream. It is
 * fed three ways (whole, cut in two, one byte at a time), each into a fresh
 * receiver, and checked:
 *   - every way gives the same events (pieces of a frame joined) and the
 *     same result;
 *   - every piece is consistent: the message's opcode, frame_left and
 *     frame_end, msg_start and msg_end in order, RSV1 only when negotiated;
 *     control payloads at most 125 bytes, close codes valid, reasons UTF-8;
 *   - the UTF-8 of each text message, validated piece by piece as the
 *     server will, fails in the piece that holds the first bad byte of the
 *     whole message, and ends complete exactly when the whole is valid;
 *     where that first bad byte is agrees with an arithmetic reference;
 *   - each control frame, encoded again as a server frame and masked as a
 *     client would, comes back the same from a fresh receiver.
 * The stream itself also goes through the validator whole, cut in two and
 * byte by byte, which must agree with each other and with the reference.
 *
 *   CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCORIO_FUZZ=ON \
 *       -DCORIO_SANITIZE=address,undefined
 *   cmake --build build-fuzz --target fuzz_ws_frame
 *   ./build-fuzz/tests/fuzz_ws_frame -max_total_time=600 -dict=tests/fuzz/ws_frame.dict \
 *       corpus-dir tests/fuzz/corpus/ws_frame
 */
#include "ws_frame.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void put(bytes *b, const void *p, size_t n)
{
    if (b->cap - b->n < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->n < n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            abort();
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, p, n);
    b->n += n;
}

/* The index of the first byte at which p stops being a prefix of valid
 * UTF-8, or n; *complete: it ends on a character boundary. By the
 * validator, byte by byte. */
static size_t utf8_fail_index(const uint8_t *p, size_t n, bool *complete)
{
    ws_utf8 u = WS_UTF8_INIT;
    for (size_t i = 0; i < n; i++) {
        if (ws_utf8_feed(&u, p + i, 1) != 0) {
            *complete = false;
            return i;
        }
    }
    *complete = ws_utf8_complete(&u);
    return n;
}

/* Whether a character whose bits so far are cp, rest_bits to come, can
 * still become a valid code point of at least min (its shortest form). */
static bool ref_viable(uint32_t cp, unsigned rest_bits, uint32_t min)
{
    uint32_t lo = cp << rest_bits, hi = lo | ((1u << rest_bits) - 1);
    lo = lo < min ? min : lo;
    hi = hi > 0x10FFFF ? 0x10FFFF : hi;
    return lo <= hi && !(lo >= 0xD800 && hi <= 0xDFFF);
}

/* The same by arithmetic on code points, independent of the validator. */
static size_t ref_fail_index(const uint8_t *p, size_t n, bool *complete)
{
    *complete = true;
    for (size_t i = 0; i < n;) {
        uint8_t b = p[i];
        unsigned len = b < 0x80             ? 1
                       : (b & 0xE0) == 0xC0 ? 2
                       : (b & 0xF0) == 0xE0 ? 3
                       : (b & 0xF8) == 0xF0 ? 4
                                            : 0;
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (len == 0)
            return i;
        uint32_t cp = b & (0x7F >> (len == 1 ? 0 : len));
        if (!ref_viable(cp, 6 * (len - 1), min[len]))
            return i;
        for (unsigned k = 1; k < len; k++) {
            if (i + k == n) {
                *complete = false;
                return n;
            }
            if ((p[i + k] & 0xC0) != 0x80)
                return i + k;
            cp = cp << 6 | (p[i + k] & 0x3F);
            if (!ref_viable(cp, 6 * (len - 1 - k), min[len]))
                return i + k;
        }
        i += len;
    }
    return n;
}

/* The validator byte by byte and the reference agree; returns the index. */
static size_t utf8_checked_fail_index(const uint8_t *p, size_t n, bool *complete)
{
    bool ref_complete;
    size_t f = utf8_fail_index(p, n, complete);
    CHECK(f == ref_fail_index(p, n, &ref_complete));
    CHECK(f < n || *complete == ref_complete);
    return f;
}

typedef struct run {
    bool deflate;
    bytes log; /* the events, a frame's pieces joined */
    bool in_frame, in_msg;
    uint8_t op;
    bool compressed;
    /* the text message in progress, validated piece by piece */
    bytes msg;
    ws_utf8 u;
    bool failed;
    size_t fail_lo, fail_hi; /* the piece that failed, as offsets in msg */
} run;

static const uint8_t KEY[4] = {0xa5, 0x3c, 0x0f, 0x71};

static int round_trip_data(void *ud, const ws_data *d);
static int round_trip_control(void *ud, const ws_control *c);

/* A control frame, encoded as a server frame and masked as a client would,
 * comes back the same. */
static void round_trip(const ws_control *c)
{
    uint8_t buf[WS_HEADER_MAX + 4 + WS_CONTROL_MAX];
    size_t hl = ws_frame_header(buf, c->op, true, false, c->n);
    CHECK(hl == 2);
    buf[1] |= 0x80;
    memcpy(buf + hl, KEY, 4);
    memcpy(buf + hl + 4, c->p, c->n);
    ws_mask(buf + hl + 4, c->n, KEY, 0);
    static const ws_rx_cbs cbs = {round_trip_data, round_trip_control};
    ws_rx rx;
    ws_rx_init(&rx, false);
    ws_control back = {0};
    CHECK(ws_rx_feed(&rx, buf, hl + 4 + c->n, &cbs, &back) == 0);
    CHECK(back.op == c->op && back.n == c->n && back.code == c->code);
    CHECK(c->n == 0 || memcmp(back.p, c->p, c->n) == 0);
}

static int round_trip_data(void *ud, const ws_data *d)
{
    (void)ud, (void)d;
    abort(); /* only a control frame was fed */
}

static int round_trip_control(void *ud, const ws_control *c)
{
    *(ws_control *)ud = *c; /* c->p points into round_trip's buffer, still alive */
    return 0;
}

static void text_piece(run *r, const ws_data *d)
{
    if (!r->failed && ws_utf8_feed(&r->u, d->p, d->n) != 0) {
        r->failed = true;
        r->fail_lo = r->msg.n;
        r->fail_hi = r->msg.n + d->n;
    }
    put(&r->msg, d->p, d->n);
    if (!d->msg_end)
        return;
    bool complete;
    size_t f = utf8_checked_fail_index(r->msg.p, r->msg.n, &complete);
    if (r->failed) {
        CHECK(f >= r->fail_lo && f < r->fail_hi); /* failed fast, in the right piece */
        CHECK(!ws_utf8_valid(r->msg.p, r->msg.n));
    } else {
        CHECK(f == r->msg.n);
        CHECK(ws_utf8_complete(&r->u) == complete);
        CHECK(ws_utf8_valid(r->msg.p, r->msg.n) == complete);
    }
}

static int on_data(void *ud, const ws_data *d)
{
    run *r = ud;
    CHECK(d->op == WS_OP_TEXT || d->op == WS_OP_BINARY);
    CHECK(d->p != NULL);
    CHECK(d->frame_end == (d->frame_left == 0));
    CHECK(!d->msg_end || d->frame_end);
    CHECK(d->msg_start == !r->in_msg);
    CHECK(!d->compressed || r->deflate);
    if (r->in_msg)
        CHECK(d->op == r->op && d->compressed == r->compressed);
    if (d->msg_start) {
        r->msg.n = 0;
        r->u = WS_UTF8_INIT;
        r->failed = false;
    }
    if (!r->in_frame) {
        uint8_t h[4] = {'[', d->op, d->compressed, d->msg_start};
        put(&r->log, h, 4);
    }
    put(&r->log, d->p, d->n);
    if (d->frame_end)
        put(&r->log, d->msg_end ? "$]" : "]", d->msg_end ? 2 : 1);
    r->in_frame = !d->frame_end;
    r->in_msg = !d->msg_end;
    r->op = d->op;
    r->compressed = d->compressed;
    if (d->op == WS_OP_TEXT && !d->compressed)
        text_piece(r, d);
    return 0;
}

static int on_control(void *ud, const ws_control *c)
{
    run *r = ud;
    CHECK(!r->in_frame);
    CHECK(c->op == WS_OP_CLOSE || c->op == WS_OP_PING || c->op == WS_OP_PONG);
    CHECK(c->n <= WS_CONTROL_MAX && c->p != NULL);
    if (c->op == WS_OP_CLOSE) {
        if (c->n == 0) {
            CHECK(c->code == WS_CLOSE_NO_STATUS);
        } else {
            CHECK(c->n >= 2 && ws_close_code_valid(c->code));
            CHECK(c->code == (c->p[0] << 8 | c->p[1]));
            CHECK(c->reason == c->p + 2 && c->reason_len == c->n - 2);
            CHECK(ws_utf8_valid(c->reason, c->reason_len));
            uint8_t pl[WS_CONTROL_MAX];
            CHECK(ws_close_payload(pl, c->code, c->reason, c->reason_len) == (int)c->n);
            CHECK(memcmp(pl, c->p, c->n) == 0);
        }
    }
    uint8_t h[3] = {'{', c->op, (uint8_t)c->n};
    put(&r->log, h, 3);
    put(&r->log, c->p, c->n);
    round_trip(c);
    return 0;
}

static const ws_rx_cbs CBS = {on_data, on_control};

/* Feeds a copy of the stream in pieces: whole (step 0), cut at `cut`
 * (step SIZE_MAX), or step bytes at a time. Returns the result. */
static int feed(run *r, const uint8_t *in, size_t n, size_t step, size_t cut)
{
    uint8_t *copy = malloc(n ? n : 1);
    if (!copy)
        abort();
    memcpy(copy, in, n);
    ws_rx rx;
    ws_rx_init(&rx, r->deflate);
    int rc = 0;
    for (size_t off = 0; rc == 0 && off < n;) {
        size_t k = step == 0 ? n : step == SIZE_MAX ? (off < cut ? cut : n) - off : step;
        if (k > n - off)
            k = n - off;
        rc = ws_rx_feed(&rx, copy + off, k, &CBS, r);
        off += k;
    }
    if (rc)
        CHECK(ws_rx_feed(&rx, copy, n, &CBS, r) == rc); /* failed for good */
    free(copy);
    return rc;
}

static void run_free(run *r)
{
    free(r->log.p);
    free(r->msg.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    bool deflate = data[0] & 1;
    size_t cut = (size_t)(data[1] << 8 | data[2]);
    const uint8_t *in = data + 3;
    size_t n = size - 3;
    cut = n ? cut % (n + 1) : 0;

    /* the validator alone: whole, cut in two, byte by byte */
    ws_utf8 a = WS_UTF8_INIT, b = WS_UTF8_INIT;
    int ra = ws_utf8_feed(&a, in, n);
    int rb = ws_utf8_feed(&b, in, cut);
    if (rb == 0)
        rb = ws_utf8_feed(&b, in + cut, n - cut);
    bool complete;
    size_t f = utf8_checked_fail_index(in, n, &complete);
    CHECK(ra == rb && (ra == 0) == (f == n));
    CHECK(ra != 0 || (ws_utf8_complete(&a) == complete && ws_utf8_complete(&b) == complete));
    CHECK(ra == 0 || ra == -EILSEQ);

    /* the receiver, three ways */
    run whole = {.deflate = deflate}, two = {.deflate = deflate}, bytewise = {.deflate = deflate};
    int r1 = feed(&whole, in, n, 0, 0);
    int r2 = feed(&two, in, n, SIZE_MAX, cut);
    int r3 = feed(&bytewise, in, n, 1, 0);
    CHECK(r1 == 0 || r1 == WS_CLOSE_PROTOCOL || r1 == WS_CLOSE_INVALID_DATA);
    CHECK(r1 == r2 && r1 == r3);
    CHECK(whole.log.n == two.log.n && whole.log.n == bytewise.log.n);
    CHECK(whole.log.n == 0 || (memcmp(whole.log.p, two.log.p, whole.log.n) == 0 &&
                               memcmp(whole.log.p, bytewise.log.p, whole.log.n) == 0));
    run_free(&whole);
    run_free(&two);
    run_free(&bytewise);
    return 0;
}
