"""Embedded DNS resolver for user-defined networks.

Docker answers container names and aliases at 127.0.0.11 inside each
container; pydock listens on each user-defined network's gateway address
instead (the container's resolv.conf points there), which needs no socket
inside every network namespace and no per-container NAT. Names it does not
know are relayed to the host's own resolvers, which the daemon can reach
even when they listen on the host's loopback. A rootless daemon's gateways
live in its holder's network namespace, where the sockets are made; relaying
still happens from the host's.
"""
from __future__ import annotations

import logging
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import cast

from engine.network import netns

log = logging.getLogger(__name__)

TYPE_A = 1
TYPE_AAAA = 28
CLASS_IN = 1
TTL = 600
# (querying IP, network key, lower-case name) -> (addresses of both families, or None when the name is
# not ours; the resolvers to relay other names to, empty for the host's), or None to ignore the querier
Lookup = Callable[[str, str, str], "tuple[list[str] | None, list[str]] | None"]


def parse_query(data: bytes) -> tuple[int, str, int, int] | None:
    """(id, name, qtype, end of question) of a standard one-question query, else None."""
    if len(data) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", data[:6])
    if flags & 0x8000 or (flags >> 11) & 0xF or qdcount != 1:
        return None
    labels, pos = [], 12
    while True:
        if pos >= len(data):
            return None
        n = data[pos]
        pos += 1
        if n == 0:
            break
        if n > 63 or pos + n > len(data):
            return None
        labels.append(data[pos:pos + n].decode("ascii", "replace"))
        pos += n
    if pos + 4 > len(data):
        return None
    qtype, _qclass = struct.unpack("!HH", data[pos:pos + 4])
    return qid, ".".join(labels).lower(), qtype, pos + 4


def build_answer(query: bytes, end: int, qtype: int, addresses: list[str]) -> bytes:
    """NOERROR answer with the A or AAAA records the query asks for (none for other types of a name we
    own, or when it has no address of that family, as Docker does)."""
    family = {TYPE_A: socket.AF_INET, TYPE_AAAA: socket.AF_INET6}.get(qtype)
    packed = [socket.inet_pton(family, a) for a in addresses if (":" in a) == (family == socket.AF_INET6)] \
        if family else []
    rd = struct.unpack("!H", query[2:4])[0] & 0x0100
    header = struct.pack("!HHHHHH", struct.unpack("!H", query[:2])[0], 0x8080 | rd, 1, len(packed), 0, 0)
    body = b"".join(struct.pack("!HHHIH", 0xC00C, qtype, CLASS_IN, TTL, len(p)) + p for p in packed)
    return header + query[12:end] + body


def servfail(query: bytes, end: int) -> bytes:
    qid, flags = struct.unpack("!HH", query[:4])
    return struct.pack("!HHHHHH", qid, 0x8082 | (flags & 0x0100), 1, 0, 0, 0) + query[12:end]


def _udp_socket() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def host_nameservers(path: str = "/etc/resolv.conf") -> list[str]:
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver" and ":" not in parts[1]:
            out.append(parts[1])
    return out


class DnsServer:
    """One thread serving UDP sockets on several gateway addresses."""

    def __init__(self, lookup: Lookup, netns_path: str = "") -> None:
        """`netns_path`: the network namespace of the gateway addresses; "" for the daemon's own."""
        self.lookup = lookup
        self.netns_path = netns_path
        self._sel = selectors.DefaultSelector()
        self._socks: dict[str, socket.socket] = {}  # network key -> socket
        self._guard = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="pydock-dns")
        self._stop = False
        self._thread = threading.Thread(target=self._serve, name="pydock-dns", daemon=True)
        self._thread.start()

    def listen(self, key: str, address: str) -> None:
        with self._guard:
            if key in self._socks:
                return
            sock = netns.run_in(self.netns_path, _udp_socket) if self.netns_path else _udp_socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, 53))
            except OSError as e:
                sock.close()
                log.warning("embedded DNS cannot listen on %s:53: %s", address, e)
                return
            sock.setblocking(False)
            self._socks[key] = sock
            self._sel.register(sock, selectors.EVENT_READ, key)

    def forget(self, key: str) -> None:
        with self._guard:
            sock = self._socks.pop(key, None)
            if sock is not None:
                self._sel.unregister(sock)
                sock.close()

    def close(self) -> None:
        self._stop = True
        for key in list(self._socks):
            self.forget(key)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _serve(self) -> None:
        # epoll tolerates register/unregister from other threads while it waits
        while not self._stop:
            try:
                ready = self._sel.select(timeout=0.5)
            except (OSError, ValueError):
                continue
            for skey, _ev in ready:
                sock = cast(socket.socket, skey.fileobj)  # only sockets are registered
                try:
                    data, peer = sock.recvfrom(4096)
                except OSError:
                    continue
                try:
                    self._pool.submit(self._answer, sock, skey.data, data, peer)
                except RuntimeError:  # closed meanwhile
                    return

    def _answer(self, sock: socket.socket, key: str, data: bytes, peer: tuple[str, int]) -> None:
        q = parse_query(data)
        if q is None:
            return
        _qid, name, qtype, end = q
        try:
            answer = self.lookup(peer[0], key, name.rstrip("."))
            if answer is None:
                return
            addresses, upstream = answer
            reply = build_answer(data, end, qtype, addresses) if addresses is not None else \
                self._forward(data, end, upstream)
            sock.sendto(reply, peer)
        except Exception:  # a resolver thread must survive any one bad query
            log.exception("embedded DNS failed to answer %s", name)

    @staticmethod
    def _forward(data: bytes, end: int, upstream: list[str]) -> bytes:
        for server in upstream or host_nameservers() or ["8.8.8.8"]:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
                up.settimeout(2)
                try:
                    up.sendto(data, (server, 53))
                    reply, _ = up.recvfrom(65535)
                    return reply
                except OSError:
                    continue
        return servfail(data, end)
