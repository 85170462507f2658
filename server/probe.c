/*
 * probe.c - corio --probe URL [--probe-timeout MS]: a health check made by
 * the binary itself, for images that have no curl (a Dockerfile's
 * HEALTHCHECK, a Kubernetes exec probe, a script).
 *
 * One HTTP/1.1 GET with "Connection: close" over a plain socket: the name
 * resolved with getaddrinfo, every address tried in turn, the answer's
 * status line read (interim 1xx answers skipped). Nothing of the server
 * is started and no configuration file is read; no io_uring either, so
 * the probe works where the kernel or a seccomp profile refuses it. The
 * whole probe has one deadline: each wait is a poll() with the time left,
 * and name resolution, which takes no deadline, runs under an interval
 * timer whose signal handler ends the process with status 1.
 */
#include "probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define PROBE_TIMEOUT_MAX 3600000 /* ms */
#define TARGET_MAX        8000
#define HEAD_MAX          16384 /* bytes of answer read at most, interim heads included */

typedef struct probe_url {
    char host[256];      /* a DNS name, an IPv4 address, or an IPv6 address without brackets */
    char port[6];        /* decimal, "80" when the URL has none */
    char authority[300]; /* host[:port] as written: the Host header */
    char target[TARGET_MAX + 2]; /* path and query, "/" when the URL has neither */
} probe_url;

/* ---- the command line -------------------------------------------------------------- */

/* One line on stderr: "corio: " and the message. */
static void say(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "corio: %s\n", line);
}

/* NULL when host (len bytes, as in the URL, brackets included) is a DNS
 * name, an IPv4 address or a bracketed IPv6 address; then u->host holds
 * it, without brackets. Else why not. */
static const char *parse_host(const char *host, size_t len, probe_url *u)
{
    if (len == 0)
        return "no host";
    if (host[0] == '[') {
        if (len < 3 || host[len - 1] != ']' || len - 2 >= sizeof(u->host))
            return "an IPv6 address goes in brackets: [::1]";
        memcpy(u->host, host + 1, len - 2);
        u->host[len - 2] = 0;
        struct in6_addr a;
        return inet_pton(AF_INET6, u->host, &a) == 1 ? NULL : "not an IPv6 address in brackets";
    }
    if (len > 253)
        return "host name too long";
    for (size_t i = 0; i < len; i++) {
        char c = host[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_'))
            return c == ':' ? "an IPv6 address goes in brackets: [::1]"
                            : "the host may hold letters, digits, '-', '.' and '_'";
    }
    memcpy(u->host, host, len);
    u->host[len] = 0;
    return NULL;
}

/* NULL when url is http://HOST[:PORT][/PATH][?QUERY][#FRAGMENT], parsed
 * into u; else why not. */
static const char *parse_url(const char *url, probe_url *u)
{
    memset(u, 0, sizeof(*u));
    if (strncasecmp(url, "http://", 7) != 0) {
        if (strncasecmp(url, "https://", 8) == 0)
            return "https is not supported: corio serves plain HTTP (use http://)";
        return strstr(url, "://") ? "only http:// URLs are supported"
                                  : "expected http://HOST[:PORT][/PATH]";
    }
    const char *auth = url + 7;
    size_t alen = strcspn(auth, "/?#");
    if (memchr(auth, '@', alen))
        return "user information (user@host) is not supported";
    if (alen >= sizeof(u->authority))
        return "host and port too long";
    memcpy(u->authority, auth, alen);
    /* The port follows the ':' outside brackets; a second one is an IPv6
     * address without them. */
    const char *close = memchr(auth, ']', alen);
    const char *from = close ? close : auth;
    const char *colon = memchr(from, ':', alen - (size_t)(from - auth));
    if (colon && memchr(colon + 1, ':', alen - (size_t)(colon + 1 - auth)))
        return "an IPv6 address goes in brackets: [::1]";
    size_t hlen = colon ? (size_t)(colon - auth) : alen;
    const char *why = parse_host(auth, hlen, u);
    if (why)
        return why;
    if (!colon) {
        strcpy(u->port, "80");
    } else {
        size_t plen = alen - hlen - 1;
        unsigned long port = 0;
        for (size_t i = 0; i < plen; i++) {
            char c = colon[1 + i];
            if (c < '0' || c > '9' || port > 65535)
                return "the port must be a number from 1 to 65535";
            port = port * 10 + (unsigned long)(c - '0');
        }
        if (plen == 0 || port == 0 || port > 65535)
            return "the port must be a number from 1 to 65535";
        snprintf(u->port, sizeof(u->port), "%lu", port);
    }
    const char *rest = auth + alen;
    size_t tlen = strcspn(rest, "#");
    size_t at = 0;
    if (tlen == 0 || rest[0] == '?')
        u->target[at++] = '/';
    if (tlen > TARGET_MAX)
        return "path too long";
    for (size_t i = 0; i < tlen; i++)
        if ((unsigned char)rest[i] <= 0x20 || (unsigned char)rest[i] >= 0x7f)
            return "the path may hold only printable ASCII without spaces (percent-encode the rest)";
    memcpy(u->target + at, rest, tlen);
    u->target[at + tlen] = 0;
    return NULL;
}

/* "--name" or "--name=value" (then *value points past the '='). */
static bool is_flag(const char *arg, const char *name, const char **value)
{
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0 || (arg[n] != 0 && arg[n] != '='))
        return false;
    *value = arg[n] == '=' ? arg + n + 1 : NULL;
    return true;
}

