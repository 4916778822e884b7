"""The Go2 task: its model, joint order against the robot mapping, PD control, command, metrics."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs import batched, go2, parameters
from envs.observations import PREV_ACTION_PREFIX
from envs.spec import Trace
from sim2real.deploy.dds.mapping import load_mapping

NOMINAL = {**parameters.nominal("go2"), "obs_noise_scale": 0.0}


@pytest.fixture(scope="module")
def env():
    env = gym.make("sim2real/Go2-v0")
    yield env
    env.close()


def hold(env, action: np.ndarray, steps: int, seed: int = 0) -> tuple[bool, float, np.ndarray]:
    """(terminated, final trunk height, final gravity direction) after `steps` of one action."""
    env.reset(seed=seed, options={"dynamics": NOMINAL})
    base = env.unwrapped.base
    for _ in range(steps):
        obs, _, terminated, _, _ = env.step(action)
        if terminated:
            break
    return terminated, float(base.data.qpos[2]), obs["privileged"][6:9]


def test_go2_model_has_the_published_mass_links_and_torque_limits(env):
    m = env.unwrapped.model
    assert 14.0 <= float(np.sum(m.body_mass)) <= 16.0
    base = env.unwrapped.base
    for leg in go2.LEGS:
        calf = m.body(f"{leg}_calf")
        assert np.allclose(calf.pos, [0.0, 0.0, -0.213])  # thigh length
        assert np.isclose(float(m.geom(f"{leg}_foot").pos[2]), -0.213)  # calf length
    limits = {m.actuator(i).name: float(m.actuator_ctrlrange[i, 1]) for i in range(m.nu)}
    assert limits["FR_hip_joint"] == limits["RL_thigh_joint"] == 23.7
    assert limits["FL_calf_joint"] == 45.43
    assert base.dt == pytest.approx(0.02) and m.opt.timestep == pytest.approx(0.005)  # 50 Hz on 200 Hz


def test_go2_stands_under_pd_at_the_standing_pose_and_falls_without_it(env):
    terminated, height, gravity = hold(env, np.zeros(12), steps=100)  # 2 s of the standing-pose target
    assert not terminated and height > 0.18 and gravity[2] < -0.95
    # targets 1 rad below the standing calves fold the legs: the trunk comes down (a fall, or lower)
    terminated, low, _ = hold(env, np.tile([0.0, 0.0, -4.0], 4), steps=100)
    assert terminated or low < height - 0.05


def test_a_go2_fall_names_the_condition_that_ended_it(env):
    env.reset(seed=0, options={"dynamics": NOMINAL})
    base = env.unwrapped.base
    _, _, terminated, _, info = env.step(np.zeros(12))
    assert not terminated and "falls" not in info  # standing: nothing to name
    qpos, qvel = base.data.qpos.copy(), base.data.qvel.copy()
    qpos[3:7] = [0.0, 1.0, 0.0, 0.0]  # rolled over, feet up, 1 m above the floor
    qpos[2] = 1.0
    base.set_state(qpos, qvel)
    _, _, terminated, _, info = env.step(np.zeros(12))
    assert terminated and info["falls"] == ["tilt"]


def test_go2_joint_order_and_standing_pose_equal_the_robot_mapping(env):
    mapping = load_mapping("go2")
    task = env.unwrapped
    assert task.action_names == tuple(mapping.actions) == go2.JOINTS
    for i, (name, action) in enumerate(mapping.actions.items()):
        assert action.motor == i
        assert action.offset == pytest.approx(go2.STANDING[name])
        assert (action.kp, action.kd, action.scale) == (go2.KP, go2.KD, go2.ACTION_SCALE)
        assert mapping.readings[f"joint_pos/{name}"].offset == pytest.approx(-go2.STANDING[name])


def test_go2_student_names_are_the_mappings_readings_plus_command_and_previous_action(env):
    mapping = load_mapping("go2")
    names = env.unwrapped.student_names
    read = [n for n in names if not n.startswith(PREV_ACTION_PREFIX)]
    assert read == list(mapping.readings)  # what DdsRobot with go2.yaml produces, in its order
    assert [n for n in names if n.startswith("command/")] == list(go2.COMMAND_NAMES)
    assert mapping.task == "go2"


def test_go2_joint_readings_are_relative_to_the_standing_pose_and_the_command_is_read_exactly(env):
    obs, _ = env.reset(seed=3, options={"dynamics": NOMINAL})
    task = env.unwrapped
    names = task.student_names
    student = dict(zip(names, obs["student"], strict=True))
    q = task.data.qpos[task.base.rules.qadr]
    for j, joint in enumerate(go2.JOINTS):
        assert student[f"joint_pos/{joint}"] == pytest.approx(q[j] - go2.STANDING[joint], abs=1e-6)
    command = task.base.command.copy()
    assert [student[n] for n in go2.COMMAND_NAMES] == pytest.approx(command, abs=1e-6)
    assert np.all(command >= go2.COMMAND_LOW) and np.all(command <= go2.COMMAND_HIGH)


def test_go2_command_is_resampled_during_the_episode_and_fixed_by_the_seed(env):
    def commands(seed: int) -> list[np.ndarray]:
        env.reset(seed=seed, options={"dynamics": NOMINAL})
        seen = []
        for t in range(go2.COMMAND_PERIOD + 1):
            obs, *_ = env.step(np.zeros(12))
            if t in (0, go2.COMMAND_PERIOD):
                seen.append(obs["privileged"][go2.COMMAND : go2.COMMAND + 3].copy())
        return seen

    first, later = commands(7)
    assert not np.allclose(first, later)
    assert all(np.array_equal(a, b) for a, b in zip(commands(7), [first, later], strict=True))


def test_go2_tracking_metrics_measure_the_commanded_minus_actual_velocity():
    p = np.zeros((4, len(go2.BASE_OBS)))
    p[:, go2.COMMAND : go2.COMMAND + 3] = [1.0, 0.0, 0.5]  # commanded vx 1 m/s, yaw 0.5 rad/s
    p[:, go2.LIN_VEL] = 0.7  # moving at 0.7 m/s
    p[:, go2.ANG_VEL + 2] = 0.5
    metrics = envs.TASKS["go2"].metrics(Trace(p, np.zeros(4), False))
    assert metrics["lin_vel_rmse"] == pytest.approx(0.3)
    assert metrics["yaw_rate_rmse"] == pytest.approx(0.0)
    names = go2.BASE_OBS
    assert names[go2.LIN_VEL] == "base_lin_vel/x" and names[go2.ANG_VEL + 2] == "base_ang_vel/z"
    assert names[go2.COMMAND] == "command/vx"
    assert np.isnan(metrics["walked"])  # 4 steps at 1 m/s: under the metre it takes to judge walking


def test_go2_walked_share_tells_a_slow_gait_from_standing_still():
    p = np.zeros((200, len(go2.BASE_OBS)))  # 4 s at 50 Hz
    p[:, go2.COMMAND : go2.COMMAND + 2] = [0.6, -0.8]  # 1 m/s diagonally, 4 m commanded
    p[:, go2.LIN_VEL : go2.LIN_VEL + 2] = [0.3, -0.4]  # half the commanded speed, on course
    walked = lambda: envs.TASKS["go2"].metrics(Trace(p, np.zeros(200), False))["walked"]  # noqa: E731
    assert walked() == pytest.approx(0.5)
    p[:, go2.LIN_VEL : go2.LIN_VEL + 2] = [0.8, 0.6]  # as fast, at right angles to the command
    assert walked() == pytest.approx(0.0)


def test_batched_go2_redraws_commands_and_pushes_as_the_single_env_does():
    n = 2
    batch = batched.make("go2", n, nthread=1)
    singles = [gym.make("sim2real/Go2-v0") for _ in range(n)]
    pushed = {**NOMINAL, "push_accel": 2.0, "kp_scale": 0.9, "kd_scale": 1.1}  # 3 pushes before the redraw
    batch.reset(range(n), seeds=[3, 4], overrides=pushed)
    for i, single in enumerate(singles):
        single.reset(seed=3 + i, options={"dynamics": pushed})
    before = batch.observe()[:, go2.COMMAND : go2.COMMAND + 3].copy()
    for _ in range(go2.COMMAND_PERIOD):  # standing-pose targets: nobody falls before the redraw
        obs, _, terminated, _ = batch.step(np.zeros((n, 12)))
        single_obs = [s.step(np.zeros(12))[0]["privileged"] for s in singles]
    np.testing.assert_array_equal(obs, np.stack(single_obs))
    assert not terminated.any()
    assert not np.allclose(obs[:, go2.COMMAND : go2.COMMAND + 3], before)


def test_a_motor_command_with_the_mappings_gains_moves_the_go2_as_its_action_does():
    """robot-sim applies a LowCmd_'s targets and gains in the simulator: the mapping's command for an
    action (q = offset + 0.25 a, kp 20, kd 0.5) gives the action's own step, bit for bit."""
    mapping = load_mapping("go2")
    offsets = np.array([a.offset for a in mapping.actions.values()])
    first, second = gym.make("sim2real/Go2-v0"), gym.make("sim2real/Go2-v0")
    first.reset(seed=9)
    second.reset(seed=9)
    rng = np.random.default_rng(1)
    for _ in range(20):
        action = rng.uniform(-2, 2, 12)
        by_action = first.step(action)[0]["privileged"]
        second.unwrapped.base.hold_motor_command(offsets + 0.25 * action, 0.0, 20.0, 0.5, 0.0)
        by_command = second.step(np.zeros(12))[0]["privileged"]
        np.testing.assert_array_equal(by_command[: len(go2.BASE_OBS)], by_action[: len(go2.BASE_OBS)])
    # the stop command (kp 0, kd 8: damping only) lets the legs fold: the trunk sinks
    for _ in range(50):
        second.unwrapped.base.hold_motor_command(np.zeros(12), 0.0, 0.0, 8.0, 0.0)
        obs, _, terminated, _, _ = second.step(np.zeros(12))
    assert terminated or obs["privileged"][go2.BASE_OBS.index("base_height")] < 0.15


