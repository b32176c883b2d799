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
holds the operations and the per-container locks that order them.

A container's network namespace is a bind mount under exec_root/netns that
the daemon creates before runc starts, so its veths and addresses exist
before the process does and survive a daemon restart unchanged.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
import secrets
import threading
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from engine.config import EngineConfig
from engine.errors import Conflict, EngineError, Forbidden, InvalidParameter, NotFound
from engine.events import EventBus
from engine.filters import Filters
from engine.network import firewall as netfw
from engine.network import ipam, links, netns, planning
from engine.network import types as wire
from engine.network.driver import Interface, NetworkDriver, Resolver
from engine.network.etcfiles import render as render_etc_files
from engine.network.links import LegacyLinks
from engine.network.names import Names
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
# dockerd's runconfig validation errors (400s)



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
        self.links = LegacyLinks(self.store, containers, lambda: self.resolve("bridge"))
        self.names = Names(self.store, containers, self.resolve)
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
        return {"Id": net.id, "Warning": ""}

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

    # ---- container create --------------------------------------------
    def plan(self, req: ContainerCreateRequest) -> Plan:
        """Validate a create request's networking; returns what `register` stores. Normalizes its NetworkMode."""
        return planning.plan(req, self.resolve, self.containers)

    def register(self, cid: str, name: str, plan: Plan) -> None:
        """Store the planned endpoint and links (inside the caller's create transaction)."""
        if plan.network is not None and plan.endpoint is not None:
            self._add_endpoint(plan.network, cid, name, plan.endpoint)
        if plan.links:
            self.store.add_links(cid, plan.links)

    def _add_endpoint(self, net: Network, cid: str, name: str, endpoint: Endpoint) -> None:
        self.store.add_endpoint(net, dataclasses.replace(endpoint, container_id=cid, name=name.lstrip("/")))

    def forget(self, cid: str) -> None:
        """A removed container's endpoints (its sandbox is already gone)."""
        self.teardown(cid)
        self.store.delete_container_endpoints(cid)
        self.store.delete_links(cid)
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
            self.links.children(c, check=True)
            path = os.path.join(self.netns_dir, cid)
            self.store.add_sandbox(cid, path)
            try:
                self.driver.create_namespace(path)
                interfaces: list[Interface] = []
                routed6 = False  # the default routes go through the first network (of each family)
                for i, ep in enumerate(self.store.endpoints(container_id=cid)):
                    has6 = self._pool6(self.resolve(ep.network_id)) is not None
                    interfaces += self._plug(c, ep, path, f"eth{i}", default_route=i == 0,
                                             default_route6=has6 and not routed6)
                    routed6 = routed6 or has6
                self.driver.configure(path, interfaces, loopback=True)
                first = next(((e.ip, e.network_id) for e in self.store.endpoints(container_id=cid) if e.ip), None)
                if first is not None:
                    self.ports.publish(c, first[0], self.resolve(first[1]).device)
            except BaseException:
                self.teardown(cid)
                raise
        for parent in self.links.running_parents(cid):  # they know this container by its old address
            links.rewrite_hosts(parent.hosts_path, self.etc_files(parent)["hosts"])
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
              default_route: bool, default_route6: bool = False) -> list[Interface]:
        """Allocate addresses and wire a veth from the network's bridge into the sandbox.

        Returns the configuration still to apply inside the namespace, so a
        caller can batch it into one visit. `default_route6` asks for the IPv6
        default route through this network, if it has IPv6.
        """
        net = self.resolve(ep.network_id)
        if net.driver != "bridge":
            return []
        cfg, cfg6 = net.pool, self._pool6(net)

        def pick(taken: set[str], taken6: set[str]) -> Endpoint:
            pool = IPv4Network(cfg.ip_range) if cfg.ip_range else cfg.subnet
            ip = ipam.allocate(cfg.subnet, ip_address(cfg.gateway), taken | cfg.reserved(), ep.requested_ip, pool)
            ip6 = ""
            if cfg6 is not None:
                pool6 = IPv6Network(cfg6.ip_range) if cfg6.ip_range else cfg6.subnet
                ip6 = ipam.allocate(cfg6.subnet, ip_address(cfg6.gateway), taken6 | cfg6.reserved(),
                                    ep.requested_ip6, pool6)
            mac = planning.parse_mac(ep.settings.mac_address) if ep.settings.mac_address else ipam.mac_for(ip)
            return dataclasses.replace(ep, ip=ip, ip6=ip6, endpoint_id=secrets.token_hex(32),
                                       name=c.name.lstrip("/"), mac=mac)
        up = self.store.assign_address(net.id, pick)
        if not self.driver.exists(net.device):
            self._ensure_bridge(net)
        self.driver.plug(self.driver.veth(up.endpoint_id), ifname, path, up.mac, net.device)
        routed = not net.internal
        interface = Interface(
            ifname, str(up.ip), cfg.subnet.prefixlen, cfg.gateway if default_route and routed else "",
            up.ip6, cfg6.subnet.prefixlen if cfg6 else 0,
            cfg6.gateway if cfg6 and default_route6 and routed else "", tuple(ep.link_local_ips),
            tuple(planning.endpoint_sysctls(ep.settings.driver_opts or {}, ifname)))
        self.events.publish("network", "connect", net.id, {"container": c.id, "name": net.name,
                                                               "type": "bridge"})
        return [interface]

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
            networks[net.name] = wire.endpoint_json(net, ep, self.names.dns_names(ep) if not net.predefined else None)
        return wire.settings_json(c.id, self.store.sandbox(c.id), ports, networks)

    def ports_list(self, c: NetworkedContainer) -> list[dict[str, Any]]:
        """The `Ports` of GET /containers/json (the PORTS column of `docker ps`)."""
        return self.ports.ports_summary(c)

    def etc_files(self, c: NetworkedContainer) -> dict[str, str]:
        """hostname, hosts and resolv.conf for a container whose network is set up."""
        other = self._shared_with(c)
        if other is not None:
            return self.etc_files(other)  # as Docker: the namespace's owner's files
        up = [ep for ep in self.store.endpoints(container_id=c.id) if ep.ip]
        first = up[0] if up and c.host_config.network_mode != "host" else None
        entries = [(ip, child.hosts_line_names()) for child in self.links.children(c)
                   for ip in (child.ip, child.ip6) if ip]
        return render_etc_files(c, str(first.ip) if first else "", self._bridge_gateway, self._embedded_dns(c.id),
                                first.ip6 if first else "", entries)

    def link_env(self, c: NetworkedContainer) -> list[str]:
        """The variables of `c`'s legacy links (its process environment, before Config.Env)."""
        return [item for child in self.links.children(c) for item in child.env()]

    def inspect_links(self, c: NetworkedContainer) -> list[str] | None:
        """HostConfig.Links as inspect shows them ("/child:/parent/alias")."""
        return self.links.inspect(c)

    def _bridge_gateway(self) -> str:
        return self.resolve("bridge").pool.gateway

    def _embedded_dns(self, cid: str) -> str:
        for ep in self.store.endpoints(container_id=cid):
            net = self.resolve(ep.network_id)
            if not net.predefined and ep.ip:
                return net.pool.gateway
        return ""

    # ---- connect / disconnect -------------------------------------------------
    def connect(self, net_ref: str, container_ref: str, config: EndpointSettings) -> None:
        net = self.resolve(net_ref)
        c = self.containers.get(container_ref)
        if c.host_config.network_mode.startswith("container:"):
            raise InvalidParameter(planning.SHARED_NETWORK)
        endpoint = planning.endpoint_config(net, config)
        planning.check_joinable(c.host_config.network_mode, net,
                                [self.resolve(ep.network_id) for ep in self.store.endpoints(container_id=c.id)])
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
                raise InvalidParameter(planning.HOST_NETWORK)
            self._unplug(ep)
            self.store.delete_endpoint(net.id, c.id)
        if ep.ip:
            self.events.publish("network", "disconnect", net.id, {"container": c.id, "name": net.name,
                                                                      "type": "bridge"})

    def _unplug(self, ep: Endpoint) -> None:
        if ep.endpoint_id:
            self.driver.delete(self.driver.veth(ep.endpoint_id))
