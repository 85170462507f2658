"""The live status page (GET /status, /status.json, /ws/status) in a real
browser: headless Chromium (Debian's chromium, driven by playwright-core
from npm; tests/integration/node/status_page.js keeps the pages open and
reads them) against a 3-node cluster on loopback ports.

What the page shows is read as text from its DOM, as a script or a screen
reader would: the peers table (one row per entry of "servers", with the
peer's id, up/down, self, restarts), the discovery state, the request
counter, data-updated (the time of the snapshot shown) and data-live
(whether the WebSocket is open) on <body>. Node 0's page must show the
three peers with their ids and itself marked, its request counter move
after requests, node 2 down once stopped and up again, with a new id and
one restart, once restarted; all without console errors. Node 1 refuses
the page's WebSocket (websocket.origins names another origin): its page
still shows the snapshot it was served with, and says that live updates
are off. A node with admin_listen serves the three routes there only.

Ports are reserved as in test_discovery.py (a socket bound and never
listening holds each listed port, so a restarted node gets its port back).
No assertion depends on how fast the machine is: every wait polls an
observable state with a generous deadline.

A screenshot of node 0's page (1280x800) is saved into the build tree
(status-page.png beside CMakeCache.txt, or CORIO_STATUS_SCREENSHOT); the
path is printed. It is taken once the charts have 10 points (seconds), or
CORIO_STATUS_SCREENSHOT_POINTS (up to 60: a fuller minute, for README's
picture, tests/integration/status-page.png).

Without Chromium, node, npm or the packages the module exits 77 (skipped)."""

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
import node_clients as N  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401

DEADLINE = 60.0  # seconds for any state to be reached on a page (generous: a loaded machine)
SESSION_TIMEOUT = 280  # seconds for the whole browser session of a class
COMMAND_TIMEOUT = 90.0  # seconds for one command of the session (a page load, a screenshot)
FOREIGN_ORIGIN = "http://status-page-test.invalid"
SNAPSHOT_KEYS = {"name", "version", "id", "time", "uptime_s", "workers", "cluster",
                 "connections", "requests", "bytes", "pool", "loops", "series", "slow"}
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


def until(check, timeout=DEADLINE, what="the expected state"):
    return H.until(check, timeout=timeout, step=0.2, what=what)


get_json = H.get_json
server_id = H.server_id


def screenshot_path():
    p = os.environ.get("CORIO_STATUS_SCREENSHOT")
    if p:
        return os.path.abspath(p)
    b = N._build_dir_of(H.corio_bin()) if H.corio_bin() else None
    return os.path.join(b or tempfile.gettempdir(), "status-page.png")


