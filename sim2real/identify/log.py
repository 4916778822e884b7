"""A deployment log (or any demonstration store) read for identification, and refused when unfit.

The fit needs, per step, the sensor features the robot read and the action it executed. Readings are
the leading `student_obs` columns (everything but `prev_action/*`), named as the task's sensor suite
names them. A log too short, without excitation, or with non-finite readings is refused with a
message that says which and by how much, instead of giving a silent, meaningless fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envs.observations import PREV_ACTION_PREFIX
from sim2real.data.store import DemoStore
from sim2real.errors import UserError

MIN_READING_STD = 1e-3  # a log whose readings move less than this (per feature, max) is not excited


@dataclass(frozen=True)
class LogData:
    """The parts of a log the fit uses, episode by episode."""

    path: Path
    task: str
    feature_names: tuple[str, ...]
    control_dt: float | None
    readings: list[np.ndarray]  # per episode (T, F): what the sensors read (noisy, delayed)
    actions: list[np.ndarray]  # per episode (T, A): executed
    dynamics: dict[str, float] | None  # a simulated robot's true dynamics (first episode), else None

    @property
    def steps(self) -> int:
        return sum(len(r) for r in self.readings)


def load_log(path: str | Path, min_steps: int) -> LogData:
    path = Path(path)
    with DemoStore.open(path) as store:
        spec = store.spec
        if not spec.task:
            raise UserError(f"{path}: the log names no task (root attribute 'task'); identify needs one")
        if store.num_episodes == 0:
            raise UserError(f"{path}: the log holds no committed episode")
        arrays = store.load_arrays()
        ends, _ = store.episodes_as_run()  # a log commits a running episode in segments: join them
    names = [n for n in spec.student_names if not n.startswith(PREV_ACTION_PREFIX)]
    obs, act = arrays["student_obs"][:, : len(names)], arrays["action"]
    starts = np.concatenate([[0], ends[:-1]])
    readings = [obs[a:b].astype(np.float64) for a, b in zip(starts, ends, strict=True)]
    actions = [act[a:b].astype(np.float64) for a, b in zip(starts, ends, strict=True)]
    log = LogData(
        path, spec.task, tuple(names), spec.control_dt, readings, actions, _true_dynamics(arrays, spec)
    )
    check_log(log, min_steps)
    return log


def _true_dynamics(arrays, spec) -> dict[str, float] | None:
    dyn = arrays.get("episode_dynamics")
    if dyn is None or len(dyn) == 0 or not np.isfinite(dyn[0]).all() or not spec.dynamics_names:
        return None
    return {n: float(v) for n, v in zip(spec.dynamics_names, dyn[0], strict=True)}


def check_log(log: LogData, min_steps: int) -> None:
    """Refuse a log the fit cannot learn from, naming what is wrong with it."""
    where = str(log.path)
    for e, (r, a) in enumerate(zip(log.readings, log.actions, strict=True)):
        bad = ~np.isfinite(r).all(axis=1) | ~np.isfinite(a).all(axis=1)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise UserError(
                f"{where}: episode {e} has {len(rows)} steps with non-finite readings or actions "
                f"(first at step {rows[0]}); identify refuses them rather than fit around them"
            )
    longest = max(len(r) for r in log.readings)
    if longest < min_steps:
        raise UserError(
            f"{where}: the longest episode has {longest} steps; identify needs at least {min_steps} "
            "(log a longer run, or lower identify.segment_steps / identify.max_latency)"
        )
    moves = max(float(np.std(r, axis=0).max()) for r in log.readings)
    pushes = max(float(np.std(a, axis=0).max()) for a in log.actions)
    if moves < MIN_READING_STD or pushes < MIN_READING_STD:
        raise UserError(
            f"{where}: no excitation (reading std {moves:.2e}, action std {pushes:.2e}): the robot barely "
            "moved, so its dynamics cannot be told apart; log a run that moves it (e.g. a swing-up)"
        )
