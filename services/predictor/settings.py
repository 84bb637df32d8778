"""Settings of the predictor, read once from the environment with working local defaults."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from events.envvars import env_bool, env_int
from services.predictor.store import MODEL_FILE, check_name

IRIS_SPECIES = ("setosa", "versicolor", "virginica")
UNKNOWN_VERSION = "unknown"


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
    # Model-dir mode (KServe's ``/mnt/models``): serve the one model.joblib there, as ``model_version``.
    # None (the default): store mode, serve what ``$KFCHAIN_HOME/serving/<model>/current.json`` says.
    model_dir: Path | None = None
    model_version: str = UNKNOWN_VERSION
    model_version_source: str = "default"  # which setting named model_version, for the start-up log

    @property
    def mode(self) -> str:
        """``"model-dir"`` (one fixed version from ``model_dir``) or ``"store"`` (the serving store)."""
        return "model-dir" if self.model_dir is not None else "store"

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
        ``KFCHAIN_PREDICTOR_CACHE_SIZE``, ``KFCHAIN_PREDICTOR_FAST_PATH``, ``KFCHAIN_PREDICTOR_ACCESS_LOG``,
        and for model-dir mode ``KFCHAIN_PREDICTOR_MODEL_DIR``, ``KFCHAIN_MODEL_VERSION``, ``STORAGE_URI``."""
        env = os.environ if env is None else env
        model_name = _model_name(env.get("KFCHAIN_MODEL_NAME") or "iris", "KFCHAIN_MODEL_NAME")
        model_dir = (env.get("KFCHAIN_PREDICTOR_MODEL_DIR") or "").strip()
        version, source = model_version_from(env)
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
            model_dir=Path(model_dir).expanduser() if model_dir else None,
            model_version=version,
            model_version_source=source,
        )

    @classmethod
    def from_args(cls, argv: Sequence[str], env: Mapping[str, str] | None = None) -> PredictorSettings:
        """:meth:`from_env`, then the command-line arguments KServe's runtimes conventionally pass
        (``--model_dir=/mnt/models``, ``--model_name={{.Name}}``), which win over the environment."""
        parser = argparse.ArgumentParser(
            prog="python -m services.predictor",
            description="kfchain's predictor (settings: KFCHAIN_* environment variables, see settings.py)",
        )
        parser.add_argument(
            "--model_dir", help="serve the model.joblib in this directory (KFCHAIN_PREDICTOR_MODEL_DIR)"
        )
        parser.add_argument("--model_name", help="the name the model is served under (KFCHAIN_MODEL_NAME)")
        args = parser.parse_args(list(argv))
        settings = cls.from_env(env)
        changes: dict[str, object] = {}
        if args.model_dir:
            changes["model_dir"] = Path(args.model_dir).expanduser()
        if args.model_name:
            changes["model_name"] = _model_name(args.model_name, "--model_name")
        return dataclasses.replace(settings, **changes) if changes else settings


def _model_name(value: str, where: str) -> str:
    if not value.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"{where}={value!r} must be letters, digits, '-' or '_'")
    return value


def model_version_from(env: Mapping[str, str]) -> tuple[str, str]:
    """The version a model-dir predictor reports, and the setting it came from.

    ``KFCHAIN_MODEL_VERSION`` first: the deployer writes it into the InferenceService with the
    storageUri, so each revision names exactly the version it was created for. Else the last
    segment of ``STORAGE_URI`` (``pvc://model-pvc/iris/v3`` -> ``v3``; the convention for custom
    KServe containers, which KServe does not set for a model spec). Else ``"unknown"``: answers
    still carry a version field, and it visibly says nobody named one.
    """
    explicit = (env.get("KFCHAIN_MODEL_VERSION") or "").strip()
    if explicit:
        try:
            return check_name("KFCHAIN_MODEL_VERSION", explicit), "KFCHAIN_MODEL_VERSION"
        except ValueError as error:
            raise ValueError(f"{error}; unset it or give e.g. KFCHAIN_MODEL_VERSION=v3") from None
    storage_uri = (env.get("STORAGE_URI") or "").strip()
    if storage_uri:
        segments = [s for s in urlparse(storage_uri).path.split("/") if s]
        if segments and segments[-1] == MODEL_FILE:
            segments.pop()  # the URI names the file itself: the version is its folder
        if segments:
            try:
                return check_name("model version", segments[-1]), "STORAGE_URI"
            except ValueError:
                pass  # not ours to reject: fall back to "unknown"
    return UNKNOWN_VERSION, "default"
