"""The durable event store: SQLite (WAL) under ``$KFCHAIN_HOME``, append-only.

One row per (source, id, dead-letter destination): a redelivered event is stored once, and the
dead-lettered copy of an event (stamped with ``knativeerrordest``) is a fact of its own next to it.
The full structured-mode CloudEvent is kept, extensions and dead-letter attributes included.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from events.codec import from_json, to_json
from events.event import Event
from events.settings import kfchain_home

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    source       TEXT NOT NULL,
    id           TEXT NOT NULL,
    dead_letter  TEXT NOT NULL DEFAULT '',
    type         TEXT NOT NULL,
    subject      TEXT,
    time         TEXT NOT NULL,
    chainid      TEXT,
    causationid  TEXT,
    recorded_at  TEXT NOT NULL,
    cloudevent   TEXT NOT NULL,
    UNIQUE (source, id, dead_letter)
);
CREATE INDEX IF NOT EXISTS events_type ON events (type);
CREATE INDEX IF NOT EXISTS events_chain ON events (chainid, time);
CREATE INDEX IF NOT EXISTS events_subject ON events (subject);
CREATE INDEX IF NOT EXISTS events_time ON events (time);
"""


def _ts(value: datetime) -> str:
    """Fixed-width UTC text, so SQL string order is time order."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _like_prefix(prefix: str) -> str:
    """A LIKE pattern (with ESCAPE '\\') matching strings that start with ``prefix`` literally."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass(frozen=True)
class StoredEvent:
    """An event as recorded: its position in the store and when it was recorded."""

    seq: int
    recorded_at: datetime
    event: Event


def default_path() -> Path:
    """``$KFCHAIN_HOME/events.db``."""
    return kfchain_home() / "events.db"


class EventStore:
    """Append-only event store. Safe to share between threads; readers never block the writer (WAL)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def append(self, event: Event) -> bool:
        """Record ``event``; False when this (source, id, dead-letter destination) is already stored."""
        row = (
            event.source,
            event.id,
            event.extensions.get("knativeerrordest", ""),
            event.type,
            event.subject,
            _ts(event.time),
            event.chainid,
            event.causationid,
            _ts(datetime.now(UTC)),
            to_json(event),
        )
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO events (source, id, dead_letter, type, subject, time, chainid, causationid,"
                " recorded_at, cloudevent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        return cursor.rowcount == 1

    def query(
        self,
        *,
        type_prefix: str | Sequence[str] | None = None,
        chain: str | None = None,
        subject: str | None = None,
        since: datetime | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        """Matching events ordered by time, newest last; ``limit`` keeps the newest ``limit``.

        ``type_prefix`` may be several prefixes (an event matches any of them).
        """
        where: list[str] = []
        args: list[object] = []
        prefixes = [type_prefix] if isinstance(type_prefix, str) else list(type_prefix or ())
        if any(prefixes):
            where.append("(" + " OR ".join("type LIKE ? ESCAPE '\\'" for _ in prefixes) + ")")
            args.extend(_like_prefix(p) for p in prefixes)
        if chain:
            where.append("chainid = ?")
            args.append(chain)
        if subject:
            where.append("subject = ?")
            args.append(subject)
        if since is not None:
            where.append("time >= ?")
            args.append(_ts(since))
        if after_seq is not None:
            where.append("seq > ?")
            args.append(after_seq)
        sql = "SELECT seq, recorded_at, cloudevent, time FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if limit is not None:
            # The newest ``limit`` rows, then back to oldest-first (the outer query needs ``time``).
            sql = (
                f"SELECT seq, recorded_at, cloudevent, time FROM ({sql} ORDER BY time DESC, seq DESC"
                f" LIMIT {int(limit)}) ORDER BY time, seq"
            )
        else:
            sql += " ORDER BY time, seq"
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [self._row(r[:3]) for r in rows]

    def chain(self, chainid: str) -> list[StoredEvent]:
        """Every event of one chain, in time order."""
        return self.query(chain=chainid)

    def find_chain(self, prefix: str) -> list[str]:
        """Chain ids starting with ``prefix`` (users type the short id the log shows)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT chainid FROM events WHERE chainid LIKE ? ESCAPE '\\' LIMIT 10",
                (_like_prefix(prefix),),
            ).fetchall()
        return [r[0] for r in rows]

    def chains(self, limit: int = 20) -> list[str]:
        """The ids of the most recently active chains, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT chainid FROM events WHERE chainid IS NOT NULL GROUP BY chainid ORDER BY MAX(time) DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [r[0] for r in rows]

    def after(self, seq: int) -> list[StoredEvent]:
        """Events recorded after position ``seq`` (for --follow and server-sent events), in record order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, recorded_at, cloudevent FROM events WHERE seq > ? ORDER BY seq", (seq,)
            ).fetchall()
        return [self._row(r) for r in rows]

    def last_seq(self) -> int:
        """Position of the newest record (0 when empty)."""
        with self._lock:
            (value,) = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        return int(value)

    def count(self) -> int:
        with self._lock:
            (value,) = self._db.execute("SELECT COUNT(*) FROM events").fetchone()
        return int(value)

    def __iter__(self) -> Iterator[StoredEvent]:
        return iter(self.query())

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @staticmethod
    def _row(row: tuple[int, str, str]) -> StoredEvent:
        seq, recorded_at, cloudevent = row
        return StoredEvent(
            seq=seq,
            recorded_at=datetime.strptime(recorded_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC),
            event=from_json(cloudevent),
        )
