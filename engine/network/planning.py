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
from typing import Any

from engine.errors import InvalidParameter, NotFound, Unsupported
from engine.network import ipam
from engine.network.etcfiles import parse_extra_host
from engine.network.peers import ContainerLookup
from engine.network.ports import exposed, port_bindings
from engine.network.types import Endpoint, Network


@dataclass
class Plan:
    """What a container create stores: the network joined at create (None: none, or not there yet)."""

    network: Network | None = None
    endpoint: Endpoint | None = None


def plan(body: dict[str, Any], host: dict[str, Any], resolve: Callable[[str], Network],
         containers: ContainerLookup) -> Plan:
    """Validate a create request's networking; normalizes `host["NetworkMode"]`."""
    mode = host.get("NetworkMode") or "default"
    if not isinstance(mode, str):
        raise InvalidParameter("invalid NetworkMode")
    if mode == "default":
        mode = "bridge"
    if mode.startswith("container:"):
        host["NetworkMode"] = _plan_shared(body, host, mode[len("container:"):], containers)
        return Plan()
    host["NetworkMode"] = mode
    try:
        net: Network | None = resolve(mode)
    except NotFound:
        net = None  # as Docker: a missing network fails the start, not the create
    nc = body.get("NetworkingConfig") or {}
    eps = nc.get("EndpointsConfig") if isinstance(nc, dict) else None
    eps = eps or {}
    if not isinstance(eps, dict) or not all(isinstance(v, dict) or v is None for v in eps.values()):
        raise InvalidParameter("invalid NetworkingConfig")
    if len(eps) > 1:
        raise InvalidParameter("Container cannot be connected to network endpoints: " + ", ".join(eps))
    cfg = next(iter(eps.values()), None) or {}
    first = next(iter(eps), "")
    if net and eps and resolve("bridge" if first == "default" else first).id != net.id:
        raise InvalidParameter("Container cannot be connected to network endpoints other than its NetworkMode")
    endpoint = endpoint_config(net, cfg) if net else None
    port_bindings(host.get("PortBindings"))
    exposed(body.get("ExposedPorts"))
    for h in host.get("ExtraHosts") or []:
        parse_extra_host(h)
    for d in host.get("Dns") or []:
        ipam.parse_address(d, "IP address in DNS server")
    if host.get("Links"):
        raise Unsupported("HostConfig.Links is not supported yet")
    return Plan(net, endpoint)


def _plan_shared(body: dict[str, Any], host: dict[str, Any], ref: str, containers: ContainerLookup) -> str:
    """`--network container:<ref>`: Docker's conflicts, then the mode with the full ID."""
    if not ref:
        raise InvalidParameter("Invalid network mode: invalid container format container:<name|id>")
    conflicts = [(body.get("Hostname"), "hostname and the network mode"),
                 (host.get("Dns"), "dns and the network mode"),
                 (host.get("ExtraHosts"), "custom host-to-IP mapping and the network mode"),
                 (host.get("PortBindings") or host.get("PublishAllPorts"),
                  "port publishing and the container type network mode"),
                 (body.get("ExposedPorts"), "port exposing and the container type network mode")]
    for value, what in conflicts:
        if value:
            raise InvalidParameter(f"conflicting options: {what}")
    return "container:" + containers.resolve(ref)


def endpoint_config(net: Network, cfg: dict[str, Any]) -> Endpoint:
    """An EndpointSettings request checked against its network; returns the endpoint data to store."""
    ipam_cfg = cfg.get("IPAMConfig") or {}
    if not isinstance(ipam_cfg, dict):
        raise InvalidParameter("invalid IPAMConfig")
    requested = ipam_cfg.get("IPv4Address") or ""
    if requested:
        if net.predefined:
            raise InvalidParameter("user specified IP address is supported on user defined networks only")
        addr = ipam.parse_address(str(requested))
        if addr not in net.pool.subnet:
            raise InvalidParameter(f"no configured subnet or ip-range contain the IP address {requested}")
    aliases = cfg.get("Aliases") or []
    if aliases and net.predefined:
        raise InvalidParameter("network-scoped alias is supported only for containers in user defined networks")
    return Endpoint(net.id, "", aliases=aliases or None, requested_ip=str(requested))
