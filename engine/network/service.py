"""Container networking: the public operations, orchestrating the collaborators.

State lives in SQLite (store.py: networks, endpoints, sandboxes), the kernel
objects (bridges, veths, namespaces, the nftables table, the DNS server's
sockets) are derived from it through the driver (driver.py): every operation
first records what should exist, then makes the kernel match, and the
daemon's start reconciles both ways (re-creates bridges and rules, removes
veths and namespaces of containers that no longer run). Names are scoped by
an instance tag so several daemons can share one host.

The collaborators each own one concern: store.py the only SQL, the driver
the kernel (bridge.py on the host, fakedriver.py in memory), ports.py
published ports, etcfiles.py a container's /etc files, planning.py the
checks of create requests, pools.py the pools kept at daemon start
(predefined networks, --bip), types.py the records and Docker's JSON,
ipam.py address arithmetic (IPv4 and IPv6), names.py which names the
embedded DNS answers to whom, links.py dockerd's legacy links. This module
holds the daemon lifecycle, the network operations and the views; the
verbs on containers' sandboxes are in sandbox.py, the shared state in
core.py.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from ipaddress import IPv6Network

from pyroute2.netlink.exceptions import NetlinkError

from engine.errors import EngineError, Forbidden, InvalidParameter, NotFound
from engine.filters import Filters
from engine.network import ipam, links, listing, netns
from engine.network import types as wire
from engine.network.peers import NetworkedContainer, own_namespace
from engine.network.ports import exposed
from engine.network.sandbox import Sandboxes
from engine.network.types import (
    Attachment,
    CreateRequest,
    Endpoint,
    Member,
    Network,
    NetworkID,
    Networking,
    NetworkView,
)
from engine.types.network import NetworkCreateRequest
from engine.types.results import Pruned

log = logging.getLogger(__name__)


class NetworkService(Sandboxes):
    # ---- daemon lifecycle --------------------------------------------
    def start(self) -> None:
        """Make the kernel match the stored networks (before containers are restored)."""
        netns.in_fresh_thread(self._start)

    def _start(self) -> None:
        os.makedirs(self.netns_dir, mode=0o711, exist_ok=True)
        self.driver.collect_stale_bridges()
        self.pools.ensure_predefined()
        self.pools.apply_bip(self.resolve("bridge"))
        self.driver.enable_forwarding()
        self.dns = self.driver.start_dns(self.names.lookup)
        for net in self.store.networks():
            if net.driver == "bridge":
                self._ensure_bridge(self.pools.repool_if_taken(net))
        self._apply_firewall()

    def reconcile(self) -> None:
        """Drop what containers that no longer run left behind (after containers are restored)."""
        netns.in_fresh_thread(self._reconcile)

    def _reconcile(self) -> None:
        for cid in self.store.sandbox_ids():
            if not self._running(cid):
                self.teardown(cid)
        self.driver.delete_stray_veths({self.driver.veth(ep.endpoint_id)
                                        for ep in self.store.endpoints() if ep.ip})
        kept = self.store.sandbox_ids()
        for name in self.driver.namespaces(self.netns_dir):
            if name not in kept:
                self.driver.remove_namespace(os.path.join(self.netns_dir, name))
        self.ports.release_others(kept)
        self._apply_firewall()

    def close(self) -> None:
        """Leave no trace on the host when nothing runs; otherwise keep serving containers as they are."""
        if self.dns is not None:
            self.dns.close()
        if self.store.any_sandbox():
            return
        try:
            self.driver.remove_firewall()
            netns.in_fresh_thread(self._delete_bridges)
        except (EngineError, NetlinkError, OSError) as e:
            log.warning("network cleanup at shutdown: %s", e)

    def _delete_bridges(self) -> None:
        for net in self.store.networks():
            if net.device:
                self.driver.delete(net.device)

    # ---- networks ----------------------------------------------------
    def create(self, body: NetworkCreateRequest) -> NetworkID:
        """A new bridge network (its kernel objects made); returns its ID."""
        req = CreateRequest.checked(body)
        pool = req.ipam or wire.IpamConfig()
        with self._pools:  # choosing a pool and recording it is one step
            used = self.pools.used_subnets()
            if not pool.subnet:
                subnet = ipam.pick_subnet(used)
            else:
                subnet = ipam.parse_subnet(pool.subnet)
                ipam.check_overlap(subnet, used)
            net = wire.new_network(req.name, "bridge", subnet, pool.gateway, "", req.options, req.labels,
                                   req.internal)
            net.attachable, net.auto = req.attachable, not pool.subnet
            if req.enable_ipv6:
                if not self.ipv6:
                    raise InvalidParameter("IPv6 networks need IPv6 in the host's kernel, which is disabled here")
                asked6 = req.ipam6 or wire.IpamConfig()
                net.pool6, net.auto6 = self._new_pool6(asked6), not asked6.subnet
            req.apply_pool(net)
            device = req.options.get(wire.BRIDGE_NAME_OPTION) or self.driver.bridge_name(net.id)
            if len(device) > 15 or not wire.NAME_RE.match(device):
                raise InvalidParameter(f"invalid bridge name {device}")
            net.device = device
            self.store.insert_network(net)
        try:
            self._ensure_bridge(net)
            self._apply_firewall()
        except BaseException:
            self._delete_network(net)
            raise
        self.events.publish("network", "create", net.id, {"name": req.name, "type": "bridge"})
        return net.id

    def _new_pool6(self, asked: wire.IpamConfig) -> wire.Pool[IPv6Network]:
        """A new network's IPv6 pool: the subnet asked for, or the next free /64 of the daemon's ULA prefix."""
        used = self.pools.used_subnets6()
        if asked.subnet:
            subnet = ipam.parse_subnet6(asked.subnet)
            ipam.check_overlap(subnet, used)
        else:
            subnet = ipam.pick_subnet6(used, ipam.ula_base(os.path.realpath(self.cfg.data_root)))
        return wire.Pool(subnet, str(ipam.gateway_for(subnet, asked.gateway)))

    def remove(self, ref: str) -> None:
        net = self.resolve(ref)
        if net.predefined:
            raise Forbidden(f"{net.name} is a pre-defined network and cannot be removed")
        self._delete_network(net)
        self.events.publish("network", "destroy", net.id, {"name": net.name, "type": "bridge"})

    def _delete_network(self, net: Network) -> None:
        self.store.delete_network(net)
        if self.dns is not None:
            self.dns.forget(net.id)
        self.driver.delete(net.device)
        self._apply_firewall()

    def prune(self, filters: Filters | None = None) -> Pruned:
        deleted = []
        wanted = (filters or Filters()).validate(wire.NETWORK_FILTERS)
        for net in self.store.networks():
            if not wire.matches(net, wanted, self.store.in_use) or net.predefined:
                continue
            try:
                self.remove(net.id)
                deleted.append(net.name)
            except EngineError:
                continue
        self.events.publish("network", "prune", "", {})
        return Pruned(deleted)

    def summaries(self, filters: Filters | None = None) -> list[NetworkView]:
        """GET /networks: the networks that pass `filters`, without their members."""
        wanted = (filters or Filters()).validate(wire.NETWORK_FILTERS)
        return [NetworkView(net) for net in self.store.networks() if wire.matches(net, wanted, self.store.in_use)]

    def inspect(self, ref: str) -> NetworkView:
        """GET /networks/{id}: the network with the endpoints that are up (and, off bridges, running ones)."""
        net = self.resolve(ref)

        def shown(ep: Endpoint) -> bool:
            return bool(ep.ip) or (net.driver != "bridge" and self._running(ep.container_id))
        return NetworkView(net, tuple(Member(ep, self._name(ep)) for ep in self.store.endpoints(net.id) if shown(ep)))

    # ---- views for container inspect / ps ---------------------------------
    def networking(self, c: NetworkedContainer) -> Networking:
        """What inspect's NetworkSettings and a `ps` row show of `c`'s network."""
        live = c.state.running and own_namespace(c)
        attachments = []
        for ep in self.store.endpoints(container_id=c.id):
            try:
                net = self.resolve(ep.network_id)
            except NotFound:
                continue
            attachments.append(Attachment(net, ep, self.names.dns_names(ep) if not net.predefined else None))
        sandbox = self.store.sandbox(c.id)
        return Networking(c.id, sandbox["path"] if sandbox else "",
                          tuple(exposed(c.config.exposed_ports)) if live else (),
                          self.ports.published(c.id) if live else (), tuple(attachments))

    def remove_link(self, name: str) -> None:
        """`docker rm --link /parent/alias`; a running parent's /etc/hosts drops the child's line."""
        parent = self.links.remove(name)
        if parent.state.running:
            links.rewrite_hosts(parent.hosts_path, self.etc_files(parent)["hosts"])

    def networkings(self, cs: Sequence[NetworkedContainer]) -> dict[str, Networking]:
        """`networking` of many containers at once (`docker ps`), by ID, reading each table once."""
        return listing.networkings(self.store, cs)

    def link_env(self, c: NetworkedContainer) -> list[str]:
        """The variables of `c`'s legacy links (its process environment, before Config.Env)."""
        return [item for child in self.links.children(c) for item in child.env()]

    def inspect_links(self, c: NetworkedContainer) -> list[str] | None:
        """HostConfig.Links as inspect shows them ("/child:/parent/alias")."""
        return self.links.inspect(c)
