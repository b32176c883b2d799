"""Validation of networking requests before anything is stored: container create, and endpoint configs.

A container's create request is checked whole before the container row is
written (Docker refuses a bad port, DNS server or endpoint config at create,
but a missing network only at start), so the checks are pure functions of
the request and the network records: nothing here touches the kernel or the
tables.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from engine.errors import InvalidParameter, NotFound
from engine.network import ipam, links
from engine.network.etcfiles import parse_extra_host
from engine.network.peers import ContainerLookup
from engine.network.ports import exposed, port_bindings
from engine.network.types import PREDEFINED, Endpoint, Network, parse_link
from engine.types.container import ContainerCreateRequest
from engine.types.network import EndpointIPAMConfig, EndpointSettings

SYSCTLS_OPTION = "com.docker.network.endpoint.sysctls"


HOST_NETWORK = "container cannot be disconnected from host network or connected to host network"
SHARED_NETWORK = ("container sharing network namespace with another container or host cannot be connected to any "
                  "other network")


@dataclass
class Plan:
    """What a container create stores: the network joined at create (None: none, or not there yet), and
    its legacy links as (alias, child ID)."""

    network: Network | None = None
    endpoint: Endpoint | None = None
    links: list[tuple[str, str]] = field(default_factory=list)


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
    mac = req.config.mac_address
    if mode == "host" and host.links:
        raise InvalidParameter("conflicting options: host type networking can't be used with links. "
                               "This would result in undefined behavior")
    if mode == "host" and mac:
        raise InvalidParameter("conflicting options: mac-address and the network mode")
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
    if mac:  # the container-wide Config.MacAddress is the main network's endpoint's (dockerd's handleMACAddressBC)
        if cfg.mac_address and cfg.mac_address != mac:
            raise InvalidParameter("the container-wide MAC address must match the endpoint-specific MAC address "
                                   "for the main network, or be left empty")
        cfg = dataclasses.replace(cfg, mac_address=mac)
    endpoint = endpoint_config(net, cfg) if net else None
    port_bindings(host.port_bindings)
    exposed(req.config.exposed_ports)
    for h in host.extra_hosts or []:
        parse_extra_host(h)
    for d in host.dns or []:
        ipam.parse_address(d, "IP address in DNS server")
    # legacy links off user-defined networks; on those, dockerd leaves HostConfig.Links unused
    legacy = links.plan(host.links or [], containers) if mode in PREDEFINED else []
    return Plan(net, endpoint, legacy)


def _plan_shared(req: ContainerCreateRequest, ref: str, containers: ContainerLookup) -> str:
    """`--network container:<ref>`: Docker's conflicts, then the mode with the full ID."""
    if not ref:
        raise InvalidParameter("Invalid network mode: invalid container format container:<name|id>")
    host = req.host_config
    conflicts = [(req.config.hostname, "hostname and the network mode"),
                 (host.links, ("container type network can't be used with links. This would result in "
                               "undefined behavior")),
                 (host.dns, "dns and the network mode"),
                 (host.extra_hosts, "custom host-to-IP mapping and the network mode"),
                 (req.config.mac_address, "mac-address and the network mode"),
                 (host.port_bindings or host.publish_all_ports,
                  "port publishing and the container type network mode"),
                 (req.config.exposed_ports, "port exposing and the container type network mode")]
    for value, what in conflicts:
        if value:
            raise InvalidParameter(f"conflicting options: {what}")
    return "container:" + containers.resolve(ref)


def endpoint_config(net: Network, cfg: EndpointSettings) -> Endpoint:
    """An EndpointSettings request checked against its network (dockerd's checks and messages, before
    anything is stored); returns the endpoint to store, keeping the settings as given."""
    asked = cfg.ipam_config or EndpointIPAMConfig()
    v4, v6 = asked.ipv4_address, asked.ipv6_address
    if v4 and not _is_address(v4, IPv4Address):
        raise InvalidParameter(f"invalid IPv4 address: {v4}")
    if v6 and (not _is_address(v6, IPv6Address) or IPv6Address(v6).ipv4_mapped is not None):
        raise InvalidParameter(f"invalid IPv6 address: {v6}")
    for ll in asked.link_local_ips or []:
        try:
            addr = ipaddress.ip_address(ll)
        except ValueError:
            raise InvalidParameter(f"invalid link-local IP address: {ll}") from None
        if not addr.is_link_local:
            raise InvalidParameter(f"invalid link local IP address: {ll}")
    if net.predefined and (v4 or v6):
        raise InvalidParameter("user specified IP address is supported on user defined networks only")
    if cfg.aliases and net.predefined:
        raise InvalidParameter("network-scoped alias is supported only for containers in user defined networks")
    if v4:
        _in_static_pool(v4, net.pool.subnet if net.pools and not net.auto else None)
    if v6:
        _in_static_pool(v6, net.pool6.subnet if net.pool6 and not net.auto6 else None)
    for spec in cfg.links or []:
        parse_link(spec)
    if cfg.mac_address:
        parse_mac(cfg.mac_address)
    endpoint_sysctls(cfg.driver_opts or {}, "IFNAME")
    settings = EndpointSettings(ipam_config=cfg.ipam_config, links=cfg.links or None, aliases=cfg.aliases or None,
                                mac_address=cfg.mac_address, driver_opts=cfg.driver_opts or None)
    return Endpoint(net.id, "", settings=settings)


