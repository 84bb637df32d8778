"""Benchmark of the event path: ``Publisher.publish`` -> Kafka -> ``Consumer.poll`` on loopback.

Two measurements per producer mode (idempotence on, kfchain's default, and off, the baseline),
each mode on its own topic with its own consumer; the modes' steady phases alternate in rounds:

- latency at a steady 200 events/s, after a 3 s warm-up at that rate (the first seconds after a
  consumer joins run 100-300 ms slow; that is not steady state). Each event is sent at its
  scheduled time (open loop) and its latency counts from that time to the moment the consumer
  returns it, so a publisher that falls behind shows in the numbers (no coordinated omission);
- the highest rate of the same path: publish back to back for a few seconds, until all are consumed.

The broker is ``$KAFKA_BOOTSTRAP_SERVERS`` when set, otherwise an embedded Tansu broker on a free port.
Targets (issue 2): p50 <= 10 ms and p99 <= 50 ms. Run alone: ``python -m load.bench.events``.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from events.broker import EmbeddedBroker, free_port
from events.catalogue import PipelineRunSubmitted
from events.event import Event, new_event
from events.kafka import Consumer, Publisher, ensure_topics, wait_until_ready
from events.settings import KafkaSettings
from load.bench import BenchRow, Progress

RATE = 200.0  # events/s, as the issue asks
STEADY_S = 10.0
BURST_S = 3.0
WARMUP_S = 3.0
ROUNDS = 5  # the two modes' steady phases alternate in this many slices
P50_TARGET_MS = 10.0
P99_TARGET_MS = 50.0


@dataclass(frozen=True)
class PathResult:
    """What one producer mode measured."""

    idempotence: bool
    p50_ms: float
    p99_ms: float
    max_ms: float
    ack_p50_ms: float
    ack_p99_ms: float
    achieved_rate: float
    lost: int
    max_events_per_s: float


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


@contextmanager
def broker_settings() -> Iterator[KafkaSettings]:
    """A running broker: ``$KAFKA_BOOTSTRAP_SERVERS`` or an embedded one on a free port."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        settings = KafkaSettings.from_env()
        wait_until_ready(settings)
        yield settings
        return
    with EmbeddedBroker(free_port()) as broker:
        yield broker.settings


def _event(i: int) -> Event:
    return new_event(
        PipelineRunSubmitted(pipeline="model-selection", run_id=f"bench-{i}", model_version="v1"),
        source="/kfchain/bench",
        subject="bench",
    )


