"""The UDP robot bridge on 127.0.0.1: wire format, loss, reordering, corruption, watchdog, robot-sim."""

from __future__ import annotations

import contextlib
import itertools
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_deploy_policy import tiny_export

from sim2real.data.store import DemoStore
from sim2real.deploy import Controller, ControllerConfig, LinkConfig, RobotServer, UdpRobot, load_policy, wire

ROOT = Path(__file__).resolve().parent.parent


class CounterRobot:
    """Robot-side test robot: `pole/sin` carries the number of actions applied, so a reading tells
    which step it belongs to."""

    reading_names = ("pole/cos", "pole/sin")
    action_names = ("torque",)

    def __init__(self):
        self.applied: list[float] = []
        self.resets: list[int | None] = []

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def reset(self, seed=None) -> None:
        self.resets.append(seed)
        self.applied.clear()

    def read(self):
        return {"pole/cos": 1.0, "pole/sin": float(len(self.applied))}

    def send(self, action) -> None:
        self.applied.append(float(action[0]))


@contextlib.contextmanager
def serving(robot, **link):
    server = RobotServer(robot, port=0, link=LinkConfig(**link))
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(5)
        server.close()


def connect(server, **kw) -> UdpRobot:
    robot = UdpRobot(*server.address, **kw)
    robot.connect()
    return robot


# -- wire format ------------------------------------------------------------------------------------
def test_wire_round_trip_keeps_type_seq_stamp_and_payload():
    data = wire.encode(wire.STATE, 7, 123456789, np.array([1.5, -2.0], np.float32))
    msg = wire.decode(data)
    assert (msg.type, msg.seq, msg.stamp_us) == (wire.STATE, 7, 123456789)
    np.testing.assert_array_equal(msg.floats, [1.5, -2.0])
    assert len(data) == 20 + 8 + 4
    doc = wire.decode(wire.encode(wire.DESCRIBE, 1, 0, {"readings": ["a"]})).doc
    assert doc == {"readings": ["a"]}


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda b: b[:10] + bytes([b[10] ^ 1]) + b[11:], "CRC"),
        (lambda b: b"XXXX" + b[4:], "magic"),
        (lambda b: b[:4] + bytes([9]) + b[5:], "version 9"),
        (lambda b: b[:-5] + b[-4:], "length"),
    ],
)
def test_damaged_datagrams_are_refused_with_the_reason(mangle, reason):
    good = wire.encode(wire.ACTION, 3, 99, np.ones(3, np.float32))
    with pytest.raises(wire.WireError, match=reason):
        wire.decode(mangle(good))


def test_sequence_order_survives_wraparound():
    assert wire.newer(0, 0xFFFFFFFF) and wire.newer(5, 2) and wire.newer(1, None)
    assert not wire.newer(2, 5) and not wire.newer(0xFFFFFFFF, 0) and not wire.newer(4, 4)


# -- the bridge -------------------------------------------------------------------------------------
def test_connect_learns_the_robot_layout_and_first_state():
    with serving(CounterRobot()) as server:
        robot = connect(server)
        assert robot.reading_names == ("pole/cos", "pole/sin") and robot.action_names == ("torque",)
        time.sleep(0.02)
        assert robot.read() == {"pole/cos": 1.0, "pole/sin": 0.0}
        assert robot.read() is None  # nothing newer
        robot.close()


def test_reordered_and_lost_states_never_take_the_reading_backwards():
    with serving(CounterRobot(), latency_ms=1.0, jitter_ms=6.0, loss=0.2, seed=1) as server:
        robot = connect(server, timeout_s=0.05, retries=50)
        seen = []
        for _ in range(300):
            robot.send(np.zeros(1, np.float32))
            time.sleep(0.001)
            r = robot.read()
            if r is not None:
                seen.append(r["pole/sin"])
        time.sleep(0.02)
        robot.close()
    assert len(seen) > 50
    assert all(b > a for a, b in itertools.pairwise(seen))  # strictly newer every time
    assert robot.stats.stale > 0  # reordered datagrams arrived and were dropped
    assert robot.stats.lost > 0 and server.out.dropped > 0


def test_corrupt_datagrams_are_counted_and_ignored():
    with serving(CounterRobot()) as server:
        robot = connect(server)
        time.sleep(0.02)
        robot.read()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            good = wire.encode(wire.STATE, 10**6, 0, np.array([9.0, 9.0], np.float32))
            s.sendto(good[:-1] + bytes([good[-1] ^ 0xFF]), robot._sock.getsockname())
        time.sleep(0.02)
        assert robot.read() is None and robot.stats.corrupt == 1
        robot.close()


