"""Foreign data bound to a task (`import ... task=NAME`, `distill task=NAME data=...`) reaches an export
with the task's names; data of other widths is refused, naming both shapes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from test_data_import import write_d4rl, write_dp, write_minari
from test_student_train import make_cfg, make_store

from sim2real.cli import main, names_task
from sim2real.config import Config, LoggerConfig
from sim2real.data.binding import task_spec
from sim2real.data.config import ImportKeys
from sim2real.data.importers import import_dataset
from sim2real.data.store import DemoStore
from sim2real.deploy import load_policy
from sim2real.errors import UserError
from sim2real.export import run as export
from sim2real.student.train import Trainer, run

PENDULUM = task_spec("pendulum")
WRITERS = {  # each format as its own tool writes it, and where
    "diffusion_policy": (lambda path, d: write_dp(path, d, zarr_format=2), "dp.zarr"),
    "d4rl_hdf5": (write_d4rl, "d.hdf5"),
    "minari": (write_minari, "pend-v0"),
}
DP_KEYS = ImportKeys(student_obs="state", action="action", reward="reward")


@pytest.fixture(scope="module")
def pendulum_data(tmp_path_factory) -> dict[str, np.ndarray]:
    """Someone else's pendulum episodes (a scripted controller), as plain arrays: no names, no task."""
    a = DemoStore.open(make_store(tmp_path_factory.mktemp("src") / "s.zarr", episodes=4)).load_arrays()
    return {"obs": a["student_obs"], "act": a["action"], "rew": a["reward"], "ends": a["episode_ends"]}


def foreign_file(tmp_path: Path, d: dict, fmt: str = "d4rl_hdf5") -> Path:
    write, name = WRITERS[fmt]
    return write(tmp_path / name, d)


def export_cfg(run_dir: Path) -> Config:
    cfg = Config(run_dir=str(run_dir), logger=LoggerConfig(kind="none"))
    cfg.export.parity_episodes, cfg.export.torchscript, cfg.export.window = 1, False, False
    return cfg


def assert_exports_with_the_tasks_names(run_dir: Path) -> None:
    export(export_cfg(run_dir))
    meta = json.loads((run_dir / "export" / "policy.json").read_text())
    assert meta["obs_names"] == list(PENDULUM.student_names)
    assert meta["action_names"] == list(PENDULUM.action_names)
    assert (meta["task"], meta["control_dt"]) == ("pendulum", PENDULUM.control_dt)
    policy = load_policy(run_dir / "export")
    policy.reset()
    assert policy.act(np.zeros(PENDULUM.student_dim, np.float32)).shape == (PENDULUM.action_dim,)


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_import_with_a_task_writes_its_names_bounds_and_dt_for_every_format(tmp_path, pendulum_data, fmt):
    src = foreign_file(tmp_path, pendulum_data, fmt)
    keys = DP_KEYS if fmt == "diffusion_policy" else None
    store = DemoStore.open(import_dataset(src, fmt, tmp_path / "out.zarr", keys, task="pendulum").path)
    spec = store.spec
    assert (spec.task, spec.student_names, spec.action_names) == (
        "pendulum", PENDULUM.student_names, PENDULUM.action_names
    )  # fmt: skip
    assert (spec.control_dt, spec.action_low, spec.action_high) == (
        PENDULUM.control_dt, PENDULUM.action_low, PENDULUM.action_high
    )  # fmt: skip
    assert spec.privileged_dim == 0  # the foreign data has none; the task's width is not invented
    np.testing.assert_array_equal(store.load_arrays()["student_obs"], pendulum_data["obs"])


def test_import_command_binds_only_when_the_command_line_names_the_task(tmp_path, pendulum_data, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["sim2real"])  # the CLI rewrites argv for Hydra
    src = foreign_file(tmp_path, pendulum_data)
    common = [f"source={src}", "format=d4rl_hdf5", f"run_dir={tmp_path / 'run'}", "logger=none"]
    assert main(["import", *common, f"out={tmp_path / 'named.zarr'}", "task=pendulum"]) == 0
    assert main(["import", *common, f"out={tmp_path / 'default.zarr'}"]) == 0
    assert DemoStore.open(tmp_path / "named.zarr").spec.task == "pendulum"
    assert DemoStore.open(tmp_path / "default.zarr").spec.task is None  # the default task is no claim
    assert names_task(["task=hopper"]) and names_task(["task.name=hopper"])
    assert not names_task(["task.randomization.mass_scale=[1,2]", "stage=import"])


