"""The local stand-in for the Knative Kafka Broker's data plane: one consumer group per Route.

For each Route (a Trigger or KafkaSource) a thread owns a consumer-group member (``events.kafka.Consumer``,
manual commits) and:

* filters each event (non-matching events are committed without delivery);
* delivers matching events in binary mode with the Route's retry/backoff/timeout (``delivery.py``);
* publishes a reply event back to the broker topic (Triggers only, as Knative; an invalid reply is
  logged and counted);
* dead-letters what failed: the event stamped with ``knativeerror*`` to the dead-letter topic (or URL),
  and records that are not valid CloudEvents raw, with a ``kfchain-dead-letter-reason`` header;
* commits an offset only once its event and every earlier one of the partition has an outcome
  (delivered, filtered or dead-lettered), so a crash redelivers and never skips.

Ordered Routes deliver one event at a time per partition, in offset order; unordered Routes deliver
up to ``max_in_flight`` events at once. Only the consumer thread touches the consumer.

Latency (load/bench/dispatcher.py): the consumer thread never waits on the broker while events
are due: commits are asynchronous (a later commit covers a failed one; the last one, on stop, is
synchronous), and the lag metric's broker round trips run when the consumer is idle. Each delivery
thread keeps its own keep-alive HTTP connection, so deliveries neither reconnect nor queue on a
shared connection pool's lock.
"""

from __future__ import annotations

import enum
import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx

from events.codec import KafkaRecord
from events.errors import BrokerUnavailableError, InvalidEventError
from events.event import Event
from events.kafka import Consumer, Publisher, Received
from events.settings import KafkaSettings
from knative.local.delivery import Attempt, dead_lettered, post_event, reply_of
from knative.local.metrics import DispatcherMetrics
from knative.local.routes import Route

log = logging.getLogger("knative.local.dispatcher")

REASON_HEADER = "kfchain-dead-letter-reason"
TRIGGER_HEADER = "kfchain-dead-letter-trigger"
_POLL_S = 0.05
_COMMIT_EVERY_S = 0.1
_LAG_EVERY_S = 5.0
_LAG_LATEST_S = 30.0  # under constant load the lag is refreshed this often, even if never idle


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    DEAD_LETTERED = "dead-lettered"
    DROPPED = "dropped"
    ABANDONED = "abandoned"  # stopping: not committed, so redelivered after a restart


@dataclass
class _Partition:
    pending: dict[int, Received]  # offsets consumed and not yet committed, ascending
    done: set[int]


