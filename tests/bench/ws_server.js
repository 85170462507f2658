#!/usr/bin/env node
// tests/bench/ws_server.js - the Node.js WebSocket servers that corio is
// compared with (tests/bench/ws_vs_uws.sh, ws_idle.sh). A benchmark peer,
// never a test.
//
//   node ws_server.js uws PORT   uWebSockets (uWebSockets.js v20.30 through
//                                npm @trufflesuite/uws-js-unofficial)
//   node ws_server.js ws PORT    Node's `ws` (npm)
//
// Both listen on 127.0.0.1:PORT, echo every message with its type on any path
// and, for uws, relay each message of a room's member to the other members
// (pub/sub) on /ws/chat?room=NAME, as corio's /ws/chat does. Compression is
// off (uWS.DISABLED; ws: perMessageDeflate false). IDLE=1 turns off the
// servers' own pings and idle timeouts, for memory measurements of idle
// connections. Prints "listening PORT" once ready. NODE_PATH must reach the
// npm modules (the scripts install them under build/bench-npm).
'use strict';

const [kind, portArg] = process.argv.slice(2);
const port = Number(portArg);
if (!['uws', 'ws'].includes(kind) || !(port > 0)) {
  console.error('usage: node ws_server.js uws|ws PORT');
  process.exit(2);
}
const idle = process.env.IDLE === '1';

if (kind === 'uws') {
  // The native addon itself, never the package's pure-JS fallback (which it
  // loads silently when the binary does not fit this Node).
  const pkg = require.resolve('@trufflesuite/uws-js-unofficial/package.json');
  const dir = require('path').dirname(pkg);
  const uWS = require(`${dir}/binaries/uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
  uWS.App()
    .ws('/*', {
      compression: uWS.DISABLED,
      maxPayloadLength: 16 * 1024 * 1024,
      idleTimeout: idle ? 0 : 120,
      sendPingsAutomatically: !idle,
      upgrade: (res, req, context) => {
        const room = new URLSearchParams(req.getQuery() || '').get('room');
        res.upgrade({ room },
          req.getHeader('sec-websocket-key'),
          req.getHeader('sec-websocket-protocol'),
          req.getHeader('sec-websocket-extensions'),
          context);
      },
      open: (ws) => {
        const { room } = ws.getUserData();
        if (room) ws.subscribe(room);
      },
      message: (ws, m, b) => {
        const { room } = ws.getUserData();
        if (room) ws.publish(room, m, b); // to every other member
        else ws.send(m, b);
      },
    })
    .listen('127.0.0.1', port, (token) => {
      if (!token) {
        console.error(`uws: cannot listen on 127.0.0.1:${port}`);
        process.exit(1);
      }
      console.log(`listening ${port}`);
    });
} else {
  const { WebSocketServer } = require('ws');
  const wss = new WebSocketServer({
    host: '127.0.0.1', port, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024,
  });
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('error', () => {});
  });
  wss.on('listening', () => console.log(`listening ${port}`));
  wss.on('error', (e) => {
    console.error(`ws: ${e.message}`);
    process.exit(1);
  });
}
