"""The runtime as processes: the dispatcher killed mid-chain and restarted, and `up`/`status`/`down`.

Real processes on the shared embedded broker; manifests written into the test's folder; every port
is a free one; KFCHAIN_HOME is the test's own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import httpx

from events.broker import free_port
from events.catalogue import Candidate, PipelineRunSubmitted, PipelineRunSucceeded
from events.event import caused_by, new_event
from events.kafka import Publisher
from events.settings import KafkaSettings
from knative.local.settings import REPO_ROOT
from knative.local.stub import StubRequest, StubSubscriber, reply_with
from knative.local.supervisor import probe
from knative.local.templates import broker_manifests, trigger_manifest
from services.predictor.launcher import wait_until_up

RECORDER_SERVICE = {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "recorder"}


def broker(kafka: KafkaSettings) -> str:
    """The Broker "kfchain" on the test's topic, with the dead-letter KafkaSink "dlq" on its DLQ topic."""
    return broker_manifests("kfchain", kafka.topic, dead_letter_sink="dlq", dead_letter_topic=kafka.dlq_topic)


def trigger(name: str, event_type: str, subscriber: str | dict[str, str], **delivery: str) -> str:
    """An ordered Trigger on "kfchain" with quick retries, dead letters to "dlq"."""
    return trigger_manifest(
        name, "kfchain", subscriber, event_type=event_type, dead_letter_sink="dlq", ordered=True,
        backoff_delay="PT0.05S", timeout="PT2S", **delivery,
    )  # fmt: skip


def env_for(kafka: KafkaSettings, home: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "KFCHAIN_HOME": str(home),
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KFCHAIN_TRIGGER_GROUP_PREFIX": f"test.{uuid.uuid4().hex[:8]}.",
        **extra,
    }


def training_done() -> object:
    payload = PipelineRunSucceeded(
        pipeline="training", run_id="run-1", model_name="iris", model_version="v1",
        candidates=(Candidate(k=3, accuracy=0.9, uri="file:///m/3"),),
    )  # fmt: skip
    return new_event(payload, source="/kfchain/pipelines/training")


