"""A throw-away local stack on free ports under its own ``KFCHAIN_HOME`` (for tests and benchmarks).

It runs exactly what ``python -m knative.local up --detach`` runs, from the real manifests, so a
test or a benchmark measures the real chain without touching a stack the user has running.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from events.broker import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
PORTS = ("selector", "deployer", "recorder", "frontend", "predictor", "dispatcher_metrics", "kafka")


@dataclass(frozen=True)
class EphemeralStack:
    home: Path
    env: dict[str, str]
    ports: dict[str, int]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """``python -m <args>`` with this stack's environment, output captured."""
        return subprocess.run(
            [sys.executable, "-m", *args],
            env=self.env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@contextmanager
def ephemeral_stack(home: Path, ready_timeout_s: int = 90) -> Iterator[EphemeralStack]:
    """Start the stack (its own embedded broker unless ``KAFKA_BOOTSTRAP_SERVERS`` is set), stop it after."""
    ports = {name: free_port() for name in PORTS}
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "KFCHAIN_HOME": str(home),
        **{f"KFCHAIN_{name.upper()}_PORT": str(port) for name, port in ports.items()},
        "KFCHAIN_PREDICTOR_URL": f"http://127.0.0.1:{ports['predictor']}",
        "KFCHAIN_FRONTEND_URL": f"http://127.0.0.1:{ports['frontend']}",
        "KFCHAIN_LOCAL_READY_TIMEOUT": str(ready_timeout_s),
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)  # unset: the runtime starts its broker on KFCHAIN_KAFKA_PORT
    if external:
        env["KAFKA_BOOTSTRAP_SERVERS"] = external
    stack = EphemeralStack(home, env, ports)
    up = stack.cli("knative.local", "up", "--detach", timeout=ready_timeout_s + 60)
    if up.returncode != 0:
        stack.cli("knative.local", "down", timeout=60)
        raise RuntimeError(f"the local stack did not start:\n{up.stdout}\n{up.stderr}")
    env["KAFKA_BOOTSTRAP_SERVERS"] = external or f"127.0.0.1:{ports['kafka']}"
    try:
        yield stack
    finally:
        stack.cli("knative.local", "down", timeout=60)
