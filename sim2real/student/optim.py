"""Loss, optimizer and learning-rate schedule of the distillation loop (nanoGPT's recipe)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sim2real.student.config import DistillConfig


def masked_mse(
    pred: Tensor, target: Tensor, mask: Tensor, count_mask: Tensor | None = None, parts: int = 1
) -> Tensor:
    """Mean squared error over the valid steps. pred, target (B, K, Da); mask (B, K) bool.

    For one of `parts` slices of a batch (DDP), the mean is taken over `count_mask`, the whole batch's
    mask, times `parts`: the slices' values then average to the whole batch's loss.
    """
    err = torch.where(mask[..., None], (pred.float() - target) ** 2, torch.zeros((), device=pred.device))
    count = ((mask if count_mask is None else count_mask).sum() * pred.shape[-1]).clamp_min(1)
    return err.sum() / (count / parts)


def past_saturated_labels(pred: Tensor, target: Tensor, label: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """`pred` (B, K, Da) with its error past a saturated label removed (set to the target there).

    A label at an action bound (`low`, `high` (Da,), the store's, in env units) is a clipped command
    (PPO experts sit there half the time), so any prediction beyond that bound executes the same
    action; only the inside side is an error. `label` is the (B, K, Da) label in env units; pred and
    target are normalized.
    """
    tol = 1e-6 * torch.clamp(high - low, min=1.0)  # (Da,)
    high = (label >= high - tol) & (pred > target)
    low = (label <= low + tol) & (pred < target)
    return torch.where(high | low, target.to(pred.dtype), pred)


def make_optimizer(model: nn.Module, cfg: DistillConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on biases, norms, position biases)."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and not n.endswith("rel_bias")]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and not n.endswith("rel_bias"))]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    if device.type == "cuda":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), fused=True)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), foreach=True)


def lr_at(step: int, total: int, cfg: DistillConfig) -> float:
    """Linear warmup to `lr`, then cosine decay to `lr·min_lr_ratio` at `total`."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    low = cfg.lr * cfg.min_lr_ratio
    return low + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - low)
