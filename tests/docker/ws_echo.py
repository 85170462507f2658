"""ws_echo.py URL... - for each URL (ws://host0:8080/ws/echo), opens a
WebSocket, sends a text and a binary message and checks that each comes back
unchanged and of the same type; prints one line per URL. Exits 1 on the first
failure. Every step is bounded (5 s)."""
import asyncio
import sys

import websockets


async def echo(url):
    text = "hello " + url
    data = bytes(range(256)) * 4
    async with websockets.connect(url, open_timeout=5, close_timeout=2) as ws:
        for msg in (text, data):
            await ws.send(msg)
            got = await asyncio.wait_for(ws.recv(), 5)
            if got != msg:
                raise AssertionError(f"sent {msg!r:.40}, got {got!r:.40}")
    return f"echo ok: {url} (text {len(text)} chars, binary {len(data)} bytes)"


async def main(urls):
    for url in urls:
        try:
            print(await asyncio.wait_for(echo(url), 15), flush=True)
        except Exception as e:  # noqa: BLE001 - any failure is reported the same way
            print(f"echo FAILED: {url}: {type(e).__name__}: {e}", flush=True)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])) if len(sys.argv) > 1 else 2)
