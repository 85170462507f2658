/*
 * http_util.c - request accessors and the small pure helpers: case-insensitive
 * compares, token lists, percent-decoding, dot-segment removal, HTTP dates,
 * MIME types.
 */
#include "http_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

bool http_str_ieq(cio_str a, const char *b)
{
    return http_str_ieq_n(a, b, strlen(b));
}

bool http_str_ieq_n(cio_str a, const char *b, size_t n)
{
    return a.n == n && strncasecmp(a.p, b, n) == 0;
}

cio_str http_span_str(const cio_http_req *req, http_span s)
{
    if (s.len == 0)
        return (cio_str){"", 0};
    if (req->head_base) /* streamed: the head moved out of the input */
        return (cio_str){req->head_base + s.off, s.len};
    return (cio_str){req->conn->act->in.p + s.off, s.len};
}

/* ---- request accessors ---------------------------------------------------------- */

cio_str cio_http_method(const cio_http_req *req)
{
    return http_span_str(req, req->method_s);
}

cio_str cio_http_target(const cio_http_req *req)
{
    return http_span_str(req, req->url);
}

cio_str cio_http_path(const cio_http_req *req)
{
    return req->path;
}

cio_str cio_http_query(const cio_http_req *req)
{
    return http_span_str(req, req->query);
}

int cio_http_version_minor(const cio_http_req *req)
{
    return req->minor;
}

cio_str cio_http_header(const cio_http_req *req, const char *name)
{
    size_t n = strlen(name);
    for (uint32_t i = 0; i < req->f.n; i++)
        if (http_str_ieq_n(http_span_str(req, req->f.hdrs[i].name), name, n)) {
            cio_str v = http_span_str(req, req->f.hdrs[i].value);
            return v.p ? v : (cio_str){"", 0};
        }
    return (cio_str){NULL, 0};
}

bool cio_http_header_at(const cio_http_req *req, size_t n, cio_str *name, cio_str *value)
{
    if (n >= req->f.n)
        return false;
    *name = http_span_str(req, req->f.hdrs[n].name);
    *value = http_span_str(req, req->f.hdrs[n].value);
    return true;
}

cio_str cio_http_param(const cio_http_req *req, const char *name)
{
    for (unsigned i = 0; i < req->nparams; i++)
        if (req->params_name[i].n == strlen(name) &&
            memcmp(req->params_name[i].p, name, req->params_name[i].n) == 0)
            return req->params_val[i];
    return (cio_str){NULL, 0};
}

cio_str cio_http_query_param(const cio_http_req *req, const char *name)
{
    size_t nl = strlen(name);
    cio_str query = cio_http_query(req);
    const char *p = query.p, *end = query.p + query.n;
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *kend = eq ? eq : stop;
        if ((size_t)(kend - p) == nl && memcmp(p, name, nl) == 0)
            return eq ? (cio_str){eq + 1, (size_t)(stop - eq - 1)} : (cio_str){"", 0};
        p = stop + 1;
    }
    return (cio_str){NULL, 0};
}

cio_str cio_http_body(const cio_http_req *req)
{
    if (req->streaming || req->body.len == 0)
        return (cio_str){"", 0}; /* a streamed body is read with cio_http_read() */
    return (cio_str){req->conn->act->in.p + req->body.off, req->body.len};
}

cio_arena *cio_http_arena(cio_http_req *req)
{
    return &req->arena;
}

cio_http_server *cio_http_req_server(const cio_http_req *req)
{
    return req->conn->srv;
}

/* ---- paths ----------------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

ssize_t cio_http_percent_decode(char *dst, const char *src, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -EINVAL;
            int hi = hexval(src[i + 1]), lo = hexval(src[i + 2]);
            if (hi < 0 || lo < 0)
                return -EINVAL;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (c == 0)
            return -EINVAL; /* a NUL would cut the path short in the kernel */
        dst[o++] = c;
    }
    return (ssize_t)o;
}