def test_imported_with_a_task_distils_with_rollouts_and_exports(tmp_path, pendulum_data):
    src = foreign_file(tmp_path, pendulum_data, "minari")
    store = import_dataset(src, "minari", tmp_path / "demos.zarr", task="pendulum").path
    cfg = make_cfg(tmp_path, "distill.steps=10", f"data={store}")
    run(cfg)  # task= not named here: the store names its task itself
    summary = json.loads((Path(cfg.run_dir) / "student" / "manifest.json").read_text())["summary"]
    assert np.isfinite(summary["eval_return_mean"]) and "bound_task" not in summary
    assert_exports_with_the_tasks_names(Path(cfg.run_dir))


def test_unnamed_store_distilled_with_a_task_is_bound_in_memory_and_exports(tmp_path, pendulum_data, capsys):
    store = import_dataset(foreign_file(tmp_path, pendulum_data), "d4rl_hdf5", tmp_path / "demos.zarr").path
    cfg = make_cfg(tmp_path, "distill.steps=10", f"data={store}", "task_explicit=true")
    run(cfg)
    assert "bound to task pendulum in memory" in capsys.readouterr().out
    summary = json.loads((Path(cfg.run_dir) / "student" / "manifest.json").read_text())["summary"]
    assert summary["bound_task"] == "pendulum" and np.isfinite(summary["eval_return_mean"])
    assert DemoStore.open(store).spec.task is None  # the user's store is not rewritten
    assert_exports_with_the_tasks_names(Path(cfg.run_dir))


def test_unnamed_store_without_a_named_task_stays_untied(tmp_path, pendulum_data, capsys):
    store = import_dataset(foreign_file(tmp_path, pendulum_data), "d4rl_hdf5", tmp_path / "demos.zarr").path
    trainer = Trainer(make_cfg(tmp_path, "distill.steps=5"), store, tmp_path / "student")
    assert trainer.spec.student_names[0] == "observations[0]" and not trainer.can_evaluate()
    assert "distill task=NAME binds it" in capsys.readouterr().out


def test_import_of_other_widths_is_refused_naming_both_shapes(tmp_path, pendulum_data):
    d = {**pendulum_data, "obs": np.tile(pendulum_data["obs"], 2), "act": np.tile(pendulum_data["act"], 2)}
    src = foreign_file(tmp_path, d)
    with pytest.raises(UserError) as e:
        import_dataset(src, "d4rl_hdf5", tmp_path / "out.zarr", task="pendulum")
    msg = str(e.value)
    assert f"source={src}" in msg and "task=pendulum" in msg
    assert "student_obs (6,), action (2,)" in msg and "student_obs (3,), action (1,)" in msg
    assert not (tmp_path / "out.zarr").exists()


def test_distill_of_an_unnamed_store_of_other_widths_is_refused_naming_both_shapes(tmp_path, pendulum_data):
    d = {**pendulum_data, "obs": pendulum_data["obs"][:, :2]}
    store = import_dataset(foreign_file(tmp_path, d), "d4rl_hdf5", tmp_path / "demos.zarr").path
    cfg = make_cfg(tmp_path, "distill.steps=5", "task_explicit=true")
    with pytest.raises(UserError) as e:
        Trainer(cfg, store, tmp_path / "student")
    msg = str(e.value)
    assert f"store {store}" in msg and "task=pendulum" in msg
    assert "student_obs (2,), action (1,)" in msg and "student_obs (3,), action (1,)" in msg


def test_dagger_on_a_store_bound_in_memory_is_refused(tmp_path, pendulum_data):
    store = import_dataset(foreign_file(tmp_path, pendulum_data), "d4rl_hdf5", tmp_path / "demos.zarr").path
    cfg = make_cfg(tmp_path, "distill.dagger_rounds=1", "task_explicit=true")
    with pytest.raises(UserError, match="import it with task=pendulum first"):
        Trainer(cfg, store, tmp_path / "student")
