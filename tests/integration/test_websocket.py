"""WebSocket on the daemon: /ws/echo and /ws/chat with a real client
(Python's websockets, Debian's python3-websockets) and raw sockets for every
protocol violation and its close code (RFC 6455, RFC 7692)."""

import asyncio
import base64
import hashlib
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import unittest

# The websockets module is Debian's (python3-websockets): run under the
# system interpreter when this one lacks it.
try:
    import websockets  # noqa: F401
except ImportError:
    if os.path.exists("/usr/bin/python3") and sys.executable != "/usr/bin/python3" \
            and not os.environ.get("CORIO_WS_REEXEC"):
        os.environ["CORIO_WS_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("SKIP: the websockets module (python3-websockets) is not installed", file=sys.stderr)
    sys.exit(77)
import websockets  # noqa: E402,F811

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


class RawWs:
    """A WebSocket client on a raw socket: it sends exactly the frames a test
    builds (masked or not, any bits) and reads the server's frames."""

    def __init__(self, server, path="/ws/echo", headers=None, timeout=10.0):
        self.conn = server.connect(timeout=timeout)
        key = base64.b64encode(os.urandom(16))
        req = (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
               b"\r\nSec-WebSocket-Version: 13\r\n")
        for k, v in (headers or {}).items():
            req += ("%s: %s\r\n" % (k, v)).encode()
        self.conn.send(req + b"\r\n")
        self.response = self.conn.read_response(head=True)
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        if self.response.status == 101:
            assert self.response.header("Sec-WebSocket-Accept") == accept

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @staticmethod
    def frame(op, payload=b"", fin=True, rsv=0, mask=True, length_form=None):
        b0 = (0x80 if fin else 0) | (rsv << 4) | op
        n = len(payload)
        if length_form == 64 or (length_form is None and n > 65535):
            hdr = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
        elif length_form == 16 or (length_form is None and n > 125):
            hdr = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
        else:
            hdr = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
        if not mask:
            return hdr + payload
        key = os.urandom(4)
        return hdr + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))

    def send(self, op, payload=b"", **kw):
        self.conn.send(self.frame(op, payload, **kw))

    def recv_frame(self, timeout=10.0):
        """(fin, rsv, op, payload) of the server's next frame."""
        b0, b1 = self.conn.read_exact(2, timeout=timeout)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.conn.read_exact(2, timeout=timeout))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.conn.read_exact(8, timeout=timeout))[0]
        assert not b1 & 0x80, "server frames are never masked"
        return bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, self.conn.read_exact(n, timeout=timeout)

    def expect_close(self, code, timeout=10.0):
        """The server's next frame is a close with code, then TCP close."""
        while True:
            fin, rsv, op, payload = self.recv_frame(timeout)
            if op in (0x9, 0xA):
                continue  # a ping or pong before it
            break
        assert op == 0x8, "expected a close frame, got opcode %d" % op
        got = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        assert got == code, "close code %d, expected %d" % (got, code)
        assert self.conn.wait_closed(timeout), "the server did not close the TCP connection"
        return payload[2:]


