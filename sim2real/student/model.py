"""Causal transformer student over the observation history, readable in one sitting (after nanoGPT).

Each step's input is the raw student observation (it already holds the previous action), optionally
with the episode's return as one more feature. Attention is a SLIDING WINDOW: step t attends to steps
t-W+1..t, with a learned bias per head and offset instead of absolute positions. Outputs therefore do
not depend on where a window starts, and a cache of the last W-1 keys/values per layer makes
step-by-step inference (`streaming()`) exactly equal to recomputing the whole episode.
Receptive field: H = n_layer·(W-1)+1 steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sim2real.student.config import StudentConfig
from sim2real.student.normalizer import Normalizer


@dataclass
class ModelConfig:
    """Everything needed to rebuild a student (saved as config.json beside the weights)."""

    arch: str  # transformer | mlp
    obs_dim: int
    action_dim: int
    attn_window: int = 8
    conv_kernel: int = 4  # the step embedding sees the last k inputs (1: the current one only)
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 32
    dropout: float = 0.0
    mlp_hidden: int = 256
    rtg: bool = False
    drop_prev_action: bool = True
    obs_names: list[str] = field(default_factory=list)
    action_names: list[str] = field(default_factory=list)
    task: str = ""
    control_dt: float = 0.0
    history: int = 16  # training window length K

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_student(cls, s: StudentConfig, obs_names: Sequence[str], action_names: Sequence[str],
                     task: str, control_dt: float) -> ModelConfig:  # fmt: skip
        """The model a `student.*` config describes, for these observation and action names."""
        return cls(
            arch=s.arch, obs_dim=len(obs_names), action_dim=len(action_names), attn_window=s.attn_window,
            conv_kernel=s.conv_kernel, n_layer=s.n_layer, n_head=s.n_head, n_embd=s.n_embd,
            dropout=s.dropout, mlp_hidden=s.mlp_hidden, rtg=s.rtg, drop_prev_action=s.drop_prev_action,
            obs_names=list(obs_names), action_names=list(action_names), task=task,
            control_dt=float(control_dt), history=s.history,
        )  # fmt: skip


class SelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0, "n_embd must be divisible by n_head"
        self.n_head, self.window, self.n_embd = cfg.n_head, cfg.attn_window, cfg.n_embd
        self.scale = 1.0 / math.sqrt(cfg.n_embd // cfg.n_head)
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        # rel_bias[h, d]: added to the score of a key d steps in the past (d = 0..W-1); initialized
        # ALiBi-like, -slope_h·d with slopes 1, 1/2, 1/4, ...: heads start from short to long memory
        slopes = 2.0 ** -torch.arange(cfg.n_head, dtype=torch.float32)
        self.rel_bias = nn.Parameter(-slopes[:, None] * torch.arange(cfg.attn_window, dtype=torch.float32))

    def split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        B, T, _ = x.shape
        C = self.n_embd  # a Python int, so that an exported graph holds no shape-derived constants
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 × (B, T, C)
        heads = lambda t: t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # noqa: E731
        return heads(q), heads(k), heads(v)  # (B, nh, T, hd)

    def forward(self, x: Tensor, allowed: Tensor, offset: Tensor) -> Tensor:
        """x (B, T, C); allowed (B, 1, T, T) bool; offset (T, T) query minus key, clamped to 0..W-1."""
        B, T, C = x.shape
        q, k, v = self.split(x)  # (B, nh, T, hd)
        bias = self.rel_bias[:, offset]  # (nh, T, T)
        att = (q @ k.transpose(-2, -1)) * self.scale + bias  # (B, nh, T, T)
        att = att.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
        y = self.drop(att) @ v  # (B, nh, T, hd)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)

    def step(self, x: Tensor, k_cache: Tensor, v_cache: Tensor, slot_valid: Tensor):
        """One new step attending to the cache. x (B, 1, C); caches (B, nh, W-1, hd) oldest first;
        slot_valid (B, W) over [cache..., current]. Returns y (B, 1, C) and the shifted caches."""
        B, _, C = x.shape
        q, k, v = self.split(x)  # (B, nh, 1, hd)
        keys, values = torch.cat([k_cache, k], dim=2), torch.cat([v_cache, v], dim=2)  # (B, nh, W, hd)
        bias = self.rel_bias[:, self.window - 1 - torch.arange(self.window)]  # (nh, W): slot j is W-1-j back
        att = (q @ keys.transpose(-2, -1)) * self.scale + bias[None, :, None, :]  # (B, nh, 1, W)
        att = torch.where(slot_valid[:, None, None, :], att, torch.full_like(att, float("-inf"))).softmax(-1)
        y = (att @ values).transpose(1, 2).reshape(B, 1, C)  # (B, 1, C)
        return self.proj(y), keys[:, :, 1:], values[:, :, 1:]


class ConvEmbed(nn.Module):
    """Step embedding from the last k inputs, a causal convolution: local differences (velocities
    from positions) in one linear map, which attention alone (convex mixing) learns slowly."""

    def __init__(self, in_dim: int, n_embd: int, k: int):
        super().__init__()
        self.k = k
        self.conv = nn.Conv1d(in_dim, n_embd, kernel_size=k)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        x = torch.where(valid[..., None], x, torch.zeros((), device=x.device))  # (B, T, F) padding: 0
        x = F.pad(x.transpose(1, 2), (self.k - 1, 0))  # (B, F, k-1+T) steps before the window: 0
        return self.conv(x).transpose(1, 2)  # (B, T, C)

    def step(self, x: Tensor, past: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, F), past (B, k-1, F) oldest first -> (B, 1, C) and the shifted past."""
        window = torch.cat([past, x[:, None]], dim=1)  # (B, k, F)
        return self.conv(window.transpose(1, 2)).transpose(1, 2), window[:, 1:]


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(cfg.n_embd), nn.LayerNorm(cfg.n_embd)
        self.attn = SelfAttention(cfg)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.n_embd, 4 * cfg.n_embd),
            nn.GELU(),
            nn.Linear(4 * cfg.n_embd, cfg.n_embd),
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x: Tensor, allowed: Tensor, offset: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x), allowed, offset)  # (B, T, C)
        return x + self.mlp(self.ln_2(x))

    def step(self, x: Tensor, k_cache: Tensor, v_cache: Tensor, slot_valid: Tensor):
        y, k_cache, v_cache = self.attn.step(self.ln_1(x), k_cache, v_cache, slot_valid)
        x = x + y  # (B, 1, C)
        return x + self.mlp(self.ln_2(x)), k_cache, v_cache


class StudentTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.attn_window < 1 or cfg.conv_kernel < 1:
            raise ValueError(
                f"student.attn_window and conv_kernel must be ≥ 1: {cfg.attn_window}, {cfg.conv_kernel}"
            )
        self.cfg = cfg
        self.normalizer = Normalizer(cfg.obs_dim, cfg.action_dim)
        self.in_dim = cfg.obs_dim + int(cfg.rtg)
        self.embed = ConvEmbed(self.in_dim, cfg.n_embd, cfg.conv_kernel)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.action_dim)
        self.apply(_init_weights)

    def receptive_field(self) -> int:
        return (self.cfg.conv_kernel - 1) + self.cfg.n_layer * (self.cfg.attn_window - 1) + 1

    def state_size(self) -> int:
        """Streaming state: per layer the keys and values of the last W-1 steps, the last k-1 inputs of
        the step embedding, then a step counter."""
        c = self.cfg
        return 2 * c.n_layer * (c.attn_window - 1) * c.n_embd + (c.conv_kernel - 1) * self.in_dim + 1

    def forward(self, obs: Tensor, valid: Tensor, rtg: Tensor | None = None) -> Tensor:
        """Normalized action per step (B, T, Da) from raw obs (B, T, Ds); invalid steps are ignored."""
        x = self.drop(self.embed(self.normalizer.features(obs, rtg, self.cfg.rtg), valid))  # (B, T, C)
        allowed, offset = self.attention_mask(valid)
        for block in self.blocks:
            x = block(x, allowed, offset)
        return self.head(self.ln_f(x))  # (B, T, Da)

    def attention_mask(self, valid: Tensor) -> tuple[Tensor, Tensor]:
        """Which keys each query sees: itself and the valid steps of the W-1 before it.
        valid (B, T) bool -> allowed (B, 1, T, T) bool, offset (T, T) long for the position bias."""
        T = valid.shape[1]
        t = torch.arange(T, device=valid.device)
        offset = t[:, None] - t[None, :]  # (T, T) query minus key
        band = (offset >= 0) & (offset < self.cfg.attn_window)  # (T, T) causal sliding window
        diag = torch.eye(T, dtype=torch.bool, device=valid.device)  # a padded query sees itself: no NaN
        allowed = band & (valid[:, None, :] | diag)  # (B, T, T)
        return allowed[:, None], offset.clamp(0, self.cfg.attn_window - 1)

    def act(self, obs: Tensor, valid: Tensor, rtg: Tensor | None = None) -> Tensor:
        """Actions in env units (B, T, Da)."""
        return self.normalizer.unaction(self(obs, valid, rtg))

    def streaming(self) -> nn.Module:
        return StreamingTransformer(self)

    def window(self) -> nn.Module:
        return WindowPolicy(self)


