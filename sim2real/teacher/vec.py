"""Vectorized randomized training envs that expose only `obs["privileged"]` to SB3.

`batch` (the default where the task has batched rules, see `envs.batched`) steps every env in one
`mujoco.batch` call on a thread pool; `dummy` steps Gymnasium envs one by one in this process,
`subproc` in worker processes.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecEnvWrapper, VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

import envs
from envs import batched
from sim2real.teacher.curriculum import TerrainCurriculum

VEC_KINDS = ("auto", "batch", "dummy", "subproc")
# below this many usable cores, worker processes only add IPC cost (measured: benchmarks/teacher.py)
SUBPROC_MIN_CORES = 4


class SelectObs(gym.ObservationWrapper):
    """One part of the task's dict observation: "privileged" for the teacher (ground truth and the
    episode's physical parameters), "student" for RL baselines (only what the robot's sensors give)."""

    def __init__(self, env: gym.Env, key: str):
        super().__init__(env)
        self.key = key
        self.observation_space = env.observation_space[key]

    def observation(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return observation[self.key]


def make_privileged_env(task: str, ranges: dict[str, Any], record: bool = False) -> gym.Env:
    """The task's env showing the teacher its privileged observation; `record`: each finished episode
    (all of its observations) rides in the step's info (`teacher.record.EpisodeRecorder`)."""
    env = gym.make(envs.env_id(task), randomization=ranges)
    if record:
        from sim2real.teacher.record import EpisodeRecorder

        env = EpisodeRecorder(env)
    return SelectObs(env, "privileged")


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve_vec_kind(kind: str, n_envs: int, task: str, record: bool = False) -> str:
    """`auto`: batched where the task has batched rules (and episodes are not recorded: the batch builds
    no student observation), else worker processes where cores allow, else one process."""
    if kind not in VEC_KINDS:
        raise ValueError(f"teacher.vec_env={kind!r}: expected one of {', '.join(VEC_KINDS)}")
    if kind == "auto":
        if batched.supports(task) and not record:
            return "batch"
        return "subproc" if n_envs > 1 and usable_cores() >= SUBPROC_MIN_CORES else "dummy"
    if kind == "batch" and not batched.supports(task):
        raise ValueError(
            f"teacher.vec_env=batch: task {task!r} has no batched simulation "
            f"(batched: {', '.join(batched.BATCHED)}); use auto, dummy or subproc"
        )
    return kind


def make_training_env(
    task: str,
    ranges: dict[str, Any],
    n_envs: int,
    kind: str,
    seed: int,
    action_noise: float = 0.0,
    reset_pitch: Sequence[float] | None = None,
    command_period: int | None = None,
    record: bool = False,
    fall_penalty: float = 0.0,
    terrain_curriculum: bool = False,
    curriculum_progress: float = 0.0,
    max_pitch: float | None = None,
) -> VecEnv:
    """`n_envs` randomized envs (env i seeded `seed + i`), with episode statistics for SB3's logs;
    `action_noise` > 0 perturbs every executed action (`ActionNoise`); `reset_pitch` starts every
    episode pitched by U(low, high) rad (batched planar tasks: `BatchedVecEnv`); `command_period`
    redraws a commanded task's command that often (batched Go2); `terrain_curriculum` moves each env's
    terrain level by how its episodes end, and by how far they walked with `curriculum_progress` > 0
    (batched rough Go2: `TerrainCurriculum`); `max_pitch` ends an episode whose root pitch passes it
    (batched planar tasks); `record` hands every
    finished episode out in its info (`teacher.record`; Gymnasium envs only: the batched simulation builds
    no student observation)."""
    factory = functools.partial(make_privileged_env, task, ranges, record)
    kind = resolve_vec_kind(kind, n_envs, task, record)
    if record and kind == "batch":
        raise ValueError(
            "teacher.record_episodes needs teacher.vec_env=dummy or subproc: the batched simulation "
            "builds no student observation"
        )
    batch_only = {
        "reset_pitch": reset_pitch is not None,
        "command_period": command_period is not None,
        "terrain_curriculum": terrain_curriculum,
        "max_pitch": max_pitch is not None,
    }
    for name, on in batch_only.items():
        if on and kind != "batch":
            raise ValueError(f"teacher.{name} needs the batched simulation (teacher.vec_env={kind})")
    if kind == "batch":
        venv: VecEnv = BatchedVecEnv(
            task, ranges, n_envs, reset_pitch=reset_pitch, seed=seed, command_period=command_period,
            terrain_curriculum=terrain_curriculum, curriculum_progress=curriculum_progress,
            max_pitch=max_pitch,
        )  # fmt: skip
    elif kind == "subproc":
        venv = SubprocVecEnv([factory] * n_envs)
    else:
        venv = DummyVecEnv([factory] * n_envs)
    venv.seed(seed)
    if action_noise > 0:
        venv = ActionNoise(venv, action_noise, seed)
    venv = VecMonitor(venv)
    return FallPenalty(venv, fall_penalty) if fall_penalty > 0 else venv