class BrowserSession:
    """node status_page.js: one Chromium for the whole class; commands go in
    on its stdin, one JSON line each, and answers come back on its stdout."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="corio-chromium-")
        env = dict(os.environ, NODE_PATH=os.path.join(N.npm_dir(), "node_modules"))
        args = {"chromium": N.chromium_bin(), "user_data_dir": self.profile,
                "timeout_ms": SESSION_TIMEOUT * 1000}
        self.proc = subprocess.Popen(
            [N.node_bin(), os.path.join(N.NODE_SRC, "status_page.js"), json.dumps(args)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            start_new_session=True)
        self.lines = queue.Queue()
        self.stderr = []
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True,
                         args=(self.proc.stdout, self.lines.put, lambda: self.lines.put(None))
                         ).start()
        threading.Thread(target=self._read, daemon=True,
                         args=(self.proc.stderr, self.stderr.append, lambda: None)).start()
        start = self._answer(lambda m: m.get("event") == "start", COMMAND_TIMEOUT)
        if not start.get("ok"):
            self.close()
            raise N.ClientError("Chromium did not start: %s" % start.get("error"))
        self.browser = start.get("browser")

    @staticmethod
    def _read(stream, sink, eof):
        try:
            for raw in iter(stream.readline, b""):
                sink(raw.decode("utf-8", "replace").rstrip("\n"))
        except (OSError, ValueError):
            pass
        finally:
            eof()

    def _answer(self, match, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.01, left))
            except queue.Empty:
                raise N.ClientError("status_page.js: no answer within %.0f s; stderr: %s"
                                    % (timeout, "\n".join(self.stderr)[-3000:]))
            if line is None:
                raise N.ClientError("status_page.js ended (exit %s); stderr: %s"
                                    % (self.proc.poll(), "\n".join(self.stderr)[-3000:]))
            if not line.startswith("{"):
                continue
            msg = json.loads(line)
            if msg.get("event") == "timeout":
                raise N.ClientError("status_page.js: " + msg["error"])
            if match(msg):
                return msg

    def call(self, cmd, page=None, timeout=COMMAND_TIMEOUT, **kw):
        self.next_id += 1
        msg = dict(kw, cmd=cmd, id=self.next_id)
        if page is not None:
            msg["page"] = page
        try:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
            self.proc.stdin.flush()
        except OSError as e:
            raise N.ClientError("status_page.js is gone (%s); stderr: %s"
                                % (e, "\n".join(self.stderr)[-3000:]))
        ans = self._answer(lambda m: m.get("id") == msg["id"], timeout)
        if not ans.get("ok"):
            raise N.ClientError("%s on page %s failed: %s" % (cmd, page, ans.get("error")))
        return ans

    def open(self, page, url):
        return self.call("open", page, url=url, timeout_ms=int(COMMAND_TIMEOUT * 1000 / 2))

    def facts(self, page):
        return self.call("facts", page)["facts"]

    def logs(self, page):
        return self.call("logs", page)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.call("quit", timeout=30)
                self.proc.wait(timeout=30)
            except (N.ClientError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # node and Chromium's processes
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait(timeout=30)
        for s in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                s.close()
            except (OSError, ValueError):
                pass
        shutil.rmtree(self.profile, ignore_errors=True)



def ws_read_message(sock, timeout=DEADLINE):
    """The next text message of a WebSocket server (unmasked frames; pings
    and other control frames are skipped)."""
    sock.settimeout(timeout)
    buf = b""

    def need(n):
        nonlocal buf
        while len(buf) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError("the server closed the WebSocket")
            buf += chunk
        out, buf = buf[:n], buf[n:]
        return out

    parts = b""
    while True:
        b0, b1 = need(2)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(need(2), "big")
        elif n == 127:
            n = int.from_bytes(need(8), "big")
        payload = need(n)
        op = b0 & 0x0F
        if op >= 8:
            if op == 8:
                raise AssertionError("close frame: %r" % payload)
            continue
        parts += payload
        if b0 & 0x80:
            return parts.decode()


class ClusterPages(unittest.TestCase):
    """Three nodes listing each other; node 0 runs with CORIO_DEBUG=1 (for
    /debug/block), node 1 refuses WebSocket handshakes from the page's
    origin. Pages: n0 (the live one), n1 (refused), n2 (stopped and
    restarted under it)."""

    @classmethod
    def setUpClass(cls):
        cls.nodes = [None] * 3
        cls.closers = []
        cls.session = None
        try:
            cls._start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _start(cls):
        reserved = [H.Reserved() for _ in range(3)]
        cls.closers += [r.close for r in reserved]
        cls.ports = [r.port for r in reserved]
        cls.entries = ["127.0.0.1:%d" % p for p in cls.ports]
        cls.config = {"servers": cls.entries, "log": {"access": "off"},
                      "discovery": {"interval_ms": 200, "request_timeout_ms": 10000}}
        for i in range(3):
            cls.start_node(i)
        cls.ids = [server_id(n) for n in cls.nodes]
        for i in range(3):
            until(lambda: cls.check_converged(i), what="node %d's view of the cluster" % i)
        cls.session = BrowserSession()
        for i in range(3):
            cls.session.open("n%d" % i, cls.nodes[i].url("/status"))

    @classmethod
    def node_config(cls, i):
        cfg = json.loads(json.dumps(cls.config))
        if i == 1:
            cfg["websocket"] = {"origins": [FOREIGN_ORIGIN]}
        return cfg

    @classmethod
    def start_node(cls, i):
        env_debug = os.environ.get("CORIO_DEBUG")
        if i == 0:
            os.environ["CORIO_DEBUG"] = "1"  # /debug/block, for a slow handler
        if cls.nodes[i] is not None:
            cls.nodes[i].close()  # a stopped one: its temporary directory
        try:
            n = H.CorioServer(config=cls.node_config(i), listen=False,
                              args=["--listen", cls.entries[i]], startup_timeout=DEADLINE)
            cls.nodes[i] = n
            n.start()
        finally:
            if i == 0:
                if env_debug is None:
                    del os.environ["CORIO_DEBUG"]
                else:
                    os.environ["CORIO_DEBUG"] = env_debug
        return n

    @classmethod
    def check_converged(cls, i):
        """Node i found itself and sees the others up, in its latest
        snapshot (which the page it serves next will hold)."""
        v = get_json(cls.nodes[i], "/status.json")["cluster"]
        assert v["state"] == "found" and v["self"] == cls.entries[i], v
        got = [(p["name"], p["id"], p["up"]) for p in v["peers"]]
        assert got == [(e, sid, True) for e, sid in zip(cls.entries, cls.ids)], v

    @classmethod
    def tearDownClass(cls):
        if cls.session is not None:
            cls.session.close()
            cls.session = None
        for n in cls.nodes:
            if n is not None:
                n.close()
        for c in reversed(cls.closers):
            c()

    # -- helpers -----------------------------------------------------------

    def facts(self, page="n0"):
        f = self.session.facts(page)
        self.assertIsNone(f["render_error"], f)
        return f

    def wait_page(self, check, page="n0", what="the expected page", timeout=DEADLINE):
        """Polls the page's facts until check(facts) passes; returns them."""
        def once():
            f = self.facts(page)
            check(f)
            return f
        return until(once, timeout=timeout, what="%s on page %s" % (what, page))

    def assert_clean(self, page="n0", node=0):
        """No console errors, no page errors, no failed request; nothing
        loaded but the page, /status.json and /ws/status of its node."""
        logs = self.session.logs(page)
        self.assertEqual(logs["console_errors"], [], logs["console"])
        self.assertEqual(logs["page_errors"], [])
        self.assertEqual(logs["failed_requests"], [])
        base = "http://%s" % self.entries[node]
        self.assertLessEqual(set(logs["requests"]), {base + "/status", base + "/status.json"},
                             logs["requests"])
        self.assertLessEqual(set(logs["websockets"]), {"ws://%s/ws/status" % self.entries[node]},
                             logs["websockets"])
        return logs

    def assert_only_refused_websockets(self, page):
        logs = self.session.logs(page)
        self.assertEqual(logs["page_errors"], [])
        for e in logs["console_errors"]:
            self.assertRegex(e, r"^WebSocket connection to 'ws://127\.0\.0\.1:\d+/ws/status' failed",
                             logs["console"])
        return logs

    def peers_on(self, f):
        return [(p["row"], p["name"], p["id"], p["state"], p["self"]) for p in f["peers"]]

    # -- the tests ---------------------------------------------------------

    def test_node0_shows_three_peers_with_their_ids_and_itself(self):
        ids = [server_id(n) for n in self.nodes]  # node 2's may be a restarted one's

        def check(f):
            self.assertEqual(self.peers_on(f), [
                (self.entries[0], self.entries[0], ids[0], "up", "self"),
                (self.entries[1], self.entries[1], ids[1], "up", ""),
                (self.entries[2], self.entries[2], ids[2], "up", "")])
            self.assertEqual((f["discovery"], f["self"], f["node_id"], f["live"]),
                             ("found", self.entries[0], ids[0], "1"))
        f = self.wait_page(check, what="three peers up, node 0 self")
        self.assertEqual(f["peer_headers"],
                         ["entry", "peer id", "state", "is", "last seen", "restarts",
                          "last answer"])
        snap = get_json(self.nodes[0], "/status.json")
        self.assertEqual(f["version"], "%s %s" % (snap["name"], snap["version"]))
        self.assertEqual(f["workers"], str(snap["workers"]))
        self.assertEqual(len(f["loops"]), snap["workers"])
        self.assertEqual(f["aliases"], "none")
        self.assertEqual(f["live_aria"], "polite")
        self.assertTrue(f["live_text"].startswith("live"), f["live_text"])
        # this page's own WebSocket is one of the node's open ones
        self.wait_page(lambda f: self.assertGreaterEqual(int(f["conn_ws"]), 1),
                       what="a WebSocket connection counted")
        for key in ("uptime", "conn_http", "requests_total", "bytes_in", "bytes_out",
                    "pool_queued", "pool_busy"):
            self.assertNotIn(f[key], (None, "", "—"), key)
        self.assert_clean("n0")

    def test_request_counter_moves_after_requests(self):
        f0 = self.wait_page(lambda f: self.assertEqual(f["live"], "1"), what="live")
        before = int(f0["requests_total"])
        for _ in range(20):
            self.assertEqual(self.nodes[0].request("GET", "/plaintext")[0], 200)

        def check(f):
            self.assertNotEqual(f["updated"], f0["updated"])
            self.assertGreaterEqual(int(f["requests_total"]), before + 20)
        f = self.wait_page(check, what="the request counter past %d" % (before + 20))
        self.assertGreater(float(f["updated"]), float(f0["updated"]))
        self.assertGreaterEqual(int(dict((k, t) for k, t, _ in f["requests_by_class"])["2xx"]),
                                20)
        self.assert_clean("n0")

    def test_stopped_peer_is_shown_down_then_up_with_a_restart(self):
        name = self.entries[2]
        old = server_id(self.nodes[2])
        restarts = int(self.wait_page(
            lambda f: self.assertEqual(f["peers"][2]["state"], "up"),
            what="node 2 up")["peers"][2]["restarts"])
        self.wait_page(lambda f: self.assertEqual(f["live"], "1"), page="n2",
                       what="node 2's own page live")

        self.assertEqual(self.nodes[2].stop(signal.SIGTERM, timeout=DEADLINE), 0,
                         self.nodes[2].stderr_text())

        def down(f):
            p = f["peers"][2]
            self.assertEqual((p["row"], p["state"], p["id"]), (name, "down", old), p)
        self.wait_page(down, what="node 2 down")
        # node 2's own page keeps its last snapshot and says so
        f2 = self.wait_page(lambda f: self.assertEqual(f["live"], "0"), page="n2",
                            what="live updates off")
        self.assertIn("live updates off", f2["live_text"])
        self.assertTrue(f2["live_visible"])
        self.assertEqual(f2["node_id"], old)

        until(lambda: self.assertFalse(H.listening_on(self.ports[2])),
              what="node 2's listening socket gone")
        self.start_node(2)
        new = server_id(self.nodes[2])
        self.assertNotEqual(new, old)

        def up_again(f):
            p = f["peers"][2]
            self.assertEqual((p["state"], p["id"], p["restarts"]),
                             ("up", new, str(restarts + 1)), p)
        self.wait_page(up_again, what="node 2 up with a new id and a restart")
        # node 2's page reconnects by itself and shows the new process
        self.wait_page(lambda f: self.assertEqual((f["live"], f["node_id"]), ("1", new)),
                       page="n2", what="node 2's page live again")
        self.assert_clean("n0")
        self.assert_only_refused_websockets("n2")

    def test_refused_websocket_leaves_the_static_snapshot(self):
        def off(f):
            self.assertEqual(f["live"], "0")
            self.assertIn("live updates off", f["live_text"])
        f = self.wait_page(off, page="n1", what="live updates off")
        self.assertTrue(f["live_visible"], f)
        self.assertEqual(self.peers_on(f), [
            (self.entries[0], self.entries[0], self.ids[0], "up", ""),
            (self.entries[1], self.entries[1], self.ids[1], "up", "self"),
            (self.entries[2], self.entries[2], self.ids[2], "up", "")])
        self.assertEqual((f["discovery"], f["self"], f["node_id"]),
                         ("found", self.entries[1], self.ids[1]))
        self.assertIsNotNone(f["updated"])
        self.assertNotIn(f["requests_total"], (None, "", "—"))
        # the node publishes a snapshot a second, yet this page keeps the first
        time.sleep(2.5)
        self.assertEqual(self.facts("n1")["updated"], f["updated"])
        logs = self.assert_only_refused_websockets("n1")
        self.assertTrue(logs["console_errors"], "the refused handshake logs an error")
        self.assertEqual(logs["requests"], [self.nodes[1].url("/status")])

    def test_slow_handler_is_listed_newest_first(self):
        st, _, _ = self.nodes[0].request("GET", "/debug/block?ms=300", timeout=DEADLINE)
        self.assertEqual(st, 200)
        f = self.wait_page(
            lambda f: self.assertTrue(any("GET /debug/block" in s for s in f["slow"]), f["slow"]),
            what="the slow handler listed")
        self.assertRegex([s for s in f["slow"] if "GET /debug/block" in s][0],
                         r"^\d\d:\d\d:\d\d worker \d+: GET /debug/block ran \d+(\.\d+)? ms")
        times = [s[:8] for s in f["slow"]]
        self.assertEqual(times, sorted(times, reverse=True), f["slow"])
        self.assert_clean("n0")

    def test_charts_are_drawn_with_a_summary(self):
        def drawn(f):
            charts = {c["id"]: c for c in f["charts"]}
            for cid in ("chart-lag", "chart-drift", "chart-rps"):
                self.assertGreaterEqual(charts[cid]["points"], 2, charts)
                self.assertEqual(charts[cid]["label"], charts[cid]["title"])
                self.assertRegex(charts[cid]["label"], r"over the last \d+ s: latest ")
        self.wait_page(drawn, what="charts with points")
        self.assert_clean("n0")

    def test_status_json_has_the_snapshot_fields(self):
        st, hdrs, body = self.nodes[0].request("GET", "/status.json")
        self.assertEqual((st, H.content_type_base(hdrs["Content-Type"])), (200, "application/json"))
        s = json.loads(body)
        self.assertLessEqual(SNAPSHOT_KEYS, set(s), s)
        self.assertEqual((s["name"], s["id"]), ("corio", server_id(self.nodes[0])))
        self.assertIsInstance(s["version"], str)
        for k in ("time", "uptime_s"):
            self.assertIsInstance(s[k], (int, float), k)
        self.assertLess(abs(s["time"] - time.time()), 120)
        self.assertIsInstance(s["workers"], int)
        c = s["cluster"]
        self.assertEqual((c["self"], c["id"], c["state"]), (self.entries[0], s["id"], "found"))
        self.assertEqual([p["name"] for p in c["peers"]], self.entries)
        for p in c["peers"]:
            self.assertLessEqual({"name", "id", "up", "self", "alias", "last_seen_ms", "restarts",
                                  "answer"}, set(p), p)
        self.assertEqual(set(s["connections"]), {"http", "ws"})
        r = s["requests"]
        self.assertEqual((set(r["by_class"]), set(r["per_s"])), (set(CLASSES), set(CLASSES)))
        self.assertEqual(r["total"], sum(r["by_class"].values()))
        self.assertLessEqual({"in", "out", "in_per_s", "out_per_s"}, set(s["bytes"]))
        self.assertLessEqual({"threads", "queued", "busy"}, set(s["pool"]))
        self.assertEqual(len(s["loops"]), s["workers"])
        for i, lp in enumerate(s["loops"]):
            self.assertEqual(lp["worker"], i)
            self.assertEqual(set(lp["lag_ms"]), {"p50", "p99", "max"})
            self.assertLessEqual(lp["lag_ms"]["p50"], lp["lag_ms"]["p99"])
            self.assertLessEqual(lp["lag_ms"]["p99"], lp["lag_ms"]["max"])
            self.assertIsInstance(lp["drift_ms"], (int, float))
        se = s["series"]
        self.assertEqual(set(se), {"t", "lag_max_ms", "drift_ms", "requests_per_s"})
        self.assertEqual(len({len(v) for v in se.values()}), 1, se)
        self.assertTrue(1 <= len(se["t"]) <= 61, se)
        self.assertEqual(se["t"], sorted(se["t"]))
        self.assertIsInstance(s["slow"], list)
        for w in s["slow"]:
            self.assertLessEqual({"time", "worker", "task", "ms"}, set(w), w)

    def test_status_page_is_html_that_loads_nothing_from_elsewhere(self):
        st, hdrs, body = self.nodes[0].request("GET", "/status")
        self.assertEqual((st, H.content_type_base(hdrs["Content-Type"])), (200, "text/html"))
        page = body.decode()
        self.assertNotIn("__CORIO_SNAPSHOT__", page)
        m = re.search(r'<script id="snapshot" type="application/json">(.*?)</script>', page, re.S)
        self.assertIsNotNone(m, "no snapshot element")
        first = json.loads(m.group(1))
        self.assertEqual(first["id"], server_id(self.nodes[0]))
        self.assertLess(len(page) - len(m.group(1)), 40 * 1024)
        # the one http URL allowed is SVG's namespace name, which loads nothing
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+[^\s'\"<>)]*", page.replace(m.group(1), "")))
        self.assertLessEqual(urls, {"http://www.w3.org/2000/svg"}, urls)
        self.assertNotRegex(page, r"(?i)<script[^>]*\bsrc=")
        for tag in re.findall(r"(?i)<link\b[^>]*>", page):
            self.assertRegex(tag, r'href="data:', tag)
        self.assertNotRegex(page, r"(?i)@import|url\((?!data:)")
        # and in the browser: the page, its WebSocket, nothing else
        logs = self.assert_clean("n0")
        self.assertEqual(set(logs["requests"]), {self.nodes[0].url("/status")}, logs["requests"])
        self.assertEqual(set(logs["websockets"]), {"ws://%s/ws/status" % self.entries[0]})

    def test_narrow_screen_needs_no_sideways_scrolling(self):
        self.session.open("narrow", self.nodes[0].url("/status"))
        try:
            self.session.call("viewport", "narrow", width=390, height=844)
            f = self.wait_page(lambda f: self.assertEqual(len(f["peers"]), 3), page="narrow",
                               what="the peers")
            self.assertLessEqual(f["overflow_x"], 0, f)
            self.assert_clean("narrow")
        finally:
            self.session.call("close", "narrow")

    def test_take_a_screenshot_once_the_charts_have_points(self):
        """1280x800 of node 0's page once it has a few seconds of traffic
        (last of the class, by name: a restart and a slow handler show)."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for path in ("/plaintext", "/json", "/missing"):
                self.nodes[0].request("GET", path)
            time.sleep(0.05)

        points = int(os.environ.get("CORIO_STATUS_SCREENSHOT_POINTS", "10"))

        def ready(f):
            charts = {c["id"]: c["points"] for c in f["charts"]}
            self.assertGreaterEqual(charts["chart-rps"], points, charts)
            self.assertEqual(f["live"], "1")
        self.wait_page(ready, what="%d seconds of series" % points, timeout=DEADLINE + points)
        path = screenshot_path()
        self.session.call("screenshot", "n0", path=path)
        print("\nstatus page screenshot: %s" % path, file=sys.stderr)
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        self.assert_clean("n0")


class AdminListen(unittest.TestCase):
    """With admin_listen the three routes answer there only, as /metrics."""

    @classmethod
    def setUpClass(cls):
        cls.server = H.CorioServer(args=["--access-log", "off", "--admin-listen", "127.0.0.1:0"])
        cls.server.start()
        line = cls.server.wait_for_log(r"listening \(/metrics[^)]*\) on 127\.0\.0\.1:\d+")[0]
        cls.admin = int(re.search(r":(\d+)\s*$", line).group(1))

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def test_routes_answer_on_the_admin_address_only(self):
        for path in ("/status", "/status.json"):
            self.assertEqual(H.get_on_port(self.admin, path)[0], 200, path)
            self.assertEqual(self.server.request("GET", path)[0], 404, path)
        s = json.loads(H.get_on_port(self.admin, "/status.json")[1])
        self.assertEqual((s["cluster"]["state"], s["cluster"]["peers"]), ("standalone", []))

    def test_ws_status_on_the_admin_address_only(self):
        with self.assertRaisesRegex(OSError, "404"):
            H.ws_connect((H.HOST, self.server.port), b"/ws/status")
        sock = H.ws_connect((H.HOST, self.admin), b"/ws/status")
        try:
            s = json.loads(ws_read_message(sock))
            self.assertEqual(s["id"], server_id(self.server))
        finally:
            sock.close()

    def test_page_on_the_admin_address_is_live(self):
        session = BrowserSession()
        try:
            session.open("admin", "http://127.0.0.1:%d/status" % self.admin)

            def check():
                f = session.facts("admin")
                self.assertEqual((f["live"], f["discovery"], f["peers"]), ("1", "standalone", []))
                return f
            f = until(check, what="the admin page live")
            self.assertEqual(f["self"], "none (standalone)")
            logs = session.logs("admin")
            self.assertEqual((logs["console_errors"], logs["page_errors"]), ([], []), logs)
        finally:
            session.close()


if __name__ == "__main__":
    if H.corio_bin() is not None:
        N.require(chromium=True)  # Chromium and the npm packages, or exit 77 with the reason
    H.main()
