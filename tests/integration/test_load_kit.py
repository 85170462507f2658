"""The load kit (deploy/load.sh) against a real corio, as a smoke test:
one second per scenario, 4 connections, one wrk thread. The summary table
must list the five scenarios, each with some throughput (> 0: nothing here
depends on the machine's speed) and no error; a prefix whose routes do not
exist must show errors and fail; a port nobody listens on must be refused
with a message. Needs wrk (deploy/deps.sh installs it with the test
dependencies; skipped when it is missing) and corio-bench (CORIO_BENCH, set
by ctest to the tree's build)."""

import os
import re
import shutil
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401

LOAD_SH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy",
                       "load.sh")
SCENARIOS = ["plaintext", "json", "pipelined", "echo", "ws"]
ROW_RE = re.compile(r"^(\w+)\s+(\d+)\s+([\d,]+) (req/s|msg/s)\s+(\S+ ms|n/a)\s+(\S+ ms|n/a)"
                    r"\s+(\d+)$")
TIMEOUT = 120  # five one-second runs take ~6 s


def load(*args):
    """Runs deploy/load.sh; returns (exit status, stdout, stderr)."""
    p = subprocess.run(["bash", LOAD_SH] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=TIMEOUT)
    return p.returncode, p.stdout, p.stderr


def rows(stdout):
    """The summary table: scenario -> (conns, rate, unit, p50, p99, errors)."""
    out = {}
    for line in stdout.splitlines():
        m = ROW_RE.match(line)
        if m:
            out[m.group(1)] = (int(m.group(2)), int(m.group(3).replace(",", "")), m.group(4),
                               m.group(5), m.group(6), int(m.group(7)))
    return out


class LoadKit(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # the access log off, as the kit asks: else the harness would keep
        # every line of the load in memory
        cls.server = H.CorioServer(args=["--access-log", "off"]).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def test_every_scenario_without_errors(self):
        rc, out, err = load("-d", "1", "-c", "4", "-t", "1", self.server.base_url)
        detail = "stdout:\n%s\nstderr:\n%s" % (out, err)
        self.assertEqual(rc, 0, detail)
        table = rows(out)
        self.assertEqual(sorted(table), sorted(SCENARIOS), detail)
        for sc in SCENARIOS:
            conns, rate, unit, p50, _p99, errors = table[sc]
            self.assertEqual(conns, 4, sc)
            self.assertGreater(rate, 0, "%s: no throughput\n%s" % (sc, detail))
            self.assertEqual(unit, "msg/s" if sc == "ws" else "req/s", sc)
            if sc != "pipelined":  # wrk's percentiles of batches can come out as 0
                self.assertNotEqual(p50, "n/a", sc)
            self.assertEqual(errors, 0, "%s: errors\n%s" % (sc, detail))
        # the exact command lines, after the table
        for sc, what in (("plaintext", "/plaintext"), ("json", "/json"),
                         ("pipelined", "pipeline.lua"), ("echo", "post_echo.lua"),
                         ("ws", "ws-echo")):
            self.assertRegex(out, r"(?m)^  %s: .*%s" % (sc, re.escape(what)), detail)
        self.assertTrue(self.server.running(), self.server.stderr_text())

    def test_errors_are_counted(self):
        # no such routes: every answer is a 404, the WebSocket handshake fails
        rc, out, err = load("-d", "1", "-c", "2", "-t", "1", "-s", "plaintext,ws",
                            self.server.base_url + "/nope")
        detail = "stdout:\n%s\nstderr:\n%s" % (out, err)
        self.assertEqual(rc, 1, detail)
        table = rows(out)
        self.assertIn("plaintext", table, detail)
        self.assertGreater(table["plaintext"][5], 0, detail)
        self.assertRegex(out, r"(?m)^ws\s+2\s+-.*failed$", detail)
        self.assertIn("404", err)

    def test_nothing_listening(self):
        s = socket.socket()
        s.bind((H.HOST, 0))  # a port that is bound, never listened on
        try:
            port = s.getsockname()[1]
            rc, out, err = load("-d", "1", "http://%s:%d" % (H.HOST, port))
        finally:
            s.close()
        self.assertEqual(rc, 2, out + err)
        self.assertIn("nothing accepts connections", err)
        self.assertEqual(out, "")


if __name__ == "__main__":
    if shutil.which("wrk") is None:
        print("SKIP: wrk is not installed (apt-get install wrk; deploy/deps.sh installs it"
              " with the test dependencies)", file=sys.stderr)
        sys.exit(H.SKIP_EXIT)
    H.main()