ssize_t cio_http_normalize_path(char *path, size_t len)
{
    if (len == 0 || path[0] != '/')
        return -EINVAL;
    /* Walk segments, writing the kept ones at 'o'. */
    size_t o = 0, i = 0;
    while (i < len) {
        /* path[i] == '/' here: one segment is path[i+1 .. j) */
        size_t j = i + 1;
        while (j < len && path[j] != '/')
            j++;
        size_t n = j - i - 1;
        const char *seg = path + i + 1;
        bool last = j >= len;
        if (n == 0 && !last) {
            /* an empty segment: repeated slashes merge into one */
        } else if (n == 1 && seg[0] == '.') {
            if (last)
                path[o++] = '/'; /* "/a/." -> "/a/" */
        } else if (n == 2 && seg[0] == '.' && seg[1] == '.') {
            if (o == 0)
                return -EINVAL; /* above the root */
            while (o > 0 && path[--o] != '/') {
            }
            if (last)
                path[o++] = '/';
        } else {
            memmove(path + o, path + i, n + 1);
            o += n + 1;
        }
        i = j;
    }
    if (o == 0)
        path[o++] = '/';
    return (ssize_t)o;
}

/* ---- dates ------------------------------------------------------------------------------ */

static const char wdays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static char *two(char *p, int v)
{
    *p++ = (char)('0' + v / 10 % 10);
    *p++ = (char)('0' + v % 10);
    return p;
}

void cio_http_date(int64_t t, char out[30])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    /* "Sun, 06 Nov 1994 08:49:37 GMT": fixed layout, 29 bytes + NUL. */
    int year = tm.tm_year + 1900;
    char *p = out;
    memcpy(p, wdays[tm.tm_wday % 7], 3), p += 3;
    *p++ = ',', *p++ = ' ';
    p = two(p, tm.tm_mday);
    *p++ = ' ';
    memcpy(p, months[tm.tm_mon % 12], 3), p += 3;
    *p++ = ' ';
    p = two(p, year / 100);
    p = two(p, year % 100);
    *p++ = ' ';
    p = two(p, tm.tm_hour);
    *p++ = ':';
    p = two(p, tm.tm_min);
    *p++ = ':';
    p = two(p, tm.tm_sec);
    memcpy(p, " GMT", 5);
}

static int month_index(const char *p)
{
    for (int i = 0; i < 12; i++)
        if (strncmp(p, months[i], 3) == 0)
            return i;
    return -1;
}

int64_t cio_http_parse_date(const char *s, size_t n)
{
    char buf[64];
    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    struct tm tm = {0};
    char mon[4] = {0}, wd[16] = {0};
    int day, year, h, m, sec, consumed = 0;
    /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
    if (sscanf(buf, "%3s, %2d %3s %4d %2d:%2d:%2d GMT%n", wd, &day, mon, &year, &h, &m, &sec,
               &consumed) == 7 &&
        consumed == (int)n) {
        /* ok */
    } else if (sscanf(buf, "%15[A-Za-z], %2d-%3s-%2d %2d:%2d:%2d GMT%n", wd, &day, mon, &year, &h,
                      &m, &sec, &consumed) == 7 &&
               consumed == (int)n) {
        year += year < 70 ? 2000 : 1900; /* RFC 850: two-digit year */
    } else if (sscanf(buf, "%3s %3s %2d %2d:%2d:%2d %4d%n", wd, mon, &day, &h, &m, &sec, &year,
                      &consumed) == 7 &&
               consumed == (int)n) {
        /* asctime */
    } else {
        return -1;
    }
    int mi = month_index(mon);
    if (mi < 0 || day < 1 || day > 31 || h > 23 || m > 59 || sec > 60 || year < 1970)
        return -1;
    tm.tm_year = year - 1900;
    tm.tm_mon = mi;
    tm.tm_mday = day;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    return (int64_t)timegm(&tm);
}

/* ---- MIME types ------------------------------------------------------------------------ */

static const struct {
    const char *ext, *type;
} mime_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/x-icon"},
    {"pdf", "application/pdf"},
    {"wasm", "application/wasm"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"},
    {"wav", "audio/wav"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tar", "application/x-tar"},
    {"map", "application/json"},
};

const char *cio_http_mime_type(const char *name, size_t len)
{
    const char *dot = NULL;
    for (size_t i = len; i > 0; i--) {
        if (name[i - 1] == '.') {
            dot = name + i;
            break;
        }
        if (name[i - 1] == '/')
            break;
    }
    if (dot) {
        size_t n = len - (size_t)(dot - name);
        for (size_t i = 0; i < sizeof(mime_types) / sizeof(mime_types[0]); i++)
            if (strlen(mime_types[i].ext) == n && strncasecmp(dot, mime_types[i].ext, n) == 0)
                return mime_types[i].type;
    }
    return "application/octet-stream";
}
