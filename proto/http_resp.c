/*
 * http_resp.c - response heads and bodies, canned error responses, the Date
 * header (formatted once per second) and the access log.
 */
#include "http_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

const char *cio_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* ---- clock ------------------------------------------------------------------------ */

void http_clock_update(cio_http_server *srv)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec == srv->clock_sec)
        return;
    srv->clock_sec = ts.tv_sec;
    cio_http_date(ts.tv_sec, srv->date);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    strftime(srv->clf_time, sizeof(srv->clf_time), "%d/%b/%Y:%H:%M:%S +0000", &tm);
    strftime(srv->iso_time, sizeof(srv->iso_time), "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- heads -------------------------------------------------------------------------- */

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static bool status_has_body(int status)
{
    return !(status < 200 || status == 204 || status == 304);
}

/* Keep the connection after this response? */
static bool keep_alive(cio_http_req *r)
{
    cio_http_conn *c = r->conn;
    cio_http_server *srv = c->srv;
    if (!r->keep_alive || c->close_after || srv->shutting || srv->o.keepalive_timeout == 0 ||
        r->upgrade || c->state == C_CLOSING)
        return false;
    return srv->o.max_requests_per_conn == 0 || c->nreq + 1 < srv->o.max_requests_per_conn;
}

int http_write_head(cio_http_req *r, int status, const char *content_type, int64_t length)
{
    cio_http_conn *c = r->conn;
    cio_http_server *srv = c->srv;
    http_clock_update(srv);
    bool keep = keep_alive(r);
    bool body = status_has_body(status);
    if (body && length < 0) {
        if (r->minor >= 1)
            r->chunked = true;
        else
            r->close_delimited = true, keep = false;
    }
    size_t ct_len = content_type ? strlen(content_type) : 0;
    char *p0 = cio_sendq_reserve(&c->act->sq, 256 + ct_len + r->extra.len);
    if (!p0)
        return -ENOMEM;
    const char *reason = cio_http_reason(status);
    char *p = PUT_LIT(p0, "HTTP/1.1 ");
    p = put_u64(p, (uint64_t)status);
    *p++ = ' ';
    p = put(p, reason, strlen(reason));
    p = PUT_LIT(p, "\r\nServer: ");
    p = put(p, srv->server_hdr, srv->server_hdr_len);
    p = PUT_LIT(p, "\r\nDate: ");
    p = put(p, srv->date, 29);
    p = PUT_LIT(p, "\r\n");
    if (content_type && body) {
        p = PUT_LIT(p, "Content-Type: ");
        p = put(p, content_type, ct_len);
        p = PUT_LIT(p, "\r\n");
    }
    if (body && length >= 0) {
        p = PUT_LIT(p, "Content-Length: ");
        p = put_u64(p, (uint64_t)length);
        p = PUT_LIT(p, "\r\n");
    } else if (r->chunked) {
        p = PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
    }
    if (status == 101)
        keep = true; /* Upgrade and Connection: Upgrade come with the added headers */
    else if (!keep)
        p = PUT_LIT(p, "Connection: close\r\n");
    else if (r->minor == 0)
        p = PUT_LIT(p, "Connection: keep-alive\r\n");
    if (r->extra.len)
        p = put(p, r->extra.p, r->extra.len);
    p = PUT_LIT(p, "\r\n");
    cio_sendq_commit(&c->act->sq, (size_t)(p - p0));
    if (!keep)
        c->close_after = true;
    r->status = status;
    r->body_left = body ? length : 0;
    if (r->scope)
        r->scope->deadline = CIO_NEVER; /* the handler deadline ends where the response starts */
    if (!body)
        r->chunked = false, r->close_delimited = false;
    c->srv->st.requests++;
    if (status >= 500)
        c->srv->st.errors_5xx++;
    else if (status >= 400)
        c->srv->st.errors_4xx++;
    return 0;
}

int cio_http_add_header(cio_http_req *r, const char *name, const char *value)
{
    if (r->resp_state != RESP_NONE)
        return -EALREADY;
    size_t nl = strlen(name), vl = strlen(value), need = nl + vl + 4;
    if (memchr(name, '\n', nl) || memchr(value, '\n', vl) || memchr(name, '\r', nl) ||
        memchr(value, '\r', vl))
        return -EINVAL; /* no header injection */
    char *p0 = cio_buf_space(&r->extra, need);
    if (!p0)
        return -ENOMEM;
    char *p = put(p0, name, nl);
    p = PUT_LIT(p, ": ");
    p = put(p, value, vl);
    p = PUT_LIT(p, "\r\n");
    r->extra.len += (size_t)(p - p0);
    return 0;
}

/* Flushes now (streamed bodies always do) unless more pipelined requests are
 * waiting: then the whole batch leaves in one send. Applies backpressure. */
static int after_write(cio_http_req *r, bool stream)
{
    cio_http_conn *c = r->conn;
    http_active *a = c->act;
    if (stream || a->in.len <= a->parsed)
        http_conn_flush(c);
    return http_out_wait(c);
}

/* Appends a body in pieces of at most the high watermark, waiting for the
 * peer between them. */
static int append_body(cio_http_req *r, const void *data, size_t len)
{
    cio_sendq *q = &r->conn->act->sq;
    const char *p = data;
    while (len) {
        size_t n = len < q->high ? len : q->high;
        if (cio_sendq_append(q, p, n) < 0)
            return -ENOMEM;
        p += n;
        len -= n;
        if (len) {
            int rc = http_out_wait(r->conn);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int http_respond_status(cio_http_req *r, int status)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "%d %s\n", status, cio_http_reason(status));
    return cio_http_respond(r, status, "text/plain; charset=utf-8", body, (size_t)n);
}

int cio_http_upgrade(cio_http_req *r, const char *protocol, const cio_http_upgrade_ops *ops,
                     void *ud)
{
    if (r->resp_state != RESP_NONE)
        return -EALREADY;
    if (!r->upgrade || r->minor == 0 || !protocol || !ops)
        return -EINVAL;
    if (r->streaming && !r->complete)
        return -EINVAL; /* the rest of the body would reach the new protocol */
    /* After the handler's own headers, all written into the head as added. */
    size_t added = r->extra.len;
    int rc = cio_http_add_header(r, "Upgrade", protocol);
    rc = rc ? rc : cio_http_add_header(r, "Connection", "Upgrade");
    if (rc < 0) {
        r->extra.len = added;
        return rc;
    }
    rc = http_write_head(r, 101, NULL, 0);
    if (rc < 0)
        return rc;
    r->resp_state = RESP_DONE;
    r->conn->up = ops;
    r->conn->up_ud = ud;
    return after_write(r, false);
}

int cio_http_respond(cio_http_req *r, int status, const char *content_type, const void *body,
                     size_t len)
{
    if (r->resp_state != RESP_NONE)
        return -EALREADY;
    int rc = http_write_head(r, status, content_type, (int64_t)len);
    if (rc < 0)
        return rc;
    r->resp_state = RESP_DONE;
    if (!r->head_only && status_has_body(status) && len) {
        rc = append_body(r, body, len);
        if (rc < 0)
            return rc;
        r->bytes_sent = len;
    }
    return after_write(r, false);
}

int cio_http_start(cio_http_req *r, int status, const char *content_type, int64_t content_length)
{
    if (r->resp_state != RESP_NONE)
        return -EALREADY;
    int rc = http_write_head(r, status, content_type, content_length);
    if (rc < 0)
        return rc;
    r->resp_state = RESP_STREAMING;
    return 0;
}

int cio_http_write(cio_http_req *r, const void *data, size_t len)
{
    if (r->resp_state != RESP_STREAMING)
        return -EINVAL;
    if (len == 0)
        return 0;
    if (!r->chunked && !r->close_delimited) {
        if ((int64_t)len > r->body_left)
            return -EMSGSIZE; /* more than the announced Content-Length */
        r->body_left -= (int64_t)len;
    }
    if (r->head_only || !status_has_body(r->status))
        return 0;
    r->bytes_sent += len;
    if (r->chunked) {
        char hdr[24];
        int n = snprintf(hdr, sizeof(hdr), "%zx\r\n", len);
        if (cio_sendq_append(&r->conn->act->sq, hdr, (size_t)n) < 0)
            return -ENOMEM;
    }
    int rc = append_body(r, data, len);
    if (rc < 0)
        return rc;
    if (r->chunked && cio_sendq_append(&r->conn->act->sq, "\r\n", 2) < 0)
        return -ENOMEM;
    return after_write(r, true); /* streamed bodies go out as they are written */
}

int cio_http_end(cio_http_req *r)
{
    if (r->resp_state != RESP_STREAMING)
        return -EINVAL;
    r->resp_state = RESP_DONE;
    if (r->chunked && !r->head_only && cio_sendq_append(&r->conn->act->sq, "0\r\n\r\n", 5) < 0)
        return -ENOMEM;
    if (!r->chunked && !r->close_delimited && !r->head_only && r->body_left > 0) {
        r->conn->close_after = true; /* truncated: the peer must notice */
        return -EPIPE;
    }
    if (r->close_delimited)
        r->conn->close_after = true;
    return after_write(r, false);
}

void http_finish_response(cio_http_req *r)
{
    if (r->resp_state == RESP_STREAMING)
        (void)cio_http_end(r); /* the handler returned without ending it */
}

int http_error_response(cio_http_conn *c, int status)
{
    http_active *a = c->act;
    cio_http_req *r = &a->req;
    /* The request is finished for good: whatever else of it arrives is
     * discarded, and no handler runs for it. */
    if (!r->err_status)
        r->err_status = (uint16_t)status;
    r->complete = false;
    c->close_after = true;
    r->keep_alive = false;
    r->resp_state = RESP_NONE;
    r->head_only = r->head_done && r->method == HTTP_HEAD;
    r->extra.len = 0;
    if (status == 405)
        (void)cio_http_add_header(r, "Allow", r->allow ? r->allow : c->srv->allow_all);
    if (status == 503)
        (void)cio_http_add_header(r, "Retry-After", "1"); /* out of memory or budget: brief */
    (void)http_respond_status(r, status);
    http_request_done(r);
    if (!a->task)
        http_conn_flush(c); /* a task flushes when it ends */
    return 0;
}

/* ---- access log (combined format) ------------------------------------------------------- */

static size_t put_escaped(char *dst, const char *s, size_t n, size_t room)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < room; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') {
            dst[o++] = '\\', dst[o++] = 'x';
            dst[o++] = hex[ch >> 4], dst[o++] = hex[ch & 15];
        } else {
            dst[o++] = (char)ch;
        }
    }
    return o;
}

