/*
 * http_static.c - files from the document root.
 *
 * Safety comes in layers: the path is the router's, percent-decoded (a
 * decoded NUL is refused) with dot segments removed (a path that would climb
 * above the root is refused); backslashes are refused, dotfiles are not
 * served unless configured (".well-known" is), and the file is opened with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) relative to the root, so
 * even a symlink inside the root cannot lead outside it. Files are opened,
 * stat'ed and read through the ring and streamed in slices, never loaded
 * whole.
 */
#include "http_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define SLICE (64 * 1024)

static int errno_status(int err)
{
    switch (err) {
    case -ENOENT:
    case -ENOTDIR:
        return 404;
    case -EACCES:
    case -EPERM:
    case -EXDEV: /* a symlink leading outside the root */
    case -ELOOP:
        return 403;
    case -ENAMETOOLONG:
        return 414;
    default:
        return 500;
    }
}

static void close_fd(void *arg)
{
    close((int)(intptr_t)arg);
}

/* Opens rel beneath the root; the request's arena closes it. Returns the fd
 * or -errno. O_NONBLOCK: a FIFO (or a device) under the root must not block
 * the open; what is neither a file nor a directory is refused after statx. */
static int open_beneath(cio_http_req *r, const char *rel)
{
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    int fd = cio_openat2(r->conn->srv->root_fd, rel, &how, CIO_NEVER);
    if (fd >= 0 && cio_arena_defer(cio_http_arena(r), close_fd, (void *)(intptr_t)fd) < 0) {
        close(fd);
        return -ENOMEM;
    }
    return fd;
}

/* Does the If-None-Match list contain etag (weak comparison) or "*"? */
static bool etag_matches(cio_str list, const char *etag)
{
    size_t en = strlen(etag);
    const char *p = list.p, *end = list.p + list.n;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p < end && *p == '*')
            return true;
        if (end - p >= 2 && p[0] == 'W' && p[1] == '/')
            p += 2;
        const char *q = p;
        if (q < end && *q == '"') {
            q = memchr(q + 1, '"', (size_t)(end - q - 1));
            if (!q)
                return false;
            q++;
        } else {
            while (q < end && *q != ',')
                q++;
        }
        if ((size_t)(q - p) == en && memcmp(p, etag, en) == 0)
            return true;
        p = q;
    }
    return false;
}

/* A single byte range against size: 1 = satisfiable (*from, *to set), 0 =
 * not a single bytes range (serve the whole file), -1 = unsatisfiable. */
static int parse_range(cio_str h, uint64_t size, uint64_t *from, uint64_t *to)
{
    if (h.n < 7 || strncasecmp(h.p, "bytes=", 6) != 0) /* units are case-insensitive */
        return 0;
    const char *p = h.p + 6, *end = h.p + h.n;
    if (memchr(p, ',', (size_t)(end - p)))
        return 0; /* multiple ranges: the whole file is a valid answer */
    uint64_t a = 0, b = 0;
    bool has_a = false, has_b = false;
    while (p < end && *p >= '0' && *p <= '9') {
        if (a > (UINT64_MAX - 9) / 10)
            return 0;
        a = a * 10 + (uint64_t)(*p++ - '0'), has_a = true;
    }
    if (p >= end || *p++ != '-')
        return 0;
    while (p < end && *p >= '0' && *p <= '9') {
        if (b > (UINT64_MAX - 9) / 10)
            return 0;
        b = b * 10 + (uint64_t)(*p++ - '0'), has_b = true;
    }
    if (p != end || (!has_a && !has_b))
        return 0;
    if (!has_a) { /* suffix: the last b bytes */
        if (b == 0 || size == 0)
            return -1;
        *from = b >= size ? 0 : size - b;
        *to = size - 1;
        return 1;
    }
    if (has_b && b < a)
        return 0; /* invalid: ignore the header */
    if (a >= size)
        return -1;
    *from = a;
    *to = has_b && b < size ? b : size - 1;
    return 1;
}

/* "/dir" -> 301 to "/dir/": the normalised path, percent-encoded again
 * where a byte is not safe in a header or a URI path, and the query. */
static int redirect_slash(cio_http_req *r)
{
    static const char hex[] = "0123456789ABCDEF";
    cio_str path = cio_http_path(r), query = cio_http_query(r);
    char *loc = cio_arena_alloc(cio_http_arena(r), 3 * path.n + query.n + 3);
    if (!loc)
        return http_respond_status(r, 500);
    size_t o = 0;
    for (size_t i = 0; i < path.n; i++) {
        unsigned char ch = (unsigned char)path.p[i];
        if (ch <= 0x20 || ch >= 0x7f || strchr("\"#%<>?[\\]^`{|}", ch)) {
            loc[o++] = '%';
            loc[o++] = hex[ch >> 4];
            loc[o++] = hex[ch & 15];
        } else {
            loc[o++] = (char)ch;
        }
    }
    loc[o++] = '/';
    if (query.n) {
        loc[o++] = '?';
        memcpy(loc + o, query.p, query.n);
        o += query.n;
    }
    loc[o] = 0;
    if (cio_http_add_header(r, "Location", loc) < 0)
        return http_respond_status(r, 500);
    return http_respond_status(r, 301);
}

/* A segment starting with '.' (".env", ".git/config") other than
 * ".well-known" (RFC 8615), which is served. */
static bool hidden_path(const char *path, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (path[i] != '/' || path[i + 1] != '.')
            continue;
        const char *seg = path + i + 1;
        size_t len = n - i - 1;
        const char *slash = memchr(seg, '/', len);
        if (slash)
            len = (size_t)(slash - seg);
        if (i != 0 || !(len == 11 && memcmp(seg, ".well-known", 11) == 0))
            return true; /* only a leading /.well-known/ is served */
    }
    return false;
}

