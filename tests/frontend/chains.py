"""Realistic chains written into a real event store for the frontend tests."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from events.catalogue import (
    Candidate,
    ModelDeployed,
    PipelineRunFailed,
    PipelineRunSubmitted,
    PipelineRunSucceeded,
    Selected,
)
from events.event import Event, new_event
from events.store import EventStore

SELECTOR = "/kfchain/services/selector"
DEPLOYER = "/kfchain/services/deployer"
HOSTILE = "<script>alert('xss')</script>"


@dataclass(frozen=True)
class FilledStore:
    path: Path
    deployed_chain: str
    failed_chain: str


def _then(cause: Event, payload: object, source: str, after_s: float) -> Event:
    return new_event(
        payload,  # type: ignore[arg-type]
        source=source,
        subject=cause.subject,
        chainid=cause.chainid,
        causationid=cause.id,
        time=cause.time + timedelta(seconds=after_s),
    )


def deployed_chain(start: datetime, version: str = "v2") -> list[Event]:
    """training succeeded -> selection submitted -> selection succeeded -> model deployed."""
    trained = new_event(
        PipelineRunSucceeded(
            pipeline="training",
            run_id=f"train-{version}",
            model_name="iris",
            model_version=version,
            candidates=(
                Candidate(3, 0.933, f"file:///m/{version}/k3"),
                Candidate(5, 0.967, f"file:///m/{version}/k5"),
                Candidate(7, 0.9, f"file:///m/{version}/k7"),
            ),
        ),
        source="/kfchain/pipelines/training",
        subject=f"iris/{version}",
        time=start,
    )
    submitted = _then(
        trained,
        PipelineRunSubmitted(pipeline="model-selection", run_id=f"select-{version}", model_version=version),
        SELECTOR,
        1.5,
    )
    selected = _then(
        submitted,
        PipelineRunSucceeded(
            pipeline="model-selection",
            run_id=f"select-{version}",
            model_name="iris",
            model_version=version,
            selected=Selected(
                5, 0.967, f"file:///m/{version}/k5", serving_uri=f"file:///serving/iris/{version}"
            ),
        ),
        "/kfchain/pipelines/model-selection",
        42.0,
    )
    deployed = _then(
        selected,
        ModelDeployed(
            model_name="iris",
            model_version=version,
            k=5,
            accuracy=0.967,
            endpoint="http://127.0.0.1:8080/v1/models/iris",
            traffic_percent=100,
            previous_version="v1",
        ),
        DEPLOYER,
        3.2,
    )
    return [trained, submitted, selected, deployed]


def failed_chain(start: datetime, version: str = "v3") -> list[Event]:
    """A training run whose success event the selector refused (400, dead-lettered), then a failed run."""
    trained = new_event(
        PipelineRunSucceeded(
            pipeline="training",
            run_id=f"train-{version}",
            model_name="iris",
            model_version=version,
            candidates=(Candidate(9, 0.91, f"file:///m/{version}/k9"),),
        ),
        source="/kfchain/pipelines/training",
        subject=f"iris/{version}",
        time=start,
    )
    dead = trained.with_extensions(
        knativeerrordest="http://127.0.0.1:8091/",
        knativeerrorcode="400",
        knativeerrordata=base64.b64encode(f"candidate uri not readable {HOSTILE}".encode()).decode(),
    )
    failed = _then(
        trained,
        PipelineRunFailed(
            pipeline="model-selection", run_id=f"select-{version}", state="FAILED", error=HOSTILE
        ),
        "/kfchain/pipelines/model-selection",
        30.0,
    )
    return [trained, dead, failed]


def fill_store(path: Path) -> FilledStore:
    """An event store with a deployed chain (v2) and, later, a failed one with a dead letter (v3)."""
    start = datetime.now(UTC) - timedelta(hours=1)
    ok = deployed_chain(start)
    bad = failed_chain(start + timedelta(minutes=10))
    store = EventStore(path)
    try:
        for event in (*ok, *bad):
            store.append(event)
    finally:
        store.close()
    return FilledStore(path, deployed_chain=str(ok[0].chainid), failed_chain=str(bad[0].chainid))
