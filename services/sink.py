"""The shared base of kfchain's CloudEvent sinks (Knative Services), as a Quart app.

The CloudEvent is decoded once at the edge into a typed ``Event``; the handler sees only that.
Status codes follow Knative's data-plane contract (DESIGN.md "Delivery semantics"):
2xx done (200 carries a reply CloudEvent in binary mode, 202 none), 400 for an invalid CloudEvent
or payload (not retried, dead-lettered), 405 for a non-POST, 5xx only for failures worth retrying.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from quart import Quart, Response, request

from events.codec import from_http as decode_http
from events.codec import to_http
from events.errors import InvalidEventError
from events.event import Event
from services.settings import SinkSettings
from services.state import MISSING, ServiceState

log = logging.getLogger("kfchain.services")

MAX_EVENT_BYTES = 1 << 20  # a CloudEvent of kfchain is a few KiB; 1 MiB leaves room, bounds memory


class Rejected(ValueError):
    """The event is valid but this service cannot accept it (answered 400, not retried)."""


class TryLater(RuntimeError):
    """A temporary failure (answered 503, retried by the broker)."""


@dataclass(frozen=True)
class Decision:
    """What a handler decided: an optional reply, and an optional business key to remember it by."""

    reply: Event | None = None
    business_key: str | None = None


@dataclass
class SinkHandler:
    """A service's logic: pure where it can be.

    ``accepts`` raises ``Rejected`` or ``InvalidEventError`` for an event that is not for this service
    (answered 400; its return value is ignored); ``business_key`` names the
    unit of work, so a second event for the same work gets the first reply without redoing it;
    ``handle`` does the work and returns the reply (or None). ``handle`` runs in a worker thread.
    """

    name: str
    handle: Callable[[Event], Event | None]
    accepts: Callable[[Event], object] = lambda event: None
    business_key: Callable[[Event], str | None] = lambda event: None
    ready: Callable[[], bool] = lambda: True
    validate_payload: bool = True
    serialize: bool = True  # one event at a time: handlers are quick, and order of work is simpler
    remember: bool = True  # False when the handler is idempotent by itself (the recorder's store)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class SinkMetrics:
    """Prometheus metrics of one sink (own registry, so tests can build many apps)."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        labels = ["service", "type"]
        self.received = Counter(
            "kfchain_events_received_total", "CloudEvents received", labels, registry=self.registry
        )
        self.handled = Counter(
            "kfchain_events_handled_total", "CloudEvents handled", labels, registry=self.registry
        )
        self.failed = Counter(
            "kfchain_events_failed_total",
            "CloudEvents rejected or failed",
            [*labels, "reason"],
            registry=self.registry,
        )
        self.duplicate = Counter(
            "kfchain_events_duplicate_total",
            "Redelivered CloudEvents answered from state",
            labels,
            registry=self.registry,
        )
        self.latency = Histogram(
            "kfchain_handler_latency_seconds",
            "Time to handle one CloudEvent",
            ["service"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.service = service


def _error(status: int, message: str, field_name: str | None = None) -> Response:
    body = {"error": message}
    if field_name:
        body["field"] = field_name
    return Response(json.dumps(body), status=status, content_type="application/json")


def _reply(event: Event | None) -> Response:
    if event is None:
        return Response("", status=202)
    headers, body = to_http(event)
    return Response(body, status=200, headers=headers)


def create_sink_app(handler: SinkHandler, settings: SinkSettings, state: ServiceState | None = None) -> Quart:
    """The ASGI app of one CloudEvent service."""
    app = Quart(f"kfchain.{handler.name}")
    app.config["MAX_CONTENT_LENGTH"] = MAX_EVENT_BYTES
    metrics = SinkMetrics(handler.name)
    app.extensions["kfchain.metrics"] = metrics
    app.extensions["kfchain.settings"] = settings
    holder: dict[str, ServiceState] = {}

    @app.before_serving
    async def open_state() -> None:
        holder["state"] = state or ServiceState(settings.state_path)

    @app.after_serving
    async def close_state() -> None:
        if state is None and "state" in holder:
            holder["state"].close()

    def _work(event: Event) -> tuple[Event | None, bool]:
        """Handle ``event`` once; return (reply, was_duplicate). Runs in a worker thread."""
        if not handler.remember:
            return handler.handle(event), False
        store = holder["state"]
        previous = store.handled_reply(event)
        if previous is not MISSING:
            return previous, True  # type: ignore[return-value]
        key = handler.business_key(event)
        if key is not None:
            earlier = store.business_reply(key)
            if earlier is not MISSING:
                store.remember_handled(event, earlier)  # type: ignore[arg-type]
                return earlier, True  # type: ignore[return-value]
        reply = handler.handle(event)
        if key is not None:
            store.remember_business(key, reply)
        store.remember_handled(event, reply)
        return reply, False

    def _serialized(event: Event) -> tuple[Event | None, bool]:
        if not handler.serialize:
            return _work(event)
        with handler._lock:
            return _work(event)

    @app.post("/")
    async def receive() -> Response:
        body = await request.get_data()
        try:
            event = decode_http(request.headers.items(), body)
        except InvalidEventError as exc:
            metrics.failed.labels(handler.name, "unknown", "invalid_cloudevent").inc()
            return _error(400, f"invalid CloudEvent: {exc}", exc.field)
        metrics.received.labels(handler.name, event.type).inc()
        try:
            handler.accepts(event)
            if handler.validate_payload:
                event.validate()
        except InvalidEventError as exc:
            metrics.failed.labels(handler.name, event.type, "invalid_payload").inc()
            return _error(400, f"invalid event {event.id}: {exc}", exc.field)
        except Rejected as exc:
            metrics.failed.labels(handler.name, event.type, "rejected").inc()
            return _error(400, f"{handler.name} does not accept event {event.id}: {exc}")
        started = time.perf_counter()
        try:
            reply, duplicate = await asyncio.to_thread(_serialized, event)
        except Rejected as exc:
            metrics.failed.labels(handler.name, event.type, "rejected").inc()
            return _error(400, f"{handler.name} rejected event {event.id}: {exc}")
        except TryLater as exc:
            metrics.failed.labels(handler.name, event.type, "try_later").inc()
            return _error(503, f"{handler.name} could not handle event {event.id} now: {exc}")
        except Exception as exc:  # a bug or an outage: 500 so the broker retries, then dead-letters
            log.exception("%s failed on event %s", handler.name, event.id)
            metrics.failed.labels(handler.name, event.type, "error").inc()
            return _error(500, f"{handler.name} failed on event {event.id}: {type(exc).__name__}: {exc}")
        finally:
            metrics.latency.labels(handler.name).observe(time.perf_counter() - started)
        if duplicate:
            metrics.duplicate.labels(handler.name, event.type).inc()
        else:
            metrics.handled.labels(handler.name, event.type).inc()
        return _reply(reply)

    @app.get("/health/liveness")
    async def liveness() -> Response:
        return Response('{"alive": true}', content_type="application/json")

    @app.get("/health/readiness")
    async def readiness() -> Response:
        if "state" in holder and handler.ready():
            return Response('{"ready": true}', content_type="application/json")
        return _error(503, f"{handler.name} is not ready")

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST)

    return app
