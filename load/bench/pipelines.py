"""Pipelines benchmark: wall time of a local training run (5 K values) and of a selection run, and how
much of it is KFP's own overhead (task wall time measured by the runner minus the component
function's own time, measured inside the component).

``python -m load.bench.pipelines``
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

from events.broker import EmbeddedBroker, free_port
from load.bench import BenchRow, Progress
from pipelines.runner import RunResult, submit_selection, submit_training
from pipelines.settings import PipelinesSettings

AREA = "pipelines"


def _overhead_rows(label: str, result: RunResult) -> list[BenchRow]:
    inside = sum(t.seconds_inside for t in result.tasks)
    walls = [w for values in result.task_wall.values() for w in values]
    task_wall = sum(walls)
    per_task_ms = 1000 * (task_wall - inside) / max(len(walls), 1)
    return [
        BenchRow(
            AREA,
            f"{label} run wall time",
            result.seconds,
            "s",
            baseline_name="component functions",
            baseline=inside,
        ),
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


def run(progress: Progress) -> list[BenchRow]:
    """Run one training (K=1,3,5,7,9) and one selection locally against an embedded broker."""
    with tempfile.TemporaryDirectory(prefix="kfchain-bench-") as home, EmbeddedBroker(free_port()) as broker:
        settings = PipelinesSettings(
            home=Path(home), kafka=dataclasses.replace(broker.settings, timeout_s=5.0)
        )
        progress("pipelines: local training run, K=1,3,5,7,9")
        trained = submit_training(settings, k_values="1,3,5,7,9", wait=True)
        assert isinstance(trained, RunResult)
        if not trained.succeeded:
            raise RuntimeError(f"training run failed: {trained.error}")
        progress(f"pipelines: training took {trained.seconds:.1f}s; local selection run")
        selected = submit_selection(
            "iris", trained.model_version, trained.chainid, trained.event_id, settings, wait=True
        )
        assert isinstance(selected, RunResult)
        if not selected.succeeded:
            raise RuntimeError(f"selection run failed: {selected.error}")
        progress(f"pipelines: selection took {selected.seconds:.1f}s")
    return _overhead_rows("training (5 K)", trained) + _overhead_rows("model-selection", selected)


def main() -> int:
    rows = run(lambda line: print(line, file=sys.stderr, flush=True))
    for row in rows:
        base = "" if row.baseline is None else f"   ({row.baseline_name}: {row.baseline:.2f} {row.unit})"
        print(f"{row.area:<10} {row.name:<40} {row.value:10.2f} {row.unit}{base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
