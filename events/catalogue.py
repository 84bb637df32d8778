"""The event catalogue of DESIGN.md ("The event contract (v1)"): types and typed payloads.

Extend it by adding a payload class here, registering it in ``CATALOGUE`` and adding a row to
DESIGN.md; never by sending an untyped dict.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from events.errors import InvalidEventError, UnknownEventTypeError

PIPELINE_RUN_SUCCEEDED = "io.kfchain.pipeline.run.succeeded"
PIPELINE_RUN_FAILED = "io.kfchain.pipeline.run.failed"
PIPELINE_RUN_SUBMITTED = "io.kfchain.pipeline.run.submitted"
MODEL_DEPLOYED = "io.kfchain.model.deployed"
MODEL_ROLLOUT_FAILED = "io.kfchain.model.rollout.failed"

TRAINING = "training"
MODEL_SELECTION = "model-selection"


def _require_str(data: dict[str, Any], key: str, *, optional: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if optional:
            return None
        raise InvalidEventError(f"data.{key}", "is required")
    if not isinstance(value, str) or not value.strip():
        raise InvalidEventError(f"data.{key}", "must be a non-empty string", value)
    return value


def _require_int(data: dict[str, Any], key: str, prefix: str = "data") -> int:
    value = data.get(key)
    if value is None:
        raise InvalidEventError(f"{prefix}.{key}", "is required")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidEventError(f"{prefix}.{key}", "must be a positive integer", value)
    return value


def _require_fraction(data: dict[str, Any], key: str, prefix: str = "data") -> float:
    value = data.get(key)
    if value is None:
        raise InvalidEventError(f"{prefix}.{key}", "is required")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidEventError(f"{prefix}.{key}", "must be a finite number", value)
    if not 0.0 <= value <= 1.0:
        raise InvalidEventError(f"{prefix}.{key}", "must be between 0 and 1", value)
    return float(value)


def _require_object(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidEventError(where, "must be a JSON object", data)
    return data


@dataclass(frozen=True)
class Candidate:
    """One trained model of a training run."""

    k: int
    accuracy: float
    uri: str

    @classmethod
    def from_data(cls, data: Any, where: str) -> Candidate:
        data = _require_object(data, "", where)
        uri = data.get("uri")
        if not isinstance(uri, str) or not uri:
            raise InvalidEventError(f"{where}.uri", "must be a non-empty string", uri)
        return cls(
            k=_require_int(data, "k", where), accuracy=_require_fraction(data, "accuracy", where), uri=uri
        )


@dataclass(frozen=True)
class Selected(Candidate):
    """The model a selection run chose, and where the serving copy lives."""

    serving_uri: str = ""

    @classmethod
    def from_data(cls, data: Any, where: str) -> Selected:
        base = Candidate.from_data(data, where)
        serving_uri = data.get("serving_uri")
        if not isinstance(serving_uri, str) or not serving_uri:
            raise InvalidEventError(f"{where}.serving_uri", "must be a non-empty string", serving_uri)
        return cls(k=base.k, accuracy=base.accuracy, uri=base.uri, serving_uri=serving_uri)


class Payload:
    """Base of typed payloads: ``TYPE`` is the CloudEvent type, ``to_data`` the JSON body."""

    TYPE: ClassVar[str]

    def to_data(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}  # type: ignore[call-overload]

    @classmethod
    def from_data(cls, data: Any) -> Payload:
        raise NotImplementedError


@dataclass(frozen=True)
class PipelineRunSucceeded(Payload):
    """A pipeline run finished; training carries ``candidates``, model-selection ``selected``."""

    TYPE: ClassVar[str] = PIPELINE_RUN_SUCCEEDED
    pipeline: str
    run_id: str
    model_name: str
    model_version: str
    candidates: tuple[Candidate, ...] | None = None
    selected: Selected | None = None

    def __post_init__(self) -> None:
        if self.pipeline == TRAINING and not self.candidates:
            raise InvalidEventError("data.candidates", "a training run must report at least one candidate")
        if self.pipeline == MODEL_SELECTION and self.selected is None:
            raise InvalidEventError("data.selected", "a model-selection run must report the selected model")

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "pipeline": self.pipeline,
            "run_id": self.run_id,
            "model_name": self.model_name,
            "model_version": self.model_version,
        }
        if self.candidates is not None:
            data["candidates"] = [asdict(c) for c in self.candidates]
        if self.selected is not None:
            data["selected"] = asdict(self.selected)
        return data

    @classmethod
    def from_data(cls, data: Any) -> PipelineRunSucceeded:
        data = _require_object(data, "", "data")
        candidates = data.get("candidates")
        if candidates is not None and not isinstance(candidates, list):
            raise InvalidEventError("data.candidates", "must be a list", candidates)
        selected = data.get("selected")
        return cls(
            pipeline=str(_require_str(data, "pipeline")),
            run_id=str(_require_str(data, "run_id")),
            model_name=str(_require_str(data, "model_name")),
            model_version=str(_require_str(data, "model_version")),
            candidates=None
            if candidates is None
            else tuple(Candidate.from_data(c, f"data.candidates[{i}]") for i, c in enumerate(candidates)),
            selected=None if selected is None else Selected.from_data(selected, "data.selected"),
        )


@dataclass(frozen=True)
class PipelineRunFailed(Payload):
    """A pipeline run ended in any state but success."""

    TYPE: ClassVar[str] = PIPELINE_RUN_FAILED
    pipeline: str
    run_id: str
    state: str
    error: str
    model_name: str | None = None
    model_version: str | None = None

    @classmethod
    def from_data(cls, data: Any) -> PipelineRunFailed:
        data = _require_object(data, "", "data")
        error = data.get("error")
        if error is None:
            raise InvalidEventError("data.error", "is required")
        if not isinstance(error, str):
            raise InvalidEventError("data.error", "must be a string", error)
        return cls(
            pipeline=str(_require_str(data, "pipeline")),
            run_id=str(_require_str(data, "run_id")),
            state=str(_require_str(data, "state")),
            error=error,
            model_name=_require_str(data, "model_name", optional=True),
            model_version=_require_str(data, "model_version", optional=True),
        )


@dataclass(frozen=True)
class PipelineRunSubmitted(Payload):
    """The selector started a pipeline run (its reply to a finished training run)."""

    TYPE: ClassVar[str] = PIPELINE_RUN_SUBMITTED
    pipeline: str
    run_id: str
    model_version: str

    @classmethod
    def from_data(cls, data: Any) -> PipelineRunSubmitted:
        data = _require_object(data, "", "data")
        return cls(
            pipeline=str(_require_str(data, "pipeline")),
            run_id=str(_require_str(data, "run_id")),
            model_version=str(_require_str(data, "model_version")),
        )


@dataclass(frozen=True)
class ModelDeployed(Payload):
    """The deployer rolled a model version out (its reply to a finished selection run)."""

    TYPE: ClassVar[str] = MODEL_DEPLOYED
    model_name: str
    model_version: str
    k: int
    accuracy: float
    endpoint: str
    traffic_percent: int
    previous_version: str | None = None

    def to_data(self) -> dict[str, Any]:
        return asdict(self)  # previous_version stays present (null on a first rollout)

    @classmethod
    def from_data(cls, data: Any) -> ModelDeployed:
        data = _require_object(data, "", "data")
        traffic = data.get("traffic_percent")
        if isinstance(traffic, bool) or not isinstance(traffic, int) or not 0 <= traffic <= 100:
            raise InvalidEventError("data.traffic_percent", "must be an integer from 0 to 100", traffic)
        return cls(
            model_name=str(_require_str(data, "model_name")),
            model_version=str(_require_str(data, "model_version")),
            k=_require_int(data, "k"),
            accuracy=_require_fraction(data, "accuracy"),
            endpoint=str(_require_str(data, "endpoint")),
            traffic_percent=traffic,
            previous_version=_require_str(data, "previous_version", optional=True),
        )


@dataclass(frozen=True)
class ModelRolloutFailed(Payload):
    """The deployer could not roll a version out; ``serving_version`` is what still serves."""

    TYPE: ClassVar[str] = MODEL_ROLLOUT_FAILED
    model_name: str
    model_version: str
    reason: str
    serving_version: str | None = None

    def to_data(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_data(cls, data: Any) -> ModelRolloutFailed:
        data = _require_object(data, "", "data")
        return cls(
            model_name=str(_require_str(data, "model_name")),
            model_version=str(_require_str(data, "model_version")),
            reason=str(_require_str(data, "reason")),
            serving_version=_require_str(data, "serving_version", optional=True),
        )


CATALOGUE: dict[str, type[Payload]] = {
    cls.TYPE: cls
    for cls in (
        PipelineRunSucceeded,
        PipelineRunFailed,
        PipelineRunSubmitted,
        ModelDeployed,
        ModelRolloutFailed,
    )
}

#: Types that mark a step of a chain as failed (the log and timeline flag them).
FAILURE_TYPES = frozenset({PIPELINE_RUN_FAILED, MODEL_ROLLOUT_FAILED})


def is_known_type(type_: str) -> bool:
    """Whether ``type_`` is in the catalogue."""
    return type_ in CATALOGUE


def parse_payload(type_: str, data: Any) -> Payload:
    """Validate ``data`` against the payload of ``type_``; errors name the field."""
    cls = CATALOGUE.get(type_)
    if cls is None:
        raise UnknownEventTypeError(type_)
    if not isinstance(data, dict):
        raise InvalidEventError("data", "must be a JSON object", data)
    return cls.from_data(data)


def payload_fields(cls: type[Payload]) -> list[str]:
    """The JSON keys of a payload class, for documentation and tests."""
    return [f.name for f in fields(cls)]  # type: ignore[arg-type]
