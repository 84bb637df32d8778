"""The serving store: ``$KFCHAIN_HOME/serving/<model_name>/<model_version>/model.joblib``.

It stands in for the model PVC on a laptop. Beside the version folders, each model has
``current.json`` — the version the predictor must serve after a restart — written atomically
(temporary file + ``os.replace``) by the local rollout backend only after the predictor has loaded
and answered with that version::

    {"model_name": "iris", "current": "v2", "previous": "v1", "updated_at": "2025-01-01T00:00:00+00:00"}
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

MODEL_FILE = "model.joblib"
POINTER_FILE = "current.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def check_name(kind: str, value: str) -> str:
    """Return ``value`` if it is a safe model name or version (one path segment), else raise ValueError."""
    if not isinstance(value, str) or not _NAME.match(value) or ".." in value:
        raise ValueError(
            f"{kind} {value!r} is not valid: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


@dataclass(frozen=True)
class ServingPointer:
    """Which version of a model serves now, and which one served before it (for rollback)."""

    model_name: str
    current: str
    previous: str | None = None
    updated_at: str = ""


@dataclass(frozen=True)
class ServingStore:
    """Paths and the ``current.json`` pointer of the serving store rooted at ``root``."""

    root: Path

    def version_dir(self, model_name: str, model_version: str) -> Path:
        return self.root / check_name("model name", model_name) / check_name("model version", model_version)

    def model_path(self, model_name: str, model_version: str) -> Path:
        """Where ``model.joblib`` of this version lives."""
        return self.version_dir(model_name, model_version) / MODEL_FILE

    def pointer_path(self, model_name: str) -> Path:
        return self.root / check_name("model name", model_name) / POINTER_FILE

    def read_pointer(self, model_name: str) -> ServingPointer | None:
        """The pointer of ``model_name``, or None if no version was ever rolled out."""
        path = self.pointer_path(model_name)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise ValueError(
                f"{path} is not a readable serving pointer ({error}); delete it and roll out again"
            ) from None
        return ServingPointer(
            model_name=raw.get("model_name", model_name),
            current=check_name("model version", raw["current"]),
            previous=raw.get("previous"),
            updated_at=raw.get("updated_at", ""),
        )

    def write_pointer(self, model_name: str, current: str, previous: str | None) -> ServingPointer:
        """Atomically mark ``current`` as the serving version (readers never see a half-written file)."""
        pointer = ServingPointer(
            model_name=model_name,
            current=check_name("model version", current),
            previous=previous,
            updated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        path = self.pointer_path(model_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".current-", suffix=".json", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(asdict(pointer), handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return pointer

    def versions(self, model_name: str) -> list[str]:
        """Versions that have a ``model.joblib`` in the store, sorted by name."""
        base = self.root / check_name("model name", model_name)
        if not base.is_dir():
            return []
        return sorted(p.parent.name for p in base.glob(f"*/{MODEL_FILE}"))


@dataclass(frozen=True)
class ModelDirectory:
    """Model-dir mode's source: the one ``model.joblib`` in ``path`` (KServe mounts the
    InferenceService's storageUri at ``/mnt/models``), served as ``version``. One revision, one version."""

    path: Path
    version: str

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE
