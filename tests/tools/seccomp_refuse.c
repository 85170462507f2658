/*
 * seccomp_refuse.c - runs a command with io_uring refused the way a
 * container's seccomp profile refuses it (Docker 25 and later: their
 * default profile answers io_uring_setup, io_uring_enter and
 * io_uring_register with EPERM), for the test of corio's message when that
 * happens (integration/test_uring_refused.py), without Docker.
 *
 *   seccomp-refuse [--errno EPERM|ENOSYS] COMMAND [ARG]...
 *
 * Installs a seccomp filter (PR_SET_NO_NEW_PRIVS first, so no privilege is
 * needed) that fails the three io_uring system calls with the errno
 * (EPERM by default) and allows every other one, then execs COMMAND. The
 * filter stays with COMMAND and every thread and child it makes.
 * Exit status 125 when the filter cannot be installed, 127 when COMMAND
 * cannot be run.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#endif

#ifndef __NR_io_uring_setup /* one number on every architecture since Linux 5.1 */
#define __NR_io_uring_setup 425
#endif
#ifndef __NR_io_uring_register
#define __NR_io_uring_register 427
#endif

int main(int argc, char **argv)
{
    int err = EPERM, i = 1;
    if (i + 1 < argc && strcmp(argv[i], "--errno") == 0) {
        if (strcmp(argv[i + 1], "EPERM") == 0)
            err = EPERM;
        else if (strcmp(argv[i + 1], "ENOSYS") == 0)
            err = ENOSYS;
        else
            i = argc; /* usage */
        i += 2;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: seccomp-refuse [--errno EPERM|ENOSYS] COMMAND [ARG]...\n");
        return 125;
    }
    struct sock_filter filter[] = {
#ifdef NATIVE_ARCH
        /* Another ABI's numbers mean other calls: allowed, untouched. */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
#endif
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, __NR_io_uring_setup, 0, 2),
        BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, __NR_io_uring_register, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(filter) / sizeof(filter[0]), .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
        perror("seccomp-refuse: installing the filter");
        return 125;
    }
    execvp(argv[i], argv + i);
    fprintf(stderr, "seccomp-refuse: %s: %s\n", argv[i], strerror(errno));
    return 127;
}
