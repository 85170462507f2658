"""The host install's files in deploy/: the example /etc/corio/corio.json
validates, the man page corio(8) renders cleanly and covers every flag of
--help, every configuration key (of --help's template and of config.c's
table, with the keys SIGHUP applies marked "(live)"), the signals, exit
statuses and environment; the systemd units pass `systemd-analyze verify`
(skipped, saying why, where it is missing), use only flags corio has, and
give the drain time to finish; the logrotate snippet rotates the files the
example writes and signals SIGHUP.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401

SRC = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEPLOY = os.path.join(SRC, "deploy")
LOG_DIR = "/var/log/corio"


def read(name):
    with open(os.path.join(DEPLOY, name)) as f:
        return f.read()


def corio(*args, timeout=30):
    p = subprocess.run([H.corio_bin()] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def help_text():
    rc, out, err = corio("--help")
    assert rc == 0, err
    return out


def man_text():
    """The man page's source with roff's escapes for '-', quotes and fonts undone."""
    s = read("corio.8")
    for a, b in (("\\-", "-"), ("\\(dq", '"'), ("\\(aq", "'"), ("\\&", ""), ("\\e", "\\")):
        s = s.replace(a, b)
    return re.sub(r"\\f[BIRP]", "", s)


def help_keys(text):
    """Dotted keys of --help's configuration template ("limits.max_connections")."""
    keys, section = [], []
    template = text.split("Configuration file", 1)[1]
    for line in template.splitlines():
        # A key's indentation says its depth (what starts a line further
        # right is a description, as {"address": ..., "proxy_protocol": true}).
        depth = 4 + 2 * len(section)
        m = re.match(r'^( +)"(\w+)":( \{)?', line)
        if m and len(m.group(1)) == depth:
            if m.group(3):
                section.append(m.group(2))
            else:
                keys.append(".".join(section + [m.group(2)]))
        elif re.match(r"^ {%d}\},?\s*$" % (depth - 2), line) and section:
            section.pop()
    return keys


def table_keys():
    """{key: restart} from config.c's table of every leaf key (cio_config_diff)."""
    with open(os.path.join(SRC, "config", "config.c")) as f:
        src = f.read()
    out = {}
    for m in re.finditer(r'^\s+[FL]\("([\w.]+)", [^\n]*?(true|false)\),', src, re.M):
        out[m.group(1)] = m.group(2) == "true"
    return out


def man_entries():
    """{term: paragraph} of the man page's .TP entries whose term is one .B word."""
    entries = {}
    for m in re.finditer(r"^\.TP\n\.B ([\w.]+)\n(.*?)(?=^\.TP|^\.SH)", man_text(), re.M | re.S):
        entries[m.group(1)] = m.group(2)
    return entries


class DeployTestCase(unittest.TestCase):
    def tool(self, name, package):
        """The command's path, or the test is skipped naming the package."""
        path = shutil.which(name)
        if not path:
            self.skipTest("no %s (Debian: %s)" % (name, package))
        return path

    def tmp(self):
        """A temporary directory, removed at the end."""
        d = tempfile.mkdtemp(prefix="corio-deploy-")
        self.addCleanup(shutil.rmtree, d, True)
        return d


class TestExampleConfig(DeployTestCase):
    def test_it_validates(self):
        """As installed, where /var/log/corio exists (here a temp dir stands
        for it: --check-config opens the access log's directory)."""
        text = read("corio.json")
        self.assertIn(LOG_DIR + "/", text)
        tmp = self.tmp()
        path = os.path.join(tmp, "corio.json")
        with open(path, "w") as f:
            f.write(text.replace(LOG_DIR, tmp))
        rc, out, err = corio("--check-config", "--config", path)
        self.assertEqual((rc, err), (0, ""))

    def test_the_service_reads_it_where_it_is_installed(self):
        self.assertIn("ExecStart=/usr/bin/corio --config /etc/corio/corio.json\n",
                      read("corio.service"))


