"""Publisher, consumer and topic set-up over confluent-kafka. The only module using confluent-kafka.

Everything here is blocking (librdkafka calls); async callers run it in a thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka import Consumer as _Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from events.codec import KafkaRecord, from_kafka, to_kafka
from events.errors import BrokerUnavailableError, InvalidEventError
from events.event import Event
from events.settings import KafkaSettings

# librdkafka defaults make a consumer-group join take ~23 s on Tansu (DESIGN.md, measured);
# these make it ~3 s and still detect a dead member quickly.
_GROUP_TUNING = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
# Connection churn (a broker not up yet, a client closing) is expected here; errors surface as exceptions.
_QUIET = {"log.connection.close": False, "log_level": 2}


def _unreachable(settings: KafkaSettings, what: str, detail: object) -> BrokerUnavailableError:
    return BrokerUnavailableError(
        f"Kafka at {settings.bootstrap_servers} {what} within {settings.timeout_s:g}s ({detail}). "
        "Start the embedded broker with `python -m events.broker`, or set KAFKA_BOOTSTRAP_SERVERS "
        "to a running broker."
    )


@dataclass(frozen=True)
class Delivery:
    """Where the broker stored a published message."""

    topic: str
    partition: int
    offset: int


class Publisher:
    """Publishes events and returns only after the broker confirmed the write (``acks=all``)."""

    def __init__(self, settings: KafkaSettings, *, idempotence: bool | None = None) -> None:
        self.settings = settings
        timeout_ms = int(settings.timeout_s * 1000)
        self._producer = Producer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "acks": "all",
                "enable.idempotence": settings.idempotence if idempotence is None else idempotence,
                "linger.ms": 0,
                "message.timeout.ms": timeout_ms,
                "socket.connection.setup.timeout.ms": max(1000, timeout_ms),
                "client.id": "kfchain-publisher",
                **_QUIET,
            }
        )
        self._lock = threading.Lock()
        self._connected = False

    def _connect(self) -> None:
        """Ask for metadata before the first write: an idempotent producer whose first ``produce``
        finds no broker connection yet always retries its producer-id request on a 500 ms timer;
        connected first, it does in about half of the cases (see ``publish``)."""
        try:
            self._producer.list_topics(timeout=self.settings.timeout_s)
        except KafkaException as exc:
            raise _unreachable(
                self.settings, "did not answer", exc.args[0].str() if exc.args else exc
            ) from exc
        self._connected = True

    def publish(self, event: Event, topic: str | None = None) -> Delivery:
        """Write ``event`` in binary mode (key = partitionkey) and wait for the acknowledgement."""
        return self.publish_record(to_kafka(event), topic or self.settings.topic)

    def publish_record(self, record: KafkaRecord, topic: str) -> Delivery:
        """Write a raw record (e.g. an undecodable one forwarded to the dead-letter topic)."""
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def on_delivery(err: KafkaError | None, msg: Any) -> None:
            outcome["err"], outcome["msg"] = err, msg
            done.set()

        with self._lock:
            if not self._connected:
                self._connect()
            self._producer.produce(
                topic,
                value=record.value or None,
                key=record.key,
                headers=list(record.headers),
                on_delivery=on_delivery,
            )
            deadline = time.monotonic() + self.settings.timeout_s + 1.0
            while not done.is_set() and time.monotonic() < deadline:
                self._producer.poll(0.05)
        if not done.is_set():
            raise _unreachable(self.settings, "did not confirm the write", "no acknowledgement")
        err = outcome["err"]
        if err is not None:
            raise _unreachable(self.settings, "did not confirm the write", err.str())
        msg = outcome["msg"]
        return Delivery(topic=msg.topic(), partition=msg.partition(), offset=msg.offset())

    def close(self) -> None:
        """Flush anything outstanding."""
        self._producer.flush(self.settings.timeout_s)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def publish(event: Event, settings: KafkaSettings | None = None) -> Delivery:
    """Publish one event with a short-lived publisher (for exit handlers and CLIs); wait for the ack.

    Not idempotent: for one write idempotence adds nothing (a retried write that landed twice is the
    same event, same ``(source, id)``, which every consumer dedupes), while librdkafka's idempotent
    producer, when its first broker connection is replaced by the one metadata names, waits for its
    producer id on a 500 ms timer: half of all one-shot publishes paid ~0.5 s on Tansu.
    """
    with Publisher(settings or KafkaSettings.from_env(), idempotence=False) as publisher:
        return publisher.publish(event)


@dataclass(frozen=True)
class Received:
    """One consumed record: the decoded event, or the reason it is not a valid CloudEvent."""

    topic: str
    partition: int
    offset: int
    record: KafkaRecord
    event: Event | None
    error: InvalidEventError | None
    timestamp: datetime | None = None  # the record's Kafka timestamp (create or log-append time)

    @property
    def lag_key(self) -> tuple[str, int]:
        return (self.topic, self.partition)


def _received(msg: Any) -> Received:
    # A header may carry a null value; the codec only deals in bytes.
    headers = tuple((k, v if v is not None else b"") for k, v in (msg.headers() or ()))
    record = KafkaRecord(headers=headers, key=msg.key(), value=msg.value() or b"")
    try:
        event, error = from_kafka(record), None
    except InvalidEventError as exc:
        event, error = None, exc
    kind, millis = msg.timestamp()
    timestamp = datetime.fromtimestamp(millis / 1000, UTC) if kind != TIMESTAMP_NOT_AVAILABLE else None
    return Received(msg.topic(), msg.partition(), msg.offset(), record, event, error, timestamp)


class Consumer:
    """A consumer-group member with manual commits: commit only what was delivered or dead-lettered."""

    def __init__(self, settings: KafkaSettings, group_id: str, topics: list[str] | None = None) -> None:
        self.settings = settings
        self._consumer = _Consumer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "client.id": f"kfchain-{group_id}",
                "fetch.wait.max.ms": settings.fetch_wait_ms,
                **_GROUP_TUNING,
                **_QUIET,
            }
        )
        self._consumer.subscribe(topics or [settings.topic])

    def poll(self, timeout: float = 0.5) -> Received | None:
        """The next record, or None; raises ``KafkaException`` on a fatal client error."""
        msg = self._consumer.poll(timeout)
        if msg is None:
            return None
        error = msg.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                return None
            if error.fatal():
                raise KafkaException(error)
            return None
        return _received(msg)

    def commit(self, received: Received, *, asynchronous: bool = False) -> None:
        """Commit past ``received``: synchronously by default (a crash after this never redelivers it);
        ``asynchronous`` returns at once (a crash before the broker stored it redelivers it)."""
        offsets = [TopicPartition(received.topic, received.partition, received.offset + 1)]
        if asynchronous:
            self._consumer.commit(offsets=offsets, asynchronous=True)
        else:
            self._consumer.commit(offsets=offsets, asynchronous=False)

    def lag(self) -> dict[int, int]:
        """Records not yet committed, per assigned partition (high watermark - committed offset)."""
        result: dict[int, int] = {}
        assignment = self._consumer.assignment()
        if not assignment:
            return result
        committed = self._consumer.committed(assignment, timeout=self.settings.timeout_s)
        for tp in committed:
            _, high = self._consumer.get_watermark_offsets(tp, timeout=self.settings.timeout_s, cached=False)
            result[tp.partition] = max(0, high - tp.offset) if tp.offset >= 0 else high
        return result

    def close(self) -> None:
        self._consumer.close()


def read_topic(
    settings: KafkaSettings,
    topic: str | None = None,
    *,
    follow: bool = False,
    stop: threading.Event | None = None,
) -> Iterator[Received]:
    """Every record of ``topic`` (all partitions, from the beginning up to now), without a group.

    With ``follow`` it keeps yielding records as they arrive until ``stop`` is set (or the caller
    stops iterating). Raises ``BrokerUnavailableError`` naming the address when Kafka does not answer.
    """
    return read_topics(settings, [topic or settings.topic], follow=follow, stop=stop)


def read_topics(
    settings: KafkaSettings,
    topics: Sequence[str],
    *,
    follow: bool = False,
    stop: threading.Event | None = None,
) -> Iterator[Received]:
    """Every record of each of ``topics`` (a missing topic is skipped), as ``read_topic`` reads one.

    Records come in arrival order per partition, not merged by time: sort them if order matters.
    """
    consumer = _Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": "kfchain-reader",  # required by the client, never joined (assign, no commit)
            "enable.auto.commit": False,
            "client.id": "kfchain-reader",
            "fetch.wait.max.ms": settings.fetch_wait_ms,
            "socket.connection.setup.timeout.ms": max(1000, int(settings.timeout_s * 1000)),
            **_QUIET,
        }
    )
    try:
        # (topic, partition) -> offset after its last record now
        ends: dict[tuple[str | None, int | None], int] = {}
        assignment = []
        for topic in dict.fromkeys(topics):  # each once, in the order given
            metadata = consumer.list_topics(topic, timeout=settings.timeout_s)
            meta = metadata.topics.get(topic)
            if meta is None or meta.error is not None:
                continue
            for partition in meta.partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=settings.timeout_s
                )
                if high > low:
                    ends[(topic, partition)] = high
                if high > low or follow:
                    assignment.append(TopicPartition(topic, partition, OFFSET_BEGINNING))
        if not assignment:
            return
        consumer.assign(assignment)
        deadline = time.monotonic() + settings.timeout_s * 3
        while follow or (ends and time.monotonic() < deadline):
            if stop is not None and stop.is_set():
                return
            msg = consumer.poll(0.2 if follow else 0.5)
            if msg is None or msg.error():
                continue
            key, offset = (msg.topic(), msg.partition()), msg.offset()
            yield _received(msg)
            if offset is not None and offset + 1 >= ends.get(key, 0):
                ends.pop(key, None)
    except KafkaException as exc:
        raise _unreachable(settings, "did not answer", exc) from exc
    finally:
        consumer.close()


def wait_until_ready(settings: KafkaSettings, timeout_s: float | None = None) -> None:
    """Block until the broker answers a metadata request; raise ``BrokerUnavailableError`` if not."""
    admin = AdminClient(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "socket.connection.setup.timeout.ms": 1000,
            **_QUIET,
        }
    )
    deadline = time.monotonic() + (timeout_s or settings.timeout_s)
    last: object = "no answer"
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=1.0)
            return
        except KafkaException as exc:
            last = exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else exc
            time.sleep(0.1)
    raise _unreachable(settings, "did not answer a metadata request", last)


def ensure_topics(settings: KafkaSettings, topics: list[str] | None = None) -> list[str]:
    """Create the event and dead-letter topics if missing (idempotent); return those created."""
    admin = AdminClient(
        {"bootstrap.servers": settings.bootstrap_servers, **_QUIET}
    )  # keep a reference until resolved
    wanted = topics or [settings.topic, settings.dlq_topic]
    try:
        existing = set(admin.list_topics(timeout=settings.timeout_s).topics)
    except KafkaException as exc:
        raise _unreachable(settings, "did not answer", exc) from exc
    missing = [t for t in wanted if t not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=settings.partitions, replication_factor=1) for t in missing],
        operation_timeout=settings.timeout_s,
    )
    created = []
    for topic, future in futures.items():
        try:
            future.result(timeout=settings.timeout_s)
            created.append(topic)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created
