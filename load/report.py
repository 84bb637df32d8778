"""Turn a Locust run's CSV (and optionally a replicas CSV from ``load.autoscale``) into one PNG.

    python -m load.report load/results/tmp/run                 # the --csv prefix given to Locust
    python -m load.report load/results/tmp/run_stats_history.csv --replicas load/results/tmp/replicas.csv
    python -m load.report --replicas load/results/tmp/replicas.csv -o replicas.png

Panels: requests/s and failures/s (with the user count), latency p50/p95/p99, and ready/desired
replicas over time when a replicas CSV is given. Times are seconds since the first sample.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

HISTORY_SUFFIX = "_stats_history.csv"
REPLICA_COLUMNS = ("time", "elapsed_s", "ready_pods", "pods", "desired_replicas")


@dataclass
class LocustHistory:
    """The ``Aggregated`` rows of Locust's ``*_stats_history.csv``, one list per column."""

    time: list[float] = field(default_factory=list)  # Unix seconds
    users: list[float] = field(default_factory=list)
    requests_per_s: list[float] = field(default_factory=list)
    failures_per_s: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p95_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    total_requests: int = 0
    total_failures: int = 0


def _rates(times: list[float], totals: list[float]) -> list[float]:
    """Per-interval rate from cumulative counts (Locust's own Requests/s column is a trailing
    10 s average, which lags a ramp by seconds)."""
    rates = [0.0] if times else []
    for i in range(1, len(times)):
        elapsed = times[i] - times[i - 1]
        rates.append((totals[i] - totals[i - 1]) / elapsed if elapsed > 0 else math.nan)
    return rates


@dataclass
class ReplicaHistory:
    """Replica samples written by ``load.autoscale`` (``time`` in Unix seconds)."""

    time: list[float] = field(default_factory=list)
    ready_pods: list[float] = field(default_factory=list)
    desired_replicas: list[float] = field(default_factory=list)


def history_path(path_or_prefix: str | Path) -> Path:
    """``run`` -> ``run_stats_history.csv``; a path that already names the CSV is returned as is."""
    path = Path(path_or_prefix)
    if path.name.endswith(".csv"):
        return path
    return path.with_name(path.name + HISTORY_SUFFIX)


def _number(raw: str | None) -> float:
    try:
        return float(raw) if raw not in (None, "", "N/A") else math.nan
    except ValueError:
        return math.nan


def read_locust_history(path_or_prefix: str | Path) -> LocustHistory:
    """Read Locust's stats history (``--csv PREFIX`` writes ``PREFIX_stats_history.csv``)."""
    path = history_path(path_or_prefix)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; pass the --csv prefix of a Locust run (e.g. load/results/tmp/run) "
            f"or its {HISTORY_SUFFIX} file"
        )
    history = LocustHistory()
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {
            "Timestamp",
            "Name",
            "Total Request Count",
            "Total Failure Count",
            "50%",
            "95%",
            "99%",
        } - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path} is not a Locust stats history CSV: missing columns {sorted(missing)}")
        request_totals: list[float] = []
        failure_totals: list[float] = []
        for row in reader:
            if row["Name"] != "Aggregated":
                continue
            history.time.append(_number(row["Timestamp"]))
            history.users.append(_number(row.get("User Count")))
            request_totals.append(_number(row["Total Request Count"]))
            failure_totals.append(_number(row["Total Failure Count"]))
            history.p50_ms.append(_number(row["50%"]))
            history.p95_ms.append(_number(row["95%"]))
            history.p99_ms.append(_number(row["99%"]))
    if not history.time:
        raise ValueError(f"{path} has no 'Aggregated' rows; was the run shorter than one stats interval?")
    history.requests_per_s = _rates(history.time, request_totals)
    history.failures_per_s = _rates(history.time, failure_totals)
    history.total_requests = int(request_totals[-1])
    history.total_failures = int(failure_totals[-1])
    return history


