/*
 * ws_frame.c - the WebSocket frame layer: UTF-8 validation, close codes,
 * masking, the server frame encoder and the client frame receiver. No I/O
 * and no allocation.
 *
 * The receiver checks each header byte as soon as it arrives, so a
 * violation is reported at the byte that makes it one, whatever the
 * pieces: the opcode and reserved bits at byte 0, the mask bit and control
 * frame lengths at byte 1, a 16 or 64-bit length once it is complete.
 */
#include "ws_frame.h"

#include <errno.h>
#include <string.h>

/* ---- UTF-8 ------------------------------------------------------------------------ */

/* A DFA. A state says what the current character still needs: U_1..U_3
 * any 1 to 3 continuation bytes (80-BF); U_E0, U_ED, U_F0 and U_F4 a
 * narrower first continuation byte, which is what rules out overlong forms
 * (E0, F0), surrogates (ED) and code points above U+10FFFF (F4). U_REJ
 * absorbs.
 *
 * Shift-based: a state is a bit offset, and the 64-bit row of a byte holds,
 * at each state's offset, the state it leads to; a step is
 * `row[byte] >> state & 63`. The load does not depend on the state, so a
 * step costs a shift on the dependency chain instead of two dependent table
 * loads. U_OK is 0, so that a zeroed ws_utf8 is at a character boundary. */
enum {
    U_OK = 0,
    U_REJ = 6,
    U_1 = 12,
    U_2 = 18,
    U_3 = 24,
    U_E0 = 30,
    U_ED = 36,
    U_F0 = 42,
    U_F4 = 48
};

/* A row: where a byte leads from each state. */
#define ROW(ok, rej, s1, s2, s3, e0, ed, f0, f4)                                 \
    ((uint64_t)(ok) << U_OK | (uint64_t)(rej) << U_REJ | (uint64_t)(s1) << U_1 | \
     (uint64_t)(s2) << U_2 | (uint64_t)(s3) << U_3 | (uint64_t)(e0) << U_E0 |    \
     (uint64_t)(ed) << U_ED | (uint64_t)(f0) << U_F0 | (uint64_t)(f4) << U_F4)
#define R U_REJ
// clang-format off
/*                   from: U_OK  U_REJ U_1   U_2  U_3  U_E0 U_ED U_F0 U_F4 */
#define ROW_ASCII      ROW(U_OK, R,    R,    R,   R,   R,   R,   R,   R)
#define ROW_80_8F      ROW(R,    R,    U_OK, U_1, U_2, R,   U_1, R,   U_2)
#define ROW_90_9F      ROW(R,    R,    U_OK, U_1, U_2, R,   U_1, U_2, R)
#define ROW_A0_BF      ROW(R,    R,    U_OK, U_1, U_2, U_1, R,   U_2, R)
#define ROW_NEVER      ROW(R,    R,    R,    R,   R,   R,   R,   R,   R)
#define ROW_C2_DF      ROW(U_1,  R,    R,    R,   R,   R,   R,   R,   R)
#define ROW_E0         ROW(U_E0, R,    R,    R,   R,   R,   R,   R,   R)
#define ROW_E1_EF      ROW(U_2,  R,    R,    R,   R,   R,   R,   R,   R)
#define ROW_ED         ROW(U_ED, R,    R,    R,   R,   R,   R,   R,   R)
#define ROW_F0         ROW(U_F0, R,    R,    R,   R,   R,   R,   R,   R)
#define ROW_F1_F3      ROW(U_3,  R,    R,    R,   R,   R,   R,   R,   R)
#define ROW_F4         ROW(U_F4, R,    R,    R,   R,   R,   R,   R,   R)

