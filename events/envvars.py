"""Typed reads of environment variables, shared by every deployable's settings object.

Each returns the default when the variable is unset or empty, and raises ``ValueError`` naming the
variable, the bad value and what would be accepted, so a bad setting fails at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping


def _raw(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    return None if raw is None or raw.strip() == "" else raw.strip()


def env_int(
    env: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: int | None = None
) -> int:
    """An integer within [minimum, maximum]."""
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(
            f"{name}={raw!r} is not an integer; unset it or give e.g. {name}={default}"
        ) from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ValueError(f"{name}={raw!r} must be {bound}")
    return value


def env_seconds(env: Mapping[str, str], name: str, default: float, maximum: float | None = None) -> float:
    """A positive number of seconds (at most ``maximum``)."""
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(
            f"{name}={raw!r} is not a number of seconds; unset it or give e.g. {name}={default:g}"
        ) from None
    if value <= 0 or (maximum is not None and value > maximum):
        limit = f" and at most {maximum:g}" if maximum is not None else ""
        raise ValueError(f"{name}={raw!r} must be greater than 0{limit} seconds")
    return value


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """true/false, 1/0, yes/no, on/off."""
    raw = _raw(env, name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={raw!r} is not a boolean; use true or false")
