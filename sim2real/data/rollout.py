"""Vectorized expert rollouts: n envs stepped together, one batched `expert.act` per step.

Every episode is a pure function of its seed: the env is reset with it (dynamics and initial state)
and the DART noise stream is seeded from it, so the recorded seed replays the episode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

import envs
from sim2real.data.schema import Episode, StoreSpec
from sim2real.teacher.expert import Expert


def make_vector_env(task: str, ranges: dict, n_envs: int, asynchronous: bool = False) -> gym.vector.VectorEnv:
    """`n_envs` randomized copies of `task` with autoreset off (each env is reset with its own seed)."""
    gym_id = envs.env_id(task)
    fns: list[Callable[[], gym.Env]] = [lambda: gym.make(gym_id, randomization=ranges) for _ in range(n_envs)]
    cls = AsyncVectorEnv if asynchronous else SyncVectorEnv
    return cls(fns, autoreset_mode=AutoresetMode.DISABLED)


def task_spec(task: str, ranges: dict | None = None) -> StoreSpec:
    """The store spec of a task, from one env made for the purpose (vector envs may live elsewhere)."""
    env = gym.make(envs.env_id(task), randomization=ranges)
    try:
        return StoreSpec.from_env(env)
    finally:
        env.close()


@dataclass
class _Buffers:
    """Per-env step buffers (n, T_max, ...) filled in place, grown if an episode runs longer."""

    student: np.ndarray
    privileged: np.ndarray
    action: np.ndarray
    label: np.ndarray
    reward: np.ndarray

    @classmethod
    def empty(cls, n: int, t: int, ds: int, dp: int, da: int) -> _Buffers:
        z = np.zeros
        return cls(
            z((n, t, ds), "f4"),
            z((n, t, dp), "f4"),
            z((n, t, da), "f4"),
            z((n, t, da), "f4"),
            z((n, t), "f4"),
        )

    def ensure(self, t: int) -> None:
        if t < self.reward.shape[1]:
            return
        for name, a in vars(self).items():
            grown = np.zeros((a.shape[0], 2 * a.shape[1], *a.shape[2:]), a.dtype)
            grown[:, : a.shape[1]] = a
            setattr(self, name, grown)


class VectorRollout:
    """Runs episodes for a stream of (attempt, seed) pairs; yields (attempt, Episode) as they finish."""

    def __init__(self, venv: gym.vector.VectorEnv, expert: Expert, action_noise: float = 0.0):
        self.venv, self.expert, self.noise = venv, expert, float(action_noise)
        self.n = venv.num_envs
        space = venv.single_action_space
        self.low, self.high = space.low, space.high
        self.steps = 0  # env steps taken, finished or not
        self.dynamics_names = tuple(venv.get_attr("dynamics_names")[0])  # order of the stored vector
        spec = venv.get_attr("spec")[0]
        self._t_max = (spec.max_episode_steps if spec is not None else None) or 1000

    def episodes(self, attempts: Iterator[tuple[int, int]]) -> Iterator[tuple[int, Episode]]:
        n = self.n
        obs_space = self.venv.single_observation_space
        ds, dp = obs_space["student"].shape[0], obs_space["privileged"].shape[0]
        buf = _Buffers.empty(n, self._t_max, ds, dp, self.low.shape[0])
        t = np.zeros(n, dtype=np.int64)
        attempt, seed = np.full(n, -1), np.full(n, -1)
        dyn = np.full((n, len(self.dynamics_names)), np.nan)
        rngs: list[np.random.Generator | None] = [None] * n
        obs = self._reset(np.ones(n, bool), attempts, attempt, seed, dyn, rngs)
        active = attempt >= 0
        while active.any():
            label = np.asarray(self.expert.act(obs["privileged"]), dtype=np.float32).reshape(n, -1)  # (n, Da)
            executed = self._perturb(label, rngs, active)
            buf.ensure(int(t.max()))
            rows = np.arange(n)
            buf.student[rows, t], buf.privileged[rows, t] = obs["student"], obs["privileged"]
            buf.action[rows, t], buf.label[rows, t] = executed, label
            obs, reward, term, trunc, _ = self.venv.step(executed)
            buf.reward[rows, t] = reward
            t += 1
            self.steps += int(active.sum())
            ended = term | trunc
            done = ended & active
            for i in np.flatnonzero(done):
                yield int(attempt[i]), self._episode(buf, i, int(t[i]), int(seed[i]), dyn[i], bool(term[i]))
            if ended.any():  # an idle env stepped along to its episode's end is reset too (autoreset is off)
                t[done] = 0
                obs = self._reset(done, attempts, attempt, seed, dyn, rngs, idle=ended & ~active)
                active = attempt >= 0

    def _reset(self, mask, attempts, attempt, seed, dyn, rngs, idle=None) -> dict[str, np.ndarray]:
        """Reset the envs in `mask` with the next seeds; an env with no attempt left goes idle. Idle envs
        in `idle` (their throwaway episode ended) are reset unseeded, drawing no attempt."""
        seeds: list[int | None] = [None] * self.n
        for i in np.flatnonzero(mask):
            nxt = next(attempts, None)
            attempt[i], seed[i] = nxt if nxt is not None else (-1, -1)
            seeds[i] = None if nxt is None else int(seed[i])
            rngs[i] = None if nxt is None else np.random.default_rng([int(seed[i]), 1])
        which = np.asarray(mask, bool) if idle is None else np.asarray(mask, bool) | idle
        obs, info = self.venv.reset(seed=seeds, options={"reset_mask": which})
        got = info.get("dynamics", {})
        for k, name in enumerate(self.dynamics_names):
            if name in got:
                dyn[mask, k] = np.asarray(got[name], dtype=np.float64)[mask]
        return obs

    def _perturb(self, label: np.ndarray, rngs, active) -> np.ndarray:
        """The executed action: the expert's, plus DART noise from each episode's own stream."""
        if self.noise <= 0:
            return label
        z = np.stack(
            [r.standard_normal(label.shape[1]) if r is not None else np.zeros(label.shape[1]) for r in rngs]
        )
        return np.clip(label + self.noise * z, self.low, self.high).astype(np.float32)

    @staticmethod
    def _episode(buf: _Buffers, i: int, length: int, seed: int, dyn: np.ndarray, terminated: bool) -> Episode:
        return Episode(
            student_obs=buf.student[i, :length].copy(),
            privileged_obs=buf.privileged[i, :length].copy(),
            action=buf.action[i, :length].copy(),
            expert_action=buf.label[i, :length].copy(),
            reward=buf.reward[i, :length].copy(),
            seed=seed,
            dynamics=dyn.copy(),
            terminated=terminated,
        )
