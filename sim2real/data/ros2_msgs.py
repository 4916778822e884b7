"""ROS 2 message definitions and a vectorized CDR encoder for messages of fixed size.

MCAP files of the `ros2` profile carry each schema as the concatenated `.msg` text that `ros2 bag`
writes, and each message as CDR (little endian). Encoding message by message in Python costs
~70 µs; a store has millions of steps. Every message here has the same length on every step of a
store (fixed names, fixed array sizes), so its byte layout is fixed too: `FixedCdr` computes the
layout once (CDR alignment included) as a numpy structured dtype, and encodes all N rows with a few
column assignments. Tests check its bytes against mcap-ros2-support's own encoder.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_SEP = "=" * 80
_TIME = "MSG: builtin_interfaces/Time\nint32 sec\nuint32 nanosec\n"
_HEADER = "MSG: std_msgs/Header\nbuiltin_interfaces/Time stamp\nstring frame_id\n"
_LAYOUT = (
    "MSG: std_msgs/MultiArrayLayout\nstd_msgs/MultiArrayDimension[] dim\nuint32 data_offset\n"
    f"{_SEP}\nMSG: std_msgs/MultiArrayDimension\nstring label\nuint32 size\nuint32 stride\n"
)

# name -> concatenated definition (the top-level fields, then each nested type after a separator)
DEFINITIONS: dict[str, str] = {
    "sensor_msgs/msg/JointState": (
        "std_msgs/Header header\nstring[] name\nfloat64[] position\nfloat64[] velocity\nfloat64[] effort\n"
        f"{_SEP}\n{_HEADER}{_SEP}\n{_TIME}"
    ),
    "std_msgs/msg/Float32MultiArray": f"std_msgs/MultiArrayLayout layout\nfloat32[] data\n{_SEP}\n{_LAYOUT}",
    "std_msgs/msg/Float32": "float32 data\n",
    "std_msgs/msg/String": "string data\n",
}
CDR_LE = b"\x00\x01\x00\x00"  # encapsulation header: plain CDR, little endian


def _string(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return np.uint32(len(raw)).tobytes() + raw


class FixedCdr:
    """Byte layout of one CDR message type whose every field has a fixed size.

    Built field by field (`const` for bytes that never change, `values` for numbers that do); the
    offsets follow CDR's rule that a primitive of size k starts at a multiple of k, counted from
    the end of the 4-byte encapsulation header.
    """

    def __init__(self) -> None:
        self._pos = 0  # offset after the encapsulation header
        self._fields: dict[str, tuple[np.dtype, int]] = {"_cdr": (np.dtype("V4"), 0)}
        self._consts: list[tuple[str, bytes]] = [("_cdr", CDR_LE)]

    def _align(self, k: int) -> None:
        self._pos += -self._pos % k

    def const(self, raw: bytes, align: int = 4) -> FixedCdr:
        self._align(align)
        name = f"_c{len(self._consts)}"
        self._fields[name] = (np.dtype(f"V{len(raw)}"), 4 + self._pos)
        self._consts.append((name, raw))
        self._pos += len(raw)
        return self

    def values(self, name: str, dtype: str, count: int | None = None) -> FixedCdr:
        """A number (count None: column (rows,)) or `count` numbers (column (rows, count))."""
        dt = np.dtype(dtype).newbyteorder("<")
        self._align(dt.itemsize)
        self._fields[name] = (dt if count is None else np.dtype((dt, (count,))), 4 + self._pos)
        self._pos += dt.itemsize * (count or 1)
        return self

    def sequence(self, name: str, dtype: str, count: int) -> FixedCdr:
        """A ROS 2 unbounded array (`float64[]`) that has `count` entries in every message."""
        self.const(np.uint32(count).tobytes())
        return self.values(name, dtype, count) if count else self

    def strings(self, items: Sequence[str]) -> FixedCdr:
        """A constant `string[]` (its length and every entry)."""
        self.const(np.uint32(len(items)).tobytes())
        for s in items:
            self.const(_string(s))
        return self

    def string(self, s: str) -> FixedCdr:
        return self.const(_string(s))

    def encode(self, rows: int, **columns: np.ndarray) -> list[bytes]:
        """`rows` messages; `columns[name]` is (rows,) or (rows, count) for each `values` field."""
        names = list(self._fields)
        dtype = np.dtype(
            {
                "names": names,
                "formats": [self._fields[n][0] for n in names],
                "offsets": [self._fields[n][1] for n in names],
                "itemsize": 4 + self._pos,
            }
        )
        buf = np.zeros(rows, dtype)
        for name, raw in self._consts:
            buf[name] = np.frombuffer(raw, dtype=self._fields[name][0])[0]
        for name, values in columns.items():
            buf[name] = values
        blob, size = buf.tobytes(), dtype.itemsize
        return [blob[i * size : (i + 1) * size] for i in range(rows)]


def joint_state(names: Sequence[str], n_pos: int, n_vel: int, n_eff: int, frame_id: str = "") -> FixedCdr:
    """sensor_msgs/msg/JointState; columns sec, nanosec, position, velocity, effort (float64)."""
    cdr = FixedCdr().values("sec", "i4").values("nanosec", "u4").string(frame_id).strings(names)
    return (
        cdr.sequence("position", "f8", n_pos)
        .sequence("velocity", "f8", n_vel)
        .sequence("effort", "f8", n_eff)
    )


def float32_multi_array(label: str, size: int) -> FixedCdr:
    """std_msgs/msg/Float32MultiArray with one dimension (`label`, size); column data (float32)."""
    dim = np.uint32(1).tobytes() + _string(label)
    cdr = FixedCdr().const(dim)
    cdr.const(np.array([size, size, 0], np.uint32).tobytes())  # size, stride, layout.data_offset
    return cdr.sequence("data", "f4", size)


def float32() -> FixedCdr:
    """std_msgs/msg/Float32; column data."""
    return FixedCdr().values("data", "f4")


def string_message(text: str) -> bytes:
    """std_msgs/msg/String (variable length: encoded one at a time; for sparse topics)."""
    return CDR_LE + _string(text)
