"""The in-memory network driver keeps the kernel's rules the network service relies on.

In-process, without root: a veth needs its bridge and namespace, a namespace
takes its veths with it, and the engine uses the driver it is given.
"""
from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

import pytest

from engine.errors import InvalidParameter
from engine.network.dns import TYPE_AAAA
from engine.network.driver import Interface
from engine.network.fakedriver import FakeNetworkDriver


def _wired(ns: str = "/x/netns/c1") -> FakeNetworkDriver:
    driver = FakeNetworkDriver(routes=["192.168.1.0/24"])
    driver.ensure_bridge("br0", "10.5.0.1", 24)
    driver.create_namespace(ns)
    driver.plug("v1", "eth0", ns, "02:42:0a:05:00:02", "br0")
    return driver


def test_plug_needs_its_bridge_and_namespace_and_free_names() -> None:
    driver = _wired()
    with pytest.raises(OSError):
        driver.plug("v2", "eth1", "/x/netns/none", "m", "br0")
    assert not driver.plug("v2", "eth1", "/x/netns/c1", "m", "nobridge")  # the caller makes the bridge
    assert not driver.exists("v2")
    with pytest.raises(OSError):
        driver.plug("v1", "eth1", "/x/netns/c1", "m", "br0")  # the host end's name is taken
    with pytest.raises(OSError):
        driver.plug("v2", "eth0", "/x/netns/c1", "m", "br0")  # so is the name inside
    with pytest.raises(OSError):
        driver.create_namespace("/x/netns/c1")
    assert driver.free_ifname("/x/netns/c1") == "eth1"


def test_configure_addresses_plugged_links_only() -> None:
    driver = _wired()
    with pytest.raises(OSError):
        driver.configure("/x/netns/c1", [Interface("eth1", "10.5.0.3", 24)])
    eth0 = Interface("eth0", "10.5.0.2", 24, "10.5.0.1")
    driver.configure("/x/netns/c1", [eth0], loopback=True)
    ns = driver.netns["/x/netns/c1"]
    assert (ns.links, ns.loopback_up, ns.gateway) == ({"eth0": eth0}, True, "10.5.0.1")


def test_namespace_and_veth_go_together() -> None:
    driver = _wired()
    driver.delete("v1")
    assert driver.netns["/x/netns/c1"].links == {}
    driver.plug("v1", "eth0", "/x/netns/c1", "m", "br0")
    assert driver.namespaces("/x/netns") == ["c1"] and driver.namespaces("/y") == []
    driver.remove_namespace("/x/netns/c1")
    assert (driver.netns, driver.veths, driver.exists("v1")) == ({}, {}, False)
    assert driver.exists("br0")


def test_stray_veths_and_routes() -> None:
    driver = _wired()
    driver.plug("v2", "eth1", "/x/netns/c1", "m", "br0")
    driver.delete_stray_veths({"v2"})
    assert list(driver.veths) == ["v2"]
    assert driver.host_routes() == [IPv4Network("192.168.1.0/24"), IPv4Network("10.5.0.0/24")]
    driver.delete("br0")
    assert driver.host_routes() == [IPv4Network("192.168.1.0/24")]


def test_resolver_answers_through_the_lookup_where_it_listens() -> None:
    asked = []

    def lookup(source: str, key: str, name: str) -> tuple[list[str] | None, list[str]] | None:
        asked.append((source, key, name))
        return (["10.5.0.9"] if name == "db" else None), []

    resolver = FakeNetworkDriver().start_dns(lookup)
    assert resolver.ask("10.5.0.1", "10.5.0.2", "db") is None  # nothing listens there yet
    resolver.listen("n1", "10.5.0.1")
    assert resolver.ask("10.5.0.1", "10.5.0.2", "DB.") == ["10.5.0.9"]
    assert resolver.ask("10.5.0.1", "10.5.0.2", "other") is None
    assert asked == [("10.5.0.2", "n1", "db"), ("10.5.0.2", "n1", "other")]
    assert resolver.ask("10.5.0.1", "10.5.0.2", "db", TYPE_AAAA) == []  # ours, with no IPv6 address
    resolver.forget("n1")
    assert resolver.listening == {}


