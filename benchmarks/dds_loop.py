"""The 500 Hz loop over DDS for `benchmarks/dds.py --part controller|floor` (see its docstring).

controller_figures(): a controller (DdsRobot + Zarr log) against `sim2real robot-sim transport=dds` in its
own process; goal <= 0.1% deadline misses. floor_figures(): the same schedule with an empty step, so the
misses the machine causes by itself can be told from the loop's own.
"""

from __future__ import annotations

import time

import numpy as np

GOAL_MISS_FRACTION = 1e-3  # deadline misses of a 500 Hz controller against robot-sim over DDS


def _robot_sim(tmp, domain: int, rate: float, seconds: float, sim_core: int):
    """`sim2real robot-sim transport=dds` (MuJoCo pendulum, unitree_go) pinned to `sim_core`, started."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    cmd = [sys.executable, "-m", "sim2real", "robot-sim", "transport=dds", "robot=pendulum_unitree_go",
           f"robot.domain={domain}", f"deploy.rate_hz={rate}", f"deploy.serve_seconds={seconds + 120}",
           "logger=none", f"run_dir={Path(tmp) / 'sim'}"]  # fmt: skip
    ncpu, root = os.cpu_count(), Path(__file__).resolve().parent.parent
    sim = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           preexec_fn=lambda: os.sched_setaffinity(0, {sim_core % ncpu}))  # fmt: skip
    first = sim.stdout.readline()
    if "robot-sim:" not in first:
        sim.kill()
        raise RuntimeError(f"robot-sim did not start: {first}{sim.stdout.read()}")
    return sim


def floor_figures(seconds: float = 60.0, rate: float = 500.0, core: int = 0, sim_core: int = 1,
                  spin_s: float | None = None) -> dict:  # fmt: skip
    """The machine's own share of the misses: the controller's schedule (same sleep + spin, same core)
    with an empty step, while robot-sim publishes at `rate` on `sim_core`. A wake-up later than one
    period is a deadline no step could have met."""
    import os
    import tempfile

    period = 1.0 / rate
    spin_s = 0.9 * period if spin_s is None else spin_s
    with tempfile.TemporaryDirectory(prefix="s2r-dds-floor-") as tmp:
        sim = _robot_sim(tmp, 200 + os.getpid() % 30, rate, seconds, sim_core)
        os.sched_setaffinity(0, {core % os.cpu_count()})
        try:
            late = _empty_loop(seconds, period, spin_s)
        finally:
            sim.send_signal(2)
            sim.communicate(timeout=60)
    n = len(late)
    miss, half = float(np.mean(late > period)), float(np.mean(late > period / 2))
    p99, p999 = np.percentile(late * 1e6, [99, 99.9])
    print(f"floor: an empty step on the controller's schedule, {rate:.0f} Hz for {seconds:.0f} s, robot-sim "
          f"on core {sim_core} (spin {spin_s * 1e3:.2f} ms)")  # fmt: skip
    print(f"  {n} deadlines; wake-up lateness p99 {p99:.1f}, p99.9 {p999:.1f}, max {late.max() * 1e6:.0f} µs")
    print(f"  later than half a period {100 * half:.3f}%; later than a period (sure miss) {100 * miss:.3f}%")
    return dict(miss_fraction=miss, half_period_fraction=half, deadlines=n)


def _empty_loop(seconds: float, period: float, spin_s: float) -> np.ndarray:
    """Wake-up lateness [s] of each deadline of an empty control loop (absolute deadlines, no skips)."""
    from sim2real.deploy.controller import _sleep_until

    n = int(seconds / period)
    late = np.empty(n)
    t0 = time.monotonic()
    for k in range(n):
        deadline = t0 + k * period
        _sleep_until(deadline, spin_s)
        late[k] = time.monotonic() - deadline
    return late


def controller_figures(seconds: float = 60.0, rate: float = 500.0, export=None, core: int = 0,
                       sim_core: int = 1, log: bool = True, isolate: bool = False, rt_priority: int = 0,
                       spin_s: float | None = None) -> dict:  # fmt: skip
    """A `rate` Hz controller (DdsRobot, Zarr log) against `sim2real robot-sim transport=dds` (MuJoCo
    pendulum publishing LowState_ at the same rate) in its own process: deadline misses, link counts.
    The control thread is pinned to `core`; CycloneDDS's threads and the log writer roam, or with
    `isolate` start on `sim_core` so that the control thread has its core alone. `rt_priority` runs the
    control thread on SCHED_FIFO; `spin_s` is its busy-wait per period (default 90% of the period, or
    0.2 ms with `rt_priority`: a real-time thread that spins most of the time gets throttled)."""
    import os
    import re
    import shutil
    import sys
    import tempfile
    from pathlib import Path

    from sim2real.deploy import Controller, ControllerConfig, DeployLog, load_policy
    from sim2real.deploy.dds.mapping import load_mapping
    from sim2real.deploy.dds.robot import DdsRobot

    tmp = Path(tempfile.mkdtemp(prefix="s2r-dds-bench-"))
    if export is None:
        sys.path.insert(0, str(Path(__file__).parent))
        from inference import default_export

        export = default_export(tmp / "export")
    policy = load_policy(export)
    domain, ncpu = 200 + os.getpid() % 30, os.cpu_count()
    sim = _robot_sim(tmp, domain, rate, seconds, sim_core)
    if isolate:  # threads and processes started from here on inherit this affinity
        os.sched_setaffinity(0, {sim_core % ncpu})
    robot = DdsRobot(load_mapping("pendulum_unitree_go", domain=domain, connect_timeout=30))
    robot.connect()
    spec = policy.spec
    log_path = tmp / "deploy.zarr"
    os.sched_setaffinity(0, {core % ncpu})  # this thread only; the log writer then starts off this core
    dlog = DeployLog(log_path, {"task": spec.task}, spec.obs_names, spec.action_names) if log else None
    spin_s = spin_s if spin_s is not None else 2e-4 if rt_priority else 0.9 / rate
    cfg = ControllerConfig(rate_hz=rate, stale_after_s=0.05, spin_s=spin_s, handle_sigint=False,
                           realtime_priority=rt_priority)  # fmt: skip
    try:
        stats = Controller(policy, robot, cfg, dlog).run(duration=seconds)
    finally:
        robot.close()
        if dlog is not None:
            dlog.close()
        sim.send_signal(2)
        out = sim.communicate(timeout=60)[0]
    sim_line = next((line for line in out.splitlines() if "robot-sim: stopped" in line), out[-300:])
    crc = re.search(r"(\d+) CRC errors", sim_line)
    miss = stats.overruns / max(stats.steps, 1)
    where = f"controller core {core}, robot-sim core {sim_core}, {ncpu} cpus, log {'on' if log else 'off'}"
    where += ", DDS threads + log writer on the robot-sim core" if isolate else ""
    where += f", SCHED_FIFO {rt_priority}" if rt_priority else ""
    where += f", spin {spin_s * 1e3:.2f} ms"
    print(f"controller: {rate:.0f} Hz for {seconds:.0f} s, DdsRobot vs robot-sim transport=dds ({where})")
    faults = [f.kind for f in stats.faults] or "none"
    print(f"  steps {stats.steps} of {int(seconds * rate)} deadlines; overruns (misses) {stats.overruns}")
    print(f"  = {100 * miss:.3f}%; deadlines skipped {stats.skipped_deadlines}; faults {faults}")
    if log:
        import zarr

        late = zarr.open_group(str(log_path), mode="r")["data/lateness"][:] * 1e6
        p50, p99, p999 = np.percentile(late, [50, 99, 99.9])
        worst = stats.max_lateness_s * 1e6
        print(f"  wake-up lateness p50 {p50:.1f}, p99 {p99:.1f}, p99.9 {p999:.1f}, max {worst:.0f} µs")
    print(f"  controller link: {robot.stats.summary()}")
    print(f"  {sim_line.strip()}")
    verdict = "meets" if miss <= GOAL_MISS_FRACTION else "misses"
    crcs = f"CRC errors robot-side {crc.group(1) if crc else '?'}, controller-side {robot.stats.crc_errors}"
    goal = f"the goal of <= {100 * GOAL_MISS_FRACTION:.1f}%"
    print(f"  deadline misses {100 * miss:.3f}% {verdict} {goal}; {crcs}")
    shutil.rmtree(tmp, ignore_errors=True)
    return dict(miss_fraction=miss, steps=stats.steps, crc_errors=robot.stats.crc_errors)
