"""WindowSampler: windows end at the sampled step, never cross an episode start, pad with zeros."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sim2real.data.sampler import WindowSampler, fit_stats, returns_to_go, split_episodes
from sim2real.data.store import DemoStore
from tests.test_data_store import SPEC, write_store

LENGTHS = [3, 10, 1, 6]


def tagged_arrays(lengths=LENGTHS) -> dict[str, np.ndarray]:
    """student_obs row = (episode, step, 1); action = -(episode*100 + step); reward 1 per step."""
    ends = np.cumsum(lengths)
    ep = np.repeat(np.arange(len(lengths)), lengths)
    t = np.concatenate([np.arange(n) for n in lengths])
    n = ends[-1]
    obs = np.stack([ep, t, np.ones(n)], axis=1).astype(np.float32)
    action = -(ep * 100 + t).astype(np.float32)[:, None]
    expert = np.where((ep == 1)[:, None], np.nan, action + 0.5).astype(np.float32)  # episode 1 unlabelled
    return {
        "student_obs": obs,
        "privileged_obs": np.zeros((n, 0), np.float32),
        "action": action,
        "expert_action": expert,
        "reward": np.ones(n, np.float32),
        "episode_ends": ends,
    }


def test_every_window_is_its_own_episode_history_padded_at_the_start():
    k = 4
    arrays = tagged_arrays()
    sampler = WindowSampler(arrays, history=k)
    batches = list(sampler.iterate(batch_size=7))
    obs = torch.cat([b.obs for b in batches])  # (N, K, 3)
    mask = torch.cat([b.mask for b in batches])
    action = torch.cat([b.action for b in batches])
    assert obs.shape == (sum(LENGTHS), k, 3)
    for row, (e, t, _) in enumerate(arrays["student_obs"]):
        for j in range(k):
            step = t - (k - 1) + j
            if step >= 0:
                assert obs[row, j].tolist() == [e, step, 1] and mask[row, j]
                label = -(e * 100 + step) + (0.0 if e == 1 else 0.5)  # executed action where no expert label
                assert action[row, j, 0] == pytest.approx(label)
            else:
                assert not mask[row, j] and (obs[row, j] == 0).all() and action[row, j, 0] == 0


def test_random_windows_never_cross_episodes():
    sampler = WindowSampler(tagged_arrays(), history=8, seed=3)
    b = sampler.sample(512)
    assert b.obs.shape == (512, 8, 3) and b.action.shape == (512, 8, 1) and b.rtg.shape == (512, 8)
    ep = b.obs[..., 0]
    last = ep[:, -1:].expand_as(ep)
    assert (ep[b.mask] == last[b.mask]).all()  # every unpadded step is in the window's own episode
    steps = b.obs[..., 1]
    assert ((steps[:, 1:] - steps[:, :-1])[b.mask[:, :-1]] == 1).all()  # consecutive steps, no gaps
    assert (b.mask.int().diff(dim=1) >= 0).all()  # padding only before the first real step


def test_returns_to_go_restart_at_each_episode():
    rtg = returns_to_go(np.arange(1, 8, dtype=np.float32), np.array([3, 7]))
    np.testing.assert_allclose(rtg, [6, 5, 3, 22, 18, 13, 7])
    sampler = WindowSampler(tagged_arrays(), history=2)
    b = sampler.gather(torch.tensor([0, 2, 3]))
    assert b.rtg.tolist() == [[0, 3], [2, 1], [0, 10]]


def test_episode_subset_and_split_keep_episodes_whole():
    train, val = split_episodes(10, val_fraction=0.2, seed=1)
    assert len(val) == 2 and len(set(train) | set(val)) == 10 and not set(train) & set(val)
    sampler = WindowSampler(tagged_arrays(), history=3, episodes=np.array([3, 1]))
    obs = torch.cat([b.obs for b in sampler.iterate(100)])
    assert len(sampler) == 16 and set(obs[:, -1, 0].tolist()) == {1.0, 3.0}


def test_fit_stats_over_chosen_episodes_with_constant_columns_unscaled():
    stats = fit_stats(tagged_arrays(), np.array([0]))
    np.testing.assert_allclose(stats["obs_mean"], [0, 1, 1])
    np.testing.assert_allclose(stats["obs_std"], [1, np.std([0, 1, 2]), 1], rtol=1e-6)
    np.testing.assert_allclose(stats["action_mean"], [-0.5])


def test_sampler_reads_a_store_directly(tmp_path):
    write_store(tmp_path / "d.zarr", [5, 9])
    sampler = WindowSampler(DemoStore.open(tmp_path / "d.zarr"), history=4)
    assert sampler.sample(16).obs.shape == (16, 4, SPEC.student_dim) and sampler.has_rewards
