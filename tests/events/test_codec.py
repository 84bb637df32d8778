"""CloudEvent <-> Kafka record and <-> HTTP message, checked against the protocol bindings.

Kafka: CloudEvents "Kafka Protocol Binding" (cloudevents/spec, cloudevents/bindings/kafka-protocol-binding.md).
HTTP: CloudEvents "HTTP Protocol Binding" (http-protocol-binding.md), sections 3.1 binary, 3.2 structured.
"""

from __future__ import annotations

import base64
import json

import pytest

from events.codec import KafkaRecord, from_http, from_json, from_kafka, to_http, to_json, to_kafka
from events.errors import InvalidEventError
from events.event import Event
from tests.events.conftest import make_chain

STRUCTURED = "application/cloudevents+json; charset=UTF-8"


def _reply_with_dead_letter() -> Event:
    """A caused event (so causationid is set) carrying the dead-letter extensions as well."""
    return make_chain().selection_dead_letter


def test_binary_mode_headers_are_exactly_the_binding_s_mapping() -> None:
    event = _reply_with_dead_letter()
    record = to_kafka(event)
    headers = dict(record.headers)
    assert len(headers) == len(record.headers), "a header name appears twice"
    assert headers == {
        # 3.2.1 Content Type: the content-type header maps directly to datacontenttype ...
        "content-type": b"application/json",
        # 3.2.3 Metadata Headers / 3.2.3.1 Property Names: every other attribute is "ce_" + name,
        # UTF-8 encoded; extensions included (primer: CloudEvent Attributes Extensions).
        "ce_specversion": b"1.0",
        "ce_id": event.id.encode(),
        "ce_source": b"/kfchain/pipelines/model-selection",
        "ce_type": b"io.kfchain.pipeline.run.succeeded",
        "ce_time": event.time.isoformat().replace("+00:00", "Z").encode(),
        "ce_subject": b"iris/v3",
        "ce_chainid": event.chainid.encode(),  # type: ignore[union-attr]
        "ce_causationid": event.causationid.encode(),  # type: ignore[union-attr]
        "ce_pipeline": b"model-selection",
        # 3.1 Key Mapping: "the aforementioned partitionkey attribute MUST still be included".
        "ce_partitionkey": event.chainid.encode(),  # type: ignore[union-attr]
        "ce_knativeerrordest": b"http://deployer.kfchain.svc.cluster.local",
        "ce_knativeerrorcode": b"503",
        "ce_knativeerrordata": base64.b64encode(b"deployer unavailable"),
    }
    # ... so it is never also sent as ce_datacontenttype.
    assert "ce_datacontenttype" not in headers
    # 3.1 Key Mapping: partitionkey -> Kafka key as-is (kfchain: partitionkey = chainid).
    assert record.key == event.chainid.encode()  # type: ignore[union-attr]
    # 3.2.2 Event Data Encoding: the data bytes are the value.
    assert json.loads(record.value) == event.data
    for name, value in record.headers:
        name.encode("utf-8"), value.decode("utf-8")  # 3.2.3: keys and values are UTF-8


def test_binary_round_trip_keeps_every_attribute() -> None:
    event = _reply_with_dead_letter()
    assert from_kafka(to_kafka(event)) == event


def test_event_without_data_is_a_record_without_value() -> None:
    event = Event(id="e1", source="/kfchain/test", type="com.example.ping", data=None)
    record = to_kafka(event)
    assert record.value == b""  # 3.2.2: "a Kafka message with no value" (the publisher sends null)
    assert from_kafka(record).data is None


@pytest.mark.parametrize("content_type", [STRUCTURED, "Application/CloudEvents+JSON"])
def test_structured_mode_is_accepted(content_type: str) -> None:
    # Section 3: a content-type prefixed with application/cloudevents, matched case-insensitively.
    event = _reply_with_dead_letter()
    record = KafkaRecord(
        headers=(("content-type", content_type.encode()),),
        key=event.chainid.encode(),
        value=to_json(event).encode(),
    )
    assert from_kafka(record) == event