class _Lane:
    """A queue served by ``workers`` daemon threads (daemon: a hanging subscriber never blocks exit)."""

    def __init__(
        self, name: str, workers: int, run: Callable[[Received], None], prepare: Callable[[], object]
    ) -> None:
        self._queue: queue.SimpleQueue[Received | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._serve, args=(run, prepare), name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def _serve(self, run: Callable[[Received], None], prepare: Callable[[], object]) -> None:
        prepare()  # e.g. the thread's HTTP client, before the first event waits for it
        while (item := self._queue.get()) is not None:
            run(item)

    def submit(self, item: Received) -> None:
        self._queue.put(item)

    def close(self, timeout_s: float) -> None:
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class RouteWorker(threading.Thread):
    """Consumes one Route's topics as its consumer group and delivers what passes the filter."""

    def __init__(
        self,
        route: Route,
        settings: KafkaSettings,
        publisher: Publisher,
        metrics: DispatcherMetrics,
        *,
        max_in_flight: int = 32,
        stop_grace_s: float = 5.0,
    ) -> None:
        super().__init__(name=f"route-{route.name}", daemon=True)
        self.route = route
        self.settings = settings
        self.publisher = publisher
        self.metrics = metrics
        self.max_in_flight = max_in_flight
        self.stop_grace_s = stop_grace_s
        self.assigned = threading.Event()
        self.failed: BaseException | None = None
        self._stopping = threading.Event()
        self._completions: queue.SimpleQueue[tuple[Received, Outcome]] = queue.SimpleQueue()
        self._partitions: dict[tuple[str, int], _Partition] = {}
        self._lanes: dict[object, _Lane] = {}
        self._in_flight = 0
        # Loading CA certificates costs ~50 ms of CPU per client: load them once, share the context.
        self._tls = ssl.create_default_context()
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._clients_lock = threading.Lock()
        self._labels = {"trigger": route.name}

    # -- consumer thread --------------------------------------------------------------------------
    def run(self) -> None:
        consumer = None
        try:
            if not self.route.ordered:  # start the delivery threads while the group joins
                self._lane("shared")
            consumer = Consumer(self.settings, self.route.group_id, list(self.route.topics))
            log.info(
                "%s %s: joining group %s on %s",
                self.route.kind,
                self.route.name,
                self.route.group_id,
                ", ".join(self.route.topics),
            )
            started = time.monotonic()
            last_commit = last_lag = 0.0
            while not self._stopping.is_set():
                self._collect_completions()
                received = None
                if self._in_flight < self.max_in_flight:
                    received = consumer.poll(_POLL_S)
                    if received is not None:
                        self._accept(received)
                else:
                    time.sleep(0.005)
                now = time.monotonic()
                if now - last_commit >= _COMMIT_EVERY_S or received is None:
                    self._collect_completions()
                    self._commit(consumer, asynchronous=True)
                    last_commit = now
                lag_due = now - last_lag >= (_LAG_EVERY_S if received is None else _LAG_LATEST_S)
                if not self.assigned.is_set() or lag_due:
                    if self._update_lag(consumer) and not self.assigned.is_set():
                        log.info("%s: partitions assigned after %.1fs", self.route.name, now - started)
                        self.assigned.set()
                        self.metrics.ready.labels(**self._labels).set(1)
                    last_lag = now
        except Exception as exc:  # a fatal client error: report it, the supervisor restarts the process
            self.failed = exc
            log.exception("%s: the consumer failed", self.route.name)
        finally:
            for lane in self._lanes.values():
                lane.close(self.stop_grace_s)
            if consumer is not None:
                self._collect_completions()
                self._commit(consumer, asynchronous=False)
                consumer.close()
            with self._clients_lock:
                for client in self._clients:
                    client.close()

    def stop(self) -> None:
        self._stopping.set()

    def _accept(self, received: Received) -> None:
        key = (received.topic, received.partition)
        partition = self._partitions.setdefault(key, _Partition({}, set()))
        if received.offset in partition.pending:
            return  # re-fetched after a rebalance while still in flight here
        partition.pending[received.offset] = received
        if partition.pending and received.offset < max(partition.pending):
            partition.pending = dict(sorted(partition.pending.items()))
        if received.event is None:
            self._submit(received)
            return
        if not self.route.filter.evaluate(received.event.attributes()).passes():
            self.metrics.filtered.labels(**self._labels).inc()
            partition.done.add(received.offset)
            return
        self._submit(received)

    def _submit(self, received: Received) -> None:
        lane_key: object = (received.topic, received.partition) if self.route.ordered else "shared"
        self._in_flight += 1
        self._lane(lane_key).submit(received)

    def _lane(self, lane_key: object) -> _Lane:
        lane = self._lanes.get(lane_key)
        if lane is None:
            workers = 1 if self.route.ordered else self.max_in_flight
            lane = self._lanes[lane_key] = _Lane(
                f"{self.route.name}-{lane_key}", workers, self._run_task, self._client
            )
        return lane

    def _run_task(self, received: Received) -> None:
        """Runs on a lane thread: deliver (or dead-letter an invalid record) and report the outcome."""
        started = time.monotonic()
        try:
            outcome = (
                self._deliver(received) if received.event is not None else self._dead_letter_invalid(received)
            )
        except (
            Exception
        ):  # a bug must not kill the lane; the offset stays uncommitted and is redelivered on restart
            log.exception(
                "%s: delivering %s/%d@%d failed unexpectedly",
                self.route.name,
                received.topic,
                received.partition,
                received.offset,
            )
            outcome = Outcome.ABANDONED
        if outcome is not Outcome.ABANDONED:
            self.metrics.delivery_seconds.labels(**self._labels).observe(time.monotonic() - started)
        self._completions.put((received, outcome))

    def _collect_completions(self) -> None:
        while True:
            try:
                received, outcome = self._completions.get_nowait()
            except queue.Empty:
                return
            self._in_flight -= 1
            if outcome is not Outcome.ABANDONED:
                self._partitions[(received.topic, received.partition)].done.add(received.offset)

    def _commit(self, consumer: Consumer, *, asynchronous: bool) -> None:
        """Commit, per partition, past the last offset before the first one without an outcome."""
        for partition in self._partitions.values():
            last = None
            while partition.pending:
                offset = next(iter(partition.pending))
                if offset not in partition.done:
                    break
                last = partition.pending.pop(offset)
                partition.done.discard(offset)
            if last is not None:
                try:
                    consumer.commit(last, asynchronous=asynchronous)
                except (
                    Exception
                ) as exc:  # librdkafka error (e.g. partitions revoked): redelivered; subscribers dedupe
                    log.warning(
                        "%s: commit of %s/%d@%d failed: %s",
                        self.route.name,
                        last.topic,
                        last.partition,
                        last.offset,
                        exc,
                    )

    def _update_lag(self, consumer: Consumer) -> bool:
        try:
            lag = consumer.lag()
        except Exception as exc:  # lag is best effort: a metadata hiccup must not stop delivery
            log.debug("%s: lag unavailable: %s", self.route.name, exc)
            return False
        for partition, value in lag.items():
            self.metrics.lag.labels(trigger=self.route.name, partition=str(partition)).set(value)
        return bool(lag)

    # -- delivery threads -------------------------------------------------------------------------
    def _client(self) -> httpx.Client:
        """This delivery thread's HTTP client: one keep-alive connection to the subscriber, reused."""
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(
                verify=self._tls, limits=httpx.Limits(max_connections=4, max_keepalive_connections=4)
            )
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def _deliver(self, received: Received) -> Outcome:
        event = received.event
        assert event is not None
        route = self.route
        attempt = Attempt(-1, error="not attempted")
        for number in range(route.retry + 1):
            if number:
                self.metrics.retried.labels(**self._labels).inc()
                if self._stopping.wait(route.backoff(number)):
                    return Outcome.ABANDONED
            attempt = post_event(self._client(), route.subscriber_url, event, route.timeout_s)
            if attempt.ok:
                if not self._handle_reply(event, attempt):
                    return Outcome.ABANDONED
                self.metrics.delivered.labels(**self._labels).inc()
                return Outcome.DELIVERED
            if self._stopping.is_set():
                return Outcome.ABANDONED
            log.warning(
                "%s: %s answered %s for %s (%s), attempt %d of %d",
                route.name, route.subscriber_url, attempt.describe(), event.id, event.type, number + 1, route.retry + 1,
            )  # fmt: skip
            if not attempt.retryable:
                break
        return self._dead_letter(event, dead_lettered(event, route.subscriber_url, attempt), received)

    def _handle_reply(self, cause: Event, attempt: Attempt) -> bool:
        try:
            reply = reply_of(attempt)
        except InvalidEventError as exc:
            self.metrics.invalid_replies.labels(**self._labels).inc()
            log.error(
                "%s: the reply to %s is not a valid CloudEvent (%s); not published",
                self.route.name,
                cause.id,
                exc,
            )
            return True
        if reply is None:
            return True
        if self.route.reply_topic is None:
            log.info(
                "%s: reply %s (%s) ignored: a %s does not route replies",
                self.route.name,
                reply.id,
                reply.type,
                self.route.kind,
            )
            return True
        if not self._until_published(
            lambda: self.publisher.publish(reply, self.route.reply_topic), f"reply {reply.id}"
        ):
            return False
        self.metrics.replies.labels(**self._labels).inc()
        return True

    def _dead_letter(self, original: Event, stamped: Event, received: Received) -> Outcome:
        target = self.route.dead_letter
        where = f"{received.topic}/{received.partition}@{received.offset}"
        if target is None:
            self.metrics.dropped.labels(**self._labels).inc()
            log.error(
                "%s: %s (%s, %s) failed and there is no deadLetterSink: dropped",
                self.route.name,
                original.id,
                original.type,
                where,
            )
            return Outcome.DROPPED
        if target.topic in self.route.topics:
            self.metrics.dropped.labels(**self._labels).inc()
            log.error(
                "%s: %s failed; its dead-letter topic %s is the topic it came from: dropped",
                self.route.name,
                original.id,
                target.topic,
            )
            return Outcome.DROPPED
        if target.topic:
            if not self._until_published(
                lambda: self.publisher.publish(stamped, target.topic), f"dead letter {original.id}"
            ):
                return Outcome.ABANDONED
        else:
            attempt = post_event(self._client(), str(target.url), stamped, self.route.timeout_s)
            if not attempt.ok:
                self.metrics.dropped.labels(**self._labels).inc()
                log.error(
                    "%s: dead-letter sink %s answered %s for %s: dropped",
                    self.route.name,
                    target.url,
                    attempt.describe(),
                    original.id,
                )
                return Outcome.DROPPED
        self.metrics.dead_lettered.labels(**self._labels).inc()
        log.warning(
            "%s: %s (%s) dead-lettered to %s (code %s)",
            self.route.name, original.id, original.type, target, stamped.extensions.get("knativeerrorcode"),
        )  # fmt: skip
        return Outcome.DEAD_LETTERED

    def _dead_letter_invalid(self, received: Received) -> Outcome:
        self.metrics.invalid.labels(**self._labels).inc()
        where = f"{received.topic}/{received.partition}@{received.offset}"
        target = self.route.dead_letter
        reason = str(received.error)
        if target is None or target.topic is None or target.topic in self.route.topics:
            self.metrics.dropped.labels(**self._labels).inc()
            log.error(
                "%s: record %s is not a valid CloudEvent (%s) and cannot be dead-lettered here: dropped",
                self.route.name,
                where,
                reason,
            )
            return Outcome.DROPPED
        record = KafkaRecord(
            headers=(
                *received.record.headers,
                (REASON_HEADER, reason.encode()),
                (TRIGGER_HEADER, self.route.name.encode()),
            ),
            key=received.record.key,
            value=received.record.value,
        )
        if not self._until_published(
            lambda: self.publisher.publish_record(record, str(target.topic)), f"invalid record {where}"
        ):
            return Outcome.ABANDONED
        self.metrics.dead_lettered.labels(**self._labels).inc()
        log.warning(
            "%s: record %s is not a valid CloudEvent (%s): dead-lettered raw to %s",
            self.route.name,
            where,
            reason,
            target.topic,
        )
        return Outcome.DEAD_LETTERED

    def _until_published(self, publish: Callable[[], object], what: str) -> bool:
        """Publish, retrying while the broker is unreachable; False if stopping first (then not committed)."""
        delay = 0.5
        while True:
            try:
                publish()
                return True
            except BrokerUnavailableError as exc:
                log.error(
                    "%s: could not publish %s (%s); retrying in %.1fs", self.route.name, what, exc, delay
                )
            if self._stopping.wait(delay):
                return False
            delay = min(delay * 2, 5.0)


class Dispatcher:
    """Runs one ``RouteWorker`` per Route; ``start()``/``stop()`` or use as a context manager."""

    def __init__(
        self,
        routes: Iterable[Route],
        settings: KafkaSettings,
        *,
        metrics: DispatcherMetrics | None = None,
        max_in_flight: int = 32,
    ) -> None:
        self.routes = list(routes)
        names = [r.name for r in self.routes]
        if len(set(names)) != len(names):
            raise ValueError(f"route names must be unique (they label metrics): {names}")
        self.settings = settings
        self.metrics = metrics or DispatcherMetrics()
        # At-least-once with dedupe on (source, id) downstream; the idempotent producer costs p99 ~490 ms
        # per publish on Tansu (DESIGN.md), which every reply would add to the chain.
        self.publisher = Publisher(settings, idempotence=False)
        self.workers = [
            RouteWorker(r, settings, self.publisher, self.metrics, max_in_flight=max_in_flight)
            for r in self.routes
        ]

    def start(self) -> Dispatcher:
        for worker in self.workers:
            worker.start()
        return self

    def ready(self) -> bool:
        """Whether every Route's consumer has its partitions (events published from now on are delivered)."""
        return all(w.assigned.is_set() for w in self.workers)

    def not_ready(self) -> list[str]:
        return [w.route.name for w in self.workers if not w.assigned.is_set()]

    def failed(self) -> list[str]:
        return [
            f"{w.route.name}: {w.failed}" for w in self.workers if w.failed is not None or not w.is_alive()
        ]

    def wait_ready(self, timeout_s: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.ready():
                return True
            time.sleep(0.05)
        return self.ready()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop consuming, let deliveries in progress finish (up to a grace period), commit, close."""
        for worker in self.workers:
            worker.stop()
        deadline = time.monotonic() + timeout_s
        for worker in self.workers:
            if worker.ident is not None:
                worker.join(max(0.0, deadline - time.monotonic()))
        self.publisher.close()

    def __enter__(self) -> Dispatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
