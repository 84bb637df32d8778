"""Formatting of benchmark rows: the terminal table, the Markdown table and the JSON record.

A benchmark module run alone can print its rows the same way ``make bench`` does::

    if __name__ == "__main__":
        from load.bench.table import print_rows
        print_rows(run())
"""

from __future__ import annotations

import math
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from load.bench import BenchRow

HEADERS = ("area", "measurement", "value", "baseline", "ratio", "target", "met")


@dataclass(frozen=True)
class ModuleError:
    """A benchmark module that could not run or raised; shown as a row of the table."""

    area: str
    error: str


def format_number(value: float | None) -> str:
    """3 significant figures for small values, no decimals from 100 up; '-' for None, 'n/a' for NaN."""
    if value is None:
        return "-"
    if math.isnan(value):
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 100 or (float(value).is_integer() and magnitude < 1e15):
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.01 or magnitude == 0:
        return f"{value:.2f}"
    return f"{value:.2g}"


def format_ratio(ratio: float | None) -> str:
    if ratio is None or math.isnan(ratio):
        return ""
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.1f}x"


def format_met(met: bool | None) -> str:
    return "" if met is None else ("yes" if met else "NO")


def row_cells(row: BenchRow) -> tuple[str, ...]:
    """The table cells of one row (value and baseline carry the unit)."""
    baseline = ""
    if row.baseline is not None:
        baseline = f"{format_number(row.baseline)} {row.unit}" + (
            f" ({row.baseline_name})" if row.baseline_name else ""
        )
    elif row.baseline_name:
        baseline = row.baseline_name
    return (
        row.area,
        row.name,
        f"{format_number(row.value)} {row.unit}",
        baseline,
        format_ratio(row.ratio),
        row.target,
        format_met(row.met),
    )


def error_cells(error: ModuleError) -> tuple[str, ...]:
    return (error.area, f"ERROR: {error.error}", "", "", "", "", "")


def _all_cells(rows: Sequence[BenchRow], errors: Sequence[ModuleError]) -> list[tuple[str, ...]]:
    return [row_cells(row) for row in rows] + [error_cells(error) for error in errors]


def format_table(rows: Sequence[BenchRow], errors: Sequence[ModuleError] = ()) -> str:
    """A plain-text table with aligned columns (numbers right-aligned)."""
    cells = _all_cells(rows, errors)
    if not cells:
        return "(no benchmark rows)"
    widths = [max(len(HEADERS[i]), *(len(c[i]) for c in cells)) for i in range(len(HEADERS))]
    right = {2, 3, 4}

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(widths[i]) if i in right else v.ljust(widths[i]) for i, v in enumerate(values)]
        return "  ".join(parts).rstrip()

    separator = "  ".join("-" * w for w in widths)
    return "\n".join([line(HEADERS), separator, *(line(c) for c in cells)])


def _markdown_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def format_markdown(rows: Sequence[BenchRow], errors: Sequence[ModuleError] = ()) -> str:
    """The same table in GitHub Markdown."""
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join(["---", "---", "--:", "--:", "--:", "---", "---"]) + "|",
    ]
    lines += [
        "| " + " | ".join(_markdown_escape(c) for c in cells) + " |" for cells in _all_cells(rows, errors)
    ]
    return "\n".join(lines)


def machine_info() -> dict[str, object]:
    """Cores (all and usable by this process), CPU model, Python and OS: what the numbers depend on."""
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu_model = platform.processor()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "cpu": cpu_model,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        # Other work on the machine skews the numbers: record how busy it was when the run started.
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def machine_line(info: dict[str, object]) -> str:
    cores = f"{info['cores']} cores" + (
        f" ({info['usable_cores']} usable)" if info["usable_cores"] != info["cores"] else ""
    )
    load = f", load average {info['load_average_1m']}" if info.get("load_average_1m") is not None else ""
    return f"{cores}, {info['cpu'] or 'unknown CPU'}, Python {info['python']}, {info['platform']}{load}"


def row_record(row: BenchRow) -> dict[str, object]:
    """A row as JSON-ready dict, ratio included; NaN becomes None (JSON has no NaN)."""
    record = {**asdict(row), "ratio": row.ratio}
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}


def print_rows(rows: Sequence[BenchRow], errors: Sequence[ModuleError] = ()) -> None:
    """Print the table and the machine line to stdout."""
    print(format_table(rows, errors))
    print(f"\nmachine: {machine_line(machine_info())}")
    sys.stdout.flush()
