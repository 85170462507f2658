"""Built-in routes (/plaintext, /json, /echo, /hash), HEAD, 404/405 and the
headers every response carries. Uses curl, http.client and raw sockets."""

import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401

PLAINTEXT = b"Hello, World!"
JSON_BODY = b'{"message":"Hello, World!"}'


class RoutesBase(H.ServerTestCase):
    server_args = ["--access-log", "off"]

    def raw(self, data, head=False):
        return self.server.raw(data if isinstance(data, bytes) else data.encode(), head=head)

    def assertAllowed(self, resp_allow, expected):
        self.assertIsNotNone(resp_allow, "405 without an Allow header")
        got = {m.strip().upper() for m in resp_allow.split(",") if m.strip()}
        self.assertEqual(got, set(expected))


@unittest.skipUnless(H.have_curl(), "curl not installed")
class TestRoutesWithCurl(RoutesBase):
    def curl_i(self, *args):
        p = H.curl("-i", *args)
        self.assertEqual(p.returncode, 0, p.stderr)
        heads, body = H.parse_curl_i(p.stdout)
        return heads[-1], body

    def test_curl_plaintext(self):
        r, body = self.curl_i(self.server.url("/plaintext"))
        self.assertEqual(r.status, 200)
        self.assertEqual(H.content_type_base(r.header("Content-Type")), "text/plain")
        self.assertEqual(body, PLAINTEXT)
        self.assertEqual(r.header("Content-Length"), "13")

    def test_curl_json(self):
        r, body = self.curl_i(self.server.url("/json"))
        self.assertEqual(r.status, 200)
        self.assertEqual(H.content_type_base(r.header("Content-Type")), "application/json")
        self.assertEqual(body, JSON_BODY)
        self.assertEqual(json.loads(body), {"message": "Hello, World!"})

    def test_curl_echo_content_length_body(self):
        r, body = self.curl_i("--data-binary", "ping pong", self.server.url("/echo"))
        self.assertEqual(r.status, 200)
        self.assertEqual(body, b"ping pong")

    def test_curl_echo_chunked_body(self):
        data = os.urandom(3000)
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            r, body = self.curl_i("-H", "Transfer-Encoding: chunked",
                                  "--data-binary", "@" + f.name, self.server.url("/echo"))
        self.assertEqual(r.status, 200)
        self.assertEqual(body, data)

    def test_curl_hash(self):
        r, body = self.curl_i("--data-binary", "secret", self.server.url("/hash?iterations=1000"))
        self.assertEqual(r.status, 200)
        self.assertEqual(H.content_type_base(r.header("Content-Type")), "text/plain")
        self.assertEqual(body.decode(), H.pbkdf2_hex(b"secret", 1000))

    def test_curl_head_plaintext(self):
        r, body = self.curl_i("-I", self.server.url("/plaintext"))
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Length"), "13")
        self.assertEqual(body, b"")

    def test_curl_unknown_path_404(self):
        r, _ = self.curl_i(self.server.url("/no/such/thing"))
        self.assertEqual(r.status, 404)

    def test_curl_keepalive_reuses_connection(self):
        p = H.curl("-v", "-o", "/dev/null", "-o", "/dev/null",
                   self.server.url("/plaintext"), self.server.url("/json"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"Re-using existing connection", p.stderr)


class TestPlaintextAndJson(RoutesBase):
    def test_plaintext_body_and_type(self):
        st, h, body = self.server.request("GET", "/plaintext")
        self.assertEqual(st, 200)
        self.assertEqual(body, PLAINTEXT)
        self.assertEqual(H.content_type_base(h["Content-Type"]), "text/plain")
        self.assertEqual(h["Content-Length"], "13")

    def test_json_body_and_type(self):
        st, h, body = self.server.request("GET", "/json")
        self.assertEqual(st, 200)
        self.assertEqual(body, JSON_BODY)
        self.assertEqual(H.content_type_base(h["Content-Type"]), "application/json")
        self.assertEqual(h["Content-Length"], str(len(JSON_BODY)))

    def test_plaintext_with_query_string(self):
        st, _, body = self.server.request("GET", "/plaintext?x=1&y=2")
        self.assertEqual((st, body), (200, PLAINTEXT))

    def test_date_header_is_imf_fixdate(self):
        r = self.raw(H.simple_get("/plaintext"))
        self.assertTrue(H.is_imf_fixdate(r.header("Date")), r.header("Date"))

    def test_server_header_present(self):
        r = self.raw(H.simple_get("/json"))
        self.assertTrue(r.header("Server"))

    def test_single_date_and_server_header(self):
        r = self.raw(H.simple_get("/plaintext"))
        self.assertEqual(len(r.header_all("Date")), 1)
        self.assertEqual(len(r.header_all("Server")), 1)

    def test_response_status_line_is_http11(self):
        r = self.raw(H.simple_get("/plaintext"))
        self.assertEqual(r.version, "HTTP/1.1")
        self.assertEqual(r.status, 200)


class TestEcho(RoutesBase):
    def test_echo_content_length(self):
        st, _, body = self.server.request("POST", "/echo", body=b"hello echo")
        self.assertEqual((st, body), (200, b"hello echo"))

    def test_echo_all_byte_values(self):
        data = bytes(range(256)) * 4
        st, _, body = self.server.request("POST", "/echo", body=data)
        self.assertEqual((st, body), (200, data))

    def test_echo_empty_body(self):
        st, _, body = self.server.request("POST", "/echo", body=b"",
                                          headers={"Content-Length": "0"})
        self.assertEqual((st, body), (200, b""))

    def test_echo_large_body(self):
        data = os.urandom(512 * 1024)
        st, _, body = self.server.request("POST", "/echo", body=data)
        self.assertEqual(st, 200)
        self.assertEqual(len(body), len(data))
        self.assertEqual(body, data)

    def test_echo_chunked_raw(self):
        req = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n")
        r = self.raw(req)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"hello world")

    def test_echo_chunked_http_client(self):
        def gen():
            yield b"abc"
            yield b"defgh"
            yield b"i" * 5000
        c = self.server.http()
        try:
            c.request("POST", "/echo", body=gen(), encode_chunked=True,
                      headers={"Transfer-Encoding": "chunked"})
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.read(), b"abcdefgh" + b"i" * 5000)
        finally:
            c.close()


