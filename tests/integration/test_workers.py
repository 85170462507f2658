"""Workers (--workers N, the "workers" key; 0 = one per CPU): several loops,
each on a thread of its own with a server of its own, sharing the listening
addresses through SO_REUSEPORT (the kernel spreads connections among them).
What every worker must do as well as the first: serve, count in /metrics,
drain at SIGTERM, take a SIGHUP's settings, deliver a room's WebSocket
messages, read discovery's answer, count limits.max_connections_per_ip with
the others; /healthz names a worker whose loop stalls.

Which worker a connection landed on is read, never guessed: /metrics gives
corio_connections_open (and corio_ws_connections_open) by worker. A test
keeps one connection of its own for the scrapes (Tracker.m, on some worker,
counted too but constant) and opens its connections one at a time: after a
connection's first exchange, the scrape that shows exactly one worker with
one more open connection names that worker. The kernel hashes a connection
to a worker by its source port, so a few connections reach both with
overwhelming probability; tests open more, up to BOUND, until every worker
has what they need.

Ports: each server listens on a port held for the test by a bound socket
that never listens (SO_REUSEADDR), as test_daemon.py and test_discovery.py
do, so that every worker binds the one port the test knows.

No assertion depends on how fast the machine is: every wait polls an
observable state (a log line, /metrics, an answer) with a generous deadline.
"""

import collections
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401
from test_metrics import parse, value  # noqa: E402 - the exposition format's parser

DEADLINE = 30.0  # seconds for any state to be reached (generous: a loaded machine)
BOUND = 400  # connections a test may open to reach every worker
READY_RE = re.compile(r"\] corio \S+ ready \(")
LONG_PATH = "/" + "a" * 200  # 404 with the default limits.max_uri_bytes (no root)
DRAIN_MS = 20000  # outlasts every step of the drain test by far
WITHHOLD_S = 1.0  # how long the drain test keeps the rest of the bodies back
PER_WORKER = ("corio_connections_open", "corio_ws_connections_open", "corio_coroutines_alive",
              "corio_loop_drift_seconds")


# ---------------------------------------------------------------------------
# helpers


def until(check, timeout=DEADLINE, step=0.05, what="the expected state"):
    return H.until(check, timeout, step, what)


class Overshoot(Exception):
    """A counter went past the value a test waits for: no use waiting."""


Reserved = H.Reserved  # a port bound, never listening: every process started on it binds the same


def socket_inodes(pid):
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            m = re.match(r"socket:\[(\d+)\]$", os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except OSError:
            continue
        if m:
            inodes.add(m.group(1))
    return inodes


def listening_ports(pid):
    """The TCP ports of the listening sockets process pid holds, sorted
    (one entry per socket)."""
    inodes = socket_inodes(pid)
    ports = []
    for name in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, name)) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A" and fields[9] in inodes:
                        ports.append(int(fields[1].rsplit(":", 1)[1], 16))
        except FileNotFoundError:
            pass
    return sorted(ports)


listening_on = H.listening_on


def session_members(sid):
    """Live processes of session sid."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            pids.append(int(d))
    return pids


def quota_cpus(quota, period):
    """CPUs a CFS quota buys, rounded up; 0: no limit."""
    if quota <= 0 or period <= 0:
        return 0
    return -(-quota // period)


def read_words(path):
    try:
        with open(path) as f:
            return f.read().split()
    except OSError:
        return None


def dir_quota(d, v2):
    if v2:
        w = read_words(os.path.join(d, "cpu.max"))
        if not w or len(w) < 2 or w[0] == "max":
            return 0
        return quota_cpus(int(w[0]), int(w[1]))
    q = read_words(os.path.join(d, "cpu.cfs_quota_us"))
    p = read_words(os.path.join(d, "cpu.cfs_period_us"))
    if not q or not p:
        return 0
    return quota_cpus(int(q[0]), int(p[0]))


def path_quota(mount, cg, v2):
    """The tightest quota from cgroup cg (under mount) up to the mount's root."""
    lowest = 0
    path = cg
    while True:
        n = dir_quota(mount + ("" if path == "/" else path), v2)
        if n and (not lowest or n < lowest):
            lowest = n
        if path in ("/", ""):
            break
        path = path.rsplit("/", 1)[0] or "/"
    return lowest


