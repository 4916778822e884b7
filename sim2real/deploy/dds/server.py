"""The robot's side of a DDS link, as firmware does it: publish state at a fixed rate with a tick
counter, apply the newest command (CRC checked), hold it until the next one.

`sim2real robot-sim transport=dds robot=<mapping>` serves the task's MuJoCo model with this (the
sim2sim loop over DDS on one machine); any `Robot` works, so tests serve small fakes. The motor model:
each tick the held command becomes a joint torque, tau + kp·(q* − q) + kd·(dq* − dq) on the state just
published (a motor whose mode is not the profile's enable value gives none), divided by `effort_scale`
(N m per unit of the simulator's action; the actuator gear for MuJoCo) and clipped to [-1, 1]. The
published joint and IMU fields are those that give the robot's readings under the mapping (inverse map).

Every command is checked for meaning before it is applied, not only its CRC: one that does not decode
(wrong size, wrong encoding, another type's bytes on the topic), carries a non-finite value or a
negative gain is dropped and counted (`bad_messages`); so is one from a second commander while the
first was heard within TAKEOVER_S (`second_commander`). The server keeps serving.
"""

from __future__ import annotations

import logging
import math
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim2real.deploy.dds import remote
from sim2real.deploy.dds.link import Participant
from sim2real.deploy.dds.mapping import Converter, MappingError, RobotConfig, joint_state_from_readings
from sim2real.deploy.dds.profiles import get_profile
from sim2real.deploy.dds.robot import READER_DEPTH, codec_for

log = logging.getLogger("sim2real.dds")
TAKEOVER_S = 1.0  # another writer's commands are taken once the current commander is silent this long
_UNDECODABLE = (ValueError, struct.error, IndexError, OverflowError)


@dataclass
class ServerStats:
    ticks: int = 0  # states published
    commands: int = 0  # valid commands received
    crc_errors: int = 0  # commands dropped: CRC mismatch
    bad_messages: int = 0  # commands dropped: wrong size or encoding, non-finite values, negative gains
    second_commander: int = 0  # commands dropped: from another writer while the commander is active
    idle_ticks: int = 0  # ticks after the first command without a new one (command held)
    overruns: int = 0  # ticks that finished after the next tick's deadline
    episode_returns: list[float] = field(default_factory=list)
    falls: int = 0  # episodes the task ended early (a fall), not by its time limit

    def summary(self) -> str:
        return (
            f"{self.ticks} states published, {self.commands} commands applied, {self.crc_errors} CRC "
            f"errors, {self.bad_messages} malformed, {self.second_commander} from a second commander, "
            f"{self.idle_ticks} ticks without a new command, "
            f"{self.overruns} overruns, {len(self.episode_returns)} episodes ended ({self.falls} by a fall)"
        )


