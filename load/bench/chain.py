"""Chain latency: ``pipelines.submit training`` (5 K values) until the predictor serves the new model.

Runs the real chain on a throw-away local stack (free ports, its own broker and KFCHAIN_HOME) and
reads the step times from the event store. Baseline: the two pipeline runs' own wall time, so the
ratio shows what the event plumbing (exit handler -> Kafka -> dispatcher -> services -> rollout) adds.
Target (issue 4): the chain under 15 s locally. ``python -m load.bench.chain`` runs it alone.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx

from events.catalogue import (
    MODEL_DEPLOYED,
    MODEL_SELECTION,
    PIPELINE_RUN_SUBMITTED,
    PIPELINE_RUN_SUCCEEDED,
    TRAINING,
)
from events.event import Event
from events.store import EventStore
from knative.local.ephemeral import ephemeral_stack
from load.bench import BenchRow, Progress

K_VALUES = "1,3,5,7,9"
TIMEOUT_S = 300.0


def _first(
    store: EventStore, type_: str, chain: str | None = None, pipeline: str | None = None
) -> Event | None:
    stored = store.chain(chain) if chain else store.query(type_prefix=type_)
    for item in stored:
        if item.event.type == type_ and (pipeline is None or item.event.pipeline == pipeline):
            return item.event
    return None


def _wait(what: str, probe, deadline: float):  # noqa: ANN001, ANN202
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not happen within {TIMEOUT_S:g} s")


def run(progress: Progress) -> list[BenchRow]:
    with tempfile.TemporaryDirectory(prefix="kfchain-bench-chain-") as tmp:
        progress("starting a throw-away local stack")
        with ephemeral_stack(Path(tmp) / "home") as stack:
            store = EventStore(stack.home / "events.db")
            predict = f"{stack.url('predictor')}/v1/models/iris:predict"
            progress(f"submitting training (K={K_VALUES}) and following the chain")
            started = time.monotonic()
            wall_start = time.time()
            submit = stack.cli("pipelines.submit", "training", "--k", K_VALUES, "--version", "v1", "--wait", "--quiet",
                               timeout=TIMEOUT_S)  # fmt: skip
            if submit.returncode != 0:
                raise RuntimeError(f"training failed: {submit.stdout[-800:]}{submit.stderr[-800:]}")
            deadline = started + TIMEOUT_S
            training = _wait(
                "training event", lambda: _first(store, PIPELINE_RUN_SUCCEEDED, pipeline=TRAINING), deadline
            )
            chain = training.chainid

            def serving() -> bool:
                try:
                    return httpx.post(predict, json={"instances": [[6.4, 3.2, 4.5, 1.5]]}, timeout=2).json().get(
                        "model_version") == "v1"  # fmt: skip
                except (httpx.HTTPError, ValueError):
                    return False

            _wait("model.deployed", lambda: _first(store, MODEL_DEPLOYED, chain), deadline)
            _wait("the predictor serving v1", serving, deadline)
            total = time.monotonic() - started
            submitted = _first(store, PIPELINE_RUN_SUBMITTED, chain)
            selection = _first(store, PIPELINE_RUN_SUCCEEDED, chain, MODEL_SELECTION)
            deployed = _first(store, MODEL_DEPLOYED, chain)
            assert submitted and selection and deployed
            training_wall = training.time.timestamp() - wall_start
            selection_wall = (selection.time - submitted.time).total_seconds()
            hop_to_selector = (submitted.time - training.time).total_seconds()
            rollout = (deployed.time - selection.time).total_seconds()
    pipelines_wall = training_wall + selection_wall
    return [
        BenchRow("chain", "submit -> predictor serves the model (5 K)", total, "s", "pipeline runs alone",
                 pipelines_wall, "< 15 s", total < 15),
        BenchRow("chain", "training run (submit -> its event)", training_wall, "s"),
        BenchRow("chain", "training event -> selector's reply", hop_to_selector * 1000, "ms"),
        BenchRow("chain", "selection run (submitted -> its event)", selection_wall, "s"),
        BenchRow("chain", "selection event -> model.deployed (rollout)", rollout * 1000, "ms"),
    ]  # fmt: skip


if __name__ == "__main__":
    from load.bench.table import print_rows

    print_rows(run(lambda line: print(line, file=sys.stderr, flush=True)))
