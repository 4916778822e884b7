"""Numpy codec for the ROS 2 profile: `sensor_msgs/JointState` in, `std_msgs/Float64MultiArray` out.

The messages are variable length (strings and sequences) but on a control loop their shape does not
change: the same names in the same order every cycle. Both directions keep a template: encode writes the
stamp and the arrays into a prebuilt buffer; decode compares the bytes from the frame id through the
name list against the last message's (one bytes comparison) and then reads the arrays at known
offsets, falling back to a full parse (and a new template) when anything moved. XCDR1 rules: alignment
counted from the end of the 4-byte header, doubles aligned to 8, no alignment for an empty sequence.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from sim2real.deploy.dds.codec import CDR_LE, CommandView, StateView, check_header

if TYPE_CHECKING:
    from sim2real.deploy.dds.profiles import Profile

INTERFACES = {"position": "q", "velocity": "dq", "effort": "tau"}
_U32 = struct.Struct("<I")


def _pad(buf: bytearray, align: int) -> None:
    buf.extend(b"\0" * (-(len(buf) - 4) % align))


def _put_string(buf: bytearray, text: str) -> None:
    raw = text.encode() + b"\0"
    _pad(buf, 4)
    buf += _U32.pack(len(raw)) + raw


class _Reader:
    """Sequential XCDR1 reads from a received message (slow path: once per layout change)."""

    def __init__(self, data):
        self.data, self.pos = data, 4

    def align(self, a: int) -> None:
        self.pos += -(self.pos - 4) % a

    def u32(self) -> int:
        self.align(4)
        (v,) = _U32.unpack_from(self.data, self.pos)
        self.pos += 4
        return v

    def string(self) -> str:
        n = self.u32()
        text = bytes(self.data[self.pos : self.pos + n - 1]).decode()
        self.pos += n
        return text

    def doubles(self) -> tuple[int, int]:
        """(offset, count) of a sequence<double>, skipping it."""
        n = self.u32()
        if n:
            self.align(8)
        offset, self.pos = self.pos, self.pos + 8 * n
        return offset, n


def joint_state_template(names: Sequence[str], frame_id: str = "") -> tuple[bytearray, list[int], int]:
    """A JointState with n names and n values per array: (bytes, offsets of the 3 arrays, end of names)."""
    buf = bytearray(CDR_LE) + bytearray(8)  # stamp sec, nanosec
    _put_string(buf, frame_id)
    _pad(buf, 4)
    buf += _U32.pack(len(names))
    for name in names:
        _put_string(buf, name)
    block_end, offsets = len(buf), []
    for _ in range(3):
        _pad(buf, 4)
        buf += _U32.pack(len(names))
        if names:
            _pad(buf, 8)
        offsets.append(len(buf))
        buf += bytearray(8 * len(names))
    return buf, offsets, block_end


class Ros2Codec:
    """Encode/decode JointState (state) and Float64MultiArray (command) with the UnitreeCodec API."""

    def __init__(self, profile: Profile, num_joints: int, joint_names: Sequence[str] | None = None,
                 command_interface: str | None = None, frame_id: str = ""):  # fmt: skip
        if joint_names is not None and len(joint_names) != num_joints:
            raise ValueError(f"ros2: {len(joint_names)} joint_names for num_joints={num_joints}")
        self.profile, self.num_joints = profile, num_joints
        self.joint_names = list(joint_names) if joint_names is not None else None
        self.command_interface = command_interface or profile.command_interface
        if self.command_interface not in INTERFACES:
            raise ValueError(
                f"ros2: command_interface {self.command_interface!r}, not one of {list(INTERFACES)}"
            )
        self._cmd_key = INTERFACES[self.command_interface]
        n = num_joints
        self._cmd = np.zeros(4 + 16 + 8 * n, np.uint8)  # dim = [], data_offset = 0, data: n doubles
        self._cmd[:4] = np.frombuffer(CDR_LE, np.uint8)
        self._cmd[12:16] = np.frombuffer(_U32.pack(n), np.uint8)
        self._cmd_data = self._cmd[20:].view("<f8")  # (n,)
        names = self.joint_names or [f"joint{i}" for i in range(n)]
        tmpl, offs, _ = joint_state_template(names, frame_id)
        self._st = np.frombuffer(tmpl, np.uint8).copy()
        self._st_stamp = self._st[4:12].view("<u4")  # (2,) sec, nanosec
        self._st_arrays = [self._st[o : o + 8 * n].view("<f8") for o in offs]  # position, velocity, effort
        self._rx_key: tuple[int, bytes] | None = None  # (message length, frame id .. names bytes)
        self._rx_plan: tuple[int, list[tuple[str, slice | np.ndarray]]] = (0, [])
        z = np.zeros
        self._sv = StateView(q=z(n), dq=z(n), ddq=z(n), tau=z(n), quat=z(4), gyro=z(3), acc=z(3), rpy=z(3))

    def encode_command(self, q=None, dq=None, kp=None, kd=None, tau=None, mode=None) -> memoryview:
        """Float64MultiArray of the interface's array (position: q); kp/kd/mode have no place in it."""
        value = {"q": q, "dq": dq, "tau": tau}[self._cmd_key]
        if value is not None:
            self._cmd_data[:] = value
        return memoryview(self._cmd)

    def decode_state(self, data) -> StateView:
        """JointState -> (n,) f64 arrays in joint order (by name when joint_names was given).

        The arrays are read-only views of `data` (or copies when the names needed reordering)."""
        data = data if isinstance(data, bytes) else bytes(data)
        check_header(data, 4 + 8 + 4 + 4, "ros2 JointState", xcdr2_ok=False)
        end, reads = self._rx_plan
        if self._rx_key is None or len(data) != self._rx_key[0] or data[12:end] != self._rx_key[1]:
            end, reads = self._plan(data)
        sv = self._sv
        f8 = np.frombuffer(data, "<f8", (len(data) - 4) // 8, 4)  # doubles sit 8-aligned from byte 4
        for key, index in reads:
            setattr(sv, key, f8[index])
        sec, nsec = struct.unpack_from("<iI", data, 4)
        sv.tick = sec * 1_000_000_000 + nsec
        return sv

    def _plan(self, data) -> tuple[int, list[tuple[str, slice | np.ndarray]]]:
        """Full parse of a JointState's layout; caches it for the messages that follow."""
        r = _Reader(data)
        r.pos = 12
        r.string()  # frame_id
        names = [r.string() for _ in range(r.u32())]
        end = r.pos
        arrays = [r.doubles() for _ in range(3)]
        for (_, count), field in zip(arrays, ("position", "velocity", "effort"), strict=True):
            if count not in (0, len(names)):
                raise ValueError(f"ros2 JointState: {count} {field} values for {len(names)} names")
        if self.joint_names is None:
            if len(names) < self.num_joints:
                raise ValueError(f"ros2 JointState: {len(names)} joints, expected {self.num_joints}")
            perm = None
        else:
            missing = [n for n in self.joint_names if n not in names]
            if missing:
                raise ValueError(f"ros2 JointState: no joint named {missing} (message has {names})")
            perm = np.array([names.index(n) for n in self.joint_names])
            perm = None if (perm == np.arange(len(perm))).all() else perm
        reads = []
        for key, (offset, count) in zip(("q", "dq", "tau"), arrays, strict=True):
            if count:  # index into the doubles from byte 4: a slice (a view) when already in joint order
                start = (offset - 4) // 8
                reads.append((key, slice(start, start + self.num_joints) if perm is None else start + perm))
        self._rx_key, self._rx_plan = (len(data), bytes(data[12:end])), (end, reads)
        z = np.zeros(self.num_joints)
        self._sv.q, self._sv.dq, self._sv.tau = z, z.copy(), z.copy()  # absent sequences read as zeros
        return end, reads

    def encode_state(self, q=None, dq=None, tau=None, stamp_ns: int | None = None, **_ignored) -> memoryview:
        """Simulator side: JointState with this codec's names (IMU/tick arguments have no place in it)."""
        for arr, value in zip(self._st_arrays, (q, dq, tau), strict=True):
            if value is not None:
                arr[:] = value
        if stamp_ns is not None:
            self._st_stamp[:] = divmod(int(stamp_ns), 1_000_000_000)
        return memoryview(self._st)

    def decode_command(self, data) -> CommandView:
        """Simulator side: the Float64MultiArray's data lands in the interface's field, the rest is zero."""
        data = memoryview(data).cast("B")
        check_header(data, 4 + 12, "ros2 Float64MultiArray", xcdr2_ok=False)
        r = _Reader(data)
        for _ in range(r.u32()):  # layout.dim: label, size, stride
            r.string()
            r.u32()
            r.u32()
        r.u32()  # data_offset
        offset, count = r.doubles()
        if count != self.num_joints:
            raise ValueError(f"ros2 Float64MultiArray: {count} values, expected {self.num_joints}")
        n = self.num_joints
        out = {k: np.zeros(n) for k in ("q", "dq", "kp", "kd", "tau")}
        out[self._cmd_key] = np.frombuffer(data, "<f8", count, offset).copy()
        return CommandView(**out, mode=np.ones(n, np.uint8))
