"""Checks that turn bad stores and bad episodes into errors naming the array and the episode.

A store read back must be exactly what was committed: a missing or truncated array, an unknown
schema, mismatched lengths or NaN actions are errors, never a silently wrong dataset. (Float
arrays are created with fill value NaN, so a lost chunk reads as NaN and is caught here too.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from sim2real.data.schema import DATA_ARRAYS, META_ARRAYS, SCHEMA, SCHEMA_VERSION, Episode, StoreSpec
from sim2real.errors import UserError


def check_header(attrs: Mapping[str, Any], where: str) -> None:
    schema, version = attrs.get("schema"), attrs.get("schema_version")
    if schema != SCHEMA:
        raise UserError(
            f"{where} is not a sim2real demo store (root attribute schema={schema!r}, expected {SCHEMA!r}); "
            "import foreign data with `sim2real import source=... format=... out=...`"
        )
    if version != SCHEMA_VERSION:
        raise UserError(
            f"{where} has schema_version={version!r}; this sim2real reads schema version {SCHEMA_VERSION}"
        )


def episode_of(step: int, ends: np.ndarray) -> int:
    return int(np.searchsorted(ends, step, side="right"))


def _where(step: int, ends: np.ndarray) -> str:
    e = episode_of(step, ends)
    start = 0 if e == 0 else int(ends[e - 1])
    return f"step {step - start} of episode {e}"


def check_ends(ends: np.ndarray, where: str) -> None:
    prev = np.concatenate([[0], ends[:-1]])
    bad = np.flatnonzero(ends <= prev)
    if len(bad):
        e = int(bad[0])
        raise UserError(
            f"{where}: meta/episode_ends is not increasing: episode {e} ends at {int(ends[e])}, "
            f"not after {int(prev[e])} (corrupted or truncated meta/episode_ends)"
        )


def check_lengths(rows: Mapping[str, int], ends: np.ndarray, where: str) -> None:
    """Every data array covers the committed steps and every meta array the committed episodes."""
    n, num = (int(ends[-1]) if len(ends) else 0), len(ends)
    for name, have in rows.items():
        if name in DATA_ARRAYS and have < n:
            e = episode_of(have, ends)
            raise UserError(
                f"{where}: data/{name} is truncated: {have} rows, but meta/episode_ends commits {n} steps "
                f"(episode {e} onwards is missing)"
            )
        if name in META_ARRAYS and have < num:
            raise UserError(
                f"{where}: meta/{name} has {have} entries for {num} committed episodes "
                f"(episode {have} onwards is missing)"
            )


def check_widths(arrays: Mapping[str, np.ndarray], spec: StoreSpec, where: str) -> None:
    widths = spec.widths()
    for name, a in arrays.items():
        if name in widths and a.shape[1:] != widths[name]:
            kind = "data" if name in DATA_ARRAYS else "meta"
            raise UserError(
                f"{where}: {kind}/{name} has shape {a.shape}; the store's spec says (N, *{widths[name]})"
            )


def check_values(arrays: Mapping[str, np.ndarray], ends: np.ndarray, where: str) -> None:
    """Observations and executed actions finite; labels finite or NaN row-wise; returns consistent."""
    for name in ("action", "student_obs", "privileged_obs"):
        bad = ~np.isfinite(arrays[name]).all(axis=1)
        if bad.any():
            s = int(np.argmax(bad))
            raise UserError(f"{where}: data/{name} has a non-finite value (NaN/inf) at {_where(s, ends)}")
    label = arrays["expert_action"]
    nan = np.isnan(label)
    bad = np.isinf(label).any(axis=1) | (nan.any(axis=1) & ~nan.all(axis=1))
    if bad.any():
        s = int(np.argmax(bad))
        raise UserError(f"{where}: data/expert_action has inf or a partly-NaN row at {_where(s, ends)}")
    check_returns(arrays["reward"], ends, arrays["episode_return"], where)


def check_returns(reward: np.ndarray, ends: np.ndarray, returns: np.ndarray, where: str) -> None:
    if not len(ends):
        return
    starts = np.concatenate([[0], ends[:-1]])
    sums = np.add.reduceat(reward.astype(np.float64), starts)
    ok = np.isclose(sums, returns, rtol=1e-4, atol=1e-3, equal_nan=True)
    if not ok.all():
        e = int(np.argmin(ok))
        raise UserError(
            f"{where}: data/reward of episode {e} sums to {sums[e]:.6g} but meta/episode_return says "
            f"{returns[e]:.6g} (corrupted or truncated data/reward)"
        )


def check_episode(ep: Episode, spec: StoreSpec, index: int) -> None:
    """An episode about to be written fits the spec: shapes, lengths, finite actions."""
    t = ep.length
    if t < 1:
        raise ValueError(f"episode {index}: no steps")
    widths = spec.widths()
    for name, a in ep.arrays().items():
        if a.shape != (t, *widths[name]):
            raise ValueError(
                f"episode {index}: {name} has shape {a.shape}, expected {(t, *widths[name])} "
                f"(mismatched lengths or widths)"
            )
    for name in ("action", "student_obs", "privileged_obs"):
        finite = np.isfinite(getattr(ep, name)).all(axis=1)
        if not finite.all():
            raise ValueError(f"episode {index}: {name} has NaN/inf at step {int(np.argmin(finite))}")
    if ep.dynamics is not None and np.shape(ep.dynamics) != widths["episode_dynamics"]:
        raise ValueError(
            f"episode {index}: dynamics has shape {np.shape(ep.dynamics)}, "
            f"expected {widths['episode_dynamics']}"
        )
