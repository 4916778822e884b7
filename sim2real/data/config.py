"""Collection, expert choice and import configs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ExpertConfig:
    """Which expert acts: `teacher` (the run's), `sb3_zip` (any SB3 model file), `scripted`."""

    kind: str = "teacher"
    path: str | None = None
    algo: str | None = None  # sb3_zip: ppo | sac | ... (guessed from the file when None)


@dataclass
class CollectConfig:
    episodes: int = 100
    n_envs: int = 4
    resume: bool = False


@dataclass
class ImportKeys:
    student_obs: str | None = None
    action: str | None = None
    privileged_obs: str | None = None
    reward: str | None = None
