"""What a local run changes around kfp.local (kfp 2.17), each change scoped to the run.

- ``loops_on_all_cores()``: kfp.local runs at most 2 iterations of any ``ParallelFor`` at once
  (``ParallelExecutor.conservative_max``, a guard against threads multiplying in nested loops); a
  loop's own ``parallelism`` can only lower that. Our pipelines have no nested loops, and a loop
  task (a Python process importing scikit-learn) is CPU-bound, so the bound that should hold is the
  loop's ``parallelism`` and the machine's cores: 5 train tasks run as one wave instead of three on
  a machine with 5 or more cores. On 2 cores it is kfp's 2 (measured: more at once is no faster).
- ``print_and_logging_restored()``: kfp.local swaps ``builtins.print`` and the root logger's
  handlers per task; with parallel loop tasks the swaps race and can leave an indenting print, or a
  handler on the run's (soon closed) log stream, behind.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def loops_on_all_cores() -> Iterator[None]:
    """Within the block a ParallelFor runs up to min(its ``parallelism``, CPU cores) tasks at once.

    kfp.local's cap of 2 stays the floor, and the bound of a loop without ``parallelism`` (its
    ``max_workers`` default of 2). Changes nothing with a kfp that has no
    ``enhanced_dag_orchestrator.ParallelExecutor``.
    """
    try:
        from kfp.local.orchestrator.enhanced_dag_orchestrator import ParallelExecutor
    except ImportError:
        yield
        return
    original_init = ParallelExecutor.__init__
    cores = os.cpu_count() or 1

    def capped_by_cores(self: Any, max_workers: int | None = None) -> None:
        original_init(self, max_workers)
        # execute_parallel_tasks runs min(loop parallelism or max_workers, conservative_max) at once.
        self.conservative_max = max(self.conservative_max, cores)

    ParallelExecutor.__init__ = capped_by_cores  # type: ignore[method-assign]
    try:
        yield
    finally:
        ParallelExecutor.__init__ = original_init  # type: ignore[method-assign]


@contextlib.contextmanager
def print_and_logging_restored() -> Iterator[None]:
    """Put ``builtins.print`` and the root logger's handlers and level back as they were on entry."""
    real_print = builtins.print
    root_handlers, root_level = list(logging.root.handlers), logging.root.level
    try:
        yield
    finally:
        builtins.print = real_print
        logging.root.handlers[:] = root_handlers
        logging.root.setLevel(root_level)
