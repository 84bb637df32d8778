"""Local rollout against a real predictor process: zero failed requests while versions change."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from services.predictor.launcher import PredictorProcess
from services.predictor.store import ServingStore
from services.rollout import backend_from_env
from services.rollout.base import RolloutFailed
from services.rollout.local import LocalRollout, LocalRolloutSettings

X, Y = load_iris(return_X_y=True)


def artifact(directory: Path, k: int) -> Path:
    """A model.joblib where a pipeline run would leave it (outside the serving store)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.joblib"
    model = Pipeline([("scaler", StandardScaler()), ("knn", KNeighborsClassifier(n_neighbors=k))]).fit(X, Y)
    joblib.dump(model, path)
    return path


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PredictorProcess]:
    """One predictor for the module (startup costs seconds); each test rolls out its own versions."""
    with PredictorProcess(home=tmp_path_factory.mktemp("rollout-home")) as process:
        yield process


@pytest.fixture
def backend(predictor: PredictorProcess) -> LocalRollout:
    return LocalRollout(LocalRolloutSettings(home=predictor.home, predictor_url=predictor.url, timeout_s=30))


def served_version(predictor: PredictorProcess) -> str | None:
    response = httpx.post(
        f"{predictor.url}/v1/models/iris:predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]}
    )
    return response.headers.get("x-kfchain-model-version") if response.status_code == 200 else None


async def test_two_rollouts_under_load_fail_no_request(
    predictor: PredictorProcess, backend: LocalRollout, tmp_path: Path
) -> None:
    before = backend.current_version("iris")
    first = backend.rollout("iris", "load-1", str(artifact(tmp_path / "runs/1", 9)))
    assert first.previous_version == before and first.traffic_percent == 100
    assert first.endpoint == f"{predictor.url}/v1/models/iris:predict"
    v2, v3 = artifact(tmp_path / "runs/2", 5), artifact(tmp_path / "runs/3", 7)

    statuses: Counter[int] = Counter()
    versions_seen: list[str] = []
    stop = asyncio.Event()

    async def steady_stream(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            try:
                response = await client.post(
                    "/v1/models/iris:predict", json={"instances": [[6.1, 2.8, 4.7, 1.2]]}
                )
            except httpx.HTTPError:
                statuses[0] += 1  # a connection error counts as a failed request
                continue
            statuses[response.status_code] += 1
            versions_seen.append(response.headers.get("x-kfchain-model-version", "?"))

    outcomes = []

    def roll_out_twice() -> None:
        outcomes.append(backend.rollout("iris", "load-2", str(v2)))
        outcomes.append(backend.rollout("iris", "load-3", f"file://{v3.parent}"))

    async with httpx.AsyncClient(base_url=predictor.url, timeout=10) as client:
        streams = [asyncio.create_task(steady_stream(client)) for _ in range(4)]
        await asyncio.sleep(0.5)
        await asyncio.to_thread(roll_out_twice)
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*streams)

    assert sum(statuses.values()) > 50, statuses
    assert set(statuses) == {200}, f"non-2xx answers during the rollouts: {statuses}"
    # versions only move forward, and every one of them answered
    order = [v for i, v in enumerate(versions_seen) if i == 0 or versions_seen[i - 1] != v]
    assert order == ["load-1", "load-2", "load-3"]
    assert [o.previous_version for o in outcomes] == ["load-1", "load-2"]
    assert backend.current_version("iris") == "load-3"
    pointer = ServingStore(predictor.home / "serving").read_pointer("iris")
    assert pointer is not None and (pointer.current, pointer.previous) == ("load-3", "load-2")
    metrics = httpx.get(f"{predictor.url}/metrics", timeout=5).text  # dashboards show the serving version
    assert 'kfchain_predictor_model_info{model_name="iris",model_version="load-3"} 1.0' in metrics
    assert 'kfchain_predictor_model_info{model_name="iris",model_version="load-2"} 0.0' in metrics


def test_a_broken_version_fails_and_the_previous_keeps_serving(
    predictor: PredictorProcess, backend: LocalRollout, tmp_path: Path
) -> None:
    backend.rollout("iris", "good-1", str(artifact(tmp_path / "runs/1", 9)))
    broken = tmp_path / "runs/2/model.joblib"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"\x80\x04 truncated pickle")

    with pytest.raises(RolloutFailed) as failed:
        backend.rollout("iris", "broken-2", str(broken))
    assert failed.value.serving_version == "good-1"
    assert "not a loadable joblib model" in failed.value.reason
    assert served_version(predictor) == "good-1"
    assert backend.current_version("iris") == "good-1"

    with pytest.raises(RolloutFailed) as missing:
        backend.rollout("iris", "missing-3", str(tmp_path / "runs/nowhere/model.joblib"))
    assert missing.value.serving_version == "good-1" and "does not exist" in missing.value.reason
    assert served_version(predictor) == "good-1"


def test_rolling_out_the_serving_version_again_is_a_no_op(
    predictor: PredictorProcess, backend: LocalRollout, tmp_path: Path
) -> None:
    path = artifact(tmp_path / "runs/1", 9)
    first = backend.rollout("iris", "same-1", str(path))
    again = backend.rollout("iris", "same-1", str(path))
    assert not first.unchanged and again.unchanged and again.traffic_percent == 100
    assert again.previous_version == first.previous_version
    assert served_version(predictor) == "same-1"


def test_a_fresh_predictor_is_not_ready_then_a_restart_serves_the_rolled_out_version(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with PredictorProcess(home=home) as predictor:
        assert served_version(predictor) is None  # 503: nothing rolled out yet
        backend = LocalRollout(LocalRolloutSettings(home=home, predictor_url=predictor.url))
        backend.rollout("iris", "v1", str(artifact(tmp_path / "runs/1", 9)))
        # pvc:// names the serving store itself, as on a cluster
        artifact(home / "serving/iris/v2", 5)
        backend.rollout("iris", "v2", "pvc://model-pvc/iris/v2")
    with PredictorProcess(home=home) as restarted:
        assert served_version(restarted) == "v2"


def test_predictor_down_is_a_failed_rollout_naming_the_address(tmp_path: Path) -> None:
    from services.predictor.launcher import free_port

    url = f"http://127.0.0.1:{free_port()}"
    backend = LocalRollout(LocalRolloutSettings(home=tmp_path, predictor_url=url, timeout_s=2))
    with pytest.raises(RolloutFailed) as failed:
        backend.rollout("iris", "v1", str(artifact(tmp_path / "runs/1", 9)))
    assert url in failed.value.reason and failed.value.serving_version is None


def test_backend_from_env_picks_the_local_backend(tmp_path: Path) -> None:
    backend = backend_from_env({"KFCHAIN_HOME": str(tmp_path), "KFCHAIN_PREDICTOR_URL": "http://127.0.0.1:9"})
    assert isinstance(backend, LocalRollout)
    assert backend.current_version("iris") is None
    with pytest.raises(ValueError, match="KFCHAIN_ROLLOUT_BACKEND"):
        backend_from_env({"KFCHAIN_ROLLOUT_BACKEND": "docker"})
