"""The bridge driver: the kernel side of networks (bridges, veth pairs, addresses, routes) over netlink.

Everything here talks to the kernel (netlink through pyroute2, or for what
each container start asks through engine/linux/rtnl.py, and the modules
below for the rest) and nothing else: no SQL, no Docker JSON. The service decides what should exist and calls these to
make the host match, so the netlink details (targeted lookups instead of
dumps, links that vanish with their namespace) stay in one place.

Names are scoped by an instance tag derived from the data root, so several
daemons (e.g. test daemons) can share one host: each bridge carries an alias
"pydock <table> <data root>" that lets a later daemon recognise and collect
the bridges of a daemon whose data root is gone.

A rootless daemon keeps the host's network namespace (its registry traffic
and API listeners belong there) while its bridges live in the namespace its
holder made (engine/rootless): given that namespace's path, every call that
acts on the bridges runs in a thread that entered it, so the netlink
sockets, `nft`, the sysctls and the DNS sockets all act there.

`BridgeDriver` is the daemon's `engine.network.driver.NetworkDriver`: with
the bridges it also keeps the containers' namespaces (netns.py), the nftables
table (firewall.py) and the embedded DNS server (dns.py), the other kernel
objects the service asks for.
"""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import socket
from collections.abc import Callable
from ipaddress import IPv4Network, IPv6Network
from typing import TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from engine.errors import EngineError, InvalidParameter
from engine.linux.rtnl import Rtnl
from engine.network import firewall as netfw
from engine.network import netns
from engine.network.dns import DnsServer, Lookup
from engine.network.driver import Interface

log = logging.getLogger(__name__)

DEFAULT_ROOT = "/var/lib/pydock"
NET_ADDR_SET = 3  # /sys/class/net/<dev>/addr_assign_type of a MAC set by hand
IFA_F_NODAD = 0x02  # an address usable at once: no duplicate detection on a link only we address
LINK_LOCAL_V4, LINK_LOCAL_V6 = 16, 64  # the prefix lengths libnetwork gives link-local addresses
T = TypeVar("T")


