'use strict';
/*
 * status_page.js - keeps pages of corio's status page (GET /status) open in
 * headless Chromium (Debian's, driven by playwright-core) while the test
 * changes the cluster, and answers the test's questions about them:
 *
 *   node status_page.js '{"chromium": "/usr/bin/chromium", "user_data_dir": "/tmp/fresh",
 *                         "timeout_ms": 300000}'
 *
 * Then one command a line on stdin, as JSON with an "id", and one answer a
 * line on stdout, {"id": ..., "ok": true, ...} or {"id": ..., "ok": false,
 * "error": ...}, in order:
 *
 *   {"cmd": "open", "page": "n0", "url": "http://127.0.0.1:PORT/status"}  -> {"status": 200}
 *   {"cmd": "facts", "page": "n0"}     -> {"facts": what the page shows, as text (see FACTS)}
 *   {"cmd": "viewport", "page": "n0", "width": 390, "height": 844}
 *   {"cmd": "screenshot", "page": "n0", "path": "/tmp/x.png"}
 *   {"cmd": "logs", "page": "n0"}      -> {"console_errors": [...], "page_errors": [...],
 *                                          "failed_requests": [...], "requests": [urls],
 *                                          "websockets": [urls], "console": [...]}
 *   {"cmd": "close", "page": "n0"}
 *   {"cmd": "quit"}                    -> the browser closes, exit 0
 *
 * Every page of the session shares one browser (one profile in
 * user_data_dir, made and removed by the caller) at 1280x800. The session
 * ends itself after timeout_ms, or when stdin closes; the caller kills the
 * process group if it overstays.
 */
const readline = require('readline');
const {chromium} = require('playwright-core');

const args = JSON.parse(process.argv[2] || '{}');
const pages = new Map(); // name -> {page, log}
let context = null;

function send(obj) {
  return new Promise((resolve) => process.stdout.write(JSON.stringify(obj) + '\n', resolve));
}

async function quit(code) {
  try {
    if (context) await context.close();
  } catch (e) {
    // the caller kills what is left
  }
  process.exit(code);
}

setTimeout(() => {
  send({event: 'timeout', error: 'the session outlived timeout_ms'}).then(() => quit(3));
}, args.timeout_ms || 300000).unref();

// Everything the page shows that a test reads: text from the DOM, as a
// script or a screen reader would read it.
function FACTS() {
  const t = (sel, root) => {
    const e = (root || document).querySelector(sel);
    return e ? e.textContent.trim() : null;
  };
  const b = document.body;
  const live = document.getElementById('live');
  const style = live ? getComputedStyle(live) : null;
  return {
    updated: b.getAttribute('data-updated'),
    live: b.getAttribute('data-live'),
    live_text: t('#live'),
    live_visible: !!(live && style.display !== 'none' && style.visibility !== 'hidden' &&
                     live.getBoundingClientRect().height > 0),
    live_aria: live ? live.getAttribute('aria-live') : null,
    render_error: b.getAttribute('data-render-error'),
    discovery: t('#discovery-state'),
    self: t('#self'),
    aliases: t('#aliases'),
    node_id: t('#node-id'),
    version: t('#version'),
    uptime: t('#uptime'),
    workers: t('#workers'),
    conn_http: t('#conn-http'),
    conn_ws: t('#conn-ws'),
    requests_total: t('#requests-total'),
    requests_by_class: ['1xx', '2xx', '3xx', '4xx', '5xx'].map((k) => [k, t('#req-' + k), t('#rps-' + k)]),
    bytes_in: t('#bytes-in'),
    bytes_out: t('#bytes-out'),
    pool_queued: t('#pool-queued'),
    pool_busy: t('#pool-busy'),
    peers: Array.from(document.querySelectorAll('tr[data-peer]')).map((tr) => ({
      row: tr.getAttribute('data-peer'),
      name: t('.peer-name', tr),
      id: t('.peer-id', tr),
      state: t('.peer-state', tr),
      self: t('.peer-self', tr),
      last_seen: t('.peer-last-seen', tr),
      restarts: t('.peer-restarts', tr),
    })),
    peer_headers: Array.from(document.querySelectorAll('#peers thead th')).map((th) => th.textContent.trim()),
    loops: Array.from(document.querySelectorAll('#loops tbody tr')).map((tr) =>
      Array.from(tr.cells).map((c) => c.textContent.trim())),
    slow: Array.from(document.querySelectorAll('#slow li')).map((li) => li.textContent.trim()),
    charts: Array.from(document.querySelectorAll('svg')).map((s) => ({
      id: s.id,
      points: Number(s.getAttribute('data-points') || 0),
      label: s.getAttribute('aria-label'),
      title: s.querySelector('title') ? s.querySelector('title').textContent : null,
    })),
    // what a narrow screen would have to scroll sideways (0: nothing)
    overflow_x: document.documentElement.scrollWidth - document.documentElement.clientWidth,
  };
}

