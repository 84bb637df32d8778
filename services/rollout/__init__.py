"""Rollout backends of the deployer: put a model version into service, or say why not.

- ``local`` (:class:`services.rollout.local.LocalRollout`): hot-swaps versions inside the local
  predictor process (``python -m services.predictor``), zero failed requests.
- ``kserve`` (:class:`services.rollout.kserve.KServeRollout`): creates/patches a KServe
  ``InferenceService`` on a cluster, with an optional canary.

Both implement :class:`services.rollout.base.RolloutBackend`; ``KFCHAIN_ROLLOUT_BACKEND``
(``local`` by default, or ``kserve``) picks one in :func:`backend_from_env`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from services.rollout.base import RolloutBackend, RolloutFailed, RolloutOutcome

BACKENDS = ("local", "kserve")


def backend_from_env(env: Mapping[str, str] | None = None) -> RolloutBackend:
    """The backend named by ``KFCHAIN_ROLLOUT_BACKEND`` (``local`` default, ``kserve``), configured from env."""
    env = os.environ if env is None else env
    name = (env.get("KFCHAIN_ROLLOUT_BACKEND") or "local").lower()
    if name == "local":
        from services.rollout.local import LocalRollout, LocalRolloutSettings

        return LocalRollout(LocalRolloutSettings.from_env(env))
    if name in ("kserve", "cluster"):
        from services.rollout.kserve import KServeRollout, KServeRolloutSettings

        return KServeRollout(KServeRolloutSettings.from_env(env))
    raise ValueError(f"KFCHAIN_ROLLOUT_BACKEND={name!r} is not one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "RolloutBackend", "RolloutFailed", "RolloutOutcome", "backend_from_env"]
