"""The PROXY protocol on a listener configured for it: the header says who
the client is (access log, per-address limit); without one the connection
is closed without an answer; a listener not configured for it treats the
header as a bad request."""

import os
import socket
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402

setUpModule = H.setUpModule
DEADLINE = 30.0
REQ = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"


def v2_header(client, port, dst="10.0.0.1", dport=80):
    body = socket.inet_aton(client) + socket.inet_aton(dst) + struct.pack("!HH", port, dport)
    return (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) +
            body)


class ProxyTestCase(H.ServerTestCase):
    server_args = ["--access-log", "-"]
    server_kwargs = {"listen": False}

    @classmethod
    def setUpClass(cls):
        # A port held by a socket that never listens (SO_REUSEADDR on both
        # sides: corio can still listen on it), so nobody else takes it.
        cls.reserved = socket.socket()
        cls.reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        cls.reserved.bind((H.HOST, 0))
        cls.port = cls.reserved.getsockname()[1]
        cls.server_config = {
            "listen": [{"address": "%s:%d" % (H.HOST, cls.port), "proxy_protocol": True}],
            "limits": {"max_connections_per_ip": 1},
        }
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.reserved.close()

    def exchange(self, data, chunks=1):
        """Sends data (in that many pieces) and reads until the server
        closes or answers; the bytes received."""
        with socket.create_connection((H.HOST, self.port), timeout=DEADLINE) as s:
            step = max(1, len(data) // chunks)
            for i in range(0, len(data), step):
                s.sendall(data[i:i + step])
            got = b""
            while b"Hello, World!" not in got:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            return got


class TestProxyProtocol(ProxyTestCase):
    def test_v1_header_names_the_client_in_the_access_log(self):
        got = self.exchange(b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\n" + REQ)
        self.assertTrue(got.startswith(b"HTTP/1.1 200 OK"), got)
        self.server.wait_for_log(r'^203\.0\.113\.7 - - \[.*\] "GET /plaintext HTTP/1\.1" 200',
                                 timeout=DEADLINE)

    def test_v2_header_split_into_bytes(self):
        got = self.exchange(v2_header("198.51.100.9", 4444) + REQ, chunks=60)
        self.assertTrue(got.startswith(b"HTTP/1.1 200 OK"), got)
        self.server.wait_for_log(r'^198\.51\.100\.9 - - ', timeout=DEADLINE)

    def test_no_header_is_closed_without_an_answer(self):
        self.assertEqual(self.exchange(REQ), b"")

    def test_per_address_limit_counts_the_client_not_the_balancer(self):
        """Two connections from the same claimed client: the second is over
        limits.max_connections_per_ip (1) and closed; another client on a
        third connection (the same balancer address) is served."""
        hdr = b"PROXY TCP4 192.0.2.50 10.0.0.1 1000 80\r\n"
        first = socket.create_connection((H.HOST, self.port), timeout=DEADLINE)
        try:
            first.sendall(hdr + REQ)
            got = b""
            while b"Hello, World!" not in got:
                got += first.recv(4096)  # served, and kept open
            self.assertEqual(self.exchange(hdr + REQ), b"")
            other = self.exchange(b"PROXY TCP4 192.0.2.51 10.0.0.1 1000 80\r\n" + REQ)
            self.assertTrue(other.startswith(b"HTTP/1.1 200 OK"), other)
        finally:
            first.close()


class TestPlainListener(H.ServerTestCase):
    def test_a_proxy_header_is_a_bad_request_where_not_configured(self):
        with self.server.connect(timeout=DEADLINE) as c:
            c.send(b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\n" + REQ)
            self.assertEqual(c.read_response(timeout=DEADLINE).status, 400)


if __name__ == "__main__":
    H.main()
