"""Numpy encode/decode of the control-path messages: no cyclonedds, no per-field Python objects.

The agreed API (transport: `DdsRobot`, robot-sim over DDS):

    from sim2real.deploy.dds import PROFILES
    codec = PROFILES["unitree_go"].codec(num_joints=12)        # slots=(...) maps joint i -> motor slot
    wire = codec.encode_command(q, dq, kp, kd, tau, mode=None) # memoryview of XCDR1 bytes, CRC filled
    s = codec.decode_state(data)                               # StateView (arrays valid until next decode)
    s.q, s.dq, s.ddq, s.tau (n,) f32; s.quat (4,) w,x,y,z; s.gyro, s.acc, s.rpy (3,); s.tick; s.crc_ok
    # simulator side
    wire = codec.encode_state(q, dq, tau, quat=..., gyro=..., acc=..., tick=...)
    c = codec.decode_command(data)                             # CommandView: q, dq, kp, kd, tau, mode, crc_ok

Arguments passed as None keep their last value (all start at zero, `mode` at the profile's enable
value), so gains can be set once. The returned memoryview points into the codec's own buffer: write it
out (or copy it) before the next encode. Both directions are checked byte for byte against
`IdlStruct.serialize()` of `sim2real.deploy.dds.idl`, which declares the vendors' published types.

Fixed-size Unitree messages live in one preallocated buffer each (4-byte header + body): every field
the controller touches is a numpy view into it at the XCDR1 offset (`schema.layout`), so encode is a
few slice assignments plus the CRC, and decode is one memcpy plus the CRC check. The vendor CRC runs
over the C-struct packing, which pads differently from CDR: a precomputed word gather (plus a byte
gather for the few C words whose bytes are not one aligned CDR word) turns the wire bytes into the
CRC's words (`crc.py`) in preallocated buffers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from sim2real.deploy.dds import remote
from sim2real.deploy.dds.crc import crc32_big_endian
from sim2real.deploy.dds.schema import Layout, Struct, layout

if TYPE_CHECKING:
    from sim2real.deploy.dds.profiles import Profile

CDR_LE = b"\x00\x01\x00\x00"  # encapsulation header: CDR (XCDR1), little-endian, no options
_XCDR2_LE_FINAL = 0x07  # PLAIN_CDR2 LE: same body as XCDR1 for structs without 8-byte members


@dataclass
class StateView:
    """One decoded state. Unitree arrays are views into the codec's receive buffer (copy to keep)."""

    q: np.ndarray  # (n,) joint position [rad]
    dq: np.ndarray  # (n,) joint velocity [rad/s]
    ddq: np.ndarray  # (n,) joint acceleration (zeros where the message has none)
    tau: np.ndarray  # (n,) estimated joint torque [N m]
    quat: np.ndarray  # (4,) IMU orientation w, x, y, z (zeros where the message has no IMU)
    gyro: np.ndarray  # (3,) angular velocity [rad/s]
    acc: np.ndarray  # (3,) linear acceleration [m/s^2]
    rpy: np.ndarray  # (3,) roll, pitch, yaw [rad]
    # (4,) wireless remote sticks lx, rx, ry, ly in [-1, 1] (zeros where the message has no remote)
    remote: np.ndarray = field(default_factory=lambda: np.zeros(4))
    tick: int = 0  # Unitree: the robot's ms counter; ROS 2: header stamp in ns
    crc_ok: bool = True  # False when the message's CRC does not match its contents


@dataclass
class CommandView:
    """One decoded command (simulator side); arrays are (n,) in joint order."""

    q: np.ndarray
    dq: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    tau: np.ndarray
    mode: np.ndarray  # (n,) uint8 motor mode (Unitree: 1 = enabled/servo)
    crc_ok: bool = True


