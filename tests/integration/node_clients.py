"""Node.js clients for corio's integration tests: Node's `ws` and headless
Chromium driven by `playwright-core`.

The npm packages are pinned in tests/integration/node/package.json and
package-lock.json and installed with `npm ci` into the build tree
(CORIO_NPM_DIR, by default <build>/npm), never into the source tree. ctest
does it once, before the tests that need it, in the fixture test
integration.npm_setup (`python3 node_clients.py --setup`); a test module run
by hand does it itself (ensure_packages). The install is redone only when the
lock file or Node's major version changed.

What is missing is a skip (exit 77) with a message that says what and how to
get it: no node or npm, an npm registry that cannot be reached, no Chromium.
What is there must work: a failing `npm ci` for any other reason, or a
client script that fails, is a test failure.

Every wait is bounded: npm ci by NPM_TIMEOUT, each client script by the
timeout its caller gives (the script also stops itself a little earlier and
says where it was), and a script that overstays is killed with its whole
process group (Chromium's processes included).
"""

import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_SRC = os.path.join(HERE, "node")
SKIP_EXIT = 77
NPM_TIMEOUT = 240  # seconds for `npm ci` (ctest gives the setup test 300)
MIN_NODE_MAJOR = 18  # engines of the pinned playwright-core (Debian 12's nodejs is 18)
STAMP = ".corio-npm-stamp"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium",)

# npm's error codes for a registry it cannot reach (no network, no DNS, a proxy
# that refuses): "unavailable", not a failure of the test
_NETWORK_ERRORS = re.compile(
    r"\b(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|"
    r"ESOCKETTIMEDOUT|ERR_SOCKET_TIMEOUT|network request to .* failed)\b")


class Unavailable(Exception):
    """A client cannot run on this machine: the tests that need it skip."""


def _build_dir_of(binary):
    d = os.path.dirname(os.path.abspath(binary))
    while d != os.path.dirname(d):
        if os.path.exists(os.path.join(d, "CMakeCache.txt")):
            return d
        d = os.path.dirname(d)
    return None


def npm_dir():
    """Where the npm packages are installed: CORIO_NPM_DIR (set by ctest), or
    npm/ in the build tree of CORIO_BIN, or build/npm in the source tree."""
    d = os.environ.get("CORIO_NPM_DIR")
    if d:
        return os.path.abspath(d)
    b = _build_dir_of(os.environ["CORIO_BIN"]) if os.environ.get("CORIO_BIN") else None
    if b is None:
        b = os.path.join(os.path.dirname(os.path.dirname(HERE)), "build")
    return os.path.join(b, "npm")


def node_bin():
    return shutil.which("node") or shutil.which("nodejs")


def _node_major(node):
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Unavailable("`%s --version` failed: %s" % (node, e))
    m = re.match(r"v(\d+)\.", out.stdout.strip())
    if out.returncode != 0 or not m:
        raise Unavailable("`%s --version` printed %r" % (node, out.stdout + out.stderr))
    return int(m.group(1))


def _stamp_text(node_major):
    h = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        with open(os.path.join(NODE_SRC, name), "rb") as f:
            h.update(f.read())
    return "%s node%d\n" % (h.hexdigest(), node_major)


