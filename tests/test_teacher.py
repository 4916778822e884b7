"""Teacher training: tiny-budget PPO/SAC runs through the real SB3 + MuJoCo stack, reload, resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sim2real.cli import CONF_DIR
from sim2real.config import Config, register
from sim2real.errors import UserError
from sim2real.teacher.config import ExpertConfig
from sim2real.teacher.expert import Expert
from sim2real.teacher.experts import load_expert
from sim2real.teacher.policy import load_teacher
from sim2real.teacher.train import run, train

TINY_PPO = [
    "teacher.algo=ppo",
    "teacher.total_timesteps=256",
    "teacher.n_envs=2",
    "++teacher.ppo.hyperparams.n_steps=64",
    "++teacher.ppo.hyperparams.batch_size=64",
    "++teacher.ppo.hyperparams.n_epochs=2",
]
TINY_SAC = [
    "teacher.algo=sac",
    "teacher.total_timesteps=300",
    "++teacher.sac.hyperparams.learning_starts=200",
    "++teacher.sac.hyperparams.batch_size=32",
    "++teacher.sac.hyperparams.buffer_size=1000",
    "++teacher.sac.hyperparams.policy_kwargs.net_arch=[16,16]",
]


def make_cfg(run_dir: Path, *overrides: str) -> Config:
    """The config the CLI would build (conf/ YAML + overrides), with quick evaluation settings."""
    register()
    base = ["task=pendulum", f"run_dir={run_dir}", "teacher.progress=false"]
    base += [] if any(o.startswith("logger=") for o in overrides) else ["logger=none"]
    base += ["teacher.eval_episodes=2", "teacher.eval_freq=0"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return OmegaConf.to_object(compose("config", overrides=[*base, *overrides]))


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ppo")
    result = train(make_cfg(run_dir, *TINY_PPO), run_dir / "teacher")
    return run_dir, result


def privileged_batch(n: int = 16) -> np.ndarray:
    """Pendulum privileged obs (cos, sin, vel, 4 physical parameters) away from the normalizer's mean."""
    rng = np.random.default_rng(0)
    angle = rng.uniform(-np.pi, np.pi, n)
    params = rng.uniform(0.5, 1.5, (n, 4))
    return np.column_stack([np.cos(angle), np.sin(angle), rng.uniform(-6, 6, n), params]).astype(np.float32)


def test_loaded_ppo_teacher_acts_as_the_trained_model_with_its_normalizer(ppo_run):
    run_dir, result = ppo_run
    obs = privileged_batch()
    # the in-memory path: SB3's own VecNormalize arithmetic, then the policy
    expected, _ = result.model.predict(result.venv.normalize_obs(obs), deterministic=True)
    teacher = load_teacher(run_dir / "teacher")
    actions = teacher.act(obs)
    assert actions.dtype == np.float32 and actions.shape == (16, 1)
    np.testing.assert_array_equal(actions, expected.astype(np.float32))
    # the normalizer matters: raw observations would give other actions
    unnormalized, _ = result.model.predict(obs, deterministic=True)
    assert not np.allclose(actions, unnormalized)
    assert teacher.name.startswith("teacher:") and len(teacher.name) == len("teacher:") + 12


def test_teacher_dir_holds_model_stats_info_and_finished_manifest(tmp_path):
    run(make_cfg(tmp_path, *TINY_PPO))
    out = tmp_path / "teacher"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "finished"
    assert set(manifest["outputs"]) == {"model.zip", "obs_norm.json", "teacher.json"}
    summary = manifest["summary"]
    assert summary["num_timesteps"] >= 256 and summary["checkpoint"] == "last"
    assert np.isfinite(summary["eval_return_randomized"]) and np.isfinite(summary["eval_return_nominal"])
    stats = json.loads((out / "obs_norm.json").read_text())
    assert len(stats["mean"]) == 7 and stats["count"] > 256


def test_load_expert_teacher_checks_the_task(ppo_run):
    run_dir, _ = ppo_run
    expert = load_expert(ExpertConfig(kind="teacher"), run_dir, "pendulum")
    assert isinstance(expert, Expert)
    assert expert.act(privileged_batch(3)).shape == (3, 1)
    with pytest.raises(UserError, match="trained on task 'pendulum'"):
        load_expert(ExpertConfig(kind="teacher"), run_dir, "hopper")
    with pytest.raises(FileNotFoundError, match="no trained teacher"):
        load_expert(ExpertConfig(kind="teacher"), run_dir / "nowhere", "pendulum")


