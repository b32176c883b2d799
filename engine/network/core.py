"""The network service's state and the helpers every group of its verbs shares.

NetworkService is assembled like the container service: this base holds the
collaborators (store, driver, port publisher, pools, links, names, DNS) and
the per-container locks; sandbox.py adds the verbs that wire containers into
networks, service.py the daemon lifecycle, network CRUD and the views.
"""
from __future__ import annotations

import functools
import logging
import os
import threading
from ipaddress import IPv6Network

from engine.config import EngineConfig
from engine.errors import EngineError
from engine.events import EventBus
from engine.network import firewall as netfw
from engine.network import types as wire
from engine.network.driver import NetworkDriver, Resolver
from engine.network.links import LegacyLinks
from engine.network.names import Names
from engine.network.peers import ContainerLookup, ContainersRef
from engine.network.pools import PoolKeeper
from engine.network.ports import PortPublisher
from engine.network.store import NetworkStore
from engine.network.types import Endpoint, Network
from engine.network.userproxy import UserlandProxy
from engine.store.db import MetaStore

log = logging.getLogger(__name__)


class NetworkCore:
    def __init__(self, cfg: EngineConfig, meta: MetaStore, events: EventBus, containers: ContainersRef,
                 driver: NetworkDriver) -> None:
        """`containers` returns the container service, which is built after this one (see peers.py)."""
        self.cfg = cfg
        self.events = events
        self._containers_ref = containers
        self.store = NetworkStore(meta)
        self.driver = driver
        self.netns_dir = os.path.join(cfg.exec_root, "netns")
        self._guard = threading.Lock()
        self._locks: dict[str, threading.RLock] = {}
        self._fw = threading.Lock()
        self._pools = threading.Lock()
        # rootless: the host's ports are not in the bridges' namespace, so a user-space relay publishes them
        proxy = UserlandProxy(cfg.exec_root, cfg.engine_netns) if cfg.engine_netns else None
        self.ports = PortPublisher(self.store, self._fw, self._apply_firewall, proxy)
        self.pools = PoolKeeper(self.store, self.driver, cfg.bip)
        self.links = LegacyLinks(self.store, containers, lambda: self.resolve("bridge"))
        self.names = Names(self.store, containers, self.resolve)
        self.dns: Resolver | None = None

    @property
    def containers(self) -> ContainerLookup:
        return self._containers_ref()

    def resolve(self, ref: str) -> Network:
        """A network's stored document by full ID, exact name or unique ID prefix (Docker's order)."""
        return self.store.resolve(ref)

    # ---- kernel objects ------------------------------------------------
    @functools.cached_property
    def ipv6(self) -> bool:
        """Whether the bridges' namespace has IPv6 (a kernel booted without it does not, for good)."""
        return self.driver.ipv6_available()

    def _pool6(self, net: Network) -> wire.Pool[IPv6Network] | None:
        """The IPv6 pool the network serves: none on a host without IPv6, which serves its IPv4 part."""
        return net.pool6 if self.ipv6 else None

    def _ensure_bridge(self, net: Network) -> None:
        v6 = self._pool6(net)
        self.driver.ensure_bridge(net.device, net.pool.gateway, net.pool.subnet.prefixlen,
                                  v6.gateway if v6 else "", v6.subnet.prefixlen if v6 else 0)
        if self.dns is not None and net.name != "bridge":
            self.dns.listen(net.id, net.pool.gateway)

    def _apply_firewall(self) -> None:
        bridges = [netfw.Bridge(n.device, str(n.pool.subnet), not n.internal, str(v6.subnet) if v6 else "")
                   for n in self.store.networks() if n.driver == "bridge" for v6 in [self._pool6(n)]]
        ports = [netfw.PortRule(**p) for p in self.store.port_rules()]
        with self._fw:
            self.driver.apply_firewall(bridges, ports)

    def _lock(self, cid: str) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(cid, threading.RLock())

    def _name(self, ep: Endpoint) -> str:
        """The endpoint's container name now (a rename shows at once, as in Docker's DNS)."""
        try:
            return self.containers.get(ep.container_id).name.lstrip("/")
        except EngineError:
            return ep.name

    def _running(self, cid: str) -> bool:
        try:
            return self.containers.get(cid).state.running
        except EngineError:
            return False

