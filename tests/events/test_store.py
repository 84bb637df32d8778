"""The event store: one row per (source, id), the full CloudEvent kept, filters the log relies on."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from events.event import Event
from events.store import EventStore
from tests.events.conftest import make_chain, training_succeeded


def test_a_redelivered_event_is_stored_once(store: EventStore) -> None:
    event = training_succeeded()
    assert store.append(event) is True
    assert store.append(event) is False
    assert (
        store.append(replace(event, data={**event.data, "run_id": "changed"})) is False
    )  # same (source, id)
    assert store.count() == 1
    assert store.query()[0].event == event


def test_same_id_from_another_source_is_another_event(store: EventStore) -> None:
    event = training_succeeded()
    assert store.append(event)
    assert store.append(replace(event, source="/kfchain/pipelines/elsewhere"))
    assert store.count() == 2


def test_dead_lettered_copy_is_kept_next_to_the_original(store: EventStore) -> None:
    chain = make_chain()
    assert store.append(chain.selection)
    assert store.append(chain.selection_dead_letter)
    assert not store.append(chain.selection_dead_letter)
    stored = [s.event for s in store.chain(chain.id)]
    assert stored == [chain.selection, chain.selection_dead_letter]
    assert stored[1].extensions["knativeerrorcode"] == "503"


def test_full_cloudevent_survives_reopening(tmp_path: Path) -> None:
    chain = make_chain()
    first = EventStore(tmp_path / "events.db")
    for event in chain.events():
        first.append(event)
    first.close()
    reopened = EventStore(tmp_path / "events.db")
    assert [s.event for s in reopened.chain(chain.id)] == chain.events()
    reopened.close()


def test_store_is_wal_and_indexed(store: EventStore) -> None:
    store.append(training_succeeded())
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        indexes = {row[1] for row in db.execute("PRAGMA index_list(events)")}
    assert {"events_type", "events_chain", "events_subject", "events_time"} <= indexes


def _seeded(store: EventStore) -> tuple[list[Event], Event]:
    old = training_succeeded(run_id="old", version="v1", at=datetime.now(UTC) - timedelta(days=2))
    chain = make_chain()
    for event in [old, *chain.events()]:
        store.append(event)
    return chain.events(), old


def test_query_filters_by_type_prefix_chain_subject_and_time(store: EventStore) -> None:
    chain_events, old = _seeded(store)
    by_type = store.query(type_prefix="io.kfchain.model.")
    assert [s.event for s in by_type] == [chain_events[-1]]
    either = store.query(type_prefix=("io.kfchain.model.", "io.kfchain.pipeline.run.sub"))
    assert [s.event.type for s in either] == [
        "io.kfchain.pipeline.run.submitted",
        "io.kfchain.model.rollout.failed",
    ]
    assert store.query(type_prefix="io_kfchain") == []  # "_" is literal, not a LIKE wildcard
    assert [s.event for s in store.query(chain=chain_events[0].chainid)] == chain_events
    assert [s.event for s in store.query(subject="iris/v1")] == [old]
    recent = store.query(since=datetime.now(UTC) - timedelta(hours=1))
    assert old not in [s.event for s in recent] and len(recent) == len(chain_events)


def test_limit_keeps_the_newest_in_time_order(store: EventStore) -> None:
    chain_events, _ = _seeded(store)
    newest = store.query(limit=2)
    assert [s.event for s in newest] == chain_events[-2:]
    assert [s.event for s in store.query(type_prefix="io.kfchain.pipeline", limit=1)] == [chain_events[3]]


def test_after_seq_and_chain_prefix_serve_follow_and_short_ids(store: EventStore) -> None:
    chain_events, _ = _seeded(store)
    mark = store.last_seq()
    late = training_succeeded(run_id="late")
    store.append(late)
    assert [s.event for s in store.after(mark)] == [late]
    assert [s.event for s in store.query(after_seq=mark)] == [late]
    chainid = chain_events[0].chainid
    assert chainid is not None
    assert store.find_chain(chainid[:8]) == [chainid]
    assert store.find_chain("zzzz") == []
