"""Settings of the event transport, read once from the environment with working local defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from events.envvars import env_bool, env_int, env_seconds

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_TOPIC = "kfchain.events"
DEFAULT_DLQ_TOPIC = "kfchain.events.dlq"


def kfchain_home(env: Mapping[str, str] | None = None) -> Path:
    """``$KFCHAIN_HOME`` (default ``./.kfchain``): where all local state lives."""
    source: Mapping[str, str] = os.environ if env is None else env
    return Path(source.get("KFCHAIN_HOME") or ".kfchain").expanduser()


@dataclass(frozen=True)
class KafkaSettings:
    """Where the events go: bootstrap servers, topics, timeouts."""

    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    topic: str = DEFAULT_TOPIC
    dlq_topic: str = DEFAULT_DLQ_TOPIC
    timeout_s: float = 10.0
    idempotence: bool = True
    partitions: int = 3
    # How long a consumer's fetch may wait at the broker for data. Tansu answers a fetch only when
    # this expires (no early return on new data), so it bounds end-to-end latency: measured p50
    # 127 ms with librdkafka's 500 ms default, 4.5 ms with 10 ms (load/bench/events.py). On a real
    # Kafka cluster a fetch returns as soon as data arrives; raise it there to poll less when idle.
    fetch_wait_ms: int = 10

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> KafkaSettings:
        """Read ``KAFKA_BOOTSTRAP_SERVERS``, ``KFCHAIN_TOPIC``, ``KFCHAIN_DLQ_TOPIC``,
        ``KFCHAIN_KAFKA_TIMEOUT``, ``KFCHAIN_KAFKA_IDEMPOTENCE``, ``KFCHAIN_TOPIC_PARTITIONS``,
        ``KFCHAIN_KAFKA_FETCH_WAIT_MS``."""
        env = dict(os.environ if env is None else env)
        return cls(
            bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP,
            topic=env.get("KFCHAIN_TOPIC") or DEFAULT_TOPIC,
            dlq_topic=env.get("KFCHAIN_DLQ_TOPIC") or DEFAULT_DLQ_TOPIC,
            timeout_s=env_seconds(env, "KFCHAIN_KAFKA_TIMEOUT", 10.0),
            idempotence=env_bool(env, "KFCHAIN_KAFKA_IDEMPOTENCE", True),
            partitions=env_int(env, "KFCHAIN_TOPIC_PARTITIONS", 3, minimum=1),
            fetch_wait_ms=env_int(env, "KFCHAIN_KAFKA_FETCH_WAIT_MS", 10, minimum=1),
        )
