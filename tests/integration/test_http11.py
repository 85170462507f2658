"""HTTP/1.1 connection semantics: keep-alive, HTTP/1.0, Connection: close,
pipelining, requests split byte by byte, Expect: 100-continue, Host."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401

PLAINTEXT = b"Hello, World!"
JSON_BODY = b'{"message":"Hello, World!"}'


class Http11Base(H.ServerTestCase):
    server_args = ["--access-log", "off"]


class TestKeepAlive(Http11Base):
    def test_http11_keepalive_by_default(self):
        with self.server.connect() as c:
            for _ in range(3):
                c.send(H.simple_get("/plaintext"))
                r = c.read_response()
                self.assertEqual((r.status, r.body), (200, PLAINTEXT))
                self.assertFalse(r.has_token("Connection", "close"))
            self.assertFalse(c.wait_closed(0.3), "server closed a keep-alive connection")

    def test_http_client_reuses_connection(self):
        c = self.server.http()
        try:
            c.request("GET", "/plaintext")
            r = c.getresponse()
            r.read()
            sock = c.sock
            c.request("GET", "/json")
            r2 = c.getresponse()
            self.assertEqual(r2.read(), JSON_BODY)
            self.assertIs(c.sock, sock)
        finally:
            c.close()

    def test_connection_close_closes_after_response(self):
        with self.server.connect() as c:
            c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, PLAINTEXT))
            self.assertTrue(c.wait_closed(3), "no close after Connection: close")
            self.assertEqual(c.buf, b"")

    def test_connection_close_response_says_close(self):
        with self.server.connect() as c:
            c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            r = c.read_response()
        self.assertTrue(r.has_token("Connection", "close"), r.headers)

    def test_connection_header_case_insensitive(self):
        with self.server.connect() as c:
            c.send(b"GET /plaintext HTTP/1.1\r\nhost: x\r\nCONNECTION: Close\r\n\r\n")
            self.assertEqual(c.read_response().status, 200)
            self.assertTrue(c.wait_closed(3))

    def test_post_keepalive_then_get(self):
        with self.server.connect() as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
            self.assertEqual(c.read_response().body, b"abc")
            c.send(H.simple_get("/json"))
            self.assertEqual(c.read_response().body, JSON_BODY)


class TestHttp10(Http11Base):
    def test_http10_closes_by_default(self):
        with self.server.connect() as c:
            c.send(b"GET /plaintext HTTP/1.0\r\n\r\n")
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, PLAINTEXT))
            self.assertTrue(c.wait_closed(3), "HTTP/1.0 connection stayed open")

    def test_http10_with_host_closes_by_default(self):
        with self.server.connect() as c:
            c.send(b"GET /json HTTP/1.0\r\nHost: x\r\n\r\n")
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, JSON_BODY))
            self.assertTrue(c.wait_closed(3))

    def test_http10_keepalive_header_keeps_connection(self):
        with self.server.connect() as c:
            for _ in range(2):
                c.send(b"GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                r = c.read_response()
                self.assertEqual((r.status, r.body), (200, PLAINTEXT))
            self.assertFalse(c.wait_closed(0.3))

    def test_http10_without_host_is_ok(self):
        r = self.server.raw(b"GET /plaintext HTTP/1.0\r\n\r\n")
        self.assertEqual(r.status, 200)

    def test_http10_post_echo(self):
        with self.server.connect() as c:
            c.send(b"POST /echo HTTP/1.0\r\nContent-Length: 4\r\n\r\ndata")
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"data"))
            self.assertTrue(c.wait_closed(3))


class TestPipelining(Http11Base):
    def test_pipelined_gets_in_order(self):
        reqs = b"".join(H.simple_get(p) for p in ("/plaintext", "/json", "/plaintext", "/nope"))
        with self.server.connect() as c:
            c.send(reqs)
            rs = H.read_all_responses(c, 4)
        self.assertEqual([r.status for r in rs], [200, 200, 200, 404])
        self.assertEqual(rs[0].body, PLAINTEXT)
        self.assertEqual(rs[1].body, JSON_BODY)
        self.assertEqual(rs[2].body, PLAINTEXT)

    def test_pipelined_mixed_methods_in_order(self):
        reqs = (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst"
                b"HEAD /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"
                b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"6\r\nsecond\r\n0\r\n\r\n"
                b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n")
        with self.server.connect() as c:
            c.send(reqs)
            rs = H.read_all_responses(c, 4, head_indexes=(1,))
        self.assertEqual([r.status for r in rs], [200, 200, 200, 200])
        self.assertEqual(rs[0].body, b"first")
        self.assertEqual(rs[1].header("Content-Length"), "13")
        self.assertEqual(rs[2].body, b"second")
        self.assertEqual(rs[3].body, JSON_BODY)

    def test_pipelined_slow_then_fast_stays_ordered(self):
        # slow on any machine: a hash of about half a second here
        n = H.calibrate_hash_iterations(self.server, seconds=0.5)
        reqs = H.hash_request(n, b"pw") + H.simple_get("/plaintext")
        with self.server.connect(timeout=60) as c:
            c.send(reqs)
            rs = H.read_all_responses(c, 2, timeout=60)
        self.assertEqual(rs[0].body.decode(), H.pbkdf2_hex(b"pw", n))
        self.assertEqual(rs[1].body, PLAINTEXT)

    def test_many_pipelined_requests(self):
        n = 50
        with self.server.connect(timeout=10) as c:
            c.send(b"".join(H.simple_get("/plaintext" if i % 2 else "/json") for i in range(n)))
            rs = H.read_all_responses(c, n, timeout=10)
        for i, r in enumerate(rs):
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, PLAINTEXT if i % 2 else JSON_BODY)

    def test_pipelined_last_connection_close(self):
        reqs = (H.simple_get("/plaintext")
                + b"GET /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                + H.simple_get("/plaintext"))
        with self.server.connect() as c:
            c.send(reqs)
            rs = H.read_all_responses(c, 2)
            self.assertEqual([r.status for r in rs], [200, 200])
            self.assertTrue(c.wait_closed(3))
            self.assertEqual(c.buf, b"", "response after Connection: close")


class TestSplitRequests(Http11Base):
    def test_get_sent_byte_by_byte(self):
        with self.server.connect() as c:
            c.send_slowly(H.simple_get("/plaintext"), delay=0.003)
            r = c.read_response()
        self.assertEqual((r.status, r.body), (200, PLAINTEXT))

    def test_post_sent_byte_by_byte(self):
        req = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
        with self.server.connect() as c:
            c.send_slowly(req, delay=0.003)
            r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b"hello world"))

    def test_chunked_post_sent_byte_by_byte(self):
        req = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3\r\nabc\r\na\r\n0123456789\r\n0\r\n\r\n")
        with self.server.connect() as c:
            c.send_slowly(req, delay=0.003)
            r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b"abc0123456789"))

    def test_head_split_at_crlf_boundaries(self):
        with self.server.connect() as c:
            for part in (b"GET /json HTTP/1.1\r", b"\nHost: x\r\n", b"\r", b"\n"):
                c.send(part)
                time.sleep(0.05)
            r = c.read_response()
        self.assertEqual((r.status, r.body), (200, JSON_BODY))

    def test_second_request_byte_by_byte_on_keepalive(self):
        with self.server.connect() as c:
            c.send(H.simple_get("/plaintext"))
            self.assertEqual(c.read_response().status, 200)
            c.send_slowly(H.simple_get("/json"), delay=0.003)
            self.assertEqual(c.read_response().body, JSON_BODY)


class TestExpectContinue(Http11Base):
    def test_expect_100_continue_before_final_response(self):
        with self.server.connect() as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                   b"Expect: 100-continue\r\n\r\n")
            interim = c.read_response(timeout=3)
            self.assertEqual(interim.status, 100)
            self.assertTrue(interim.raw_head.startswith(b"HTTP/1.1 100 Continue"),
                            interim.raw_head)
            c.send(b"hello")
            final = c.read_response()
        self.assertEqual((final.status, final.body), (200, b"hello"))

    def test_expect_100_continue_header_case_insensitive(self):
        with self.server.connect() as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                   b"expect: 100-Continue\r\n\r\n")
            self.assertEqual(c.read_response(timeout=3).status, 100)
            c.send(b"ok")
            self.assertEqual(c.read_response().body, b"ok")

    def test_expect_100_continue_then_keepalive(self):
        with self.server.connect() as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                   b"Expect: 100-continue\r\n\r\n")
            self.assertEqual(c.read_response(timeout=3).status, 100)
            c.send(b"one")
            self.assertEqual(c.read_response().body, b"one")
            c.send(H.simple_get("/plaintext"))
            self.assertEqual(c.read_response().body, PLAINTEXT)

    def test_no_100_continue_without_expect(self):
        with self.server.connect() as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n")
            self.assertEqual(c.recv_for(0.3), b"")
            c.send(b"abc")
            r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b"abc"))

    @unittest.skipUnless(H.have_curl(), "curl not installed")
    def test_curl_expect_100_continue(self):
        p = H.curl("-i", "-H", "Expect: 100-continue", "--data-binary", "curl body",
                   self.server.url("/echo"))
        self.assertEqual(p.returncode, 0, p.stderr)
        heads, body = H.parse_curl_i(p.stdout)
        self.assertEqual([h.status for h in heads], [100, 200])
        self.assertEqual(body, b"curl body")


class TestHost(Http11Base):
    def test_http11_without_host_400(self):
        with self.server.connect() as c:
            c.send(b"GET /plaintext HTTP/1.1\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 400)
            self.assertTrue(c.wait_closed(3), "no close after 400")

    def test_http11_post_without_host_400(self):
        r = self.server.raw(b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")
        self.assertEqual(r.status, 400)

    def test_header_names_case_insensitive(self):
        r = self.server.raw(b"POST /echo HTTP/1.1\r\nHOST: x\r\ncontent-LENGTH: 4\r\n\r\nabcd")
        self.assertEqual((r.status, r.body), (200, b"abcd"))


if __name__ == "__main__":
    H.main()
