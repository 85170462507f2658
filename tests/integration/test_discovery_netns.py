"""The peer-ID self-discovery protocol between real hosts: three network
namespaces host0..host2, each with its own address on one Linux bridge (in a
fourth namespace; the root namespace's networking is not touched) and its own
/etc/hosts naming the three hosts, run corio with the identical config

    {"servers": ["host0:8080", "host1:8080", "host2:8080"]}

and --listen 0.0.0.0:8080. None can tell from the list which entry it is:
each must find itself by its id.

Needs root and iproute2; exits 77 (skipped) otherwise, or when namespaces,
veth pairs or bridges cannot be created (an unprivileged container).
Namespace names end with the pid, so that parallel runs do not collide; every
namespace, /etc/netns/<ns> directory and process is removed after the tests,
also after failures. No assertion depends on the machine's speed: waits poll
a log line or /cluster with a generous deadline.
"""

import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401

DEADLINE = 30.0
PORT = 8080
HOSTS = ["host0", "host1", "host2"]
SUBNET = "10.213.77"  # only inside the test's namespaces (no route leads there)
PREFIX = "cd%d" % os.getpid()  # cd<pid>h0..h2, cd<pid>br: unique per run
NETNS_ETC = "/etc/netns"
ENTRIES = ["%s:%d" % (h, PORT) for h in HOSTS]
CONFIG = {"servers": ENTRIES, "log": {"access": "off"},
          # a generous timeout of one query: a loaded machine must not make
          # a host's query of itself time out in round 1
          "discovery": {"interval_ms": 300, "request_timeout_ms": 10000}}


def run(*cmd, check=True):
    p = subprocess.run([str(c) for c in cmd], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=60)
    if check and p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(map(str, cmd)), p.returncode,
                                                (p.stderr or p.stdout).strip()))
    return p


class Topology:
    """The namespaces, the bridge and the hosts files; close() removes what
    was made (interfaces go with their namespaces)."""

    def __init__(self, prefix, hosts=HOSTS):
        self.prefix = prefix
        self.bridge_ns = prefix + "br"
        self.host_ns = ["%sh%d" % (prefix, i) for i in range(len(hosts))]
        self.hosts = hosts
        self.namespaces = []
        self.etc_dirs = []

    def address(self, i):
        return "%s.%d" % (SUBNET, i + 1)

    def add_ns(self, name):
        run("ip", "netns", "add", name)
        self.namespaces.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")

    def create(self):
        self.add_ns(self.bridge_ns)
        run("ip", "-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.bridge_ns, "link", "set", "br0", "up")
        hosts_file = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n" + "".join(
            "%s %s\n" % (self.address(i), h) for i, h in enumerate(self.hosts))
        for i, ns in enumerate(self.host_ns):
            self.add_ns(ns)
            # eth0 in the host, v<i> on the bridge: short names, each in its namespace
            run("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "v%d" % i,
                "netns", self.bridge_ns)
            run("ip", "-n", self.bridge_ns, "link", "set", "v%d" % i, "master", "br0")
            run("ip", "-n", self.bridge_ns, "link", "set", "v%d" % i, "up")
            run("ip", "-n", ns, "addr", "add", self.address(i) + "/24", "dev", "eth0")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
            etc = os.path.join(NETNS_ETC, ns)
            self.etc_dirs.append(etc)
            for _ in range(5):  # a parallel run's close() may rmdir an empty /etc/netns
                try:
                    os.makedirs(etc, exist_ok=True)
                    break
                except FileNotFoundError:
                    continue
            with open(os.path.join(etc, "hosts"), "w") as f:
                f.write(hosts_file)
        return self

    def close(self):
        errors = []
        for ns in reversed(self.namespaces):
            p = run("ip", "netns", "del", ns, check=False)
            if p.returncode != 0:
                errors.append("ip netns del %s: %s" % (ns, p.stderr.strip()))
        self.namespaces = []
        for d in self.etc_dirs:
            shutil.rmtree(d, ignore_errors=True)
        self.etc_dirs = []
        try:
            os.rmdir(NETNS_ETC)  # only if empty (not ours otherwise)
        except OSError:
            pass
        if errors:
            raise RuntimeError("; ".join(errors))


def unavailable():
    """Why the test cannot run here, or None."""
    if H.corio_bin() is None:
        return H.skip_reason()
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if shutil.which("ip") is None:
        return "needs iproute2's ip"
    if shutil.which("curl") is None:
        return "needs curl"
    probe = Topology(PREFIX + "p", hosts=["host0"])
    try:
        probe.create()
        run("ip", "netns", "exec", probe.host_ns[0], "true")
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        return "cannot build network namespaces with a bridge and veth pairs: %s" % e
    finally:
        try:
            probe.close()
        except RuntimeError as e:
            print("warning: %s" % e, file=sys.stderr)
    return None


