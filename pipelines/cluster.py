"""Cluster-side helpers of the pipelines (only used inside pods on a Kubernetes cluster).

Why not ``kfp.kubernetes.CreatePVC``: with a fixed name it fails when the PVC already exists, and
the seed hid that with ``ignore_upstream_failure``, which also hid every real error. Here an
existing PVC (HTTP 409) is fine and any other API error fails the task. Mounting still uses
kfp-kubernetes (``kubernetes.mount_pvc``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def current_namespace(default: str = "kubeflow") -> str:
    """The namespace this pod runs in (the pipeline's profile namespace)."""
    try:
        return NAMESPACE_FILE.read_text().strip() or default
    except OSError:
        return default


def pvc_manifest(
    name: str, size: str, storage_class: str = "", access_mode: str = "ReadWriteOnce"
) -> dict[str, Any]:
    """The PersistentVolumeClaim object; empty ``storage_class`` means the cluster default."""
    spec: dict[str, Any] = {"accessModes": [access_mode], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "kfchain"}},
        "spec": spec,
    }


def ensure_pvc(
    name: str,
    *,
    size: str = "1Gi",
    storage_class: str = "",
    access_mode: str = "ReadWriteOnce",
    namespace: str | None = None,
    api: Any = None,
) -> bool:
    """Create the PVC; return True if created, False if it already existed. Other errors raise."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    if api is None:
        config.load_incluster_config()
        api = client.CoreV1Api()
    namespace = namespace or current_namespace()
    try:
        api.create_namespaced_persistent_volume_claim(
            namespace, pvc_manifest(name, size, storage_class, access_mode)
        )
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise RuntimeError(
            f"creating PVC {name!r} in namespace {namespace!r} failed with HTTP {exc.status}: {exc.reason};"
            " check the pipeline service account may create persistentvolumeclaims"
        ) from exc
    return True