def cgroup_cpus(pid):
    """The CPU quota of process pid's cgroups (v2, or v1's cpu controller)
    in whole CPUs rounded up; 0: none."""
    lowest = 0
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            _, ctrl, path = line.rstrip("\n").split(":", 2)
            if ctrl == "":
                n = path_quota("/sys/fs/cgroup", path, True)
            elif "cpu" in ctrl.split(","):
                ns = [path_quota(m, path, False)
                      for m in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct")]
                ns = [x for x in ns if x]
                n = min(ns) if ns else 0
            else:
                continue
            if n and (not lowest or n < lowest):
                lowest = n
    return lowest


def usable_cpus(pid):
    """What --workers 0 means for process pid: the CPUs its affinity allows,
    or fewer when its cgroup's CPU quota buys fewer."""
    n = len(os.sched_getaffinity(pid))
    q = cgroup_cpus(pid)
    return min(n, q) if q else n


def echo_request(body, declared=None):
    return (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % (len(body) if declared is None else declared) + body)


def exchange(conn, data):
    """Sends one request on conn and reads its response."""
    conn.send(data)
    return conn.read_response(timeout=DEADLINE)


def get(conn, path):
    return exchange(conn, H.simple_get(path))


def readable(conn):
    """Whether conn has something to read (or its end came) right now."""
    if conn.buf or conn.eof:
        return True
    r, _, _ = select.select([conn.sock], [], [], 0)
    return bool(r)


def write_config(path, cfg):
    with open(path + ".tmp", "w") as f:
        json.dump(cfg, f)
    os.replace(path + ".tmp", path)  # a SIGHUP never reads a half-written file


def merged(base, extra):
    out = dict(base)
    for k, v in (extra or {}).items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# ---------------------------------------------------------------------------
# which worker a connection is on


class Tracker:
    """Names the worker of each new connection from a per-worker gauge of
    /metrics (family), scraped on a connection of its own (m). expected
    holds what the gauge reads with the connections the test keeps; a test
    that closes one says so (closed), and the tracker waits until the
    server has seen it go."""

    def __init__(self, test, srv, n=2, family="corio_connections_open"):
        self.test, self.srv, self.n, self.family = test, srv, n, family
        self.m = test.connect(srv)
        self.scrapes = 0  # scrapes answered on m so far
        base = 1 if family == "corio_connections_open" else 0  # m itself

        def only_m():
            c = self.counts(self.scrape())
            assert sum(c) == base, "%s before the test's connections: %r" % (family, c)
            return c
        self.expected = until(only_m, what="a server with no connection but the tracker's")

    def scrape(self):
        r = get(self.m, "/metrics")
        self.test.assertEqual(r.status, 200, r.body[:300])
        self.scrapes += 1
        return parse(r.body.decode())

    def counts(self, fams):
        """The family's value for each worker."""
        by = {lb.get("worker"): v for _, lb, v in fams[self.family]["samples"]}
        self.test.assertEqual(set(by), {str(w) for w in range(self.n)},
                              "%s's worker labels" % self.family)
        return [int(by[str(w)]) for w in range(self.n)]

    def attribute(self):
        """The worker of the connection the test just opened (and finished
        one exchange on): the one worker whose count grew by one."""
        def grown():
            c = self.counts(self.scrape())
            diff = [a - b for a, b in zip(c, self.expected)]
            assert sorted(diff) == [0] * (self.n - 1) + [1], \
                "%s %r, expected %r and one more on one worker" % (self.family, c, self.expected)
            return c, diff.index(1)
        c, w = until(grown, step=0.01, what="the new connection counted on one worker")
        self.expected = c
        return w

    def closed(self, w):
        """The test closed a connection of worker w: waits until it is gone."""
        self.expected[w] -= 1

        def gone():
            c = self.counts(self.scrape())
            assert c == self.expected, "%s %r, expected %r" % (self.family, c, self.expected)
        until(gone, what="the closed connection gone from worker %d" % w)

    def spread(self, hello, need_each=1, bound=BOUND):
        """Opens connections with hello() (which returns one after a first
        exchange on it) until every worker has need_each of them:
        {worker: [connection, ...]} with every connection opened."""
        by = {w: [] for w in range(self.n)}
        for _ in range(bound):
            c = hello()
            by[self.attribute()].append(c)
            if min(len(v) for v in by.values()) >= need_each:
                return by
        self.test.fail("%d connections did not give every worker %d: %r"
                       % (bound, need_each, {w: len(v) for w, v in by.items()}))


# ---------------------------------------------------------------------------
# a WebSocket chat client on a raw socket


class Chat:
    """A member of /ws/chat?room=ROOM: sends text messages, collects what
    the server sends (pings skipped, a close frame fails the test)."""

    def __init__(self, srv, room, name):
        self.room, self.name, self.worker = room, name, None
        self.sock = H.ws_connect((srv.host, srv.port), b"/ws/chat?room=" + room.encode(),
                                 timeout=DEADLINE)
        self.buf = b""
        self.got = []

    def close(self):
        self.sock.close()

    def send(self, text):
        self.sock.sendall(H.ws_frame(0x1, text.encode()))

    def _parse(self):
        while len(self.buf) >= 2:
            b0, b1 = self.buf[0], self.buf[1]
            n, h = b1 & 0x7F, 2
            if n == 126:
                if len(self.buf) < 4:
                    return
                n, h = struct.unpack("!H", self.buf[2:4])[0], 4
            elif n == 127:
                if len(self.buf) < 10:
                    return
                n, h = struct.unpack("!Q", self.buf[2:10])[0], 10
            if len(self.buf) < h + n:
                return
            op, payload = b0 & 0x0F, self.buf[h:h + n]
            self.buf = self.buf[h + n:]
            if op == 0x8:
                raise AssertionError("%s: the server closed the WebSocket: %r" % (self.name,
                                                                                  payload))
            if op == 0x1:
                self.got.append(payload.decode())
            elif op == 0x2:
                self.got.append(payload)

    def wait_for(self, wanted):
        """Reads until every message of the set `wanted` came."""
        deadline = time.monotonic() + DEADLINE
        while not wanted <= set(self.got):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%s (%s, worker %s) is missing %r; got %r"
                                     % (self.name, self.room, self.worker,
                                        sorted(wanted - set(self.got)), self.got))
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not d:
                raise AssertionError("%s: connection closed; got %r" % (self.name, self.got))
            self.buf += d
            self._parse()


