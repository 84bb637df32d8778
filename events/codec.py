"""CloudEvent <-> Kafka record and CloudEvent <-> HTTP message. The only module using the cloudevents SDK.

Kafka: CloudEvents Kafka Protocol Binding 1.0 (kafka-protocol-binding.md). Output is binary
content mode (section 3.2): ``datacontenttype`` travels as the ``content-type`` header, every
other attribute and extension as a ``ce_<name>`` header (3.2.3), and the message key is
``partitionkey`` (3.1 "Key Mapping", Partitioning extension). The SDK's ``to_binary`` drops
``ce_partitionkey``, but 3.1 says a key mapper "MUST NOT modify the CloudEvent", so we put it back.
An event without data is a record without value (3.2.2). Input accepts binary and structured mode;
the mode is chosen by the ``content-type`` header as section 3 says (prefix
``application/cloudevents``, case-insensitive, means structured).
HTTP: HTTP Protocol Binding 1.0, binary (``ce-`` headers) and structured mode.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cloudevents import exceptions as ce_errors
from cloudevents.conversion import to_binary as _http_to_binary
from cloudevents.conversion import to_dict as _to_dict
from cloudevents.conversion import to_structured as _http_to_structured
from cloudevents.http import CloudEvent as _SdkEvent
from cloudevents.http import from_http as _sdk_from_http
from cloudevents.kafka import KafkaMessage
from cloudevents.kafka import from_binary as _kafka_from_binary
from cloudevents.kafka import from_structured as _kafka_from_structured
from cloudevents.kafka import to_binary as _kafka_to_binary

from events.errors import InvalidEventError
from events.event import Event

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
_CLOUDEVENTS_MEDIA_TYPE = "application/cloudevents"

__all__ = ["KafkaRecord", "from_http", "from_json", "from_kafka", "to_http", "to_json", "to_kafka"]


@dataclass(frozen=True)
class KafkaRecord:
    """A Kafka message as the transport sees it, independent of any client library."""

    headers: tuple[tuple[str, bytes], ...]
    key: bytes | None
    value: bytes

    def header(self, name: str) -> bytes | None:
        """The first header called ``name`` (case-insensitive), if any."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)


def _sdk_event(event: Event) -> _SdkEvent:
    return _SdkEvent.create(event.attributes(), event.data)


def _json_or_text(raw: bytes | str | None) -> Any:
    if raw is None or raw in (b"", ""):
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _to_event(sdk_event: Any) -> Event:
    attributes = dict(sdk_event.get_attributes())
    return Event.from_attributes(attributes, sdk_event.get_data())


# CloudEvents 1.0 "REQUIRED Attributes". The SDK quietly invents a missing ``id`` (a fresh UUID),
# which would defeat deduplication on (source, id); we reject such a message instead.
_REQUIRED = ("specversion", "id", "source", "type")


def _require_attributes(present: Iterable[str], spelled: str) -> None:
    """Raise ``InvalidEventError`` naming the first REQUIRED attribute missing from ``present``."""
    names = set(present)
    for name in _REQUIRED:
        if name not in names:
            raise InvalidEventError(
                name, f"is a required CloudEvents attribute ({spelled.format(name)} is missing)"
            )


def _structured_keys(body: bytes | str | None) -> list[str]:
    try:
        obj = json.loads(body or b"")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidEventError("cloudevent", f"structured mode needs a JSON object: {exc}") from exc
    if not isinstance(obj, dict):
        raise InvalidEventError("cloudevent", "structured mode needs a JSON object", obj)
    return list(obj)


def _sdk_error(exc: Exception) -> InvalidEventError:
    if isinstance(exc, InvalidEventError):
        return exc
    return InvalidEventError("cloudevent", str(exc).strip() or type(exc).__name__)


# -- Kafka -----------------------------------------------------------------------------------------
def to_kafka(event: Event) -> KafkaRecord:
    """The binary-mode Kafka record of ``event``; key = partitionkey (= chainid in kfchain)."""
    message = _kafka_to_binary(_sdk_event(event), key_mapper=lambda e: e.get("partitionkey"))
    headers = dict(message.headers)
    if event.partitionkey is not None:
        headers["ce_partitionkey"] = event.partitionkey.encode()
    key = message.key.encode() if isinstance(message.key, str) else message.key
    value = message.value.encode() if isinstance(message.value, str) else message.value
    if event.data is None:
        value = b""  # 3.2.2: no data -> no value (the publisher sends a null value)
    return KafkaRecord(headers=tuple(headers.items()), key=key, value=value)


