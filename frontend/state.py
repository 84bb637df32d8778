"""What one app instance holds while it serves: settings, the predictor client, the event store, metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

from quart import current_app

from events.store import EventStore
from frontend.metrics import FrontendMetrics
from frontend.predictor import PredictorClient
from frontend.settings import Settings


@dataclass
class FrontendState:
    settings: Settings
    predictor: PredictorClient
    metrics: FrontendMetrics
    store: EventStore | None = field(default=None)

    def events(self) -> EventStore:
        if self.store is None:
            raise RuntimeError("the event store is opened in before_serving; use app.test_app() in tests")
        return self.store


def state() -> FrontendState:
    """The state of the app handling the current request."""
    return current_app.extensions["kfchain"]
