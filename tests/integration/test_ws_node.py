"""WebSocket on the daemon with Node's `ws` (npm, pinned in
tests/integration/node/package-lock.json): echo of text and binary,
fragmentation, ping/pong both ways, close codes, large messages (70 KB,
200 KB, 16 MiB), 1009 over the maximum, rooms; each with and without
permessage-deflate.

Each test runs tests/integration/node/ws_client.js for one scenario (see
there) with a timeout and asserts on the JSON it prints. Without node, npm
or the packages (npm registry unreachable) the module exits 77 (skipped)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
import node_clients as N  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401

MIB = 1 << 20
DEFLATE = (False, True)  # permessage-deflate offered by the client or not


def msg(kind, size, fill="random"):
    return {"kind": kind, "bytes": size, "fill": fill}


class NodeTestCase(H.ServerTestCase):
    def ws_url(self, path="/ws/echo"):
        return "ws://%s:%d%s" % (self.server.host, self.server.port, path)

    def node(self, scenario, timeout=60, **args):
        args.setdefault("url", self.ws_url())
        args["scenario"] = scenario
        return N.run_script("ws_client.js", args, timeout=timeout)

    def assert_echoed(self, r, specs):
        self.assertEqual(len(r["messages"]), len(specs), r)
        for spec, m in zip(specs, r["messages"]):
            self.assertEqual((m["got_kind"], m["got_bytes"], m["equal"]),
                             (spec["kind"], spec["bytes"], True), m)
        self.assertEqual(r["close"]["code"], 1000, r)

    def assert_extensions(self, r, deflate, expect_deflate=None):
        """permessage-deflate is negotiated exactly when offered (and the
        server's compression is on)."""
        on = deflate if expect_deflate is None else expect_deflate
        ext = r["extensions"]
        if on:
            self.assertTrue(ext and ext.startswith("permessage-deflate"), ext)
        else:
            self.assertIsNone(ext)

    def assert_alive(self):
        H.assert_server_alive(self, self.server)


class TestNodeEcho(NodeTestCase):
    # a 16 MiB message is the largest allowed: exactly at the maximum
    server_config = {"websocket": {"max_message_bytes": 16 * MIB,
                                   "send_queue_bytes": 40 * MIB}}

    def test_text_and_binary_keep_their_type(self):
        specs = [msg("text", 13), msg("binary", 3), msg("text", 0), msg("binary", 0),
                 msg("text", 125), msg("binary", 126), msg("text", 65535, "repeat"),
                 msg("binary", 65536), msg("text", 5000, "repeat")]
        for deflate in DEFLATE:
            with self.subTest(deflate=deflate):
                r = self.node("echo", deflate=deflate, messages=specs)
                self.assert_echoed(r, specs)
                self.assert_extensions(r, deflate)

    def test_server_compresses_when_negotiated(self):
        # 100 KB of repeated text come back in a few hundred bytes only if
        # the server compressed its echo
        specs = [msg("text", 100000, "repeat"), msg("binary", 100000, "repeat")]
        for deflate in DEFLATE:
            with self.subTest(deflate=deflate):
                r = self.node("echo", deflate=deflate, messages=specs)
                self.assert_echoed(r, specs)
                if deflate:
                    self.assertLess(r["bytes_read"], 20000, r)
                else:
                    self.assertGreater(r["bytes_read"], 200000, r)

    def test_pipelined_messages_come_back_in_order(self):
        specs = [msg("text" if i % 3 else "binary", (i * 37) % 3000,
                     "repeat" if i % 2 else "random") for i in range(300)]
        for deflate in DEFLATE:
            with self.subTest(deflate=deflate):
                r = self.node("echo", deflate=deflate, messages=specs, pipelined=True)
                self.assert_echoed(r, specs)

    def test_large_messages(self):
        specs = [msg("binary", 70 * 1024), msg("text", 70 * 1024),
                 msg("text", 200 * 1024, "repeat"), msg("binary", 200 * 1024),
                 msg("text", 200 * 1024)]
        for deflate in DEFLATE:
            with self.subTest(deflate=deflate):
                r = self.node("echo", deflate=deflate, messages=specs)
                self.assert_echoed(r, specs)
                self.assert_extensions(r, deflate)

    def test_16_mib_messages(self):
        specs = [msg("binary", 16 * MIB), msg("text", 16 * MIB, "repeat"),
                 msg("text", 16 * MIB)]
        for deflate in DEFLATE:
            with self.subTest(deflate=deflate):
                r = self.node("echo", timeout=240, deflate=deflate, messages=specs)
                self.assert_echoed(r, specs)

    def test_one_byte_over_16_mib_is_1009(self):
        for deflate in DEFLATE:
            for fragments in (1, 4):
                with self.subTest(deflate=deflate, fragments=fragments):
                    r = self.node("too_big", timeout=120, deflate=deflate, fragments=fragments,
                                  message=msg("binary", 16 * MIB + 1))
                    self.assertEqual(r["close_code"], 1009, r)
                    self.assertEqual(r["messages"], 0, r)
        self.assert_alive()

    def test_fragmented_messages(self):
        for deflate in DEFLATE:
            with self.subTest(deflate=deflate):
                r = self.node("fragments", deflate=deflate)
                # the ping between two fragments is answered at once, the
                # message when complete
                self.assertEqual(r["interleaved"], ["pong:mid", "text:fragmented"], r)
                self.assertEqual(r["split_utf8"], {"kind": "text", "equal": True})
                self.assertEqual(r["empty_fragments"], {"kind": "text", "text": "abc"})
                self.assertEqual(r["large_fragments"],
                                 {"kind": "binary", "bytes": 60000, "equal": True})
                self.assertEqual(r["many_fragments"],
                                 {"kind": "binary", "bytes": 16000, "equal": True})
                self.assertEqual(r["close"]["code"], 1000)
                self.assert_extensions(r, deflate)

    def test_ping_gets_pong_with_its_payload(self):
        for deflate in DEFLATE:
            with self.subTest(deflate=deflate):
                r = self.node("ping", deflate=deflate)
                self.assertEqual(r["pongs"], [{"bytes": n, "equal": True}
                                              for n in (13, 0, 125, 64)])
                self.assertEqual(r["echo_after"], "after pings")

    def test_close_code_is_echoed(self):
        for deflate in DEFLATE:
            for code, reason in ((1000, ""), (1001, "going"), (3000, "registered"),
                                 (4000, "done"), (4999, "x" * 123)):
                with self.subTest(deflate=deflate, code=code):
                    r = self.node("close", deflate=deflate, code=code, reason=reason)
                    self.assertEqual(r["code"], code, r)


class TestNodeLimits(NodeTestCase):
    """The default maximum (1 MiB)."""

    def test_message_over_the_maximum_is_1009(self):
        cases = [(False, msg("binary", MIB + 1), 1), (False, msg("text", 2 * MIB, "repeat"), 1),
                 (True, msg("binary", MIB + 1), 1),
                 # a compressed bomb: 2 MiB of zeros in a few kilobytes
                 (True, msg("binary", 2 * MIB, "zeros"), 1),
                 (True, msg("text", 3 * MIB, "repeat"), 3)]
        for deflate, m, fragments in cases:
            with self.subTest(deflate=deflate, message=m, fragments=fragments):
                r = self.node("too_big", deflate=deflate, message=m, fragments=fragments)
                self.assertEqual(r["close_code"], 1009, r)
                self.assertEqual(r["messages"], 0, r)
        self.assert_alive()

    def test_1009_reaches_a_client_that_is_still_sending(self):
        # The server fails the message once past the maximum, while the client
        # is still writing its later fragments. The client must still read the
        # 1009 (RFC 6455 7.1.1: the server half-closes and reads until the
        # client's end, as corio's HTTP side lingers after an error); a server
        # that closes its socket at once resets the connection, and ws, whose
        # write then fails with EPIPE, reports 1006 without the close frame.
        cases = [(False, msg("binary", 2 * MIB), 8), (False, msg("text", 2 * MIB, "repeat"), 8),
                 (False, msg("binary", 8 * MIB), 64), (True, msg("binary", 2 * MIB), 8)]
        for deflate, m, fragments in cases:
            with self.subTest(deflate=deflate, message=m, fragments=fragments):
                r = self.node("too_big", deflate=deflate, message=m, fragments=fragments)
                self.assertEqual(r["close_code"], 1009, r)
        self.assert_alive()

    def test_exactly_the_maximum_is_echoed(self):
        specs = [msg("binary", MIB), msg("text", MIB, "repeat")]
        for deflate in DEFLATE:
            with self.subTest(deflate=deflate):
                self.assert_echoed(self.node("echo", deflate=deflate, messages=specs), specs)


class TestNodeServerCompressionOff(NodeTestCase):
    server_config = {"websocket": {"compression": False}}

    def test_offer_is_declined_and_messages_flow(self):
        specs = [msg("text", 5000, "repeat"), msg("binary", 70 * 1024)]
        r = self.node("echo", deflate=True, messages=specs)
        self.assert_echoed(r, specs)
        self.assert_extensions(r, True, expect_deflate=False)

    def test_rooms_without_compression(self):
        r = self.node("rooms", base=self.ws_url(""), room="plain", other_room="else",
                      clients=[True, True, False],
                      messages=[msg("text", 40), msg("binary", 200 * 1024)])
        for m in r["members"]:
            self.assertIsNone(m["extensions"], m)
            self.assertTrue(m["same"] and m["in_order"] and m["extra"] == 0, m)


class TestNodeServerPing(NodeTestCase):
    server_config = {"websocket": {"ping_interval_ms": 200, "idle_timeout_ms": 1500}}

    def test_answered_pings_keep_an_idle_connection(self):
        # ws answers each ping: idle (but for pongs) longer than the idle
        # timeout, the connection still echoes
        r = self.node("server_ping", min_ms=2500, min_pings=2)
        self.assertGreaterEqual(r["pings"], 2, r)
        self.assertGreaterEqual(r["elapsed_ms"], 2500, r)
        self.assertEqual(r["echo"], "still here")

    def test_unanswered_pings_close_the_connection(self):
        r = self.node("server_ping", auto_pong=False)
        self.assertGreaterEqual(r["pings"], 1, r)
        # not before the idle timeout (measured from before the connection)
        self.assertGreaterEqual(r["closed_after_ms"], 1450, r)


class TestNodeServerPingInterval(NodeTestCase):
    server_config = {"websocket": {"ping_interval_ms": 200, "idle_timeout_ms": 6000}}

    def test_answered_connection_is_pinged_every_interval(self):
        # "ping a connection idle this long": after ws's pong the connection is
        # idle again, so the next ping follows ping_interval_ms later, not at
        # the idle timeout (a proxy that drops connections idle for less than
        # the idle timeout would otherwise cut them). The bound is 15 times
        # the interval; the idle timeout is 30 times.
        r = self.node("server_ping", min_pings=3)
        gaps = [b - a for a, b in zip(r["ping_ms"], r["ping_ms"][1:])]
        self.assertLess(r["ping_ms"][0], 3000, r)
        self.assertTrue(all(g < 3000 for g in gaps),
                        "pings at %r ms after the connection opened: gaps %r ms"
                        % (r["ping_ms"], gaps))


class TestNodeRooms(NodeTestCase):
    def rooms(self, clients, messages, room):
        r = self.node("rooms", base=self.ws_url(""), room=room, other_room=room + "-other",
                      clients=clients, messages=messages, timeout=120)
        self.assertEqual(len(r["members"]), len(clients))
        for deflate, m in zip(clients, r["members"]):
            self.assertEqual((m["received"], m["expected"]), (m["expected"], 2 * len(messages)),
                             m)
            self.assertTrue(m["same"], m)
            self.assertTrue(m["in_order"], m)
            self.assertEqual(m["extra"], 0, "a member got its own message back: %r" % m)
            if deflate:
                # one compressed frame for everyone: no server context takeover
                self.assertIn("server_no_context_takeover", m["extensions"] or "", m)
            else:
                self.assertIsNone(m["extensions"], m)
        self.assertEqual(r["other_room"]["received"], 0, r)

    MESSAGES = [msg("text", 30), msg("binary", 1000), msg("text", 70 * 1024, "repeat"),
                msg("binary", 200 * 1024), msg("text", 200 * 1024)]

    def test_three_members_without_compression(self):
        self.rooms([False, False, False], self.MESSAGES, "plain")

    def test_three_members_with_compression(self):
        self.rooms([True, True, True], self.MESSAGES, "deflated")

    def test_three_members_mixed(self):
        self.rooms([True, False, True], self.MESSAGES, "mixed")


if __name__ == "__main__":
    if H.corio_bin() is not None:
        N.require()  # the npm packages, or exit 77 with the reason
    H.main()
