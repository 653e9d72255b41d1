"""The careloop chart, tested without a cluster: rendered offline with helm-python-sdk, linted, every
manifest validated against the Kubernetes schemas, and the chart's promises checked."""

import copy
import pathlib
import unittest

import helm_python as helm
import kubernetes_validate
import yaml

CHART = pathlib.Path(__file__).resolve().parent.parent / "careloop"
PRODUCTION = pathlib.Path(__file__).resolve().parent.parent / "values-production.yaml"
KUBE_VERSION = "1.30"
ALL_SERVICES = ["plans", "referrals", "prior-auth", "notifications", "metrics", "gateway"]


def production_values():
    return yaml.safe_load(PRODUCTION.read_text())


def all_services_values():
    values = production_values()
    for name in ALL_SERVICES:
        svc = values["services"].setdefault(name, {"databaseSecret": f"careloop-db-{name}"})
        svc["enabled"] = True
    return values


def render(values=None):
    chart = helm.Chart.load(str(CHART))
    manifests = chart.render(values, name="careloop", namespace="careloop")
    docs = []
    for path, text in manifests.items():
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    return docs


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


class ChartTest(unittest.TestCase):
    cases = {
        "defaults": None,
        "production": production_values(),
        "all services": all_services_values(),
    }

    def test_lint_reports_no_errors_or_warnings(self):
        for label, values in self.cases.items():
            report = helm.lint(str(CHART), values, strict=True)
            problems = [m for m in report["messages"] if m["severity"] >= 2]
            self.assertEqual(report["errors"], [], label)
            self.assertEqual(problems, [], label)

    def test_every_manifest_is_valid_kubernetes(self):
        for label, values in self.cases.items():
            docs = render(values)
            self.assertTrue(docs, label)
            for doc in docs:
                if doc["apiVersion"].startswith("monitoring.coreos.com/"):
                    # A CRD with no upstream schema: check its shape by hand.
                    self.assertEqual(doc["kind"], "ServiceMonitor")
                    self.assertEqual(doc["spec"]["endpoints"][0]["port"], "metrics")
                    continue
                with self.subTest(case=label, kind=doc["kind"], name=doc["metadata"]["name"]):
                    kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)

    def test_every_deployment_has_probes_resources_security_service_and_policy(self):
        for label, values in self.cases.items():
            docs = render(values)
            services, policies = by_kind(docs, "Service"), by_kind(docs, "NetworkPolicy")
            pdbs, configmaps = by_kind(docs, "PodDisruptionBudget"), by_kind(docs, "ConfigMap")
            deployments = by_kind(docs, "Deployment")
            self.assertTrue(deployments, label)
            for name, dep in deployments.items():
                pod = dep["spec"]["template"]
                labels = pod["metadata"]["labels"]
                self.assertIn("checksum/config", pod["metadata"]["annotations"], name)
                self.assertTrue(pod["spec"]["securityContext"]["runAsNonRoot"], name)
                for c in pod["spec"]["containers"]:
                    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                        self.assertIn("grpc", c[probe], f"{name} {probe}")
                    self.assertGreaterEqual(
                        c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"], 120,
                        "the startup probe leaves time for migrations")
                    self.assertTrue({"requests", "limits"} <= set(c["resources"]), name)
                    sc = c["securityContext"]
                    self.assertTrue(sc["readOnlyRootFilesystem"], name)
                    self.assertFalse(sc["allowPrivilegeEscalation"], name)
                    self.assertEqual(sc["capabilities"]["drop"], ["ALL"], name)
                    for env in c.get("env", []):
                        self.assertNotIn("value", env, f"{name} {env['name']} must come from a Secret")
                        self.assertIn("secretKeyRef", env["valueFrom"], name)
                svc = services[name]
                self.assertTrue(set(svc["spec"]["selector"].items()) <= set(labels.items()), name)
                policy = policies[name]
                self.assertTrue(set(policy["spec"]["podSelector"]["matchLabels"].items()) <= set(labels.items()))
                self.assertIn(name, pdbs)
                self.assertIn(name, configmaps)

    def test_no_secret_values_are_rendered(self):
        for label, values in self.cases.items():
            docs = render(values)
            self.assertEqual([d for d in docs if d["kind"] == "Secret"], [], label)
            for cm in by_kind(docs, "ConfigMap").values():
                text = cm["data"]["config.toml"]
                for forbidden in ("hs256_secret", "database_url", "password", "url = \"postgres"):
                    self.assertNotIn(forbidden, text)

    def test_only_the_gateway_is_reachable_from_outside_and_services_accept_only_their_callers(self):
        docs = render(all_services_values())
        policies = by_kind(docs, "NetworkPolicy")
        gateway = policies["careloop-gateway"]["spec"]["ingress"][0]
        self.assertNotIn("from", gateway, "the gateway accepts gRPC from anywhere")
        allowed_into_plans = {
            peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
            for peer in policies["careloop-plans"]["spec"]["ingress"][0]["from"]
        }
        self.assertEqual(allowed_into_plans, {"gateway", "referrals", "prior-auth", "notifications", "metrics"})
        into_notifications = {
            peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
            for peer in policies["careloop-notifications"]["spec"]["ingress"][0]["from"]
        }
        self.assertEqual(into_notifications, {"gateway"})
        for name, policy in policies.items():
            egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
            self.assertTrue({5432, 4222, 4317, 53} <= egress_ports, name)
            for rule in policy["spec"]["egress"]:
                for peer in rule["to"]:
                    self.assertTrue("podSelector" in peer or "namespaceSelector" in peer,
                                    f"{name}: egress never goes to the whole world")

    def test_a_config_change_changes_the_pod_checksum(self):
        first = render(production_values())
        changed = production_values()
        changed["telemetry"]["logLevel"] = "debug"
        second = render(changed)
        a = by_kind(first, "Deployment")["careloop-plans"]["spec"]["template"]["metadata"]["annotations"]
        b = by_kind(second, "Deployment")["careloop-plans"]["spec"]["template"]["metadata"]["annotations"]
        self.assertNotEqual(a["checksum/config"], b["checksum/config"])

    def test_autoscaling_renders_an_hpa_and_leaves_replicas_to_it(self):
        docs = render(production_values())
        self.assertIn("careloop-plans", by_kind(docs, "HorizontalPodAutoscaler"))
        self.assertNotIn("replicas", by_kind(docs, "Deployment")["careloop-plans"]["spec"])
        self.assertEqual(by_kind(render(None), "HorizontalPodAutoscaler"), {})

    def test_the_schema_rejects_unknown_services_and_wrong_types(self):
        chart = helm.Chart.load(str(CHART))
        bad = [
            {"services": {"plan": {"enabled": True, "databaseSecret": "x"}}},
            {"services": {"plans": {"enabled": "yes", "databaseSecret": "x"}}},
            {"services": {"plans": {"enabled": True, "databaseSecret": "x", "replicas": "three"}}},
            {"services": {"plans": {"enabled": True, "databaseSecret": "x", "callers": ["billing"]}}},
            {"telemetry": {"logFormat": "xml"}},
            {"auth": {"existingSecret": "", "devMode": False}},
        ]
        for values in bad:
            merged = chart.merge_values(copy.deepcopy(values))
            with self.subTest(values=values), self.assertRaises(helm.HelmValuesError):
                chart.validate_schema(merged)
        chart.validate_schema(chart.merge_values(production_values()))


K8S = pathlib.Path(__file__).resolve().parent.parent.parent / "k8s"


class ClusterFilesTest(unittest.TestCase):
    def test_every_file_parses_and_plain_kubernetes_objects_validate(self):
        for path in sorted(K8S.glob("*.yaml")):
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
            self.assertTrue(docs, path.name)
            for doc in docs:
                if doc.get("apiVersion") == "v1" and "kind" in doc:
                    kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)

    def test_the_database_bootstrap_gives_each_chart_service_its_own_schema_and_role(self):
        docs = list(yaml.safe_load_all((K8S / "postgres-cluster.yaml").read_text()))
        cluster = next(d for d in docs if d["kind"] == "Cluster")
        sql = cluster["spec"]["bootstrap"]["initdb"]["postInitApplicationSQL"]
        managed = {r["name"] for r in cluster["spec"]["managed"]["roles"]}
        for name in ALL_SERVICES:
            schema = name.replace("-", "_")
            role = f"careloop_{schema}"
            self.assertIn(role, managed)
            self.assertIn(f"CREATE SCHEMA {schema} AUTHORIZATION {role}", sql)
        self.assertIn("REVOKE ALL ON SCHEMA public FROM PUBLIC", sql)


if __name__ == "__main__":
    unittest.main()
