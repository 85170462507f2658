"""io_uring refused: corio says so in one line that names the cause and the
fix, and exits 1, instead of a bare "Operation not permitted".

Without Docker: tests/tools/seccomp_refuse.c (CORIO_SECCOMP_REFUSE) runs
corio under a seccomp filter that fails io_uring_setup, io_uring_enter and
io_uring_register with EPERM, as Docker 25's default profile does (or with
ENOSYS, as some sandboxes do). The workers' loops: a preloaded shim
(tests/tools/uring_refuse_threads.c, CORIO_URING_REFUSE_THREADS) refuses
the rings of every thread but the first, which no seccomp filter can do.
The sysctl kernel.io_uring_disabled is not touched: it is the machine's,
and other tests may run meanwhile.

The probe and --check-config need no ring: they work under the filter.
"""

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401

DEADLINE = 60.0
SECCOMP = "a seccomp filter blocks it (Docker 25 and later block io_uring in their default " \
          "profile): run the container with --security-opt " \
          "seccomp=deploy/seccomp-io_uring.json (a profile that allows io_uring_setup, " \
          "io_uring_enter and io_uring_register); under systemd, allow them in " \
          "SystemCallFilter="


def tool(var):
    path = os.environ.get(var, "")
    if not (path and os.path.isfile(path)):
        raise unittest.SkipTest("%s is not set (ctest sets it to the built test tool)" % var)
    return os.path.abspath(path)


def io_uring_disabled():
    try:
        with open("/proc/sys/kernel/io_uring_disabled") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


def run(cmd, env=None):
    """(exit status, stderr lines)."""
    e = dict(os.environ)
    e.pop("NOTIFY_SOCKET", None)
    e.update(env or {})
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=DEADLINE,
                           env=e, cwd="/")
    except subprocess.TimeoutExpired as ex:
        raise AssertionError("%s did not exit within %.0f s (stderr: %r)"
                             % (cmd, DEADLINE, ex.stderr)) from None
    return p.returncode, p.stderr.decode("utf-8", "replace").splitlines()


class TestSeccompRefusal(unittest.TestCase):
    def setUp(self):
        self.refuse = tool("CORIO_SECCOMP_REFUSE")
        if io_uring_disabled():
            self.skipTest("sysctl kernel.io_uring_disabled is set: corio names that instead")
        self.listen = H.Reserved()
        self.addCleanup(self.listen.close)

    def corio(self, *args, errno=None):
        cmd = [self.refuse] + (["--errno", errno] if errno else []) + [H.corio_bin()]
        return run(cmd + ["--listen", "127.0.0.1:%d" % self.listen.port,
                          "--access-log", "off"] + list(args))

    def test_eperm_names_seccomp_and_the_profile(self):
        rc, lines = self.corio()
        self.assertEqual(rc, 1, lines)
        self.assertEqual(lines, ["corio: io_uring is not available (io_uring_setup: Operation "
                                 "not permitted): " + SECCOMP])
        self.assertFalse(H.listening_on(self.listen.port))

    def test_enosys_too(self):
        rc, lines = self.corio(errno="ENOSYS")
        self.assertEqual(rc, 1, lines)
        self.assertEqual(lines, ["corio: io_uring is not available (io_uring_setup: Function "
                                 "not implemented): " + SECCOMP])

    def test_with_several_workers_the_first_loop_says_it_once(self):
        rc, lines = self.corio("--workers", "4")
        self.assertEqual(rc, 1, lines)
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("io_uring is not available", lines[0])

    def test_daemon_mode_reports_it_and_exits_1(self):
        """--daemon: the detached process fails; the command that started it
        returns its status, and the line reached the caller's stderr."""
        rc, lines = self.corio("--daemon")
        self.assertEqual(rc, 1, lines)
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith("corio: io_uring is not available"), lines)

    def test_check_config_needs_no_ring(self):
        rc, lines = self.corio("--check-config")
        self.assertEqual(rc, 0, lines)

    def test_the_probe_needs_no_ring(self):
        with H.CorioServer(args=["--access-log", "off"]) as s:
            rc, lines = run([self.refuse, H.corio_bin(), "--probe", s.url("/healthz")])
        self.assertEqual((rc, lines), (0, []))


class TestWorkerRefusal(unittest.TestCase):
    def test_each_worker_that_cannot_make_its_ring_says_why_and_corio_exits_1(self):
        shim = tool("CORIO_URING_REFUSE_THREADS")
        listen = H.Reserved()
        self.addCleanup(listen.close)
        rc, lines = run([H.corio_bin(), "--listen", "127.0.0.1:%d" % listen.port,
                         "--access-log", "off", "--workers", "3"], env={"LD_PRELOAD": shim})
        self.assertEqual(rc, 1, lines)
        refused = [l for l in lines if "io_uring is not available" in l]
        self.assertEqual(sorted(l.split(":")[1] for l in refused), [" worker 1", " worker 2"],
                         lines)
        for line in refused:
            self.assertRegex(line, r"^corio: worker \d: io_uring is not available \(io_uring_setup:"
                             r" Operation not permitted\): .*allow io_uring_setup, io_uring_enter"
                             r" and io_uring_register")
        self.assertEqual([l for l in lines if "ready" in l], [], lines)
        self.assertFalse(H.listening_on(listen.port))


if __name__ == "__main__":
    H.main()
