"""Shared fixtures: a real embedded Kafka broker on a free loopback port, and a private KFCHAIN_HOME.

Set ``KAFKA_BOOTSTRAP_SERVERS`` to run the suite against another broker (e.g. the Apache Kafka of
docker-compose.test.yml); each test session then uses its own topic names so runs don't mix.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from events.broker import EmbeddedBroker, free_port
from events.kafka import ensure_topics, wait_until_ready
from events.settings import KafkaSettings


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaSettings]:
    """Settings of a running broker: the embedded Tansu one, or ``$KAFKA_BOOTSTRAP_SERVERS``."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        settings = KafkaSettings(bootstrap_servers=external)
        wait_until_ready(settings, 10)
        yield settings
        return
    with EmbeddedBroker(free_port()) as broker:
        yield broker.settings


@pytest.fixture
def kafka_settings(kafka_broker: KafkaSettings) -> KafkaSettings:
    """Per-test topics on the shared broker, so tests never see each other's events."""
    suffix = uuid.uuid4().hex[:8]
    settings = dataclasses.replace(
        kafka_broker,
        topic=f"kfchain.events.{suffix}",
        dlq_topic=f"kfchain.events.{suffix}.dlq",
        timeout_s=5.0,
    )
    ensure_topics(settings)
    return settings


@pytest.fixture
def kfchain_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ``$KFCHAIN_HOME`` for code that reads it from the environment."""
    home = tmp_path / "kfchain-home"
    home.mkdir()
    monkeypatch.setenv("KFCHAIN_HOME", str(home))
    return home
