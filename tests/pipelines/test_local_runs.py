"""Real kfp.local runs of both pipelines against the embedded Kafka broker."""

from __future__ import annotations

import dataclasses
import logging
import os
import uuid
from pathlib import Path
from unittest import mock

import joblib
import pytest
from sklearn.datasets import load_iris

from events.catalogue import (
    PIPELINE_RUN_FAILED,
    PIPELINE_RUN_SUCCEEDED,
    PipelineRunFailed,
    PipelineRunSucceeded,
)
from events.event import Event
from events.kafka import ensure_topics, read_topic
from events.settings import KafkaSettings
from pipelines import model as iris
from pipelines.registry import ModelRecord, SqliteRegistry
from pipelines.runner import RunResult, submit_selection, submit_training
from pipelines.settings import PipelinesSettings

pytestmark = pytest.mark.slow


def _events(kafka: KafkaSettings, run_id: str) -> list[Event]:
    found = [r.event for r in read_topic(kafka) if r.event is not None]
    return [e for e in found if e.data.get("run_id") == run_id]


@pytest.fixture(scope="module")
def settings(kafka_broker: KafkaSettings, tmp_path_factory: pytest.TempPathFactory) -> PipelinesSettings:
    kafka = dataclasses.replace(kafka_broker, topic=f"kfchain.events.{uuid.uuid4().hex[:8]}", timeout_s=5.0)
    ensure_topics(kafka, [kafka.topic])
    return PipelinesSettings(home=tmp_path_factory.mktemp("home"), kafka=kafka)


@pytest.fixture(scope="module")
def trained(settings: PipelinesSettings) -> RunResult:
    handlers = list(logging.root.handlers)
    # As on a machine with 8 cores: the train loop may then run all 3 tasks at once (see below).
    with mock.patch("os.cpu_count", return_value=8):
        result = submit_training(settings, k_values="1,3,5", wait=True)
    # kfp.local's per-task logging swaps race between the parallel train tasks; the run must leave
    # the process's logging as it found it (no handler on the run's closed log stream).
    assert logging.root.handlers == handlers
    assert isinstance(result, RunResult)
    return result


def test_training_run_registers_candidates_and_announces_them(
    settings: PipelinesSettings, trained: RunResult
) -> None:
    assert trained.state == "SUCCEEDED", trained.error
    assert trained.model_version == "v1"  # the next free version was chosen
    [event] = _events(settings.kafka, trained.run_id)
    payload = event.payload()
    assert isinstance(payload, PipelineRunSucceeded)
    assert sorted(c.k for c in payload.candidates or ()) == [1, 3, 5]
    assert event.type == PIPELINE_RUN_SUCCEEDED and event.pipeline == "training"
    assert (
        event.chainid == event.id and event.source == "/kfchain/pipelines/training"
    )  # the chain starts here
    assert event.id == trained.event_id
    records = SqliteRegistry(settings.registry_path).models("iris", "v1")
    assert {(r.k, r.run_id) for r in records} == {(k, trained.run_id) for k in (1, 3, 5)}
    assert all(r.dataset_hash == iris.content_hash(iris.load_bundled_iris()) for r in records)
    # one line per task, with timings, was recorded for progress and the benchmark
    assert [t.task for t in trained.tasks].count("train") == 3


def _most_tasks_at_once(kfp_log: str) -> int:
    running = peak = 0
    for line in Path(kfp_log).read_text().splitlines():
        if "Executing task" in line:
            running += 1
            peak = max(peak, running)
        elif "finished with status" in line and "Pipeline" not in line:
            running -= 1
    return peak


def test_the_train_loop_runs_its_tasks_on_all_cores(trained: RunResult) -> None:
    # kfp.local alone runs 2 loop tasks at a time; with 8 cores the loop's parallelism (8) bounds it.
    assert _most_tasks_at_once(trained.log_path) == 3


