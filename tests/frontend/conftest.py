"""Fixtures of the frontend tests: real fake predictors on loopback, a filled event store, app builders."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from quart.typing import TestClientProtocol

from frontend import Settings, create_app
from tests.frontend.chains import FilledStore, fill_store
from tests.frontend.fake_predictor import FakePredictor, serve_in_thread, unused_url


@pytest.fixture(scope="session")
def kfchain_predictor() -> Iterator[tuple[str, FakePredictor]]:
    """A predictor answering in kfchain's V1 format (species, probabilities, version v2)."""
    app = FakePredictor("kfchain", version="v2")
    with serve_in_thread(app) as url:
        yield url, app


@pytest.fixture(scope="session")
def stock_predictor() -> Iterator[str]:
    """A predictor answering like KServe's stock sklearn runtime: ``{"predictions": [1]}``."""
    with serve_in_thread(FakePredictor("stock")) as url:
        yield url


@pytest.fixture(scope="session")
def slow_predictor() -> Iterator[str]:
    """A predictor that takes 2 s to answer (the tests give the frontend 0.3 s)."""
    with serve_in_thread(FakePredictor("kfchain", delay_s=2.0)) as url:
        yield url


@pytest.fixture(scope="session")
def rejecting_predictor() -> Iterator[str]:
    """A predictor that refuses every input with 400 and an error message."""
    with serve_in_thread(FakePredictor("reject")) as url:
        yield url


@pytest.fixture
def down_predictor() -> str:
    """A URL where nothing listens."""
    return unused_url()


@pytest.fixture
def filled_store(tmp_path: Path) -> FilledStore:
    return fill_store(tmp_path / "events.db")


ClientFactory = Callable[..., Any]


@pytest.fixture
def frontend_client(tmp_path: Path, filled_store: FilledStore, kfchain_predictor) -> ClientFactory:
    """``async with frontend_client(predictor_url=..., events_db=...) as client`` -> a test client of a served app."""

    @asynccontextmanager
    async def build(**overrides: Any) -> AsyncIterator[TestClientProtocol]:
        values: dict[str, Any] = {
            "predictor_url": kfchain_predictor[0],
            "events_db": filled_store.path,
            "predictor_timeout_s": 0.3,
            "secret_key": "test-secret",
            "sse_poll_s": 0.05,
        }
        values.update(overrides)
        app = create_app(Settings(**values))
        async with app.test_app() as test_app:
            yield test_app.test_client()

    return build
