"""Network records: networks, pools, endpoints, the create request checked, and the views the service hands out.

A stored network is the inspect document older versions wrote plus private
keys (`_device`: the bridge; `_auto`: pydock chose the pool, so it may move
it when another daemon took it), kept as JSON in the networks table so
existing data roots keep loading. The create request is checked in
`CreateRequest.checked` with libnetwork's messages, before anything is
stored. `NetworkView` and `Networking` are what inspect, list and a
container's NetworkSettings are built from at the API edge
(engine/api/network_json.py).
"""
from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from typing import Any, Generic, NewType

from engine import wire
from engine.errors import Forbidden, InvalidParameter, NotFound, Unsupported
from engine.filters import Filters
from engine.network import ipam
from engine.network.ipam import Net
from engine.timeutil import parse_rfc3339_ns, rfc3339_ns
from engine.types.network import EndpointSettings, IPAMConfig, NetworkCreateRequest

NetworkID = NewType("NetworkID", str)

PREDEFINED = ("bridge", "host", "none")
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")  # bridge device names (network names are free-form)
DOCKER_DRIVERS = ("host", "null", "macvlan", "ipvlan", "overlay")  # Docker's other built-in drivers
MTU_OPTION = "com.docker.network.driver.mtu"
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"


@dataclass
class IpamConfig:
    """One pool of a create request (empty subnet: pydock picks one)."""

    subnet: str = ""
    gateway: str = ""
    ip_range: str = ""
    aux_addresses: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, c: IPAMConfig) -> IpamConfig:
        return cls(c.subnet, c.gateway, c.ip_range, c.auxiliary_addresses or {})

    @property
    def ipv6(self) -> bool:
        """Whether the entry is IPv6's: by its subnet, else by the gateway or range it names."""
        return ":" in (self.subnet or self.gateway or self.ip_range)


@dataclass
class CreateRequest:
    """POST /networks/create, checked."""

    name: str
    options: dict[str, str]
    labels: dict[str, str]
    internal: bool
    attachable: bool
    ipam: IpamConfig | None
    ipam_options: dict[str, str] | None = None
    enable_ipv6: bool = False
    ipam6: IpamConfig | None = None  # the IPv6 pool asked for (only with enable_ipv6)

    @classmethod
    def checked(cls, body: NetworkCreateRequest) -> CreateRequest:
        name = body.name
        if not name:
            raise InvalidParameter("invalid name: name is empty")
        if not name.strip():  # libnetwork's IsValidName: any name with something besides white space
            raise InvalidParameter(f"invalid name: {name}")
        driver = body.driver or "bridge"
        if driver in DOCKER_DRIVERS:
            raise Unsupported(f"network driver {driver} is not supported by pydock; use bridge")
        if driver != "bridge":
            raise NotFound(f'plugin "{driver}" not found')
        options = body.options or {}
        _check_mtu(options)
        configs = [IpamConfig.of(c) for c in (body.ipam.config if body.ipam else None) or []]
        v4 = [c for c in configs if not c.ipv6]
        # as dockerd's ValidateIPAM: IPv6 entries of a network without IPv6 are not looked at
        v6 = [c for c in configs if c.ipv6] if body.enable_ipv6 else []
        if len(v4) > 1:
            raise InvalidParameter("invalid IPAM config: at most one IPv4 pool is supported")
        if len(v6) > 1:
            raise InvalidParameter("invalid IPAM config: at most one IPv6 pool is supported")
        return cls(name, options, body.labels or {}, body.internal, body.attachable, v4[0] if v4 else None,
                   body.ipam.options if body.ipam else None, body.enable_ipv6, v6[0] if v6 else None)

    def apply_pool(self, net: Network) -> None:
        """Give the new network the request's IPAM options, ranges and auxiliary addresses, checked against
        the pools chosen for it (libnetwork's order and messages)."""
        net.ipam_options = self.ipam_options
        if self.ipam is not None:
            self._apply(self.ipam, net.pool)
        if self.ipam6 is not None and net.pool6 is not None:
            self._apply(self.ipam6, net.pool6)

    def _apply(self, asked: IpamConfig, pool: Pool[Net]) -> None:
        taken = {str(pool.gateway)}
        for host, value in asked.aux_addresses.items():
            try:
                ip = ipaddress.ip_address(value)
            except ValueError:
                raise InvalidParameter(f"non parsable secondary ip address ({host}:{value}) passed for network "
                                       f"{self.name}") from None
            if ip not in pool.subnet:
                raise Forbidden(f"auxiliary address: ({host}:{value}) must belong to the master pool: {pool.subnet}")
            if str(ip) in taken:  # the gateway or another auxiliary address holds it already
                raise InvalidParameter(f"failed to allocate secondary ip address ({host}:{value}): "
                                       "Address already in use")
            taken.add(str(ip))
        if asked.ip_range:
            ipam.check_range(pool.subnet, asked.ip_range)
        pool.ip_range = asked.ip_range
        pool.aux_addresses = dict(asked.aux_addresses)


