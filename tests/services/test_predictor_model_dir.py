"""The predictor in model-dir mode (KServe's /mnt/models): one fixed version, over real HTTP."""

from __future__ import annotations

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
from services.predictor.settings import PredictorSettings, model_version_from

X, Y = load_iris(return_X_y=True)
SPECIES = ["setosa", "versicolor", "virginica"]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5], [6.9, 3.1, 5.4, 2.1]]


def mounted_model(root: Path) -> tuple[Path, Pipeline]:
    """A folder like KServe's /mnt/models: the version's model.joblib and nothing else."""
    model = Pipeline([("scaler", StandardScaler()), ("knn", KNeighborsClassifier(n_neighbors=7))]).fit(X, Y)
    directory = root / "mnt" / "models"
    directory.mkdir(parents=True)
    joblib.dump(model, directory / "model.joblib")
    return directory, model


@pytest.fixture(scope="module")
def mounted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Pipeline]:
    return mounted_model(tmp_path_factory.mktemp("model-dir"))


@pytest.fixture(scope="module")
def predictor(
    tmp_path_factory: pytest.TempPathFactory, mounted: tuple[Path, Pipeline]
) -> Iterator[PredictorProcess]:
    # An empty KFCHAIN_HOME: in model-dir mode the serving store is not read at all.
    home = tmp_path_factory.mktemp("model-dir-home")
    with PredictorProcess(
        home=home, args=["--model_dir", str(mounted[0])], env={"KFCHAIN_MODEL_VERSION": "v3"}
    ) as process:
        yield process


@pytest.fixture(scope="module")
def client(predictor: PredictorProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=predictor.url, timeout=10) as http:
        yield http


def test_v1_answers_with_the_species_and_the_version_it_was_told(
    client: httpx.Client, mounted: tuple[Path, Pipeline]
) -> None:
    response = client.post("/v1/models/iris:predict", json={"instances": ROWS})
    assert response.status_code == 200, response.text
    assert response.headers["x-kfchain-model-version"] == "v3"
    body = response.json()
    expected = mounted[1].predict(ROWS).tolist()
    assert body["predictions"] == expected
    assert body["species"] == [SPECIES[c] for c in expected] == ["setosa", "versicolor", "virginica"]
    assert (body["model_name"], body["model_version"]) == ("iris", "v3")


def test_v2_answers_with_the_species_and_the_version(client: httpx.Client) -> None:
    tensor = {"name": "input-0", "shape": [3, 4], "datatype": "FP32", "data": [v for r in ROWS for v in r]}
    response = client.post("/v2/models/iris/infer", json={"id": "r1", "inputs": [tensor]})
    assert response.status_code == 200, response.text
    assert response.headers["x-kfchain-model-version"] == "v3"
    body = response.json()
    outputs = {o["name"]: o["data"] for o in body["outputs"]}
    assert outputs["species"] == ["setosa", "versicolor", "virginica"]
    assert (body["model_version"], body["id"]) == ("v3", "r1")


def test_ready_and_metrics_name_the_served_version(client: httpx.Client) -> None:
    assert client.get("/v2/models/iris/ready").json() == {"name": "iris", "ready": True}
    metrics = client.get("/metrics").text
    assert 'kfchain_predictor_model_info{model_name="iris",model_version="v3"} 1.0' in metrics
    assert 'kfchain_predictor_requests_total{code="200",protocol="v1"}' in metrics


def test_loading_or_activating_another_version_is_409_naming_the_mode(client: httpx.Client) -> None:
    loaded = client.post("/kfchain/v1/models/iris/versions/v4/load")
    assert loaded.status_code == 409
    assert loaded.json()["mode"] == "model-dir" and loaded.json()["current"] == "v3"
    assert "model-dir mode" in loaded.json()["error"] and "storageUri" in loaded.json()["error"]
    activated = client.post("/kfchain/v1/models/iris/activate", json={"version": "v4"})
    assert activated.status_code == 409 and "model-dir mode" in activated.json()["error"]
    other = client.post("/kfchain/v1/models/iris/versions/v4:predict", json={"instances": ROWS})
    assert other.status_code == 409 and "model-dir mode" in other.json()["error"]
    status = client.get("/kfchain/v1/models/iris").json()
    assert (status["mode"], status["current"], status["staged"]) == ("model-dir", "v3", [])
    # Asking for the version it already serves is no error, and KServe's repository load keeps it.
    assert client.post("/kfchain/v1/models/iris/versions/v3/load").status_code == 200
    assert client.post("/v2/repository/models/iris/load").status_code == 200
    after = client.post("/v1/models/iris:predict", json={"instances": ROWS[:1]})
    assert after.headers["x-kfchain-model-version"] == "v3"


def test_env_only_with_the_version_from_storage_uri_and_a_model_name_argument(
    tmp_path: Path, mounted: tuple[Path, Pipeline]
) -> None:
    env = {"KFCHAIN_PREDICTOR_MODEL_DIR": str(mounted[0]), "STORAGE_URI": "pvc://model-pvc/iris/v5"}
    with PredictorProcess(home=tmp_path, env=env, args=["--model_name=flowers"]) as predictor:
        response = httpx.post(f"{predictor.url}/v1/models/flowers:predict", json={"instances": ROWS[:1]})
    assert response.status_code == 200, response.text
    assert response.json()["species"] == ["setosa"]
    assert (response.json()["model_name"], response.json()["model_version"]) == ("flowers", "v5")


def test_a_directory_without_model_joblib_fails_at_start_naming_the_path(tmp_path: Path) -> None:
    empty = tmp_path / "models"
    empty.mkdir()
    with pytest.raises(RuntimeError) as failed:
        PredictorProcess(home=tmp_path, args=[f"--model_dir={empty}"], startup_timeout_s=30).start()
    assert "exited with code 1" in str(failed.value)
    assert f"{empty / 'model.joblib'} does not exist" in str(failed.value)


def test_the_version_comes_from_the_deployer_then_storage_uri_then_says_unknown() -> None:
    both = {"KFCHAIN_MODEL_VERSION": "v7", "STORAGE_URI": "pvc://model-pvc/iris/v6"}
    assert model_version_from(both) == ("v7", "KFCHAIN_MODEL_VERSION")
    assert model_version_from({"STORAGE_URI": "pvc://model-pvc/iris/v6"}) == ("v6", "STORAGE_URI")
    assert model_version_from({"STORAGE_URI": "gs://bucket/iris/v6/model.joblib"}) == ("v6", "STORAGE_URI")
    assert model_version_from({}) == ("unknown", "default")
    with pytest.raises(ValueError, match="KFCHAIN_MODEL_VERSION 'v1/../x'"):
        model_version_from({"KFCHAIN_MODEL_VERSION": "v1/../x"})


def test_store_mode_stays_the_default_and_arguments_win_over_the_environment() -> None:
    default = PredictorSettings.from_args([], {})
    assert (default.mode, default.model_dir) == ("store", None)
    env = {"KFCHAIN_PREDICTOR_MODEL_DIR": "/from/env", "KFCHAIN_MODEL_NAME": "iris"}
    parsed = PredictorSettings.from_args(["--model_dir=/mnt/models", "--model_name=flowers"], env)
    assert (parsed.mode, str(parsed.model_dir), parsed.model_name) == ("model-dir", "/mnt/models", "flowers")
    with pytest.raises(ValueError, match="--model_name='a b'"):
        PredictorSettings.from_args(["--model_name=a b"], {})
