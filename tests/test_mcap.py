"""`sim2real data to-mcap`: stores and deployment logs become ROS 2 MCAP files that the `mcap` reader
and mcap-ros2-support's decoder read back with the values, names and timestamps of the store."""

from __future__ import annotations

import io
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from mcap_ros2.writer import Writer as Ros2Writer
from test_data_store import SPEC as PENDULUM

from sim2real.cli import main as cli_main
from sim2real.data import ros2_msgs
from sim2real.data.mcap_export import joint_layout, to_mcap
from sim2real.data.schema import Episode, StoreSpec
from sim2real.data.store import DemoStore
from sim2real.deploy import DeployLog, safety

HOPPER_LIKE = StoreSpec(
    task="hopper",
    student_names=("joint_pos/hip", "joint_pos/knee", "joint_vel/hip", "joint_vel/knee", "imu/gyro_x"),
    privileged_dim=0,
    action_names=("hip", "knee", "gripper"),  # gripper: an actuator with no joint reading
    action_low=(-1.0,) * 3,
    action_high=(1.0,) * 3,
    control_dt=0.02,
)


def _pendulum_episode(angles: np.ndarray, seed: int, labelled: bool = True) -> Episode:
    t = len(angles)
    action = np.linspace(-0.9, 0.9, t, dtype=np.float32)[:, None]
    obs = np.stack([np.cos(angles), np.sin(angles), np.r_[0.0, action[:-1, 0]]], axis=1).astype(np.float32)
    expert = action.copy() if labelled else np.full_like(action, np.nan)
    priv = np.zeros((t, 7), np.float32)
    return Episode(obs, priv, action, expert, np.full(t, -1.0, np.float32), seed=seed, dynamics=np.ones(6))


@pytest.fixture(scope="module")
def pendulum_store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mcap") / "demos.zarr"
    with DemoStore.create(path, PENDULUM) as store:
        eps = [_pendulum_episode(np.linspace(-3, 3, 5), 7), _pendulum_episode(np.linspace(0, 1, 7), 8, False)]
        store.append_episodes(eps, {"kind": "expert", "expert": "scripted"})
    return path


def read(path: Path) -> tuple[dict[str, list], dict[str, str], dict[str, str]]:
    """topic -> [(log_time, message)], topic -> schema name, the sim2real metadata record."""
    msgs, types = defaultdict(list), {}
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for schema, channel, message, decoded in reader.iter_decoded_messages():
            msgs[channel.topic].append((message.log_time, decoded))
            types[channel.topic] = schema.name
        f.seek(0)
        meta = {m.name: m.metadata for m in make_reader(f).iter_metadata()}
    return msgs, types, meta["sim2real"]


def test_pendulum_store_decodes_as_joint_states_with_angle_and_command(pendulum_store, tmp_path):
    summary = to_mcap(pendulum_store, tmp_path / "out.mcap", progress=False)
    msgs, types, meta = read(tmp_path / "out.mcap")
    assert types["/joint_states"] == "sensor_msgs/msg/JointState" and summary["steps"] == 12
    js = [m for _, m in msgs["/joint_states"]]
    assert len(js) == 12 and all(m.name == ["pole"] and m.velocity == [] for m in js)
    angles = np.r_[np.linspace(-3, 3, 5), np.linspace(0, 1, 7)]
    np.testing.assert_allclose([m.position[0] for m in js], angles, atol=1e-6)
    actions = np.r_[np.linspace(-0.9, 0.9, 5), np.linspace(-0.9, 0.9, 7)]
    np.testing.assert_allclose([m.effort[0] for m in js], actions, atol=1e-6)
    obs = msgs["/sim2real/observation"][0][1]
    assert obs.layout.dim[0].label == "pole/cos,pole/sin,prev_action/torque" and len(obs.data) == 3
    assert len(msgs["/sim2real/expert_action"]) == 5  # the second episode has no labels
    assert meta["task"] == "pendulum" and json.loads(meta["joint_names"]) == ["pole"]


