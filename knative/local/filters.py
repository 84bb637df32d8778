"""Trigger filters with the semantics of Knative Eventing's broker filter.

Two forms, as in ``eventing.knative.dev/v1`` Trigger:

* ``spec.filter.attributes``: exact match on every listed attribute; the value ``""`` means "any
  value, but the attribute must exist" (eventing ``pkg/eventfilter/attributes``, ``TriggerAnyFilter``).
* ``spec.filters`` (CloudEvents Subscriptions API dialects, Knative "New trigger filters"): ``exact``,
  ``prefix``, ``suffix`` (one attribute each, non-empty value), ``all``, ``any``, ``not``. The list is
  an ``all``. When ``filters`` is set, ``filter`` is ignored.

Results are three-valued like Knative's ``FilterResult`` (pass, fail, no filter); only ``FAIL`` stops
delivery, so ``not`` of an empty filter passes, as in eventing's ``notFilter``. ``cesql`` is not
implemented locally and is rejected when the manifest is loaded.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

# Context attributes that always exist on a CloudEvent (empty when unset), as in eventing's filter map.
_ALWAYS_PRESENT = ("specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema")
DIALECTS = ("exact", "prefix", "suffix", "all", "any", "not", "cesql")


class FilterError(ValueError):
    """A filter in a manifest is not valid; ``field`` is its path, e.g. ``spec.filters[0].exact``."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class Result(enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    NO_FILTER = "no filter"

    def passes(self) -> bool:
        """Whether the event is delivered (Knative delivers unless the result is FAIL)."""
        return self is not Result.FAIL


class Filter(Protocol):
    def evaluate(self, attributes: Mapping[str, str]) -> Result: ...


def lookup(attributes: Mapping[str, str], name: str) -> str | None:
    """The attribute's value, ``""`` for an unset core attribute, None for a missing extension."""
    if name in attributes:
        return attributes[name]
    return "" if name in _ALWAYS_PRESENT else None


@dataclass(frozen=True)
class NoFilter:
    def evaluate(self, attributes: Mapping[str, str]) -> Result:
        return Result.NO_FILTER


@dataclass(frozen=True)
class AttributesFilter:
    """``spec.filter.attributes``: all must match exactly; ``""`` matches any value of an existing attribute."""

    attributes: tuple[tuple[str, str], ...]

    def evaluate(self, attributes: Mapping[str, str]) -> Result:
        for name, wanted in self.attributes:
            value = lookup(attributes, name)
            if value is None:
                return Result.FAIL
            if wanted != "" and wanted != value:
                return Result.FAIL
        return Result.PASS


@dataclass(frozen=True)
class StringFilter:
    """``exact`` / ``prefix`` / ``suffix``: the attribute must exist and its value match."""

    dialect: str
    name: str
    value: str

    def evaluate(self, attributes: Mapping[str, str]) -> Result:
        actual = lookup(attributes, self.name)
        if actual is None:
            return Result.FAIL
        if self.dialect == "exact":
            ok = actual == self.value
        elif self.dialect == "prefix":
            ok = actual.startswith(self.value)
        else:
            ok = actual.endswith(self.value)
        return Result.PASS if ok else Result.FAIL


@dataclass(frozen=True)
class AllFilter:
    """Fails as soon as one part fails; otherwise the last part's result (as eventing's allFilter)."""

    parts: tuple[Filter, ...]

    def evaluate(self, attributes: Mapping[str, str]) -> Result:
        result = Result.NO_FILTER
        for part in self.parts:
            result = part.evaluate(attributes)
            if result is Result.FAIL:
                return Result.FAIL
        return result


@dataclass(frozen=True)
class AnyFilter:
    """Passes as soon as one part passes; NO_FILTER parts are neutral (eventing's ``FilterResult.Or``)."""

    parts: tuple[Filter, ...]

    def evaluate(self, attributes: Mapping[str, str]) -> Result:
        result = Result.NO_FILTER
        for part in self.parts:
            current = part.evaluate(attributes)
            if current is Result.PASS:
                return Result.PASS
            if current is Result.FAIL:
                result = Result.FAIL
        return result


@dataclass(frozen=True)
class NotFilter:
    part: Filter

    def evaluate(self, attributes: Mapping[str, str]) -> Result:
        result = self.part.evaluate(attributes)
        if result is Result.PASS:
            return Result.FAIL
        if result is Result.FAIL:
            return Result.PASS
        return Result.NO_FILTER


def _string_map(value: Any, field: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise FilterError(field, f"must be a map of attribute name to string value, got {value!r:.80}")
    for name, item in value.items():
        if not isinstance(name, str) or not isinstance(item, str):
            raise FilterError(
                f"{field}.{name}", f"attribute values must be strings, got {item!r:.80} (quote it)"
            )
    return dict(value)


def attributes_filter(attributes: Any, field: str = "spec.filter.attributes") -> Filter:
    """The filter of ``spec.filter.attributes`` (None or empty: every event passes)."""
    if attributes is None:
        return NoFilter()
    mapping = _string_map(attributes, field)
    return AttributesFilter(tuple(sorted(mapping.items()))) if mapping else NoFilter()


def dialect_filter(spec: Any, field: str) -> Filter:
    """One element of ``spec.filters`` (one dialect per element, as Knative's webhook requires)."""
    if not isinstance(spec, Mapping):
        raise FilterError(field, f"must be a map with one of {', '.join(DIALECTS)}, got {spec!r:.80}")
    dialects = [key for key in spec if key in DIALECTS]
    unknown = [key for key in spec if key not in DIALECTS]
    if unknown:
        raise FilterError(
            f"{field}.{unknown[0]}", f"unknown filter dialect; use one of {', '.join(DIALECTS)}"
        )
    if len(dialects) != 1:
        raise FilterError(
            field, f"needs exactly one dialect, found {len(dialects)} ({', '.join(dialects) or 'none'})"
        )
    dialect = dialects[0]
    body = spec[dialect]
    where = f"{field}.{dialect}"
    if dialect in ("exact", "prefix", "suffix"):
        mapping = _string_map(body, where)
        if len(mapping) != 1:
            raise FilterError(where, f"must have exactly one attribute, found {len(mapping)}")
        ((name, value),) = mapping.items()
        if not name or not value:
            raise FilterError(f"{where}.{name}", "attribute name and value must not be empty")
        return StringFilter(dialect, name, value)
    if dialect in ("all", "any"):
        if not isinstance(body, list) or not body:
            raise FilterError(where, "must be a non-empty list of filters")
        parts = tuple(dialect_filter(item, f"{where}[{i}]") for i, item in enumerate(body))
        return AllFilter(parts) if dialect == "all" else AnyFilter(parts)
    if dialect == "not":
        return NotFilter(dialect_filter(body, where))
    raise FilterError(
        where, "CESQL filters are not supported by the local runtime; use exact/prefix/suffix/all/any/not"
    )


def trigger_filter(spec: Mapping[str, Any]) -> Filter:
    """The filter of a Trigger ``spec``: ``filters`` if set (it takes precedence), else ``filter.attributes``."""
    filters = spec.get("filters")
    if filters:
        if not isinstance(filters, list):
            raise FilterError("spec.filters", "must be a list of filters")
        parts = tuple(dialect_filter(item, f"spec.filters[{i}]") for i, item in enumerate(filters))
        return parts[0] if len(parts) == 1 else AllFilter(parts)
    legacy = spec.get("filter")
    if legacy is None:
        return NoFilter()
    if not isinstance(legacy, Mapping):
        raise FilterError("spec.filter", "must be a map with `attributes`")
    return attributes_filter(legacy.get("attributes"))
