"""The task's simulator as a function of dynamics parameters: segment rollouts and predicted readings.

A segment starts from a state (qpos, qvel), replays logged actions and predicts the sensor features
the task's sensor suite would read after every control step, noise-free. Parameters are written
with the same rules as randomization (`envs.randomization.apply`), so identification and training
mean the same thing by "mass_scale". Many segments x many parameter vectors run through
`mujoco.rollout` on a thread pool.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import gymnasium as gym
import mujoco
import numpy as np
from mujoco import rollout

import envs
from envs import parameters
from envs import randomization as dr

STATE = mujoco.mjtState.mjSTATE_FULLPHYSICS


class TaskSim:
    """One task's model, its control period and sensor suite, for open-loop segment predictions."""

    def __init__(self, task: str):
        env = gym.make(envs.env_id(task))
        u = env.unwrapped
        self.task, self.env = task, env
        self.model: mujoco.MjModel = u.model
        self.frame_skip = int(u.base.frame_skip)
        self.dt = float(u.dt)
        self.sensors = u.sensors
        self.feature_names: tuple[str, ...] = tuple(u.sensors.names)
        self.action_names: tuple[str, ...] = tuple(u.action_names)
        self.nominal = dr.NominalModel.of(self.model)
        self.nq, self.nv, self.nu = self.model.nq, self.model.nv, self.model.nu
        self._data = mujoco.MjData(self.model)
        self._read = self.sensors.bind(self._data)
        self._n_threads = 2

    def close(self) -> None:
        self.env.close()

    def model_with(self, dynamics: Mapping[str, float]) -> mujoco.MjModel:
        """A copy of the nominal model with the physical parameters of `dynamics` applied."""
        m = copy.copy(self.model)
        full = {**parameters.nominal(self.task), **dynamics}
        dr.apply(m, self.nominal, full)
        mujoco.mj_setConst(m, mujoco.MjData(m))
        return m

    def features(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """Noise-free sensor features (F,) of one state."""
        d = self._data
        d.qpos[:], d.qvel[:] = qpos, qvel
        mujoco.mj_forward(self.model, d)
        return self.sensors.features(self._read().copy())

    def state_vector(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """The rollout's initial state of (qpos, qvel): its layout does not depend on the parameters."""
        d = self._data
        d.qpos[:], d.qvel[:], d.time = qpos, qvel, 0.0
        out = np.empty(mujoco.mj_stateSize(self.model, STATE))
        mujoco.mj_getState(self.model, d, out, STATE)
        return out

    def predict(
        self,
        models: Sequence[mujoco.MjModel],
        starts: np.ndarray,
        actions: np.ndarray,
    ) -> np.ndarray:
        """Predicted features after each control step.

        models: one per rollout (B,); starts (B, nq + nv): [qpos, qvel] of each rollout's first step;
        actions (B, K-1, nu) -> features (B, K, F), row 0 at the start.
        """
        b, k1, _ = actions.shape
        init = np.stack([self.state_vector(s[: self.nq], s[self.nq :]) for s in starts])
        control = np.repeat(actions, self.frame_skip, axis=1)  # (B, (K-1)·fs, nu)
        datas = [mujoco.MjData(models[0]) for _ in range(self._n_threads)]
        states, _ = rollout.rollout(list(models), datas, init, control)  # (B, (K-1)·fs, nstate)
        at_steps = states[:, self.frame_skip - 1 :: self.frame_skip]  # (B, K-1, nstate)
        out = np.empty((b, k1 + 1, len(self.feature_names)))
        for i in range(b):
            out[i, 0] = self.features(starts[i, : self.nq], starts[i, self.nq :])
            for t in range(k1):
                qpos = at_steps[i, t, 1 : 1 + self.nq]
                qvel = at_steps[i, t, 1 + self.nq : 1 + self.nq + self.nv]
                out[i, t + 1] = self.features(qpos, qvel)
        return out
