"""Dispatcher hop latency: publish -> the subscriber receiving the HTTP request (target p99 < 50 ms).

``python -m load.bench.dispatcher [--events N] [--rate R]``. Runs on the embedded broker (or
``$KAFKA_BOOTSTRAP_SERVERS``) with fresh topics, each part in its own process, as a user runs them:

* the dispatcher is ``python -m knative.local dispatch`` (what the supervisor starts), reading a
  Broker + one unordered Trigger (with a KafkaSink dead-letter sink) written to a temporary folder;
* the subscriber is a loopback HTTP server (``knative.local.stub``) in another process;
* the publisher (a long-lived ``events.kafka.Publisher``) is this process.

The baseline, measured in the same run on the same broker, is publish -> a plain consumer's poll in
another process (what the broker alone costs), so the ratio is what the dispatcher adds.

Each event is sent at its scheduled time (open loop) and its latency counts from that time, so a
publisher held up by a slow acknowledgement shows in the numbers. Every phase starts with a warm-up
at the same rate that is not counted (the first second or two after a consumer group joins runs
slow on Tansu, and a fresh producer's first publish waits for its producer id); the join time and
the idempotent producer's first publish are reported as rows of their own. Timestamps come from
``CLOCK_MONOTONIC``, which all processes on the machine share.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from events.broker import EmbeddedBroker, free_port
from events.catalogue import Candidate, PipelineRunSucceeded
from events.event import Event, new_event
from events.kafka import Consumer, Publisher, ensure_topics
from events.settings import KafkaSettings
from knative.local.settings import REPO_ROOT
from knative.local.templates import broker_manifests, trigger_manifest
from load.bench import BenchRow, Progress
from services.predictor.launcher import wait_until_up

TARGET_P99_MS = 50.0
WARMUP_S = 2.0


def now() -> float:
    """Seconds on ``CLOCK_MONOTONIC``: comparable between processes of one machine."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


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


def _event(i: int) -> Event:
    payload = PipelineRunSucceeded(
        pipeline="training", run_id=f"bench-{i}", model_name="iris", model_version="v1",
        candidates=(Candidate(k=3, accuracy=0.9, uri="file:///m"),),
    )  # fmt: skip
    return new_event(payload, source="/kfchain/bench")


def _child_env(settings: KafkaSettings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        **extra,
    }


