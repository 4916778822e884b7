"""`teacher.terrain_curriculum`: training envs move up a row after an episode they get through, down after a
fall (or, with `teacher.curriculum_progress`, after one that did not walk its command), and restart on a
random row past the hardest."""

from __future__ import annotations

import numpy as np
import pytest

from sim2real.teacher.curriculum import STEP, TerrainCurriculum
from sim2real.teacher.vec import BatchedVecEnv, make_training_env


def test_levels_move_one_row_by_how_episodes_end_and_restart_past_the_top():
    c = TerrainCurriculum("go2_rough", {}, 4, seed=0)
    assert np.all(c.levels <= 0.5) and np.allclose(c.levels / STEP, np.round(c.levels / STEP))
    c.levels[:] = [0.0, 0.5, 0.5, 1.0]
    c.update(np.array([0, 1, 2]), np.array([True, True, False]))
    np.testing.assert_allclose(c.levels[:3], [0.0, 0.25, 0.75])  # clipped at the easiest row
    tops = []
    for _ in range(20):
        c.levels[3] = 1.0
        c.update(np.array([3]), np.array([False]))
        tops.append(c.levels[3])
    assert len(set(tops)) > 1 and all(0.0 <= t <= 1.0 for t in tops)
    c.update(np.array([3]), np.array([True]))  # a fall never restarts
    assert c.levels[3] == pytest.approx(tops[-1] - STEP) or tops[-1] == 0.0


def test_progress_rule_moves_down_episodes_that_did_not_walk_their_command():
    c = TerrainCurriculum("go2_rough", {}, 4, seed=0, progress=0.5)
    c.levels[:] = 0.5
    # walked enough / too little without a fall / fell after walking / commands too short to judge
    c.update(np.arange(4), np.array([False, False, True, False]), np.array([0.8, 0.2, 0.9, np.nan]))
    np.testing.assert_allclose(c.levels, [0.75, 0.25, 0.25, 0.75])
    with pytest.raises(ValueError, match="walked distance is needed"):
        c.update(np.arange(4), np.zeros(4, bool))


def test_a_robot_that_stands_still_under_walking_commands_is_not_promoted():
    venv = BatchedVecEnv("go2_rough", {}, 4, seed=0, terrain_curriculum=True, curriculum_progress=0.5)
    venv.seed(0)
    venv.reset()
    start = venv.curriculum.levels.copy()
    walked = np.zeros(4)
    for _ in range(1000):  # the standing pose held for the whole 20 s episode
        walked = venv.sim.progress(np.arange(4))
        _, _, done, infos = venv.step(np.zeros((4, venv.action_space.shape[0]), np.float32))
    assert done.all() and not any(not i["TimeLimit.truncated"] for i in infos)
    judged = ~np.isnan(walked)
    assert judged.any() and np.all(np.abs(walked[judged]) < 0.1)
    np.testing.assert_allclose(venv.curriculum.levels[judged], np.maximum(start[judged] - STEP, 0.0))


def test_curriculum_respects_a_narrowed_range():
    c = TerrainCurriculum("go2_rough", {"terrain_level": [0.25, 0.75]}, 64, seed=1)
    for _ in range(30):
        c.update(np.arange(64), np.random.default_rng(_).random(64) < 0.3)
        assert c.levels.min() >= 0.25 and c.levels.max() <= 0.75


def test_training_episodes_start_on_their_curriculum_level():
    venv = BatchedVecEnv("go2_rough", {}, 6, seed=0, terrain_curriculum=True)
    venv.seed(0)
    venv.reset()
    levels = lambda: np.array([d["terrain_level"] for d in venv.sim.dynamics])  # noqa: E731
    np.testing.assert_allclose(levels(), venv.curriculum.levels)
    falls = 0
    for _ in range(120):  # every joint at its largest offset: the robot collapses
        before = venv.curriculum.levels.copy()
        _, _, done, infos = venv.step(np.ones((6, venv.action_space.shape[0]), np.float32))
        for i in np.flatnonzero(done):
            fell = not infos[i]["TimeLimit.truncated"]
            falls += fell
            assert venv.curriculum.levels[i] == pytest.approx(
                max(before[i] - STEP, 0.0) if fell else before[i]
            )
        np.testing.assert_allclose(levels(), venv.curriculum.levels)
    assert falls > 0


def test_curriculum_is_refused_where_there_is_no_terrain_or_no_batch():
    from sim2real.checks import ConfigError
    from sim2real.teacher.config import TeacherConfig

    with pytest.raises(ConfigError, match=r"needs teacher\.terrain_curriculum"):
        TeacherConfig(curriculum_progress=0.5)
    with pytest.raises(ValueError, match="no 'terrain_level'"):
        make_training_env("go2", {}, 2, "batch", 0, terrain_curriculum=True)
    with pytest.raises(ValueError, match="terrain_curriculum needs the batched simulation"):
        make_training_env("go2_rough", {}, 2, "dummy", 0, terrain_curriculum=True)


def test_a_resumed_run_continues_on_its_envs_saved_levels(tmp_path, monkeypatch):
    import json

    from sim2real.teacher.train import train
    from tests.test_teacher import TINY_PPO, make_cfg

    cfg = make_cfg(tmp_path, "task=go2_rough", *TINY_PPO, "teacher.eval_episodes=1")
    assert cfg.teacher.terrain_curriculum  # the go2_rough default
    train(cfg, tmp_path / "teacher")
    state_path = tmp_path / "teacher" / "checkpoints" / "state.json"
    state = json.loads(state_path.read_text())
    assert len(state["terrain_levels"]) == 2 and all(0.0 <= v <= 0.5 for v in state["terrain_levels"])
    state["terrain_levels"] = [1.0, 0.75]
    state_path.write_text(json.dumps(state))
    seen = []
    original = BatchedVecEnv.reset

    def spy(self):
        seen.append(self.curriculum.levels.copy())
        return original(self)

    monkeypatch.setattr(BatchedVecEnv, "reset", spy)
    cfg.teacher.total_timesteps = 512
    train(cfg, tmp_path / "teacher")
    np.testing.assert_array_equal(seen[-1], [1.0, 0.75])
