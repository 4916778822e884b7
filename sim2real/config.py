"""Typed configuration: dataclass schemas that Hydra's YAML in `conf/` is merged into.

The root `Config` is registered in Hydra's ConfigStore as `base_config`; `conf/config.yaml`
extends it, so every group file is checked against its dataclass and an unknown key is an error.
Stage-specific configs live beside their stage (`sim2real/<pkg>/config.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from envs.randomization import DEFAULT_RANGES
from sim2real.data.config import CollectConfig, ExpertConfig, ImportKeys
from sim2real.deploy.dds.mapping import RobotConfig
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
    parity_episodes: int = 3  # full randomized episodes, student driving: torch vs onnxruntime
    parity_atol: float = 1e-4
    torchscript: bool = True  # also write policy.pt (TorchScript), the second format
    window: bool = True  # also write policy_window.onnx (full recompute: parity reference, benchmark)
    max_action_rate: float | None = None  # per second, written to the metadata for the controller
    opset: int = 17


@dataclass
class FixedDynamics:
    """Dynamics of the sim robot (`deploy.dynamics.mass_scale=1.2`); None: sampled from the task's ranges."""

    mass_scale: float | None = None
    friction_scale: float | None = None
    motor_strength: float | None = None
    joint_damping_scale: float | None = None
    latency_steps: int | None = None
    obs_noise_scale: float | None = None

    def fixed(self) -> dict[str, float]:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass
class LinkSettings:
    """Emulated network faults of `sim2real robot-sim` (see sim2real.deploy.udp.LinkConfig)."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0  # uniform extra delay: reorders datagrams
    loss: float = 0.0  # drop probability of each datagram, both directions


@dataclass
class DeployConfig:
    # sim: MujocoRobot in-process | udp: UdpRobot (robot-sim or hardware) | dds: DdsRobot over the
    # `robot=<mapping>` (conf/robot/), loopback unless robot.interface names one
    robot: str = "sim"
    episodes: int = 1
    force: bool = False  # deploy an export without a passing validation report
    steps: int | None = None  # per episode; None: until the simulated episode ends (or SIGINT)
    duration_s: float | None = None  # per episode, wall-clock
    rate_hz: float | None = None  # None: 1 / the policy's control_dt
    host: str = "127.0.0.1"  # robot=udp: the robot's address (robot-sim: the address it binds)
    port: int = 47470
    dynamics: FixedDynamics = field(default_factory=FixedDynamics)
    safe_action: list[float] | None = None  # None: zeros
    soft_start_s: float = 0.5
    stale_after_s: float | None = None  # sensor watchdog; None: max(3 periods, 10 ms)
    max_action_rate: float | None = None  # per second; None: the export's metadata
    # exponential action filter α in [0, 1), applied to the policy output before soft start, clipping
    # and rate limit: filtered = α · previous filtered + (1 − α) · policy output (larger α: smoother,
    # more lag); None: off. Recorded in the deployment log's `deploy.action_filter` attribute.
    action_filter: float | None = None
    spin_s: float = 2e-4  # busy-wait before each deadline (sleep alone overshoots by 0.1-1 ms)
    # SCHED_FIFO priority 1-99 of the control loop's thread (Linux, root or CAP_SYS_NICE); 0: off
    realtime_priority: int = 0
    log: bool = True  # <run_dir>/deploy/<timestamp>.zarr
    serve_seconds: float | None = None  # robot-sim: stop after this long (None: until SIGINT)
    link: LinkSettings = field(default_factory=LinkSettings)


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
