"""wait_until_up: the one "poll a child's URL until it is ready" of the tests and benchmarks."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from services.predictor.launcher import free_port, wait_until_up


@contextmanager
def answering(status: int) -> Iterator[str]:
    """A loopback HTTP server answering every GET with ``status``; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/health"
    finally:
        server.shutdown()
        server.server_close()


def test_any_answer_is_up_unless_a_status_is_asked_for() -> None:
    with answering(503) as url:
        wait_until_up(url, 5)
        with pytest.raises(TimeoutError, match=r"did not answer HTTP 200 within 0.3 s \(last: HTTP 503\)"):
            wait_until_up(url, 0.3, ready_status=200)
    with answering(200) as url:
        wait_until_up(url, 5, ready_status=200)


def test_a_child_that_exits_is_named_with_its_exit_code_and_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    with log.open("wb") as out:
        child = subprocess.Popen(
            [sys.executable, "-c", "print('boom: bad setting'); raise SystemExit(3)"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    child.wait(10)
    url = f"http://127.0.0.1:{free_port()}/health"
    with pytest.raises(RuntimeError) as raised:
        wait_until_up(url, 30, child, log, ready_status=200)
    message = str(raised.value)
    assert "exited with code 3" in message and url in message and "-c" in message
    assert message.endswith("boom: bad setting\n") and str(log) in message


def test_a_timeout_names_the_url_and_the_last_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/health"
    expected = rf"{url} did not answer anything within 0.2 s \(last: ConnectError"
    with pytest.raises(TimeoutError, match=expected):
        wait_until_up(url, 0.2)
