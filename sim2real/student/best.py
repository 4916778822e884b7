"""`distill.keep=best`: the student of the best evaluation on the distill stage's own seeds, not the last.

A DAgger round can end below the round before it (Go2: 25.6 at step 10,000, 23.2 at the end, on ten
evaluation episodes), so, as SB3's EvalCallback keeps `best_model`, every evaluation's mean return is
offered here and the best one's weights are kept in `<student>/best/`. The evaluation seeds are the
distill stage's own (never a validation scenario's), so validation still judges the kept student on
episodes it was not chosen on.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from torch import nn
from tqdm import tqdm

from sim2real.student import checkpoint as ckpt

BEST_DIR = "best"


class BestEval:
    """The best evaluation of this run (a stale `best/` of another run is never restored: only what this
    run offered, or its progress recorded, counts)."""

    def __init__(self, student_dir: Path):
        self.dir = Path(student_dir) / BEST_DIR
        self.mean, self.ci95, self.step = -math.inf, 0.0, -1

    def offer(self, model: nn.Module, mean: float, ci95: float, step: int) -> None:
        """Keep `model`'s weights when `mean` beats every earlier evaluation."""
        if mean > self.mean:
            ckpt.save_student(self.dir, model)
            self.mean, self.ci95, self.step = float(mean), float(ci95), int(step)

    def finish(self, model: nn.Module, final_mean: float) -> dict[str, Any] | None:
        """Load the kept weights into `model` when they beat the final evaluation (returns what was kept,
        for the stage summary), then remove them."""
        kept = self._restore(model, final_mean)
        shutil.rmtree(self.dir, ignore_errors=True)
        if kept:
            tqdm.write(
                f"distill: keeping the student of step {self.step} (evaluation {self.mean:.1f}; the last "
                f"one's {final_mean:.1f})"
            )
        return kept

    def _restore(self, model: nn.Module, final_mean: float) -> dict[str, Any] | None:
        if not self.mean > final_mean or not (self.dir / ckpt.MODEL_FILE).exists():
            return None
        model.load_state_dict(ckpt.load_weights(self.dir), strict=True)
        return {
            "kept_step": self.step, "eval_return_mean": self.mean, "eval_return_ci95": self.ci95,
            "last_eval_return_mean": float(final_mean),
        }  # fmt: skip

    def state(self) -> dict[str, float] | None:
        return None if self.step < 0 else {"mean": self.mean, "ci95": self.ci95, "step": self.step}

    def load(self, state: dict[str, float] | None) -> None:
        """Resume: the kept record of a run's progress (its weights are still in `best/`)."""
        if state and (self.dir / ckpt.MODEL_FILE).exists():
            self.mean, self.ci95, self.step = float(state["mean"]), float(state["ci95"]), int(state["step"])
