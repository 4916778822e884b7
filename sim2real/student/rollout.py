"""Lockstep rollouts of a student (streaming, batched over envs), an expert, or a β-mixture of both.

One streaming forward per control step serves every env in the batch, which is also how the
exported controller runs (state carried between steps, zeros at an episode start), so the returns
measured here are those of the deployed recurrence, not of a training-time approximation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

import envs  # registers the tasks
from envs import lockstep
from envs.lockstep import GymLockstep, Lockstep
from sim2real.data.schema import Episode, EpisodeTrace
from sim2real.teacher.expert import Expert


@dataclass(frozen=True)
class Takeover:
    """The expert takes the controls where the student strays (HG-DAgger, SafeDAgger): once the RMS of
    (student − expert) / action half-range passes `threshold`, the expert's action is executed for `hold`
    steps. DAgger then labels the states a slightly wrong student reaches, not the ones past a failure
    it cannot come back from (a cheetah on its back), where the expert's labels teach nothing."""

    threshold: float
    hold: int = 1


def action_gap(act: np.ndarray, label: np.ndarray, low, high) -> np.ndarray:
    """(n,) RMS over the action of (act − label) as executed (both clipped), in half-ranges: what a
    takeover compares with its threshold and what DAgger rounds report."""
    gap = np.clip(act, low, high) - np.clip(label, low, high)  # (n, Da)
    return np.sqrt(np.mean((2 * gap / (high - low)) ** 2, axis=-1))


def _takeover(act: np.ndarray, label: np.ndarray, low, high, rule: Takeover, left: np.ndarray):
    """Which envs (n,) execute the expert now, from actions (n, Da); `left` (n,) counts each env's
    remaining held steps and is updated."""
    left[action_gap(act, label, low, high) > rule.threshold] = rule.hold
    take = left > 0  # (n,)
    left[take] -= 1
    return take


def make_envs(task: str, ranges: dict[str, Any] | None, n: int) -> list[gym.Env]:
    return [gym.make(envs.env_id(task), randomization=ranges) for _ in range(n)]


@torch.no_grad()
def rollout(
    sims: Lockstep | list[gym.Env],
    seeds: list[int],
    student: nn.Module | None = None,
    expert: Expert | None = None,
    beta: float = 0.0,
    rng: np.random.Generator | None = None,
    noise: float = 0.0,
    takeover: Takeover | None = None,
) -> list[Episode]:
    """Run one episode per seed in lockstep, in the first len(seeds) envs of `sims` (`envs.lockstep`, or
    Gymnasium envs of the task).

    At every step the expert's action is executed with probability `beta` (needs `expert`), the
    student's otherwise (needs `student` when beta < 1); the expert labels every visited state.
    `noise`: Gaussian exploration of that std × the action half-range on the student's actions.
    `takeover`: the expert also acts where the student's action strays from its own (needs `expert`).
    """
    if student is None and beta < 1.0:
        raise ValueError("rollout: a student is needed when beta < 1")
    if expert is None and beta > 0.0:
        raise ValueError("rollout: an expert is needed when beta > 0")
    if expert is None and takeover is not None:
        raise ValueError("rollout: an expert is needed for a takeover")
    rng = rng or np.random.default_rng(0)
    n = len(seeds)
    sims = GymLockstep(sims[:n]) if isinstance(sims, list) else sims
    if n > sims.n:
        raise ValueError(f"rollout: {n} seeds for {sims.n} envs")
    low, high = sims.action_low, sims.action_high  # (Da,) each
    sims.reset(range(n), seeds)
    eps = [EpisodeTrace(seed=int(s), dynamics=sims.dynamics(i)) for i, s in enumerate(seeds)]
    step = student.streaming() if student is not None else None
    device = next(student.parameters()).device if student is not None else None
    state = torch.zeros(n, student.state_size(), device=device) if student is not None else None
    live = np.zeros(sims.n, dtype=bool)  # (N,) envs whose episode runs
    live[:n] = True
    held = np.zeros(n, dtype=np.int64)  # (n,) steps the expert still holds the controls
    executed = np.zeros((sims.n, len(low)), np.float32)  # (N, Da); envs past n idle at zero
    nan = np.full(len(low), np.nan, np.float32)
    while live.any():
        s_all, p_all = sims.observe()
        s_obs, p_obs = s_all[:n], p_all[:n]  # (n, Ds), (n, Dp)
        label = np.asarray(expert.act(p_obs), np.float32) if expert is not None else None  # (n, Da)
        if step is not None:
            action, state = step(torch.as_tensor(s_obs, device=device), state)
            act = action.float().cpu().numpy()  # (n, Da)
            if noise > 0.0:
                act = act + noise * (high - low) / 2 * rng.standard_normal(act.shape)
            use_expert = np.zeros(n, dtype=bool)  # (n,)
            if label is not None and beta > 0.0:
                use_expert = rng.random(n) < beta  # (n,) β-mixture per step
            if takeover is not None:
                use_expert |= _takeover(act, label, low, high, takeover, held)
            act = np.where(use_expert[:, None], label, act) if label is not None else act
        else:
            act = label
        act = np.clip(act, low, high).astype(np.float32)  # what the env executes
        executed[:n] = act
        reward, term, trunc = sims.step(executed, live)
        for i in np.flatnonzero(live):
            eps[i].add(s_obs[i], p_obs[i], act[i], label[i] if label is not None else nan, float(reward[i]))
            if term[i] or trunc[i]:
                live[i] = False
                eps[i].terminated = bool(term[i])
    return [ep.episode() for ep in eps]


def rollout_seeds(
    task: str,
    ranges: dict[str, Any] | None,
    seeds: list[int],
    student: nn.Module | None = None,
    expert: Expert | None = None,
    beta: float = 0.0,
    rng: np.random.Generator | None = None,
    noise: float = 0.0,
    n_envs: int = 25,
    takeover: Takeover | None = None,
    vec_env: str = "auto",
) -> list[Episode]:
    """One episode per seed, `n_envs` at a time in lockstep (`rollout`), in envs made and closed here
    (`vec_env`: `envs.lockstep.make`'s kind; the episodes are the same either way)."""
    sims = lockstep.make(task, ranges, min(n_envs, len(seeds)), vec_env)
    try:
        out: list[Episode] = []
        for start in range(0, len(seeds), sims.n):
            out += rollout(sims, seeds[start : start + sims.n], student, expert, beta, rng, noise, takeover)
        return out
    finally:
        sims.close()


def evaluate(
    task: str,
    ranges: dict[str, Any] | None,
    seeds: list[int],
    student: nn.Module | None = None,
    expert: Expert | None = None,
    n_envs: int = 25,
) -> np.ndarray:
    """Returns (len(seeds),) of the student (or, without a student, the expert) on these seeds."""
    beta = 0.0 if student is not None else 1.0
    episodes = rollout_seeds(task, ranges, seeds, student, expert if beta else None, beta, n_envs=n_envs)
    return np.asarray([ep.ret for ep in episodes])


def env_matches(task: str, student_names, action_names) -> bool:
    """Whether `task`'s env observes and acts under these names (a store it can roll out from)."""
    env = make_envs(task, None, 1)[0]
    ours = (tuple(env.unwrapped.student_names), tuple(env.unwrapped.action_names))
    env.close()
    return ours == (tuple(student_names), tuple(action_names))


def mean_ci95(returns: np.ndarray) -> dict[str, float]:
    """{"mean", "ci95"}: the mean return and its normal 95% half-width (NaN for one episode)."""
    n = len(returns)
    ci = 1.96 * returns.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
    return {"mean": float(returns.mean()), "ci95": float(ci)}
