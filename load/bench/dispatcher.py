"""Dispatcher hop latency: publish -> the subscriber receiving the HTTP request (target p99 < 50 ms).

``python -m load.bench.dispatcher [--events N] [--rate R]``. Runs on the embedded broker (or
``$KAFKA_BOOTSTRAP_SERVERS``) with fresh topics: one Trigger-like route to a loopback HTTP subscriber.
The baseline, measured in the same run on the same broker, is publish -> a plain consumer's poll
(what the broker alone costs), so the ratio is what the dispatcher adds. Also reported: the consumer
group join time, and the hop with the idempotent producer services use by default (DESIGN.md: Tansu
holds idempotent produce acknowledgements, p99 ~490 ms).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import statistics
import time
import uuid
from collections.abc import Iterator

from events.broker import EmbeddedBroker, free_port
from events.catalogue import Candidate, PipelineRunSucceeded
from events.event import new_event
from events.kafka import Consumer, Publisher, ensure_topics
from events.settings import KafkaSettings
from knative.local.dispatcher import Dispatcher
from knative.local.routes import DeadLetter, Route
from knative.local.stub import StubSubscriber
from load.bench import BenchRow, Progress

TARGET_P99_MS = 50.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


@contextlib.contextmanager
def _broker() -> Iterator[KafkaSettings]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield KafkaSettings(bootstrap_servers=external)
        return
    with EmbeddedBroker(free_port()) as broker:
        yield broker.settings


def _fresh_topics(base: KafkaSettings) -> KafkaSettings:
    suffix = uuid.uuid4().hex[:8]
    settings = dataclasses.replace(base, topic=f"bench.hop.{suffix}", dlq_topic=f"bench.hop.{suffix}.dlq")
    ensure_topics(settings)
    return settings


def _event(i: int) -> object:
    payload = PipelineRunSucceeded(
        pipeline="training", run_id=f"bench-{i}", model_name="iris", model_version="v1",
        candidates=(Candidate(k=3, accuracy=0.9, uri="file:///m"),),
    )  # fmt: skip
    return new_event(payload, source="/kfchain/bench")


def _publish_paced(publisher: Publisher, count: int, rate: float, on_sent: dict[str, float]) -> None:
    interval = 1.0 / rate
    next_at = time.perf_counter()
    for i in range(count):
        event = _event(i)
        now = time.perf_counter()
        if now < next_at:
            time.sleep(next_at - now)
        on_sent[event.id] = time.perf_counter()  # type: ignore[attr-defined]
        publisher.publish(event)  # type: ignore[arg-type]
        next_at += interval


def measure_baseline(base: KafkaSettings, count: int, rate: float) -> list[float]:
    """publish -> plain consumer poll, in ms."""
    settings = _fresh_topics(base)
    consumer = Consumer(settings, f"bench.baseline.{uuid.uuid4().hex[:6]}")
    deadline = time.monotonic() + 30
    while not consumer.lag() and time.monotonic() < deadline:
        consumer.poll(0.05)
    sent: dict[str, float] = {}
    latencies: list[float] = []
    import threading

    publisher = Publisher(settings, idempotence=False)
    thread = threading.Thread(target=_publish_paced, args=(publisher, count, rate, sent))
    thread.start()
    end = time.monotonic() + count / rate + 15
    while len(latencies) < count and time.monotonic() < end:
        received = consumer.poll(0.05)
        if received is not None and received.event is not None and received.event.id in sent:
            latencies.append((time.perf_counter() - sent[received.event.id]) * 1000)
    thread.join()
    publisher.close()
    consumer.close()
    return latencies


def measure_hops(
    base: KafkaSettings, count: int, rate: float, *, idempotence: bool
) -> tuple[list[float], float]:
    """publish -> subscriber received the POST, in ms; and the group join time in s."""
    settings = _fresh_topics(base)
    with StubSubscriber() as subscriber:
        route = Route(
            "bench", (settings.topic,), f"bench.hop.{uuid.uuid4().hex[:6]}", subscriber.url,
            reply_topic=settings.topic, dead_letter=DeadLetter(topic=settings.dlq_topic), timeout_s=5.0,
        )  # fmt: skip
        started = time.monotonic()
        dispatcher = Dispatcher([route], settings).start()
        try:
            if not dispatcher.wait_ready(60):
                raise RuntimeError("the dispatcher's consumer group did not join within 60 s")
            join_s = time.monotonic() - started
            sent: dict[str, float] = {}
            with Publisher(settings, idempotence=idempotence) as publisher:
                _publish_paced(publisher, count, rate, sent)
            requests = subscriber.wait_for(count, timeout_s=30)
        finally:
            dispatcher.stop()
    latencies = [
        (r.arrived - sent[r.event.id]) * 1000 for r in requests if r.event is not None and r.event.id in sent
    ]
    return latencies, join_s


def run(progress: Progress, count: int = 500, rate: float = 200.0) -> list[BenchRow]:
    """Hop p50/p99 against the broker-only baseline, the idempotent-producer hop, and the group join time."""
    with _broker() as base:
        progress(f"dispatcher: baseline publish -> consumer poll ({count} events at {rate:g}/s)")
        baseline = measure_baseline(base, count, rate)
        progress(f"dispatcher: hop publish -> subscriber ({count} events at {rate:g}/s)")
        hops, join_s = measure_hops(base, count, rate, idempotence=False)
        progress("dispatcher: hop with the idempotent producer")
        idem, _ = measure_hops(base, max(50, count // 5), min(rate, 50.0), idempotence=True)
    if len(hops) < count:
        progress(f"dispatcher: only {len(hops)} of {count} events reached the subscriber")
    p99 = _percentile(hops, 99)
    return [
        BenchRow("events", "dispatcher hop p50", statistics.median(hops), "ms", "publish->poll p50", statistics.median(baseline)),
        BenchRow("events", "dispatcher hop p99", p99, "ms", "publish->poll p99", _percentile(baseline, 99),
                 target=f"< {TARGET_P99_MS:g} ms", met=p99 < TARGET_P99_MS),
        BenchRow("events", "dispatcher hop p99 (idempotent producer)", _percentile(idem, 99), "ms"),
        BenchRow("events", "consumer group join (tuned)", join_s, "s"),
        BenchRow("events", "dispatcher hops delivered", float(len(hops)), "events", target=f"= {count}", met=len(hops) == count),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m load.bench.dispatcher", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--rate", type=float, default=200.0, help="events per second")
    args = parser.parse_args(argv)
    rows = run(lambda message: print(message, flush=True), args.events, args.rate)
    print(f"\n{'name':45} {'value':>10}  {'baseline':>10}  {'ratio':>6}  target  (cores: {os.cpu_count()})")
    for row in rows:
        base = f"{row.baseline:10.2f}" if row.baseline is not None else " " * 10
        ratio = f"{row.ratio:6.2f}" if row.ratio is not None else " " * 6
        met = "" if row.met is None else (" ok" if row.met else " MISSED")
        print(f"{row.name:45} {row.value:10.2f}  {base}  {ratio}  {row.target}{met}  {row.unit}")
    return 0 if all(r.met is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
