"""Start ``python -m services.predictor`` as a child process and wait until it answers.

Used by the rollout tests and the benchmark; ``knative.local`` starts the same command itself.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (bind to port 0, read it back, release it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_until_up(
    url: str, timeout_s: float, process: subprocess.Popen | None = None, log: Path | None = None
) -> None:
    """Poll ``url`` until it answers any HTTP status; raise with the log tail if it never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(
                f"the predictor exited with code {process.returncode} before answering:\n{tail}"
            )
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"nothing answered at {url} within {timeout_s:.0f} s:\n{tail}")


@dataclass
class PredictorProcess:
    """A predictor child process on ``port`` with ``KFCHAIN_HOME=home``; use as a context manager."""

    home: Path
    port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    model_name: str = "iris"
    startup_timeout_s: float = 60.0
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.home / "logs" / f"predictor-{self.port}.log"

    def start(self) -> PredictorProcess:
        if not self.port:
            self.port = free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "KFCHAIN_HOME": str(self.home),
            "KFCHAIN_PREDICTOR_PORT": str(self.port),
            "KFCHAIN_MODEL_NAME": self.model_name,
            **self.env,
        }
        root = Path(__file__).resolve().parents[2]
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.predictor"],
                env=env,
                cwd=root,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until_up(f"{self.url}/v2/health/live", self.startup_timeout_s, self.process, self.log_path)
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def rss_mib(self) -> float:
        """Resident memory of the process, from /proc (Linux)."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def __enter__(self) -> PredictorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
