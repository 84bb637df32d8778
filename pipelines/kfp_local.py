"""What a local run changes around kfp.local (kfp 2.17), each change scoped to the run.

- ``loops_bounded_by_their_parallelism()``: kfp.local runs at most 2 iterations of any
  ``ParallelFor`` at once (``ParallelExecutor.conservative_max``, a guard against threads multiplying
  in nested loops); a loop's own ``parallelism`` can only lower that. Our pipelines have no nested
  loops, so the loop's ``parallelism`` is the bound that should hold: 5 train tasks run as one wave
  instead of three (about 2 s of a 10 s training run on 2 cores). The cap remains the default for
  loops without a ``parallelism``.
- ``print_and_logging_restored()``: kfp.local swaps ``builtins.print`` and the root logger's
  handlers per task; with parallel loop tasks the swaps race and can leave an indenting print, or a
  handler on the run's (soon closed) log stream, behind.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

#: Threads one local loop may use when its ``parallelism`` asks for more. A loop without one
#: (``parallelism`` 0, unlimited) still gets kfp's default of 2, through ``max_workers``.
_MAX_LOOP_WORKERS = 32


@contextlib.contextmanager
def loops_bounded_by_their_parallelism() -> Iterator[None]:
    """Within the block, a ParallelFor's ``parallelism`` is its bound, not kfp.local's cap of 2.

    Changes nothing with a kfp that has no ``enhanced_dag_orchestrator.ParallelExecutor``.
    """
    try:
        from kfp.local.orchestrator.enhanced_dag_orchestrator import ParallelExecutor
    except ImportError:
        yield
        return
    original_init = ParallelExecutor.__init__

    def bounded_by_parallelism(self: Any, max_workers: int | None = None) -> None:
        original_init(self, max_workers)
        # execute_parallel_tasks runs min(loop parallelism or max_workers, conservative_max) at once.
        self.conservative_max = max(self.conservative_max, _MAX_LOOP_WORKERS)

    ParallelExecutor.__init__ = bounded_by_parallelism  # type: ignore[method-assign]
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
