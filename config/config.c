/*
 * config.c - corio's configuration: built-in defaults, a JSON file (jansson)
 * and the command line, folded into one cio_config and validated.
 *
 * Loading is all-or-nothing: a file is applied to a copy that replaces the
 * caller's config only when the whole document was accepted, so a bad file
 * never leaves a half-applied config behind. Every error is one line in the
 * caller's buffer; nothing here prints or exits.
 */
#include "cio_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define LISTEN_HINT "(expected IPv4:port, [IPv6]:port, *:port or localhost:port)"
#define LEVEL_HINT  "expected one of error, warn, info, debug"
#define MAX_MS      UINT64_C(86400000)  /* one day */
#define MAX_BODY    (UINT64_C(1) << 30) /* 1 GiB: bodies are held in memory */
#define MAX_THREADS 1024
#define MAX_WORKERS 1024
#define MAX_QUEUE   1048576
#define MAX_SENDQ   (UINT64_C(1) << 31) /* 2 GiB: websocket.send_queue_bytes */
#define WS_HEADER   14  /* the largest WebSocket frame header: 2 + 8 (64-bit length) + 4 (mask) */
#define ORIGIN_MAX  320 /* "https://" + a 253-byte host + ":65535", or a bracketed IPv6 */
#define ORIGIN_HINT "expected \"null\" or scheme://host[:port] with scheme http or https"

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const priority_names[] = {"low", "idle", "normal"}; /* CIO_CONFIG_POOL_* */
static const char *const format_names[] = {"combined", "json"};        /* CIO_CONFIG_LOG_* */

/* ---- errors ---- */

/* Control bytes would break the one-line promise (JSON keys and paths may hold
 * any of them); a multi-byte UTF-8 sequence cut by truncation is dropped. */
static void one_line(char *s, bool truncated)
{
    for (char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    if (!truncated)
        return;
    size_t n = strlen(s), i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
        i--;
    if (i > 0 && (unsigned char)s[i - 1] >= 0xc0) {
        unsigned char lead = (unsigned char)s[i - 1];
        size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
        if (n - (i - 1) < need)
            s[i - 1] = '\0';
    }
}

/* Writes "p1: p2: message", leaving out the prefixes that are NULL, and
 * returns -EINVAL. */
static int verr(char *err, size_t errlen, const char *p1, const char *p2, const char *fmt,
                va_list ap)
{
    if (!err || errlen == 0)
        return -EINVAL;
    size_t n = 0;
    bool truncated = false;
    const char *prefix[] = {p1, p2};
    for (size_t i = 0; i < 2; i++) {
        if (!prefix[i])
            continue;
        int k = snprintf(err + n, errlen - n, "%s: ", prefix[i]);
        if (k >= 0 && (size_t)k >= errlen - n) {
            truncated = true;
            n = errlen - 1;
        } else if (k > 0) {
            n += (size_t)k;
        }
    }
    int m = vsnprintf(err + n, errlen - n, fmt, ap);
    truncated = truncated || (m >= 0 && (size_t)m >= errlen - n);
    one_line(err, truncated);
    return -EINVAL;
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = verr(err, errlen, NULL, NULL, fmt, ap);
    va_end(ap);
    return r;
}

/* ---- defaults, copy, free ---- */

void cio_config_defaults(cio_config *c)
{
    memset(c, 0, sizeof(*c));
    cio_listen_parse("0.0.0.0:8080", &c->listen[0]);
    c->nlisten = 1;
    c->root = NULL;
    c->serve_dotfiles = false;
    c->pool_threads = 0;
    c->pool_queue = 1024;
    c->pool_priority = CIO_CONFIG_POOL_LOW;
    c->nadmin_listen = 0; /* /metrics, /cluster, /status on the main listeners */
    c->workers = 1;
    c->daemon = false;
    c->pidfile = NULL;
    c->user = NULL;
    c->group = NULL;
    c->limits.max_connections = 100000;
    c->limits.max_header_bytes = 8192;
    c->limits.max_uri_bytes = 8192;
    c->limits.max_body_bytes = 1048576;
    c->limits.max_requests_per_connection = 0;
    c->limits.max_connections_per_ip = 0;
    c->limits.max_buffered_bytes = 0;
    c->timeouts.header_ms = 10000;
    c->timeouts.body_ms = 30000;
    c->timeouts.keepalive_ms = 75000;
    c->timeouts.write_ms = 30000;
    c->timeouts.handler_ms = 60000;
    c->timeouts.pool_wait_ms = 1000;
    c->timeouts.drain_ms = 10000;
    c->log.level = 2;            /* CIO_LOG_INFO */
    c->log.access = strdup("-"); /* NULL only on OOM: validate then rejects it */
    c->log.format = CIO_CONFIG_LOG_COMBINED;
    c->log.error = strdup("-"); /* likewise */
    c->websocket.max_message_bytes = 1048576;
    c->websocket.ping_interval_ms = 30000;
    c->websocket.idle_timeout_ms = 120000;
    c->websocket.send_queue_bytes = 2097152;
    c->websocket.norigins = 0; /* any origin */
    c->websocket.compression = true;
    c->websocket.compression_window_bits = 12;
    c->servers = NULL; /* standalone */
    c->nservers = 0;
    c->discovery.interval_ms = 1000;
    c->discovery.window_ms = 60000;
    c->discovery.request_timeout_ms = 1000;
    c->discovery.require_self = false;
    c->health.stall_ms = 5000;
    c->debug.slow_ms = 100; /* asyncio's slow_callback_duration */
}

/* The origins a config holds: norigins, unless a caller made it too big. */
static size_t norigins(const cio_config *c)
{
    return c->websocket.norigins < CIO_CONFIG_MAX_ORIGINS ? c->websocket.norigins
                                                          : CIO_CONFIG_MAX_ORIGINS;
}

static void free_origins(cio_config *c)
{
    for (size_t i = 0; i < norigins(c); i++) {
        free(c->websocket.origins[i]);
        c->websocket.origins[i] = NULL;
    }
    c->websocket.norigins = 0;
}

static void free_servers(cio_config *c)
{
    free(c->servers);
    c->servers = NULL;
    c->nservers = 0;
}

void cio_config_free(cio_config *c)
{
    if (!c)
        return;
    char **strings[] = {&c->root, &c->log.access, &c->log.error, &c->pidfile, &c->user, &c->group};
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        free(*strings[i]);
        *strings[i] = NULL;
    }
    free_origins(c);
    free_servers(c);
}

static int config_dup(cio_config *dst, const cio_config *src)
{
    *dst = *src;
    char **strings[] = {&dst->root,    &dst->log.access, &dst->log.error,
                        &dst->pidfile, &dst->user,       &dst->group};
    bool failed = false;
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        const char *s = *strings[i]; /* still src's */
        *strings[i] = s ? strdup(s) : NULL;
        failed = failed || (s && !*strings[i]);
    }
    for (size_t i = 0; i < norigins(src); i++) {
        const char *o = src->websocket.origins[i];
        dst->websocket.origins[i] = o ? strdup(o) : NULL;
        failed = failed || (o && !dst->websocket.origins[i]);
    }
    dst->servers = NULL;
    if (src->servers && src->nservers > 0) {
        dst->servers = malloc(src->nservers * sizeof(src->servers[0]));
        if (dst->servers)
            memcpy(dst->servers, src->servers, src->nservers * sizeof(src->servers[0]));
        failed = failed || !dst->servers;
    }
    if (failed) {
        cio_config_free(dst);
        return -ENOMEM;
    }
    return 0;
}

/* Replaces *slot with a copy of s (NULL clears it). */
static int set_string(char **slot, const char *s)
{
    char *copy = NULL;
    if (s && !(copy = strdup(s)))
        return -ENOMEM;
    free(*slot);
    *slot = copy;
    return 0;
}

static int parse_level(const char *s)
{
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

/* ---- listen addresses ---- */

/* Decimal digits only, 0..65535: no sign, no spaces, no suffix. */
static int parse_port(const char *s, uint16_t *port)
{
    unsigned long v = 0;
    if (!*s)
        return -EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > 65535)
            return -EINVAL;
    }
    *port = (uint16_t)v;
    return 0;
}

int cio_listen_parse(const char *text, cio_listen *out)
{
    if (!text || !out)
        return -EINVAL;
    char host[INET6_ADDRSTRLEN];
    const char *port_text;
    bool v6 = text[0] == '[';
    if (v6) {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            return -EINVAL;
        size_t n = (size_t)(close - text - 1);
        if (n == 0 || n >= sizeof(host))
            return -EINVAL;
        memcpy(host, text + 1, n);
        host[n] = '\0';
        port_text = close + 2;
    } else {
        /* The first colon ends the host, so a bare IPv6 address fails both
         * the IPv4 and the port check. */
        const char *colon = strchr(text, ':');
        if (!colon)
            return -EINVAL;
        size_t n = (size_t)(colon - text);
        if (n == 0 || n >= sizeof(host))
            return -EINVAL;
        memcpy(host, text, n);
        host[n] = '\0';
        port_text = colon + 1;
    }

    uint16_t port;
    if (parse_port(port_text, &port) < 0)
        return -EINVAL;

    cio_listen l;
    memset(&l, 0, sizeof(l));
    if (v6) {
        struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&l.addr;
        sa->sin6_family = AF_INET6;
        sa->sin6_port = htons(port);
        if (inet_pton(AF_INET6, host, &sa->sin6_addr) != 1)
            return -EINVAL;
        l.addrlen = sizeof(*sa);
    } else {
        struct sockaddr_in *sa = (struct sockaddr_in *)&l.addr;
        sa->sin_family = AF_INET;
        sa->sin_port = htons(port);
        if (strcmp(host, "*") == 0)
            sa->sin_addr.s_addr = htonl(INADDR_ANY);
        else if (strcasecmp(host, "localhost") == 0)
            sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        else if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
            return -EINVAL;
        l.addrlen = sizeof(*sa);
    }
    snprintf(l.text, sizeof(l.text), "%s", text);
    *out = l;
    return 0;
}

static uint16_t listen_port(const cio_listen *l)
{
    if (l->addr.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&l->addr)->sin6_port);
    return ntohs(((const struct sockaddr_in *)&l->addr)->sin_port);
}

/* 0.0.0.0 or [::]: every address of the family. */
static bool listen_wildcard(const cio_listen *l)
{
    if (l->addr.ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&l->addr)->sin6_addr);
    return ((const struct sockaddr_in *)&l->addr)->sin_addr.s_addr == htonl(INADDR_ANY);
}

static bool listen_same_address(const cio_listen *a, const cio_listen *b)
{
    if (a->addr.ss_family != b->addr.ss_family)
        return false;
    if (a->addr.ss_family == AF_INET6)
        return IN6_ARE_ADDR_EQUAL(&((const struct sockaddr_in6 *)&a->addr)->sin6_addr,
                                  &((const struct sockaddr_in6 *)&b->addr)->sin6_addr);
    return ((const struct sockaddr_in *)&a->addr)->sin_addr.s_addr ==
           ((const struct sockaddr_in *)&b->addr)->sin_addr.s_addr;
}

/* ---- WebSocket origins ---- */

/* A host name as URLs carry it: dot-separated labels of letters, digits, '-'
 * and '_' (browsers allow it), each 1..63 bytes, at most 253 in all. */
static bool host_name_valid(const char *s, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                   (ch >= '0' && ch <= '9') || ch == '-' || ch == '_') {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0; /* no empty last label: "example.com." is not accepted */
}

/* Whether the last label of a host name is all digits: then the URL parser
 * reads the host as an IPv4 address, and so must we. */
