"""Load shapes as pure functions of elapsed time, so they can be checked without starting Locust."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RampHoldRamp:
    """Ramp up to ``peak_users`` over ``ramp_s``, hold for ``hold_s``, ramp back down over ``ramp_s``.

    Shaped for autoscaling tests: the ramp gives the autoscaler time to add replicas, the hold shows
    the steady state at peak, and the ramp down shows replicas going away again.
    """

    peak_users: int = 50
    ramp_s: float = 30.0
    hold_s: float = 60.0

    def __post_init__(self) -> None:
        if self.peak_users < 1:
            raise ValueError(f"peak users must be at least 1, got {self.peak_users}")
        if self.ramp_s <= 0 or self.hold_s < 0:
            raise ValueError(f"ramp must be > 0 s and hold >= 0 s, got ramp={self.ramp_s} hold={self.hold_s}")

    @property
    def duration_s(self) -> float:
        return 2 * self.ramp_s + self.hold_s

    @property
    def spawn_rate(self) -> float:
        """Users started (or stopped) per second so that each ramp takes ``ramp_s``."""
        return self.peak_users / self.ramp_s

    def at(self, elapsed_s: float) -> tuple[int, float] | None:
        """(user count, spawn rate) Locust should aim for ``elapsed_s`` into the run; None when it is over."""
        if elapsed_s < self.ramp_s + self.hold_s:
            return self.peak_users, self.spawn_rate
        if elapsed_s < self.duration_s:
            return 0, self.spawn_rate
        return None
