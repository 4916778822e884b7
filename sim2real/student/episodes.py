"""Which store episodes a student trains on, under which names, conditioned on what.

- Binding: a store that names no task (a foreign import) gets the named task's observation and action
  names and control dt in memory when the user named the task (`task_explicit`), so the student can
  be evaluated in the task's env and exported; the store itself is left as it is (`sim2real import
  ... task=NAME` is what writes the names into a store).
- Filtered BC ("%BC", `distill.keep_top_fraction`): only the best episodes by return are trained on.
  Many weak attempts hold some good ones, and cloning only those beats cloning all (CORL,
  hopper-medium-replay: BC 29.8, 10% BC 70.4). Unlike `collect.keep_top_fraction`, which drops
  attempts while collecting, this works on any store and leaves it unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.data import binding
from sim2real.data.schema import StoreSpec
from sim2real.data.store import DemoStore
from sim2real.errors import UserError


@dataclass
class TrainingData:
    spec: StoreSpec  # the store's, or (bound) the task's names on the store's widths
    arrays: dict[str, np.ndarray]
    sources: list[dict[str, Any]]
    bound: bool = False  # the store names no task and `spec` is the named task's (in memory only)
    notes: list[str] = field(default_factory=list)  # one line each, for the user

    @property
    def num_episodes(self) -> int:
        return len(self.arrays["episode_ends"])


def load_training_data(path: Path, task: str, explicit: bool, dagger_rounds: int = 0) -> TrainingData:
    """The store's arrays and spec, bound to `task` when it names none and the user named `task`.

    DAgger on a store bound in memory is refused: its rounds append the task's episodes to the store.
    """
    with DemoStore.open(path) as store:
        d = TrainingData(store.spec, store.load_arrays(), store.sources)
    if d.spec.task and d.spec.task != task:
        raise UserError(f"{path} holds task {d.spec.task!r} but task={task}")
    if d.spec.task is None and explicit:
        d.spec, d.bound = binding.bind_store(d.spec, task, f"store {path}"), True
        if dagger_rounds:
            raise UserError(
                f"distill.dagger_rounds={dagger_rounds} appends task {task}'s episodes to {path}, which "
                f"names no task: import it with task={task} first (that writes the names into the store)"
            )
        d.notes.append(
            f"distill: {path} names no task: bound to task {task} in memory (its observation and action "
            f"names, control dt; the store is unchanged, `sim2real import ... task={task}` writes them)"
        )
        note = binding.bounds_note(d.arrays["action"], d.spec)
        d.notes += [f"distill: warning: {note}"] if note else []
    if d.num_episodes < 2:
        raise UserError(f"{path} holds {d.num_episodes} episode(s); distillation needs at least 2")
    return d


def return_conditioned(arrays: dict[str, np.ndarray], where: Path) -> dict[str, np.ndarray]:
    """`arrays` with each episode's return on its last step and zero reward elsewhere: the sampler's
    return-to-go is then the episode's return at every step, the condition a return-conditioned
    student is trained on (`student.rtg`)."""
    if not np.isfinite(arrays["reward"]).all():
        raise UserError(f"student.rtg=true needs rewards, and {where} has steps without one")
    reward = np.zeros_like(arrays["reward"])
    reward[arrays["episode_ends"] - 1] = arrays["episode_return"]
    return {**arrays, "reward": reward}


def dagger_episodes(arrays: dict[str, np.ndarray], sources: list[dict[str, Any]]) -> np.ndarray:
    """(E,) bool: episodes that DAgger rounds appended (source kind "dagger")."""
    from sim2real.student.dagger import SOURCE_KIND

    ids = [s["id"] for s in sources if s.get("kind") == SOURCE_KIND]
    return np.isin(arrays["episode_source"], ids)


def keep_top(
    arrays: dict[str, np.ndarray], sources: list[dict[str, Any]], fraction: float, where: Path
) -> tuple[np.ndarray, dict[str, Any] | None]:
    """(sorted indices of the episodes to train on, the filter's summary or None when all are kept).

    The best `ceil(fraction * n)` of the store's n non-DAgger episodes by return are kept (ties: the
    earlier episode). DAgger episodes are always kept and never ranked: they are there for the expert's
    labels on the states the student reaches, and their return is the student-driven mixture's, low by
    design; ranking them would drop exactly the recovery states DAgger adds (the rounds of this run are
    likewise added to training unfiltered).
    """
    n_all = len(arrays["episode_ends"])
    if fraction >= 1:
        return np.arange(n_all), None
    dagger = dagger_episodes(arrays, sources)
    ranked = np.flatnonzero(~dagger)
    returns = arrays["episode_return"][ranked].astype(np.float64)
    unknown = int((~np.isfinite(returns)).sum())
    if unknown:
        raise UserError(
            f"distill.keep_top_fraction={fraction} ranks episodes by return, but {unknown} of the "
            f"{len(ranked)} episodes of {where} have none (no rewards recorded); use 1.0, or import "
            "the rewards (keys.reward=KEY)"
        )
    k = min(len(ranked), max(1, math.ceil(round(fraction * len(ranked), 9))))  # round: 0.1 * 30 is 3
    order = np.lexsort((ranked, -returns))  # by return, best first; ties by episode index
    best = ranked[order[:k]]
    kept = np.sort(np.concatenate([best, np.flatnonzero(dagger)]))
    if len(kept) < 2:
        raise UserError(
            f"distill.keep_top_fraction={fraction} keeps {len(kept)} of the {n_all} episodes of {where}; "
            "distillation needs at least 2"
        )
    summary = {
        "keep_top_fraction": fraction,
        "episodes_kept": len(kept),
        "episodes_ranked": len(ranked),
        "return_threshold": float(returns[order[k - 1]]) if k else None,
        "dagger_episodes_kept": int(dagger.sum()),
    }
    return kept, summary


def filter_line(summary: dict[str, Any]) -> str:
    """What `keep_top` kept, in one line."""
    best, dagger = summary["episodes_kept"] - summary["dagger_episodes_kept"], summary["dagger_episodes_kept"]
    thr = summary["return_threshold"]
    return (
        f"distill: keep_top_fraction={summary['keep_top_fraction']}: training on the best {best} of "
        f"{summary['episodes_ranked']} episodes by return"
        + (f" (return >= {thr:.4g})" if thr is not None else "")
        + (f" and all {dagger} DAgger episodes" if dagger else "")
    )
