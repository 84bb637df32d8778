"""The running stack for the browser test and the benchmark: the real frontend process (``python -m
frontend``) in front of the real predictor (``python -m services.predictor`` serving a freshly fitted
iris model) when that package is present, else in front of the fake predictor of these tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from services.predictor.launcher import free_port, stop_process, wait_until_up

ROOT = Path(__file__).resolve().parents[2]


def real_predictor_available() -> bool:
    try:
        import services.predictor.store  # noqa: F401
    except ImportError:
        return False
    return True


def write_iris_model(path: Path, k: int = 5) -> None:
    """The kfchain model shape (StandardScaler + KNN) fitted on the bundled iris data, as model.joblib."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    features, target = load_iris(return_X_y=True)
    model = Pipeline([("scaler", StandardScaler()), ("knn", KNeighborsClassifier(n_neighbors=k))])
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model.fit(features, target), path)


@dataclass(frozen=True)
class Stack:
    frontend_url: str
    predictor_url: str
    predictor_kind: str  # "real" (services.predictor) or "fake"
    home: Path


@contextmanager
def real_predictor(home: Path, version: str) -> Iterator[str]:
    """``python -m services.predictor`` serving ``version`` of a freshly fitted iris model."""
    from services.predictor.launcher import PredictorProcess
    from services.predictor.store import ServingStore

    store = ServingStore(home / "serving")
    write_iris_model(store.model_path("iris", version))
    store.write_pointer("iris", version, None)
    with PredictorProcess(home=home) as predictor:
        wait_until_ready = f"{predictor.url}/v1/models/iris"
        deadline = time.monotonic() + 30
        while httpx.get(wait_until_ready, timeout=2).json().get("ready") is not True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the predictor at {predictor.url} never became ready")
            time.sleep(0.2)
        yield predictor.url


@contextmanager
def frontend_process(home: Path, predictor_url: str, workers: int = 1) -> Iterator[str]:
    """``python -m frontend`` on a free port, the way ``make up`` starts it (``PORT`` set)."""
    port = free_port()
    log_path = home / "logs" / f"frontend-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PORT": str(port),
        "KFCHAIN_HOME": str(home),
        "KFCHAIN_PREDICTOR_URL": predictor_url,
        "KFCHAIN_FRONTEND_WORKERS": str(workers),
        "KFCHAIN_FRONTEND_SSE_POLL": "0.2",
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "frontend"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/health/readiness", 60, process, log_path, ready_status=200)
        yield url
    finally:
        stop_process(process)


@contextmanager
def running_stack(home: Path, version: str = "v2", prefer_real: bool = True) -> Iterator[Stack]:
    """Predictor + frontend processes sharing ``home`` (fill ``home/events.db`` before or after)."""
    from tests.frontend.fake_predictor import FakePredictor, serve_in_thread

    with ExitStack() as stack:
        if prefer_real and real_predictor_available():
            predictor_url, kind = stack.enter_context(real_predictor(home, version)), "real"
        else:
            predictor_url, kind = stack.enter_context(serve_in_thread(FakePredictor(version=version))), "fake"
        frontend_url = stack.enter_context(frontend_process(home, predictor_url))
        yield Stack(frontend_url, predictor_url, kind, home)
