"""``python -m events.log``: inspect the event log.

    python -m events.log                        latest events, newest last
    python -m events.log --type pipeline.run    filter (also --chain ID, --subject S, --since 10m, --limit N)
    python -m events.log --follow               keep printing events as they are recorded
    python -m events.log --json                 one structured-mode CloudEvent per line
    python -m events.log chain ID               the causal tree of one chain, with step times
    python -m events.log --from-kafka           read Kafka instead of the event store: the event topic
                                                and the dead-letter topic, merged by time (also with
                                                --follow and `chain ID`); dead letters are marked

Exit codes: 0 ok, 1 nothing found (empty store, unknown chain, no match), 2 usage error,
3 Kafka unreachable (``--from-kafka``).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn, TextIO

from events.codec import to_json
from events.errors import BrokerUnavailableError
from events.event import Event
from events.kafka import Received, read_topics
from events.render import KFCHAIN_TYPE_PREFIX, LogEntry, Style, Table, render_chain, short_id
from events.settings import KafkaSettings, kfchain_home
from events.store import EventStore, StoredEvent

EXIT_OK = 0
EXIT_NOTHING = 1
EXIT_USAGE = 2
EXIT_BROKER = 3

DEFAULT_LIMIT = 50
FOLLOW_INTERVAL_S = 0.5


@dataclass(frozen=True)
class LogSettings:
    """Where the log is read from: the event store file, or Kafka (``--from-kafka``)."""

    store_path: Path
    kafka: KafkaSettings

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> LogSettings:
        """``$KFCHAIN_HOME/events.db`` and the Kafka settings of ``KafkaSettings.from_env``."""
        return cls(store_path=kfchain_home(env) / "events.db", kafka=KafkaSettings.from_env(env))


class UsageError(ValueError):
    """Bad command-line input (exit 2); the message names the value."""


class NothingFound(LookupError):
    """Nothing to show (exit 1); the message says what was looked for, and where."""


# -- options ---------------------------------------------------------------------------------------
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``10s``/``10m``/``2h``/``1d`` ago, or an ISO 8601 time (local time when it has no offset)."""
    match = _DURATION.match(value)
    if match:
        amount, unit = match.groups()
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: float(amount)})
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UsageError(
            f"--since {value!r} is neither a duration (10s, 10m, 2h, 1d) nor an ISO 8601 time "
            "(2024-05-01T14:00 or 2024-05-01T12:00:00Z)"
        ) from None
    return parsed if parsed.tzinfo else parsed.astimezone()  # naive: the local time the table shows


@dataclass(frozen=True)
class Filters:
    """What to show: ``--type`` (prefix), ``--chain``, ``--subject``, ``--since``, ``--limit``."""

    type_prefix: str | None = None
    chain: str | None = None  # a full chain id (resolve short ids with ``resolve_chain`` first)
    subject: str | None = None
    since: datetime | None = None
    limit: int | None = DEFAULT_LIMIT

    def type_prefixes(self) -> tuple[str, ...]:
        """The prefix as typed, plus ``io.kfchain.<prefix>`` so ``--type pipeline.run`` works too."""
        if not self.type_prefix:
            return ()
        if self.type_prefix.startswith(KFCHAIN_TYPE_PREFIX):
            return (self.type_prefix,)
        return (self.type_prefix, KFCHAIN_TYPE_PREFIX + self.type_prefix)

    @property
    def selects_events(self) -> bool:
        """Whether a filter needs event attributes (an invalid record can never match it)."""
        return bool(self.type_prefix or self.chain or self.subject)

    def matches(self, entry: LogEntry) -> bool:
        """Whether ``entry`` passes the filters (``limit`` aside)."""
        if self.since is not None and (entry.time is None or entry.time < self.since):
            return False
        event = entry.event
        if event is None:
            return not self.selects_events
        if self.type_prefix and not event.type.startswith(self.type_prefixes()):
            return False
        if self.chain and event.chainid != self.chain:
            return False
        return not (self.subject and event.subject != self.subject)

    def describe(self) -> str:
        parts = []
        for flag, value in (
            ("--type", self.type_prefix),
            ("--chain", self.chain),
            ("--subject", self.subject),
        ):
            if value:
                parts.append(f"{flag} {value}")
        if self.since is not None:
            parts.append(f"--since {self.since.astimezone().isoformat(timespec='seconds')}")
        return " ".join(parts)


