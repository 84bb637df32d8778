"""``python -m load.autoscale --local`` against a small real HTTP server standing in for the stack."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from load.autoscale import LocalOptions, cluster_available, run_local
from load.settings import LoadSettings
from tests.load.stub_server import StubBehaviour, stub_server

needs_hey = pytest.mark.skipif(
    shutil.which("hey") is None, reason="hey is not installed (apt-get install hey)"
)
SHORT = LocalOptions(duration="1s", concurrency=2, locust_users=4, locust_seconds=3)


@needs_hey
def test_local_run_prints_hey_and_locust_summaries_and_the_plot(tmp_path: Path) -> None:
    lines: list[str] = []
    with stub_server() as server:
        settings = LoadSettings(predictor_url=server.url, frontend_url=server.url, output_dir=tmp_path)
        result = run_local(settings, SHORT, out=lines.append)

    assert result.ok, lines
    assert set(result.hey) == {"predictor V1", "frontend"}
    output = "\n".join(lines)
    assert "predictor V1: " in output and "frontend: " in output and "req/s" in output
    assert "0 failed of" in output
    assert result.png_path is not None and result.png_path.is_file() and f"plot: {result.png_path}" in output
    assert result.locust is not None and result.locust.html_path.is_file()


def test_stack_not_running_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once the socket closes
    lines: list[str] = []
    result = run_local(
        LoadSettings(predictor_url=url, frontend_url=url, output_dir=tmp_path), SHORT, out=lines.append
    )

    assert not result.ok
    assert len(lines) == 1 and "is not answering" in lines[0] and "make up" in lines[0]


def test_a_predictor_answering_wrong_species_is_refused_before_any_load(tmp_path: Path) -> None:
    lines: list[str] = []
    with stub_server(StubBehaviour(wrong_species=True)) as server:
        settings = LoadSettings(predictor_url=server.url, frontend_url=server.url, output_dir=tmp_path)
        result = run_local(settings, SHORT, out=lines.append)
        requests = server.behaviour.requests

    assert not result.ok and requests == 1  # only the check, no load
    assert "answers wrongly" in lines[0] and "is versicolor, the answer was 'setosa'" in lines[0]


def test_cluster_mode_is_chosen_only_with_a_kubeconfig_or_in_cluster(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    assert not cluster_available({})
    assert not cluster_available({"KUBECONFIG": str(kubeconfig)})  # named but missing
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    assert cluster_available({"KUBECONFIG": str(kubeconfig)})
    assert cluster_available({"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
