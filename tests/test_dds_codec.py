"""DDS message profiles and the numpy codec: bytes equal to cyclonedds' own serializer, vendor CRC."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import numpy as np
import pytest

from sim2real.deploy.dds import (
    PROFILES,
    get_profile,
    idl,
    schema,
)
from sim2real.deploy.dds.crc import crc32_big_endian, crc32_c_struct, crc32_core, crc32_core_reference

UNITREE = {"unitree_go": 12, "unitree_hg": 29}
_CTYPES = {"<u1": ctypes.c_uint8, "<i1": ctypes.c_int8, "<u2": ctypes.c_uint16, "<i2": ctypes.c_int16,
           "<u4": ctypes.c_uint32, "<i4": ctypes.c_int32, "<f4": ctypes.c_float}  # fmt: skip


# --- helpers: an independent C packing (ctypes) + the published bit-by-bit CRC ----------------------
def c_struct(t: schema.Struct) -> type[ctypes.Structure]:
    """The vendor's C struct, laid out by ctypes (natural alignment), from the field list."""
    fields = []
    for name, ft, n in t.fields:
        ct = c_struct(ft) if isinstance(ft, schema.Struct) else _CTYPES[ft]
        fields.append((name, ct * n if n else ct))
    return type(t.name.split("::")[-1], (ctypes.Structure,), {"_fields_": fields})


def c_fill(dst: ctypes.Structure, src, t: schema.Struct) -> None:
    for name, ft, n in t.fields:
        value = getattr(src, name)
        if isinstance(ft, schema.Struct):
            for i in range(n) if n else [None]:
                c_fill(getattr(dst, name)[i] if n else getattr(dst, name), value[i] if n else value, ft)
        elif n:
            getattr(dst, name)[:] = list(value)
        else:
            setattr(dst, name, value)


def reference_crc(obj, t: schema.Struct) -> int:
    """The published algorithm: pack the IDL object as the vendor's C struct, crc32_core over its words."""
    cs = c_struct(t)()
    c_fill(cs, obj, t)
    words = np.frombuffer(bytes(cs), "<u4")
    return crc32_core_reference(words[:-1])


def random_fill(obj, t: schema.Struct, rng: np.random.Generator) -> None:
    """Random contents for every field of an IDL object, typed by the schema."""
    for name, ft, n in t.fields:
        if isinstance(ft, schema.Struct):
            for i in range(n) if n else [None]:
                random_fill(getattr(obj, name)[i] if n else getattr(obj, name), ft, rng)
            continue
        dt = np.dtype(ft)
        if dt.kind == "f":
            vals = rng.standard_normal(max(n, 1)).astype(dt).tolist()
        else:
            info = np.iinfo(dt)
            vals = rng.integers(info.min, int(info.max) + 1, max(n, 1)).tolist()
        value = (bytes(vals) if ft == "<u1" else vals) if n else vals[0]
        setattr(obj, name, value)


def joint_arrays(rng, n) -> dict[str, np.ndarray]:
    return {k: rng.standard_normal(n).astype(np.float32) for k in ("q", "dq", "kp", "kd", "tau")}


# --- CRC ---------------------------------------------------------------------------------------------
def test_crc_fast_path_equals_published_bitwise_algorithm():
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 202, 522):
        words = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
        assert crc32_core(words) == crc32_core_reference(words)


def test_crc_matches_catalogue_and_vendor_vectors():
    # CRC-32/MPEG-2 catalogue check value: the vendor CRC is that CRC over big-endian words
    assert crc32_big_endian(b"123456789") == 0x0376E6E7
    # computed with the vendor's crc32_core (unitree_sdk2_python utils/lib/crc_amd64.so)
    words = np.arange(1, 9, dtype=np.uint32) * np.uint32(0x01010101)
    assert crc32_core(words) == 0x32061DE9
    assert crc32_core(np.array([0xFFFFFFFF], np.uint32)) == 0x00000000
    assert crc32_c_struct(words.tobytes()) == crc32_core(words[:-1])


def test_default_commands_carry_the_vendor_crc():
    # expected values from the vendor's crc32_core (crc_amd64.so) over the C-packed command (that vector
    # has the velocity stop value dq = 16000 in the driven slots too)
    go_codec = PROFILES["unitree_go"].codec(num_joints=12)
    go = idl.GoLowCmd.deserialize(bytes(go_codec.encode_command(q=np.zeros(12), dq=np.full(12, 16000.0))))
    assert go.crc == 0xB4DEB402
    hg_codec = PROFILES["unitree_hg"].codec(num_joints=29)
    hg_codec.decode_state(idl.HgLowState(mode_machine=5).serialize())
    hg = hg_codec.encode_command(q=np.linspace(-1, 1, 29), kp=np.full(29, 60.0), kd=np.ones(29))
    assert idl.HgLowCmd.deserialize(bytes(hg)).crc == 0x7A8116E2


