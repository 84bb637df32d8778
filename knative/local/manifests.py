"""Reads the Knative manifests the local runtime acts on, into small typed values.

The tree is read by following ``kustomization.yaml`` ``resources`` (files and folders), so every
object keeps the file it came from and an error can name that file and the field. A folder without
a kustomization is read as every ``*.yaml`` under it. (``knative.kustomize.render`` renders the same
tree for a cluster; locally the namespace, labels and images it adds do not matter.)

What is read: Broker (``kafka.eventing.knative.dev/external.topic``, ``spec.delivery`` defaults),
Trigger, KafkaSink, KafkaSource, Knative Service and KServe ServingRuntime. Other Kubernetes kinds
(RBAC, ConfigMaps, PVCs, InferenceServices, monitoring) are accepted and ignored; an unknown kind in
a Knative API group, a document without ``apiVersion``/``kind`` or a bad field is a ``ManifestError``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from knative.local.durations import parse_duration
from knative.local.filters import Filter, FilterError, trigger_filter

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
EXTERNAL_TOPIC = "kafka.eventing.knative.dev/external.topic"
DELIVERY_ORDER = "kafka.eventing.knative.dev/delivery.order"
LOCAL = "kfchain.io/local"
LOCAL_PORT = "kfchain.io/local-port"
BACKOFF_POLICIES = ("exponential", "linear")
DEFAULT_BACKOFF_DELAY_S = 0.2
# API groups whose kinds the runtime must understand; anything else is not its business.
_KNATIVE_GROUPS = (
    "eventing.knative.dev",
    "sources.knative.dev",
    "serving.knative.dev",
    "messaging.knative.dev",
)
_KNOWN = {
    ("eventing.knative.dev", "Broker"),
    ("eventing.knative.dev", "Trigger"),
    ("eventing.knative.dev", "KafkaSink"),
    ("eventing.knative.dev", "EventType"),
    ("sources.knative.dev", "KafkaSource"),
    ("serving.knative.dev", "Service"),
    ("serving.kserve.io", "ServingRuntime"),
}


class ManifestError(ValueError):
    """A manifest the runtime cannot use; the message names the file, the object and the field."""

    def __init__(self, origin: str, field: str, reason: str) -> None:
        self.origin = origin
        self.field = field
        self.reason = reason
        super().__init__(f"{origin}: {field}: {reason}")


@dataclass(frozen=True)
class Document:
    """One YAML document and where it came from."""

    file: Path
    index: int
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body.get("kind"))

    @property
    def name(self) -> str:
        return str((self.body.get("metadata") or {}).get("name"))

    @property
    def origin(self) -> str:
        suffix = f" (document {self.index + 1})" if self.index else ""
        return f"{self.file}{suffix} {self.kind}/{self.name}"

    @property
    def annotations(self) -> dict[str, str]:
        return dict((self.body.get("metadata") or {}).get("annotations") or {})

    def error(self, field: str, reason: str) -> ManifestError:
        return ManifestError(self.origin, field, reason)


@dataclass(frozen=True)
class Ref:
    api_version: str
    kind: str
    name: str


@dataclass(frozen=True)
class Destination:
    """A Knative Destination: ``ref`` (resolved by the runtime) and/or ``uri`` (absolute, or a path on ref)."""

    ref: Ref | None = None
    uri: str | None = None


@dataclass(frozen=True)
class DeliverySpec:
    """``spec.delivery`` (eventing duck v1 DeliverySpec)."""

    retry: int = 0
    backoff_policy: str = "exponential"
    backoff_delay_s: float = DEFAULT_BACKOFF_DELAY_S
    timeout_s: float | None = None
    dead_letter_sink: Destination | None = None


@dataclass(frozen=True)
class Broker:
    name: str
    topic: str | None
    delivery: DeliverySpec | None
    origin: str


@dataclass(frozen=True)
class Trigger:
    name: str
    broker: str
    filter: Filter
    subscriber: Destination
    delivery: DeliverySpec | None
    ordered: bool
    origin: str


@dataclass(frozen=True)
class KafkaSource:
    name: str
    topics: tuple[str, ...]
    consumer_group: str
    sink: Destination
    delivery: DeliverySpec | None
    ordered: bool
    origin: str


@dataclass(frozen=True)
class KafkaSink:
    name: str
    topic: str
    origin: str


@dataclass(frozen=True)
class Workload:
    """A process to run locally: a Knative Service or a ServingRuntime's first container."""

    kind: str
    name: str
    command: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    container_port: int | None
    readiness_path: str | None
    local: bool | None  # the kfchain.io/local annotation, None when absent
    local_port: int | None  # the kfchain.io/local-port annotation
    origin: str


