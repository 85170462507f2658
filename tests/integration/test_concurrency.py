"""Concurrency (CPU-bound /hash on the pool while the loop keeps serving),
graceful shutdown on SIGTERM/SIGINT, and the access log."""

import datetime
import os
import re
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401

PLAINTEXT = b"Hello, World!"
# A request answered while the pool is saturated must not wait for a hash:
# well under a second, and a job lasts HASH_JOB_SECONDS (calibrated), so a
# loop that waited for one could not pass.
FAST_S = 1.0
HASH_JOB_SECONDS = 1.5
# Graceful shutdown: the drain outlasts every step of a test by far, so that
# the test, not the clock, decides when a request in flight ends.
DRAIN_MS = 20000
WITHHOLD_S = 1.0  # how long the test keeps the rest of a body back after the signal
WAIT_S = 10.0  # bound for anything that takes milliseconds (generous: a loaded CI machine)

ACCESS_RE = re.compile(
    r'^(?P<ip>\S+) (?P<ident>\S+) (?P<user>\S+) '
    r'\[(?P<time>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] '
    r'"(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+|-) '
    r'"(?P<referer>[^"]*)" "(?P<agent>[^"]*)"$')


def echo_head(length, expect=False):
    return (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n"
            % (length, b"Expect: 100-continue\r\n" if expect else b""))


