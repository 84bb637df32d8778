"""The selector's way to start a model-selection run: ``pipelines.runner.submit_selection``.

Locally the run goes to a child process forked from a warm server (the HTTP request is not blocked,
and the run does not wait for an interpreter to import kfp); with ``KFP_HOST`` it is
created through the KFP API. Either way the run's exit handler announces its end.
"""

from __future__ import annotations

from pipelines.background import warm_up
from pipelines.runner import SubmitError, submit_selection
from pipelines.settings import PipelinesSettings
from services.sink import Rejected, TryLater


def pipelines_submitter(settings: PipelinesSettings):  # noqa: ANN201 - a SelectionSubmitter
    """A ``SelectionSubmitter`` bound to ``settings``; local runs fork from a server started now."""
    if settings.local:
        warm_up()

    def submit(*, model_name: str, model_version: str, chain_id: str, causation_id: str) -> str:
        try:
            handle = submit_selection(model_name, model_version, chain_id, causation_id, settings, wait=False)
        except SubmitError as exc:
            message = str(exc)
            # A bad name is the event's fault (not retried); anything else may pass (retried).
            if "model name" in message or "model version" in message:
                raise Rejected(message) from exc
            raise TryLater(message) from exc
        return handle.run_id

    return submit


def submitter_from_env():  # noqa: ANN201 - a SelectionSubmitter
    """The submitter configured by the environment (``KFP_HOST``, ``KFCHAIN_HOME``, Kafka...)."""
    return pipelines_submitter(PipelinesSettings.from_env())
