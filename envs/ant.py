"""Ant: Gymnasium's Ant-v5 model and reward, randomized, with a student/privileged split."""

from __future__ import annotations

from typing import Any

from gymnasium.envs.mujoco.ant_v5 import AntEnv

from envs.legged import make_legged


def make_task(randomization: dict | None = None, **kwargs: Any):
    return make_legged(AntEnv, "ant", randomization, **kwargs)