def _check_mtu(options: dict[str, str]) -> None:
    """libnetwork's bridge driver parses the MTU option with strconv.Atoi when the network is created."""
    value = options.get(MTU_OPTION)
    if value is not None and not re.fullmatch(r"[+-]?[0-9]+", value, re.ASCII):
        raise InvalidParameter(f"failed to parse {MTU_OPTION} value: {value} "
                               f'(strconv.Atoi: parsing "{value}": invalid syntax)')


@dataclass
class Pool(Generic[Net]):
    """A network's pool of one family (one IPAM.Config entry)."""

    subnet: Net
    gateway: str
    ip_range: str = ""  # where addresses are allocated from, when narrower than the subnet
    # host name -> address kept out of allocation (for devices on the bridge that are not containers)
    aux_addresses: dict[str, str] = field(default_factory=dict)

    def reserved(self) -> set[str]:
        """Addresses no container gets, automatically or by request: the auxiliary ones."""
        return {str(ipaddress.ip_address(a)) for a in self.aux_addresses.values()}

    def ipam_entry(self) -> dict[str, Any]:
        """The pool as an IPAM.Config entry (the stored form, and the API's)."""
        out: dict[str, Any] = {"Subnet": str(self.subnet), "Gateway": self.gateway}
        if self.ip_range:
            out["IPRange"] = self.ip_range
        if self.aux_addresses:
            out["AuxiliaryAddresses"] = self.aux_addresses
        return out

    @staticmethod
    def from_entry(doc: dict[str, Any]) -> Pool[IPv4Network]:
        return Pool(IPv4Network(doc["Subnet"]), doc["Gateway"], doc.get("IPRange") or "",
                    doc.get("AuxiliaryAddresses") or {})

    @staticmethod
    def from_entry6(doc: dict[str, Any]) -> Pool[IPv6Network]:
        return Pool(IPv6Network(doc["Subnet"]), doc["Gateway"], doc.get("IPRange") or "",
                    doc.get("AuxiliaryAddresses") or {})


@dataclass
class Network:
    """A network as the engine uses it; stored as Docker's inspect document plus `_device`, `_auto`, `_auto6`.

    `pools` is empty for host and none, and holds exactly one IPv4 pool for
    bridge networks; `pool6` is the IPv6 pool of a network with IPv6 enabled.
    `device` is the bridge's name; `auto` says pydock chose the IPv4 pool, so
    it may move it when another daemon took it while the bridge was down;
    `auto6` that it chose the IPv6 pool (no address may be asked for there).
    """

    id: NetworkID
    name: str
    driver: str
    created: str
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    internal: bool = False
    attachable: bool = False
    pools: list[Pool[IPv4Network]] = field(default_factory=list)
    device: str = ""
    auto: bool = False
    ipam_options: dict[str, str] | None = None  # IPAM.Options as created: null when none were given
    pool6: Pool[IPv6Network] | None = None
    auto6: bool = False

    @property
    def pool(self) -> Pool[IPv4Network]:
        """The IPv4 pool of a bridge network."""
        return self.pools[0]

    @property
    def predefined(self) -> bool:
        return self.name in PREDEFINED

    def to_stored(self) -> dict[str, Any]:
        """The networks table's document: Docker's inspect shape of older versions (so data roots keep
        loading) without Containers, plus the private keys."""
        return {"Name": self.name, "Id": self.id, "Created": self.created, "Scope": "local",
                "Driver": self.driver, "EnableIPv4": True, "EnableIPv6": self.pool6 is not None,
                "IPAM": {"Driver": "default", "Options": self.ipam_options,
                         "Config": [*(p.ipam_entry() for p in self.pools),
                                    *([self.pool6.ipam_entry()] if self.pool6 else [])]},
                "Internal": self.internal, "Attachable": self.attachable, "Ingress": False,
                "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Options": self.options, "Labels": self.labels,
                "_device": self.device, "_auto": self.auto, **({"_auto6": True} if self.auto6 else {})}

    @classmethod
    def from_stored(cls, doc: dict[str, Any]) -> Network:
        configs = doc["IPAM"]["Config"]
        v6 = [Pool.from_entry6(c) for c in configs if ":" in c["Subnet"]]
        return cls(NetworkID(doc["Id"]), doc["Name"], doc["Driver"], doc["Created"], doc.get("Options") or {},
                   doc.get("Labels") or {}, bool(doc.get("Internal")), bool(doc.get("Attachable")),
                   [Pool.from_entry(c) for c in configs if ":" not in c["Subnet"]], doc.get("_device") or "",
                   bool(doc.get("_auto")), doc["IPAM"].get("Options"), v6[0] if v6 else None,
                   bool(doc.get("_auto6")))


