"""A hostile peer on loopback: thousands of valid-CRC messages with a wrong meaning. Each is dropped
and counted, the robot never sees one, and afterwards the server still serves a controller with no
faults (UDP: the robot-sim's `RobotServer`; DDS: `DdsRobotServer`, where cyclonedds imports)."""

from __future__ import annotations

import json
import socket
import struct
import time
import zlib

import numpy as np
import pytest
from test_deploy_policy import tiny_export
from test_deploy_udp import CounterRobot, serving

from sim2real.deploy import Controller, ControllerConfig, UdpRobot, load_policy, wire

HEADER = struct.Struct("<4sBBHIQ")


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return tiny_export(tmp_path_factory.mktemp("fuzz") / "export")


def frame(msg_type: int, seq: int, body: bytes = b"", count: int | None = None) -> bytes:
    """A datagram with a valid header, length and CRC, whatever the payload means."""
    n = len(body) // (1 if msg_type in wire.TEXT_TYPES else 4) if count is None else count
    f = HEADER.pack(wire.MAGIC, wire.VERSION, msg_type, n, seq, 0) + body
    return f + struct.pack("<I", zlib.crc32(f))


def floats(n: int, value: float = 0.1) -> bytes:
    return np.full(n, value, "<f4").tobytes()


def text(doc) -> bytes:
    return json.dumps(doc).encode() if not isinstance(doc, bytes) else doc


def wrong_meanings(rng: np.random.Generator, n: int) -> list[tuple[int, bytes]]:
    """`n` (type, payload) pairs that decode (CRC fine) but that a robot must refuse."""

    def pick(options: list):
        return options[int(rng.integers(len(options)))]

    kinds = [
        lambda: (wire.ACTION, floats(pick([0, 2, 5, 1000, 16000]))),  # the robot takes 1
        lambda: (wire.ACTION, floats(1, pick([np.nan, np.inf, -np.inf]))),
        lambda: (wire.RESET, text(pick([[1, 2], 3, "seed", None, True]))),
        lambda: (wire.RESET, text({"seed": pick(["abc", -1, 2**70, 1.5, True, [1]])})),
        lambda: (wire.RESET, text({"seed": 1, "extra": 2})),
        lambda: (wire.RESET, b"[" * int(rng.integers(2000, 20000))),  # nested past the recursion limit
        lambda: (wire.HELLO, floats(int(rng.integers(1, 50)))),
        lambda: (wire.BYE, floats(3)),
        lambda: (wire.STATE, floats(3)),  # a type only a robot sends
        lambda: (wire.DESCRIBE, text({"readings": []})),
        lambda: (int(rng.integers(7, 256)), floats(2)),  # unknown types
    ]
    return [kinds[int(rng.integers(len(kinds)))]() for _ in range(n)]


def test_udp_robot_server_drops_thousands_of_wrong_meanings_then_serves_a_controller(export_dir):
    rng = np.random.default_rng(7)
    robot = CounterRobot()
    with serving(robot) as server, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.sendto(frame(wire.HELLO, 1), server.address)  # the fuzzer is the active controller
        time.sleep(0.1)
        messages = wrong_meanings(rng, 3000)
        for seq, (msg_type, body) in enumerate(messages, start=2):
            s.sendto(frame(msg_type, seq, body), server.address)
            time.sleep(0.0003)  # leave the socket's receive buffer room (64 KB datagrams among them)
        time.sleep(0.5)
        # "[[[[...": JSON the decoder refuses (counted as corrupt); the rest decode and mean nothing
        dropped = server.stats.corrupt + server.stats.invalid
        assert robot.applied == [] and robot.resets == []  # nothing reached the robot
        assert 0.95 * len(messages) <= dropped <= len(messages) and server.stats.invalid > 0.8 * dropped
        time.sleep(1.0)  # the fuzzer went silent: another controller may take over
        udp = UdpRobot(*server.address)
        udp.connect()
        cfg = ControllerConfig(rate_hz=200.0, soft_start_s=0.0, stale_after_s=0.5)
        stats = Controller(load_policy(export_dir), udp, cfg).run(steps=50)
        udp.close()
    assert stats.steps == 50 and not stats.faults and len(robot.applied) == 51


def test_second_controller_is_refused_while_the_first_is_active():
    robot = CounterRobot()
    with serving(robot) as server, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        first = UdpRobot(*server.address)
        first.connect()
        other.bind(("127.0.0.1", 0))
        other.sendto(frame(wire.HELLO, 1), server.address)
        other.sendto(frame(wire.ACTION, 2, floats(1, 0.9)), server.address)
        first.send(np.array([0.1], np.float32))
        time.sleep(0.2)
        first.close()
    assert robot.applied == [pytest.approx(0.1)] and server.stats.invalid == 2


def test_reset_with_a_bad_seed_is_refused_by_the_controller_before_it_is_sent():
    robot = CounterRobot()
    with serving(robot) as server:
        udp = UdpRobot(*server.address)
        udp.connect()
        with pytest.raises(ValueError, match="seed -1"):
            udp.reset(-1)
        udp.reset(2**40)  # large but within int64: fine
        udp.close()
    assert robot.resets == [2**40]


# -- DDS --------------------------------------------------------------------------------------------
def test_dds_server_drops_wrong_sizes_values_and_a_second_commander_then_serves(export_dir):
    pytest.importorskip("cyclonedds")
    from test_dds_link import dds_domain
    from test_dds_robot import Pendulum, wait_matched
    from test_dds_robot import serving as dds_serving

    from sim2real.deploy.dds import get_profile
    from sim2real.deploy.dds.link import Participant
    from sim2real.deploy.dds.mapping import Converter, load_mapping
    from sim2real.deploy.dds.robot import DdsRobot

    mapping = load_mapping("pendulum_unitree_go", domain=dds_domain(), connect_timeout=10)
    profile, conv, robot = get_profile(mapping.profile), Converter(mapping), Pendulum()
    codec = profile.codec(len(conv.motors), slots=conv.motors)
    with dds_serving(robot, mapping, rate_hz=200.0) as (server, _), Participant(mapping.domain) as part:
        writer = part.writer(profile.command_topic, profile.idl_types()[1])
        wait_matched(writer)
        good = bytes(codec.encode_command(tau=np.array([0.5])))
        bad = [good[: int(n)] for n in np.linspace(0, len(good) - 1, 20)]  # cut short
        bad += [b"\x00\x03" + good[2:]]  # another encapsulation (parameter-list CDR)
        bad += [bytes(codec.encode_command(tau=np.array([v]))) for v in (np.nan, np.inf)]
        bad += [bytes(codec.encode_command(tau=np.zeros(1), kd=np.array([-3.0])))]
        for data in bad * 20:
            writer.write(data)
            time.sleep(0.002)  # under the reader's keep-last depth per tick
        time.sleep(0.3)
        assert server.stats.bad_messages >= 0.8 * 20 * len(bad)  # best effort: a few may be lost
        assert robot.applied == []  # none was applied
        # a real controller takes over once the fuzzer has been silent for a second
        time.sleep(1.1)
        dds = DdsRobot(mapping)
        dds.connect()
        stats = Controller(
            load_policy(export_dir), dds, ControllerConfig(rate_hz=100.0, stale_after_s=0.5)
        ).run(steps=40)
        writer.write(good)  # a second commander while the controller is active: refused
        time.sleep(0.05)
        dds.close()
    assert stats.steps == 40 and not stats.faults
    assert server.stats.commands >= 30 and server.stats.second_commander >= 1
