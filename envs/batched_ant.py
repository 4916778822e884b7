"""`BatchedAnt`: n randomized Ant-v5 simulations stepped together by `mujoco.batch`.

Ant-v5 observes and pays for the bodies' external contact forces (`cfrc_ext`), which MuJoCo computes
only in `mj_rnePostConstraint`; Gymnasium calls it after every `mj_step`. A batch step does not, so
each simulation's MjData is read out (`Batch.get_data`) and the same call is made on it: for the same
seeds and dynamics the privileged observations, rewards and terminations equal the single env's bit for
bit (tests/test_batched.py). It costs ~25% of a batch step (measured on 16 simulations).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np
from gymnasium.envs.mujoco.ant_v5 import AntEnv

from envs.batched import BatchedTask


@dataclass(frozen=True)
class AntRules:
    """Ant-v5's rules as numbers, read from the constructed Gymnasium env (not copied)."""

    frame_skip: int
    dt: float
    forward_weight: float
    ctrl_weight: float
    contact_weight: float
    contact_range: tuple[float, float]  # cfrc_ext is clipped to it, in the observation and the cost
    healthy_reward: float
    z_range: tuple[float, float]  # torso height qpos[2] inside, inclusive, or unhealthy
    main_body: int  # whose xy displacement is the forward reward
    noise_scale: float
    init_qpos: np.ndarray  # (nq,)
    init_qvel: np.ndarray  # (nv,)
    normal_qvel_noise: bool = True  # qvel reset noise scale·N(0, 1), as HalfCheetah's

    @classmethod
    def of(cls, base: AntEnv) -> AntRules:
        if not isinstance(base, AntEnv):
            raise ValueError(f"no batched Ant rules for {type(base).__name__}")
        defaults = (
            base._exclude_current_positions_from_observation and base._include_cfrc_ext_in_observation
            and base._terminate_when_unhealthy
        )  # fmt: skip
        if not defaults:
            raise ValueError("batched Ant expects Ant-v5's default observation and termination")
        main = base._main_body
        if not isinstance(main, int):
            main = mujoco.mj_name2id(base.model, mujoco.mjtObj.mjOBJ_BODY, main)
        return cls(
            frame_skip=int(base.frame_skip), dt=float(base.dt),
            forward_weight=float(base._forward_reward_weight), ctrl_weight=float(base._ctrl_cost_weight),
            contact_weight=float(base._contact_cost_weight), contact_range=tuple(base._contact_force_range),
            healthy_reward=float(base._healthy_reward), z_range=tuple(base._healthy_z_range),
            main_body=int(main), noise_scale=float(base._reset_noise_scale),
            init_qpos=base.init_qpos.copy(), init_qvel=base.init_qvel.copy(),
        )  # fmt: skip


class BatchedAnt(BatchedTask):
    """`BatchedTask` with Ant-v5's observation (contact forces included), reward and termination."""

    def __init__(self, n: int, randomization: Mapping[str, Any] | None = None, nthread: int = 0):
        super().__init__("ant", n, randomization, nthread=nthread)
        self._model = self.batch.model
        self._scratch = mujoco.MjData(self._model)  # one simulation's MjData, read out of the batch
        self._xpos = self.batch.bind("xpos")  # (n, nbody, 3), as after mj_step: before the last substep
        # (n, nbody, 6) cfrc_ext after the last step clipped to the contact range (all Ant-v5 ever reads of
        # it, in the observation and the cost), 0 at reset
        self._forces = np.zeros((n, self._model.nbody, 6))

    def _rules_of(self, base: Any) -> AntRules:
        return AntRules.of(base)

    def _reset_rows(self, ids: np.ndarray) -> None:
        self._forces[ids] = 0.0  # a reset's mj_resetData + mj_forward leave cfrc_ext zero

    def _contact_forces(self, ids) -> None:
        """Clipped cfrc_ext of simulations `ids`, as Gymnasium's `mj_rnePostConstraint` after `mj_step`
        gives it (it reads the state, the contacts and their forces, none of the randomized model fields)."""
        for i in ids:
            self.batch.get_data(i, self._scratch)
            mujoco.mj_rnePostConstraint(self._model, self._scratch)
            np.clip(self._scratch.cfrc_ext, *self.rules.contact_range, out=self._forces[i])

    def observe(self, ids: np.ndarray | None = None) -> np.ndarray:
        """Privileged observations (n, Dp) float32: qpos[2:], qvel, clipped cfrc_ext[1:], parameters."""
        rows = slice(None) if ids is None else ids
        qpos, qvel, params = self._qpos[rows], self._qvel[rows], self._params[rows]
        forces = self._forces[rows, 1:].reshape(len(qpos), -1)
        return np.concatenate([qpos[:, 2:], qvel, forces, params], axis=1).astype(np.float32)

    def step(
        self, actions: np.ndarray, ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """actions (n, nu), clipped to the bounds -> obs (n, Dp), reward, terminated, truncated (n,).
        `ids`: only these simulations move (None: all); the other rows' results mean nothing."""
        r = self.rules
        act = np.clip(actions, self.action_low, self.action_high, out=self._act)  # (n, nu) f64, as single
        xy_before = self._xpos[:, r.main_body, :2].copy()  # (n, 2)
        self._ctrl[:] = act
        self.batch.step(ids, nstep=r.frame_skip)
        self._contact_forces(range(self.n) if ids is None else ids)
        self.elapsed += 1
        qpos, qvel = self._qpos, self._qvel
        x_velocity = ((self._xpos[:, r.main_body, :2] - xy_before) / r.dt)[:, 0]  # (n,)
        finite = np.isfinite(qpos).all(1) & np.isfinite(qvel).all(1)
        healthy = finite & (r.z_range[0] <= qpos[:, 2]) & (qpos[:, 2] <= r.z_range[1])  # (n,)
        rewards = x_velocity * r.forward_weight + healthy * r.healthy_reward  # the -v5 order of terms
        contact = np.square(self._forces).reshape(self.n, -1).sum(1)
        costs = r.ctrl_weight * np.square(act).sum(1) + r.contact_weight * contact
        truncated = self.elapsed >= self.max_steps
        return self.observe(), rewards - costs, ~healthy, truncated