class Background(threading.Thread):
    """Runs fn() in a thread and keeps its result or exception."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn = fn
        self.result = None
        self.error = None

    def run(self):
        try:
            self.result = self.fn()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def get(self, timeout):
        self.join(timeout)
        if self.is_alive():
            raise AssertionError("background request did not finish within %.0f s" % timeout)
        if self.error is not None:
            raise self.error
        return self.result


def answered(conn):
    """True when a response (or a close) arrived on `conn`: a quick look."""
    conn.recv_for(0.01)
    return bool(conn.buf) or conn.eof


class TestHashConcurrency(H.ServerTestCase):
    server_args = ["--access-log", "off"]
    server_config = {"pool_threads": 4}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.slow = H.calibrate_hash_iterations(cls.server, seconds=HASH_JOB_SECONDS)
        except BaseException:
            cls.server.close()
            raise

    def post_hash(self, body, iterations, timeout=60):
        st, _, out = self.server.request("POST", "/hash?iterations=%d" % iterations, body=body,
                                         timeout=timeout)
        return st, out.decode()

    def start_hashes(self, bodies):
        """Sends one slow /hash per body, each on its own connection, and
        waits until the server has read them all: the jobs are on the pool
        (8 of them for 4 workers: the pool is saturated and has a queue)."""
        conns = []
        try:
            for b in bodies:
                c = self.server.connect(timeout=300)
                conns.append(c)
                c.send(H.hash_request(self.slow, b))
            for c in conns:
                H.wait_server_read(c)
        except BaseException:
            for c in conns:
                c.close()
            raise
        return conns

    def finish_hashes(self, conns, bodies):
        """Every hash still completes, each with its own result. (Computing
        them here would take as long again: test_eight_concurrent_hashes_correct
        checks the values.)"""
        results = []
        for c in conns:
            with c:
                r = c.read_response(timeout=300)
                self.assertEqual(r.status, 200, r)
                self.assertRegex(r.body.decode(), r"^[0-9a-f]{64}$")
                results.append(r.body.decode())
        self.assertEqual(len(set(results)), len(bodies), results)

    def test_eight_concurrent_hashes_correct(self):
        bodies = [("password-%d" % i).encode() * (i + 1) for i in range(8)]
        jobs = [Background(lambda b=b: self.post_hash(b, 20000)) for b in bodies]
        for j in jobs:
            j.start()
        for b, j in zip(bodies, jobs):
            self.assertEqual(j.get(60), (200, H.pbkdf2_hex(b, 20000)))

    def test_plaintext_fast_while_hashing(self):
        bodies = [b"load-%d" % i for i in range(8)]
        conns = self.start_hashes(bodies)
        latencies = []
        with self.server.connect() as c:
            for _ in range(5):
                t0 = time.monotonic()
                c.send(H.simple_get("/plaintext"))
                r = c.read_response(timeout=WAIT_S)
                latencies.append(time.monotonic() - t0)
                self.assertEqual(r.body, PLAINTEXT)
        busy = sum(not answered(h) for h in conns)
        self.finish_hashes(conns, bodies)
        self.assertGreater(busy, 0, "hashes finished too early to measure anything")
        self.assertLess(max(latencies), FAST_S, latencies)

    def test_new_connections_fast_while_hashing(self):
        bodies = [b"x%d" % i for i in range(8)]
        conns = self.start_hashes(bodies)
        latencies = []
        for _ in range(3):
            t0 = time.monotonic()
            st, _, body = self.server.request("GET", "/json", timeout=WAIT_S)
            latencies.append(time.monotonic() - t0)
            self.assertEqual(st, 200)
        busy = sum(not answered(h) for h in conns)
        self.finish_hashes(conns, bodies)
        self.assertGreater(busy, 0, "hashes finished too early to measure anything")
        self.assertLess(max(latencies), FAST_S, latencies)

    def test_many_connections_many_requests(self):
        def client(i):
            with self.server.connect(timeout=10) as c:
                for k in range(10):
                    body = b"c%d-r%d" % (i, k)
                    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                           % len(body) + body)
                    r = c.read_response(timeout=10)
                    if (r.status, r.body) != (200, body):
                        return (i, k, r.status, r.body)
            return None
        jobs = [Background(lambda i=i: client(i)) for i in range(50)]
        for j in jobs:
            j.start()
        for j in jobs:
            self.assertIsNone(j.get(60))


class ShutdownTestCase(unittest.TestCase):
    """A daemon per test, and requests in flight that the test controls: a
    POST /echo whose head and first half of the body are in while the test
    withholds the rest. No request depends on how fast the machine computes."""

    drain_ms = DRAIN_MS
    config = {}

    def setUp(self):
        timeouts = {"drain_ms": self.drain_ms}
        timeouts.update(self.config)
        self.server = H.CorioServer(args=["--access-log", "off"],
                                    config={"timeouts": timeouts})
        self.server.start()

    def tearDown(self):
        self.server.close()

    def start_inflight(self, first=b"01234", length=10):
        """A request in flight: head and `first` sent, read by the server."""
        conn = self.server.connect(timeout=WAIT_S)
        conn.send(echo_head(length) + first)
        H.wait_server_read(conn)
        return conn

    def begin_drain(self, sig=signal.SIGTERM):
        """Sends `sig` and waits until the daemon says it is draining;
        returns the time of the signal."""
        t0 = time.monotonic()
        self.server.send_signal(sig)
        self.server.wait_for_log(r"shutting down gracefully", timeout=WAIT_S)
        return t0

    def assert_echo_then_close(self, conn, body):
        """The request in flight is answered in full, with Connection: close,
        and the connection ends."""
        try:
            r = conn.read_response(timeout=WAIT_S)
        except (socket.timeout, H.ConnectionClosed) as e:
            self.fail("the request in flight was not answered during the drain: %r" % e)
        self.assertEqual((r.status, r.body), (200, body), r)
        self.assertTrue(r.has_token("Connection", "close"), r.headers)
        self.assertTrue(conn.wait_closed(WAIT_S), "connection left open after the drain")

    def assert_exit_0(self, timeout=WAIT_S):
        code = self.server.wait(timeout)
        self.assertEqual(code, 0, "exit status %r (None: still running)\n%s"
                         % (code, self.server.stderr_text()))

    def assert_new_connection_not_served(self):
        """A connection opened now is refused, or at most parked in the
        backlog of a closing listener: never answered."""
        try:
            with H.RawConn(self.server.host, self.server.port, timeout=WAIT_S) as c:
                c.send(H.simple_get("/plaintext"))
                closed = c.wait_closed(WAIT_S)
                self.assertEqual(c.buf, b"", "a new connection was served after the signal")
                self.assertTrue(closed, "a new connection after the signal was left hanging")
        except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError):
            pass


class TestGracefulShutdown(ShutdownTestCase):
    def check_inflight_completes(self, sig):
        with self.start_inflight() as conn:
            self.begin_drain(sig)
            time.sleep(WITHHOLD_S)  # the drain must wait for the body, not for a clock
            self.assertTrue(self.server.running(), "exited with a request in flight")
            conn.send(b"56789")
            self.assert_echo_then_close(conn, b"0123456789")
        self.assert_exit_0()

    def test_sigterm_inflight_request_completes_and_exit_0(self):
        self.check_inflight_completes(signal.SIGTERM)

    def test_sigint_inflight_request_completes_and_exit_0(self):
        self.check_inflight_completes(signal.SIGINT)

    def test_inflight_request_after_100_continue_completes(self):
        # The interim response shows that the head is in; the whole body
        # comes after the signal.
        with self.server.connect(timeout=WAIT_S) as conn:
            conn.send(echo_head(10, expect=True))
            self.assertEqual(conn.read_response(timeout=WAIT_S).status, 100)
            self.begin_drain()
            time.sleep(WITHHOLD_S)
            conn.send(b"abcde")
            time.sleep(WITHHOLD_S / 2)
            conn.send(b"fghij")
            self.assert_echo_then_close(conn, b"abcdefghij")
        self.assert_exit_0()

    def test_new_connections_refused_after_sigterm(self):
        with self.start_inflight() as conn:
            self.begin_drain()
            self.assert_new_connection_not_served()
            # the daemon was still there to refuse: the request holds it
            self.assertTrue(self.server.running(), "exited with a request in flight")
            conn.send(b"56789")
            self.assert_echo_then_close(conn, b"0123456789")
        self.assert_exit_0()

    def test_idle_keepalive_closed_at_once_while_request_in_flight(self):
        with self.server.connect() as idle:
            idle.send(H.simple_get("/plaintext"))
            self.assertEqual(idle.read_response().status, 200)
            with self.start_inflight() as conn:
                self.begin_drain()
                # closed by the drain itself: the daemon still runs, since
                # the request in flight is not finished
                self.assertTrue(idle.wait_closed(WAIT_S), "idle connection kept open")
                self.assertEqual(idle.buf, b"", "bytes sent on an idle connection")
                self.assertTrue(self.server.running(), "exited with a request in flight")
                conn.send(b"56789")
                self.assert_echo_then_close(conn, b"0123456789")
        self.assert_exit_0()

    def test_sigterm_idle_exits_0_quickly(self):
        t0 = time.monotonic()
        self.assertEqual(self.server.stop(signal.SIGTERM, timeout=DRAIN_MS / 1000 + WAIT_S), 0)
        # nothing to wait for: far sooner than the drain deadline
        self.assertLess(time.monotonic() - t0, DRAIN_MS / 1000 / 2)

    def test_sigterm_with_idle_keepalive_connection_exits_0(self):
        with self.server.connect() as c:
            c.send(H.simple_get("/plaintext"))
            self.assertEqual(c.read_response().status, 200)
            t0 = time.monotonic()
            code = self.server.stop(signal.SIGTERM, timeout=DRAIN_MS / 1000 + WAIT_S)
            self.assertEqual(code, 0)
            self.assertLess(time.monotonic() - t0, DRAIN_MS / 1000 / 2)
            self.assertTrue(c.wait_closed(WAIT_S))
            self.assertEqual(c.buf, b"")


class TestDrainBodyTimeout(ShutdownTestCase):
    # The body timeout still holds while draining: a client that stops
    # sending does not keep the daemon for the whole drain.
    config = {"body_ms": 500}

    def test_body_timeout_applies_during_drain(self):
        with self.start_inflight() as conn:
            t0 = self.begin_drain()
            r = conn.read_response(timeout=WAIT_S)
            self.assertEqual(r.status, 408, r)
            self.assertTrue(conn.wait_closed(WAIT_S))
        self.assert_exit_0()
        self.assertLess(time.monotonic() - t0, DRAIN_MS / 1000 / 2,
                        "the drain waited for a body that had timed out")


class TestDrainTimeout(ShutdownTestCase):
    drain_ms = 500

    def test_drain_timeout_bounds_exit_time(self):
        # The body never completes: the connection is closed at the drain
        # deadline (not before) and the daemon exits 0.
        with self.start_inflight() as conn:
            t0 = self.begin_drain()
            self.assertTrue(conn.wait_closed(WAIT_S),
                            "connection still open %.0f s after the drain deadline" % WAIT_S)
            self.assertGreaterEqual(time.monotonic() - t0, self.drain_ms / 1000 * 0.9,
                                    "closed before the drain deadline")
        self.assert_exit_0()
        self.assertLess(time.monotonic() - t0, self.drain_ms / 1000 + WAIT_S)

    def test_pool_job_outliving_the_drain_does_not_hold_the_exit(self):
        # The longest hash there is: past the drain deadline on any machine
        # of today (10 M iterations take ~3 s on a fast core). At the
        # deadline its connection is closed, which cancels the handler and
        # with it the job (it stops within a slice), and the daemon exits 0;
        # if a machine ever finishes it in time, the answer is simply sent.
        with self.server.connect(timeout=WAIT_S) as conn:
            conn.send(H.hash_request(H.HASH_MAX_ITERATIONS, b"very slow"))
            H.wait_server_read(conn)  # parsed, so the job is submitted first
            t0 = self.begin_drain()
            self.assert_exit_0(self.drain_ms / 1000 + WAIT_S)
            elapsed = time.monotonic() - t0
            conn.wait_closed(WAIT_S)
            if conn.buf:
                self.assertEqual(conn.read_response().status, 200)
            else:
                self.assertTrue(any("drain deadline passed" in l
                                    for l in self.server.stderr_lines()),
                                self.server.stderr_text())
        self.assertLess(elapsed, self.drain_ms / 1000 + WAIT_S)


class TestAccessLog(unittest.TestCase):
    def setUp(self):
        self.server = None

    def tearDown(self):
        if self.server is not None:
            self.server.close()

    def start(self, access):
        self.server = H.CorioServer()
        path = os.path.join(self.server.tmpdir, "access.log") if access == "FILE" else access
        self.server.args = ["--access-log", path]
        self.server.start()
        return path

    def read_lines(self, path):
        self.assertEqual(self.server.stop(), 0)
        with open(path) as f:
            return [l for l in f.read().splitlines() if l]

    @unittest.skipUnless(H.have_curl(), "curl not installed")
    def test_file_one_line_per_request(self):
        path = self.start("FILE")
        for p in ("/plaintext", "/json", "/nope"):
            self.assertEqual(H.curl("-o", "/dev/null", self.server.url(p)).returncode, 0)
        lines = self.read_lines(path)
        self.assertEqual(len(lines), 3, lines)
        self.assertEqual([ACCESS_RE.match(l).group("request").split()[1] if ACCESS_RE.match(l)
                          else l for l in lines], ["/plaintext", "/json", "/nope"])

    def test_early_rejection_and_head_are_logged_exactly(self):
        # A 414 comes before the version is read: no version is invented.
        # A HEAD sends no body: 0 bytes, not the Content-Length.
        path = self.start("FILE")
        long_target = b"/" + b"a" * 9000
        r = self.server.raw(b"GET " + long_target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(r.status, 414)
        r = self.server.raw(b"HEAD /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                            head=True)
        self.assertEqual(r.status, 200)
        lines = self.read_lines(path)
        self.assertEqual(len(lines), 2, lines)
        first, second = ACCESS_RE.match(lines[0]), ACCESS_RE.match(lines[1])
        self.assertEqual(first.group("status"), "414")
        self.assertNotIn("HTTP/1.", first.group("request"))
        self.assertEqual(second.group("request"), "HEAD /plaintext HTTP/1.1")
        self.assertEqual(second.group("bytes"), "0")

    @unittest.skipUnless(H.have_curl(), "curl not installed")
    def test_file_combined_format(self):
        path = self.start("FILE")
        p = H.curl("-o", "/dev/null", "-A", "curl/7.88.1", self.server.url("/plaintext"))
        self.assertEqual(p.returncode, 0)
        lines = self.read_lines(path)
        self.assertEqual(len(lines), 1, lines)
        m = ACCESS_RE.match(lines[0])
        self.assertIsNotNone(m, lines[0])
        self.assertEqual(m.group("ip"), "127.0.0.1")
        self.assertEqual((m.group("ident"), m.group("user")), ("-", "-"))
        self.assertEqual(m.group("request"), "GET /plaintext HTTP/1.1")
        self.assertEqual((m.group("status"), m.group("bytes")), ("200", "13"))
        self.assertEqual((m.group("referer"), m.group("agent")), ("-", "curl/7.88.1"))
        logged = datetime.datetime.strptime(m.group("time"), "%d/%b/%Y:%H:%M:%S %z")
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertLess(abs((now - logged).total_seconds()), 120)

    @unittest.skipUnless(H.have_curl(), "curl not installed")
    def test_file_referer_status_and_method(self):
        path = self.start("FILE")
        H.curl("-o", "/dev/null", "-e", "http://ref.example/", "-A", "agent x",
               "--data-binary", "abc", self.server.url("/echo"))
        H.curl("-o", "/dev/null", "-A", "agent y", self.server.url("/echo"))
        lines = self.read_lines(path)
        self.assertEqual(len(lines), 2, lines)
        m1, m2 = ACCESS_RE.match(lines[0]), ACCESS_RE.match(lines[1])
        self.assertIsNotNone(m1, lines[0])
        self.assertIsNotNone(m2, lines[1])
        self.assertEqual(m1.group("request"), "POST /echo HTTP/1.1")
        self.assertEqual((m1.group("status"), m1.group("bytes")), ("200", "3"))
        self.assertEqual((m1.group("referer"), m1.group("agent")),
                         ("http://ref.example/", "agent x"))
        self.assertEqual(m2.group("status"), "405")

    def test_file_logs_http10_and_query(self):
        path = self.start("FILE")
        self.server.raw(b"GET /plaintext?a=1 HTTP/1.0\r\nUser-Agent: raw\r\n\r\n")
        lines = self.read_lines(path)
        self.assertEqual(len(lines), 1, lines)
        m = ACCESS_RE.match(lines[0])
        self.assertIsNotNone(m, lines[0])
        self.assertEqual(m.group("request"), "GET /plaintext?a=1 HTTP/1.0")

    def test_dash_logs_to_stderr(self):
        self.start("-")
        st, _, _ = self.server.request("GET", "/json", headers={"User-Agent": "stderr-test"})
        self.assertEqual(st, 200)
        self.assertEqual(self.server.stop(), 0)
        hits = [l for l in self.server.stderr_lines() if '"GET /json HTTP/1.1" 200' in l]
        self.assertEqual(len(hits), 1, self.server.stderr_text())
        self.assertTrue(ACCESS_RE.match(hits[0]), hits[0])

    def test_off_writes_no_access_lines(self):
        self.start("off")
        for p in ("/plaintext", "/json"):
            self.assertEqual(self.server.request("GET", p)[0], 200)
        self.assertEqual(self.server.stop(), 0)
        text = self.server.stderr_text() + self.server.stdout_text()
        self.assertNotIn("/plaintext", text)
        self.assertNotIn("/json", text)
        self.assertEqual(os.listdir(self.server.tmpdir), [])


if __name__ == "__main__":
    H.main()
