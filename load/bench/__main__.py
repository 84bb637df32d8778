"""``python -m load.bench``: run every benchmark module and print one table (``make bench``).

    python -m load.bench                    # all modules; writes load/results/latest.{md,json,png}
    python -m load.bench predictor locust   # only these; prints, writes nothing unless --write
    python -m load.bench --list

Each ``load/bench/<area>.py`` with a ``run(progress)`` function is one module. They run one after
the other in this process; progress goes to stderr with the elapsed time, and a module that fails
becomes an ERROR row while the others still run. Only the latest full run is kept.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import load.bench
from load.bench import BenchRow, Progress
from load.bench.table import (
    ModuleError,
    format_markdown,
    format_ratio,
    format_table,
    machine_info,
    machine_line,
    row_record,
)

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
#: Modules run in this order (cheap and foundational first); unknown ones follow alphabetically.
ORDER = ("events", "dispatcher", "pipelines", "chain", "predictor", "frontend", "locust")
NOT_BENCHMARKS = {"table"}
HEARTBEAT_S = 30.0


@dataclass
class ModuleOutcome:
    name: str
    rows: list[BenchRow] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


def discover() -> list[str]:
    """Names of the benchmark modules in ``load/bench`` in run order."""
    names = [
        info.name
        for info in pkgutil.iter_modules(load.bench.__path__)
        if not info.name.startswith("_") and info.name not in NOT_BENCHMARKS
    ]
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(names, key=lambda n: (rank.get(n, len(ORDER)), n))


class Reporter:
    """Progress lines on stderr (``[  12.3s] predictor: ...``) and a heartbeat for quiet modules."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.current = ""
        self.last_line = self.start
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def line(self, message: str) -> None:
        with self._lock:
            now = time.monotonic()
            self.last_line = now
            prefix = f"{self.current}: " if self.current else ""
            message = message.removeprefix(prefix) if prefix else message  # modules that name themselves
            print(f"[{now - self.start:7.1f}s] {prefix}{message}", file=self.stream, flush=True)

    def progress_for(self, name: str) -> Progress:
        self.current = name
        return self.line

    def _beat(self) -> None:
        while not self._stop.wait(5.0):
            if self.current and time.monotonic() - self.last_line >= HEARTBEAT_S:
                self.line("still running")

    def __enter__(self) -> Reporter:
        threading.Thread(target=self._beat, daemon=True, name="bench-heartbeat").start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


def run_module(name: str, reporter: Reporter) -> ModuleOutcome | None:
    """Import ``load.bench.<name>`` and call its ``run(progress)``; None if it has no ``run``."""
    outcome = ModuleOutcome(name)
    started = time.monotonic()
    progress = reporter.progress_for(name)
    try:
        module = importlib.import_module(f"load.bench.{name}")
        run = getattr(module, "run", None)
        if not callable(run):
            return None
        progress("starting")
        rows = list(run(progress))
        bad = [row for row in rows if not isinstance(row, BenchRow)]
        if bad:
            raise TypeError(f"run() must return BenchRow objects, got {type(bad[0]).__name__}")
        outcome.rows = rows
    except Exception as error:  # one broken benchmark must not hide the others
        first_line = (str(error).strip().splitlines() or [""])[0]
        outcome.error = f"{type(error).__name__}: {first_line}"[:300]
        progress(f"failed:\n{traceback.format_exc()}")
    outcome.seconds = time.monotonic() - started
    progress(
        f"done in {outcome.seconds:.1f} s"
        + (f" ({outcome.error})" if outcome.error else f", {len(outcome.rows)} rows")
    )
    return outcome


def run_all(names: Sequence[str], reporter: Reporter) -> tuple[list[ModuleOutcome], bool]:
    """Run the modules in order; stop early (interrupted=True) on Ctrl-C."""
    outcomes: list[ModuleOutcome] = []
    try:
        for name in names:
            outcome = run_module(name, reporter)
            if outcome is not None:
                outcomes.append(outcome)
    except KeyboardInterrupt:
        outcomes.append(ModuleOutcome(reporter.current, error="interrupted (Ctrl-C)"))
        return outcomes, True
    return outcomes, False


