"""Deployment log: every controller step, in the demonstration schema (Zarr v3, schema version 1).

A deployment log is a `demos.zarr` that `sim2real distill data=<log>` can train from (executed
actions as labels where `expert_action` is NaN) or an expert can relabel for DAgger. It adds
deploy-only arrays: `data/policy_action` (raw policy output), `data/time` (s since the loop
started), `data/lateness` (wake-up after the deadline, s) and `data/events` (safety bits, see
`sim2real.deploy.safety`). `zarr` is an optional dependency of the runtime: it is imported here
only, when a log is opened (the lean deploy image installs it; without it, run with no log).

The control loop never waits on disk, nor on the GIL: steps go into preallocated chunk buffers, and
the rows since the last hand-over go to a separate writer process (`log_writer`) whenever a chunk
fills and at least every `commit_s` seconds (`deploy.log_commit_s`). Each commit inside a running
episode appends that part of it as a store episode of its own (a segment; `meta/continued` is True on
every segment but an episode's last): every row is written once and `meta/episode_ends`, written
after the data it covers, stays the commit marker, so a reader never sees half a step and a store
opened earlier never changes under its reader. A crash, SIGKILL or power loss loses at most
`commit_s` of a running episode. While an episode runs its segments are listed in the
`deploy.unfinished_episodes` attribute; after a crash they stay listed (and the last has
`continued` True). `sim2real.deploy.replay` joins segments back into the controller's episodes.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.artifacts import utc_now
from sim2real.data.schema import DATA_ARRAYS, META_ARRAYS, SCHEMA, SCHEMA_VERSION
from sim2real.deploy.log_writer import WriterProcess
from sim2real.errors import UserError

SOURCE_DEPLOY = 0  # index in the store's source table (a log has one source: this deployment)
_FINITE = ("student_obs", "privileged_obs")  # a demo store refuses non-finite values in these
# deploy-only per-step arrays, beside the store's DATA_ARRAYS
DEPLOY_ARRAYS = {"policy_action": "f4", "time": "f8", "lateness": "f4", "events": "i4"}
# deploy-only per-episode array, written before episode_ends: the episode goes on in the next one
CONTINUED = "continued"


class LogError(UserError, RuntimeError):
    """The deployment log cannot be written (full disk, unwritable directory, writer died); one line
    naming the path; what was committed before stays readable."""


def _data_fields(obs_dim: int, priv_dim: int, act_dim: int) -> dict[str, tuple[tuple[int, ...], str]]:
    widths = {"student_obs": (obs_dim,), "privileged_obs": (priv_dim,), "action": (act_dim,)}
    widths |= {"expert_action": (act_dim,), "policy_action": (act_dim,)}
    return {name: (widths.get(name, ()), dtype) for name, dtype in {**DATA_ARRAYS, **DEPLOY_ARRAYS}.items()}


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
    """Append-only Zarr log of controller steps, grouped into episodes (see the module doc)."""

    def __init__(
        self,
        path: str | Path,
        attrs: Mapping[str, Any],
        obs_names: Sequence[str],
        action_names: Sequence[str],
        privileged_dim: int = 0,
        dynamics_names: Sequence[str] = (),
        chunk_steps: int = 1024,
        commit_s: float = 1.0,
    ):
        if not commit_s > 0:
            raise ValueError(f"deploy.log_commit_s={commit_s} must be > 0")
        self.path = Path(path)
        self._chunk, self._commit_s = chunk_steps, commit_s
        self._dyn_names = tuple(dynamics_names)
        self._fields = _data_fields(len(obs_names), privileged_dim, len(action_names))
        header = _root_attrs(attrs, obs_names, action_names, privileged_dim, dynamics_names)
        _create_store(self.path, header, self._fields, len(dynamics_names), chunk_steps)
        self._buf = self._new_buffers()
        self._n = 0  # rows in the current buffer
        self._sent = 0  # rows of the current buffer already handed to the writer
        self._steps = 0  # rows appended in total
        self._committed = 0  # steps covered by meta/episode_ends
        self._return = 0.0  # reward since the last commit, the newest step's excluded
        self._newest_reward = 0.0
        self._seed, self._dynamics = -1, None  # of the running episode (begin_episode)
        self._last_commit = time.monotonic()
        self._writer = WriterProcess(self.path, on_failure=self._warn)
        self.closed = False

    def _new_buffers(self) -> dict[str, np.ndarray]:
        return {n: np.zeros((self._chunk, *s), d) for n, (s, d) in self._fields.items()}

    def _warn(self) -> None:
        print(f"deploy: warning: the log writer of {self.path} stopped; later steps are not logged "
              "(the reason is reported when the log closes)", file=sys.stderr)  # fmt: skip

    def begin_episode(self, seed: int = -1, dynamics: Mapping[str, float] | None = None) -> None:
        """What the running episode's commits record before it ends (optional; end_episode overrides)."""
        self._seed, self._dynamics = seed, dynamics

    def append(self, **row: Any) -> None:
        """One step; keys are the data fields (a missing one is NaN, or 0 for integers).

        Observations must be finite in a demo store: a step whose readings were NaN/inf (or absent)
        is logged with those entries as 0, and its `events` say why (filter on them before training).
        """
        self._writer.pump()  # the pipe takes what earlier frames left queued
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
        self._return += self._newest_reward
        self._newest_reward = np.nan if reward is None else float(reward)  # NaN: a step had no reward
        self._n += 1
        self._steps += 1
        if self._n == self._chunk:
            self._hand_over()
        if time.monotonic() - self._last_commit >= self._commit_s:
            self._commit(final=False)

    def _hand_over(self) -> None:
        """Send the rows not sent yet; a full buffer is replaced (the pipe queue still holds views of it)."""
        if self._n > self._sent:
            self._writer.send("data", {name: buf[self._sent : self._n] for name, buf in self._buf.items()})
            self._sent = self._n
        if self._n == self._chunk:
            self._buf, self._n, self._sent = self._new_buffers(), 0, 0

    def _commit(
        self,
        final: bool,
        seed: int | None = None,
        dynamics=None,
        terminated: bool = False,
        whole: bool = False,
    ) -> None:
        """Hand over the rows so far and commit the running episode's steps since the last commit as a
        segment: inside the episode all but the newest step (so its last segment is never empty), at
        its end (`final`) or when the log closes mid-episode (`whole`) all of them."""
        self._hand_over()
        self._last_commit = time.monotonic()
        whole = whole or final
        end = self._steps if whole else self._steps - 1
        if end <= self._committed:
            return
        ret = self._return + self._newest_reward if whole else self._return
        dyn = dynamics if dynamics is not None else (self._dynamics or {})
        row = {
            "episode_return": np.array([ret], np.float32),
            "episode_dynamics": np.array([[dyn.get(n, np.nan) for n in self._dyn_names]], np.float32),
            "episode_source": np.array([SOURCE_DEPLOY], np.int32),
            "episode_seed": np.array([self._seed if seed is None else seed], np.int64),
            "episode_terminated": np.array([terminated and final], np.bool_),
            CONTINUED: np.array([not final], np.bool_),
            "episode_ends": np.array([end], np.int64),
        }
        order = [CONTINUED, *META_ARRAYS]  # the store's write order: episode_ends last
        self._writer.send("meta", {name: row[name] for name in order})  # after the data: one pipe, in order
        self._committed, self._return = end, 0.0
        if whole:
            self._newest_reward = 0.0

    def end_episode(
        self, seed: int = -1, dynamics: Mapping[str, float] | None = None, terminated: bool = False
    ) -> None:
        """Commit the steps since the last commit as the episode's last segment (no-op when there are
        none); `dynamics` by name (a name the log has and the mapping lacks is NaN)."""
        if self._steps == self._committed:
            return
        self._commit(True, seed, dynamics or {}, terminated)
        self._seed, self._dynamics = -1, None

    def close(self, summary: Mapping[str, Any] | None = None, timeout: float = 120.0) -> None:
        """Wait for the writer (LogError if it failed, or took nothing for `timeout` s); `summary` is
        merged into the `deploy` attribute. A running episode stays listed as unfinished."""
        if self.closed:
            return
        self.closed = True
        self._commit(final=False, whole=True)  # an episode still running stays marked unfinished
        try:
            self._writer.close(None if summary is None else _jsonable(summary), timeout)
        except RuntimeError as e:
            raise LogError(
                f"deployment log {self.path}: {e}; the episodes committed before are intact "
                "(check free space and permissions of the log directory)"
            ) from None