@dataclass(frozen=True)
class Manifests:
    root: Path
    brokers: dict[str, Broker] = field(default_factory=dict)
    triggers: list[Trigger] = field(default_factory=list)
    sources: list[KafkaSource] = field(default_factory=list)
    sinks: dict[str, KafkaSink] = field(default_factory=dict)
    services: dict[str, Workload] = field(default_factory=dict)
    runtimes: dict[str, Workload] = field(default_factory=dict)


# -- reading files ---------------------------------------------------------------------------------
def _kustomization(folder: Path) -> Path | None:
    return next((folder / n for n in KUSTOMIZATION_FILES if (folder / n).is_file()), None)


def _read_yaml(file: Path) -> list[dict[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(file.read_text()) if d is not None]
    except yaml.YAMLError as exc:
        raise ManifestError(str(file), "yaml", f"not valid YAML ({exc})") from None
    except OSError as exc:
        raise ManifestError(str(file), "file", f"cannot be read ({exc.strerror})") from None
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise ManifestError(
                f"{file} (document {i + 1})", "document", "must be a YAML map (a Kubernetes object)"
            )
    return docs


def _files(root: Path, seen: set[Path]) -> Iterable[Path]:
    kustomization = _kustomization(root)
    if kustomization is None:
        yield from sorted(
            p
            for p in root.rglob("*.y*ml")
            if p.suffix in (".yaml", ".yml") and p.name not in KUSTOMIZATION_FILES
        )
        return
    (spec,) = _read_yaml(kustomization) or [{}]
    resources = spec.get("resources") or []
    if not isinstance(resources, list):
        raise ManifestError(str(kustomization), "resources", "must be a list of files and folders")
    for entry in resources:
        if not isinstance(entry, str):
            raise ManifestError(str(kustomization), "resources", f"entries must be paths, got {entry!r}")
        if "://" in entry or entry.startswith("github.com/"):
            continue  # a remote base: nothing the local runtime runs
        path = (root / entry).resolve()
        if path in seen:
            continue
        seen.add(path)
        if path.is_dir():
            yield from _files(path, seen)
        elif path.is_file():
            yield path
        else:
            raise ManifestError(
                str(kustomization), "resources", f"{entry!r} does not exist (looked for {path})"
            )


def load_documents(root: Path | str) -> list[Document]:
    """Every Kubernetes object under ``root`` (a folder with a kustomization, or any folder/file)."""
    root = Path(root)
    if not root.exists():
        raise ManifestError(
            str(root), "path", "does not exist; pass the folder with the manifests (default knative/)"
        )
    files = [root] if root.is_file() else list(_files(root, set()))
    documents = []
    for file in files:
        for i, body in enumerate(_read_yaml(file)):
            doc = Document(file, i, body)
            for key in ("apiVersion", "kind"):
                if not isinstance(body.get(key), str) or not body[key]:
                    raise ManifestError(
                        f"{file} (document {i + 1})",
                        key,
                        "is missing; every manifest needs apiVersion and kind",
                    )
            if not isinstance(body.get("metadata"), dict) or not body["metadata"].get("name"):
                raise doc.error("metadata.name", "is missing")
            documents.append(doc)
    return documents


# -- fields ----------------------------------------------------------------------------------------
def _get(doc: Document, path: str, *, required: bool = False, kind: type | tuple[type, ...] = object) -> Any:
    node: Any = doc.body
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
        if node is None:
            break
    if node is None:
        if required:
            raise doc.error(path, "is required")
        return None
    if not isinstance(node, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise doc.error(path, f"must be a {names}, got {node!r:.80}")
    return node


def _destination(doc: Document, value: Any, path: str) -> Destination:
    if not isinstance(value, Mapping):
        raise doc.error(path, "must be a map with `ref` and/or `uri`")
    ref, uri = value.get("ref"), value.get("uri")
    if ref is None and not uri:
        raise doc.error(path, "needs `ref` (apiVersion, kind, name) or `uri`")
    parsed_ref = None
    if ref is not None:
        if not isinstance(ref, Mapping):
            raise doc.error(f"{path}.ref", "must be a map with apiVersion, kind and name")
        for key in ("kind", "name"):
            if not isinstance(ref.get(key), str) or not ref[key]:
                raise doc.error(f"{path}.ref.{key}", "is required")
        parsed_ref = Ref(str(ref.get("apiVersion") or ""), ref["kind"], ref["name"])
    if uri is not None and not isinstance(uri, str):
        raise doc.error(f"{path}.uri", f"must be a string, got {uri!r}")
    if uri and parsed_ref is None and not uri.startswith(("http://", "https://")):
        raise doc.error(f"{path}.uri", f"{uri!r} must be an absolute http(s) URL when there is no ref")
    return Destination(parsed_ref, uri or None)


def _delivery(doc: Document, path: str) -> DeliverySpec | None:
    spec = _get(doc, path, kind=Mapping)
    if spec is None:
        return None
    retry = spec.get("retry", 0)
    if not isinstance(retry, int) or isinstance(retry, bool) or retry < 0:
        raise doc.error(f"{path}.retry", f"must be a whole number >= 0, got {retry!r}")
    policy = spec.get("backoffPolicy", "exponential")
    if policy not in BACKOFF_POLICIES:
        raise doc.error(f"{path}.backoffPolicy", f"must be exponential or linear, got {policy!r}")
    delays: dict[str, float | None] = {}
    for key in ("backoffDelay", "timeout"):
        raw = spec.get(key)
        try:
            delays[key] = parse_duration(raw) if raw is not None else None
        except ValueError as exc:
            raise doc.error(f"{path}.{key}", str(exc)) from None
    if delays["timeout"] == 0:
        raise doc.error(f"{path}.timeout", "must be greater than zero")
    sink = spec.get("deadLetterSink")
    backoff = delays["backoffDelay"]
    return DeliverySpec(
        retry=retry,
        backoff_policy=policy,
        backoff_delay_s=DEFAULT_BACKOFF_DELAY_S if backoff is None else backoff,
        timeout_s=delays["timeout"],
        dead_letter_sink=_destination(doc, sink, f"{path}.deadLetterSink") if sink is not None else None,
    )


def _ordered(doc: Document, default: str) -> bool:
    order = doc.annotations.get(DELIVERY_ORDER, default)
    if order not in ("ordered", "unordered"):
        raise doc.error(
            f"metadata.annotations[{DELIVERY_ORDER}]", f"must be ordered or unordered, got {order!r}"
        )
    return order == "ordered"


def _workload(doc: Document, containers_path: str) -> Workload:
    containers = _get(doc, containers_path, required=True, kind=list)
    if not containers or not isinstance(containers[0], Mapping):
        raise doc.error(containers_path, "needs at least one container")
    first = containers[0]
    where = f"{containers_path}[0]"
    command = list(first.get("command") or []) + list(first.get("args") or [])
    if not command or not all(isinstance(c, str) for c in command):
        raise doc.error(f"{where}.command", "needs the command to run (e.g. [python, -m, services.selector])")
    env = []
    for i, item in enumerate(first.get("env") or []):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise doc.error(f"{where}.env[{i}].name", "is required")
        if "value" in item:  # valueFrom (secrets, field refs) only exists on a cluster
            env.append((item["name"], str(item["value"])))
    ports = first.get("ports") or []
    port = ports[0].get("containerPort") if ports and isinstance(ports[0], Mapping) else None
    probe = (first.get("readinessProbe") or {}).get("httpGet") or {}
    annotations = doc.annotations
    local_raw = annotations.get(LOCAL)
    if local_raw is not None and str(local_raw).lower() not in ("true", "false"):
        raise doc.error(f"metadata.annotations[{LOCAL}]", f'must be "true" or "false", got {local_raw!r}')
    local_port = annotations.get(LOCAL_PORT)
    if local_port is not None and not str(local_port).isdigit():
        raise doc.error(f"metadata.annotations[{LOCAL_PORT}]", f"must be a port number, got {local_port!r}")
    return Workload(
        kind=doc.kind,
        name=doc.name,
        command=tuple(command),
        env=tuple(env),
        container_port=int(port) if isinstance(port, int) else None,
        readiness_path=probe.get("path") if isinstance(probe.get("path"), str) else None,
        local=None if local_raw is None else str(local_raw).lower() == "true",
        local_port=int(local_port) if local_port is not None else None,
        origin=doc.origin,
    )


def _parse(doc: Document, manifests: Manifests) -> None:
    group = doc.body["apiVersion"].split("/")[0] if "/" in doc.body["apiVersion"] else ""
    if (group, doc.kind) not in _KNOWN:
        if group in _KNATIVE_GROUPS:
            raise doc.error(
                "kind", f"{doc.body['apiVersion']} {doc.kind} is not supported by the local runtime"
            )
        return  # RBAC, ConfigMaps, PVCs, InferenceServices...: nothing to run locally
    name = doc.name
    if doc.kind == "Broker":
        manifests.brokers[name] = Broker(
            name, doc.annotations.get(EXTERNAL_TOPIC), _delivery(doc, "spec.delivery"), doc.origin
        )
    elif doc.kind == "Trigger":
        spec = _get(doc, "spec", required=True, kind=Mapping)
        try:
            filter_ = trigger_filter(spec)
        except FilterError as exc:
            raise doc.error(exc.field, exc.reason) from None
        manifests.triggers.append(
            Trigger(
                name=name,
                broker=_get(doc, "spec.broker", required=True, kind=str),
                filter=filter_,
                subscriber=_destination(doc, _get(doc, "spec.subscriber", required=True), "spec.subscriber"),
                delivery=_delivery(doc, "spec.delivery"),
                ordered=_ordered(doc, "unordered"),  # the Kafka Broker's default
                origin=doc.origin,
            )
        )
    elif doc.kind == "KafkaSink":
        manifests.sinks[name] = KafkaSink(name, _get(doc, "spec.topic", required=True, kind=str), doc.origin)
    elif doc.kind == "KafkaSource":
        topics = _get(doc, "spec.topics", required=True, kind=list)
        if not topics or not all(isinstance(t, str) and t for t in topics):
            raise doc.error("spec.topics", "must be a non-empty list of topic names")
        manifests.sources.append(
            KafkaSource(
                name=name,
                topics=tuple(topics),
                consumer_group=_get(doc, "spec.consumerGroup", kind=str) or f"kfchain.source.{name}",
                sink=_destination(doc, _get(doc, "spec.sink", required=True), "spec.sink"),
                delivery=_delivery(doc, "spec.delivery"),
                ordered=_ordered(doc, "ordered"),
                origin=doc.origin,
            )
        )
    elif doc.kind == "Service":
        manifests.services[name] = _workload(doc, "spec.template.spec.containers")
    elif doc.kind == "ServingRuntime":
        manifests.runtimes[name] = _workload(doc, "spec.containers")


def _check_references(manifests: Manifests) -> None:
    for trigger in manifests.triggers:
        if trigger.broker not in manifests.brokers:
            known = ", ".join(manifests.brokers) or "none"
            raise ManifestError(
                trigger.origin, "spec.broker", f"no Broker named {trigger.broker!r} (known: {known})"
            )
    deliveries = [(t.origin, t.delivery) for t in manifests.triggers] + [
        (s.origin, s.delivery) for s in manifests.sources
    ]
    deliveries += [(b.origin, b.delivery) for b in manifests.brokers.values()]
    for origin, delivery in deliveries:
        ref = delivery.dead_letter_sink.ref if delivery and delivery.dead_letter_sink else None
        if ref and ref.kind == "KafkaSink" and ref.name not in manifests.sinks:
            raise ManifestError(
                origin, "spec.delivery.deadLetterSink.ref.name", f"no KafkaSink named {ref.name!r}"
            )


def load_manifests(root: Path | str) -> Manifests:
    """Parse every manifest under ``root``; raise ``ManifestError`` naming the file and field on a problem."""
    manifests = Manifests(root=Path(root))
    for doc in load_documents(root):
        _parse(doc, manifests)
    _check_references(manifests)
    return manifests
