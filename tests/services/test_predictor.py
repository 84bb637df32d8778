"""The predictor process over real HTTP: V1/V2 answers, validation, KServe endpoints, restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from services.predictor.launcher import PredictorProcess
from services.predictor.store import ServingStore

X, Y = load_iris(return_X_y=True)


def fit_model(k: int) -> Pipeline:
    return Pipeline([("scaler", StandardScaler()), ("knn", KNeighborsClassifier(n_neighbors=k))]).fit(X, Y)


def publish(home: Path, version: str, model: Pipeline, make_current: bool = True) -> None:
    """Put a version in the serving store as the pipelines would, and mark it current."""
    store = ServingStore(home / "serving")
    path = store.model_path("iris", version)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path)
    if make_current:
        pointer = store.read_pointer("iris")
        store.write_pointer("iris", version, pointer.current if pointer else None)


@pytest.fixture(scope="module")
def model() -> Pipeline:
    return fit_model(9)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory, model: Pipeline) -> Iterator[PredictorProcess]:
    home = tmp_path_factory.mktemp("predictor-home")
    publish(home, "v1", model)
    with PredictorProcess(home=home) as process:
        yield process


@pytest.fixture(scope="module")
def client(predictor: PredictorProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=predictor.url, timeout=10) as http:
        yield http


def test_v1_predicts_class_species_and_version(client: httpx.Client, model: Pipeline) -> None:
    response = client.post("/v1/models/iris:predict", json={"instances": X.tolist()})
    assert response.status_code == 200
    assert response.headers["x-kfchain-model-version"] == "v1"
    body = response.json()
    assert body["predictions"] == model.predict(X).tolist()
    names = ["setosa", "versicolor", "virginica"]
    assert body["species"] == [names[c] for c in model.predict(X)]
    assert body["model_name"] == "iris" and body["model_version"] == "v1"
    assert "probabilities" not in body


def test_v1_probabilities_when_asked(client: httpx.Client, model: Pipeline) -> None:
    rows = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5], [6.3, 2.8, 5.1, 1.5]]
    body = client.post("/v1/models/iris:predict", json={"instances": rows, "probabilities": True}).json()
    assert body["probabilities"] == model.predict_proba(np.asarray(rows)).tolist()


def test_v2_infer_returns_named_outputs(client: httpx.Client, model: Pipeline) -> None:
    rows = [[5.1, 3.5, 1.4, 0.2], [6.9, 3.1, 5.4, 2.1]]
    request = {
        "id": "req-1",
        "inputs": [
            {"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": [v for r in rows for v in r]}
        ],
    }
    response = client.post("/v2/models/iris/infer", json=request)
    assert response.status_code == 200
    body = response.json()
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predict"]["data"] == model.predict(np.asarray(rows)).tolist()
    assert outputs["species"]["data"] == ["setosa", "virginica"]
    assert outputs["probabilities"]["shape"] == [2, 3]
    assert body["id"] == "req-1" and body["model_version"] == "v1"

    only_predict = client.post(
        "/v2/models/iris/infer", json={**request, "outputs": [{"name": "predict"}]}
    ).json()
    assert [o["name"] for o in only_predict["outputs"]] == ["predict"]


@pytest.mark.parametrize(
    ("body", "instance", "reason"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"", None, "empty"),
        (b'{"rows": [[1, 2, 3, 4]]}', None, 'missing \\"instances\\"'),
        (b'{"instances": [[5.1, 3.5, 1.4, 0.2], [5.1, 3.5, 1.4]]}', 1, "expected 4 numbers"),
        (b'{"instances": [[5.1, 3.5, 1.4, 0.2, 9.9]]}', 0, "got 5"),
        (b'{"instances": [[5.1, "3.5", 1.4, 0.2]]}', 0, "sepal_width must be a number"),
        (b'{"instances": [[5.1, 3.5, true, 0.2]]}', 0, "petal_length must be a number"),
        (b'{"instances": [[1e400, 3.5, 1.4, 0.2]]}', None, "not valid JSON"),
        (b'{"instances": [[5.1, 3.5, 1.4, null]]}', 0, "petal_width must be a number"),
        (b'{"instances": []}', None, "no instances"),
        (b'{"instances": [[5.1, 3.5, 1.4, 0.2]], "probabilities": "yes"}', None, "true or false"),
    ],
)
def test_bad_v1_input_is_400_naming_instance_and_reason(
    client: httpx.Client, body: bytes, instance: int | None, reason: str
) -> None:
    response = client.post(
        "/v1/models/iris:predict", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert reason.replace("\\", "") in response.json()["error"]
    assert response.json().get("instance") == instance


def test_batch_and_body_limits_are_400(client: httpx.Client) -> None:
    too_many = client.post("/v1/models/iris:predict", json={"instances": [[5.0, 3.0, 1.5, 0.2]] * 1001})
    assert too_many.status_code == 400 and "more than the limit of 1000" in too_many.json()["error"]
    huge = b'{"instances": [[5.0, 3.0, 1.5, 0.2]], "pad": "' + b"x" * (1 << 20) + b'"}'
    too_big = client.post("/v1/models/iris:predict", content=huge)
    assert too_big.status_code == 400 and "bytes" in too_big.json()["error"]


@pytest.mark.parametrize(
    "tensor",
    [
        {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
        {"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
        {"name": "x", "shape": [1, 4], "datatype": "BYTES", "data": ["a", "b", "c", "d"]},
        {"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6, "7", 8]},
    ],
)
def test_bad_v2_input_is_400(client: httpx.Client, tensor: dict) -> None:
    response = client.post("/v2/models/iris/infer", json={"inputs": [tensor]})
    assert response.status_code == 400, response.text
    assert response.json()["error"]


def test_kserve_health_metadata_and_metrics(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/models/iris/ready").json() == {"name": "iris", "ready": True}
    assert client.get("/v1/models/iris").json() == {"name": "iris", "ready": True}
    assert client.get("/v2/models/iris").json()["name"] == "iris"
    client.post("/v1/models/iris:predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
    metrics = client.get("/metrics").text
    assert 'kfchain_predictor_requests_total{code="200",protocol="v1"}' in metrics
    assert "kfchain_predictor_request_seconds_bucket" in metrics
    assert client.post("/v1/models/other:predict", json={"instances": [[1, 2, 3, 4]]}).status_code == 404


def test_kserve_repository_load_switches_to_the_current_pointer(
    predictor: PredictorProcess, client: httpx.Client
) -> None:
    publish(predictor.home, "v2", fit_model(3))
    assert (
        client.post("/v1/models/iris:predict", json={"instances": [[5, 3, 1, 0]]}).headers[
            "x-kfchain-model-version"
        ]
        == "v1"
    )
    assert client.post("/v2/repository/models/iris/load").status_code == 200
    answer = client.post("/v1/models/iris:predict", json={"instances": [[5, 3, 1, 0]]})
    assert answer.headers["x-kfchain-model-version"] == "v2"


def test_starts_not_ready_without_a_rolled_out_version(tmp_path: Path) -> None:
    with PredictorProcess(home=tmp_path) as predictor:
        assert httpx.get(f"{predictor.url}/v2/models/iris/ready").status_code == 503
        response = httpx.post(f"{predictor.url}/v1/models/iris:predict", json={"instances": [[5, 3, 1, 0]]})
        assert response.status_code == 503
        assert "no version rolled out" in response.json()["error"]
