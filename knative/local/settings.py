"""Settings of the local runtime, read once from the environment with working local defaults."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from events.envvars import env_int, env_seconds
from events.settings import KafkaSettings, kfchain_home

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MANIFESTS = REPO_ROOT / "knative"
#: Local ports by short service name (docs/CONVENTIONS.md); ``KFCHAIN_<NAME>_PORT`` overrides one.
DEFAULT_PORTS = {"predictor": 8080, "frontend": 8081, "selector": 8091, "deployer": 8092, "recorder": 8093}
DEFAULT_METRICS_PORT = 9464
DEFAULT_KAFKA_PORT = 9092
_PORT_VAR = re.compile(r"^KFCHAIN_([A-Z0-9_]+)_PORT$")


#: The dispatcher's fetch wait at the broker unless ``KFCHAIN_KAFKA_FETCH_WAIT_MS`` is set. It polls
#: one consumer group per Trigger, and Tansu answers a fetch only when the wait runs out (there is no
#: early answer on new data), so each group costs a fetch per wait: at the library's 10 ms an idle
#: local stack kept the broker at ~26% of a core, at 25 ms ~16%, and the pipelines' CPU-bound tasks
#: ran faster for it (chain 11.3-11.8 s -> 9.9-10.6 s on 2 cores) while a hop waits ~8 ms more.
DISPATCHER_FETCH_WAIT_MS = 25


def dispatcher_kafka_settings(kafka: KafkaSettings, env: Mapping[str, str] | None = None) -> KafkaSettings:
    """``kafka`` with the dispatcher's fetch wait, unless the environment sets one explicitly."""
    env = os.environ if env is None else env
    if env.get("KFCHAIN_KAFKA_FETCH_WAIT_MS"):
        return kafka
    return replace(kafka, fetch_wait_ms=DISPATCHER_FETCH_WAIT_MS)


def short_name(name: str) -> str:
    """``kfchain-predictor`` -> ``predictor``: the key of the port table and of ``KFCHAIN_<NAME>_PORT``."""
    return name.removeprefix("kfchain-")


def port_variable(name: str) -> str:
    """The environment variable that overrides the local port of service ``name``."""
    return f"KFCHAIN_{short_name(name).upper().replace('-', '_')}_PORT"


@dataclass(frozen=True)
class LocalSettings:
    """What ``python -m knative.local`` needs besides the Kafka settings."""

    home: Path = Path(".kfchain")
    manifests: Path = DEFAULT_MANIFESTS
    host: str = "127.0.0.1"
    ports: Mapping[str, int] = field(default_factory=dict)  # overrides by short name
    metrics_port: int = DEFAULT_METRICS_PORT
    kafka_port: int = DEFAULT_KAFKA_PORT
    external_kafka: str | None = None  # KAFKA_BOOTSTRAP_SERVERS: use that broker, start none
    ready_timeout_s: float = 120.0
    default_timeout_s: float = 30.0  # per delivery attempt when a Trigger sets no timeout
    max_in_flight: int = 32  # deliveries in progress per Trigger
    group_prefix: str = "kfchain.trigger."

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def state_file(self) -> Path:
        return self.run_dir / "stack.json"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LocalSettings:
        """Read ``KFCHAIN_HOME``, ``KFCHAIN_MANIFESTS``, ``KFCHAIN_<NAME>_PORT`` (e.g. ``KFCHAIN_SELECTOR_PORT``),
        ``KFCHAIN_DISPATCHER_METRICS_PORT``, ``KFCHAIN_KAFKA_PORT``, ``KAFKA_BOOTSTRAP_SERVERS``,
        ``KFCHAIN_LOCAL_READY_TIMEOUT``, ``KFCHAIN_DISPATCH_TIMEOUT``, ``KFCHAIN_DISPATCH_MAX_IN_FLIGHT``,
        ``KFCHAIN_TRIGGER_GROUP_PREFIX``."""
        env = os.environ if env is None else env
        ports = {}
        for name in env:
            match = _PORT_VAR.match(name)
            if match and match.group(1) not in ("DISPATCHER_METRICS", "KAFKA"):
                ports[match.group(1).lower().replace("_", "-")] = env_int(
                    env, name, 0, minimum=1, maximum=65535
                )
        return cls(
            home=kfchain_home(dict(env)),
            manifests=Path(env.get("KFCHAIN_MANIFESTS") or DEFAULT_MANIFESTS),
            ports=ports,
            metrics_port=env_int(env, "KFCHAIN_DISPATCHER_METRICS_PORT", DEFAULT_METRICS_PORT, maximum=65535),
            kafka_port=env_int(env, "KFCHAIN_KAFKA_PORT", DEFAULT_KAFKA_PORT, minimum=1, maximum=65535),
            external_kafka=env.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            ready_timeout_s=env_seconds(env, "KFCHAIN_LOCAL_READY_TIMEOUT", 120.0),
            default_timeout_s=env_seconds(env, "KFCHAIN_DISPATCH_TIMEOUT", 30.0),
            max_in_flight=env_int(env, "KFCHAIN_DISPATCH_MAX_IN_FLIGHT", 32, minimum=1, maximum=10_000),
            group_prefix=env.get("KFCHAIN_TRIGGER_GROUP_PREFIX") or "kfchain.trigger.",
        )
