"""IPv4 address management: subnets for networks, addresses for endpoints.

Pure functions over what the caller knows is taken (stored endpoints, host
routes), so allocation is deterministic and unit-testable; the caller's SQLite
UNIQUE(network_id, ip) constraint is what makes a double grant impossible.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from ipaddress import IPv4Address, IPv4Network

from engine.errors import Forbidden, InvalidParameter


def parse_subnet(text: str) -> IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidParameter(f"invalid subnet {text}: invalid CIDR address: {text}") from None
    if not isinstance(net, IPv4Network):
        raise InvalidParameter("IPv6 subnets are not supported")
    if str(net) != text:
        raise InvalidParameter(f"invalid subnet {text}: it should be {net}")
    if net.prefixlen > 30:
        raise InvalidParameter(f"invalid subnet {text}: too small for a network")
    return net


def parse_address(text: str, what: str = "IP address") -> IPv4Address:
    try:
        return IPv4Address(text)
    except ValueError:
        raise InvalidParameter(f"invalid {what}: {text}") from None


def candidate_subnets(preferred: IPv4Network | None) -> Iterator[IPv4Network]:
    """Docker's default pools (172.17-31.0.0/16, then 192.168.x.0/20), our preferred one first."""
    if preferred is not None:
        yield preferred
    for second in range(17, 32):
        yield IPv4Network(f"172.{second}.0.0/16")
    for third in range(0, 256, 16):
        yield IPv4Network(f"192.168.{third}.0/20")


def pick_subnet(used: Iterable[IPv4Network], preferred: IPv4Network | None = None) -> IPv4Network:
    used = list(used)
    for net in candidate_subnets(preferred):
        if not any(net.overlaps(u) for u in used):
            return net
    raise Forbidden("could not find an available, non-overlapping IPv4 address pool among the defaults "
                    "to assign to the network")


def check_overlap(net: IPv4Network, used: Iterable[IPv4Network]) -> None:
    if any(net.overlaps(u) for u in used):
        raise Forbidden("invalid pool request: Pool overlaps with other one on this address space")


def gateway_for(net: IPv4Network, gateway: str = "") -> IPv4Address:
    if not gateway:
        return net.network_address + 1
    gw = parse_address(gateway, "gateway")
    if gw not in net or gw in (net.network_address, net.broadcast_address):
        raise InvalidParameter(f"no matching subnet for gateway {gateway}")
    return gw


def check_range(net: IPv4Network, ip_range: str) -> IPv4Network:
    """--ip-range: a part of the subnet that automatic addresses come from."""
    pool = parse_subnet(ip_range)
    if not pool.subnet_of(net):
        raise InvalidParameter(f"invalid ip-range {ip_range}: it must be within subnet {net}")
    return pool


def allocate(net: IPv4Network, gateway: IPv4Address, taken: set[str], requested: str = "",
             pool: IPv4Network | None = None) -> str:
    """The requested address if free (anywhere in the subnet), else the lowest free one of the pool."""
    if requested:
        ip = parse_address(requested)
        if ip not in net:
            raise InvalidParameter(f"no configured subnet contains IP address {requested}")
        if str(ip) in taken or ip == gateway:
            raise Forbidden(f"Address already in use: {requested}")
        return str(ip)
    for ip in (pool or net).hosts():
        if ip != gateway and str(ip) not in taken and ip not in (net.network_address, net.broadcast_address):
            return str(ip)
    raise Forbidden(f"no available IPv4 addresses on this network's address pools: {pool or net}")


def mac_for(ip: str) -> str:
    """Docker derives the MAC from the IPv4 address (02:42 + the four octets)."""
    return "02:42:" + ":".join(f"{b:02x}" for b in IPv4Address(ip).packed)