def test_selection_serves_the_best_model_and_continues_the_chain(
    settings: PipelinesSettings, trained: RunResult
) -> None:
    result = submit_selection(
        "iris", trained.model_version, trained.chainid, trained.event_id, settings, wait=True
    )
    assert result.state == "SUCCEEDED", result.error
    [event] = _events(settings.kafka, result.run_id)
    payload = event.payload()
    assert isinstance(payload, PipelineRunSucceeded) and payload.selected is not None
    assert (event.chainid, event.causationid) == (trained.chainid, trained.event_id)
    best = iris.choose_best(SqliteRegistry(settings.registry_path).models("iris", trained.model_version))
    assert payload.selected.k == best.k
    served = settings.serving_root / "iris" / trained.model_version / "model.joblib"
    assert payload.selected.serving_uri == "file://" + str(served.parent.resolve())
    assert iris.file_sha256(served) == best.params["sha256"]  # the bytes that were trained and evaluated
    # plain scikit-learn loads it and classifies all 150 rows from raw centimetre features
    model = joblib.load(served)
    data = load_iris()
    assert (model.predict(data.data) == data.target).mean() >= 0.9


def test_selection_follows_the_tie_rule(settings: PipelinesSettings, tmp_path: Path) -> None:
    train, test = iris.split(iris.bundled_iris_rows())
    scaler = iris.scaler_from_params(iris.scaler_params("standard", train))
    registry = SqliteRegistry(settings.registry_path)
    # equal accuracy everywhere; k=7 and k=5 share the best CV accuracy -> the smaller K (5) wins
    for k, cv in ((3, 0.90), (5, 0.97), (7, 0.97)):
        model, _, _ = iris.train_candidate(train, test, scaler, k)
        folder = tmp_path / f"k{k}"
        folder.mkdir()
        joblib.dump(model, folder / "model.joblib")
        registry.register(ModelRecord("iris", "tie", k, 0.95, str(folder), cv_accuracy=cv))
    result = submit_selection("iris", "tie", "chain-1", "cause-1", settings, wait=True)
    assert result.state == "SUCCEEDED", result.error
    [event] = _events(settings.kafka, result.run_id)
    assert event.payload().selected.k == 5
    assert [r.k for r in registry.models("iris", "tie") if r.selected] == [5]


def test_selection_refuses_a_best_model_below_min_accuracy(
    settings: PipelinesSettings, tmp_path: Path
) -> None:
    folder = tmp_path / "weak"
    folder.mkdir()
    (folder / "model.joblib").write_bytes(b"never served")
    SqliteRegistry(settings.registry_path).register(ModelRecord("iris", "weak", 3, 0.55, str(folder)))
    result = submit_selection("iris", "weak", "chain-3", "cause-3", settings, wait=True)
    assert result.state == "FAILED"
    assert "held-out accuracy of 55.0%, below min_accuracy 90.0%" in result.error
    [event] = _events(settings.kafka, result.run_id)
    assert isinstance(event.payload(), PipelineRunFailed)
    assert not (settings.serving_root / "iris" / "weak").exists()


def test_selection_of_an_unknown_version_announces_the_failure(settings: PipelinesSettings) -> None:
    result = submit_selection("iris", "v404", "chain-2", "cause-2", settings, wait=True)
    assert result.state == "FAILED"
    [event] = _events(settings.kafka, result.run_id)
    payload = event.payload()
    assert isinstance(payload, PipelineRunFailed) and event.type == PIPELINE_RUN_FAILED
    assert "no models registered for 'iris' version 'v404'" in payload.error
    assert (payload.state, event.chainid) == ("FAILED", "chain-2")


def test_training_on_bad_data_announces_run_failed(settings: PipelinesSettings, tmp_path: Path) -> None:
    source = tmp_path / "no_petals.csv"
    iris.load_bundled_iris().drop(columns=["petal_width"]).to_csv(source, index=False)
    result = submit_training(settings, model_version="bad", k_values="1", source=str(source), wait=True)
    assert result.state == "FAILED"
    [event] = _events(settings.kafka, result.run_id)
    payload = event.payload()
    assert isinstance(payload, PipelineRunFailed)
    assert "petal_width" in payload.error and payload.model_version == "bad"
    assert SqliteRegistry(settings.registry_path).models("iris", "bad") == []


def test_selection_submitted_without_waiting_runs_in_the_background(
    settings: PipelinesSettings, trained: RunResult
) -> None:
    handle = submit_selection(
        "iris", trained.model_version, trained.chainid, trained.event_id, settings, wait=False
    )
    assert handle.run_id.startswith("local-model-selection-")  # known before the run ends
    result = handle.wait(timeout=120)
    assert result.state == "SUCCEEDED", result.error
    assert [e.type for e in _events(settings.kafka, handle.run_id)] == [PIPELINE_RUN_SUCCEEDED]
    assert os.environ.get("KFCHAIN_HOME") != str(settings.home)  # settings travelled without touching our env