class DdsRobotServer:
    """Serves `robot` on the profile's state/command topics at `rate_hz` (see module doc)."""

    def __init__(self, robot, mapping: RobotConfig, rate_hz: float, effort_scale=None, seed: int = 0):
        self.robot, self.mapping, self.rate_hz, self.seed = robot, mapping, float(rate_hz), seed
        self.profile = get_profile(mapping.profile)
        self.conv = conv = Converter(mapping)
        _check_robot(robot, conv, mapping.name)
        self.codec, self.state_topic, self.command_topic = codec_for(mapping, conv)
        n = len(conv.motors)
        self.effort = np.ones(n)
        scale = conv.action_scale if effort_scale is None else np.asarray(effort_scale, np.float64)
        self.effort[conv.action_joint] = scale
        self.stats = ServerStats()
        self._has_extras = hasattr(robot, "extras")
        # robots that take joint targets and gains (the Go2 task) apply each command as the motors do
        self._motor_level = bool(getattr(robot, "takes_motor_commands", False))
        self._remote_bytes = np.zeros(remote.SIZE, np.uint8)
        self._held = None  # the command being applied (CommandView copy)
        self._applied = np.zeros(n)  # (n,) joint torque of the last tick
        self._joints: dict[str, np.ndarray] | None = None
        self._return, self._steps = 0.0, 0  # the robot's episode so far
        self._participant: Participant | None = None
        self._commander: int | None = None  # publication handle of the writer being obeyed
        self._commander_heard = 0.0

    def open(self) -> DdsRobotServer:
        state_t, cmd_t = self.profile.idl_types()
        self._participant = part = Participant(self.mapping.domain, self.mapping.interface)
        self._writer = part.writer(self.state_topic, state_t)
        self._reader = part.reader(self.command_topic, cmd_t, depth=READER_DEPTH)
        return self

    def where(self) -> str:
        return self._participant.where() if self._participant else "(closed)"

    def serve(self, stop: threading.Event | None = None, duration: float | None = None) -> ServerStats:
        """Tick at `rate_hz` on absolute deadlines until `stop` is set or `duration` seconds passed."""
        stop = stop or threading.Event()
        period = 1.0 / self.rate_hz
        t0 = time.monotonic()
        k = 0
        while not stop.is_set() and (duration is None or k * period < duration):
            delay = t0 + k * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.tick()
            k += 1
            late = time.monotonic() - (t0 + k * period)
            if late > 0:
                self.stats.overruns += 1
                k += math.ceil(late / period)  # skip the ticks already missed, as firmware would
        return self.stats

    def serve_lockstep(self, stop: threading.Event | None = None, idle_s: float = 0.05) -> ServerStats:
        """Answer each command with the state after it, as the UDP bridge's `RobotServer` does (for
        round-trip measurements); the state is re-sent every `idle_s` while no command comes, so a
        controller can connect."""
        stop = stop or threading.Event()
        self._publish()
        while not stop.is_set():
            got = self._take_command() if self._reader.wait(idle_s) else None
            if got is not None:
                self._held = got
                self._step(got)
            self._publish()
        return self.stats

    def tick(self) -> None:
        """One robot tick: newest command in, one control step, state out."""
        got = self._take_command()
        if got:
            self._held = got
        elif self._held is not None:
            self.stats.idle_ticks += 1
        if self._held is not None and self._joints is not None:
            self._step(self._held)
        self._publish()

    def _take_command(self):
        newest = None
        for data, _, writer in self._reader.take_with_writers():
            cmd = self._decode(data)
            if cmd is None:
                continue
            if not self._obeys(writer):
                self.stats.second_commander += 1
                continue
            self.stats.commands += 1
            newest = cmd
        return newest

    def _decode(self, data):
        """The command in `data`, or None (counted) when it is not one to apply."""
        try:
            cmd = self.codec.decode_command(data)
        except _UNDECODABLE:
            self.stats.bad_messages += 1
            return None
        if not cmd.crc_ok:
            self.stats.crc_errors += 1
            return None
        values = np.concatenate([cmd.q, cmd.dq, cmd.kp, cmd.kd, cmd.tau]).astype(np.float64)
        if not np.isfinite(values).all() or (cmd.kp < 0).any() or (cmd.kd < 0).any():
            self.stats.bad_messages += 1
            return None
        return cmd

    def _obeys(self, writer: int) -> bool:
        """One commander at a time: another writer takes over only after TAKEOVER_S of silence."""
        now = time.monotonic()
        if writer != self._commander and now - self._commander_heard < TAKEOVER_S:
            return False
        self._commander, self._commander_heard = writer, now
        return True

    def _step(self, cmd) -> None:
        j = self._joints
        enabled = cmd.mode == self.profile.enable_mode  # (n,); ROS 2 commands decode as all enabled
        kp, kd = cmd.kp, cmd.kd
        if self.profile.state_schema is None:  # ROS 2: the robot's own controller holds the gains
            kp, kd = self.conv.kp, self.conv.kd
        tau = (cmd.tau + kp * (cmd.q - j["q"]) + kd * (cmd.dq - j["dq"])) * enabled  # (n,)
        self._applied = tau
        if self._motor_level:  # the simulator runs the motors' PD law itself, at its physics rate
            a = self.conv.action_joint
            self.robot.send_motor_command(
                cmd.q[a], cmd.dq[a], kp[a] * enabled[a], kd[a] * enabled[a], cmd.tau[a] * enabled[a]
            )
        else:
            action = np.clip(tau[self.conv.action_joint] / self.effort[self.conv.action_joint], -1.0, 1.0)
            self.robot.send(action.astype(np.float32))
        extras = self.robot.extras() if self._has_extras else {}
        self._return += float(extras.get("reward") or 0.0)
        self._steps += 1
        if extras.get("done"):
            self.stats.episode_returns.append(self._return)
            fell = bool(extras.get("terminated"))
            self.stats.falls += fell
            n = len(self.stats.episode_returns)
            log.info(
                "robot-sim: episode %d return %.1f%s",
                n,
                self._return,
                fall_text(extras, self._steps) if fell else "",
            )
            self._return, self._steps = 0.0, 0
            self.robot.reset(self.seed + len(self.stats.episode_returns))

    def _publish(self) -> None:
        self._joints = j = joint_state_from_readings(self.conv, self.robot.read())
        self.stats.ticks += 1
        sim_ns = round(self.stats.ticks * 1e9 / self.rate_hz)
        if self.profile.state_schema is None:  # ROS 2 JointState: the stamp is the tick
            wire = self.codec.encode_state(q=j["q"], dq=j["dq"], tau=self._applied, stamp_ns=sim_ns)
        else:  # Unitree: tick in ms, as the firmware counts
            wire = self.codec.encode_state(
                q=j["q"], dq=j["dq"], ddq=j["ddq"], tau=self._applied, quat=j["quat"], gyro=j["gyro"],
                acc=j["acc"], rpy=j["rpy"], tick=sim_ns // 1_000_000,
                wireless_remote=remote.encode(j["remote"], self._remote_bytes),
            )  # fmt: skip
        self._writer.write(wire)

    def close(self) -> None:
        if self._participant is not None:
            self._participant.close()
            self._participant = None


def fall_text(extras: Mapping[str, Any], steps: int) -> str:
    """What ended a simulated robot's episode and the physics it was drawn, e.g. ` (fell: tilt after 652
    steps; friction_scale 0.45, ...)`, so a fall in sim2sim can be reproduced and told from a link fault."""
    causes = ", ".join(extras.get("falls") or ())
    dynamics = ", ".join(f"{k} {v:.3g}" for k, v in (extras.get("dynamics") or {}).items())
    return (
        f" (fell{': ' + causes if causes else ''} after {steps} steps{'; ' + dynamics if dynamics else ''})"
    )


def _check_robot(robot, conv: Converter, name: str) -> None:
    """The served robot must have the mapping's actions (same order) and every reading it maps."""
    if tuple(robot.action_names) != conv.action_names:
        raise MappingError(
            f"robot mapping {name}: actions {list(conv.action_names)} differ from the simulator's "
            f"{list(robot.action_names)}"
        )
    have = set(robot.reading_names)
    for reading in conv.reading_names:
        if reading not in have:
            raise MappingError(
                f"robot mapping {name}: reading {reading!r} is not among the simulator's "
                f"{list(robot.reading_names)}"
            )
