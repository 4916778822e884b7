"""`teacher.terrain_curriculum`: each training env's next ground is as hard as its last episode allows.

A robot that gets through its episode moves one row harder, one that falls one row easier, and one that
gets through the hardest row starts again on a random row. Training then spends its steps where the
teacher is learning (the uniform draw wastes most of them on rows it has mastered or cannot yet stand
on), and still revisits every row. Only the training envs follow it: evaluation, collection and
validation draw `terrain_level` from the task's range as always.

Getting through is not walking: under that rule alone a teacher that stands still climbs to the hardest
rows, and one trained so from scratch tracked no better than standing (docs/results.md). legged_gym
judges distance instead: `teacher.curriculum_progress` p > 0 moves an episode down also when the robot
walked less than p of the distance its commands asked for, and up only when it walked at least that
(episodes whose commands asked for under a metre are judged by falls alone).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

import envs
from envs import parameters, terrain

PARAMETER = "terrain_level"
STEP = 1.0 / (terrain.LEVELS - 1)  # one row of the map


class TerrainCurriculum:
    """Per-env terrain levels (n,): started in the lower half of the range, moved by how episodes end."""

    def __init__(self, task: str, ranges: Mapping[str, Any], n_envs: int, seed: int, progress: float = 0.0):
        table = parameters.make_ranges(dict(ranges), envs.task_ranges(task), task=task)
        if PARAMETER not in table:
            raise ValueError(f"teacher.terrain_curriculum: task {task!r} has no {PARAMETER!r} to move")
        r = table[PARAMETER]
        self.progress = float(progress)  # share of the commanded distance that counts as walking (0: off)
        self.low, self.high = float(r.low), float(r.high)
        self.rng = np.random.default_rng([seed, 0xC0C])  # its own stream: the envs' seeds are unchanged
        middle = (self.low + self.high) / 2
        self.levels = self._snap(self.rng.uniform(self.low, middle, n_envs))  # (n,)

    def _snap(self, levels: np.ndarray) -> np.ndarray:
        """Onto the map's rows inside the range."""
        rows = np.round((levels - self.low) / STEP) * STEP + self.low
        return np.clip(rows, self.low, self.high)

    def update(self, ids: np.ndarray, fell: np.ndarray, walked: np.ndarray | None = None) -> None:
        """Envs `ids` ended an episode; `fell` (len(ids),) whether each ended in a fall; `walked` (len(ids),)
        the share of its commanded distance each walked (NaN: not judged), needed when `progress` > 0."""
        down = fell.copy()
        if self.progress > 0:
            if walked is None:
                raise ValueError("teacher.curriculum_progress: the episodes' walked distance is needed")
            down |= np.nan_to_num(walked, nan=np.inf) < self.progress
        through_top = ~down & (self.levels[ids] >= self.high - 1e-9)
        moved = self.levels[ids] + np.where(down, -STEP, STEP)
        restart = self.rng.uniform(self.low, self.high, ids.size)
        self.levels[ids] = self._snap(np.where(through_top, restart, moved))

    @staticmethod
    def overrides(level: float) -> dict[str, float]:
        """The reset options that start an episode on `level`."""
        return {PARAMETER: float(level)}

    def mean(self) -> float:
        return float(self.levels.mean())


def curriculum_of(venv: VecEnv) -> TerrainCurriculum | None:
    """The curriculum under a training env's wrappers, if it has one."""
    return getattr(venv.unwrapped, "curriculum", None)
