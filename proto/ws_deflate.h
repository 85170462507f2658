/*
 * ws_deflate.h - permessage-deflate (RFC 7692) for WebSocket: negotiation of
 * the Sec-WebSocket-Extensions header, and per-connection compression and
 * decompression of messages with zlib. Pure: no I/O, no loop; the WebSocket
 * layer feeds it payloads (already unmasked) and sends what it produces.
 *
 * ROLES. This is the server's side: "server_*" parameters govern what we
 * deflate, "client_*" parameters what we inflate.
 *
 * MEMORY. zlib streams are allocated lazily, the inflate stream on the first
 * compressed message received and the deflate stream on the first message
 * compressed. ws_deflate_idle() frees them between messages: without context
 * takeover nothing is kept; with context takeover only the sliding window
 * (at most 2^window_bits bytes) is kept, and the stream is rebuilt around it
 * on the next message. Measured with zlib 1.2.13 on x86_64 by
 * ws_deflate_memory(), which counts every byte zlib allocates (the z_stream
 * included), w being the window bits in use (9 for a negotiated 8 when
 * deflating) and m the mem_level:
 *
 *   inflate, live   7,280 + 2^w                (w = 15: 40,048 B; 12: 11,376 B)
 *   deflate, live   6,072 + 4 * 2^w + 2^(m+9)  (15/4, the defaults: 145,336 B;
 *                                               15/8: 268,216 B; 12/4: 30,648 B)
 *   idle            nothing without context takeover; with it, the bytes of
 *                   the window actually used, at most 2^w per direction
 *
 * WINDOW BITS 8. zlib refuses a 256-byte window for raw deflate, so when 8 is
 * negotiated for server_max_window_bits (Autobahn's case 13.3.1 asks for
 * it) we deflate with 9, as zlib itself does for zlib streams and as other
 * servers and clients on zlib do (Ratchet, Bun). This stays within the
 * client's 256-byte window: with windowBits 9 zlib never emits a distance
 * above 512 - 262 = 250 (MAX_DIST: the window less the lookahead), which
 * the suite checks by inflating with an 8-bit window. Inflate takes 8 as is.
 *
 * ERRORS map to close codes as follows: -EMSGSIZE (decompressed message over
 * the limit) -> 1009; -EBADMSG (corrupt compressed data) -> 1007, as Node's
 * ws does (the payload is not valid for the message, as with bad UTF-8);
 * -ENOMEM -> 1011. After any error the message is lost and the state is good
 * only for ws_deflate_fini(): close the connection.
 */
#ifndef WS_DEFLATE_H
#define WS_DEFLATE_H

#include "cio_buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Server defaults (policy fields left 0). Level 1 (Z_BEST_SPEED): CPU is
 * what a server runs out of. On chat-like JSON messages of 190 bytes with
 * context takeover, level 3 gave 16% smaller output for 1.3x the CPU and
 * level 6 28% smaller for 2.4x (3.5x on 28 KB messages). mem_level 4
 * instead of zlib's 8: the hash table and symbol buffer take 8 KiB instead
 * of 128 KiB, for 1.5% larger output on 28 KB messages and none on short
 * ones. Window 15: full compatibility; a policy may lower it. */
#define WS_DEFLATE_LEVEL       1
#define WS_DEFLATE_MEM_LEVEL   4
#define WS_DEFLATE_WINDOW_BITS 15
/* Longest response ws_deflate_negotiate() can produce, NUL included. */
#define WS_DEFLATE_RESPONSE_MAX 160

/* What the server accepts and asks for. Zero-initialised: the defaults. */
typedef struct ws_deflate_policy {
    bool server_no_context_takeover; /* always negotiate it (pub/sub routes, where one
                                        compressed frame is shared by all subscribers) */
    bool client_no_context_takeover; /* always ask for it (our inflate stream can then
                                        be freed between messages); honoured if offered */
    int server_max_window_bits;      /* 8..15: our deflate window at most this (0 = 15) */
    int client_max_window_bits;      /* 8..15: the client's window, when its offer lets
                                        us choose (0 = 15) */
    int level;                       /* 1..9 (0 = WS_DEFLATE_LEVEL) */
    int mem_level;                   /* 1..9 (0 = WS_DEFLATE_MEM_LEVEL) */
} ws_deflate_policy;

/* The agreed parameters (RFC 7692 §7.1). Window bits are 8..15 as agreed. */
typedef struct ws_deflate_params {
    bool server_no_context_takeover, client_no_context_takeover;
    int8_t server_max_window_bits, client_max_window_bits; /* 8..15 */
} ws_deflate_params;

