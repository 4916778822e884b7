"""Validation scenarios and gate thresholds."""

from __future__ import annotations

from dataclasses import dataclass, field

from sim2real.stages import EXECUTION_ONLY


@dataclass
class GateConfig:
    """Returns are compared on a normalized score: (R - random) / (teacher - random), so the thresholds
    mean the same for tasks with negative rewards (pendulum) and positive ones (locomotion)."""

    min_mean_ratio: float = 0.9  # student mean score ≥ 0.9 × teacher's, training randomization
    min_p10_ratio: float = 0.8  # student 10th percentile score ≥ 0.8 × teacher's
    max_failure_rate: float = 0.1  # student failure rate ≤ teacher's + this, in each of `failure_scenarios`
    failure_scenarios: list[str] = field(default_factory=lambda: ["train", "nominal"])
    # the student's nominal score against the task's published agent (envs TaskSpec.published, e.g. the
    # RL Zoo's PPO Hopper-v3), an absolute floor: the checks above are relative to the run's own teacher,
    # which a weak teacher makes easy. None: reported in report.md, not gated
    min_published_ratio: float | None = None


@dataclass
class ValidateConfig:
    episodes: int = 100  # per main scenario (training randomization, nominal)
    stress_episodes: int = 50  # per stress scenario
    sweep_episodes: int = 16  # per grid point of a one-parameter sweep
    sweep_points: int = 5
    sweep_extend: float = 0.5  # the grid extends this fraction of the training range past each end
    dropout_prob: float = 0.1  # stress: probability a sensor packet is lost (the last one is reused)
    push_accel: float = 4.0  # stress: push force / total mass (m/s²), for 0.2 s every ~2 s
    # processes (backend=local) or Ray tasks in flight (backend=ray) that run episodes
    workers: int = field(default=2, metadata=EXECUTION_ONLY)
    backend: str = field(default="local", metadata=EXECUTION_ONLY)  # local (process pool) | ray
    # ray: None starts a local instance; "auto" or "HOST:PORT" joins one
    ray_address: str | None = field(default=None, metadata=EXECUTION_ONLY)
    seed_base: int = 1_000_000  # validation seeds, disjoint from training and collection seeds
    sweeps: bool = True
    stress: bool = True
    gate: GateConfig = field(default_factory=GateConfig)