def test_dispatcher_killed_mid_chain_and_restarted_finishes_the_chain(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    first_attempt_seen = threading.Event()
    let_go = threading.Event()
    seen: set[str] = set()

    def selector(request: StubRequest) -> object:
        assert request.event is not None
        if request.event.id not in seen:  # the first delivery hangs until the dispatcher is dead
            seen.add(request.event.id)
            first_attempt_seen.set()
            let_go.wait(10)
        submitted = PipelineRunSubmitted(pipeline="model-selection", run_id="sel-1", model_version="v1")
        return reply_with(
            caused_by(request.event, submitted, source="/kfchain/services/selector", id="stable-reply-id")
        )

    with StubSubscriber(selector) as sel, StubSubscriber() as deployer:
        manifests = tmp_path / "manifests"
        manifests.mkdir()
        (manifests / "all.yaml").write_text(
            broker(kafka_settings)
            + trigger("on-training-done", "io.kfchain.pipeline.run.succeeded", sel.url)
            + trigger("on-submitted", "io.kfchain.pipeline.run.submitted", deployer.url)
        )
        port = free_port()
        env = env_for(kafka_settings, tmp_path)
        argv = [
            sys.executable,
            "-m",
            "knative.local",
            "dispatch",
            "--manifests",
            str(manifests),
            "--metrics-port",
            str(port),
        ]
        log_path = tmp_path / "dispatcher.log"
        log = log_path.open("ab")
        dispatcher = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_up(
                f"http://127.0.0.1:{port}/health/readiness", 30, dispatcher, log_path, ready_status=200
            )
            event = training_done()
            with Publisher(kafka_settings, idempotence=False) as publisher:
                publisher.publish(event)
            assert first_attempt_seen.wait(10)
            dispatcher.send_signal(signal.SIGKILL)  # mid-chain: the selector has the event, no outcome yet
            dispatcher.wait(5)
            let_go.set()
            started = time.monotonic()
            dispatcher = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
            (reply,) = [r.event for r in deployer.wait_for(1, timeout_s=30)]
            rejoin_s = time.monotonic() - started
        finally:
            dispatcher.terminate()
            dispatcher.wait(10)
            log.close()
    assert len(sel.requests) == 2, "the uncommitted event is delivered again after the restart"
    assert reply.type == "io.kfchain.pipeline.run.submitted" and reply.causationid == event.id
    assert reply.chainid == event.chainid
    print(f"restart -> chain finished in {rejoin_s:.1f}s (includes the dead member's session timeout)")


FAKE_SERVICE = textwrap.dedent(
    """
    import os
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path in ("/health/readiness", "/v2/health/live", "/metrics") else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    print("fake service on", os.environ["PORT"], flush=True)
    HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
    """
)
SERVICE = """\
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: recorder
  annotations: {{kfchain.io/local: "true"}}
spec:
  template:
    spec:
      containers:
        - command: [python, {script}]
---
apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata:
  name: kfchain-predictor
spec:
  containers:
    - name: kserve-container
      command: [python, {script}]
"""


def run_cli(env: dict[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "knative.local", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
    )


def test_up_status_restart_and_down_from_another_terminal(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    home, manifests = tmp_path / "home", tmp_path / "manifests"
    manifests.mkdir()
    script = tmp_path / "fake_service.py"
    script.write_text(FAKE_SERVICE)
    (manifests / "stack.yaml").write_text(
        broker(kafka_settings)
        + SERVICE.format(script=script)
        + trigger("record-all", "io.kfchain.pipeline.run.succeeded", RECORDER_SERVICE)
    )
    ports = {
        "KFCHAIN_RECORDER_PORT": free_port(),
        "KFCHAIN_PREDICTOR_PORT": free_port(),
        "KFCHAIN_DISPATCHER_METRICS_PORT": free_port(),
    }
    env = env_for(kafka_settings, home, KFCHAIN_MANIFESTS=str(manifests), KFCHAIN_LOCAL_READY_TIMEOUT="40",
                  **{k: str(v) for k, v in ports.items()})  # fmt: skip
    up = run_cli(env, "up", "--detach")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"http://127.0.0.1:{ports['KFCHAIN_RECORDER_PORT']}" in up.stdout
        state = json.loads((home / "run" / "stack.json").read_text())
        processes = {p["name"]: p for p in state["processes"]}
        assert set(processes) == {"recorder", "predictor", "dispatcher"}  # external broker: none started
        assert (home / "logs" / "recorder.log").read_text().count("fake service on") == 1
        assert (
            f"127.0.0.1:{ports['KFCHAIN_DISPATCHER_METRICS_PORT']}" in (home / "prometheus.yml").read_text()
        )

        status = run_cli(env, "status")
        assert status.returncode == 0 and status.stdout.count(" yes ") == 3, status.stdout

        os.kill(processes["recorder"]["pid"], signal.SIGKILL)  # a crash: restarted after a backoff
        deadline = time.monotonic() + 15
        restarted = None
        while time.monotonic() < deadline:
            now = {p["name"]: p for p in json.loads((home / "run" / "stack.json").read_text())["processes"]}
            if now["recorder"]["restarts"] == 1 and probe(
                f"http://127.0.0.1:{ports['KFCHAIN_RECORDER_PORT']}/health/readiness"
            ):
                restarted = now["recorder"]
                break
            time.sleep(0.2)
        assert restarted is not None and restarted["pid"] != processes["recorder"]["pid"]
        assert (
            "kfchain_dispatch_delivered_total"
            in httpx.get(f"http://127.0.0.1:{ports['KFCHAIN_DISPATCHER_METRICS_PORT']}/metrics").text
        )
    finally:
        down = run_cli(env, "down")
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not (home / "run" / "stack.json").exists()
    for process in json.loads(json.dumps(state))["processes"]:
        assert (
            not Path(f"/proc/{process['pid']}").exists()
            or "State:\tZ" in Path(f"/proc/{process['pid']}/status").read_text()
        )
    assert run_cli(env, "status").returncode == 1


def test_up_with_a_bad_manifest_names_the_file_and_field(
    tmp_path: Path, kafka_settings: KafkaSettings
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "trigger.yaml").write_text(
        broker_manifests("kfchain", "t", dead_letter_sink="dlq", dead_letter_topic="d")
        + trigger("x", "a", "http://127.0.0.1:1/", backoff_policy="fibonacci")
    )
    result = run_cli(env_for(kafka_settings, tmp_path / "home", KFCHAIN_MANIFESTS=str(manifests)), "up")
    assert result.returncode == 2
    assert f"{manifests / 'trigger.yaml'}" in result.stderr and "spec.delivery.backoffPolicy" in result.stderr
