"""MuJoCo tasks with domain randomization; `import envs` registers them with Gymnasium.

This package never imports `sim2real`. Its `observations` module is pure numpy and importable
without Gymnasium or MuJoCo (the robot-side runtime uses it).
"""

from __future__ import annotations

from typing import Any

from envs.spec import (
    PublishedScore,
    TaskSpec,
    fell,
    flip_metric,
    not_upright_at_end,
    upright_metric,
    velocity_tracking,
)

# latency_steps counts control steps: one is 8 ms at 125 Hz (Hopper, Walker2d), 50 ms at 20 Hz (HalfCheetah,
# Ant). Their teachers act on the undelayed state and break when fed their own observation one step late
# (Hopper's teacher 1,668 -> 862, the published SAC HalfCheetah 9,244 -> 2,214; benchmarks/latency.py): a
# student gated against one would have to beat a latency it never met. These tasks randomize sensor noise
# and dynamics but no latency; validation's stress scenarios latency+1/+2 still report what it costs.
NO_LATENCY = {"latency_steps": (0, 0)}


def _locomotion(name: str, task: str, **rules: Any) -> TaskSpec:
    """A Gymnasium `-v5` locomotion task: 1,000 steps, failed when it falls, no sensor latency."""
    entry = f"envs.{task}:make_task"
    return TaskSpec(f"sim2real/{name}-v0", entry, 1000, failed=fell, ranges=NO_LATENCY, **rules)


def _zoo_ppo(env: str, mean_return: float) -> PublishedScore:
    """The RL Baselines3 Zoo's PPO agent for `env`-v3 (its benchmark.md: 1M steps, deterministic, no
    randomization, clean sensors): what a user of this env would first compare a policy with."""
    return PublishedScore(f"RL Zoo PPO {env}-v3", mean_return)


def _go2(name: str, make: str) -> TaskSpec:
    """Go2 velocity tracking: 20 s at 50 Hz; failed when it falls; tracking errors from the privileged
    observation's base velocity and command columns (envs.go2.BASE_OBS). Its teacher acts on the undelayed
    privileged state, so the student can learn a sensor delay of up to one control step (20 ms): a
    deployed controller's command often lands a tick late (over DDS: state read, inference, send)."""
    return TaskSpec(
        f"sim2real/{name}-v0",
        f"envs.go2_env:{make}",
        1000,
        failed=fell,
        metrics=velocity_tracking(lin_vel=0, ang_vel=3, command=9, dt=0.02),
        ranges={"latency_steps": (0, 1)},
    )


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
    "hopper": _locomotion("Hopper", "hopper", published=_zoo_ppo("Hopper", 2410.4)),
    "walker2d": _locomotion("Walker2d", "walker2d", published=_zoo_ppo("Walker2d", 3478.8)),
    # never terminates: whether it went over is a metric (column 1: rooty, -v5's obs after rootz)
    "halfcheetah": _locomotion(
        "HalfCheetah", "halfcheetah", metrics=flip_metric(pitch=1), published=_zoo_ppo("HalfCheetah", 5819.1)
    ),
    "ant": _locomotion("Ant", "ant", published=_zoo_ppo("Ant", 1327.2)),
    "go2": _go2("Go2", "make_task"),
    "go2_rough": _go2("Go2Rough", "make_rough_task"),  # envs.terrain's bumps, slopes, stairs, blocks
}


def spec(task: str) -> TaskSpec:
    """The spec of a Hydra task name; ValueError naming the known ones otherwise."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[task]


def task_ranges(task: str) -> dict[str, tuple[float, float]]:
    """A task's own default training ranges, where they differ from `envs.parameters.TABLE`'s."""
    return dict(TASKS[task].ranges) if task in TASKS else {}


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
