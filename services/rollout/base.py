"""The deployer's rollout interface: a local and a cluster (KServe) version implement it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class RolloutOutcome:
    """A version now serves at ``endpoint`` with ``traffic_percent`` of the traffic."""

    endpoint: str
    traffic_percent: int
    previous_version: str | None
    unchanged: bool = False  # True: that version was already serving, nothing was changed


class RolloutFailed(RuntimeError):
    """A rollout did not happen; ``serving_version`` is what still serves (None: nothing)."""

    def __init__(self, reason: str, serving_version: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.serving_version = serving_version


class RolloutBackend(Protocol):
    """Rolls a model version out. Blocking; the deployer calls it in a worker thread."""

    def rollout(self, model_name: str, model_version: str, serving_uri: str) -> RolloutOutcome: ...

    def current_version(self, model_name: str) -> str | None: ...
