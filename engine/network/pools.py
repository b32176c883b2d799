"""Keeping networks' IPv4 pools: the predefined networks, the default bridge's --bip, pools taken meanwhile.

Pools are a host-wide resource shared with the host's own routes and with
other daemons' bridges, and what is free changes while this daemon is down.
So the decisions made at daemon start (create the predefined networks on a
free pool, move the default bridge to a changed --bip, move an automatically
chosen pool that another daemon took) sit together here, apart from the
per-request operations of the service. ipam.py holds the pure arithmetic.
"""
from __future__ import annotations

import ipaddress
import logging
from ipaddress import IPv4Network, IPv6Network

from engine.errors import InvalidParameter
from engine.network import ipam
from engine.network.driver import Links
from engine.network.store import NetworkStore
from engine.network.types import PREDEFINED, Network, Pool, new_network

log = logging.getLogger(__name__)

DEFAULT_BRIDGE_SUBNET = "172.29.0.0/16"


class PoolKeeper:
    def __init__(self, store: NetworkStore, driver: Links, bip: str) -> None:
        """`bip` is the daemon's --bip (address and prefix of the default bridge), "" for none."""
        self.store = store
        self.driver = driver
        self.bip = bip

    def used_subnets(self, exclude: str = "") -> list[IPv4Network]:
        """Pools of our networks and the host's routes (other daemons' bridges included)."""
        ours = [n for n in self.store.networks() if n.id != exclude]
        return [p.subnet for n in ours for p in n.pools] + self.driver.host_routes()

    def used_subnets6(self) -> list[IPv6Network]:
        """IPv6 pools of our networks and the host's global IPv6 routes."""
        ours = [n.pool6.subnet for n in self.store.networks() if n.pool6 is not None]
        return ours + self.driver.host_routes6()

    def ensure_predefined(self) -> None:
        """bridge, host and none exist; a new default bridge gets --bip or a free pool."""
        have = {n.name for n in self.store.networks()}
        for name in PREDEFINED:
            if name in have:
                continue
            if name == "bridge":
                subnet, gateway = self._bip()
                if subnet is None:
                    subnet = ipam.pick_subnet(self.used_subnets(), IPv4Network(DEFAULT_BRIDGE_SUBNET))
                device = self.driver.default_device
                net = new_network("bridge", "bridge", subnet, gateway, device, {
                    "com.docker.network.bridge.default_bridge": "true",
                    "com.docker.network.bridge.enable_icc": "true",
                    "com.docker.network.bridge.enable_ip_masquerade": "true",
                    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                    "com.docker.network.bridge.name": device,
                    "com.docker.network.driver.mtu": "1500"}, {}, False)
                net.auto = not gateway
            else:
                net = new_network(name, "host" if name == "host" else "null", None, "", "", {}, {}, False)
            self.store.insert_network(net)

    def _bip(self) -> tuple[IPv4Network | None, str]:
        """The configured default bridge pool and gateway (--bip), if any."""
        if not self.bip:
            return None, ""
        try:
            iface = ipaddress.IPv4Interface(self.bip)
        except ValueError:
            raise InvalidParameter(f"invalid --bip {self.bip!r}: want an address with prefix, e.g. "
                                   "172.29.0.1/16") from None
        return iface.network, str(iface.ip)

    def apply_bip(self, net: Network) -> None:
        """A changed --bip moves the default bridge `net`, unless a running container is on it."""
        subnet, gateway = self._bip()
        if subnet is None or net.pools == [Pool(subnet, gateway)]:
            return
        if any(ep.ip for ep in self.store.endpoints(network_id=net.id)):
            log.warning("--bip %s not applied: containers are running on the default bridge", self.bip)
            return
        self.driver.delete(net.device)  # its old route must not count as a clash
        ipam.check_overlap(subnet, self.used_subnets(exclude=net.id))
        net.pools, net.auto = [Pool(subnet, gateway)], False
        self.store.update_network(net)

    def repool_if_taken(self, net: Network) -> Network:
        """An automatically chosen pool that another daemon took while our bridge was down is chosen anew."""
        if not net.auto or self.driver.exists(net.device):
            return net
        mine = net.pool.subnet
        used = self.used_subnets(exclude=net.id)
        if not any(mine.overlaps(u) for u in used):
            return net
        subnet = ipam.pick_subnet(used)
        net.pools = [Pool(subnet, str(ipam.gateway_for(subnet)))]
        self.store.update_network(net)
        log.warning("network %s: pool %s is in use on this host now, moved to %s", net.name, mine, subnet)
        return net
