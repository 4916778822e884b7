"""UDP robot bridge: `UdpRobot` (the controller's side) and `RobotServer` (the robot's side).

The format is `sim2real.deploy.wire` (versioned header, sequence numbers, timestamps, CRC-32).
The server is lockstep, as robot firmware would be: each ACTION is applied and answered with the
STATE read after it. Both sides bind loopback unless given another address. `Link` emulates a bad
network on the sending side (latency, jitter, which reorders datagrams, and loss) for tests.
"""

from __future__ import annotations

import heapq
import random
import select
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim2real.deploy import wire
from sim2real.errors import UserError

DEFAULT_PORT = 47470
TAKEOVER_S = 1.0  # a HELLO from another address is refused while the client was heard this recently


class RobotUnreachable(UserError, ConnectionError):
    """No robot answered at the address (one line naming it and what to do)."""


def _now_us() -> int:
    return time.monotonic_ns() // 1000


@dataclass
class LinkConfig:
    """Emulated network faults (robot-sim side): each datagram sent, and each received, is dropped with
    probability `loss`; a sent one is delayed by latency + U(0, jitter), which reorders them."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.loss < 1.0:
            raise ValueError(f"link loss must be in [0, 1), got {self.loss}")
        if self.latency_ms < 0 or self.jitter_ms < 0:
            raise ValueError("link latency_ms and jitter_ms must be >= 0")


class Link:
    """Sends through a socket with the faults of a `LinkConfig`; `flush()` sends what is due."""

    def __init__(self, sock: socket.socket, config: LinkConfig | None = None):
        self.sock, self.config = sock, config or LinkConfig()
        self._rng = random.Random(self.config.seed)
        self._queue: list[tuple[float, int, bytes, Any]] = []  # (due, n, datagram, address)
        self._n = 0
        self.dropped = 0

    def drop(self) -> bool:
        if self.config.loss and self._rng.random() < self.config.loss:
            self.dropped += 1
            return True
        return False

    def send(self, data: bytes, address) -> None:
        if self.drop():
            return
        delay = (self.config.latency_ms + self._rng.uniform(0, self.config.jitter_ms)) / 1e3
        if delay <= 0:
            self.sock.sendto(data, address)
            return
        self._n += 1
        heapq.heappush(self._queue, (time.monotonic() + delay, self._n, data, address))

    def flush(self) -> float | None:
        """Send every datagram that is due; returns seconds until the next one (None: queue empty)."""
        now = time.monotonic()
        while self._queue and self._queue[0][0] <= now:
            _, _, data, address = heapq.heappop(self._queue)
            self.sock.sendto(data, address)
        return self._queue[0][0] - now if self._queue else None


@dataclass
class BridgeStats:
    sent: int = 0
    accepted: int = 0
    stale: int = 0  # dropped: not newer than the newest accepted (late, reordered, duplicated)
    corrupt: int = 0  # dropped: bad magic/version/length/CRC
    invalid: int = 0  # dropped: valid CRC, wrong meaning (count, JSON, seed, type, a second controller)
    lost: int = 0  # sequence numbers never seen (gaps)
    send_errors: int = 0
    last_seq: int | None = None

    def accept(self, seq: int) -> bool:
        if not wire.newer(seq, self.last_seq):
            self.stale += 1
            return False
        if self.last_seq is not None:
            self.lost += ((seq - self.last_seq) & 0xFFFFFFFF) - 1
        self.last_seq = seq
        self.accepted += 1
        return True


class UdpRobot:
    """A robot on the other end of a UDP socket (robot-sim, or firmware speaking the wire format).

    `read()` drains the socket without blocking and returns the newest STATE's readings (None if no
    newer STATE arrived); `send()` never blocks; `reset()` and `connect()` wait for the robot's
    DESCRIBE, retrying `retries` times after `timeout_s` each (the request may be lost).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        timeout_s: float = 0.5,
        retries: int = 10,
        bind: str = "127.0.0.1",
    ):
        self.address = (host, port)
        self.timeout_s, self.retries, self.bind = timeout_s, retries, bind
        self.reading_names: tuple[str, ...] = ()
        self.action_names: tuple[str, ...] = ()
        self.extra_names: tuple[str, ...] = ()
        self.dynamics_names: tuple[str, ...] = ()
        self.stats = BridgeStats()
        self.description: dict[str, Any] = {}
        self._sock: socket.socket | None = None
        self._seq = 0
        self._extras: dict[str, Any] = {}

    def connect(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind((self.bind, 0))
        except OSError as e:
            self._sock.close()
            raise UserError(
                f"cannot bind {self.bind} to reach the robot: {e.strerror} (--bind / deploy.host)"
            ) from None
        self._sock.setblocking(False)
        self._request(wire.HELLO, None)

    def _send(self, msg_type: int, payload) -> int:
        """Send without blocking; a failed send is counted, never raised (the watchdog sees the silence)."""
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        try:
            self._sock.sendto(wire.encode(msg_type, self._seq, _now_us(), payload), self.address)
            self.stats.sent += 1
        except OSError:
            self.stats.send_errors += 1
        return self._seq

    def _request(self, msg_type: int, payload) -> None:
        """Send HELLO/RESET until a DESCRIBE acknowledges it; states sent before it are then stale."""
        for _ in range(self.retries):
            seq = self._send(msg_type, payload)
            deadline = time.monotonic() + self.timeout_s
            while (left := deadline - time.monotonic()) > 0:
                if not select.select([self._sock], [], [], left)[0]:
                    break
                msg = self._recv()
                if msg is not None and msg.type == wire.DESCRIBE and msg.doc.get("ack") == seq:
                    self._describe(msg)
                    return
        host, port = self.address
        raise RobotUnreachable(
            f"no answer from the robot at udp://{host}:{port} after {self.retries} tries of "
            f"{self.timeout_s:g} s: start `sim2real robot-sim` (or the robot's bridge) there, or set the "
            "robot's address (deploy.host, deploy.port)"
        )

    def _describe(self, msg: wire.Message) -> None:
        doc = msg.doc
        self.description = doc
        self.reading_names = tuple(doc["readings"])
        self.action_names = tuple(doc["actions"])
        self.extra_names = tuple(doc.get("extras", ()))
        self._extras = {"dynamics": doc.get("dynamics") or {}}
        self.dynamics_names = tuple(self._extras["dynamics"])  # a simulator's; a real robot has none
        self.stats.last_seq = msg.seq  # anything older belongs to the previous episode

    def _recv(self) -> wire.Message | None:
        try:
            data = self._sock.recv(wire.MAX_DATAGRAM)
        except (BlockingIOError, ConnectionRefusedError):
            return None
        try:
            return wire.decode(data)
        except wire.WireError:
            self.stats.corrupt += 1
            return None

    def read(self) -> Mapping[str, float] | None:
        newest = None
        while True:
            try:
                data = self._sock.recv(wire.MAX_DATAGRAM)
            except (BlockingIOError, ConnectionRefusedError):  # nothing (more) there, or robot gone
                break
            try:
                msg = wire.decode(data)
            except wire.WireError:
                self.stats.corrupt += 1
                continue
            if msg.type == wire.STATE and self.stats.accept(msg.seq):
                newest = msg
        if newest is None:
            return None
        values = newest.floats.tolist()
        n = len(self.reading_names)
        if len(values) != n + len(self.extra_names):
            self.stats.corrupt += 1
            return None
        self._extras.update(zip(self.extra_names, values[n:], strict=True))
        return dict(zip(self.reading_names, values[:n], strict=True))

    def send(self, action: np.ndarray) -> None:
        self._send(wire.ACTION, action)

    def reset(self, seed: int | None = None) -> None:
        """Ask a simulated robot for a new episode (a real robot answers RESET with DESCRIBE only)."""
        problem = wire.seed_problem(seed)
        if problem is not None:  # the robot would drop the request: say why here
            raise ValueError(f"reset: {problem} (a robot takes null or 0..2**63-1)")
        self._request(wire.RESET, {"seed": seed})

    def extras(self) -> Mapping[str, Any]:
        return self._extras

    def close(self) -> None:
        if self._sock is not None:
            self._send(wire.BYE, None)
            self._sock.close()
            self._sock = None


@dataclass
class RobotServer:
    """Serves a `Robot` (e.g. `MujocoRobot`) over UDP to one controller at a time; the reference for
    a firmware port: decode, check, switch on the type, answer."""

    robot: Any  # Robot; EpisodicRobot for RESET and extras
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    link: LinkConfig = field(default_factory=LinkConfig)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind((self.host, self.port))
        except OSError as e:
            self.sock.close()
            raise UserError(
                f"cannot bind udp://{self.host}:{self.port}: {e.strerror} (another robot-sim there? "
                "pick another deploy.port)"
            ) from e
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()
        self.out = Link(self.sock, self.link)
        self.stats = BridgeStats()
        self._client = None
        self._heard = 0.0  # when the client was last heard (monotonic)
        self.last_invalid = ""  # why the newest dropped message was dropped
        self._seq = 0
        self._episode = 0
        self._extras = tuple(k for k in ("reward", "done") if hasattr(self.robot, "extras"))

    def serve(self, stop: threading.Event | None = None, duration: float | None = None) -> None:
        """Answer requests until `stop` is set or `duration` seconds passed."""
        end = None if duration is None else time.monotonic() + duration
        stop = stop or threading.Event()
        while not stop.is_set() and (end is None or time.monotonic() < end):
            wait = self.out.flush()
            wait = 0.05 if wait is None else min(wait, 0.05)
            if select.select([self.sock], [], [], wait)[0]:
                self._drain()

    def _drain(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(wire.MAX_DATAGRAM)
            except (BlockingIOError, ConnectionRefusedError):
                return
            if self.out.drop():  # emulated loss on the way in
                continue
            try:
                msg = wire.decode(data)
            except wire.WireError:
                self.stats.corrupt += 1
                continue
            self.handle(msg, addr)

    def handle(self, msg: wire.Message, addr) -> None:
        """Apply one decoded message; one with a wrong meaning is dropped and counted (`stats.invalid`),
        never raised: a peer's datagram must not stop the server."""
        problem = self._problem(msg, addr)
        if problem is not None:
            self.stats.invalid += 1
            self.last_invalid = problem
            return
        if msg.type == wire.HELLO:  # a (new) client: its sequence starts here
            self._client, self.stats.last_seq = addr, msg.seq
            self._heard = time.monotonic()
            self._answer(msg.seq)
            return
        if not self.stats.accept(msg.seq):
            return
        self._heard = time.monotonic()
        if msg.type == wire.ACTION:
            self.robot.send(np.asarray(msg.floats, np.float32))
            self._send_state()
        elif msg.type == wire.RESET:
            if hasattr(self.robot, "reset"):
                try:
                    self.robot.reset(msg.doc.get("seed"))
                except ValueError as e:  # a simulator's own refusal (a seed it cannot take)
                    self.stats.invalid += 1
                    self.last_invalid = f"RESET refused by the robot: {e}"
                    return
                self._episode += 1
            self._answer(msg.seq)
        elif msg.type == wire.BYE:
            self._client = None

    def _problem(self, msg: wire.Message, addr) -> str | None:
        """Why `msg` from `addr` must be dropped (None: apply it)."""
        if msg.type == wire.HELLO:
            if msg.floats.size:
                return f"HELLO with {msg.floats.size} values"
            busy = self._client not in (None, addr) and time.monotonic() - self._heard < TAKEOVER_S
            return f"HELLO from {addr} while {self._client} is the active controller" if busy else None
        if addr != self._client:
            return f"type {msg.type} from {addr}, which is not the controller (no HELLO)"
        if msg.type == wire.ACTION:
            n = len(self.robot.action_names)
            if msg.floats.size != n:
                return f"ACTION with {msg.floats.size} values, the robot takes {n}"
            return None if np.isfinite(msg.floats).all() else "ACTION with a non-finite value"
        if msg.type == wire.RESET:
            doc = msg.doc
            if not isinstance(doc, dict) or set(doc) - {"seed"}:
                return f"RESET payload {str(doc)[:80]} is not {{'seed': ...}}"
            return wire.seed_problem(doc.get("seed"))
        if msg.type == wire.BYE:
            return f"BYE with {msg.floats.size} values" if msg.floats.size else None
        return f"type {msg.type} is not one a controller sends"

    def _answer(self, ack: int) -> None:
        doc = {
            "readings": list(self.robot.reading_names),
            "actions": list(self.robot.action_names),
            "extras": list(self._extras),
            "ack": ack,
            "episode": self._episode,
        }
        if hasattr(self.robot, "extras"):
            doc["dynamics"] = dict(self.robot.extras().get("dynamics") or {})
        self._emit(wire.DESCRIBE, doc)
        self._send_state()

    def _send_state(self) -> None:
        readings = self.robot.read()
        values = [readings[n] for n in self.robot.reading_names]
        if self._extras:
            extras = self.robot.extras()
            values += [float(extras.get(k) or 0.0) for k in self._extras]
        self._emit(wire.STATE, np.asarray(values, np.float32))

    def _emit(self, msg_type: int, payload) -> None:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        self.out.send(wire.encode(msg_type, self._seq, _now_us(), payload), self._client)
        self.stats.sent += 1

    def close(self) -> None:
        self.sock.close()
