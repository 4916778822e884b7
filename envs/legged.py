"""Shared construction of the locomotion tasks built on Gymnasium's `-v5` MuJoCo models and rewards.

The base env is Gymnasium's own class, so `obs["privileged"]` begins with exactly the `-v5`
observation and published experts for those envs act as oracles.
"""

from __future__ import annotations

from typing import Any

from gymnasium.envs.mujoco import MujocoEnv

from envs.sensors import legged_suite
from envs.task import RandomizedTask


def make_legged(base_cls: type[MujocoEnv], task: str, randomization: dict | None, **kwargs: Any):
    return RandomizedTask(base_cls(**kwargs), legged_suite, randomization, task)
