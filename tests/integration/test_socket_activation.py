"""Socket activation: corio serves on the listening sockets a service manager
passed (systemd's LISTEN_FDS protocol: fds 3.., LISTEN_PID = the process's
own pid) instead of binding "listen"; with several workers every worker
accepts on a copy of each; SIGTERM drains and exits 0; the socket outlives
corio, so a connection made while it is down is served by the next one.

The test stands for systemd: it makes the socket, keeps it, and starts
corio through a small Python wrapper that moves the socket to fd 3, sets
LISTEN_PID to its own pid (which corio's exec keeps) and execs corio.

Every wait polls an observable state with a generous deadline.
"""

import os
import re
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401
from test_daemon import DEADLINE, DaemonTestCase, matching, read_text, until  # noqa: E402

# argv: N FD... PROGRAM ARG...: the N fds become 3..3+N-1, the rest are
# closed, and PROGRAM runs with LISTEN_PID (this pid, or $TEST_LISTEN_PID)
# and LISTEN_FDS=N.
ACTIVATE = r"""
import fcntl, os, sys
n = int(sys.argv[1])
fds = [int(x) for x in sys.argv[2:2 + n]]
argv = sys.argv[2 + n:]
tmp = [fcntl.fcntl(fd, fcntl.F_DUPFD, 3 + n) for fd in fds]  # out of the way of 3..3+n-1
for i, t in enumerate(tmp):
    os.dup2(t, 3 + i, inheritable=True)
for fd in set(tmp) | set(fds):
    if fd >= 3 + n:
        os.close(fd)
os.environ["LISTEN_PID"] = os.environ.pop("TEST_LISTEN_PID", "") or str(os.getpid())
os.environ["LISTEN_FDS"] = str(n)
os.environ["LISTEN_FDNAMES"] = ":".join(["corio"] * n)
os.execv(argv[0], argv)
"""

SHUTTING_DOWN = r"\] Terminated: shutting down gracefully"


