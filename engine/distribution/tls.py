"""Which registries are insecure (Docker's rules: loopback, CIDRs, --insecure-registry) and the TLS context for each, from certs.d as dockerd reads it."""
from __future__ import annotations

import functools
import ipaddress
import os
import socket
import ssl
import urllib.parse
from collections.abc import Iterable
from typing import Any

import requests
import requests.adapters

from engine.distribution.errors import RegistryError

DOCKER_HUB = "docker.io"
HUB_ENDPOINT = "registry-1.docker.io"
DEFAULT_INSECURE_CIDRS = ("127.0.0.0/8", "::1/128")



def registry_host(server_address: str) -> str:
    """The reference domain named by a login server address (`https://index.docker.io/v1/` is Docker Hub)."""
    addr = server_address.strip()
    if not addr:
        return DOCKER_HUB
    if "://" in addr:
        addr = urllib.parse.urlsplit(addr).netloc
    addr = addr.split("/", 1)[0]
    return DOCKER_HUB if addr in ("index.docker.io", HUB_ENDPOINT, DOCKER_HUB) else addr


def is_insecure(host: str, extra: Iterable[str] = ()) -> bool:
    """dockerd's rule: an index name listed in insecure-registries, or an address (a name's
    resolved addresses) inside one of the insecure CIDRs, which always include loopback."""
    entries = list(extra)
    if host in entries:
        return True
    if host == DOCKER_HUB:
        return False  # dockerd's preset index config: Docker Hub is secure, no lookup
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    nets = []
    for entry in (*DEFAULT_INSECURE_CIDRS, *entries):
        if "/" in entry:
            try:
                nets.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                continue
    return any(ip in net for ip in _addresses(name) for net in nets if ip.version == net.version)


def _addresses(name: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(name)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def tls_context(certs_dir: str, host: str, insecure: bool) -> ssl.SSLContext:
    """System CAs plus the host's `*.crt`, and its client certificate, as dockerd reads certs.d.

    Loading the system CAs takes tens of milliseconds, so contexts are
    shared while the host's directory stays the same (urllib3 only ever sets
    the verify mode on them, the same for every user of one context).
    """
    directory = os.path.join(certs_dir, host) if certs_dir and host not in ("", ".", "..") and "/" not in host \
        else ""
    try:
        names = sorted(os.listdir(directory)) if directory else []
        listing = tuple((n, os.stat(os.path.join(directory, n)).st_mtime_ns) for n in names)
    except (FileNotFoundError, NotADirectoryError):
        listing = ()
    return _tls_context(directory, listing, insecure)


@functools.lru_cache(maxsize=32)
def _tls_context(directory: str, listing: tuple[tuple[str, int], ...], insecure: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    names = [name for name, _ in listing]
    try:
        for name in names:
            path = os.path.join(directory, name)
            if name.endswith(".crt"):
                ctx.load_verify_locations(cafile=path)
            elif name.endswith(".cert"):
                key = name[:-5] + ".key"
                if key not in names:
                    raise RegistryError(f"missing key {key} for client certificate {name}. "
                                        "CA certificates must use the extension .crt")
                ctx.load_cert_chain(path, os.path.join(directory, key))
            elif name.endswith(".key") and name[:-4] + ".cert" not in names:
                raise RegistryError(f"missing client certificate {name[:-4]}.cert for key {name}")
    except (ssl.SSLError, OSError) as e:
        raise RegistryError(f"failed to load TLS certificates from {directory}: {e}") from None
    return ctx


class TLSAdapter(requests.adapters.HTTPAdapter):
    """Every HTTPS connection uses one prepared SSLContext, never requests' certifi bundle."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx
        super().__init__(pool_maxsize=8)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs, ssl_context=self.ctx)

    def build_connection_pool_key_attributes(self, request: requests.PreparedRequest, verify: Any,
                                             cert: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
        for key in ("ca_certs", "ca_cert_dir", "cert_file", "key_file"):
            pool.pop(key, None)
        pool["ssl_context"] = self.ctx
        return host, pool

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        conn.cert_reqs = "CERT_REQUIRED" if verify else "CERT_NONE"
        conn.ca_certs = conn.ca_cert_dir = None