def test_timestamps_are_control_steps_with_episodes_back_to_back(pendulum_store, tmp_path):
    to_mcap(pendulum_store, tmp_path / "out.mcap", progress=False)
    msgs, _, _ = read(tmp_path / "out.mcap")
    times = np.array([t for t, _ in msgs["/joint_states"]], np.int64)
    np.testing.assert_array_equal(np.diff(times), 50_000_000)  # 0.05 s per step, also across the boundary
    stamp = msgs["/joint_states"][6][1].header.stamp
    assert stamp.sec * 1_000_000_000 + stamp.nanosec == times[6]
    markers = msgs["/sim2real/episode"]
    assert [t for t, _ in markers] == [times[0], times[5]]
    second = json.loads(markers[1][1].data)
    assert second["episode"] == 1 and second["seed"] == 8 and second["length"] == 7


def test_episode_selection_and_cli(pendulum_store, tmp_path, capsys):
    out = tmp_path / "one.mcap"
    assert cli_main(["data", "to-mcap", str(pendulum_store), str(out), "--episodes", "1", "--quiet"]) == 0
    assert "1 episodes, 7 steps" in capsys.readouterr().out
    msgs, _, _ = read(out)
    assert json.loads(msgs["/sim2real/episode"][0][1].data)["episode"] == 1
    assert len(msgs["/joint_states"]) == 7 and "/sim2real/expert_action" not in msgs


def test_bad_paths_are_one_line_errors_naming_them(pendulum_store, tmp_path, capsys):
    assert cli_main(["data", "to-mcap", str(tmp_path / "missing.zarr"), str(tmp_path / "o.mcap")]) == 2
    assert "missing.zarr" in capsys.readouterr().err
    assert cli_main(["data", "to-mcap", str(pendulum_store), str(tmp_path / "no" / "o.mcap")]) == 2
    assert str(tmp_path / "no") in capsys.readouterr().err
    assert (
        cli_main(["data", "to-mcap", str(pendulum_store), str(tmp_path / "o.mcap"), "--episodes", "5"]) == 2
    )
    assert "episode 5 out of range 0..1" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.mcap*"))  # nothing half-written


def test_joint_layout_of_a_legged_robot_keeps_positions_velocities_and_commands():
    layout = joint_layout(HOPPER_LIKE.student_names, HOPPER_LIKE.action_names)
    assert layout.names == ("hip", "knee", "gripper")
    obs = np.array([[0.1, 0.2, 1.0, 2.0, 9.0]], np.float32)
    arrays = layout.arrays(obs, np.array([[0.5, -0.5, 0.3]], np.float32))
    np.testing.assert_allclose(arrays["position"][0], [0.1, 0.2, np.nan], atol=1e-7)
    np.testing.assert_allclose(arrays["velocity"][0], [1.0, 2.0, np.nan])
    np.testing.assert_allclose(arrays["effort"][0], [0.5, -0.5, 0.3], atol=1e-7)


def test_legged_store_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    t = 9
    f = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    ep = Episode(f(t, 5), np.zeros((t, 0), np.float32), f(t, 3), f(t, 3), f(t), seed=1)
    with DemoStore.create(tmp_path / "h.zarr", HOPPER_LIKE) as store:
        store.append_episode(ep, {"kind": "expert"})
    to_mcap(tmp_path / "h.zarr", tmp_path / "h.mcap", progress=False)
    msgs, _, _ = read(tmp_path / "h.mcap")
    last = msgs["/joint_states"][-1][1]
    np.testing.assert_allclose(last.position[:2], ep.student_obs[-1, :2], atol=1e-6)
    np.testing.assert_allclose(last.velocity[:2], ep.student_obs[-1, 2:4], atol=1e-6)
    np.testing.assert_allclose(last.effort, ep.action[-1], atol=1e-6)
    assert "/sim2real/privileged_observation" not in msgs


