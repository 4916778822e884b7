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

import envs
from envs import parameters
from envs import randomization as dr
from envs.observations import DelayedNoisySensor, ObservationBuilder, student_names
from envs.sensors import SensorSuite

try:  # the ufunc behind np.clip, without np.clip's Python-level argument handling (~2 µs a call)
    from numpy._core.umath import clip as _clip
except ImportError:  # numpy < 2
    from numpy.core.umath import clip as _clip


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
        self.ranges = parameters.make_ranges(randomization, envs.task_ranges(task), task=task or None)
        self.dynamics_names = tuple(self.ranges)  # info["dynamics"] keys, in the stores' order
        self._physical = parameters.physical(task or None)
        self._nominal = dr.NominalModel.of(base.model)
        self.sensors = make_sensors(base.model)
        self.action_names = _actuator_names(base.model)
        self.student_names = student_names(self.sensors.names, self.action_names)
        # the base's action bounds (Gymnasium's: the actuators' ctrlrange, [-1, 1] for the -v5 tasks)
        low, high = (
            np.asarray(base.action_space.low, np.float64),
            np.asarray(base.action_space.high, np.float64),
        )
        self.action_space = gym.spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        base_dim = base.observation_space.shape[0]
        self.privileged_dim = base_dim + len(self._physical)
        self.observation_space = gym.spaces.Dict(
            {
                "student": _box(len(self.student_names)),
                "privileged": _box(self.privileged_dim),
            }
        )
        self._delay = DelayedNoisySensor(len(self.sensors.noise_std), parameters.MAX_LATENCY_STEPS)
        self._read = self.sensors.bind(base.data)
        nu = base.model.nu
        self._builder = ObservationBuilder(
            len(self.sensors.names), self.sensors.features_into, nu, base_dim, len(self._physical)
        )
        self._action = np.zeros(nu)  # (nu,) last executed action, clipped; reused each step
        self._action_low, self._action_high = low, high
        self._dyn: dict[str, float] = parameters.nominal(task or None)

    @property
    def model(self) -> mujoco.MjModel:
        return self.base.model

    @property
    def data(self) -> mujoco.MjData:
        return self.base.data

    @property
    def dt(self) -> float:
        return float(self.base.dt)

    @property
    def param_columns(self) -> tuple[int, ...]:
        """Columns of `obs["privileged"]` holding the episode's physical parameters (after the base obs)."""
        return tuple(range(self.privileged_dim - len(self._physical), self.privileged_dim))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        overrides = (options or {}).get("dynamics")
        self._dyn = parameters.resolve(self.np_random, self.ranges, overrides)
        # one draw for the noise stream, so the noise is fixed by the seed alone
        noise_rng = np.random.default_rng(int(self.np_random.integers(2**63)))
        dr.apply(self.base.model, self._nominal, self._dyn)
        mujoco.mj_setConst(self.base.model, self.base.data)  # derived constants of the new masses
        self._builder.set_parameters([self._dyn[n] for n in self._physical])
        noise_std = self.sensors.noise_std * self._dyn["obs_noise_scale"]
        base_seed = None if seed is None else int(self.np_random.integers(2**31))
        # the rules' own parameters (motor gains, pushes) reach the base through its reset options
        base_obs, info = self.base.reset(seed=base_seed, options={"dynamics": self._dyn})
        self._action[:] = 0.0
        raw = self._delay.reset(self._read(), self._dyn["latency_steps"], noise_std, noise_rng)
        info["dynamics"] = self._dyn.copy()
        return self._builder.build(base_obs, raw, self._action), info

    def step(self, action):
        act = self._action  # the base must not keep a reference to it: it is rewritten every step
        _clip(action, self._action_low, self._action_high, out=act)
        base_obs, reward, terminated, truncated, info = self.base.step(act)
        raw = self._delay.push(self._read())
        info["dynamics"] = self._dyn.copy()  # a fresh dict: callers keep infos
        return self._builder.build(base_obs, raw, act), float(reward), bool(terminated), bool(truncated), info

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
