"""The five tasks: observation layout, determinism, Gymnasium -v5 parity, finiteness, robot-side builder."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs import parameters
from envs.observations import PREV_ACTION_PREFIX, student_vector
from envs.spec import Trace

NOMINAL, PHYSICAL = parameters.nominal(), parameters.physical()

TASKS = list(envs.TASKS)
LEGGED = {"hopper": "Hopper-v5", "walker2d": "Walker2d-v5", "halfcheetah": "HalfCheetah-v5", "ant": "Ant-v5"}
CLEAN = {"latency_steps": 0, "obs_noise_scale": 0.0}  # sensors without noise or delay


@pytest.fixture(scope="module")
def made():
    """One env per task, shared by this module's tests (each test resets with its own seed)."""
    made = {task: gym.make(envs.env_id(task)) for task in TASKS}
    yield made
    for env in made.values():
        env.close()


def random_actions(env: gym.Env, n: int, seed: int = 0) -> np.ndarray:
    """(n, Da) f32 uniform over the action space."""
    space = env.action_space
    return np.random.default_rng(seed).uniform(space.low, space.high, (n, *space.shape)).astype(np.float32)


def rollout(env: gym.Env, seed: int, actions: np.ndarray, options: dict | None = None) -> list[dict]:
    """Observations from reset and each step, until the episode ends or the actions run out."""
    obs, _ = env.reset(seed=seed, options=options)
    seen = [obs]
    for action in actions:
        obs, _, terminated, truncated, _ = env.step(action)
        seen.append(obs)
        if terminated or truncated:
            break
    return seen


@pytest.mark.parametrize("task", TASKS)
def test_observations_are_float32_dicts_inside_the_declared_spaces(made, task):
    env = made[task]
    task_env = env.unwrapped
    for obs in rollout(env, 0, random_actions(env, 5)):
        assert set(obs) == {"student", "privileged"}
        assert obs["student"].shape == (len(task_env.student_names),)
        assert obs["privileged"].shape == (task_env.privileged_dim,)
        assert env.observation_space.contains(obs)
    action_names = tuple(PREV_ACTION_PREFIX + a for a in task_env.action_names)
    assert task_env.student_names[-len(action_names) :] == action_names
    assert env.action_space.shape == (len(task_env.action_names),)


def test_pendulum_student_sees_only_the_angle_and_its_last_action(made):
    task_env = made["pendulum"].unwrapped
    assert task_env.student_names == ("pole/cos", "pole/sin", "prev_action/torque")
    assert task_env.privileged_dim == 3 + len(PHYSICAL)


@pytest.mark.parametrize("task", list(LEGGED))
def test_legged_student_sees_only_onboard_sensors(made, task):
    """Encoders, IMU and the last action: no root position or linear velocity, no contact forces."""
    names = made[task].unwrapped.student_names
    kinds = {name.split("/")[0] for name in names}
    assert kinds == {"joint_pos", "joint_vel", "imu", "prev_action"}
    assert not any("root" in name for name in names)


@pytest.mark.parametrize("task", TASKS)
def test_executed_action_is_clipped_into_the_student_prev_action(made, task):
    env = made[task]
    env.reset(seed=0)
    low, high = env.action_space.low, env.action_space.high
    action = (3.0 * high).astype(np.float32)  # past both bounds
    action[0] = 3.0 * low[0]
    obs, *_ = env.step(action)
    expected = np.clip(action, low, high)
    assert not np.array_equal(expected, action)
    assert np.array_equal(obs["student"][-len(action) :], expected)


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_and_actions_give_bit_identical_observations(task):
    """Two separately made envs, randomized sensors on: the seed alone fixes dynamics, noise, resets."""
    first, second = gym.make(envs.env_id(task)), gym.make(envs.env_id(task))
    actions = random_actions(first, 40)
    a, b = rollout(first, 11, actions), rollout(second, 11, actions)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x["student"], y["student"]) and np.array_equal(x["privileged"], y["privileged"])
    other = rollout(first, 12, actions)
    assert not np.array_equal(a[1]["student"], other[1]["student"])


