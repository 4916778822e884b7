"""A 1 kHz controller loop against `sim2real robot-sim` over UDP on loopback: deadline misses.

    .venv/bin/python benchmarks/controller.py [--seconds 60] [--rate 1000] [--export RUN/export]

The robot-sim runs in its own process (pendulum, lockstep, pinned to --sim-core); the controller
(policy + safety + UDP + Zarr log, pinned to --core) runs for --seconds without stopping at episode
ends, busy-waiting the last --spin fraction of each period as a dedicated control core would (the
Zarr log is written by its own process). A deadline miss is a step that finished after the next
step's deadline (an overrun). Goal: misses ≤ 0.1% of steps. Without --export an untrained default
student is exported first.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GOAL_MISS_FRACTION = 1e-3


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_robot_sim(port: int, seconds: float, core: int, run_dir: Path) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "sim2real",
        "robot-sim",
        "logger=none",
        f"run_dir={run_dir}",
        f"deploy.port={port}",
        f"deploy.serve_seconds={seconds}",
    ]
    sim = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        preexec_fn=lambda: os.sched_setaffinity(0, {core}),
    )
    line = sim.stdout.readline()
    if "robot-sim:" not in line:
        sim.kill()
        raise RuntimeError(f"robot-sim did not start: {line}{sim.stdout.read()}")
    return sim


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--export", type=Path, default=None)
    p.add_argument("--core", type=int, default=0)
    p.add_argument("--sim-core", type=int, default=1 % os.cpu_count())
    p.add_argument("--no-log", action="store_true", help="run without the Zarr deployment log")
    p.add_argument("--switch-interval", type=float, default=None, help="sys.setswitchinterval (s)")
    p.add_argument("--no-gc", action="store_true", help="gc.disable() during the loop")
    p.add_argument("--spin", type=float, default=0.9, help="busy-wait this fraction of each period")
    args = p.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    if args.no_gc:
        import gc

        gc.freeze()
        gc.disable()
    tmp = Path(tempfile.mkdtemp(prefix="s2r-ctl-bench-"))
    if args.export is None:
        sys.path.insert(0, str(Path(__file__).parent))
        from inference import default_export

        args.export = default_export(tmp / "export")
    os.sched_setaffinity(0, {args.core})

    from sim2real.deploy import Controller, ControllerConfig, DeployLog, UdpRobot, load_policy

    policy = load_policy(args.export)
    port = free_port()
    sim = start_robot_sim(port, args.seconds + 60, args.sim_core, tmp / "sim")
    robot = UdpRobot("127.0.0.1", port)
    robot.connect()
    spec = policy.spec
    log = (
        None
        if args.no_log
        else DeployLog(tmp / "deploy.zarr", {"task": spec.task}, spec.obs_names, spec.action_names)
    )
    cfg = ControllerConfig(
        rate_hz=args.rate, stop_on_episode_end=False, stale_after_s=0.05, spin_s=args.spin / args.rate
    )
    try:
        stats = Controller(policy, robot, cfg, log).run(duration=args.seconds, seed=0)
    finally:
        robot.close()
        if log is not None:
            log.close()
        sim.terminate()
        sim.wait(10)
    report(args, stats, robot.stats, tmp / "deploy.zarr")


def report(args, stats, bridge, log_path: Path) -> None:
    import zarr

    lateness = (
        zarr.open_group(str(log_path), mode="r")["data/lateness"][:] * 1e6
        if log_path.exists()
        else np.zeros(1)
    )
    expected = int(args.seconds * args.rate)
    miss = stats.overruns / max(stats.steps, 1)
    p50, p99, p999 = np.percentile(lateness, [50, 99, 99.9])
    print(
        f"controller benchmark: {args.rate:.0f} Hz for {args.seconds:.0f} s against robot-sim over UDP "
        f"(controller core {args.core}, robot-sim core {args.sim_core}, {os.cpu_count()} cpus)"
    )
    print(
        f"steps {stats.steps} of {expected} deadlines; overruns (deadline misses) {stats.overruns} "
        f"= {100 * miss:.3f}%; deadlines skipped {stats.skipped_deadlines}"
    )
    print(
        f"wake-up lateness: p50 {p50:.1f} us  p99 {p99:.1f} us  p99.9 {p999:.1f} us  "
        f"max {stats.max_lateness_s * 1e6:.0f} us"
    )
    print(
        f"udp: sent {bridge.sent}, states accepted {bridge.accepted}, lost {bridge.lost}, "
        f"stale {bridge.stale}, "
        f"corrupt {bridge.corrupt}; faults {[f.kind for f in stats.faults] or 'none'}"
    )
    verdict = "meets" if miss <= GOAL_MISS_FRACTION else "misses"
    print(f"deadline misses {100 * miss:.3f}% {verdict} the goal of <= {100 * GOAL_MISS_FRACTION:.1f}%")


if __name__ == "__main__":
    main()
