"""The verbs that wire a container into networks: plan and register at create, set up and tear down its
sandbox at start and exit, connect and disconnect while it exists.

A container's network namespace is a bind mount under exec_root/netns that
the daemon creates before runc starts, so its veths and addresses exist
before the process does and survive a daemon restart unchanged. Every verb
takes the container's lock, so a start, a connect and an exit of the same
container are ordered.
"""
from __future__ import annotations

import dataclasses
import os
import secrets
from ipaddress import IPv4Network, IPv6Network, ip_address

from engine.errors import Conflict, Forbidden, InternalError, InvalidParameter, NotFound
from engine.network import ipam, links, planning
from engine.network.core import NetworkCore
from engine.network.driver import Interface
from engine.network.etcfiles import render as render_etc_files
from engine.network.peers import NetworkedContainer
from engine.network.planning import Plan
from engine.network.types import Endpoint, Network
from engine.types.container import ContainerCreateRequest
from engine.types.network import EndpointSettings


class Sandboxes(NetworkCore):
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
        """A removed container's endpoints and links. Its sandbox is already torn down: the removal does
        that first, outside the transaction this runs in, as it changes the kernel's objects."""
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
        veth = self.driver.veth(up.endpoint_id)
        if not self.driver.plug(veth, ifname, path, up.mac, net.device):  # the bridge went (host reboot, ip link del)
            self._ensure_bridge(net)
            if not self.driver.plug(veth, ifname, path, up.mac, net.device):
                raise InternalError(f"bridge {net.device} of network {net.name} cannot be made")
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
