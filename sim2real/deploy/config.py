"""`deploy.*`: how `sim2real deploy` and `sim2real robot-sim` run (standard library only)."""

from __future__ import annotations

from dataclasses import dataclass, field

from envs.parameters import FixedDynamics


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
