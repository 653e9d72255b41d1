"""The careloop chart, tested without a cluster: rendered offline with helm-python-sdk, linted, every
manifest validated against the Kubernetes schemas, and the chart's promises checked: the wiring
between services (addresses, NetworkPolicy paths, caller allow-lists), TLS on every hop, and the
identities each workload gets."""

import copy
import ipaddress
import json
import pathlib
import re
import tomllib
import unittest
import urllib.parse

import helm_python as helm
import kubernetes_validate
import yaml

CHART = pathlib.Path(__file__).resolve().parent.parent / "careloop"
PRODUCTION = pathlib.Path(__file__).resolve().parent.parent / "values-production.yaml"
KUBE_VERSION = "1.30"
ALL_SERVICES = ["plans", "referrals", "prior-auth", "notifications", "metrics", "gateway"]
RELEASE = "careloop"
NAMESPACE = "careloop"
FULLNAME = "careloop"
TLS_DIR = "/etc/careloop/tls"
DB_CA_DIR = "/etc/careloop/db-ca"

# The calls the code makes, from the architecture (referrals and prior-auth ask plans whether a
# caller may read or write a patient, notifications and metrics who may read a patient's audit
# trail, the gateway composes plans, referrals, prior-auth and notifications), written here and not
# read from the chart: caller -> {(config section, key): callee}.
GATEWAY_DOWNSTREAMS = {
    ("gateway", "plans_addr"): "plans",
    ("gateway", "referrals_addr"): "referrals",
    ("gateway", "prior_auth_addr"): "prior-auth",
    ("gateway", "notifications_addr"): "notifications",
}
DOWNSTREAMS = {
    "referrals": {("referrals", "plans_addr"): "plans"},
    "prior-auth": {("prior_auth", "plans_addr"): "plans"},
    "notifications": {("notifications", "plans_addr"): "plans"},
    "metrics": {("metrics", "plans_addr"): "plans"},
    "gateway": GATEWAY_DOWNSTREAMS,
}
# What the chart deploys with its defaults alone.
DEFAULT_SERVICES = ["plans", "referrals", "prior-auth", "notifications", "metrics", "gateway"]
# The gateway's settings (services/gateway/src/settings.rs, DEFAULTS): the chart's defaults must
# match the binary's, addresses aside.
GATEWAY_SETTINGS = pathlib.Path(__file__).resolve().parent.parent.parent / "services" / "gateway" / "src" / "settings.rs"
# The [gateway] keys the chart writes (and callbacks_addr while services.gateway.callbacks is on);
# any other key of the binary keeps its default.
GATEWAY_KEYS = {
    "plans_addr", "referrals_addr", "prior_auth_addr", "notifications_addr", "resolve_interval_ms",
    "call_timeout_ms", "default_deadline_ms", "deadline_margin_ms", "org_rate_per_sec", "org_burst",
    "principal_rate_per_sec", "principal_burst", "access_cache_ttl_ms", "retry_budget_ratio",
    "breaker_failures", "breaker_open_ms", "cors_allowed_origins",
}
GATEWAY_OFF = {"enabled": False, "databaseSecret": "careloop-db-gateway"}
# The Secret holding the gateway's Standard Webhooks secret for SMS callbacks, and its env variable
# (services/gateway/src/settings.rs, sms_callback_secret, read from CARELOOP__GATEWAY__<KEY>).
CALLBACK_SECRET = "careloop-sms-callbacks"
CALLBACK_ENV = "CARELOOP__GATEWAY__SMS_CALLBACK_SECRET"


def production_values():
    return yaml.safe_load(PRODUCTION.read_text())


def all_services_values():
    values = production_values()
    for name in ALL_SERVICES:
        svc = values["services"].setdefault(name, {"databaseSecret": f"careloop-db-{name}"})
        svc["enabled"] = True
    return values


def defaults_with(**services):
    """The chart defaults with some services' blocks changed, e.g. notifications={"enabled": True}."""
    values = {"services": {}}
    for name, change in services.items():
        values["services"][name.replace("_", "-")] = change
    return values


def without_gateway(**services):
    """defaults_with, and the gateway off: it needs plans, referrals, prior-auth and notifications."""
    return defaults_with(gateway=GATEWAY_OFF, **services)


def render(values=None):
    chart = helm.Chart.load(str(CHART))
    manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    docs = []
    for path, text in manifests.items():
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    return docs


def merged(values=None):
    """The values the chart sees: its defaults coalesced with `values`."""
    return helm.Chart.load(str(CHART)).merge_values(copy.deepcopy(values))


def enabled_services(values=None):
    return [n for n, s in merged(values)["services"].items() if s.get("enabled")]


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def component(doc):
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


def is_headless(service_doc):
    return service_doc["spec"].get("clusterIP") == "None"


def cluster_services(docs):
    """Each service's own (ClusterIP or exposed) Service, by service name: not the headless ones."""
    return {component(s): s for s in by_kind(docs, "Service").values() if not is_headless(s)}


def headless_services(docs):
    """Each service's headless Service, by service name."""
    return {component(s): s for s in by_kind(docs, "Service").values() if is_headless(s)}


def configs(docs):
    """Each service's rendered config.toml, parsed, by service name."""
    return {component(cm): tomllib.loads(cm["data"]["config.toml"]) for cm in by_kind(docs, "ConfigMap").values()}


def grpc_port(service_doc):
    return next(p["port"] for p in service_doc["spec"]["ports"] if p["name"] == "grpc")


def addresses(table, path=()):
    """Every `*_addr` key in a parsed TOML document, at any depth: (path, value)."""
    for key, value in table.items():
        if isinstance(value, dict):
            yield from addresses(value, path + (key,))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    yield from addresses(item, path + (key, str(i)))
        elif key.endswith("_addr"):
            yield path + (key,), value


def pod_files(deployment):
    """What the container sees under its mounts: {mount path: (volume, readOnly)}."""
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    container = pod["containers"][0]
    return {m["mountPath"]: (volumes[m["name"]], m.get("readOnly", False)) for m in container["volumeMounts"]}


def file_source(deployment, path):
    """Which Secret or ConfigMap key a file path in the container comes from: (kind, name, key), or None."""
    mounts = pod_files(deployment)
    for mount_path in sorted(mounts, key=len, reverse=True):
        if not path.startswith(mount_path + "/"):
            continue
        rel = path[len(mount_path) + 1:]
        volume, _ = mounts[mount_path]
        sources = []
        if "secret" in volume:
            sources.append(("Secret", volume["secret"]["secretName"], volume["secret"].get("items")))
        if "configMap" in volume:
            sources.append(("ConfigMap", volume["configMap"]["name"], volume["configMap"].get("items")))
        for src in volume.get("projected", {}).get("sources", []):
            for kind in ("secret", "configMap"):
                if kind in src:
                    sources.append(("Secret" if kind == "secret" else "ConfigMap", src[kind]["name"], src[kind].get("items")))
        for kind, name, items in sources:
            if items is None:
                return kind, name, rel  # the whole object: the key is the file name
            for item in items:
                if item["path"] == rel:
                    return kind, name, item["key"]
        return None
    return None


def selects(selector, labels):
    return set(selector.get("matchLabels", {}).items()) <= set(labels.items())


def rule_ports_include(rule, port):
    return "ports" not in rule or not rule["ports"] or any(p.get("port") == port for p in rule["ports"])


def admits_from(policy, source_labels, port):
    """Whether the policy's ingress lets a pod of the release's namespace with these labels in on port."""
    for rule in policy["spec"].get("ingress", []):
        if not rule_ports_include(rule, port):
            continue
        peers = rule.get("from")
        if not peers:
            return True
        for peer in peers:
            if "namespaceSelector" in peer or "ipBlock" in peer:
                continue
            if selects(peer.get("podSelector", {}), source_labels):
                return True
    return False


def allows_to(policy, target_labels, port):
    for rule in policy["spec"].get("egress", []):
        if not rule_ports_include(rule, port):
            continue
        peers = rule.get("to")
        if not peers:
            return True
        for peer in peers:
            if "namespaceSelector" in peer or "ipBlock" in peer:
                continue
            if selects(peer.get("podSelector", {}), target_labels):
                return True
    return False


def release_pod(peer):
    """Whether a NetworkPolicy peer selects only pods of this release (in the policy's namespace)."""
    labels = peer.get("podSelector", {}).get("matchLabels", {})
    return set(peer) == {"podSelector"} and labels.get("app.kubernetes.io/instance") == RELEASE


def admits_from_outside(policy, port):
    """Whether the policy lets anything but the release's own pods in on port: a rule on that port
    without `from`, or with an ipBlock, a namespaceSelector or a podSelector not pinned to the release."""
    for rule in policy["spec"].get("ingress", []):
        if not rule_ports_include(rule, port):
            continue
        peers = rule.get("from")
        if not peers or not all(release_pod(peer) for peer in peers):
            return True
    return False


def admits_ip(policy, ip, port):
    """Whether the policy's ingress lets a client at an address outside the cluster in on port: a rule
    on that port without `from` (everywhere) or with an ipBlock covering the address and not excepting it."""
    address = ipaddress.ip_address(ip)
    for rule in policy["spec"].get("ingress", []):
        if not rule_ports_include(rule, port):
            continue
        peers = rule.get("from")
        if not peers:
            return True
        for peer in peers:
            block = peer.get("ipBlock")
            if not block:
                continue
            net = ipaddress.ip_network(block["cidr"])
            if address.version == net.version and address in net and \
                    not any(address in ipaddress.ip_network(e) for e in block.get("except", [])):
                return True
    return False


def reaches_ip(policy, ip, port):
    """Whether the policy's egress lets the pod open a TCP connection to an address outside the
    cluster: a rule on that port whose `to` is absent (everywhere) or holds an ipBlock covering the
    address and not excepting it. Pod and namespace selectors never match an outside address."""
    address = ipaddress.ip_address(ip)
    for rule in policy["spec"].get("egress", []):
        if not rule_ports_include(rule, port):
            continue
        peers = rule.get("to")
        if not peers:
            return True
        for peer in peers:
            block = peer.get("ipBlock")
            if not block:
                continue
            net = ipaddress.ip_network(block["cidr"])
            if address.version != net.version or address not in net:
                continue
            if not any(address in ipaddress.ip_network(e) for e in block.get("except", [])
                       if ipaddress.ip_network(e).version == address.version):
                return True
    return False


# Where a cluster's pods, services and nodes live, and the cloud metadata endpoint: never a webhook.
PRIVATE_RANGES = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"}
INSIDE = ["10.0.0.10", "10.96.0.1", "172.20.3.4", "192.168.1.20", "100.64.0.5", "169.254.169.254"]
# Public addresses (documentation ranges) that no default or production rule names.
OUTSIDE = ["198.51.100.7", "203.0.113.99"]


def outbound(**channels):
    """Values turning on notifications' outbound channels, e.g. email={...}."""
    return {"services": {"notifications": {"outbound": channels}}}


SMTP = {"enabled": True, "host": "smtp.hospital.example.org", "from": "careloop@hospital.example.org",
        "username": "careloop", "passwordSecret": "careloop-smtp"}


def gateway_callbacks(**callbacks):
    """Values turning on the gateway's SMS provider callbacks, e.g. port=8443."""
    return {"services": {"gateway": {"callbacks": dict({"enabled": True, "smsSecret": CALLBACK_SECRET},
                                                        **callbacks)}}}


def ingress_rules_on(policy, port):
    """The policy's ingress rules that name this port."""
    return [r for r in policy["spec"].get("ingress", []) if any(p.get("port") == port for p in r.get("ports", []))]


def configured_calls(values):
    """(caller, callee) pairs the values configure: the callee's `callers` plus the gateway, enabled."""
    services = merged(values)["services"]
    on = {n for n, s in services.items() if s.get("enabled")}
    pairs = set()
    for callee in on:
        for caller in set(services[callee].get("callers") or []) | {"gateway"}:
            if caller in on and caller != callee:
                pairs.add((caller, callee))
    return pairs


# --- the Grafana dashboard ------------------------------------------------------------------------

