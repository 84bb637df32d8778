"""What an exit handler announces: the run's end as one typed CloudEvent (DESIGN.md, event contract).

``build_run_event`` is pure (final status + registry -> Event); ``announce`` adds publishing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from events.catalogue import (
    MODEL_SELECTION,
    TRAINING,
    Candidate,
    PipelineRunFailed,
    PipelineRunSucceeded,
    Selected,
)
from events.event import Event, new_event, stable_id
from pipelines.registry import ModelRegistry

SOURCES = {TRAINING: "/kfchain/pipelines/training", MODEL_SELECTION: "/kfchain/pipelines/model-selection"}
SUCCEEDED = "SUCCEEDED"
ERRORS_FILE = "errors.txt"


@dataclass(frozen=True)
class RunEnd:
    """The facts the exit handler has about a finished run."""

    pipeline: str
    run_id: str
    state: str  # KFP final state: SUCCEEDED, FAILED, CANCELED, ...
    model_name: str
    model_version: str
    error: str = ""
    chain_id: str = ""
    causation_id: str = ""


def build_run_event(end: RunEnd, registry: ModelRegistry) -> Event:
    """The ``pipeline.run.succeeded``/``failed`` event of ``end``.

    Its id is derived from run id and final state, so a retried exit handler announces the same
    fact under the same id. A run that succeeded but left nothing in the registry is reported failed.
    """
    if end.pipeline not in SOURCES:
        raise ValueError(f"pipeline {end.pipeline!r} is unknown; expected one of {sorted(SOURCES)}")
    state, error = end.state.upper(), end.error
    payload: PipelineRunSucceeded | PipelineRunFailed | None = None
    if state == SUCCEEDED:
        records = registry.models(end.model_name, end.model_version)
        if end.pipeline == TRAINING:
            candidates = tuple(Candidate(k=r.k, accuracy=r.accuracy, uri=r.uri) for r in records)
            if candidates:
                payload = _succeeded(end, candidates=candidates)
            else:
                error = f"no candidates registered for {end.model_name}/{end.model_version}"
        else:
            chosen = next((r for r in records if r.selected), None)
            if chosen is not None:
                selected = Selected(
                    k=chosen.k, accuracy=chosen.accuracy, uri=chosen.uri, serving_uri=chosen.serving_uri
                )
                payload = _succeeded(end, selected=selected)
            else:
                error = f"no model of {end.model_name}/{end.model_version} is marked selected"
        if payload is None:
            state = "FAILED"
    if payload is None:
        payload = PipelineRunFailed(
            pipeline=end.pipeline,
            run_id=end.run_id,
            state=state,
            error=error or f"the run ended in state {state}",
            model_name=end.model_name or None,
            model_version=end.model_version or None,
        )
    return new_event(
        payload,
        source=SOURCES[end.pipeline],
        subject=f"{end.model_name}/{end.model_version}",
        id=stable_id(SOURCES[end.pipeline], end.run_id, state),
        chainid=end.chain_id or None,
        causationid=end.causation_id or None,
    )


def _succeeded(end: RunEnd, **outputs: object) -> PipelineRunSucceeded:
    return PipelineRunSucceeded(
        pipeline=end.pipeline,
        run_id=end.run_id,
        model_name=end.model_name,
        model_version=end.model_version,
        **outputs,  # type: ignore[arg-type]
    )


def read_local_errors(notes_dir: str) -> str:
    """Errors the local runner noted for this run (the local final status only says "task X failed")."""
    if not notes_dir:
        return ""
    path = Path(notes_dir) / ERRORS_FILE
    try:
        return "; ".join(line for line in path.read_text().splitlines() if line.strip())
    except OSError:
        return ""


def announce(end: RunEnd, registry: ModelRegistry, bootstrap_servers: str = "", topic: str = "") -> Event:
    """Build the run's end event and publish it; broker errors propagate (the exit task then fails)."""
    from events import kafka

    event = build_run_event(end, registry)
    settings = kafka.KafkaSettings.from_env()
    overrides: dict[str, Any] = {}
    if bootstrap_servers:
        overrides["bootstrap_servers"] = bootstrap_servers
    if topic:
        overrides["topic"] = topic
    if overrides:
        from dataclasses import replace

        settings = replace(settings, **overrides)
    kafka.publish(event, settings)
    return event
