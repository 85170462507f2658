"""The flood test of issue 8: 15,000 clients each trickle a 1 MiB body to a
route that buffers bodies whole, for 15 s, against a daemon whose memory
budget (limits.max_buffered_bytes) is 64 MiB. The budget must hold: large
bodies that do not fit are refused with 503 + Retry-After before they are
read (counted, and logged once per interval), bodies of unknown length are
paused while it is full, admitted uploads complete, /plaintext keeps
answering, and the daemon's resident memory stays under the budget plus a
fixed overhead. Afterwards its descriptors and memory come back.

The /plaintext latency under the flood is a benchmark figure (printed here,
and by tests/bench/flood.sh), not asserted: only that every probe was
answered."""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401
import flood  # noqa: E402

BUDGET = 64 << 20
CLIENTS = 15000
SECONDS = 15.0
# What the daemon holds besides the budget: its idle footprint, connection
# states, stacks, the provided buffers, the allocator's slack, and what the
# kernel had already received for connections when they were paused (a
# window each). Without the budget the same flood buffers gigabytes.
OVERHEAD = BUDGET // 2 + (40 << 20)


class TestFlood(unittest.TestCase):
    def test_budget_holds_under_an_upload_flood(self):
        hard = flood.raise_fd_limit()
        if hard < CLIENTS + 1000:
            self.skipTest("needs %d open files, the limit is %d" % (CLIENTS + 1000, hard))
        config = {"limits": {"max_buffered_bytes": BUDGET},
                  "timeouts": {"body_ms": 10000}}
        with H.CorioServer(config=config, args=["--access-log", "off"]) as server:
            pid = server.proc.pid
            server.request("GET", "/plaintext")
            fds0, rss0 = H.open_fds(pid), H.rss_kib(pid)
            f = flood.Flood(server.host, server.port, pid, CLIENTS, SECONDS).run()
            report = f.report()
            print("\nflood:", report, file=sys.stderr)

            answers = f.counts
            self.assertGreater(answers.get("503", 0), 0, report)  # refused by the budget
            self.assertGreater(answers.get("200", 0), 0, report)  # admitted uploads finish
            self.assertEqual(f.probe_failures, [], report)
            self.assertGreater(len(f.probe_ms), 0, report)
            self.assertLess(f.rss_peak_kib * 1024, BUDGET + OVERHEAD, report)
            # The refusals are counted and logged (once per interval).
            lines = server.wait_for_log(r"memory budget full: \d+ requests? refused", timeout=15)
            refused = sum(int(re.search(r"full: (\d+) request", l).group(1)) for l in lines)
            self.assertGreater(refused, 0)

            # Afterwards: it answers, its descriptors and memory come back.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (
                    H.open_fds(pid) > fds0 + 2 or H.rss_kib(pid) > rss0 + 16 * 1024):
                time.sleep(0.5)
            st, _, body = server.request("GET", "/plaintext")
            self.assertEqual((st, body), (200, b"Hello, World!"))
            self.assertLessEqual(H.open_fds(pid), fds0 + 2)
            self.assertLessEqual(H.rss_kib(pid), rss0 + 16 * 1024,
                                 "RSS %d KiB, started at %d KiB" % (H.rss_kib(pid), rss0))


if __name__ == "__main__":
    H.main()
