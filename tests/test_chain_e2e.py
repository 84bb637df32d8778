"""The whole chain on one machine, from the real manifests in knative/: real embedded broker,
real dispatcher, real selector/deployer/recorder/predictor processes and real KFP local runs.

After `python -m pipelines.submit training` nobody runs anything by hand: the chain must reach
model.deployed, with every step's causation right; a duplicate delivery must not start a second
selection run; and a dispatcher killed mid-chain must, once restarted, finish the chain.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from events.catalogue import (
    MODEL_DEPLOYED,
    MODEL_SELECTION,
    PIPELINE_RUN_SUBMITTED,
    PIPELINE_RUN_SUCCEEDED,
    TRAINING,
)
from events.event import Event, new_event
from events.kafka import Publisher
from events.settings import KafkaSettings
from events.store import EventStore
from knative.local.ephemeral import EphemeralStack, ephemeral_stack

pytestmark = pytest.mark.slow

CHAIN_TIMEOUT_S = 150
VERSICOLOR = [6.4, 3.2, 4.5, 1.5]


class Stack:
    """The ephemeral stack, plus what these tests ask of it."""

    def __init__(self, stack: EphemeralStack) -> None:
        self.home, self.env, self.url, self.cli = stack.home, stack.env, stack.url, stack.cli
        self.store = EventStore(stack.home / "events.db")

    @property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=self.env["KAFKA_BOOTSTRAP_SERVERS"])

    def pid(self, name: str) -> int:
        state = json.loads((self.home / "run" / "stack.json").read_text())
        return next(p["pid"] for p in state["processes"] if p["name"] == name)

    def wait_for(self, chain: str, type_: str, timeout_s: float = CHAIN_TIMEOUT_S, **data: str) -> Event:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for stored in self.store.chain(chain):
                event = stored.event
                if event.type == type_ and all(event.data.get(k) == v for k, v in data.items()):
                    return event
            time.sleep(0.25)
        steps = [(s.event.type, s.event.data.get("pipeline")) for s in self.store.chain(chain)]
        logs = {p.name: p.read_text()[-1500:] for p in (self.home / "logs").glob("*.log")}
        raise AssertionError(
            f"no {type_} {data} in chain {chain} within {timeout_s}s; have {steps}; logs {logs}"
        )

    def train(self, version: str) -> Event:
        done = self.cli(
            "pipelines.submit", "training", "--k", "1,3", "--version", version, "--wait", "--quiet"
        )
        assert done.returncode == 0, done.stdout + done.stderr
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for stored in self.store.query(type_prefix=PIPELINE_RUN_SUCCEEDED):
                if stored.event.pipeline == TRAINING and stored.event.data["model_version"] == version:
                    return stored.event
            time.sleep(0.25)
        raise AssertionError(f"the training event of {version} never reached the event store")

    def selection_runs(self) -> list[Path]:
        return sorted((self.home / "runs").glob("local-model-selection-*"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with ephemeral_stack(tmp_path_factory.mktemp("chain") / "home") as running:
        yield Stack(running)


def test_training_run_is_selected_and_deployed_without_anyone_stepping_in(stack: Stack) -> None:
    training = stack.train("v1")
    chain = training.chainid
    assert chain == training.id  # the training run opens the chain
    deployed = stack.wait_for(chain, MODEL_DEPLOYED, model_version="v1")
    submitted = stack.wait_for(chain, PIPELINE_RUN_SUBMITTED)
    selection = stack.wait_for(chain, PIPELINE_RUN_SUCCEEDED, pipeline=MODEL_SELECTION)

    assert submitted.causationid == training.id and submitted.source == "/kfchain/services/selector"
    assert selection.causationid == training.id and selection.source == "/kfchain/pipelines/model-selection"
    assert deployed.causationid == selection.id and deployed.source == "/kfchain/services/deployer"
    assert {e.partitionkey for e in (training, submitted, selection, deployed)} == {chain}
    best = max(c["accuracy"] for c in training.data["candidates"])
    assert selection.data["selected"]["accuracy"] == best == deployed.data["accuracy"]

    answer = httpx.post(
        f"{stack.url('predictor')}/v1/models/iris:predict", json={"instances": [VERSICOLOR]}, timeout=10
    ).json()
    assert answer["species"] == ["versicolor"] and answer["model_version"] == "v1"

    tree = stack.cli("events.log", "chain", chain[:8])
    assert tree.returncode == 0, tree.stderr
    for step in ("pipeline.run.succeeded", "pipeline.run.submitted", "model.deployed"):
        assert step in tree.stdout


def test_a_duplicate_delivery_starts_one_selection_run(stack: Stack) -> None:
    training = next(
        s.event for s in stack.store.query(type_prefix=PIPELINE_RUN_SUCCEEDED) if s.event.pipeline == TRAINING
    )
    runs_before = stack.selection_runs()
    # the same event delivered again, and the same training run announced again under a new id
    again = new_event(training.payload(), source=training.source, subject=training.subject)
    with Publisher(stack.kafka) as publisher:
        publisher.publish(training)
        publisher.publish(again)
    stack.wait_for(again.chainid or again.id, PIPELINE_RUN_SUCCEEDED, timeout_s=60)  # recorded
    deadline = time.monotonic() + 30
    duplicates = 0.0
    while time.monotonic() < deadline and duplicates < 2:
        metrics = httpx.get(f"{stack.url('selector')}/metrics", timeout=5).text
        duplicates = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("kfchain_events_duplicate_total{")
        )
        time.sleep(0.25)
    assert duplicates == 2
    assert stack.selection_runs() == runs_before  # no second selection run


def test_dispatcher_killed_mid_chain_is_restarted_and_the_chain_finishes(stack: Stack) -> None:
    training = stack.train("v2")
    stack.wait_for(training.chainid, PIPELINE_RUN_SUBMITTED, timeout_s=60)
    old = stack.pid("dispatcher")
    os.kill(old, signal.SIGKILL)  # the selection run is under way; its end event must still be routed
    deployed = stack.wait_for(training.chainid, MODEL_DEPLOYED, model_version="v2")
    assert stack.pid("dispatcher") != old
    assert deployed.data["previous_version"] == "v1"
    answer = httpx.post(
        f"{stack.url('predictor')}/v1/models/iris:predict", json={"instances": [VERSICOLOR]}, timeout=10
    ).json()
    assert answer["model_version"] == "v2"