class _Receiver:
    """Polls a consumer-group member in a thread and notes when each event id arrives."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.arrived: dict[str, float] = {}
        self._consumer = Consumer(settings, f"bench-{uuid.uuid4().hex[:8]}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            received = self._consumer.poll(0.05)
            if received is not None and received.event is not None:
                self.arrived.setdefault(received.event.id, time.perf_counter())

    def wait_for(self, ids: list[str], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(i not in self.arrived for i in ids):
            time.sleep(0.01)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


class _Path:
    """One producer mode on its own fresh topic, with its own consumer: publish, consume, time."""

    def __init__(self, base: KafkaSettings, idempotence: bool, progress: Progress) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.settings = dataclasses.replace(
            base, topic=f"kfchain.bench.{suffix}", dlq_topic=f"kfchain.bench.{suffix}.dlq"
        )
        ensure_topics(self.settings)
        self.idempotence = idempotence
        self.mode = "idempotent" if idempotence else "non-idempotent"
        self.progress = progress
        self.receiver = _Receiver(self.settings)
        self.publisher = Publisher(self.settings, idempotence=idempotence)
        self.latencies: list[float] = []
        self.acks: list[float] = []
        self.sent = 0
        self.busy_s = 0.0
        self._serial = 0

    def _next(self) -> Event:
        self._serial += 1
        return _event(self._serial)

    def join(self) -> None:
        """Publish until the consumer sees a record (the group join takes ~3 s on Tansu, DESIGN.md)."""
        self.progress(f"events: {self.mode} producer, waiting for the consumer group to join")
        deadline = time.monotonic() + 30
        while not self.receiver.arrived and time.monotonic() < deadline:
            self.publisher.publish(self._next())
            time.sleep(0.1)
        if not self.receiver.arrived:
            raise RuntimeError("the consumer received nothing within 30 s; is the broker healthy?")

    def steady(self, rate: float, seconds: float) -> None:
        """Open loop: event i is due at start + i/rate; latency counts from when it was due."""
        count = int(rate * seconds)
        events = [self._next() for _ in range(count)]
        due_at: dict[str, float] = {}
        start = time.perf_counter()
        for i, event in enumerate(events):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            due_at[event.id] = due
            sent = time.perf_counter()
            self.publisher.publish(event)
            self.acks.append(time.perf_counter() - sent)
        self.busy_s += time.perf_counter() - start
        self.sent += count
        self.receiver.wait_for(list(due_at), 15)
        self.latencies += [
            self.receiver.arrived[i] - t for i, t in due_at.items() if i in self.receiver.arrived
        ]

    def reset(self) -> None:
        """Forget what was measured so far (after a warm-up)."""
        self.latencies, self.acks, self.sent, self.busy_s = [], [], 0, 0.0

    def burst(self, seconds: float) -> float:
        """Publish back to back for ``seconds``; events/s until the consumer has them all."""
        self.progress(f"events: {self.mode} producer, back to back for {seconds:g} s")
        ids: list[str] = []
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            event = self._next()
            self.publisher.publish(event)
            ids.append(event.id)
        self.receiver.wait_for(ids, 15)
        arrived = [self.receiver.arrived[i] for i in ids if i in self.receiver.arrived]
        return len(arrived) / ((max(arrived) if arrived else time.perf_counter()) - start)

    def result(self, max_rate: float) -> PathResult:
        if not self.latencies:
            raise RuntimeError(f"no event of the steady phase reached the consumer ({self.mode} producer)")
        return PathResult(
            idempotence=self.idempotence,
            p50_ms=percentile(self.latencies, 50) * 1000,
            p99_ms=percentile(self.latencies, 99) * 1000,
            max_ms=max(self.latencies) * 1000,
            ack_p50_ms=percentile(self.acks, 50) * 1000,
            ack_p99_ms=percentile(self.acks, 99) * 1000,
            achieved_rate=self.sent / self.busy_s,
            lost=self.sent - len(self.latencies),
            max_events_per_s=max_rate,
        )

    def close(self) -> None:
        self.publisher.close()
        self.receiver.close()


def measure_paths(
    base: KafkaSettings,
    *,
    rate: float = RATE,
    steady_s: float = STEADY_S,
    burst_s: float = BURST_S,
    rounds: int = ROUNDS,
    progress: Progress = print,
) -> tuple[PathResult, PathResult]:
    """(idempotent, non-idempotent): their steady phases alternate in ``rounds`` slices, so a
    machine that gets busier during the run weighs on both modes alike."""
    paths = [
        _Path(base, idempotence=False, progress=progress),
        _Path(base, idempotence=True, progress=progress),
    ]
    try:
        for path in paths:
            path.join()
        for path in paths:  # the first second or two after a join runs 100-300 ms slow: not steady state
            progress(f"events: {path.mode} producer, warming up for {WARMUP_S:g} s at {rate:g}/s")
            path.steady(rate, WARMUP_S)
            path.reset()
        for n in range(rounds):
            for path in paths:
                progress(f"events: round {n + 1}/{rounds}, {path.mode} producer at {rate:g}/s")
                path.steady(rate, steady_s / rounds)
        off, on = (path.result(path.burst(burst_s)) for path in paths)
    finally:
        for path in paths:
            path.close()
    return on, off


def rows(on: PathResult, off: PathResult) -> list[BenchRow]:
    """Bench rows: each quantity of the idempotent (default) producer against the non-idempotent one."""
    at = f"@{RATE:g}/s"
    result = []
    for label, attr, target in (
        (f"publish->consume p50 {at}", "p50_ms", P50_TARGET_MS),
        (f"publish->consume p99 {at}", "p99_ms", P99_TARGET_MS),
    ):
        for res, other, mode in ((on, off, "idempotent"), (off, None, "non-idempotent")):
            value = getattr(res, attr)
            result.append(
                BenchRow(
                    area="events",
                    name=f"{label} ({mode})",
                    value=round(value, 2),
                    unit="ms",
                    baseline_name="non-idempotent producer" if other else "",
                    baseline=round(getattr(other, attr), 2) if other else None,
                    target=f"<= {target:g} ms",
                    met=value <= target,
                )
            )
    for res, other, mode in ((on, off, "idempotent"), (off, None, "non-idempotent")):
        result.append(
            BenchRow(
                area="events",
                name=f"publish ack p99 {at} ({mode})",
                value=round(res.ack_p99_ms, 2),
                unit="ms",
                baseline_name="non-idempotent producer" if other else "",
                baseline=round(other.ack_p99_ms, 2) if other else None,
            )
        )
        result.append(
            BenchRow(
                area="events",
                name=f"publish->consume max rate, sync publisher ({mode})",
                value=round(res.max_events_per_s, 1),
                unit="events/s",
                baseline_name="non-idempotent producer" if other else "",
                baseline=round(other.max_events_per_s, 1) if other else None,
            )
        )
        result.append(
            BenchRow(
                area="events",
                name=f"achieved rate of the {RATE:g}/s schedule ({mode})",
                value=round(res.achieved_rate, 1),
                unit="events/s",
                target=f">= {RATE * 0.98:g}/s, nothing lost",
                met=res.achieved_rate >= RATE * 0.98 and res.lost == 0,
            )
        )
    return result


def measure(progress: Progress = print) -> tuple[PathResult, PathResult]:
    """Both producer modes on one broker: (idempotent, non-idempotent)."""
    with broker_settings() as settings:
        progress(f"events: broker at {settings.bootstrap_servers}")
        return measure_paths(settings, progress=progress)


def run(progress: Progress = print) -> list[BenchRow]:
    """Bench rows comparing the default (idempotent) producer to the non-idempotent baseline."""
    return rows(*measure(progress))


def summary(on: PathResult, off: PathResult) -> str:
    """One line: both modes' p50/p99 at 200/s and max rate, and whether the targets were met."""

    def part(res: PathResult) -> str:
        lost = f", {res.lost} lost" if res.lost else ""
        return (
            f"p50 {res.p50_ms:.1f} ms, p99 {res.p99_ms:.1f} ms (max {res.max_ms:.0f} ms) at {res.achieved_rate:.0f}/s"
            f"{lost}, max {res.max_events_per_s:.0f} events/s"
        )

    def verdict(res: PathResult) -> str:
        return "met" if res.p50_ms <= P50_TARGET_MS and res.p99_ms <= P99_TARGET_MS else "MISSED"

    load = os.getloadavg()[0]
    return (
        f"events publish->consume: idempotent {part(on)} [target {verdict(on)}]; "
        f"non-idempotent {part(off)} [target {verdict(off)}]; "
        f"p99 ratio idempotent/non-idempotent {on.p99_ms / off.p99_ms:.1f}x "
        f"(load average {load:.1f} on {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    import sys

    print(summary(*measure(lambda line: print(line, file=sys.stderr, flush=True))))
