"""`sim2real finetune` on a return-conditioned student: exploration rounds appended to the store (tagged,
hindsight-labelled), stored episodes untouched, the best student kept and exported."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_student_train import make_cfg, make_store

from sim2real.artifacts import sha256_file
from sim2real.data.store import DemoStore
from sim2real.errors import UserError
from sim2real.export import run as export
from sim2real.finetune.config import FinetuneConfig
from sim2real.finetune.online import SOURCE_KIND
from sim2real.finetune.stage import run as finetune
from sim2real.student.checkpoint import MODEL_FILE, load_student, load_weights
from sim2real.student.train import run as distill

ROUNDS_OF_2 = dict(steps=2 * 2 * 200, online_episodes=2, online_steps=5, eval_episodes=1, confirm_episodes=2)


def distilled(tmp_path, *overrides: str):
    store = make_store(tmp_path / "demos.zarr", episodes=4)
    cfg = make_cfg(tmp_path, f"data={store}", "distill.steps=20", *overrides)
    distill(cfg)
    return cfg, store


def test_online_finetune_appends_tagged_episodes_and_never_changes_stored_ones(tmp_path):
    cfg, store = distilled(tmp_path, "student.rtg=true")
    with DemoStore.open(store) as s:
        before = s.load_arrays()
    cfg.finetune = FinetuneConfig(**ROUNDS_OF_2)
    finetune(cfg)
    with DemoStore.open(store) as s:
        after, sources = s.load_arrays(), s.sources
    n = len(before["episode_ends"])
    for key in ("student_obs", "action", "reward"):
        np.testing.assert_array_equal(after[key][: before[key].shape[0]], before[key])  # stored: unchanged
    new = [sources[i] for i in after["episode_source"][n:]]
    assert len(new) == 4 and [t["round"] for t in new] == [1, 1, 2, 2]
    assert {t["kind"] for t in new} == {SOURCE_KIND} and all(t["noise"] == 0.1 for t in new)
    assert np.isnan(after["expert_action"][before["action"].shape[0] :]).all()  # no expert: no labels
    summary = json.loads((tmp_path / "run" / "finetune" / "manifest.json").read_text())["summary"]
    assert summary["env_steps"] == 4 * 200 and summary["dagger_rounds"] == 2
    out, first = (load_weights(tmp_path / "run" / d) for d in ("finetune", "student"))
    confirm = summary.get("confirm")  # none when the best evaluation was the distilled student's own
    distilled_out = confirm is None or not confirm["confirmed"]
    assert all(torch.equal(out[k], first[k]) for k in out) == distilled_out
    best = max(summary["eval_before"], summary["eval_kept"], summary["eval_last"])
    assert summary["eval_kept"] == (summary["eval_before"] if distilled_out else best)


def test_export_takes_the_online_finetuned_student(tmp_path):
    cfg, _ = distilled(tmp_path, "student.rtg=true")
    cfg.finetune = FinetuneConfig(**ROUNDS_OF_2)
    cfg.export.parity_episodes = 1
    finetune(cfg)
    export(cfg)
    policy = json.loads((tmp_path / "run" / "export" / "policy.json").read_text())
    assert policy["checkpoint_sha256"] == sha256_file(tmp_path / "run" / "finetune" / MODEL_FILE)
    assert load_student(tmp_path / "run" / "finetune").cfg.rtg


def test_online_finetune_with_other_student_settings_names_them(tmp_path):
    cfg, _ = distilled(tmp_path, "student.rtg=true")
    cfg.finetune = FinetuneConfig(**ROUNDS_OF_2)
    cfg.student.n_embd = 32
    with pytest.raises(UserError, match=r"other student\.\* settings"):
        finetune(cfg)


def test_method_online_refuses_a_plain_student_and_ppo_tunes_a_return_conditioned_one(tmp_path):
    cfg, _ = distilled(tmp_path / "plain")
    cfg.finetune = FinetuneConfig(**ROUNDS_OF_2, method="online")
    with pytest.raises(UserError, match=r"finetune\.method=online needs a return-conditioned student"):
        finetune(cfg)
    cfg, _ = distilled(tmp_path / "rtg", "student.rtg=true")
    cfg.finetune = FinetuneConfig(
        method="ppo", steps=2 * 4 * 32, n_envs=4, n_steps=32, epochs=1, minibatch=64, critic_warmup=0,
        eval_every=1, eval_episodes=1,
    )  # fmt: skip
    finetune(cfg)
    summary = json.loads((tmp_path / "rtg" / "run" / "finetune" / "manifest.json").read_text())["summary"]
    assert summary["updates"] == 2 and "dagger_rounds" not in summary  # PPO, not online rounds
    assert load_student(tmp_path / "rtg" / "run" / "finetune").cfg.rtg
