"""The fixed-size Unitree messages as plain data, and where each field lands in the bytes.

Pure Python + numpy (no cyclonedds): the codec needs the layouts on a robot computer without the
dds extra. The declarations mirror the vendor's published definitions field for field
(unitreerobotics/unitree_sdk2_python `unitree_sdk2py/idl/unitree_{go,hg}/msg/dds_/_*.py`, the same
names and types as unitree_ros2 `cyclonedds_ws/src/unitree/unitree_{go,hg}/msg/*.msg`);
`sim2real.deploy.dds.idl` declares the same types for cyclonedds and a test checks the two agree.

Every field gets two offsets: its place in the XCDR1 body (each primitive aligned to its own size,
at most 8, counted from the end of the 4-byte encapsulation header; nested structs add no padding)
and its place in the C struct the vendor's CRC runs over (natural alignment, structs padded to their
widest member). The two differ: in Go2 `LowCmd_` the first `MotorCmd_` starts at body byte 22 on the
wire but at 24 in the C struct, so the CRC cannot simply run over the wire bytes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Struct:
    """An IDL struct: `fields` are (name, primitive dtype string like "<f4" or Struct, array length or 0)."""

    name: str  # scoped IDL name, e.g. "unitree_go::msg::dds_::MotorCmd_"
    fields: tuple[tuple[str, str | Struct, int], ...]


def struct(name: str, *fields: tuple[str, str | Struct, int] | tuple[str, str | Struct]) -> Struct:
    return Struct(name, tuple((f[0], f[1], f[2] if len(f) > 2 else 0) for f in fields))


@dataclass(frozen=True)
class Leaf:
    """One primitive field (expanded over the arrays it sits in) and its byte offsets."""

    path: str  # "motor_cmd.q"
    dtype: np.dtype  # little-endian
    cdr: np.ndarray  # (*shape) int64 offsets from the start of the CDR body (after the 4-byte header)
    c: np.ndarray  # (*shape) int64 offsets in the vendor's C struct packing


@dataclass(frozen=True)
class Layout:
    struct: Struct
    leaves: dict[str, Leaf]
    cdr_size: int  # body bytes (the message on the wire is 4 + cdr_size)
    c_size: int  # sizeof the C struct the vendor CRC is computed over


def _align(pos: int, a: int) -> int:
    return (pos + a - 1) // a * a


@functools.cache
def _c_shape(t: str | Struct) -> tuple[int, int]:
    """(alignment, size) of a type in the C packing."""
    if isinstance(t, str):
        size = np.dtype(t).itemsize
        return size, size
    align, pos = 1, 0
    for _, ft, n in t.fields:
        fa, fs = _c_shape(ft)
        align = max(align, fa)
        pos = _align(pos, fa) + fs * max(n, 1)
    return align, _align(pos, align)


def _place(t: Struct, cdr: int, c: int, dims: tuple[int, ...], prefix: str, acc: dict) -> int:
    for name, ft, n in t.fields:
        fdims = dims + ((n,) if n else ())
        for _ in range(max(n, 1)):
            if isinstance(ft, Struct):
                c = _align(c, _c_shape(ft)[0])
                cdr = _place(ft, cdr, c, fdims, f"{prefix}{name}.", acc)
                c += _c_shape(ft)[1]
            else:
                size = np.dtype(ft).itemsize
                cdr, c = _align(cdr, min(size, 8)), _align(c, size)
                entry = acc.setdefault(prefix + name, (ft, fdims, [], []))
                entry[2].append(cdr)
                entry[3].append(c)
                cdr, c = cdr + size, c + size
    return cdr


@functools.cache
def layout(t: Struct) -> Layout:
    """Byte offsets of every field of a fixed-size struct, on the wire and in the C packing."""
    acc: dict = {}
    end = _place(t, 0, 0, (), "", acc)
    leaves = {
        path: Leaf(path, np.dtype(dt), np.array(cdr).reshape(dims), np.array(c).reshape(dims))
        for path, (dt, dims, cdr, c) in acc.items()
    }
    return Layout(t, leaves, end, _c_shape(t)[1])


U1, I1, U2, I2, U4, I4, F4 = "<u1", "<i1", "<u2", "<i2", "<u4", "<i4", "<f4"

# --- unitree_go (Go2, B2): 20 motor slots -------------------------------------------------------
_GO = "unitree_go::msg::dds_::"
GO_MOTOR_CMD = struct(
    _GO + "MotorCmd_", ("mode", U1), ("q", F4), ("dq", F4), ("tau", F4), ("kp", F4), ("kd", F4),
    ("reserve", U4, 3),
)  # fmt: skip
GO_BMS_CMD = struct(_GO + "BmsCmd_", ("off", U1), ("reserve", U1, 3))
GO_LOW_CMD = struct(
    _GO + "LowCmd_", ("head", U1, 2), ("level_flag", U1), ("frame_reserve", U1), ("sn", U4, 2),
    ("version", U4, 2), ("bandwidth", U2), ("motor_cmd", GO_MOTOR_CMD, 20), ("bms_cmd", GO_BMS_CMD),
    ("wireless_remote", U1, 40), ("led", U1, 12), ("fan", U1, 2), ("gpio", U1), ("reserve", U4),
    ("crc", U4),
)  # fmt: skip
GO_IMU = struct(
    _GO + "IMUState_", ("quaternion", F4, 4), ("gyroscope", F4, 3), ("accelerometer", F4, 3),
    ("rpy", F4, 3), ("temperature", U1),
)  # fmt: skip
GO_MOTOR_STATE = struct(
    _GO + "MotorState_", ("mode", U1), ("q", F4), ("dq", F4), ("ddq", F4), ("tau_est", F4),
    ("q_raw", F4), ("dq_raw", F4), ("ddq_raw", F4), ("temperature", U1), ("lost", U4), ("reserve", U4, 2),
)  # fmt: skip
GO_BMS_STATE = struct(
    _GO + "BmsState_", ("version_high", U1), ("version_low", U1), ("status", U1), ("soc", U1),
    ("current", I4), ("cycle", U2), ("bq_ntc", U1, 2), ("mcu_ntc", U1, 2), ("cell_vol", U2, 15),
)  # fmt: skip
GO_LOW_STATE = struct(
    _GO + "LowState_", ("head", U1, 2), ("level_flag", U1), ("frame_reserve", U1), ("sn", U4, 2),
    ("version", U4, 2), ("bandwidth", U2), ("imu_state", GO_IMU), ("motor_state", GO_MOTOR_STATE, 20),
    ("bms_state", GO_BMS_STATE), ("foot_force", I2, 4), ("foot_force_est", I2, 4), ("tick", U4),
    ("wireless_remote", U1, 40), ("bit_flag", U1), ("adc_reel", F4), ("temperature_ntc1", U1),
    ("temperature_ntc2", U1), ("power_v", F4), ("power_a", F4), ("fan_frequency", U2, 4),
    ("reserve", U4), ("crc", U4),
)  # fmt: skip

# --- unitree_hg (G1, H1-2): 35 motor slots ------------------------------------------------------
_HG = "unitree_hg::msg::dds_::"
HG_MOTOR_CMD = struct(
    _HG + "MotorCmd_", ("mode", U1), ("q", F4), ("dq", F4), ("tau", F4), ("kp", F4), ("kd", F4),
    ("reserve", U4),
)  # fmt: skip
HG_LOW_CMD = struct(
    _HG + "LowCmd_", ("mode_pr", U1), ("mode_machine", U1), ("motor_cmd", HG_MOTOR_CMD, 35),
    ("reserve", U4, 4), ("crc", U4),
)  # fmt: skip
HG_IMU = struct(
    _HG + "IMUState_", ("quaternion", F4, 4), ("gyroscope", F4, 3), ("accelerometer", F4, 3),
    ("rpy", F4, 3), ("temperature", I2),
)  # fmt: skip
HG_MOTOR_STATE = struct(
    _HG + "MotorState_", ("mode", U1), ("q", F4), ("dq", F4), ("ddq", F4), ("tau_est", F4),
    ("temperature", I2, 2), ("vol", F4), ("sensor", U4, 2), ("motorstate", U4), ("reserve", U4, 4),
)  # fmt: skip
HG_LOW_STATE = struct(
    _HG + "LowState_", ("version", U4, 2), ("mode_pr", U1), ("mode_machine", U1), ("tick", U4),
    ("imu_state", HG_IMU), ("motor_state", HG_MOTOR_STATE, 35), ("wireless_remote", U1, 40),
    ("reserve", U4, 4), ("crc", U4),
)  # fmt: skip
