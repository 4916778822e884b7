"""Schema v1 of a demonstration store: array names, dtypes, chunking, the spec in the root attributes.

The layout is a superset of Diffusion Policy's ReplayBuffer (`data/<key>` time-major, cumulative
`meta/episode_ends`), so other labs' tools read it, and `meta/episode_ends` is the commit marker.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs import parameters
from sim2real.errors import UserError

SCHEMA = "sim2real-demos"
SCHEMA_VERSION = 1
CHUNK_BYTES = 1 << 20  # at least 1 MiB uncompressed per chunk: few files, fast whole-array reads

# per-step arrays under data/: name -> dtype ("student", "privileged", "action": width from the spec)
DATA_ARRAYS: dict[str, str] = {
    "student_obs": "f4",
    "privileged_obs": "f4",
    "action": "f4",
    "expert_action": "f4",
    "reward": "f4",
}
# per-episode arrays under meta/, in write order; episode_ends is written last (the commit marker)
META_ARRAYS: dict[str, str] = {
    "episode_return": "f4",
    "episode_dynamics": "f4",
    "episode_source": "i4",
    "episode_seed": "i8",
    "episode_terminated": "bool",
    "episode_ends": "i8",
}

# Deployment logs: per-step event bits of the safety layer (`data/events`, int32).
NONFINITE_OBS = 1  # a reading was NaN/inf: safe action, policy not stepped
NONFINITE_ACTION = 2  # the policy output was NaN/inf: safe action, policy history cleared
STALE = 4  # sensors stale (watchdog): safe action held
ESTOP = 8  # e-stop: safe action, loop ends
CLIPPED = 16  # action clipped to [action_low, action_high]
RATE_LIMITED = 32  # action change limited by max_action_rate
FAULT_HOLD = 64  # a latched fault holds the safe action
WAITING = 128  # no reading yet since the start: safe action

EVENT_NAMES = {
    NONFINITE_OBS: "nonfinite_obs",
    NONFINITE_ACTION: "nonfinite_action",
    STALE: "stale_sensors",
    ESTOP: "estop",
    CLIPPED: "clipped",
    RATE_LIMITED: "rate_limited",
    FAULT_HOLD: "fault_hold",
    WAITING: "waiting_for_sensors",
}


def describe(events: int) -> list[str]:
    """Names of the bits set in one `data/events` value."""
    return [name for bit, name in EVENT_NAMES.items() if events & bit]


@dataclass(frozen=True)
class StoreSpec:
    """What the arrays mean: the task, observation and action names, bounds and dynamics names."""

    task: str | None
    student_names: tuple[str, ...]
    privileged_dim: int
    action_names: tuple[str, ...]
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    control_dt: float | None = None
    dynamics_names: tuple[str, ...] = field(default_factory=parameters.names)
    privileged_names: tuple[str, ...] | None = None

    @property
    def student_dim(self) -> int:
        return len(self.student_names)

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    def widths(self) -> dict[str, tuple[int, ...]]:
        """Trailing shape of every array (data per step, meta per episode)."""
        da = (self.action_dim,)
        return {
            "student_obs": (self.student_dim,),
            "privileged_obs": (self.privileged_dim,),
            "action": da,
            "expert_action": da,
            "reward": (),
            "episode_dynamics": (len(self.dynamics_names),),
            **{k: () for k in META_ARRAYS if k != "episode_dynamics"},
        }

    @classmethod
    def from_env(cls, env: Any) -> StoreSpec:
        """Spec of a `RandomizedTask` (or any wrapper / vector env around one)."""
        single = env.envs[0] if hasattr(env, "envs") else env
        u = single.unwrapped
        space = single.action_space
        return cls(
            task=getattr(u, "task", None) or None,
            student_names=tuple(u.student_names),
            privileged_dim=int(u.privileged_dim),
            action_names=tuple(u.action_names),
            action_low=tuple(float(x) for x in space.low),
            action_high=tuple(float(x) for x in space.high),
            control_dt=float(u.dt),
            dynamics_names=tuple(u.dynamics_names),
        )

    def to_attrs(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "control_dt": self.control_dt,
            "student_obs": {"names": list(self.student_names), "dim": self.student_dim},
            "privileged_obs": {
                "dim": self.privileged_dim,
                "names": None if self.privileged_names is None else list(self.privileged_names),
            },
            "action": {
                "names": list(self.action_names),
                "dim": self.action_dim,
                "low": list(self.action_low),
                "high": list(self.action_high),
            },
            "dynamics": {"names": list(self.dynamics_names)},
        }

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], where: str) -> StoreSpec:
        try:
            priv, act = attrs["privileged_obs"], attrs["action"]
            return cls(
                task=attrs.get("task"),
                student_names=tuple(attrs["student_obs"]["names"]),
                privileged_dim=int(priv["dim"]),
                action_names=tuple(act["names"]),
                action_low=tuple(act["low"]),
                action_high=tuple(act["high"]),
                control_dt=attrs.get("control_dt"),
                dynamics_names=tuple(attrs["dynamics"]["names"]),
                privileged_names=None if priv.get("names") is None else tuple(priv["names"]),
            )
        except (KeyError, TypeError) as e:
            raise UserError(f"{where}: root attributes lack the obs/action spec ({e!r} missing)") from e

    def mismatch(self, other: StoreSpec) -> str | None:
        """First difference that makes episodes of `other` unfit for a store of this spec."""
        for name in ("task", "student_names", "privileged_dim", "action_names", "dynamics_names"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                return f"{name}: store has {mine!r}, new episodes have {theirs!r}"
        return None


def append_rows(arr, values: np.ndarray) -> None:
    """Write rows past the end, then publish the new length (zarr's own append publishes the length
    first: a reader could see rows of fill values)."""
    n = arr.shape[0]
    new_shape = (n + len(values), *arr.shape[1:])
    inner = getattr(arr, "_async_array", None)  # zarr 3.1: grow the in-memory shape only
    if inner is None or not hasattr(inner.metadata, "update_shape"):  # pragma: no cover - other zarr
        arr.append(values, axis=0)
        return
    old = inner.metadata
    object.__setattr__(inner, "metadata", old.update_shape(new_shape))
    try:
        arr[n:] = values
    except BaseException:
        object.__setattr__(inner, "metadata", old)
        raise
    arr.resize(new_shape)


def chunk_rows(trailing: tuple[int, ...], dtype: str) -> int:
    """Rows per chunk so that one chunk holds at least CHUNK_BYTES uncompressed."""
    row_bytes = max(1, math.prod(trailing)) * np.dtype(dtype).itemsize
    return max(1, math.ceil(CHUNK_BYTES / row_bytes))


@dataclass
class Episode:
    """One episode's arrays, time-major; `expert_action` is NaN where no expert labelled a step."""

    student_obs: np.ndarray  # (T, Ds) f32
    privileged_obs: np.ndarray  # (T, Dp) f32
    action: np.ndarray  # (T, Da) f32, executed
    expert_action: np.ndarray  # (T, Da) f32, label
    reward: np.ndarray  # (T,) f32
    seed: int = -1
    dynamics: np.ndarray | None = None  # (K,) in spec.dynamics_names order; NaN where unknown
    terminated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # not stored: e.g. the attempt index

    @property
    def length(self) -> int:
        return len(self.action)

    @property
    def ret(self) -> float:
        return float(np.sum(self.reward, dtype=np.float64))

    @classmethod
    def coerce(cls, ep: Episode | Mapping[str, Any]) -> Episode:
        return ep if isinstance(ep, Episode) else cls(**dict(ep))

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in DATA_ARRAYS}


