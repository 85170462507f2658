'use strict';
/*
 * ws_client.js - Node's `ws` against corio, one scenario per run:
 *
 *   node ws_client.js '{"scenario": "echo", "url": "ws://127.0.0.1:PORT/ws/echo", ...}'
 *
 * Prints one line of JSON with what it observed (test_ws_node.py asserts on
 * it) and exits 0; exits 1 with {"error": ...} when the scenario could not
 * run (a connection refused, an unexpected close), 3 when args.timeout_ms
 * passed first (with the step it was waiting for). `ws` comes from NODE_PATH
 * (the build tree's npm/node_modules, see node_clients.py).
 */
const crypto = require('crypto');
const WebSocket = require('ws');

const args = JSON.parse(process.argv[2] || '{}');
let step = 'start';
const deadline = setTimeout(() => {
  finish({error: 'timeout', step}, 3);
}, args.timeout_ms || 60000);

function finish(result, code) {
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code || 0));
}

function sha(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex').slice(0, 16);
}

// Text of exactly n UTF-8 bytes: random code points of 1 to 4 bytes, or a
// repeated (compressible) line.
function makeText(n, fill) {
  if (fill === 'repeat') {
    const line = 'corio says héllo ✓ 😀 to the WebSocket world; ';
    let s = line.repeat(Math.ceil(n / Buffer.byteLength(line)) + 1);
    let b = Buffer.from(s);
    // cut at a character boundary, then pad with ASCII to exactly n bytes
    let cut = n;
    while (cut > 0 && (b[cut] & 0xc0) === 0x80) cut--;
    return b.subarray(0, cut).toString() + 'x'.repeat(n - cut);
  }
  const pool = ['a', 'Z', '0', ' ', 'é', 'ß', 'я', '✓', '€', '語', '😀', '𝄞'];
  const rnd = crypto.randomBytes(n);
  const parts = [];
  let len = 0;
  for (let i = 0; len < n; i++) {
    let c = pool[rnd[i % n] % pool.length];
    const cl = Buffer.byteLength(c);
    if (len + cl > n) c = 'y'.repeat(n - len);
    parts.push(c);
    len += Buffer.byteLength(c);
  }
  return parts.join('');
}

function makeBinary(n, fill) {
  if (fill === 'repeat') return Buffer.alloc(n, 'corio binary ');
  if (fill === 'zeros') return Buffer.alloc(n);
  return crypto.randomBytes(n);
}

function makeMessage(spec) {
  return spec.kind === 'text' ? makeText(spec.bytes, spec.fill) : makeBinary(spec.bytes, spec.fill);
}

function describe(data, isBinary) {
  return {kind: isBinary ? 'binary' : 'text', bytes: data.length, sha: sha(data)};
}

// A connection with everything it receives in order: messages, pongs,
// pings, the close; next() awaits the next event of a kind.
class Client {
  constructor(url, deflate, opts) {
    this.url = url;
    this.events = [];
    this.waiters = [];
    this.extensions = null;
    this.closed = null;
    this.ws = new WebSocket(url, Object.assign({perMessageDeflate: !!deflate,
                                                maxPayload: 256 << 20}, opts || {}));
    this.ws.on('upgrade', (res) => {
      this.extensions = res.headers['sec-websocket-extensions'] || null;
    });
    this.ws.on('message', (data, isBinary) => this.push({type: 'message', data, isBinary}));
    this.ws.on('pong', (data) => this.push({type: 'pong', data}));
    this.ws.on('ping', (data) => this.push({type: 'ping', data}));
    this.ws.on('close', (code, reason) => {
      this.closed = {code, reason: reason.toString()};
      this.push({type: 'close', code, reason: reason.toString()});
    });
    this.ws.on('error', (err) => this.push({type: 'error', message: String(err && err.message)}));
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
      this.ws.once('unexpected-response', (req, res) =>
        reject(new Error('unexpected response ' + res.statusCode)));
    });
  }

  push(ev) {
    this.events.push(ev);
    const w = this.waiters.slice();
    this.waiters = [];
    for (const f of w) f();
  }

  // The next event of one of `types`; the events before it of other types
  // stay for later. Fails on a close (or an error) unless it waits for one.
  async next(types, what) {
    for (;;) {
      for (let i = 0; i < this.events.length; i++) {
        const ev = this.events[i];
        if (types.includes(ev.type)) {
          this.events.splice(i, 1);
          return ev;
        }
        if (ev.type === 'close' || (ev.type === 'error' && !types.includes('close'))) {
          throw new Error('while waiting for ' + (what || types.join('/')) + ' on ' + this.url +
                          ': ' + JSON.stringify(ev));
        }
      }
      await new Promise((resolve) => this.waiters.push(resolve));
    }
  }

  take(type) {
    const out = this.events.filter((e) => e.type === type);
    this.events = this.events.filter((e) => e.type !== type);
    return out;
  }

  // A ping round trip: everything the server queued before reading it
  // has arrived once its pong does.
  async barrier(tag) {
    const payload = Buffer.from('barrier ' + tag);
    this.ws.ping(payload);
    for (;;) {
      const ev = await this.next(['pong'], 'pong ' + tag);
      if (ev.data.equals(payload)) return;
    }
  }

  async close(code, reason) {
    this.ws.close(code, reason);
    return this.next(['close'], 'close');
  }

  stats() {
    const s = this.ws._socket;
    return {extensions: this.extensions, bytes_read: s ? s.bytesRead : null,
            bytes_written: s ? s.bytesWritten : null};
  }
}

