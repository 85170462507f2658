"""corio --probe URL: the binary's own health check (for images without
curl). Exit 0 on a 2xx answer, 1 on anything else with one line on stderr
saying what, 2 for a command line it cannot use; it starts no server and
reads no configuration.

Servers: corio itself (/healthz 200, /readyz 503 while it searches for
self), and small servers on raw sockets in this process that answer what a
test needs (503, an interim 103, garbage, nothing at all, a close).

No assertion depends on the machine's speed: "quickly" means well inside a
deadline that the wrong behaviour (waiting for the timeout) would exceed
many times over.
"""

import os
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401

LONG = 60000  # ms: a probe timeout no test may wait for


def probe(*args, timeout=30.0):
    """corio with args: (exit status, stderr text, seconds it took)."""
    t0 = time.monotonic()
    try:
        p = subprocess.run([H.corio_bin()] + list(args), stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("corio %s did not exit within %.0f s (stderr: %r)"
                             % (" ".join(args), timeout, e.stderr)) from None
    return p.returncode, p.stderr.decode("utf-8", "replace"), time.monotonic() - t0


class RawServer:
    """A listening socket on 127.0.0.1 whose connections get answer(conn):
    by default the request head is read first. Closed at the end."""

    def __init__(self, answer, read_head=True, family=socket.AF_INET, host=H.HOST):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.answer = answer
        self.read_head = read_head
        self.requests = []
        self.conns = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            c.settimeout(30)
            try:
                if self.read_head:
                    self.requests.append(H.read_head(c))
                self.answer(c)
            except OSError:
                pass

    def close(self):
        # The thread ends before the listening socket's fd is closed: a
        # thread still about to accept() would otherwise accept on whatever
        # socket takes that fd number next (the next test's server), and
        # answer its clients with this test's answer.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept()
        except OSError:
            pass
        for c in list(self.conns):
            try:
                c.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv()
            except OSError:
                pass
        self.thread.join(timeout=30)
        self.sock.close()
        for c in self.conns:
            c.close()


def send(data, close=True):
    def answer(c):
        c.sendall(data)
        if close:
            c.close()
    return answer


class ProbeTestCase(unittest.TestCase):
    def raw_server(self, answer, **kw):
        s = RawServer(answer, **kw)
        self.addCleanup(s.close)
        return s

    def assertOneLine(self, err, *parts):
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, repr(err))
        for p in parts:
            self.assertIn(p, lines[0])
        return lines[0]


class TestProbeAnswers(ProbeTestCase):
    @classmethod
    def setUpClass(cls):
        # /readyz is 503 while it searches for itself among servers: here
        # only a dead entry, and a window long enough for every test.
        dead = H.Reserved()
        cls.dead = dead
        cls.server = H.CorioServer(args=["--access-log", "off"], config={
            "servers": ["127.0.0.1:%d" % dead.port],
            "discovery": {"window_ms": 0}})
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        cls.dead.close()

    def test_healthz_200_exits_0_silently(self):
        rc, err, _ = probe("--probe", self.server.url("/healthz"))
        self.assertEqual((rc, err), (0, ""))

    def test_readyz_503_while_searching_exits_1_with_the_status(self):
        rc, err, _ = probe("--probe", self.server.url("/readyz"))
        self.assertEqual(rc, 1)
        self.assertEqual(err, "corio: probe %s: HTTP 503 Service Unavailable\n"
                         % self.server.url("/readyz"))

    def test_404_exits_1(self):
        rc, err, _ = probe("--probe", self.server.url("/no/such/path"))
        self.assertEqual(rc, 1)
        self.assertOneLine(err, "HTTP 404 Not Found")

    def test_a_name_is_resolved(self):
        rc, err, _ = probe("--probe", "http://localhost:%d/healthz" % self.server.port)
        self.assertEqual((rc, err), (0, ""))

    def test_query_and_fragment_and_no_path(self):
        rc, err, _ = probe("--probe", self.server.url("/plaintext?a=1#top"))
        self.assertEqual((rc, err), (0, ""))
        rc, err, _ = probe("--probe=http://%s:%d" % (H.HOST, self.server.port))
        self.assertEqual(rc, 1)  # "/" has no route here (no root): 404
        self.assertOneLine(err, "HTTP 404")


