"""The network service's boundary with the host: the kernel objects it asks for, as Protocols.

The service decides from its store what should exist and asks a driver to
make the host match: bridges and veth pairs, the containers' network
namespaces and the addresses inside them, the daemon's firewall table, and
the embedded DNS server's sockets. The cut sits there because everything
above it (pools, addresses, endpoints, published ports, Docker's JSON) is
plain bookkeeping that needs no privilege, while everything below needs
root. The daemon uses `bridge.BridgeDriver` (netlink, bind-mounted
namespaces, nftables, UDP sockets); `fakedriver.FakeNetworkDriver` records
the same calls in memory, so the engine and its API run in-process without
root (tests/test_inprocess_api.py).

As moby's router backends, the boundary is a few small pieces joined into
one: the pool keeper needs only `Links`.
"""
from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network
from typing import Protocol

from engine.network.dns import Lookup
from engine.network.firewall import Bridge, PortRule


@dataclass(frozen=True)
class Interface:
    """How one interface inside a container's namespace is configured (after `Links.plug` put it there).

    The gateways are the namespace's default routes through this interface
    ("" for none: not the container's first network of that family, or an
    internal one).
    """

    name: str
    address: str
    prefixlen: int
    gateway: str = ""
    address6: str = ""  # its IPv6 address on a network with IPv6
    prefixlen6: int = 0
    gateway6: str = ""
    link_local: tuple[str, ...] = ()  # the endpoint's LinkLocalIPs (IPv4 as /16, IPv6 as /64, as libnetwork)
    sysctls: tuple[tuple[str, str], ...] = ()  # (path under /proc/sys, value) of this interface's settings


class Links(Protocol):
    """Bridges and the host ends of veth pairs, named per daemon so that several can share a host."""

    @property
    def default_device(self) -> str:
        """The default bridge network's device."""
        ...

    def bridge_name(self, network_id: str) -> str: ...

    def veth(self, endpoint_id: str) -> str:
        """The host end of an endpoint's veth pair."""
        ...

    def exists(self, device: str) -> bool: ...

    def host_routes(self) -> list[IPv4Network]:
        """The host's IPv4 routes with a prefix (other daemons' bridges included): pools in use."""
        ...

    def host_routes6(self) -> list[IPv6Network]:
        """The host's global IPv6 routes with a prefix: IPv6 pools in use."""
        ...

    def ipv6_available(self) -> bool:
        """Whether bridges can have IPv6 here (a kernel booted with ipv6.disable=1 cannot)."""
        ...

    def ensure_bridge(self, device: str, gateway: str, prefixlen: int, gateway6: str = "",
                      prefixlen6: int = 0) -> None:
        """The bridge exists, is up, has a fixed MAC and holds the gateway address, and the IPv6 one when
        `gateway6` is given (IPv6 forwarding then on)."""
        ...

    def delete(self, device: str) -> None:
        """Delete a link (bridge or veth) if it exists."""
        ...

    def delete_stray_veths(self, live: set[str]) -> None:
        """Host veth ends of ours that no live endpoint owns."""
        ...

    def collect_stale_bridges(self) -> None:
        """Delete what daemons whose data root is gone left on the host (bridges, firewall tables)."""
        ...

    def plug(self, veth: str, ifname: str, netns_path: str, mac: str, device: str) -> bool:
        """A veth pair: `veth` on the host, enslaved to the bridge `device`, up; `ifname` inside the namespace.
        False, and nothing made, when there is no bridge `device` (the caller makes it and plugs again)."""
        ...


class Sandboxes(Protocol):
    """Containers' network namespaces, each kept alive by a file at its path, and their configuration."""

    def create_namespace(self, path: str) -> None:
        """A new, empty network namespace at `path` (which must not exist)."""
        ...

    def remove_namespace(self, path: str) -> None:
        """Destroy the namespace; the veth pairs with an end inside go with it."""
        ...

    def namespaces(self, directory: str) -> list[str]:
        """The names of the namespaces kept under `directory` (what a previous daemon may have left)."""
        ...

    def free_ifname(self, netns_path: str) -> str:
        """The first ethN the namespace does not have yet (for `docker network connect`)."""
        ...

    def configure(self, netns_path: str, interfaces: list[Interface], loopback: bool = False) -> None:
        """Address and bring up `interfaces` (and `lo` if asked), in one visit to the namespace.

        Raises InvalidParameter when the kernel refuses one of their sysctls.
        """
        ...


class Firewall(Protocol):
    """The daemon's forwarding switch and its one firewall table, always replaced whole."""

    def enable_forwarding(self) -> None: ...

    def apply_firewall(self, bridges: list[Bridge], ports: list[PortRule]) -> None:
        """Replace this daemon's table with one rendered from `bridges` and `ports`."""
        ...

    def remove_firewall(self) -> None: ...


class Resolver(Protocol):
    """The embedded DNS server: one listening address per user-defined network, keyed by network ID."""

    def listen(self, key: str, address: str) -> None: ...

    def forget(self, key: str) -> None: ...

    def close(self) -> None: ...


class NetworkDriver(Links, Sandboxes, Firewall, Protocol):
    """Everything NetworkService asks of the host."""

    def start_dns(self, lookup: Lookup) -> Resolver:
        """An embedded DNS server that answers through `lookup` (listening nowhere yet)."""
        ...
