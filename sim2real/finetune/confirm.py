"""The fine-tuned student must beat the distilled one on fresh episodes before it replaces it.

Fine-tuning keeps its best of many evaluations on the distill stage's 10 evaluation episodes; that best
is partly luck. Walker2d (seed 0, PPO, 1M steps): the kept update scored 3,317 on its 10 episodes, 2,571
on 30 fresh ones, where the distilled student scored 2,637; validation agreed (0.563 vs 0.659 of the
teacher). Hopper's kept update (2,381 on its 10) held on 30 fresh ones (1,661 vs 1,248). So the kept
student is compared once more with the distilled one, on `finetune.confirm_episodes` episodes no
evaluation has used, and the distilled student is the output unless the kept one wins there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm import tqdm

from sim2real.config import Config
from sim2real.student.checkpoint import load_student, save_student
from sim2real.student.rollout import evaluate
from sim2real.student.train import EVAL_SEED_BASE

CONFIRM_SEED_BASE = EVAL_SEED_BASE + 2**16  # past any distill evaluation's seeds


def confirm_kept(cfg: Config, kept_dir: Path, distilled_dir: Path, when: str) -> dict[str, Any]:
    """Compare the student in `kept_dir` (kept at `when`) with the one in `distilled_dir`; when it does not
    win, the distilled student is written over it. Returns what was measured and decided."""
    seeds = [CONFIRM_SEED_BASE + i for i in range(cfg.finetune.confirm_episodes)]
    task, ranges = cfg.task.name, cfg.task.ranges()
    distilled = load_student(distilled_dir).eval()
    kept_ret = float(evaluate(task, ranges, seeds, load_student(kept_dir).eval()).mean())
    distilled_ret = float(evaluate(task, ranges, seeds, distilled).mean())
    confirmed = kept_ret > distilled_ret
    tqdm.write(
        f"finetune: on {len(seeds)} fresh episodes the kept student ({when}) scores {kept_ret:.1f}, the "
        f"distilled one {distilled_ret:.1f}: "
        + ("kept" if confirmed else "the distilled student is the output")
    )
    if not confirmed:
        save_student(kept_dir, distilled)
    return {"episodes": len(seeds), "kept_at": when, "kept": kept_ret, "distilled": distilled_ret,
            "confirmed": confirmed}  # fmt: skip
