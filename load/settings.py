"""Settings of the load tools (Locust, hey, the autoscaling check), read once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: Where run artifacts (CSV, HTML, PNG) go by default: git-ignored, beside the kept ``latest`` numbers.
DEFAULT_OUTPUT_DIR = Path(__file__).resolve().parent / "results" / "tmp"


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    raw = (env.get(name) or default).strip().rstrip("/")
    if not raw.startswith(("http://", "https://")):
        raise ValueError(f"{name}={raw!r} is not an http(s) URL; use e.g. {name}={default}")
    return raw


@dataclass(frozen=True)
class LoadSettings:
    """Where the load goes and where its reports are written."""

    predictor_url: str = "http://127.0.0.1:8080"
    frontend_url: str = "http://127.0.0.1:8081"
    model_name: str = "iris"
    output_dir: Path = DEFAULT_OUTPUT_DIR

    @property
    def v1_predict_url(self) -> str:
        return f"{self.predictor_url}/v1/models/{self.model_name}:predict"

    @property
    def v2_infer_url(self) -> str:
        return f"{self.predictor_url}/v2/models/{self.model_name}/infer"

    @property
    def frontend_predict_url(self) -> str:
        return f"{self.frontend_url}/api/predict"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LoadSettings:
        """Read ``KFCHAIN_PREDICTOR_URL``, ``KFCHAIN_FRONTEND_URL``, ``KFCHAIN_MODEL_NAME``, ``KFCHAIN_LOAD_OUTPUT``."""
        env = os.environ if env is None else env
        return cls(
            predictor_url=_url(env, "KFCHAIN_PREDICTOR_URL", cls.predictor_url),
            frontend_url=_url(env, "KFCHAIN_FRONTEND_URL", cls.frontend_url),
            model_name=env.get("KFCHAIN_MODEL_NAME") or cls.model_name,
            output_dir=Path(env.get("KFCHAIN_LOAD_OUTPUT") or DEFAULT_OUTPUT_DIR).expanduser(),
        )
