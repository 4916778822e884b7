"""DDS link layer: CycloneDDS participants confined to loopback unless the user names an interface,
and raw-bytes readers/writers so the numpy codec's CDR bytes go on the wire as they are.

Network safety: with no interface (or `lo`) the domain is configured from `cyclone_config()`: the `lo`
interface only, multicast off, discovery by unicast to 127.0.0.1, so nothing leaves the machine. A real
interface (`robot.interface=eth0`) is used only when named, with CycloneDDS's default (multicast)
discovery on it, as a robot's firmware expects. The configuration is handed to `dds_create_domain`
directly: the process environment (`CYCLONEDDS_URI`) is neither read nor changed.

Control path: `RawWriter.write(bytes)` and `RawReader.take()` call cyclonedds-python's C layer
(`ddspy_write` / `ddspy_take`), which carry serialized samples (4-byte CDR encapsulation header +
payload); the Python IDL classes are used only to register the topic's type. QoS as the Unitree SDK's
channels (DDS defaults): readers best-effort, keep-last; writers reliable keep-last-1, which matches
both best-effort readers and reliable ones (ROS 2's default subscription), and never blocks.
"""

from __future__ import annotations

import functools
import re
import socket
import threading
import time

from sim2real.errors import UserError

LOOPBACK = "lo"
MAX_DOMAIN_ID = 232  # CycloneDDS ports: 7400 + 250·domain + offsets must stay below 65536
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

LOOPBACK_XML = (
    '<CycloneDDS><Domain Id="any">'
    '<General><Interfaces><NetworkInterface name="lo"/></Interfaces>'
    "<AllowMulticast>false</AllowMulticast></General>"
    "<Discovery><ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>32</MaxAutoParticipantIndex>"
    '<Peers><Peer address="127.0.0.1"/></Peers></Discovery>'
    "</Domain></CycloneDDS>"
)


class DdsLinkError(UserError):
    """The DDS link cannot be opened, or the robot is silent (the message names domain, interface, topic)."""


def is_loopback(interface: str | None) -> bool:
    return interface in (None, "", LOOPBACK, "127.0.0.1")


def describe_interface(interface: str | None) -> str:
    return "lo (loopback only)" if is_loopback(interface) else repr(interface)


def cyclone_config(interface: str | None = None) -> str:
    """CycloneDDS XML for a domain: loopback only (the default), or the one interface the user named
    (a name like `eth0`, or the interface's IPv4 address) with default discovery on it."""
    if is_loopback(interface):
        return LOOPBACK_XML
    if not _NAME.match(interface):
        raise DdsLinkError(f"robot.interface={interface!r} is not an interface name or address")
    attr = "address" if re.match(r"^\d+\.\d+\.\d+\.\d+$", interface) else "name"
    return (
        '<CycloneDDS><Domain Id="any"><General><Interfaces>'
        f'<NetworkInterface {attr}="{interface}" priority="default" multicast="default"/>'
        "</Interfaces></General></Domain></CycloneDDS>"
    )


def _interfaces() -> list[str]:
    try:
        return [name for _, name in socket.if_nameindex()]
    except OSError:
        return []


# -- domains: one per id and process (CycloneDDS allows a single configuration per domain id) -------
_lock = threading.Lock()
_domains: dict[int, list] = {}  # domain id -> [Domain, xml, interface, open participants]


def _acquire_domain(domain_id: int, interface: str | None) -> None:
    from cyclonedds.core import DDSException
    from cyclonedds.domain import Domain

    xml = cyclone_config(interface)
    entry = _domains.get(domain_id)
    if entry is not None:
        if entry[1] != xml:
            raise DdsLinkError(
                f"DDS domain {domain_id} is already open in this process on interface "
                f"{describe_interface(entry[2])}; it cannot also use {describe_interface(interface)}"
            )
        entry[3] += 1
        return
    try:
        domain = Domain(domain_id, xml)
    except DDSException as e:
        have = ", ".join(_interfaces()) or "unknown"
        raise DdsLinkError(
            f"cannot open DDS domain {domain_id} on interface {describe_interface(interface)} "
            f"(interfaces here: {have}): {e}"
        ) from e
    _domains[domain_id] = [domain, xml, interface, 1]


def _release_domain(domain_id: int) -> None:
    entry = _domains.get(domain_id)
    if entry is None:
        return
    entry[3] -= 1
    if entry[3] <= 0:
        del _domains[domain_id]
        entry[0].__del__()  # dds_delete now, not whenever the garbage collector runs


