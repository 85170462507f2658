/*
 * cgroup.c - what the process's cgroups allow it: the walk over the cgroup
 * directories that bound the process, and the CPU count (affinity lowered
 * to the CPU quota). Blocking file reads, for startup.
 */
#include "cio_internal.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Calls fn for cg (a cgroup path) under mount and each ancestor, up to and
 * including the mount's root. */
static void walk_path(const char *mount, const char *cg, bool v2,
                      void (*fn)(void *ud, const char *dir, bool v2), void *ud)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s", cg);
    for (;;) {
        char dir[4400];
        snprintf(dir, sizeof(dir), "%s%s", mount, strcmp(path, "/") ? path : "");
        fn(ud, dir, v2);
        char *slash = strrchr(path, '/');
        if (!slash || strcmp(path, "/") == 0)
            break;
        slash[slash == path] = 0; /* "/a/b" -> "/a", "/a" -> "/" */
    }
}

/* True if the comma-separated list names ctrl. */
static bool lists(const char *list, const char *ctrl)
{
    size_t n = strlen(ctrl);
    for (const char *p = list; *p; p += strcspn(p, ","), p += *p == ',') {
        if (strncmp(p, ctrl, n) == 0 && (p[n] == ',' || p[n] == 0))
            return true;
    }
    return false;
}

void cio_cgroup_walk(const char *v1_ctrl, void (*fn)(void *ud, const char *dir, bool v2), void *ud)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return;
    char line[4200];
    while (fgets(line, sizeof(line), f)) {
        /* "hierarchy-id:controllers:path"; v2's has no controllers. */
        line[strcspn(line, "\n")] = 0;
        char *ctrl = strchr(line, ':');
        char *path = ctrl ? strchr(ctrl + 1, ':') : NULL;
        if (!path)
            continue;
        *path++ = 0;
        ctrl++;
        if (*ctrl == 0) {
            walk_path("/sys/fs/cgroup", path, true, fn, ud);
        } else if (lists(ctrl, v1_ctrl)) {
            char mount[300]; /* named after its controllers: cpu,cpuacct */
            snprintf(mount, sizeof(mount), "/sys/fs/cgroup/%s", ctrl);
            walk_path(mount, path, false, fn, ud);
        }
    }
    fclose(f);
}

/* ---- the CPU count ------------------------------------------------------------------ */

/* The two numbers at the start of dir/file (v2's "max" reads as -1), and
 * how many were read. */
static int read_pair(const char *dir, const char *file, long long v[2])
{
    char name[4400];
    snprintf(name, sizeof(name), "%s/%s", dir, file);
    FILE *f = fopen(name, "re");
    if (!f)
        return 0;
    char a[32] = "", b[32] = "";
    int n = fscanf(f, "%31s %31s", a, b);
    fclose(f);
    for (int i = 0; i < n && i < 2; i++) {
        const char *t = i ? b : a;
        v[i] = strcmp(t, "max") == 0 ? -1 : strtoll(t, NULL, 10);
    }
    return n < 0 ? 0 : n;
}

/* CPUs a quota of quota per period buys, rounded up; 0: no limit. */
static unsigned quota_cpus(long long quota, long long period)
{
    if (quota <= 0 || period <= 0)
        return 0;
    long long n = (quota + period - 1) / period;
    return n > 65536 ? 65536 : (unsigned)n;
}

/* Lowers *(unsigned *)ud (0: no quota yet) to dir's CPU quota: v2 keeps
 * "quota period" in cpu.max ("max" for none), v1 the two in
 * cpu.cfs_quota_us (-1 for none) and cpu.cfs_period_us. */
static void note_quota(void *ud, const char *dir, bool v2)
{
    unsigned *lowest = ud;
    long long q[2] = {-1, -1}, period[2] = {-1, -1};
    unsigned n = 0;
    if (v2) {
        if (read_pair(dir, "cpu.max", q) == 2)
            n = quota_cpus(q[0], q[1]);
    } else if (read_pair(dir, "cpu.cfs_quota_us", q) >= 1 &&
               read_pair(dir, "cpu.cfs_period_us", period) >= 1) {
        n = quota_cpus(q[0], period[0]);
    }
    if (n && (!*lowest || n < *lowest))
        *lowest = n;
}

unsigned cio_cpu_count(void)
{
    unsigned n = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        n = (unsigned)CPU_COUNT(&set);
    if (n == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (unsigned)c : 1;
    }
    unsigned quota = 0;
    cio_cgroup_walk("cpu", note_quota, &quota);
    return quota && quota < n ? quota : n;
}
