"""`load_expert`: build the Expert a config names (the run's teacher, an SB3 zip, or scripted)."""

from __future__ import annotations

from pathlib import Path

from sim2real.artifacts import RunLayout
from sim2real.errors import UserError
from sim2real.teacher.config import ExpertConfig
from sim2real.teacher.expert import Expert, ScriptedPendulumExpert

SCRIPTED = {"pendulum": ScriptedPendulumExpert}
KINDS = ("teacher", "sb3_zip", "scripted")


def load_expert(cfg: ExpertConfig, run_dir: str | Path, task: str) -> Expert:
    if cfg.kind == "scripted":
        if task not in SCRIPTED:
            raise UserError(
                f"expert=scripted: no scripted controller for task {task!r} (only {list(SCRIPTED)})"
            )
        return SCRIPTED[task]()
    if cfg.kind == "teacher":
        return _teacher(Path(cfg.path) if cfg.path else RunLayout(run_dir).teacher, task)
    if cfg.kind == "sb3_zip":
        return _sb3_zip(cfg, task)
    raise UserError(f"expert.kind={cfg.kind!r}: expected one of {', '.join(KINDS)}")


def _teacher(path: Path, task: str) -> Expert:
    """A teacher dir, or a run dir that holds one."""
    from sim2real.teacher.policy import INFO, load_teacher

    if not (path / INFO).exists() and (RunLayout(path).teacher / INFO).exists():
        path = RunLayout(path).teacher  # a run dir given for its teacher
    teacher = load_teacher(path)
    if teacher.task != task:
        raise UserError(f"expert=teacher: {path} was trained on task {teacher.task!r}, not {task!r}")
    return teacher


def _sb3_zip(cfg: ExpertConfig, task: str) -> Expert:
    import gymnasium as gym

    import envs
    from sim2real.teacher.sb3_zip import SB3ZipExpert

    if not cfg.path:
        raise UserError("expert=sb3_zip needs expert.path=PATH.zip")
    env = gym.make(envs.env_id(task)).unwrapped
    base_dim, action_dim = env.base.observation_space.shape[0], env.action_space.shape[0]
    low, high = env.action_space.low, env.action_space.high
    env.close()
    expert = SB3ZipExpert(cfg.path, cfg.algo)
    if (expert.obs_dim, expert.action_dim) != (base_dim, action_dim):
        raise UserError(
            f"expert.path={cfg.path}: the model takes obs {expert.obs_dim} / action {expert.action_dim}, "
            f"task {task!r}'s Gymnasium env has obs {base_dim} / action {action_dim}"
        )
    expert.map_onto(low, high)  # the task's own range (the Go2's offsets are ±4)
    return expert
