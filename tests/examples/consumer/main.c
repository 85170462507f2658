/*
 * main.c - a program of its own using libcorio as an installed library:
 * an HTTP server with one route, GET /hello answering "hello\n", on
 * 127.0.0.1 and a port the kernel picks, which it prints on a line of its
 * own. It serves until SIGTERM or SIGINT, read through the loop from a
 * signalfd (as the corio daemon reads its signals), then shuts the server
 * down, letting requests in flight finish, and exits 0.
 *
 * Built out of tree against an installed corio, with pkg-config:
 *   cc -o hello main.c $(pkg-config --cflags --libs corio)
 *   cc -static -o hello main.c $(pkg-config --static --cflags --libs corio)
 * or with CMake (CMakeLists.txt here: find_package(corio), corio::corio).
 * tests/install/consumer.sh builds it every way and runs it.
 */
#include <cio_http.h> /* everything of corio's: the runtime (cio.h) and HTTP */

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

static int hello(cio_http_req *req, void *ud)
{
    (void)ud;
    return cio_http_respond(req, 200, "text/plain", "hello\n", 6);
}

/* The main task: serves until a signal arrives on *arg (the signalfd). */
static intptr_t serve(void *arg)
{
    int sigfd = *(int *)arg;
    cio_http_server *srv;
    int rc = cio_http_server_create(NULL, NULL, &srv);
    if (rc < 0)
        return rc;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0,
                             .sin_addr = {.s_addr = htonl(INADDR_LOOPBACK)}};
    char bound[64]; /* "127.0.0.1:port" */
    rc = cio_http_route(srv, "GET", "/hello", hello, NULL);
    if (rc == 0)
        rc = cio_http_listen(srv, (struct sockaddr *)&sa, sizeof(sa), false, bound);
    if (rc == 0) {
        printf("%s\n", strrchr(bound, ':') + 1);
        fflush(stdout);
        /* Awaits: the loop serves every connection meanwhile. */
        struct signalfd_siginfo si;
        ssize_t n = cio_read(sigfd, &si, sizeof(si), -1, CIO_NEVER);
        if (n != (ssize_t)sizeof(si))
            rc = n < 0 ? (int)n : -EIO;
    }
    /* Stops accepting, lets requests in flight finish within 5 s. */
    int shut = cio_http_server_shutdown(srv, cio_after(CIO_SEC(5)));
    if (shut == 0)
        cio_http_server_destroy(srv); /* else connections remain: leave it */
    return rc < 0 ? rc : shut;
}

int main(void)
{
    /* The signals go to a signalfd: blocked before any thread exists. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sigfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sigfd < 0) {
        perror("hello: signalfd");
        return 1;
    }
    cio_loop *loop;
    int rc = cio_loop_create(&loop, NULL);
    if (rc < 0) {
        fprintf(stderr, "hello: io_uring: %s\n", strerror(-rc));
        return 1;
    }
    intptr_t r = cio_run(loop, serve, &sigfd);
    cio_loop_destroy(loop);
    close(sigfd);
    if (r < 0) {
        fprintf(stderr, "hello: %s\n", strerror((int)-r));
        return 1;
    }
    return 0;
}