static bool host_ends_in_number(const char *s, size_t n)
{
    size_t i = n;
    while (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9')
        i--;
    return i < n && (i == 0 || s[i - 1] == '.');
}

/* An IPv6 address as URLs serialise it (WHATWG URL, host serializer; RFC
 * 5952): lower-case hex without leading zeros, the first longest run of two
 * or more zero pieces as "::". out holds INET6_ADDRSTRLEN bytes. */
static void ipv6_serialise(const struct in6_addr *a, char *out)
{
    unsigned piece[8];
    for (int i = 0; i < 8; i++)
        piece[i] = (unsigned)a->s6_addr[2 * i] << 8 | a->s6_addr[2 * i + 1];
    int best = -1, best_len = 1;
    for (int i = 0; i < 8;) {
        int j = i;
        while (j < 8 && piece[j] == 0)
            j++;
        if (j - i > best_len) {
            best = i;
            best_len = j - i;
        }
        i = j > i ? j : i + 1;
    }
    size_t n = 0;
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            n += (size_t)sprintf(out + n, "%s", i == 0 ? "::" : ":");
            i += best_len - 1;
            continue;
        }
        n += (size_t)sprintf(out + n, "%x%s", piece[i], i < 7 ? ":" : "");
    }
}

/* Puts in out (ORIGIN_MAX bytes) the RFC 6454 serialisation of the origin
 * text names: "null", or "scheme://host[:port]" with scheme http or https, in
 * lower case and without the scheme's default port, as a browser sends it in
 * an Origin header. Else -EINVAL with *why set. */
static int origin_canon(const char *text, char *out, const char **why)
{
    if (strcasecmp(text, "null") == 0) {
        strcpy(out, "null");
        return 0;
    }
    const char *scheme, *rest;
    unsigned default_port;
    if (strncasecmp(text, "http://", 7) == 0) {
        scheme = "http";
        default_port = 80;
        rest = text + 7;
    } else if (strncasecmp(text, "https://", 8) == 0) {
        scheme = "https";
        default_port = 443;
        rest = text + 8;
    } else {
        *why = ORIGIN_HINT;
        return -EINVAL;
    }
    size_t alen = strcspn(rest, "/?#"); /* the authority: host[:port] */
    if (rest[alen] == '/' && rest[alen + 1] == '\0') {
        *why = "an origin has no trailing slash";
        return -EINVAL;
    }
    if (rest[alen] != '\0') {
        *why = "an origin has no path, query or fragment";
        return -EINVAL;
    }
    if (memchr(rest, '@', alen)) {
        *why = "an origin has no user name or password";
        return -EINVAL;
    }

    size_t n = (size_t)sprintf(out, "%s://", scheme);
    const char *port_text;
    if (rest[0] == '[') {
        const char *close = memchr(rest, ']', alen);
        size_t len = close ? (size_t)(close - rest - 1) : 0;
        char addr[INET6_ADDRSTRLEN];
        struct in6_addr a6;
        if (len > 0 && len < sizeof(addr)) {
            memcpy(addr, rest + 1, len);
            addr[len] = '\0';
        }
        if (len == 0 || len >= sizeof(addr) || inet_pton(AF_INET6, addr, &a6) != 1) {
            *why = "invalid IPv6 address";
            return -EINVAL;
        }
        out[n++] = '[';
        ipv6_serialise(&a6, out + n);
        strcat(out, "]");
        port_text = close + 1;
    } else {
        size_t len = strcspn(rest, ":");
        if (!host_name_valid(rest, len)) {
            *why = len == 0 ? "no host" : "invalid host name";
            return -EINVAL;
        }
        if (host_ends_in_number(rest, len)) {
            char addr[INET_ADDRSTRLEN];
            struct in_addr a4;
            if (len < sizeof(addr)) {
                memcpy(addr, rest, len);
                addr[len] = '\0';
            }
            if (len >= sizeof(addr) || inet_pton(AF_INET, addr, &a4) != 1) {
                *why = "invalid IPv4 address";
                return -EINVAL;
            }
            inet_ntop(AF_INET, &a4, out + n, INET_ADDRSTRLEN);
        } else {
            for (size_t i = 0; i < len; i++) {
                char ch = rest[i];
                out[n + i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
            }
            out[n + len] = '\0';
        }
        port_text = rest + len;
    }

    if (*port_text != '\0') {
        uint16_t port = 0;
        if (*port_text != ':' || parse_port(port_text + 1, &port) < 0 || port == 0) {
            *why = "invalid port (expected 1..65535)";
            return -EINVAL;
        }
        if (port != default_port) {
            n = strlen(out);
            snprintf(out + n, ORIGIN_MAX - n, ":%u", port);
        }
    }
    return 0;
}

/* ---- cluster members ("servers") ---- */

/* Room for a reason, which may quote the entry once (an IPv6 hint). */
#define SERVER_WHY_MAX (sizeof(((cio_server_entry *)0)->text) + 64)

/* NULL when the n bytes at s are a host name as DNS takes it: dot-separated
 * labels of letters, digits, '-' and '_' (service names such as
 * "_sip.example" hold one), each 1..63 bytes and neither starting nor ending
 * with '-', at most 253 in all; else why not. */
static const char *server_name_why(const char *s, size_t n)
{
    if (n > 253)
        return "invalid host name: longer than 253 bytes";
    size_t label = 0;
    for (size_t i = 0; i <= n; i++) {
        unsigned char ch = i < n ? (unsigned char)s[i] : '.';
        if (ch == '.') {
            if (label == 0)
                return "invalid host name: empty label";
            if (s[i - label] == '-' || s[i - 1] == '-')
                return "invalid host name: a label starts or ends with '-'";
            label = 0;
        } else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                   (ch >= '0' && ch <= '9') || ch == '-' || ch == '_') {
            if (++label > 63)
                return "invalid host name: a label is longer than 63 bytes";
        } else {
            return "invalid host name: letters, digits, '-', '_' and '.' only";
        }
    }
    return NULL;
}

/* NULL when host (no brackets) is an IPv6 address (it has a colon), an IPv4
 * address or a host name; else why not. A name whose last label is all
 * digits is read as an IPv4 address, as URLs do, so "10.0.0.256" is no name. */
static const char *server_host_why(const char *host)
{
    size_t n = strlen(host);
    if (n == 0)
        return "empty host";
    unsigned char addr[sizeof(struct in6_addr)];
    if (strchr(host, ':'))
        return inet_pton(AF_INET6, host, addr) == 1 ? NULL : "invalid IPv6 address";
    if (host_ends_in_number(host, n))
        return inet_pton(AF_INET, host, addr) == 1 ? NULL : "invalid IPv4 address";
    return server_name_why(host, n);
}

/* Decimal digits, 1..65535: no sign, no spaces, no suffix. */
static const char *server_port_why(const char *s, uint16_t *port)
{
    unsigned long v = 0;
    if (!*s)
        return "missing port after ':'";
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return "invalid port (expected 1..65535)";
        if (v <= 65535) /* past it, only the digits still matter */
            v = v * 10 + (unsigned long)(*s - '0');
    }
    if (v == 0 || v > 65535)
        return "port out of range (1..65535)";
    *port = (uint16_t)v;
    return NULL;
}

/* Why an unbracketed text with two or more colons is refused, with the
 * bracketed form to write when it can tell: the last colon ends the address
 * when what follows is a port ("fe80::1:8080" -> "[fe80::1]:8080"), else the
 * whole text may be an address without a port. */
static void server_bracket_hint(const char *text, char *why, size_t whylen)
{
    char addr[INET6_ADDRSTRLEN];
    unsigned char bin[sizeof(struct in6_addr)];
    uint16_t port;
    const char *colon = strrchr(text, ':');
    size_t n = (size_t)(colon - text);
    if (n < sizeof(addr)) {
        memcpy(addr, text, n);
        addr[n] = '\0';
        if (inet_pton(AF_INET6, addr, bin) == 1 && !server_port_why(colon + 1, &port)) {
            snprintf(why, whylen, "an IPv6 address needs brackets: \"[%s]:%s\"", addr, colon + 1);
            return;
        }
    }
    if (inet_pton(AF_INET6, text, bin) == 1)
        snprintf(why, whylen, "an IPv6 address needs brackets: \"[%s]:PORT\"", text);
    else
        snprintf(why, whylen, "too many ':' (an IPv6 address needs brackets: \"[ADDR]:PORT\")");
}

/* Parses "host:port", "[IPv6]:port" or a bare "host" (port 0 until
 * cio_config_resolve_bare_servers). 0, or -EINVAL with the reason in why
 * (SERVER_WHY_MAX bytes) and *out untouched. */
static int server_parse(const char *text, cio_server_entry *out, char *why, size_t whylen)
{
    cio_server_entry e;
    memset(&e, 0, sizeof(e));
    size_t len = strlen(text);
    const char *port_text = NULL, *bad = NULL;
    if (len == 0) {
        bad = "empty entry";
    } else if (len >= sizeof(e.text)) {
        snprintf(why, whylen, "too long (at most %zu bytes)", sizeof(e.text) - 1);
        return -EINVAL;
    } else if (text[0] == '[') {
        const char *close = strchr(text, ']');
        size_t n = close ? (size_t)(close - text - 1) : 0;
        if (!close)
            bad = "missing ']' after the IPv6 address";
        else if (n >= INET6_ADDRSTRLEN)
            bad = "invalid IPv6 address";
        else if (close[1] != '\0' && close[1] != ':')
            bad = "expected ':' and a port after ']'";
        if (!bad) {
            memcpy(e.host, text + 1, n);
            e.host[n] = '\0';
            /* "[host0]:80": brackets hold an IPv6 address, nothing else */
            unsigned char bin[sizeof(struct in6_addr)];
            if (inet_pton(AF_INET6, e.host, bin) != 1) {
                bad = "invalid IPv6 address";
            } else if (close[1] == '\0') {
                snprintf(why, whylen, "a bracketed IPv6 address needs a port: \"[%s]:PORT\"",
                         e.host);
                return -EINVAL;
            }
            port_text = close + 2;
        }
    } else {
        const char *colon = strchr(text, ':');
        if (colon && strchr(colon + 1, ':')) {
            server_bracket_hint(text, why, whylen);
            return -EINVAL;
        }
        size_t n = colon ? (size_t)(colon - text) : len;
        if (n >= sizeof(e.host)) {
            bad = "invalid host name: longer than 253 bytes";
        } else {
            memcpy(e.host, text, n);
            e.host[n] = '\0';
            bad = server_host_why(e.host);
        }
        port_text = colon ? colon + 1 : NULL;
        e.bare = !colon;
    }
    if (!bad && port_text)
        bad = server_port_why(port_text, &e.port);
    if (bad) {
        snprintf(why, whylen, "%s", bad);
        return -EINVAL;
    }
    memcpy(e.text, text, len + 1);
    *out = e;
    return 0;
}

/* Two entries name one server: the same port and host, names and IPv4
 * addresses compared case-insensitively, IPv6 addresses as addresses. */
static bool server_same(const cio_server_entry *a, const cio_server_entry *b)
{
    if (a->port != b->port)
        return false;
    struct in6_addr x, y;
    if (strchr(a->host, ':') && strchr(b->host, ':') && inet_pton(AF_INET6, a->host, &x) == 1 &&
        inet_pton(AF_INET6, b->host, &y) == 1)
        return IN6_ARE_ADDR_EQUAL(&x, &y);
    return strcasecmp(a->host, b->host) == 0;
}

void cio_config_resolve_bare_servers(cio_config *c)
{
    if (!c || !c->servers)
        return;
    uint16_t port = c->nlisten > 0 ? listen_port(&c->listen[0]) : 0;
    for (size_t i = 0; i < c->nservers; i++)
        if (c->servers[i].bare)
            c->servers[i].port = port;
}