DASHBOARD_FILE = CHART / "dashboards" / "careloop-measures.json"
DASHBOARD_KEY = "careloop-measures.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# The gauges the metrics service exports (services/metrics/src/gauges.rs), written here and not read
# from the dashboard: name -> its labels. The registry label `service` is left out on purpose: a
# ServiceMonitor scrape sets its own `service` target label (the Kubernetes Service) and renames the
# gauge's to `exported_service`, so no query may select on it.
MEASURES = {
    "careloop_measure_referral_closure_percent": {"org_id"},
    "careloop_measure_referral_completion_percent": {"org_id"},
    "careloop_measure_result_follow_through_median_hours": {"org_id"},
    "careloop_measure_orphaned_abnormal_results": {"org_id"},
    "careloop_measure_handoff_acknowledgement_median_hours": {"org_id"},
    "careloop_measure_response_median_hours": {"org_id", "role"},
    "careloop_measure_response_p90_hours": {"org_id", "role"},
    "careloop_measure_open_loops": {"org_id", "loop_kind", "age"},
    "careloop_measure_priorauth_approved_percent": {"org_id", "urgency"},
    "careloop_measure_priorauth_median_hours": {"org_id", "urgency"},
    "careloop_measure_payer_decisions": {"org_id", "payer", "outcome"},
}
# The values the gauges give their fixed labels.
LABEL_VALUES = {
    "loop_kind": {"referral", "order", "result"},
    "age": {"under 1 day", "1 to 3 days", "3 to 7 days", "7 to 30 days", "30 days or more"},
    "urgency": {"standard", "expedited"},
    "outcome": {"on_time", "late", "extended"},
}

PROMQL_STRING = r'"(?:[^"\\]|\\.)*"'
PROMQL_TOKEN = re.compile(
    r"\s*(?:(?P<string>" + PROMQL_STRING + r")|(?P<braces>\{(?:[^}\"]|" + PROMQL_STRING + r")*\})"
    r"|(?P<range>\[[^\]]*\])|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)|(?P<number>[0-9][0-9.eE+-]*)|(?P<other>\S))")
PROMQL_MATCHER = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(" + PROMQL_STRING + r")\s*,?")
PROMQL_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
PROMQL_AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                       "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2"}


def promql(expr):
    """A PromQL expression's vector selectors, [(metric, {label: (op, value)})], and its grouping label
    lists (by, without, on, ignoring, group_left/right) in the order written: enough of PromQL to
    tell which metrics and labels a dashboard query reads."""
    tokens = [(m.lastgroup, m.group(m.lastgroup)) for m in PROMQL_TOKEN.finditer(expr)]
    selectors, groupings, i = [], [], 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else (None, None)
        if kind == "ident" and text in PROMQL_GROUPING and following == ("other", "("):
            j, labels = i + 2, []
            while tokens[j] != ("other", ")"):
                if tokens[j][0] == "ident":
                    labels.append(tokens[j][1])
                j += 1
            groupings.append(labels)
            i = j + 1
            continue
        if kind == "ident" and text not in PROMQL_AGGREGATIONS | PROMQL_KEYWORDS and following != ("other", "("):
            matchers = {}
            if following[0] == "braces":
                body = following[1][1:-1]
                if PROMQL_MATCHER.sub("", body).strip():
                    raise ValueError(f"unparsed matchers in {expr!r}")
                matchers = {m.group(1): (m.group(2), json.loads(m.group(3))) for m in PROMQL_MATCHER.finditer(body)}
                i += 1
            selectors.append((text, matchers))
        elif kind == "braces":
            selectors.append((None, {}))  # a selector without a metric name
        i += 1
    return selectors, groupings


def dashboard_configmaps(docs):
    """The rendered ConfigMaps that carry a dashboard rather than a service's config."""
    return {name: cm for name, cm in by_kind(docs, "ConfigMap").items()
            if component(cm) == "dashboards" or any(k.endswith(".json") for k in cm.get("data", {}))}


