"""Endpoint settings: how a container joins a network, at create (NetworkingConfig) and on connect."""
from __future__ import annotations

from dataclasses import dataclass

from engine.wire import BOOL, INT, STRING, STRING_MAP, STRINGS, List, Map, Ptr, wfield


@dataclass(slots=True)
class EndpointIPAMConfig:
    ipv4_address: str = wfield("IPv4Address", STRING, omitempty=True)
    ipv6_address: str = wfield("IPv6Address", STRING, omitempty=True)
    link_local_ips: list[str] | None = wfield("LinkLocalIPs", STRINGS, omitempty=True)


@dataclass(slots=True)
class EndpointSettings:
    """A request's settings for one network (the address fields are the daemon's to fill, ignored here)."""

    ipam_config: EndpointIPAMConfig | None = wfield("IPAMConfig", Ptr(EndpointIPAMConfig))
    links: list[str] | None = wfield("Links", STRINGS)
    aliases: list[str] | None = wfield("Aliases", STRINGS)
    mac_address: str = wfield("MacAddress", STRING)
    driver_opts: dict[str, str] | None = wfield("DriverOpts", STRING_MAP)
    network_id: str = wfield("NetworkID", STRING)
    endpoint_id: str = wfield("EndpointID", STRING)
    gateway: str = wfield("Gateway", STRING)
    ip_address: str = wfield("IPAddress", STRING)
    ip_prefix_len: int = wfield("IPPrefixLen", INT)
    ipv6_gateway: str = wfield("IPv6Gateway", STRING)
    global_ipv6_address: str = wfield("GlobalIPv6Address", STRING)
    global_ipv6_prefix_len: int = wfield("GlobalIPv6PrefixLen", INT)


@dataclass(slots=True)
class NetworkingConfig:
    endpoints_config: dict[str, EndpointSettings] | None = wfield("EndpointsConfig", Map(EndpointSettings))


@dataclass(slots=True)
class NetworkConnect:
    container: str = wfield("Container", STRING)
    endpoint_config: EndpointSettings | None = wfield("EndpointConfig", Ptr(EndpointSettings))


@dataclass(slots=True)
class NetworkDisconnect:
    container: str = wfield("Container", STRING)
    force: bool = wfield("Force", BOOL)


@dataclass(slots=True)
class IPAMConfig:
    subnet: str = wfield("Subnet", STRING, omitempty=True)
    ip_range: str = wfield("IPRange", STRING, omitempty=True)
    gateway: str = wfield("Gateway", STRING, omitempty=True)
    auxiliary_addresses: dict[str, str] | None = wfield("AuxiliaryAddresses", STRING_MAP, omitempty=True)


@dataclass(slots=True)
class IPAM:
    driver: str = wfield("Driver", STRING)
    options: dict[str, str] | None = wfield("Options", STRING_MAP)
    config: list[IPAMConfig] | None = wfield("Config", List(IPAMConfig))


@dataclass(slots=True)
class ConfigReference:
    network: str = wfield("Network", STRING)


@dataclass(slots=True)
class NetworkCreateRequest:
    """POST /networks/create."""

    name: str = wfield("Name", STRING)
    check_duplicate: bool = wfield("CheckDuplicate", BOOL)
    driver: str = wfield("Driver", STRING)
    scope: str = wfield("Scope", STRING)
    enable_ipv6: bool = wfield("EnableIPv6", BOOL)
    ipam: IPAM | None = wfield("IPAM", Ptr(IPAM))
    internal: bool = wfield("Internal", BOOL)
    attachable: bool = wfield("Attachable", BOOL)
    ingress: bool = wfield("Ingress", BOOL)
    config_only: bool = wfield("ConfigOnly", BOOL)
    config_from: ConfigReference | None = wfield("ConfigFrom", Ptr(ConfigReference))
    options: dict[str, str] | None = wfield("Options", STRING_MAP)
    labels: dict[str, str] | None = wfield("Labels", STRING_MAP)
