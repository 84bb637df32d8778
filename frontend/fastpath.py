"""The served ASGI app: ``POST /api/predict`` answered directly, everything else by Quart.

Quart's request machinery (contexts, hooks, wrappers) costs more CPU than the prediction itself
for one iris row, and ``/api/predict`` is what scripts and Locust hammer. This thin ASGI layer
answers that one route with the same code the Quart route uses (``frontend.api.predict_json``),
the same body limit, security headers and metrics; all other traffic, and the lifespan events
that open the predictor session and the event store, go to the Quart app unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from quart import Quart

from frontend.api import predict_json
from frontend.app import MAX_BODY_BYTES, SECURITY_HEADERS
from frontend.predictor import VERSION_HEADER
from frontend.state import FrontendState

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

ROUTE = "/api/predict"
_BASE_HEADERS = [(b"content-type", b"application/json")] + [
    (name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()
]


class _TooLarge(Exception):
    pass


class PredictFastPath:
    """ASGI app: the ``/api/predict`` hot path in front of the Quart ``app``."""

    def __init__(self, app: Quart) -> None:
        self.app: Any = app  # called with plain ASGI dicts
        self.state: FrontendState = app.extensions["kfchain"]
        metrics = self.state.metrics
        self._latency = metrics.latency.labels(ROUTE)
        self._counted: dict[int, Any] = {}

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == ROUTE and scope["method"] == "POST":
            await self._predict(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _predict(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        mimetype = ""
        for name, value in scope["headers"]:
            if name == b"content-type":
                mimetype = value.decode("latin-1").split(";", 1)[0].strip().lower()
                break
        try:
            body = await _read_body(scope, receive)
        except _TooLarge:
            message = f"The request is larger than {MAX_BODY_BYTES // 1024} KiB; send fewer flowers per call."
            status, payload, version = 413, orjson.dumps({"error": message}), None
        else:
            status, payload, version = await predict_json(self.state, mimetype, body)
        headers = [*_BASE_HEADERS, (b"content-length", str(len(payload)).encode())]
        if version:
            headers.append((VERSION_HEADER.encode(), version.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        counter = self._counted.get(status)
        if counter is None:
            counter = self._counted[status] = self.state.metrics.requests.labels(ROUTE, "POST", str(status))
        counter.inc()
        self._latency.observe(time.perf_counter() - started)


async def _read_body(scope: dict[str, Any], receive: Receive) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > MAX_BODY_BYTES:
            raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