# ---------------------------------------------------------------------------


class WorkersTest(unittest.TestCase):
    """A server per test, on a reserved port, with `workers` workers; every
    connection, socket and process a test makes is closed at its end."""

    workers = 2

    def setUp(self):
        if H.corio_bin() is None:
            raise unittest.SkipTest(H.skip_reason())
        self.closers = []
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        for c in reversed(self.closers):
            try:
                c()
            except Exception:  # noqa: BLE001 - close the others anyway
                pass

    def reserve(self):
        r = Reserved()
        self.closers.append(r.close)
        return r.port

    def start(self, config=None, args=None, env=None, port=None, workers_flag=True):
        """corio on 127.0.0.1:port (a reserved port by default) with
        --workers self.workers (unless workers_flag is False: the config
        says), once it logged "ready": every worker listens."""
        port = port or self.reserve()
        cfg = merged({"log": {"access": "off"}, "timeouts": {"keepalive_ms": 600000}}, config)
        argv = ["--listen", "%s:%d" % (H.HOST, port)]
        if workers_flag:
            argv += ["--workers", str(self.workers)]
        srv = H.CorioServer(args=argv + list(args or []), config=cfg, listen=False,
                            startup_timeout=DEADLINE)
        self.closers.append(srv.close)
        saved = {k: os.environ.get(k) for k in (env or {})}
        os.environ.update(env or {})
        try:
            srv.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    del os.environ[k]
                else:
                    os.environ[k] = v
        srv.wait_for_log(READY_RE, timeout=DEADLINE)
        return srv

    def connect(self, srv):
        c = srv.connect(timeout=DEADLINE)
        self.closers.append(c.close)
        return c

    def hello_get(self, srv):
        """A new connection after one GET /plaintext on it."""
        def hello():
            c = self.connect(srv)
            r = get(c, "/plaintext")
            self.assertEqual((r.status, r.body), (200, b"Hello, World!"))
            return c
        return hello

    def spread(self, srv, need_each=1, hello=None):
        t = Tracker(self, srv)
        return t, t.spread(hello or self.hello_get(srv), need_each=need_each)


# ---------------------------------------------------------------------------


