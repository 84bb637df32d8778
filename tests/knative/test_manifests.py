"""The cluster manifests (knative/, load/k8s/): schema-valid, renderable, wired together as designed.

Every object is validated against the real schemas (vendored CRDs in shared/crds, Kubernetes'
own JSON schemas for core kinds) by tests/support/crd_schema.py; rendering uses knative.kustomize.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from knative.kustomize import KustomizeError, render
from knative.kustomize import main as kustomize_main
from tests.support import crd_schema
from tests.support.crd_schema import ManifestError, validate

REPO = Path(__file__).resolve().parents[2]
KNATIVE = REPO / "knative"
LOAD_K8S = REPO / "load" / "k8s"
NAMESPACE = "kfchain"
IMAGE = "ghcr.io/kfchain/kfchain:latest"
LOCAL_PORTS = {"selector": 8091, "deployer": 8092, "recorder": 8093, "frontend": 8081}

# Metric names the dashboards may use. kfchain's own names must also be defined in the code
# (test_dashboard_kfchain_metrics_are_defined_in_code); the others come from the platform.
KFCHAIN_METRICS = {
    # services/sink.py (every CloudEvent service)
    "kfchain_events_received_total",
    "kfchain_events_handled_total",
    "kfchain_events_failed_total",
    "kfchain_events_duplicate_total",
    "kfchain_handler_latency_seconds_bucket",
    # knative/local dispatcher
    "kfchain_dispatch_delivered_total",
    "kfchain_dispatch_retried_total",
    "kfchain_dispatch_dead_lettered_total",
    "kfchain_consumer_lag",
    "kfchain_dispatch_dropped_total",
    "kfchain_dispatch_delivery_seconds_bucket",
    # frontend/metrics.py
    "kfchain_frontend_requests_total",
    "kfchain_frontend_request_seconds_bucket",
    "kfchain_frontend_upstream_errors_total",
    # services/predictor
    "kfchain_predictor_requests_total",
    "kfchain_predictor_model_info",
    "kfchain_predictor_request_seconds_bucket",
}
PLATFORM_METRICS = {
    # KServe's ModelServer (kserve/metrics.py)
    "request_predict_seconds_count",
    "request_predict_seconds_bucket",
    # Knative queue-proxy (port http-usermetric)
    "revision_request_count",
    "revision_request_latencies_bucket",
    # kube-state-metrics
    "kube_deployment_status_replicas_available",
    "kube_pod_info",
    # cAdvisor (kubelet)
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    # Kafka exporter (Strimzi / kafka_exporter): the cluster broker's consumer lag
    "kafka_consumergroup_lag",
}
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "rate", "irate", "increase", "histogram_quantile",
    "label_replace", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
}  # fmt: skip


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    return render(KNATIVE)


@pytest.fixture(scope="module")
def objects(rendered: list[dict]) -> dict[tuple[str, str], dict]:
    return {(obj["kind"], obj["metadata"]["name"]): obj for obj in rendered}


def manifest_files() -> list[Path]:
    files = [
        p for p in crd_schema.iter_yaml_files(KNATIVE) if "local" not in p.relative_to(KNATIVE).parts[:1]
    ]
    return files + list(crd_schema.iter_yaml_files(LOAD_K8S))


def knative_services(objects: dict[tuple[str, str], dict]) -> dict[str, dict]:
    return {
        name: obj
        for (kind, name), obj in objects.items()
        if kind == "Service" and obj["apiVersion"] == "serving.knative.dev/v1"
    }


# --- every file, every rendered object ----------------------------------------------------------


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_manifest_file_matches_its_schema(path: Path) -> None:
    assert crd_schema.validate_file(path), f"{path} holds no Kubernetes object"


@pytest.mark.parametrize("root", [KNATIVE, LOAD_K8S], ids=["knative", "load/k8s"])
def test_rendered_kustomization_is_valid_and_namespaced(root: Path) -> None:
    objects = render(root)
    assert objects
    for obj in objects:
        validate(obj, source=f"render({root.relative_to(REPO)})")
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == NAMESPACE, f"{obj['kind']}/{obj['metadata']['name']}"
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "kfchain"


def test_base_renders_the_whole_stack(objects: dict[tuple[str, str], dict]) -> None:
    expected = {
        ("Namespace", "kfchain"),
        ("ConfigMap", "kfchain-config"),
        ("ConfigMap", "deployer-config"),
        ("ConfigMap", "predictor-config"),
        ("ConfigMap", "kafka-broker-config"),
        ("Broker", "kfchain"),
        ("KafkaSink", "kfchain-dlq"),
        ("KafkaSource", "kfchain-dead-letters"),
        ("Trigger", "on-training-done"),
        ("Trigger", "on-selection-done"),
        ("Trigger", "record-all"),
        ("Service", "selector"),
        ("Service", "deployer"),
        ("Service", "recorder"),
        ("Service", "frontend"),
        ("InferenceService", "iris"),
        ("ServingRuntime", "kfchain-predictor"),
        ("PersistentVolumeClaim", "model-pvc"),
        ("PersistentVolumeClaim", "kfchain-state"),
        ("ServiceAccount", "selector"),
        ("ServiceAccount", "deployer"),
        ("ServiceAccount", "recorder"),
        ("ServiceAccount", "frontend"),
        ("ServiceAccount", "kfchain-predictor"),
        ("Role", "selector-kfp-runs"),
        ("Role", "deployer-inferenceservices"),
        ("PodMonitor", "kfchain-services"),
        ("PodMonitor", "kfchain-predictor"),
        ("ConfigMap", "kfchain-grafana-dashboards"),
    }
    assert expected <= set(objects), f"missing: {sorted(expected - set(objects))}"


def test_rendering_puts_accounts_and_config_before_their_users(rendered: list[dict]) -> None:
    kinds = [obj["kind"] for obj in rendered]
    assert kinds[0] == "Namespace"
    assert kinds.index("ServiceAccount") < kinds.index("ConfigMap") < kinds.index("Trigger")
    assert max(i for i, k in enumerate(kinds) if k == "ConfigMap") < kinds.index("Broker")


# --- eventing -------------------------------------------------------------------------------------


def test_broker_is_a_kafka_broker_on_the_external_topic(objects: dict[tuple[str, str], dict]) -> None:
    broker = objects[("Broker", "kfchain")]
    annotations = broker["metadata"]["annotations"]
    assert annotations["eventing.knative.dev/broker.class"] == "Kafka"
    assert annotations["kafka.eventing.knative.dev/external.topic"] == "kfchain.events"
    config_ref = broker["spec"]["config"]
    config = objects[(config_ref["kind"], config_ref["name"])]
    assert config_ref["namespace"] == config["metadata"]["namespace"]
    assert set(config["data"]) >= {
        "bootstrap.servers",
        "default.topic.partitions",
        "default.topic.replication.factor",
    }
    assert int(config["data"]["default.topic.partitions"]) >= 1


EXPECTED_TRIGGERS = {
    "on-training-done": (
        {"type": "io.kfchain.pipeline.run.succeeded", "pipeline": "training"},
        "selector",
        "ordered",
    ),
    "on-selection-done": (
        {"type": "io.kfchain.pipeline.run.succeeded", "pipeline": "model-selection"},
        "deployer",
        "ordered",
    ),
    "record-all": (None, "recorder", "unordered"),
}
ISO_DURATION = re.compile(r"^PT(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?$")


@pytest.mark.parametrize("name", sorted(EXPECTED_TRIGGERS))
def test_trigger_routes_and_delivery(objects: dict[tuple[str, str], dict], name: str) -> None:
    attributes, subscriber, order = EXPECTED_TRIGGERS[name]
    trigger = objects[("Trigger", name)]
    spec = trigger["spec"]
    assert spec["broker"] == "kfchain"
    assert (spec.get("filter") or {}).get("attributes") == attributes
    assert trigger["metadata"]["annotations"]["kafka.eventing.knative.dev/delivery.order"] == order
    ref = spec["subscriber"]["ref"]
    assert (ref["apiVersion"], ref["kind"], ref["name"]) == ("serving.knative.dev/v1", "Service", subscriber)
    assert subscriber in knative_services(objects)

    delivery = spec["delivery"]
    assert isinstance(delivery["retry"], int) and delivery["retry"] >= 1
    assert delivery["backoffPolicy"] == "exponential"
    assert ISO_DURATION.match(delivery["backoffDelay"]), delivery["backoffDelay"]
    assert ISO_DURATION.match(delivery["timeout"]), delivery["timeout"]
    sink_ref = delivery["deadLetterSink"]["ref"]
    sink = objects[(sink_ref["kind"], sink_ref["name"])]
    assert sink_ref["apiVersion"] == sink["apiVersion"]
    assert sink["spec"]["topic"] == "kfchain.events.dlq"


def _seconds(duration: str) -> float:
    match = ISO_DURATION.match(duration)
    assert match, duration
    hours, minutes, seconds = (match.group(i) for i in (1, 2, 3))
    return int((hours or "0H")[:-1]) * 3600 + int((minutes or "0M")[:-1]) * 60 + float((seconds or "0S")[:-1])


def test_iso_durations_are_read_in_seconds() -> None:
    assert (_seconds("PT0.2S"), _seconds("PT6M"), _seconds("PT1H30S")) == (0.2, 360, 3630)


@pytest.mark.parametrize("name", sorted(EXPECTED_TRIGGERS))
def test_subscriber_may_answer_within_the_delivery_timeout(
    objects: dict[tuple[str, str], dict], name: str
) -> None:
    """A request Knative cuts off before the delivery timeout would be retried although it succeeds."""
    trigger = objects[("Trigger", name)]["spec"]
    service = knative_services(objects)[trigger["subscriber"]["ref"]["name"]]
    assert service["spec"]["template"]["spec"]["timeoutSeconds"] > _seconds(trigger["delivery"]["timeout"])


def test_rollout_finishes_before_the_deployer_delivery_times_out(
    objects: dict[tuple[str, str], dict],
) -> None:
    rollout_timeout = float(objects[("ConfigMap", "deployer-config")]["data"]["KFCHAIN_ROLLOUT_TIMEOUT"])
    delivery_timeout = _seconds(objects[("Trigger", "on-selection-done")]["spec"]["delivery"]["timeout"])
    assert rollout_timeout < delivery_timeout


def test_dead_letters_reach_the_recorder(objects: dict[tuple[str, str], dict]) -> None:
    source = objects[("KafkaSource", "kfchain-dead-letters")]
    assert source["spec"]["topics"] == [objects[("KafkaSink", "kfchain-dlq")]["spec"]["topic"]]
    assert source["spec"]["sink"]["ref"]["name"] == "recorder"


# --- services -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LOCAL_PORTS))
def test_service_runs_a_real_module_of_the_one_image(objects: dict[tuple[str, str], dict], name: str) -> None:
    service = knative_services(objects)[name]
    assert service["metadata"]["annotations"]["kfchain.io/local"] == "true"
    template = service["spec"]["template"]
    (container,) = template["spec"]["containers"]
    assert container["image"] == IMAGE
    command = container["command"]
    assert command[:2] == ["python", "-m"] and len(command) == 3, command
    module = command[2]
    # `python -m X` needs X.py, or X/__main__.py for a package: the container would crash otherwise.
    spec = importlib.util.find_spec(module)
    assert spec is not None, f"{name}: module {module} does not exist"
    if spec.submodule_search_locations is not None:
        assert importlib.util.find_spec(f"{module}.__main__") is not None, f"{module} has no __main__"
    assert [port["containerPort"] for port in container["ports"]] == [LOCAL_PORTS[name]]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/liveness"
    assert {"configMapRef": {"name": "kfchain-config"}} in container["envFrom"]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert template["spec"]["serviceAccountName"] in {n for k, n in objects if k == "ServiceAccount"}


def _cluster_env(objects: dict[tuple[str, str], dict], container: dict) -> dict[str, str]:
    """The environment a container gets on the cluster: its envFrom ConfigMaps, then literal env."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(objects[("ConfigMap", source["configMapRef"]["name"])]["data"])
    env.update({item["name"]: item["value"] for item in container.get("env", []) if "value" in item})
    return env


