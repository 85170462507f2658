"""corio as a Unix daemon: --daemon (detaching, the caller's exit status,
its stdio, its working directory), the pidfile and its lock, the process log
in a file (log.error / --error-log), SIGHUP (reopening the logs, reloading
the command line and its file), systemd's notify protocol, the open-files
limit, dropping privileges (--user/--group) and SIGTERM.

Processes: every corio a test starts gets an environment variable with a
tag of that test's own (MARK); whatever carries it, the foreground process
or a daemon that detached (double fork, setsid: not our child, in a session
of its own), is found in /proc and SIGKILLed when the test ends, however it
ended. The daemon's pid itself comes from its pidfile or from that scan.

Ports: a test's ports are held for the whole test by a socket of the test's,
bound with SO_REUSEADDR and never listening (as in test_discovery.py): corio
(SO_REUSEADDR too) can listen there, nothing else takes it. So the address
is known before corio starts, and a daemon can be asked at once once its
command returned.

Logs go to files (corio's stderr is a file, or log.error), read again until
the expected line is there. No assertion depends on how fast the machine
is: every wait polls an observable state (a log line, a file, a socket
message, /proc) with a generous deadline.
"""

import fcntl
import http.client
import json
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401

DEADLINE = 30.0  # seconds for any state to be reached (generous: a loaded machine)
MARK = "CORIO_TEST_DAEMON_TAG"  # the environment variable that tags a test's processes
READY_RE = re.compile(r"\] corio \S+ ready \(")
LONG_PATH = "/" + "a" * 200  # 404 with the default limits.max_uri_bytes (no root)


# ---------------------------------------------------------------------------
# helpers


def until(check, timeout=DEADLINE, step=0.05, what="the expected state"):
    return H.until(check, timeout, step, what)


def read_text(path):
    """The file's text, "" when it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def matching(path, pattern):
    rx = re.compile(pattern) if isinstance(pattern, str) else pattern
    return [l for l in read_text(path).splitlines() if rx.search(l)]


def wait_lines(path, pattern, count=1, timeout=DEADLINE):
    """Waits until `count` lines of the file match; returns them."""
    def check():
        hits = matching(path, pattern)
        assert len(hits) >= count, "%d of %d line(s) matching %r in %s:\n%s" % (
            len(hits), count, getattr(pattern, "pattern", pattern), path, read_text(path))
        return hits
    return until(check, timeout=timeout, what="the log line")


def proc_state(pid):
    """The state letter of process pid (R, S, Z...), None when gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid):
    return proc_state(pid) not in (None, "Z", "X")


def proc_stat_fields(pid):
    """/proc/pid/stat from field 3 (state) on, as a list (fields[0] = state,
    [1] = ppid, [2] = pgrp, [3] = session, [4] = tty_nr)."""
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def proc_status(pid):
    """/proc/pid/status as a dict of name -> value text."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def nofile_limits(pid):
    """(soft, hard) "Max open files" of process pid, from /proc/pid/limits."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return soft, hard
    raise AssertionError("no 'Max open files' in /proc/%d/limits" % pid)


def tagged_pids(tag):
    """Live processes whose environment holds MARK=tag (zombies have none)."""
    needle = ("%s=%s" % (MARK, tag)).encode()
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % d, "rb") as f:
                env = f.read()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            pids.append(int(d))
    return pids


get = H.get_on_port  # one GET on a fresh connection: (status, body)


Reserved = H.Reserved  # a port bound, never listening: every process started on it binds the same


