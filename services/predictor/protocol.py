"""Request parsing, validation and response encoding for the V1 and V2 (Open Inference) protocols.

Every bad input becomes :class:`InvalidRequest` (HTTP 400) naming the instance index and the reason;
nothing in here can raise anything else for a malformed body.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

N_FEATURES = 4
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
V2_OUTPUTS = ("predict", "species", "probabilities")
_V2_NUMERIC = {
    "FP16",
    "FP32",
    "FP64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
}
_NUMBER_TYPES = (int, float)


class InvalidRequest(ValueError):
    """The request body breaks the protocol; ``instance`` is the offending row index, if one is."""

    def __init__(self, reason: str, instance: int | None = None) -> None:
        self.reason = reason
        self.instance = instance
        super().__init__(reason if instance is None else f"instance {instance}: {reason}")

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": str(self)}
        if self.instance is not None:
            out["instance"] = self.instance
        return out


@dataclass(frozen=True)
class PredictRequest:
    """Validated rows plus what the caller asked to get back."""

    rows: list[list[float]]
    probabilities: bool
    outputs: tuple[str, ...] = V2_OUTPUTS  # V2 only: which named outputs to return
    request_id: str | None = None  # V2 only: echoed back as "id"


def decode_json(body: bytes) -> Any:
    """Parse a JSON body, or raise InvalidRequest saying why it is not JSON."""
    if not body:
        raise InvalidRequest(
            'the request body is empty; send JSON like {"instances": [[5.1, 3.5, 1.4, 0.2]]}'
        )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidRequest(f"the request body is not valid JSON ({error})") from None


def _check_row(row: Any, index: int) -> list[float]:
    if type(row) is not list:
        raise InvalidRequest(
            f"expected a list of {N_FEATURES} numbers {list(FEATURES)}, got {type(row).__name__}", index
        )
    if len(row) != N_FEATURES:
        raise InvalidRequest(f"expected {N_FEATURES} numbers {list(FEATURES)}, got {len(row)}", index)
    for position, value in enumerate(row):
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):
                raise InvalidRequest(f"{FEATURES[position]} is {value}, not a finite number", index)
        elif kind is not int:  # bool is a subclass of int, but `type(True) is int` is False
            raise InvalidRequest(f"{FEATURES[position]} must be a number, got {value!r:.40}", index)
    return row


def _check_batch_size(count: int, max_batch: int) -> None:
    if count == 0:
        raise InvalidRequest("no instances: send at least one row of 4 numbers")
    if count > max_batch:
        raise InvalidRequest(f"{count} instances is more than the limit of {max_batch}; split the batch")


def parse_v1(payload: Any, max_batch: int) -> PredictRequest:
    """Validate a V1 body ``{"instances": [[...4 numbers], ...], "probabilities": bool?}``."""
    if type(payload) is not dict:
        raise InvalidRequest(
            'expected a JSON object with "instances": [[sepal_length, sepal_width, petal_length, petal_width], ...]'
        )
    instances = payload.get("instances")
    if instances is None:
        raise InvalidRequest('missing "instances": send {"instances": [[5.1, 3.5, 1.4, 0.2]]}')
    if type(instances) is not list:
        raise InvalidRequest(f'"instances" must be a list of rows, got {type(instances).__name__}')
    _check_batch_size(len(instances), max_batch)
    rows = [_check_row(row, index) for index, row in enumerate(instances)]
    probabilities = payload.get("probabilities", False)
    if type(probabilities) is not bool:
        raise InvalidRequest(f'"probabilities" must be true or false, got {probabilities!r:.40}')
    return PredictRequest(rows=rows, probabilities=probabilities)


def parse_v2(payload: Any, max_batch: int) -> PredictRequest:
    """Validate an Open Inference Protocol body with one FP/INT input tensor of shape [n, 4]."""
    if type(payload) is not dict:
        raise InvalidRequest('expected a JSON object with "inputs": [{"name", "shape", "datatype", "data"}]')
    inputs = payload.get("inputs")
    if type(inputs) is not list or len(inputs) != 1 or type(inputs[0]) is not dict:
        raise InvalidRequest('"inputs" must be a list with exactly one tensor of shape [n, 4]')
    tensor = inputs[0]
    datatype = tensor.get("datatype")
    if datatype not in _V2_NUMERIC:
        raise InvalidRequest(f"input datatype {datatype!r:.20} is not numeric; use FP32 or FP64")
    shape = tensor.get("shape")
    if (
        type(shape) is not list
        or len(shape) != 2
        or any(type(dim) is not int for dim in shape)
        or shape[1] != N_FEATURES
    ):
        raise InvalidRequest(f"input shape must be [n, {N_FEATURES}], got {shape!r:.40}")
    count = shape[0]
    _check_batch_size(count, max_batch)
    data = tensor.get("data")
    if type(data) is not list:
        raise InvalidRequest('input "data" must be a list of numbers (flat, row-major) or of rows')
    if data and type(data[0]) is list:
        rows = data
    else:
        if len(data) != count * N_FEATURES:
            raise InvalidRequest(
                f'shape {shape} needs {count * N_FEATURES} numbers in "data", got {len(data)}'
            )
        rows = [data[i : i + N_FEATURES] for i in range(0, len(data), N_FEATURES)]
    if len(rows) != count:
        raise InvalidRequest(f'shape {shape} says {count} rows, "data" has {len(rows)}')
    rows = [_check_row(row, index) for index, row in enumerate(rows)]
    outputs = V2_OUTPUTS
    requested = payload.get("outputs")
    if requested is not None:
        if type(requested) is not list or any(
            type(o) is not dict or o.get("name") not in V2_OUTPUTS for o in requested
        ):
            raise InvalidRequest(f'"outputs" must name some of {list(V2_OUTPUTS)}')
        outputs = tuple(o["name"] for o in requested)
    request_id = payload.get("id")
    return PredictRequest(
        rows=rows,
        probabilities="probabilities" in outputs,
        outputs=outputs,
        request_id=request_id if isinstance(request_id, str) else None,
    )


def encode_v1(
    model_name: str,
    model_version: str,
    predictions: list[Any],
    species: list[str],
    probabilities: list[list[float]] | None,
) -> bytes:
    """The V1 response body (see the package docstring for the format)."""
    body: dict[str, Any] = {
        "predictions": predictions,
        "species": species,
        "model_name": model_name,
        "model_version": model_version,
    }
    if probabilities is not None:
        body["probabilities"] = probabilities
    return orjson.dumps(body)


def v2_response(
    model_name: str,
    model_version: str,
    request: PredictRequest,
    predictions: list[Any],
    species: list[str],
    probabilities: list[list[float]] | None,
) -> dict[str, Any]:
    """The Open Inference Protocol response as a dict, outputs in the order they were asked for."""
    count = len(predictions)
    tensors = {
        "predict": {"name": "predict", "shape": [count], "datatype": "INT64", "data": predictions},
        "species": {"name": "species", "shape": [count], "datatype": "BYTES", "data": species},
    }
    if probabilities is not None:
        n_classes = len(probabilities[0]) if probabilities else 0
        tensors["probabilities"] = {
            "name": "probabilities",
            "shape": [count, n_classes],
            "datatype": "FP64",
            "data": [p for row in probabilities for p in row],
        }
    body: dict[str, Any] = {
        "model_name": model_name,
        "model_version": model_version,
        "outputs": [tensors[name] for name in request.outputs if name in tensors],
    }
    if request.request_id is not None:
        body["id"] = request.request_id
    return body
