/*
 * ws_frame.h - the WebSocket frame layer (RFC 6455), pure and I/O-free: an
 * incremental UTF-8 validator, the encoder of server frames, and the
 * receiver of client frames. Internal to proto/.
 *
 * The receiver (ws_rx) is fed raw socket bytes in pieces of any size and
 * reports data pieces and complete control frames through callbacks. It
 * allocates nothing and keeps O(1) state: the header being assembled and the
 * payload of a control frame split across pieces (at most 125 bytes). Data
 * payload is unmasked in place and handed on as it arrives, never buffered.
 * It enforces the framing rules of RFC 6455 and returns the close code of
 * the first violation; UTF-8 of text messages, message size limits and
 * decompression are the caller's (they apply to the decompressed message).
 */
#ifndef CIO_WS_FRAME_H
#define CIO_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Opcodes (RFC 6455 §5.2). */
enum {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

/* Close codes (RFC 6455 §7.4.1, IANA registry). 1005 and 1006 are never sent. */
enum {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005,
    WS_CLOSE_ABNORMAL = 1006,
    WS_CLOSE_INVALID_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_EXTENSION = 1010,
    WS_CLOSE_INTERNAL = 1011,
};

#define WS_CONTROL_MAX 125 /* payload of a control frame */
#define WS_HEADER_MAX  10  /* header of a server (unmasked) frame */

/* ---- UTF-8 ------------------------------------------------------------------------ */

/* An incremental UTF-8 validator (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF). Zero-initialised (WS_UTF8_INIT) it
 * is at the start of a string. A character may be split across feeds. */
typedef struct ws_utf8 {
    uint32_t state;
} ws_utf8;

#define WS_UTF8_INIT ((ws_utf8){0})

/* Feeds n more bytes (p may be NULL when n is 0). Returns 0 while the input
 * so far is a prefix of some valid UTF-8 string, or -EILSEQ at the first
 * byte after which it cannot be (the bytes after it are not looked at);
 * once failed, every later feed fails too. Runs 8 bytes at a time through
 * ASCII. */
int ws_utf8_feed(ws_utf8 *u, const uint8_t *p, size_t n);

/* Whether the input so far is valid and ends on a character boundary: at
 * the end of a text message this says whether the whole was valid. */
static inline bool ws_utf8_complete(const ws_utf8 *u)
{
    return u->state == 0;
}

/* Whether p[0, n) is a complete, valid UTF-8 string. */
bool ws_utf8_valid(const uint8_t *p, size_t n);

/* ---- codes, masking, the encoder ----------------------------------------------------- */

/* Whether a peer may send this close code (RFC 6455 §7.4): 1000-1003,
 * 1007-1014 and 3000-4999. 1005 and 1006 (never on the wire), 1004, 1015,
 * the other unassigned codes under 3000 and everything from 5000 are not. */
bool ws_close_code_valid(unsigned code);

/* XORs p[0, n) with the 4-byte masking key, starting at key byte
 * (off % 4): masks and unmasks, and a payload can be done in pieces by
 * passing each piece's offset in the payload. Word at a time. */
void ws_mask(uint8_t *p, size_t n, const uint8_t key[4], uint64_t off);

/* Writes the header of an unmasked (server) frame with opcode op, the FIN
 * and RSV1 bits, and a payload of len bytes (len < 2^63; at most
 * WS_CONTROL_MAX for a control frame) into out. Returns its length: 2, 4 or
 * 10 bytes (the minimal length encoding). */
size_t ws_frame_header(uint8_t out[WS_HEADER_MAX], unsigned op, bool fin, bool rsv1, uint64_t len);

/* Writes the payload of a close frame into out: nothing for code 1005 (a
 * close without a status), else the code in network order and the reason,
 * cut at a character boundary to fit in WS_CONTROL_MAX bytes. Returns its
 * length, or -EINVAL when the code is not one a peer accepts (see
 * ws_close_code_valid) or the reason is not valid UTF-8. */
int ws_close_payload(uint8_t out[WS_CONTROL_MAX], unsigned code, const void *reason, size_t n);

/* ---- the receiver ---------------------------------------------------------------- */

/* A piece of a data message, unmasked. A message is reported as one or
 * more pieces, in order; every frame ends with a piece with frame_end set
 * (an empty frame is one empty piece), and the last piece of the message
 * has msg_end set. */
typedef struct ws_data {
    const uint8_t *p;    /* into the buffer given to ws_rx_feed; never NULL */
    size_t n;            /* may be 0 (empty frame) */
    uint64_t frame_left; /* bytes of this frame still to come after this piece */
    uint8_t op;          /* the message's: WS_OP_TEXT or WS_OP_BINARY */
    bool compressed;     /* RSV1 was set on the message's first frame */
    bool msg_start;      /* the first piece of the message */
    bool frame_end;      /* the last piece of its frame */
    bool msg_end;        /* the last piece of the message (FIN frame complete) */
} ws_data;

/* A complete control frame, unmasked. For a close frame, code is the
 * status code (WS_CLOSE_NO_STATUS when the payload was empty) and the reason
 * follows it, already checked: a valid code and valid UTF-8. */
typedef struct ws_control {
    const uint8_t *p; /* the payload: into the fed buffer, or into the ws_rx */
    size_t n;         /* at most WS_CONTROL_MAX */
    uint8_t op;       /* WS_OP_CLOSE, WS_OP_PING or WS_OP_PONG */
    uint16_t code;    /* close only */
    const uint8_t *reason;
    size_t reason_len;
} ws_control;

/* Where the receiver reports. Each returns 0 to go on, or something else
 * (a close code such as 1007 or 1009, or a -errno) to stop: ws_rx_feed then
 * returns that value and the receiver stays failed. The pointers are valid
 * only during the call. Both callbacks are required. */
typedef struct ws_rx_cbs {
    int (*on_data)(void *ud, const ws_data *d);
    int (*on_control)(void *ud, const ws_control *c);
} ws_rx_cbs;

/* The receiver's state: about 150 bytes, embedded by its owner. */
typedef struct ws_rx {
    uint64_t left;  /* payload bytes of the current frame not yet seen */
    int err;        /* the close code it failed with, or 0 */
    uint8_t key[4]; /* the current frame's masking key */
    uint8_t kpos;   /* where in the key the next payload byte is */
    uint8_t state;  /* header, data payload, control payload, closed */
    uint8_t held;   /* bytes in u: of the header, or of a control payload */
    uint8_t hneed;  /* the header's length, once known (2 until then) */
    uint8_t op;     /* the current frame's opcode */
    bool fin;       /* the current frame's FIN */
    uint8_t msg_op; /* the message in progress (text/binary), or 0 */
    bool msg_compressed, msg_started, deflate;
    union {
        uint8_t hdr[14];             /* a client header: 2 + 8 (length) + 4 (key) */
        uint8_t ctl[WS_CONTROL_MAX]; /* a control payload split across pieces */
    } u;
} ws_rx;

/* Starts a receiver at the beginning of a connection's stream.
 * deflate_negotiated: permessage-deflate is on, so RSV1 may mark the first
 * frame of a data message as compressed (RFC 7692). */
void ws_rx_init(ws_rx *rx, bool deflate_negotiated);

/* Whether the receiver is between messages with nothing held (no partial
 * header, frame or fragmented message): it may then be dropped and started
 * again with ws_rx_init, as an idle connection's memory. */
bool ws_rx_idle(const ws_rx *rx);

/* Feeds n bytes read from the client, which it unmasks in place (p must be
 * writable), reporting through cbs with ud. Returns 0 when all n were
 * consumed, or the close code of the first violation (1002 protocol error,
 * 1007 a close reason not in UTF-8) or a callback's non-zero return; the
 * bytes after it are not looked at and every later feed returns the same.
 * After a close frame was reported (and its callback returned 0) whatever
 * follows is ignored: the peer may send nothing after a close. */
int ws_rx_feed(ws_rx *rx, uint8_t *p, size_t n, const ws_rx_cbs *cbs, void *ud);

#endif /* CIO_WS_FRAME_H */
