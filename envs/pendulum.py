"""PendulumSwingup: the quick task. A torque-limited pendulum that must swing up and balance.

Student: noisy, delayed (cos, sin) of the hinge angle and the previous action; no velocity, so a
policy must infer it from history. Privileged: true (cos, sin, angular velocity) + parameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gymnasium.envs.mujoco import MujocoEnv
from gymnasium.spaces import Box

from envs.sensors import pendulum_suite
from envs.task import RandomizedTask

XML = Path(__file__).parent / "assets" / "pendulum.xml"


class PendulumSwingupBase(MujocoEnv):
    """Bare MuJoCo pendulum (no randomization, full state); the benchmark's reference env.

    Reward as Gymnasium's Pendulum-v1: -(angle² + 0.1·vel² + 0.001·torque²), angle 0 upright.
    """

    metadata = {"render_modes": ["human", "rgb_array", "depth_array"], "render_fps": 20}  # noqa: RUF012

    def __init__(self, **kwargs: Any):
        obs_space = Box(-np.inf, np.inf, shape=(3,), dtype=np.float64)
        super().__init__(str(XML), frame_skip=5, observation_space=obs_space, **kwargs)

    def step(self, action):
        self.do_simulation(action, self.frame_skip)
        theta, vel = self.data.qpos[0], self.data.qvel[0]
        angle = (theta + np.pi) % (2 * np.pi) - np.pi
        u = float(action[0])
        reward = -(angle**2 + 0.1 * vel**2 + 0.001 * u**2)
        return self._get_obs(), reward, False, False, {"upright": float(np.cos(theta))}

    def reset_model(self):
        qpos = self.np_random.uniform(-np.pi, np.pi, size=1)
        qvel = self.np_random.uniform(-1.0, 1.0, size=1)
        self.set_state(qpos, qvel)
        return self._get_obs()

    def _get_obs(self) -> np.ndarray:
        theta, vel = self.data.qpos[0], self.data.qvel[0]
        return np.array([np.cos(theta), np.sin(theta), vel])


def make_task(randomization: dict | None = None, **kwargs: Any) -> RandomizedTask:
    return RandomizedTask(PendulumSwingupBase(**kwargs), pendulum_suite, randomization, "pendulum")