def test_frontend_calls_the_inference_service_cluster_locally(objects: dict[tuple[str, str], dict]) -> None:
    (container,) = knative_services(objects)["frontend"]["spec"]["template"]["spec"]["containers"]
    isvc = objects[("InferenceService", "iris")]["metadata"]
    url = _cluster_env(objects, container)["KFCHAIN_PREDICTOR_URL"]
    assert url == f"http://{isvc['name']}.{isvc['namespace']}.svc.cluster.local"


def test_local_workloads_carry_no_cluster_only_literal_env(rendered: list[dict]) -> None:
    """knative.local passes a container's literal env to the local process: cluster values must come
    from ConfigMaps (envFrom) or valueFrom, or the local stack would call cluster URLs."""
    for obj in rendered:
        if (obj["metadata"].get("annotations") or {}).get("kfchain.io/local") != "true":
            continue
        for container in _containers_of(obj):
            literal = [item["name"] for item in container.get("env", []) if "value" in item]
            assert not literal, f"{obj['kind']}/{obj['metadata']['name']} sets {literal} literally"


def _containers_of(obj: dict) -> list[dict]:
    spec = obj["spec"]
    return spec["template"]["spec"]["containers"] if "template" in spec else spec["containers"]


def test_chain_services_are_not_public(objects: dict[tuple[str, str], dict]) -> None:
    for name in ("selector", "deployer", "recorder"):
        labels = knative_services(objects)[name]["metadata"]["labels"]
        assert labels["networking.knative.dev/visibility"] == "cluster-local", name


