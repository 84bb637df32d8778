"""The selector: a finished training run starts the model-selection run of that model version.

``python -m services.selector``. Subscribed by the ``on-training-done`` Trigger
(type=pipeline.run.succeeded, pipeline=training). Replies ``pipeline.run.submitted``. The run itself
is not done inside the HTTP request: it is submitted (local runner in the background, or the KFP
API) and its own exit handler reports the outcome. One selection run per training run, even when
the event arrives twice or is re-published under another id.
"""

from __future__ import annotations

from typing import Protocol

from events.catalogue import (
    MODEL_SELECTION,
    PIPELINE_RUN_SUCCEEDED,
    TRAINING,
    PipelineRunSubmitted,
    PipelineRunSucceeded,
)
from events.event import Event, caused_by, stable_id
from services.serve import run
from services.settings import SinkSettings
from services.sink import Rejected, SinkHandler, create_sink_app

DEFAULT_PORT = 8091
SOURCE = "/kfchain/services/selector"


class SelectionSubmitter(Protocol):
    """Starts a model-selection run without waiting for it; returns the run id."""

    def __call__(self, *, model_name: str, model_version: str, chain_id: str, causation_id: str) -> str: ...


def _training_done(event: Event) -> PipelineRunSucceeded:
    payload = event.payload()
    if event.type != PIPELINE_RUN_SUCCEEDED or not isinstance(payload, PipelineRunSucceeded):
        raise Rejected(f"expects {PIPELINE_RUN_SUCCEEDED}, got {event.type}")
    if payload.pipeline != TRAINING:
        raise Rejected(f"expects pipeline={TRAINING!r}, got {payload.pipeline!r}")
    return payload


def selector_handler(submit: SelectionSubmitter) -> SinkHandler:
    """The selector's logic around a submitter (local runner or KFP API)."""

    def handle(event: Event) -> Event:
        payload = _training_done(event)
        run_id = submit(
            model_name=payload.model_name,
            model_version=payload.model_version,
            chain_id=event.chainid or event.id,
            causation_id=event.id,
        )
        submitted = PipelineRunSubmitted(
            pipeline=MODEL_SELECTION, run_id=run_id, model_version=payload.model_version
        )
        return caused_by(
            event,
            submitted,
            source=SOURCE,
            subject=f"{payload.model_name}/{payload.model_version}",
            id=stable_id("selection-submitted", payload.model_name, payload.model_version, payload.run_id),
        )

    def business_key(event: Event) -> str:
        payload = _training_done(event)
        return f"selection/{payload.model_name}/{payload.model_version}/{payload.run_id}"

    return SinkHandler(
        name="selector",
        handle=handle,
        accepts=_training_done,
        business_key=business_key,
    )


def create_app(settings: SinkSettings, submit: SelectionSubmitter | None = None):  # noqa: ANN201 - Quart app
    """The selector's ASGI app; without ``submit`` it uses the pipelines' submitter from the environment."""
    if submit is None:
        from services.selection_submitter import submitter_from_env

        submit = submitter_from_env()
    return create_sink_app(selector_handler(submit), settings)


def main() -> None:
    settings = SinkSettings.from_env("selector", DEFAULT_PORT)
    run(create_app(settings), settings.host, settings.port, name="selector")


if __name__ == "__main__":
    main()
