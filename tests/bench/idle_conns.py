#!/usr/bin/env python3
"""idle_conns.py - server memory per idle keep-alive connection.

Opens N keep-alive connections to HOST:PORT, sends one `GET /plaintext` on
each and reads the whole response, so every connection has served exactly one
request and is now idle. Reads the server's VmRSS (/proc/PID/status) before
opening them, once all are idle, and again after --settle seconds, and prints
bytes per idle connection = (RSS_after - RSS_before) / N. Python 3 standard
library only; a benchmark, not a test. Everything is bounded by --timeout.

Open files: this process needs N + ~10 descriptors (it raises its soft
RLIMIT_NOFILE to the hard limit) and so does the SERVER (N connections plus
its listeners, ring, logs...): start it with `ulimit -n` >= N + 100 and a
connection limit above N. With the 20,000 open-files limit of the benchmark
machine, N = 18,000 leaves room for both. The server must also keep idle
connections open for longer than the run (keep-alive timeout of minutes).

  idle_conns.py [-n 18000] [--timeout 120] 127.0.0.1:8080 SERVER_PID

The last line is machine-readable:
  RESULT conns=N rss_before_kb=.. rss_idle_kb=.. rss_settled_kb=.. bytes_per_conn=..
"""

import argparse
import errno
import os
import resource
import selectors
import socket
import struct
import sys
import time


def die(msg):
    print(f"idle_conns: error: {msg}", file=sys.stderr)
    sys.exit(1)


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        die(f"server process {pid} is gone")
    die(f"no VmRSS in /proc/{pid}/status")


def rss_parts(pid):
    """RssAnon/RssFile/RssShmem of pid, in kB, as a dict."""
    parts = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("RssAnon:", "RssFile:", "RssShmem:")):
                    parts[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    return parts


def nofile_soft(pid):
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    v = line.split()[3]
                    return None if v == "unlimited" else int(v)
    except OSError:
        return None
    return None


class Conn:
    __slots__ = ("sock", "state", "out", "inb", "need")

    def __init__(self, sock, request):
        self.sock = sock
        self.state = "connect"
        self.out = request
        self.inb = b""
        self.need = None  # total bytes of the response, once the head is parsed


def parse_head(c, host_port):
    """Once the head is in, sets c.need (head + body length). Fails on a
    non-200 answer, a missing Content-Length or `Connection: close`."""
    end = c.inb.find(b"\r\n\r\n")
    if end < 0:
        if len(c.inb) > 65536:
            die(f"{host_port}: response head over 64 KiB")
        return
    lines = c.inb[:end].decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or not status[0].startswith("HTTP/1.") or status[1] != "200":
        die(f"{host_port}: expected HTTP/1.x 200, got {lines[0]!r}")
    length = None
    for h in lines[1:]:
        name, _, value = h.partition(":")
        name = name.strip().lower()
        value = value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and "close" in value:
            die(f"{host_port}: the server answers `Connection: close`: no idle keep-alive "
                "connections to measure")
        elif name == "transfer-encoding":
            die(f"{host_port}: chunked responses are not supported here; want Content-Length")
    if length is None:
        die(f"{host_port}: response without Content-Length")
    c.need = end + 4 + length


IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def open_idle(addr, host_port, n, window, request, deadline, sources):
    """Opens n connections, at most `window` of them connecting or awaiting
    their response at a time; returns the list of idle sockets. With a
    loopback server, the connections come from `sources` addresses
    127.0.0.1, 127.0.0.2, ... in turn: connect() picks its local port from the
    even half of ip_local_port_range first (~14,000 ports) and becomes very
    slow past it, but the same port may serve several source addresses."""
    sel = selectors.DefaultSelector()
    idle = []
    started = 0
    active = 0

    def start_one():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if sources > 1:
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((f"127.0.0.{1 + started % sources}", 0))
        err = s.connect_ex(addr)
        if err not in (0, errno.EINPROGRESS):
            s.close()
            die(f"connect to {host_port}: {os.strerror(err)} after {len(idle)} connections")
        c = Conn(s, request)
        sel.register(s, selectors.EVENT_WRITE, c)

    while len(idle) < n:
        while started < n and active < window:
            start_one()
            started += 1
            active += 1
        left = deadline - time.monotonic()
        if left <= 0:
            die(f"timed out with {len(idle)} of {n} connections idle ({active} in progress)")
        for key, _ in sel.select(timeout=min(left, 1.0)):
            c = key.data
            s = c.sock
            try:
                if c.state == "connect":
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, os.strerror(err))
                    c.state = "send"
                if c.state == "send":
                    sent = s.send(c.out)
                    c.out = c.out[sent:]
                    if not c.out:
                        c.state = "recv"
                        sel.modify(s, selectors.EVENT_READ, c)
                    continue
                data = s.recv(65536)
                if not data:
                    raise OSError(errno.ECONNRESET, "server closed the connection before answering")
                c.inb += data
                if c.need is None:
                    parse_head(c, host_port)
                if c.need is not None and len(c.inb) >= c.need:
                    if len(c.inb) > c.need:
                        die(f"{host_port}: more bytes than one response")
                    sel.unregister(s)
                    c.inb = b""
                    idle.append(s)
                    active -= 1
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                die(f"connection {len(idle) + active} to {host_port}: {e.strerror} "
                    f"({len(idle)} idle so far; is the server's open-files limit or "
                    "max_connections below N?)")
    sel.close()
    return idle


