"""Training runs as data (`teacher.record_episodes`): every episode the teacher lived through while
learning lands in `<run_dir>/training.zarr`, tagged with the training steps it ended within."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from test_teacher import TINY_SAC, make_cfg

import envs
from sim2real.artifacts import RunLayout
from sim2real.data.cli import summary as summary_of
from sim2real.data.store import DemoStore
from sim2real.teacher.train import train
from sim2real.teacher.vec import make_training_env, resolve_vec_kind

RECORD = ["teacher.record_episodes=true", "teacher.record_every=128"]
PPO_800 = [  # 2 envs of 200-step pendulum episodes: episodes end at 400 and 800 env steps
    "teacher.algo=ppo",
    "teacher.total_timesteps=800",
    "teacher.n_envs=2",
    "teacher.vec_env=dummy",
    "++teacher.ppo.hyperparams.n_steps=64",
    "++teacher.ppo.hyperparams.batch_size=64",
    "++teacher.ppo.hyperparams.n_epochs=1",
]


def stored(run_dir):
    with DemoStore.open(RunLayout(run_dir).training) as store:
        return store.load_arrays(), store.sources, store.spec


def test_recorded_training_episodes_carry_their_step_and_source(tmp_path):
    summary = train(make_cfg(tmp_path, *PPO_800, *RECORD), tmp_path / "teacher").summary
    arrays, sources, spec = stored(tmp_path)
    assert summary["recorded"]["episodes"] == len(arrays["episode_ends"]) == 4
    tags = [sources[i] for i in arrays["episode_source"]]
    assert {(t["kind"], t["algo"]) for t in tags} == {("training", "ppo")}
    ended = [400, 400, 800, 800]  # num_timesteps when each episode ended
    assert all(t["from_step"] < end <= t["step"] for t, end in zip(tags, ended, strict=True))
    assert all(t["step"] - t["from_step"] >= 128 for t in tags[:2])  # commits every >= record_every steps
    assert np.isnan(arrays["expert_action"]).all()  # no expert labelled a training step
    assert np.abs(arrays["action"]).max() <= 1.0
    np.testing.assert_allclose(arrays["episode_return"], arrays["reward"].reshape(4, 200).sum(1), rtol=1e-5)
    assert spec.task == "pendulum" and np.isfinite(arrays["episode_dynamics"]).all()
    with DemoStore.open(RunLayout(tmp_path).training) as store:
        info = summary_of(store)  # `sim2real data info`: one line for the run's commits
    first, last = tags[0]["from_step"], tags[-1]["step"]
    assert f"4 episodes  training ppo: {len(sources)} commits, steps {first}..{last}" in info


def test_a_recorded_episode_replays_exactly_from_its_seed_and_actions(tmp_path):
    cfg = make_cfg(tmp_path, *PPO_800, *RECORD)
    train(cfg, tmp_path / "teacher")
    arrays, _, _ = stored(tmp_path)
    seed = int(arrays["episode_seed"][0])
    assert seed >= 0  # the first episode of each env is seeded
    env = gym.make(envs.env_id("pendulum"), randomization=cfg.task.ranges())  # the ranges it trained on
    obs, _ = env.reset(seed=seed)
    for t in range(200):
        np.testing.assert_array_equal(obs["student"], arrays["student_obs"][t])
        np.testing.assert_array_equal(obs["privileged"], arrays["privileged_obs"][t])
        obs, reward, *_ = env.step(arrays["action"][t])
        assert reward == pytest.approx(arrays["reward"][t], rel=1e-6)


def test_an_interrupted_recording_keeps_its_episodes_and_the_resumed_run_appends(tmp_path, monkeypatch):
    from sim2real.teacher.callbacks import ProgressBar

    original = ProgressBar._on_step

    def interrupt_at_250(self):
        if self.num_timesteps >= 250:
            raise KeyboardInterrupt
        return original(self)

    cfg = make_cfg(tmp_path, *TINY_SAC, "teacher.total_timesteps=500", *RECORD)  # one env
    monkeypatch.setattr(ProgressBar, "_on_step", interrupt_at_250)
    with pytest.raises(SystemExit, match="interrupted"):
        train(cfg, tmp_path / "teacher")
    before, _, _ = stored(tmp_path)
    assert len(before["episode_ends"]) == 1  # the episode that ended at step 200, committed on the way out
    monkeypatch.setattr(ProgressBar, "_on_step", original)
    train(cfg, tmp_path / "teacher")
    after, sources, _ = stored(tmp_path)
    assert len(after["episode_ends"]) == 2
    np.testing.assert_array_equal(after["action"][:200], before["action"])  # stored episodes unchanged
    assert sources[after["episode_source"][1]]["step"] >= 450  # resumed at 250: a fresh episode


def test_recording_needs_gymnasium_envs_and_auto_picks_them():
    assert resolve_vec_kind("auto", 16, "hopper") == "batch"
    assert resolve_vec_kind("auto", 16, "hopper", record=True) != "batch"
    with pytest.raises(ValueError, match=r"teacher\.record_episodes needs teacher\.vec_env=dummy or subproc"):
        make_training_env("hopper", {}, 2, "batch", 0, record=True)