class TestSocketActivation(DaemonTestCase):
    def listening_socket(self, sock=None):
        s = sock or socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((H.HOST, 0))
        s.listen(64)
        self.closers.append(s.close)
        return s, s.getsockname()[1]

    def activated(self, socks, args=(), env=None, ready=True):
        """corio started as systemd would start it with socks (kept open
        here, as systemd keeps them); once ready unless told not to."""
        fds = [s.fileno() for s in socks]
        own = open(self.log, "ab")
        try:
            p = subprocess.Popen(
                [sys.executable, "-c", ACTIVATE, str(len(fds))] + [str(fd) for fd in fds]
                + [self.bin, "--access-log", "off"] + list(args),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=own,
                env=self.env(env), cwd=self.tmp, pass_fds=fds, start_new_session=True)
        finally:
            own.close()
        self.procs.append(p)
        if ready:
            def up():
                assert p.poll() is None, "corio exited with %s:\n%s" % (p.returncode,
                                                                          read_text(self.log))
                assert matching(self.log, r"\] corio \S+ ready \("), read_text(self.log)
            until(up, what="corio's 'ready' line")
        return p

    def copies_of(self, pid, sock):
        """How many fds of process pid are the socket sock."""
        want = "socket:[%d]" % os.fstat(sock.fileno()).st_ino
        n = 0
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                n += os.readlink("/proc/%d/fd/%s" % (pid, fd)) == want
            except OSError:
                pass
        return n

    def test_serves_on_the_passed_socket_and_drains_at_sigterm(self):
        """Served on the socket, "listen" (here the default 0.0.0.0:8080) not
        bound; a request in flight at SIGTERM is answered, then exit 0."""
        sock, port = self.listening_socket()
        p = self.activated([sock])
        self.assertEqual(len(matching(self.log, r"\] listening on 127\.0\.0\.1:%d \(socket "
                                                r"activation\)$" % port)), 1, read_text(self.log))
        self.assertEqual(len(matching(self.log, r"listening on")), 1, read_text(self.log))
        self.assertEqual(self.copies_of(p.pid, sock), 1)
        self.assert_serves(port)
        with H.RawConn(H.HOST, port, timeout=DEADLINE) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
            H.wait_server_read(c)
            p.send_signal(signal.SIGTERM)
            until(lambda: self.assertTrue(matching(self.log, SHUTTING_DOWN)),
                  what="the drain")
            c.send(b"world")
            r = c.read_response(timeout=DEADLINE)
        self.assertEqual((r.status, r.body), (200, b"helloworld"))
        self.assertEqual(p.wait(timeout=DEADLINE), 0, read_text(self.log))

    def test_two_workers_accept_on_copies_of_one_socket(self):
        sock, port = self.listening_socket()
        p = self.activated([sock], ["--workers", "2"])
        self.assertTrue(matching(self.log, r"\] 2 workers accept on the same sockets$"),
                        read_text(self.log))
        # one copy per worker; the one passed (fd 3) is closed
        until(lambda: self.assertEqual(self.copies_of(p.pid, sock), 2),
              what="two copies of the socket")
        self.assertFalse(os.path.exists("/proc/%d/fd/3" % p.pid)
                         and os.readlink("/proc/%d/fd/3" % p.pid).startswith("socket:"))
        for _ in range(20):
            self.assert_serves(port)
        # They take turns: of connections made one after the other, and
        # kept open, each worker has some (with multishot accepts worker
        # 0 would have every one).
        conns = []
        try:
            for _ in range(20):
                c = H.RawConn(H.HOST, port, timeout=DEADLINE)
                conns.append(c)
                c.send(H.simple_get("/plaintext"))
                self.assertEqual(c.read_response().status, 200)
            status, body = H.get_on_port(port, "/metrics")
            per_worker = dict(re.findall(r'^corio_connections_open\{worker="(\d+)"\} (\d+)$',
                                         body.decode(), re.M))
            self.assertEqual(set(per_worker), {"0", "1"}, body.decode())
            self.assertGreaterEqual(int(per_worker["0"]), 1, per_worker)
            self.assertGreaterEqual(int(per_worker["1"]), 1, per_worker)
        finally:
            for c in conns:
                c.close()
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=DEADLINE), 0, read_text(self.log))

    def test_two_sockets_ipv4_and_ipv6(self):
        if not socket.has_ipv6:
            self.skipTest("no IPv6")
        a, pa = self.listening_socket()
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s6.bind(("::1", 0))
        except OSError as e:
            s6.close()
            self.skipTest("no IPv6 loopback: %s" % e)
        s6.listen(16)
        self.closers.append(s6.close)
        p6 = s6.getsockname()[1]
        self.activated([a, s6], ["--workers", "2"])
        self.assertTrue(matching(self.log, r"listening on \[::1\]:%d \(socket activation\)$"
                                 % p6), read_text(self.log))
        self.assert_serves(pa)
        self.assertEqual(H.get_on_port(p6, host="::1"), (200, b"Hello, World!"))

    def test_a_connection_made_while_corio_is_down_is_served_by_the_next(self):
        sock, port = self.listening_socket()
        p = self.activated([sock])
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=DEADLINE), 0, read_text(self.log))
        with H.RawConn(H.HOST, port, timeout=DEADLINE) as c:  # in the socket's backlog
            c.send(H.simple_get("/plaintext"))
            self.activated([sock])
            r = c.read_response(timeout=DEADLINE)
        self.assertEqual((r.status, r.body), (200, b"Hello, World!"))

    def test_proxy_protocol_comes_from_the_listen_entry_with_its_address(self):
        sock, port = self.listening_socket()
        cfg = self.write_config({"listen": [{"address": "127.0.0.1:%d" % port,
                                             "proxy_protocol": True}]})
        self.activated([sock], ["--config", cfg])
        self.assertTrue(matching(self.log, r"listening on 127\.0\.0\.1:%d \(socket activation, "
                                 r"PROXY protocol required\)$" % port), read_text(self.log))
        with H.RawConn(H.HOST, port, timeout=DEADLINE) as c:
            c.send(b"PROXY TCP4 192.0.2.7 127.0.0.1 5555 %d\r\n" % port
                   + H.simple_get("/plaintext"))
            self.assertEqual(c.read_response().status, 200)
        with H.RawConn(H.HOST, port, timeout=DEADLINE) as c:  # no header: closed unanswered
            c.send(H.simple_get("/plaintext"))
            self.assertTrue(c.wait_closed(timeout=DEADLINE))
            self.assertEqual(c.buf, b"")

    def test_a_socket_that_is_not_a_listening_tcp_socket_is_refused(self):
        unix = self.path("unix.sock")
        for family, kind, where, listens, why in (
                (socket.AF_INET, socket.SOCK_STREAM, (H.HOST, 0), False, "not listening"),
                (socket.AF_INET, socket.SOCK_DGRAM, (H.HOST, 0), False, "not a stream socket"),
                (socket.AF_UNIX, socket.SOCK_STREAM, unix, True, "not an IPv4 or IPv6 socket")):
            with self.subTest(why=why):
                s = socket.socket(family, kind)
                self.closers.append(s.close)
                s.bind(where)
                if listens:
                    s.listen(1)
                open(self.log, "w").close()
                p = self.activated([s], ready=False)
                self.assertEqual(p.wait(timeout=DEADLINE), 1)
                self.assertEqual(read_text(self.log),
                                 "corio: socket activation: fd 3 (LISTEN_FDS=1) is not a "
                                 "listening TCP socket: %s\n" % why)

    def test_sockets_meant_for_another_process_are_ignored(self):
        """LISTEN_PID names another process: "listen" is bound as usual."""
        sock, port = self.listening_socket()
        listen, other = self.listen_args()
        self.activated([sock], listen, env={"TEST_LISTEN_PID": "1"})
        self.assertEqual(matching(self.log, r"socket activation"), [], read_text(self.log))
        self.assert_serves(other)


if __name__ == "__main__":
    H.main()