class BridgeDriver:
    def __init__(self, data_root: str, netns_path: str = "") -> None:
        """`netns_path`: the network namespace that holds the bridges; "" for the daemon's own."""
        self.netns_path = netns_path
        self.data_root = os.path.realpath(data_root)
        default = self.data_root == DEFAULT_ROOT
        tag = hashlib.sha256(self.data_root.encode()).hexdigest()[:4]
        self.table = "pydock" if default else f"pydock_{tag}"  # the nftables table
        self.default_device = "pydock0" if default else f"pd{tag}0"
        self.bridge_prefix = "pydock-" if default else f"pd{tag}-"
        self.veth_prefix = f"pv{tag}"

    def _here(self, fn: Callable[[], T]) -> T:
        """fn() in the bridges' network namespace."""
        return netns.run_in(self.netns_path, fn) if self.netns_path else fn()

    def veth(self, endpoint_id: str) -> str:
        """The bridge-side end of an endpoint's veth pair."""
        return self.veth_prefix + endpoint_id[:15 - len(self.veth_prefix)]

    def bridge_name(self, network_id: str) -> str:
        return self.bridge_prefix + network_id[:15 - len(self.bridge_prefix)]

    def collect_stale_bridges(self) -> None:
        """Delete the bridges (and rules) of daemons whose data root is gone, e.g. a killed test daemon's.

        Each bridge's alias names its daemon's table and data root; one with no
        port attached whose data root no longer exists can serve nobody again.
        """
        self._here(self._collect_stale_bridges)

    def exists(self, device: str) -> bool:
        return self._here(lambda: _exists(device))

    def host_routes(self) -> list[IPv4Network]:
        """The IPv4 routes with a prefix where the bridges live (other daemons' bridges included): pools in use."""
        return [IPv4Network(p, strict=False) for p in self._here(lambda: _prefixes(socket.AF_INET))]

    def host_routes6(self) -> list[IPv6Network]:
        """The global IPv6 routes with a prefix where the bridges live: IPv6 pools in use."""
        return [IPv6Network(p, strict=False) for p in self._here(lambda: _prefixes(socket.AF_INET6))
                if not p.startswith("fe80:")]

    def ipv6_available(self) -> bool:
        """Whether the bridges' namespace has IPv6 (not a kernel booted with ipv6.disable=1)."""
        return self._here(lambda: os.path.exists("/proc/sys/net/ipv6/conf/all/forwarding"))

    def ensure_bridge(self, device: str, gateway: str, prefixlen: int, gateway6: str = "",
                      prefixlen6: int = 0) -> None:
        """The bridge exists, is up and holds the gateway addresses (IPv6's too when `gateway6` is given)."""
        self._here(lambda: self._ensure_bridge(device, gateway, prefixlen, gateway6, prefixlen6))

    def delete(self, device: str) -> None:
        """Delete a link (bridge or veth) if it exists."""
        self._here(lambda: _delete(device))

    def delete_stray_veths(self, live: set[str]) -> None:
        """Bridge-side veth ends of ours that no live endpoint owns."""
        self._here(lambda: self._delete_stray_veths(live))

    def plug(self, veth: str, ifname: str, netns_path: str, mac: str, device: str) -> bool:
        """A veth pair: `veth` enslaved to the bridge `device`, up; `ifname` inside the namespace at `netns_path`.
        False when there is no bridge `device`."""
        return self._here(lambda: _plug(veth, ifname, netns_path, mac, device))

    @staticmethod
    def free_ifname(netns_path: str) -> str:
        """The first ethN a namespace does not have yet (for `docker network connect`)."""
        names = netns.run_in(netns_path, _link_names)
        return next(f"eth{i}" for i in range(1000) if f"eth{i}" not in names)

    # ---- these run in the bridges' namespace ------------------------------------
    def _collect_stale_bridges(self) -> None:
        with IPRoute() as ip:
            links = ip.get_links()
            masters = {link.get_attr("IFLA_MASTER") for link in links}
            for link in links:
                alias = link.get_attr("IFLA_IFALIAS") or ""
                parts = alias.split(" ", 2)
                if len(parts) != 3 or parts[0] != "pydock" or parts[1] == self.table:
                    continue
                if link["index"] in masters or os.path.exists(parts[2]):
                    continue
                ip.link("del", index=link["index"])
                try:
                    netfw.remove(parts[1])
                except EngineError as e:
                    log.warning("removing stale firewall table %s: %s", parts[1], e)

    def _ensure_bridge(self, device: str, gateway: str, prefixlen: int, gateway6: str, prefixlen6: int) -> None:
        with IPRoute() as ip:
            if _index(ip, device) is None:
                ip.link("add", ifname=device, kind="bridge")
            idx = _index(ip, device)
            # sysfs shows the links of the namespace it was mounted in, so in another one (rootless) the MAC
            # is set again each time: setting a bridge's own MAC changes nothing but marks it as set
            if self.netns_path or _addr_assign_type(device) != NET_ADDR_SET:
                # A bridge whose address nobody set takes its ports' lowest MAC, so it would change as
                # containers come and go and their neighbours' ARP entries for the gateway go stale
                # (queries to the embedded DNS lost for seconds); fix it at its current value, as dockerd does.
                mac = ip.link("get", index=idx)[0].get_attr("IFLA_ADDRESS")
                ip.link("set", index=idx, address=mac)
            have = {a.get_attr("IFA_ADDRESS") for a in ip.get_addr(index=idx, family=socket.AF_INET)}
            if gateway not in have:
                ip.addr("add", index=idx, address=gateway, prefixlen=prefixlen)
            if gateway6:
                # as dockerd: a network with IPv6 routes it, so the namespace forwards IPv6
                netfw.set_sysctl("net/ipv6/conf/all/forwarding", "1")
                netfw.set_sysctl(f"net/ipv6/conf/{device}/disable_ipv6", "0")
                have6 = {a.get_attr("IFA_ADDRESS") for a in ip.get_addr(index=idx, family=socket.AF_INET6)}
                if gateway6 not in have6:
                    ip.addr("add", index=idx, address=gateway6, prefixlen=prefixlen6, flags=IFA_F_NODAD)
            ip.link("set", index=idx, state="up", ifalias=f"pydock {self.table} {self.data_root}")
        netfw.set_sysctl(f"net/ipv4/conf/{device}/route_localnet", "1")

    def _delete_stray_veths(self, live: set[str]) -> None:
        with IPRoute() as ip:
            for link in ip.get_links():
                name = link.get_attr("IFLA_IFNAME")
                if name.startswith(self.veth_prefix) and name not in live:
                    _delete_index(ip, link["index"])

    # ---- containers' namespaces -------------------------------------------
    @staticmethod
    def create_namespace(path: str) -> None:
        netns.create(path)

    @staticmethod
    def remove_namespace(path: str) -> None:
        netns.remove(path)

    @staticmethod
    def namespaces(directory: str) -> list[str]:
        return os.listdir(directory)

    @staticmethod
    def configure(netns_path: str, interfaces: list[Interface], loopback: bool = False) -> None:
        """One visit inside the namespace, on one netlink socket, for all of its configuration."""
        def visit() -> None:
            with Rtnl() as ns:
                if loopback:
                    ns.up(1)  # lo is always index 1 in a new namespace
                for i in interfaces:
                    configure(ns, i)
        netns.run_in(netns_path, visit)

    # ---- forwarding, firewall, DNS -------------------------------------------
    def enable_forwarding(self) -> None:
        self._here(lambda: netfw.set_sysctl("net/ipv4/ip_forward", "1"))

    def apply_firewall(self, bridges: list[netfw.Bridge], ports: list[netfw.PortRule]) -> None:
        """Replace this daemon's nftables table with one rendered from `bridges` and `ports`."""
        self._here(lambda: netfw.apply(self.table, bridges, ports))

    def remove_firewall(self) -> None:
        self._here(lambda: netfw.remove(self.table))

    def start_dns(self, lookup: Lookup) -> DnsServer:
        """The gateways' sockets are made where the bridges are (see dns.py)."""
        return DnsServer(lookup, self.netns_path)


