"""Pipelines benchmark: local run wall times, each against a baseline measured in the same run.

- training (5 K values) with the train loop at its own parallelism (what ``run_local`` does) against
  the same run with kfp.local's own cap of 2 loop tasks at a time;
- a background selection run (what the selector starts) forked from the warm server of
  ``pipelines.background`` against the same run as a fresh ``python -m pipelines.submit`` process;
- how much of the task time is KFP's own (task wall time measured by the runner minus the
  component function's own time, measured inside the component).

``python -m load.bench.pipelines``
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

from events.broker import EmbeddedBroker, free_port
from events.catalogue import MODEL_SELECTION
from load.bench import BenchRow, Progress
from pipelines import background
from pipelines.runner import (
    PROJECT_ROOT,
    RunResult,
    local_run_env,
    new_run_id,
    selection_argv,
    submit_selection,
    submit_training,
)
from pipelines.settings import PipelinesSettings

AREA = "pipelines"
K_VALUES = "1,3,5,7,9"


def _overhead_rows(label: str, result: RunResult) -> list[BenchRow]:
    inside = sum(t.seconds_inside for t in result.tasks)
    walls = [w for values in result.task_wall.values() for w in values]
    task_wall = sum(walls)
    per_task_ms = 1000 * (task_wall - inside) / max(len(walls), 1)
    return [
        # share of the summed task time that is KFP's (process start, executor, artifact I/O), not the
        # component function; parallel train tasks overlap, so this is not a share of the wall time.
        BenchRow(
            AREA, f"{label}: KFP overhead share of task time", 100 * (task_wall - inside) / task_wall, "%"
        ),
        BenchRow(
            AREA,
            f"{label}: KFP overhead per task",
            per_task_ms,
            "ms",
            baseline_name="component time per task",
            baseline=1000 * inside / max(len(walls), 1),
        ),  # fmt: skip
    ]


def _train(settings: PipelinesSettings, version: str) -> RunResult:
    result = submit_training(settings, k_values=K_VALUES, model_version=version, wait=True)
    assert isinstance(result, RunResult)
    if not result.succeeded:
        raise RuntimeError(f"training run failed: {result.error}")
    return result


def _fresh_process_selection(settings: PipelinesSettings, trained: RunResult) -> float:
    """Wall time of ``python -m pipelines.submit model_selection`` in a new interpreter (the old way)."""
    argv = selection_argv(
        "iris", trained.model_version, trained.chainid, trained.event_id, new_run_id(MODEL_SELECTION)
    )
    command = [sys.executable, "-m", "pipelines.submit", *argv]
    started = time.monotonic()
    done = subprocess.run(
        command, env=local_run_env(settings), cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"selection run failed: {done.stdout[-800:]}{done.stderr[-800:]}")
    return time.monotonic() - started


def _forked_selection(settings: PipelinesSettings, trained: RunResult) -> float:
    """Wall time of the selector's way: ``submit_selection(wait=False)`` forked from the warm server."""
    started = time.monotonic()
    handle = submit_selection("iris", trained.model_version, trained.chainid, trained.event_id, settings)
    result = handle.wait(timeout=120)
    if not result.succeeded:
        raise RuntimeError(f"selection run failed: {result.error}")
    return time.monotonic() - started


def run(progress: Progress) -> list[BenchRow]:
    """Training runs (K=1,3,5,7,9) and selection runs locally against an embedded broker."""
    with tempfile.TemporaryDirectory(prefix="kfchain-bench-") as home, EmbeddedBroker(free_port()) as broker:
        settings = PipelinesSettings(
            home=Path(home), kafka=dataclasses.replace(broker.settings, timeout_s=5.0)
        )
        background.warm_up()  # as the selector does when it starts
        progress(f"pipelines: local training run, K={K_VALUES}, kfp.local's loop cap of 2 (baseline)")
        with mock.patch("pipelines.runner.loops_on_all_cores", contextlib.nullcontext):
            capped = _train(settings, "capped")
        progress(f"pipelines: {capped.seconds:.1f}s; again with the loop at its own parallelism")
        trained = _train(settings, "v1")
        progress(f"pipelines: {trained.seconds:.1f}s; a selection run in the foreground")
        selected = submit_selection(
            "iris", trained.model_version, trained.chainid, trained.event_id, settings, wait=True
        )
        assert isinstance(selected, RunResult)
        if not selected.succeeded:
            raise RuntimeError(f"selection run failed: {selected.error}")
        progress("pipelines: background selection runs: fresh interpreter (baseline), then forked")
        fresh = _fresh_process_selection(settings, trained)
        forked = _forked_selection(settings, trained)
    return [
        BenchRow(AREA, "training (5 K) run wall time", trained.seconds, "s",
                 baseline_name="kfp.local's cap of 2 loop tasks", baseline=capped.seconds),
        *_overhead_rows("training (5 K)", trained),
        BenchRow(AREA, "model-selection run wall time", selected.seconds, "s",
                 baseline_name="component functions", baseline=sum(t.seconds_inside for t in selected.tasks)),
        *_overhead_rows("model-selection", selected),
        BenchRow(AREA, "background selection run, start -> end (forked, warm)", forked, "s",
                 baseline_name="fresh python -m pipelines.submit", baseline=fresh),
    ]  # fmt: skip


def main() -> int:
    rows = run(lambda line: print(line, file=sys.stderr, flush=True))
    for row in rows:
        base = "" if row.baseline is None else f"   ({row.baseline_name}: {row.baseline:.2f} {row.unit})"
        print(f"{row.area:<10} {row.name:<40} {row.value:10.2f} {row.unit}{base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
