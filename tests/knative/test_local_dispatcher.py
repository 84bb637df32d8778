"""The local dispatcher on the real embedded broker, against real HTTP subscribers on loopback.

Each test builds Routes by hand (as Triggers would be) with small backoff delays, so the delivery
contract is checked in seconds: binary mode, replies, retries, dead letters, ordering, commits.
"""

from __future__ import annotations

import base64
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator

import httpx

from events.broker import free_port
from events.catalogue import Candidate, PipelineRunSubmitted, PipelineRunSucceeded
from events.codec import KafkaRecord
from events.event import Event, caused_by, new_event
from events.kafka import Publisher, read_topic
from events.settings import KafkaSettings
from knative.local.dispatcher import REASON_HEADER, Dispatcher
from knative.local.filters import attributes_filter
from knative.local.routes import DeadLetter, Route
from knative.local.server import DispatcherServer
from knative.local.stub import StubRequest, StubSubscriber, reply_with

TRAINING_FILTER = attributes_filter({"type": "io.kfchain.pipeline.run.succeeded", "pipeline": "training"})


def training_done(chain: str | None = None, run_id: str = "run-1") -> Event:
    payload = PipelineRunSucceeded(
        pipeline="training", run_id=run_id, model_name="iris", model_version="v1",
        candidates=(Candidate(k=3, accuracy=0.95, uri="file:///m/3"),),
    )  # fmt: skip
    return new_event(payload, source="/kfchain/pipelines/training", chainid=chain)


def route(name: str, settings: KafkaSettings, url: str, **kw: object) -> Route:
    defaults: dict = {
        "topics": (settings.topic,),
        "group_id": f"test.{name}.{uuid.uuid4().hex[:6]}",
        "subscriber_url": url,
        "reply_topic": settings.topic,
        "dead_letter": DeadLetter(topic=settings.dlq_topic),
        "backoff_delay_s": 0.05,
        "timeout_s": 2.0,
    }
    return Route(name=name, **{**defaults, **kw})  # type: ignore[arg-type]


@contextlib.contextmanager
def dispatching(settings: KafkaSettings, *routes: Route) -> Iterator[Dispatcher]:
    dispatcher = Dispatcher(routes, settings).start()
    try:
        assert dispatcher.wait_ready(20), f"consumer groups did not join: {dispatcher.not_ready()}"
        yield dispatcher
    finally:
        dispatcher.stop()


def publish(settings: KafkaSettings, *events: Event) -> None:
    with Publisher(settings, idempotence=False) as publisher:
        for event in events:
            publisher.publish(event)


def dead_letters(settings: KafkaSettings, count: int, timeout_s: float = 10.0) -> list:
    deadline = time.monotonic() + timeout_s
    found: list = []
    while time.monotonic() < deadline:
        found = list(read_topic(settings, settings.dlq_topic))
        if len(found) >= count:
            return found
        time.sleep(0.1)
    return found


def test_matching_event_is_delivered_in_binary_mode_and_its_reply_reaches_the_broker(
    kafka_settings: KafkaSettings,
) -> None:
    def selector(request: StubRequest) -> object:
        assert request.event is not None
        submitted = PipelineRunSubmitted(pipeline="model-selection", run_id="sel-1", model_version="v1")
        return reply_with(caused_by(request.event, submitted, source="/kfchain/services/selector"))

    with StubSubscriber(selector) as sel, StubSubscriber() as recorder:
        routes = (
            route("on-training-done", kafka_settings, sel.url, filter=TRAINING_FILTER, ordered=True),
            route("record-all", kafka_settings, recorder.url),
        )
        with dispatching(kafka_settings, *routes) as dispatcher:
            event = training_done()
            publish(kafka_settings, event)
            (request,) = sel.wait_for(1)
            recorded = recorder.wait_for(2)
            time.sleep(0.3)  # nothing else may arrive
            assert len(sel.requests) == 1, "the reply must not match on-training-done's filter"
        assert (
            request.headers["ce-id"] == event.id and request.headers["ce-type"] == event.type
        )  # binary mode
        assert request.headers["content-type"] == "application/json"
        types = sorted(r.event.type for r in recorded if r.event)
        assert types == ["io.kfchain.pipeline.run.submitted", "io.kfchain.pipeline.run.succeeded"]
        reply = next(r.event for r in recorded if r.event and r.event.type.endswith("submitted"))
        assert reply.causationid == event.id and reply.chainid == event.chainid
        assert dispatcher.metrics.value("kfchain_dispatch_delivered_total", trigger="on-training-done") == 1
        assert dispatcher.metrics.value("kfchain_dispatch_replies_total", trigger="on-training-done") == 1
        assert dispatcher.metrics.value("kfchain_dispatch_filtered_total", trigger="on-training-done") == 1


