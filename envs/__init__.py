"""MuJoCo tasks with domain randomization; `import envs` registers them with Gymnasium.

This package never imports `sim2real`. Its `observations` module is pure numpy and importable
without Gymnasium or MuJoCo (the robot-side runtime uses it).
"""

from __future__ import annotations

from envs.spec import TaskSpec, fell, not_upright_at_end, upright_metric

# Hydra task name -> its spec; a new task is one entry here plus its `make_task` module
TASKS: dict[str, TaskSpec] = {
    # 10 s at 20 Hz; failed unless balanced (cos > 0.9 on average) over the last quarter
    "pendulum": TaskSpec(
        "sim2real/PendulumSwingup-v0",
        "envs.pendulum:make_task",
        200,
        failed=not_upright_at_end(column=0, threshold=0.9),
        metrics=upright_metric(column=0),
    ),
    "hopper": TaskSpec("sim2real/Hopper-v0", "envs.hopper:make_task", 1000, failed=fell),
    "walker2d": TaskSpec("sim2real/Walker2d-v0", "envs.walker2d:make_task", 1000, failed=fell),
    "halfcheetah": TaskSpec("sim2real/HalfCheetah-v0", "envs.halfcheetah:make_task", 1000, failed=fell),
    "ant": TaskSpec("sim2real/Ant-v0", "envs.ant:make_task", 1000, failed=fell),
}


def spec(task: str) -> TaskSpec:
    """The spec of a Hydra task name; ValueError naming the known ones otherwise."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[task]


def env_id(task: str) -> str:
    """Gymnasium id of a Hydra task name; ValueError naming the known ones otherwise."""
    return spec(task).gym_id


def _register() -> None:
    try:
        import gymnasium as gym
    except ImportError:  # robot-side install: observations only
        return
    for s in TASKS.values():
        if s.gym_id not in gym.registry:
            gym.register(id=s.gym_id, entry_point=s.entry, max_episode_steps=s.episode_steps)


_register()