def walk_panels(panels):
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


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
                if doc["apiVersion"].startswith("cert-manager.io/"):
                    # Likewise; the content is checked in the TLS tests.
                    self.assertEqual((doc["apiVersion"], doc["kind"]), ("cert-manager.io/v1", "Certificate"))
                    self.assertEqual(
                        set(doc["spec"]) - {"secretName", "secretTemplate", "duration", "renewBefore", "privateKey",
                                            "dnsNames", "ipAddresses", "uris", "usages", "issuerRef"}, set())
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
                port = grpc_port(services[name])
                self.assertIn("checksum/config", pod["metadata"]["annotations"], name)
                self.assertTrue(pod["spec"]["securityContext"]["runAsNonRoot"], name)
                for c in pod["spec"]["containers"]:
                    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                        # TLS is on in every case here: kubelet's gRPC probe cannot do mTLS, so the
                        # probe is the careloop CLI's health call over mTLS on loopback.
                        command = c[probe]["exec"]["command"]
                        self.assertEqual(command[0], "/usr/local/bin/careloop", f"{name} {probe}")
                        self.assertEqual(command[-1], "health", f"{name} {probe}")
                        self.assertIn(f"https://127.0.0.1:{port}", command, f"{name} {probe}")
                        for flag in ("--ca", "--cert", "--key"):
                            path = command[command.index(flag) + 1]
                            self.assertIsNotNone(file_source(dep, path), f"{name} {probe} {flag} {path} is mounted")
                        self.assertGreaterEqual(c[probe].get("timeoutSeconds", 1), 2, f"{name} {probe}")
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
                for forbidden in ("hs256", "rs256", "database_url", "password", "url = \"postgres"):
                    self.assertNotIn(forbidden, text.lower())

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
        into_metrics = {
            peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
            for peer in policies["careloop-metrics"]["spec"]["ingress"][0]["from"]
        }
        self.assertEqual(into_metrics, {"gateway"})
        for name, policy in policies.items():
            egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
            self.assertTrue({5432, 4222, 4317, 53, 443} <= egress_ports, name)
            for rule in policy["spec"]["egress"]:
                self.assertTrue(rule.get("to"), f"{name}: egress never goes to the whole world")
                for peer in rule["to"]:
                    self.assertTrue("podSelector" in peer or "namespaceSelector" in peer or "ipBlock" in peer,
                                    f"{name}: egress never goes to the whole world")
                    if peer.get("ipBlock", {}).get("cidr") in ("0.0.0.0/0", "::/0"):
                        # Only notifications goes beyond the cluster (webhooks), only on HTTPS (email
                        # is off here), never into the private ranges.
                        self.assertEqual(name, "careloop-notifications", f"{name}: egress never goes to the whole world")
                        self.assertEqual([p["port"] for p in rule["ports"]], [443], name)
                        self.assertTrue(PRIVATE_RANGES <= set(peer["ipBlock"].get("except", [])), name)

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
            {"services": {"plans": {"enabled": True, "databaseSecret": "x", "clientAuth": "sometimes"}}},
            {"telemetry": {"logFormat": "xml"}},
            # The shared signing secret is gone: services know each other by mTLS, users by their IdP.
            {"auth": {"existingSecret": "careloop-auth", "devMode": False}},
            {"auth": {"issuer": "careloop", "audience": "careloop"}},
            {"tls": {"clientAuth": "sometimes"}},
            {"tls": {"certManager": {"enabled": True, "privateKey": {"algorithm": "DSA"}}}},
            {"events": {"natsUrl": "http://nats.nats:4222"}},
            {"database": {"caSecret": ""}},
        ]
        for values in bad:
            merged_values = chart.merge_values(copy.deepcopy(values))
            with self.subTest(values=values), self.assertRaises(helm.HelmValuesError):
                chart.validate_schema(merged_values)
        chart.validate_schema(chart.merge_values(production_values()))
        chart.validate_schema(chart.merge_values({"auth": {"devMode": True}}))

    # --- wiring between services -------------------------------------------------------------

    def test_every_downstream_address_names_a_release_service_on_its_grpc_port(self):
        for label, values in (("production", production_values()), ("all services", all_services_values()),
                              ("defaults", None)):
            docs = render(values)
            services = by_kind(docs, "Service")
            for name, cfg in configs(docs).items():
                for (section, key), callee in DOWNSTREAMS.get(name, {}).items():
                    self.assertIn(key, cfg.get(section, {}), f"{label}: {name} has [{section}].{key}")
                for path, value in addresses(cfg):
                    where = f"{label}: {name} {'.'.join(path)} = {value}"
                    url = urllib.parse.urlsplit(value)
                    self.assertEqual(url.scheme, "https", where)
                    self.assertNotIn(url.hostname, ("127.0.0.1", "localhost", "0.0.0.0", "::1"), where)
                    host = url.hostname.removesuffix(f".{NAMESPACE}.svc")
                    self.assertIn(host, services, f"{where}: names a Service of the release")
                    target = component(services[host])
                    self.assertNotEqual(target, name, f"{where}: a service does not call itself")
                    self.assertEqual(url.port, grpc_port(services[host]), f"{where}: on the gRPC port")
                    expected = DOWNSTREAMS.get(name, {}).get(path[-2:] if len(path) >= 2 else path)
                    if expected:
                        self.assertEqual(target, expected, where)

    def test_a_downstream_on_its_own_port_is_dialled_on_that_port(self):
        docs = render(defaults_with(plans={"enabled": True, "databaseSecret": "careloop-db-plans", "grpcPort": 50100,
                                           "callers": ["referrals", "prior-auth", "notifications", "metrics"]}))
        cfg = configs(docs)
        self.assertEqual(cfg["referrals"]["referrals"]["plans_addr"], "https://careloop-plans.careloop.svc:50100")
        self.assertEqual(cfg["prior-auth"]["prior_auth"]["plans_addr"], "https://careloop-plans.careloop.svc:50100")
        self.assertEqual(cfg["notifications"]["notifications"]["plans_addr"],
                         "https://careloop-plans.careloop.svc:50100")
        self.assertEqual(cfg["metrics"]["metrics"]["plans_addr"], "https://careloop-plans.careloop.svc:50100")

    def test_a_service_whose_downstream_is_off_or_refuses_it_does_not_render(self):
        with self.assertRaisesRegex(helm.HelmRenderError, r"referrals needs plans.*enable services\.plans"):
            render(without_gateway(plans={"enabled": False, "databaseSecret": "careloop-db-plans"},
                                   prior_auth={"enabled": False, "databaseSecret": "careloop-db-prior-auth"},
                                   notifications={"enabled": False, "databaseSecret": "careloop-db-notifications"},
                                   metrics={"enabled": False, "databaseSecret": "careloop-db-metrics"}))
        with self.assertRaisesRegex(helm.HelmRenderError, r"prior-auth calls plans.*services\.plans\.callers"):
            render(defaults_with(plans={"enabled": True, "databaseSecret": "careloop-db-plans",
                                        "callers": ["referrals", "notifications", "metrics"]}))
        with self.assertRaisesRegex(helm.HelmRenderError,
                                    r"notifications needs plans \(notifications\.plans_addr\).*enable services\.plans"):
            render(without_gateway(plans={"enabled": False, "databaseSecret": "careloop-db-plans"},
                                   referrals={"enabled": False, "databaseSecret": "careloop-db-referrals"},
                                   prior_auth={"enabled": False, "databaseSecret": "careloop-db-prior-auth"},
                                   metrics={"enabled": False, "databaseSecret": "careloop-db-metrics"}))
        with self.assertRaisesRegex(helm.HelmRenderError, r"notifications calls plans.*services\.plans\.callers"):
            render(defaults_with(plans={"enabled": True, "databaseSecret": "careloop-db-plans",
                                        "callers": ["referrals", "prior-auth", "metrics"]}))
        with self.assertRaisesRegex(helm.HelmRenderError,
                                    r"metrics needs plans \(metrics\.plans_addr\).*enable services\.plans"):
            render(without_gateway(plans={"enabled": False, "databaseSecret": "careloop-db-plans"},
                                   referrals={"enabled": False, "databaseSecret": "careloop-db-referrals"},
                                   prior_auth={"enabled": False, "databaseSecret": "careloop-db-prior-auth"},
                                   notifications={"enabled": False, "databaseSecret": "careloop-db-notifications"}))
        with self.assertRaisesRegex(helm.HelmRenderError, r"metrics calls plans.*services\.plans\.callers"):
            render(defaults_with(plans={"enabled": True, "databaseSecret": "careloop-db-plans",
                                        "callers": ["referrals", "prior-auth", "notifications"]}))
        # The gateway composes all four: without one of them it does not render, and says which.
        for callee, key in (("referrals", "referrals_addr"), ("prior-auth", "prior_auth_addr"),
                            ("notifications", "notifications_addr")):
            with self.subTest(callee=callee), self.assertRaisesRegex(
                    helm.HelmRenderError, rf"gateway needs {callee} \(gateway\.{key}\).*enable services\.{callee}"):
                render(defaults_with(**{callee: {"enabled": False, "databaseSecret": f"careloop-db-{callee}"}}))
        with self.assertRaisesRegex(helm.HelmRenderError,
                                    r"gateway needs plans \(gateway\.plans_addr\).*enable services\.plans"):
            render(defaults_with(**{name: {"enabled": False, "databaseSecret": f"careloop-db-{name}"}
                                    for name in ("plans", "referrals", "prior-auth", "notifications", "metrics")}))

    def test_notifications_is_deployed_by_default_migrates_first_and_asks_plans(self):
        for label, values in (("defaults", None), ("production", production_values())):
            docs = render(values)
            settings = merged(values)["services"]["notifications"]
            where = f"{label}: notifications"
            if values is None:
                self.assertEqual(sorted(enabled_services(values)), sorted(DEFAULT_SERVICES), label)
            deployments = {component(d): d for d in by_kind(docs, "Deployment").values()}
            services = cluster_services(docs)
            policies = {component(p): p for p in by_kind(docs, "NetworkPolicy").values()}
            self.assertIn("notifications", deployments, where)
            cfg = configs(docs)
            # The address and the webhook limits come from the chart; sweep_interval_ms,
            # router_enabled and watch_poll_ms keep the binary's defaults, and email and SMS are off
            # (their sections left out).
            self.assertEqual(cfg["notifications"]["notifications"],
                             {"plans_addr": f"https://{FULLNAME}-plans.{NAMESPACE}.svc:{grpc_port(services['plans'])}",
                              "webhooks": {"max_attempts": 8, "disable_after": 5, "allow_http": False}},
                             where)
            self.assertEqual(cfg["notifications"]["events"]["user"], "notifications", where)
            self.assertEqual(cfg["notifications"]["auth"]["audience"], "careloop-notifications", where)
            self.assertIn("notifications", cfg["plans"]["auth"]["callers"], f"{label}: plans accepts notifications")
            pod = deployments["notifications"]["spec"]["template"]["spec"]
            (migrate,) = pod["initContainers"]
            (container,) = pod["containers"]
            self.assertEqual(migrate["name"], "migrate", where)
            self.assertEqual(migrate["command"], ["/usr/local/bin/careloop-notifications"], where)
            self.assertEqual(migrate["args"], ["--config", "/etc/careloop/config.toml", "--migrate-only"], where)
            self.assertEqual(container["command"], ["/usr/local/bin/careloop-notifications"], where)
            self.assertNotIn("--migrate-only", container["args"], where)
            init_env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in migrate["env"]}
            self.assertEqual(init_env["CARELOOP__DATABASE__MIGRATION_URL"],
                             {"name": "careloop-db-notifications", "key": "migration-url", "optional": True}, where)
            env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
            self.assertEqual(env["CARELOOP__DATABASE__URL"],
                             {"name": "careloop-db-notifications", "key": "database-url"}, where)
            self.assertEqual(env["CARELOOP__EVENTS__PASSWORD"],
                             {"name": settings.get("natsSecret", "careloop-nats-notifications"), "key": "password"},
                             where)
            plans_labels = deployments["plans"]["spec"]["template"]["metadata"]["labels"]
            own_labels = deployments["notifications"]["spec"]["template"]["metadata"]["labels"]
            port = grpc_port(services["plans"])
            self.assertTrue(allows_to(policies["notifications"], plans_labels, port), f"{where} may dial plans")
            self.assertTrue(admits_from(policies["plans"], own_labels, port), f"{label}: plans admits notifications")

    def test_metrics_is_deployed_by_default_migrates_first_and_asks_plans(self):
        for label, values in (("defaults", None), ("production", production_values())):
            docs = render(values)
            settings = merged(values)["services"]["metrics"]
            where = f"{label}: metrics"
            if values is None:
                self.assertEqual(sorted(enabled_services(values)), sorted(DEFAULT_SERVICES), label)
            deployments = {component(d): d for d in by_kind(docs, "Deployment").values()}
            services = cluster_services(docs)
            policies = {component(p): p for p in by_kind(docs, "NetworkPolicy").values()}
            self.assertIn("metrics", deployments, where)
            cfg = configs(docs)
            # The service's own [metrics] is the runtime's table too (its Prometheus endpoint,
            # `addr`): plans_addr goes into it, never a second [metrics] header (TOML refuses one,
            # which configs() would have raised above). recorder_enabled keeps the binary's default.
            metrics_port = next(p["port"] for p in services["metrics"]["spec"]["ports"] if p["name"] == "metrics")
            self.assertEqual(cfg["metrics"]["metrics"],
                             {"addr": f"0.0.0.0:{metrics_port}",
                              "plans_addr": f"https://{FULLNAME}-plans.{NAMESPACE}.svc:{grpc_port(services['plans'])}"},
                             where)
            for name, conf in cfg.items():
                if name != "metrics":
                    self.assertNotIn("plans_addr", conf["metrics"], f"{label}: {name}")
            self.assertEqual(cfg["metrics"]["events"]["user"], "metrics", where)
            self.assertEqual(cfg["metrics"]["auth"]["audience"], "careloop-metrics", where)
            self.assertIn("metrics", cfg["plans"]["auth"]["callers"], f"{label}: plans accepts metrics")
            # Nothing in the release calls it but the gateway.
            self.assertEqual(cfg["metrics"]["auth"]["callers"], ["gateway"] if "gateway" in deployments else [],
                             where)
            pod = deployments["metrics"]["spec"]["template"]["spec"]
            (migrate,) = pod["initContainers"]
            (container,) = pod["containers"]
            self.assertEqual(migrate["name"], "migrate", where)
            self.assertEqual(migrate["command"], ["/usr/local/bin/careloop-metrics"], where)
            self.assertEqual(migrate["args"], ["--config", "/etc/careloop/config.toml", "--migrate-only"], where)
            self.assertEqual(container["command"], ["/usr/local/bin/careloop-metrics"], where)
            self.assertNotIn("--migrate-only", container["args"], where)
            init_env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in migrate["env"]}
            self.assertEqual(init_env["CARELOOP__DATABASE__MIGRATION_URL"],
                             {"name": "careloop-db-metrics", "key": "migration-url", "optional": True}, where)
            env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
            self.assertEqual(env, {
                "CARELOOP__DATABASE__URL": {"name": "careloop-db-metrics", "key": "database-url"},
                "CARELOOP__EVENTS__PASSWORD": {"name": settings.get("natsSecret", "careloop-nats-metrics"),
                                               "key": "password"},
            }, where)
            plans_labels = deployments["plans"]["spec"]["template"]["metadata"]["labels"]
            own_labels = deployments["metrics"]["spec"]["template"]["metadata"]["labels"]
            port = grpc_port(services["plans"])
            self.assertTrue(allows_to(policies["metrics"], plans_labels, port), f"{where} may dial plans")
            self.assertTrue(admits_from(policies["plans"], own_labels, port), f"{label}: plans admits metrics")
            # No egress beyond the cluster: it sends nothing out.
            for ip in OUTSIDE + INSIDE:
                for out_port in (25, 80, 443, 587, 8443):
                    self.assertFalse(reaches_ip(policies["metrics"], ip, out_port), f"{where} reaches {ip}:{out_port}")

    def test_network_policies_open_a_path_for_each_configured_call_and_no_other(self):
        cases = dict(self.cases)
        cases["prior-auth without referrals"] = without_gateway(
            referrals={"enabled": False, "databaseSecret": "careloop-db-referrals"})
        for label, values in cases.items():
            docs = render(values)
            policies, deployments = by_kind(docs, "NetworkPolicy"), by_kind(docs, "Deployment")
            services = cluster_services(docs)
            pods = {component(d): d["spec"]["template"]["metadata"]["labels"] for d in deployments.values()}
            policy = {component(p): p for p in policies.values()}
            configured = configured_calls(values)
            for caller, calls in DOWNSTREAMS.items():
                for callee in calls.values():
                    if caller in pods and callee in pods:
                        self.assertIn((caller, callee), configured, f"{label}: the code's call {caller} -> {callee}")
            for caller in pods:
                for callee in pods:
                    if caller == callee:
                        continue
                    port = grpc_port(services[callee])
                    path = (admits_from(policy[callee], pods[caller], port)
                            and allows_to(policy[caller], pods[callee], port))
                    with self.subTest(case=label, caller=caller, callee=callee):
                        self.assertEqual(path, (caller, callee) in configured)

    def test_no_ingress_rule_admits_every_source_except_the_exposed_gateways_grpc_rule(self):
        cases = dict(self.cases)
        cases["without the gateway"] = without_gateway()
        cases["notifications with no callers"] = without_gateway(
            notifications={"enabled": True, "databaseSecret": "careloop-db-notifications", "callers": []})
        cases["prior-auth without referrals"] = without_gateway(
            referrals={"enabled": False, "databaseSecret": "careloop-db-referrals"})
        cases["gateway callbacks"] = gateway_callbacks()
        # With the gateway off nothing calls notifications or metrics.
        without_grpc_ingress = {"without the gateway": {"notifications", "metrics"},
                                "notifications with no callers": {"notifications"},
                                "prior-auth without referrals": {"prior-auth"}}
        for label, values in cases.items():
            docs = render(values)
            services = cluster_services(docs)
            settings = merged(values)["services"]
            for policy in by_kind(docs, "NetworkPolicy").values():
                name = component(policy)
                port = grpc_port(services[name])
                for rule in policy["spec"].get("ingress") or []:
                    peers = rule.get("from")
                    with self.subTest(case=label, service=name, rule=rule):
                        if not peers:
                            self.assertTrue(settings[name].get("exposed"), "only the exposed gateway is open")
                            callbacks = settings[name].get("callbacks") or {}
                            doors = [[port]] + ([[callbacks["port"]]] if callbacks.get("enabled") else [])
                            self.assertIn([p["port"] for p in rule["ports"]], doors,
                                          "and only on gRPC (and provider callbacks while on)")
                        for peer in peers or []:
                            self.assertTrue(peer, "an empty peer admits everything")
                            for selector in peer.values():
                                self.assertTrue(selector, "an empty selector admits everything")
                if name in without_grpc_ingress.get(label, ()):
                    grpc_rules = [r for r in policy["spec"]["ingress"] if rule_ports_include(r, port)]
                    with self.subTest(case=label, service=name):
                        self.assertEqual(grpc_rules, [], "no enabled caller, no gRPC ingress rule")

    def test_auth_callers_are_the_enabled_callers_and_the_gateway(self):
        cases = dict(self.cases)
        cases["prior-auth without referrals"] = without_gateway(
            referrals={"enabled": False, "databaseSecret": "careloop-db-referrals"})
        for label, values in cases.items():
            cfg = configs(render(values))
            for name in enabled_services(values):
                expected = {caller for (caller, callee) in configured_calls(values) if callee == name}
                self.assertEqual(set(cfg[name]["auth"]["callers"]), expected, f"{label}: {name}")
                self.assertEqual(len(cfg[name]["auth"]["callers"]), len(expected), f"{label}: {name} no duplicates")

    # --- the gateway ----------------------------------------------------------------------------

    def test_the_gateway_is_deployed_by_default_as_the_releases_door(self):
        self.assertTrue(merged(None)["services"]["gateway"]["enabled"])
        for label, values in (("defaults", None), ("production", production_values())):
            docs = render(values)
            settings = merged(values)["services"]["gateway"]
            where = f"{label}: gateway"
            for kind in ("Deployment", "Service", "ConfigMap", "NetworkPolicy", "PodDisruptionBudget", "ServiceAccount"):
                self.assertIn("gateway", {component(d) for d in docs if d["kind"] == kind}, f"{where}: {kind}")
            pod = by_kind(docs, "Deployment")[f"{FULLNAME}-gateway"]["spec"]["template"]["spec"]
            (migrate,) = pod["initContainers"]
            (container,) = pod["containers"]
            self.assertEqual(container["command"], ["/usr/local/bin/careloop-gateway"], where)
            self.assertEqual(migrate["command"], ["/usr/local/bin/careloop-gateway"], where)
            self.assertIn("--migrate-only", migrate["args"], where)
            env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
            self.assertEqual(env["CARELOOP__DATABASE__URL"], {"name": "careloop-db-gateway", "key": "database-url"}, where)
            self.assertEqual(env["CARELOOP__EVENTS__PASSWORD"],
                             {"name": settings.get("natsSecret", "careloop-nats-gateway"), "key": "password"}, where)
            conf = configs(docs)["gateway"]
            # Outside clients bring tokens; a client certificate is verified when presented.
            self.assertEqual(conf["grpc"]["client_auth"], "optional", where)
            self.assertEqual(conf["auth"]["audience"], "careloop-gateway", where)
            # NATS user gateway; its access-cache subscription is <subject_prefix>.plans.>.
            self.assertEqual((conf["events"]["user"], conf["events"]["subject_prefix"]), ("gateway", "careloop"), where)
            service = cluster_services(docs)["gateway"]
            self.assertEqual(service["spec"]["type"], settings["serviceType"], where)
            self.assertEqual(next(p["targetPort"] for p in service["spec"]["ports"] if p["name"] == "grpc"), "grpc")
        self.assertEqual(cluster_services(render(production_values()))["gateway"]["spec"]["type"], "LoadBalancer")

    def test_the_gateway_is_the_only_service_reachable_from_outside_the_release(self):
        cases = dict(self.cases)
        ingress_controller = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
        cases["gateway behind an ingress controller"] = {"services": {"gateway": {"ingressFrom": [ingress_controller]}}}
        cases["gateway for one partner network"] = {"services": {"gateway": {
            "ingressFrom": [{"ipBlock": {"cidr": "203.0.113.0/24"}}]}}}
        cases["without the gateway"] = without_gateway()
        for label, values in cases.items():
            docs = render(values)
            services = cluster_services(docs)
            policies = {component(p): p for p in by_kind(docs, "NetworkPolicy").values()}
            open_to_outside = {name for name, policy in policies.items()
                               if admits_from_outside(policy, grpc_port(services[name]))}
            gateway_on = "gateway" in policies
            self.assertEqual(open_to_outside, {"gateway"} if gateway_on else set(), label)
            for name, policy in policies.items():
                port = grpc_port(services[name])
                for ip in OUTSIDE + INSIDE:
                    if name != "gateway":
                        self.assertFalse(admits_ip(policy, ip, port), f"{label}: {name} admits {ip}")
                if name != "gateway":
                    # Only the gateway's Service may face partners (LoadBalancer, NodePort).
                    self.assertEqual(services[name]["spec"]["type"], "ClusterIP", f"{label}: {name}")
            if not gateway_on:
                continue
            gateway = policies["gateway"]
            port = grpc_port(services["gateway"])
            grpc_rules = [r for r in gateway["spec"]["ingress"] if rule_ports_include(r, port)]
            self.assertEqual([[p["port"] for p in r["ports"]] for r in grpc_rules], [[port]], f"{label}: gRPC only")
            peers = merged(values)["services"]["gateway"].get("ingressFrom") or []
            if not peers:
                self.assertNotIn("from", grpc_rules[0], f"{label}: from anywhere")
                self.assertTrue(all(admits_ip(gateway, ip, port) for ip in OUTSIDE), label)
            else:
                self.assertEqual([p for p in grpc_rules[0]["from"] if not release_pod(p)], peers, label)
                self.assertEqual(admits_ip(gateway, "203.0.113.99", port), label.endswith("partner network"), label)
                self.assertFalse(admits_ip(gateway, "198.51.100.7", port), label)
            kubernetes_validate.validate(gateway, KUBE_VERSION, strict=True)

    def test_the_gateway_dials_each_downstream_through_its_headless_service(self):
        cases = {"defaults": None, "production": production_values(),
                 "own ports": {"services": {"plans": {"grpcPort": 50100}, "prior-auth": {"grpcPort": 50300}}}}
        for label, values in cases.items():
            docs = render(values)
            conf = configs(docs)["gateway"]["gateway"]
            services, headless = by_kind(docs, "Service"), headless_services(docs)
            clusters = cluster_services(docs)
            deployments = {component(d): d for d in by_kind(docs, "Deployment").values()}
            policies = {component(p): p for p in by_kind(docs, "NetworkPolicy").values()}
            pods = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments.items()}
            self.assertEqual(set(headless), set(deployments), f"{label}: one headless Service per service")
            self.assertEqual({k for k in conf if k.endswith("_addr")}, {key for _, key in GATEWAY_DOWNSTREAMS}, label)
            for (_, key), callee in GATEWAY_DOWNSTREAMS.items():
                where = f"{label}: gateway.{key} = {conf[key]}"
                url = urllib.parse.urlsplit(conf[key])
                self.assertEqual(url.scheme, "https", where)
                self.assertTrue(url.hostname.endswith(f".{NAMESPACE}.svc"), where)
                svc = services.get(url.hostname.removesuffix(f".{NAMESPACE}.svc"))
                self.assertIsNotNone(svc, f"{where}: names a rendered Service")
                self.assertTrue(is_headless(svc), f"{where}: a headless Service, which resolves to every replica")
                self.assertEqual(svc["metadata"]["name"], f"{FULLNAME}-{callee}-headless", where)
                self.assertEqual(component(svc), callee, where)
                self.assertEqual(svc["spec"]["selector"], clusters[callee]["spec"]["selector"], where)
                self.assertTrue(selects({"matchLabels": svc["spec"]["selector"]}, pods[callee]), where)
                self.assertEqual([p["name"] for p in svc["spec"]["ports"]], ["grpc"], where)
                self.assertEqual(url.port, grpc_port(svc), where)
                self.assertEqual(url.port, grpc_port(clusters[callee]), where)
                container = deployments[callee]["spec"]["template"]["spec"]["containers"][0]
                self.assertIn({"name": "grpc", "containerPort": url.port, "protocol": "TCP"}, container["ports"], where)
                self.assertTrue(allows_to(policies["gateway"], pods[callee], url.port), f"{where}: egress")
                self.assertTrue(admits_from(policies[callee], pods["gateway"], url.port), f"{where}: ingress")
            if label == "own ports":
                self.assertEqual(urllib.parse.urlsplit(conf["plans_addr"]).port, 50100)
                self.assertEqual(urllib.parse.urlsplit(conf["prior_auth_addr"]).port, 50300)
            # The gateway reaches Postgres, NATS and DNS like every service.
            gateway = policies["gateway"]
            for dep in ("postgres", "nats"):
                d = merged(values)["network"][dep]
                self.assertTrue(any(rule_ports_include(r, d["port"]) and any(
                    p.get("namespaceSelector", {}).get("matchLabels") == d["namespaceSelector"] for p in r["to"])
                    for r in gateway["spec"]["egress"]), f"{label}: gateway reaches {dep}")
            self.assertTrue(any(rule_ports_include(r, 53) for r in gateway["spec"]["egress"]), f"{label}: DNS")

    def test_each_certificate_covers_its_services_headless_name(self):
        for label in ("production", "all services"):
            docs = render(self.cases[label])
            certificates = {component(c): c for c in by_kind(docs, "Certificate").values()}
            headless = headless_services(docs)
            self.assertEqual(set(certificates), set(headless), label)
            for name, cert in certificates.items():
                host = headless[name]["metadata"]["name"]
                names = set(cert["spec"]["dnsNames"])
                for dns in (host, f"{host}.{NAMESPACE}.svc", f"{host}.{NAMESPACE}.svc.cluster.local"):
                    self.assertIn(dns, names, f"{label}: {name}")
            services = by_kind(docs, "Service")
            gateway = configs(docs)["gateway"]["gateway"]
            for key in (key for _, key in GATEWAY_DOWNSTREAMS):
                host = urllib.parse.urlsplit(gateway[key]).hostname
                callee = component(services[host.split(".")[0]])
                self.assertIn(host, certificates[callee]["spec"]["dnsNames"],
                              f"{label}: verify-full of {host} against {callee}'s certificate")

    def test_every_service_accepts_the_gateway_and_the_gateway_not_itself(self):
        for label, values in self.cases.items():
            cfg = configs(render(values))
            self.assertIn("gateway", cfg, label)
            for name, conf in cfg.items():
                if name == "gateway":
                    self.assertNotIn("gateway", conf["auth"]["callers"], label)
                else:
                    self.assertIn("gateway", conf["auth"]["callers"], f"{label}: {name}")
            # The chart adds it: the values never list it.
            self.assertFalse([n for n, s in merged(values)["services"].items() if "gateway" in (s.get("callers") or [])],
                             label)
        for name, conf in configs(render(without_gateway())).items():
            self.assertNotIn("gateway", conf["auth"]["callers"], f"gateway off: {name}")

    def test_the_gateway_settings_come_from_values_and_default_to_the_binarys(self):
        source = re.search(r'DEFAULTS: &str = r#"(.*?)"#', GATEWAY_SETTINGS.read_text(), re.S).group(1)
        binary = tomllib.loads(source)["gateway"]
        rendered = configs(render(None))["gateway"]["gateway"]
        self.assertEqual(set(rendered), GATEWAY_KEYS)
        self.assertLessEqual(GATEWAY_KEYS, set(binary), "keys the binary reads")
        for key in GATEWAY_KEYS:
            if not key.endswith("_addr"):
                self.assertEqual((rendered[key], type(rendered[key])), (binary[key], type(binary[key])), key)
        custom = {"services": {"gateway": {"gateway": {
            "rateLimits": {"perOrganization": {"requestsPerSecond": 50, "burst": 80},
                           "perPrincipal": {"requestsPerSecond": 2.5, "burst": 5}},
            "deadlines": {"defaultMs": 8000, "callTimeoutMs": 2000, "marginMs": 100},
            "resolveIntervalMs": 5000, "accessCacheTtlMs": 0, "retryBudgetRatio": 0.1,
            "circuitBreaker": {"failures": 3, "openMs": 10000},
            "corsAllowedOrigins": ["https://portal.example.org", "http://localhost:5173"]}}}}
        cfg = configs(render(custom))
        conf = {k: v for k, v in cfg["gateway"]["gateway"].items() if not k.endswith("_addr")}
        self.assertEqual(conf, {
            "org_rate_per_sec": 50.0, "org_burst": 80, "principal_rate_per_sec": 2.5, "principal_burst": 5,
            "default_deadline_ms": 8000, "call_timeout_ms": 2000, "deadline_margin_ms": 100,
            "resolve_interval_ms": 5000, "access_cache_ttl_ms": 0, "retry_budget_ratio": 0.1,
            "breaker_failures": 3, "breaker_open_ms": 10000,
            "cors_allowed_origins": ["https://portal.example.org", "http://localhost:5173"]})
        self.assertIsInstance(conf["org_rate_per_sec"], float, "the binary reads an f64")
        for name, other in cfg.items():
            if name != "gateway":
                self.assertNotIn("gateway", other, f"{name} has no [gateway]")
        # One value changed, the rest kept.
        conf = configs(render({"services": {"gateway": {"gateway": {"corsAllowedOrigins": ["*"]}}}}))["gateway"]["gateway"]
        self.assertEqual((conf["cors_allowed_origins"], conf["org_burst"]), (["*"], binary["org_burst"]))

    def test_the_schema_refuses_invalid_gateway_values(self):
        chart = helm.Chart.load(str(CHART))

        def gateway(**settings):
            return {"services": {"gateway": {"gateway": settings}}}
        bad = [
            gateway(rateLimits={"perOrganization": {"requestsPerSecond": -1, "burst": 10}}),
            gateway(rateLimits={"perOrganization": {"requestsPerSecond": 0, "burst": 10}}),
            gateway(rateLimits={"perPrincipal": {"requestsPerSecond": 10, "burst": 0}}),
            gateway(rateLimits={"perPrincipal": {"requestsPerSecond": 10, "burst": -3}}),
            gateway(rateLimits={"perPrincipal": {"requestsPerSecond": "100", "burst": 10}}),
            gateway(rateLimits={"perPrincipal": {"requestsPerSecond": 10, "burst": 1.5}}),
            gateway(deadlines={"defaultMs": -5}),
            gateway(deadlines={"callTimeoutMs": 0}),
            gateway(deadlines={"marginMs": -1}),
            gateway(resolveIntervalMs=10),
            gateway(accessCacheTtlMs=-1),
            gateway(retryBudgetRatio=1.5),
            gateway(retryBudgetRatio=-0.1),
            gateway(circuitBreaker={"failures": 0}),
            gateway(corsAllowedOrigins=["https://portal.example.org/app"]),
            gateway(corsAllowedOrigins=[""]),
            gateway(corsAllowedOrigins="*"),
            gateway(org_rate_per_sec=10),  # the binary's spelling is not a value
            {"services": {"gateway": {"ingressFrom": [{}]}}},
            # Only the gateway is exposed, faces partners or carries [gateway] settings.
            {"services": {"plans": {"exposed": True}}},
            {"services": {"referrals": {"serviceType": "LoadBalancer"}}},
            {"services": {"notifications": {"ingressFrom": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}}},
            {"services": {"metrics": {"gateway": {"corsAllowedOrigins": []}}}},
        ]
        for values in bad:
            with self.subTest(values=values), self.assertRaises(helm.HelmValuesError):
                chart.validate_schema(chart.merge_values(copy.deepcopy(values)))
        # An install refuses them too, and a gateway without its settings (null removes the block).
        for values in (bad[0], {"services": {"gateway": {"gateway": None}}}):
            with self.subTest(values=values), self.assertRaisesRegex(helm.HelmValuesError, "services/gateway"):
                render(values)
        good = gateway(rateLimits={"perOrganization": {"requestsPerSecond": 0.5, "burst": 1}},
                       retryBudgetRatio=0, accessCacheTtlMs=0,
                       corsAllowedOrigins=["*", "https://portal.example.org", "http://localhost:5173"])
        good["services"]["gateway"]["ingressFrom"] = [{"ipBlock": {"cidr": "203.0.113.0/24"}}]
        chart.validate_schema(chart.merge_values(copy.deepcopy(good)))
        report = helm.lint(str(CHART), good, strict=True)
        self.assertEqual(report["errors"], [])

    def test_the_gateway_callbacks_are_off_by_default(self):
        cases = dict(self.cases)
        cases["disabled with a secret"] = {"services": {"gateway": {"callbacks": {
            "enabled": False, "port": 8443, "smsSecret": CALLBACK_SECRET}}}}
        for label, values in cases.items():
            docs = render(values)
            self.assertFalse(merged(values)["services"]["gateway"]["callbacks"]["enabled"], label)
            conf = configs(docs)["gateway"]["gateway"]
            self.assertNotIn("callbacks_addr", conf, label)
            self.assertNotIn("sms_callback_secret", conf, label)
            for dep in by_kind(docs, "Deployment").values():
                pod = dep["spec"]["template"]["spec"]
                for container in pod["containers"] + pod["initContainers"]:
                    where = f"{label}: {dep['metadata']['name']} {container['name']}"
                    self.assertNotIn("callbacks", [p["name"] for p in container.get("ports", [])], where)
                    self.assertFalse([e["name"] for e in container.get("env", [])
                                      if e["name"].startswith("CARELOOP__GATEWAY__")], where)
            services = by_kind(docs, "Service")
            for svc in services.values():
                self.assertNotIn("callbacks", [p["name"] for p in svc["spec"]["ports"]], label)
            gateway = {component(p): p for p in by_kind(docs, "NetworkPolicy").values()}["gateway"]
            grpc, metrics = grpc_port(services["careloop-gateway"]), merged(values)["serviceDefaults"]["metricsPort"]
            self.assertEqual({p["port"] for r in gateway["spec"]["ingress"] for p in r["ports"]}, {grpc, metrics}, label)
            for port in (8090, 8443):
                self.assertEqual(ingress_rules_on(gateway, port), [], f"{label}: nothing opens {port}")

    def test_enabled_gateway_callbacks_agree_on_one_port_and_take_their_secret_from_the_secret(self):
        ingress_controller = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
        behind_ingress = gateway_callbacks(port=8443)
        behind_ingress["services"]["gateway"]["ingressFrom"] = [ingress_controller]
        own_grpc_port = gateway_callbacks(port=50051)  # free once the gateway's gRPC moves away from it
        own_grpc_port["services"]["gateway"]["grpcPort"] = 50060
        production = production_values()
        production["services"]["gateway"]["callbacks"] = gateway_callbacks()["services"]["gateway"]["callbacks"]
        cases = {"defaults": (gateway_callbacks(), 8090), "behind an ingress controller": (behind_ingress, 8443),
                 "gRPC moved": (own_grpc_port, 50051), "production": (production, 8090)}
        for label, (values, port) in cases.items():
            docs = render(values)
            deployments = {component(d): d for d in by_kind(docs, "Deployment").values()}
            policies = {component(p): p for p in by_kind(docs, "NetworkPolicy").values()}
            service, headless = cluster_services(docs)["gateway"], headless_services(docs)["gateway"]
            grpc = grpc_port(service)
            self.assertNotEqual(port, grpc, label)
            for doc in (deployments["gateway"], service, headless, policies["gateway"]):
                kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
            # The listen address the binary reads.
            conf = configs(docs)["gateway"]["gateway"]
            self.assertEqual(conf["callbacks_addr"], f"0.0.0.0:{port}", label)
            self.assertEqual(set(conf) - GATEWAY_KEYS, {"callbacks_addr"}, label)
            # The container listens there, under the name the Service targets.
            pod = deployments["gateway"]["spec"]["template"]["spec"]
            (container,) = pod["containers"]
            self.assertIn({"name": "callbacks", "containerPort": port, "protocol": "TCP"}, container["ports"], label)
            (door,) = [p for p in service["spec"]["ports"] if p["name"] == "callbacks"]
            self.assertEqual((door["port"], door["targetPort"], door["protocol"]), (port, "callbacks", "TCP"), label)
            self.assertEqual(door.get("appProtocol"), "http", label)
            self.assertEqual([p["name"] for p in headless["spec"]["ports"]], ["grpc"], f"{label}: headless is gRPC only")
            # The secret only from its Secret, only to the serving container of the gateway.
            env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
            self.assertEqual(env[CALLBACK_ENV], {"name": CALLBACK_SECRET, "key": "secret"}, label)
            (migrate,) = pod["initContainers"]
            self.assertNotIn(CALLBACK_ENV, {e["name"] for e in migrate["env"]}, f"{label}: the migrations never hold it")
            for name, dep in deployments.items():
                if name != "gateway":
                    names = {e["name"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
                    self.assertNotIn(CALLBACK_ENV, names, f"{label}: {name}")
            for cm in by_kind(docs, "ConfigMap").values():
                text = cm["data"]["config.toml"]
                for forbidden in ("sms_callback_secret", "whsec_", CALLBACK_SECRET):
                    self.assertNotIn(forbidden, text, f"{label}: {component(cm)}")
            # Admitted from exactly the gRPC port's peers, in a rule of its own; nowhere else.
            (grpc_rule,) = ingress_rules_on(policies["gateway"], grpc)
            (callbacks_rule,) = ingress_rules_on(policies["gateway"], port)
            self.assertEqual(callbacks_rule["ports"], [{"port": port, "protocol": "TCP"}], label)
            self.assertEqual(callbacks_rule.get("from"), grpc_rule.get("from"), f"{label}: the same peers as gRPC")
            peers = merged(values)["services"]["gateway"].get("ingressFrom") or []
            if peers:
                self.assertEqual([p for p in callbacks_rule["from"] if not release_pod(p)], peers, label)
            else:
                self.assertNotIn("from", callbacks_rule, f"{label}: from anywhere, like gRPC")
            for ip in OUTSIDE + INSIDE:
                self.assertEqual(admits_ip(policies["gateway"], ip, port), admits_ip(policies["gateway"], ip, grpc),
                                 f"{label}: {ip}")
            metrics = merged(values)["serviceDefaults"]["metricsPort"]
            clusters = cluster_services(docs)
            for name, policy in policies.items():
                if name != "gateway":
                    self.assertEqual({p["port"] for r in policy["spec"]["ingress"] for p in r["ports"]},
                                     {grpc_port(clusters[name]), metrics}, f"{label}: {name} opens no other port")
        report = helm.lint(str(CHART), behind_ingress, strict=True)
        self.assertEqual(report["errors"], [])
        self.assertEqual([m for m in report["messages"] if m["severity"] >= 2], [])

    def test_the_schema_refuses_callbacks_without_their_secret_and_the_render_a_port_clash(self):
        chart = helm.Chart.load(str(CHART))
        bad = [
            gateway_callbacks(smsSecret=""),  # the gateway would refuse to start
            gateway_callbacks(port=0),
            gateway_callbacks(port=65536),
            gateway_callbacks(port="8090"),
            gateway_callbacks(smsSecret="Careloop_SMS"),  # not a Secret's name
            gateway_callbacks(secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),  # secrets are never values
            gateway_callbacks(path="/hooks"),
            {"services": {"plans": {"callbacks": {"enabled": False, "port": 8090, "smsSecret": ""}}}},
        ]
        for values in bad:
            with self.subTest(values=values), self.assertRaises(helm.HelmValuesError):
                chart.validate_schema(chart.merge_values(copy.deepcopy(values)))
        with self.assertRaisesRegex(helm.HelmValuesError, "services/gateway"):
            render(gateway_callbacks(smsSecret=""))
        # A port the gateway already listens on: a schema cannot compare two values, so the render
        # refuses it (install, upgrade and template alike), against the gateway's actual ports.
        moved = gateway_callbacks(port=50060)
        moved["services"]["gateway"]["grpcPort"] = 50060
        defaults_moved = gateway_callbacks(port=9100)
        defaults_moved["serviceDefaults"] = {"metricsPort": 9100}
        clashes = [(gateway_callbacks(port=50051), "gRPC port"), (gateway_callbacks(port=9090), "metrics port"),
                   (moved, "gRPC port"), (defaults_moved, "metrics port")]
        for values, which in clashes:
            chart.validate_schema(chart.merge_values(copy.deepcopy(values)))
            with self.subTest(values=values), self.assertRaisesRegex(
                    helm.HelmRenderError, rf"services\.gateway\.callbacks\.port \d+ is the gateway's {which}"):
                render(values)
        # Off, the port is not opened, so it clashes with nothing.
        render({"services": {"gateway": {"callbacks": {"enabled": False, "port": 50051, "smsSecret": ""}}}})

    # --- notifications' outbound channels ------------------------------------------------------

    def test_by_default_only_notifications_reaches_https_beyond_the_cluster(self):
        for label, values in self.cases.items():
            docs = render(values)
            policies = {component(p): p for p in by_kind(docs, "NetworkPolicy").values()}
            notifications = policies.pop("notifications")
            for ip in OUTSIDE:
                self.assertTrue(reaches_ip(notifications, ip, 443), f"{label}: notifications reaches {ip}:443")
                for port in (25, 80, 465, 587, 8443):
                    self.assertFalse(reaches_ip(notifications, ip, port), f"{label}: notifications {ip}:{port}")
                for name, policy in policies.items():
                    self.assertFalse(reaches_ip(policy, ip, 443), f"{label}: {name} reaches {ip}:443")
            for ip in INSIDE:
                self.assertFalse(reaches_ip(notifications, ip, 443), f"{label}: notifications reaches {ip}:443")
            if values is None:
                self.assertEqual(set(policies), {"plans", "referrals", "prior-auth", "metrics", "gateway"})
            cfg = configs(docs)
            self.assertNotIn("email", cfg["notifications"]["notifications"], label)
            self.assertNotIn("sms", cfg["notifications"]["notifications"], label)
            for dep in by_kind(docs, "Deployment").values():
                env = {e["name"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
                self.assertFalse({e for e in env if e.startswith("CARELOOP__NOTIFICATIONS__")}, label)

    def test_email_opens_the_smtp_port_and_takes_its_password_from_the_secret(self):
        for label, email in (("submission", SMTP), ("own port", dict(SMTP, port=2525))):
            port = email.get("port", 587)
            values = outbound(email=email)
            docs = render(values)
            policies = {component(p): p for p in by_kind(docs, "NetworkPolicy").values()}
            deployments = {component(d): d for d in by_kind(docs, "Deployment").values()}
            for doc in (policies["notifications"], deployments["notifications"]):
                kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
            for ip in OUTSIDE:
                self.assertTrue(reaches_ip(policies["notifications"], ip, port), f"{label}: SMTP {ip}:{port}")
                self.assertTrue(reaches_ip(policies["notifications"], ip, 443), label)
                for name in ("plans", "referrals", "prior-auth", "metrics"):
                    self.assertFalse(reaches_ip(policies[name], ip, port), f"{label}: {name} {ip}:{port}")
                    self.assertFalse(reaches_ip(policies[name], ip, 443), f"{label}: {name} {ip}:443")
            for ip in INSIDE:
                self.assertFalse(reaches_ip(policies["notifications"], ip, port), f"{label}: SMTP {ip}:{port}")
            cfg = configs(docs)
            self.assertEqual(cfg["notifications"]["notifications"]["email"], {
                "enabled": True, "host": "smtp.hospital.example.org", "port": port,
                "from": "careloop@hospital.example.org", "starttls": True, "username": "careloop",
            }, label)
            self.assertNotIn("sms", cfg["notifications"]["notifications"], label)
            for name, conf in cfg.items():
                if name != "notifications":
                    self.assertNotIn("email", conf.get(name.replace("-", "_"), {}), name)
            for cm in by_kind(docs, "ConfigMap").values():
                text = cm["data"]["config.toml"].lower()
                self.assertNotIn("password", text, component(cm))
                self.assertNotIn("careloop-smtp", text, component(cm))
            pod = deployments["notifications"]["spec"]["template"]["spec"]
            env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in pod["containers"][0]["env"]}
            self.assertEqual(env["CARELOOP__NOTIFICATIONS__EMAIL__PASSWORD"],
                             {"name": "careloop-smtp", "key": "password"}, label)
            self.assertNotIn("CARELOOP__NOTIFICATIONS__SMS__TOKEN", env, label)
            (migrate,) = pod["initContainers"]
            self.assertNotIn("CARELOOP__NOTIFICATIONS__EMAIL__PASSWORD", {e["name"] for e in migrate["env"]},
                             f"{label}: the migrations never hold it")
            for name, dep in deployments.items():
                if name != "notifications":
                    names = {e["name"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
                    self.assertEqual(names, {"CARELOOP__DATABASE__URL", "CARELOOP__EVENTS__PASSWORD"}, name)

        # A relay inside the private ranges: SMTP to it alone, webhooks still to the internet only.
        relay = outbound(email=SMTP, egress={"smtpTo": [{"ipBlock": {"cidr": "10.20.0.25/32"}}]})
        policy = by_kind(render(relay), "NetworkPolicy")["careloop-notifications"]
        self.assertTrue(reaches_ip(policy, "10.20.0.25", 587))
        self.assertFalse(reaches_ip(policy, "10.20.0.25", 443))
        self.assertFalse(reaches_ip(policy, OUTSIDE[0], 587))
        self.assertTrue(reaches_ip(policy, OUTSIDE[0], 443))

        # No destinations: no rule at all (a rule without `to` would reach everywhere).
        policy = by_kind(render(outbound(email=SMTP, egress={"to": []})), "NetworkPolicy")["careloop-notifications"]
        self.assertTrue(all(rule.get("to") for rule in policy["spec"]["egress"]))
        self.assertFalse(reaches_ip(policy, OUTSIDE[0], 443) or reaches_ip(policy, OUTSIDE[0], 587))

        # Off again: no SMTP rule, no section and no Secret, whatever else is set.
        docs = render(outbound(email=dict(SMTP, enabled=False)))
        policy = by_kind(docs, "NetworkPolicy")["careloop-notifications"]
        self.assertFalse(reaches_ip(policy, OUTSIDE[0], 587))
        self.assertNotIn("email", configs(docs)["notifications"]["notifications"])
        env = by_kind(docs, "Deployment")["careloop-notifications"]["spec"]["template"]["spec"]["containers"][0]["env"]
        self.assertNotIn("CARELOOP__NOTIFICATIONS__EMAIL__PASSWORD", {e["name"] for e in env})

    def test_sms_takes_its_token_from_the_secret_and_reaches_its_providers_port(self):
        sms = {"enabled": True, "url": "https://sms.example.net:8443/v1/send", "tokenSecret": "careloop-sms"}
        docs = render(outbound(sms=sms))
        conf = configs(docs)["notifications"]["notifications"]
        self.assertEqual(conf["sms"], {"enabled": True, "url": "https://sms.example.net:8443/v1/send"})
        self.assertNotIn("email", conf)
        for cm in by_kind(docs, "ConfigMap").values():
            self.assertNotIn("careloop-sms", cm["data"]["config.toml"])
            self.assertNotIn("token =", cm["data"]["config.toml"].lower())
        dep = by_kind(docs, "Deployment")["careloop-notifications"]
        env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
        self.assertEqual(env["CARELOOP__NOTIFICATIONS__SMS__TOKEN"], {"name": "careloop-sms", "key": "token"})
        self.assertNotIn("CARELOOP__NOTIFICATIONS__EMAIL__PASSWORD", env)
        policy = by_kind(docs, "NetworkPolicy")["careloop-notifications"]
        kubernetes_validate.validate(policy, KUBE_VERSION, strict=True)
        self.assertTrue(reaches_ip(policy, OUTSIDE[0], 8443))
        self.assertTrue(reaches_ip(policy, OUTSIDE[0], 443))
        self.assertFalse(reaches_ip(policy, INSIDE[0], 8443))

    def test_plain_http_webhooks_are_never_rendered_or_accepted(self):
        cases = dict(self.cases)
        cases["email and sms"] = outbound(
            email=SMTP, sms={"enabled": True, "url": "https://sms.example.net/send", "tokenSecret": "careloop-sms"},
            webhooks={"maxAttempts": 3, "disableAfter": 2})
        for label, values in cases.items():
            docs = render(values)
            cfg = configs(docs)
            webhooks = cfg["notifications"]["notifications"]["webhooks"]
            self.assertIs(webhooks["allow_http"], False, label)
            if label == "email and sms":
                self.assertEqual((webhooks["max_attempts"], webhooks["disable_after"]), (3, 2))
            for name, conf in cfg.items():
                found = []

                def walk(table):
                    for key, value in table.items():
                        if isinstance(value, dict):
                            walk(value)
                        elif key == "allow_http":
                            found.append(value)
                walk(conf)
                self.assertTrue(all(v is False for v in found), f"{label}: {name} allow_http {found}")
                self.assertEqual(len(found), 1 if name == "notifications" else 0, f"{label}: {name}")
            for dep in by_kind(docs, "Deployment").values():
                for container in dep["spec"]["template"]["spec"]["containers"] + \
                        dep["spec"]["template"]["spec"]["initContainers"]:
                    self.assertFalse(any("ALLOW_HTTP" in e["name"] for e in container.get("env", [])), label)
        chart = helm.Chart.load(str(CHART))
        for values in (outbound(webhooks={"allowHttp": True}), outbound(webhooks={"allow_http": True}),
                       outbound(sms={"enabled": True, "url": "http://sms.example.net/send", "tokenSecret": "s"})):
            with self.subTest(values=values), self.assertRaises(helm.HelmValuesError):
                chart.validate_schema(chart.merge_values(copy.deepcopy(values)))

    def test_the_schema_keeps_outbound_channels_complete_and_to_notifications(self):
        chart = helm.Chart.load(str(CHART))
        complete = merged()["services"]["notifications"]["outbound"]
        bad = [
            {"services": {"plans": {"enabled": True, "databaseSecret": "x", "outbound": complete}}},
            {"services": {"gateway": {"enabled": True, "databaseSecret": "x", "outbound": complete}}},
            outbound(email=dict(SMTP, host="")),
            outbound(email=dict(SMTP, **{"from": ""})),
            outbound(email=dict(SMTP, passwordSecret="")),  # a username without its password
            outbound(email=dict(SMTP, username="")),  # a password without its username
            outbound(email=dict(SMTP, starttls=False)),  # credentials in plain text
            outbound(email=dict(SMTP, password="hunter2")),  # secrets are never values
            outbound(email=dict(SMTP, port=0)),
            outbound(sms={"enabled": True, "url": "https://sms.example.net/send", "tokenSecret": ""}),
            outbound(sms={"enabled": True, "url": "", "tokenSecret": "careloop-sms"}),
            outbound(sms={"token": "abc"}),
            outbound(webhooks={"maxAttempts": 0}),
            outbound(egress={"ports": []}),
            outbound(egress={"to": [{}]}),
            outbound(egress={"to": [{"ipBlock": {"except": ["10.0.0.0/8"]}}]}),
        ]
        for values in bad:
            with self.subTest(values=values), self.assertRaises(helm.HelmValuesError):
                chart.validate_schema(chart.merge_values(copy.deepcopy(values)))
        good = outbound(email=dict(SMTP, starttls=False, username="", passwordSecret=""),
                        sms={"enabled": True, "url": "https://sms.example.net/send", "tokenSecret": "careloop-sms"})
        chart.validate_schema(chart.merge_values(copy.deepcopy(good)))
        report = helm.lint(str(CHART), good, strict=True)
        self.assertEqual(report["errors"], [])
        self.assertEqual([m for m in report["messages"] if m["severity"] >= 2], [])

    # --- TLS and identities --------------------------------------------------------------------

    def test_every_service_serves_mutual_tls_with_its_own_certificate_and_audience(self):
        for label, values in self.cases.items():
            docs = render(values)
            settings = merged(values)
            cfg = configs(docs)
            audiences = []
            for dep in by_kind(docs, "Deployment").values():
                name = component(dep)
                svc = settings["services"][name]
                conf = cfg[name]
                where = f"{label}: {name}"
                tls_secret = svc.get("tlsSecret", f"{FULLNAME}-{name}-tls")
                mounts = pod_files(dep)
                self.assertIn(TLS_DIR, mounts, where)
                self.assertIn(DB_CA_DIR, mounts, where)
                self.assertTrue(all(read_only for path, (_, read_only) in mounts.items() if path != "/tmp"), where)
                self.assertEqual(conf["grpc"]["tls"], True, where)
                self.assertEqual(conf["grpc"]["client_auth"],
                                 "optional" if svc.get("exposed") else "required", where)
                self.assertEqual(file_source(dep, conf["tls"]["cert_file"]), ("Secret", tls_secret, "tls.crt"), where)
                self.assertEqual(file_source(dep, conf["tls"]["key_file"]), ("Secret", tls_secret, "tls.key"), where)
                self.assertEqual(file_source(dep, conf["tls"]["ca_file"]), ("Secret", tls_secret, "ca.crt"), where)
                self.assertEqual(file_source(dep, f"{DB_CA_DIR}/ca.crt"),
                                 ("Secret", settings["database"]["caSecret"], "ca.crt"), where)
                self.assertGreater(conf["tls"]["reload_secs"], 0, where)
                self.assertEqual(conf["auth"]["audience"], f"careloop-{name}", where)
                self.assertEqual(conf["auth"]["trust_domain"], "careloop", where)
                self.assertIs(conf["auth"]["dev_mode"], False, where)
                audiences.append(conf["auth"]["audience"])
                self.assertTrue(conf["events"]["tls"], where)
                self.assertTrue(conf["events"]["nats_url"].startswith("tls://"), where)
                self.assertEqual(conf["events"]["user"], name, where)
                pod = dep["spec"]["template"]["spec"]
                env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in pod["containers"][0]["env"]}
                # The serving container holds only the runtime role: never the schema owner's URL.
                self.assertEqual(set(env), {"CARELOOP__DATABASE__URL", "CARELOOP__EVENTS__PASSWORD"}, where)
                self.assertEqual(env["CARELOOP__DATABASE__URL"], {"name": svc["databaseSecret"], "key": "database-url"},
                                 where)
                self.assertFalse(conf["database"]["migrate_at_start"], where)
                # Migrations run first, in the init container, as the owner (optional key: without
                # it the runtime role migrates).
                (migrate,) = pod["initContainers"]
                self.assertIn("--migrate-only", migrate["args"], where)
                init_env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in migrate["env"]}
                self.assertEqual(init_env["CARELOOP__DATABASE__MIGRATION_URL"],
                                 {"name": svc["databaseSecret"], "key": "migration-url", "optional": True}, where)
                self.assertEqual(init_env["CARELOOP__DATABASE__URL"]["key"], "database-url", where)
                self.assertEqual((env["CARELOOP__EVENTS__PASSWORD"]["name"], env["CARELOOP__EVENTS__PASSWORD"]["key"]),
                                 (svc.get("natsSecret", f"careloop-nats-{name}"), "password"), where)
            self.assertEqual(len(audiences), len(set(audiences)), f"{label}: one audience per service")

    def test_production_exports_traces_over_tls(self):
        for name, conf in configs(render(production_values())).items():
            self.assertTrue(conf["telemetry"]["otlp_endpoint"].startswith("https://"), name)

    def test_optional_cas_and_a_trust_bundle_are_mounted_where_the_config_points(self):
        values = {
            "events": {"caSecret": "nats-ca"},
            "telemetry": {"otlpEndpoint": "https://collector.example:4317", "caSecret": "otlp-ca"},
            "tls": {"trustBundle": {"configMap": "careloop-trust", "key": "bundle.pem"}},
        }
        docs = render(values)
        for dep in by_kind(docs, "Deployment").values():
            conf = configs(docs)[component(dep)]
            self.assertEqual(file_source(dep, conf["events"]["ca_file"]), ("Secret", "nats-ca", "ca.crt"))
            self.assertEqual(file_source(dep, conf["telemetry"]["otlp_ca_file"]), ("Secret", "otlp-ca", "ca.crt"))
            self.assertEqual(file_source(dep, conf["tls"]["ca_file"]), ("ConfigMap", "careloop-trust", "bundle.pem"))
            probe = dep["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["command"]
            self.assertEqual(probe[probe.index("--ca") + 1], conf["tls"]["ca_file"])

    def test_cert_manager_gives_each_service_its_identity_and_the_names_its_callers_dial(self):
        self.assertEqual(by_kind(render(None), "Certificate"), {}, "off by default: existing Secrets")
        for label in ("production", "all services"):
            values = self.cases[label]
            docs = render(values)
            settings = merged(values)
            certificates = {component(c): c for c in by_kind(docs, "Certificate").values()}
            deployments = {component(d): d for d in by_kind(docs, "Deployment").values()}
            self.assertEqual(set(certificates), set(deployments), label)
            # Each address's host, by the service its Service (ClusterIP or headless) selects.
            service_docs = by_kind(docs, "Service")
            dialled = {}
            for caller, conf in configs(docs).items():
                for _, value in addresses(conf):
                    host = urllib.parse.urlsplit(value).hostname
                    dialled.setdefault(component(service_docs[host.split(".")[0]]), set()).add(host)
            for name, cert in certificates.items():
                where = f"{label}: {name}"
                spec = cert["spec"]
                self.assertEqual(cert["apiVersion"], "cert-manager.io/v1", where)
                self.assertEqual(spec["uris"], [f"spiffe://careloop/service/{name}"], where)
                self.assertEqual(set(spec["usages"]),
                                 {"server auth", "client auth", "digital signature", "key encipherment"}, where)
                host = f"{FULLNAME}-{name}"
                self.assertTrue({host, f"{host}.{NAMESPACE}.svc", f"{host}.{NAMESPACE}.svc.cluster.local"}
                                <= set(spec["dnsNames"]), where)
                self.assertTrue(dialled.get(name, set()) <= set(spec["dnsNames"]), f"{where}: names callers dial")
                self.assertIn("127.0.0.1", spec["ipAddresses"], f"{where}: the health probe dials loopback")
                self.assertEqual(spec["privateKey"]["algorithm"], "ECDSA", where)
                self.assertEqual(spec["privateKey"]["size"], 256, where)
                self.assertEqual(spec["issuerRef"], settings["tls"]["certManager"]["issuerRef"], where)
                self.assertEqual(spec["duration"], "2160h", where)
                self.assertEqual(spec["renewBefore"], "720h", where)
                self.assertEqual(file_source(deployments[name], f"{TLS_DIR}/tls.crt"),
                                 ("Secret", spec["secretName"], "tls.crt"), f"{where}: the pod mounts what cert-manager writes")
            self.assertIn("api.careloop.example.org", certificates["gateway"]["spec"]["dnsNames"])
            self.assertIn("plans", dialled, f"{label}: the test saw the callers' addresses")
            self.assertIn(f"{FULLNAME}-referrals-headless.{NAMESPACE}.svc", dialled.get("referrals", set()),
                          f"{label}: the test saw the gateway's headless addresses")

    def test_without_tls_services_speak_plain_grpc_with_native_probes(self):
        values = {"tls": {"enabled": False, "certManager": {"enabled": True}}}
        docs = render(values)
        self.assertEqual(by_kind(docs, "Certificate"), {})
        for dep in by_kind(docs, "Deployment").values():
            name = component(dep)
            conf = configs(docs)[name]
            self.assertEqual((conf["grpc"]["tls"], conf["grpc"]["client_auth"]), (False, "none"), name)
            self.assertNotIn("tls", conf, name)
            self.assertNotIn(TLS_DIR, pod_files(dep), name)
            container = dep["spec"]["template"]["spec"]["containers"][0]
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                self.assertEqual(container[probe]["grpc"], {"port": 50051}, f"{name} {probe}")
            for _, value in addresses(conf):
                self.assertTrue(value.startswith("http://"), value)

    def test_dev_mode_changes_only_dev_mode(self):
        off, on = render(None), render({"auth": {"devMode": True}})
        off_cfg, on_cfg = configs(off), configs(on)
        for name in off_cfg:
            self.assertIs(on_cfg[name]["auth"].pop("dev_mode"), True)
            self.assertIs(off_cfg[name]["auth"].pop("dev_mode"), False)
            self.assertEqual(on_cfg[name], off_cfg[name], name)
        strip = lambda docs: [d for d in docs if d["kind"] not in ("ConfigMap", "Deployment")]
        self.assertEqual(strip(on), strip(off))

    def test_issuers_render_as_auth_issuer_tables_with_snake_case_keys(self):
        issuers = [
            {"issuer": "https://login.hospital.example.org", "discovery": True, "kinds": ["staff"],
             "orgId": "3f0c2a9e-6b1d-4c8e-9a57-2d4e8f1b7c60", "caSecret": "hospital-idp-ca"},
            {"issuer": "https://partners.example.org", "jwksConfigMap": "partner-jwks", "kinds": ["partner", "payer"],
             "kindClaim": "kind", "orgClaim": "tenant", "allowedOrgs": ["9b2e4d71-0c3a-4f5e-8d26-6a1f7e3c9b40"],
             "rolesClaim": "groups", "maxTokenLifetimeSecs": 600, "refreshSecs": 120},
        ]
        docs = render({"auth": {"issuers": issuers, "leewaySecs": 10, "maxTokenLifetimeSecs": 1800}})
        for dep in by_kind(docs, "Deployment").values():
            conf = configs(docs)[component(dep)]
            self.assertEqual((conf["auth"]["leeway_secs"], conf["auth"]["max_token_lifetime_secs"]), (10, 1800))
            hospital, partners = conf["auth"]["issuers"]
            self.assertEqual(hospital, {
                "issuer": "https://login.hospital.example.org", "discovery": True, "jwks_url": "", "jwks_file": "",
                "kinds": ["staff"], "kind_claim": "", "org_id": "3f0c2a9e-6b1d-4c8e-9a57-2d4e8f1b7c60",
                "org_claim": "", "allowed_orgs": [], "roles_claim": "roles", "refresh_secs": 300,
                "ca_file": hospital["ca_file"],
            })
            self.assertEqual(file_source(dep, hospital["ca_file"]), ("Secret", "hospital-idp-ca", "ca.crt"))
            self.assertEqual(partners, {
                "issuer": "https://partners.example.org", "discovery": False, "jwks_url": "",
                "jwks_file": partners["jwks_file"], "kinds": ["partner", "payer"], "kind_claim": "kind", "org_id": "",
                "org_claim": "tenant", "allowed_orgs": ["9b2e4d71-0c3a-4f5e-8d26-6a1f7e3c9b40"],
                "roles_claim": "groups", "max_token_lifetime_secs": 600, "refresh_secs": 120, "ca_file": "",
            })
            self.assertEqual(file_source(dep, partners["jwks_file"]), ("ConfigMap", "partner-jwks", "jwks.json"))

    def test_the_schema_rejects_issuers_that_could_assert_a_service_or_are_incomplete(self):
        chart = helm.Chart.load(str(CHART))
        good = {"issuer": "https://login.example.org", "discovery": True, "kinds": ["staff"]}
        bad = [
            dict(good, kinds=["staff", "service"], kindClaim="kind"),  # services are known by mTLS only
            dict(good, kinds=["service"]),
            dict(good, kinds=[]),
            {k: v for k, v in good.items() if k != "kinds"},
            dict(good, issuer="http://login.example.org"),
            dict(good, discovery=False),  # no way to get keys
            dict(good, kinds=["staff", "partner"]),  # several kinds without the claim naming them
            dict(good, orgId="not-a-uuid"),
            dict(good, orgId="3f0c2a9e-6b1d-4c8e-9a57-2d4e8f1b7c60", allowedOrgs=["9b2e4d71-0c3a-4f5e-8d26-6a1f7e3c9b40"]),
            dict(good, hs256Secret="x"),
        ]
        for issuer in bad:
            values = chart.merge_values({"auth": {"issuers": [issuer]}})
            with self.subTest(issuer=issuer), self.assertRaises(helm.HelmValuesError):
                chart.validate_schema(values)
        chart.validate_schema(chart.merge_values({"auth": {"issuers": [good]}}))


    # --- the Grafana dashboard ---------------------------------------------------------------

    def test_no_dashboard_configmap_by_default(self):
        for label, values in self.cases.items():
            self.assertEqual(dashboard_configmaps(render(values)), {}, label)
        self.assertFalse(merged(None)["dashboards"]["enabled"])

    def test_enabled_dashboards_render_one_sidecar_configmap_with_the_dashboard_and_nothing_else(self):
        values = {"dashboards": {"enabled": True}}
        report = helm.lint(str(CHART), values, strict=True)
        self.assertEqual(report["errors"], [])
        self.assertEqual([m for m in report["messages"] if m["severity"] >= 2], [])
        docs = render(values)
        found = dashboard_configmaps(docs)
        self.assertEqual(list(found), [f"{FULLNAME}-dashboards"])
        cm = found[f"{FULLNAME}-dashboards"]
        kubernetes_validate.validate(cm, KUBE_VERSION, strict=True)
        self.assertEqual(cm["metadata"]["labels"]["grafana_dashboard"], "1")
        self.assertNotIn("annotations", cm["metadata"])
        self.assertEqual(list(cm["data"]), [DASHBOARD_KEY])
        self.assertEqual(json.loads(cm["data"][DASHBOARD_KEY]), json.loads(DASHBOARD_FILE.read_text()))
        # Nothing else changes.
        rest = [d for d in docs if not (d["kind"] == "ConfigMap" and d["metadata"]["name"] in found)]
        self.assertEqual(rest, render(None))

    def test_the_sidecar_label_and_annotations_are_the_values(self):
        docs = render({"dashboards": {"enabled": True, "label": "grafana.example.org/dashboard", "labelValue": "careloop",
                                      "annotations": {"grafana_folder": "CareLoop"}}})
        cm = dashboard_configmaps(docs)[f"{FULLNAME}-dashboards"]
        kubernetes_validate.validate(cm, KUBE_VERSION, strict=True)
        self.assertEqual(cm["metadata"]["labels"]["grafana.example.org/dashboard"], "careloop")
        self.assertNotIn("grafana_dashboard", cm["metadata"]["labels"])
        self.assertEqual(cm["metadata"]["annotations"], {"grafana_folder": "CareLoop"})

    def test_the_schema_keeps_dashboards_values_strict(self):
        chart = helm.Chart.load(str(CHART))
        bad = [
            {"dashboards": {"enabled": "yes"}},
            {"dashboards": {"labelValue": 1}},  # the sidecar compares strings: --set-string
            {"dashboards": {"label": ""}},
            {"dashboards": {"label": "grafana dashboard"}},
            {"dashboards": {"folder": "CareLoop"}},
            {"dashboards": {"annotations": {"grafana_folder": 1}}},
        ]
        for values in bad:
            with self.subTest(values=values), self.assertRaises(helm.HelmValuesError):
                chart.validate_schema(chart.merge_values(copy.deepcopy(values)))
        chart.validate_schema(chart.merge_values({"dashboards": {"enabled": True,
                                                                 "annotations": {"grafana_folder": "CareLoop"}}}))

    def test_the_dashboard_reads_only_the_measure_gauges_through_the_datasource_variable(self):
        cm = dashboard_configmaps(render({"dashboards": {"enabled": True}}))[f"{FULLNAME}-dashboards"]
        dashboard = json.loads(cm["data"][DASHBOARD_KEY])
        self.assertGreaterEqual(dashboard["schemaVersion"], 36)
        self.assertEqual(dashboard["uid"], "careloop-measures")
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        self.assertEqual((variables["datasource"]["type"], variables["datasource"]["query"]),
                         ("datasource", "prometheus"))
        org = variables["org_id"]
        self.assertEqual(org["type"], "query")
        self.assertEqual(org["datasource"], DATASOURCE)
        query = org["query"]["query"] if isinstance(org["query"], dict) else org["query"]
        self.assertEqual(query, "label_values(careloop_measure_open_loops, org_id)")
        self.assertFalse(org.get("multi") or org.get("includeAll"), "every query selects one organization")

        used = set()
        panels = list(walk_panels(dashboard["panels"]))
        self.assertTrue(panels)
        self.assertEqual(len({p["id"] for p in panels}), len(panels), "panel ids are unique")
        for panel in panels:
            with self.subTest(panel=panel["title"]):
                self.assertEqual(panel.get("datasource"), DATASOURCE)
                grid = panel["gridPos"]
                self.assertLessEqual(grid["x"] + grid["w"], 24)
                self.assertTrue(panel["targets"])
                for target in panel["targets"]:
                    expr = target["expr"]
                    self.assertEqual(target.get("datasource", DATASOURCE), DATASOURCE)
                    selectors, groupings = promql(expr)
                    self.assertTrue(selectors, expr)
                    labels = set()
                    for metric, matchers in selectors:
                        self.assertIn(metric, MEASURES, expr)
                        used.add(metric)
                        labels |= MEASURES[metric]
                        self.assertLessEqual(set(matchers), MEASURES[metric], expr)
                        self.assertEqual(matchers.get("org_id"), ("=", "$org_id"), expr)
                        for name, (op, value) in matchers.items():
                            if name in LABEL_VALUES:
                                self.assertEqual(op, "=", expr)
                                self.assertIn(value, LABEL_VALUES[name], expr)
                    for grouping in groupings:
                        self.assertLessEqual(set(grouping), labels, expr)
                    # Every metrics replica exports the same gauges: a query aggregates the copies
                    # (pod, instance) away rather than drawing each replica's.
                    self.assertTrue(groupings, expr)
                    legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
                    self.assertLessEqual(legend, set(groupings[0]), expr)
        self.assertEqual(used, set(MEASURES), "every gauge has a panel")

    def test_the_promql_reader_finds_metrics_and_labels(self):
        selectors, groupings = promql('sum by (age) (max by (org_id, age) (a_metric{org_id="$org_id", age=~"1 to \\"3\\""}))'
                                      ' / on (age) b_metric + rate(c_total[5m]) > bool 0')
        self.assertEqual([s[0] for s in selectors], ["a_metric", "b_metric", "c_total"])
        self.assertEqual(selectors[0][1], {"org_id": ("=", "$org_id"), "age": ("=~", '1 to "3"')})
        self.assertEqual(groupings, [["age"], ["org_id", "age"], ["age"]])


K8S = pathlib.Path(__file__).resolve().parent.parent.parent / "k8s"


def k8s_docs(name):
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def nats_matches(pattern, subject):
    """Whether a NATS subject pattern (`*` one token, `>` the rest) covers a subject."""
    want, got = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got) or (token != "*" and token != got[i]):
            return False
    return len(want) == len(got)


def nats_allows(user, direction, subject):
    return any(nats_matches(p, subject) for p in user["permissions"][direction]["allow"])


class ClusterFilesTest(unittest.TestCase):
    def test_every_file_parses_and_plain_kubernetes_objects_validate(self):
        for path in sorted(K8S.glob("*.yaml")):
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
            self.assertTrue(docs, path.name)
            for doc in docs:
                if doc.get("apiVersion") == "v1" and "kind" in doc:
                    kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)

    def test_the_database_bootstrap_gives_each_chart_service_its_own_schema_and_role(self):
        """Per service: an owner role that owns the schema (and runs migrations) and a runtime role
        that owns nothing, so it cannot alter or drop the audit log or its trigger."""
        cluster = next(d for d in k8s_docs("postgres-cluster.yaml") if d["kind"] == "Cluster")
        sql = cluster["spec"]["bootstrap"]["initdb"]["postInitApplicationSQL"]
        managed = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
        schema_owners = {}
        for statement in sql:
            words = statement.split()
            if words[:2] == ["CREATE", "SCHEMA"]:
                self.assertEqual(len(words), 5, statement)
                self.assertEqual(words[3], "AUTHORIZATION", statement)
                schema_owners[words[2]] = words[4]
        connect = {role.strip() for s in sql if s.startswith("GRANT CONNECT ON DATABASE careloop TO ")
                   for role in s.removeprefix("GRANT CONNECT ON DATABASE careloop TO ").split(",")}
        for name in ALL_SERVICES:
            schema = name.replace("-", "_")
            runtime, owner = f"careloop_{schema}", f"careloop_{schema}_owner"
            for role, secret in ((runtime, f"careloop-db-{name}-credentials"),
                                 (owner, f"careloop-db-{name}-owner-credentials")):
                with self.subTest(service=name, role=role):
                    self.assertIn(role, managed)
                    self.assertEqual((managed[role]["ensure"], managed[role]["login"]), ("present", True))
                    self.assertEqual(managed[role]["passwordSecret"], {"name": secret})
                    self.assertIn(f"DO $$ BEGIN CREATE ROLE {role} LOGIN; "
                                  "EXCEPTION WHEN duplicate_object THEN NULL; END $$", sql)
                    self.assertIn(role, connect)
                    self.assertIn(f"ALTER ROLE {role} SET search_path = {schema}", sql)
            self.assertEqual(schema_owners.get(schema), owner, f"{schema} is owned by the owner role")
            self.assertNotEqual(schema_owners.get(schema), runtime, f"{schema}: the runtime role owns nothing")
            self.assertFalse(any(runtime in s.split() for s in sql if "OWNER" in s or "AUTHORIZATION" in s),
                             f"{runtime} is never made an owner")
        self.assertIn("REVOKE ALL ON SCHEMA public FROM PUBLIC", sql)
        self.assertIn("REVOKE ALL ON DATABASE careloop FROM PUBLIC", sql)

    def test_the_database_accepts_service_roles_only_over_tls_with_scram(self):
        cluster = next(d for d in k8s_docs("postgres-cluster.yaml") if d["kind"] == "Cluster")
        rules = [line.split() for line in cluster["spec"]["postgresql"]["pg_hba"]]
        admitting = [r for r in rules if r[-1] != "reject"]
        roles = {f"careloop_{n.replace('-', '_')}{suffix}" for n in ALL_SERVICES for suffix in ("", "_owner")}
        self.assertEqual({r[2] for r in admitting}, roles, "runtime and owner roles, nothing else")
        for rule in admitting:
            self.assertEqual((rule[0], rule[1], rule[-1]), ("hostssl", "careloop", "scram-sha-256"), rule)
        # The last rules close everything else, ahead of the operator's default `host all all all`.
        self.assertEqual(rules[-2:], [["hostnossl", "all", "all", "all", "reject"], ["host", "all", "all", "all", "reject"]])
        self.assertEqual(cluster["spec"]["postgresql"]["parameters"]["ssl_min_protocol_version"], "TLSv1.3")

    def test_nats_requires_tls_and_lets_each_service_publish_only_its_own_events(self):
        (values,) = k8s_docs("nats-values.yaml")
        config = values["config"]
        self.assertTrue(config["nats"]["tls"]["enabled"])
        self.assertEqual(config["nats"]["tls"]["secretName"], "nats-server-tls")
        self.assertTrue(config["cluster"]["tls"]["enabled"])
        self.assertEqual(values["tlsCA"]["secretName"], "nats-server-tls")
        own = {"plans": "careloop.plans.>", "referrals": "careloop.referrals.>", "prior-auth": "careloop.priorauth.>",
               "notifications": "careloop.notifications.>", "metrics": "careloop.metrics.>", "gateway": None}
        js_api = {"$JS.API.INFO", "$JS.API.STREAM.INFO.*", "$JS.API.STREAM.CREATE.*", "$JS.API.STREAM.UPDATE.*",
                  "$JS.API.CONSUMER.>", "$JS.ACK.>"}
        users = {u["user"]: u for u in config["merge"]["authorization"]["users"]}
        self.assertEqual(set(users), set(own))
        env = values["container"]["env"]
        for name, user in users.items():
            variable = user["password"].removeprefix("<< $").removesuffix(" >>")
            self.assertNotEqual(variable, user["password"], f"{name}: the password is an env reference")
            self.assertEqual(env[variable]["valueFrom"]["secretKeyRef"],
                             {"name": f"careloop-nats-{name}", "key": "password"}, name)
            publish = set(user["permissions"]["publish"]["allow"])
            self.assertNotIn("deny", user["permissions"]["publish"], "allow lists deny the rest")
            events = {s for s in publish if s.startswith("careloop.")}
            self.assertEqual(events, {own[name]} if own[name] else set(), name)
            self.assertTrue(publish - events <= js_api | {"careloop_dlq.>"}, name)
            self.assertFalse({">", "careloop.>", "$JS.>", "$JS.API.>"} & publish, name)
            # The gateway also hears plans' events (to drop cached access decisions); nobody
            # else subscribes beyond its own replies.
            extra = ["careloop.plans.>"] if name == "gateway" else []
            self.assertEqual(user["permissions"]["subscribe"]["allow"], ["_INBOX.>", *extra], name)
        gateway = users["gateway"]
        self.assertTrue(nats_allows(gateway, "subscribe", "careloop.plans.care_team.changed"))
        for other in ("careloop.referrals.result.routed", "careloop.>", "careloop.priorauth.request.pended"):
            self.assertFalse(nats_allows(gateway, "subscribe", other), other)

    def test_nats_lets_each_durable_consumer_pull_ack_and_dead_letter(self):
        """The durable consumers the services run on the whole stream: referrals' pathway rules, the
        notifications router and the metrics recorder, each on `careloop.>`, dead letters to
        careloop_dlq.<consumer>."""
        (values,) = k8s_docs("nats-values.yaml")
        users = {u["user"]: u for u in values["config"]["merge"]["authorization"]["users"]}
        consumers = {"referrals": "referrals-pathways", "notifications": "notifications-router",
                     "metrics": "metrics-recorder"}
        for name, consumer in consumers.items():
            user = users[name]
            for subject in (
                f"$JS.API.CONSUMER.CREATE.CARELOOP.{consumer}.careloop.>",
                f"$JS.API.CONSUMER.DURABLE.CREATE.CARELOOP.{consumer}",
                f"$JS.API.CONSUMER.INFO.CARELOOP.{consumer}",
                f"$JS.API.CONSUMER.MSG.NEXT.CARELOOP.{consumer}",
                f"$JS.ACK.CARELOOP.{consumer}.1.2.3.1700000000000000000.0",
                "$JS.API.STREAM.CREATE.CARELOOP_DLQ",
                f"careloop_dlq.{consumer}",
            ):
                self.assertTrue(nats_allows(user, "publish", subject), f"{name} publishes {subject}")
            self.assertTrue(nats_allows(user, "subscribe", "_INBOX.abc.def"), f"{name} receives pulled messages")
        notifications = users["notifications"]
        self.assertTrue(nats_allows(notifications, "publish", "careloop.notifications.item.raised"))
        for forged in ("careloop.plans.loop.overdue", "careloop.referrals.referral.created",
                       "careloop.priorauth.request.pended", "careloop.notifications"):
            self.assertFalse(nats_allows(notifications, "publish", forged), forged)
        self.assertEqual(values["container"]["env"]["CARELOOP_NOTIFICATIONS_PASSWORD"]["valueFrom"]["secretKeyRef"],
                         {"name": "careloop-nats-notifications", "key": "password"})
        # Metrics emits nothing yet; its own subjects are reserved for it, nobody else's.
        metrics = users["metrics"]
        self.assertTrue(nats_allows(metrics, "publish", "careloop.metrics.report.published"))
        for forged in ("careloop.plans.loop.overdue", "careloop.referrals.referral.created",
                       "careloop.priorauth.request.pended", "careloop.notifications.item.raised",
                       "careloop.metrics", "careloop_dlq"):
            self.assertFalse(nats_allows(metrics, "publish", forged), forged)
        self.assertEqual(values["container"]["env"]["CARELOOP_METRICS_PASSWORD"]["valueFrom"]["secretKeyRef"],
                         {"name": "careloop-nats-metrics", "key": "password"})

    def test_cert_manager_bootstraps_the_careloop_ca_and_the_dependency_certificates(self):
        docs = k8s_docs("cert-manager-ca.yaml")
        issuers = {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Issuer", "ClusterIssuer")}
        certs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Certificate"}
        for doc in docs:
            self.assertEqual(doc["apiVersion"], "cert-manager.io/v1")
        self.assertIn("selfSigned", issuers["careloop-selfsigned"]["spec"])
        ca_cert = next(c for c in certs.values() if c["spec"].get("isCA"))
        self.assertEqual(ca_cert["spec"]["issuerRef"]["name"], "careloop-selfsigned")
        self.assertEqual(issuers["careloop-ca"]["spec"]["ca"]["secretName"], ca_cert["spec"]["secretName"])
        chart_ref = yaml.safe_load((CHART / "values.yaml").read_text())["tls"]["certManager"]["issuerRef"]
        self.assertEqual((chart_ref["name"], chart_ref["kind"]), ("careloop-ca", issuers["careloop-ca"]["kind"]))
        nats = certs["nats-server-tls"]
        self.assertEqual((nats["metadata"]["namespace"], nats["spec"]["secretName"]), ("nats", "nats-server-tls"))
        self.assertIn("nats.nats.svc", nats["spec"]["dnsNames"])
        collector = certs["otel-collector-tls"]
        self.assertIn("otel-collector.observability", collector["spec"]["dnsNames"])
        for cert in (nats, collector):
            self.assertEqual(cert["spec"]["issuerRef"]["name"], "careloop-ca")

    def test_the_collector_receives_otlp_only_over_tls(self):
        (values,) = k8s_docs("otel-collector-values.yaml")
        protocols = values["config"]["receivers"]["otlp"]["protocols"]
        self.assertIsNone(protocols.get("http"))
        tls = protocols["grpc"]["tls"]
        mounts = {m["mountPath"]: m["name"] for m in values["extraVolumeMounts"]}
        volumes = {v["name"]: v for v in values["extraVolumes"]}
        for key in ("cert_file", "key_file"):
            directory = tls[key].rsplit("/", 1)[0]
            self.assertEqual(volumes[mounts[directory]]["secret"]["secretName"], "otel-collector-tls")
        production = production_values()["telemetry"]["otlpEndpoint"]
        host = urllib.parse.urlsplit(production).hostname
        cert = next(d for d in k8s_docs("cert-manager-ca.yaml") if d["metadata"]["name"] == "otel-collector-tls")
        self.assertIn(host, cert["spec"]["dnsNames"], "the name production dials is on the collector's certificate")


if __name__ == "__main__":
    unittest.main()
