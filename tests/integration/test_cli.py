"""Command line, configuration file and exit codes of the corio daemon."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401


def run(args, timeout=10.0):
    """Run the binary with args; the daemon is killed if it does not exit."""
    try:
        return subprocess.run([H.corio_bin()] + list(args), stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:  # subprocess.run kills the child
        raise AssertionError("corio %s did not exit within %.0f s (stderr: %r)"
                             % (" ".join(args), timeout, e.stderr)) from None


def run_unprivileged(args):
    """run(), but as nobody when root (who may write anything), so that file
    permissions mean the same for every user."""
    if os.geteuid() != 0:
        return run(args)
    try:
        return subprocess.run([H.corio_bin()] + list(args), stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=10.0, user=65534, group=65534,
                              extra_groups=[])
    except PermissionError as e:  # nobody may not reach the binary
        raise unittest.SkipTest("cannot run corio as nobody: %s" % e) from None


class CliTestCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="corio-cli-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write_config(self, cfg, name="corio.json"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            if isinstance(cfg, str):
                f.write(cfg)
            else:
                json.dump(cfg, f)
        return path

    def check(self, cfg, extra=()):
        return run(["--config", self.write_config(cfg), "--check-config"] + list(extra))

    def assertConfigError(self, p, *names):
        """Exit status 2, exactly one (non-empty) line on stderr naming every name."""
        self.assertEqual(p.returncode, 2, "stdout=%r stderr=%r" % (p.stdout, p.stderr))
        lines = [l for l in p.stderr.decode("utf-8", "replace").splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, "expected one stderr line, got %r" % lines)
        for n in names:
            self.assertIn(n, lines[0])


class TestInfoFlags(CliTestCase):
    def test_version_prints_corio_and_exits_0(self):
        p = run(["--version"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("corio", (p.stdout + p.stderr).decode())

    def test_help_prints_usage_and_exits_0(self):
        p = run(["--help"])
        self.assertEqual(p.returncode, 0, p.stderr)
        out = (p.stdout + p.stderr).decode()
        for flag in ("--config", "--listen", "--root", "--access-log", "--check-config"):
            self.assertIn(flag, out)

    def test_help_lists_handler_and_pool_keys(self):
        out = run(["--help"]).stdout.decode()
        for key in ('"handler_ms": 60000', '"pool_wait_ms": 1000', '"pool_queue": 1024',
                    '"serve_dotfiles": false', "1..1048576"):
            self.assertIn(key, out)

    def test_help_lists_websocket_keys_with_ranges(self):
        out = run(["--help"]).stdout.decode()
        for key in ('"websocket": {', '"max_message_bytes": 1048576', "1..1073741824",
                    '"ping_interval_ms": 30000', '"idle_timeout_ms": 120000', "0..86400000",
                    '"send_queue_bytes": 2097152', "max_message_bytes + 14..2147483648",
                    '"origins": []', "at most 64", '"compression": true'):
            self.assertIn(key, out)

    def test_unknown_flag_exits_2(self):
        p = run(["--no-such-flag"])
        self.assertEqual(p.returncode, 2)
        self.assertTrue(p.stderr.strip())


class TestCheckConfig(CliTestCase):
    def test_check_config_valid_file_exits_0(self):
        p = self.check({
            "listen": ["127.0.0.1:0"], "pool_threads": 2,
            "limits": {"max_connections": 100, "max_header_bytes": 4096, "max_uri_bytes": 2048,
                       "max_body_bytes": 65536, "max_requests_per_connection": 10},
            "timeouts": {"header_ms": 1000, "body_ms": 1000, "keepalive_ms": 1000,
                         "write_ms": 1000, "drain_ms": 1000},
            "log": {"level": "info", "access": "off"}})
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_check_config_full_example_exits_0(self):
        root = os.path.join(self.tmp, "www")
        os.mkdir(root)
        p = self.check({
            "listen": ["0.0.0.0:8080"], "root": root, "pool_threads": 4,
            "limits": {"max_connections": 100000, "max_header_bytes": 8192,
                       "max_uri_bytes": 8192, "max_body_bytes": 1048576,
                       "max_requests_per_connection": 0},
            "timeouts": {"header_ms": 10000, "body_ms": 30000, "keepalive_ms": 75000,
                         "write_ms": 30000, "drain_ms": 10000},
            "log": {"level": "info", "access": "-"}})
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_check_config_handler_and_pool_keys_exit_0(self):
        p = self.check({"listen": ["127.0.0.1:0"], "pool_queue": 1, "serve_dotfiles": True,
                        "timeouts": {"handler_ms": 0, "pool_wait_ms": 86400000}})
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_pool_queue_out_of_range_exits_2_naming_key(self):
        self.assertConfigError(self.check({"pool_queue": 0}), "pool_queue: 0 is out of range")

    def test_handler_ms_out_of_range_exits_2_naming_key(self):
        self.assertConfigError(self.check({"timeouts": {"handler_ms": 86400001}}),
                               "timeouts.handler_ms: 86400001 is out of range")

    def test_serve_dotfiles_not_boolean_exits_2(self):
        self.assertConfigError(self.check({"serve_dotfiles": "yes"}),
                               "serve_dotfiles: expected true or false")

    def test_check_config_without_file_exits_0(self):
        p = run(["--check-config", "--listen", "127.0.0.1:0"])
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_check_config_does_not_start_server(self):
        p = run(["--check-config", "--listen", "127.0.0.1:0"], timeout=5)
        self.assertNotIn("listening on", p.stderr.decode("utf-8", "replace"))

    def test_invalid_json_syntax_exits_2(self):
        self.assertConfigError(self.check('{"listen": ["127.0.0.1:0"],'))

    def test_unknown_top_level_key_exits_2_naming_key(self):
        self.assertConfigError(self.check({"listen": ["127.0.0.1:0"], "bogus_key": 1}),
                               "bogus_key")

    def test_unknown_nested_key_exits_2_naming_key(self):
        self.assertConfigError(self.check({"limits": {"max_bogus_things": 5}}),
                               "max_bogus_things")

    def test_wrong_type_top_level_exits_2_naming_key(self):
        self.assertConfigError(self.check({"pool_threads": "four"}), "pool_threads")

    def test_wrong_type_nested_exits_2_naming_key(self):
        self.assertConfigError(self.check({"timeouts": {"header_ms": "fast"}}), "header_ms")

    def test_wrong_type_listen_not_list_exits_2(self):
        self.assertConfigError(self.check({"listen": 8080}), "listen")

    def test_wrong_type_section_not_object_exits_2(self):
        self.assertConfigError(self.check({"limits": 5}), "limits")

    def test_negative_limit_exits_2(self):
        self.assertConfigError(self.check({"limits": {"max_body_bytes": -1}}), "max_body_bytes")

    def test_range_error_names_the_file(self):
        p = self.check({"limits": {"max_connections": 0}})
        self.assertConfigError(p, "corio: %s: limits.max_connections: 0 is out of range"
                               % os.path.join(self.tmp, "corio.json"))

    def test_root_in_file_that_is_a_file_exits_2_naming_the_file(self):
        f = self.write_config("x", name="file.txt")
        p = self.check({"root": f})
        self.assertConfigError(p, "corio: %s: root: %s: not a directory"
                               % (os.path.join(self.tmp, "corio.json"), f))

    def test_root_flag_that_is_a_file_exits_2_naming_the_flag(self):
        f = self.write_config("x", name="file.txt")
        p = self.check({"pool_threads": 1}, ["--root", f])
        self.assertConfigError(p, "corio: --root: %s: not a directory" % f)

    def test_missing_root_in_file_exits_2_naming_the_file(self):
        missing = os.path.join(self.tmp, "nowhere")
        p = self.check({"root": missing})
        self.assertConfigError(p, "corio: %s: root: %s: No such file or directory"
                               % (os.path.join(self.tmp, "corio.json"), missing))

    def test_root_error_names_the_file_when_running(self):
        f = self.write_config("x", name="file.txt")
        p = run(["--config", self.write_config({"root": f}), "--listen", "127.0.0.1:0"])
        self.assertConfigError(p, "%s: root: " % os.path.join(self.tmp, "corio.json"))

    def test_overlapping_listens_in_file_exit_2_naming_both(self):
        p = self.check({"listen": ["0.0.0.0:8081", "127.0.0.1:8081"]})
        self.assertConfigError(p, os.path.join(self.tmp, "corio.json"), "listen[1]",
                               '"127.0.0.1:8081" overlaps listen[0] "0.0.0.0:8081"')

    def test_overlapping_listen_flags_exit_2_naming_both(self):
        p = run(["--check-config", "--listen", "*:8081", "--listen", "localhost:8081"])
        self.assertConfigError(p, 'corio: --listen: "localhost:8081" overlaps "*:8081"')

    def test_overlapping_ipv6_listens_exit_2_naming_both(self):
        p = run(["--check-config", "--listen", "[::1]:8081", "--listen", "[::]:8081"])
        self.assertConfigError(p, '"[::]:8081" overlaps "[::1]:8081"')

    def test_overlapping_listens_exit_2_when_running(self):
        p = run(["--listen", "0.0.0.0:8081", "--listen", "127.0.0.1:8081"])
        self.assertConfigError(p, "overlaps")

    def test_access_log_in_missing_directory_exits_2_naming_the_file(self):
        log = os.path.join(self.tmp, "nodir", "access.log")
        p = self.check({"log": {"access": log}})
        self.assertConfigError(p, "corio: %s: log.access: %s: cannot create it in %s: "
                               "No such file or directory"
                               % (os.path.join(self.tmp, "corio.json"), log,
                                  os.path.join(self.tmp, "nodir")))

    def test_access_log_flag_that_is_a_directory_exits_2_naming_the_flag(self):
        p = run(["--check-config", "--access-log", self.tmp])
        self.assertConfigError(p, "corio: --access-log: %s: Is a directory" % self.tmp)

    def test_unwritable_access_log_exits_2(self):
        log = os.path.join(self.tmp, "access.log")
        open(log, "w").close()
        os.chmod(log, 0o444)
        os.chmod(self.tmp, 0o755)  # mkdtemp makes it 0700
        p = run_unprivileged(["--check-config", "--access-log", log])
        self.assertConfigError(p, "--access-log: %s: Permission denied" % log)

    def test_access_log_in_unwritable_directory_exits_2(self):
        d = os.path.join(self.tmp, "ro")
        os.mkdir(d, 0o555)
        os.chmod(self.tmp, 0o755)
        p = run_unprivileged(["--check-config", "--access-log", os.path.join(d, "access.log")])
        self.assertConfigError(p, "cannot create it in %s: Permission denied" % d)

    def test_unopenable_access_log_exits_2_when_running(self):
        p = run(["--listen", "127.0.0.1:0", "--access-log",
                 os.path.join(self.tmp, "nodir", "access.log")])
        self.assertConfigError(p, "--access-log: ")

    def test_check_config_does_not_create_access_log(self):
        log = os.path.join(self.tmp, "access.log")
        p = run(["--check-config", "--access-log", log])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertFalse(os.path.exists(log))

    def test_missing_config_file_exits_2(self):
        p = run(["--config", os.path.join(self.tmp, "nope.json"), "--check-config"])
        self.assertConfigError(p)

    def test_missing_config_file_without_check_exits_2(self):
        p = run(["--config", os.path.join(self.tmp, "nope.json"), "--listen", "127.0.0.1:0"])
        self.assertEqual(p.returncode, 2)

    def test_invalid_listen_flag_exits_2(self):
        p = run(["--listen", "not-an-address", "--check-config"])
        self.assertEqual(p.returncode, 2)

    def test_invalid_listen_port_exits_2(self):
        p = run(["--listen", "127.0.0.1:99999", "--check-config"])
        self.assertEqual(p.returncode, 2)

    def test_invalid_log_level_flag_exits_2(self):
        p = run(["--log-level", "loud", "--check-config"])
        self.assertEqual(p.returncode, 2)

    def test_invalid_log_level_in_file_exits_2(self):
        self.assertConfigError(self.check({"log": {"level": "loud"}}))

    def test_config_error_when_running_exits_2(self):
        p = run(["--config", self.write_config({"bogus_key": True}),
                 "--listen", "127.0.0.1:0"])
        self.assertConfigError(p, "bogus_key")

    def test_flag_overrides_invalid_file_value_is_still_checked(self):
        # the file is loaded (and rejected) even if flags would override it
        p = run(["--config", self.write_config({"listen": 5}), "--listen", "127.0.0.1:0",
                 "--check-config"])
        self.assertEqual(p.returncode, 2)


class TestWebSocketConfig(CliTestCase):
    """The "websocket" section, through --check-config."""

    def cfg_path(self):
        return os.path.join(self.tmp, "corio.json")

    def test_issue_example_exits_0(self):
        p = self.check({"listen": ["127.0.0.1:0"], "websocket": {
            "max_message_bytes": 1048576, "ping_interval_ms": 30000, "idle_timeout_ms": 120000,
            "send_queue_bytes": 2097152, "origins": [], "compression": True}})
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_64_mib_messages_with_room_in_the_queue_exit_0(self):
        p = self.check({"listen": ["127.0.0.1:0"], "websocket": {
            "max_message_bytes": 64 << 20, "send_queue_bytes": (64 << 20) + 14,
            "ping_interval_ms": 0, "idle_timeout_ms": 0, "compression": False,
            "origins": ["https://example.com", "http://localhost:3000", "https://[::1]:8443",
                        "null"]}})
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_1_gib_messages_exit_0(self):
        p = self.check({"listen": ["127.0.0.1:0"], "websocket": {
            "max_message_bytes": 1 << 30, "send_queue_bytes": 1 << 31}})
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_64_origins_exit_0_and_65_exit_2(self):
        origins = ["https://h%d.example" % i for i in range(64)]
        p = self.check({"listen": ["127.0.0.1:0"], "websocket": {"origins": origins}})
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.check({"websocket": {"origins": origins + ["https://h64.example"]}})
        self.assertConfigError(p, "websocket.origins: too many origins (65, at most 64)")

    def test_message_bytes_over_the_queue_names_both_keys_and_the_file(self):
        p = self.check({"websocket": {"max_message_bytes": 64 << 20}})
        self.assertConfigError(p, "corio: %s: websocket.send_queue_bytes: 2097152 is out of range "
                               "(67108878..2147483648, at least websocket.max_message_bytes + 14)"
                               % self.cfg_path())

    def test_send_queue_one_byte_short_exits_2(self):
        p = self.check({"websocket": {"send_queue_bytes": 1048576 + 13}})
        self.assertConfigError(p, "websocket.send_queue_bytes: 1048589 is out of range",
                               "websocket.max_message_bytes")

    def test_idle_timeout_not_above_ping_interval_names_both_keys(self):
        p = self.check({"websocket": {"ping_interval_ms": 60000, "idle_timeout_ms": 60000}})
        self.assertConfigError(p, "corio: %s: websocket.idle_timeout_ms: 60000 must be greater "
                               "than websocket.ping_interval_ms (60000), or 0 (never)"
                               % self.cfg_path())
        p = self.check({"websocket": {"ping_interval_ms": 200000}})  # the default idle: 120000
        self.assertConfigError(p, "websocket.idle_timeout_ms: 120000 must be greater than "
                               "websocket.ping_interval_ms (200000)")

    def test_either_timer_off_exits_0(self):
        for ws in ({"ping_interval_ms": 0, "idle_timeout_ms": 1},
                   {"ping_interval_ms": 86400000, "idle_timeout_ms": 0}):
            p = self.check({"listen": ["127.0.0.1:0"], "websocket": ws})
            self.assertEqual(p.returncode, 0, (ws, p.stderr))

    def test_ranges_exit_2_naming_the_key(self):
        for key, value, want in (
                ("max_message_bytes", 0, "(1..1073741824)"),
                ("max_message_bytes", (1 << 30) + 1, "(1..1073741824)"),
                ("ping_interval_ms", 86400001, "(0..86400000)"),
                ("idle_timeout_ms", 86400001, "(0..86400000)"),
                ("send_queue_bytes", (1 << 31) + 1, "(1048590..2147483648")):
            p = self.check({"websocket": {key: value}})
            self.assertConfigError(p, "websocket.%s: %d is out of range %s" % (key, value, want))

    def test_unknown_key_exits_2_naming_websocket_key(self):
        p = self.check({"websocket": {"max_frame_bytes": 1}})
        self.assertConfigError(p, 'corio: %s: unknown key "websocket.max_frame_bytes"'
                               % self.cfg_path())

    def test_wrong_types_exit_2_naming_the_key(self):
        for ws, want in (({"compression": "yes"}, "websocket.compression: expected true or false"),
                         ({"ping_interval_ms": "30s"},
                          "websocket.ping_interval_ms: expected a non-negative integer"),
                         ({"send_queue_bytes": -1},
                          "websocket.send_queue_bytes: expected a non-negative integer"),
                         ({"origins": "https://example.com"},
                          "websocket.origins: expected an array of strings"),
                         ({"origins": ["null", 443]}, "websocket.origins[1]: expected a string")):
            self.assertConfigError(self.check({"websocket": ws}), want)
        self.assertConfigError(self.check({"websocket": True}), "websocket: expected an object")

    def test_malformed_origins_exit_2_with_the_reason(self):
        for origin, why in (
                ("https://example.com/", "an origin has no trailing slash"),
                ("https://example.com/chat", "an origin has no path, query or fragment"),
                ("ftp://example.com", 'expected "null" or scheme://host[:port] with scheme '
                                      'http or https'),
                ("example.com", 'expected "null" or scheme://host[:port]'),
                ("https://user@example.com", "an origin has no user name or password"),
                ("https://*.example.com", "invalid host name"),
                ("https://[::1", "invalid IPv6 address"),
                ("https://example.com:0", "invalid port (expected 1..65535)")):
            p = self.check({"websocket": {"origins": ["null", origin]}})
            self.assertConfigError(p, 'corio: %s: websocket.origins[1]: invalid origin "%s": %s'
                                   % (self.cfg_path(), origin, why))

    def test_one_origin_twice_exits_2_naming_both(self):
        p = self.check({"websocket": {"origins": ["https://example.com",
                                                  "HTTPS://Example.com:443"]}})
        self.assertConfigError(p, 'websocket.origins[1]: "HTTPS://Example.com:443" duplicates '
                               'websocket.origins[0] "https://example.com"')

    def test_websocket_error_when_running_exits_2(self):
        p = run(["--config", self.write_config({"websocket": {"idle_timeout_ms": 1}}),
                 "--listen", "127.0.0.1:0"])
        self.assertConfigError(p, "websocket.idle_timeout_ms", "websocket.ping_interval_ms")


class TestConfigTakesEffect(unittest.TestCase):
    def test_listen_from_config_file(self):
        srv = H.CorioServer(config={"listen": ["127.0.0.1:0"]}, listen=False)
        with srv:
            self.assertEqual(srv.host, "127.0.0.1")
            st, _, body = srv.request("GET", "/plaintext")
            self.assertEqual((st, body), (200, b"Hello, World!"))

    def test_two_listen_flags_listen_twice(self):
        srv = H.CorioServer(args=["--listen", "127.0.0.1:0"])  # plus the harness's own
        with srv:
            addrs = srv.wait_listening_count(2)
            self.assertEqual(len(set(addrs)), 2, addrs)
            for host, port in addrs:
                with H.RawConn(host, port) as c:
                    c.send(H.simple_get("/plaintext"))
                    self.assertEqual(c.read_response().status, 200)

    def test_root_flag_overrides_config_root(self):
        srv = H.CorioServer(outside_files={"a/f.txt": b"from-config", "b/f.txt": b"from-flag"})
        srv.config = {"root": os.path.join(srv.tmpdir, "a")}
        srv.args = ["--root", os.path.join(srv.tmpdir, "b")]
        with srv:
            st, _, body = srv.request("GET", "/f.txt")
            self.assertEqual((st, body), (200, b"from-flag"))

    def test_root_from_config_file(self):
        srv = H.CorioServer(outside_files={"docs/hello.txt": b"hi there"})
        srv.config = {"root": os.path.join(srv.tmpdir, "docs")}
        with srv:
            st, _, body = srv.request("GET", "/hello.txt")
            self.assertEqual((st, body), (200, b"hi there"))

    def test_limit_from_config_file_applies(self):
        srv = H.CorioServer(config={"limits": {"max_uri_bytes": 64}})
        with srv:
            r = srv.raw(H.simple_get("/plaintext?" + "a" * 200))
            self.assertEqual(r.status, 414)

    def test_access_log_flag_overrides_config(self):
        srv = H.CorioServer(config={"log": {"access": "off"}})
        log = os.path.join(srv.tmpdir, "access.log")
        srv.args = ["--access-log", log]
        with srv:
            st, _, _ = srv.request("GET", "/plaintext")
            self.assertEqual(st, 200)
            self.assertEqual(srv.stop(), 0)
            with open(log) as f:
                self.assertIn('"GET /plaintext HTTP/1.1" 200', f.read())

    def test_sigterm_idle_server_exits_0(self):
        srv = H.CorioServer()
        with srv:
            self.assertEqual(srv.stop(timeout=5), 0)


if __name__ == "__main__":
    H.main()
