"""Room for new robots and tasks: a parameter is one table entry, a task owns its rules, one run layout,
one declaration per stage, and the store schema and run layout import on a robot's computer."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs import parameters
from envs.parameters import Parameter
from envs.spec import Trace
from sim2real.artifacts import RunLayout
from sim2real.config import Config, LoggerConfig, TaskConfig
from sim2real.data.collect import run as collect
from sim2real.data.config import CollectConfig
from sim2real.data.store import DemoStore
from sim2real.stages import PIPELINE, STAGES, dealias, decisive_config, output_fields
from sim2real.teacher.config import ExpertConfig
from sim2real.validate.rollout import PolicySource, run_chunk
from sim2real.validate.scenarios import Episode


def _scale_armature(model, nominal, value) -> None:
    model.dof_armature[:] = nominal["dof_armature"] * value


ARMATURE = Parameter(
    "armature_scale", 1.5, 2.5, 1.0, (0.0, 100.0), "×", "rotor inertia of every joint",
    fields=("dof_armature",), write=_scale_armature,
)  # fmt: skip


@pytest.fixture
def armature(monkeypatch):
    """A throwaway physical parameter, added to the table and nowhere else."""
    monkeypatch.setitem(parameters.TABLE, ARMATURE.name, ARMATURE)


def test_a_parameter_added_to_the_table_alone_is_sampled_applied_and_observed(armature):
    env = gym.make(envs.env_id("pendulum"))
    model = env.unwrapped.model
    nominal = model.dof_armature.copy()
    values = set()
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        value = info["dynamics"]["armature_scale"]
        assert 1.5 <= value <= 2.5
        np.testing.assert_allclose(model.dof_armature, nominal * value)
        assert obs["privileged"][-1] == pytest.approx(value)  # the last physical parameter
        values.add(value)
    assert len(values) == 5
    _, info = env.reset(seed=0, options={"dynamics": {"armature_scale": 1.0}})
    assert info["dynamics"]["armature_scale"] == 1.0
    np.testing.assert_allclose(model.dof_armature, nominal)
    with pytest.raises(ValueError, match="armature_scale"):
        env.reset(seed=0, options={"dynamics": {"armature_scale": -1.0}})


def test_a_parameter_added_to_the_table_alone_is_stored_with_the_demos(armature, tmp_path):
    c = CollectConfig(episodes=2, n_envs=2, progress=False)
    cfg = Config(
        run_dir=str(tmp_path), expert=ExpertConfig("scripted"), collect=c, logger=LoggerConfig("none")
    )
    collect(cfg)
    store = DemoStore.open(RunLayout(tmp_path).demos)
    k = store.spec.dynamics_names.index("armature_scale")
    env = gym.make(envs.env_id("pendulum"))
    for e in range(2):
        ep = store.episode(e)
        _, info = env.reset(seed=ep.seed)
        assert ep.dynamics[k] == pytest.approx(info["dynamics"]["armature_scale"])


def test_the_configs_are_derived_from_the_table(armature):
    ranges, fixed = parameters.ranges_config(), parameters.fixed_config()
    assert [f.name for f in dataclasses.fields(ranges)] == list(parameters.TABLE)
    assert ranges().armature_scale is None  # unset: the task's range, else the table's
    assert parameters.make_ranges(vars(ranges()))["armature_scale"] == parameters.Range(1.5, 2.5)
    assert fixed(armature_scale=2.0).fixed() == {"armature_scale": 2.0}
    assert fixed().fixed() == {}


def test_a_task_owns_its_default_ranges_in_the_env_and_the_config():
    """Hopper trains without sensor latency (its teacher never meets one); the pendulum keeps the table's."""
    assert gym.make(envs.env_id("hopper")).unwrapped.ranges["latency_steps"] == parameters.Range(0, 0, True)
    assert gym.make(envs.env_id("pendulum")).unwrapped.ranges["latency_steps"] == parameters.Range(0, 2, True)
    hopper = Config(task=TaskConfig(name="hopper"))
    assert hopper.task.ranges()["latency_steps"] == [0, 0]
    assert hopper.task.ranges()["mass_scale"] == [0.8, 1.2]  # the table's, where the task names none
    hopper.task.randomization.latency_steps = [0, 2]  # an explicit range wins over the task's
    env = gym.make(envs.env_id("hopper"), randomization=hopper.task.ranges())
    assert env.unwrapped.ranges["latency_steps"] == parameters.Range(0, 2, True)


