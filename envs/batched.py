"""`BatchedTask`: n randomized simulations of one locomotion task, stepped together by `mujoco.batch`.

The single env (`RandomizedTask` around Gymnasium's `-v5` class) steps one MjData from Python;
training a teacher that way is bound by Python per env step. Here MuJoCo steps all simulations on
a thread pool and the rules of the `-v5` env (observation, reward, health, reset noise) are
evaluated on (n, ...) arrays. Per-episode randomization writes per-simulation model fields
(`Batch.expand`) with the parameter table's own write rules, from nominal copies, so nothing
compounds. For the same seed and dynamics the privileged observations, rewards and terminations
equal the single env's (tests/test_batched.py): each simulation replays the single env's random
draws in the same order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import mujoco
import mujoco.batch
import numpy as np
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv
from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv
from gymnasium.utils import seeding

import envs
from envs import parameters
from envs import randomization as dr


@dataclass(frozen=True)
class Rules:
    """The `-v5` env's rules as numbers, read from the constructed Gymnasium env (not copied)."""

    frame_skip: int
    dt: float
    forward_weight: float
    ctrl_weight: float
    healthy_reward: float  # 0: no health terms (HalfCheetah)
    z_range: tuple[float, float] | None  # qpos[1] strictly inside, or unhealthy
    angle_range: tuple[float, float] | None  # qpos[2] strictly inside
    state_range: tuple[float, float] | None  # (qpos, qvel)[2:] strictly inside (Hopper)
    clip_qvel: float | None  # observation clips qvel to ±this
    noise_scale: float
    normal_qvel_noise: bool  # qvel reset noise: scale·N(0, 1) (else uniform ±scale)
    init_qpos: np.ndarray  # (nq,)
    init_qvel: np.ndarray  # (nv,)

    @classmethod
    def of(cls, base: Any) -> Rules:
        common = dict(
            frame_skip=int(base.frame_skip), dt=float(base.dt),
            forward_weight=float(base._forward_reward_weight), ctrl_weight=float(base._ctrl_cost_weight),
            noise_scale=float(base._reset_noise_scale),
            init_qpos=base.init_qpos.copy(), init_qvel=base.init_qvel.copy(),
        )  # fmt: skip
        if not base._exclude_current_positions_from_observation:
            raise ValueError(
                "batched tasks expect the -v5 default exclude_current_positions_from_observation"
            )
        if isinstance(base, HalfCheetahEnv):
            return cls(
                **common, healthy_reward=0.0, z_range=None, angle_range=None, state_range=None,
                clip_qvel=None, normal_qvel_noise=True,
            )  # fmt: skip
        if isinstance(base, HopperEnv | Walker2dEnv):
            if not base._terminate_when_unhealthy:
                raise ValueError("batched tasks expect terminate_when_unhealthy=True")
            hopper = isinstance(base, HopperEnv)
            return cls(
                **common, healthy_reward=float(base._healthy_reward), z_range=tuple(base._healthy_z_range),
                angle_range=tuple(base._healthy_angle_range),
                state_range=tuple(base._healthy_state_range) if hopper else None,
                clip_qvel=10.0, normal_qvel_noise=False,
            )  # fmt: skip
        raise ValueError(f"no batched rules for {type(base).__name__}")


BATCHED = ("hopper", "walker2d", "halfcheetah", "ant", "go2", "go2_rough")  # `Rules.of` reads the first three


def supports(task: str) -> bool:
    """Whether `task` can be stepped as a `BatchedTask` (its base env's rules are written here)."""
    return task in BATCHED


def make(task: str, n: int, randomization: Mapping[str, Any] | None = None, nthread: int = 0) -> BatchedTask:
    """n batched simulations of `task` (a `BatchedTask`, or the class that holds that task's rules)."""
    if task in ("go2", "go2_rough"):  # the Go2's own rules (envs.go2.Go2Rules)
        from envs.batched_go2 import BatchedGo2

        return BatchedGo2(n, randomization, nthread=nthread, task=task)
    if task == "ant":  # Ant-v5's contact forces and costs (envs.batched_ant)
        from envs.batched_ant import BatchedAnt

        return BatchedAnt(n, randomization, nthread=nthread)
    return BatchedTask(task, n, randomization, nthread=nthread)


class _SimFields:
    """Simulation i's rows of the expanded model fields, as attributes: what the write rules take."""

    def __init__(self, fields: Mapping[str, np.ndarray], i: int):
        self._fields, self._i = fields, i

    def __getattr__(self, name: str) -> np.ndarray:
        return self._fields[name][self._i]


