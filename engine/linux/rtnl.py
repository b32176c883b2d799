"""The few rtnetlink requests a container start makes, on a plain netlink socket.

pyroute2 (0.9) runs an asyncio event loop for every request, about half a
millisecond each; a default-bridge start makes a handful (the veth pair, the
namespace's loopback, address, link and routes), which was a visible share of
`docker run`. These requests are small and fixed, so they are encoded here
directly: each is one datagram and one acknowledgement. Everything else
(bridges, listings, cleanups) stays on pyroute2, where speed does not matter.

A socket belongs to the network namespace of the thread that opened it, so a
`Rtnl` opened inside a container's namespace (netns.run_in) configures that
namespace.
"""
from __future__ import annotations

import errno
import os
import socket
import struct
from ipaddress import ip_address
from typing import Self

NETLINK_ROUTE = 0
NLMSG_ERROR = 2
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 18, 20, 24
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
IFF_UP = 0x1
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
RTA_GATEWAY = 5
RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 4, 0, 1

_HDR = struct.Struct("=IHHII")        # nlmsghdr: length, type, flags, sequence, port
_IFINFO = struct.Struct("=BxHiII")    # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")     # ifaddrmsg: family, prefix length, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst/src length, tos, table, protocol, scope, type, flags


def _attr(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return struct.pack("=HH", size, kind) + payload + b"\0" * (-size % 4)


def _name(value: str) -> bytes:
    return value.encode() + b"\0"


def _u32(value: int) -> bytes:
    return struct.pack("=I", value)


def _mac(value: str) -> bytes:
    return bytes(int(part, 16) for part in value.split(":"))


class Rtnl:
    """One rtnetlink socket, in the network namespace of the thread that opens it."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._seq = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self._sock.close()

    def _request(self, kind: int, flags: int, body: bytes) -> bytes:
        """Send one request; the payload of its reply message (b"" for a bare acknowledgement).
        The kernel's refusal is raised as OSError with its errno."""
        self._seq += 1
        self._sock.send(_HDR.pack(_HDR.size + len(body), kind, NLM_F_REQUEST | flags, self._seq, 0) + body)
        reply = b""
        while True:
            data = self._sock.recv(65536)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, mtype, _, seq, _ = _HDR.unpack_from(data, offset)
                payload = data[offset + _HDR.size:offset + length]
                offset += (length + 3) & ~3
                if seq != self._seq:
                    continue
                if mtype == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise OSError(code, os.strerror(code))
                    return reply
                reply = payload
                if not flags & NLM_F_ACK:
                    return reply

    def index(self, name: str) -> int | None:
        """A link's index; None when there is no such link."""
        try:
            reply = self._request(RTM_GETLINK, 0, _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
                                  + _attr(IFLA_IFNAME, _name(name)))
        except OSError as e:
            if e.errno == errno.ENODEV:
                return None
            raise
        return int(_IFINFO.unpack_from(reply)[2])

    def add_veth(self, name: str, master: int, peer: str, peer_netns: int, peer_mac: str) -> None:
        """A veth pair: `name` here, enslaved to `master` and up; `peer` (with its MAC) in the namespace of the
        file descriptor `peer_netns`."""
        peer_msg = (_IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _name(peer))
                    + _attr(IFLA_NET_NS_FD, _u32(peer_netns)) + _attr(IFLA_ADDRESS, _mac(peer_mac)))
        info = _attr(IFLA_INFO_KIND, _name("veth")) + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_msg))
        self._request(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                      _IFINFO.pack(socket.AF_UNSPEC, 0, 0, IFF_UP, IFF_UP) + _attr(IFLA_IFNAME, _name(name))
                      + _attr(IFLA_MASTER, _u32(master)) + _attr(IFLA_LINKINFO, info))

    def up(self, index: int) -> None:
        self._request(RTM_NEWLINK, NLM_F_ACK, _IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP))

    def add_address(self, index: int, address: str, prefixlen: int, flags: int = 0) -> None:
        """An address on a link (IPv4 or IPv6 by its form); `flags` are IFA_F_* (IFA_F_NODAD)."""
        ip = ip_address(address)
        family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
        attrs = _attr(IFA_LOCAL, ip.packed) + _attr(IFA_ADDRESS, ip.packed)
        if flags:
            attrs += _attr(IFA_FLAGS, _u32(flags))
        self._request(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                      _IFADDR.pack(family, prefixlen, flags & 0xFF, RT_SCOPE_UNIVERSE, index) + attrs)

    def add_default_route(self, gateway: str) -> None:
        """The default route (IPv4 or IPv6 by the gateway's form) through `gateway`."""
        ip = ip_address(gateway)
        family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
        self._request(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                      _RTMSG.pack(family, 0, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
                      + _attr(RTA_GATEWAY, ip.packed))
