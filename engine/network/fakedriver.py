"""An in-memory `NetworkDriver`: records bridges, veths, namespaces, addresses and rules instead of making them.

It exists so the network service, and the engine and API above it, run
in-process without root or a kernel (with `engine.runtime.fake.FakeRuntime`):
tests read what the service asked for (which bridge holds which gateway,
which veth went into which namespace with which address, the firewall's
published ports, where DNS listens) and put questions to the DNS lookup as a
container would. It keeps the kernel's rules that the service relies on: a
veth needs its bridge and namespace, a name is taken once, removing a
namespace takes its veth pairs with it, and a host without IPv6 takes no
IPv6 address.
"""
from __future__ import annotations

import errno
import os
import threading
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network

from engine.network.dns import TYPE_A, TYPE_AAAA, Lookup
from engine.network.driver import Interface
from engine.network.firewall import Bridge, PortRule


@dataclass
class FakeBridge:
    addresses: set[tuple[str, int]] = field(default_factory=set)  # (gateway, prefixlen)
    addresses6: set[tuple[str, int]] = field(default_factory=set)


@dataclass
class FakeVeth:
    """A veth pair: the host end is the key it is stored under, `ifname` the end inside `netns`."""

    ifname: str
    netns: str
    mac: str
    bridge: str


@dataclass
class FakeNamespace:
    links: dict[str, Interface | None] = field(default_factory=dict)  # name -> its configuration once made
    loopback_up: bool = False

    @property
    def gateway(self) -> str:
        """The default route's gateway, "" when there is none."""
        return next((i.gateway for i in self.links.values() if i is not None and i.gateway), "")

    @property
    def gateway6(self) -> str:
        """The IPv6 default route's gateway, "" when there is none."""
        return next((i.gateway6 for i in self.links.values() if i is not None and i.gateway6), "")


class FakeResolver:
    """The embedded DNS server without sockets: `ask` plays a container's query to a gateway address."""

    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self.listening: dict[str, str] = {}  # network key -> address

    def listen(self, key: str, address: str) -> None:
        self.listening.setdefault(key, address)

    def forget(self, key: str) -> None:
        self.listening.pop(key, None)

    def close(self) -> None:
        self.listening.clear()

    def ask(self, server: str, source: str, name: str, qtype: int = TYPE_A) -> list[str] | None:
        """The A (or AAAA) records `source` gets for `name` from the server at `server`; None when nothing
        answers there, it ignores the querier, or the name is not the engine's (then the real server
        relays it)."""
        key = next((k for k, a in self.listening.items() if a == server), None)
        answer = self.lookup(source, key, name.lower().rstrip(".")) if key is not None else None
        if answer is None or answer[0] is None:
            return None
        return [a for a in answer[0] if (":" in a) == (qtype == TYPE_AAAA)]


def _fail(code: int, what: str) -> OSError:
    return OSError(code, f"{what}: {os.strerror(code)}")


