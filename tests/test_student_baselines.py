"""Student-observation RL baseline: stacked student observations only, the teacher's recipe."""

from __future__ import annotations

import numpy as np
from omegaconf import OmegaConf

from sim2real.config import Config
from sim2real.student.baselines import evaluate_student_rl, student_vec_env, train_student_rl


def test_baseline_sees_only_stacked_student_observations_and_evaluates_on_given_seeds():
    cfg = OmegaConf.to_object(OmegaConf.structured(Config))
    ranges = cfg.task.ranges()
    venv = student_vec_env("pendulum", ranges, 1, frames=4)
    assert venv.observation_space.shape == (4 * 3,)  # 4 frames of [cos, sin, prev_action]: no velocity
    first = venv.reset()
    assert np.count_nonzero(first[0, :9]) == 0  # older frames are zeros at an episode start
    venv.close()
    cfg.teacher.algo = "ppo"
    cfg.teacher.ppo.total_timesteps, cfg.teacher.ppo.n_envs = 64, 1
    cfg.teacher.ppo.hyperparams = {"n_steps": 32, "batch_size": 32, "n_epochs": 1}
    policy = train_student_rl("pendulum", ranges, cfg.teacher, frames=4, seed=0)
    assert (policy.algo, policy.timesteps) == ("ppo", 64)
    a = evaluate_student_rl(policy, "pendulum", ranges, [10, 11, 12])
    b = evaluate_student_rl(policy, "pendulum", ranges, [10, 11, 12])
    assert a.shape == (3,) and np.all(a < 0)
    np.testing.assert_allclose(a, b)  # the seeds fix the episodes
