"""The catalogue and the Event value: valid events pass, invalid ones fail naming the field."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import pytest

from events.catalogue import (
    CATALOGUE,
    MODEL_DEPLOYED,
    PIPELINE_RUN_FAILED,
    PIPELINE_RUN_SUCCEEDED,
    ModelDeployed,
    ModelRolloutFailed,
    Payload,
    PipelineRunFailed,
    PipelineRunSubmitted,
    parse_payload,
)
from events.errors import InvalidEventError, UnknownEventTypeError
from events.event import Event, caused_by, new_event, stable_id
from tests.events.conftest import make_chain, training_succeeded

PAYLOADS: list[Payload] = [
    training_succeeded().payload(),
    make_chain().selection.payload(),
    PipelineRunFailed(pipeline="training", run_id="r9", state="FAILED", error="OOMKilled"),
    PipelineRunSubmitted(pipeline="model-selection", run_id="r10", model_version="v3"),
    ModelDeployed(
        model_name="iris", model_version="v3", k=3, accuracy=0.93, endpoint="http://iris", traffic_percent=100
    ),
    ModelRolloutFailed(model_name="iris", model_version="v3", reason="timeout"),
]


def test_every_type_of_the_catalogue_has_a_payload_here() -> None:
    assert {p.TYPE for p in PAYLOADS} == set(CATALOGUE)


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.TYPE)
def test_payload_survives_its_json_form(payload: Payload) -> None:
    assert parse_payload(payload.TYPE, payload.to_data()) == payload


def test_unknown_type_is_rejected_naming_the_type() -> None:
    with pytest.raises(UnknownEventTypeError) as raised:
        parse_payload("io.kfchain.model.exploded", {})
    assert raised.value.field == "type"
    assert "io.kfchain.model.exploded" in str(raised.value)
    assert isinstance(raised.value, ValueError)


def _without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


TRAINING_DATA = training_succeeded().data
SELECTION_DATA = make_chain().selection.data
DEPLOYED_DATA = PAYLOADS[4].to_data()


@pytest.mark.parametrize(
    ("type_", "data", "field"),
    [
        (PIPELINE_RUN_SUCCEEDED, _without(TRAINING_DATA, "run_id"), "data.run_id"),
        (PIPELINE_RUN_SUCCEEDED, {**TRAINING_DATA, "model_name": ""}, "data.model_name"),
        (PIPELINE_RUN_SUCCEEDED, {**TRAINING_DATA, "candidates": []}, "data.candidates"),
        (PIPELINE_RUN_SUCCEEDED, {**TRAINING_DATA, "candidates": "knn"}, "data.candidates"),
        (
            PIPELINE_RUN_SUCCEEDED,
            {**TRAINING_DATA, "candidates": [{"k": 3, "accuracy": 1.5, "uri": "file:///x"}]},
            "data.candidates[0].accuracy",
        ),
        (PIPELINE_RUN_SUCCEEDED, _without(SELECTION_DATA, "selected"), "data.selected"),
        (
            PIPELINE_RUN_SUCCEEDED,
            {**SELECTION_DATA, "selected": {**SELECTION_DATA["selected"], "k": 0}},
            "data.selected.k",
        ),
        (
            PIPELINE_RUN_SUCCEEDED,
            {**SELECTION_DATA, "selected": _without(SELECTION_DATA["selected"], "serving_uri")},
            "data.selected.serving_uri",
        ),
        (PIPELINE_RUN_FAILED, {"pipeline": "training", "run_id": "r", "state": "FAILED"}, "data.error"),
        (
            PIPELINE_RUN_FAILED,
            {"pipeline": "training", "run_id": "r", "state": "FAILED", "error": 7},
            "data.error",
        ),
        (MODEL_DEPLOYED, {**DEPLOYED_DATA, "traffic_percent": 150}, "data.traffic_percent"),
        (MODEL_DEPLOYED, {**DEPLOYED_DATA, "k": True}, "data.k"),
        (MODEL_DEPLOYED, {**DEPLOYED_DATA, "accuracy": float("nan")}, "data.accuracy"),
        (MODEL_DEPLOYED, ["not", "an", "object"], "data"),
    ],
)
def test_invalid_payload_is_rejected_naming_the_field(type_: str, data: Any, field: str) -> None:
    with pytest.raises(InvalidEventError) as raised:
        parse_payload(type_, data)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": ""}, "id"),
        ({"source": None}, "source"),
        ({"type": ""}, "type"),
        ({"time": datetime(2024, 5, 1, 12, 0)}, "time"),  # no timezone
        ({"extensions": {"Bad_Name": "x"}}, "Bad_Name"),
    ],
)
def test_invalid_event_attribute_is_rejected_naming_it(changes: dict[str, Any], field: str) -> None:
    attributes: dict[str, Any] = {
        "id": "e1",
        "source": "/kfchain/test",
        "type": PIPELINE_RUN_FAILED,
        "data": {},
    }
    with pytest.raises(InvalidEventError) as raised:
        Event(**{**attributes, **changes})
    assert raised.value.field == field


def test_event_with_a_bad_payload_says_which_field_when_asked() -> None:
    event = Event(
        id="e1", source="/kfchain/test", type=PIPELINE_RUN_FAILED, data={"pipeline": "training", "error": "x"}
    )
    with pytest.raises(InvalidEventError, match=r"^data\.run_id: is required"):
        event.validate()


def test_new_event_opens_a_chain_keyed_by_its_own_id() -> None:
    event = training_succeeded()
    assert event.chainid == event.id == event.partitionkey
    assert event.causationid is None
    assert event.pipeline == "training"
    assert event.subject == "iris/v3"
    assert event.time.tzinfo is not None


def test_caused_event_continues_the_chain_of_its_cause() -> None:
    cause = training_succeeded()
    reply = caused_by(
        cause,
        PipelineRunSubmitted(pipeline="model-selection", run_id="r2", model_version="v3"),
        source="/kfchain/services/selector",
    )
    assert reply.chainid == cause.chainid
    assert reply.partitionkey == cause.partitionkey  # same Kafka key: the chain stays ordered
    assert reply.causationid == cause.id
    assert reply.id != cause.id
    assert reply.subject == cause.subject
    assert reply.pipeline == "model-selection"
    grandchild = caused_by(
        reply, ModelRolloutFailed(model_name="iris", model_version="v3", reason="x"), source="/kfchain/d"
    )
    assert (grandchild.chainid, grandchild.causationid) == (cause.chainid, reply.id)


def test_a_retried_announcement_gets_the_same_id() -> None:
    assert stable_id("run-1", "SUCCEEDED") == stable_id("run-1", "SUCCEEDED")
    assert stable_id("run-1", "SUCCEEDED") != stable_id("run-1", "FAILED")
    event = new_event(PAYLOADS[2], source="/kfchain/pipelines/training", id=stable_id("r9", "FAILED"))
    assert event.id == stable_id("r9", "FAILED")


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        (
            base64.b64encode(b'{"error": "deployer unavailable"}').decode(),
            '{"error": "deployer unavailable"}',
        ),
        ("upstream timed out", "upstream timed out"),  # not base64: another producer's plain text
        ("boom", "boom"),  # valid base64 alphabet, but not of UTF-8 text
        ("", ""),
    ],
)
def test_dead_letter_error_is_the_decoded_response(data: str, shown: str) -> None:
    event = training_succeeded().with_extensions(knativeerrorcode="500", knativeerrordata=data)
    assert event.dead_letter_error == shown
