"""Settings of the predictor, read once from the environment with working local defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from events.envvars import env_bool, env_int

IRIS_SPECIES = ("setosa", "versicolor", "virginica")


@dataclass(frozen=True)
class PredictorSettings:
    """Everything the predictor process needs; build it with :meth:`from_env` or pass values in tests."""

    home: Path = Path(".kfchain")
    model_name: str = "iris"
    host: str = "127.0.0.1"
    port: int = 8080
    max_batch: int = 1000  # instances per request
    max_body_bytes: int = 1 << 20  # 1 MiB of JSON, ~25k rows: far above max_batch, bounds memory
    cache_size: int = 4096  # memoised rows per model version; 0 disables the cache
    fast_path: bool = True  # False: every request goes through kserve's generic FastAPI path
    access_log: bool = False
    species: tuple[str, ...] = IRIS_SPECIES

    @property
    def serving_dir(self) -> Path:
        """``$KFCHAIN_HOME/serving``: the serving store (stands in for the model PVC)."""
        return self.home / "serving"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PredictorSettings:
        """Read ``KFCHAIN_HOME``, ``KFCHAIN_MODEL_NAME``, ``KFCHAIN_PREDICTOR_HOST``,
        ``KFCHAIN_PREDICTOR_PORT``, ``KFCHAIN_PREDICTOR_MAX_BATCH``, ``KFCHAIN_PREDICTOR_MAX_BODY_BYTES``,
        ``KFCHAIN_PREDICTOR_CACHE_SIZE``, ``KFCHAIN_PREDICTOR_FAST_PATH``, ``KFCHAIN_PREDICTOR_ACCESS_LOG``."""
        env = os.environ if env is None else env
        model_name = env.get("KFCHAIN_MODEL_NAME") or "iris"
        if not model_name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"KFCHAIN_MODEL_NAME={model_name!r} must be letters, digits, '-' or '_'")
        return cls(
            home=Path(env.get("KFCHAIN_HOME") or ".kfchain").expanduser(),
            model_name=model_name,
            host=env.get("KFCHAIN_PREDICTOR_HOST") or "127.0.0.1",
            port=env_int(env, "KFCHAIN_PREDICTOR_PORT", 8080, minimum=0),
            max_batch=env_int(env, "KFCHAIN_PREDICTOR_MAX_BATCH", 1000, minimum=1),
            max_body_bytes=env_int(env, "KFCHAIN_PREDICTOR_MAX_BODY_BYTES", 1 << 20, minimum=64),
            cache_size=env_int(env, "KFCHAIN_PREDICTOR_CACHE_SIZE", 4096),
            fast_path=env_bool(env, "KFCHAIN_PREDICTOR_FAST_PATH", True),
            access_log=env_bool(env, "KFCHAIN_PREDICTOR_ACCESS_LOG", False),
        )
