"""The status page's server side: GET /status.json (the snapshot), GET
/ws/status (one snapshot a second to every viewer, on every worker), GET
/status (the page with the snapshot in it, which nothing a peer says can
break out of: every "<" of it is written \u003c), the loop's lag and the slow-handler reports in the
snapshot, and admin_listen. The page in a real browser, against a
3-member cluster: test_status_page.py."""

import json
import os
import re
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402

setUpModule = H.setUpModule

DEADLINE = 30.0  # seconds for anything the test waits on
CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"]


def get_json(server, path, port=None):
    if port is None:
        st, _, body = server.request("GET", path, timeout=DEADLINE)
    else:
        st, body = get_on(port, path)
    assert st == 200, (path, st, body)
    return json.loads(body)


def get_on(port, path):
    return H.get_on_port(port, path, timeout=DEADLINE)


def ws_read_text(sock, timeout):
    """The next text message (unfragmented, unmasked: the server's frames),
    skipping pings. TimeoutError past the deadline."""
    sock.settimeout(timeout)

    def exact(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    while True:
        b0, b1 = exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", exact(8))[0]
        payload = exact(n)
        if b0 & 0x0F == 1:
            assert b0 & 0x80, "a snapshot comes in one frame"
            return payload.decode()
        if b0 & 0x0F == 8:
            raise ConnectionError("closed: %r" % payload)


def check_snapshot(t, s, workers=1):
    """The fields of the snapshot's contract, with their types."""
    for k in ("name", "version", "id", "time", "uptime_s", "workers", "cluster", "connections",
              "requests", "bytes", "pool", "loops", "series", "slow"):
        t.assertIn(k, s)
    t.assertEqual((s["name"], s["workers"]), ("corio", workers))
    t.assertRegex(s["id"], r"^[0-9a-f]{32}$")
    t.assertLess(abs(s["time"] - time.time()), 60)
    t.assertGreaterEqual(s["uptime_s"], 0)
    t.assertEqual(set(s["requests"]["by_class"]), set(CLASSES))
    t.assertEqual(set(s["requests"]["per_s"]), set(CLASSES))
    t.assertEqual(s["requests"]["total"], sum(s["requests"]["by_class"].values()))
    for k in ("in", "out", "in_per_s", "out_per_s"):
        t.assertGreaterEqual(s["bytes"][k], 0)
    for k in ("threads", "queued", "busy"):
        t.assertGreaterEqual(s["pool"][k], 0)
    t.assertEqual([lp["worker"] for lp in s["loops"]], list(range(workers)))
    for lp in s["loops"]:
        t.assertLessEqual(lp["lag_ms"]["p50"], lp["lag_ms"]["p99"])
        t.assertLessEqual(lp["lag_ms"]["p99"], lp["lag_ms"]["max"])
    series = s["series"]
    n = len(series["t"])
    t.assertTrue(1 <= n <= 61, n)
    for k in ("lag_max_ms", "drift_ms", "requests_per_s"):
        t.assertEqual(len(series[k]), n, k)
    t.assertEqual(series["t"], sorted(series["t"]))
    t.assertIsInstance(s["slow"], list)
    t.assertIn(s["cluster"]["state"], ("standalone", "searching", "found", "failed"))


class TestSnapshot(H.ServerTestCase):
    server_args = ["--access-log", "off", "--workers", "2"]

    def test_status_json_has_the_contract_s_fields(self):
        s = get_json(self.server, "/status.json")
        check_snapshot(self, s, workers=2)
        st, _, body = self.server.request("GET", "/server_id")
        self.assertEqual(json.loads(body), s["id"])
        self.assertEqual(s["cluster"]["state"], "standalone")

    def test_requests_move_the_counters(self):
        before = get_json(self.server, "/status.json")["requests"]["by_class"]
        for _ in range(10):
            self.server.request("GET", "/plaintext")
        for _ in range(3):
            self.server.request("GET", "/no-such-thing")

        def moved():
            after = get_json(self.server, "/status.json")["requests"]["by_class"]
            # the snapshots' own requests count too: at least what was sent
            self.assertGreaterEqual(after["2xx"] - before["2xx"], 10)
            self.assertEqual(after["4xx"] - before["4xx"], 3)
        H.until(moved, timeout=DEADLINE, what="the counters of 10 2xx and 3 4xx")

    def test_ws_status_sends_a_snapshot_each_second_on_every_worker(self):
        # enough viewers that both workers have some (the kernel spreads them)
        socks = [H.ws_connect(("127.0.0.1", self.server.port), b"/ws/status", timeout=DEADLINE)
                 for _ in range(8)]
        try:
            for s in socks:
                first = json.loads(ws_read_text(s, DEADLINE))
                second = json.loads(ws_read_text(s, DEADLINE))
                check_snapshot(self, second, workers=2)
                # one a second (the ticker's clock, not the test's)
                self.assertAlmostEqual(second["time"] - first["time"], 1.0, delta=0.5)
            snap = get_json(self.server, "/status.json")
            self.assertGreaterEqual(snap["connections"]["ws"], 8)
        finally:
            for s in socks:
                s.close()

    def test_status_is_the_page_with_the_snapshot_in_it(self):
        st, headers, body = self.server.request("GET", "/status")
        self.assertEqual(st, 200)
        self.assertTrue(headers["content-type"].startswith("text/html"), headers)
        self.assertIn("default-src 'none'", headers["content-security-policy"])
        page = body.decode()
        self.assertNotIn("__CORIO_SNAPSHOT__", page)
        m = re.search(r'<script id="snapshot" type="application/json">(.*?)</script>', page, re.S)
        self.assertIsNotNone(m, "the snapshot's element")
        check_snapshot(self, json.loads(m.group(1)), workers=2)
        # nothing to load from elsewhere
        self.assertIsNone(re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', page), page[:200])


class TestSlowAndLag(H.DebugServerTestCase):
    """A handler that keeps the loop 300 ms (CORIO_DEBUG's /debug/block)
    shows in the snapshot: a slow-handler report, and the lag."""

    server_config = {"debug": {"slow_ms": 100}, "log": {"access": "off"}}

    def test_a_blocked_loop_shows_as_lag_and_a_slow_handler(self):
        st, _, _ = self.server.request("GET", "/debug/block?ms=300", timeout=DEADLINE)
        self.assertEqual(st, 200)

        def seen():
            s = get_json(self.server, "/status.json")
            slow = [r for r in s["slow"] if r["task"] == "GET /debug/block"]
            self.assertTrue(slow, s["slow"])
            self.assertGreaterEqual(slow[-1]["ms"], 290)
            self.assertEqual(slow[-1]["worker"], 0)
            # a heartbeat due during the block fired late by at least 200 ms
            # (shown as its log2 bucket's upper bound)
            self.assertGreaterEqual(max(s["series"]["lag_max_ms"]), 100, s["series"])
            self.assertGreaterEqual(s["loops"][0]["lag_ms"]["max"], 100, s["loops"])
            return s
        H.until(seen, timeout=DEADLINE, what="the blocked loop in the snapshot")


def answering_handler(body):
    def handle(conn):
        if H.read_head(conn):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (len(body), body))
        conn.close()
    return handle


class TestPeerTextStaysText(unittest.TestCase):
    """A peer's answer is shown on the page, and a peer may answer anything:
    "</script>" in it must not end the page's script element."""

    def test_a_peer_answering_a_script_end_tag_cannot_break_out(self):
        evil = b"</script><script>alert(1)</script>"
        peer = H.Acceptor(H.listening_socket(), answering_handler(evil))
        try:
            with H.CorioServer(args=["--access-log", "off", "--server",
                                     "127.0.0.1:%d" % peer.port]) as server:
                def answered():
                    s = get_json(server, "/status.json")
                    self.assertIn("</script>", s["cluster"]["peers"][0]["answer"] or "")
                H.until(answered, timeout=DEADLINE, what="the peer's answer in the snapshot")
                st, _, body = server.request("GET", "/status")
                page = body.decode()
                self.assertEqual(st, 200)
                self.assertNotIn("<script>alert(1)", page)
                self.assertNotIn("</script><script>", page)
                self.assertIn(r"\u003c/script>\u003cscript>alert(1)\u003c/script>", page)
                m = re.search(r'<script id="snapshot" type="application/json">(.*?)</script>',
                              page, re.S)
                s = json.loads(m.group(1))  # "\u003c" is "<" to JSON
                self.assertIn("</script>", s["cluster"]["peers"][0]["answer"])
        finally:
            peer.close()


class TestAdminListen(H.ServerTestCase):
    """With admin_listen, the status page and its feeds are the operators':
    on the admin address only, as /metrics is."""

    server_args = ["--access-log", "off", "--admin-listen", "127.0.0.1:0"]

    def admin_port(self):
        line = self.server.wait_for_log(r"listening \(/metrics, /cluster, /status\) on 127\.0\.0\.1:(\d+)")[0]
        return int(re.search(r":(\d+)$", line).group(1))

    def test_on_the_admin_address_only(self):
        admin = self.admin_port()
        for path in ("/status", "/status.json"):
            self.assertEqual(get_on(admin, path)[0], 200, path)
            self.assertEqual(self.server.request("GET", path)[0], 404, path)
        s = H.ws_connect(("127.0.0.1", admin), b"/ws/status", timeout=DEADLINE)
        try:
            check_snapshot(self, json.loads(ws_read_text(s, DEADLINE)))
        finally:
            s.close()
        with self.assertRaises(OSError):
            H.ws_connect(("127.0.0.1", self.server.port), b"/ws/status", timeout=DEADLINE)


if __name__ == "__main__":
    H.main()
