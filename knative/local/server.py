"""The dispatcher's HTTP endpoint: ``/metrics`` (Prometheus), ``/health/liveness``, ``/health/readiness``."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from knative.local.dispatcher import Dispatcher
from knative.local.metrics import CONTENT_TYPE


class DispatcherServer:
    """Serves the dispatcher's metrics and health on ``host:port`` (port 0: a free one) in a thread."""

    def __init__(self, dispatcher: Dispatcher, host: str = "127.0.0.1", port: int = 0) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/metrics":
                    self._send(200, dispatcher.metrics.render(), CONTENT_TYPE)
                elif self.path == "/health/liveness":
                    failed = dispatcher.failed()
                    self._json(503 if failed else 200, {"alive": not failed, "failed": failed})
                elif self.path == "/health/readiness":
                    waiting = dispatcher.not_ready()
                    self._json(503 if waiting else 200, {"ready": not waiting, "waiting_for": waiting})
                else:
                    self._json(404, {"error": f"no route {self.path}; try /metrics or /health/readiness"})

            def _json(self, status: int, body: dict) -> None:
                self._send(status, json.dumps(body).encode(), "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> DispatcherServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