class Participant:
    """A DomainParticipant on `domain_id`, confined to loopback unless `interface` names another.

    Several participants of one process may share a domain id if they agree on the interface (the
    controller and robot-sim in one test process, say).
    """

    def __init__(self, domain_id: int = 0, interface: str | None = None):
        if not 0 <= int(domain_id) <= MAX_DOMAIN_ID:
            raise DdsLinkError(f"robot.domain={domain_id} is outside the DDS domain ids 0..{MAX_DOMAIN_ID}")
        from cyclonedds.core import DDSException
        from cyclonedds.domain import DomainParticipant

        self.domain_id, self.interface = int(domain_id), interface
        with _lock:
            _acquire_domain(self.domain_id, interface)
            try:
                self._dp = DomainParticipant(self.domain_id)
            except DDSException as e:
                _release_domain(self.domain_id)
                raise DdsLinkError(f"cannot create a participant on DDS domain {domain_id}: {e}") from e
        self._topics: dict[str, object] = {}

    def where(self) -> str:
        return f"DDS domain {self.domain_id}, interface {describe_interface(self.interface)}"

    def topic(self, name: str, idl_type: type):
        from cyclonedds.topic import Topic

        if name not in self._topics:
            self._topics[name] = Topic(self._dp, name, idl_type)
        return self._topics[name]

    def writer(self, name: str, idl_type: type) -> RawWriter:
        return RawWriter(self, name, idl_type)

    def reader(self, name: str, idl_type: type, depth: int = 1) -> RawReader:
        return RawReader(self, name, idl_type, depth)

    def close(self) -> None:
        if self._dp is None:
            return
        with _lock:
            self._dp.__del__()  # deletes its topics, readers and writers with it
            self._dp = None
            self._topics.clear()
            _release_domain(self.domain_id)

    def __enter__(self) -> Participant:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _qos(reader: bool, depth: int):
    from cyclonedds.qos import Policy, Qos
    from cyclonedds.util import duration

    if reader:
        return Qos(Policy.Reliability.BestEffort, Policy.History.KeepLast(depth))
    return Qos(
        Policy.Reliability.Reliable(max_blocking_time=duration(milliseconds=1)), Policy.History.KeepLast(1)
    )


class RawWriter:
    """Writes serialized samples (`bytes` with the CDR encapsulation header) to a topic."""

    def __init__(self, participant: Participant, name: str, idl_type: type):
        from cyclonedds._clayer import ddspy_write
        from cyclonedds.pub import DataWriter

        self.name = name
        self._writer = DataWriter(participant._dp, participant.topic(name, idl_type), _qos(False, 1))
        self._ref, self._write = self._writer._ref, ddspy_write

    def write(self, data: bytes) -> bool:
        """False when dds_write failed (the caller counts it; never raised: the watchdog sees the silence)."""
        if len(data) & 3:  # the serdata wants a multiple of 4 bytes, as DataWriter.write pads
            data = bytes(data).ljust((len(data) + 3) & ~3, b"\0")
        return self._write(self._ref, data) >= 0

    def matched(self) -> int:
        """Readers matched right now (discovery done)."""
        return _matched(self._writer, True)

    def wait_for_acks(self, timeout_s: float) -> bool:
        """Block until every matched reliable reader acknowledged what was written (False: timed out);
        best-effort readers acknowledge nothing, so with only those it returns at once."""
        from cyclonedds.core import DDSException

        try:
            return self._writer.wait_for_acks(max(0, int(timeout_s * 1e9)))
        except DDSException:
            return False


class RawReader:
    """Takes serialized samples of a topic; `take()` returns [(bytes, source timestamp ns), ...],
    oldest first, at most `depth` of them (keep-last history)."""

    def __init__(self, participant: Participant, name: str, idl_type: type, depth: int = 1):
        from cyclonedds._clayer import ddspy_take
        from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState, WaitSet
        from cyclonedds.sub import DataReader

        self.name, self.depth = name, depth
        self._reader = DataReader(participant._dp, participant.topic(name, idl_type), _qos(True, depth))
        self._ref, self._take = self._reader._ref, ddspy_take
        self._waitset = WaitSet(participant._dp)
        self._cond = ReadCondition(self._reader, SampleState.NotRead | ViewState.Any | InstanceState.Any)
        self._waitset.attach(self._cond)

    def take(self) -> list[tuple[bytes, int]]:
        return [(data, stamp) for data, stamp, _ in self.take_with_writers()]

    def take_with_writers(self) -> list[tuple[bytes, int, int]]:
        """As `take`, each sample with its writer's publication handle (which commander sent it)."""
        got = self._take(self._ref, self.depth)
        if isinstance(got, int):  # a negative return code: nothing usable
            return []
        return [
            (data, info.source_timestamp, info.publication_handle) for data, info in got if info.valid_data
        ]

    def wait(self, timeout_s: float) -> bool:
        """Block until a sample is there or `timeout_s` passed (the GIL is released meanwhile)."""
        return self._waitset.wait(max(0, int(timeout_s * 1e9))) > 0

    def wait_take(self, timeout_s: float) -> list[tuple[bytes, int]]:
        end = time.monotonic() + timeout_s
        while True:
            got = self.take()
            if got or (left := end - time.monotonic()) <= 0:
                return got
            self.wait(min(left, 0.05))

    def matched(self) -> int:
        return _matched(self._reader, False)


@functools.cache
def _lib():
    from cyclonedds.internal import load_cyclonedds

    return load_cyclonedds()


def _matched(entity, writer: bool) -> int:
    """Current count of matched endpoints (publication/subscription matched status)."""
    import ctypes as ct

    from cyclonedds.internal import dds_c_t

    lib = _lib()
    if writer:
        status = dds_c_t.publication_matched_status()
        lib.dds_get_publication_matched_status(entity._ref, ct.byref(status))
    else:
        status = dds_c_t.subscription_matched_status()
        lib.dds_get_subscription_matched_status(entity._ref, ct.byref(status))
    return int(status.current_count)
