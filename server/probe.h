/* probe.h - corio --probe URL: a health check by the binary itself (probe.c). */
#ifndef CORIO_PROBE_H
#define CORIO_PROBE_H

#define CORIO_PROBE_TIMEOUT_MS 2000 /* --probe-timeout's default */

/* When the command line asks for the probe (an argument --probe[=URL] or
 * --probe-timeout[=MS]), runs it and returns the process's exit status:
 * 0 when the server answered GET URL with a 2xx status within the
 * timeout; 1 otherwise, with one line on stderr that says what it got
 * (the status line, or the error: refused, timed out, closed, not HTTP);
 * 2 for a command line it cannot use (a malformed or non-http URL, a bad
 * timeout, any other flag), with one line on stderr. Blocking sockets,
 * no ring, no configuration file: it works where io_uring is refused.
 * Returns -1 when the command line is not the probe's. */
int corio_probe_main(int argc, char **argv);

#endif
