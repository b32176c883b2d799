"""Docker's JSON for networks and for a container's networking, built from the network service's records.

GET /networks and /networks/{id}, and the parts of container inspect and
`ps` that networking owns (NetworkSettings, its Networks entries, Ports):
every wire field name of the network area is here, at the API edge; the
service hands out `NetworkView` and `Networking` records.
"""
from __future__ import annotations

import hashlib
from typing import Any

from engine.network.ports import split_port
from engine.network.types import Attachment, Network, Networking, NetworkView

Json = dict[str, Any]
# Docker's PortMap: "80/tcp" -> [{"HostIp": ..., "HostPort": ...}]
PortMap = dict[str, list[dict[str, str]] | None]


def network_json(view: NetworkView) -> Json:
    """GET /networks/{id}; a list entry is the same with no members."""
    net = view.network
    prefix = str(net.pool.subnet.prefixlen) if net.pools else ""
    prefix6 = str(net.pool6.subnet.prefixlen) if net.pool6 else ""
    containers = {
        m.endpoint.container_id: {
            "Name": m.name, "EndpointID": m.endpoint.endpoint_id, "MacAddress": m.endpoint.mac,
            "IPv4Address": f"{m.endpoint.ip}/{prefix}" if m.endpoint.ip else "",
            "IPv6Address": f"{m.endpoint.ip6}/{prefix6}" if m.endpoint.ip and m.endpoint.ip6 else ""}
        for m in view.members}
    return {**_network_fields(net), "Containers": containers}


def _network_fields(net: Network) -> Json:
    return {"Name": net.name, "Id": net.id, "Created": net.created, "Scope": "local",
            "Driver": net.driver, "EnableIPv4": True, "EnableIPv6": net.pool6 is not None,
            "IPAM": {"Driver": "default", "Options": net.ipam_options,
                     "Config": [*(p.ipam_entry() for p in net.pools),
                                *([net.pool6.ipam_entry()] if net.pool6 else [])]},
            "Internal": net.internal, "Attachable": net.attachable, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Options": net.options, "Labels": net.labels}


def port_map(n: Networking) -> PortMap:
    """NetworkSettings.Ports: every exposed port (null when not published) with its host bindings."""
    out: PortMap = {port: None for port in n.exposed}
    for p in n.published:
        bindings = out.get(f"{p.container_port}/{p.proto}") or []
        bindings.append({"HostIp": p.host_ip, "HostPort": str(p.host_port)})
        out[f"{p.container_port}/{p.proto}"] = bindings
    return out


def ports_summary(n: Networking) -> list[Json]:
    """The `Ports` of GET /containers/json (the PORTS column of `docker ps`)."""
    published = port_map(n)
    out: list[Json] = []
    for port in sorted(published):
        cport, proto = split_port(port)
        binds = published.get(port)
        if not binds:
            out.append({"PrivatePort": cport, "Type": proto})
        for b in binds or []:
            out.append({"IP": b["HostIp"], "PrivatePort": cport, "PublicPort": int(b["HostPort"]), "Type": proto})
    return out


def networks_json(n: Networking) -> Json:
    """NetworkSettings.Networks: an EndpointSettings per network, by network name."""
    return {a.network.name: endpoint_json(a) for a in n.attachments}


def settings_json(n: Networking) -> Json:
    """Container inspect's NetworkSettings; the top-level address fields are the default bridge's, as dockerd's."""
    networks = networks_json(n)
    out: Json = {"Bridge": "", "SandboxID": hashlib.sha256(n.container_id.encode()).hexdigest() if n.sandbox_key else "",
                 "SandboxKey": n.sandbox_key, "HairpinMode": False,
                 "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": port_map(n),
                 "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None}
    legacy = networks.get("bridge") or {}
    for key in ("EndpointID", "Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen", "IPAddress",
                "IPPrefixLen", "IPv6Gateway", "MacAddress"):
        out[key] = legacy.get(key, 0 if key.endswith("PrefixLen") else "")
    out["Networks"] = networks
    return out


def endpoint_json(a: Attachment) -> Json:
    """One entry of a container's NetworkSettings.Networks (Docker's EndpointSettings)."""
    net, ep = a.network, a.endpoint
    up = bool(ep.ip)
    pool = net.pool if net.pools else None
    v6 = net.pool6 if up and ep.ip6 else None
    s = ep.settings
    # while the container is down, MacAddress is the one asked for (dockerd's DesiredMacAddress)
    return {"IPAMConfig": ep.ipam_config(), "Links": s.links, "Aliases": s.aliases,
            "MacAddress": ep.mac if up else s.mac_address, "DriverOpts": s.driver_opts, "GwPriority": 0,
            "NetworkID": net.id, "EndpointID": ep.endpoint_id if up else "",
            "Gateway": pool.gateway if up and pool else "", "IPAddress": ep.ip or "",
            "IPPrefixLen": pool.subnet.prefixlen if up and pool else 0,
            "IPv6Gateway": v6.gateway if v6 else "", "GlobalIPv6Address": ep.ip6 if v6 else "",
            "GlobalIPv6PrefixLen": v6.subnet.prefixlen if v6 else 0, "DNSNames": a.dns_names if up else None}