/* ---- the probe ------------------------------------------------------------------------ */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int left_ms(long long deadline)
{
    long long left = deadline - now_ms();
    return left > 0 ? (int)left : 0;
}

/* What the interval timer's handler writes before it ends the process. */
static char expired_line[1024];
static size_t expired_len;

static void expired(int sig)
{
    (void)sig;
    (void)!write(STDERR_FILENO, expired_line, expired_len);
    _exit(1);
}

/* getaddrinfo within ms milliseconds (or the process ends with status 1
 * and a line saying why). */
static int resolve(const probe_url *u, const char *url, int ms, struct addrinfo **out)
{
    expired_len = (size_t)snprintf(expired_line, sizeof(expired_line),
                                   "corio: probe %s: cannot resolve \"%s\" within the time "
                                   "left (timed out)\n",
                                   url, u->host);
    if (expired_len >= sizeof(expired_line))
        expired_len = sizeof(expired_line) - 1;
    struct sigaction sa = {.sa_handler = expired};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {.it_value = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000}};
    if (ms == 0)
        it.it_value.tv_usec = 1;
    setitimer(ITIMER_REAL, &it, NULL);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    int rc = getaddrinfo(u->host, u->port, &hints, out);
    struct itimerval off = {0};
    setitimer(ITIMER_REAL, &off, NULL);
    return rc;
}

/* "127.0.0.1:8080" or "[::1]:8080". */
static void addr_text(const struct addrinfo *ai, char *out, size_t len)
{
    char host[64] = "?", port[8] = "?"; /* numeric: an IPv6 address with a scope fits */
    (void)getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof(host), port, sizeof(port),
                      NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(out, len, ai->ai_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

/* A connected socket to one of the addresses, or -1 with why set. */
static int connect_any(const struct addrinfo *res, long long deadline, int timeout_ms, char *why,
                       size_t whylen)
{
    snprintf(why, whylen, "no address to connect to");
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        char where[80];
        addr_text(ai, where, sizeof(where));
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            snprintf(why, whylen, "socket: %s", strerror(errno));
            continue;
        }
        int err = 0;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            err = errno;
            if (err == EINPROGRESS) {
                struct pollfd p = {.fd = fd, .events = POLLOUT};
                int n = poll(&p, 1, left_ms(deadline));
                socklen_t l = sizeof(err);
                if (n == 0) {
                    snprintf(why, whylen, "connect to %s: timed out after %d ms", where,
                             timeout_ms);
                    close(fd);
                    return -1; /* no time left for the next address */
                }
                err = n < 0 ? errno : 0;
                if (n > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
                    err = errno;
            }
        }
        if (err == 0)
            return fd;
        snprintf(why, whylen, "connect to %s: %s", where, strerror(err));
        close(fd);
    }
    return -1;
}

/* Sends all of buf before the deadline. 0, or -1 with why set. */
static int send_all(int fd, const char *buf, size_t len, long long deadline, int timeout_ms,
                    char *why, size_t whylen)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            snprintf(why, whylen, "sending the request: %s", strerror(errno));
            return -1;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (n < 0 && errno == EAGAIN && poll(&p, 1, left_ms(deadline)) == 0) {
            snprintf(why, whylen, "sending the request: timed out after %d ms", timeout_ms);
            return -1;
        }
    }
    return 0;
}

/* The status line's text, printable, for a message. */
static void printable(const char *s, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < outlen; i++)
        out[o++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    out[o] = 0;
}

/* Reads the answer's status (past interim 1xx heads). The status, or -1
 * with why set; line gets the status line. */
