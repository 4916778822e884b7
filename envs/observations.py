"""The one place student and privileged observations are built.

Pure numpy, so that the robot-side runtime can use `student_vector` without a simulator.
The student observation is the sensor features (named) followed by the previous action
(`prev_action/<actuator>`); on a robot the controller supplies the previous action itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

PREV_ACTION_PREFIX = "prev_action/"


def student_names(feature_names: Sequence[str], action_names: Sequence[str]) -> tuple[str, ...]:
    return (*feature_names, *(PREV_ACTION_PREFIX + a for a in action_names))


def student_vector(
    readings: Mapping[str, float], names: Sequence[str], prev_action: np.ndarray
) -> np.ndarray:
    """Student observation (Ds,) from readings by name, in the order `names` gives.

    Names starting with `prev_action/` are taken from `prev_action` in order; every other name must
    be in `readings` (a KeyError names the first one missing).
    """
    out = np.empty(len(names), dtype=np.float32)
    k = 0
    for i, name in enumerate(names):
        if name.startswith(PREV_ACTION_PREFIX):
            out[i] = prev_action[k]
            k += 1
        else:
            if name not in readings:
                raise KeyError(f"sensor reading {name!r} is missing (robot gave {sorted(readings)})")
            out[i] = readings[name]
    return out


class DelayedNoisySensor:
    """Ring buffer that returns the noisy raw measurement taken `latency` control steps ago.

    Noise is drawn when the measurement is taken, so a delayed reading carries its own noise.
    """

    def __init__(self, raw_dim: int, max_latency: int):
        self._buf = np.zeros((max_latency + 1, raw_dim))  # (L+1, R)
        self._t = 0
        self._latency = 0

    def reset(self, raw: np.ndarray, latency: int) -> np.ndarray:
        """Start of an episode: the history before t=0 is the first reading."""
        self._buf[:] = raw
        self._t = 0
        self._latency = int(latency)
        return raw

    def push(self, raw: np.ndarray) -> np.ndarray:
        self._t += 1
        n = len(self._buf)
        self._buf[self._t % n] = raw
        return self._buf[(self._t - self._latency) % n]


def privileged_vector(base_obs: np.ndarray, dynamics: np.ndarray) -> np.ndarray:
    """Privileged observation: the simulator's full state obs, then the episode's physical parameters."""
    return np.concatenate([base_obs, dynamics]).astype(np.float32)
