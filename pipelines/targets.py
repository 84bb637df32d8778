"""Where a pipeline definition runs: ``local`` (kfp.local SubprocessRunner) or ``cluster`` (KFP API).

The two differ only in storage: on a cluster the model PVC is created and mounted at ``MOUNT``
(registry and serving store live there); locally ``$KFCHAIN_HOME`` stands in for it.
"""

from __future__ import annotations

from typing import Any

LOCAL = "local"
CLUSTER = "cluster"
TARGETS = (LOCAL, CLUSTER)
PVC_NAME = "model-pvc"
MOUNT = "/mnt/kfchain"
CLUSTER_REGISTRY_URI = f"{MOUNT}/registry.db"
CLUSTER_SERVING_URI_PREFIX = f"pvc://{PVC_NAME}"
#: Train tasks at once: pods on a cluster; locally subprocesses, also bounded by the CPU cores
#: (runner.run_local lifts kfp.local's own cap of 2 up to them: pipelines/kfp_local.py).
TRAIN_PARALLELISM = 8


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise ValueError(f"target {target!r} is unknown; use one of {list(TARGETS)}")
    return target


def mount_model_pvc(task: Any) -> Any:
    """Mount the model PVC into ``task`` (cluster target only)."""
    from kfp import kubernetes

    return kubernetes.mount_pvc(task, pvc_name=PVC_NAME, mount_path=MOUNT)
