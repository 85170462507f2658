"""Limits, timeouts and malformed input: each bad request gets its specific
status and the connection is closed; other connections are unaffected and the
server never crashes."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401

PLAINTEXT = b"Hello, World!"

MAX_HEADER = 1024
MAX_URI = 256
MAX_BODY = 1024
HEADER_MS = 300
BODY_MS = 300
KEEPALIVE_MS = 1500
# How late a timeout may come on a loaded machine (the timers themselves are
# a few hundred ms): bounds are this generous, and kept meaningful by making
# the wrong behaviour take longer still.
SLACK = 4.0


class ServerPerClass(H.ServerTestCase):
    server_config = {}

    def assertRejected(self, payload, status, timeout=3.0):
        """Send payload on a fresh connection: expect `status`, then a close,
        and the server still serving others."""
        with self.server.connect(timeout=timeout) as c:
            try:
                c.send(payload)
            except OSError:
                pass  # the server may close before reading everything
            r = c.read_response(timeout=timeout)
            statuses = status if isinstance(status, tuple) else (status,)
            self.assertIn(r.status, statuses, r)
            self.assertTrue(c.wait_closed(3), "connection not closed after %d" % r.status)
            self.assertTrue(H.is_imf_fixdate(r.header("Date")))
        H.assert_server_alive(self, self.server)
        return r


class TestSizeLimits(ServerPerClass):
    # body_ms is long: a 413 that waited for the body would come after it (as
    # a 408), far beyond the bound of test_body_too_large_413_without_reading_body
    server_config = {"limits": {"max_header_bytes": MAX_HEADER, "max_uri_bytes": MAX_URI,
                         "max_body_bytes": MAX_BODY},
              "timeouts": {"header_ms": 2000, "body_ms": 20000, "keepalive_ms": 5000}}

    def test_header_too_large_431(self):
        req = (b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEADER * 2)
               + b"\r\n\r\n")
        self.assertRejected(req, 431)

    def test_many_headers_too_large_431(self):
        hdrs = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 40) for i in range(60))
        self.assertRejected(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n" + hdrs + b"\r\n", 431)

    def test_header_too_large_without_end_431(self):
        # the head never ends: the limit must trigger without waiting for CRLFCRLF
        req = b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEADER * 4)
        self.assertRejected(req, 431)

    def test_header_just_under_limit_ok(self):
        base = b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Pad: \r\n\r\n"
        req = base.replace(b"X-Pad: ", b"X-Pad: " + b"p" * (MAX_HEADER - len(base) - 64))
        r = self.server.raw(req)
        self.assertEqual((r.status, r.body), (200, PLAINTEXT))

    def test_uri_too_long_414(self):
        self.assertRejected(H.simple_get("/plaintext?q=" + "a" * (MAX_URI + 50)), 414)

    def test_uri_path_too_long_414(self):
        self.assertRejected(H.simple_get("/" + "b" * (MAX_URI + 1)), 414)

    def test_uri_under_limit_ok(self):
        r = self.server.raw(H.simple_get("/plaintext?q=" + "a" * (MAX_URI - 40)))
        self.assertEqual(r.status, 200)

    def test_body_too_large_413_without_reading_body(self):
        req = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY * 100)
        t0 = time.monotonic()
        self.assertRejected(req, 413)
        self.assertLess(time.monotonic() - t0, SLACK, "413 only after waiting for the body")

    def test_body_too_large_with_expect_gets_413_not_100(self):
        req = (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
               b"Expect: 100-continue\r\n\r\n" % (MAX_BODY + 1))
        self.assertRejected(req, 413)

    def test_body_one_over_limit_413(self):
        req = (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1)
               + b"z" * (MAX_BODY + 1))
        self.assertRejected(req, 413)

    def test_body_at_limit_ok(self):
        data = os.urandom(MAX_BODY)
        r = self.server.raw(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                            % MAX_BODY + data)
        self.assertEqual((r.status, r.body), (200, data))

    def test_chunked_body_too_large_413(self):
        chunk = b"c" * 512
        body = b"".join(b"200\r\n" + chunk + b"\r\n" for _ in range(4)) + b"0\r\n\r\n"
        self.assertRejected(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                            b"\r\n\r\n" + body, 413)


class TestMalformed(ServerPerClass):
    server_config = {"timeouts": {"header_ms": 2000, "body_ms": 2000, "keepalive_ms": 5000}}

    def test_content_length_and_transfer_encoding_400(self):
        self.assertRejected(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)

    def test_transfer_encoding_and_content_length_400(self):
        self.assertRejected(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                            b"Content-Length: 5\r\n\r\n0\r\n\r\n", 400)

    def test_two_different_content_lengths_400(self):
        self.assertRejected(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                            b"Content-Length: 5\r\n\r\nabcde", 400)

    def test_two_equal_content_lengths_400(self):
        self.assertRejected(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                            b"Content-Length: 5\r\n\r\nabcde", 400)

    def test_content_length_not_a_number_400(self):
        self.assertRejected(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
                            400)

    def test_content_length_negative_400(self):
        self.assertRejected(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
                            400)

    def test_content_length_two_numbers_400(self):
        self.assertRejected(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\nab",
                            400)

    def test_obs_fold_space_400(self):
        self.assertRejected(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n",
                            400)

    def test_obs_fold_tab_400(self):
        self.assertRejected(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-A: one\r\n\ttwo\r\n\r\n",
                            400)

    def test_garbage_request_line_400(self):
        self.assertRejected(b"THIS IS NOT HTTP AT ALL\r\n\r\n", 400)

    def test_binary_garbage_400(self):
        self.assertRejected(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", 400)

    def test_request_line_without_version_rejected(self):
        # an HTTP/0.9-style line: 400, or 505 for the missing/unsupported version
        self.assertRejected(b"GET /plaintext\r\nHost: x\r\n\r\n", (400, 505))

    def test_request_line_extra_tokens_400(self):
        self.assertRejected(b"GET /plaintext HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400)

    def test_bad_chunk_size_400(self):
        self.assertRejected(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                            b"\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400)

    def test_bad_request_does_not_affect_other_connection(self):
        with self.server.connect() as good:
            good.send(H.simple_get("/plaintext"))
            self.assertEqual(good.read_response().status, 200)
            self.assertRejected(b"GARBAGE\r\n\r\n", 400)
            good.send(H.simple_get("/plaintext"))
            r = good.read_response()
            self.assertEqual((r.status, r.body), (200, PLAINTEXT))

    def test_request_after_bad_request_not_answered(self):
        with self.server.connect() as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"
                   + H.simple_get("/plaintext"))
            self.assertEqual(c.read_response().status, 400)
            self.assertTrue(c.wait_closed(3))
            self.assertEqual(c.buf, b"")


class TestTimeouts(ServerPerClass):
    server_config = {"timeouts": {"header_ms": HEADER_MS, "body_ms": BODY_MS, "keepalive_ms": 5000}}

    def trickle_until_response(self, first, drip=b"a", interval=0.05, limit=3 * SLACK):
        """Send `first`, then one `drip` byte every `interval` s until the server
        answers or closes (a server that restarted its header timer on every
        byte never would: `limit` ends it); returns (conn, seconds from the
        first byte)."""
        c = self.server.connect(timeout=5)
        t0 = time.monotonic()
        c.send(first)
        while time.monotonic() - t0 < limit:
            if c.recv_for(interval) or c.eof:
                break
            try:
                c.send(drip)
            except OSError:
                break
        return c, time.monotonic() - t0

    def test_slowloris_headers_408_after_header_timeout(self):
        c, elapsed = self.trickle_until_response(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        with c:
            r = c.read_response()
            self.assertEqual(r.status, 408)
            self.assertTrue(c.wait_closed(3))
        self.assertGreaterEqual(elapsed, HEADER_MS / 1000 * 0.8)
        self.assertLess(elapsed, HEADER_MS / 1000 + SLACK)
        H.assert_server_alive(self, self.server)

    def test_slowloris_request_line_408(self):
        c, elapsed = self.trickle_until_response(b"GET /plain", drip=b"x")
        with c:
            self.assertEqual(c.read_response().status, 408)
            self.assertTrue(c.wait_closed(3))
        self.assertLess(elapsed, HEADER_MS / 1000 + SLACK)

    def test_many_header_lines_slowly_408(self):
        c, elapsed = self.trickle_until_response(b"GET /plaintext HTTP/1.1\r\n",
                                                 drip=b"X-A: b\r\n", interval=0.04)
        with c:
            self.assertEqual(c.read_response().status, 408)
            self.assertTrue(c.wait_closed(3))
        self.assertLess(elapsed, HEADER_MS / 1000 + SLACK)

    def test_partial_head_then_silence_408(self):
        with self.server.connect() as c:
            t0 = time.monotonic()
            c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n")
            r = c.read_response(timeout=HEADER_MS / 1000 + 2 * SLACK)
            elapsed = time.monotonic() - t0
            self.assertEqual(r.status, 408)
            self.assertTrue(c.wait_closed(3))
        self.assertGreaterEqual(elapsed, HEADER_MS / 1000 * 0.8)
        self.assertLess(elapsed, HEADER_MS / 1000 + SLACK)

    def test_body_timeout_408(self):
        with self.server.connect() as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
            t0 = time.monotonic()
            r = c.read_response(timeout=HEADER_MS / 1000 + 2 * SLACK)
            elapsed = time.monotonic() - t0
            self.assertEqual(r.status, 408)
            self.assertTrue(c.wait_closed(3))
        self.assertGreaterEqual(elapsed, BODY_MS / 1000 * 0.8)
        self.assertLess(elapsed, BODY_MS / 1000 + SLACK)
        H.assert_server_alive(self, self.server)

    def test_chunked_body_timeout_408(self):
        with self.server.connect() as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhel")
            r = c.read_response(timeout=BODY_MS / 1000 + 2 * SLACK)
            self.assertEqual(r.status, 408)
            self.assertTrue(c.wait_closed(3))



class TestSlowClient(ServerPerClass):
    # A slow client that could block the others would do so until its header
    # timeout: far beyond the bound below.
    server_config = {"timeouts": {"header_ms": 30000}}

    def test_slow_client_does_not_block_others(self):
        with self.server.connect() as slow:
            slow.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n")
            H.wait_server_read(slow)  # the server holds its unfinished head
            t0 = time.monotonic()
            H.assert_server_alive(self, self.server)
            self.assertLess(time.monotonic() - t0, SLACK)
            self.assertFalse(slow.wait_closed(0.1), "the slow client was dropped")


class Refused:
    """Stands for a connection the server reset while it was being made."""

    def close(self):
        pass


def connect_from(server, source, timeout=5.0):
    """A raw socket to the server from source address `source` (127.0.0.x),
    or Refused when the server reset it before connect() returned (it can,
    on a loaded machine)."""
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    try:
        s.connect((server.host, server.port))
    except ConnectionResetError:
        s.close()
        return Refused()
    return s


def served(sock):
    """Whether a GET on sock is answered (False: reset or closed unanswered)."""
    if isinstance(sock, Refused):
        return False
    try:
        sock.sendall(H.simple_get("/plaintext"))
        return sock.recv(4096).startswith(b"HTTP/1.1 200 ")
    except OSError:
        return False


class TestMaxConnectionsPerIp(ServerPerClass):
    server_config = {"limits": {"max_connections_per_ip": 3},
                     "timeouts": {"keepalive_ms": 30000}}

    def test_an_address_over_its_limit_is_reset_others_are_served(self):
        held = [connect_from(self.server, "127.0.0.1") for _ in range(3)]
        try:
            for s in held:
                self.assertTrue(served(s))
            over = connect_from(self.server, "127.0.0.1")
            self.assertFalse(served(over), "a fourth connection from one address was served")
            over.close()
            self.server.wait_for_log(
                r"reset 1 connection over limits.max_connections_per_ip \(3\) .* 127\.0\.0\.1")
            other = connect_from(self.server, "127.0.0.2")
            self.assertTrue(served(other), "another address was refused")
            other.close()
            # more refusals within the interval: counted, not one line each
            for _ in range(5):
                s = connect_from(self.server, "127.0.0.1")
                self.assertFalse(served(s))
                s.close()
            time.sleep(0.3)
            self.assertEqual(len([l for l in self.server.stderr_lines()
                                  if "max_connections_per_ip" in l]), 1)
            # one of the three goes: its slot is free again
            held.pop().close()
            deadline = time.monotonic() + 5
            ok = False
            while not ok and time.monotonic() < deadline:
                s = connect_from(self.server, "127.0.0.1")
                ok = served(s)
                if ok:
                    held.append(s)
                else:
                    s.close()
                    time.sleep(0.05)
            self.assertTrue(ok, "the slot of a closed connection was not given back")
            self.assertTrue(self.server.running())
        finally:
            for s in held:
                s.close()

    def test_websocket_connections_count_too(self):
        key = b"dGhlIHNhbXBsZSBub25jZQ=="
        upgrade = (b"GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
                   b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
        held = [connect_from(self.server, "127.0.0.3") for _ in range(3)]
        try:
            for s in held:
                s.sendall(upgrade)
                self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 101 "))
            over = connect_from(self.server, "127.0.0.3")
            self.assertFalse(served(over))
            over.close()
        finally:
            for s in held:
                s.close()


class TestMaxRequestsPerConnection(ServerPerClass):
    server_config = {"limits": {"max_requests_per_connection": 3},
              "timeouts": {"keepalive_ms": 5000}}

    def test_last_allowed_response_carries_connection_close(self):
        with self.server.connect() as c:
            for i in range(3):
                c.send(H.simple_get("/plaintext"))
                r = c.read_response()
                self.assertEqual(r.status, 200)
                self.assertEqual(r.has_token("Connection", "close"), i == 2, (i, r.headers))
            self.assertTrue(c.wait_closed(3), "no close after max_requests_per_connection")

    def test_pipelined_beyond_limit_gets_only_limit_responses(self):
        with self.server.connect() as c:
            c.send(b"".join(H.simple_get("/plaintext") for _ in range(5)))
            rs = H.read_all_responses(c, 3)
            self.assertEqual([r.status for r in rs], [200, 200, 200])
            self.assertTrue(rs[2].has_token("Connection", "close"))
            self.assertTrue(c.wait_closed(3))
            self.assertEqual(c.buf, b"")

    def test_new_connection_after_limit_is_served(self):
        for _ in range(2):
            with self.server.connect() as c:
                for _ in range(3):
                    c.send(H.simple_get("/json"))
                    self.assertEqual(c.read_response().status, 200)
                self.assertTrue(c.wait_closed(3))


class TestKeepaliveTimeout(ServerPerClass):
    # header_ms is far from keepalive_ms: closing on the wrong timer shows.
    server_config = {"timeouts": {"keepalive_ms": KEEPALIVE_MS, "header_ms": 30000}}

    def test_idle_keepalive_connection_closed_silently(self):
        with self.server.connect() as c:
            c.send(H.simple_get("/plaintext"))
            self.assertEqual(c.read_response().status, 200)
            t0 = time.monotonic()
            self.assertTrue(c.wait_closed(KEEPALIVE_MS / 1000 + 2 * SLACK),
                            "idle connection not closed")
            elapsed = time.monotonic() - t0
            self.assertEqual(c.buf, b"", "bytes sent on keep-alive timeout")
        # (the timer starts before the client reads the response: half of it)
        self.assertGreaterEqual(elapsed, KEEPALIVE_MS / 1000 / 2)
        self.assertLess(elapsed, KEEPALIVE_MS / 1000 + SLACK)

    def test_requests_within_keepalive_keep_connection(self):
        # Each pause is a third of the keep-alive timeout (a margin of a
        # second for a client slow to resume), all of them together longer.
        pause = KEEPALIVE_MS / 1000 / 3
        with self.server.connect() as c:
            for _ in range(4):
                c.send(H.simple_get("/plaintext"))
                self.assertEqual(c.read_response().status, 200)
                time.sleep(pause)
            c.send(H.simple_get("/json"))
            self.assertEqual(c.read_response().status, 200)


class TestMaxConnections(unittest.TestCase):
    def setUp(self):
        self.server = H.CorioServer(
            args=["--access-log", "off"],
            config={"limits": {"max_connections": 2},
                    "timeouts": {"keepalive_ms": 20000, "header_ms": 20000}})
        self.conns = []
        self.server.start()

    def tearDown(self):
        for c in self.conns:
            c.close()
        self.server.close()

    def open_served(self):
        c = self.server.connect()
        self.conns.append(c)
        c.send(H.simple_get("/plaintext"))
        self.assertEqual(c.read_response().status, 200)
        return c

    def test_two_connections_served(self):
        a, b = self.open_served(), self.open_served()
        for c in (a, b, a):
            c.send(H.simple_get("/json"))
            self.assertEqual(c.read_response().status, 200)

    def test_third_connection_served_only_after_one_closes(self):
        a = self.open_served()
        self.open_served()
        third = self.server.connect(timeout=5)  # completed by the kernel backlog
        self.conns.append(third)
        third.send(H.simple_get("/plaintext"))
        self.assertEqual(third.recv_for(1.0), b"", "third connection served while two open")
        self.assertFalse(third.eof, "third connection closed instead of waiting")
        a.close()
        r = third.read_response(timeout=2 * SLACK)
        self.assertEqual((r.status, r.body), (200, PLAINTEXT))


if __name__ == "__main__":
    H.main()
