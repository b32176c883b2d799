"""Network records and their Docker JSON: the create body parsed, and every network JSON shape built, here only.

A stored network is Docker's inspect document plus private keys (`_device`:
the bridge; `_auto`: pydock chose the pool, so it may move it when another
daemon took it), kept as JSON in the networks table so existing data roots
keep loading; `network_json` drops the private keys and adds `Containers`.
The create request is checked in `CreateRequest.checked` with
libnetwork's messages, before anything is stored. The views the container
routes show (inspect's NetworkSettings, EndpointSettings) are built here too,
so every wire field name of the network area is in this one file.
"""
from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from typing import Any, NewType

from engine.errors import Forbidden, InvalidParameter, NotFound, Unsupported
from engine.filters import Filters
from engine.network import ipam
from engine.timeutil import parse_rfc3339_ns, rfc3339_ns
from engine.types.network import NetworkCreateRequest

NetworkID = NewType("NetworkID", str)

PREDEFINED = ("bridge", "host", "none")
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
DOCKER_DRIVERS = ("host", "null", "macvlan", "ipvlan", "overlay")  # Docker's other built-in drivers
MTU_OPTION = "com.docker.network.driver.mtu"
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"


@dataclass
class IpamConfig:
    """The one IPv4 pool of a create request (empty subnet: pydock picks one)."""

    subnet: str = ""
    gateway: str = ""
    ip_range: str = ""
    aux_addresses: dict[str, str] = field(default_factory=dict)