int cio_http_serve_static(cio_http_req *r)
{
    cio_http_server *srv = r->conn->srv;
    if (srv->root_fd < 0)
        return http_respond_status(r, 404);
    bool head = r->method == HTTP_HEAD;
    if (!head && r->method != HTTP_GET) {
        cio_http_add_header(r, "Allow", "GET, HEAD");
        return http_respond_status(r, 405);
    }
    /* The path is decoded and normalised already (the router's); refuse a
     * backslash, which no file name under a web root should need. */
    cio_str norm = cio_http_path(r);
    if (norm.n == 0 || norm.p[0] != '/' || memchr(norm.p, '\\', norm.n))
        return http_respond_status(r, 400);
    if (!srv->o.serve_dotfiles && hidden_path(norm.p, norm.n))
        return http_respond_status(r, 404);
    char *path = cio_arena_alloc(cio_http_arena(r), norm.n + sizeof("index.html") + 1);
    if (!path)
        return http_respond_status(r, 500);
    memcpy(path, norm.p, norm.n);
    ssize_t n = (ssize_t)norm.n;
    path[n] = 0;
    const char *rel = n > 1 ? path + 1 : ".";

    int fd = open_beneath(r, rel);
    if (fd < 0)
        return http_respond_status(r, errno_status(fd));
    struct statx st;
    int rc =
        cio_statx(fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE | STATX_MTIME, &st, CIO_NEVER);
    if (rc < 0)
        return http_respond_status(r, errno_status(rc));
    if (S_ISDIR(st.stx_mode)) {
        if (path[n - 1] != '/')
            return redirect_slash(r);
        strcpy(path + n, "index.html");
        fd = open_beneath(r, path + 1);
        if (fd < 0)
            return http_respond_status(r, fd == -ENOENT ? 403 : errno_status(fd)); /* no listings */
        rc =
            cio_statx(fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE | STATX_MTIME, &st, CIO_NEVER);
        if (rc < 0)
            return http_respond_status(r, errno_status(rc));
        n += (ssize_t)strlen("index.html");
    }
    if (!S_ISREG(st.stx_mode))
        return http_respond_status(r, 403);
    /* A regular file now: reads need no O_NONBLOCK (and some filesystems on
     * older kernels fail io_uring reads of files opened with it). */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK))
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);

    uint64_t size = st.stx_size;
    char etag[48], lastmod[30];
    snprintf(etag, sizeof(etag), "\"%llx-%llx\"", (unsigned long long)size,
             (unsigned long long)st.stx_mtime.tv_sec * 1000000000ULL + st.stx_mtime.tv_nsec);
    cio_http_date(st.stx_mtime.tv_sec, lastmod);
    cio_http_add_header(r, "ETag", etag);
    cio_http_add_header(r, "Last-Modified", lastmod);
    cio_http_add_header(r, "Accept-Ranges", "bytes");

    cio_str inm = cio_http_header(r, "If-None-Match");
    if (inm.p) {
        if (etag_matches(inm, etag))
            return cio_http_respond(r, 304, NULL, NULL, 0);
    } else {
        cio_str ims = cio_http_header(r, "If-Modified-Since");
        int64_t t = ims.p ? cio_http_parse_date(ims.p, ims.n) : -1;
        if (t >= 0 && st.stx_mtime.tv_sec <= t)
            return cio_http_respond(r, 304, NULL, NULL, 0);
    }

    const char *ctype = cio_http_mime_type(path, (size_t)n);
    uint64_t from = 0, to = size ? size - 1 : 0, len = size;
    int status = 200;
    cio_str range = cio_http_header(r, "Range");
    cio_str if_range = cio_http_header(r, "If-Range");
    /* If-Range compares strongly: the exact ETag (never a weak one), or a date
     * equal to Last-Modified. Anything else: the whole file. */
    bool range_ok = !if_range.p ||
                    (if_range.n == strlen(etag) && memcmp(if_range.p, etag, if_range.n) == 0) ||
                    (if_range.n == 29 && memcmp(if_range.p, lastmod, 29) == 0);
    if (range.p && range_ok) {
        int pr = parse_range(range, size, &from, &to);
        if (pr < 0) {
            char cr[48];
            snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)size);
            cio_http_add_header(r, "Content-Range", cr);
            return http_respond_status(r, 416);
        }
        if (pr > 0) {
            char cr[80];
            snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)from,
                     (unsigned long long)to, (unsigned long long)size);
            cio_http_add_header(r, "Content-Range", cr);
            status = 206;
            len = to - from + 1;
        }
    }
    rc = cio_http_start(r, status, ctype, (int64_t)len);
    if (rc < 0 || head || len == 0)
        return rc < 0 ? rc : cio_http_end(r);
    char *buf = cio_arena_alloc(cio_http_arena(r), SLICE);
    if (!buf)
        return -ENOMEM;
    uint64_t off = from, left = len;
    while (left) {
        ssize_t got =
            cio_read(fd, buf, left < SLICE ? (size_t)left : SLICE, (int64_t)off, CIO_NEVER);
        if (got <= 0)
            return got < 0 ? (int)got : -EIO; /* truncated under us: close */
        rc = cio_http_write(r, buf, (size_t)got);
        if (rc < 0)
            return rc;
        off += (uint64_t)got;
        left -= (uint64_t)got;
    }
    return cio_http_end(r);
}
