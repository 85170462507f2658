"""The daemon under abuse: strict framing on real sockets, input that stays
bounded whatever the peer sends, CPU work that stops when nobody waits for
it, and one path for routes and files (issue 6)."""

import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401

MAX_ITERATIONS = 10000000  # the daemon's maximum: seconds of work on any CPU


def proc_status(pid, key):
    """A value in kB from /proc/PID/status (VmRSS, VmHWM, ...)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (key, pid))


def cpu_seconds(pid):
    """User + system CPU time of the process so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hash_head(iterations, body_len):
    return (b"POST /hash?iterations=%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % (iterations, body_len))


def send_ignoring_close(conn, data):
    """Sends data; the server may close (and reset) before it is all out."""
    try:
        conn.sock.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


class TestStrictFraming(H.ServerTestCase):
    def test_bare_cr_does_not_smuggle_a_second_request(self):
        with self.server.connect() as c:
            c.send(b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\rZGET /json HTTP/1.1\r\n"
                   b"Host: a\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 400)
            self.assertTrue(c.wait_closed(5))
            self.assertNotIn(b"Hello, World!", c.buf)
        H.assert_server_alive(self, self.server)

    def test_content_length_with_empty_transfer_encoding_is_400_and_closed(self):
        with self.server.connect() as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n"
                   b"Transfer-Encoding:\r\n\r\n0123456789")
            r = c.read_response()
            self.assertEqual(r.status, 400)
            self.assertEqual(r.header("Connection"), "close")
            self.assertTrue(c.wait_closed(5))

    def test_unknown_method_is_501(self):
        r = self.server.raw(b"QUERY /plaintext HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(r.status, 501)


class TestBoundedInput(H.ServerTestCase):
    """Regression (the class of CVE-2024-22019): a 24 MiB chunk extension
    grew the server by 25 MiB with max_body_bytes at 1 MiB."""

    def test_huge_chunk_extension_is_refused_without_growing(self):
        pid = self.server.proc.pid
        H.assert_server_alive(self, self.server)
        before = proc_status(pid, "VmHWM")
        with self.server.connect(timeout=30) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;x=")
            piece = b"a" * (1 << 20)
            for _ in range(24):
                if not send_ignoring_close(c, piece):
                    break
            r = c.read_response(timeout=30)
            self.assertEqual(r.status, 400)
        grown = proc_status(pid, "VmHWM") - before
        self.assertLess(grown, 8 * 1024, "peak RSS grew by %d kB" % grown)
        H.assert_server_alive(self, self.server)

    def test_endless_chunk_size_is_refused(self):
        with self.server.connect(timeout=30) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(64):
                if not send_ignoring_close(c, b"0" * 65536):
                    break
            r = c.read_response(timeout=30)
            self.assertEqual(r.status, 400)


class TestAbandonedWork(unittest.TestCase):
    """Regression: forty clients that asked for 10M-iteration hashes and gave
    up after a second left the pool busy for minutes."""

    def test_hashes_stop_when_their_clients_leave(self):
        clients = 20
        srv = H.CorioServer(config={"pool_threads": 2, "pool_queue": 64})
        with srv:
            conns = []
            for i in range(clients):
                c = srv.connect(timeout=30)
                c.send(hash_head(MAX_ITERATIONS, 5) + b"pw-%02d" % i)
                conns.append(c)
            time.sleep(0.5)  # queued and running now
            for c in conns:
                c.close()
            # Without cancellation the pool is busy with ten rounds of
            # multi-second jobs; with it, a new job runs at once.
            t0 = time.monotonic()
            st, _, body = srv.request("POST", "/hash?iterations=1", body=b"x", timeout=20)
            self.assertEqual((st, body.decode()), (200, H.pbkdf2_hex(b"x", 1)))
            self.assertLess(time.monotonic() - t0, 10.0)
            # and the workers are idle again: no CPU used over a second
            time.sleep(0.5)
            used = cpu_seconds(srv.proc.pid)
            time.sleep(1.0)
            self.assertLess(cpu_seconds(srv.proc.pid) - used, 0.5)

    def test_handler_deadline_answers_503_and_stops_the_job(self):
        srv = H.CorioServer(config={"pool_threads": 1, "timeouts": {"handler_ms": 300}})
        with srv:
            t0 = time.monotonic()
            st, _, _ = srv.request("POST", "/hash?iterations=%d" % MAX_ITERATIONS, body=b"pw",
                                   timeout=30)
            self.assertEqual(st, 503)
            self.assertLess(time.monotonic() - t0, 10.0)
            # the only worker is free again at once
            st, _, body = srv.request("POST", "/hash?iterations=2", body=b"y", timeout=10)
            self.assertEqual((st, body.decode()), (200, H.pbkdf2_hex(b"y", 2)))

    def test_full_pool_queue_answers_503_with_retry_after(self):
        srv = H.CorioServer(config={"pool_threads": 1, "pool_queue": 1,
                                    "timeouts": {"pool_wait_ms": 200}})
        with srv:
            busy = []
            try:
                for i in range(2):  # one running, one queued
                    c = srv.connect(timeout=30)
                    c.send(hash_head(MAX_ITERATIONS, 2) + b"b%d" % i)
                    busy.append(c)
                time.sleep(0.3)
                t0 = time.monotonic()
                st, headers, _ = srv.request("POST", "/hash?iterations=1", body=b"z",
                                             timeout=10)
                self.assertEqual(st, 503)
                self.assertEqual(headers.get("Retry-After"), "1")
                self.assertLess(time.monotonic() - t0, 5.0)
            finally:
                for c in busy:
                    c.close()
            st, _, _ = srv.request("POST", "/hash?iterations=1", body=b"z", timeout=20)
            self.assertEqual(st, 200)


class TestPathsAndFiles(unittest.TestCase):
    ROOT = {
        "index.html": "<h1>home</h1>",
        ".env": "SECRET=1",
        "sub/.git/config": "[core]",
        "sub/page.txt": "page",
        ".well-known/acme-challenge/token": "proof",
        "sub/.well-known/x": "deep",
        "a b/index.html": "spaced",
    }

    def test_routes_see_the_decoded_normalised_path(self):
        with H.CorioServer(root_files=self.ROOT) as srv:
            for path in ("/%70laintext", "//plaintext", "/sub/../plaintext"):
                st, _, body = srv.request("GET", path)
                self.assertEqual((st, body), (200, b"Hello, World!"), path)

    def test_repeated_slashes_reach_files(self):
        with H.CorioServer(root_files=self.ROOT) as srv:
            st, _, body = srv.request("GET", "//index.html")
            self.assertEqual((st, body), (200, b"<h1>home</h1>"))
            st, _, body = srv.request("GET", "/sub//page.txt")
            self.assertEqual((st, body), (200, b"page"))

    def test_dotfiles_are_not_served(self):
        with H.CorioServer(root_files=self.ROOT) as srv:
            # only a leading /.well-known/ is served
            for path in ("/.env", "/sub/.git/config", "/%2eenv", "/sub/.git/", "/sub/.well-known/x"):
                self.assertEqual(srv.request("GET", path)[0], 404, path)
            st, _, body = srv.request("GET", "/.well-known/acme-challenge/token")
            self.assertEqual((st, body), (200, b"proof"))

    def test_dotfiles_served_when_configured(self):
        with H.CorioServer(root_files=self.ROOT, config={"serve_dotfiles": True}) as srv:
            st, _, body = srv.request("GET", "/.env")
            self.assertEqual((st, body), (200, b"SECRET=1"))

    def test_fifo_under_the_root_is_refused_at_once(self):
        # Regression: opening a FIFO blocked its task forever. io_uring
        # first tries a non-blocking open from cached dentries; only a cold
        # lookup goes to a kernel worker that opened the FIFO blocking, so
        # drop the dentry cache first where we may (root).
        with H.CorioServer(root_files=self.ROOT) as srv:
            os.mkfifo(os.path.join(srv.root, "pipe"))
            os.sync()
            try:
                with open("/proc/sys/vm/drop_caches", "w") as f:
                    f.write("2\n")
            except OSError:
                pass
            st, _, _ = srv.request("GET", "/pipe", timeout=10)
            self.assertEqual(st, 403)
            H.assert_server_alive(self, srv)

    def test_directory_redirect_keeps_its_escapes(self):
        with H.CorioServer(root_files=self.ROOT) as srv:
            r = srv.raw(b"GET /a%20b HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(r.status, 301)
            self.assertEqual(r.header("Location"), "/a%20b/")


if __name__ == "__main__":
    H.main()
