"""The bridge driver: the kernel side of networks (bridges, veth pairs, addresses, routes) over netlink.

Everything here talks to the kernel through pyroute2 and nothing else: no
SQL, no Docker JSON. The service decides what should exist and calls these to
make the host match, so the netlink details (targeted lookups instead of
dumps, links that vanish with their namespace) stay in one place.

Names are scoped by an instance tag derived from the data root, so several
daemons (e.g. test daemons) can share one host: each bridge carries an alias
"pydock <table> <data root>" that lets a later daemon recognise and collect
the bridges of a daemon whose data root is gone.
"""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import socket
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from engine.errors import EngineError, InvalidParameter
from engine.network import firewall as netfw
from engine.network import netns

log = logging.getLogger(__name__)

DEFAULT_ROOT = "/var/lib/pydock"
NET_ADDR_SET = 3  # /sys/class/net/<dev>/addr_assign_type of a MAC set by hand
IFA_F_NODAD = 0x02  # an address usable at once: no duplicate detection on a link only we address
LINK_LOCAL_V4, LINK_LOCAL_V6 = 16, 64  # the prefix lengths libnetwork gives link-local addresses


class BridgeDriver:
    def __init__(self, data_root: str) -> None:
        self.data_root = os.path.realpath(data_root)
        default = self.data_root == DEFAULT_ROOT
        tag = hashlib.sha256(self.data_root.encode()).hexdigest()[:4]
        self.table = "pydock" if default else f"pydock_{tag}"  # the nftables table
        self.default_device = "pydock0" if default else f"pd{tag}0"
        self.bridge_prefix = "pydock-" if default else f"pd{tag}-"
        self.veth_prefix = f"pv{tag}"

    def veth(self, endpoint_id: str) -> str:
        """The host end of an endpoint's veth pair."""
        return self.veth_prefix + endpoint_id[:15 - len(self.veth_prefix)]

    def bridge_name(self, network_id: str) -> str:
        return self.bridge_prefix + network_id[:15 - len(self.bridge_prefix)]

    def collect_stale_bridges(self) -> None:
        """Delete the bridges (and rules) of daemons whose data root is gone, e.g. a killed test daemon's.

        Each bridge's alias names its daemon's table and data root; one with no
        port attached whose data root no longer exists can serve nobody again.
        """
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

    @staticmethod
    def exists(device: str) -> bool:
        with IPRoute() as ip:
            return _index(ip, device) is not None

    @staticmethod
    def host_routes() -> list[IPv4Network]:
        """The host's IPv4 routes with a prefix (other daemons' bridges included): pools in use."""
        used = []
        with IPRoute() as ip:
            for r in ip.get_routes(family=socket.AF_INET, table=254):
                dst = r.get_attr("RTA_DST")
                if dst and r["dst_len"]:
                    used.append(IPv4Network(f"{dst}/{r['dst_len']}", strict=False))
        return used

    @staticmethod
    def host_routes6() -> list[IPv6Network]:
        """The host's global IPv6 routes with a prefix (other daemons' bridges included): pools in use."""
        used = []
        with IPRoute() as ip:
            for r in ip.get_routes(family=socket.AF_INET6, table=254):
                dst = r.get_attr("RTA_DST")
                if dst and r["dst_len"] and not dst.startswith("fe80:"):
                    used.append(IPv6Network(f"{dst}/{r['dst_len']}", strict=False))
        return used

    def ensure_bridge(self, device: str, gateway: str, prefixlen: int, gateway6: str = "",
                      prefixlen6: int = 0) -> None:
        """The bridge exists, is up and holds the gateway addresses (IPv6's too when `gateway6` is given)."""
        with IPRoute() as ip:
            if _index(ip, device) is None:
                ip.link("add", ifname=device, kind="bridge")
            idx = _index(ip, device)
            if _addr_assign_type(device) != NET_ADDR_SET:
                # A bridge whose address nobody set takes its ports' lowest MAC, so it would change as
                # containers come and go and their neighbours' ARP entries for the gateway go stale
                # (queries to the embedded DNS lost for seconds); fix it at its current value, as dockerd does.
                mac = ip.link("get", index=idx)[0].get_attr("IFLA_ADDRESS")
                ip.link("set", index=idx, address=mac)
            have = {a.get_attr("IFA_ADDRESS") for a in ip.get_addr(index=idx, family=socket.AF_INET)}
            if gateway not in have:
                ip.addr("add", index=idx, address=gateway, prefixlen=prefixlen)
            if gateway6:
                netfw.set_sysctl(f"net/ipv6/conf/{device}/disable_ipv6", "0")
                have6 = {a.get_attr("IFA_ADDRESS") for a in ip.get_addr(index=idx, family=socket.AF_INET6)}
                if gateway6 not in have6:
                    ip.addr("add", index=idx, address=gateway6, prefixlen=prefixlen6, flags=IFA_F_NODAD)
            ip.link("set", index=idx, state="up", ifalias=f"pydock {self.table} {self.data_root}")
        netfw.set_sysctl(f"net/ipv4/conf/{device}/route_localnet", "1")

    @staticmethod
    def delete(device: str) -> None:
        """Delete a link (bridge or veth) if it exists."""
        with IPRoute() as ip:
            idx = _index(ip, device)
            if idx is not None:
                _delete_index(ip, idx)

    def delete_stray_veths(self, live: set[str]) -> None:
        """Host veth ends of ours that no live endpoint owns."""
        with IPRoute() as ip:
            for link in ip.get_links():
                name = link.get_attr("IFLA_IFNAME")
                if name.startswith(self.veth_prefix) and name not in live:
                    _delete_index(ip, link["index"])

    @staticmethod
    def plug(veth: str, ifname: str, netns_path: str, mac: str, device: str) -> None:
        """A veth pair: `veth` on the host, enslaved to the bridge `device`; `ifname` inside the namespace."""
        with IPRoute() as host:
            host.link("add", ifname=veth, kind="veth", peer={"ifname": ifname, "net_ns_fd": netns_path, "address": mac})
            host.link("set", index=_index(host, veth), master=_index(host, device), state="up")

    @staticmethod
    def free_ifname(netns_path: str) -> str:
        """The first ethN a namespace does not have yet (for `docker network connect`)."""
        names = netns.run_in(netns_path, _link_names)
        return next(f"eth{i}" for i in range(1000) if f"eth{i}" not in names)


