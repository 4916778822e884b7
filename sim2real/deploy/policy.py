"""`load_policy(dir)`: the exported policy behind a small streaming API (numpy + onnxruntime only).

The ONNX graph is a step function `(obs (1, Ds), state (1, S)) -> (action (1, Da), next_state (1, S))`
with the normalizer and the history handling inside; the runtime only carries the state between
steps, so a step never recomputes what the previous one computed. Before anything runs, the file's
sha256 and its embedded metadata are checked against `policy.json`, from the same bytes that are
then loaded (no window between check and use).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from sim2real.artifacts import POLICY_JSON, POLICY_ONNX, POLICY_WINDOW_ONNX
from sim2real.deploy.spec import (
    METADATA_KEY,
    PolicyMismatch,
    PolicySpec,
    check_robot_layout,
    embedded,
    first_difference,
    validate_metadata,
)

# |observation entry| above this is refused: no sensor reading or normalized feature of a robot comes
# near it, while a float32 network fed one returns garbage (1e30 saturates, 1e39 is inf in float32)
OBS_LIMIT = 1e6


def bad_entries(obs: np.ndarray, names) -> list[str]:
    """`name=value` of the entries of `obs` that are NaN, inf or beyond ±OBS_LIMIT."""
    bad = ~(np.abs(np.asarray(obs, np.float64)) <= OBS_LIMIT)
    return [f"{names[i] if i < len(names) else i}={obs[i]!r}" for i in np.flatnonzero(bad)]


def check_obs(obs: np.ndarray, spec: PolicySpec) -> None:
    """Raise ValueError naming the entries of `obs` (Ds,) that are not finite or absurdly large."""
    if obs.shape != (spec.obs_dim,):
        raise ValueError(f"observation has shape {obs.shape}, the policy takes ({spec.obs_dim},)")
    if not (np.abs(obs) <= OBS_LIMIT).all():  # one pass catches NaN too (NaN <= x is False)
        entries = ", ".join(bad_entries(obs, spec.obs_names))
        raise ValueError(
            f"observation refused (NaN, inf or |x| > {OBS_LIMIT:g}): {entries}; the policy's history "
            "is unchanged"
        )


def make_session(model: bytes, threads: int = 1) -> ort.InferenceSession:
    """A CPU session for one control loop: `threads` intra-op threads, full graph optimization."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def read_policy_json(export_dir: Path) -> dict[str, Any]:
    path = export_dir / POLICY_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {export_dir} an export dir (sim2real export)?")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise PolicyMismatch(f"{path}: not valid JSON ({e})") from e
    validate_metadata(meta, str(path))
    return meta


def load_verified(export_dir: Path, file: str, sha_key: str) -> tuple[dict[str, Any], ort.InferenceSession]:
    """policy.json and a session of `file`, after checking the file's sha256 and embedded metadata."""
    meta = read_policy_json(export_dir)
    path = export_dir / file
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    model = path.read_bytes()
    digest = hashlib.sha256(model).hexdigest()
    if meta.get(sha_key) != digest:
        raise PolicyMismatch(
            f"{path}: sha256 {digest[:16]}… does not match {POLICY_JSON} {sha_key} "
            f"{str(meta.get(sha_key))[:16]}…: the file was modified or belongs to another export"
        )
    try:
        session = make_session(model)
    except Exception as e:  # onnxruntime raises its own exception types
        raise PolicyMismatch(f"{path}: onnxruntime cannot load it: {e}") from e
    inner = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if inner is None:
        raise PolicyMismatch(f"{path}: no {METADATA_KEY!r} metadata in the ONNX file")
    key = first_difference(json.loads(inner), embedded(meta))
    if key is not None:
        raise PolicyMismatch(f"{path}: embedded metadata differs from {POLICY_JSON} in field {key!r}")
    return meta, session


def _check_io(session: ort.InferenceSession, expected: dict[str, list[int]], where: str) -> None:
    """The graph's inputs and outputs must be exactly the contract's names and static shapes."""
    got = {a.name: list(a.shape) for a in (*session.get_inputs(), *session.get_outputs())}
    for name, shape in expected.items():
        if name not in got:
            raise PolicyMismatch(f"{where}: graph has no input/output {name!r} (has {sorted(got)})")
        if got[name] != shape:
            raise PolicyMismatch(f"{where}: {name!r} has shape {got[name]}, metadata says {shape}")


