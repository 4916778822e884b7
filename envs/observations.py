"""The one place student and privileged observations are built.

Pure numpy, so that the robot-side runtime can use `student_vector` without a simulator.
The student observation is the sensor features (named) followed by the previous action
(`prev_action/<actuator>`); on a robot the controller supplies the previous action itself.
In the simulator, `DelayedNoisySensor` imitates the sensors' noise and latency and
`ObservationBuilder` assembles both observations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

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

    Noise is drawn when the measurement is taken, so a delayed reading carries its own noise. It is
    drawn from the episode's noise stream in chunks of `chunk` rows, which gives the same values as
    drawing one row per step (the generator fills row-major) at a fraction of the per-step cost.
    Returned rows are views into the ring, overwritten by later pushes: copy one to keep it.
    """

    def __init__(self, raw_dim: int, max_latency: int, chunk: int = 256):
        self._buf = np.zeros((max_latency + 1, raw_dim))  # (L+1, R) noisy readings, a ring
        self._noise = np.zeros((chunk, raw_dim))  # (C, R) noise for the next C readings
        # row views made once: indexing a list is cheaper than making a numpy view every step
        self._buf_rows, self._noise_rows = list(self._buf), list(self._noise)
        self._std = np.zeros(raw_dim)  # (R,)
        self._rng: np.random.Generator | None = None
        self._t = 0  # readings taken since reset
        self._k = 0  # row of `_noise` used by the latest reading
        self._latency = 0

    def reset(
        self, raw: np.ndarray, latency: int, noise_std: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Start of an episode: the history before t=0 is the first (noisy) reading."""
        if not 0 <= latency < len(self._buf):
            raise ValueError(f"latency_steps {latency} is outside [0, {len(self._buf) - 1}]")
        self._latency = int(latency)
        self._std = np.asarray(noise_std, dtype=np.float64)
        self._rng = rng if self._std.any() else None  # noise-free: nothing to draw
        self._refill()
        self._t = 0
        np.add(raw, self._noise[0], out=self._buf[0])
        self._buf[1:] = self._buf[0]
        return self._buf[0]

    def push(self, raw: np.ndarray) -> np.ndarray:
        """Record the reading (R,) taken now; returns the noisy reading (R,) of `latency` steps ago."""
        t = self._t = self._t + 1
        k = self._k = self._k + 1
        if k == len(self._noise_rows):
            self._refill()
            k = 0
        rows = self._buf_rows
        n = len(rows)
        np.add(raw, self._noise_rows[k], out=rows[t % n])
        return rows[(t - self._latency) % n]

    def _refill(self) -> None:
        self._k = 0
        if self._rng is None:
            self._noise.fill(0.0)
        else:
            self._rng.standard_normal(out=self._noise)
            self._noise *= self._std


class ObservationBuilder:
    """The simulator's observation dict: {"student": (Ds,), "privileged": (Dp,)}, both float32.

    student = sensor features (F,) of the (noisy, delayed) raw reading, then the previous action (Da,);
    privileged = the simulator's full-state obs (B,), then the episode's physical parameters (K,).
    Each call returns fresh arrays (callers keep observations), filled from preallocated templates.
    """

    def __init__(
        self,
        n_features: int,
        features_into: Callable[[np.ndarray, np.ndarray], None],
        n_actions: int,
        base_dim: int,
        n_parameters: int,
    ):
        self._n_features = n_features
        self._features_into = features_into  # (raw (R,), out) -> writes out[:F]
        self._student_dim = n_features + n_actions
        self._base_dim = base_dim
        self._privileged = np.zeros(base_dim + n_parameters, dtype=np.float32)  # (Dp,) template

    def set_parameters(self, values: Sequence[float]) -> None:
        """The episode's physical parameters (K,), written into every privileged obs until the next call."""
        self._privileged[self._base_dim :] = values

    def build(self, base_obs: np.ndarray, raw: np.ndarray, prev_action: np.ndarray) -> dict[str, np.ndarray]:
        student = np.empty(self._student_dim, dtype=np.float32)  # (Ds,)
        self._features_into(raw, student)
        student[self._n_features :] = prev_action
        privileged = self._privileged.copy()  # (Dp,)
        privileged[: self._base_dim] = base_obs
        return {"student": student, "privileged": privileged}