def resolve_chain(prefix: str, chain_ids: Iterable[str]) -> str:
    """The one chain id starting with ``prefix``; NothingFound if none, UsageError if several."""
    matches = sorted({c for c in chain_ids if c and c.startswith(prefix)})
    if not matches:
        raise NothingFound(f"no chain {prefix!r}")
    if len(matches) > 1 and prefix not in matches:
        shown = ", ".join(
            short_id(c) if len(set(map(short_id, matches))) == len(matches) else c for c in matches
        )
        raise UsageError(f"chain id {prefix!r} is ambiguous: it starts {shown}; give more characters")
    return prefix if prefix in matches else matches[0]


def _keep_newest(entries: list[LogEntry], limit: int | None) -> list[LogEntry]:
    return entries[-limit:] if limit else entries


# -- sources ---------------------------------------------------------------------------------------
def _stored(row: StoredEvent) -> LogEntry:
    return LogEntry(time=row.event.time, event=row.event, position=row.seq)


def _from_kafka(received: Received, dead_letter: bool = False) -> LogEntry:
    where = f"{received.topic}[{received.partition}]@{received.offset}"
    if received.event is not None:
        return LogEntry(time=received.event.time, event=received.event, where=where, dead_letter=dead_letter)
    return LogEntry(
        time=received.timestamp, invalid_reason=str(received.error), where=where, dead_letter=dead_letter
    )


def _by_time(entry: LogEntry) -> tuple[datetime, bool, str]:
    # a dead-lettered copy keeps its original's time: show the original first
    return (entry.time or datetime.min.replace(tzinfo=UTC), entry.dead_letter, entry.where)


class StoreLog:
    """The log as the event store recorded it (the default)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.description = f"the event store at {store.path}"
        self._mark: int | None = None

    def chain_ids(self, prefix: str) -> list[str]:
        return self.store.find_chain(prefix)

    def recent_chains(self) -> list[str]:
        return self.store.chains(limit=5)

    def is_empty(self) -> bool:
        return self.store.count() == 0

    def entries(self, filters: Filters) -> list[LogEntry]:
        self._mark = self.store.last_seq()  # --follow continues from here: nothing recorded meanwhile is lost
        rows = self.store.query(
            type_prefix=filters.type_prefixes() or None,
            chain=filters.chain,
            subject=filters.subject,
            since=filters.since,
            limit=filters.limit or None,
        )
        return [_stored(r) for r in rows]

    def follow(
        self, filters: Filters, shown: Sequence[LogEntry], stop: threading.Event
    ) -> Iterator[LogEntry]:
        """Entries recorded after ``shown``, as they arrive, until ``stop`` is set."""
        last = max(
            [self.store.last_seq() if self._mark is None else self._mark, *(e.position for e in shown)]
        )
        unlimited = replace(filters, limit=None)
        while not stop.is_set():
            rows = self.store.query(
                type_prefix=unlimited.type_prefixes() or None,
                chain=unlimited.chain,
                subject=unlimited.subject,
                since=unlimited.since,
                after_seq=last,
            )
            for row in sorted(rows, key=lambda r: r.seq):
                last = max(last, row.seq)
                yield _stored(row)
            stop.wait(FOLLOW_INTERVAL_S)


class KafkaLog:
    """The log as Kafka holds it (``--from-kafka``): every record of the event topic and of the
    dead-letter topic, merged by time, invalid ones included; dead letters are marked as such."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.topics = list(dict.fromkeys([settings.topic, settings.dlq_topic]))
        self.description = f"topics {' and '.join(self.topics)} at {settings.bootstrap_servers}"
        self._all: list[LogEntry] | None = None

    def _entry(self, received: Received) -> LogEntry:
        is_dlq = received.topic == self.settings.dlq_topic and self.settings.dlq_topic != self.settings.topic
        return _from_kafka(received, dead_letter=is_dlq)

    def _records(self) -> list[LogEntry]:
        if self._all is None:
            self._all = sorted(map(self._entry, read_topics(self.settings, self.topics)), key=_by_time)
        return self._all

    def chain_ids(self, prefix: str) -> list[str]:
        chains = {e.event.chainid for e in self._records() if e.event is not None and e.event.chainid}
        return sorted(c for c in chains if c is not None and c.startswith(prefix))

    def recent_chains(self) -> list[str]:
        chains: list[str] = []
        for entry in reversed(self._records()):
            chain = entry.event.chainid if entry.event else None
            if chain and chain not in chains:
                chains.append(chain)
        return chains[:5]

    def is_empty(self) -> bool:
        return not self._records()

    def entries(self, filters: Filters) -> list[LogEntry]:
        return _keep_newest([e for e in self._records() if filters.matches(e)], filters.limit)

    def follow(
        self, filters: Filters, shown: Sequence[LogEntry], stop: threading.Event
    ) -> Iterator[LogEntry]:
        """Records that were not in the first read, as they arrive, until ``stop`` is set."""
        seen = {e.where for e in self._records()}
        for received in read_topics(self.settings, self.topics, follow=True, stop=stop):
            entry = self._entry(received)
            if entry.where not in seen and filters.matches(entry):
                yield entry


