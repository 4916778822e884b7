"""n episodes of a task stepped in lockstep, as students act in them: both observations of every env.

Students act in many envs at once (fine-tuning's rollouts, DAgger, evaluation): one streaming forward
per control step serves them all. `GymLockstep` steps Gymnasium envs one by one in Python (any task);
`BatchedLockstep` steps `mujoco.batch` simulations on a thread pool (the tasks of `envs.batched`, whose
sensor suites read batched) and gives the same observations, rewards and terminations for the same seeds.
Neither resets an env by itself: the caller decides when, with which seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

import envs
from envs import batched

KINDS = ("auto", "batch", "gym")


class Lockstep(Protocol):
    n: int
    action_low: np.ndarray  # (Da,)
    action_high: np.ndarray  # (Da,)
    privileged_dim: int

    def reset(self, ids: Sequence[int] | np.ndarray, seeds: Sequence[int]) -> None:
        """New episodes in envs `ids`, seeded one by one."""

    def observe(self) -> tuple[np.ndarray, np.ndarray]:
        """(student (n, Ds), privileged (n, Dp)) float32 of every env now: fresh arrays."""

    def step(self, actions: np.ndarray, live: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """actions (n, Da) -> reward (n,) float64, terminated (n,), truncated (n,). Envs outside `live`
        (n,) bool may be stepped or not; their results mean nothing."""

    def dynamics(self, i: int) -> dict[str, float]:
        """Env i's episode parameters (fixed from its reset to its end)."""

    def close(self) -> None: ...


class GymLockstep:
    """Gymnasium envs (the task's dict observation), stepped one by one."""

    def __init__(self, env_list: Sequence[gym.Env]):
        self.envs, n = list(env_list), len(env_list)
        self.n = n
        space = self.envs[0].action_space
        self.action_low, self.action_high = space.low, space.high
        self.privileged_dim = self.envs[0].observation_space["privileged"].shape[0]
        self._obs: list[dict[str, np.ndarray]] = [{} for _ in range(n)]
        self._dyn: list[dict[str, float]] = [{} for _ in range(n)]

    def reset(self, ids: Sequence[int] | np.ndarray, seeds: Sequence[int]) -> None:
        for i, seed in zip(ids, seeds, strict=True):
            self._obs[i], info = self.envs[i].reset(seed=int(seed))
            self._dyn[i] = info["dynamics"]

    def observe(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.stack([o["student"] for o in self._obs]), np.stack([o["privileged"] for o in self._obs]))

    def step(self, actions: np.ndarray, live: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        reward, term, trunc = np.zeros(self.n), np.zeros(self.n, bool), np.zeros(self.n, bool)
        for i in range(self.n) if live is None else np.flatnonzero(live):
            self._obs[i], reward[i], term[i], trunc[i], _ = self.envs[i].step(actions[i])
        return reward, term, trunc

    def dynamics(self, i: int) -> dict[str, float]:
        return dict(self._dyn[i])

    def close(self) -> None:
        for env in self.envs:
            env.close()


class BatchedLockstep:
    """`mujoco.batch` simulations of `task` (`envs.batched`) with the student's observation as well."""

    def __init__(self, task: str, ranges: dict[str, Any] | None, n: int, nthread: int = 0):
        from envs.batched_student import BatchedStudentObs

        self.sim = batched.make(task, n, ranges, nthread=nthread)
        self.student = BatchedStudentObs(self.sim)
        self.n, self.privileged_dim = n, self.sim.obs_dim
        self.action_low = self.sim.action_low.astype(np.float32)
        self.action_high = self.sim.action_high.astype(np.float32)
        self._privileged = np.zeros((n, self.sim.obs_dim), dtype=np.float32)  # (n, Dp)

    def reset(self, ids: Sequence[int] | np.ndarray, seeds: Sequence[int]) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size == 0:
            return
        self.sim.reset(ids, seeds=[int(s) for s in seeds])
        self.student.reset(ids)
        self._privileged[ids] = self.sim.observe(ids)

    def observe(self) -> tuple[np.ndarray, np.ndarray]:
        return self.student.observe(), self._privileged.copy()

    def step(self, actions: np.ndarray, live: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        ids = None if live is None or live.all() else np.flatnonzero(live)
        self._privileged, reward, term, trunc = self.sim.step(actions, ids)
        self.student.step()
        return reward, term, trunc

    def dynamics(self, i: int) -> dict[str, float]:
        return dict(self.sim.dynamics[i])

    def close(self) -> None:
        pass  # the batch's threads end with it


def make(task: str, ranges: dict[str, Any] | None, n: int, kind: str = "auto", nthread: int = 0) -> Lockstep:
    """n lockstep envs of `task`: `batch` where the task has batched simulations under `auto`, else `gym`
    (`batch` for a task without them raises `envs.batched`'s ValueError naming it)."""
    if kind not in KINDS:
        raise ValueError(f"vec_env={kind!r}: expected one of {', '.join(KINDS)}")
    if kind == "batch" or (kind == "auto" and batched.supports(task)):
        return BatchedLockstep(task, ranges, n, nthread=nthread)
    return GymLockstep([gym.make(envs.env_id(task), randomization=ranges) for _ in range(n)])
