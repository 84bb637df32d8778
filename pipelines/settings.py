"""Settings of the pipelines deployable (`python -m pipelines.submit`, the selector's runner).

Read once from the environment with working local defaults (docs/CONVENTIONS.md), then passed down.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from events.settings import KafkaSettings, kfchain_home

DEFAULT_IMAGE = "ghcr.io/kfchain/kfchain:latest"
DEFAULT_K_VALUES = (1, 3, 5, 7, 9)


@dataclass(frozen=True)
class PipelinesSettings:
    """Where runs go (local or a KFP API server), where local state lives, and pipeline defaults.

    ``kfp_host`` empty means local runs with ``kfp.local.SubprocessRunner``.
    """

    home: Path = Path(".kfchain")
    model_name: str = "iris"
    kfp_host: str = ""
    kfp_namespace: str = ""
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    #: Bootstrap address the *cluster* run's exit handler uses (in-cluster DNS name); empty means
    #: the component's own ``KAFKA_BOOTSTRAP_SERVERS`` env (set it with a PodDefault or the image).
    cluster_kafka_bootstrap: str = ""
    pvc_size: str = "1Gi"
    pvc_storage_class: str = ""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> PipelinesSettings:
        """Build settings from ``env`` (default ``os.environ``); every variable is optional."""
        env = dict(os.environ if env is None else env)
        return cls(
            home=kfchain_home(env),
            model_name=env.get("KFCHAIN_MODEL_NAME") or "iris",
            kfp_host=env.get("KFP_HOST", ""),
            kfp_namespace=env.get("KFP_NAMESPACE", ""),
            kafka=KafkaSettings.from_env(env),
            cluster_kafka_bootstrap=env.get("KFCHAIN_CLUSTER_KAFKA_BOOTSTRAP", ""),
            pvc_size=env.get("KFCHAIN_PVC_SIZE") or "1Gi",
            pvc_storage_class=env.get("KFCHAIN_PVC_STORAGE_CLASS", ""),
        )

    @property
    def local(self) -> bool:
        """Whether runs execute on this machine (no KFP host configured)."""
        return not self.kfp_host

    @property
    def registry_path(self) -> Path:
        return self.home / "registry.db"

    @property
    def serving_root(self) -> Path:
        return self.home / "serving"

    @property
    def pipeline_root(self) -> Path:
        return self.home / "artifacts"

    @property
    def runs_dir(self) -> Path:
        """Per-run logs and state of local runs."""
        return self.home / "runs"


def image() -> str:
    """The container image components run on (``KFCHAIN_IMAGE``).

    Read when the component modules are imported because ``@dsl.component`` needs it at definition
    time; the committed compiled YAML is produced with the default.
    """
    return os.environ.get("KFCHAIN_IMAGE") or DEFAULT_IMAGE
