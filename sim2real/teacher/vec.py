"""Vectorized randomized training envs that expose only `obs["privileged"]` to SB3."""

from __future__ import annotations

import functools
import os
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecMonitor

import envs

VEC_KINDS = ("auto", "dummy", "subproc")
# below this many usable cores, worker processes only add IPC cost (measured: benchmarks/teacher.py)
SUBPROC_MIN_CORES = 4


class SelectObs(gym.ObservationWrapper):
    """One part of the task's dict observation: "privileged" for the teacher (ground truth and the
    episode's physical parameters), "student" for RL baselines (only what the robot's sensors give)."""

    def __init__(self, env: gym.Env, key: str):
        super().__init__(env)
        self.key = key
        self.observation_space = env.observation_space[key]

    def observation(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return observation[self.key]


def make_privileged_env(task: str, ranges: dict[str, Any]) -> gym.Env:
    return SelectObs(gym.make(envs.env_id(task), randomization=ranges), "privileged")


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve_vec_kind(kind: str, n_envs: int) -> str:
    if kind not in VEC_KINDS:
        raise ValueError(f"teacher.vec_env={kind!r}: expected one of {', '.join(VEC_KINDS)}")
    if kind == "auto":
        return "subproc" if n_envs > 1 and usable_cores() >= SUBPROC_MIN_CORES else "dummy"
    return kind


def make_training_env(task: str, ranges: dict[str, Any], n_envs: int, kind: str, seed: int) -> VecEnv:
    """`n_envs` randomized envs (env i seeded `seed + i`), with episode statistics for SB3's logs."""
    factory = functools.partial(make_privileged_env, task, ranges)
    if resolve_vec_kind(kind, n_envs) == "subproc":
        venv: VecEnv = SubprocVecEnv([factory] * n_envs)
    else:
        venv = DummyVecEnv([factory] * n_envs)
    venv.seed(seed)
    return VecMonitor(venv)