static int read_status(int fd, long long deadline, int timeout_ms, char *line, size_t linelen,
                       char *why, size_t whylen)
{
    static char buf[HEAD_MAX + 1];
    size_t have = 0, start = 0; /* start: where the current head begins */
    for (;;) {
        /* A complete status line (and, for a 1xx, its complete head)? */
        buf[have] = 0;
        char *eol = memchr(buf + start, '\n', have - start);
        if (eol) {
            const char *s = buf + start;
            size_t l = (size_t)(eol - s);
            if (l > 0 && s[l - 1] == '\r')
                l--;
            printable(s, l, line, linelen);
            if (l < 12 || strncmp(s, "HTTP/1.", 7) != 0 || s[7] < '0' || s[7] > '9' ||
                s[8] != ' ' || s[9] < '1' || s[9] > '5' || s[10] < '0' || s[10] > '9' ||
                s[11] < '0' || s[11] > '9' || (l > 12 && s[12] != ' ')) {
                snprintf(why, whylen, "not an HTTP/1.x answer: \"%.80s\"", line);
                return -1;
            }
            int status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
            if (status >= 200)
                return status;
            char *end = strstr(buf + start, "\r\n\r\n"); /* an interim head: skip it */
            if (end) {
                start = (size_t)(end + 4 - buf);
                continue;
            }
        }
        if (have == HEAD_MAX) {
            snprintf(why, whylen, "no status line in the first %d bytes of the answer", HEAD_MAX);
            return -1;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, left_ms(deadline));
        if (n == 0) {
            snprintf(why, whylen, "%s within %d ms", have > start ? "no complete answer"
                                                                   : "no answer",
                     timeout_ms);
            return -1;
        }
        ssize_t got = n < 0 ? -1 : recv(fd, buf + have, HEAD_MAX - have, 0);
        if (got == 0) {
            snprintf(why, whylen, "the server closed the connection without an answer");
            return -1;
        }
        if (got < 0 && errno != EAGAIN && errno != EINTR) {
            snprintf(why, whylen, "reading the answer: %s", strerror(errno));
            return -1;
        }
        if (got > 0)
            have += (size_t)got;
    }
}

/* GET u's target; 0 on a 2xx answer, 1 otherwise (with one line said). */
static int probe(const probe_url *u, const char *url, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    char why[512];
    struct addrinfo *res = NULL;
    int rc = resolve(u, url, timeout_ms, &res);
    if (rc != 0) {
        say("probe %s: cannot resolve \"%s\": %s", url, u->host,
            rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return 1;
    }
    int fd = connect_any(res, deadline, timeout_ms, why, sizeof(why));
    freeaddrinfo(res);
    if (fd < 0) {
        say("probe %s: %s", url, why);
        return 1;
    }
    static char req[TARGET_MAX + 1024];
    int len = snprintf(req, sizeof(req),
                       "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: corio-probe\r\nAccept: */*\r\n"
                       "Connection: close\r\n\r\n",
                       u->target, u->authority);
    char line[256];
    int status = -1;
    if (send_all(fd, req, (size_t)len, deadline, timeout_ms, why, sizeof(why)) == 0)
        status = read_status(fd, deadline, timeout_ms, line, sizeof(line), why, sizeof(why));
    close(fd);
    if (status < 0) {
        say("probe %s: %s", url, why);
        return 1;
    }
    if (status >= 300) {
        /* "HTTP 503 Service Unavailable": the status line past its version */
        say("probe %s: HTTP %s", url, line + 9);
        return 1;
    }
    return 0;
}

int corio_probe_main(int argc, char **argv)
{
    const char *url = NULL, *timeout = NULL, *v;
    bool wanted = false;
    for (int i = 1; i < argc; i++)
        wanted = wanted || is_flag(argv[i], "--probe", &v) || is_flag(argv[i], "--probe-timeout", &v);
    if (!wanted)
        return -1;
    for (int i = 1; i < argc; i++) {
        const char *name = is_flag(argv[i], "--probe", &v)           ? "--probe"
                           : is_flag(argv[i], "--probe-timeout", &v) ? "--probe-timeout"
                                                                     : NULL;
        if (!name) {
            say("--probe: unexpected argument \"%s\" (only --probe-timeout MS goes with "
                "--probe URL)",
                argv[i]);
            return 2;
        }
        if (!v && i + 1 == argc) {
            say("option \"%s\" requires an argument (see --help)", name);
            return 2;
        }
        if (!v)
            v = argv[++i];
        const char **slot = strcmp(name, "--probe") == 0 ? &url : &timeout;
        if (*slot) {
            say("%s given twice", name);
            return 2;
        }
        *slot = v;
    }
    if (!url) {
        say("--probe-timeout goes with --probe URL (see --help)");
        return 2;
    }
    long ms = CORIO_PROBE_TIMEOUT_MS;
    if (timeout) {
        const char *p = timeout;
        for (ms = 0; *p >= '0' && *p <= '9' && ms <= PROBE_TIMEOUT_MAX; p++)
            ms = ms * 10 + (*p - '0');
        if (p == timeout || *p || ms < 1 || ms > PROBE_TIMEOUT_MAX) {
            say("--probe-timeout: expected milliseconds from 1 to %d (got \"%s\")",
                PROBE_TIMEOUT_MAX, timeout);
            return 2;
        }
    }
    probe_url u;
    const char *why = parse_url(url, &u);
    if (why) {
        say("--probe: \"%s\": %s", url, why);
        return 2;
    }
    return probe(&u, url, (int)ms);
}
