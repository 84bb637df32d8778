"""Benchmark: ``/api/predict`` through the frontend next to the predictor's own V1 endpoint, same run.

Both run as child processes on loopback: ``python -m services.predictor`` serving a freshly fitted
iris model (StandardScaler + KNN k=5), and ``python -m frontend`` (uvicorn, uvloop, httptools with
one send per response, one worker unless ``--workers``) in front of it. ``hey`` drives each with the same one-row body:

- latency, ``hey -c 1``: what one request pays; the frontend's added p50 is frontend p50 minus
  predictor p50. Target: < 2 ms.
- throughput, ``hey -c 20``: requests/s and p99. Target: the frontend keeps >= half of the
  predictor's requests/s. On a 2-core laptop hey, the predictor and the frontend share the CPUs,
  so the frontend's number includes the predictor work it waits for. The frontend's CPU per
  request is mostly syscalls (read from hey, write to the predictor, read its answer, write to
  hey); the upstream client (frontend.upstream) and the response writes (frontend.http_protocol)
  are built to keep it at that.

Run alone with ``python -m load.bench.frontend`` (``--seconds N``, ``--workers N``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from events.broker import free_port
from load.bench import BenchRow, Progress
from load.hey import HeyResult, run_hey

ROOT = Path(__file__).resolve().parents[2]
BODY = '{"instances": [[6.0, 2.7, 4.5, 1.4]]}'
CONCURRENCY = 20


def hey(url: str, seconds: float, concurrency: int) -> HeyResult:
    """``hey -z <seconds>s -c <concurrency>`` POSTing the one-row body."""
    return run_hey(url, body=BODY.encode(), duration=f"{seconds:g}s", concurrency=concurrency)


def _write_model(home: Path, version: str) -> None:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from services.predictor.store import ServingStore

    store = ServingStore(home / "serving")
    path = store.model_path("iris", version)
    path.parent.mkdir(parents=True, exist_ok=True)
    features, target = load_iris(return_X_y=True)
    joblib.dump(
        Pipeline([("scaler", StandardScaler()), ("knn", KNeighborsClassifier(5))]).fit(features, target), path
    )
    store.write_pointer("iris", version, None)


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, *args],
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def run(progress: Progress = print, seconds: float = 10.0, workers: int = 1) -> list[BenchRow]:
    """Measure the predictor directly and ``/api/predict`` through the frontend, one after the other."""
    try:
        from services.predictor.launcher import stop_process, wait_until_up
    except ImportError as exc:
        raise RuntimeError("services.predictor is needed as the baseline of this benchmark") from exc

    with tempfile.TemporaryDirectory(prefix="kfchain-bench-frontend-") as tmp:
        home = Path(tmp)
        _write_model(home, "v1")
        predictor_port, frontend_port = free_port(), free_port()
        common = {"KFCHAIN_HOME": str(home), "KFCHAIN_MODEL_NAME": "iris"}
        predictor = _start(
            ["-m", "services.predictor"],
            {**common, "KFCHAIN_PREDICTOR_PORT": str(predictor_port)},
            home / "predictor.log",
        )
        frontend = None
        try:
            predictor_url = f"http://127.0.0.1:{predictor_port}"
            wait_until_up(
                f"{predictor_url}/v2/health/ready", 60, predictor, home / "predictor.log", ready_status=200
            )
            frontend = _start(
                ["-m", "frontend"],
                {
                    **common,
                    "PORT": str(frontend_port),
                    "KFCHAIN_PREDICTOR_URL": predictor_url,
                    "KFCHAIN_FRONTEND_WORKERS": str(workers),
                },
                home / "frontend.log",
            )
            frontend_url = f"http://127.0.0.1:{frontend_port}"
            wait_until_up(
                f"{frontend_url}/health/readiness", 60, frontend, home / "frontend.log", ready_status=200
            )
            direct = f"{predictor_url}/v1/models/iris:predict"
            through = f"{frontend_url}/api/predict"
            for url in (direct, through):
                hey(url, 1, CONCURRENCY)  # warm-up: connection pools, caches
            progress(f"latency (hey -c 1, {seconds:g} s each)")
            lat_direct = hey(direct, seconds, 1)
            lat_through = hey(through, seconds, 1)
            progress(f"throughput (hey -c {CONCURRENCY}, {seconds:g} s each)")
            tp_direct = hey(direct, seconds, CONCURRENCY)
            tp_through = hey(through, seconds, CONCURRENCY)
        finally:
            if frontend is not None:
                stop_process(frontend)
            stop_process(predictor)

    for label, result in (
        ("predictor  c=1 ", lat_direct),
        ("frontend   c=1 ", lat_through),
        (f"predictor  c={CONCURRENCY}", tp_direct),
        (f"frontend   c={CONCURRENCY}", tp_through),
    ):
        progress(
            f"{label} {result.requests_per_s:8.0f} req/s  p50 {result.latency_ms(50):6.2f} ms  p99 {result.latency_ms(99):6.2f} ms"
            f"  failures {result.requests - result.ok_requests}"
        )
    added_p50 = lat_through.latency_ms(50) - lat_direct.latency_ms(50)
    kept = tp_through.requests_per_s / tp_direct.requests_per_s if tp_direct.requests_per_s else 0.0
    clean = lat_through.ok_ratio == 1 and tp_through.ok_ratio == 1
    return [
        BenchRow(
            "frontend",
            "/api/predict added p50 (hey -c 1)",
            added_p50,
            "ms",
            "predictor p50",
            lat_direct.latency_ms(50),
            "< 2 ms added",
            added_p50 < 2 and clean,
        ),
        BenchRow(
            "frontend",
            f"/api/predict req/s (hey -c {CONCURRENCY}, {workers} worker)",
            tp_through.requests_per_s,
            "req/s",
            "predictor direct",
            tp_direct.requests_per_s,
            ">= 0.5x predictor",
            kept >= 0.5 and clean,
        ),
        BenchRow(
            "frontend",
            f"/api/predict p99 (hey -c {CONCURRENCY})",
            tp_through.latency_ms(99),
            "ms",
            "predictor direct p99",
            tp_direct.latency_ms(99),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each hey run")
    parser.add_argument("--workers", type=int, default=1, help="frontend worker processes")
    args = parser.parse_args()
    for row in run(print, args.seconds, args.workers):
        ratio = f"  ({row.ratio:.2f}x {row.baseline_name})" if row.ratio is not None else ""
        verdict = "" if row.met is None else ("  met" if row.met else "  NOT met")
        print(f"{row.name}: {row.value:.2f} {row.unit}{ratio}  target {row.target or '-'}{verdict}")


if __name__ == "__main__":
    main()
