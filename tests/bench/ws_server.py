#!/usr/bin/python3
"""ws_server.py - the Python `websockets` echo server that corio is compared
with (tests/bench/ws_vs_uws.sh, ws_idle.sh). A benchmark peer, never a test.

  /usr/bin/python3 ws_server.py PORT

Debian's python3-websockets on the standard asyncio loop: listens on
127.0.0.1:PORT and echoes every message with its type, compression off
(permessage-deflate is websockets' default: the benchmark clients do not offer
it anyway). IDLE=1 turns off its pings (ping_interval None), for memory
measurements of idle connections. Prints "listening PORT" once ready.
"""

import asyncio
import os
import sys

import websockets


async def echo(ws, path=None):
    try:
        async for message in ws:
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass


async def main(port):
    idle = os.environ.get("IDLE") == "1"
    async with websockets.serve(echo, "127.0.0.1", port, compression=None,
                                max_size=16 * 1024 * 1024, backlog=4096,
                                ping_interval=None if idle else 20):
        print(f"listening {port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        print("usage: ws_server.py PORT", file=sys.stderr)
        sys.exit(2)
    try:
        asyncio.run(main(int(sys.argv[1])))
    except KeyboardInterrupt:
        pass