def test_driven_motor_slots_start_at_zero_and_idle_slots_hold_the_stop_sentinels():
    codec = PROFILES["unitree_go"].codec(num_joints=2, slots=[0, 3])
    cmd = idl.GoLowCmd.deserialize(bytes(codec.encode_command(tau=np.array([0.5, -0.5]))))
    driven, idle = [cmd.motor_cmd[i] for i in (0, 3)], cmd.motor_cmd[1]
    assert [(m.mode, m.q, m.dq, m.kp, m.kd) for m in driven] == [(1, 0.0, 0.0, 0.0, 0.0)] * 2
    assert [m.tau for m in driven] == [0.5, -0.5]  # a torque with no velocity stop value beside it
    assert (idle.q, idle.dq) == (pytest.approx(2.146e9), 16000.0)
    assert cmd.crc == reference_crc(cmd, schema.GO_LOW_CMD)


def test_c_struct_sizes_are_the_vendors():
    # sizes the vendor's CRC packs (unitree_sdk2py/utils/crc.py: 812, 1180, 1004, 2092)
    sizes = {
        schema.GO_LOW_CMD: 812,
        schema.GO_LOW_STATE: 1180,
        schema.HG_LOW_CMD: 1004,
        schema.HG_LOW_STATE: 2092,
    }
    for t, size in sizes.items():
        assert schema.layout(t).c_size == size == ctypes.sizeof(c_struct(t))


def test_go2_wire_layout_differs_from_c_packing():
    leaves = schema.layout(schema.GO_LOW_CMD).leaves
    assert int(leaves["motor_cmd.mode"].cdr[0]) == 22 and int(leaves["motor_cmd.mode"].c[0]) == 24


# --- schema vs IDL -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(UNITREE))
def test_schema_declares_the_idl_classes_fields(name):
    state_cls, cmd_cls = PROFILES[name].idl_types()
    for cls, t in ((state_cls, PROFILES[name].state_schema), (cmd_cls, PROFILES[name].command_schema)):
        assert cls.__idl_typename__.replace(".", "::") == t.name
        assert list(cls.__dataclass_fields__) == [f[0] for f in t.fields]
        assert len(cls().serialize()) == 4 + schema.layout(t).cdr_size


def test_profiles_name_the_published_types_and_topics():
    for p in PROFILES.values():
        state_cls, cmd_cls = p.idl_types()
        assert state_cls.__idl_typename__.replace(".", "::") == p.state_type
        assert cmd_cls.__idl_typename__.replace(".", "::") == p.command_type
        assert p.state_topic.startswith("rt/") and p.command_topic.startswith("rt/")
    assert PROFILES["unitree_go"].motor_slots == 20 and PROFILES["unitree_hg"].motor_slots == 35
    with pytest.raises(ValueError, match="unknown DDS profile"):
        get_profile("unitree_xx")


# --- Unitree: bytes equal to cyclonedds --------------------------------------------------------------------
def expected_command(name, codec, values, slots, mode_machine=0):
    """The IDL command a vendor program would build for the same contents."""
    p = PROFILES[name]
    _, cmd_cls = p.idl_types()
    cmd = cmd_cls()
    for m in cmd.motor_cmd:
        for key, value in p.idle_motor.items():
            setattr(m, key, value)
    for path, value in p.command_defaults.items():
        setattr(cmd, path, bytes(value) if isinstance(value, tuple) else value)
    if name == "unitree_hg":
        cmd.mode_machine = mode_machine
    for j, slot in enumerate(slots):
        m = cmd.motor_cmd[slot]
        m.mode = p.enable_mode
        for key, arr in values.items():
            setattr(m, key, float(arr[j]))
    cmd.crc = reference_crc(cmd, p.command_schema)
    return cmd


@pytest.mark.parametrize("name", list(UNITREE))
def test_command_bytes_equal_cyclonedds_serialize(name):
    rng = np.random.default_rng(1)
    n = UNITREE[name]
    slots = rng.permutation(PROFILES[name].motor_slots)[:n]
    codec = PROFILES[name].codec(num_joints=n, slots=slots)
    for _ in range(3):
        values = joint_arrays(rng, n)
        wire = bytes(codec.encode_command(**values))
        assert wire == expected_command(name, codec, values, slots).serialize()


