"""The peer-ID self-discovery protocol on loopback: several corio processes
given one list of "servers", each finding which entry is itself by asking
every entry's GET /server_id; GET /cluster, /readyz and POST /client-request,
which depend on it; peers that are down, answer garbage or nothing, restart,
or reach the same server under two names.

Ports: a listed port is held for the whole test by a socket of the test's,
bound with SO_REUSEADDR and never listening. Nothing else takes it (a bind
without SO_REUSEADDR fails; the kernel's choice of a free port, for a bind to
port 0 or a connect, passes it over), a connection to it is
refused while nothing listens there ("a peer that never starts"), and corio
(SO_REUSEADDR too) can still listen on it, also again after a restart. So no
test picks a "free" port and hopes that it stays free.

No assertion depends on how fast the machine is: every wait polls an
observable state (a log line, /cluster, /readyz) with a generous deadline;
sleeps only space out the starts of processes or pace the polls.
"""

import http.client
import json
import os
import random
import re
import select
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401

DEADLINE = 30.0  # seconds for any state to be reached (generous: a loaded machine)
# One GET /server_id. Generous where a test expects self "found in round 1":
# the node's query of itself must not time out on a loaded machine.
QUERY_TIMEOUT_MS = 10000
NO_ACCESS_LOG = {"access": "off"}
PENDING = {"not queried yet", "no answer yet"}  # answers before the first one came


# ---------------------------------------------------------------------------
# helpers