def read_replicas(path: str | Path) -> ReplicaHistory:
    """Read the replicas CSV written by ``python -m load.autoscale``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; `python -m load.autoscale --cluster` writes it")
    replicas = ReplicaHistory()
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"time", "ready_pods", "desired_replicas"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(
                f"{path} is not a replicas CSV from load.autoscale: missing columns {sorted(missing)}"
            )
        for row in reader:
            replicas.time.append(_number(row["time"]))
            replicas.ready_pods.append(_number(row["ready_pods"]))
            replicas.desired_replicas.append(_number(row["desired_replicas"]))
    return replicas


def plot(
    history: LocustHistory | None, replicas: ReplicaHistory | None, output: Path, title: str = ""
) -> Path:
    """Draw the panels that have data into ``output`` (PNG) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if history is None and replicas is None:
        raise ValueError("nothing to plot: give a Locust CSV, a replicas CSV, or both")
    starts = [series.time[0] for series in (history, replicas) if series is not None and series.time]
    start = min(starts) if starts else 0.0
    panels = (2 if history is not None else 0) + (1 if replicas is not None else 0)
    figure, axes = plt.subplots(panels, 1, figsize=(10, 3.2 * panels), sharex=True, squeeze=False)
    axes_iter = iter(axes[:, 0])

    if history is not None:
        elapsed = [t - start for t in history.time]
        rate = next(axes_iter)
        rate.plot(elapsed, history.requests_per_s, label="requests/s", color="tab:blue")
        rate.plot(elapsed, history.failures_per_s, label="failures/s", color="tab:red")
        rate.set_ylabel("per second")
        rate.grid(alpha=0.3)
        users = rate.twinx()
        users.plot(elapsed, history.users, label="users", color="tab:gray", linestyle="--", alpha=0.7)
        users.set_ylabel("users")
        lines = rate.get_legend_handles_labels()[0] + users.get_legend_handles_labels()[0]
        rate.legend(lines, [line.get_label() for line in lines], loc="upper left", fontsize="small")
        failed = f", {history.total_failures} failed" if history.total_failures else ", no failures"
        rate.set_title(f"{history.total_requests} requests{failed}", fontsize="medium")

        latency = next(axes_iter)
        for values, label, color in (
            (history.p50_ms, "p50", "tab:green"),
            (history.p95_ms, "p95", "tab:orange"),
            (history.p99_ms, "p99", "tab:red"),
        ):
            latency.plot(elapsed, values, label=label, color=color)
        latency.set_ylabel("latency (ms)")
        latency.grid(alpha=0.3)
        latency.legend(loc="upper left", fontsize="small")

    if replicas is not None:
        elapsed = [t - start for t in replicas.time]
        pods = next(axes_iter)
        pods.step(
            elapsed, replicas.desired_replicas, where="post", label="desired replicas", color="tab:purple"
        )
        pods.step(elapsed, replicas.ready_pods, where="post", label="ready pods", color="tab:cyan")
        pods.set_ylabel("replicas")
        pods.yaxis.get_major_locator().set_params(integer=True)
        pods.grid(alpha=0.3)
        pods.legend(loc="upper left", fontsize="small")

    axes[-1, 0].set_xlabel("seconds since start")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=100)
    plt.close(figure)
    return output


def default_output(csv_path: str | Path | None, replicas_path: str | Path | None) -> Path:
    """``run_stats_history.csv`` -> ``run.png``; ``replicas.csv`` -> ``replicas.png``."""
    if csv_path is not None:
        history = history_path(csv_path)
        return history.with_name(history.name.removesuffix(HISTORY_SUFFIX).removesuffix(".csv") + ".png")
    assert replicas_path is not None
    return Path(replicas_path).with_suffix(".png")


def make_report(
    csv_path: str | Path | None,
    replicas_path: str | Path | None = None,
    output: Path | None = None,
    title: str = "",
) -> Path:
    """Read the CSVs, plot them, return the PNG's path."""
    history = read_locust_history(csv_path) if csv_path is not None else None
    replicas = read_replicas(replicas_path) if replicas_path is not None else None
    return plot(history, replicas, output or default_output(csv_path, replicas_path), title=title)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", nargs="?", help="Locust --csv prefix or its _stats_history.csv")
    parser.add_argument("--replicas", help="replicas CSV written by python -m load.autoscale")
    parser.add_argument("-o", "--output", type=Path, help="PNG to write (default: beside the CSV)")
    parser.add_argument("--title", default="", help="title on top of the figure")
    args = parser.parse_args(argv)
    if args.csv is None and args.replicas is None:
        parser.error("give a Locust CSV prefix, --replicas CSV, or both")
    try:
        path = make_report(args.csv, args.replicas, args.output, args.title)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
