"""The model registry: every trained candidate under ``model_name``/``model_version``/``k``.

Backends implement the narrow ``ModelRegistry`` protocol below; the pipelines only call those
methods, through ``open_registry(uri)``. The local backend is SQLite under ``$KFCHAIN_HOME``.

Adding a Kubeflow Model Registry backend (``model-registry`` client, ``ModelRegistry(server_address,
port, author=...)``): write a class with the same methods that maps one candidate to one
``RegisteredModel`` (name) / ``ModelVersion`` (``<version>-k<k>``) with ``model_format_name="sklearn"``,
``uri`` = the artifact URI and metrics/params/dataset hash as ``metadata``; keep ``selected``/``serving``
as ``metadata`` flags. Register it in ``open_registry`` under a ``modelregistry://host:port`` URI and pass
that URI as the pipelines' ``registry_uri`` parameter. Nothing in the pipelines changes.

``python -m pipelines.registry [--json]`` lists what is registered.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

_VERSION = re.compile(r"^v(\d+)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class RegistryError(Exception):
    """Base of registry errors; the message says what to do."""


class AlreadyRegisteredError(RegistryError, ValueError):
    """The same name/version/k was registered before (registration is never silently overwritten)."""


class NotRegisteredError(RegistryError, LookupError):
    """Nothing is registered under the requested name/version (/k)."""


@dataclass(frozen=True)
class ModelRecord:
    """One registered candidate model."""

    model_name: str
    model_version: str
    k: int
    accuracy: float
    uri: str
    cv_accuracy: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    dataset_hash: str = ""
    run_id: str = ""
    registered_at: str = ""
    selected: bool = False
    serving: bool = False
    serving_uri: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ModelRegistry(Protocol):
    """What the pipelines and services need from a registry; nothing more."""

    def register(self, record: ModelRecord) -> ModelRecord:
        """Store a new candidate; raises ``AlreadyRegisteredError`` if name/version/k exists."""
        ...

    def models(self, model_name: str | None = None, model_version: str | None = None) -> list[ModelRecord]:
        """Registered candidates, ordered by name, version number, k."""
        ...

    def next_version(self, model_name: str) -> str:
        """The next free ``vN`` for ``model_name`` (``v1`` when nothing is registered)."""
        ...

    def mark_selected(self, model_name: str, model_version: str, k: int, serving_uri: str) -> ModelRecord:
        """Mark one candidate as the selection of its version (clears the others of that version)."""
        ...

    def mark_serving(self, model_name: str, model_version: str) -> ModelRecord:
        """Record that the selected model of this version now serves (clears other versions)."""
        ...

    def serving(self, model_name: str) -> ModelRecord | None:
        """The model that serves ``model_name`` now, if any."""
        ...


def validate_name(kind: str, value: str) -> str:
    """Check a model name or version is usable as a path segment and a Kubernetes-friendly label."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(
            f"{kind} {value!r} is not valid: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


