"""A real HTTP CloudEvent subscriber on loopback, for tests and benchmarks of the dispatcher.

``StubSubscriber(respond)`` records every request (arrival time, headers, decoded event) and answers
with whatever ``respond(request)`` returns: a status, or (status, headers, body). It stands in for a
Knative Service the way a test needs it: 200, 400, 500 forever, slow, down at first, replying.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from events.codec import from_http, to_http
from events.errors import InvalidEventError
from events.event import Event


@dataclass(frozen=True)
class StubRequest:
    arrived: float  # time.perf_counter() when the request line was read
    path: str
    headers: dict[str, str]
    body: bytes
    event: Event | None  # None when the body is not a valid CloudEvent


Reply = int | tuple[int, dict[str, str], bytes]
Responder = Callable[[StubRequest], Reply]


def reply_with(event: Event, *, structured: bool = False) -> tuple[int, dict[str, str], bytes]:
    """A 200 carrying ``event`` as the reply (Knative's reply contract)."""
    headers, body = to_http(event, structured=structured)
    return 200, headers, body


class StubSubscriber:
    """Threaded HTTP server on 127.0.0.1 (a free port unless given) recording CloudEvents it receives."""

    def __init__(self, respond: Responder | None = None, port: int = 0) -> None:
        self.respond: Responder = respond or (lambda _request: 200)
        self.requests: list[StubRequest] = []
        self._changed = threading.Condition()
        self.closing = False
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                arrived = time.perf_counter()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    event: Event | None = from_http(headers, body)
                except InvalidEventError:
                    event = None
                request = StubRequest(arrived, self.path, headers, body, event)
                with stub._changed:
                    stub.requests.append(request)
                    stub._changed.notify_all()
                try:
                    answer = stub.respond(request)
                except Exception as exc:  # a broken responder is a 500, as a broken service would be
                    answer = (500, {"content-type": "text/plain"}, f"stub responder failed: {exc}".encode())
                status, reply_headers, reply_body = (answer, {}, b"") if isinstance(answer, int) else answer
                if stub.closing:
                    return
                self.send_response(status)
                for name, value in reply_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply_body)))
                self.end_headers()
                with contextlib.suppress(
                    BrokenPipeError, ConnectionResetError
                ):  # the client gave up (timeout)
                    self.wfile.write(reply_body)

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def events(self) -> list[Event]:
        """The valid CloudEvents received so far, in arrival order."""
        with self._changed:
            return [r.event for r in self.requests if r.event is not None]

    def wait_for(self, count: int, timeout_s: float = 15.0) -> list[StubRequest]:
        """Block until ``count`` requests arrived; return them (fewer if the timeout passed)."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self.requests) < count and time.monotonic() < deadline:
                self._changed.wait(max(0.0, deadline - time.monotonic()))
            return list(self.requests)

    def start(self) -> StubSubscriber:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.closing = True
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> StubSubscriber:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
