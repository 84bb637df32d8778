"""The kfchain CloudEvent as a frozen value, and the helpers that build events of a chain.

Attributes follow CloudEvents 1.0 (spec.md "Context Attributes"); ``chainid``, ``causationid``,
``pipeline`` and ``partitionkey`` are the extensions of DESIGN.md ("The event contract (v1)").
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from events.catalogue import FAILURE_TYPES, Payload, is_known_type, parse_payload
from events.errors import InvalidEventError

SPECVERSION = "1.0"
JSON = "application/json"

#: Context attributes of CloudEvents 1.0 that are not extensions.
CORE_ATTRIBUTES = ("specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema")
#: kfchain's own extensions, carried as first-class fields.
KFCHAIN_EXTENSIONS = ("chainid", "causationid", "pipeline", "partitionkey")
#: Set by the dead-letter path (Knative's data-plane contract).
DEAD_LETTER_EXTENSIONS = ("knativeerrordest", "knativeerrorcode", "knativeerrordata")

# CloudEvents 1.0 "Extension Context Attributes": lower-case a-z and 0-9 only.
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Event:
    """One CloudEvent of kfchain. ``data`` is the JSON payload as a dict."""

    id: str
    source: str
    type: str
    data: Any
    subject: str | None = None
    time: datetime = field(default_factory=_now)
    chainid: str | None = None
    causationid: str | None = None
    pipeline: str | None = None
    partitionkey: str | None = None
    datacontenttype: str = JSON
    extensions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("id", "source", "type"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise InvalidEventError(
                    name, "is a required CloudEvents attribute and must be a non-empty string", value
                )
        if not isinstance(self.time, datetime) or self.time.tzinfo is None:
            raise InvalidEventError("time", "must be a timezone-aware timestamp (RFC 3339)", self.time)
        for name in self.extensions:
            if not _EXTENSION_NAME.match(name):
                raise InvalidEventError(name, "extension names must be 1-20 lower-case letters or digits")

    # -- contract ------------------------------------------------------------------------------
    @property
    def known(self) -> bool:
        """Whether the type is in the catalogue."""
        return is_known_type(self.type)

    @property
    def dead_lettered(self) -> bool:
        """Whether the dead-letter path stamped this event."""
        return "knativeerrorcode" in self.extensions or "knativeerrordest" in self.extensions

    @property
    def dead_letter_error(self) -> str:
        """``knativeerrordata`` as text: the failed delivery's response body or error.

        Knative base64-encodes it; a value that is not base64 of UTF-8 text (another producer's, or
        a binary body) is returned as is.
        """
        data = self.extensions.get("knativeerrordata", "")
        try:
            return base64.b64decode(data, validate=True).decode("utf-8")
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            return data

    @property
    def failed(self) -> bool:
        """Whether this event reports a failed step (failure type or dead letter)."""
        return self.type in FAILURE_TYPES or self.dead_lettered

    def payload(self) -> Payload:
        """The typed, validated payload; raises ``InvalidEventError`` naming the bad field."""
        return parse_payload(self.type, self.data)

    def validate(self) -> Event:
        """Check the payload against the catalogue and return self (for chaining)."""
        self.payload()
        return self

    def attributes(self) -> dict[str, str]:
        """All context attributes and extensions as strings (the CloudEvent's attribute map)."""
        attrs: dict[str, str] = {
            "specversion": SPECVERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "datacontenttype": self.datacontenttype,
        }
        for name in ("subject", *KFCHAIN_EXTENSIONS):
            value = getattr(self, name)
            if value is not None:
                attrs[name] = value
        attrs.update(self.extensions)
        return attrs

    def with_extensions(self, **extensions: str) -> Event:
        """A copy with more extension attributes (e.g. the dead-letter ones)."""
        return replace(self, extensions={**self.extensions, **extensions})

    @classmethod
    def from_attributes(cls, attributes: dict[str, Any], data: Any) -> Event:
        """Build an Event from a CloudEvent attribute map (as decoded by the codec)."""
        attrs = dict(attributes)
        specversion = attrs.pop("specversion", None)
        if specversion != SPECVERSION:
            raise InvalidEventError("specversion", f"must be {SPECVERSION}", specversion)
        raw_time = attrs.pop("time", None)
        time = _parse_time(raw_time) if raw_time else _now()
        known = {
            name: attrs.pop(name, None) for name in ("id", "source", "type", "subject", *KFCHAIN_EXTENSIONS)
        }
        datacontenttype = attrs.pop("datacontenttype", None) or JSON
        attrs.pop("dataschema", None)
        extensions = {k: str(v) for k, v in attrs.items() if v is not None}
        for name in (
            "subject",
            *KFCHAIN_EXTENSIONS,
        ):  # JSON may carry them as numbers; attributes are strings
            value = known.get(name)
            if value is not None and not isinstance(value, (str, bytes)):
                known[name] = str(value)
        partitionkey = known.pop("partitionkey")
        if isinstance(partitionkey, bytes):
            partitionkey = partitionkey.decode()
        return cls(
            time=time,
            data=data,
            datacontenttype=datacontenttype,
            extensions=extensions,
            partitionkey=partitionkey,
            **known,  # type: ignore[arg-type]
        )


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidEventError("time", "must be an RFC 3339 timestamp", value) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def new_event(
    payload: Payload,
    *,
    source: str,
    subject: str | None = None,
    id: str | None = None,
    chainid: str | None = None,
    causationid: str | None = None,
    time: datetime | None = None,
) -> Event:
    """An event carrying ``payload``. Without ``chainid`` it opens a new chain (chainid = its id).

    A pipeline run that was started by an event passes that event's chain id and id explicitly
    (``chainid``/``causationid``) because only those strings travel through the run's parameters.
    """
    event_id = id or str(uuid.uuid4())
    chain = chainid or event_id
    data = payload.to_data()
    return Event(
        id=event_id,
        source=source,
        type=payload.TYPE,
        data=data,
        subject=subject,
        time=time or _now(),
        chainid=chain,
        causationid=causationid,
        pipeline=data.get("pipeline") if isinstance(data.get("pipeline"), str) else None,
        partitionkey=chain,
    )


def caused_by(
    cause: Event, payload: Payload, *, source: str, subject: str | None = None, id: str | None = None
) -> Event:
    """An event caused by ``cause``: same chain (and partition key), ``causationid`` = cause's id."""
    return new_event(
        payload,
        source=source,
        subject=subject if subject is not None else cause.subject,
        id=id,
        chainid=cause.chainid or cause.id,
        causationid=cause.id,
    )


def stable_id(*parts: str) -> str:
    """A deterministic event id (UUIDv5) from business keys, e.g. run id and final state.

    A retried producer (an exit handler run twice) then announces the same fact under one id,
    and every consumer dedupes it on (source, id).
    """
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "kfchain:" + "/".join(parts)))
