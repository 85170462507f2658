#!/usr/bin/env python3
"""tests/bench/discovery.py - how fast the peer-ID protocol converges (issue 9).

Three corio processes on loopback ports with one config listing all three
(interval 1 s, the default). Figures, each over REPEAT fresh runs:

  found/up      process start -> "self is ..." logged, for a member started
                while the other two are up; "(listen)": from the moment it
                listens (the discovery's start), as the daemon measures it
                with the monotonic clock. The target is <= 20 ms after listen.
  found/dead    the same with one listed peer never started (listed before
                self, so its refused connection is part of the first round).
  converge      last member started -> every member's /cluster shows all
                three up with their ids (target <= one interval).
  restart       a member killed (SIGKILL) and started again -> the others
                log "<entry> restarted" (from its "ready" line; target <= one
                interval).

Times come from the daemons' log timestamps (millisecond resolution) and the
clock of this script before it starts a process (so process start includes
exec and loading), except "(listen)"; /cluster is polled every
10 ms. Not a test: never run by tests/run.sh; every wait is bounded.

Usage: discovery.py CORIO_BIN   (REPEAT=10 in the environment)
"""

import datetime
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPEAT = int(os.environ.get("REPEAT", "10"))
WAIT = 15.0  # bound of every wait, seconds


def free_port():
    """A free port below the ephemeral range (client sockets cannot take it
    between this check and the daemon's bind)."""
    import random
    while True:
        p = random.randint(20000, 30000)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            return p
        except OSError:
            pass
        finally:
            s.close()


def log_time(line):
    """Epoch seconds of a log line's timestamp (2026-12-01T19:03:29.597Z)."""
    ts = line.split(" ", 1)[0].rstrip("Z")
    dt = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f")
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()


class Node:
    def __init__(self, binary, conf, port):
        self.lines = []
        self.cond = threading.Condition()
        self.t0 = time.time()
        self.proc = subprocess.Popen(
            [binary, "--config", conf, "--listen", "127.0.0.1:%d" % port],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.port = port
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait_line(self, needle, after=0):
        """The first line from index 'after' on containing needle."""
        deadline = time.time() + WAIT
        with self.cond:
            while True:
                for line in self.lines[after:]:
                    if needle in line:
                        return line
                left = deadline - time.time()
                if left <= 0:
                    raise RuntimeError("no %r in %d s" % (needle, WAIT))
                self.cond.wait(left)

    def cluster(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/cluster" % self.port, timeout=2) as r:
            return json.load(r)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def config(tmp, ports, extra_dead=None):
    entries = ["127.0.0.1:%d" % p for p in ports]
    if extra_dead:
        entries.insert(0, "127.0.0.1:%d" % extra_dead)
    path = os.path.join(tmp, "c%d.json" % ports[0])
    with open(path, "w") as f:
        json.dump({"servers": entries, "log": {"access": "off"}}, f)
    return path


def found_times(node):
    """(process start -> found, from the log's timestamps; listen -> found,
    as the daemon measured it: "found in round 1, 0.9 ms after start")."""
    line = node.wait_line("discovery: self is")
    after = float(line.split(" ms after start")[0].rsplit(" ", 1)[1])
    return (log_time(line) - node.t0) * 1e3, after


def converged(nodes, ids):
    for n in nodes:
        try:
            c = n.cluster()
        except OSError:
            return False
        if [p["id"] for p in c["peers"]] != ids or not all(p["up"] for p in c["peers"]):
            return False
    return True


def summary(name, xs, unit="ms"):
    xs = sorted(xs)
    p90 = xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]
    print("%-12s n=%-3d median %7.1f %s   p90 %7.1f   max %7.1f" %
          (name, len(xs), statistics.median(xs), unit, p90, xs[-1]))


def main():
    binary = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="corio-disc-")
    up_start, up_listen, dead_start, dead_listen, conv, restart = [], [], [], [], [], []
    for _ in range(REPEAT):
        ports = [free_port() for _ in range(3)]
        conf = config(tmp, ports)
        nodes = []
        try:
            nodes.append(Node(binary, conf, ports[0]))
            nodes.append(Node(binary, conf, ports[1]))
            for n in nodes:
                n.wait_line("discovery: self is")
            t_last = time.time()
            nodes.append(Node(binary, conf, ports[2]))
            a, b = found_times(nodes[2])
            up_start.append(a)
            up_listen.append(b)
            ids = []
            for n in nodes:
                with urllib.request.urlopen("http://127.0.0.1:%d/server_id" % n.port,
                                            timeout=2) as r:
                    ids.append(json.load(r))
            deadline = time.time() + WAIT
            while not converged(nodes, ids):
                if time.time() > deadline:
                    raise RuntimeError("no convergence in %d s" % WAIT)
                time.sleep(0.01)
            conv.append((time.time() - t_last) * 1e3)
            # restart: kill the middle one, start it again on its port
            marks = [len(nodes[0].lines), len(nodes[2].lines)]
            nodes[1].stop(signal.SIGKILL)
            nodes[1] = Node(binary, conf, ports[1])
            ready = log_time(nodes[1].wait_line(" ready ("))
            seen = [log_time(nodes[i].wait_line("%s restarted" % ("127.0.0.1:%d" % ports[1]),
                                                m)) for i, m in ((0, marks[0]), (2, marks[1]))]
            restart.append((max(seen) - ready) * 1e3)
        finally:
            for n in nodes:
                n.stop()
        # one listed peer dead (never started), listed first
        ports = [free_port() for _ in range(2)]
        conf = config(tmp, ports, extra_dead=free_port())
        nodes = [Node(binary, conf, ports[0])]
        try:
            nodes[0].wait_line("discovery: self is")
            nodes.append(Node(binary, conf, ports[1]))
            a, b = found_times(nodes[1])
            dead_start.append(a)
            dead_listen.append(b)
        finally:
            for n in nodes:
                n.stop()
    print("discovery: %d runs, interval 1000 ms, loopback" % REPEAT)
    summary("found/up", up_start)
    summary("  (listen)", up_listen)
    summary("found/dead", dead_start)
    summary("  (listen)", dead_listen)
    summary("converge", conv)
    summary("restart", restart)


if __name__ == "__main__":
    main()