class TestStart(WorkersTest):
    def test_two_workers_share_the_listening_address(self):
        """One listening socket per worker, on the one address, and the log
        says so."""
        srv = self.start()
        srv.wait_for_log(r"\] 2 workers share the listening addresses \(SO_REUSEPORT\)$")
        self.assertRegex(srv.wait_for_log(READY_RE)[0], r"ready \(.*workers: 2,")
        self.assertEqual(listening_ports(srv.proc.pid), [srv.port, srv.port])

    def test_workers_key_in_the_config_file(self):
        srv = self.start(config={"workers": 2}, workers_flag=False)
        srv.wait_for_log(r"\] 2 workers share the listening addresses \(SO_REUSEPORT\)$")
        self.assertEqual(listening_ports(srv.proc.pid), [srv.port, srv.port])

    def test_port_0_is_one_port_for_every_worker(self):
        """--listen HOST:0 with 2 workers: the port the kernel picked for
        the first worker is the one every worker listens on (the logged
        one), not one port each, of which the log names only the first."""
        srv = H.CorioServer(args=["--workers", "2", "--access-log", "off"],
                            startup_timeout=DEADLINE)
        self.closers.append(srv.close)
        srv.start()
        srv.wait_for_log(READY_RE, timeout=DEADLINE)
        self.assertEqual(listening_ports(srv.proc.pid), [srv.port, srv.port],
                         "the log says: listening on %s:%d" % (srv.host, srv.port))

    def test_workers_0_is_one_per_usable_cpu(self):
        """0: one worker per CPU the process may run on (its affinity),
        fewer when its cgroup's CPU quota buys fewer (rounded up)."""
        self.workers = 0
        srv = self.start()
        n = usable_cpus(srv.proc.pid)
        t = Tracker(self, srv, n=n)
        self.assertEqual(value(t.scrape(), "corio_workers"), n)
        self.assertRegex(srv.wait_for_log(READY_RE)[0], r"ready \(.*workers: %d," % n)
        self.assertEqual(listening_ports(srv.proc.pid), [srv.port] * n)
        if n > 1:
            srv.wait_for_log(r"\] %d workers share the listening addresses \(SO_REUSEPORT\)$"
                             % n)

    def test_workers_0_counts_the_cpu_affinity(self):
        """Started on one CPU (sched_setaffinity, as taskset does): one
        worker, and no SO_REUSEPORT."""
        mine = os.sched_getaffinity(0)
        if len(mine) < 2:
            self.skipTest("this process may run on one CPU only: nothing to restrict")
        self.workers = 0
        os.sched_setaffinity(0, {min(mine)})  # this thread's: the child inherits it
        try:
            srv = self.start()
        finally:
            os.sched_setaffinity(0, mine)
        self.assertEqual(os.sched_getaffinity(srv.proc.pid), {min(mine)})
        t = Tracker(self, srv, n=1)
        self.assertEqual(value(t.scrape(), "corio_workers"), 1)
        self.assertRegex(srv.wait_for_log(READY_RE)[0], r"ready \(.*workers: 1,")
        self.assertEqual(listening_ports(srv.proc.pid), [srv.port])
        self.assertNotIn("share the listening addresses", srv.stderr_text())

    def test_a_failed_start_exits_1_and_leaves_nothing_running(self):
        """The second address is taken (a socket without SO_REUSEPORT
        listens there): both workers had set up and listened on the first;
        the process exits 1 naming the address, and nothing of it stays
        (no process of its session, nobody holding its stderr, nothing
        listening on the first address)."""
        first = self.reserve()
        busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.closers.append(busy.close)
        busy.bind((H.HOST, 0))
        busy.listen(8)
        port = busy.getsockname()[1]
        p = subprocess.Popen([H.corio_bin(), "--workers", "2", "--access-log", "off",
                              "--listen", "%s:%d" % (H.HOST, first),
                              "--listen", "%s:%d" % (H.HOST, port)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, start_new_session=True)

        def kill():
            if p.poll() is None:
                p.kill()
                p.wait(10)
        self.closers.append(kill)
        try:
            # EOF on stderr: every holder of the pipe is gone
            _, err = p.communicate(timeout=DEADLINE + 10)
        except subprocess.TimeoutExpired:
            self.fail("corio did not exit (or something kept its stderr open) within %.0f s"
                      % (DEADLINE + 10))
        err = err.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 1, err)
        self.assertRegex(err, r"cannot listen on %s:%d: Address already in use"
                         % (re.escape(H.HOST), port))
        self.assertNotRegex(err, READY_RE)
        self.assertEqual(session_members(p.pid), [])
        until(lambda: self.assertFalse(listening_on(first), "port %d still listens" % first),
              what="no listener left on the first address")


