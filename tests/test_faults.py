"""Faults on the robot side: the lean controller (`python -m sim2real.deploy`, a real process) is sent
SIGTERM, SIGINT, SIGHUP or SIGKILL at a random moment while it drives a robot over UDP on loopback
(and over DDS where cyclonedds imports). The robot side is the robot-sim's own server class in this
process, serving a robot that records every action it was sent.

After a stop signal: exit 0 with the summary, the robot's last command is the safe action (DDS: the
damping stop command), and the log holds every step. After SIGKILL: the log holds all but at most
`deploy.log_commit_s` (1 s) of the steps, and marks the episode unfinished.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from test_deploy_policy import tiny_export
from test_deploy_udp import CounterRobot, serving

from sim2real.data.store import DemoStore

ROOT = Path(__file__).resolve().parent.parent
RATE = 100.0  # Hz of the controller under test
SAFE = 0.25  # a safe action the policy never outputs exactly


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return tiny_export(tmp_path_factory.mktemp("faults") / "run" / "export")


def start_controller(export_dir: Path, log_dir: Path, *robot_args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "sim2real.deploy", str(export_dir), "--force", "--duration", "60",
           "--rate-hz", str(RATE), "--stale-after", "0.5", "--soft-start", "0", "--safe-action", str(SAFE),
           "--log-dir", str(log_dir), *robot_args]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def logged(log_dir: Path) -> tuple[int, dict]:
    """(steps committed, deploy attribute) of the one log in `log_dir`; DemoStore opens it."""
    (path,) = log_dir.glob("*.zarr")
    store = DemoStore.open(path)
    store.load_arrays()  # every committed row reads back and passes the store's checks
    return store.num_steps, dict(zarr.open_group(str(path), mode="r").attrs["deploy"])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_stop_signal_sends_the_safe_action_commits_every_step_and_exits_0(export_dir, tmp_path, sig):
    robot = CounterRobot()
    with serving(robot) as server:
        ctl = start_controller(export_dir, tmp_path, "--port", str(server.address[1]))
        wait_for(lambda: len(robot.applied) > 20)
        time.sleep(random.uniform(0.0, 1.5))  # a random moment in the run
        ctl.send_signal(sig)
        out, err = ctl.communicate(timeout=30)
        time.sleep(0.1)  # the BYE after the last action
    assert ctl.returncode == 0, err
    assert f"stopped by {sig.name.lower()}" in out, out
    assert robot.applied[-1] == SAFE and len(set(robot.applied)) > 2  # the policy drove it before
    assert server._client is None  # the BYE arrived: the robot let the controller go
    steps, deploy = logged(tmp_path)
    assert steps == len(robot.applied) - 1  # every step (the final safe action is not a step)
    assert deploy["unfinished_episodes"] == []  # its segments (one per commit) form one ended episode


def test_sigkill_loses_at_most_one_commit_interval_and_marks_the_episode_unfinished(export_dir, tmp_path):
    robot = CounterRobot()
    with serving(robot) as server:
        ctl = start_controller(export_dir, tmp_path, "--port", str(server.address[1]))
        wait_for(lambda: len(robot.applied) > 20)
        time.sleep(random.uniform(1.5, 3.0))
        ctl.kill()
        ctl.communicate(timeout=30)
        sent = len(robot.applied)
    time.sleep(1.0)  # the writer process drains what it was handed, then ends
    steps, deploy = logged(tmp_path)
    assert sent - RATE * 1.0 - 5 <= steps <= sent  # ≤ log_commit_s (1 s) lost, plus a step or two
    episodes = DemoStore.open(next(tmp_path.glob("*.zarr"))).num_episodes
    assert steps > 0 and deploy["unfinished_episodes"] == list(range(episodes))  # all cut short


def test_a_second_sigterm_during_shutdown_does_not_cut_the_commit_short(export_dir, tmp_path):
    robot = CounterRobot()
    with serving(robot) as server:
        ctl = start_controller(export_dir, tmp_path, "--port", str(server.address[1]))
        wait_for(lambda: len(robot.applied) > 50)
        ctl.send_signal(signal.SIGTERM)
        time.sleep(0.005)
        ctl.send_signal(signal.SIGTERM)  # a supervisor that insists
        _out, err = ctl.communicate(timeout=30)
    assert ctl.returncode == 0, err
    assert robot.applied[-1] == SAFE and logged(tmp_path)[0] == len(robot.applied) - 1


def test_sigterm_while_connecting_exits_0_with_one_line(export_dir, tmp_path):
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))  # nobody answers there: the controller keeps asking
        ctl = start_controller(export_dir, tmp_path, "--port", str(s.getsockname()[1]))
        time.sleep(2.0)
        ctl.send_signal(signal.SIGTERM)
        _out, err = ctl.communicate(timeout=30)
    assert ctl.returncode == 0 and err.strip() == "deploy: stopped by sigterm before the control loop ran"


# -- DDS --------------------------------------------------------------------------------------------
def test_sigterm_over_dds_leaves_the_vendor_damping_command_at_the_robot(export_dir, tmp_path):
    pytest.importorskip("cyclonedds")
    from test_dds_link import dds_domain
    from test_dds_robot import Pendulum
    from test_dds_robot import serving as dds_serving

    from sim2real.deploy.dds.mapping import load_mapping

    domain = dds_domain()
    mapping = load_mapping("pendulum_unitree_go", domain=domain)
    robot = Pendulum()
    with dds_serving(robot, mapping, rate_hz=200.0) as (server, _):
        ctl = start_controller(export_dir, tmp_path, "--dds", "pendulum_unitree_go", "--domain", str(domain),
                               "--connect-timeout", "20")  # fmt: skip
        wait_for(lambda: server.stats.commands > 20)
        time.sleep(random.uniform(0.0, 1.0))
        ctl.send_signal(signal.SIGTERM)
        out, err = ctl.communicate(timeout=30)
        time.sleep(0.1)  # a few more ticks apply what arrived
        held = server._held
    assert ctl.returncode == 0, err
    assert "stopped by sigterm" in out
    kd = mapping.damping_kd
    assert (held.tau[0], held.q[0], held.dq[0], held.kp[0], held.kd[0]) == (0.0, 0.0, 0.0, 0.0, kd)
    assert held.mode[0] == 1  # enabled: the motor damps, it is not left limp at the last torque
    assert logged(tmp_path)[0] > 20


def test_dds_stop_command_is_repeated_so_a_lossy_reader_still_gets_it(export_dir):
    """The stop goes out several times over a few periods, then close waits before leaving the domain."""
    pytest.importorskip("cyclonedds")
    from test_dds_link import dds_domain
    from test_dds_robot import Pendulum
    from test_dds_robot import serving as dds_serving

    from sim2real.deploy.dds.mapping import load_mapping
    from sim2real.deploy.dds.robot import STOP_REPEATS, DdsRobot

    mapping = load_mapping("pendulum_unitree_go", domain=dds_domain(), connect_timeout=10)
    with dds_serving(Pendulum(), mapping, rate_hz=200.0) as (server, _):
        robot = DdsRobot(mapping)
        robot.connect()
        robot.send(np.array([0.7], np.float32))
        wait_for(lambda: server.stats.commands >= 1, timeout=10)
        before = server.stats.commands
        t0 = time.monotonic()
        robot.close()
        took = time.monotonic() - t0
        time.sleep(0.05)
    assert robot.stats.sent == 1 + STOP_REPEATS
    assert server.stats.commands - before >= 2  # more than one copy arrived
    assert server._held.kd[0] == mapping.damping_kd and 0.04 <= took < 1.0


def test_sigkill_of_the_whole_group_keeps_what_was_committed(export_dir, tmp_path):
    """`docker kill`: the writer dies too; the log still opens with the commits made before."""
    robot = CounterRobot()
    with serving(robot) as server:
        cmd = [sys.executable, "-m", "sim2real.deploy", str(export_dir), "--force", "--duration", "60",
               "--rate-hz", str(RATE), "--stale-after", "0.5", "--log-dir", str(tmp_path), "--log-commit",
               "0.2", "--port", str(server.address[1])]  # fmt: skip
        ctl = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL)
        wait_for(lambda: len(robot.applied) > 100)
        os.killpg(ctl.pid, signal.SIGKILL)
        ctl.wait(30)
        sent = len(robot.applied)
    steps, deploy = logged(tmp_path)
    assert 0 < steps <= sent and 0 in deploy["unfinished_episodes"]


def test_sim2real_deploy_stops_on_sigterm_like_the_lean_controller(export_dir):
    robot = CounterRobot()
    run_dir = export_dir.parent
    with serving(robot) as server:
        cmd = [sys.executable, "-m", "sim2real", "deploy", f"run_dir={run_dir}", "logger=none",
               "deploy.robot=udp", f"deploy.port={server.address[1]}", "deploy.force=true",
               f"deploy.rate_hz={RATE}", "deploy.duration_s=60", "deploy.episodes=3",
               f"deploy.safe_action=[{SAFE}]"]  # fmt: skip
        ctl = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: len(robot.applied) > 20, timeout=60)
        ctl.send_signal(signal.SIGTERM)
        out, err = ctl.communicate(timeout=30)
    assert ctl.returncode == 0, err
    assert "stopped by sigterm" in out and "episode 1" not in out  # the session ends, not the episode
    assert robot.applied[-1] == SAFE
    log = max((run_dir / "deploy").glob("*.zarr"))
    assert DemoStore.open(log).num_steps == len(robot.applied) - 1
