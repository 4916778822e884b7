"""`MujocoRobot`: the task's simulator behind the `Robot` protocol (sim2sim), with dynamics the user fixes.

It lives outside `sim2real.deploy` because it needs the simulator; the runtime never imports it.

Its readings are the task env's student features by name (everything but `prev_action/*`), so they
carry the simulated sensors' noise and latency: the simulator's imitation of a real robot's
sensors. It imports gymnasium/mujoco, so it lives apart from the lean runtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


class MujocoRobot:
    """Lockstep simulated robot: `send(action)` advances the task env by one control step."""

    def __init__(
        self,
        task: str,
        dynamics: Mapping[str, float] | None = None,
        randomization: Mapping[str, Any] | None = None,
        seed: int = 0,
    ):
        self.task = task
        self.dynamics = dict(dynamics or {})
        self.randomization = dict(randomization or {})
        self.seed = seed
        self.reading_names: tuple[str, ...] = ()
        self.action_names: tuple[str, ...] = ()
        self.env = None
        self._obs: dict[str, np.ndarray] = {}
        self._extras: dict[str, Any] = {}

    def connect(self) -> None:
        import gymnasium as gym

        import envs
        from envs.observations import PREV_ACTION_PREFIX

        self.env = gym.make(envs.env_id(self.task), randomization=self.randomization)
        task = self.env.unwrapped
        names = task.student_names
        self.reading_names = tuple(n for n in names if not n.startswith(PREV_ACTION_PREFIX))
        self.action_names = tuple(task.action_names)
        self.privileged_dim = int(task.privileged_dim)
        self.control_dt = float(task.dt)
        self.reset(self.seed)

    def reset(self, seed: int | None = None) -> None:
        obs, info = self.env.reset(seed=seed, options={"dynamics": self.dynamics})
        self._obs = obs
        self._extras = {
            "reward": None,
            "done": 0.0,
            "privileged": obs["privileged"],
            "dynamics": info["dynamics"],
        }
        self.dynamics_names = tuple(info["dynamics"])

    def read(self) -> Mapping[str, float]:
        features = self._obs["student"][: len(self.reading_names)].tolist()
        return dict(zip(self.reading_names, features, strict=True))

    def send(self, action: np.ndarray) -> None:
        obs, reward, terminated, truncated, info = self.env.step(np.asarray(action, np.float32))
        self._obs = obs
        self._extras.update(
            reward=float(reward),
            done=float(terminated or truncated),
            privileged=obs["privileged"],
            terminated=bool(terminated),
            falls=list(info.get("falls", ())) if terminated else [],  # the conditions that ended it (Go2)
        )

    @property
    def takes_motor_commands(self) -> bool:
        """Whether the task runs motor commands (targets and gains) itself, as the Go2's motors do."""
        return self.env is not None and hasattr(self.env.unwrapped.base, "hold_motor_command")

    def send_motor_command(self, q, dq, kp, kd, tau) -> None:
        """One control step under a raw motor command ((A,) each, in the action order)."""
        self.env.unwrapped.base.hold_motor_command(q, dq, kp, kd, tau)
        self.send(np.zeros(len(self.action_names), np.float32))

    def extras(self) -> Mapping[str, Any]:
        """reward of the last step, done (1.0 at the episode end), privileged obs, the dynamics."""
        return self._extras

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None