class TestProbeRawServers(ProbeTestCase):
    def probed(self, answer, path="/", *args, **kw):
        """The probe of a raw server that answers answer(conn): (exit
        status, stderr, seconds, the server)."""
        s = self.raw_server(answer, **kw)
        rc, err, took = probe("--probe", "http://127.0.0.1:%d%s" % (s.port, path), *args)
        return rc, err, took, s

    def test_503_from_another_server_exits_1(self):
        rc, err, _, _ = self.probed(send(b"HTTP/1.1 503 Service Unavailable\r\n"
                                         b"Content-Length: 0\r\n\r\n"), "/readyz")
        self.assertEqual(rc, 1)
        self.assertOneLine(err, "HTTP 503 Service Unavailable")

    def test_the_request_is_an_http11_get_with_host_and_close(self):
        rc, err, _, s = self.probed(send(b"HTTP/1.0 204 No Content\r\n\r\n"), "/a/b?c=d#e")
        self.assertEqual((rc, err), (0, ""))
        head = s.requests[0].decode("latin-1").split("\r\n")
        self.assertEqual(head[0], "GET /a/b?c=d HTTP/1.1")
        self.assertIn("Host: 127.0.0.1:%d" % s.port, head)
        self.assertIn("Connection: close", head)

    def test_interim_answers_are_skipped(self):
        rc, err, _, _ = self.probed(send(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                                         b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
        self.assertEqual((rc, err), (0, ""))

    def test_an_answer_in_pieces(self):
        def answer(c):
            for b in b"HTTP/1.1 200 OK\r\n\r\n":
                c.sendall(bytes([b]))
            c.close()
        rc, err, _, _ = self.probed(answer)
        self.assertEqual((rc, err), (0, ""))

    def test_garbage_exits_1(self):
        rc, err, _, _ = self.probed(send(b"SSH-2.0-OpenSSH_9.2\r\n"))
        self.assertEqual(rc, 1)
        self.assertOneLine(err, 'not an HTTP/1.x answer: "SSH-2.0-OpenSSH_9.2"')

    def test_a_close_without_an_answer_exits_1(self):
        rc, err, _, _ = self.probed(send(b""))
        self.assertEqual(rc, 1)
        self.assertOneLine(err, "closed the connection without an answer")

    def test_a_server_that_never_answers_exits_1_at_the_timeout(self):
        # reads the request, then holds the connection
        rc, err, took, _ = self.probed(lambda c: None, "/healthz", "--probe-timeout", "500")
        self.assertEqual(rc, 1)
        self.assertOneLine(err, "no answer within 500 ms")
        self.assertGreaterEqual(took, 0.45)
        self.assertLess(took, 20)

    def test_the_default_timeout_is_2_s(self):
        rc, err, took, _ = self.probed(lambda c: None, read_head=False)
        self.assertEqual(rc, 1)
        self.assertOneLine(err, "no answer within 2000 ms")
        self.assertGreaterEqual(took, 1.95)

    def test_connection_refused_exits_1_at_once(self):
        r = H.Reserved()  # bound, not listening: refused
        self.addCleanup(r.close)
        rc, err, took = probe("--probe", "http://127.0.0.1:%d/healthz" % r.port,
                              "--probe-timeout", str(LONG))
        self.assertEqual(rc, 1)
        self.assertEqual(err, "corio: probe http://127.0.0.1:%d/healthz: connect to "
                         "127.0.0.1:%d: Connection refused\n" % (r.port, r.port))
        self.assertLess(took, 20)  # the timeout would be 60 s

    def test_ipv6(self):
        try:
            s = self.raw_server(send(b"HTTP/1.1 200 OK\r\n\r\n"), family=socket.AF_INET6,
                                host="::1")
        except OSError as e:
            self.skipTest("no IPv6 loopback: %s" % e)
        rc, err, _ = probe("--probe", "http://[::1]:%d/" % s.port)
        self.assertEqual((rc, err), (0, ""))
        self.assertIn("Host: [::1]:%d" % s.port, s.requests[0].decode())


class TestProbeCommandLine(ProbeTestCase):
    def assertUsageError(self, args, *parts):
        rc, err, took = probe(*args)
        self.assertEqual(rc, 2, err)
        self.assertLess(took, 20)
        return self.assertOneLine(err, *parts)

    def test_malformed_urls_exit_2(self):
        for url, why in [
                ("127.0.0.1:8080/healthz", "expected http://HOST[:PORT][/PATH]"),
                ("https://127.0.0.1/", "https is not supported"),
                ("ftp://127.0.0.1/", "only http:// URLs"),
                ("http://", "no host"),
                ("http:///healthz", "no host"),
                ("http://:8080/", "no host"),
                ("http://host:/", "port must be a number"),
                ("http://host:0/", "port must be a number"),
                ("http://host:65536/", "port must be a number"),
                ("http://host:80x/", "port must be a number"),
                ("http://::1:8080/", "IPv6 address goes in brackets"),
                ("http://[::1/", "IPv6 address goes in brackets"),
                ("http://[nope]:80/", "not an IPv6 address"),
                ("http://user@host/", "user information"),
                ("http://ho st/", "the host may hold"),
                ("http://host/a b", "printable ASCII"),
                ("", "expected http://")]:
            with self.subTest(url=url):
                line = self.assertUsageError(["--probe", url], why)
                self.assertTrue(line.startswith('corio: --probe: "%s": ' % url), line)

    def test_bad_timeouts_exit_2(self):
        for t in ("0", "-5", "abc", "", "3600001", "1.5", " 5"):
            with self.subTest(timeout=t):
                self.assertUsageError(["--probe", "http://127.0.0.1:1/", "--probe-timeout", t],
                                      "--probe-timeout: expected milliseconds from 1 to "
                                      "3600000")

    def test_other_flags_do_not_go_with_the_probe(self):
        """Not a server: no configuration file is read, nothing listens."""
        self.assertUsageError(["--config", "/nonexistent/corio.json", "--probe",
                               "http://127.0.0.1:1/"], 'unexpected argument "--config"')
        self.assertUsageError(["--probe", "http://127.0.0.1:1/", "--listen", "127.0.0.1:0"],
                              'unexpected argument "--listen"')

    def test_missing_and_repeated_arguments_exit_2(self):
        self.assertUsageError(["--probe"], 'option "--probe" requires an argument')
        self.assertUsageError(["--probe-timeout", "100"], "--probe-timeout goes with --probe URL")
        self.assertUsageError(["--probe", "http://a/", "--probe", "http://b/"],
                              "--probe given twice")

    def test_help_describes_the_probe(self):
        p = subprocess.run([H.corio_bin(), "--help"], capture_output=True, timeout=30)
        out = p.stdout.decode()
        self.assertIn("--probe URL", out)
        self.assertIn("--probe-timeout MS", out)


if __name__ == "__main__":
    H.main()