class TestEchoStreams(RoutesBase):
    """/echo streams: a large body is echoed while it arrives, over a
    connection that stays open."""

    def test_large_echoes_keep_the_connection(self):
        with H.RawConn(self.server.host, self.server.port, timeout=10) as c:
            for i in range(3):
                data = bytes([65 + i]) * 300000
                c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                       % len(data) + data)
                r = c.read_response()
                self.assertEqual((r.status, r.body), (200, data))
                self.assertIsNone(r.header("Connection"))

    def test_a_body_past_the_limit_cuts_the_started_echo(self):
        """Past max_body_bytes (1 MiB) in a chunked body, after the echo has
        started: the 200 is cut short and the connection closes after it,
        without a reset (the client reads everything that was sent)."""
        with H.RawConn(self.server.host, self.server.port, timeout=10) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            piece = b"%x\r\n%s\r\n" % (65536, b"z" * 65536)
            for _ in range(20):  # 1.25 MiB
                c.send(piece)
            data = c.read_to_eof()
            self.assertFalse(c.reset)
            self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data[:100])
            self.assertFalse(data.endswith(b"\r\n0\r\n\r\n"))  # no last chunk: cut
            self.assertGreaterEqual(data.count(b"z"), 1 << 20)


class TestEchoLimit(H.ServerTestCase):
    server_args = ["--access-log", "off"]
    server_config = {"limits": {"max_body_bytes": 4096}}

    def test_chunked_body_past_the_limit_is_413_not_a_reset(self):
        """A streamed request answered before its body was read lingers, so
        that a client still sending reads the 413 rather than a reset (the
        unit test streamed_body_left_unread_closes_after_the_response checks
        the half-close itself)."""
        with H.RawConn(self.server.host, self.server.port, timeout=10) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            piece = b"%x\r\n%s\r\n" % (1000, b"z" * 1000)
            for _ in range(2000):  # 2 MB, sent on after the answer
                c.send(piece)
            r = c.read_response()
            self.assertEqual(r.status, 413)
            self.assertTrue(r.has_token("Connection", "close"))