class ActionNoise(VecEnvWrapper):
    """Gaussian noise on every executed action (std `sigma` × the action half-range), clipped to bounds.

    Why: a teacher trained only on its own precise actions has a narrow basin (HalfCheetah's, under
    action noise of std 0.1 / 0.3, stalled in a trap pose in 1 / 4 of 10 episodes), and its student's
    actions differ from its labels by about that much. Only the training env is perturbed: evaluation,
    collection and validation see the task as it is. Measured effect on the student: docs/results.md.
    """

    def __init__(self, venv: VecEnv, sigma: float, seed: int):
        super().__init__(venv)
        low, high = venv.action_space.low, venv.action_space.high  # (nu,)
        self.low, self.high, self.scale = low, high, sigma * (high - low) / 2
        self.rng = np.random.default_rng([seed, 0xAC7])  # its own stream: the envs' seeds are unchanged

    def step_async(self, actions: np.ndarray) -> None:
        noise = self.scale * self.rng.standard_normal(actions.shape)  # (n, nu)
        self.venv.step_async(np.clip(actions + noise, self.low, self.high).astype(np.float32))

    def reset(self) -> VecEnvObs:
        return self.venv.reset()

    def step_wait(self) -> VecEnvStepReturn:
        return self.venv.step_wait()


class ObsNoise(VecEnvWrapper):
    """Gaussian noise of std `sigma` on every entry of the normalized privileged observation the policy
    is trained on (wraps VecNormalize, so `sigma` is in units of each entry's running std).

    Why: the student never sees the clean state; it estimates it from noisy readings and history, and
    its estimate errs. A teacher whose actions hinge on exact values of its inputs (HalfCheetah seeds 1
    and 2: 12% and 34% lower return under input noise of std 0.1, seed 0: none) leaves labels the
    student cannot follow; legged-locomotion teachers are commonly trained on noisy inputs for this.
    Only what the policy sees during training is perturbed; the normalizer's statistics, evaluation,
    collection and validation see the task as it is.
    """

    def __init__(self, venv: VecEnv, sigma: float, seed: int):
        super().__init__(venv)
        self.sigma = sigma
        self.rng = np.random.default_rng([seed, 0x0B5])  # its own stream: the envs' seeds are unchanged

    def _noisy(self, obs: np.ndarray) -> np.ndarray:
        return (obs + self.sigma * self.rng.standard_normal(obs.shape)).astype(obs.dtype)  # (n, Dp)

    def reset(self) -> VecEnvObs:
        return self._noisy(self.venv.reset())

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        return self._noisy(obs), rewards, dones, infos


class HideColumns(VecEnvWrapper):
    """Columns of the normalized privileged observation set to 0 (their running mean) before the policy
    sees them: the teacher trains blind to them, and its saved normalizer zeroes them at every later use.

    Why: a teacher adapted to the physical parameters acts on what its student can never read; the
    student's imitation averages over them (docs/results.md, "What the student cannot see").
    """

    def __init__(self, venv: VecEnv, columns: tuple[int, ...]):
        super().__init__(venv)
        self.columns = list(columns)

    def _hide(self, obs: np.ndarray) -> np.ndarray:
        obs = np.array(obs, copy=True)  # (n, Dp)
        obs[:, self.columns] = 0.0
        return obs

    def reset(self) -> VecEnvObs:
        return self._hide(self.venv.reset())

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        return self._hide(obs), rewards, dones, infos


class FallPenalty(VecEnvWrapper):
    """`penalty` subtracted from the reward of a step that ends its episode in a fall (terminated, not
    cut by the time limit), after the task's own per-step clipping, as legged_gym adds its termination
    term after `only_positive_rewards`.

    Why: with rewards clipped at 0 per step a fall costs only the reward the episode would still have
    earned, little near a command change that the policy rushes to track (the Go2 teacher's falls come
    0.3-1 s after one). Training envs only; evaluation, collection and validation see the task's reward.
    """

    def __init__(self, venv: VecEnv, penalty: float):
        super().__init__(venv)
        self.penalty = float(penalty)

    def reset(self) -> VecEnvObs:
        return self.venv.reset()

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        cut = np.array([i.get("TimeLimit.truncated", False) for i in infos], dtype=bool)  # (n,)
        fell = dones & ~cut
        return obs, (rewards - self.penalty * fell).astype(rewards.dtype), dones, infos


