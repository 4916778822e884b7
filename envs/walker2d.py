"""Walker2d: Gymnasium's Walker2d-v5 model and reward, randomized, with a student/privileged split."""

from __future__ import annotations

from typing import Any

from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv

from envs.legged import make_legged


def make_task(randomization: dict | None = None, **kwargs: Any):
    return make_legged(Walker2dEnv, "walker2d", randomization, **kwargs)
