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
ipam.py address arithmetic. This module holds the operations and the
per-container locks that order them.

A container's network namespace is a bind mount under exec_root/netns that
the daemon creates before runc starts, so its veths and addresses exist
before the process does and survive a daemon restart unchanged.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import threading
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from engine.config import EngineConfig
from engine.errors import Conflict, EngineError, Forbidden, InvalidParameter, NotFound
from engine.events import EventBus
from engine.filters import Filters
from engine.network import firewall as netfw
from engine.network import ipam, netns, planning
from engine.network import types as wire
from engine.network.driver import Interface, NetworkDriver, Resolver
from engine.network.etcfiles import render as render_etc_files
from engine.network.peers import ContainerLookup, ContainersRef, NetworkedContainer, own_namespace
from engine.network.planning import Plan
from engine.network.pools import PoolKeeper
from engine.network.ports import PortPublisher, exposed
from engine.network.store import NetworkStore
from engine.network.types import CreateRequest, Endpoint, Network
from engine.network.userproxy import UserlandProxy
from engine.store.db import MetaStore
from engine.types.container import ContainerCreateRequest
from engine.types.network import EndpointSettings, NetworkCreateRequest

log = logging.getLogger(__name__)



class NetworkService:
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
        self.dns: Resolver | None = None

    @property
    def containers(self) -> ContainerLookup:
        return self._containers_ref()

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
        self.dns = self.driver.start_dns(self._dns_lookup)
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
    def resolve(self, ref: str) -> Network:
        """A network's stored document by full ID, exact name or unique ID prefix (Docker's order)."""
        return self.store.resolve(ref)

    def create(self, body: NetworkCreateRequest) -> dict[str, str]:
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
            req.check_pool(subnet)
            net.pool.ip_range = pool.ip_range
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
        return {"Id": net.id, "Warning": ""}

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

    def prune(self, filters: Filters | None = None) -> dict[str, Any]:
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
        return {"NetworksDeleted": deleted or None}

    def summaries(self, filters: Filters | None = None) -> list[dict[str, Any]]:
        """GET /networks: the networks that pass `filters`, without their Containers."""
        wanted = (filters or Filters()).validate(wire.NETWORK_FILTERS)
        return [wire.network_json(net, [], bool, self._name) for net in self.store.networks()
                if wire.matches(net, wanted, self.store.in_use)]

    def inspect(self, ref: str) -> dict[str, Any]:
        net = self.resolve(ref)

        def shown(ep: Endpoint) -> bool:
            return bool(ep.ip) or (net.driver != "bridge" and self._running(ep.container_id))
        return wire.network_json(net, self.store.endpoints(net.id), shown, self._name)

    # ---- kernel objects ------------------------------------------------
    def _ensure_bridge(self, net: Network) -> None:
        self.driver.ensure_bridge(net.device, net.pool.gateway, net.pool.subnet.prefixlen)
        if self.dns is not None and net.name != "bridge":
            self.dns.listen(net.id, net.pool.gateway)

    def _apply_firewall(self) -> None:
        bridges = [netfw.Bridge(n.device, str(n.pool.subnet), not n.internal)
                   for n in self.store.networks() if n.driver == "bridge"]
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

    # ---- container create --------------------------------------------
    def plan(self, req: ContainerCreateRequest) -> Plan:
        """Validate a create request's networking; returns what `register` stores. Normalizes its NetworkMode."""
        return planning.plan(req, self.resolve, self.containers)

    def register(self, cid: str, name: str, plan: Plan) -> None:
        """Store the planned endpoint (inside the caller's create transaction)."""
        if plan.network is not None and plan.endpoint is not None:
            self._add_endpoint(plan.network, cid, name, plan.endpoint)

    def _add_endpoint(self, net: Network, cid: str, name: str, endpoint: Endpoint) -> None:
        self.store.add_endpoint(net, dataclasses.replace(endpoint, container_id=cid, name=name.lstrip("/")))

    def forget(self, cid: str) -> None:
        """A removed container's endpoints (its sandbox is already gone)."""
        self.teardown(cid)
        self.store.delete_container_endpoints(cid)
        with self._guard:
            self._locks.pop(cid, None)

    # ---- container start / exit ----------------------------------------
    def setup(self, c: NetworkedContainer) -> str:
        """Build the container's network before runc runs; returns SpecOptions.network."""
        cid = c.id
        mode = c.host_config.network_mode
        if mode == "host":
            return "host"
        if mode == "none":
            return ""
        other = self._shared_with(c)
        if other is not None:
            return "host" if other.host_config.network_mode == "host" else f"/proc/{other.state.pid}/ns/net"
        with self._lock(cid):
            self.teardown(cid)  # a crashed earlier start may have left a half sandbox
            if not self.store.endpoints(container_id=cid):
                self._join_late(c)
            path = os.path.join(self.netns_dir, cid)
            self.store.add_sandbox(cid, path)
            try:
                self.driver.create_namespace(path)
                interfaces = [iface for i, ep in enumerate(self.store.endpoints(container_id=cid))
                              for iface in self._plug(c, ep, path, f"eth{i}", default_route=i == 0)]
                self.driver.configure(path, interfaces, loopback=True)
                first = next(((e.ip, e.network_id) for e in self.store.endpoints(container_id=cid) if e.ip), None)
                if first is not None:
                    self.ports.publish(c, first[0], self.resolve(first[1]).device)
            except BaseException:
                self.teardown(cid)
                raise
        return path

    def _join_late(self, c: NetworkedContainer) -> None:
        """A container created before its network existed joins it now, or cannot start."""
        mode = c.host_config.network_mode
        try:
            net = self.resolve(mode)
        except NotFound:
            raise NotFound(f"failed to set up container networking: network {mode} not found") from None
        self._add_endpoint(net, c.id, c.name, planning.endpoint_config(net, EndpointSettings()))

    def _plug(self, c: NetworkedContainer, ep: Endpoint, path: str, ifname: str,
              default_route: bool) -> list[Interface]:
        """Allocate an address and wire a veth from the network's bridge into the sandbox.

        Returns the configuration still to apply inside the namespace, so a
        caller can batch it into one visit.
        """
        net = self.resolve(ep.network_id)
        if net.driver != "bridge":
            return []
        cfg = net.pool
        subnet = cfg.subnet

        def pick(taken: set[str]) -> Endpoint:
            pool = IPv4Network(cfg.ip_range) if cfg.ip_range else subnet
            ip = ipam.allocate(subnet, IPv4Address(cfg.gateway), taken, ep.requested_ip, pool)
            return dataclasses.replace(ep, ip=ip, endpoint_id=secrets.token_hex(32), name=c.name.lstrip("/"),
                                       mac=ipam.mac_for(ip))
        up = self.store.assign_address(net.id, pick)
        ip = str(up.ip)
        if not self.driver.exists(net.device):
            self._ensure_bridge(net)
        self.driver.plug(self.driver.veth(up.endpoint_id), ifname, path, up.mac, net.device)
        gateway = cfg.gateway if default_route and not net.internal else ""
        self.events.publish("network", "connect", net.id, {"container": c.id, "name": net.name,
                                                               "type": "bridge"})
        return [Interface(ifname, ip, subnet.prefixlen, gateway)]

    def teardown(self, cid: str) -> None:
        """Undo `setup`: veths, addresses, namespace, port rules. Safe to repeat."""
        with self._lock(cid):
            sandbox = self.store.sandbox(cid)
            if sandbox is None:
                return
            eps = [ep for ep in self.store.endpoints(container_id=cid) if ep.ip]
            # No veth is deleted one by one: the container's processes are gone, so
            # unmounting its namespace destroys it, and the kernel removes every
            # veth pair with an end inside (deleting each first cost ~30 ms a run).
            self.driver.remove_namespace(sandbox["path"])
            self.ports.release(cid)
            self.store.release_sandbox(cid, eps)
            if sandbox["ports"]:
                self._apply_firewall()
            for ep in eps:
                self.events.publish("network", "disconnect", ep.network_id, {"container": cid, "type": "bridge"})

    def _shared_with(self, c: NetworkedContainer) -> NetworkedContainer | None:
        """The running container whose network namespace a `container:<id>` container joins."""
        mode = c.host_config.network_mode
        if not mode.startswith("container:"):
            return None
        other = self.containers.get(mode[len("container:"):])
        if not other.state.running:
            raise Conflict(f"cannot join network of a non running container: {other.id}")
        return other

    # ---- views for container inspect / ps ---------------------------------
    def settings(self, c: NetworkedContainer) -> dict[str, Any]:
        """NetworkSettings as Docker's inspect shows it."""
        ports: dict[str, Any] = {}
        if c.state.running and own_namespace(c):
            ports = {p: None for p in exposed(c.config.exposed_ports)}
            ports.update(self.ports.port_map(c.id))
        networks = {}
        for ep in self.store.endpoints(container_id=c.id):
            try:
                net = self.resolve(ep.network_id)
            except NotFound:
                continue
            networks[net.name] = wire.endpoint_json(net, ep, c.id, c.name)
        return wire.settings_json(c.id, self.store.sandbox(c.id), ports, networks)

    def ports_list(self, c: NetworkedContainer) -> list[dict[str, Any]]:
        """The `Ports` of GET /containers/json (the PORTS column of `docker ps`)."""
        return self.ports.ports_summary(c)

    def etc_files(self, c: NetworkedContainer) -> dict[str, str]:
        """hostname, hosts and resolv.conf for a container whose network is set up."""
        other = self._shared_with(c)
        if other is not None:
            return self.etc_files(other)  # as Docker: the namespace's owner's files
        up = [ep.ip for ep in self.store.endpoints(container_id=c.id) if ep.ip]
        address = up[0] if up and c.host_config.network_mode != "host" else ""
        return render_etc_files(c, address, self._bridge_gateway, self._embedded_dns(c.id))

    def _bridge_gateway(self) -> str:
        return self.resolve("bridge").pool.gateway

    def _embedded_dns(self, cid: str) -> str:
        for ep in self.store.endpoints(container_id=cid):
            net = self.resolve(ep.network_id)
            if not net.predefined and ep.ip:
                return net.pool.gateway
        return ""

    def _dns_lookup(self, src: str, network_id: str, name: str) -> tuple[list[str] | None, list[str]] | None:
        """Names on the querier's user-defined networks; unknown names go to its --dns or the host's.

        Only our containers get answers (None: ignore the query), so the resolver on
        the gateway address is no open relay for whoever can route to it.
        """
        me = self.store.address_owner(network_id, src)
        if me is None:
            return None
        nets = [ep.network_id for ep in self.store.endpoints(container_id=me)
                if not self.resolve(ep.network_id).predefined]  # "bridge" has no names
        upstream: list[str] = []
        try:
            upstream = self.containers.get(me).host_config.dns or []
        except EngineError:
            pass
        found = []
        for nid in nets:
            for ep in self.store.endpoints(network_id=nid):
                if not ep.ip:
                    continue
                aliases = ep.aliases or []
                if name in {self._name(ep).lower(), ep.container_id[:12], *(a.lower() for a in aliases)}:
                    found.append(ep.ip)
        return (found or None), upstream

    # ---- connect / disconnect -------------------------------------------------
    def connect(self, net_ref: str, container_ref: str, config: EndpointSettings) -> None:
        net = self.resolve(net_ref)
        c = self.containers.get(container_ref)
        mode = c.host_config.network_mode
        if "host" in (mode, net.driver):
            raise Forbidden("container cannot be disconnected from host network or connected to host network")
        if not own_namespace(c) or net.driver != "bridge":
            raise Forbidden("container sharing network namespace with another container or host cannot be "
                            "connected to any other network")
        endpoint = planning.endpoint_config(net, config)
        with self._lock(c.id):
            self._add_endpoint(net, c.id, c.name, endpoint)
            sandbox = self.store.sandbox(c.id)
            if sandbox is None:
                return
            path = sandbox["path"]
            ep = self.store.endpoint(net.id, c.id)
            assert ep is not None  # added above, under the container's lock
            try:
                self.driver.configure(path, self._plug(c, ep, path, self.driver.free_ifname(path),
                                                       default_route=False))
            except BaseException:
                self._unplug(self.store.endpoint(net.id, c.id) or ep)
                self.store.delete_endpoint(net.id, c.id)
                raise

    def disconnect(self, net_ref: str, container_ref: str, force: bool = False) -> None:
        net = self.resolve(net_ref)
        try:
            c = self.containers.get(container_ref)
        except NotFound:
            if not force:
                raise
            self.store.delete_endpoints_of_prefix(net.id, container_ref)
            return
        with self._lock(c.id):
            ep = self.store.endpoint(net.id, c.id)
            if ep is None:
                raise Forbidden(f"container {c.id} is not connected to network {net.name}")
            if net.name == "host":
                raise Forbidden("container cannot be disconnected from host network or connected to host network")
            self._unplug(ep)
            self.store.delete_endpoint(net.id, c.id)
        if ep.ip:
            self.events.publish("network", "disconnect", net.id, {"container": c.id, "name": net.name,
                                                                      "type": "bridge"})

    def _unplug(self, ep: Endpoint) -> None:
        if ep.endpoint_id:
            self.driver.delete(self.driver.veth(ep.endpoint_id))