static const uint64_t utf8_row[256] = {
    [0x00 ... 0x7F] = ROW_ASCII,
    [0x80 ... 0x8F] = ROW_80_8F,
    [0x90 ... 0x9F] = ROW_90_9F,
    [0xA0 ... 0xBF] = ROW_A0_BF,
    [0xC0 ... 0xC1] = ROW_NEVER, /* would be overlong */
    [0xC2 ... 0xDF] = ROW_C2_DF,
    [0xE0]          = ROW_E0,
    [0xE1 ... 0xEC] = ROW_E1_EF,
    [0xED]          = ROW_ED,
    [0xEE ... 0xEF] = ROW_E1_EF,
    [0xF0]          = ROW_F0,
    [0xF1 ... 0xF3] = ROW_F1_F3,
    [0xF4]          = ROW_F4,
    [0xF5 ... 0xFF] = ROW_NEVER, /* would be above U+10FFFF */
};
// clang-format on
#undef R

#define HIGH_BITS 0x8080808080808080ull

int ws_utf8_feed(ws_utf8 *u, const uint8_t *p, size_t n)
{
    uint64_t s = u->state;
    if (s == U_REJ)
        return -EILSEQ;
    size_t i = 0;
    while (i < n) {
        if (s == U_OK) {
            /* between characters: skip ASCII a word at a time */
            while (n - i >= 8) {
                uint64_t w;
                memcpy(&w, p + i, 8);
                if (w & HIGH_BITS)
                    break;
                i += 8;
            }
            if (i == n)
                break;
        }
        s = utf8_row[p[i++]] >> s & 63;
        if (s == U_REJ) {
            u->state = U_REJ;
            return -EILSEQ;
        }
    }
    u->state = (uint32_t)s;
    return 0;
}

bool ws_utf8_valid(const uint8_t *p, size_t n)
{
    ws_utf8 u = WS_UTF8_INIT;
    return ws_utf8_feed(&u, p, n) == 0 && ws_utf8_complete(&u);
}

/* ---- codes, masking, the encoder ----------------------------------------------------- */