def test_subscriber_down_at_first_is_retried_and_then_receives_the_event(
    kafka_settings: KafkaSettings,
) -> None:
    port = free_port()
    down_at_first = route(
        "on-training-done",
        kafka_settings,
        f"http://127.0.0.1:{port}/",
        retry=8,
        backoff_policy="linear",
        backoff_delay_s=0.1,
    )
    with dispatching(kafka_settings, down_at_first) as dispatcher:
        event = training_done()
        publish(kafka_settings, event)
        time.sleep(0.6)  # a few refused connections
        with StubSubscriber(port=port) as late:
            (request,) = late.wait_for(1, timeout_s=10)
        assert request.event is not None and request.event.id == event.id
        assert dispatcher.metrics.value("kfchain_dispatch_retried_total", trigger="on-training-done") >= 1
        assert dispatcher.metrics.value("kfchain_dispatch_delivered_total", trigger="on-training-done") == 1
    assert dead_letters(kafka_settings, 0, timeout_s=0) == []


def test_400_goes_straight_to_the_dead_letter_topic_and_is_recorded(kafka_settings: KafkaSettings) -> None:
    body = b'{"error": "data.model_version: is required"}'
    with (
        StubSubscriber(lambda _r: (400, {"content-type": "application/json"}, body)) as refusing,
        StubSubscriber() as recorder,
    ):
        routes = (
            route("on-training-done", kafka_settings, refusing.url, retry=5),
            # The KafkaSource of knative/eventing/dead-letter-source.yaml: the DLQ topic -> recorder.
            route("dead-letters", kafka_settings, recorder.url, topics=(kafka_settings.dlq_topic,), reply_topic=None,
                  dead_letter=None, kind="KafkaSource", ordered=True),
        )  # fmt: skip
        with dispatching(kafka_settings, *routes) as dispatcher:
            event = training_done()
            publish(kafka_settings, event)
            (recorded,) = recorder.wait_for(1)
            time.sleep(0.3)
        assert len(refusing.requests) == 1, "a 400 is not retried"
        dead = recorded.event
        assert dead is not None and dead.id == event.id and dead.type == event.type
        assert dead.extensions["knativeerrorcode"] == "400"
        assert dead.extensions["knativeerrordest"] == refusing.url
        assert base64.b64decode(dead.extensions["knativeerrordata"]) == body
        assert (
            dispatcher.metrics.value("kfchain_dispatch_dead_lettered_total", trigger="on-training-done") == 1
        )
        assert dispatcher.metrics.value("kfchain_dispatch_retried_total", trigger="on-training-done") == 0


def test_500_forever_is_dead_lettered_after_the_retries_with_exponential_backoff(
    kafka_settings: KafkaSettings,
) -> None:
    with StubSubscriber(lambda _r: (500, {}, b"boom " * 400)) as broken:
        failing = route(
            "on-training-done",
            kafka_settings,
            broken.url,
            retry=3,
            backoff_policy="exponential",
            backoff_delay_s=0.05,
        )
        with dispatching(kafka_settings, failing) as dispatcher:
            publish(kafka_settings, training_done())
            (dead,) = dead_letters(kafka_settings, 1)
            assert dispatcher.metrics.value("kfchain_dispatch_retried_total", trigger="on-training-done") == 3
    arrivals = [r.arrived for r in broken.requests]
    assert len(arrivals) == 4, "first attempt + retry: 3"
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    for gap, expected in zip(gaps, (0.1, 0.2, 0.4), strict=True):  # delay * 2^n
        assert expected <= gap < expected + 0.3
    assert dead.event.extensions["knativeerrorcode"] == "500"
    assert (
        len(base64.b64decode(dead.event.extensions["knativeerrordata"])) == 1024
    )  # truncated as Knative does


def test_404_is_retried_but_409_and_429_too_while_403_is_not(kafka_settings: KafkaSettings) -> None:
    statuses = {"404": 404, "403": 403}
    with StubSubscriber(lambda r: statuses[r.path.strip("/")]) as stub:
        routes = [route(f"r{code}", kafka_settings, stub.url + code, retry=2) for code in statuses]
        with dispatching(kafka_settings, *routes):
            publish(kafka_settings, training_done())
            dead_letters(kafka_settings, 2)
    by_path: dict[str, int] = {}
    for request in stub.requests:
        by_path[request.path] = by_path.get(request.path, 0) + 1
    assert by_path == {"/404": 3, "/403": 1}