class TestEcho(H.ServerTestCase):
    server_config = {"websocket": {"max_message_bytes": 32 << 20,
                                   "send_queue_bytes": 64 << 20}}

    def echo(self, messages, compression="deflate"):
        async def go():
            async with websockets.connect(self.server.base_url.replace("http", "ws") + "/ws/echo",
                                          compression=compression, max_size=None) as ws:
                out = []
                for m in messages:
                    await ws.send(m)
                    out.append(await ws.recv())
                ext = ws.response_headers.get("Sec-WebSocket-Extensions")
                return out, ext
        return run(go(), timeout=60)

    def test_text_and_binary_keep_their_type(self):
        out, _ = self.echo(["héllo", b"\x00\x01\xff", ""], compression=None)
        self.assertEqual(out, ["héllo", b"\x00\x01\xff", ""])

    def test_compression_negotiated_when_offered(self):
        out, ext = self.echo(["a" * 1000, b"b" * 5000])
        self.assertEqual(out, ["a" * 1000, b"b" * 5000])
        self.assertTrue(ext and ext.startswith("permessage-deflate"), ext)

    def test_windows_of_12_bits_by_default(self):
        """server_max_window_bits=12 announced; client_max_window_bits=12
        asked for when the offer allows it (zlib's memory per connection)"""
        with RawWs(self.server, headers={"Sec-WebSocket-Extensions":
                                         "permessage-deflate; client_max_window_bits"}) as ws:
            ext = ws.response.header("Sec-WebSocket-Extensions")
            self.assertEqual(ext, "permessage-deflate; server_max_window_bits=12; "
                                  "client_max_window_bits=12")
        with RawWs(self.server, headers={"Sec-WebSocket-Extensions":
                                         "permessage-deflate"}) as ws:
            ext = ws.response.header("Sec-WebSocket-Extensions")
            self.assertEqual(ext, "permessage-deflate; server_max_window_bits=12")

    def test_not_negotiated_when_not_offered(self):
        _, ext = self.echo(["x"], compression=None)
        self.assertIsNone(ext)

    def test_large_messages(self):
        msgs = [os.urandom(70 * 1024), "y" * (200 * 1024), os.urandom(16 << 20)]
        for compression in (None, "deflate"):
            out, _ = self.echo(msgs, compression=compression)
            self.assertEqual(out, msgs)

    def test_fragmented_message_with_interleaved_ping(self):
        with RawWs(self.server) as ws:
            ws.send(0x1, b"frag", fin=False)
            ws.send(0x9, b"mid")
            ws.send(0x0, b"men", fin=False)
            ws.send(0x0, b"ted", fin=True)
            self.assertEqual(ws.recv_frame()[2:], (0xA, b"mid"))
            self.assertEqual(ws.recv_frame(), (True, 0, 0x1, b"fragmented"))

    def test_many_tiny_fragments(self):
        with RawWs(self.server) as ws:
            data = b"".join(RawWs.frame(0x2 if i == 0 else 0x0, b"z", fin=(i == 19999))
                            for i in range(20000))
            ws.conn.send(data)
            self.assertEqual(ws.recv_frame(timeout=30), (True, 0, 0x2, b"z" * 20000))

    def test_ping_gets_pong_with_the_payload(self):
        with RawWs(self.server) as ws:
            ws.send(0x9, b"are you there")
            self.assertEqual(ws.recv_frame()[2:], (0xA, b"are you there"))

    def test_close_is_echoed(self):
        with RawWs(self.server) as ws:
            ws.send(0x8, struct.pack("!H", 1000) + b"bye")
            ws.expect_close(1000)

    def test_close_without_code_gets_empty_close(self):
        with RawWs(self.server) as ws:
            ws.send(0x8, b"")
            ws.expect_close(1005)

    def test_client_close_through_the_library(self):
        async def go():
            async with websockets.connect(self.server.base_url.replace("http", "ws") + "/ws/echo") as ws:
                await ws.close(4000, "done")
                return ws.close_code
        self.assertEqual(run(go()), 4000)


