"""DAgger rounds: the student drives (β-mixture), the expert labels every visited state, episodes are
appended to the same store tagged with their round, and training continues on the aggregate.

BC only sees the expert's state distribution; a student's own small errors take it to states the
expert never visited. Labelling the states the student actually reaches closes that gap.
The expert is only ever asked `act(privileged_obs)`: it is never trained here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from sim2real.config import Config
from sim2real.data.store import DemoStore
from sim2real.errors import UserError
from sim2real.student.config import DistillConfig
from sim2real.student.rollout import Takeover, action_gap, rollout_seeds
from sim2real.teacher.expert import Expert

SOURCE_KIND = "dagger"


def load_dagger_expert(cfg: Config):
    """The expert that labels DAgger episodes, or None when no DAgger round is asked for."""
    if cfg.distill.dagger_rounds <= 0:
        return None
    from sim2real.teacher.experts import load_expert

    try:
        return load_expert(cfg.expert, cfg.run_dir, cfg.task.name)
    except (UserError, FileNotFoundError) as e:
        raise UserError(f"distill.dagger_rounds={cfg.distill.dagger_rounds} needs an expert: {e}") from e


def beta_for_round(cfg: DistillConfig, r: int) -> float:
    """Probability that the expert's action is executed at a step of round r (1-based)."""
    return float(cfg.dagger_beta * cfg.dagger_beta_decay ** (r - 1))


def round_seeds(seed: int, r: int, n: int) -> list[int]:
    """Episode seeds of round r: a pure function of (seed, r), distinct across rounds and from eval seeds."""
    return [int(s) for s in np.random.SeedSequence([seed, r, 0xDA66E2]).generate_state(n) % (2**31)]


@torch.no_grad()
def collect_round(model: nn.Module, expert: Expert, cfg: Config, store: Path, r: int) -> dict[str, float]:
    """Roll out round r's β-mixture, append the labelled episodes to the store; returns round metrics."""
    if expert is None:
        raise ValueError("DAgger needs an expert to label the visited states")
    dc = cfg.distill
    beta = beta_for_round(dc, r)
    seeds = round_seeds(cfg.seed, r, dc.dagger_episodes)
    rng = np.random.default_rng([cfg.seed, r])
    takeover = Takeover(dc.dagger_takeover, dc.dagger_takeover_hold) if dc.dagger_takeover > 0 else None
    ranges = cfg.task.ranges()
    episodes = rollout_seeds(cfg.task.name, ranges, seeds, model, expert, beta, rng, takeover=takeover)
    source = {"kind": SOURCE_KIND, "round": r, "beta": beta, "expert": expert.name, "seed": cfg.seed}
    if takeover is not None:
        source.update(takeover=takeover.threshold, takeover_hold=takeover.hold)
    with DemoStore.open(store, "a") as demos:
        demos.append_episodes(episodes, source=source)
        low, high = np.asarray(demos.spec.action_low), np.asarray(demos.spec.action_high)  # (Da,) each
    returns = np.array([ep.ret for ep in episodes])
    executed = np.concatenate([ep.action for ep in episodes])  # (T, Da)
    labels = np.concatenate([ep.expert_action for ep in episodes])  # (T, Da)
    gap = action_gap(executed, labels, low, high)  # (T,)
    student = gap > 1e-6  # (T,) steps where the student's own action was executed
    return {
        "dagger/round": r,
        "dagger/beta": beta,
        "dagger/return_mean": float(returns.mean()),
        "dagger/expert_step_fraction": float(1.0 - student.mean()),
        # how far the student's executed actions are from the labels: what `dagger_takeover` compares
        "dagger/student_gap_mean": float(gap[student].mean()) if student.any() else 0.0,
        "dagger/student_gap_p99": float(np.quantile(gap[student], 0.99)) if student.any() else 0.0,
    }
