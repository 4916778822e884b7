"""`teacher.init_from`: a flat-ground Go2 teacher starts a rough-ground one, inputs matched by name."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

from sim2real.errors import UserError
from sim2real.teacher.policy import load_teacher
from sim2real.teacher.train import train
from sim2real.teacher.vec import make_training_env
from sim2real.teacher.warm_start import privileged_names, warm_start
from tests.test_teacher import TINY_PPO, make_cfg, privileged_batch

NET = {"net_arch": {"pi": [128, 128], "vf": [128, 128]}}  # conf/teacher/go2.yaml's


@pytest.fixture(scope="module")
def flat_teacher(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("flat")
    train(make_cfg(run_dir, "task=go2", *TINY_PPO, "teacher.eval_episodes=1"), run_dir / "teacher")
    return run_dir / "teacher"


def rough_model(seed: int = 3) -> tuple[PPO, VecNormalize]:
    venv = VecNormalize(make_training_env("go2_rough", {}, 4, "batch", seed), clip_obs=10.0)
    return PPO("MlpPolicy", venv, seed=0, policy_kwargs=NET), venv


def test_warm_started_rough_teacher_acts_and_values_as_the_flat_one(flat_teacher):
    model, venv = rough_model()
    message = warm_start(model, venv, flat_teacher, "go2_rough")
    assert "21 new inputs at zero weight" in message
    old, new = privileged_names("go2"), privileged_names("go2_rough")
    columns = [new.index(n) for n in old]
    rng = np.random.default_rng(0)
    raw = np.asarray(venv.venv.reset()) + rng.normal(0, 0.3, (4, len(new)))  # (4, 85) rough observations
    raw[:, [i for i in range(len(new)) if i not in columns]] += 1.0  # the scan far from its first batch
    teacher = load_teacher(flat_teacher)
    flat = teacher.normalizer.apply(raw[:, columns])  # (4, 64): what the flat teacher sees
    rough = venv.normalize_obs(raw).astype(np.float32)
    np.testing.assert_allclose(rough[:, columns], flat, rtol=1e-6, atol=1e-6)
    actions, _ = model.predict(rough, deterministic=True)
    np.testing.assert_allclose(actions, teacher.act(raw[:, columns]), atol=1e-5)
    values = [
        m.policy.predict_values(m.policy.obs_to_tensor(o)[0])
        for m, o in ((model, rough), (teacher.model, flat))
    ]
    np.testing.assert_allclose(values[0].detach().numpy(), values[1].detach().numpy(), atol=1e-5)
    assert venv.obs_rms.count == pytest.approx(min(teacher.normalizer.count, 10_000))
    venv.close()


def test_warm_start_refuses_a_teacher_whose_inputs_the_task_lacks(tmp_path, flat_teacher):
    pendulum = tmp_path / "pendulum"
    train(make_cfg(pendulum, *TINY_PPO), pendulum / "teacher")
    model, venv = rough_model()
    with pytest.raises(UserError, match=r"task 'pendulum' observes \['pendulum:obs/0'"):
        warm_start(model, venv, pendulum / "teacher", "go2_rough")
    venv.close()


def test_init_from_starts_a_training_run_and_joins_its_resume_config(tmp_path, flat_teacher, capsys):
    cfg = make_cfg(
        tmp_path, "task=go2_rough", *TINY_PPO, "teacher.eval_episodes=1", f"teacher.init_from={flat_teacher}"
    )
    train(cfg, tmp_path / "teacher")
    assert "started from" in capsys.readouterr().out
    cfg.teacher.init_from = None
    with pytest.raises(UserError, match="different config \\(init_from"):
        train(cfg, tmp_path / "teacher")
    cfg.teacher.init_from = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        train(cfg, tmp_path / "other")


def test_warm_start_from_a_blind_teacher_ignores_the_inputs_it_never_saw(tmp_path):
    """A blind teacher's weights on its hidden inputs are untrained noise: a run that sees those inputs
    must start acting exactly as the blind teacher did, whatever the physical parameters are."""
    train(make_cfg(tmp_path, *TINY_PPO, "teacher.blind_params=true"), tmp_path / "teacher")
    blind = load_teacher(tmp_path / "teacher")
    venv = VecNormalize(make_training_env("pendulum", {}, 2, "dummy", 5), clip_obs=10.0)
    kwargs = {"use_sde": blind.model.use_sde, "policy_kwargs": blind.model.policy_kwargs}
    model = PPO("MlpPolicy", venv, seed=0, **kwargs)
    warm_start(model, venv, tmp_path / "teacher", "pendulum")
    obs = privileged_batch()  # (16, 7): cos, sin, velocity, 4 parameters
    other = obs.copy()
    other[:, 3:] = np.random.default_rng(1).uniform(0.5, 1.5, (len(obs), 4))
    acts = [
        model.predict(venv.normalize_obs(o).astype(np.float32), deterministic=True)[0] for o in (obs, other)
    ]
    np.testing.assert_allclose(acts[0], acts[1], atol=1e-6)
    np.testing.assert_allclose(acts[0], blind.act(obs), atol=1e-5)
    venv.close()
