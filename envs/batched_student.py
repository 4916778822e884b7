"""The student's observation of batched simulations, as the single env builds it.

`BatchedTask` builds only the privileged observation (all a teacher needs). Students acting in many
simulations at once (fine-tuning, DAgger, evaluation) need theirs too: each simulation's sensors are
read from the batch (`SensorSuite.bind_batch`), corrupted by its own `DelayedNoisySensor` seeded as the
single env seeds it, and followed by the previous executed action. For the same seed and dynamics the
rows equal `RandomizedTask`'s `obs["student"]` bit for bit (tests/test_lockstep.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from envs import parameters
from envs.batched import BatchedTask
from envs.observations import DelayedNoisySensor


class BatchedStudentObs:
    """Student observations (n, Ds) float32 of a `BatchedTask`'s simulations.

    Call `reset(ids)` after the task resets `ids` and `step()` after every task step; `observe()` gives
    the rows in force.
    """

    def __init__(self, sim: BatchedTask):
        suite = sim.sensors
        if suite.bind_batch is None:
            raise ValueError(f"task {sim.task!r}: its sensors have no batched reader (bind_batch)")
        self.sim, self.suite = sim, suite
        self._read = suite.bind_batch(sim.batch)  # () -> (n, R)
        self._features = len(suite.names)
        self._delay = [
            DelayedNoisySensor(len(suite.noise_std), parameters.MAX_LATENCY_STEPS) for _ in range(sim.n)
        ]
        self._obs = np.zeros((sim.n, self._features + sim.nu), dtype=np.float32)  # (n, Ds)

    def reset(self, ids: Sequence[int] | np.ndarray) -> None:
        """Rows of simulations `ids` at their episode's start: first readings, no previous action."""
        raw = self._read()  # (n, R)
        for i in ids:
            dyn = self.sim.dynamics[i]
            rng = np.random.default_rng(self.sim.noise_seeds[i])
            std = self.suite.noise_std * dyn["obs_noise_scale"]
            noisy = self._delay[i].reset(raw[i], dyn["latency_steps"], std, rng)
            self.suite.features_into(noisy, self._obs[i])
            self._obs[i, self._features :] = 0.0

    def step(self) -> None:
        """Every row after a step: this step's readings (delayed, noisy), the action just executed."""
        raw = self._read()  # (n, R)
        for i, delay in enumerate(self._delay):
            self.suite.features_into(delay.push(raw[i]), self._obs[i])
        self._obs[:, self._features :] = self.sim.last_action

    def observe(self) -> np.ndarray:
        return self._obs.copy()  # (n, Ds)
