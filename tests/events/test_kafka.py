"""Publisher, consumer and topic set-up against the real embedded broker on loopback."""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest

from events.broker import free_port
from events.catalogue import PipelineRunSubmitted
from events.codec import KafkaRecord, to_json
from events.errors import BrokerUnavailableError
from events.event import Event, caused_by
from events.kafka import Consumer, Publisher, Received, ensure_topics, read_topic, read_topics
from events.settings import KafkaSettings
from events.store import EventStore
from tests.events.conftest import make_chain, training_succeeded


def _read_all(settings: KafkaSettings) -> list[Received]:
    return list(read_topic(settings))


def test_binary_round_trip_through_the_broker(kafka_settings: KafkaSettings) -> None:
    event = make_chain().selection_dead_letter
    with Publisher(kafka_settings) as publisher:
        delivery = publisher.publish(event)
    assert delivery.topic == kafka_settings.topic and delivery.offset >= 0
    [received] = _read_all(kafka_settings)
    assert received.error is None
    assert received.event == event
    assert (received.partition, received.offset) == (delivery.partition, delivery.offset)
    assert received.record.key == event.chainid.encode()  # type: ignore[union-attr]
    headers = dict(received.record.headers)
    assert headers["ce_id"] == event.id.encode() and headers["content-type"] == b"application/json"
    assert received.timestamp is not None


def test_structured_round_trip_through_the_broker(kafka_settings: KafkaSettings) -> None:
    event = training_succeeded()
    record = KafkaRecord(
        headers=(("content-type", b"application/cloudevents+json; charset=UTF-8"),),
        key=event.chainid.encode(),  # type: ignore[union-attr]
        value=to_json(event).encode(),
    )
    with Publisher(kafka_settings) as publisher:
        publisher.publish_record(record, kafka_settings.topic)
    [received] = _read_all(kafka_settings)
    assert received.event == event


def test_read_topics_reads_each_topic_and_skips_a_missing_one(kafka_settings: KafkaSettings) -> None:
    chain = make_chain()
    with Publisher(kafka_settings) as publisher:
        publisher.publish(chain.selection)
        publisher.publish(chain.selection_dead_letter, kafka_settings.dlq_topic)
    missing = f"t.missing.{uuid.uuid4().hex[:8]}"
    topics = [kafka_settings.topic, kafka_settings.dlq_topic, missing]
    found = sorted(((r.topic, r.event) for r in read_topics(kafka_settings, topics)), key=lambda f: f[0])
    assert found == [
        (kafka_settings.topic, chain.selection),
        (kafka_settings.dlq_topic, chain.selection_dead_letter),
    ]
    assert [r.event for r in read_topic(kafka_settings)] == [chain.selection]  # one topic, as before


def test_events_of_one_chain_stay_in_order(kafka_settings: KafkaSettings) -> None:
    chains: list[list[Event]] = []
    for _ in range(4):
        event = training_succeeded()
        steps = [event]
        for i in range(7):
            steps.append(
                caused_by(
                    steps[-1],
                    PipelineRunSubmitted(pipeline="model-selection", run_id=f"r{i}", model_version="v3"),
                    source="/kfchain/services/selector",
                )
            )
        chains.append(steps)
    with Publisher(kafka_settings) as publisher:
        for i in range(8):  # interleave the chains
            for steps in chains:
                publisher.publish(steps[i])
    received = _read_all(kafka_settings)
    assert len(received) == 32
    for steps in chains:
        mine = [r for r in received if r.event is not None and r.event.chainid == steps[0].chainid]
        assert len({r.partition for r in mine}) == 1, "a chain was spread over partitions"
        assert [r.event for r in sorted(mine, key=lambda r: r.offset)] == steps
    assert len({r.partition for r in received}) > 1, "keys should spread chains over the 3 partitions"


def test_duplicates_reach_the_store_once(kafka_settings: KafkaSettings, store: EventStore) -> None:
    event = training_succeeded()
    with Publisher(kafka_settings) as publisher:
        publisher.publish(event)
        publisher.publish(event)  # at-least-once: a producer retry or a redelivery
    received = _read_all(kafka_settings)
    assert len(received) == 2
    stored = [store.append(r.event) for r in received if r.event is not None]
    assert stored == [True, False]
    assert store.count() == 1


def test_consumer_commits_only_what_it_was_told(kafka_settings: KafkaSettings) -> None:
    first, second = training_succeeded(run_id="a"), training_succeeded(run_id="b")
    first = dataclasses.replace(first, partitionkey="same-key")
    second = dataclasses.replace(second, partitionkey="same-key")  # one partition: a defined order
    with Publisher(kafka_settings) as publisher:
        publisher.publish(first)
        publisher.publish(second)
    group = f"test-{uuid.uuid4().hex[:8]}"

    def next_event(consumer: Consumer) -> Received:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            received = consumer.poll(0.5)
            if received is not None:
                return received
        pytest.fail("no record within 20 s")

    consumer = Consumer(kafka_settings, group)
    got = next_event(consumer)
    assert got.event == first
    consumer.commit(got)  # the second one is read but never committed
    assert next_event(consumer).event == second
    consumer.close()

    again = Consumer(kafka_settings, group)
    try:
        assert next_event(again).event == second  # redelivered: it was not committed
    finally:
        again.close()


def test_publisher_names_the_address_when_no_broker_runs() -> None:
    address = f"127.0.0.1:{free_port()}"
    settings = KafkaSettings(bootstrap_servers=address, timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError) as raised:
        Publisher(settings).publish(training_succeeded())
    assert address in str(raised.value)
    assert "python -m events.broker" in str(raised.value)
    assert time.monotonic() - started < 5


def test_topic_setup_is_idempotent(kafka_broker: KafkaSettings) -> None:
    suffix = uuid.uuid4().hex[:8]
    settings = dataclasses.replace(kafka_broker, topic=f"t.{suffix}", dlq_topic=f"t.{suffix}.dlq")
    assert sorted(ensure_topics(settings)) == [f"t.{suffix}", f"t.{suffix}.dlq"]
    assert ensure_topics(settings) == []