class TestViolations(H.ServerTestCase):
    """Each violation fails the connection with its close code (RFC 6455)."""

    server_config = {"websocket": {"max_message_bytes": 1000, "send_queue_bytes": 100000}}

    def violation(self, frames, code):
        with RawWs(self.server) as ws:
            ws.conn.send(b"".join(frames))
            ws.expect_close(code)
        H.assert_server_alive(self, self.server)

    def test_unmasked_frame_is_1002(self):
        self.violation([RawWs.frame(0x1, b"hi", mask=False)], 1002)

    def test_reserved_bits_without_extension_are_1002(self):
        for rsv in (1, 2, 4):
            self.violation([RawWs.frame(0x1, b"hi", rsv=rsv)], 1002)

    def test_unknown_opcodes_are_1002(self):
        for op in (3, 7, 11, 15):
            self.violation([RawWs.frame(op, b"")], 1002)

    def test_control_frame_over_125_bytes_is_1002(self):
        self.violation([RawWs.frame(0x9, b"p" * 126)], 1002)

    def test_fragmented_control_frame_is_1002(self):
        self.violation([RawWs.frame(0x9, b"p", fin=False)], 1002)

    def test_continuation_without_start_is_1002(self):
        self.violation([RawWs.frame(0x0, b"x")], 1002)

    def test_new_message_inside_a_fragmented_one_is_1002(self):
        self.violation([RawWs.frame(0x1, b"a", fin=False), RawWs.frame(0x1, b"b")], 1002)

    def test_invalid_utf8_is_1007(self):
        self.violation([RawWs.frame(0x1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80")],
                       1007)

    def test_invalid_utf8_fails_fast_across_fragments(self):
        # the first fragment already ends in a byte that cannot continue
        with RawWs(self.server) as ws:
            ws.send(0x1, b"ok \xc0", fin=False)
            ws.expect_close(1007)

    def test_truncated_utf8_at_message_end_is_1007(self):
        self.violation([RawWs.frame(0x1, b"\xe2\x82")], 1007)

    def test_invalid_close_code_is_1002(self):
        for code in (999, 1004, 1005, 1006, 1016, 2000, 5000):
            self.violation([RawWs.frame(0x8, struct.pack("!H", code))], 1002)

    def test_one_byte_close_payload_is_1002(self):
        self.violation([RawWs.frame(0x8, b"\x03")], 1002)

    def test_close_reason_not_utf8_is_1007(self):
        self.violation([RawWs.frame(0x8, struct.pack("!H", 1000) + b"\xff")], 1007)

    def test_message_over_the_maximum_is_1009(self):
        self.violation([RawWs.frame(0x2, b"m" * 1001)], 1009)

    def test_fragmented_message_over_the_maximum_is_1009(self):
        self.violation([RawWs.frame(0x2, b"m" * 600, fin=False), RawWs.frame(0x0, b"m" * 600)],
                       1009)

    def deflated(self):
        return RawWs(self.server, headers={"Sec-WebSocket-Extensions": "permessage-deflate"})

    def test_corrupt_compressed_data_is_1007(self):
        with self.deflated() as ws:
            self.assertIn("permessage-deflate", ws.response.header("Sec-WebSocket-Extensions"))
            ws.send(0x2, b"\xff\xff\xff\xff", rsv=4)
            ws.expect_close(1007)

    def test_compressed_message_round_trip_raw(self):
        import zlib
        with self.deflated() as ws:
            c = zlib.compressobj(wbits=-15)
            data = c.compress(b"hello hello hello") + c.flush(zlib.Z_SYNC_FLUSH)
            self.assertTrue(data.endswith(b"\x00\x00\xff\xff"))
            ws.send(0x1, data[:-4], rsv=4)
            fin, rsv, op, payload = ws.recv_frame()
            text = zlib.decompressobj(wbits=-15).decompress(payload + b"\x00\x00\xff\xff") \
                if rsv & 4 else payload
            self.assertEqual((op, text), (0x1, b"hello hello hello"))

    def test_rsv1_on_a_continuation_is_1002(self):
        with self.deflated() as ws:
            ws.conn.send(RawWs.frame(0x1, b"a", fin=False) + RawWs.frame(0x0, b"b", rsv=4))
            ws.expect_close(1002)

    def test_compressed_bomb_over_the_maximum_is_1009(self):
        async def go():
            async with websockets.connect(self.server.base_url.replace("http", "ws") + "/ws/echo",
                                          compression="deflate", max_size=None) as ws:
                await ws.send(b"\x00" * 100000)  # compresses to ~100 bytes
                try:
                    await ws.recv()
                except websockets.exceptions.ConnectionClosed:
                    pass
                return ws.close_code
        self.assertEqual(run(go()), 1009)


class TestConformance(H.ServerTestCase):
    """The ground of the Autobahn|Testsuite server cases that no other test
    here covers (its case numbers in each docstring), on raw sockets."""

    def test_empty_messages_are_echoed(self):
        """1.1.1, 1.2.1"""
        with RawWs(self.server) as ws:
            ws.conn.send(RawWs.frame(0x1, b"") + RawWs.frame(0x2, b""))
            self.assertEqual(ws.recv_frame(), (True, 0, 0x1, b""))
            self.assertEqual(ws.recv_frame(), (True, 0, 0x2, b""))

    def test_every_length_form(self):
        """1.1.2-1.1.8, 1.2.2-1.2.8: 7-, 16- and 64-bit lengths at their edges"""
        with RawWs(self.server) as ws:
            for n in (125, 126, 127, 65535, 65536, 131072):
                payload = os.urandom(n)
                ws.send(0x2, payload)
                self.assertEqual(ws.recv_frame(), (True, 0, 0x2, payload))

    def test_frames_chopped_into_single_bytes(self):
        """1.1.8 chopped, 5.x: a frame whose bytes arrive one at a time"""
        with RawWs(self.server) as ws:
            ws.conn.send_slowly(RawWs.frame(0x1, b"one byte at a time"), delay=0.002)
            self.assertEqual(ws.recv_frame(), (True, 0, 0x1, b"one byte at a time"))

    def test_ping_with_125_bytes_of_binary_payload(self):
        """2.4, 2.3"""
        with RawWs(self.server) as ws:
            payload = bytes(range(125))
            ws.send(0x9, payload)
            self.assertEqual(ws.recv_frame(), (True, 0, 0xA, payload))

    def test_ten_pings_get_ten_pongs_in_order(self):
        """2.10, 2.11"""
        with RawWs(self.server) as ws:
            ws.conn.send(b"".join(RawWs.frame(0x9, b"ping %d" % i) for i in range(10)))
            for i in range(10):
                self.assertEqual(ws.recv_frame(), (True, 0, 0xA, b"ping %d" % i))

    def test_unsolicited_pong_is_ignored(self):
        """2.7, 2.8"""
        with RawWs(self.server) as ws:
            ws.conn.send(RawWs.frame(0xA, b"") + RawWs.frame(0xA, b"unasked") +
                         RawWs.frame(0x1, b"after"))
            self.assertEqual(ws.recv_frame(), (True, 0, 0x1, b"after"))

    def test_valid_utf8_split_inside_code_points(self):
        """6.2.x, 6.4.x: a valid text message fragmented inside its characters"""
        text = "\u03ba\u1f79\u03c3\u03bc\u03b5 \U0001f600".encode()
        with RawWs(self.server) as ws:
            frames = [RawWs.frame(0x1 if i == 0 else 0x0, text[i:i + 1], fin=i == len(text) - 1)
                      for i in range(len(text))]
            ws.conn.send(b"".join(frames))
            self.assertEqual(ws.recv_frame(), (True, 0, 0x1, text))

    def test_utf8_edge_code_points(self):
        """6.6-6.23: valid edges pass, surrogates and overlong forms fail"""
        good = ["\u007f", "\u0080", "\u07ff", "\u0800", "\uffff", "\U00010000", "\U0010ffff",
                "\ufffd", "\ufeff"]
        with RawWs(self.server) as ws:
            for ch in good:
                ws.send(0x1, ch.encode())
                self.assertEqual(ws.recv_frame(), (True, 0, 0x1, ch.encode()))
        for bad in (b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xc0\xaf", b"\xe0\x80\xaf",
                    b"\xf0\x80\x80\xaf", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80",
                    b"\xfe", b"\xff", b"\x80"):
            with RawWs(self.server) as ws:
                ws.send(0x1, b"ok" + bad)
                ws.expect_close(1007)

    def test_valid_close_codes_are_echoed(self):
        """7.7.x"""
        for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000,
                     4999):
            with RawWs(self.server) as ws:
                ws.send(0x8, struct.pack("!H", code) + b"reason")
                ws.expect_close(code)

    def test_close_with_a_125_byte_reason(self):
        """7.3.5, 7.3.6: the longest reason passes, one byte more is a violation"""
        with RawWs(self.server) as ws:
            ws.send(0x8, struct.pack("!H", 1000) + b"r" * 123)
            ws.expect_close(1000)
        with RawWs(self.server) as ws:
            ws.send(0x8, struct.pack("!H", 1000) + b"r" * 124)
            ws.expect_close(1002)

    def test_frames_after_the_close_are_ignored(self):
        """7.1.2-7.1.5: nothing is answered after the peer's close"""
        with RawWs(self.server) as ws:
            ws.conn.send(RawWs.frame(0x8, struct.pack("!H", 1000)) + RawWs.frame(0x1, b"late") +
                         RawWs.frame(0x9, b"late ping"))
            ws.expect_close(1000)

    def test_close_inside_a_fragmented_message(self):
        """7.1.6: a close between fragments ends the connection normally"""
        with RawWs(self.server) as ws:
            ws.conn.send(RawWs.frame(0x1, b"part", fin=False) +
                         RawWs.frame(0x8, struct.pack("!H", 1000)))
            ws.expect_close(1000)

    def test_compression_parameters(self):
        """12.x, 13.x: round trips under every kind of offer"""
        from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
        offers = [
            {},
            {"client_no_context_takeover": True},
            {"server_no_context_takeover": True},
            {"client_no_context_takeover": True, "server_no_context_takeover": True},
            {"server_max_window_bits": 9},
            {"server_max_window_bits": 15},
            {"client_max_window_bits": 9},
            {"client_max_window_bits": True},
            {"server_max_window_bits": 9, "client_max_window_bits": 9,
             "server_no_context_takeover": True},
        ]
        messages = [(b"abc " * 500).decode(), bytes(range(256)) * 40, "x", "",
                    "\u03ba\u1f79\u03c3\u03bc\u03b5 " * 300, os.urandom(3000)]

        async def go(params):
            factory = ClientPerMessageDeflateFactory(**params)
            async with websockets.connect(self.server.base_url.replace("http", "ws") + "/ws/echo",
                                          extensions=[factory], compression=None,
                                          max_size=None) as ws:
                ext = ws.response_headers.get("Sec-WebSocket-Extensions") or ""
                for _ in range(3):  # context takeover carries over messages
                    for m in messages:
                        await ws.send(m)
                        self.assertEqual(await ws.recv(), m)
                return ext
        for params in offers:
            with self.subTest(offer=params):
                ext = run(go(params))
                self.assertIn("permessage-deflate", ext)


class TestCompressionWindowConfig(H.ServerTestCase):
    server_config = {"websocket": {"compression_window_bits": 15}}

    def test_15_bits_announce_nothing(self):
        with RawWs(self.server, headers={"Sec-WebSocket-Extensions":
                                         "permessage-deflate; client_max_window_bits"}) as ws:
            self.assertEqual(ws.response.header("Sec-WebSocket-Extensions"), "permessage-deflate")
            ws.send(0x1, b"still echoed")
            self.assertEqual(ws.recv_frame()[2], 0x1)


class TestHandshake(H.ServerTestCase):
    server_config = {"websocket": {"origins": ["https://good.example"]}}

    def handshake(self, headers, path="/ws/echo"):
        req = "GET %s HTTP/1.1\r\nHost: x\r\n" % path
        for k, v in headers.items():
            req += "%s: %s\r\n" % (k, v)
        with self.server.connect() as c:
            c.send((req + "\r\n").encode())
            return c.read_response()

    GOOD = {"Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}

    def test_accept_key_of_rfc_6455(self):
        r = self.handshake(self.GOOD)
        self.assertEqual(r.status, 101)
        self.assertEqual(r.header("Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        self.assertTrue(r.has_token("Connection", "upgrade"))
        self.assertEqual(r.header("Upgrade").lower(), "websocket")

    def test_missing_or_other_version_is_426(self):
        for v in (None, "8", "14"):
            h = dict(self.GOOD)
            if v is None:
                del h["Sec-WebSocket-Version"]
            else:
                h["Sec-WebSocket-Version"] = v
            r = self.handshake(h)
            self.assertEqual(r.status, 426, v)
            self.assertEqual(r.header("Sec-WebSocket-Version"), "13")

    def test_bad_key_or_missing_upgrade_is_400(self):
        for change in ({"Sec-WebSocket-Key": "short"}, {"Upgrade": "h2c"},
                       {"Connection": "keep-alive"}):
            h = dict(self.GOOD)
            h.update(change)
            self.assertEqual(self.handshake(h).status, 400, change)

    def test_origin_allow_list(self):
        h = dict(self.GOOD)
        h["Origin"] = "https://evil.example"
        self.assertEqual(self.handshake(h).status, 403)
        h["Origin"] = "https://GOOD.example"
        self.assertEqual(self.handshake(h).status, 101)

    def test_chat_needs_a_room(self):
        self.assertEqual(self.handshake(self.GOOD, path="/ws/chat").status, 400)


class TestRooms(H.ServerTestCase):
    def url(self, room):
        return self.server.base_url.replace("http", "ws") + "/ws/chat?room=" + room

    def test_message_goes_to_the_other_members(self):
        async def go():
            async with websockets.connect(self.url("r1")) as a, \
                    websockets.connect(self.url("r1"), compression=None) as b, \
                    websockets.connect(self.url("r1")) as c, \
                    websockets.connect(self.url("other")) as d:
                await asyncio.sleep(0.2)  # all subscribed
                await a.send("to the room")
                got = [await asyncio.wait_for(b.recv(), 5), await asyncio.wait_for(c.recv(), 5)]
                await b.send(b"binary too")
                got.append(await asyncio.wait_for(a.recv(), 5))
                # a got nothing of its own, d nothing at all
                with self.assertRaises(asyncio.TimeoutError):
                    await asyncio.wait_for(d.recv(), 0.3)
                return got
        self.assertEqual(run(go()), ["to the room", "to the room", b"binary too"])


class TestSlowConsumer(unittest.TestCase):
    def test_subscriber_that_stops_reading_is_closed_and_memory_stays_bounded(self):
        # the reader never reads; 100 MB go to the room
        cfg = {"websocket": {"max_message_bytes": 65536, "send_queue_bytes": 1 << 20}}
        with H.CorioServer(config=cfg) as srv:
            slow = RawWs(srv, "/ws/chat?room=s")
            with RawWs(srv, "/ws/chat?room=s") as pub:
                time.sleep(0.2)
                before = proc_kb(srv.proc.pid, "VmHWM")
                msg = RawWs.frame(0x2, b"m" * 60000)
                for _ in range(1700):  # ~100 MB
                    pub.conn.send(msg)
                H.assert_server_alive(self, srv)
                grown = proc_kb(srv.proc.pid, "VmHWM") - before
            # the slow one was told 1008 (behind what it did not read) and cut:
            # reading now, it gets what the kernels held, then the end
            self.assertTrue(slow.conn.wait_closed(30), "the slow subscriber was not closed")
            frames = parse_frames(slow.conn.buf)
            slow.close()
            self.assertTrue(frames and frames[-1][0] == 0x8, "no close frame at the end")
            self.assertEqual(struct.unpack("!H", frames[-1][1][:2])[0], 1008)
            self.assertTrue(all(op == 0x2 for op, _ in frames[:-1]))
            self.assertLess(grown, 32 * 1024, "peak RSS grew by %d kB" % grown)


def parse_frames(buf):
    """[(opcode, payload)] of the complete server frames in buf."""
    out, i = [], 0
    while i + 2 <= len(buf):
        b0, b1 = buf[i], buf[i + 1]
        n, h = b1 & 0x7F, 2
        if n == 126:
            n, h = struct.unpack("!H", buf[i + 2:i + 4])[0], 4
        elif n == 127:
            n, h = struct.unpack("!Q", buf[i + 2:i + 10])[0], 10
        if i + h + n > len(buf):
            break
        out.append((b0 & 0xF, buf[i + h:i + h + n]))
        i += h + n
    return out


def proc_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(key)


class TestTimersAndShutdown(unittest.TestCase):
    def test_idle_connection_is_pinged_then_closed_when_silent(self):
        cfg = {"websocket": {"ping_interval_ms": 200, "idle_timeout_ms": 800}}
        with H.CorioServer(config=cfg) as srv, RawWs(srv) as ws:
            t0 = time.monotonic()
            self.assertEqual(ws.recv_frame(timeout=10)[2], 0x9)  # a ping
            # no pong: closed once idle_timeout passed
            self.assertTrue(ws.conn.wait_closed(10))
            self.assertGreater(time.monotonic() - t0, 0.7)

    def test_answering_pings_keeps_the_connection(self):
        cfg = {"websocket": {"ping_interval_ms": 200, "idle_timeout_ms": 800}}
        with H.CorioServer(config=cfg) as srv, RawWs(srv) as ws:
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                fin, rsv, op, payload = ws.recv_frame(timeout=10)
                self.assertEqual(op, 0x9)
                ws.send(0xA, payload)
            ws.send(0x1, b"still here")
            self.assertEqual(ws.recv_frame()[2:], (0x1, b"still here"))

    def test_shutdown_sends_1001(self):
        with H.CorioServer() as srv, RawWs(srv) as ws:
            srv.send_signal(signal.SIGTERM)
            fin, rsv, op, payload = ws.recv_frame(timeout=10)
            self.assertEqual((op, struct.unpack("!H", payload[:2])[0]), (0x8, 1001))
            ws.send(0x8, payload[:2])  # the close handshake completes
            self.assertTrue(ws.conn.wait_closed(10))
            self.assertEqual(srv.wait(10), 0)


if __name__ == "__main__":
    H.main()