def check_header(data, size: int, name: str, xcdr2_ok: bool) -> None:
    """Reject what the codec cannot read: short messages, big-endian or other encodings."""
    if len(data) < size:
        raise ValueError(f"{name}: {len(data)} bytes, expected {size}")
    kind = data[1] if data[0] == 0 else -1
    if kind != 1 and not (xcdr2_ok and kind == _XCDR2_LE_FINAL):
        raise ValueError(f"{name}: encapsulation {bytes(data[:2]).hex()} is not little-endian XCDR1")


def _strided(buf: np.ndarray, dtype: np.dtype, offsets: np.ndarray) -> np.ndarray | None:
    """A view of `buf` with elements at byte `offsets`, or None when they are not evenly spaced."""
    base = int(offsets.flat[0]) if offsets.size else 0
    strides = [int(np.diff(offsets, axis=ax).flat[0]) if n > 1 else 0 for ax, n in enumerate(offsets.shape)]
    expected = base + sum((i * s for i, s in zip(np.indices(offsets.shape), strides, strict=True)), 0)
    if not np.array_equal(expected, offsets) or np.any(np.asarray(strides) < 0):
        return None
    return np.ndarray(offsets.shape, dtype, buffer=buf, offset=base, strides=tuple(strides))


class Slot:
    """One field of a message in a buffer: a view where the offsets are regular, else a gather index."""

    __slots__ = ("index", "typed", "view")

    def __init__(self, buf: np.ndarray, dtype: np.dtype, offsets: np.ndarray):  # offsets: absolute bytes
        self.view = _strided(buf, dtype, offsets)
        if self.view is None:  # CDR aligns every primitive to its size, counted from byte 4
            body = buf[4 : 4 + (len(buf) - 4) // dtype.itemsize * dtype.itemsize]
            self.typed, self.index = body.view(dtype), (offsets - 4) // dtype.itemsize

    def set(self, values) -> None:
        if self.view is not None:
            self.view[...] = values
        else:
            self.typed[self.index] = values

    def get(self) -> np.ndarray:
        return self.view if self.view is not None else self.typed[self.index]


class Message:
    """A fixed-size message in a preallocated buffer, with field slots and the vendor CRC."""

    def __init__(self, struct: Struct):
        self.layout: Layout = layout(struct)
        self.size = 4 + self.layout.cdr_size
        self.buf = np.zeros(-(-(self.size + 1) // 4) * 4, np.uint8)  # whole words; >= 1 zero byte at the end
        self.buf[:4] = np.frombuffer(CDR_LE, np.uint8)
        self.wire = memoryview(self.buf)[: self.size]
        self.name = struct.name
        self._crc = _CrcGather(self) if "crc" in self.layout.leaves else None
        if self._crc is not None:
            self.crc_slot = self.slot("crc")

    def slot(self, path: str, select: np.ndarray | None = None) -> Slot:
        leaf = self.layout.leaves[path]
        offsets = leaf.cdr if select is None else leaf.cdr[select]
        return Slot(self.buf, leaf.dtype, offsets + 4)

    def seal(self) -> memoryview:
        if self._crc is not None:
            self.crc_slot.view[...] = self._crc()
        return self.wire

    def load(self, data) -> bool:
        """Copy a received message (bytes-like, maybe with trailing padding) in; returns whether its
        CRC holds (True when it has none)."""
        check_header(data, self.size, self.name, xcdr2_ok=True)
        self.wire[:] = data if len(data) == self.size else memoryview(data).cast("B")[: self.size]
        return self._crc is None or int(self.crc_slot.view) == self._crc()

    def set_values(self, values: dict[str, object]) -> None:
        for path, value in values.items():
            self.slot(path).set(value)


class _CrcGather:
    """The vendor CRC of a message's buffer: its C-struct words (all but the crc word), gathered from the
    CDR bytes. Almost every C word is one aligned CDR word (taken whole, C padding masked to zero); the
    rest are assembled byte by byte, all in preallocated buffers."""

    def __init__(self, msg: Message):
        lay = msg.layout
        if int(lay.leaves["crc"].c) != lay.c_size - 4:
            raise ValueError(f"{msg.name}: crc is not the last word")
        zero = len(msg.buf) - 1  # a byte that stays 0: where C padding reads from
        src = np.full(lay.c_size - 4, zero, np.intp)  # (c bytes,) position of each C byte in the buffer
        for leaf in lay.leaves.values():
            for k in range(leaf.dtype.itemsize):
                c, cdr = leaf.c.ravel() + k, leaf.cdr.ravel() + 4 + k
                src[c[c < len(src)]] = cdr[c < len(src)]
        src = src.reshape(-1, 4)  # (words, 4)
        pad = src == zero
        start = src[:, :1]
        whole = ((src == start + np.arange(4)) | pad).all(1) & (start[:, 0] % 4 == 0) & ~pad[:, 0]
        self.buf32 = msg.buf.view("<u4")  # (buffer words,)
        self.runs = _runs(np.flatnonzero(whole), start[:, 0] // 4)  # [(C word slice, buffer word slice)]
        self.mask = np.where(pad, 0, 0xFF).astype(np.uint8).view("<u4").ravel()  # (words,) keeps non-padding
        self.words = np.zeros(len(src), "<u4")  # (words,) the C struct, less its crc
        self.byte_dst = np.flatnonzero(~np.repeat(whole, 4))  # byte positions in `words` assembled one by one
        self.byte_src = src.ravel()[self.byte_dst]
        self.buf8, self.words8 = msg.buf, self.words.view(np.uint8)

    def __call__(self) -> int:
        w, buf32 = self.words, self.buf32
        for dst, src in self.runs:  # 2-3 runs for the Unitree messages: slices beat a gather
            w[dst] = buf32[src]
        np.bitwise_and(w, self.mask, out=w)
        self.words8[self.byte_dst] = self.buf8[self.byte_src]
        return crc32_big_endian(w.byteswap(inplace=True))


def _runs(words: np.ndarray, sources: np.ndarray) -> list[tuple[slice, slice]]:
    """Maximal runs of `words` whose `sources` are consecutive too, as (words slice, sources slice)."""
    breaks = np.flatnonzero((np.diff(words) != 1) | (np.diff(sources[words]) != 1)) + 1
    return [
        (slice(int(r[0]), int(r[-1]) + 1), slice(int(sources[r[0]]), int(sources[r[-1]]) + 1))
        for r in np.split(words, breaks)
        if len(r)
    ]


_COMMAND_KEYS = ("q", "dq", "kp", "kd", "tau", "mode")


class UnitreeCodec:
    """Numpy codec for the fixed-size `LowState_`/`LowCmd_` of a Unitree profile (see module doc)."""

    def __init__(self, profile: Profile, num_joints: int, slots: Sequence[int] | None = None):
        nslots = profile.motor_slots
        sel = np.arange(num_joints) if slots is None else np.asarray(slots, dtype=np.intp)
        if len(sel) != num_joints or len(set(sel.tolist())) != len(sel) or sel.min(initial=0) < 0:
            raise ValueError(f"{profile.name}: slots {sel.tolist()} must be {num_joints} distinct and >= 0")
        if sel.max(initial=0) >= nslots:
            raise ValueError(f"{profile.name}: slots {sel.tolist()} beyond the message's {nslots} motors")
        self.profile, self.num_joints, self.slots = profile, num_joints, sel
        # controller side writes _cmd and reads _state; simulator side writes _state_tx, reads _cmd_rx
        self._cmd, self._state = Message(profile.command_schema), Message(profile.state_schema)
        self._cmd_rx, self._state_tx = Message(profile.command_schema), Message(profile.state_schema)
        self._init_command(profile)
        cf = profile.command_fields
        self._cmd_in = {k: self._cmd.slot(cf[k], sel) for k in _COMMAND_KEYS}
        self._cmd_out = {k: self._cmd_rx.slot(cf[k], sel) for k in _COMMAND_KEYS}
        self._state_out = self._state_slots(self._state, profile)
        self._state_in = self._state_slots(self._state_tx, profile)
        self._tick = self._state_out.pop("tick")
        self._mirror = [(self._state.slot(s), self._cmd.slot(c)) for s, c in profile.mirror]
        self._sv = StateView(**{k: s.get() for k, s in self._state_out.items()})
        has_remote = any(f[0] == "wireless_remote" for f in profile.state_schema.fields)
        self._remote = self._state.slot("wireless_remote") if has_remote else None
        self._gathered = [(k, s) for k, s in self._state_out.items() if s.view is None]

    def _state_slots(self, msg: Message, profile: Profile) -> dict[str, Slot]:
        sf = profile.state_fields
        slots = {k: msg.slot(sf[k], self.slots) for k in ("q", "dq", "ddq", "tau")}
        slots.update({k: msg.slot(sf[k]) for k in ("quat", "gyro", "acc", "rpy")})
        slots["tick"] = msg.slot(profile.tick_field)
        return slots

    def _init_command(self, profile: Profile) -> None:
        idle = profile.idle_motor
        for key, value in idle.items():
            self._cmd.slot(profile.command_fields[key]).set(value)
        self._cmd.set_values(dict(profile.command_defaults))
        for key in ("q", "dq", "kp", "kd", "tau"):  # driven slots: no stop sentinel beside a torque
            self._cmd.slot(profile.command_fields[key], self.slots).set(0)
        self._cmd.slot(profile.command_fields["mode"], self.slots).set(profile.enable_mode)

    def encode_command(self, q=None, dq=None, kp=None, kd=None, tau=None, mode=None) -> memoryview:
        """Fill the command (None keeps the last value) and its CRC; (n,) arrays in joint order."""
        slots = self._cmd_in
        for key, value in (("q", q), ("dq", dq), ("kp", kp), ("kd", kd), ("tau", tau), ("mode", mode)):
            if value is not None:
                slots[key].set(value)
        return self._cmd.seal()

    def decode_state(self, data) -> StateView:
        """Read a received state; the returned view (and its arrays) is reused by the next decode."""
        st, sv = self._state, self._sv
        sv.crc_ok = st.load(data)
        for key, slot in self._gathered:  # fields whose slots are not evenly spaced (rare)
            setattr(sv, key, slot.get())
        sv.tick = int(self._tick.view)
        if self._remote is not None:
            sv.remote = remote.decode(self._remote.get())
        for src, dst in self._mirror:  # e.g. G1 commands must echo the robot's mode_machine
            dst.view[...] = src.view
        return sv

    def state_field(self, path: str) -> np.ndarray:
        """Any field of the last decoded state by its message path, e.g. "foot_force"; a copy."""
        return np.array(self._state.slot(path).get())

    def command_field(self, path: str) -> np.ndarray:
        """Any field of the last decoded command (simulator side), e.g. "mode_machine"; a copy."""
        return np.array(self._cmd_rx.slot(path).get())

    def encode_state(self, q=None, dq=None, tau=None, ddq=None, quat=None, gyro=None, acc=None, rpy=None,
                     tick=None, **fields) -> memoryview:  # fmt: skip
        """Simulator side: fill a state (None keeps the last value; `fields`: other paths by name)."""
        values = dict(q=q, dq=dq, tau=tau, ddq=ddq, quat=quat, gyro=gyro, acc=acc, rpy=rpy, tick=tick)
        for key, value in values.items():
            if value is not None:
                self._state_in[key].set(value)
        self._state_tx.set_values(fields)
        return self._state_tx.seal()

    def decode_command(self, data) -> CommandView:
        """Simulator side: read a command into fresh (n,) arrays in joint order."""
        ok = self._cmd_rx.load(data)
        out = {k: np.array(s.get()) for k, s in self._cmd_out.items()}
        return CommandView(**out, crc_ok=ok)