def test_cluster_config_makes_services_listen_on_the_pod_ip(objects: dict[tuple[str, str], dict]) -> None:
    data = objects[("ConfigMap", "kfchain-config")]["data"]
    assert data["KFCHAIN_BIND_HOST"] == "0.0.0.0"
    assert data["KFCHAIN_FRONTEND_HOST"] == "0.0.0.0"
    assert data["KFCHAIN_TOPIC"] == "kfchain.events" and data["KFCHAIN_DLQ_TOPIC"] == "kfchain.events.dlq"
    runtime = objects[("ServingRuntime", "kfchain-predictor")]
    env = _cluster_env(objects, runtime["spec"]["containers"][0])
    assert (env["KFCHAIN_PREDICTOR_HOST"], env["KFCHAIN_PREDICTOR_PORT"]) == ("0.0.0.0", "8080")
    assert env["KFCHAIN_PREDICTOR_PORT"] == str(runtime["spec"]["containers"][0]["ports"][0]["containerPort"])


def test_every_reference_resolves(rendered: list[dict]) -> None:
    """ConfigMaps, Secrets (unless optional), PVCs, ServiceAccounts and Roles that objects use exist."""
    names = {(obj["kind"], obj["metadata"]["name"]) for obj in rendered}
    missing = []
    for obj in rendered:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        for kind, name in _references(obj):
            if (kind, name) not in names:
                missing.append(f"{where} -> {kind}/{name}")
    assert not missing, missing


