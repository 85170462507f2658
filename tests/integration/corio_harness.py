"""Shared harness for corio's integration tests.

Starts the real daemon (CORIO_BIN) on loopback, drains its stderr/stdout into
buffers that tests can inspect, and provides small clients: raw sockets with a
minimal HTTP/1.1 response reader, http.client connections and curl.

Only the Python 3.11 standard library and the `curl` command line tool are used.
Every blocking call is bounded by a timeout; CorioServer.close() always kills
the daemon.
"""

import base64
import email.utils
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HOST = "127.0.0.1"
SKIP_EXIT = 77
STARTUP_TIMEOUT = 10.0
LISTEN_RE = re.compile(r"listening on (\S+):(\d+)")
IMF_FIXDATE_RE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
    r"\d{2}:\d{2}:\d{2} GMT$")
HASH_SALT = b"corio"


# ---------------------------------------------------------------------------
# binary discovery / skipping


def corio_bin():
    """Path of the daemon under test, or None when unusable."""
    path = os.environ.get("CORIO_BIN", "")
    if path and os.path.isfile(path) and os.access(path, os.X_OK):
        return os.path.abspath(path)  # the daemon runs with cwd = a temp dir
    return None


def skip_reason():
    path = os.environ.get("CORIO_BIN", "")
    if not path:
        return "CORIO_BIN is not set"
    return "CORIO_BIN=%s is not an executable file" % path


def setUpModule():  # noqa: N802 - imported by test modules for unittest discovery
    if corio_bin() is None:
        raise unittest.SkipTest(skip_reason())


def main():
    """Entry point for every test module: exit 77 (skipped) without a binary,
    otherwise unittest.main() (non-zero exit on failure)."""
    if corio_bin() is None:
        print("SKIP: " + skip_reason(), file=sys.stderr)
        sys.exit(SKIP_EXIT)
    unittest.main(verbosity=2)


def have_curl():
    return shutil.which("curl") is not None


# ---------------------------------------------------------------------------
# document root description


class Dir:
    """root_files value: create an (empty) directory."""


class Symlink:
    """root_files value: create a symlink pointing to `target` (as given,
    relative targets are relative to the link's directory)."""

    def __init__(self, target):
        self.target = target


