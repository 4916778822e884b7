"""cyclonedds IDL classes for the three profiles, under the vendors' published type names.

Imports cyclonedds: only code that talks DDS (the transport, tests, benchmarks) imports this module;
the codec works from `schema` alone. Declared from the published definitions, not copied:
unitreerobotics/unitree_sdk2_python `unitree_sdk2py/idl/unitree_{go,hg}/msg/dds_/_*.py` (same field
names, order, types, `@final`, typename) and the ROS 2 messages as rmw_cyclonedds names them on the wire
(`sensor_msgs::msg::dds_::JointState_`, `std_msgs::msg::dds_::Float64MultiArray_`). A DDS peer using
the vendor's own classes therefore matches the topic types, and `serialize()` of these classes gives the
bytes the numpy codec is tested against.
"""

from dataclasses import dataclass, field

import cyclonedds.idl as idl
import cyclonedds.idl.annotations as annotate
import cyclonedds.idl.types as types

u8, i16, u16, i32, u32, f32, f64 = (
    types.uint8, types.int16, types.uint16, types.int32, types.uint32, types.float32, types.float64,
)  # fmt: skip


def _zeros(n: int, value=0):
    return field(default_factory=lambda: [value] * n)


def _bytes(n: int):  # cyclonedds reads uint8 arrays back as bytes
    return field(default_factory=lambda: bytes(n))


def _many(cls, n: int):
    return field(default_factory=lambda: [cls() for _ in range(n)])


def _one(cls):
    return field(default_factory=cls)


# --- unitree_go (Go2) ---------------------------------------------------------------------------
@dataclass
@annotate.final
@annotate.autoid("sequential")
class GoMotorCmd(idl.IdlStruct, typename="unitree_go.msg.dds_.MotorCmd_"):
    mode: u8 = 0
    q: f32 = 0.0
    dq: f32 = 0.0
    tau: f32 = 0.0
    kp: f32 = 0.0
    kd: f32 = 0.0
    reserve: types.array[u32, 3] = _zeros(3)


@dataclass
@annotate.final
@annotate.autoid("sequential")
class GoBmsCmd(idl.IdlStruct, typename="unitree_go.msg.dds_.BmsCmd_"):
    off: u8 = 0
    reserve: types.array[u8, 3] = _bytes(3)


@dataclass
@annotate.final
@annotate.autoid("sequential")
class GoLowCmd(idl.IdlStruct, typename="unitree_go.msg.dds_.LowCmd_"):
    head: types.array[u8, 2] = _bytes(2)
    level_flag: u8 = 0
    frame_reserve: u8 = 0
    sn: types.array[u32, 2] = _zeros(2)
    version: types.array[u32, 2] = _zeros(2)
    bandwidth: u16 = 0
    motor_cmd: types.array[GoMotorCmd, 20] = _many(GoMotorCmd, 20)
    bms_cmd: GoBmsCmd = _one(GoBmsCmd)
    wireless_remote: types.array[u8, 40] = _bytes(40)
    led: types.array[u8, 12] = _bytes(12)
    fan: types.array[u8, 2] = _bytes(2)
    gpio: u8 = 0
    reserve: u32 = 0
    crc: u32 = 0


@dataclass
@annotate.final
@annotate.autoid("sequential")
class GoIMUState(idl.IdlStruct, typename="unitree_go.msg.dds_.IMUState_"):
    quaternion: types.array[f32, 4] = _zeros(4, 0.0)
    gyroscope: types.array[f32, 3] = _zeros(3, 0.0)
    accelerometer: types.array[f32, 3] = _zeros(3, 0.0)
    rpy: types.array[f32, 3] = _zeros(3, 0.0)
    temperature: u8 = 0


@dataclass
@annotate.final
@annotate.autoid("sequential")
class GoMotorState(idl.IdlStruct, typename="unitree_go.msg.dds_.MotorState_"):
    mode: u8 = 0
    q: f32 = 0.0
    dq: f32 = 0.0
    ddq: f32 = 0.0
    tau_est: f32 = 0.0
    q_raw: f32 = 0.0
    dq_raw: f32 = 0.0
    ddq_raw: f32 = 0.0
    temperature: u8 = 0
    lost: u32 = 0
    reserve: types.array[u32, 2] = _zeros(2)


@dataclass
@annotate.final
@annotate.autoid("sequential")
class GoBmsState(idl.IdlStruct, typename="unitree_go.msg.dds_.BmsState_"):
    version_high: u8 = 0
    version_low: u8 = 0
    status: u8 = 0
    soc: u8 = 0
    current: i32 = 0
    cycle: u16 = 0
    bq_ntc: types.array[u8, 2] = _bytes(2)
    mcu_ntc: types.array[u8, 2] = _bytes(2)
    cell_vol: types.array[u16, 15] = _zeros(15)


@dataclass
@annotate.final
@annotate.autoid("sequential")
class GoLowState(idl.IdlStruct, typename="unitree_go.msg.dds_.LowState_"):
    head: types.array[u8, 2] = _bytes(2)
    level_flag: u8 = 0
    frame_reserve: u8 = 0
    sn: types.array[u32, 2] = _zeros(2)
    version: types.array[u32, 2] = _zeros(2)
    bandwidth: u16 = 0
    imu_state: GoIMUState = _one(GoIMUState)
    motor_state: types.array[GoMotorState, 20] = _many(GoMotorState, 20)
    bms_state: GoBmsState = _one(GoBmsState)
    foot_force: types.array[i16, 4] = _zeros(4)
    foot_force_est: types.array[i16, 4] = _zeros(4)
    tick: u32 = 0
    wireless_remote: types.array[u8, 40] = _bytes(40)
    bit_flag: u8 = 0
    adc_reel: f32 = 0.0
    temperature_ntc1: u8 = 0
    temperature_ntc2: u8 = 0
    power_v: f32 = 0.0
    power_a: f32 = 0.0
    fan_frequency: types.array[u16, 4] = _zeros(4)
    reserve: u32 = 0
    crc: u32 = 0