class NotifySocket:
    """What systemd listens on: an AF_UNIX datagram socket at path (a file,
    or "@name" for the abstract namespace). Messages arrive with the
    sender's credentials."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + path[1:] if path.startswith("@") else path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)

    def recv(self, timeout=DEADLINE):
        """(message text, sender pid); AssertionError after timeout."""
        self.sock.settimeout(timeout)
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            raise AssertionError("no notify message within %.0f s" % timeout) from None
        pid = None
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = int.from_bytes(cdata[0:4], sys.byteorder)
        return data.decode(), pid

    def close(self):
        self.sock.close()


class DaemonTestCase(unittest.TestCase):
    """A temp dir, and a tag for the processes of the test; whatever carries
    the tag is killed at the end, then the dir removed."""

    def setUp(self):
        self.bin = H.corio_bin()
        if self.bin is None:
            raise unittest.SkipTest(H.skip_reason())
        self.tag = uuid.uuid4().hex
        self.closers = []
        self.procs = []
        self.tmp = tempfile.mkdtemp(prefix="corio-dm-")
        self.addCleanup(self._cleanup)
        self.log = self.path("stderr.log")  # corio's stderr, unless a test says otherwise

    def _cleanup(self):
        deadline = time.monotonic() + DEADLINE
        while True:
            pids = tagged_pids(self.tag)
            for p in self.procs:
                if p.poll() is None and p.pid not in pids:
                    pids.append(p.pid)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            if time.monotonic() > deadline:
                break  # nothing more to do; rmtree below still runs
            time.sleep(0.05)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for c in reversed(self.closers):
            try:
                c()
            except Exception:  # noqa: BLE001 - close the others anyway
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- set-up pieces -------------------------------------------------------

    def path(self, name):
        return os.path.join(self.tmp, name)

    def reserve(self):
        r = Reserved()
        self.closers.append(r.close)
        return r.port

    def listen_args(self):
        """--listen on a reserved port, and the port."""
        port = self.reserve()
        return ["--listen", "%s:%d" % (H.HOST, port)], port

    def notify_socket(self, path=None):
        n = NotifySocket(path or self.path("notify"))
        self.closers.append(n.close)
        return n

    def write_config(self, cfg, name="corio.json"):
        p = self.path(name)
        with open(p + ".tmp", "w") as f:
            json.dump(cfg, f)
        os.replace(p + ".tmp", p)  # a SIGHUP never reads a half-written file
        return p

    def env(self, extra=None):
        e = dict(os.environ)
        e.pop("NOTIFY_SOCKET", None)  # a test run under systemd: not ours to tell
        e[MARK] = self.tag
        e.update(extra or {})
        return e

    # -- running corio -------------------------------------------------------

    def spawn(self, args, stderr=None, env=None, preexec_fn=None, cwd=None):
        """corio with args, not waited for; its stderr appended to self.log
        unless stderr (a file object, fd or subprocess.PIPE) says otherwise."""
        own = None
        if stderr is None:
            own = stderr = open(self.log, "ab")
        try:
            p = subprocess.Popen([self.bin] + list(args), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=stderr,
                                 env=self.env(env), cwd=cwd or self.tmp,
                                 preexec_fn=preexec_fn, start_new_session=True)
        finally:
            if own is not None:
                own.close()
        self.procs.append(p)
        return p

    def start(self, args, log=None, **kw):
        """corio in the foreground, once it logged "ready" (to log, by
        default its stderr self.log)."""
        p = self.spawn(args, **kw)
        log = log or self.log

        def ready():
            assert p.poll() is None, "corio exited with %s:\n%s" % (p.returncode,
                                                                      read_text(log))
            assert matching(log, READY_RE), "not ready yet:\n" + read_text(log)
        until(ready, what="corio's 'ready' line")
        return p

    def daemon(self, args, **kw):
        """corio --daemon with args: the caller's exit status, once it
        returned."""
        p = self.spawn(["--daemon"] + list(args), **kw)
        try:
            return p.wait(timeout=DEADLINE + 10)
        except subprocess.TimeoutExpired:
            self.fail("corio --daemon did not return within %.0f s:\n%s"
                      % (DEADLINE + 10, read_text(self.log)))

    def the_daemon(self):
        """The pid of the only running process of this test (a detached
        daemon, once its caller returned)."""
        def one():
            pids = [p for p in tagged_pids(self.tag) if alive(p)]
            assert len(pids) == 1, "tagged processes: %r" % pids
            return pids[0]
        return until(one, what="exactly one running corio")

    def pid_in(self, pidfile):
        text = read_text(pidfile)
        self.assertRegex(text, r"^\d+\n$", "pidfile %s" % pidfile)
        return int(text)

    def wait_gone(self, pid):
        def gone():
            assert not alive(pid), "pid %d still runs (state %s)" % (pid, proc_state(pid))
        until(gone, what="the end of pid %d" % pid)

    def assert_serves(self, port):
        self.assertEqual(get(port), (200, b"Hello, World!"))


# ---------------------------------------------------------------------------
# --daemon


class TestDaemonMode(DaemonTestCase):
    def test_returns_0_once_the_daemon_serves(self):
        """The command's exit status 0 means "serving": the listening
        socket is there the moment it returned, without retries."""
        listen, port = self.listen_args()
        self.assertEqual(self.daemon(listen + ["--access-log", "off"]), 0, read_text(self.log))
        self.assert_serves(port)

    def test_daemon_key_in_the_config_file_detaches_too(self):
        listen, port = self.listen_args()
        cfg = self.write_config({"daemon": True, "log": {"access": "off"}})
        p = self.spawn(["--config", cfg] + listen)
        self.assertEqual(p.wait(timeout=DEADLINE + 10), 0, read_text(self.log))
        self.assert_serves(port)
        self.assertNotEqual(self.the_daemon(), p.pid)

    def test_daemon_is_detached_in_a_session_it_does_not_lead(self):
        listen, port = self.listen_args()
        pidfile = self.path("corio.pid")
        caller = self.spawn(["--daemon", "--pidfile", pidfile, "--access-log", "off"] + listen)
        self.assertEqual(caller.wait(timeout=DEADLINE + 10), 0, read_text(self.log))
        pid = self.pid_in(pidfile)
        self.assertNotEqual(pid, caller.pid)
        state, ppid, pgrp, sid, tty = proc_stat_fields(pid)[:5]
        ppid, pgrp, sid, tty = int(ppid), int(pgrp), int(sid), int(tty)
        self.assertNotIn(ppid, (caller.pid, os.getpid()), "the daemon's parent")
        # setsid() in a first child (the session's leader, gone), then a
        # second fork: a session of its own that it does not lead, no terminal.
        self.assertNotIn(sid, (os.getsid(0), caller.pid, pid), "the daemon's session")
        self.assertEqual(pgrp, sid)
        self.assertEqual(tty, 0, "the daemon has a controlling terminal")

    def test_stdin_and_stdout_go_to_dev_null_and_a_file_stderr_is_kept(self):
        listen, port = self.listen_args()
        self.assertEqual(self.daemon(listen + ["--access-log", "off"]), 0, read_text(self.log))
        pid = self.the_daemon()
        self.assertEqual(os.readlink("/proc/%d/fd/0" % pid), "/dev/null")
        self.assertEqual(os.readlink("/proc/%d/fd/1" % pid), "/dev/null")
        self.assertEqual(os.readlink("/proc/%d/fd/2" % pid), os.path.realpath(self.log))
        wait_lines(self.log, r"\[%d\] corio \S+ ready \(" % pid)

    def test_a_terminal_stderr_goes_to_dev_null(self):
        master, slave = os.openpty()
        self.closers.append(lambda: os.close(master))
        try:
            listen, port = self.listen_args()
            rc = self.daemon(listen + ["--access-log", "off"], stderr=slave)
        finally:
            os.close(slave)
        self.assertEqual(rc, 0)
        pid = self.the_daemon()
        self.assertEqual(os.readlink("/proc/%d/fd/2" % pid), "/dev/null")
        self.assert_serves(port)

    def test_a_pipe_on_stderr_keeps_getting_the_daemons_log(self):
        """The caller exits, the daemon holds the pipe: its later lines
        (here: a SIGHUP's) still come through."""
        listen, port = self.listen_args()
        caller = self.spawn(["--daemon", "--access-log", "off"] + listen,
                            stderr=subprocess.PIPE)
        lines, cond = [], threading.Condition()

        def drain():
            for raw in iter(caller.stderr.readline, b""):
                with cond:
                    lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                    cond.notify_all()
        threading.Thread(target=drain, daemon=True).start()
        self.closers.append(caller.stderr.close)  # after the daemon was killed: EOF
        self.assertEqual(caller.wait(timeout=DEADLINE + 10), 0)
        pid = self.the_daemon()
        os.kill(pid, signal.SIGHUP)

        def hup_logged():
            with cond:
                assert any(re.search(r"\[%d\] SIGHUP: configuration unchanged$" % pid, l)
                           for l in lines), "\n".join(lines)
        until(hup_logged, what="the daemon's SIGHUP line on the pipe")

    def test_working_directory_is_kept_for_relative_paths(self):
        """cwd stays: a relative pidfile lands there, and a relative
        --config is read from there again at SIGHUP."""
        listen, port = self.listen_args()
        self.write_config({"log": {"access": "off"}})
        rc = self.daemon(["--config", "corio.json", "--pidfile", "corio.pid"] + listen,
                         cwd=self.tmp)
        self.assertEqual(rc, 0, read_text(self.log))
        pid = self.pid_in(self.path("corio.pid"))
        self.assertEqual(os.readlink("/proc/%d/cwd" % pid), os.path.realpath(self.tmp))
        self.write_config({"log": {"access": "off", "level": "debug"}})
        os.kill(pid, signal.SIGHUP)
        wait_lines(self.log, r"\] SIGHUP: applied: log\.level$")

    def test_address_in_use_exits_1_with_the_message_on_the_callers_stderr(self):
        """The daemon's failure is the caller's exit status, and its message
        reaches the caller's stderr (a pipe here: read to EOF, which comes
        once the daemon is gone too)."""
        busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.closers.append(busy.close)
        busy.bind((H.HOST, 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        pidfile = self.path("corio.pid")
        r = subprocess.run([self.bin, "--daemon", "--listen", "%s:%d" % (H.HOST, port),
                            "--pidfile", pidfile, "--access-log", "off"],
                           stdin=subprocess.DEVNULL, capture_output=True, env=self.env(),
                           cwd=self.tmp, timeout=DEADLINE + 30)
        err = r.stderr.decode("utf-8", "replace")
        self.assertEqual(r.returncode, 1, err)
        self.assertRegex(err, r"cannot listen on %s:%d: Address already in use"
                         % (re.escape(H.HOST), port))
        until(lambda: self.assertFalse(os.path.exists(pidfile), read_text(pidfile)),
              what="the failed daemon's pidfile removed")


# ---------------------------------------------------------------------------
# the pidfile


class TestPidfile(DaemonTestCase):
    def test_pidfile_names_the_process_and_is_locked(self):
        listen, port = self.listen_args()
        pidfile = self.path("corio.pid")
        p = self.start(["--pidfile", pidfile, "--access-log", "off"] + listen)
        self.assertEqual(read_text(pidfile), "%d\n" % p.pid)
        with open(pidfile, "rb") as f:
            with self.assertRaises(BlockingIOError):
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def test_pidfile_key_in_the_config_file(self):
        listen, port = self.listen_args()
        pidfile = self.path("from-config.pid")
        cfg = self.write_config({"pidfile": pidfile, "log": {"access": "off"}})
        p = self.start(["--config", cfg] + listen)
        self.assertEqual(read_text(pidfile), "%d\n" % p.pid)

    def test_daemon_writes_its_own_pid(self):
        listen, port = self.listen_args()
        pidfile = self.path("corio.pid")
        rc = self.daemon(["--pidfile", pidfile, "--access-log", "off"] + listen)
        self.assertEqual(rc, 0, read_text(self.log))
        self.assertEqual(self.pid_in(pidfile), self.the_daemon())

    def assert_second_refused(self, daemon):
        listen, port = self.listen_args()
        pidfile = self.path("corio.pid")
        self.assertEqual(self.daemon(["--pidfile", pidfile, "--access-log", "off"] + listen), 0,
                         read_text(self.log))
        first = self.pid_in(pidfile)
        listen2, _ = self.listen_args()
        r = subprocess.run([self.bin] + (["--daemon"] if daemon else []) +
                           ["--pidfile", pidfile, "--access-log", "off"] + listen2,
                           stdin=subprocess.DEVNULL, capture_output=True, env=self.env(),
                           cwd=self.tmp, timeout=DEADLINE + 30)
        self.assertEqual((r.returncode, r.stderr.decode()),
                         (1, "corio: pidfile %s is locked: corio is already running (pid %d)\n"
                          % (pidfile, first)))
        self.assertEqual(read_text(pidfile), "%d\n" % first, "the first one's pidfile")
        self.assertEqual(tagged_pids(self.tag), [first])
        self.assert_serves(port)

    def test_a_second_instance_with_the_same_pidfile_refuses_to_start(self):
        self.assert_second_refused(daemon=False)

    def test_a_second_daemon_with_the_same_pidfile_refuses_to_start(self):
        self.assert_second_refused(daemon=True)

    def test_sigterm_exits_0_and_removes_the_pidfile(self):
        listen, port = self.listen_args()
        pidfile = self.path("corio.pid")
        p = self.start(["--pidfile", pidfile, "--access-log", "off"] + listen)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=DEADLINE), 0, read_text(self.log))
        self.assertFalse(os.path.exists(pidfile))

    def test_sigterm_to_the_daemon_removes_its_pidfile(self):
        listen, port = self.listen_args()
        pidfile = self.path("corio.pid")
        rc = self.daemon(["--pidfile", pidfile, "--access-log", "off"] + listen)
        self.assertEqual(rc, 0, read_text(self.log))
        pid = self.pid_in(pidfile)
        os.kill(pid, signal.SIGTERM)
        self.wait_gone(pid)
        self.assertFalse(os.path.exists(pidfile))
        self.assertEqual(len(matching(self.log, r"\[%d\] stopped$" % pid)), 1,
                         read_text(self.log))


# ---------------------------------------------------------------------------
# the process log in a file


class TestErrorLog(DaemonTestCase):
    def test_error_log_flag_appends_the_process_log_to_the_file(self):
        listen, port = self.listen_args()
        errlog = self.path("error.log")
        with open(errlog, "w") as f:
            f.write("an earlier line\n")
        p = self.start(["--error-log", errlog, "--access-log", "off"] + listen, log=errlog)
        self.assertTrue(read_text(errlog).startswith("an earlier line\n"), read_text(errlog))
        wait_lines(errlog, r"\[%d\] listening on %s:%d$" % (p.pid, re.escape(H.HOST), port))
        self.assertEqual(read_text(self.log), "", "corio's stderr")

    def test_error_key_in_the_config_file(self):
        listen, port = self.listen_args()
        errlog = self.path("error.log")
        cfg = self.write_config({"log": {"access": "off", "error": errlog}})
        p = self.start(["--config", cfg] + listen, log=errlog)
        wait_lines(errlog, r"\[%d\] listening on " % p.pid)
        self.assertEqual(read_text(self.log), "", "corio's stderr")

    def test_daemon_logs_to_the_error_log(self):
        listen, port = self.listen_args()
        errlog = self.path("error.log")
        pidfile = self.path("corio.pid")
        rc = self.daemon(["--error-log", errlog, "--pidfile", pidfile, "--access-log", "off"]
                         + listen)
        self.assertEqual(rc, 0, read_text(self.log) + read_text(errlog))
        wait_lines(errlog, r"\[%d\] corio \S+ ready \(" % self.pid_in(pidfile))
        self.assertEqual(read_text(self.log), "", "the caller's stderr")

    def test_sighup_reopens_the_error_log_after_a_rename(self):
        listen, port = self.listen_args()
        errlog = self.path("error.log")
        p = self.start(["--error-log", errlog, "--access-log", "off"] + listen, log=errlog)
        os.rename(errlog, errlog + ".1")
        hup = re.compile(r"\] SIGHUP: configuration unchanged$")

        def both():
            return matching(errlog + ".1", hup) + matching(errlog, hup)
        p.send_signal(signal.SIGHUP)
        until(lambda: self.assertTrue(os.path.exists(errlog)), what="a new error.log")
        # the first SIGHUP's own line may land in either file; wait for it
        until(lambda: self.assertEqual(len(both()), 1), what="the first SIGHUP's line")
        before = len(matching(errlog, hup))
        p.send_signal(signal.SIGHUP)
        until(lambda: self.assertEqual(len(both()), 2), what="the second SIGHUP's line")
        self.assertEqual(len(matching(errlog, hup)), before + 1,
                         "the second SIGHUP's line is not in the new file")
        self.assertEqual(len(matching(errlog + ".1", READY_RE)), 1)
        self.assertEqual(matching(errlog, READY_RE), [])

    def test_failed_start_points_the_terminal_to_the_error_log(self):
        busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.closers.append(busy.close)
        busy.bind((H.HOST, 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        errlog = self.path("error.log")
        p = self.spawn(["--error-log", errlog, "--access-log", "off",
                        "--listen", "%s:%d" % (H.HOST, port)])
        self.assertEqual(p.wait(timeout=DEADLINE + 10), 1, read_text(self.log))
        self.assertEqual(read_text(self.log),
                         "corio: could not start; the error log says why: %s\n" % errlog)
        self.assertEqual(len(matching(errlog, r"cannot listen on %s:%d: Address already in use"
                                      % (re.escape(H.HOST), port))), 1, read_text(errlog))


class TestAccessLog(DaemonTestCase):
    def test_sighup_reopens_the_access_log_after_a_rename(self):
        listen, port = self.listen_args()
        access = self.path("access.log")
        p = self.start(["--access-log", access] + listen)
        self.assertEqual(get(port, "/plaintext?before")[0], 200)
        wait_lines(access, r'"GET /plaintext\?before HTTP/1\.1" 200 ')
        os.rename(access, access + ".1")
        p.send_signal(signal.SIGHUP)
        until(lambda: self.assertTrue(os.path.exists(access)), what="a new access.log")
        wait_lines(self.log, r"\] SIGHUP: configuration unchanged$")
        self.assertEqual(get(port, "/plaintext?after")[0], 200)
        wait_lines(access, r'"GET /plaintext\?after HTTP/1\.1" 200 ')
        self.assertEqual(matching(access, r"\?before "), [])
        self.assertEqual(len(matching(access + ".1", r"\?before ")), 1)
        self.assertEqual(matching(access + ".1", r"\?after "), [])


    def test_json_format_writes_one_object_per_request(self):
        """log.format "json": every field of the combined format, named, and
        the duration; bytes a client sent that are not UTF-8 or are control
        characters come out as \\u00XX escapes, so each line parses."""
        listen, port = self.listen_args()
        access = self.path("access.log")
        cfg = self.path("json.json")
        with open(cfg, "w") as f:
            json.dump({"log": {"format": "json", "access": access}}, f)
        self.start(["--config", cfg] + listen)
        c = http.client.HTTPConnection(H.HOST, port, timeout=10)
        c.request("GET", "/plaintext?q=%22", headers={"User-Agent": 'a "b" \\',
                                                       "Referer": "http://r/"})
        self.assertEqual(c.getresponse().status, 200)
        c.close()
        with socket.create_connection((H.HOST, port), timeout=10) as s:
            s.sendall(b"GET /\x7f\xff HTTP/1.1\r\nHost: x\r\n\r\n")  # refused: 400
            s.recv(4096)
        lines = wait_lines(access, r"^\{", count=2)
        first, second = (json.loads(line) for line in lines[:2])
        self.assertEqual(
            {k: first[k] for k in ("remote", "method", "uri", "protocol", "status", "bytes",
                                   "referer", "user_agent")},
            {"remote": H.HOST, "method": "GET", "uri": "/plaintext?q=%22",
             "protocol": "HTTP/1.1", "status": 200, "bytes": 13, "referer": "http://r/",
             "user_agent": 'a "b" \\'})
        self.assertRegex(first["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertGreaterEqual(first["duration_ms"], 0)
        self.assertEqual(second["status"], 400)
        self.assertIsNone(second["referer"])


# ---------------------------------------------------------------------------
# SIGHUP: reloading the configuration


class TestReload(DaemonTestCase):
    def start_with_config(self, cfg, listen_flag=True):
        """corio with --config (and --listen on a reserved port unless
        listen_flag is False); (process, port, config path)."""
        cfg = dict(cfg)
        cfg.setdefault("log", {"access": "off"})
        args, port = [], None
        if listen_flag:
            args, port = self.listen_args()
        path = self.write_config(cfg)
        return self.start(["--config", path] + args), port, path

    def hup(self, p, pattern, count=1):
        p.send_signal(signal.SIGHUP)
        return wait_lines(self.log, pattern, count=count)

    def test_unchanged_file(self):
        p, port, path = self.start_with_config({})
        self.hup(p, r"\[%d\] SIGHUP: configuration unchanged$" % p.pid)
        self.assertEqual(matching(self.log, r"SIGHUP: (applied|changed)"), [])

    def test_log_level_is_applied(self):
        p, port, path = self.start_with_config({"log": {"access": "off", "level": "info"}})
        self.write_config({"log": {"access": "off", "level": "debug"}})
        self.hup(p, r" info  \[%d\] SIGHUP: applied: log\.level$" % p.pid)

    def test_a_lowered_log_level_is_in_force_after_the_reload(self):
        """info -> warn: the reload itself is still confirmed (said at the
        level in force before it), then info lines stop: an unchanged
        reload says nothing, and the next one's warning (workers need a
        restart) shows that it happened meanwhile."""
        p, port, path = self.start_with_config({"log": {"access": "off", "level": "info"}})
        self.write_config({"log": {"access": "off", "level": "warn"}})
        self.hup(p, r"\] SIGHUP: applied: log\.level$")
        p.send_signal(signal.SIGHUP)  # unchanged: an info line, not shown at warn
        # Whether this SIGHUP merges with the previous one or comes after
        # it, one reload sees the workers change, and logs it at warn.
        self.write_config({"log": {"access": "off", "level": "warn"}, "workers": 2})
        self.hup(p, r"\] SIGHUP: changed, but they need a restart \(still running with the "
                 r"old values\): workers$")
        self.assertEqual(matching(self.log, r"\] SIGHUP: configuration unchanged"), [],
                         read_text(self.log))

    def test_listen_changed_in_the_file_needs_a_restart(self):
        old, new = self.reserve(), self.reserve()
        p, _, path = self.start_with_config(
            {"listen": ["%s:%d" % (H.HOST, old)], "log": {"access": "off"}}, listen_flag=False)
        self.assert_serves(old)
        self.write_config({"listen": ["%s:%d" % (H.HOST, new)], "log": {"access": "off"}})
        self.hup(p, r"\[%d\] SIGHUP: changed, but they need a restart \(still running with the "
                 r"old values\): listen$" % p.pid)
        self.assert_serves(old)
        self.assertEqual(matching(self.log, r"SIGHUP: applied"), [])

    def test_listen_flag_overrides_a_changed_listen_in_the_file(self):
        other = self.reserve()
        p, port, path = self.start_with_config(
            {"listen": ["%s:%d" % (H.HOST, self.reserve())], "log": {"access": "off"}})
        self.write_config({"listen": ["%s:%d" % (H.HOST, other)], "log": {"access": "off"}})
        self.hup(p, r"\[%d\] SIGHUP: configuration unchanged$" % p.pid)
        self.assert_serves(port)

    def test_live_and_restart_changes_are_named_apart(self):
        p, port, path = self.start_with_config({"log": {"access": "off", "level": "info"}})
        self.write_config({"log": {"access": "off", "level": "debug"},
                           "limits": {"max_uri_bytes": 64}, "workers": 2})
        self.hup(p, r"\] SIGHUP: applied: limits\.max_uri_bytes, log\.level$")
        wait_lines(self.log, r"\] SIGHUP: changed, but they need a restart \(still running with "
                   r"the old values\): workers$")

    def test_limits_change_live(self):
        """limits.max_uri_bytes lowered: a long URI that got 404 now gets 414."""
        p, port, path = self.start_with_config({})
        self.assertEqual(get(port, LONG_PATH)[0], 404)
        self.write_config({"log": {"access": "off"}, "limits": {"max_uri_bytes": 64}})
        self.hup(p, r"\[%d\] SIGHUP: applied: limits\.max_uri_bytes$" % p.pid)
        self.assertEqual(get(port, LONG_PATH)[0], 414)
        self.assert_serves(port)

    def test_a_file_that_does_not_validate_keeps_the_running_configuration(self):
        """Rejected whole: neither its lower URI limit nor its log level is
        taken; the daemon serves on, at info level (its 'unchanged' line
        after the file is restored shows it), and a valid reload applies."""
        p, port, path = self.start_with_config({"log": {"access": "off", "level": "info"}})
        self.write_config({"log": {"access": "off", "level": "error"},
                           "limits": {"max_uri_bytes": 64}, "bogus": 1})
        self.hup(p, r"\[%d\] SIGHUP: %s: unknown key \"bogus\": keeping the running "
                 r"configuration$" % (p.pid, re.escape(path)))
        self.assert_serves(port)
        self.assertEqual(get(port, LONG_PATH)[0], 404)
        self.write_config({"log": {"access": "off", "level": "info"}})
        self.hup(p, r"\[%d\] SIGHUP: configuration unchanged$" % p.pid)
        self.write_config({"log": {"access": "off", "level": "info"},
                           "limits": {"max_uri_bytes": 64}})
        self.hup(p, r"\[%d\] SIGHUP: applied: limits\.max_uri_bytes$" % p.pid)
        self.assertEqual(get(port, LONG_PATH)[0], 414)

    def test_a_file_that_does_not_parse_keeps_the_running_configuration(self):
        p, port, path = self.start_with_config({})
        with open(path, "w") as f:
            f.write('{"limits": {"max_uri_bytes": 64}')
        self.hup(p, r"\[%d\] SIGHUP: %s:.*: keeping the running configuration$"
                 % (p.pid, re.escape(path)))
        self.assertEqual(get(port, LONG_PATH)[0], 404)
        self.assert_serves(port)


# ---------------------------------------------------------------------------
# systemd's notify protocol


class TestNotify(DaemonTestCase):
    def start_notified(self, extra_args=()):
        n = self.notify_socket()
        listen, port = self.listen_args()
        p = self.spawn(["--access-log", "off"] + listen + list(extra_args),
                       env={"NOTIFY_SOCKET": n.path})
        return n, p, port

    def test_ready_once_serving(self):
        n, p, port = self.start_notified()
        self.assertEqual(n.recv()[0], "READY=1")
        self.assert_serves(port)  # at once: READY=1 came after the listeners

    def test_reloading_then_ready_around_sighup(self):
        n, p, port = self.start_notified()
        self.assertEqual(n.recv()[0], "READY=1")
        t0 = time.monotonic()
        p.send_signal(signal.SIGHUP)
        msg, _ = n.recv()
        t1 = time.monotonic()
        m = re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=(\d+)", msg)
        self.assertIsNotNone(m, repr(msg))
        # CLOCK_MONOTONIC, as Python's: taken between the signal and its message
        self.assertGreaterEqual(int(m.group(1)), int(t0 * 1e6) - 1)
        self.assertLessEqual(int(m.group(1)), int(t1 * 1e6) + 1)
        self.assertEqual(n.recv()[0], "READY=1")

    def test_stopping_at_sigterm(self):
        n, p, port = self.start_notified()
        self.assertEqual(n.recv()[0], "READY=1")
        p.send_signal(signal.SIGTERM)
        self.assertEqual(n.recv()[0], "STOPPING=1")
        self.assertEqual(p.wait(timeout=DEADLINE), 0, read_text(self.log))

    def test_ready_comes_from_the_daemon_process(self):
        """With --daemon, READY=1 is sent by the detached process (the one
        systemd must track), before the caller returns."""
        pidfile = self.path("corio.pid")
        n, p, port = self.start_notified(["--daemon", "--pidfile", pidfile])
        self.assertEqual(p.wait(timeout=DEADLINE + 10), 0, read_text(self.log))
        msg, sender = n.recv()
        self.assertEqual((msg, sender), ("READY=1", self.pid_in(pidfile)))

    def test_abstract_socket_address(self):
        n = self.notify_socket("@corio-test-" + self.tag)
        listen, port = self.listen_args()
        self.spawn(["--access-log", "off"] + listen, env={"NOTIFY_SOCKET": n.path})
        self.assertEqual(n.recv()[0], "READY=1")


# ---------------------------------------------------------------------------
# the open-files limit


class TestOpenFilesLimit(DaemonTestCase):
    def start_with_nofile(self, soft, hard):
        cur_soft, cur_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if os.geteuid() != 0 and cur_hard != resource.RLIM_INFINITY and cur_hard < hard:
            self.skipTest("needs a hard RLIMIT_NOFILE of %d (have %d, not root)"
                          % (hard, cur_hard))

        def limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        listen, port = self.listen_args()
        return self.start(["--access-log", "off"] + listen, preexec_fn=limit)

    def test_soft_limit_is_raised_to_the_hard_one(self):
        p = self.start_with_nofile(1024, 8192)
        self.assertEqual(nofile_limits(p.pid), ("8192", "8192"))
        self.assertEqual(matching(self.log, r"open files limited"), [])

    def test_out_of_fds_does_not_spin_and_service_resumes(self):
        """More clients than the process may have fds: accepting backs off
        (one warning per 10 s, not per retry) and uses no CPU to speak of
        while it lasts (a spinning accept would take a whole core); once
        the clients go, a new one is served."""
        cur_soft, cur_hard = resource.getrlimit(resource.RLIMIT_NOFILE)

        def limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
        listen, port = self.listen_args()
        p = self.start(["--access-log", "off"] + listen, preexec_fn=limit)
        clients = []
        try:
            for _ in range(60):  # the kernel's backlog holds those not accepted
                clients.append(socket.create_connection((H.HOST, port), timeout=10))
            wait_lines(self.log, r"\] accept: Too many open files: new connections wait")
            since = time.monotonic()

            def cpu():
                f = proc_stat_fields(p.pid)
                return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
            c0, t0 = cpu(), time.monotonic()
            time.sleep(2)
            used, took = cpu() - c0, time.monotonic() - t0
            self.assertLess(used, 0.05 * took, "%.2f s of CPU in %.2f s" % (used, took))
        finally:
            for c in clients:
                c.close()
        until(lambda: self.assertEqual(get(port)[0], 200), what="service after the clients left")
        # one line per 10 s while it lasted, not one per retry (10 a second)
        allowed = 1 + int((time.monotonic() - since) / 10)
        self.assertLessEqual(len(matching(self.log, r"accept: Too many open files")), allowed,
                             read_text(self.log))

    def test_a_low_hard_limit_is_warned_about(self):
        p = self.start_with_nofile(512, 2048)
        self.assertEqual(nofile_limits(p.pid), ("2048", "2048"))
        self.assertEqual(len(matching(self.log, r"\[%d\] open files limited to 2048 \(ulimit -n\)"
                                      % p.pid)), 1, read_text(self.log))


# ---------------------------------------------------------------------------
# dropping privileges


class TestUser(DaemonTestCase):
    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("needs root (switches to the user nobody)")
        try:
            self.nobody = pwd.getpwnam("nobody")
        except KeyError:
            self.skipTest("no user nobody on this system")

    def assert_ids(self, pid, uid, gid):
        st = proc_status(pid)
        self.assertEqual(st["Uid"].split(), [str(uid)] * 4, st["Uid"])
        self.assertEqual(st["Gid"].split(), [str(gid)] * 4, st["Gid"])
        self.assertEqual(st["Groups"].split(), [str(gid)], st["Groups"])

    def test_user_nobody_runs_as_nobody_and_serves(self):
        listen, port = self.listen_args()
        p = self.start(["--user", "nobody", "--access-log", "off"] + listen)
        self.assert_ids(p.pid, self.nobody.pw_uid, self.nobody.pw_gid)
        self.assert_serves(port)

    def test_group_flag_sets_the_group(self):
        listen, port = self.listen_args()
        p = self.start(["--user", "nobody", "--group", "4242", "--access-log", "off"] + listen)
        self.assert_ids(p.pid, self.nobody.pw_uid, 4242)
        self.assert_serves(port)

    def test_daemon_as_nobody_leaves_no_pid_in_a_root_owned_pidfile(self):
        """The pidfile's directory is root's (0700): once nobody, the daemon
        cannot unlink it at exit; it empties it instead, or removes it."""
        listen, port = self.listen_args()
        pidfile = self.path("corio.pid")
        rc = self.daemon(["--user", "nobody", "--pidfile", pidfile, "--access-log", "off"]
                         + listen)
        self.assertEqual(rc, 0, read_text(self.log))
        pid = self.pid_in(pidfile)
        self.assert_ids(pid, self.nobody.pw_uid, self.nobody.pw_gid)
        self.assert_serves(port)
        os.kill(pid, signal.SIGTERM)
        self.wait_gone(pid)
        self.assertEqual(read_text(pidfile), "", "the pidfile after the daemon's exit")


class TestUnknownUser(DaemonTestCase):
    def test_unknown_user_is_a_configuration_error(self):
        listen, port = self.listen_args()
        p = self.spawn(["--user", "corio-no-such-user", "--access-log", "off"] + listen)
        self.assertEqual(p.wait(timeout=DEADLINE), 2)
        self.assertEqual(read_text(self.log),
                         'corio: --user: "corio-no-such-user": no such user\n')


if __name__ == "__main__":
    H.main()
