"""The predictor's front door: a raw ASGI app answering predictions, delegating the rest to KServe.

kserve's generic request path (FastAPI routing, pydantic, timing middleware, the DataPlane's
decode/infer/encode, prometheus timers around each of pre/post-processing) costs several times the
inference itself for one iris row. The hot routes — ``POST /v1/models/<name>:predict`` and
``POST /v2/models/<name>/infer`` — are therefore answered here directly with the same model object
kserve has registered; everything else (health, readiness, metadata, ``/metrics``, the model
repository API) goes to kserve's own FastAPI app unchanged.

The rollout endpoints (used by ``services.rollout.local``) live here too, under ``/kfchain/v1``:

- ``POST /kfchain/v1/models/<name>/versions/<version>/load``: load a version beside the current one.
- ``POST /kfchain/v1/models/<name>/versions/<version>:predict``: V1 predict on that loaded version.
- ``POST /kfchain/v1/models/<name>/activate`` ``{"version": "v2"}``: make it current, atomically.
- ``GET /kfchain/v1/models/<name>``: ``{"current": ..., "previous": ..., "staged": [...], "mode": "store"}``.

In model-dir mode (``KFCHAIN_PREDICTOR_MODEL_DIR``, KServe's ``/mnt/models``) the predictor serves one
fixed version: loading or activating any other is answered 409 with ``"mode": "model-dir"``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from prometheus_client import Counter, Histogram

from services.predictor.model import (
    THREAD_BATCH,
    FixedVersionError,
    IrisModel,
    LoadedVersion,
    ModelLoadError,
)
from services.predictor.protocol import (
    InvalidRequest,
    PredictRequest,
    decode_json,
    encode_v1,
    parse_v1,
    parse_v2,
    v2_response,
)
from services.predictor.settings import PredictorSettings
from services.predictor.store import check_name

log = logging.getLogger(__name__)

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]
VERSION_HEADER = b"x-kfchain-model-version"

REQUESTS = Counter(
    "kfchain_predictor_requests", "Prediction requests by protocol and status code", ["protocol", "code"]
)
LATENCY = Histogram(
    "kfchain_predictor_request_seconds",
    "Time to answer a prediction request, body read to response sent",
    ["protocol"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)


class HttpError(Exception):
    """An error answer: status code plus a JSON body with an ``error`` message."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": message, **extra}


