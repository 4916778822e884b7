"""The distillation loss's parts that depend on the data: the action bounds at which a label is a
clipped command, and the scale of the optional auxiliary privileged-observation target. Built once per
run, so the training step only indexes tensors already on the device."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from sim2real.data.store import select_episodes
from sim2real.student.optim import past_saturated_labels


@dataclass
class DistillLoss:
    low: Tensor  # (Da,) the store's action bounds, in env units: what the env clips to
    high: Tensor  # (Da,)
    saturated_labels: bool  # a label at a bound is a clipped command: past it is no error
    aux_weight: float = 0.0  # weight of the auxiliary privileged-observation loss; 0: off
    aux_mean: Tensor | None = None  # (Dp,) privileged obs on the training episodes
    aux_std: Tensor | None = None  # (Dp,)

    @classmethod
    def build(cls, spec, arrays, train_eps, saturated: bool, aux_weight: float, device) -> DistillLoss:
        as_t = lambda x: torch.as_tensor(np.asarray(x, np.float64), dtype=torch.float32, device=device)  # noqa: E731
        loss = cls(as_t(spec.action_low), as_t(spec.action_high), saturated, aux_weight)
        if aux_weight > 0:
            priv = select_episodes(arrays, train_eps)["privileged_obs"].astype(np.float64)  # (n, Dp)
            std = priv.std(0)
            loss.aux_mean, loss.aux_std = as_t(priv.mean(0)), as_t(np.where(std < 1e-6, 1.0, std))
        return loss

    @property
    def uses_aux(self) -> bool:
        return self.aux_weight > 0

    def past_bounds(self, pred: Tensor, target: Tensor, label: Tensor) -> Tensor:
        """`pred` (B, K, Da) with no error past a saturated label (when `saturated_labels`)."""
        if not self.saturated_labels:
            return pred
        return past_saturated_labels(pred, target, label, self.low, self.high)

    def aux_target(self, privileged: Tensor) -> Tensor:
        """(B, K, Dp) privileged observations, standardized: what the auxiliary head predicts."""
        return (privileged - self.aux_mean) / self.aux_std
