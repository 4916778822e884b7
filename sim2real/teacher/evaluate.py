"""Batched episodes of an `Expert` on the privileged observation, under randomization or nominal dynamics.

Evaluation during training goes through the same `Expert.act` path as the saved teacher, so the
returns it reports are those of the artifact other stages load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

import envs
from envs import parameters
from envs.spec import Trace
from sim2real.teacher.expert import Expert


@dataclass
class EpisodeEnd:
    """How one evaluation episode ended: its return and length, and whether the task ended it (a fall),
    with that step's info (the Go2's `falls`) and privileged observation."""

    ret: float
    steps: int
    terminated: bool
    info: dict[str, Any]
    privileged: np.ndarray  # (Dp,) after the last step
    metrics: dict[str, float] = field(default_factory=dict)  # the task's (`episodes(metrics=True)`)


def task_metrics(task: str, steps: list[tuple[np.ndarray, float]], terminated: bool) -> dict[str, float]:
    """The task's metrics of one episode from its (privileged obs, reward) steps, as validation computes
    them (velocity tracking errors, ...)."""
    privileged, rewards = np.stack([p for p, _ in steps]), np.array([r for _, r in steps])
    return envs.TASKS[task].metrics(Trace(privileged, rewards, terminated))


class ExpertEvaluator:
    """`episodes` envs kept open; every call replays the same seeds, so calls compare policies fairly."""

    def __init__(self, task: str, ranges: dict[str, Any] | None, episodes: int, seed: int):
        self.envs = [gym.make(envs.env_id(task), randomization=ranges) for _ in range(episodes)]
        self.seed, self.task = seed, task

    def __call__(self, expert: Expert, nominal: bool = False) -> np.ndarray:
        """Undiscounted return of each episode, (episodes,)."""
        return np.array([end.ret for end in self.episodes(expert, nominal)])

    def episodes(self, expert: Expert, nominal: bool = False, metrics: bool = False) -> list[EpisodeEnd]:
        """Every episode to its end, the expert acting on all live ones at once; `metrics`: with the task's
        metrics (velocity tracking errors, ...), as validation computes them from the episode's trace."""
        options = {"dynamics": parameters.nominal(self.task)} if nominal else None
        obs = [
            env.reset(seed=self.seed + i, options=options)[0]["privileged"] for i, env in enumerate(self.envs)
        ]
        ends = [EpisodeEnd(0.0, 0, False, {}, o) for o in obs]
        traces: list[list[tuple[np.ndarray, float]]] = [[] for _ in obs]  # per episode: (obs, reward) steps
        live = list(range(len(self.envs)))
        while live:
            actions = expert.act(np.stack([obs[i] for i in live]))  # (B, Da)
            still = []
            for i, action in zip(live, actions, strict=True):
                o, reward, terminated, truncated, info = self.envs[i].step(action)
                obs[i] = o["privileged"]
                if metrics:
                    traces[i].append((obs[i], float(reward)))
                end = ends[i]
                end.ret, end.steps = end.ret + reward, end.steps + 1
                if terminated or truncated:
                    end.terminated, end.info, end.privileged = bool(terminated), info, obs[i]
                else:
                    still.append(i)
            live = still
        if metrics:
            for end, steps in zip(ends, traces, strict=True):
                end.metrics = task_metrics(self.task, steps, end.terminated)
        return ends

    def close(self) -> None:
        for env in self.envs:
            env.close()
