"""Settings of the frontend, read once from the environment with working local defaults."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from events.envvars import env_bool, env_int, env_seconds

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8081
DEFAULT_PREDICTOR_URL = "http://127.0.0.1:8080"
DEFAULT_MODEL_NAME = "iris"


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    raw = (env.get(name) or default).strip().rstrip("/")
    if not raw.startswith(("http://", "https://")):
        raise ValueError(f"{name}={raw!r} must be an http:// or https:// URL, e.g. {default}")
    return raw


@dataclass(frozen=True)
class Settings:
    """Everything the frontend needs; every field has a working local default and an env variable."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    workers: int = 1
    predictor_url: str = DEFAULT_PREDICTOR_URL
    model_name: str = DEFAULT_MODEL_NAME
    predictor_timeout_s: float = 5.0
    events_db: Path = Path(".kfchain") / "events.db"
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    debug: bool = False
    sse_poll_s: float = 0.5

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``KFCHAIN_FRONTEND_HOST``/``_PORT`` (or ``PORT``, as Knative and ``make up`` set it),
        ``KFCHAIN_FRONTEND_WORKERS``, ``KFCHAIN_PREDICTOR_URL``, ``KFCHAIN_MODEL_NAME``,
        ``KFCHAIN_PREDICTOR_TIMEOUT``, ``KFCHAIN_HOME`` (for ``events.db``), ``KFCHAIN_SECRET_KEY``
        (generated when unset), ``KFCHAIN_DEBUG`` and ``KFCHAIN_FRONTEND_SSE_POLL``."""
        env = os.environ if env is None else env
        port_name = "PORT" if env.get("PORT") else "KFCHAIN_FRONTEND_PORT"
        model_name = (env.get("KFCHAIN_MODEL_NAME") or DEFAULT_MODEL_NAME).strip()
        if not model_name or "/" in model_name or ":" in model_name:
            raise ValueError(f"KFCHAIN_MODEL_NAME={model_name!r} must be a plain model name such as 'iris'")
        home = Path(env.get("KFCHAIN_HOME") or ".kfchain").expanduser()
        return cls(
            host=(env.get("KFCHAIN_FRONTEND_HOST") or DEFAULT_HOST).strip(),
            port=env_int(env, port_name, DEFAULT_PORT, 0, 65535),
            workers=env_int(env, "KFCHAIN_FRONTEND_WORKERS", 1, 1, 64),
            predictor_url=_url(env, "KFCHAIN_PREDICTOR_URL", DEFAULT_PREDICTOR_URL),
            model_name=model_name,
            predictor_timeout_s=env_seconds(env, "KFCHAIN_PREDICTOR_TIMEOUT", 5.0, maximum=600),
            events_db=home / "events.db",
            secret_key=env.get("KFCHAIN_SECRET_KEY") or secrets.token_urlsafe(32),
            debug=env_bool(env, "KFCHAIN_DEBUG", False),
            sse_poll_s=env_seconds(env, "KFCHAIN_FRONTEND_SSE_POLL", 0.5, maximum=600),
        )
