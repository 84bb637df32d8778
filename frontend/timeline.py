"""What the event store says, shaped for pages: the model now serving and chains as timelines.

Event data is untrusted (anything can be dead-lettered into the store), so every field is read
defensively and only ever rendered through autoescaping templates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from events.catalogue import (
    MODEL_DEPLOYED,
    MODEL_ROLLOUT_FAILED,
    PIPELINE_RUN_FAILED,
    PIPELINE_RUN_SUBMITTED,
    PIPELINE_RUN_SUCCEEDED,
)
from events.event import Event
from events.store import EventStore, StoredEvent


def _data(event: Event) -> dict[str, Any]:
    return event.data if isinstance(event.data, dict) else {}


def _text(value: Any, limit: int = 200) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def format_duration(seconds: float | None) -> str:
    """``0.4 s``, ``12 s``, ``3 min 5 s``, ``2 h 4 min``; empty for unknown."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def format_accuracy(value: Any) -> str:
    number = _number(value)
    return "" if number is None else f"{number:.1%}"


@dataclass(frozen=True)
class ServingModel:
    """The latest ``model.deployed`` event, and a newer failed rollout if there is one."""

    model_name: str
    model_version: str
    k: str
    accuracy: str
    deployed_at: datetime
    chainid: str
    traffic_percent: str
    previous_version: str
    endpoint: str
    failed_rollout: str = ""  # "v3: reason" when a later rollout failed


def serving_model(store: EventStore) -> ServingModel | None:
    """The model now serving according to the event log (blocking: call it in a thread)."""
    deployed = store.query(type_prefix=MODEL_DEPLOYED, limit=1)
    if not deployed:
        return None
    event = deployed[-1].event
    data = _data(event)
    failed_rollout = ""
    failures = store.query(type_prefix=MODEL_ROLLOUT_FAILED, since=event.time, limit=1)
    if failures and failures[-1].event.time > event.time:
        failure = _data(failures[-1].event)
        failed_rollout = f"{_text(failure.get('model_version'), 40)}: {_text(failure.get('reason'))}"
    return ServingModel(
        model_name=_text(data.get("model_name"), 80),
        model_version=_text(data.get("model_version"), 80),
        k=_text(data.get("k"), 10),
        accuracy=format_accuracy(data.get("accuracy")),
        deployed_at=event.time,
        chainid=_text(event.chainid or event.id, 80),
        traffic_percent=_text(data.get("traffic_percent"), 10),
        previous_version=_text(data.get("previous_version"), 80),
        endpoint=_text(data.get("endpoint"), 200),
        failed_rollout=failed_rollout,
    )


def describe(event: Event) -> str:
    """One line saying what happened, from the event's type and data."""
    data = _data(event)
    pipeline = _text(data.get("pipeline"), 40)
    version = _text(data.get("model_version"), 40)
    if event.type == PIPELINE_RUN_SUCCEEDED:
        if isinstance(data.get("selected"), dict):
            selected = data["selected"]
            return (
                f"{pipeline} run chose K={_text(selected.get('k'), 10)} "
                f"(accuracy {format_accuracy(selected.get('accuracy'))}) for {version}"
            )
        candidates = data.get("candidates")
        if isinstance(candidates, list) and candidates:
            scored = [c for c in candidates if isinstance(c, dict) and _number(c.get("accuracy")) is not None]
            best = max(scored, key=lambda c: c["accuracy"], default=None)
            best_text = (
                f", best K={_text(best.get('k'), 10)} at {format_accuracy(best.get('accuracy'))}"
                if best
                else ""
            )
            noun = "candidate" if len(candidates) == 1 else "candidates"
            return f"{pipeline} run trained {len(candidates)} {noun} for {version}{best_text}"
        return f"{pipeline} run succeeded ({version})"
    if event.type == PIPELINE_RUN_SUBMITTED:
        return f"submitted {pipeline} run {_text(data.get('run_id'), 60)} for {version}"
    if event.type == PIPELINE_RUN_FAILED:
        return f"{pipeline} run ended {_text(data.get('state'), 30)}: {_text(data.get('error'))}"
    if event.type == MODEL_DEPLOYED:
        return (
            f"deployed {_text(data.get('model_name'), 40)} {version} (K={_text(data.get('k'), 10)}, "
            f"accuracy {format_accuracy(data.get('accuracy'))}) at {_text(data.get('traffic_percent'), 10)}% traffic"
        )
    if event.type == MODEL_ROLLOUT_FAILED:
        serving = _text(data.get("serving_version"), 40) or "nothing"
        return f"rollout of {version} failed: {_text(data.get('reason'))}; still serving {serving}"
    return _text(event.type, 120)