@pytest.mark.parametrize("name", list(UNITREE))
def test_state_bytes_equal_cyclonedds_serialize(name):
    rng = np.random.default_rng(2)
    p, n = PROFILES[name], UNITREE[name]
    state_cls, _ = p.idl_types()
    codec = p.codec(num_joints=p.motor_slots)
    for _ in range(3):
        obj = state_cls()
        random_fill(obj, p.state_schema, rng)
        obj.crc = reference_crc(obj, p.state_schema)
        fields = {path: np.array(leaf_values(obj, path)) for path in schema.layout(p.state_schema).leaves}
        fields.pop("crc")
        wire = bytes(codec.encode_state(**fields))
        assert wire == obj.serialize()
        assert n <= p.motor_slots


def leaf_values(obj, path: str):
    head, _, rest = path.partition(".")
    value = getattr(obj, head)
    if not rest:
        return list(value) if isinstance(value, bytes | list) else value
    if isinstance(value, list):
        return [leaf_values(v, rest) for v in value]
    return leaf_values(value, rest)


@pytest.mark.parametrize("name", list(UNITREE))
def test_decode_reads_cyclonedds_state_and_checks_its_crc(name):
    rng = np.random.default_rng(3)
    p, n = PROFILES[name], UNITREE[name]
    state_cls, _ = p.idl_types()
    codec = p.codec(num_joints=n)
    obj = state_cls()
    random_fill(obj, p.state_schema, rng)
    obj.crc = reference_crc(obj, p.state_schema)
    s = codec.decode_state(obj.serialize())
    assert s.crc_ok
    motors = obj.motor_state[:n]
    np.testing.assert_array_equal(s.q, np.float32([m.q for m in motors]))
    np.testing.assert_array_equal(s.dq, np.float32([m.dq for m in motors]))
    np.testing.assert_array_equal(s.tau, np.float32([m.tau_est for m in motors]))
    np.testing.assert_array_equal(s.quat, np.float32(obj.imu_state.quaternion))
    np.testing.assert_array_equal(s.gyro, np.float32(obj.imu_state.gyroscope))
    assert s.tick == obj.tick
    obj.motor_state[0].q += 1.0  # contents change, crc does not
    assert not codec.decode_state(obj.serialize()).crc_ok


@pytest.mark.parametrize("name", list(UNITREE))
def test_command_round_trips_through_cyclonedds(name):
    rng = np.random.default_rng(4)
    p, n = PROFILES[name], UNITREE[name]
    robot_side, sim_side = (
        p.codec(num_joints=n, slots=range(n)[::-1]),
        p.codec(num_joints=n, slots=range(n)[::-1]),
    )
    values = joint_arrays(rng, n)
    _, cmd_cls = p.idl_types()
    obj = cmd_cls.deserialize(bytes(robot_side.encode_command(**values)))
    assert obj.crc == reference_crc(obj, p.command_schema)
    got = sim_side.decode_command(obj.serialize())
    assert got.crc_ok
    for key, arr in values.items():
        np.testing.assert_array_equal(getattr(got, key), arr)
    np.testing.assert_array_equal(got.mode, np.full(n, p.enable_mode))


def test_go2_command_carries_low_level_header_and_stop_sentinels():
    codec = PROFILES["unitree_go"].codec(num_joints=12)
    obj = idl.GoLowCmd.deserialize(bytes(codec.encode_command(q=np.zeros(12), kp=np.full(12, 20.0))))
    assert obj.head == b"\xfe\xef" and obj.level_flag == 0xFF
    assert obj.motor_cmd[0].kp == 20.0 and obj.motor_cmd[11].mode == 1
    assert obj.motor_cmd[12].q == np.float32(2.146e9) and obj.motor_cmd[19].dq == 16000.0
    assert obj.motor_cmd[12].kp == 0.0


def test_hg_command_echoes_mode_machine_from_state():
    p = PROFILES["unitree_hg"]
    codec = p.codec(num_joints=29)
    state = idl.HgLowState(mode_machine=5)
    codec.decode_state(state.serialize())
    obj = idl.HgLowCmd.deserialize(bytes(codec.encode_command(q=np.zeros(29))))
    assert obj.mode_machine == 5 and obj.mode_pr == 0
    assert [m.mode for m in obj.motor_cmd] == [1] * 29 + [0] * 6
    assert obj.crc == reference_crc(obj, p.command_schema)


def test_arguments_left_out_keep_their_last_value():
    codec = PROFILES["unitree_go"].codec(num_joints=2)
    codec.encode_command(q=[1, 2], kp=[30, 40], kd=[1, 1])
    obj = idl.GoLowCmd.deserialize(bytes(codec.encode_command(q=[3, 4])))
    assert [obj.motor_cmd[i].kp for i in range(2)] == [30.0, 40.0]
    assert [obj.motor_cmd[i].q for i in range(2)] == [3.0, 4.0]