LogSource = StoreLog | KafkaLog


# -- command line ----------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), like the rest of our errors."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see python -m events.log --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m events.log",
        description="Show kfchain's event log (the event store, or the Kafka topics with --from-kafka).",
        epilog="`python -m events.log chain ID` draws the causal tree of one chain. Exit codes: 0 ok, "
        "1 nothing found, 2 usage error, 3 Kafka unreachable.",
    )
    parser.add_argument("command", nargs="*", metavar="chain ID", help="draw the causal tree of chain ID")
    parser.add_argument(
        "--type", dest="type_prefix", metavar="PREFIX", help="event type prefix, e.g. pipeline.run"
    )
    parser.add_argument("--chain", metavar="ID", help="one chain (the 8-character short id is enough)")
    parser.add_argument("--subject", help="exact subject, e.g. iris/v3")
    parser.add_argument("--since", metavar="WHEN", help="10s, 10m, 2h, 1d ago, or an ISO 8601 time")
    parser.add_argument("--limit", metavar="N", default=str(DEFAULT_LIMIT), help="newest N events (0 = all)")
    parser.add_argument("--follow", "-f", action="store_true", help="keep printing new events (Ctrl-C stops)")
    parser.add_argument("--json", action="store_true", help="one structured-mode CloudEvent (JSON) per line")
    parser.add_argument(
        "--from-kafka",
        action="store_true",
        help="read the Kafka event and dead-letter topics instead of the store",
    )
    return parser


def _limit(value: str) -> int | None:
    try:
        limit = int(value)
    except ValueError:
        limit = -1
    if limit < 0:
        raise UsageError(f"--limit {value!r} must be a whole number >= 0 (0 = all)")
    return limit or None


def _style(stream: TextIO) -> Style:
    isatty = getattr(stream, "isatty", lambda: False)()
    color = isatty and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
    try:
        "├─●✗".encode(getattr(stream, "encoding", None) or "ascii")
        unicode = True
    except (UnicodeEncodeError, LookupError):
        unicode = False
    return Style(color=color, unicode=unicode)


class _Output:
    """Writes table rows or JSON lines; invalid records go to stderr in JSON mode (stdout stays parseable)."""

    def __init__(self, as_json: bool, style: Style, shown: Sequence[LogEntry]) -> None:
        self.as_json = as_json
        self.table = Table(style, shown)
        self.out, self.err = sys.stdout, sys.stderr

    def header(self) -> None:
        if not self.as_json:
            print(self.table.header(), file=self.out)

    def write(self, entry: LogEntry) -> None:
        if not self.as_json:
            print(self.table.row(entry), file=self.out, flush=True)
        elif entry.event is not None:
            print(to_json(entry.event), file=self.out, flush=True)
        else:
            print(f"invalid record {entry.where}: {entry.invalid_reason}", file=self.err, flush=True)


