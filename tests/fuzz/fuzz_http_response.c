/*
 * fuzz_http_response.c - libFuzzer harness: arbitrary bytes through the
 * HTTP client's response parser (http_resp_*, proto/http_client.c), fed as
 * the client feeds it: appended to rp.in one read at a time, parsed after
 * each, then the end of stream. A complete response is taken and checked.
 *
 * The first input byte: bit 0 says the request was a HEAD; the other bits
 * pick the read size (0: everything at once, else 1 to 253 bytes). The rest
 * is what the server sent. The limits are small so that they are reached.
 *
 *   CC=clang cmake -S . -B build-fuzz -DCORIO_FUZZ=ON -DCORIO_SANITIZE=address,undefined
 *   cmake --build build-fuzz --target fuzz_http_response
 *   ./build-fuzz/tests/fuzz_http_response -max_total_time=600 \
 *       -dict=tests/fuzz/http_response.dict corpus-dir tests/fuzz/corpus/http_response
 */
#include "http_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BYTES 2048
#define MAX_HEAD  512

#define CHECK(c)      \
    do {              \
        if (!(c))     \
            abort();  \
    } while (0)

/* s lies inside [base, base + len) (an empty string may be the "" literal). */
static void check_inside(cio_str s, const char *base, size_t len)
{
    if (s.n == 0 && s.p && *s.p == 0)
        return;
    CHECK(s.p && s.p >= base && s.p + s.n <= base + len);
}

static bool has_crlf_nul(cio_str s)
{
    return memchr(s.p, '\r', s.n) || memchr(s.p, '\n', s.n) || memchr(s.p, 0, s.n);
}

static void check_response(const cio_http_response *r, size_t len, bool head, const uint8_t *in,
                           size_t in_len)
{
    CHECK(r->status >= 100 && r->status <= 999);
    CHECK(r->status >= 200); /* interim responses are skipped */
    CHECK(r->version_minor == 0 || r->version_minor == 1);
    CHECK(r->raw_);
    CHECK(r->nheaders == 0 || r->headers);
    CHECK(r->body.p && r->body.p[r->body.n] == 0); /* NUL-terminated */
    check_inside(r->body, r->raw_, len);
    CHECK(r->body.n <= MAX_BYTES);
    if (head || r->status == 204 || r->status == 304)
        CHECK(r->body.n == 0);
    for (size_t i = 0; i < r->nheaders; i++) {
        const cio_http_field *h = &r->headers[i];
        CHECK(h->name.n > 0);
        check_inside(h->name, r->raw_, len);
        check_inside(h->value, r->raw_, len);
        CHECK(!has_crlf_nul(h->name) && !memchr(h->name.p, ':', h->name.n));
        CHECK(!has_crlf_nul(h->value));
        /* Not overwritten by the body gathered after the head: the bytes
         * are the server's. */
        CHECK(memmem(in, in_len, h->name.p, h->name.n));
        CHECK(h->value.n == 0 || memmem(in, in_len, h->value.p, h->value.n));
        if (h->value.n)
            CHECK(h->value.p[h->value.n - 1] != ' ' && h->value.p[h->value.n - 1] != '\t');
    }
    CHECK(cio_http_response_header(r, "transfer-encoding").p ||
          r->body.n == 0 || memmem(in, in_len, r->body.p, r->body.n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    bool head = data[0] & 1;
    unsigned k = data[0] >> 1;
    size_t piece = k == 0 ? 0 : k < 64 ? k : 64 + (k - 64) * 3;
    data++, size--;

    http_resp_parser rp = {0};
    http_resp_init(&rp, head, MAX_BYTES, MAX_HEAD);
    int r = 0;
    size_t off = 0;
    while (r == 0 && off < size) {
        size_t n = piece && piece < size - off ? piece : size - off;
        char *space = cio_buf_space(&rp.in, n);
        CHECK(space);
        memcpy(space, data + off, n);
        rp.in.len += n;
        off += n;
        r = http_resp_parse(&rp);
        /* What is held is bounded by the limits, not by what is sent: the
         * heads (interim ones included), the body, the framing of a read. */
        CHECK(rp.in.len <= MAX_BYTES + 2 * MAX_HEAD + HTTP_CHUNK_LINE_MAX + 2 * n);
    }
    if (r == 0)
        r = http_resp_eof(&rp);
    if (r == 1) {
        size_t len = rp.in.len;
        cio_http_response resp;
        CHECK(http_resp_take(&rp, &resp) == 0);
        check_response(&resp, len, head, data, size);
        cio_http_response_free(&resp);
        CHECK(!resp.raw_ && !resp.headers);
    } else {
        CHECK(r == -EPROTO || r == -EMSGSIZE || r == -EPIPE);
    }
    http_resp_fini(&rp);
    return 0;
}
