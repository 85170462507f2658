/* bench.h - shared by the corio-bench subcommands. */
#ifndef CORIO_BENCH_H
#define CORIO_BENCH_H

/* Pins the calling thread (and the threads it creates later) to one CPU;
 * cpu < 0 leaves the affinity alone. */
void bench_pin_cpu(int cpu);

int bench_core(int argc, char **argv);
/* mode: "ws-echo", "ws-broadcast" or "ws-idle" (bench_ws.c). */
int bench_ws(const char *mode, int argc, char **argv);

#endif
