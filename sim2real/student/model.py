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
    aux_dim: int = (
        0  # >0: a head that predicts the privileged obs (B, T, aux_dim) from the history (training only)
    )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_student(cls, s: StudentConfig, obs_names: Sequence[str], action_names: Sequence[str],
                     task: str, control_dt: float, aux_dim: int = 0) -> ModelConfig:  # fmt: skip
        """The model a `student.*` config describes, for these observation and action names."""
        return cls(
            arch=s.arch, obs_dim=len(obs_names), action_dim=len(action_names), attn_window=s.attn_window,
            conv_kernel=s.conv_kernel, n_layer=s.n_layer, n_head=s.n_head, n_embd=s.n_embd,
            dropout=s.dropout, mlp_hidden=s.mlp_hidden, rtg=s.rtg, drop_prev_action=s.drop_prev_action,
            obs_names=list(obs_names), action_names=list(action_names), task=task,
            control_dt=float(control_dt), history=s.history, aux_dim=aux_dim if s.aux_privileged > 0 else 0,
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
        # concurrent state estimation: predicting the privileged obs shapes the features the action head
        # reads; never exported (the streaming step computes the action alone)
        self.aux = nn.Linear(cfg.n_embd, cfg.aux_dim) if cfg.aux_dim else None
        self.apply(_init_weights)

    def receptive_field(self) -> int:
        return (self.cfg.conv_kernel - 1) + self.cfg.n_layer * (self.cfg.attn_window - 1) + 1

    def state_size(self) -> int:
        """Streaming state: per layer the keys and values of the last W-1 steps (each with a validity
        flag), then the last k-1 inputs of the step embedding."""
        c = self.cfg
        return c.n_layer * (c.attn_window - 1) * (2 * c.n_embd + 1) + (c.conv_kernel - 1) * self.in_dim

    def forward(self, obs: Tensor, valid: Tensor, rtg: Tensor | None = None, aux: bool = False):
        """Normalized action per step (B, T, Da) from raw obs (B, T, Ds); invalid steps are ignored.
        With `aux`: (action, normalized privileged-obs prediction (B, T, aux_dim))."""
        x = self.drop(self.embed(self.normalizer.features(obs, rtg, self.cfg.rtg), valid))  # (B, T, C)
        allowed, offset = self.attention_mask(valid)
        for block in self.blocks:
            x = block(x, allowed, offset)
        x = self.ln_f(x)
        if aux:
            return self.head(x), self.aux(x)  # (B, T, Da), (B, T, Dp)
        return self.head(x)  # (B, T, Da)

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

    Laid out for a small ONNX graph (per-node runtime overhead dominates a step this size). The state is
    [per layer: the last W-1 steps' [key (C), value (C), 1], time-major | the step embedding's last k-1
    inputs], so shifting a cache is one flat slice, and an all-zero slot (episode start) carries flag 0:
    log(flag) masks it out of attention. Per-head scores are one matmul of the cache with a query matrix
    (query spread over its head's key channels) that a linear layer emits directly; head outputs are a
    matmul/product/sum over the same layout, no transposes. Constant scalings (1/sqrt(hd), the action
    normalizer) are folded into weights, which export's constant folding turns into initializers.
    """

    def __init__(self, model: StudentTransformer):
        super().__init__()
        self.model = model
        cfg = model.cfg
        self.n_layer, self.w1, self.C = cfg.n_layer, cfg.attn_window - 1, cfg.n_embd
        self.n_head, self.hd = cfg.n_head, cfg.n_embd // cfg.n_head
        self.k1, self.in_dim = cfg.conv_kernel - 1, model.in_dim
        self.D = 2 * self.C + 1  # per step and layer: key, value, validity flag
        head = torch.arange(self.C) // self.hd  # (C,) head of each channel
        onehot = (head[:, None] == torch.arange(self.n_head)).float()  # (C, nh)
        zeros = torch.zeros(self.C + 1, self.n_head)
        value_heads = torch.cat([torch.zeros(self.C, self.n_head), onehot, torch.zeros(1, self.n_head)])
        device = model.head.weight.device
        self.register_buffer("key_heads", torch.cat([onehot, zeros]).to(device), persistent=False)  # (D, nh)
        self.register_buffer("value_heads", value_heads.t().to(device), persistent=False)  # (nh, D)

    def forward(self, obs: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        m, C = self.model, self.C
        sizes = [self.w1 * self.D] * self.n_layer + [self.k1 * self.in_dim]
        *caches, past = state.split(sizes, dim=1)  # (B, (W-1)·D) per layer, (B, (k-1)·F)
        window = torch.cat([past, self._features(obs)], dim=1)  # (B, k·F) oldest first
        conv = m.embed.conv  # weight (C, F, k) -> (C, k·F) matching the window's step-major order
        x = F.linear(window, conv.weight.permute(0, 2, 1).reshape(C, -1), conv.bias)  # (B, C)
        next_caches, mask = [], None
        for cache, block in zip(caches, m.blocks, strict=True):
            x, kv, mask = self._block(block, x, cache, mask)  # (B, C), (B, W·D), (B, W, 1)
            next_caches.append(kv[:, self.D :])  # drop the oldest step
        head = m.head  # unaction folded into the head: a·std + mean
        std, mean = m.normalizer.action_std, m.normalizer.action_mean
        action = F.linear(m.ln_f(x), head.weight * std[:, None], head.bias * std + mean)  # (B, Da)
        return action, torch.cat([*next_caches, window[:, self.in_dim :]], dim=1)

    def _features(self, obs: Tensor) -> Tensor:
        """Normalized step input (B, F): (obs - mean)·(keep/std) [+ the constant return target]."""
        nz = self.model.normalizer
        x = (obs - nz.obs_mean) * (nz.obs_keep / nz.obs_std)  # (B, Ds)
        if not self.model.cfg.rtg:
            return x
        return F.pad(x, (0, 1), value=float(nz.rtg(nz.rtg_target)))  # (B, Ds+1)

    def _block(self, block: Block, x: Tensor, cache: Tensor, mask: Tensor | None):
        """One block on one step: x (B, C), cache (B, (W-1)·D) -> x (B, C), this step appended to the
        cache (B, W·D), and the additive attention mask (B, W, 1) (from the first layer's flags)."""
        a, C, nh, D = block.attn, self.C, self.n_head, self.D
        h = block.ln_1(x)  # (B, C)
        w, b = a.qkv.weight, a.qkv.bias  # rows: query, key, value
        flag_w, one = w.new_zeros(1, C), b.new_ones(1)  # the flag: 0·x + 1, exactly 1
        flat = torch.cat([cache, F.linear(h, torch.cat([w[C:], flag_w]), torch.cat([b[C:], one]))], dim=1)
        kv = flat.reshape(-1, self.w1 + 1, D)  # (B, W, D) oldest step first
        if mask is None:
            # every layer stores the flag; the first layer's gives the mask for all
            mask = kv[:, :, 2 * C :].log()  # (B, W, 1): 0 where a step was written, -inf before the start
        # query matrix (B, D, nh): scaled query channel c in column head(c), zero outside the keys
        qw = (w[:C] * a.scale)[:, None, :] * self.key_heads[:C, :, None]  # (C, nh, C)
        qb = (b[:C] * a.scale)[:, None] * self.key_heads[:C]  # (C, nh)
        pad = w.new_zeros(D - C, nh)
        qm = F.linear(h, torch.cat([qw, pad[..., None].expand(-1, -1, C)]).reshape(D * nh, C),
                      torch.cat([qb, pad]).reshape(-1)).reshape(-1, D, nh)  # fmt: skip
        bias = a.rel_bias.flip(1).t()  # (W, nh): slot j is W-1-j steps back
        att = (kv @ qm + bias + mask).softmax(dim=1)  # (B, W, nh)
        y = ((att @ self.value_heads) * kv).sum(dim=1)  # (B, D): head outputs in the value channels
        pw = a.proj.weight  # (C, C) -> (C, D), reading the value channels
        proj = torch.cat([pw.new_zeros(C, C), pw, pw.new_zeros(C, 1)], dim=1)
        x = x + F.linear(y, proj, a.proj.bias)
        return x + block.mlp(block.ln_2(x)), flat, mask


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
