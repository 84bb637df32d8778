"""`python -m pipelines.submit`: input errors, an unreachable broker, and the cluster path against an
HTTP stand-in for the KFP API server that records what it is sent."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from events.broker import free_port
from events.settings import KafkaSettings
from pipelines import submit
from pipelines.runner import RunHandle, submit_selection
from pipelines.settings import PipelinesSettings


class FakeKfpApi(BaseHTTPRequestHandler):
    """Just enough of the KFP v2beta1 API for kfp.Client to create an experiment and a run."""

    requests: list[dict[str, Any]] = []

    def _reply(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self.requests.append({"method": "GET", "path": self.path, "auth": self.headers.get("authorization")})
        self._reply({})  # no experiment named kfchain yet

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.requests.append(
            {"method": "POST", "path": self.path, "auth": self.headers.get("authorization"), "body": body}
        )
        if self.path.startswith("/apis/v2beta1/experiments"):
            self._reply({"experiment_id": "exp-1", "display_name": body.get("display_name")})
        else:
            self._reply({"run_id": "run-42", "display_name": body.get("display_name"), "state": "PENDING"})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def kfp_api() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    requests: list[dict[str, Any]] = []
    handler = type("Handler", (FakeKfpApi,), {"requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", requests
    server.shutdown()


def test_cluster_training_submit_sends_the_compiled_pipeline(kfp_api, monkeypatch, capsys) -> None:
    host, requests = kfp_api
    monkeypatch.setenv("KFP_TOKEN", "token-from-env")
    code = submit.main(["training", "--host", host, "--namespace", "team-a", "--version", "v7", "--k", "3,5"])
    out = capsys.readouterr().out
    assert code == 0
    assert "run-42" in out and f"{host}/#/runs/details/run-42" in out
    [run] = [r for r in requests if r["path"] == "/apis/v2beta1/runs"]
    assert run["auth"] == "Bearer token-from-env"
    assert run["body"]["experiment_id"] == "exp-1"
    spec = run["body"]["pipeline_spec"]
    assert spec["pipeline_spec"]["pipelineInfo"]["name"] == "kfchain-training"
    assert "comp-ensure-pvc" in spec["pipeline_spec"]["components"]  # the cluster variant, with the model PVC
    assert "model-pvc" in json.dumps(spec["platform_spec"])
    params = run["body"]["runtime_config"]["parameters"]
    assert (params["model_version"], params["k_values"], params["model_name"]) == ("v7", [3, 5], "iris")
    experiment = next(r for r in requests if r["path"] == "/apis/v2beta1/experiments")
    assert experiment["body"]["namespace"] == "team-a"


def test_cluster_selection_submit_passes_the_chain(kfp_api) -> None:
    host, requests = kfp_api
    settings = dataclasses.replace(PipelinesSettings(), kfp_host=host)
    handle = submit_selection("iris", "v3", "chain-9", "event-9", settings)
    assert isinstance(handle, RunHandle) and handle.run_id == "run-42"
    [run] = [r for r in requests if r["path"] == "/apis/v2beta1/runs"]
    params = run["body"]["runtime_config"]["parameters"]
    assert (params["model_version"], params["chain_id"], params["causation_id"]) == (
        "v3",
        "chain-9",
        "event-9",
    )
    assert run["body"]["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "kfchain-model-selection"


def test_cluster_submit_requires_a_version(kfp_api, capsys) -> None:
    host, requests = kfp_api
    assert submit.main(["training", "--host", host]) == 2
    assert "--version is required" in capsys.readouterr().err
    assert requests == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["training", "--k", "1,two"], "K value 'two' is not an integer"),
        (["training", "--source", "/nonexistent/iris.csv"], "'/nonexistent/iris.csv' is not a readable file"),
        (["training", "--version", "v 1"], "model version 'v 1' is not valid"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(argv, message, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("KFCHAIN_HOME", str(tmp_path))
    monkeypatch.delenv("KFP_HOST", raising=False)
    assert submit.main(argv) == 2
    assert message in capsys.readouterr().err


def test_unreachable_broker_fails_before_training(tmp_path, monkeypatch, capsys) -> None:
    address = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("KFCHAIN_HOME", str(tmp_path))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", address)
    monkeypatch.setenv("KFCHAIN_KAFKA_TIMEOUT", "1")
    monkeypatch.delenv("KFP_HOST", raising=False)
    assert submit.main(["training", "--k", "1"]) == 2
    err = capsys.readouterr().err
    assert address in err and "python -m events.broker" in err
    assert not (tmp_path / "runs").exists()


def test_local_cli_prints_progress_and_summary(
    kafka_settings: KafkaSettings, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("KFCHAIN_HOME", str(tmp_path))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
    monkeypatch.setenv("KFCHAIN_TOPIC", kafka_settings.topic)
    monkeypatch.delenv("KFP_HOST", raising=False)
    assert submit.main(["training", "--k", "3"]) == 0
    out = capsys.readouterr().out
    for expected in (
        "ok  fetch",
        "ok  train         k=3",
        "SUCCEEDED",
        "iris v1",
        "io.kfchain.pipeline.run.succeeded",
        kafka_settings.topic,
    ):
        assert expected in out