async function run(cmd) {
  const name = cmd.page || 'main';
  const entry = pages.get(name);
  const need = () => {
    if (!entry) throw new Error('no page ' + name);
    return entry;
  };
  switch (cmd.cmd) {
    case 'open': {
      if (entry) await entry.page.close();
      const page = await context.newPage();
      const log = {console_errors: [], page_errors: [], failed_requests: [], requests: [],
                   websockets: [], console: []};
      page.on('console', (msg) => {
        log.console.push({type: msg.type(), text: msg.text()});
        if (msg.type() === 'error') log.console_errors.push(msg.text());
      });
      page.on('pageerror', (err) => log.page_errors.push(String(err && err.stack || err)));
      page.on('requestfailed', (req) => log.failed_requests.push(
        req.url() + ': ' + (req.failure() ? req.failure().errorText : '?')));
      page.on('request', (req) => log.requests.push(req.url()));
      page.on('websocket', (ws) => log.websockets.push(ws.url()));
      pages.set(name, {page, log});
      const resp = await page.goto(cmd.url, {waitUntil: 'load', timeout: cmd.timeout_ms || 30000});
      return {status: resp ? resp.status() : null,
              content_type: resp ? resp.headers()['content-type'] || null : null};
    }
    case 'facts':
      return {facts: await need().page.evaluate(FACTS)};
    case 'viewport':
      await need().page.setViewportSize({width: cmd.width, height: cmd.height});
      return {};
    case 'screenshot':
      await need().page.screenshot({path: cmd.path, fullPage: !!cmd.full_page});
      return {path: cmd.path};
    case 'logs':
      return JSON.parse(JSON.stringify(need().log));
    case 'close':
      if (entry) await entry.page.close();
      pages.delete(name);
      return {};
    case 'quit':
      await send({id: cmd.id, ok: true});
      return quit(0);
    default:
      throw new Error('unknown command ' + JSON.stringify(cmd.cmd));
  }
}

(async () => {
  try {
    context = await chromium.launchPersistentContext(args.user_data_dir, {
      executablePath: args.chromium,
      headless: true,
      viewport: {width: 1280, height: 800},
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      timeout: 60000,
    });
  } catch (err) {
    await send({event: 'start', ok: false, error: String(err && err.stack || err)});
    return quit(1);
  }
  await send({event: 'start', ok: true, browser: context.browser() ? context.browser().version() : null});
  const rl = readline.createInterface({input: process.stdin});
  let chain = Promise.resolve();
  rl.on('line', (line) => {
    if (!line.trim()) return;
    chain = chain.then(async () => {
      let cmd;
      try {
        cmd = JSON.parse(line);
        const res = await run(cmd);
        await send(Object.assign({id: cmd.id, ok: true}, res));
      } catch (err) {
        await send({id: cmd ? cmd.id : null, ok: false, error: String(err && err.stack || err)});
      }
    });
  });
  rl.on('close', () => chain.then(() => quit(0)));
})();
