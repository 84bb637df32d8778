"""A small kustomize renderer for the features kfchain's manifests use.

``render(path)`` gives what ``kubectl kustomize path`` prints, as a list of dicts, for
kustomizations made of: ``resources`` (files and folders with their own kustomization),
``namespace``, ``labels`` / ``commonLabels``, ``commonAnnotations``, ``images`` and
``configMapGenerator`` (files and literals, without name hash suffixes). Anything else in a
kustomization is an error naming the file and the field, rather than a silently different
rendering. Output follows kustomize's default ("legacy") kind order, so namespaces, accounts and
config come before what uses them.

    python -m knative.kustomize knative/            # print the rendered YAML
    python -m knative.kustomize knative/ --image ghcr.io/kfchain/kfchain=registry/me/kfchain:v1
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_FIELDS = frozenset(
    {
        "apiVersion",
        "kind",
        "resources",
        "namespace",
        "labels",
        "commonLabels",
        "commonAnnotations",
        "images",
        "configMapGenerator",
        "generatorOptions",
    }
)
# Kinds without a namespace; kustomize's namespace transformer leaves them alone.
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "ClusterServingRuntime",
        "ClusterStorageContainer",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "APIService",
    }
)
# kustomize's legacy output order (api/resid/gvk.go); other kinds follow in input order.
KIND_ORDER = (
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
)
_KIND_RANK = {kind: rank for rank, kind in enumerate(KIND_ORDER)}
_WORKLOADS_WITH_SELECTOR = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"})
_WORKLOADS_WITH_TEMPLATE = _WORKLOADS_WITH_SELECTOR | {"Job"}


class KustomizeError(ValueError):
    """A kustomization or resource this renderer cannot render; names the file and the field."""

    def __init__(self, source: Path | str, field: str, message: str) -> None:
        self.source = str(source)
        self.field = field
        super().__init__(f"{source}: {field}: {message}")


def render(path: Path | str) -> list[dict]:
    """Render the kustomization at ``path`` (a folder or a kustomization file) to Kubernetes objects."""
    objects = _render(Path(path), stack=())
    _check_unique(objects)
    ordered = sorted(
        enumerate(objects), key=lambda item: (_KIND_RANK.get(item[1]["kind"], len(KIND_ORDER)), item[0])
    )
    return [obj for _, obj in ordered]


def find_kustomization(path: Path) -> Path:
    """The kustomization file of a folder (or ``path`` itself when it is a file)."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise KustomizeError(path, "resources", f"{path} does not exist; give a kustomization folder or file")
    for name in KUSTOMIZATION_FILES:
        if (path / name).is_file():
            return path / name
    raise KustomizeError(path, "resources", f"no {KUSTOMIZATION_FILES[0]} in folder {path}")


def _render(path: Path, stack: tuple[Path, ...]) -> list[dict]:
    file = find_kustomization(path).resolve()
    if file in stack:
        chain = " -> ".join(str(p) for p in (*stack, file))
        raise KustomizeError(file, "resources", f"kustomizations include each other in a cycle: {chain}")
    spec = _load_single(file)
    if not isinstance(spec, dict):
        raise KustomizeError(file, "<root>", "a kustomization must be a mapping")
    unknown = sorted(set(spec) - SUPPORTED_FIELDS)
    if unknown:
        raise KustomizeError(
            file,
            unknown[0],
            f"not supported by knative.kustomize (supported: {', '.join(sorted(SUPPORTED_FIELDS))}); "
            "use `kubectl kustomize` for it or rewrite the kustomization",
        )
    if spec.get("kind", "Kustomization") != "Kustomization":
        raise KustomizeError(file, "kind", f"expected Kustomization, got {spec.get('kind')!r}")

    base = file.parent
    objects: list[dict] = []
    for index, entry in enumerate(_list(spec, "resources", file)):
        field = f"resources[{index}]"
        if not isinstance(entry, str) or "://" in entry or entry.startswith("github.com/"):
            raise KustomizeError(
                file, field, f"{entry!r} is not a local file or folder (remote bases not supported)"
            )
        target = base / entry
        if target.is_dir():
            objects.extend(_render(target, (*stack, file)))
        elif target.is_file():
            objects.extend(_load_resources(target))
        else:
            raise KustomizeError(file, field, f"{entry!r} does not exist (looked for {target})")
    objects.extend(_generate_config_maps(spec, file))

    if "namespace" in spec:
        _set_namespace(objects, _str(spec, "namespace", file))
    for index, entry in enumerate(_list(spec, "labels", file)):
        if not isinstance(entry, dict) or not isinstance(entry.get("pairs"), dict):
            raise KustomizeError(file, f"labels[{index}].pairs", "expected a mapping of label pairs")
        extra = set(entry) - {"pairs", "includeSelectors", "includeTemplates"}
        if extra:
            raise KustomizeError(file, f"labels[{index}].{sorted(extra)[0]}", "unknown field")
        _add_labels(
            objects,
            _string_map(entry["pairs"], file, f"labels[{index}].pairs"),
            selectors=bool(entry.get("includeSelectors", False)),
            templates=bool(entry.get("includeTemplates", entry.get("includeSelectors", False))),
        )
    if "commonLabels" in spec:
        labels = _string_map(spec["commonLabels"], file, "commonLabels")
        _add_labels(objects, labels, selectors=True, templates=True)
    if "commonAnnotations" in spec:
        annotations = _string_map(spec["commonAnnotations"], file, "commonAnnotations")
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("annotations", {}).update(annotations)
    for index, image in enumerate(_list(spec, "images", file)):
        if not isinstance(image, dict) or not isinstance(image.get("name"), str):
            raise KustomizeError(file, f"images[{index}].name", "each image needs a name")
        extra = set(image) - {"name", "newName", "newTag", "digest"}
        if extra:
            raise KustomizeError(file, f"images[{index}].{sorted(extra)[0]}", "unknown field")
        set_image(
            objects,
            image["name"],
            new_name=image.get("newName"),
            new_tag=image.get("newTag"),
            digest=image.get("digest"),
        )
    return objects


