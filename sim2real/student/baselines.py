"""Baseline for the claim that distillation is worth it: RL directly on `obs["student"]`.

The same SB3 recipe as the teacher (algorithm, hyperparameters, env-step budget, observation
normalization, randomization), but the policy sees only the student observation, stacked over the
last `frames` steps (SB3's VecFrameStack) so that it can infer velocities too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecFrameStack, VecNormalize

import envs
from sim2real.teacher.callbacks import ProgressBar
from sim2real.teacher.config import TeacherConfig
from sim2real.teacher.hyperparams import TRAINABLE, sb3_kwargs
from sim2real.teacher.vec import SelectObs


def student_vec_env(task: str, ranges: dict[str, Any], n_envs: int, frames: int) -> VecEnv:
    def make() -> gym.Env:
        return SelectObs(gym.make(envs.env_id(task), randomization=ranges), "student")

    fns = [make] * n_envs
    return VecFrameStack(DummyVecEnv(fns), n_stack=frames)


@dataclass
class StudentRL:
    """A trained student-observation RL policy and what evaluating it needs."""

    model: BaseAlgorithm
    obs_norm: VecNormalize | None
    frames: int
    algo: str
    timesteps: int


def train_student_rl(
    task: str, ranges: dict[str, Any], teacher: TeacherConfig, frames: int = 8, seed: int = 0,
    algo: str | None = None,
) -> StudentRL:  # fmt: skip
    """Train with the teacher's recipe for `algo` (default: the teacher's algorithm) on student obs."""
    algo = algo or teacher.algo
    block = getattr(teacher, algo)
    timesteps = (
        teacher.total_timesteps if algo == teacher.algo and teacher.total_timesteps else block.total_timesteps
    )
    n_envs = teacher.n_envs if algo == teacher.algo and teacher.n_envs else block.n_envs
    venv: VecEnv = student_vec_env(task, ranges, n_envs, frames)
    venv.seed(seed)
    norm = None
    if teacher.normalize_obs or block.normalize_reward:
        norm = VecNormalize(venv, norm_obs=teacher.normalize_obs, norm_reward=block.normalize_reward,
                            clip_obs=teacher.clip_obs)  # fmt: skip
        venv = norm
    model = TRAINABLE[algo](
        "MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **sb3_kwargs(algo, block.hyperparams)
    )
    model.set_logger(Logger(None, []))  # SB3's default logger would leave a folder in /tmp per run
    # the baseline trains as long as the teacher (tens of minutes on locomotion): show its progress
    model.learn(total_timesteps=timesteps, callback=ProgressBar(timesteps, desc=f"{algo} on student obs"))
    return StudentRL(model, norm, frames, algo, timesteps)


def evaluate_student_rl(policy: StudentRL, task: str, ranges: dict[str, Any], seeds: list[int]) -> np.ndarray:
    """Return of one deterministic episode per seed, all envs stepped together."""
    venv: VecEnv = student_vec_env(task, ranges, len(seeds), policy.frames)
    if policy.obs_norm is not None:
        norm = VecNormalize(venv, training=False, norm_obs=policy.obs_norm.norm_obs, norm_reward=False,
                            clip_obs=policy.obs_norm.clip_obs)  # fmt: skip
        norm.obs_rms = policy.obs_norm.obs_rms
        venv = norm
    venv.seed(seeds[0])  # env i is reset with seeds[0] + i
    if list(seeds) != list(range(seeds[0], seeds[0] + len(seeds))):
        raise ValueError("evaluate_student_rl: seeds must be consecutive")
    obs = venv.reset()
    returns, done = np.zeros(len(seeds)), np.zeros(len(seeds), bool)
    while not done.all():
        action, _ = policy.model.predict(obs, deterministic=True)
        obs, reward, dones, _ = venv.step(action)
        raw = venv.get_original_reward() if isinstance(venv, VecNormalize) else reward
        returns += np.where(done, 0.0, raw)
        done |= dones
    venv.close()
    return returns