class TestServerIdAndProbes(RoutesBase):
    """/server_id (the peer-ID protocol's question), /healthz, /readyz."""

    def test_server_id_is_32_hex_characters_as_json_stable_for_the_process(self):
        st, hdrs, body = self.server.request("GET", "/server_id")
        self.assertEqual(st, 200)
        self.assertEqual(hdrs.get("Content-Type"), "application/json")
        sid = json.loads(body)
        self.assertRegex(sid, r"^[0-9a-f]{32}$")
        self.assertEqual(json.loads(self.server.request("GET", "/server_id")[2]), sid)
        self.server.wait_for_log(r"ready \(id %s," % sid)

    def test_each_process_draws_a_new_id(self):
        ids = set()
        for _ in range(3):
            with H.CorioServer(args=["--access-log", "off"]) as other:
                ids.add(json.loads(other.request("GET", "/server_id")[2]))
        ids.add(json.loads(self.server.request("GET", "/server_id")[2]))
        self.assertEqual(len(ids), 4)

    def test_healthz_and_readyz_of_a_standalone_server(self):
        self.assertEqual(self.server.request("GET", "/healthz")[::2], (200, b"ok\n"))
        self.assertEqual(self.server.request("GET", "/readyz")[::2], (200, b"ready\n"))
        self.assertEqual(self.server.request("HEAD", "/healthz")[0], 200)


class TestHash(RoutesBase):
    def test_hash_explicit_iterations(self):
        st, h, body = self.server.request("POST", "/hash?iterations=5000", body=b"password")
        self.assertEqual(st, 200)
        self.assertEqual(H.content_type_base(h["Content-Type"]), "text/plain")
        self.assertEqual(body.decode(), H.pbkdf2_hex(b"password", 5000))

    def test_hash_default_iterations_is_100000(self):
        st, _, body = self.server.request("POST", "/hash", body=b"default", timeout=30)
        self.assertEqual(st, 200)
        self.assertEqual(body.decode(), H.pbkdf2_hex(b"default", 100000))

    def test_hash_one_iteration(self):
        st, _, body = self.server.request("POST", "/hash?iterations=1", body=b"x")
        self.assertEqual((st, body.decode()), (200, H.pbkdf2_hex(b"x", 1)))

    def test_hash_empty_body(self):
        st, _, body = self.server.request("POST", "/hash?iterations=10", body=b"",
                                          headers={"Content-Length": "0"})
        self.assertEqual((st, body.decode()), (200, H.pbkdf2_hex(b"", 10)))

    def test_hash_binary_body(self):
        data = bytes(range(256))
        st, _, body = self.server.request("POST", "/hash?iterations=100", body=data)
        self.assertEqual((st, body.decode()), (200, H.pbkdf2_hex(data, 100)))

    def test_hash_output_is_lowercase_hex_64(self):
        _, _, body = self.server.request("POST", "/hash?iterations=10", body=b"AbC")
        self.assertRegex(body.decode(), r"^[0-9a-f]{64}$")

    def assert_iterations_rejected(self, value):
        st, _, _ = self.server.request("POST", "/hash?iterations=" + value, body=b"x")
        self.assertEqual(st, 400)

    def test_hash_iterations_zero_400(self):
        self.assert_iterations_rejected("0")

    def test_hash_iterations_negative_400(self):
        self.assert_iterations_rejected("-5")

    def test_hash_iterations_not_a_number_400(self):
        self.assert_iterations_rejected("lots")

    def test_hash_iterations_fraction_400(self):
        self.assert_iterations_rejected("1.5")

    def test_hash_iterations_empty_400(self):
        self.assert_iterations_rejected("")

    def test_hash_iterations_above_max_400(self):
        self.assert_iterations_rejected("10000001")

    def test_hash_iterations_huge_400(self):
        self.assert_iterations_rejected("99999999999999999999999")