def _populate(base, files):
    for rel, content in files.items():
        path = os.path.join(base, rel.lstrip("/"))
        if isinstance(content, Dir) or rel.endswith("/"):
            os.makedirs(path, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if isinstance(content, Symlink):
            os.symlink(content.target, path)
        else:
            if isinstance(content, str):
                content = content.encode()
            with open(path, "wb") as f:
                f.write(content)


# ---------------------------------------------------------------------------
# the daemon


class ServerError(RuntimeError):
    pass


class CorioServer:
    """The corio daemon, started on 127.0.0.1 with a free port.

    args       extra command line flags
    config     dict written as JSON to <tmp>/corio.json and passed with --config
    root_files dict path -> bytes | str | Dir() | Symlink(target): creates the
               document root <tmp>/www and passes --root (unless the config
               already has "root" or args contain --root)
    outside_files  same format, created in <tmp> (outside the root; e.g.
               "secret.txt" is reachable as "../secret.txt" from the root)
    listen     add `--listen 127.0.0.1:0` (default True)
    wait_ready wait for the "listening on" log line (default True)
    """

    def __init__(self, args=None, config=None, root_files=None, outside_files=None,
                 listen=True, wait_ready=True, startup_timeout=STARTUP_TIMEOUT):
        self.bin = corio_bin()
        if self.bin is None:
            raise unittest.SkipTest(skip_reason())
        self.args = list(args or [])
        self.config = config
        self.root_files = root_files
        self.outside_files = outside_files
        self.listen = listen
        self.wait_ready = wait_ready
        self.startup_timeout = startup_timeout
        self.tmpdir = tempfile.mkdtemp(prefix="corio-it-")
        self.root = None
        self.config_path = None
        self.proc = None
        self.host = HOST
        self.port = None
        self.addresses = []  # [(host, port)] in log order
        self._lines = []  # stderr lines (str, without newline)
        self._stdout = []
        self._cond = threading.Condition()
        self._threads = []
        self.returncode = None

    # -- lifecycle -----------------------------------------------------------

    def command(self):
        cmd = [self.bin]
        if self.config is not None:
            self.config_path = os.path.join(self.tmpdir, "corio.json")
            with open(self.config_path, "w") as f:
                json.dump(self.config, f)
            cmd += ["--config", self.config_path]
        if self.listen:
            cmd += ["--listen", "%s:0" % HOST]
        if self.root_files is not None:
            self.root = os.path.join(self.tmpdir, "www")
            os.makedirs(self.root, exist_ok=True)
            _populate(self.root, self.root_files)
            if "--root" not in self.args and not (self.config and "root" in self.config):
                cmd += ["--root", self.root]
        if self.outside_files:
            _populate(self.tmpdir, self.outside_files)
        return cmd + self.args

    def start(self):
        """Starts the daemon (and waits for it to listen, unless wait_ready is
        off). On any failure the server is closed (process killed, temp dir
        removed) before the exception goes on, so callers need no cleanup.
        Once only: `with server:` starts it too (a second start would leave
        the first process running, unseen)."""
        if self.proc is not None:
            raise RuntimeError("CorioServer.start() called twice")
        try:
            cmd = self.command()
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                cwd=self.tmpdir, start_new_session=True)
            for stream, sink in ((self.proc.stderr, self._lines),
                                 (self.proc.stdout, self._stdout)):
                t = threading.Thread(target=self._drain, args=(stream, sink), daemon=True)
                t.start()
                self._threads.append(t)
            if self.wait_ready:
                self._wait_listening()
        except BaseException:
            self.close()
            raise
        return self

    def _drain(self, stream, sink):
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                with self._cond:
                    sink.append(line)
                    self._cond.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self._cond.notify_all()

    def _wait_listening(self):
        deadline = time.monotonic() + self.startup_timeout
        with self._cond:
            while True:
                for line in self._lines:
                    m = LISTEN_RE.search(line)
                    if m:
                        addr = (m.group(1).strip("[]"), int(m.group(2)))
                        if addr not in self.addresses:
                            self.addresses.append(addr)
                if self.addresses:
                    break  # more --listen lines: see wait_listening_count()
                if self.proc.poll() is not None:
                    raise ServerError("corio exited with status %s before listening:\n%s"
                                      % (self.proc.returncode, self.stderr_text()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ServerError("corio did not log 'listening on' within %.0f s:\n%s"
                                      % (self.startup_timeout, self.stderr_text()))
                self._cond.wait(min(left, 0.1))
        self.host, self.port = self.addresses[0]
        if self.host in ("0.0.0.0", "*", ""):
            self.host = HOST

    def wait_listening_count(self, n, timeout=5.0):
        """Wait until n 'listening on' lines were logged; returns the addresses."""
        self.wait_for_log(LISTEN_RE, timeout=timeout, count=n)
        with self._cond:
            self.addresses = []
            for line in self._lines:
                m = LISTEN_RE.search(line)
                if m:
                    self.addresses.append((m.group(1).strip("[]"), int(m.group(2))))
        return list(self.addresses)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        if self.running():
            self.proc.send_signal(sig)

    def wait(self, timeout):
        """Wait for exit; returns the exit code or None on timeout."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Send `sig`, wait up to `timeout` s and return the exit code
        (negative for death by signal). SIGKILLs and raises on timeout."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                self.returncode = self.proc.returncode
                raise ServerError("corio did not exit within %.1f s after signal %d"
                                  % (timeout, sig))
        self.returncode = self.proc.returncode
        self._join_threads()
        return self.returncode

    def close(self):
        """Kill the daemon if still running and remove the temp dir."""
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.proc.kill()
                except OSError:
                    pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self.returncode = self.proc.returncode
            self._join_threads()
            for s in (self.proc.stdout, self.proc.stderr):
                try:
                    s.close()
                except (OSError, ValueError):
                    pass
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def _join_threads(self):
        for t in self._threads:
            t.join(timeout=2)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        return False

    # -- logs ----------------------------------------------------------------

    def stderr_lines(self):
        with self._cond:
            return list(self._lines)

    def stderr_text(self):
        return "\n".join(self.stderr_lines())

    def stdout_text(self):
        with self._cond:
            return "\n".join(self._stdout)

    def wait_for_log(self, pattern, timeout=5.0, count=1):
        """Wait until `count` stderr lines match regex `pattern`; returns the
        matching lines or raises AssertionError."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hits = [l for l in self._lines if rx.search(l)]
                if len(hits) >= count:
                    return hits
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %d stderr line(s) matching %r within %.1f s:\n%s"
                                         % (count, rx.pattern, timeout, "\n".join(self._lines)))
                self._cond.wait(min(left, 0.1))

    # -- clients -------------------------------------------------------------

    @property
    def base_url(self):
        return "http://%s:%d" % (self.host, self.port)

    def url(self, path):
        return self.base_url + path

    def connect(self, timeout=5.0):
        """A RawConn to the server."""
        return RawConn(self.host, self.port, timeout=timeout)

    def http(self, timeout=10.0):
        """An http.client.HTTPConnection to the server."""
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=10.0):
        """One request on a fresh http.client connection; returns
        (status, HTTPMessage headers, body bytes)."""
        c = self.http(timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, r.headers, data
        finally:
            c.close()

    def raw(self, data, timeout=5.0, head=False):
        """Send raw bytes on a fresh connection and read one response."""
        with self.connect(timeout=timeout) as c:
            c.send(data)
            return c.read_response(head=head)

    def curl(self, *args, timeout=10.0):
        return curl(*args, timeout=timeout)


# ---------------------------------------------------------------------------
# raw sockets and a minimal HTTP/1.1 response reader


class Response:
    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value)
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return default

    def header_all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def has_token(self, name, token):
        """True when the comma-separated header `name` contains `token`."""
        t = token.lower()
        for v in self.header_all(name):
            if t in [x.strip().lower() for x in v.split(",")]:
                return True
        return False

    def __repr__(self):
        return "<Response %s %d %r headers=%r body=%d bytes>" % (
            self.version, self.status, self.reason, self.headers, len(self.body))