def test_engine_uses_the_network_driver_it_is_given(tmp_path: Path) -> None:
    from engine.config import EngineConfig
    from engine.engine import Engine
    from engine.runtime.fake import FakeRuntime

    driver = FakeNetworkDriver()
    engine = Engine(EngineConfig(data_root=str(tmp_path / "data"), exec_root=str(tmp_path / "exec")),
                    runtime=FakeRuntime(), network_driver=driver)
    try:
        assert engine.network.driver is driver and engine.network.pools.driver is driver
        engine.start()
        bridge = engine.network.resolve("bridge")
        assert bridge.device == driver.default_device
        assert driver.bridges[bridge.device].addresses == {(bridge.pool.gateway, bridge.pool.subnet.prefixlen)}
        assert driver.forwarding and driver.firewall is not None and driver.resolver is not None
    finally:
        engine.close()
    assert driver.firewall is None and driver.bridges == {}  # nothing ran: the host is left clean


def test_ipv6_bridges_and_interfaces() -> None:
    driver = _wired()
    driver.ensure_bridge("br0", "10.5.0.1", 24, "fd00:5::1", 64)
    assert driver.bridges["br0"].addresses6 == {("fd00:5::1", 64)} and driver.forwarding6
    assert driver.host_routes6() == [IPv6Network("fd00:5::/64")]
    eth0 = Interface("eth0", "10.5.0.2", 24, "10.5.0.1", "fd00:5::2", 64, "fd00:5::1", ("fe80::7",))
    driver.configure("/x/netns/c1", [eth0])
    assert driver.netns["/x/netns/c1"].gateway6 == "fd00:5::1"


def test_a_host_without_ipv6_takes_no_ipv6_address() -> None:
    driver = FakeNetworkDriver(ipv6=False)
    assert not driver.ipv6_available()
    with pytest.raises(OSError):
        driver.ensure_bridge("br0", "10.5.0.1", 24, "fd00:5::1", 64)
    driver.ensure_bridge("br0", "10.5.0.1", 24)
    driver.create_namespace("/x/netns/c1")
    driver.plug("v1", "eth0", "/x/netns/c1", "m", "br0")
    with pytest.raises(OSError):
        driver.configure("/x/netns/c1", [Interface("eth0", "10.5.0.2", 24, link_local=("fe80::7",))])
    driver.configure("/x/netns/c1", [Interface("eth0", "10.5.0.2", 24, link_local=("169.254.0.7",))])


def test_ipv6_networks_need_ipv6_and_avoid_the_hosts_ipv6_routes(tmp_path: Path) -> None:
    from engine.config import EngineConfig
    from engine.engine import Engine
    from engine.runtime.fake import FakeRuntime
    from engine.types.network import NetworkCreateRequest
    from engine.wire import decode

    asked = decode(NetworkCreateRequest, {"Name": "n6", "EnableIPv6": True})
    for ipv6 in (False, True):
        driver = FakeNetworkDriver(ipv6=ipv6)
        engine = Engine(EngineConfig(data_root=str(tmp_path / str(ipv6)), exec_root=str(tmp_path / f"x{ipv6}")),
                        runtime=FakeRuntime(), network_driver=driver)
        try:
            engine.start()
            if not ipv6:
                with pytest.raises(InvalidParameter, match="IPv6 networks need IPv6"):
                    engine.network.create(asked)
                assert "n6" not in {n.name for n in engine.network.store.networks()}
                continue
            first = engine.network.resolve(engine.network.create(asked)).pool6
            assert first is not None and first.subnet.prefixlen == 64 and first.subnet.is_private
            driver.routes6.append(first.subnet)  # the host routes it now (another daemon's bridge, say)
            engine.network.remove("n6")
            again = engine.network.resolve(engine.network.create(asked)).pool6
            assert again is not None and again.subnet != first.subnet  # the host's route took the first /64
        finally:
            engine.close()
