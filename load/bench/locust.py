"""Benchmark: Locust steady-state results against a local kfchain predictor.

Starts ``python -m services.predictor`` on a free port with a freshly fitted model (its own
temporary ``KFCHAIN_HOME``), then runs ``load/locustfile.py`` headless in a child process:
``PredictorV1User`` and ``PredictorV2User``, 20 users in total (50-150 ms think time each),
all spawned at once, for 20 s. Every answer is checked (species of known flowers, model version),
so the failure count is a correctness result, not only an availability one.

Reported: requests/s, p50/p99 of one-flower requests per protocol (V2 against V1 as baseline), and
failed requests (target 0). ``--url`` measures a predictor that is already running instead.
Run alone: ``python -m load.bench.locust [--seconds 20] [--users 20] [--url http://127.0.0.1:8080]``.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from load.bench import BenchRow, Progress
from load.locustrun import LocustRun, run_locust
from load.settings import LoadSettings

AREA = "locust"
V1_ONE = "v1 predict (1 flower)"
V2_ONE = "v2 infer (1 flower)"


def _write_model(home: Path, model_name: str = "iris", version: str = "v1") -> None:
    """Fit kfchain's model shape (StandardScaler + KNN) on the bundled iris data into the serving store."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from services.predictor.store import ServingStore

    store = ServingStore(home / "serving")
    path = store.model_path(model_name, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    features, labels = load_iris(return_X_y=True)
    model = Pipeline([("scaler", StandardScaler()), ("knn", KNeighborsClassifier(n_neighbors=9))]).fit(
        features, labels
    )
    joblib.dump(model, path)
    store.write_pointer(model_name, version, None)


@contextlib.contextmanager
def local_predictor(home: Path, progress: Progress) -> Iterator[str]:
    """A kfchain predictor child process serving a fresh model; yields its base URL."""
    import httpx

    from services.predictor.launcher import PredictorProcess

    _write_model(home)
    with PredictorProcess(home=home) as predictor:
        httpx.post(f"{predictor.url}/v2/repository/models/iris/load", timeout=30).raise_for_status()
        progress(
            f"predictor up at {predictor.url} (pid {predictor.process.pid if predictor.process else '?'})"
        )
        yield predictor.url


def rows_from(run: LocustRun, users: int, seconds: int) -> list[BenchRow]:
    """Benchmark rows from one Locust run."""
    setup = f"{users} users, {seconds} s"
    rows = [BenchRow(AREA, f"V1+V2 users, all requests ({setup})", run.aggregated.requests_per_s, "req/s")]
    v1, v2 = run.by_name.get(V1_ONE), run.by_name.get(V2_ONE)
    if v1 is not None:
        rows.append(BenchRow(AREA, "V1 one flower p50", v1.p50_ms, "ms"))
        rows.append(BenchRow(AREA, "V1 one flower p99", v1.p99_ms, "ms"))
    if v2 is not None:
        rows.append(BenchRow(AREA, "V2 one flower p50", v2.p50_ms, "ms", "V1 p50", v1.p50_ms if v1 else None))
        rows.append(BenchRow(AREA, "V2 one flower p99", v2.p99_ms, "ms", "V1 p99", v1.p99_ms if v1 else None))
    failures = run.aggregated.failures
    rows.append(
        BenchRow(
            AREA,
            f"failed answers (wrong species, no version, non-200) of {run.aggregated.requests}",
            failures,
            "requests",
            target="0",
            met=failures == 0 and run.aggregated.requests > 0,
        )
    )
    return rows


def run(
    progress: Progress = print, seconds: int = 20, users: int = 20, url: str | None = None
) -> list[BenchRow]:
    """Run Locust against a fresh local predictor (or ``url``) and report its steady-state numbers."""
    with tempfile.TemporaryDirectory(prefix="kfchain-bench-locust-") as tmp:
        home = Path(tmp)
        with contextlib.ExitStack() as stack:
            base_url = url or stack.enter_context(local_predictor(home, progress))
            settings = LoadSettings(predictor_url=base_url.rstrip("/"), output_dir=home)
            progress(
                f"locust: {users} users (PredictorV1User, PredictorV2User) for {seconds} s against {base_url}"
            )
            result = run_locust(
                settings,
                home / "locust",
                users=users,
                spawn_rate=users,
                run_time_s=seconds,
                user_classes=("PredictorV1User", "PredictorV2User"),
            )
        progress(f"all: {result.aggregated.summary_line()}")
        for failure, count in sorted(result.failures.items(), key=lambda item: -item[1])[:3]:
            progress(f"failure x{count}: {failure}")
        return rows_from(result, users, seconds)


def main() -> None:
    from load.bench.table import print_rows

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--url", help="measure this running predictor instead of starting one")
    args = parser.parse_args()
    print_rows(run(seconds=args.seconds, users=args.users, url=args.url))


if __name__ == "__main__":
    main()
