"""Reliability under abuse (issue 8): what happens to the daemon when things
go wrong around it."""

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


def hammer(host, port, stop, counts):
    """Keep-alive GETs on one connection until stop is set; reconnects after
    errors (the server will die under it)."""
    while not stop.is_set():
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                while not stop.is_set():
                    s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
                    if not s.recv(4096):
                        break
                    counts[0] += 1
        except OSError:
            time.sleep(0.01)


class TestRestartUnderLoad(unittest.TestCase):
    def test_kill_9_then_restart_on_the_same_port_serves_at_once(self):
        """A loaded daemon killed with SIGKILL leaves connections in TIME_WAIT
        and half-open states behind; one started right after on the same
        port must bind at once (SO_REUSEADDR) and serve."""
        first = H.CorioServer(args=["--access-log", "off"]).start()
        host, port = first.host, first.port
        stop = threading.Event()
        counts = [0]
        threads = [threading.Thread(target=hammer, args=(host, port, stop, counts), daemon=True)
                   for _ in range(8)]
        try:
            for t in threads:
                t.start()
            deadline = time.monotonic() + 10
            while counts[0] < 2000 and time.monotonic() < deadline:
                time.sleep(0.01)
            self.assertGreaterEqual(counts[0], 2000, "the load never got going")
            # idle keep-alive connections too, and one in the middle of a request
            idle = [first.connect() for _ in range(20)]
            for c in idle[:10]:
                c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
            idle[10].send(b"GET /plaintext HTTP/1.1\r\nHost:")
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(timeout=10)
            second = H.CorioServer(args=["--listen", "%s:%d" % (host, port), "--access-log", "off"],
                                   listen=False)
            try:
                second.start()  # raises with its log if the bind fails
                self.assertEqual(second.port, port)
                status, _, _ = second.request("GET", "/plaintext")
                self.assertEqual(status, 200)
                before = counts[0]
                deadline = time.monotonic() + 10
                while counts[0] < before + 500 and time.monotonic() < deadline:
                    time.sleep(0.01)
                self.assertGreaterEqual(counts[0], before + 500,
                                        "the load did not resume on the new daemon")
            finally:
                stop.set()
                for t in threads:
                    t.join(timeout=5)
                for c in idle:
                    c.close()
                second.close()
        finally:
            stop.set()
            first.close()

    def test_an_address_another_server_holds_still_fails(self):
        """The retry is bounded: a port another process listens on fails
        with the reason after the retry window, not never."""
        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        try:
            s = H.CorioServer(args=["--listen", "127.0.0.1:%d" % port], listen=False,
                              wait_ready=False).start()
            try:
                rc = s.wait(timeout=30)
                self.assertIsNotNone(rc, "still retrying after 30 s")
                self.assertNotEqual(rc, 0)
                s.wait_for_log("cannot listen on .*Address already in use", timeout=10)
                self.assertIn("is in use; trying again", s.stderr_text())
            finally:
                s.close()
        finally:
            holder.close()


if __name__ == "__main__":
    H.main()