class BatchedTask:
    """n simulations of `task` under randomization; privileged observations (n, Dp) float32.

    `reset(ids, seeds, overrides)` starts new episodes; `step(actions)` advances every simulation one
    control step and returns (obs, reward, terminated, truncated), without resetting: the caller
    (an SB3 VecEnv) decides when. `dynamics[i]` is simulation i's episode parameters.
    """

    render_mode = None  # nothing is rendered: SB3's VecEnv asks

    def __init__(self, task: str, n: int, randomization: Mapping[str, Any] | None = None, nthread: int = 0):
        if not supports(task):
            raise ValueError(f"task {task!r} has no batched simulation (batched: {', '.join(BATCHED)})")
        single = gym.make(envs.env_id(task), randomization=randomization).unwrapped
        self.task, self.n = task, n
        self.max_steps = envs.spec(task).episode_steps
        self.ranges = single.ranges
        self.rules = self._rules_of(single.base)
        self.action_low = single.action_space.low.astype(np.float64)  # (nu,)
        self.action_high = single.action_space.high.astype(np.float64)  # (nu,)
        model = single.base.model
        self._nominal = dr.NominalModel.of(model)
        self._physical = parameters.physical(task)
        self.batch = mujoco.batch.Batch(model, n, nthread=nthread, persistent=True)
        self._fields = {f: self.batch.expand(f) for f in self._nominal.fields}
        self._sims = [_SimFields(self._fields, i) for i in range(n)]
        self._qpos, self._qvel = self.batch.bind("qpos"), self.batch.bind("qvel")  # (n, nq), (n, nv)
        self._ctrl = self.batch.bind("ctrl")  # (n, nu)
        self._act = np.zeros((n, model.nu))  # (n, nu) clipped actions, rewritten every step
        self.nu = model.nu
        self.base_dim = single.base.observation_space.shape[0]
        self.obs_dim = single.privileged_dim
        self._params = np.zeros((n, len(self._physical)), dtype=np.float32)  # (n, K) privileged tail
        self._rng: list[np.random.Generator | None] = [None] * n  # the single env's np_random
        self._base_rng: list[np.random.Generator | None] = [None] * n  # its base env's np_random
        self.dynamics: list[dict[str, float]] = [parameters.nominal(task) for _ in range(n)]
        self.noise_seeds = [0] * n  # each episode's sensor-noise seed, drawn where the single env draws it
        self.sensors = single.sensors  # the single env's suite: `envs.batched_student` reads it batched
        self.elapsed = np.zeros(n, dtype=np.int64)  # control steps in the current episode
        pitch = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, "rooty")
        self._pitch_adr = int(model.jnt_qposadr[pitch]) if pitch >= 0 else None  # planar bodies' pitch
        single.close()

    @property
    def last_action(self) -> np.ndarray:
        """(n, nu) the actions of the last step as executed (clipped); the student's previous action."""
        return self._act

    @property
    def can_tilt(self) -> bool:
        return self._pitch_adr is not None

    def pitch(self) -> np.ndarray:
        """(n,) root pitch in rad, unwrapped (a somersault reads ~2π)."""
        return self._qpos[:, self._pitch_column()].copy()

    def tilt(self, ids: np.ndarray, angles: np.ndarray) -> None:
        """Add `angles` (len(ids),) rad to the root pitch of simulations `ids`, just after their reset:
        a start the nominal reset never gives (nose down, tail down), from which they drop and settle."""
        self._qpos[ids, self._pitch_column()] += angles
        self.batch.forward(ids)

    def _pitch_column(self) -> int:
        if self._pitch_adr is None:
            raise ValueError(f"task {self.task!r} has no planar root pitch joint ('rooty')")
        return self._pitch_adr

    def _rules_of(self, base: Any) -> Any:
        """The rules this class evaluates, read from the single env's base."""
        return Rules.of(base)

    def reset(
        self,
        ids: Sequence[int] | np.ndarray,
        seeds: Sequence[int | None] | None = None,
        overrides: Mapping[str, float] | None = None,
    ) -> None:
        """New episodes in simulations `ids` (seed None: continue that simulation's random stream)."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size == 0:
            return
        seeds = [None] * ids.size if seeds is None else list(seeds)
        qpos = np.empty((ids.size, self._qpos.shape[1]))
        qvel = np.empty((ids.size, self._qvel.shape[1]))
        for k, (i, seed) in enumerate(zip(ids, seeds, strict=True)):
            qpos[k], qvel[k] = self._draw(int(i), seed, overrides)
        self.batch.set_const(ids)
        self.batch.reset(ids, stage=mujoco.mjtStage.mjSTAGE_NONE)
        self._qpos[ids] = qpos
        self._qvel[ids] = qvel
        self.batch.forward(ids)
        self.elapsed[ids] = 0
        self._reset_rows(ids)

    def _reset_rows(self, ids: np.ndarray) -> None:
        """What else a new episode in simulations `ids` resets (the rules' own memory)."""

    def _draw(self, i: int, seed: int | None, overrides: Mapping[str, float] | None):
        """Simulation i's episode, drawn in the single env's order; writes its model fields."""
        if seed is not None or self._rng[i] is None:
            self._rng[i] = seeding.np_random(seed)[0]
        rng = self._rng[i]
        dyn = parameters.resolve(rng, self.ranges, overrides)
        self.noise_seeds[i] = int(rng.integers(2**63))  # the single env's sensor-noise stream
        if seed is not None or self._base_rng[i] is None:
            base_seed = None if seed is None else int(rng.integers(2**31))
            self._base_rng[i] = seeding.np_random(base_seed)[0]
        dr.apply(self._sims[i], self._nominal, dyn)
        self._params[i] = [dyn[n] for n in self._physical]
        self.dynamics[i] = dyn
        return self._initial_state(i, self._base_rng[i])

    def _initial_state(self, i: int, base_rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Simulation i's (qpos, qvel) at reset, drawn as the base env's `reset_model` draws them."""
        r, s = self.rules, self.rules.noise_scale
        qpos = r.init_qpos + base_rng.uniform(-s, s, size=r.init_qpos.size)
        if r.normal_qvel_noise:
            qvel = r.init_qvel + s * base_rng.standard_normal(r.init_qvel.size)
        else:
            qvel = r.init_qvel + base_rng.uniform(-s, s, size=r.init_qvel.size)
        return qpos, qvel

    def observe(self, ids: np.ndarray | None = None) -> np.ndarray:
        """Privileged observations (n, Dp) float32 of every simulation (or of `ids` only): the -v5
        observation, then the physical parameters."""
        rows = slice(None) if ids is None else ids
        qpos, qvel, params = self._qpos[rows], self._qvel[rows], self._params[rows]
        obs = np.empty((len(qpos), self.obs_dim), dtype=np.float32)
        nq1 = qpos.shape[1] - 1
        obs[:, :nq1] = qpos[:, 1:]
        r = self.rules
        obs[:, nq1 : self.base_dim] = (
            qvel if r.clip_qvel is None else np.clip(qvel, -r.clip_qvel, r.clip_qvel)
        )
        obs[:, self.base_dim :] = params
        return obs

    def step(
        self, actions: np.ndarray, ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """actions (n, nu), clipped to the bounds -> obs (n, Dp), reward, terminated, truncated (n,).
        `ids`: only these simulations move (None: all); the other rows' results mean nothing."""
        r = self.rules
        act = np.clip(actions, self.action_low, self.action_high, out=self._act)  # (n, nu) f64, as single
        x_before = self._qpos[:, 0].copy()
        self._ctrl[:] = act
        self.batch.step(ids, nstep=r.frame_skip)
        self.elapsed += 1
        qpos, qvel = self._qpos, self._qvel
        reward = r.forward_weight * ((qpos[:, 0] - x_before) / r.dt)  # (n,) in the -v5 order of terms
        terminated = np.zeros(self.n, dtype=bool)
        if r.z_range is not None:
            healthy = self._healthy(qpos, qvel)
            reward += healthy * r.healthy_reward
            terminated = ~healthy
        reward -= r.ctrl_weight * np.square(act).sum(1)
        truncated = self.elapsed >= self.max_steps
        return self.observe(), reward, terminated, truncated

    def _healthy(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        r = self.rules
        ok = (r.z_range[0] < qpos[:, 1]) & (qpos[:, 1] < r.z_range[1])
        ok &= (r.angle_range[0] < qpos[:, 2]) & (qpos[:, 2] < r.angle_range[1])
        if r.state_range is not None:
            lo, hi = r.state_range
            ok &= ((lo < qpos[:, 2:]) & (qpos[:, 2:] < hi)).all(1) & ((lo < qvel) & (qvel < hi)).all(1)
        return ok
