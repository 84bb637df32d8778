"""``python -m events.broker``: one-line errors that say what to do, and reuse of a running broker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

from events.kafka import ensure_topics
from events.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[2]


def _broker_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "KFCHAIN_", "CALF_"))}
    return subprocess.run(
        [sys.executable, "-m", "events.broker", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_port_in_use_is_one_line_saying_what_to_do() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _broker_cli("--port", str(port))
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert f"port {port}" in line
    assert f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{port}" in line and "--port" in line


def test_missing_binary_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    result = _broker_cli("--port", "0", CALF_TANSU_BIN=str(tmp_path / "no-such-tansu"))
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "no-such-tansu" in line and "unset it" in line


def test_a_running_broker_named_by_the_environment_is_used(kafka_broker: KafkaSettings) -> None:
    topic = f"kfchain.events.{uuid.uuid4().hex[:8]}"
    result = _broker_cli(
        KAFKA_BOOTSTRAP_SERVERS=kafka_broker.bootstrap_servers,
        KFCHAIN_TOPIC=topic,
        KFCHAIN_DLQ_TOPIC=topic + ".dlq",
    )
    assert result.returncode == 0, result.stderr
    assert f"using the running broker at {kafka_broker.bootstrap_servers}" in result.stdout
    assert topic in result.stdout  # it created the topics ...
    settings = KafkaSettings(
        bootstrap_servers=kafka_broker.bootstrap_servers, topic=topic, dlq_topic=topic + ".dlq"
    )
    assert ensure_topics(settings) == []  # ... and they exist now