def _references(node: object) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        if "configMapRef" in node:
            yield "ConfigMap", node["configMapRef"]["name"]
        if "configMap" in node and isinstance(node["configMap"], dict) and "name" in node["configMap"]:
            yield "ConfigMap", node["configMap"]["name"]
        if "persistentVolumeClaim" in node:
            yield "PersistentVolumeClaim", node["persistentVolumeClaim"]["claimName"]
        if "secretKeyRef" in node and not node["secretKeyRef"].get("optional"):
            yield "Secret", node["secretKeyRef"]["name"]
        if isinstance(node.get("serviceAccountName"), str):
            yield "ServiceAccount", node["serviceAccountName"]
        if node.get("kind") in ("RoleBinding", "ClusterRoleBinding"):
            yield node["roleRef"]["kind"], node["roleRef"]["name"]
            for subject in node["subjects"]:
                yield subject["kind"], subject["name"]
        if isinstance(node.get("ref"), dict) and {"kind", "name"} <= set(node["ref"]):
            yield node["ref"]["kind"], node["ref"]["name"]
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


# --- RBAC -----------------------------------------------------------------------------------------


def _rules_of(objects: dict[tuple[str, str], dict], account: str) -> list[dict]:
    rules = []
    for (kind, _), binding in objects.items():
        if kind in ("RoleBinding", "ClusterRoleBinding") and any(
            s["name"] == account for s in binding["subjects"]
        ):
            rules += objects[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]["rules"]
    return rules


def test_deployer_may_only_manage_inference_services(objects: dict[tuple[str, str], dict]) -> None:
    assert _rules_of(objects, "deployer") == [
        {
            "apiGroups": ["serving.kserve.io"],
            "resources": ["inferenceservices"],
            "verbs": ["get", "list", "watch", "create", "patch"],
        }
    ]


def test_selector_may_only_start_and_read_kfp_runs(objects: dict[tuple[str, str], dict]) -> None:
    rules = _rules_of(objects, "selector")
    assert {group for rule in rules for group in rule["apiGroups"]} == {"pipelines.kubeflow.org"}
    assert {verb for rule in rules for verb in rule["verbs"]} == {"get", "list", "create"}
    assert objects[("ServiceAccount", "selector")]["automountServiceAccountToken"] is False


@pytest.mark.parametrize("account", ["recorder", "frontend", "kfchain-predictor"])
def test_accounts_without_api_access(objects: dict[tuple[str, str], dict], account: str) -> None:
    assert _rules_of(objects, account) == []
    assert objects[("ServiceAccount", account)]["automountServiceAccountToken"] is False