class PredictorApp:
    """ASGI app: fast prediction routes and rollout routes in front of kserve's FastAPI ``fallback``."""

    def __init__(
        self, model: IrisModel, fallback: ASGIApp, settings: PredictorSettings, registry: Any = None
    ):
        self.model = model
        self.fallback = fallback
        self.settings = settings
        self.registry = registry  # kserve ModelRepository: an unloaded model stops answering
        name = model.name
        self.v1_path = f"/v1/models/{name}:predict"
        self.v2_path = f"/v2/models/{name}/infer"
        self.admin_prefix = f"/kfchain/v1/models/{name}"
        self.v1_counter = {code: REQUESTS.labels("v1", str(code)) for code in (200, 400, 404, 503)}
        self.v2_counter = {code: REQUESTS.labels("v2", str(code)) for code in (200, 400, 404, 503)}
        self.v1_latency = LATENCY.labels("v1")
        self.v2_latency = LATENCY.labels("v2")

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and self.settings.fast_path:
            path = scope["path"]
            if path == self.v1_path:
                return await self._predict(scope, receive, send, "v1")
            if path == self.v2_path:
                return await self._predict(scope, receive, send, "v2")
            if path.startswith("/kfchain/"):
                return await self._admin(scope, receive, send)
        elif scope["type"] == "http" and scope["path"].startswith("/kfchain/"):
            return await self._admin(scope, receive, send)
        await self.fallback(scope, receive, send)

    # -- prediction ------------------------------------------------------------------------------
    async def _predict(self, scope: dict, receive: Callable, send: Callable, protocol: str) -> None:
        started = time.perf_counter()
        counters = self.v1_counter if protocol == "v1" else self.v2_counter
        version = None
        try:
            if scope["method"] != "POST":
                raise HttpError(405, f"{scope['path']} takes POST with a JSON body")
            body = await self._read_body(scope, receive)
            current = self._serving_version()
            version = current.version
            if protocol == "v1":
                request = parse_v1(decode_json(body), self.settings.max_batch)
                answer = await self._answer(current, request)
                payload = encode_v1(self.model.name, version, *answer)
            else:
                if _header(scope, b"inference-header-content-length") is not None:
                    raise InvalidRequest(
                        'binary tensor data is not supported; send the tensor as JSON "data"'
                    )
                request = parse_v2(decode_json(body), self.settings.max_batch)
                answer = await self._answer(current, request)
                payload = orjson.dumps(v2_response(self.model.name, version, request, *answer))
            status = 200
        except InvalidRequest as error:
            status, payload = 400, orjson.dumps(error.body())
        except HttpError as error:
            status, payload = error.status, orjson.dumps(error.body)
        except Exception as error:  # a bug, not bad input: say so, keep serving
            log.exception("prediction failed")
            status, payload = 500, orjson.dumps({"error": f"internal error: {type(error).__name__}: {error}"})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        if version is not None:
            headers.append((VERSION_HEADER, version.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        counter = counters.get(status)
        (counter if counter is not None else REQUESTS.labels(protocol, str(status))).inc()
        (self.v1_latency if protocol == "v1" else self.v2_latency).observe(time.perf_counter() - started)

    def _serving_version(self) -> LoadedVersion:
        if self.registry is not None and self.registry.get_model(self.model.name) is not self.model:
            raise HttpError(
                404,
                f"model {self.model.name!r} is not loaded; load it with POST /v2/repository/models/{self.model.name}/load",
            )
        current = self.model.current
        if current is None:
            raise HttpError(503, f"model {self.model.name!r} has no version rolled out yet; it is not ready")
        return current

    async def _answer(
        self, version: LoadedVersion, request: PredictRequest
    ) -> tuple[list, list, list | None]:
        if len(request.rows) >= THREAD_BATCH:
            result = await asyncio.to_thread(version.predict, request.rows)
        else:
            result = version.predict(request.rows)
        return result.classes, result.species, result.probabilities if request.probabilities else None

    async def _read_body(self, scope: dict, receive: Callable) -> bytes:
        limit = self.settings.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise InvalidRequest(
                f"the request body is {int(declared)} bytes, more than the limit of {limit}; split the batch"
            )
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HttpError(400, "the client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise InvalidRequest(
                    f"the request body is more than the limit of {limit} bytes; split the batch"
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    # -- rollout endpoints -------------------------------------------------------------------------
    async def _admin(self, scope: dict, receive: Callable, send: Callable) -> None:
        version_header = None
        try:
            status, body, version_header = await self._admin_route(scope, receive)
        except InvalidRequest as error:
            status, body = 400, error.body()
        except HttpError as error:
            status, body = error.status, error.body
        except FixedVersionError as error:
            status = 409
            body = {"error": str(error), "mode": "model-dir", "current": error.directory.version}
        payload = orjson.dumps(body)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        if version_header:
            headers.append((VERSION_HEADER, version_header.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _admin_route(self, scope: dict, receive: Callable) -> tuple[int, dict, str | None]:
        path, method = scope["path"], scope["method"]
        if not path.startswith(self.admin_prefix):
            raise HttpError(
                404, f"no such model; this predictor serves {self.model.name!r} under {self.admin_prefix}"
            )
        rest = path[len(self.admin_prefix) :]
        if rest == "" and method == "GET":
            return 200, self._status(), None
        if rest == "/activate" and method == "POST":
            payload = decode_json(await self._read_body(scope, receive))
            version = payload.get("version") if isinstance(payload, dict) else None
            if not isinstance(version, str):
                raise InvalidRequest('send {"version": "<model_version>"}')
            try:
                current, previous = self.model.activate(version)
            except KeyError:
                raise HttpError(
                    409,
                    f"version {version!r} is not loaded; POST {self.admin_prefix}/versions/{version}/load first",
                ) from None
            log.info("now serving %s version %s (previous %s)", self.model.name, current, previous)
            return 200, self._status(), current
        if rest.startswith("/versions/") and method == "POST":
            tail = rest[len("/versions/") :]
            if tail.endswith("/load"):
                version = self._version(tail[: -len("/load")])
                try:
                    await self.model.stage(version)
                except ModelLoadError as error:
                    raise HttpError(422, str(error), model_version=version) from None
                return 200, {**self._status(), "loaded": version}, None
            if tail.endswith(":predict"):
                version = self._version(tail[: -len(":predict")])
                loaded = self.model.loaded(version)
                if loaded is None and self.model.model_dir is not None:
                    raise FixedVersionError(self.model.model_dir, version)
                if loaded is None:
                    raise HttpError(
                        409,
                        f"version {version!r} is not loaded; POST {self.admin_prefix}/versions/{version}/load first",
                    )
                request = parse_v1(
                    decode_json(await self._read_body(scope, receive)), self.settings.max_batch
                )
                classes, species, proba = await self._answer(loaded, request)
                return (
                    200,
                    orjson.loads(encode_v1(self.model.name, version, classes, species, proba)),
                    version,
                )
        raise HttpError(
            404, f"no route {method} {path}; see services.predictor.app for the rollout endpoints"
        )

    def _version(self, raw: str) -> str:
        try:
            return check_name("model version", raw)
        except ValueError as error:
            raise InvalidRequest(str(error)) from None

    def _status(self) -> dict[str, Any]:
        model = self.model
        return {
            "model_name": model.name,
            "current": model.current.version if model.current else None,
            "previous": model.previous.version if model.previous else None,
            "staged": sorted(model.staged),
            "ready": model.current is not None,
            "mode": "model-dir" if model.model_dir is not None else "store",
        }


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None