class TestMetrics(WorkersTest):
    def test_per_worker_gauges_and_process_wide_counters(self):
        """corio_workers; the loops' gauges and histogram by worker; the
        counters summed, without a worker label."""
        srv = self.start()
        t, by = self.spread(srv)
        fams = t.scrape()
        self.assertEqual(value(fams, "corio_workers"), 2)
        self.assertEqual(fams["corio_workers"]["samples"], [("corio_workers", {}, 2.0)])
        for name in PER_WORKER:
            self.assertEqual(fams[name]["type"], "gauge", name)
            self.assertEqual(sorted((s, tuple(sorted(lb.items())))
                                    for s, lb, _ in fams[name]["samples"]),
                             [(name, (("worker", "0"),)), (name, (("worker", "1"),))], name)
        # the tracker's connection and the test's: every one counted, on its worker
        self.assertEqual(t.counts(fams), t.expected)
        self.assertEqual(sum(t.expected), 1 + len(by[0]) + len(by[1]))
        lag = fams["corio_loop_lag_seconds"]
        self.assertEqual(lag["type"], "histogram")
        for w in ("0", "1"):
            les = [lb["le"] for s, lb, _ in lag["samples"]
                   if s == "corio_loop_lag_seconds_bucket" and lb["worker"] == w]
            self.assertGreater(len(les), 1, w)
            self.assertEqual(les[-1], "+Inf", w)
            for s in ("corio_loop_lag_seconds_sum", "corio_loop_lag_seconds_count"):
                self.assertEqual([lb for n, lb, _ in lag["samples"]
                                  if n == s and lb.get("worker") == w], [{"worker": w}], s)
        self.assertEqual({tuple(sorted(lb)) for _, lb, _ in lag["samples"]},
                         {("le", "worker"), ("worker",)})
        for name, labels in (("corio_http_requests_total", ("code", "method")),
                             ("corio_bytes_total", ("direction",)),
                             ("corio_ws_messages_total", ("direction",)),
                             ("corio_connections_accepted_total", ())):
            self.assertTrue(fams[name]["samples"], name)
            for _, lb, _ in fams[name]["samples"]:
                self.assertEqual(tuple(sorted(lb)), labels, name)
        self.assertEqual({tuple(sorted(lb)) for _, lb, _ in
                          fams["corio_http_request_duration_seconds"]["samples"]},
                         {("le",), ()})


class TestServing(WorkersTest):
    def test_both_workers_accept_and_serve(self):
        srv = self.start()
        t, by = self.spread(srv, need_each=2)
        for w, conns in by.items():
            for c in conns:
                r = get(c, "/json")
                self.assertEqual((r.status, r.body), (200, b'{"message":"Hello, World!"}'),
                                 "worker %d" % w)
        self.assertEqual(t.counts(t.scrape()), t.expected, "every connection still open")

    def test_requests_on_every_worker_are_counted_once(self):
        """corio_http_requests_total moves by the requests sent, on either
        worker: POSTs (the scrapes are GETs) exactly, and GET 200 by the
        scrapes that came before the last one."""
        srv = self.start()
        t = Tracker(self, srv)
        before, k = t.scrape(), t.scrapes

        def hello():
            c = self.connect(srv)
            r = exchange(c, echo_request(b"hello"))
            self.assertEqual((r.status, r.body), (200, b"hello"))
            return c
        by = t.spread(hello, need_each=2)
        conns = by[0] + by[1]
        body = b"z" * 1000
        for c in conns:
            for _ in range(2):
                r = exchange(c, echo_request(body))
                self.assertEqual((r.status, r.body), (200, body))
        posts = 3 * len(conns)

        def counted():
            after = t.scrape()
            got = value(after, "corio_http_requests_total", method="POST", code="200") - \
                value(before, "corio_http_requests_total", method="POST", code="200")
            if got > posts:
                raise Overshoot("POST 200 moved by %d for %d requests" % (got, posts))
            assert got == posts, "POST 200 moved by %d of %d" % (got, posts)
            return after
        after = until(counted, what="every POST counted")
        # scrapes k (before) .. t.scrapes - 1 are done; the last is in progress
        self.assertEqual(value(after, "corio_http_requests_total", method="GET", code="200") -
                         value(before, "corio_http_requests_total", method="GET", code="200"),
                         t.scrapes - k)
        got_in = value(after, "corio_bytes_total", direction="in") - \
            value(before, "corio_bytes_total", direction="in")
        self.assertGreaterEqual(got_in, len(body) * 2 * len(conns))

    def test_hash_runs_on_the_pool_from_every_worker(self):
        """Every worker submits to the process's pool and gets its job's
        result back on its own loop."""
        srv = self.start()
        _, by = self.spread(srv)
        for w, conns in by.items():
            body = b"worker %d" % w
            r = exchange(conns[0], H.hash_request(1000, body))
            self.assertEqual((r.status, r.body.decode()), (200, H.pbkdf2_hex(body, 1000)),
                             "worker %d" % w)

    def test_healthz_is_200_on_every_worker(self):
        srv = self.start()
        _, by = self.spread(srv)
        for w, conns in by.items():
            r = get(conns[0], "/healthz")
            self.assertEqual((r.status, r.body), (200, b"ok\n"), "worker %d" % w)