bool ws_close_code_valid(unsigned code)
{
    /* 1012-1014 are registered with IANA (restart, try again later, bad
     * gateway) and accepted by browsers and the common servers. */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

void ws_mask(uint8_t *p, size_t n, const uint8_t key[4], uint64_t off)
{
    /* the key rotated to start at off, twice: one 64-bit word of it */
    uint8_t k[8];
    for (unsigned i = 0; i < 8; i++)
        k[i] = key[(off + i) & 3];
    uint64_t kw;
    memcpy(&kw, k, 8);
    size_t i = 0;
    for (; n - i >= 32; i += 32) {
        uint64_t w[4];
        memcpy(w, p + i, 32);
        w[0] ^= kw, w[1] ^= kw, w[2] ^= kw, w[3] ^= kw;
        memcpy(p + i, w, 32);
    }
    for (; n - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= kw;
        memcpy(p + i, &w, 8);
    }
    for (; i < n; i++)
        p[i] ^= k[i & 3]; /* k repeats every 4 bytes */
}

size_t ws_frame_header(uint8_t out[WS_HEADER_MAX], unsigned op, bool fin, bool rsv1, uint64_t len)
{
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (op & 0x0F));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (unsigned i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

int ws_close_payload(uint8_t out[WS_CONTROL_MAX], unsigned code, const void *reason, size_t n)
{
    if (code == WS_CLOSE_NO_STATUS)
        return 0;
    if (!ws_close_code_valid(code) || !ws_utf8_valid(reason, n))
        return -EINVAL;
    const uint8_t *r = reason;
    if (n > WS_CONTROL_MAX - 2) {
        n = WS_CONTROL_MAX - 2;
        while (n > 0 && (r[n] & 0xC0) == 0x80) /* r[n] continues a character: drop it whole */
            n--;
    }
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (n)
        memcpy(out + 2, r, n);
    return (int)(2 + n);
}

/* ---- the receiver ---------------------------------------------------------------- */

enum { RX_HEAD, RX_DATA, RX_CTL, RX_CLOSED };

bool ws_rx_idle(const ws_rx *rx)
{
    return rx->state == RX_HEAD && rx->held == 0 && !rx->msg_started && rx->err == 0;
}

void ws_rx_init(ws_rx *rx, bool deflate_negotiated)
{
    memset(rx, 0, sizeof(*rx));
    rx->state = RX_HEAD;
    rx->hneed = 2;
    rx->deflate = deflate_negotiated;
}

/* Byte 0: FIN, RSV1-3, opcode, against the message in progress. */
static int check_byte0(ws_rx *rx)
{
    uint8_t b = rx->u.hdr[0];
    unsigned op = b & 0x0F;
    bool fin = b & 0x80, rsv1 = b & 0x40;
    if (b & 0x30) /* RSV2, RSV3: no extension defines them */
        return WS_CLOSE_PROTOCOL;
    if (op >= WS_OP_CLOSE) {
        /* control frames: known opcode, not fragmented, never compressed */
        if (op > WS_OP_PONG || !fin || rsv1)
            return WS_CLOSE_PROTOCOL;
    } else if (op == WS_OP_CONT) {
        /* RSV1 marks a whole message as compressed: only on its first frame */
        if (!rx->msg_op || rsv1)
            return WS_CLOSE_PROTOCOL;
    } else if (op == WS_OP_TEXT || op == WS_OP_BINARY) {
        if (rx->msg_op || (rsv1 && !rx->deflate))
            return WS_CLOSE_PROTOCOL;
    } else {
        return WS_CLOSE_PROTOCOL;
    }
    rx->op = (uint8_t)op;
    rx->fin = fin;
    return 0;
}

/* The payload length of a control frame, once known. */
static int check_control_length(const ws_rx *rx, uint64_t len)
{
    if (len > WS_CONTROL_MAX)
        return WS_CLOSE_PROTOCOL;
    if (rx->op == WS_OP_CLOSE && len == 1) /* half a status code */
        return WS_CLOSE_PROTOCOL;
    return 0;
}

/* Byte 1: the mask bit and the 7-bit length, which give the header's length. */
static int check_byte1(ws_rx *rx)
{
    uint8_t b = rx->u.hdr[1];
    unsigned len7 = b & 0x7F;
    if (!(b & 0x80)) /* client frames are masked (§5.1) */
        return WS_CLOSE_PROTOCOL;
    if (rx->op >= WS_OP_CLOSE && len7 < 126) {
        int rc = check_control_length(rx, len7);
        if (rc)
            return rc;
    }
    rx->hneed = (uint8_t)(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4);
    return 0;
}

static int deliver_data(ws_rx *rx, const uint8_t *p, size_t n, const ws_rx_cbs *cbs, void *ud)
{
    ws_data d = {
        .p = p,
        .n = n,
        .frame_left = rx->left,
        .op = rx->msg_op,
        .compressed = rx->msg_compressed,
        .msg_start = !rx->msg_started,
        .frame_end = rx->left == 0,
        .msg_end = rx->left == 0 && rx->fin,
    };
    rx->msg_started = !d.msg_end; /* a whole message leaves the receiver idle */
    if (d.frame_end) {
        rx->state = RX_HEAD;
        if (d.msg_end)
            rx->msg_op = 0;
    }
    return cbs->on_data(ud, &d);
}

static int deliver_control(ws_rx *rx, const uint8_t *p, size_t n, const ws_rx_cbs *cbs, void *ud)
{
    ws_control c = {.p = p, .n = n, .op = rx->op};
    rx->state = RX_HEAD;
    rx->held = 0;
    if (c.op == WS_OP_CLOSE) {
        c.code = WS_CLOSE_NO_STATUS;
        if (n >= 2) {
            c.code = (uint16_t)(p[0] << 8 | p[1]);
            c.reason = p + 2;
            c.reason_len = n - 2;
            if (!ws_close_code_valid(c.code))
                return WS_CLOSE_PROTOCOL;
            if (!ws_utf8_valid(c.reason, c.reason_len))
                return WS_CLOSE_INVALID_DATA;
        }
        rx->state = RX_CLOSED;
    }
    return cbs->on_control(ud, &c);
}

/* The header is complete: its length, the key, and the frame begins. */
static int begin_frame(ws_rx *rx, const ws_rx_cbs *cbs, void *ud)
{
    const uint8_t *h = rx->u.hdr;
    uint64_t len = h[1] & 0x7F;
    if (len == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
    } else if (len == 127) {
        len = 0;
        for (unsigned i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        if (len >> 63) /* §5.2: the most significant bit must be 0 */
            return WS_CLOSE_PROTOCOL;
    }
    /* a control frame in a longer length form than needed is accepted like
     * a data frame, but its length must still be short */
    int rc;
    if (rx->op >= WS_OP_CLOSE && (h[1] & 0x7F) >= 126 && (rc = check_control_length(rx, len)))
        return rc;
    memcpy(rx->key, h + rx->hneed - 4, 4);
    rx->kpos = 0;
    rx->left = len;
    rx->held = 0;
    rx->hneed = 2;
    if (rx->op >= WS_OP_CLOSE) {
        rx->state = RX_CTL;
        return len ? 0 : deliver_control(rx, rx->u.ctl, 0, cbs, ud);
    }
    if (rx->op != WS_OP_CONT) {
        rx->msg_op = rx->op;
        rx->msg_compressed = h[0] & 0x40;
        rx->msg_started = false;
    }
    rx->state = RX_DATA;
    return len ? 0 : deliver_data(rx, rx->u.hdr, 0, cbs, ud);
}

static int feed_head(ws_rx *rx, const uint8_t *p, size_t n, size_t *used, const ws_rx_cbs *cbs,
                     void *ud)
{
    size_t had = rx->held, take = rx->hneed - had;
    if (take > n)
        take = n;
    memcpy(rx->u.hdr + had, p, take);
    *used = take;
    rx->held = (uint8_t)(had + take);
    int rc;
    if (had == 0 && (rc = check_byte0(rx)))
        return rc;
    if (had < 2 && rx->held >= 2)
        return check_byte1(rx); /* now hneed > 2: the loop comes back for the rest */
    return rx->held == rx->hneed ? begin_frame(rx, cbs, ud) : 0;
}

static int feed_data(ws_rx *rx, uint8_t *p, size_t n, size_t *used, const ws_rx_cbs *cbs, void *ud)
{
    size_t m = n < rx->left ? n : (size_t)rx->left;
    ws_mask(p, m, rx->key, rx->kpos);
    rx->kpos = (uint8_t)((rx->kpos + m) & 3);
    rx->left -= m;
    *used = m;
    return deliver_data(rx, p, m, cbs, ud);
}

static int feed_control(ws_rx *rx, uint8_t *p, size_t n, size_t *used, const ws_rx_cbs *cbs,
                        void *ud)
{
    size_t m = n < rx->left ? n : (size_t)rx->left;
    *used = m;
    if (rx->held == 0 && m == rx->left) { /* all here: no copy */
        rx->left = 0;
        ws_mask(p, m, rx->key, 0);
        return deliver_control(rx, p, m, cbs, ud);
    }
    memcpy(rx->u.ctl + rx->held, p, m);
    rx->held = (uint8_t)(rx->held + m);
    rx->left -= m;
    if (rx->left)
        return 0;
    ws_mask(rx->u.ctl, rx->held, rx->key, 0);
    return deliver_control(rx, rx->u.ctl, rx->held, cbs, ud);
}

int ws_rx_feed(ws_rx *rx, uint8_t *p, size_t n, const ws_rx_cbs *cbs, void *ud)
{
    if (rx->err)
        return rx->err;
    int rc = 0;
    while (n > 0 && rc == 0) {
        size_t used;
        switch (rx->state) {
        case RX_HEAD:
            rc = feed_head(rx, p, n, &used, cbs, ud);
            break;
        case RX_DATA:
            rc = feed_data(rx, p, n, &used, cbs, ud);
            break;
        case RX_CTL:
            rc = feed_control(rx, p, n, &used, cbs, ud);
            break;
        default:
            return 0; /* closed: nothing after a close frame counts */
        }
        p += used;
        n -= used;
    }
    rx->err = rc;
    return rc;
}
