"""Run ``load/locustfile.py`` headless in a child process and read its CSV results.

Locust patches the standard library with gevent when imported, so it never runs inside the
caller's process (the benchmarks and tests keep their threads and asyncio loops intact).
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from load.settings import LoadSettings

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
REPO_ROOT = LOCUSTFILE.parents[1]
USER_CLASSES = ("PredictorV1User", "PredictorV2User", "FrontendUser")


class LocustRunError(RuntimeError):
    """Locust could not run or wrote no results; the message carries the end of its output."""


@dataclass(frozen=True)
class LocustStats:
    """One row of Locust's ``*_stats.csv`` (one request name, or ``Aggregated``)."""

    name: str
    requests: int
    failures: int
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    average_ms: float

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    def summary_line(self) -> str:
        return (
            f"{self.requests_per_s:.1f} req/s, p50 {self.p50_ms:.0f} ms, p95 {self.p95_ms:.0f} ms, "
            f"p99 {self.p99_ms:.0f} ms, {self.failures} failed of {self.requests}"
        )


@dataclass(frozen=True)
class LocustRun:
    """Where a run's reports are and what they say."""

    csv_prefix: Path
    html_path: Path
    aggregated: LocustStats
    by_name: dict[str, LocustStats] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)  # "name: message" -> occurrences
    exit_code: int = 0

    @property
    def history_csv(self) -> Path:
        return self.csv_prefix.with_name(self.csv_prefix.name + "_stats_history.csv")


def _percentile(response_times: dict[int, int], count: int, percent: float) -> float:
    """Locust's own percentile rule over its rounded response-time buckets (ms)."""
    if count == 0:
        return math.nan
    threshold = int(count * percent)
    processed = 0
    for response_time in sorted(response_times, reverse=True):
        processed += response_times[response_time]
        if count - processed <= threshold:
            return float(response_time)
    return 0.0


def _stats_from_entries(name: str, entries: list[dict]) -> LocustStats:
    buckets: dict[int, int] = {}
    for entry in entries:
        for response_time, count in (entry.get("response_times") or {}).items():
            buckets[int(float(response_time))] = buckets.get(int(float(response_time)), 0) + int(count)
    requests = sum(int(e.get("num_requests") or 0) for e in entries)
    starts = [e["start_time"] for e in entries if e.get("start_time")]
    lasts = [e["last_request_timestamp"] for e in entries if e.get("last_request_timestamp")]
    elapsed = (max(lasts) - min(starts)) if starts and lasts else 0.0
    total_time = sum(float(e.get("total_response_time") or 0) for e in entries)
    return LocustStats(
        name=name,
        requests=requests,
        failures=sum(int(e.get("num_failures") or 0) for e in entries),
        requests_per_s=requests / elapsed if elapsed > 0 else 0.0,
        p50_ms=_percentile(buckets, requests, 0.50),
        p95_ms=_percentile(buckets, requests, 0.95),
        p99_ms=_percentile(buckets, requests, 0.99),
        average_ms=total_time / requests if requests else math.nan,
    )


def read_final_stats(json_path: Path) -> tuple[LocustStats, dict[str, LocustStats]]:
    """Aggregated and per-name stats from Locust's ``--json-file`` output.

    This file is written at shutdown with the final numbers; ``*_stats.csv`` is rewritten only once a
    second while the run is on, so it misses the last second and the users' stop (up to a quarter of
    a few-seconds run).
    """
    if not json_path.is_file():
        raise LocustRunError(f"{json_path} was not written; did Locust start? (see its output above)")
    entries = json.loads(json_path.read_text())
    if not isinstance(entries, list):
        raise LocustRunError(f"{json_path} is not Locust's stats JSON (expected a list of entries)")
    by_name = {e["name"]: _stats_from_entries(e["name"], [e]) for e in entries}
    return _stats_from_entries("Aggregated", entries), by_name


def read_failures(csv_prefix: Path) -> dict[str, int]:
    """``"<name>: <error>" -> occurrences`` from ``<prefix>_failures.csv`` (empty if none)."""
    path = csv_prefix.with_name(csv_prefix.name + "_failures.csv")
    if not path.is_file():
        return {}
    with path.open(newline="") as handle:
        return {f"{row['Name']}: {row['Error']}": int(row["Occurrences"]) for row in csv.DictReader(handle)}


def run_locust(
    settings: LoadSettings,
    csv_prefix: Path,
    *,
    users: int = 20,
    spawn_rate: float = 20,
    run_time_s: int = 20,
    user_classes: Sequence[str] = ("PredictorV1User",),
    extra_args: Sequence[str] = (),
    timeout_s: float | None = None,
) -> LocustRun:
    """Run Locust headless against ``settings``' predictor/frontend; write CSV + HTML at ``csv_prefix``.

    A run with failed requests still returns (its failures are in the result); a run that could not
    start raises :class:`LocustRunError`.
    """
    unknown = set(user_classes) - set(USER_CLASSES)
    if unknown:
        raise ValueError(f"unknown Locust user classes {sorted(unknown)}; use some of {list(USER_CLASSES)}")
    csv_prefix.parent.mkdir(parents=True, exist_ok=True)
    html_path = csv_prefix.with_suffix(".html")
    json_prefix = csv_prefix.with_name(csv_prefix.name + "_final")
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "-u", str(users), "-r", str(spawn_rate), "-t", f"{run_time_s}s",
        "--csv", str(csv_prefix), "--html", str(html_path), "--json-file", str(json_prefix), "--stop-timeout", "5",
        *extra_args, *user_classes,
    ]  # fmt: skip
    env = {
        **os.environ,
        "KFCHAIN_PREDICTOR_URL": settings.predictor_url,
        "KFCHAIN_FRONTEND_URL": settings.frontend_url,
        "KFCHAIN_MODEL_NAME": settings.model_name,
    }
    try:
        completed = subprocess.run(
            command,
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout_s or run_time_s + 60,
        )
    except subprocess.TimeoutExpired as error:
        raise LocustRunError(f"Locust did not finish within {error.timeout:.0f} s") from None
    output = (completed.stderr or "") + (completed.stdout or "")
    # Exit code 1 only says some requests failed; anything else means Locust itself did not run.
    if completed.returncode not in (0, 1):
        raise LocustRunError(f"Locust exited with {completed.returncode}:\n{output[-2000:]}")
    try:
        aggregated, by_name = read_final_stats(json_prefix.with_name(json_prefix.name + ".json"))
    except LocustRunError as error:
        raise LocustRunError(f"{error}\n{output[-2000:]}") from None
    return LocustRun(
        csv_prefix=csv_prefix,
        html_path=html_path,
        aggregated=aggregated,
        by_name=by_name,
        failures=read_failures(csv_prefix),
        exit_code=completed.returncode,
    )
