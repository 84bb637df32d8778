"""Offline validation of Kubernetes manifests against real schemas.

- Custom resources (Knative, KServe, KafkaSink/KafkaSource) are checked against the
  ``openAPIV3Schema`` of the vendored upstream CRDs in ``shared/crds`` (``../shared/crds``
  relative to the repository root; override with ``KFCHAIN_CRDS_DIR``). The structural schema
  is turned into JSON Schema the way the API server reads it with ``--validate=strict``:
  unknown fields are errors except under ``x-kubernetes-preserve-unknown-fields``,
  ``x-kubernetes-int-or-string`` accepts integer or string, ``nullable`` accepts null, and
  ``metadata`` is checked as a real ``ObjectMeta``. CEL rules (``x-kubernetes-validations``)
  are not evaluated; none of the vendored CRDs carries one.
- Core kinds (ConfigMap, ServiceAccount, RBAC, PVC, Job, Deployment, Service, ...) are
  checked against the strict Kubernetes JSON schemas shipped by the ``kubernetes-validate``
  package (no network), for Kubernetes ``KUBERNETES_VERSION``.
- ``monitoring.coreos.com/v1`` ServiceMonitor and PodMonitor have no CRD in ``shared/crds``;
  they get a minimal hand-written structural schema (the fields kfchain uses, unknown keys
  rejected), which is weaker than the upstream CRD.

Every failure raises :class:`ManifestError` naming the file, the object and the field path.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.33"
_DEFINITIONS_ID = "https://kubernetes.io/api/_definitions.json"
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the KServe CRD is 2 MB: use libyaml
_OBJECT_META_REF = _DEFINITIONS_ID + "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


class ManifestError(ValueError):
    """A manifest does not match its schema; names the file, the object and the field."""

    def __init__(self, source: str, obj: str, field: str, message: str) -> None:
        self.source = source
        self.obj = obj
        self.field = field
        self.message = message
        super().__init__(f"{source}: {obj}: {field or '<root>'}: {message}")


def crds_dir() -> Path:
    """Directory of vendored CRDs: ``$KFCHAIN_CRDS_DIR`` or ``<repo>/../shared/crds``."""
    override = os.environ.get("KFCHAIN_CRDS_DIR")
    path = Path(override) if override else REPO_ROOT.parent / "shared" / "crds"
    if not path.is_dir():
        raise FileNotFoundError(
            f"CRD directory {path} does not exist; set KFCHAIN_CRDS_DIR to the folder holding the "
            "vendored CRD YAML (shared/crds)"
        )
    return path


def validate(manifest: dict, source: str = "<manifest>") -> None:
    """Validate one Kubernetes object; raise :class:`ManifestError` naming ``source`` and the field."""
    if not isinstance(manifest, dict):
        raise ManifestError(source, "?", "", f"expected a mapping, got {type(manifest).__name__}")
    api_version, kind = manifest.get("apiVersion"), manifest.get("kind")
    name = (
        (manifest.get("metadata") or {}).get("name", "?")
        if isinstance(manifest.get("metadata"), dict)
        else "?"
    )
    obj = f"{kind}/{name}"
    if not isinstance(api_version, str) or not api_version:
        raise ManifestError(source, obj, "apiVersion", "missing or not a string")
    if not isinstance(kind, str) or not kind:
        raise ManifestError(source, obj, "kind", "missing or not a string")
    validator = _validator_for(api_version, kind)
    if validator is None:
        raise ManifestError(
            source,
            obj,
            "kind",
            f"no schema for {kind} in {api_version}: not a Kubernetes core kind, not in the CRDs under "
            f"{crds_dir()}, not a ServiceMonitor/PodMonitor; fix apiVersion/kind",
        )
    errors = sorted(
        validator.iter_errors(manifest), key=lambda e: (len(e.absolute_path), str(e.absolute_path))
    )
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        raise ManifestError(source, obj, _field_path(error), _message(error))


def validate_file(path: Path | str) -> list[dict]:
    """Validate every document of a YAML file; return the documents."""
    path = Path(path)
    documents = load_documents(path)
    for document in documents:
        validate(document, source=str(path))
    return documents


def load_documents(path: Path) -> list[dict]:
    """Non-empty YAML documents of ``path``; a YAML syntax error names the file."""
    try:
        return [doc for doc in yaml.load_all(path.read_text(), Loader=_YAML_LOADER) if doc is not None]
    except yaml.YAMLError as exc:
        raise ManifestError(str(path), "?", "", f"not valid YAML: {exc}") from exc


# --- schema lookup -----------------------------------------------------------------------------


def _validator_for(api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
    schema = _crd_schemas().get((api_version, kind))
    if schema is None:
        schema = _MONITORING_SCHEMAS.get((api_version, kind))
    if schema is None:
        schema = _core_schema(api_version, kind)
    if schema is None:
        return None
    return jsonschema.Draft202012Validator(schema, registry=_registry())


@functools.cache
def _registry() -> Registry:
    definitions = json.loads((_core_schema_dir() / "_definitions.json").read_text())
    return Resource.from_contents(definitions) @ Registry()


def _core_schema_dir() -> Path:
    try:
        import kubernetes_validate  # test-only dependency, imported on first use
    except ImportError as exc:  # pragma: no cover - environment problem, not a test outcome
        raise ImportError(
            "core Kubernetes kinds are validated with the schemas of the 'kubernetes-validate' package; "
            "pip install kubernetes-validate"
        ) from exc
    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    return base / f"v{KUBERNETES_VERSION}.0-local-strict"


@functools.cache
def _core_schema(api_version: str, kind: str) -> dict | None:
    group_version = api_version.split("/")
    if len(group_version) == 1:
        file_stem = f"{kind.lower()}-{api_version}"
    else:
        group, version = group_version
        file_stem = f"{kind.lower()}-{group.split('.')[0]}-{version}"
    path = _core_schema_dir() / f"{file_stem}.json"
    if not path.is_file():
        return None
    schema = json.loads(path.read_text())
    # kubernetes-validate also lets apiVersion/kind be null; a manifest must carry them.
    schema.setdefault("required", [])
    schema["required"] = sorted({*schema["required"], "apiVersion", "kind", "metadata"})
    return schema


@functools.cache
def _crd_schemas() -> dict[tuple[str, str], dict]:
    schemas: dict[tuple[str, str], dict] = {}
    for path in sorted(crds_dir().rglob("*.yaml")):
        for crd in load_documents(path):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if not version.get("served", True):
                    continue
                schema = _structural_to_json_schema(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                schema["properties"]["apiVersion"] = {"const": f"{group}/{version['name']}"}
                schema["properties"]["kind"] = {"const": kind}
                schema["properties"]["metadata"] = {"$ref": _OBJECT_META_REF}
                schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
                schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
                schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def _structural_to_json_schema(node: Any) -> Any:
    """Read a CRD structural schema as strict JSON Schema (see module docstring)."""
    if not isinstance(node, dict):
        return node
    for key in ("properties", "patternProperties"):
        if isinstance(node.get(key), dict):
            node[key] = {k: _structural_to_json_schema(v) for k, v in node[key].items()}
    for key in ("additionalProperties", "items", "not"):
        if isinstance(node.get(key), dict):
            node[key] = _structural_to_json_schema(node[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            node[key] = [_structural_to_json_schema(item) for item in node[key]]
    if node.get("x-kubernetes-int-or-string"):
        node.pop("type", None)
        node.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("x-kubernetes-embedded-resource"):
        props = node.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    preserve = node.get("x-kubernetes-preserve-unknown-fields", False)
    if node.get("type") == "object" and "additionalProperties" not in node and not preserve:
        # Structural schemas prune unknown fields; strict validation reports them instead.
        node["additionalProperties"] = False
    if node.get("nullable") and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    return node


# --- ServiceMonitor / PodMonitor (no CRD vendored: minimal structural check) ------------------

_LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
_RELABELING = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "sourceLabels": {"type": "array", "items": {"type": "string"}},
        "separator": {"type": "string"},
        "targetLabel": {"type": "string"},
        "regex": {"type": "string"},
        "modulus": {"type": "integer"},
        "replacement": {"type": "string"},
        "action": {"type": "string"},
    },
}
_ENDPOINT_PROPERTIES = {
    "path": {"type": "string", "pattern": "^/"},
    "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
    "interval": {"type": "string", "pattern": "^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
    "scrapeTimeout": {"type": "string", "pattern": "^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
    "honorLabels": {"type": "boolean"},
    "relabelings": {"type": "array", "items": _RELABELING},
    "metricRelabelings": {"type": "array", "items": _RELABELING},
}


def _monitor_schema(kind: str, endpoints_key: str, port_keys: dict) -> dict:
    endpoint = {
        "type": "object",
        "additionalProperties": False,
        "properties": {**_ENDPOINT_PROPERTIES, **port_keys},
        "anyOf": [{"required": [key]} for key in port_keys],
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": kind},
            "metadata": {"$ref": _OBJECT_META_REF},
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["selector", endpoints_key],
                "properties": {
                    "selector": _LABEL_SELECTOR,
                    "namespaceSelector": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "any": {"type": "boolean"},
                            "matchNames": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                    "jobLabel": {"type": "string"},
                    "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                    "targetLabels": {"type": "array", "items": {"type": "string"}},
                    endpoints_key: {"type": "array", "minItems": 1, "items": endpoint},
                },
            },
        },
    }


_MONITORING_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _monitor_schema(
        "ServiceMonitor",
        "endpoints",
        {"port": {"type": "string"}, "targetPort": {"anyOf": [{"type": "integer"}, {"type": "string"}]}},
    ),
    ("monitoring.coreos.com/v1", "PodMonitor"): _monitor_schema(
        "PodMonitor",
        "podMetricsEndpoints",
        {
            "port": {"type": "string"},
            "portNumber": {"type": "integer", "minimum": 1, "maximum": 65535},
            "targetPort": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        },
    ),
}


# --- error reporting ------------------------------------------------------------------------------


def _field_path(error: jsonschema.ValidationError) -> str:
    parts = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        unexpected = sorted(key for key in error.instance if key not in known)
        if unexpected:
            parts.append(unexpected[0])
    elif error.validator == "required" and isinstance(error.validator_value, list):
        missing = [key for key in error.validator_value if key not in (error.instance or {})]
        if missing:
            parts.append(missing[0])
    return _join(parts)


def _join(parts: list[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return f"unknown field ({error.message}); check the spelling against the schema"
    if error.validator == "required":
        return f"required field missing ({error.message})"
    return error.message


def iter_yaml_files(*roots: Path) -> Iterator[Path]:
    """YAML files under ``roots`` that hold Kubernetes objects (kustomization files excluded)."""
    for root in roots:
        for path in sorted(root.rglob("*.y*ml")):
            if path.name not in ("kustomization.yaml", "kustomization.yml") and path.suffix in (
                ".yaml",
                ".yml",
            ):
                yield path
