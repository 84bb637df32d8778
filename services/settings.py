"""Settings shared by the CloudEvent services, read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from events.settings import kfchain_home


def env_port(env: dict[str, str], default: int) -> int:
    """``$PORT`` (what Knative and the local runtime set), else ``default``."""
    raw = env.get("PORT") or str(default)
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"PORT={raw!r} is not a TCP port (1-65535)")
    return int(raw)


@dataclass(frozen=True)
class SinkSettings:
    """Where a CloudEvent service listens and keeps its state."""

    name: str
    host: str
    port: int
    home: Path

    @property
    def state_path(self) -> Path:
        """The service's own SQLite file (handled events, business keys)."""
        return self.home / "services" / f"{self.name}.db"

    @classmethod
    def from_env(cls, name: str, default_port: int, env: dict[str, str] | None = None) -> SinkSettings:
        env = dict(os.environ if env is None else env)
        return cls(
            name=name,
            host=env.get("KFCHAIN_BIND_HOST", "127.0.0.1"),
            port=env_port(env, default_port),
            home=kfchain_home(env),
        )
