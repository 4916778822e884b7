"""Domain randomization: ranges, fresh application each reset, overrides, validation, sensor delay, noise."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs import parameters
from envs.observations import DelayedNoisySensor

DEFAULT_RANGES, NAMES, NOMINAL, PHYSICAL = (
    parameters.default_ranges(),
    parameters.names(),
    parameters.nominal(),
    parameters.physical(),
)

TASKS = list(envs.TASKS)
CLEAN = {"latency_steps": 0, "obs_noise_scale": 0.0}


def make(task: str, **ranges) -> gym.Env:
    return gym.make(envs.env_id(task), randomization=ranges or None)


@pytest.fixture(scope="module")
def pendulum():
    env = make("pendulum")
    yield env
    env.close()


@pytest.fixture(scope="module")
def hopper():
    env = make("hopper")
    yield env
    env.close()


def test_sampled_values_stay_inside_configured_ranges():
    ranges = {"mass_scale": [0.9, 0.95], "friction_scale": [0.5, 0.6], "latency_steps": [1, 2]}
    env = make("pendulum", **ranges)
    latencies = set()
    for seed in range(60):
        _, info = env.reset(seed=seed)
        dyn = info["dynamics"]
        for name in NAMES:
            low, high = ranges.get(name, (DEFAULT_RANGES[name].low, DEFAULT_RANGES[name].high))
            assert low <= dyn[name] <= high, name
        assert isinstance(dyn["latency_steps"], int)
        latencies.add(dyn["latency_steps"])
    assert latencies == {1, 2}  # integer ranges are inclusive


def model_fields(model) -> dict[str, np.ndarray]:
    fields = (
        "body_mass",
        "body_inertia",
        "geom_friction",
        "dof_frictionloss",
        "actuator_gear",
        "dof_damping",
    )
    return {name: getattr(model, name).copy() for name in fields}


def expected_fields(nominal: dict[str, np.ndarray], dyn: dict[str, float]) -> dict[str, np.ndarray]:
    friction = nominal["geom_friction"].copy()
    friction[:, 0] *= dyn["friction_scale"]
    gear = nominal["actuator_gear"].copy()
    gear[:, 0] *= dyn["motor_strength"]
    return {
        "body_mass": nominal["body_mass"] * dyn["mass_scale"],
        "body_inertia": nominal["body_inertia"] * dyn["mass_scale"],
        "geom_friction": friction,
        "dof_frictionloss": nominal["dof_frictionloss"] * dyn["friction_scale"],
        "actuator_gear": gear,
        "dof_damping": nominal["dof_damping"] * dyn["joint_damping_scale"],
    }


def test_scales_do_not_compound_over_100_resets(hopper):
    """Each reset writes nominal × value into the model, whatever the previous episodes wrote."""
    nominal = model_fields(make("hopper").unwrapped.model)
    model = hopper.unwrapped.model
    for seed in range(100):
        _, info = hopper.reset(seed=seed)
        actual, expected = model_fields(model), expected_fields(nominal, info["dynamics"])
        for name in nominal:
            assert np.array_equal(actual[name], expected[name]), (seed, name)
    hopper.reset(seed=0, options={"dynamics": NOMINAL})
    for name, value in model_fields(model).items():
        assert np.array_equal(value, nominal[name]), name


def test_info_reports_the_dynamics_in_force(hopper):
    nominal = model_fields(make("hopper").unwrapped.model)
    obs, info = hopper.reset(seed=3, options={"dynamics": {"mass_scale": 1.15, "latency_steps": 2}})
    dyn = info["dynamics"]
    assert tuple(dyn) == NAMES
    assert dyn["mass_scale"] == 1.15 and dyn["latency_steps"] == 2
    assert np.array_equal(hopper.unwrapped.model.body_mass, nominal["body_mass"] * 1.15)
    physical = np.array([dyn[name] for name in PHYSICAL], dtype=np.float32)
    assert np.array_equal(obs["privileged"][-len(PHYSICAL) :], physical)
    _, _, _, _, step_info = hopper.step(np.zeros(3, np.float32))
    assert step_info["dynamics"] == dyn


def test_derived_model_constants_follow_the_scaled_masses(hopper):
    """MuJoCo's constants computed from masses (subtree masses, inverse weights) are recomputed."""
    hopper.reset(seed=0, options={"dynamics": NOMINAL})
    model = hopper.unwrapped.model
    subtree, invweight = model.body_subtreemass.copy(), model.dof_invweight0.copy()
    hopper.reset(seed=0, options={"dynamics": {"mass_scale": 1.2}})
    assert np.allclose(model.body_subtreemass, subtree * 1.2)
    assert (model.dof_invweight0 < invweight).all()  # not exactly / 1.2: joint armature is not scaled