/* ---- JSON ---- */

/* Where messages come from: "name: key: message". */
typedef struct load_ctx {
    const char *name;
    char *err;
    size_t errlen;
} load_ctx;

__attribute__((format(printf, 2, 3))) static int lfail(load_ctx *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = verr(x->err, x->errlen, x->name, NULL, fmt, ap);
    va_end(ap);
    return r;
}

static int oom(load_ctx *x)
{
    lfail(x, "out of memory");
    return -ENOMEM;
}

/* JSON integers are signed 64-bit in jansson; we accept the non-negative
 * ones only (reals such as 1.0 or 1e6 are rejected, not truncated). */
static int get_u64(load_ctx *x, const char *path, json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return lfail(x, "%s: expected a non-negative integer", path);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* An integer stored in an unsigned: the range is checked here already, so
 * that a value too big for the field is not truncated into a valid one. */
static int get_unsigned(load_ctx *x, const char *path, json_t *v, unsigned lo, unsigned hi,
                        unsigned *out)
{
    uint64_t n = 0;
    int r = get_u64(x, path, v, &n);
    if (r < 0)
        return r;
    if (n < lo || n > hi)
        return lfail(x, "%s: %" PRIu64 " is out of range (%u..%u)", path, n, lo, hi);
    *out = (unsigned)n;
    return 0;
}

typedef struct u64_field {
    const char *name;
    size_t off; /* of a uint64_t inside cio_config */
} u64_field;

static const u64_field limit_fields[] = {
    {"max_connections", offsetof(cio_config, limits.max_connections)},
    {"max_header_bytes", offsetof(cio_config, limits.max_header_bytes)},
    {"max_uri_bytes", offsetof(cio_config, limits.max_uri_bytes)},
    {"max_body_bytes", offsetof(cio_config, limits.max_body_bytes)},
    {"max_requests_per_connection", offsetof(cio_config, limits.max_requests_per_connection)},
    {"max_connections_per_ip", offsetof(cio_config, limits.max_connections_per_ip)},
    {"max_buffered_bytes", offsetof(cio_config, limits.max_buffered_bytes)},
    {NULL, 0},
};

static const u64_field timeout_fields[] = {
    {"header_ms", offsetof(cio_config, timeouts.header_ms)},
    {"body_ms", offsetof(cio_config, timeouts.body_ms)},
    {"keepalive_ms", offsetof(cio_config, timeouts.keepalive_ms)},
    {"write_ms", offsetof(cio_config, timeouts.write_ms)},
    {"handler_ms", offsetof(cio_config, timeouts.handler_ms)},
    {"pool_wait_ms", offsetof(cio_config, timeouts.pool_wait_ms)},
    {"drain_ms", offsetof(cio_config, timeouts.drain_ms)},
    {NULL, 0},
};

static const u64_field discovery_fields[] = {
    {"interval_ms", offsetof(cio_config, discovery.interval_ms)},
    {"window_ms", offsetof(cio_config, discovery.window_ms)},
    {"request_timeout_ms", offsetof(cio_config, discovery.request_timeout_ms)},
    {NULL, 0},
};

static const u64_field health_fields[] = {
    {"stall_ms", offsetof(cio_config, health.stall_ms)},
    {NULL, 0},
};

static const u64_field debug_fields[] = {
    {"slow_ms", offsetof(cio_config, debug.slow_ms)},
    {NULL, 0},
};

static const u64_field websocket_fields[] = {
    {"max_message_bytes", offsetof(cio_config, websocket.max_message_bytes)},
    {"ping_interval_ms", offsetof(cio_config, websocket.ping_interval_ms)},
    {"idle_timeout_ms", offsetof(cio_config, websocket.idle_timeout_ms)},
    {"send_queue_bytes", offsetof(cio_config, websocket.send_queue_bytes)},
    {"compression_window_bits", offsetof(cio_config, websocket.compression_window_bits)},
    {NULL, 0},
};

/* The field named key, or NULL. */
static const u64_field *find_field(const u64_field *fields, const char *key)
{
    while (fields->name && strcmp(fields->name, key) != 0)
        fields++;
    return fields->name ? fields : NULL;
}

/* Stores the integer v in the field f of section. */
static int apply_u64_field(load_ctx *x, cio_config *c, const char *section, const u64_field *f,
                           json_t *v)
{
    char path[96];
    snprintf(path, sizeof(path), "%s.%s", section, f->name);
    return get_u64(x, path, v, (uint64_t *)((char *)c + f->off));
}

/* An object of integers: "limits", "timeouts", "health" and "debug". */
static int apply_u64_object(load_ctx *x, cio_config *c, const char *section, json_t *obj,
                            const u64_field *fields)
{
    if (!json_is_object(obj))
        return lfail(x, "%s: expected an object", section);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        const u64_field *f = find_field(fields, key);
        if (!f)
            return lfail(x, "unknown key \"%s.%s\"", section, key);
        int r = apply_u64_field(x, c, section, f, v);
        if (r < 0)
            return r;
    }
    return 0;
}

/* One entry of "listen" or "admin_listen" (key names it: "listen[2]"): a
 * string, or {"address": "...", "proxy_protocol": true}. */
static int apply_listen_entry(load_ctx *x, const char *key, json_t *v, cio_listen *out)
{
    if (json_is_string(v)) {
        if (cio_listen_parse(json_string_value(v), out) < 0)
            return lfail(x, "%s: invalid address \"%s\" " LISTEN_HINT, key, json_string_value(v));
        return 0;
    }
    if (!json_is_object(v))
        return lfail(x, "%s: expected a string or an object", key);
    json_t *addr = NULL;
    bool proxy = false;
    const char *k;
    json_t *f;
    json_object_foreach(v, k, f)
    {
        if (strcmp(k, "address") == 0) {
            if (!json_is_string(f))
                return lfail(x, "%s.address: expected a string", key);
            addr = f;
        } else if (strcmp(k, "proxy_protocol") == 0) {
            if (!json_is_boolean(f))
                return lfail(x, "%s.proxy_protocol: expected true or false", key);
            proxy = json_is_true(f);
        } else {
            return lfail(x, "unknown key \"%s.%s\"", key, k);
        }
    }
    if (!addr)
        return lfail(x, "%s: missing \"address\"", key);
    if (cio_listen_parse(json_string_value(addr), out) < 0)
        return lfail(x, "%s.address: invalid address \"%s\" " LISTEN_HINT, key,
                     json_string_value(addr));
    out->proxy_protocol = proxy;
    return 0;
}

/* Replaces "listen" (at least one address) or "admin_listen" (may be empty). */
static int apply_listen(load_ctx *x, const char *name, json_t *arr, size_t min, cio_listen *list,
                        size_t *count)
{
    if (!json_is_array(arr))
        return lfail(x, "%s: expected an array of addresses", name);
    size_t n = json_array_size(arr);
    if (n < min)
        return lfail(x, "%s: expected at least one address", name);
    if (n > CIO_CONFIG_MAX_LISTEN)
        return lfail(x, "%s: too many addresses (%zu, at most %d)", name, n, CIO_CONFIG_MAX_LISTEN);
    cio_listen parsed[CIO_CONFIG_MAX_LISTEN];
    for (size_t i = 0; i < n; i++) {
        char key[48];
        snprintf(key, sizeof(key), "%s[%zu]", name, i);
        int r = apply_listen_entry(x, key, json_array_get(arr, i), &parsed[i]);
        if (r < 0)
            return r;
    }
    memcpy(list, parsed, n * sizeof(parsed[0]));
    *count = n;
    return 0;
}

static int apply_log(load_ctx *x, cio_config *c, json_t *obj)
{
    if (!json_is_object(obj))
        return lfail(x, "log: expected an object");
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (strcmp(key, "level") == 0) {
            int level = json_is_string(v) ? parse_level(json_string_value(v)) : -1;
            if (level < 0)
                return lfail(x, "log.level: " LEVEL_HINT);
            c->log.level = level;
        } else if (strcmp(key, "access") == 0) {
            if (!json_is_string(v))
                return lfail(x, "log.access: expected a string (\"-\", \"off\" or a path)");
            if (set_string(&c->log.access, json_string_value(v)) < 0)
                return oom(x);
        } else if (strcmp(key, "format") == 0) {
            int format = -1;
            for (int i = 0; json_is_string(v) && i < 2; i++)
                if (strcmp(json_string_value(v), format_names[i]) == 0)
                    format = i;
            if (format < 0)
                return lfail(x, "log.format: expected one of combined, json");
            c->log.format = format;
        } else if (strcmp(key, "error") == 0) {
            if (!json_is_string(v))
                return lfail(x, "log.error: expected a string (\"-\" or a path)");
            if (set_string(&c->log.error, json_string_value(v)) < 0)
                return oom(x);
        } else {
            return lfail(x, "unknown key \"log.%s\"", key);
        }
    }
    return 0;
}

/* Replaces the list of origins, each stored in its canonical form. Two that
 * are one origin are reported here, as the user wrote them. */
static int apply_origins(load_ctx *x, cio_config *c, json_t *arr)
{
    if (!json_is_array(arr))
        return lfail(x, "websocket.origins: expected an array of strings");
    size_t n = json_array_size(arr);
    if (n > CIO_CONFIG_MAX_ORIGINS)
        return lfail(x, "websocket.origins: too many origins (%zu, at most %d)", n,
                     CIO_CONFIG_MAX_ORIGINS);
    char *list[CIO_CONFIG_MAX_ORIGINS];
    size_t i;
    int r = 0;
    for (i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        char canon[ORIGIN_MAX];
        const char *why = NULL;
        if (!json_is_string(v)) {
            r = lfail(x, "websocket.origins[%zu]: expected a string", i);
            break;
        }
        if (origin_canon(json_string_value(v), canon, &why) < 0) {
            r = lfail(x, "websocket.origins[%zu]: invalid origin \"%s\": %s", i,
                      json_string_value(v), why);
            break;
        }
        size_t j = 0;
        while (j < i && strcmp(list[j], canon) != 0)
            j++;
        if (j < i) {
            r = lfail(x, "websocket.origins[%zu]: \"%s\" duplicates websocket.origins[%zu] \"%s\"",
                      i, json_string_value(v), j, json_string_value(json_array_get(arr, j)));
            break;
        }
        if (!(list[i] = strdup(canon))) {
            r = oom(x);
            break;
        }
    }
    if (r < 0) {
        while (i > 0)
            free(list[--i]);
        return r;
    }
    free_origins(c);
    memcpy(c->websocket.origins, list, n * sizeof(list[0]));
    c->websocket.norigins = n;
    return 0;
}

