"""Typed configuration: dataclass schemas that Hydra's YAML in `conf/` is merged into.

The root `Config` is registered in Hydra's ConfigStore as `base_config`; `conf/config.yaml`
extends it, so every group file is checked against its dataclass and an unknown key is an error.
Stage-specific configs live beside their stage (`sim2real/<pkg>/config.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import envs
from envs.parameters import RandomizationConfig, as_lists, make_ranges, stretch
from sim2real import checks
from sim2real.data.config import CollectConfig, ImportConfig
from sim2real.deploy.config import DeployConfig
from sim2real.deploy.dds.mapping import RobotConfig
from sim2real.finetune.config import FinetuneConfig
from sim2real.identify.config import IdentifyConfig
from sim2real.release import ReleaseConfig
from sim2real.stages import EXECUTION_ONLY
from sim2real.student.config import DistillConfig, StudentConfig
from sim2real.teacher.config import ExpertConfig, TeacherConfig
from sim2real.validate.config import ValidateConfig


@dataclass
class TaskConfig:
    """A task of `envs.TASKS` and the randomization ranges it trains under."""

    name: str = "pendulum"
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)
    # every range stretched about its nominal by this factor (`envs.parameters.stretch`; 1.5: each edge half
    # as far again from the nominal), so the policy meets dynamics past the ranges declared above;
    # None: the ranges as declared (None, not 1.0, so runs made before this key still resume)
    widen: float | None = None

    def __post_init__(self) -> None:
        checks.positive("task", self, ("widen",), optional=True)

    def ranges(self) -> dict[str, list[float]]:
        """Every parameter's training range: the ones set here over the task's defaults, stretched by
        `widen`."""
        ranges = make_ranges(vars(self.randomization), envs.task_ranges(self.name), task=self.name)
        return as_lists(ranges if self.widen is None else stretch(ranges, self.widen))


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
    parity_episodes: int = 3  # full randomized episodes, student driving: torch vs onnxruntime
    parity_atol: float = 1e-4
    torchscript: bool = True  # also write policy.pt (TorchScript), the second format
    window: bool = True  # also write policy_window.onnx (full recompute: parity reference, benchmark)
    max_action_rate: float | None = None  # per second, written to the metadata for the controller
    soft_start_s: float | None = None  # the controller's soft start for this policy; None: its default
    opset: int = 17


@dataclass
class InspectConfig:
    steps: int = 5  # of the randomized rollout `sim2real inspect` prints


@dataclass
class PipelineConfig:
    # DAgger rounds of the pipeline's distill stage (it has the run's expert in the loop); a plain
    # `sim2real distill` uses distill.dagger_rounds (default 0: stored data alone)
    dagger_rounds: int = 6


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
    # PPO on the distilled student (`finetune.steps > 0`: a pipeline stage, and export takes its student)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    # DDS robot mapping + link (`robot=go2 robot.interface=eth0 robot.domain=1`), see conf/robot/
    robot: RobotConfig = field(default_factory=RobotConfig)
    # `sim2real robot-sim transport=udp|dds profile=unitree_go|unitree_hg|ros2` (profile: default the
    # mapping's; also applies to `deploy.robot=dds`)
    transport: str = "udp"
    profile: str | None = None
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    # `sim2real distill data=PATH.zarr`: train (and validate's demo reference) from any store
    # (default: <run_dir>/demos.zarr)
    data: str | None = None
    # the command line names the task (`task=NAME`, `task.name=NAME`; cli.py sets it): only then are
    # `import` and `distill` data that names no task (a foreign import) bound to it (data/binding.py).
    # Outside `task`, so teacher checkpoints and stage keys are the same either way
    task_explicit: bool = field(default=False, metadata=EXECUTION_ONLY)
    importer: ImportConfig = field(default_factory=ImportConfig)  # `sim2real import source=...`
    inspect: InspectConfig = field(default_factory=InspectConfig)  # `sim2real inspect steps=N`
    identify: IdentifyConfig = field(default_factory=IdentifyConfig)  # `sim2real identify log=PATH.zarr`
    release: ReleaseConfig = field(default_factory=ReleaseConfig)  # `sim2real release run_dir=R`


def register() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="base_config", node=Config)
