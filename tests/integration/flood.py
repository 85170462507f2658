"""The upload flood of issue 8, shared by the flood test (tests/integration/
test_flood.py) and its benchmark (tests/bench/flood.sh).

Many connections (15,000 by default) each trickle a 1 MiB body to a route
that buffers bodies whole (/hash?iterations=1): two thirds announce the
length (Content-Length), one third send it chunked. A client answered 503
waits a second or more (Retry-After, plus jitter) and tries again. Meanwhile
a probe asks for /plaintext every 20 ms on a keep-alive connection and
records each answer's latency, and the daemon's resident memory is sampled
every 100 ms. Everything is bounded in time: the flood stops after
`seconds`, whatever state its connections are in.

Run alone it prints its figures as JSON:
    python3 flood.py HOST PORT PID [connections] [seconds]
"""

import asyncio
import json
import multiprocessing
import os
import random
import socket
import sys
import threading
import time

BODY = 1 << 20
PIECE = 64 * 1024       # sent every INTERVAL: a trickle of 256 KiB/s per connection
INTERVAL = 0.25
CLIENT_BUFFER = 256 * 1024  # unsent bytes a client keeps before it waits (the server paused it)
CONNECTS_AT_ONCE = 512


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from corio_harness import rss_kib  # noqa: E402


class Flood:
    def __init__(self, host, port, pid, connections=15000, seconds=15.0):
        self.host, self.port, self.pid = host, port, pid
        self.connections = connections
        self.seconds = seconds
        self.counts = {}
        self.open_now = 0
        self.open_peak = 0
        self.rss_peak_kib = 0
        self.rss_samples = []
        self.probe_ms = []
        self.probe_failures = []
        self.until = None

    def count(self, what):
        self.counts[what] = self.counts.get(what, 0) + 1

    def running(self):
        return time.monotonic() < self.until

    # -- the uploaders (asyncio) ------------------------------------------------

    async def upload_once(self, chunked, gate):
        async with gate:
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), timeout=10)
            except (OSError, asyncio.TimeoutError):
                self.count("connect_failed")
                return None
        self.open_now += 1
        self.open_peak = max(self.open_peak, self.open_now)
        try:
            head = ("POST /hash?iterations=1 HTTP/1.1\r\nHost: flood\r\n%s\r\n"
                    % ("Transfer-Encoding: chunked\r\n" if chunked
                       else "Content-Length: %d\r\n" % BODY)).encode()
            w.write(head)
            answer = asyncio.ensure_future(r.read(256))
            sent = 0
            piece = b"x" * PIECE
            while self.running() and not answer.done():
                if sent < BODY and w.transport.get_write_buffer_size() < CLIENT_BUFFER:
                    w.write(b"%x\r\n%s\r\n" % (PIECE, piece) if chunked else piece)
                    sent += PIECE
                    if sent >= BODY and chunked:
                        w.write(b"0\r\n\r\n")
                await asyncio.wait({answer}, timeout=INTERVAL)
            if not answer.done():
                answer.cancel()
                self.count("cut_at_the_end")
                return None
            data = answer.result()
            status = data[9:12].decode("ascii", "replace") if data.startswith(b"HTTP/1.1 ") else "?"
            self.count(status)
            return status
        except (OSError, asyncio.CancelledError):
            self.count("reset")
            return None
        finally:
            self.open_now -= 1
            w.transport.abort()

    async def uploader(self, i, gate):
        chunked = i % 3 == 2
        while self.running():
            status = await self.upload_once(chunked, gate)
            if status != "200" and self.running():
                # Retry-After: 1, with jitter so that retries do not come in waves
                await asyncio.sleep(1.0 + random.random() * 4.0)

    async def run_uploaders(self):
        gate = asyncio.Semaphore(CONNECTS_AT_ONCE)
        tasks = [asyncio.ensure_future(self.uploader(i, gate)) for i in range(self.connections)]
        await asyncio.sleep(self.seconds)
        await asyncio.wait(tasks, timeout=15)
        for t in tasks:
            t.cancel()

    # -- the probe and the sampler (threads) -------------------------------------

    def probe(self, out):
        """In a process of its own: in the flood's process it would wait for
        the interpreter's lock behind the uploaders and measure that."""
        req = b"GET /plaintext HTTP/1.1\r\nHost: probe\r\n\r\n"
        s = None
        while self.running():
            try:
                if s is None:
                    s = socket.create_connection((self.host, self.port), timeout=10)
                t0 = time.monotonic()
                s.sendall(req)
                data = b""
                while not data.endswith(b"Hello, World!"):
                    chunk = s.recv(4096)
                    if not chunk:
                        raise OSError("closed")
                    data += chunk
                self.probe_ms.append((time.monotonic() - t0) * 1000)
                if not data.startswith(b"HTTP/1.1 200 "):
                    self.probe_failures.append(data[:40])
            except OSError as e:
                self.probe_failures.append(repr(e))
                if s:
                    s.close()
                s = None
            time.sleep(0.02)
        if s:
            s.close()
        out.put((self.probe_ms, [str(f) for f in self.probe_failures]))

    def sample(self):
        while self.running():
            kib = rss_kib(self.pid)
            self.rss_samples.append(kib)
            self.rss_peak_kib = max(self.rss_peak_kib, kib)
            time.sleep(0.1)

    def run(self):
        self.until = time.monotonic() + self.seconds
        ctx = multiprocessing.get_context("fork")
        results = ctx.Queue()
        prober = ctx.Process(target=self.probe, args=(results,), daemon=True)
        prober.start()
        sampler = threading.Thread(target=self.sample, daemon=True)
        sampler.start()
        asyncio.run(self.run_uploaders())
        sampler.join(15)
        try:
            self.probe_ms, self.probe_failures = results.get(timeout=30)
        except Exception as e:  # noqa: BLE001 - reported as a failure of the probe
            self.probe_failures = ["probe process: %r" % e]
        prober.join(5)
        return self

    def percentile(self, p):
        xs = sorted(self.probe_ms)
        return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else None

    def report(self):
        return {
            "connections": self.connections,
            "seconds": self.seconds,
            "open_peak": self.open_peak,
            "answers": self.counts,
            "rss_peak_mib": round(self.rss_peak_kib / 1024, 1),
            "plaintext_probes": len(self.probe_ms),
            "plaintext_p50_ms": round(self.percentile(0.50) or 0, 2),
            "plaintext_p99_ms": round(self.percentile(0.99) or 0, 2),
            "plaintext_max_ms": round(max(self.probe_ms or [0]), 2),
            "probe_failures": len(self.probe_failures),
        }


def raise_fd_limit():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


if __name__ == "__main__":
    raise_fd_limit()
    host, port, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 15000
    secs = float(sys.argv[5]) if len(sys.argv) > 5 else 15.0
    print(json.dumps(Flood(host, port, pid, n, secs).run().report()))
