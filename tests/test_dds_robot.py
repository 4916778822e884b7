"""`DdsRobot` and robot-sim over DDS, all on loopback (lo, multicast off); mappings: test_dds_mapping.py.

Fake firmware here is a real DDS participant publishing codec bytes, so CRC, ticks, timeouts and
staleness go through CycloneDDS exactly as a robot's would.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_dds_link import dds_domain
from test_deploy_policy import tiny_export

from sim2real.deploy import Controller, ControllerConfig, load_policy
from sim2real.deploy.dds import get_profile
from sim2real.deploy.dds.link import DdsLinkError, Participant
from sim2real.deploy.dds.mapping import (
    Converter,
    load_mapping,
)
from sim2real.deploy.dds.robot import DdsRobot
from sim2real.deploy.dds.server import DdsRobotServer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory) -> Path:
    return tiny_export(tmp_path_factory.mktemp("dds") / "export")


class Pendulum:
    """Robot-side fake: the hinge angle moves with the applied action; records every action."""

    reading_names = ("pole/cos", "pole/sin")
    action_names = ("torque",)

    def __init__(self, angle: float = 0.3):
        self.angle, self.applied = angle, []

    def read(self):
        return {"pole/cos": np.cos(self.angle), "pole/sin": np.sin(self.angle)}

    def send(self, action) -> None:
        self.applied.append(float(action[0]))
        self.angle += 0.01 * float(action[0])


@contextlib.contextmanager
def serving(robot, mapping, rate_hz: float = 100.0):
    server = DdsRobotServer(robot, mapping, rate_hz).open()
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        yield server, stop
    finally:
        stop.set()
        thread.join(5)
        server.close()


class Firmware:
    """Publishes hand-made states of a profile on loopback (and reads the commands sent to it)."""

    def __init__(self, mapping):
        self.profile = get_profile(mapping.profile)
        self.conv = Converter(mapping)
        state_t, cmd_t = self.profile.idl_types()
        self.part = Participant(mapping.domain)
        self.writer = self.part.writer(self.profile.state_topic, state_t)
        self.reader = self.part.reader(self.profile.command_topic, cmd_t, depth=8)
        self.codec = self.profile.codec(len(self.conv.motors), slots=self.conv.motors)

    def publish(self, tick: int, corrupt: bool = False) -> None:
        n = len(self.conv.motors)
        wire = bytearray(self.codec.encode_state(q=np.full(n, 0.5), tick=tick))
        if corrupt:
            wire[40] ^= 0xFF  # a flipped byte the CRC must catch
        self.writer.write(bytes(wire))

    @contextlib.contextmanager
    def publishing(self, tick: int, corrupt: bool = False):
        """Publish the same state every 10 ms meanwhile (discovery takes a moment: keep-last, volatile)."""
        stop = threading.Event()

        def loop():
            while not stop.is_set():
                self.publish(tick, corrupt)
                time.sleep(0.01)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def close(self) -> None:
        self.part.close()


def wait_matched(*endpoints, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while any(e.matched() == 0 for e in endpoints) and time.monotonic() < end:
        time.sleep(0.005)


# -- link health ------------------------------------------------------------------------------------
def test_no_state_at_connect_is_an_error_naming_domain_interface_topic_and_type():
    mapping = load_mapping("pendulum_unitree_go", domain=dds_domain(), connect_timeout=0.3)
    robot = DdsRobot(mapping)
    t0 = time.monotonic()
    with pytest.raises(DdsLinkError) as err:
        robot.connect()
    assert time.monotonic() - t0 < 5.0  # a 0.3 s timeout (+ a busy box), never a hang
    message = str(err.value)
    for part in (
        f"DDS domain {mapping.domain}",
        "interface lo",
        "'rt/lowstate'",
        "unitree_go::msg::dds_::LowState_",
    ):
        assert part in message


def test_bad_crc_states_are_dropped_and_counted_and_tick_gaps_are_counted(caplog):
    mapping = load_mapping("pendulum_unitree_go", domain=dds_domain(), connect_timeout=1.0)
    firmware = Firmware(mapping)
    robot = DdsRobot(mapping)
    try:
        with (
            firmware.publishing(2, corrupt=True),
            pytest.raises(DdsLinkError, match=r"heard \d+ with a bad CRC"),
        ):
            robot.connect()  # only corrupt states: they never count as the robot being there
        robot = DdsRobot(mapping)
        with firmware.publishing(4):
            robot.connect()
        wait_matched(firmware.writer)
        for tick, corrupt in ((6, False), (8, True), (10, False), (16, False), (18, False)):
            firmware.publish(tick, corrupt)
            time.sleep(0.005)
            robot.read()
        time.sleep(0.05)
        robot.read()
    finally:
        robot.close()
        firmware.close()
    s = robot.stats
    assert s.crc_errors == 1 and s.ticks_missed == 3 and s.tick_gaps == 2  # 8 (its CRC), then 12 and 14
    assert "gap in the robot's tick 10 -> 16: 2 state(s) missed" in caplog.text


def test_position_commands_carry_targets_gains_and_a_valid_crc():
    mapping = load_mapping("go2", domain=dds_domain())
    firmware = Firmware(mapping)
    robot = DdsRobot(mapping)
    try:
        with firmware.publishing(2):
            robot.connect()
        wait_matched(robot._writer, firmware.reader)
        action = np.linspace(-1, 1, 12).astype(np.float32)
        robot.send(action)
        got = firmware.reader.wait_take(2.0)
    finally:
        robot.close()
        firmware.close()
    cmd = firmware.codec.decode_command(got[-1][0])
    offsets = np.array([a.offset for a in mapping.actions.values()])
    assert cmd.crc_ok and (cmd.mode == 1).all()
    np.testing.assert_allclose(cmd.q, offsets + 0.25 * action, atol=1e-6)
    np.testing.assert_allclose(cmd.kp, 20.0)
    np.testing.assert_allclose(cmd.kd, 0.5)
    np.testing.assert_allclose(cmd.tau, 0.0)


def test_stale_state_mid_run_holds_the_safe_action_and_records_a_fault(policy_dir):
    mapping = load_mapping("pendulum_unitree_go", domain=dds_domain())
    fake, stale_after, silent_at = Pendulum(), 0.3, 0.8  # a 0.3 s timeout: CI hiccups stay under it
    stopped = {}

    def go_silent():  # the robot goes silent; its participant stays
        stopped["at"] = time.monotonic()
        stop_server.set()

    with serving(fake, mapping, rate_hz=100) as (server, stop_server):
        robot = DdsRobot(mapping)
        robot.connect()
        cfg = ControllerConfig(rate_hz=50, stale_after_s=stale_after, soft_start_s=0.0, handle_sigint=False)
        controller = Controller(load_policy(policy_dir), robot, cfg)
        reads = []  # when the controller read; its first read is the loop's start, `Fault.time`'s zero
        robot.read = lambda read=robot.read: reads.append(time.monotonic()) or read()
        threading.Timer(silent_at, go_silent).start()
        stats = controller.run(duration=silent_at + stale_after + 0.8)
        time.sleep(0.05)
        last = server._take_command()  # what the controller sent last
        robot.close()
    # from the loop's start: the set-up before it (gc.collect() in a whole suite's process) is not loop time
    silent = stopped["at"] - reads[0]
    assert [f.kind for f in stats.faults] == ["stale_sensors"], stats.faults
    assert silent <= stats.faults[0].time <= silent + stale_after + 0.5, (silent, stats.faults)
    assert stats.event_counts["stale_sensors"] >= 1
    assert last is not None and last.tau[0] == 0.0  # the safe action: zero torque
    assert any(a != 0.0 for a in fake.applied)  # the policy did drive it before


def test_controller_and_ros2_robot_sim_in_process_at_the_command_rate(policy_dir):
    """`sim2real robot-sim transport=dds` wiring (the MuJoCo pendulum) with the ROS 2 profile."""
    from sim2real.config import Config
    from sim2real.deploy.robot_sim import make_dds_server

    cfg = Config()
    cfg.transport, cfg.deploy.rate_hz = "dds", 50.0
    cfg.robot = load_mapping("pendulum_ros2", domain=dds_domain())
    server = make_dds_server(cfg)
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    robot = DdsRobot(cfg.robot)
    try:
        robot.connect()
        ccfg = ControllerConfig(rate_hz=50, stale_after_s=0.5, handle_sigint=False, stop_on_episode_end=False)
        stats = Controller(load_policy(policy_dir), robot, ccfg).run(duration=2.0)
        time.sleep(0.1)
    finally:
        stop.set()
        thread.join(5)
        robot.close()
        server.close()
        server.robot.close()
    assert stats.faults == [] and stats.steps >= 90
    assert server.stats.crc_errors == robot.stats.crc_errors == 0
    assert server.stats.bad_messages == robot.stats.bad_messages == 0
    assert server.stats.commands >= stats.steps - 2  # loopback: every command arrives
    assert robot.stats.states >= 0.9 * stats.steps


@pytest.mark.slow
def test_controller_against_robot_sim_cli_over_dds_for_seconds(policy_dir, tmp_path):
    """The whole loop on one machine: `sim2real robot-sim transport=dds` in its own process."""
    domain, seconds, rate = dds_domain(), 3.0, 50.0
    cmd = [sys.executable, "-m", "sim2real", "robot-sim", "transport=dds", "robot=pendulum_unitree_go",
           f"robot.domain={domain}", f"deploy.rate_hz={rate}", "deploy.serve_seconds=30", "logger=none",
           f"run_dir={tmp_path}"]  # fmt: skip
    sim = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "robot-sim: pendulum on dds" in sim.stdout.readline()
        robot = DdsRobot(load_mapping("pendulum_unitree_go", domain=domain, connect_timeout=10))
        robot.connect()
        ccfg = ControllerConfig(rate_hz=rate, stale_after_s=0.5, handle_sigint=False)
        try:
            stats = Controller(load_policy(policy_dir), robot, ccfg).run(duration=seconds)
        finally:
            robot.close()
        time.sleep(0.2)
    finally:
        sim.send_signal(2)  # SIGINT: robot-sim stops cleanly and prints its counts
        out = sim.communicate(timeout=20)[0]
    counts = re.search(r"(\d+) states published, (\d+) commands applied, (\d+) CRC errors", out)
    assert counts, out
    published, applied, crc_errors = map(int, counts.groups())
    assert crc_errors == 0 and robot.stats.crc_errors == 0 and stats.faults == []
    assert stats.steps >= 0.9 * seconds * rate and applied >= stats.steps - 2
    assert robot.stats.states >= 0.9 * stats.steps and published >= robot.stats.states


@contextlib.contextmanager
def connected_sim(task: str, mapping: str):
    """robot-sim serving `task` over DDS (ticked by the test) and a `DdsRobot` connected to it."""
    from sim2real.config import Config
    from sim2real.deploy.robot_sim import make_dds_server

    cfg = Config()
    cfg.task.name, cfg.transport = task, "dds"
    cfg.robot = load_mapping(mapping, domain=dds_domain())
    server = make_dds_server(cfg)
    robot = DdsRobot(cfg.robot)
    try:
        with contextlib.ExitStack() as stack:
            stack.callback(server.robot.close)
            stack.callback(server.close)
            stop = threading.Event()

            def heartbeat():  # the robot's state, unchanged while no command came
                while not stop.is_set():
                    server.tick()
                    time.sleep(0.01)

            beat = threading.Thread(target=heartbeat)
            beat.start()
            robot.connect()
            stop.set()
            beat.join()
            yield cfg, server, robot
    finally:
        robot.close()


def test_hopper_readings_arrive_over_dds_as_the_simulator_reads_them():
    """Joint positions, velocities and the IMU (quaternion, gyro) through LowState_ and the mapping."""
    with connected_sim("hopper", "hopper_unitree_go") as (cfg, server, robot):
        got, want = robot.read(), server.robot.read()
        robot.send(np.array([0.5, -0.5, 0.2], np.float32))
        time.sleep(0.1)
        robot.read()  # drain what was sent before the step
        server.tick()  # applies the command: one control step of the simulator
        assert robot.wait(2.0)
        time.sleep(0.01)
        after, want_after = robot.read(), server.robot.read()
    assert list(got) == list(cfg.robot.readings)
    np.testing.assert_allclose([got[k] for k in want], list(want.values()), atol=1e-5)
    np.testing.assert_allclose([after[k] for k in want_after], list(want_after.values()), atol=1e-5)
    assert server.stats.commands == 1 and any(abs(after[k] - got[k]) > 1e-4 for k in got)


def test_lean_deploy_cli_drives_a_dds_robot_and_reports_the_link(policy_dir, capsys):
    from sim2real.deploy.__main__ import main

    domain = dds_domain()
    fake = Pendulum()
    with serving(fake, load_mapping("pendulum_unitree_go", domain=domain), rate_hz=50):
        argv = [str(policy_dir), "--force", "--dds", "pendulum_unitree_go", "--domain", str(domain)]
        assert main([*argv, "--duration", "0.6", "--stale-after", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "faults none" in out and re.search(r"dds link: \d+ states, 0 CRC errors", out)
    assert len(fake.applied) >= 20  # ~30 commands at 50 Hz reached the robot


def test_go2_readings_and_remote_command_arrive_over_dds_and_its_motors_hold_the_targets():
    """robot-sim serving the Go2 task on rt/lowstate: joints, IMU and the task's velocity command (as
    wireless-remote sticks) reach DdsRobot with go2.yaml as the simulator reads them; a LowCmd_ of the
    standing pose runs the motors' PD in the simulator (the trunk stays up)."""
    from envs import go2

    with connected_sim("go2", "go2") as (cfg, server, robot):
        got, want = robot.read(), server.robot.read()
        for _ in range(25):  # half a second of the standing pose
            robot.send(np.zeros(12, np.float32))
            time.sleep(0.005)
            server.tick()
        assert robot.wait(2.0)
        height = float(server.robot.extras()["privileged"][go2.BASE_OBS.index("base_height")])
    assert list(got) == list(cfg.robot.readings)
    np.testing.assert_allclose([got[k] for k in want], list(want.values()), atol=1e-5)
    command = [got[f"command/{c}"] for c in ("vx", "vy", "yaw_rate")]
    assert np.abs(command).max() > 0.0  # the task's command, through the remote's sticks
    assert server.stats.commands >= 20 and server.stats.crc_errors == 0
    assert not server.robot.extras()["terminated"] and height > 0.18


