"""The CloudEvent sinks over HTTP (Quart test client): status codes of Knative's data-plane
contract, replies, idempotency on (source, id) and on the business key, metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from events.catalogue import (
    MODEL_DEPLOYED,
    MODEL_ROLLOUT_FAILED,
    MODEL_SELECTION,
    PIPELINE_RUN_SUBMITTED,
    Candidate,
    PipelineRunSucceeded,
    Selected,
)
from events.codec import from_http, to_http
from events.event import Event, new_event
from events.store import EventStore
from services import deployer, recorder, selector
from services.rollout.base import RolloutFailed, RolloutOutcome
from services.settings import SinkSettings


def settings(tmp_path: Path, name: str) -> SinkSettings:
    return SinkSettings(name=name, host="127.0.0.1", port=0, home=tmp_path)


def training_done(version: str = "v1", run_id: str = "run-1") -> Event:
    payload = PipelineRunSucceeded(
        pipeline="training",
        run_id=run_id,
        model_name="iris",
        model_version=version,
        candidates=(Candidate(k=3, accuracy=0.97, uri="file:///m/3"),),
    )
    return new_event(payload, source="/kfchain/pipelines/training", subject=f"iris/{version}")


def selection_done(version: str = "v1") -> Event:
    payload = PipelineRunSucceeded(
        pipeline=MODEL_SELECTION,
        run_id="sel-1",
        model_name="iris",
        model_version=version,
        selected=Selected(
            k=5, accuracy=0.97, uri="file:///m/5", serving_uri=f"file:///serving/iris/{version}"
        ),
    )
    return new_event(payload, source="/kfchain/pipelines/model-selection", subject=f"iris/{version}")


class CountingSubmitter:
    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []

    def __call__(self, **kwargs: str) -> str:
        self.calls.append(kwargs)
        return f"selection-run-{len(self.calls)}"


async def post(app, event: Event, structured: bool = False):
    headers, body = to_http(event, structured=structured)
    return await app.test_client().post("/", headers=headers, data=body)


async def test_selector_replies_submitted_in_the_same_chain(tmp_path: Path) -> None:
    submit = CountingSubmitter()
    app = selector.create_app(settings(tmp_path, "selector"), submit)
    async with app.test_app():
        cause = training_done()
        response = await post(app, cause)
        assert response.status_code == 200
        reply = from_http(response.headers.items(), await response.get_data())
    assert reply.type == PIPELINE_RUN_SUBMITTED
    assert reply.chainid == cause.chainid and reply.causationid == cause.id
    assert reply.partitionkey == cause.chainid
    assert reply.data["run_id"] == "selection-run-1" and reply.data["model_version"] == "v1"
    assert submit.calls == [
        {"model_name": "iris", "model_version": "v1", "chain_id": cause.chainid, "causation_id": cause.id}
    ]


async def test_duplicate_delivery_and_republished_fact_start_one_selection(tmp_path: Path) -> None:
    submit = CountingSubmitter()
    app = selector.create_app(settings(tmp_path, "selector"), submit)
    async with app.test_app():
        cause = training_done()
        first = await post(app, cause)
        again = await post(app, cause, structured=True)  # same (source, id), other content mode
        # the same training run announced under a new id (e.g. a replayed exit handler)
        republished = await post(app, training_done())
        metrics = (await (await app.test_client().get("/metrics")).get_data()).decode()
    assert len(submit.calls) == 1
    replies = [from_http(r.headers.items(), await r.get_data()) for r in (first, again, republished)]
    assert {r.id for r in replies} == {replies[0].id}
    assert (
        'kfchain_events_duplicate_total{service="selector",type="io.kfchain.pipeline.run.succeeded"} 2.0'
        in metrics
    )


async def test_selector_state_survives_a_restart(tmp_path: Path) -> None:
    submit = CountingSubmitter()
    cause = training_done()
    for _ in range(2):
        app = selector.create_app(settings(tmp_path, "selector"), submit)
        async with app.test_app():
            assert (await post(app, cause)).status_code == 200
    assert len(submit.calls) == 1


@pytest.mark.parametrize(
    ("headers", "body", "field"),
    [
        ({"content-type": "application/json"}, b"{}", "cloudevent"),  # no ce- headers: not a CloudEvent
        (
            {"ce-specversion": "1.0", "ce-type": "x", "ce-source": "/s", "content-type": "application/json"},
            b"{}",
            "id",
        ),  # no id: the field is named
    ],
)
async def test_invalid_cloudevent_is_400_with_the_reason(tmp_path: Path, headers, body, field) -> None:
    app = selector.create_app(settings(tmp_path, "selector"), CountingSubmitter())
    async with app.test_app():
        response = await app.test_client().post("/", headers=headers, data=body)
        assert response.status_code == 400
        answer = await response.get_json()
    assert "invalid CloudEvent" in answer["error"]
    assert answer["field"] == field


async def test_invalid_payload_is_400_naming_the_field(tmp_path: Path) -> None:
    submit = CountingSubmitter()
    app = selector.create_app(settings(tmp_path, "selector"), submit)
    event = training_done()
    broken = Event(
        id="e-1",
        source="/s",
        type=event.type,
        data={**event.data, "candidates": [{"k": 0, "accuracy": 0.5, "uri": "file:///m"}]},
    )
    async with app.test_app():
        response = await post(app, broken)
        answer = await response.get_json()
    assert response.status_code == 400
    assert answer["field"] == "data.candidates[0].k"
    assert submit.calls == []


async def test_selector_rejects_other_pipelines_and_non_post(tmp_path: Path) -> None:
    app = selector.create_app(settings(tmp_path, "selector"), CountingSubmitter())
    async with app.test_app():
        wrong = await post(app, selection_done())
        get = await app.test_client().get("/")
    assert wrong.status_code == 400 and "pipeline='training'" in (await wrong.get_json())["error"]
    assert get.status_code == 405


async def test_a_failing_submitter_is_500_so_the_broker_retries(tmp_path: Path) -> None:
    calls = []

    def flaky(**kwargs: str) -> str:
        calls.append(kwargs)
        if len(calls) == 1:
            raise ConnectionError("KFP API unreachable")
        return "run-2"

    app = selector.create_app(settings(tmp_path, "selector"), flaky)
    async with app.test_app():
        event = training_done()
        first = await post(app, event)
        second = await post(app, event)
    assert first.status_code == 500 and "KFP API unreachable" in (await first.get_json())["error"]
    assert second.status_code == 200  # nothing was remembered for the failed attempt


class FakeBackend:
    """A rollout backend that records calls; the real ones are tested in test_rollout*."""

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.fail = fail
        self.serving: str | None = "v0"

    def rollout(self, model_name: str, model_version: str, serving_uri: str) -> RolloutOutcome:
        self.calls.append((model_name, model_version, serving_uri))
        if self.fail:
            raise RolloutFailed(self.fail, serving_version=self.serving)
        previous, self.serving = self.serving, model_version
        return RolloutOutcome(
            endpoint="http://127.0.0.1:8080/v1/models/iris", traffic_percent=100, previous_version=previous
        )

    def current_version(self, model_name: str) -> str | None:
        return self.serving


async def test_deployer_replies_deployed_once_per_version(tmp_path: Path) -> None:
    backend = FakeBackend()
    marked: list[tuple[str, str]] = []
    app = deployer.create_app(settings(tmp_path, "deployer"), backend, lambda n, v: marked.append((n, v)))
    async with app.test_app():
        cause = selection_done("v2")
        response = await post(app, cause)
        again = await post(app, selection_done("v2"))  # same version, new event: no second rollout
        reply = from_http(response.headers.items(), await response.get_data())
    assert response.status_code == 200 and again.status_code == 200
    assert reply.type == MODEL_DEPLOYED and reply.causationid == cause.id
    assert reply.data == {
        "model_name": "iris",
        "model_version": "v2",
        "k": 5,
        "accuracy": 0.97,
        "endpoint": "http://127.0.0.1:8080/v1/models/iris",
        "traffic_percent": 100,
        "previous_version": "v0",
    }
    assert backend.calls == [("iris", "v2", "file:///serving/iris/v2")]
    assert marked == [("iris", "v2")]


async def test_deployer_reports_a_failed_rollout_with_what_still_serves(tmp_path: Path) -> None:
    app = deployer.create_app(settings(tmp_path, "deployer"), FakeBackend(fail="model.joblib did not load"))
    async with app.test_app():
        response = await post(app, selection_done("v3"))
        reply = from_http(response.headers.items(), await response.get_data())
    assert reply.type == MODEL_ROLLOUT_FAILED
    assert reply.data["reason"] == "model.joblib did not load" and reply.data["serving_version"] == "v0"


async def test_recorder_stores_every_event_once_and_dead_letters_beside_it(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.db")
    app = recorder.create_app(settings(tmp_path, "recorder"), store)
    unknown = Event(id="u-1", source="/elsewhere", type="com.example.other", data={"x": 1})
    event = training_done()
    dead = event.with_extensions(
        knativeerrordest="http://127.0.0.1:8091/", knativeerrorcode="500", knativeerrordata="boom"
    )
    async with app.test_app():
        codes = [(await post(app, e)).status_code for e in (event, event, unknown, dead)]
    assert codes == [202, 202, 202, 202]
    stored = [s.event for s in store.query()]
    assert [e.id for e in stored].count(event.id) == 2
    assert any(e.dead_lettered for e in stored) and any(e.type == "com.example.other" for e in stored)
    assert store.count() == 3


async def test_health_and_readiness(tmp_path: Path) -> None:
    app = recorder.create_app(settings(tmp_path, "recorder"), EventStore(tmp_path / "e.db"))
    async with app.test_app():
        client = app.test_client()
        assert (await client.get("/health/liveness")).status_code == 200
        assert (await client.get("/health/readiness")).status_code == 200
