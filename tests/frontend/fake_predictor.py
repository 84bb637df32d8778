"""Small real HTTP predictors on loopback for the frontend tests (the real one is tested in tests/services).

``kfchain``: kfchain's V1 answer (species, probabilities, model_version and the version header);
``stock``: KServe's stock sklearn runtime (``{"predictions": [1]}`` only); ``slow``: answers after
``delay_s``; ``reject``: refuses every input with 400 like a predictor with stricter checks. All classify with a fixed rule on petal length, like a tiny iris model.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from hypercorn.asyncio import serve
from hypercorn.config import Config

SPECIES = ("setosa", "versicolor", "virginica")


def classify(row: list[float]) -> tuple[int, list[float]]:
    """Setosa below 2.5 cm petal length, versicolor below 4.9, else virginica."""
    petal_length = row[2]
    if petal_length < 2.5:
        return 0, [1.0, 0.0, 0.0]
    if petal_length < 4.9:
        return 1, [0.0, 0.8, 0.2]
    return 2, [0.0, 0.1, 0.9]


class FakePredictor:
    """ASGI app answering ``/v1/models/<name>:predict`` and ``/v1/models/<name>`` like a KServe V1 server."""

    def __init__(
        self, mode: str = "kfchain", model_name: str = "iris", version: str = "v2", delay_s: float = 0.0
    ):
        self.mode = mode
        self.model_name = model_name
        self.version = version
        self.delay_s = delay_s
        self.requests: list[Any] = []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status, answer, headers = self.answer(scope["method"], scope["path"], body)
        payload = orjson.dumps(answer)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *headers],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, Any, list[tuple[bytes, bytes]]]:
        if path == f"/v1/models/{self.model_name}" and method == "GET":
            return 200, {"name": self.model_name, "ready": True}, []
        if path == f"/kfchain/v1/models/{self.model_name}" and self.mode != "stock":
            return 200, {"model_name": self.model_name, "current": self.version, "ready": True}, []
        if path == "/v2/health/ready":
            return 200, {"ready": True}, []
        if path != f"/v1/models/{self.model_name}:predict" or method != "POST":
            return 404, {"error": f"no route {method} {path}"}, []
        request = orjson.loads(body)
        self.requests.append(request)
        rows = request.get("instances")
        if not isinstance(rows, list) or any(not isinstance(r, list) or len(r) != 4 for r in rows):
            return 400, {"error": "instances must be rows of 4 numbers"}, []
        if self.mode == "reject":
            return 400, {"error": "instance 0: petal_width 2.4 is outside the training range"}, []
        results = [classify(r) for r in rows]
        if self.mode == "stock":
            return 200, {"predictions": [c for c, _ in results]}, []
        answer = {
            "predictions": [c for c, _ in results],
            "species": [SPECIES[c] for c, _ in results],
            "model_name": self.model_name,
            "model_version": self.version,
        }
        if request.get("probabilities"):
            answer["probabilities"] = [p for _, p in results]
        return 200, answer, [(b"x-kfchain-model-version", self.version.encode())]


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Serve an ASGI app with hypercorn on a free loopback port in a thread; yield its base URL."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns (and closes) the listening socket
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 0.5
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()

    def quiet_cancellation(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        # Open keep-alive connections are cancelled at shutdown; that is expected, not an error.
        if not isinstance(context.get("exception"), asyncio.CancelledError):
            loop.default_exception_handler(context)

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(quiet_cancellation)

        async def main() -> None:
            started.set()
            await serve(app, config, shutdown_trigger=stop.wait)

        loop.run_until_complete(main())

    thread = threading.Thread(target=run, name="fake-predictor", daemon=True)
    thread.start()
    started.wait(5)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def unused_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
