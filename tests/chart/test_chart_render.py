"""The chart renders every scenario into valid, restricted, checkov-clean manifests."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from crypto_mine.pipeline.queue_stats import QueueKeys
from devstack.generate import CHART, ROOT, drifted, run_helm, template

from .conftest import SCENARIOS, documents

KUBERNETES_VALIDATE = Path(sys.executable).parent / "kubernetes-validate"
CHECKOV_CONFIG = CHART / "ci" / "checkov.yaml"
CUSTOM_KINDS = {
    "QueueAutoscaler",
    "ScaledObject",
    "ServiceMonitor",
    "PrometheusRule",
    "CustomResourceDefinition",
}
# KEDA's ScaledObject schema as published (two releases: the oldest supported, a recent one).
KEDA_SCHEMAS = sorted((Path(__file__).parent / "keda").glob("scaledobject-*.schema.yaml"))
# Trigger metadata KEDA's scalers read (docs: keda.sh/docs/2.12/scalers/prometheus/ and
# /redis-lists/); KEDA's CRD leaves metadata free, so a misspelt key would pass the schema.
TRIGGER_KEYS = {
    "prometheus": {
        "serverAddress",
        "query",
        "threshold",
        "activationThreshold",
        "ignoreNullValues",
    },
    "redis": {"address", "listName", "listLength", "databaseIndex", "enableTLS"},
}
DEFAULT = CHART / "ci" / "default-values.yaml"


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    found = [d for d in by_kind(docs, kind) if d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"one {kind} named *{suffix}, found {len(found)}"
    return found[0]


def render(*extra: str, values: Path = DEFAULT) -> list[dict[str, Any]]:
    return documents(template(values, *extra))


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_every_scenario_is_covered() -> None:
    names = {p.name for p in SCENARIOS}
    assert {
        "default-values.yaml",
        "dev-values.yaml",
        "hpa-values.yaml",
        "keda-values.yaml",
    } <= names
    assert {"static-values.yaml", "production-values.yaml"} <= names


@pytest.mark.parametrize("values", SCENARIOS, ids=lambda p: p.name)
def test_helm_lint_strict(values: Path) -> None:
    out = run_helm("lint", "--strict", str(CHART), "-f", str(values))
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("version", ["1.27.0", "1.28.0", "1.29.0", "1.30.0"])
def test_kubernetes_validate_strict(version: str, rendered: dict[str, Path]) -> None:
    result = subprocess.run(
        [str(KUBERNETES_VALIDATE), "-k", version, "--strict", "--quiet", "--no-warn"]
        + [str(p) for p in rendered.values()],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    validated = sum(
        1
        for p in rendered.values()
        for d in documents(p.read_text())
        if d["kind"] not in CUSTOM_KINDS
    )
    assert validated > 100


def test_custom_resources_match_their_schemas(rendered: dict[str, Path]) -> None:
    crd = yaml.safe_load((CHART / "crds" / "queueautoscalers.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    seen: set[str] = set()
    for path in rendered.values():
        for doc in documents(path.read_text()):
            kind = doc["kind"]
            seen.add(str(kind))
            if kind == "QueueAutoscaler":
                jsonschema.validate(doc, schema)
            elif kind == "ScaledObject":
                for keda in KEDA_SCHEMAS:
                    jsonschema.validate(doc, yaml.safe_load(keda.read_text()))
            elif kind == "ServiceMonitor":
                endpoint = doc["spec"]["endpoints"][0]
                assert endpoint["port"] in {"http", "metrics"}
                assert doc["spec"]["selector"]["matchLabels"]
            elif kind == "PrometheusRule":
                for group in doc["spec"]["groups"]:
                    assert group["rules"], group["name"]
    assert {
        "QueueAutoscaler",
        "ServiceMonitor",
        "PrometheusRule",
        "HorizontalPodAutoscaler",
        "ScaledObject",
    } <= seen


def test_checkov_passes(rendered: dict[str, Path]) -> None:
    checkov = subprocess.run(
        [str(ROOT / "scripts" / "ensure-checkov.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    ).stdout.strip()
    argv = [checkov, "--config-file", str(CHECKOV_CONFIG), "--output", "json"]
    for path in rendered.values():
        argv += ["-f", str(path)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{c['check_id']} {c['resource']}"
        for report in reports
        for c in report["results"]["failed_checks"]
    ]
    assert failed == [], failed
    assert result.returncode == 0, result.stderr[-2000:]
    assert sum(r["summary"]["passed"] for r in reports) > 1000


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("autoscaling.mode=sometimes", "autoscaling.mode"),
        ("api.replicaCount=-1", "api.replicaCount"),
        ("api.webConcurrency=0", "api.webConcurrency"),
        ("idAllocator.mode=random", "idAllocator.mode"),
        ("config.logLevel=LOUD", "config.logLevel"),
        ("secrets.jwt.value=too-short", "secrets.jwt.value"),
        ("secrets.redis.url=http://redis", "secrets.redis.url"),
        ("worker.concurrency=0", "worker.concurrency"),
        ("api.unknownSetting=1", "unknownSetting"),
        ("operator.watchNamespace=Bad_NS", "operator.watchNamespace"),
        ("autoscaling.minReplicas=30", "exceeds autoscaling.maxReplicas"),
    ],
)
def test_bad_values_are_rejected(setting: str, message: str) -> None:
    with pytest.raises(RuntimeError, match=message.replace(".", r"\.")):
        render("--set", setting)


GIVEN_SECRETS = (
    "--set",
    "secrets.jwt.value=" + "j" * 32 + ",secrets.idAllocatorToken.value=" + "t" * 32,
)


def test_data_stores_are_required() -> None:
    bare = CHART / "values.yaml"
    with pytest.raises(RuntimeError, match=r"secrets\.mongodb\.uri is needed"):
        template(bare, *GIVEN_SECRETS)
    with pytest.raises(RuntimeError, match=r"secrets\.redis\.url is needed"):
        template(bare, *GIVEN_SECRETS, "--set", "mongodb.enabled=true")


@pytest.mark.parametrize("secret", ["jwt", "idAllocatorToken"])
def test_a_render_without_the_cluster_generates_no_secret(secret: str) -> None:
    """helm template and GitOps tools cannot read a generated secret back: they must fail."""
    with pytest.raises(RuntimeError, match=rf"secrets\.{secret}: no .* cannot read the cluster"):
        render("--set", f"secrets.{secret}.value=")
    assert render("--set", f"secrets.{secret}.value=,secrets.{secret}.existingSecret=mine")


def api_env(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return env_of(named(docs, "Deployment", "-api")["spec"]["template"]["spec"]["containers"][0])


def test_trusted_proxies_follow_the_ingress() -> None:
    assert api_env(render())["TRUSTED_PROXY_COUNT"] == "0"
    production = render(values=CHART / "ci" / "production-values.yaml")
    assert api_env(production)["TRUSTED_PROXY_COUNT"] == "1"
    ingress = named(production, "Ingress", "-api")
    assert ingress["spec"]["tls"] == [
        {"hosts": ["crypto-mine.example.com"], "secretName": "crypto-mine-tls"}
    ]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "crypto-mine-api", "port": {"number": 8080}}
    two = render("--set", "api.trustedProxyCount=2", values=CHART / "ci" / "production-values.yaml")
    assert api_env(two)["TRUSTED_PROXY_COUNT"] == "2"  # e.g. a cloud load balancer in front


INGRESS = "api.ingress.enabled=true,api.ingress.host=a.example.com"
FROM_INGRESS = "networkPolicy.apiFrom[0].namespaceSelector.matchLabels.name=ingress"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (f"{INGRESS},{FROM_INGRESS},api.trustedProxyCount=0", "is 0 behind the chart's Ingress"),
        (f"{INGRESS},{FROM_INGRESS},api.service.type=LoadBalancer", "of type LoadBalancer"),
        ("api.trustedProxyCount=1,api.service.type=NodePort," + FROM_INGRESS, "of type NodePort"),
        (INGRESS, "networkPolicy.apiFrom lets every pod reach the api"),
        ("api.env.TRUSTED_PROXY_COUNT=1", "set api.trustedProxyCount instead"),
        ("api.ingress.enabled=true," + FROM_INGRESS, "api.ingress.host is needed"),
    ],
)
def test_proxy_settings_clients_could_bypass_are_refused(setting: str, message: str) -> None:
    with pytest.raises(RuntimeError, match=message.replace(".", r"\.")):
        render("--set", setting)


def test_the_allocator_takes_the_service_token_and_shows_metrics_to_monitoring_only() -> None:
    docs = render()
    secret = named(docs, "Secret", "crypto-mine")
    token_ref = {"name": secret["metadata"]["name"], "key": "id-allocator-token"}
    assert api_env(docs)["ID_ALLOCATOR_TOKEN"]["secretKeyRef"] == token_ref
    allocator = named(docs, "Deployment", "-id-allocator")["spec"]["template"]["spec"]
    assert env_of(allocator["containers"][0])["ID_ALLOCATOR_TOKEN"]["secretKeyRef"] == token_ref
    assert env_of(allocator["containers"][0])["ID_METRICS_PORT"] == "9101"
    ports = {p["name"]: p["containerPort"] for p in allocator["containers"][0]["ports"]}
    assert ports == {"http": 8081, "metrics": 9101}

    policy = named(docs, "NetworkPolicy", "-id-allocator")["spec"]["ingress"]
    by_port = {rule["ports"][0]["port"]: rule["from"] for rule in policy}
    assert by_port["http"] == [
        {"podSelector": {"matchLabels": {
            "app.kubernetes.io/name": "crypto-mine",
            "app.kubernetes.io/instance": "crypto-mine",
            "app.kubernetes.io/component": "api",
        }}}
    ]  # fmt: skip
    monitoring = {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    assert [peer["namespaceSelector"] for peer in by_port["metrics"]] == [monitoring]
    for name in ("-worker", "-operator"):
        for rule in named(docs, "NetworkPolicy", name)["spec"]["ingress"]:
            if rule["ports"][0]["port"] == "metrics":
                assert [peer["namespaceSelector"] for peer in rule["from"]] == [monitoring]

    monitors = render("--set", "monitoring.serviceMonitor.enabled=true")
    [endpoint] = named(monitors, "ServiceMonitor", "-id-allocator")["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    service_ports = named(monitors, "Service", "-id-allocator")["spec"]["ports"]
    assert {p["name"]: p["port"] for p in service_ports} == {"http": 8081, "metrics": 9101}


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    specs = [
        (d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in by_kind(docs, "Deployment")
    ]
    specs += [(d["metadata"]["name"], d["spec"]) for d in by_kind(docs, "Pod")]
    return specs


def test_every_pod_is_restricted(rendered: dict[str, Path]) -> None:
    checked = 0
    for path in rendered.values():
        for name, spec in pod_specs(documents(path.read_text())):
            pod = spec["securityContext"]
            assert pod["runAsNonRoot"] is True, name
            assert pod["runAsUser"] >= 10000, name
            assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
            for container in spec["containers"]:
                security = container["securityContext"]
                assert security["readOnlyRootFilesystem"] is True, name
                assert security["allowPrivilegeEscalation"] is False, name
                assert security["capabilities"] == {"drop": ["ALL"]}, name
                assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
                assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
                if not name.endswith("-test-readyz"):
                    assert "livenessProbe" in container, name
                    assert "readinessProbe" in container, name
                checked += 1
    assert checked > 20


def test_worker_outlives_its_job_timeout_and_shutdown_grace() -> None:
    for extra in [(), ("--set", "config.jobTimeoutSeconds=600,worker.shutdownGraceSeconds=30")]:
        docs = render(*extra)
        spec = named(docs, "Deployment", "-worker")["spec"]["template"]["spec"]
        env = env_of(spec["containers"][0])
        timeout = int(env["MINING_JOB_TIMEOUT_SECONDS"])
        grace = int(env["MINING_WORKER_SHUTDOWN_GRACE"])
        assert spec["terminationGracePeriodSeconds"] > timeout + grace
    assert timeout == 600


def test_tmp_is_writable_only_where_a_process_writes() -> None:
    for concurrency, api_tmp in [(1, False), (3, True)]:
        docs = render("--set", f"api.webConcurrency={concurrency}")
        worker = named(docs, "Deployment", "-worker")["spec"]["template"]["spec"]
        assert env_of(worker["containers"][0])["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")
        assert worker["containers"][0]["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
        assert "emptyDir" in worker["volumes"][0]
        api = named(docs, "Deployment", "-api")["spec"]["template"]["spec"]
        assert ("volumes" in api) is api_tmp
        assert ("PROMETHEUS_MULTIPROC_DIR" in env_of(api["containers"][0])) is api_tmp
        for other in ("-id-allocator", "-operator"):
            assert "volumes" not in named(docs, "Deployment", other)["spec"]["template"]["spec"]


def test_autoscaling_modes() -> None:
    operator = render()
    assert len(by_kind(operator, "QueueAutoscaler")) == 1
    assert by_kind(operator, "HorizontalPodAutoscaler") == []
    # Owned by the autoscaler: a first install starts at minReplicas; an upgrade writes back
    # the live count (tests/cluster: the lifecycle across modes).
    assert named(operator, "Deployment", "-worker")["spec"]["replicas"] == 1
    started_at_two = render("--set", "autoscaling.minReplicas=2")
    assert named(started_at_two, "Deployment", "-worker")["spec"]["replicas"] == 2
    qa = by_kind(operator, "QueueAutoscaler")[0]["spec"]
    assert (
        qa["scaleTargetRef"]["name"] == named(operator, "Deployment", "-worker")["metadata"]["name"]
    )

    hpa_docs = render("--set", "autoscaling.mode=hpa")
    assert by_kind(hpa_docs, "QueueAutoscaler") == []
    hpa = by_kind(hpa_docs, "HorizontalPodAutoscaler")[0]
    assert hpa["apiVersion"] == "autoscaling/v2"
    metric = hpa["spec"]["metrics"][0]["external"]
    assert metric["metric"]["name"] == "mining_click_queue_depth"
    assert metric["target"] == {"type": "AverageValue", "averageValue": "500"}

    fixed = render("--set", "autoscaling.mode=none,worker.replicaCount=3")
    assert by_kind(fixed, "QueueAutoscaler") == by_kind(fixed, "HorizontalPodAutoscaler") == []
    assert named(fixed, "Deployment", "-worker")["spec"]["replicas"] == 3


def test_api_versions_on_current_clusters() -> None:
    docs = render("--set", "autoscaling.mode=hpa")
    assert {d["apiVersion"] for d in by_kind(docs, "PodDisruptionBudget")} == {"policy/v1"}
    assert by_kind(docs, "HorizontalPodAutoscaler")[0]["apiVersion"] == "autoscaling/v2"


def test_monitoring_objects_are_behind_switches() -> None:
    kinds = {"ServiceMonitor", "PrometheusRule"}
    off = render()
    assert not [d for d in off if d["kind"] in kinds]
    assert not [
        d for d in by_kind(off, "ConfigMap") if "grafana_dashboard" in d["metadata"]["labels"]
    ]
    on = render(
        "--set",
        "monitoring.serviceMonitor.enabled=true,monitoring.prometheusRule.enabled=true,"
        "monitoring.dashboards.enabled=true",
    )
    monitors = by_kind(on, "ServiceMonitor")
    assert {m["spec"]["endpoints"][0]["path"] for m in monitors} == {"/api/metrics", "/metrics"}
    assert len(monitors) == 4
    # No jobLabel: the job of the scraped series is the Service name, which the rules select.
    assert all("jobLabel" not in m["spec"] for m in monitors)
    services = {s["metadata"]["name"] for s in by_kind(on, "Service")}
    assert {m["metadata"]["name"] for m in monitors} <= services
    exporters = render(
        "--set",
        "monitoring.serviceMonitor.enabled=true,monitoring.redisExporter.enabled=true,"
        "monitoring.mongodbExporter.enabled=true",
    )
    assert len(by_kind(exporters, "ServiceMonitor")) == 6
    assert {
        named(exporters, "Deployment", f"-{e}-exporter")["spec"]["replicas"]
        for e in ("redis", "mongodb")
    } == {1}
    dashboards = [
        d
        for d in by_kind(on, "ConfigMap")
        if d["metadata"]["labels"].get("grafana_dashboard") == "1"
    ]
    shipped = {p.name: p.read_text() for p in (ROOT / "grafana" / "dashboards").glob("*.json")}
    assert {name: text.rstrip("\n") for d in dashboards for name, text in d["data"].items()} == {
        name: text.rstrip("\n") for name, text in shipped.items()
    }


def test_secrets_generated_or_taken_from_existing_ones() -> None:
    docs = render()
    secret = named(docs, "Secret", "crypto-mine")
    assert set(secret["data"]) == {"jwt-secret", "id-allocator-token", "mongodb-uri", "redis-url"}
    api_env = env_of(named(docs, "Deployment", "-api")["spec"]["template"]["spec"]["containers"][0])
    assert api_env["JWT_SECRET"]["secretKeyRef"] == {
        "name": secret["metadata"]["name"],
        "key": "jwt-secret",
    }

    existing = render(values=CHART / "ci" / "production-values.yaml")
    assert by_kind(existing, "Secret") == []
    worker = named(existing, "Deployment", "-worker")["spec"]["template"]["spec"]["containers"][0]
    assert env_of(worker)["MONGODB_URI"]["secretKeyRef"] == {
        "name": "crypto-mine-datastores",
        "key": "mongodb-uri",
    }


def test_dev_data_stores_are_wired() -> None:
    docs = render(values=CHART / "ci" / "dev-values.yaml")
    images = {
        c["image"]
        for d in by_kind(docs, "Deployment")
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert {"redis:7", "mongo:7"} <= images


def test_helm_test_hook_checks_readyz() -> None:
    pod = named(render(), "Pod", "-test-readyz")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["containers"][0]["command"][-1].endswith(":8080/readyz")


def test_generated_files_are_current() -> None:
    stale = [str(p.relative_to(ROOT)) for p in drifted()]
    assert stale == [], f"run `make generate`: {stale}"


def test_operator_egress_reaches_only_its_dependencies() -> None:
    docs = render(values=CHART / "ci" / "dev-values.yaml")
    policy = named(docs, "NetworkPolicy", "-operator")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    ports = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert ports == {(443, "TCP"), (6443, "TCP"), (53, "UDP"), (53, "TCP"), (9090, "TCP"),
                     (6379, "TCP")}  # fmt: skip
    assert all(rule["ports"] for rule in policy["egress"]), "a rule without ports opens them all"
    peers = {p["port"]: rule.get("to") for rule in policy["egress"] for p in rule["ports"]}
    # The in-chart Redis of the dev scenario, by its pod labels; Prometheus and DNS by theirs.
    assert peers[6379] == [{"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "crypto-mine", "app.kubernetes.io/instance": "crypto-mine",
        "app.kubernetes.io/component": "redis"}}}]  # fmt: skip
    assert peers[9090][0]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
    assert peers[53][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    narrowed = render(
        "--set-json",
        'networkPolicy.operatorEgress.apiServer.to=[{"ipBlock":{"cidr":"10.0.0.1/32"}}]',
    )
    api_rule = named(narrowed, "NetworkPolicy", "-operator")["spec"]["egress"][0]
    assert api_rule["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]


def test_operator_fetches_only_allowed_metric_urls() -> None:
    docs = render(
        "--set",
        "operator.metricUrlAllowlist={https://thanos.example/query},"
        "autoscaling.metric.prometheusUrl=http://prometheus.monitoring:9090",
    )
    operator = named(docs, "Deployment", "-operator")["spec"]["template"]["spec"]
    env = env_of(operator["containers"][0])
    assert env["METRIC_URL_ALLOWLIST"] == (
        "https://thanos.example/query,http://prometheus.monitoring:9090"
    )
    assert "METRIC_URL_ALLOWLIST" not in env_of(
        named(render(), "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    )
    with pytest.raises(RuntimeError, match="metricUrlAllowlist"):
        render("--set", "operator.metricUrlAllowlist={http://user:pw@host:9090}")


def keda_schemas() -> list[dict[str, Any]]:
    assert [p.name for p in KEDA_SCHEMAS] == [
        "scaledobject-v2.12.0.schema.yaml",
        "scaledobject-v2.20.2.schema.yaml",
    ]
    return [yaml.safe_load(p.read_text()) for p in KEDA_SCHEMAS]


@pytest.mark.parametrize("trigger", ["prometheus", "redis"])
def test_keda_mode_renders_a_scaled_object_valid_for_keda(trigger: str) -> None:
    setting = f"autoscaling.keda.trigger={trigger},autoscaling.keda.redis.address=redis:6379"
    docs = render("--set", setting, values=CHART / "ci" / "keda-values.yaml")
    assert by_kind(docs, "QueueAutoscaler") == by_kind(docs, "HorizontalPodAutoscaler") == []
    worker = named(docs, "Deployment", "-worker")
    # KEDA owns the count: a render that cannot read the live one starts at minReplicas.
    assert worker["spec"]["replicas"] == 0
    scaled = named(docs, "ScaledObject", "-worker")
    for schema in keda_schemas():
        jsonschema.validate(scaled, schema)
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 30)
    assert (spec["pollingInterval"], spec["cooldownPeriod"]) == (5, 600)
    assert spec["fallback"] == {"failureThreshold": 3, "replicas": 4}
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["policies"] == [
        {"type": "Percent", "value": 100, "periodSeconds": 15}
    ]
    [found] = spec["triggers"]
    assert found["type"] == trigger
    assert set(found["metadata"]) == TRIGGER_KEYS[trigger]
    assert all(isinstance(v, str) for v in found["metadata"].values())
    if trigger == "prometheus":
        assert found["metadata"]["query"] == "sum(mining_click_queue_depth)"
        assert found["metadata"]["threshold"] == "500"
        assert found["metadata"]["ignoreNullValues"] == "false"
    else:
        assert found["metadata"]["listName"] == QueueKeys.queue
        assert found["metadata"]["address"] == "redis:6379"


def test_a_paused_keda_scaled_object_carries_kedas_annotation() -> None:
    scaled = named(
        render("--set", "autoscaling.mode=keda,autoscaling.paused=true"), "ScaledObject", "-worker"
    )
    assert scaled["metadata"]["annotations"] == {"autoscaling.keda.sh/paused": "true"}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("operator.enabled=false", "autoscaling.mode operator needs the operator"),
        ("operator.watchNamespace=team-a", "leaves out the release namespace crypto-mine"),
        (
            "autoscaling.minReplicas=0,api.enabled=false",
            "autoscaling.minReplicas 0 on a Prometheus metric needs api.enabled",
        ),
        (
            "autoscaling.mode=keda,autoscaling.minReplicas=0,api.enabled=false",
            "autoscaling.minReplicas 0 on a Prometheus metric needs api.enabled",
        ),
        (
            "autoscaling.mode=keda,autoscaling.keda.trigger=redis",
            "needs autoscaling.keda.redis.address",
        ),
        (
            "autoscaling.targetDrainSeconds=60,operator.prometheusUrl=",
            "autoscaling.targetDrainSeconds reads the apply rate from Prometheus",
        ),
        ("autoscaling.mode=hpa,autoscaling.minReplicas=0", "minReplicas"),
        ("autoscaling.fallback.failureThreshold=2", "replicas"),
        ("autoscaling.mode=keda,autoscaling.minReplicas=3,autoscaling.maxReplicas=2", "exceeds"),
    ],
)
def test_autoscaling_values_that_cannot_work_are_refused(settings: str, message: str) -> None:
    with pytest.raises(RuntimeError, match=re.escape(message)):
        render("--set", settings)


@pytest.mark.parametrize(
    "settings",
    [
        "operator.enabled=false,autoscaling.externalOperator=true",
        "operator.watchNamespace=team-a\\,crypto-mine",
        "autoscaling.minReplicas=0,api.enabled=false,autoscaling.metric.source=redis",
        "autoscaling.mode=keda,autoscaling.minReplicas=0,api.enabled=false,"
        "autoscaling.keda.trigger=redis,autoscaling.keda.redis.address=redis:6379",
    ],
)
def test_autoscaling_values_that_work_together_render(settings: str) -> None:
    docs = render("--set", settings)
    assert by_kind(docs, "QueueAutoscaler") or by_kind(docs, "ScaledObject")


def test_the_operator_may_scale_only_its_targets() -> None:
    docs = render()
    worker = named(docs, "Deployment", "-worker")["metadata"]["name"]
    operator = named(docs, "Deployment", "-operator")["spec"]["template"]["spec"]
    assert env_of(operator["containers"][0])["SCALE_TARGETS"] == worker
    role = named(docs, "Role", "-operator")
    deployment_rules = [r for r in role["rules"] if r["apiGroups"] == ["apps"]]
    assert deployment_rules == [
        {"apiGroups": ["apps"], "resources": ["deployments/status"], "verbs": ["get"],
         "resourceNames": [worker]},
        {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["patch"],
         "resourceNames": [worker]},
    ]  # fmt: skip
    more = render("--set", "operator.scaleTargets={crypto-mine-worker,batch-worker}")
    operator = named(more, "Deployment", "-operator")["spec"]["template"]["spec"]
    assert env_of(operator["containers"][0])["SCALE_TARGETS"] == "crypto-mine-worker,batch-worker"
    rules = named(more, "Role", "-operator")["rules"]
    assert {tuple(r.get("resourceNames", ())) for r in rules if r["apiGroups"] == ["apps"]} == {
        ("crypto-mine-worker", "batch-worker")
    }
