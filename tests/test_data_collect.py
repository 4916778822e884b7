"""`sim2real collect`: episodes replay from their seeds, DART labels stay clean, filters keep the best,
and a collection killed with SIGKILL resumes to the target without touching committed episodes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest

import envs
from sim2real.config import Config, LoggerConfig
from sim2real.data.collect import run
from sim2real.data.config import CollectConfig
from sim2real.data.store import DemoStore
from sim2real.errors import UserError
from sim2real.teacher.config import ExpertConfig
from sim2real.teacher.expert import ScriptedPendulumExpert


def config(run_dir, **collect) -> Config:
    c = CollectConfig(**{"episodes": 6, "n_envs": 3, "progress": False, **collect})
    return Config(
        run_dir=str(run_dir), expert=ExpertConfig(kind="scripted"), collect=c, logger=LoggerConfig("none")
    )


def test_collected_episode_replays_from_its_seed_and_dynamics(tmp_path):
    run(config(tmp_path, episodes=4))
    store = DemoStore.open(tmp_path / "demos.zarr")
    a = store.load_arrays()
    assert store.num_episodes == 4 and store.num_steps == 800 and store.spec.task == "pendulum"
    np.testing.assert_array_equal(a["action"], a["expert_action"])  # no noise: executed = label
    assert len(set(a["episode_seed"].tolist())) == 4
    ep = store.episode(2)
    env = gym.make(envs.env_id("pendulum"))
    obs, info = env.reset(seed=ep.seed)
    np.testing.assert_allclose(
        ep.dynamics, [info["dynamics"][n] for n in store.spec.dynamics_names], rtol=1e-6
    )
    for t in range(ep.length):
        np.testing.assert_array_equal(obs["student"], ep.student_obs[t])
        np.testing.assert_allclose(
            ScriptedPendulumExpert().act(obs["privileged"][None])[0], ep.expert_action[t]
        )
        obs, reward, *_ = env.step(ep.action[t])
        assert reward == pytest.approx(ep.reward[t], rel=1e-5)
    assert (tmp_path / "demos.zarr" / "manifest.json").is_file()


def test_dart_noise_perturbs_the_executed_action_but_not_the_label(tmp_path):
    run(config(tmp_path, episodes=3, action_noise=0.3))
    a = DemoStore.open(tmp_path / "demos.zarr").load_arrays()
    diff = a["action"] - a["expert_action"]
    assert 0.15 < np.abs(diff[np.abs(a["action"][:, 0]) < 1]).mean() < 0.4
    assert np.abs(a["action"]).max() <= 1.0
    np.testing.assert_array_equal(a["student_obs"][1:200, 2], a["action"][:199, 0])  # prev_action = executed


def test_keep_top_fraction_commits_the_best_of_each_block(tmp_path):
    noisy = dict(action_noise=1.0, n_envs=4)
    run(config(tmp_path / "best", episodes=3, keep_top_fraction=0.125, filter_block=8, **noisy))
    run(config(tmp_path / "all", episodes=24, **noisy))  # the same attempts (same seeds), all kept
    best = DemoStore.open(tmp_path / "best" / "demos.zarr")
    assert best.sources[0]["keep_top_fraction"] == 0.125 and best.sources[0]["filter_block"] == 8
    everything = DemoStore.open(tmp_path / "all" / "demos.zarr")
    returns = everything.meta("episode_return")[np.argsort(everything.meta("episode_seed"))].reshape(3, 8)
    np.testing.assert_array_equal(best.meta("episode_seed"), 8 * np.arange(3) + returns.argmax(axis=1))
    np.testing.assert_allclose(best.meta("episode_return"), returns.max(axis=1))


def test_existing_store_needs_resume(tmp_path):
    run(config(tmp_path, episodes=2))
    with pytest.raises(UserError, match=r"already holds 2 episodes; pass collect.resume=true"):
        run(config(tmp_path, episodes=4))
    run(config(tmp_path, episodes=4, resume=True))
    store = DemoStore.open(tmp_path / "demos.zarr")
    assert store.num_episodes == 4 and len(store.sources) == 1
    assert len(set(store.meta("episode_seed").tolist())) == 4  # the resumed run continued the seed sequence


@pytest.mark.slow
def test_collection_killed_with_sigkill_resumes_to_target(tmp_path):
    args = "task=pendulum expert=scripted logger=none collect.episodes=60 collect.commit_seconds=0"
    cmd = [
        sys.executable,
        "-m",
        "sim2real",
        "collect",
        *args.split(),
        f"run_dir={tmp_path}",
        "collect.progress=false",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path, committed = tmp_path / "demos.zarr", 0
    try:
        deadline = time.monotonic() + 240  # a loaded CI machine imports torch slowly
        while committed < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            committed = DemoStore.open(path).num_episodes if (path / "zarr.json").exists() else 0
        assert proc.poll() is None, "collection finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    before = DemoStore.open(path).load_arrays()
    assert 2 <= len(before["episode_ends"]) < 60
    run(config(tmp_path, episodes=60, resume=True))
    after = DemoStore.open(path).load_arrays()
    assert len(after["episode_ends"]) == 60
    n, e = int(before["episode_ends"][-1]), len(before["episode_ends"])
    for k in ("student_obs", "privileged_obs", "action", "expert_action", "reward"):
        np.testing.assert_array_equal(after[k][:n], before[k])
    for k in ("episode_ends", "episode_seed", "episode_return", "episode_dynamics"):
        np.testing.assert_array_equal(after[k][:e], before[k])
    assert len(set(after["episode_seed"].tolist())) == 60


class _Flail:
    """A random Hopper controller: episodes end by falling, at uneven lengths."""

    name = "flail"

    def __init__(self):
        self.rng = np.random.default_rng(0)

    def act(self, privileged_obs: np.ndarray) -> np.ndarray:
        return self.rng.uniform(-1, 1, (len(privileged_obs), 3)).astype(np.float32)


def test_a_finite_attempt_stream_of_uneven_episodes_runs_to_its_end():
    """Envs left without an attempt keep stepping in lockstep; when their throwaway episode ends they are
    reset too (autoreset is off), so the others finish their episodes."""
    from sim2real.data.rollout import VectorRollout, make_vector_env

    venv = make_vector_env("hopper", {}, 8)  # 8 envs, 2 attempts: six idle from the start
    got = list(VectorRollout(venv, _Flail()).episodes(iter(enumerate(range(100, 102)))))
    venv.close()
    assert sorted(a for a, _ in got) == [0, 1]
    assert all(ep.seed == 100 + a for a, ep in got)