def test_reset_is_retried_through_packet_loss():
    target = CounterRobot()
    with serving(target, loss=0.5, seed=3) as server:
        robot = connect(server, timeout_s=0.03, retries=60)
        robot.reset(seed=11)
        assert target.resets == [11]
        assert robot.description["episode"] == 1
        robot.close()


def test_no_robot_is_a_clear_connection_error():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))  # a port where nobody answers
        port = s.getsockname()[1]
        with pytest.raises(ConnectionError, match="robot-sim"):
            UdpRobot("127.0.0.1", port, timeout_s=0.02, retries=2).connect()


# -- the controller over UDP ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return tiny_export(tmp_path_factory.mktemp("udp") / "run" / "export")


def test_controller_runs_through_packet_loss_and_jitter(export_dir):
    target = CounterRobot()
    with serving(target, latency_ms=0.5, jitter_ms=2.0, loss=0.1, seed=5) as server:
        robot = connect(server, timeout_s=0.05, retries=40)
        cfg = ControllerConfig(rate_hz=200.0, soft_start_s=0.0, stale_after_s=0.5)  # > CI hiccups
        stats = Controller(load_policy(export_dir), robot, cfg).run(steps=100)
        time.sleep(0.02)
        robot.close()
    assert stats.steps == 100 and not stats.faults
    assert 60 <= len(target.applied) <= 100  # ~10% of actions lost on the way in
    assert robot.stats.lost > 0


def test_robot_going_silent_trips_the_watchdog(export_dir):
    stop = threading.Event()

    class DyingRobot(CounterRobot):
        def send(self, action) -> None:
            super().send(action)
            if len(self.applied) == 40:
                stop.set()  # the robot dies after 40 actions

    server = RobotServer(DyingRobot(), port=0)
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    robot = connect(server)
    cfg = ControllerConfig(rate_hz=200.0, soft_start_s=0.0, stale_after_s=0.25, safe_action=(0.0,))
    stats = Controller(load_policy(export_dir), robot, cfg).run(steps=200)
    thread.join(5)
    server.close()
    robot.close()
    assert [f.kind for f in stats.faults] == ["stale_sensors"]
    assert 40 <= stats.faults[0].step <= 40 + 0.25 * 200 + 40  # within the timeout (+ slack for a busy box)
    assert stats.event_counts["fault_hold"] > 10


@pytest.mark.slow
def test_mujoco_robot_over_udp_runs_a_full_episode(export_dir):
    from sim2real.deploy import MujocoRobot

    sim = MujocoRobot("pendulum", {"mass_scale": 1.1, "obs_noise_scale": 0.0})
    sim.connect()
    with serving(sim) as server:
        robot = connect(server)
        cfg = ControllerConfig(rate_hz=500.0, soft_start_s=0.0, stale_after_s=0.5)
        stats = Controller(load_policy(export_dir), robot, cfg).run(steps=400, seed=2)
        robot.close()
    assert stats.stop_reason == "episode_end" and 200 <= stats.steps <= 202
    assert np.isfinite(stats.episode_return) and stats.episode_return < 0
    assert robot.extras()["dynamics"]["mass_scale"] == pytest.approx(1.1)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_cli_deploy_against_robot_sim_process_logs_training_data(export_dir):
    run_dir, port = export_dir.parent, _free_port()
    common = [f"run_dir={run_dir}", "logger=none", f"deploy.port={port}"]
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sim2real",
            "robot-sim",
            *common,
            "deploy.serve_seconds=60",
            "deploy.link.loss=0.02",
            "deploy.link.jitter_ms=1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    try:
        assert "robot-sim: pendulum on udp://127.0.0.1" in sim.stdout.readline()
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "sim2real",
                "deploy",
                *common,
                "deploy.robot=udp",
                "deploy.force=true",
                "deploy.rate_hz=400",
                "deploy.stale_after_s=0.2",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
    finally:
        sim.terminate()
        sim.wait(10)
    assert out.returncode == 0, out.stderr
    assert "deploy: episode 0:" in out.stdout and "stopped by episode_end" in out.stdout
    logs = sorted((run_dir / "deploy").glob("*.zarr"))
    store = DemoStore.open(logs[-1])
    # one episode as run: a slow machine may commit it in segments (deploy.log_commit_s), joined here
    ends, _ = store.episodes_as_run()
    assert len(ends) == 1 and 200 <= store.num_steps <= 240  # lost actions: more controller steps
    assert store.load_arrays()["student_obs"].shape[1] == 3
