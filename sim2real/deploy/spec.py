"""The exported policy's metadata: `policy.json`, the copy inside the ONNX file, and `PolicySpec`.

Everything a controller needs (observation names, action bounds, control period, history) travels
with the artifact, so nothing is copied by hand into a robot config. `policy.json` carries two
fields the ONNX copy cannot (a file cannot contain its own hash): `onnx_sha256` and
`artifact_sha256`; every other field must be identical in both copies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sim2real.errors import UserError

FORMAT = "sim2real-policy"
FORMAT_VERSION = 1
METADATA_KEY = "sim2real"  # ONNX metadata_props key holding the embedded policy.json
# in policy.json only (hashes of the exported files); the window file is optional
HASH_FIELDS = ("onnx_sha256", "artifact_sha256", "window_onnx_sha256", "torchscript_sha256")
REQUIRED = (
    "format",
    "format_version",
    "task",
    "obs_names",
    "obs_dim",
    "action_names",
    "action_dim",
    "action_low",
    "action_high",
    "max_action_rate",
    "control_dt",
    "history",
    "state_dim",
    "model",
    "schema_version",
    "checkpoint_sha256",
)


class PolicyMismatch(UserError):
    """An exported policy does not match its metadata, its hash, or the robot it is run on."""


@dataclass(frozen=True)
class PolicySpec:
    """What a controller needs to know about a policy (read from `policy.json`)."""

    obs_names: tuple[str, ...]
    obs_dim: int
    action_names: tuple[str, ...]
    action_dim: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    control_dt: float  # seconds per policy step
    history: int  # steps of observation history the policy attends to
    task: str
    artifact_sha256: str
    state_dim: int = 1
    max_action_rate: float | None = None  # per second, or None (no rate limit from the export)
    soft_start_s: float | None = None  # the controller's ramp for this policy; None: the controller's default

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> PolicySpec:
        return cls(
            obs_names=tuple(meta["obs_names"]),
            obs_dim=int(meta["obs_dim"]),
            action_names=tuple(meta["action_names"]),
            action_dim=int(meta["action_dim"]),
            action_low=tuple(float(v) for v in meta["action_low"]),
            action_high=tuple(float(v) for v in meta["action_high"]),
            control_dt=float(meta["control_dt"]),
            history=int(meta["history"]),
            task=str(meta["task"]),
            artifact_sha256=str(meta["artifact_sha256"]),
            state_dim=int(meta["state_dim"]),
            max_action_rate=None if meta["max_action_rate"] is None else float(meta["max_action_rate"]),
            soft_start_s=None if meta.get("soft_start_s") is None else float(meta["soft_start_s"]),
        )


def embedded(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The part of policy.json stored inside the ONNX file (everything but the file's own hashes)."""
    return {k: v for k, v in meta.items() if k not in HASH_FIELDS}


def encode(meta: Mapping[str, Any]) -> str:
    return json.dumps(embedded(meta), sort_keys=True)


def validate_metadata(meta: Mapping[str, Any], where: str) -> None:
    """Structural checks of policy.json; the message names `where` and the field at fault."""
    missing = [k for k in (*REQUIRED, *HASH_FIELDS[:2]) if k not in meta]
    if missing:
        raise PolicyMismatch(f"{where}: missing field(s) {', '.join(missing)}")
    if meta["format"] != FORMAT:
        raise PolicyMismatch(f"{where}: format is {meta['format']!r}, expected {FORMAT!r}")
    if meta["format_version"] != FORMAT_VERSION:
        raise PolicyMismatch(
            f"{where}: format_version {meta['format_version']} is not supported (this runtime reads "
            f"{FORMAT_VERSION}); re-export the policy with this version of sim2real"
        )
    _check_len(meta, "obs_names", "obs_dim", where)
    for key in ("action_names", "action_low", "action_high"):
        _check_len(meta, key, "action_dim", where)
    if any(lo > hi for lo, hi in zip(meta["action_low"], meta["action_high"], strict=True)):
        raise PolicyMismatch(f"{where}: action_low exceeds action_high")
    if not float(meta["control_dt"]) > 0:
        raise PolicyMismatch(f"{where}: control_dt must be > 0, got {meta['control_dt']}")
    if meta["artifact_sha256"] != meta["onnx_sha256"]:
        raise PolicyMismatch(f"{where}: artifact_sha256 differs from onnx_sha256")


def _check_len(meta: Mapping[str, Any], key: str, dim_key: str, where: str) -> None:
    if len(meta[key]) != int(meta[dim_key]):
        raise PolicyMismatch(f"{where}: {key} has {len(meta[key])} entries but {dim_key} is {meta[dim_key]}")


def first_difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> str | None:
    """Name of the first key whose values differ between two metadata dicts (None if equal)."""
    for key in sorted(set(a) | set(b)):
        if (
            key not in a
            or key not in b
            or json.dumps(a[key], sort_keys=True) != json.dumps(b[key], sort_keys=True)
        ):
            return key
    return None


def check_robot_layout(
    spec: PolicySpec,
    reading_names: Sequence[str],
    action_names: Sequence[str] | None = None,
    allow_extra: bool = True,
) -> None:
    """Refuse a robot whose readings or actuators differ from what the policy was trained on.

    Every observation name except `prev_action/*` (which the controller supplies) must be among the
    robot's readings; the robot's actuators, when it reports them, must be the policy's actions in
    the same order (an action vector is positional). With `allow_extra=False` a reading the policy
    does not use is refused too.
    """
    from envs.observations import PREV_ACTION_PREFIX

    needed = [n for n in spec.obs_names if not n.startswith(PREV_ACTION_PREFIX)]
    have = set(reading_names)
    for name in needed:
        if name not in have:
            raise PolicyMismatch(
                f"observation layout mismatch: the policy needs reading {name!r}, which the robot does not "
                f"report (robot reports {list(reading_names)})"
            )
    extra = [n for n in reading_names if n not in set(needed)]
    if extra and not allow_extra:
        raise PolicyMismatch(
            f"observation layout mismatch: the robot reports {extra[0]!r}, unknown to the policy"
        )
    if action_names is not None and tuple(action_names) != spec.action_names:
        diff = next(
            (i for i, (x, y) in enumerate(zip(action_names, spec.action_names, strict=False)) if x != y),
            min(len(action_names), len(spec.action_names)),
        )
        raise PolicyMismatch(
            f"action layout mismatch at index {diff}: robot actuators {list(action_names)}, "
            f"policy actions {list(spec.action_names)}"
        )
