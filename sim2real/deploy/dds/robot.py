"""`DdsRobot`: a robot that speaks DDS (Unitree Go2/G1 low-level topics, or ROS 2 joint topics).

    robot = DdsRobot(load_mapping("pendulum_unitree_go"))   # conf/robot/pendulum_unitree_go.yaml
    robot.connect()        # loopback unless the mapping names an interface; waits for the first state
    readings = robot.read()  # newest state's readings by the policy's names, or None if nothing new
    robot.send(action)     # (A,) policy action -> motor command (torque, or position with kp/kd) + CRC

Link health: `connect()` raises `DdsLinkError` naming domain, interface, topic and type when no valid
state arrives within `connect_timeout` (it never hangs); mid-run, `read()` returns None while nothing
new arrives, so the controller's watchdog holds the safe action and records a fault; states failing
their CRC are dropped and counted; gaps in the robot's tick counter are counted and logged.

Stopping: `close()` sends the stop command (Unitree: the vendor's damping command; ROS 2: the last,
safe, command again) STOP_REPEATS times over STOP_SPAN_S, so a best-effort reader that misses one
still gets it, then waits for reliable readers' acknowledgements before the participant goes: deleting
it at once could drop the final command and leave the last torque applied.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from sim2real.deploy.dds.link import DdsLinkError, Participant, describe_interface
from sim2real.deploy.dds.mapping import Converter, RobotConfig, check_profile
from sim2real.deploy.dds.profiles import Profile, get_profile

log = logging.getLogger("sim2real.dds")
READER_DEPTH = 8  # states kept between two reads: a faster robot's intermediate states count for ticks
STOP_REPEATS, STOP_SPAN_S = 6, 0.05  # the stop command, sent this often over this long (s)
ACK_TIMEOUT_S = 0.2  # then wait at most this long for reliable readers to acknowledge it


@dataclass
class LinkStats:
    states: int = 0  # valid states received
    crc_errors: int = 0  # states dropped: CRC mismatch
    bad_messages: int = 0  # states dropped: wrong size or encoding
    tick_gaps: int = 0  # times the tick jumped by more than one step
    ticks_missed: int = 0  # states the robot sent (by its tick) that never arrived
    ticks_overwritten: int = 0  # states replaced in the reader's keep-last history before a read
    tick_restarts: int = 0  # the tick went backwards (robot restarted)
    sent: int = 0
    send_errors: int = 0

    def summary(self) -> str:
        return (
            f"{self.states} states, {self.crc_errors} CRC errors, {self.bad_messages} malformed, "
            f"{self.tick_gaps} tick gaps ({self.ticks_missed} states missed), {self.tick_restarts} restarts, "
            f"{self.ticks_overwritten} states overwritten between reads; "
            f"{self.sent} commands sent, {self.send_errors} send errors"
        )


class TickMonitor:
    """Counts gaps in a robot's tick: the step is the smallest positive increment seen so far (a Unitree
    tick counts milliseconds, so at 500 Hz it steps by 2), and a larger jump misses jump/step − 1 states.

    `overflowed` says the reader's keep-last history was full when taken: the states before this one
    may have been replaced locally (the controller read too seldom), so they are not counted as lost.
    """

    def __init__(self, stats: LinkStats):
        self.stats, self.last, self.step = stats, None, None

    def see(self, tick: int, overflowed: bool = False) -> None:
        last, self.last = self.last, tick
        if last is None or tick == last:
            return
        if tick < last:
            self.stats.tick_restarts += 1
            log.warning("dds: robot tick went back from %d to %d (robot restarted?)", last, tick)
            return
        delta = tick - last
        if self.step is None or delta < self.step:
            self.step = delta
            return
        missed = round(delta / self.step) - 1
        if missed > 0 and overflowed:
            self.stats.ticks_overwritten += missed
        elif missed > 0:
            self.stats.tick_gaps += 1
            self.stats.ticks_missed += missed
            if self.stats.tick_gaps <= 10 or self.stats.tick_gaps % 100 == 0:
                log.warning(
                    "dds: gap in the robot's tick %d -> %d: %d state(s) missed (%d gaps so far)",
                    last, tick, missed, self.stats.tick_gaps,
                )  # fmt: skip


def codec_for(mapping: RobotConfig, conv: Converter):
    """(codec, state topic, command topic) of a mapping, refusing what the profile cannot carry: Unitree
    codecs over the mapping's motor slots; ROS 2 sends one array, positions or efforts (to the
    `forward_effort_controller` when all actions are torques)."""
    p = get_profile(mapping.profile)
    source = f"robot mapping {mapping.name or '(config)'}"
    check_profile(
        mapping, p.motor_slots or 1 << 30, "quat" in p.state_fields, "kp" in p.command_fields, source
    )
    if p.state_schema is not None:
        codec = p.codec(len(conv.motors), slots=conv.motors)
        return codec, mapping.state_topic or p.state_topic, mapping.command_topic or p.command_topic
    interface = "position" if conv.position.all() else "effort"
    names = None if mapping.joint_names is None else [mapping.joint_names[i] for i in conv.motors]
    codec = p.codec(len(conv.motors), joint_names=names, command_interface=interface)
    default = p.command_topic.replace("position", interface)
    return codec, mapping.state_topic or p.state_topic, mapping.command_topic or default


class DdsRobot:
    """The `Robot` protocol over DDS, driven by a robot mapping (see `sim2real.deploy.dds.mapping`)."""

    def __init__(self, mapping: RobotConfig, history: int = READER_DEPTH):
        self.mapping = mapping
        self.profile: Profile = get_profile(mapping.profile)
        self.conv = Converter(mapping)
        self.reading_names, self.action_names = self.conv.reading_names, self.conv.action_names
        self.codec, self.state_topic, self.command_topic = codec_for(mapping, self.conv)
        self.history = history
        self.stats = LinkStats()
        self.ticks = TickMonitor(self.stats)
        self._participant: Participant | None = None
        self._writer = None
        self._pending: dict[str, float] | None = None

    def where(self) -> str:
        m = self.mapping
        return (
            f"topic {self.state_topic!r} (type {self.profile.state_type}) on DDS domain {m.domain}, "
            f"interface {describe_interface(m.interface)}"
        )

    # -- Robot protocol ---------------------------------------------------------------------------
    def connect(self) -> None:
        """Join the domain and wait up to `connect_timeout` for the first valid state."""
        m = self.mapping
        state_t, cmd_t = self.profile.idl_types()
        self._participant = part = Participant(m.domain, m.interface)
        try:
            self._reader = part.reader(self.state_topic, state_t, depth=self.history)
            self._writer = part.writer(self.command_topic, cmd_t)
            self.codec.encode_command(kp=self.conv.kp, kd=self.conv.kd)  # gains once; held afterwards
            self._pending = self._wait_first(m.connect_timeout)
        except BaseException:
            self.close()
            raise

    def _wait_first(self, timeout: float) -> dict[str, float]:
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            self._reader.wait(min(left, 0.05))
            readings = self._take()
            if readings is not None:
                return readings
        heard = ""
        if self.stats.crc_errors or self.stats.bad_messages:
            heard = f" (heard {self.stats.crc_errors} with a bad CRC, {self.stats.bad_messages} malformed)"
        raise DdsLinkError(
            f"no valid state within {timeout:g} s on {self.where()}{heard}: is the robot (or "
            f"`sim2real robot-sim transport=dds robot={self.mapping.name or '...'}`) publishing there?"
        )

    def read(self) -> dict[str, float] | None:
        if self._pending is not None:
            readings, self._pending = self._pending, None
            return readings
        return self._take()

    def _take(self) -> dict[str, float] | None:
        """Decode every state taken (CRC, tick), return the newest valid one's readings."""
        newest = None
        taken = self._reader.take()
        overflowed = len(taken) >= self.history  # the first one may follow states replaced locally
        for data, _stamp in taken:
            try:
                view = self.codec.decode_state(data)
            except ValueError:
                self.stats.bad_messages += 1
                continue
            if not view.crc_ok:
                self.stats.crc_errors += 1
                continue
            self.stats.states += 1
            self.ticks.see(view.tick, overflowed)
            overflowed = False
            newest = data
        if newest is None:
            return None
        if newest is not data:  # a later sample was dropped: decode the newest valid one again
            view = self.codec.decode_state(newest)
        return self.conv.readings(view)

    def wait(self, timeout_s: float) -> bool:
        """Block until a state arrived (or `timeout_s` passed), the GIL released: for lockstep clients."""
        return self._reader.wait(timeout_s)

    def send(self, action: np.ndarray) -> None:
        q, tau = self.conv.command(action)
        wire = self.codec.encode_command(q=q, tau=tau)
        if self._writer.write(wire):
            self.stats.sent += 1
        else:
            self.stats.send_errors += 1

    def stop_command(self) -> memoryview:
        """The robot's stop message: with gains in the command (Unitree), damping on the driven motors
        (q = dq = kp = tau = 0, kd = the mapping's damping_kd, as unitree_rl_gym's `create_damping_cmd`);
        without (ROS 2), the last command again (the controller sends the safe action last)."""
        if "kp" not in self.profile.command_fields:
            return self.codec.encode_command()
        zero = np.zeros(len(self.conv.motors), np.float32)
        return self.codec.encode_command(q=zero, dq=zero, kp=zero, kd=self.conv.damping_kd, tau=zero)

    def _send_stop(self) -> None:
        wire = self.stop_command()
        for i in range(STOP_REPEATS):
            if i:
                time.sleep(STOP_SPAN_S / (STOP_REPEATS - 1))
            if self._writer.write(wire):
                self.stats.sent += 1
            else:
                self.stats.send_errors += 1
        self._writer.wait_for_acks(ACK_TIMEOUT_S)

    def close(self) -> None:
        """Send the stop command (when any command was sent), then leave the domain."""
        if self._participant is not None:
            try:
                if self._writer is not None and self.stats.sent:
                    self._send_stop()
            finally:
                self._close_participant()

    def _close_participant(self) -> None:
        if self._participant is not None:
            self._participant.close()
            self._participant, self._writer = None, None
            if self.stats.states:
                log.info("dds: link closed: %s", self.stats.summary())
