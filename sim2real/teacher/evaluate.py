"""Batched episodes of an `Expert` on the privileged observation, under randomization or nominal dynamics.

Evaluation during training goes through the same `Expert.act` path as the saved teacher, so the
returns it reports are those of the artifact other stages load.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

import envs
from envs import parameters
from sim2real.teacher.expert import Expert


class ExpertEvaluator:
    """`episodes` envs kept open; every call replays the same seeds, so calls compare policies fairly."""

    def __init__(self, task: str, ranges: dict[str, Any], episodes: int, seed: int):
        self.envs = [gym.make(envs.env_id(task), randomization=ranges) for _ in range(episodes)]
        self.seed, self.task = seed, task

    def __call__(self, expert: Expert, nominal: bool = False) -> np.ndarray:
        """Undiscounted return of each episode, (episodes,)."""
        options = {"dynamics": parameters.nominal(self.task)} if nominal else None
        obs = [
            env.reset(seed=self.seed + i, options=options)[0]["privileged"] for i, env in enumerate(self.envs)
        ]
        returns = np.zeros(len(self.envs))
        live = list(range(len(self.envs)))
        while live:
            actions = expert.act(np.stack([obs[i] for i in live]))  # (B, Da)
            still = []
            for i, action in zip(live, actions, strict=True):
                o, reward, terminated, truncated, _ = self.envs[i].step(action)
                obs[i] = o["privileged"]
                returns[i] += reward
                if not (terminated or truncated):
                    still.append(i)
            live = still
        return returns

    def close(self) -> None:
        for env in self.envs:
            env.close()