def _is_address(text: str, family: type[IPv4Address | IPv6Address]) -> bool:
    try:
        family(text)
    except ValueError:
        return False
    return True


def _in_static_pool(address: str, subnet: IPv4Network | IPv6Network | None) -> None:
    """An asked-for address needs a pool the user configured, and must be in it."""
    if subnet is None:
        raise InvalidParameter("user specified IP address is supported only when connecting to networks "
                               "with user configured subnets")
    if ipaddress.ip_address(address) not in subnet:
        raise InvalidParameter(f"no configured subnet or ip-range contain the IP address {address}")


def endpoint_sysctls(driver_opts: dict[str, str], ifname: str) -> list[tuple[str, str]]:
    """DriverOpts' `com.docker.network.endpoint.sysctls` ("net.X.Y.IFNAME.Z=V,...", X ipv4, ipv6 or mpls)
    as (/proc/sys path, value) for the interface `ifname`, with dockerd's check of each."""
    out = []
    for sysctl in filter(None, driver_opts.get(SYSCTLS_OPTION, "").split(",")):
        key, _, value = sysctl.partition("=")
        parts = key.split(".", 4)
        # beyond dockerd's check: only names of this interface's own settings under net/, nothing a path
        # could climb out of (/proc/sys/kernel is the host's whatever namespace the writer is in)
        if len(parts) != 5 or parts[1] not in ("ipv4", "ipv6", "mpls") or parts[3] not in ("IFNAME", "ifname") \
                or not re.fullmatch(r"net\.\w+\.[\w-]+\.\w+\.[\w-]+(\.[\w-]+)*", key, re.ASCII):
            raise InvalidParameter(f"unrecognised network interface sysctl '{sysctl}'; represent 'net.X.Y.ethN.Z=V' "
                                   "as 'net.X.Y.IFNAME.Z=V', 'X' must be 'ipv4', 'ipv6' or 'mpls'")
        parts[3] = ifname
        out.append(("/".join(p.replace(".", "/") for p in parts), value))
    return out


def parse_mac(text: str) -> str:
    """A unicast Ethernet address in Go's net.ParseMAC spellings (`:` or `-` separated, or dotted), as
    "xx:xx:xx:xx:xx:xx"; what a bridge port cannot take is dockerd's 400."""
    digits = re.fullmatch(r"([0-9A-Fa-f]{2})([:-])([0-9A-Fa-f]{2})\2([0-9A-Fa-f]{2})\2([0-9A-Fa-f]{2})\2"
                          r"([0-9A-Fa-f]{2})\2([0-9A-Fa-f]{2})", text)
    if digits:
        octets = [digits.group(i) for i in (1, 3, 4, 5, 6, 7)]
    else:
        dotted = re.fullmatch(r"([0-9A-Fa-f]{4})\.([0-9A-Fa-f]{4})\.([0-9A-Fa-f]{4})", text)
        if not dotted:
            raise InvalidParameter(f"invalid MAC address {text}")
        joined = "".join(dotted.groups())
        octets = [joined[i:i + 2] for i in range(0, 12, 2)]
    if int(octets[0], 16) & 1:  # a multicast address cannot be an interface's own
        raise InvalidParameter(f"invalid MAC address {text}")
    return ":".join(o.lower() for o in octets)


def check_joinable(mode: str, net: Network, joined: list[Network]) -> None:
    """dockerd's updateNetworkSettings for `network connect`: the host network is all or nothing, and so is
    none. `mode` is the container's NetworkMode, `joined` the networks it is on."""
    if mode != "host" and net.driver == "host":
        raise InvalidParameter(HOST_NETWORK)
    for other in joined:
        if other.id == net.id:
            continue  # already there: the store's duplicate check words it
        if "host" in (other.driver, net.driver):
            raise InvalidParameter(SHARED_NETWORK)
        if "none" in (other.name, net.name):
            raise InvalidParameter("container cannot be connected to multiple networks with one of the "
                                   "networks in private (none) mode")
