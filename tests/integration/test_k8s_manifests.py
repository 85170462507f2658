#!/usr/bin/env python3
"""deploy/k8s, checked offline: every manifest validates against the
Kubernetes schemas (npm's kubernetes-models, tests/integration/node/
k8s_validate.mjs), and the cluster they describe can find itself: a
headless Service that publishes not-ready pods, whose pods' DNS names are
exactly the "servers" list of the config the pods read, a config corio
accepts, probes on /readyz and /healthz, and a grace period above the
drain. Nothing is applied: no cluster runs in CI."""
import glob
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
import node_clients as N  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FILES = sorted(glob.glob(os.path.join(ROOT, "deploy", "k8s", "*.yaml")))


def validate(files):
    return N.run_script("k8s_validate.mjs", {"files": files}, timeout=60)


class TestK8sManifests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        N.require()
        cls.result = validate(FILES)
        cls.docs = cls.result["docs"]

    def kind(self, kind, name=None):
        found = [d for d in self.docs
                 if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
        self.assertTrue(found, "no %s %s in deploy/k8s" % (kind, name or ""))
        return found

    def test_every_manifest_validates_against_the_schemas(self):
        self.assertTrue(FILES)
        self.assertEqual(self.result["errors"], [])

    def test_the_validator_rejects_a_broken_manifest(self):
        # a check that cannot fail proves nothing: break one field
        with open(FILES[0]) as f:
            text = f.read()
        self.assertIn("containerPort: 8080", text)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(text.replace("containerPort: 8080", 'containerPort: "8080"'))
        try:
            errors = validate([f.name])["errors"]
        finally:
            os.unlink(f.name)
        self.assertTrue(any("containerPort" in e for e in errors), errors)

    def test_headless_service_publishes_pods_that_are_not_ready(self):
        sts = self.kind("StatefulSet")[0]
        svc = self.kind("Service", sts["spec"]["serviceName"])[0]
        self.assertEqual(svc["spec"]["clusterIP"], "None")
        # a pod not yet ready must still resolve, or it can never find itself
        self.assertIs(svc["spec"]["publishNotReadyAddresses"], True)
        self.assertEqual(svc["spec"]["selector"],
                         sts["spec"]["template"]["metadata"]["labels"])

    def config(self):
        sts = self.kind("StatefulSet")[0]
        pod = sts["spec"]["template"]["spec"]
        volume = next(v for v in pod["volumes"] if "configMap" in v)
        cm = self.kind("ConfigMap", volume["configMap"]["name"])[0]
        (text,) = cm["data"].values()
        return sts, json.loads(text), text

    def test_servers_are_the_pods_dns_names(self):
        sts, cfg, _ = self.config()
        name, svc, n = (sts["metadata"]["name"], sts["spec"]["serviceName"],
                        sts["spec"]["replicas"])
        port = cfg["listen"][0].rsplit(":", 1)[1]
        self.assertEqual(cfg["servers"],
                         ["%s-%d.%s:%s" % (name, i, svc, port) for i in range(n)])

    def test_the_config_is_one_corio_accepts(self):
        _, _, text = self.config()
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write(text)
        try:
            r = subprocess.run([H.corio_bin(), "--check-config", "--config", f.name],
                               capture_output=True, text=True, timeout=30)
        finally:
            os.unlink(f.name)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_probes_and_grace_period(self):
        sts, cfg, _ = self.config()
        pod = sts["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        self.assertEqual(c["readinessProbe"]["httpGet"]["path"], "/readyz")
        self.assertEqual(c["livenessProbe"]["httpGet"]["path"], "/healthz")
        drain_s = cfg.get("timeouts", {}).get("drain_ms", 10000) / 1000
        self.assertGreater(pod["terminationGracePeriodSeconds"], drain_s)


if __name__ == "__main__":
    H.main()