def write_results(
    outcomes: Sequence[ModuleOutcome], machine: dict[str, object], directory: Path, total_s: float
) -> list[Path]:
    """Replace ``latest.md``/``latest.json`` (and ``latest.png`` when there are ratios) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = [row for o in outcomes for row in o.rows]
    errors = [ModuleError(o.name, o.error) for o in outcomes if o.error]
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    md = directory / "latest.md"
    md.write_text(
        "# kfchain benchmarks: latest run\n\n"
        f"Run `make bench` (`python -m load.bench`) to refresh. {stamp}, {total_s:.0f} s in total.\n\n"
        f"Machine: {machine_line(machine)}.\n\n"
        "`ratio` is value / baseline, both measured in the same run; `met` says whether the target holds.\n\n"
        f"{format_markdown(rows, errors)}\n\n"
        + "".join(f"- `{o.name}`: {o.seconds:.0f} s\n" for o in outcomes)
    )
    data = {
        "generated_at": stamp,
        "total_seconds": round(total_s, 1),
        "machine": machine,
        "rows": [row_record(row) for row in rows],
        "modules": [
            {"name": o.name, "seconds": round(o.seconds, 1), "rows": len(o.rows), "error": o.error}
            for o in outcomes
        ],
    }
    js = directory / "latest.json"
    js.write_text(json.dumps(data, indent=2) + "\n")
    written = [md, js]
    png = directory / "latest.png"
    if plot_ratios(rows, png, machine):
        written.append(png)
    else:
        png.unlink(missing_ok=True)  # only the latest run's files stay
    return written


def plot_ratios(rows: Sequence[BenchRow], path: Path, machine: dict[str, object]) -> bool:
    """Horizontal bars of value/baseline for the rows that have a baseline; False if none has."""
    with_ratio = [row for row in rows if row.ratio is not None]
    if not with_ratio:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [
        f"{row.area}: {row.name}\nvs {row.baseline_name}" if row.baseline_name else f"{row.area}: {row.name}"
        for row in with_ratio
    ]
    ratios = [row.ratio or 0.0 for row in with_ratio]
    colors = [
        "tab:gray" if row.met is None else ("tab:green" if row.met else "tab:red") for row in with_ratio
    ]
    figure, axis = plt.subplots(figsize=(10, 0.55 * len(with_ratio) + 1.5))
    bars = axis.barh(range(len(with_ratio)), ratios, color=colors)
    axis.set_yticks(range(len(with_ratio)), labels, fontsize="small")
    axis.invert_yaxis()
    axis.axvline(1.0, color="black", linewidth=0.8)
    if max(ratios) / max(min(r for r in ratios if r > 0) if any(r > 0 for r in ratios) else 1, 1e-9) > 50:
        axis.set_xscale("log")
    for bar, ratio in zip(bars, ratios, strict=True):
        axis.annotate(format_ratio(ratio), (bar.get_width(), bar.get_y() + bar.get_height() / 2), xytext=(3, 0),
                      textcoords="offset points", va="center", fontsize="small")  # fmt: skip
    axis.set_xlabel("value / baseline (same run); green: target met, red: missed, gray: no target")
    axis.set_title(f"kfchain benchmarks, {machine['cores']} cores: value / baseline", fontsize="medium")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="run only these (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmark modules and exit")
    parser.add_argument("--write", action="store_true", help="write load/results/latest.* even for a subset")
    parser.add_argument("--no-write", action="store_true", help="print only, keep load/results as it is")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    available = discover()
    if args.list:
        print("\n".join(available))
        return 0
    unknown = [name for name in args.modules if name not in available]
    if unknown:
        print(
            f"error: no benchmark module {', '.join(unknown)}; available: {', '.join(available)}",
            file=sys.stderr,
        )
        return 2
    names = args.modules or available
    machine = machine_info()
    print(
        f"running {len(names)} benchmark modules: {', '.join(names)}  ({machine_line(machine)})",
        file=sys.stderr,
    )
    started = time.monotonic()
    with Reporter() as reporter:
        outcomes, interrupted = run_all(names, reporter)
    total_s = time.monotonic() - started

    rows = [row for o in outcomes for row in o.rows]
    errors = [ModuleError(o.name, o.error) for o in outcomes if o.error]
    print(format_table(rows, errors))
    print(f"\nmachine: {machine_line(machine)}; {total_s:.0f} s in total")
    write = (args.write or not args.modules) and not args.no_write and not interrupted
    if write:
        for path in write_results(outcomes, machine, args.results_dir, total_s):
            print(f"wrote {path}")
    elif interrupted:
        print("interrupted: load/results left as it was", file=sys.stderr)
    if interrupted:
        return 130
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
