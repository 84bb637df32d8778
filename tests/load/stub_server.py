"""A small real HTTP server on a free loopback port that answers like the predictor and the frontend.

It classifies with a fixed rule (petal length) so the answers are right for the known flowers;
``wrong_species=True`` answers ``setosa`` to everything, ``with_version=False`` leaves out the model
version, and ``status`` forces an HTTP status. Every request is counted.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SPECIES = ("setosa", "versicolor", "virginica")


def classify(row: list[float]) -> int:
    petal_length = row[2]
    return 0 if petal_length < 2.5 else 1 if petal_length < 5.0 else 2


@dataclass
class StubBehaviour:
    wrong_species: bool = False
    with_version: bool = True
    status: int = 200
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class StubServer:
    url: str
    behaviour: StubBehaviour


def _answer(path: str, body: Any, behaviour: StubBehaviour) -> dict[str, Any]:
    if path.startswith("/v2/"):
        tensor = body["inputs"][0]
        data = tensor["data"]
        rows = [data[i : i + 4] for i in range(0, len(data), 4)]
    else:
        rows = body["instances"]
    labels = [0 if behaviour.wrong_species else classify(row) for row in rows]
    species = [SPECIES[label] for label in labels]
    version = {"model_version": "v7"} if behaviour.with_version else {}
    if path.startswith("/v2/"):
        return {
            "model_name": "iris",
            **version,
            "outputs": [
                {"name": "predict", "shape": [len(rows)], "datatype": "INT64", "data": labels},
                {"name": "species", "shape": [len(rows)], "datatype": "BYTES", "data": species},
            ],
        }
    # V1 and the frontend's /api/predict answer in the same kfchain shape.
    return {"predictions": labels, "species": species, "probabilities": None, "model_name": "iris", **version}


def _handler(behaviour: StubBehaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 1 << 16  # headers and body leave in one segment (no Nagle/delayed-ACK 40 ms stall)

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            with behaviour.lock:
                behaviour.requests += 1
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            status = behaviour.status
            payload = _answer(self.path, body, behaviour) if status == 200 else {"error": "forced"}
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def stub_server(behaviour: StubBehaviour | None = None) -> Iterator[StubServer]:
    """Serve on 127.0.0.1 at a free port until the block ends."""
    behaviour = behaviour or StubBehaviour()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(behaviour))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield StubServer(url=f"http://127.0.0.1:{server.server_address[1]}", behaviour=behaviour)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