@dataclass
class Endpoint:
    """A container's membership of a network, stored as a row with `data` JSON (Docker's field names).

    `settings` is what the client asked for (IPAMConfig, Links, Aliases,
    MacAddress, DriverOpts), kept as given; `ip`, `ip6`, `endpoint_id` and
    `mac` are set while the container's network is up; `name` is the
    container's name when it joined or last started (DNS asks the container
    service for the current one).
    """

    network_id: NetworkID
    container_id: str
    ip: str | None = None
    name: str = ""
    settings: EndpointSettings = field(default_factory=EndpointSettings)
    endpoint_id: str = ""
    mac: str = ""
    ip6: str = ""

    @property
    def aliases(self) -> list[str] | None:
        return self.settings.aliases

    @property
    def requested_ip(self) -> str:
        """IPAMConfig.IPv4Address: the address asked for, "" for any."""
        return self.settings.ipam_config.ipv4_address if self.settings.ipam_config else ""

    @property
    def requested_ip6(self) -> str:
        return self.settings.ipam_config.ipv6_address if self.settings.ipam_config else ""

    @property
    def link_local_ips(self) -> list[str]:
        return (self.settings.ipam_config.link_local_ips if self.settings.ipam_config else None) or []

    def link_aliases(self) -> dict[str, str]:
        """Links on a user-defined network: alias -> the container name it stands for (this container only)."""
        return {alias: name for name, alias in (parse_link(spec) for spec in self.settings.links or [])}

    def data_json(self) -> dict[str, Any]:
        """The row's `data`: the fields in Docker's EndpointSettings names (what older versions wrote, plus
        the newer settings only when set, so their rows read back the same)."""
        s = self.settings
        out: dict[str, Any] = {"IPAMConfig": self.ipam_config(), "Aliases": s.aliases,
                               "EndpointID": self.endpoint_id, "MacAddress": self.mac, "Name": self.name}
        extra = {"Links": s.links, "DriverOpts": s.driver_opts, "DesiredMacAddress": s.mac_address,
                 "GlobalIPv6Address": self.ip6}
        out.update({k: v for k, v in extra.items() if v})
        return out

    def ipam_config(self) -> dict[str, Any] | None:
        """IPAMConfig as asked for, null when nothing was."""
        return (wire.encode(self.settings.ipam_config) or None) if self.settings.ipam_config else None

    @classmethod
    def from_row(cls, network_id: str, container_id: str, ip: str | None, data: dict[str, Any]) -> Endpoint:
        settings = wire.decode(EndpointSettings, {
            "IPAMConfig": data.get("IPAMConfig"), "Links": data.get("Links"), "Aliases": data.get("Aliases"),
            "MacAddress": data.get("DesiredMacAddress"), "DriverOpts": data.get("DriverOpts")})
        return cls(NetworkID(network_id), container_id, ip, data.get("Name") or "", settings,
                   data.get("EndpointID") or "", data.get("MacAddress") or "", data.get("GlobalIPv6Address") or "")


def parse_link(spec: str) -> tuple[str, str]:
    """dockerd's opts.ParseLink: `name[:alias]` (or inspect's `/name:/parent/alias`) -> (name, alias)."""
    if not spec:
        raise InvalidParameter("empty string specified for links")
    parts = spec.split(":")
    if len(parts) > 2:
        raise InvalidParameter(f"bad format for links: {spec}")
    if len(parts) == 1:
        return spec, spec
    if parts[0].startswith("/"):
        return parts[0][1:], parts[1].rsplit("/", 1)[-1]
    return parts[0], parts[1]


def new_network(name: str, driver: str, subnet: IPv4Network | None, gateway: str, device: str,
                options: dict[str, str], labels: dict[str, str], internal: bool) -> Network:
    """A new network with a fresh ID; its gateway is `gateway` or the subnet's first address."""
    pools = [] if subnet is None else [Pool(subnet, str(ipam.gateway_for(subnet, gateway)))]
    return Network(NetworkID(secrets.token_hex(32)), name, driver, rfc3339_ns(), options, labels, internal,
                   pools=pools, device=device)


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


@dataclass(frozen=True)
class Member:
    """An endpoint GET /networks/{id} shows under Containers, with its container's name now."""

    endpoint: Endpoint
    name: str


@dataclass(frozen=True)
class NetworkView:
    """A network as inspect shows it: with the members shown (none in a list entry)."""

    network: Network
    members: tuple[Member, ...] = ()


@dataclass(frozen=True)
class Published:
    """One published port of a running container."""

    container_port: int
    proto: str
    host_ip: str
    host_port: int


@dataclass(frozen=True)
class Attachment:
    """A container's endpoint on a network; `dns_names` are the names it answers to on a user network."""

    network: Network
    endpoint: Endpoint
    dns_names: list[str] | None


@dataclass(frozen=True)
class Networking:
    """A container's network as inspect and `ps` show it.

    `exposed` and `published` are empty unless the container runs in a
    namespace of its own: dockerd shows no ports otherwise.
    """

    container_id: str
    sandbox_key: str  # its network namespace, "" while it has none
    exposed: tuple[str, ...]
    published: tuple[Published, ...]
    attachments: tuple[Attachment, ...]
