"""Benchmark: kfchain's predictor against the stock KServe path and a constant ASGI app (the ceiling).

All three servers run as child processes on loopback, one at a time, and are driven by the same
``hey -c 20`` command with the same one-row V1 body:

- ``stock``: a ``kserve.Model`` whose ``predict`` calls the scikit-learn pipeline, on
  ``kserve.ModelServer`` with its defaults (only the ports are chosen free);
- ``kfchain``: ``python -m services.predictor`` (fast path, row cache on), then again with
  ``KFCHAIN_PREDICTOR_CACHE_SIZE=0`` so every request computes the KNN;
- ``ceiling``: a bare ASGI app on the same uvicorn/uvloop/httptools stack returning a constant.

Reported: requests/s, p50, p99, resident memory. Target: kfchain >= 5x stock requests/s with
p99 <= 15 ms. Run alone with ``python -m load.bench.predictor`` (``--seconds N`` to change the
duration); the prediction-equality requirement is a test (tests/services/test_predictor_fastpath.py).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from load.bench import BenchRow, Progress
from load.hey import run_hey
from services.predictor.launcher import PredictorProcess, free_port, wait_until_up

BODY = '{"instances": [[6.1, 2.8, 4.7, 1.2]]}'
CONCURRENCY = 20


@dataclass(frozen=True)
class ServerResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    rss_mib: float


def write_model(path: Path) -> None:
    """Fit the kfchain model shape (StandardScaler + KNN k=9) on the bundled iris data."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_iris(return_X_y=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(
        Pipeline([("scaler", StandardScaler()), ("knn", KNeighborsClassifier(n_neighbors=9))]).fit(X, y), path
    )


def hey(url: str, seconds: float, concurrency: int = CONCURRENCY) -> tuple[float, float, float, int]:
    """Drive ``url`` with hey; return (requests/s, p50 ms, p99 ms, non-2xx count)."""
    result = run_hey(url, body=BODY.encode(), duration=f"{seconds:g}s", concurrency=concurrency)
    return (
        result.requests_per_s,
        result.latency_ms(50),
        result.latency_ms(99),
        result.requests - result.ok_requests,
    )


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _bench_child(args: list[str], url: str, ready_url: str, seconds: float, log: Path) -> ServerResult:
    with log.open("wb") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "load.bench.predictor", *args], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_until_up(ready_url, 60, child, log)
        hey(url, 1)  # warm-up
        rps, p50, p99, bad = hey(url, seconds)
        return ServerResult(rps, p50, p99, bad, _rss_mib(child.pid))
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()


def _bench_kfchain(home: Path, seconds: float, env: dict[str, str]) -> ServerResult:
    import httpx

    with PredictorProcess(home=home, env=env) as predictor:
        httpx.post(f"{predictor.url}/v2/repository/models/iris/load", timeout=30).raise_for_status()
        url = f"{predictor.url}/v1/models/iris:predict"
        hey(url, 1)
        rps, p50, p99, bad = hey(url, seconds)
        return ServerResult(rps, p50, p99, bad, predictor.rss_mib())