class TestDrain(WorkersTest):
    def test_requests_in_flight_on_every_worker_complete_at_sigterm(self):
        """Connections on both workers each hold a POST /echo whose body
        is still coming when SIGTERM arrives: every one is answered in full
        (Connection: close) once its body comes, and the process exits 0,
        before the drain's deadline."""
        srv = self.start(config={"timeouts": {"drain_ms": DRAIN_MS}})
        t, by = self.spread(srv, need_each=2)
        inflight = []
        for w, conns in by.items():
            for i, c in enumerate(conns):
                first, rest = b"w%d-c%d:" % (w, i), b"the rest of %d/%d" % (w, i)
                c.send(echo_request(first, declared=len(first) + len(rest)))
                inflight.append((w, c, first, rest))
        for _, c, _, _ in inflight:
            H.wait_server_read(c, timeout=DEADLINE)
        t.m.close()  # idle: the drain would close it
        srv.send_signal(signal.SIGTERM)
        srv.wait_for_log(r"shutting down gracefully", timeout=DEADLINE)
        time.sleep(WITHHOLD_S)  # the drain waits for the bodies, not for a clock
        self.assertTrue(srv.running(), "exited with requests in flight:\n" + srv.stderr_text())
        for w, c, first, rest in inflight:
            c.send(rest)
        for w, c, first, rest in inflight:
            try:
                r = c.read_response(timeout=DEADLINE)
            except (socket.timeout, H.ConnectionClosed) as e:
                self.fail("worker %d: the request in flight was not answered: %r\n%s"
                          % (w, e, srv.stderr_text()))
            self.assertEqual((r.status, r.body), (200, first + rest), "worker %d" % w)
            self.assertTrue(r.has_token("Connection", "close"), r.headers)
            self.assertTrue(c.wait_closed(DEADLINE), "worker %d left its connection open" % w)
        code = srv.wait(DRAIN_MS / 1000 + DEADLINE)
        self.assertEqual(code, 0, "exit status %r (None: still running)\n%s"
                         % (code, srv.stderr_text()))
        self.assertNotIn("drain deadline passed", srv.stderr_text())
        srv.wait_for_log(r"\] stopped$")


class TestRooms(WorkersTest):
    def test_a_room_spans_the_workers(self):
        """Two rooms, each with at least two members on each worker: every
        message reaches every other member of its room, on either worker,
        and no one else (not its sender, not the other room).

        "No one else" is checked once every member also sent a last
        message ("end") and every member received those of its room: a
        member's messages from one worker come in the order that worker
        published them (one queue per loop, one per connection), and every
        worker published an "end" after everything the members sent before,
        so a stray message would have come before the ends."""
        srv = self.start(config={"websocket": {"ping_interval_ms": 0, "idle_timeout_ms": 0}})
        t = Tracker(self, srv, family="corio_ws_connections_open")
        rooms = {"red": [], "blue": []}

        def short():
            return [r for r, ms in rooms.items()
                    if min(sum(1 for m in ms if m.worker == w) for w in range(2)) < 2]
        for i in range(BOUND):
            wanting = short()
            if not wanting:
                break
            room = wanting[i % len(wanting)]
            c = Chat(srv, room, "%s%d" % (room, i))
            self.closers.append(c.close)
            c.worker = t.attribute()  # counted once open: subscribed by then
            rooms[room].append(c)
        else:
            self.fail("%d connections did not give each room two members on each worker"
                      % BOUND)
        everyone = rooms["red"] + rooms["blue"]

        def others(c, kind):
            return {"%s %s" % (kind, o.name) for o in rooms[c.room] if o is not c}
        for c in everyone:
            c.send("from " + c.name)
        for c in everyone:
            c.wait_for(others(c, "from"))
        for c in everyone:
            c.send("end " + c.name)
        for c in everyone:
            c.wait_for(others(c, "end"))
        for c in everyone:
            self.assertEqual(collections.Counter(c.got),
                             collections.Counter(others(c, "from") | others(c, "end")),
                             "%s (%s, worker %d)" % (c.name, c.room, c.worker))
        # both workers had members of each room (so messages crossed)
        for room, ms in rooms.items():
            self.assertEqual({m.worker for m in ms}, {0, 1}, room)


