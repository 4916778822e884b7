"""`sim2real data to-mcap PATH.zarr OUT.mcap`: a demo store or deployment log as a ROS 2 MCAP file.

The file has the `ros2` profile (CDR-encoded messages, `.msg` schemas), so Foxglove opens it and
`ros2 bag info/play` reads it. One message per topic per step:

  /joint_states                     sensor_msgs/msg/JointState: the sensed joint state and the command
  /sim2real/observation             std_msgs/msg/Float32MultiArray: the policy's observation (student_obs)
  /sim2real/action                  std_msgs/msg/Float32MultiArray: the executed action
  /sim2real/policy_action           ... the raw policy output (deployment logs; steps the policy ran)
  /sim2real/expert_action           ... the expert's label (steps that have one)
  /sim2real/privileged_observation  ... (stores with privileged observations)
  /sim2real/reward                  std_msgs/msg/Float32 (steps with a reward)
  /sim2real/events                  std_msgs/msg/String: the safety events of a step, e.g. "clipped"
  /sim2real/episode                 std_msgs/msg/String: JSON (episode, seed, return, dynamics) at its start

JointState entries come from the observation names: `joint_pos/<j>` and `joint_vel/<j>` (the
legged tasks), and a `<j>/cos`, `<j>/sin` pair as the angle atan2(sin, cos) of joint `<j>` (the
pendulum's `pole`). `effort` is the executed action of the actuator named like the joint (the one
actuator of a one-joint robot drives that joint); an actuator matching no joint gets its own entry
with NaN position. Efforts are the policy's action units (the normalized command), not N·m. A
Float32MultiArray's single dimension is labelled with its entries' names joined by commas; the
`sim2real` metadata record lists them too, with the store's task, policy sha256 and attributes.

Timestamps: the log's `data/time` where it has one (a deployment log), else step × control_dt;
episodes follow one another (one control period apart), starting at the store's creation time.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.data import ros2_msgs
from sim2real.data.schema import DATA_ARRAYS, META_ARRAYS, describe
from sim2real.data.store import DemoStore
from sim2real.errors import UserError

BLOCK = 4096  # steps encoded at once (bounds memory on big stores)
_EXTRA = ("time", "policy_action", "events")  # deploy-log arrays beside the demo schema's
JOINT_STATE, FLOAT32_ARRAY = "sensor_msgs/msg/JointState", "std_msgs/msg/Float32MultiArray"
FLOAT32, STRING = "std_msgs/msg/Float32", "std_msgs/msg/String"


@dataclass(frozen=True)
class JointLayout:
    """How observation and action columns become JointState entries."""

    names: tuple[str, ...]
    position: tuple[tuple[int, ...], ...]  # per entry: () none, (i,) obs column i, (c, s) atan2(obs s, obs c)
    velocity: tuple[int | None, ...]  # obs column
    effort: tuple[int | None, ...]  # action column

    def arrays(self, obs: np.ndarray, action: np.ndarray) -> dict[str, np.ndarray]:
        """position / velocity / effort, each (N, J) float64 (NaN where an entry lacks one) or (N, 0)."""
        n, nan = len(obs), np.full(len(obs), np.nan)

        def pos(cols: tuple[int, ...]) -> np.ndarray:
            if len(cols) == 2:
                return np.arctan2(obs[:, cols[1]], obs[:, cols[0]])
            return obs[:, cols[0]] if cols else nan

        def column(src: np.ndarray, i: int | None) -> np.ndarray:
            return nan if i is None else src[:, i]

        fields = {
            "position": (any(self.position), [pos(c) for c in self.position]),
            "velocity": (any(i is not None for i in self.velocity), [column(obs, i) for i in self.velocity]),
            "effort": (any(k is not None for k in self.effort), [column(action, k) for k in self.effort]),
        }
        return {
            k: np.stack(cols, axis=1).astype(np.float64) if used and cols else np.zeros((n, 0))
            for k, (used, cols) in fields.items()
        }


def joint_layout(obs_names: Sequence[str], action_names: Sequence[str]) -> JointLayout:
    """JointState entries of a store (see the module docstring for the naming rules)."""
    col = {n: i for i, n in enumerate(obs_names)}
    joints: list[str] = []
    pos: dict[str, tuple[int, ...]] = {}
    vel: dict[str, int] = {}
    for i, n in enumerate(obs_names):
        if n.startswith("joint_pos/"):
            pos[j := n.removeprefix("joint_pos/")] = (i,)
        elif n.startswith("joint_vel/"):
            vel[j := n.removeprefix("joint_vel/")] = i
        elif n.endswith("/cos") and (j := n.removesuffix("/cos")) + "/sin" in col:
            pos[j] = (i, col[j + "/sin"])
        else:
            continue
        if j not in joints:
            joints.append(j)
    effort = {a: k for k, a in enumerate(action_names) if a in joints}  # entry -> action column
    extra: list[str] = []  # actuators matching no joint: entries of their own
    if len(joints) == 1 and len(action_names) == 1 and not effort:  # one actuator drives the one joint
        effort[joints[0]] = 0
    else:
        extra = [a for a in action_names if a not in joints]
        effort.update({a: k for k, a in enumerate(action_names) if a in extra})
    names = [*joints, *extra]
    return JointLayout(
        names=tuple(names),
        position=tuple(pos.get(j, ()) for j in names),
        velocity=tuple(vel.get(j) for j in names),
        effort=tuple(effort.get(j) for j in names),
    )


def load_steps(path: str | Path, episodes: Sequence[int] | None = None) -> tuple[DemoStore, dict[str, Any]]:
    """The store and the arrays of the selected episodes, in the given order: per step the demo
    schema's data arrays and a deployment log's extras, per episode its meta arrays (and index)."""
    store = DemoStore.open(path)
    arrays = store.load_arrays()
    import zarr

    root = zarr.open_group(str(store.path), mode="r")
    for name in _EXTRA:
        if f"data/{name}" in root:
            arrays[name] = np.asarray(root[f"data/{name}"][: store.num_steps])
    idx = np.arange(store.num_episodes) if episodes is None else np.asarray(episodes, np.int64)
    bad = idx[(idx < 0) | (idx >= store.num_episodes)]
    if len(bad):
        raise UserError(f"{store.path}: episode {int(bad[0])} out of range 0..{store.num_episodes - 1}")
    ends = arrays["episode_ends"]
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    rows = np.concatenate([np.arange(starts[e], ends[e]) for e in idx]) if len(idx) else np.zeros(0, int)
    out = {k: arrays[k][rows] for k in (*DATA_ARRAYS, *_EXTRA) if k in arrays}
    out.update({k: arrays[k][idx] for k in META_ARRAYS if k != "episode_ends"})
    out["episode_ends"] = np.cumsum(ends[idx] - starts[idx], dtype=np.int64)
    out["episode_index"] = idx
    return store, out


def timeline(ends: np.ndarray, dt: float, t: np.ndarray | None = None) -> np.ndarray:
    """(N,) seconds from the first step: the log's own times per episode (when finite) else step·dt,
    each episode starting one `dt` after the previous one's last step."""
    out = np.zeros(int(ends[-1]) if len(ends) else 0, np.float64)
    offset, start = 0.0, 0
    for end in ends.tolist():
        local = None if t is None else t[start:end].astype(np.float64)
        if local is None or not np.isfinite(local).all():
            local = np.arange(end - start) * dt
        out[start:end] = offset + local - local[0]
        offset, start = out[end - 1] + dt, end
    return out


