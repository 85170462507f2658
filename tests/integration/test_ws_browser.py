"""WebSocket in a real browser: headless Chromium (Debian's chromium, driven
by playwright-core from npm) loads a page that corio serves from its root;
the page's script opens /ws/echo and two sockets in one room of /ws/chat,
exchanges text, binary ArrayBuffers and 200 KB messages, and writes what it
saw into the page as JSON, which the test reads (tests/integration/node/
browser.js). Browsers always offer permessage-deflate: it is negotiated with
the daemon's default configuration and declined with "compression": false.
The page must also leave no console errors (a failed handshake, a protocol
error Chromium detected, an unclean close all show up there).

Without Chromium, node, npm or the packages the module exits 77 (skipped)."""

import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
import node_clients as N  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401

BROWSER_TIMEOUT = 120  # seconds for the whole page, browser start included

# The page: every wait is bounded (PAGE_TIMEOUT_MS); whatever happens, it
# ends with its result in #result and data-done on <body>.
PAGE = r"""<!doctype html>
<html><head><meta charset="utf-8"><title>corio WebSocket test</title>
<link rel="icon" href="data:,">
</head><body><pre id="result"></pre>
<script>
'use strict';
const PAGE_TIMEOUT_MS = 60000;
const base = 'ws://' + location.host;
const out = {echo: null, chat: null, errors: []};

function done() {
  document.getElementById('result').textContent = JSON.stringify(out);
  document.body.dataset.done = '1';
}

function open(path) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(base + path);
    ws.binaryType = 'arraybuffer';
    ws.inbox = [];
    ws.waiters = [];
    const wake = () => { const w = ws.waiters; ws.waiters = []; w.forEach((f) => f()); };
    ws.onmessage = (e) => { ws.inbox.push(e.data); wake(); };
    ws.closed = new Promise((res) => {
      ws.onclose = (e) => { ws.closeInfo = {code: e.code, reason: e.reason, clean: e.wasClean};
                            wake(); res(ws.closeInfo); };
    });
    ws.onopen = () => resolve(ws);
    ws.onerror = () => { out.errors.push('error event on ' + path); reject(new Error('cannot open ' + path)); };
  });
}

// The next message, skipping those for which skip() is true.
async function next(ws, what, skip) {
  for (;;) {
    while (!ws.inbox.length) {
      if (ws.closeInfo) throw new Error('closed (' + JSON.stringify(ws.closeInfo) + ') while waiting for ' + what);
      await new Promise((res) => ws.waiters.push(res));
    }
    const m = ws.inbox.shift();
    if (!skip || !skip(m)) return m;
  }
}

function randomBytes(n) {
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(a.subarray(i, Math.min(n, i + 65536)));
  return a;
}

// Exactly n bytes of UTF-8, never a lone half of a surrogate pair (which
// the browser would send as U+FFFD).
function repeatText(n) {
  const chars = Array.from('corio héllo ✓ 😀 from the browser; ');
  const enc = new TextEncoder();
  const parts = [];
  for (let len = 0, i = 0; ;) {
    const c = chars[i++ % chars.length];
    const cl = enc.encode(c).length;
    if (len + cl > n) {
      parts.push('x'.repeat(n - len));
      break;
    }
    parts.push(c);
    len += cl;
  }
  return parts.join('');
}

function sameBytes(a, b) {
  if (a.byteLength !== b.byteLength) return false;
  const x = new Uint8Array(a), y = new Uint8Array(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

// What arrived against what was sent: a string or an ArrayBuffer(View).
function compare(name, sent, got) {
  const text = typeof sent === 'string';
  const r = {name, kind: text ? 'text' : 'binary',
             got_kind: typeof got === 'string' ? 'text' : (got instanceof ArrayBuffer ? 'binary' : typeof got)};
  if (text) {
    r.bytes = new TextEncoder().encode(sent).length;
    r.equal = got === sent;
  } else {
    const buf = sent instanceof ArrayBuffer ? sent : sent.buffer.slice(sent.byteOffset, sent.byteOffset + sent.byteLength);
    r.bytes = buf.byteLength;
    r.equal = got instanceof ArrayBuffer && sameBytes(buf, got);
  }
  r.got_bytes = typeof got === 'string' ? new TextEncoder().encode(got).length : got.byteLength;
  return r;
}

async function echo() {
  const ws = await open('/ws/echo');
  const res = {extensions: ws.extensions, protocol: ws.protocol, messages: []};
  const counting = new Uint8Array(256).map((_, i) => i);
  const big = randomBytes(200 * 1024);
  const messages = [
    ['text', 'héllo wörld ✓ 😀'],
    ['empty text', ''],
    ['binary ArrayBuffer', counting.buffer],
    ['binary view', big.subarray(1000, 1100)],
    ['70 KB binary', randomBytes(70 * 1024).buffer],
    ['200 KB text', repeatText(200 * 1024)],
    ['200 KB binary', big.buffer],
  ];
  for (const [name, m] of messages) {
    ws.send(m);
    res.messages.push(compare(name, m, await next(ws, 'echo of ' + name)));
  }
  // a burst: sent at once, echoed in order
  const burst = [];
  for (let i = 0; i < 50; i++) burst.push(i % 2 ? 'burst ' + i : new Uint8Array([i, i, i]).buffer);
  burst.forEach((m) => ws.send(m));
  let inOrder = true;
  for (let i = 0; i < burst.length; i++) {
    inOrder = compare('burst', burst[i], await next(ws, 'burst ' + i)).equal && inOrder;
  }
  res.burst_in_order = inOrder;
  ws.close(1000, 'done');
  res.close = await ws.closed;
  return res;
}

async function chat() {
  const room = 'browser-' + Math.random().toString(36).slice(2);
  const a = await open('/ws/chat?room=' + room);
  const b = await open('/ws/chat?room=' + room);
  const res = {extensions: [a.extensions, b.extensions], a_got: [], b_got: []};
  // both members are subscribed once a message of b reaches a: b repeats
  // its hello until one does (at most one every 100 ms)
  const isSync = (m) => m === 'sync';
  let synced = false;
  const syncing = (async () => {
    while (!synced) {
      b.send('sync');
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  await next(a, 'the first sync from b');
  synced = true;
  await syncing;
  res.a_to_b = [['text', 'hello b ✓'], ['binary', new Uint8Array([1, 2, 3]).buffer],
                ['200 KB text', repeatText(200 * 1024)]];
  res.b_to_a = [['text', 'hello a'], ['200 KB binary', randomBytes(200 * 1024).buffer]];
  res.a_to_b.forEach(([, m]) => a.send(m));
  res.b_to_a.forEach(([, m]) => b.send(m));
  for (const [name, m] of res.a_to_b) res.b_got.push(compare(name, m, await next(b, name + ' at b', isSync)));
  for (const [name, m] of res.b_to_a) res.a_got.push(compare(name, m, await next(a, name + ' at a', isSync)));
  delete res.a_to_b;
  delete res.b_to_a;
  // a got nothing of its own, b nothing more (syncs aside)
  res.extra = a.inbox.filter((m) => !isSync(m)).length + b.inbox.filter((m) => !isSync(m)).length;
  a.close(1000);
  b.close(1000);
  res.close = [await a.closed, await b.closed];
  return res;
}

(async () => {
  const timer = new Promise((_, reject) => setTimeout(() => reject(new Error('page timeout')), PAGE_TIMEOUT_MS));
  try {
    out.echo = await Promise.race([echo(), timer]);
    out.chat = await Promise.race([chat(), timer]);
  } catch (e) {
    out.errors.push(String(e && e.stack || e));
  }
  done();
})();
</script></body></html>
"""


