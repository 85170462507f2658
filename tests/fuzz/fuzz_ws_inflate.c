/*
 * fuzz_ws_inflate.c - libFuzzer harness for permessage-deflate
 * (proto/ws_deflate.c): arbitrary compressed messages inflated in pieces
 * under a small size limit, each one that inflates compressed again and
 * inflated back by a peer; and the same bytes as a Sec-WebSocket-Extensions
 * value through the negotiation.
 *
 * Input: byte 0 sets the inflating side (bits 0-2: client window bits - 8;
 * bit 3: client_no_context_takeover; bit 4: go idle between messages;
 * bits 5-7: the piece size), byte 1 the policy and the response buffer of
 * the negotiation and the compressing side. The rest is a run of messages,
 * each a 16-bit little-endian length and that many bytes (the last takes
 * what is left), and as a whole the header value.
 *
 *   CC=clang cmake -S . -B build-fuzz -DCORIO_FUZZ=ON -DCORIO_SANITIZE=address,undefined
 *   cmake --build build-fuzz --target fuzz_ws_inflate
 *   ./build-fuzz/tests/fuzz_ws_inflate -max_total_time=600 -dict=tests/fuzz/ws_inflate.dict \
 *       corpus-dir tests/fuzz/corpus/ws_inflate
 */
#include "ws_deflate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LIMIT 4096 /* decompressed bytes per message */

#define CHECK(cond)  \
    do {             \
        if (!(cond)) \
            abort(); \
    } while (0)

static void fuzz_negotiate(const uint8_t *hdr, size_t len, uint8_t b)
{
    ws_deflate_policy pol = {
        .server_no_context_takeover = b & 1,
        .client_no_context_takeover = b & 2,
        .server_max_window_bits = b & 4 ? 8 + (b >> 5) : 0,
        .client_max_window_bits = b & 8 ? 15 - (b >> 5) : 0,
    };
    /* An exact-size heap buffer, so that ASan sees any overrun. */
    size_t rlen = b & 16 ? 1 + (size_t)(b >> 5) * 16 : WS_DEFLATE_RESPONSE_MAX;
    char *r = malloc(rlen);
    CHECK(r);
    ws_deflate_params p;
    int rc = ws_deflate_negotiate((const char *)hdr, len, &pol, &p, r, rlen);
    CHECK(rc == 1 || rc == 0 || rc == -EBADMSG || rc == -ENOSPC);
    if (rc == 1) {
        CHECK(strlen(r) < rlen && strlen(r) < WS_DEFLATE_RESPONSE_MAX);
        CHECK(p.server_max_window_bits >= 8 && p.server_max_window_bits <= 15);
        CHECK(p.client_max_window_bits >= 8 && p.client_max_window_bits <= 15);
        /* The response, read as an offer, agrees on the same. */
        ws_deflate_params q;
        char r2[WS_DEFLATE_RESPONSE_MAX];
        CHECK(ws_deflate_negotiate(r, strlen(r), NULL, &q, r2, sizeof(r2)) == 1);
        CHECK(memcmp(&p, &q, sizeof(p)) == 0);
        CHECK(strcmp(r, r2) == 0);
    } else {
        CHECK(r[0] == '\0');
    }
    free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t f = data[0], b = data[1];
    data += 2, size -= 2;
    fuzz_negotiate(data, size, b);

    static const size_t pieces[] = {1, 2, 3, 7, 16, 64, 256, SIZE_MAX};
    size_t piece = pieces[f >> 5];
    ws_deflate_params p = {.client_no_context_takeover = f & 8,
                           .client_max_window_bits = 8 + (f & 7),
                           .server_no_context_takeover = b & 1,
                           .server_max_window_bits = 8 + (b >> 5)};
    ws_deflate_params mirror = {.server_no_context_takeover = p.client_no_context_takeover,
                                .client_no_context_takeover = p.server_no_context_takeover,
                                .server_max_window_bits = p.client_max_window_bits,
                                .client_max_window_bits = p.server_max_window_bits};
    ws_deflate st, peer;
    CHECK(ws_deflate_init(&st, &p, NULL, LIMIT) == 0);
    CHECK(ws_deflate_init(&peer, &mirror, NULL, LIMIT) == 0);
    cio_buf out = {0}, c = {0}, back = {0};
    while (size > 0) {
        size_t n = size;
        if (size >= 2) {
            n = (size_t)data[0] | (size_t)data[1] << 8;
            data += 2, size -= 2;
            if (n > size)
                n = size;
        }
        out.len = 0;
        int rc = 0;
        size_t off = 0;
        do { /* in pieces, the last one marked fin (an empty one if need be) */
            size_t k = n - off < piece ? n - off : piece;
            rc = ws_deflate_inflate(&st, data + off, k, off + k == n, &out);
            off += k;
        } while (rc == 0 && off < n);
        CHECK(rc == 0 || rc == -EBADMSG || rc == -EMSGSIZE);
        CHECK(out.len <= LIMIT && out.cap <= LIMIT);
        if (rc < 0)
            break; /* the connection would close */
        data += n, size -= n;

        /* What came out goes back compressed, and must come back alike. */
        c.len = back.len = 0;
        CHECK(ws_deflate_compress(&st, out.p, out.len, true, &c) == 0);
        CHECK(ws_deflate_inflate(&peer, c.p, c.len, true, &back) == 0);
        CHECK(back.len == out.len && (out.len == 0 || memcmp(back.p, out.p, out.len) == 0));
        if (f & 16) {
            ws_deflate_idle(&st);
            ws_deflate_idle(&peer);
        }
    }
    cio_buf_free(&out);
    cio_buf_free(&c);
    cio_buf_free(&back);
    ws_deflate_fini(&st);
    ws_deflate_fini(&peer);
    return 0;
}
