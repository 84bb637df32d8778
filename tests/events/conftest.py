"""Builders for the events tests: a realistic chain (training -> selection -> rollout) with a failure."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from events.catalogue import (
    Candidate,
    ModelRolloutFailed,
    PipelineRunSubmitted,
    PipelineRunSucceeded,
    Selected,
)
from events.event import Event, caused_by, new_event
from events.store import EventStore

TRAINING_SOURCE = "/kfchain/pipelines/training"


def training_succeeded(run_id: str = "run-1", version: str = "v3", at: datetime | None = None) -> Event:
    """A training run's announcement: the event that opens a chain."""
    payload = PipelineRunSucceeded(
        pipeline="training",
        run_id=run_id,
        model_name="iris",
        model_version=version,
        candidates=(Candidate(k=3, accuracy=0.93, uri="file:///artifacts/knn-3"),),
    )
    return new_event(payload, source=TRAINING_SOURCE, subject=f"iris/{version}", time=at)


@dataclass(frozen=True)
class Chain:
    """training -> submitted (+0.4 s) -> selection (+95 s, dead-lettered at the deployer) -> rollout failed (+35 s)."""

    training: Event
    submitted: Event
    selection: Event
    selection_dead_letter: Event
    rollout_failed: Event

    @property
    def id(self) -> str:
        assert self.training.chainid is not None
        return self.training.chainid

    def events(self) -> list[Event]:
        return [
            self.training,
            self.submitted,
            self.selection,
            self.selection_dead_letter,
            self.rollout_failed,
        ]


def make_chain(start: datetime | None = None) -> Chain:
    t0 = start or datetime.now(UTC) - timedelta(minutes=5)
    training = training_succeeded(at=t0)
    submitted = caused_by(
        training,
        PipelineRunSubmitted(pipeline="model-selection", run_id="run-2", model_version="v3"),
        source="/kfchain/services/selector",
    )
    submitted = replace(submitted, time=t0 + timedelta(seconds=0.4))
    selection = caused_by(
        submitted,
        PipelineRunSucceeded(
            pipeline="model-selection",
            run_id="run-2",
            model_name="iris",
            model_version="v3",
            selected=Selected(
                k=3, accuracy=0.93, uri="file:///artifacts/knn-3", serving_uri="file:///serving/iris/v3"
            ),
        ),
        source="/kfchain/pipelines/model-selection",
    )
    selection = replace(selection, time=t0 + timedelta(seconds=95))
    dead_letter = selection.with_extensions(
        knativeerrordest="http://deployer.kfchain.svc.cluster.local",
        knativeerrorcode="503",
        knativeerrordata=base64.b64encode(b"deployer unavailable").decode(),  # as Knative writes it
    )
    rollout_failed = caused_by(
        selection,
        ModelRolloutFailed(
            model_name="iris", model_version="v3", reason="predictor not ready", serving_version="v2"
        ),
        source="/kfchain/services/deployer",
    )
    rollout_failed = replace(rollout_failed, time=t0 + timedelta(seconds=130))
    return Chain(training, submitted, selection, dead_letter, rollout_failed)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    events_store = EventStore(tmp_path / "events.db")
    yield events_store
    events_store.close()
