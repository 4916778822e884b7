"""Observation/action/return normalizer as an nn.Module: fitted from data, saved with the weights.

Living inside the model means the checkpoint and the exported graph carry it, so a controller
feeds raw sensor values and receives actions in env units; nothing is copied by hand.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn

STD_FLOOR = 1e-2  # a feature that barely varies in the data must not be blown up at deployment


class Normalizer(nn.Module):
    def __init__(self, obs_dim: int, action_dim: int):
        super().__init__()
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        self.register_buffer("action_mean", torch.zeros(action_dim))
        self.register_buffer("action_std", torch.ones(action_dim))
        self.register_buffer("rtg_scale", torch.ones(()))  # returns are divided by this
        self.register_buffer("rtg_target", torch.zeros(()))  # return the deployed policy is conditioned on
        self.register_buffer("obs_keep", torch.ones(obs_dim))  # 0: feature not shown to the model

    @torch.no_grad()
    def drop(self, names: list[str], prefixes: tuple[str, ...]) -> Normalizer:
        """Hide the features whose names start with one of `prefixes` (input stays (..., Ds))."""
        for i, name in enumerate(names):
            if name.startswith(prefixes):
                self.obs_keep[i] = 0.0
        return self

    @torch.no_grad()
    def fit(self, stats: Mapping[str, np.ndarray | float]) -> Normalizer:
        """Set from `fit_stats`-style numpy stats (obs_mean, obs_std, action_mean, action_std[, rtg_*])."""
        for name in ("obs_mean", "obs_std", "action_mean", "action_std"):
            value = torch.as_tensor(np.asarray(stats[name], dtype=np.float32))
            buf = getattr(self, name)
            if value.shape != buf.shape:
                shapes = f"{tuple(value.shape)}, model expects {tuple(buf.shape)}"
                raise ValueError(f"normalizer {name}: shape {shapes}")
            buf.copy_(value.clamp_min(STD_FLOOR) if name.endswith("std") else value)
        if "rtg_scale" in stats:
            self.rtg_scale.fill_(max(float(stats["rtg_scale"]), 1e-6))
            self.rtg_target.fill_(float(stats["rtg_target"]))
        return self

    def obs(self, x: Tensor) -> Tensor:
        return (x - self.obs_mean) / self.obs_std * self.obs_keep  # (..., Ds)

    def action(self, a: Tensor) -> Tensor:
        return (a - self.action_mean) / self.action_std  # (..., Da)

    def unaction(self, a: Tensor) -> Tensor:
        return a * self.action_std + self.action_mean  # (..., Da) env units

    def rtg(self, r: Tensor) -> Tensor:
        return r / self.rtg_scale  # (...)

    def features(self, obs: Tensor, rtg: Tensor | None, conditioned: bool) -> Tensor:
        """Model input (..., Ds[+1]): normalized obs, then the scaled return when `conditioned`
        (`rtg` None: the deployment target, a constant, so a controller needs no reward)."""
        x = self.obs(obs)  # (..., Ds)
        if not conditioned:
            return x
        if rtg is None:
            rtg = self.rtg_target.expand(obs.shape[:-1])
        return torch.cat([x, self.rtg(rtg)[..., None]], dim=-1)  # (..., Ds+1)


def return_stats(episode_returns: np.ndarray, quantile: float) -> dict[str, float]:
    """Scale = mean |return| (so the feature is O(1)); deployment target = a high quantile of returns."""
    returns = np.asarray(episode_returns, dtype=np.float64)
    if returns.size == 0:
        raise ValueError("return conditioning needs episodes with returns (store has none)")
    scale = float(np.mean(np.abs(returns))) or 1.0
    return {"rtg_scale": scale, "rtg_target": float(np.quantile(returns, quantile))}
