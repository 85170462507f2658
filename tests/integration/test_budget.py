"""The memory budget (limits.max_buffered_bytes) on real sockets: a body that
does not fit is refused with 503 + Retry-After before it is read; a body of
unknown length is paused while the budget is full and resumes when memory is
freed; requests without a body are served meanwhile; the default follows
the cgroup's memory limit. The flood test (test_flood.py) puts it under
load."""

import os
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401

MIB = 1 << 20


def chunked(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


class TestBudget(unittest.TestCase):
    config = {"limits": {"max_buffered_bytes": MIB, "max_body_bytes": 4 * MIB},
              "timeouts": {"body_ms": 20000}}

    def setUp(self):
        self.server = H.CorioServer(config=self.config, args=["--access-log", "off"]).start()
        self.addCleanup(self.server.close)

    def conn(self):
        return H.RawConn(self.server.host, self.server.port, timeout=10)

    def test_a_body_that_does_not_fit_is_refused_before_it_is_read(self):
        with self.conn() as c:
            c.send(b"POST /hash?iterations=1 HTTP/1.1\r\nHost: b\r\nContent-Length: %d\r\n"
                   b"Expect: 100-continue\r\n\r\n" % (2 * MIB))
            r = c.read_response()
            self.assertEqual(r.status, 503)  # not 100 Continue: nothing was invited
            self.assertEqual(r.header("Retry-After"), "1")
            self.assertTrue(r.has_token("Connection", "close"))
        self.server.wait_for_log(r"memory budget full: 1 request refused \(503\)")
        st, _, body = self.server.request("GET", "/plaintext")
        self.assertEqual((st, body), (200, b"Hello, World!"))

    def test_a_body_that_fits_is_served(self):
        st, _, body = self.server.request("POST", "/hash?iterations=1", body=b"x" * (MIB // 2))
        self.assertEqual(st, 200)
        self.assertEqual(len(body), 64)

    def test_an_upload_of_unknown_length_pauses_until_memory_is_freed(self):
        a, b = self.conn(), self.conn()
        with a, b:
            # A: admitted with most of the budget reserved, its body withheld
            a.send(b"POST /hash?iterations=1 HTTP/1.1\r\nHost: b\r\nContent-Length: %d\r\n"
                   b"Expect: 100-continue\r\n\r\n" % (MIB * 3 // 4))
            # the invitation comes after the admission: A's reservation is made
            self.assertEqual(a.read_response().status, 100)
            a.send(b"a" * 1000)
            # B: chunked, more than what is left: it is paused, not refused
            b.send(b"POST /hash?iterations=1 HTTP/1.1\r\nHost: b\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n")
            for _ in range(24):
                b.send(chunked(b"b" * 16384))
            self.server.wait_for_log(r"1 connection paused", timeout=10)
            # a request without a body is served meanwhile
            st, _, body = self.server.request("GET", "/plaintext")
            self.assertEqual((st, body), (200, b"Hello, World!"))
            # A completes and gives its memory back: B resumes and completes
            a.send(b"a" * (MIB * 3 // 4 - 1000))
            self.assertEqual(a.read_response().status, 200)
            b.send(b"0\r\n\r\n")
            r = b.read_response(timeout=15)
            self.assertEqual(r.status, 200)
            self.assertEqual(len(r.body), 64)


    def test_a_websocket_message_being_assembled_counts(self):
        """A WebSocket client's partial message holds budget that HTTP bodies
        then cannot have; once the message is complete (and echoed) it is
        given back."""
        ws = H.ws_connect((self.server.host, self.server.port), b"/ws/echo", timeout=10)
        with ws:
            part = os.urandom(300 * 1024)  # held in a 512 KiB buffer
            ws.sendall(H.ws_frame(0x2, part, fin=False))
            big = b"x" * (MIB // 2)
            deadline = time.monotonic() + 10
            while True:  # until the server has read the fragment
                st, hdrs, _ = self.server.request("POST", "/hash?iterations=1", body=big)
                if st == 503 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            self.assertEqual(st, 503)
            ws.sendall(H.ws_frame(0x0, b"end"))  # the last fragment
            got = b""
            want = len(part) + 3
            while len(got) < want + 4:
                chunk = ws.recv(65536)
                if not chunk:
                    break
                got += chunk
            self.assertEqual(got[0], 0x82)  # the whole message, echoed
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            st, _, _ = self.server.request("POST", "/hash?iterations=1", body=big)
            if st == 200:
                break
            time.sleep(0.1)
        self.assertEqual(st, 200)


    def test_a_websocket_message_larger_than_the_budget_is_closed_1013(self):
        """Paused mid-message with nothing else to free memory, a connection
        would wait for its idle timeout: after 10 s it is closed with 1013
        (try again later), and the budget is free again."""
        ws = H.ws_connect((self.server.host, self.server.port), b"/ws/echo", timeout=30)
        with ws:
            try:
                ws.sendall(H.ws_frame(0x2, os.urandom(900 * 1024), fin=False))
            except OSError:
                pass
            got = b""
            while len(got) < 4:
                chunk = ws.recv(64)
                if not chunk:
                    break
                got += chunk
            self.assertEqual(got[:4], b"\x88\x02\x03\xf5")  # close, 1013
        # The budget is free again once the connection is gone (its close may
        # still be under way when the client has read the 1013).
        deadline = time.monotonic() + 10
        while True:
            st, _, _ = self.server.request("POST", "/hash?iterations=1", body=b"x" * (MIB // 2))
            if st == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(st, 200)


class TestBudgetFromCgroup(unittest.TestCase):
    """With limits.max_buffered_bytes 0 (the default) the budget is a quarter
    of the cgroup's memory limit when that is below 1 GiB: a daemon in a
    cgroup (v2, or the v1 memory controller) of 512 MiB buffers 128 MiB."""

    def make_cgroup(self):
        name = "corio-test-%s" % uuid.uuid4().hex[:8]
        with open("/proc/self/cgroup") as f:
            entries = [line.rstrip("\n").split(":", 2) for line in f]
        for _, ctrl, path in entries:
            if ctrl == "":
                base, limit_file = "/sys/fs/cgroup", "memory.max"
            elif ctrl == "memory":
                base, limit_file = "/sys/fs/cgroup/memory", "memory.limit_in_bytes"
            else:
                continue
            d = os.path.join(base + (path if path != "/" else ""), name)
            try:
                os.mkdir(d)
            except OSError:
                continue
            try:
                with open(os.path.join(d, limit_file), "w") as f:
                    f.write(str(512 * MIB))
                return d
            except OSError:
                os.rmdir(d)
        return None

    def test_the_default_is_a_quarter_of_the_cgroup_limit(self):
        cg = self.make_cgroup()
        if cg is None:
            self.skipTest("cannot create a memory cgroup here (not root, or no controller)")
        self.addCleanup(self.remove_cgroup, cg)
        server = H.CorioServer(args=["--access-log", "off"])
        bin_ = server.bin
        server.bin = "/bin/sh"
        cmd = server.command

        def in_cgroup():
            c = cmd()
            return ["/bin/sh", "-c", 'echo $$ > "%s/cgroup.procs" && exec "$@"' % cg, "sh",
                    bin_] + c[1:]
        server.command = in_cgroup
        with server:  # __enter__ starts it (start() here as well started two)
            server.wait_for_log(
                r"memory budget for buffered bytes: 128 MiB \(the cgroup may use 512 MiB\)")
            st, _, body = server.request("GET", "/plaintext")
            self.assertEqual((st, body), (200, b"Hello, World!"))

    @staticmethod
    def remove_cgroup(d):
        for _ in range(50):
            try:
                os.rmdir(d)
                return
            except OSError:
                time.sleep(0.1)  # the daemon's exit is still being accounted


if __name__ == "__main__":
    H.main()
