'use strict';
/*
 * browser.js - opens a page in headless Chromium (Debian's, driven by
 * playwright-core) and reports what the page wrote:
 *
 *   node browser.js '{"url": "http://127.0.0.1:PORT/ws.html", "chromium": "/usr/bin/chromium",
 *                     "user_data_dir": "/tmp/fresh", "timeout_ms": 60000}'
 *
 * The page writes its results as JSON into #result and then sets
 * data-done on <body>. Prints one line of JSON: {"result": <the page's
 * JSON>, "console_errors": [...], "page_errors": [...], "failed_requests":
 * [...], "browser": version}, exit 0; {"error": ...} and exit 1 when the
 * page could not be run, 3 when timeout_ms passed first.
 */
const {chromium} = require('playwright-core');

const args = JSON.parse(process.argv[2] || '{}');
let step = 'start';
let context = null;
const out = {console_errors: [], page_errors: [], failed_requests: [], console: []};

function finish(result, code) {
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code || 0));
}

const deadline = setTimeout(() => {
  // the browser is left to the caller, which kills the process group
  finish(Object.assign({error: 'timeout', step}, out), 3);
}, args.timeout_ms || 60000);

(async () => {
  step = 'launching ' + args.chromium;
  // a fresh profile in user_data_dir (made and removed by the caller)
  context = await chromium.launchPersistentContext(args.user_data_dir, {
    executablePath: args.chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: Math.max(1000, (args.timeout_ms || 60000) / 2),
  });
  out.browser = context.browser() ? context.browser().version() : null;
  const page = context.pages()[0] || await context.newPage();
  page.on('console', (msg) => {
    const entry = {type: msg.type(), text: msg.text()};
    out.console.push(entry);
    if (msg.type() === 'error') out.console_errors.push(entry.text);
  });
  page.on('pageerror', (err) => out.page_errors.push(String(err && err.stack || err)));
  page.on('requestfailed', (req) => out.failed_requests.push(
    req.url() + ': ' + (req.failure() ? req.failure().errorText : '?')));
  step = 'loading ' + args.url;
  const resp = await page.goto(args.url, {waitUntil: 'load', timeout: args.timeout_ms});
  out.status = resp ? resp.status() : null;
  step = 'waiting for the page to finish (body[data-done])';
  await page.waitForSelector('body[data-done]', {state: 'attached', timeout: args.timeout_ms});
  const text = await page.textContent('#result');
  step = 'parsing the result';
  out.result = JSON.parse(text);
  step = 'closing the browser';
  await context.close();
  clearTimeout(deadline);
  finish(out, 0);
})().catch(async (err) => {
  out.error = String(err && err.stack || err);
  out.step = step;
  try {
    if (context) await context.close();
  } catch (e) {
    // the caller kills what is left
  }
  finish(out, 1);
});