def test_binary_record_of_another_producer_is_read() -> None:
    # What kcat or a Java producer might send: only the required headers, text data.
    record = KafkaRecord(
        headers=(
            ("ce_specversion", b"1.0"),
            ("ce_id", b"42"),
            ("ce_source", b"urn:example"),
            ("ce_type", b"com.example.note"),
            ("content-type", b"text/plain"),
        ),
        key=None,
        value=b"hello",
    )
    event = from_kafka(record)
    assert (event.id, event.source, event.type, event.data, event.datacontenttype) == (
        "42",
        "urn:example",
        "com.example.note",
        "hello",
        "text/plain",
    )
    assert not event.known


def _binary(*drop: str, **override: bytes) -> KafkaRecord:
    headers = {k: v for k, v in to_kafka(_reply_with_dead_letter()).headers if k not in drop}
    headers.update({k: v for k, v in override.items()})
    return KafkaRecord(headers=tuple(headers.items()), key=None, value=b"{}")


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (_binary("ce_id"), "id"),
        (_binary("ce_source"), "source"),
        (_binary("ce_type"), "type"),
        (_binary(ce_specversion=b"0.3"), "specversion"),
        (_binary(ce_time=b"yesterday"), "time"),
        (KafkaRecord(headers=(("content-type", b"application/json"),), key=None, value=b"{}"), "headers"),
        (
            KafkaRecord(headers=(("content-type", STRUCTURED.encode()),), key=None, value=b"{not json"),
            "cloudevent",
        ),
        (
            KafkaRecord(
                headers=(("content-type", STRUCTURED.encode()),), key=None, value=b'{"specversion": "1.0"}'
            ),
            "id",
        ),
        (
            KafkaRecord(headers=(("content-type", b"application/cloudevents+avro"),), key=None, value=b""),
            "content-type",
        ),
    ],
    ids=[
        "no-id",
        "no-source",
        "no-type",
        "old-specversion",
        "bad-time",
        "not-a-cloudevent",
        "bad-json",
        "structured-no-id",
        "avro-format",
    ],
)
def test_invalid_record_is_rejected_naming_the_field(record: KafkaRecord, field: str) -> None:
    with pytest.raises(InvalidEventError) as raised:
        from_kafka(record)
    assert raised.value.field == field
    assert isinstance(raised.value, ValueError)


def test_http_binary_mode_uses_ce_dash_headers() -> None:
    event = _reply_with_dead_letter()
    headers, body = to_http(event)
    lowered = {k.lower(): v for k, v in headers.items()}
    assert lowered["content-type"] == "application/json"  # HTTP binding 3.1.1
    assert lowered["ce-id"] == event.id  # 3.1.3.1: "ce-" prefix
    assert lowered["ce-chainid"] == event.chainid
    assert lowered["ce-knativeerrorcode"] == "503"
    assert "ce-datacontenttype" not in lowered
    assert json.loads(body) == event.data
    assert from_http(headers, body) == event


def test_http_structured_mode_round_trip() -> None:
    event = _reply_with_dead_letter()
    headers, body = to_http(event, structured=True)
    assert headers["content-type"].startswith("application/cloudevents+json")
    assert json.loads(body)["causationid"] == event.causationid
    assert from_http(headers, body) == event
    assert from_http(list(headers.items()), body.decode()) == event


def test_http_message_missing_a_required_attribute_is_rejected_naming_it() -> None:
    headers, body = to_http(_reply_with_dead_letter())
    headers = {k: v for k, v in headers.items() if k.lower() != "ce-type"}
    with pytest.raises(InvalidEventError) as raised:
        from_http(headers, body)
    assert raised.value.field == "type"


def test_json_line_round_trip_keeps_extensions() -> None:
    event = _reply_with_dead_letter()
    line = to_json(event)
    assert "\n" not in line
    assert json.loads(line)["knativeerrordest"] == "http://deployer.kfchain.svc.cluster.local"
    assert from_json(line) == event


def test_structured_attributes_sent_as_numbers_become_strings() -> None:
    event = from_json(
        '{"specversion": "1.0", "id": "1", "source": "/x", "type": "t", "chainid": 42, "subject": 7}'
    )
    assert (event.chainid, event.subject) == ("42", "7")
