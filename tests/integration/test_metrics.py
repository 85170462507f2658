"""GET /metrics: the Prometheus text exposition format (0.0.4) and counters
that move by the right amounts.

The format is checked by a parser written to the format's rules (promtool is
not a Debian package here): every sample belongs to a family announced by
HELP and TYPE lines, names and labels are well-formed, counters end in
_total, histograms have cumulative le buckets ending at +Inf that equal
_count. Counters are compared between two scrapes around traffic the test
makes, on requests the scrapes themselves cannot touch (a POST answered
404, WebSocket messages).
"""

import math
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402

setUpModule = H.setUpModule

NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"\s*(?:,|$)')
DEADLINE = 30.0


def parse(text):
    """{family: {"type", "help", "samples": [(name, labels, value)]}}, or
    AssertionError naming the first rule broken."""
    fams, current = {}, None
    assert text.endswith("\n"), "the exposition ends with a newline"
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("# HELP "):
            _, _, name, help_ = line.split(" ", 3)
            assert NAME.match(name), "line %d: bad name %r" % (n, name)
            assert name not in fams, "line %d: %s announced twice" % (n, name)
            fams[name] = {"help": help_, "type": None, "samples": []}
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, type_ = line.split(" ", 3)
            assert name == current, "line %d: TYPE of %s after HELP of %s" % (n, name, current)
            assert type_ in ("counter", "gauge", "histogram", "summary", "untyped"), line
            fams[name]["type"] = type_
        elif line.startswith("#") or not line:
            continue
        else:
            m = SAMPLE.match(line)
            assert m, "line %d: not a sample: %r" % (n, line)
            name, _, labels_text, value = m.groups()
            labels = {}
            if labels_text:
                pos = 0
                while pos < len(labels_text):
                    lm = LABEL.match(labels_text, pos)
                    assert lm, "line %d: bad labels %r" % (n, labels_text)
                    labels[lm.group(1)] = lm.group(2)
                    pos = lm.end()
            v = float(value)  # "+Inf", "NaN" and exponents included
            family = current
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if fams.get(current, {}).get("type") == "histogram":
                assert base == current, "line %d: %s outside its family %s" % (n, name, current)
            else:
                assert name == current, "line %d: %s outside its family %s" % (n, name, current)
            fams[family]["samples"].append((name, labels, v))
    for name, f in fams.items():
        assert f["type"], "%s has no TYPE" % name
        if f["type"] == "counter":
            assert name.endswith("_total"), "counter %s does not end in _total" % name
            assert all(v >= 0 for _, _, v in f["samples"]), name
        if f["type"] == "histogram":
            check_histogram(name, f["samples"])
    return fams


def check_histogram(name, samples):
    groups = {}
    for sname, labels, v in samples:
        key = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        groups.setdefault(key, []).append((sname, labels, v))
    for key, ss in groups.items():
        buckets = [(float(lb["le"]), v) for s, lb, v in ss if s == name + "_bucket"]
        assert buckets, "%s%s: no buckets" % (name, key)
        les = [le for le, _ in buckets]
        assert les == sorted(les) and les[-1] == math.inf, "%s: le not ascending to +Inf" % name
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), "%s: buckets not cumulative: %r" % (name, counts)
        count = [v for s, _, v in ss if s == name + "_count"]
        total = [v for s, _, v in ss if s == name + "_sum"]
        assert len(count) == 1 and len(total) == 1, "%s: one _count and one _sum" % name
        assert counts[-1] == count[0], "%s: +Inf bucket %s != _count %s" % (name, counts[-1],
                                                                           count[0])


def value(fams, name, **labels):
    """A sample's value (0 when absent: a labelled counter not yet seen)."""
    family = name if name in fams else re.sub(r"_(bucket|sum|count)$", "", name)
    for sname, lb, v in fams.get(family, {"samples": []})["samples"]:
        if sname == name and all(lb.get(k) == x for k, x in labels.items()):
            return v
    return 0.0


