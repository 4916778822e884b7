"""Windows of the last K student observations ending at each step, gathered in one indexing op.

The whole dataset is loaded once into tensors on `device`; a batch is one (B, K) index tensor into
them (random per-window reads from Zarr are ~100x too slow). A window never crosses an episode
start: steps before it are padding (zeros, mask False).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sim2real.data.store import DemoStore, select_episodes


@dataclass
class WindowBatch:
    obs: torch.Tensor  # (B, K, Ds) f32 student obs of the K steps ending at t (zeros on padding)
    action: torch.Tensor  # (B, K, Da) f32 label: expert_action, or the executed action where it is NaN
    mask: torch.Tensor  # (B, K) bool, False on padding and on steps with no label
    rtg: torch.Tensor  # (B, K) f32 return-to-go from each step to the episode end (NaN without rewards)
    privileged: torch.Tensor | None = None  # (B, K, Dp) f32 privileged obs, when the sampler was asked for it


def labels(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """(N, Da) f32: the expert's label where there is one, else the executed action (imports)."""
    expert = arrays["expert_action"]
    return np.where(np.isnan(expert).any(axis=1, keepdims=True), arrays["action"], expert).astype(np.float32)


def returns_to_go(reward: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """(N,) f32 sum of rewards from each step to the end of its episode."""
    r = reward.astype(np.float64)
    total = np.cumsum(r[::-1])[::-1]  # suffix sums over the whole array
    after_end = np.append(total, 0.0)[ends]  # suffix sum just past each episode's end
    lengths = np.diff(np.concatenate([[0], ends]))
    return (total - np.repeat(after_end, lengths)).astype(np.float32)


def split_episodes(
    num_episodes: int, val_fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) episode indices, disjoint, sorted; at least one of each when possible."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction} must be in [0, 1)")
    perm = np.random.default_rng(seed).permutation(num_episodes)
    n_val = (
        0
        if num_episodes < 2 or val_fraction == 0
        else min(num_episodes - 1, max(1, round(val_fraction * num_episodes)))
    )
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def fit_stats(arrays: Mapping[str, np.ndarray], episodes: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Mean/std of student obs and labels over `episodes` (a constant column gets std 1, not 0)."""
    a = dict(arrays) if episodes is None else select_episodes(arrays, episodes)
    out = {}
    for name, x in (("obs", a["student_obs"]), ("action", labels(a))):
        x = x.astype(np.float64)
        std = x.std(axis=0)
        out[f"{name}_mean"] = x.mean(axis=0).astype(np.float32)
        out[f"{name}_std"] = np.where(std < 1e-6, 1.0, std).astype(np.float32)
    return out


class WindowSampler:
    """Random (`sample`) or exhaustive (`iterate`) windows over the steps of some episodes."""

    def __init__(
        self,
        arrays_or_store: Mapping[str, np.ndarray] | DemoStore,
        history: int,
        episodes: np.ndarray | None = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
        privileged: bool = False,
    ):
        if history < 1:
            raise ValueError(f"history={history} must be >= 1")
        arrays: Mapping[str, Any] = (
            arrays_or_store.load_arrays() if isinstance(arrays_or_store, DemoStore) else arrays_or_store
        )
        if episodes is not None:
            arrays = select_episodes(arrays, episodes)
        ends = np.asarray(arrays["episode_ends"], dtype=np.int64)
        if not len(ends):
            raise ValueError("WindowSampler: no episodes to sample from")
        self.history, self.device = history, torch.device(device)
        lengths = np.diff(np.concatenate([[0], ends]))
        t_in_ep = np.arange(ends[-1]) - np.repeat(ends - lengths, lengths)  # (N,) step index within episode
        label = labels(arrays)

        def padded(x: np.ndarray) -> torch.Tensor:  # one extra zero row at index N: what padding reads
            pad = np.zeros((1, *x.shape[1:]), x.dtype)
            return torch.as_tensor(np.concatenate([x, pad])).to(self.device)

        self.obs = padded(arrays["student_obs"].astype(np.float32))  # (N+1, Ds)
        self.label = padded(label)  # (N+1, Da)
        self.labelled = padded(np.isfinite(label).all(axis=1))  # (N+1,) False on the pad row
        self.rtg = padded(returns_to_go(arrays["reward"], ends))  # (N+1,)
        self.privileged = padded(arrays["privileged_obs"].astype(np.float32)) if privileged else None
        self.t_in_ep = torch.as_tensor(t_in_ep).to(self.device)  # (N,) int64
        self.has_rewards = bool(np.isfinite(arrays["reward"]).all())
        self.num_windows = int(ends[-1])
        self._offsets = torch.arange(-(history - 1), 1, device=self.device)  # (K,) -K+1 .. 0
        self._gen = torch.Generator(device=self.device).manual_seed(seed)

    def __len__(self) -> int:
        return self.num_windows

    def gather(self, t: torch.Tensor) -> WindowBatch:
        """Windows ending at global steps `t` (B,)."""
        b, k = t.shape[0], self.history
        rows = t[:, None] + self._offsets  # (B, K)
        valid = self._offsets >= -self.t_in_ep[t][:, None]  # (B, K) inside the episode of t
        flat = torch.where(valid, rows, self.num_windows).view(-1)  # (B*K,) padding reads the zero row
        return WindowBatch(
            obs=self.obs.index_select(0, flat).view(b, k, -1),
            action=self.label.index_select(0, flat).view(b, k, -1),
            mask=self.labelled.index_select(0, flat).view(b, k),
            rtg=self.rtg.index_select(0, flat).view(b, k),
            privileged=None
            if self.privileged is None
            else self.privileged.index_select(0, flat).view(b, k, -1),
        )

    def sample(self, batch_size: int) -> WindowBatch:
        t = torch.randint(self.num_windows, (batch_size,), generator=self._gen, device=self.device)
        return self.gather(t)

    def iterate(self, batch_size: int) -> Iterator[WindowBatch]:
        """Every window exactly once, in store order (validation)."""
        for start in range(0, self.num_windows, batch_size):
            yield self.gather(
                torch.arange(start, min(start + batch_size, self.num_windows), device=self.device)
            )
