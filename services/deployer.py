"""The deployer: a finished model-selection run rolls the selected model out.

``python -m services.deployer``. Subscribed by the ``on-selection-done`` Trigger
(type=pipeline.run.succeeded, pipeline=model-selection). Replies ``model.deployed`` or
``model.rollout.failed`` (with the version that still serves). One rollout per model version;
rolling out the version already serving is a no-op that still replies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from events.catalogue import (
    MODEL_SELECTION,
    PIPELINE_RUN_SUCCEEDED,
    ModelDeployed,
    ModelRolloutFailed,
    PipelineRunSucceeded,
)
from events.event import Event, caused_by, stable_id
from services.rollout.base import RolloutBackend, RolloutFailed
from services.serve import run
from services.settings import SinkSettings
from services.sink import Rejected, SinkHandler, create_sink_app

log = logging.getLogger("kfchain.deployer")

DEFAULT_PORT = 8092
SOURCE = "/kfchain/services/deployer"

#: Called after a successful rollout (the registry marks the version serving).
OnDeployed = Callable[[str, str], None]


def _selection_done(event: Event) -> PipelineRunSucceeded:
    payload = event.payload()
    if event.type != PIPELINE_RUN_SUCCEEDED or not isinstance(payload, PipelineRunSucceeded):
        raise Rejected(f"expects {PIPELINE_RUN_SUCCEEDED}, got {event.type}")
    if payload.pipeline != MODEL_SELECTION or payload.selected is None:
        raise Rejected(
            f"expects pipeline={MODEL_SELECTION!r} with a selected model, got {payload.pipeline!r}"
        )
    return payload


def deployer_handler(backend: RolloutBackend, on_deployed: OnDeployed | None = None) -> SinkHandler:
    """The deployer's logic around a rollout backend (local predictor or KServe)."""

    def handle(event: Event) -> Event:
        payload = _selection_done(event)
        selected = payload.selected
        assert selected is not None
        subject = f"{payload.model_name}/{payload.model_version}"
        reply_id = stable_id("rollout", payload.model_name, payload.model_version)
        try:
            outcome = backend.rollout(payload.model_name, payload.model_version, selected.serving_uri)
        except RolloutFailed as exc:
            failed = ModelRolloutFailed(
                model_name=payload.model_name,
                model_version=payload.model_version,
                reason=exc.reason,
                serving_version=exc.serving_version,
            )
            return caused_by(event, failed, source=SOURCE, subject=subject, id=reply_id)
        if on_deployed is not None:
            on_deployed(payload.model_name, payload.model_version)
        deployed = ModelDeployed(
            model_name=payload.model_name,
            model_version=payload.model_version,
            k=selected.k,
            accuracy=selected.accuracy,
            endpoint=outcome.endpoint,
            traffic_percent=outcome.traffic_percent,
            previous_version=outcome.previous_version,
        )
        return caused_by(event, deployed, source=SOURCE, subject=subject, id=reply_id)

    def business_key(event: Event) -> str:
        payload = _selection_done(event)
        return f"rollout/{payload.model_name}/{payload.model_version}"

    return SinkHandler(
        name="deployer",
        handle=handle,
        accepts=_selection_done,
        business_key=business_key,
    )


def create_app(
    settings: SinkSettings, backend: RolloutBackend | None = None, on_deployed: OnDeployed | None = None
):  # noqa: ANN201 - Quart app
    """The deployer's ASGI app; without ``backend`` the one chosen by the environment is used."""
    if backend is None:
        from services.rollout import backend_from_env

        backend = backend_from_env()
    return create_sink_app(deployer_handler(backend, on_deployed), settings)


def registry_marker() -> OnDeployed:
    """Marks a rolled-out version as serving in the model registry; a registry that cannot be
    written (e.g. not mounted on a cluster) is logged, since the rollout itself succeeded."""
    from pipelines.registry import RegistryError, open_registry
    from pipelines.settings import PipelinesSettings

    path = PipelinesSettings.from_env().registry_path

    def mark(model_name: str, model_version: str) -> None:
        try:
            open_registry(path).mark_serving(model_name, model_version)
        except (RegistryError, OSError) as exc:
            log.warning(
                "could not mark %s/%s serving in the registry at %s: %s", model_name, model_version, path, exc
            )

    return mark


def main() -> None:
    settings = SinkSettings.from_env("deployer", DEFAULT_PORT)
    run(create_app(settings, on_deployed=registry_marker()), settings.host, settings.port, name="deployer")


if __name__ == "__main__":
    main()