class StreamingTransformer(nn.Module):
    """forward(obs (B, Ds), state (B, S)) -> (action (B, Da), next_state (B, S)); zeros = episode start.

    Only cat/slice/matmul/softmax/where: exportable to ONNX, no data-dependent Python control flow.
    """

    def __init__(self, model: StudentTransformer):
        super().__init__()
        self.model = model
        cfg = model.cfg
        self.n_layer, self.w1, self.C = cfg.n_layer, cfg.attn_window - 1, cfg.n_embd
        self.n_head, self.hd = cfg.n_head, cfg.n_embd // cfg.n_head
        self.k1, self.in_dim = cfg.conv_kernel - 1, model.in_dim
        # steps back of each attention slot [cache oldest..newest, current]: W-1, ..., 1, 0
        self.register_buffer("slot_age", torch.arange(self.w1, -1, -1, dtype=torch.float32), persistent=False)

    def forward(self, obs: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        B = obs.shape[0]
        steps = state[:, -1:]  # (B, 1) steps since episode start, saturating at W
        slot_valid = self.slot_age[None, :] <= steps  # (B, W)
        per = self.w1 * self.C  # one layer's keys (or values)
        at = 2 * self.n_layer * per  # the step embedding's past inputs follow the caches
        past = state[:, at : at + self.k1 * self.in_dim].reshape(B, self.k1, self.in_dim)
        features = self.model.normalizer.features(obs, None, self.model.cfg.rtg)  # (B, F)
        x, past = self.model.embed.step(features, past)  # (B, 1, C), (B, k-1, F)
        caches = []
        for i, block in enumerate(self.model.blocks):
            k = state[:, (2 * i) * per : (2 * i + 1) * per].reshape(B, self.w1, self.n_head, self.hd)
            v = state[:, (2 * i + 1) * per : (2 * i + 2) * per].reshape(B, self.w1, self.n_head, self.hd)
            # caches (B, nh, W-1, hd), oldest step first
            x, k, v = block.step(x, k.transpose(1, 2), v.transpose(1, 2), slot_valid)
            caches += [k.transpose(1, 2).reshape(B, per), v.transpose(1, 2).reshape(B, per)]
        action = self.model.normalizer.unaction(self.model.head(self.model.ln_f(x[:, 0])))  # (B, Da)
        next_steps = torch.clamp(steps + 1.0, max=float(self.w1 + 1))
        return action, torch.cat([*caches, past.reshape(B, -1), next_steps], dim=1)


class WindowPolicy(nn.Module):
    """forward(obs_window (B, H, Ds), valid (B, H) bool) -> action of the last step (B, Da)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, obs_window: Tensor, valid: Tensor) -> Tensor:
        return self.model.act(obs_window, valid)[:, -1]  # (B, Da)


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):  # nanoGPT's init (position biases keep their own)
        nn.init.normal_(m.weight, std=0.02)
        nn.init.zeros_(m.bias)