async function open(url, deflate, opts) {
  step = 'opening ' + url;
  const c = new Client(url, deflate, opts);
  await c.opened;
  return c;
}

// --- scenarios --------------------------------------------------------------------------

// Sends each message of args.messages ({kind, bytes, fill}) and awaits its
// echo (or, with args.pipelined, sends them all first), then closes 1000.
async function echo() {
  const c = await open(args.url, args.deflate);
  const sent = args.messages.map(makeMessage);
  const out = [];
  const check = (m, ev) => {
    const data = ev.data;
    const expect = typeof m === 'string' ? Buffer.from(m) : m;
    return {kind: typeof m === 'string' ? 'text' : 'binary', bytes: expect.length,
            got_kind: ev.isBinary ? 'binary' : 'text', got_bytes: data.length,
            equal: data.equals(expect)};
  };
  if (args.pipelined) {
    step = 'sending ' + sent.length + ' messages';
    for (const m of sent) c.ws.send(m);
    for (let i = 0; i < sent.length; i++) {
      step = 'echo ' + i;
      out.push(check(sent[i], await c.next(['message'], step)));
    }
  } else {
    for (let i = 0; i < sent.length; i++) {
      step = 'echo ' + i + ' (' + args.messages[i].kind + ', ' + args.messages[i].bytes + ' bytes)';
      const t0 = Date.now();
      c.ws.send(sent[i]);
      const r = check(sent[i], await c.next(['message'], step));
      r.ms = Date.now() - t0;
      out.push(r);
    }
  }
  const stats = c.stats();
  step = 'closing';
  const closed = await c.close(1000, 'bye');
  return Object.assign({messages: out, close: {code: closed.code, reason: closed.reason}}, stats);
}

// Fragmented messages (ws sends a fragment per send() with fin: false).
async function fragments() {
  const c = await open(args.url, args.deflate);
  const results = {};
  const message = async (name) => {
    step = name;
    const ev = await c.next(['message'], name);
    return {kind: ev.isBinary ? 'binary' : 'text', bytes: ev.data.length, data: ev.data};
  };

  // a text message in three fragments with a ping between the first two:
  // the pong comes back at once, the message when it is complete
  step = 'interleaved ping';
  c.ws.send('frag', {fin: false});
  c.ws.ping('mid');
  c.ws.send('men', {fin: false});
  c.ws.send('ted', {fin: true});
  const order = [];
  for (let i = 0; i < 2; i++) {
    const ev = await c.next(['message', 'pong'], 'pong and message');
    order.push(ev.type === 'pong' ? 'pong:' + ev.data.toString()
                                  : (ev.isBinary ? 'binary:' : 'text:') + ev.data.toString());
  }
  results.interleaved = order;

  // a multi-byte character split between fragments, in several places
  const text = 'héllo ✓ 😀 wörld';
  const b = Buffer.from(text);
  const cuts = [2, 3, 8, 9, 10, 12, 13, 14, b.length];
  let prev = 0;
  for (const cut of cuts) {
    c.ws.send(b.subarray(prev, cut), {binary: false, fin: cut === b.length});
    prev = cut;
  }
  const split = await message('split utf-8');
  results.split_utf8 = {kind: split.kind, equal: split.data.toString() === text &&
                        split.data.equals(b)};

  // empty fragments around data
  c.ws.send('', {fin: false});
  c.ws.send('abc', {fin: false});
  c.ws.send('', {fin: true});
  const empties = await message('empty fragments');
  results.empty_fragments = {kind: empties.kind, text: empties.data.toString()};

  // a large binary message in three fragments of 20000 bytes (the first is
  // over ws's compression threshold: with permessage-deflate the message is
  // compressed, in fragments)
  const big = [makeBinary(20000, 'repeat'), makeBinary(20000, 'random'), makeBinary(20000, 'repeat')];
  big.forEach((f, i) => c.ws.send(f, {binary: true, fin: i === big.length - 1}));
  const bigEcho = await message('large fragments');
  results.large_fragments = {kind: bigEcho.kind, bytes: bigEcho.bytes,
                             equal: bigEcho.data.equals(Buffer.concat(big))};

  // 1000 fragments of 16 bytes
  const many = [];
  for (let i = 0; i < 1000; i++) many.push(makeBinary(16, 'random'));
  many.forEach((f, i) => c.ws.send(f, {binary: true, fin: i === many.length - 1}));
  const manyEcho = await message('1000 fragments');
  results.many_fragments = {kind: manyEcho.kind, bytes: manyEcho.bytes,
                            equal: manyEcho.data.equals(Buffer.concat(many))};

  Object.assign(results, c.stats());
  step = 'closing';
  const closed = await c.close(1000, '');
  results.close = {code: closed.code};
  return results;
}

