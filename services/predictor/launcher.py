"""Start ``python -m services.predictor`` as a child process and wait until it answers.

Used by the rollout tests and the benchmark; ``knative.local`` starts the same command itself.
``wait_until_up`` is the one "poll a child's URL until it is ready" of the tests and benchmarks.
"""

from __future__ import annotations

import os
import shlex
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
    url: str,
    timeout_s: float,
    process: subprocess.Popen | None = None,
    log: Path | None = None,
    *,
    ready_status: int | None = None,
    poll_s: float = 0.1,
) -> None:
    """Poll ``url`` until it answers (any HTTP status, or only ``ready_status`` if given).

    With ``process``, raise ``RuntimeError`` as soon as it exits (naming its command and exit code);
    after ``timeout_s``, raise ``TimeoutError`` naming the URL and the last answer. Both messages end
    with the tail of ``log``, the child's output, when there is one.
    """
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"{_command(process)} exited with code {process.returncode} before {url} answered"
                f"{_log_tail(log)}"
            )
        try:
            status = httpx.get(url, timeout=1.0).status_code
            if ready_status is None or status == ready_status:
                return
            last = f"HTTP {status}"
        except httpx.TransportError as error:
            last = f"{type(error).__name__}: {error}"
        if time.monotonic() >= deadline:
            wanted = "anything" if ready_status is None else f"HTTP {ready_status}"
            raise TimeoutError(
                f"{url} did not answer {wanted} within {timeout_s:g} s (last: {last}){_log_tail(log)}"
            )
        time.sleep(poll_s)


def _command(process: subprocess.Popen) -> str:
    args = process.args
    return shlex.join(map(str, args)) if isinstance(args, list | tuple) else str(args)


def _log_tail(log: Path | None, chars: int = 3000) -> str:
    if log is None or not log.exists():
        return ""
    return f"; the end of {log}:\n{log.read_text(errors='replace')[-chars:]}"


def stop_process(process: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """SIGTERM ``process`` and wait up to ``timeout_s``; SIGKILL it if it is still running then."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@dataclass
class PredictorProcess:
    """A predictor child process on ``port`` with ``KFCHAIN_HOME=home``; use as a context manager.

    ``args`` go to ``python -m services.predictor`` (e.g. ``["--model_dir", "/tmp/v3"]``)."""

    home: Path
    port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
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
                [sys.executable, "-m", "services.predictor", *self.args],
                env=env,
                cwd=root,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until_up(f"{self.url}/v2/health/live", self.startup_timeout_s, self.process, self.log_path)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

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