class TestMetrics(H.ServerTestCase):
    def scrape(self):
        st, hdrs, body = self.server.request("GET", "/metrics")
        self.assertEqual(st, 200, body)
        self.assertTrue(hdrs.get("Content-Type", "").startswith("text/plain; version=0.0.4"),
                        hdrs)
        return parse(body.decode())

    def test_the_exposition_follows_the_text_format(self):
        fams = self.scrape()
        for name in ("corio_http_requests_total", "corio_http_request_duration_seconds",
                     "corio_connections_open", "corio_ws_connections_open",
                     "corio_ws_messages_total", "corio_bytes_total", "corio_loop_lag_seconds",
                     "corio_loop_drift_seconds", "corio_pool_queue_depth",
                     "corio_pool_busy_threads", "corio_coroutines_alive", "corio_discovery_state",
                     "corio_log_lines_dropped_total", "process_open_fds",
                     "process_resident_memory_bytes", "process_cpu_seconds_total",
                     "process_start_time_seconds"):
            self.assertIn(name, fams)
        self.assertEqual(fams["corio_http_request_duration_seconds"]["type"], "histogram")
        self.assertEqual(fams["corio_loop_lag_seconds"]["type"], "histogram")

    def test_requests_are_counted_by_method_and_code(self):
        before = self.scrape()
        for _ in range(3):
            self.assertEqual(self.server.request("POST", "/no/such/route", body=b"x")[0], 404)
        self.assertEqual(self.server.request("DELETE", "/plaintext")[0], 405)
        after = self.scrape()
        self.assertEqual(value(after, "corio_http_requests_total", method="POST", code="404") -
                         value(before, "corio_http_requests_total", method="POST", code="404"), 3)
        self.assertEqual(value(after, "corio_http_requests_total", method="DELETE", code="405") -
                         value(before, "corio_http_requests_total", method="DELETE", code="405"),
                         1)
        # the first scrape, the four requests (and not the second scrape, still in progress)
        self.assertEqual(value(after, "corio_http_request_duration_seconds_count") -
                         value(before, "corio_http_request_duration_seconds_count"), 5)

    def test_bytes_move_by_what_was_sent_and_received(self):
        before = self.scrape()
        body = b"y" * 100000
        st, _, echoed = self.server.request("POST", "/echo", body=body)
        self.assertEqual((st, echoed), (200, body))
        after = self.scrape()
        got_in = value(after, "corio_bytes_total", direction="in") - value(
            before, "corio_bytes_total", direction="in")
        got_out = value(after, "corio_bytes_total", direction="out") - value(
            before, "corio_bytes_total", direction="out")
        # the body and the heads of the echo and of the second scrape's request
        self.assertGreaterEqual(got_in, 100000)
        self.assertLess(got_in, 100000 + 2000)
        self.assertGreaterEqual(got_out, 100000)  # the echo, and the first scrape's answer

    def test_websocket_connections_and_messages_are_counted(self):
        before = self.scrape()
        s = H.ws_connect((self.server.host, self.server.port), b"/ws/echo")
        try:
            for payload in (b"one", b"two"):
                s.sendall(H.ws_frame(0x1, payload))
            got = b""
            deadline = time.monotonic() + DEADLINE
            while got.count(b"\x81") < 2 and time.monotonic() < deadline:
                got += s.recv(4096)
            mid = self.scrape()
            self.assertEqual(value(mid, "corio_ws_connections_open"), 1)
            for d in ("in", "out"):
                self.assertEqual(value(mid, "corio_ws_messages_total", direction=d) -
                                 value(before, "corio_ws_messages_total", direction=d), 2, d)
        finally:
            s.close()
        deadline = time.monotonic() + DEADLINE
        while value(self.scrape(), "corio_ws_connections_open") != 0:
            self.assertLess(time.monotonic(), deadline, "the closed connection is still counted")
            time.sleep(0.05)

    def test_standalone_discovery_state(self):
        fams = self.scrape()
        self.assertEqual(value(fams, "corio_discovery_state", state="standalone"), 1)
        self.assertEqual(sum(v for _, _, v in fams["corio_discovery_state"]["samples"]), 1)

    def test_process_metrics_describe_this_process(self):
        fams = self.scrape()
        pid = self.server.proc.pid
        fds = len(os.listdir("/proc/%d/fd" % pid))
        self.assertLessEqual(abs(value(fams, "process_open_fds") - fds), 2)
        start = value(fams, "process_start_time_seconds")
        self.assertLessEqual(start, time.time())
        self.assertGreater(start, time.time() - 3600)
        self.assertGreater(value(fams, "process_resident_memory_bytes"), 1 << 20)
        self.assertGreaterEqual(value(fams, "corio_pool_threads"), 1)