// Pings from the client: each pong carries its ping's payload, in order.
async function ping() {
  const c = await open(args.url, args.deflate);
  const payloads = [Buffer.from('are you there'), Buffer.alloc(0), Buffer.alloc(125, 'p'),
                    crypto.randomBytes(64)];
  step = 'pings';
  for (const p of payloads) c.ws.ping(p);
  const pongs = [];
  for (let i = 0; i < payloads.length; i++) {
    step = 'pong ' + i;
    const ev = await c.next(['pong'], step);
    pongs.push({bytes: ev.data.length, equal: ev.data.equals(payloads[i])});
  }
  // and the connection still carries messages
  c.ws.send('after pings');
  const m = await c.next(['message'], 'echo after pings');
  step = 'closing';
  await c.close(1000);
  return {pongs, echo_after: m.data.toString()};
}

// The server pings an idle connection (ping_interval_ms in its config):
// ws answers each (args.auto_pong, the default) and the connection stays
// open, for args.min_ms and until args.min_pings pings came (their times
// reported), then still echoes; without answers the server closes it.
// Times: closed_after_ms counts from before the connection (at least the
// server's idle time), elapsed_ms and ping_ms from its opening (at most).
async function serverPing() {
  const before = Date.now();
  const c = await open(args.url, false, {autoPong: args.auto_pong !== false});
  const t0 = Date.now();
  if (args.auto_pong === false) {
    step = 'waiting for the server to close a connection that does not answer pings';
    const ev = await c.next(['close'], step);
    return {pings: c.take('ping').length, closed_after_ms: Date.now() - before,
            close_code: ev.code};
  }
  const pingMs = [];
  c.ws.on('ping', () => pingMs.push(Date.now() - t0));
  if (args.min_ms) {
    step = 'idle for ' + args.min_ms + ' ms';
    await new Promise((resolve) => setTimeout(resolve, args.min_ms));
  }
  while (pingMs.length < (args.min_pings || 0)) {
    step = 'server ping ' + pingMs.length + ' (at ' + JSON.stringify(pingMs) + ' ms)';
    await c.next(['ping', 'close'], step);
    if (c.closed) throw new Error('closed ' + JSON.stringify(c.closed) + ' after pings at ' +
                                  JSON.stringify(pingMs) + ' ms');
  }
  const elapsed = Date.now() - t0;
  step = 'echo after the pings';
  c.ws.send('still here');
  const m = await c.next(['message'], step);
  await c.close(1000);
  return {pings: pingMs.length, ping_ms: pingMs, elapsed_ms: elapsed, echo: m.data.toString()};
}

// The client closes with args.code and args.reason: the server's close
// echoes the code.
async function closeCode() {
  const c = await open(args.url, args.deflate);
  step = 'close ' + args.code;
  const t0 = Date.now();
  const ev = await c.close(args.code, args.reason || '');
  return {code: ev.code, reason: ev.reason, ms: Date.now() - t0};
}

