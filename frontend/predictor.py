"""The frontend's client of the predictor (KServe V1 protocol), over one keep-alive connection pool.

The pool is frontend.upstream (asyncio protocol + httptools) rather than a general client: on the
hot ``/api/predict`` path httpx 0.29 costs about 2 ms of CPU per call here and aiohttp 0.4 ms,
against well under 0.1 ms for the pool, and the frontend shares the CPU with the predictor it
waits for (load/bench/frontend.py). The pool is opened in ``before_serving``.

It understands two answers to ``POST /v1/models/<name>:predict``: kfchain's predictor
(``predictions``, ``species``, ``probabilities``, ``model_version`` and the
``x-kfchain-model-version`` header) and KServe's stock sklearn runtime (``predictions`` only:
class indices, or probability rows when it runs with ``PREDICT_PROBA=true``). Every failure
becomes a ``PredictorError`` carrying the HTTP status the frontend answers with and a message a
user can act on; nothing upstream turns into a stack trace.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

import orjson

from frontend.flowers import SPECIES
from frontend.upstream import UpstreamPool, UpstreamTimeout, UpstreamUnreachable

VERSION_HEADER = "x-kfchain-model-version"
UNKNOWN_VERSION = "version unknown"


class PredictorError(Exception):
    """The predictor could not answer. ``status`` is what the frontend returns, ``reason`` a metric label."""

    status = 503
    reason = "unavailable"

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class PredictorUnreachableError(PredictorError, ConnectionError):
    reason = "unreachable"


class PredictorTimeoutError(PredictorError, TimeoutError):
    reason = "timeout"


class PredictorNotReadyError(PredictorError):
    reason = "not_ready"


class PredictorBadResponseError(PredictorError):
    status = 502
    reason = "bad_response"


class PredictorRejectedInputError(PredictorError, ValueError):
    """The predictor refused the input (400): the user's data, not the service, is at fault."""

    status = 400
    reason = "rejected_input"


@dataclass(frozen=True)
class Prediction:
    """The predictor's answer for a batch, normalised to kfchain's shape."""

    predictions: list[int]
    species: list[str]
    probabilities: list[list[float]] | None
    model_name: str
    model_version: str | None

    @property
    def version_label(self) -> str:
        return self.model_version or UNKNOWN_VERSION

    def to_json(self) -> dict[str, Any]:
        return {
            "predictions": self.predictions,
            "species": self.species,
            "probabilities": self.probabilities,
            "model_name": self.model_name,
            "model_version": self.model_version,
        }


@dataclass(frozen=True)
class UpstreamResponse:
    """What the predictor answered: status, the one header we read, the body."""

    status_code: int
    content: bytes
    version: str | None = None

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


@dataclass(frozen=True)
class PredictorHealth:
    """What the predictor says about itself (``GET /v1/models/<name>``)."""

    reachable: bool
    ready: bool
    detail: str
    model_version: str | None = None


def _species_name(index: int) -> str:
    return SPECIES[index] if 0 <= index < len(SPECIES) else f"class {index}"


def _as_class_index(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value in SPECIES:
        return SPECIES.index(value)
    return None


def _probability_row(value: Any) -> list[float] | None:
    if (
        isinstance(value, list)
        and value
        and all(isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) for p in value)
    ):
        return [float(p) for p in value]
    return None


def _kfchain_prediction(
    body: dict, rows: int, model_name: str, header_version: str | None
) -> Prediction | None:
    """kfchain's own complete answer, checked without the general normalisation; else None."""
    raw, species, probabilities = body.get("predictions"), body.get("species"), body.get("probabilities")
    if not (
        type(raw) is list
        and type(species) is list
        and type(probabilities) is list
        and len(raw) == len(species) == len(probabilities) == rows
    ):
        return None
    for index, name, row in zip(raw, species, probabilities, strict=True):
        if type(index) is not int or type(name) is not str or type(row) is not list or not row:
            return None
        for p in row:
            if type(p) is not float or p - p != 0.0:  # not finite
                return None
    version = body.get("model_version")
    name = body.get("model_name")
    return Prediction(
        raw,
        species,
        probabilities,
        name if type(name) is str else model_name,
        (version if type(version) is str else header_version) or None,
    )