def test_bad_messages_and_slots_are_rejected():
    codec = PROFILES["unitree_go"].codec(num_joints=12)
    wire = bytes(idl.GoLowState().serialize())
    with pytest.raises(ValueError, match="bytes, expected"):
        codec.decode_state(wire[:100])
    with pytest.raises(ValueError, match="little-endian"):
        codec.decode_state(b"\x00\x00\x00\x00" + wire[4:])
    with pytest.raises(ValueError, match="distinct"):
        PROFILES["unitree_go"].codec(num_joints=2, slots=[3, 3])
    # XCDR2 (final, no 8-byte members: same body) and a writer's trailing padding are read
    assert codec.decode_state(b"\x00\x07\x00\x00" + wire[4:] + b"\0" * 4).tick == 0
    with pytest.raises(ValueError, match="beyond"):
        PROFILES["unitree_go"].codec(num_joints=1, slots=[20])


# --- ROS 2 ---------------------------------------------------------------------------------------------
def joint_state(names, pos, vel, eff, sec=3, nsec=7, frame="base"):
    header = idl.Header(stamp=idl.Time(sec, nsec), frame_id=frame)
    return idl.JointState(
        header=header, name=list(names), position=list(pos), velocity=list(vel), effort=list(eff)
    )


def test_ros2_bytes_equal_cyclonedds_serialize():
    rng = np.random.default_rng(5)
    names = ["hip", "knee_joint", "a"]
    codec = PROFILES["ros2"].codec(num_joints=3, joint_names=names, frame_id="base")
    q, dq, tau = (rng.standard_normal(3) for _ in range(3))
    wire = bytes(codec.encode_state(q=q, dq=dq, tau=tau, stamp_ns=3_000_000_007))
    assert wire == joint_state(names, q, dq, tau).serialize()
    cmd = bytes(codec.encode_command(q=q))
    assert cmd == idl.Float64MultiArray(data=list(q)).serialize()


def test_ros2_decode_maps_joints_by_name_and_follows_layout_changes():
    rng = np.random.default_rng(6)
    codec = PROFILES["ros2"].codec(num_joints=2, joint_names=["b", "a"])
    pos, vel, eff = rng.standard_normal((3, 3))
    s = codec.decode_state(joint_state(["a", "b", "c"], pos, vel, eff).serialize())
    np.testing.assert_array_equal(s.q, pos[[1, 0]])
    np.testing.assert_array_equal(s.tau, eff[[1, 0]])
    assert s.tick == 3_000_000_007
    s = codec.decode_state(joint_state(["b", "a", "c"], pos + 1, vel, eff).serialize())  # reordered
    np.testing.assert_array_equal(s.q, pos[[0, 1]] + 1)
    s = codec.decode_state(joint_state(["b", "a"], pos[:2], [], []).serialize())  # no velocity/effort
    np.testing.assert_array_equal(s.dq, np.zeros(2))
    with pytest.raises(ValueError, match="no joint named"):
        codec.decode_state(joint_state(["x", "a"], pos[:2], [], []).serialize())


def test_ros2_command_decodes_with_layout_dims_and_interfaces():
    codec = PROFILES["ros2"].codec(num_joints=2, command_interface="effort")
    dim = idl.MultiArrayDimension(label="joints", size=2, stride=2)
    msg = idl.Float64MultiArray(layout=idl.MultiArrayLayout(dim=[dim]), data=[1.5, -2.0])
    got = codec.decode_command(msg.serialize())
    np.testing.assert_array_equal(got.tau, [1.5, -2.0])
    np.testing.assert_array_equal(got.q, [0.0, 0.0])
    back = idl.Float64MultiArray.deserialize(bytes(codec.encode_command(tau=[0.5, 0.25])))
    assert back.data == [0.5, 0.25]
    with pytest.raises(ValueError, match="command_interface"):
        PROFILES["ros2"].codec(num_joints=2, command_interface="torque")


# --- deploy stays lean ---------------------------------------------------------------------------------
def test_codec_works_without_cyclonedds():
    code = (
        "import sys; sys.modules['cyclonedds'] = None\n"
        "import numpy as np, sim2real.deploy, sim2real.deploy.dds as d\n"
        "c = d.PROFILES['unitree_hg'].codec(num_joints=29)\n"
        "w = bytes(c.encode_command(q=np.ones(29)))\n"
        "s = c.decode_state(bytes(c.encode_state(q=np.ones(29), tick=9)))\n"
        "assert s.crc_ok and s.tick == 9 and len(w) == 1004\n"
        "assert 'cyclonedds' not in [m.split('.')[0] for m in sys.modules if sys.modules[m]]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