class Receiver:
    """A child process (``--serve subscriber|consumer``) that prints ``<event id> <monotonic time>`` per
    event it gets; this side collects them by id."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.arrived: dict[str, float] = {}
        self.ready_line = ""
        self._ready = threading.Event()
        self._process = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            if line.startswith("ready"):
                self.ready_line = line.strip()
                self._ready.set()
                continue
            event_id, _, at = line.strip().rpartition(" ")
            self.arrived.setdefault(event_id, float(at))

    def wait_ready(self, timeout_s: float) -> str:
        if not self._ready.wait(timeout_s):
            raise RuntimeError(f"{self._process.args} was not ready within {timeout_s:g} s")
        return self.ready_line

    def wait_for(self, ids: list[str], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(i not in self.arrived for i in ids):
            time.sleep(0.01)

    def close(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


@contextlib.contextmanager
def _dispatcher_process(settings: KafkaSettings, subscriber_url: str) -> Iterator[float]:
    """``python -m knative.local dispatch`` on one Trigger to ``subscriber_url``; yields its join time (s)."""
    with tempfile.TemporaryDirectory(prefix="kfchain-bench-") as folder:
        root = Path(folder)
        (root / "manifests").mkdir()
        (root / "manifests" / "bench.yaml").write_text(
            broker_manifests(
                "bench", settings.topic, dead_letter_sink="bench-dlq", dead_letter_topic=settings.dlq_topic
            )
            + trigger_manifest("bench-hop", "bench", subscriber_url, dead_letter_sink="bench-dlq")
        )
        port = free_port()
        env = _child_env(
            settings,
            KFCHAIN_HOME=str(root / "home"),
            KFCHAIN_TRIGGER_GROUP_PREFIX=f"bench.{uuid.uuid4().hex[:8]}.",
        )
        argv = [sys.executable, "-m", "knative.local", "dispatch", "--manifests", str(root / "manifests"),
                "--metrics-port", str(port)]  # fmt: skip
        log = root / "dispatcher.log"
        with log.open("wb") as out:
            started = time.monotonic()
            process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
            try:
                ready_url = f"http://127.0.0.1:{port}/health/readiness"
                wait_until_up(ready_url, 60, process, log, ready_status=200, poll_s=0.05)
                yield time.monotonic() - started
            finally:
                process.terminate()
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


class Phase:
    """Publishes paced events open loop with one publisher and reads their arrival from a Receiver."""

    def __init__(self, settings: KafkaSettings, receiver: Receiver, *, idempotence: bool) -> None:
        self.publisher = Publisher(settings, idempotence=idempotence)
        self.receiver = receiver
        self._serial = 0

    def first_publish_ms(self) -> float:
        started = now()
        self.publish_one()
        return (now() - started) * 1000

    def publish_one(self) -> str:
        self._serial += 1
        event = _event(self._serial)
        self.publisher.publish(event)
        return event.id

    def paced(self, count: int, rate: float) -> list[float]:
        """Latencies (ms) of ``count`` events sent at ``rate``/s, each from its scheduled time."""
        due_at: dict[str, float] = {}
        start = now()
        for i in range(count):
            due = start + i / rate
            delay = due - now()
            if delay > 0:
                time.sleep(delay)
            self._serial += 1
            event = _event(self._serial)
            due_at[event.id] = due
            self.publisher.publish(event)
        self.receiver.wait_for(list(due_at), 30)
        arrived = self.receiver.arrived
        return [(arrived[i] - due) * 1000 for i, due in due_at.items() if i in arrived]

    def measure(self, count: int, rate: float) -> list[float]:
        self.paced(int(WARMUP_S * rate), rate)
        return self.paced(count, rate)

    def close(self) -> None:
        self.publisher.close()


def _receiver_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "load.bench.dispatcher", "--serve", *args]


def measure_baseline(base: KafkaSettings, count: int, rate: float) -> list[float]:
    """publish -> a plain consumer's poll in another process, in ms."""
    settings = _fresh_topics(base)
    receiver = Receiver(_receiver_argv("consumer", "--topic", settings.topic), _child_env(settings))
    phase = Phase(settings, receiver, idempotence=False)
    try:
        receiver.wait_ready(60)
        while not receiver.arrived:  # the consumer is assigned; wait until it fetches
            phase.publish_one()
            time.sleep(0.05)
        return phase.measure(count, rate)
    finally:
        phase.close()
        receiver.close()


@dataclasses.dataclass
class HopResult:
    hops: list[float]
    idempotent_hops: list[float]
    idempotent_first_publish_ms: float
    join_s: float


def measure_hops(base: KafkaSettings, count: int, rate: float) -> HopResult:
    """publish -> subscriber received the POST through the dispatcher process, in ms (plain and
    idempotent producer), the idempotent producer's first publish, and the group join time."""
    settings = _fresh_topics(base)
    subscriber = Receiver(_receiver_argv("subscriber"), _child_env(settings))
    try:
        url = subscriber.wait_ready(30).split()[1]
        with _dispatcher_process(settings, url) as join_s:
            plain = Phase(settings, subscriber, idempotence=False)
            try:
                hops = plain.measure(count, rate)
            finally:
                plain.close()
            idempotent = Phase(settings, subscriber, idempotence=True)
            try:
                first_ms = idempotent.first_publish_ms()
                idem = idempotent.measure(count, rate)
            finally:
                idempotent.close()
    finally:
        subscriber.close()
    return HopResult(hops, idem, first_ms, join_s)


