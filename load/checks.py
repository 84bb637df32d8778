"""Known flowers, the request bodies that carry them, and checks that the answers are right.

A load test that only counts 2xx would call a predictor that answers ``setosa`` to everything
healthy. These checks are shared by the Locust users, the hey payloads and the benchmarks: each
request carries flowers whose species is known, and an answer counts as a success only if every
species matches and the model version is present.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Class index -> species, as ``load_iris().target_names`` (docs/CONVENTIONS.md, "The model artifact").
SPECIES = ("setosa", "versicolor", "virginica")
VERSION_HEADER = "x-kfchain-model-version"


@dataclass(frozen=True)
class Flower:
    """One row of the iris data set and its true species."""

    species: str
    row: tuple[float, float, float, float]  # sepal length, sepal width, petal length, petal width (cm)


#: Rows of the iris data set far from the class borders: any reasonable KNN gets them right.
KNOWN_FLOWERS = (
    Flower("setosa", (5.1, 3.5, 1.4, 0.2)),
    Flower("versicolor", (6.4, 3.2, 4.5, 1.5)),
    Flower("virginica", (6.3, 3.3, 6.0, 2.5)),
)


class WrongAnswer(ValueError):
    """The service answered, but not with what a correct predictor says; the message says what differed."""


def v1_body(flowers: Sequence[Flower]) -> dict[str, Any]:
    """KServe V1 ``:predict`` body for ``flowers``."""
    return {"instances": [list(f.row) for f in flowers], "probabilities": True}


def v2_body(flowers: Sequence[Flower]) -> dict[str, Any]:
    """Open Inference Protocol ``/infer`` body: one FP32 tensor of shape [n, 4], flat row-major data."""
    return {
        "inputs": [
            {
                "name": "input-0",
                "shape": [len(flowers), 4],
                "datatype": "FP32",
                "data": [value for f in flowers for value in f.row],
            }
        ]
    }


def frontend_body(flowers: Sequence[Flower]) -> dict[str, Any]:
    """The frontend's ``/api/predict`` body (same rows as V1)."""
    return {"instances": [list(f.row) for f in flowers]}


def _species_of(label: Any) -> str:
    if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(SPECIES):
        return SPECIES[label]
    return str(label)


def _compare(got: Sequence[Any], flowers: Sequence[Flower]) -> None:
    expected = [f.species for f in flowers]
    if len(got) != len(expected):
        raise WrongAnswer(f"expected {len(expected)} answers, got {len(got)}")
    for index, (answer, flower) in enumerate(zip(got, flowers, strict=True)):
        if answer != flower.species:
            raise WrongAnswer(
                f"flower {list(flower.row)} is {flower.species}, the answer was {answer!r} (row {index})"
            )


def _version(body: Mapping[str, Any], headers: Mapping[str, str] | None, require_version: bool) -> str:
    version = body.get("model_version") or (headers or {}).get(VERSION_HEADER) or ""
    if require_version and not version:
        raise WrongAnswer(
            f'no model version in the answer (neither "model_version" nor the {VERSION_HEADER} header); '
            "a stock runtime does not send one: pass --allow-missing-version"
        )
    return str(version)


def _object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise WrongAnswer(f"expected a JSON object, got {type(body).__name__}: {str(body)[:80]!r}")
    return body


def check_v1(
    body: Any,
    flowers: Sequence[Flower],
    headers: Mapping[str, str] | None = None,
    require_version: bool = True,
) -> str:
    """Check a V1 answer for ``flowers``; return the model version, raise :class:`WrongAnswer` otherwise.

    Uses ``species`` when the predictor sends it (kfchain's), else maps ``predictions`` class indexes
    to species (KServe's stock sklearn runtime).
    """
    body = _object(body)
    if "species" in body:
        got = body["species"]
    elif "predictions" in body:
        got = [_species_of(p) for p in body["predictions"]]
    else:
        raise WrongAnswer(f'no "species" or "predictions" in the answer: {str(body)[:120]}')
    if not isinstance(got, list):
        raise WrongAnswer(f"the answers must be a list, got {type(got).__name__}")
    _compare(got, flowers)
    return _version(body, headers, require_version)


def check_v2(
    body: Any,
    flowers: Sequence[Flower],
    headers: Mapping[str, str] | None = None,
    require_version: bool = True,
) -> str:
    """Check an Open Inference Protocol answer (outputs ``species`` or ``predict``); return the model version."""
    body = _object(body)
    outputs = body.get("outputs")
    if not isinstance(outputs, list):
        raise WrongAnswer(f'no "outputs" list in the answer: {str(body)[:120]}')
    by_name = {o.get("name"): o for o in outputs if isinstance(o, Mapping)}
    if "species" in by_name:
        got = by_name["species"].get("data")
    elif "predict" in by_name:
        got = [_species_of(p) for p in by_name["predict"].get("data") or []]
    else:
        raise WrongAnswer(f'no output named "species" or "predict", got {sorted(map(str, by_name))}')
    if not isinstance(got, list):
        raise WrongAnswer("the output data must be a list")
    _compare(got, flowers)
    return _version(body, headers, require_version)


def check_frontend(
    body: Any,
    flowers: Sequence[Flower],
    headers: Mapping[str, str] | None = None,
    require_version: bool = True,
) -> str:
    """Check the frontend's ``/api/predict`` answer; return the model version.

    The frontend answers in kfchain's V1 shape (``predictions``, ``species``, ``probabilities``,
    ``model_name``, ``model_version`` plus the version header), so the V1 check applies.
    """
    return check_v1(body, flowers, headers, require_version)
