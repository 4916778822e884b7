"""Readers for foreign datasets, as their own tools write them, into flat time-major arrays.

- `diffusion_policy`: Zarr group (v2 as Diffusion Policy's ReplayBuffer writes it, or v3) with
  `data/<key>` and cumulative `meta/episode_ends`; the user names the keys.
- `d4rl_hdf5`: one HDF5 file with flat `observations, actions, rewards, terminals, timeouts`;
  an episode ends at a terminal or timeout (a tail after the last one is kept as one more episode).
- `minari`: a dataset directory, `data/main_data.hdf5` with one `episode_<i>` group per episode whose
  `observations` has one row more than its `actions` (the final observation is dropped).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import zarr

from sim2real.data.config import ImportKeys
from sim2real.errors import UserError

FORMATS = ("diffusion_policy", "d4rl_hdf5", "minari")


@dataclass
class Foreign:
    """A foreign dataset flattened: per-step arrays, cumulative episode ends, foreign episode ids."""

    student_obs: np.ndarray  # (N, Ds)
    action: np.ndarray  # (N, Da)
    privileged_obs: np.ndarray | None  # (N, Dp) or None
    reward: np.ndarray | None  # (N,) or None
    ends: np.ndarray  # (E,) int64
    terminated: np.ndarray  # (E,) bool
    episode_ids: list[int | str]
    keys: dict[str, str | None]  # foreign array name of each field


def _2d(a: np.ndarray) -> np.ndarray:
    return a.reshape(len(a), -1) if a.ndim != 2 else a


def read(fmt: str, path: Path, keys: ImportKeys) -> Foreign:
    readers = {"diffusion_policy": read_diffusion_policy, "d4rl_hdf5": read_d4rl, "minari": read_minari}
    if fmt not in readers:
        raise UserError(f"format={fmt!r} is not one of {', '.join(FORMATS)}")
    if not path.exists():
        raise FileNotFoundError(f"source={path} does not exist")
    return readers[fmt](path, keys)


def read_diffusion_policy(path: Path, keys: ImportKeys) -> Foreign:
    try:
        root = zarr.open_group(path, mode="r")
    except Exception as e:
        raise UserError(f"{path} is not a Zarr group ({type(e).__name__}: {e})") from e
    data = root.get("data")
    names = sorted(data.array_keys()) if isinstance(data, zarr.Group) else []
    if not keys.student_obs or not keys.action:
        raise UserError(
            "format=diffusion_policy needs keys.student_obs=KEY and keys.action=KEY "
            f"(arrays in {path}/data: {names})"
        )

    def arr(key: str | None) -> np.ndarray | None:
        if key is None:
            return None
        if key not in names:
            raise UserError(f"{path}: missing array data/{key} (arrays in data/: {names})")
        return np.asarray(data[key][:])

    if "meta" not in root or "episode_ends" not in root["meta"]:
        raise UserError(f"{path}: missing array meta/episode_ends (not a Diffusion Policy replay buffer?)")
    ends = np.asarray(root["meta/episode_ends"][:], dtype=np.int64)
    fields = {f: arr(getattr(keys, f)) for f in ("student_obs", "action", "privileged_obs", "reward")}
    labels = {f: f"data/{getattr(keys, f)}" for f in fields}
    _check_rows(fields, labels, ends, path)
    n = int(ends[-1]) if len(ends) else 0
    f = {k: None if v is None else v[:n] for k, v in fields.items()}
    return Foreign(
        student_obs=_2d(f["student_obs"]),
        action=_2d(f["action"]),
        privileged_obs=None if f["privileged_obs"] is None else _2d(f["privileged_obs"]),
        reward=None if f["reward"] is None else f["reward"].reshape(-1),
        ends=ends,
        terminated=np.zeros(len(ends), bool),
        episode_ids=list(range(len(ends))),
        keys={k: getattr(keys, k) for k in fields},
    )


def _check_rows(fields: dict, labels: dict, ends: np.ndarray, path: Path) -> None:
    """Every given array covers meta/episode_ends (else: truncated, naming the first episode cut)."""
    prev = np.concatenate([[0], ends[:-1]])
    if len(ends) == 0 or (ends <= prev).any():
        e = int(np.argmax(ends <= prev)) if len(ends) else 0
        raise UserError(f"{path}: meta/episode_ends is empty or not increasing (episode {e})")
    for name, a in fields.items():
        if a is not None and len(a) < ends[-1]:
            e = int(np.searchsorted(ends, len(a), side="right"))
            raise UserError(
                f"{path}: {labels[name]} is truncated: {len(a)} rows, but meta/episode_ends needs "
                f"{int(ends[-1])} (episode {e} onwards is missing)"
            )


def _h5(path: Path, f: h5py.File | h5py.Group, key: str | None, what: str) -> np.ndarray | None:
    if key is None:
        return None
    if key not in f:
        raise UserError(
            f"{path}: missing array {f.name.rstrip('/')}/{key} ({what}; present: {sorted(f.keys())})"
        )
    node = f[key]
    if isinstance(node, h5py.Group):
        raise UserError(
            f"{path}: {node.name} is a group (dict observation) with {sorted(node.keys())}; "
            f"name one of them, e.g. keys.{what}={key}/{next(iter(node.keys()), '...')}"
        )
    return np.asarray(node[()])


def read_d4rl(path: Path, keys: ImportKeys) -> Foreign:
    k = {
        "student_obs": keys.student_obs or "observations",
        "action": keys.action or "actions",
        "privileged_obs": keys.privileged_obs,
        "reward": keys.reward or "rewards",
    }
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise UserError(f"{path} is not a readable HDF5 file ({e})") from e
    with f:
        arrays = {name: _h5(path, f, key, name) for name, key in k.items()}
        terminals = _h5(path, f, "terminals", "episode ends").astype(bool).reshape(-1)
        timeouts = _h5(path, f, "timeouts", "episode ends").astype(bool).reshape(-1)
    n = len(arrays["action"])
    lens = {k[name]: len(a) for name, a in arrays.items() if a is not None}
    lens.update(terminals=len(terminals), timeouts=len(timeouts))
    if len(set(lens.values())) != 1:
        raise UserError(f"{path}: mismatched lengths of the flat arrays: {lens}")
    ends = np.flatnonzero(terminals | timeouts) + 1
    if not len(ends) or ends[-1] < n:
        ends = np.append(ends, n)  # a tail with no terminal/timeout is an (unfinished) episode too
    return Foreign(
        student_obs=_2d(arrays["student_obs"]),
        action=_2d(arrays["action"]),
        privileged_obs=None if arrays["privileged_obs"] is None else _2d(arrays["privileged_obs"]),
        reward=arrays["reward"].reshape(-1),
        ends=ends.astype(np.int64),
        terminated=terminals[ends - 1],
        episode_ids=list(range(len(ends))),
        keys=k,
    )


def _episode_groups(f: h5py.File, path: Path) -> list[str]:
    found = [name for name in f if re.fullmatch(r"episode_\d+", name)]
    if not found:
        raise UserError(f"{path}: no episode_<i> groups (not a Minari main_data.hdf5?)")
    return sorted(found, key=lambda s: int(s.split("_")[1]))


def read_minari(path: Path, keys: ImportKeys) -> Foreign:
    h5 = path / "data" / "main_data.hdf5" if path.is_dir() else path
    if not h5.is_file():
        raise FileNotFoundError(f"{path}: no data/main_data.hdf5 (not a Minari dataset directory?)")
    k = {
        "student_obs": keys.student_obs or "observations",
        "action": keys.action or "actions",
        "privileged_obs": keys.privileged_obs,
        "reward": keys.reward or "rewards",
    }
    parts: dict[str, list[np.ndarray]] = {name: [] for name in k}
    lengths, terminated = [], []
    with h5py.File(h5, "r") as f:
        groups = _episode_groups(f, h5)
        for g in groups:
            ep = {name: _h5(h5, f[g], key, name) for name, key in k.items()}
            t = len(ep["action"])
            for name, a in ep.items():
                if a is None:
                    continue
                if name in ("student_obs", "privileged_obs") and len(a) == t + 1:
                    a = a[:t]  # the final observation has no action
                if len(a) != t:
                    raise UserError(
                        f"{h5}: mismatched lengths in {g}: {k[name]} has {len(a)} rows for {t} actions "
                        f"(observations should have {t + 1})"
                    )
                parts[name].append(_2d(a) if name != "reward" else a.reshape(-1))
            term = _h5(h5, f[g], "terminations", "terminations")
            lengths.append(t)
            terminated.append(bool(term[-1]) if term is not None and len(term) else False)
    cat = {name: np.concatenate(v) if v else None for name, v in parts.items()}
    return Foreign(
        student_obs=cat["student_obs"],
        action=cat["action"],
        privileged_obs=cat["privileged_obs"],
        reward=cat["reward"],
        ends=np.cumsum(lengths).astype(np.int64),
        terminated=np.array(terminated, bool),
        episode_ids=groups,
        keys=k,
    )
