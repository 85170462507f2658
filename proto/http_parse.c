/*
 * http_parse.c - the llhttp glue that requests (the server, http_conn.c) and
 * responses (the client, http_client.c) share: header fields kept as spans
 * into the message's input, the checks strict llhttp 8.1 does not make,
 * body data gathered right after the head with chunk framing dropped, and
 * the bounds on what a peer may send between pieces of data.
 *
 * Each side's llhttp callbacks call these and turn a non-zero result (an
 * HTTP status: 400, 431, 503) into its own error: the server answers it,
 * the client fails the request with -EPROTO or -EMSGSIZE.
 */
#include "http_internal.h"

#include <stdlib.h>
#include <string.h>

int http_field_name(http_fields *f, const char *base, const char *at, size_t len)
{
    f->name_len += (uint32_t)len;
    if (f->n == 0 || f->in_value) {
        if (f->n == f->cap) {
            uint32_t cap = f->cap ? f->cap * 2 : 16;
            http_header *h = realloc(f->hdrs, cap * sizeof(*h));
            if (!h)
                return 503;
            f->hdrs = h;
            f->cap = cap;
        }
        f->hdrs[f->n++] = (http_header){{0, 0}, {0, 0}};
        f->in_value = false;
    }
    http_span *s = &f->hdrs[f->n - 1].name;
    if (s->len == 0)
        s->off = (uint32_t)(at - base);
    s->len += (uint32_t)len;
    return 0;
}

/* What llhttp 8.1 lets through even in strict mode: an empty field name
 * (": x"). And, should a lenient llhttp ever be linked, whitespace or any
 * other byte between the name and its colon (RFC 9112 5.1): the name span
 * must end right at the colon. */
int http_field_name_done(http_fields *f, const char *base, bool trailer)
{
    uint32_t len = f->name_len;
    f->name_len = 0;
    if (len == 0)
        return 400;
    if (trailer)
        return 0; /* not kept */
    http_span name = f->hdrs[f->n - 1].name;
    return base[name.off + name.len] == ':' ? 0 : 400;
}

int http_field_value(http_fields *f, const char *base, const char *at, size_t len)
{
    http_header *h = &f->hdrs[f->n - 1];
    http_span *v = &h->value;
    /* The input is contiguous, so a gap between two pieces of one value, or
     * a line break between the colon and the value, is obsolete line
     * folding, which llhttp 8.1 lets through ("Transfer-Encoding:\r\n
     * chunked" would be chunked to it). */
    const char *colon = base + h->name.off + h->name.len;
    if (v->len ? at != base + v->off + v->len : memchr(colon, '\n', (size_t)(at - colon)) != NULL)
        return 400;
    f->in_value = true;
    if (v->len == 0)
        v->off = (uint32_t)(at - base);
    v->len += (uint32_t)len;
    return 0;
}

http_header *http_field_value_done(http_fields *f, const char *base)
{
    f->in_value = true; /* also for an empty value: the next field is new */
    http_header *h = &f->hdrs[f->n - 1];
    /* llhttp keeps trailing whitespace in the value; the field value does
     * not include it (RFC 9110 5.5). */
    while (h->value.len && (base[h->value.off + h->value.len - 1] == ' ' ||
                            base[h->value.off + h->value.len - 1] == '\t'))
        h->value.len--;
    return h;
}

int http_field_kind(const char *base, const http_header *h)
{
    cio_str name = {base + h->name.off, h->name.len};
    if (http_str_ieq_lit(name, "host"))
        return HTTP_FIELD_HOST;
    if (http_str_ieq_lit(name, "content-length"))
        return HTTP_FIELD_LENGTH;
    if (http_str_ieq_lit(name, "transfer-encoding"))
        return HTTP_FIELD_TE;
    if (http_str_ieq_lit(name, "expect"))
        return HTTP_FIELD_EXPECT;
    return HTTP_FIELD_OTHER;
}

int http_trailer_bytes(http_fields *f, size_t len, uint64_t max)
{
    f->trailer_bytes += (uint32_t)len;
    return f->trailer_bytes > max ? 431 : 0;
}

void http_fields_shift(http_fields *f, uint32_t by)
{
    for (uint32_t i = 0; i < f->n; i++) {
        if (f->hdrs[i].name.len)
            f->hdrs[i].name.off -= by;
        if (f->hdrs[i].value.len)
            f->hdrs[i].value.off -= by;
    }
}

bool http_framing_bad(bool has_te, bool has_length, int minor, bool chunked)
{
    /* RFC 9112 6.1 and 6.3: Transfer-Encoding with Content-Length, in an
     * HTTP/1.0 message, or without chunked last (an empty value) is faulty
     * framing; llhttp catches some of these, not all. */
    return has_te && (has_length || minor == 0 || !chunked);
}

void http_body_add(char *in, http_span *body, uint32_t head_end, http_chunks *ck, const char *at,
                   size_t len)
{
    if (body->len == 0)
        body->off = head_end;
    if (at != in + body->off + body->len)
        memmove(in + body->off + body->len, at, len);
    body->len += (uint32_t)len;
    ck->data_end = (uint32_t)(at + len - in); /* where it was read: framing follows */
    ck->data_seen = true;
}

int http_drop_framing(cio_buf *in, uint32_t *parsed, uint32_t keep, http_chunks *ck,
                      uint64_t max_trailer)
{
    if (*parsed <= keep)
        return 0;
    uint32_t extra = *parsed - keep;
    /* The run counts from the end of the last data of this read (the
     * framing before it was between two pieces of data, already bounded). */
    ck->frame_run = ck->data_seen ? *parsed - ck->data_end : ck->frame_run + extra;
    ck->data_seen = false;
    uint64_t limit = HTTP_CHUNK_LINE_MAX + (ck->trailers ? max_trailer : 0);
    if (ck->frame_run > limit)
        return ck->trailers ? 431 : 400;
    memmove(in->p + keep, in->p + *parsed, in->len - *parsed);
    in->len -= extra;
    *parsed = keep;
    return 0;
}
