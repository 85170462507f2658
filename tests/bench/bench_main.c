/*
 * corio-bench - corio's benchmark program (built by default, never run as a
 * test: speed and memory targets live here, not in timed unit tests).
 *
 *   corio-bench core [--cpu N] [--scale K]   runtime figures, "name value unit"
 *   corio-bench ws-echo [options] HOST:PORT       WebSocket echo load (bench_ws.c)
 *   corio-bench ws-broadcast [options] HOST:PORT  WebSocket pub/sub load
 *   corio-bench ws-idle [options] HOST:PORT       idle WebSocket connections
 *
 * The load benchmarks against nginx and uWebSockets are scripts next to this
 * file; they run these subcommands.
 */
#include "bench.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>

void bench_pin_cpu(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0)
        perror("corio-bench: sched_setaffinity");
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "core") == 0)
        return bench_core(argc - 2, argv + 2);
    if (argc >= 2 && (strcmp(argv[1], "ws-echo") == 0 || strcmp(argv[1], "ws-broadcast") == 0 ||
                      strcmp(argv[1], "ws-idle") == 0))
        return bench_ws(argv[1], argc - 2, argv + 2);
    fprintf(stderr, "usage: corio-bench core [--cpu N] [--scale K]\n"
                    "       corio-bench ws-echo|ws-broadcast|ws-idle [options] HOST:PORT"
                    " (--help for the options)\n");
    return 2;
}