def test_no_cluster_wide_or_wildcard_permissions(rendered: list[dict]) -> None:
    assert not [obj for obj in rendered if obj["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    for role in (obj for obj in rendered if obj["kind"] == "Role"):
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], role["metadata"]["name"]
            assert not {"delete", "deletecollection", "update", "escalate", "bind"} & set(rule["verbs"])


# --- serving --------------------------------------------------------------------------------------


def test_inference_service_serves_sklearn_from_the_model_pvc_and_autoscales(
    objects: dict[tuple[str, str], dict],
) -> None:
    predictor = objects[("InferenceService", "iris")]["spec"]["predictor"]
    model = predictor["model"]
    assert model["modelFormat"]["name"] == "sklearn"
    match = re.match(r"^pvc://([^/]+)/([^/]+)/([^/]+)$", model["storageUri"])
    assert match, model["storageUri"]
    assert ("PersistentVolumeClaim", match.group(1)) in objects
    assert match.group(2) == objects[("ConfigMap", "kfchain-config")]["data"]["KFCHAIN_MODEL_NAME"]
    assert 1 <= predictor["minReplicas"] <= predictor["maxReplicas"]
    assert predictor["scaleMetric"] == "concurrency" and predictor["scaleTarget"] > 0
    assert model["resources"]["requests"] and model["resources"]["limits"]


def test_kfchain_serving_runtime_runs_the_predictor_module_and_is_opt_in(
    objects: dict[tuple[str, str], dict],
) -> None:
    runtime = objects[("ServingRuntime", "kfchain-predictor")]
    assert runtime["metadata"]["annotations"]["kfchain.io/local"] == "true"
    (container,) = runtime["spec"]["containers"]
    assert container["command"] == ["python", "-m", "services.predictor"]
    assert importlib.util.find_spec("services.predictor.__main__") is not None
    assert container["image"] == IMAGE
    (model_format,) = runtime["spec"]["supportedModelFormats"]
    assert model_format["name"] == "sklearn" and model_format["autoSelect"] is False


def test_kfchain_serving_runtime_serves_the_mounted_model_on_the_cluster(
    objects: dict[tuple[str, str], dict],
) -> None:
    """KServe mounts the storageUri at /mnt/models; the runtime's cluster env puts the predictor in
    model-dir mode there, while its command and args (what knative.local runs) carry no model dir."""
    from services.predictor.settings import PredictorSettings

    (container,) = objects[("ServingRuntime", "kfchain-predictor")]["spec"]["containers"]
    cluster = PredictorSettings.from_args(container.get("args", []), _cluster_env(objects, container))
    assert (cluster.mode, str(cluster.model_dir)) == ("model-dir", "/mnt/models")
    assert "/mnt/models" not in " ".join(container["command"] + container.get("args", []))


# --- monitoring -----------------------------------------------------------------------------------


def test_pod_monitors_select_the_pods_the_stack_creates(objects: dict[tuple[str, str], dict]) -> None:
    services = objects[("PodMonitor", "kfchain-services")]["spec"]
    (expression,) = services["selector"]["matchExpressions"]
    assert expression["key"] == "serving.knative.dev/service"
    assert set(expression["values"]) == set(knative_services(objects))
    predictor = objects[("PodMonitor", "kfchain-predictor")]["spec"]
    assert predictor["selector"]["matchLabels"] == {"serving.kserve.io/inferenceservice": "iris"}
    for spec in (services, predictor):
        assert {e["port"] for e in spec["podMetricsEndpoints"]} == {"user-port", "http-usermetric"}


@pytest.fixture(scope="module")
def dashboards(objects: dict[tuple[str, str], dict]) -> dict[str, dict]:
    config_map = objects[("ConfigMap", "kfchain-grafana-dashboards")]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    return {key: json.loads(value) for key, value in config_map["data"].items()}


def _exprs(dashboard: dict) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def _metric_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_strings)
    without_labels = re.sub(r"\{[^}]*\}", "", without_ranges)
    without_groupings = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", without_labels)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_groupings))
    return {name for name in names if name not in PROMQL_WORDS and not re.fullmatch(r"[0-9.e]+", name)}


def test_metric_name_extraction_reads_promql() -> None:
    expr = 'histogram_quantile(0.99, sum by (service, le) (rate(kfchain_handler_latency_seconds_bucket{x=~"a|b"}[5m])))'
    assert _metric_names(expr) == {"kfchain_handler_latency_seconds_bucket"}


