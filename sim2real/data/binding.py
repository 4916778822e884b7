"""Binding foreign data to a task: the task's observation and action names, bounds and control dt.

An import names its columns `<key>[i]`, which no env produces, so a student trained on it can be neither
evaluated nor exported. Equal widths alone do not make two robots' observations the same, so data is
bound only when the user names the task (`task=<name>` on the command line: `Config.task_explicit`), and
then only when the widths match; otherwise the refusal names both shapes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sim2real.data.schema import StoreSpec
from sim2real.errors import UserError


def task_spec(task: str) -> StoreSpec:
    """The spec of the stores that task `task` collects (its env's names, bounds, control dt)."""
    import gymnasium as gym

    import envs

    env = gym.make(envs.env_id(task))
    try:
        return StoreSpec.from_env(env)
    finally:
        env.close()


def bind(task: str, ds: int, dp: int, da: int, where: str) -> StoreSpec:
    """`task`'s spec for data of student/privileged/action widths ds/dp/da (dp may be 0: none stored).

    The privileged width is the data's: a student never sees it, and an import may have none.
    """
    spec = task_spec(task)
    if (ds, da) != (spec.student_dim, spec.action_dim) or dp not in (0, spec.privileged_dim):
        names = f"{', '.join(spec.student_names)} -> {', '.join(spec.action_names)}"
        priv = f"privileged_obs {(dp,)}" if dp else "no privileged_obs"
        raise UserError(
            f"{where} does not fit task={task}: the data has student_obs {(ds,)}, action {(da,)}, {priv}; "
            f"the task has student_obs {(spec.student_dim,)}, action {(spec.action_dim,)}, privileged_obs "
            f"{(spec.privileged_dim,)} or none ({names}); leave task= out to use the data untied"
        )
    return dataclasses.replace(spec, privileged_dim=dp, privileged_names=None)


def bind_store(spec: StoreSpec, task: str, where: str) -> StoreSpec:
    """An unnamed store's spec bound to `task` in memory (the store's dynamics columns kept)."""
    bound = bind(task, spec.student_dim, spec.privileged_dim, spec.action_dim, where)
    return dataclasses.replace(bound, dynamics_names=spec.dynamics_names)


def bounds_note(action: np.ndarray, spec: StoreSpec) -> str | None:
    """A warning when bound actions leave the task's bounds (another scale?): they train as given, but
    the deployed policy is clipped to the bounds."""
    if not len(action):
        return None
    low, high = np.asarray(spec.action_low), np.asarray(spec.action_high)
    frac = float(((action < low - 1e-6) | (action > high + 1e-6)).any(axis=1).mean())
    if frac == 0:
        return None
    return (
        f"{100 * frac:.1f}% of the actions lie outside task {spec.task}'s bounds {_range(low, high)} "
        f"(data: {_range(action.min(axis=0), action.max(axis=0))}); they train as given, the deployed "
        "policy is clipped to the bounds"
    )


def _range(low: np.ndarray, high: np.ndarray) -> str:
    return ", ".join(f"[{lo:.3g}, {hi:.3g}]" for lo, hi in zip(low, high, strict=True))