class TestSlowHandlerWatchdog(H.DebugServerTestCase):
    """CORIO_DEBUG=1 adds GET /debug/block?ms=N, a handler that keeps the
    loop for N ms of the clock without awaiting: the watchdog (debug.slow_ms)
    names it in a warning and counts it."""

    server_config = {"debug": {"slow_ms": 100}, "log": {"access": "off"}}

    def slow_count(self):
        return value(parse(self.server.request("GET", "/metrics")[2].decode()),
                     "corio_slow_handlers_total")

    def test_a_blocking_handler_is_named_and_counted(self):
        before = self.slow_count()
        st, _, body = self.server.request("GET", "/debug/block?ms=300", timeout=DEADLINE)
        self.assertEqual((st, body), (200, b"blocked the loop for 300 ms\n"))
        line = self.server.wait_for_log(
            r"slow handler: GET /debug/block ran (\d+) ms without awaiting", timeout=DEADLINE)[0]
        ran = int(re.search(r"ran (\d+) ms", line).group(1))
        self.assertGreaterEqual(ran, 290)
        self.assertGreaterEqual(self.slow_count() - before, 1)

    def test_a_handler_that_awaits_is_not_reported(self):
        before = self.slow_count()
        # /hash runs on the pool: the loop awaits it, whatever it costs
        st, _, _ = self.server.request("POST", "/hash?iterations=1000", body=b"x")
        self.assertEqual(st, 200)
        self.assertEqual(self.slow_count(), before)


class TestAdminListen(H.ServerTestCase):
    """admin_listen: /metrics and /cluster move to addresses of their own;
    the probes answer on both; clients' routes stay on the main ones."""

    server_args = ["--access-log", "off", "--admin-listen", "127.0.0.1:0"]

    def admin_get(self, path):
        line = self.server.wait_for_log(r"listening \(/metrics, /cluster, /status\) on 127\.0\.0\.1:(\d+)")[0]
        return H.get_on_port(int(re.search(r":(\d+)$", line).group(1)), path)

    def test_operators_routes_are_on_the_admin_address_only(self):
        for path in ("/metrics", "/cluster"):
            self.assertEqual(self.server.request("GET", path)[0], 404, path)
            self.assertEqual(self.admin_get(path)[0], 200, path)
        parse(self.admin_get("/metrics")[1].decode())

    def test_probes_answer_on_both(self):
        for path in ("/healthz", "/readyz"):
            self.assertEqual(self.server.request("GET", path)[0], 200, path)
            self.assertEqual(self.admin_get(path)[0], 200, path)

    def test_clients_routes_stay_on_the_main_address(self):
        self.assertEqual(self.server.request("GET", "/plaintext")[0], 200)
        self.assertEqual(self.admin_get("/plaintext")[0], 404)


class TestDebugRoutesNeedCorioDebug(H.ServerTestCase):
    def test_debug_block_is_404_without_corio_debug(self):
        self.assertEqual(self.server.request("GET", "/debug/block?ms=1")[0], 404)


class TestParserRejects(unittest.TestCase):
    """The parser above must be able to fail."""

    def test_a_counter_without_total(self):
        with self.assertRaises(AssertionError):
            parse("# HELP a_b x\n# TYPE a_b counter\na_b 1\n")

    def test_buckets_that_are_not_cumulative(self):
        with self.assertRaises(AssertionError):
            parse("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 5\n"
                  "h_bucket{le=\"+Inf\"} 3\nh_sum 1\nh_count 3\n")

    def test_a_sample_without_its_family(self):
        with self.assertRaises(AssertionError):
            parse("x 1\n")


if __name__ == "__main__":
    H.main()
