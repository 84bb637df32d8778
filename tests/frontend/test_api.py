"""``/api/predict``, health probes and ``/metrics`` through Quart's test client, against real HTTP predictors."""

from __future__ import annotations

import orjson
import pytest

VERSICOLOR = [6.0, 2.7, 4.5, 1.4]
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


async def test_predicts_a_batch_with_species_probabilities_and_version(frontend_client) -> None:
    async with frontend_client() as client:
        response = await client.post("/api/predict", json={"instances": [VERSICOLOR, SETOSA]})
        body = await response.get_json()
    assert response.status_code == 200
    assert body["species"] == ["versicolor", "setosa"]
    assert body["predictions"] == [1, 0]
    assert body["probabilities"][0] == pytest.approx([0.0, 0.8, 0.2])
    assert body["model_version"] == "v2"
    assert response.headers["x-kfchain-model-version"] == "v2"


async def test_sends_the_predictor_kserve_v1_instances(frontend_client, kfchain_predictor) -> None:
    _, fake = kfchain_predictor
    async with frontend_client() as client:
        await client.post("/api/predict", json={"instances": [SETOSA]})
    assert fake.requests[-1] == {"instances": [[5.1, 3.5, 1.4, 0.2]], "probabilities": True}


async def test_stock_kserve_answer_is_mapped_to_species_without_version(
    frontend_client, stock_predictor
) -> None:
    async with frontend_client(predictor_url=stock_predictor) as client:
        response = await client.post("/api/predict", json={"instances": [VERSICOLOR, [6.7, 3.1, 5.6, 2.4]]})
        body = await response.get_json()
    assert response.status_code == 200
    assert body["species"] == ["versicolor", "virginica"]
    assert body["model_version"] is None
    assert body["probabilities"] is None


@pytest.mark.parametrize(
    ("instances", "field", "words"),
    [
        ([[6.0, 2.7, 4.5]], "instances[0]", "must have 4 numbers"),
        ([[6.0, 2.7, 4.5, 40.0]], "instances[0][3]", "between 0.05 and 5 cm"),
        ([[6.0, "wide", 4.5, 1.4]], "instances[0][1]", "must be a number"),
        ([[6.0, True, 4.5, 1.4]], "instances[0][1]", "must be a number"),
        (
            [{"sepal_length": 6.0, "sepal_width": 2.7, "petal_length": 4.5}],
            "instances[0].petal_width",
            "must be a number",
        ),
        ([{**SETOSA, "colour": "blue"}], "instances[0].colour", "unknown field"),
        ([], "instances", "non-empty list"),
        ([[5.1, 3.5, 1.4, 0.2]] * 1001, "instances", "at most 1000"),
    ],
)
async def test_bad_input_is_400_naming_the_field(frontend_client, instances, field, words) -> None:
    async with frontend_client() as client:
        response = await client.post("/api/predict", json={"instances": instances})
        body = await response.get_json()
    assert response.status_code == 400
    assert field in body["errors"]
    assert words in body["errors"][field]


async def test_body_that_is_not_json_is_400(frontend_client) -> None:
    async with frontend_client() as client:
        response = await client.post(
            "/api/predict", data=b"{instances: [1", headers={"content-type": "application/json"}
        )
        body = await response.get_json()
    assert response.status_code == 400
    assert "not valid JSON" in body["error"]


async def test_wrong_content_type_is_415_saying_what_to_send(frontend_client) -> None:
    async with frontend_client() as client:
        response = await client.post("/api/predict", form={"instances": "1,2,3,4"})
        body = await response.get_json()
    assert response.status_code == 415
    assert "Content-Type: application/json" in body["error"]


async def test_oversized_body_is_413(frontend_client) -> None:
    huge = orjson.dumps({"instances": [VERSICOLOR] * 20000})
    async with frontend_client() as client:
        response = await client.post("/api/predict", data=huge, headers={"content-type": "application/json"})
        body = await response.get_json()
    assert response.status_code == 413
    assert "fewer flowers" in body["error"]


async def test_predictor_refusal_is_passed_on_as_400(frontend_client, rejecting_predictor) -> None:
    async with frontend_client(predictor_url=rejecting_predictor) as client:
        response = await client.post("/api/predict", json={"instances": [VERSICOLOR]})
        body = await response.get_json()
    assert response.status_code == 400
    assert "outside the training range" in body["error"]


async def test_predictor_down_is_503_naming_the_url_and_counted(frontend_client, down_predictor) -> None:
    async with frontend_client(predictor_url=down_predictor) as client:
        response = await client.post("/api/predict", json={"instances": [VERSICOLOR]})
        body = await response.get_json()
        metrics = await (await client.get("/metrics")).get_data(as_text=True)
    assert response.status_code == 503
    assert down_predictor in body["error"]
    assert "KFCHAIN_PREDICTOR_URL" in body["error"]
    assert 'kfchain_frontend_upstream_errors_total{reason="unreachable"} 1.0' in metrics


async def test_slow_predictor_is_503_after_the_timeout(frontend_client, slow_predictor) -> None:
    async with frontend_client(predictor_url=slow_predictor) as client:
        response = await client.post("/api/predict", json={"instances": [VERSICOLOR]})
        body = await response.get_json()
    assert response.status_code == 503
    assert "did not answer within 0.3 s" in body["error"]
    assert body["reason"] == "timeout"


async def test_health_probes(frontend_client, down_predictor) -> None:
    # A dead predictor must not take the frontend out of service: it is what tells users about it.
    async with frontend_client(predictor_url=down_predictor) as client:
        live = await client.get("/health/liveness")
        ready = await client.get("/health/readiness")
        ready_body = await ready.get_json()
    assert live.status_code == 200
    assert ready.status_code == 200
    assert ready_body["events"] == 7


async def test_metrics_count_requests_by_route_method_status(frontend_client) -> None:
    async with frontend_client() as client:
        await client.post("/api/predict", json={"instances": [VERSICOLOR]})
        await client.post("/api/predict", json={"instances": []})
        await client.get("/events/0123456789abcdef")
        response = await client.get("/metrics")
        text = await response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'kfchain_frontend_requests_total{method="POST",route="/api/predict",status="200"} 1.0' in text
    assert 'kfchain_frontend_requests_total{method="POST",route="/api/predict",status="400"} 1.0' in text
    # Routes are labelled by rule, not by path, so chain ids do not explode the label set.
    assert 'route="/events/<chainid>",status="404"' in text
    assert 'kfchain_frontend_request_seconds_bucket{le="0.005",route="/api/predict"}' in text


async def test_unknown_api_path_is_json_404(frontend_client) -> None:
    async with frontend_client() as client:
        response = await client.get("/api/nothing")
        body = await response.get_json()
    assert response.status_code == 404
    assert "error" in body