def test_dashboards_are_provisioned_with_the_panels_users_need(dashboards: dict[str, dict]) -> None:
    assert set(dashboards) == {"kfchain-serving.json", "kfchain-events.json"}
    titles = " | ".join(p["title"].lower() for d in dashboards.values() for p in d["panels"])
    for topic in ("requests/s", "latency p50 / p99", "error rate", "replicas per revision", "cpu per pod",
                  "memory per pod", "received/s by type", "dead letters", "consumer lag"):  # fmt: skip
        assert topic in titles, f"no dashboard panel about {topic!r}"
    for dashboard in dashboards.values():
        assert dashboard["uid"] and dashboard["title"]
        for panel in dashboard["panels"]:
            if panel["type"] != "row":
                assert panel["targets"], panel["title"]
                assert panel["datasource"]["uid"] == "${datasource}"


def test_dashboards_only_query_metrics_that_exist(dashboards: dict[str, dict]) -> None:
    used = {name for d in dashboards.values() for expr in _exprs(d) for name in _metric_names(expr)}
    unknown = used - KFCHAIN_METRICS - PLATFORM_METRICS
    assert not unknown, f"dashboards query metrics nobody exports: {sorted(unknown)}"


def test_dashboard_kfchain_metrics_are_defined_in_code(dashboards: dict[str, dict]) -> None:
    """Each kfchain_* series a dashboard reads is registered by some module of the project."""
    source = "\n".join(
        path.read_text()
        for folder in ("events", "services", "frontend", "knative", "pipelines")
        for path in (REPO / folder).rglob("*.py")
    )
    used = {name for d in dashboards.values() for expr in _exprs(d) for name in _metric_names(expr)}
    missing = []
    for name in sorted(n for n in used if n.startswith("kfchain_")):
        family = re.sub(r"_(total|bucket|count|sum|created|info)$", "", name)
        if not any(re.search(rf"""["']{re.escape(n)}(_total)?["']""", source) for n in (name, family)):
            missing.append(name)
    assert not missing, f"dashboards read kfchain metrics no module defines: {missing}"


# --- load Job -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def load_objects() -> dict[tuple[str, str], dict]:
    return {(obj["kind"], obj["metadata"]["name"]): obj for obj in render(LOAD_K8S)}


