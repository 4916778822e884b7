"""Robot mappings (`conf/robot/*.yaml`): loading, refusal of what does not fit the policy or the
profile, and the inverse map robot-sim publishes through."""

from __future__ import annotations

import numpy as np
import pytest
from test_deploy_policy import tiny_export

from sim2real.deploy import load_policy
from sim2real.deploy.dds.mapping import (
    CONF_DIR,
    Converter,
    MappingError,
    ReadingMap,
    check,
    check_policy,
    joint_state_from_readings,
    load_mapping,
)
from sim2real.deploy.dds.robot import DdsRobot

ROOT = CONF_DIR.parent.parent


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
    return tiny_export(tmp_path_factory.mktemp("mapping") / "export")


@pytest.mark.parametrize("path", sorted(CONF_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_mappings_load_and_fit_their_profiles(path):
    mapping = load_mapping(path.stem)
    robot = DdsRobot(mapping)  # builds the codec and checks the mapping against the profile
    assert mapping.name == path.stem and robot.reading_names == tuple(mapping.readings)


def test_hydra_robot_group_gives_the_yaml_loaders_mapping():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from sim2real.config import register

    register()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = OmegaConf.to_object(compose("config", overrides=["robot=go2", "robot.interface=eth0"]))
    assert cfg.robot == load_mapping("go2", interface="eth0")
    assert cfg.robot.actions["FR_thigh_joint"].kp == 20.0 and cfg.robot.domain == 0


def test_unknown_keys_and_bad_values_are_refused_naming_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile: unitree_go\nreadings:\n  pole/cos: {field: q, motr: 0}\nactions: {}\n")
    with pytest.raises(MappingError, match=r"bad.yaml: unknown key readings.pole/cos.motr"):
        load_mapping(str(bad))
    bad.write_text("profile: unitree_go\nreadings:\n  a: {field: q, motor: 0, transform: tan}\n")
    bad.write_text(bad.read_text() + "actions:\n  torque: {motor: 0}\n")
    with pytest.raises(MappingError, match=r"readings.a: transform 'tan'"):
        load_mapping(str(bad))
    with pytest.raises(MappingError, match="no robot mapping 'nosuch'"):
        load_mapping("nosuch")


def test_mapping_that_does_not_fit_the_policy_is_refused_naming_the_first_mismatch(policy_dir, tmp_path):
    spec = load_policy(policy_dir).spec  # pendulum: pole/cos, pole/sin, prev_action/torque -> torque
    check_policy(load_mapping("pendulum_unitree_go"), spec)
    cases = {
        "readings:\n  pole/cos: {field: q, motor: 0, transform: cos}\nactions:\n  torque: {motor: 0}\n": (
            r"has no reading 'pole/sin' \(the policy's obs_names\[1\]\)"
        ),
        "readings:\n  pole/cos: {field: q, motor: 0}\n  pole/sin: {field: q, motor: 0}\n"
        "actions:\n  tau: {motor: 0}\n": r"action 0 is 'tau', the policy's action_names\[0\] is 'torque'",
        "task: hopper\nreadings:\n  x: {field: q, motor: 0}\nactions:\n  torque: {motor: 0}\n": (
            "is for task 'hopper'; the policy is for 'pendulum'"
        ),
    }
    for i, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"m{i}.yaml"
        path.write_text(text)
        with pytest.raises(MappingError, match=message):
            check_policy(load_mapping(str(path)), spec)
    also = tmp_path / "also.yaml"  # a robot whose mapping names more tasks takes their policies too
    also.write_text(
        "task: hopper\ntasks: [pendulum]\nreadings:\n"
        + "".join(f"  {n}: {{field: q, motor: 0}}\n" for n in ("pole/cos", "pole/sin"))
        + "actions:\n  torque: {motor: 0}\n"
    )
    check_policy(load_mapping(str(also)), spec)
    # the lean CLI refuses it before touching the network
    from sim2real.deploy.__main__ import main

    assert main([str(policy_dir), "--force", "--dds", str(tmp_path / "m0.yaml")]) == 2


def test_what_a_profile_cannot_carry_is_refused(tmp_path):
    cases = {
        "profile: unitree_go\nreadings:\n  a: {field: q, motor: 20}\nactions:\n  t: {motor: 0}\n": (
            "uses motor 20; profile unitree_go has 20"
        ),
        "profile: ros2\nreadings:\n  a: {field: gyro, index: 0}\nactions:\n  t: {motor: 0}\n": (
            "reads the IMU; profile ros2 has none"
        ),
        "profile: ros2\nreadings:\n  a: {field: q, motor: 0}\nactions:\n  t: {motor: 0}\n"
        "  u: {motor: 1, mode: position}\n": "actions must share one mode",
        "profile: unitree_hg\nreadings:\n  a: {field: q, motor: 0}\nactions:\n"
        "  t: {motor: 0, mode: position}\n": "position mode needs kp > 0",
    }
    for i, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"p{i}.yaml"
        path.write_text(text)
        with pytest.raises(MappingError, match=message):
            DdsRobot(load_mapping(str(path)))


def test_readings_survive_the_inverse_map_the_simulator_publishes():
    rng = np.random.default_rng(0)
    for name in ("hopper_unitree_go", "pendulum_unitree_go", "go2"):
        conv = Converter(load_mapping(name))
        angle = rng.uniform(-3, 3)
        readings = {k: float(v) for k, v in zip(conv.reading_names, rng.uniform(-1, 1, 99), strict=False)}
        if name == "pendulum_unitree_go":
            readings = {"pole/cos": np.cos(angle), "pole/sin": np.sin(angle)}
        fields = joint_state_from_readings(conv, readings)
        state = type("State", (), {k: v.astype(np.float32) for k, v in fields.items()})
        got = conv.readings(state)
        np.testing.assert_allclose([got[k] for k in readings], list(readings.values()), atol=1e-6)


def test_remote_sticks_and_fixed_commands_are_readings_like_any_other():
    from sim2real.deploy.dds import remote
    from sim2real.deploy.dds.profiles import get_profile

    conv = Converter(load_mapping("go2"))
    codec = get_profile("unitree_go").codec(len(conv.motors), slots=conv.motors)
    sticks = np.array([0.25, -0.5, 0.1, 0.75])  # lx, rx, ry, ly
    state = codec.decode_state(codec.encode_state(wireless_remote=remote.encode(sticks)))
    np.testing.assert_allclose(state.remote, sticks, atol=1e-7)
    got = conv.readings(state)
    # Unitree's deploy reading of the sticks: vx = ly, vy = -lx, yaw rate = -rx (scaled by the mapping)
    assert got["command/vx"] == pytest.approx(0.75) and got["command/vy"] == pytest.approx(-0.125)
    assert got["command/yaw_rate"] == pytest.approx(0.5)
    fixed = load_mapping("go2")
    fixed.readings["command/vx"] = ReadingMap(field="const", offset=0.4)
    assert Converter(check(fixed)).readings(state)["command/vx"] == pytest.approx(0.4)
    fixed.readings["command/vx"] = ReadingMap(field="remote", index=4)
    with pytest.raises(MappingError, match=r"readings.command/vx: field remote needs `index` in \[0, 4\)"):
        check(fixed)
