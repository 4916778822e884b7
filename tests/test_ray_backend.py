"""The Ray backend (`collect.backend=ray`, `validate.backend=ray`) against a local 2-CPU Ray instance:
the same episodes as the local backend, in the same order with the same sources; completed shards
reused on resume; results of validation equal; bad backend names and addresses refused in one line.

The error tests come first: they must run before the module's Ray instance starts, because an
initialized Ray is used as is whatever address is configured.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import ray
from test_deploy_policy import tiny_export

from envs import parameters as dr
from sim2real.config import Config, LoggerConfig
from sim2real.data import ray_collect
from sim2real.data.collect import _absolute, run
from sim2real.data.config import CollectConfig
from sim2real.data.rollout import task_spec
from sim2real.data.store import DemoStore
from sim2real.errors import UserError
from sim2real.teacher.config import ExpertConfig
from sim2real.validate import scenarios
from sim2real.validate import stage as validate_stage
from sim2real.validate.config import ValidateConfig
from sim2real.validate.rollout import PolicySource, run_all


def config(run_dir, **collect) -> Config:
    c = CollectConfig(**{"episodes": 6, "n_envs": 3, "progress": False, **collect})
    return Config(
        run_dir=str(run_dir), expert=ExpertConfig(kind="scripted"), collect=c, logger=LoggerConfig("none")
    )


def assert_same_store(a_path, b_path) -> None:
    a, b = DemoStore.open(a_path), DemoStore.open(b_path)
    arrays_a, arrays_b = a.load_arrays(), b.load_arrays()
    assert arrays_a.keys() == arrays_b.keys()
    for k in arrays_a:
        np.testing.assert_array_equal(arrays_a[k], arrays_b[k], err_msg=k)
    drop = ("created",)
    assert [{k: v for k, v in s.items() if k not in drop} for s in a.sources] == [
        {k: v for k, v in s.items() if k not in drop} for s in b.sources
    ]


def test_unknown_backend_is_refused_naming_the_key(tmp_path):
    with pytest.raises(
        UserError, match=r"collect\.backend='dask': unknown backend; expected one of local, ray"
    ):
        run(config(tmp_path, backend="dask"))
    assert not (tmp_path / "demos.zarr").exists()


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1", "no-port-here", "auto"])
def test_unreachable_ray_address_is_one_line_naming_the_key(tmp_path, monkeypatch, address):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # where `auto` looks first (a dead cluster)
    assert not ray.is_initialized()
    with pytest.raises(UserError, match=r"^collect\.ray_address=") as err:
        run(config(tmp_path, backend="ray", ray_address=address))
    assert "\n" not in str(err.value) and address in str(err.value)
    assert not ray.is_initialized() and not (tmp_path / "demos.zarr").exists()


def test_unknown_validate_backend_is_refused_naming_the_key(tmp_path):
    tiny_export(tmp_path / "export")
    cfg = Config(run_dir=str(tmp_path), validate=ValidateConfig(backend="spark"), logger=LoggerConfig("none"))
    with pytest.raises(UserError, match=r"validate\.backend='spark'"):
        validate_stage.run(cfg)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def test_ray_collection_equals_local_collection(tmp_path, local_ray):
    noisy = {"action_noise": 0.3}  # DART streams are per episode, so they must match too
    run(config(tmp_path / "local", **noisy))
    run(config(tmp_path / "ray", backend="ray", workers=2, n_envs=2, **noisy))
    assert_same_store(tmp_path / "local" / "demos.zarr", tmp_path / "ray" / "demos.zarr")
    store = DemoStore.open(tmp_path / "ray" / "demos.zarr")
    assert store.num_episodes == 6 and np.all(np.diff(store.meta("episode_seed")) > 0)  # attempt order
    assert not (tmp_path / "ray" / "demos.zarr.shards").exists()  # shards merged and removed


def test_ray_filtered_collection_keeps_the_same_best_episodes(tmp_path, local_ray):
    # blocks of 4 keep their best 2; 3 episodes: the second block keeps only its best one
    filt = {"episodes": 3, "keep_top_fraction": 0.5, "filter_block": 4, "action_noise": 1.0}
    run(config(tmp_path / "local", n_envs=4, **filt))
    run(config(tmp_path / "ray", backend="ray", n_envs=2, **filt))
    assert_same_store(tmp_path / "local" / "demos.zarr", tmp_path / "ray" / "demos.zarr")


def test_ray_collection_with_rejections_runs_more_rounds_to_the_same_episodes(tmp_path, local_ray):
    run(config(tmp_path / "local", episodes=5, min_return=-150.0))
    run(config(tmp_path / "ray", episodes=5, min_return=-150.0, backend="ray"))
    assert_same_store(tmp_path / "local" / "demos.zarr", tmp_path / "ray" / "demos.zarr")
    store = DemoStore.open(tmp_path / "ray" / "demos.zarr")
    seeds = store.meta("episode_seed")
    assert seeds[-1] > 4 and np.all(store.meta("episode_return") >= -150.0)  # some attempts rejected


def test_ray_resume_reuses_completed_shards_and_matches_local(tmp_path, local_ray, monkeypatch):
    run(config(tmp_path / "local"))
    cfg = config(tmp_path / "ray", episodes=2)
    run(cfg)  # a first run: 2 episodes; a ray run to 6 was then killed after one shard finished
    with DemoStore.open(tmp_path / "ray" / "demos.zarr") as store:
        entry = {k: v for k, v in store.sources[0].items() if k not in ("id", "created")}
    plan = ray_collect.Plan(entry, entry["seed_base"], block=1, per_block=1)
    folder = ray_collect.shard_dir(tmp_path / "ray" / "demos.zarr")
    jobs = ray_collect.make_jobs(folder, plan, first=2, n_blocks=4, tasks=8)
    ray_collect.run_shard(_absolute(config(tmp_path / "ray")), plan, jobs[0], task_spec("pendulum"))
    submitted = []
    real = ray_collect.run_tasks
    monkeypatch.setattr(
        ray_collect,
        "run_tasks",
        lambda fn, args, *a, **kw: submitted.extend(args) or real(fn, args, *a, **kw),
    )
    run(config(tmp_path / "ray", backend="ray", workers=2, resume=True))
    assert [job.index for _, _, job, _ in submitted] == [1, 2, 3]  # shard 0 was taken as it was
    assert_same_store(tmp_path / "local" / "demos.zarr", tmp_path / "ray" / "demos.zarr")


def test_ray_validation_stage_reports_what_the_local_backend_reports(tmp_path, local_ray):
    reports = {}
    for backend in ("local", "ray"):
        tiny_export(tmp_path / backend / "export")
        workers = 2 if backend == "ray" else 1  # local: in-process (a spawned pool costs seconds)
        v = ValidateConfig(episodes=3, stress_episodes=1, sweeps=False, workers=workers, backend=backend)
        cfg = Config(run_dir=str(tmp_path / backend), expert=ExpertConfig(kind="scripted"), validate=v)
        validate_stage.run(dataclasses.replace(cfg, logger=LoggerConfig("none")))
        reports[backend] = json.loads((tmp_path / backend / "validation" / "report.json").read_text())
    assert {"student", "teacher", "random"} <= set(reports["ray"]["metrics"]["train"])
    assert reports["ray"]["metrics"] == reports["local"]["metrics"]


def test_ray_validation_equals_local_validation(tmp_path, local_ray):
    export = tiny_export(tmp_path / "export")
    cfg = ValidateConfig(episodes=3, stress_episodes=2, sweeps=False)
    episodes = scenarios.build(cfg, dr.make_ranges(None))
    episodes = [e for e in episodes if e.scenario in ("train", "nominal", "stress/dropouts", "stress/pushes")]
    for src in (
        PolicySource("student", "pendulum", {}, export_dir=str(export)),
        PolicySource("random", "pendulum", {}),
    ):
        local = run_all(src, episodes, workers=1)
        remote = run_all(src, episodes, workers=2, backend="ray")
        assert remote == local
        assert [(r["scenario"], r["seed"]) for r in remote] == [(e.scenario, e.seed) for e in episodes]