def _exists(device: str) -> bool:
    with IPRoute() as ip:
        return _index(ip, device) is not None


def _prefixes(family: int) -> list[str]:
    """The destinations with a prefix in the main routing table of `family`, as "address/length"."""
    with IPRoute() as ip:
        return [f"{r.get_attr('RTA_DST')}/{r['dst_len']}" for r in ip.get_routes(family=family, table=254)
                if r.get_attr("RTA_DST") and r["dst_len"]]


def _addr_assign_type(device: str) -> int:
    """How the kernel got a link's MAC (NET_ADDR_SET: someone set it), -1 when it cannot tell."""
    try:
        with open(f"/sys/class/net/{device}/addr_assign_type") as f:
            return int(f.read())
    except (OSError, ValueError):
        return -1


def _delete(device: str) -> None:
    with IPRoute() as ip:
        idx = _index(ip, device)
        if idx is not None:
            _delete_index(ip, idx)


def _plug(veth: str, ifname: str, netns_path: str, mac: str, device: str) -> bool:
    # one request makes the pair, enslaves and raises the host end, and puts the other in the namespace
    with Rtnl() as ip:
        master = ip.index(device)
        if master is None:
            return False
        fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            ip.add_veth(veth, master, ifname, fd, mac)
        finally:
            os.close(fd)
        return True


def _index(ip: IPRoute, name: str) -> int | None:
    """A link's index by a targeted query (link_lookup dumps every link with its stats)."""
    try:
        return int(ip.link("get", ifname=name)[0]["index"])
    except NetlinkError as e:
        if e.code == errno.ENODEV:
            return None
        raise


def _delete_index(ip: IPRoute, index: int) -> None:
    """Delete a link that may be gone already: the kernel drops a veth pair with its namespace's end."""
    try:
        ip.link("del", index=index)
    except NetlinkError as e:
        if e.code != errno.ENODEV:
            raise


# this runs inside a container's network namespace (netns.run_in), on a netlink socket opened there
def configure(ns: Rtnl, i: Interface) -> None:
    """Address an interface, bring it up, set its sysctls, and add the default routes whose gateways are given."""
    idx = ns.index(i.name)
    if idx is None:
        raise OSError(errno.ENODEV, f"no interface {i.name} in the container's namespace")
    ns.add_address(idx, i.address, i.prefixlen)
    if i.address6:
        ns.add_address(idx, i.address6, i.prefixlen6, IFA_F_NODAD)
    for ll in i.link_local:
        ns.add_address(idx, ll, LINK_LOCAL_V6 if ":" in ll else LINK_LOCAL_V4, IFA_F_NODAD if ":" in ll else 0)
    ns.up(idx)
    for path, value in i.sysctls:  # /proc/sys/net is this thread's namespace's
        try:
            with open(f"/proc/sys/{path}", "w") as f:
                f.write(value)
        except OSError as e:
            raise InvalidParameter(f"failed to set sysctl {path.replace('/', '.')}={value}: "
                                   f"{e.strerror}") from None
    if i.gateway:
        ns.add_default_route(i.gateway)
    if i.gateway6:
        ns.add_default_route(i.gateway6)


def _link_names() -> set[str]:
    with IPRoute() as ns:
        return {link.get_attr("IFLA_IFNAME") for link in ns.get_links()}
