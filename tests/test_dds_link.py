"""The DDS link layer on loopback: CycloneDDS configuration, raw-bytes pub/sub, domains, tick gaps.

Every test runs on `lo` with multicast off (the link's default) and its own domain id.
"""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sim2real.deploy.dds import idl
from sim2real.deploy.dds.link import (
    LOOPBACK_XML,
    DdsLinkError,
    Participant,
    cyclone_config,
)
from sim2real.deploy.dds.robot import LinkStats, TickMonitor

ROOT = Path(__file__).resolve().parent.parent
_ids = itertools.count()


def dds_domain() -> int:
    """A domain id for one test: spread by pid so parallel test processes do not share topics."""
    return 1 + (os.getpid() * 7 + next(_ids)) % 230


def test_default_config_is_loopback_only_without_multicast():
    root = ET.fromstring(cyclone_config())
    assert cyclone_config(None) == cyclone_config("lo") == LOOPBACK_XML
    assert [e.get("name") for e in root.iter("NetworkInterface")] == ["lo"]
    assert root.find("Domain/General/AllowMulticast").text == "false"
    assert [e.get("address") for e in root.iter("Peer")] == ["127.0.0.1"]


def test_cyclonedds_selects_lo_and_no_multicast_from_the_config(tmp_path):
    """What 0.10.2 makes of the XML, read back from its own configuration trace."""
    from cyclonedds.domain import Domain, DomainParticipant

    trace = tmp_path / "cdds.log"
    tracing = f"<Tracing><Verbosity>config</Verbosity><OutputFile>{trace}</OutputFile></Tracing></Domain>"
    domain_id = dds_domain()
    domain = Domain(domain_id, LOOPBACK_XML.replace("</Domain>", tracing))
    participant = DomainParticipant(domain_id)
    text = trace.read_text()
    participant.__del__()
    domain.__del__()
    assert "selected interfaces: lo (" in text  # and nothing after it: one interface
    assert "Domain/General/AllowMulticast/#text: false" in text
    assert "Domain/Discovery/Peers/Peer[@Address]: 127.0.0.1" in text


def test_a_named_interface_is_used_only_when_given_and_checked():
    xml = cyclone_config("eth0")
    assert 'name="eth0"' in xml and "127.0.0.1" not in xml and 'name="lo"' not in xml
    assert 'address="192.168.123.99"' in cyclone_config("192.168.123.99")
    with pytest.raises(DdsLinkError, match="not an interface name"):
        cyclone_config('eth0"/><Peer address="10.0.0.1')


def test_missing_interface_is_an_error_naming_it():
    with pytest.raises(DdsLinkError, match=r"interface 'nosuch9'.*interfaces here: .*lo"):
        Participant(dds_domain(), "nosuch9")


def test_domain_ids_outside_the_port_range_are_refused():
    with pytest.raises(DdsLinkError, match=r"robot\.domain=233"):
        Participant(233)


def test_one_process_cannot_open_a_domain_on_two_interfaces():
    domain_id = dds_domain()
    with Participant(domain_id):
        with Participant(domain_id) as again:  # the same interface: shared
            assert again.where() == f"DDS domain {domain_id}, interface lo (loopback only)"
        with pytest.raises(DdsLinkError, match=f"domain {domain_id} is already open .* on interface lo"):
            Participant(domain_id, "eth0")
    with Participant(domain_id):  # closed: the domain can be opened afresh
        pass


def test_raw_bytes_go_through_unchanged_between_participants():
    domain_id = dds_domain()
    sample = idl.GoLowState(tick=42).serialize()
    with Participant(domain_id) as a, Participant(domain_id) as b:
        writer = a.writer("rt/lowstate", idl.GoLowState)
        reader = b.reader("rt/lowstate", idl.GoLowState, depth=4)
        deadline = time.monotonic() + 5
        while (writer.matched() == 0 or reader.matched() == 0) and time.monotonic() < deadline:
            time.sleep(0.005)
        before = time.time_ns()
        assert writer.write(sample)
        got = reader.wait_take(2.0)
    assert len(got) == 1 and got[0][0] == sample
    assert before - 1e9 < got[0][1] <= time.time_ns()  # DDS source timestamp (ns since the epoch)
    assert idl.GoLowState.deserialize(got[0][0]).tick == 42


def test_the_process_environment_is_neither_read_nor_changed():
    """A CYCLONEDDS_URI naming a missing interface does not matter: the link passes its own config."""
    bad = '<CycloneDDS><Domain Id="any"><General><Interfaces><NetworkInterface name="nosuch9"/>'
    bad += "</Interfaces></General></Domain></CycloneDDS>"
    domain_id = dds_domain()
    code = (
        "import os; from sim2real.deploy.dds.link import Participant\n"
        f"p = Participant({domain_id}); print(p.where()); p.close()\n"
        f"print(os.environ['CYCLONEDDS_URI'] == {bad!r})"
    )
    env = {**os.environ, "CYCLONEDDS_URI": bad}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"DDS domain {domain_id}, interface lo (loopback only)", "True"]


def test_tick_monitor_counts_gaps_missed_states_and_restarts(caplog):
    stats = LinkStats()
    ticks = TickMonitor(stats)
    with caplog.at_level(logging.WARNING, logger="sim2real.dds"):
        for t in (100, 102, 104, 110, 112, 112, 114, 4, 6):  # ms ticks at 500 Hz: 104 -> 110 misses 2
            ticks.see(t)
    assert (stats.tick_gaps, stats.ticks_missed, stats.tick_restarts) == (1, 2, 1)
    assert "104 -> 110: 2 state(s) missed" in caplog.text
    assert "went back from 114 to 4" in caplog.text
