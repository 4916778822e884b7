"""HalfCheetah: Gymnasium's HalfCheetah-v5 model and reward, randomized, with a student/privileged split."""

from __future__ import annotations

from typing import Any

from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

from envs.legged import make_legged


def make_task(randomization: dict | None = None, **kwargs: Any):
    return make_legged(HalfCheetahEnv, "halfcheetah", randomization, **kwargs)
