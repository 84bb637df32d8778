"""load.hey against a real hey binary and a real HTTP server on loopback (bounded request counts)."""

from __future__ import annotations

import shutil
import socket

import pytest

from load.hey import HeyError, parse_hey_summary, run_hey
from tests.load.stub_server import StubBehaviour, stub_server

pytestmark = pytest.mark.skipif(
    shutil.which("hey") is None, reason="hey is not installed (apt-get install hey)"
)
BODY = b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}'


def test_summary_of_a_run_against_a_live_server() -> None:
    with stub_server() as server:
        result = run_hey(
            f"{server.url}/v1/models/iris:predict", body=BODY, duration=None, requests=300, concurrency=3
        )  # hey sends n/c per worker

    assert result.status_codes == {200: 300} and server.behaviour.requests == 300
    assert result.ok_ratio == 1.0 and result.requests_per_s > 0
    assert sorted(result.percentiles_s) == [10, 25, 50, 75, 90, 95, 99]
    assert 0 < result.latency_ms(50) <= result.latency_ms(99) < 5000
    assert "200: 300" in result.summary_line()


def test_server_errors_and_refused_connections_are_not_counted_as_ok() -> None:
    with stub_server(StubBehaviour(status=503)) as server:
        unavailable = run_hey(
            server.url + "/v1/models/iris:predict", body=BODY, duration=None, requests=10, concurrency=2
        )
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    refused = run_hey(f"http://127.0.0.1:{closed_port}/", body=BODY, duration=None, requests=4, concurrency=2)

    assert unavailable.status_codes == {503: 10} and unavailable.ok_requests == 0
    assert refused.requests == 4 and refused.ok_ratio == 0.0
    assert any("connection refused" in message for message in refused.errors)
    assert refused.requests_per_s > 0  # hey's own rate counts failures: why ok_per_s exists
    assert refused.ok_per_s == 0


def test_text_that_is_not_a_summary_is_refused() -> None:
    with pytest.raises(HeyError, match="not hey's summary"):
        parse_hey_summary("Error: pod has unbound immediate PersistentVolumeClaims")
