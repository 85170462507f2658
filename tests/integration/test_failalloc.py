"""Allocation failure survived (issue 8): the daemon built with a test-only
allocator hook (corio-failalloc, tests/tools/failalloc.c) fails every Nth
allocation of its own code for a few seconds while HTTP and WebSocket
clients load it. It must not crash; afterwards every connection is served
again, and it shuts down cleanly (under ASan, LeakSanitizer then reports any
leak as an error: tests/run.sh runs this test in its ASan build too)."""

import os
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401

# Failures from FAIL_FROM_MS after the daemon's exec (well after its start,
# even under ASan on a loaded machine) until FAIL_UNTIL_MS.
FAIL_FROM_MS = 2000
FAIL_UNTIL_MS = 5000


def http_client(host, port, stop, ok):
    body = os.urandom(20000)
    while not stop.is_set():
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                for _ in range(20):
                    s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n" * 4 +
                              b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n"
                              + body)
                    if not s.recv(65536):
                        break
                    ok[0] += 1
        except OSError:
            time.sleep(0.005)


def ws_client(host, port, path, stop, ok):
    while not stop.is_set():
        try:
            s = H.ws_connect((host, port), path, deflate=True)
            with s:
                for i in range(50):
                    s.sendall(H.ws_frame(0x1, b"message %d " % i * 20))
                    if not s.recv(65536):
                        break
                    ok[0] += 1
        except OSError:
            time.sleep(0.005)


class TestAllocationFailure(unittest.TestCase):
    def run_with_failures(self, every):
        bin_ = os.environ.get("CORIO_FAILALLOC_BIN")
        if not bin_ or not os.path.exists(bin_):
            raise unittest.SkipTest("corio-failalloc is not built (CORIO_FAILALLOC_BIN)")
        env = {"CORIO_FAIL_EVERY": str(every), "CORIO_FAIL_START_MS": str(FAIL_FROM_MS),
               "CORIO_FAIL_STOP_MS": str(FAIL_UNTIL_MS)}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            server = H.CorioServer(args=["--access-log", "off"],
                                   config={"websocket": {"ping_interval_ms": 0}})
            server.bin = bin_
            server.start()
            ready = time.monotonic()  # the process started before this
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        try:
            host, port = server.host, server.port
            stop = threading.Event()
            ok = [0]
            threads = [threading.Thread(target=http_client, args=(host, port, stop, ok))
                       for _ in range(3)]
            threads += [threading.Thread(target=ws_client, args=(host, port, p, stop, ok))
                        for p in (b"/ws/echo", b"/ws/chat?room=a", b"/ws/chat?room=a")]
            for t in threads:
                t.daemon = True
                t.start()
            # load through the whole failure window, and a little after
            time.sleep(max(0.0, ready + FAIL_UNTIL_MS / 1000 + 0.3 - time.monotonic()))
            stop.set()
            for t in threads:
                t.join(timeout=10)
            self.assertTrue(server.running(), "corio died:\n" + server.stderr_text())
            self.assertGreater(ok[0], 0, "no client got anything through")
            # the failures are over: everything is served again
            for _ in range(20):
                status, _, body = server.request("GET", "/plaintext")
                self.assertEqual((status, body), (200, b"Hello, World!"))
            big = os.urandom(300000)
            status, _, body = server.request("POST", "/echo", body=big)
            self.assertEqual((status, body), (200, big))
            s = H.ws_connect((host, port), b"/ws/echo")
            with s:
                s.sendall(H.ws_frame(0x2, b"after"))
                self.assertEqual(s.recv(4096), b"\x82\x05after")
            rc = server.stop(signal.SIGTERM, timeout=30)
            err = server.stderr_text()
            self.assertNotIn("LeakSanitizer", err)
            self.assertNotIn("AddressSanitizer", err)
            self.assertNotIn("runtime error", err)
            self.assertEqual(rc, 0, err)
            self.assertRegex(err, r"failalloc: [1-9]\d* of \d+ allocations failed")
        finally:
            server.close()

    def test_one_allocation_in_50_fails(self):
        self.run_with_failures(50)

    def test_one_allocation_in_7_fails(self):
        self.run_with_failures(7)


if __name__ == "__main__":
    H.main()
