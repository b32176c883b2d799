"""IP address management: subnets for networks, addresses for endpoints, in both families.

Pure functions over what the caller knows is taken (stored endpoints, host
routes), so allocation is deterministic and unit-testable; the caller's SQLite
UNIQUE(network_id, ip) constraint (IPv4) and its serialized transactions
(IPv6, kept in the row's data) are what make a double grant impossible.
The functions that work on either family take and return the same family
(the `Net` type variable), so an IPv6 address can never land in an IPv4 pool.
"""
from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Iterator
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import TypeVar

from engine.errors import Forbidden, InvalidParameter

Net = TypeVar("Net", IPv4Network, IPv6Network)
ULA_PREFIX = IPv6Network("fd00::/8")


def parse_any_subnet(text: str) -> IPv4Network | IPv6Network:
    """A pool's subnet in canonical form, of either family; too small a subnet holds no container."""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidParameter(f"invalid subnet {text}: invalid CIDR address: {text}") from None
    if ipaddress.ip_interface(text).ip != net.network_address:  # host bits set (other spellings are fine)
        raise InvalidParameter(f"invalid subnet {text}: it should be {net}")
    if net.prefixlen > net.max_prefixlen - 2:
        raise InvalidParameter(f"invalid subnet {text}: too small for a network")
    return net


def parse_subnet(text: str) -> IPv4Network:
    net = parse_any_subnet(text)
    if not isinstance(net, IPv4Network):
        raise InvalidParameter(f"invalid subnet {text}: not an IPv4 subnet")
    return net


def parse_subnet6(text: str) -> IPv6Network:
    net = parse_any_subnet(text)
    if not isinstance(net, IPv6Network):
        raise InvalidParameter(f"invalid subnet {text}: not an IPv6 subnet")
    return net


def parse_address(text: str, what: str = "IP address") -> IPv4Address:
    try:
        return IPv4Address(text)
    except ValueError:
        raise InvalidParameter(f"invalid {what}: {text}") from None


def parse_address6(text: str, what: str = "IPv6 address") -> IPv6Address:
    try:
        return IPv6Address(text)
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


def ula_base(seed: str) -> IPv6Network:
    """The daemon's IPv6 default pool, as current dockerd derives it from its host ID: fd00::/8 with a
    40-bit global ID (the low 40 bits of the seed's SHA-256) makes a /48, split into /64 networks."""
    gid = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") & ((1 << 40) - 1)
    return IPv6Network((int(ULA_PREFIX.network_address) + (gid << 80), 48))


def pick_subnet6(used: Iterable[IPv6Network], base: IPv6Network) -> IPv6Network:
    """The first /64 of `base` that overlaps nothing in `used`."""
    used = [u for u in used if u.overlaps(base)]
    for net in base.subnets(new_prefix=64):
        if not any(net.overlaps(u) for u in used):
            return net
    raise Forbidden("could not find an available, non-overlapping IPv6 address pool among the defaults "
                    "to assign to the network")


def check_overlap(net: Net, used: Iterable[Net]) -> None:
    if any(net.overlaps(u) for u in used):
        raise Forbidden("invalid pool request: Pool overlaps with other one on this address space")


def _address(net: Net, text: str, what: str) -> IPv4Address | IPv6Address:
    """An address of `net`'s family."""
    if isinstance(net, IPv4Network):
        return parse_address(text, what)
    return parse_address6(text, what)


def gateway_for(net: Net, gateway: str = "") -> IPv4Address | IPv6Address:
    if not gateway:
        return net.network_address + 1
    try:
        gw = _address(net, gateway, "gateway")
    except InvalidParameter:
        raise InvalidParameter(f"no matching subnet for gateway {gateway}") from None
    if gw not in net or gw in (net.network_address, net.broadcast_address):
        raise InvalidParameter(f"no matching subnet for gateway {gateway}")
    return gw


def check_range(net: Net, ip_range: str) -> Net:
    """--ip-range: a part of the subnet that automatic addresses come from."""
    pool = parse_any_subnet(ip_range)
    if isinstance(net, IPv4Network) and isinstance(pool, IPv4Network) and pool.subnet_of(net):
        return pool
    if isinstance(net, IPv6Network) and isinstance(pool, IPv6Network) and pool.subnet_of(net):
        return pool
    raise InvalidParameter(f"invalid ip-range {ip_range}: it must be within subnet {net}")


def allocate(net: Net, gateway: IPv4Address | IPv6Address, taken: set[str], requested: str = "",
             pool: Net | None = None) -> str:
    """The requested address if free (anywhere in the subnet), else the lowest free one of the pool."""
    if requested:
        ip = _address(net, requested, "IP address")
        if ip not in net:
            raise InvalidParameter(f"no configured subnet contains IP address {requested}")
        if str(ip) in taken or ip == gateway:
            raise Forbidden(f"Address already in use: {requested}")
        return str(ip)
    for ip in (pool or net).hosts():
        if ip != gateway and str(ip) not in taken and ip not in (net.network_address, net.broadcast_address):
            return str(ip)
    family = "IPv4" if isinstance(net, IPv4Network) else "IPv6"
    raise Forbidden(f"no available {family} addresses on this network's address pools: {pool or net}")


def mac_for(ip: str) -> str:
    """Docker derives the MAC from the IPv4 address (02:42 + the four octets)."""
    return "02:42:" + ":".join(f"{b:02x}" for b in IPv4Address(ip).packed)
