/*
 * permessage-deflate (proto/ws_deflate.c): negotiation, round trips with and
 * without context takeover, every window size, inflate in pieces, the
 * examples of RFC 7692 §7.2.3, the message size limit, corrupt input, idle
 * freeing and allocation failures. zlib itself plays the client, so that
 * what we send is checked by an independent inflater.
 */
#define ZLIB_CONST
#include "check_harness.h"
#include "ws_deflate.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

/* ---- allocation failures on demand (linked with --wrap=malloc,--wrap=calloc) ------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);

static long fail_in = -1; /* the allocation that fails: 0 = the next one; -1 = none */

static bool alloc_fails(void)
{
    return fail_in >= 0 && fail_in-- == 0;
}

void *__wrap_malloc(size_t n)
{
    return alloc_fails() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return alloc_fails() ? NULL : __real_calloc(n, size);
}

/* ---- helpers -------------------------------------------------------------------------- */

static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};

static ws_deflate_params params(bool snct, bool cnct, int sw, int cw)
{
    return (ws_deflate_params){snct, cnct, sw, cw};
}

/* The client's view of the same agreement: what we deflate, it inflates. */
static ws_deflate_params mirror(ws_deflate_params p)
{
    return params(p.client_no_context_takeover, p.server_no_context_takeover,
                  p.client_max_window_bits, p.server_max_window_bits);
}

static void init(ws_deflate *st, ws_deflate_params p, size_t max)
{
    ck_assert_int_eq(ws_deflate_init(st, &p, NULL, max), 0);
}

/* A client's compressor, straight zlib: raw deflate, Z_SYNC_FLUSH, tail
 * removed (§7.2.1). One stream per call unless z is kept by the caller. */
static void z_compress(z_stream *z, const void *in, size_t n, cio_buf *out)
{
    z->next_in = in;
    z->avail_in = (unsigned)n;
    do {
        ck_assert_int_eq(cio_buf_reserve(out, n / 2 + 1024), 0);
        z->next_out = (uint8_t *)out->p + out->len;
        z->avail_out = (unsigned)(out->cap - out->len);
        int rc = deflate(z, Z_SYNC_FLUSH);
        ck_assert(rc == Z_OK || rc == Z_BUF_ERROR);
        out->len = out->cap - z->avail_out;
    } while (z->avail_in > 0 || z->avail_out == 0);
    ck_assert_int_ge(out->len, 4);
    ck_assert(memcmp(out->p + out->len - 4, tail, 4) == 0);
    out->len -= 4;
}

