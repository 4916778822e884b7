"""Robot mappings (`conf/robot/*.yaml`): which motor and IMU fields a policy's readings come from and
how its actions become motor commands, so a DDS robot's readings arrive under the policy's `obs_names`.

    profile: unitree_go            # message set (sim2real.deploy.dds.PROFILES)
    task: pendulum                 # optional: the policy's task, checked at load
    readings:                      # reading name -> where it comes from
      pole/cos: {field: q, motor: 0, transform: cos}       # value = scale * cos(q[motor] + offset)
      imu/quat_w: {field: quat, index: 0}                  # IMU component (w, x, y, z)
    actions:                       # in the policy's action order
      torque: {motor: 0, mode: torque, scale: 2.0}         # tau = scale * action + offset  [N m]
      # or {motor: 3, mode: position, scale: 0.25, offset: 0.8, kp: 20, kd: 0.5}: q = scale * a + offset

Joint fields (`q`, `dq`, `ddq`, `tau`) take a `motor` slot; IMU fields (`quat`, `gyro`, `acc`, `rpy`)
take a component `index`, and so does `remote`: the wireless remote's sticks (lx, rx, ry, ly) in a
Unitree state, e.g. a velocity command `command/vx: {field: remote, index: 3}`. `const` is a reading that
is always `scale * offset` (a fixed command: `command/vx: {field: const, offset: 0.5}`).
`robot.domain`, `robot.interface` and `robot.connect_timeout` set the link.
The same dataclass is Hydra's `robot` group schema and what `load_mapping` fills from YAML alone (the
lean deploy image has no Hydra), so an unknown key is an error either way. Pure Python + numpy.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.errors import UserError

JOINT_FIELDS = ("q", "dq", "ddq", "tau")
IMU_FIELDS = {"quat": 4, "gyro": 3, "acc": 3, "rpy": 3}
# fields of the state beside joints and IMU (component `index`); `const` reads 0 before scale and offset
OTHER_FIELDS = {"remote": 4, "const": 1}
INDEXED = IMU_FIELDS | OTHER_FIELDS
TRANSFORMS = ("none", "cos", "sin")
MODES = ("torque", "position")
CONF_DIR = Path(__file__).resolve().parents[3] / "conf" / "robot"


class MappingError(UserError):
    """A robot mapping is malformed, or does not fit the policy or the profile (names the first fault)."""


@dataclass
class ReadingMap:
    field: str = "q"  # q | dq | ddq | tau (joint), quat | gyro | acc | rpy (IMU), remote (sticks) | const
    motor: int | None = None  # joint fields: motor slot in the profile's message
    index: int | None = None  # IMU fields: component (quat: w, x, y, z); remote: lx, rx, ry, ly
    transform: str = "none"  # none | cos | sin, applied to (raw + offset)
    scale: float = 1.0
    offset: float = 0.0


@dataclass
class ActionMap:
    motor: int = 0
    mode: str = "torque"  # torque: tau = scale·a + offset; position: q = scale·a + offset with kp, kd
    scale: float = 1.0
    offset: float = 0.0
    # stiffness [N m/rad] and damping [N m s/rad] sent with each command (position mode needs kp > 0);
    # a profile without gains (ros2) leaves them to the robot's controller: robot-sim emulates that one
    kp: float = 0.0
    kd: float = 0.0


@dataclass
class RobotConfig:
    """A robot mapping plus the link settings (`robot=<name> robot.interface=eth0`)."""

    name: str = ""  # the mapping's name (file stem); informational
    profile: str = "unitree_go"  # unitree_go | unitree_hg | ros2
    task: str | None = None  # the task its policies are trained on (checked against the policy)
    tasks: list[str] = field(default_factory=list)  # more tasks of the same robot (go2_rough: other ground)
    readings: dict[str, ReadingMap] = field(default_factory=dict)
    actions: dict[str, ActionMap] = field(default_factory=dict)
    domain: int = 0  # DDS domain id
    interface: str | None = None  # None: loopback only; name one (eth0) to reach a robot
    connect_timeout: float = 2.0  # s to wait for the first state at connect
    joint_names: list[str] | None = None  # ros2: JointState names of motors 0, 1, ... (matched by name)
    state_topic: str | None = None  # None: the profile's
    command_topic: str | None = None  # None: the profile's
    # the stop command's damping [N m s/rad] on the driven motors (q, dq, kp, tau = 0), as the vendor's
    # unitree_rl_gym `create_damping_cmd` stops a robot; profiles without gains (ros2) repeat the safe action
    damping_kd: float = 8.0

    def fits(self, task: str) -> bool:
        """Whether a policy of `task` runs on this robot (no task named: any)."""
        return not self.task or task == self.task or task in self.tasks

    def motors(self) -> list[int]:
        """Motor slots the mapping uses, sorted: joint j of the codec is slot motors()[j]."""
        used = {r.motor for r in self.readings.values() if r.field in JOINT_FIELDS}
        return sorted(used | {a.motor for a in self.actions.values()})


# -- loading ----------------------------------------------------------------------------------------
def resolve(name_or_path: str) -> Path:
    """`go2` -> conf/robot/go2.yaml; an existing path is taken as is."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise MappingError(f"robot mapping {p} does not exist")
        return p
    candidate = CONF_DIR / f"{name_or_path}.yaml"
    if not candidate.exists():
        have = sorted(f.stem for f in CONF_DIR.glob("*.yaml")) if CONF_DIR.exists() else []
        raise MappingError(f"no robot mapping {name_or_path!r} (looked for {candidate}; have {have})")
    return candidate