def version_number(version: str) -> int | None:
    """N of a ``vN`` version string, else None."""
    match = _VERSION.match(version)
    return int(match.group(1)) if match else None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    k INTEGER NOT NULL,
    accuracy REAL NOT NULL,
    cv_accuracy REAL,
    uri TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    dataset_hash TEXT NOT NULL DEFAULT '',
    run_id TEXT NOT NULL DEFAULT '',
    registered_at TEXT NOT NULL,
    selected INTEGER NOT NULL DEFAULT 0,
    serving INTEGER NOT NULL DEFAULT 0,
    serving_uri TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (model_name, model_version, k)
);
"""


class SqliteRegistry:
    """The local registry: one SQLite file (``$KFCHAIN_HOME/registry.db``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One short connection per call: components, the CLI and services open the file concurrently.
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA busy_timeout = 30000")
            yield db
        finally:
            db.close()

    def register(self, record: ModelRecord) -> ModelRecord:
        validate_name("model_name", record.model_name)
        validate_name("model_version", record.model_version)
        if record.k < 1:
            raise ValueError(f"k must be a positive integer, got {record.k!r}")
        stored = ModelRecord(
            **{
                **record.to_dict(),
                "registered_at": record.registered_at or _now(),
                "selected": False,
                "serving": False,
            }
        )
        with self._connect() as db:
            try:
                db.execute(
                    "INSERT INTO models (model_name, model_version, k, accuracy, cv_accuracy, uri, params,"
                    " dataset_hash, run_id, registered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        stored.model_name,
                        stored.model_version,
                        stored.k,
                        stored.accuracy,
                        stored.cv_accuracy,
                        stored.uri,
                        json.dumps(stored.params, sort_keys=True),
                        stored.dataset_hash,
                        stored.run_id,
                        stored.registered_at,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise AlreadyRegisteredError(
                    f"model {stored.model_name!r} version {stored.model_version!r} k={stored.k} is already registered"
                    f" in {self.path}; train under a new version (omit --version to get the next free one)"
                ) from exc
        return stored

    def models(self, model_name: str | None = None, model_version: str | None = None) -> list[ModelRecord]:
        query, args = "SELECT * FROM models WHERE 1=1", []
        if model_name is not None:
            query += " AND model_name = ?"
            args.append(model_name)
        if model_version is not None:
            query += " AND model_version = ?"
            args.append(model_version)
        with self._connect() as db:
            rows = [_record(row) for row in db.execute(query, args)]
        return sorted(rows, key=lambda r: (r.model_name, _version_sort_key(r.model_version), r.k))

    def next_version(self, model_name: str) -> str:
        with self._connect() as db:
            versions = [
                row[0]
                for row in db.execute(
                    "SELECT DISTINCT model_version FROM models WHERE model_name = ?", (model_name,)
                )
            ]
        numbers = [n for n in map(version_number, versions) if n is not None]
        return f"v{max(numbers, default=0) + 1}"

    def mark_selected(self, model_name: str, model_version: str, k: int, serving_uri: str) -> ModelRecord:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            found = db.execute(
                "SELECT 1 FROM models WHERE model_name = ? AND model_version = ? AND k = ?",
                (model_name, model_version, k),
            ).fetchone()
            if not found:
                db.execute("ROLLBACK")
                raise NotRegisteredError(
                    f"no model {model_name!r} version {model_version!r} k={k} in {self.path}; list them with"
                    " `python -m pipelines.registry`"
                )
            db.execute(
                "UPDATE models SET selected = (k = ?), serving_uri = CASE WHEN k = ? THEN ? ELSE '' END"
                " WHERE model_name = ? AND model_version = ?",
                (k, k, serving_uri, model_name, model_version),
            )
            db.execute("COMMIT")
        return self._one(model_name, model_version, k)

    def mark_serving(self, model_name: str, model_version: str) -> ModelRecord:
        """Called by the deployer after a successful rollout of ``model_version``."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT k FROM models WHERE model_name = ? AND model_version = ? AND selected = 1",
                (model_name, model_version),
            ).fetchone()
            if row is None:
                db.execute("ROLLBACK")
                raise NotRegisteredError(
                    f"model {model_name!r} version {model_version!r} has no selected model in {self.path};"
                    f" run `python -m pipelines.submit model_selection --version {model_version}` first"
                )
            db.execute("UPDATE models SET serving = 0 WHERE model_name = ?", (model_name,))
            db.execute(
                "UPDATE models SET serving = 1 WHERE model_name = ? AND model_version = ? AND k = ?",
                (model_name, model_version, row["k"]),
            )
            db.execute("COMMIT")
        return self._one(model_name, model_version, row["k"])

    def serving(self, model_name: str) -> ModelRecord | None:
        return next((r for r in self.models(model_name) if r.serving), None)

    def _one(self, model_name: str, model_version: str, k: int) -> ModelRecord:
        return next(r for r in self.models(model_name, model_version) if r.k == k)


def _record(row: sqlite3.Row) -> ModelRecord:
    return ModelRecord(
        model_name=row["model_name"],
        model_version=row["model_version"],
        k=row["k"],
        accuracy=row["accuracy"],
        cv_accuracy=row["cv_accuracy"],
        uri=row["uri"],
        params=json.loads(row["params"] or "{}"),
        dataset_hash=row["dataset_hash"],
        run_id=row["run_id"],
        registered_at=row["registered_at"],
        selected=bool(row["selected"]),
        serving=bool(row["serving"]),
        serving_uri=row["serving_uri"],
    )


def _version_sort_key(version: str) -> tuple[int, str]:
    number = version_number(version)
    return (number if number is not None else 1 << 30, version)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def open_registry(uri: str | Path) -> SqliteRegistry:
    """Open the registry named by ``uri``: a path or ``sqlite:///path`` (the only backend so far)."""
    text = str(uri)
    if text.startswith("sqlite:///"):
        return SqliteRegistry(text[len("sqlite://") :])
    if "://" in text:
        raise ValueError(f"registry URI {text!r} is not supported: use a file path or sqlite:///path")
    return SqliteRegistry(text)


def format_table(records: list[ModelRecord]) -> str:
    """A plain-text table of ``records`` for the terminal."""
    if not records:
        return "no models registered"
    header = ("MODEL", "VERSION", "K", "ACCURACY", "CV", "SELECTED", "SERVING", "RUN", "URI")
    rows = [
        (
            r.model_name,
            r.model_version,
            str(r.k),
            f"{r.accuracy:.4f}",
            "-" if r.cv_accuracy is None else f"{r.cv_accuracy:.4f}",
            "yes" if r.selected else "",
            "yes" if r.serving else "",
            r.run_id,
            r.uri,
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.registry``: list models, versions, K, metrics, selected and serving."""
    from pipelines.settings import PipelinesSettings

    parser = argparse.ArgumentParser(prog="python -m pipelines.registry", description=main.__doc__)
    parser.add_argument("--model-name", help="only this model")
    parser.add_argument("--version", help="only this version")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--registry", help="registry path (default $KFCHAIN_HOME/registry.db)")
    args = parser.parse_args(argv)
    path = args.registry or PipelinesSettings.from_env().registry_path
    records = open_registry(path).models(args.model_name, args.version)
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2))
    else:
        print(format_table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