def _create_store(path: Path, header: dict[str, Any], fields, dynamics_dim: int, chunk_steps: int) -> None:
    """An empty store: root attributes, `data/*` (chunk = one buffer) and `meta/*` arrays."""
    try:
        import zarr
    except ImportError as e:  # pragma: no cover - the dev install has zarr
        raise ImportError("the deployment log needs zarr (pip install zarr), or run without a log") from e
    widths = {"episode_dynamics": (dynamics_dim,)}
    meta = {name: (widths.get(name, ()), dtype) for name, dtype in {**META_ARRAYS, CONTINUED: "bool"}.items()}
    try:
        root = zarr.open_group(str(path), mode="w-", zarr_format=3)
        root.attrs.update(header)
        for group, specs, rows in (("data", fields, chunk_steps), ("meta", meta, 1024)):
            for name, (shape, dtype) in specs.items():
                root.create_array(
                    f"{group}/{name}",
                    shape=(0, *shape),
                    chunks=(rows, *(max(1, d) for d in shape)),
                    dtype=dtype,
                    fill_value=np.nan if dtype[0] == "f" else 0,
                )
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise LogError(
            f"cannot create the deployment log {path}: {reason} (free space, fix the directory's "
            "permissions, or pick another log directory; or run without a log)"
        ) from e


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
            "deploy": {"unfinished_episodes": [], **dict(attrs.get("deploy", {}))},
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
