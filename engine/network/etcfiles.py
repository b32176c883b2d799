"""A container's /etc/hostname, /etc/hosts and /etc/resolv.conf, rendered from its record.

These are pure text renderings (the service supplies the container's address
and DNS server), kept apart so that Docker's rules for them (host-network
containers see the host's files, `--add-host` and `host-gateway`, the
embedded DNS on user-defined networks with `ndots:0`) can be read and tested
without any kernel objects.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from ipaddress import IPv4Address

from engine.errors import InvalidParameter
from engine.network.dns import host_nameservers
from engine.network.peers import NetworkedContainer
from engine.types.container import HostConfig

HOSTS_BASE = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
              "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
FALLBACK_DNS = ["8.8.8.8", "8.8.4.4"]


def render(c: NetworkedContainer, address: str, bridge_gateway: Callable[[], str], embedded_dns: str) -> dict[str, str]:
    """The files by name, for a container whose first endpoint has `address` ("" when it has none).

    `bridge_gateway` gives the default bridge's gateway for `host-gateway`
    (asked only when used); `embedded_dns` is the embedded DNS server's address
    for a container on a user-defined network, else "".
    """
    cfg, host = c.config, c.host_config
    mode = host.network_mode
    hostname = os.uname().nodename if mode == "host" else cfg.hostname
    if mode == "host":
        hosts = _read("/etc/hosts") or HOSTS_BASE
    else:
        hosts = HOSTS_BASE
        for h in host.extra_hosts or []:
            name, addr = parse_extra_host(h)
            hosts += f"{bridge_gateway() if addr == 'host-gateway' else addr}\t{name}\n"
        fqdn = f"{hostname}.{cfg.domainname}\t" if cfg.domainname else ""
        hosts += f"{address}\t{fqdn}{hostname}\n" if address else ""
    return {"hostname": hostname + "\n", "hosts": hosts, "resolv.conf": _resolv_conf(host, embedded_dns)}


def _resolv_conf(host: HostConfig, embedded_dns: str) -> str:
    host_text = _read("/etc/resolv.conf")
    search = host.dns_search or [w for line in host_text.splitlines() if line.startswith("search")
                                       for w in line.split()[1:]]
    options = list(host.dns_options or [])
    if host.network_mode == "host" and not host.dns:
        return host_text
    if embedded_dns:
        servers = [embedded_dns]
        options = options or ["ndots:0"]
    else:
        servers = host.dns or [s for s in host_nameservers() if not s.startswith("127.")] or FALLBACK_DNS
    text = "".join(f"nameserver {s}\n" for s in servers)
    text += f"search {' '.join(search)}\n" if search else ""
    text += f"options {' '.join(options)}\n" if options else ""
    return text


def parse_extra_host(spec: str) -> tuple[str, str]:
    """`--add-host name:ip` (or name=ip); the address may be `host-gateway`."""
    name, sep, addr = spec.partition(":") if "=" not in spec else spec.partition("=")
    if not sep or not name or not addr:
        raise InvalidParameter(f"invalid extra host: {spec}")
    if addr != "host-gateway":
        try:
            IPv4Address(addr)
        except ValueError:
            if ":" not in addr:
                raise InvalidParameter(f'invalid IP address in add-host: "{addr}"') from None
    return name, addr


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""
