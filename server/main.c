/*
 * corio - the daemon. At this stage it answers every request with a fixed
 * response; the HTTP issue replaces this with the real server.
 */
#include "cio.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char response[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 13\r\nConnection: close\r\n\r\ncorio is up.\n";

static intptr_t serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    cio_stream s;
    if (cio_stream_init(&s, fd, 8192, 0) == 0) {
        const uint8_t *head;
        if (cio_stream_read_until(&s, "\r\n\r\n", 4, 8192, &head, cio_after(CIO_SEC(10))) > 0)
            cio_stream_write_all(&s, response, sizeof(response) - 1, cio_after(CIO_SEC(10)));
        cio_stream_fini(&s);
    }
    cio_close(fd);
    return 0;
}

static intptr_t serve_forever(void *arg)
{
    int port = (int)(intptr_t)arg;
    int lfd = cio_socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 1024) < 0) {
        cio_error("cannot listen on port %d: %s", port, strerror(errno));
        return -1;
    }
    cio_info("corio %s listening on 0.0.0.0:%d", CIO_VERSION, port);
    for (;;) {
        int c = cio_accept(lfd, NULL, NULL, CIO_NEVER);
        if (c >= 0)
            cio_spawn(NULL, NULL, serve, (void *)(intptr_t)c);
    }
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 8080;
    cio_loop *loop;
    if (cio_loop_create(&loop, NULL) < 0)
        return 1;
    intptr_t r = cio_run(loop, serve_forever, (void *)(intptr_t)port);
    cio_loop_destroy(loop);
    return r < 0 ? 1 : 0;
}
