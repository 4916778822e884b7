"""DemoStore: round trip, crash safety of the commit order, the writer lock, merge, and bad stores."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from sim2real.data.cli import main as data_main
from sim2real.data.cli import merge
from sim2real.data.lock import lock_path
from sim2real.data.schema import SCHEMA_VERSION, Episode, StoreSpec
from sim2real.data.store import DemoStore
from sim2real.errors import UserError

SPEC = StoreSpec(
    task="pendulum",
    student_names=("pole/cos", "pole/sin", "prev_action/torque"),
    privileged_dim=7,
    action_names=("torque",),
    action_low=(-1.0,),
    action_high=(1.0,),
    control_dt=0.05,
)


def make_episode(rng: np.random.Generator, length: int, seed: int = 0) -> Episode:
    f = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    return Episode(
        f(length, 3), f(length, 7), f(length, 1), f(length, 1), f(length), seed, rng.uniform(size=6)
    )


def write_store(path: Path, lengths: list[int], seed: int = 0) -> list[Episode]:
    rng = np.random.default_rng(seed)
    eps = [make_episode(rng, n, seed=i) for i, n in enumerate(lengths)]
    with DemoStore.create(path, SPEC) as store:
        store.append_episodes(eps[:2], {"kind": "expert", "expert": "test"})
        for ep in eps[2:]:
            store.append_episode(ep, 0)
    return eps


def test_round_trip_returns_exactly_what_was_written(tmp_path):
    eps = write_store(tmp_path / "d.zarr", [5, 17, 3, 40])
    store = DemoStore.open(tmp_path / "d.zarr")
    a = store.load_arrays()
    assert store.num_episodes == 4 and store.num_steps == 65
    np.testing.assert_array_equal(a["episode_ends"], [5, 22, 25, 65])
    for k in ("student_obs", "privileged_obs", "action", "expert_action", "reward"):
        np.testing.assert_array_equal(a[k], np.concatenate([getattr(e, k) for e in eps]))
    np.testing.assert_allclose(a["episode_return"], [e.ret for e in eps], rtol=1e-5)
    np.testing.assert_array_equal(a["episode_seed"], [0, 1, 2, 3])
    np.testing.assert_allclose(a["episode_dynamics"], np.stack([e.dynamics for e in eps]), rtol=1e-6)
    attrs = store.attrs
    assert attrs["schema"] == "sim2real-demos" and attrs["schema_version"] == SCHEMA_VERSION
    assert attrs["student_obs"]["names"] == list(SPEC.student_names) and attrs["action"]["low"] == [-1.0]
    assert store.sources[0]["kind"] == "expert" and (a["episode_source"] == 0).all()
    assert zarr.open_group(tmp_path / "d.zarr", mode="r").metadata.zarr_format == 3


def test_chunks_hold_at_least_a_mebibyte_and_are_compressed(tmp_path):
    write_store(tmp_path / "d.zarr", [50])
    g = zarr.open_group(tmp_path / "d.zarr", mode="r")
    for name in ("data/student_obs", "data/reward", "meta/episode_ends"):
        a = g[name]
        assert np.prod(a.chunks) * a.dtype.itemsize >= 1 << 20
        assert a.compressors, name


def test_uncommitted_tail_is_invisible_and_dropped_on_append(tmp_path):
    path = tmp_path / "d.zarr"
    write_store(path, [5, 6])
    # a crash mid-append: data arrays already grown, episode_ends not yet extended
    g = zarr.open_group(path, mode="r+")
    for name in ("student_obs", "action", "reward"):
        a = g[f"data/{name}"]
        a.resize((a.shape[0] + 9, *a.shape[1:]))
    g["meta/episode_return"].resize((3,))
    assert DemoStore.open(path).load_arrays()["action"].shape == (11, 1)
    with DemoStore.open(path, "a") as store:
        assert g["data/action"].shape[0] == 11 and g["meta/episode_return"].shape[0] == 2
        store.append_episode(make_episode(np.random.default_rng(1), 4), 0)
    assert DemoStore.open(path).episode_ends.tolist() == [5, 11, 15]


def test_second_writer_is_refused_naming_store_and_pid(tmp_path):
    path = tmp_path / "d.zarr"
    write_store(path, [5])
    code = (
        f"from sim2real.data.store import DemoStore; s = DemoStore.open({str(path)!r}, 'a'); "
        "print('locked', flush=True); import time; time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(
            UserError, match=rf"{path.name} is being written by another process \(pid {holder.pid}"
        ):
            DemoStore.open(path, "a")
        DemoStore.open(path).load_arrays()  # readers are never blocked
    finally:
        holder.kill()
        holder.wait()
    with DemoStore.open(path, "a") as store:  # the dead writer's lock is taken over
        assert store.writable
    assert not lock_path(path).exists()


def test_merge_copies_every_shard_with_its_sources(tmp_path):
    a = write_store(tmp_path / "a.zarr", [5, 6], seed=1)
    b = write_store(tmp_path / "b.zarr", [7], seed=2)
    merged = merge(tmp_path / "m.zarr", [tmp_path / "a.zarr", tmp_path / "b.zarr"])
    arrays = DemoStore.open(merged.path).load_arrays()
    np.testing.assert_array_equal(arrays["action"], np.concatenate([e.action for e in a + b]))
    assert arrays["episode_source"].tolist() == [0, 0, 1]
    assert [s["merged_from"] for s in merged.sources] == [str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr")]


def test_data_info_prints_episodes_returns_sources_and_dynamics(tmp_path, capsys):
    write_store(tmp_path / "d.zarr", [5, 6])
    assert data_main(["info", str(tmp_path / "d.zarr")]) == 0
    out = capsys.readouterr().out
    assert "episodes: 2  steps: 11" in out and "return: mean" in out
    assert "expert test" in out and "mass_scale" in out


# ---- bad stores: each names the array and the episode ----------------------------------------------------
def _corrupt(path: Path, how: str) -> None:
    g = zarr.open_group(path, mode="r+")
    if how == "missing":
        del g["data"]["reward"]
    elif how == "truncated":
        g["data/action"].resize((12, 1))
    elif how == "version":
        g.attrs["schema_version"] = 99
    elif how == "meta_short":
        g["meta/episode_seed"].resize((2,))
    elif how == "nan_action":
        g["data/action"][8] = np.nan
    elif how == "lost_chunk":
        (path / "data" / "reward" / "c" / "0").unlink()
    elif how == "cut_chunk":
        chunk = path / "data" / "student_obs" / "c" / "0" / "0"
        chunk.write_bytes(chunk.read_bytes()[:40])


@pytest.mark.parametrize(
    "how, message",
    [
        ("missing", r"missing array data/reward"),
        ("truncated", r"data/action is truncated: 12 rows.*episode 2 onwards"),
        ("version", r"schema_version=99; this sim2real reads schema version 1"),
        ("meta_short", r"meta/episode_seed has 2 entries for 3 committed episodes \(episode 2 onwards"),
        ("nan_action", r"data/action has a non-finite value \(NaN/inf\) at step 3 of episode 1"),
        ("lost_chunk", r"data/reward of episode 0 sums to nan"),
        ("cut_chunk", r"data/student_obs cannot be read"),
    ],
)
def test_bad_store_gives_an_error_naming_array_and_episode(tmp_path, how, message):
    path = tmp_path / "d.zarr"
    write_store(path, [5, 6, 7])
    _corrupt(path, how)
    with pytest.raises(UserError, match=message):
        DemoStore.open(path).load_arrays()


def test_episode_that_does_not_fit_the_spec_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    with DemoStore.create(tmp_path / "d.zarr", SPEC) as store:
        bad = make_episode(rng, 5)
        bad.reward = bad.reward[:4]
        with pytest.raises(ValueError, match=r"episode 0: reward has shape \(4,\), expected \(5,\)"):
            store.append_episode(bad, {"kind": "expert"})
        nan = make_episode(rng, 5)
        nan.action[3] = np.nan
        with pytest.raises(ValueError, match=r"episode 1: action has NaN/inf at step 3"):
            store.append_episodes([make_episode(rng, 5), nan], {"kind": "expert"})
        assert store.num_episodes == 0


WRITER = """
import os, sys
from sim2real.data.store import DemoStore
from tests.test_data_store import SPEC, numbered_episode
path = sys.argv[1]
store = DemoStore.open(path, "a") if os.path.exists(path) else DemoStore.create(path, SPEC)
first = True
while True:
    i = store.num_episodes
    store.append_episodes([numbered_episode(i), numbered_episode(i + 1)], {"kind": "expert"})
    if first:
        print("committed", flush=True)
        first = False