class BrowserChecks:
    """Mixed into a TestCase: runs the page once per class against a daemon
    with server_config; the tests look at parts of the result."""

    server_config = None
    result = None

    @classmethod
    def setUpClass(cls):
        chromium = N.chromium_bin()
        with H.CorioServer(args=["--access-log", "off"], config=cls.server_config,
                           root_files={"ws.html": PAGE}) as srv:
            profile = tempfile.mkdtemp(prefix="corio-chromium-")
            try:
                cls.result = N.run_script("browser.js", {
                    "url": srv.url("/ws.html"), "chromium": chromium,
                    "user_data_dir": profile}, timeout=BROWSER_TIMEOUT)
            finally:
                shutil.rmtree(profile, ignore_errors=True)
            cls.server_log = srv.stderr_text()
            cls.server_alive = srv.running()

    def page(self):
        r = self.result
        self.assertEqual(r["status"], 200, r)
        self.assertEqual(r["result"]["errors"], [], r)
        return r["result"]

    def assert_messages(self, got):
        for m in got:
            self.assertEqual((m["got_kind"], m["got_bytes"], m["equal"]),
                             (m["kind"], m["bytes"], True), m)

    def test_no_console_errors(self):
        r = self.result
        self.assertEqual(r["console_errors"], [], r["console"])
        self.assertEqual(r["page_errors"], [])
        self.assertEqual(r["failed_requests"], [])
        self.assertTrue(self.server_alive, self.server_log)

    def test_echo(self):
        e = self.page()["echo"]
        self.assertEqual([m["name"] for m in e["messages"]],
                         ["text", "empty text", "binary ArrayBuffer", "binary view",
                          "70 KB binary", "200 KB text", "200 KB binary"])
        self.assert_messages(e["messages"])
        self.assertTrue(e["burst_in_order"])
        self.assertEqual(e["protocol"], "")
        self.assertEqual(e["close"], {"code": 1000, "reason": "", "clean": True})

    def test_chat_room_of_two(self):
        c = self.page()["chat"]
        self.assertEqual([m["name"] for m in c["b_got"]], ["text", "binary", "200 KB text"])
        self.assertEqual([m["name"] for m in c["a_got"]], ["text", "200 KB binary"])
        self.assert_messages(c["b_got"] + c["a_got"])
        self.assertEqual(c["extra"], 0, c)
        for close in c["close"]:
            self.assertEqual((close["code"], close["clean"]), (1000, True), c)


class TestChromiumWithCompression(BrowserChecks, unittest.TestCase):
    """The default configuration: permessage-deflate, negotiated."""

    def test_permessage_deflate_negotiated(self):
        p = self.page()
        self.assertTrue(p["echo"]["extensions"].startswith("permessage-deflate"), p["echo"])
        for ext in p["chat"]["extensions"]:
            # a room shares one compressed frame: no server context takeover
            self.assertTrue(ext.startswith("permessage-deflate"), ext)
            self.assertIn("server_no_context_takeover", ext)


class TestChromiumWithoutCompression(BrowserChecks, unittest.TestCase):
    server_config = {"websocket": {"compression": False}}

    def test_permessage_deflate_declined(self):
        p = self.page()
        self.assertEqual(p["echo"]["extensions"], "")
        self.assertEqual(p["chat"]["extensions"], ["", ""])


if __name__ == "__main__":
    if H.corio_bin() is not None:
        N.require(chromium=True)  # Chromium and the npm packages, or exit 77 with the reason
    H.main()
