"""`sim2real finetune`: PPO on the student with exact action recompute, GAE, resume, and export's pick."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from test_export import make_student

import envs
from envs import lockstep
from sim2real.artifacts import RunLayout, sha256_file
from sim2real.checks import ConfigError
from sim2real.config import Config, LoggerConfig
from sim2real.errors import UserError
from sim2real.export import run as export
from sim2real.finetune.config import FinetuneConfig
from sim2real.finetune.confirm import CONFIRM_SEED_BASE
from sim2real.finetune.ppo import Critic
from sim2real.finetune.rollout import EnvRunner, Rollout, _log_prob, gae, windows
from sim2real.finetune.stage import STATE_JSON, Finetuner
from sim2real.finetune.stage import run as finetune
from sim2real.pipeline import _runs
from sim2real.student.checkpoint import MODEL_FILE, load_student, load_weights, save_student
from sim2real.student.rollout import evaluate


def small(run_dir, **kw) -> Config:
    cfg = Config(run_dir=str(run_dir), logger=LoggerConfig(kind="none"))
    cfg.finetune = FinetuneConfig(
        steps=4 * 32 * 6, n_envs=4, n_steps=32, epochs=2, minibatch=64, critic_warmup=1, eval_every=3,
        eval_episodes=2, checkpoint_every=2, **{"confirm_episodes": 2, **kw},
    )  # fmt: skip
    cfg.export.parity_episodes = 1
    return cfg


def runner(model, n: int = 3) -> EnvRunner:
    sims = lockstep.make("pendulum", None, n)
    return EnvRunner(sims, model, iter(range(100, 10_000)), model.receptive_field() - 1)


def test_windows_recompute_exactly_the_actions_the_streaming_student_sampled(tmp_path):
    """PPO's ratio starts at 1 only if the update sees the policy that acted: windows of the receptive
    field over the rollout (and the context before it, across an episode reset) give the streaming means."""
    model = make_student(tmp_path / "student")
    critic = Critic(gym.make(envs.env_id("pendulum")).observation_space["privileged"].shape[0])
    log_std = torch.full((1,), np.log(0.3))
    run = runner(model)
    torch.manual_seed(0)
    run.collect(150, log_std, critic, 0.99)  # the first episodes (200 steps) end inside the next rollout
    r = run.collect(120, log_std, critic, 0.99)
    assert r.done.any() and (r.t_in_ep < model.receptive_field()).any()
    T, N = r.t_in_ep.shape
    t, n = torch.arange(T).repeat_interleave(N), torch.arange(N).repeat(T)
    obs, valid = windows(r, t, n)
    with torch.no_grad():
        mean = model(obs, valid)[:, -1]
    logp = _log_prob(r.action[t, n], mean, log_std)
    assert torch.allclose(logp, r.logp[t, n], atol=1e-4)


def test_gae_does_not_bootstrap_across_an_episode_end():
    ones = torch.ones(3, 1)
    r = Rollout(
        obs=torch.zeros(3, 1, 1), t_in_ep=torch.zeros(3, 1, dtype=torch.long),
        privileged=torch.zeros(3, 1, 1), action=torch.zeros(3, 1, 1), logp=torch.zeros(3, 1),
        value=torch.zeros(3, 1), reward=ones,
        done=torch.tensor([[False], [True], [False]]), last_value=torch.full((1,), 10.0),
    )  # fmt: skip
    adv, ret = gae(r, gamma=0.5, lam=1.0)
    # step 1 ends its episode: 1; step 0: 1 + 0.5·1; step 2 bootstraps the last value: 1 + 0.5·10
    assert ret[:, 0].tolist() == pytest.approx([1.5, 1.0, 6.0])
    assert torch.equal(adv, ret)  # values are zero


@pytest.mark.slow
def test_stopped_finetune_resumes_keeps_its_best_and_export_takes_it(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    make_student(run_dir / "student")
    cfg = small(run_dir)
    real = Finetuner._update_once

    def stop_after_four(self, bar, recent):
        if self.update_no == 4:
            raise KeyboardInterrupt  # as a stop signal would, after the checkpoint of update 4
        return real(self, bar, recent)

    monkeypatch.setattr(Finetuner, "_update_once", stop_after_four)
    with pytest.raises(KeyboardInterrupt):
        finetune(cfg)
    assert json.loads((run_dir / "finetune" / STATE_JSON).read_text())["update"] == 4
    monkeypatch.setattr(Finetuner, "_update_once", real)
    finetune(cfg)
    manifest = json.loads((run_dir / "finetune" / "manifest.json").read_text())
    summary = manifest["summary"]
    assert manifest["status"] == "finished" and summary["updates"] == 6 and summary["resumed"]
    assert summary["eval_kept"] >= summary["eval_before"]  # the distilled student is a candidate too
    assert not (run_dir / "finetune" / STATE_JSON).exists()  # finished: nothing left to resume
    export(cfg)
    policy = json.loads((run_dir / "export" / "policy.json").read_text())
    assert policy["checkpoint_sha256"] == sha256_file(run_dir / "finetune" / MODEL_FILE)
    assert load_student(run_dir / "finetune").cfg.obs_names == load_student(run_dir / "student").cfg.obs_names


@pytest.mark.parametrize("distilled_seed, kept_seed", [(0, 1), (1, 0)])  # swapped: one keeps, one reverts
def test_kept_student_stays_only_if_it_beats_the_distilled_one_on_fresh_episodes(
    tmp_path, distilled_seed, kept_seed
):
    run_dir = tmp_path / "run"
    make_student(run_dir / "student", seed=distilled_seed)
    cfg = small(run_dir, confirm_episodes=3)
    ft = Finetuner(cfg, run_dir / "student", run_dir / "finetune", "sha")
    ft.runner.close()
    kept = make_student(tmp_path / "other", seed=kept_seed)  # what a best evaluation at update 6 kept
    save_student(run_dir / "finetune", kept)
    ft.before, ft.best, ft.best_update = -1000.0, -900.0, 6
    seeds = [CONFIRM_SEED_BASE + i for i in range(3)]
    ranges = cfg.task.ranges()
    ret = {name: float(evaluate("pendulum", ranges, seeds, load_student(d).eval()).mean())
           for name, d in (("kept", tmp_path / "other"), ("distilled", run_dir / "student"))}  # fmt: skip
    assert ret["kept"] != ret["distilled"]
    result = ft._confirm()
    assert result["kept"] == pytest.approx(ret["kept"])
    assert result["distilled"] == pytest.approx(ret["distilled"])
    winner = tmp_path / "other" if ret["kept"] > ret["distilled"] else run_dir / "student"
    out, best = load_weights(run_dir / "finetune"), load_weights(winner)
    assert out.keys() == best.keys() and all(torch.equal(out[k], best[k]) for k in out)
    assert result["confirmed"] == (ret["kept"] > ret["distilled"])
    assert ft.best_update == (6 if result["confirmed"] else 0)


def test_finetune_without_steps_or_student_is_a_clear_error(tmp_path):
    cfg = small(tmp_path)
    with pytest.raises(FileNotFoundError, match="no student"):
        finetune(cfg)
    cfg.finetune = FinetuneConfig()
    with pytest.raises(UserError, match=r"finetune\.steps=0"):
        finetune(cfg)
    with pytest.raises(ConfigError, match=r"finetune\.n_envs=0"):
        FinetuneConfig(n_envs=0)


def test_pipeline_runs_finetune_only_when_it_has_steps():
    cfg = Config()
    assert not _runs(cfg, "finetune") and _runs(cfg, "distill")
    cfg.finetune = FinetuneConfig(steps=1000)
    assert _runs(cfg, "finetune")
    assert RunLayout("r").final_student(cfg.finetune.enabled) == RunLayout("r").finetune
