"""`sim2real robot-sim`: the task's simulator served over UDP, standing in for robot firmware.

    sim2real robot-sim task=pendulum deploy.port=47470 deploy.link.latency_ms=2 deploy.link.loss=0.01
    sim2real deploy run_dir=R deploy.robot=udp deploy.port=47470 deploy.force=true

It binds `deploy.host` (loopback by default), answers each ACTION with the STATE after one control
step (lockstep), and emulates a bad link with `deploy.link.*`. Runs until SIGINT or
`deploy.serve_seconds`. The simulator is imported here, never by the runtime.
"""

from __future__ import annotations

import signal
import threading

from sim2real.deploy.udp import LinkConfig, RobotServer
from sim2real.sim_robot import MujocoRobot


def make_server(cfg) -> RobotServer:
    d = cfg.deploy
    robot = MujocoRobot(cfg.task.name, d.dynamics.fixed(), cfg.task.ranges(), seed=cfg.seed)
    robot.connect()
    link = LinkConfig(d.link.latency_ms, d.link.jitter_ms, d.link.loss, seed=cfg.seed)
    return RobotServer(robot, d.host, d.port, link)


def run(cfg) -> None:
    server = make_server(cfg)
    stop = threading.Event()
    old = signal.signal(signal.SIGINT, lambda *_: stop.set())
    host, port = server.address
    link = cfg.deploy.link
    print(
        f"robot-sim: {cfg.task.name} on udp://{host}:{port} (latency {link.latency_ms} ms, "
        f"jitter {link.jitter_ms} ms, loss {link.loss}); Ctrl-C stops",
        flush=True,
    )
    try:
        server.serve(stop, duration=cfg.deploy.serve_seconds)
    finally:
        signal.signal(signal.SIGINT, old)
        server.close()
        server.robot.close()
        s = server.stats
        print(
            f"robot-sim: stopped; {s.accepted} messages accepted, {s.stale} stale, {s.corrupt} corrupt, "
            f"{server.out.dropped} dropped by the emulated link"
        )