def _load_single(file: Path) -> Any:
    documents = _load_documents(file)
    if len(documents) != 1:
        raise KustomizeError(file, "<root>", f"expected one YAML document, found {len(documents)}")
    return documents[0]


def _load_documents(file: Path) -> list[Any]:
    try:
        return [doc for doc in yaml.safe_load_all(file.read_text()) if doc is not None]
    except yaml.YAMLError as exc:
        raise KustomizeError(file, "<root>", f"not valid YAML: {exc}") from exc


def _load_resources(file: Path) -> list[dict]:
    objects = []
    for index, doc in enumerate(_load_documents(file)):
        where = f"document {index}"
        if not isinstance(doc, dict):
            raise KustomizeError(file, where, "a resource must be a mapping")
        for field in ("apiVersion", "kind"):
            if not isinstance(doc.get(field), str) or not doc[field]:
                raise KustomizeError(
                    file, f"{where}.{field}", "missing; every resource needs apiVersion and kind"
                )
        metadata = doc.get("metadata")
        if (
            not isinstance(metadata, dict)
            or not isinstance(metadata.get("name"), str)
            or not metadata["name"]
        ):
            raise KustomizeError(
                file, f"{where}.metadata.name", f"missing in {doc['kind']}; every resource needs a name"
            )
        objects.append(doc)
    return objects


def _generate_config_maps(spec: dict, file: Path) -> list[dict]:
    options = spec.get("generatorOptions") or {}
    if not isinstance(options, dict):
        raise KustomizeError(file, "generatorOptions", "expected a mapping")
    objects = []
    for index, generator in enumerate(_list(spec, "configMapGenerator", file)):
        field = f"configMapGenerator[{index}]"
        if not isinstance(generator, dict) or not isinstance(generator.get("name"), str):
            raise KustomizeError(file, f"{field}.name", "each generated ConfigMap needs a name")
        extra = set(generator) - {"name", "namespace", "files", "literals", "options", "behavior"}
        if extra:
            raise KustomizeError(file, f"{field}.{sorted(extra)[0]}", "not supported by knative.kustomize")
        if generator.get("behavior", "create") != "create":
            raise KustomizeError(file, f"{field}.behavior", "only behavior: create is supported")
        merged = {**options, **(generator.get("options") or {})}
        if not merged.get("disableNameSuffixHash", False):
            raise KustomizeError(
                file,
                f"{field}.options.disableNameSuffixHash",
                "name hash suffixes are not supported; set generatorOptions.disableNameSuffixHash: true",
            )
        data: dict[str, str] = {}
        for key_index, item in enumerate(generator.get("files") or []):
            key, _, relative = item.partition("=") if "=" in item else ("", "", item)
            source = file.parent / relative
            if not source.is_file():
                raise KustomizeError(
                    file, f"{field}.files[{key_index}]", f"{relative!r} does not exist (looked for {source})"
                )
            data[key or source.name] = source.read_text()
        for key_index, item in enumerate(generator.get("literals") or []):
            if not isinstance(item, str) or "=" not in item:
                raise KustomizeError(file, f"{field}.literals[{key_index}]", f"{item!r} is not KEY=VALUE")
            key, _, value = item.partition("=")
            data[key] = value
        metadata: dict[str, Any] = {"name": generator["name"]}
        if "namespace" in generator:
            metadata["namespace"] = generator["namespace"]
        for meta_field in ("labels", "annotations"):
            if merged.get(meta_field):
                metadata[meta_field] = _string_map(merged[meta_field], file, f"{field}.options.{meta_field}")
        objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data})
    return objects


