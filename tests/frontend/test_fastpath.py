"""The served app (``frontend.asgi.build``): ``/api/predict`` on the ASGI fast path over real HTTP,
answering exactly like the Quart route, with the same limits, headers and metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from frontend import Settings
from frontend.asgi import build
from tests.frontend.fake_predictor import serve_in_thread

VERSICOLOR = [6.0, 2.7, 4.5, 1.4]


@pytest.fixture
def served(tmp_path: Path, kfchain_predictor) -> Iterator[str]:
    settings = Settings(events_db=tmp_path / "events.db", predictor_url=kfchain_predictor[0], secret_key="s")
    with serve_in_thread(build(settings)) as url:
        yield url


@pytest.fixture
def served_without_predictor(tmp_path: Path, down_predictor: str) -> Iterator[str]:
    settings = Settings(
        events_db=tmp_path / "events.db", predictor_url=down_predictor, predictor_timeout_s=0.5
    )
    with serve_in_thread(build(settings)) as url:
        yield url


def test_predicts_with_version_header_and_security_headers(served: str) -> None:
    response = httpx.post(f"{served}/api/predict", json={"instances": [VERSICOLOR]})
    assert response.status_code == 200
    assert response.json()["species"] == ["versicolor"]
    assert response.headers["x-kfchain-model-version"] == "v2"
    assert "script-src 'self'" in response.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("content", "content_type", "status", "words"),
    [
        (b'{"instances": [[6.0, 2.7, 4.5]]}', "application/json", 400, "must have 4 numbers"),
        (b"not json", "application/json; charset=utf-8", 400, "not valid JSON"),
        (b'{"instances": [[6.0, 2.7, 4.5, 1.4]]}', "text/plain", 415, "Content-Type: application/json"),
        (orjson.dumps({"instances": [VERSICOLOR] * 20000}), "application/json", 413, "fewer flowers"),
    ],
)
def test_bad_requests_get_the_same_answers_as_the_quart_route(
    served, content, content_type, status, words
) -> None:
    response = httpx.post(f"{served}/api/predict", content=content, headers={"content-type": content_type})
    assert response.status_code == status
    assert words in response.text


def test_predictor_down_is_503_and_counted_in_metrics(served_without_predictor: str) -> None:
    response = httpx.post(f"{served_without_predictor}/api/predict", json={"instances": [VERSICOLOR]})
    metrics = httpx.get(f"{served_without_predictor}/metrics").text
    assert response.status_code == 503
    assert "cannot reach the predictor" in response.json()["error"]
    assert 'kfchain_frontend_requests_total{method="POST",route="/api/predict",status="503"} 1.0' in metrics
    assert 'kfchain_frontend_upstream_errors_total{reason="unreachable"} 1.0' in metrics


def test_other_routes_go_to_the_quart_app(served: str) -> None:
    assert httpx.get(f"{served}/health/readiness").json()["status"] == "ready"
    assert "Which iris is it?" in httpx.get(f"{served}/predict").text