class ConnectionClosed(Exception):
    pass


class RawConn:
    """A TCP connection with a receive buffer. Every read is bounded by the
    socket timeout. A reset by the peer is treated like a close."""

    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""
        self.eof = False
        self.reset = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def send_slowly(self, data, delay=0.005, chunk=1):
        """Send `data` `chunk` bytes at a time with `delay` s between sends.
        Returns the number of bytes sent before the peer closed (if it did)."""
        if isinstance(data, str):
            data = data.encode("latin-1")
        sent = 0
        for i in range(0, len(data), chunk):
            try:
                self.sock.sendall(data[i:i + chunk])
            except OSError:
                return sent
            sent += len(data[i:i + chunk])
            time.sleep(delay)
        return sent

    def _recv_some(self, timeout=None):
        """One recv into the buffer; returns bytes read (b"" on EOF)."""
        if self.eof:
            return b""
        old = self.sock.gettimeout()
        if timeout is not None:
            self.sock.settimeout(max(timeout, 0.001))
        try:
            d = self.sock.recv(65536)
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            self.reset = True
            d = b""
        finally:
            if timeout is not None:
                try:
                    self.sock.settimeout(old)
                except OSError:
                    pass
        if not d:
            self.eof = True
        self.buf += d
        return d

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out waiting for data")
        if not self._recv_some(timeout=left):
            raise ConnectionClosed("connection closed by peer (buffer: %r)" % self.buf[:200])

    def read_until(self, marker, timeout=None):
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while marker not in self.buf:
            self._fill(deadline)
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_to_eof(self, timeout=None):
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out waiting for the peer to close")
            self._recv_some(timeout=left)
        out, self.buf = self.buf, b""
        return out

    def recv_for(self, seconds):
        """Collect whatever arrives within `seconds` (stops early on EOF)."""
        deadline = time.monotonic() + seconds
        start = len(self.buf)
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                self._recv_some(timeout=left)
            except socket.timeout:
                break
        out = self.buf[start:]
        return out

    def wait_closed(self, timeout=3.0):
        """True when the peer closes (EOF or reset) within `timeout`. Bytes
        that arrive meanwhile stay in self.buf."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                self._recv_some(timeout=left)
            except socket.timeout:
                return False
        return True

    def read_response(self, head=False, timeout=None):
        """Read one response (an interim 1xx response is returned on its own).
        head=True: the request was HEAD, so no body follows."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        i = self.buf.index(b"\r\n\r\n")
        raw_head, self.buf = self.buf[:i], self.buf[i + 4:]
        lines = raw_head.decode("latin-1").split("\r\n")
        m = re.match(r"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
        if not m:
            raise AssertionError("bad status line: %r" % lines[0])
        version, status, reason = m.group(1), int(m.group(2)), m.group(3) or ""
        headers = []
        for line in lines[1:]:
            if ":" not in line:
                raise AssertionError("bad header line: %r" % line)
            k, v = line.split(":", 1)
            headers.append((k, v.strip(" \t")))
        resp = Response(version, status, reason, headers, b"", raw_head)
        if head or 100 <= status < 200 or status in (204, 304):
            return resp
        te = resp.header("Transfer-Encoding")
        cl = resp.header("Content-Length")
        left = lambda: deadline - time.monotonic()  # noqa: E731
        if te is not None and "chunked" in te.lower():
            body = b""
            while True:
                size_line = self.read_until(b"\r\n", timeout=left())
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.read_until(b"\r\n", timeout=left()) != b"\r\n":
                        pass  # trailers
                    break
                body += self.read_exact(size, timeout=left())
                if self.read_exact(2, timeout=left()) != b"\r\n":
                    raise AssertionError("bad chunk terminator")
            resp.body = body
        elif cl is not None:
            resp.body = self.read_exact(int(cl), timeout=left())
        else:
            resp.body = self.read_to_eof(timeout=left())
        return resp


def read_all_responses(conn, count, head_indexes=(), timeout=5.0):
    return [conn.read_response(head=(i in head_indexes), timeout=timeout) for i in range(count)]


# ---------------------------------------------------------------------------
# curl


def get_on_port(port, path="/plaintext", timeout=10.0, host=HOST):
    """One GET on a fresh connection to host:port: (status, body)."""
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def rss_kib(pid):
    """Resident memory of process pid, in KiB (VmRSS)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_fds(pid):
    """Open file descriptors of process pid."""
    return len(os.listdir("/proc/%d/fd" % pid))


def curl(*args, timeout=10.0):
    """Run curl -sS with --max-time; returns CompletedProcess (bytes)."""
    cmd = ["curl", "-sS", "--max-time", str(timeout)] + [str(a) for a in args]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout + 5)


def parse_curl_i(out):
    """Split `curl -i` output into ([Response heads...], body). Interim (1xx)
    responses come first in the list; the body belongs to the last one."""
    heads = []
    rest = out
    while rest.startswith(b"HTTP/"):
        i = rest.find(b"\r\n\r\n")
        if i < 0:
            raise AssertionError("incomplete header block in curl output: %r" % rest[:300])
        raw_head, rest = rest[:i], rest[i + 4:]
        lines = raw_head.decode("latin-1").split("\r\n")
        m = re.match(r"^(HTTP/[\d.]+) (\d{3})(?: (.*))?$", lines[0])
        if not m:
            raise AssertionError("bad status line in curl output: %r" % lines[0])
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k, v.strip()))
        heads.append(Response(m.group(1), int(m.group(2)), m.group(3) or "", headers, b"",
                              raw_head))
        if not 100 <= heads[-1].status < 200:
            break
    if not heads:
        raise AssertionError("no HTTP response in curl output: %r" % out[:300])
    heads[-1].body = rest
    return heads, rest


# ---------------------------------------------------------------------------
# misc helpers


def pbkdf2_hex(body, iterations):
    return hashlib.pbkdf2_hmac("sha256", body, HASH_SALT, iterations, 32).hex()


HASH_MAX_ITERATIONS = 10000000  # the daemon's limit for /hash?iterations=


def hash_request(iterations, body):
    """A complete POST /hash request (raw bytes)."""
    return (b"POST /hash?iterations=%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % (iterations, len(body)) + body)


def calibrate_hash_iterations(server, seconds=2.0, probe_seconds=0.2, probes=3):
    """How many /hash iterations make one job take about `seconds` on this
    machine, measured through `server` (its pool, at its priority), capped at
    HASH_MAX_ITERATIONS.

    Tests that need hashes still running while they measure something use
    this instead of a fixed count, which is too short on a fast CPU (a
    million iterations: 0.33 s on a fast EPYC, 0.5-1 s on this project's
    Xeon VM, depending on its load). The probe
    grows until one run takes probe_seconds; then the fastest of `probes`
    runs counts (the least disturbed by other load), so a busy moment during
    calibration errs towards jobs longer than asked, not shorter."""
    iterations = 20000
    while True:
        elapsed = _time_hash(server, iterations)
        if elapsed >= probe_seconds or iterations >= HASH_MAX_ITERATIONS:
            break
        iterations = min(HASH_MAX_ITERATIONS,
                         iterations * max(2, int(probe_seconds / max(elapsed, 1e-3)) + 1))
    best = elapsed
    for _ in range(probes - 1):
        best = min(best, _time_hash(server, iterations))
    return max(1, min(HASH_MAX_ITERATIONS, int(iterations * seconds / max(best, 1e-6))))


def _time_hash(server, iterations):
    with server.connect(timeout=120) as c:
        t0 = time.monotonic()
        c.send(hash_request(iterations, b"calibration"))
        r = c.read_response(timeout=120)
        elapsed = time.monotonic() - t0
    if r.status != 200:
        raise AssertionError("calibration /hash?iterations=%d answered %d" % (iterations, r.status))
    return elapsed


def _proc_net_tcp_addr(field):
    ip_hex, port_hex = field.split(":")
    ip = socket.inet_ntoa(int(ip_hex, 16).to_bytes(4, sys.byteorder))
    return ip, int(port_hex, 16)


_TCP_LIVE = ("01", "08")  # ESTABLISHED, CLOSE_WAIT (not a TIME_WAIT of an old connection)


def unread_by_server(conn):
    """Bytes sent on `conn` that the server may not have read yet: those its
    TCP has not acknowledged (the client's send queue: still on the way, on a
    loaded machine) plus those waiting in its socket (the receive queue of the
    server's end), from /proc/net/tcp. None when the server's end is gone."""
    client = conn.sock.getsockname()[:2]
    server = conn.sock.getpeername()[:2]
    unacked = unread = None
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[3] not in _TCP_LIVE:
                continue
            local, remote = _proc_net_tcp_addr(fields[1]), _proc_net_tcp_addr(fields[2])
            tx_queue, rx_queue = (int(x, 16) for x in fields[4].split(":"))
            if (local, remote) == (client, server):
                unacked = tx_queue
            elif (local, remote) == (server, client):
                unread = rx_queue
    if unacked is None or unread is None:
        return None
    return unacked + unread


def wait_server_read(conn, timeout=10.0):
    """Wait until the server has read everything sent on `conn` so far: an
    observable state (all of it acknowledged, none left in the server's
    socket) instead of a sleep that hopes the server got there. Once it
    holds, the server's loop has the bytes: anything it handles later (a
    signal, a timer) comes after them."""
    deadline = time.monotonic() + timeout
    while True:
        left = unread_by_server(conn)
        if left == 0:
            return
        if left is None:
            raise AssertionError("the server's end of the connection is gone")
        if time.monotonic() > deadline:
            raise AssertionError("the server left %d byte(s) unread for %.0f s" % (left, timeout))
        time.sleep(0.005)


def is_imf_fixdate(value):
    return bool(value and IMF_FIXDATE_RE.match(value))


def http_date(ts):
    return email.utils.formatdate(ts, usegmt=True)


def simple_get(path, host_header="x"):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host_header)).encode("latin-1")


def assert_server_alive(test, server):
    """The daemon is still running and still answers GET /plaintext."""
    test.assertTrue(server.running(), "corio died:\n" + server.stderr_text())
    with server.connect() as c:
        c.send(simple_get("/plaintext"))
        r = c.read_response()
    test.assertEqual(r.status, 200)
    test.assertEqual(r.body, b"Hello, World!")


def content_type_base(value):
    return (value or "").split(";")[0].strip().lower()


class ServerTestCase(unittest.TestCase):
    """Tests sharing one daemon, started once per class with server_args,
    server_config and server_kwargs (more CorioServer arguments)."""

    server_args = ["--access-log", "off"]
    server_config = None
    server_kwargs = {}
    server = None

    @classmethod
    def setUpClass(cls):
        cls.server = CorioServer(args=cls.server_args, config=cls.server_config,
                                 **cls.server_kwargs)
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        if cls.server is not None:
            cls.server.close()


def listening_socket():
    """A TCP socket bound to a free port of 127.0.0.1, not listening yet."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s


class Acceptor:
    """Accepts on `sock` (made to listen) in a thread; handle(conn) runs
    in a thread of its own per connection. close() stops everything."""

    def __init__(self, sock, handle):
        self.sock = sock
        self.handle = handle
        self.conns = []
        self.lock = threading.Lock()
        self.closed = False
        sock.listen(64)
        self.port = sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def track(self, s):
        with self.lock:
            if self.closed:
                s.close()
                return False
            self.conns.append(s)
            return True

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.track(conn):
                threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        try:
            self.handle(conn)
        except OSError:
            pass

    def close(self):
        with self.lock:
            self.closed = True
            conns, self.conns = self.conns, []
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        except OSError:
            pass
        # ended before the fd can become another socket's (the thread would
        # accept on that one)
        self.thread.join(timeout=30)
        self.sock.close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()


def read_head(conn):
    """Reads a request head from a socket: its bytes, or b"" on EOF before
    it ended."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return b""
        data += chunk
    return data


def get_json(server, path, timeout=10):
    """GET path from a CorioServer, which must answer 200: the parsed JSON
    body."""
    st, _, body = server.request("GET", path, timeout=timeout)
    if st != 200:
        raise AssertionError("GET %s answered %d: %r" % (path, st, body[:200]))
    return json.loads(body)


def server_id(server):
    """The server's peer id (GET /server_id), checked to be 32 hex digits."""
    sid = get_json(server, "/server_id")
    assert re.fullmatch(r"[0-9a-f]{32}", sid), sid
    return sid


class DebugServerTestCase(ServerTestCase):
    """A ServerTestCase whose daemon runs with CORIO_DEBUG=1 (debug mode, and
    GET /debug/block?ms=N, a handler that keeps its loop busy)."""

    @classmethod
    def setUpClass(cls):
        os.environ["CORIO_DEBUG"] = "1"
        try:
            super().setUpClass()
        finally:
            del os.environ["CORIO_DEBUG"]


# -- WebSocket on raw sockets (tests that need no client library) -----------

def ws_frame(op, payload, fin=True):
    """A masked client frame (any length form)."""
    b0 = (0x80 if fin else 0) | op
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, 0x80 | 127, n)
    key = os.urandom(4)
    return hdr + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_connect(addr, path, deflate=False, timeout=3.0):
    """A socket past the 101 of a WebSocket handshake on path (bytes),
    offering permessage-deflate if asked; OSError if refused."""
    s = socket.create_connection(addr, timeout=timeout)
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
              b"\r\nSec-WebSocket-Version: 13\r\n" +
              (b"Sec-WebSocket-Extensions: permessage-deflate\r\n" if deflate else b"") +
              b"\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            s.close()
            raise OSError("closed during the WebSocket handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101 "):
        s.close()
        raise OSError("no 101: %r" % head[:40])
    return s


def until(check, timeout=30.0, step=0.05, what="the expected state"):
    """Calls check() until it returns without raising AssertionError (or
    OSError); returns its result. At the deadline the last failure is
    raised, prefixed with `what`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, OSError) as e:
            if time.monotonic() >= deadline:
                raise AssertionError("%s not reached within %.0f s; last: %s"
                                     % (what, timeout, e)) from e
        time.sleep(step)


def listening_on(port):
    """Whether some socket listens on TCP port `port` (IPv4 or IPv6)."""
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except FileNotFoundError:
            pass
    return False


class Reserved:
    """A port held by a bound socket that never listens: the kernel will not
    hand it out to another bind(0), while a server started on it (with
    SO_REUSEADDR) can still bind and listen there, so a test knows its port
    before the server starts, and a restarted server gets the same one."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()
