"""``python -m load.bench``: one table from every module, a failing module shown as an ERROR row."""

from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import pytest

from load.bench import BenchRow
from load.bench.__main__ import Reporter, discover, main, run_all, write_results
from load.bench.table import ModuleError, format_markdown, format_table, machine_info


def fake_module(monkeypatch: pytest.MonkeyPatch, name: str, run) -> None:  # type: ignore[no-untyped-def]
    module = types.ModuleType(f"load.bench.{name}")
    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, f"load.bench.{name}", module)


def fast_run(progress):  # type: ignore[no-untyped-def]
    progress("measuring")
    return [
        BenchRow("fake", "kfchain req/s", 5000.0, "req/s", "stock KServe", 1000.0, ">= 5x stock", True),
        BenchRow("fake", "p99", 4.25, "ms", target="<= 15 ms", met=True),
    ]


def broken_run(progress):  # type: ignore[no-untyped-def]
    raise ConnectionRefusedError("broker at 127.0.0.1:9092 refused the connection")


def test_a_failing_module_becomes_an_error_row_and_the_others_still_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_module(monkeypatch, "fake_fast", fast_run)
    fake_module(monkeypatch, "fake_broken", broken_run)
    fake_module(monkeypatch, "fake_after", lambda progress: [BenchRow("after", "hop p50", 3.7, "ms")])
    lines: list[str] = []

    class Lines:
        def write(self, text: str) -> None:
            lines.append(text)

        def flush(self) -> None:
            pass

    with Reporter(stream=Lines()) as reporter:
        outcomes, interrupted = run_all(["fake_fast", "fake_broken", "fake_after"], reporter)

    assert not interrupted
    assert [(o.name, len(o.rows), o.error is None) for o in outcomes] == [
        ("fake_fast", 2, True),
        ("fake_broken", 0, False),
        ("fake_after", 1, True),
    ]
    progress = "".join(lines)
    assert "fake_fast: measuring" in progress and "fake_broken: failed" in progress

    rows = [row for o in outcomes for row in o.rows]
    table = format_table(rows, [ModuleError(o.name, o.error) for o in outcomes if o.error]).splitlines()
    assert table[0].split() == ["area", "measurement", "value", "baseline", "ratio", "target", "met"]
    throughput = next(line for line in table if "kfchain req/s" in line)
    assert (
        "5,000 req/s" in throughput
        and "1,000 req/s (stock KServe)" in throughput
        and "5.00x" in throughput
        and "yes" in throughput
    )
    assert any("4.25 ms" in line for line in table)
    assert any("ERROR: ConnectionRefusedError: broker at 127.0.0.1:9092 refused" in line for line in table)
    assert any("hop p50" in line and "3.70 ms" in line for line in table)


def test_results_keep_only_the_latest_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_module(monkeypatch, "fake_fast", fast_run)
    with Reporter(stream=open("/dev/null", "w")) as reporter:  # noqa: SIM115
        outcomes, _ = run_all(["fake_fast"], reporter)
    machine = machine_info()
    written = write_results(outcomes, machine, tmp_path, total_s=12.0)

    assert {p.name for p in written} == {"latest.md", "latest.json", "latest.png"}
    data = json.loads((tmp_path / "latest.json").read_text())
    assert data["machine"]["cores"] == machine["cores"] and data["machine"]["cores"] >= 1
    assert data["rows"][0]["ratio"] == 5.0 and data["rows"][0]["baseline_name"] == "stock KServe"
    markdown = (tmp_path / "latest.md").read_text()
    assert f"{machine['cores']} cores" in markdown and "| fake | kfchain req/s | 5,000 req/s |" in markdown

    # A later run without baselines leaves no stale chart behind.
    fake_module(monkeypatch, "fake_plain", lambda progress: [BenchRow("plain", "rss", 80.0, "MiB")])
    with Reporter(stream=open("/dev/null", "w")) as reporter:  # noqa: SIM115
        outcomes, _ = run_all(["fake_plain"], reporter)
    write_results(outcomes, machine, tmp_path, total_s=1.0)
    assert not (tmp_path / "latest.png").exists()
    assert "kfchain req/s" not in (tmp_path / "latest.md").read_text()


def test_markdown_escapes_pipes_and_nan_is_shown_as_na() -> None:
    markdown = format_markdown([BenchRow("x", "a|b", math.nan, "ms")])
    assert "a\\|b" in markdown and "n/a ms" in markdown


def test_cli_lists_modules_and_refuses_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    listed = capsys.readouterr().out.split()
    assert "locust" in listed and "table" not in listed and listed == discover()
    assert main(["no_such_bench"]) == 2
    assert "no benchmark module no_such_bench" in capsys.readouterr().err
