"""MLP student on the current observation only: the baseline that shows what history buys.

Same interface as the transformer (per-step forward, streaming, window), with a streaming state of
size 1 that is passed through unused, so export and deployment treat both alike.
"""

from __future__ import annotations

from torch import Tensor, nn

from sim2real.student.model import ModelConfig, WindowPolicy
from sim2real.student.normalizer import Normalizer


class StudentMLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.normalizer = Normalizer(cfg.obs_dim, cfg.action_dim)
        h = cfg.mlp_hidden
        self.net = nn.Sequential(
            nn.Linear(cfg.obs_dim + int(cfg.rtg), h),
            nn.GELU(),
            nn.Linear(h, h),
            nn.GELU(),
            nn.Linear(h, cfg.action_dim),
        )

    def receptive_field(self) -> int:
        return 1

    def state_size(self) -> int:
        return 1

    def forward(self, obs: Tensor, valid: Tensor, rtg: Tensor | None = None, aux: bool = False) -> Tensor:
        """Normalized action per step (B, T, Da); each step sees only its own observation. No auxiliary
        head (`aux` is the transformer's signature; config checks refuse student.aux_privileged here)."""
        if aux:
            raise ValueError("the MLP student has no auxiliary privileged head")
        return self.net(self.normalizer.features(obs, rtg, self.cfg.rtg))  # (B, T, Da)

    def act(self, obs: Tensor, valid: Tensor, rtg: Tensor | None = None) -> Tensor:
        return self.normalizer.unaction(self(obs, valid, rtg))

    def streaming(self) -> nn.Module:
        return StreamingMLP(self)

    def window(self) -> nn.Module:
        return WindowPolicy(self)


class StreamingMLP(nn.Module):
    """forward(obs (B, Ds), state (B, 1)) -> (action (B, Da), state unchanged)."""

    def __init__(self, model: StudentMLP):
        super().__init__()
        self.model = model

    def forward(self, obs: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        return self.model.normalizer.unaction(self.model(obs, None)), state  # (B, Da), (B, 1)