def test_distill_rollouts_execute_go2_actions_past_one_up_to_its_bounds():
    """DAgger and evaluation rollouts clip to the task's action bounds ([-4, 4] here), not to [-1, 1]."""
    from sim2real.student.rollout import make_envs, rollout

    class Offset:  # an expert that always commands 3 (0.75 rad) and once 9 (past the bound)
        def act(self, privileged_obs: np.ndarray) -> np.ndarray:
            out = np.full((len(privileged_obs), 12), 3.0, np.float32)
            out[:, 0] = 9.0
            return out

    (episode,) = rollout(make_envs("go2", None, 1), [0], expert=Offset(), beta=1.0)
    assert np.all(episode.action[:, 1:] == 3.0) and np.all(episode.action[:, 0] == go2.ACTION_LIMIT)
    assert np.all(episode.expert_action[:, 0] == 9.0)  # the label stays what the expert said


def test_go2_payload_and_com_offset_load_the_trunk_after_mass_scale(env):
    task = env.unwrapped
    m = task.model
    trunk = m.body("trunk").id
    nominal_mass, nominal_com = m.body_mass.copy(), m.body_ipos[trunk].copy()
    for _ in range(2):  # twice: written from nominal, never compounded
        env.reset(seed=0, options={"dynamics": {"mass_scale": 1.1, "payload_kg": 2.0, "com_offset_x": 0.02}})
    assert m.body_mass[trunk] == pytest.approx(1.1 * nominal_mass[trunk] + 2.0)
    np.testing.assert_allclose(np.delete(m.body_mass, trunk), 1.1 * np.delete(nominal_mass, trunk))
    np.testing.assert_allclose(m.body_ipos[trunk], nominal_com + np.array([0.02, 0.0, 0.0]))
    _, info = env.reset(seed=0, options={"dynamics": NOMINAL})
    np.testing.assert_allclose(m.body_mass, nominal_mass)
    assert set(info["dynamics"]) >= {"payload_kg", "com_offset_x", "kp_scale", "kd_scale", "push_accel"}