class BatchedVecEnv(VecEnv):
    """SB3 VecEnv over `envs.batched.make(task)`: privileged observations, auto-reset as DummyVecEnv.

    Env i's first episode is seeded `seed + i` by `seed()`, later ones continue its stream, as a
    seeded DummyVecEnv of single envs does; terminal observations and `TimeLimit.truncated` are in
    the infos where SB3 looks for them.
    """

    def __init__(
        self,
        task: str,
        ranges: dict[str, Any] | None,
        n_envs: int,
        nthread: int = 0,
        reset_pitch: Sequence[float] | None = None,
        seed: int = 0,
        command_period: int | None = None,
        terrain_curriculum: bool = False,
        curriculum_progress: float = 0.0,
        max_pitch: float | None = None,
    ):
        self.sim = batched.make(task, n_envs, ranges, nthread=nthread or usable_cores())
        self.curriculum = None
        if terrain_curriculum:
            self.curriculum = TerrainCurriculum(task, ranges or {}, n_envs, seed, curriculum_progress)
            if curriculum_progress > 0 and not hasattr(self.sim, "progress"):
                raise ValueError(f"teacher.curriculum_progress: task {task!r} has no commanded walk")
        for name, value in (("reset_pitch", reset_pitch), ("max_pitch", max_pitch)):
            if value is not None and not self.sim.can_tilt:
                raise ValueError(f"teacher.{name}: task {task!r} has no planar root pitch")
        if command_period is not None:
            if not hasattr(self.sim, "set_command_period"):
                raise ValueError(f"teacher.command_period: task {task!r} has no resampled command")
            self.sim.set_command_period(command_period)
        self.reset_pitch = reset_pitch  # every episode starts pitched by U(low, high) rad (None: as reset)
        self._pitch_rng = np.random.default_rng([seed, 0x917C])  # its own stream: the envs' seeds unchanged
        self.max_pitch = max_pitch  # |root pitch| past it ends a training episode as a fall (None: never)
        obs_space = gym.spaces.Box(-np.inf, np.inf, shape=(self.sim.obs_dim,), dtype=np.float32)
        low, high = self.sim.action_low.astype(np.float32), self.sim.action_high.astype(np.float32)
        act_space = gym.spaces.Box(low, high, dtype=np.float32)
        super().__init__(n_envs, obs_space, act_space)
        self._actions = np.zeros((n_envs, self.sim.nu))

    def reset(self) -> VecEnvObs:
        self._reset_sims(np.arange(self.num_envs), self._seeds)
        self._tilt(np.arange(self.num_envs))
        self._reset_seeds()
        self.reset_infos = [{"dynamics": d.copy()} for d in self.sim.dynamics]
        return self.sim.observe()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions  # (n, nu)

    def step_wait(self) -> VecEnvStepReturn:
        obs, reward, terminated, truncated = self.sim.step(self._actions)
        if self.max_pitch is not None:
            terminated = terminated | (np.abs(self.sim.pitch()) > self.max_pitch)
        done = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        ended = np.flatnonzero(done)
        for i in ended:
            infos[i]["terminal_observation"] = obs[i].copy()
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        if ended.size:
            if self.curriculum is not None:
                walked = self.sim.progress(ended) if self.curriculum.progress > 0 else None
                self.curriculum.update(ended, terminated[ended] & ~truncated[ended], walked)
            self._reset_sims(ended)
            self._tilt(ended)
            obs[ended] = self.sim.observe(ended)
        return obs, reward.astype(np.float32), done, infos

    def _reset_sims(self, ids: np.ndarray, seeds: Sequence[int | None] | None = None) -> None:
        """New episodes in `ids`, each on its curriculum level where there is one (one call per level)."""
        if self.curriculum is None:
            self.sim.reset(ids, seeds=seeds)
            return
        levels = self.curriculum.levels[ids]  # (len(ids),)
        for level in np.unique(levels):
            k = np.flatnonzero(levels == level)
            group_seeds = None if seeds is None else [seeds[j] for j in k]
            self.sim.reset(ids[k], seeds=group_seeds, overrides=self.curriculum.overrides(level))

    def _tilt(self, ids: np.ndarray) -> None:
        if self.reset_pitch is not None:
            self.sim.tilt(ids, self._pitch_rng.uniform(*self.reset_pitch, size=ids.size))

    def close(self) -> None:
        pass  # the batch's threads end with it

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        value = getattr(self.sim, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        raise AttributeError(f"BatchedVecEnv: cannot set {attr_name!r} on batched simulations")

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        raise AttributeError(f"BatchedVecEnv: its simulations have no env method {method_name!r}")

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: Any = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]