class TestDiscovery(WorkersTest):
    def test_discovery_answers_on_every_worker(self):
        """A server whose "servers" list holds itself: once found, /readyz,
        /cluster and POST /client-request answer alike on either worker.

        Its own discovery queries come in as connections too (kept alive,
        on some worker, maybe replaced), so no connection is attributed one
        by one here: the test opens connections in batches, asks everything
        on each, keeps them open, and stops once /metrics shows so many
        open on every worker that some are the test's (more than the
        scraping connection and discovery's can be)."""
        port = self.reserve()
        entry = "%s:%d" % (H.HOST, port)
        srv = self.start(port=port, config={
            "servers": [entry], "discovery": {"interval_ms": 200, "request_timeout_ms": 10000}})
        m = self.connect(srv)

        def ready():
            r = get(m, "/readyz")
            self.assertEqual((r.status, r.body), (200, b"ready\n"))
        until(ready, what="/readyz 200")
        r = get(m, "/server_id")
        self.assertEqual(r.status, 200)
        sid = json.loads(r.body)
        self.assertRegex(sid, r"^[0-9a-f]{32}$")

        def ask(c):
            r = get(c, "/readyz")
            self.assertEqual((r.status, r.body), (200, b"ready\n"))
            r = get(c, "/cluster")
            self.assertEqual(r.status, 200, r.body)
            v = json.loads(r.body)
            self.assertEqual((v["state"], v["self"], v["id"], v["aliases"]),
                             ("found", entry, sid, []), v)
            self.assertEqual([(p["name"], p["id"], p["self"], p["up"]) for p in v["peers"]],
                             [(entry, sid, True, True)], v)
            r = exchange(c, b"POST /client-request HTTP/1.1\r\nHost: x\r\n"
                            b"Content-Length: 0\r\n\r\n")
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(json.loads(r.body), {"self": entry, "id": sid})

        opened, counts = 0, None
        while opened < BOUND:
            for _ in range(32):
                c = self.connect(srv)
                ask(c)
                opened += 1
            r = get(m, "/metrics")
            self.assertEqual(r.status, 200)
            fams = parse(r.body.decode())
            counts = {lb["worker"]: v for _, lb, v in fams["corio_connections_open"]["samples"]}
            self.assertEqual(set(counts), {"0", "1"})
            # m and discovery's own connections are at most 3 of them
            if min(counts.values()) >= 4:
                return
        self.fail("%d connections did not reach both workers: %r" % (opened, counts))


class SourceConn(H.RawConn):
    """A RawConn from a source address of the test's choosing (127.0.0.0/8
    is all loopback)."""

    def __init__(self, srv, source, timeout=DEADLINE):  # not RawConn's: it picks no source
        self.sock = socket.create_connection((srv.host, srv.port), timeout=timeout,
                                             source_address=(source, 0))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""
        self.eof = False
        self.reset = False


class TestConnectionsPerIp(WorkersTest):
    LIMIT = 4

    def served(self, conn):
        """Whether a GET on conn is answered (False: closed or reset unanswered)."""
        try:
            return get(conn, "/plaintext").status == 200
        except (OSError, H.ConnectionClosed):
            return False

    def test_max_connections_per_ip_counts_across_workers(self):
        """limits.max_connections_per_ip is the address's total over the
        workers: with LIMIT connections held on both workers (so that each
        holds fewer), a new one is refused on whichever worker it lands,
        while another address is served."""
        srv = self.start(config={"limits": {"max_connections_per_ip": self.LIMIT}})
        t = Tracker(self, srv)  # its connection comes from 127.0.0.1
        src = "127.0.0.3"

        def hello():
            c = SourceConn(srv, src)
            self.closers.append(c.close)
            self.assertTrue(self.served(c), "connection %d of %d from %s"
                            % (len(held) + 1, self.LIMIT, src))
            return c
        held = []  # (worker, connection)
        for _ in range(self.LIMIT):
            c = hello()
            held.append((t.attribute(), c))
        for _ in range(BOUND):
            if {w for w, _ in held} == {0, 1}:
                break
            w, c = held.pop(0)  # all on one worker: one goes, another comes
            c.close()
            t.closed(w)
            c = hello()
            held.append((t.attribute(), c))
        else:
            self.fail("%d connections did not land on both workers" % BOUND)
        for i in range(8):
            try:
                c = SourceConn(srv, src)
            except OSError:
                continue  # reset before connect() returned: refused too
            self.closers.append(c.close)
            self.assertFalse(self.served(c), "connection %d over the limit (held: workers %r)"
                             % (i + 1, sorted(w for w, _ in held)))
            c.close()
        c = SourceConn(srv, "127.0.0.4")
        self.closers.append(c.close)
        self.assertTrue(self.served(c), "another address was refused")
        srv.wait_for_log(r"reset \d+ connections? over limits\.max_connections_per_ip \(%d\)"
                         % self.LIMIT)