/* A JSON string's contents: quotes, backslashes, control and non-ASCII
 * bytes (a request's bytes need not be UTF-8) as \u00XX escapes. */
static size_t put_json(char *dst, const char *s, size_t n, size_t room)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n && o + 6 < room; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            dst[o++] = '\\', dst[o++] = (char)ch;
        } else if (ch < 0x20 || ch >= 0x7f) {
            memcpy(dst + o, "\\u00", 4);
            dst[o + 4] = hex[ch >> 4], dst[o + 5] = hex[ch & 15];
            o += 6;
        } else {
            dst[o++] = (char)ch;
        }
    }
    return o;
}

static void remote_text(const cio_http_conn *c, char *out, size_t len)
{
    if (!c->rfamily || !inet_ntop(c->rfamily, c->raddr, out, (socklen_t)len))
        snprintf(out, len, "-");
}

static void http_access_log(cio_http_req *r);

const double cio_http_duration_bounds[CIO_HTTP_DURATION_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};
static const cio_time duration_bounds_ns[CIO_HTTP_DURATION_BUCKETS] = {
    CIO_US(1000), CIO_US(2500), CIO_MS(5),   CIO_MS(10),  CIO_MS(25),  CIO_MS(50),
    CIO_MS(100),  CIO_MS(250),  CIO_MS(500), CIO_SEC(1),  CIO_MS(2500), CIO_SEC(10)};

