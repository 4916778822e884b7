"""Typed configuration: dataclass schemas that Hydra's YAML in `conf/` is merged into.

The root `Config` is registered in Hydra's ConfigStore as `base_config`; `conf/config.yaml`
extends it, so every group file is checked against its dataclass and an unknown key is an error.
Stage-specific configs live beside their stage (`sim2real/<pkg>/config.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from envs.randomization import DEFAULT_RANGES
from sim2real.data.config import CollectConfig, ExpertConfig, ImportKeys
from sim2real.student.config import DistillConfig, StudentConfig
from sim2real.teacher.config import TeacherConfig
from sim2real.validate.config import ValidateConfig


def _range(name: str):
    r = DEFAULT_RANGES[name]
    return field(default_factory=lambda: [r.low, r.high])


@dataclass
class RandomizationConfig:
    """Training ranges [low, high] of the domain-randomization parameters (see envs/randomization.py)."""

    mass_scale: list[float] = _range("mass_scale")
    friction_scale: list[float] = _range("friction_scale")
    motor_strength: list[float] = _range("motor_strength")
    joint_damping_scale: list[float] = _range("joint_damping_scale")
    latency_steps: list[int] = _range("latency_steps")
    obs_noise_scale: list[float] = _range("obs_noise_scale")


@dataclass
class TaskConfig:
    """A task of `envs.TASKS` and the randomization ranges it trains under."""

    name: str = "pendulum"
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)

    def ranges(self) -> dict[str, list[float]]:
        return dict(vars(self.randomization))


@dataclass
class LoggerConfig:
    """`none`: nothing; `local`: JSONL + CSV in the stage dir; `wandb`: local + wandb."""

    kind: str = "local"
    project: str = "sim2real"
    # wandb mode: offline unless the user configured online (WANDB_MODE or `wandb login`)
    mode: str | None = None
    entity: str | None = None


@dataclass
class ExportConfig:
    parity_episodes: int = 3
    parity_atol: float = 1e-4
    torchscript: bool = True


@dataclass
class DeployConfig:
    robot: str = "sim"
    episodes: int = 1
    force: bool = False


@dataclass
class Config:
    stage: str = "inspect"
    run_dir: str = "runs/${task.name}"
    seed: int = 0
    device: str = "auto"
    task: TaskConfig = field(default_factory=TaskConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    expert: ExpertConfig = field(default_factory=ExpertConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    # `sim2real distill data=PATH.zarr`: train from any store (default: <run_dir>/demos.zarr)
    data: str | None = None
    # `sim2real import source=PATH format=... out=PATH.zarr keys.student_obs=KEY keys.action=KEY`
    source: str | None = None
    format: str | None = None
    out: str | None = None
    keys: ImportKeys = field(default_factory=ImportKeys)
    # `sim2real inspect`: steps of the randomized rollout it prints
    steps: int = 5


def register() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="base_config", node=Config)