static int apply_websocket(load_ctx *x, cio_config *c, json_t *obj)
{
    if (!json_is_object(obj))
        return lfail(x, "websocket: expected an object");
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        const u64_field *f = find_field(websocket_fields, key);
        int r = 0;
        if (f) {
            r = apply_u64_field(x, c, "websocket", f, v);
        } else if (strcmp(key, "origins") == 0) {
            r = apply_origins(x, c, v);
        } else if (strcmp(key, "compression") == 0) {
            if (!json_is_boolean(v))
                return lfail(x, "websocket.compression: expected true or false");
            c->websocket.compression = json_is_true(v);
        } else {
            return lfail(x, "unknown key \"websocket.%s\"", key);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

/* Replaces the list of servers. Bare names keep port 0 here: the listen
 * address whose port they take may still change (a later file, --listen). */
static int apply_servers(load_ctx *x, cio_config *c, json_t *arr)
{
    if (!json_is_array(arr))
        return lfail(x, "servers: expected an array of strings");
    size_t n = json_array_size(arr);
    if (n > CIO_CONFIG_MAX_SERVERS)
        return lfail(x, "servers: at most %d entries (got %zu)", CIO_CONFIG_MAX_SERVERS, n);
    cio_server_entry *list = NULL;
    if (n > 0 && !(list = calloc(n, sizeof(*list))))
        return oom(x);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        char why[SERVER_WHY_MAX];
        int r = 0;
        if (!json_is_string(v))
            r = lfail(x, "servers[%zu]: expected a string", i);
        else if (server_parse(json_string_value(v), &list[i], why, sizeof(why)) < 0)
            r = lfail(x, "servers[%zu]: \"%s\": %s", i, json_string_value(v), why);
        if (r < 0) {
            free(list);
            return r;
        }
    }
    free_servers(c);
    c->servers = list;
    c->nservers = n;
    return 0;
}

static int apply_discovery(load_ctx *x, cio_config *c, json_t *obj)
{
    if (!json_is_object(obj))
        return lfail(x, "discovery: expected an object");
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        const u64_field *f = find_field(discovery_fields, key);
        if (f) {
            int r = apply_u64_field(x, c, "discovery", f, v);
            if (r < 0)
                return r;
        } else if (strcmp(key, "require_self") == 0) {
            if (!json_is_boolean(v))
                return lfail(x, "discovery.require_self: expected true or false");
            c->discovery.require_self = json_is_true(v);
        } else {
            return lfail(x, "unknown key \"discovery.%s\"", key);
        }
    }
    return 0;
}

