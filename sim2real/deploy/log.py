"""Deployment log: every controller step, in the demonstration schema (Zarr v3, schema version 1).

A deployment log is a `demos.zarr` that `sim2real distill data=<log>` can train from (executed
actions as labels where `expert_action` is NaN) or an expert can relabel for DAgger. It adds
deploy-only arrays: `data/policy_action` (raw policy output), `data/time` (s since the loop
started), `data/lateness` (wake-up after the deadline, s) and `data/events` (safety bits, see
`sim2real.deploy.safety`). `zarr` is an optional dependency of the runtime: it is imported here
only, when a log is opened (the lean deploy image installs it; without it, run with no log).

The control loop never waits on disk, nor on the GIL: steps go into preallocated chunk buffers, and
a full chunk is handed to a separate writer process (`log_writer`); `meta/episode_ends` is appended
last, after the episode's data, as the commit marker.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.artifacts import utc_now
from sim2real.deploy.log_writer import WriterProcess

SCHEMA = "sim2real-demos"
SCHEMA_VERSION = 1
SOURCE_DEPLOY = 0  # index in the store's source table (a log has one source: this deployment)
_FINITE = ("student_obs", "privileged_obs")  # a demo store refuses non-finite values in these


def _data_fields(obs_dim: int, priv_dim: int, act_dim: int) -> dict[str, tuple[tuple[int, ...], str]]:
    return {
        "student_obs": ((obs_dim,), "f4"),
        "privileged_obs": ((priv_dim,), "f4"),
        "action": ((act_dim,), "f4"),
        "expert_action": ((act_dim,), "f4"),
        "reward": ((), "f4"),
        "policy_action": ((act_dim,), "f4"),
        "time": ((), "f8"),
        "lateness": ((), "f4"),
        "events": ((), "i4"),
    }


def log_attrs(spec, robot: str, gate: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """Root attributes of a deployment log: what ran, on which robot, and the validation record."""
    return {
        "task": spec.task,
        "control_dt": spec.control_dt,
        "action_low": list(spec.action_low),
        "action_high": list(spec.action_high),
        "source": {"policy_sha256": spec.artifact_sha256, "robot": robot, **gate},
        **extra,
    }


def log_path(log_dir: Path) -> Path:
    return Path(log_dir) / f"{datetime.now(UTC).strftime('%Y%m%d-%H%M%S-%f')}.zarr"


class DeployLog:
    """Append-only Zarr log of controller steps, grouped into episodes."""

    def __init__(
        self,
        path: str | Path,
        attrs: Mapping[str, Any],
        obs_names: Sequence[str],
        action_names: Sequence[str],
        privileged_dim: int = 0,
        dynamics_names: Sequence[str] = (),
        chunk_steps: int = 1024,
    ):
        self.path = Path(path)
        self._chunk = chunk_steps
        self._dyn_names = tuple(dynamics_names)
        self._fields = _data_fields(len(obs_names), privileged_dim, len(action_names))
        header = _root_attrs(attrs, obs_names, action_names, privileged_dim, dynamics_names)
        _create_store(self.path, header, self._fields, len(dynamics_names), chunk_steps)
        self._buf = self._new_buffers()
        self._n = 0  # rows in the current buffer
        self._steps = 0  # rows appended in total
        self._episode_start = 0
        self._return = 0.0
        self._writer = WriterProcess(self.path)
        self.closed = False

    def _new_buffers(self) -> dict[str, np.ndarray]:
        return {n: np.zeros((self._chunk, *s), d) for n, (s, d) in self._fields.items()}

    def append(self, **row: Any) -> None:
        """One step; keys are the data fields (a missing one is NaN, or 0 for integers).

        Observations must be finite in a demo store: a step whose readings were NaN/inf (or absent)
        is logged with those entries as 0, and its `events` say why (filter on them before training).
        """
        self._writer.pump()  # the pipe takes what earlier chunks left queued
        i = self._n
        for name, buf in self._buf.items():
            value = row.get(name)
            if value is None:
                buf[i] = np.nan if buf.dtype.kind == "f" else 0
            else:
                buf[i] = value
        for name in _FINITE:
            if not np.isfinite(self._buf[name][i]).all():
                np.nan_to_num(self._buf[name][i], copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        reward = row.get("reward")
        self._return += np.nan if reward is None else float(reward)  # NaN when any step has no reward
        self._n += 1
        self._steps += 1
        if self._n == self._chunk:
            self._flush()

    def _flush(self) -> None:
        if self._n == 0:
            return
        block = {name: buf[: self._n] for name, buf in self._buf.items()}
        self._buf = self._new_buffers()
        self._n = 0
        self._writer.send("data", block)

    def end_episode(
        self, seed: int = -1, dynamics: Mapping[str, float] | None = None, terminated: bool = False
    ) -> None:
        """Commit the steps since the last episode end as one episode (no-op when there are none);
        `dynamics` by name (a name the log has and the mapping lacks is NaN)."""
        if self._steps == self._episode_start:
            return
        self._flush()
        row = {
            "episode_ends": np.array([self._steps], np.int64),
            "episode_return": np.array([self._return], np.float32),
            "episode_dynamics": np.array(
                [[(dynamics or {}).get(n, np.nan) for n in self._dyn_names]], np.float32
            ),
            "episode_source": np.array([SOURCE_DEPLOY], np.int32),
            "episode_seed": np.array([seed], np.int64),
            "episode_terminated": np.array([terminated], np.bool_),
        }
        self._writer.send("meta", row)  # after the episode's data: one pipe, in order
        self._episode_start = self._steps
        self._return = 0.0

    def close(self, summary: Mapping[str, Any] | None = None, timeout: float = 120.0) -> None:
        """Wait for the writer (raising if it failed, or took nothing for `timeout` s); `summary` is
        merged into the `deploy` attribute."""
        if self.closed:
            return
        self.closed = True
        self._flush()
        self._writer.close(None if summary is None else _jsonable(summary), timeout)


def _create_store(path: Path, header: dict[str, Any], fields, dynamics_dim: int, chunk_steps: int) -> None:
    """An empty store: root attributes, `data/*` (chunk = one flush) and `meta/*` arrays."""
    try:
        import zarr
    except ImportError as e:  # pragma: no cover - the dev install has zarr
        raise ImportError("the deployment log needs zarr (pip install zarr), or run without a log") from e
    root = zarr.open_group(str(path), mode="w-", zarr_format=3)
    root.attrs.update(header)
    meta = {
        "episode_ends": ((), "i8"),
        "episode_return": ((), "f4"),
        "episode_dynamics": ((dynamics_dim,), "f4"),
        "episode_source": ((), "i4"),
        "episode_seed": ((), "i8"),
        "episode_terminated": ((), "bool"),
    }
    for group, specs, rows in (("data", fields, chunk_steps), ("meta", meta, 1024)):
        for name, (shape, dtype) in specs.items():
            root.create_array(
                f"{group}/{name}",
                shape=(0, *shape),
                chunks=(rows, *(max(1, d) for d in shape)),
                dtype=dtype,
                fill_value=np.nan if dtype[0] == "f" else 0,
            )


def _root_attrs(attrs, obs_names, action_names, privileged_dim, dynamics_names) -> dict[str, Any]:
    """The root attributes of a demo store (as `sim2real.data.schema.StoreSpec.to_attrs` writes them)."""
    low = attrs.get("action_low", [-1.0] * len(action_names))
    high = attrs.get("action_high", [1.0] * len(action_names))
    source = {"id": SOURCE_DEPLOY, "kind": "deploy", **attrs.get("source", {})}
    return _jsonable(
        {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "task": attrs.get("task"),
            "control_dt": attrs.get("control_dt"),
            "student_obs": {"names": list(obs_names), "dim": len(obs_names)},
            "privileged_obs": {"dim": privileged_dim, "names": attrs.get("privileged_names")},
            "action": {"names": list(action_names), "dim": len(action_names), "low": low, "high": high},
            "dynamics": {"names": list(dynamics_names)},
            "sources": [{**source, "created": utc_now()}],
            "created": utc_now(),
            "code_version": attrs.get("code_version", {}),
            "deploy": dict(attrs.get("deploy", {})),
        }
    )




def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