@dataclass
class EpisodeTrace:
    """One episode being recorded, step by step (lists, appended per step); `episode()` at its end."""

    seed: int
    dynamics: dict[str, float] = field(default_factory=dict)  # the env's info["dynamics"]
    rows: dict[str, list] = field(default_factory=lambda: {k: [] for k in DATA_ARRAYS})
    terminated: bool = False

    def add(self, *values) -> None:
        """One step: student_obs, privileged_obs, action, expert_action, reward (DATA_ARRAYS order)."""
        for k, v in zip(DATA_ARRAYS, values, strict=True):
            self.rows[k].append(v)

    def episode(self) -> Episode:
        arrays = {k: np.asarray(v, np.float32) for k, v in self.rows.items()}
        dyn = np.array(list(self.dynamics.values()), np.float32)  # the env's dynamics_names order
        return Episode(**arrays, seed=self.seed, dynamics=dyn, terminated=self.terminated)


def episodes_of(arrays: Mapping[str, np.ndarray]) -> list[Episode]:
    """The episodes of loaded arrays, with their seeds, dynamics and terminal flags."""
    ends = arrays["episode_ends"]
    starts = np.concatenate([[0], ends[:-1]])
    return [
        Episode(
            **{k: arrays[k][a:b] for k in DATA_ARRAYS},
            seed=int(arrays["episode_seed"][e]),
            dynamics=arrays["episode_dynamics"][e],
            terminated=bool(arrays["episode_terminated"][e]),
        )
        for e, (a, b) in enumerate(zip(starts, ends, strict=True))
    ]


def joined_ends(root, ends: np.ndarray) -> np.ndarray:
    """The controller's episode ends (E,) from a store's (S,): a deployment log commits a running episode
    in segments (`meta/continued` True on all but an episode's last, `deploy.log`), which ran with one
    unbroken history; stores without that array have no segments. `root`: the store's zarr group."""
    if "meta" not in root or "continued" not in set(root["meta"].array_keys()):
        return ends
    continued = np.asarray(root["meta/continued"][: len(ends)], bool)
    keep = ~continued
    if len(keep):
        keep[-1] = True  # a crashed episode ends where its log does
    return ends[keep]


def joined_sums(values: np.ndarray, ends: np.ndarray, joined: np.ndarray) -> np.ndarray:
    """Per-segment values (S,) (a return) summed into the joined episodes (E,) of `joined_ends`."""
    return np.bincount(np.searchsorted(joined, ends), weights=values, minlength=len(joined))
