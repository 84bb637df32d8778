"""The recorder: appends every event it receives to the event store, dead letters included.

``python -m services.recorder``. Subscribed by the ``record-all`` Trigger (no filter) and by the
KafkaSource on the dead-letter topic. Events of types outside the catalogue are recorded too (the
log marks them); only an invalid CloudEvent is refused (400).
"""

from __future__ import annotations

from events.event import Event
from events.store import EventStore
from services.serve import run
from services.settings import SinkSettings
from services.sink import SinkHandler, create_sink_app

DEFAULT_PORT = 8093


def recorder_handler(store: EventStore) -> SinkHandler:
    """Record each event once; the store itself dedupes on (source, id, dead-letter destination)."""

    def record(event: Event) -> None:
        store.append(event)
        return None

    return SinkHandler(
        name="recorder", handle=record, validate_payload=False, serialize=False, remember=False
    )


def create_app(settings: SinkSettings, store: EventStore | None = None):  # noqa: ANN201 - Quart app
    """The recorder's ASGI app."""
    store = store or EventStore(settings.home / "events.db")
    return create_sink_app(recorder_handler(store), settings)


def main() -> None:
    settings = SinkSettings.from_env("recorder", DEFAULT_PORT)
    run(create_app(settings), settings.host, settings.port, name="recorder")


if __name__ == "__main__":
    main()