def test_deployment_log_uses_its_clock_events_and_raw_policy_output(tmp_path):
    path = tmp_path / "log.zarr"
    log = DeployLog(path, {"task": "pendulum", "control_dt": 0.05}, PENDULUM.student_names, ("torque",))
    times = [0.0, 0.051, 0.1, 0.2]  # a late step and a skipped deadline
    for k, t in enumerate(times):
        raw = None if k == 0 else np.array([0.1 * k], np.float32)  # waiting for sensors on step 0
        events = safety.WAITING if k == 0 else (safety.CLIPPED if k == 3 else 0)
        obs = np.array([1.0, 0.0, 0.0], np.float32)
        log.append(student_obs=obs, action=np.zeros(1), policy_action=raw, time=t, events=events)
    log.end_episode(seed=3)
    log.close()
    to_mcap(path, tmp_path / "log.mcap", progress=False)
    msgs, _, meta = read(tmp_path / "log.mcap")
    stamps = np.array([t for t, _ in msgs["/joint_states"]])
    np.testing.assert_allclose((stamps - stamps[0]) / 1e9, times, atol=1e-9)
    assert meta["time_source"] == "data/time"
    assert [m.data for _, m in msgs["/sim2real/events"]] == ["waiting_for_sensors", "clipped"]
    assert [round(m.data[0], 3) for _, m in msgs["/sim2real/policy_action"]] == [0.1, 0.2, 0.3]
    assert "/sim2real/reward" not in msgs  # a log of a robot without rewards


@pytest.mark.parametrize(
    "names, n_pos, n_vel, n_eff", [(["pole"], 1, 0, 1), (["a", "bb", "ccc"], 3, 3, 3), (["x", "y"], 0, 0, 2)]
)
def test_fixed_layout_encoder_matches_the_ros2_library_byte_for_byte(names, n_pos, n_vel, n_eff):
    rng = np.random.default_rng(1)
    pos, vel, eff = rng.normal(size=(3, n_pos)), rng.normal(size=(3, n_vel)), rng.normal(size=(3, n_eff))
    sec, nsec = np.array([1, 2, 3]), np.array([5, 999_999_999, 0])
    cols = {k: v for k, v in (("position", pos), ("velocity", vel), ("effort", eff)) if v.shape[1]}
    fast = ros2_msgs.joint_state(names, n_pos, n_vel, n_eff).encode(3, sec=sec, nanosec=nsec, **cols)
    label = ",".join(names)
    arr = rng.normal(size=(3, len(names))).astype(np.float32)
    fast_arr = ros2_msgs.float32_multi_array(label, len(names)).encode(3, data=arr)
    buf = io.BytesIO()
    with Ros2Writer(buf) as w:  # the reference encoder: mcap-ros2-support's, from the same .msg text
        js = w.register_msgdef(
            "sensor_msgs/msg/JointState", ros2_msgs.DEFINITIONS["sensor_msgs/msg/JointState"]
        )
        fa_def = ros2_msgs.DEFINITIONS["std_msgs/msg/Float32MultiArray"]
        fa = w.register_msgdef("std_msgs/msg/Float32MultiArray", fa_def)
        for i in range(3):
            header = {"stamp": {"sec": int(sec[i]), "nanosec": int(nsec[i])}, "frame_id": ""}
            js_msg = {
                "header": header,
                "name": names,
                "position": pos[i].tolist(),
                "velocity": vel[i].tolist(),
            }
            w.write_message("/js", js, {**js_msg, "effort": eff[i].tolist()}, log_time=i)
            layout = {"dim": [{"label": label, "size": len(names), "stride": len(names)}], "data_offset": 0}
            w.write_message("/fa", fa, {"layout": layout, "data": arr[i].tolist()}, log_time=i)
    buf.seek(0)
    ref = defaultdict(list)
    for _, channel, message in make_reader(buf).iter_messages(log_time_order=False):
        ref[channel.topic].append(message.data)
    assert ref["/js"] == fast and ref["/fa"] == fast_arr