static int apply_document(load_ctx *x, cio_config *c, json_t *doc)
{
    if (!json_is_object(doc))
        return lfail(x, "expected a JSON object at the top level");
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v)
    {
        int r;
        if (strcmp(key, "listen") == 0) {
            r = apply_listen(x, "listen", v, 1, c->listen, &c->nlisten);
        } else if (strcmp(key, "admin_listen") == 0) {
            r = apply_listen(x, "admin_listen", v, 0, c->admin_listen, &c->nadmin_listen);
        } else if (strcmp(key, "root") == 0) {
            if (!json_is_null(v) && (!json_is_string(v) || !*json_string_value(v)))
                return lfail(x, "root: expected a directory path or null");
            r = set_string(&c->root, json_is_null(v) ? NULL : json_string_value(v));
            if (r < 0)
                return oom(x);
        } else if (strcmp(key, "serve_dotfiles") == 0) {
            if (!json_is_boolean(v))
                return lfail(x, "serve_dotfiles: expected true or false");
            c->serve_dotfiles = json_is_true(v);
            r = 0;
        } else if (strcmp(key, "pool_threads") == 0) {
            r = get_unsigned(x, "pool_threads", v, 0, MAX_THREADS, &c->pool_threads);
        } else if (strcmp(key, "pool_queue") == 0) {
            r = get_unsigned(x, "pool_queue", v, 1, MAX_QUEUE, &c->pool_queue);
        } else if (strcmp(key, "pool_priority") == 0) {
            int prio = -1;
            for (int i = 0; json_is_string(v) && i < 3; i++)
                if (strcmp(json_string_value(v), priority_names[i]) == 0)
                    prio = i;
            if (prio < 0)
                return lfail(x, "pool_priority: expected one of low, idle, normal");
            c->pool_priority = prio;
            r = 0;
        } else if (strcmp(key, "workers") == 0) {
            r = get_unsigned(x, "workers", v, 0, MAX_WORKERS, &c->workers);
        } else if (strcmp(key, "daemon") == 0) {
            if (!json_is_boolean(v))
                return lfail(x, "daemon: expected true or false");
            c->daemon = json_is_true(v);
            r = 0;
        } else if (strcmp(key, "pidfile") == 0) {
            if (!json_is_null(v) && (!json_is_string(v) || !*json_string_value(v)))
                return lfail(x, "pidfile: expected a file path or null");
            if (set_string(&c->pidfile, json_is_null(v) ? NULL : json_string_value(v)) < 0)
                return oom(x);
            r = 0;
        } else if (strcmp(key, "user") == 0 || strcmp(key, "group") == 0) {
            bool user = key[0] == 'u';
            if (!json_is_null(v) && (!json_is_string(v) || !*json_string_value(v)))
                return lfail(x, user ? "user: expected a user name, a numeric uid or null"
                                     : "group: expected a group name, a numeric gid or null");
            if (set_string(user ? &c->user : &c->group,
                           json_is_null(v) ? NULL : json_string_value(v)) < 0)
                return oom(x);
            r = 0;
        } else if (strcmp(key, "limits") == 0) {
            r = apply_u64_object(x, c, "limits", v, limit_fields);
        } else if (strcmp(key, "timeouts") == 0) {
            r = apply_u64_object(x, c, "timeouts", v, timeout_fields);
        } else if (strcmp(key, "log") == 0) {
            r = apply_log(x, c, v);
        } else if (strcmp(key, "websocket") == 0) {
            r = apply_websocket(x, c, v);
        } else if (strcmp(key, "servers") == 0) {
            r = apply_servers(x, c, v);
        } else if (strcmp(key, "discovery") == 0) {
            r = apply_discovery(x, c, v);
        } else if (strcmp(key, "health") == 0) {
            r = apply_u64_object(x, c, "health", v, health_fields);
        } else if (strcmp(key, "debug") == 0) {
            r = apply_u64_object(x, c, "debug", v, debug_fields);
        } else {
            return lfail(x, "unknown key \"%s\"", key);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

/* Applies a parsed document (or its parse error) to c, all or nothing. */
static int apply_parsed(load_ctx *x, cio_config *c, json_t *doc, const json_error_t *jerr)
{
    if (!doc) {
        if (jerr->line > 0)
            return fail(x->err, x->errlen, "%s:%d:%d: %s", x->name, jerr->line, jerr->column,
                        jerr->text);
        return lfail(x, "%s", jerr->text);
    }
    cio_config tmp;
    if (config_dup(&tmp, c) < 0) {
        json_decref(doc);
        return oom(x);
    }
    int r = apply_document(x, &tmp, doc);
    json_decref(doc);
    if (r < 0) {
        cio_config_free(&tmp);
        return r;
    }
    cio_config_free(c);
    *c = tmp;
    return 0;
}

int cio_config_load_string(cio_config *c, const char *json, const char *name, char *err,
                           size_t errlen)
{
    load_ctx x = {name ? name : "<string>", err, errlen};
    if (!json)
        return lfail(&x, "no document");
    json_error_t jerr;
    json_t *doc = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    return apply_parsed(&x, c, doc, &jerr);
}

int cio_config_load_file(cio_config *c, const char *path, char *err, size_t errlen)
{
    load_ctx x = {path ? path : "<null>", err, errlen};
    if (!path)
        return lfail(&x, "no file name");
    /* Opened here rather than by jansson for errno-style messages, and so a
     * directory is reported as one instead of as a read error. */
    FILE *f = fopen(path, "re");
    if (!f)
        return lfail(&x, "%s", strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return lfail(&x, "%s", strerror(EISDIR));
    }
    json_error_t jerr;
    json_t *doc = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
    fclose(f);
    return apply_parsed(&x, c, doc, &jerr);
}

/* ---- validation ---- */

/* Where the settings being validated came from: an error names the flag that
 * set the offending value, or else the file when one was given (defaults are
 * valid, so a bad value not set by a flag came from the file, or was made bad
 * by it, as max_uri_bytes by a smaller max_header_bytes). */
typedef struct origin {
    const char *file;                 /* --config FILE, or NULL */
    bool listen, root, level, access; /* set by --listen, --root, --log-level, --access-log */
    bool servers;                     /* set by --server */
    bool admin_listen, error;         /* set by --admin-listen, --error-log */
    bool workers, pidfile, user, group; /* set by --workers, --pidfile, --user, --group */
} origin;

/* Whether key is list or one of its entries ("listen[2]" for "listen"). */
static bool key_in(const char *key, const char *list)
{
    size_t n = strlen(list);
    return strncmp(key, list, n) == 0 && (key[n] == '\0' || key[n] == '[');
}

/* The flag that set key ("listen[2]" counts as "listen"), or NULL. */
static const char *flag_for(const origin *o, const char *key)
{
    if (!o)
        return NULL;
    if (o->listen && key_in(key, "listen"))
        return "--listen";
    if (o->admin_listen && key_in(key, "admin_listen"))
        return "--admin-listen";
    if (o->servers && key_in(key, "servers"))
        return "--server";
    if (o->root && strcmp(key, "root") == 0)
        return "--root";
    if (o->level && strcmp(key, "log.level") == 0)
        return "--log-level";
    if (o->access && strcmp(key, "log.access") == 0)
        return "--access-log";
    if (o->error && strcmp(key, "log.error") == 0)
        return "--error-log";
    if (o->workers && strcmp(key, "workers") == 0)
        return "--workers";
    if (o->pidfile && strcmp(key, "pidfile") == 0)
        return "--pidfile";
    if (o->user && strcmp(key, "user") == 0)
        return "--user";
    if (o->group && strcmp(key, "group") == 0)
        return "--group";
    return NULL;
}

/* "--flag: message", "file: key: message" or "key: message". */
__attribute__((format(printf, 5, 6))) static int vfail(char *err, size_t errlen, const origin *o,
                                                       const char *key, const char *fmt, ...)
{
    const char *flag = flag_for(o, key);
    va_list ap;
    va_start(ap, fmt);
    int r = verr(err, errlen, flag || !o ? NULL : o->file, flag ? flag : key, fmt, ap);
    va_end(ap);
    return r;
}

static int check_range(char *err, size_t errlen, const origin *o, const char *key, uint64_t v,
                       uint64_t lo, uint64_t hi)
{
    if (v < lo || v > hi)
        return vfail(err, errlen, o, key, "%" PRIu64 " is out of range (%" PRIu64 "..%" PRIu64 ")",
                     v, lo, hi);
    return 0;
}

/* Whether a and b cannot both be bound: one port of one family taken twice,
 * by the same address or by a wildcard and any other address (Linux refuses
 * that even with SO_REUSEADDR). Port 0 is exempt, each such socket getting
 * its own port, and so are IPv4 and IPv6 on one port: the server's IPv6
 * sockets are IPV6_V6ONLY. Then -EINVAL with "key: message" naming both, the
 * other as other ("listen[0] ", or "" for a flag's entry, named by its text
 * alone). */
static int listen_conflict(char *err, size_t errlen, const origin *o, const char *key,
                           const cio_listen *a, const cio_listen *b, const char *other)
{
    uint16_t port = listen_port(a);
    int fam = a->addr.ss_family;
    if (port == 0 || b->addr.ss_family != fam || listen_port(b) != port)
        return 0;
    if (listen_same_address(a, b))
        return vfail(err, errlen, o, key, "\"%s\" duplicates %s\"%s\"", a->text, other, b->text);
    if (listen_wildcard(a) || listen_wildcard(b))
        return vfail(err, errlen, o, key,
                     "\"%s\" overlaps %s\"%s\" (the wildcard address takes port %u on every %s "
                     "address)",
                     a->text, other, b->text, port, fam == AF_INET6 ? "IPv6" : "IPv4");
    return 0;
}

/* How an error names entry i of list ("listen" or "admin_listen") when it is
 * the other one of a pair: by its index in a file's list, by the flag and
 * its text on the command line (key_flag: the flag names the entry the error
 * is about already, so the flag is left out). */
static void listen_other(char *buf, size_t len, const origin *o, const char *list, size_t i,
                         const char *key_flag)
{
    const char *flag = flag_for(o, list);
    if (!flag)
        snprintf(buf, len, "%s[%zu] ", list, i);
    else if (key_flag && strcmp(key_flag, flag) == 0)
        buf[0] = '\0';
    else
        snprintf(buf, len, "%s ", flag);
}

/* Each entry of list (name: "listen" or "admin_listen") is an address, and no
 * two conflict. */
static int validate_listen_list(const cio_listen *list, size_t n, const char *name, const origin *o,
                                char *err, size_t errlen)
{
    if (n > CIO_CONFIG_MAX_LISTEN)
        return vfail(err, errlen, o, name, "too many addresses (%zu, at most %d)", n,
                     CIO_CONFIG_MAX_LISTEN);
    for (size_t i = 0; i < n; i++) {
        const cio_listen *a = &list[i];
        char key[48];
        snprintf(key, sizeof(key), "%s[%zu]", name, i);
        int fam = a->addr.ss_family;
        socklen_t want = fam == AF_INET    ? sizeof(struct sockaddr_in)
                         : fam == AF_INET6 ? sizeof(struct sockaddr_in6)
                                           : 0;
        if (want == 0 || a->addrlen != want)
            return vfail(err, errlen, o, key, "not an IPv4 or IPv6 address");
        if (!memchr(a->text, '\0', sizeof(a->text)))
            return vfail(err, errlen, o, key, "text not NUL-terminated");
        for (size_t j = 0; j < i; j++) {
            char other[48];
            listen_other(other, sizeof(other), o, name, j, flag_for(o, key));
            int r = listen_conflict(err, errlen, o, key, a, &list[j], other);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

static int validate_listen(const cio_config *c, const origin *o, char *err, size_t errlen)
{
    if (c->nlisten == 0)
        return vfail(err, errlen, o, "listen", "at least one address is required");
    int r = validate_listen_list(c->listen, c->nlisten, "listen", o, err, errlen);
    if (r < 0)
        return r;
    r = validate_listen_list(c->admin_listen, c->nadmin_listen, "admin_listen", o, err, errlen);
    if (r < 0)
        return r;
    /* The admin listeners are sockets of their own, bound next to the main
     * ones: the same rule holds between the two lists. */
    for (size_t i = 0; i < c->nadmin_listen; i++) {
        char key[48];
        snprintf(key, sizeof(key), "admin_listen[%zu]", i);
        for (size_t j = 0; j < c->nlisten; j++) {
            char other[48];
            listen_other(other, sizeof(other), o, "listen", j, flag_for(o, key));
            r = listen_conflict(err, errlen, o, key, &c->admin_listen[i], &c->listen[j], other);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

/* Whether the server's open(O_WRONLY | O_APPEND | O_CREAT) of a log file (key:
 * log.access or log.error; "-" is stderr) would succeed, judged without
 * creating it: an existing file must be one the process may write, a new one
 * needs a directory it may create files in. AT_EACCESS: open goes by the
 * effective ids. A dangling symlink is judged by its own directory, not its
 * target's: rare enough to stay lenient. */
static int validate_log_file(const char *key, const char *path, const origin *o, char *err,
                             size_t errlen)
{
    if (strcmp(path, "-") == 0)
        return 0;
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return vfail(err, errlen, o, key, "%s: %s", path, strerror(EISDIR));
        /* Devices and pipes: /dev/stdout is a terminal, a pipe (containers,
         * shell pipelines) or a file; a socket cannot be opened by path. */
        if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode) && !S_ISFIFO(st.st_mode))
            return vfail(err, errlen, o, key, "%s: not a regular file, character device or pipe",
                         path);
        if (faccessat(AT_FDCWD, path, W_OK, AT_EACCESS) < 0)
            return vfail(err, errlen, o, key, "%s: %s", path, strerror(errno));
        return 0;
    }
    if (errno != ENOENT)
        return vfail(err, errlen, o, key, "%s: %s", path, strerror(errno));
    size_t len = strlen(path);
    if (path[len - 1] == '/') /* open(O_CREAT) makes no directories */
        return vfail(err, errlen, o, key, "%s: %s", path, strerror(EISDIR));
    /* stat would have failed with ENAMETOOLONG for a longer path */
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else
        snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
    /* Creating an entry needs write and search permission on the directory. */
    if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) < 0)
        return vfail(err, errlen, o, key, "%s: cannot create it in %s: %s", path, dir,
                     strerror(errno));
    return 0;
}

/* The cross-field rules of "websocket", and its origins. The ranges of its
 * integers are checked before, with the others: max_message_bytes + 14 cannot
 * wrap. */
static int validate_websocket(const cio_config *c, const origin *o, char *err, size_t errlen)
{
    uint64_t ping = c->websocket.ping_interval_ms, idle = c->websocket.idle_timeout_ms;
    /* Closing for silence before the ping that would have broken it. */
    if (ping != 0 && idle != 0 && idle <= ping)
        return vfail(err, errlen, o, "websocket.idle_timeout_ms",
                     "%" PRIu64 " must be greater than websocket.ping_interval_ms (%" PRIu64
                     "), or 0 (never)",
                     idle, ping);
    /* A message of the largest size must fit in the queue as one frame. */
    uint64_t lo = c->websocket.max_message_bytes + WS_HEADER;
    if (c->websocket.send_queue_bytes < lo || c->websocket.send_queue_bytes > MAX_SENDQ)
        return vfail(err, errlen, o, "websocket.send_queue_bytes",
                     "%" PRIu64 " is out of range (%" PRIu64 "..%" PRIu64
                     ", at least websocket.max_message_bytes + %d)",
                     c->websocket.send_queue_bytes, lo, MAX_SENDQ, WS_HEADER);

    if (c->websocket.norigins > CIO_CONFIG_MAX_ORIGINS)
        return vfail(err, errlen, o, "websocket.origins", "too many origins (%zu, at most %d)",
                     c->websocket.norigins, CIO_CONFIG_MAX_ORIGINS);
    char canon[CIO_CONFIG_MAX_ORIGINS][ORIGIN_MAX];
    for (size_t i = 0; i < c->websocket.norigins; i++) {
        const char *text = c->websocket.origins[i], *why = NULL;
        char key[40];
        snprintf(key, sizeof(key), "websocket.origins[%zu]", i);
        if (!text)
            return vfail(err, errlen, o, key, "expected a string");
        if (origin_canon(text, canon[i], &why) < 0)
            return vfail(err, errlen, o, key, "invalid origin \"%s\": %s", text, why);
        for (size_t j = 0; j < i; j++)
            if (strcmp(canon[i], canon[j]) == 0)
                return vfail(err, errlen, o, key, "\"%s\" duplicates websocket.origins[%zu] \"%s\"",
                             text, j, c->websocket.origins[j]);
    }
    return 0;
}

/* Each entry again (a program may fill the list itself), every one with a
 * port, and no server twice. Run after validate_listen: a bare name's port is
 * that of listen[0]. */
static int validate_servers(const cio_config *c, const origin *o, char *err, size_t errlen)
{
    if (c->nservers > CIO_CONFIG_MAX_SERVERS)
        return vfail(err, errlen, o, "servers", "at most %d entries (got %zu)",
                     CIO_CONFIG_MAX_SERVERS, c->nservers);
    if (c->nservers > 0 && !c->servers)
        return vfail(err, errlen, o, "servers", "nservers is %zu but the list is NULL",
                     c->nservers);
    uint16_t listen0 = c->nlisten > 0 ? listen_port(&c->listen[0]) : 0;
    /* As with listen, the other entry of a pair is named by its index in a
     * file's list, by its text alone on the command line. */
    bool by_index = !flag_for(o, "servers");
    for (size_t i = 0; i < c->nservers; i++) {
        const cio_server_entry *a = &c->servers[i];
        char key[32];
        snprintf(key, sizeof(key), "servers[%zu]", i);
        if (!memchr(a->text, '\0', sizeof(a->text)) || !memchr(a->host, '\0', sizeof(a->host)))
            return vfail(err, errlen, o, key, "text or host not NUL-terminated");
        const char *why = server_host_why(a->host);
        if (why)
            return vfail(err, errlen, o, key, "\"%s\": %s", a->text, why);
        if (a->port == 0 && a->bare && listen0 == 0)
            return vfail(err, errlen, o, key,
                         "\"%s\": a bare name takes the port of the first listen address, "
                         "which is 0 (any free port): write %s:PORT",
                         a->text, a->host);
        if (a->port == 0 && a->bare)
            return vfail(err, errlen, o, key,
                         "\"%s\": a bare name not yet given the port of the first listen "
                         "address (%u; see cio_config_resolve_bare_servers)",
                         a->text, listen0);
        if (a->port == 0)
            return vfail(err, errlen, o, key, "\"%s\": port out of range (1..65535)", a->text);
        for (size_t j = 0; j < i; j++) {
            const cio_server_entry *b = &c->servers[j];
            if (!server_same(a, b))
                continue;
            char other[32] = "";
            if (by_index)
                snprintf(other, sizeof(other), "servers[%zu] ", j);
            if (a->bare || b->bare)
                return vfail(err, errlen, o, key,
                             "\"%s\" duplicates %s\"%s\" (a bare name takes port %u of the "
                             "first listen address)",
                             a->text, other, b->text, a->port);
            return vfail(err, errlen, o, key, "\"%s\" duplicates %s\"%s\"", a->text, other,
                         b->text);
        }
    }
    return 0;
}

/* A numeric uid or gid: decimal digits only, below (id_t)-1, which the set*id
 * calls read as "leave unchanged". */
static bool parse_id(const char *s, unsigned long *id)
{
    unsigned long v = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v >= UINT32_MAX)
            return false;
    }
    *id = v;
    return true;
}

/* Looks up a user (or a group) by name, or by id when by_id: 1 found, 0 not
 * found, else -errno. The _r calls with a buffer of our own: validation may
 * run again in a process with threads (SIGHUP). */
static int account_lookup(bool group, const char *name, bool by_id, unsigned long id)
{
    long hint = sysconf(group ? _SC_GETGR_R_SIZE_MAX : _SC_GETPW_R_SIZE_MAX);
    size_t len = hint > 0 ? (size_t)hint : 16384;
    for (;;) {
        char *buf = malloc(len);
        if (!buf)
            return -ENOMEM;
        bool found;
        int r;
        if (group) {
            struct group g, *res = NULL;
            r = by_id ? getgrgid_r((gid_t)id, &g, buf, len, &res)
                      : getgrnam_r(name, &g, buf, len, &res);
            found = res != NULL;
        } else {
            struct passwd pw, *res = NULL;
            r = by_id ? getpwuid_r((uid_t)id, &pw, buf, len, &res)
                      : getpwnam_r(name, &pw, buf, len, &res);
            found = res != NULL;
        }
        free(buf);
        if (found)
            return 1;
        if (r == ERANGE && len < (1u << 22)) {
            len *= 2;
            continue;
        }
        /* Not found is r == 0, or one of these (POSIX allows them for it). */
        if (r == 0 || r == ENOENT || r == ESRCH || r == EBADF || r == EPERM)
            return 0;
        return -r;
    }
}

/* "user" or "group" (key): a name that getpwnam/getgrnam knows, or a numeric
 * id. A uid no passwd entry holds has no primary group to switch to, so it
 * needs "group" as well; a gid needs no entry. */
static int validate_account(const cio_config *c, bool group, const origin *o, char *err,
                            size_t errlen)
{
    const char *key = group ? "group" : "user";
    const char *name = group ? c->group : c->user;
    if (!name)
        return 0;
    if (!*name)
        return vfail(err, errlen, o, key,
                     group ? "expected a group name or a numeric gid"
                           : "expected a user name or a numeric uid");
    int r = account_lookup(group, name, false, 0);
    unsigned long id;
    bool numeric = r == 0 && parse_id(name, &id);
    if (numeric && !group && !c->group) {
        r = account_lookup(false, NULL, true, id);
        if (r == 0)
            return vfail(err, errlen, o, key,
                         "\"%s\": no such user (a uid without a passwd entry needs \"group\" "
                         "as well)",
                         name);
    }
    if (r < 0)
        return vfail(err, errlen, o, key, "\"%s\": cannot look it up: %s", name, strerror(-r));
    if (r == 0 && !numeric)
        return vfail(err, errlen, o, key, "\"%s\": no such %s", name, key);
    return 0;
}

static int validate(const cio_config *c, const origin *o, char *err, size_t errlen)
{
    int r;
    if ((r = validate_listen(c, o, err, errlen)) < 0)
        return r;
    if ((r = validate_servers(c, o, err, errlen)) < 0)
        return r;

    static const struct {
        const char *key;
        size_t off;
        uint64_t lo, hi;
    } ranges[] = {
        {"limits.max_connections", offsetof(cio_config, limits.max_connections), 1, 1000000},
        {"limits.max_connections_per_ip", offsetof(cio_config, limits.max_connections_per_ip), 0,
         1000000},
        {"limits.max_header_bytes", offsetof(cio_config, limits.max_header_bytes), 1024, 1048576},
        {"limits.max_body_bytes", offsetof(cio_config, limits.max_body_bytes), 1, MAX_BODY},
        {"limits.max_buffered_bytes", offsetof(cio_config, limits.max_buffered_bytes), 0,
         UINT64_C(1) << 40},
        {"timeouts.header_ms", offsetof(cio_config, timeouts.header_ms), 1, MAX_MS},
        {"timeouts.body_ms", offsetof(cio_config, timeouts.body_ms), 1, MAX_MS},
        {"timeouts.keepalive_ms", offsetof(cio_config, timeouts.keepalive_ms), 0, MAX_MS},
        {"timeouts.write_ms", offsetof(cio_config, timeouts.write_ms), 1, MAX_MS},
        {"timeouts.handler_ms", offsetof(cio_config, timeouts.handler_ms), 0, MAX_MS},
        {"timeouts.pool_wait_ms", offsetof(cio_config, timeouts.pool_wait_ms), 0, MAX_MS},
        {"timeouts.drain_ms", offsetof(cio_config, timeouts.drain_ms), 0, MAX_MS},
        {"websocket.max_message_bytes", offsetof(cio_config, websocket.max_message_bytes), 1,
         MAX_BODY},
        {"websocket.ping_interval_ms", offsetof(cio_config, websocket.ping_interval_ms), 0, MAX_MS},
        {"websocket.idle_timeout_ms", offsetof(cio_config, websocket.idle_timeout_ms), 0, MAX_MS},
        {"websocket.compression_window_bits",
         offsetof(cio_config, websocket.compression_window_bits), 9, 15},
        {"discovery.interval_ms", offsetof(cio_config, discovery.interval_ms), 10, 3600000},
        {"discovery.window_ms", offsetof(cio_config, discovery.window_ms), 0, MAX_MS},
        {"discovery.request_timeout_ms", offsetof(cio_config, discovery.request_timeout_ms), 1,
         60000},
        {"health.stall_ms", offsetof(cio_config, health.stall_ms), 100, 3600000},
        {"debug.slow_ms", offsetof(cio_config, debug.slow_ms), 0, 60000},
    };
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        uint64_t v = *(const uint64_t *)((const char *)c + ranges[i].off);
        if ((r = check_range(err, errlen, o, ranges[i].key, v, ranges[i].lo, ranges[i].hi)) < 0)
            return r;
    }
    /* The target is part of the head, so it can never be longer. */
    if (c->limits.max_uri_bytes < 16 || c->limits.max_uri_bytes > c->limits.max_header_bytes)
        return vfail(err, errlen, o, "limits.max_uri_bytes",
                     "%" PRIu64 " is out of range (16..%" PRIu64
                     ", at most limits.max_header_bytes)",
                     c->limits.max_uri_bytes, c->limits.max_header_bytes);
    if ((r = check_range(err, errlen, o, "pool_threads", c->pool_threads, 0, MAX_THREADS)) < 0)
        return r;
    if ((r = check_range(err, errlen, o, "pool_queue", c->pool_queue, 1, MAX_QUEUE)) < 0)
        return r;
    if ((r = check_range(err, errlen, o, "workers", c->workers, 0, MAX_WORKERS)) < 0)
        return r;
    if ((r = validate_websocket(c, o, err, errlen)) < 0)
        return r;

    if (c->log.level < 0 || c->log.level > 3)
        return vfail(err, errlen, o, "log.level", "%d is out of range (0..3)", c->log.level);
    if (!c->log.access || !*c->log.access)
        return vfail(err, errlen, o, "log.access", "expected \"-\", \"off\" or a file path");
    if (strcmp(c->log.access, "off") != 0 &&
        (r = validate_log_file("log.access", c->log.access, o, err, errlen)) < 0)
        return r;
    if (c->log.format < 0 || c->log.format > CIO_CONFIG_LOG_JSON)
        return vfail(err, errlen, o, "log.format", "%d is out of range (0..%d)", c->log.format,
                     CIO_CONFIG_LOG_JSON);
    if (!c->log.error || !*c->log.error)
        return vfail(err, errlen, o, "log.error", "expected \"-\" or a file path");
    /* Errors are never thrown away; a file of that name is ./off. */
    if (strcmp(c->log.error, "off") == 0)
        return vfail(err, errlen, o, "log.error",
                     "\"off\" is not allowed (expected \"-\" or a file path)");
    if ((r = validate_log_file("log.error", c->log.error, o, err, errlen)) < 0)
        return r;

    if (c->root) {
        struct stat st;
        if (!*c->root)
            return vfail(err, errlen, o, "root", "empty path");
        if (stat(c->root, &st) < 0)
            return vfail(err, errlen, o, "root", "%s: %s", c->root, strerror(errno));
        if (!S_ISDIR(st.st_mode))
            return vfail(err, errlen, o, "root", "%s: not a directory", c->root);
    }
    if (c->pidfile && !*c->pidfile)
        return vfail(err, errlen, o, "pidfile", "expected a file path");
    if ((r = validate_account(c, false, o, err, errlen)) < 0)
        return r;
    if ((r = validate_account(c, true, o, err, errlen)) < 0)
        return r;
    return 0;
}