class TestManPage(DeployTestCase):
    def test_groff_finds_nothing_to_warn_about(self):
        p = subprocess.run([self.tool("groff", "groff-base"), "-man", "-Tutf8", "-ww", "-z",
                            os.path.join(DEPLOY, "corio.8")], capture_output=True, timeout=60)
        self.assertEqual((p.returncode, p.stderr.decode(), p.stdout.decode()), (0, "", ""))

    def test_man_renders_it(self):
        p = subprocess.run([self.tool("man", "man-db"), "-l", "-P", "cat", os.path.join(DEPLOY, "corio.8")],
                           capture_output=True, timeout=60, env=dict(os.environ, MANWIDTH="80"))
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        for section in ("NAME", "SYNOPSIS", "OPTIONS", "CONFIGURATION", "SIGNALS",
                        "EXIT STATUS", "ENVIRONMENT", "FILES", "SEE ALSO"):
            self.assertRegex(out, r"(?m)^%s$" % section)

    def test_every_flag_of_help_is_there(self):
        man = man_text()
        flags = sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-[a-zA-Z])\b", help_text())))
        self.assertIn("--probe-timeout", flags)
        for flag in flags:
            with self.subTest(flag=flag):
                self.assertRegex(man, r"(?m)^\.(B|BR|BI|OP|TP).*%s\b" % re.escape(flag))

    def test_every_key_of_helps_template_is_there(self):
        keys = help_keys(help_text())
        self.assertIn("limits.max_buffered_bytes", keys)
        self.assertGreater(len(keys), 40)
        entries = man_entries()
        for key in keys:
            with self.subTest(key=key):
                self.assertTrue(key in entries, "no .TP entry for %s" % key)

    def test_every_key_of_the_table_is_there_marked_live_as_sighup_applies_it(self):
        table = table_keys()
        self.assertIn("websocket.compression_window_bits", table)
        entries = man_entries()
        for key, restart in table.items():
            with self.subTest(key=key):
                self.assertTrue(key in entries, "no .TP entry for %s" % key)
                self.assertEqual("(live)" in entries[key], not restart, entries[key])

    def test_signals_exit_statuses_environment_files(self):
        man = man_text()
        for word in ("SIGTERM", "SIGINT", "SIGHUP", "A second SIGTERM", "NOTIFY_SOCKET",
                     "LISTEN_FDS", "LISTEN_PID", "CORIO_DEBUG", "/etc/corio/corio.json",
                     "/etc/logrotate.d/corio", "corio.socket", "io_uring_disabled"):
            with self.subTest(word=word):
                self.assertIn(word, man)
        for status in ("0", "1", "2"):
            self.assertRegex(man, r"\.SH EXIT STATUS\n(.*\n)*?\.TP\n\.B %s\n" % status)


def unit_value(text, key):
    return [l.split("=", 1)[1] for l in text.splitlines() if l.startswith(key + "=")]


class TestSystemdUnits(DeployTestCase):
    def test_systemd_analyze_verify(self):
        tool = self.tool("systemd-analyze", "systemd")
        tmp = self.tmp()
        # The binary where the unit expects it, and the man page its
        # Documentation= names, in places of the test's own.
        for name in ("corio.service", "corio.socket"):
            with open(os.path.join(tmp, name), "w") as f:
                f.write(read(name).replace("/usr/bin/corio", H.corio_bin()))
        os.makedirs(os.path.join(tmp, "man", "man8"))
        shutil.copy(os.path.join(DEPLOY, "corio.8"), os.path.join(tmp, "man", "man8"))
        p = subprocess.run([tool, "verify", os.path.join(tmp, "corio.service"),
                            os.path.join(tmp, "corio.socket")], capture_output=True, timeout=120,
                           env=dict(os.environ, MANPATH=os.path.join(tmp, "man")), cwd=tmp)
        out = (p.stdout + p.stderr).decode()
        if p.returncode != 0 and re.search(r"Failed to (initialize|setup|set up|connect)|"
                                           r"Operation not permitted|Read-only file system", out):
            self.skipTest("systemd-analyze cannot run here: %s" % out.strip().splitlines()[0])
        self.assertEqual((p.returncode, out), (0, ""))

    def test_commands_use_flags_corio_has(self):
        service = read("corio.service")
        helped = set(re.findall(r"--[a-z][a-z-]*", help_text()))
        commands = unit_value(service, "ExecStart") + unit_value(service, "ExecReload")
        self.assertEqual(len(commands), 3, commands)
        for cmd in commands:
            for flag in re.findall(r"(?<!\S)--[a-z][a-z-]*", cmd):
                self.assertIn(flag, helped, cmd)

    def test_notify_reload_stop_and_hardening(self):
        service = read("corio.service")
        for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "DynamicUser=yes",
                     "ProtectSystem=strict", "NoNewPrivileges=yes", "LimitNOFILE=65536",
                     "LogsDirectory=corio", "KillSignal=SIGTERM",
                     "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX"):
            self.assertIn(line + "\n", service)
        # The system call filter must leave io_uring to corio.
        for call in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
            self.assertIn(call, unit_value(service, "SystemCallFilter")[0])

    def test_the_stop_timeout_leaves_room_for_the_drain(self):
        drain_ms = json.loads(read("corio.json")).get("timeouts", {}).get("drain_ms", 10000)
        stop = unit_value(read("corio.service"), "TimeoutStopSec")[0]
        self.assertRegex(stop, r"^\d+s$")
        # the drain, then up to 5 s for pool jobs to stop, then some slack
        self.assertGreaterEqual(int(stop[:-1]) * 1000, drain_ms + 5000 + 5000)

    def test_the_socket_unit_starts_the_service(self):
        sock = read("corio.socket")
        self.assertEqual(unit_value(sock, "ListenStream"), ["0.0.0.0:8080"])
        self.assertEqual(unit_value(sock, "Service"), ["corio.service"])