GO2_RELEASES = [p for p in [ROOT / "release" / "go2"] if (p / "policy.onnx").exists()]


@pytest.mark.parametrize("folder", GO2_RELEASES, ids=lambda p: p.name)
def test_released_go2_policy_walks_the_simulated_go2_over_dds(folder, capsys):
    """Sim2sim as on the robot: the lean deploy CLI drives robot-sim's Go2 over rt/lowstate/rt/lowcmd
    with the released policy; the command comes from the simulated remote; the trunk stays up."""
    from sim2real.config import Config
    from sim2real.deploy.__main__ import main
    from sim2real.deploy.robot_sim import make_dds_server

    cfg = Config()
    cfg.task.name, cfg.transport = "go2", "dds"
    cfg.seed = 1  # the release walked 60 s over DDS on robot-sim seeds 0, 1, 2 with no fall (docs/results.md)
    domain = dds_domain()
    cfg.robot = load_mapping("go2", domain=domain)
    server = make_dds_server(cfg)
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        argv = [str(folder), "--dds", "go2", "--domain", str(domain), "--duration", "4"]
        assert main(argv) == 0
    finally:
        stop.set()
        thread.join(5)
        server.close()
        server.robot.close()
    out = capsys.readouterr().out
    assert "faults none" in out and re.search(r"dds link: \d+ states, 0 CRC errors", out)
    assert server.stats.commands >= 150 and server.stats.crc_errors == 0  # ~200 at 50 Hz
    # the task's fall rule (trunk or hip on the ground, tilt past 60°, trunk below 0.12 m) never fired; the
    # trunk's pose right after is the stop command's (damping only), not the policy's
    assert not server.robot.extras()["terminated"] and server.stats.falls == 0
