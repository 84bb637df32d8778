"""Benchmarks behind `make bench`.

Each area has one module here exposing ``run(progress) -> list[BenchRow]``; ``python -m load.bench``
runs them all and prints one table. A row carries its measured value and, where there is a
baseline measured in the same run, the baseline and the ratio between them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BenchRow:
    """One measured quantity, optionally against a baseline measured in the same run."""

    area: str  # "events", "pipelines", "chain", "predictor", "frontend", "locust"
    name: str  # what was measured, e.g. "publish->consume p99"
    value: float
    unit: str  # "ms", "req/s", "s", "MiB", "events/s", "%"
    baseline_name: str = ""
    baseline: float | None = None
    target: str = ""  # human-readable target, e.g. "<= 50 ms" or ">= 5x stock"
    met: bool | None = None  # whether the target was met, when one applies

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline


Progress = Callable[[str], None]