def ensure_packages(log=None):
    """Installs the pinned packages into npm_dir() unless already there;
    returns the node_modules path. Raises Unavailable (skip) when node, npm
    or the registry are missing, RuntimeError (fail) when npm ci fails for
    another reason. Safe to call from concurrent processes (a file lock)."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    node = node_bin()
    npm = shutil.which("npm")
    if not node or not npm:
        raise Unavailable("%s not found (Debian packages nodejs and npm; tests/run.sh installs "
                          "them)" % " and ".join(n for n, p in (("node", node), ("npm", npm))
                                                   if not p))
    major = _node_major(node)
    if major < MIN_NODE_MAJOR:
        raise Unavailable("Node.js %d is too old: the pinned playwright-core needs %d or later"
                          % (major, MIN_NODE_MAJOR))
    dest = npm_dir()
    os.makedirs(dest, exist_ok=True)
    modules = os.path.join(dest, "node_modules")
    stamp = _stamp_text(major)
    with open(os.path.join(dest, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be installing: wait for it
        try:
            with open(os.path.join(dest, STAMP)) as f:
                if f.read() == stamp and os.path.isdir(modules):
                    return modules
        except OSError:
            pass
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(os.path.join(NODE_SRC, name), os.path.join(dest, name))
        try:
            os.unlink(os.path.join(dest, STAMP))
        except OSError:
            pass
        log("node_clients: npm ci in %s (ws, playwright-core as pinned in %s)"
            % (dest, os.path.join(NODE_SRC, "package-lock.json")))
        env = dict(os.environ, npm_config_update_notifier="false", npm_config_fund="false",
                   npm_config_audit="false")
        try:
            # a registry that cannot be reached is known in seconds, not
            # after npm's default backoff (about 70 s)
            r = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund",
                                "--fetch-retries=2", "--fetch-retry-mintimeout=2000",
                                "--fetch-retry-maxtimeout=10000"],
                               cwd=dest, env=env, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=NPM_TIMEOUT)
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or "") + (e.stderr or "")
            if isinstance(out, bytes):
                out = out.decode("utf-8", "replace")
            raise Unavailable("npm ci did not finish within %d s (registry unreachable?):\n%s"
                              % (NPM_TIMEOUT, out[-2000:]))
        out = r.stdout + r.stderr
        if r.returncode != 0:
            if _NETWORK_ERRORS.search(out):
                raise Unavailable("npm ci could not reach the npm registry:\n" + out[-2000:])
            raise RuntimeError("npm ci failed (exit %d):\n%s" % (r.returncode, out[-4000:]))
        if out.strip():
            log(out.strip()[-2000:])
        with open(os.path.join(dest, STAMP), "w") as f:
            f.write(stamp)
    return modules


def chromium_bin():
    """Debian's Chromium (or the one CORIO_CHROMIUM names), or raises
    Unavailable."""
    p = os.environ.get("CORIO_CHROMIUM")
    for c in [p] if p else CHROMIUM_CANDIDATES:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    raise Unavailable("Chromium not found at %s (Debian package chromium; tests/run.sh "
                      "installs it)" % (p or " or ".join(CHROMIUM_CANDIDATES)))


def require(chromium=False):
    """For a test module's start: the packages (and Chromium) or exit 77
    with the reason. Returns the node_modules path."""
    try:
        modules = ensure_packages()
        if chromium:
            chromium_bin()
        return modules
    except Unavailable as e:
        print("SKIP: %s" % e, file=sys.stderr)
        sys.exit(SKIP_EXIT)


class ClientError(AssertionError):
    pass


def run_script(script, args, timeout):
    """Runs node tests/integration/node/<script> with args (a dict, passed as
    JSON in argv[2]; the script stops itself after args['timeout_ms'], set
    here from `timeout` when absent) and returns the JSON object the script
    printed last on stdout. Raises ClientError with its output when it fails
    or is killed after timeout + 30 s."""
    node = node_bin()
    if not node:
        raise unittest.SkipTest("node not found")
    args = dict(args)
    args.setdefault("timeout_ms", int(timeout * 1000))
    env = dict(os.environ, NODE_PATH=os.path.join(npm_dir(), "node_modules"))
    cmd = [node, os.path.join(NODE_SRC, script), json.dumps(args)]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        _kill_group(proc)  # the script and what it started (Chromium): the leader still lives
        out, err = proc.communicate(timeout=30)
        raise ClientError("%s %s was killed after %d s\nstdout: %s\nstderr: %s"
                          % (script, args.get("scenario", ""), timeout + 30,
                             out.decode("utf-8", "replace")[-3000:],
                             err.decode("utf-8", "replace")[-3000:]))
    text = out.decode("utf-8", "replace")
    lines = [l for l in text.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise ClientError("%s %s exited %s\nstdout: %s\nstderr: %s"
                          % (script, args.get("scenario", ""), proc.returncode, text[-3000:],
                             err.decode("utf-8", "replace")[-3000:]))
    return json.loads(lines[-1])


def _kill_group(proc):
    """Only while proc, the group's leader, is not yet reaped: its pid is
    still its own."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def main():
    """--setup: install the packages (the ctest fixture). Exit 0 when
    installed, 77 when unavailable (the dependent tests then skip with the
    same reason), 1 when npm ci failed."""
    if sys.argv[1:] != ["--setup"]:
        print("usage: %s --setup" % sys.argv[0], file=sys.stderr)
        return 2
    try:
        modules = ensure_packages(log=print)
    except Unavailable as e:
        print("SKIP: %s" % e)
        return SKIP_EXIT
    except RuntimeError as e:
        print("FAIL: %s" % e)
        return 1
    print("node_clients: packages ready in %s" % modules)
    return 0


if __name__ == "__main__":
    sys.exit(main())