def test_overriding_one_parameter_keeps_the_others_draws(pendulum):
    _, free = pendulum.reset(seed=7)
    _, fixed = pendulum.reset(seed=7, options={"dynamics": {"mass_scale": 1.19}})
    others = [name for name in NAMES if name != "mass_scale"]
    assert [free["dynamics"][n] for n in others] == [fixed["dynamics"][n] for n in others]


def swing_speed(env: gym.Env, **dynamics: float) -> float:
    """|angular velocity| after 5 steps of full torque from rest at the bottom (qpos 0 is upright)."""
    env.reset(seed=0, options={"dynamics": {**NOMINAL, **dynamics}})
    env.unwrapped.base.set_state(np.array([math.pi]), np.zeros(1))
    for _ in range(5):
        obs, *_ = env.step(np.ones(1, np.float32))
    return abs(float(obs["privileged"][2]))


def test_heavier_pendulum_swings_slower_under_the_same_torque(pendulum):
    assert (
        swing_speed(pendulum, mass_scale=1.5) < swing_speed(pendulum) < swing_speed(pendulum, mass_scale=0.7)
    )


def test_weaker_motor_swings_the_pendulum_slower(pendulum):
    assert swing_speed(pendulum, motor_strength=0.5) < 0.6 * swing_speed(pendulum)


def test_more_joint_damping_swings_the_pendulum_slower(pendulum):
    assert swing_speed(pendulum, joint_damping_scale=20.0) < swing_speed(pendulum)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("no_such_param", 1.0),
        ("mass_scale", -1.0),
        ("mass_scale", float("nan")),
        ("friction_scale", float("inf")),
        ("motor_strength", "strong"),
        ("latency_steps", 1.5),
        ("latency_steps", -1),
        ("obs_noise_scale", -0.1),
    ],
)
def test_nonsensical_dynamics_are_refused_naming_the_parameter(pendulum, name, value):
    with pytest.raises(ValueError, match=name):
        pendulum.reset(seed=0, options={"dynamics": {name: value}})


@pytest.mark.parametrize(
    ("ranges", "name"),
    [
        ({"masss": [1.0, 2.0]}, "masss"),
        ({"mass_scale": [1.2, 0.8]}, "mass_scale"),
        ({"mass_scale": [-1.0, 1.0]}, "mass_scale"),
        ({"latency_steps": [0, 1.5]}, "latency_steps"),
        ({"friction_scale": 1.0}, "friction_scale"),
    ],
)
def test_nonsensical_ranges_are_refused_naming_the_parameter(ranges, name):
    with pytest.raises(ValueError, match=name):
        make("pendulum", **ranges)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("param", PHYSICAL)
def test_first_student_obs_does_not_reveal_physical_parameters(task, param):
    env = make(task)
    low, _ = env.reset(seed=4, options={"dynamics": {param: 0.7}})
    high, _ = env.reset(seed=4, options={"dynamics": {param: 1.3}})
    assert np.array_equal(low["student"], high["student"])
    assert not np.array_equal(low["privileged"], high["privileged"])


def features(env: gym.Env, seed: int, actions: np.ndarray, latency: int) -> tuple[np.ndarray, ...]:
    """(student features (T+1, F), student prev actions (T+1, Da), privileged (T+1, Dp)) of one rollout."""
    obs, _ = env.reset(seed=seed, options={"dynamics": {**CLEAN, "latency_steps": latency}})
    seen = [obs]
    for action in actions:
        obs, *_ = env.step(action)
        seen.append(obs)
    student = np.stack([o["student"] for o in seen])
    n_features = len(env.unwrapped.sensors.names)
    return student[:, :n_features], student[:, n_features:], np.stack([o["privileged"] for o in seen])