def _open_source(from_kafka: bool, settings: LogSettings, create: bool) -> LogSource:
    if from_kafka:
        return KafkaLog(settings.kafka)
    if not create and not settings.store_path.exists():
        raise NothingFound(
            f"no event store at {settings.store_path}: nothing was recorded yet "
            "(the recorder writes it; set KFCHAIN_HOME if your stack keeps it elsewhere)"
        )
    return StoreLog(EventStore(settings.store_path))


def _nothing_recorded(source: LogSource) -> NothingFound:
    return NothingFound(f"no events in {source.description} yet")


def _resolve_chain(source: LogSource, prefix: str) -> str:
    try:
        return resolve_chain(prefix, source.chain_ids(prefix))
    except NothingFound:
        if source.is_empty():
            raise _nothing_recorded(source) from None
        recent = ", ".join(short_id(c) for c in source.recent_chains())
        raise NothingFound(
            f"no chain {prefix!r} in {source.description}" + (f" (recent chains: {recent})" if recent else "")
        ) from None


def show_chain(source: LogSource, prefix: str, as_json: bool) -> int:
    """Print the causal tree (or the JSON lines) of the chain whose id starts with ``prefix``."""
    chainid = _resolve_chain(source, prefix)
    events: list[Event] = []
    dead_letters: list[Event] = []  # read from the dead-letter topic (--from-kafka)
    for entry in source.entries(Filters(chain=chainid, limit=None)):
        if entry.event is not None:
            (dead_letters if entry.dead_letter else events).append(entry.event)
            if as_json:
                print(to_json(entry.event))
    if not as_json:
        print("\n".join(render_chain(chainid, events, _style(sys.stdout), dead_letters)))
    return EXIT_OK


def show_log(
    source: LogSource, filters: Filters, *, as_json: bool, follow: bool, stop: threading.Event
) -> int:
    """Print the newest matching events; with ``follow``, keep printing new ones until ``stop``."""
    shown = source.entries(filters)
    if not shown and not follow:
        if source.is_empty():
            raise _nothing_recorded(source)
        raise NothingFound(f"no events match {filters.describe()} in {source.description}")
    output = _Output(as_json, _style(sys.stdout), shown)
    output.header()
    for entry in shown:
        output.write(entry)
    if follow:
        if not as_json:
            print(f"-- following {source.description}; Ctrl-C stops", file=sys.stderr, flush=True)
        for entry in source.follow(filters, shown, stop):
            output.write(entry)
    return EXIT_OK


def run(args: argparse.Namespace, settings: LogSettings, stop: threading.Event) -> int:
    """Carry out parsed arguments; raises UsageError / NothingFound / BrokerUnavailableError."""
    if args.command and (args.command[0] != "chain" or len(args.command) != 2):
        raise UsageError(f"unknown command {' '.join(args.command)!r}; the only command is `chain ID`")
    if args.command:
        return show_chain(_open_source(args.from_kafka, settings, create=False), args.command[1], args.json)
    filters = Filters(
        type_prefix=args.type_prefix,
        subject=args.subject,
        since=parse_since(args.since) if args.since else None,
        limit=_limit(args.limit),
    )
    source = _open_source(args.from_kafka, settings, create=args.follow)
    if args.chain:
        try:
            filters = replace(filters, chain=_resolve_chain(source, args.chain))
        except NothingFound:
            if not args.follow:
                raise
            filters = replace(filters, chain=args.chain)  # it may still appear
    return show_log(source, filters, as_json=args.json, follow=args.follow, stop=stop)


def main(argv: list[str] | None = None, settings: LogSettings | None = None) -> int:
    """Entry point of ``python -m events.log``; returns the exit code."""
    stop = threading.Event()
    try:
        args = _parser().parse_intermixed_args(argv)
        settings = settings or LogSettings.from_env()
        if args.follow and threading.current_thread() is threading.main_thread():
            # end --follow cleanly, exit 0; set from another thread: the handler runs on the main
            # thread, which may hold the lock of ``stop`` (inside ``stop.wait``) at that moment
            signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=stop.set).start())
        return run(args, settings, stop)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NothingFound as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_NOTHING
    except BrokerUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BROKER
    except ValueError as exc:  # a bad environment variable (KafkaSettings.from_env names it)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:  # `python -m events.log | head`
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