def load_mapping(name_or_path: str, **overrides: Any) -> RobotConfig:
    """Read a mapping file with PyYAML (no Hydra) into a checked `RobotConfig`; `overrides` set link
    fields (domain=, interface=, ...)."""
    import yaml

    path = resolve(name_or_path)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise MappingError(f"{path}: not valid YAML: {e}") from e
    doc = {k: v for k, v in doc.items() if k != "defaults"}
    doc.setdefault("name", path.stem)
    doc.update({k: v for k, v in overrides.items() if v is not None})
    return check(from_dict(doc, str(path)), str(path))


def from_dict(doc: Mapping[str, Any], source: str) -> RobotConfig:
    """Strict conversion: unknown keys and wrong types are errors naming `source` and the key."""
    if not isinstance(doc, Mapping):
        raise MappingError(f"{source}: expected a mapping at the top level, got {type(doc).__name__}")
    top = _fields(RobotConfig, doc, source, "")
    top["readings"] = {
        str(k): ReadingMap(**_fields(ReadingMap, v, source, f"readings.{k}."))
        for k, v in (doc.get("readings") or {}).items()
    }
    top["actions"] = {
        str(k): ActionMap(**_fields(ActionMap, v, source, f"actions.{k}."))
        for k, v in (doc.get("actions") or {}).items()
    }
    return RobotConfig(**top)


_SCALAR = {"int": int, "float": float, "str": str}


