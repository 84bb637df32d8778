"""One machine-readable line per component, read by the local runner for progress and timing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

PREFIX = "[kfchain] "


@contextmanager
def reporting(task: str, **fields: Any) -> Iterator[dict[str, Any]]:
    """Time the component body and print ``[kfchain] {json}`` when it ends (done or failed).

    The body adds what the progress line should show to the yielded dict.
    """
    info: dict[str, Any] = dict(fields)
    started = time.perf_counter()
    try:
        yield info
    except BaseException as exc:
        line = {"task": task, "status": "failed", "seconds": time.perf_counter() - started, **info}
        line["error"] = f"{type(exc).__name__}: {exc}"
        print(PREFIX + json.dumps(line, default=str), flush=True)
        raise
    line = {"task": task, "status": "done", "seconds": time.perf_counter() - started, **info}
    print(PREFIX + json.dumps(line, default=str), flush=True)


def parse(line: str) -> dict[str, Any] | None:
    """The report in ``line`` if it carries one."""
    at = line.find(PREFIX)
    if at < 0:
        return None
    try:
        report = json.loads(line[at + len(PREFIX) :])
    except ValueError:
        return None
    return report if isinstance(report, dict) and "task" in report else None