def until(check, timeout=DEADLINE, step=0.05, what="the expected state"):
    """Calls check() until it returns without raising AssertionError (or a
    connection error); returns its result. At the deadline the last failure
    is raised, prefixed with `what`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, OSError, http.client.HTTPException) as e:
            if time.monotonic() >= deadline:
                raise AssertionError("%s not reached within %.0f s; last: %s"
                                     % (what, timeout, e)) from e
        time.sleep(step)


get_json = H.get_json
server_id = H.server_id


def found_re(entry, index, count, round_=None):
    """The log line of self found: entry is entry index (1-based) of count."""
    return re.compile(r"discovery: self is %s \(entry %d of %d\), found in round %s, "
                      r"[0-9.]+ ms after start"
                      % (re.escape(entry), index, count, round_ if round_ else r"(\d+)"))


def peer(view, name):
    for p in view["peers"]:
        if p["name"] == name:
            return p
    raise AssertionError("%s is not in /cluster's peers: %r" % (name, view))


listening_on = H.listening_on


def wait_port_released(port):
    """After a corio on `port` exited: until its listening socket is gone
    (the kernel tears down an exited process's ring, and the sockets it
    holds, a moment later), so that the next corio's bind does not find
    the port in use."""
    def check():
        assert not listening_on(port), "port %d still has a listening socket" % port
    until(check, what="the old listening socket's end")


class Reserved:
    """A port held by a bound socket that never listens (see the module's
    docstring): connections to it are refused until listen() or a corio
    started on it."""

    def __init__(self, host="127.0.0.1"):
        self.host = host
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                  socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


def garbage_handler(conn):
    """A server that is not corio: 200 with the body "hello" to anything."""
    while H.read_head(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
                     b"Connection: close\r\n\r\nhello")
        break
    conn.close()


def silent_handler(conn):
    """Accepts, reads, never answers (until the peer or close() ends it)."""
    while conn.recv(4096):
        pass


class Forwarder(H.Acceptor):
    """A TCP forwarder from sock (made to listen now) to target (host, port)."""

    def __init__(self, sock, target):
        self.target = target
        super().__init__(sock, self._forward)

    def _forward(self, conn):
        try:
            up = socket.create_connection(self.target, timeout=10)
        except OSError:
            conn.close()
            return
        up.settimeout(None)
        conn.settimeout(None)
        if not self.track(up):
            conn.close()
            return
        t = threading.Thread(target=self._pump, args=(up, conn), daemon=True)
        t.start()
        self._pump(conn, up)

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class DiscoveryTest(unittest.TestCase):
    """Every process, socket and thread a test starts is stopped in tearDown,
    whatever happened."""

    def setUp(self):
        self.nodes = []
        self.closers = []

    def tearDown(self):
        for n in self.nodes:
            try:
                n.close()
            except Exception:  # noqa: BLE001 - close the others anyway
                pass
        for c in reversed(self.closers):
            try:
                c()
            except Exception:  # noqa: BLE001
                pass

    def reserve(self, host="127.0.0.1"):
        r = Reserved(host)
        self.closers.append(r.close)
        return r

    def garbage_peer(self):
        a = H.Acceptor(H.listening_socket(), garbage_handler)
        self.closers.append(a.close)
        return a

    def silent_peer(self):
        a = H.Acceptor(H.listening_socket(), silent_handler)
        self.closers.append(a.close)
        return a

    def node(self, port=None, config=None, args=(), host="127.0.0.1"):
        """A started corio: on host:port (a reserved port) or, port None, on a
        free port of its own (not listed anywhere)."""
        cfg = dict(config or {})
        cfg.setdefault("log", NO_ACCESS_LOG)
        listen = [] if port is None else ["--listen", "%s:%d" % (
            "[%s]" % host if ":" in host else host, port)]
        n = H.CorioServer(config=cfg, args=listen + list(args), listen=port is None,
                          startup_timeout=DEADLINE)
        self.nodes.append(n)
        n.start()
        return n

    def assert_view(self, node, entries, ids, me):
        """node's /cluster: found itself (entries[me]), every entry up with
        its id, no alias."""
        v = get_json(node, "/cluster")
        self.assertEqual((v["state"], v["self"], v["id"], v["aliases"]),
                         ("found", entries[me], ids[me], []), v)
        self.assertEqual([p["name"] for p in v["peers"]], entries, v)
        for j, p in enumerate(v["peers"]):
            self.assertEqual(
                (p["id"], p["up"], p["self"], p["alias"], p["restarts"], p["answer"]),
                (ids[j], True, j == me, False, 0, "id " + ids[j]), "%s in %r" % (p["name"], v))
            self.assertIsInstance(p["last_seen_ms"], int, p)
            self.assertGreaterEqual(p["last_seen_ms"], 0, p)
        return v


def loopback_config(entries, **discovery):
    discovery.setdefault("request_timeout_ms", QUERY_TIMEOUT_MS)
    return {"servers": entries, "log": NO_ACCESS_LOG, "discovery": discovery}


# ---------------------------------------------------------------------------


class TestThreeNodes(DiscoveryTest):
    """Three processes with one config, started one after the other in a
    random order."""

    def start_three(self):
        ports = [self.reserve().port for _ in range(3)]
        self.entries = ["127.0.0.1:%d" % ports[0], "localhost:%d" % ports[1],
                        "127.0.0.1:%d" % ports[2]]
        cfg = loopback_config(self.entries, interval_ms=300)
        self.order = random.sample(range(3), 3)
        nodes = [None] * 3
        for k, i in enumerate(self.order):
            if k:
                time.sleep(0.5)  # spaces the starts out; nothing is timed
            nodes[i] = self.node(ports[i], cfg)
        return nodes

    def test_each_node_finds_itself_in_the_first_round_after_its_start(self):
        """Round 1 is the round that goes out right after the process
        listens, so each one found itself within one interval of its own
        start, however late the others came."""
        nodes = self.start_three()
        for i, n in enumerate(nodes):
            n.wait_for_log(found_re(self.entries[i], i + 1, 3, 1), timeout=DEADLINE)
            self.assertEqual(len(n.wait_for_log(r"discovery: self is ")), 1,
                             "start order %s" % self.order)

    def test_every_node_sees_all_three_up_with_their_ids_and_itself_once(self):
        nodes = self.start_three()
        ids = [server_id(n) for n in nodes]
        self.assertEqual(len(set(ids)), 3, ids)
        for i, n in enumerate(nodes):
            until(lambda: self.assert_view(n, self.entries, ids, i),
                  what="node %s's converged /cluster (start order %s)"
                  % (self.entries[i], self.order))


class TestClientRequestWaits(DiscoveryTest):
    def test_a_client_request_during_the_search_completes_once_self_is_found(self):
        """The node's only entry reaches it through a forwarder that starts
        after the request came in: the request waits for the search, then
        gets 200 naming the forwarder's entry."""
        fwd = self.reserve()  # refused until the forwarder listens on it
        entry = "127.0.0.1:%d" % fwd.port
        node = self.node(config=loopback_config([entry], interval_ms=200, window_ms=0))
        sid = server_id(node)

        def refused():
            p = get_json(node, "/cluster")["peers"][0]
            self.assertEqual(p["answer"], "connection refused", p)
        until(refused, what="a first round refused by the entry")
        st, hdrs, body = node.request("GET", "/readyz")
        self.assertEqual((st, hdrs.get("Retry-After"), body), (503, "1", b"searching for self\n"))

        with node.connect(timeout=DEADLINE) as c:
            c.send(b"POST /client-request HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            H.wait_server_read(c, timeout=DEADLINE)
            # the server has the request; self is still unknown; no answer yet
            self.assertEqual(node.request("GET", "/readyz")[0], 503)
            readable, _, _ = select.select([c.sock], [], [], 0)
            self.assertEqual((readable, c.buf), ([], b""), "answered before self was found")

            self.closers.append(Forwarder(fwd.sock, (node.host, node.port)).close)
            r = c.read_response(timeout=DEADLINE)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(json.loads(r.body), {"self": entry, "id": sid})
        m = node.wait_for_log(found_re(entry, 1, 1))
        self.assertGreaterEqual(int(found_re(entry, 1, 1).search(m[0]).group(1)), 2,
                                "round 1 was refused, yet: " + m[0])


class TestShutdownWhileSearching(DiscoveryTest):
    def test_a_waiting_client_request_gets_503_before_the_drain_ends(self):
        """SIGTERM stops the search at once: a /client-request waiting for
        self is answered 503 (Retry-After) instead of holding the drain
        (30 s here) until its deadline."""
        refused = self.reserve()
        cfg = loopback_config(["127.0.0.1:%d" % refused.port], interval_ms=200, window_ms=0)
        cfg["timeouts"] = {"drain_ms": 30000}
        node = self.node(config=cfg)
        with node.connect(timeout=DEADLINE) as c:
            c.send(b"POST /client-request HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            H.wait_server_read(c, timeout=DEADLINE)
            node.proc.send_signal(signal.SIGTERM)
            r = c.read_response(timeout=20)
        self.assertEqual((r.status, r.header("Retry-After")), (503, "1"), r.body)
        self.assertEqual(node.wait(timeout=20), 0, node.stderr_text())
        self.assertNotIn("drain deadline passed", node.stderr_text())


class TestDeadPeer(DiscoveryTest):
    """A listed peer that never starts (its port refuses connections),
    listed between the two others."""

    def start(self):
        a, dead, b = self.reserve(), self.reserve(), self.reserve()
        self.entries = ["127.0.0.1:%d" % a.port, "127.0.0.1:%d" % dead.port,
                        "localhost:%d" % b.port]
        cfg = loopback_config(self.entries, interval_ms=300)
        return self.node(a.port, cfg), self.node(b.port, cfg)

    def test_the_others_still_find_themselves_in_round_1(self):
        na, nb = self.start()
        na.wait_for_log(found_re(self.entries[0], 1, 3, 1), timeout=DEADLINE)
        nb.wait_for_log(found_re(self.entries[2], 3, 3, 1), timeout=DEADLINE)

    def test_it_is_listed_down_with_no_id_and_the_connection_refused(self):
        na, nb = self.start()
        ida, idb = server_id(na), server_id(nb)
        for n, me in ((na, 0), (nb, 2)):
            def check():
                v = get_json(n, "/cluster")
                self.assertEqual((v["state"], v["self"]), ("found", self.entries[me]), v)
                d = v["peers"][1]
                self.assertEqual(d, {"name": self.entries[1], "id": None, "up": False,
                                     "self": False, "alias": False, "last_seen_ms": None,
                                     "restarts": 0, "answer": "connection refused"})
                for j, sid in ((0, ida), (2, idb)):
                    self.assertEqual((v["peers"][j]["up"], v["peers"][j]["id"]), (True, sid), v)
            until(check, what="%s's view of the dead peer" % self.entries[me])


class TestBadPeersBeforeSelf(DiscoveryTest):
    """Listed before the node's own entry: a server answering 200 "hello"
    and one that accepts and never answers."""

    def start(self):
        garbage, silent, me = self.garbage_peer(), self.silent_peer(), self.reserve()
        self.entries = ["127.0.0.1:%d" % garbage.port, "127.0.0.1:%d" % silent.port,
                        "127.0.0.1:%d" % me.port]
        # the silent peer's queries time out after request_timeout_ms, which
        # also bounds the node's query of itself: generous, for a loaded machine
        return self.node(me.port, loopback_config(self.entries, interval_ms=300,
                                                  request_timeout_ms=3000))

    def test_the_node_still_finds_itself_in_round_1(self):
        node = self.start()
        node.wait_for_log(found_re(self.entries[2], 3, 3, 1), timeout=DEADLINE)

    def test_cluster_shows_what_each_answered(self):
        node = self.start()

        def check():
            v = get_json(node, "/cluster")
            got = [(p["answer"], p["up"], p["id"], p["self"]) for p in v["peers"]]
            self.assertEqual(got[:2], [('HTTP 200 "hello"', False, None, False),
                                       ("timed out", False, None, False)], v)
            self.assertEqual(got[2][1:], (True, v["id"], True), v)
        until(check, what="the answers of the garbage and the silent peer")


class TestNotInItsOwnList(DiscoveryTest):
    """A node whose own address is in no entry: the list has a refused port,
    a server answering garbage and another corio (answering another id).
    The search gives up after window_ms."""

    WINDOW_MS = 1500

    def start(self, args=(), **discovery):
        self.other = self.node()  # a standalone corio on a port of its own
        refused, garbage = self.reserve(), self.garbage_peer()
        self.entries = ["127.0.0.1:%d" % refused.port, "127.0.0.1:%d" % garbage.port,
                        "localhost:%d" % self.other.port]
        self.answers = ["connection refused", 'HTTP 200 "hello"',
                        "id " + server_id(self.other)]
        d = dict(interval_ms=300, window_ms=self.WINDOW_MS, request_timeout_ms=5000)
        d.update(discovery)
        return self.node(config=loopback_config(self.entries, **d), args=args)

    FAILED_RE = re.compile(r"discovery: no entry of \"servers\" answered with this server's id "
                           r"\(([0-9a-f]{32})\) within (\d+) ms")

    def test_a_waiting_client_request_gets_503_with_retry_after(self):
        """Sent while the node still searches (unless a very slow start ate
        the window: then it is refused at once, the same 503)."""
        node = self.start()
        st, hdrs, body = node.request("POST", "/client-request", body=b"", timeout=DEADLINE)
        self.assertEqual((st, hdrs.get("Retry-After")), (503, "1"), body)
        self.assertEqual(body, b'this server has not found itself in "servers"\n')
        self.assertEqual(get_json(node, "/cluster")["state"], "failed")

    def test_readyz_is_503_self_not_found_after_the_search_failed(self):
        node = self.start()
        node.wait_for_log(self.FAILED_RE, timeout=DEADLINE)
        st, hdrs, body = node.request("GET", "/readyz")
        self.assertEqual((st, hdrs.get("Retry-After"), body), (503, "1", b"self not found\n"))

    def test_the_failure_is_logged_with_every_entry_and_its_answer(self):
        node = self.start()
        sid = server_id(node)
        # Each entry's answer once seen during the search is what the log
        # reports (these peers always answer the same); if the window ended
        # before a first answer came, the entry was "not queried yet".
        seen = {}

        def answered():
            v = get_json(node, "/cluster")
            for p in v["peers"]:
                if v["state"] == "searching" and p["answer"] not in PENDING:
                    seen[p["name"]] = p["answer"]
            self.assertTrue(v["state"] != "searching" or len(seen) == 3, v)
        until(answered, what="the first answers or the end of the search")
        line = node.wait_for_log(self.FAILED_RE, timeout=DEADLINE)[0]
        self.assertEqual(self.FAILED_RE.search(line).groups(), (sid, str(self.WINDOW_MS)))
        lines = node.stderr_lines()
        at = next(i for i, l in enumerate(lines) if self.FAILED_RE.search(l))
        listed = [re.search(r"discovery:   (\S+): (.*)$", l) for l in lines[at + 1:at + 4]]
        self.assertTrue(all(listed), "\n".join(lines[at:at + 4]))
        self.assertEqual([m.group(1) for m in listed], self.entries)
        for m, answer in zip(listed, self.answers):
            allowed = {answer} if m.group(1) in seen else {answer} | PENDING
            self.assertIn(m.group(2), allowed, m.group(0))
        for name, answer in seen.items():
            self.assertEqual(answer, self.answers[self.entries.index(name)])
        self.assertTrue(node.running(), "without --require-self it stays up")

    def assert_exits_1(self, node):
        rc = node.wait(timeout=DEADLINE)
        self.assertEqual(rc, 1, node.stderr_text())
        node.wait_for_log(self.FAILED_RE, timeout=DEADLINE)
        node.wait_for_log(r"--require-self: exiting", timeout=DEADLINE)

    def test_require_self_flag_exits_with_status_1(self):
        self.assert_exits_1(self.start(args=["--require-self"]))

    def test_require_self_in_the_config_file_exits_with_status_1(self):
        self.assert_exits_1(self.start(require_self=True))


class TestAliases(DiscoveryTest):
    def test_self_is_the_first_entry_reaching_it_and_the_other_is_an_alias(self):
        """Two entries reach one server: localhost:P and 127.0.0.1:P (corio
        listens on 127.0.0.1; a localhost that resolves to ::1 first still
        reaches it, every address is tried). Whichever order they are
        listed in, self is the first."""
        port = self.reserve().port
        names = ["localhost:%d" % port, "127.0.0.1:%d" % port]
        for entries in (names, names[::-1]):
            with self.subTest(entries=entries):
                node = self.node(port, loopback_config(entries, interval_ms=300))
                node.wait_for_log(found_re(entries[0], 1, 2, 1), timeout=DEADLINE)
                sid = server_id(node)

                def check():
                    v = get_json(node, "/cluster")
                    self.assertEqual((v["state"], v["self"], v["aliases"]),
                                     ("found", entries[0], [entries[1]]), v)
                    got = [(p["name"], p["id"], p["up"], p["self"], p["alias"])
                           for p in v["peers"]]
                    self.assertEqual(got, [(entries[0], sid, True, True, False),
                                           (entries[1], sid, True, False, True)], v)
                until(check, what="the alias in /cluster")
                node.stop()
                wait_port_released(port)


class TestRestart(DiscoveryTest):
    """Node A watches node B, which stops and comes back on its port."""

    def start(self):
        a, b = self.reserve(), self.reserve()
        self.bport = b.port
        self.entries = ["127.0.0.1:%d" % a.port, "127.0.0.1:%d" % b.port]
        self.cfg = loopback_config(self.entries, interval_ms=200)
        na, nb = self.node(a.port, self.cfg), self.node(b.port, self.cfg)
        old = server_id(nb)
        until(lambda: self.assertEqual(self.b_in(na)[:2], (True, old)), what="B up in A's view")
        return na, nb, old

    def b_in(self, na):
        p = peer(get_json(na, "/cluster"), self.entries[1])
        return p["up"], p["id"], p["restarts"], p["answer"], p

    def stop_b(self, na, nb):
        self.assertEqual(nb.stop(signal.SIGTERM, timeout=DEADLINE), 0, nb.stderr_text())
        until(lambda: self.assertEqual(self.b_in(na)[0], False), what="B down in A's view")

    def test_a_stopped_peer_is_shown_down_with_its_last_id(self):
        na, nb, old = self.start()
        self.stop_b(na, nb)

        def check():
            up, sid, restarts, answer, p = self.b_in(na)
            self.assertEqual((up, sid, restarts, answer), (False, old, 0, "connection refused"), p)
            self.assertIsInstance(p["last_seen_ms"], int, p)
        until(check, what="B refused in A's view")
        na.wait_for_log(r"discovery: %s is down \(" % re.escape(self.entries[1]))

    def test_a_restarted_peer_is_seen_up_with_its_new_id_and_one_restart(self):
        na, nb, old = self.start()
        self.stop_b(na, nb)
        wait_port_released(self.bport)
        nb2 = self.node(self.bport, self.cfg)
        new = server_id(nb2)
        self.assertNotEqual(new, old)

        def check():
            up, sid, restarts, answer, p = self.b_in(na)
            self.assertEqual((up, sid, restarts, answer), (True, new, 1, "id " + new), p)
        until(check, what="B's new id in A's view")
        na.wait_for_log(r"discovery: %s restarted \(id %s, was %s\)"
                        % (re.escape(self.entries[1]), new, old))


class TestStandalone(H.ServerTestCase):
    """No "servers": nothing to find, ready at once."""

    server_args = ["--access-log", "off"]

    def test_cluster_is_standalone_with_no_peers(self):
        sid = server_id(self.server)
        self.assertEqual(get_json(self.server, "/cluster"),
                         {"self": None, "id": sid, "state": "standalone", "aliases": [],
                          "peers": []})

    def test_readyz_is_200(self):
        self.assertEqual(self.server.request("GET", "/readyz")[::2], (200, b"ready\n"))

    def test_client_request_is_answered_with_self_null(self):
        st, _, body = self.server.request("POST", "/client-request", body=b"")
        self.assertEqual((st, json.loads(body)),
                         (200, {"self": None, "id": server_id(self.server)}))


class TestEntryForms(DiscoveryTest):
    def test_a_bare_name_takes_the_port_of_the_first_listen_address(self):
        port = self.reserve().port
        node = self.node(port, loopback_config(["localhost"]))
        node.wait_for_log(found_re("localhost", 1, 1, 1), timeout=DEADLINE)
        v = get_json(node, "/cluster")
        self.assertEqual((v["self"], [p["name"] for p in v["peers"]]), ("localhost", ["localhost"]))

    def test_server_flags_replace_the_files_list(self):
        port, other = self.reserve().port, self.reserve().port
        entry = "127.0.0.1:%d" % port
        node = self.node(port, loopback_config(["127.0.0.1:%d" % other]),
                         args=["--server", entry])
        node.wait_for_log(found_re(entry, 1, 1, 1), timeout=DEADLINE)
        v = get_json(node, "/cluster")
        self.assertEqual((v["self"], [p["name"] for p in v["peers"]]), (entry, [entry]))

    def test_an_ipv6_entry(self):
        try:
            port = self.reserve("::1").port
        except OSError as e:
            self.skipTest("no IPv6 loopback: %s" % e)
        entry = "[::1]:%d" % port
        node = self.node(port, loopback_config([entry]), host="::1")
        node.wait_for_log(found_re(entry, 1, 1, 1), timeout=DEADLINE)


if __name__ == "__main__":
    H.main()