@dataclass
class CreateRequest:
    """POST /networks/create, checked."""

    name: str
    options: dict[str, str]
    labels: dict[str, str]
    internal: bool
    attachable: bool
    ipam: IpamConfig | None

    @classmethod
    def checked(cls, body: NetworkCreateRequest) -> CreateRequest:
        name = body.name
        if not name:
            raise InvalidParameter("invalid name: name is empty")
        if not NAME_RE.match(name) or len(name) > 255:
            raise InvalidParameter(f'invalid network name "{name[:255]}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
        driver = body.driver or "bridge"
        if driver in DOCKER_DRIVERS:
            raise Unsupported(f"network driver {driver} is not supported by pydock; use bridge")
        if driver != "bridge":
            raise NotFound(f'plugin "{driver}" not found')
        if body.enable_ipv6:
            raise Unsupported("IPv6 networks are not supported")
        options = body.options or {}
        _check_mtu(options)
        configs = (body.ipam.config if body.ipam else None) or []
        if len(configs) > 1:
            raise InvalidParameter("invalid IPAM config: at most one IPv4 pool is supported")
        pool = None
        if configs:
            c = configs[0]
            pool = IpamConfig(c.subnet, c.gateway, c.ip_range, c.auxiliary_addresses or {})
        return cls(name, options, body.labels or {}, body.internal, body.attachable, pool)

    def check_pool(self, subnet: IPv4Network) -> None:
        """The pool's auxiliary addresses and range against the chosen subnet (libnetwork's order)."""
        if self.ipam is None:
            return
        for host, value in self.ipam.aux_addresses.items():
            try:
                ip = ipaddress.ip_address(value)
            except ValueError:
                raise InvalidParameter(f"non parsable secondary ip address ({host}:{value}) passed for network "
                                       f"{self.name}") from None
            if ip not in subnet:
                raise Forbidden(f"auxiliary address: ({host}:{value}) must belong to the master pool: {subnet}")
        if self.ipam.ip_range:
            ipam.check_range(subnet, self.ipam.ip_range)


def _check_mtu(options: dict[str, str]) -> None:
    """libnetwork's bridge driver parses the MTU option with strconv.Atoi when the network is created."""
    value = options.get(MTU_OPTION)
    if value is not None and not re.fullmatch(r"[+-]?[0-9]+", value, re.ASCII):
        raise InvalidParameter(f"failed to parse {MTU_OPTION} value: {value} "
                               f'(strconv.Atoi: parsing "{value}": invalid syntax)')


@dataclass
class Pool:
    """A network's IPv4 pool (one IPAM.Config entry)."""

    subnet: IPv4Network
    gateway: str
    ip_range: str = ""  # where addresses are allocated from, when narrower than the subnet

    def to_docker(self) -> dict[str, str]:
        out = {"Subnet": str(self.subnet), "Gateway": self.gateway}
        if self.ip_range:
            out["IPRange"] = self.ip_range
        return out

    @classmethod
    def from_docker(cls, doc: dict[str, str]) -> Pool:
        return cls(IPv4Network(doc["Subnet"]), doc["Gateway"], doc.get("IPRange") or "")


@dataclass
class Network:
    """A network as the engine uses it; stored as Docker's inspect document plus `_device` and `_auto`.

    `pools` is empty for host and none, and holds exactly one pool for bridge
    networks. `device` is the bridge's name; `auto` says pydock chose the pool,
    so it may move it when another daemon took it while the bridge was down.
    """

    id: NetworkID
    name: str
    driver: str
    created: str
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    internal: bool = False
    attachable: bool = False
    pools: list[Pool] = field(default_factory=list)
    device: str = ""
    auto: bool = False

    @property
    def pool(self) -> Pool:
        """The pool of a bridge network."""
        return self.pools[0]

    @property
    def predefined(self) -> bool:
        return self.name in PREDEFINED

    def to_docker(self, containers: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
        """Docker's inspect document (list entries have empty Containers)."""
        return {"Name": self.name, "Id": self.id, "Created": self.created, "Scope": "local",
                "Driver": self.driver, "EnableIPv4": True, "EnableIPv6": False,
                "IPAM": {"Driver": "default", "Options": None if self.predefined else {},
                         "Config": [p.to_docker() for p in self.pools]},
                "Internal": self.internal, "Attachable": self.attachable, "Ingress": False,
                "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Options": self.options, "Labels": self.labels,
                "Containers": containers or {}}

    def to_stored(self) -> dict[str, Any]:
        doc = self.to_docker()
        del doc["Containers"]
        return {**doc, "_device": self.device, "_auto": self.auto}

    @classmethod
    def from_stored(cls, doc: dict[str, Any]) -> Network:
        return cls(NetworkID(doc["Id"]), doc["Name"], doc["Driver"], doc["Created"], doc.get("Options") or {},
                   doc.get("Labels") or {}, bool(doc.get("Internal")), bool(doc.get("Attachable")),
                   [Pool.from_docker(c) for c in doc["IPAM"]["Config"]], doc.get("_device") or "",
                   bool(doc.get("_auto")))


@dataclass
class Endpoint:
    """A container's membership of a network, stored as a row with `data` JSON (Docker's field names).

    `ip`, `endpoint_id` and `mac` are set while the container's network is up;
    `name` is the container's name when it joined or last started (DNS asks
    the container service for the current one).
    """

    network_id: NetworkID
    container_id: str
    ip: str | None = None
    name: str = ""
    aliases: list[str] | None = None
    requested_ip: str = ""  # IPAMConfig.IPv4Address: the address asked for, "" for any
    endpoint_id: str = ""
    mac: str = ""

    def data_json(self) -> dict[str, Any]:
        """The row's `data`: the fields in Docker's EndpointSettings names."""
        return {"IPAMConfig": self.ipam_config(), "Aliases": self.aliases, "EndpointID": self.endpoint_id,
                "MacAddress": self.mac, "Name": self.name}

    def ipam_config(self) -> dict[str, str] | None:
        return {"IPv4Address": self.requested_ip} if self.requested_ip else None

    @classmethod
    def from_row(cls, network_id: str, container_id: str, ip: str | None, data: dict[str, Any]) -> Endpoint:
        return cls(NetworkID(network_id), container_id, ip, data.get("Name") or "", data.get("Aliases"),
                   (data.get("IPAMConfig") or {}).get("IPv4Address") or "", data.get("EndpointID") or "",
                   data.get("MacAddress") or "")


def new_network(name: str, driver: str, subnet: IPv4Network | None, gateway: str, device: str,
                options: dict[str, str], labels: dict[str, str], internal: bool) -> Network:
    """A new network with a fresh ID; its gateway is `gateway` or the subnet's first address."""
    pools = [] if subnet is None else [Pool(subnet, str(ipam.gateway_for(subnet, gateway)))]
    return Network(NetworkID(secrets.token_hex(32)), name, driver, rfc3339_ns(), options, labels, internal,
                   pools=pools, device=device)


def network_json(net: Network, endpoints: list[Endpoint], shown: Callable[[Endpoint], bool],
                 name_of: Callable[[Endpoint], str]) -> dict[str, Any]:
    """GET /networks/{id} (and, with no endpoints, an entry of GET /networks).

    `shown` says which endpoints appear under Containers; `name_of` gives an
    endpoint's container name now.
    """
    prefix = str(net.pool.subnet.prefixlen) if net.pools else ""
    return net.to_docker({
        ep.container_id: {"Name": name_of(ep), "EndpointID": ep.endpoint_id, "MacAddress": ep.mac,
                          "IPv4Address": f"{ep.ip}/{prefix}" if ep.ip else "", "IPv6Address": ""}
        for ep in endpoints if shown(ep)})


# the keys GET /networks takes (dockerd's acceptedFilters), plus prune's `until`
NETWORK_FILTERS = frozenset({"dangling", "driver", "id", "label", "name", "scope", "type", "until"})


def matches(net: Network, filters: Filters, in_use: Callable[[str], bool]) -> bool:
    """Whether a network passes GET /networks' filters (name, id, driver, scope, type, label, dangling, until)."""
    if "dangling" in filters:
        dangling = not in_use(net.id) and not net.predefined
        if not any((v in ("true", "1")) == dangling for v in filters.get("dangling")):
            return False
    return (filters.contains("name", net.name) and filters.prefix("id", net.id)
            and filters.exact("driver", net.driver) and filters.exact("scope", "local")
            and filters.exact("type", "builtin" if net.predefined else "custom")
            and filters.labels("label", net.labels)
            and all(parse_rfc3339_ns(net.created) < until for until in filters.times("until")))


def settings_json(cid: str, sandbox: dict[str, Any] | None, ports: dict[str, Any],
                  networks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Container `cid`'s inspect NetworkSettings; `networks` are endpoint_json views by network name."""
    out = {"Bridge": "", "SandboxID": hashlib.sha256(cid.encode()).hexdigest() if sandbox else "",
           "SandboxKey": sandbox["path"] if sandbox else "", "HairpinMode": False,
           "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": ports,
           "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None}
    legacy = networks.get("bridge") or {}
    for key in ("EndpointID", "Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen", "IPAddress",
                "IPPrefixLen", "IPv6Gateway", "MacAddress"):
        out[key] = legacy.get(key, 0 if key.endswith("PrefixLen") else "")
    out["Networks"] = networks
    return out


def endpoint_json(net: Network, ep: Endpoint, cid: str, name: str) -> dict[str, Any]:
    """One entry of container `cid`'s NetworkSettings.Networks (Docker's EndpointSettings)."""
    up = bool(ep.ip)
    pool = net.pool if net.pools else None
    user = not net.predefined
    dns_names = [name.lstrip("/"), cid[:12], *(ep.aliases or [])] if user and up else None
    return {"IPAMConfig": ep.ipam_config(), "Links": None, "Aliases": ep.aliases,
            "MacAddress": ep.mac if up else "", "DriverOpts": None, "GwPriority": 0,
            "NetworkID": net.id, "EndpointID": ep.endpoint_id if up else "",
            "Gateway": pool.gateway if up and pool else "", "IPAddress": ep.ip or "",
            "IPPrefixLen": pool.subnet.prefixlen if up and pool else 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": dns_names}
