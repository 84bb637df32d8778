"""The four iris measurements: their names, sensible ranges, example flowers and input validation.

The same rules check the HTML form and the JSON API, so a value the page refuses is refused by
``/api/predict`` with the same message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Class index -> species, as ``load_iris().target_names`` (docs/CONVENTIONS.md, "The model artifact").
SPECIES = ("setosa", "versicolor", "virginica")

#: Most rows one ``/api/predict`` call may carry.
MAX_BATCH = 1000


@dataclass(frozen=True)
class Feature:
    """One input of the model, in centimetres."""

    name: str
    label: str
    minimum: float  # accepted range: about twice the spread seen in the iris data set
    maximum: float
    seen: str  # the range in the iris data set, shown as a hint


FEATURES = (
    Feature("sepal_length", "Sepal length", 1.0, 15.0, "4.3–7.9"),
    Feature("sepal_width", "Sepal width", 0.5, 10.0, "2.0–4.4"),
    Feature("petal_length", "Petal length", 0.1, 15.0, "1.0–6.9"),
    Feature("petal_width", "Petal width", 0.05, 5.0, "0.1–2.5"),
)
FEATURE_NAMES = tuple(f.name for f in FEATURES)

#: Typical flowers of each species (rows of the iris data set), to fill the form with one click.
EXAMPLES: dict[str, tuple[float, float, float, float]] = {
    "setosa": (5.1, 3.5, 1.4, 0.2),
    "versicolor": (6.0, 2.7, 4.5, 1.4),
    "virginica": (6.7, 3.1, 5.6, 2.4),
}


class InvalidInputError(ValueError):
    """Input the model cannot take. ``errors`` maps a field path (e.g. ``instances[2].petal_width``) to why."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{path}: {reason}" for path, reason in errors.items()))


def _check_value(feature: Feature, value: Any) -> tuple[float | None, str | None]:
    """The value as a float, or the reason it is refused."""
    if isinstance(value, bool) or value is None:
        return None, f"{feature.label} must be a number of centimetres"
    if isinstance(value, str):
        text = value.strip().replace(",", ".")
        if not text:
            return None, f"{feature.label} is required"
        try:
            value = float(text)
        except ValueError:
            return None, f"{feature.label} must be a number of centimetres, not {value[:20]!r}"
    if not isinstance(value, (int, float)):
        return None, f"{feature.label} must be a number of centimetres"
    number = float(value)
    if not math.isfinite(number):
        return None, f"{feature.label} must be a finite number"
    if not feature.minimum <= number <= feature.maximum:
        return None, (
            f"{feature.label} must be between {feature.minimum:g} and {feature.maximum:g} cm "
            f"(iris flowers measure {feature.seen} cm); got {number:g}"
        )
    return number, None


def parse_form(form: Mapping[str, str]) -> list[float]:
    """The four measurements of the predict form; ``InvalidInputError`` keyed by field name."""
    row: list[float] = []
    errors: dict[str, str] = {}
    for feature in FEATURES:
        value, error = _check_value(feature, form.get(feature.name, ""))
        if error:
            errors[feature.name] = error
        else:
            row.append(value)  # type: ignore[arg-type]
    if errors:
        raise InvalidInputError(errors)
    return row


def _parse_row(item: Any, where: str, errors: dict[str, str]) -> list[float] | None:
    if isinstance(item, Mapping):
        values = [item.get(name) for name in FEATURE_NAMES]
        unknown = sorted(set(item) - set(FEATURE_NAMES))
        if unknown:
            errors[f"{where}.{unknown[0]}"] = f"unknown field; use {', '.join(FEATURE_NAMES)}"
            return None
        paths = [f"{where}.{name}" for name in FEATURE_NAMES]
    elif isinstance(item, list):
        if len(item) != len(FEATURES):
            errors[where] = f"must have {len(FEATURES)} numbers ({', '.join(FEATURE_NAMES)}), got {len(item)}"
            return None
        values = item
        paths = [f"{where}[{i}]" for i in range(len(FEATURES))]
    else:
        errors[where] = (
            f"must be a list of {len(FEATURES)} numbers or an object with {', '.join(FEATURE_NAMES)}"
        )
        return None
    row: list[float] = []
    for feature, value, path in zip(FEATURES, values, paths, strict=True):
        number, error = _check_value(feature, value)
        if error:
            errors[path] = error
            return None
        row.append(number)  # type: ignore[arg-type]
    return row


_BOUNDS = tuple((feature.minimum, feature.maximum) for feature in FEATURES)


def _plain_row(item: Any) -> list[float] | None:
    """The common row, a list of four in-range numbers, checked without building messages; else None."""
    if type(item) is not list or len(item) != len(_BOUNDS):
        return None
    row: list[float] = []
    for value, (low, high) in zip(item, _BOUNDS, strict=True):
        kind = type(value)
        if kind is int:
            value = float(value)
        elif kind is not float:
            return None
        if not low <= value <= high:  # also False for NaN
            return None
        row.append(value)
    return row


def parse_instances(body: Any) -> list[list[float]]:
    """The rows of an ``/api/predict`` body: ``{"instances": [[5.1, 3.5, 1.4, 0.2], {...}, ...]}``.

    A row is a list of the four measurements in order or an object naming them. Raises
    ``InvalidInputError`` naming the first bad rows (at most 10).
    """
    if not isinstance(body, Mapping):
        raise InvalidInputError({"body": 'must be a JSON object like {"instances": [[5.1, 3.5, 1.4, 0.2]]}'})
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances:
        raise InvalidInputError({"instances": "must be a non-empty list of flowers"})
    if len(instances) > MAX_BATCH:
        raise InvalidInputError(
            {"instances": f"at most {MAX_BATCH} flowers per call, got {len(instances)}; split the batch"}
        )
    errors: dict[str, str] = {}
    rows: list[list[float]] = []
    for i, item in enumerate(instances):
        row = _plain_row(item)
        if row is None:
            row = _parse_row(item, f"instances[{i}]", errors)
        if row is not None:
            rows.append(row)
        if len(errors) >= 10:
            break
    if errors:
        raise InvalidInputError(errors)
    return rows