class TestHead(RoutesBase):
    def test_head_plaintext_headers_without_body(self):
        with self.server.connect() as c:
            c.send(b"HEAD /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"
                   b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n")
            head = c.read_response(head=True)
            get = c.read_response()
        self.assertEqual(head.status, 200)
        self.assertEqual(head.header("Content-Length"), "13")
        self.assertEqual(H.content_type_base(head.header("Content-Type")), "text/plain")
        # had the HEAD response carried a body, the next response would not parse
        self.assertEqual(get.status, 200)
        self.assertEqual(get.body, JSON_BODY)

    def test_head_json_headers_match_get(self):
        g = self.raw(H.simple_get("/json"))
        h = self.raw(b"HEAD /json HTTP/1.1\r\nHost: x\r\n\r\n", head=True)
        self.assertEqual(h.status, 200)
        self.assertEqual(h.header("Content-Length"), g.header("Content-Length"))
        self.assertEqual(h.header("Content-Type"), g.header("Content-Type"))
        self.assertTrue(H.is_imf_fixdate(h.header("Date")))
        self.assertTrue(h.header("Server"))

    def test_head_response_has_no_body_bytes(self):
        with self.server.connect() as c:
            c.send(b"HEAD /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            r = c.read_response(head=True)
            rest = c.read_to_eof(timeout=5)
        self.assertEqual(r.status, 200)
        self.assertEqual(rest, b"")


class TestMethodsAndNotFound(RoutesBase):
    def test_post_plaintext_405_allow_get_head(self):
        r = self.raw(b"POST /plaintext HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(r.status, 405)
        self.assertAllowed(r.header("Allow"), {"GET", "HEAD"})

    def test_delete_json_405_allow_get_head(self):
        r = self.raw(b"DELETE /json HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(r.status, 405)
        self.assertAllowed(r.header("Allow"), {"GET", "HEAD"})

    def test_get_echo_405_allow_post(self):
        r = self.raw(H.simple_get("/echo"))
        self.assertEqual(r.status, 405)
        self.assertAllowed(r.header("Allow"), {"POST"})

    def test_get_hash_405_allow_post(self):
        r = self.raw(H.simple_get("/hash"))
        self.assertEqual(r.status, 405)
        self.assertAllowed(r.header("Allow"), {"POST"})

    def test_head_echo_405(self):
        r = self.raw(b"HEAD /echo HTTP/1.1\r\nHost: x\r\n\r\n", head=True)
        self.assertEqual(r.status, 405)
        self.assertAllowed(r.header("Allow"), {"POST"})

    def test_put_plaintext_405(self):
        st, h, _ = self.server.request("PUT", "/plaintext", body=b"x")
        self.assertEqual(st, 405)
        self.assertAllowed(h["Allow"], {"GET", "HEAD"})

    def test_unknown_path_404(self):
        st, _, _ = self.server.request("GET", "/does-not-exist")
        self.assertEqual(st, 404)

    def test_unknown_path_post_404(self):
        st, _, _ = self.server.request("POST", "/does-not-exist", body=b"x")
        self.assertEqual(st, 404)

    def test_root_path_404_without_document_root(self):
        st, _, _ = self.server.request("GET", "/")
        self.assertEqual(st, 404)

    def test_route_prefix_is_not_a_match(self):
        st, _, _ = self.server.request("GET", "/plaintextx")
        self.assertEqual(st, 404)

    def test_error_responses_have_date_and_server(self):
        for req in (H.simple_get("/nope"), H.simple_get("/echo")):
            r = self.raw(req)
            self.assertIn(r.status, (404, 405))
            self.assertTrue(H.is_imf_fixdate(r.header("Date")), r)
            self.assertTrue(r.header("Server"), r)

    def test_405_keeps_connection_usable(self):
        with self.server.connect() as c:
            c.send(H.simple_get("/echo"))
            self.assertEqual(c.read_response().status, 405)
            c.send(H.simple_get("/plaintext"))
            r = c.read_response()
        self.assertEqual((r.status, r.body), (200, PLAINTEXT))

    def test_404_keeps_connection_usable(self):
        with self.server.connect() as c:
            c.send(H.simple_get("/nope"))
            self.assertEqual(c.read_response().status, 404)
            c.send(H.simple_get("/plaintext"))
            self.assertEqual(c.read_response().status, 200)


if __name__ == "__main__":
    H.main()
