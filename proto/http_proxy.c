/*
 * http_proxy.c - the PROXY protocol (HAProxy's, versions 1 and 2), with
 * which a load balancer in front tells who the client is: a header before
 * the first byte of HTTP. Only listeners configured for it accept it, and
 * there it is required: anyone who can reach such a listener directly could
 * otherwise claim any address.
 */
#include "http_internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#define V1_MAX 107 /* "PROXY TCP6 " + two addresses + two ports + CRLF, at most */
#define V2_MAX 536 /* 16 + the largest address block we accept with its TLVs */

static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* "PROXY TCP4 1.2.3.4 5.6.7.8 1000 80\r\n" */
static int parse_v1(const uint8_t *p, size_t n, uint8_t *family, uint8_t addr[16])
{
    const uint8_t *crlf = NULL;
    for (size_t i = 0; i + 1 < n && i < V1_MAX; i++)
        if (p[i] == '\r' && p[i + 1] == '\n') {
            crlf = p + i;
            break;
        }
    if (!crlf)
        return n >= V1_MAX ? -1 : 0;
    size_t len = (size_t)(crlf - p);
    char line[V1_MAX + 1];
    memcpy(line, p, len);
    line[len] = 0;
    int consumed = (int)len + 2;
    if (strcmp(line, "PROXY UNKNOWN") == 0 || strncmp(line, "PROXY UNKNOWN ", 14) == 0) {
        *family = 0; /* the connection's own address stands */
        return consumed;
    }
    char proto[8], src[64], dst[64];
    unsigned sport, dport;
    char end;
    if (sscanf(line, "PROXY %7s %63s %63s %u %u%c", proto, src, dst, &sport, &dport, &end) != 5 ||
        sport > 65535 || dport > 65535)
        return -1;
    if (strcmp(proto, "TCP4") == 0 && inet_pton(AF_INET, src, addr) == 1) {
        *family = AF_INET;
        return consumed;
    }
    if (strcmp(proto, "TCP6") == 0 && inet_pton(AF_INET6, src, addr) == 1) {
        *family = AF_INET6;
        return consumed;
    }
    return -1;
}

static int parse_v2(const uint8_t *p, size_t n, uint8_t *family, uint8_t addr[16])
{
    if (n < 16)
        return 0;
    size_t len = 16 + ((size_t)p[14] << 8 | p[15]);
    if ((p[12] >> 4) != 2 || len > V2_MAX)
        return -1;
    if (n < len)
        return 0;
    unsigned cmd = p[12] & 15, fam = p[13];
    if (cmd == 0) { /* LOCAL: the balancer's own health check */
        *family = 0;
        return (int)len;
    }
    if (cmd != 1)
        return -1;
    if (fam == 0x11 && len >= 16 + 12) { /* TCP over IPv4 */
        *family = AF_INET;
        memcpy(addr, p + 16, 4);
    } else if (fam == 0x21 && len >= 16 + 36) { /* TCP over IPv6 */
        *family = AF_INET6;
        memcpy(addr, p + 16, 16);
    } else if (fam == 0x00) {
        *family = 0; /* UNSPEC */
    } else {
        return -1; /* UDP, unix sockets: not for an HTTP listener */
    }
    return (int)len;
}

int http_proxy_parse(const uint8_t *p, size_t n, uint8_t *family, uint8_t addr[16])
{
    size_t k = n < sizeof(v2_sig) ? n : sizeof(v2_sig);
    if (memcmp(p, v2_sig, k) == 0)
        return k < sizeof(v2_sig) ? 0 : parse_v2(p, n, family, addr);
    static const char v1[] = "PROXY ";
    k = n < 6 ? n : 6;
    if (memcmp(p, v1, k) != 0)
        return -1;
    return k < 6 ? 0 : parse_v1(p, n, family, addr);
}
