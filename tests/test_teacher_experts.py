"""Experts behind one protocol: an SB3 zip trained on the plain Gymnasium env, and the scripted pendulum."""

from __future__ import annotations

import base64
import json
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import SAC
from stable_baselines3.common.logger import Logger

from sim2real.errors import UserError
from sim2real.teacher.config import ExpertConfig
from sim2real.teacher.expert import Expert, ScriptedPendulumExpert
from sim2real.teacher.experts import load_expert


@pytest.fixture(scope="module")
def pendulum_zip(tmp_path_factory) -> tuple[Path, SAC]:
    """A tiny SAC trained for a few updates on Gymnasium's Pendulum-v1 (actions are torques in [-2, 2])."""
    path = tmp_path_factory.mktemp("zip") / "sac_pendulum.zip"
    model = SAC("MlpPolicy", gym.make("Pendulum-v1"), learning_starts=50, batch_size=16, seed=0, device="cpu")
    model.set_logger(Logger(None, []))  # no SB3 log folder in /tmp
    model.learn(60)
    model.save(path)
    return path, model


def privileged(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    angle = rng.uniform(-np.pi, np.pi, n)
    return np.column_stack(
        [np.cos(angle), np.sin(angle), rng.uniform(-6, 6, n), rng.uniform(0.5, 1.5, (n, 4))]
    )


def test_sb3_zip_expert_acts_on_the_gymnasium_slice_in_task_units(pendulum_zip):
    path, model = pendulum_zip
    expert = load_expert(ExpertConfig(kind="sb3_zip", path=str(path)), "unused", "pendulum")
    assert isinstance(expert, Expert) and expert.name.startswith("sb3_zip:sac_pendulum:")
    obs = privileged(32).astype(np.float32)
    actions = expert.act(obs)
    assert actions.dtype == np.float32 and actions.shape == (32, 1)
    torque, _ = model.predict(obs[:, :3], deterministic=True)  # N·m in [-2, 2]; the task's gear is 2
    np.testing.assert_allclose(actions, torque / 2.0, atol=1e-6)
    assert np.abs(actions).max() <= 1.0 and np.ptp(actions) > 0
    # the physical parameters beyond the Gymnasium slice are not the model's input
    other = obs.copy()
    other[:, 3:] = 1.0
    np.testing.assert_array_equal(expert.act(other), actions)


def _with_old_gym_spaces(src: Path, dst: Path) -> None:
    """Rewrite the zip as SB3 files from the `gym` era look: spaces pickled as gym.spaces.box.Box."""
    old_pickle = base64.b64encode(b"cgym.spaces.box\nBox\n.").decode()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            blob = zin.read(item.filename)
            if item.filename == "data":
                data = json.loads(blob)
                for key in ("observation_space", "action_space"):
                    data[key][":serialized:"] = old_pickle
                blob = json.dumps(data).encode()
            zout.writestr(item, blob)


def test_sb3_zip_with_unloadable_gym_spaces_loads_from_its_json_description(pendulum_zip, tmp_path):
    path, model = pendulum_zip
    old = tmp_path / "old_gym.zip"
    _with_old_gym_spaces(path, old)
    with pytest.raises(ModuleNotFoundError, match="gym"):
        SAC.load(old, device="cpu")  # what plain loading does with such a file
    expert = load_expert(ExpertConfig(kind="sb3_zip", path=str(old), algo="sac"), "unused", "pendulum")
    obs = privileged(8, seed=1).astype(np.float32)
    np.testing.assert_allclose(
        expert.act(obs), model.predict(obs[:, :3], deterministic=True)[0] / 2.0, atol=1e-6
    )


def test_sb3_zip_of_the_go2_acts_in_the_tasks_own_offset_range(tmp_path):
    """A zip trained on the bare Go2 (offsets in [-4, 4]) is not squeezed into [-1, 1]."""
    from stable_baselines3 import PPO

    from envs.go2_env import Go2Env

    bare = Go2Env()
    model = PPO("MlpPolicy", bare, n_steps=16, batch_size=16, seed=0, device="cpu")
    model.policy.action_net.bias.data[:] = 2.5  # offsets past 1 rad/4: a squeezed copy would say 0.625
    model.save(tmp_path / "go2.zip")
    zip_cfg = ExpertConfig(kind="sb3_zip", path=str(tmp_path / "go2.zip"), algo="ppo")
    expert = load_expert(zip_cfg, "unused", "go2")
    env = gym.make("sim2real/Go2-v0")
    obs = np.stack([env.reset(seed=s)[0]["privileged"] for s in range(8)])  # (8, Dp)
    want, _ = model.predict(obs[:, : bare.observation_space.shape[0]], deterministic=True)
    np.testing.assert_allclose(expert.act(obs), np.clip(want, -4.0, 4.0), atol=1e-5)
    assert np.abs(want).min() > 2.0


def test_sb3_zip_of_another_env_is_refused_naming_the_dims(pendulum_zip):
    path, _ = pendulum_zip
    with pytest.raises(UserError, match=r"obs 3 / action 1.*'hopper'.*obs 11 / action 3"):
        load_expert(ExpertConfig(kind="sb3_zip", path=str(path)), "unused", "hopper")


def test_sb3_zip_config_errors_name_the_problem(tmp_path):
    with pytest.raises(UserError, match=r"expert\.path"):
        load_expert(ExpertConfig(kind="sb3_zip"), tmp_path, "pendulum")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_expert(ExpertConfig(kind="sb3_zip", path=str(tmp_path / "missing.zip")), tmp_path, "pendulum")
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a readable Stable-Baselines3 zip"):
        load_expert(ExpertConfig(kind="sb3_zip", path=str(tmp_path / "junk.zip")), tmp_path, "pendulum")
    with pytest.raises(UserError, match=r"expert\.kind='oracle'"):
        load_expert(ExpertConfig(kind="oracle"), tmp_path, "pendulum")


def test_scripted_expert_loads_for_the_pendulum_only(tmp_path):
    expert = load_expert(ExpertConfig(kind="scripted"), tmp_path, "pendulum")
    assert isinstance(expert, ScriptedPendulumExpert)
    assert expert.act(privileged(4)).shape == (4, 1)
    with pytest.raises(UserError, match="no scripted controller"):
        load_expert(ExpertConfig(kind="scripted"), tmp_path, "hopper")