def ipv6_available() -> bool:
    """Whether the host's kernel has IPv6 (not booted with ipv6.disable=1)."""
    return os.path.exists("/proc/sys/net/ipv6/conf/all/forwarding")


def _addr_assign_type(device: str) -> int:
    """How the kernel got a link's MAC (NET_ADDR_SET: someone set it), -1 when it cannot tell."""
    try:
        with open(f"/sys/class/net/{device}/addr_assign_type") as f:
            return int(f.read())
    except (OSError, ValueError):
        return -1


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


# these run inside a container's network namespace (netns.run_in)
def loopback_up() -> None:
    with IPRoute() as ns:
        ns.link("set", index=1, state="up")  # lo is always index 1 in a new namespace


@dataclass(frozen=True)
class Addressing:
    """What one interface inside a container gets: its addresses and, for the default routes, the gateways
    ("" for none: not the container's first network, or an internal one)."""

    address: str
    prefixlen: int
    gateway: str = ""
    address6: str = ""
    prefixlen6: int = 0
    gateway6: str = ""
    link_local: tuple[str, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()  # (path under /proc/sys, value) for this interface


def configure(ifname: str, a: Addressing) -> None:
    """Address an interface, bring it up, and add the default routes whose gateways are given."""
    with IPRoute() as ns:
        idx = _index(ns, ifname)
        ns.addr("add", index=idx, address=a.address, prefixlen=a.prefixlen)
        if a.address6:
            ns.addr("add", index=idx, address=a.address6, prefixlen=a.prefixlen6, flags=IFA_F_NODAD)
        for ll in a.link_local:
            ns.addr("add", index=idx, address=ll, prefixlen=LINK_LOCAL_V6 if ":" in ll else LINK_LOCAL_V4,
                    **({"flags": IFA_F_NODAD} if ":" in ll else {}))
        ns.link("set", index=idx, state="up")
        for path, value in a.sysctls:  # /proc/sys/net is this thread's namespace's
            try:
                with open(f"/proc/sys/{path}", "w") as f:
                    f.write(value)
            except OSError as e:
                raise InvalidParameter(f"failed to set sysctl {path.replace('/', '.')}={value}: "
                                       f"{e.strerror}") from None
        if a.gateway:
            ns.route("add", dst="default", gateway=a.gateway)
        if a.gateway6:
            ns.route("add", dst="::/0", gateway=a.gateway6, family=socket.AF_INET6)


def _link_names() -> set[str]:
    with IPRoute() as ns:
        return {link.get_attr("IFLA_IFNAME") for link in ns.get_links()}