def test_a_record_that_is_not_a_cloudevent_is_dead_lettered_raw_with_the_reason(
    kafka_settings: KafkaSettings,
) -> None:
    with StubSubscriber() as stub:
        with dispatching(kafka_settings, route("record-all", kafka_settings, stub.url)) as dispatcher:
            with Publisher(kafka_settings, idempotence=False) as publisher:
                publisher.publish_record(
                    KafkaRecord(headers=(("x", b"y"),), key=b"k", value=b"not an event"), kafka_settings.topic
                )
            (dead,) = dead_letters(kafka_settings, 1)
        assert stub.requests == []
        assert dead.record.value == b"not an event" and dead.record.key == b"k"
        assert b"ce_specversion" in (dead.record.header(REASON_HEADER) or b"")
        assert dead.record.header("x") == b"y"
        assert dispatcher.metrics.value("kfchain_dispatch_invalid_records_total", trigger="record-all") == 1


def test_invalid_reply_is_counted_and_not_published(kafka_settings: KafkaSettings) -> None:
    bad_reply = (
        200,
        {"ce-specversion": "1.0", "ce-id": "x", "content-type": "application/json"},
        b"{}",
    )  # no source/type
    with StubSubscriber(lambda _r: bad_reply) as stub:
        target = route("on-training-done", kafka_settings, stub.url)
        with dispatching(kafka_settings, target) as dispatcher:
            publish(kafka_settings, training_done())
            stub.wait_for(1)
            time.sleep(0.5)
            assert (
                dispatcher.metrics.value("kfchain_dispatch_invalid_replies_total", trigger="on-training-done")
                == 1
            )
            assert (
                dispatcher.metrics.value("kfchain_dispatch_delivered_total", trigger="on-training-done") == 1
            )
    assert len(list(read_topic(kafka_settings))) == 1, "only the original event is on the topic"


def test_ordered_trigger_delivers_one_partition_one_at_a_time_in_order(kafka_settings: KafkaSettings) -> None:
    concurrent = {"now": 0, "max": 0}
    lock = threading.Lock()

    def slow(_request: StubRequest) -> int:
        with lock:
            concurrent["now"] += 1
            concurrent["max"] = max(concurrent["max"], concurrent["now"])
        time.sleep(0.02)
        with lock:
            concurrent["now"] -= 1
        return 200

    chain = str(uuid.uuid4())
    events = [training_done(chain=chain, run_id=f"run-{i}") for i in range(15)]
    with StubSubscriber(slow) as stub:
        ordered = route("ordered", kafka_settings, stub.url, ordered=True)
        with dispatching(kafka_settings, ordered):
            publish(kafka_settings, *events)
            stub.wait_for(len(events))
    assert [e.id for e in stub.events()] == [e.id for e in events]
    assert concurrent["max"] == 1


def test_unordered_trigger_never_commits_past_an_undelivered_event(kafka_settings: KafkaSettings) -> None:
    chain = str(uuid.uuid4())
    first, second = training_done(chain=chain, run_id="slow"), training_done(chain=chain, run_id="fast")
    release = threading.Event()

    def first_hangs(request: StubRequest) -> int:
        if request.event and request.event.id == first.id:
            release.wait(3)
            return 500
        return 200

    group = f"test.unordered.{uuid.uuid4().hex[:6]}"
    unordered = route(
        "record-all", kafka_settings, "", group_id=group, retry=0, timeout_s=1.0, dead_letter=None
    )
    with StubSubscriber(first_hangs) as stub:
        with dispatching(kafka_settings, Route(**{**unordered.__dict__, "subscriber_url": stub.url})):
            publish(kafka_settings, first, second)
            stub.wait_for(2)
            # The second event is delivered while the first hangs; stop now (the first has no outcome).
        release.set()
    with (
        StubSubscriber() as after_restart,
        dispatching(kafka_settings, Route(**{**unordered.__dict__, "subscriber_url": after_restart.url})),
    ):
        after_restart.wait_for(2, timeout_s=10)
    redelivered = [e.id for e in after_restart.events()]
    assert first.id in redelivered, "the undelivered event must come again after a restart"
    assert sorted(redelivered) == sorted([first.id, second.id])  # the commit could not pass the first one


def test_metrics_and_readiness_endpoint(kafka_settings: KafkaSettings) -> None:
    with StubSubscriber() as stub:
        dispatcher = Dispatcher([route("record-all", kafka_settings, stub.url)], kafka_settings)
        server = DispatcherServer(dispatcher).start()
        try:
            assert httpx.get(f"{server.url}/health/readiness").status_code == 503  # not joined yet
            dispatcher.start()
            assert dispatcher.wait_ready(20)
            assert httpx.get(f"{server.url}/health/readiness").status_code == 200
            publish(kafka_settings, training_done(), training_done())
            stub.wait_for(2)
            time.sleep(0.3)
            text = httpx.get(f"{server.url}/metrics").text
        finally:
            dispatcher.stop()
            server.stop()
    assert 'kfchain_dispatch_delivered_total{trigger="record-all"} 2.0' in text
    assert 'kfchain_consumer_lag{partition="0",trigger="record-all"}' in text
    assert "kfchain_dispatch_dead_lettered_total" in text and "kfchain_dispatch_retried_total" in text
