"""`sim2real inspect`: a short randomized rollout that shows what each observation holds."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

import envs
from envs import parameters
from sim2real.config import Config


def run(cfg: Config) -> None:
    env = gym.make(envs.env_id(cfg.task.name), randomization=cfg.task.ranges())
    task = env.unwrapped
    obs, info = env.reset(seed=cfg.seed)
    print(f"task {cfg.task.name} ({envs.env_id(cfg.task.name)}), control dt {task.dt:.3f} s")
    print("dynamics in force:", {k: round(v, 3) for k, v in info["dynamics"].items()})
    print(f"student obs ({len(task.student_names)}): {', '.join(task.student_names)}")
    physical = parameters.physical(cfg.task.name)
    print(
        f"privileged obs ({task.privileged_dim}): base env obs ({task.privileged_dim - len(physical)}) "
        f"+ {', '.join(physical)}"
    )
    rng = np.random.default_rng(cfg.seed)
    np.set_printoptions(precision=3, suppress=True, linewidth=120)
    for t in range(cfg.inspect.steps):
        action = rng.uniform(-1, 1, size=env.action_space.shape).astype(np.float32)
        obs, reward, terminated, truncated, _ = env.step(action)
        print(
            f"t={t + 1} reward={reward:+.3f}\n  student    {obs['student']}\n  privileged {obs['privileged']}"
        )
        if terminated or truncated:
            break
    env.close()