def test_go2_motor_gains_scale_the_torque_the_commanded_kp_and_kd_give(env):
    def first_torque(kp_scale: float, kd_scale: float) -> np.ndarray:
        env.reset(seed=2, options={"dynamics": {**NOMINAL, "kp_scale": kp_scale, "kd_scale": kd_scale}})
        env.step(np.full(12, 0.5))  # targets away from the pose: the PD pushes
        return env.unwrapped.data.ctrl.copy()

    weak, nominal = first_torque(0.5, 1.0), first_torque(1.0, 1.0)
    assert np.abs(weak).sum() < 0.8 * np.abs(nominal).sum()
    assert not np.allclose(first_torque(1.0, 3.0), nominal)


def test_go2_pushes_the_trunk_every_three_seconds_and_the_teacher_sees_it(env):
    """A push of push_accel m/s² (random direction) lasts 0.2 s every 3 s; the privileged observation
    carries it (trunk frame) while it acts; with push_accel 0 nothing moves the trunk."""
    push = slice(go2.BASE_OBS.index("push/x"), go2.BASE_OBS.index("push/y") + 1)

    def run(accel: float) -> tuple[np.ndarray, np.ndarray]:
        env.reset(seed=5, options={"dynamics": {**NOMINAL, "push_accel": accel}})
        seen, vel = [], []
        for _ in range(go2.PUSH_PERIOD + go2.PUSH_STEPS + 5):
            obs, _, terminated, _, _ = env.step(np.zeros(12))
            assert not terminated
            seen.append(obs["privileged"][push].copy())
            vel.append(obs["privileged"][go2.LIN_VEL : go2.LIN_VEL + 2].copy())
        return np.array(seen), np.array(vel)

    seen, vel = run(3.0)
    active = np.flatnonzero(np.linalg.norm(seen, axis=1) > 0)
    first = go2.PUSH_PERIOD - 1  # the push drawn after step 150 shows from that step's observation
    np.testing.assert_array_equal(active, np.arange(first, first + go2.PUSH_STEPS))
    assert np.linalg.norm(seen[first]) == pytest.approx(3.0, rel=1e-3)  # nearly level: nearly all of it
    kick = vel[first + go2.PUSH_STEPS] - vel[first]  # along the push (the feet's friction holds back some)
    assert float(kick @ seen[first]) / 3.0 > 0.1
    quiet, quiet_vel = run(0.0)
    assert not quiet.any() and np.abs(quiet_vel[first + go2.PUSH_STEPS]).max() < 0.3


def test_robot_sim_names_what_ended_a_fallen_episode_and_the_physics_it_was_drawn():
    from sim2real.deploy.dds.server import fall_text
    from sim2real.sim_robot import MujocoRobot

    robot = MujocoRobot("go2", {"friction_scale": 0.5})
    robot.connect()
    zero = np.zeros(12)
    steps = 0
    while not robot.extras()["done"] and steps < 500:  # motors limp: the trunk sinks to the ground
        robot.send_motor_command(zero, zero, zero, zero, zero)
        steps += 1
    extras = robot.extras()
    assert extras["terminated"] and extras["falls"]
    text = fall_text(extras, steps)
    assert text.startswith(f" (fell: {extras['falls'][0]}") and f"after {steps} steps" in text
    assert "friction_scale 0.5" in text
    robot.close()