class TestReload(WorkersTest):
    def test_sighup_applies_limits_on_every_worker(self):
        """limits.max_uri_bytes lowered by SIGHUP: a long URI answered 404
        before is refused 414 after, on connections of both workers (open
        before the reload)."""
        srv = self.start(config={"workers": 2}, workers_flag=False)
        _, by = self.spread(srv)
        for w, conns in by.items():
            self.assertEqual(get(conns[0], LONG_PATH).status, 404, "worker %d" % w)
        write_config(srv.config_path, {"workers": 2, "log": {"access": "off"},
                                       "timeouts": {"keepalive_ms": 600000},
                                       "limits": {"max_uri_bytes": 64}})
        srv.send_signal(signal.SIGHUP)
        srv.wait_for_log(r"\] SIGHUP: applied: limits\.max_uri_bytes$", timeout=DEADLINE)
        for w, conns in by.items():
            c = conns[0]

            def refused():
                # the other workers take the settings from a message of
                # loop 0's: until then a 404, and the connection stays
                r = get(c, LONG_PATH)
                if r.status not in (404, 414):
                    raise Overshoot("worker %d: %d for a long URI" % (w, r.status))
                self.assertEqual(r.status, 414, "worker %d" % w)
            until(refused, what="414 on worker %d" % w)
        self.assertTrue(srv.running(), srv.stderr_text())


class TestStall(WorkersTest):
    """CORIO_DEBUG=1 adds GET /debug/block?ms=N, which keeps its worker's
    loop for N ms without awaiting: /healthz answered by the other worker
    says 503, naming the stalled one, once health.stall_ms has passed."""

    STALL_MS = 300
    BLOCK_MS = 3000
    ATTEMPTS = 3

    def check_stalled_worker_is_named(self, blocked):
        srv = self.start(config={"health": {"stall_ms": self.STALL_MS}},
                         env={"CORIO_DEBUG": "1"})
        _, by = self.spread(srv)
        b, h = by[blocked][0], by[1 - blocked][0]
        until(lambda: self.assertEqual(get(h, "/healthz").status, 200),
              what="/healthz 200 before the block")
        seen = None
        for _ in range(self.ATTEMPTS):
            b.send(H.simple_get("/debug/block?ms=%d" % self.BLOCK_MS))
            while True:
                r = get(h, "/healthz")
                if r.status != 200:
                    seen = r
                    break
                if readable(b):
                    break  # the block ended before h's worker saw it: once more
                time.sleep(0.01)
            rb = b.read_response(timeout=DEADLINE)
            self.assertEqual((rb.status, rb.body),
                             (200, b"blocked the loop for %d ms\n" % self.BLOCK_MS))
            if seen:
                break
        else:
            self.fail("/healthz on worker %d said 200 all through %d blocks of worker %d's loop"
                      % (1 - blocked, self.ATTEMPTS, blocked))
        self.assertEqual(seen.status, 503, seen.body)
        m = re.fullmatch(rb"stalled: worker (\d+)'s loop has not turned for (\d+) ms\n", seen.body)
        self.assertIsNotNone(m, seen.body)
        self.assertEqual(int(m.group(1)), blocked, seen.body)
        self.assertGreaterEqual(int(m.group(2)), self.STALL_MS, seen.body)
        until(lambda: self.assertEqual(get(h, "/healthz").status, 200),
              what="/healthz 200 again after the block")
        until(lambda: self.assertEqual(get(b, "/healthz").status, 200),
              what="/healthz 200 again on the blocked worker")

    def test_worker_1_stalled_is_named_by_worker_0(self):
        self.check_stalled_worker_is_named(1)

    def test_worker_0_stalled_is_named_by_worker_1(self):
        self.check_stalled_worker_is_named(0)


if __name__ == "__main__":
    H.main()