def test_hey_job_defaults_and_payload(load_objects: dict[tuple[str, str], dict]) -> None:
    settings = load_objects[("ConfigMap", "hey-settings")]["data"]
    assert (settings["HEY_DURATION"], settings["HEY_CONCURRENCY"]) == ("1m", "500")
    assert settings["HEY_URL"].startswith("http://iris.kfchain.svc.cluster.local/v1/models/iris:predict")
    payload = json.loads(load_objects[("ConfigMap", "hey-payload")]["data"]["payload.json"])
    assert payload["instances"] and all(len(row) == 4 for row in payload["instances"])
    job = load_objects[("Job", "hey-load")]["spec"]
    assert job["backoffLimit"] == 0 and job["activeDeadlineSeconds"] > 0
    (container,) = job["template"]["spec"]["containers"]
    variables = set(re.findall(r"\$\((\w+)\)", " ".join(container["args"])))
    assert variables == set(settings), "every $(VAR) in the Job's args comes from hey-settings"


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.requests.append((self.path, self.headers.get("Content-Type", ""), body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.skipif(shutil.which("hey") is None, reason="Debian's hey is not installed (apt-get install hey)")
def test_hey_job_arguments_drive_real_hey(load_objects: dict[tuple[str, str], dict], tmp_path: Path) -> None:
    """The Job's argument list, with its variables filled in, is a hey command that POSTs the payload."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        payload_file = tmp_path / "payload.json"
        payload_file.write_text(load_objects[("ConfigMap", "hey-payload")]["data"]["payload.json"])
        values = {
            "HEY_DURATION": "1s",
            "HEY_CONCURRENCY": "2",
            "HEY_RATE": "20",
            "HEY_URL": f"http://127.0.0.1:{server.server_port}/v1/models/iris:predict",
        }
        (container,) = load_objects[("Job", "hey-load")]["spec"]["template"]["spec"]["containers"]
        mount = container["volumeMounts"][0]["mountPath"]
        args = [re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], arg) for arg in container["args"]]
        args = [str(payload_file) if arg.startswith(mount + "/") else arg for arg in args]
        result = subprocess.run(["hey", *args], capture_output=True, text=True, timeout=30)
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    assert "Summary:" in result.stdout and "[200]" in result.stdout
    assert _Recorder.requests
    path, content_type, body = _Recorder.requests[0]
    assert (path, content_type) == ("/v1/models/iris:predict", "application/json")
    assert json.loads(body) == json.loads(payload_file.read_text())


# --- negative: broken manifests are rejected with the field named ---------------------------------


def _service(objects: dict[tuple[str, str], dict]) -> dict:
    return json.loads(json.dumps(knative_services(objects)["selector"]))


def test_misspelled_container_field_is_named(objects: dict[tuple[str, str], dict]) -> None:
    service = _service(objects)
    service["spec"]["template"]["spec"]["containers"][0]["comand"] = ["python"]
    with pytest.raises(ManifestError) as error:
        validate(service, source="knative/services/selector.yaml")
    assert error.value.field == "spec.template.spec.containers[0].comand"
    assert "knative/services/selector.yaml" in str(error.value) and "Service/selector" in str(error.value)


def test_wrong_enum_in_inference_service_is_named(objects: dict[tuple[str, str], dict]) -> None:
    isvc = json.loads(json.dumps(objects[("InferenceService", "iris")]))
    isvc["spec"]["predictor"]["scaleMetric"] = "latency"
    with pytest.raises(ManifestError, match="'latency' is not one of") as error:
        validate(isvc)
    assert error.value.field == "spec.predictor.scaleMetric"


def test_unquoted_number_in_config_map_is_named() -> None:
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "hey-settings"},
        "data": {"HEY_CONCURRENCY": 500},
    }
    with pytest.raises(ManifestError) as error:
        validate(config_map)
    assert error.value.field == "data.HEY_CONCURRENCY"


def test_job_container_without_name_is_rejected(load_objects: dict[tuple[str, str], dict]) -> None:
    job = json.loads(json.dumps(load_objects[("Job", "hey-load")]))
    del job["spec"]["template"]["spec"]["containers"][0]["name"]
    with pytest.raises(ManifestError) as error:
        validate(job)
    assert error.value.field == "spec.template.spec.containers[0].name"


def test_trigger_subscriber_needs_a_known_shape(objects: dict[tuple[str, str], dict]) -> None:
    trigger = json.loads(json.dumps(objects[("Trigger", "record-all")]))
    trigger["spec"]["subscriber"]["ref"]["nmae"] = trigger["spec"]["subscriber"]["ref"].pop("name")
    with pytest.raises(ManifestError) as error:
        validate(trigger)
    assert error.value.field.startswith("spec.subscriber.ref.")


def test_pod_monitor_without_endpoints_is_rejected(objects: dict[tuple[str, str], dict]) -> None:
    monitor = json.loads(json.dumps(objects[("PodMonitor", "kfchain-services")]))
    monitor["spec"]["podMetricsEndpoints"] = []
    with pytest.raises(ManifestError) as error:
        validate(monitor)
    assert error.value.field == "spec.podMetricsEndpoints"


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ManifestError, match="no schema for Brokr"):
        validate({"apiVersion": "eventing.knative.dev/v1", "kind": "Brokr", "metadata": {"name": "x"}})


def test_broken_file_names_the_file_and_the_field(tmp_path: Path) -> None:
    broken = tmp_path / "trigger.yaml"
    broken.write_text(
        (KNATIVE / "eventing" / "trigger-record-all.yaml")
        .read_text()
        .replace("apiVersion: serving", "apiVerison: serving")
    )
    with pytest.raises(ManifestError) as error:
        crd_schema.validate_file(broken)
    assert error.value.source == str(broken)
    assert error.value.field == "spec.subscriber.ref.apiVerison"


# --- the renderer ---------------------------------------------------------------------------------


def _write(path: Path, documents: list[dict] | dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(documents if isinstance(documents, list) else [documents]))
    return path


def test_overlay_moves_the_stack_to_another_namespace(tmp_path: Path) -> None:
    _write(
        tmp_path / "kustomization.yaml",
        {"namespace": "team-a", "resources": [str(KNATIVE)], "commonAnnotations": {"owner": "team-a"}},
    )
    objects = render(tmp_path)
    assert {obj["metadata"].get("namespace") for obj in objects if obj["kind"] != "Namespace"} == {"team-a"}
    binding = next(obj for obj in objects if obj["kind"] == "RoleBinding")
    assert binding["subjects"][0]["namespace"] == "team-a"
    assert all(obj["metadata"]["annotations"]["owner"] == "team-a" for obj in objects)


def test_image_override_reaches_every_kfchain_container(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        kustomize_main([str(KNATIVE), "--image", "ghcr.io/kfchain/kfchain=registry.example/me/kfchain:v2"])
        == 0
    )
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    images = re.findall(r"image: (\S+)", yaml.safe_dump_all(documents))
    assert images and set(images) == {"registry.example/me/kfchain:v2"}


def test_unsupported_kustomize_field_is_named(tmp_path: Path) -> None:
    file = _write(tmp_path / "kustomization.yaml", {"resources": [], "patches": [{"path": "p.yaml"}]})
    with pytest.raises(KustomizeError) as error:
        render(tmp_path)
    assert (error.value.source, error.value.field) == (str(file.resolve()), "patches")


def test_missing_resource_file_is_named(tmp_path: Path) -> None:
    _write(tmp_path / "kustomization.yaml", {"resources": ["namespace.yaml", "nope.yaml"]})
    _write(tmp_path / "namespace.yaml", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
    with pytest.raises(KustomizeError, match="'nope.yaml' does not exist") as error:
        render(tmp_path)
    assert error.value.field == "resources[1]"


def test_resource_without_name_is_named(tmp_path: Path) -> None:
    _write(tmp_path / "kustomization.yaml", {"resources": ["cm.yaml"]})
    _write(tmp_path / "cm.yaml", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})
    with pytest.raises(KustomizeError) as error:
        render(tmp_path)
    assert error.value.source.endswith("cm.yaml") and error.value.field == "document 0.metadata.name"


def test_duplicate_objects_are_rejected(tmp_path: Path) -> None:
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "same"}}
    _write(tmp_path / "kustomization.yaml", {"resources": ["a.yaml", "b.yaml"]})
    _write(tmp_path / "a.yaml", config_map)
    _write(tmp_path / "b.yaml", config_map)
    with pytest.raises(KustomizeError, match="defined twice"):
        render(tmp_path)


def test_generated_config_map_needs_stable_names(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    _write(tmp_path / "kustomization.yaml", {"configMapGenerator": [{"name": "g", "files": ["a.json"]}]})
    with pytest.raises(KustomizeError, match="disableNameSuffixHash"):
        render(tmp_path)


# --- the deployer's InferenceService agrees with the manifest -----------------------------------


def _deployer_env(objects: dict[tuple[str, str], dict]) -> dict[str, str]:
    (container,) = knative_services(objects)["deployer"]["spec"]["template"]["spec"]["containers"]
    return _cluster_env(objects, container)


def test_deployer_rolls_out_the_inference_service_the_manifest_declares(
    objects: dict[tuple[str, str], dict],
) -> None:
    """The first rollout must not silently change the scaling or resources set in knative/serving."""
    from services.rollout.kserve import KServeRolloutSettings, build_inference_service, to_manifest

    env = _deployer_env(objects)
    assert env["KFCHAIN_ROLLOUT_BACKEND"] == "kserve"
    declared = objects[("InferenceService", "iris")]
    settings = KServeRolloutSettings.from_env(env)
    storage_uri = declared["spec"]["predictor"]["model"]["storageUri"]
    built = to_manifest(build_inference_service(settings, env["KFCHAIN_MODEL_NAME"], "v1", storage_uri))
    validate(built, source="services.rollout.kserve.build_inference_service")
    assert (built["metadata"]["name"], built["metadata"]["namespace"]) == (
        declared["metadata"]["name"],
        declared["metadata"]["namespace"],
    )
    # The kserve SDK's V1beta1ModelSpec always carries the container name, "" by default; KServe
    # defaults an empty one to kserve-container, so it means the same as leaving it out.
    if built["spec"]["predictor"]["model"].get("name") == "":
        del built["spec"]["predictor"]["model"]["name"]
    assert built["spec"]["predictor"] == declared["spec"]["predictor"]
    class_key = "autoscaling.knative.dev/class"  # Serverless mode's autoscaler (KPA for concurrency)
    assert built["metadata"]["annotations"][class_key] == declared["metadata"]["annotations"][class_key]


def test_crd_folder_can_be_overridden_and_a_missing_one_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFCHAIN_CRDS_DIR", str(tmp_path))
    assert crd_schema.crds_dir() == tmp_path
    monkeypatch.setenv("KFCHAIN_CRDS_DIR", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="KFCHAIN_CRDS_DIR"):
        crd_schema.crds_dir()
