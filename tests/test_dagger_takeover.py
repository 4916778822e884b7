"""DAgger with the expert taking the controls where the student strays (`distill.dagger_takeover`)."""

from __future__ import annotations

import numpy as np
import pytest

from sim2real.checks import ConfigError
from sim2real.data.store import DemoStore
from sim2real.student.dagger import collect_round
from sim2real.student.rollout import Takeover, _takeover
from sim2real.student.train import Trainer
from sim2real.teacher.expert import ScriptedPendulumExpert
from tests.test_student_train import make_cfg, make_store

LOW, HIGH = np.array([-2.0, -1.0]), np.array([2.0, 1.0])


def test_takeover_holds_the_controls_for_hold_steps_after_a_stray_action():
    rule, left = Takeover(threshold=0.5, hold=3), np.zeros(2, dtype=np.int64)
    label = np.zeros((2, 2))
    stray = np.array([[2.0, 1.0], [0.2, 0.1]])  # env 0 a full half-range off, env 1 a tenth
    taken = [_takeover(stray if t == 0 else label, label, LOW, HIGH, rule, left) for t in range(5)]
    assert [bool(t[0]) for t in taken] == [True, True, True, False, False]
    assert not any(bool(t[1]) for t in taken)


def test_takeover_measures_the_executed_clipped_action_in_half_ranges():
    rule, left = Takeover(threshold=0.5), np.zeros(1, dtype=np.int64)
    past_bound = np.array([[9.0, 1.0]])  # executes as [2, 1], the expert's own clipped action
    assert not _takeover(past_bound, np.array([[2.0, 1.0]]), LOW, HIGH, rule, left)[0]
    assert _takeover(np.array([[0.0, 0.0]]), np.array([[1.6, 0.8]]), LOW, HIGH, rule, left)[0]  # 0.8


def test_dagger_round_with_takeover_executes_the_experts_actions_where_the_student_strays(tmp_path):
    path = make_store(tmp_path / "d.zarr", episodes=4)
    cfg = make_cfg(tmp_path, "distill.steps=5", "distill.dagger_beta=0", "distill.dagger_takeover=1e-6")
    trainer = Trainer(cfg, path, tmp_path / "student")
    stats = collect_round(trainer.model, ScriptedPendulumExpert(), cfg, path, r=1)
    with DemoStore.open(path) as demos:
        arrays, sources = demos.load_arrays(), demos.sources
    new = slice(int(arrays["episode_ends"][3]), None)
    src = sources[int(arrays["episode_source"][-1])]
    assert (src["takeover"], src["takeover_hold"]) == (1e-6, 10)
    # a barely trained student strays from the scripted expert at once: the expert holds the controls
    np.testing.assert_allclose(arrays["action"][new], arrays["expert_action"][new], atol=1e-6)
    assert stats["dagger/expert_step_fraction"] == 1.0


def test_dagger_round_without_takeover_lets_a_stray_student_drive(tmp_path):
    path = make_store(tmp_path / "d.zarr", episodes=4)
    cfg = make_cfg(tmp_path, "distill.steps=5", "distill.dagger_beta=0")
    model = Trainer(cfg, path, tmp_path / "student").model
    stats = collect_round(model, ScriptedPendulumExpert(), cfg, path, 1)
    assert stats["dagger/expert_step_fraction"] < 0.5
    assert 0.0 < stats["dagger/student_gap_mean"] <= stats["dagger/student_gap_p99"]


@pytest.mark.parametrize("bad", ["distill.dagger_takeover=-0.1", "distill.dagger_takeover_hold=0"])
def test_bad_takeover_settings_are_refused_naming_the_key(tmp_path, bad):
    with pytest.raises(ConfigError, match=bad.split("=")[0]):
        make_cfg(tmp_path, bad)