class FakeNetworkDriver:
    """Meets `engine.network.driver.NetworkDriver` with dictionaries; safe to call from several threads."""

    default_device = "fake0"

    def __init__(self, routes: list[str] | None = None, ipv6: bool = True) -> None:
        """`routes`: the host's own routes (IPv4 and IPv6), pools the service must avoid; `ipv6`: whether
        the host has IPv6."""
        self.routes = [IPv4Network(r) for r in routes or [] if ":" not in r]
        self.routes6 = [IPv6Network(r) for r in routes or [] if ":" in r]
        self.ipv6 = ipv6
        self.bridges: dict[str, FakeBridge] = {}
        self.veths: dict[str, FakeVeth] = {}
        self.netns: dict[str, FakeNamespace] = {}  # path -> namespace
        self.forwarding = False
        self.forwarding6 = False
        self.firewall: tuple[list[Bridge], list[PortRule]] | None = None
        self.resolver: FakeResolver | None = None
        self._lock = threading.RLock()

    # ---- links ---------------------------------------------------------------
    def bridge_name(self, network_id: str) -> str:
        return "fk-" + network_id[:12]

    def veth(self, endpoint_id: str) -> str:
        return "fkv" + endpoint_id[:12]

    def exists(self, device: str) -> bool:
        return device in self.bridges or device in self.veths

    def host_routes(self) -> list[IPv4Network]:
        """The host's routes and, as the kernel adds them, one per address of our bridges."""
        with self._lock:
            ours = [IPv4Network(f"{gw}/{n}", strict=False) for b in self.bridges.values() for gw, n in b.addresses]
        return self.routes + ours

    def host_routes6(self) -> list[IPv6Network]:
        with self._lock:
            ours = [IPv6Network(f"{gw}/{n}", strict=False) for b in self.bridges.values() for gw, n in b.addresses6]
        return self.routes6 + ours

    def ipv6_available(self) -> bool:
        return self.ipv6

    def ensure_bridge(self, device: str, gateway: str, prefixlen: int, gateway6: str = "",
                      prefixlen6: int = 0) -> None:
        """A new bridge's MAC is fixed by construction here: nothing in these dictionaries changes it."""
        with self._lock:
            if device in self.veths:
                raise _fail(errno.EEXIST, device)
            if gateway6 and not self.ipv6:
                raise _fail(errno.EAFNOSUPPORT, device)
            bridge = self.bridges.setdefault(device, FakeBridge())
            bridge.addresses.add((gateway, prefixlen))
            if gateway6:
                bridge.addresses6.add((gateway6, prefixlen6))
                self.forwarding6 = True

    def delete(self, device: str) -> None:
        """A deleted veth takes its namespace end with it; a deleted bridge leaves its veths unattached."""
        with self._lock:
            self.bridges.pop(device, None)
            veth = self.veths.pop(device, None)
            if veth is not None and veth.netns in self.netns:
                self.netns[veth.netns].links.pop(veth.ifname, None)

    def delete_stray_veths(self, live: set[str]) -> None:
        with self._lock:
            for name in [v for v in self.veths if v not in live]:
                self.delete(name)

    def collect_stale_bridges(self) -> None:
        """Nothing to collect: no other daemon shares these dictionaries."""

    def plug(self, veth: str, ifname: str, netns_path: str, mac: str, device: str) -> bool:
        with self._lock:
            ns = self.netns.get(netns_path)
            if ns is None:
                raise _fail(errno.ENODEV, netns_path)
            if device not in self.bridges:
                return False
            if self.exists(veth) or ifname in ns.links:
                raise _fail(errno.EEXIST, veth if self.exists(veth) else ifname)
            self.veths[veth] = FakeVeth(ifname, netns_path, mac, device)
            ns.links[ifname] = None
            return True

    # ---- namespaces ------------------------------------------------------------
    def create_namespace(self, path: str) -> None:
        with self._lock:
            if path in self.netns:
                raise _fail(errno.EEXIST, path)
            self.netns[path] = FakeNamespace()

    def remove_namespace(self, path: str) -> None:
        with self._lock:
            self.netns.pop(path, None)
            for name in [n for n, v in self.veths.items() if v.netns == path]:
                del self.veths[name]

    def namespaces(self, directory: str) -> list[str]:
        with self._lock:
            return [os.path.basename(p) for p in self.netns if os.path.dirname(p) == directory]

    def free_ifname(self, netns_path: str) -> str:
        with self._lock:
            links = self.netns[netns_path].links
            return next(f"eth{i}" for i in range(1000) if f"eth{i}" not in links)

    def configure(self, netns_path: str, interfaces: list[Interface], loopback: bool = False) -> None:
        with self._lock:
            ns = self.netns.get(netns_path)
            if ns is None:
                raise _fail(errno.ENOENT, netns_path)
            missing = [i.name for i in interfaces if i.name not in ns.links]
            if missing:
                raise _fail(errno.ENODEV, missing[0])
            if not self.ipv6 and any(i.address6 or any(":" in a for a in i.link_local) for i in interfaces):
                raise _fail(errno.EAFNOSUPPORT, netns_path)
            ns.links.update((i.name, i) for i in interfaces)
            ns.loopback_up = ns.loopback_up or loopback

    # ---- forwarding, firewall, DNS ---------------------------------------------
    def enable_forwarding(self) -> None:
        self.forwarding = True

    def apply_firewall(self, bridges: list[Bridge], ports: list[PortRule]) -> None:
        with self._lock:
            self.firewall = (list(bridges), list(ports))

    def remove_firewall(self) -> None:
        with self._lock:
            self.firewall = None

    def start_dns(self, lookup: Lookup) -> FakeResolver:
        self.resolver = FakeResolver(lookup)
        return self.resolver