def _start_ns(attrs: dict[str, Any]) -> int:
    """The store's creation time (ns since the epoch): where its timeline starts; 0 when unknown."""
    try:
        return int(datetime.fromisoformat(str(attrs.get("created"))).timestamp() * 1e9)
    except ValueError:
        return 0


class _Channels:
    """Schemas and channels of the file, registered on first use."""

    def __init__(self, writer) -> None:
        self.writer = writer
        self._schemas: dict[str, int] = {}
        self.ids: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    def __call__(self, topic: str, msg_type: str) -> int:
        if topic not in self.ids:
            if msg_type not in self._schemas:
                text = ros2_msgs.DEFINITIONS[msg_type].encode()
                self._schemas[msg_type] = self.writer.register_schema(msg_type, "ros2msg", text)
            self.ids[topic] = self.writer.register_channel(topic, "cdr", self._schemas[msg_type])
            self.counts[topic] = 0
        return self.ids[topic]


def _array_topics(store: DemoStore, sel: dict[str, Any]) -> list[tuple[str, str, ros2_msgs.FixedCdr, bool]]:
    """(topic, array, encoder, only finite rows) of the Float32MultiArray topics this store has."""
    spec = store.spec
    obs, act = ",".join(spec.student_names), ",".join(spec.action_names)
    priv = ",".join(spec.privileged_names or [f"privileged/{i}" for i in range(spec.privileged_dim)])
    act_array = ros2_msgs.float32_multi_array(act, spec.action_dim)
    topics = [
        ("/sim2real/observation", "student_obs", ros2_msgs.float32_multi_array(obs, spec.student_dim), False),
        ("/sim2real/action", "action", act_array, True),
        ("/sim2real/policy_action", "policy_action", act_array, True),
        ("/sim2real/expert_action", "expert_action", act_array, True),
    ]
    if spec.privileged_dim:
        enc = ros2_msgs.float32_multi_array(priv, spec.privileged_dim)
        topics.append(("/sim2real/privileged_observation", "privileged_obs", enc, False))
    return [t for t in topics if t[1] in sel and (not t[3] or np.isfinite(sel[t[1]]).all(axis=-1).any())]