def test_sac_teacher_publishes_its_best_evaluated_checkpoint(tmp_path):
    cfg = make_cfg(tmp_path, *TINY_SAC, "teacher.eval_freq=100", "logger=local")
    summary = train(cfg, tmp_path / "teacher").summary
    info = json.loads((tmp_path / "teacher" / "teacher.json").read_text())
    steps, means = [e[0] for e in info["evals"]], [e[1] for e in info["evals"]]
    assert steps == [100, 200, 300]
    assert info["checkpoint"] == "best" and info["checkpoint_step"] == steps[int(np.argmax(means))]
    # evaluation replays the same seeds, so the published teacher reproduces its recorded return
    assert summary["eval_return_randomized"] == pytest.approx(max(means), abs=1e-9)
    # training curves and evaluation returns in the run's metrics
    rows = [
        json.loads(line)
        for line in (tmp_path / "logs" / "teacher" / "teacher.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows if np.isfinite(r.get("eval/return_mean", np.nan))] == steps
    assert any(np.isfinite(r.get("train/critic_loss", np.nan)) for r in rows)
    header = (tmp_path / "logs" / "teacher" / "teacher.csv").read_text().splitlines()[0].split(",")
    assert {"eval/return_mean", "train/actor_loss", "rollout/ep_rew_mean"} <= set(header)


def test_keep_last_publishes_the_last_checkpoint_not_the_best_evaluated(tmp_path):
    budget = ("teacher.total_timesteps=1024", "teacher.eval_freq=256", "logger=none")
    cfg = make_cfg(tmp_path, *TINY_PPO, *budget)
    best = train(cfg, tmp_path / "teacher").summary
    info = json.loads((tmp_path / "teacher" / "teacher.json").read_text())
    means = [e[1] for e in info["evals"]]
    assert info["checkpoint"] == "best" and int(np.argmax(means)) < len(means) - 1  # the best is not the last
    cfg.teacher.keep = "last"
    last = train(cfg, tmp_path / "teacher").summary  # at its budget already: publishes only
    info = json.loads((tmp_path / "teacher" / "teacher.json").read_text())
    assert info["checkpoint"] == "last" and info["checkpoint_step"] == 1024
    assert last["sha256"] != best["sha256"]
    published, saved = tmp_path / "teacher" / "model.zip", tmp_path / "teacher" / "checkpoints" / "last.zip"
    assert published.read_bytes() == saved.read_bytes()


def test_interrupted_training_resumes_from_its_checkpoint(tmp_path, monkeypatch, capsys):
    from sim2real.teacher.callbacks import ProgressBar

    original = ProgressBar._on_step

    def interrupt_at_150(self):
        if self.num_timesteps >= 150:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(ProgressBar, "_on_step", interrupt_at_150)
    cfg = make_cfg(tmp_path, *TINY_SAC)
    with pytest.raises(SystemExit, match="interrupted at step 150"):
        train(cfg, tmp_path / "teacher")
    state = json.loads((tmp_path / "teacher" / "checkpoints" / "state.json").read_text())
    assert state["num_timesteps"] == 150
    monkeypatch.setattr(ProgressBar, "_on_step", original)
    result = train(cfg, tmp_path / "teacher")
    assert "resuming from" in capsys.readouterr().out
    assert result.summary["num_timesteps"] == 300
    # the saved buffer came back (149: the interrupted step was never stored), then 150 new steps
    assert result.model.replay_buffer.size() == 299


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path):
    train(make_cfg(tmp_path, *TINY_SAC, "teacher.total_timesteps=10"), tmp_path / "teacher")
    with pytest.raises(UserError, match=r"different config \(algo: 'sac' -> 'ppo'\)"):
        train(make_cfg(tmp_path, *TINY_PPO), tmp_path / "teacher")


def test_resume_takes_checkpoints_from_before_a_new_key_but_not_a_changed_range(tmp_path, capsys):
    declared = "task.widen=null"  # the pendulum's default widens; a run from before the key did not
    train(make_cfg(tmp_path, *TINY_SAC, "teacher.total_timesteps=10", declared), tmp_path / "teacher")
    state_file = tmp_path / "teacher" / "checkpoints" / "state.json"
    state = json.loads(state_file.read_text())
    del state["resume_config"]["task"]["widen"]  # as a checkpoint written before `task.widen` existed
    state_file.write_text(json.dumps(state))
    train(make_cfg(tmp_path, *TINY_SAC, "teacher.total_timesteps=20", declared), tmp_path / "teacher")
    assert "resuming from" in capsys.readouterr().out
    with pytest.raises(UserError, match=r"different config \(task.widen: None -> 1.5\)"):
        cfg = make_cfg(tmp_path, *TINY_SAC, "teacher.total_timesteps=30", "task.widen=1.5")
        train(cfg, tmp_path / "teacher")


def test_unknown_sb3_hyperparameter_is_named():
    cfg = make_cfg(Path("/nonexistent"), "+teacher.sac.hyperparams.learning_rat=0.1")
    with pytest.raises(
        UserError, match=r"teacher\.sac\.hyperparams\.learning_rat: not an argument of SB3 SAC"
    ):
        train(cfg, Path("/nonexistent/teacher"))


@pytest.mark.parametrize(
    ("override", "named"),
    [("teacher.no_such_key=1", "no_such_key"), ("task=nope", "nope"), ("teacher.algo=dqn", "dqn")],
)
def test_bad_config_is_one_clear_line(tmp_path, override, named):
    out = subprocess.run(
        [sys.executable, "-m", "sim2real", "train-teacher", override, f"run_dir={tmp_path}", "logger=none"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and named in lines[0], out.stderr


@pytest.mark.parametrize("task", ["pendulum", "hopper", "walker2d", "halfcheetah", "ant"])
def test_every_task_teacher_config_builds_both_sb3_models(task, tmp_path):
    from stable_baselines3.common.vec_env import DummyVecEnv

    from sim2real.teacher.hyperparams import TRAINABLE, sb3_kwargs
    from sim2real.teacher.vec import make_privileged_env

    cfg = make_cfg(tmp_path, f"task={task}")
    assert cfg.teacher.algo == ("sac" if task == "pendulum" else "ppo")
    venv = DummyVecEnv([lambda: make_privileged_env(task, cfg.task.ranges())])
    for algo in ("ppo", "sac"):
        block = getattr(cfg.teacher, algo)
        kwargs = sb3_kwargs(algo, block.hyperparams)
        if algo == "sac":
            kwargs["buffer_size"] = 1  # the configured replay memory is not under test
        model = TRAINABLE[algo]("MlpPolicy", venv, device="cpu", **kwargs)
        assert model.observation_space.shape == venv.observation_space.shape and block.total_timesteps >= 5000
    venv.close()


def test_teacher_obs_noise_reaches_the_policy_on_training_and_on_resume(tmp_path):
    from stable_baselines3.common.vec_env import VecNormalize

    from sim2real.teacher.vec import ObsNoise

    first = train(make_cfg(tmp_path, *TINY_PPO, "teacher.obs_noise=0.2"), tmp_path / "teacher")
    noisy = first.model.get_env()
    assert isinstance(noisy, ObsNoise) and isinstance(noisy.venv, VecNormalize)
    longer = make_cfg(tmp_path, *TINY_PPO, "teacher.obs_noise=0.2", "teacher.total_timesteps=512")
    resumed = train(longer, tmp_path / "teacher")
    assert resumed.summary["num_timesteps"] == 512 and isinstance(resumed.model.get_env(), ObsNoise)
    clean = train(make_cfg(tmp_path / "clean", *TINY_PPO), tmp_path / "clean" / "teacher")
    assert isinstance(clean.model.get_env(), VecNormalize)


def test_blind_teacher_acts_the_same_whatever_the_physical_parameters(tmp_path, ppo_run):
    from sim2real.teacher.vec import HideColumns

    first = train(make_cfg(tmp_path, *TINY_PPO, "teacher.blind_params=true"), tmp_path / "teacher")
    env = first.model.get_env()
    assert isinstance(env, HideColumns) and np.all(env.reset()[:, 3:] == 0.0)  # what the policy trains on
    longer = make_cfg(tmp_path, *TINY_PPO, "teacher.blind_params=true", "teacher.total_timesteps=512")
    assert isinstance(train(longer, tmp_path / "teacher").model.get_env(), HideColumns)  # resumed blind
    assert json.loads((tmp_path / "teacher" / "obs_norm.json").read_text())["hidden"] == [3, 4, 5, 6]
    teacher, obs = load_teacher(tmp_path / "teacher"), privileged_batch()
    other = obs.copy()
    other[:, 3:] = np.random.default_rng(1).uniform(0.5, 1.5, (len(obs), 4))
    np.testing.assert_array_equal(teacher.act(obs), teacher.act(other))
    faster = obs.copy()
    faster[:, 2] += 3.0
    assert not np.array_equal(teacher.act(obs), teacher.act(faster))
    seeing = load_teacher(ppo_run[0] / "teacher")  # a teacher trained without the flag reads them
    assert not np.array_equal(seeing.act(obs), seeing.act(other))
    assert "hidden" not in json.loads((ppo_run[0] / "teacher" / "obs_norm.json").read_text())


@pytest.mark.parametrize("bad", [[1.0, 0.0], [0.0, 4.0], [0.5]])
def test_reset_pitch_outside_a_pitch_range_is_named(bad):
    from sim2real.teacher.config import TeacherConfig

    with pytest.raises(UserError, match=r"teacher\.reset_pitch="):
        TeacherConfig(reset_pitch=bad)


def test_evaluator_metrics_are_the_tasks_rule_on_the_episodes_trace(ppo_run):
    import gymnasium as gym

    import envs
    from envs.spec import Trace
    from sim2real.teacher.evaluate import ExpertEvaluator

    run_dir, _ = ppo_run
    teacher = load_teacher(run_dir / "teacher")
    evaluator = ExpertEvaluator("pendulum", None, 2, seed=31)
    ends = evaluator.episodes(teacher, metrics=True)
    evaluator.close()
    env = gym.make(envs.env_id("pendulum"))
    for i, end in enumerate(ends):
        obs, _ = env.reset(seed=31 + i)
        privileged, rewards, done = [], [], False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(teacher.act(obs["privileged"])[0])
            privileged.append(obs["privileged"])
            rewards.append(reward)
            done = terminated or truncated
        expected = envs.TASKS["pendulum"].metrics(Trace(np.stack(privileged), np.array(rewards), terminated))
        assert expected and end.metrics == pytest.approx(expected, rel=1e-5)
    assert ends[0].metrics != ends[1].metrics