int cio_config_validate(const cio_config *c, char *err, size_t errlen)
{
    return validate(c, NULL, err, errlen);
}

/* ---- command line ---- */

enum {
    OPT_ACCESS_LOG = 256,
    OPT_LOG_LEVEL,
    OPT_SERVER,
    OPT_REQUIRE_SELF,
    OPT_ADMIN_LISTEN,
    OPT_ERROR_LOG,
    OPT_WORKERS,
    OPT_DAEMON,
    OPT_PIDFILE,
    OPT_USER,
    OPT_GROUP,
};

static const struct option long_options[] = {
    {"config", required_argument, NULL, 'c'},
    {"listen", required_argument, NULL, 'l'},
    {"root", required_argument, NULL, 'r'},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"access-log", required_argument, NULL, OPT_ACCESS_LOG},
    {"server", required_argument, NULL, OPT_SERVER},
    {"require-self", no_argument, NULL, OPT_REQUIRE_SELF},
    {"admin-listen", required_argument, NULL, OPT_ADMIN_LISTEN},
    {"error-log", required_argument, NULL, OPT_ERROR_LOG},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"daemon", no_argument, NULL, OPT_DAEMON},
    {"pidfile", required_argument, NULL, OPT_PIDFILE},
    {"user", required_argument, NULL, OPT_USER},
    {"group", required_argument, NULL, OPT_GROUP},
    {"check-config", no_argument, NULL, 't'},
    {"version", no_argument, NULL, 'V'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* '+': stop at the first operand instead of permuting argv, so operands
 * are reported; ':': tell a missing argument apart from an unknown option. */
static const char short_options[] = "+:c:l:r:tVh";

/* What the command line said, applied only once it was all read, so the
 * file never overrides a flag whatever their order. */
typedef struct cli {
    const char *config, *root, *level, *access, *error, *workers, *pidfile, *user, *group;
    const char *listen[CIO_CONFIG_MAX_LISTEN];
    size_t nlisten;
    const char *admin_listen[CIO_CONFIG_MAX_LISTEN];
    size_t nadmin_listen;
    const char *server[CIO_CONFIG_MAX_SERVERS];
    size_t nserver;
    bool help, version, check, require_self, daemon;
} cli;

/* The option as typed: "--name" (without "=value") or "-x". */
static void option_name(char *buf, size_t len, const char *arg, int opt)
{
    if (arg && strncmp(arg, "--", 2) == 0)
        snprintf(buf, len, "%.*s", (int)strcspn(arg, "="), arg);
    else
        snprintf(buf, len, "-%c", opt > 0 && opt < 256 ? opt : '?');
}

/* How many long options "--prefix" abbreviates (getopt_long accepts any
 * unique prefix). */
static int long_matches(const char *prefix)
{
    int n = 0;
    for (const struct option *o = long_options; o->name; o++)
        n += strncmp(o->name, prefix, strlen(prefix)) == 0;
    return n;
}

static int parse_cli(cli *a, int argc, char **argv, char *err, size_t errlen)
{
    char name[64];
    optind = 0; /* glibc: full re-initialisation, callers may parse repeatedly */
    opterr = 0;
    for (;;) {
        int opt = getopt_long(argc, argv, short_options, long_options, NULL);
        if (opt == -1)
            break;
        switch (opt) {
        case 'c':
            a->config = optarg;
            break;
        case 'l':
            if (a->nlisten == CIO_CONFIG_MAX_LISTEN)
                return fail(err, errlen, "--listen: too many addresses (at most %d)",
                            CIO_CONFIG_MAX_LISTEN);
            a->listen[a->nlisten++] = optarg;
            break;
        case 'r':
            a->root = optarg;
            break;
        case OPT_LOG_LEVEL:
            a->level = optarg;
            break;
        case OPT_ACCESS_LOG:
            a->access = optarg;
            break;
        case OPT_SERVER:
            if (a->nserver == CIO_CONFIG_MAX_SERVERS)
                return fail(err, errlen, "--server: at most %d entries", CIO_CONFIG_MAX_SERVERS);
            a->server[a->nserver++] = optarg;
            break;
        case OPT_REQUIRE_SELF:
            a->require_self = true;
            break;
        case OPT_ADMIN_LISTEN:
            if (a->nadmin_listen == CIO_CONFIG_MAX_LISTEN)
                return fail(err, errlen, "--admin-listen: too many addresses (at most %d)",
                            CIO_CONFIG_MAX_LISTEN);
            a->admin_listen[a->nadmin_listen++] = optarg;
            break;
        case OPT_ERROR_LOG:
            a->error = optarg;
            break;
        case OPT_WORKERS:
            a->workers = optarg;
            break;
        case OPT_DAEMON:
            a->daemon = true;
            break;
        case OPT_PIDFILE:
            a->pidfile = optarg;
            break;
        case OPT_USER:
            a->user = optarg;
            break;
        case OPT_GROUP:
            a->group = optarg;
            break;
        case 't':
            a->check = true;
            break;
        case 'V':
            a->version = true;
            break;
        case 'h':
            a->help = true;
            break;
        case ':': /* only ever the last argument, which getopt has passed */
            option_name(name, sizeof(name), argv[optind - 1], optopt);
            return fail(err, errlen, "option \"%s\" requires an argument (see --help)", name);
        default:
            /* glibc leaves optopt 0 for an unknown long option and sets it to
             * the option's value for "--flag=value" on a flag without one;
             * otherwise optopt is an unknown short option, maybe mid-group
             * ("-hx"), where argv[optind - 1] is not the current argument. */
            if (optopt == 0) {
                option_name(name, sizeof(name), argv[optind - 1], 0);
                if (long_matches(name + 2) > 1)
                    return fail(err, errlen, "ambiguous option \"%s\" (see --help)", name);
            } else if (optopt >= 256 /* a long-only flag, as --require-self=yes */ ||
                       (optopt != ':' && strchr(short_options + 2, optopt))) {
                option_name(name, sizeof(name), argv[optind - 1], optopt);
                return fail(err, errlen, "option \"%s\" takes no argument (see --help)", name);
            } else {
                option_name(name, sizeof(name), NULL, optopt);
            }
            return fail(err, errlen, "unknown option \"%s\" (see --help)", name);
        }
    }
    if (optind < argc)
        return fail(err, errlen, "unexpected argument \"%s\" (see --help)", argv[optind]);
    return 0;
}

static int oom_cli(char *err, size_t errlen)
{
    fail(err, errlen, "out of memory");
    return -ENOMEM;
}

/* --listen or --admin-listen (flag): replaces list with the n addresses. */
static int apply_cli_listen(const char *flag, const char *const *text, size_t n, cio_listen *list,
                            size_t *count, char *err, size_t errlen)
{
    cio_listen parsed[CIO_CONFIG_MAX_LISTEN];
    for (size_t i = 0; i < n; i++)
        if (cio_listen_parse(text[i], &parsed[i]) < 0)
            return fail(err, errlen, "%s: invalid address \"%s\" " LISTEN_HINT, flag, text[i]);
    memcpy(list, parsed, n * sizeof(parsed[0]));
    *count = n;
    return 0;
}

/* --workers N: decimal digits, 0..MAX_WORKERS. */
static int apply_cli_workers(cio_config *c, const char *text, char *err, size_t errlen)
{
    unsigned long v = 0;
    const char *p = text;
    for (; *p >= '0' && *p <= '9'; p++)
        if (v <= MAX_WORKERS) /* past it, only the digits still matter */
            v = v * 10 + (unsigned long)(*p - '0');
    if (p == text || *p)
        return fail(err, errlen, "--workers: expected a non-negative integer (got \"%s\")", text);
    if (v > MAX_WORKERS)
        return fail(err, errlen, "--workers: %s is out of range (0..%d)", text, MAX_WORKERS);
    c->workers = (unsigned)v;
    return 0;
}

/* --pidfile, --user, --group, --error-log: a non-empty string into *slot. */
static int apply_cli_string(char **slot, const char *flag, const char *text, const char *what,
                            char *err, size_t errlen)
{
    if (!*text)
        return fail(err, errlen, "%s: expected %s", flag, what);
    if (set_string(slot, text) < 0)
        return oom_cli(err, errlen);
    return 0;
}

static int apply_cli(cio_config *c, const cli *a, char *err, size_t errlen)
{
    int r;
    if (a->config && (r = cio_config_load_file(c, a->config, err, errlen)) < 0)
        return r;
    if (a->nlisten > 0 && (r = apply_cli_listen("--listen", a->listen, a->nlisten, c->listen,
                                                &c->nlisten, err, errlen)) < 0)
        return r;
    if (a->nadmin_listen > 0 &&
        (r = apply_cli_listen("--admin-listen", a->admin_listen, a->nadmin_listen, c->admin_listen,
                              &c->nadmin_listen, err, errlen)) < 0)
        return r;
    if (a->nserver > 0) {
        cio_server_entry *list = calloc(a->nserver, sizeof(*list));
        if (!list)
            return oom_cli(err, errlen);
        for (size_t i = 0; i < a->nserver; i++) {
            char why[SERVER_WHY_MAX];
            if (server_parse(a->server[i], &list[i], why, sizeof(why)) < 0) {
                free(list);
                return fail(err, errlen, "--server: \"%s\": %s", a->server[i], why);
            }
        }
        free(c->servers);
        c->servers = list;
        c->nservers = a->nserver;
    }
    if (a->require_self)
        c->discovery.require_self = true;
    if (a->daemon)
        c->daemon = true;
    if (a->workers && (r = apply_cli_workers(c, a->workers, err, errlen)) < 0)
        return r;
    if (a->pidfile && (r = apply_cli_string(&c->pidfile, "--pidfile", a->pidfile, "a file path",
                                            err, errlen)) < 0)
        return r;
    if (a->user && (r = apply_cli_string(&c->user, "--user", a->user,
                                         "a user name or a numeric uid", err, errlen)) < 0)
        return r;
    if (a->group && (r = apply_cli_string(&c->group, "--group", a->group,
                                          "a group name or a numeric gid", err, errlen)) < 0)
        return r;
    if (a->root) {
        if (!*a->root)
            return fail(err, errlen, "--root: expected a directory path");
        if (set_string(&c->root, a->root) < 0)
            return oom_cli(err, errlen);
    }
    if (a->level) {
        int level = parse_level(a->level);
        if (level < 0)
            return fail(err, errlen, "--log-level: " LEVEL_HINT " (got \"%s\")", a->level);
        c->log.level = level;
    }
    if (a->access) {
        if (!*a->access)
            return fail(err, errlen, "--access-log: expected \"-\", \"off\" or a file path");
        if (set_string(&c->log.access, a->access) < 0)
            return oom_cli(err, errlen);
    }
    if (a->error && (r = apply_cli_string(&c->log.error, "--error-log", a->error,
                                          "\"-\" or a file path", err, errlen)) < 0)
        return r;
    /* Only now: --listen may have replaced the address whose port they take. */
    cio_config_resolve_bare_servers(c);
    origin o = {
        .file = a->config,
        .listen = a->nlisten > 0,
        .root = a->root != NULL,
        .level = a->level != NULL,
        .access = a->access != NULL,
        .servers = a->nserver > 0,
        .admin_listen = a->nadmin_listen > 0,
        .error = a->error != NULL,
        .workers = a->workers != NULL,
        .pidfile = a->pidfile != NULL,
        .user = a->user != NULL,
        .group = a->group != NULL,
    };
    return validate(c, &o, err, errlen);
}

int cio_config_from_args(cio_config *c, int argc, char **argv, cio_config_action *action, char *err,
                         size_t errlen)
{
    cio_config_defaults(c);
    if (action)
        *action = CIO_CONFIG_RUN;
    if (err && errlen)
        err[0] = '\0';

    cli a;
    memset(&a, 0, sizeof(a));
    int r = parse_cli(&a, argc, argv, err, errlen);
    if (r < 0)
        return r;
    /* --help and --version answer without looking at the configuration. */
    if (a.help || a.version) {
        if (action)
            *action = a.help ? CIO_CONFIG_HELP : CIO_CONFIG_VERSION;
        return 0;
    }
    if ((r = apply_cli(c, &a, err, errlen)) < 0)
        return r;
    if (action && a.check)
        *action = CIO_CONFIG_CHECK;
    return 0;
}

/* ---- reload (SIGHUP) ---- */

/* A list's length as far as the array holds it (a caller may have set it too
 * big; validation says so, the diff only must not read past the array). */
static size_t clamp(size_t n, size_t max)
{
    return n < max ? n : max;
}

static bool same_string(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Two listen entries are one socket: family, address, port and
 * proxy_protocol, not the text ("*:80" and "0.0.0.0:80" are one). */
static bool same_listen_list(const cio_listen *a, size_t na, const cio_listen *b, size_t nb)
{
    na = clamp(na, CIO_CONFIG_MAX_LISTEN);
    nb = clamp(nb, CIO_CONFIG_MAX_LISTEN);
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!listen_same_address(&a[i], &b[i]) || listen_port(&a[i]) != listen_port(&b[i]) ||
            a[i].proxy_protocol != b[i].proxy_protocol)
            return false;
    return true;
}

static bool same_listen(const cio_config *a, const cio_config *b)
{
    return same_listen_list(a->listen, a->nlisten, b->listen, b->nlisten);
}

static bool same_admin_listen(const cio_config *a, const cio_config *b)
{
    return same_listen_list(a->admin_listen, a->nadmin_listen, b->admin_listen, b->nadmin_listen);
}

static bool same_origins(const cio_config *a, const cio_config *b)
{
    if (norigins(a) != norigins(b))
        return false;
    for (size_t i = 0; i < norigins(a); i++)
        if (!same_string(a->websocket.origins[i], b->websocket.origins[i]))
            return false;
    return true;
}

static bool same_servers(const cio_config *a, const cio_config *b)
{
    size_t n = a->servers ? clamp(a->nservers, CIO_CONFIG_MAX_SERVERS) : 0;
    if (n != (b->servers ? clamp(b->nservers, CIO_CONFIG_MAX_SERVERS) : 0))
        return false;
    for (size_t i = 0; i < n; i++) {
        const cio_server_entry *x = &a->servers[i], *y = &b->servers[i];
        if (strncmp(x->text, y->text, sizeof(x->text)) != 0 ||
            strncmp(x->host, y->host, sizeof(x->host)) != 0 || x->port != y->port ||
            x->bare != y->bare)
            return false;
    }
    return true;
}

typedef enum diff_kind { D_U64, D_UNSIGNED, D_INT, D_BOOL, D_STRING, D_CUSTOM } diff_kind;

/* Every leaf key, in the order of the defaults in cio_config.h. */
static const struct diff_key {
    const char *key;
    diff_kind kind;
    size_t off; /* of the field, unless D_CUSTOM */
    bool (*same)(const cio_config *, const cio_config *); /* D_CUSTOM */
    bool restart;
} diff_keys[] = {
#define F(key, kind, field, restart) {key, kind, offsetof(cio_config, field), NULL, restart}
#define L(key, same, restart)        {key, D_CUSTOM, 0, same, restart}
    L("listen", same_listen, true),
    L("admin_listen", same_admin_listen, true),
    F("root", D_STRING, root, false),
    F("serve_dotfiles", D_BOOL, serve_dotfiles, false),
    F("pool_threads", D_UNSIGNED, pool_threads, true),
    F("pool_queue", D_UNSIGNED, pool_queue, true),
    F("pool_priority", D_INT, pool_priority, true),
    F("workers", D_UNSIGNED, workers, true),
    F("daemon", D_BOOL, daemon, true),
    F("pidfile", D_STRING, pidfile, true),
    F("user", D_STRING, user, true),
    F("group", D_STRING, group, true),
    F("limits.max_connections", D_U64, limits.max_connections, false),
    F("limits.max_header_bytes", D_U64, limits.max_header_bytes, false),
    F("limits.max_uri_bytes", D_U64, limits.max_uri_bytes, false),
    F("limits.max_body_bytes", D_U64, limits.max_body_bytes, false),
    F("limits.max_requests_per_connection", D_U64, limits.max_requests_per_connection, false),
    F("limits.max_connections_per_ip", D_U64, limits.max_connections_per_ip, false),
    F("limits.max_buffered_bytes", D_U64, limits.max_buffered_bytes, false),
    F("timeouts.header_ms", D_U64, timeouts.header_ms, false),
    F("timeouts.body_ms", D_U64, timeouts.body_ms, false),
    F("timeouts.keepalive_ms", D_U64, timeouts.keepalive_ms, false),
    F("timeouts.write_ms", D_U64, timeouts.write_ms, false),
    F("timeouts.handler_ms", D_U64, timeouts.handler_ms, false),
    F("timeouts.pool_wait_ms", D_U64, timeouts.pool_wait_ms, false),
    F("timeouts.drain_ms", D_U64, timeouts.drain_ms, false),
    F("log.level", D_INT, log.level, false),
    F("log.access", D_STRING, log.access, false),
    F("log.format", D_INT, log.format, false),
    F("log.error", D_STRING, log.error, true), /* reopened on SIGHUP, never moved */
    F("websocket.max_message_bytes", D_U64, websocket.max_message_bytes, false),
    F("websocket.ping_interval_ms", D_U64, websocket.ping_interval_ms, false),
    F("websocket.idle_timeout_ms", D_U64, websocket.idle_timeout_ms, false),
    F("websocket.send_queue_bytes", D_U64, websocket.send_queue_bytes, false),
    L("websocket.origins", same_origins, false),
    F("websocket.compression", D_BOOL, websocket.compression, false),
    F("websocket.compression_window_bits", D_U64, websocket.compression_window_bits, false),
    L("servers", same_servers, true),
    F("discovery.interval_ms", D_U64, discovery.interval_ms, true),
    F("discovery.window_ms", D_U64, discovery.window_ms, true),
    F("discovery.request_timeout_ms", D_U64, discovery.request_timeout_ms, true),
    F("discovery.require_self", D_BOOL, discovery.require_self, true),
    F("health.stall_ms", D_U64, health.stall_ms, false),
    F("debug.slow_ms", D_U64, debug.slow_ms, false),
#undef F
#undef L
};

static bool same_key(const struct diff_key *k, const cio_config *a, const cio_config *b)
{
    const void *x = (const char *)a + k->off, *y = (const char *)b + k->off;
    switch (k->kind) {
    case D_U64:
        return *(const uint64_t *)x == *(const uint64_t *)y;
    case D_UNSIGNED:
        return *(const unsigned *)x == *(const unsigned *)y;
    case D_INT:
        return *(const int *)x == *(const int *)y;
    case D_BOOL:
        return *(const bool *)x == *(const bool *)y;
    case D_STRING:
        return same_string(*(char *const *)x, *(char *const *)y);
    case D_CUSTOM:
        break;
    }
    return k->same(a, b);
}

size_t cio_config_diff(const cio_config *a, const cio_config *b, cio_config_change *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof(diff_keys) / sizeof(diff_keys[0]); i++) {
        if (same_key(&diff_keys[i], a, b))
            continue;
        if (out && n < max)
            out[n] = (cio_config_change){diff_keys[i].key, diff_keys[i].restart};
        n++;
    }
    return n;
}

