"""Distillation: BC from a small store made here with the scripted pendulum expert, resume, DAgger."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from sim2real.config import Config
from sim2real.data.schema import StoreSpec
from sim2real.data.store import DemoStore
from sim2real.errors import UserError
from sim2real.student import load_student
from sim2real.student.dagger import SOURCE_KIND, beta_for_round, collect_round
from sim2real.student.optim import masked_mse
from sim2real.student.rollout import make_envs, rollout
from sim2real.student.train import Trainer, run
from sim2real.teacher.expert import ScriptedPendulumExpert

TINY = [
    "logger.kind=none", "expert.kind=scripted", "student.n_embd=16", "student.n_head=2",
    "distill.batch_size=32", "distill.warmup_steps=5", "distill.val_every=10", "distill.eval_every=0",
    "distill.eval_episodes=2", "distill.dagger_episodes=3",
]  # fmt: skip


def make_cfg(tmp_path: Path, *overrides: str) -> Config:
    conf = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.from_dotlist([*TINY, *overrides]))
    cfg = OmegaConf.to_object(conf)
    cfg.run_dir = str(tmp_path / "run")
    return cfg


def make_store(path: Path, episodes: int = 6, seed: int = 0) -> Path:
    """A real Zarr store of scripted-expert pendulum episodes under the default randomization."""
    ranges = OmegaConf.to_object(OmegaConf.structured(Config)).task.ranges()
    env_list = make_envs("pendulum", ranges, episodes)
    eps = rollout(env_list, list(range(seed, seed + episodes)), expert=ScriptedPendulumExpert(), beta=1.0)
    with DemoStore.create(path, StoreSpec.from_env(env_list[0])) as store:
        store.append_episodes(eps, source={"kind": "expert", "expert": "scripted:pendulum"})
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("demos") / "demos.zarr")


def test_training_loss_decreases_on_a_small_store(tmp_path, store):
    cfg = make_cfg(
        tmp_path, "distill.steps=150", "distill.checkpoint_every=0", "student.drop_prev_action=false"
    )
    trainer = Trainer(cfg, store, tmp_path / "student")
    batch = trainer.sampler.sample(256)  # fixed windows of the training episodes

    def train_loss() -> float:
        with torch.no_grad():
            pred = trainer.model(batch.obs, batch.mask)
            return float(masked_mse(pred, trainer.model.normalizer.action(batch.action), batch.mask))

    before, val_before = train_loss(), trainer.val_loss()
    trainer.fit()
    assert train_loss() < 0.5 * before
    assert trainer.val_loss() < val_before


def test_distill_from_stored_data_alone_writes_a_loadable_student(tmp_path, store):
    cfg = make_cfg(tmp_path, "distill.steps=20", f"data={store}")
    run(cfg)
    out = Path(cfg.run_dir) / "student"
    assert {"model.safetensors", "config.json", "manifest.json"} <= {p.name for p in out.iterdir()}
    assert not (out / "progress.json").exists()  # finished: nothing left to resume
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "finished" and set(manifest["parents"]) == {"demos"}
    assert np.isfinite(manifest["summary"]["eval_return_mean"])
    model = load_student(out)
    assert model.cfg.obs_names == ["pole/cos", "pole/sin", "prev_action/torque"]
    assert model.normalizer.obs_keep.tolist() == [1.0, 1.0, 0.0]  # prev_action hidden by default
    assert not (Path(cfg.run_dir) / "teacher").exists()


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no demonstration store"):
        run(make_cfg(tmp_path, f"data={tmp_path / 'nope.zarr'}"))


def test_interrupted_and_resumed_training_equals_uninterrupted(tmp_path, store):
    over = (
        "distill.steps=30",
        "distill.checkpoint_every=10",
        "distill.dagger_rounds=1",
        "distill.dagger_steps=10",
    )
    a_store, b_store = make_store(tmp_path / "a.zarr"), make_store(tmp_path / "b.zarr")
    whole = Trainer(
        make_cfg(tmp_path / "a", *over), a_store, tmp_path / "a" / "student", ScriptedPendulumExpert()
    )
    whole.fit()
    cfg_b = make_cfg(tmp_path / "b", *over)
    first = Trainer(cfg_b, b_store, tmp_path / "b" / "student", ScriptedPendulumExpert())
    assert first.fit(stop_at=35) == {"step": 35}  # killed 5 steps into DAgger round 1
    del first
    resumed = Trainer(cfg_b, b_store, tmp_path / "b" / "student", ScriptedPendulumExpert())
    assert resumed.resumed and (resumed.step, resumed.round) == (30, 1)  # the checkpoint after the round
    resumed.fit()
    a = load_file(str(tmp_path / "a" / "student" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "student" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert DemoStore.open(a_store).num_episodes == DemoStore.open(b_store).num_episodes == 6 + 3


def test_dagger_appends_labelled_episodes_tagged_with_their_round(tmp_path):
    path = make_store(tmp_path / "d.zarr", episodes=4)
    cfg = make_cfg(tmp_path, "distill.steps=5")
    trainer = Trainer(cfg, path, tmp_path / "student")
    stats = collect_round(trainer.model, ScriptedPendulumExpert(), cfg, path, r=2)
    with DemoStore.open(path) as demos:
        arrays, sources = demos.load_arrays(), demos.sources
    assert len(arrays["episode_ends"]) == 4 + 3
    src = sources[int(arrays["episode_source"][-1])]
    assert (src["kind"], src["round"], src["beta"]) == (SOURCE_KIND, 2, beta_for_round(cfg.distill, 2))
    assert set(arrays["episode_source"][:4]) == {0}
    new = slice(int(arrays["episode_ends"][3]), None)
    labels = ScriptedPendulumExpert().act(arrays["privileged_obs"][new])
    np.testing.assert_allclose(arrays["expert_action"][new], labels, atol=1e-6)  # every state labelled
    student_driven = ~np.isclose(arrays["action"][new], arrays["expert_action"][new]).all(-1)
    assert 0.3 < student_driven.mean() < 0.95  # β=0.25: the student drives most steps
    assert stats["dagger/round"] == 2


def test_dagger_leaves_a_learned_expert_unchanged(tmp_path):
    from stable_baselines3 import PPO

    from sim2real.teacher.policy import Teacher
    from sim2real.teacher.vec import make_privileged_env

    cfg = make_cfg(tmp_path, "distill.steps=10", "distill.dagger_rounds=2", "distill.dagger_steps=5")
    env = make_privileged_env("pendulum", cfg.task.ranges())
    expert = Teacher(PPO("MlpPolicy", env, n_steps=64, seed=0, device="cpu"), None, name="tiny-ppo")
    before = {k: v.clone() for k, v in expert.model.policy.state_dict().items()}
    path = make_store(tmp_path / "e.zarr", episodes=4)
    Trainer(cfg, path, tmp_path / "student", expert=expert).fit()
    after = expert.model.policy.state_dict()
    for k, v in before.items():
        torch.testing.assert_close(after[k], v, rtol=0, atol=0, msg=k)
    with DemoStore.open(path) as demos:
        rounds = [s.get("round") for s in demos.sources if s["kind"] == SOURCE_KIND]
    assert rounds == [1, 2]


def test_return_conditioned_student_sees_each_episodes_return(tmp_path, store):
    cfg = make_cfg(tmp_path, "distill.steps=10", "student.rtg=true", "student.rtg_quantile=0.5")
    trainer = Trainer(cfg, store, tmp_path / "student")
    returns = trainer.arrays["episode_return"]
    batch = next(trainer.sampler.iterate(10_000))
    got = {round(float(r), 2) for r in batch.rtg[batch.mask]}
    assert got == {round(float(returns[e]), 2) for e in trainer.train_eps}  # one condition per episode
    assert float(trainer.model.normalizer.rtg_target) == pytest.approx(np.median(returns[trainer.train_eps]))
    trainer.fit()
    model = load_student(tmp_path / "student")
    assert model.cfg.rtg and model.state_size() == trainer.model.state_size()


def test_auxiliary_privileged_head_learns_the_state_and_stays_out_of_the_export(tmp_path, store):
    """student.aux_privileged: a head predicts the privileged obs from the history while the action head
    trains; the streaming step (what export runs) computes the same actions with or without it."""
    cfg = make_cfg(tmp_path, "distill.steps=150", "distill.checkpoint_every=0", "student.aux_privileged=1.0")
    trainer = Trainer(cfg, store, tmp_path / "student")
    batch = trainer.sampler.sample(256)
    assert batch.privileged is not None and batch.privileged.shape[:2] == batch.obs.shape[:2]
    target = trainer.loss.aux_target(batch.privileged)  # standardized on the training episodes

    def aux_loss() -> float:
        with torch.no_grad():
            _, aux = trainer.model(batch.obs, batch.mask, aux=True)
            return float(masked_mse(aux, target, batch.mask))

    before = aux_loss()
    trainer.fit()
    assert aux_loss() < 0.8 * before  # angle and velocity from the history (the parameters barely)
    model = trainer.model.eval()
    obs = batch.obs[:4]
    with torch.no_grad():
        window = model(obs, torch.ones(obs.shape[:2], dtype=torch.bool))[:, -1]
        step, state = model.streaming(), torch.zeros(4, model.state_size())
        for t in range(obs.shape[1]):
            action, state = step(obs[:, t], state)
    assert torch.allclose(model.normalizer.unaction(window), action, atol=1e-5)


def test_mlp_student_distils_from_a_store_and_acts(tmp_path, store):
    cfg = make_cfg(tmp_path, "student.arch=mlp", "distill.steps=10")
    Trainer(cfg, store, tmp_path / "student").fit()
    model = load_student(tmp_path / "student")
    obs = torch.zeros(1, 3, model.cfg.obs_dim)  # (B, T, Do)
    assert model.act(obs, torch.ones(1, 3, dtype=torch.bool)).shape == (1, 3, model.cfg.action_dim)


def test_auxiliary_loss_on_an_mlp_student_is_refused(tmp_path, store):
    cfg = make_cfg(tmp_path, "student.arch=mlp", "student.aux_privileged=1.0")
    with pytest.raises(UserError, match="needs a transformer student"):
        Trainer(cfg, store, tmp_path / "student")


def test_keep_best_saves_the_student_of_the_best_evaluation_not_the_last(tmp_path, store):
    """Every evaluation (periodic and final) is offered; the saved student is the best one's."""
    cfg = make_cfg(
        tmp_path,
        "distill.steps=150",
        "distill.eval_every=25",
        "distill.keep=best",
        "distill.checkpoint_every=0",
    )
    trainer = Trainer(cfg, store, tmp_path / "student")
    seen, offer = [], trainer.best_eval.offer

    def recording(model, mean, ci95, step):  # the real offer, recording what each evaluation saw
        seen.append((mean, step, {k: v.detach().clone() for k, v in model.state_dict().items()}))
        offer(model, mean, ci95, step)

    trainer.best_eval.offer = recording
    summary = trainer.fit()
    assert [s for _, s, _ in seen] == [25, 50, 75, 100, 125, 150]
    best = max(range(len(seen)), key=lambda i: seen[i][0])  # the first of equal bests
    assert summary["eval_return_mean"] == seen[best][0]
    # on this tiny store the evaluations peak early (step 50 with the pinned torch): an earlier student kept
    assert summary["kept_step"] == seen[best][1] < 150
    saved = load_file(str(tmp_path / "student" / "model.safetensors"))
    for k, v in saved.items():
        torch.testing.assert_close(v, seen[best][2][k].float(), rtol=0, atol=0, msg=k)
    assert not (tmp_path / "student" / "best").exists()