def short_type(type_: str) -> str:
    """``io.kfchain.pipeline.run.succeeded`` -> ``pipeline.run.succeeded``."""
    return type_.removeprefix("io.kfchain.")


@dataclass(frozen=True)
class Step:
    """One event of a chain as the timeline shows it."""

    seq: int
    id: str
    type: str  # the full CloudEvent type; templates shorten it with |short_type
    source: str
    time: datetime
    summary: str
    duration: str  # since the event that caused it (or the previous step)
    failed: bool
    dead_lettered: bool
    dead_letter: str  # "HTTP 400 from <dest>: <data>"


@dataclass
class Chain:
    """The events of one chain in time order."""

    chainid: str
    steps: list[Step] = field(default_factory=list)
    model_version: str = ""

    @property
    def short_id(self) -> str:
        return self.chainid[:8]

    @property
    def started(self) -> datetime:
        return self.steps[0].time

    @property
    def last_seq(self) -> int:
        return max(s.seq for s in self.steps)

    @property
    def duration(self) -> str:
        return format_duration((self.steps[-1].time - self.steps[0].time).total_seconds())

    @property
    def status(self) -> str:
        """``failed``, ``deployed`` or ``running``."""
        if any(s.failed for s in self.steps):
            return "failed"
        if any(s.type == MODEL_DEPLOYED for s in self.steps):
            return "deployed"
        return "running"


def _dead_letter_text(event: Event) -> str:
    ext = event.extensions
    code = _text(ext.get("knativeerrorcode"), 10)
    dest = _text(ext.get("knativeerrordest"), 120)
    data = _text(event.dead_letter_error, 200)
    parts = [f"HTTP {code}" if code else "undeliverable", f"from {dest}" if dest else ""]
    text = " ".join(p for p in parts if p)
    return f"{text}: {data}" if data else text


def build_chain(chainid: str, stored: list[StoredEvent]) -> Chain:
    """A chain from its stored events (already in time order)."""
    chain = Chain(chainid)
    by_id: dict[str, Event] = {}
    previous: Event | None = None
    for record in stored:
        event = record.event
        cause = by_id.get(event.causationid or "") or previous
        seconds = (event.time - cause.time).total_seconds() if cause is not None else None
        chain.steps.append(
            Step(
                seq=record.seq,
                id=event.id,
                type=event.type,
                source=_text(event.source, 120),
                time=event.time,
                summary=describe(event),
                duration=format_duration(seconds if seconds is None or seconds >= 0 else 0.0),
                failed=event.failed,
                dead_lettered=event.dead_lettered,
                dead_letter=_dead_letter_text(event) if event.dead_lettered else "",
            )
        )
        by_id.setdefault(event.id, event)
        previous = event
        if not chain.model_version:
            chain.model_version = _text(_data(event).get("model_version"), 40)
    return chain


def chain_key(event: Event) -> str:
    """The chain an event belongs to (an event without ``chainid`` is a chain of its own)."""
    return event.chainid or event.id


def recent_chains(store: EventStore, limit: int = 20) -> list[Chain]:
    """The most recently active chains, newest first (blocking: call it in a thread)."""
    return [build_chain(cid, store.chain(cid)) for cid in store.chains(limit)]


def one_chain(store: EventStore, chainid: str) -> Chain | None:
    """One chain by full id or by the short prefix the pages show (blocking)."""
    stored = store.chain(chainid)
    if not stored and len(chainid) >= 4:
        matches = store.find_chain(chainid)
        if len(matches) == 1:
            chainid = matches[0]
            stored = store.chain(chainid)
    return build_chain(chainid, stored) if stored else None