static void z_compress_once(const void *in, size_t n, int wbits, int level, cio_buf *out)
{
    z_stream z = {0};
    ck_assert_int_eq(deflateInit2(&z, level, Z_DEFLATED, -wbits, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z_compress(&z, in, n, out);
    deflateEnd(&z);
}

/* A client's decompressor, straight zlib: appends the tail; Z_OK or zlib's
 * error. inflate() resolves a distance within the output of the same call
 * whatever its window, so step = 1 (one byte out per call) holds it to
 * exactly its window size; 0 lets it write all it can. */
static int z_decompress(z_stream *z, const void *in, size_t n, cio_buf *out, size_t step)
{
    for (int part = 0; part < 2; part++) {
        z->next_in = part ? tail : in;
        z->avail_in = part ? 4 : (unsigned)n;
        do {
            ck_assert_int_eq(cio_buf_reserve(out, 4096), 0);
            z->next_out = (uint8_t *)out->p + out->len;
            size_t give = step ? step : out->cap - out->len;
            z->avail_out = (unsigned)give;
            int rc = inflate(z, Z_SYNC_FLUSH);
            out->len += give - z->avail_out;
            if (rc == Z_BUF_ERROR)
                break;
            if (rc != Z_OK)
                return rc;
        } while (z->avail_in > 0 || z->avail_out == 0);
    }
    return Z_OK;
}

/* Deterministic text-like data: words from a small vocabulary, so that it
 * compresses, with a counter so that messages differ. */
static size_t fill_text(char *p, size_t n, unsigned seed)
{
    static const char *words[] = {"alpha", "beta",  "gamma",  "delta",  "room",     "message",
                                  "hello", "world", "typing", "online", "{\"id\":", "}"};
    size_t len = 0;
    while (len < n) {
        seed = seed * 1103515245u + 12345u;
        const char *w = words[(seed >> 16) % 12];
        size_t wl = strlen(w);
        for (size_t i = 0; i < wl && len < n; i++)
            p[len++] = w[i];
        if (len < n)
            p[len++] = (char)(seed % 7 ? ' ' : '0' + (seed >> 8) % 10);
    }
    return len;
}

/* Bytes that deflate cannot shrink. */
static void fill_random(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

static int neg(const char *offer, const ws_deflate_policy *pol, ws_deflate_params *p,
               char resp[WS_DEFLATE_RESPONSE_MAX])
{
    return ws_deflate_negotiate(offer, strlen(offer), pol, p, resp, WS_DEFLATE_RESPONSE_MAX);
}

static void check_params(ws_deflate_params p, bool snct, bool cnct, int sw, int cw)
{
    ck_assert_int_eq(p.server_no_context_takeover, snct);
    ck_assert_int_eq(p.client_no_context_takeover, cnct);
    ck_assert_int_eq(p.server_max_window_bits, sw);
    ck_assert_int_eq(p.client_max_window_bits, cw);
}

/* The offer is accepted with these parameters and this response. */
static void agreed(const char *offer, const ws_deflate_policy *pol, bool snct, bool cnct, int sw,
                   int cw, const char *response)
{
    ws_deflate_params p;
    char r[WS_DEFLATE_RESPONSE_MAX];
    ck_assert_int_eq(neg(offer, pol, &p, r), 1);
    check_params(p, snct, cnct, sw, cw);
    ck_assert_str_eq(r, response);
}

/* ---- negotiation ---------------------------------------------------------------------- */

START_TEST(negotiate_plain_offer)
{
    agreed("permessage-deflate", NULL, false, false, 15, 15, "permessage-deflate");
}
END_TEST

START_TEST(negotiate_server_no_context_takeover_offered)
{
    agreed("permessage-deflate; server_no_context_takeover", NULL, true, false, 15, 15,
           "permessage-deflate; server_no_context_takeover");
}
END_TEST

/* Pub/sub routes force it so that one compressed frame serves everyone
 * (§7.1.1.1 lets the server add it unasked). */
START_TEST(negotiate_server_no_context_takeover_forced_by_policy)
{
    ws_deflate_policy pol = {.server_no_context_takeover = true};
    agreed("permessage-deflate; client_max_window_bits", &pol, true, false, 15, 15,
           "permessage-deflate; server_no_context_takeover");
}
END_TEST

START_TEST(negotiate_client_no_context_takeover_offered)
{
    agreed("permessage-deflate; client_no_context_takeover", NULL, false, true, 15, 15,
           "permessage-deflate; client_no_context_takeover");
}
END_TEST

START_TEST(negotiate_client_no_context_takeover_asked_by_policy)
{
    ws_deflate_policy pol = {.client_no_context_takeover = true};
    agreed("permessage-deflate", &pol, false, true, 15, 15,
           "permessage-deflate; client_no_context_takeover");
}
END_TEST

START_TEST(negotiate_server_max_window_bits_honoured)
{
    agreed("permessage-deflate; server_max_window_bits=10", NULL, false, false, 10, 15,
           "permessage-deflate; server_max_window_bits=10");
}
END_TEST

/* The client's value is an upper bound: the server may go below it. */
START_TEST(negotiate_server_max_window_bits_below_offer_by_policy)
{
    ws_deflate_policy pol = {.server_max_window_bits = 9};
    agreed("permessage-deflate; server_max_window_bits=12", &pol, false, false, 9, 15,
           "permessage-deflate; server_max_window_bits=9");
}
END_TEST

/* ...and never above it, whatever the policy. */
START_TEST(negotiate_server_max_window_bits_offer_below_policy)
{
    ws_deflate_policy pol = {.server_max_window_bits = 12};
    agreed("permessage-deflate; server_max_window_bits=8", &pol, false, false, 8, 15,
           "permessage-deflate; server_max_window_bits=8");
}
END_TEST

START_TEST(negotiate_server_max_window_bits_from_policy_alone)
{
    ws_deflate_policy pol = {.server_max_window_bits = 11};
    agreed("permessage-deflate", &pol, false, false, 11, 15,
           "permessage-deflate; server_max_window_bits=11");
}
END_TEST

/* Offered at 15, it must be answered (accepting it means including it). */
START_TEST(negotiate_server_max_window_bits_15_answered)
{
    agreed("permessage-deflate; server_max_window_bits=15", NULL, false, false, 15, 15,
           "permessage-deflate; server_max_window_bits=15");
}
END_TEST

START_TEST(negotiate_client_max_window_bits_without_value)
{
    agreed("permessage-deflate; client_max_window_bits", NULL, false, false, 15, 15,
           "permessage-deflate");
}
END_TEST

START_TEST(negotiate_client_max_window_bits_chosen_by_policy)
{
    ws_deflate_policy pol = {.client_max_window_bits = 10};
    agreed("permessage-deflate; client_max_window_bits", &pol, false, false, 15, 10,
           "permessage-deflate; client_max_window_bits=10");
}
END_TEST

START_TEST(negotiate_client_max_window_bits_hint_taken)
{
    agreed("permessage-deflate; client_max_window_bits=9", NULL, false, false, 15, 9,
           "permessage-deflate; client_max_window_bits=9");
}
END_TEST

/* A client that did not offer the parameter may use 15 bits: the policy
 * cannot limit it (§7.1.2.2). */
START_TEST(negotiate_client_max_window_bits_not_offered_not_limited)
{
    ws_deflate_policy pol = {.client_max_window_bits = 10};
    agreed("permessage-deflate", &pol, false, false, 15, 15, "permessage-deflate");
}
END_TEST

START_TEST(negotiate_every_parameter_response_text)
{
    ws_deflate_params p;
    char r[WS_DEFLATE_RESPONSE_MAX];
    ck_assert_int_eq(neg("permessage-deflate; client_max_window_bits=12; server_max_window_bits=13;"
                         " client_no_context_takeover; server_no_context_takeover",
                         NULL, &p, r),
                     1);
    check_params(p, true, true, 13, 12);
    ck_assert_str_eq(r, "permessage-deflate; server_no_context_takeover; "
                        "client_no_context_takeover; server_max_window_bits=13; "
                        "client_max_window_bits=12");
    ck_assert_int_lt(strlen(r), WS_DEFLATE_RESPONSE_MAX);
}
END_TEST

START_TEST(negotiate_first_acceptable_offer_wins)
{
    ws_deflate_params p;
    char r[WS_DEFLATE_RESPONSE_MAX];
    ck_assert_int_eq(neg("x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=10,"
                         " permessage-deflate",
                         NULL, &p, r),
                     1);
    check_params(p, false, false, 10, 15);
    ck_assert_str_eq(r, "permessage-deflate; server_max_window_bits=10");
}
END_TEST

START_TEST(negotiate_invalid_offer_skipped_for_the_next)
{
    ws_deflate_params p;
    char r[WS_DEFLATE_RESPONSE_MAX];
    ck_assert_int_eq(neg("permessage-deflate; server_max_window_bits=7,"
                         " permessage-deflate; client_max_window_bits=11",
                         NULL, &p, r),
                     1);
    check_params(p, false, false, 15, 11);
    ck_assert_str_eq(r, "permessage-deflate; client_max_window_bits=11");
}
END_TEST

static void check_declined(const char *offer)
{
    ws_deflate_params p = {true, true, 1, 1};
    char r[WS_DEFLATE_RESPONSE_MAX] = "junk";
    ck_assert_msg(neg(offer, NULL, &p, r) == 0, "accepted: %s", offer);
    check_params(p, false, false, 0, 0);
    ck_assert_str_eq(r, "");
}

START_TEST(negotiate_declines_unknown_parameter)
{
    check_declined("permessage-deflate; foo");
    check_declined("permessage-deflate; foo=1");
    check_declined("permessage-deflate; max_window_bits=10");
}
END_TEST

START_TEST(negotiate_declines_bad_window_bits)
{
    static const char *bad[] = {
        "7",   "16",  "0",  "08",   "010",    "+9",     "-9",
        "9.0", "abc", "1a", "\"\"", "\"16\"", "\"9 \"", "99999999999999999999"};
    char offer[128];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(offer, sizeof(offer), "permessage-deflate; server_max_window_bits=%s", bad[i]);
        check_declined(offer);
        snprintf(offer, sizeof(offer), "permessage-deflate; client_max_window_bits=%s", bad[i]);
        check_declined(offer);
    }
}
END_TEST

START_TEST(negotiate_declines_repeated_parameter)
{
    check_declined("permessage-deflate; server_no_context_takeover; server_no_context_takeover");
    check_declined("permessage-deflate; client_no_context_takeover; client_no_context_takeover");
    check_declined("permessage-deflate; server_max_window_bits=10; server_max_window_bits=10");
    check_declined("permessage-deflate; client_max_window_bits; client_max_window_bits=10");
    check_declined("permessage-deflate; client_max_window_bits; Client_Max_Window_Bits");
}
END_TEST

START_TEST(negotiate_declines_value_on_a_flag)
{
    check_declined("permessage-deflate; server_no_context_takeover=1");
    check_declined("permessage-deflate; client_no_context_takeover=\"\"");
}
END_TEST

START_TEST(negotiate_declines_server_max_window_bits_without_value)
{
    check_declined("permessage-deflate; server_max_window_bits");
}
END_TEST

START_TEST(negotiate_quoted_values)
{
    ws_deflate_params p;
    char r[WS_DEFLATE_RESPONSE_MAX];
    ck_assert_int_eq(neg("permessage-deflate; client_max_window_bits=\"10\"; "
                         "server_max_window_bits=\"1\\2\"",
                         NULL, &p, r),
                     1);
    check_params(p, false, false, 12, 10);
}
END_TEST

START_TEST(negotiate_whitespace_and_case)
{
    ws_deflate_params p;
    char r[WS_DEFLATE_RESPONSE_MAX];
    ck_assert_int_eq(neg(" \tPerMessage-Deflate ;Client_Max_Window_Bits = 10 ;\t"
                         "SERVER_NO_CONTEXT_TAKEOVER\t ",
                         NULL, &p, r),
                     1);
    check_params(p, true, false, 15, 10);
    ck_assert_str_eq(r,
                     "permessage-deflate; server_no_context_takeover; client_max_window_bits=10");
}
END_TEST

/* Header lines joined with commas may leave empty elements (RFC 7230 §7). */
START_TEST(negotiate_empty_list_elements)
{
    ws_deflate_params p;
    char r[WS_DEFLATE_RESPONSE_MAX];
    ck_assert_int_eq(neg(" , ,permessage-deflate,, ", NULL, &p, r), 1);
    ck_assert_str_eq(r, "permessage-deflate");
    ck_assert_int_eq(neg("", NULL, &p, r), 0);
    ck_assert_int_eq(neg(" , ", NULL, &p, r), 0);
}
END_TEST

START_TEST(negotiate_other_extensions_only)
{
    ws_deflate_params p;
    char r[WS_DEFLATE_RESPONSE_MAX] = "junk";
    ck_assert_int_eq(neg("x-webkit-deflate-frame, permessage-foo; a=1", NULL, &p, r), 0);
    ck_assert_str_eq(r, "");
}
END_TEST

/* A comma inside a quoted value of another extension separates nothing. */
START_TEST(negotiate_quoted_comma_in_other_extension)
{
    ws_deflate_params p;
    char r[WS_DEFLATE_RESPONSE_MAX];
    ck_assert_int_eq(neg("x-foo; a=\"permessage-deflate, b\\\"c\", permessage-deflate;"
                         " server_max_window_bits=9",
                         NULL, &p, r),
                     1);
    check_params(p, false, false, 9, 15);
}
END_TEST

START_TEST(negotiate_malformed_value_is_an_error)
{
    static const char *bad[] = {
        "permessage-deflate; client_max_window_bits=\"10",  /* unterminated */
        "permessage-deflate; ; server_no_context_takeover", /* no parameter name */
        "permessage-deflate server_no_context_takeover",    /* no ';' */
        "permessage-deflate; server_max_window_bits=",      /* no value */
        "permessage-deflate; server_max_window_bits==10",
        "; permessage-deflate",
        "permessage-deflate; a=\"b\x01\"", /* control character */
        "permessage-deflate\r\n",
        "perm\xc3\xa9ssage-deflate",
        "permessage-deflate; a=\"\\",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ws_deflate_params p;
        char r[WS_DEFLATE_RESPONSE_MAX] = "junk";
        ck_assert_msg(neg(bad[i], NULL, &p, r) == -EBADMSG, "not refused: %s", bad[i]);
        ck_assert_str_eq(r, "");
    }
}
END_TEST

/* The whole value is checked, even past an acceptable offer. */
START_TEST(negotiate_malformed_after_acceptable_offer_is_an_error)
{
    ws_deflate_params p;
    char r[WS_DEFLATE_RESPONSE_MAX];
    ck_assert_int_eq(neg("permessage-deflate, x-foo; =1", NULL, &p, r), -EBADMSG);
    check_params(p, false, false, 0, 0);
    ck_assert_str_eq(r, "");
}
END_TEST

START_TEST(negotiate_response_buffer_too_small)
{
    const char *offer = "permessage-deflate; server_no_context_takeover";
    ws_deflate_params p;
    char r[46]; /* the response is 46 characters: no room for the NUL */
    ck_assert_int_eq(ws_deflate_negotiate(offer, strlen(offer), NULL, &p, r, sizeof(r)), -ENOSPC);
    check_params(p, false, false, 0, 0);
    char r2[47];
    ck_assert_int_eq(ws_deflate_negotiate(offer, strlen(offer), NULL, &p, r2, sizeof(r2)), 1);
}
END_TEST

START_TEST(negotiate_bad_policy)
{
    static const ws_deflate_policy bad[] = {
        {.server_max_window_bits = 7},
        {.server_max_window_bits = 16},
        {.client_max_window_bits = 7},
        {.client_max_window_bits = 16},
        {.level = -1},
        {.level = 10},
        {.mem_level = -1},
        {.mem_level = 10},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ws_deflate_params p;
        char r[WS_DEFLATE_RESPONSE_MAX];
        ck_assert_int_eq(neg("permessage-deflate", &bad[i], &p, r), -EINVAL);
    }
}
END_TEST

/* ---- the examples of RFC 7692 §7.2.3 ------------------------------------------------ */

static const uint8_t hello_c[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
static const uint8_t hello_again_c[] = {0xf2, 0x00, 0x11, 0x00, 0x00};

static void inflate_expect(ws_deflate *st, const void *in, size_t n, const char *want)
{
    cio_buf out = {0};
    ck_assert_int_eq(ws_deflate_inflate(st, in, n, true, &out), 0);
    ck_assert_int_eq(out.len, strlen(want));
    ck_assert(out.len == 0 || memcmp(out.p, want, out.len) == 0);
    cio_buf_free(&out);
}

static void compress_expect(ws_deflate *st, const char *in, const uint8_t *want, size_t n)
{
    cio_buf out = {0};
    ck_assert_int_eq(ws_deflate_compress(st, in, strlen(in), true, &out), 0);
    ck_assert_int_eq(out.len, n);
    ck_assert(memcmp(out.p, want, n) == 0);
    cio_buf_free(&out);
}

/* §7.2.3.1 */
START_TEST(rfc_hello_inflates)
{
    ws_deflate st;
    init(&st, params(false, false, 15, 15), 1024);
    inflate_expect(&st, hello_c, sizeof(hello_c), "Hello");
    ws_deflate_fini(&st);
}
END_TEST

START_TEST(rfc_hello_compresses)
{
    ws_deflate st;
    init(&st, params(false, false, 15, 15), 1024);
    compress_expect(&st, "Hello", hello_c, sizeof(hello_c));
    ws_deflate_fini(&st);
}
END_TEST

/* §7.2.3.2: the second "Hello" is a match into the first. */
START_TEST(rfc_hello_twice_with_takeover_inflates)
{
    ws_deflate st;
    init(&st, params(false, false, 15, 15), 1024);
    inflate_expect(&st, hello_c, sizeof(hello_c), "Hello");
    inflate_expect(&st, hello_again_c, sizeof(hello_again_c), "Hello");
    ws_deflate_fini(&st);
}
END_TEST

START_TEST(rfc_hello_twice_with_takeover_compresses)
{
    ws_deflate st;
    init(&st, params(false, false, 15, 15), 1024);
    compress_expect(&st, "Hello", hello_c, sizeof(hello_c));
    compress_expect(&st, "Hello", hello_again_c, sizeof(hello_again_c));
    ws_deflate_fini(&st);
}
END_TEST

START_TEST(rfc_hello_twice_without_takeover_compresses_alike)
{
    ws_deflate st;
    init(&st, params(true, false, 15, 15), 1024);
    compress_expect(&st, "Hello", hello_c, sizeof(hello_c));
    compress_expect(&st, "Hello", hello_c, sizeof(hello_c));
    ws_deflate_fini(&st);
}
END_TEST

/* Without client context takeover the second "Hello" of §7.2.3.2 refers to
 * a window the client promised not to keep: corrupt. */
START_TEST(rfc_hello_again_without_takeover_is_corrupt)
{
    ws_deflate st;
    init(&st, params(false, true, 15, 15), 1024);
    inflate_expect(&st, hello_c, sizeof(hello_c), "Hello");
    cio_buf out = {0};
    ck_assert_int_eq(ws_deflate_inflate(&st, hello_again_c, sizeof(hello_again_c), true, &out),
                     -EBADMSG);
    cio_buf_free(&out);
    ws_deflate_fini(&st);
}
END_TEST

/* §7.2.3.3 */
START_TEST(rfc_stored_block_inflates)
{
    static const uint8_t in[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00};
    ws_deflate st;
    init(&st, params(false, false, 15, 15), 1024);
    inflate_expect(&st, in, sizeof(in), "Hello");
    ws_deflate_fini(&st);
}
END_TEST

/* §7.2.3.4: a block with BFINAL set ends the stream; the tail and the next
 * messages go on with the same window. */
START_TEST(rfc_bfinal_block_inflates_and_keeps_the_window)
{
    static const uint8_t in[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00};
    ws_deflate st;
    init(&st, params(false, false, 15, 15), 1024);
    inflate_expect(&st, in, sizeof(in), "Hello");
    inflate_expect(&st, hello_again_c, sizeof(hello_again_c), "Hello");
    ws_deflate_fini(&st);
}
END_TEST

/* §7.2.3.5 */
START_TEST(rfc_two_blocks_inflate)
{
    static const uint8_t in[] = {0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff,
                                 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00};
    ws_deflate st;
    init(&st, params(false, false, 15, 15), 1024);
    inflate_expect(&st, in, sizeof(in), "Hello");
    ws_deflate_fini(&st);
}
END_TEST

/* §7.2.3.6 */
START_TEST(rfc_empty_message)
{
    static const uint8_t empty_c[] = {0x00};
    ws_deflate st;
    init(&st, params(false, false, 15, 15), 1024);
    compress_expect(&st, "", empty_c, 1);
    inflate_expect(&st, empty_c, 1, "");
    ws_deflate_fini(&st);
}
END_TEST

/* zlib does not flush twice without input between: an empty message after
 * another one, with context takeover, is still the single byte 0x00. */
START_TEST(empty_message_after_another_with_takeover)
{
    static const uint8_t empty_c[] = {0x00};
    ws_deflate st, peer;
    init(&st, params(false, false, 15, 15), 1024);
    init(&peer, mirror(st.p), 1024);
    compress_expect(&st, "Hello", hello_c, sizeof(hello_c));
    compress_expect(&st, "", empty_c, 1);
    cio_buf c = {0};
    ck_assert_int_eq(ws_deflate_compress(&st, NULL, 0, true, &c), 0); /* no buffer at all */
    ck_assert_int_eq(c.len, 1);
    ck_assert_int_eq(c.p[0], 0);
    cio_buf_free(&c);
    compress_expect(&st, "Hello", hello_again_c, sizeof(hello_again_c));
    inflate_expect(&peer, hello_c, sizeof(hello_c), "Hello");
    inflate_expect(&peer, empty_c, 1, "");
    inflate_expect(&peer, empty_c, 1, "");
    inflate_expect(&peer, hello_again_c, sizeof(hello_again_c), "Hello");
    ws_deflate_fini(&st);
    ws_deflate_fini(&peer);
}
END_TEST

/* A compressed message of no bytes at all is taken as empty, and leaves the
 * window as it was. */
START_TEST(payload_of_no_bytes_is_an_empty_message)
{
    ws_deflate st;
    init(&st, params(false, false, 15, 15), 1024);
    inflate_expect(&st, hello_c, sizeof(hello_c), "Hello");
    inflate_expect(&st, "", 0, "");
    inflate_expect(&st, hello_again_c, sizeof(hello_again_c), "Hello");
    ws_deflate_fini(&st);
}
END_TEST

/* ---- round trips ---------------------------------------------------------------------- */

/* n messages through our compressor into zlib's inflater, then through
 * zlib's compressor into our inflater; with takeover both ways unless p
 * says otherwise. */
static void round_trip(ws_deflate_params p, int nmsg)
{
    ws_deflate st;
    init(&st, p, 1 << 20);
    z_stream zi = {0}, zd = {0};
    ck_assert_int_eq(inflateInit2(&zi, -p.server_max_window_bits), Z_OK);
    int cw = p.client_max_window_bits < 9 ? 9 : p.client_max_window_bits;
    ck_assert_int_eq(deflateInit2(&zd, 6, Z_DEFLATED, -cw, 8, Z_DEFAULT_STRATEGY), Z_OK);
    static char msg[20000];
    cio_buf c = {0}, back = {0};
    for (int i = 0; i < nmsg; i++) {
        size_t n = fill_text(msg, (size_t)(i * 37) % sizeof(msg), (unsigned)i / 3);
        c.len = back.len = 0;
        ck_assert_int_eq(ws_deflate_compress(&st, msg, n, true, &c), 0);
        ck_assert_int_eq(z_decompress(&zi, c.p, c.len, &back, 0), Z_OK);
        ck_assert_int_eq(back.len, n);
        ck_assert(n == 0 || memcmp(back.p, msg, n) == 0);
        if (p.server_no_context_takeover) /* the client may then reset */
            ck_assert_int_eq(inflateReset(&zi), Z_OK);

        c.len = back.len = 0;
        z_compress(&zd, msg, n, &c);
        if (p.client_no_context_takeover)
            ck_assert_int_eq(deflateReset(&zd), Z_OK);
        ck_assert_int_eq(ws_deflate_inflate(&st, c.p, c.len, true, &back), 0);
        ck_assert_int_eq(back.len, n);
        ck_assert(n == 0 || memcmp(back.p, msg, n) == 0);
    }
    cio_buf_free(&c);
    cio_buf_free(&back);
    inflateEnd(&zi);
    deflateEnd(&zd);
    ws_deflate_fini(&st);
}

START_TEST(round_trip_with_context_takeover)
{
    round_trip(params(false, false, 15, 15), 300);
}
END_TEST

START_TEST(round_trip_without_context_takeover)
{
    round_trip(params(true, true, 15, 15), 300);
}
END_TEST

START_TEST(round_trip_mixed_context_takeover)
{
    round_trip(params(true, false, 12, 10), 200);
    round_trip(params(false, true, 10, 12), 200);
}
END_TEST

/* With takeover a message sent again is a match into the previous one. */
START_TEST(takeover_shrinks_a_repeated_message)
{
    char msg[2000];
    size_t n = fill_text(msg, sizeof(msg), 7);
    ws_deflate st;
    init(&st, params(false, false, 15, 15), 1 << 20);
    cio_buf a = {0}, b = {0};
    ck_assert_int_eq(ws_deflate_compress(&st, msg, n, true, &a), 0);
    ck_assert_int_eq(ws_deflate_compress(&st, msg, n, true, &b), 0);
    ck_assert_int_lt(b.len * 4, a.len);
    cio_buf_free(&a);
    cio_buf_free(&b);
    ws_deflate_fini(&st);
}
END_TEST

START_TEST(no_takeover_compresses_every_message_alike)
{
    char msg[2000];
    size_t n = fill_text(msg, sizeof(msg), 7);
    ws_deflate st;
    init(&st, params(true, false, 15, 15), 1 << 20);
    cio_buf a = {0}, b = {0};
    ck_assert_int_eq(ws_deflate_compress(&st, msg, n, true, &a), 0);
    for (int i = 0; i < 5; i++) {
        b.len = 0;
        ck_assert_int_eq(ws_deflate_compress(&st, msg, n, true, &b), 0);
        ck_assert_int_eq(a.len, b.len);
        ck_assert(memcmp(a.p, b.p, a.len) == 0);
    }
    cio_buf_free(&a);
    cio_buf_free(&b);
    ws_deflate_fini(&st);
}
END_TEST

/* Data whose repeats lie at every distance around the window sizes: an
 * inflater with exactly w bits of window fails on any distance past 2^w. */
static size_t fill_far_repeats(uint8_t *p, size_t cap)
{
    static const size_t periods[] = {100, 250, 251, 255, 256, 257, 300, 511, 512, 513, 1000, 4000};
    size_t n = 0;
    for (size_t i = 0; i < sizeof(periods) / sizeof(periods[0]); i++) {
        size_t per = periods[i];
        ck_assert(n + 3 * per <= cap);
        fill_random(p + n, per, (unsigned)i);
        memcpy(p + n + per, p + n, per);
        memcpy(p + n + 2 * per, p + n, per);
        n += 3 * per;
    }
    return n;
}

/* What we deflate with a negotiated window of w bits inflates with w bits,
 * 8 included (deflated with 9, whose distances stay within 250). */
START_TEST(compress_honours_every_window_size)
{
    static uint8_t msg[40000];
    size_t n = fill_far_repeats(msg, sizeof(msg));
    for (int w = 8; w <= 15; w++) {
        for (int level = 1; level <= 9; level += 4) {
            ws_deflate_policy pol = {.level = level};
            ws_deflate_params p = params(false, false, w, 15);
            ws_deflate st;
            ck_assert_int_eq(ws_deflate_init(&st, &p, &pol, 1 << 20), 0);
            z_stream zi = {0};
            ck_assert_int_eq(inflateInit2(&zi, -w), Z_OK);
            cio_buf c = {0}, back = {0};
            for (int i = 0; i < 3; i++) { /* across messages too */
                c.len = back.len = 0;
                ck_assert_int_eq(ws_deflate_compress(&st, msg, n, true, &c), 0);
                ck_assert_msg(z_decompress(&zi, c.p, c.len, &back, 1) == Z_OK, "w=%d level=%d", w,
                              level);
                ck_assert_int_eq(back.len, n);
                ck_assert(memcmp(back.p, msg, n) == 0);
            }
            cio_buf_free(&c);
            cio_buf_free(&back);
            inflateEnd(&zi);
            ws_deflate_fini(&st);
        }
    }
}
END_TEST

START_TEST(inflate_honours_every_window_size)
{
    static uint8_t msg[40000];
    size_t n = fill_far_repeats(msg, sizeof(msg));
    for (int w = 8; w <= 15; w++) {
        ws_deflate st;
        init(&st, params(false, false, 15, w), 1 << 20);
        z_stream zd = {0};
        ck_assert_int_eq(deflateInit2(&zd, 9, Z_DEFLATED, w < 9 ? -9 : -w, 8, Z_DEFAULT_STRATEGY),
                         Z_OK);
        cio_buf c = {0}, back = {0};
        for (int i = 0; i < 3; i++) {
            c.len = back.len = 0;
            z_compress(&zd, msg, n, &c);
            ck_assert_int_eq(ws_deflate_inflate(&st, c.p, c.len, true, &back), 0);
            ck_assert_int_eq(back.len, n);
            ck_assert(memcmp(back.p, msg, n) == 0);
        }
        cio_buf_free(&c);
        cio_buf_free(&back);
        deflateEnd(&zd);
        ws_deflate_fini(&st);
    }
}
END_TEST

/* ---- pieces --------------------------------------------------------------------------- */

START_TEST(inflate_split_at_every_byte)
{
    char msg[3000];
    size_t n = fill_text(msg, sizeof(msg), 3);
    cio_buf c = {0}, out = {0};
    z_compress_once(msg, n, 15, 6, &c);
    for (size_t cut = 0; cut <= c.len; cut++) {
        ws_deflate st;
        init(&st, params(false, false, 15, 15), 1 << 20);
        out.len = 0;
        ck_assert_int_eq(ws_deflate_inflate(&st, c.p, cut, false, &out), 0);
        ck_assert_int_eq(ws_deflate_inflate(&st, c.p + cut, c.len - cut, true, &out), 0);
        ck_assert_int_eq(out.len, n);
        ck_assert(memcmp(out.p, msg, n) == 0);
        ws_deflate_fini(&st);
    }
    cio_buf_free(&c);
    cio_buf_free(&out);
}
END_TEST

START_TEST(inflate_byte_by_byte_then_empty_fin)
{
    char msg[3000];
    size_t n = fill_text(msg, sizeof(msg), 4);
    cio_buf c = {0}, out = {0};
    z_compress_once(msg, n, 15, 6, &c);
    ws_deflate st;
    init(&st, params(false, false, 15, 15), 1 << 20);
    for (int m = 0; m < 3; m++) { /* and the next messages still decode */
        out.len = 0;
        if (m > 0) {
            c.len = 0;
            z_compress_once(msg, n, 15, 6, &c); /* a fresh stream: no reference back */
        }
        for (size_t i = 0; i < c.len; i++)
            ck_assert_int_eq(ws_deflate_inflate(&st, c.p + i, 1, false, &out), 0);
        ck_assert_int_eq(ws_deflate_inflate(&st, NULL, 0, true, &out), 0);
        ck_assert_int_eq(out.len, n);
        ck_assert(memcmp(out.p, msg, n) == 0);
    }
    ws_deflate_fini(&st);
    cio_buf_free(&c);
    cio_buf_free(&out);
}
END_TEST

START_TEST(compress_in_pieces)
{
    static char msg[50000];
    size_t n = fill_text(msg, sizeof(msg), 5);
    ws_deflate st;
    init(&st, params(false, false, 15, 15), 1 << 20);
    z_stream zi = {0};
    ck_assert_int_eq(inflateInit2(&zi, -15), Z_OK);
    cio_buf c = {0}, back = {0};
    static const size_t piece[] = {1, 7, 100, 4096, 20000};
    for (size_t k = 0; k < sizeof(piece) / sizeof(piece[0]); k++) {
        c.len = back.len = 0;
        for (size_t off = 0; off < n; off += piece[k]) {
            size_t len = n - off < piece[k] ? n - off : piece[k];
            ck_assert_int_eq(ws_deflate_compress(&st, msg + off, len, off + len == n, &c), 0);
        }
        ck_assert_int_eq(z_decompress(&zi, c.p, c.len, &back, 0), Z_OK);
        ck_assert_int_eq(back.len, n);
        ck_assert(memcmp(back.p, msg, n) == 0);
    }
    inflateEnd(&zi);
    cio_buf_free(&c);
    cio_buf_free(&back);
    ws_deflate_fini(&st);
}
END_TEST

START_TEST(compress_seg_leaves_headroom)
{
    char msg[1000];
    size_t n = fill_text(msg, sizeof(msg), 6);
    ws_deflate st;
    init(&st, params(true, false, 15, 15), 1 << 20);
    cio_seg *s;
    ck_assert_int_eq(ws_deflate_compress_seg(&st, msg, n, 10, &s), 0);
    ck_assert_uint_eq(s->refs, 1);
    ck_assert_uint_gt(s->len, 10);
    ck_assert_uint_lt(s->len, n);
    ws_deflate peer;
    init(&peer, mirror(st.p), 1 << 20);
    cio_buf back = {0};
    ck_assert_int_eq(ws_deflate_inflate(&peer, s->data + 10, s->len - 10, true, &back), 0);
    ck_assert_int_eq(back.len, n);
    ck_assert(memcmp(back.p, msg, n) == 0);
    cio_seg_unref(s);
    cio_buf_free(&back);
    ws_deflate_fini(&peer);
    ws_deflate_fini(&st);
}
END_TEST

START_TEST(use_compressed_when_it_pays_off)
{
    ws_deflate nct, takeover;
    init(&nct, params(true, false, 15, 15), 1024);
    init(&takeover, params(false, false, 15, 15), 1024);
    ck_assert(ws_deflate_use_compressed(&nct, 100, 99));
    ck_assert(!ws_deflate_use_compressed(&nct, 100, 100));
    ck_assert(!ws_deflate_use_compressed(&nct, 100, 105));
    /* The client's window must see what our window saw. */
    ck_assert(ws_deflate_use_compressed(&takeover, 100, 105));
    ws_deflate_fini(&nct);
    ws_deflate_fini(&takeover);
}
END_TEST

START_TEST(incompressible_message_still_round_trips)
{
    uint8_t msg[5000];
    fill_random(msg, sizeof(msg), 9);
    ws_deflate st, peer;
    init(&st, params(true, false, 15, 15), 1 << 20);
    init(&peer, mirror(st.p), 1 << 20);
    cio_buf c = {0}, back = {0};
    ck_assert_int_eq(ws_deflate_compress(&st, msg, sizeof(msg), true, &c), 0);
    ck_assert_uint_ge(c.len, sizeof(msg));
    ck_assert(!ws_deflate_use_compressed(&st, sizeof(msg), c.len));
    ck_assert_int_eq(ws_deflate_inflate(&peer, c.p, c.len, true, &back), 0);
    ck_assert_int_eq(back.len, sizeof(msg));
    ck_assert(memcmp(back.p, msg, sizeof(msg)) == 0);
    cio_buf_free(&c);
    cio_buf_free(&back);
    ws_deflate_fini(&st);
    ws_deflate_fini(&peer);
}
END_TEST

/* ---- the size limit ------------------------------------------------------------------- */

static int inflate_sized(size_t msg_len, size_t max, size_t *out_cap)
{
    static char msg[20000];
    ck_assert(msg_len <= sizeof(msg));
    size_t n = fill_text(msg, msg_len, 8);
    cio_buf c = {0}, out = {0};
    z_compress_once(msg, n, 15, 6, &c);
    ws_deflate st;
    init(&st, params(false, false, 15, 15), max);
    int rc = ws_deflate_inflate(&st, c.p, c.len, true, &out);
    if (rc == 0) {
        ck_assert_int_eq(out.len, n);
        ck_assert(n == 0 || memcmp(out.p, msg, n) == 0);
    }
    *out_cap = out.cap;
    ws_deflate_fini(&st);
    cio_buf_free(&c);
    cio_buf_free(&out);
    return rc;
}

START_TEST(limit_exactly_reached_is_fine)
{
    size_t cap;
    ck_assert_int_eq(inflate_sized(10000, 10000, &cap), 0);
    ck_assert_uint_le(cap, 10000);
    ck_assert_int_eq(inflate_sized(0, 0, &cap), 0);
}
END_TEST

START_TEST(limit_passed_by_one_byte_fails)
{
    size_t cap;
    ck_assert_int_eq(inflate_sized(10001, 10000, &cap), -EMSGSIZE);
    ck_assert_uint_le(cap, 10000);
    ck_assert_int_eq(inflate_sized(1, 0, &cap), -EMSGSIZE);
}
END_TEST

START_TEST(limit_counts_every_piece_of_a_message)
{
    char msg[6000];
    size_t n = fill_text(msg, sizeof(msg), 10);
    cio_buf c = {0}, out = {0};
    z_compress_once(msg, n, 15, 6, &c);
    ws_deflate st;
    init(&st, params(false, false, 15, 15), 5000);
    size_t half = c.len / 2;
    int rc = ws_deflate_inflate(&st, c.p, half, false, &out);
    if (rc == 0)
        rc = ws_deflate_inflate(&st, c.p + half, c.len - half, true, &out);
    ck_assert_int_eq(rc, -EMSGSIZE);
    ck_assert_uint_le(out.len, 5000);
    ws_deflate_fini(&st);
    cio_buf_free(&c);
    cio_buf_free(&out);
}
END_TEST

START_TEST(limit_is_per_message)
{
    char msg[4000];
    size_t n = fill_text(msg, sizeof(msg), 11);
    ws_deflate st, peer;
    init(&st, params(false, false, 15, 15), 5000);
    init(&peer, mirror(st.p), 1 << 20);
    cio_buf c = {0}, out = {0};
    for (int i = 0; i < 10; i++) {
        c.len = out.len = 0;
        ck_assert_int_eq(ws_deflate_compress(&peer, msg, n, true, &c), 0);
        ck_assert_int_eq(ws_deflate_inflate(&st, c.p, c.len, true, &out), 0);
        ck_assert_int_eq(out.len, n);
    }
    ws_deflate_fini(&st);
    ws_deflate_fini(&peer);
    cio_buf_free(&c);
    cio_buf_free(&out);
}
END_TEST

/* 10 MB of zeros in about 10 KB: inflating stops within the first
 * kilobytes of input, once 1 MiB is out, and nothing beyond 1 MiB is ever
 * allocated for it. */
START_TEST(zip_bomb_stops_at_the_limit)
{
    const size_t big = 10 * 1000 * 1000, max = 1 << 20;
    char *zeros = calloc(1, big);
    ck_assert_ptr_nonnull(zeros);
    cio_buf bomb = {0}, out = {0};
    z_compress_once(zeros, big, 15, 9, &bomb);
    free(zeros);
    ck_assert_uint_lt(bomb.len, 12 * 1000);

    ws_deflate st;
    init(&st, params(false, false, 15, 15), max);
    size_t fed = 0;
    int rc = 0;
    while (rc == 0 && fed < bomb.len) {
        size_t n = bomb.len - fed < 256 ? bomb.len - fed : 256;
        rc = ws_deflate_inflate(&st, bomb.p + fed, n, fed + n == bomb.len, &out);
        fed += n;
    }
    ck_assert_int_eq(rc, -EMSGSIZE);
    ck_assert_uint_le(fed, 2 * bomb.len / 10); /* ~1/10 of the input makes 1 MiB */
    ck_assert_uint_eq(out.len, max);
    ck_assert_uint_le(out.cap, max);
    ck_assert_uint_lt(ws_deflate_memory(&st), 64 * 1024); /* the context, no more */
    ws_deflate_fini(&st);
    cio_buf_free(&bomb);
    cio_buf_free(&out);
}
END_TEST

/* ---- corrupt input -------------------------------------------------------------------- */

static int inflate_raw(ws_deflate_params p, const void *in, size_t n)
{
    ws_deflate st;
    init(&st, p, 1 << 20);
    cio_buf out = {0};
    int rc = ws_deflate_inflate(&st, in, n, true, &out);
    cio_buf_free(&out);
    ws_deflate_fini(&st);
    return rc;
}

START_TEST(corrupt_block_type_rejected)
{
    static const uint8_t in[] = {0x07, 0x00}; /* BTYPE 11 is reserved */
    ck_assert_int_eq(inflate_raw(params(false, false, 15, 15), in, sizeof(in)), -EBADMSG);
}
END_TEST

START_TEST(corrupt_distance_before_the_start_rejected)
{
    /* The second "Hello" of §7.2.3.2 as a first message: nothing to refer to. */
    ck_assert_int_eq(
        inflate_raw(params(false, false, 15, 15), hello_again_c, sizeof(hello_again_c)), -EBADMSG);
}
END_TEST

START_TEST(corrupt_stored_length_rejected)
{
    static const uint8_t in[] = {0x00, 0x05, 0x00, 0xfb, 0xff, 'H', 'e', 'l', 'l', 'o'};
    ck_assert_int_eq(inflate_raw(params(false, false, 15, 15), in, sizeof(in)), -EBADMSG);
}
END_TEST

/* A stored block announcing 10 bytes and given 1 (and the tail): the
 * message ends inside a block. */
START_TEST(message_ending_inside_a_block_rejected)
{
    static const uint8_t in[] = {0x00, 0x0a, 0x00, 0xf5, 0xff, 'H'};
    ck_assert_int_eq(inflate_raw(params(false, false, 15, 15), in, sizeof(in)), -EBADMSG);
}
END_TEST

START_TEST(random_garbage_rejected_or_bounded)
{
    /* Garbage may happen to decode; it must never crash nor exceed the
     * limit, and mostly it is refused. */
    uint8_t in[512];
    int refused = 0;
    for (unsigned seed = 0; seed < 200; seed++) {
        fill_random(in, sizeof(in), seed);
        ws_deflate st;
        init(&st, params(false, false, 15, 15), 4096);
        cio_buf out = {0};
        int rc = ws_deflate_inflate(&st, in, sizeof(in), true, &out);
        ck_assert(rc == 0 || rc == -EBADMSG || rc == -EMSGSIZE);
        ck_assert_uint_le(out.len, 4096);
        refused += rc != 0;
        cio_buf_free(&out);
        ws_deflate_fini(&st);
    }
    ck_assert_int_gt(refused, 190);
}
END_TEST

/* ---- memory ----------------------------------------------------------------------------- */

START_TEST(contexts_are_allocated_lazily)
{
    ws_deflate st, peer;
    init(&st, params(false, false, 15, 15), 1 << 20);
    init(&peer, mirror(st.p), 1 << 20);
    ck_assert_uint_eq(ws_deflate_memory(&st), 0);
    cio_buf c = {0}, out = {0};
    ck_assert_int_eq(ws_deflate_compress(&st, "hello", 5, true, &c), 0);
    size_t def = ws_deflate_memory(&st);
    ck_assert_uint_gt(def, 32768 * 4); /* a deflate context, window 15 */
    c.len = 0;
    ck_assert_int_eq(ws_deflate_compress(&peer, "hello", 5, true, &c), 0);
    ck_assert_int_eq(ws_deflate_inflate(&st, c.p, c.len, true, &out), 0);
    ck_assert_uint_gt(ws_deflate_memory(&st), def + 32768); /* and an inflate context */
    cio_buf_free(&c);
    cio_buf_free(&out);
    ws_deflate_fini(&st);
    ws_deflate_fini(&peer);
}
END_TEST

/* The documented cost of a context: 2^w of window for inflate, 4 * 2^w plus
 * 2^(m+9) for deflate, plus a state of a few kilobytes. */
START_TEST(context_memory_follows_window_and_mem_level)
{
    for (int w = 8; w <= 15; w++) {
        for (int m = 1; m <= 9; m += 4) {
            ws_deflate_policy pol = {.mem_level = m};
            ws_deflate_params p = params(false, false, w, w);
            ws_deflate st, peer;
            ck_assert_int_eq(ws_deflate_init(&st, &p, &pol, 1 << 20), 0);
            init(&peer, mirror(p), 1 << 20);
            cio_buf c = {0}, out = {0};
            ck_assert_int_eq(ws_deflate_compress(&st, "hello hello", 11, true, &c), 0);
            size_t dw = (size_t)1 << (w < 9 ? 9 : w);
            size_t def = ws_deflate_memory(&st), def_min = 4 * dw + ((size_t)1 << (m + 9));
            ck_assert_uint_gt(def, def_min);
            ck_assert_uint_le(def, def_min + 8192);
            c.len = 0;
            ck_assert_int_eq(ws_deflate_compress(&peer, "hello hello", 11, true, &c), 0);
            ck_assert_int_eq(ws_deflate_inflate(&st, c.p, c.len, true, &out), 0);
            size_t inf = ws_deflate_memory(&st) - def;
            ck_assert_uint_gt(inf, (size_t)1 << w);
            ck_assert_uint_le(inf, ((size_t)1 << w) + 8192);
            cio_buf_free(&c);
            cio_buf_free(&out);
            ws_deflate_fini(&st);
            ws_deflate_fini(&peer);
        }
    }
}
END_TEST

/* Exchanges messages between st and a peer that never goes idle, with st
 * going idle between them; checks memory while idle. */
static void idle_exchange(ws_deflate_params p, size_t idle_max, bool takeover_pays)
{
    ws_deflate st, peer;
    init(&st, p, 1 << 20);
    init(&peer, mirror(p), 1 << 20);
    char msg[3000];
    cio_buf c = {0}, out = {0};
    size_t first = 0;
    for (int i = 0; i < 20; i++) {
        size_t n = fill_text(msg, sizeof(msg), (unsigned)i % 2); /* repeats: takeover pays */
        c.len = out.len = 0;
        ck_assert_int_eq(ws_deflate_compress(&st, msg, n, true, &c), 0);
        if (i == 0)
            first = c.len;
        else if (takeover_pays && i >= 2)
            ck_assert_uint_lt(c.len * 2, first); /* the window survived idleness */
        ck_assert_int_eq(ws_deflate_inflate(&peer, c.p, c.len, true, &out), 0);
        ck_assert_int_eq(out.len, n);
        ck_assert(memcmp(out.p, msg, n) == 0);

        c.len = out.len = 0;
        ck_assert_int_eq(ws_deflate_compress(&peer, msg, n, true, &c), 0);
        ck_assert_int_eq(ws_deflate_inflate(&st, c.p, c.len, true, &out), 0);
        ck_assert_int_eq(out.len, n);
        ck_assert(memcmp(out.p, msg, n) == 0);

        size_t live = ws_deflate_memory(&st);
        ws_deflate_idle(&st);
        ck_assert_uint_le(ws_deflate_memory(&st), idle_max);
        ck_assert_uint_lt(ws_deflate_memory(&st), live);
    }
    cio_buf_free(&c);
    cio_buf_free(&out);
    ws_deflate_fini(&st);
    ws_deflate_fini(&peer);
}

START_TEST(idle_frees_everything_without_takeover)
{
    idle_exchange(params(true, true, 15, 15), 0, false);
}
END_TEST

START_TEST(idle_keeps_only_the_windows_with_takeover)
{
    idle_exchange(params(false, false, 15, 15), 2 * 32768, true);
}
END_TEST

START_TEST(idle_keeps_small_windows_small)
{
    idle_exchange(params(false, false, 10, 9), 1024 + 512, false); /* 3 KB messages: too far */
}
END_TEST

/* Idle in the middle of a message frees nothing of that message. */
START_TEST(idle_leaves_a_message_in_progress)
{
    char msg[5000];
    size_t n = fill_text(msg, sizeof(msg), 12);
    cio_buf zc = {0}, out = {0}, c = {0}, back = {0};
    z_compress_once(msg, n, 15, 6, &zc);
    ws_deflate st, peer;
    init(&st, params(true, true, 15, 15), 1 << 20);
    init(&peer, mirror(st.p), 1 << 20);
    size_t half = zc.len / 2;
    ck_assert_int_eq(ws_deflate_inflate(&st, zc.p, half, false, &out), 0);
    ck_assert_int_eq(ws_deflate_compress(&st, msg, 1000, false, &c), 0);
    size_t live = ws_deflate_memory(&st);
    ws_deflate_idle(&st);
    ck_assert_uint_eq(ws_deflate_memory(&st), live);

    ck_assert_int_eq(ws_deflate_inflate(&st, zc.p + half, zc.len - half, true, &out), 0);
    ck_assert_int_eq(out.len, n);
    ck_assert(memcmp(out.p, msg, n) == 0);
    ck_assert_int_eq(ws_deflate_compress(&st, msg + 1000, n - 1000, true, &c), 0);
    ck_assert_int_eq(ws_deflate_inflate(&peer, c.p, c.len, true, &back), 0);
    ck_assert_int_eq(back.len, n);
    ck_assert(memcmp(back.p, msg, n) == 0);
    ws_deflate_idle(&st);
    ck_assert_uint_eq(ws_deflate_memory(&st), 0);
    ws_deflate_fini(&st);
    ws_deflate_fini(&peer);
    cio_buf_free(&zc);
    cio_buf_free(&out);
    cio_buf_free(&c);
    cio_buf_free(&back);
}
END_TEST

/* ---- allocation failures -------------------------------------------------------------- */

/* Every allocation of a compress-and-inflate exchange fails in turn: each
 * call reports -ENOMEM or works, nothing leaks (ASan), fini always works. */
START_TEST(allocation_failures_are_reported)
{
    char msg[3000];
    size_t n = fill_text(msg, sizeof(msg), 13);
    cio_buf zc = {0};
    z_compress_once(msg, n, 15, 6, &zc);
    int failures = 0;
    for (long k = 0; k < 40; k++) {
        ws_deflate st;
        init(&st, params(false, false, 15, 15), 1 << 20);
        cio_buf c = {0}, out = {0};
        fail_in = k;
        int rc1 = ws_deflate_compress(&st, msg, n, true, &c);
        int rc2 = ws_deflate_inflate(&st, zc.p, zc.len, true, &out);
        ws_deflate_idle(&st);
        int rc3 = ws_deflate_compress(&st, msg, n, true, &c);
        fail_in = -1;
        ck_assert(rc1 == 0 || rc1 == -ENOMEM);
        ck_assert(rc2 == 0 || rc2 == -ENOMEM);
        ck_assert(rc3 == 0 || rc3 == -ENOMEM);
        failures += rc1 || rc2 || rc3;
        if (rc2 == 0) {
            ck_assert_int_eq(out.len, n);
            ck_assert(memcmp(out.p, msg, n) == 0);
        }
        cio_buf_free(&c);
        cio_buf_free(&out);
        ws_deflate_fini(&st);
    }
    ck_assert_int_gt(failures, 5);
    cio_buf_free(&zc);
}
END_TEST

static Suite *ws_deflate_suite(void)
{
    Suite *s = suite_create("ws_deflate");
    T_CASE(s, negotiate_plain_offer, 5);
    T_CASE(s, negotiate_server_no_context_takeover_offered, 5);
    T_CASE(s, negotiate_server_no_context_takeover_forced_by_policy, 5);
    T_CASE(s, negotiate_client_no_context_takeover_offered, 5);
    T_CASE(s, negotiate_client_no_context_takeover_asked_by_policy, 5);
    T_CASE(s, negotiate_server_max_window_bits_honoured, 5);
    T_CASE(s, negotiate_server_max_window_bits_below_offer_by_policy, 5);
    T_CASE(s, negotiate_server_max_window_bits_offer_below_policy, 5);
    T_CASE(s, negotiate_server_max_window_bits_from_policy_alone, 5);
    T_CASE(s, negotiate_server_max_window_bits_15_answered, 5);
    T_CASE(s, negotiate_client_max_window_bits_without_value, 5);
    T_CASE(s, negotiate_client_max_window_bits_chosen_by_policy, 5);
    T_CASE(s, negotiate_client_max_window_bits_hint_taken, 5);
    T_CASE(s, negotiate_client_max_window_bits_not_offered_not_limited, 5);
    T_CASE(s, negotiate_every_parameter_response_text, 5);
    T_CASE(s, negotiate_first_acceptable_offer_wins, 5);
    T_CASE(s, negotiate_invalid_offer_skipped_for_the_next, 5);
    T_CASE(s, negotiate_declines_unknown_parameter, 5);
    T_CASE(s, negotiate_declines_bad_window_bits, 5);
    T_CASE(s, negotiate_declines_repeated_parameter, 5);
    T_CASE(s, negotiate_declines_value_on_a_flag, 5);
    T_CASE(s, negotiate_declines_server_max_window_bits_without_value, 5);
    T_CASE(s, negotiate_quoted_values, 5);
    T_CASE(s, negotiate_whitespace_and_case, 5);
    T_CASE(s, negotiate_empty_list_elements, 5);
    T_CASE(s, negotiate_other_extensions_only, 5);
    T_CASE(s, negotiate_quoted_comma_in_other_extension, 5);
    T_CASE(s, negotiate_malformed_value_is_an_error, 5);
    T_CASE(s, negotiate_malformed_after_acceptable_offer_is_an_error, 5);
    T_CASE(s, negotiate_response_buffer_too_small, 5);
    T_CASE(s, negotiate_bad_policy, 5);
    T_CASE(s, rfc_hello_inflates, 5);
    T_CASE(s, rfc_hello_compresses, 5);
    T_CASE(s, rfc_hello_twice_with_takeover_inflates, 5);
    T_CASE(s, rfc_hello_twice_with_takeover_compresses, 5);
    T_CASE(s, rfc_hello_twice_without_takeover_compresses_alike, 5);
    T_CASE(s, rfc_hello_again_without_takeover_is_corrupt, 5);
    T_CASE(s, rfc_stored_block_inflates, 5);
    T_CASE(s, rfc_bfinal_block_inflates_and_keeps_the_window, 5);
    T_CASE(s, rfc_two_blocks_inflate, 5);
    T_CASE(s, rfc_empty_message, 5);
    T_CASE(s, empty_message_after_another_with_takeover, 5);
    T_CASE(s, payload_of_no_bytes_is_an_empty_message, 5);
    T_CASE(s, round_trip_with_context_takeover, 30);
    T_CASE(s, round_trip_without_context_takeover, 30);
    T_CASE(s, round_trip_mixed_context_takeover, 30);
    T_CASE(s, takeover_shrinks_a_repeated_message, 5);
    T_CASE(s, no_takeover_compresses_every_message_alike, 5);
    T_CASE(s, compress_honours_every_window_size, 30);
    T_CASE(s, inflate_honours_every_window_size, 30);
    T_CASE(s, inflate_split_at_every_byte, 60);
    T_CASE(s, inflate_byte_by_byte_then_empty_fin, 30);
    T_CASE(s, compress_in_pieces, 30);
    T_CASE(s, compress_seg_leaves_headroom, 5);
    T_CASE(s, use_compressed_when_it_pays_off, 5);
    T_CASE(s, incompressible_message_still_round_trips, 5);
    T_CASE(s, limit_exactly_reached_is_fine, 5);
    T_CASE(s, limit_passed_by_one_byte_fails, 5);
    T_CASE(s, limit_counts_every_piece_of_a_message, 5);
    T_CASE(s, limit_is_per_message, 5);
    T_CASE(s, zip_bomb_stops_at_the_limit, 60);
    T_CASE(s, corrupt_block_type_rejected, 5);
    T_CASE(s, corrupt_distance_before_the_start_rejected, 5);
    T_CASE(s, corrupt_stored_length_rejected, 5);
    T_CASE(s, message_ending_inside_a_block_rejected, 5);
    T_CASE(s, random_garbage_rejected_or_bounded, 30);
    T_CASE(s, contexts_are_allocated_lazily, 5);
    T_CASE(s, context_memory_follows_window_and_mem_level, 30);
    T_CASE(s, idle_frees_everything_without_takeover, 30);
    T_CASE(s, idle_keeps_only_the_windows_with_takeover, 30);
    T_CASE(s, idle_keeps_small_windows_small, 30);
    T_CASE(s, idle_leaves_a_message_in_progress, 5);
    T_CASE(s, allocation_failures_are_reported, 30);
    return s;
}

T_MAIN(ws_deflate_suite)