def test_kept_best_student_is_restored_only_when_it_beats_the_last_and_survives_a_resume(tmp_path):
    from sim2real.student.best import BestEval
    from sim2real.student.checkpoint import build_model

    model = build_model(Trainer(make_cfg(tmp_path, "distill.steps=1"), make_store(tmp_path / "d.zarr", 2),
                                tmp_path / "s")._model_config())  # fmt: skip
    first = {k: v.clone() for k, v in model.state_dict().items()}
    best = BestEval(tmp_path / "student")
    best.offer(model, -300.0, 5.0, 10)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    best.offer(model, -400.0, 5.0, 20)  # worse: not kept
    resumed = BestEval(tmp_path / "student")
    resumed.load(best.state())  # a stopped run's progress records the kept evaluation
    assert resumed.finish(model, -350.0) == {
        "kept_step": 10, "eval_return_mean": -300.0, "eval_return_ci95": 5.0, "last_eval_return_mean": -350.0
    }  # fmt: skip
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, first[k], rtol=0, atol=0, msg=k)
    assert not (tmp_path / "student" / "best").exists()
    later = BestEval(tmp_path / "student")
    later.offer(model, -300.0, 5.0, 10)
    assert later.finish(model, -200.0) is None  # the last evaluation is the best: the last is kept