const char *cio_http_method_label(int m)
{
    static const char *const names[CIO_HTTP_M_COUNT] = {"GET",   "HEAD",    "POST", "PUT",
                                                        "DELETE", "PATCH", "OPTIONS", "OTHER"};
    return m >= 0 && m < CIO_HTTP_M_COUNT ? names[m] : "OTHER";
}

static int method_index(const cio_http_req *r)
{
    if (!r->head_done)
        return CIO_HTTP_M_OTHER; /* refused before its method was known for sure */
    switch (r->method) {
    case HTTP_GET:
        return CIO_HTTP_M_GET;
    case HTTP_HEAD:
        return CIO_HTTP_M_HEAD;
    case HTTP_POST:
        return CIO_HTTP_M_POST;
    case HTTP_PUT:
        return CIO_HTTP_M_PUT;
    case HTTP_DELETE:
        return CIO_HTTP_M_DELETE;
    case HTTP_PATCH:
        return CIO_HTTP_M_PATCH;
    case HTTP_OPTIONS:
        return CIO_HTTP_M_OPTIONS;
    default:
        return CIO_HTTP_M_OTHER;
    }
}

void http_request_done(cio_http_req *r)
{
    if (r->status >= 100 && r->status <= 599) {
        cio_http_metrics *m = r->conn->srv->metrics;
        m->responses[method_index(r)][r->status - 100]++;
        /* From the complete head (or, refused before it, now: 0). */
        cio_time took = r->head_time ? cio_now() - r->head_time : 0;
        unsigned b = 0;
        while (b < CIO_HTTP_DURATION_BUCKETS && took > duration_bounds_ns[b])
            b++;
        m->duration[b]++;
        m->duration_count++;
        m->duration_sum += took > 0 ? took : 0;
    }
    http_access_log(r);
}

