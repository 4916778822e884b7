"""`load_expert`: build the Expert a config names (the run's teacher, an SB3 zip, or scripted)."""

from __future__ import annotations

from pathlib import Path

from sim2real.data.config import ExpertConfig
from sim2real.errors import UserError
from sim2real.teacher.expert import Expert, ScriptedPendulumExpert

SCRIPTED = {"pendulum": ScriptedPendulumExpert}


def load_expert(cfg: ExpertConfig, run_dir: str | Path, task: str) -> Expert:
    if cfg.kind == "scripted":
        if task not in SCRIPTED:
            raise UserError(f"expert=scripted: no scripted controller for task {task!r} (only {list(SCRIPTED)})")
        return SCRIPTED[task]()
    raise UserError(f"expert.kind={cfg.kind!r} is not built yet")