class Policy:
    """Streaming policy: `act(obs (Ds,)) -> action (Da,)` float32, keeping the history state itself.

    Per step it copies the observation into a preallocated buffer and runs the session through two
    prebuilt IO bindings that ping-pong between two state buffers (no allocation, no dict building).
    """

    def __init__(self, spec: PolicySpec, session: ort.InferenceSession):
        self.spec = spec
        self._session = session
        ds, da, s = spec.obs_dim, spec.action_dim, spec.state_dim
        _check_io(
            session, {"obs": [1, ds], "state": [1, s], "action": [1, da], "next_state": [1, s]}, "policy"
        )
        self._obs = np.zeros((1, ds), np.float32)
        self._action = np.zeros((1, da), np.float32)
        self._states = (np.zeros((1, s), np.float32), np.zeros((1, s), np.float32))
        self._bindings = (self._bind(0), self._bind(1))
        self._k = 0  # index of the state buffer holding the current state

    def _bind(self, k: int) -> ort.IOBinding:
        b = self._session.io_binding()
        _bind_array(b.bind_input, "obs", self._obs)
        _bind_array(b.bind_input, "state", self._states[k])
        _bind_array(b.bind_output, "action", self._action)
        _bind_array(b.bind_output, "next_state", self._states[1 - k])
        return b

    def reset(self) -> None:
        """Start of an episode: clear the history."""
        for s in self._states:
            s.fill(0.0)
        self._k = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        """One step. A non-finite or absurd entry (|x| > OBS_LIMIT) is a ValueError naming it, raised
        before anything changes: the next call acts as if the refused one never happened."""
        check_obs(np.asarray(obs), self.spec)
        self._obs[0] = obs
        self._session.run_with_iobinding(self._bindings[self._k])
        self._k ^= 1
        return self._action[0].copy()

    def check_robot(self, reading_names, action_names=None, allow_extra: bool = True) -> None:
        """Raise `PolicyMismatch` naming the first difference between this policy and a robot's layout."""
        check_robot_layout(self.spec, reading_names, action_names, allow_extra)


def _bind_array(bind, name: str, arr: np.ndarray) -> None:
    bind(name, "cpu", 0, np.float32, list(arr.shape), arr.ctypes.data)


class WindowPolicy:
    """Full recomputation over the last `history` observations (`policy_window.onnx`): the reference the
    streaming policy is tested against, and the baseline of the latency benchmark."""

    def __init__(self, spec: PolicySpec, session: ort.InferenceSession):
        self.spec = spec
        self._session = session
        h, ds = spec.history, spec.obs_dim
        _check_io(
            session, {"obs_window": [1, h, ds], "valid": [1, h], "action": [1, spec.action_dim]}, "window"
        )
        self._window = np.zeros((1, h, ds), np.float32)  # (1, H, Ds), newest last
        self._valid = np.zeros((1, h), np.bool_)  # (1, H)
        self._feeds = {"obs_window": self._window, "valid": self._valid}

    def reset(self) -> None:
        self._window.fill(0.0)
        self._valid.fill(False)

    def act(self, obs: np.ndarray) -> np.ndarray:
        check_obs(np.asarray(obs), self.spec)  # as Policy.act: refused before the window shifts
        self._window[0, :-1] = self._window[0, 1:]
        self._valid[0, :-1] = self._valid[0, 1:]
        self._window[0, -1] = obs
        self._valid[0, -1] = True
        return self._session.run(["action"], self._feeds)[0][0]


def load_policy(export_dir: str | Path) -> Policy:
    """The streaming policy of an export dir; raises `PolicyMismatch` (naming the field or hash at
    fault) when policy.onnx, its embedded metadata and policy.json disagree."""
    export_dir = Path(export_dir)
    meta, session = load_verified(export_dir, POLICY_ONNX, "onnx_sha256")
    return Policy(PolicySpec.from_metadata(meta), session)


def load_window_policy(export_dir: str | Path) -> WindowPolicy:
    """The full-recompute policy (`policy_window.onnx`, hash `window_onnx_sha256` in policy.json)."""
    export_dir = Path(export_dir)
    meta, session = load_verified(export_dir, POLICY_WINDOW_ONNX, "window_onnx_sha256")
    return WindowPolicy(PolicySpec.from_metadata(meta), session)
