"""`RandomizedTask`: a MuJoCo env with domain randomization and a student/privileged observation split.

It wraps a bare Gymnasium MuJoCo env (the "base"): the base owns physics, reward and termination;
this class owns randomization (applied to the base's MjModel at every reset), the sensors the
student sees (noisy, delayed) and the privileged observation (base obs + physical parameters).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.envs.mujoco import MujocoEnv

from envs import randomization as dr
from envs.observations import DelayedNoisySensor, privileged_vector, student_names
from envs.sensors import SensorSuite


class RandomizedTask(gym.Env):
    """Dict observation {"student": (Ds,), "privileged": (Dp,)}, both float32.

    `reset(seed, options={"dynamics": {...}})` fixes named parameters for the episode;
    `info["dynamics"]` reports the values in force.
    """

    metadata = {"render_modes": []}  # noqa: RUF012

    def __init__(
        self,
        base: MujocoEnv,
        make_sensors: Callable[[mujoco.MjModel], SensorSuite],
        randomization: dict[str, Any] | None = None,
        task: str = "",
    ):
        self.base = base
        self.task = task
        self.ranges = dr.make_ranges(randomization)
        self._nominal = dr.NominalModel.of(base.model)
        self.sensors = make_sensors(base.model)
        self.action_names = _actuator_names(base.model)
        self.student_names = student_names(self.sensors.names, self.action_names)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(base.model.nu,), dtype=np.float32)
        base_dim = base.observation_space.shape[0]
        self.privileged_dim = base_dim + len(dr.PHYSICAL)
        self.observation_space = gym.spaces.Dict(
            {
                "student": _box(len(self.student_names)),
                "privileged": _box(self.privileged_dim),
            }
        )
        self._delay = DelayedNoisySensor(len(self.sensors.noise_std), dr.MAX_LATENCY_STEPS)
        self._noise_rng = np.random.default_rng()
        self._prev_action = np.zeros(base.model.nu)
        self._dyn: dict[str, float] = dict(dr.NOMINAL)
        self._dyn_vec = np.ones(len(dr.PHYSICAL))
        self._noise_std = np.zeros_like(self.sensors.noise_std)

    @property
    def model(self) -> mujoco.MjModel:
        return self.base.model

    @property
    def data(self) -> mujoco.MjData:
        return self.base.data

    @property
    def dt(self) -> float:
        return float(self.base.dt)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        overrides = (options or {}).get("dynamics")
        self._dyn = dr.resolve(self.np_random, self.ranges, overrides)
        # one draw for the noise stream, so the noise is fixed by the seed alone
        self._noise_rng = np.random.default_rng(int(self.np_random.integers(2**63)))
        dr.apply(self.base.model, self._nominal, self._dyn)
        self._dyn_vec = np.array([self._dyn[n] for n in dr.PHYSICAL])
        self._noise_std = self.sensors.noise_std * self._dyn["obs_noise_scale"]
        base_seed = None if seed is None else int(self.np_random.integers(2**31))
        base_obs, info = self.base.reset(seed=base_seed)
        self._prev_action[:] = 0.0
        raw = self._delay.reset(self._measure(), self._dyn["latency_steps"])
        info["dynamics"] = dict(self._dyn)
        return self._obs(base_obs, raw), info

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        base_obs, reward, terminated, truncated, info = self.base.step(action)
        self._prev_action[:] = action
        raw = self._delay.push(self._measure())
        info["dynamics"] = dict(self._dyn)
        return self._obs(base_obs, raw), float(reward), bool(terminated), bool(truncated), info

    def _measure(self) -> np.ndarray:
        raw = self.sensors.read(self.base.data)
        return raw + self._noise_std * self._noise_rng.standard_normal(raw.shape[0])

    def _obs(self, base_obs: np.ndarray, raw: np.ndarray) -> dict[str, np.ndarray]:
        student = np.concatenate([self.sensors.features(raw), self._prev_action]).astype(np.float32)
        return {"student": student, "privileged": privileged_vector(base_obs, self._dyn_vec)}

    def close(self) -> None:
        self.base.close()


def _actuator_names(model: mujoco.MjModel) -> tuple[str, ...]:
    """Actuator names; an unnamed actuator takes the name of the joint it drives."""
    names = []
    for i in range(model.nu):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, i)
        joint = int(model.actuator_trnid[i, 0])
        names.append(name or mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, joint) or f"act{i}")
    return tuple(names)


def _box(dim: int) -> gym.spaces.Box:
    return gym.spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float32)
