"""On-policy rollouts of the student for RL fine-tuning: many envs in lockstep, episodes reset as they end.

The student acts through its streaming step (exactly the exported recurrence) with Gaussian exploration
in normalized action units; the critic values the privileged observation (asymmetric actor-critic: the
simulator may tell the critic what the robot never sees, since only the actor is deployed). A rollout
keeps the last C = receptive field − 1 student observations before it, so every step's action can be
recomputed from a window of exactly the history the streaming step saw.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from envs.lockstep import Lockstep


@dataclass
class Rollout:
    """T steps of N envs (time-major). `obs` holds C context rows before the T steps."""

    obs: Tensor  # (C+T, N, Ds) student observations, the C rows before the rollout first
    t_in_ep: Tensor  # (T, N) int64 step index within its episode
    privileged: Tensor  # (T, N, Dp)
    action: Tensor  # (T, N, Da) sampled action, normalized units (before unaction and clipping)
    logp: Tensor  # (T, N) log-probability of `action` when sampled
    value: Tensor  # (T, N) critic value when sampled
    reward: Tensor  # (T, N) env reward (+ γ·V(final obs) on a time-limit truncation)
    done: Tensor  # (T, N) bool: the episode ended at this step
    last_value: Tensor  # (N,) value of the observation after the last step
    label: Tensor | None = None  # (T, N, Da) expert action (env units) where an expert labels
    returns: list[float] | None = None  # returns of the episodes that ended in this rollout


class EnvRunner:
    """N lockstep envs (`envs.lockstep`) stepped by the student; carries episodes and streaming state
    across rollouts."""

    def __init__(self, envs: Lockstep, student: nn.Module, seeds: Iterable[int], context: int):
        self.envs, self.student, self.context = envs, student, context
        self._low, self._high = envs.action_low, envs.action_high  # (Da,) each
        self.n = envs.n
        self._seeds = iter(seeds)
        self._step = student.streaming()
        self.state = torch.zeros(self.n, student.state_size())  # (N, S) zeros: episode start
        envs.reset(range(self.n), [next(self._seeds) for _ in range(self.n)])
        self.t_in_ep = np.zeros(self.n, dtype=np.int64)
        self.ep_return = np.zeros(self.n)
        ds = envs.observe()[0].shape[1]
        self.history = torch.zeros(context, self.n, ds)  # (C, N, Ds) last student obs, oldest first

    @torch.no_grad()
    def collect(self, steps: int, log_std: Tensor, critic, gamma: float, expert=None) -> Rollout:
        """`steps` control steps of every env. `critic(privileged (N, Dp)) -> (N,)` values."""
        norm = self.student.normalizer
        rows: dict[str, list[Any]] = {k: [] for k in ("s", "t", "p", "a", "lp", "v", "r", "d", "y")}
        finished: list[float] = []
        std = log_std.exp()
        s_np, p_np = self.envs.observe()  # (N, Ds), (N, Dp)
        for _ in range(steps):
            s, p = torch.as_tensor(s_np), torch.as_tensor(p_np)
            env_action, self.state = self._step(s, self.state)  # (N, Da) mean in env units
            mean = norm.action(env_action)  # (N, Da) normalized
            a = mean + std * torch.randn_like(mean)
            logp = _log_prob(a, mean, log_std)
            executed = np.clip(norm.unaction(a).numpy(), self._low, self._high)  # what the envs execute
            if expert is not None:
                rows["y"].append(torch.as_tensor(np.asarray(expert.act(p_np), np.float32)))
            rows["s"].append(s), rows["p"].append(p), rows["a"].append(a), rows["lp"].append(logp)
            rows["t"].append(torch.as_tensor(self.t_in_ep.copy()))
            rows["v"].append(critic(p))
            ret, term, trunc = self.envs.step(executed)  # (N,) each
            self.ep_return += ret
            self.t_in_ep += 1
            reward = ret.astype(np.float32)
            ended = np.flatnonzero(term | trunc)
            if ended.size:
                final = self.envs.observe()[1]  # (N, Dp) the observations the episodes ended on
                for i in ended:
                    if trunc[i] and not term[i]:  # the episode was cut, not ended: bootstrap its value
                        reward[i] += gamma * float(critic(torch.as_tensor(final[i])[None])[0])
                    finished.append(float(self.ep_return[i]))
                self.t_in_ep[ended], self.ep_return[ended], self.state[ended] = 0, 0.0, 0.0
                self.envs.reset(ended, [next(self._seeds) for _ in ended])
            s_np, p_np = self.envs.observe()
            rows["r"].append(torch.as_tensor(reward)), rows["d"].append(torch.as_tensor(term | trunc))
        obs = torch.cat([self.history, torch.stack(rows["s"])])  # (C+T, N, Ds)
        self.history = obs[len(obs) - self.context :].clone()
        return Rollout(
            obs=obs, t_in_ep=torch.stack(rows["t"]), privileged=torch.stack(rows["p"]),
            action=torch.stack(rows["a"]), logp=torch.stack(rows["lp"]), value=torch.stack(rows["v"]),
            reward=torch.stack(rows["r"]), done=torch.stack(rows["d"]),
            last_value=critic(torch.as_tensor(p_np)),
            label=torch.stack(rows["y"]) if rows["y"] else None, returns=finished,
        )  # fmt: skip

    def close(self) -> None:
        self.envs.close()


def _log_prob(a: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """Diagonal Gaussian log-density summed over action dims: (..., Da) -> (...)."""
    z = (a - mean) / log_std.exp()
    return (-0.5 * z.pow(2) - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)


def gae(r: Rollout, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """(advantages (T, N), returns (T, N)) by generalized advantage estimation."""
    T = r.reward.shape[0]
    adv = torch.zeros_like(r.reward)
    last = torch.zeros_like(r.last_value)
    for t in reversed(range(T)):
        next_value = r.last_value if t == T - 1 else r.value[t + 1]
        live = (~r.done[t]).float()
        delta = r.reward[t] + gamma * next_value * live - r.value[t]
        last = delta + gamma * lam * live * last
        adv[t] = last
    return adv, adv + r.value


def windows(r: Rollout, t: Tensor, env: Tensor) -> tuple[Tensor, Tensor]:
    """Student-obs windows (B, C+1, Ds) ending at steps (t, env) and their validity (B, C+1)."""
    k = r.obs.shape[0] - r.t_in_ep.shape[0] + 1  # C+1
    offsets = torch.arange(-(k - 1), 1)  # (K,)
    rows = t[:, None] + (k - 1) + offsets  # (B, K) rows of r.obs
    obs = r.obs[rows, env[:, None]]  # (B, K, Ds)
    valid = offsets[None, :] >= -r.t_in_ep[t, env][:, None]  # (B, K) inside the episode
    return obs, valid