def _fields(cls, doc: Any, source: str, prefix: str) -> dict[str, Any]:
    if not isinstance(doc, Mapping):
        raise MappingError(f"{source}: {prefix[:-1] or 'top level'} must be a mapping, got {doc!r}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key not in known:
            raise MappingError(f"{source}: unknown key {prefix}{key} (known: {sorted(known)})")
        if key in ("readings", "actions"):
            continue
        if key == "joint_names" and value is not None:
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise MappingError(f"{source}: joint_names must be a list of names, got {value!r}")
            out[key] = list(value)
            continue
        kind = str(known[key].type).replace(" | None", "")
        want = _SCALAR.get(kind)
        if value is None or want is None:
            out[key] = value
        elif want is float and isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(value)
        elif isinstance(value, want) and not isinstance(value, bool):
            out[key] = value
        else:
            raise MappingError(f"{source}: {prefix}{key} must be {kind}, got {value!r}")
    return out


def check(cfg: RobotConfig, source: str = "robot mapping") -> RobotConfig:
    """Refuse a malformed mapping, naming the first bad entry; returns `cfg`."""
    from sim2real.deploy.dds.profiles import PROFILES

    if cfg.profile not in PROFILES:
        raise MappingError(f"{source}: profile {cfg.profile!r} is not one of {sorted(PROFILES)}")
    if not cfg.readings:
        raise MappingError(f"{source}: no readings")
    if not cfg.actions:
        raise MappingError(f"{source}: no actions")
    for name, r in cfg.readings.items():
        where = f"{source}: readings.{name}"
        if r.field in JOINT_FIELDS:
            if r.motor is None or r.motor < 0 or r.index is not None:
                raise MappingError(f"{where}: field {r.field} needs `motor` (a slot >= 0) and no `index`")
        elif r.field == "const":
            if r.motor is not None or r.index not in (None, 0):
                raise MappingError(f"{where}: field const takes no `motor` or `index` (its value: offset)")
        elif r.field in INDEXED:
            n = INDEXED[r.field]
            if r.index is None or not 0 <= r.index < n or r.motor is not None:
                raise MappingError(f"{where}: field {r.field} needs `index` in [0, {n}) and no `motor`")
        else:
            raise MappingError(f"{where}: unknown field {r.field!r} (one of {[*JOINT_FIELDS, *INDEXED]})")
        if r.transform not in TRANSFORMS:
            raise MappingError(f"{where}: transform {r.transform!r} is not one of {TRANSFORMS}")
        if not (math.isfinite(r.scale) and r.scale != 0 and math.isfinite(r.offset)):
            raise MappingError(f"{where}: scale must be finite and non-zero, offset finite")
    motors = [a.motor for a in cfg.actions.values()]
    for name, a in cfg.actions.items():
        where = f"{source}: actions.{name}"
        if a.mode not in MODES:
            raise MappingError(f"{where}: mode {a.mode!r} is not one of {MODES}")
        if a.motor < 0 or motors.count(a.motor) > 1:
            raise MappingError(f"{where}: motor {a.motor} must be >= 0 and used by one action only")
        if not (math.isfinite(a.scale) and a.scale != 0) or a.kp < 0 or a.kd < 0:
            raise MappingError(f"{where}: scale must be finite and non-zero, kp and kd >= 0")
    if cfg.connect_timeout <= 0:
        raise MappingError(f"{source}: connect_timeout must be > 0 s, got {cfg.connect_timeout}")
    if not (math.isfinite(cfg.damping_kd) and cfg.damping_kd >= 0):
        raise MappingError(f"{source}: damping_kd must be >= 0, got {cfg.damping_kd}")
    return cfg


def check_profile(cfg: RobotConfig, motor_slots: int, has_imu: bool, has_gains: bool, source: str) -> None:
    """Refuse what the profile's messages cannot carry (slots beyond its motors, an IMU, mixed modes in
    one array) and position commands without stiffness where the message carries the gains."""
    for name, r in cfg.readings.items():
        if r.field in JOINT_FIELDS and r.motor >= motor_slots:
            raise MappingError(
                f"{source}: readings.{name} uses motor {r.motor}; profile {cfg.profile} has {motor_slots}"
            )
        if r.field in IMU_FIELDS and not has_imu:
            raise MappingError(f"{source}: readings.{name} reads the IMU; profile {cfg.profile} has none")
        if r.field == "remote" and not has_imu:  # the Unitree states carry both; ROS 2 JointState neither
            raise MappingError(f"{source}: readings.{name} reads the remote; profile {cfg.profile} has none")
    for name, a in cfg.actions.items():
        if a.motor >= motor_slots:
            raise MappingError(
                f"{source}: actions.{name} drives motor {a.motor}; profile {cfg.profile} has {motor_slots}"
            )
        if a.mode == "position" and has_gains and a.kp == 0:
            raise MappingError(f"{source}: actions.{name}: position mode needs kp > 0")
    modes = {a.mode for a in cfg.actions.values()}
    if not has_gains and len(modes) > 1:
        raise MappingError(f"{source}: profile {cfg.profile} sends one array: actions must share one mode")
    if cfg.joint_names is not None and len(cfg.joint_names) <= max(cfg.motors()):
        raise MappingError(
            f"{source}: joint_names has {len(cfg.joint_names)} names; motor {max(cfg.motors())} is used"
        )


def check_policy(cfg: RobotConfig, spec, source: str = "robot mapping") -> None:
    """Refuse a mapping that does not fit the policy (`PolicySpec`), naming the first mismatch."""
    from envs.observations import PREV_ACTION_PREFIX

    if spec.task and not cfg.fits(spec.task):
        raise MappingError(f"{source} is for task {cfg.task!r}; the policy is for {spec.task!r}")
    for i, name in enumerate(spec.obs_names):
        if not name.startswith(PREV_ACTION_PREFIX) and name not in cfg.readings:
            raise MappingError(
                f"{source} has no reading {name!r} (the policy's obs_names[{i}]); "
                f"it maps {list(cfg.readings)}"
            )
    have = list(cfg.actions)
    for i, name in enumerate(spec.action_names):
        if i >= len(have) or have[i] != name:
            got = have[i] if i < len(have) else "nothing"
            raise MappingError(
                f"{source}: action {i} is {got!r}, the policy's action_names[{i}] is {name!r} "
                f"(actions must be listed in the policy's order)"
            )
    if len(have) > len(spec.action_names):
        raise MappingError(f"{source}: action {have[len(spec.action_names)]!r} is not one of the policy's")


# -- per-step conversion ----------------------------------------------------------------------------
class Converter:
    """Vectorized readings <-> state fields and actions <-> motor commands of one mapping.

    `joint` index j is motor slot `motors[j]`: what the codec's (n,) arrays hold.
    """

    def __init__(self, cfg: RobotConfig):
        self.cfg = cfg
        self.motors = cfg.motors()
        self.slot = slot = {m: j for j, m in enumerate(self.motors)}  # motor index -> joint order
        self.reading_names = tuple(cfg.readings)
        self.action_names = tuple(cfg.actions)
        rs = list(cfg.readings.values())
        # readings come from one stacked source vector: q, dq, ddq, tau (n each), quat, gyro, acc, rpy,
        # remote, const (always 0)
        n = len(self.motors)
        sizes = [(k, n) for k in JOINT_FIELDS] + list(INDEXED.items())
        starts = np.cumsum([0] + [size for _, size in sizes])
        self._parts = [
            (k, int(a), int(a) + size) for (k, size), a in zip(sizes, starts, strict=False) if k != "const"
        ]
        base = dict(zip([k for k, _ in sizes], starts.tolist(), strict=False))
        self._src = np.zeros(int(starts[-1]))  # (4n + 13,)
        where = [slot[r.motor] if r.field in JOINT_FIELDS else r.index or 0 for r in rs]
        self._gather = np.array([base[r.field] + i for r, i in zip(rs, where, strict=True)], np.intp)  # (R,)
        self._scale = np.array([r.scale for r in rs])
        self._offset = np.array([r.offset for r in rs])
        self._cos = np.array([r.transform == "cos" for r in rs])
        self._sin = np.array([r.transform == "sin" for r in rs])
        acts = list(cfg.actions.values())
        self.action_joint = np.array([slot[a.motor] for a in acts], np.intp)  # (A,)
        self.action_scale = np.array([a.scale for a in acts], np.float32)
        self.action_offset = np.array([a.offset for a in acts], np.float32)
        self.position = np.array([a.mode == "position" for a in acts])
        self.kp = np.zeros(n, np.float32)
        self.kd = np.zeros(n, np.float32)
        self.kp[self.action_joint] = [a.kp for a in acts]
        self.kd[self.action_joint] = [a.kd for a in acts]
        self.damping_kd = np.zeros(n, np.float32)  # (n,) the stop command's kd
        self.damping_kd[self.action_joint] = cfg.damping_kd
        self._q = np.zeros(n, np.float32)
        self._tau = np.zeros(n, np.float32)

    def readings(self, state) -> dict[str, float]:
        """Readings by name from a decoded state (codec `StateView`)."""
        src = self._src
        for key, a, b in self._parts:
            src[a:b] = getattr(state, key)
        raw = src[self._gather] + self._offset
        raw = np.where(self._cos, np.cos(raw), np.where(self._sin, np.sin(raw), raw)) * self._scale
        return dict(zip(self.reading_names, raw.tolist(), strict=True))

    def command(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(q, tau) per joint (n,) for an action (A,): position entries set q, torque entries tau."""
        target = self.action_scale * np.asarray(action, np.float32) + self.action_offset  # (A,)
        self._q[self.action_joint] = np.where(self.position, target, 0.0)
        self._tau[self.action_joint] = np.where(self.position, 0.0, target)
        return self._q, self._tau


def joint_state_from_readings(conv: Converter, readings: Mapping[str, float]) -> dict[str, np.ndarray]:
    """The inverse map for a simulator: joint/IMU fields that give these readings (robot-sim).

    An identity entry is inverted exactly; a cos/sin pair on one field gives atan2; a lone cos or sin
    gives acos/asin (its sign is lost). Fields no reading covers stay 0 (quat: identity). A `remote`
    reading sets the stick that gives it (the simulated operator commands what the task commands);
    `const` readings are the controller's own and have no inverse.
    """
    n = len(conv.motors)
    slot = conv.slot
    out = {k: np.zeros(n) for k in JOINT_FIELDS} | {k: np.zeros(d) for k, d in INDEXED.items()}
    out["quat"][0] = 1.0
    trig: dict[tuple[str, int], dict[str, float]] = {}
    for name, r in conv.cfg.readings.items():
        if r.field == "const":
            continue
        v = float(readings[name]) / r.scale
        where = (r.field, slot[r.motor] if r.field in JOINT_FIELDS else r.index)
        if r.transform == "none":
            out[where[0]][where[1]] = v - r.offset
        else:
            trig.setdefault(where, {"offset": r.offset})[r.transform] = v
    for (fld, i), t in trig.items():
        if "cos" in t and "sin" in t:
            angle = math.atan2(t["sin"], t["cos"])
        elif "cos" in t:
            angle = math.acos(max(-1.0, min(1.0, t["cos"])))
        else:
            angle = math.asin(max(-1.0, min(1.0, t["sin"])))
        out[fld][i] = angle - t["offset"]
    return out


def mapping_for(cfg_or_name: RobotConfig | str, **overrides: Any) -> RobotConfig:
    if isinstance(cfg_or_name, RobotConfig):
        cfg = dataclasses.replace(cfg_or_name, **{k: v for k, v in overrides.items() if v is not None})
        return check(cfg, f"robot mapping {cfg.name or '(config)'}")
    return load_mapping(cfg_or_name, **overrides)