def _episode_markers(store: DemoStore, sel: dict[str, Any]) -> dict[int, bytes]:
    """Row of each episode's first step -> std_msgs/String with the episode's JSON record."""
    names = store.spec.dynamics_names
    starts = np.concatenate([[0], sel["episode_ends"][:-1]])
    out = {}
    for e, row in enumerate(starts.tolist()):
        ret = float(sel["episode_return"][e])
        record = {
            "episode": int(sel["episode_index"][e]),
            "seed": int(sel["episode_seed"][e]),
            "source": int(sel["episode_source"][e]),
            "return": ret if np.isfinite(ret) else None,
            "terminated": bool(sel["episode_terminated"][e]),
            "length": int(sel["episode_ends"][e] - row),
            "dynamics": {
                n: float(v) for n, v in zip(names, sel["episode_dynamics"][e], strict=True) if np.isfinite(v)
            },
        }
        out[row] = ros2_msgs.string_message(json.dumps(record))
    return out


@dataclass
class _Plan:
    """What every block of steps is encoded with (built once per file)."""

    layout: JointLayout
    joint_state: ros2_msgs.FixedCdr
    arrays: list[tuple[str, str, ros2_msgs.FixedCdr, bool]]
    markers: dict[int, bytes]
    stamps: np.ndarray  # (N,) int64 ns since the epoch
    reward: ros2_msgs.FixedCdr | None  # None: the store has no finite reward at all


def _plan(store: DemoStore, sel: dict[str, Any], dt: float) -> _Plan:
    spec = store.spec
    layout = joint_layout(spec.student_names, spec.action_names)
    widths = layout.arrays(sel["student_obs"][:1], sel["action"][:1])
    seconds = timeline(sel["episode_ends"], dt, sel.get("time"))
    return _Plan(
        layout=layout,
        joint_state=ros2_msgs.joint_state(
            layout.names, *(widths[k].shape[1] for k in ("position", "velocity", "effort"))
        ),
        arrays=_array_topics(store, sel),
        markers=_episode_markers(store, sel),
        stamps=_start_ns(store.attrs) + np.round(seconds * 1e9).astype(np.int64),
        reward=ros2_msgs.float32() if np.isfinite(sel["reward"]).any() else None,
    )


