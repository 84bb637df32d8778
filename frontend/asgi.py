"""The served ASGI app: ``uvicorn frontend.asgi:app`` (or hypercorn) builds it from the environment."""

from __future__ import annotations

from typing import Any

from frontend.app import create_app
from frontend.fastpath import PredictFastPath
from frontend.settings import Settings


def build(settings: Settings) -> PredictFastPath:
    """The app for ``settings`` as served: the Quart app behind the ``/api/predict`` fast path."""
    return PredictFastPath(create_app(settings))


def __getattr__(name: str) -> Any:
    # Built on first access, so importing this module (e.g. to call build()) reads no environment.
    if name == "app":
        value = build(Settings.from_env())
        globals()["app"] = value
        return value
    raise AttributeError(name)
