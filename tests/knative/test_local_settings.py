"""The local runtime's settings that differ from the library defaults."""

from __future__ import annotations

from events.settings import KafkaSettings
from knative.local.settings import DISPATCHER_FETCH_WAIT_MS, dispatcher_kafka_settings


def test_the_dispatcher_fetches_less_often_than_a_lone_consumer_unless_told() -> None:
    library = KafkaSettings.from_env({})
    assert library.fetch_wait_ms < DISPATCHER_FETCH_WAIT_MS
    assert dispatcher_kafka_settings(library, {}).fetch_wait_ms == DISPATCHER_FETCH_WAIT_MS
    # An explicit KFCHAIN_KAFKA_FETCH_WAIT_MS wins (e.g. 500 on a real Kafka, which answers early).
    explicit = KafkaSettings.from_env({"KFCHAIN_KAFKA_FETCH_WAIT_MS": "500"})
    assert dispatcher_kafka_settings(explicit, {"KFCHAIN_KAFKA_FETCH_WAIT_MS": "500"}).fetch_wait_ms == 500
