"""Teacher training config (filled per task by `conf/teacher/<task>.yaml`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TeacherConfig:
    algo: str = "ppo"  # ppo | sac
    total_timesteps: int = 100_000
    n_envs: int = 4
    # SB3 constructor kwargs per algorithm (RL Baselines3 Zoo entries, see conf/teacher/*.yaml)
    ppo: dict[str, Any] = field(default_factory=dict)
    sac: dict[str, Any] = field(default_factory=dict)