def from_kafka(record: KafkaRecord) -> Event:
    """Decode a Kafka record in binary or structured mode; raise ``InvalidEventError`` with the reason."""
    headers = {k.lower(): v for k, v in record.headers}
    content_type = (headers.get("content-type") or b"").decode(errors="replace").strip().lower()
    message = KafkaMessage(headers=headers, key=record.key, value=record.value)
    try:
        if content_type.startswith(_CLOUDEVENTS_MEDIA_TYPE) and not content_type.startswith(
            STRUCTURED_CONTENT_TYPE
        ):
            raise InvalidEventError(
                "content-type",
                f"unsupported event format; only {STRUCTURED_CONTENT_TYPE} is read",
                content_type,
            )
        if content_type.startswith(STRUCTURED_CONTENT_TYPE):
            _require_attributes(_structured_keys(record.value), "JSON member {!r}")
            # Structured mode: the SDK copies every header into the attributes; keep only ours.
            message = KafkaMessage(headers={}, key=record.key, value=record.value)
            sdk_event = _kafka_from_structured(message, data_unmarshaller=lambda d: d)
        elif "ce_specversion" in headers:
            _require_attributes((k[3:] for k in headers if k.startswith("ce_")), "header ce_{}")
            sdk_event = _kafka_from_binary(message, data_unmarshaller=_json_or_text)
        else:
            raise InvalidEventError(
                "headers",
                "not a CloudEvent: no ce_specversion header (binary mode) and content-type is not "
                f"{STRUCTURED_CONTENT_TYPE} (structured mode)",
            )
        return _to_event(sdk_event)
    except (ce_errors.GenericException, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise _sdk_error(exc) from exc


# -- HTTP ------------------------------------------------------------------------------------------
def to_http(event: Event, *, structured: bool = False) -> tuple[dict[str, str], bytes]:
    """Headers and body of ``event`` as an HTTP message (binary mode unless ``structured``)."""
    convert = _http_to_structured if structured else _http_to_binary
    headers, body = convert(_sdk_event(event))
    return dict(headers), body if isinstance(body, bytes) else body.encode()


def from_http(headers: Mapping[str, str] | Iterable[tuple[str, str]], body: bytes | str | None) -> Event:
    """Decode an HTTP CloudEvent (binary or structured); raise ``InvalidEventError`` with the reason."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    lowered = {k.lower(): v for k, v in items}
    if lowered.get("content-type", "").strip().lower().startswith(_CLOUDEVENTS_MEDIA_TYPE):
        _require_attributes(_structured_keys(body), "JSON member {!r}")
    elif any(k.startswith("ce-") for k in lowered):
        _require_attributes((k[3:] for k in lowered if k.startswith("ce-")), "header ce-{}")
    try:
        return _to_event(_sdk_from_http(lowered, body, data_unmarshaller=_json_or_text))
    except (ce_errors.GenericException, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _sdk_error(exc) from exc


# -- JSON (structured mode, one line) --------------------------------------------------------------
def to_json(event: Event) -> str:
    """The structured-mode JSON of ``event`` on one line (what ``events.log --json`` prints)."""
    return json.dumps(_to_dict(_sdk_event(event)), separators=(",", ":"), default=str)


def from_json(text: str | bytes) -> Event:
    """Parse a structured-mode JSON CloudEvent."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidEventError("cloudevent", f"not JSON: {exc.msg}") from exc
    if not isinstance(obj, dict):
        raise InvalidEventError("cloudevent", "structured mode needs a JSON object", obj)
    _require_attributes(obj, "JSON member {!r}")
    data = obj.pop("data", None)
    encoded = obj.pop("data_base64", None)
    if data is None and isinstance(encoded, str):
        try:
            data = base64.b64decode(encoded, validate=True)
        except ValueError as exc:
            raise InvalidEventError("data_base64", "is not valid base64") from exc
    return Event.from_attributes(obj, data)