def count_closed(socks):
    """How many of the idle sockets the server has closed (readable = EOF or
    unexpected bytes)."""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    n = len(sel.select(timeout=0))
    sel.close()
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("server", help="HOST:PORT (numeric IPv4)")
    ap.add_argument("pid", type=int, help="PID of the process that serves (whose RSS counts)")
    ap.add_argument("-n", "--conns", type=int, default=int(os.environ.get("CONNS", 18000)),
                    help="idle connections to open (default 18000, env CONNS)")
    ap.add_argument("--path", default="/plaintext")
    ap.add_argument("--window", type=int, default=256,
                    help="connections in progress at a time (default 256)")
    ap.add_argument("--warmup", type=int, default=None,
                    help="connections served (all at once) and closed before the baseline "
                    "RSS, so that what a burst of --window active connections leaves behind "
                    "(pooled stacks, buffers) is not counted per idle connection "
                    "(default: --window)")
    ap.add_argument("--sources", type=int, default=4,
                    help="loopback source addresses to spread the connections over (default 4)")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds between the two 'after' measurements (default 1)")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="bound on the whole run, seconds (default 120)")
    a = ap.parse_args()

    deadline = time.monotonic() + a.timeout
    host, _, port = a.server.rpartition(":")
    if not host or not port.isdigit():
        die(f"bad server address {a.server!r}, want HOST:PORT")
    addr = (host, int(port))
    sources = a.sources if host.startswith("127.") else 1
    if not os.path.exists(f"/proc/{a.pid}"):
        die(f"no process {a.pid}")

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = a.conns + a.window + 16
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft != resource.RLIM_INFINITY and soft < need:
        die(f"this process may open {soft} files, needs {need} for {a.conns} connections")
    srv = nofile_soft(a.pid)
    if srv is not None and srv < a.conns + 16:
        die(f"the server (pid {a.pid}) may open only {srv} files, fewer than the "
            f"{a.conns} connections + its own; raise its ulimit -n or lower -n")

    if a.warmup is None:
        a.warmup = a.window
    request = (f"GET {a.path} HTTP/1.1\r\nHost: {a.server}\r\n\r\n").encode()
    if a.warmup > 0:
        for s in open_idle(addr, a.server, a.warmup, a.window, request, deadline, sources):
            s.close()
        time.sleep(0.2)

    rss0 = rss_kb(a.pid)
    parts0 = rss_parts(a.pid)
    t0 = time.monotonic()
    socks = open_idle(addr, a.server, a.conns, a.window, request, deadline, sources)
    t1 = time.monotonic()
    rss1 = rss_kb(a.pid)
    time.sleep(a.settle)
    rss2 = rss_kb(a.pid)
    parts2 = rss_parts(a.pid)
    closed = count_closed(socks)

    # close with RST (SO_LINGER 0): no TIME_WAIT pile-up of 18,000 client ports
    linger = struct.pack("ii", 1, 0)
    for s in socks:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        except OSError:
            pass
        s.close()

    n = a.conns
    print(f"connections: {n} idle after one request each (opened in {t1 - t0:.1f} s)")
    print(f"server RSS:  before {rss0} kB, all idle {rss1} kB, {a.settle:g} s later {rss2} kB")
    if parts0 and parts2:
        print("server RSS growth by kind: " + ", ".join(
            f"{k} {(parts2[k] - parts0.get(k, 0)) * 1024 / n:.0f} B/conn" for k in sorted(parts2)))
    print(f"bytes per idle connection: {(rss1 - rss0) * 1024 / n:.0f} (all idle), "
          f"{(rss2 - rss0) * 1024 / n:.0f} ({a.settle:g} s later)")
    if closed:
        die(f"the server closed {closed} of the {n} idle connections during the measurement "
            "(keep-alive timeout or limit too low?): figure invalid")
    print(f"RESULT conns={n} rss_before_kb={rss0} rss_idle_kb={rss1} rss_settled_kb={rss2} "
          f"bytes_per_conn={(rss2 - rss0) * 1024 / n:.0f}")


if __name__ == "__main__":
    main()
