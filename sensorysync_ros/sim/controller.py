"""Smooth randomized joint targets: minimum-jerk moves between random waypoints, with pauses.

Waypoints are drawn a little beyond the joint limits and across the fixed obstacles, so the
arm sometimes stalls against a limit or an object (which the audio hears as impacts and
strained motors). Pure numpy, deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ControllerConfig", "SmoothRandomController"]


@dataclass(frozen=True)
class ControllerConfig:
    """Timing of the random moves (seconds) and how far past the limits targets may go."""

    move_min_s: float = 0.35
    move_max_s: float = 2.2
    pause_prob: float = 0.2
    pause_min_s: float = 0.2
    pause_max_s: float = 1.2
    overshoot_frac: float = 0.08  # of each joint's range, beyond both limits
    joint_move_prob: float = 0.8  # chance each joint gets a new waypoint in a move


def _min_jerk(u: float) -> float:
    """Minimum-jerk profile s(u) for u in [0, 1]: zero velocity and acceleration at both ends."""
    return u * u * u * (10.0 + u * (-15.0 + 6.0 * u))


class SmoothRandomController:
    """Joint position targets as a function of time, generated segment by segment."""

    def __init__(
        self,
        lower_rad: np.ndarray,
        upper_rad: np.ndarray,
        seed: int,
        config: ControllerConfig | None = None,
    ) -> None:
        self._cfg = config or ControllerConfig()
        span = upper_rad - lower_rad
        over = self._cfg.overshoot_frac * span
        self._lo = lower_rad - over
        self._hi = upper_rad + over
        self._rng = np.random.default_rng(seed)
        start = (lower_rad + upper_rad) / 2.0
        self._from = start.astype(np.float64)
        self._to = start.astype(np.float64)
        self._t0_s = 0.0
        self._t1_s = 0.0

    def _next_segment(self) -> None:
        cfg, rng = self._cfg, self._rng
        self._from = self._to.copy()
        self._t0_s = self._t1_s
        if rng.random() < cfg.pause_prob:
            self._t1_s += rng.uniform(cfg.pause_min_s, cfg.pause_max_s)
            return
        moving = rng.random(self._from.shape) < cfg.joint_move_prob
        draw = rng.uniform(self._lo, self._hi)
        self._to = np.where(moving, draw, self._from)
        self._t1_s += rng.uniform(cfg.move_min_s, cfg.move_max_s)

    def target(self, t_s: float) -> np.ndarray:
        """Joint targets (rad) at time ``t_s``; time must not go backwards."""
        while t_s >= self._t1_s:
            self._next_segment()
        u = (t_s - self._t0_s) / (self._t1_s - self._t0_s)
        return self._from + (self._to - self._from) * _min_jerk(u)
