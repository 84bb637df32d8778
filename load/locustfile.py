"""Locust users for the predictor (V1 and V2 protocols) and the frontend's ``/api/predict``.

    locust -f load/locustfile.py                      # web UI on :8089, against the local stack
    locust -f load/locustfile.py --headless -u 20 -r 20 -t 30s --csv load/results/tmp/run --html load/results/tmp/run.html
    locust -f load/locustfile.py --headless --shape autoscale --peak-users 100 --ramp-seconds 60 --hold-seconds 120
    locust -f load/locustfile.py --host http://iris.kfchain.example.com PredictorV1User   # a cluster

Every request carries flowers of known species; a request counts as a failure unless each species
is right and the model version is present (``--allow-missing-version`` for KServe's stock runtime,
which sends no version). ``--host`` (or ``KFCHAIN_PREDICTOR_URL``) points the predictor users
somewhere else; the frontend user follows ``--frontend-host`` (or ``KFCHAIN_FRONTEND_URL``).
``--shape autoscale`` (or ``KFCHAIN_LOAD_SHAPE=autoscale``) ramps up to ``--peak-users``, holds, and
ramps down (see ``load/shapes.py``); otherwise ``-u``/``-r``/``-t`` apply as usual.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Locust puts this file's folder on sys.path, not the repository root; `load.*` lives there.
_REPO_ROOT = str(Path(__file__).resolve().parents[1])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from locust import HttpUser, LoadTestShape, between, events, task  # noqa: E402

from load.checks import (  # noqa: E402
    KNOWN_FLOWERS,
    Flower,
    WrongAnswer,
    check_frontend,
    check_v1,
    check_v2,
    frontend_body,
    v1_body,
    v2_body,
)
from load.settings import LoadSettings  # noqa: E402
from load.shapes import RampHoldRamp  # noqa: E402

SETTINGS = LoadSettings.from_env()
Check = Callable[..., str]


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        return float(raw) if raw else default
    except ValueError:
        raise ValueError(
            f"{name}={raw!r} is not a number; unset it or give e.g. {name}={default:g}"
        ) from None


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--shape",
        choices=["steady", "autoscale"],
        default=os.environ.get("KFCHAIN_LOAD_SHAPE", "steady"),
        help="steady: -u/-r/-t as usual; autoscale: ramp up, hold, ramp down (env KFCHAIN_LOAD_SHAPE)",
    )
    parser.add_argument(
        "--peak-users",
        type=int,
        default=int(_env_float("KFCHAIN_LOAD_PEAK_USERS", 50)),
        help="autoscale shape: users at peak",
    )
    parser.add_argument(
        "--ramp-seconds",
        type=float,
        default=_env_float("KFCHAIN_LOAD_RAMP_SECONDS", 30),
        help="autoscale shape: each ramp",
    )
    parser.add_argument(
        "--hold-seconds",
        type=float,
        default=_env_float("KFCHAIN_LOAD_HOLD_SECONDS", 60),
        help="autoscale shape: hold at peak",
    )
    parser.add_argument(
        "--frontend-host",
        default=SETTINGS.frontend_url,
        help="base URL of the frontend (env KFCHAIN_FRONTEND_URL)",
    )
    parser.add_argument(
        "--allow-missing-version",
        action="store_true",
        default=os.environ.get("KFCHAIN_LOAD_ALLOW_MISSING_VERSION", "").lower() in ("1", "true", "yes"),
        help="accept answers without a model version (KServe's stock sklearn runtime sends none)",
    )


@events.init.add_listener
def _select_shape(environment: Any, **_: Any) -> None:
    # Locust always picks up a shape class defined in the locustfile; drop it unless asked for,
    # so the plain -u/-r/-t options work as usual.
    options = environment.parsed_options
    if options is None or getattr(options, "shape", "steady") != "autoscale":
        environment.shape_class = None


def _option(user: HttpUser, name: str, default: Any) -> Any:
    options = user.environment.parsed_options
    return getattr(options, name, default) if options is not None else default


class _CheckedUser(HttpUser):
    """Posts known flowers and fails any answer that is not 200 with the right species and a version."""

    abstract = True
    wait_time = between(0.05, 0.15)

    def post_checked(
        self, url: str, name: str, body: dict[str, Any], flowers: Sequence[Flower], check: Check
    ) -> None:
        require_version = not _option(self, "allow_missing_version", False)
        with self.client.post(url, json=body, name=name, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
                return
            try:
                answer = response.json()
            except ValueError:
                response.failure(f"the answer is not JSON: {(response.text or '')[:120]!r}")
                return
            try:
                check(answer, flowers, response.headers, require_version=require_version)
            except WrongAnswer as wrong:
                response.failure(str(wrong))
            else:
                response.success()


class PredictorV1User(_CheckedUser):
    """KServe V1 protocol: ``POST /v1/models/<model>:predict``."""

    host = SETTINGS.predictor_url
    path = f"/v1/models/{SETTINGS.model_name}:predict"

    @task(3)
    def one_flower(self) -> None:
        flower = random.choice(KNOWN_FLOWERS)
        self.post_checked(self.path, "v1 predict (1 flower)", v1_body([flower]), [flower], check_v1)

    @task(1)
    def three_flowers(self) -> None:
        self.post_checked(
            self.path, "v1 predict (3 flowers)", v1_body(KNOWN_FLOWERS), KNOWN_FLOWERS, check_v1
        )


class PredictorV2User(_CheckedUser):
    """Open Inference Protocol: ``POST /v2/models/<model>/infer``."""

    host = SETTINGS.predictor_url
    path = f"/v2/models/{SETTINGS.model_name}/infer"

    @task(3)
    def one_flower(self) -> None:
        flower = random.choice(KNOWN_FLOWERS)
        self.post_checked(self.path, "v2 infer (1 flower)", v2_body([flower]), [flower], check_v2)

    @task(1)
    def three_flowers(self) -> None:
        self.post_checked(self.path, "v2 infer (3 flowers)", v2_body(KNOWN_FLOWERS), KNOWN_FLOWERS, check_v2)


class FrontendUser(_CheckedUser):
    """The frontend's JSON API, ``POST /api/predict`` (goes through the frontend to the predictor)."""

    # --host is meant for the predictor: the frontend has its own base URL (--frontend-host).
    host = SETTINGS.frontend_url

    def url(self) -> str:
        return f"{str(_option(self, 'frontend_host', SETTINGS.frontend_url)).rstrip('/')}/api/predict"

    @task(3)
    def one_flower(self) -> None:
        flower = random.choice(KNOWN_FLOWERS)
        self.post_checked(
            self.url(), "frontend /api/predict (1 flower)", frontend_body([flower]), [flower], check_frontend
        )

    @task(1)
    def three_flowers(self) -> None:
        self.post_checked(
            self.url(),
            "frontend /api/predict (3 flowers)",
            frontend_body(KNOWN_FLOWERS),
            KNOWN_FLOWERS,
            check_frontend,
        )


class AutoscaleShape(LoadTestShape):
    """Ramp up, hold, ramp down (``--shape autoscale``); removed at start-up otherwise."""

    use_common_options = True  # -u/-r/-t keep their meaning when this shape is not selected

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options if self.runner else None
        shape = RampHoldRamp(
            peak_users=getattr(options, "peak_users", 50),
            ramp_s=getattr(options, "ramp_seconds", 30.0),
            hold_s=getattr(options, "hold_seconds", 60.0),
        )
        return shape.at(self.get_run_time())
