"""Safety layer between the policy and the actuators: action filter, sensor watchdog, event codes.

The filter turns a raw policy output into what the actuators may receive: a non-finite output
becomes the safe action, then an optional exponential smoothing, soft start (a ramp from the safe
action), clipping to the exported bounds and a rate limit. The watchdog tells when the newest
sensor reading is too old to act on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim2real.data.schema import (  # noqa: F401 (the event codes the safety layer raises)
    CLIPPED,
    ESTOP,
    FAULT_HOLD,
    NONFINITE_ACTION,
    NONFINITE_OBS,
    RATE_LIMITED,
    STALE,
    WAITING,
    describe,
)


@dataclass
class ActionFilter:
    """Soft start, clipping and rate limiting of policy actions (all per-step numpy, no allocation
    beyond the returned array).

    `max_delta` is the largest change per step (max_action_rate · period), or None for no limit;
    `ramp_steps` is the soft-start length: step i of a ramp sends safe + (i+1)/ramp_steps · (a − safe).
    `smoothing` is the exponential filter's α in [0, 1), applied first (before soft start, clipping
    and rate limit): ema_t = α · ema_{t−1} + (1 − α) · raw_t, with ema = raw_0 at the first output after
    a reset or a safe hold (so the filter smooths changes but adds no ramp of its own); 0 is off.
    """

    low: np.ndarray  # (Da,)
    high: np.ndarray  # (Da,)
    safe: np.ndarray  # (Da,)
    max_delta: float | None
    ramp_steps: int
    smoothing: float = 0.0

    def __post_init__(self) -> None:
        if np.any(self.safe < self.low) or np.any(self.safe > self.high):
            raise ValueError(f"safe action {self.safe.tolist()} lies outside the action bounds")
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError(f"action_filter (smoothing α) must be in [0, 1), got {self.smoothing}")
        self.prev = self.safe.copy()
        self.ema: np.ndarray | None = None  # (Da,) the smoothed policy output; None: start afresh
        self._ramp_i = 0

    def reset(self, prev: np.ndarray | None = None) -> None:
        """Start a new soft-start ramp from `prev` (default: the safe action) and a new smoothing."""
        self.prev = (self.safe if prev is None else prev).astype(np.float32).copy()
        self.ema = None
        self._ramp_i = 0

    def hold_safe(self) -> np.ndarray:
        """The safe action, sent as is (no ramp, no rate limit: stopping must not wait)."""
        self.prev = self.safe.copy()
        self.ema = None
        return self.prev.copy()

    def smooth(self, raw: np.ndarray) -> np.ndarray:
        """The exponential filter's output for this step (raw itself when smoothing is off)."""
        a = raw.astype(np.float32)
        if self.smoothing > 0.0:
            if self.ema is not None:
                a = (self.smoothing * self.ema + (1.0 - self.smoothing) * a).astype(np.float32)
            self.ema = a
        return a

    def __call__(self, raw: np.ndarray) -> tuple[np.ndarray, int]:
        events = 0
        a = self.smooth(raw)
        if self._ramp_i < self.ramp_steps:
            self._ramp_i += 1
            a = self.safe + (self._ramp_i / self.ramp_steps) * (a - self.safe)
        clipped = np.clip(a, self.low, self.high)
        if not np.array_equal(clipped, a):
            events |= CLIPPED
        if self.max_delta is not None:
            limited = np.clip(clipped, self.prev - self.max_delta, self.prev + self.max_delta)
            if not np.array_equal(limited, clipped):
                events |= RATE_LIMITED
            clipped = limited
        self.prev = clipped.astype(np.float32)
        return self.prev.copy(), events


class Watchdog:
    """Sensors are stale when no fresh reading arrived for `timeout` seconds (monotonic clock)."""

    def __init__(self, timeout: float):
        if timeout <= 0:
            raise ValueError(f"watchdog timeout must be > 0 s, got {timeout}")
        self.timeout = timeout
        self.last_fresh = 0.0

    def start(self, now: float) -> None:
        self.last_fresh = now  # the robot gets `timeout` to send its first reading

    def feed(self, now: float) -> None:
        self.last_fresh = now

    def stale(self, now: float) -> bool:
        return now - self.last_fresh > self.timeout
