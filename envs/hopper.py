"""Hopper: Gymnasium's Hopper-v5 model and reward, randomized, with a student/privileged split."""

from __future__ import annotations

from typing import Any

from gymnasium.envs.mujoco.hopper_v5 import HopperEnv

from envs.legged import make_legged


def make_task(randomization: dict | None = None, **kwargs: Any):
    return make_legged(HopperEnv, "hopper", randomization, **kwargs)
