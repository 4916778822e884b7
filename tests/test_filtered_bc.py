"""Filtered BC (`distill.keep_top_fraction`): the best episodes of any store by return, chosen before the
train/val split, DAgger episodes always kept, recorded in the student's manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_data_store import SPEC, make_episode
from test_student_train import make_cfg

from sim2real.checks import ConfigError
from sim2real.data.store import DemoStore
from sim2real.errors import UserError
from sim2real.student.config import DistillConfig
from sim2real.student.dagger import SOURCE_KIND
from sim2real.student.train import Trainer, run

RETURNS = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0, 4.0, 6.0, 0.0]  # episode i has return RETURNS[i]
LENGTH = 20


def write_store(path: Path, returns=RETURNS, dagger_returns=(), rewards: bool = True) -> Path:
    """Episodes of known returns (reward return/LENGTH per step), then DAgger-tagged ones."""
    rng = np.random.default_rng(0)

    def episode(ret: float):
        ep = make_episode(rng, LENGTH)
        ep.reward = np.full(LENGTH, ret / LENGTH if rewards else np.nan, np.float32)
        return ep

    with DemoStore.create(path, SPEC) as store:
        store.append_episodes([episode(r) for r in returns], {"kind": "expert", "expert": "test"})
        if dagger_returns:
            store.append_episodes([episode(r) for r in dagger_returns], {"kind": SOURCE_KIND, "round": 1})
    return path


def trainer(tmp_path: Path, store: Path, fraction: float, *overrides: str) -> Trainer:
    cfg = make_cfg(tmp_path, f"distill.keep_top_fraction={fraction}", "distill.eval_episodes=0", *overrides)
    return Trainer(cfg, store, tmp_path / "student")


def used(t: Trainer) -> list[int]:
    return sorted({*t.train_eps.tolist(), *t.val_eps.tolist()})


def test_filter_keeps_exactly_the_top_episodes_by_return(tmp_path):
    t = trainer(tmp_path, write_store(tmp_path / "d.zarr"), 0.3, "distill.val_fraction=0.34")
    assert used(t) == [2, 4, 6]  # returns 9, 7, 8
    assert len(t.val_eps) == 1 and not set(t.train_eps) & set(t.val_eps)  # split after the filter
    assert sorted(t.arrays["episode_return"][used(t)].tolist()) == [7.0, 8.0, 9.0]
    assert t.filter == {
        "keep_top_fraction": 0.3, "episodes_kept": 3, "episodes_ranked": 10, "return_threshold": 7.0,
        "dagger_episodes_kept": 0,
    }  # fmt: skip
    steps = np.concatenate([np.arange(e * LENGTH, (e + 1) * LENGTH) for e in t.train_eps])
    np.testing.assert_array_equal(t.sampler.obs[:-1].numpy(), t.arrays["student_obs"][steps])  # what trains


def test_a_fraction_keeps_ceil_of_its_share_and_all_keeps_the_unfiltered_split(tmp_path):
    store = write_store(tmp_path / "d.zarr")
    assert used(trainer(tmp_path / "a", store, 0.25)) == [2, 4, 6]  # ceil(2.5)
    everything = trainer(tmp_path / "b", store, 1.0)
    assert everything.filter is None and used(everything) == list(range(10))


def test_dagger_episodes_are_kept_whatever_their_return_and_do_not_set_the_threshold(tmp_path):
    t = trainer(tmp_path, write_store(tmp_path / "d.zarr", dagger_returns=(-50.0, 100.0)), 0.2)
    assert used(t) == [2, 6, 10, 11]  # the best 2 of the 10 ranked, and both DAgger episodes
    assert t.filter["return_threshold"] == 8.0 and t.filter["dagger_episodes_kept"] == 2


def test_student_manifest_records_the_filter(tmp_path):
    store = write_store(tmp_path / "d.zarr")
    cfg = make_cfg(tmp_path, "distill.steps=3", "distill.keep_top_fraction=0.5", f"data={store}",
                   "distill.eval_episodes=0")  # fmt: skip
    run(cfg)
    manifest = json.loads((Path(cfg.run_dir) / "student" / "manifest.json").read_text())
    assert manifest["config"]["distill"]["keep_top_fraction"] == 0.5
    f = manifest["summary"]["filter"]
    assert (f["episodes_kept"], f["episodes_ranked"], f["return_threshold"]) == (5, 10, 5.0)


def test_filter_on_a_store_without_returns_is_refused(tmp_path):
    store = write_store(tmp_path / "d.zarr", rewards=False)
    with pytest.raises(UserError, match=r"ranks episodes by return, but 10 of the 10 episodes .* have none"):
        trainer(tmp_path, store, 0.5)
    assert trainer(tmp_path / "all", store, 1.0).filter is None  # without filtering, returns are not needed


def test_filter_keeping_fewer_than_two_episodes_is_refused(tmp_path):
    with pytest.raises(UserError, match=r"keeps 1 of the 10 episodes .* needs at least 2"):
        trainer(tmp_path, write_store(tmp_path / "d.zarr"), 0.05)


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5])
def test_fraction_outside_0_1_is_a_config_error(bad):
    with pytest.raises(ConfigError, match=r"distill\.keep_top_fraction="):
        DistillConfig(keep_top_fraction=bad)