"""


def numbered_episode(i: int) -> Episode:
    """Episode i's content is a function of i alone, so any committed episode can be checked."""
    return make_episode(np.random.default_rng(i), 20 + i % 7, seed=i)


@pytest.mark.slow
def test_writer_killed_at_random_moments_leaves_every_committed_episode_intact(tmp_path):
    path, rng = tmp_path / "d.zarr", np.random.default_rng(0)
    for _ in range(3):
        cmd = [sys.executable, "-c", WRITER, str(path)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])
        # wait for the first commit (a loaded machine may take seconds to get there), then kill the
        # writer at a random moment of its later appends
        assert proc.stdout.readline().strip() == "committed"
        time.sleep(rng.uniform(0.0, 0.4))
        proc.kill()
        proc.wait()
        store = DemoStore.open(path)
        a = store.load_arrays()
        for i in range(store.num_episodes):
            np.testing.assert_array_equal(store.episode(i).action, numbered_episode(i).action)
        assert len(a["episode_ends"]) == store.num_episodes > 0


def test_truncate_keeps_the_first_episodes_exactly(tmp_path):
    path = tmp_path / "d.zarr"
    episodes = write_store(path, [5, 7, 9])
    with DemoStore.open(path, mode="a") as store:
        store.truncate(2)
    store = DemoStore.open(path)
    assert store.num_episodes == 2 and store.num_steps == 12
    arrays = store.load_arrays()
    assert np.array_equal(arrays["student_obs"][5:12], episodes[1].student_obs)
    assert zarr.open_group(str(path), mode="r")["data/student_obs"].shape[0] == 12