/* Chooses the first acceptable permessage-deflate offer of a client's
 * Sec-WebSocket-Extensions value (len bytes; several header lines joined with
 * ","). Extension and parameter names compare case-insensitively; values may
 * be tokens or quoted strings. An offer with an unknown parameter, a bad value
 * or a repeated parameter is declined and the next one considered (§7).
 * policy may be NULL (defaults). On 1 (accepted), *out holds the agreed
 * parameters and response the NUL-terminated Sec-WebSocket-Extensions value
 * to answer with (WS_DEFLATE_RESPONSE_MAX bytes are always enough); on 0
 * (nothing acceptable offered) *out is zeroed and response is "". Errors:
 * -EBADMSG when the value is not a valid extension list (the caller may go on
 * without compression, or answer 400 as ws does), -ENOSPC when response_len
 * is too small, -EINVAL for a bad policy. */
int ws_deflate_negotiate(const char *offer, size_t len, const ws_deflate_policy *policy,
                         ws_deflate_params *out, char *response, size_t response_len);

/* Per-connection state. Treat the fields as private. */
typedef struct ws_deflate {
    struct ws_zstream *inf, *def; /* NULL until needed, and after ws_deflate_idle() */
    uint8_t *inf_win, *def_win;   /* the window kept while idle (context takeover) */
    uint32_t inf_win_len, def_win_len;
    size_t max_message; /* decompressed bytes per message, at most */
    size_t msg_in;      /* decompressed bytes of the message being inflated */
    size_t mem;         /* bytes zlib holds (ws_deflate_memory) */
    int64_t used;       /* the owner's: when a stream was last used (its clock) */
    ws_deflate_params p;
    int8_t level, mem_level;
    bool inf_mid, def_mid; /* in the middle of a message */
    bool inf_boundary;     /* the inflate stream stopped between two blocks */
} ws_deflate;

/* Prepares st for the agreed parameters p; allocates nothing. Of policy
 * only level and mem_level are used (NULL: defaults). Messages that inflate to more than
 * max_message_bytes fail with -EMSGSIZE. 0, or -EINVAL for bad parameters. */
int ws_deflate_init(ws_deflate *st, const ws_deflate_params *p, const ws_deflate_policy *policy,
                    size_t max_message_bytes);
/* Frees everything st holds; st may be initialised again. */
void ws_deflate_fini(ws_deflate *st);
/* Whether st holds zlib streams (which ws_deflate_idle() would free). */
static inline bool ws_deflate_holds_streams(const ws_deflate *st)
{
    return st->inf || st->def;
}

/* Decompresses the next piece (len bytes, unmasked) of a compressed message
 * and appends the output to out; fin marks the last piece, after which the
 * 0x00 0x00 0xff 0xff tail is inflated too (§7.2.2) and the message must end
 * at a block boundary. Pieces may be of any size, empty ones included; a
 * message of no bytes at all is empty (lenient: the RFC's empty message is
 * the single byte 0x00).
 * Inflating stops at the first byte past max_message_bytes, and out grows
 * at most to hold max_message_bytes of the message. 0, -EMSGSIZE (-> 1009),
 * -EBADMSG (-> 1007) or -ENOMEM. */
int ws_deflate_inflate(ws_deflate *st, const void *in, size_t len, bool fin, cio_buf *out);

/* Compresses the next piece of a message to send and appends the output to
 * out; fin marks the last piece: the output is then flushed (Z_SYNC_FLUSH)
 * and its 0x00 0x00 0xff 0xff tail removed (§7.2.1). A piece that is not the
 * last may append nothing yet. Without server context takeover the stream is
 * reset after the message. 0 or -ENOMEM. */
int ws_deflate_compress(ws_deflate *st, const void *in, size_t len, bool fin, cio_buf *out);

/* Compresses a whole message into a new segment (one reference), leaving
 * headroom bytes before the payload for the frame header: the payload is
 * data[headroom, len). Meant for broadcasts from a state negotiated with
 * server_no_context_takeover, where one segment serves every subscriber
 * with the same server_max_window_bits. 0, -ENOMEM or -EMSGSIZE (over 4 GiB). */
int ws_deflate_compress_seg(ws_deflate *st, const void *in, size_t len, size_t headroom,
                            cio_seg **out);

/* Whether a message compressed from raw_len to compressed_len bytes should be
 * sent compressed: when it got smaller, and always with server context
 * takeover, since the client's window must then see every message we
 * compressed. (Sending a message that did not shrink compressed is legal.) */
bool ws_deflate_use_compressed(const ws_deflate *st, size_t raw_len, size_t compressed_len);

/* Frees what an idle connection need not keep: streams without context
 * takeover entirely; streams with takeover all but their window. A stream in
 * the middle of a message is left alone. Call it between messages when the
 * connection goes quiet; the next message rebuilds what it needs. */
void ws_deflate_idle(ws_deflate *st);

/* Bytes st holds in zlib streams and kept windows (not counting *st). */
size_t ws_deflate_memory(const ws_deflate *st);

#endif /* WS_DEFLATE_H */
