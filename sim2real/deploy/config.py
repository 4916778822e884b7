"""`deploy.*`: how `sim2real deploy`, `python -m sim2real.deploy` and `sim2real robot-sim` run
(standard library only).

`LoopSettings` declares the control loop's options once: `DeployConfig` (Hydra's `deploy.*`) and the
runtime's `ControllerConfig` both extend it, the lean CLI's flags are generated from it, and
`controller_settings` copies exactly its fields from one to the other. Every value is checked where it
is declared (`__post_init__`), with one line naming the `deploy.*` key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from envs.parameters import FixedDynamics
from sim2real import checks

ROBOTS = ("sim", "udp", "dds")


DEFAULT_SOFT_START_S = 0.5  # s: the soft start of a policy whose export names none


@dataclass
class LoopSettings:
    """The control loop's options, shared by `deploy.*` and `ControllerConfig`."""

    rate_hz: float | None = None  # None: 1 / the policy's control_dt
    stale_after_s: float | None = None  # sensor watchdog; None: max(3 periods, 10 ms)
    safe_action: list[float] | None = None  # None: zeros
    # ramp from the safe action to the policy's over this long; None: the export's (`policy.json`
    # soft_start_s: a walking policy blended with the standing pose falls), else `DEFAULT_SOFT_START_S`
    soft_start_s: float | None = None
    max_action_rate: float | None = None  # per second; None: the export's metadata
    # exponential action filter α in [0, 1), applied to the policy output before soft start, clipping
    # and rate limit: filtered = α · previous filtered + (1 − α) · policy output (larger α: smoother,
    # more lag); None: off. Recorded in the deployment log's `deploy.action_filter` attribute.
    action_filter: float | None = None
    # busy-wait before each deadline: sleep overshoots by ~0.1 ms on a quiet Linux box, by over 1 ms on
    # some VMs; a dedicated control core at 1 kHz can spin most of the period
    spin_s: float = 2e-4
    # SCHED_FIFO priority 1-99 of the control loop's thread (Linux, root or CAP_SYS_NICE); 0: off. Keep
    # spin_s short with it: a real-time thread that busy-waits most of each period gets throttled.
    realtime_priority: int = 0

    def __post_init__(self) -> None:
        p = "deploy"
        checks.positive(p, self, ("rate_hz", "stale_after_s", "max_action_rate"), optional=True)
        checks.at_least(p, self, 0, ("spin_s",))
        checks.at_least(p, self, 0, ("soft_start_s",), optional=True)
        checks.in_range(p, self, "action_filter", 0.0, 1.0, high_open=True)
        checks.in_range(p, self, "realtime_priority", 0, 99)


def controller_settings(source: LoopSettings) -> dict[str, Any]:
    """The `LoopSettings` fields of `source`, as keyword arguments of another `LoopSettings` subclass."""
    return {f.name: getattr(source, f.name) for f in dataclasses.fields(LoopSettings)}


@dataclass
class LinkSettings:
    """Emulated network faults of `sim2real robot-sim` (see sim2real.deploy.udp.LinkConfig)."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0  # uniform extra delay: reorders datagrams
    loss: float = 0.0  # drop probability of each datagram, both directions

    def __post_init__(self) -> None:
        checks.at_least("deploy.link", self, 0, ("latency_ms", "jitter_ms"))
        checks.in_range("deploy.link", self, "loss", 0.0, 1.0, high_open=True)


@dataclass
class DeployConfig(LoopSettings):
    # sim: MujocoRobot in-process | udp: UdpRobot (robot-sim or hardware) | dds: DdsRobot over the
    # `robot=<mapping>` (conf/robot/), loopback unless robot.interface names one
    robot: str = "sim"
    episodes: int = 1
    force: bool = False  # deploy an export without a passing validation report
    steps: int | None = None  # per episode; None: until the simulated episode ends (or a stop signal)
    duration_s: float | None = None  # per episode, wall-clock
    host: str = "127.0.0.1"  # robot=udp: the robot's address (robot-sim: the address it binds)
    port: int = 47470
    dynamics: FixedDynamics = field(default_factory=FixedDynamics)
    log: bool = True  # <run_dir>/deploy/<timestamp>.zarr
    # the running episode is committed to the log at least this often (s): a crash or SIGKILL loses at
    # most this much; the writer runs in its own process, so the loop never waits on the disk
    log_commit_s: float = 1.0
    serve_seconds: float | None = None  # robot-sim: stop after this long (None: until a stop signal)
    link: LinkSettings = field(default_factory=LinkSettings)

    def __post_init__(self) -> None:
        super().__post_init__()
        p = "deploy"
        checks.one_of(p, self, "robot", ROBOTS)
        checks.at_least(p, self, 1, ("episodes",))
        checks.at_least(p, self, 1, ("steps",), optional=True)
        checks.positive(p, self, ("duration_s", "serve_seconds"), optional=True)
        checks.positive(p, self, ("log_commit_s",))
        checks.in_range(p, self, "port", 0, 65535)
