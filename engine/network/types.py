"""Network records and their Docker JSON: the create body parsed, and every network JSON shape built, here only.

A stored network is Docker's inspect document plus private keys (`_device`:
the bridge; `_auto`: pydock chose the pool, so it may move it when another
daemon took it), kept as JSON in the networks table so existing data roots
keep loading; `network_json` drops the private keys and adds `Containers`.
The create request is checked in `CreateRequest.from_docker` with
libnetwork's messages, before anything is stored. The views the container
routes show (inspect's NetworkSettings, EndpointSettings) are built here too,
so every wire field name of the network area is in this one file.
"""
from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from typing import Any, NewType

from engine.errors import EngineError, Forbidden, InvalidParameter, NotFound, NotImplementedYet
from engine.network import ipam
from engine.network.store import EndpointRow
from engine.timeutil import parse_api_time, parse_rfc3339_ns, rfc3339_ns

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
    def from_docker(cls, body: dict[str, Any]) -> CreateRequest:
        name = body.get("Name") or ""
        if not name:
            raise InvalidParameter("invalid name: name is empty")
        if not NAME_RE.match(name) or len(name) > 255:
            raise InvalidParameter(f'invalid network name "{name[:255]}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
        driver = body.get("Driver") or "bridge"
        if driver in DOCKER_DRIVERS:
            raise NotImplementedYet(f"network driver {driver} is not supported by pydock; use bridge")
        if driver != "bridge":
            raise NotFound(f'plugin "{driver}" not found')
        if body.get("EnableIPv6"):
            raise NotImplementedYet("IPv6 networks are not supported")
        options = body.get("Options") or {}
        _check_mtu(options)
        configs = (body.get("IPAM") or {}).get("Config") or []
        if len(configs) > 1:
            raise InvalidParameter("invalid IPAM config: at most one IPv4 pool is supported")
        pool = None
        if configs:
            c = configs[0]
            pool = IpamConfig(str(c.get("Subnet") or ""), str(c.get("Gateway") or ""), str(c.get("IPRange") or ""),
                              c.get("AuxiliaryAddresses") or {})
        return cls(name, options, body.get("Labels") or {}, bool(body.get("Internal")),
                   bool(body.get("Attachable")), pool)

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


def new_network(name: str, driver: str, subnet: IPv4Network | None, gateway: str, device: str,
                options: dict[str, str], labels: dict[str, str], internal: bool) -> dict[str, Any]:
    """A network's stored document (Docker's inspect shape without Containers, plus `_device`)."""
    config = [] if subnet is None else [{"Subnet": str(subnet), "Gateway": str(ipam.gateway_for(subnet, gateway))}]
    return {"Name": name, "Id": secrets.token_hex(32), "Created": rfc3339_ns(), "Scope": "local",
            "Driver": driver, "EnableIPv4": True, "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None if name in PREDEFINED else {}, "Config": config},
            "Internal": internal, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False, "Options": options, "Labels": labels, "_device": device}


def network_json(net: dict[str, Any], endpoints: list[EndpointRow], shown: Callable[[EndpointRow], bool],
                 name_of: Callable[[EndpointRow], str]) -> dict[str, Any]:
    """GET /networks/{id} (and, with no endpoints, an entry of GET /networks).

    `shown` says which endpoints appear under Containers; `name_of` gives an
    endpoint's container name now.
    """
    out = {k: v for k, v in net.items() if not k.startswith("_")}
    prefix = net["IPAM"]["Config"][0]["Subnet"].split("/")[1] if net["IPAM"]["Config"] else ""
    out["Containers"] = {
        ep["container_id"]: {"Name": name_of(ep), "EndpointID": ep["data"]["EndpointID"],
                             "MacAddress": ep["data"]["MacAddress"],
                             "IPv4Address": f"{ep['ip']}/{prefix}" if ep["ip"] else "", "IPv6Address": ""}
        for ep in endpoints if shown(ep)}
    return out


def matches(net: dict[str, Any], filters: dict[str, list[str]], in_use: Callable[[str], bool]) -> bool:
    """Whether a network passes GET /networks' filters (name, id, driver, scope, type, label, dangling, until)."""
    for key, values in filters.items():
        if not values:
            continue
        if key == "name":
            ok = any(v in net["Name"] for v in values)
        elif key == "id":
            ok = any(net["Id"].startswith(v) for v in values)
        elif key == "driver":
            ok = net["Driver"] in values
        elif key == "scope":
            ok = "local" in values
        elif key == "type":
            ok = ("builtin" if net["Name"] in PREDEFINED else "custom") in values
        elif key == "label":
            ok = all(_label_matches(net["Labels"], val) for val in values)
        elif key == "dangling":
            dangling = not in_use(net["Id"]) and net["Name"] not in PREDEFINED
            ok = any((v in ("true", "1")) == dangling for v in values)
        elif key == "until":
            ok = all(parse_rfc3339_ns(net["Created"]) < _until_ns(v) for v in values)
        else:
            raise InvalidParameter(f"invalid filter '{key}'")
        if not ok:
            return False
    return True


def settings_json(c: dict[str, Any], sandbox: dict[str, Any] | None, ports: dict[str, Any],
                  networks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A container inspect's NetworkSettings; `networks` are endpoint_json views by network name."""
    out = {"Bridge": "", "SandboxID": hashlib.sha256(c["Id"].encode()).hexdigest() if sandbox else "",
           "SandboxKey": sandbox["path"] if sandbox else "", "HairpinMode": False,
           "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": ports,
           "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None}
    legacy = networks.get("bridge") or {}
    for key in ("EndpointID", "Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen", "IPAddress",
                "IPPrefixLen", "IPv6Gateway", "MacAddress"):
        out[key] = legacy.get(key, 0 if key.endswith("PrefixLen") else "")
    out["Networks"] = networks
    return out


def endpoint_json(net: dict[str, Any], ep: EndpointRow, c: dict[str, Any]) -> dict[str, Any]:
    """One entry of NetworkSettings.Networks (Docker's EndpointSettings)."""
    d = ep["data"]
    up = bool(ep["ip"])
    cfg = net["IPAM"]["Config"][0] if net["IPAM"]["Config"] else {}
    user = net["Name"] not in PREDEFINED
    dns_names = [c["Name"].lstrip("/"), c["Id"][:12], *(d.get("Aliases") or [])] if user and up else None
    return {"IPAMConfig": d.get("IPAMConfig"), "Links": None, "Aliases": d.get("Aliases"),
            "MacAddress": d["MacAddress"] if up else "", "DriverOpts": None, "GwPriority": 0,
            "NetworkID": net["Id"], "EndpointID": d["EndpointID"] if up else "",
            "Gateway": cfg.get("Gateway", "") if up else "", "IPAddress": ep["ip"] or "",
            "IPPrefixLen": int(cfg["Subnet"].split("/")[1]) if up and cfg else 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": dns_names}


def _label_matches(labels: dict[str, str], spec: str) -> bool:
    key, has_value, value = spec.partition("=")
    return key in labels and (not has_value or labels[key] == value)


def _until_ns(value: str) -> int:
    """An `until` filter: a timestamp, or a duration before now ("24h", "90m", "30s") as Docker accepts."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([hms])", value.strip())
    if m:
        return time.time_ns() - int(float(m.group(1)) * {"h": 3600, "m": 60, "s": 1}[m.group(2)] * 1e9)
    try:
        return parse_api_time(value)
    except (ValueError, EngineError):
        raise InvalidParameter(f"invalid filter 'until={value}'") from None
