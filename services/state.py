"""Durable idempotency state of a service: which events it handled, and its business keys.

Knative delivers at least once, so a handler is idempotent on (source, id) — the same event is
answered with the same reply — and on its business key (one selection run per training run, one
rollout per model version), so a re-published fact under a new id does no second piece of work.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from events.codec import from_json, to_json
from events.event import Event

_SCHEMA = """
CREATE TABLE IF NOT EXISTS handled (
    source TEXT NOT NULL, id TEXT NOT NULL, reply TEXT, handled_at TEXT DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (source, id)
);
CREATE TABLE IF NOT EXISTS business_keys (
    key TEXT PRIMARY KEY, reply TEXT, recorded_at TEXT DEFAULT CURRENT_TIMESTAMP
);
"""

_MISSING = object()


class ServiceState:
    """SQLite (WAL) file of one service. Thread-safe."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def handled_reply(self, event: Event) -> Event | None | object:
        """The reply given when ``event`` was handled before; ``MISSING`` if it never was."""
        with self._lock:
            row = self._db.execute(
                "SELECT reply FROM handled WHERE source = ? AND id = ?", (event.source, event.id)
            ).fetchone()
        if row is None:
            return _MISSING
        return from_json(row[0]) if row[0] else None

    def remember_handled(self, event: Event, reply: Event | None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO handled (source, id, reply) VALUES (?, ?, ?)",
                (event.source, event.id, to_json(reply) if reply else None),
            )

    def business_reply(self, key: str) -> Event | None | object:
        """The reply recorded for a business key; ``MISSING`` if the key is new."""
        with self._lock:
            row = self._db.execute("SELECT reply FROM business_keys WHERE key = ?", (key,)).fetchone()
        if row is None:
            return _MISSING
        return from_json(row[0]) if row[0] else None

    def remember_business(self, key: str, reply: Event | None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO business_keys (key, reply) VALUES (?, ?)",
                (key, to_json(reply) if reply else None),
            )

    def close(self) -> None:
        self._db.close()


MISSING = _MISSING