# --- unitree_hg (G1, H1-2) ----------------------------------------------------------------------
@dataclass
@annotate.final
@annotate.autoid("sequential")
class HgMotorCmd(idl.IdlStruct, typename="unitree_hg.msg.dds_.MotorCmd_"):
    mode: u8 = 0
    q: f32 = 0.0
    dq: f32 = 0.0
    tau: f32 = 0.0
    kp: f32 = 0.0
    kd: f32 = 0.0
    reserve: u32 = 0


@dataclass
@annotate.final
@annotate.autoid("sequential")
class HgLowCmd(idl.IdlStruct, typename="unitree_hg.msg.dds_.LowCmd_"):
    mode_pr: u8 = 0
    mode_machine: u8 = 0
    motor_cmd: types.array[HgMotorCmd, 35] = _many(HgMotorCmd, 35)
    reserve: types.array[u32, 4] = _zeros(4)
    crc: u32 = 0


@dataclass
@annotate.final
@annotate.autoid("sequential")
class HgIMUState(idl.IdlStruct, typename="unitree_hg.msg.dds_.IMUState_"):
    quaternion: types.array[f32, 4] = _zeros(4, 0.0)
    gyroscope: types.array[f32, 3] = _zeros(3, 0.0)
    accelerometer: types.array[f32, 3] = _zeros(3, 0.0)
    rpy: types.array[f32, 3] = _zeros(3, 0.0)
    temperature: i16 = 0


@dataclass
@annotate.final
@annotate.autoid("sequential")
class HgMotorState(idl.IdlStruct, typename="unitree_hg.msg.dds_.MotorState_"):
    mode: u8 = 0
    q: f32 = 0.0
    dq: f32 = 0.0
    ddq: f32 = 0.0
    tau_est: f32 = 0.0
    temperature: types.array[i16, 2] = _zeros(2)
    vol: f32 = 0.0
    sensor: types.array[u32, 2] = _zeros(2)
    motorstate: u32 = 0
    reserve: types.array[u32, 4] = _zeros(4)


@dataclass
@annotate.final
@annotate.autoid("sequential")
class HgLowState(idl.IdlStruct, typename="unitree_hg.msg.dds_.LowState_"):
    version: types.array[u32, 2] = _zeros(2)
    mode_pr: u8 = 0
    mode_machine: u8 = 0
    tick: u32 = 0
    imu_state: HgIMUState = _one(HgIMUState)
    motor_state: types.array[HgMotorState, 35] = _many(HgMotorState, 35)
    wireless_remote: types.array[u8, 40] = _bytes(40)
    reserve: types.array[u32, 4] = _zeros(4)
    crc: u32 = 0


# --- ROS 2 (rmw_cyclonedds wire names) ----------------------------------------------------------
@dataclass
@annotate.final
@annotate.autoid("sequential")
class Time(idl.IdlStruct, typename="builtin_interfaces.msg.dds_.Time_"):
    sec: i32 = 0
    nanosec: u32 = 0


@dataclass
@annotate.final
@annotate.autoid("sequential")
class Header(idl.IdlStruct, typename="std_msgs.msg.dds_.Header_"):
    stamp: Time = _one(Time)
    frame_id: str = ""


@dataclass
@annotate.final
@annotate.autoid("sequential")
class JointState(idl.IdlStruct, typename="sensor_msgs.msg.dds_.JointState_"):
    header: Header = _one(Header)
    name: types.sequence[str] = field(default_factory=list)
    position: types.sequence[f64] = field(default_factory=list)
    velocity: types.sequence[f64] = field(default_factory=list)
    effort: types.sequence[f64] = field(default_factory=list)


@dataclass
@annotate.final
@annotate.autoid("sequential")
class MultiArrayDimension(idl.IdlStruct, typename="std_msgs.msg.dds_.MultiArrayDimension_"):
    label: str = ""
    size: u32 = 0
    stride: u32 = 0


@dataclass
@annotate.final
@annotate.autoid("sequential")
class MultiArrayLayout(idl.IdlStruct, typename="std_msgs.msg.dds_.MultiArrayLayout_"):
    dim: types.sequence[MultiArrayDimension] = field(default_factory=list)
    data_offset: u32 = 0


@dataclass
@annotate.final
@annotate.autoid("sequential")
class Float64MultiArray(idl.IdlStruct, typename="std_msgs.msg.dds_.Float64MultiArray_"):
    layout: MultiArrayLayout = _one(MultiArrayLayout)
    data: types.sequence[f64] = field(default_factory=list)


# profile name -> (state type, command type)
TYPES: dict[str, tuple[type[idl.IdlStruct], type[idl.IdlStruct]]] = {
    "unitree_go": (GoLowState, GoLowCmd),
    "unitree_hg": (HgLowState, HgLowCmd),
    "ros2": (JointState, Float64MultiArray),
}