@pytest.mark.parametrize("task", TASKS)
def test_randomized_rollouts_stay_finite(made, task):
    env = made[task]
    for episode in range(3):
        obs, _ = env.reset(seed=100 + episode)
        for action in random_actions(env, 100, seed=episode):
            obs, reward, terminated, truncated, _ = env.step(action)
            assert np.isfinite(obs["student"]).all() and np.isfinite(obs["privileged"]).all()
            assert np.isfinite(reward)
            if terminated or truncated:
                break


@pytest.mark.parametrize("task", list(LEGGED))
def test_privileged_begins_with_the_gymnasium_v5_observation(made, task):
    """Under nominal dynamics our task and Gymnasium's -v5 env, from one state, agree step by step."""
    env, ref = made[task], gym.make(LEGGED[task])
    obs, _ = env.reset(seed=5, options={"dynamics": NOMINAL})
    ref.reset(seed=0)
    ref.unwrapped.set_state(env.unwrapped.data.qpos.copy(), env.unwrapped.data.qvel.copy())
    ref_obs = ref.unwrapped._get_obs()
    n = ref_obs.shape[0]
    assert env.unwrapped.privileged_dim == n + len(PHYSICAL)
    assert np.array_equal(obs["privileged"][:n], ref_obs.astype(np.float32))
    assert np.array_equal(obs["privileged"][n:], np.ones(len(PHYSICAL), np.float32))
    for action in random_actions(env, 30, seed=1).astype(np.float64):
        obs, reward, terminated, _, _ = env.step(action)
        ref_obs, ref_reward, ref_terminated, _, _ = ref.step(action)
        assert np.array_equal(obs["privileged"][:n], ref_obs.astype(np.float32))
        assert reward == pytest.approx(ref_reward, rel=1e-12) and terminated == ref_terminated
        if terminated:
            break
    ref.close()


@pytest.mark.parametrize("task", TASKS)
def test_student_obs_is_what_the_robot_side_builder_makes_from_sensor_readings(made, task):
    """The env and a robot's controller build the student vector the same way (noise and delay off)."""
    env = made[task]
    task_env = env.unwrapped
    env.reset(seed=2, options={"dynamics": CLEAN})
    for action in random_actions(env, 5, seed=2):
        obs, *_ = env.step(action)
        readings = task_env.sensors.readings(task_env.data)
        executed = np.clip(action, env.action_space.low, env.action_space.high)
        built = student_vector(readings, task_env.student_names, executed)
        assert np.array_equal(obs["student"], built)


def test_observation_builder_imports_without_gymnasium_or_mujoco():
    """The robot-side runtime uses `envs.observations` on a computer without a simulator."""
    code = (
        "import sys\n"
        "for m in ('gymnasium', 'mujoco', 'torch'): sys.modules[m] = None\n"
        "import numpy as np\n"
        "from envs.observations import student_vector, student_names\n"
        "names = student_names(['pole/cos', 'pole/sin'], ['torque'])\n"
        "v = student_vector({'pole/cos': 1.0, 'pole/sin': 0.0}, names, np.array([0.5]))\n"
        "assert v.tolist() == [1.0, 0.0, 0.5], v\n"
        "assert 'mujoco' not in sys.modules or sys.modules['mujoco'] is None\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_robot_side_builder_names_a_missing_reading():
    with pytest.raises(KeyError, match="pole/sin"):
        student_vector({"pole/cos": 1.0}, ("pole/cos", "pole/sin", "prev_action/torque"), np.zeros(1))


def test_halfcheetah_metrics_name_an_episode_that_went_over_onto_its_back():
    def episode(pitch: float) -> dict[str, float]:
        env = gym.make("sim2real/HalfCheetah-v0")
        env.reset(seed=3)
        base = env.unwrapped.base
        qpos, qvel = base.data.qpos.copy(), base.data.qvel.copy()
        qpos[2] = pitch  # rooty
        base.set_state(qpos, qvel)
        rows = [env.step(np.zeros(6))[0]["privileged"] for _ in range(40)]
        trace = Trace(privileged=np.array(rows), reward=np.zeros(40), terminated=False)  # (40, Dp)
        return envs.spec("halfcheetah").metrics(trace)

    upright, on_back = episode(0.0), episode(3.0)
    assert upright == {"flipped": 0.0, "on_back": 0.0}
    assert on_back["flipped"] == 1.0 and on_back["on_back"] > 0.9  # dropped on its back, it stays there