def run(progress: Progress = print, seconds: float = 10.0) -> list[BenchRow]:
    """Measure the three servers one after the other and compare them."""
    from services.predictor.store import ServingStore

    with tempfile.TemporaryDirectory(prefix="kfchain-bench-") as tmp:
        home = Path(tmp)
        store = ServingStore(home / "serving")
        model = store.model_path("iris", "v1")
        write_model(model)
        store.write_pointer("iris", "v1", None)

        port = free_port()
        progress(f"stock KServe (kserve.Model + sklearn predict, ModelServer defaults) on :{port}")
        stock = _bench_child(
            ["serve-stock", str(port), str(model)],
            f"http://127.0.0.1:{port}/v1/models/iris:predict",
            f"http://127.0.0.1:{port}/v1/models/iris",
            seconds,
            home / "stock.log",
        )
        port = free_port()
        progress(f"constant ASGI app (ceiling) on :{port}")
        ceiling = _bench_child(
            ["serve-constant", str(port)],
            f"http://127.0.0.1:{port}/v1/models/iris:predict",
            f"http://127.0.0.1:{port}/",
            seconds,
            home / "ceiling.log",
        )
        progress("kfchain predictor (fast path, row cache on)")
        fast = _bench_kfchain(home, seconds, {})
        progress("kfchain predictor (fast path, row cache off: every request runs the KNN)")
        nocache = _bench_kfchain(home, seconds, {"KFCHAIN_PREDICTOR_CACHE_SIZE": "0"})

    rows: list[BenchRow] = []
    for label, result in (
        ("stock", stock),
        ("ceiling", ceiling),
        ("kfchain", fast),
        ("kfchain no-cache", nocache),
    ):
        progress(
            f"{label:17s} {result.requests_per_s:8.0f} req/s  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms"
            f"  RSS {result.rss_mib:6.1f} MiB  non-2xx {result.non_2xx}"
        )
    for label, result in (("kfchain", fast), ("kfchain no-cache", nocache)):
        met = (
            result.requests_per_s >= 5 * stock.requests_per_s and result.p99_ms <= 15 and result.non_2xx == 0
        )
        rows.append(
            BenchRow(
                "predictor",
                f"{label} req/s (hey -c {CONCURRENCY})",
                result.requests_per_s,
                "req/s",
                "stock KServe",
                stock.requests_per_s,
                ">= 5x stock, p99 <= 15 ms",
                met,
            )
        )
        rows.append(
            BenchRow(
                "predictor",
                f"{label} p99",
                result.p99_ms,
                "ms",
                "stock KServe p99",
                stock.p99_ms,
                "<= 15 ms",
                result.p99_ms <= 15,
            )
        )
        rows.append(
            BenchRow("predictor", f"{label} p50", result.p50_ms, "ms", "stock KServe p50", stock.p50_ms)
        )
        rows.append(
            BenchRow("predictor", f"{label} RSS", result.rss_mib, "MiB", "stock KServe RSS", stock.rss_mib)
        )
    rows.append(
        BenchRow(
            "predictor",
            "kfchain req/s vs constant ASGI ceiling",
            fast.requests_per_s,
            "req/s",
            "constant ASGI app",
            ceiling.requests_per_s,
        )
    )
    return rows


# -- the two comparison servers, run as `python -m load.bench.predictor serve-stock|serve-constant` --
def serve_stock(port: int, model_path: str) -> None:
    """The stock KServe path: kserve.Model calling the sklearn model, ModelServer defaults."""
    import joblib
    import numpy as np
    from kserve import Model, ModelServer

    class SklearnModel(Model):
        def __init__(self, name: str):
            super().__init__(name)
            self.model: Any = None

        def load(self) -> bool:
            self.model = joblib.load(model_path)
            self.ready = True
            return True

        def predict(self, payload, headers=None):
            return {"predictions": self.model.predict(np.asarray(payload["instances"])).tolist()}

    model = SklearnModel("iris")
    model.load()
    ModelServer(http_port=port, grpc_port=free_port()).start([model])


def serve_constant(port: int) -> None:
    """The ceiling: an ASGI app that answers every request with the same bytes, same HTTP stack."""
    import asyncio

    import uvicorn
    import uvloop

    body = b'{"predictions":[1],"species":["versicolor"],"model_name":"iris","model_version":"v1"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, access_log=False, log_level="warning", lifespan="off"
    )
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(uvicorn.Server(config).serve())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    stock = sub.add_parser("serve-stock")
    stock.add_argument("port", type=int)
    stock.add_argument("model")
    constant = sub.add_parser("serve-constant")
    constant.add_argument("port", type=int)
    parser.add_argument("--seconds", type=float, default=10.0)
    args, _ = parser.parse_known_args()
    if args.command == "serve-stock":
        serve_stock(args.port, args.model)
    elif args.command == "serve-constant":
        serve_constant(args.port)
    else:
        for row in run(seconds=args.seconds):
            ratio = f"  ({row.ratio:.1f}x {row.baseline_name})" if row.ratio is not None else ""
            verdict = "" if row.met is None else ("  target met" if row.met else "  TARGET MISSED")
            print(f"{row.name:45s} {row.value:10.2f} {row.unit}{ratio}{verdict}")


if __name__ == "__main__":
    main()
