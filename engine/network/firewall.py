"""Firewall rules (NAT, published ports, isolation) as one nftables table per address family.

The whole `ip` table (and the `ip6` one for networks with IPv6) is rendered
from stored state and replaced in a single `nft -f` transaction ("add table;
delete table; table {...}"), so applying it is idempotent by construction: a
daemon restart or crash can neither duplicate a rule nor leave a half-applied
set, and rules of containers that no longer run vanish at the next render.
One table name per daemon instance keeps several daemons on one host (tests)
out of each other's way.
"""
from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass

from engine.errors import InternalError

NFT = "nft"
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Bridge:
    device: str
    subnet: str
    masquerade: bool = True
    subnet6: str = ""  # the IPv6 subnet of a network with IPv6, masqueraded as dockerd does by default


@dataclass(frozen=True)
class PortRule:
    """One published port: host_ip "" or "0.0.0.0" means every host address."""

    proto: str
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int
    bridge: str


def render(table: str, bridges: list[Bridge], ports: list[PortRule]) -> str:
    devices = ", ".join(f'"{b.device}"' for b in bridges)
    port_rules = []
    for p in ports:
        dst = f"ip daddr {p.host_ip} " if p.host_ip not in ("", "0.0.0.0") else ""
        port_rules.append(f"{dst}{p.proto} dport {p.host_port} dnat to {p.container_ip}:{p.container_port}")
    nat_out = []
    isolation = []
    for b in bridges:
        if b.masquerade:
            nat_out.append(f'ip saddr {b.subnet} oifname != "{b.device}" masquerade')
        # published ports reached on 127.0.0.1 (route_localnet) must not answer to the container's own loopback,
        # and one reached from a container on the same bridge (hairpin) must answer through the host
        nat_out.append(f'oifname "{b.device}" ip saddr 127.0.0.0/8 masquerade')
        nat_out.append(f'oifname "{b.device}" ip saddr {b.subnet} ct status dnat masquerade')
        # Docker's DOCKER-ISOLATION: nothing crosses from one of our bridges to another
        isolation.append(f'iifname "{b.device}" oifname != "{b.device}" oifname {{ {devices} }} drop')
    lines = [
        f"table ip {table} {{}}",
        f"delete table ip {table}",
        f"table ip {table} {{",
        "  chain prerouting {", "    type nat hook prerouting priority dstnat; policy accept;",
        "    fib daddr type local jump ports", "  }",
        "  chain output {", "    type nat hook output priority -100; policy accept;",
        "    fib daddr type local jump ports", "  }",
        "  chain ports {", *("    " + r for r in port_rules), "  }",
        "  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;",
        *("    " + r for r in nat_out), "  }",
        "  chain forward {", "    type filter hook forward priority filter; policy accept;",
        *("    " + r for r in isolation), "  }",
        "}",
        *_render6(table, bridges),
    ]
    return "\n".join(lines) + "\n"


def _render6(table: str, bridges: list[Bridge]) -> list[str]:
    """The `ip6` table: IPv6 traffic leaving a network masqueraded, and no IPv6 crossing between bridges."""
    v6 = [b for b in bridges if b.subnet6]
    if not v6:
        return [f"table ip6 {table} {{}}", f"delete table ip6 {table}"]
    devices = ", ".join(f'"{b.device}"' for b in bridges)
    nat_out = [f'ip6 saddr {b.subnet6} oifname != "{b.device}" masquerade' for b in v6 if b.masquerade]
    isolation = [f'iifname "{b.device}" oifname != "{b.device}" oifname {{ {devices} }} drop' for b in v6]
    return [
        f"table ip6 {table} {{}}",
        f"delete table ip6 {table}",
        f"table ip6 {table} {{",
        "  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;",
        *("    " + r for r in nat_out), "  }",
        "  chain forward {", "    type filter hook forward priority filter; policy accept;",
        *("    " + r for r in isolation), "  }",
        "}",
    ]


def apply(table: str, bridges: list[Bridge], ports: list[PortRule]) -> None:
    _nft(render(table, bridges, ports))


def remove(table: str) -> None:
    _nft(f"table ip {table} {{}}\ndelete table ip {table}\ntable ip6 {table} {{}}\ndelete table ip6 {table}\n")


def _nft(script: str) -> None:
    with _LOCK:
        proc = subprocess.run([NFT, "-f", "-"], input=script, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise InternalError(f"applying firewall rules failed: {proc.stderr.strip()}")


def set_sysctl(path: str, value: str) -> None:
    with open("/proc/sys/" + path, "w") as f:
        f.write(value)
