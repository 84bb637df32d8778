"""Transport settings: working defaults, and a bad variable named with what to do."""

from __future__ import annotations

import pytest

from events.log import LogSettings
from events.settings import KafkaSettings


def test_defaults_work_without_any_environment() -> None:
    settings = KafkaSettings.from_env({})
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert (settings.topic, settings.dlq_topic) == ("kfchain.events", "kfchain.events.dlq")
    assert settings.timeout_s == 10.0 and settings.idempotence is True and settings.fetch_wait_ms == 10


def test_environment_overrides_each_setting() -> None:
    settings = KafkaSettings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
            "KFCHAIN_TOPIC": "t",
            "KFCHAIN_DLQ_TOPIC": "t.dlq",
            "KFCHAIN_KAFKA_TIMEOUT": "2.5",
            "KFCHAIN_KAFKA_IDEMPOTENCE": "false",
            "KFCHAIN_TOPIC_PARTITIONS": "6",
            "KFCHAIN_KAFKA_FETCH_WAIT_MS": "500",
        }
    )
    assert settings == KafkaSettings("kafka:9092", "t", "t.dlq", 2.5, False, 6, 500)


@pytest.mark.parametrize(
    "name, value",
    [
        ("KFCHAIN_KAFKA_TIMEOUT", "soon"),
        ("KFCHAIN_KAFKA_TIMEOUT", "0"),
        ("KFCHAIN_KAFKA_IDEMPOTENCE", "maybe"),
        ("KFCHAIN_TOPIC_PARTITIONS", "0"),
        ("KFCHAIN_KAFKA_FETCH_WAIT_MS", "fast"),
    ],
)
def test_bad_value_is_named(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"{name}={value!r}"):
        KafkaSettings.from_env({name: value})


def test_log_reads_the_store_under_kfchain_home() -> None:
    assert str(LogSettings.from_env({"KFCHAIN_HOME": "/data/kf"}).store_path) == "/data/kf/events.db"