def _block(plan: _Plan, sel: dict[str, Any], a: int, b: int) -> list[tuple[str, str, list[bytes | None]]]:
    """(topic, type, messages (None: no message on that step)) for steps a..b."""
    n = b - a
    out: list[tuple[str, str, list[bytes | None]]] = [
        ("/sim2real/episode", STRING, [plan.markers.get(a + r) for r in range(n)])
    ]
    if plan.layout.names:
        js = plan.layout.arrays(sel["student_obs"][a:b], sel["action"][a:b])
        sec, nanosec = np.divmod(plan.stamps[a:b], 1_000_000_000)
        cols = {k: v for k, v in js.items() if v.shape[1]}
        out.append(
            ("/joint_states", JOINT_STATE, plan.joint_state.encode(n, sec=sec, nanosec=nanosec, **cols))
        )
    for topic, name, cdr, finite_only in plan.arrays:
        values = sel[name][a:b]
        keep = np.isfinite(values).all(axis=1) if finite_only else np.ones(n, bool)
        out.append((topic, FLOAT32_ARRAY, _only(cdr.encode(n, data=values), keep)))
    if plan.reward is not None:
        reward = sel["reward"][a:b]
        out.append(
            ("/sim2real/reward", FLOAT32, _only(plan.reward.encode(n, data=reward), np.isfinite(reward)))
        )
    if "events" in sel:
        ev = sel["events"][a:b].tolist()
        out.append(
            (
                "/sim2real/events",
                STRING,
                [ros2_msgs.string_message(",".join(describe(e))) if e else None for e in ev],
            )
        )
    return out


def _only(msgs: list[bytes], keep: np.ndarray) -> list[bytes | None]:
    return [m if k else None for m, k in zip(msgs, keep.tolist(), strict=True)]


def _metadata(store: DemoStore, plan: _Plan, time_source: str) -> dict[str, str]:
    """The `sim2real` metadata record (MCAP metadata values are strings)."""
    attrs, spec = store.attrs, store.spec
    deploy = next((s for s in attrs.get("sources", []) if s.get("kind") == "deploy"), {})
    return {
        "store": str(store.path),
        "task": str(spec.task),
        "schema": f"{attrs.get('schema')} v{attrs.get('schema_version')}",
        "control_dt": str(spec.control_dt),
        "policy_sha256": str(deploy.get("policy_sha256", "")),
        "time_source": time_source,
        "observation_names": json.dumps(list(spec.student_names)),
        "action_names": json.dumps(list(spec.action_names)),
        "joint_names": json.dumps(list(plan.layout.names)),
        "attributes": json.dumps(attrs),
    }


def to_mcap(
    path: str | Path,
    out: str | Path,
    episodes: Sequence[int] | None = None,
    dt: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the store at `path` (or the given `episodes`) to `out`; returns counts for a summary.

    The file appears at `out` only when complete (written beside it, then renamed).
    """
    from mcap.writer import CompressionType, Writer
    from tqdm import tqdm

    out = Path(out)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"to-mcap: the output folder {out.parent} does not exist")
    t0 = time.perf_counter()
    store, sel = load_steps(path, episodes)
    dt = dt or store.spec.control_dt or 0.02
    time_source = "data/time" if "time" in sel else f"step x {dt} s"
    plan = _plan(store, sel, dt)
    n = len(sel["student_obs"])
    tmp = out.with_name(out.name + ".partial")
    try:
        with (
            open(tmp, "wb") as f,
            tqdm(total=n, unit="step", desc="to-mcap", disable=not progress or None) as bar,
        ):
            writer = Writer(f, compression=CompressionType.ZSTD)
            writer.start(profile="ros2", library="sim2real to-mcap")
            writer.add_metadata("sim2real", _metadata(store, plan, time_source))
            channels = _Channels(writer)
            for a in range(0, n, BLOCK):
                b = min(n, a + BLOCK)
                _write_block(writer, channels, plan, _block(plan, sel, a, b), a, b)
                bar.update(b - a)
            writer.finish()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    counts = channels.counts
    return {
        "out": str(out),
        "episodes": len(sel["episode_ends"]),
        "steps": n,
        "messages": sum(counts.values()),
        "topics": counts,
        "bytes": out.stat().st_size,
        "seconds": time.perf_counter() - t0,
        "time_source": time_source,
    }


def _write_block(writer, channels: _Channels, plan: _Plan, topics, a: int, b: int) -> None:
    """Messages of steps a.., step by step (log-time order), each step's topics in a fixed order."""
    topics = [t for t in topics if any(m is not None for m in t[2])]  # a channel only once it has messages
    ids = [channels(topic, msg_type) for topic, msg_type, _ in topics]
    for r in range(b - a):
        t = int(plan.stamps[a + r])
        for cid, (topic, _, msgs) in zip(ids, topics, strict=True):
            m = msgs[r]
            if m is not None:
                writer.add_message(cid, log_time=t, data=m, publish_time=t, sequence=a + r)
                channels.counts[topic] += 1
