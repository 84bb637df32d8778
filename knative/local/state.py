"""The running stack's state in ``$KFCHAIN_HOME/run/stack.json``, so ``status``/``down`` work from another terminal."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ProcessState:
    name: str
    pid: int | None
    url: str | None
    probe: str | None  # readiness URL
    log: str
    argv: list[str]
    restarts: int = 0
    metrics: str | None = None  # scrape URL


@dataclass
class StackState:
    supervisor_pid: int
    home: str
    manifests: str
    bootstrap_servers: str
    topic: str
    dlq_topic: str
    settled: bool = False  # the start-up readiness wait is over (ready or not)
    ready: bool = False
    processes: list[ProcessState] = field(default_factory=list)
    prometheus_config: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StackState:
        processes = [ProcessState(**p) for p in data.pop("processes", [])]
        return cls(**data, processes=processes)


def write_state(path: Path, state: StackState) -> None:
    """Write atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(state.to_json())
    tmp.replace(path)


def read_state(path: Path) -> StackState | None:
    """The recorded state, or None when no stack was started from this ``KFCHAIN_HOME``."""
    try:
        return StackState.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValueError(
            f"{path} is not a stack state file ({exc}); delete it if no stack is running"
        ) from None


def pid_alive(pid: int | None, argv: list[str] | None = None) -> bool:
    """Whether ``pid`` runs (and, when ``argv`` is given, still runs that command: pids get reused)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if argv:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return True  # no /proc (macOS): trust the pid
        if [c.decode(errors="replace") for c in cmdline if c] != argv:
            return False
    try:  # a zombie child of ours is not running
        status = Path(f"/proc/{pid}/status").read_text()
        if "\nState:\tZ" in status:
            return False
    except OSError:
        pass
    return True