@pytest.mark.parametrize("task", ["pendulum", "halfcheetah"])
@pytest.mark.parametrize("k", [1, 3])
def test_latency_delays_the_student_sensors_by_exactly_k_steps(task, k):
    env = make(task)
    actions = np.random.default_rng(0).uniform(-1, 1, (20, env.action_space.shape[0])).astype(np.float32)
    now, now_actions, now_privileged = features(env, 1, actions, latency=0)
    late, late_actions, late_privileged = features(env, 1, actions, latency=k)
    assert np.array_equal(now_privileged, late_privileged)  # the physics is the same
    assert np.array_equal(now_actions, late_actions)  # the previous action is known without delay
    for t in range(len(now)):
        assert np.array_equal(late[t], now[max(t - k, 0)]), t


def test_zero_noise_gives_exact_sensor_readings(pendulum, hopper):
    obs, _ = pendulum.reset(seed=3, options={"dynamics": CLEAN})
    for action in np.linspace(-1, 1, 10, dtype=np.float32)[:, None]:
        obs, *_ = pendulum.step(action)
        theta = pendulum.unwrapped.data.qpos[0]
        assert np.array_equal(obs["student"][:2], np.array([np.cos(theta), np.sin(theta)], np.float32))
    obs, _ = hopper.reset(seed=3, options={"dynamics": CLEAN})
    obs, *_ = hopper.step(np.full(3, 0.5, np.float32))
    data = hopper.unwrapped.data
    assert np.array_equal(obs["student"][:3], data.qpos[3:6].astype(np.float32))  # joint_pos/*
    assert np.array_equal(obs["student"][3:6], data.qvel[3:6].astype(np.float32))  # joint_vel/*


def test_noise_scale_sets_the_sensor_noise_std():
    """obs_noise_scale=1 gives the nominal std (joint velocity: 0.1): measured against clean readings."""
    env = make("halfcheetah")
    actions = np.random.default_rng(0).uniform(-1, 1, (150, 6)).astype(np.float32)
    errors = []
    env.reset(seed=9, options={"dynamics": {"latency_steps": 0, "obs_noise_scale": 1.0}})
    for action in actions:
        obs, *_ = env.step(action)
        errors.append(obs["student"][6:12] - env.unwrapped.data.qvel[3:9])  # joint_vel/*
    assert 0.09 < np.std(errors) < 0.11


def test_noise_drawn_in_chunks_equals_drawing_one_reading_at_a_time():
    """The sensor pre-draws noise in chunks; the values must be those of one draw per reading."""
    std = np.array([0.1, 2.0, 0.0])
    sensor = DelayedNoisySensor(raw_dim=3, max_latency=2, chunk=4)
    readings = [sensor.reset(np.zeros(3), 0, std, np.random.default_rng(5)).copy()]
    readings += [sensor.push(np.zeros(3)).copy() for _ in range(10)]  # crosses two chunk boundaries
    reference = np.random.default_rng(5)
    assert np.array_equal(
        np.stack(readings), np.stack([std * reference.standard_normal(3) for _ in range(11)])
    )


def test_widen_stretches_every_range_about_its_nominal_within_the_bounds():
    from sim2real.checks import ConfigError
    from sim2real.config import TaskConfig

    wide = TaskConfig(widen=1.5).ranges()
    assert wide["mass_scale"] == [0.7, 1.3]  # [0.8, 1.2] about 1.0
    assert wide["friction_scale"] == [0.1, 1.375]  # [0.4, 1.25]: each edge half as far again from 1.0
    assert wide["latency_steps"] == [0, 3]  # integers widen outward, the nominal edge stays
    assert TaskConfig(widen=2.0).ranges()["friction_scale"][0] == 0.0  # 1 - 2 x 0.6 < 0: held at the bound
    assert TaskConfig().ranges() == TaskConfig(widen=1.0).ranges()
    with pytest.raises(ConfigError, match=r"task\.widen=0"):
        TaskConfig(widen=0)


def test_widen_stretches_a_recentred_range_about_its_own_centre():
    """Ranges re-centred on a robot's identified values (`sim2real identify`) stay on that robot."""
    from envs.parameters import RandomizationConfig
    from sim2real.config import TaskConfig

    recentred = RandomizationConfig(motor_strength=[0.66, 0.74], joint_damping_scale=[1.2, 1.4])
    wide = TaskConfig(randomization=recentred, widen=1.5).ranges()
    assert wide["motor_strength"] == pytest.approx([0.64, 0.76])  # about 0.70, not about the nominal 1.0
    assert wide["joint_damping_scale"] == pytest.approx([1.15, 1.45])
    assert wide["mass_scale"] == [0.7, 1.3]  # a range holding the nominal still stretches about it
