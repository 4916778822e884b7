"""PPO on the distilled student (asymmetric actor-critic), read top to bottom as cleanRL's ppo.py.

Imitation reaches what the student's observations can reproduce of the teacher's decisions; the rest
is partial observability (unseen velocity and dynamics, sensor noise and latency), where the student's
best action is not the teacher's. RL on the student's own observations optimizes return under exactly
those limits. The actor is the student transformer (its deterministic output the Gaussian mean, one
learned std per action in normalized units); the critic is an MLP on the privileged observation.
An optional imitation term (expert labels of the visited states, as DAgger) keeps the actor near the
teacher while the critic is still poor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from stable_baselines3.common.running_mean_std import RunningMeanStd
from torch import Tensor, nn

from sim2real.finetune.rollout import Rollout, _log_prob, gae, windows


class Critic(nn.Module):
    """V(privileged obs): an MLP on observations normalized with statistics fixed at the start."""

    def __init__(self, obs_dim: int, hidden: int = 256):
        super().__init__()
        self.register_buffer("mean", torch.zeros(obs_dim))
        self.register_buffer("std", torch.ones(obs_dim))
        self.net = nn.Sequential(
            nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1)
        )

    @torch.no_grad()
    def fit(self, obs: Tensor) -> None:
        """obs (M, Dp): the normalization of every later call."""
        self.mean.copy_(obs.mean(0))
        self.std.copy_(obs.std(0).clamp_min(1e-2))

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(((obs - self.mean) / self.std).clamp(-10, 10)).squeeze(-1)  # (...,)


@dataclass
class PPOSettings:
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    epochs: int = 4
    minibatch: int = 512
    ent_coef: float = 0.0
    bc_coef: float = 0.0  # weight of the imitation term (needs expert labels in the rollout)
    max_grad_norm: float = 0.5
    target_kl: float = 0.02  # stop an update's epochs early past this approximate KL
    stats: dict = field(default_factory=dict)


class RewardScaler:
    """Rewards divided by the running std of the discounted return (as SB3's VecNormalize)."""

    def __init__(self, n_envs: int, gamma: float):
        self.rms, self.ret, self.gamma = RunningMeanStd(shape=()), np.zeros(n_envs), gamma

    def __call__(self, r: Rollout) -> Rollout:
        rewards, done = r.reward.numpy(), r.done.numpy()
        for t in range(len(rewards)):
            self.ret = self.ret * self.gamma + rewards[t]
            self.rms.update(self.ret)
            self.ret[done[t]] = 0.0
        scale = float(np.sqrt(self.rms.var + 1e-8))
        r.reward = r.reward / scale
        return r


def update(
    student: nn.Module,
    log_std: nn.Parameter,
    critic: Critic,
    opt_actor: torch.optim.Optimizer,
    opt_critic: torch.optim.Optimizer,
    r: Rollout,
    s: PPOSettings,
    train_actor: bool = True,
) -> dict[str, float]:
    """PPO epochs over one rollout; returns mean losses, KL and clip fraction."""
    adv, ret = gae(r, s.gamma, s.gae_lambda)  # (T, N)
    T, N = adv.shape
    flat_t = torch.arange(T).repeat_interleave(N)  # (T*N,)
    flat_n = torch.arange(N).repeat(T)
    logs: dict[str, list[float]] = {"policy": [], "value": [], "kl": [], "clip": [], "bc": []}
    norm = student.normalizer
    for _ in range(s.epochs):
        perm = torch.randperm(T * N)
        for start in range(0, T * N, s.minibatch):
            idx = perm[start : start + s.minibatch]
            t, n = flat_t[idx], flat_n[idx]
            v = critic(r.privileged[t, n])
            v_loss = 0.5 * (v - ret[t, n]).pow(2).mean()
            opt_critic.zero_grad(set_to_none=True)
            v_loss.backward()
            nn.utils.clip_grad_norm_(critic.parameters(), s.max_grad_norm)
            opt_critic.step()
            logs["value"].append(float(v_loss.detach()))
            if not train_actor:
                continue
            obs, valid = windows(r, t, n)  # (B, K, Ds), (B, K)
            mean = student(obs, valid)[:, -1]  # (B, Da) normalized
            logp = _log_prob(r.action[t, n], mean, log_std)
            a = adv[t, n]
            a = (a - a.mean()) / (a.std() + 1e-8)
            ratio = (logp - r.logp[t, n]).exp()
            pg = -torch.min(ratio * a, ratio.clamp(1 - s.clip, 1 + s.clip) * a).mean()
            entropy = (log_std + 0.5 * np.log(2 * np.pi * np.e)).sum()
            loss = pg - s.ent_coef * entropy
            if s.bc_coef > 0 and r.label is not None:
                bc = (mean - norm.action(r.label[t, n])).pow(2).mean()
                loss = loss + s.bc_coef * bc
                logs["bc"].append(float(bc.detach()))
            opt_actor.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_([*student.parameters(), log_std], s.max_grad_norm)
            opt_actor.step()
            with torch.no_grad():
                kl = float(((ratio - 1) - (logp - r.logp[t, n])).mean())
            logs["policy"].append(float(pg.detach())), logs["kl"].append(kl)
            logs["clip"].append(float(((ratio - 1).abs() > s.clip).float().mean()))
        if (
            train_actor
            and logs["kl"]
            and np.mean(logs["kl"][-max(1, (T * N) // s.minibatch) :]) > s.target_kl
        ):
            break
    return {k: float(np.mean(v)) for k, v in logs.items() if v}