def _set_namespace(objects: Iterable[dict], namespace: str) -> None:
    for obj in objects:
        if obj["kind"] in CLUSTER_SCOPED_KINDS:
            continue
        metadata = obj.setdefault("metadata", {})
        previous = metadata.get("namespace")
        metadata["namespace"] = namespace
        if obj["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            for subject in obj.get("subjects") or []:
                if subject.get("kind") == "ServiceAccount" and subject.get("namespace") in (
                    None,
                    previous,
                    "default",
                ):
                    subject["namespace"] = namespace


def _add_labels(objects: Iterable[dict], labels: dict[str, str], *, selectors: bool, templates: bool) -> None:
    for obj in objects:
        obj.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
        kind, spec = obj["kind"], obj.get("spec")
        if not isinstance(spec, dict):
            continue
        if templates and kind in _WORKLOADS_WITH_TEMPLATE:
            spec.setdefault("template", {}).setdefault("metadata", {}).setdefault("labels", {}).update(labels)
        if templates and kind == "CronJob":
            template = spec.setdefault("jobTemplate", {}).setdefault("spec", {}).setdefault("template", {})
            template.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
        if selectors and kind in _WORKLOADS_WITH_SELECTOR:
            spec.setdefault("selector", {}).setdefault("matchLabels", {}).update(labels)
        if selectors and kind == "Service" and obj["apiVersion"] == "v1":
            spec.setdefault("selector", {}).update(labels)


def set_image(
    objects: Iterable[dict],
    name: str,
    *,
    new_name: str | None = None,
    new_tag: str | None = None,
    digest: str | None = None,
) -> None:
    """Rewrite ``image`` of every container (any kind, any depth) whose image name is ``name``."""
    for obj in objects:
        for container in _containers(obj):
            image = container.get("image")
            if not isinstance(image, str):
                continue
            image_name, tag, image_digest = _split_image(image)
            if image_name != name:
                continue
            image_name = new_name or image_name
            if digest:
                container["image"] = f"{image_name}@{digest}"
            elif new_tag:
                container["image"] = f"{image_name}:{new_tag}"
            else:
                container["image"] = image_name + (
                    f"@{image_digest}" if image_digest else f":{tag}" if tag else ""
                )


def _containers(node: Any) -> Iterable[dict]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from (item for item in value if isinstance(item, dict))
            else:
                yield from _containers(value)
    elif isinstance(node, list):
        for item in node:
            yield from _containers(item)


def _split_image(image: str) -> tuple[str, str, str]:
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :], digest
    return name, "", digest


def _check_unique(objects: list[dict]) -> None:
    seen: set[tuple[str, str, str, str]] = set()
    for obj in objects:
        key = (
            obj["apiVersion"].split("/")[0],
            obj["kind"],
            obj["metadata"].get("namespace", ""),
            obj["metadata"]["name"],
        )
        if key in seen:
            raise KustomizeError(
                "<rendered>",
                f"{obj['kind']}/{obj['metadata']['name']}",
                "defined twice; each object may appear once",
            )
        seen.add(key)


def _list(spec: dict, field: str, file: Path) -> list:
    value = spec.get(field) or []
    if not isinstance(value, list):
        raise KustomizeError(file, field, f"expected a list, got {type(value).__name__}")
    return value


def _str(spec: dict, field: str, file: Path) -> str:
    value = spec.get(field)
    if not isinstance(value, str) or not value:
        raise KustomizeError(file, field, "expected a non-empty string")
    return value


def _string_map(value: Any, file: Path, field: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise KustomizeError(file, field, "expected a mapping of strings (quote numbers and booleans)")
    return dict(value)


def to_yaml(objects: Iterable[dict]) -> str:
    """Objects as one multi-document YAML stream, like ``kubectl kustomize`` prints."""
    return "---\n".join(yaml.safe_dump(copy.deepcopy(obj), sort_keys=False) for obj in objects)


def main(argv: list[str] | None = None) -> int:
    """CLI: print the rendered YAML of a kustomization."""
    parser = argparse.ArgumentParser(prog="python -m knative.kustomize", description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default="knative", help="kustomization folder (default: knative)")
    parser.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="NAME=NEW",
        help="replace an image, e.g. ghcr.io/kfchain/kfchain=me/kfchain:v2",
    )
    args = parser.parse_args(argv)
    try:
        objects = render(args.path)
    except KustomizeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for replacement in args.image:
        name, sep, new = replacement.partition("=")
        if not sep or not new:
            print(f"error: --image {replacement!r} must be NAME=NEWNAME[:TAG]", file=sys.stderr)
            return 2
        new_name, tag, digest = _split_image(new)
        set_image(objects, name, new_name=new_name, new_tag=tag or None, digest=digest or None)
    sys.stdout.write(to_yaml(objects))
    return 0


if __name__ == "__main__":
    sys.exit(main())
