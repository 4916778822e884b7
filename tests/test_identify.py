"""`sim2real identify`: known dynamics of a simulated robot's log are recovered, the latency exactly; bad
logs are refused with a reason; the re-centred ranges file is what a run then trains on."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import envs
from sim2real.data.schema import Episode, StoreSpec
from sim2real.data.store import DemoStore
from sim2real.errors import UserError
from sim2real.identify.log import check_log, load_log
from sim2real.stages import expand

TRUE = {
    "mass_scale": 1.15,
    "friction_scale": 0.8,
    "motor_strength": 0.85,
    "joint_damping_scale": 1.2,
    "latency_steps": 2,
    "obs_noise_scale": 0.5,
}


def write_log(
    path: Path, dynamics: dict, steps: int, excite: bool = True, seed: int = 3, restarts: tuple[int, ...] = ()
) -> Path:
    """A simulated robot's log: a chirp-like excitation (or nothing) under fixed dynamics. At each step
    in `restarts` the robot restarts from a new start inside the one logged episode, as robot-sim does
    under a controller that runs on over DDS."""
    env = gym.make(envs.env_id("pendulum"))
    obs, info = env.reset(seed=seed, options={"dynamics": dynamics})
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {
        k: [] for k in ("student_obs", "privileged_obs", "action", "expert_action", "reward")
    }
    for t in range(steps):
        if t in restarts:
            obs, _ = env.reset(seed=seed + t, options={"dynamics": dynamics})
        a = np.clip(np.sin(0.07 * t) + 0.3 * rng.standard_normal(1), -1, 1) if excite else np.zeros(1)
        a = a.astype(np.float32)
        for k, v in (("student_obs", obs["student"]), ("privileged_obs", obs["privileged"])):
            rows[k].append(v)
        rows["action"].append(a)
        rows["expert_action"].append(a)
        obs, r, *_ = env.step(a)
        rows["reward"].append(r)
    spec = StoreSpec.from_env(env)
    dyn = np.array([info["dynamics"][n] for n in spec.dynamics_names], np.float32)
    with DemoStore.create(path, spec) as store:
        store.append_episode(
            Episode(**{k: np.asarray(v, np.float32) for k, v in rows.items()}, dynamics=dyn), {"kind": "test"}
        )
    return path


def test_identify_recovers_the_dynamics_and_the_exact_latency_of_a_logged_robot(tmp_path):
    log = write_log(tmp_path / "log.zarr", TRUE, 300)
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "sim2real", "identify", f"log={log}", f"run_dir={run_dir}", "logger=none",
           "identify.fixed.mass_scale=1.15"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rep = json.loads((run_dir / "identify" / "report.json").read_text())
    assert rep["latency_steps"] == 2
    for name in ("motor_strength", "joint_damping_scale"):
        entry = rep["parameters"][name]
        assert entry["identified"] and abs(entry["value"] / TRUE[name] - 1) < 0.05, (name, entry)
    assert rep["parameters"]["friction_scale"]["identified"] is False  # dry friction barely acts here
    assert rep["obs_noise_scale"] == pytest.approx(0.5, rel=0.3)
    assert rep["residual_rms_identified"] < rep["residual_rms_nominal"] / 5
    for png in ("residuals.png", "latency.png"):
        assert (run_dir / "identify" / png).stat().st_size > 5000
    ranges = rep["ranges"]
    assert ranges["latency_steps"] == [1, 3]
    # not told apart: the declared range, not the default run's widened one (a run widens it once)
    assert ranges["friction_scale"] == [0.4, 1.25]
    lo, hi = ranges["motor_strength"]
    assert lo < TRUE["motor_strength"] < hi and hi - lo < 0.2  # re-centred, much narrower than training


def test_mass_and_motor_of_a_pendulum_are_not_told_apart_and_say_so(tmp_path):
    """Scaling mass and inertia together leaves only motor/mass acting: the fit reports the ratio's
    parts as not identified instead of a confident wrong value."""
    from sim2real.identify.fit import FitSettings, identify
    from sim2real.identify.sim import TaskSim

    log = load_log(write_log(tmp_path / "log.zarr", TRUE, 200), 30)
    sim = TaskSim("pendulum")
    names = ("mass_scale", "friction_scale", "motor_strength", "joint_damping_scale")
    fit = identify(sim, log, FitSettings(names, segments=8, max_latency=3))
    assert not fit.identified["mass_scale"] and not fit.identified["motor_strength"]
    ratio = fit.values["motor_strength"] / fit.values["mass_scale"]
    assert ratio == pytest.approx(TRUE["motor_strength"] / TRUE["mass_scale"], rel=0.05)
    assert fit.latency == 2


def test_a_robot_restart_inside_the_log_is_left_out_not_fitted(tmp_path):
    """A restart jumps the readings; a segment across it, fitted, once chose the latency (0 for 2)."""
    from sim2real.identify.fit import FitSettings, identify
    from sim2real.identify.sim import TaskSim

    log = load_log(write_log(tmp_path / "log.zarr", TRUE, 320, restarts=(100, 200)), 30)
    names = ("friction_scale", "motor_strength", "joint_damping_scale")
    fit = identify(TaskSim("pendulum"), log, FitSettings(names, {"mass_scale": 1.15}, segments=10))
    assert fit.latency == 2
    assert fit.values["motor_strength"] == pytest.approx(TRUE["motor_strength"], rel=0.05)
    assert fit.dropped, "a segment across a restart was fitted"
    for _, t in fit.dropped:  # every segment left out holds a restart in its readings
        assert any(t <= r < t + 20 + 5 for r in (100, 200)), fit.dropped
    for _, t in fit.slots:  # none fitted holds one in its readings at the found latency
        assert not any(t + 2 < r <= t + 2 + 19 for r in (100, 200)), fit.slots


def test_a_log_without_excitation_is_refused(tmp_path):
    """Never commanded: nothing in the log tells the motor apart; resting still: nothing at all."""
    path = write_log(tmp_path / "free.zarr", TRUE, 120, excite=False)
    with pytest.raises(UserError, match=r"no excitation \(reading std .*, action std 0.00e\+00\)"):
        load_log(path, 30)
    log = load_log(write_log(tmp_path / "moving.zarr", TRUE, 120), 30)
    frozen = replace(log, readings=[np.repeat(r[:1], len(r), axis=0) for r in log.readings])
    with pytest.raises(UserError, match=r"no excitation \(reading std 0.00e\+00"):
        check_log(frozen, 30)


def test_short_and_non_finite_logs_are_refused_naming_the_problem(tmp_path):
    log = load_log(write_log(tmp_path / "log.zarr", TRUE, 60), 30)
    with pytest.raises(UserError, match=r"longest episode has 60 steps; identify needs at least 100"):
        check_log(log, 100)
    bad = [r.copy() for r in log.readings]
    bad[0][17, 1] = np.nan
    with pytest.raises(UserError, match=r"episode 0 has 1 steps with non-finite readings .*first at step 17"):
        check_log(replace(log, readings=bad), 30)


def test_recentred_ranges_file_is_what_a_run_trains_on(tmp_path):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from sim2real.cli import CONF_DIR
    from sim2real.config import register

    ranges = tmp_path / "ranges.yaml"
    ranges.write_text("mass_scale: [1.1, 1.2]\nlatency_steps: [1, 3]\n")
    overrides = expand(f"task.randomization={ranges}")
    assert sorted(overrides) == [
        "task.randomization.latency_steps=[1,3]",
        "task.randomization.mass_scale=[1.1,1.2]",
    ]
    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = OmegaConf.to_object(compose("config", overrides=["stage=pipeline", *overrides]))
        exact = OmegaConf.to_object(compose("config", overrides=["task.widen=null", *overrides]))
    # the pendulum's default `task.widen=1.6` stretches them about their own centre: still on that robot
    assert cfg.task.ranges()["mass_scale"] == pytest.approx([1.07, 1.23])
    assert cfg.task.ranges()["latency_steps"] == [0, 4]  # 2 ± 1.6: integers widen outward
    assert exact.task.ranges()["mass_scale"] == [1.1, 1.2] and exact.task.ranges()["latency_steps"] == [1, 3]
    env = gym.make(envs.env_id("pendulum"), randomization=exact.task.ranges())
    for seed in range(5):
        _, info = env.reset(seed=seed)
        assert 1.1 <= info["dynamics"]["mass_scale"] <= 1.2 and 1 <= info["dynamics"]["latency_steps"] <= 3
    ranges.write_text("mass: [1, 2]\n")
    with pytest.raises(UserError, match=r"unknown parameters \['mass'\]"):
        expand(f"task.randomization={ranges}")