class NetnsCorio(H.CorioServer):
    """corio run with `ip netns exec <ns>` (which execs it: the pid is
    corio's, so killing it kills corio)."""

    def __init__(self, ns, **kw):
        self.ns = ns
        super().__init__(**kw)

    def command(self):
        return ["ip", "netns", "exec", self.ns] + super().command()


def curl_in(ns, url):
    """GET url from inside namespace ns: (status, body bytes)."""
    p = subprocess.run(["ip", "netns", "exec", ns, "curl", "-sS", "--max-time", "5",
                        "-w", "\n%{http_code}", url],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    if p.returncode != 0:
        raise AssertionError("curl %s in %s: %s" % (url, ns, p.stderr.decode(errors="replace")))
    body, _, code = p.stdout.rpartition(b"\n")
    return int(code), body


def get_json_in(ns, url):
    st, body = curl_in(ns, url)
    if st != 200:
        raise AssertionError("GET %s from %s: %d %r" % (url, ns, st, body[:200]))
    return json.loads(body)


def until(check, timeout=DEADLINE, step=0.1, what="the expected state"):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError as e:
            if time.monotonic() >= deadline:
                raise AssertionError("%s not reached within %.0f s; last: %s"
                                     % (what, timeout, e)) from e
        time.sleep(step)


class TestDiscoveryBetweenHosts(unittest.TestCase):
    topo = None

    @classmethod
    def setUpClass(cls):
        cls.topo = Topology(PREFIX)
        cls.addClassCleanup(cls.topo.close)
        cls.topo.create()

    def setUp(self):
        self.nodes = [None] * len(HOSTS)

    def tearDown(self):
        self.kill_all()

    def kill_all(self):
        for n in self.nodes:
            if n is not None:
                n.close()

    def start_all(self):
        """corio on every host, in a random order, the starts spaced out."""
        self.order = random.sample(range(len(HOSTS)), len(HOSTS))
        for k, i in enumerate(self.order):
            if k:
                time.sleep(0.5)  # spaces the starts out; nothing is timed
            n = NetnsCorio(self.topo.host_ns[i], config=CONFIG, listen=False,
                           args=["--listen", "0.0.0.0:%d" % PORT], startup_timeout=DEADLINE)
            self.nodes[i] = n
            n.start()

    def test_each_host_finds_itself_in_the_first_round_after_its_start(self):
        self.start_all()
        for i, n in enumerate(self.nodes):
            n.wait_for_log(r"discovery: self is %s \(entry %d of 3\), found in round 1, "
                           % (re.escape(ENTRIES[i]), i + 1), timeout=DEADLINE)
            self.assertEqual(len(n.wait_for_log(r"discovery: self is ")), 1)

    def test_every_host_sees_all_three_up_with_their_ids(self):
        """Each host's /cluster, fetched from the next host (by name, over the
        bridge), converges to all three up with the ids their /server_id
        give, and itself as self."""
        self.start_all()
        ids = []
        for i in range(len(HOSTS)):
            viewer = self.topo.host_ns[(i + 1) % len(HOSTS)]
            url = "http://%s:%d/server_id" % (HOSTS[i], PORT)
            ids.append(until(lambda: get_json_in(viewer, url), what="GET " + url))
        self.assertEqual(len(set(ids)), 3, ids)
        for i in range(len(HOSTS)):
            viewer = self.topo.host_ns[(i + 1) % len(HOSTS)]
            url = "http://%s:%d/cluster" % (HOSTS[i], PORT)

            def check():
                v = get_json_in(viewer, url)
                self.assertEqual((v["state"], v["self"], v["id"], v["aliases"]),
                                 ("found", ENTRIES[i], ids[i], []), v)
                got = [(p["name"], p["id"], p["up"], p["self"], p["alias"], p["answer"])
                       for p in v["peers"]]
                self.assertEqual(got, [(ENTRIES[j], ids[j], True, j == i, False, "id " + ids[j])
                                       for j in range(len(HOSTS))], v)
            until(check, what="%s's converged /cluster (start order %s)" % (HOSTS[i], self.order))

    def test_a_client_request_on_each_host_names_that_host(self):
        self.start_all()
        for i in range(len(HOSTS)):
            ns = self.topo.host_ns[i]
            p = subprocess.run(["ip", "netns", "exec", ns, "curl", "-sS", "--max-time", "30",
                                "-X", "POST", "http://localhost:%d/client-request" % PORT],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            body = json.loads(p.stdout)
            self.assertEqual(body["self"], ENTRIES[i], body)
            self.assertEqual(body["id"], get_json_in(ns, "http://localhost:%d/server_id" % PORT))


if __name__ == "__main__":
    why = unavailable()
    if why:
        print("SKIP: " + why, file=sys.stderr)
        sys.exit(H.SKIP_EXIT)
    H.main()