def test_a_parameter_of_one_task_is_sampled_there_and_refused_elsewhere():
    """The Go2's own parameters (payload, motor gains, pushes) are in its dynamics and privileged tail
    only."""
    go2, pendulum = gym.make(envs.env_id("go2")), gym.make(envs.env_id("pendulum"))
    _, info = go2.reset(seed=0)
    assert {"payload_kg", "kp_scale", "push_accel"} <= set(info["dynamics"]) <= set(parameters.TABLE)
    assert go2.unwrapped._physical == parameters.physical("go2")
    assert "payload_kg" not in pendulum.reset(seed=0)[1]["dynamics"]
    assert parameters.physical("pendulum") == parameters.physical()  # the six every task has
    with pytest.raises(ValueError, match=r"payload_kg.*go2, go2_rough only"):
        Config(
            task=TaskConfig(name="pendulum", randomization=parameters.RandomizationConfig(payload_kg=[0, 1]))
        ).task.ranges()
    with pytest.raises(ValueError, match="'payload_kg' is not one of this task's"):
        pendulum.reset(seed=0, options={"dynamics": {"payload_kg": 1.0}})
    assert Config(task=TaskConfig(name="go2")).task.ranges()["push_accel"] == [0.0, 3.0]


def test_a_task_owns_its_failure_rule_and_metrics():
    upright = np.tile([1.0, 0.0, 0.0], (40, 1))
    hanging = np.tile([-1.0, 0.0, 0.0], (40, 1))
    pendulum = envs.spec("pendulum")
    assert not pendulum.failed(Trace(upright, np.zeros(40), False))
    assert pendulum.failed(Trace(hanging, np.zeros(40), False))
    assert pendulum.metrics(Trace(upright, np.zeros(40), False)) == {"upright": 1.0}
    hopper = envs.spec("hopper")
    assert hopper.failed(Trace(upright, np.zeros(40), True))
    assert not hopper.failed(Trace(hanging, np.zeros(40), False))


def test_validation_judges_episodes_by_the_tasks_rule(monkeypatch):
    episode = [Episode("nominal", None, 3, parameters.nominal())]
    src = PolicySource("teacher", "pendulum", {}, expert_kind="scripted")
    (balanced,) = run_chunk(src, episode)
    assert not balanced["failed"] and balanced["metrics"]["upright"] > 0.9
    strict = dataclasses.replace(envs.TASKS["pendulum"], failed=lambda trace: True)
    monkeypatch.setitem(envs.TASKS, "pendulum", strict)
    (judged,) = run_chunk(src, episode)
    assert judged["failed"] and judged["return"] == balanced["return"]


def test_every_pipeline_stage_writes_where_the_run_layout_says(tmp_path):
    layout = RunLayout(tmp_path)
    assert [layout.stage(s).name for s in PIPELINE] == [
        "teacher", "demos.zarr", "student", "finetune", "export", "validation",
    ]  # fmt: skip
    assert layout.report == tmp_path / "validation" / "report.json"
    assert layout.policy_onnx == tmp_path / "export" / "policy.onnx"
    assert all(STAGES[s].decided_by for s in PIPELINE)


def test_execution_only_fields_are_left_out_of_what_decides_a_stage():
    base = Config()
    quiet = dataclasses.replace(base, distill=dataclasses.replace(base.distill, log_every=1, resume=False))
    longer = dataclasses.replace(
        base, distill=dataclasses.replace(base.distill, steps=base.distill.steps + 1)
    )
    assert decisive_config(quiet, "distill") == decisive_config(base, "distill")
    assert decisive_config(longer, "distill") != decisive_config(base, "distill")
    assert "workers" not in output_fields(base.validate) and "episodes" in output_fields(base.validate)


BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"mujoco", "torch", "hydra", "stable_baselines3", "gymnasium", "omegaconf"}:
            raise ImportError(f"blocked {name}")
sys.meta_path.insert(0, Block())
"""


@pytest.mark.parametrize(
    "module", ["sim2real.data.schema", "sim2real.artifacts", "envs.parameters", "sim2real.stages"]
)
def test_schema_layout_and_table_import_without_simulator_torch_or_hydra(module):
    code = (
        BLOCK
        + f"import {module}\nimport sys\nsys.exit(int(any(m in sys.modules for m in ('mujoco', 'torch'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_contract_spellings_of_stage_keys_reach_their_sections():
    assert dealias("source=a.zarr") == "importer.source=a.zarr"
    assert dealias("keys.student_obs=obs/state") == "importer.keys.student_obs=obs/state"
    assert dealias("+steps=3") == "+inspect.steps=3"
    for unchanged in ("deploy.steps=3", "data=d.zarr", "run_dir=outdir", "--cfg", "task=hopper"):
        assert dealias(unchanged) == unchanged