// A message over the server's maximum (args.message = {kind, bytes, fill},
// args.fragments = how many pieces): the server closes with 1009. Reports
// whatever came before the close.
async function tooBig() {
  const c = await open(args.url, args.deflate);
  const m = makeMessage(args.message);
  const n = args.fragments || 1;
  const b = typeof m === 'string' ? Buffer.from(m) : m;
  const size = Math.ceil(b.length / n);
  step = 'sending ' + b.length + ' bytes in ' + n + ' fragment(s)';
  for (let i = 0; i < n; i++) {
    c.ws.send(b.subarray(i * size, Math.min(b.length, (i + 1) * size)),
              {binary: args.message.kind !== 'text', fin: i === n - 1});
  }
  step = 'waiting for the server to close';
  const t0 = Date.now();
  const ev = await c.next(['close'], step);
  return {close_code: ev.code, close_reason: ev.reason, messages: c.take('message').length,
          ms: Date.now() - t0, extensions: c.extensions};
}

// args.clients (a list of deflate flags) join room args.room, and one more
// client joins args.other_room. Each member sends args.messages ({kind,
// bytes, fill}); every member must receive exactly the others' messages,
// and the member of the other room nothing.
async function rooms() {
  const url = (room) => args.base + '/ws/chat?room=' + encodeURIComponent(room);
  const members = [];
  for (const d of args.clients) members.push(await open(url(args.room), d));
  const other = await open(url(args.other_room), true);
  // subscribed: the server subscribes a connection before it reads from it
  step = 'subscription barriers';
  await Promise.all(members.concat([other]).map((c, i) => c.barrier('joined ' + i)));

  // every message names its sender (the sizes stay as asked), so that no
  // two are alike
  const sent = members.map((_, i) => args.messages.map((spec, k) => {
    const tag = 'from ' + i + '.' + k + ': ';
    if (spec.kind === 'text') return tag + makeText(Math.max(0, spec.bytes - tag.length), spec.fill);
    const b = makeBinary(spec.bytes, spec.fill);
    b.write(tag.slice(0, b.length));
    return b;
  }));
  step = 'sending';
  members.forEach((c, i) => sent[i].forEach((m) => c.ws.send(m)));

  const expected = members.map((_, i) => {
    const list = [];
    sent.forEach((ms, j) => {
      if (j !== i) ms.forEach((m) => list.push(describe(Buffer.from(m), typeof m !== 'string')));
    });
    return list;
  });
  const received = members.map(() => []);
  await Promise.all(members.map(async (c, i) => {
    while (received[i].length < expected[i].length) {
      step = 'member ' + i + ' received ' + received[i].length + ' of ' + expected[i].length;
      const ev = await c.next(['message'], step);
      received[i].push(describe(ev.data, ev.isBinary));
    }
  }));
  // nothing more is on its way: a barrier on everyone, then look
  step = 'final barriers';
  await Promise.all(members.concat([other]).map((c, i) => c.barrier('end ' + i)));
  const key = (d) => d.kind + ':' + d.bytes + ':' + d.sha;
  const result = {members: []};
  members.forEach((c, i) => {
    const extra = c.take('message').map((ev) => describe(ev.data, ev.isBinary));
    const got = received[i].map(key).sort();
    const want = expected[i].map(key).sort();
    // messages of one sender arrive in the order it sent them
    const orderOk = members.every((_, j) => {
      if (j === i) return true;
      const mine = sent[j].map((m) => key(describe(Buffer.from(m), typeof m !== 'string')));
      const seen = received[i].map(key).filter((k) => mine.includes(k));
      return JSON.stringify(seen) === JSON.stringify(mine);
    });
    result.members.push({deflate: args.clients[i], extensions: c.extensions,
                         received: got.length, expected: want.length,
                         same: JSON.stringify(got) === JSON.stringify(want),
                         in_order: orderOk, extra: extra.length});
  });
  result.other_room = {received: other.take('message').length};
  step = 'closing';
  await Promise.all(members.concat([other]).map((c) => c.close(1000)));
  return result;
}

const scenarios = {echo, fragments, ping, server_ping: serverPing, close: closeCode,
                   too_big: tooBig, rooms};

(async () => {
  const f = scenarios[args.scenario];
  if (!f) throw new Error('unknown scenario ' + args.scenario);
  const result = await f();
  clearTimeout(deadline);
  finish(result, 0);
})().catch((err) => {
  finish({error: String(err && err.stack || err), step}, 1);
});
