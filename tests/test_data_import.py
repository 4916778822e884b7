"""Imports of foreign layouts written here as their own tools write them, and their bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

from sim2real.data.config import ImportKeys
from sim2real.data.importers import import_dataset
from sim2real.data.sampler import WindowSampler
from sim2real.data.store import DemoStore
from sim2real.errors import UserError

LENGTHS = [57, 120, 33]


def foreign(seed: int = 0, lengths=LENGTHS) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    return {
        "obs": rng.normal(size=(n, 5)).astype("f4"),
        "act": rng.uniform(-1, 1, size=(n, 2)).astype("f4"),
        "rew": rng.normal(size=n).astype("f4"),
        "ends": np.cumsum(lengths).astype("i8"),
    }


def write_dp(path: Path, d: dict, zarr_format: int) -> Path:
    g = zarr.open_group(path, mode="w", zarr_format=zarr_format)
    g.create_group("data")
    g.create_group("meta")
    g["data"].create_array("state", data=d["obs"], chunks=(64, d["obs"].shape[1]))
    g["data"].create_array("action", data=d["act"], chunks=(64, d["act"].shape[1]))
    g["data"].create_array("reward", data=d["rew"], chunks=(64,))
    g["meta"].create_array("episode_ends", data=d["ends"])
    return path


def write_d4rl(path: Path, d: dict, tail: int = 0) -> Path:
    n = len(d["act"])
    terminals, timeouts = np.zeros(n, bool), np.zeros(n, bool)
    terminals[d["ends"][0] - 1] = True  # episode 0 ends by falling over, the others by time limit
    timeouts[d["ends"][1:] - 1] = True
    with h5py.File(path, "w") as f:
        f["observations"], f["actions"], f["rewards"] = d["obs"], d["act"], d["rew"]
        f["terminals"], f["timeouts"] = terminals, timeouts
        f["infos/qpos"] = d["obs"][:, :3]
    return path


def write_minari(root: Path, d: dict) -> Path:
    (root / "data").mkdir(parents=True)
    meta = {"dataset_id": "test/pend-v0", "total_episodes": len(d["ends"])}
    (root / "metadata.json").write_text(json.dumps(meta))
    starts = np.concatenate([[0], d["ends"][:-1]])
    with h5py.File(root / "data" / "main_data.hdf5", "w") as f:
        for i, (a, b) in enumerate(zip(starts, d["ends"], strict=True)):
            g = f.create_group(f"episode_{i}")
            final = np.full((1, d["obs"].shape[1]), 9.0, "f4")  # the final observation: no action
            g["observations"] = np.concatenate([d["obs"][a:b], final])
            g["actions"], g["rewards"] = d["act"][a:b], d["rew"][a:b]
            g["terminations"] = (
                np.eye(1, b - a, b - a - 1, dtype=bool)[0] if i == 0 else np.zeros(b - a, bool)
            )
            g["truncations"] = np.zeros(b - a, bool)
    return root


def assert_imported(out: Path, d: dict, n_episodes: int = 3) -> DemoStore:
    store = DemoStore.open(out)
    a = store.load_arrays()
    n = int(d["ends"][-1])
    np.testing.assert_array_equal(a["episode_ends"], d["ends"][:n_episodes])
    np.testing.assert_array_equal(a["student_obs"], d["obs"][:n])
    np.testing.assert_array_equal(a["action"], d["act"][:n])
    np.testing.assert_array_equal(a["reward"], d["rew"][:n])
    assert np.isnan(a["expert_action"]).all()
    assert store.sources[0]["kind"] == "import" and len(store.sources[0]["episode_ids"]) == n_episodes
    return store


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_diffusion_policy_store_imports_exactly(tmp_path, zarr_format):
    d = foreign()
    src = write_dp(tmp_path / "dp.zarr", d, zarr_format)
    keys = ImportKeys(student_obs="state", action="action", reward="reward")
    store = assert_imported(import_dataset(src, "diffusion_policy", tmp_path / "out.zarr", keys).path, d)
    assert store.spec.privileged_dim == 0 and store.spec.student_names[0] == "state[0]"
    assert store.sources[0]["format"] == "diffusion_policy" and store.sources[0]["path"] == str(src.resolve())
    batch = WindowSampler(store, history=4).sample(32)  # labels fall back to the recorded action
    assert batch.mask[:, -1].all() and np.isfinite(batch.action.numpy()).all()


def test_d4rl_file_splits_at_terminals_and_timeouts(tmp_path):
    d = foreign()
    src = write_d4rl(tmp_path / "d4rl.hdf5", d)
    keys = ImportKeys(privileged_obs="infos/qpos")
    store = assert_imported(import_dataset(src, "d4rl_hdf5", tmp_path / "out.zarr", keys).path, d)
    a = store.load_arrays()
    assert a["episode_terminated"].tolist() == [True, False, False]
    np.testing.assert_array_equal(a["privileged_obs"], d["obs"][:, :3])


def test_minari_dataset_drops_the_final_observation(tmp_path):
    d = foreign()
    src = write_minari(tmp_path / "pend-v0", d)
    store = assert_imported(import_dataset(src, "minari", tmp_path / "out.zarr").path, d)
    assert store.sources[0]["episode_ids"] == ["episode_0", "episode_1", "episode_2"]
    assert store.load_arrays()["episode_terminated"].tolist() == [True, False, False]


def test_import_of_a_known_task_takes_its_names_and_bounds(tmp_path):
    d = foreign()
    d["obs"], d["act"] = d["obs"][:, :3], d["act"][:, :1]
    src = write_d4rl(tmp_path / "d4rl.hdf5", d)
    store = import_dataset(src, "d4rl_hdf5", tmp_path / "out.zarr", task="pendulum")
    assert store.spec.task == "pendulum" and store.spec.action_names == ("torque",)


# ---- bad input: an error naming the array and the episode --------------------------------------------------
def test_dp_missing_key_lists_the_arrays(tmp_path):
    src = write_dp(tmp_path / "dp.zarr", foreign(), 2)
    with pytest.raises(
        UserError, match=r"missing array data/obs \(arrays in data/: \['action', 'reward', 'state'\]"
    ):
        import_dataset(
            src, "diffusion_policy", tmp_path / "o.zarr", ImportKeys(student_obs="obs", action="action")
        )


def test_dp_truncated_array_names_the_first_missing_episode(tmp_path):
    d = foreign()
    g = zarr.open_group(write_dp(tmp_path / "dp.zarr", d, 2), mode="r+")
    g["data/action"].resize((100, 2))
    with pytest.raises(UserError, match=r"data/action is truncated: 100 rows.*needs 210 \(episode 1 onwards"):
        import_dataset(g.store.root, "diffusion_policy", tmp_path / "o.zarr", ImportKeys("state", "action"))


def test_nan_action_names_array_episode_and_step(tmp_path):
    d = foreign()
    d["act"][57 + 4, 1] = np.nan
    src = write_dp(tmp_path / "dp.zarr", d, 3)
    with pytest.raises(UserError, match=r"action has NaN/inf at step 4 of episode 1"):
        import_dataset(src, "diffusion_policy", tmp_path / "o.zarr", ImportKeys("state", "action"))
    assert not (tmp_path / "o.zarr").exists()


def test_d4rl_mismatched_lengths_are_refused(tmp_path):
    d = foreign()
    src = write_d4rl(tmp_path / "d.hdf5", d)
    with h5py.File(src, "r+") as f:
        del f["rewards"]
        f["rewards"] = d["rew"][:-5]
    with pytest.raises(UserError, match=r"mismatched lengths of the flat arrays: .*'rewards': 205"):
        import_dataset(src, "d4rl_hdf5", tmp_path / "o.zarr")


def test_minari_episode_with_wrong_observation_count_is_named(tmp_path):
    src = write_minari(tmp_path / "m", foreign())
    with h5py.File(src / "data" / "main_data.hdf5", "r+") as f:
        obs = f["episode_2/observations"][()]
        del f["episode_2/observations"]
        f["episode_2/observations"] = obs[:-3]
    with pytest.raises(
        UserError, match=r"mismatched lengths in episode_2: observations has 31 rows for 33 actions"
    ):
        import_dataset(src, "minari", tmp_path / "o.zarr")


def test_unknown_format_and_existing_output_are_refused(tmp_path):
    src = write_dp(tmp_path / "dp.zarr", foreign(), 3)
    with pytest.raises(UserError, match=r"format='rlds' is not one of diffusion_policy, d4rl_hdf5, minari"):
        import_dataset(src, "rlds", tmp_path / "o.zarr")
    import_dataset(src, "diffusion_policy", tmp_path / "o.zarr", ImportKeys("state", "action"))
    with pytest.raises(UserError, match=r"already exists"):
        import_dataset(src, "diffusion_policy", tmp_path / "o.zarr", ImportKeys("state", "action"))
