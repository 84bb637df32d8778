"""``load/locustfile.py`` run by real Locust (child process, a few seconds) against a small real HTTP server.

Locust patches the standard library with gevent when imported, so it never runs inside pytest.
"""

from __future__ import annotations

import csv
from pathlib import Path

from load.locustrun import run_locust
from load.report import read_locust_history
from load.settings import LoadSettings
from tests.load.stub_server import StubBehaviour, stub_server

ALL_USERS = ("PredictorV1User", "PredictorV2User", "FrontendUser")


def settings_for(url: str, tmp_path: Path) -> LoadSettings:
    return LoadSettings(predictor_url=url, frontend_url=url, output_dir=tmp_path)


def test_correct_answers_pass_for_every_user_class_and_reports_are_written(tmp_path: Path) -> None:
    with stub_server() as server:
        run = run_locust(
            settings_for(server.url, tmp_path),
            tmp_path / "ok",
            users=6,
            spawn_rate=6,
            run_time_s=3,
            user_classes=ALL_USERS,
        )

    assert run.exit_code == 0 and run.aggregated.failures == 0
    assert run.aggregated.requests == server.behaviour.requests > 20
    names = set(run.by_name)
    assert {"v1 predict (1 flower)", "v2 infer (1 flower)", "frontend /api/predict (1 flower)"} <= names
    assert run.html_path.is_file() and "<html" in run.html_path.read_text()[:2000].lower()
    # The history (for load.report) is sampled once a second, so it may miss the last second.
    assert 0 < read_locust_history(run.csv_prefix).total_requests <= run.aggregated.requests


def test_wrong_species_with_status_200_counts_as_failure(tmp_path: Path) -> None:
    with stub_server(StubBehaviour(wrong_species=True)) as server:
        run = run_locust(
            settings_for(server.url, tmp_path),
            tmp_path / "wrong",
            users=6,
            spawn_rate=6,
            run_time_s=3,
            user_classes=ALL_USERS,
        )

    assert run.exit_code == 1  # Locust's own verdict: some requests failed
    # Every request carrying a versicolor or virginica failed; one-flower setosa requests are right.
    assert 0 < run.aggregated.failures < run.aggregated.requests
    for name in ("v1 predict (3 flowers)", "v2 infer (3 flowers)", "frontend /api/predict (3 flowers)"):
        assert run.by_name[name].failures == run.by_name[name].requests > 0
    assert any("is versicolor, the answer was 'setosa'" in failure for failure in run.failures)


def test_missing_model_version_fails_unless_allowed(tmp_path: Path) -> None:
    settings = None
    with stub_server(StubBehaviour(with_version=False)) as server:
        settings = settings_for(server.url, tmp_path)
        strict = run_locust(
            settings,
            tmp_path / "strict",
            users=2,
            spawn_rate=2,
            run_time_s=2,
            user_classes=["PredictorV1User"],
        )
        lenient = run_locust(
            settings, tmp_path / "lenient", users=2, spawn_rate=2, run_time_s=2, user_classes=["PredictorV1User"],
            extra_args=["--allow-missing-version"],
        )  # fmt: skip

    assert strict.aggregated.failures == strict.aggregated.requests > 0
    assert any("no model version" in failure for failure in strict.failures)
    assert lenient.aggregated.failures == 0 and lenient.aggregated.requests > 0


def test_autoscale_shape_ramps_up_and_down_and_ends_the_run_by_itself(tmp_path: Path) -> None:
    with stub_server() as server:
        # No -t: only the shape can end this run (steady mode would run until the timeout).
        run = run_locust(
            settings_for(server.url, tmp_path), tmp_path / "shape", users=1, spawn_rate=1, run_time_s=0,
            user_classes=["PredictorV1User"], timeout_s=30,
            extra_args=["--shape", "autoscale", "--peak-users", "4", "--ramp-seconds", "2", "--hold-seconds", "2"],
        )  # fmt: skip

    with run.history_csv.open() as handle:
        users = [int(row["User Count"]) for row in csv.DictReader(handle) if row["Name"] == "Aggregated"]
    assert max(users) == 4  # --peak-users, not -u 1
    assert users[-1] < 4  # ramped down before the end
    assert run.aggregated.failures == 0 and run.aggregated.requests > 0
