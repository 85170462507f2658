/*
 * peer.c - the peer-ID protocol's id (see cio_peer.h).
 */
#include "cio_peer.h"

#include <errno.h>
#include <stdint.h>
#include <sys/random.h>

int cio_peer_id_generate(cio_peer_id *out)
{
    static const char digits[] = "0123456789abcdef";
    uint8_t raw[16];
    size_t got = 0;
    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        out->hex[2 * i] = digits[raw[i] >> 4];
        out->hex[2 * i + 1] = digits[raw[i] & 15];
    }
    out->hex[32] = 0;
    return 0;
}