class TestLogrotate(DeployTestCase):
    def test_it_rotates_the_example_logs_and_signals_sighup(self):
        snippet = read("corio.logrotate")
        access = json.loads(read("corio.json"))["log"]["access"]
        self.assertTrue(access.startswith(LOG_DIR + "/") and access.endswith(".log"), access)
        self.assertIn(LOG_DIR + "/*.log {", snippet)
        self.assertIn("systemctl kill --signal=HUP corio.service", snippet)
        self.assertIn("nocreate", snippet)

    def test_logrotate_reads_it(self):
        tool = self.tool("logrotate", "logrotate")
        tmp = self.tmp()
        conf = os.path.join(tmp, "corio")
        with open(conf, "w") as f:
            f.write(read("corio.logrotate").replace(LOG_DIR, tmp))
        with open(os.path.join(tmp, "access.log"), "w") as f:
            f.write("x\n")
        p = subprocess.run([tool, "--debug", "--force", "--state", os.path.join(tmp, "state"),
                            conf], capture_output=True, timeout=60)
        out = (p.stdout + p.stderr).decode()
        self.assertEqual(p.returncode, 0, out)
        self.assertNotRegex(out, r"(?i)error", out)
        self.assertIn("running postrotate script", out)

    def test_a_rotation_reopens_corios_access_log(self):
        """For real: logrotate renames the file and signals corio (here
        with kill, for want of systemd), which creates the next one."""
        tool = self.tool("logrotate", "logrotate")
        tmp = self.tmp()
        log = os.path.join(tmp, "access.log")
        with H.CorioServer(args=["--access-log", log]) as srv:
            def lines(path):
                with open(path) as f:
                    return [l for l in f if "/plaintext?" in l]
            self.assertEqual(srv.request("GET", "/plaintext?before")[0], 200)
            H.until(lambda: self.assertEqual(len(lines(log)), 1), what="the first line")
            conf = os.path.join(tmp, "corio.conf")
            with open(conf, "w") as f:
                f.write(read("corio.logrotate").replace(LOG_DIR, tmp).replace(
                    "systemctl kill --signal=HUP corio.service", "kill -HUP %d" % srv.proc.pid))
            p = subprocess.run([tool, "--force", "--state", os.path.join(tmp, "state"), conf],
                               capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 0, (p.stdout + p.stderr).decode())
            srv.wait_for_log(r"SIGHUP: configuration unchanged", timeout=30)
            self.assertTrue(os.path.exists(log), "corio did not create the new file")
            self.assertEqual(srv.request("GET", "/plaintext?after")[0], 200)
            H.until(lambda: self.assertEqual(len(lines(log)), 1), what="a line in the new file")
            self.assertIn("?after", lines(log)[0])
            self.assertIn("?before", "".join(lines(log + ".1")))  # delaycompress: kept plain


if __name__ == "__main__":
    H.main()
