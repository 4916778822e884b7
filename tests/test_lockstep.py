"""Lockstep envs (`envs.lockstep`): batched simulations show the student exactly what the single env
shows it, so rollouts, DAgger and fine-tuning give the same episodes on either."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs
from envs import lockstep
from sim2real.finetune.ppo import Critic
from sim2real.finetune.rollout import EnvRunner
from sim2real.student.checkpoint import build_model
from sim2real.student.model import ModelConfig
from sim2real.student.rollout import rollout


class SwayExpert:
    """A deterministic expert of the privileged observation: actions that differ per env and step."""

    def __init__(self, action_dim: int):
        self.action_dim = action_dim

    def act(self, privileged_obs: np.ndarray) -> np.ndarray:
        w = np.sin(np.arange(privileged_obs.shape[1] * self.action_dim)).reshape(-1, self.action_dim)
        return np.tanh(privileged_obs @ w)  # (n, Da)


def both(task: str, n: int):
    return lockstep.make(task, None, n, "gym"), lockstep.make(task, None, n, "batch")


@pytest.mark.parametrize("task", ["hopper", "ant", "go2"])
def test_batched_lockstep_gives_the_single_envs_observations_rewards_and_ends(task):
    gym_envs, batch = both(task, 3)
    for sims in (gym_envs, batch):
        sims.reset(range(3), [5, 6, 7])
    assert [gym_envs.dynamics(i) for i in range(3)] == [batch.dynamics(i) for i in range(3)]
    rng, seed, resets = np.random.default_rng(0), 100, 0
    for _ in range(120):
        (s_a, p_a), (s_b, p_b) = gym_envs.observe(), batch.observe()
        np.testing.assert_array_equal(s_a, s_b)  # noisy sensors and the previous action, bit for bit
        np.testing.assert_array_equal(p_a, p_b)
        act = rng.uniform(-1.5, 1.5, (3, len(gym_envs.action_low))).astype(np.float32)  # some clip
        out_a, out_b = gym_envs.step(act), batch.step(act)
        for a, b in zip(out_a, out_b, strict=True):
            np.testing.assert_array_equal(a, b)
        ended = np.flatnonzero(out_a[1] | out_a[2])
        seeds = list(range(seed, seed + ended.size))
        seed += ended.size
        resets += ended.size
        gym_envs.reset(ended, seeds), batch.reset(ended, seeds)
    assert task != "hopper" or resets > 0  # Hopper falls under these actions: resets were compared too


def test_rollout_gives_the_same_episodes_batched_or_one_by_one():
    """Episodes end at different steps: the batch steps only the live ones, and records the same."""
    gym_envs, batch = both("hopper", 4)
    expert = SwayExpert(3)
    a = rollout(gym_envs, [1, 2, 3, 4], expert=expert, beta=1.0)
    b = rollout(batch, [1, 2, 3, 4], expert=expert, beta=1.0)
    assert len({len(ep.reward) for ep in a}) > 1
    for x, y in zip(a, b, strict=True):
        for name in ("student_obs", "privileged_obs", "action", "expert_action", "reward", "dynamics"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name))
        assert x.terminated == y.terminated


def hopper_student() -> torch.nn.Module:
    u = gym.make(envs.env_id("hopper")).unwrapped
    cfg = ModelConfig(
        arch="transformer", obs_dim=len(u.student_names), action_dim=len(u.action_names), attn_window=4,
        n_layer=1, n_head=2, n_embd=8, obs_names=list(u.student_names), action_names=list(u.action_names),
        task="hopper",
        control_dt=u.dt, history=8,
    )  # fmt: skip
    torch.manual_seed(0)
    return build_model(cfg)


def test_finetune_runner_collects_the_same_rollout_batched_or_one_by_one():
    rollouts = []
    for sims in both("hopper", 3):
        student = hopper_student()
        critic = Critic(sims.privileged_dim)
        runner = EnvRunner(sims, student, iter(range(300, 400)), student.receptive_field() - 1)
        torch.manual_seed(1)
        runner.collect(40, torch.full((3,), np.log(0.5)), critic, 0.99)
        rollouts.append(runner.collect(40, torch.full((3,), np.log(0.5)), critic, 0.99))
    a, b = rollouts
    assert a.done.any()  # episodes ended (and were reset with the next seeds) inside the rollout
    for name in ("obs", "t_in_ep", "privileged", "action", "logp", "value", "reward", "done", "last_value"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.returns == b.returns


def test_batch_is_refused_for_a_task_without_batched_simulations():
    with pytest.raises(ValueError, match="pendulum"):
        lockstep.make("pendulum", None, 2, "batch")
    assert isinstance(lockstep.make("pendulum", None, 1, "auto"), lockstep.GymLockstep)