/* One JSON object per line: the same fields as the combined format, named,
 * and the request's duration. */
static void access_log_json(cio_http_req *r, cio_log_writer *w, const char *addr, cio_str method,
                            cio_str url, cio_str referer, cio_str agent)
{
    size_t room = 320 + 6 * (method.n + url.n + referer.n + agent.n);
    char *line = cio_log_writer_reserve(w, room);
    if (!line)
        return; /* the log is backed up: dropped and counted by the writer */
    size_t o = (size_t)snprintf(line, room, "{\"time\":\"%s\",\"remote\":\"%s\",\"method\":\"",
                                r->conn->srv->iso_time, addr);
    o += put_json(line + o, method.p, method.n, room - o);
    o += (size_t)snprintf(line + o, room - o, "\",\"uri\":\"");
    o += put_json(line + o, url.p, url.n, room - o);
    cio_time took = r->head_time ? cio_now() - r->head_time : 0;
    char proto[16] = "null"; /* a request refused before its version was read */
    if (r->version_seen)
        snprintf(proto, sizeof(proto), "\"HTTP/1.%d\"", r->minor);
    o += (size_t)snprintf(line + o, room - o,
                          "\",\"protocol\":%s,\"status\":%d,\"bytes\":%llu,"
                          "\"duration_ms\":%.3f,\"referer\":",
                          proto, r->status, (unsigned long long)r->bytes_sent,
                          (double)(took > 0 ? took : 0) / 1e6);
    for (int k = 0; k < 2; k++) {
        cio_str v = k ? agent : referer;
        if (v.p) {
            line[o++] = '"';
            o += put_json(line + o, v.p, v.n, room - o);
            line[o++] = '"';
        } else {
            o += (size_t)snprintf(line + o, room - o, "null");
        }
        if (!k)
            o += (size_t)snprintf(line + o, room - o, ",\"user_agent\":");
    }
    line[o++] = '}';
    line[o++] = '\n';
    cio_log_writer_commit(w, o);
}

static void http_access_log(cio_http_req *r)
{
    cio_http_conn *c = r->conn;
    cio_log_writer *w = c->srv->o.access_log;
    if (!w || !r->status)
        return;
    char addr[INET6_ADDRSTRLEN]; /* clf_time is current: the head was just written */
    remote_text(c, addr, sizeof(addr));
    cio_str method = http_span_str(r, r->method_s), url = http_span_str(r, r->url);
    cio_str referer = r->head_done ? cio_http_header(r, "Referer") : (cio_str){0};
    cio_str agent = r->head_done ? cio_http_header(r, "User-Agent") : (cio_str){0};
    if (c->srv->o.access_log_json) {
        access_log_json(r, w, addr, method, url, referer, agent);
        return;
    }
    size_t room = 256 + 4 * (method.n + url.n + referer.n + agent.n);
    char *line = cio_log_writer_reserve(w, room);
    if (!line)
        return; /* the log is backed up: dropped and counted by the writer */
    size_t o = (size_t)snprintf(line, room, "%s - - [%s] \"", addr, c->srv->clf_time);
    if (method.n) {
        o += put_escaped(line + o, method.p, method.n, room - o);
        line[o++] = ' ';
        o += put_escaped(line + o, url.p, url.n, room - o);
        if (r->version_seen)
            o += (size_t)snprintf(line + o, room - o, " HTTP/1.%d", r->minor);
    }
    o += (size_t)snprintf(line + o, room - o, "\" %d %llu \"", r->status,
                          (unsigned long long)r->bytes_sent);
    if (referer.p)
        o += put_escaped(line + o, referer.p, referer.n, room - o);
    else
        line[o++] = '-';
    o += (size_t)snprintf(line + o, room - o, "\" \"");
    if (agent.p)
        o += put_escaped(line + o, agent.p, agent.n, room - o);
    else
        line[o++] = '-';
    line[o++] = '"';
    line[o++] = '\n';
    cio_log_writer_commit(w, o);
}
