"""``python -m load.report``: a Locust stats history (and a replicas CSV) become one PNG."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from load.report import main, read_locust_history

HEADER = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,"
    "Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,"
    "Total Min Response Time,Total Max Response Time,Total Average Content Size"
)


def write_history(path: Path) -> None:
    """Ten seconds of a Locust run: 10 users, 100 requests/s, 5 failures/s from t=5 s on."""
    lines = [HEADER, "1700000000,0,,Aggregated,0,0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,0,0,0,0,0,0,0"]
    for second in range(1, 11):
        failures = max(0, second - 5) * 5
        lines.append(
            f"{1700000000 + second},10,,Aggregated,90,1,{4 + second},7,8,9,12,{20 + second},30,{40 + second},50,60,70,"
            f"{second * 100},{failures},5,6.0,1,80,120"
        )
        lines.append(
            f"{1700000000 + second},10,POST,v1 predict (1 flower),50,0,4,5,6,7,8,9,10,11,12,13,14,{second * 50},0,5,6,1,80,120"
        )
    path.write_text("\n".join(lines) + "\n")


def write_replicas(path: Path) -> None:
    rows = ["time,elapsed_s,ready_pods,pods,desired_replicas,revisions"]
    for second, ready, desired in ((0, 1, 1), (4, 1, 3), (8, 3, 3)):
        rows.append(
            f"{1700000000 + second},{second},{ready},{desired},{desired},iris-predictor-00001={ready}/{desired}"
        )
    path.write_text("\n".join(rows) + "\n")


def test_rates_come_from_cumulative_counts_not_locusts_trailing_average(tmp_path: Path) -> None:
    write_history(tmp_path / "run_stats_history.csv")
    history = read_locust_history(tmp_path / "run")  # the --csv prefix works as well as the file name

    assert len(history.time) == 11  # per-name rows are left out
    assert history.requests_per_s[1:] == [100.0] * 10  # not the 90 of the Requests/s column
    assert history.failures_per_s[-1] == 5.0 and history.failures_per_s[3] == 0.0
    assert math.isnan(history.p50_ms[0]) and history.p99_ms[-1] == 50.0
    assert (history.total_requests, history.total_failures) == (1000, 25)


def test_cli_writes_a_png_with_the_replicas_panel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_history(tmp_path / "run_stats_history.csv")
    write_replicas(tmp_path / "replicas.csv")

    assert main([str(tmp_path / "run"), "-o", str(tmp_path / "without.png")]) == 0
    assert main([str(tmp_path / "run_stats_history.csv"), "--replicas", str(tmp_path / "replicas.csv")]) == 0

    png = tmp_path / "run.png"  # default: beside the CSV, named after the prefix
    assert capsys.readouterr().out.split() == [str(tmp_path / "without.png"), str(png)]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    with_replicas, without = imread(png), imread(tmp_path / "without.png")
    assert with_replicas.shape[0] > without.shape[0] * 1.3  # a third panel below the two


def test_missing_csv_is_named_with_what_to_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nothing")]) == 2
    error = capsys.readouterr().err
    assert "nothing_stats_history.csv does not exist" in error and "--csv prefix" in error
