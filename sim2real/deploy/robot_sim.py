"""`sim2real robot-sim`: the task's simulator served over UDP (or DDS), standing in for robot firmware.

    sim2real robot-sim task=pendulum deploy.port=47470 deploy.link.latency_ms=2 deploy.link.loss=0.01
    sim2real deploy run_dir=R deploy.robot=udp deploy.port=47470 deploy.force=true

It binds `deploy.host` (loopback by default), answers each ACTION with the STATE after one control
step (lockstep), and emulates a bad link with `deploy.link.*`. Runs until SIGINT, SIGTERM or SIGHUP
(`docker stop`) or `deploy.serve_seconds`. A peer's message with a wrong meaning (an ACTION of the
wrong size, a RESET that is not `{"seed": n}`, a second controller) is dropped and counted, as a
bad CRC is; the server keeps serving. The simulator is imported here, never by the runtime.

    sim2real robot-sim transport=dds robot=pendulum_unitree_go   # profile=ros2: same mapping, ROS 2 topics
    sim2real deploy run_dir=R deploy.robot=dds robot=pendulum_unitree_go deploy.force=true

With `transport=dds` it publishes the state on the mapping's profile topics at the control rate (loopback
only unless `robot.interface` names an interface) and applies the newest command each tick.
"""

from __future__ import annotations

import threading

from sim2real.deploy import signals
from sim2real.deploy.udp import LinkConfig, RobotServer
from sim2real.errors import UserError
from sim2real.sim_robot import MujocoRobot


def make_server(cfg) -> RobotServer:
    d = cfg.deploy
    robot = MujocoRobot(cfg.task.name, d.dynamics.fixed(), cfg.task.ranges(), seed=cfg.seed)
    robot.connect()
    link = LinkConfig(d.link.latency_ms, d.link.jitter_ms, d.link.loss, seed=cfg.seed)
    return RobotServer(robot, d.host, d.port, link)


def make_dds_server(cfg):
    """The task's MuJoCo model on DDS topics (`transport=dds robot=<mapping> profile=...`), ticking at
    `deploy.rate_hz` (default: the task's control rate)."""
    from sim2real.deploy.dds.mapping import mapping_for
    from sim2real.deploy.dds.server import DdsRobotServer

    d = cfg.deploy
    mapping = mapping_for(cfg.robot, profile=cfg.profile)
    if not mapping.fits(cfg.task.name):
        raise UserError(f"robot mapping {mapping.name} is for task {mapping.task!r}, not {cfg.task.name!r}")
    robot = MujocoRobot(cfg.task.name, d.dynamics.fixed(), cfg.task.ranges(), seed=cfg.seed)
    robot.connect()
    model = robot.env.unwrapped.model  # N m per unit action: the nominal gear (motor_strength is physics)
    gear = model.actuator_gear[:, 0] / robot.extras()["dynamics"].get("motor_strength", 1.0)
    rate = d.rate_hz or 1.0 / robot.control_dt
    return DdsRobotServer(robot, mapping, rate, effort_scale=gear, seed=cfg.seed).open()


def run_dds(cfg) -> None:
    server = make_dds_server(cfg)
    banner = (
        f"{cfg.task.name} on dds ({server.profile.name}: state {server.state_topic!r}, commands "
        f"{server.command_topic!r}, {server.where()}) at {server.rate_hz:g} Hz"
    )
    _serve(server, banner, cfg.deploy.serve_seconds, lambda: server.stats.summary())


def _serve(server, banner: str, seconds: float | None, summary) -> None:
    """Serve until a stop signal or `seconds`, then close the server and its robot and print
    `summary()`."""
    stop = threading.Event()
    old = signals.install(lambda _signum: stop.set())
    print(f"robot-sim: {banner}; Ctrl-C (or SIGTERM) stops", flush=True)
    try:
        server.serve(stop, duration=seconds)
    finally:
        signals.restore(old)
        server.close()
        server.robot.close()
        print(f"robot-sim: stopped; {summary()}", flush=True)


def run(cfg) -> None:
    if cfg.transport not in ("udp", "dds"):
        raise UserError(f"transport={cfg.transport!r} is not one of ('udp', 'dds')")
    if cfg.transport == "dds":
        return run_dds(cfg)
    server = make_server(cfg)
    host, port = server.address
    link = cfg.deploy.link
    banner = (
        f"{cfg.task.name} on udp://{host}:{port} (latency {link.latency_ms} ms, "
        f"jitter {link.jitter_ms} ms, loss {link.loss})"
    )

    def summary() -> str:
        s = server.stats
        return (
            f"{s.accepted} messages accepted, {s.stale} stale, {s.corrupt} corrupt, {s.invalid} invalid, "
            f"{server.out.dropped} dropped by the emulated link"
        )

    _serve(server, banner, cfg.deploy.serve_seconds, summary)
