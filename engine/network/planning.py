"""Validation of networking requests before anything is stored: container create, and endpoint configs.

A container's create request is checked whole before the container row is
written (Docker refuses a bad port, DNS server or endpoint config at create,
but a missing network only at start), so the checks are pure functions of
the request and the network records: nothing here touches the kernel or the
tables.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.errors import InvalidParameter, NotFound, Unsupported
from engine.network import ipam
from engine.network.etcfiles import parse_extra_host
from engine.network.peers import ContainerLookup
from engine.network.ports import exposed, port_bindings
from engine.network.types import Endpoint, Network
from engine.types.container import ContainerCreateRequest
from engine.types.network import EndpointSettings


@dataclass
class Plan:
    """What a container create stores: the network joined at create (None: none, or not there yet)."""

    network: Network | None = None
    endpoint: Endpoint | None = None


def plan(req: ContainerCreateRequest, resolve: Callable[[str], Network], containers: ContainerLookup) -> Plan:
    """Validate a create request's networking; normalizes its NetworkMode."""
    host = req.host_config
    mode = host.network_mode or "default"
    if mode == "default":
        mode = "bridge"
    if mode.startswith("container:"):
        host.network_mode = _plan_shared(req, mode[len("container:"):], containers)
        return Plan()
    host.network_mode = mode
    try:
        net: Network | None = resolve(mode)
    except NotFound:
        net = None  # as Docker: a missing network fails the start, not the create
    eps = req.networking_config.endpoints_config or {}
    if len(eps) > 1:
        raise InvalidParameter("Container cannot be connected to network endpoints: " + ", ".join(eps))
    cfg = next(iter(eps.values()), None) or EndpointSettings()
    first = next(iter(eps), "")
    if net and eps and resolve("bridge" if first == "default" else first).id != net.id:
        raise InvalidParameter("Container cannot be connected to network endpoints other than its NetworkMode")
    endpoint = endpoint_config(net, cfg) if net else None
    port_bindings(host.port_bindings)
    exposed(req.config.exposed_ports)
    for h in host.extra_hosts or []:
        parse_extra_host(h)
    for d in host.dns or []:
        ipam.parse_address(d, "IP address in DNS server")
    if host.links:
        raise Unsupported("HostConfig.Links is not supported yet")
    return Plan(net, endpoint)


def _plan_shared(req: ContainerCreateRequest, ref: str, containers: ContainerLookup) -> str:
    """`--network container:<ref>`: Docker's conflicts, then the mode with the full ID."""
    if not ref:
        raise InvalidParameter("Invalid network mode: invalid container format container:<name|id>")
    host = req.host_config
    conflicts = [(req.config.hostname, "hostname and the network mode"),
                 (host.dns, "dns and the network mode"),
                 (host.extra_hosts, "custom host-to-IP mapping and the network mode"),
                 (host.port_bindings or host.publish_all_ports,
                  "port publishing and the container type network mode"),
                 (req.config.exposed_ports, "port exposing and the container type network mode")]
    for value, what in conflicts:
        if value:
            raise InvalidParameter(f"conflicting options: {what}")
    return "container:" + containers.resolve(ref)


def endpoint_config(net: Network, cfg: EndpointSettings) -> Endpoint:
    """An EndpointSettings request checked against its network; returns the endpoint data to store."""
    requested = cfg.ipam_config.ipv4_address if cfg.ipam_config else ""
    if requested:
        if net.predefined:
            raise InvalidParameter("user specified IP address is supported on user defined networks only")
        addr = ipam.parse_address(str(requested))
        if addr not in net.pool.subnet:
            raise InvalidParameter(f"no configured subnet or ip-range contain the IP address {requested}")
    aliases = cfg.aliases or []
    if aliases and net.predefined:
        raise InvalidParameter("network-scoped alias is supported only for containers in user defined networks")
    return Endpoint(net.id, "", aliases=aliases or None, requested_ip=str(requested))
