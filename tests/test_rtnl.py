"""engine/linux/rtnl.py against the kernel, read back through pyroute2: a start's netlink requests make
what pyroute2's made (the same link, addresses, flags and route), and the kernel's refusals arrive as OSError."""
from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from pyroute2 import IPRoute

from engine.linux.rtnl import Rtnl
from engine.network import netns

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


@pytest.fixture
def namespaces(tmp_path: Any) -> Iterator[tuple[str, str]]:
    """Two fresh network namespaces: one holding a bridge, one for the container end."""
    paths = (str(tmp_path / "bridges"), str(tmp_path / "container"))
    for path in paths:
        netns.create(path)
    yield paths
    for path in paths:
        netns.remove(path)


def test_veth_addresses_and_routes(namespaces: tuple[str, str]) -> None:
    bridges, container = namespaces

    def plug() -> dict[str, Any]:
        with IPRoute() as ip:
            ip.link("add", ifname="br0", kind="bridge")
        with Rtnl() as rt:
            master = rt.index("br0")
            assert master is not None and rt.index("nosuch") is None
            fd = os.open(container, os.O_RDONLY)
            try:
                rt.add_veth("v0", master, "eth0", fd, "02:42:0a:05:00:02")
                with pytest.raises(OSError) as taken:
                    rt.add_veth("v0", master, "eth1", fd, "02:42:0a:05:00:03")
            finally:
                os.close(fd)
        assert taken.value.errno == errno.EEXIST
        with IPRoute() as ip:
            link = ip.link("get", ifname="v0")[0]
            return {"master": link.get_attr("IFLA_MASTER") == master, "up": bool(link["flags"] & 1)}
    assert netns.run_in(bridges, plug) == {"master": True, "up": True}

    def configure() -> dict[str, Any]:
        with Rtnl() as rt:
            rt.up(1)
            idx = rt.index("eth0")
            assert idx is not None
            rt.add_address(idx, "10.5.0.2", 24)
            rt.add_address(idx, "fd00:5::2", 64, 0x02)
            rt.up(idx)
            rt.add_default_route("10.5.0.1")
            rt.add_default_route("fd00:5::1")
        with IPRoute() as ip:
            eth0 = ip.link("get", ifname="eth0")[0]
            v4 = ip.get_addr(index=eth0["index"], family=socket.AF_INET)[0]
            v6 = next(a for a in ip.get_addr(index=eth0["index"], family=socket.AF_INET6)
                  if a.get_attr("IFA_ADDRESS") == "fd00:5::2")
            routes = [r for r in ip.get_routes(table=254) if r["dst_len"] == 0 and r.get_attr("RTA_GATEWAY")]
            return {"mac": eth0.get_attr("IFLA_ADDRESS"), "up": bool(eth0["flags"] & 1),
                    "lo_up": bool(ip.link("get", index=1)[0]["flags"] & 1),
                    "v4": (v4.get_attr("IFA_LOCAL"), v4["prefixlen"], v4["scope"]),
                    "v6_nodad": bool(v6["flags"] & 0x02),
                    "routes": sorted((r.get_attr("RTA_GATEWAY"), r["proto"]) for r in routes)}
    assert netns.run_in(container, configure) == {
        "mac": "02:42:0a:05:00:02", "up": True, "lo_up": True, "v4": ("10.5.0.2", 24, 0), "v6_nodad": True,
        "routes": [("10.5.0.1", 4), ("fd00:5::1", 4)]}  # proto static, as pyroute2 made them


def test_refusals_are_oserrors_with_the_kernels_errno(namespaces: tuple[str, str]) -> None:
    def refused() -> int:
        with Rtnl() as rt, pytest.raises(OSError) as e:
            rt.add_address(99, "10.5.0.2", 24)  # no such link
        return e.value.errno or 0
    assert netns.run_in(namespaces[1], refused) == errno.ENODEV
