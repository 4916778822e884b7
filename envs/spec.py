"""What a task is, apart from its physics: episode length, what failure means, its metrics.

Pure numpy, like `envs.parameters`: validation, the teacher and the pipeline read a task's rules
here instead of knowing tasks by name. A rule sees one finished episode (`Trace`); obs/action names
and the control period come from the env itself (`RandomizedTask.student_names`, `.action_names`,
`.dt`); its default training ranges, where they differ from `envs.parameters.TABLE`'s, here
(`TaskSpec.ranges`): the env uses them when built without ranges, and `task.randomization.*` starts
from them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Trace:
    """One finished episode as a rule sees it."""

    privileged: np.ndarray  # (T, Dp) privileged observation after each step
    reward: np.ndarray  # (T,)
    terminated: bool  # the task ended it (fell), not the time limit


def fell(trace: Trace) -> bool:
    """Failure of a task that terminates when the robot falls: it terminated."""
    return bool(trace.terminated)


def not_upright_at_end(
    column: int = 0, threshold: float = 0.9, tail: float = 0.25
) -> Callable[[Trace], bool]:
    """Failure of a balancing task: the cos of the angle (privileged `column`) averaged over the
    last `tail` of the episode stays below `threshold`."""

    def failed(trace: Trace) -> bool:
        return bool(_tail_mean(trace.privileged[:, column], tail) < threshold)

    return failed


def upright_metric(column: int = 0, tail: float = 0.25) -> Callable[[Trace], dict[str, float]]:
    def metrics(trace: Trace) -> dict[str, float]:
        return {"upright": _tail_mean(trace.privileged[:, column], tail)}

    return metrics


MOVING_SPEED = 0.1  # m/s: a slower commanded planar speed is standing still (or turning on the spot)
MIN_COMMANDED = 1.0  # m: an episode that asked for less has no walking to judge


def along_command(cmd: np.ndarray, vel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Commanded planar speed and the speed along the command, (...,) m/s each from (..., 2) command and
    velocity in one frame; both zero where the command is under `MOVING_SPEED`."""
    speed = np.linalg.norm(cmd, axis=-1)
    moving = speed > MOVING_SPEED
    along = (cmd * vel).sum(-1) / np.maximum(speed, 1e-9)
    return np.where(moving, speed, 0.0), np.where(moving, along, 0.0)


def walked_share(commanded: np.ndarray | float, walked: np.ndarray | float) -> np.ndarray:
    """The share of the commanded distance walked (metres each); NaN under `MIN_COMMANDED`."""
    commanded = np.asarray(commanded, dtype=float)
    return np.where(commanded >= MIN_COMMANDED, np.asarray(walked) / np.maximum(commanded, 1e-9), np.nan)


def velocity_tracking(
    lin_vel: int, ang_vel: int, command: int, dt: float
) -> Callable[[Trace], dict[str, float]]:
    """RMS velocity-tracking errors of a commanded-velocity robot, from the privileged observation:
    columns `lin_vel`.. (vx, vy, vz), `ang_vel`.. (wx, wy, wz), `command`.. (vx, vy, yaw rate); and `walked`,
    the share of the commanded distance covered along the command (body frame, control step `dt`): an error
    near that of standing still can be a slow gait or none, `walked` tells which. NaN where the commands
    asked for under `MIN_COMMANDED` metres."""

    def metrics(trace: Trace) -> dict[str, float]:
        p = trace.privileged
        if not len(p):
            return {"lin_vel_rmse": float("nan"), "yaw_rate_rmse": float("nan"), "walked": float("nan")}
        cmd, vel = p[:, command : command + 2], p[:, lin_vel : lin_vel + 2]  # (T, 2)
        lin_err = cmd - vel  # (T, 2)
        yaw_err = p[:, command + 2] - p[:, ang_vel + 2]  # (T,)
        speed, along = along_command(cmd, vel)  # (T,), (T,)
        return {
            "lin_vel_rmse": float(np.sqrt(np.mean(np.sum(lin_err**2, axis=1)))),
            "yaw_rate_rmse": float(np.sqrt(np.mean(yaw_err**2))),
            "walked": float(walked_share(speed.sum() * dt, along.sum() * dt)),
        }

    return metrics


def flip_metric(pitch: int) -> Callable[[Trace], dict[str, float]]:
    """A planar runner that never terminates (HalfCheetah): `flipped` (1 when the root pitch, privileged
    column `pitch`, unwrapped, passed ±π/2 at any step: it went over) and `on_back` (the share of steps with
    the wrapped pitch past ±π/2). A flipped cheetah lies or runs on its back for the rest of its episode,
    the failure its students' low returns come from; the return alone does not name it."""

    def metrics(trace: Trace) -> dict[str, float]:
        angle = trace.privileged[:, pitch]  # (T,) rad, unwrapped
        if not len(angle):
            return {"flipped": float("nan"), "on_back": float("nan")}
        wrapped = np.angle(np.exp(1j * angle))  # (T,) in (-π, π]
        return {
            "flipped": float(np.abs(angle).max() > np.pi / 2),
            "on_back": float(np.mean(np.abs(wrapped) > np.pi / 2)),
        }

    return metrics


def no_metrics(trace: Trace) -> dict[str, float]:
    return {}


def _tail_mean(x: np.ndarray, tail: float) -> float:
    return float(np.mean(x[-max(1, int(len(x) * tail)) :])) if len(x) else float("nan")


@dataclass(frozen=True)
class PublishedScore:
    """A published agent's mean return on the task's unrandomized Gymnasium env: an absolute scale beside
    the gate's, which compares a student with its own teacher (a weak teacher lets a weak student pass)."""

    label: str  # whose agent, on which env, from where
    mean_return: float


@dataclass(frozen=True)
class TaskSpec:
    """One task: its Gymnasium registration and the rules that judge its episodes."""

    gym_id: str
    entry: str  # module:function building the RandomizedTask
    episode_steps: int
    failed: Callable[[Trace], bool] = fell
    # per-episode figures beside the return (a velocity-tracking robot: its tracking error)
    metrics: Callable[[Trace], dict[str, float]] = no_metrics
    # default training ranges {name: (low, high)} where this task's differ from envs.parameters.TABLE
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    # a published agent's score on this task's env, reported by validation against its nominal scenario
    published: PublishedScore | None = None