def parse_prediction(body: Any, rows: int, model_name: str, header_version: str | None) -> Prediction:
    """Normalise a V1 predict answer (kfchain's or KServe's stock runtime) for ``rows`` inputs."""
    if type(body) is dict:
        fast = _kfchain_prediction(body, rows, model_name, header_version)
        if fast is not None:
            return fast
    if not isinstance(body, dict) or not isinstance(body.get("predictions"), list):
        raise PredictorBadResponseError(
            "the predictor answered without a 'predictions' list; is it a KServe V1 predictor?"
        )
    raw = body["predictions"]
    if len(raw) != rows:
        raise PredictorBadResponseError(f"the predictor returned {len(raw)} predictions for {rows} flowers")
    probabilities = body.get("probabilities")
    if probabilities is not None:
        probabilities = (
            [_probability_row(p) for p in probabilities] if isinstance(probabilities, list) else None
        )
        if probabilities is None or len(probabilities) != rows or any(p is None for p in probabilities):
            probabilities = None
    indices: list[int] = []
    prob_rows: list[list[float]] = []
    for value in raw:
        index = _as_class_index(value)
        if index is None:
            # The stock sklearn runtime with PREDICT_PROBA=true answers probability rows instead.
            row = _probability_row(value)
            if row is None:
                raise PredictorBadResponseError(
                    f"the predictor returned {value!r:.60} where a class was expected"
                )
            index = max(range(len(row)), key=row.__getitem__)
            prob_rows.append(row)
        indices.append(index)
    if probabilities is None and len(prob_rows) == rows:
        probabilities = prob_rows
    species = body.get("species")
    if not (isinstance(species, list) and len(species) == rows and all(isinstance(s, str) for s in species)):
        species = [_species_name(i) for i in indices]
    version = body.get("model_version") if isinstance(body.get("model_version"), str) else header_version
    name = body.get("model_name") if isinstance(body.get("model_name"), str) else model_name
    return Prediction(indices, species, probabilities, str(name), version or None)


def _error_text(response: UpstreamResponse) -> str:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:300].strip() or f"HTTP {response.status_code}"
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            if isinstance(body.get(key), str):
                return body[key][:300]
    return str(body)[:300]


class PredictorClient:
    """Calls one model on one predictor. ``open()`` in ``before_serving``, ``close()`` in ``after_serving``."""

    def __init__(self, base_url: str, model_name: str, timeout_s: float) -> None:
        self.base_url = base_url
        self.model_name = model_name
        self.timeout_s = timeout_s
        self.predict_path = f"/v1/models/{model_name}:predict"
        self.model_path = f"/v1/models/{model_name}"
        self.status_path = f"/kfchain/v1/models/{model_name}"
        self._pool: UpstreamPool | None = None

    async def open(self) -> None:
        if self._pool is None:
            self._pool = UpstreamPool(
                self.base_url,
                timeout_s=self.timeout_s,
                connect_timeout_s=min(self.timeout_s, 2.0),
                wanted_header=VERSION_HEADER,
                extra_headers={"content-type": "application/json"},
            )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> UpstreamPool:
        if self._pool is None:
            raise RuntimeError("PredictorClient.open() was not awaited; the app opens it in before_serving")
        return self._pool

    async def _send(self, method: str, path: str, content: bytes | None = None) -> UpstreamResponse:
        try:
            response = await self.pool.request(method, path, content)
        except UpstreamTimeout:
            raise PredictorTimeoutError(
                f"the predictor at {self.base_url} did not answer within {self.timeout_s:g} s; it may be overloaded "
                "or scaling up, try again shortly (KFCHAIN_PREDICTOR_TIMEOUT sets the limit)"
            ) from None
        except UpstreamUnreachable as exc:
            raise PredictorUnreachableError(
                f"cannot reach the predictor at {self.base_url} ({exc}); start it "
                "(`make up`) or point KFCHAIN_PREDICTOR_URL at it"
            ) from None
        return UpstreamResponse(response.status, response.body, response.header)

    async def predict(self, rows: list[list[float]]) -> Prediction:
        """Predict ``rows`` (each the four measurements in cm)."""
        body = orjson.dumps({"instances": rows, "probabilities": True})
        response = await self._send("POST", self.predict_path, body)
        status = response.status_code
        if status == 200:
            try:
                answer = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                raise PredictorBadResponseError(
                    "the predictor answered with something that is not JSON"
                ) from None
            return parse_prediction(answer, len(rows), self.model_name, response.version)
        if status in (400, 422):
            raise PredictorRejectedInputError(f"the predictor refused the input: {_error_text(response)}")
        if status == 404:
            raise PredictorNotReadyError(
                f"the predictor at {self.base_url} has no model {self.model_name!r}; has a model been deployed yet?"
            )
        if status == 503:
            raise PredictorNotReadyError(
                f"the model {self.model_name!r} is not ready yet: {_error_text(response)}"
            )
        raise PredictorBadResponseError(f"the predictor failed with HTTP {status}: {_error_text(response)}")

    async def health(self) -> PredictorHealth:
        """Readiness of the model and, when the predictor says, the version it serves; never raises."""
        try:
            response, status = await asyncio.gather(
                self._send("GET", self.model_path), self._serving_status()
            )
        except PredictorError as exc:
            return PredictorHealth(reachable=False, ready=False, detail=exc.message)
        if response.status_code == 404:
            return PredictorHealth(True, False, f"no model {self.model_name!r} on the predictor yet")
        body = _json_object(response)
        ready = response.status_code == 200 and body.get("ready") is True
        version = status.get("current") or body.get("model_version") or response.version
        detail = "ready" if ready else (_error_text(response) if response.status_code != 200 else "loading")
        return PredictorHealth(True, ready, detail, version if isinstance(version, str) else None)

    async def _serving_status(self) -> dict[str, Any]:
        # kfchain's predictor reports the version it serves here; KServe's stock runtime answers 404.
        try:
            response = await self._send("GET", self.status_path)
        except PredictorError:
            return {}
        return _json_object(response) if response.status_code == 200 else {}


def _json_object(response: UpstreamResponse) -> dict[str, Any]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}