/* ---- usage ---- */

void cio_config_usage(FILE *out, const char *argv0)
{
    const char *prog = argv0 && *argv0 ? argv0 : "corio";
    const char *slash = strrchr(prog, '/');
    if (slash && slash[1])
        prog = slash + 1;
    fprintf(out,
            "Usage: %s [OPTION]...\n"
            "Serve HTTP with io_uring.\n"
            "\n"
            "Options (flags override the configuration file, whatever their order):\n"
            "  -c, --config FILE        read settings from the JSON file FILE\n"
            "  -l, --listen ADDR:PORT   listen on ADDR:PORT; repeat for up to %d addresses\n"
            "                           (replaces the file's list); ADDR is an IPv4 address,\n"
            "                           [IPv6], * (all IPv4) or localhost; PORT 0 = any free\n"
            "      --admin-listen ADDR:PORT\n"
            "                           serve /metrics, /cluster and /status on ADDR:PORT\n"
            "                           instead; repeat for up to %d (replaces the file's\n"
            "                           list); none may overlap a listen address\n"
            "  -r, --root DIR           serve files from the directory DIR\n"
            "      --log-level LEVEL    error, warn, info or debug\n"
            "      --access-log FILE    append the access log to FILE; - = stderr, off = none\n"
            "      --error-log FILE     append the error/info log to FILE; - = stderr\n"
            "      --workers N          0..%d serving workers, 0 = one per CPU\n"
            "      --daemon             detach into the background\n"
            "      --pidfile FILE       write the daemon's pid to FILE\n"
            "      --user NAME          after binding, switch to the user NAME (or a uid)\n"
            "      --group NAME         after binding, switch to the group NAME (or a gid)\n"
            "      --server HOST[:PORT] a cluster member; repeat for up to %d (replaces the\n"
            "                           file's list); HOST is a DNS name, an IPv4 address or\n"
            "                           [IPv6]; without PORT, the first listen address's port\n"
            "      --require-self       exit non-zero when discovery's window ends without\n"
            "                           having found this server among the servers\n"
            "  -t, --check-config       validate the configuration and exit\n"
            "  -V, --version            print the version and exit\n"
            "  -h, --help               print this help and exit\n"
            "\n"
            "Probe (a health check of a running server; nothing else goes with it):\n"
            "      --probe URL          GET URL (http://HOST[:PORT][/PATH]; HOST a name, an\n"
            "                           IPv4 address or [IPv6]) and exit 0 on a 2xx answer,\n"
            "                           1 otherwise, saying why in one line on stderr, 2 for\n"
            "                           a malformed URL; starts no server, reads no file\n"
            "      --probe-timeout MS   the probe's deadline, 1..3600000 (default 2000)\n"
            "\n"
            "Configuration file (JSON; every key is optional, unknown keys are errors):\n"
            "  {\n"
            "    \"listen\": [\"0.0.0.0:8080\"],          1..%d addresses, each a string or\n"
            "                                         {\"address\": \"ADDR:PORT\",\n"
            "                                          \"proxy_protocol\": true} (a PROXY\n"
            "                                         protocol header starts each connection)\n"
            "    \"admin_listen\": [],                  0..%d addresses (same forms) for\n"
            "                                         /metrics, /cluster and /status; [] =\n"
            "                                         on the listen addresses; none may\n"
            "                                         overlap a listen address\n"
            "    \"root\": null,                        document root directory, or null\n"
            "    \"serve_dotfiles\": false,             true or false: serve static paths with a\n"
            "                                         segment starting with \".\"; false: 404\n"
            "                                         (a leading /.well-known/ does not count)\n"
            "    \"pool_threads\": 0,                   0..%d thread pool size, 0 = one per CPU\n"
            "    \"pool_queue\": 1024,                  1..%d queued (not yet running) pool jobs\n"
            "    \"pool_priority\": \"low\",             workers vs the loop: low (nice 19),\n"
            "                                         idle (SCHED_IDLE) or normal\n"
            "    \"workers\": 1,                        0..%d serving workers, 0 = one per CPU\n"
            "    \"daemon\": false,                     true or false: detach into the background\n"
            "    \"pidfile\": null,                     file for the daemon's pid, or null\n"
            "    \"user\": null,                        after binding, switch to this user (a\n"
            "                                         name or a numeric uid), or null\n"
            "    \"group\": null,                       after binding, switch to this group (a\n"
            "                                         name or a numeric gid), or null: the\n"
            "                                         user's own\n"
            "    \"limits\": {\n"
            "      \"max_connections\": 100000,         1..1000000; past it, accepting pauses\n"
            "      \"max_header_bytes\": 8192,          1024..1048576; request head, else 431\n"
            "      \"max_uri_bytes\": 8192,             16..max_header_bytes; else 414\n"
            "      \"max_body_bytes\": 1048576,         1..1073741824 (1 GiB, held in memory); "
            "else 413\n"
            "      \"max_requests_per_connection\": 0,  0 = unlimited\n"
            "      \"max_connections_per_ip\": 0,       0..1000000 open connections from one client\n"
            "                                         address (IPv6: /128); more are reset at\n"
            "                                         accept; 0 = no limit\n"
            "      \"max_buffered_bytes\": 0            bytes held for all clients together; when\n"
            "                                         full, large bodies get 503 and uploads\n"
            "                                         pause; 0 = 256 MiB or 1/4 of the cgroup\n"
            "                                         memory limit, whichever is lower\n"
            "    },\n"
            "    \"timeouts\": {                        milliseconds, at most 86400000 (1 day)\n"
            "      \"header_ms\": 10000,                to receive a request head, else 408\n"
            "      \"body_ms\": 30000,                  between body bytes, else 408\n"
            "      \"keepalive_ms\": 75000,             idle between requests; 0 = no keep-alive\n"
            "      \"write_ms\": 30000,                 without send progress, then close\n"
            "      \"handler_ms\": 60000,               a handler, from the request head to the\n"
            "                                         response; 0 = no deadline\n"
            "      \"pool_wait_ms\": 1000,              for room in the full pool queue, then 503\n"
            "                                         with Retry-After; 0 = 503 at once\n"
            "      \"drain_ms\": 10000                  graceful shutdown grace period\n"
            "    },\n"
            "    \"log\": {\n"
            "      \"level\": \"info\",                   error, warn, info or debug\n"
            "      \"access\": \"-\",                     - = stderr, off, or a file path\n"
            "      \"format\": \"combined\",              the access log's: combined or json\n"
            "      \"error\": \"-\"                       the error/info log: - = stderr, or a\n"
            "                                         file path\n"
            "    },\n"
            "    \"websocket\": {\n"
            "      \"max_message_bytes\": 1048576,      1..1073741824 (1 GiB); a message from\n"
            "                                         a client (decompressed); else 1009\n"
            "      \"ping_interval_ms\": 30000,         0..86400000; ping a connection idle\n"
            "                                         this long; 0 = never\n"
            "      \"idle_timeout_ms\": 120000,         0..86400000; close a connection silent\n"
            "                                         (no message, no pong) this long; 0 =\n"
            "                                         never; more than ping_interval_ms\n"
            "                                         unless either is 0\n"
            "      \"send_queue_bytes\": 2097152,       max_message_bytes + 14..2147483648\n"
            "                                         (2 GiB): a connection's send queue; a\n"
            "                                         subscriber over it is closed (1008)\n"
            "      \"origins\": [],                     allowed Origin values, at most 64:\n"
            "                                         \"null\" or scheme://host[:port], scheme\n"
            "                                         http or https, no path; [] = any\n"
            "      \"compression\": true,               true or false: permessage-deflate\n"
            "                                         when the client offers it\n"
            "      \"compression_window_bits\": 12      9..15: both sides' window (zlib holds\n"
            "                                         ~40 KB per connection in use at 12,\n"
            "                                         ~180 KB at 15)\n"
            "    },\n"
            "    \"servers\": [],                       the cluster's members (the same list on\n"
            "                                         every member), at most %d: \"host:port\",\n"
            "                                         \"[IPv6]:port\" or a bare \"host\" (the\n"
            "                                         port of listen[0]); [] = standalone\n"
            "    \"discovery\": {                       finding this server in \"servers\"\n"
            "      \"interval_ms\": 1000,               10..3600000: between rounds of queries\n"
            "      \"window_ms\": 60000,                0..86400000: how long to search; 0 =\n"
            "                                         search forever\n"
            "      \"request_timeout_ms\": 1000,        1..60000: one GET /server_id\n"
            "      \"require_self\": false              true or false: exit non-zero when the\n"
            "                                         window ends without finding this server\n"
            "    },\n"
            "    \"health\": {\n"
            "      \"stall_ms\": 5000                   100..3600000: /healthz answers 503 when\n"
            "                                         the loop has not completed a turn for\n"
            "                                         this long\n"
            "    },\n"
            "    \"debug\": {\n"
            "      \"slow_ms\": 100                     0..60000: log a coroutine that runs this\n"
            "                                         long without awaiting; 0 = off\n"
            "    }\n"
            "  }\n",
            prog, CIO_CONFIG_MAX_LISTEN, CIO_CONFIG_MAX_LISTEN, MAX_WORKERS, CIO_CONFIG_MAX_SERVERS,
            CIO_CONFIG_MAX_LISTEN, CIO_CONFIG_MAX_LISTEN, MAX_THREADS, MAX_QUEUE, MAX_WORKERS,
            CIO_CONFIG_MAX_SERVERS);
}
