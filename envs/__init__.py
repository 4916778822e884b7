"""MuJoCo tasks with domain randomization; `import envs` registers them with Gymnasium.

This package never imports `sim2real`. Its `observations` module is pure numpy and importable
without Gymnasium or MuJoCo (the robot-side runtime uses it).
"""

from __future__ import annotations

# Hydra task name -> (Gymnasium id, entry point, episode length in steps)
TASKS: dict[str, tuple[str, str, int]] = {
    "pendulum": ("sim2real/PendulumSwingup-v0", "envs.pendulum:make_task", 200),
    "hopper": ("sim2real/Hopper-v0", "envs.hopper:make_task", 1000),
    "walker2d": ("sim2real/Walker2d-v0", "envs.walker2d:make_task", 1000),
    "halfcheetah": ("sim2real/HalfCheetah-v0", "envs.halfcheetah:make_task", 1000),
    "ant": ("sim2real/Ant-v0", "envs.ant:make_task", 1000),
}


def env_id(task: str) -> str:
    """Gymnasium id of a Hydra task name; ValueError naming the known ones otherwise."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[task][0]


def _register() -> None:
    try:
        import gymnasium as gym
    except ImportError:  # robot-side install: observations only
        return
    for gym_id, entry, steps in TASKS.values():
        if gym_id not in gym.registry:
            gym.register(id=gym_id, entry_point=entry, max_episode_steps=steps)


_register()