def run(progress: Progress, count: int = 1000, rate: float = 200.0) -> list[BenchRow]:
    """Hop p50/p99 against the broker-only baseline, the idempotent-producer hop, and the group join time."""
    with _broker() as base:
        progress(f"dispatcher: baseline publish -> consumer process poll ({count} events at {rate:g}/s)")
        baseline = measure_baseline(base, count, rate)
        progress(
            f"dispatcher: hop publish -> dispatcher process -> subscriber process ({count} at {rate:g}/s)"
        )
        result = measure_hops(base, count, rate)
    hops, idem = result.hops, result.idempotent_hops
    if len(hops) < count:
        progress(f"dispatcher: only {len(hops)} of {count} events reached the subscriber")
    p99 = _percentile(hops, 99)
    return [
        BenchRow("events", "dispatcher hop p50", statistics.median(hops), "ms", "publish->poll p50", statistics.median(baseline)),
        BenchRow("events", "dispatcher hop p99", p99, "ms", "publish->poll p99", _percentile(baseline, 99),
                 target=f"< {TARGET_P99_MS:g} ms", met=p99 < TARGET_P99_MS),
        BenchRow("events", "dispatcher hop p50 (idempotent producer)", statistics.median(idem), "ms",
                 "non-idempotent", statistics.median(hops)),
        BenchRow("events", "dispatcher hop p99 (idempotent producer)", _percentile(idem, 99), "ms",
                 "non-idempotent", p99),
        BenchRow("events", "idempotent producer: first publish", result.idempotent_first_publish_ms, "ms"),
        BenchRow("events", "consumer group join (dispatcher process)", result.join_s, "s"),
        BenchRow("events", "dispatcher hops delivered", float(len(hops) + len(idem)), "events",
                 target=f"= {2 * count}", met=len(hops) + len(idem) == 2 * count),
    ]  # fmt: skip


# -- the child processes ---------------------------------------------------------------------------
def _say(line: str, lock: threading.Lock = threading.Lock()) -> None:
    with lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def serve_subscriber() -> None:
    """A 200-answering HTTP subscriber on a free loopback port; prints ``ready <url>``, then arrivals."""
    from knative.local.stub import StubRequest, StubSubscriber

    def respond(request: StubRequest) -> int:
        if request.event is not None:
            _say(f"{request.event.id} {now()}")
        return 200

    with StubSubscriber(respond) as stub:
        _say(f"ready {stub.url}")
        threading.Event().wait()


def serve_consumer(topic: str) -> None:
    """A plain consumer-group member on ``topic``; prints ``ready`` once assigned, then arrivals."""
    settings = dataclasses.replace(KafkaSettings.from_env(), topic=topic)
    consumer = Consumer(settings, f"bench.baseline.{uuid.uuid4().hex[:6]}")
    while not consumer.lag():
        consumer.poll(0.05)
    _say("ready")
    while True:
        received = consumer.poll(0.05)
        if received is not None and received.event is not None:
            _say(f"{received.event.id} {now()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m load.bench.dispatcher", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--events", type=int, default=1000, help="measured events per phase")
    parser.add_argument("--rate", type=float, default=200.0, help="events per second")
    parser.add_argument("--serve", choices=["subscriber", "consumer"], help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve == "subscriber":
        serve_subscriber()
        return 0
    if args.serve == "consumer":
        serve_consumer(args.topic)
        return 0
    rows = run(lambda message: print(message, flush=True), args.events, args.rate)
    print(f"\n{'name':45} {'value':>10}  {'baseline':>10}  {'ratio':>6}  target  (cores: {os.cpu_count()})")
    for row in rows:
        base = f"{row.baseline:10.2f}" if row.baseline is not None else " " * 10
        ratio = f"{row.ratio:6.2f}" if row.ratio is not None else " " * 6
        met = "" if row.met is None else (" ok" if row.met else " MISSED")
        print(f"{row.name:45} {row.value:10.2f}  {base}  {ratio}  {row.target}{met}  {row.unit}")
    return 0 if all(r.met is not False for r in rows) else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        raise SystemExit(main())
