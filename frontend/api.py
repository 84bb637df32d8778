"""Machine routes: ``/api/predict`` (JSON in, JSON out, batches), health probes and ``/metrics``.

``/api/predict`` is the hot path for scripts and Locust: one body read, one orjson parse, the
shared connection pool to the predictor, one orjson dump.
"""

from __future__ import annotations

import asyncio

import orjson
from quart import Blueprint, Response, request

from frontend.flowers import InvalidInputError, parse_instances
from frontend.metrics import CONTENT_TYPE_LATEST
from frontend.predictor import VERSION_HEADER, PredictorError
from frontend.state import FrontendState, state

api = Blueprint("api", __name__)

_JSON = "application/json"


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialised with orjson."""
    return Response(orjson.dumps(body), status=status, content_type=_JSON, headers=headers)


async def predict_json(app_state: FrontendState, mimetype: str, body: bytes) -> tuple[int, bytes, str | None]:
    """The whole of ``/api/predict`` without the web framework: (status, JSON body, model version).

    Shared by the Quart route and the ASGI fast path (frontend.fastpath), so both answer alike.
    """
    if mimetype != _JSON:
        message = f"send the flowers as JSON with 'Content-Type: {_JSON}' (got {mimetype or 'none'!r})"
        return 415, orjson.dumps({"error": message}), None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return 400, orjson.dumps({"error": f"the body is not valid JSON: {exc}"}), None
    try:
        rows = parse_instances(parsed)
    except InvalidInputError as exc:
        return 400, orjson.dumps({"error": "invalid input", "errors": exc.errors}), None
    try:
        prediction = await app_state.predictor.predict(rows)
    except PredictorError as exc:
        app_state.metrics.upstream_errors.labels(exc.reason).inc()
        return exc.status, orjson.dumps({"error": exc.message, "reason": exc.reason}), None
    return 200, orjson.dumps(prediction.to_json()), prediction.model_version


@api.post("/api/predict")
async def api_predict() -> Response:
    """Species of one or more flowers: ``{"instances": [[5.1, 3.5, 1.4, 0.2], ...]}``."""
    body = await request.get_data(as_text=False)
    raw = body if isinstance(body, bytes) else body.encode()
    status, payload, version = await predict_json(state(), request.mimetype, raw)
    headers = {VERSION_HEADER: version} if version else None
    return Response(payload, status=status, content_type=_JSON, headers=headers)


@api.get("/health/liveness")
async def liveness() -> Response:
    """The process answers."""
    return json_response({"status": "alive"})


@api.get("/health/readiness")
async def readiness() -> Response:
    """Ready when the predictor client is open and the event store can be read.

    The predictor's own health is not part of it: when the predictor is down the frontend must
    stay up to tell users so.
    """
    app_state = state()
    if app_state.store is None:
        return json_response({"status": "starting"}, 503)
    try:
        last_seq = await asyncio.to_thread(app_state.store.last_seq)
    except Exception as exc:  # any sqlite error means we cannot show the event log
        return json_response({"status": "not ready", "error": f"cannot read the event store: {exc}"}, 503)
    return json_response({"status": "ready", "events": last_seq})


@api.get("/metrics")
async def metrics() -> Response:
    """Prometheus exposition of this app's registry."""
    return Response(state().metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
