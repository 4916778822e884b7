"""Message profiles: which DDS types, topics and fields a robot family speaks (no cyclonedds import).

    profile = PROFILES["unitree_hg"]          # "unitree_go" (Go2), "unitree_hg" (G1/H1-2), "ros2"
    codec = profile.codec(num_joints=29)      # numpy, see sim2real.deploy.dds.codec
    State, Command = profile.idl_types()      # cyclonedds classes (imports cyclonedds)

Defaults follow the vendor's published examples (unitreerobotics/unitree_sdk2_python
`example/go2/low_level/go2_stand_example.py`, `example/g1/low_level/g1_low_level_example.py`): a Go2
low-level command carries head 0xFE 0xEF and level_flag 0xFF (LOWLEVEL), and the motors it does not drive
hold mode 0x01 with the "stop" sentinels q = 2.146e9, dq = 16000 and zero gains; a G1 command uses mode_pr 0
(pitch/roll ankle mode) and must echo the robot's `mode_machine` from LowState (the codec copies it from
every decoded state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sim2real.deploy.dds import schema

_UNITREE_STATE = {
    "q": "motor_state.q",
    "dq": "motor_state.dq",
    "ddq": "motor_state.ddq",
    "tau": "motor_state.tau_est",
    "quat": "imu_state.quaternion",  # w, x, y, z
    "gyro": "imu_state.gyroscope",
    "acc": "imu_state.accelerometer",
    "rpy": "imu_state.rpy",
}
_UNITREE_COMMAND = {k: f"motor_cmd.{k}" for k in ("q", "dq", "tau", "kp", "kd", "mode")}


def _ro(d: dict | None = None) -> MappingProxyType:
    return MappingProxyType(dict(d or {}))


GO2_POS_STOP, GO2_VEL_STOP = 2.146e9, 16000.0  # vendor sentinels: "hold no position / velocity target"


@dataclass(frozen=True)
class Profile:
    """A robot family's DDS messages: types, topics, field map and the constants of a valid command."""

    name: str
    state_type: str  # DDS type name on the wire
    command_type: str
    state_topic: str
    command_topic: str
    motor_slots: int | None  # motor entries in each message (Go2: 20, G1: 35; ros2: as many as joints)
    state_fields: MappingProxyType = field(default_factory=_ro)  # codec name -> message field path
    command_fields: MappingProxyType = field(default_factory=_ro)
    tick_field: str | None = None
    state_schema: schema.Struct | None = None  # fixed-size layout (Unitree); None: variable length (ros2)
    command_schema: schema.Struct | None = None
    command_defaults: MappingProxyType = field(default_factory=_ro)  # path -> value in every command
    idle_motor: MappingProxyType = field(default_factory=_ro)  # field -> value in slots no joint drives
    enable_mode: int = 1  # motor mode written to the driven slots
    mirror: tuple[tuple[str, str], ...] = ()  # (state path, command path) copied from each state
    command_interface: str = "position"  # ros2: which array the forward controller takes
    notes: str = field(default="", compare=False)

    def codec(self, num_joints: int, **kwargs: Any):
        """A numpy codec for `num_joints` joints (Unitree: `slots=`; ros2: `joint_names=`, ...)."""
        if self.state_schema is None:
            from sim2real.deploy.dds.ros2 import Ros2Codec

            return Ros2Codec(self, num_joints, **kwargs)
        from sim2real.deploy.dds.codec import UnitreeCodec

        return UnitreeCodec(self, num_joints, **kwargs)

    def idl_types(self) -> tuple[type, type]:
        """(state, command) cyclonedds IdlStruct classes; imports cyclonedds."""
        from sim2real.deploy.dds.idl import TYPES

        return TYPES[self.name]


PROFILES: dict[str, Profile] = {
    "unitree_go": Profile(
        name="unitree_go",
        state_type="unitree_go::msg::dds_::LowState_",
        command_type="unitree_go::msg::dds_::LowCmd_",
        state_topic="rt/lowstate",
        command_topic="rt/lowcmd",
        motor_slots=20,
        state_fields=_ro(_UNITREE_STATE),
        command_fields=_ro(_UNITREE_COMMAND),
        tick_field="tick",
        state_schema=schema.GO_LOW_STATE,
        command_schema=schema.GO_LOW_CMD,
        command_defaults=_ro({"head": (0xFE, 0xEF), "level_flag": 0xFF, "gpio": 0}),
        idle_motor=_ro({"mode": 0x01, "q": GO2_POS_STOP, "dq": GO2_VEL_STOP, "kp": 0, "kd": 0, "tau": 0}),
        enable_mode=0x01,
        notes="Go2/B2: 12 leg motors in slots 0-11 (FR, FL, RR, RL x hip, thigh, calf).",
    ),
    "unitree_hg": Profile(
        name="unitree_hg",
        state_type="unitree_hg::msg::dds_::LowState_",
        command_type="unitree_hg::msg::dds_::LowCmd_",
        state_topic="rt/lowstate",
        command_topic="rt/lowcmd",
        motor_slots=35,
        state_fields=_ro(_UNITREE_STATE),
        command_fields=_ro(_UNITREE_COMMAND),
        tick_field="tick",
        state_schema=schema.HG_LOW_STATE,
        command_schema=schema.HG_LOW_CMD,
        command_defaults=_ro({"mode_pr": 0}),
        idle_motor=_ro({"mode": 0}),
        enable_mode=1,
        mirror=(("mode_machine", "mode_machine"),),
        notes="G1 (29 motors) / H1-2 in slots 0..; mode_machine is echoed from LowState.",
    ),
    "ros2": Profile(
        name="ros2",
        state_type="sensor_msgs::msg::dds_::JointState_",
        command_type="std_msgs::msg::dds_::Float64MultiArray_",
        state_topic="rt/joint_states",
        command_topic="rt/forward_position_controller/commands",
        motor_slots=None,
        notes="ros2_control joint_state_broadcaster + a forward_command_controller on rmw_cyclonedds.",
    ),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown DDS profile {name!r}; known: {sorted(PROFILES)}") from None
